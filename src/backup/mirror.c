/*
 * mirror.c - mirror mode (docs/FORMAT.md, Mirror mode): current/ is a plain
 * copy of the source as of the latest run; what a run replaces or deletes
 * is first copied to versions/<run>/; runs/<run>.manifest.jsonl.zst is
 * written last.
 *
 * The source listing and the previous run's manifest are merged as sorted
 * streams. A file whose size and mtime (or, for sources whose listing has
 * no true mtime, listed mtime) equal the previous entry is unchanged: it is
 * not read and its SHA-256 is carried over. Other files go to `transfers`
 * worker threads, which displace the old object (server-side copy or hard
 * link where the destination can) and upload the new one, hashing it.
 * Paths go through a ring of slots in manifest order, so the manifest is
 * written in order while files complete out of order, in memory bounded by
 * the ring.
 *
 * Deletions are spooled to an anonymous file and done last, after the
 * empty-source and --max-delete checks. Paths below a part of the source
 * the listing could not read are kept as they were.
 *
 * Interrupted runs. Before its first change under current/ a run writes
 * runs/<run>.started; it removes it after its manifest. A marker without a
 * manifest is a run that stopped halfway: current/ may hold its uploads.
 * The next run then does not trust the previous manifest for the paths
 * such runs displaced (their versions/<k>/, read as one stream), and lists
 * current/ to remove what they created and the source no longer has.
 */
#include "backup/backup.h"
#include "backup/catalog.h"
#include "backup/manifest.h"
#include "backup/vmerge.h"
#include "core/ahead.h"
#include "core/cancel.h"
#include "core/first_error.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "engine/copy_file.h"
#include "engine/transfer.h"
#include "io/filter.h"
#include "io/progress.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIRROR_BLOCK ((size_t)1 << 20)
#define MIRROR_STREAM_CUTOFF ((uint64_t)64 << 20)
#define MIRROR_READ_STREAMS 4

enum work { WORK_NONE, WORK_UPLOAD, WORK_REMOVE };

/* One path in manifest order (or a deletion, not in the manifest). */
struct slot {
    struct manifest_entry me; /* owned: path, target, err_* */
    struct storage_entry src; /* WORK_UPLOAD: the listed source file */
    enum work work;
    bool displace;    /* copy current/<p> to versions/<run>/<p> first */
    bool dirty;       /* an interrupted run changed current/<p>: stat it */
    bool in_manifest; /* false: a deletion */
    bool counted;     /* a deletion of a path the previous run had */
    bool taken, done;
    enum event_action action;
};

struct mir {
    struct storage *src, *dst;
    const struct backup_opts *o;
    const char *run;
    struct timespec start;
    int64_t mtime_tol;
    bool src_true_mtime;

    /* the ring */
    pthread_mutex_t lock;
    pthread_cond_t cond_work; /* a slot to take, or stop/close */
    pthread_cond_t cond_done; /* a slot done, or stop */
    struct slot *ring;
    size_t cap, head, count, next; /* next: first slot a worker may look at */
    bool closed;
    pthread_t *threads;
    int nthreads;

    struct first_error fe; /* the first whole-run error; fe.stop stops everyone */

    /* the marker, written before the first change */
    pthread_mutex_t marker_lock;
    bool marker_written;

    /* the manifest */
    struct storage_writer *w_manifest;
    struct filter *mchain;
    struct manifest_writer *mw;

    /* the previous run and the interrupted ones after it */
    struct catalog_manifest prev;
    bool have_prev;
    struct manifest_entry pm; /* its current entry */
    bool pm_valid;
    int prev_entries; /* > 0: the previous run had at least one path */
    struct vmerge *dirty;
    struct storage_list *cur; /* repair: the current/ listing */
    struct storage_entry ce;  /* its head (key without "current/") */

    /* the listing's skipped parts (under lock: the listing runs ahead on
     * its own thread) */
    char **skipped;
    size_t nskipped;

    /* the source listing and the previous manifest, each read ahead on a
     * thread of its own */
    struct storage_list *src_ls;
    struct ahead *src_ahead, *prev_ahead;

    FILE *spool;
    uint64_t deletions, src_listed;

    _Atomic uint64_t bytes_done, files_done, list_errors;
    _Atomic uint64_t transferred, bytes_transferred, unchanged, deleted, errors;
    uint64_t files, bytes; /* manifest: entries without error; main thread */
    char current[512];     /* under lock */
    char progress_current[512];
};

static double elapsed_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void fail_run(struct mir *m, const struct err *e)
{
    first_error_set(&m->fe, e);
    pthread_mutex_lock(&m->lock);
    pthread_cond_broadcast(&m->cond_work);
    pthread_cond_broadcast(&m->cond_done);
    pthread_mutex_unlock(&m->lock);
}

static void emit(struct mir *m, const char *path, enum event_action a, int64_t size,
                 const char *sha256, int code, const char *error)
{
    struct event_file f = {.path = path,
                           .action = a,
                           .size = size,
                           .sha256 = sha256 && sha256[0] ? sha256 : NULL,
                           .error_code = code,
                           .error = error};
    event_emit_file(m->o->events, &f);
}

