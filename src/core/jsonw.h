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

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

/* s[0..len) as a JSON string, quotes included. 0, -ENOMEM or -E2BIG
 * (out's cap; out may then hold part of the string). */
int jsonw_string(struct strbuf *out, const char *s, size_t len);
/* An unsigned integer in decimal. */
int jsonw_u64(struct strbuf *out, uint64_t v);
/* A finite real as JSON_REAL_PRECISION(precision) writes it (0: 17).
 * 0, -ENOMEM, -E2BIG or -EINVAL. */
int jsonw_real(struct strbuf *out, double d, int precision);

/* Deepest nesting jsonw_value writes (jansson's own parser stops at 2048). */
#define JSONW_MAX_DEPTH 2048

/* A jansson value as json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
 * JSON_REAL_PRECISION(precision)) writes it (precision 0: jansson's 17):
 * members in their insertion order, reals through "%.*g" with ".0" added
 * when that reads as an integer and the exponent's "+" and leading zeros
 * dropped. Where json_dumps fails (a string or key that is not UTF-8,
 * which only the _nocheck constructors let in), the bytes are repaired as
 * jsonw_string does. 0, -ENOMEM, -E2BIG (out's cap) or -ELOOP (deeper
 * than JSONW_MAX_DEPTH); out may then hold part of the text. */
int jsonw_value(struct strbuf *out, const json_t *v, int precision);

#endif
