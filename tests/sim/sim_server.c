/* sim_server: the listener, the sessions and everything that touches bytes.
 *
 * Input is split into lines the way manager.c's get_input() and
 * do_message() do it (a 1025-byte buffer: a longer line is discarded and its
 * message answered "Failed to parse message: line too long"; CRLF or bare
 * LF; a message of more than 128 lines is answered "Too many lines in
 * message or allocation failure"), then each kept "Key: value" line is
 * fed to the project's AMI parser, which assembles the action. Actions of one
 * session run strictly in order; a blocking one (sync Originate, the delay
 * after a failed login) holds the queue.
 *
 * Output is appended to a per-session buffer and written once per loop
 * iteration (uv_prepare and uv_check both flush), so a burst of pipelined
 * Pings costs one write.
 */
#include "sim/sim.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIM_READ_CHUNK       65536
#define SIM_QUEUE_MAX        4096   /* pending actions before reading pauses */
#define SIM_LINGER_MS        2000   /* wait for the peer's FIN after ours */
#define SIM_SWEEP_MS         10     /* auth timeout and write timeout check period */
#define SIM_FLOOD_TICK_MS    1      /* flood timer period */
#define SIM_FLOOD_MAX_BURST  100000 /* events per tick at most */
#define SIM_RESTART_CLOSE_MS 1100.0 /* 08a: connections closed 1.1 s after the command */
#define SIM_STOP_CLOSE_MS    10.0   /* 08b: closed 0.01 s after the command */
#define SIM_EXIT_GRACE_MS    1500   /* wait this long for sessions to close on exit */
#define SIM_GARBAGE_HUGE     70000  /* bytes of the over-long garbage line */

struct sim_filter {
    regex_t re;
    int exclude;
    struct sim_filter *next;
};

enum sim_sess_state {
    SESS_OPEN = 0,
    SESS_LINGER, /* our FIN sent, draining the peer */
    SESS_CLOSING,
};

struct sim_session {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    uv_write_t wreq;
    struct sim *sim;
    struct sim_session *prev, *next; /* sim->sessions */
    struct sim_session *dirty_next;
    int dirty;
    int refs;
    int handles; /* handles not yet closed */
    enum sim_sess_state state;
    int counted_unauth;

    /* input */
    char inbuf[SIM_MAX_LINE + 1];
    size_t inlen;
    int line_too_long; /* this message had a discarded line */
    int hdr_loss;      /* this message had more lines than manager.c keeps */
    int hdrs;          /* lines kept in this message */
    int fed;           /* lines given to the parser in this message */
    struct ami_parser *parser;
    struct strbuf held; /* bytes read while the queue was full */
    int reading;
    int stalled;
    int peer_eof;
    long actions_read;

    /* action queue */
    struct ami_msg **queue;
    size_t qhead, qlen, qcap;
    int blocked;
    int processing;
    int delayed_current; /* the head action already waited delay_ms */
    void (*timer_cb)(struct sim_session *);

    /* output */
    struct strbuf out;
    struct strbuf inflight;
    int writing;
    size_t stall_queue; /* bytes libuv still had to write at the last sweep */
    uint64_t writes_done, stall_writes;
    uint64_t stall_since; /* when that stopped shrinking */
    int close_after_flush;
    long msgs_sent;
    int garbage_done;
    long drop_after;
    long garbage_after;
    long stall_after;

    /* identity */
    struct sim_auth auth;
    struct sim_filter *filters;
    struct timeval start_tv;
    uint64_t start_ms;
    char remote[64];
    int remote_port;
};

struct sim_action_count {
    char name[48];
    uint64_t count;
};

struct sim {
    uv_loop_t *loop;
    struct sim_opts opt;
    struct sim_stats stats;
    uv_tcp_t listener;
    int listener_open;
    int port;
    struct sim_session *sessions;
    size_t nsessions;
    long unauth;
    struct sim_session *dirty;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_timer_t sweep;
    uv_timer_t flood;
    uv_timer_t restart_auto;
    uv_timer_t restart_close;
    uv_timer_t relisten;
    uv_timer_t exit_timer;
    uv_signal_t sig_term, sig_int, sig_usr1;
    int handles_open;
    struct sim_user *users;
    size_t nusers;
    struct sim_action_count *acounts;
    size_t nacounts;
    struct sim_pbx *pbx;
    struct timeval start_tv;
    uint64_t restart_cmd_ms;
    int restarting;
    int stopping;
    int record_fd;
    uint64_t flood_start_ms;
    uint64_t flood_emitted;
    uint64_t flood_seq;
};

static void session_close(struct sim_session *s);
static void session_process(struct sim_session *s);
static void on_exit_timer(uv_timer_t *t);
static void session_mark_dirty(struct sim_session *s);
static void session_start_reading(struct sim_session *s);

/* ---- small helpers ------------------------------------------------------- */

