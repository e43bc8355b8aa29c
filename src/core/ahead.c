/*
 * ahead.c - a stream read ahead on a thread (see ahead.h).
 */
#include "core/ahead.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct batch {
    unsigned char *items;
    size_t n; /* items in it */
};

struct ahead {
    ahead_next_fn next;
    ahead_free_fn free_fn;
    void *src;
    size_t item_size, batch_cap, nbatches;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond_full;  /* a batch is ready, or the producer ended */
    pthread_cond_t cond_empty; /* room for a batch, or stop */
    struct batch *ring;        /* nbatches */
    size_t head, count;
    bool ended; /* the producer is done: end or error after the queued batches */
    int end_code;
    struct err end_err;
    bool stop;

    struct batch cur; /* the consumer's batch */
    size_t cur_pos;
};

static void *producer(void *arg)
{
    struct ahead *a = arg;
    int code = 0;
    struct err e;
    err_clear(&e);
    for (bool more = true; more;) {
        struct batch b = {malloc(a->item_size * a->batch_cap), 0};
        if (!b.items) {
            code = err_set(&e, ERR_NOMEM, "out of memory reading ahead");
            break;
        }
        while (b.n < a->batch_cap) {
            pthread_mutex_lock(&a->lock);
            bool stop = a->stop;
            pthread_mutex_unlock(&a->lock);
            int r = stop ? 0 : a->next(a->src, b.items + b.n * a->item_size, &e);
            if (r <= 0) {
                code = r;
                more = false;
                break;
            }
            b.n++;
        }
        pthread_mutex_lock(&a->lock);
        while (a->count == a->nbatches && !a->stop)
            pthread_cond_wait(&a->cond_empty, &a->lock);
        if (a->stop) {
            pthread_mutex_unlock(&a->lock);
            for (size_t i = 0; i < b.n; i++)
                a->free_fn(b.items + i * a->item_size);
            free(b.items);
            break;
        }
        if (b.n)
            a->ring[(a->head + a->count++) % a->nbatches] = b;
        else
            free(b.items);
        pthread_cond_signal(&a->cond_full);
        pthread_mutex_unlock(&a->lock);
    }
    pthread_mutex_lock(&a->lock);
    a->ended = true;
    a->end_code = code;
    a->end_err = e;
    pthread_cond_broadcast(&a->cond_full);
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

struct ahead *ahead_start(ahead_next_fn next, ahead_free_fn free_fn, void *src, size_t item_size,
                          size_t batch, size_t nbatches)
{
    struct ahead *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->next = next;
    a->free_fn = free_fn;
    a->src = src;
    a->item_size = item_size;
    a->batch_cap = batch ? batch : 1;
    a->nbatches = nbatches ? nbatches : 1;
    a->ring = calloc(a->nbatches, sizeof(*a->ring));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond_full, NULL);
    pthread_cond_init(&a->cond_empty, NULL);
    if (!a->ring || pthread_create(&a->thread, NULL, producer, a) != 0) {
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->cond_full);
        pthread_cond_destroy(&a->cond_empty);
        free(a->ring);
        free(a);
        return NULL;
    }
    return a;
}

int ahead_next(struct ahead *a, void *item, struct err *e)
{
    if (a->cur.items && a->cur_pos == a->cur.n) {
        free(a->cur.items);
        a->cur.items = NULL;
    }
    if (!a->cur.items) {
        pthread_mutex_lock(&a->lock);
        while (!a->count && !a->ended)
            pthread_cond_wait(&a->cond_full, &a->lock);
        if (!a->count) {
            int code = a->end_code;
            if (code)
                *e = a->end_err;
            pthread_mutex_unlock(&a->lock);
            return code;
        }
        a->cur = a->ring[a->head];
        a->head = (a->head + 1) % a->nbatches;
        a->count--;
        a->cur_pos = 0;
        pthread_cond_signal(&a->cond_empty);
        pthread_mutex_unlock(&a->lock);
    }
    memcpy(item, a->cur.items + a->cur_pos++ * a->item_size, a->item_size);
    return 1;
}

static void batch_free(struct ahead *a, struct batch *b, size_t from)
{
    for (size_t i = from; i < b->n; i++)
        a->free_fn(b->items + i * a->item_size);
    free(b->items);
    b->items = NULL;
}

void ahead_stop(struct ahead *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_broadcast(&a->cond_empty);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    if (a->cur.items)
        batch_free(a, &a->cur, a->cur_pos);
    while (a->count) {
        batch_free(a, &a->ring[a->head], 0);
        a->head = (a->head + 1) % a->nbatches;
        a->count--;
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond_full);
    pthread_cond_destroy(&a->cond_empty);
    free(a->ring);
    free(a);
}
