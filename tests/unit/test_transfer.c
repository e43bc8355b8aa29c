/*
 * test_transfer.c - copy, sync and check (src/engine/transfer.h).
 *
 * Two kinds of storage are used: the real local driver on mkdtemp
 * directories (results checked with stdio and OpenSSL, not through arca),
 * and an in-memory driver defined here that can behave like S3 (md5 in the
 * listing for small objects, listing mtime = upload time, true mtime only
 * from stat), yield an unsorted listing, fail or grow a file while it is
 * read, request cancellation, copy on the "server", and generate huge
 * listings lazily for the memory-boundedness test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/cancel.h"
#include "core/error.h"
#include "core/event.h"
#include "core/log.h"
#include "engine/transfer.h"
#include "io/filter.h"
#include "io/ratelimit.h"
#include "storage/local/local.h"
#include "storage/storage.h"
#include "storage/storage_internal.h"

#define SEC ((int64_t)1000000000)
#define BASE_MTIME ((int64_t)1700000000 * SEC)

/* ======================================================================
 * The in-memory driver
 * ====================================================================== */

struct mobj {
    char *key;
    unsigned char *data;
    size_t len;
    int64_t mtime;    /* the true mtime (what stat reports) */
    int64_t uploaded; /* s3-like: what the listing reports */
    bool symlink;
};

struct mem {
    pthread_mutex_t lock;
    struct mobj *o;
    size_t n, cap;
    bool s3; /* listing: md5 if len <= md5_max, mtime = upload time */
    size_t md5_max;
    bool unsorted; /* listing yields the 2nd and 3rd object swapped */
    char fail_read[64];
    int fail_code; /* the 2nd read call of fail_read fails with this */
    char grow[64]; /* reads of this key yield one byte more than listed */
    char cancel_on[64];
    unsigned read_delay_us;
    size_t read_chunk;
    uint64_t synth_n;      /* > 0: a generated listing of synth_n keys */
    unsigned synth_mod;    /* only keys i with i % synth_mod == 0 (0: all) */
    unsigned synth_no_md5; /* every synth_no_md5-th key lists no md5 (0: none) */
    _Atomic uint64_t stats, opens, commits, aborts, removes, copies, writes_open, synth_written;
    _Atomic int64_t upload_clock;
};

static const unsigned char synth_data[16] = "synthetic-data!!";

/* peak heap sampled during generated listings */
static _Atomic size_t heap_peak;

static size_t heap_now(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char d[16];
    hash_md5_raw(data, len, d);
    hex_encode(d, 16, out);
}

/* first index whose key is >= key (or > key when after) */
static size_t mem_lower(const struct mem *m, const char *key, bool after)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(m->o[mid].key, key);
        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct mobj *mem_find(struct mem *m, const char *key)
{
    size_t i = mem_lower(m, key, false);
    return i < m->n && !strcmp(m->o[i].key, key) ? &m->o[i] : NULL;
}

/* Insert or replace (takes data). Caller holds the lock. */
static void mem_store(struct mem *m, const char *key, unsigned char *data, size_t len,
                      int64_t mtime, bool symlink)
{
    struct mobj *o = mem_find(m, key);
    if (!o) {
        if (m->n == m->cap) {
            m->cap = m->cap ? 2 * m->cap : 16;
            m->o = realloc(m->o, m->cap * sizeof(*m->o));
            assert_non_null(m->o);
        }
        size_t i = mem_lower(m, key, false);
        memmove(&m->o[i + 1], &m->o[i], (m->n - i) * sizeof(*m->o));
        m->n++;
        o = &m->o[i];
        memset(o, 0, sizeof(*o));
        o->key = strdup(key);
    } else {
        free(o->data);
    }
    o->data = data;
    o->len = len;
    o->mtime = mtime;
    o->uploaded = BASE_MTIME + 1000 * SEC + atomic_fetch_add(&m->upload_clock, SEC);
    o->symlink = symlink;
}

static void mem_put(struct mem *m, const char *key, const char *text, int64_t mtime)
{
    size_t len = strlen(text);
    unsigned char *d = malloc(len + 1);
    memcpy(d, text, len + 1);
    pthread_mutex_lock(&m->lock);
    mem_store(m, key, d, len, mtime, false);
    pthread_mutex_unlock(&m->lock);
}

static void fill_entry(const struct mem *m, const struct mobj *o, struct storage_entry *ent,
                       bool for_list)
{
    ent->key = strdup(o->key);
    ent->type = o->symlink ? STORAGE_TYPE_SYMLINK : STORAGE_TYPE_FILE;
    ent->size = o->len;
    ent->mtime_ns = m->s3 && for_list ? o->uploaded : o->mtime;
    if (o->symlink)
        ent->link_target = strdup((const char *)o->data);
    if (m->s3 && o->len <= m->md5_max)
        md5_hex(o->data, o->len, ent->md5);
}

struct mlist {
    struct mem *m;
    char *last;
    uint64_t i;
};

static int mem_list_open(struct storage *st, const char *prefix, void **state, struct err *e)
{
    (void)prefix;
    (void)e;
    struct mlist *l = calloc(1, sizeof(*l));
    l->m = st->priv;
    *state = l;
    return 0;
}

static int mem_list_next(void *state, struct storage_entry *ent, struct err *e)
{
    (void)e;
    struct mlist *l = state;
    struct mem *m = l->m;
    if (m->synth_n) {
        for (; l->i < m->synth_n; l->i++)
            if (!m->synth_mod || l->i % m->synth_mod == 0)
                break;
        if (l->i >= m->synth_n)
            return 0;
        if (l->i % 1024 == 0) {
            size_t now = heap_now(), peak = atomic_load(&heap_peak);
            while (now > peak && !atomic_compare_exchange_weak(&heap_peak, &peak, now))
                ;
        }
        char key[32];
        snprintf(key, sizeof(key), "s%09" PRIu64, l->i);
        ent->key = strdup(key);
        ent->type = STORAGE_TYPE_FILE;
        ent->size = sizeof(synth_data);
        ent->mtime_ns = BASE_MTIME;
        if (!m->synth_no_md5 || l->i % m->synth_no_md5 != 0)
            md5_hex(synth_data, sizeof(synth_data), ent->md5);
        l->i++;
        return 1;
    }
    pthread_mutex_lock(&m->lock);
    size_t idx;
    if (m->unsorted) {
        idx = (size_t)l->i++;
        if (idx == 1 || idx == 2)
            idx = 3 - idx;
    } else {
        /* key-based like S3's start-after: writes during a listing are safe */
        idx = l->last ? mem_lower(m, l->last, true) : 0;
    }
    if (idx >= m->n) {
        pthread_mutex_unlock(&m->lock);
        return 0;
    }
    fill_entry(m, &m->o[idx], ent, true);
    free(l->last);
    l->last = strdup(m->o[idx].key);
    pthread_mutex_unlock(&m->lock);
    return 1;
}

static void mem_list_close(void *state)
{
    struct mlist *l = state;
    free(l->last);
    free(l);
}

static int mem_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    struct mem *m = st->priv;
    atomic_fetch_add(&m->stats, 1);
    pthread_mutex_lock(&m->lock);
    struct mobj *o = mem_find(m, key);
    if (o)
        fill_entry(m, o, ent, false);
    pthread_mutex_unlock(&m->lock);
    return o ? 0 : err_set(e, ERR_NOT_FOUND, "'%s' not found", key);
}

