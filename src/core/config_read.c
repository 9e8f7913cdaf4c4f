/* core/config_read.c: what every reader of the settings uses: the message
 * of a failure, the environment, a secret file, lists of names. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_internal.h"

int cfg_fail(struct cfg_ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const char *cfg_env_get(struct cfg_ctx *x, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = x->envp; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* Non-empty value of an environment variable, or NULL. */
const char *cfg_env_val(struct cfg_ctx *x, const char *name)
{
    const char *v = cfg_env_get(x, name);
    return v && *v ? v : NULL;
}

int cfg_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CFG_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* Read a small secret file, dropping one trailing newline. */
char *cfg_read_secret_file(struct cfg_ctx *x, const char *key, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfg_fail(x, "%s: cannot read '%s': %s", key, path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big) {
        cfg_fail(x, "%s: '%s' is larger than %zu bytes", key, path, sizeof(buf) - 1);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        cfg_fail(x, "%s: '%s' is empty", key, path);
        return NULL;
    }
    return strdup(buf);
}

void cfg_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int cfg_strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -1;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

/* Split on spaces and commas into a fresh list (replacing *v). */
int cfg_strv_from_words(char ***v, size_t *n, const char *s)
{
    cfg_strv_free(*v, *n);
    *v = NULL;
    *n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return -1;
    for (char *w = strtok_r(copy, " ,\t\n", &save); w; w = strtok_r(NULL, " ,\t\n", &save))
        if (cfg_strv_push(v, n, w)) {
            free(copy);
            return -1;
        }
    free(copy);
    return 0;
}

void cfg_strv_remove_ci(char **v, size_t *n, const char *s)
{
    size_t o = 0;
    for (size_t i = 0; i < *n; i++) {
        if (!strcasecmp(v[i], s)) {
            free(v[i]);
            continue;
        }
        v[o++] = v[i];
    }
    *n = o;
}

/* JSON array of strings into a list (replacing *v). */
int cfg_strv_from_json(struct cfg_ctx *x, const char *key, json_t *arr, char ***v, size_t *n)
{
    if (!json_is_array(arr))
        return cfg_fail(x, "config file %s: %s: must be an array of strings", x->file, key);
    cfg_strv_free(*v, *n);
    *v = NULL;
    *n = 0;
    size_t i;
    json_t *it;
    json_array_foreach (arr, i, it) {
        if (!json_is_string(it))
            return cfg_fail(x, "config file %s: %s[%zu]: must be a string", x->file, key, i);
        if (cfg_strv_push(v, n, json_string_value(it)))
            return cfg_fail(x, "out of memory");
    }
    return 0;
}

/* Keys of an object of the file that are not in `known`. */
int cfg_check_listed_keys(struct cfg_ctx *x, json_t *o, const char *where, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        const char *const *p;
        for (p = known; *p && strcmp(*p, k); p++)
            ;
        if (!*p)
            return cfg_fail(x, "config file %s: %s: unknown key '%.64s'", x->file, where, k);
    }
    return 0;
}
