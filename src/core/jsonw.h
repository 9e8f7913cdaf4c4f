/* jsonw: JSON text written by hand, byte for byte what jansson writes.
 *
 * The event path encodes every AMI event once; building a jansson tree and
 * dumping it costs more than everything else done per event. These writers
 * append straight to a buffer and produce exactly the bytes json_dumps()
 * gives with JSON_COMPACT (no JSON_ENSURE_ASCII, no JSON_ESCAPE_SLASH):
 * `"` and `\` escaped, \b \f \n \r \t by name, other controls as \u00XX
 * (upper-case hex), everything else as is. Ill-formed UTF-8 is replaced by
 * U+FFFD first (core/utf8), so the result is always valid JSON. The unit
 * test and a fuzz target hold them against jansson.
 */
#ifndef AMIBRIDGE_CORE_JSONW_H
#define AMIBRIDGE_CORE_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

/* s[0..len) as a JSON string, quotes included. 0, -ENOMEM or -E2BIG
 * (out's cap; out may then hold part of the string). */
int jsonw_string(struct strbuf *out, const char *s, size_t len);
/* An unsigned integer in decimal. */
int jsonw_u64(struct strbuf *out, uint64_t v);

#endif