static void progress_fill(void *ctx, struct event_progress *p)
{
    struct mir *m = ctx;
    p->phase = EVENT_PHASE_TRANSFERRING;
    p->bytes_done = atomic_load(&m->bytes_done);
    p->files_done = atomic_load(&m->files_done);
    p->bytes_total = -1;
    p->files_total = -1;
    p->elapsed = elapsed_since(&m->start);
    pthread_mutex_lock(&m->lock);
    snprintf(m->progress_current, sizeof(m->progress_current), "%s", m->current);
    pthread_mutex_unlock(&m->lock);
    p->current = m->progress_current[0] ? m->progress_current : NULL;
}

static int on_list_error(void *ctx, const char *key, const struct err *why)
{
    struct mir *m = ctx;
    atomic_fetch_add(&m->list_errors, 1);
    emit(m, key, EVENT_ACTION_FAILED, -1, NULL, why->code, why->msg);
    log_warn("%s; what the destination has below it is kept", why->msg);
    int r = 0;
    pthread_mutex_lock(&m->lock);
    char **nv = realloc(m->skipped, (m->nskipped + 1) * sizeof(*nv));
    if (nv)
        m->skipped = nv;
    if (!nv || !(nv[m->nskipped] = strdup(key)))
        r = ERR_NOMEM;
    else
        m->nskipped++;
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* Whether the listing skipped path (itself, or a directory above it). The
 * listing reports a skipped part before it yields any later path, so by
 * the time the merge is past path, the answer is known. */
static bool under_skipped(struct mir *m, const char *path)
{
    bool hit = false;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nskipped && !hit; i++) {
        const char *k = m->skipped[i];
        size_t n = strlen(k);
        hit = !strcmp(k, path) || (n && k[n - 1] == '/' && !strncmp(k, path, n));
    }
    pthread_mutex_unlock(&m->lock);
    return hit;
}

/* ---- destination keys ---------------------------------------------------- */

static char *key_join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s%s%s", a, b, c);
    return k;
}

static int write_marker(struct mir *m, struct err *e)
{
    pthread_mutex_lock(&m->marker_lock);
    int r = 0;
    if (!m->marker_written) {
        char key[64], body[160], when[40];
        catalog_marker_key(key, sizeof(key), m->run);
        time_format_ms(time_now_ms(), when);
        int n = snprintf(body, sizeof(body), "{\"run\":\"%s\",\"started\":\"%s\"}\n", m->run, when);
        r = storage_put_bytes(m->dst, key, body, (size_t)n, e);
        if (!r)
            m->marker_written = true;
    }
    pthread_mutex_unlock(&m->marker_lock);
    return r;
}

/*
 * Copy current/<p> to versions/<run>/<p>: on the server or as a link where
 * the destination can, else through this process. Nothing to copy is fine.
 */
static int displace(struct mir *m, struct slot *s, unsigned char *buf, struct err *e)
{
    char *from = key_join("current/", s->me.path, "");
    char *to = key_join("versions/", m->run, "/");
    char *to_full = to ? key_join(to, s->me.path, "") : NULL;
    int r = 0;
    if (!from || !to_full) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    struct storage_entry ent;
    memset(&ent, 0, sizeof(ent));
    ent.key = from;
    ent.size = s->me.size;
    ent.mtime_ns = s->me.mtime_ns;
    ent.mode = s->me.mode;
    bool stat_first = s->dirty || s->me.type != MANIFEST_FILE || s->me.err_code;
    if (stat_first || !storage_can_copy(m->dst)) {
        struct storage_entry st;
        memset(&st, 0, sizeof(st));
        r = storage_stat(m->dst, from, &st, e);
        if (r == ERR_NOT_FOUND) {
            err_clear(e);
            r = 0;
            goto out;
        }
        if (r)
            goto out;
        ent.size = st.size;
        if (st.mtime_ns != STORAGE_MTIME_UNKNOWN)
            ent.mtime_ns = st.mtime_ns;
        if (st.mode)
            ent.mode = st.mode;
        storage_entry_clear(&st);
    }
    if (storage_can_copy(m->dst)) {
        r = storage_copy(m->dst, from, &ent, to_full, e);
        if (r == ERR_NOT_FOUND) {
            err_clear(e);
            r = 0;
            goto out;
        }
        if (r != ERR_USAGE)
            goto out;
        err_clear(e); /* a filesystem that cannot link: copy the bytes */
    }
    struct copy_file_opts co = {.buf = buf, .block_size = MIRROR_BLOCK, .stop = &m->fe.stop};
    r = copy_file(m->dst, &ent, m->dst, to_full, &co, NULL, NULL, e);
    if (r == ERR_NOT_FOUND) {
        err_clear(e);
        r = 0;
    }
out:
    if (r && r != ERR_CANCELLED)
        err_wrap(e, "keeping the previous version of '%s'", s->me.path);
    free(from);
    free(to);
    free(to_full);
    return r;
}

