/* utf8: validation and repair of byte strings that should be UTF-8.
 *
 * AMI carries bytes, not text: a caller id or a channel variable may hold
 * Latin-1 or garbage. Anything that goes into JSON passes through here so a
 * bad byte never produces invalid JSON.
 */
#ifndef AMIBRIDGE_CORE_UTF8_H
#define AMIBRIDGE_CORE_UTF8_H

#include <stddef.h>

#include "core/strbuf.h"

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). NUL bytes are allowed. */
int utf8_valid(const char *s, size_t len);

/* Append s[0..len) to out with every ill-formed sequence replaced by U+FFFD
 * (one replacement per maximal invalid subpart, as Unicode recommends).
 * 0, -ENOMEM or -E2BIG (out's cap). */
int utf8_repair(const char *s, size_t len, struct strbuf *out);

#endif
