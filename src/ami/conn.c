#include "ami/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ami/parser.h"
#include "core/backoff.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/strbuf.h"

#define AMI_BANNER_PREFIX      "Asterisk Call Manager"
#define AMI_CONN_LOG_REPEAT_MS 30000 /* repeat an unchanged failure in the log this often */

struct ami_sock {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct ami_conn *c;
};

enum login_phase { PHASE_BANNER = 0, PHASE_CHALLENGE, PHASE_LOGIN };

struct ami_conn {
    uv_loop_t *loop;
    struct ami_conn_opts o; /* strings below are owned copies */
    struct ami_conn_cbs cbs;
    void *ud;
    enum ami_conn_state state;

    struct ami_sock *sock;
    uv_getaddrinfo_t gai;
    int gai_active;
    uv_timer_t timer;    /* connect deadline, backoff, logoff wait */
    uv_timer_t ka_timer; /* keepalive */
    int closes_pending;  /* close callbacks not yet run */
    int paused;          /* this session holds messages back */
    int hold_wanted;     /* the owner's last ami_conn_pause(): kept across sessions */
    struct strbuf held;  /* bytes read while held back, parsed from held_off on */
    size_t held_off;
    int undrained;      /* the parser has messages not handed out yet */
    int forcing;        /* the hold is full: messages go through all the same */
    uv_timer_t release; /* parses them once the hold ends */
    uint64_t hold_overflows;
    int tearing; /* final teardown started */

    struct ami_parser *parser;
    enum login_phase phase;
    struct strbuf outq; /* waiting to be written */
    uint64_t batches;   /* times outq was handed to the kernel: the batch it collects */
    struct strbuf outw; /* being written */
    uv_write_t wreq;
    int writing;
    uv_prepare_t flush; /* writes what was queued, once, before the loop waits again */

    uint64_t seq;
    char chal_id[96], login_id[96], ka_id[96], logoff_id[96];
    int ka_outstanding;
    uint64_t ka_sent_at;
    uint64_t last_rx;

    int backoff_ms;
    int auth_failed;
    uint64_t login_attempts, reconnects;
    char last_error[256];
    char logged_error[256];
    uint64_t logged_at;
    char banner[128];

    void (*done)(void *);
    void *done_arg;
};

static void conn_fail(struct ami_conn *c, const char *reason, int auth);
static void conn_connect(struct ami_conn *c);
static void conn_teardown(struct ami_conn *c);

/* --- small helpers --------------------------------------------------------------- */

const char *ami_conn_state_name(enum ami_conn_state s)
{
    switch (s) {
    case AMI_CONN_IDLE:
        return "idle";
    case AMI_CONN_CONNECTING:
        return "connecting";
    case AMI_CONN_UP:
        return "up";
    case AMI_CONN_BACKOFF:
        return "backoff";
    case AMI_CONN_CLOSING:
        return "closing";
    }
    return "?";
}

void ami_md5_key(const char *challenge, const char *secret, char out[33])
{
    unsigned char md[DIGEST_MD5_LEN];
    const struct digest_part parts[] = {{challenge, strlen(challenge)}, {secret, strlen(secret)}};
    digest_md5(parts, 2, md);
    digest_hex(md, sizeof(md), out);
}

static void conn_maybe_free(struct ami_conn *c);

static void handle_closed(uv_handle_t *h)
{
    struct ami_conn *c = h->data;
    c->closes_pending--;
    conn_maybe_free(c);
}

/* --- writing ----------------------------------------------------------------------- */

static void conn_flush(struct ami_conn *c);

static void write_done(uv_write_t *req, int status)
{
    struct ami_conn *c = req->data;
    c->writing = 0;
    strbuf_reset(&c->outw);
    if (status == UV_ECANCELED || !c->sock)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
        conn_fail(c, why, 0);
        return;
    }
    if (c->outq.len)
        conn_flush(c);
}

