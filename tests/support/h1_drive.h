/* A client's byte stream through src/http/h1 as http/server takes it:
 * heads delimited and read, bodies followed, the bytes arriving `step` at
 * a time (0: all at once). What happened is written to `log` as text, one
 * line per request ("GET /x 1.1 body=3:abc" or "error 400 bad-framing"),
 * so that two ways of feeding the same stream can be compared. Shared by
 * test_h1 and fuzz_h1. */
#ifndef AMIBRIDGE_TESTS_H1_DRIVE_H
#define AMIBRIDGE_TESTS_H1_DRIVE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "http/h1.h"

static void h1_drive_data(void *ud, const char *data, size_t n)
{
    strbuf_append(ud, data, n);
}

/* Returns the number of requests read whole. */
static inline int h1_drive(const char *data, size_t size, size_t step, struct strbuf *log)
{
    struct strbuf in, body;
    strbuf_init(&in, 0);
    strbuf_init(&body, 0);
    size_t from = 0, fed = 0;
    int in_body = 0, nreq = 0, failed = 0;
    struct h1_head h;
    struct h1_body b;
    memset(&h, 0, sizeof(h));
    while (!failed && fed < size) {
        size_t take = step && size - fed > step ? step : size - fed;
        strbuf_append(&in, data + fed, take);
        fed += take;
        for (;;) {
            struct h1_error e;
            if (!in_body) {
                ssize_t n = h1_head_end(in.data, in.len, &from, &e);
                if (n == 0)
                    break;
                if (n < 0 || h1_head_parse(in.data, (size_t)n, &h, &e) != 0) {
                    strbuf_printf(log, "error %d %s\n", e.status, e.slug);
                    h1_head_free(&h);
                    failed = 1;
                    break;
                }
                from = 0;
                strbuf_consume(&in, (size_t)n);
                h1_body_init(&b, &h);
                strbuf_reset(&body);
                in_body = 1;
            }
            ssize_t n = h1_body_feed(&b, in.data ? in.data : "", in.len, h1_drive_data, &body, &e);
            if (n < 0) {
                strbuf_printf(log, "error %d %s\n", e.status, e.slug);
                h1_head_free(&h);
                failed = 1;
                break;
            }
            strbuf_consume(&in, (size_t)n);
            if (!b.done)
                break;
            strbuf_printf(log, "%s %s 1.%d keep=%d body=%zu:", h.method, h.target, h.minor,
                          h.keep_alive, body.len);
            strbuf_append(log, body.data ? body.data : "", body.len);
            strbuf_append(log, "\n", 1);
            nreq++;
            h1_head_free(&h);
            in_body = 0;
        }
    }
    if (in_body)
        h1_head_free(&h);
    strbuf_printf(log, "left %zu\n", failed ? 0 : in.len);
    strbuf_release(&in);
    strbuf_release(&body);
    return nreq;
}

#endif
