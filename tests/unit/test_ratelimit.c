/*
 * test_ratelimit.c - the token bucket (src/io/ratelimit.h).
 *
 * A fake clock (ratelimit_set_clock) makes time pass only when the limiter
 * sleeps, so the tests measure exactly how long the limiter would have
 * made a transfer wait, in no real time at all. One test also runs on the
 * real clock to check that cancellation from another thread is noticed
 * within the documented 100 ms step.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/cancel.h"
#include "core/error.h"
#include "io/ratelimit.h"

#define MIB (1024 * 1024)
#define SEC 1000000000ull

struct fake_clock {
    uint64_t now;
    uint64_t slept;    /* total ns slept */
    unsigned sleeps;   /* number of sleep calls */
    uint64_t max_step; /* longest single sleep */
    /* optional action once `at` ns of fake time have passed */
    uint64_t at;
    void (*action)(struct fake_clock *c);
    bool fired;
    uint64_t fired_at;
    struct ratelimit *target;
};

static uint64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

static void fake_sleep(void *ctx, uint64_t ns)
{
    struct fake_clock *c = ctx;
    c->now += ns;
    c->slept += ns;
    c->sleeps++;
    if (ns > c->max_step)
        c->max_step = ns;
    if (c->action && !c->fired && c->now >= c->at) {
        c->fired = true;
        c->fired_at = c->now;
        c->action(c);
    }
}

