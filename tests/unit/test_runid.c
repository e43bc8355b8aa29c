/*
 * test_runid.c - backup/runid: the shape of run ids (docs/FORMAT.md, Run
 * ids), real dates only, string order is time order, and ids of one second
 * never repeat within the process. The oracle for dates is Python's
 * datetime (an independent calendar), run over a spread of seconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/runid.h"
#include "core/error.h"

static void test_shape(void **state)
{
    (void)state;
    char id[RUNID_LEN + 1];
    struct err e;
    assert_int_equal(runid_new(id, 1795338900, &e), 0); /* 2026-11-22T09:15:00Z */
    assert_int_equal(strlen(id), RUNID_LEN);
    assert_memory_equal(id, "20261122T091500Z-", 17);
    for (int i = 17; i < RUNID_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
    assert_true(runid_valid(id));
    assert_int_equal(runid_time(id), 1795338900);

    assert_int_equal(runid_new(id, 0, &e), 0);
    assert_memory_equal(id, "19700101T000000Z-", 17);
    assert_int_equal(runid_new(id, INT64_C(253402300799), &e), 0);
    assert_memory_equal(id, "99991231T235959Z-", 17);
    assert_int_equal(runid_new(id, INT64_C(253402300800), &e), ERR_INTERNAL);
    assert_int_equal(runid_new(id, -1, &e), ERR_INTERNAL);
    assert_non_null(strstr(e.msg, "out of range for a run id"));
}

static void test_valid_and_invalid(void **state)
{
    (void)state;
    static const char *good[] = {
        "20261122T091500Z-3fa94c1e", "20240229T235959Z-00000000", /* leap day */
        "20000229T120000Z-ffffffff",                              /* 2000 is leap */
        "19700101T000000Z-0123abcd", "99991231T235959Z-deadbeef",
    };
    static const char *bad[] = {
        "",
        "20261122T091500Z-3fa94c1",   /* 24 characters */
        "20261122T091500Z-3fa94c1ee", /* 26 */
        "20261122T091500Z-3FA94C1E",  /* uppercase hex */
        "20261122T091500Z-3fa94c1g",  /* not hex */
        "20261322T091500Z-3fa94c1e",  /* month 13 */
        "20260022T091500Z-3fa94c1e",  /* month 0 */
        "20260230T091500Z-3fa94c1e",  /* Feb 30 */
        "20230229T000000Z-00000000",  /* Feb 29 of a common year */
        "19000229T000000Z-00000000",  /* 1900 is not leap (and before 1970) */
        "20260431T000000Z-00000000",  /* April 31 */
        "20261100T091500Z-3fa94c1e",  /* day 0 */
        "20261122T241500Z-3fa94c1e",  /* hour 24 */
        "20261122T096000Z-3fa94c1e",  /* minute 60 */
        "20261122T091560Z-3fa94c1e",  /* second 60 */
        "20261122T091500-3fa94c1e0",  /* no Z */
        "20261122T091500z-3fa94c1e",  /* lowercase z */
        "20261122t091500Z-3fa94c1e",  /* lowercase t */
        "20261122 091500Z-3fa94c1e",  /* space for T */
        "20261122T091500Z_3fa94c1e",  /* underscore for dash */
        "2026-11-22T09:15:00Z-3fa9",  /* RFC 3339 style */
        "19691231T235959Z-00000000",  /* before 1970 */
        "+0261122T091500Z-3fa94c1e",  /* a sign among the digits */
        "2026112 T091500Z-3fa94c1e",  /* a space among the digits */
        "20261122T091500Z-3fa94c1e\n",
        " 20261122T091500Z-3fa94c1e",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!runid_valid(good[i]))
            print_message("refused: %s\n", good[i]);
        assert_true(runid_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (runid_valid(bad[i]))
            print_message("accepted: %s\n", bad[i]);
        assert_false(runid_valid(bad[i]));
        assert_int_equal(runid_time(bad[i]), -1);
    }
    assert_false(runid_valid(NULL));
    assert_int_equal(runid_time(NULL), -1);
    assert_int_equal(runid_time("20240229T235959Z-00000000"), 1709251199);
    assert_int_equal(runid_time("19700101T000000Z-0123abcd"), 0);
}

/* Python's datetime formats the same seconds: the date part of our ids
 * must be its strftime("%Y%m%dT%H%M%SZ"), and runid_time must invert it. */
