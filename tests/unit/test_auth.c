/* Unit tests for src/http/auth: tokens, scopes and open mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "http/auth.h"

static void keys_and_scopes_are_checked(void **state)
{
    (void)state;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s",
                   "AMIBRIDGE_API_KEYS=crm:crm-token-0123456789:call,read "
                   "ops:ops-token-0123456789:read,actions,control,admin",
                   NULL};
    struct cfg c;
    char err[256];
    assert_int_equal(cfg_load(&c, env, NULL, err, sizeof(err)), 0);
    struct http_auth *a = http_auth_new(&c);
    const struct cfg_api_key *k;
    assert_false(http_auth_open(a));
    assert_int_equal(http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k, NULL),
                     HTTP_AUTH_OK);
    assert_string_equal(k->name, "crm");
    assert_int_equal(http_auth_check(a, "bearer  ops-token-0123456789 ", 0,
                                     CFG_SCOPE_ACTIONS | CFG_SCOPE_READ, &k, NULL),
                     HTTP_AUTH_OK);
    assert_string_equal(k->name, "ops");
    assert_int_equal(
        http_auth_check(a, "Bearer crm-token-0123456789", 1, CFG_SCOPE_ACTIONS, &k, NULL),
        HTTP_AUTH_SCOPE);
    assert_string_equal(k->name, "crm");
    assert_int_equal(http_auth_check(a, "Bearer crm-token-012345678", 1, 0, &k, NULL),
                     HTTP_AUTH_INVALID);
    assert_int_equal(http_auth_check(a, "Bearer crm-token-01234567890", 1, 0, &k, NULL),
                     HTTP_AUTH_INVALID);
    assert_int_equal(http_auth_check(a, "Basic Y3JtOng=", 1, 0, &k, NULL), HTTP_AUTH_MISSING);
    assert_int_equal(http_auth_check(a, "Bearer ", 1, 0, &k, NULL), HTTP_AUTH_MISSING);
    assert_int_equal(http_auth_check(a, NULL, 1, 0, &k, NULL), HTTP_AUTH_MISSING);
    http_auth_free(a);
    cfg_free(&c);
}

static void open_mode_serves_loopback_only(void **state)
{
    (void)state;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s", NULL};
    struct cfg c;
    char err[256];
    assert_int_equal(cfg_load(&c, env, NULL, err, sizeof(err)), 0);
    struct http_auth *a = http_auth_new(&c);
    const struct cfg_api_key *k;
    assert_true(http_auth_open(a));
    assert_int_equal(http_auth_check(a, NULL, 1, CFG_SCOPE_ALL, &k, NULL), HTTP_AUTH_OK);
    assert_null(k);
    assert_int_equal(http_auth_check(a, "Bearer anything", 0, CFG_SCOPE_READ, &k, NULL),
                     HTTP_AUTH_REMOTE);
    http_auth_free(a);
    cfg_free(&c);
}

static struct http_auth *table(struct cfg *c, const char *keys)
{
    char spec[512];
    snprintf(spec, sizeof(spec), "AMIBRIDGE_API_KEYS=%s", keys);
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s", spec, NULL};
    char err[256];
    assert_int_equal(cfg_load(c, env, NULL, err, sizeof(err)), 0);
    struct http_auth *a = http_auth_new(c);
    assert_non_null(a);
    return a;
}

/* A connection's memo of its last valid token: the same token gives the
 * same key and the scopes are still checked; any other token, however
 * close, is judged in full; a memo never speaks for another key table. */
static void the_memo_of_a_connection_changes_no_answer(void **state)
{
    (void)state;
    struct cfg c, c2;
    struct http_auth *a = table(&c, "crm:crm-token-0123456789:call,read "
                                    "ops:ops-token-0123456789:read,actions");
    const struct cfg_api_key *k;
    struct http_auth_memo *memo = NULL;
    assert_int_equal(http_auth_check(a, "Bearer nope-token-0123456789", 0, 0, &k, &memo),
                     HTTP_AUTH_INVALID);
    assert_null(memo); /* only a valid token is kept */
    assert_int_equal(
        http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k, &memo),
        HTTP_AUTH_OK);
    assert_non_null(memo);
    for (int i = 0; i < 3; i++) {
        k = NULL;
        assert_int_equal(
            http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k, &memo),
            HTTP_AUTH_OK);
        assert_string_equal(k->name, "crm");
    }
    assert_int_equal(
        http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_ACTIONS, &k, &memo),
        HTTP_AUTH_SCOPE);
    assert_string_equal(k->name, "crm");
    static const char *const near[] = {"Bearer crm-token-012345678",
                                       "Bearer crm-token-01234567890",
                                       "Bearer CRM-token-0123456789",
                                       "Bearer crm-token-0123456788",
                                       "Bearer c",
                                       NULL};
    for (const char *const *t = near; *t; t++) {
        k = NULL;
        assert_int_equal(http_auth_check(a, *t, 0, 0, &k, &memo), HTTP_AUTH_INVALID);
        assert_null(k);
    }
    /* another valid token on the same connection: its own key, kept next */
    assert_int_equal(
        http_auth_check(a, "Bearer ops-token-0123456789", 0, CFG_SCOPE_ACTIONS, &k, &memo),
        HTTP_AUTH_OK);
    assert_string_equal(k->name, "ops");
    assert_int_equal(
        http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k, &memo),
        HTTP_AUTH_OK);
    assert_string_equal(k->name, "crm");
    /* a new table (the keys the other way round, maybe at the same address) */
    http_auth_free(a);
    a = table(&c2, "ops:ops-token-0123456789:read crm:crm-token-0123456789:call");
    assert_int_equal(
        http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k, &memo),
        HTTP_AUTH_OK);
    assert_string_equal(k->name, "crm");
    http_auth_free(a);
    cfg_free(&c);
    a = table(&c, "crm:crm-token-0123456789:call");
    assert_int_equal(
        http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k, &memo),
        HTTP_AUTH_OK);
    assert_string_equal(k->name, "crm");
    http_auth_memo_free(memo);
    http_auth_free(a);
    cfg_free(&c);
    cfg_free(&c2);

    /* a token longer than a memo holds: checked in full every time */
    char longtok[HTTP_AUTH_MEMO_MAX + 16], keys[HTTP_AUTH_MEMO_MAX + 64],
        hdr[HTTP_AUTH_MEMO_MAX + 32];
    memset(longtok, 'x', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    snprintf(keys, sizeof(keys), "big:%s:read", longtok);
    a = table(&c, keys);
    snprintf(hdr, sizeof(hdr), "Bearer %s", longtok);
    memo = NULL;
    assert_int_equal(http_auth_check(a, hdr, 0, CFG_SCOPE_READ, &k, &memo), HTTP_AUTH_OK);
    assert_string_equal(k->name, "big");
    assert_null(memo);
    http_auth_free(a);
    cfg_free(&c);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_and_scopes_are_checked),
        cmocka_unit_test(open_mode_serves_loopback_only),
        cmocka_unit_test(the_memo_of_a_connection_changes_no_answer),
    };
    return cmocka_run_group_tests_name("http_auth", tests, NULL, NULL);
}
