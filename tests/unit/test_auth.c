/* Unit tests for src/http/auth: tokens, scopes and open mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
    assert_int_equal(http_auth_check(a, "Bearer crm-token-0123456789", 0, CFG_SCOPE_CALL, &k),
                     HTTP_AUTH_OK);
    assert_string_equal(k->name, "crm");
    assert_int_equal(http_auth_check(a, "bearer  ops-token-0123456789 ", 0,
                                     CFG_SCOPE_ACTIONS | CFG_SCOPE_READ, &k),
                     HTTP_AUTH_OK);
    assert_string_equal(k->name, "ops");
    assert_int_equal(http_auth_check(a, "Bearer crm-token-0123456789", 1, CFG_SCOPE_ACTIONS, &k),
                     HTTP_AUTH_SCOPE);
    assert_string_equal(k->name, "crm");
    assert_int_equal(http_auth_check(a, "Bearer crm-token-012345678", 1, 0, &k), HTTP_AUTH_INVALID);
    assert_int_equal(http_auth_check(a, "Bearer crm-token-01234567890", 1, 0, &k),
                     HTTP_AUTH_INVALID);
    assert_int_equal(http_auth_check(a, "Basic Y3JtOng=", 1, 0, &k), HTTP_AUTH_MISSING);
    assert_int_equal(http_auth_check(a, "Bearer ", 1, 0, &k), HTTP_AUTH_MISSING);
    assert_int_equal(http_auth_check(a, NULL, 1, 0, &k), HTTP_AUTH_MISSING);
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
    assert_int_equal(http_auth_check(a, NULL, 1, CFG_SCOPE_ALL, &k), HTTP_AUTH_OK);
    assert_null(k);
    assert_int_equal(http_auth_check(a, "Bearer anything", 0, CFG_SCOPE_READ, &k),
                     HTTP_AUTH_REMOTE);
    http_auth_free(a);
    cfg_free(&c);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_and_scopes_are_checked),
        cmocka_unit_test(open_mode_serves_loopback_only),
    };
    return cmocka_run_group_tests_name("http_auth", tests, NULL, NULL);
}