struct mreader {
    struct mem *m;
    unsigned char *data;
    size_t len, pos;
    int fail_code;
    int calls;
};

static int mem_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                         void **state, struct storage_entry *ent, struct err *e)
{
    (void)offset;
    (void)length;
    struct mem *m = st->priv;
    struct mreader *r = calloc(1, sizeof(*r));
    r->m = m;
    atomic_fetch_add(&m->opens, 1);
    if (m->synth_n) {
        r->data = malloc(sizeof(synth_data));
        memcpy(r->data, synth_data, sizeof(synth_data));
        r->len = sizeof(synth_data);
        *state = r;
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    struct mobj *o = mem_find(m, key);
    if (!o) {
        pthread_mutex_unlock(&m->lock);
        free(r);
        return err_set(e, ERR_NOT_FOUND, "'%s' not found", key);
    }
    bool grow = !strcmp(key, m->grow);
    r->len = o->len + (grow ? 1 : 0);
    r->data = malloc(r->len + 1);
    memcpy(r->data, o->data, o->len);
    if (grow)
        r->data[o->len] = '+';
    if (ent)
        fill_entry(m, o, ent, false);
    if (!strcmp(key, m->fail_read))
        r->fail_code = m->fail_code;
    bool cancel = !strcmp(key, m->cancel_on);
    pthread_mutex_unlock(&m->lock);
    if (cancel)
        cancel_request();
    *state = r;
    return 0;
}

static int mem_read(void *state, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct mreader *r = state;
    if (r->m->read_delay_us)
        usleep(r->m->read_delay_us);
    if (r->fail_code && ++r->calls == 2)
        return err_set(e, r->fail_code, "simulated failure reading from memory");
    size_t n = r->len - r->pos;
    if (n > cap)
        n = cap;
    if (r->m->read_chunk && n > r->m->read_chunk)
        n = r->m->read_chunk;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    *got = n;
    return 0;
}

static void mem_read_close(void *state)
{
    struct mreader *r = state;
    free(r->data);
    free(r);
}

struct mwriter {
    struct mem *m;
    char *key;
    unsigned char *data;
    size_t len, cap;
    int64_t mtime;
};

static int mem_write_open(struct storage *st, const char *key, const struct storage_write_opts *o,
                          void **state, struct err *e)
{
    (void)e;
    struct mem *m = st->priv;
    struct mwriter *w = calloc(1, sizeof(*w));
    w->m = m;
    w->key = strdup(key);
    w->mtime = o->mtime_ns;
    atomic_fetch_add(&m->writes_open, 1);
    *state = w;
    return 0;
}

static int mem_write(void *state, const void *data, size_t len, struct err *e)
{
    (void)e;
    struct mwriter *w = state;
    if (w->m->synth_n)
        return 0;
    if (w->len + len + 1 > w->cap) {
        w->cap = (w->len + len) * 2 + 1;
        w->data = realloc(w->data, w->cap);
    }
    memcpy(w->data + w->len, data, len);
    w->len += len;
    w->data[w->len] = '\0'; /* tests compare contents as strings */
    return 0;
}

static void mwriter_free(struct mwriter *w)
{
    atomic_fetch_sub(&w->m->writes_open, 1);
    free(w->key);
    free(w->data);
    free(w);
}

static int mem_write_commit(void *state, struct err *e)
{
    (void)e;
    struct mwriter *w = state;
    struct mem *m = w->m;
    atomic_fetch_add(&m->commits, 1);
    if (m->synth_n) {
        atomic_fetch_add(&m->synth_written, 1);
    } else {
        pthread_mutex_lock(&m->lock);
        mem_store(m, w->key, w->data ? w->data : calloc(1, 1), w->len, w->mtime, false);
        pthread_mutex_unlock(&m->lock);
        w->data = NULL;
    }
    mwriter_free(w);
    return 0;
}

static void mem_write_abort(void *state)
{
    struct mwriter *w = state;
    atomic_fetch_add(&w->m->aborts, 1);
    mwriter_free(w);
}

static int mem_remove(struct storage *st, const char *key, struct err *e)
{
    struct mem *m = st->priv;
    atomic_fetch_add(&m->removes, 1);
    if (m->synth_n)
        return 0;
    pthread_mutex_lock(&m->lock);
    struct mobj *o = mem_find(m, key);
    if (o) {
        size_t i = (size_t)(o - m->o);
        free(o->key);
        free(o->data);
        memmove(&m->o[i], &m->o[i + 1], (m->n - i - 1) * sizeof(*m->o));
        m->n--;
    }
    pthread_mutex_unlock(&m->lock);
    return o ? 0 : err_set(e, ERR_NOT_FOUND, "'%s' not found", key);
}

static int mem_copy_from(struct storage *dst, const char *dst_key, struct storage *src,
                         const char *src_key, const struct storage_entry *src_ent, struct err *e)
{
    (void)src_ent;
    struct mem *ms = src->priv, *md = dst->priv;
    pthread_mutex_lock(&ms->lock);
    struct mobj *o = mem_find(ms, src_key);
    unsigned char *copy = NULL;
    size_t len = 0;
    int64_t mtime = 0;
    if (o) {
        len = o->len;
        mtime = o->mtime;
        copy = malloc(len + 1);
        memcpy(copy, o->data, len);
        copy[len] = '\0';
    }
    pthread_mutex_unlock(&ms->lock);
    if (!o)
        return err_set(e, ERR_NOT_FOUND, "'%s' not found", src_key);
    atomic_fetch_add(&md->copies, 1);
    pthread_mutex_lock(&md->lock);
    mem_store(md, dst_key, copy, len, mtime, false);
    pthread_mutex_unlock(&md->lock);
    return 0;
}

static void mem_close(struct storage *st)
{
    struct mem *m = st->priv;
    for (size_t i = 0; i < m->n; i++) {
        free(m->o[i].key);
        free(m->o[i].data);
    }
    free(m->o);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

#define MEM_DRIVER_COMMON                                                                          \
    .version = STORAGE_DRIVER_VERSION, .list_open = mem_list_open, .list_next = mem_list_next,     \
    .list_close = mem_list_close, .stat = mem_stat, .read_open = mem_read_open, .read = mem_read,  \
    .read_close = mem_read_close, .write_open = mem_write_open, .write = mem_write,                \
    .write_commit = mem_write_commit, .write_abort = mem_write_abort, .remove = mem_remove,        \
    .copy_from = mem_copy_from, .close = mem_close

/* like a filesystem: true mtimes in the listing */
static const struct storage_driver mem_posix_driver = {
    MEM_DRIVER_COMMON,
    .name = "mem",
    .features = STORAGE_FEATURE_SERVER_COPY | STORAGE_FEATURE_MTIME | STORAGE_FEATURE_LIST_MTIME |
                STORAGE_FEATURE_SYMLINK,
    .hashes = 0,
};

/* like S3: md5 in the listing for small objects, upload time as listing mtime */
static const struct storage_driver mem_s3_driver = {
    MEM_DRIVER_COMMON,
    .name = "mems3",
    .features = STORAGE_FEATURE_SERVER_COPY | STORAGE_FEATURE_MTIME,
    .hashes = STORAGE_HASH_MD5,
};

static struct storage *mem_open(const char *display, const char *endpoint, bool s3,
                                struct mem **out)
{
    struct mem *m = calloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->s3 = s3;
    m->md5_max = SIZE_MAX;
    struct storage *st = storage_new(s3 ? &mem_s3_driver : &mem_posix_driver, display, endpoint, m);
    assert_non_null(st);
    *out = m;
    return st;
}

static struct mobj *mem_get(struct mem *m, const char *key)
{
    pthread_mutex_lock(&m->lock);
    struct mobj *o = mem_find(m, key);
    pthread_mutex_unlock(&m->lock);
    return o;
}

/* ======================================================================
 * Local directories
 * ====================================================================== */

struct tdir {
    char path[64];
    struct storage *st;
};

static void tdir_make(struct tdir *t, const char *display)
{
    snprintf(t->path, sizeof(t->path), "/tmp/arca-transfer-XXXXXX");
    assert_non_null(mkdtemp(t->path));
    struct err e;
    assert_int_equal(local_storage_open(t->path, display, &t->st, &e), 0);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tdir_free(struct tdir *t)
{
    storage_close(t->st);
    nftw(t->path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void mkdirs_for(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
}

static void put_bytes(const struct tdir *t, const char *rel, const void *data, size_t len,
                      int64_t mtime)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", t->path, rel);
    mkdirs_for(p);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    struct timespec ts[2] = {{(time_t)(mtime / SEC), (long)(mtime % SEC)},
                             {(time_t)(mtime / SEC), (long)(mtime % SEC)}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void put_file(const struct tdir *t, const char *rel, const char *text, int64_t mtime)
{
    put_bytes(t, rel, text, strlen(text), mtime);
}

/* whole file, NUL-terminated, or NULL when absent; *len gets the size */
static char *slurp(const struct tdir *t, const char *rel, size_t *len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", t->path, rel);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    struct stat sb;
    assert_int_equal(fstat(fileno(f), &sb), 0);
    char *d = malloc((size_t)sb.st_size + 1);
    size_t n = fread(d, 1, (size_t)sb.st_size, f);
    fclose(f);
    assert_int_equal(n, (size_t)sb.st_size);
    d[n] = '\0';
    if (len)
        *len = n;
    return d;
}

static bool exists(const struct tdir *t, const char *rel)
{
    char p[512];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", t->path, rel);
    return lstat(p, &sb) == 0;
}

/* A snapshot of a tree independent of arca: "path size mtime sha256" lines. */
static char snap_buf[1 << 16];
static size_t snap_len;
static size_t snap_root_len;
static int tmp_leftovers;

static int snap_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (strstr(p, ".arca-tmp-"))
        tmp_leftovers++;
    if (flag != FTW_F && flag != FTW_SL)
        return 0;
    char sha[65] = "-";
    if (flag == FTW_F) {
        FILE *f = fopen(p, "rb");
        assert_non_null(f);
        char *d = malloc((size_t)sb->st_size + 1);
        size_t n = fread(d, 1, (size_t)sb->st_size, f);
        fclose(f);
        hash_sha256_hex(d, n, sha);
        free(d);
    }
    snap_len +=
        (size_t)snprintf(snap_buf + snap_len, sizeof(snap_buf) - snap_len,
                         "%s %lld %lld.%09ld %s\n", p + snap_root_len, (long long)sb->st_size,
                         (long long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec, sha);
    assert_true(snap_len < sizeof(snap_buf));
    return 0;
}

/* malloc'ed snapshot; nftw walks in directory order, which is stable for an
 * unchanged tree */
static char *snapshot(const struct tdir *t)
{
    snap_len = 0;
    snap_buf[0] = '\0';
    tmp_leftovers = 0;
    snap_root_len = strlen(t->path);
    assert_int_equal(nftw(t->path, snap_one, 16, FTW_PHYS), 0);
    return strdup(snap_buf);
}

static int leftovers(const struct tdir *t)
{
    free(snapshot(t));
    return tmp_leftovers;
}

/* ======================================================================
 * Events
 * ====================================================================== */

struct evlog {
    char **lines;
    size_t n, cap;
};

/* the event layer calls sinks under its own lock */
static void ev_sink(const char *line, void *ctx)
{
    struct evlog *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->lines = realloc(l->lines, l->cap * sizeof(*l->lines));
    }
    l->lines[l->n++] = strdup(line);
}

static void ev_free(struct evlog *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->lines[i]);
    free(l->lines);
    memset(l, 0, sizeof(*l));
}

static json_t *ev_parse(const struct evlog *l, size_t i)
{
    json_error_t je;
    json_t *o = json_loads(l->lines[i], 0, &je);
    if (!o)
        fail_msg("event %zu is not JSON (%s): %s", i, je.text, l->lines[i]);
    return o;
}

/* Number of file events for path (NULL: any) with action (NULL: any). */
static size_t ev_count(const struct evlog *l, const char *path, const char *action)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        json_t *o = ev_parse(l, i);
        const char *type = json_string_value(json_object_get(o, "type"));
        if (type && !strcmp(type, "file")) {
            const char *p = json_string_value(json_object_get(o, "path"));
            const char *a = json_string_value(json_object_get(o, "action"));
            if ((!path || (p && !strcmp(p, path))) && (!action || (a && !strcmp(a, action))))
                n++;
        }
        json_decref(o);
    }
    return n;
}

/* The summary: must be the last event and the only one. Caller decrefs. */
static json_t *ev_summary(const struct evlog *l)
{
    assert_true(l->n > 0);
    size_t summaries = 0;
    for (size_t i = 0; i < l->n; i++) {
        json_t *o = ev_parse(l, i);
        if (!strcmp(json_string_value(json_object_get(o, "type")), "summary"))
            summaries++;
        json_decref(o);
    }
    assert_int_equal(summaries, 1);
    json_t *s = ev_parse(l, l->n - 1);
    assert_string_equal(json_string_value(json_object_get(s, "type")), "summary");
    return s;
}

static const char *ev_summary_status(const struct evlog *l, char *out, size_t cap)
{
    json_t *s = ev_summary(l);
    snprintf(out, cap, "%s", json_string_value(json_object_get(s, "status")));
    json_decref(s);
    return out;
}

/* ======================================================================
 * Common set-up
 * ====================================================================== */

struct run_ctx {
    struct transfer_opts o;
    struct event_emitter em;
    struct evlog log;
    struct transfer_result res;
    struct err e;
};

static void ctx_init(struct run_ctx *c)
{
    memset(c, 0, sizeof(*c));
    transfer_opts_init(&c->o);
    c->em.sink = ev_sink;
    c->em.ctx = &c->log;
    c->o.events = &c->em;
    cancel_reset();
}

static void ctx_reset_log(struct run_ctx *c)
{
    ev_free(&c->log);
    memset(&c->res, 0, sizeof(c->res));
    err_clear(&c->e);
}

static void quiet_log(const char *line, void *ctx)
{
    (void)line;
    (void)ctx;
}

static int group_setup(void **state)
{
    (void)state;
    log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
    log_set_sink(quiet_log, NULL);
    umask(022);
    return 0;
}

/* a small tree: 4 files, one of 3 MiB + 17 bytes (several blocks) */
static size_t big_len = 3 * 1024 * 1024 + 17;

static void make_tree(const struct tdir *t)
{
    put_file(t, "a.txt", "alpha\n", BASE_MTIME);
    put_file(t, "dir/b.txt", "bravo bravo\n", BASE_MTIME + SEC);
    put_file(t, "dir/empty", "", BASE_MTIME + 2 * SEC);
    unsigned char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    put_bytes(t, "dir/sub/big.bin", big, big_len, BASE_MTIME + 3 * SEC + 123456789);
    free(big);
}

static void assert_same_file(const struct tdir *a, const struct tdir *b, const char *rel)
{
    size_t la = 0, lb = 0;
    char *da = slurp(a, rel, &la), *db = slurp(b, rel, &lb);
    assert_non_null(da);
    if (!db)
        fail_msg("'%s' missing at the destination", rel);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(da);
    free(db);
}

/* ======================================================================
 * Tests
 * ====================================================================== */

static void test_copy_new_tree_then_unchanged(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src:");
    tdir_make(&dst, "dst:");
    make_tree(&src);
    c.o.block_size = 64 * 1024;
    c.o.report_sha256 = true;

    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.files_transferred, 4);
    assert_int_equal(c.res.bytes_transferred, 6 + 12 + 0 + big_len);
    assert_int_equal(c.res.files_failed, 0);
    assert_int_equal(c.res.files_unchanged, 0);
    assert_same_file(&src, &dst, "a.txt");
    assert_same_file(&src, &dst, "dir/b.txt");
    assert_same_file(&src, &dst, "dir/empty");
    assert_same_file(&src, &dst, "dir/sub/big.bin");
    assert_int_equal(ev_count(&c.log, NULL, "copied"), 4);
    assert_int_equal(leftovers(&dst), 0);

    /* the sha256 of the copied events is the content's */
    char want[65];
    size_t len;
    char *d = slurp(&src, "dir/sub/big.bin", &len);
    hash_sha256_hex(d, len, want);
    free(d);
    bool seen = false;
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        const char *p = json_string_value(json_object_get(o, "path"));
        if (p && !strcmp(p, "dir/sub/big.bin")) {
            assert_string_equal(json_string_value(json_object_get(o, "sha256")), want);
            seen = true;
        }
        json_decref(o);
    }
    assert_true(seen);

    /* mtimes are kept */
    struct stat sb;
    char p[512];
    snprintf(p, sizeof(p), "%s/dir/sub/big.bin", dst.path);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal((int64_t)sb.st_mtim.tv_sec * SEC + sb.st_mtim.tv_nsec,
                     BASE_MTIME + 3 * SEC + 123456789);

    /* second run: nothing to do, and the summary says so */
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.files_transferred, 0);
    assert_int_equal(c.res.bytes_transferred, 0);
    assert_int_equal(c.res.files_unchanged, 4);
    assert_int_equal(c.res.files_checked, 4);
    assert_int_equal(ev_count(&c.log, NULL, "unchanged"), 4);
    json_t *s = ev_summary(&c.log);
    assert_string_equal(json_string_value(json_object_get(s, "command")), "copy");
    assert_string_equal(json_string_value(json_object_get(s, "source")), "src:");
    assert_string_equal(json_string_value(json_object_get(s, "destination")), "dst:");
    assert_int_equal(json_integer_value(json_object_get(s, "files_unchanged")), 4);
    assert_int_equal(json_integer_value(json_object_get(s, "bytes_transferred")), 0);
    assert_true(json_is_null(json_object_get(s, "error")));
    json_decref(s);

    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_same_size_new_mtime_is_recopied(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    put_file(&src, "a.txt", "version-1", BASE_MTIME);
    put_file(&src, "b.txt", "constant", BASE_MTIME);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 2);

    put_file(&src, "a.txt", "version-2", BASE_MTIME + 5 * SEC);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 1);
    assert_int_equal(c.res.files_unchanged, 1);
    assert_int_equal(ev_count(&c.log, "a.txt", "updated"), 1);
    assert_int_equal(ev_count(&c.log, "b.txt", "unchanged"), 1);
    char *d = slurp(&dst, "a.txt", NULL);
    assert_string_equal(d, "version-2");
    free(d);

    /* a sub-millisecond difference counts as equal */
    put_file(&src, "b.txt", "constant", BASE_MTIME + 400000);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 0);
    assert_int_equal(c.res.files_unchanged, 2);

    /* --checksum finds a change that size and mtime hide */
    put_file(&dst, "b.txt", "CONSTANT", BASE_MTIME + 400000);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 0);
    c.o.checksum = true;
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 1);
    assert_int_equal(ev_count(&c.log, "b.txt", "updated"), 1);
    d = slurp(&dst, "b.txt", NULL);
    assert_string_equal(d, "constant");
    free(d);

    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_sync_deletes_extraneous(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    put_file(&src, "keep/a", "a", BASE_MTIME);
    put_file(&src, "z", "z", BASE_MTIME);
    put_file(&dst, "keep/a", "old a", BASE_MTIME);
    put_file(&dst, "extra.txt", "x", BASE_MTIME);
    put_file(&dst, "keep/deeper/extra2", "y", BASE_MTIME);
    put_file(&dst, "zz", "zz", BASE_MTIME);

    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.files_deleted, 3);
    assert_int_equal(c.res.files_transferred, 2);
    assert_false(exists(&dst, "extra.txt"));
    assert_false(exists(&dst, "keep/deeper/extra2"));
    assert_false(exists(&dst, "zz"));
    assert_same_file(&src, &dst, "keep/a");
    assert_same_file(&src, &dst, "z");
    assert_int_equal(ev_count(&c.log, "extra.txt", "deleted"), 1);
    assert_int_equal(ev_count(&c.log, "keep/deeper/extra2", "deleted"), 1);
    assert_int_equal(ev_count(&c.log, "zz", "deleted"), 1);
    json_t *s = ev_summary(&c.log);
    assert_string_equal(json_string_value(json_object_get(s, "command")), "sync");
    assert_int_equal(json_integer_value(json_object_get(s, "files_deleted")), 3);
    json_decref(s);

    /* copy never deletes */
    put_file(&dst, "extra.txt", "x", BASE_MTIME);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_deleted, 0);
    assert_true(exists(&dst, "extra.txt"));

    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_sync_refuses_empty_source(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "empty-src");
    tdir_make(&dst, "full-dst");
    put_file(&dst, "a", "a", BASE_MTIME);
    put_file(&dst, "d/b", "b", BASE_MTIME);
    char *before = snapshot(&dst);

    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), ERR_REFUSED);
    assert_int_equal(c.e.code, ERR_REFUSED);
    assert_non_null(strstr(c.e.msg, "'empty-src' listed no files"));
    assert_non_null(strstr(c.e.msg, "'full-dst'"));
    assert_non_null(strstr(c.e.msg, "--allow-empty-source"));
    assert_int_equal(c.res.status, EVENT_STATUS_FAILED);
    assert_int_equal(c.res.files_deleted, 0);
    char *after = snapshot(&dst);
    assert_string_equal(before, after);
    free(after);
    json_t *s = ev_summary(&c.log);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "failed");
    json_t *er = json_object_get(s, "error");
    assert_string_equal(json_string_value(json_object_get(er, "class")), "refused");
    assert_non_null(
        strstr(json_string_value(json_object_get(er, "message")), "--allow-empty-source"));
    json_decref(s);
    assert_int_equal(ev_count(&c.log, NULL, "deleted"), 0);

    /* the dry run predicts the refusal */
    c.o.dry_run = true;
    ctx_reset_log(&c);
    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), ERR_REFUSED);

    /* allowed on request */
    c.o.dry_run = false;
    c.o.allow_empty_source = true;
    ctx_reset_log(&c);
    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_deleted, 2);
    assert_false(exists(&dst, "a"));
    assert_false(exists(&dst, "d/b"));

    free(before);
    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_sync_max_delete(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    put_file(&src, "keep", "k", BASE_MTIME);
    put_file(&dst, "keep", "k", BASE_MTIME);
    put_file(&dst, "x1", "1", BASE_MTIME);
    put_file(&dst, "x2", "2", BASE_MTIME);
    put_file(&dst, "x3", "3", BASE_MTIME);
    char *before = snapshot(&dst);

    c.o.max_delete = 2;
    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), ERR_REFUSED);
    assert_non_null(strstr(c.e.msg, "refusing to delete 3 files"));
    assert_non_null(strstr(c.e.msg, "--max-delete 2"));
    char *after = snapshot(&dst);
    assert_string_equal(before, after);
    free(after);
    assert_int_equal(ev_count(&c.log, NULL, "deleted"), 0);
    assert_int_equal(c.res.files_deleted, 0);

    c.o.max_delete = 3;
    ctx_reset_log(&c);
    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_deleted, 3);
    assert_false(exists(&dst, "x1"));
    assert_true(exists(&dst, "keep"));

    free(before);
    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_unsorted_source_deletes_nothing(void **state)
{
    (void)state;
    struct mem *m;
    struct storage *src = mem_open("mem:unsorted", "e1", false, &m);
    struct tdir dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&dst, "dst");
    mem_put(m, "a", "a", BASE_MTIME);
    mem_put(m, "b", "b", BASE_MTIME);
    mem_put(m, "c", "c", BASE_MTIME);
    mem_put(m, "d", "d", BASE_MTIME);
    m->unsorted = true; /* yields a, c, b, d */
    put_file(&dst, "b", "b", BASE_MTIME);
    put_file(&dst, "bb", "only here", BASE_MTIME);
    put_file(&dst, "zzz", "only here", BASE_MTIME);
    char *before = snapshot(&dst);

    int r = transfer_sync(src, dst.st, &c.o, &c.res, &c.e);
    assert_int_equal(r, ERR_UNSORTED);
    assert_non_null(strstr(c.e.msg, "not sorted"));
    assert_int_equal(c.res.status, EVENT_STATUS_FAILED);
    assert_int_equal(c.res.files_deleted, 0);
    assert_int_equal(ev_count(&c.log, NULL, "deleted"), 0);
    assert_true(exists(&dst, "bb"));
    assert_true(exists(&dst, "zzz"));
    char *after = snapshot(&dst);
    /* files may have been copied before the disorder showed; nothing left
     * the destination */
    assert_non_null(strstr(after, "/bb "));
    assert_non_null(strstr(after, "/zzz "));
    assert_non_null(strstr(after, "/b "));
    json_t *s = ev_summary(&c.log);
    json_t *er = json_object_get(s, "error");
    assert_string_equal(json_string_value(json_object_get(er, "class")), "unsorted");
    json_decref(s);

    free(before);
    free(after);
    ev_free(&c.log);
    storage_close(src);
    tdir_free(&dst);
}

