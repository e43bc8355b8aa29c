/*
 * transfer.c - copy, sync and check: the run around the work items.
 *
 * Why it is shaped this way:
 *
 *  - Both listings are consumed as sorted streams and merged on the calling
 *    thread, one entry of each side at a time. Nothing ever holds a whole
 *    listing, so 10 million objects cost what 10 do. The price is that
 *    listings must be sorted; the storage layer guarantees it or stops with
 *    ERR_UNSORTED, which here ends the run before any deletion.
 *  - Decisions the listings settle (size differs, hashes or true mtimes
 *    equal) are made inline; everything needing I/O becomes a work item in
 *    a small bounded ring served by `transfers` threads. The merge blocks
 *    while the ring is full, so a fast lister cannot run ahead of slow
 *    uploads with unbounded memory.
 *  - A sync deletes last: the keys only the destination has are spooled to
 *    an anonymous temporary file while merging (bounded memory again) and
 *    removed only once both listings ended cleanly, every transfer finished
 *    without error, and the safety checks (empty source, --max-delete)
 *    passed. A run that is unsure what the source holds never deletes.
 */
#include "engine/transfer_internal.h"
#include "core/cancel.h"
#include "core/log.h"
#include "io/progress.h"
#include "storage/multiread.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRANSFER_DEFAULT_TRANSFERS 4
#define TRANSFER_MAX_TRANSFERS 256
#define TRANSFER_DEFAULT_BLOCK ((size_t)1 << 20)
#define TRANSFER_DEFAULT_READ_STREAMS 4
#define TRANSFER_DEFAULT_STREAM_CUTOFF ((uint64_t)64 << 20)

void transfer_opts_init(struct transfer_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->transfers = TRANSFER_DEFAULT_TRANSFERS;
    o->max_delete = -1;
    o->block_size = TRANSFER_DEFAULT_BLOCK;
    o->read_streams = TRANSFER_DEFAULT_READ_STREAMS;
    o->read_stream_cutoff = TRANSFER_DEFAULT_STREAM_CUTOFF;
}

double transfer_elapsed(const struct transfer_run *run)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - run->start.tv_sec) +
           (double)(now.tv_nsec - run->start.tv_nsec) / 1e9;
}

bool transfer_error_is_per_file(int code)
{
    switch (code) {
    case ERR_NOT_FOUND:
    case ERR_PERM:
    case ERR_IO:
    case ERR_EXISTS:
    case ERR_USAGE:
    case ERR_PROTO:
        return true;
    default:
        return false;
    }
}

void transfer_run_fail(struct transfer_run *run, const struct err *e)
{
    pthread_mutex_lock(&run->lock);
    if (!run->fatal_code) {
        run->fatal_code = e->code ? e->code : ERR_INTERNAL;
        run->fatal = *e;
        run->fatal.code = run->fatal_code;
    }
    atomic_store(&run->stop, true);
    pthread_cond_broadcast(&run->cond_item);
    pthread_cond_broadcast(&run->cond_space);
    pthread_cond_broadcast(&run->cond_idle);
    pthread_mutex_unlock(&run->lock);
}

void transfer_emit_file(struct transfer_run *run, const char *path, enum event_action action,
                        int64_t size, const char *sha256, bool server_side, int code,
                        const char *error)
{
    if (!run->o.events)
        return;
    struct event_file f = {
        .path = path,
        .action = action,
        .size = size,
        .sha256 = sha256 && sha256[0] ? sha256 : NULL,
        .server_side = server_side,
        .dry_run = run->o.dry_run,
        .error_code = code,
        .error = error,
    };
    event_emit_file(run->o.events, &f);
}

void transfer_item_error(struct transfer_run *run, const char *path, int64_t size,
                         const struct err *e)
{
    if (transfer_error_is_per_file(e->code)) {
        atomic_fetch_add(&run->files_failed, 1);
        transfer_emit_file(run, path, EVENT_ACTION_FAILED, size, NULL, false, e->code, e->msg);
        return;
    }
    /* An item given up because the run already stopped is not news. */
    if (atomic_load(&run->stop) && e->code == ERR_CANCELLED)
        return;
    transfer_run_fail(run, e);
}

