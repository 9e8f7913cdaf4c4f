/* Unit tests for src/ami/parser: every transcript a real Asterisk produced,
 * fed whole, byte by byte, in the TCP segments Asterisk really sent, and
 * split at every byte offset; plus the legacy formats and every cap.
 *
 * The expected messages come from a deliberately naive oracle (split the
 * whole capture on CRLF CRLF, then on the first colon), which only works on
 * complete, well-formed input; the parser must agree with it under any
 * chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ami/parser.h"

/* --- fixtures ---------------------------------------------------------------- */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    assert_non_null(q);
    return q;
}

static const char *data_dir(void)
{
    const char *d = getenv("AMIBRIDGE_TEST_DATA");
    return d && *d ? d : "tests/data";
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        assert_int_equal(strbuf_append(&sb, buf, n), 0);
    fclose(f);
    return strbuf_detach(&sb, len);
}

static char *transcript_path(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/transcripts/%s", data_dir(), name);
    return path;
}

/* Names of all `.recv` files, sorted. */
static size_t list_recv(char ***out)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/transcripts", data_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".recv") == 0) {
            names = xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    *out = names;
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* --- the oracle ---------------------------------------------------------------- */

struct omsg {
    struct ami_msg *msg;
    size_t start, end; /* byte range in the capture, terminator included */
};

struct oracle {
    struct omsg *v;
    size_t n;
};

static void oracle_free(struct oracle *o)
{
    for (size_t i = 0; i < o->n; i++)
        ami_msg_free(o->v[i].msg);
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

static void oracle_push(struct oracle *o, struct ami_msg *m, size_t start, size_t end)
{
    o->v = xrealloc(o->v, (o->n + 1) * sizeof(*o->v));
    o->v[o->n++] = (struct omsg){m, start, end};
}

/* Split a complete CRLF capture into messages. */
static void oracle_parse(const char *s, size_t len, int banner, struct oracle *o)
{
    size_t i = 0;
    if (banner) {
        const char *nl = strstr(s, "\r\n");
        assert_non_null(nl);
        struct ami_msg *m = ami_msg_new();
        ami_msg_addn(m, "Banner", 6, s, (size_t)(nl - s));
        ami_msg_set_kind(m, AMI_MSG_BANNER);
        i = (size_t)(nl - s) + 2;
        oracle_push(o, m, 0, i);
    }
    while (i < len) {
        const char *endp = memmem(s + i, len - i, "\r\n\r\n", 4);
        assert_non_null(endp); /* captures end on a whole message */
        size_t end = (size_t)(endp - s) + 4;
        struct ami_msg *m = ami_msg_new();
        size_t ls = i;
        while (ls < end - 2) {
            const char *le = memmem(s + ls, end - ls, "\r\n", 2);
            const char *colon = memchr(s + ls, ':', (size_t)(le - (s + ls)));
            assert_non_null(colon);
            const char *v = colon + 1;
            if (*v == ' ')
                v++;
            ami_msg_addn(m, s + ls, (size_t)(colon - (s + ls)), v, (size_t)(le - v));
            ls = (size_t)(le - s) + 2;
        }
        oracle_push(o, m, i, end);
        i = end;
    }
}

/* --- comparing ------------------------------------------------------------------ */

static void assert_same_msg(const struct ami_msg *a, const struct ami_msg *b)
{
    assert_int_equal(ami_msg_kind(a), ami_msg_kind(b));
    assert_int_equal(ami_msg_count(a), ami_msg_count(b));
    for (size_t i = 0; i < ami_msg_count(a); i++) {
        assert_string_equal(ami_msg_key_at(a, i), ami_msg_key_at(b, i));
        assert_string_equal(ami_msg_value_at(a, i), ami_msg_value_at(b, i));
    }
}

struct got {
    struct ami_msg **v;
    size_t n;
};

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        ami_msg_free(g->v[i]);
    free(g->v);
    g->v = NULL;
    g->n = 0;
}

static void drain(struct ami_parser *p, struct got *g)
{
    struct ami_msg *m;
    int rc;
    while ((rc = ami_parser_next(p, &m)) == 1) {
        g->v = xrealloc(g->v, (g->n + 1) * sizeof(*g->v));
        g->v[g->n++] = m;
    }
    if (rc < 0)
        fail_msg("parser error: %s", ami_parser_errstr(p));
}

