/* ami/parser: incremental, allocation-bounded AMI stream parser.
 *
 * Shaped like hiredis's reader: feed it byte chunks as they arrive, in any
 * split, and take whole messages out. No I/O, no global state.
 *
 *   struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
 *   ami_parser_feed(p, buf, n);
 *   struct ami_msg *m;
 *   while (ami_parser_next(p, &m) == 1) { ...; ami_msg_free(m); }
 *
 * Framing follows what Asterisk sends (see tests/data/transcripts):
 * - an optional banner line first ("Asterisk Call Manager/11.0.0"), reported
 *   as a message of kind AMI_MSG_BANNER with one key, "Banner";
 * - "Key: value" lines; exactly one space after the colon is dropped, so
 *   values keep their own leading spaces and may contain colons;
 * - lines end in CRLF or bare LF; an empty line ends the message, so
 *   "\r\n\r\n", "\n\n" and "\r\n\n" all terminate; stray empty lines between
 *   messages are skipped;
 * - the legacy "Response: Follows" Command reply: after its Privilege and
 *   ActionID headers every line, empty ones too, is command output until the
 *   line ending in "--END COMMAND--"; the output lines are reported as
 *   repeated "Output" keys, exactly like Asterisk 14+ sends them.
 *
 * Limits (line length, header count, message size, buffered bytes) are hard:
 * crossing one puts the parser in an error state with a clear message; it
 * never grows past them. The caller drops the connection on error.
 */
#ifndef AMIBRIDGE_AMI_PARSER_H
#define AMIBRIDGE_AMI_PARSER_H

#include <stddef.h>

#include "ami/message.h"

/* Defaults, chosen well above anything a real Asterisk sends: a Status item
 * with many variables is a few KiB, a big Command output a few hundred KiB. */
#define AMI_PARSER_MAX_LINE    16384
#define AMI_PARSER_MAX_HEADERS 8192
#define AMI_PARSER_MAX_MESSAGE (2 * 1024 * 1024)

/* Bytes fed but not yet parsed may not exceed max_message plus this. */
#define AMI_PARSER_FEED_SLACK (256 * 1024)

struct ami_parser_limits {
    size_t max_line;    /* bytes in one line, terminator excluded */
    size_t max_headers; /* pairs in one message */
    size_t max_message; /* bytes of one message, terminators included */
};

enum ami_parser_flags {
    AMI_PARSER_EXPECT_BANNER = 1 << 0, /* client side: first line is the banner */
};

enum ami_parser_error {
    AMI_PERR_NONE = 0,
    AMI_PERR_LINE_TOO_LONG,
    AMI_PERR_TOO_MANY_HEADERS,
    AMI_PERR_MESSAGE_TOO_BIG,
    AMI_PERR_BUFFER_FULL, /* fed faster than messages were taken out */
    AMI_PERR_SYNTAX,      /* a line that is not "Key: value" */
    AMI_PERR_NUL,         /* a NUL byte in the stream */
    AMI_PERR_NOMEM,
};

struct ami_parser;

/* A new parser. `limits` may be NULL for the defaults above; zero fields
 * also take the default. Returns NULL when out of memory. */
struct ami_parser *ami_parser_new(const struct ami_parser_limits *limits, int flags);
void ami_parser_free(struct ami_parser *p);

/* Append bytes (copied). Returns 0, or -1 when the parser is in an error
 * state or the bytes would pass the buffer bound (the parser then enters
 * the AMI_PERR_BUFFER_FULL error). */
int ami_parser_feed(struct ami_parser *p, const char *buf, size_t len);

/* Take the next whole message: returns 1 and sets *out (owned by the caller),
 * 0 when more bytes are needed, -1 on error (see ami_parser_error()). */
int ami_parser_next(struct ami_parser *p, struct ami_msg **out);

enum ami_parser_error ami_parser_error(const struct ami_parser *p);
/* A sentence describing the error, or "" when there is none. Borrowed. */
const char *ami_parser_errstr(const struct ami_parser *p);

/* Bytes fed and not yet returned as messages. */
size_t ami_parser_pending(const struct ami_parser *p);

#endif
