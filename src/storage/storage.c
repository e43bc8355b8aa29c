/*
 * storage.c - the generic layer every storage call goes through.
 *
 * Drivers only move bytes; the rules that keep data safe live here, once:
 * listings must strictly increase (a sync that trusted an out-of-order
 * listing would delete live data), errors name the remote, handles are
 * freed on every path, and cancellation is checked between calls.
 */
#include "storage/storage_internal.h"
#include "core/cancel.h"
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct storage_list {
    struct storage *st;
    void *state;
    char *last; /* previous key, owned */
    size_t last_cap;
    bool have_last;
    bool done;
};

struct storage_reader {
    struct storage *st;
    void *state;
    const struct storage_reader_ops *ops; /* NULL: the driver's */
};

struct storage_writer {
    struct storage *st;
    void *state;
    char *key;
};

int64_t storage_mtime_precision(const struct storage *st)
{
    return st->drv->mtime_precision_ns > 0 ? st->drv->mtime_precision_ns : 1;
}

int storage_key_check(const char *key, bool is_prefix, struct err *e)
{
    const char *what = is_prefix ? "prefix" : "key";

    if (!*key) {
        if (is_prefix)
            return 0;
        return err_set(e, ERR_USAGE, "invalid key '': a key cannot be empty");
    }
    if (key[0] == '/')
        return err_set(e, ERR_USAGE, "invalid %s '%s': it must not start with '/'", what, key);
    const char *s = key;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n == 0) {
            if (!slash && is_prefix)
                return 0; /* trailing '/' of a prefix */
            return err_set(e, ERR_USAGE, "invalid %s '%s': it has an empty path segment", what,
                           key);
        }
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return err_set(e, ERR_USAGE,
                           "invalid %s '%s': '.' and '..' segments are not allowed (they could "
                           "reach outside the destination)",
                           what, key);
        if (!slash)
            return 0;
        s = slash + 1;
    }
}

uint64_t storage_random64(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
           atomic_fetch_add(&counter, 1);
}

void storage_temp_name(char *out, size_t cap, const char *base, size_t max_name)
{
    /* ".<base>.arca-tmp-<16 hex>": cut a long base to fit */
    size_t fixed = 1 + (sizeof(STORAGE_TMP_MARK) - 1) + 16;
    size_t room = max_name > fixed ? max_name - fixed : 0;
    size_t blen = strlen(base);
    int bl = (int)(blen < room ? blen : room);
    snprintf(out, cap, ".%.*s" STORAGE_TMP_MARK "%016llx", bl, base,
             (unsigned long long)storage_random64());
}

bool storage_is_temp_name(const char *name)
{
    return name[0] == '.' && strstr(name + 1, STORAGE_TMP_MARK) != NULL;
}

size_t storage_prefix_split(const char *prefix)
{
    const char *slash = strrchr(prefix, '/');
    return slash ? (size_t)(slash - prefix) + 1 : 0;
}

int storage_key_cmp(const char *a, const char *b)
{
    return strcmp(a, b); /* strcmp compares as unsigned char: byte order */
}

void storage_entry_clear(struct storage_entry *ent)
{
    if (!ent)
        return;
    free(ent->key);
    free(ent->link_target);
    memset(ent, 0, sizeof(*ent));
    ent->mtime_ns = STORAGE_MTIME_UNKNOWN;
}

int storage_entry_copy(struct storage_entry *dst, const struct storage_entry *src)
{
    *dst = *src;
    dst->key = NULL;
    dst->link_target = NULL;
    if (src->key && !(dst->key = strdup(src->key)))
        goto nomem;
    if (src->link_target && !(dst->link_target = strdup(src->link_target)))
        goto nomem;
    return 0;
nomem:
    storage_entry_clear(dst);
    return ERR_NOMEM;
}

