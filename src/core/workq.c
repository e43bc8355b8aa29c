/*
 * workq.c - worker threads behind a bounded queue (see workq.h).
 */
#include "core/workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct workq {
    pthread_mutex_t lock;
    pthread_cond_t cond_item, cond_space;
    unsigned char *ring;
    size_t cap, head, count, job_size, buf_size;
    bool closed;
    workq_fn fn;
    void *ctx;
    pthread_t *threads;
    int nthreads;
};

static void *worker(void *arg)
{
    struct workq *q = arg;
    unsigned char *buf = q->buf_size ? malloc(q->buf_size) : NULL;
    unsigned char *job = malloc(q->job_size);
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->count && !q->closed)
            pthread_cond_wait(&q->cond_item, &q->lock);
        if (!q->count)
            break;
        memcpy(job, q->ring + q->head * q->job_size, q->job_size);
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_cond_signal(&q->cond_space);
        pthread_mutex_unlock(&q->lock);
        q->fn(job, buf, q->ctx);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    free(job);
    free(buf);
    return NULL;
}

struct workq *workq_new(int nthreads, size_t cap, size_t job_size, size_t buf_size, workq_fn fn,
                        void *ctx)
{
    struct workq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->cap = cap ? cap : 1;
    q->job_size = job_size;
    q->buf_size = buf_size;
    q->fn = fn;
    q->ctx = ctx;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond_item, NULL);
    pthread_cond_init(&q->cond_space, NULL);
    q->ring = malloc(q->cap * job_size);
    q->threads = calloc((size_t)(nthreads > 0 ? nthreads : 1), sizeof(*q->threads));
    if (!q->ring || !q->threads) {
        workq_finish(q);
        return NULL;
    }
    for (int i = 0; i < (nthreads > 0 ? nthreads : 1); i++) {
        if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
            workq_finish(q);
            return NULL;
        }
        q->nthreads = i + 1;
    }
    return q;
}

void workq_push(struct workq *q, const void *job)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == q->cap)
        pthread_cond_wait(&q->cond_space, &q->lock);
    memcpy(q->ring + ((q->head + q->count) % q->cap) * q->job_size, job, q->job_size);
    q->count++;
    pthread_cond_signal(&q->cond_item);
    pthread_mutex_unlock(&q->lock);
}

void workq_finish(struct workq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->cond_item);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond_item);
    pthread_cond_destroy(&q->cond_space);
    free(q->threads);
    free(q->ring);
    free(q);
}
