/*
 * prefetch.c - small files read ahead in order (see prefetch.h).
 */
#include "storage/prefetch.h"

#include "storage/storage_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PF_SLOTS 256
#define PF_BLOCK ((size_t)256 << 10)

struct pf_slot {
    char *key;
    uint64_t size;
    unsigned char *data;
    size_t len;
    int open_code; /* opening failed: nothing read */
    int read_code; /* reading stopped with this error after len bytes */
    struct err err;
    struct storage_entry ent;
    bool taken, done;
};

struct prefetch {
    struct storage *st;
    uint64_t max_file;
    size_t budget, used;
    pthread_mutex_t lock;
    pthread_cond_t cond_work, cond_done;
    struct pf_slot slots[PF_SLOTS];
    size_t head, count, next; /* next: the first slot no worker took yet (relative) */
    bool closing;
    pthread_t *threads;
    int nthreads;
};

/* One file, whole, into its slot. */
static void fetch(struct prefetch *pf, struct pf_slot *s)
{
    struct storage_reader *rd = NULL;
    struct err e;
    err_clear(&e);
    memset(&s->ent, 0, sizeof(s->ent));
    s->ent.mtime_ns = STORAGE_MTIME_UNKNOWN;
    int r = storage_read_open(pf->st, s->key, 0, -1, &rd, &s->ent, &e);
    if (r) {
        s->open_code = r;
        s->err = e;
        return;
    }
    size_t cap = (size_t)s->size + 1; /* one more shows that it grew */
    s->data = malloc(cap ? cap : 1);
    if (!s->data) {
        s->read_code = err_set(&s->err, ERR_NOMEM, "out of memory reading '%s'", s->key);
        storage_read_close(rd);
        return;
    }
    while (s->len < cap) {
        size_t got = 0, want = cap - s->len < PF_BLOCK ? cap - s->len : PF_BLOCK;
        if ((r = storage_read(rd, s->data + s->len, want, &got, &e)) != 0) {
            s->read_code = r;
            s->err = e;
            break;
        }
        if (got == 0)
            break;
        s->len += got;
    }
    storage_read_close(rd);
}

static void *worker(void *arg)
{
    struct prefetch *pf = arg;
    pthread_mutex_lock(&pf->lock);
    for (;;) {
        while (!pf->closing && pf->next >= pf->count)
            pthread_cond_wait(&pf->cond_work, &pf->lock);
        if (pf->closing)
            break;
        struct pf_slot *s = &pf->slots[(pf->head + pf->next++) % PF_SLOTS];
        s->taken = true;
        pthread_mutex_unlock(&pf->lock);
        fetch(pf, s);
        pthread_mutex_lock(&pf->lock);
        s->done = true;
        pthread_cond_broadcast(&pf->cond_done);
    }
    pthread_mutex_unlock(&pf->lock);
    return NULL;
}

struct prefetch *prefetch_new(struct storage *st, int threads, uint64_t max_file, size_t budget)
{
    struct prefetch *pf = calloc(1, sizeof(*pf));
    if (!pf)
        return NULL;
    pf->st = st;
    pf->max_file = max_file;
    pf->budget = budget;
    pthread_mutex_init(&pf->lock, NULL);
    pthread_cond_init(&pf->cond_work, NULL);
    pthread_cond_init(&pf->cond_done, NULL);
    pf->threads = calloc((size_t)(threads > 0 ? threads : 1), sizeof(*pf->threads));
    if (!pf->threads) {
        prefetch_free(pf);
        return NULL;
    }
    for (int i = 0; i < (threads > 0 ? threads : 1); i++) {
        if (pthread_create(&pf->threads[i], NULL, worker, pf) != 0)
            break;
        pf->nthreads = i + 1;
    }
    if (!pf->nthreads) {
        prefetch_free(pf);
        return NULL;
    }
    return pf;
}

bool prefetch_want(struct prefetch *pf, const char *key, uint64_t size)
{
    if (size > pf->max_file)
        return false;
    pthread_mutex_lock(&pf->lock);
    bool ok = pf->count < PF_SLOTS && pf->used + size + 1 <= pf->budget;
    char *k = ok ? strdup(key) : NULL;
    if (k) {
        struct pf_slot *s = &pf->slots[(pf->head + pf->count++) % PF_SLOTS];
        memset(s, 0, sizeof(*s));
        s->key = k;
        s->size = size;
        pf->used += size + 1;
        pthread_cond_signal(&pf->cond_work);
    }
    pthread_mutex_unlock(&pf->lock);
    return k != NULL;
}

/* A reader over a fetched slot (owned by it). */
struct pf_reader {
    struct pf_slot s;
    size_t pos;
};

static int pfr_read(void *state, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct pf_reader *r = state;
    size_t n = r->s.len - r->pos < cap ? r->s.len - r->pos : cap;
    if (n) {
        memcpy(buf, r->s.data + r->pos, n);
        r->pos += n;
        *got = n;
        return 0;
    }
    *got = 0;
    if (r->s.read_code) {
        *e = r->s.err;
        return r->s.read_code;
    }
    return 0;
}

static void pfr_close(void *state)
{
    struct pf_reader *r = state;
    free(r->s.data);
    free(r->s.key);
    free(r);
}

static const struct storage_reader_ops pfr_ops = {pfr_read, pfr_close};

int prefetch_open(struct prefetch *pf, const char *key, struct storage_reader **rd,
                  struct storage_entry *ent, struct err *e)
{
    *rd = NULL;
    pthread_mutex_lock(&pf->lock);
    if (!pf->count || strcmp(pf->slots[pf->head].key, key) != 0) {
        pthread_mutex_unlock(&pf->lock);
        return err_set(e, ERR_INTERNAL, "'%s' was not the next file asked for", key);
    }
    struct pf_slot *s = &pf->slots[pf->head];
    while (!s->done)
        pthread_cond_wait(&pf->cond_done, &pf->lock);
    struct pf_reader *r = malloc(sizeof(*r));
    if (r) {
        r->s = *s;
        r->pos = 0;
        pf->used -= s->size + 1;
        pf->head = (pf->head + 1) % PF_SLOTS;
        pf->count--;
        pf->next--;
    }
    pthread_mutex_unlock(&pf->lock);
    if (!r)
        return err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
    if (ent)
        *ent = r->s.ent;
    else
        storage_entry_clear(&r->s.ent);
    memset(&r->s.ent, 0, sizeof(r->s.ent));
    if (r->s.open_code) {
        int code = r->s.open_code;
        *e = r->s.err;
        pfr_close(r);
        return code;
    }
    int rc = storage_reader_new(pf->st, &pfr_ops, r, rd, e);
    if (rc)
        pfr_close(r);
    return rc;
}

void prefetch_free(struct prefetch *pf)
{
    if (!pf)
        return;
    pthread_mutex_lock(&pf->lock);
    pf->closing = true;
    pthread_cond_broadcast(&pf->cond_work);
    pthread_mutex_unlock(&pf->lock);
    for (int i = 0; i < pf->nthreads; i++)
        pthread_join(pf->threads[i], NULL);
    while (pf->count) {
        struct pf_slot *s = &pf->slots[pf->head];
        free(s->key);
        free(s->data);
        storage_entry_clear(&s->ent);
        pf->head = (pf->head + 1) % PF_SLOTS;
        pf->count--;
    }
    pthread_mutex_destroy(&pf->lock);
    pthread_cond_destroy(&pf->cond_work);
    pthread_cond_destroy(&pf->cond_done);
    free(pf->threads);
    free(pf);
}
