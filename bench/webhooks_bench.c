/* webhooks-bench: the receiving side of bench/webhooks.sh. Starts `subs`
 * real HTTP/1.1 receivers (tests/support/receiver: keep-alive, one thread
 * per connection), subscribes each one to amibridge (POST /v1/webhooks),
 * tells the script it is ready, then waits until every receiver has
 * `count` deliveries or none arrives for `idle-ms`. Checks, per
 * subscription, that the simulator's flood `Seq` arrives 1..count exactly
 * once and in order, the bridge's `seq` only rises and no delivery id
 * repeats (a repeat is a redelivery: at-least-once); verifies the HMAC
 * signature of a sample of deliveries; measures the delivery rate and the
 * latency from the event's "time" (when amibridge received it, RFC 3339)
 * to the receiver's arrival time (CLOCK_REALTIME, same machine); counts the
 * TCP connections each receiver saw. With --redis-port it also reads the
 * Redis command counters (RPUSH/LREM, reset when ready) and checks that the
 * delivery lists are empty at the end. Deletes its subscriptions and prints
 * one JSON line.
 *
 *   webhooks-bench --bridge http://127.0.0.1:8080 --subs 4 --events SimFlood \
 *                  --count 50000 --ready-file /tmp/ready [--idle-ms 5000] \
 *                  [--timeout-s 300] [--verify 1000] [--redis-port 6379]
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/receiver.h"
#include "support/stats.h"

#define MAX_SUBS 64

struct sub {
    struct receiver *r;
    char id[64];
    char secret[160];
    size_t got;
};

struct totals {
    long received, missing, dup, id_dup, disorder, bseq_disorder, malformed, non200, retries;
    long bad_headers, sig_checked, sig_bad;
    size_t conns, rejected, nlat;
    double *lat, *lat_sim;
    double first, last;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double real_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "2026-11-27T17:35:00.123456Z" -> Unix seconds; -1 when malformed. */
static double rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    double t = (double)timegm(&tm), scale = 0.1;
    const char *p = s + n;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            t += (*p - '0') * scale;
    return *p == 'Z' ? t : -1;
}

/* HTTP to the bridge ------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t n;
};

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    struct buf *b = ud;
    size_t len = sz * nm;
    char *p = realloc(b->p, b->n + len + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, d, len);
    b->n += len;
    p[b->n] = '\0';
    b->p = p;
    return len;
}

/* One request; the status, or -1. The answer body in *out (caller frees). */
static long http(const char *method, const char *url, const char *body, char **out)
{
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    struct buf b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    long status = -1;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (out)
        *out = b.p;
    else
        free(b.p);
    return status;
}

static int subscribe(const char *bridge, const char *glob, struct sub *s)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/webhooks", bridge);
    char hook[64];
    snprintf(hook, sizeof(hook), "http://127.0.0.1:%d/hook", receiver_port(s->r));
    json_t *o =
        json_pack("{s:s,s:[s],s:s}", "url", hook, "events", glob, "description", "webhooks-bench");
    char *req = o ? json_dumps(o, JSON_COMPACT) : NULL, *ans = NULL;
    json_decref(o);
    long st = req ? http("POST", url, req, &ans) : -1;
    free(req);
    json_t *a = st == 201 && ans ? json_loads(ans, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(a, "id"));
    const char *secret = json_string_value(json_object_get(a, "secret"));
    int rc = -1;
    if (id && secret && strlen(id) < sizeof(s->id) && strlen(secret) < sizeof(s->secret)) {
        strcpy(s->id, id);
        strcpy(s->secret, secret);
        rc = 0;
    } else {
        fprintf(stderr, "webhooks-bench: POST /v1/webhooks: %ld %s\n", st, ans ? ans : "");
    }
    json_decref(a);
    free(ans);
    return rc;
}

static void unsubscribe(const char *bridge, const struct sub *s)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/webhooks/%s", bridge, s->id);
    long st = http("DELETE", url, NULL, NULL);
    if (st != 204)
        fprintf(stderr, "webhooks-bench: DELETE %s: %ld\n", s->id, st);
}

/* Checks ------------------------------------------------------------------------------ */

