/* Unit tests for src/admit/astval: values as Asterisk reads them. The
 * expectations come from Asterisk's own code (manager.c's
 * __astman_get_header, pbx.c's extension matching, app.c's
 * __ast_app_separate_args, core_local.c's local_alloc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "admit/astval.h"

static void flaws_are_found_worst_first(void **state)
{
    (void)state;
    size_t at = 99;
    assert_int_equal(astval_flaw("900", 3, ASTVAL_NAME, &at), ASTVAL_OK);
    assert_int_equal(astval_flaw(" 900", 4, ASTVAL_NAME, &at), ASTVAL_LEADING_BLANK);
    assert_int_equal(at, 0);
    assert_int_equal(astval_flaw("900 ", 4, ASTVAL_NAME, &at), ASTVAL_TRAILING_BLANK);
    assert_int_equal(at, 3);
    assert_int_equal(astval_flaw("Bob ", 4, 0, &at), ASTVAL_OK); /* free text may */
    assert_int_equal(astval_flaw("9 00", 4, ASTVAL_NAME, &at), ASTVAL_INNER_BLANK);
    assert_int_equal(astval_flaw("Bob Smith", 9, 0, &at), ASTVAL_OK);
    /* every byte Asterisk skips is refused, not only space and tab */
    for (int c = 1; c < 0x20; c++) {
        char v[4] = {(char)c, '9', '0', '0'};
        assert_int_equal(astval_flaw(v, 4, 0, NULL), ASTVAL_CONTROL);
    }
    assert_int_equal(astval_flaw("9\x7f", 2, 0, NULL), ASTVAL_CONTROL);
    /* a NUL is worse than a blank before it */
    assert_int_equal(astval_flaw(" 9\0", 3, 0, &at), ASTVAL_NUL);
    assert_int_equal(at, 2);
    assert_int_equal(astval_flaw("", 0, ASTVAL_NAME, NULL), ASTVAL_OK);
    assert_non_null(strstr(astval_flaw_text(ASTVAL_LEADING_BLANK), "blank"));
}

static void header_skips_what_astman_get_header_skips(void **state)
{
    (void)state;
    assert_string_equal(astval_header(" \t\v\f\r\n\x01"
                                      "900"),
                        "900");
    assert_string_equal(astval_header("900 "), "900 ");
    assert_string_equal(astval_header("   "), "");
    assert_string_equal(astval_header("a b"), "a b");
}

static void extensions_lose_their_dashes(void **state)
{
    (void)state;
    char out[32];
    astval_exten("0-044-123", out, sizeof(out));
    assert_string_equal(out, "0044123");
    astval_exten("--9--0--0", out, sizeof(out));
    assert_string_equal(out, "900");
    astval_number("+44 (0) 20.7-946", out, sizeof(out));
    assert_string_equal(out, "+440207946");
    astval_exten("123456789", out, 4); /* cut, terminated */
    assert_string_equal(out, "123");
}

static void app_args_split_as_asterisk_does(void **state)
{
    (void)state;
    char buf[256];
    char *argv[8];
    assert_int_equal(astval_app_args("PJSIP/1,30,tT", buf, sizeof(buf), argv, 8), 3);
    assert_string_equal(argv[0], "PJSIP/1");
    assert_string_equal(argv[2], "tT");
    /* commas inside (), [] and "" do not split; quotes and backslashes go */
    assert_int_equal(astval_app_args("a(b,c),[d,e],\"f,g\",h\\,i", buf, sizeof(buf), argv, 8), 4);
    assert_string_equal(argv[0], "a(b,c)");
    assert_string_equal(argv[1], "[d,e]");
    assert_string_equal(argv[2], "f,g");
    assert_string_equal(argv[3], "h,i");
    /* past max - 1 arguments the last one holds the rest */
    assert_int_equal(astval_app_args("a,b,c,d", buf, sizeof(buf), argv, 2), 2);
    assert_string_equal(argv[1], "b,c,d");
    /* a trailing comma is one more (empty) argument */
    assert_int_equal(astval_app_args("a,", buf, sizeof(buf), argv, 8), 2);
    assert_string_equal(argv[1], "");
    assert_int_equal(astval_app_args("", buf, sizeof(buf), argv, 8), 0);
    assert_int_equal(astval_app_args("abc", buf, 3, argv, 8), -1); /* no room */
}

struct seen {
    char names[8][32];
    int n;
    int computed;
};

static int collect(const char *name, size_t len, void *ud)
{
    struct seen *s = ud;
    if (!name) {
        s->computed++;
        return 0;
    }
    if (s->n < 8) {
        memcpy(s->names[s->n], name, len < 31 ? len : 31);
        s->names[s->n][len < 31 ? len : 31] = '\0';
        s->n++;
    }
    return 0;
}

static struct seen functions(const char *v, int is_name)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    astval_functions(v, is_name, collect, &s);
    return s;
}

