/* libFuzzer target for the request framing followed on the wire
 * (src/http/wire).
 *
 * The input is a client's byte stream. Fed whole, and fed a byte at a time
 * (what is held back passed again with the next byte, as the recv() glue
 * does), the scanner must give the parser every byte, in order, changed
 * only where a line starting with "Content-Length:" or
 * "Transfer-Encoding:" had its first byte made WIRE_RENAMED; never hold back more than
 * WIRE_LINE_MAX bytes; and reach the same verdict (requests, flaw and the request it is in) both
 * ways. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* step 0: the whole stream at once */
static char *run(const uint8_t *data, size_t size, size_t step, struct wire_scan *s)
{
    char *out = malloc(size + 1), *pend = malloc(size + 1);
    if (!out || !pend)
        abort();
    size_t nout = 0, npend = 0, from = 0;
    wire_scan_init(s);
    while (from < size) {
        size_t take = step && size - from > step ? step : size - from;
        memcpy(pend + npend, data + from, take);
        npend += take;
        from += take;
        size_t keep = wire_scan(s, pend, npend);
        if (keep > npend || npend - keep >= WIRE_LINE_MAX)
            abort();
        memcpy(out + nout, pend, keep);
        nout += keep;
        memmove(pend, pend + keep, npend - keep);
        npend -= keep;
    }
    memcpy(out + nout, pend, npend);
    nout += npend;
    if (nout != size)
        abort();
    free(pend);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    struct wire_scan whole, bytes;
    char *a = run(data, size, 0, &whole), *b = run(data, size, 1, &bytes);
    if (memcmp(a, b, size) || whole.nreq != bytes.nreq || whole.flaw != bytes.flaw ||
        whole.flaw_req != bytes.flaw_req)
        abort();
    for (size_t i = 0; i < size; i++) {
        if (a[i] == (char)data[i])
            continue;
        if (a[i] != WIRE_RENAMED || (i && data[i - 1] != '\n'))
            abort();
        if ((size - i < 15 || strncasecmp((const char *)data + i, "content-length:", 15)) &&
            (size - i < 18 || strncasecmp((const char *)data + i, "transfer-encoding:", 18)))
            abort();
    }
    if (whole.flaw && (!whole.flaw_req || whole.flaw_req > whole.nreq))
        abort();
    free(a);
    free(b);
    return 0;
}
