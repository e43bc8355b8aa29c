/*
 * test_policy.c - prune's retention policy (src/backup/policy.h), cases
 * worked out by hand from restic 0.14's rules; tests/integration/
 * test_policy_restic.sh compares the same code with restic itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backup/policy.h"
#include "core/error.h"

/* seconds since the epoch of a UTC date; timegm() is an independent check
 * of policy.c's own calendar code */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm);
}

#define MAX_RUNS 32

struct fixture {
    struct policy_run runs[MAX_RUNS];
    struct policy_decision out[MAX_RUNS];
    char ids[MAX_RUNS][32];
    size_t n;
};

static void add_run(struct fixture *f, const char *id, int64_t t, bool eligible)
{
    assert_true(f->n < MAX_RUNS);
    snprintf(f->ids[f->n], sizeof(f->ids[f->n]), "%s", id);
    f->runs[f->n] = (struct policy_run){f->ids[f->n], t, eligible};
    f->n++;
}

static void apply_ok(const struct policy *p, struct fixture *f)
{
    struct err e;
    err_clear(&e);
    int r = policy_apply(p, f->runs, f->n, f->out, &e);
    if (r)
        print_error("policy_apply: %s\n", e.msg);
    assert_int_equal(r, 0);
}

static const struct policy_decision *decision(const struct fixture *f, const char *id)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->runs[i].id, id) == 0)
            return &f->out[i];
    fail_msg("no run '%s'", id);
    return NULL;
}

static void expect(const struct fixture *f, const char *id, bool keep, const char *reasons)
{
    const struct policy_decision *d = decision(f, id);
    if (d->keep != keep || strcmp(d->reasons, reasons) != 0)
        fail_msg("run '%s': got %s '%s', want %s '%s'", id, d->keep ? "keep" : "forget", d->reasons,
                 keep ? "keep" : "forget", reasons);
}

static size_t kept(const struct fixture *f)
{
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++)
        k += f->out[i].keep;
    return k;
}

static struct policy policy_nofloor(void)
{
    struct policy p;
    policy_init(&p);
    p.keep_min = 0;
    return p;
}

/* --- durations ----------------------------------------------------------- */

static void expect_duration(const char *s, int y, int m, int d, int h)
{
    struct err e;
    err_clear(&e);
    struct policy_duration out = {-1, -1, -1, -1};
    int r = policy_parse_duration(s, "--keep-within", &out, &e);
    if (r)
        fail_msg("'%s': %s", s, e.msg);
    if (out.years != y || out.months != m || out.days != d || out.hours != h)
        fail_msg("'%s': got %dy%dm%dd%dh, want %dy%dm%dd%dh", s, out.years, out.months, out.days,
                 out.hours, y, m, d, h);
}

static void expect_duration_error(const char *s, const char *want_in_msg)
{
    struct err e;
    err_clear(&e);
    struct policy_duration out = {7, 7, 7, 7};
    int r = policy_parse_duration(s, "--keep-within-daily", &out, &e);
    if (r != ERR_USAGE)
        fail_msg("'%s': want ERR_USAGE, got %d (%dy%dm%dd%dh)", s, r, out.years, out.months,
                 out.days, out.hours);
    if (!strstr(e.msg, want_in_msg) || !strstr(e.msg, "--keep-within-daily") || strchr(e.msg, '\n'))
        fail_msg("'%s': message '%s' lacks '%s' or the flag", s, e.msg, want_in_msg);
    /* untouched on error */
    assert_int_equal(out.years + out.months + out.days + out.hours, 28);
}

static void test_duration_parse_good(void **state)
{
    (void)state;
    expect_duration("30d", 0, 0, 30, 0);
    expect_duration("1y2m3d4h", 1, 2, 3, 4);
    expect_duration("4h1y", 1, 0, 0, 4);
    expect_duration("72h", 0, 0, 0, 72);
    expect_duration("6m", 0, 6, 0, 0);
    expect_duration(" 7d\n", 0, 0, 7, 0);
    expect_duration("007d", 0, 0, 7, 0);
    expect_duration("0d", 0, 0, 0, 0);
    expect_duration("1000000y", POLICY_DURATION_MAX, 0, 0, 0);
}

