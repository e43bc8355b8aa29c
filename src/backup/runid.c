/*
 * runid.c - run ids.
 *
 * 32 random bits make a collision between two separate processes that
 * start a run in the same second negligible (the destination lock also
 * orders them), but 10,000 ids drawn in one second would collide with a
 * chance of about 1%. A scheduler that retries fast must never give two
 * attempts the same id (the second would overwrite the first's manifest),
 * so the process remembers the values it gave out for the latest second
 * and draws again on a repeat. The record is reset when the second
 * changes, so it holds at most one second's worth of ids.
 */
#include "backup/runid.h"

#include "core/timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Open-addressing set of the 32-bit values given out for `second`; a slot
 * holds value + 1, 0 is empty. */
static struct {
    pthread_mutex_t lock;
    int64_t second;
    uint64_t *slots;
    size_t cap, len; /* cap a power of two, len <= cap / 2 */
} issued = {PTHREAD_MUTEX_INITIALIZER, INT64_MIN, NULL, 0, 0};

static size_t slot_of(uint32_t v, size_t cap)
{
    return (size_t)((v * UINT64_C(0x9E3779B97F4A7C15)) >> 17) & (cap - 1);
}

/* Whether v was given out already; adds it when not. -1 out of memory. */
static int issued_add(uint32_t v)
{
    if (issued.len + 1 > issued.cap / 2) {
        size_t ncap = issued.cap ? issued.cap * 2 : 64;
        uint64_t *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return -1;
        for (size_t i = 0; i < issued.cap; i++) {
            if (!issued.slots[i])
                continue;
            size_t k = slot_of((uint32_t)(issued.slots[i] - 1), ncap);
            while (ns[k])
                k = (k + 1) & (ncap - 1);
            ns[k] = issued.slots[i];
        }
        free(issued.slots);
        issued.slots = ns;
        issued.cap = ncap;
    }
    size_t k = slot_of(v, issued.cap);
    while (issued.slots[k]) {
        if (issued.slots[k] == (uint64_t)v + 1)
            return 1;
        k = (k + 1) & (issued.cap - 1);
    }
    issued.slots[k] = (uint64_t)v + 1;
    issued.len++;
    return 0;
}

static int random32(uint32_t *v)
{
    unsigned char b[4];
    ssize_t n;
    do
        n = getrandom(b, sizeof(b), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(b))
        return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

int runid_new(char out[RUNID_LEN + 1], int64_t unix_seconds, struct err *e)
{
    if (unix_seconds < 0 || unix_seconds > INT64_C(253402300799)) /* 9999-12-31T23:59:59Z */
        return err_set(e, ERR_INTERNAL, "the clock (%lld) is out of range for a run id",
                       (long long)unix_seconds);
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return err_set(e, ERR_INTERNAL, "the clock (%lld) is out of range for a run id",
                       (long long)unix_seconds);
    uint32_t v = 0;
    int r = 0;
    pthread_mutex_lock(&issued.lock);
    if (issued.second != unix_seconds) {
        if (issued.cap > 1024) { /* a busy second is over: give the memory back */
            free(issued.slots);
            issued.slots = NULL;
            issued.cap = 0;
        } else if (issued.slots) {
            memset(issued.slots, 0, issued.cap * sizeof(*issued.slots));
        }
        issued.len = 0;
        issued.second = unix_seconds;
    }
    for (int tries = 0;; tries++) {
        if (tries == 64 || random32(&v)) {
            r = err_set(e, ERR_INTERNAL, "cannot get random bytes for a run id: %s",
                        tries == 64 ? "the same values again and again" : strerror(errno));
            break;
        }
        int seen = issued_add(v);
        if (seen < 0) {
            r = err_set(e, ERR_NOMEM, "out of memory making a run id");
            break;
        }
        if (!seen)
            break;
    }
    pthread_mutex_unlock(&issued.lock);
    if (r)
        return r;
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02dZ-%08x", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)v);
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
    if (!id || strnlen(id, RUNID_LEN + 1) != RUNID_LEN || id[8] != 'T' || id[15] != 'Z' ||
        id[16] != '-')
        return -1;
    for (int i = 17; i < RUNID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return -1;
    int y = digits(id, 4), mo = digits(id + 4, 2), d = digits(id + 6, 2);
    int h = digits(id + 9, 2), mi = digits(id + 11, 2), s = digits(id + 13, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0)
        return -1;
    return time_civil(y, mo, d, h, mi, s);
}

bool runid_valid(const char *s)
{
    return runid_time(s) >= 0;
}
