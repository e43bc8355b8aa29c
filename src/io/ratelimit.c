#include "io/ratelimit.h"
#include "core/error.h"
#include "core/cancel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct ratelimit {
    pthread_mutex_t lock;
    _Atomic uint64_t rate; /* bytes per second, 0 = unlimited */
    double tokens;         /* may go negative: debt paid by sleeping */
    uint64_t last_ns;
    struct ratelimit *parent;
    uint64_t (*now_ns)(void *);
    void (*sleep_ns)(void *, uint64_t);
    void *clock_ctx;
};

static uint64_t default_now(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void default_sleep(void *ctx, uint64_t ns)
{
    (void)ctx;
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

struct ratelimit *ratelimit_new(uint64_t bytes_per_sec, struct ratelimit *parent)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    pthread_mutex_init(&rl->lock, NULL);
    atomic_store(&rl->rate, bytes_per_sec);
    rl->parent = parent;
    rl->now_ns = default_now;
    rl->sleep_ns = default_sleep;
    rl->last_ns = default_now(NULL);
    rl->tokens = 0;
    return rl;
}

void ratelimit_set_clock(struct ratelimit *rl, uint64_t (*now_ns)(void *),
                         void (*sleep_ns)(void *, uint64_t), void *ctx)
{
    rl->now_ns = now_ns;
    rl->sleep_ns = sleep_ns;
    rl->clock_ctx = ctx;
    rl->last_ns = now_ns(ctx);
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

void ratelimit_set_rate(struct ratelimit *rl, uint64_t bytes_per_sec)
{
    atomic_store(&rl->rate, bytes_per_sec);
}

uint64_t ratelimit_rate(const struct ratelimit *rl)
{
    return atomic_load(&((struct ratelimit *)rl)->rate);
}

#define RATELIMIT_STEP_NS 100000000u /* 100 ms */

/* Refill b by the time passed at its current rate (burst: one second);
 * with `debit`, take n bytes. Returns how long (ns) until b is out of
 * debt. A bucket may go negative: callers take first and wait after, so no
 * condition variable is needed. Re-evaluated every step, so a new rate
 * (higher, lower or none) reaches a caller that is already waiting. */
static uint64_t bucket_update(struct ratelimit *b, size_t n, bool debit)
{
    pthread_mutex_lock(&b->lock);
    uint64_t rate = atomic_load(&b->rate);
    uint64_t now = b->now_ns(b->clock_ctx);
    double elapsed = (double)(now - b->last_ns) / 1e9;
    b->last_ns = now;
    uint64_t wait = 0;
    if (!rate) {
        b->tokens = 0; /* unlimited: forget any debt */
    } else {
        b->tokens += elapsed * (double)rate;
        if (b->tokens > (double)rate)
            b->tokens = (double)rate;
        if (debit)
            b->tokens -= (double)n;
        if (b->tokens < 0)
            wait = (uint64_t)(-b->tokens / (double)rate * 1e9) + 1;
    }
    pthread_mutex_unlock(&b->lock);
    return wait;
}

int ratelimit_take(struct ratelimit *rl, size_t n, struct err *e)
{
    uint64_t wait = 0;
    for (struct ratelimit *b = rl; b; b = b->parent) {
        uint64_t w = bucket_update(b, n, true);
        if (w > wait)
            wait = w;
    }
    while (wait) {
        if (cancel_requested())
            return err_set(e, ERR_CANCELLED, "interrupted");
        rl->sleep_ns(rl->clock_ctx, wait < RATELIMIT_STEP_NS ? wait : RATELIMIT_STEP_NS);
        wait = 0;
        for (struct ratelimit *b = rl; b; b = b->parent) {
            uint64_t w = bucket_update(b, n, false);
            if (w > wait)
                wait = w;
        }
    }
    return 0;
}
