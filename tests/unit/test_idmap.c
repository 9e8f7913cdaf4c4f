/* Unit tests for src/core/idmap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "core/idmap.h"

static void put_get_del_under_churn(void **state)
{
    (void)state;
    struct idmap m;
    idmap_init(&m);
    assert_null(idmap_get(&m, 1));
    assert_null(idmap_del(&m, 1));
    /* a sliding window of live ids, like ActionIDs in flight */
    static int vals[200000];
    for (uint64_t id = 1; id <= 200000; id++) {
        assert_int_equal(idmap_put(&m, id, &vals[id - 1]), 0);
        if (id > 1000)
            assert_ptr_equal(idmap_del(&m, id - 1000), &vals[id - 1001]);
    }
    assert_int_equal(m.used, 1000);
    assert_true(m.cap <= 8192); /* tombstones do not make it grow without bound */
    for (uint64_t id = 199001; id <= 200000; id++)
        assert_ptr_equal(idmap_get(&m, id), &vals[id - 1]);
    assert_null(idmap_get(&m, 199000));
    assert_int_equal(idmap_put(&m, 200000, vals), -EEXIST);
    assert_int_equal(idmap_put(&m, 0, vals), -EINVAL);
    assert_int_equal(idmap_put(&m, UINT64_MAX, vals), -EINVAL);
    idmap_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_del_under_churn),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}