static void test_failing_read_is_partial(void **state)
{
    (void)state;
    struct mem *m;
    struct storage *src = mem_open("mem:src", "e1", false, &m);
    struct tdir dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&dst, "dst");
    const char *keys[] = {"f1", "f2", "f3", "f4", "f5"};
    for (int i = 0; i < 5; i++)
        mem_put(m, keys[i], "0123456789abcdefghij", BASE_MTIME);
    snprintf(m->fail_read, sizeof(m->fail_read), "f3");
    m->fail_code = ERR_IO;
    m->read_chunk = 7;
    put_file(&dst, "extraneous", "e", BASE_MTIME);

    assert_int_equal(transfer_sync(src, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_PARTIAL);
    assert_int_equal(c.res.files_failed, 1);
    assert_int_equal(c.res.files_transferred, 4);
    assert_int_equal(c.res.files_deleted, 0);
    assert_true(exists(&dst, "extraneous"));
    assert_false(exists(&dst, "f3"));
    assert_true(exists(&dst, "f1"));
    assert_true(exists(&dst, "f5"));
    assert_int_equal(leftovers(&dst), 0);
    assert_int_equal(ev_count(&c.log, "f3", "failed"), 1);
    assert_int_equal(ev_count(&c.log, NULL, "deleted"), 0);
    char st[32];
    assert_string_equal(ev_summary_status(&c.log, st, sizeof(st)), "partial");
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        const char *a = json_string_value(json_object_get(o, "action"));
        if (a && !strcmp(a, "failed")) {
            json_t *er = json_object_get(o, "error");
            assert_string_equal(json_string_value(json_object_get(er, "class")), "io");
            assert_non_null(
                strstr(json_string_value(json_object_get(er, "message")), "simulated failure"));
        }
        json_decref(o);
    }

    ev_free(&c.log);
    storage_close(src);
    tdir_free(&dst);
}

