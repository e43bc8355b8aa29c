/*
 * policy.c - restic's retention rules, plus arca's "newest" and keep_min.
 *
 * This follows restic 0.14's internal/restic/snapshot_policy.go
 * (ApplyPolicy) line by line, so that tests/integration/
 * test_policy_restic.sh can hold it to restic's own answers:
 *
 *  - each bucket rule remembers the bucket of the last run it kept and
 *    keeps a run whose bucket differs from it (not "a bucket not seen
 *    yet"); over runs sorted newest first, in UTC, the two are the same;
 *  - every rule looks at every run, so one run can use up a count of
 *    several rules at once ("last, daily, weekly");
 *  - --keep-last is the bucket rule whose bucket is the position in the
 *    sorted list;
 *  - within means strictly newer than the cutoff (Go's time.After);
 *  - the within-bucket rules have no count: they keep a run when it is
 *    within their duration and its bucket differs from the last one they
 *    kept.
 *
 * Times are whole seconds, UTC. Calendar dates come from Howard Hinnant's
 * days_from_civil / civil_from_days (proleptic Gregorian, exact for any
 * int64 day number we can reach here).
 */
#include "backup/policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Years 1 to 9999 (Go's time.Time handles more, run manifests do not). */
#define POLICY_TIME_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define POLICY_TIME_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void policy_init(struct policy *p)
{
    memset(p, 0, sizeof(*p));
    p->keep_min = 3;
}

bool policy_duration_zero(const struct policy_duration *d)
{
    return d->years == 0 && d->months == 0 && d->days == 0 && d->hours == 0;
}

bool policy_empty(const struct policy *p)
{
    return p->keep_last == 0 && p->keep_hourly == 0 && p->keep_daily == 0 && p->keep_weekly == 0 &&
           p->keep_monthly == 0 && p->keep_yearly == 0 && policy_duration_zero(&p->keep_within) &&
           policy_duration_zero(&p->keep_within_hourly) &&
           policy_duration_zero(&p->keep_within_daily) &&
           policy_duration_zero(&p->keep_within_weekly) &&
           policy_duration_zero(&p->keep_within_monthly) &&
           policy_duration_zero(&p->keep_within_yearly);
}

int policy_parse_duration(const char *s, const char *flag, struct policy_duration *out,
                          struct err *e)
{
    if (!s)
        s = "";
    const char *p = s;
    const char *end = s + strlen(s);
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    if (p == end)
        return err_set(e, ERR_USAGE, "%s is empty; give a duration such as '30d' or '1y6m'", flag);

    struct policy_duration d = {0, 0, 0, 0};
    unsigned seen = 0;
    while (p < end) {
        if (*p == '-')
            return err_set(e, ERR_USAGE,
                           "%s '%s' is negative; a duration counts back from the newest run, "
                           "give e.g. '30d'",
                           flag, s);
        if (!isdigit((unsigned char)*p)) {
            if (strchr("ymdh", *p))
                return err_set(e, ERR_USAGE,
                               "%s '%s' has the unit '%c' without a number; write e.g. '30d' or "
                               "'1y6m'",
                               flag, s, *p);
            return err_set(e, ERR_USAGE,
                           "%s '%s' is not a duration; use numbers with y, m, d or h, e.g. '30d' "
                           "or '1y6m'",
                           flag, s);
        }
        long long v = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            v = v * 10 + (*p - '0');
            if (v > POLICY_DURATION_MAX)
                return err_set(e, ERR_USAGE, "%s '%s' is too large; each number may be at most %d",
                               flag, s, POLICY_DURATION_MAX);
            p++;
        }
        if (p == end)
            return err_set(e, ERR_USAGE,
                           "%s '%s' has no unit after %lld; use y, m, d or h, e.g. '%lldd'", flag,
                           s, v, v);
        int *slot;
        unsigned bit;
        switch (*p) {
        case 'y':
            slot = &d.years, bit = 1;
            break;
        case 'm':
            slot = &d.months, bit = 2;
            break;
        case 'd':
            slot = &d.days, bit = 4;
            break;
        case 'h':
            slot = &d.hours, bit = 8;
            break;
        default:
            if (isalpha((unsigned char)*p))
                return err_set(e, ERR_USAGE,
                               "%s '%s' has the unknown unit '%c'; use y (years), m (months), d "
                               "(days) or h (hours)",
                               flag, s, *p);
            return err_set(e, ERR_USAGE,
                           "%s '%s' is not a duration; use numbers with y, m, d or h, e.g. '30d' "
                           "or '1y6m'",
                           flag, s);
        }
        if (seen & bit)
            return err_set(e, ERR_USAGE,
                           "%s '%s' gives the unit '%c' twice; write each of y, m, d, h at most "
                           "once",
                           flag, s, *p);
        seen |= bit;
        *slot = (int)v;
        p++;
    }
    *out = d;
    return 0;
}

