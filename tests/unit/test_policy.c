/* Unit tests for src/api/policy: the per-key dial policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api/policy.h"

static char *allow_ch[] = {"PJSIP/1???", "Local/*@outbound"};
static char *allow_ctx[] = {"from-internal", "outbound"};
static char *deny_ex[] = {"00*", "011*", "900*"};
static char *allow_ex[] = {"[0-9]*"};

static struct cfg_api_key key(void)
{
    struct cfg_api_key k;
    memset(&k, 0, sizeof(k));
    k.name = "crm";
    k.policy.allow_channels = allow_ch;
    k.policy.nallow_channels = 2;
    k.policy.allow_contexts = allow_ctx;
    k.policy.nallow_contexts = 2;
    k.policy.deny_extens = deny_ex;
    k.policy.ndeny_extens = 3;
    k.policy.allow_extens = allow_ex;
    k.policy.nallow_extens = 1;
    return k;
}

static void allowed_calls_pass(void **state)
{
    (void)state;
    struct cfg_api_key k = key();
    struct policy_refusal r;
    assert_int_equal(policy_check(&k, "PJSIP/1001", "from-internal", "5551234", &r), 0);
    assert_int_equal(policy_check(&k, "pjsip/1001", "FROM-INTERNAL", "5551234", &r), 0);
    assert_int_equal(policy_check(&k, "Local/5551234@outbound", NULL, NULL, &r), 0);
    assert_int_equal(policy_check(NULL, "Anything/at-all", "x", "00", &r), 0); /* open mode */
    struct cfg_api_key none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(policy_check(&none, "SIP/x", "any", "0044", &r), 0); /* no policy */
}

static void refusals_name_the_rule_and_field(void **state)
{
    (void)state;
    struct cfg_api_key k = key();
    struct policy_refusal r;
    assert_int_equal(policy_check(&k, "PJSIP/10011", "from-internal", "1", &r), -1);
    assert_int_equal(r.field, POLICY_CHANNEL);
    assert_string_equal(r.rule, "allow_channels");
    assert_int_equal(policy_check(&k, "PJSIP/1001", "admin", "1", &r), -1);
    assert_int_equal(r.field, POLICY_CONTEXT);
    assert_string_equal(r.rule, "allow_contexts");
    assert_int_equal(policy_check(&k, "PJSIP/1001", "outbound", "0044207", &r), -1);
    assert_int_equal(r.field, POLICY_EXTEN);
    assert_string_equal(r.rule, "deny_extens: 00*");
    assert_int_equal(policy_check(&k, "PJSIP/1001", "outbound", "9001234", &r), -1);
    assert_string_equal(r.rule, "deny_extens: 900*");
    assert_int_equal(policy_check(&k, "PJSIP/1001", "outbound", "abc", &r), -1);
    assert_string_equal(r.rule, "allow_extens");
}

static void a_local_channel_is_checked_for_what_it_dials(void **state)
{
    (void)state;
    struct cfg_api_key k = key();
    struct policy_refusal r;
    /* the channel glob allows it, but it dials a denied number */
    assert_int_equal(policy_check(&k, "Local/0114412345@outbound", NULL, NULL, &r), -1);
    assert_int_equal(r.field, POLICY_CHANNEL);
    assert_string_equal(r.rule, "deny_extens: 011*");
    assert_int_equal(policy_check(&k, "Local/0114412345@outbound/n", NULL, NULL, &r), -1);
    k.policy.nallow_channels = 0; /* any channel, but still the context of a Local */
    assert_int_equal(policy_check(&k, "Local/123@admin", NULL, NULL, &r), -1);
    assert_string_equal(r.rule, "allow_contexts");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allowed_calls_pass),
        cmocka_unit_test(refusals_name_the_rule_and_field),
        cmocka_unit_test(a_local_channel_is_checked_for_what_it_dials),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
