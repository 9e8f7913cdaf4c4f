/* libFuzzer target for request heads and bodies off the wire (src/http/h1).
 *
 * The input is a client's byte stream. Fed whole, a byte at a time and 7
 * bytes at a time (tests/support/h1_drive.h, the way http/server takes
 * reads), it must tell the same story: the same requests with the same
 * bodies, the same refusal, the same bytes left over. The sanitizers catch
 * any read past what was received. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "support/h1_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 15)
        return 0;
    struct strbuf a, b, c;
    strbuf_init(&a, 0);
    strbuf_init(&b, 0);
    strbuf_init(&c, 0);
    int na = h1_drive((const char *)data, size, 0, &a);
    int nb = h1_drive((const char *)data, size, 1, &b);
    int nc = h1_drive((const char *)data, size, 7, &c);
    if (na != nb || na != nc || a.len != b.len || a.len != c.len || memcmp(a.data, b.data, a.len) ||
        memcmp(a.data, c.data, a.len))
        abort();
    strbuf_release(&a);
    strbuf_release(&b);
    strbuf_release(&c);
    return 0;
}
