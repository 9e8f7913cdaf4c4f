/* libFuzzer target for the config loader: the input is the JSON config
 * file. Loading either succeeds (and everything is released by cfg_free)
 * or fails with a message, and never reveals a secret from the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("fuzz-config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    char *envp[] = {"AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s3cr3t-from-env",
                    "AMIBRIDGE_LOG_LEVEL=error", NULL};
    struct cfg c;
    char err[512] = "";
    if (cfg_load(&c, envp, path, err, sizeof(err)) == 0) {
        cfg_free(&c);
    } else {
        if (!err[0])
            abort();
        /* the secret from the environment never shows (the file's own text may) */
        if (strstr(err, "s3cr3t-from-env") && !memmem(data, size, "s3cr3t-from-env", 15))
            abort();
    }
    return 0;
}
