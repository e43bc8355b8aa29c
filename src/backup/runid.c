/*
 * runid.c - run ids.
 */
#include "backup/runid.h"

#include "core/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int runid_new(char out[RUNID_LEN + 1], int64_t unix_seconds, struct err *e)
{
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return err_set(e, ERR_INTERNAL, "cannot get random bytes for a run id");
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 9999)
        return err_set(e, ERR_INTERNAL, "the clock is out of range for a run id");
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02dZ-%02x%02x%02x%02x", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd[0], rnd[1], rnd[2],
             rnd[3]);
    memcpy(out, buf, RUNID_LEN);
    out[RUNID_LEN] = '\0';
    return 0;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t runid_time(const char *id)
{
    if (!id || strlen(id) != RUNID_LEN || id[8] != 'T' || id[15] != 'Z' || id[16] != '-')
        return -1;
    for (int i = 17; i < RUNID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return -1;
    int y = digits(id, 4), mo = digits(id + 4, 2), d = digits(id + 6, 2);
    int h = digits(id + 9, 2), mi = digits(id + 11, 2), s = digits(id + 13, 2);
    return time_civil(y, mo, d, h, mi, s);
}

bool runid_valid(const char *s)
{
    return runid_time(s) >= 0;
}