static int sig_ok(const char *secret, const struct receiver_req *q)
{
    const char *ts = receiver_req_header(q, "X-Amibridge-Timestamp");
    const char *sig = receiver_req_header(q, "X-Amibridge-Signature");
    if (!ts || !sig || strncmp(sig, "sha256=", 7) != 0 || strlen(sig) != 7 + 64)
        return 0;
    size_t tl = strlen(ts), ml = tl + 1 + q->len;
    unsigned char *msg = malloc(ml), mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!msg)
        return 0;
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, q->body, q->len);
    int ok = HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, ml, mac, &maclen) != NULL;
    free(msg);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return ok && maclen == 32 && CRYPTO_memcmp(hex, sig + 7, 64) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Everything one receiver got, into the totals. */
static void check(struct sub *s, long count, long verify, double offset, struct totals *t)
{
    size_t n = s->got; /* the latency arrays hold that many; later arrivals are not read */
    unsigned long long last = 0, last_bseq = 0;
    size_t step = verify > 0 && n > (size_t)verify ? n / (size_t)verify : 1;
    char **ids = calloc(n ? n : 1, sizeof(*ids));
    size_t nids = 0;
    unsigned char *seen = calloc((size_t)count + 1, 1);
    if (!ids || !seen) {
        fprintf(stderr, "webhooks-bench: out of memory\n");
        t->malformed += (long)n;
        free(ids);
        free(seen);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct receiver_req q;
        if (receiver_get(s->r, i, &q) != 0) {
            t->malformed++;
            continue;
        }
        double arrived = q.t + offset;
        if (t->first == 0 || arrived < t->first)
            t->first = arrived;
        if (arrived > t->last)
            t->last = arrived;
        if (q.status != 200)
            t->non200++;
        json_t *j = json_loadb(q.body, q.len, 0, NULL);
        json_t *fields = json_object_get(j, "fields");
        const char *ev = json_string_value(json_object_get(j, "event"));
        const char *seq_s = json_string_value(json_object_get(fields, "Seq"));
        const char *simts = json_string_value(json_object_get(fields, "Timestamp"));
        json_int_t bseq = json_integer_value(json_object_get(j, "seq"));
        double when = rfc3339(json_string_value(json_object_get(j, "time")));
        const char *hev = receiver_req_header(&q, "X-Amibridge-Event");
        const char *hdel = receiver_req_header(&q, "X-Amibridge-Delivery");
        const char *hsub = receiver_req_header(&q, "X-Amibridge-Webhook");
        const char *hatt = receiver_req_header(&q, "X-Amibridge-Attempt");
        if (strcmp(q.method, "POST") != 0 || strcmp(q.path, "/hook") != 0 || !ev || !hev ||
            strcmp(ev, hev) != 0 || !hdel || !*hdel || (hsub && strcmp(hsub, s->id) != 0))
            t->bad_headers++;
        if (hatt && strcmp(hatt, "1") != 0)
            t->retries++;
        if (hdel && nids < n && (ids[nids] = strdup(hdel)))
            nids++;
        if (!seq_s || bseq <= 0 || when < 0) {
            t->malformed++;
        } else {
            unsigned long long seq = strtoull(seq_s, NULL, 10);
            if (seq >= 1 && seq <= (unsigned long long)count) {
                if (seen[seq])
                    t->dup++;
                seen[seq] = 1;
            } else {
                t->malformed++;
            }
            if (seq <= last)
                t->disorder += seq < last;
            last = seq > last ? seq : last;
            if (last_bseq && (unsigned long long)bseq <= last_bseq)
                t->bseq_disorder++;
            last_bseq = (unsigned long long)bseq;
            t->lat[t->nlat] = (arrived - when) * 1000.0;
            t->lat_sim[t->nlat] = simts ? (arrived - strtod(simts, NULL)) * 1000.0 : 0;
            t->nlat++;
        }
        if (i % step == 0 || i == n - 1) {
            t->sig_checked++;
            if (!sig_ok(s->secret, &q))
                t->sig_bad++;
        }
        json_decref(j);
        receiver_req_free(&q);
    }
    for (long k = 1; k <= count; k++)
        t->missing += !seen[k];
    /* every delivery id once */
    qsort(ids, nids, sizeof(*ids), cmp_str);
    for (size_t i = 1; i < nids; i++)
        if (!strcmp(ids[i], ids[i - 1]))
            t->id_dup++;
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
    free(seen);
    t->received += (long)n;
    t->conns += receiver_connections(s->r);
    t->rejected += receiver_rejected(s->r);
}