char *policy_duration_format(const struct policy_duration *d, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    size_t len = 0;
    const int v[4] = {d->years, d->months, d->days, d->hours};
    const char unit[4] = {'y', 'm', 'd', 'h'};
    for (int i = 0; i < 4; i++) {
        if (v[i] == 0 || len >= cap)
            continue;
        int w = snprintf(buf + len, cap - len, "%d%c", v[i], unit[i]);
        if (w < 0)
            break;
        len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
    }
    return buf;
}

int64_t policy_duration_before(int64_t t_s, const struct policy_duration *d)
{
    /* Go: t.AddDate(-y, -m, -d) is Date(year-y, month-m, day-d, clock),
     * which normalises the month into the year first, then counts the
     * days from the first of that month, so days past its end roll over
     * into the next. Then .Add(-h hours). */
    int64_t days = floor_div(t_s, 86400);
    int64_t tod = t_s - days * 86400;
    int64_t y;
    int m, dd;
    civil_from_days(days, &y, &m, &dd);
    int64_t m0 = (int64_t)(m - 1) - d->months;
    int64_t ny = y - d->years + floor_div(m0, 12);
    int nm = (int)floor_mod(m0, 12) + 1;
    int64_t nd = days_from_civil(ny, nm, 1) + (dd - 1) - d->days;
    return nd * 86400 + tod - (int64_t)d->hours * 3600;
}

enum bucket_kind { BUCKET_LAST, BUCKET_HOUR, BUCKET_DAY, BUCKET_WEEK, BUCKET_MONTH, BUCKET_YEAR };

/* restic's bucker functions: ymdh, ymd, yw (ISO 8601), ym, y, always. */
static int64_t bucket_of(enum bucket_kind kind, int64_t t_s, size_t nr)
{
    if (kind == BUCKET_LAST)
        return (int64_t)nr;
    int64_t days = floor_div(t_s, 86400);
    int64_t y;
    int m, d;
    if (kind == BUCKET_WEEK) {
        /* the ISO week's year is that of its Thursday */
        int64_t wd = floor_mod(days + 3, 7) + 1; /* 1970-01-01 was a Thursday; Monday = 1 */
        int64_t thu = days + (4 - wd);
        civil_from_days(thu, &y, &m, &d);
        int64_t week = (thu - days_from_civil(y, 1, 1)) / 7 + 1;
        return y * 100 + week;
    }
    civil_from_days(days, &y, &m, &d);
    switch (kind) {
    case BUCKET_HOUR:
        return y * 1000000 + m * 10000 + d * 100 + (t_s - days * 86400) / 3600;
    case BUCKET_DAY:
        return y * 10000 + m * 100 + d;
    case BUCKET_MONTH:
        return y * 100 + m;
    default:
        return y;
    }
}

static void reason_add(struct policy_decision *o, const char *what)
{
    size_t len = strlen(o->reasons);
    snprintf(o->reasons + len, sizeof(o->reasons) - len, "%s%s", len ? ", " : "", what);
}

struct policy_item {
    int64_t t;
    const char *id;
    size_t idx;
};

