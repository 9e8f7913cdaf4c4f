/* events-bench: the Redis side of bench/events.sh. Subscribes to one
 * channel, tells the script it is ready, then reads amibridge's event JSON
 * until it has `count` events or the channel stays quiet for `idle-ms`.
 * Checks the simulator's flood `Seq` for gaps and order and measures the
 * end-to-end latency from the event's `Timestamp` (written by ami-sim, same
 * clock) to its arrival here. Prints one JSON line.
 *
 * It shares the machine's cores with what it measures, so it reads the
 * subscription's RESP itself (one read of up to EB_READ bytes, no reply
 * objects) and takes `seq`, `Seq` and `Timestamp` out of each payload by
 * scanning for them; the first event and one in EB_CHECK_EVERY after it
 * are also parsed whole with jansson and must agree (else `malformed`).
 *
 *   events-bench --port 6379 --channel ami.default.SimFlood --count 30000 \
 *                --ready-file /tmp/ready [--idle-ms 2000]
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "support/stats.h"

#define EB_READ        (256 * 1024) /* bytes read at once at most */
#define EB_BUF         (4 * EB_READ)
#define EB_CHECK_EVERY 64 /* payloads also parsed whole with jansson */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "<c><digits>\r\n" at b[*o..len): the number, *o past it; -1 when
 * incomplete, -2 when not that. */
static long long resp_len(const char *b, size_t len, size_t *o, char c)
{
    size_t i = *o;
    if (i >= len)
        return -1;
    if (b[i] != c)
        return -2;
    long long n = 0;
    for (i++; i < len && b[i] >= '0' && b[i] <= '9'; i++)
        n = n * 10 + (b[i] - '0');
    if (i + 1 >= len)
        return -1;
    if (b[i] != '\r' || b[i + 1] != '\n')
        return -2;
    *o = i + 2;
    return n;
}

/* One bulk string: its start and length, *o past it; -1 incomplete, -2 bad. */
static int resp_bulk(const char *b, size_t len, size_t *o, const char **s, size_t *slen)
{
    size_t i = *o;
    long long n = resp_len(b, len, &i, '$');
    if (n < 0)
        return (int)n;
    if ((size_t)n + 2 > len - i)
        return -1;
    *s = b + i;
    *slen = (size_t)n;
    *o = i + (size_t)n + 2;
    return 0;
}

/* One pushed message ("message", channel, payload) at b[0..len): 1 with
 * the payload and *used set, 0 when incomplete, -1 when it is not one. */
static int resp_message(const char *b, size_t len, size_t *used, const char **pl, size_t *pllen)
{
    size_t o = 0;
    const char *kind = NULL, *chan = NULL;
    size_t klen = 0, clen = 0;
    long long n = resp_len(b, len, &o, '*');
    if (n == -1)
        return 0;
    if (n != 3)
        return -1;
    int rc = resp_bulk(b, len, &o, &kind, &klen);
    if (rc == 0)
        rc = resp_bulk(b, len, &o, &chan, &clen);
    if (rc == 0)
        rc = resp_bulk(b, len, &o, pl, pllen);
    if (rc == -1)
        return 0;
    if (rc < 0 || klen != 7 || memcmp(kind, "message", 7))
        return -1;
    *used = o;
    return 1;
}

/* The text after `key` in the payload (NULL when absent). */
static const char *after(const char *pl, size_t len, const char *key)
{
    size_t k = strlen(key);
    const char *p = memmem(pl, len, key, k);
    return p ? p + k : NULL;
}

struct ev {
    unsigned long long seq;  /* the flood's Seq */
    unsigned long long bseq; /* the bridge's seq */
    double ts;               /* the flood's Timestamp */
};