/* Redis: reset its counters, read them, and the delivery lists ----------------------- */

static long long cmdstat(redisContext *rc, const char *cmd)
{
    redisReply *r = redisCommand(rc, "INFO commandstats");
    long long calls = 0;
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, key);
        if (p)
            calls = strtoll(p + strlen(key), NULL, 10);
    }
    freeReplyObject(r);
    return calls;
}

static long long queued(redisContext *rc, const char *prefix, struct sub *subs, int n)
{
    long long left = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(rc, "LLEN %s:webhooks:queue:%s", prefix, subs[i].id);
        if (r && r->type == REDIS_REPLY_INTEGER)
            left += r->integer;
        else
            left = -1000000;
        freeReplyObject(r);
    }
    return left;
}

static void usage(void)
{
    fprintf(stderr, "usage: webhooks-bench --bridge URL --count N [--subs N] [--events GLOB] "
                    "[--ready-file F] [--idle-ms MS] [--timeout-s S] [--verify N] "
                    "[--redis-port P] [--redis-prefix P]\n");
}

int main(int argc, char **argv)
{
    const char *bridge = NULL, *glob = "SimFlood", *ready = NULL, *prefix = "ami";
    long count = 0, verify = 1000;
    int nsubs = 1, idle_ms = 5000, timeout_s = 300, redis_port = 0;
    static const struct option opts[] = {{"bridge", required_argument, NULL, 'b'},
                                         {"subs", required_argument, NULL, 's'},
                                         {"events", required_argument, NULL, 'e'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"ready-file", required_argument, NULL, 'r'},
                                         {"idle-ms", required_argument, NULL, 'i'},
                                         {"timeout-s", required_argument, NULL, 't'},
                                         {"verify", required_argument, NULL, 'v'},
                                         {"redis-port", required_argument, NULL, 'p'},
                                         {"redis-prefix", required_argument, NULL, 'x'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'b':
            bridge = optarg;
            break;
        case 's':
            nsubs = atoi(optarg);
            break;
        case 'e':
            glob = optarg;
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
        case 't':
            timeout_s = atoi(optarg);
            break;
        case 'v':
            verify = atol(optarg);
            break;
        case 'p':
            redis_port = atoi(optarg);
            break;
        case 'x':
            prefix = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!bridge || count <= 0 || nsubs < 1 || nsubs > MAX_SUBS) {
        usage();
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    redisContext *rc = NULL;
    if (redis_port) {
        rc = redisConnect("127.0.0.1", redis_port);
        if (!rc || rc->err) {
            fprintf(stderr, "webhooks-bench: redis: %s\n", rc ? rc->errstr : "out of memory");
            return 1;
        }
    }

    struct sub subs[MAX_SUBS];
    memset(subs, 0, sizeof(subs));
    int ok = 1, made = 0;
    for (int i = 0; i < nsubs && ok; i++) {
        if (!(subs[i].r = receiver_start())) {
            fprintf(stderr, "webhooks-bench: receiver_start failed\n");
            ok = 0;
        } else if (subscribe(bridge, glob, &subs[i]) == 0) {
            made++;
        } else {
            ok = 0;
        }
    }
    if (ok && rc)
        freeReplyObject(redisCommand(rc, "CONFIG RESETSTAT"));
    if (ok && ready) {
        FILE *f = fopen(ready, "w");
        if (f) {
            fputs("ready\n", f);
            fclose(f);
        }
    }

    /* wait for every receiver to have `count`, or for silence, or the timeout */
    double start = mono_s(), changed = start;
    size_t seen = 0;
    int timed_out = 0;
    while (ok) {
        size_t total = 0;
        int waiting = -1;
        for (int i = 0; i < nsubs; i++) {
            subs[i].got = receiver_count(subs[i].r);
            total += subs[i].got;
            if (waiting < 0 && subs[i].got < (size_t)count)
                waiting = i;
        }
        double now = mono_s();
        if (waiting < 0)
            break;
        if (now - start > timeout_s) {
            timed_out = 1;
            break;
        }
        if (total != seen) {
            seen = total;
            changed = now;
        } else if ((now - changed) * 1000.0 > idle_ms) {
            timed_out = 2;
            break;
        }
        receiver_wait(subs[waiting].r, (size_t)count, 100);
    }
    /* a short grace for anything past `count` (duplicates) */
    if (ok)
        for (int i = 0; i < nsubs; i++)
            receiver_wait(subs[i].r, (size_t)count + 1, i ? 0 : 300);

    long long rpush = -1, lrem = -1, left = -1;
    if (ok && rc) {
        /* the bridge LREMs after the receiver's answer: give it a moment */
        for (int k = 0; k < 50 && (left = queued(rc, prefix, subs, nsubs)) != 0; k++) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        rpush = cmdstat(rc, "rpush");
        lrem = cmdstat(rc, "lrem");
    }

    struct totals t;
    memset(&t, 0, sizeof(t));
    size_t cap = 0;
    for (int i = 0; i < nsubs; i++)
        cap += subs[i].got = subs[i].r ? receiver_count(subs[i].r) : 0;
    t.lat = calloc(cap ? cap : 1, sizeof(*t.lat));
    t.lat_sim = calloc(cap ? cap : 1, sizeof(*t.lat_sim));
    double offset = real_s() - mono_s();
    if (ok && t.lat && t.lat_sim)
        for (int i = 0; i < nsubs; i++)
            check(&subs[i], count, verify, offset, &t);
    for (int i = 0; i < made; i++)
        unsubscribe(bridge, &subs[i]);
    for (int i = 0; i < nsubs; i++)
        receiver_stop(subs[i].r);

    if (ok) {
        stats_sort(t.lat, t.nlat);
        stats_sort(t.lat_sim, t.nlat);
        long expected = count * nsubs;
        double span = t.last - t.first;
        double rate = t.received > 1 && span > 0 ? (double)(t.received - 1) / span : 0.0;
        const char *stopped = timed_out == 1 ? "timeout" : timed_out == 2 ? "idle" : "complete";
        printf("{\"subs\":%d,\"expected\":%ld,\"received\":%ld,\"missing\":%ld,", nsubs, expected,
               t.received, t.missing);
        printf("\"duplicates\":%ld,\"delivery_id_duplicates\":%ld,\"out_of_order\":%ld,", t.dup,
               t.id_dup, t.disorder);
        printf("\"bridge_seq_out_of_order\":%ld,\"malformed\":%ld,\"bad_headers\":%ld,",
               t.bseq_disorder, t.malformed, t.bad_headers);
        printf("\"non_200\":%ld,\"retries\":%ld,\"rejected\":%zu,\"connections\":%zu,", t.non200,
               t.retries, t.rejected, t.conns);
        printf("\"signatures_checked\":%ld,\"signatures_bad\":%ld,", t.sig_checked, t.sig_bad);
        printf("\"rate_per_s\":%.0f,\"seconds\":%.3f,", rate, span);
        printf("\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,", stats_pct(t.lat, t.nlat, 0.50),
               stats_pct(t.lat, t.nlat, 0.99), t.nlat ? t.lat[t.nlat - 1] : 0.0);
        printf("\"sim_p50_ms\":%.3f,\"sim_p99_ms\":%.3f,", stats_pct(t.lat_sim, t.nlat, 0.50),
               stats_pct(t.lat_sim, t.nlat, 0.99));
        printf("\"redis_rpush\":%lld,\"redis_lrem\":%lld,\"redis_left\":%lld,", rpush, lrem, left);
        printf("\"stopped\":\"%s\"}\n", stopped);
    }
    free(t.lat);
    free(t.lat_sim);
    if (rc)
        redisFree(rc);
    curl_global_cleanup();
    return ok ? 0 : 1;
}