static void test_whole_run_error_stops(void **state)
{
    (void)state;
    struct mem *m, *md;
    struct storage *src = mem_open("mem:src", "e1", false, &m);
    struct storage *dst = mem_open("mem:dst", "e2", false, &md);
    struct run_ctx c;
    ctx_init(&c);
    char key[16];
    /* many files after the failing one, so the other worker cannot have
     * done them all by the time the error stops the run, however the
     * threads are scheduled */
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        mem_put(m, key, "some content here", BASE_MTIME);
    }
    mem_put(md, "zz-extra", "x", BASE_MTIME);
    snprintf(m->fail_read, sizeof(m->fail_read), "k0005");
    m->fail_code = ERR_AUTH;
    m->read_chunk = 4;
    c.o.transfers = 2;

    int r = transfer_sync(src, dst, &c.o, &c.res, &c.e);
    assert_int_equal(r, ERR_AUTH);
    assert_int_equal(c.e.code, ERR_AUTH);
    assert_int_equal(c.res.status, EVENT_STATUS_FAILED);
    assert_non_null(mem_get(md, "zz-extra"));
    assert_null(mem_get(md, "k0005"));
    assert_int_equal(atomic_load(&md->writes_open), 0);
    /* it stopped: not every file was attempted */
    assert_true(c.res.files_transferred < 1999);
    assert_int_equal(ev_count(&c.log, "k0005", "failed"), 0);
    json_t *s = ev_summary(&c.log);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "error"), "class")),
                        "auth");
    json_decref(s);

    ev_free(&c.log);
    storage_close(src);
    storage_close(dst);
}