static void assert_matches_oracle(const struct got *g, const struct oracle *o, size_t first)
{
    for (size_t i = 0; i < g->n; i++)
        assert_same_msg(g->v[i], o->v[first + i].msg);
}

/* Is this capture an AMI TCP stream (not Asterisk's HTTP manager)? */
static int is_tcp_capture(const char *s, size_t len)
{
    return len >= 22 && memcmp(s, "Asterisk Call Manager/", 22) == 0;
}

/* --- every transcript, every chunking ----------------------------------------- */

static void parse_whole(const char *s, size_t len, struct got *g)
{
    struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    assert_int_equal(ami_parser_feed(p, s, len), 0);
    drain(p, g);
    assert_int_equal(ami_parser_pending(p), 0);
    ami_parser_free(p);
}

static void parser_matches_oracle_on_every_transcript_whole_and_bytewise(void **state)
{
    (void)state;
    char **names;
    size_t nfiles = list_recv(&names), tcp = 0;
    assert_true(nfiles >= 50);
    for (size_t f = 0; f < nfiles; f++) {
        size_t len;
        char *s = slurp(transcript_path(names[f]), &len);
        assert_non_null(s);
        /* scenarios 09* are Asterisk's HTTP manager, all others AMI over TCP:
         * no capture may be skipped by mistake */
        int http = strncmp(names[f], "09", 2) == 0;
        assert_int_equal(is_tcp_capture(s, len), !http);
        if (http) {
            free(s);
            continue;
        }
        tcp++;
        struct oracle o = {0};
        oracle_parse(s, len, 1, &o);
        assert_true(o.n >= 1);

        struct got whole = {0};
        parse_whole(s, len, &whole);
        assert_int_equal(whole.n, o.n);
        assert_matches_oracle(&whole, &o, 0);
        got_free(&whole);

        struct got bytes = {0};
        struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
        for (size_t i = 0; i < len; i++) {
            assert_int_equal(ami_parser_feed(p, s + i, 1), 0);
            drain(p, &bytes);
        }
        assert_int_equal(bytes.n, o.n);
        assert_matches_oracle(&bytes, &o, 0);
        got_free(&bytes);
        ami_parser_free(p);
        oracle_free(&o);
        free(s);
    }
    print_message("parsed %zu AMI TCP captures whole and byte by byte\n", tcp);
    assert_true(tcp >= 38);
    free_names(names, nfiles);
}

/* Split at every offset. Only the message(s) around the split can be
 * affected, so each split is checked on the window from the start of the
 * message holding the split point to the end of the next one: this keeps the
 * work linear in the capture size while still covering every offset. */
static void parser_matches_oracle_split_at_every_offset(void **state)
{
    (void)state;
    char **names;
    size_t nfiles = list_recv(&names), splits = 0;
    for (size_t f = 0; f < nfiles; f++) {
        size_t len;
        char *s = slurp(transcript_path(names[f]), &len);
        if (!is_tcp_capture(s, len)) {
            free(s);
            continue;
        }
        struct oracle o = {0};
        oracle_parse(s, len, 1, &o);
        size_t mi = 0;
        for (size_t k = 1; k < len; k++) {
            while (o.v[mi].end <= k)
                mi++;
            size_t last = mi + 1 < o.n ? mi + 1 : mi;
            size_t ws = o.v[mi].start, we = o.v[last].end;
            int banner = (ws == 0);
            struct ami_parser *p = ami_parser_new(NULL, banner ? AMI_PARSER_EXPECT_BANNER : 0);
            struct got g = {0};
            assert_int_equal(ami_parser_feed(p, s + ws, k - ws), 0);
            drain(p, &g);
            assert_int_equal(ami_parser_feed(p, s + k, we - k), 0);
            drain(p, &g);
            assert_int_equal(g.n, last - mi + 1);
            assert_matches_oracle(&g, &o, mi);
            got_free(&g);
            ami_parser_free(p);
            splits++;
        }
        oracle_free(&o);
        free(s);
    }
    print_message("checked %zu split points\n", splits);
    assert_true(splits > 100000);
    free_names(names, nfiles);
}

/* The .txt timelines record the byte count of every recv() Asterisk's
 * segments produced; feed the capture in exactly those segments. */
