#include "admit/astval.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Bytes astman_get_header() skips: ast_skip_blanks() is "< 33". */
static int is_skipped(unsigned char c)
{
    return c < 0x21;
}

static int is_blank(unsigned char c)
{
    return c == ' ';
}

enum astval_flaw astval_flaw(const char *v, size_t len, unsigned flags, size_t *at)
{
    size_t where = 0;
    enum astval_flaw f = ASTVAL_OK;
    for (size_t i = 0; i < len && f != ASTVAL_NUL; i++) {
        unsigned char c = (unsigned char)v[i];
        enum astval_flaw here = ASTVAL_OK;
        if (c == 0)
            here = ASTVAL_NUL;
        else if (c < 0x20 || c == 0x7f)
            here = ASTVAL_CONTROL;
        else if (is_blank(c) && i == 0)
            here = ASTVAL_LEADING_BLANK;
        else if (is_blank(c) && i == len - 1 && (flags & ASTVAL_NAME))
            here = ASTVAL_TRAILING_BLANK;
        else if (is_blank(c) && (flags & ASTVAL_NAME))
            here = ASTVAL_INNER_BLANK;
        /* the worst flaw wins; among equals the first */
        if (here != ASTVAL_OK && (f == ASTVAL_OK || here < f)) {
            f = here;
            where = i;
        }
    }
    if (at)
        *at = where;
    return f;
}

const char *astval_flaw_text(enum astval_flaw f)
{
    switch (f) {
    case ASTVAL_OK:
        return "is fine";
    case ASTVAL_NUL:
        return "contains a NUL byte";
    case ASTVAL_CONTROL:
        return "contains a control character (CR, LF, tab, ... are not allowed)";
    case ASTVAL_LEADING_BLANK:
        return "starts with a blank (Asterisk would skip it)";
    case ASTVAL_TRAILING_BLANK:
        return "ends with a blank";
    case ASTVAL_INNER_BLANK:
        return "contains a blank (a name has none)";
    }
    return "is not valid";
}

const char *astval_header(const char *v)
{
    while (*v && is_skipped((unsigned char)*v))
        v++;
    return v;
}

/* Copy `in` to `out` without the bytes of `drop`. */
static void copy_without(const char *in, const char *drop, char *out, size_t outlen)
{
    size_t n = 0;
    if (!outlen)
        return;
    for (; *in && n + 1 < outlen; in++)
        if (!strchr(drop, *in))
            out[n++] = *in;
    out[n] = '\0';
}

void astval_exten(const char *in, char *out, size_t outlen)
{
    copy_without(in, "-", out, outlen);
}

void astval_number(const char *in, char *out, size_t outlen)
{
    copy_without(in, "- .()", out, outlen);
}

/* __ast_app_separate_args(buf, ',', 1, ...) of main/app.c, on a copy. */
int astval_app_args(const char *data, char *buf, size_t buflen, char **argv, int max)
{
    size_t len = strlen(data);
    if (len + 1 > buflen || max < 1)
        return -1;
    memcpy(buf, data, len + 1);
    memset(argv, 0, sizeof(*argv) * (size_t)max);
    char *scan = buf, *wasdelim = NULL;
    int argc, paren = 0, quote = 0, bracket = 0;
    for (argc = 0; *scan && argc < max - 1; argc++) {
        argv[argc] = scan;
        for (; *scan; scan++) {
            if (*scan == '(') {
                paren++;
            } else if (*scan == ')') {
                if (paren)
                    paren--;
            } else if (*scan == '[') {
                bracket++;
            } else if (*scan == ']') {
                if (bracket)
                    bracket--;
            } else if (*scan == '"') {
                quote = !quote;
                memmove(scan, scan + 1, strlen(scan));
                scan--;
            } else if (*scan == '\\') {
                memmove(scan, scan + 1, strlen(scan));
            } else if (*scan == ',' && !paren && !quote && !bracket) {
                wasdelim = scan;
                *scan++ = '\0';
                break;
            }
        }
    }
    if (*scan || (scan > buf && scan - 1 == wasdelim))
        argv[argc++] = scan;
    return argc;
}

/* Bytes that end a function name when walking back from its '(' (every
 * operator of $[...] among them: "$[CDR-SHELL(x)]" calls SHELL). */
static int name_byte(unsigned char c)
{
    return c > ' ' && !strchr("${}[](),:=&|?!<>+-*/%\"'^;~", c);
}

/* The name before the '(' at `open` (blanks between them skipped), within
 * [start, open): its start and length. 1 when the name is built at run time
 * (a substitution ends right before it: "S${X}(" or "${X}("). */
