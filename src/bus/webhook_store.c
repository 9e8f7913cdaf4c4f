#include "bus/webhook_store.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

struct wh_store {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct bus_redis *redis;
    struct wh_queues *q;
    const struct netlist_net *allow;
    size_t nallow;
    wh_store_done_fn done;
    uv_timer_t poll_timer;
    char version[32]; /* of the Redis store when last read; "" before */
    int polling;
    int closing;
    int writes;     /* EXECs on their way whose answer someone waits for */
    int timer_open; /* until wh_store_close() has closed it */
    void (*close_done)(void *);
    void *close_arg;
    char hash_key[128], version_key[128];
    char state_path[PATH_MAX];
};

static void queue_key(const struct wh_store *st, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s:webhooks:queue:%s", st->cfg->redis_prefix, id);
}

static void store_maybe_free(struct wh_store *st);

static void done(struct wh_store *st, void *ud, int err, const char *detail)
{
    if (ud)
        st->done(ud, err, detail);
}

struct wh_store *wh_store_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                              struct wh_queues *q, const struct netlist_net *allow, size_t nallow,
                              wh_store_done_fn done_cb)
{
    struct wh_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->loop = loop;
    st->cfg = c;
    st->redis = redis;
    st->q = q;
    st->allow = allow;
    st->nallow = nallow;
    st->done = done_cb;
    snprintf(st->hash_key, sizeof(st->hash_key), "%s:webhooks", c->redis_prefix);
    snprintf(st->version_key, sizeof(st->version_key), "%s:webhooks:version", c->redis_prefix);
    if (c->state_dir)
        snprintf(st->state_path, sizeof(st->state_path), "%s/%s", c->state_dir,
                 WEBHOOKS_STATE_FILE);
    uv_timer_init(loop, &st->poll_timer);
    st->poll_timer.data = st;
    st->timer_open = 1;
    return st;
}

/* --- the state file ---------------------------------------------------------------- */

