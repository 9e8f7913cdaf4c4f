/* Unit tests for bus/webhook_store: where subscriptions are kept. The
 * state file in a private directory (every member round-tripped across a
 * restart, deletes kept, a corrupt file refused with a clear error and left
 * as it was, a failed write changing nothing, stale temp files removed),
 * static subscriptions from the config file, and the Redis hash of a real
 * redis-server on a free port (a change seen by another process within a
 * poll, entries that break the rules skipped, a hash lost by Redis written
 * back, a change refused while Redis is down). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "bus/redis.h"
#include "bus/webhook_http.h"
#include "bus/webhook_queue.h"
#include "bus/webhook_store.h"
#include "bus/webhook_sub.h"
#include "core/config.h"
#include "core/netlist.h"
#include "support/proc.h"
#include "support/redis.h"
#include "support/testenv.h"

#define PREFIX  "ws"
#define HASH    PREFIX ":webhooks"
#define SECRET  "0123456789abcdef-test-secret"
#define WHSEC   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" /* 24 bytes */
#define POLL_MS (3 * WEBHOOKS_POLL_MS)                   /* time for another process to see it */

#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uint64_t end_ = uv_now(&loop) + (uint64_t)(ms);                                            \
        while (!(cond) && uv_now(&loop) < end_)                                                    \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
    } while (0)

/* One process's webhooks: what holds them and where they are kept. */
struct run {
    struct wh_http *http;
    struct bus_redis *redis;
    struct wh_queues *q;
    struct wh_store *st;
    int open_rc;
    char err[512];
};

/* What a change came to. */
struct answer {
    int n, err;
    char detail[320];
};

static struct redis_srv redis; /* one for the program, emptied before each test */
static uv_loop_t loop;
static uv_timer_t wake; /* so that RUN_UNTIL looks at the clock */
static struct cfg cfg;
static struct netlist_net *allow;
static size_t nallow;
static char dir[512], path[600];

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

static void on_done(void *ud, int err, const char *detail)
{
    struct answer *a = ud;
    a->n++;
    a->err = err;
    snprintf(a->detail, sizeof(a->detail), "%s", detail ? detail : "");
}

/* Start a process's webhooks; `redis_url` NULL: without Redis. */
static void run_open(struct run *r, const char *redis_url)
{
    memset(r, 0, sizeof(*r));
    r->http = wh_http_new(&loop, allow, nallow, cfg.webhook_timeout_ms);
    assert_non_null(r->http);
    if (redis_url) {
        char err[256];
        r->redis = bus_redis_new(&loop, redis_url, err, sizeof(err));
        assert_non_null(r->redis);
        if (!strcmp(redis_url, redis.url)) {
            RUN_UNTIL(bus_redis_up(r->redis), 2000);
            assert_true(bus_redis_up(r->redis));
        }
    }
    r->q = wh_queues_new(&loop, &cfg, r->redis, r->http, NULL, NULL);
    assert_non_null(r->q);
    r->st = wh_store_new(&loop, &cfg, r->redis, r->q, allow, nallow, on_done);
    assert_non_null(r->st);
    r->open_rc = wh_store_open(r->st, r->err, sizeof(r->err));
}

static int rclosed;
static void on_rclosed(void *arg)
{
    (void)arg;
    rclosed = 1;
}

/* Each part's close `done`: counted, so that one firing twice shows. */
static void on_part_closed(void *arg)
{
    (*(int *)arg)++;
}

static void run_shut(struct run *r)
{
    int closed = 0;
    wh_store_close(r->st, on_part_closed, &closed);
    wh_queues_close(r->q, on_part_closed, &closed);
    wh_http_close(r->http, on_part_closed, &closed);
    if (r->redis) {
        rclosed = 0;
        bus_redis_close(r->redis, on_rclosed, NULL);
        RUN_UNTIL(rclosed, 5000);
        assert_true(rclosed);
    }
    RUN_UNTIL(closed == 3, 5000);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(closed, 3);
    memset(r, 0, sizeof(*r));
}