static void test_duration_parse_bad(void **state)
{
    (void)state;
    expect_duration_error("30", "no unit after 30");
    expect_duration_error("1d30", "no unit after 30");
    expect_duration_error("d", "without a number");
    expect_duration_error("1dh", "without a number");
    expect_duration_error("-1d", "negative");
    expect_duration_error("1d-2h", "negative");
    expect_duration_error("99999999999y", "too large");
    expect_duration_error("1000001h", "too large");
    expect_duration_error("99999999999999999999999999d", "too large");
    expect_duration_error("1w", "unknown unit 'w'");
    expect_duration_error("1D", "unknown unit 'D'");
    expect_duration_error("1d2d", "unit 'd' twice");
    expect_duration_error("", "is empty");
    expect_duration_error("   ", "is empty");
    expect_duration_error("1d 2h", "not a duration");
    expect_duration_error("+1d", "not a duration");
    expect_duration_error("1.5d", "not a duration");
    expect_duration_error("\xef\xbc\x91"
                          "d",
                          "not a duration"); /* a full-width digit */
}

static void test_duration_format(void **state)
{
    (void)state;
    char buf[64];
    struct policy_duration d = {1, 2, 3, 4};
    assert_string_equal(policy_duration_format(&d, buf, sizeof(buf)), "1y2m3d4h");
    d = (struct policy_duration){0, 0, 30, 0};
    assert_string_equal(policy_duration_format(&d, buf, sizeof(buf)), "30d");
    d = (struct policy_duration){0, 18, 0, 5};
    assert_string_equal(policy_duration_format(&d, buf, sizeof(buf)), "18m5h");
    d = (struct policy_duration){0, 0, 0, 0};
    assert_string_equal(policy_duration_format(&d, buf, sizeof(buf)), "");
    assert_true(policy_duration_zero(&d));
    d = (struct policy_duration){1000000, 1000000, 1000000, 1000000};
    assert_string_equal(policy_duration_format(&d, buf, sizeof(buf)),
                        "1000000y1000000m1000000d1000000h");
    d = (struct policy_duration){1, 2, 3, 4};
    assert_string_equal(policy_duration_format(&d, buf, 5), "1y2m"); /* cut, terminated */
}

static void expect_before(int64_t t, int y, int m, int d, int h, int64_t want)
{
    struct policy_duration dur = {y, m, d, h};
    int64_t got = policy_duration_before(t, &dur);
    if (got != want)
        fail_msg("%lld - %dy%dm%dd%dh: got %lld, want %lld", (long long)t, y, m, d, h,
                 (long long)got, (long long)want);
}

/* Go's AddDate(-y, -m, -d): the month moves first, then the day counts
 * from the first of that month, so short months overflow forward. */