static void conn_flush(struct ami_conn *c)
{
    if (c->writing || !c->sock || !c->outq.len)
        return;
    /* at once when the socket takes it all: no write request, no callback
     * and no change to what the loop watches (uv_write costs the loop an
     * epoll_ctl for each write that completes at once) */
    uv_buf_t all = uv_buf_init(c->outq.data, (unsigned)c->outq.len);
    c->batches++;
    int n = uv_try_write((uv_stream_t *)&c->sock->tcp, &all, 1);
    if (n == (int)c->outq.len) {
        strbuf_reset(&c->outq);
        return;
    }
    if (n > 0)
        strbuf_consume(&c->outq, (size_t)n);
    struct strbuf t = c->outw; /* swap: outq is written, outw collects */
    c->outw = c->outq;
    c->outq = t;
    uv_buf_t b = uv_buf_init(c->outw.data, (unsigned)c->outw.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->sock->tcp, &b, 1, write_done);
    if (rc < 0) {
        strbuf_reset(&c->outw);
        char why[128];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(rc));
        conn_fail(c, why, 0);
        return;
    }
    c->writing = 1;
}

static void on_flush(uv_prepare_t *h)
{
    struct ami_conn *c = h->data;
    uv_prepare_stop(&c->flush);
    conn_flush(c);
}

/* Queued bytes are written just before the loop next waits for I/O (a
 * uv_prepare), or when the write in flight is done: the actions of many
 * requests in one write, with no added wait. */
static int send_raw(struct ami_conn *c, const char *bytes, size_t len)
{
    if (c->outq.len + len > AMI_CONN_MAX_OUTBUF)
        return -ENOBUFS;
    if (strbuf_append(&c->outq, bytes, len))
        return -ENOMEM;
    if (!c->writing && !uv_is_active((uv_handle_t *)&c->flush))
        uv_prepare_start(&c->flush, on_flush);
    return 0;
}

int ami_conn_send(struct ami_conn *c, const char *bytes, size_t len)
{
    if (c->state != AMI_CONN_UP)
        return -ENOTCONN;
    return send_raw(c, bytes, len);
}

/* Serialise and send one of our own actions (login, keepalive, logoff). */
static int send_own(struct ami_conn *c, struct ami_msg *m)
{
    struct strbuf sb;
    struct ami_error err;
    strbuf_init(&sb, 0);
    int rc = ami_action_serialize(m, &sb, &err);
    if (rc == -EINVAL) {
        char why[320];
        /* name the setting, never its value */
        snprintf(why, sizeof(why), "cannot send %s: %s (check the AMI username and secret)",
                 ami_msg_name(m), err.detail);
        conn_fail(c, why, 1);
    } else if (rc == 0) {
        rc = send_raw(c, sb.data, sb.len);
    }
    strbuf_release(&sb);
    ami_msg_free(m);
    return rc;
}

static void next_id(struct ami_conn *c, char *buf, size_t len, char tag)
{
    snprintf(buf, len, "%s-%c%llu", c->o.id_prefix, tag, (unsigned long long)++c->seq);
}

/* --- login ------------------------------------------------------------------------ */

static void send_login(struct ami_conn *c, const char *challenge)
{
    struct ami_msg *m = ami_msg_new();
    if (!m) {
        conn_fail(c, "out of memory", 0);
        return;
    }
    next_id(c, c->login_id, sizeof(c->login_id), 'L');
    ami_msg_add(m, "Action", "Login");
    ami_msg_add(m, "ActionID", c->login_id);
    if (challenge) {
        char key[33];
        ami_md5_key(challenge, c->o.secret, key);
        ami_msg_add(m, "AuthType", "MD5");
        ami_msg_add(m, "Username", c->o.username);
        ami_msg_add(m, "Key", key);
    } else {
        ami_msg_add(m, "Username", c->o.username);
        ami_msg_add(m, "Secret", c->o.secret);
    }
    ami_msg_add(m, "Events", c->o.events);
    c->phase = PHASE_LOGIN;
    c->login_attempts++;
    send_own(c, m);
}

