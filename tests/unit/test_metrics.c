/* Unit tests for core/metrics: series found again by their labels (through
 * the hash index), the cap and its "other" series, the text format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/strbuf.h"

static char *render(void)
{
    struct strbuf b;
    strbuf_init(&b, 0);
    assert_int_equal(metrics_render(&b), 0);
    return b.data; /* the caller frees */
}

static int reset(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

static void the_same_labels_add_up_in_one_series(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        metrics_inc3(METRIC_AMI_ACTIONS, "pbx1", "Ping", "success", 1);
        metrics_inc3(METRIC_AMI_ACTIONS, "pbx1", "Ping", "timeout", 1);
        metrics_inc3(METRIC_AMI_ACTIONS, "pbx2", "Ping", "success", 1);
    }
    /* an absent label is not an empty one */
    metrics_inc(METRIC_HTTP_REQUESTS, "calls", NULL, 1);
    metrics_inc(METRIC_HTTP_REQUESTS, "calls", "", 2);
    char *t = render();
    assert_non_null(strstr(t, "amibridge_ami_actions_total{server=\"pbx1\",action=\"Ping\","
                              "result=\"success\"} 1000\n"));
    assert_non_null(strstr(t, "amibridge_ami_actions_total{server=\"pbx1\",action=\"Ping\","
                              "result=\"timeout\"} 1000\n"));
    assert_non_null(strstr(t, "amibridge_ami_actions_total{server=\"pbx2\",action=\"Ping\","
                              "result=\"success\"} 1000\n"));
    free(t);
}

static void past_the_cap_the_rest_is_counted_under_other(void **state)
{
    (void)state;
    char action[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 100; i++) {
        snprintf(action, sizeof(action), "Action%d", i);
        metrics_inc3(METRIC_AMI_ACTIONS, "pbx1", action, "success", 1);
    }
    /* a series made before the cap is still found */
    metrics_inc3(METRIC_AMI_ACTIONS, "pbx1", "Action7", "success", 1);
    char *t = render();
    assert_non_null(strstr(t, "action=\"Action7\",result=\"success\"} 2\n"));
    assert_null(strstr(t, "action=\"Action600\""));
    assert_non_null(strstr(t, "{server=\"other\",action=\"other\",result=\"other\"} 100\n"));
    free(t);
    metrics_clear(METRIC_AMI_ACTIONS);
    t = render();
    assert_null(strstr(t, "Action7"));
    free(t);
    /* and after a clear the index starts again */
    metrics_inc3(METRIC_AMI_ACTIONS, "pbx1", "Action7", "success", 1);
    t = render();
    assert_non_null(strstr(t, "action=\"Action7\",result=\"success\"} 1\n"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(the_same_labels_add_up_in_one_series, reset),
        cmocka_unit_test_setup(past_the_cap_the_rest_is_counted_under_other, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
