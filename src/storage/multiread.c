/*
 * multiread.c - an object read as chunks on several readers at once, handed
 * out in order.
 *
 * Chunk c is [c * chunk, (c + 1) * chunk) and belongs to stream c % streams.
 * Each stream is a thread with one buffer: it opens a ranged reader for its
 * next chunk, reads it whole, closes the reader (so a pooled connection goes
 * back to the pool before waiting) and waits until the consumer has taken
 * the chunk before fetching its next one. So while the consumer drains chunk
 * c, chunks c+1 .. c+streams-1 are being fetched; memory is streams * chunk
 * whatever the object's size.
 */
#include "storage/multiread.h"
#include "storage/storage_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MULTIREAD_IO ((size_t)1 << 20) /* bytes per storage_read call */

enum slot_state { SLOT_EMPTY, SLOT_READY, SLOT_FAILED };

struct mr_slot {
    struct multiread *mr;
    unsigned index;
    pthread_t thread;
    bool started;
    char *buf;                    /* chunk + 1 bytes (the last range's extra byte) */
    size_t len;                   /* bytes in buf */
    size_t off;                   /* bytes the consumer took */
    uint64_t chunk_no;            /* which chunk buf holds */
    enum slot_state state;        /* under mr->lock */
    struct storage_reader *first; /* chunk 0's reader, opened by the caller */
    int rc;
    struct err err;
};

struct multiread {
    struct storage *st;
    char *key;
    uint64_t size;
    size_t chunk;
    uint64_t nchunks;
    unsigned streams;
    uint64_t next; /* chunk the consumer is on */
    bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct mr_slot slots[MULTIREAD_MAX_STREAMS];
};

static uint64_t chunk_len(const struct multiread *mr, uint64_t c)
{
    uint64_t start = c * mr->chunk;
    uint64_t rest = mr->size - start;
    return rest < mr->chunk ? rest : mr->chunk;
}

/* Fill s->buf with chunk c; 0, or an error code with s->err filled. */
static int fetch_chunk(struct multiread *mr, struct mr_slot *s, uint64_t c)
{
    uint64_t want = chunk_len(mr, c);
    bool last = c == mr->nchunks - 1;
    /* the last range asks one byte past the listed end: growth shows */
    uint64_t ask = last ? want + 1 : want;
    struct storage_reader *rd = s->first;
    s->first = NULL;
    int r = 0;
    if (!rd)
        r = storage_read_open(mr->st, mr->key, c * mr->chunk, (int64_t)ask, &rd, NULL, &s->err);
    s->len = 0;
    while (r == 0 && s->len < ask) {
        pthread_mutex_lock(&mr->lock);
        bool stop = mr->stop;
        pthread_mutex_unlock(&mr->lock);
        if (stop) {
            r = err_set(&s->err, ERR_CANCELLED, "stopped");
            break;
        }
        size_t cap = ask - s->len < MULTIREAD_IO ? (size_t)(ask - s->len) : MULTIREAD_IO;
        size_t got = 0;
        r = storage_read(rd, s->buf + s->len, cap, &got, &s->err);
        if (r == 0 && got == 0)
            break;
        s->len += got;
    }
    storage_read_close(rd);
    if (r == 0 && s->len < want)
        r = err_set(&s->err, ERR_IO,
                    "'%s' changed size while being read (listed %" PRIu64 ", ended at %" PRIu64
                    "); will be copied next run",
                    mr->key, mr->size, c * mr->chunk + s->len);
    return r;
}

static void *stream_main(void *arg)
{
    struct mr_slot *s = arg;
    struct multiread *mr = s->mr;
    for (uint64_t c = s->index; c < mr->nchunks; c += mr->streams) {
        pthread_mutex_lock(&mr->lock);
        while (s->state != SLOT_EMPTY && !mr->stop)
            pthread_cond_wait(&mr->cond, &mr->lock);
        bool stop = mr->stop;
        pthread_mutex_unlock(&mr->lock);
        if (stop)
            break;
        int r = fetch_chunk(mr, s, c);
        pthread_mutex_lock(&mr->lock);
        s->chunk_no = c;
        s->off = 0;
        s->rc = r;
        s->state = r ? SLOT_FAILED : SLOT_READY;
        pthread_cond_broadcast(&mr->cond);
        pthread_mutex_unlock(&mr->lock);
        if (r)
            break;
    }
    return NULL;
}