static int upload(struct mir *m, struct slot *s, unsigned char *buf, struct err *e)
{
    char *to = key_join("current/", s->src.key, "");
    if (!to)
        return err_set(e, ERR_NOMEM, "out of memory");
    struct copy_file_opts co = {
        .buf = buf,
        .block_size = MIRROR_BLOCK,
        .read_streams = MIRROR_READ_STREAMS,
        .read_stream_cutoff = MIRROR_STREAM_CUTOFF,
        .ratelimit = m->o->ratelimit,
        .count = {&m->bytes_done, NULL},
        .stop = &m->fe.stop,
        .hash = true,
    };
    struct storage_entry kept;
    memset(&kept, 0, sizeof(kept));
    kept.mtime_ns = STORAGE_MTIME_UNKNOWN;
    int r = copy_file(m->src, &s->src, m->dst, to, &co, s->me.sha256, &kept, e);
    free(to);
    if (r)
        return r;
    s->me.mtime_ns = kept.mtime_ns;
    if (kept.mode)
        s->me.mode = kept.mode;
    if (!m->src_true_mtime && s->src.listed_modified_ns) {
        s->me.has_listed_mtime = true;
        s->me.listed_mtime_ns = s->src.listed_modified_ns;
    }
    return 0;
}

static int remove_current(struct mir *m, const char *path, struct err *e)
{
    char *key = key_join("current/", path, "");
    if (!key)
        return err_set(e, ERR_NOMEM, "out of memory");
    int r = storage_remove(m->dst, key, e);
    free(key);
    if (r == ERR_NOT_FOUND) {
        err_clear(e);
        r = 0;
    }
    return r;
}

/* One slot's work on a worker thread; per-file problems go into the slot. */
static void slot_do(struct mir *m, struct slot *s, unsigned char *buf)
{
    struct err e;
    err_clear(&e);
    int r = write_marker(m, &e);
    if (!r && s->displace)
        r = displace(m, s, buf, &e);
    if (!r && s->work == WORK_UPLOAD)
        r = upload(m, s, buf, &e);
    else if (!r && s->work == WORK_REMOVE)
        r = remove_current(m, s->me.path, &e);
    if (r && (r == ERR_CANCELLED || !transfer_error_is_per_file(r))) {
        if (!atomic_load(&m->fe.stop))
            fail_run(m, &e);
        return;
    }
    atomic_fetch_add(&m->files_done, 1);
    if (r) {
        s->me.err_code = r;
        s->me.err_msg = strdup(e.msg);
        s->me.sha256[0] = '\0';
        atomic_fetch_add(&m->errors, 1);
        log_warn("%s", e.msg);
        emit(m, s->me.path, EVENT_ACTION_FAILED, (int64_t)s->me.size, NULL, r, e.msg);
        return;
    }
    if (s->work == WORK_UPLOAD) {
        atomic_fetch_add(&m->transferred, 1);
        atomic_fetch_add(&m->bytes_transferred, s->me.size);
    } else if (!s->in_manifest) {
        atomic_fetch_add(&m->deleted, 1);
    }
    emit(m, s->me.path, s->action, s->in_manifest ? (int64_t)s->me.size : -1, s->me.sha256, 0,
         NULL);
}