static void test_check_one_byte_change(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    make_tree(&src);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);

    ctx_reset_log(&c);
    assert_int_equal(transfer_check(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.differences, 0);
    assert_int_equal(c.res.files_checked, 4);
    assert_int_equal(ev_count(&c.log, NULL, "match"), 4);

    /* flip one byte in the middle of the big file, same size and mtime */
    size_t len;
    char *d = slurp(&dst, "dir/sub/big.bin", &len);
    d[len / 2] ^= 1;
    put_bytes(&dst, "dir/sub/big.bin", d, len, BASE_MTIME + 3 * SEC + 123456789);
    free(d);

    ctx_reset_log(&c);
    assert_int_equal(transfer_check(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_DIFFERENCES);
    assert_int_equal(c.res.differences, 1);
    assert_int_equal(ev_count(&c.log, "dir/sub/big.bin", "differ"), 1);
    assert_int_equal(ev_count(&c.log, NULL, "match"), 3);
    char st[32];
    assert_string_equal(ev_summary_status(&c.log, st, sizeof(st)), "differences");

    /* a plain copy trusts size + mtime and leaves it; check is what catches it */
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 0);

    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_check_missing_both_ways(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    put_file(&src, "a", "only in source", BASE_MTIME);
    put_file(&src, "b", "both", BASE_MTIME);
    put_file(&src, "d", "size one", BASE_MTIME);
    put_file(&dst, "b", "both", BASE_MTIME + 99 * SEC); /* mtime ignored by check */
    put_file(&dst, "c", "only in destination", BASE_MTIME);
    put_file(&dst, "d", "size two!", BASE_MTIME);

    assert_int_equal(transfer_check(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_DIFFERENCES);
    assert_int_equal(c.res.differences, 3);
    assert_int_equal(c.res.files_checked, 4);
    assert_int_equal(ev_count(&c.log, "a", "missing_on_destination"), 1);
    assert_int_equal(ev_count(&c.log, "c", "missing_on_source"), 1);
    assert_int_equal(ev_count(&c.log, "b", "match"), 1);
    assert_int_equal(ev_count(&c.log, "d", "differ"), 1);
    json_t *s = ev_summary(&c.log);
    assert_string_equal(json_string_value(json_object_get(s, "command")), "check");
    assert_int_equal(json_integer_value(json_object_get(s, "differences")), 3);
    json_decref(s);
    /* check changes nothing */
    assert_false(exists(&dst, "a"));
    assert_true(exists(&dst, "c"));

    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_dry_run_changes_nothing(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    make_tree(&src);
    put_file(&dst, "a.txt", "older!", BASE_MTIME - SEC); /* same size, older */
    put_file(&dst, "gone/x", "x", BASE_MTIME);
    char *before = snapshot(&dst);

    c.o.dry_run = true;
    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.files_transferred, 4);
    assert_int_equal(c.res.files_deleted, 1);
    char *after = snapshot(&dst);
    assert_string_equal(before, after);
    free(after);
    assert_int_equal(ev_count(&c.log, "a.txt", "updated"), 1);
    assert_int_equal(ev_count(&c.log, "dir/b.txt", "copied"), 1);
    assert_int_equal(ev_count(&c.log, "gone/x", "deleted"), 1);
    /* every file event carries dry_run, so does the summary */
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        const char *type = json_string_value(json_object_get(o, "type"));
        if (!strcmp(type, "file") || !strcmp(type, "summary"))
            assert_true(json_is_true(json_object_get(o, "dry_run")));
        json_decref(o);
    }

    /* into a destination that does not exist: still nothing created */
    struct storage *nowhere;
    char p[128];
    snprintf(p, sizeof(p), "%s/not/yet", dst.path);
    assert_int_equal(local_storage_open(p, "nowhere", &nowhere, &c.e), 0);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, nowhere, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 4);
    assert_false(exists(&dst, "not"));
    storage_close(nowhere);

    free(before);
    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_size_changed_while_read(void **state)
{
    (void)state;
    struct mem *m;
    struct storage *src = mem_open("mem:src", "e1", false, &m);
    struct tdir dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&dst, "dst");
    mem_put(m, "grows", "twelve bytes", BASE_MTIME);
    mem_put(m, "steady", "steady", BASE_MTIME);
    snprintf(m->grow, sizeof(m->grow), "grows");

    assert_int_equal(transfer_copy(src, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_PARTIAL);
    assert_int_equal(c.res.files_failed, 1);
    assert_int_equal(c.res.files_transferred, 1);
    assert_false(exists(&dst, "grows"));
    assert_true(exists(&dst, "steady"));
    assert_int_equal(leftovers(&dst), 0);
    bool seen = false;
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        const char *p = json_string_value(json_object_get(o, "path"));
        if (p && !strcmp(p, "grows")) {
            assert_string_equal(json_string_value(json_object_get(o, "action")), "failed");
            const char *msg =
                json_string_value(json_object_get(json_object_get(o, "error"), "message"));
            assert_non_null(strstr(msg, "'grows' changed size while being read (listed 12"));
            assert_non_null(strstr(msg, "will be copied next run"));
            seen = true;
        }
        json_decref(o);
    }
    assert_true(seen);

    ev_free(&c.log);
    storage_close(src);
    tdir_free(&dst);
}