/* ---- the queue ---------------------------------------------------------- */

static void item_clear(struct work_item *it)
{
    storage_entry_clear(&it->src);
    storage_entry_clear(&it->dst);
}

/* Take ownership of *it (it is zeroed). Blocks while the ring is full.
 * false when the run stopped (the item is freed). */
static bool queue_push(struct transfer_run *run, struct work_item *it)
{
    pthread_mutex_lock(&run->lock);
    while (run->count == run->cap && !atomic_load(&run->stop))
        pthread_cond_wait(&run->cond_space, &run->lock);
    if (atomic_load(&run->stop)) {
        pthread_mutex_unlock(&run->lock);
        item_clear(it);
        return false;
    }
    run->ring[(run->head + run->count) % run->cap] = *it;
    run->count++;
    run->pending++;
    pthread_cond_signal(&run->cond_item);
    pthread_mutex_unlock(&run->lock);
    memset(it, 0, sizeof(*it));
    it->src.mtime_ns = it->dst.mtime_ns = STORAGE_MTIME_UNKNOWN;
    return true;
}

/* Wait until nothing is queued or being processed. */
static void queue_wait_idle(struct transfer_run *run)
{
    pthread_mutex_lock(&run->lock);
    while (run->pending > 0)
        pthread_cond_wait(&run->cond_idle, &run->lock);
    pthread_mutex_unlock(&run->lock);
}

static void queue_close(struct transfer_run *run)
{
    pthread_mutex_lock(&run->lock);
    run->closed = true;
    pthread_cond_broadcast(&run->cond_item);
    pthread_mutex_unlock(&run->lock);
}

/* Bytes an item counts for in progress: what it reads. Deletions count as
 * files only. */
static uint64_t item_size(const struct work_item *it)
{
    return it->kind == WORK_DELETE ? 0 : it->src.size;
}

static void *worker_main(void *arg)
{
    struct transfer_worker *w = arg;
    struct transfer_run *run = w->run;
    for (;;) {
        struct work_item it;
        pthread_mutex_lock(&run->lock);
        while (run->count == 0 && !run->closed)
            pthread_cond_wait(&run->cond_item, &run->lock);
        if (run->count == 0) {
            pthread_mutex_unlock(&run->lock);
            break;
        }
        it = run->ring[run->head];
        run->head = (run->head + 1) % run->cap;
        run->count--;
        pthread_cond_signal(&run->cond_space);
        const char *key = it.kind == WORK_DELETE ? it.dst.key : it.src.key;
        snprintf(run->current, sizeof(run->current), "%s", key ? key : "");
        pthread_mutex_unlock(&run->lock);

        /* after a whole-run error, queued items are dropped unprocessed */
        if (!atomic_load(&run->stop))
            transfer_work_do(w, &it);
        /* the item is done: its bytes count whether they were read or not */
        uint64_t seen = atomic_exchange(&w->bytes, 0), size = item_size(&it);
        if (seen < size)
            atomic_fetch_add(&run->bytes_done, size - seen);
        atomic_fetch_add(&run->files_done, 1);
        item_clear(&it);

        pthread_mutex_lock(&run->lock);
        if (--run->pending == 0)
            pthread_cond_broadcast(&run->cond_idle);
        pthread_mutex_unlock(&run->lock);
    }
    return NULL;
}

/* ---- progress ----------------------------------------------------------- */