/* newest first; within a second the greater id first; then input order */
static int item_cmp(const void *a, const void *b)
{
    const struct policy_item *x = a, *y = b;
    if (x->t != y->t)
        return x->t > y->t ? -1 : 1;
    int c = strcmp(x->id ? x->id : "", y->id ? y->id : "");
    if (c)
        return c > 0 ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int check_count(int v, const char *flag, struct err *e)
{
    if (v < 0)
        return err_set(e, ERR_USAGE, "%s is %d; give a number of runs, 1 or more", flag, v);
    return 0;
}

static int check_duration(const struct policy_duration *d, const char *flag, struct err *e)
{
    const int v[4] = {d->years, d->months, d->days, d->hours};
    for (int i = 0; i < 4; i++)
        if (v[i] < 0 || v[i] > POLICY_DURATION_MAX)
            return err_set(e, ERR_USAGE,
                           "%s has a component %d out of range; each number must be 0 to %d", flag,
                           v[i], POLICY_DURATION_MAX);
    return 0;
}

static int policy_check(const struct policy *p, struct err *e)
{
    int r;
    if ((r = check_count(p->keep_last, "--keep-last", e)) ||
        (r = check_count(p->keep_hourly, "--keep-hourly", e)) ||
        (r = check_count(p->keep_daily, "--keep-daily", e)) ||
        (r = check_count(p->keep_weekly, "--keep-weekly", e)) ||
        (r = check_count(p->keep_monthly, "--keep-monthly", e)) ||
        (r = check_count(p->keep_yearly, "--keep-yearly", e)) ||
        (r = check_duration(&p->keep_within, "--keep-within", e)) ||
        (r = check_duration(&p->keep_within_hourly, "--keep-within-hourly", e)) ||
        (r = check_duration(&p->keep_within_daily, "--keep-within-daily", e)) ||
        (r = check_duration(&p->keep_within_weekly, "--keep-within-weekly", e)) ||
        (r = check_duration(&p->keep_within_monthly, "--keep-within-monthly", e)) ||
        (r = check_duration(&p->keep_within_yearly, "--keep-within-yearly", e)))
        return r;
    if (p->keep_min < 0)
        return err_set(e, ERR_USAGE, "--keep-min is %d; give 0 or more runs", p->keep_min);
    if (policy_empty(p))
        return err_set(e, ERR_USAGE,
                       "a prune policy must keep something; give --keep-last, --keep-within, "
                       "--keep-daily ...");
    return 0;
}

int policy_apply(const struct policy *p, const struct policy_run *runs, size_t n,
                 struct policy_decision *out, struct err *e)
{
    struct policy_item *items = NULL;
    int r = policy_check(p, e);
    if (r)
        goto out;

    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        out[i].keep = false;
        out[i].reasons[0] = '\0';
        if (!runs[i].eligible) {
            reason_add(&out[i], "not complete");
            continue;
        }
        if (runs[i].time_s < POLICY_TIME_MIN || runs[i].time_s > POLICY_TIME_MAX) {
            r = err_set(e, ERR_CORRUPT,
                        "run '%s' has the time %lld, outside the years 1 to 9999; check its "
                        "manifest",
                        runs[i].id ? runs[i].id : "", (long long)runs[i].time_s);
            goto out;
        }
        m++;
    }
    if (m == 0)
        goto out;
    items = calloc(m, sizeof(*items));
    if (!items) {
        r = err_set(e, ERR_NOMEM, "out of memory sorting %zu runs for prune", m);
        goto out;
    }
    m = 0;
    for (size_t i = 0; i < n; i++)
        if (runs[i].eligible)
            items[m++] = (struct policy_item){runs[i].time_s, runs[i].id, i};
    qsort(items, m, sizeof(*items), item_cmp);

    /* The within rules count back from the newest run that is not in the
     * future (restic's findLatestTimestamp), so that one run stamped by a
     * clock running ahead cannot make every other run look old. If every
     * run is in the future, restic counts from the year 1: the within
     * rules take every run. */
    bool have_latest = false;
    int64_t latest = 0;
    for (size_t i = 0; i < m && !have_latest; i++) {
        if (p->now_s == 0 || items[i].t <= p->now_s) {
            have_latest = true;
            latest = items[i].t;
        }
    }

    struct {
        int count;
        enum bucket_kind kind;
        bool have_last;
        int64_t last;
        const char *reason;
    } buckets[6] = {
        {p->keep_last, BUCKET_LAST, false, 0, "last"},
        {p->keep_hourly, BUCKET_HOUR, false, 0, "hourly"},
        {p->keep_daily, BUCKET_DAY, false, 0, "daily"},
        {p->keep_weekly, BUCKET_WEEK, false, 0, "weekly"},
        {p->keep_monthly, BUCKET_MONTH, false, 0, "monthly"},
        {p->keep_yearly, BUCKET_YEAR, false, 0, "yearly"},
    };
    struct {
        const struct policy_duration *within;
        enum bucket_kind kind;
        bool have_last;
        int64_t last;
        int64_t cutoff;
        char reason[64];
    } within_buckets[5] = {
        {&p->keep_within_hourly, BUCKET_HOUR, false, 0, 0, "hourly within "},
        {&p->keep_within_daily, BUCKET_DAY, false, 0, 0, "daily within "},
        {&p->keep_within_weekly, BUCKET_WEEK, false, 0, 0, "weekly within "},
        {&p->keep_within_monthly, BUCKET_MONTH, false, 0, 0, "monthly within "},
        {&p->keep_within_yearly, BUCKET_YEAR, false, 0, 0, "yearly within "},
    };
    char within_reason[64] = "within ";
    bool within_set = !policy_duration_zero(&p->keep_within);
    int64_t within_cutoff = 0;
    if (within_set) {
        within_cutoff = have_latest ? policy_duration_before(latest, &p->keep_within) : INT64_MIN;
        size_t l = strlen(within_reason);
        policy_duration_format(&p->keep_within, within_reason + l, sizeof(within_reason) - l);
    }
    for (int b = 0; b < 5; b++) {
        if (policy_duration_zero(within_buckets[b].within))
            continue;
        within_buckets[b].cutoff =
            have_latest ? policy_duration_before(latest, within_buckets[b].within) : INT64_MIN;
        size_t l = strlen(within_buckets[b].reason);
        policy_duration_format(within_buckets[b].within, within_buckets[b].reason + l,
                               sizeof(within_buckets[b].reason) - l);
    }

    for (size_t nr = 0; nr < m; nr++) {
        int64_t t = items[nr].t;
        struct policy_decision *o = &out[items[nr].idx];
        if (within_set && t > within_cutoff) {
            o->keep = true;
            reason_add(o, within_reason);
        }
        for (int b = 0; b < 6; b++) {
            if (buckets[b].count <= 0)
                continue;
            int64_t val = bucket_of(buckets[b].kind, t, nr);
            if (!buckets[b].have_last || val != buckets[b].last) {
                o->keep = true;
                buckets[b].have_last = true;
                buckets[b].last = val;
                buckets[b].count--;
                reason_add(o, buckets[b].reason);
            }
        }
        for (int b = 0; b < 5; b++) {
            if (policy_duration_zero(within_buckets[b].within) || t <= within_buckets[b].cutoff)
                continue;
            int64_t val = bucket_of(within_buckets[b].kind, t, nr);
            if (!within_buckets[b].have_last || val != within_buckets[b].last) {
                o->keep = true;
                within_buckets[b].have_last = true;
                within_buckets[b].last = val;
                reason_add(o, within_buckets[b].reason);
            }
        }
    }

    /* arca's additions: the newest run, then the keep_min floor */
    size_t kept = 0;
    struct policy_decision *newest = &out[items[0].idx];
    if (!newest->keep) {
        newest->keep = true;
        reason_add(newest, "newest");
    }
    for (size_t i = 0; i < m; i++)
        kept += out[items[i].idx].keep;
    for (size_t i = 0; i < m && kept < (size_t)p->keep_min; i++) {
        struct policy_decision *o = &out[items[i].idx];
        if (!o->keep) {
            o->keep = true;
            reason_add(o, "keep-min");
            kept++;
        }
    }
out:
    free(items);
    return r;
}
