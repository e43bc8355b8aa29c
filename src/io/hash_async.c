#include "io/hash_async.h"
#include "core/error.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct async_block {
    char *data;
    size_t len;
};

struct async_hash {
    EVP_MD_CTX *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct async_block *blocks; /* ring of nblocks */
    int nblocks;
    int head;   /* next block the worker hashes */
    int queued; /* full blocks waiting */
    int fill;   /* block the producer fills (never queued meanwhile) */
    size_t block;
    bool done; /* no more input */
    bool failed;
    bool started; /* the worker runs; before, bytes are hashed inline */
    size_t inline_len;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len;
};

static void *worker(void *arg)
{
    struct async_hash *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->queued && !h->done)
            pthread_cond_wait(&h->cond, &h->lock);
        if (!h->queued && h->done)
            break;
        struct async_block *b = &h->blocks[h->head];
        pthread_mutex_unlock(&h->lock);
        if (!EVP_DigestUpdate(h->ctx, b->data, b->len))
            h->failed = true;
        pthread_mutex_lock(&h->lock);
        b->len = 0;
        h->head = (h->head + 1) % h->nblocks;
        h->queued--;
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    if (!EVP_DigestFinal_ex(h->ctx, h->digest, &h->digest_len))
        h->failed = true;
    return NULL;
}

/* Free everything but the thread (not started, or joined). */
static void release(struct async_hash *h)
{
    if (!h->started) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return;
    }
    for (int i = 0; h->blocks && i < h->nblocks; i++)
        free(h->blocks[i].data);
    free(h->blocks);
    EVP_MD_CTX_free(h->ctx);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
}

/*
 * The worker starts only once a stream outgrows one block: a small object
 * (most of them) is hashed inline, without a thread or buffers.
 */
struct async_hash *async_hash_new(enum hash_kind kind, size_t block, int nblocks)
{
    if (nblocks < 2 || block == 0)
        return NULL;
    struct async_hash *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->block = block;
    h->nblocks = nblocks;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || !EVP_DigestInit_ex(h->ctx, kind == HASH_MD5 ? EVP_md5() : EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

/* Start the worker (the inline part is in ctx already). */
static int start(struct async_hash *h)
{
    h->blocks = calloc((size_t)h->nblocks, sizeof(*h->blocks));
    bool ok = h->blocks != NULL;
    for (int i = 0; ok && i < h->nblocks; i++)
        ok = (h->blocks[i].data = malloc(h->block)) != NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->started = true;
    if (ok && pthread_create(&h->thread, NULL, worker, h) == 0)
        return 0;
    /* hash the rest inline, then */
    for (int i = 0; h->blocks && i < h->nblocks; i++)
        free(h->blocks[i].data);
    free(h->blocks);
    h->blocks = NULL;
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    h->started = false;
    h->inline_len = 0;
    h->block = SIZE_MAX;
    return 0;
}

/* Hand the filled block to the worker and wait for a free one. */
static void queue_fill(struct async_hash *h)
{
    pthread_mutex_lock(&h->lock);
    h->queued++;
    pthread_cond_broadcast(&h->cond);
    /* the next block to fill is free once fewer than all are queued */
    while (h->queued == h->nblocks)
        pthread_cond_wait(&h->cond, &h->lock);
    h->fill = (h->fill + 1) % h->nblocks;
    pthread_mutex_unlock(&h->lock);
}

int async_hash_update(struct async_hash *h, const void *data, size_t len)
{
    if (!h->started) {
        if (len <= h->block - h->inline_len) {
            h->inline_len += len;
            if (!EVP_DigestUpdate(h->ctx, data, len))
                h->failed = true;
            return h->failed ? ERR_INTERNAL : 0;
        }
        start(h);
        if (!h->started) /* no thread: everything inline */
            return EVP_DigestUpdate(h->ctx, data, len) ? 0 : ERR_INTERNAL;
    }
    const char *p = data;
    while (len) {
        struct async_block *b = &h->blocks[h->fill];
        size_t n = h->block - b->len;
        if (n > len)
            n = len;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        p += n;
        len -= n;
        if (b->len == h->block)
            queue_fill(h);
    }
    return h->failed ? ERR_INTERNAL : 0;
}

static void stop(struct async_hash *h)
{
    pthread_mutex_lock(&h->lock);
    if (h->blocks[h->fill].len) {
        h->queued++;
        h->fill = (h->fill + 1) % h->nblocks;
    }
    h->done = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
}

size_t async_hash_final(struct async_hash *h, unsigned char *out, size_t cap)
{
    if (h->started)
        stop(h);
    else if (!EVP_DigestFinal_ex(h->ctx, h->digest, &h->digest_len))
        h->failed = true;
    size_t n = h->failed || cap < h->digest_len ? 0 : h->digest_len;
    if (n)
        memcpy(out, h->digest, n);
    release(h);
    return n;
}

void async_hash_free(struct async_hash *h)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    if (h)
        async_hash_final(h, d, sizeof(d));
}
