/* support/follower_rule: when a follower must take an event it reads from
 * the leader's stream (bus_inject), decided by jansson: the oracle of
 * tests/unit/test_bus.c and tests/fuzz/fuzz_follower.c. Header-only: the
 * fuzz targets link the library, not tests/support. */
#ifndef AMIBRIDGE_TEST_FOLLOWER_RULE_H
#define AMIBRIDGE_TEST_FOLLOWER_RULE_H

#include <jansson.h>
#include <string.h>

#include "ami/message.h"
#include "bus/events.h"

/* An AMI-like event name: printable ASCII, no blank, quote or backslash. */
static inline int follower_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= BUS_EVENT_NAME_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

/* 1 when jansson's reading `o` of a message is an event a follower takes
 * (server "default", a seq from 0 to INT64_MAX, an AMI-like name, string
 * fields or arrays of strings), its fields then in *want (free them with
 * ami_msg_free); 0 otherwise, *want NULL. */
static inline int follower_takes(const json_t *o, struct ami_msg **want)
{
    struct ami_error err;
    *want = NULL;
    const json_t *jseq = json_object_get(o, "seq");
    const char *server = json_string_value(json_object_get(o, "server"));
    if (!o || ami_msg_from_json(json_object_get(o, "fields"), want, &err) != 0) {
        ami_msg_free(*want);
        *want = NULL;
        return 0;
    }
    if (server && !strcmp(server, "default") && json_is_integer(jseq) &&
        json_integer_value(jseq) >= 0 &&
        follower_name_ok(json_string_value(json_object_get(o, "event"))))
        return 1;
    ami_msg_free(*want);
    *want = NULL;
    return 0;
}

#endif
