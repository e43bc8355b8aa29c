#include "io/ratelimit.h"
#include "core/error.h"
#include "core/cancel.h"

#include <pthread.h>
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

void ratelimit_set_clock(struct ratelimit *rl, uint64_t (*now_ns)(void *), void (*sleep_ns)(void *, uint64_t),
                         void *ctx)
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

/* Debit n bytes now and return how long the caller must wait (ns) before
 * the debt is paid. Taking first and sleeping after keeps callers FIFO-ish
 * and needs no condition variable. */
static uint64_t bucket_debit(struct ratelimit *rl, size_t n)
{
    uint64_t rate = atomic_load(&rl->rate);
    if (!rate)
        return 0;
    pthread_mutex_lock(&rl->lock);
    uint64_t now = rl->now_ns(rl->clock_ctx);
    double elapsed = (double)(now - rl->last_ns) / 1e9;
    rl->last_ns = now;
    rl->tokens += elapsed * (double)rate;
    if (rl->tokens > (double)rate) /* burst: one second */
        rl->tokens = (double)rate;
    rl->tokens -= (double)n;
    uint64_t wait = 0;
    if (rl->tokens < 0)
        wait = (uint64_t)(-rl->tokens / (double)rate * 1e9);
    pthread_mutex_unlock(&rl->lock);
    return wait;
}

int ratelimit_take(struct ratelimit *rl, size_t n, struct err *e)
{
    uint64_t wait = 0;
    struct ratelimit *sleeper = rl;
    for (struct ratelimit *b = rl; b; b = b->parent) {
        uint64_t w = bucket_debit(b, n);
        if (w > wait)
            wait = w;
    }
    while (wait) {
        if (cancel_requested())
            return err_set(e, ERR_CANCELLED, "interrupted");
        uint64_t step = wait < RATELIMIT_STEP_NS ? wait : RATELIMIT_STEP_NS;
        sleeper->sleep_ns(sleeper->clock_ctx, step);
        wait -= step;
    }
    return 0;
}
