#include "support/testenv.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *testenv_build_dir(void)
{
    const char *d = getenv("AMIBRIDGE_TEST_BUILD");
    return d && *d ? d : "build";
}

const char *testenv_data_dir(void)
{
    const char *d = getenv("AMIBRIDGE_TEST_DATA");
    return d && *d ? d : "tests/data";
}

char *testenv_build_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", testenv_build_dir(), name);
    return buf;
}

char *testenv_data_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", testenv_data_dir(), rel);
    return buf;
}

int testenv_tmpdir(char *buf, size_t len, const char *prefix)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if ((size_t)snprintf(buf, len, "%s/%s.XXXXXX", base, prefix) >= len)
        return -ENAMETOOLONG;
    return mkdtemp(buf) ? 0 : -errno;
}

void testenv_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

double testenv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long testenv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void testenv_sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

double testenv_time_scale(double dflt)
{
    const char *v = getenv("AMIBRIDGE_TEST_TIME_SCALE");
    if (!v || !*v)
        return dflt;
    double x = strtod(v, NULL);
    return x > 0 ? x : dflt;
}
