/* libFuzzer target for the AMI parser and the message -> JSON path.
 *
 * The first input byte picks the chunk size and whether a banner is
 * expected, and small limits are used half of the time so the caps are hit
 * often. Every message that comes out must convert to valid JSON, the hand
 * encoder (ami_msg_json_append) must write the very bytes jansson dumps,
 * and its wire form must parse back to the same pairs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ami/parser.h"
#include "core/utf8.h"

static void check_message(const struct ami_msg *m)
{
    json_t *j = ami_msg_to_json(m);
    if (!j)
        abort();
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s || !utf8_valid(s, strlen(s)))
        abort();
    struct strbuf direct;
    strbuf_init(&direct, 0);
    if (ami_msg_json_append(m, &direct) != 0 || direct.len != strlen(s) ||
        memcmp(direct.data, s, direct.len) != 0)
        abort();
    strbuf_release(&direct);
    json_error_t e;
    json_t *back = json_loads(s, 0, &e);
    if (!back)
        abort();
    json_decref(back);
    free(s);
    json_decref(j);

    if (ami_msg_kind(m) == AMI_MSG_BANNER)
        return;
    /* Re-serialise and re-parse: the same pairs must come back, unless a
     * key or value could not survive framing (empty key, embedded newline
     * in legacy output, a value ending in a space before CR, ...). */
    struct strbuf sb;
    strbuf_init(&sb, 0);
    if (ami_msg_write(m, &sb) != 0)
        abort();
    struct ami_parser *p = ami_parser_new(NULL, 0);
    struct ami_msg *r = NULL;
    if (ami_parser_feed(p, sb.data, sb.len) == 0 && ami_parser_next(p, &r) == 1 &&
        ami_msg_count(r) == ami_msg_count(m) && ami_msg_kind(m) != AMI_MSG_UNKNOWN) {
        for (size_t i = 0; i < ami_msg_count(m); i++)
            if (strcmp(ami_msg_key_at(m, i), ami_msg_key_at(r, i)) != 0)
                abort();
    }
    ami_msg_free(r);
    ami_parser_free(p);
    strbuf_release(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    struct ami_parser_limits small = {.max_line = 64, .max_headers = 8, .max_message = 512};
    struct ami_parser *p =
        ami_parser_new((mode & 0x80) ? &small : NULL, (mode & 0x40) ? AMI_PARSER_EXPECT_BANNER : 0);
    size_t chunk = (mode & 0x3f) + 1;
    for (size_t i = 0; i < size; i += chunk) {
        size_t n = size - i < chunk ? size - i : chunk;
        if (ami_parser_feed(p, (const char *)data + i, n) < 0)
            break;
        struct ami_msg *m;
        int rc;
        while ((rc = ami_parser_next(p, &m)) == 1) {
            check_message(m);
            ami_msg_free(m);
        }
        if (rc < 0) {
            if (ami_parser_error(p) == AMI_PERR_NONE || !ami_parser_errstr(p)[0])
                abort();
            break;
        }
        /* the bound promised in parser.h */
        if (ami_parser_pending(p) > AMI_PARSER_MAX_MESSAGE + AMI_PARSER_FEED_SLACK)
            abort();
    }
    ami_parser_free(p);
    return 0;
}
