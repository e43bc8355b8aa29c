/*
 * test_ahead.c - the read-ahead thread (src/core/ahead.h), the work queue
 * (src/core/workq.h) and the first-error record (src/core/first_error.h).
 *
 * Items must come out complete and in order whatever the batch and queue
 * sizes, an error must come after the items produced before it, and
 * stopping early must free every item not taken. Every queued job must run
 * exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ahead.h"
#include "core/error.h"
#include "core/first_error.h"
#include "core/workq.h"

struct counter {
    int next, limit, fail_at;
};

/* Items are malloc'ed ints, so a leak or a double free shows under ASan. */
static int produce(void *src, void *item, struct err *e)
{
    struct counter *c = src;
    if (c->next == c->fail_at)
        return err_set(e, ERR_IO, "failed at %d", c->next);
    if (c->next == c->limit)
        return 0;
    int *v = malloc(sizeof(*v));
    assert_non_null(v);
    *v = c->next++;
    memcpy(item, &v, sizeof(v));
    return 1;
}

static void free_item(void *item)
{
    int *v;
    memcpy(&v, item, sizeof(v));
    free(v);
}

static void test_in_order(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {{1, 1}, {1, 8}, {7, 2}, {256, 8}, {5000, 1}};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        struct counter c = {.limit = 3001, .fail_at = -1};
        struct ahead *a =
            ahead_start(produce, free_item, &c, sizeof(int *), shapes[k][0], shapes[k][1]);
        assert_non_null(a);
        struct err e;
        int *v, want = 0, r;
        while ((r = ahead_next(a, &v, &e)) == 1) {
            assert_int_equal(*v, want++);
            free(v);
        }
        assert_int_equal(r, 0);
        assert_int_equal(want, 3001);
        assert_int_equal(ahead_next(a, &v, &e), 0); /* the end stays the end */
        ahead_stop(a);
    }
}

static void test_error_after_items(void **state)
{
    (void)state;
    struct counter c = {.limit = 1000, .fail_at = 700};
    struct ahead *a = ahead_start(produce, free_item, &c, sizeof(int *), 64, 2);
    assert_non_null(a);
    struct err e;
    err_clear(&e);
    int *v, n = 0, r;
    while ((r = ahead_next(a, &v, &e)) == 1) {
        assert_int_equal(*v, n++);
        free(v);
    }
    assert_int_equal(n, 700);
    assert_int_equal(r, ERR_IO);
    assert_string_equal(e.msg, "failed at 700");
    ahead_stop(a);
}

static void test_stop_early(void **state)
{
    (void)state;
    /* a long stream, a few items taken: the rest is freed (ASan checks) */
    struct counter c = {.limit = 1000000, .fail_at = -1};
    struct ahead *a = ahead_start(produce, free_item, &c, sizeof(int *), 16, 4);
    assert_non_null(a);
    struct err e;
    int *v;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ahead_next(a, &v, &e), 1);
        assert_int_equal(*v, i);
        free(v);
    }
    ahead_stop(a);
    assert_true(c.next < 1000000); /* it stopped producing */
    ahead_stop(NULL);
}

struct sum {
    atomic_long total;
    atomic_int jobs;
};

static void add_job(void *job, unsigned char *buf, void *ctx)
{
    struct sum *s = ctx;
    long v;
    memcpy(&v, job, sizeof(v));
    assert_non_null(buf);
    memset(buf, 1, 64); /* the worker's own buffer */
    atomic_fetch_add(&s->total, v);
    atomic_fetch_add(&s->jobs, 1);
}

static void test_workq(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 8; threads *= 2) {
        struct sum s = {0};
        struct workq *q = workq_new(threads, 3, sizeof(long), 64, add_job, &s);
        assert_non_null(q);
        for (long i = 1; i <= 5000; i++)
            workq_push(q, &i);
        workq_finish(q);
        assert_int_equal(atomic_load(&s.jobs), 5000);
        assert_int_equal(atomic_load(&s.total), 5000L * 5001 / 2);
    }
    workq_finish(NULL);
}

static void test_first_error(void **state)
{
    (void)state;
    struct first_error f;
    first_error_init(&f);
    struct err e, got;
    err_clear(&got);
    assert_int_equal(first_error_check(&f, &got), 0);
    err_set(&e, ERR_NET, "first");
    first_error_set(&f, &e);
    err_set(&e, ERR_IO, "second");
    first_error_set(&f, &e);
    assert_int_equal(first_error_check(&f, &got), ERR_NET);
    assert_string_equal(got.msg, "first");
    first_error_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),    cmocka_unit_test(test_error_after_items),
        cmocka_unit_test(test_stop_early),  cmocka_unit_test(test_workq),
        cmocka_unit_test(test_first_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
