/* call/view: the JSON of a call, as documented in openapi.yaml (Call). Not
 * for use outside src/call.
 */
#ifndef AMIBRIDGE_CALL_VIEW_H
#define AMIBRIDGE_CALL_VIEW_H

#include <jansson.h>

#include "call/call.h"

/* The call object of c, a call of server `server`: a new reference, or
 * NULL when out of memory. Ended calls (ended_at set) carry their outcome
 * and hangup; live ones null there. */
json_t *call_view(const struct call *c, const char *server);

/* A new JSON string of s, or JSON null for NULL. */
json_t *call_view_str(const char *s);

#endif
