/* admit/astval: a value as Asterisk will act on it.
 *
 * Every guard must judge what the PBX reads, not what JSON carried.
 * Asterisk's own rules, from main/manager.c, main/pbx.c, main/app.c and
 * main/core_local.c:
 * - astman_get_header() skips every leading byte below 0x21 of a header
 *   value (space, tab, VT, FF, ...);
 * - extension matching ignores '-' ("eye candy"), in patterns and numbers;
 * - application and function names are case-insensitive;
 * - application arguments are split on ',' outside (), [] and "", and the
 *   quotes and backslashes are removed (AST_STANDARD_APP_ARGS);
 * - ${...} and $[...] call dialplan functions, and so does a variable name
 *   that ends in ')' (Getvar, Setvar, Originate's Variable, Status's
 *   Variables);
 * - a Local channel is Local/EXTEN[@CONTEXT][/OPTIONS]: options after the
 *   last '/', the context after the first '@', "default" without one.
 * Pure functions: no I/O, no allocation.
 */
#ifndef AMIBRIDGE_API_ASTVAL_H
#define AMIBRIDGE_API_ASTVAL_H

#include <stddef.h>

#define ASTVAL_MAX 1024 /* the longest value these functions copy (one AMI line) */

/* What is wrong with a value, worst first. */
enum astval_flaw {
    ASTVAL_OK = 0,
    ASTVAL_NUL,            /* a NUL byte anywhere */
    ASTVAL_CONTROL,        /* a byte below 0x20 (CR, LF, tab, VT, FF, ...) or DEL */
    ASTVAL_LEADING_BLANK,  /* Asterisk would skip it: the value is not what it looks like */
    ASTVAL_TRAILING_BLANK, /* only with ASTVAL_NAME: kept by Asterisk, "900 " is not "900" */
    ASTVAL_INNER_BLANK,    /* only with ASTVAL_NAME */
};

/* A name (channel, context, extension, application, interface): no blank
 * anywhere. Without it, blanks after the first byte are fine (a caller id
 * name, free text). */
#define ASTVAL_NAME 1u

/* The first flaw of the `len` bytes at `v`, with its offset in `*at` (may
 * be NULL). */
enum astval_flaw astval_flaw(const char *v, size_t len, unsigned flags, size_t *at);
/* "contains a NUL byte", ... A static string. */
const char *astval_flaw_text(enum astval_flaw f);

/* The value astman_get_header() hands to Asterisk: `v` past its leading
 * bytes below 0x21. Borrowed from `v`. */
const char *astval_header(const char *v);

/* An extension as the dialplan matches it: `in` without '-', into `out`
 * (NUL-terminated, cut to `outlen`). */
void astval_exten(const char *in, char *out, size_t outlen);
/* A number as a trunk may read it: also without blanks, '.', '(' and ')',
 * which many providers ignore too. For deny rules. */
void astval_number(const char *in, char *out, size_t outlen);

/* Split application data as AST_STANDARD_APP_ARGS does: on ',' outside
 * (), [] and "", quotes and backslashes removed. The bytes are copied into
 * `buf` (`buflen`, at least strlen(data) + 1) and `argv` points into it;
 * past `max` - 1 arguments the last one holds the rest. Returns the number
 * of arguments, -1 when `buf` is too small. */
int astval_app_args(const char *data, char *buf, size_t buflen, char **argv, int max);

/* The options of an application, as app.c's parse_options() reads them
 * (ast_app_parse_options): each letter (its byte & 0x7f, as Asterisk
 * takes it) with its argument, or NULL without one; a '(' inside quotes
 * (when the argument starts with one) or after a backslash does not count.
 * `cb` gets each in turn; a non-zero return stops the walk and is
 * returned. -1 when an argument is not closed (Asterisk refuses the whole
 * string) or `opts` is longer than ASTVAL_MAX. */
typedef int (*astval_option_cb)(int letter, const char *arg, void *ud);
int astval_app_options(const char *opts, astval_option_cb cb, void *ud);

/* The dialplan functions a value calls: for each, `cb` gets the name and
 * its length (not NUL-terminated), or NULL and 0 for a name only known at
 * run time ("${S${X}(...)}", "${X}(...)"); a non-zero return stops the
 * walk and is returned. A name is the word before a '(' inside ${...} or $[...]
 * (nested too; an unclosed one runs to the end), and, when `is_name`, the
 * word before the first '(' of the whole value (a variable name that
 * Asterisk reads or writes as a function). */
typedef int (*astval_func_cb)(const char *name, size_t len, void *ud);
int astval_functions(const char *v, int is_name, astval_func_cb cb, void *ud);

/* The variable names of a Variable header: its name=value items (split as
 * application arguments), each name passed to `cb` NUL-terminated; a
 * non-zero return stops the walk and is returned. -1 when the value is
 * longer than ASTVAL_MAX. */
typedef int (*astval_name_cb)(const char *name, void *ud);
int astval_variable_names(const char *v, astval_name_cb cb, void *ud);

/* A Local channel's target, as core_local.c reads it. Returns 1 and fills
 * `exten` and `context` when `channel` (as Asterisk sees it) is a Local
 * channel, else 0. */
int astval_local(const char *channel, char *exten, size_t exten_len, char *context,
                 size_t context_len);

#endif
