/* events-bench: the Redis side of bench/events.sh. Subscribes to one
 * channel, tells the script it is ready, then reads amibridge's event JSON
 * until it has `count` events or the channel stays quiet for `idle-ms`.
 * Checks the simulator's flood `Seq` for gaps and order and measures the
 * end-to-end latency from the event's `Timestamp` (written by ami-sim, same
 * clock) to its arrival here. Prints one JSON line.
 *
 *   events-bench --port 6379 --channel ami.default.SimFlood --count 30000 \
 *                --ready-file /tmp/ready [--idle-ms 2000]
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include "support/stats.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int port = 6379, idle_ms = 2000;
    long count = 0;
    const char *channel = "ami.default.SimFlood", *ready = NULL;
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},    {"channel", required_argument, NULL, 'c'},
        {"count", required_argument, NULL, 'n'},   {"ready-file", required_argument, NULL, 'r'},
        {"idle-ms", required_argument, NULL, 'i'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            channel = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 'r':
            ready = optarg;
            break;
        case 'i':
            idle_ms = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: events-bench --port P --channel C --count N "
                            "[--ready-file F] [--idle-ms MS]\n");
            return 2;
        }
    }
    if (count <= 0) {
        fprintf(stderr, "events-bench: --count must be positive\n");
        return 2;
    }
    redisContext *rc = redisConnect("127.0.0.1", port);
    if (!rc || rc->err) {
        fprintf(stderr, "events-bench: redis: %s\n", rc ? rc->errstr : "out of memory");
        return 1;
    }
    redisReply *r = redisCommand(rc, "SUBSCRIBE %s", channel);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "events-bench: SUBSCRIBE failed\n");
        return 1;
    }
    freeReplyObject(r);
    struct timeval tv = {idle_ms / 1000, (idle_ms % 1000) * 1000};
    redisSetTimeout(rc, tv);
    if (ready) {
        FILE *f = fopen(ready, "w");
        if (f) {
            fputs("ready\n", f);
            fclose(f);
        }
    }

    double *lat = calloc((size_t)count, sizeof(*lat));
    long got = 0, gaps = 0, disorder = 0, dup = 0, bad = 0;
    unsigned long long last_seq = 0, last_bridge_seq = 0;
    size_t bytes = 0;
    double first = 0, last = 0;
    while (got < count) {
        void *rep = NULL;
        if (redisGetReply(rc, &rep) != REDIS_OK)
            break; /* idle timeout or connection gone */
        r = rep;
        double t = now_s();
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[2]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            continue;
        }
        const char *payload = r->element[2]->str;
        bytes += r->element[2]->len;
        json_t *j = json_loads(payload, 0, NULL);
        json_t *fields = json_object_get(j, "fields");
        const char *seq_s = json_string_value(json_object_get(fields, "Seq"));
        const char *ts_s = json_string_value(json_object_get(fields, "Timestamp"));
        json_int_t bseq = json_integer_value(json_object_get(j, "seq"));
        if (!seq_s || !ts_s || bseq <= 0) {
            bad++;
        } else {
            unsigned long long seq = strtoull(seq_s, NULL, 10);
            if (seq == last_seq)
                dup++;
            else if (seq < last_seq)
                disorder++;
            else if (seq != last_seq + 1)
                gaps += (long)(seq - last_seq - 1);
            if (last_bridge_seq && (unsigned long long)bseq <= last_bridge_seq)
                disorder++; /* a jump forward is a drop, counted by seq_gaps */
            last_seq = seq > last_seq ? seq : last_seq;
            last_bridge_seq = (unsigned long long)bseq;
            lat[got] = (t - strtod(ts_s, NULL)) * 1000.0;
        }
        json_decref(j);
        freeReplyObject(r);
        if (!got)
            first = t;
        last = t;
        got++;
    }
    long missing = count - got;
    stats_sort(lat, (size_t)got);
    printf("{\"expected\":%ld,\"received\":%ld,\"missing\":%ld,\"seq_gaps\":%ld,"
           "\"out_of_order\":%ld,\"duplicates\":%ld,\"malformed\":%ld,"
           "\"avg_payload_bytes\":%zu,\"rate_per_s\":%.0f,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           count, got, missing, gaps, disorder, dup, bad, got ? bytes / (size_t)got : 0,
           got > 1 && last > first ? (double)(got - 1) / (last - first) : 0.0,
           stats_pct(lat, (size_t)got, 0.50), stats_pct(lat, (size_t)got, 0.99),
           got ? lat[got - 1] : 0.0);
    free(lat);
    redisFree(rc);
    return 0;
}