static void *worker_main(void *arg)
{
    struct mir *m = arg;
    unsigned char *buf = malloc(MIRROR_BLOCK);
    if (!buf) {
        struct err e;
        err_set(&e, ERR_NOMEM, "out of memory");
        fail_run(m, &e);
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    for (;;) {
        struct slot *s = NULL;
        while (!atomic_load(&m->fe.stop)) {
            while (m->next < m->count) {
                struct slot *c = &m->ring[(m->head + m->next) % m->cap];
                m->next++;
                if (c->work != WORK_NONE && !c->taken && !c->done) {
                    s = c;
                    break;
                }
            }
            if (s || m->closed)
                break;
            pthread_cond_wait(&m->cond_work, &m->lock);
        }
        if (!s)
            break;
        s->taken = true;
        snprintf(m->current, sizeof(m->current), "%s", s->me.path);
        pthread_mutex_unlock(&m->lock);
        slot_do(m, s, buf);
        pthread_mutex_lock(&m->lock);
        s->done = true;
        pthread_cond_broadcast(&m->cond_done);
    }
    pthread_mutex_unlock(&m->lock);
    free(buf);
    return NULL;
}

/* ---- the ring (main thread) ---------------------------------------------- */

static void slot_clear(struct slot *s)
{
    manifest_entry_clear(&s->me);
    storage_entry_clear(&s->src);
    memset(s, 0, sizeof(*s));
    manifest_entry_clear(&s->me);
}

/* Write out the finished slots at the head, in order. */
static int flush_head(struct mir *m, struct err *e)
{
    int r = 0;
    pthread_mutex_lock(&m->lock);
    while (m->count && m->ring[m->head].done && !r) {
        struct slot *s = &m->ring[m->head];
        pthread_mutex_unlock(&m->lock);
        /* a slot given up because the run stops has nothing to record */
        if ((r = first_error_check(&m->fe, e)) != 0) {
            pthread_mutex_lock(&m->lock);
            break;
        }
        if (s->in_manifest) {
            r = manifest_write_entry(m->mw, &s->me, e);
            if (!s->me.err_code) {
                m->files++;
                m->bytes += s->me.type == MANIFEST_FILE ? s->me.size : 0;
            }
        }
        slot_clear(s);
        pthread_mutex_lock(&m->lock);
        m->head = (m->head + 1) % m->cap;
        m->count--;
        if (m->next)
            m->next--;
    }
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int stopped(struct mir *m, struct err *e)
{
    return first_error_check(&m->fe, e);
}

/* A free slot at the tail (waiting for the head to finish when full). */
static int slot_get(struct mir *m, struct slot **out, struct err *e)
{
    for (;;) {
        int r = flush_head(m, e);
        if (r || (r = stopped(m, e)) != 0)
            return r;
        pthread_mutex_lock(&m->lock);
        if (m->count < m->cap) {
            *out = &m->ring[(m->head + m->count) % m->cap];
            pthread_mutex_unlock(&m->lock);
            return 0;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!m->ring[m->head].done && !atomic_load(&m->fe.stop))
            pthread_cond_timedwait(&m->cond_done, &m->lock, &ts);
        pthread_mutex_unlock(&m->lock);
    }
}

/* Publish the slot slot_get gave. */
static void slot_push(struct mir *m, struct slot *s)
{
    pthread_mutex_lock(&m->lock);
    if (s->work == WORK_NONE)
        s->done = true;
    m->count++;
    if (s->work != WORK_NONE) /* waking workers for nothing costs a context switch per path */
        pthread_cond_signal(&m->cond_work);
    pthread_mutex_unlock(&m->lock);
}

/* Wait until every slot is written out. */
static int drain(struct mir *m, struct err *e)
{
    for (;;) {
        int r = flush_head(m, e);
        if (r || (r = stopped(m, e)) != 0)
            return r;
        pthread_mutex_lock(&m->lock);
        bool empty = m->count == 0;
        if (!empty && !m->ring[m->head].done && !atomic_load(&m->fe.stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&m->cond_done, &m->lock, &ts);
        }
        pthread_mutex_unlock(&m->lock);
        if (empty)
            return 0;
    }
}

/* ---- the merge ------------------------------------------------------------ */

/* The previous manifest's entries, on the read-ahead thread. */
static int prev_produce(void *ctx, void *item, struct err *e)
{
    struct mir *m = ctx;
    struct manifest_trailer_owned t;
    memset(&t, 0, sizeof(t));
    int r = manifest_read_next(m->prev.reader, item, &t, e);
    manifest_trailer_owned_clear(&t);
    if (r == 1 || r < 0)
        return r;
    return r == 2 ? 0 : err_set(e, ERR_INTERNAL, "manifest reader answered %d", r);
}

static void entry_free(void *item)
{
    manifest_entry_clear(item);
}

static int prev_next(struct mir *m, struct err *e)
{
    manifest_entry_clear(&m->pm);
    m->pm_valid = false;
    if (!m->prev_ahead)
        return 0;
    int r = ahead_next(m->prev_ahead, &m->pm, e);
    if (r == 1) {
        m->pm_valid = true;
        m->prev_entries++;
        return 0;
    }
    if (r == 0) {
        manifest_entry_clear(&m->pm);
        m->have_prev = false;
    }
    return r;
}

static int cur_next(struct mir *m, struct err *e)
{
    storage_entry_clear(&m->ce);
    if (!m->cur)
        return 0;
    for (;;) {
        int r = storage_list_next(m->cur, &m->ce, e);
        if (r <= 0) {
            storage_entry_clear(&m->ce);
            storage_list_close(m->cur);
            m->cur = NULL;
            return r;
        }
        if (m->ce.type == STORAGE_TYPE_FILE && strlen(m->ce.key) > 8) {
            memmove(m->ce.key, m->ce.key + 8, strlen(m->ce.key + 8) + 1);
            return 0;
        }
        storage_entry_clear(&m->ce);
    }
}

static bool is_dirty(struct mir *m, const char *path, struct err *e, int *r)
{
    *r = 0;
    if (!m->dirty)
        return false;
    const char *p;
    size_t run;
    uint64_t size;
    int x = vmerge_seek(m->dirty, path, &p, &run, &size, e);
    if (x < 0) {
        *r = x;
        return false;
    }
    return x == 1 && !strcmp(p, path);
}

static bool mtime_same(const struct mir *m, const struct storage_entry *s,
                       const struct manifest_entry *pe)
{
    if (!m->src_true_mtime)
        return s->listed_modified_ns && pe->has_listed_mtime &&
               pe->listed_mtime_ns == s->listed_modified_ns;
    if (s->mtime_ns == STORAGE_MTIME_UNKNOWN)
        return false;
    if (pe->mtime_ns == STORAGE_MTIME_UNKNOWN)
        return false;
    int64_t d =
        s->mtime_ns > pe->mtime_ns ? s->mtime_ns - pe->mtime_ns : pe->mtime_ns - s->mtime_ns;
    return d < m->mtime_tol;
}

/* The manifest entry of a listed path (strings copied). */
static int entry_from_listing(struct manifest_entry *me, const struct storage_entry *s,
                              struct err *e)
{
    manifest_entry_clear(me);
    me->path = strdup(s->key);
    me->path_len = strlen(s->key);
    me->type = s->type == STORAGE_TYPE_SYMLINK ? MANIFEST_SYMLINK : MANIFEST_FILE;
    me->size = s->type == STORAGE_TYPE_SYMLINK ? 0 : s->size;
    me->mtime_ns = s->mtime_ns;
    me->mode = s->mode;
    if (s->type == STORAGE_TYPE_SYMLINK) {
        me->target = strdup(s->link_target ? s->link_target : "");
        me->target_len = strlen(s->link_target ? s->link_target : "");
        if (!me->target)
            return err_set(e, ERR_NOMEM, "out of memory");
    } else {
        me->stored_current = true;
    }
    return me->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

/* Take over the previous entry (path, hash, ...) into the slot. */
static void entry_take_prev(struct mir *m, struct manifest_entry *me)
{
    manifest_entry_clear(me);
    *me = m->pm;
    memset(&m->pm, 0, sizeof(m->pm));
    m->pm_valid = false;
}

static int spool_delete(struct mir *m, const char *path, bool displace_it, bool counted,
                        struct err *e)
{
    unsigned char flags = (unsigned char)((displace_it ? 1 : 0) | (counted ? 2 : 0));
    uint32_t n = (uint32_t)strlen(path);
    if (fwrite(&flags, 1, 1, m->spool) != 1 || fwrite(&n, sizeof(n), 1, m->spool) != 1 ||
        fwrite(path, 1, n, m->spool) != n)
        return err_set(e, ERR_IO, "cannot write the list of deletions to a temporary file");
    if (counted)
        m->deletions++;
    return 0;
}

/* One path of the merge: s (listed now, may be NULL), the previous entry
 * m->pm when pm_here, current/ holding it when cur_here. */
static int merge_one(struct mir *m, const struct storage_entry *s, bool pm_here, bool cur_here,
                     struct err *e)
{
    const char *path = s ? s->key : pm_here ? m->pm.path : m->ce.key;
    int r;
    bool dirty = is_dirty(m, path, e, &r);
    if (r)
        return r;
    const struct manifest_entry *pe = pm_here ? &m->pm : NULL;
    bool prev_file = pe && pe->type == MANIFEST_FILE;

    if (!s) {
        if (under_skipped(m, path)) {
            if (!pe)
                return 0; /* unknown, not absent: left as it is */
            struct slot *sl;
            if ((r = slot_get(m, &sl, e)) != 0)
                return r;
            entry_take_prev(m, &sl->me);
            sl->in_manifest = true;
            slot_push(m, sl);
            return 0;
        }
        if (pe)
            return spool_delete(m, path, prev_file, true, e);
        return spool_delete(m, path, false, false, e); /* left by an interrupted run */
    }

    struct slot *sl;
    if ((r = slot_get(m, &sl, e)) != 0)
        return r;
    sl->in_manifest = true;
    sl->dirty = dirty;
    if (s->type == STORAGE_TYPE_SYMLINK) {
        if ((r = entry_from_listing(&sl->me, s, e)) != 0)
            return r;
        bool same = pe && pe->type == MANIFEST_SYMLINK && !pe->err_code && pe->target &&
                    !strcmp(pe->target, sl->me.target);
        sl->action = same ? EVENT_ACTION_UNCHANGED
                     : pe ? EVENT_ACTION_UPDATED
                          : EVENT_ACTION_COPIED;
        /* a file that became a link leaves current/ (kept in versions/) */
        if (prev_file || cur_here) {
            sl->work = WORK_REMOVE;
            sl->displace = prev_file;
        } else {
            atomic_fetch_add(&m->files_done, 1);
            emit(m, path, sl->action, 0, NULL, 0, NULL);
        }
        slot_push(m, sl);
        return 0;
    }
    bool unchanged = prev_file && !pe->err_code && !dirty && pe->size == s->size && pe->sha256[0] &&
                     mtime_same(m, s, pe);
    if (unchanged) {
        uint32_t mode = s->mode;
        entry_take_prev(m, &sl->me);
        if (mode)
            sl->me.mode = mode;
        sl->me.stored_current = true;
        atomic_fetch_add(&m->unchanged, 1);
        atomic_fetch_add(&m->files_done, 1);
        emit(m, path, EVENT_ACTION_UNCHANGED, (int64_t)sl->me.size, sl->me.sha256, 0, NULL);
        slot_push(m, sl);
        return 0;
    }
    if ((r = entry_from_listing(&sl->me, s, e)) != 0 || (r = storage_entry_copy(&sl->src, s)) != 0)
        return r ? r : err_set(e, ERR_NOMEM, "out of memory");
    sl->work = WORK_UPLOAD;
    sl->displace = prev_file;
    sl->action = pe || cur_here ? EVENT_ACTION_UPDATED : EVENT_ACTION_COPIED;
    slot_push(m, sl);
    return 0;
}

static void set_current(struct mir *m, const char *key)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->current, sizeof(m->current), "%s", key);
    pthread_mutex_unlock(&m->lock);
}

/* The next file or symlink of the source listing, on the read-ahead
 * thread: 1, 0 at its end, or an error. */
static int src_produce(void *ctx, void *item, struct err *e)
{
    struct mir *m = ctx;
    struct storage_entry *s = item;
    for (;;) {
        int x = storage_list_next(m->src_ls, s, e);
        if (x <= 0)
            return x;
        m->src_listed++; /* read by the main thread once the listing ended */
        if (s->type == STORAGE_TYPE_FILE || s->type == STORAGE_TYPE_SYMLINK)
            return 1;
        storage_entry_clear(s);
    }
}

static void storage_entry_free(void *item)
{
    storage_entry_clear(item);
}

#define AHEAD_BATCH 256
#define AHEAD_BATCHES 8

static int merge(struct mir *m, struct err *e)
{
    struct storage_entry s;
    memset(&s, 0, sizeof(s));
    int r = storage_list_open(m->src, "", &m->src_ls, e);
    if (r)
        return r;
    m->src_ahead = ahead_start(src_produce, storage_entry_free, m, sizeof(struct storage_entry),
                               AHEAD_BATCH, AHEAD_BATCHES);
    if (m->have_prev)
        m->prev_ahead = ahead_start(prev_produce, entry_free, m, sizeof(struct manifest_entry),
                                    AHEAD_BATCH, AHEAD_BATCHES);
    if (!m->src_ahead || (m->have_prev && !m->prev_ahead)) {
        r = err_set(e, ERR_NOMEM, "cannot start the threads that read ahead");
        goto out;
    }
    bool s_ok = false, s_end = false;
    if ((r = prev_next(m, e)) != 0 || (r = cur_next(m, e)) != 0)
        goto out;
    for (;;) {
        if (!s_ok && !s_end) {
            int x = ahead_next(m->src_ahead, &s, e);
            if (x < 0) {
                r = x;
                goto out;
            }
            s_ok = x == 1;
            s_end = x == 0;
        }
        if ((r = stopped(m, e)) != 0)
            goto out;
        const char *ks = s_ok ? s.key : NULL;
        const char *kp = m->pm_valid ? m->pm.path : NULL;
        const char *kc = m->ce.key;
        const char *k = ks;
        if (kp && (!k || storage_key_cmp(kp, k) < 0))
            k = kp;
        if (kc && (!k || storage_key_cmp(kc, k) < 0))
            k = kc;
        if (!k)
            break;
        bool hs = ks && !strcmp(ks, k), hp = kp && !strcmp(kp, k), hc = kc && !strcmp(kc, k);
        if (hs)
            set_current(m, k);
        if ((r = merge_one(m, hs ? &s : NULL, hp, hc, e)) != 0)
            goto out;
        if (hs) {
            storage_entry_clear(&s);
            s_ok = false;
        }
        if (hp && (r = prev_next(m, e)) != 0)
            goto out;
        if (hc && (r = cur_next(m, e)) != 0)
            goto out;
    }
out:
    storage_entry_clear(&s);
    ahead_stop(m->src_ahead);
    ahead_stop(m->prev_ahead);
    m->src_ahead = m->prev_ahead = NULL;
    storage_list_close(m->src_ls);
    m->src_ls = NULL;
    return r;
}

/* The deletions, after the checks that may refuse them all. */
static int run_deletions(struct mir *m, struct err *e)
{
    if (m->src_listed == 0 && m->prev_entries > 0 && !m->o->allow_empty_source)
        return err_set(e, ERR_REFUSED,
                       "the source '%s' listed nothing while run %s had %d or more paths; "
                       "nothing was deleted (give --allow-empty-source if it really is empty)",
                       storage_display(m->src), m->prev.header.run, m->prev_entries);
    if (m->o->max_delete >= 0 && m->deletions > (uint64_t)m->o->max_delete)
        return err_set(e, ERR_REFUSED,
                       "%" PRIu64
                       " paths were deleted from the source, more than --max-delete %" PRId64
                       "; nothing was deleted",
                       m->deletions, m->o->max_delete);
    if (fflush(m->spool) != 0 || fseek(m->spool, 0, SEEK_SET) != 0)
        return err_set(e, ERR_IO, "cannot read back the list of deletions");
    int r = 0;
    for (;;) {
        unsigned char flags;
        uint32_t n;
        if (fread(&flags, 1, 1, m->spool) != 1)
            break;
        char *path = NULL;
        if (fread(&n, sizeof(n), 1, m->spool) != 1 || !(path = malloc((size_t)n + 1)) ||
            fread(path, 1, n, m->spool) != n) {
            free(path);
            return err_set(e, ERR_IO, "cannot read back the list of deletions");
        }
        path[n] = '\0';
        struct slot *sl;
        if ((r = slot_get(m, &sl, e)) != 0) {
            free(path);
            return r;
        }
        sl->me.path = path;
        sl->me.path_len = n;
        sl->work = WORK_REMOVE;
        sl->displace = flags & 1;
        sl->action = EVENT_ACTION_DELETED;
        sl->in_manifest = false;
        slot_push(m, sl);
    }
    return drain(m, e);
}

/* ---- setup and commit ------------------------------------------------------ */

static int manifest_sink(void *ctx, const void *data, size_t len, struct err *e)
{
    struct mir *m = ctx;
    return filter_write(m->mchain, data, len, e);
}

static int sink_storage(void *ctx, const void *data, size_t len, struct err *e)
{
    return storage_write(ctx, data, len, e);
}

/* The previous mirror run, and the interrupted runs after it. */
static int find_prev(struct mir *m, struct err *e)
{
    struct run_info *v = NULL;
    size_t n = 0;
    catalog_runid *ir = NULL;
    size_t ni = 0;
    int r = catalog_list(m->dst, false, &v, &n, e);
    if (!r)
        r = catalog_interrupted(m->dst, false, &ir, &ni, e);
    if (r)
        goto out;
    const struct run_info *p = NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i].mode == MANIFEST_MIRROR && strcmp(v[i].run, m->run) < 0)
            p = &v[i];
    if (p) {
        if ((r = catalog_manifest_open(m->dst, p, &m->prev, e)) != 0)
            goto out;
        m->have_prev = true;
        log_info("comparing with run %s", p->run);
    }
    size_t first = 0;
    while (first < ni && p && strcmp(ir[first], p->run) <= 0)
        first++;
    if (first < ni) {
        log_warn("run %s stopped before it finished; this run repairs what it left in current/",
                 ir[ni - 1]);
        if ((r = vmerge_open(m->dst, ir + first, ni - first, &m->dirty, e)) != 0)
            goto out;
        if ((r = storage_list_open(m->dst, "current/", &m->cur, e)) != 0)
            goto out;
    }
