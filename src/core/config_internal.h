/* core/config_internal.h: what the readers of the settings share, and no
 * one else: config.c (the settings table, servers, the whole),
 * config_read.c (failures, the environment, secret files, lists) and
 * config_keys.c (API keys, scopes, dial policies).
 */
#ifndef AMIBRIDGE_CORE_CONFIG_INTERNAL_H
#define AMIBRIDGE_CORE_CONFIG_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "core/config.h"

/* One load: where the environment is, where a failure's message goes, and
 * the config file a message about file keys names. */
struct cfg_ctx {
    char *const *envp;
    char *err;
    size_t errlen;
    const char *file; /* for messages about file keys */
};

/* Writes the message into x->err; returns -1. */
int cfg_fail(struct cfg_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The value of an environment variable, empty or not, or NULL. */
const char *cfg_env_get(struct cfg_ctx *x, const char *name);
/* Non-empty value of an environment variable, or NULL. */
const char *cfg_env_val(struct cfg_ctx *x, const char *name);
/* 1-CFG_NAME_MAX of A-Z a-z 0-9 _ - (server, key and action names). */
int cfg_valid_name(const char *s);
/* A small secret file (at most 4 KiB), one trailing newline dropped; NULL
 * with the failure in x when it cannot be read, is too large or empty. */
char *cfg_read_secret_file(struct cfg_ctx *x, const char *key, const char *path);

/* Lists of strings: each a copy; 0 or -1 (out of memory). */
void cfg_strv_free(char **v, size_t n);
int cfg_strv_push(char ***v, size_t *n, const char *s);
/* Split on spaces and commas into a fresh list (replacing *v). */
int cfg_strv_from_words(char ***v, size_t *n, const char *s);
/* Takes every entry equal to s without case out of the list. */
void cfg_strv_remove_ci(char **v, size_t *n, const char *s);
/* A JSON array of strings into a fresh list (replacing *v); -1 with the
 * failure in x. */
int cfg_strv_from_json(struct cfg_ctx *x, const char *key, json_t *arr, char ***v, size_t *n);
/* -1 with the failure in x when the object has a key not in `known` (NULL-ended). */
int cfg_check_listed_keys(struct cfg_ctx *x, json_t *o, const char *where,
                          const char *const *known);

/* The API keys from AMIBRIDGE_API_KEYS, AMIBRIDGE_API_KEYS_FILE and the
 * config file's api_keys array (`file_keys`, NULL: none), into c->keys. */
int cfg_keys_load(struct cfg_ctx *x, struct cfg *c, json_t *file_keys);
void cfg_keys_free(struct cfg *c);

#endif