static int state_write(struct wh_store *st, char *err, size_t errlen)
{
    json_t *arr = json_array(), *root = NULL;
    int rc = -1, fd = -1;
    char tmp[PATH_MAX + 32], *text = NULL;
    snprintf(err, errlen, "out of memory");
    for (struct wh_sub *s = wh_queues_first(st->q); arr && s; s = wh_sub_next(s)) {
        const struct wh_conf *c = wh_sub_conf(s);
        if (!c->is_static && json_array_append_new(arr, wh_conf_json(c, 1)))
            goto out;
    }
    root = arr ? json_pack("{s:i,s:o}", "version", 1, "webhooks", arr) : NULL;
    arr = NULL;
    if (!root || !(text = json_dumps(root, JSON_INDENT(2)))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", st->state_path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text), off = 0;
    while (fd >= 0 && off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (fd < 0 || off < len || fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
        unlink(tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, st->state_path) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* the rename itself must reach the disk */
    int dfd = open(st->cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
    json_decref(arr);
    json_decref(root);
    return rc;
}

static int state_load(struct wh_store *st, char *err, size_t errlen)
{
    json_error_t je;
    struct stat sb;
    if (stat(st->cfg->state_dir, &sb) != 0 && mkdir(st->cfg->state_dir, 0700) != 0)
        return snprintf(err, errlen, "AMIBRIDGE_STATE_DIR: cannot create '%s': %s",
                        st->cfg->state_dir, strerror(errno)),
               -1;
    if (access(st->cfg->state_dir, W_OK) != 0)
        return snprintf(err, errlen, "AMIBRIDGE_STATE_DIR: '%s' is not writable: %s",
                        st->cfg->state_dir, strerror(errno)),
               -1;
    /* what a crash between write and rename left behind */
    char pattern[PATH_MAX + 16];
    glob_t g;
    snprintf(pattern, sizeof(pattern), "%s.tmp.*", st->state_path);
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
    if (access(st->state_path, F_OK) != 0)
        return 0;
    json_t *root = json_load_file(st->state_path, 0, &je);
    json_t *arr = json_object_get(root, "webhooks");
    if (!root || !json_is_array(arr)) {
        snprintf(err, errlen, "AMIBRIDGE_STATE_DIR: %s is not a webhooks file: %s", st->state_path,
                 root ? "no webhooks array" : je.text);
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *o;
    json_array_foreach (arr, i, o) {
        struct wh_conf c = {0};
        struct wh_problem pb = {{0}, {0}};
        json_t *copy = json_deep_copy(o);
        json_object_del(copy, "static");
        int rc = wh_conf_apply(&c, copy, WH_STORED, st->allow, st->nallow, &pb);
        json_decref(copy);
        if (rc || wh_queues_find(st->q, c.id)) {
            log_warn("webhook subscription in the state file skipped", "{s:s,s:s,s:s}", "file",
                     st->state_path, "field", rc ? pb.field : "id", "detail",
                     rc ? pb.detail : "the id is taken by a static subscription");
            wh_conf_free(&c);
            continue;
        }
        if (!wh_sub_add(st->q, &c, 0)) {
            wh_conf_free(&c);
            json_decref(root);
            return snprintf(err, errlen, "out of memory"), -1;
        }
    }
    json_decref(root);
    return 0;
}

/* --- the config file --------------------------------------------------------------- */

static int static_subs(struct wh_store *st, char *err, size_t errlen)
{
    const char *file = st->cfg->config_path ? st->cfg->config_path : "(config file)";
    json_error_t je;
    json_t *arr = json_loads(st->cfg->webhooks_json, 0, &je);
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach (arr, i, o) {
        struct wh_conf c = {0};
        struct wh_problem pb = {{0}, {0}};
        json_t *copy = json_is_object(o) ? json_deep_copy(o) : json_incref(o);
        if (json_is_object(copy) && !json_object_get(copy, "enabled"))
            json_object_set_new(copy, "enabled", json_true());
        int r = wh_conf_apply(&c, copy, WH_STORED, st->allow, st->nallow, &pb);
        json_decref(copy);
        if (r == 0 && wh_queues_find(st->q, c.id)) {
            r = -1;
            snprintf(pb.field, sizeof(pb.field), "id");
            snprintf(pb.detail, sizeof(pb.detail), "'%s' is used twice", c.id);
        }
        /* the store takes any secret older versions took; a file a person
         * writes gets the API's check of the whsec_ form */
        for (size_t k = 0; r == 0 && k <= c.nprev; k++) {
            const char *sec = k == 0 ? c.secret : c.prev[k - 1].secret;
            if (!strncmp(sec, WH_SECRET_PREFIX, strlen(WH_SECRET_PREFIX)) &&
                !wh_secret_is_standard(sec)) {
                r = -1;
                if (k == 0)
                    snprintf(pb.field, sizeof(pb.field), "secret");
                else
                    snprintf(pb.field, sizeof(pb.field), "previous_secrets[%zu].secret", k - 1);
                snprintf(pb.detail, sizeof(pb.detail),
                         "a whsec_ secret must be whsec_ and the padded base64 of %d to %d bytes",
                         WH_KEY_MIN, WH_KEY_MAX);
            }
        }
        if (r) {
            snprintf(err, errlen, "config file %s: webhooks[%zu].%s: %s", file, i, pb.field,
                     r == -1 ? pb.detail : "out of memory");
            wh_conf_free(&c);
            rc = -1;
            break;
        }
        c.is_static = 1;
        if (!wh_sub_add(st->q, &c, 1)) {
            wh_conf_free(&c);
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
    }
    json_decref(arr);
    size_t n = wh_queues_count(st->q);
    if (rc == 0 && n > (size_t)st->cfg->webhook_max_subscriptions) {
        snprintf(err, errlen,
                 "config file %s: webhooks: %d subscriptions, more than "
                 "AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS (%d)",
                 file, (int)n, st->cfg->webhook_max_subscriptions);
        rc = -1;
    }
    return rc;
}

/* --- changes ----------------------------------------------------------------------- */

#define REDIS_DOWN "Redis is not reachable; try again when it is back"

/* Who waits for the EXEC of a change. */
struct wait {
    struct wh_store *st;
    void *ud;
};

static void on_stored(void *arg, const redisReply *reply)
{
    struct wait *wt = arg;
    struct wh_store *st = wt->st;
    char detail[320];
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        snprintf(detail, sizeof(detail), "Redis did not take the change: %s",
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "connection lost");
        done(st, wt->ud, -EAGAIN, detail);
    } else {
        done(st, wt->ud, 0, NULL);
    }
    free(wt);
    st->writes--;
    store_maybe_free(st);
}

/* The EXEC that ends a change, heard by on_stored when someone waits. 0 or
 * what bus_redis_command() returned (then nothing is heard). */
static int exec_change(struct wh_store *st, void *ud)
{
    struct wait *wt = NULL;
    if (ud) {
        if (!(wt = malloc(sizeof(*wt))))
            return -ENOMEM;
        wt->st = st;
        wt->ud = ud;
    }
    int rc = bus_redis_command(st->redis, wt ? on_stored : NULL, wt, "EXEC");
    if (rc)
        free(wt);
    else if (wt)
        st->writes++;
    return rc;
}

void wh_store_put(struct wh_store *st, const struct wh_conf *c, void *ud)
{
    char err[PATH_MAX + 64];
    if (st->redis) {
        json_t *o = wh_conf_json(c, 1);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        int rc = text ? 0 : -ENOMEM;
        if (!rc && (rc = bus_redis_command(st->redis, NULL, NULL, "MULTI")) == 0) {
            bus_redis_command(st->redis, NULL, NULL, "HSET %s %s %s", st->hash_key, c->id, text);
            bus_redis_command(st->redis, NULL, NULL, "INCR %s", st->version_key);
            rc = exec_change(st, ud);
        }
        if (text) {
            explicit_bzero(text, strlen(text));
            free(text);
        }
        if (rc)
            done(st, ud, -EAGAIN, REDIS_DOWN);
        return;
    }
    if (!ud) {
        if (st->cfg->state_dir && state_write(st, err, sizeof(err)))
            log_error("cannot save webhook subscriptions", "{s:s}", "error", err);
        return;
    }
    /* file or memory: apply here first, write, and undo when the write fails */
    if (!st->cfg->state_dir) {
        done(st, ud, 0, NULL);
        return;
    }
    struct wh_sub *s = wh_queues_find(st->q, c->id);
    struct wh_conf old;
    int had = s != NULL;
    if (had && wh_conf_copy(&old, wh_sub_conf(s))) {
        done(st, ud, -ENOMEM, "out of memory");
        return;
    }
    struct wh_conf next;
    if (wh_conf_copy(&next, c)) {
        if (had)
            wh_conf_free(&old);
        done(st, ud, -ENOMEM, "out of memory");
        return;
    }
    if (had)
        wh_sub_update(s, &next);
    else
        s = wh_sub_add(st->q, &next, 0);
    wh_conf_free(&next);
    if (!s || state_write(st, err, sizeof(err))) {
        if (s && had)
            wh_sub_update(s, &old);
        else if (s)
            wh_sub_remove(s, 0);
        if (had)
            wh_conf_free(&old);
        log_error("cannot save webhook subscriptions", "{s:s}", "error", s ? err : "out of memory");
        done(st, ud, -EAGAIN, "the state file could not be written (see the log)");
        return;
    }
    if (had)
        wh_conf_free(&old);
    done(st, ud, 0, NULL);
}

void wh_store_del(struct wh_store *st, const char *id, void *ud)
{
    char err[PATH_MAX + 64];
    if (st->redis) {
        char key[256];
        queue_key(st, id, key, sizeof(key));
        int rc = bus_redis_command(st->redis, NULL, NULL, "MULTI");
        if (rc == 0) {
            bus_redis_command(st->redis, NULL, NULL, "HDEL %s %s", st->hash_key, id);
            bus_redis_command(st->redis, NULL, NULL, "DEL %s", key);
            bus_redis_command(st->redis, NULL, NULL, "INCR %s", st->version_key);
            rc = exec_change(st, ud);
        }
        if (rc)
            done(st, ud, -EAGAIN, REDIS_DOWN);
        return;
    }
    struct wh_sub *s = wh_queues_find(st->q, id);
    if (s)
        wh_sub_remove(s, 0);
    if (st->cfg->state_dir && state_write(st, err, sizeof(err))) {
        /* the subscription is gone here but still in the file: say so */
        log_error("cannot save webhook subscriptions", "{s:s}", "error", err);
        done(st, ud, -EAGAIN, "removed until restart, but the state file could not be written");
        return;
    }
    done(st, ud, 0, NULL);
}

/* --- Redis: the hash and its version ----------------------------------------------- */

/* Make what is held here match the Redis hash. */
static void reconcile(struct wh_store *st, const redisReply *reply)
{
    size_t n = reply->elements / 2;
    char **seen = calloc(n + 1, sizeof(*seen));
    size_t nseen = 0;
    if (!seen)
        return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(v->str, v->len, 0, NULL);
        if (o)
            json_object_del(o, "static");
        struct wh_conf c = {0};
        struct wh_problem pb = {{0}, {0}};
        if (!o || wh_conf_apply(&c, o, WH_STORED, st->allow, st->nallow, &pb) ||
            strcmp(c.id, k->str)) {
            log_warn("webhook subscription in Redis skipped", "{s:s,s:s,s:s}", "id", k->str,
                     "field", pb.field, "detail", o ? pb.detail : "not JSON");
            json_decref(o);
            wh_conf_free(&c);
            continue;
        }
        json_decref(o);
        struct wh_sub *s = wh_queues_find(st->q, c.id);
        if (s && wh_sub_conf(s)->is_static) {
            wh_conf_free(&c);
            continue;
        }
        seen[nseen++] = strdup(c.id);
        if (s) {
            wh_sub_update(s, &c);
        } else if (!wh_sub_add(st->q, &c, 1)) {
            wh_conf_free(&c);
        }
        wh_conf_free(&c);
    }
    for (struct wh_sub *s = wh_queues_first(st->q), *next; s; s = next) {
        next = wh_sub_next(s);
        const struct wh_conf *c = wh_sub_conf(s);
        int found = c->is_static;
        for (size_t i = 0; i < nseen && !found; i++)
            found = seen[i] && !strcmp(seen[i], c->id);
        if (!found)
            wh_sub_remove(s, 0);
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);
    free(seen);
}

static void on_hash(void *ud, const redisReply *reply)
{
    struct wh_store *st = ud;
    st->polling = 0;
    if (st->closing) {
        store_maybe_free(st);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        st->version[0] = '\0'; /* read it all again next time */
        return;
    }
    reconcile(st, reply);
}

static void on_version(void *ud, const redisReply *reply)
{
    struct wh_store *st = ud;
    char v[sizeof(st->version)];
    if (st->closing || !reply) {
        st->polling = 0;
        store_maybe_free(st);
        return;
    }
    snprintf(v, sizeof(v), "v%s", reply->type == REDIS_REPLY_STRING ? reply->str : "0");
    if (!strcmp(v, st->version)) {
        st->polling = 0;
        return;
    }
    /* every change bumps the version, so a version that vanished after we
     * saw one means Redis lost its data (restarted without persistence):
     * write back what is held here rather than forget every subscription */
    if (reply->type == REDIS_REPLY_NIL && st->version[0] && strcmp(st->version, "v0")) {
        size_t n = 0;
        for (struct wh_sub *s = wh_queues_first(st->q); s; s = wh_sub_next(s))
            if (!wh_sub_conf(s)->is_static) {
                wh_store_put(st, wh_sub_conf(s), NULL);
                n++;
            }
        log_warn("Redis lost the webhook subscriptions (restarted empty?): writing back the ones "
                 "held here",
                 "{s:I}", "subscriptions", (json_int_t)n);
        st->version[0] = '\0';
        st->polling = 0;
        return;
    }
    snprintf(st->version, sizeof(st->version), "%s", v);
    if (bus_redis_command(st->redis, on_hash, st, "HGETALL %s", st->hash_key) != 0) {
        st->version[0] = '\0';
        st->polling = 0;
    }
}

void wh_store_poll(struct wh_store *st)
{
    if (st->polling || st->closing || !bus_redis_up(st->redis))
        return;
    if (bus_redis_command(st->redis, on_version, st, "GET %s", st->version_key) == 0)
        st->polling = 1;
}

static void on_poll_timer(uv_timer_t *t)
{
    wh_store_poll(t->data);
}

/* --- life -------------------------------------------------------------------------- */

int wh_store_open(struct wh_store *st, char *err, size_t errlen)
{
    if ((st->cfg->webhooks_json && static_subs(st, err, errlen)) ||
        (!st->redis && st->cfg->state_dir && state_load(st, err, errlen)))
        return -1;
    if (st->redis)
        uv_timer_start(&st->poll_timer, on_poll_timer, WEBHOOKS_POLL_MS, WEBHOOKS_POLL_MS);
    else if (!st->cfg->state_dir)
        log_info("webhook subscriptions made through the API are kept in memory only (set "
                 "AMIBRIDGE_STATE_DIR or AMIBRIDGE_REDIS_URL to keep them)",
                 NULL);
    return 0;
}

/* Closing, the timer closed, no answer from Redis to come: it goes. */
static void store_maybe_free(struct wh_store *st)
{
    if (!st->closing || st->timer_open || st->polling || st->writes > 0)
        return;
    void (*fin)(void *) = st->close_done;
    void *arg = st->close_arg;
    free(st);
    if (fin)
        fin(arg);
}

static void timer_closed(uv_handle_t *h)
{
    struct wh_store *st = h->data;
    st->timer_open = 0;
    store_maybe_free(st);
}

void wh_store_close(struct wh_store *st, void (*fin)(void *arg), void *arg)
{
    st->closing = 1;
    st->close_done = fin;
    st->close_arg = arg;
    uv_timer_stop(&st->poll_timer);
    uv_close((uv_handle_t *)&st->poll_timer, timer_closed);
}
