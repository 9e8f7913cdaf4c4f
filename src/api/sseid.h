/* api/sseid: reading a client's Last-Event-ID, and showing it back.
 *
 * Our event ids are "SEQ" (one AMI server) or "SERVER:SEQ" (several): a
 * server name of CFG_NAME_MAX [A-Za-z0-9_-] characters and a decimal
 * sequence number. The header comes from the client, so nothing else is
 * read as an id, and what is shown back in the stream (a comment saying
 * why there is no replay) is bounded printable ASCII: a CR, LF or other
 * control byte in an SSE stream would start a line the client parses as a
 * field of its own. Pure: no I/O, no globals.
 */
#ifndef AMIBRIDGE_API_SSEID_H
#define AMIBRIDGE_API_SSEID_H

#include <stddef.h>
#include <stdint.h>

#define SSEID_ECHO_MAX 64 /* bytes of a Last-Event-ID shown back, before "..." */

/* Split `id` into its server name (copied into server, "" when absent;
 * server_len must be more than CFG_NAME_MAX) and sequence number. 0, or -1
 * when `id` is not one of the forms above (leading signs, spaces, a
 * number past UINT64_MAX, bytes outside the name alphabet). */
int api_sseid_parse(const char *id, char *server, size_t server_len, uint64_t *seq);

/* `id` as it may be shown back: bytes 0x20-0x7E kept, every other byte
 * (control bytes, DEL, non-ASCII) as '?', cut to SSEID_ECHO_MAX bytes with
 * "..." after. out_len of SSEID_ECHO_MAX + 4 or more holds any id. */
void api_sseid_printable(const char *id, char *out, size_t out_len);

#endif