static void fake_init(struct fake_clock *c)
{
    memset(c, 0, sizeof(*c));
    c->now = 1000 * SEC; /* not zero: no special meaning for the epoch */
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static int teardown(void **state)
{
    (void)state;
    cancel_reset();
    return 0;
}

/* Take total bytes in chunks; returns fake seconds spent. */
static double take_all(struct ratelimit *rl, struct fake_clock *c, size_t total, size_t chunk)
{
    struct err e;
    uint64_t start = c->now;
    for (size_t done = 0; done < total; done += chunk)
        assert_int_equal(ratelimit_take(rl, chunk < total - done ? chunk : total - done, &e), 0);
    return secs(c->now - start);
}

static void test_ten_mib_at_one_mib_per_second(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(MIB, NULL);
    assert_non_null(rl);
    assert_int_equal(ratelimit_rate(rl), MIB);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    double t = take_all(rl, &c, 10 * MIB, 64 * 1024);
    /* 10 MiB at 1 MiB/s with a burst of at most one second */
    assert_true(t >= 9.0 - 0.01 && t <= 10.0 + 0.01);
    /* sleeps come in steps of at most 100 ms (so cancellation is prompt) */
    assert_true(c.max_step <= 100000000ull);
    assert_true(c.sleeps >= 90);
    ratelimit_free(rl);

    /* the same in one big take */
    fake_init(&c);
    rl = ratelimit_new(MIB, NULL);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    t = take_all(rl, &c, 10 * MIB, 10 * MIB);
    assert_true(t >= 9.0 - 0.01 && t <= 10.0 + 0.01);
    assert_true(c.max_step <= 100000000ull);
    ratelimit_free(rl);
}

static void test_burst_is_one_second(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(MIB, NULL);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    take_all(rl, &c, MIB, MIB); /* drain whatever was there */
    /* idle for 5 s: at most one second of rate is saved up */
    c.now += 5 * SEC;
    uint64_t before = c.slept;
    double t = take_all(rl, &c, MIB, 64 * 1024);
    assert_true(t < 0.01); /* one second's worth: free */
    assert_int_equal(c.slept, before);
    t = take_all(rl, &c, 2 * MIB, 64 * 1024);
    assert_true(t >= 2.0 - 0.01 && t <= 2.0 + 0.01); /* the other 4 s were not saved */
    ratelimit_free(rl);
}

static void test_rate_zero_never_sleeps(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(0, NULL);
    assert_non_null(rl);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    take_all(rl, &c, 1000 * MIB, 4 * MIB);
    struct err e;
    assert_int_equal(ratelimit_take(rl, SIZE_MAX / 2, &e), 0);
    assert_int_equal(c.sleeps, 0);
    assert_int_equal(c.slept, 0);
    ratelimit_free(rl);
}

static void test_parent_applies_to_child(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *node = ratelimit_new(MIB, NULL);
    struct ratelimit *job = ratelimit_new(10 * MIB, node);
    assert_non_null(node);
    assert_non_null(job);
    ratelimit_set_clock(node, fake_now, fake_sleep, &c);
    ratelimit_set_clock(job, fake_now, fake_sleep, &c);
    /* the slower parent decides */
    double t = take_all(job, &c, 10 * MIB, 64 * 1024);
    assert_true(t >= 9.0 - 0.01 && t <= 10.0 + 0.01);
    ratelimit_free(job);
    ratelimit_free(node);

    /* an unlimited child still obeys its parent */
    fake_init(&c);
    node = ratelimit_new(2 * MIB, NULL);
    job = ratelimit_new(0, node);
    ratelimit_set_clock(node, fake_now, fake_sleep, &c);
    ratelimit_set_clock(job, fake_now, fake_sleep, &c);
    t = take_all(job, &c, 10 * MIB, 64 * 1024);
    assert_true(t >= 4.0 - 0.01 && t <= 5.0 + 0.01);
    ratelimit_free(job);
    ratelimit_free(node);

    /* a slower child under a fast parent: the child decides */
    fake_init(&c);
    node = ratelimit_new(100 * MIB, NULL);
    job = ratelimit_new(MIB, node);
    ratelimit_set_clock(node, fake_now, fake_sleep, &c);
    ratelimit_set_clock(job, fake_now, fake_sleep, &c);
    t = take_all(job, &c, 5 * MIB, 64 * 1024);
    assert_true(t >= 4.0 - 0.01 && t <= 5.0 + 0.01);
    ratelimit_free(job);
    ratelimit_free(node);
}

static void test_two_children_share_parent(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *node = ratelimit_new(MIB, NULL);
    struct ratelimit *a = ratelimit_new(0, node);
    struct ratelimit *b = ratelimit_new(0, node);
    ratelimit_set_clock(node, fake_now, fake_sleep, &c);
    ratelimit_set_clock(a, fake_now, fake_sleep, &c);
    ratelimit_set_clock(b, fake_now, fake_sleep, &c);
    struct err e;
    uint64_t start = c.now;
    /* interleaved: 5 MiB each, 10 MiB through a 1 MiB/s parent */
    for (int i = 0; i < 80; i++) {
        assert_int_equal(ratelimit_take(a, 64 * 1024, &e), 0);
        assert_int_equal(ratelimit_take(b, 64 * 1024, &e), 0);
    }
    double t = secs(c.now - start);
    assert_true(t >= 9.0 - 0.01 && t <= 10.0 + 0.01);
    ratelimit_free(a);
    ratelimit_free(b);
    ratelimit_free(node);
}

static void test_set_rate_between_takes(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(MIB, NULL);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    double t = take_all(rl, &c, 2 * MIB, 64 * 1024);
    assert_true(t >= 1.0 - 0.01 && t <= 2.0 + 0.01);
    ratelimit_set_rate(rl, 4 * MIB);
    assert_int_equal(ratelimit_rate(rl), 4 * MIB);
    t = take_all(rl, &c, 8 * MIB, 64 * 1024);
    assert_true(t >= 1.75 - 0.01 && t <= 2.0 + 0.01);
    ratelimit_set_rate(rl, 0);
    assert_int_equal(ratelimit_rate(rl), 0);
    unsigned sleeps = c.sleeps;
    t = take_all(rl, &c, 100 * MIB, 64 * 1024);
    assert_true(t == 0.0);
    assert_int_equal(c.sleeps, sleeps);
    ratelimit_set_rate(rl, MIB / 2);
    t = take_all(rl, &c, 2 * MIB, 64 * 1024);
    if (t < 3.0 - 0.01 || t > 4.0 + 0.13)
        print_error("2 MiB at 0.5 MiB/s after a pause of the limit took %.3f s\n", t);
    /* 4 s, plus at most one chunk of the old rate's debt repaid at the new
     * rate (the bucket accrues time at the rate in force when it debits) */
    assert_true(t >= 3.0 - 0.01 && t <= 4.0 + 0.13);
    ratelimit_free(rl);
}

static void lift_limit(struct fake_clock *c)
{
    ratelimit_set_rate(c->target, 0);
}

static void test_set_rate_reaches_a_sleeping_take(void **state)
{
    (void)state;
    /* "running transfers follow within one step": a take that is already
     * sleeping off a large debt follows a lifted limit within one 100 ms
     * step instead of sleeping the whole old debt */
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(MIB, NULL);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    c.target = rl;
    c.action = lift_limit;
    c.at = c.now + 1 * SEC;
    struct err e;
    uint64_t start = c.now;
    assert_int_equal(ratelimit_take(rl, 10 * MIB, &e), 0);
    assert_true(c.fired);
    double t = secs(c.now - start);
    if (t > 1.2)
        print_error("take kept sleeping %.2f s after the limit was lifted at 1 s\n", t - 1.0);
    assert_true(t <= 1.2);
    ratelimit_free(rl);
}

static void do_cancel(struct fake_clock *c)
{
    (void)c;
    cancel_request();
}

static void test_cancel_during_sleep(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(MIB, NULL);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    c.action = do_cancel;
    c.at = c.now + SEC / 2;
    struct err e;
    err_clear(&e);
    uint64_t start = c.now;
    assert_int_equal(ratelimit_take(rl, 100 * MIB, &e), ERR_CANCELLED);
    assert_int_equal(e.code, ERR_CANCELLED);
    assert_true(c.fired);
    /* noticed within one step of the request */
    assert_true(c.now - c.fired_at <= 100000000ull);
    assert_true(secs(c.now - start) < 0.7);
    ratelimit_free(rl);
    cancel_reset();
}

static void test_cancel_before_take(void **state)
{
    (void)state;
    struct fake_clock c;
    fake_init(&c);
    struct ratelimit *rl = ratelimit_new(MIB, NULL);
    ratelimit_set_clock(rl, fake_now, fake_sleep, &c);
    cancel_request();
    struct err e;
    err_clear(&e);
    assert_int_equal(ratelimit_take(rl, 10 * MIB, &e), ERR_CANCELLED);
    assert_int_equal(c.slept, 0);
    cancel_reset();
    /* after a reset it works again */
    assert_int_equal(ratelimit_take(rl, 1024, &e), 0);
    ratelimit_free(rl);
}

static void *cancel_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cancel_request();
    return NULL;
}

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_cancel_real_clock(void **state)
{
    (void)state;
    /* 1 KiB/s: taking 1 MiB would take 17 minutes without cancellation */
    struct ratelimit *rl = ratelimit_new(1024, NULL);
    assert_non_null(rl);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, NULL), 0);
    struct err e;
    double t0 = now_real();
    int r = ratelimit_take(rl, MIB, &e);
    double t = now_real() - t0;
    pthread_join(th, NULL);
    assert_int_equal(r, ERR_CANCELLED);
    assert_true(t < 0.5);
    cancel_reset();
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ten_mib_at_one_mib_per_second, teardown),
        cmocka_unit_test_teardown(test_burst_is_one_second, teardown),
        cmocka_unit_test_teardown(test_rate_zero_never_sleeps, teardown),
        cmocka_unit_test_teardown(test_parent_applies_to_child, teardown),
        cmocka_unit_test_teardown(test_two_children_share_parent, teardown),
        cmocka_unit_test_teardown(test_set_rate_between_takes, teardown),
        cmocka_unit_test_teardown(test_set_rate_reaches_a_sleeping_take, teardown),
        cmocka_unit_test_teardown(test_cancel_during_sleep, teardown),
        cmocka_unit_test_teardown(test_cancel_before_take, teardown),
        cmocka_unit_test_teardown(test_cancel_real_clock, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