static void on_banner(struct ami_conn *c, const struct ami_msg *m)
{
    const char *b = ami_msg_get(m, "Banner");
    snprintf(c->banner, sizeof(c->banner), "%s", b ? b : "");
    if (strncmp(c->banner, AMI_BANNER_PREFIX, strlen(AMI_BANNER_PREFIX)) != 0) {
        char why[200];
        snprintf(why, sizeof(why), "not an Asterisk manager: banner '%.100s'", c->banner);
        conn_fail(c, why, 0);
        return;
    }
    if (!c->o.md5) {
        send_login(c, NULL);
        return;
    }
    struct ami_msg *ch = ami_msg_new();
    if (!ch) {
        conn_fail(c, "out of memory", 0);
        return;
    }
    next_id(c, c->chal_id, sizeof(c->chal_id), 'C');
    ami_msg_add(ch, "Action", "Challenge");
    ami_msg_add(ch, "ActionID", c->chal_id);
    ami_msg_add(ch, "AuthType", "MD5");
    c->phase = PHASE_CHALLENGE;
    send_own(c, ch);
}

/* Server-side filters: Asterisk then never sends what we would drop. */
/* An ActionID of ours from send_filters() ("<prefix>-F<n>", see next_id). */
static int is_filter_id(const struct ami_conn *c, const char *id)
{
    size_t plen = strlen(c->o.id_prefix);
    return !strncmp(id, c->o.id_prefix, plen) && id[plen] == '-' && id[plen + 1] == 'F';
}

static void send_filters(struct ami_conn *c)
{
    for (size_t i = 0; i < c->o.nfilters; i++) {
        struct ami_msg *m = ami_msg_new();
        if (!m)
            return;
        char id[96];
        next_id(c, id, sizeof(id), 'F');
        ami_msg_add(m, "Action", "Filter");
        ami_msg_add(m, "ActionID", id);
        ami_msg_add(m, "Operation", "Add");
        ami_msg_add(m, "Filter", c->o.filters[i]);
        send_own(c, m);
    }
}

static void conn_up(struct ami_conn *c)
{
    send_filters(c);
    uv_timer_stop(&c->timer);
    c->state = AMI_CONN_UP;
    c->paused = c->hold_wanted; /* the owner asked while there was no session */
    c->backoff_ms = 0;
    c->auth_failed = 0;
    c->ka_outstanding = 0;
    c->last_error[0] = '\0';
    c->logged_error[0] = '\0';
    log_info("AMI connection up", "{s:s,s:s,s:i,s:s}", "server", c->o.server, "role", c->o.role,
             "conn", c->o.index, "banner", c->banner);
    if (c->cbs.on_up)
        c->cbs.on_up(c, c->ud);
}

/* Messages before login is complete: only our own replies matter. */
static void on_login_message(struct ami_conn *c, struct ami_msg *m)
{
    const char *id = ami_msg_get(m, "ActionID");
    if (ami_msg_kind(m) == AMI_MSG_BANNER) {
        if (c->phase == PHASE_BANNER)
            on_banner(c, m);
    } else if (ami_msg_kind(m) == AMI_MSG_RESPONSE && id && c->phase == PHASE_CHALLENGE &&
               !strcmp(id, c->chal_id)) {
        const char *chal = ami_msg_get(m, "Challenge");
        if (!ami_msg_is(m, "Response", "Success") || !chal || !*chal) {
            const char *msg = ami_msg_get(m, "Message");
            char why[200];
            snprintf(why, sizeof(why),
                     "MD5 challenge refused: %.100s (try AMIBRIDGE_AMI_AUTH=plain)",
                     msg ? msg : "no challenge");
            conn_fail(c, why, 0);
        } else {
            send_login(c, chal);
        }
    } else if (ami_msg_kind(m) == AMI_MSG_RESPONSE && id && c->phase == PHASE_LOGIN &&
               !strcmp(id, c->login_id)) {
        if (ami_msg_is(m, "Response", "Success")) {
            conn_up(c);
        } else {
            const char *msg = ami_msg_get(m, "Message");
            char why[200];
            snprintf(why, sizeof(why), "login rejected: %.100s", msg ? msg : "no message");
            conn_fail(c, why, 1);
        }
    }
    ami_msg_free(m);
}

/* --- reading ----------------------------------------------------------------------- */

