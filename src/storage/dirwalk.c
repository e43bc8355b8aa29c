/*
 * dirwalk.c - see dirwalk.h.
 */
#include "storage/dirwalk.h"

#include "core/buf.h"
#include "core/cancel.h"
#include "core/log.h"
#include "storage/storage_internal.h"

#include <stdlib.h>
#include <string.h>

/* One entry of a loaded directory; strings live in the level's block. */
struct dw_ent {
    size_t name_off;
    size_t target_off; /* SIZE_MAX: none */
    uint64_t size;
    int64_t mtime_ns;
    uint32_t mode;
    unsigned char kind;
};

struct dw_level {
    struct dw_ent *ents;
    size_t n, cap, next;
    struct buf strs;
    size_t path_len; /* length of w->path while this level is on top */
};

struct dirwalk {
    struct storage *st;
    const struct dirwalk_ops *ops;
    void *ctx;
    struct dw_level *levels;
    size_t depth, cap;
    struct buf path;    /* key prefix of the top directory: "", "a/", "a/b/" */
    const char *filter; /* names of the first level must start with this */
    char *prefix;       /* owned; filter points into it */
};

/* While a directory is read: the level being filled and its filter. */
struct dw_acc {
    struct dw_level *lv;
    const char *filter;
    size_t flen;
};

static int dw_add(void *arg, const struct dirwalk_ent *de)
{
    struct dw_acc *acc = arg;
    struct dw_level *lv = acc->lv;
    const char *nm = de->name;

    if (!nm[0] || (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))))
        return 0;
    if (strchr(nm, '/'))
        return 0; /* cannot be a key segment; a hostile server */
    if (acc->flen && strncmp(nm, acc->filter, acc->flen) != 0)
        return 0;
    if (storage_is_temp_name(nm))
        return 0;
    if (lv->n == lv->cap) {
        size_t ncap = lv->cap ? lv->cap * 2 : 64;
        struct dw_ent *ne = realloc(lv->ents, ncap * sizeof(*ne));
        if (!ne)
            return ERR_NOMEM;
        lv->ents = ne;
        lv->cap = ncap;
    }
    struct dw_ent *d = &lv->ents[lv->n];
    d->name_off = lv->strs.len;
    d->target_off = SIZE_MAX;
    d->size = de->kind == DIRWALK_DIR ? 0 : de->size;
    d->mtime_ns = de->mtime_ns;
    d->mode = de->mode;
    d->kind = (unsigned char)de->kind;
    if (buf_append(&lv->strs, nm, strlen(nm) + 1))
        return ERR_NOMEM;
    if (de->kind == DIRWALK_LINK && de->link_target) {
        d->target_off = lv->strs.len;
        if (buf_append(&lv->strs, de->link_target, strlen(de->link_target) + 1))
            return ERR_NOMEM;
    }
    lv->n++;
    return 0;
}

/* Byte order of the names, a directory counting as name + "/". */
static int dw_cmp(const void *a, const void *b, void *arg)
{
    const char *strs = arg;
    const struct dw_ent *x = a;
    const struct dw_ent *y = b;
    const unsigned char *p = (const unsigned char *)strs + x->name_off;
    const unsigned char *q = (const unsigned char *)strs + y->name_off;
    while (*p && *p == *q) {
        p++;
        q++;
    }
    int cp = *p ? *p : (x->kind == DIRWALK_DIR ? '/' : 0);
    int cq = *q ? *q : (y->kind == DIRWALK_DIR ? '/' : 0);
    return cp - cq;
}

static void dw_level_free(struct dw_level *lv)
{
    free(lv->ents);
    buf_release(&lv->strs);
    memset(lv, 0, sizeof(*lv));
}

/* Whole-remote problems end the listing; the rest skip one directory. */
static bool dw_fatal(int code)
{
    return code == ERR_NOMEM || code == ERR_CANCELLED || code == ERR_NET || code == ERR_AUTH ||
           code == ERR_PROTO || code == ERR_TLS || code == ERR_INTERNAL;
}

/* Read directory w->path (+ filter for the first level) into a new level
 * on the stack. */
static int dw_load(struct dirwalk *w, const char *filter, struct err *e)
{
    struct dw_level lv = {0};
    buf_init(&lv.strs, 0);
    struct dw_acc acc = {.lv = &lv, .filter = filter, .flen = strlen(filter)};

    if (cancel_requested()) {
        dw_level_free(&lv);
        return err_set(e, ERR_CANCELLED, "interrupted");
    }
    const char *dir = w->path.data ? w->path.data : "";
    int r = w->ops->read_dir(w->ctx, dir, dw_add, &acc, e);
    if (r) {
        dw_level_free(&lv);
        if (r == ERR_NOMEM && e && !e->msg[0])
            err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(w->st));
        return r;
    }
    if (lv.n)
        qsort_r(lv.ents, lv.n, sizeof(*lv.ents), dw_cmp, lv.strs.data);
    if (w->depth == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 16;
        struct dw_level *nl = realloc(w->levels, ncap * sizeof(*nl));
        if (!nl) {
            dw_level_free(&lv);
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(w->st));
        }
        w->levels = nl;
        w->cap = ncap;
    }
    lv.path_len = w->path.len;
    w->levels[w->depth++] = lv;
    return 0;
}

