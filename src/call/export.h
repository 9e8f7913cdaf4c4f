/* call/export: a live call as JSON that another process can go on with
 * (the Redis copy of call/calls), and back. Not for use outside src/call.
 *
 * An export is {"call": the call object (call/view), "model": the facts
 * the object does not show (state, dial status, causes, who hung up, each
 * leg's gone and loser flags)}.
 */
#ifndef AMIBRIDGE_CALL_EXPORT_H
#define AMIBRIDGE_CALL_EXPORT_H

#include <jansson.h>

#include "call/call.h"

/* The export of c, a call of server `server`: a new reference, or NULL
 * when out of memory. */
json_t *call_export(const struct call *c, const char *server);

/* The id of an export (borrowed from it), or NULL when `exported` is not
 * shaped like one (no id, no model, legs missing or not matching). */
const char *call_export_id(json_t *exported);

/* A new call (call_free) rebuilt from an export (borrowed; one that
 * call_export_id accepts), in *out: every
 * leg and the call itself marked stale (it may have ended while nobody
 * followed it). 0, -EINVAL (no leg or no start time could be read) or
 * -ENOMEM. */
int call_import(json_t *exported, struct call **out);

#endif