static void test_duration_calendar(void **state)
{
    (void)state;
    /* 31 March - 1 month = "31 February" = 3 March (2 March in a leap year) */
    expect_before(utc(2023, 3, 31, 12, 0, 0), 0, 1, 0, 0, utc(2023, 3, 3, 12, 0, 0));
    expect_before(utc(2024, 3, 31, 12, 0, 0), 0, 1, 0, 0, utc(2024, 3, 2, 12, 0, 0));
    /* 29 February - 1 year = "29 February 2023" = 1 March; - 4 years stays */
    expect_before(utc(2024, 2, 29, 6, 0, 0), 1, 0, 0, 0, utc(2023, 3, 1, 6, 0, 0));
    expect_before(utc(2024, 2, 29, 6, 0, 0), 4, 0, 0, 0, utc(2020, 2, 29, 6, 0, 0));
    /* months across the year, 13 months = 1 year 1 month */
    expect_before(utc(2023, 1, 15, 10, 0, 0), 0, 1, 0, 0, utc(2022, 12, 15, 10, 0, 0));
    expect_before(utc(2023, 3, 31, 0, 0, 0), 0, 13, 0, 0, utc(2022, 3, 3, 0, 0, 0));
    expect_before(utc(2023, 3, 31, 0, 0, 0), 1, 1, 0, 0, utc(2022, 3, 3, 0, 0, 0));
    /* days and hours after the months: Date(2023, 2, 30) = 2 March */
    expect_before(utc(2023, 3, 31, 12, 0, 0), 0, 1, 1, 0, utc(2023, 3, 2, 12, 0, 0));
    expect_before(utc(2023, 3, 1, 0, 0, 0), 0, 0, 1, 2, utc(2023, 2, 27, 22, 0, 0));
    expect_before(utc(2023, 3, 31, 12, 0, 0), 1, 2, 3, 4, utc(2022, 1, 28, 8, 0, 0));
    /* hours are plain hours, days are calendar days (the same in UTC) */
    expect_before(utc(2021, 1, 1, 0, 0, 30), 0, 0, 0, 72, utc(2020, 12, 29, 0, 0, 30));
    expect_before(utc(2021, 3, 1, 0, 0, 0), 0, 0, 30, 0, utc(2021, 1, 30, 0, 0, 0));
    /* before 1970 and the largest durations do not overflow */
    expect_before(utc(1969, 3, 31, 23, 59, 59), 0, 1, 0, 0, utc(1969, 3, 3, 23, 59, 59));
    struct policy_duration big = {POLICY_DURATION_MAX, POLICY_DURATION_MAX, POLICY_DURATION_MAX,
                                  POLICY_DURATION_MAX};
    assert_true(policy_duration_before(utc(9999, 12, 31, 23, 59, 59), &big) <
                utc(1, 1, 1, 0, 0, 0));
    struct policy_duration zero = {0, 0, 0, 0};
    assert_true(policy_duration_before(1700000000, &zero) == 1700000000);
}

/* --- policy basics ----------------------------------------------------------- */

static void test_init_and_empty(void **state)
{
    (void)state;
    struct policy p;
    memset(&p, 0x55, sizeof(p));
    policy_init(&p);
    assert_int_equal(p.keep_min, 3);
    assert_true(policy_empty(&p));
    p.keep_min = 10;
    assert_true(policy_empty(&p)); /* keep_min alone is no policy */
    p.keep_within_monthly.days = 1;
    assert_false(policy_empty(&p));
    policy_init(&p);
    p.keep_yearly = 1;
    assert_false(policy_empty(&p));
}

static void test_empty_policy_refused(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "a", utc(2023, 1, 1, 0, 0, 0), true);
    struct policy p;
    policy_init(&p);
    p.keep_min = 50;
    struct err e;
    err_clear(&e);
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "a prune policy must keep something"));
    assert_non_null(strstr(e.msg, "--keep-last"));
    /* also with no runs at all */
    err_clear(&e);
    assert_int_equal(policy_apply(&p, NULL, 0, NULL, &e), ERR_USAGE);
    /* a zero duration is "not set", as in restic */
    struct policy_duration zero;
    assert_int_equal(policy_parse_duration("0h", "--keep-within", &zero, &e), 0);
    p.keep_within = zero;
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_USAGE);
}

static void test_bad_values_refused(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "a", utc(2023, 1, 1, 0, 0, 0), true);
    struct err e;
    struct policy p = policy_nofloor();
    p.keep_daily = -1;
    err_clear(&e);
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "--keep-daily"));

    p = policy_nofloor();
    p.keep_last = 1;
    p.keep_within_weekly.hours = -3;
    err_clear(&e);
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "--keep-within-weekly"));

    p = policy_nofloor();
    p.keep_last = 1;
    p.keep_within.years = POLICY_DURATION_MAX + 1;
    err_clear(&e);
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_USAGE);

    p = policy_nofloor();
    p.keep_last = 1;
    p.keep_min = -1;
    err_clear(&e);
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "--keep-min"));

    /* a run time no manifest can hold */
    p = policy_nofloor();
    p.keep_last = 1;
    add_run(&f, "far", INT64_MAX / 2, true);
    err_clear(&e);
    assert_int_equal(policy_apply(&p, f.runs, f.n, f.out, &e), ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "'far'"));
}