/* Called by the progress ticker's thread. */
static void progress_fill(void *ctx, struct event_progress *p)
{
    struct transfer_run *run = ctx;
    p->phase = (enum event_phase)atomic_load(&run->phase);
    uint64_t done = atomic_load(&run->bytes_done);
    bool known = atomic_load(&run->totals_known);
    uint64_t btotal = atomic_load(&run->bytes_total);
    uint64_t ftotal = atomic_load(&run->files_total);
    uint64_t fdone = atomic_load(&run->files_done);
    if (known && done > btotal)
        done = btotal;
    if (known && fdone > ftotal)
        fdone = ftotal;
    p->bytes_done = done;
    p->files_done = fdone;
    p->bytes_total = known ? (int64_t)btotal : -1;
    p->files_total = known ? (int64_t)ftotal : -1;
    p->elapsed = transfer_elapsed(run);
    pthread_mutex_lock(&run->lock);
    snprintf(run->progress_current, sizeof(run->progress_current), "%s", run->current);
    pthread_mutex_unlock(&run->lock);
    p->current = run->progress_current[0] ? run->progress_current : NULL;
}

/* ---- listings that skip unreadable parts ------------------------------- */

static int on_list_error(void *ctx, const char *key, const struct err *le)
{
    struct transfer_run *run = ctx;
    atomic_fetch_add(&run->list_errors, 1);
    atomic_fetch_add(&run->files_failed, 1);
    transfer_emit_file(run, key, EVENT_ACTION_FAILED, -1, NULL, false, le->code ? le->code : ERR_IO,
                       le->msg);
    return 0;
}

static void list_handlers_set(struct transfer_run *run, bool on)
{
    struct storage *sts[2] = {run->src, run->dst};
    for (int i = 0; i < 2; i++)
        storage_set_list_error_handler(sts[i], on ? on_list_error : NULL, on ? run : NULL);
}

/* ---- the merge ---------------------------------------------------------- */

/* Move *ent into dst (ent becomes empty). */
static void entry_move(struct storage_entry *dst, struct storage_entry *ent)
{
    *dst = *ent;
    memset(ent, 0, sizeof(*ent));
    ent->mtime_ns = STORAGE_MTIME_UNKNOWN;
}

static bool push_item(struct transfer_run *run, enum work_kind kind, struct storage_entry *s,
                      struct storage_entry *d, bool changed)
{
    struct work_item it;
    memset(&it, 0, sizeof(it));
    it.src.mtime_ns = it.dst.mtime_ns = STORAGE_MTIME_UNKNOWN;
    it.kind = kind;
    it.changed = changed;
    if (s)
        entry_move(&it.src, s);
    if (d)
        entry_move(&it.dst, d);
    atomic_fetch_add(&run->bytes_total, item_size(&it));
    return queue_push(run, &it);
}

static void emit_skipped_symlink(struct transfer_run *run, const struct storage_entry *ent)
{
    atomic_fetch_add(&run->files_skipped, 1);
    atomic_fetch_add(&run->files_done, 1);
    transfer_emit_file(run, ent->key, EVENT_ACTION_SKIPPED, -1, NULL, false, 0,
                       "symbolic link, not copied");
}

static int spool_delete(struct transfer_run *run, const struct storage_entry *d, struct err *e)
{
    if (!run->spool && !(run->spool = tmpfile()))
        return err_set(e, ERR_IO,
                       "cannot create a temporary file to list deletions: %s; "
                       "check TMPDIR",
                       strerror(errno));
    uint32_t len = (uint32_t)strlen(d->key);
    uint64_t size = d->size;
    if (fwrite(&len, sizeof(len), 1, run->spool) != 1 ||
        fwrite(&size, sizeof(size), 1, run->spool) != 1 ||
        fwrite(d->key, 1, len, run->spool) != len)
        return err_set(e, ERR_IO, "cannot write the temporary list of deletions: %s; check TMPDIR",
                       strerror(errno));
    run->delete_count++;
    return 0;
}

static int on_src_only(struct transfer_run *run, struct storage_entry *s, struct err *e)
{
    (void)e;
    if (s->type == STORAGE_TYPE_DIR)
        return 0;
    atomic_fetch_add(&run->files_total, 1);
    if (s->type == STORAGE_TYPE_SYMLINK) {
        emit_skipped_symlink(run, s);
        return 0;
    }
    if (run->mode == TRANSFER_MODE_CHECK) {
        atomic_fetch_add(&run->files_checked, 1);
        atomic_fetch_add(&run->differences, 1);
        atomic_fetch_add(&run->files_done, 1);
        transfer_emit_file(run, s->key, EVENT_ACTION_MISSING_DST, (int64_t)s->size, NULL, false, 0,
                           NULL);
        return 0;
    }
    push_item(run, WORK_TRANSFER, s, NULL, true);
    return 0;
}