static void dw_pop(struct dirwalk *w)
{
    dw_level_free(&w->levels[--w->depth]);
    if (w->depth) {
        w->path.len = w->levels[w->depth - 1].path_len;
        w->path.data[w->path.len] = '\0';
    }
}

/* Enter subdirectory `name` of the top level, or report it skipped. */
static int dw_descend(struct dirwalk *w, const char *name, struct err *e)
{
    size_t parent_len = w->path.len;
    struct err why;
    int r;

    if (buf_puts(&w->path, name) || buf_puts(&w->path, "/"))
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(w->st));
    if (w->depth >= DIRWALK_MAX_DEPTH) {
        err_set(&why, ERR_IO,
                "cannot list '%s/%s': more than %d directory levels (a symbolic link loop?)",
                storage_display(w->st), w->path.data, DIRWALK_MAX_DEPTH);
        r = ERR_IO;
    } else {
        err_clear(&why);
        r = dw_load(w, "", &why);
    }
    if (r == 0)
        return 0;
    if (dw_fatal(r)) {
        *e = why;
        e->code = r;
    } else if (r == ERR_NOT_FOUND) {
        r = 0; /* removed while we were listing */
    } else {
        r = storage_list_skipped(w->st, w->path.data, &why, e);
    }
    w->path.len = parent_len;
    w->path.data[parent_len] = '\0';
    return r;
}

int dirwalk_open(struct storage *st, const struct dirwalk_ops *ops, void *ctx, const char *prefix,
                 struct dirwalk **out, struct err *e)
{
    struct dirwalk *w;
    int r;

    *out = NULL;
    r = storage_key_check(prefix, true, e);
    if (r)
        return r;
    w = calloc(1, sizeof(*w));
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(st));
    }
    w->st = st;
    w->ops = ops;
    w->ctx = ctx;
    buf_init(&w->path, 0);
    size_t dlen = storage_prefix_split(prefix);
    w->filter = w->prefix + dlen;
    if (buf_append(&w->path, prefix, dlen) || buf_puts(&w->path, "")) {
        dirwalk_close(w);
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(st));
    }
    r = dw_load(w, w->filter, e);
    if (r == ERR_NOT_FOUND && dlen) {
        /* nothing under this prefix: an empty listing, not an error */
        err_clear(e);
        r = 0;
    }
    if (r) {
        dirwalk_close(w);
        return r;
    }
    *out = w;
    return 0;
}

int dirwalk_next(struct dirwalk *w, struct storage_entry *ent, struct err *e)
{
    while (w->depth) {
        struct dw_level *lv = &w->levels[w->depth - 1];
        if (lv->next == lv->n) {
            dw_pop(w);
            continue;
        }
        struct dw_ent *d = &lv->ents[lv->next++];
        const char *name = lv->strs.data + d->name_off;

        if (d->kind == DIRWALK_DIR) {
            int r = dw_descend(w, name, e);
            if (r)
                return r;
            continue;
        }
        if (d->kind == DIRWALK_OTHER) {
            log_warn("skipping '%s/%s%s': not a regular file, directory or symbolic link",
                     storage_display(w->st), w->path.data, name);
            continue;
        }
        memset(ent, 0, sizeof(*ent));
        if (buf_puts(&w->path, name))
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(w->st));
        ent->key = strdup(w->path.data);
        w->path.len = lv->path_len;
        w->path.data[w->path.len] = '\0';
        if (d->kind == DIRWALK_LINK)
            ent->link_target =
                strdup(d->target_off == SIZE_MAX ? "" : lv->strs.data + d->target_off);
        if (!ent->key || (d->kind == DIRWALK_LINK && !ent->link_target)) {
            storage_entry_clear(ent);
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(w->st));
        }
        ent->type = d->kind == DIRWALK_LINK ? STORAGE_TYPE_SYMLINK : STORAGE_TYPE_FILE;
        ent->size = d->size;
        ent->mtime_ns = d->mtime_ns;
        ent->mode = d->mode;
        return 1;
    }
    return 0;
}

void dirwalk_close(struct dirwalk *w)
{
    if (!w)
        return;
    while (w->depth)
        dw_level_free(&w->levels[--w->depth]);
    free(w->levels);
    buf_release(&w->path);
    free(w->prefix);
    free(w);
}