static int holding(const struct ami_conn *c);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct ami_sock *sk = h->data;
    struct ami_conn *c = sk->c;
    /* held back: read straight to the end of what is held, when it has room */
    if (c && c->sock == sk && holding(c) &&
        c->held.len - c->held_off + AMI_CONN_READ_CHUNK <= c->o.hold_max &&
        strbuf_grow(&c->held, AMI_CONN_READ_CHUNK) == 0) {
        *buf = uv_buf_init(c->held.data + c->held.len, AMI_CONN_READ_CHUNK);
        return;
    }
    /* one read buffer per read; the parser copies what it keeps */
    static char chunk[AMI_CONN_READ_CHUNK];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Hand out the complete messages the parser has, until the owner holds
 * them back (the rest stay in the parser, c->undrained). Returns 0, or -1
 * when the socket is gone (a callback closed or reset us, or the bytes
 * were not AMI). */
static int drain(struct ami_conn *c, struct ami_sock *sk)
{
    struct ami_msg *m;
    int rc = 0;
    c->undrained = 0;
    /* a callback may close or reset us: stop as soon as this socket is gone */
    while (c->sock == sk) {
        if (c->paused && !c->forcing && c->state == AMI_CONN_UP) {
            c->undrained = 1;
            return 0;
        }
        if ((rc = ami_parser_next(c->parser, &m)) != 1)
            break;
        if (c->state == AMI_CONN_CONNECTING) {
            on_login_message(c, m);
            continue;
        }
        const char *id = ami_msg_get(m, "ActionID");
        if (id && c->ka_outstanding && !strcmp(id, c->ka_id)) {
            c->ka_outstanding = 0;
            ami_msg_free(m);
            continue;
        }
        if (id && ami_msg_kind(m) == AMI_MSG_RESPONSE && is_filter_id(c, id)) {
            /* the reply to one of our Filter actions */
            if (!ami_msg_is(m, "Response", "Success")) {
                const char *why = ami_msg_get(m, "Message");
                log_error("AMI refused an event filter: events are filtered here only", "{s:s,s:s}",
                          "server", c->o.server, "message", why ? why : "");
            }
            ami_msg_free(m);
            continue;
        }
        if (c->state == AMI_CONN_CLOSING) {
            int bye = ami_msg_is(m, "Response", "Goodbye");
            ami_msg_free(m);
            if (bye) {
                conn_teardown(c);
                return -1;
            }
            continue;
        }
        if (c->cbs.on_message)
            c->cbs.on_message(c, c->ud, m);
        else
            ami_msg_free(m);
    }
    if (c->sock != sk)
        return -1;
    if (rc < 0) {
        conn_fail(c, ami_parser_errstr(c->parser), 0);
        return -1;
    }
    return 0;
}

/* Parse bytes from the socket and hand out what is complete. */
static int feed(struct ami_conn *c, struct ami_sock *sk, const char *data, size_t len)
{
    if (ami_parser_feed(c->parser, data, len) < 0) {
        conn_fail(c, ami_parser_errstr(c->parser), 0);
        return -1;
    }
    return drain(c, sk);
}

static size_t held_len(const struct ami_conn *c)
{
    return c->held.len - c->held_off;
}

/* Bytes read now must wait behind what is held (or is being held). */
static int holding(const struct ami_conn *c)
{
    return c->paused || held_len(c) || c->undrained;
}

/* Parse the next chunk of held bytes (read position moves on; the buffer
 * is compacted when most of it was read, and given back when empty). */
static int feed_held(struct ami_conn *c, struct ami_sock *sk)
{
    size_t n = held_len(c) < AMI_CONN_READ_CHUNK ? held_len(c) : AMI_CONN_READ_CHUNK;
    /* the parser copies: the held bytes may move or go once it has them */
    if (ami_parser_feed(c->parser, c->held.data + c->held_off, n) < 0) {
        conn_fail(c, ami_parser_errstr(c->parser), 0);
        return -1;
    }
    c->held_off += n;
    if (c->held_off == c->held.len) {
        strbuf_release(&c->held); /* a burst's memory goes back */
        c->held_off = 0;
    } else if (c->held_off > c->held.len / 2) {
        strbuf_consume(&c->held, c->held_off);
        c->held_off = 0;
    }
    return drain(c, sk);
}

