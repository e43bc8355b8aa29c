/*
 * workq.h - a bounded queue of fixed-size jobs served by worker threads.
 *
 * workq_push copies the job in and blocks while the queue is full, so a
 * producer walking a long stream keeps memory bounded. Each worker owns a
 * buffer of buf_size bytes that fn may use. Jobs run in no particular
 * order; fn reports its results through ctx itself.
 */
#ifndef ARCA_CORE_WORKQ_H
#define ARCA_CORE_WORKQ_H

#include <stddef.h>

typedef void (*workq_fn)(void *job, unsigned char *buf, void *ctx);

struct workq;

/* NULL when out of memory or a thread cannot start. */
struct workq *workq_new(int nthreads, size_t cap, size_t job_size, size_t buf_size, workq_fn fn,
                        void *ctx);
/* Queue a copy of job (job_size bytes). */
void workq_push(struct workq *q, const void *job);
/* Wait for every queued job to finish, stop the threads, free q. NULL is
 * fine. */
void workq_finish(struct workq *q);

#endif