static void parser_handles_the_real_tcp_segmentation(void **state)
{
    (void)state;
    char **names;
    size_t nfiles = list_recv(&names), segs = 0;
    for (size_t f = 0; f < nfiles; f++) {
        size_t len, tlen;
        char *s = slurp(transcript_path(names[f]), &len);
        if (!is_tcp_capture(s, len)) {
            free(s);
            continue;
        }
        char txtname[512];
        snprintf(txtname, sizeof(txtname), "%.*s.txt", (int)(strlen(names[f]) - 5), names[f]);
        char *t = slurp(transcript_path(txtname), &tlen);
        assert_non_null(t);
        struct oracle o = {0};
        oracle_parse(s, len, 1, &o);
        struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
        struct got g = {0};
        size_t off = 0;
        for (const char *m = t; (m = strstr(m, "<<< S->C ")); m++) {
            const char *b = strstr(m, "s ");
            size_t n = strtoul(b + 2, NULL, 10);
            assert_true(off + n <= len);
            assert_int_equal(ami_parser_feed(p, s + off, n), 0);
            drain(p, &g);
            off += n;
            segs++;
        }
        assert_int_equal(off, len);
        assert_int_equal(g.n, o.n);
        assert_matches_oracle(&g, &o, 0);
        got_free(&g);
        ami_parser_free(p);
        oracle_free(&o);
        free(t);
        free(s);
    }
    print_message("fed %zu real TCP segments\n", segs);
    free_names(names, nfiles);
}

/* Every Response in a capture answers the actions of the matching .sent
 * file in order, carrying their ActionIDs. */
static void responses_carry_the_sent_actionids_in_order(void **state)
{
    (void)state;
    char **names;
    size_t nfiles = list_recv(&names), checked = 0;
    for (size_t f = 0; f < nfiles; f++) {
        size_t len, slen;
        char *s = slurp(transcript_path(names[f]), &len);
        if (!is_tcp_capture(s, len)) {
            free(s);
            continue;
        }
        char sentname[512];
        snprintf(sentname, sizeof(sentname), "%.*s.sent", (int)(strlen(names[f]) - 5), names[f]);
        char *sent = slurp(transcript_path(sentname), &slen);
        assert_non_null(sent);

        struct got actions = {0}, replies = {0};
        struct ami_parser *p = ami_parser_new(NULL, 0);
        assert_int_equal(ami_parser_feed(p, sent, slen), 0);
        drain(p, &actions);
        ami_parser_free(p);
        parse_whole(s, len, &replies);

        size_t r = 0;
        for (size_t a = 0; a < actions.n; a++) {
            while (r < replies.n && ami_msg_kind(replies.v[r]) != AMI_MSG_RESPONSE)
                r++;
            if (r == replies.n)
                break; /* the server closed before answering (restart, kill) */
            const char *want = ami_msg_get(actions.v[a], "ActionID");
            const char *have = ami_msg_get(replies.v[r], "ActionID");
            if (want) {
                assert_non_null(have);
                assert_string_equal(want, have);
            } else {
                assert_null(have);
            }
            r++;
            checked++;
        }
        /* and no response is left over */
        for (; r < replies.n; r++)
            assert_int_not_equal(ami_msg_kind(replies.v[r]), AMI_MSG_RESPONSE);
        got_free(&actions);
        got_free(&replies);
        free(sent);
        free(s);
    }
    print_message("matched %zu responses to their actions\n", checked);
    assert_true(checked > 100);
    free_names(names, nfiles);
}

/* Asterisk's HTTP manager (/rawman) carries AMI messages in HTTP bodies
 * with no banner: those bodies parse too. XML, HTML and JSON bodies are
 * not AMI and are only counted. */