static void test_no_runs(void **state)
{
    (void)state;
    struct policy p = policy_nofloor();
    p.keep_last = 3;
    struct err e;
    err_clear(&e);
    assert_int_equal(policy_apply(&p, NULL, 0, NULL, &e), 0);

    struct fixture f = {0};
    add_run(&f, "failed1", utc(2023, 1, 1, 0, 0, 0), false);
    add_run(&f, "failed2", utc(2023, 1, 2, 0, 0, 0), false);
    p.keep_min = 5;
    apply_ok(&p, &f);
    expect(&f, "failed1", false, "not complete");
    expect(&f, "failed2", false, "not complete");
}

/* --- restic's rules ---------------------------------------------------------- */

static void test_keep_last_and_reasons(void **state)
{
    (void)state;
    struct fixture f = {0};
    /* input order is not time order */
    add_run(&f, "c", utc(2023, 5, 3, 9, 0, 0), true);
    add_run(&f, "a", utc(2023, 5, 1, 9, 0, 0), true);
    add_run(&f, "e", utc(2023, 5, 5, 9, 0, 0), true);
    add_run(&f, "b", utc(2023, 5, 2, 9, 0, 0), true);
    add_run(&f, "d", utc(2023, 5, 4, 9, 0, 0), true);
    struct policy p = policy_nofloor();
    p.keep_last = 2;
    apply_ok(&p, &f);
    expect(&f, "e", true, "last");
    expect(&f, "d", true, "last");
    expect(&f, "c", false, "");
    expect(&f, "b", false, "");
    expect(&f, "a", false, "");

    /* every rule counts the newest run; reasons in restic's order */
    p = policy_nofloor();
    p.keep_last = 1;
    p.keep_hourly = 1;
    p.keep_daily = 2;
    p.keep_weekly = 1;
    p.keep_monthly = 1;
    p.keep_yearly = 1;
    p.keep_within = (struct policy_duration){0, 0, 30, 0};
    p.keep_within_daily = (struct policy_duration){0, 0, 1, 12};
    apply_ok(&p, &f);
    expect(&f, "e", true,
           "within 30d, last, hourly, daily, weekly, monthly, yearly, "
           "daily within 1d12h");
    expect(&f, "d", true, "within 30d, daily, daily within 1d12h");
    expect(&f, "c", true, "within 30d");

    /* the longest reasons there can be fit */
    struct policy_duration max = {POLICY_DURATION_MAX, POLICY_DURATION_MAX, POLICY_DURATION_MAX,
                                  POLICY_DURATION_MAX};
    p = policy_nofloor();
    p.keep_last = p.keep_hourly = p.keep_daily = p.keep_weekly = p.keep_monthly = p.keep_yearly = 1;
    p.keep_within = p.keep_within_hourly = p.keep_within_daily = p.keep_within_weekly =
        p.keep_within_monthly = p.keep_within_yearly = max;
#define D "1000000y1000000m1000000d1000000h"
    const char *longest = "within " D ", last, hourly, daily, weekly, monthly, yearly, "
                          "hourly within " D ", daily within " D ", weekly within " D
                          ", monthly within " D ", yearly within " D;
#undef D
    assert_true(strlen(longest) < POLICY_REASONS_MAX);
    apply_ok(&p, &f);
    expect(&f, "e", true, longest);
}