struct storage *storage_new(const struct storage_driver *drv, const char *display,
                            const char *endpoint_id, void *priv)
{
    struct storage *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->drv = drv;
    st->priv = priv;
    st->display = strdup(display ? display : "");
    st->endpoint_id = strdup(endpoint_id ? endpoint_id : "");
    if (!st->display || !st->endpoint_id) {
        free(st->display);
        free(st->endpoint_id);
        free(st);
        return NULL;
    }
    return st;
}

const char *storage_display(const struct storage *st)
{
    return st->display;
}

unsigned storage_features(const struct storage *st)
{
    unsigned f = st->drv->features;
    if (!st->drv->copy_from)
        f &= ~(unsigned)STORAGE_FEATURE_SERVER_COPY;
    return f;
}

unsigned storage_hashes(const struct storage *st)
{
    return st->drv->hashes;
}

const char *storage_driver_name(const struct storage *st)
{
    return st->drv->name;
}

const char *storage_endpoint_id(const struct storage *st)
{
    return st->endpoint_id;
}

static int check_cancel(struct err *e)
{
    if (cancel_requested())
        return err_set(e, ERR_CANCELLED, "interrupted");
    return 0;
}

int storage_list_open(struct storage *st, const char *prefix, struct storage_list **out,
                      struct err *e)
{
    *out = NULL;
    int r = check_cancel(e);
    if (r)
        return r;
    struct storage_list *l = calloc(1, sizeof(*l));
    if (!l)
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", st->display);
    l->st = st;
    r = st->drv->list_open(st, prefix ? prefix : "", &l->state, e);
    if (r) {
        free(l);
        return r;
    }
    *out = l;
    return 0;
}

int storage_list_next(struct storage_list *l, struct storage_entry *ent, struct err *e)
{
    if (l->done)
        return 0;
    int r = check_cancel(e);
    if (r)
        return r;
    memset(ent, 0, sizeof(*ent));
    ent->mtime_ns = STORAGE_MTIME_UNKNOWN;
    r = l->st->drv->list_next(l->state, ent, e);
    if (r <= 0) {
        if (r == 0)
            l->done = true;
        return r;
    }
    if (l->have_last && storage_key_cmp(l->last, ent->key) >= 0) {
        r = err_set(e, ERR_UNSORTED,
                    "listing of '%s' is not sorted at '%s' (after '%s'); stopping before anything "
                    "is deleted; this server's listing order cannot be trusted",
                    l->st->display, ent->key, l->last);
        storage_entry_clear(ent);
        l->done = true;
        return r;
    }
    size_t n = strlen(ent->key) + 1;
    if (n > l->last_cap) {
        char *p = realloc(l->last, n);
        if (!p) {
            storage_entry_clear(ent);
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", l->st->display);
        }
        l->last = p;
        l->last_cap = n;
    }
    memcpy(l->last, ent->key, n);
    l->have_last = true;
    return 1;
}

void storage_list_close(struct storage_list *l)
{
    if (!l)
        return;
    if (l->state)
        l->st->drv->list_close(l->state);
    free(l->last);
    free(l);
}

int storage_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    memset(ent, 0, sizeof(*ent));
    ent->mtime_ns = STORAGE_MTIME_UNKNOWN;
    int r = check_cancel(e);
    if (r)
        return r;
    return st->drv->stat(st, key, ent, e);
}

int storage_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                      struct storage_reader **out, struct storage_entry *ent, struct err *e)
{
    *out = NULL;
    int r = check_cancel(e);
    if (r)
        return r;
    if ((offset || length >= 0) && !(st->drv->features & STORAGE_FEATURE_RANGE_READ))
        return err_set(e, ERR_INTERNAL, "'%s' cannot read byte ranges", st->display);
    struct storage_reader *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
    rd->st = st;
    if (ent) {
        memset(ent, 0, sizeof(*ent));
        ent->mtime_ns = STORAGE_MTIME_UNKNOWN;
    }
    if (length == 0) {
        /* nothing to read: only check that the key is there (drivers need
         * not handle an empty range; S3 cannot even express one) */
        struct storage_entry tmp;
        r = storage_stat(st, key, ent ? ent : &tmp, e);
        if (!ent && r == 0)
            storage_entry_clear(&tmp);
    } else {
        r = st->drv->read_open(st, key, offset, length, &rd->state, ent, e);
    }
    if (r) {
        free(rd);
        return r;
    }
    *out = rd;
    return 0;
}

