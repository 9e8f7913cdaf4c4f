/* transcript: load the AMI byte captures of tests/data/transcripts.
 *
 * A capture of one connection is NAME.sent (bytes the client sent), NAME.recv
 * (bytes received) and NAME.txt (a timeline: ">>> C->S +t s N bytes" /
 * "<<< S->C +t s N bytes" marker lines each followed by exactly N bytes, and
 * "### CLOSED by server +t s"). transcript_load() reads all three and checks
 * that the timeline's chunks add up to the .sent and .recv files.
 *
 *   struct transcript t;
 *   transcript_load(&t, "tests/data/transcripts", "05e-hangup");
 *   for (size_t i = 0; i < t.nchunks; i++) ... t.chunks[i].t, .dir, .data, .len
 *   transcript_free(&t);
 */
#ifndef AMIBRIDGE_TEST_TRANSCRIPT_H
#define AMIBRIDGE_TEST_TRANSCRIPT_H

#include <stddef.h>

#include "ami/message.h"

#define TRANSCRIPT_MAX_CONNS 8

enum transcript_dir {
    TRANSCRIPT_SENT = 1, /* client -> server */
    TRANSCRIPT_RECV = 2, /* server -> client */
};

struct transcript_chunk {
    double t; /* seconds on the scenario's clock */
    enum transcript_dir dir;
    char *data; /* owned, NUL-terminated for convenience */
    size_t len;
};

struct transcript {
    char name[256];
    struct transcript_chunk *chunks;
    size_t nchunks;
    int closed; /* the server closed the connection */
    double close_t;
    char *sent; /* .sent file, owned */
    size_t sent_len;
    char *recv; /* .recv file, owned */
    size_t recv_len;
};

/* Load NAME.{txt,sent,recv} from dir. 0, -errno, or -EPROTO when the
 * timeline does not match the byte files. */
int transcript_load(struct transcript *t, const char *dir, const char *name);
void transcript_free(struct transcript *t);

/* Time of the first chunk (the connection was open by then). */
double transcript_start_time(const struct transcript *t);

/* The connections of a scenario: "" for a single-connection scenario (files
 * SCENARIO.txt), else the names X of SCENARIO.X.txt, sorted. Returns how
 * many (at most max), -errno on error. names[i] are caller buffers. */
int transcript_connections(const char *dir, const char *scenario, char names[][64], int max);

/* Split a client byte stream into actions: each is the bytes up to and
 * including the blank line that ends it. *out is an array of owned strings
 * (free each and the array). Returns the count or -ENOMEM. */
int transcript_split_actions(const char *buf, size_t len, char ***out);

/* Parse a whole byte stream with the project's parser. `banner` when it
 * starts with the banner line. *out gets an array of owned messages (free
 * with transcript_free_msgs). Returns the count, or -1 on a parser error. */
int transcript_parse(const char *buf, size_t len, int banner, struct ami_msg ***out);
void transcript_free_msgs(struct ami_msg **msgs, int n);

#endif