static int on_dst_only(struct transfer_run *run, struct storage_entry *d, struct err *e)
{
    if (d->type == STORAGE_TYPE_DIR)
        return 0;
    if (run->mode == TRANSFER_MODE_CHECK) {
        atomic_fetch_add(&run->files_total, 1);
        atomic_fetch_add(&run->files_done, 1);
        if (d->type == STORAGE_TYPE_SYMLINK) {
            atomic_fetch_add(&run->files_skipped, 1);
            transfer_emit_file(run, d->key, EVENT_ACTION_SKIPPED, -1, NULL, false, 0,
                               "symbolic link, not compared");
            return 0;
        }
        atomic_fetch_add(&run->files_checked, 1);
        atomic_fetch_add(&run->differences, 1);
        transfer_emit_file(run, d->key, EVENT_ACTION_MISSING_SRC, (int64_t)d->size, NULL, false, 0,
                           NULL);
        return 0;
    }
    if (run->mode == TRANSFER_MODE_SYNC)
        return spool_delete(run, d, e);
    return 0;
}

/* Rules 1, 3 and 4 of transfer.h: 1 unchanged, 0 changed, -1 needs I/O. */
static int decide_from_listing(const struct transfer_run *run, const struct storage_entry *s,
                               const struct storage_entry *d)
{
    if (s->size != d->size)
        return 0;
    if (run->o.checksum) {
        if (s->sha256[0] && d->sha256[0])
            return strcmp(s->sha256, d->sha256) == 0;
        if (s->md5[0] && d->md5[0])
            return strcmp(s->md5, d->md5) == 0;
        return -1;
    }
    if (s->md5[0] && d->md5[0])
        return strcmp(s->md5, d->md5) == 0;
    if (s->sha256[0] && d->sha256[0])
        return strcmp(s->sha256, d->sha256) == 0;
    if (run->both_list_mtime && s->mtime_ns != STORAGE_MTIME_UNKNOWN &&
        d->mtime_ns != STORAGE_MTIME_UNKNOWN) {
        int64_t diff =
            s->mtime_ns > d->mtime_ns ? s->mtime_ns - d->mtime_ns : d->mtime_ns - s->mtime_ns;
        return diff < run->mtime_tolerance_ns;
    }
    return -1;
}

static int on_both(struct transfer_run *run, struct storage_entry *s, struct storage_entry *d,
                   struct err *e)
{
    /* a directory entry counts as absent */
    if (s->type == STORAGE_TYPE_DIR)
        return on_dst_only(run, d, e);
    if (d->type == STORAGE_TYPE_DIR)
        return on_src_only(run, s, e);
    atomic_fetch_add(&run->files_total, 1);
    if (s->type == STORAGE_TYPE_SYMLINK) {
        emit_skipped_symlink(run, s);
        return 0;
    }
    if (run->mode == TRANSFER_MODE_CHECK) {
        if (d->type == STORAGE_TYPE_SYMLINK) {
            atomic_fetch_add(&run->files_skipped, 1);
            atomic_fetch_add(&run->files_done, 1);
            transfer_emit_file(run, d->key, EVENT_ACTION_SKIPPED, -1, NULL, false, 0,
                               "symbolic link at the destination, not compared");
            return 0;
        }
        int same = -1;
        if (s->size != d->size)
            same = 0;
        else if (s->sha256[0] && d->sha256[0])
            same = strcmp(s->sha256, d->sha256) == 0;
        else if (s->md5[0] && d->md5[0])
            same = strcmp(s->md5, d->md5) == 0;
        if (same < 0) {
            push_item(run, WORK_COMPARE, s, d, false);
            return 0;
        }
        atomic_fetch_add(&run->files_checked, 1);
        atomic_fetch_add(&run->files_done, 1);
        if (!same)
            atomic_fetch_add(&run->differences, 1);
        transfer_emit_file(run, s->key, same ? EVENT_ACTION_MATCH : EVENT_ACTION_DIFFER,
                           (int64_t)s->size, same ? s->sha256 : NULL, false, 0, NULL);
        return 0;
    }
    atomic_fetch_add(&run->files_checked, 1);
    int same = d->type == STORAGE_TYPE_SYMLINK ? 0 : decide_from_listing(run, s, d);
    if (same == 1) {
        atomic_fetch_add(&run->files_unchanged, 1);
        atomic_fetch_add(&run->files_done, 1);
        transfer_emit_file(run, s->key, EVENT_ACTION_UNCHANGED, (int64_t)s->size, s->sha256, false,
                           0, NULL);
        return 0;
    }
    push_item(run, WORK_TRANSFER, s, d, same == 0);
    return 0;
}