/* seq, Seq and Timestamp by scanning; 0, or -1 when one is missing. */
static int scan(const char *pl, size_t len, struct ev *ev)
{
    const char *bs = after(pl, len, "\"seq\":");
    const char *fs = after(pl, len, "\"Seq\":\"");
    const char *ts = after(pl, len, "\"Timestamp\":\"");
    if (!len || !bs || !fs || !ts || pl[len - 1] != '}')
        return -1;
    ev->bseq = strtoull(bs, NULL, 10);
    ev->seq = strtoull(fs, NULL, 10);
    ev->ts = strtod(ts, NULL);
    return ev->bseq > 0 ? 0 : -1;
}

/* The same three with jansson, from the whole document: do they agree? */
static int check(const char *pl, size_t len, const struct ev *ev)
{
    json_t *j = json_loadb(pl, len, 0, NULL);
    json_t *fields = json_object_get(j, "fields");
    const char *seq_s = json_string_value(json_object_get(fields, "Seq"));
    const char *ts_s = json_string_value(json_object_get(fields, "Timestamp"));
    json_int_t bseq = json_integer_value(json_object_get(j, "seq"));
    int ok = seq_s && ts_s && bseq > 0 && strtoull(seq_s, NULL, 10) == ev->seq &&
             strtod(ts_s, NULL) == ev->ts && (unsigned long long)bseq == ev->bseq;
    json_decref(j);
    return ok ? 0 : -1;
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
    if (ready) {
        FILE *f = fopen(ready, "w");
        if (f) {
            fputs("ready\n", f);
            fclose(f);
        }
    }

    double *lat = calloc((size_t)count, sizeof(*lat));
    char *buf = malloc(EB_BUF);
    if (!lat || !buf) {
        fprintf(stderr, "events-bench: out of memory\n");
        return 1;
    }
    long got = 0, gaps = 0, disorder = 0, dup = 0, bad = 0;
    unsigned long long last_seq = 0, last_bridge_seq = 0;
    size_t bytes = 0, have = 0;
    double first = 0, last = 0;
    int quit = 0;
    /* what hiredis read past the SUBSCRIBE reply (nothing, normally: the
     * flood starts once the ready file is there) */
    if (rc->reader->len > rc->reader->pos && rc->reader->len - rc->reader->pos <= EB_BUF) {
        have = rc->reader->len - rc->reader->pos;
        memcpy(buf, rc->reader->buf + rc->reader->pos, have);
    }
    while (got < count && !quit) {
        struct pollfd pfd = {.fd = rc->fd, .events = POLLIN};
        if (poll(&pfd, 1, idle_ms) <= 0)
            break; /* idle timeout */
        size_t room = EB_BUF - have < EB_READ ? EB_BUF - have : EB_READ;
        ssize_t n = read(rc->fd, buf + have, room);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break; /* the connection is gone */
        }
        have += (size_t)n;
        double t = now_s();
        size_t off = 0;
        while (got < count) {
            const char *pl = NULL;
            size_t pllen = 0, used = 0;
            int m = resp_message(buf + off, have - off, &used, &pl, &pllen);
            if (m == 0)
                break;
            if (m < 0) {
                fprintf(stderr, "events-bench: unexpected bytes from Redis\n");
                quit = 1;
                break;
            }
            off += used;
            bytes += pllen;
            struct ev ev;
            if (scan(pl, pllen, &ev) != 0 || (got % EB_CHECK_EVERY == 0 && check(pl, pllen, &ev))) {
                bad++;
            } else {
                unsigned long long seq = ev.seq;
                if (seq == last_seq)
                    dup++;
                else if (seq < last_seq)
                    disorder++;
                else if (seq != last_seq + 1)
                    gaps += (long)(seq - last_seq - 1);
                if (last_bridge_seq && ev.bseq <= last_bridge_seq)
                    disorder++; /* a jump forward is a drop, counted by seq_gaps */
                last_seq = seq > last_seq ? seq : last_seq;
                last_bridge_seq = ev.bseq;
                lat[got] = (t - ev.ts) * 1000.0;
            }
            if (!got)
                first = t;
            last = t;
            got++;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (have == EB_BUF) {
            fprintf(stderr, "events-bench: a message larger than %d bytes\n", EB_BUF);
            break;
        }
    }
    free(buf);
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
