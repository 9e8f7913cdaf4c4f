#include "support/transcript.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ami/parser.h"

#define TRANSCRIPT_NO_NL "\n[no trailing newline]\n"

/* Whole file, NUL-terminated. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int add_chunk(struct transcript *t, double at, enum transcript_dir dir, const char *data,
                     size_t len)
{
    struct transcript_chunk *nc = realloc(t->chunks, (t->nchunks + 1) * sizeof(*nc));
    if (!nc)
        return -ENOMEM;
    t->chunks = nc;
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, len);
    copy[len] = '\0';
    t->chunks[t->nchunks++] =
        (struct transcript_chunk){.t = at, .dir = dir, .data = copy, .len = len};
    return 0;
}

/* Walk the timeline: marker lines, then exactly N bytes of chunk. */
static int parse_txt(struct transcript *t, const char *txt, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *line = txt + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        size_t next = pos + llen + (nl ? 1 : 0);
        double at = 0;
        size_t n = 0;
        char arrow[4];
        if (sscanf(line, "%3s %*s +%lfs %zu bytes", arrow, &at, &n) == 3 &&
            (!strcmp(arrow, ">>>") || !strcmp(arrow, "<<<"))) {
            if (next + n > len)
                return -EPROTO;
            int rc = add_chunk(t, at, arrow[0] == '>' ? TRANSCRIPT_SENT : TRANSCRIPT_RECV,
                               txt + next, n);
            if (rc < 0)
                return rc;
            pos = next + n;
            size_t nn = strlen(TRANSCRIPT_NO_NL);
            if (pos + nn <= len && !memcmp(txt + pos, TRANSCRIPT_NO_NL, nn))
                pos += nn;
            continue;
        }
        if (sscanf(line, "### CLOSED by server +%lfs", &at) == 1) {
            t->closed = 1;
            t->close_t = at;
        }
        pos = next;
    }
    return 0;
}

/* The chunks of one direction must be the byte file, in order. */
static int check_concat(const struct transcript *t, enum transcript_dir dir, const char *buf,
                        size_t len)
{
    size_t off = 0;
    for (size_t i = 0; i < t->nchunks; i++) {
        const struct transcript_chunk *c = &t->chunks[i];
        if (c->dir != dir)
            continue;
        if (off + c->len > len || memcmp(buf + off, c->data, c->len))
            return -EPROTO;
        off += c->len;
    }
    return off == len ? 0 : -EPROTO;
}

int transcript_load(struct transcript *t, const char *dir, const char *name)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    char path[1024];
    char *txt = NULL;
    size_t txt_len = 0;
    snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
    int rc = read_file(path, &txt, &txt_len);
    if (rc < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/%s.sent", dir, name);
    if ((rc = read_file(path, &t->sent, &t->sent_len)) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/%s.recv", dir, name);
    if ((rc = read_file(path, &t->recv, &t->recv_len)) < 0)
        goto fail;
    if ((rc = parse_txt(t, txt, txt_len)) < 0)
        goto fail;
    if ((rc = check_concat(t, TRANSCRIPT_SENT, t->sent, t->sent_len)) < 0 ||
        (rc = check_concat(t, TRANSCRIPT_RECV, t->recv, t->recv_len)) < 0)
        goto fail;
    free(txt);
    return 0;
fail:
    free(txt);
    transcript_free(t);
    return rc;
}

void transcript_free(struct transcript *t)
{
    for (size_t i = 0; i < t->nchunks; i++)
        free(t->chunks[i].data);
    free(t->chunks);
    free(t->sent);
    free(t->recv);
    memset(t, 0, sizeof(*t));
}

double transcript_start_time(const struct transcript *t)
{
    return t->nchunks ? t->chunks[0].t : 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int transcript_connections(const char *dir, const char *scenario, char names[][64], int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int n = 0;
    size_t sl = strlen(scenario);
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        const char *f = e->d_name;
        size_t fl = strlen(f);
        if (fl < sl + 4 || strncmp(f, scenario, sl) || strcmp(f + fl - 4, ".txt"))
            continue;
        if (fl == sl + 4) {
            names[n++][0] = '\0';
        } else if (f[sl] == '.' && fl - sl - 5 < 64) {
            snprintf(names[n], 64, "%.*s", (int)(fl - sl - 5), f + sl + 1);
            n++;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_names);
    return n;
}

int transcript_split_actions(const char *buf, size_t len, char ***out)
{
    char **v = NULL;
    int n = 0;
    size_t start = 0, pos = 0;
    int in_msg = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) + 1 : len;
        size_t llen = end - pos - (nl ? 1 : 0);
        if (llen && buf[pos + llen - 1] == '\r')
            llen--;
        if (llen == 0 && in_msg) {
            char **nv = realloc(v, (size_t)(n + 1) * sizeof(*nv));
            char *copy = malloc(end - start + 1);
            if (!nv || !copy) {
                free(copy);
                free(nv ? nv : v);
                return -ENOMEM;
            }
            v = nv;
            memcpy(copy, buf + start, end - start);
            copy[end - start] = '\0';
            v[n++] = copy;
            in_msg = 0;
            start = end;
        } else if (llen && !in_msg) {
            in_msg = 1;
        } else if (!llen && !in_msg) {
            start = end;
        }
        pos = end;
    }
    *out = v;
    return n;
}

int transcript_parse(const char *buf, size_t len, int banner, struct ami_msg ***out)
{
    struct ami_parser *p = ami_parser_new(NULL, banner ? AMI_PARSER_EXPECT_BANNER : 0);
    struct ami_msg **v = NULL;
    int n = 0;
    *out = NULL;
    if (!p || ami_parser_feed(p, buf, len) < 0) {
        ami_parser_free(p);
        return -1;
    }
    struct ami_msg *m;
    int rc;
    while ((rc = ami_parser_next(p, &m)) == 1) {
        struct ami_msg **nv = realloc(v, (size_t)(n + 1) * sizeof(*nv));
        if (!nv) {
            ami_msg_free(m);
            rc = -1;
            break;
        }
        v = nv;
        v[n++] = m;
    }
    ami_parser_free(p);
    if (rc < 0) {
        transcript_free_msgs(v, n);
        return -1;
    }
    *out = v;
    return n;
}

void transcript_free_msgs(struct ami_msg **msgs, int n)
{
    for (int i = 0; i < n; i++)
        ami_msg_free(msgs[i]);
    free(msgs);
}
