/* The README's configuration table is the one the binary prints, so the
 * documentation cannot drift from the code. */
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

static void readme_config_table_matches_the_binary(void **state)
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
    FILE *f = fopen("README.md", "r");
    assert_non_null(f);
    char *readme = read_all(f);
    fclose(f);
    const char *b = strstr(readme, "<!-- config-table:begin -->\n");
    const char *e = strstr(readme, "<!-- config-table:end -->");
    assert_non_null(b);
    assert_non_null(e);
    b += strlen("<!-- config-table:begin -->\n");
    if ((size_t)(e - b) != strlen(table) || strncmp(b, table, strlen(table)) != 0)
        fail_msg("README.md's configuration table differs from `amibridge --config-table`; "
                 "paste the command's output between the config-table markers");
    free(table);
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readme_config_table_matches_the_binary),
    };
    return cmocka_run_group_tests_name("docs", tests, NULL, NULL);
}
