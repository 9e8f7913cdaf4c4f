/* support/sse: a blocking Server-Sent Events client for tests (raw socket,
 * chunked transfer decoding, frame parsing), so tests can also be slow on
 * purpose. */
#ifndef AMIBRIDGE_TEST_SSE_H
#define AMIBRIDGE_TEST_SSE_H

#include <stddef.h>

#include "core/strbuf.h"

struct sse_client {
    int fd;
    int status; /* HTTP status of the answer */
    char content_type[64];
    struct strbuf raw;  /* undecoded bytes */
    struct strbuf body; /* decoded body not yet split into frames */
    int eof;
};

struct sse_frame {
    char id[64];
    char event[64];
    char *data;    /* malloc'd, NULL when none */
    char *comment; /* malloc'd comment text of a comment-only frame */
};

/* GET path on 127.0.0.1:port with optional token and Last-Event-ID; reads
 * the status line and headers. 0 or -1. rcvbuf > 0 shrinks the receive
 * buffer (for slow-client tests). */
int sse_open(struct sse_client *c, int port, const char *path, const char *token,
             const char *last_id, int rcvbuf);
/* Next frame: 1 and *f (free with sse_frame_free), 0 on timeout, -1 when
 * the stream ended. */
int sse_next(struct sse_client *c, int timeout_ms, struct sse_frame *f);
void sse_frame_free(struct sse_frame *f);
void sse_close(struct sse_client *c);

#endif