static void test_events_valid_json(void **state)
{
    (void)state;
    struct tdir src, dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src \"quoted\"");
    tdir_make(&dst, "dst");
    put_file(&src, "new", "new", BASE_MTIME);
    put_file(&src, "same", "same", BASE_MTIME);
    put_file(&src, "upd", "v2", BASE_MTIME + SEC);
    put_file(&src, "we\"ird\\name\n", "odd", BASE_MTIME);
    char p[512];
    snprintf(p, sizeof(p), "%s/link", src.path);
    assert_int_equal(symlink("new", p), 0);
    put_file(&dst, "same", "same", BASE_MTIME);
    put_file(&dst, "upd", "v1", BASE_MTIME);
    put_file(&dst, "old", "old", BASE_MTIME);
    c.o.progress_interval = 0.001;

    assert_int_equal(transfer_sync(src.st, dst.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.files_skipped, 1);
    assert_false(exists(&dst, "link"));
    assert_int_equal(ev_count(&c.log, "new", "copied"), 1);
    assert_int_equal(ev_count(&c.log, "same", "unchanged"), 1);
    assert_int_equal(ev_count(&c.log, "upd", "updated"), 1);
    assert_int_equal(ev_count(&c.log, "old", "deleted"), 1);
    assert_int_equal(ev_count(&c.log, "link", "skipped"), 1);
    assert_int_equal(ev_count(&c.log, "we\"ird\\name\n", "copied"), 1);
    size_t files = 0, progress = 0, done = 0;
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        const char *type = json_string_value(json_object_get(o, "type"));
        assert_non_null(type);
        assert_int_equal(json_integer_value(json_object_get(o, "v")), EVENT_SCHEMA_VERSION);
        assert_non_null(json_string_value(json_object_get(o, "time")));
        if (!strcmp(type, "file")) {
            files++;
            assert_non_null(json_string_value(json_object_get(o, "path")));
        } else if (!strcmp(type, "progress")) {
            progress++;
            if (!strcmp(json_string_value(json_object_get(o, "phase")), "done")) {
                done++;
                assert_int_equal(json_integer_value(json_object_get(o, "files_done")),
                                 json_integer_value(json_object_get(o, "files_total")));
                assert_int_equal(json_integer_value(json_object_get(o, "bytes_done")),
                                 json_integer_value(json_object_get(o, "bytes_total")));
            }
        } else {
            assert_string_equal(type, "summary");
            assert_int_equal(i, c.log.n - 1);
            assert_string_equal(json_string_value(json_object_get(o, "source")), "src \"quoted\"");
            assert_int_equal(json_integer_value(json_object_get(o, "files_transferred")), 3);
            assert_int_equal(json_integer_value(json_object_get(o, "files_unchanged")), 1);
            assert_int_equal(json_integer_value(json_object_get(o, "files_deleted")), 1);
            assert_int_equal(json_integer_value(json_object_get(o, "files_skipped")), 1);
            assert_string_equal(json_string_value(json_object_get(o, "status")), "succeeded");
        }
        json_decref(o);
    }
    assert_int_equal(files, 6);
    assert_true(progress >= 1);
    assert_int_equal(done, 1);

    ev_free(&c.log);
    tdir_free(&src);
    tdir_free(&dst);
}

