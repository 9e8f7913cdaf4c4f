/* libFuzzer target for JSON -> AMI action, the path every route takes to
 * reach Asterisk.
 *
 * Whatever JSON comes in, an action that ami_action_serialize() accepts
 * must be exactly one AMI message on the wire: parsed back, it has the same
 * keys and values in the same order, nothing more (no header or action
 * smuggled in with CR, LF or NUL). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ami/message.h"
#include "ami/parser.h"
#include "core/strbuf.h"

/* Values compared without blanks at either end: the parser trims them, as
 * Asterisk does. */
static int same_value(const char *a, const char *b)
{
    while (*a == ' ' || *a == '\t')
        a++;
    while (*b == ' ' || *b == '\t')
        b++;
    size_t la = strlen(a), lb = strlen(b);
    while (la && (a[la - 1] == ' ' || a[la - 1] == '\t'))
        la--;
    while (lb && (b[lb - 1] == ' ' || b[lb - 1] == '\t'))
        lb--;
    return la == lb && !memcmp(a, b, la);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!o)
        return 0;
    struct ami_msg *m = NULL;
    struct ami_error err;
    memset(&err, 0, sizeof(err));
    if (json_is_object(o) && ami_msg_from_json(o, &m, &err) == 0) {
        struct strbuf sb;
        strbuf_init(&sb, 0);
        if (ami_action_serialize(m, &sb, &err) == 0) {
            /* exactly one message, the same pairs */
            struct ami_parser *p = ami_parser_new(NULL, 0);
            struct ami_msg *back = NULL;
            if (ami_parser_feed(p, sb.data, sb.len) != 0 || ami_parser_next(p, &back) != 1)
                abort();
            struct ami_msg *extra = NULL;
            if (ami_parser_next(p, &extra) != 0)
                abort();
            if (ami_msg_count(back) != ami_msg_count(m))
                abort();
            for (size_t i = 0; i < ami_msg_count(m); i++) {
                if (strcmp(ami_msg_key_at(m, i), ami_msg_key_at(back, i)))
                    abort();
                if (!same_value(ami_msg_value_at(m, i), ami_msg_value_at(back, i)))
                    abort();
            }
            if (ami_action_validate(m, &err) != 0)
                abort();
            ami_msg_free(back);
            ami_parser_free(p);
        } else if (!err.detail[0]) {
            abort(); /* a refusal must say why */
        }
        strbuf_release(&sb);
    }
    ami_msg_free(m);
    json_decref(o);
    return 0;
}