static int list_next(struct transfer_run *run, struct storage_list *l, struct storage *st,
                     struct storage_entry *ent, bool *have, struct err *e)
{
    int r;
    do {
        storage_entry_clear(ent);
        r = storage_list_next(l, ent, e);
        /* with only_key the listing covers its prefix: skip "key2", "key/x" */
    } while (r == 1 && run->o.only_key && strcmp(ent->key, run->o.only_key) != 0);
    if (r < 0) {
        *have = false;
        if (r != ERR_UNSORTED && r != ERR_CANCELLED)
            err_wrap(e, "listing '%s'", storage_display(st));
        return r;
    }
    *have = r == 1;
    return 0;
}

/* Merge both listings, dispatching work. Whole-run errors are returned. */
static int run_merge(struct transfer_run *run, struct err *e)
{
    struct storage_list *ls = NULL, *ld = NULL;
    struct storage_entry s, d;
    bool have_s = false, have_d = false;
    int r;
    memset(&s, 0, sizeof(s));
    memset(&d, 0, sizeof(d));

    const char *prefix = run->o.only_key ? run->o.only_key : "";
    r = storage_list_open(run->src, prefix, &ls, e);
    if (r) {
        if (r != ERR_CANCELLED)
            err_wrap(e, "listing '%s'", storage_display(run->src));
        goto out;
    }
    if (!run->dst_missing) {
        r = storage_list_open(run->dst, prefix, &ld, e);
        if (r) {
            if (r != ERR_CANCELLED)
                err_wrap(e, "listing '%s'", storage_display(run->dst));
            goto out;
        }
    }
    if ((r = list_next(run, ls, run->src, &s, &have_s, e)) != 0)
        goto out;
    if (have_s)
        run->src_listed++;
    if (ld && (r = list_next(run, ld, run->dst, &d, &have_d, e)) != 0)
        goto out;
    while (have_s || have_d) {
        if (atomic_load(&run->stop))
            break;
        int cmp = !have_s ? 1 : !have_d ? -1 : storage_key_cmp(s.key, d.key);
        if (cmp < 0)
            r = on_src_only(run, &s, e);
        else if (cmp > 0)
            r = on_dst_only(run, &d, e);
        else
            r = on_both(run, &s, &d, e);
        if (r)
            goto out;
        if (cmp <= 0) {
            if ((r = list_next(run, ls, run->src, &s, &have_s, e)) != 0)
                goto out;
            if (have_s)
                run->src_listed++;
        }
        if (cmp >= 0 && (r = list_next(run, ld, run->dst, &d, &have_d, e)) != 0)
            goto out;
    }
out:
    storage_entry_clear(&s);
    storage_entry_clear(&d);
    storage_list_close(ls);
    storage_list_close(ld);
    return r;
}

/* ---- deletions ---------------------------------------------------------- */