void sim_log(const struct sim *sim, const char *fmt, ...)
{
    if (sim->opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("ami-sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

uv_loop_t *sim_loop(struct sim *sim)
{
    return sim->loop;
}

struct sim_opts *sim_opts(struct sim *sim)
{
    return &sim->opt;
}

struct sim_stats *sim_stats(struct sim *sim)
{
    return &sim->stats;
}

struct sim_pbx *sim_pbx(struct sim *sim)
{
    return sim->pbx;
}

int sim_port(const struct sim *sim)
{
    return sim->port;
}

size_t sim_session_count(const struct sim *sim)
{
    return sim->nsessions;
}

struct timeval sim_start_tv(const struct sim *sim)
{
    return sim->start_tv;
}

long sim_uptime(const struct sim *sim)
{
    struct timeval now = sim_now_tv();
    return (long)(now.tv_sec - sim->start_tv.tv_sec);
}

uint64_t sim_scaled_ms(const struct sim *sim, double ms)
{
    double v = ms * sim->opt.time_scale;
    return v <= 0 ? 0 : (uint64_t)(v + 0.5);
}

/* ---- users ------------------------------------------------------------------ */

/* The two users of the captures' manager.conf. */
static int users_builtin(struct sim *sim)
{
    sim->users = calloc(2, sizeof(*sim->users));
    if (!sim->users)
        return -ENOMEM;
    snprintf(sim->users[0].name, SIM_NAME_MAX, "bridge");
    snprintf(sim->users[0].secret, SIM_SECRET_MAX, "bridgesecret");
    sim->users[0].readperm = SIM_EV_ALL;
    sim->users[0].writeperm = SIM_EV_ALL;
    snprintf(sim->users[1].name, SIM_NAME_MAX, "viewer");
    snprintf(sim->users[1].secret, SIM_SECRET_MAX, "viewersecret");
    sim->users[1].readperm = SIM_EV_CALL | SIM_EV_AGENT | SIM_EV_REPORTING;
    sim->users[1].writeperm = 0;
    sim->nusers = 2;
    return 0;
}

/* `username:secret:readclasses:writeclasses` lines, '#' comments. */
static int users_load(struct sim *sim, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char line[1024];
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *fields[4] = {0};
        for (int i = 0; i < 4; i++) {
            fields[i] = p;
            char *c = (i < 3) ? strchr(p, ':') : NULL;
            if (c) {
                *c = '\0';
                p = c + 1;
            } else if (i < 3) {
                p = p + strlen(p);
            }
        }
        struct sim_user *nu = realloc(sim->users, (sim->nusers + 1) * sizeof(*nu));
        if (!nu) {
            rc = -ENOMEM;
            goto out;
        }
        sim->users = nu;
        struct sim_user *u = &sim->users[sim->nusers++];
        memset(u, 0, sizeof(*u));
        snprintf(u->name, sizeof(u->name), "%s", fields[0]);
        snprintf(u->secret, sizeof(u->secret), "%s", fields[1] ? fields[1] : "");
        u->readperm = sim_parse_classes(fields[2] ? fields[2] : "");
        u->writeperm = sim_parse_classes(fields[3] ? fields[3] : "");
    }
out:
    fclose(f);
    return rc;
}

const struct sim_user *sim_user_find(const struct sim *sim, const char *name)
{
    for (size_t i = 0; i < sim->nusers; i++)
        if (!strcasecmp(sim->users[i].name, name))
            return &sim->users[i];
    return NULL;
}

/* ---- action counters ------------------------------------------------------ */

void sim_count_action(struct sim *sim, const char *name)
{
    for (size_t i = 0; i < sim->nacounts; i++) {
        if (!strcmp(sim->acounts[i].name, name)) {
            sim->acounts[i].count++;
            return;
        }
    }
    struct sim_action_count *n = realloc(sim->acounts, (sim->nacounts + 1) * sizeof(*n));
    if (!n)
        return;
    sim->acounts = n;
    snprintf(n[sim->nacounts].name, sizeof(n[0].name), "%s", name);
    n[sim->nacounts].count = 1;
    sim->nacounts++;
}

void sim_stats_actions(const struct sim *sim, struct strbuf *out)
{
    for (size_t i = 0; i < sim->nacounts; i++)
        strbuf_printf(out, "Action-%s: %llu\r\n", sim->acounts[i].name,
                      (unsigned long long)sim->acounts[i].count);
}

/* ---- output ------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status);

/* Hand the accumulated output to the kernel; one write in flight at most. */
static void session_flush(struct sim_session *s)
{
    if (s->writing || s->state != SESS_OPEN)
        return;
    if (s->out.len == 0) {
        if (s->close_after_flush)
            session_close(s);
        return;
    }
    /* at once when the socket takes it all: uv_write costs the loop an
     * epoll_ctl for each write that completes at once, and the simulator
     * shares the cores of the benchmarks with the bridge it serves */
    uv_buf_t all = uv_buf_init(s->out.data, (unsigned int)s->out.len);
    int n = uv_try_write((uv_stream_t *)&s->tcp, &all, 1);
    if (n > 0) {
        s->sim->stats.bytes_out += (size_t)n;
        s->writes_done++;
        if ((size_t)n == s->out.len) {
            strbuf_reset(&s->out);
            if (s->close_after_flush)
                session_close(s);
            return;
        }
        strbuf_consume(&s->out, (size_t)n);
    }
    struct strbuf tmp = s->inflight;
    s->inflight = s->out;
    s->out = tmp;
    strbuf_reset(&s->out);
    uv_buf_t b = uv_buf_init(s->inflight.data, (unsigned int)s->inflight.len);
    s->sim->stats.bytes_out += s->inflight.len;
    int rc = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (rc < 0) {
        strbuf_reset(&s->inflight);
        session_close(s);
        return;
    }
    s->writing = 1;
    sim_session_ref(s);
}

/* One write in flight per session: the next buffer goes when this one is done. */
static void on_write(uv_write_t *req, int status)
{
    struct sim_session *s = req->data;
    s->writing = 0;
    s->writes_done++;
    strbuf_reset(&s->inflight);
    if (status < 0) {
        if (s->state == SESS_OPEN)
            session_close(s);
    } else if (s->state == SESS_OPEN) {
        session_flush(s);
    }
    sim_session_unref(s);
}

/* Called before and after each poll, so a burst of replies costs one write. */
static void flush_dirty(struct sim *sim)
{
    while (sim->dirty) {
        struct sim_session *s = sim->dirty;
        sim->dirty = s->dirty_next;
        s->dirty_next = NULL;
        s->dirty = 0;
        session_flush(s);
        sim_session_unref(s);
    }
}

static void on_prepare(uv_prepare_t *h)
{
    flush_dirty(h->data);
}

static void on_check(uv_check_t *h)
{
    flush_dirty(h->data);
}

/* Queue the session for the next flush; holds a reference until then. */
static void session_mark_dirty(struct sim_session *s)
{
    if (s->dirty)
        return;
    s->dirty = 1;
    sim_session_ref(s);
    s->dirty_next = s->sim->dirty;
    s->sim->dirty = s;
}

/* A burst of bytes no AMI parser accepts: a line without a colon, a line far
 * longer than any sane limit, and binary with NUL and high bytes. */
static void append_garbage(struct sim_session *s)
{
    static const char bin[] = {'\x00', '\x01', '\xff', '\xfe', '\x1b', '[',
                               '0',    'm',    '\x7f', '\x80', '\r',   '\n'};
    strbuf_append_str(&s->out, "this line has no colon\r\n");
    for (size_t i = 0; i < SIM_GARBAGE_HUGE; i++)
        strbuf_append(&s->out, "x", 1);
    strbuf_append_str(&s->out, "\r\n");
    strbuf_append(&s->out, bin, sizeof(bin));
    strbuf_append_str(&s->out, "\r\n");
}

void sim_session_send(struct sim_session *s, const char *data, size_t len)
{
    struct sim *sim = s->sim;
    if (s->state != SESS_OPEN || s->close_after_flush)
        return;
    if (strbuf_append(&s->out, data, len) < 0) {
        session_close(s);
        return;
    }
    s->msgs_sent++;
    sim->stats.messages_sent++;
    if (s->garbage_after > 0 && !s->garbage_done && s->msgs_sent >= s->garbage_after) {
        s->garbage_done = 1;
        append_garbage(s);
    }
    if (s->drop_after > 0 && s->msgs_sent >= s->drop_after)
        s->close_after_flush = 1;
    if (sim->opt.max_outbuf > 0 && s->out.len + s->inflight.len > (size_t)sim->opt.max_outbuf) {
        sim->stats.dropped_slow++;
        sim_log(sim, "dropping %s:%d: more than %ld bytes queued", s->remote, s->remote_port,
                sim->opt.max_outbuf);
        session_close(s);
        return;
    }
    session_mark_dirty(s);
}

void sim_session_close_after_flush(struct sim_session *s)
{
    if (s->state != SESS_OPEN)
        return;
    s->close_after_flush = 1;
    session_mark_dirty(s);
}

/* ---- events ------------------------------------------------------------------ */

/* manager.c match_filter(): include filters must hit, exclude filters must not. */
static int filters_match(const struct sim_session *s, const char *text)
{
    if (!s->filters)
        return 1;
    int have_inc = 0, have_exc = 0, inc_hit = 0, exc_hit = 0;
    for (const struct sim_filter *f = s->filters; f; f = f->next) {
        int hit = regexec(&f->re, text, 0, NULL, 0) == 0;
        if (f->exclude) {
            have_exc = 1;
            exc_hit |= hit;
        } else {
            have_inc = 1;
            inc_hit |= hit;
        }
    }
    if (have_inc && !inc_hit)
        return 0;
    if (have_exc && exc_hit)
        return 0;
    return 1;
}

void sim_broadcast(struct sim *sim, uint32_t cls, const char *text, size_t len)
{
    sim->stats.events_generated++;
    struct sim_session *next;
    for (struct sim_session *s = sim->sessions; s; s = next) {
        next = s->next; /* a send may close and unlink s */
        const struct sim_auth *a = &s->auth;
        if (s->state != SESS_OPEN || !a->authenticated)
            continue;
        if ((a->readperm & cls) != cls || (a->eventmask & cls) != cls)
            continue;
        if (!filters_match(s, text))
            continue;
        sim->stats.events_sent++;
        sim_session_send(s, text, len);
    }
}

int sim_session_add_filter(struct sim_session *s, const char *regex)
{
    struct sim_filter *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    if (*regex == '!') {
        f->exclude = 1;
        regex++;
    }
    if (regcomp(&f->re, regex, REG_EXTENDED | REG_NOSUB)) {
        free(f);
        return -1;
    }
    struct sim_filter **tail = &s->filters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = f;
    return 0;
}

/* ---- session lifetime -------------------------------------------------------- */

void sim_session_ref(struct sim_session *s)
{
    s->refs++;
}

/* Last reference gone: nothing of the session is reachable any more. */
static void session_free(struct sim_session *s)
{
    free(s->auth.fail_actionid);
    ami_parser_free(s->parser);
    for (size_t i = 0; i < s->qlen; i++)
        ami_msg_free(s->queue[(s->qhead + i) % s->qcap]);
    free(s->queue);
    strbuf_release(&s->out);
    strbuf_release(&s->inflight);
    strbuf_release(&s->held);
    while (s->filters) {
        struct sim_filter *f = s->filters;
        s->filters = f->next;
        regfree(&f->re);
        free(f);
    }
    free(s);
}

void sim_session_unref(struct sim_session *s)
{
    if (--s->refs == 0)
        session_free(s);
}

int sim_session_closed(const struct sim_session *s)
{
    return s->state != SESS_OPEN;
}

struct sim *sim_session_sim(struct sim_session *s)
{
    return s->sim;
}

struct sim_auth *sim_session_auth(struct sim_session *s)
{
    return &s->auth;
}

const char *sim_session_remote(const struct sim_session *s, int *port)
{
    if (port)
        *port = s->remote_port;
    return s->remote;
}

struct timeval sim_session_start_tv(const struct sim_session *s)
{
    return s->start_tv;
}

uintptr_t sim_session_id(const struct sim_session *s)
{
    return (uintptr_t)s;
}

void sim_session_set_authed(struct sim_session *s)
{
    s->auth.authenticated = 1;
    if (s->counted_unauth) {
        s->counted_unauth = 0;
        s->sim->unauth--;
    }
}

/* Both handles are closed before the memory goes. */
static void on_handle_closed(uv_handle_t *h)
{
    struct sim_session *s = h->data;
    if (--s->handles == 0)
        sim_session_unref(s);
}

static void on_exit_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* The session stops counting as connected (it may still linger). */
static void session_leave_open(struct sim_session *s)
{
    struct sim *sim = s->sim;
    if (s->state != SESS_OPEN)
        return;
    sim->nsessions--;
    if (s->counted_unauth) {
        s->counted_unauth = 0;
        sim->unauth--;
    }
    for (size_t i = 0; i < s->qlen; i++)
        ami_msg_free(s->queue[(s->qhead + i) % s->qcap]);
    s->qlen = 0;
    sim_pbx_session_gone(sim->pbx, s);
    if (sim->stopping && sim->nsessions == 0)
        uv_timer_start(&sim->exit_timer, on_exit_timer, 0, 0);
}

/* Off the session list; the caller still holds the memory. */
static void session_unlink(struct sim_session *s)
{
    struct sim *sim = s->sim;
    if (s->prev)
        s->prev->next = s->next;
    else if (sim->sessions == s)
        sim->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* Close both handles now; memory goes when the last reference does. */
static void session_close_now(struct sim_session *s)
{
    if (s->state == SESS_CLOSING)
        return;
    session_leave_open(s);
    session_unlink(s);
    s->state = SESS_CLOSING;
    uv_read_stop((uv_stream_t *)&s->tcp);
    uv_timer_stop(&s->timer);
    s->timer_cb = NULL;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

/* The peer never closed: give up on its FIN. */
static void on_linger_timeout(uv_timer_t *t)
{
    session_close_now(t->data);
}

/* Our FIN is out; a failure means the peer is gone already. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct sim_session *s = req->data;
    if (status < 0 && s->state == SESS_LINGER)
        session_close_now(s);
    sim_session_unref(s);
}

/* Graceful close: our FIN first, then drain the peer until it closes (so
 * unread input does not turn the FIN into a RST that eats our last bytes). */
static void session_close(struct sim_session *s)
{
    if (s->state != SESS_OPEN)
        return;
    session_leave_open(s);
    s->state = SESS_LINGER;
    s->timer_cb = NULL;
    uv_timer_stop(&s->timer);
    if (s->peer_eof) {
        session_close_now(s);
        return;
    }
    s->shutdown_req.data = s;
    sim_session_ref(s);
    if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, on_shutdown) < 0) {
        sim_session_unref(s);
        session_close_now(s);
        return;
    }
    s->stalled = 0;
    session_start_reading(s);
    uv_timer_start(&s->timer, on_linger_timeout, SIM_LINGER_MS, 0);
}

/* ---- action queue --------------------------------------------------------- */

/* Ring buffer of parsed actions waiting for their turn. */
static int queue_push(struct sim_session *s, struct ami_msg *m)
{
    if (s->qlen == s->qcap) {
        size_t ncap = s->qcap ? s->qcap * 2 : 16;
        struct ami_msg **nq = malloc(ncap * sizeof(*nq));
        if (!nq)
            return -ENOMEM;
        for (size_t i = 0; i < s->qlen; i++)
            nq[i] = s->queue[(s->qhead + i) % s->qcap];
        free(s->queue);
        s->queue = nq;
        s->qcap = ncap;
        s->qhead = 0;
    }
    s->queue[(s->qhead + s->qlen) % s->qcap] = m;
    s->qlen++;
    return 0;
}

/* The session timer serves delays (--delay-ms, failed login) and lingering. */
static void on_session_timer(uv_timer_t *t)
{
    struct sim_session *s = t->data;
    void (*cb)(struct sim_session *) = s->timer_cb;
    s->timer_cb = NULL;
    if (cb)
        cb(s);
}

void sim_session_delay(struct sim_session *s, uint64_t ms, void (*cb)(struct sim_session *))
{
    if (s->state != SESS_OPEN)
        return;
    s->blocked = 1;
    s->timer_cb = cb;
    uv_timer_start(&s->timer, on_session_timer, ms, 0);
}

void sim_session_block(struct sim_session *s)
{
    s->blocked = 1;
}

void sim_session_unblock(struct sim_session *s)
{
    if (s->state != SESS_OPEN)
        return;
    s->blocked = 0;
    session_process(s);
}

/* --delay-ms is over for the head action: run it now. */
static void delay_done(struct sim_session *s)
{
    s->blocked = 0;
    s->delayed_current = 1;
    session_process(s);
}

static void session_feed_input(struct sim_session *s, const char *buf, size_t len);

/* Run queued actions until the queue is empty or an action blocks it. */
static void session_process(struct sim_session *s)
{
    if (s->processing)
        return;
    s->processing = 1;
    sim_session_ref(s);
    while (s->state == SESS_OPEN && !s->blocked && s->qlen) {
        if (s->sim->opt.delay_ms > 0 && !s->delayed_current) {
            sim_session_delay(s, (uint64_t)s->sim->opt.delay_ms, delay_done);
            break;
        }
        s->delayed_current = 0;
        struct ami_msg *m = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
        s->sim->stats.actions_total++;
        sim_action_dispatch(s, m);
        ami_msg_free(m);
    }
    /* input held back while the queue was full */
    if (s->state == SESS_OPEN && s->held.len && s->qlen < SIM_QUEUE_MAX / 2 && !s->stalled) {
        struct strbuf h = s->held;
        strbuf_init(&s->held, 0);
        session_feed_input(s, h.data, h.len);
        strbuf_release(&h);
        if (s->state == SESS_OPEN && !s->held.len && !s->stalled)
            session_start_reading(s);
    }
    if (s->state == SESS_OPEN && s->peer_eof && !s->blocked && !s->qlen)
        sim_session_close_after_flush(s);
    s->processing = 0;
    sim_session_unref(s);
}

/* ---- input ------------------------------------------------------------------- */

/* A whole message arrived (blank line): queue it. A message that broke a
 * manager.c input limit is queued too, marked, so that it is answered with
 * manager.c's error in its turn (do_message(): hdr_loss is checked first,
 * then MESSAGE_LINE_TOO_LONG; the reply carries the kept ActionID). */
static void message_end(struct sim_session *s)
{
    const char *parse_error = s->hdr_loss        ? SIM_ERR_TOO_MANY_LINES
                              : s->line_too_long ? SIM_ERR_LINE_TOO_LONG
                                                 : NULL;
    int fed = s->fed;
    s->line_too_long = 0;
    s->hdr_loss = 0;
    s->hdrs = 0;
    s->fed = 0;
    struct ami_msg *m = NULL;
    if (fed) {
        if (ami_parser_feed(s->parser, "\r\n", 2) < 0 || ami_parser_next(s->parser, &m) != 1) {
            sim_log(s->sim, "parser: %s", ami_parser_errstr(s->parser));
            session_close(s);
            return;
        }
    } else {
        m = ami_msg_new(); /* no usable header: "Missing action in request" */
        if (!m) {
            session_close(s);
            return;
        }
    }
    if (parse_error)
        ami_msg_set(m, SIM_PARSE_ERROR_KEY, parse_error);
    if (queue_push(s, m) < 0) {
        ami_msg_free(m);
        session_close(s);
        return;
    }
    s->actions_read++;
    if (s->stall_after > 0 && s->actions_read >= s->stall_after && !s->stalled) {
        s->stalled = 1;
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
}

/* One line without its terminator; at most SIM_MAX_LINE bytes. */
static void handle_line(struct sim_session *s, const char *line, size_t len)
{
    const char *nul = memchr(line, '\0', len);
    if (nul)
        len = (size_t)(nul - line); /* manager.c keeps a C string */
    if (len == 0) {
        message_end(s);
        return;
    }
    if (s->hdrs >= SIM_MAX_HEADERS) {
        s->hdr_loss = 1; /* the whole message is refused at its end */
        return;
    }
    s->hdrs++;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return; /* kept by Asterisk but never matched by a header lookup */
    if (ami_parser_feed(s->parser, line, len) < 0 || ami_parser_feed(s->parser, "\r\n", 2) < 0) {
        session_close(s);
        return;
    }
    s->fed++;
}

/* get_input(): split on LF (CR before it dropped); a buffer that fills up
 * without a newline is dumped except its last byte. */
static void session_feed_input(struct sim_session *s, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && s->state == SESS_OPEN) {
        if (s->stalled || s->qlen >= SIM_QUEUE_MAX) {
            strbuf_append(&s->held, buf + i, len - i);
            if (s->reading) {
                uv_read_stop((uv_stream_t *)&s->tcp);
                s->reading = 0;
            }
            return;
        }
        char c = buf[i++];
        s->inbuf[s->inlen++] = c;
        if (c == '\n') {
            size_t l = s->inlen - 1;
            if (l && s->inbuf[l - 1] == '\r')
                l--;
            s->inlen = 0;
            handle_line(s, s->inbuf, l);
        } else if (s->inlen >= SIM_MAX_LINE) {
            s->inbuf[0] = s->inbuf[s->inlen - 1];
            s->inlen = 1;
            s->line_too_long = 1;
        }
    }
}

/* One static read buffer: reads are consumed before the next one starts. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char chunk[SIM_READ_CHUNK];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Input: record it, split it into actions, run what is runnable. */
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sim_session *s = stream->data;
    if (nread < 0) {
        if (s->state == SESS_OPEN && nread == UV_EOF) {
            /* half-closed peer: answer what it already sent, then close */
            uv_read_stop(stream);
            s->reading = 0;
            s->peer_eof = 1;
            sim_session_ref(s);
            session_process(s);
            sim_session_unref(s);
        } else {
            session_close_now(s);
        }
        return;
    }
    if (nread == 0)
        return;
    if (s->state != SESS_OPEN)
        return; /* lingering: drain and discard */
    struct sim *sim = s->sim;
    sim->stats.bytes_in += (uint64_t)nread;
    if (sim->record_fd >= 0) {
        ssize_t w = write(sim->record_fd, buf->base, (size_t)nread);
        (void)w;
    }
    sim_session_ref(s);
    session_feed_input(s, buf->base, (size_t)nread);
    session_process(s);
    sim_session_unref(s);
}

/* Reading pauses while the action queue is full or a stall is simulated. */
static void session_start_reading(struct sim_session *s)
{
    if (s->reading || s->stalled)
        return;
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
        s->reading = 1;
}

/* ---- listener ---------------------------------------------------------------- */

/* Accept: banner first, then nothing until the client speaks (manager.c). */
static void on_connection(uv_stream_t *server, int status)
{
    struct sim *sim = server->data;
    if (status < 0)
        return;
    struct sim_session *s = calloc(1, sizeof(*s));
    if (!s)
        return;
    s->sim = sim;
    s->refs = 1;
    uv_tcp_init(sim->loop, &s->tcp);
    uv_timer_init(sim->loop, &s->timer);
    s->handles = 2;
    s->tcp.data = s->timer.data = s->wreq.data = s;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
        s->state = SESS_CLOSING;
        uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
        uv_close((uv_handle_t *)&s->timer, on_handle_closed);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    strbuf_init(&s->out, 0);
    strbuf_init(&s->inflight, 0);
    strbuf_init(&s->held, 0);
    s->parser = ami_parser_new(NULL, 0);
    s->start_tv = sim_now_tv();
    s->start_ms = uv_now(sim->loop);
    s->auth.eventmask = SIM_EV_ALL;
    s->drop_after = sim->opt.drop_after;
    s->garbage_after = sim->opt.garbage_after;
    s->stall_after = sim->opt.stall_read_after;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    snprintf(s->remote, sizeof(s->remote), "127.0.0.1");
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            uv_ip4_name(in, s->remote, sizeof(s->remote));
            s->remote_port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(in6, s->remote, sizeof(s->remote));
            s->remote_port = ntohs(in6->sin6_port);
        }
    }
    /* link */
    s->next = sim->sessions;
    if (sim->sessions)
        sim->sessions->prev = s;
    sim->sessions = s;
    sim->nsessions++;
    sim->stats.connections_total++;
    if (!s->parser) {
        session_close_now(s);
        return;
    }
    if (sim->opt.auth_limit > 0 && sim->unauth >= sim->opt.auth_limit) {
        /* manager.conf authlimit: too many sessions still logging in */
        session_close(s);
        return;
    }
    s->counted_unauth = 1;
    sim->unauth++;
    /* the banner does not count as a message for the fault knobs */
    strbuf_append(&s->out, SIM_BANNER, sizeof(SIM_BANNER) - 1);
    session_mark_dirty(s);
    session_start_reading(s);
}

