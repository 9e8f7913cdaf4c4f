/* ascii: names compared as Asterisk compares action and header names
 * (strcasecmp: ASCII letters without case, in the C locale amibridge runs
 * in).
 *
 * The first bytes are looked at before the call: a request's action is
 * compared with a dozen names (the reserved actions, the deny list, the
 * dial policy's actions) and a header's name with a list of them, and
 * nearly every pair differs there. Equal first bytes, or bytes that differ
 * only in case, are a necessary condition for strcasecmp to find the names
 * equal, so the answer is strcasecmp's. */
#ifndef AMIBRIDGE_CORE_ASCII_H
#define AMIBRIDGE_CORE_ASCII_H

#include <stddef.h>
#include <strings.h>

/* 1 when strcasecmp(a, b) == 0. */
static inline int ascii_name_eq(const char *a, const char *b)
{
    return ((unsigned char)(a[0] ^ b[0]) & 0xdf) == 0 && strcasecmp(a, b) == 0;
}

/* 1 when strncasecmp(a, b, n) == 0. */
static inline int ascii_name_eqn(const char *a, const char *b, size_t n)
{
    return (n == 0 || ((unsigned char)(a[0] ^ b[0]) & 0xdf) == 0) && strncasecmp(a, b, n) == 0;
}

#endif