static void rawman_http_bodies_parse_as_ami(void **state)
{
    (void)state;
    char **names;
    size_t nfiles = list_recv(&names), bodies = 0, msgs = 0, other = 0;
    for (size_t f = 0; f < nfiles; f++) {
        size_t len;
        char *s = slurp(transcript_path(names[f]), &len);
        if (is_tcp_capture(s, len)) {
            free(s);
            continue;
        }
        assert_memory_equal(s, "HTTP/1.1 ", 9);
        size_t i = 0;
        while (i < len) {
            const char *hend = memmem(s + i, len - i, "\r\n\r\n", 4);
            assert_non_null(hend);
            const char *cl = strcasestr(s + i, "\r\nContent-Length: ");
            assert_true(cl && cl < hend);
            size_t blen = strtoul(cl + 18, NULL, 10);
            const char *body = hend + 4;
            assert_true((size_t)(body - s) + blen <= len);
            const char *ct = strcasestr(s + i, "\r\nContent-type: text/plain");
            int plain = ct && ct < hend;
            if (plain) {
                struct oracle o = {0};
                oracle_parse(body, blen, 0, &o);
                struct got g = {0};
                struct ami_parser *p = ami_parser_new(NULL, 0);
                assert_int_equal(ami_parser_feed(p, body, blen), 0);
                drain(p, &g);
                assert_int_equal(g.n, o.n);
                assert_matches_oracle(&g, &o, 0);
                assert_true(g.n >= 1);
                assert_int_equal(ami_msg_kind(g.v[0]), AMI_MSG_RESPONSE);
                msgs += g.n;
                got_free(&g);
                oracle_free(&o);
                ami_parser_free(p);
                bodies++;
            } else {
                other++;
            }
            i = (size_t)(body - s) + blen;
        }
        free(s);
    }
    print_message("%zu rawman bodies (%zu messages), %zu non-AMI bodies\n", bodies, msgs, other);
    assert_true(bodies >= 6);
    free_names(names, nfiles);
}

/* --- specific facts from the captures -------------------------------------------- */

static void load_msgs(const char *name, struct got *g)
{
    size_t len;
    char *s = slurp(transcript_path(name), &len);
    assert_non_null(s);
    parse_whole(s, len, g);
    free(s);
}

static void command_output_lines_are_repeated_keys_in_order(void **state)
{
    (void)state;
    struct got g = {0};
    load_msgs("05g-command.recv", &g);
    const struct ami_msg *q = NULL, *bad = NULL;
    for (size_t i = 0; i < g.n; i++) {
        const char *id = ami_msg_get(g.v[i], "ActionID");
        if (id && !strcmp(id, "cmd-queue"))
            q = g.v[i];
        if (id && !strcmp(id, "cmd-bad"))
            bad = g.v[i];
    }
    assert_non_null(q);
    assert_int_equal(ami_msg_count_key(q, "Output"), 7);
    assert_string_equal(ami_msg_get_nth(q, "output", 1), "   Members: ");
    assert_string_equal(ami_msg_get_nth(q, "Output", 5), ""); /* "Output: " */
    assert_null(ami_msg_get_nth(q, "Output", 7));
    assert_non_null(strstr(ami_msg_get(q, "Output"), "sales has 0 calls"));
    assert_non_null(bad);
    assert_string_equal(ami_msg_name(bad), "Error");
    assert_string_equal(ami_msg_get(bad, "Message"), "Command output follows");
    got_free(&g);
}

static void originate_response_is_an_event_with_a_response_key(void **state)
{
    (void)state;
    struct got g = {0};
    load_msgs("04d-originate-async-same-connection.recv", &g);
    size_t found = 0;
    for (size_t i = 0; i < g.n; i++) {
        if (strcmp(ami_msg_name(g.v[i]), "OriginateResponse"))
            continue;
        assert_int_equal(ami_msg_kind(g.v[i]), AMI_MSG_EVENT);
        assert_non_null(ami_msg_get(g.v[i], "Response"));
        found++;
    }
    assert_int_equal(found, 2);
    assert_int_equal(ami_msg_kind(g.v[0]), AMI_MSG_BANNER);
    assert_string_equal(ami_msg_get(g.v[0], "Banner"), "Asterisk Call Manager/11.0.0");
    got_free(&g);
}

static void event_list_items_and_complete_carry_the_actionid(void **state)
{
    (void)state;
    struct got g = {0};
    load_msgs("03c-viewer-permission-denied.recv", &g);
    size_t items = 0;
    const struct ami_msg *complete = NULL;
    for (size_t i = 0; i < g.n; i++) {
        const char *id = ami_msg_get(g.v[i], "ActionID");
        if (!id || strcmp(id, "v-qstatus") || ami_msg_kind(g.v[i]) != AMI_MSG_EVENT)
            continue;
        if (ami_msg_is(g.v[i], "EventList", "Complete"))
            complete = g.v[i];
        else
            items++;
    }
    assert_int_equal(items, 5);
    assert_non_null(complete);
    assert_string_equal(ami_msg_get(complete, "ListItems"), "5");
    got_free(&g);
}