out:
    free(v);
    free(ir);
    return r;
}

static int setup(struct mir *m, struct err *e)
{
    int r = find_prev(m, e);
    if (r)
        return r;
    if (!(m->spool = tmpfile()))
        return err_set(e, ERR_IO, "cannot create a temporary file for the list of deletions");
    char key[128];
    snprintf(key, sizeof(key), "runs/%s.manifest.jsonl.zst", m->run);
    struct storage_write_opts wo = {
        .size_hint = -1, .mtime_ns = STORAGE_MTIME_UNKNOWN, .content_type = "application/zstd"};
    if ((r = storage_write_open(m->dst, key, &wo, &m->w_manifest, e)) != 0)
        return r;
    /* level 1: a manifest is mostly hashes, which no level shrinks */
    struct filter *parts[] = {filter_compress_new(COMPRESS_ZSTD, 1, 0),
                              filter_sink_new(sink_storage, m->w_manifest)};
    m->mchain = filter_chain(parts, 2);
    m->mw = manifest_writer_new(manifest_sink, m);
    m->cap = (size_t)(m->nthreads > 0 ? m->nthreads : 4) * 64;
    m->ring = calloc(m->cap, sizeof(*m->ring));
    if (!m->mchain || !m->mw || !m->ring)
        return err_set(e, ERR_NOMEM, "out of memory starting the run");
    for (size_t i = 0; i < m->cap; i++)
        manifest_entry_clear(&m->ring[i].me);
    char tool[64];
    snprintf(tool, sizeof(tool), "arca %s", ARCA_VERSION);
    struct manifest_header h = {
        .format_version = MANIFEST_FORMAT_VERSION,
        .mode = MANIFEST_MIRROR,
        .source = m->o->source_desc ? m->o->source_desc : storage_display(m->src),
        .job = m->o->job,
        .tool = tool,
        .started_ms = time_now_ms(),
    };
    snprintf(h.run, sizeof(h.run), "%s", m->run);
    return manifest_write_header(m->mw, &h, e);
}