/* Written atomically (rename) so a test never reads half a port number. */
static void write_ready_file(struct sim *sim)
{
    if (!sim->opt.ready_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", sim->opt.ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%d\n", sim->port);
    fclose(f);
    rename(tmp, sim->opt.ready_file);
}

int sim_listen(struct sim *sim)
{
    struct sockaddr_storage addr;
    int port = sim->port ? sim->port : sim->opt.port;
    int rc;
    if (strchr(sim->opt.host, ':'))
        rc = uv_ip6_addr(sim->opt.host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(sim->opt.host, port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        return rc;
    uv_tcp_init(sim->loop, &sim->listener);
    sim->listener.data = sim;
    sim->listener_open = 1;
    sim->handles_open++;
    rc = uv_tcp_bind(&sim->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&sim->listener, 511, on_connection);
    if (rc < 0)
        return rc;
    struct sockaddr_storage bound;
    int bl = sizeof(bound);
    uv_tcp_getsockname(&sim->listener, (struct sockaddr *)&bound, &bl);
    if (bound.ss_family == AF_INET)
        sim->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    else
        sim->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    if (!sim->opt.quiet) {
        printf("ami-sim listening on %s:%d\n", sim->opt.host, sim->port);
        fflush(stdout);
    }
    write_ready_file(sim);
    return 0;
}

/* Process-level handles are counted so sim_free knows when all are gone. */
static void on_sim_handle_closed(uv_handle_t *h)
{
    struct sim *sim = h->data;
    sim->handles_open--;
}

/* Stop accepting (restart, shutdown); existing sessions are not touched. */
static void listener_close(struct sim *sim)
{
    if (!sim->listener_open)
        return;
    sim->listener_open = 0;
    uv_close((uv_handle_t *)&sim->listener, on_sim_handle_closed);
}

/* ---- restart, shutdown, signals -------------------------------------------- */

/* 08a/08b: only sessions with events on and system read get it. */
static void broadcast_shutdown(struct sim *sim, int restart)
{
    struct sim_ev e;
    sim_ev_begin(&e, "Shutdown", SIM_EV_SYSTEM);
    sim_ev_kv(&e, "Shutdown", "Cleanly");
    sim_ev_kv(&e, "Restart", restart ? "True" : "False");
    sim_ev_end(sim, &e);
}

/* Every session closes once what it was sent is written. */
static void close_all_sessions(struct sim *sim)
{
    for (struct sim_session *s = sim->sessions; s; s = s->next)
        sim_session_close_after_flush(s);
}

/* The restarted "Asterisk" answers again, with a fresh uptime. */
static void on_relisten(uv_timer_t *t)
{
    struct sim *sim = t->data;
    sim->start_tv = sim_now_tv();
    int rc = sim_listen(sim);
    if (rc < 0) {
        sim_log(sim, "cannot listen again on port %d: %s", sim->port, uv_strerror(rc));
        uv_stop(sim->loop);
        return;
    }
    sim->restarting = 0;
    sim_log(sim, "restarted");
}

/* 08a: about 1.1 s after the command the Shutdown event goes out and all connections close; the
 * PBX state starts over. */
static void on_restart_close(uv_timer_t *t)
{
    struct sim *sim = t->data;
    broadcast_shutdown(sim, 1);
    close_all_sessions(sim);
    sim_pbx_free(sim->pbx);
    sim->pbx = sim_pbx_new(sim);
    uint64_t now = uv_now(sim->loop);
    uint64_t want = sim->restart_cmd_ms + (uint64_t)sim->opt.restart_down_ms;
    uv_timer_start(&sim->relisten, on_relisten, want > now ? want - now : 0, 0);
}

void sim_restart(struct sim *sim)
{
    if (sim->restarting || sim->stopping)
        return;
    sim->restarting = 1;
    sim->stats.restarts++;
    sim->restart_cmd_ms = uv_now(sim->loop);
    sim_log(sim, "core restart now");
    listener_close(sim);
    sim_pbx_hangup_all(sim->pbx, 1);
    uv_timer_start(&sim->restart_close, on_restart_close, sim_scaled_ms(sim, SIM_RESTART_CLOSE_MS),
                   0);
}

/* 08b: Shutdown (Restart: False), close, then leave the loop once the sessions are gone (or
 * after a grace period). */
static void on_stop_close(uv_timer_t *t)
{
    struct sim *sim = t->data;
    broadcast_shutdown(sim, 0);
    close_all_sessions(sim);
    uv_timer_start(&sim->exit_timer, on_exit_timer, sim->nsessions ? SIM_EXIT_GRACE_MS : 0, 0);
}

void sim_shutdown(struct sim *sim)
{
    if (sim->stopping)
        return;
    sim->stopping = 1;
    sim_log(sim, "core stop gracefully");
    uv_timer_stop(&sim->relisten);
    uv_timer_stop(&sim->restart_close);
    listener_close(sim);
    sim_pbx_hangup_all(sim->pbx, 0);
    uv_timer_start(&sim->restart_close, on_stop_close, (uint64_t)SIM_STOP_CLOSE_MS, 0);
}

/* SIGUSR1 restarts, SIGTERM/SIGINT stop. */
static void on_signal(uv_signal_t *h, int signum)
{
    struct sim *sim = h->data;
    if (signum == SIGUSR1)
        sim_restart(sim);
    else
        sim_shutdown(sim);
}

static void on_restart_auto(uv_timer_t *t)
{
    sim_restart(t->data);
}

/* manager.conf authtimeout: sessions that never log in are closed. */
/* Can the kernel take more bytes on this session's socket now? */
static int sock_writable(struct sim_session *s)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0)
        return 1;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
}