static void functions_are_found_where_asterisk_calls_them(void **state)
{
    (void)state;
    struct seen s = functions("${CALLERID(num)} and ${SHELL(id)}", 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "CALLERID");
    assert_string_equal(s.names[1], "SHELL");
    s = functions("plain (text) here", 0); /* no ${ }: nothing is called */
    assert_int_equal(s.n, 0);
    s = functions("$[ CURL(http://x) + 1 ]", 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "CURL");
    s = functions("${LEN(${ENV(HOME)})}", 0); /* nested */
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[1], "ENV");
    s = functions("${SHELL (id)}", 0); /* a blank before '(' */
    assert_string_equal(s.names[0], "SHELL");
    s = functions("${S${X}(id)}", 0); /* name built at run time */
    assert_int_equal(s.computed, 1);
    s = functions("${X}(id)", 0); /* outside any ${ }: text */
    assert_int_equal(s.computed + s.n, 0);
    s = functions("$[${X}(id)]", 0);
    assert_int_equal(s.computed, 1);
    s = functions("${CUT(A,${B},1)}", 0); /* a substitution in the arguments is fine */
    assert_int_equal(s.computed, 0);
    assert_string_equal(s.names[0], "CUT");
    s = functions("${SHELL(id", 0); /* unclosed runs to the end */
    assert_string_equal(s.names[0], "SHELL");
    s = functions("$[CDR-SHELL(id)]", 0); /* '-' is an operator in $[ ] */
    assert_string_equal(s.names[0], "SHELL");
    s = functions("AST_CONFIG(manager.conf,admin,secret)", 1); /* a name */
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "AST_CONFIG");
    s = functions("AST_CONFIG(manager.conf,admin,secret)", 0); /* a value */
    assert_int_equal(s.n, 0);
}

static int names_collect(const char *name, void *ud)
{
    struct seen *s = ud;
    if (s->n < 8)
        strncpy(s->names[s->n++], name, 31);
    return 0;
}

static void variable_names_are_the_items_names(void **state)
{
    (void)state;
    struct seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(astval_variable_names("A=1,FILE(/x)=2,\"B\"=3", names_collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[0], "A");
    assert_string_equal(s.names[1], "FILE(/x)");
    assert_string_equal(s.names[2], "B");
}

struct opts_seen {
    char letters[16];
    char args[4][32];
    int n;
};

static int opt_collect(int letter, const char *arg, void *ud)
{
    struct opts_seen *o = ud;
    if (o->n < 15) {
        o->letters[o->n] = (char)letter;
        if (o->n < 4 && arg)
            strncpy(o->args[o->n], arg, 31);
        o->n++;
    }
    return 0;
}

static void options_parse_as_parse_options_does(void **state)
{
    (void)state;
    struct opts_seen o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(astval_app_options("tTm(default)G(a^b^1)", opt_collect, &o), 0);
    assert_string_equal(o.letters, "tTmG");
    assert_string_equal(o.args[2], "default");
    assert_string_equal(o.args[3], "a^b^1");
    /* a quoted '(' does not count: A() ends at the first ')', G is an option */
    memset(&o, 0, sizeof(o));
    assert_int_equal(astval_app_options("A(\"(\")G(x^y^1)", opt_collect, &o), 0);
    assert_string_equal(o.letters, "AG");
    assert_string_equal(o.args[0], "(");
    /* a backslash takes the next byte as it is */
    memset(&o, 0, sizeof(o));
    assert_int_equal(astval_app_options("A(\\()G(x^y^1)", opt_collect, &o), 0);
    assert_string_equal(o.letters, "AG");
    /* a letter is its byte & 0x7f */
    memset(&o, 0, sizeof(o));
    assert_int_equal(astval_app_options("\xc6", opt_collect, &o), 0);
    assert_int_equal(o.letters[0], 'F');
    assert_int_equal(astval_app_options("G(unclosed", opt_collect, &o), -1);
}

static void local_channels_read_as_core_local_does(void **state)
{
    (void)state;
    char e[64], c[64];
    assert_int_equal(astval_local("Local/100@from-internal/n", e, sizeof(e), c, sizeof(c)), 1);
    assert_string_equal(e, "100");
    assert_string_equal(c, "from-internal");
    assert_int_equal(astval_local(" local/0044", e, sizeof(e), c, sizeof(c)), 1);
    assert_string_equal(e, "0044");
    assert_string_equal(c, "default");
    /* options are after the last '/': the context keeps a '/' before it */
    assert_int_equal(astval_local("Local/1@a/b/n", e, sizeof(e), c, sizeof(c)), 1);
    assert_string_equal(c, "a/b");
    assert_int_equal(astval_local("PJSIP/100", e, sizeof(e), c, sizeof(c)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flaws_are_found_worst_first),
        cmocka_unit_test(header_skips_what_astman_get_header_skips),
        cmocka_unit_test(extensions_lose_their_dashes),
        cmocka_unit_test(app_args_split_as_asterisk_does),
        cmocka_unit_test(functions_are_found_where_asterisk_calls_them),
        cmocka_unit_test(variable_names_are_the_items_names),
        cmocka_unit_test(options_parse_as_parse_options_does),
        cmocka_unit_test(local_channels_read_as_core_local_does),
    };
    return cmocka_run_group_tests_name("astval", tests, NULL, NULL);
}