static void on_release(uv_timer_t *t)
{
    struct ami_conn *c = t->data;
    struct ami_sock *sk = c->sock;
    if (!sk || (c->undrained && drain(c, sk) < 0))
        return;
    for (int i = 0; i < AMI_CONN_RELEASE_CHUNKS && !c->paused && held_len(c); i++)
        if (feed_held(c, sk) < 0)
            return;
    if (!c->paused && held_len(c))
        uv_timer_start(&c->release, on_release, 0, 0);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ami_sock *sk = s->data;
    struct ami_conn *c = sk->c;
    if (!c || c->sock != sk)
        return;
    if (nread < 0) {
        char why[128];
        if (nread == UV_EOF)
            snprintf(why, sizeof(why), "connection closed by Asterisk");
        else
            snprintf(why, sizeof(why), "read failed: %s", uv_strerror((int)nread));
        conn_fail(c, why, 0);
        return;
    }
    if (nread == 0)
        return;
    c->last_rx = uv_now(c->loop);
    /* held back (or still releasing what was): keep the bytes, in order;
     * when the hold is full, its oldest bytes go through to make room (and
     * the outlet that asked for the hold drops what it cannot take) */
    if (holding(c)) {
        if (buf->base == c->held.data + c->held.len) { /* read in place (alloc_cb) */
            c->held.len += (size_t)nread;
            c->held.data[c->held.len] = '\0';
            return;
        }
        if (held_len(c) + (size_t)nread <= c->o.hold_max &&
            strbuf_append(&c->held, buf->base, (size_t)nread) == 0)
            return;
        /* full: the oldest go through, held or not, until there is room
         * (out of memory: everything) */
        c->hold_overflows++;
        c->forcing = 1;
        int rc = drain(c, sk);
        while (rc == 0 && held_len(c) && held_len(c) + (size_t)nread > c->o.hold_max)
            rc = feed_held(c, sk);
        if (rc == 0 && strbuf_append(&c->held, buf->base, (size_t)nread) != 0) {
            while (rc == 0 && held_len(c))
                rc = feed_held(c, sk);
            if (rc == 0)
                rc = feed(c, sk, buf->base, (size_t)nread);
        }
        if (rc == 0)
            c->forcing = 0;
        return;
    }
    feed(c, sk, buf->base, (size_t)nread);
}

/* --- connecting -------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void connect_cb(uv_connect_t *req, int status)
{
    struct ami_sock *sk = req->data;
    struct ami_conn *c = sk->c;
    if (!c || c->sock != sk)
        return;
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof(why), "connect to %s:%d failed: %s", c->o.host, c->o.port,
                 uv_strerror(status));
        conn_fail(c, why, 0);
        return;
    }
    uv_tcp_nodelay(&sk->tcp, 1);
    uv_tcp_keepalive(&sk->tcp, 1, AMI_CONN_TCP_KEEPALIVE_S);
    int rc = uv_read_start((uv_stream_t *)&sk->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof(why), "read start failed: %s", uv_strerror(rc));
        conn_fail(c, why, 0);
    }
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ami_conn *c = req->data;
    c->gai_active = 0;
    if (c->state == AMI_CONN_CLOSING) {
        if (res)
            uv_freeaddrinfo(res);
        conn_maybe_free(c);
        return;
    }
    if (status < 0 || !res) {
        char why[200];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", c->o.host, uv_strerror(status));
        if (res)
            uv_freeaddrinfo(res);
        conn_fail(c, why, 0);
        return;
    }
    struct ami_sock *sk = calloc(1, sizeof(*sk));
    if (!sk) {
        uv_freeaddrinfo(res);
        conn_fail(c, "out of memory", 0);
        return;
    }
    sk->c = c;
    uv_tcp_init(c->loop, &sk->tcp);
    sk->tcp.data = sk;
    sk->creq.data = sk;
    c->sock = sk;
    int rc = uv_tcp_connect(&sk->creq, &sk->tcp, res->ai_addr, connect_cb);
    uv_freeaddrinfo(res);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof(why), "connect to %s:%d failed: %s", c->o.host, c->o.port,
                 uv_strerror(rc));
        conn_fail(c, why, 0);
    }
}

static void conn_connect(struct ami_conn *c)
{
    c->state = AMI_CONN_CONNECTING;
    c->phase = PHASE_BANNER;
    ami_parser_free(c->parser);
    c->parser = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    if (!c->parser) {
        conn_fail(c, "out of memory", 0);
        return;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->o.connect_timeout_ms, 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", c->o.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    int rc = uv_getaddrinfo(c->loop, &c->gai, gai_cb, c->o.host, port, &hints);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", c->o.host, uv_strerror(rc));
        conn_fail(c, why, 0);
        return;
    }
    c->gai_active = 1;
}

static void sock_closed(uv_handle_t *h)
{
    struct ami_sock *sk = h->data;
    struct ami_conn *c = sk->c;
    free(sk);
    c->closes_pending--;
    conn_maybe_free(c);
}

static void close_sock(struct ami_conn *c)
{
    struct ami_sock *sk = c->sock;
    if (!sk)
        return;
    c->sock = NULL;
    c->paused = 0; /* the next connection starts afresh */
    strbuf_release(&c->held);
    c->held_off = 0;
    c->undrained = 0;
    c->forcing = 0;
    uv_read_stop((uv_stream_t *)&sk->tcp);
    c->closes_pending++;
    uv_close((uv_handle_t *)&sk->tcp, sock_closed);
}