static void test_hourly_daily_edges(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "h10a", utc(2022, 6, 15, 10, 0, 0), true);
    add_run(&f, "h10b", utc(2022, 6, 15, 10, 59, 59), true);
    add_run(&f, "h11", utc(2022, 6, 15, 11, 0, 0), true);
    add_run(&f, "prevday", utc(2022, 6, 14, 23, 59, 59), true);
    struct policy p = policy_nofloor();
    p.keep_hourly = 10;
    apply_ok(&p, &f);
    expect(&f, "h11", true, "hourly");
    expect(&f, "h10b", true, "hourly");
    expect(&f, "h10a", false, "");
    expect(&f, "prevday", true, "hourly");

    p = policy_nofloor();
    p.keep_daily = 10;
    apply_ok(&p, &f);
    expect(&f, "h11", true, "daily");
    expect(&f, "h10b", false, "");
    expect(&f, "h10a", false, "");
    expect(&f, "prevday", true, "daily");

    /* the count is of buckets kept, not of buckets passed */
    p = policy_nofloor();
    p.keep_hourly = 2;
    apply_ok(&p, &f);
    expect(&f, "h11", true, "hourly");
    expect(&f, "h10b", true, "hourly");
    expect(&f, "prevday", false, "");
}

static void test_month_ends_and_leap_day(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "feb28", utc(2024, 2, 28, 23, 0, 0), true);
    add_run(&f, "feb29", utc(2024, 2, 29, 23, 59, 59), true);
    add_run(&f, "mar1", utc(2024, 3, 1, 0, 0, 0), true);
    add_run(&f, "jan31", utc(2024, 1, 31, 23, 59, 59), true);
    add_run(&f, "dec31", utc(2023, 12, 31, 23, 59, 59), true);
    struct policy p = policy_nofloor();
    p.keep_daily = 3;
    apply_ok(&p, &f);
    expect(&f, "mar1", true, "daily");
    expect(&f, "feb29", true, "daily");
    expect(&f, "feb28", true, "daily");
    expect(&f, "jan31", false, "");

    p = policy_nofloor();
    p.keep_monthly = 10;
    apply_ok(&p, &f);
    expect(&f, "mar1", true, "monthly");
    expect(&f, "feb29", true, "monthly");
    expect(&f, "feb28", false, "");
    expect(&f, "jan31", true, "monthly");
    expect(&f, "dec31", true, "monthly");

    p = policy_nofloor();
    p.keep_yearly = 10;
    apply_ok(&p, &f);
    expect(&f, "mar1", true, "yearly");
    expect(&f, "feb29", false, "");
    expect(&f, "jan31", false, "");
    expect(&f, "dec31", true, "yearly");
}

static void test_iso_weeks_across_new_year(void **state)
{
    (void)state;
    struct fixture f = {0};
    /* ISO week 53 of 2020: Mon 28 Dec 2020 .. Sun 3 Jan 2021 */
    add_run(&f, "sun27dec", utc(2020, 12, 27, 12, 0, 0), true); /* week 52 of 2020 */
    add_run(&f, "mon28dec", utc(2020, 12, 28, 0, 0, 0), true);  /* week 53 */
    add_run(&f, "fri1jan", utc(2021, 1, 1, 12, 0, 0), true);    /* week 53 */
    add_run(&f, "sun3jan", utc(2021, 1, 3, 23, 59, 59), true);  /* week 53 */
    add_run(&f, "mon4jan", utc(2021, 1, 4, 0, 0, 0), true);     /* week 1 of 2021 */
    struct policy p = policy_nofloor();
    p.keep_weekly = 3;
    apply_ok(&p, &f);
    expect(&f, "mon4jan", true, "weekly");
    expect(&f, "sun3jan", true, "weekly");
    expect(&f, "fri1jan", false, "");
    expect(&f, "mon28dec", false, "");
    expect(&f, "sun27dec", true, "weekly");

    /* yearly buckets split the same week */
    p = policy_nofloor();
    p.keep_yearly = 5;
    apply_ok(&p, &f);
    expect(&f, "mon4jan", true, "yearly");
    expect(&f, "sun3jan", false, "");
    expect(&f, "fri1jan", false, "");
    expect(&f, "mon28dec", true, "yearly");

    /* Mon 30 Dec 2019 is in ISO week 1 of 2020, Sun 29 Dec 2019 in week 52 */
    struct fixture g = {0};
    add_run(&g, "sun29dec", utc(2019, 12, 29, 10, 0, 0), true);
    add_run(&g, "mon30dec", utc(2019, 12, 30, 10, 0, 0), true);
    add_run(&g, "wed1jan", utc(2020, 1, 1, 10, 0, 0), true);
    p = policy_nofloor();
    p.keep_weekly = 10;
    apply_ok(&p, &g);
    expect(&g, "wed1jan", true, "weekly");
    expect(&g, "mon30dec", false, "");
    expect(&g, "sun29dec", true, "weekly");

    /* 2015 had 53 ISO weeks too: Thu 31 Dec 2015 and Sun 3 Jan 2016 */
    struct fixture h = {0};
    add_run(&h, "thu31dec2015", utc(2015, 12, 31, 0, 0, 0), true);
    add_run(&h, "sun3jan2016", utc(2016, 1, 3, 0, 0, 0), true);
    add_run(&h, "mon4jan2016", utc(2016, 1, 4, 0, 0, 0), true);
    p = policy_nofloor();
    p.keep_weekly = 10;
    apply_ok(&p, &h);
    expect(&h, "mon4jan2016", true, "weekly");
    expect(&h, "sun3jan2016", true, "weekly");
    expect(&h, "thu31dec2015", false, "");
}

