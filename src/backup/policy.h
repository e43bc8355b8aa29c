/*
 * policy.h - which runs prune keeps (docs/FORMAT.md, "Retention (prune)").
 *
 * The rules are restic's (`restic forget`, restic 0.14,
 * internal/restic/snapshot_policy.go ApplyPolicy), reproduced exactly and
 * checked against restic itself by tests/integration/test_policy_restic.sh:
 *
 *  - runs are taken newest first;
 *  - --keep-last N keeps the N newest;
 *  - --keep-hourly/daily/weekly/monthly/yearly N keep the newest run of each
 *    of the N most recent distinct buckets that hold a run (hour, day, ISO
 *    8601 week, month, year, all in UTC);
 *  - --keep-within D keeps the runs strictly newer than (newest run's time
 *    minus D), with restic's calendar arithmetic (below), where the newest
 *    run is the newest not in the future, as in restic (see now_s);
 *  - --keep-within-hourly/daily/weekly/monthly/yearly D keep the newest run
 *    of every bucket among the runs --keep-within D would keep, however many.
 *
 * A duration is restic's: numbers with units y, m, d, h ("1y2m3d4h", "30d",
 * units in any order). It is not a number of seconds: "newest minus 1y2m3d4h"
 * is the same wall-clock time 1 year, 2 months and 3 days earlier (Go's
 * time.AddDate: month and day overflows roll over, so 31 March minus 1m is
 * 3 March, or 2 March in a leap year, and 29 February minus 1y is 1 March),
 * then 4 hours earlier. So a duration is kept as its four numbers.
 *
 * On top of restic's choice, arca keeps the newest run ("newest") and, when
 * fewer than keep_min runs are kept, the newest others until keep_min (or
 * all) are ("keep-min").
 *
 * Everything here is pure computation: no I/O, no global state, thread-safe.
 */
#ifndef ARCA_BACKUP_POLICY_H
#define ARCA_BACKUP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The largest number a duration's component may hold: 1000000 (a million
 * years is "keep everything" already; larger numbers are refused rather
 * than overflow). */
#define POLICY_DURATION_MAX 1000000

/* A restic duration. All zero means "not set". Components are 0 ..
 * POLICY_DURATION_MAX. */
struct policy_duration {
    int years, months, days, hours;
};

struct policy {
    /* Counts: 0 = not set. */
    int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
    /* --keep-within: runs newer than the newest run's time minus this. */
    struct policy_duration keep_within;
    /* restic 0.14's --keep-within-hourly ... --keep-within-yearly. */
    struct policy_duration keep_within_hourly, keep_within_daily, keep_within_weekly,
        keep_within_monthly, keep_within_yearly;
    /* arca's floor: at least this many runs are kept (the newest ones).
     * Default 3; 0 = no floor (the newest run is still kept). */
    int keep_min;
    /* The current time (seconds since the epoch): the within rules count
     * back from the newest run not after now_s, as restic does, so a run
     * stamped in the future by a clock running ahead does not push every
     * other run out. 0 = not given: from the newest run. prune sets it. */
    int64_t now_s;
};

/* Everything 0 (not set, now_s not given), keep_min 3. */
void policy_init(struct policy *p);

/* True when no keep_* rule is set (keep_min alone does not count). */
bool policy_empty(const struct policy *p);

/* Parse restic's duration syntax into *out: one or more <n><unit> with unit
 * y, m, d or h, each unit at most once, in any order, surrounding blanks
 * ignored ("30d", "1y2m3d4h", "4h1y"). "0d" is a valid, zero ("not set")
 * duration. ERR_USAGE, naming `flag` (e.g. "--keep-within") and the value,
 * for an empty value, a number without unit ("30"), a unit without number
 * ("d"), a negative number ("-1d"), an unknown unit ("1w"), a repeated unit
 * ("1d2d"), or a number above POLICY_DURATION_MAX. *out is untouched on
 * error. */
int policy_parse_duration(const char *s, const char *flag, struct policy_duration *out,
                          struct err *e);

/* True when d is all zero ("not set"). */
bool policy_duration_zero(const struct policy_duration *d);

/* Write d as restic prints it ("1y2m3d4h", zero components left out, "" for
 * zero) into buf (cap bytes, always terminated). Returns buf. */
char *policy_duration_format(const struct policy_duration *d, char *buf, size_t cap);

/* t_s (seconds since the epoch, UTC) minus d, by restic's rule:
 * time.AddDate(-years, -months, -days) then minus hours. d's components
 * must be within 0 .. POLICY_DURATION_MAX. */
int64_t policy_duration_before(int64_t t_s, const struct policy_duration *d);

/* One run as the policy sees it. */
struct policy_run {
    const char *id; /* run id; not NULL; breaks ties of time (below) */
    int64_t time_s; /* start time, seconds since the epoch (UTC) */
    bool eligible;  /* its manifest says succeeded or partial */
};

#define POLICY_REASONS_MAX 384

struct policy_decision {
    bool keep;
    /* Why, comma-separated, in restic's order and words without restic's
     * " snapshot" suffix: "within 30d", "last", "hourly", "daily",
     * "weekly", "monthly", "yearly", "hourly within 7d" ... "yearly within
     * 2y"; then arca's "newest", "keep-min"; "not complete" for a run that
     * is not eligible; "" for an eligible run that is forgotten. */
    char reasons[POLICY_REASONS_MAX];
};

/* Decide for each of runs[0..n) whether prune keeps it; out[i] is for
 * runs[i] (the caller owns both arrays). Runs may come in any order.
 *
 * Only eligible runs are considered by the rules; the others get keep =
 * false and reason "not complete" (prune handles them separately). Runs
 * are ordered newest first by time_s; runs of the same second are ordered
 * by id, the greater (by strcmp) as the newer: run ids sort by time
 * (docs/FORMAT.md, "Run ids"). restic orders such ties arbitrarily (it
 * loads snapshots in parallel), but how many runs of a tie it keeps, and
 * for which reasons, does not depend on that order.
 *
 * Errors (out is then unspecified): ERR_USAGE for an empty policy ("a prune
 * policy must keep something; ..."), a negative count or keep_min, a
 * duration component outside 0 .. POLICY_DURATION_MAX; ERR_CORRUPT for an
 * eligible run whose time is outside the years 1 to 9999; ERR_NOMEM. An
 * empty list (or one without eligible runs) is not an error. */
int policy_apply(const struct policy *p, const struct policy_run *runs, size_t n,
                 struct policy_decision *out, struct err *e);

#endif