static void test_progress_while_running(void **state)
{
    (void)state;
    struct mem *ms, *md;
    struct storage *src = mem_open("mem:src", "e1", false, &ms);
    struct storage *dst = mem_open("mem:dst", "e2", false, &md);
    struct run_ctx c;
    ctx_init(&c);
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "p%02d", i);
        mem_put(ms, key, "0123456789", BASE_MTIME);
    }
    ms->read_delay_us = 10000;
    ms->read_chunk = 2;
    c.o.transfers = 2;
    c.o.progress_interval = 0.02;

    assert_int_equal(transfer_copy(src, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 20);
    size_t mid = 0, done = 0;
    int64_t last_bytes = -1;
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        if (!strcmp(json_string_value(json_object_get(o, "type")), "progress")) {
            const char *phase = json_string_value(json_object_get(o, "phase"));
            int64_t b = json_integer_value(json_object_get(o, "bytes_done"));
            if (!strcmp(phase, "done")) {
                done++;
                assert_int_equal(b, 200);
                assert_int_equal(json_integer_value(json_object_get(o, "files_total")), 20);
            } else {
                mid++;
                assert_true(b >= 0 && b <= 200);
                assert_true(!strcmp(phase, "listing") || !strcmp(phase, "transferring"));
                if (!strcmp(phase, "transferring")) {
                    assert_int_equal(json_integer_value(json_object_get(o, "bytes_total")), 200);
                    assert_true(json_is_integer(json_object_get(o, "files_total")));
                } else {
                    assert_true(json_is_null(json_object_get(o, "bytes_total")));
                }
            }
            assert_true(b >= last_bytes);
            last_bytes = b;
        }
        json_decref(o);
    }
    /* 20 files x 6 reads x 10 ms over 2 threads: >= 600 ms, interval 20 ms;
     * ask for far fewer than 30 events so a loaded machine passes */
    if (mid < 3)
        fail_msg("only %zu progress events before the end, run took %.3f s", mid, c.res.elapsed);
    assert_int_equal(done, 1);

    ev_free(&c.log);
    storage_close(src);
    storage_close(dst);
}

static void test_many_files(void **state)
{
    (void)state;
    struct mem *ms, *md;
    struct storage *src = mem_open("mem:src", "e1", false, &ms);
    struct storage *dst = mem_open("mem:dst", "e2", false, &md);
    struct run_ctx c;
    ctx_init(&c);
    char key[32], val[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "d%02d/f%05d", i % 37, i);
        snprintf(val, sizeof(val), "content of file %d", i * 7919);
        mem_put(ms, key, val, BASE_MTIME + i);
    }
    /* a few already there, a few extraneous */
    mem_put(md, "d00/f00000", "content of file 0", BASE_MTIME);
    mem_put(md, "d05/zzz", "extra", BASE_MTIME);
    c.o.transfers = 8;
    c.o.events = NULL;

    assert_int_equal(transfer_sync(src, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.status, EVENT_STATUS_SUCCEEDED);
    assert_int_equal(c.res.files_transferred, 2999);
    assert_int_equal(c.res.files_unchanged, 1);
    assert_int_equal(c.res.files_deleted, 1);
    assert_int_equal(md->n, 3000);
    for (size_t i = 0; i < ms->n; i++) {
        struct mobj *a = &ms->o[i], *b = &md->o[i];
        assert_string_equal(a->key, b->key);
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->data, b->data, a->len);
        assert_int_equal(a->mtime, b->mtime);
    }
    /* server-side copy was not used: different endpoints */
    assert_int_equal(atomic_load(&md->copies), 0);

    memset(&c.res, 0, sizeof(c.res));
    assert_int_equal(transfer_sync(src, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 0);
    assert_int_equal(c.res.files_unchanged, 3000);
    assert_int_equal(c.res.bytes_transferred, 0);

    storage_close(src);
    storage_close(dst);
}

static void test_server_side_copy(void **state)
{
    (void)state;
    struct mem *ms, *md;
    struct storage *src = mem_open("mem:bucket1", "same-endpoint", true, &ms);
    struct storage *dst = mem_open("mem:bucket2", "same-endpoint", true, &md);
    struct run_ctx c;
    ctx_init(&c);
    mem_put(ms, "one", "1", BASE_MTIME);
    mem_put(ms, "two", "22", BASE_MTIME);

    assert_int_equal(transfer_copy(src, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 2);
    assert_int_equal(atomic_load(&md->copies), 2);
    assert_int_equal(atomic_load(&ms->opens), 0); /* no byte went through us */
    assert_string_equal((char *)mem_get(md, "two")->data, "22");
    for (size_t i = 0; i < c.log.n; i++) {
        json_t *o = ev_parse(&c.log, i);
        if (!strcmp(json_string_value(json_object_get(o, "type")), "file"))
            assert_true(json_is_true(json_object_get(o, "server_side")));
        json_decref(o);
    }

    ev_free(&c.log);
    storage_close(src);
    storage_close(dst);
}

/* local -> an S3-like storage: md5 in listings of small objects, upload
 * time as listing mtime, the true mtime only from stat */
static void test_s3_like_destination(void **state)
{
    (void)state;
    struct tdir src;
    struct mem *md;
    struct storage *dst = mem_open("s3:bucket", "s3-endpoint", true, &md);
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&src, "src");
    md->md5_max = 100; /* bigger objects are "multipart": no md5 */
    put_file(&src, "small", "small file", BASE_MTIME);
    unsigned char big[300];
    memset(big, 'b', sizeof(big));
    put_bytes(&src, "big", big, sizeof(big), BASE_MTIME + 7 * SEC);

    assert_int_equal(transfer_copy(src.st, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 2);
    assert_int_equal(mem_get(md, "big")->mtime, BASE_MTIME + 7 * SEC);

    /* second run: md5 decides "small" (local side hashed), stat decides "big" */
    ctx_reset_log(&c);
    uint64_t stats0 = atomic_load(&md->stats);
    assert_int_equal(transfer_copy(src.st, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 0);
    assert_int_equal(c.res.files_unchanged, 2);
    assert_int_equal(atomic_load(&md->stats) - stats0, 1);

    /* same size and mtime, different content: md5 catches it for "small" */
    put_file(&src, "small", "SMALL FILE", BASE_MTIME);
    /* same content, new mtime: stat catches it for "big" */
    put_bytes(&src, "big", big, sizeof(big), BASE_MTIME + 8 * SEC);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(src.st, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 2);
    assert_string_equal((char *)mem_get(md, "small")->data, "SMALL FILE");
    assert_int_equal(mem_get(md, "big")->mtime, BASE_MTIME + 8 * SEC);

    /* and back: S3-like -> local uses the md5 again, and stat for "big" */
    struct tdir back;
    tdir_make(&back, "back");
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(dst, back.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 2);
    /* the mtime written locally is the true one from the reader, not the
     * upload time of the listing */
    struct stat sb;
    char p[512];
    snprintf(p, sizeof(p), "%s/big", back.path);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal((int64_t)sb.st_mtim.tv_sec * SEC + sb.st_mtim.tv_nsec, BASE_MTIME + 8 * SEC);
    ctx_reset_log(&c);
    assert_int_equal(transfer_copy(dst, back.st, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.files_transferred, 0);
    assert_int_equal(c.res.files_unchanged, 2);

    /* check between them: md5 from the listing on one side */
    ctx_reset_log(&c);
    assert_int_equal(transfer_check(src.st, dst, &c.o, &c.res, &c.e), 0);
    assert_int_equal(c.res.differences, 0);
    assert_int_equal(ev_count(&c.log, NULL, "match"), 2);

    ev_free(&c.log);
    tdir_free(&back);
    tdir_free(&src);
    storage_close(dst);
}

static void test_cancel(void **state)
{
    (void)state;
    struct mem *ms;
    struct storage *src = mem_open("mem:src", "e1", false, &ms);
    struct tdir dst;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&dst, "dst");
    char key[16];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "c%02d", i);
        mem_put(ms, key, "abcdefghijklmnopqrstuvwxyz", BASE_MTIME);
    }
    snprintf(ms->cancel_on, sizeof(ms->cancel_on), "c10");
    ms->read_chunk = 3;
    put_file(&dst, "extra", "e", BASE_MTIME);
    c.o.transfers = 1;

    int r = transfer_sync(src, dst.st, &c.o, &c.res, &c.e);
    assert_int_equal(r, ERR_CANCELLED);
    assert_int_equal(c.res.status, EVENT_STATUS_CANCELLED);
    assert_false(exists(&dst, "c10"));
    assert_false(exists(&dst, "c29"));
    assert_true(exists(&dst, "extra"));
    assert_int_equal(leftovers(&dst), 0);
    assert_int_equal(c.res.files_transferred, 10);
    char st[32];
    assert_string_equal(ev_summary_status(&c.log, st, sizeof(st)), "cancelled");
    cancel_reset();

    ev_free(&c.log);
    storage_close(src);
    tdir_free(&dst);
}