static void test_keep_within(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "newest", utc(2023, 3, 31, 12, 0, 0), true);
    add_run(&f, "at-cutoff", utc(2023, 3, 3, 12, 0, 0), true);
    add_run(&f, "after-cutoff", utc(2023, 3, 3, 12, 0, 1), true);
    add_run(&f, "old", utc(2023, 1, 1, 0, 0, 0), true);
    /* a run that is not complete does not move "newest" */
    add_run(&f, "failed-later", utc(2023, 6, 1, 0, 0, 0), false);
    struct policy p = policy_nofloor();
    p.keep_within = (struct policy_duration){0, 1, 0, 0};
    apply_ok(&p, &f);
    expect(&f, "newest", true, "within 1m");
    expect(&f, "after-cutoff", true, "within 1m"); /* strictly newer than the cutoff */
    expect(&f, "at-cutoff", false, "");
    expect(&f, "old", false, "");
    expect(&f, "failed-later", false, "not complete");

    /* within-buckets: the newest of each bucket inside the duration, no count */
    struct fixture g = {0};
    add_run(&g, "d5b", utc(2023, 5, 5, 18, 0, 0), true);
    add_run(&g, "d5a", utc(2023, 5, 5, 6, 0, 0), true);
    add_run(&g, "d4", utc(2023, 5, 4, 6, 0, 0), true);
    add_run(&g, "d3", utc(2023, 5, 3, 18, 0, 0), true); /* 2 days before d5b: at the cutoff */
    add_run(&g, "d1", utc(2023, 5, 1, 6, 0, 0), true);
    p = policy_nofloor();
    p.keep_within_daily = (struct policy_duration){0, 0, 2, 0};
    apply_ok(&p, &g);
    expect(&g, "d5b", true, "daily within 2d");
    expect(&g, "d5a", false, "");
    expect(&g, "d4", true, "daily within 2d");
    expect(&g, "d3", false, "");
    expect(&g, "d1", false, "");
    assert_int_equal(kept(&g), 2);
}

/* restic counts the within rules back from the newest run not in the
 * future (findLatestTimestamp) */
