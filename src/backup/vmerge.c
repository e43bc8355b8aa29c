/*
 * vmerge.c - several runs' versions/ trees as one stream (see vmerge.h).
 */
#include "backup/vmerge.h"

#include "storage/storage.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vstream {
    struct storage_list *ls;
    struct storage_entry head; /* head.key NULL: ended */
    size_t strip;              /* length of "versions/<k>/" */
};

struct vmerge {
    struct vstream *s;
    size_t n;
};

static int advance(struct vstream *v, struct err *e)
{
    storage_entry_clear(&v->head);
    for (;;) {
        int r = storage_list_next(v->ls, &v->head, e);
        if (r <= 0) {
            storage_entry_clear(&v->head);
            return r;
        }
        if (v->head.type == STORAGE_TYPE_FILE && strlen(v->head.key) > v->strip)
            return 1;
        storage_entry_clear(&v->head);
    }
}

static const char *key_of(const struct vstream *v)
{
    return v->head.key ? v->head.key + v->strip : NULL;
}

void vmerge_close(struct vmerge *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        storage_entry_clear(&m->s[i].head);
        storage_list_close(m->s[i].ls);
    }
    free(m->s);
    free(m);
}

int vmerge_open(struct storage *dst, const catalog_runid *runs, size_t n, struct vmerge **out,
                struct err *e)
{
    *out = NULL;
    struct vmerge *m = calloc(1, sizeof(*m));
    if (!m || (n && !(m->s = calloc(n, sizeof(*m->s))))) {
        free(m);
        return err_set(e, ERR_NOMEM, "out of memory listing versions");
    }
    int r = 0;
    for (size_t i = 0; i < n && !r; i++) {
        char prefix[RUNID_LEN + 16];
        snprintf(prefix, sizeof(prefix), "versions/%s/", runs[i]);
        m->s[i].strip = strlen(prefix);
        r = storage_list_open(dst, prefix, &m->s[i].ls, e);
        if (!r) {
            m->n = i + 1;
            r = advance(&m->s[i], e);
            r = r < 0 ? r : 0;
        }
    }
    if (r) {
        vmerge_close(m);
        return r;
    }
    *out = m;
    return 0;
}

int vmerge_seek(struct vmerge *m, const char *key, const char **path, size_t *run, uint64_t *size,
                struct err *e)
{
    const char *best = NULL;
    size_t bi = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct vstream *v = &m->s[i];
        while (key_of(v) && storage_key_cmp(key_of(v), key) < 0) {
            int r = advance(v, e);
            if (r < 0)
                return r;
        }
        /* strictly smaller only: on a tie the earlier run wins */
        if (key_of(v) && (!best || storage_key_cmp(key_of(v), best) < 0)) {
            best = key_of(v);
            bi = i;
        }
    }
    if (!best)
        return 0;
    *path = best;
    *run = bi;
    *size = m->s[bi].head.size;
    return 1;
}

size_t vmerge_holders(struct vmerge *m, const char *path, size_t *idx)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (key_of(&m->s[i]) && !strcmp(key_of(&m->s[i]), path))
            idx[k++] = i;
    return k;
}