int storage_read(struct storage_reader *rd, void *buf, size_t cap, size_t *got, struct err *e)
{
    *got = 0;
    int r = check_cancel(e);
    if (r)
        return r;
    if (!rd->state)
        return 0; /* an empty range */
    if (rd->ops)
        return rd->ops->read(rd->state, buf, cap, got, e);
    return rd->st->drv->read(rd->state, buf, cap, got, e);
}

int storage_reader_new(struct storage *st, const struct storage_reader_ops *ops, void *state,
                       struct storage_reader **out, struct err *e)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return err_set(e, ERR_NOMEM, "out of memory reading from '%s'", st->display);
    (*out)->st = st;
    (*out)->ops = ops;
    (*out)->state = state;
    return 0;
}

void storage_read_close(struct storage_reader *rd)
{
    if (!rd)
        return;
    if (rd->state && rd->ops)
        rd->ops->close(rd->state);
    else if (rd->state)
        rd->st->drv->read_close(rd->state);
    free(rd);
}

int storage_write_open(struct storage *st, const char *key, const struct storage_write_opts *opts,
                       struct storage_writer **out, struct err *e)
{
    *out = NULL;
    int r = check_cancel(e);
    if (r)
        return r;
    struct storage_write_opts defaults = {.size_hint = -1, .mtime_ns = STORAGE_MTIME_UNKNOWN};
    if (!opts)
        opts = &defaults;
    /* a key every driver can store: no "..", ".", empty segments or
     * leading '/' (S3 would take them, and a restore to disk could not) */
    r = storage_key_check(key, false, e);
    if (r)
        return r;
    struct storage_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->key = strdup(key))) {
        free(w);
        return err_set(e, ERR_NOMEM, "out of memory writing '%s'", key);
    }
    w->st = st;
    r = st->drv->write_open(st, key, opts, &w->state, e);
    if (r) {
        free(w->key);
        free(w);
        return r;
    }
    *out = w;
    return 0;
}

int storage_write(struct storage_writer *w, const void *data, size_t len, struct err *e)
{
    int r = check_cancel(e);
    if (r)
        return r;
    return w->st->drv->write(w->state, data, len, e);
}

int storage_write_commit(struct storage_writer *w, struct err *e)
{
    int r = check_cancel(e);
    if (r) {
        storage_write_abort(w);
        return r;
    }
    r = w->st->drv->write_commit(w->state, e);
    free(w->key);
    free(w);
    return r;
}

void storage_write_abort(struct storage_writer *w)
{
    if (!w)
        return;
    if (w->state)
        w->st->drv->write_abort(w->state);
    free(w->key);
    free(w);
}

int storage_remove(struct storage *st, const char *key, struct err *e)
{
    int r = check_cancel(e);
    if (r)
        return r;
    return st->drv->remove(st, key, e);
}

bool storage_can_copy(const struct storage *st)
{
    return st->drv->copy_from != NULL;
}

int storage_copy(struct storage *st, const char *src_key, const struct storage_entry *src,
                 const char *dst_key, struct err *e)
{
    return storage_copy_from(st, dst_key, st, src_key, src, e);
}

int storage_copy_from(struct storage *dst, const char *dst_key, struct storage *src,
                      const char *src_key, const struct storage_entry *src_ent, struct err *e)
{
    int r = check_cancel(e);
    if (r)
        return r;
    if (!dst->drv->copy_from || src->drv != dst->drv ||
        strcmp(src->endpoint_id, dst->endpoint_id) != 0)
        return err_set(e, ERR_INTERNAL, "'%s' cannot copy from '%s' on the server", dst->display,
                       src->display);
    return dst->drv->copy_from(dst, dst_key, src, src_key, src_ent, e);
}

