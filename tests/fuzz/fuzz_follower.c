/* libFuzzer target for what a follower takes from the leader's stream
 * (bus_inject, src/bus/events.c): its own reader for the text a leader
 * writes, jansson for anything else. The input is one message as read
 * from Redis. It must be taken exactly when jansson reads it as an event
 * (server "default", a seq from 0 to INT64_MAX, an AMI-like name, string
 * fields, or arrays of strings for a repeated key), with jansson's fields
 * (the last of two equal keys), and the text passed on to Server-Sent
 * Events must be one line that reads as the same JSON. The unit test
 * a_follower_takes_an_event_only_as_jansson_reads_it (tests/unit/test_bus)
 * holds the same rule against hand-written cases. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ami/message.h"
#include "bus/events.h"
#include "core/config.h"
#include "support/follower_rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    size_t n;
    char *json;
    struct ami_msg *fields;
};

static void keep(void *ud, struct bus_event *e)
{
    struct outcome *o = ud;
    o->n++;
    free(o->json);
    ami_msg_free(o->fields);
    o->json = strdup(e->json);
    o->fields = ami_msg_dup(e->msg);
    if (!o->json || !o->fields)
        abort();
}

static int same_fields(const struct ami_msg *got, const struct ami_msg *want)
{
    if (ami_msg_count(got) != ami_msg_count(want))
        return 0;
    for (size_t i = 0; i < ami_msg_count(want); i++)
        if (strcmp(ami_msg_key_at(got, i), ami_msg_key_at(want, i)) ||
            ami_msg_value_len_at(got, i) != ami_msg_value_len_at(want, i) ||
            memcmp(ami_msg_value_at(got, i), ami_msg_value_at(want, i),
                   ami_msg_value_len_at(want, i)))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cfg cfg;
    static struct bus *bus;
    static struct outcome got;
    if (!bus) {
        char err[256];
        char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s3cret-value",
                       "AMIBRIDGE_SSE_REPLAY=4", NULL};
        if (cfg_load(&cfg, env, NULL, err, sizeof(err)) != 0 || !(bus = bus_new(&cfg)) ||
            bus_add_sink(bus, keep, &got) != 0)
            abort();
        bus_set_follower(bus, 1);
    }
    const char *json = (const char *)data;
    got.n = 0;
    bus_inject(bus, json, size);

    json_t *o = json_loadb(json, size, 0, NULL);
    struct ami_msg *want;
    int taken = follower_takes(o, &want);
    if (got.n != (taken ? 1u : 0u))
        abort(); /* taken by one reader, refused by the other */
    if (taken) {
        if (strchr(got.json, '\n') || strchr(got.json, '\r'))
            abort(); /* would cut SSE's data: line */
        json_t *again = json_loads(got.json, 0, NULL);
        if (!json_equal(again, o) || !same_fields(got.fields, want))
            abort();
        json_decref(again);
    }
    ami_msg_free(want);
    json_decref(o);
    return 0;
}
