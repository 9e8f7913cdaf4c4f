/* The configuration table of docs/configuration.md is the one the binary
 * prints, so the documentation cannot drift from the code; --version tells
 * what runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "support/testenv.h"

static char *read_all(FILE *f)
{
    struct strbuf sb;
    strbuf_init(&sb, 0);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_append(&sb, buf, n);
    return strbuf_detach(&sb, NULL);
}

static void config_doc_table_matches_the_binary(void **state)
{
    (void)state;
    char bin[1024], cmd[1100];
    testenv_build_path(bin, sizeof(bin), "amibridge");
    snprintf(cmd, sizeof(cmd), "%s --config-table", bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *table = read_all(p);
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(table, "AMIBRIDGE_AMI_HOST"));
    FILE *f = fopen("docs/configuration.md", "r");
    if (!f)
        fail_msg("docs/configuration.md cannot be read (run the test from the repository's root)");
    char *doc = read_all(f);
    fclose(f);
    const char *b = strstr(doc, "<!-- config-table:begin -->\n");
    const char *e = strstr(doc, "<!-- config-table:end -->");
    assert_non_null(b);
    assert_non_null(e);
    b += strlen("<!-- config-table:begin -->\n");
    if ((size_t)(e - b) != strlen(table) || strncmp(b, table, strlen(table)) != 0)
        fail_msg("docs/configuration.md's configuration table differs from "
                 "`amibridge --config-table`; paste the command's output between the "
                 "config-table markers");
    free(table);
    free(doc);
}

/* --version names the release and every library as it runs, for bug reports. */
static void version_names_the_release_and_the_libraries(void **state)
{
    (void)state;
    char bin[1024], cmd[1100];
    testenv_build_path(bin, sizeof(bin), "amibridge");
    snprintf(cmd, sizeof(cmd), "%s --version", bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *out = read_all(p);
    assert_int_equal(pclose(p), 0);
    assert_true(!strncmp(out, "amibridge " AMIBRIDGE_VERSION "\n", strlen(AMIBRIDGE_VERSION) + 11));
    static const char *const libs[] = {"libuv 1.", "GnuTLS 3.", "jansson 2.",
                                       "hiredis ", "nettle ",   "libcurl "};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
        if (!strstr(out, libs[i]))
            fail_msg("--version does not name '%s': %s", libs[i], out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_doc_table_matches_the_binary),
        cmocka_unit_test(version_names_the_release_and_the_libraries),
    };
    return cmocka_run_group_tests_name("docs", tests, NULL, NULL);
}
