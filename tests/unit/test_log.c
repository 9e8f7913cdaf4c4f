/* Unit tests for core/log: a line written by hand (log_begin, members,
 * log_end) is byte for byte the line log_emit writes from a jansson
 * object with the same members, but for the time; a string that is not
 * UTF-8 is repaired instead of costing the line its fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/jsonw.h"
#include "core/log.h"
#include "core/strbuf.h"

/* stderr goes to a file while `fn` runs; its lines come back in out. */
static void capture(void (*fn)(void), char *out, size_t len)
{
    char path[] = "/tmp/amibridge-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    ssize_t n = pread(fd, out, len - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
}

/* The time differs between two lines: compare without it. */
static void drop_time(char *line)
{
    char *t = strstr(line, "\"time\":\"");
    assert_non_null(t);
    char *end = strchr(t + 8, '"');
    assert_non_null(end);
    memmove(t + 8, end, strlen(end) + 1);
}

static void by_jansson(void)
{
    json_t *f = json_pack("{s:s,s:i,s:f,s:s}", "path", "/v1/actions/Ping\t\"x\"", "status", 200,
                          "ms", 0.1 + 0.2, "peer", "127.0.0.1");
    json_object_set_new(f, "aborted", json_true());
    log_emit(LOG_INFO, "http request", f);
}

static void by_hand(void)
{
    struct strbuf b;
    strbuf_init(&b, 0);
    const char *path = "/v1/actions/Ping\t\"x\"";
    int rc = log_begin(&b, LOG_INFO, "http request");
    rc = rc ? rc : strbuf_append_str(&b, ",\"path\":");
    rc = rc ? rc : jsonw_string(&b, path, strlen(path));
    rc = rc ? rc : strbuf_append_str(&b, ",\"status\":");
    rc = rc ? rc : jsonw_u64(&b, 200);
    rc = rc ? rc : strbuf_append_str(&b, ",\"ms\":");
    rc = rc ? rc : jsonw_real(&b, 0.1 + 0.2, 10);
    rc = rc ? rc : strbuf_append_str(&b, ",\"peer\":\"127.0.0.1\",\"aborted\":true");
    log_end(&b, rc);
    strbuf_release(&b);
}

static void a_line_by_hand_is_the_line_log_emit_writes(void **state)
{
    (void)state;
    log_set_level(LOG_INFO);
    char a[1024], b[1024];
    capture(by_jansson, a, sizeof(a));
    capture(by_hand, b, sizeof(b));
    assert_non_null(strchr(b, '\n'));
    assert_int_equal(strchr(b, '\n')[1], '\0'); /* one line */
    drop_time(a);
    drop_time(b);
    assert_string_equal(b, a);
}

static void not_utf8(void)
{
    struct strbuf b;
    strbuf_init(&b, 0);
    int rc = log_begin(&b, LOG_INFO, "http request");
    rc = rc ? rc : strbuf_append_str(&b, ",\"path\":");
    rc = rc ? rc : jsonw_string(&b, "/v1/\xff", 5);
    log_end(&b, rc);
    strbuf_release(&b);
}

static void a_string_that_is_not_utf8_is_repaired(void **state)
{
    (void)state;
    char a[512];
    capture(not_utf8, a, sizeof(a));
    json_t *j = json_loads(a, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "http request");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_line_by_hand_is_the_line_log_emit_writes),
        cmocka_unit_test(a_string_that_is_not_utf8_is_repaired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