static int run_deletions(struct transfer_run *run, struct err *e)
{
    const char *sname = storage_display(run->src), *dname = storage_display(run->dst);
    if (run->delete_count == 0)
        return 0;
    if (run->src_listed == 0 && !run->o.allow_empty_source)
        return err_set(e, ERR_REFUSED,
                       "source '%s' listed no files; refusing to delete everything in '%s'; "
                       "pass --allow-empty-source if that is what you want",
                       sname, dname);
    if (run->o.max_delete >= 0 && run->delete_count > (uint64_t)run->o.max_delete)
        return err_set(e, ERR_REFUSED,
                       "refusing to delete %" PRIu64
                       " files from '%s': more than --max-delete %" PRId64
                       "; nothing was deleted, raise --max-delete if that is intended",
                       run->delete_count, dname, run->o.max_delete);
    uint64_t failed = atomic_load(&run->files_failed);
    if (failed > 0 || atomic_load(&run->list_errors) > 0) {
        log_warn("not deleting %" PRIu64 " files from '%s' as there were errors (%" PRIu64
                 " failed); fix them and run the sync again",
                 run->delete_count, dname, failed);
        return 0;
    }
    atomic_store(&run->phase, EVENT_PHASE_DELETING);
    atomic_fetch_add(&run->files_total, run->delete_count);
    if (fseek(run->spool, 0, SEEK_SET) != 0)
        return err_set(e, ERR_IO, "cannot read the temporary list of deletions: %s",
                       strerror(errno));
    for (uint64_t i = 0; i < run->delete_count && !atomic_load(&run->stop); i++) {
        if (cancel_requested())
            return err_set(e, ERR_CANCELLED, "interrupted");
        uint32_t len;
        uint64_t size;
        if (fread(&len, sizeof(len), 1, run->spool) != 1 ||
            fread(&size, sizeof(size), 1, run->spool) != 1)
            return err_set(e, ERR_IO, "the temporary list of deletions is truncated");
        char *key = malloc((size_t)len + 1);
        if (!key)
            return err_set(e, ERR_NOMEM, "out of memory deleting from '%s'", dname);
        if (fread(key, 1, len, run->spool) != len) {
            free(key);
            return err_set(e, ERR_IO, "the temporary list of deletions is truncated");
        }
        key[len] = '\0';
        struct storage_entry d;
        memset(&d, 0, sizeof(d));
        d.key = key;
        d.size = size;
        d.mtime_ns = STORAGE_MTIME_UNKNOWN;
        if (run->o.dry_run) {
            atomic_fetch_add(&run->files_deleted, 1);
            atomic_fetch_add(&run->files_done, 1);
            transfer_emit_file(run, key, EVENT_ACTION_DELETED, (int64_t)size, NULL, false, 0, NULL);
            storage_entry_clear(&d);
            continue;
        }
        struct work_item it;
        memset(&it, 0, sizeof(it));
        it.kind = WORK_DELETE;
        it.src.mtime_ns = STORAGE_MTIME_UNKNOWN;
        it.dst = d;
        queue_push(run, &it);
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

static int run_setup(struct transfer_run *run, struct err *e)
{
    struct transfer_opts *o = &run->o;
    if (o->transfers <= 0)
        o->transfers = TRANSFER_DEFAULT_TRANSFERS;
    if (o->transfers > TRANSFER_MAX_TRANSFERS)
        o->transfers = TRANSFER_MAX_TRANSFERS;
    if (!o->block_size)
        o->block_size = TRANSFER_DEFAULT_BLOCK;
    if (o->read_streams > MULTIREAD_MAX_STREAMS)
        o->read_streams = MULTIREAD_MAX_STREAMS;
    if (!o->read_stream_cutoff)
        o->read_stream_cutoff = TRANSFER_DEFAULT_STREAM_CUTOFF;
    run->cap = (size_t)o->transfers * 2 < 16 ? 16 : (size_t)o->transfers * 2;
    run->ring = calloc(run->cap, sizeof(*run->ring));
    run->workers = calloc((size_t)o->transfers, sizeof(*run->workers));
    if (!run->ring || !run->workers)
        return err_set(e, ERR_NOMEM, "out of memory starting %s", run->command);
    for (int i = 0; i < o->transfers; i++) {
        struct transfer_worker *w = &run->workers[i];
        w->run = run;
        if (!(w->buf = malloc(o->block_size)))
            return err_set(e, ERR_NOMEM, "out of memory starting %s", run->command);
    }
    for (int i = 0; i < o->transfers; i++) {
        struct transfer_worker *w = &run->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return err_set(e, ERR_NOMEM, "cannot start transfer threads");
        w->started = true;
        run->nworkers = i + 1;
    }
    run->progress = progress_ticker_start(o->progress_interval, o->events, progress_fill, run);
    return 0;
}

static int run_check_roots(struct transfer_run *run, struct err *e)
{
    int r = storage_check_root(run->src, false, false, e);
    if (r)
        return r;
    if (run->mode == TRANSFER_MODE_CHECK)
        return storage_check_root(run->dst, false, false, e);
    if (run->o.dry_run) {
        r = storage_check_root(run->dst, false, false, e);
        if (r == ERR_NOT_FOUND) {
            run->dst_missing = true; /* a real run would create it */
            err_clear(e);
            return 0;
        }
        return r;
    }
    return storage_check_root(run->dst, true, true, e);
}

static enum event_status run_status(struct transfer_run *run)
{
    if (run->fatal_code)
        return run->fatal_code == ERR_CANCELLED ? EVENT_STATUS_CANCELLED : EVENT_STATUS_FAILED;
    if (atomic_load(&run->files_failed) > 0 || atomic_load(&run->list_errors) > 0)
        return EVENT_STATUS_PARTIAL;
    if (run->mode == TRANSFER_MODE_CHECK && atomic_load(&run->differences) > 0)
        return EVENT_STATUS_DIFFERENCES;
    return EVENT_STATUS_SUCCEEDED;
}

static int transfer_run(enum transfer_mode mode, const char *command, struct storage *src,
                        struct storage *dst, const struct transfer_opts *opts,
                        struct transfer_result *res, struct err *e)
{
    struct transfer_run run;
    struct err err;
    int r;
    memset(&run, 0, sizeof(run));
    err_clear(&err);
    run.mode = mode;
    run.command = command;
    run.src = src;
    run.dst = dst;
    if (opts)
        run.o = *opts;
    else
        transfer_opts_init(&run.o);
    clock_gettime(CLOCK_MONOTONIC, &run.start);
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.cond_item, NULL);
    pthread_cond_init(&run.cond_space, NULL);
    pthread_cond_init(&run.cond_idle, NULL);
    atomic_store(&run.phase, EVENT_PHASE_LISTING);

    unsigned sf = storage_features(src), df = storage_features(dst);
    run.both_list_mtime = (sf & STORAGE_FEATURE_LIST_MTIME) && (df & STORAGE_FEATURE_LIST_MTIME);
    run.mtime_tolerance_ns = TRANSFER_MTIME_TOLERANCE_NS;
    if (storage_mtime_precision(src) > run.mtime_tolerance_ns)
        run.mtime_tolerance_ns = storage_mtime_precision(src);
    if (storage_mtime_precision(dst) > run.mtime_tolerance_ns)
        run.mtime_tolerance_ns = storage_mtime_precision(dst);
    run.server_copy = (df & STORAGE_FEATURE_SERVER_COPY) &&
                      !strcmp(storage_driver_name(src), storage_driver_name(dst)) &&
                      !strcmp(storage_endpoint_id(src), storage_endpoint_id(dst));
    list_handlers_set(&run, true);

    if ((r = run_setup(&run, &err)) != 0) {
        transfer_run_fail(&run, &err);
        goto finish;
    }
    if ((r = run_check_roots(&run, &err)) != 0) {
        transfer_run_fail(&run, &err);
        goto finish;
    }
    r = run_merge(&run, &err);
    if (r) {
        transfer_run_fail(&run, &err);
        goto finish;
    }
    atomic_store(&run.totals_known, true);
    atomic_store(&run.phase,
                 mode == TRANSFER_MODE_CHECK ? EVENT_PHASE_CHECKING : EVENT_PHASE_TRANSFERRING);
    queue_wait_idle(&run);
    if (mode == TRANSFER_MODE_SYNC && !atomic_load(&run.stop)) {
        if ((r = run_deletions(&run, &err)) != 0)
            transfer_run_fail(&run, &err);
    }

finish:
    /* workers drain what is queued (dropping it after a failure), then exit */
    queue_close(&run);
    for (int i = 0; i < run.nworkers; i++)
        pthread_join(run.workers[i].thread, NULL);
    if (!atomic_load(&run.stop) && cancel_requested()) {
        err_set(&err, ERR_CANCELLED, "interrupted");
        transfer_run_fail(&run, &err);
    }
    /* what was committed becomes durable before the run says it is done */
    if (mode != TRANSFER_MODE_CHECK && !run.o.dry_run &&
        (atomic_load(&run.files_transferred) > 0 || atomic_load(&run.files_deleted) > 0) &&
        storage_sync(dst, &err) != 0)
        transfer_run_fail(&run, &err);
    atomic_store(&run.phase, EVENT_PHASE_DONE);
    progress_ticker_stop(run.progress);
    run.progress = NULL;
    list_handlers_set(&run, false);

    struct transfer_result out = {
        .status = run_status(&run),
        .files_transferred = atomic_load(&run.files_transferred),
        .bytes_transferred = atomic_load(&run.bytes_transferred),
        .files_unchanged = atomic_load(&run.files_unchanged),
        .files_deleted = atomic_load(&run.files_deleted),
        .files_skipped = atomic_load(&run.files_skipped),
        .files_failed = atomic_load(&run.files_failed),
        .differences = atomic_load(&run.differences),
        .files_checked = atomic_load(&run.files_checked),
        .elapsed = transfer_elapsed(&run),
    };
    struct event_summary sum = {
        .command = command,
        .source = storage_display(src),
        .destination = storage_display(dst),
        .status = out.status,
        .files_transferred = out.files_transferred,
        .bytes_transferred = out.bytes_transferred,
        .files_unchanged = out.files_unchanged,
        .files_deleted = out.files_deleted,
        .files_skipped = out.files_skipped,
        .files_failed = out.files_failed,
        .differences = out.differences,
        .files_checked = out.files_checked,
        .elapsed = out.elapsed,
        .dry_run = run.o.dry_run,
        .error_code = run.fatal_code,
        .error = run.fatal_code ? run.fatal.msg : NULL,
    };
    event_emit_summary(run.o.events, &sum);
    if (res)
        *res = out;
    r = run.fatal_code;
    if (r && e) {
        *e = run.fatal;
    } else if (e) {
        err_clear(e);
    }

    for (int i = 0; run.workers && i < run.o.transfers; i++)
        free(run.workers[i].buf);
    free(run.workers);
    for (size_t i = 0; i < run.count; i++)
        item_clear(&run.ring[(run.head + i) % run.cap]);
    free(run.ring);
    if (run.spool)
        fclose(run.spool);
    pthread_cond_destroy(&run.cond_idle);
    pthread_cond_destroy(&run.cond_space);
    pthread_cond_destroy(&run.cond_item);
    pthread_mutex_destroy(&run.lock);
    return r;
}

int transfer_copy(struct storage *src, struct storage *dst, const struct transfer_opts *opts,
                  struct transfer_result *res, struct err *e)
{
    return transfer_run(TRANSFER_MODE_COPY, "copy", src, dst, opts, res, e);
}

int transfer_sync(struct storage *src, struct storage *dst, const struct transfer_opts *opts,
                  struct transfer_result *res, struct err *e)
{
    return transfer_run(TRANSFER_MODE_SYNC, "sync", src, dst, opts, res, e);
}

int transfer_check(struct storage *src, struct storage *dst, const struct transfer_opts *opts,
                   struct transfer_result *res, struct err *e)
{
    return transfer_run(TRANSFER_MODE_CHECK, "check", src, dst, opts, res, e);
}