/* manager.c send_string(): a write that makes no progress for the
 * session's writetimeout ends the session (write_error); Asterisk's writer
 * waits for POLLOUT (main/iostream.c). Here: output that libuv still holds
 * (its write queue has not shrunk) while the socket has not been writable
 * for write_timeout_ms. A socket that is writable does not count as
 * stalled, so time this single-threaded simulator spends elsewhere (making
 * a flood) is not blamed on the client. */
static int write_stalled(struct sim_session *s, uint64_t now)
{
    long limit = s->sim->opt.write_timeout_ms;
    size_t q = s->writing ? uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp) : 0;
    if (limit <= 0 || q == 0 || q < s->stall_queue || s->writes_done != s->stall_writes ||
        sock_writable(s)) {
        s->stall_queue = q;
        s->stall_writes = s->writes_done;
        s->stall_since = now;
        return 0;
    }
    return now - s->stall_since >= (uint64_t)limit;
}

static void on_sweep(uv_timer_t *t)
{
    struct sim *sim = t->data;
    uint64_t now = uv_now(sim->loop);
    struct sim_session *s = sim->sessions;
    while (s) {
        struct sim_session *next = s->next;
        if (!s->auth.authenticated && sim->opt.auth_timeout_ms > 0 &&
            now - s->start_ms > (uint64_t)sim->opt.auth_timeout_ms) {
            session_close(s);
        } else if (s->state == SESS_OPEN && write_stalled(s, now)) {
            sim->stats.dropped_slow++;
            sim_log(sim, "dropping %s:%d: no write progress for %ld ms (writetimeout)", s->remote,
                    s->remote_port, sim->opt.write_timeout_ms);
            session_close(s);
        }
        s = next;
    }
}