/* Log a failure when it differs from the last one logged, or when the
 * last one was logged long ago: a PBX that is down for an hour must not
 * fill the log, but must not go silent either. */
static void log_failure(struct ami_conn *c, const char *reason, int auth, int was_up, int delay)
{
    uint64_t now = uv_now(c->loop);
    if (!was_up && !auth && !strcmp(reason, c->logged_error) &&
        now - c->logged_at < AMI_CONN_LOG_REPEAT_MS)
        return;
    snprintf(c->logged_error, sizeof(c->logged_error), "%s", reason);
    c->logged_at = now;
    if (auth)
        log_error("AMI login failed: check the AMI username/secret and manager.conf; retrying "
                  "slowly",
                  "{s:s,s:s,s:i,s:s,s:s,s:i}", "server", c->o.server, "role", c->o.role, "conn",
                  c->o.index, "username", c->o.username, "reason", reason, "retry_in_ms", delay);
    else
        log_warn(was_up ? "AMI connection lost" : "AMI connection attempt failed",
                 "{s:s,s:s,s:i,s:s,s:i}", "server", c->o.server, "role", c->o.role, "conn",
                 c->o.index, "reason", reason, "retry_in_ms", delay);
}

/* The one way down: close the socket, tell the owner if we were up, and
 * schedule the next attempt (unless we are closing). */
static void conn_fail(struct ami_conn *c, const char *reason, int auth)
{
    int was_up = c->state == AMI_CONN_UP;
    snprintf(c->last_error, sizeof(c->last_error), "%s", reason);
    close_sock(c);
    strbuf_reset(&c->outq);
    c->batches++; /* what was unsent is gone: a new batch begins */
    c->ka_outstanding = 0;
    uv_timer_stop(&c->timer);
    if (c->state == AMI_CONN_CLOSING) {
        conn_teardown(c);
        return;
    }
    if (auth) {
        c->auth_failed = 1;
        c->backoff_ms = backoff_double(c->backoff_ms, AMI_CONN_AUTH_BACKOFF_MIN_MS,
                                       AMI_CONN_AUTH_BACKOFF_MAX_MS);
    } else {
        c->backoff_ms =
            backoff_double(c->backoff_ms, AMI_CONN_BACKOFF_MIN_MS, AMI_CONN_BACKOFF_MAX_MS);
    }
    /* after a rejected login never retry sooner than the minimum: the jitter
     * only spreads retries later */
    uint64_t step = (uint64_t)c->backoff_ms;
    int delay =
        (int)(auth ? backoff_jitter(step, step + step / 4) : backoff_jitter(step / 2, step));
    c->state = AMI_CONN_BACKOFF;
    c->reconnects++;
    log_failure(c, reason, auth, was_up, delay);
    uv_timer_start(&c->timer, on_timer, (uint64_t)delay, 0);
    if (was_up && c->cbs.on_down)
        c->cbs.on_down(c, c->ud, reason);
}

