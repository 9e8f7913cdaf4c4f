#include "core/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "core/jsonw.h"

static enum log_level log_min = LOG_INFO;

int log_level_parse(const char *s)
{
    if (!strcasecmp(s, "debug"))
        return LOG_DEBUG;
    if (!strcasecmp(s, "info"))
        return LOG_INFO;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return LOG_WARN;
    if (!strcasecmp(s, "error"))
        return LOG_ERROR;
    return -1;
}

const char *log_level_name(enum log_level lvl)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    return (unsigned)lvl < 4 ? names[lvl] : "info";
}

void log_set_level(enum log_level lvl)
{
    log_min = lvl;
}

int log_enabled(enum log_level lvl)
{
    return lvl >= log_min;
}

uint64_t log_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void log_iso_ms(uint64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char base[24];
    gmtime_r(&s, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

void log_timestamp(char *buf, size_t len)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /* every event gets one: the date part is formatted once a second */
    static __thread time_t sec = -1;
    static __thread char base[24];
    if (tv.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
        sec = tv.tv_sec;
    }
    char frac[9] = {'.', 0, 0, 0, 0, 0, 0, 'Z', 0};
    long us = (long)tv.tv_usec;
    for (int i = 6; i >= 1; i--, us /= 10)
        frac[i] = (char)('0' + us % 10);
    size_t bl = strlen(base);
    if (len >= bl + sizeof(frac)) {
        memcpy(buf, base, bl);
        memcpy(buf + bl, frac, sizeof(frac));
        return;
    }
    /* too small: as much as fits (copied by hand: snprintf here trips
     * -Wformat-truncation at -O1, the ASan build) */
    if (!len)
        return;
    char full[sizeof(base) + sizeof(frac)];
    memcpy(full, base, bl);
    memcpy(full + bl, frac, sizeof(frac));
    memcpy(buf, full, len - 1);
    buf[len - 1] = '\0';
}

void log_emit(enum log_level lvl, const char *msg, json_t *fields)
{
    if (!log_enabled(lvl)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    log_timestamp(ts, sizeof(ts));
    json_t *line = json_pack("{s:s,s:s,s:s}", "time", ts, "level", log_level_name(lvl), "msg", msg);
    if (!line) {
        json_decref(fields);
        return;
    }
    if (json_is_object(fields))
        json_object_update(line, fields);
    json_decref(fields);
    char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (s) {
        /* one write per line so lines from several processes do not interleave */
        size_t n = strlen(s);
        s[n] = '\n';
        fwrite(s, 1, n + 1, stderr);
        free(s);
    }
    json_decref(line);
}

int log_begin(struct strbuf *sb, enum log_level lvl, const char *msg)
{
    char ts[40];
    log_timestamp(ts, sizeof(ts));
    const char *level = log_level_name(lvl);
    strbuf_reset(sb);
    int rc = strbuf_append(sb, "{\"time\":", 8);
    if (!rc)
        rc = jsonw_string(sb, ts, strlen(ts));
    if (!rc)
        rc = strbuf_append(sb, ",\"level\":", 9);
    if (!rc)
        rc = jsonw_string(sb, level, strlen(level));
    if (!rc)
        rc = strbuf_append(sb, ",\"msg\":", 7);
    return rc ? rc : jsonw_string(sb, msg, strlen(msg));
}

void log_end(struct strbuf *sb, int rc)
{
    if (!rc)
        rc = strbuf_append(sb, "}\n", 2);
    if (!rc) /* one write per line, as log_emit */
        fwrite(sb->data, 1, sb->len, stderr);
    strbuf_reset(sb);
}

void log_kv(enum log_level lvl, const char *msg, const char *fmt, ...)
{
    if (!log_enabled(lvl))
        return;
    json_t *fields = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        json_error_t err;
        fields = json_vpack_ex(&err, 0, fmt, ap);
        va_end(ap);
    }
    log_emit(lvl, msg, fields);
}