static void pipelined_replies_keep_order(void **state)
{
    (void)state;
    static const char *want[] = {"main-1", "p1", "p2", "p3", "p4", "p5",
                                 "p6",     "p7", "p8", "p9", "bye"};
    struct got g = {0};
    load_msgs("07a-pipelined-pings.recv", &g);
    size_t k = 0;
    for (size_t i = 0; i < g.n; i++) {
        if (ami_msg_kind(g.v[i]) != AMI_MSG_RESPONSE)
            continue;
        assert_true(k < 11);
        assert_string_equal(ami_msg_get(g.v[i], "ActionID"), want[k++]);
    }
    assert_int_equal(k, 11);
    got_free(&g);
}

static void listcommands_values_keep_their_inner_spaces(void **state)
{
    (void)state;
    struct got g = {0};
    load_msgs("05j-misc-actions.recv", &g);
    const struct ami_msg *lc = NULL;
    for (size_t i = 0; i < g.n; i++) {
        const char *id = ami_msg_get(g.v[i], "ActionID");
        if (id && !strcmp(id, "lc"))
            lc = g.v[i];
    }
    assert_non_null(lc);
    /* "Originate:  (Priv: originate,all)": one space is the separator */
    assert_string_equal(ami_msg_get(lc, "Originate"), " (Priv: originate,all)");
    assert_true(ami_msg_count(lc) > 70);
    got_free(&g);
}

/* --- formats the captures do not show -------------------------------------------- */

static struct got parse_str(const char *s, int flags)
{
    struct got g = {0};
    struct ami_parser *p = ami_parser_new(NULL, flags);
    assert_int_equal(ami_parser_feed(p, s, strlen(s)), 0);
    drain(p, &g);
    ami_parser_free(p);
    return g;
}

static void bare_lf_and_mixed_terminators_frame_messages(void **state)
{
    (void)state;
    struct got g = parse_str("Asterisk Call Manager/1.1\n"
                             "Response: Success\nActionID: a\n\n"
                             "Response: Success\r\nActionID: b\r\n\n"
                             "\r\n\n"
                             "Event: X\r\nKey: with: colons: inside\r\n\r\n",
                             AMI_PARSER_EXPECT_BANNER);
    assert_int_equal(g.n, 4);
    assert_int_equal(ami_msg_kind(g.v[0]), AMI_MSG_BANNER);
    assert_string_equal(ami_msg_get(g.v[1], "ActionID"), "a");
    assert_string_equal(ami_msg_get(g.v[2], "ActionID"), "b");
    assert_string_equal(ami_msg_get(g.v[3], "Key"), "with: colons: inside");
    got_free(&g);
}

static void legacy_follows_command_output_becomes_output_keys(void **state)
{
    (void)state;
    /* Asterisk 1.4-13: raw output lines, blank ones included, until the
     * --END COMMAND-- marker, which may be glued to the last line. */
    struct got g = parse_str("Response: Follows\r\n"
                             "Privilege: Command\r\n"
                             "ActionID: old-1\r\n"
                             "Channel              Location\r\n"
                             "\r\n"
                             "Key: looks like a header\r\n"
                             "0 active channels\n"
                             "--END COMMAND--\r\n\r\n"
                             "Response: Follows\r\n"
                             "ActionID: old-2\r\n"
                             "no newline--END COMMAND--\r\n\r\n"
                             "Response: Success\r\nActionID: after\r\n\r\n",
                             0);
    assert_int_equal(g.n, 3);
    assert_string_equal(ami_msg_get(g.v[0], "ActionID"), "old-1");
    assert_string_equal(ami_msg_get(g.v[0], "Privilege"), "Command");
    assert_int_equal(ami_msg_count_key(g.v[0], "Output"), 4);
    assert_string_equal(ami_msg_get_nth(g.v[0], "Output", 1), "");
    assert_string_equal(ami_msg_get_nth(g.v[0], "Output", 2), "Key: looks like a header");
    assert_string_equal(ami_msg_get_nth(g.v[0], "Output", 3), "0 active channels");
    assert_int_equal(ami_msg_count_key(g.v[1], "Output"), 1);
    assert_string_equal(ami_msg_get(g.v[1], "Output"), "no newline");
    assert_string_equal(ami_msg_get(g.v[2], "ActionID"), "after");
    got_free(&g);
}

static void follows_marker_without_blank_line_still_ends_the_message(void **state)
{
    (void)state;
    struct got g = parse_str("Response: Follows\r\nActionID: x\r\nout\r\n--END COMMAND--\r\n"
                             "Response: Success\r\nActionID: y\r\n\r\n",
                             0);
    assert_int_equal(g.n, 2);
    assert_string_equal(ami_msg_get(g.v[0], "Output"), "out");
    assert_string_equal(ami_msg_get(g.v[1], "ActionID"), "y");
    got_free(&g);
}