/* ---- flood -------------------------------------------------------------------- */

/* Decimal digits of v at w, at least `width` of them (zero-padded); the end. */
static char *put_dec(char *w, unsigned long long v, int width)
{
    char d[20];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        d[n++] = '0';
    while (n)
        *w++ = d[--n];
    return w;
}

/* Catch up with RATE events per second since the flood started; Seq has
 * no gaps. The tick (SIM_FLOOD_TICK_MS) sets how bunched they are: each
 * tick sends what fell due since the last one, each event stamped when it
 * is written. The bytes are written by hand (what snprintf gave): the
 * benchmarks run this beside the bridge on the same cores. */
static void on_flood(uv_timer_t *t)
{
    static const char head[] = "Event: SimFlood\r\nPrivilege: user,all\r\nTimestamp: ";
    struct sim *sim = t->data;
    if (sim->opt.flood_rate <= 0)
        return;
    uint64_t now = uv_now(sim->loop);
    double elapsed = (double)(now - sim->flood_start_ms) / 1000.0;
    uint64_t due = (uint64_t)(elapsed * sim->opt.flood_rate) + 1;
    uint64_t n = due > sim->flood_emitted ? due - sim->flood_emitted : 0;
    if (n > SIM_FLOOD_MAX_BURST)
        n = SIM_FLOOD_MAX_BURST;
    char buf[128];
    memcpy(buf, head, sizeof(head) - 1);
    for (uint64_t i = 0; i < n; i++) {
        if (sim->opt.flood_count > 0 && sim->flood_seq >= (uint64_t)sim->opt.flood_count) {
            uv_timer_stop(t);
            return;
        }
        sim->flood_seq++;
        /* Timestamp as manager.conf timestampevents=yes writes it: the
         * events benchmark measures end-to-end latency from it */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char *w = buf + sizeof(head) - 1;
        w = put_dec(w, (unsigned long long)ts.tv_sec, 1);
        *w++ = '.';
        w = put_dec(w, (unsigned long long)(ts.tv_nsec / 1000), 6);
        memcpy(w, "\r\nSeq: ", 7);
        w = put_dec(w + 7, (unsigned long long)sim->flood_seq, 1);
        memcpy(w, "\r\n\r\n", 4);
        w += 4;
        *w = '\0'; /* a session's filters read it as a C string (regexec) */
        sim_broadcast(sim, SIM_EV_USER, buf, (size_t)(w - buf));
        sim->flood_emitted++;
    }
}