static int commit(struct mir *m, enum event_status status, struct err *e)
{
    int r = storage_sync(m->dst, e);
    if (r)
        return r;
    struct manifest_trailer t = {.finished_ms = time_now_ms(),
                                 .status = status == EVENT_STATUS_PARTIAL ? "partial" : "succeeded",
                                 .files = m->files,
                                 .bytes = m->bytes,
                                 .errors = atomic_load(&m->errors) + atomic_load(&m->list_errors),
                                 .archive_size = -1};
    if ((r = manifest_write_trailer(m->mw, &t, e)) != 0 || (r = filter_finish(m->mchain, e)) != 0)
        return r;
    r = storage_write_commit(m->w_manifest, e);
    m->w_manifest = NULL;
    if (!r)
        r = storage_sync(m->dst, e);
    if (!r && m->marker_written) {
        char key[64];
        struct err ig;
        catalog_marker_key(key, sizeof(key), m->run);
        if (storage_remove(m->dst, key, &ig) != 0)
            log_warn("could not remove '%s': %s (harmless: the run has its manifest)", key, ig.msg);
    }
    return r;
}

static void workers_start(struct mir *m, struct err *e, int *r)
{
    m->threads = calloc((size_t)m->nthreads, sizeof(*m->threads));
    if (!m->threads) {
        *r = err_set(e, ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < m->nthreads; i++) {
        if (pthread_create(&m->threads[i], NULL, worker_main, m) != 0) {
            m->nthreads = i;
            *r = err_set(e, ERR_NOMEM, "cannot start a worker thread");
            return;
        }
    }
}

static void workers_stop(struct mir *m)
{
    pthread_mutex_lock(&m->lock);
    m->closed = true;
    pthread_cond_broadcast(&m->cond_work);
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < m->nthreads; i++)
        pthread_join(m->threads[i], NULL);
    free(m->threads);
    m->threads = NULL;
}