static void on_timer(uv_timer_t *t)
{
    struct ami_conn *c = t->data;
    switch (c->state) {
    case AMI_CONN_BACKOFF:
        conn_connect(c);
        break;
    case AMI_CONN_CONNECTING: {
        char why[160];
        snprintf(why, sizeof(why), "no login within %d ms (connect, banner, login)",
                 c->o.connect_timeout_ms);
        if (c->gai_active) {
            uv_cancel((uv_req_t *)&c->gai);
            return; /* gai_cb runs with UV_ECANCELED and fails the attempt */
        }
        conn_fail(c, why, 0);
        break;
    }
    case AMI_CONN_CLOSING:
        conn_teardown(c); /* Logoff not answered in time */
        break;
    default:
        break;
    }
}

static void on_keepalive(uv_timer_t *t)
{
    struct ami_conn *c = t->data;
    if (c->state != AMI_CONN_UP)
        return;
    uint64_t now = uv_now(c->loop);
    uint64_t quiet = now - c->last_rx;
    if (c->ka_outstanding) {
        /* held bytes arrived since: the answer may be among them */
        if (held_len(c) || c->undrained)
            return;
        if (now - c->ka_sent_at >= (uint64_t)c->o.keepalive_ms &&
            quiet >= (uint64_t)c->o.keepalive_ms) {
            char why[128];
            snprintf(why, sizeof(why), "keepalive Ping unanswered for %llu ms",
                     (unsigned long long)(now - c->ka_sent_at));
            conn_fail(c, why, 0);
        }
        return;
    }
    if (quiet < (uint64_t)c->o.keepalive_ms || (c->cbs.busy && c->cbs.busy(c, c->ud)))
        return;
    struct ami_msg *m = ami_msg_new();
    if (!m)
        return;
    next_id(c, c->ka_id, sizeof(c->ka_id), 'K');
    ami_msg_add(m, "Action", "Ping");
    ami_msg_add(m, "ActionID", c->ka_id);
    c->ka_outstanding = 1;
    c->ka_sent_at = now;
    send_own(c, m);
}

/* --- public -------------------------------------------------------------------------- */

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

struct ami_conn *ami_conn_new(uv_loop_t *loop, const struct ami_conn_opts *o,
                              const struct ami_conn_cbs *cbs, void *ud)
{
    struct ami_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->o = *o;
    c->o.host = dup_or_empty(o->host);
    c->o.username = dup_or_empty(o->username);
    c->o.secret = dup_or_empty(o->secret);
    c->o.events = dup_or_empty(o->events ? o->events : "off");
    c->o.id_prefix = dup_or_empty(o->id_prefix);
    c->o.server = dup_or_empty(o->server);
    c->o.role = dup_or_empty(o->role);
    if (o->nfilters) {
        char **f = calloc(o->nfilters, sizeof(*f));
        for (size_t i = 0; f && i < o->nfilters; i++)
            f[i] = strdup(o->filters[i]);
        c->o.filters = f;
        c->o.nfilters = f ? o->nfilters : 0;
    }
    if (c->o.connect_timeout_ms <= 0)
        c->o.connect_timeout_ms = 5000;
    if (c->o.keepalive_ms <= 0)
        c->o.keepalive_ms = 15000;
    c->cbs = *cbs;
    c->ud = ud;
    strbuf_init(&c->outq, 0);
    strbuf_init(&c->outw, 0);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->ka_timer);
    uv_timer_init(loop, &c->release);
    uv_prepare_init(loop, &c->flush);
    c->flush.data = c;
    strbuf_init(&c->held, 0);
    c->timer.data = c;
    c->ka_timer.data = c;
    c->release.data = c;
    c->last_rx = uv_now(loop);
    return c;
}

void ami_conn_start(struct ami_conn *c)
{
    if (c->state != AMI_CONN_IDLE)
        return;
    uint64_t ka = (uint64_t)c->o.keepalive_ms;
    uv_timer_start(&c->ka_timer, on_keepalive, ka / 2 ? ka / 2 : 1, ka / 2 ? ka / 2 : 1);
    conn_connect(c);
}

void ami_conn_pause(struct ami_conn *c, int pause)
{
    pause = !!pause;
    if (c->state == AMI_CONN_CLOSING)
        return;
    c->hold_wanted = pause;
    if (c->state != AMI_CONN_UP || !c->sock || c->paused == pause)
        return;
    c->paused = pause;
    if (!pause && (held_len(c) || c->undrained))
        uv_timer_start(&c->release, on_release, 0, 0);
}