static int name_before(const char *start, const char *open, const char **name, size_t *len)
{
    const char *e = open;
    while (e > start && (unsigned char)e[-1] <= ' ')
        e--;
    const char *b = e;
    while (b > start && name_byte((unsigned char)b[-1]))
        b--;
    *name = b;
    *len = (size_t)(e - b);
    return b > start && (b[-1] == '}' || b[-1] == ']');
}

/* One call found: a computed name is passed as NULL. */
static int found(const char *start, const char *open, astval_func_cb cb, void *ud)
{
    const char *name;
    size_t n;
    if (name_before(start, open, &name, &n))
        return cb(NULL, 0, ud);
    return n ? cb(name, n, ud) : 0;
}

#define REGION_DEPTH_MAX 64

int astval_functions(const char *v, int is_name, astval_func_cb cb, void *ud)
{
    int rc;
    if (is_name) {
        const char *s = astval_header(v), *open = strchr(s, '(');
        if (open && (rc = found(s, open, cb, ud)))
            return rc;
    }
    /* the regions of ${ } and $[ ] (and plain braces inside them): what
     * closes each, and whether the name part of a ${ } is over (a '(') */
    char close[REGION_DEPTH_MAX];
    char named[REGION_DEPTH_MAX];
    size_t depth = 0;
    for (const char *p = v; *p; p++) {
        /* "^{" too: Queue's MONITOR_* values turn it into "${" and evaluate */
        if ((p[0] == '$' || p[0] == '^') && (p[1] == '{' || p[1] == '[')) {
            /* a substitution inside the name of a ${ }: the name, and so
             * the function, is only known at run time */
            if (depth && close[depth - 1] == '}' && !named[depth - 1])
                return cb(NULL, 0, ud);
            if (depth == REGION_DEPTH_MAX)
                return cb(NULL, 0, ud);
            close[depth] = p[1] == '{' ? '}' : ']';
            named[depth] = 0;
            depth++;
            p++;
        } else if (depth && *p == close[depth - 1]) {
            depth--;
        } else if (depth && (*p == '{' || *p == '[')) {
            if (depth == REGION_DEPTH_MAX)
                return cb(NULL, 0, ud);
            close[depth] = *p == '{' ? '}' : ']';
            named[depth] = 1;
            depth++;
        } else if (depth && *p == '(') {
            named[depth - 1] = 1;
            if ((rc = found(v, p, cb, ud)))
                return rc;
        }
    }
    return 0;
}

int astval_app_options(const char *opts, astval_option_cb cb, void *ud)
{
    char buf[ASTVAL_MAX + 1];
    size_t len = strlen(opts);
    if (len > ASTVAL_MAX)
        return -1;
    memcpy(buf, opts, len + 1);
    char *s = buf;
    while (*s) {
        int letter = *s++ & 0x7f;
        const char *arg = NULL;
        if (*s == '(') {
            int paren = 1, quote = 0, parsequotes = s[1] == '"';
            arg = ++s;
            for (; *s; s++) {
                if (*s == '(' && !quote) {
                    paren++;
                } else if (*s == ')' && !quote) {
                    paren--;
                } else if (*s == '"' && parsequotes) {
                    quote = !quote;
                    memmove(s, s + 1, strlen(s));
                    s--;
                } else if (*s == '\\') {
                    if (!quote || s[1] == '"')
                        memmove(s, s + 1, strlen(s)); /* the next byte is taken as it is */
                    else if (s[1])
                        s++;
                    if (!*s)
                        break;
                }
                if (paren == 0)
                    break;
            }
            char *close = strchr(s, ')');
            if (!close)
                return -1;
            *close = '\0';
            s = close + 1;
        }
        int rc = cb(letter, arg, ud);
        if (rc)
            return rc;
    }
    return 0;
}

int astval_variable_names(const char *v, astval_name_cb cb, void *ud)
{
    char buf[ASTVAL_MAX + 1];
    char *argv[128];
    int argc = astval_app_args(astval_header(v), buf, sizeof(buf), argv, 128);
    if (argc < 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        if (!argv[i])
            continue;
        char *eq = strchr(argv[i], '=');
        if (eq)
            *eq = '\0';
        int rc = cb(argv[i], ud);
        if (rc)
            return rc;
    }
    return 0;
}

int astval_local(const char *channel, char *exten, size_t exten_len, char *context,
                 size_t context_len)
{
    const char *c = astval_header(channel);
    if (strncasecmp(c, "Local/", 6))
        return 0;
    char buf[ASTVAL_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", c + 6);
    char *opts = strrchr(buf, '/');
    if (opts)
        *opts = '\0';
    char *at = strchr(buf, '@');
    if (at)
        *at++ = '\0';
    snprintf(exten, exten_len, "%s", buf);
    snprintf(context, context_len, "%s", at ? at : "default");
    return 1;
}
