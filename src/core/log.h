/* log: one JSON object per line on stderr.
 *
 *   log_info("ami login accepted", "{s:s,s:i}", "server", name, "conn", id);
 *
 * The second argument is a jansson json_pack() format for extra fields (or
 * NULL). Every line carries "time", "level" and "msg". Secrets must never be
 * passed in: callers log names, never values, of secret settings.
 */
#ifndef AMIBRIDGE_CORE_LOG_H
#define AMIBRIDGE_CORE_LOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parse "debug", "info", "warn"/"warning", "error"; -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level lvl);
void log_set_level(enum log_level lvl);
int log_enabled(enum log_level lvl);

/* Emit a line; `fields` (may be NULL) is stolen and merged in. */
void log_emit(enum log_level lvl, const char *msg, json_t *fields);
void log_kv(enum log_level lvl, const char *msg, const char *fmt, ...);

#define log_debug(msg, ...) log_kv(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_kv(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_kv(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_kv(LOG_ERROR, msg, __VA_ARGS__)

/* A line written by hand, for the hot paths (the access log): log_begin
 * writes `{"time":…,"level":…,"msg":…` into sb (reset first), the caller
 * appends its members (`,"key":value`, core/jsonw), log_end closes the
 * object and writes the line as log_emit does. The same bytes as
 * log_emit with the same fields in the same order, without a jansson
 * tree. log_begin returns 0 or -errno (then log_end writes nothing). */
int log_begin(struct strbuf *sb, enum log_level lvl, const char *msg);
void log_end(struct strbuf *sb, int rc);

/* Current wall-clock time as RFC 3339 UTC with microseconds, into buf
 * (at least 32 bytes). */
void log_timestamp(char *buf, size_t len);
/* Wall-clock time in Unix milliseconds. */
uint64_t log_wall_ms(void);
/* Unix milliseconds as RFC 3339 UTC with milliseconds ("...T18:00:12.578Z"),
 * into buf (at least 32 bytes). */
void log_iso_ms(uint64_t ms, char *buf, size_t len);

#endif