static void test_within_ignores_future_runs(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "future", utc(2030, 1, 1, 0, 0, 0), true);
    add_run(&f, "mar31", utc(2023, 3, 31, 12, 0, 0), true);
    add_run(&f, "mar15", utc(2023, 3, 15, 0, 0, 0), true);
    add_run(&f, "feb1", utc(2023, 2, 1, 0, 0, 0), true);
    struct policy p = policy_nofloor();
    p.keep_within = (struct policy_duration){0, 0, 30, 0};
    p.now_s = utc(2023, 4, 1, 0, 0, 0);
    apply_ok(&p, &f);
    expect(&f, "future", true, "within 30d");
    expect(&f, "mar31", true, "within 30d");
    expect(&f, "mar15", true, "within 30d");
    expect(&f, "feb1", false, "");

    /* a run of the very second now_s is not in the future */
    p.now_s = utc(2023, 3, 31, 12, 0, 0);
    apply_ok(&p, &f);
    expect(&f, "mar15", true, "within 30d");

    p = policy_nofloor();
    p.keep_within_daily = (struct policy_duration){0, 0, 30, 0};
    p.now_s = utc(2023, 4, 1, 0, 0, 0);
    apply_ok(&p, &f);
    expect(&f, "future", true, "daily within 30d");
    expect(&f, "mar31", true, "daily within 30d");
    expect(&f, "mar15", true, "daily within 30d");
    expect(&f, "feb1", false, "");

    /* now_s not given: from the newest run */
    p = policy_nofloor();
    p.keep_within = (struct policy_duration){0, 0, 30, 0};
    apply_ok(&p, &f);
    expect(&f, "future", true, "within 30d");
    expect(&f, "mar31", false, "");

    /* every run in the future: restic counts from the year 1, so all are within */
    p.now_s = utc(2000, 1, 1, 0, 0, 0);
    apply_ok(&p, &f);
    assert_int_equal(kept(&f), 4);
    expect(&f, "feb1", true, "within 30d");
}

static void test_ties(void **state)
{
    (void)state;
    int64_t t = utc(2021, 8, 8, 8, 8, 8);
    /* the greater id counts as the newer, whatever the input order */
    for (int order = 0; order < 2; order++) {
        struct fixture f = {0};
        add_run(&f, order ? "20210808T080808Z-aaaaaaaa" : "20210808T080808Z-bbbbbbbb", t, true);
        add_run(&f, order ? "20210808T080808Z-bbbbbbbb" : "20210808T080808Z-aaaaaaaa", t, true);
        add_run(&f, "20210807T000000Z-cccccccc", t - 86400, true);
        struct policy p = policy_nofloor();
        p.keep_last = 1;
        apply_ok(&p, &f);
        expect(&f, "20210808T080808Z-bbbbbbbb", true, "last");
        expect(&f, "20210808T080808Z-aaaaaaaa", false, "");

        /* a bucket rule keeps one run of a tie */
        p = policy_nofloor();
        p.keep_daily = 5;
        apply_ok(&p, &f);
        expect(&f, "20210808T080808Z-bbbbbbbb", true, "daily");
        expect(&f, "20210808T080808Z-aaaaaaaa", false, "");
        expect(&f, "20210807T000000Z-cccccccc", true, "daily");

        /* within keeps the whole tie, the within-bucket only its first */
        p = policy_nofloor();
        p.keep_within = (struct policy_duration){0, 0, 0, 1};
        p.keep_within_hourly = (struct policy_duration){0, 0, 0, 1};
        apply_ok(&p, &f);
        expect(&f, "20210808T080808Z-bbbbbbbb", true, "within 1h, hourly within 1h");
        expect(&f, "20210808T080808Z-aaaaaaaa", true, "within 1h");
        expect(&f, "20210807T000000Z-cccccccc", false, "");
    }
}

/* --- arca's additions ---------------------------------------------------------- */

