/* http/access_log: the access log line, one per request. */
#include "http/server_internal.h"

#include <stdint.h>
#include <string.h>

#include "core/jsonw.h"
#include "core/log.h"
#include "core/strbuf.h"

/* `,"key":` (keys here are plain ASCII). */
static int access_key(struct strbuf *b, const char *key)
{
    int rc = strbuf_append(b, ",\"", 2);
    if (!rc)
        rc = strbuf_append_str(b, key);
    return rc ? rc : strbuf_append(b, "\":", 2);
}

/* A string member, the value repaired to UTF-8 as jsonw does. */
static int access_str(struct strbuf *b, const char *key, const char *v)
{
    int rc = access_key(b, key);
    return rc ? rc : jsonw_string(b, v, strlen(v));
}

static int access_u64(struct strbuf *b, const char *key, uint64_t v)
{
    int rc = access_key(b, key);
    return rc ? rc : jsonw_u64(b, v);
}

/* The access log line, one per request: written by hand (a jansson tree
 * and its dump cost more than the rest of a Ping's answer), the same
 * members in the same order as before. A method or path that is not
 * UTF-8 shows with U+FFFD (jansson's json_pack refused such a line whole
 * and the line lost every field). */
void http_access_log(const struct http_req *r, uint64_t us, int aborted)
{
    static struct strbuf b;
    int rc = log_begin(&b, LOG_INFO, "http request");
    if (!rc)
        rc = access_str(&b, "method", r->method ? r->method : "");
    if (!rc)
        rc = access_str(&b, "path", r->path ? r->path : "");
    if (!rc)
        rc = access_u64(&b, "status", r->status);
    if (!rc)
        rc = access_key(&b, "ms");
    if (!rc)
        rc = jsonw_real(&b, (double)us / 1000.0, 10);
    if (!rc)
        rc = access_u64(&b, "bytes_in", r->body.len);
    if (!rc)
        rc = access_u64(&b, "bytes_out", r->bytes_out);
    if (!rc)
        rc = access_str(&b, "request_id", r->id);
    if (!rc)
        rc = access_str(&b, "peer", r->peer);
    if (!rc && r->route)
        rc = access_str(&b, "route", r->route);
    if (!rc && r->key[0])
        rc = access_str(&b, "key", r->key);
    if (!rc && r->via[0])
        rc = access_str(&b, "via", r->via);
    if (!rc && aborted)
        rc = strbuf_append(&b, ",\"aborted\":true", 15);
    log_end(&b, rc);
}