int backup_mirror(struct storage *src, struct storage *dst, const struct backup_opts *o,
                  const char *run, struct backup_result *res, struct err *e)
{
    struct mir m;
    memset(&m, 0, sizeof(m));
    m.src = src;
    m.dst = dst;
    m.o = o;
    m.run = run;
    m.nthreads = o->transfers > 0 ? (o->transfers > 256 ? 256 : o->transfers) : 4;
    m.src_true_mtime = storage_features(src) & STORAGE_FEATURE_LIST_MTIME;
    m.mtime_tol = storage_mtime_precision(src);
    if (m.mtime_tol < 1000000)
        m.mtime_tol = 1000000;
    manifest_entry_clear(&m.pm);
    clock_gettime(CLOCK_MONOTONIC, &m.start);
    pthread_mutex_init(&m.lock, NULL);
    first_error_init(&m.fe);
    pthread_mutex_init(&m.marker_lock, NULL);
    pthread_cond_init(&m.cond_work, NULL);
    pthread_cond_init(&m.cond_done, NULL);
    storage_set_list_error_handler(src, on_list_error, &m);

    struct progress_ticker *pt = NULL;
    int r = setup(&m, e);
    if (!r) {
        pt = progress_ticker_start(o->progress_interval, o->events, progress_fill, &m);
        workers_start(&m, e, &r);
    }
    if (!r)
        r = merge(&m, e);
    if (!r)
        r = drain(&m, e);
    if (!r)
        r = run_deletions(&m, e);
    if (!r && cancel_requested())
        r = err_set(e, ERR_CANCELLED, "interrupted");
    if (m.threads) {
        if (r)
            atomic_store(&m.fe.stop, true);
        workers_stop(&m);
    }
    enum event_status status = EVENT_STATUS_SUCCEEDED;
    if (!r && (atomic_load(&m.errors) || atomic_load(&m.list_errors)))
        status = EVENT_STATUS_PARTIAL;
    if (!r)
        r = commit(&m, status, e);
    if (r)
        status = r == ERR_CANCELLED ? EVENT_STATUS_CANCELLED : EVENT_STATUS_FAILED;
    progress_ticker_stop(pt);
    if (r && !m.marker_written)
        log_info("run %s changed nothing at the destination", run);

    if (m.w_manifest)
        storage_write_abort(m.w_manifest);
    storage_set_list_error_handler(src, NULL, NULL);
    for (size_t i = 0; m.ring && i < m.cap; i++)
        slot_clear(&m.ring[i]);
    free(m.ring);
    filter_chain_free(m.mchain);
    manifest_writer_free(m.mw);
    manifest_entry_clear(&m.pm);
    if (m.have_prev || m.prev.reader)
        catalog_manifest_close(&m.prev);
    vmerge_close(m.dirty);
    storage_entry_clear(&m.ce);
    storage_list_close(m.cur);
    for (size_t i = 0; i < m.nskipped; i++)
        free(m.skipped[i]);
    free(m.skipped);
    if (m.spool)
        fclose(m.spool);
    pthread_mutex_destroy(&m.lock);
    first_error_destroy(&m.fe);
    pthread_mutex_destroy(&m.marker_lock);
    pthread_cond_destroy(&m.cond_work);
    pthread_cond_destroy(&m.cond_done);

    res->status = status;
    res->files = m.files;
    res->bytes = m.bytes;
    res->errors = atomic_load(&m.errors) + atomic_load(&m.list_errors);
    res->files_transferred = atomic_load(&m.transferred);
    res->bytes_transferred = atomic_load(&m.bytes_transferred);
    res->files_unchanged = atomic_load(&m.unchanged);
    res->files_deleted = atomic_load(&m.deleted);
    res->elapsed = elapsed_since(&m.start);
    return r;
}
