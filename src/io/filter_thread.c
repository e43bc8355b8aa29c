/*
 * filter_thread.c - a filter that hands the bytes to the rest of the chain
 * on a thread of its own, through a bounded queue of copies, so that the
 * stages before it and after it run at the same time (restore: the
 * decompressor in the reading thread, tar parsing, hashing and writing in
 * this one).
 */
#include "io/filter.h"
#include "core/error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct tq_item {
    char *data;
    size_t len;
};

struct tq {
    struct filter *self;
    size_t block;
    int depth;
    struct tq_item *items; /* ring of depth buffers */
    int head, count;
    bool started, closing, failed;
    int rc;
    struct err err;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void *tq_main(void *arg)
{
    struct tq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->count && !q->closing)
            pthread_cond_wait(&q->cond, &q->lock);
        if (!q->count)
            break; /* closing and drained */
        struct tq_item *it = &q->items[q->head];
        pthread_mutex_unlock(&q->lock);
        struct err e;
        err_clear(&e);
        int r = q->failed ? 0 : filter_pass(q->self, it->data, it->len, &e);
        pthread_mutex_lock(&q->lock);
        if (r && !q->failed) {
            q->failed = true;
            q->rc = r;
            q->err = e;
        }
        q->head = (q->head + 1) % q->depth;
        q->count--;
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static int tq_fail(struct tq *q, struct err *e)
{
    if (e)
        *e = q->err;
    return q->rc;
}

static int tq_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    struct tq *q = f->state;
    q->self = f;
    const char *p = data;
    pthread_mutex_lock(&q->lock);
    if (!q->started) {
        if (pthread_create(&q->thread, NULL, tq_main, q) != 0) {
            pthread_mutex_unlock(&q->lock);
            return filter_pass(f, data, len, e); /* no thread: in line */
        }
        q->started = true;
    }
    while (len > 0) {
        while (q->count == q->depth && !q->failed)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->failed) {
            pthread_mutex_unlock(&q->lock);
            return tq_fail(q, e);
        }
        struct tq_item *it = &q->items[(q->head + q->count) % q->depth];
        it->len = len < q->block ? len : q->block;
        memcpy(it->data, p, it->len);
        p += it->len;
        len -= it->len;
        q->count++;
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return 0;
}

static void tq_stop(struct tq *q)
{
    pthread_mutex_lock(&q->lock);
    q->closing = true;
    pthread_cond_broadcast(&q->cond);
    bool started = q->started;
    q->started = false;
    pthread_mutex_unlock(&q->lock);
    if (started)
        pthread_join(q->thread, NULL);
}

/* Drain the queue; the chain's next finish runs after, on the caller's
 * thread. */
static int tq_finish(struct filter *f, struct err *e)
{
    struct tq *q = f->state;
    tq_stop(q);
    return q->failed ? tq_fail(q, e) : 0;
}

static void tq_free(struct filter *f)
{
    struct tq *q = f->state;
    if (!q)
        return;
    /* an abandoned chain: the thread drops what is queued (passes nothing
     * more on) and ends */
    pthread_mutex_lock(&q->lock);
    q->failed = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    tq_stop(q);
    for (int i = 0; i < q->depth; i++)
        free(q->items[i].data);
    free(q->items);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static const struct filter_ops tq_ops = {"thread", tq_write, tq_finish, tq_free};

struct filter *filter_thread_new(size_t block, int depth)
{
    struct filter *f = calloc(1, sizeof(*f));
    struct tq *q = calloc(1, sizeof(*q));
    if (!f || !q || block == 0 || depth < 1 ||
        !(q->items = calloc((size_t)depth, sizeof(*q->items)))) {
        if (q)
            free(q->items);
        free(q);
        free(f);
        return NULL;
    }
    q->block = block;
    q->depth = depth;
    for (int i = 0; i < depth; i++) {
        if (!(q->items[i].data = malloc(block))) {
            for (int k = 0; k < i; k++)
                free(q->items[k].data);
            free(q->items);
            free(q);
            free(f);
            return NULL;
        }
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    f->ops = &tq_ops;
    f->state = q;
    return f;
}