static int group_setup(void **state)
{
    (void)state;
    return redis_start(&redis, 0);
}

static int group_teardown(void **state)
{
    (void)state;
    redis_stop(&redis);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    char err[256], env_dir[600];
    if (testenv_tmpdir(dir, sizeof(dir), "whstore") != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dir, WEBHOOKS_STATE_FILE);
    snprintf(env_dir, sizeof(env_dir), "AMIBRIDGE_STATE_DIR=%s", dir);
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s3cret-value",
                   "AMIBRIDGE_REDIS_PREFIX=" PREFIX, env_dir, NULL};
    if (cfg_load(&cfg, env, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (netlist_parse("127.0.0.0/8", &allow, &nallow, err, sizeof(err)) != 0)
        return -1;
    const char *flush[] = {"FLUSHALL", NULL};
    free(redis_cli(&redis, flush));
    uv_loop_init(&loop);
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(allow);
    allow = NULL;
    cfg_free(&cfg);
    rmdir(path); /* when a test left a directory there */
    testenv_rmdir(dir);
    return 0;
}

/* A subscription as the store is given it; `more` adds members. */
static void conf(struct wh_conf *c, const char *id, const char *more)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"id\":\"%s\",\"url\":\"http://127.0.0.1:9/%s\",\"events\":[\"Hangup\"],"
             "\"secret\":\"%s\",\"enabled\":true,\"created\":1700000000%s%s}",
             id, id, SECRET, more ? "," : "", more ? more : "");
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    struct wh_problem pb = {{0}, {0}};
    memset(c, 0, sizeof(*c));
    if (wh_conf_apply(c, o, WH_STORED, allow, nallow, &pb) != 0)
        fail_msg("%s: %s", pb.field, pb.detail);
    json_decref(o);
}

static void put(struct run *r, const struct wh_conf *c, struct answer *a)
{
    memset(a, 0, sizeof(*a));
    wh_store_put(r->st, c, a);
    RUN_UNTIL(a->n == 1, 2000);
    assert_int_equal(a->n, 1);
}

static void del(struct run *r, const char *id, struct answer *a)
{
    memset(a, 0, sizeof(*a));
    wh_store_del(r->st, id, a);
    RUN_UNTIL(a->n == 1, 2000);
    assert_int_equal(a->n, 1);
}

/* Everything the store keeps of subscription `id` held by `r`, as text
 * ("" when not held). Caller frees. */
static char *held(struct run *r, const char *id)
{
    struct wh_sub *s = wh_queues_find(r->q, id);
    if (!s)
        return strdup("");
    json_t *o = wh_conf_json(wh_sub_conf(s), 1);
    char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    return text;
}