static int mr_read(void *state, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct multiread *mr = state;
    *got = 0;
    if (mr->next >= mr->nchunks || !cap)
        return 0;
    struct mr_slot *s = &mr->slots[mr->next % mr->streams];
    pthread_mutex_lock(&mr->lock);
    while (s->state == SLOT_EMPTY)
        pthread_cond_wait(&mr->cond, &mr->lock);
    pthread_mutex_unlock(&mr->lock);
    if (s->state == SLOT_FAILED) {
        if (e)
            *e = s->err;
        return s->rc;
    }
    size_t n = s->len - s->off < cap ? s->len - s->off : cap;
    memcpy(buf, s->buf + s->off, n);
    s->off += n;
    *got = n;
    if (s->off == s->len) {
        pthread_mutex_lock(&mr->lock);
        s->state = SLOT_EMPTY;
        mr->next++;
        pthread_cond_broadcast(&mr->cond);
        pthread_mutex_unlock(&mr->lock);
    }
    return 0;
}

static void mr_close(void *state)
{
    struct multiread *mr = state;
    pthread_mutex_lock(&mr->lock);
    mr->stop = true;
    pthread_cond_broadcast(&mr->cond);
    pthread_mutex_unlock(&mr->lock);
    for (unsigned i = 0; i < mr->streams; i++) {
        struct mr_slot *s = &mr->slots[i];
        if (s->started)
            pthread_join(s->thread, NULL);
        storage_read_close(s->first);
        free(s->buf);
    }
    pthread_cond_destroy(&mr->cond);
    pthread_mutex_destroy(&mr->lock);
    free(mr->key);
    free(mr);
}

static const struct storage_reader_ops mr_ops = {mr_read, mr_close};

int storage_multiread_open(struct storage *st, const char *key, uint64_t size, unsigned streams,
                           size_t chunk, struct storage_reader **out, struct storage_entry *ent,
                           struct err *e)
{
    *out = NULL;
    if (size == 0 || chunk == 0 || streams < 2 || streams > MULTIREAD_MAX_STREAMS)
        return err_set(e, ERR_INTERNAL, "multiread of '%s': bad size, chunk or stream count", key);
    struct multiread *mr = calloc(1, sizeof(*mr));
    if (!mr || !(mr->key = strdup(key))) {
        free(mr);
        return err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
    }
    mr->st = st;
    mr->size = size;
    mr->chunk = chunk;
    mr->nchunks = (size + chunk - 1) / chunk;
    mr->streams = mr->nchunks < streams ? (unsigned)mr->nchunks : streams;
    pthread_mutex_init(&mr->lock, NULL);
    pthread_cond_init(&mr->cond, NULL);
    /* the first range is opened here: its errors (not found, denied) and
     * what it learns (ent) reach the caller at once */
    struct storage_reader *first = NULL;
    uint64_t first_len = chunk_len(mr, 0) + (mr->nchunks == 1 ? 1 : 0);
    int r = storage_read_open(st, key, 0, (int64_t)first_len, &first, ent, e);
    if (r) {
        mr_close(mr);
        return r;
    }
    mr->slots[0].first = first;
    for (unsigned i = 0; i < mr->streams; i++) {
        struct mr_slot *s = &mr->slots[i];
        s->mr = mr;
        s->index = i;
        err_clear(&s->err);
        if (!(s->buf = malloc(chunk + 1))) {
            mr_close(mr);
            return err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
        }
    }
    for (unsigned i = 0; i < mr->streams; i++) {
        struct mr_slot *s = &mr->slots[i];
        if (pthread_create(&s->thread, NULL, stream_main, s) != 0) {
            mr_close(mr);
            return err_set(e, ERR_INTERNAL, "cannot start a thread reading '%s'", key);
        }
        s->started = true;
    }
    r = storage_reader_new(st, &mr_ops, mr, out, e);
    if (r)
        mr_close(mr);
    return r;
}