static void test_missing_source_root(void **state)
{
    (void)state;
    struct tdir dst;
    struct storage *src;
    struct run_ctx c;
    ctx_init(&c);
    tdir_make(&dst, "dst");
    put_file(&dst, "precious", "p", BASE_MTIME);
    assert_int_equal(local_storage_open("/nonexistent/arca-test-src", "gone:", &src, &c.e), 0);
    c.o.allow_empty_source = true;
    int r = transfer_sync(src, dst.st, &c.o, &c.res, &c.e);
    assert_int_equal(r, ERR_NOT_FOUND);
    assert_true(exists(&dst, "precious"));
    char st[32];
    assert_string_equal(ev_summary_status(&c.log, st, sizeof(st)), "failed");
    ev_free(&c.log);
    storage_close(src);
    tdir_free(&dst);
}

/* The sync of test_unreadable_source_dir_blocks_deletions; returns 0 when
 * everything held, else the number of the first broken expectation (it
 * may run in a child process, where cmocka's asserts cannot be used). */
static int unreadable_sync(const struct tdir *src, const struct tdir *dst)
{
    struct run_ctx c;
    ctx_init(&c);
    int r = transfer_sync(src->st, dst->st, &c.o, &c.res, &c.e);
    int bad = 0;
    if (r != 0)
        bad = 1;
    else if (c.res.status != EVENT_STATUS_PARTIAL)
        bad = 2;
    else if (!exists(dst, "private/secret") || !exists(dst, "gone-from-source"))
        bad = 3; /* deleted what the source listing could not see */
    else if (!exists(dst, "ok"))
        bad = 4;
    else if (ev_count(&c.log, "private/", "failed") != 1)
        bad = 5;
    else if (ev_count(&c.log, NULL, "deleted") != 0)
        bad = 6;
    ev_free(&c.log);
    return bad;
}

static void test_unreadable_source_dir_blocks_deletions(void **state)
{
    (void)state;
    struct tdir src, dst;
    tdir_make(&src, "src");
    tdir_make(&dst, "dst");
    put_file(&src, "ok", "ok", BASE_MTIME);
    put_file(&src, "private/secret", "s", BASE_MTIME);
    put_file(&dst, "private/secret", "s", BASE_MTIME);
    put_file(&dst, "gone-from-source", "g", BASE_MTIME);
    char p[512];
    snprintf(p, sizeof(p), "%s/private", src.path);
    assert_int_equal(chmod(p, 0), 0);
    int bad;
    if (geteuid() != 0) {
        bad = unreadable_sync(&src, &dst);
    } else {
        /* root reads everything: run the sync as "nobody" in a child */
        assert_int_equal(chmod(src.path, 0755), 0);
        assert_int_equal(chmod(dst.path, 0777), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
                _exit(100);
            _exit(unreadable_sync(&src, &dst));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        bad = WEXITSTATUS(status);
    }
    chmod(p, 0755);
    if (bad)
        fail_msg("sync over an unreadable source directory: expectation %d broken", bad);
    tdir_free(&src);
    tdir_free(&dst);
}

/* Peak heap while merging n generated entries per side (sync dry run:
 * half the destination is spooled for deletion, 1 in 7 source entries
 * lacks md5 so it goes through the queue and is hashed). */
static size_t peak_growth(uint64_t n)
{
    struct mem *ms, *md;
    struct storage *src = mem_open("synth:src", "e1", true, &ms);
    struct storage *dst = mem_open("synth:dst", "e2", true, &md);
    ms->synth_n = n;
    ms->synth_mod = 2;
    ms->synth_no_md5 = 7;
    md->synth_n = n;
    struct transfer_opts o;
    transfer_opts_init(&o);
    o.dry_run = true;
    o.transfers = 4;
    struct transfer_result res;
    struct err e;
    size_t base = heap_now();
    atomic_store(&heap_peak, base);
    assert_int_equal(transfer_sync(src, dst, &o, &res, &e), 0);
    assert_int_equal(res.files_unchanged, n / 2);
    assert_int_equal(res.files_deleted, n / 2);
    assert_int_equal(res.files_transferred, 0);
    assert_true(atomic_load(&ms->opens) > n / 20); /* the queue was used */
    storage_close(src);
    storage_close(dst);
    size_t peak = atomic_load(&heap_peak);
    return peak > base ? peak - base : 0;
}

static void test_memory_bounded(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* ASan's allocator is not glibc's: mallinfo2 says nothing */
#endif
    cancel_reset();
    peak_growth(2000); /* warm up: thread arenas, stdio buffers */
    size_t small = peak_growth(50000);
    size_t large = peak_growth(200000);
    print_message("peak heap growth: %zu bytes at 50k entries, %zu at 200k\n", small, large);
    /* keeping 50 bytes per entry would add 7.5 MB between the two */
    if (large > small + (1u << 20))
        fail_msg("peak heap grows with the listing: %zu bytes at 50k entries, %zu at 200k", small,
                 large);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_new_tree_then_unchanged),
        cmocka_unit_test(test_same_size_new_mtime_is_recopied),
        cmocka_unit_test(test_sync_deletes_extraneous),
        cmocka_unit_test(test_sync_refuses_empty_source),
        cmocka_unit_test(test_sync_max_delete),
        cmocka_unit_test(test_unsorted_source_deletes_nothing),
        cmocka_unit_test(test_failing_read_is_partial),
        cmocka_unit_test(test_whole_run_error_stops),
        cmocka_unit_test(test_check_one_byte_change),
        cmocka_unit_test(test_check_missing_both_ways),
        cmocka_unit_test(test_dry_run_changes_nothing),
        cmocka_unit_test(test_size_changed_while_read),
        cmocka_unit_test(test_events_valid_json),
        cmocka_unit_test(test_progress_while_running),
        cmocka_unit_test(test_many_files),
        cmocka_unit_test(test_server_side_copy),
        cmocka_unit_test(test_s3_like_destination),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_missing_source_root),
        cmocka_unit_test(test_unreadable_source_dir_blocks_deletions),
        cmocka_unit_test(test_memory_bounded),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