static char *slurp(const char *file)
{
    FILE *f = fopen(file, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void spill(const char *file, const char *text)
{
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static size_t temp_files(void)
{
    char pattern[700];
    glob_t g;
    snprintf(pattern, sizeof(pattern), "%s.tmp.*", path);
    size_t n = glob(pattern, 0, NULL, &g) == 0 ? g.gl_pathc : 0;
    globfree(&g);
    return n;
}

static char *redis_do(const char *a, const char *b, const char *c, const char *d)
{
    const char *args[] = {a, b, c, d, NULL};
    char *out = redis_cli(&redis, args);
    assert_non_null(out);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* --- the state file -------------------------------------------------------------------- */

static void the_state_file_keeps_every_member_across_a_restart(void **state)
{
    (void)state;
    struct run r;
    struct answer a;
    struct wh_conf x, y;
    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    conf(&x, "wh_x",
         "\"filter\":{\"Queue\":\"sales*\"},\"description\":\"CRM\",\"signature\":\"standard\","
         "\"previous_secrets\":[{\"secret\":\"" WHSEC "\",\"expires\":4102444800}]");
    conf(&y, "wh_y",
         "\"enabled\":false,\"reason\":\"the receiver answered 410 Gone\","
         "\"signature\":\"amibridge\"");
    put(&r, &x, &a);
    assert_int_equal(a.err, 0);
    put(&r, &y, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(wh_queues_count(r.q), 2);
    char *before_x = held(&r, "wh_x"), *before_y = held(&r, "wh_y");
    run_shut(&r);

    /* the file holds secrets: the owner's alone */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(temp_files(), 0);

    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    assert_int_equal(wh_queues_count(r.q), 2);
    char *after_x = held(&r, "wh_x"), *after_y = held(&r, "wh_y");
    assert_string_equal(after_x, before_x);
    assert_string_equal(after_y, before_y);
    assert_non_null(strstr(after_x, WHSEC));
    assert_non_null(strstr(after_y, "410 Gone"));
    assert_string_equal(wh_sub_conf(wh_queues_first(r.q))->id, "wh_x");
    free(before_x);
    free(before_y);
    free(after_x);
    free(after_y);

    /* a delete is kept too */
    del(&r, "wh_x", &a);
    assert_int_equal(a.err, 0);
    run_shut(&r);
    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    assert_int_equal(wh_queues_count(r.q), 1);
    assert_null(wh_queues_find(r.q, "wh_x"));
    assert_non_null(wh_queues_find(r.q, "wh_y"));
    run_shut(&r);
    wh_conf_free(&x);
    wh_conf_free(&y);
}

static void a_corrupt_state_file_is_refused_by_name_and_left_as_it_was(void **state)
{
    (void)state;
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"{\"version\":1,\"webhooks\":[{\"id\":\"wh_x\",\"url\":\"http://127.0", "premature end"},
        {"{\"version\":1}", "no webhooks array"},
        {"", "'[' or '{' expected"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        spill(path, bad[i].text);
        struct run r;
        run_open(&r, NULL);
        assert_int_equal(r.open_rc, -1);
        char want[700];
        snprintf(want, sizeof(want), "AMIBRIDGE_STATE_DIR: %s is not a webhooks file: ", path);
        if (strncmp(r.err, want, strlen(want)) || !strstr(r.err, bad[i].why))
            fail_msg("case %zu: '%s'", i, r.err);
        assert_int_equal(wh_queues_count(r.q), 0);
        run_shut(&r);
        /* nothing lost: the file is as it was, for a person to mend */
        char *now = slurp(path);
        assert_non_null(now);
        assert_string_equal(now, bad[i].text);
        free(now);
    }
}

static void an_entry_that_breaks_the_rules_is_skipped_and_kept_in_the_file(void **state)
{
    (void)state;
    const char *text =
        "{\"version\":1,\"webhooks\":["
        "{\"id\":\"wh_ok\",\"url\":\"http://127.0.0.1:9/ok\",\"events\":[\"*\"],"
        "\"secret\":\"" SECRET "\",\"enabled\":true},"
        "{\"id\":\"wh_ftp\",\"url\":\"ftp://127.0.0.1/x\",\"events\":[\"*\"],"
        "\"secret\":\"" SECRET "\",\"enabled\":true},"
        "{\"id\":\"wh_nosecret\",\"url\":\"http://127.0.0.1:9/n\",\"events\":[\"*\"]},"
        "{\"id\":\"wh_ok\",\"url\":\"http://127.0.0.1:9/again\",\"events\":[\"*\"],"
        "\"secret\":\"" SECRET "\",\"enabled\":true}]}";
    spill(path, text);
    struct run r;
    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    assert_int_equal(wh_queues_count(r.q), 1);
    struct wh_sub *s = wh_queues_find(r.q, "wh_ok");
    assert_non_null(s);
    assert_string_equal(wh_sub_conf(s)->url, "http://127.0.0.1:9/ok");
    run_shut(&r);
    char *now = slurp(path);
    assert_string_equal(now, text);
    free(now);
}

static void a_write_that_fails_changes_nothing_held(void **state)
{
    (void)state;
    struct run r;
    struct answer a;
    struct wh_conf x, x2, y;
    conf(&x, "wh_x", NULL);
    conf(&x2, "wh_x", "\"description\":\"changed\"");
    conf(&y, "wh_y", NULL);
    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    put(&r, &x, &a);
    assert_int_equal(a.err, 0);
    /* the file cannot be replaced any more: a directory took its name */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);

    put(&r, &y, &a);
    assert_int_equal(a.err, -EAGAIN);
    assert_string_equal(a.detail, "the state file could not be written (see the log)");
    assert_null(wh_queues_find(r.q, "wh_y"));
    put(&r, &x2, &a);
    assert_int_equal(a.err, -EAGAIN);
    assert_null(wh_sub_conf(wh_queues_find(r.q, "wh_x"))->description);
    assert_int_equal(wh_queues_count(r.q), 1);
    /* a delete goes here but says the file still has it */
    del(&r, "wh_x", &a);
    assert_int_equal(a.err, -EAGAIN);
    assert_string_equal(a.detail, "removed until restart, but the state file could not be written");
    assert_int_equal(wh_queues_count(r.q), 0);
    assert_int_equal(temp_files(), 0);
    run_shut(&r);
    wh_conf_free(&x);
    wh_conf_free(&x2);
    wh_conf_free(&y);
}

static void temp_files_a_crash_left_are_removed_at_open(void **state)
{
    (void)state;
    char tmp[700];
    snprintf(tmp, sizeof(tmp), "%s.tmp.99999", path);
    spill(tmp, "{\"version\":1,\"webhooks\":[");
    assert_int_equal(temp_files(), 1);
    struct run r;
    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    assert_int_equal(temp_files(), 0);
    assert_int_equal(access(path, F_OK), -1); /* none written until a change */
    run_shut(&r);
}

/* --- static subscriptions ------------------------------------------------------------- */

static void static_subscriptions_are_held_and_never_written_to_the_state_file(void **state)
{
    (void)state;
    cfg.webhooks_json = strdup("[{\"id\":\"crm\",\"url\":\"http://127.0.0.1:9/crm\","
                               "\"events\":[\"Hangup\"],\"secret\":\"" SECRET "\"}]");
    struct run r;
    struct answer a;
    struct wh_conf y;
    run_open(&r, NULL);
    assert_int_equal(r.open_rc, 0);
    struct wh_sub *s = wh_queues_find(r.q, "crm");
    assert_non_null(s);
    assert_true(wh_sub_conf(s)->is_static);
    assert_true(wh_sub_conf(s)->enabled); /* enabled unless said */
    conf(&y, "wh_y", NULL);
    put(&r, &y, &a);
    assert_int_equal(a.err, 0);
    run_shut(&r);
    char *text = slurp(path);
    assert_non_null(strstr(text, "wh_y"));
    assert_null(strstr(text, "crm"));
    free(text);
    wh_conf_free(&y);
}

static void bad_static_subscriptions_stop_the_start_naming_the_entry(void **state)
{
    (void)state;
    static const struct {
        const char *json, *err;
    } bad[] = {
        {"[{\"id\":\"a\",\"url\":\"http://127.0.0.1:9/a\",\"events\":[\"*\"],\"secret\":\"" SECRET
         "\"},{\"id\":\"b\",\"url\":\"http://127.0.0.1:9/b\",\"events\":[\"*\"],"
         "\"secret\":\"whsec_not-base64!!!!!!!!!!!!!!!!!\"}]",
         "config file (config file): webhooks[1].secret: a whsec_ secret must be whsec_ and the "
         "padded base64 of 24 to 64 bytes"},
        {"[{\"id\":\"a\",\"url\":\"http://127.0.0.1:9/a\",\"events\":[\"*\"],\"secret\":\"" SECRET
         "\"},{\"id\":\"a\",\"url\":\"http://127.0.0.1:9/"
         "b\",\"events\":[\"*\"],\"secret\":\"" SECRET "\"}]",
         "config file (config file): webhooks[1].id: 'a' is used twice"},
        {"[{\"id\":\"a\",\"url\":\"http://127.0.0.1:9/a\",\"events\":[\"*\"],\"secret\":\"" SECRET
         "\",\"colour\":\"red\"}]",
         "config file (config file): webhooks[0].colour: is not a member of a webhook "
         "subscription"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        free(cfg.webhooks_json);
        cfg.webhooks_json = strdup(bad[i].json);
        struct run r;
        run_open(&r, NULL);
        assert_int_equal(r.open_rc, -1);
        assert_string_equal(r.err, bad[i].err);
        run_shut(&r);
    }
}

/* --- Redis ----------------------------------------------------------------------------- */

static void with_redis_a_change_reaches_another_process_within_a_poll(void **state)
{
    (void)state;
    struct run a, b;
    struct answer ans;
    struct wh_conf x;
    run_open(&a, redis.url);
    run_open(&b, redis.url);
    assert_int_equal(a.open_rc, 0);
    assert_int_equal(b.open_rc, 0);
    conf(&x, "wh_x", "\"description\":\"one\"");
    put(&a, &x, &ans);
    assert_int_equal(ans.err, 0);
    /* stored whole, secret included, and the version bumped */
    char *v = redis_do("HGET", HASH, "wh_x", NULL);
    assert_non_null(strstr(v, SECRET));
    free(v);
    v = redis_do("GET", HASH ":version", NULL, NULL);
    assert_string_equal(v, "1");
    free(v);
    /* neither the state file */
    assert_int_equal(access(path, F_OK), -1);
    RUN_UNTIL(wh_queues_find(b.q, "wh_x") && wh_queues_find(a.q, "wh_x"), POLL_MS);
    assert_non_null(wh_queues_find(b.q, "wh_x"));
    assert_non_null(wh_queues_find(a.q, "wh_x"));
    char *in_a = held(&a, "wh_x"), *in_b = held(&b, "wh_x");
    assert_string_equal(in_b, in_a);
    free(in_a);
    free(in_b);

    /* a change, then a delete that takes the delivery list with it */
    wh_conf_free(&x);
    conf(&x, "wh_x", "\"description\":\"two\"");
    put(&b, &x, &ans);
    assert_int_equal(ans.err, 0);
    RUN_UNTIL(!strcmp(wh_sub_conf(wh_queues_find(a.q, "wh_x"))->description, "two"), POLL_MS);
    assert_string_equal(wh_sub_conf(wh_queues_find(a.q, "wh_x"))->description, "two");
    free(redis_do("RPUSH", HASH ":queue:wh_x", "{}", NULL));
    del(&a, "wh_x", &ans);
    assert_int_equal(ans.err, 0);
    RUN_UNTIL(!wh_queues_find(b.q, "wh_x") && !wh_queues_find(a.q, "wh_x"), POLL_MS);
    assert_null(wh_queues_find(b.q, "wh_x"));
    assert_null(wh_queues_find(a.q, "wh_x"));
    v = redis_do("EXISTS", HASH ":queue:wh_x", NULL, NULL);
    assert_string_equal(v, "0");
    free(v);
    v = redis_do("HEXISTS", HASH, "wh_x", NULL);
    assert_string_equal(v, "0");
    free(v);
    run_shut(&a);
    run_shut(&b);
    wh_conf_free(&x);
}

static void entries_in_redis_that_break_the_rules_are_skipped_and_left_there(void **state)
{
    (void)state;
    free(redis_do("HSET", HASH, "wh_ok",
                  "{\"id\":\"wh_ok\",\"url\":\"http://127.0.0.1:9/ok\",\"events\":[\"*\"],"
                  "\"secret\":\"" SECRET "\",\"enabled\":true}"));
    free(redis_do("HSET", HASH, "wh_json", "{not json"));
    free(redis_do("HSET", HASH, "wh_other",
                  "{\"id\":\"wh_else\",\"url\":\"http://127.0.0.1:9/ok\",\"events\":[\"*\"],"
                  "\"secret\":\"" SECRET "\",\"enabled\":true}"));
    free(redis_do("HSET", HASH, "wh_ftp",
                  "{\"id\":\"wh_ftp\",\"url\":\"ftp://127.0.0.1/x\",\"events\":[\"*\"],"
                  "\"secret\":\"" SECRET "\",\"enabled\":true}"));
    free(redis_do("INCR", HASH ":version", NULL, NULL));
    struct run r;
    run_open(&r, redis.url);
    assert_int_equal(r.open_rc, 0);
    RUN_UNTIL(wh_queues_count(r.q) > 0, POLL_MS);
    assert_int_equal(wh_queues_count(r.q), 1);
    assert_non_null(wh_queues_find(r.q, "wh_ok"));
    char *v = redis_do("HLEN", HASH, NULL, NULL);
    assert_string_equal(v, "4");
    free(v);
    run_shut(&r);
}

static void a_hash_redis_lost_is_written_back_from_what_is_held(void **state)
{
    (void)state;
    struct run r;
    struct answer ans;
    struct wh_conf x;
    run_open(&r, redis.url);
    conf(&x, "wh_x", NULL);
    put(&r, &x, &ans);
    assert_int_equal(ans.err, 0);
    RUN_UNTIL(wh_queues_find(r.q, "wh_x"), POLL_MS);
    assert_non_null(wh_queues_find(r.q, "wh_x"));
    /* Redis restarted empty */
    const char *flush[] = {"FLUSHALL", NULL};
    free(redis_cli(&redis, flush));
    char *v = NULL;
    for (int i = 0; i < 3 * POLL_MS / 100; i++) {
        RUN_UNTIL(0, 100);
        free(v);
        v = redis_do("HGET", HASH, "wh_x", NULL);
        if (strstr(v, SECRET))
            break;
    }
    assert_non_null(strstr(v, SECRET));
    free(v);
    /* and it is still held here after the next poll */
    RUN_UNTIL(0, WEBHOOKS_POLL_MS + 100);
    assert_non_null(wh_queues_find(r.q, "wh_x"));
    run_shut(&r);
    wh_conf_free(&x);
}

static void a_change_while_redis_is_down_is_refused_to_be_tried_again(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", proc_free_port());
    struct run r;
    struct answer ans;
    struct wh_conf x;
    run_open(&r, url);
    assert_int_equal(r.open_rc, 0);
    conf(&x, "wh_x", NULL);
    put(&r, &x, &ans);
    assert_int_equal(ans.err, -EAGAIN);
    assert_string_equal(ans.detail, "Redis is not reachable; try again when it is back");
    del(&r, "wh_x", &ans);
    assert_int_equal(ans.err, -EAGAIN);
    assert_int_equal(wh_queues_count(r.q), 0);
    run_shut(&r);
    wh_conf_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_state_file_keeps_every_member_across_a_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_corrupt_state_file_is_refused_by_name_and_left_as_it_was,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            an_entry_that_breaks_the_rules_is_skipped_and_kept_in_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(a_write_that_fails_changes_nothing_held, setup, teardown),
        cmocka_unit_test_setup_teardown(temp_files_a_crash_left_are_removed_at_open, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            static_subscriptions_are_held_and_never_written_to_the_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_static_subscriptions_stop_the_start_naming_the_entry,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(with_redis_a_change_reaches_another_process_within_a_poll,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            entries_in_redis_that_break_the_rules_are_skipped_and_left_there, setup, teardown),
        cmocka_unit_test_setup_teardown(a_hash_redis_lost_is_written_back_from_what_is_held, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_change_while_redis_is_down_is_refused_to_be_tried_again,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
