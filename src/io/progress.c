/*
 * progress.c - the progress ticker thread.
 */
#include "io/progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct progress_ticker {
    double interval;
    const struct event_emitter *em;
    progress_fill_fn fill;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool quit;
};

static void *ticker_main(void *arg)
{
    struct progress_ticker *t = arg;
    uint64_t last_bytes = 0;
    double last_t = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    pthread_mutex_lock(&t->lock);
    for (;;) {
        int64_t step = (int64_t)(t->interval * 1e9);
        deadline.tv_sec += (time_t)(step / 1000000000);
        deadline.tv_nsec += (long)(step % 1000000000);
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        while (!t->quit && pthread_cond_timedwait(&t->cond, &t->lock, &deadline) != ETIMEDOUT)
            ;
        if (t->quit)
            break;
        pthread_mutex_unlock(&t->lock);

        struct event_progress p;
        memset(&p, 0, sizeof(p));
        p.eta_seconds = -1;
        t->fill(t->ctx, &p);
        double dt = p.elapsed - last_t;
        p.rate =
            dt > 0 && p.bytes_done >= last_bytes ? (double)(p.bytes_done - last_bytes) / dt : 0;
        if (p.bytes_total >= 0 && p.rate > 0 && (uint64_t)p.bytes_total >= p.bytes_done)
            p.eta_seconds = (int64_t)((double)((uint64_t)p.bytes_total - p.bytes_done) / p.rate);
        last_bytes = p.bytes_done;
        last_t = p.elapsed;
        event_emit_progress(t->em, &p);

        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

struct progress_ticker *progress_ticker_start(double interval, const struct event_emitter *em,
                                              progress_fill_fn fill, void *ctx)
{
    if (interval <= 0 || !em || !em->sink)
        return NULL;
    struct progress_ticker *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->interval = interval;
    t->em = em;
    t->fill = fill;
    t->ctx = ctx;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    return t;
}

void progress_ticker_stop(struct progress_ticker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->quit = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);

    struct event_progress p;
    memset(&p, 0, sizeof(p));
    t->fill(t->ctx, &p);
    p.phase = EVENT_PHASE_DONE;
    p.current = NULL;
    p.rate = p.elapsed > 0 ? (double)p.bytes_done / p.elapsed : 0;
    p.eta_seconds = p.bytes_total >= 0 ? 0 : -1;
    event_emit_progress(t->em, &p);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
