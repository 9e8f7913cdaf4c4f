#include "api/sseid.h"

#include <string.h>

#include "core/config.h"

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int api_sseid_parse(const char *id, char *server, size_t server_len, uint64_t *seq)
{
    const char *num = id;
    const char *colon = strrchr(id, ':');
    if (server_len)
        server[0] = '\0';
    if (colon) {
        size_t n = (size_t)(colon - id);
        if (n == 0 || n > CFG_NAME_MAX || n >= server_len)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (!name_char(id[i]))
                return -1;
        memcpy(server, id, n);
        server[n] = '\0';
        num = colon + 1;
    }
    uint64_t v = 0;
    if (!*num)
        return -1;
    for (; *num; num++) {
        if (*num < '0' || *num > '9')
            return -1;
        unsigned d = (unsigned)(*num - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *seq = v;
    return 0;
}

void api_sseid_printable(const char *id, char *out, size_t out_len)
{
    if (!out_len)
        return;
    size_t o = 0, i = 0;
    for (; i < SSEID_ECHO_MAX && o + 1 < out_len && id[i]; i++) {
        unsigned char c = (unsigned char)id[i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (id[i] && o + 4 <= out_len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}