static void test_python_calendar(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s -c 'import datetime\n"
             "for i in range(2000):\n"
             "  t = i * 126230401 %% 253402300800\n"
             "  print(t, datetime.datetime.fromtimestamp(t, datetime.timezone.utc)"
             ".strftime(\"%%Y%%m%%dT%%H%%M%%SZ\"))'",
             access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    long long t;
    char want[32];
    int n = 0;
    while (fscanf(p, "%lld %31s", &t, want) == 2) {
        char id[RUNID_LEN + 1];
        struct err e;
        assert_int_equal(runid_new(id, t, &e), 0);
        if (memcmp(id, want, 16) != 0)
            print_message("second %lld: %s, python says %s\n", t, id, want);
        assert_memory_equal(id, want, 16);
        assert_int_equal(runid_time(id), t);
        n++;
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(n, 2000);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Ids of later seconds sort later as strings, whatever their random part;
 * across the whole range (1970..9999), seconds close together included. */
static void test_order_is_time(void **state)
{
    (void)state;
    enum { N = 4000 };
    static char ids[N][RUNID_LEN + 1];
    int64_t t = 0;
    struct err e;
    for (int i = 0; i < N; i++) {
        /* steps of 1 s, ~1 day, ~1 year and ~70 years, mixed */
        static const int64_t steps[] = {1, 86399, 31556952, INT64_C(2208988800) / 1000 * 1000};
        t += steps[i % 4] / (i % 7 + 1) + 1;
        if (t > INT64_C(253402300799))
            t = INT64_C(253402300799) - (N - i);
        assert_int_equal(runid_new(ids[i], t, &e), 0);
    }
    for (int i = 1; i < N; i++) {
        int64_t a = runid_time(ids[i - 1]), b = runid_time(ids[i]);
        assert_true(a >= 0 && b >= 0);
        int c = strcmp(ids[i - 1], ids[i]);
        if (a < b)
            assert_true(c < 0);
        else if (a > b)
            assert_true(c > 0);
    }
    /* the same in the other direction: sorting the strings sorts the times */
    qsort(ids, N, sizeof(ids[0]), cmp_id);
    for (int i = 1; i < N; i++)
        assert_true(runid_time(ids[i - 1]) <= runid_time(ids[i]));
}

/* 10,000 ids in the same second are all distinct (32 random bits alone
 * would repeat with a chance of about 1%: the process remembers). */
static void test_unique_in_one_second(void **state)
{
    (void)state;
    enum { N = 10000 };
    static char ids[N][RUNID_LEN + 1];
    struct err e;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            assert_int_equal(runid_new(ids[i], 1795338900 + round, &e), 0);
            assert_true(runid_valid(ids[i]));
            assert_int_equal(runid_time(ids[i]), 1795338900 + round);
        }
        qsort(ids, N, sizeof(ids[0]), cmp_id);
        int dups = 0;
        for (int i = 1; i < N; i++)
            dups += !strcmp(ids[i - 1], ids[i]);
        assert_int_equal(dups, 0);
        /* and random: the hex parts are spread over the range, not a count */
        unsigned long lo = strtoul(ids[0] + 17, NULL, 16);
        unsigned long hi = strtoul(ids[N - 1] + 17, NULL, 16);
        assert_true(lo < 0x01000000ul && hi > 0xff000000ul);
    }
}

struct thread_arg {
    char (*ids)[RUNID_LEN + 1];
    int n;
};

static void *make_ids(void *p)
{
    struct thread_arg *a = p;
    struct err e;
    for (int i = 0; i < a->n; i++)
        if (runid_new(a->ids[i], 1795338999, &e) != 0)
            a->ids[i][0] = '\0';
    return NULL;
}

/* From several threads at once, still distinct. */
static void test_unique_across_threads(void **state)
{
    (void)state;
    enum { T = 4, N = 5000 };
    static char ids[T * N][RUNID_LEN + 1];
    pthread_t th[T];
    struct thread_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct thread_arg){ids + i * N, N};
        assert_int_equal(pthread_create(&th[i], NULL, make_ids, &args[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T * N; i++)
        assert_true(runid_valid(ids[i]));
    qsort(ids, T * N, sizeof(ids[0]), cmp_id);
    for (int i = 1; i < T * N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_valid_and_invalid),
        cmocka_unit_test(test_python_calendar),
        cmocka_unit_test(test_order_is_time),
        cmocka_unit_test(test_unique_in_one_second),
        cmocka_unit_test(test_unique_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
