/* testenv: where integration tests find binaries and fixtures, and clocks.
 *
 * AMIBRIDGE_TEST_BUILD (default "build") holds the built binaries,
 * AMIBRIDGE_TEST_DATA (default "tests/data") the fixtures. Both are read
 * on every call; the strings are borrowed from the environment or static.
 */
#ifndef AMIBRIDGE_TEST_TESTENV_H
#define AMIBRIDGE_TEST_TESTENV_H

#include <stddef.h>

const char *testenv_build_dir(void);
const char *testenv_data_dir(void);
/* Write "<build dir>/<name>" into buf. Returns buf. */
char *testenv_build_path(char *buf, size_t len, const char *name);
/* Write "<data dir>/<rel>" into buf. Returns buf. */
char *testenv_data_path(char *buf, size_t len, const char *rel);
/* A fresh private directory under $TMPDIR (or /tmp); 0 or -errno. */
int testenv_tmpdir(char *buf, size_t len, const char *prefix);
/* Remove a directory made by testenv_tmpdir and the files in it. */
void testenv_rmdir(const char *dir);

/* Monotonic clock in seconds / milliseconds. */
double testenv_now(void);
long long testenv_now_ms(void);
void testenv_sleep_ms(long ms);

/* A positive factor from AMIBRIDGE_TEST_TIME_SCALE (default `dflt`). */
double testenv_time_scale(double dflt);

#endif