void sim_flood_update(struct sim *sim)
{
    uv_timer_stop(&sim->flood);
    if (sim->opt.flood_rate <= 0)
        return;
    sim->flood_start_ms = uv_now(sim->loop);
    sim->flood_emitted = 0;
    sim->flood_seq = 0;
    uv_timer_start(&sim->flood, on_flood, 0, SIM_FLOOD_TICK_MS);
}

/* ---- create / free -------------------------------------------------------------- */

/* A process-level handle: counted, and its data is the sim. */
static void init_handle(struct sim *sim, uv_handle_t *h)
{
    h->data = sim;
    sim->handles_open++;
}

struct sim *sim_new(uv_loop_t *loop, const struct sim_opts *opts)
{
    struct sim *sim = calloc(1, sizeof(*sim));
    if (!sim)
        return NULL;
    sim->loop = loop;
    sim->opt = *opts;
    sim->record_fd = -1;
    sim->start_tv = sim_now_tv();
    int rc = opts->users_file ? users_load(sim, opts->users_file) : users_builtin(sim);
    if (rc < 0) {
        fprintf(stderr, "ami-sim: cannot read users file %s: %s\n", opts->users_file,
                strerror(-rc));
        goto fail;
    }
    if (opts->record_file) {
        sim->record_fd = open(opts->record_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (sim->record_fd < 0) {
            fprintf(stderr, "ami-sim: cannot open %s: %s\n", opts->record_file, strerror(errno));
            goto fail;
        }
    }
    sim->pbx = sim_pbx_new(sim);
    if (!sim->pbx)
        goto fail;
    uv_prepare_init(loop, &sim->prepare);
    init_handle(sim, (uv_handle_t *)&sim->prepare);
    uv_prepare_start(&sim->prepare, on_prepare);
    uv_check_init(loop, &sim->check);
    init_handle(sim, (uv_handle_t *)&sim->check);
    uv_check_start(&sim->check, on_check);
    uv_timer_t *timers[] = {&sim->sweep,         &sim->flood,    &sim->restart_auto,
                            &sim->restart_close, &sim->relisten, &sim->exit_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(loop, timers[i]);
        init_handle(sim, (uv_handle_t *)timers[i]);
    }
    uv_timer_start(&sim->sweep, on_sweep, SIM_SWEEP_MS, SIM_SWEEP_MS);
    uv_unref((uv_handle_t *)&sim->sweep);
    uv_signal_t *sigs[] = {&sim->sig_term, &sim->sig_int, &sim->sig_usr1};
    int signums[] = {SIGTERM, SIGINT, SIGUSR1};
    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(loop, sigs[i]);
        init_handle(sim, (uv_handle_t *)sigs[i]);
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    if (opts->restart_after > 0)
        uv_timer_start(&sim->restart_auto, on_restart_auto,
                       (uint64_t)(opts->restart_after * 1000.0), 0);
    sim_flood_update(sim);
    return sim;
fail:
    free(sim->users);
    if (sim->record_fd >= 0)
        close(sim->record_fd);
    free(sim);
    return NULL;
}

/* Close whatever is still open on the loop, so uv_loop_close succeeds. */
static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->data == arg ? on_sim_handle_closed : NULL);
}

void sim_free(struct sim *sim)
{
    if (!sim)
        return;
    while (sim->sessions)
        session_close_now(sim->sessions);
    sim_pbx_free(sim->pbx);
    sim->pbx = NULL;
    listener_close(sim);
    uv_walk(sim->loop, close_walk, sim);
    while (uv_run(sim->loop, UV_RUN_NOWAIT))
        ;
    flush_dirty(sim);
    free(sim->users);
    free(sim->acounts);
    if (sim->record_fd >= 0)
        close(sim->record_fd);
    free(sim);
}