/* --- caps ------------------------------------------------------------------------- */

static int feed_until_error(struct ami_parser *p, const char *s, size_t len, size_t chunk)
{
    struct ami_msg *m;
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        if (ami_parser_feed(p, s + i, n) < 0)
            return -1;
        int rc;
        while ((rc = ami_parser_next(p, &m)) == 1)
            ami_msg_free(m);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void line_cap_is_enforced_before_the_newline_arrives(void **state)
{
    (void)state;
    struct ami_parser_limits lim = {.max_line = 100};
    struct ami_parser *p = ami_parser_new(&lim, 0);
    char line[400];
    memset(line, 'a', sizeof(line));
    memcpy(line, "Key: ", 5);
    /* no newline at all: the error must come without waiting for one */
    assert_int_equal(feed_until_error(p, line, sizeof(line), 7), -1);
    assert_int_equal(ami_parser_error(p), AMI_PERR_LINE_TOO_LONG);
    assert_non_null(strstr(ami_parser_errstr(p), "100"));
    assert_true(ami_parser_pending(p) < 200);
    /* stays failed */
    struct ami_msg *m;
    assert_int_equal(ami_parser_feed(p, "x", 1), -1);
    assert_int_equal(ami_parser_next(p, &m), -1);
    ami_parser_free(p);

    /* exactly at the cap is fine, one over is not */
    p = ami_parser_new(&lim, 0);
    char ok[128];
    memset(ok, 'b', 100);
    memcpy(ok, "K: ", 3);
    memcpy(ok + 100, "\r\n\r\n", 4);
    assert_int_equal(feed_until_error(p, ok, 104, 104), 0);
    ami_parser_free(p);
    p = ami_parser_new(&lim, 0);
    memset(ok, 'b', 101);
    memcpy(ok, "K: ", 3);
    memcpy(ok + 101, "\r\n\r\n", 4);
    assert_int_equal(feed_until_error(p, ok, 105, 105), -1);
    assert_int_equal(ami_parser_error(p), AMI_PERR_LINE_TOO_LONG);
    ami_parser_free(p);
}

static void header_cap_is_enforced(void **state)
{
    (void)state;
    struct ami_parser_limits lim = {.max_headers = 10};
    struct ami_parser *p = ami_parser_new(&lim, 0);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    strbuf_append_str(&sb, "Response: Success\r\n");
    for (int i = 0; i < 9; i++)
        strbuf_printf(&sb, "H%d: v\r\n", i);
    strbuf_append_str(&sb, "\r\n"); /* 10 headers: allowed */
    strbuf_append_str(&sb, "Event: Big\r\n");
    for (int i = 0; i < 10; i++)
        strbuf_printf(&sb, "H%d: v\r\n", i);
    strbuf_append_str(&sb, "\r\n"); /* 11: refused */
    assert_int_equal(ami_parser_feed(p, sb.data, sb.len), 0);
    struct ami_msg *m;
    assert_int_equal(ami_parser_next(p, &m), 1);
    assert_int_equal(ami_msg_count(m), 10);
    ami_msg_free(m);
    assert_int_equal(ami_parser_next(p, &m), -1);
    assert_null(m);
    assert_int_equal(ami_parser_error(p), AMI_PERR_TOO_MANY_HEADERS);
    assert_non_null(strstr(ami_parser_errstr(p), "10 headers"));
    strbuf_release(&sb);
    ami_parser_free(p);
}

static void message_cap_is_enforced_and_memory_stays_bounded(void **state)
{
    (void)state;
    struct ami_parser_limits lim = {.max_message = 4096};
    struct ami_parser *p = ami_parser_new(&lim, 0);
    /* an endless message of valid lines, fed in small chunks */
    const char *line = "Output: some command output line\r\n";
    size_t fed = 0;
    int rc = 0;
    while (fed < 1000000 && rc == 0) {
        rc = feed_until_error(p, line, strlen(line), 64);
        fed += strlen(line);
    }
    assert_int_equal(rc, -1);
    assert_true(fed < 4096 + 200);
    assert_int_equal(ami_parser_error(p), AMI_PERR_MESSAGE_TOO_BIG);
    ami_parser_free(p);

    /* a legacy Follows reply without its end marker is capped too */
    p = ami_parser_new(&lim, 0);
    rc = feed_until_error(p, "Response: Follows\r\n", 19, 64);
    fed = 0;
    while (fed < 1000000 && rc == 0) {
        rc = feed_until_error(p, "\r\n", 2, 2);
        fed += 2;
    }
    assert_int_equal(ami_parser_error(p), AMI_PERR_MESSAGE_TOO_BIG);
    ami_parser_free(p);
}

static void feeding_without_draining_is_bounded(void **state)
{
    (void)state;
    struct ami_parser_limits lim = {.max_message = 1024};
    struct ami_parser *p = ami_parser_new(&lim, 0);
    const char *msg = "Event: Flood\r\nSeq: 1\r\n\r\n";
    size_t fed = 0;
    int rc = 0;
    while (rc == 0 && fed < 10 * 1024 * 1024) {
        rc = ami_parser_feed(p, msg, strlen(msg));
        fed += strlen(msg);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(ami_parser_error(p), AMI_PERR_BUFFER_FULL);
    assert_true(ami_parser_pending(p) <= 1024 + AMI_PARSER_FEED_SLACK);
    ami_parser_free(p);
}

static void lines_without_colon_and_nul_bytes_are_errors(void **state)
{
    (void)state;
    struct ami_parser *p = ami_parser_new(NULL, 0);
    struct ami_msg *m;
    assert_int_equal(ami_parser_feed(p, "Response: Success\r\nthis is garbage\r\n\r\n", 38), 0);
    assert_int_equal(ami_parser_next(p, &m), -1);
    assert_int_equal(ami_parser_error(p), AMI_PERR_SYNTAX);
    assert_non_null(strstr(ami_parser_errstr(p), "this is garbage"));
    ami_parser_free(p);

    p = ami_parser_new(NULL, 0);
    assert_int_equal(ami_parser_feed(p, "Response: Suc\0cess\r\n\r\n", 22), 0);
    assert_int_equal(ami_parser_next(p, &m), -1);
    assert_int_equal(ami_parser_error(p), AMI_PERR_NUL);
    ami_parser_free(p);

    p = ami_parser_new(NULL, 0);
    assert_int_equal(ami_parser_feed(p, ": no key\r\n\r\n", 12), 0);
    assert_int_equal(ami_parser_next(p, &m), -1);
    assert_int_equal(ami_parser_error(p), AMI_PERR_SYNTAX);
    ami_parser_free(p);
}

static void banner_is_taken_from_the_first_line_only(void **state)
{
    (void)state;
    struct got g = parse_str("\r\nAsterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n",
                             AMI_PARSER_EXPECT_BANNER);
    assert_int_equal(g.n, 2);
    assert_int_equal(ami_msg_kind(g.v[0]), AMI_MSG_BANNER);
    assert_int_equal(ami_msg_kind(g.v[1]), AMI_MSG_RESPONSE);
    got_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parser_matches_oracle_on_every_transcript_whole_and_bytewise),
        cmocka_unit_test(parser_matches_oracle_split_at_every_offset),
        cmocka_unit_test(parser_handles_the_real_tcp_segmentation),
        cmocka_unit_test(responses_carry_the_sent_actionids_in_order),
        cmocka_unit_test(rawman_http_bodies_parse_as_ami),
        cmocka_unit_test(command_output_lines_are_repeated_keys_in_order),
        cmocka_unit_test(originate_response_is_an_event_with_a_response_key),
        cmocka_unit_test(event_list_items_and_complete_carry_the_actionid),
        cmocka_unit_test(pipelined_replies_keep_order),
        cmocka_unit_test(listcommands_values_keep_their_inner_spaces),
        cmocka_unit_test(bare_lf_and_mixed_terminators_frame_messages),
        cmocka_unit_test(legacy_follows_command_output_becomes_output_keys),
        cmocka_unit_test(follows_marker_without_blank_line_still_ends_the_message),
        cmocka_unit_test(line_cap_is_enforced_before_the_newline_arrives),
        cmocka_unit_test(header_cap_is_enforced),
        cmocka_unit_test(message_cap_is_enforced_and_memory_stays_bounded),
        cmocka_unit_test(feeding_without_draining_is_bounded),
        cmocka_unit_test(lines_without_colon_and_nul_bytes_are_errors),
        cmocka_unit_test(banner_is_taken_from_the_first_line_only),
    };
    return cmocka_run_group_tests_name("ami_parser", tests, NULL, NULL);
}
