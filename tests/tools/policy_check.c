/*
 * policy_check.c - arca-policy-check: run src/backup/policy.h over a list of
 * runs, for tests that compare it with `restic forget`.
 *
 *     arca-policy-check [--keep-last N] [--keep-hourly N] ... [--keep-yearly N]
 *                       [--keep-within D] [--keep-within-hourly D] ...
 *                       [--keep-within-yearly D] [--keep-min N] [--now T] < runs
 *
 * Flags are restic's (also as --flag=value); --keep-min defaults to 3 as in
 * arca, and --keep-min 0 turns arca's floor off. --now UNIX-TIME sets
 * policy.now_s (default: the current time, as restic; --now 0: not given). stdin holds one run a
 * line:
 * "<id> <unix-time> <0|1 eligible>". stdout gets one line per run, in input
 * order: "<id> keep|forget[ <reasons>]". Exit 0, or 2 with a one-line
 * message on stderr for bad flags or input (the CLI's exit statuses).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/policy.h"
#include "core/error.h"

static int parse_count(const char *flag, const char *v, int *out, struct err *e)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 0 || n > 1000000000L)
        return err_set(e, ERR_USAGE, "%s '%s' is not a number of runs; give e.g. 7", flag, v);
    *out = (int)n;
    return 0;
}

static int parse_args(int argc, char **argv, struct policy *p, struct err *e)
{
    static const struct {
        const char *name;
        size_t count_off; /* offset of an int, or SIZE_MAX */
        size_t dur_off;   /* offset of a struct policy_duration, or SIZE_MAX */
    } flags[] = {
        {"--keep-last", offsetof(struct policy, keep_last), SIZE_MAX},
        {"--keep-hourly", offsetof(struct policy, keep_hourly), SIZE_MAX},
        {"--keep-daily", offsetof(struct policy, keep_daily), SIZE_MAX},
        {"--keep-weekly", offsetof(struct policy, keep_weekly), SIZE_MAX},
        {"--keep-monthly", offsetof(struct policy, keep_monthly), SIZE_MAX},
        {"--keep-yearly", offsetof(struct policy, keep_yearly), SIZE_MAX},
        {"--keep-min", offsetof(struct policy, keep_min), SIZE_MAX},
        {"--keep-within", SIZE_MAX, offsetof(struct policy, keep_within)},
        {"--keep-within-hourly", SIZE_MAX, offsetof(struct policy, keep_within_hourly)},
        {"--keep-within-daily", SIZE_MAX, offsetof(struct policy, keep_within_daily)},
        {"--keep-within-weekly", SIZE_MAX, offsetof(struct policy, keep_within_weekly)},
        {"--keep-within-monthly", SIZE_MAX, offsetof(struct policy, keep_within_monthly)},
        {"--keep-within-yearly", SIZE_MAX, offsetof(struct policy, keep_within_yearly)},
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t f;
        for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
            if (strlen(flags[f].name) == nlen && memcmp(flags[f].name, arg, nlen) == 0)
                break;
        bool now = nlen == 5 && memcmp(arg, "--now", 5) == 0;
        if (f == sizeof(flags) / sizeof(flags[0]) && !now)
            return err_set(e, ERR_USAGE,
                           "unknown flag '%s'; use --keep-last, --keep-daily, --keep-within ...",
                           arg);
        const char *v;
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc)
                return err_set(e, ERR_USAGE, "%.*s needs a value", (int)nlen, arg);
            v = argv[++i];
        }
        int r;
        if (now) {
            char *end;
            errno = 0;
            long long t = strtoll(v, &end, 10);
            if (!*v || *end || errno || t < 0)
                return err_set(e, ERR_USAGE, "--now '%s' is not a unix time; give e.g. %lld", v,
                               (long long)time(NULL));
            p->now_s = (int64_t)t;
            continue;
        }
        if (flags[f].count_off != SIZE_MAX)
            r = parse_count(flags[f].name, v, (int *)((char *)p + flags[f].count_off), e);
        else
            r = policy_parse_duration(v, flags[f].name,
                                      (struct policy_duration *)((char *)p + flags[f].dur_off), e);
        if (r)
            return r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct err e;
    err_clear(&e);
    struct policy p;
    policy_init(&p);
    p.now_s = (int64_t)time(NULL);
    struct policy_run *runs = NULL;
    struct policy_decision *out = NULL;
    size_t n = 0, cap = 0, lineno = 0;
    char *line = NULL;
    size_t linecap = 0;
    int r = parse_args(argc, argv, &p, &e);
    if (r)
        goto done;

    while (getline(&line, &linecap, stdin) >= 0) {
        lineno++;
        char id[256];
        long long t;
        int eligible;
        char extra;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        if (sscanf(line, "%255s %lld %d %c", id, &t, &eligible, &extra) != 3 ||
            (eligible != 0 && eligible != 1)) {
            r = err_set(&e, ERR_USAGE,
                        "stdin line %zu is not '<id> <unix-time> <0|1>'; fix the input", lineno);
            goto done;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct policy_run *nr = realloc(runs, ncap * sizeof(*nr));
            if (!nr) {
                r = err_set(&e, ERR_NOMEM, "out of memory reading runs");
                goto done;
            }
            runs = nr;
            cap = ncap;
        }
        char *idcopy = strdup(id);
        if (!idcopy) {
            r = err_set(&e, ERR_NOMEM, "out of memory reading runs");
            goto done;
        }
        runs[n++] = (struct policy_run){idcopy, (int64_t)t, eligible == 1};
    }
    if (ferror(stdin)) {
        r = err_set(&e, ERR_IO, "cannot read stdin: %s", strerror(errno));
        goto done;
    }

    out = calloc(n ? n : 1, sizeof(*out));
    if (!out) {
        r = err_set(&e, ERR_NOMEM, "out of memory");
        goto done;
    }
    r = policy_apply(&p, runs, n, out, &e);
    if (r)
        goto done;
    for (size_t i = 0; i < n; i++)
        printf("%s %s%s%s\n", runs[i].id, out[i].keep ? "keep" : "forget",
               out[i].reasons[0] ? " " : "", out[i].reasons);
    if (fflush(stdout) != 0)
        r = err_set(&e, ERR_IO, "cannot write stdout: %s", strerror(errno));

done:
    if (r)
        fprintf(stderr, "arca-policy-check: %s\n", e.msg);
    for (size_t i = 0; i < n; i++)
        free((char *)runs[i].id);
    free(runs);
    free(out);
    free(line);
    return r ? err_exit_status(r) : 0;
}