static void test_keep_min(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "r1", utc(2023, 5, 1, 9, 0, 0), true);
    add_run(&f, "r2", utc(2023, 5, 2, 9, 0, 0), true);
    add_run(&f, "r3-failed", utc(2023, 5, 3, 9, 0, 0), false);
    add_run(&f, "r4", utc(2023, 5, 4, 9, 0, 0), true);
    add_run(&f, "r5", utc(2023, 5, 5, 9, 0, 0), true);
    struct policy p;
    policy_init(&p); /* keep_min 3 */
    p.keep_last = 1;
    apply_ok(&p, &f);
    expect(&f, "r5", true, "last");
    expect(&f, "r4", true, "keep-min");
    expect(&f, "r3-failed", false, "not complete"); /* not counted, not topped up */
    expect(&f, "r2", true, "keep-min");
    expect(&f, "r1", false, "");

    /* the floor only tops up: runs the rules keep count */
    p.keep_last = 0;
    p.keep_monthly = 1;
    p.keep_yearly = 1;
    apply_ok(&p, &f);
    expect(&f, "r5", true, "monthly, yearly");
    expect(&f, "r4", true, "keep-min");
    expect(&f, "r2", true, "keep-min");
    expect(&f, "r1", false, "");

    /* more than there are: all eligible runs */
    p.keep_min = 100;
    apply_ok(&p, &f);
    assert_int_equal(kept(&f), 4);
    expect(&f, "r3-failed", false, "not complete");
    expect(&f, "r1", true, "keep-min");

    /* fewer than the rules keep: no effect */
    policy_init(&p);
    p.keep_daily = 4;
    apply_ok(&p, &f);
    assert_int_equal(kept(&f), 4);
    expect(&f, "r1", true, "daily");

    /* 0: no floor */
    p = policy_nofloor();
    p.keep_last = 1;
    apply_ok(&p, &f);
    assert_int_equal(kept(&f), 1);
}

static void test_newest_always_kept(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_run(&f, "old", utc(2020, 1, 1, 0, 0, 0), true);
    add_run(&f, "newest", utc(2023, 3, 31, 23, 59, 59), true);
    add_run(&f, "failed-newer", utc(2023, 4, 1, 0, 0, 0), false);
    add_run(&f, "mid", utc(2022, 7, 7, 0, 0, 0), true);
    /* each rule alone, and the shortest durations: the newest is kept by
     * restic's rules themselves, so "newest" is only a safety net */
    struct policy_duration one_hour = {0, 0, 0, 1};
    for (int rule = 0; rule < 12; rule++) {
        struct policy p = policy_nofloor();
        switch (rule) {
        case 0:
            p.keep_last = 1;
            break;
        case 1:
            p.keep_hourly = 1;
            break;
        case 2:
            p.keep_daily = 1;
            break;
        case 3:
            p.keep_weekly = 1;
            break;
        case 4:
            p.keep_monthly = 1;
            break;
        case 5:
            p.keep_yearly = 1;
            break;
        case 6:
            p.keep_within = one_hour;
            break;
        case 7:
            p.keep_within_hourly = one_hour;
            break;
        case 8:
            p.keep_within_daily = one_hour;
            break;
        case 9:
            p.keep_within_weekly = one_hour;
            break;
        case 10:
            p.keep_within_monthly = one_hour;
            break;
        default:
            p.keep_within_yearly = one_hour;
            break;
        }
        apply_ok(&p, &f);
        const struct policy_decision *d = decision(&f, "newest");
        if (!d->keep)
            fail_msg("rule %d: the newest run is forgotten", rule);
        assert_int_equal(kept(&f), 1);
        expect(&f, "failed-newer", false, "not complete");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parse_good),
        cmocka_unit_test(test_duration_parse_bad),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_duration_calendar),
        cmocka_unit_test(test_init_and_empty),
        cmocka_unit_test(test_empty_policy_refused),
        cmocka_unit_test(test_bad_values_refused),
        cmocka_unit_test(test_no_runs),
        cmocka_unit_test(test_keep_last_and_reasons),
        cmocka_unit_test(test_hourly_daily_edges),
        cmocka_unit_test(test_month_ends_and_leap_day),
        cmocka_unit_test(test_iso_weeks_across_new_year),
        cmocka_unit_test(test_keep_within),
        cmocka_unit_test(test_within_ignores_future_runs),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_keep_min),
        cmocka_unit_test(test_newest_always_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