void storage_set_list_error_handler(struct storage *st, storage_list_error_fn fn, void *ctx)
{
    st->on_list_error = fn;
    st->on_list_error_ctx = ctx;
}

size_t storage_list_error_count(const struct storage *st)
{
    return atomic_load(&((struct storage *)st)->list_errors);
}

int storage_list_skipped(struct storage *st, const char *key, const struct err *why, struct err *e)
{
    atomic_fetch_add(&st->list_errors, 1);
    if (!st->on_list_error) {
        log_warn("%s; skipping it, the listing goes on", why->msg);
        return 0;
    }
    int r = st->on_list_error(st->on_list_error_ctx, key, why);
    if (r) {
        r = r < 0 ? r : ERR_INTERNAL;
        if (e) {
            *e = *why;
            e->code = r;
        }
    }
    return r;
}

int storage_check_root(struct storage *st, bool for_write, bool create, struct err *e)
{
    if (!st->drv->check_root)
        return 0;
    return st->drv->check_root(st, for_write, create, e);
}

bool storage_link_inside(const char *key, const char *target)
{
    if (!*target || target[0] == '/')
        return false;
    int depth = 0; /* directories above the link inside the root */
    for (const char *p = key; (p = strchr(p, '/')) != NULL; p++)
        depth++;
    const char *s = target;
    while (*s) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (--depth < 0)
                return false;
        } else if (n && !(n == 1 && s[0] == '.')) {
            depth++;
        }
        s += n;
        while (*s == '/')
            s++;
    }
    return true;
}

int storage_symlink(struct storage *st, const char *key, const char *target, int64_t mtime_ns,
                    struct err *e)
{
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    if (!st->drv->symlink)
        return err_set(e, ERR_USAGE, "'%s' cannot hold symbolic links; '%s' not created",
                       st->display, key);
    if (!storage_link_inside(key, target))
        return err_set(e, ERR_REFUSED, "symbolic link '%s' -> '%s' points outside '%s'; refused",
                       key, target, st->display);
    return st->drv->symlink(st, key, target, mtime_ns, e);
}

int storage_put_bytes(struct storage *st, const char *key, const void *data, size_t len,
                      struct err *e)
{
    struct storage_write_opts o = {.size_hint = (int64_t)len, .mtime_ns = STORAGE_MTIME_UNKNOWN};
    struct storage_writer *w;
    int r = storage_write_open(st, key, &o, &w, e);
    if (r)
        return r;
    if (len && (r = storage_write(w, data, len, e)) != 0) {
        storage_write_abort(w);
        return r;
    }
    return storage_write_commit(w, e);
}

int storage_get_bytes(struct storage *st, const char *key, size_t max, char **out, size_t *len,
                      struct err *e)
{
    struct storage_reader *rd;
    *out = NULL;
    *len = 0;
    int r = storage_read_open(st, key, 0, -1, &rd, NULL, e);
    if (r)
        return r;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) {
            r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
            break;
        }
        if (n + 1 == cap) {
            if (cap > max + 1) {
                r = err_set(e, ERR_PROTO, "'%s' in '%s' is larger than %zu bytes", key, st->display,
                            max);
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                continue;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = 0;
        if ((r = storage_read(rd, b + n, cap - 1 - n, &got, e)) != 0 || got == 0)
            break;
        n += got;
        if (n > max) {
            r = err_set(e, ERR_PROTO, "'%s' in '%s' is larger than %zu bytes", key, st->display,
                        max);
            break;
        }
    }
    storage_read_close(rd);
    if (r) {
        free(b);
        return r;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

int storage_sync(struct storage *st, struct err *e)
{
    if (!st->drv->sync)
        return 0;
    return st->drv->sync(st, e);
}

void storage_close(struct storage *st)
{
    if (!st)
        return;
    if (st->drv->close)
        st->drv->close(st);
    free(st->display);
    free(st->endpoint_id);
    free(st);
}