size_t ami_conn_unsent(const struct ami_conn *c, uint64_t *batch)
{
    *batch = c->batches;
    return c->outq.len;
}

size_t ami_conn_held(const struct ami_conn *c)
{
    return held_len(c);
}

int ami_conn_undrained(const struct ami_conn *c)
{
    return c->undrained;
}

uint64_t ami_conn_hold_overflows(const struct ami_conn *c)
{
    return c->hold_overflows;
}

int ami_conn_paused(const struct ami_conn *c)
{
    return c->paused;
}

void ami_conn_reset(struct ami_conn *c, const char *reason)
{
    if (c->state == AMI_CONN_UP || c->state == AMI_CONN_CONNECTING)
        conn_fail(c, reason, 0);
}

/* Start the final teardown once: close every handle; conn_maybe_free()
 * releases the memory when the last close callback has run. */
static void conn_teardown(struct ami_conn *c)
{
    if (c->tearing)
        return;
    c->tearing = 1;
    if (c->gai_active)
        uv_cancel((uv_req_t *)&c->gai);
    close_sock(c);
    c->closes_pending += 4;
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->ka_timer, handle_closed);
    uv_close((uv_handle_t *)&c->release, handle_closed);
    uv_close((uv_handle_t *)&c->flush, handle_closed);
}

static void conn_maybe_free(struct ami_conn *c)
{
    if (!c->tearing || c->closes_pending > 0 || c->gai_active)
        return;
    ami_parser_free(c->parser);
    strbuf_release(&c->outq);
    strbuf_release(&c->outw);
    explicit_bzero((char *)c->o.secret, strlen(c->o.secret));
    free((char *)c->o.host);
    free((char *)c->o.username);
    free((char *)c->o.secret);
    free((char *)c->o.events);
    free((char *)c->o.id_prefix);
    free((char *)c->o.server);
    free((char *)c->o.role);
    for (size_t i = 0; i < c->o.nfilters; i++)
        free(c->o.filters[i]);
    free((void *)c->o.filters);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done)
        done(arg);
}

void ami_conn_close(struct ami_conn *c, void (*done)(void *arg), void *arg)
{
    int was_up = c->state == AMI_CONN_UP;
    c->done = done;
    c->done_arg = arg;
    c->state = AMI_CONN_CLOSING;
    /* no more holding: what is held is read (for the Goodbye); its events
     * are not passed on any more */
    if (held_len(c))
        log_warn("AMI events held back are dropped at close", "{s:s,s:I}", "server", c->o.server,
                 "bytes", (json_int_t)held_len(c));
    c->hold_wanted = 0;
    if (c->paused) {
        c->paused = 0;
        if (held_len(c) || c->undrained)
            uv_timer_start(&c->release, on_release, 0, 0);
    }
    uv_timer_stop(&c->ka_timer);
    uv_timer_stop(&c->timer);
    if (was_up && c->sock) {
        struct ami_msg *m = ami_msg_new();
        if (m) {
            next_id(c, c->logoff_id, sizeof(c->logoff_id), 'X');
            ami_msg_add(m, "Action", "Logoff");
            ami_msg_add(m, "ActionID", c->logoff_id);
            if (send_own(c, m) == 0) {
                uv_timer_start(&c->timer, on_timer, AMI_CONN_LOGOFF_WAIT_MS, 0);
                return;
            }
        }
    }
    conn_teardown(c);
}

enum ami_conn_state ami_conn_state(const struct ami_conn *c)
{
    return c->state;
}

const char *ami_conn_last_error(const struct ami_conn *c)
{
    return c->last_error;
}

int ami_conn_auth_failed(const struct ami_conn *c)
{
    return c->auth_failed;
}

uint64_t ami_conn_login_attempts(const struct ami_conn *c)
{
    return c->login_attempts;
}

uint64_t ami_conn_reconnects(const struct ami_conn *c)
{
    return c->reconnects;
}

uint64_t ami_conn_last_rx(const struct ami_conn *c)
{
    return c->last_rx;
}

const char *ami_conn_banner(const struct ami_conn *c)
{
    return c->banner;
}

const char *ami_conn_role(const struct ami_conn *c)
{
    return c->o.role;
}

int ami_conn_index(const struct ami_conn *c)
{
    return c->o.index;
}
