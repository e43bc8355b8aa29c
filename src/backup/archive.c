/*
 * archive.c - archive mode: the whole source as one pax tar, compressed,
 * streamed to archives/<run>.tar.zst (or .tar.gz) with its SHA256SUMS and
 * its manifest (docs/FORMAT.md, Archive mode).
 *
 *     source listing (sorted) -> per file: reader -> SHA-256 -> tar member
 *     tar stream -> zstd/gzip -> SHA-256 + count -> destination writer
 *
 * Nothing is staged on local disk: the archive, SHA256SUMS and manifest
 * writers stream to the destination and are committed at the end, in that
 * order, the manifest last. A file that changes size while it is read is
 * cut or padded to the size in its tar header (the archive stays valid) and
 * recorded with an error; any other source problem is a per-file error; a
 * destination problem fails the run, and every writer is aborted.
 */
#include "archive/tar.h"
#include "backup/backup.h"
#include "backup/manifest.h"
#include "core/buf.h"
#include "core/cancel.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "io/filter.h"
#include "io/progress.h"
#include "io/ratelimit.h"
#include "storage/multiread.h"
#include "storage/prefetch.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ARCHIVE_BLOCK ((size_t)1 << 20)
#define ARCHIVE_STREAM_CUTOFF ((uint64_t)64 << 20)
#define ARCHIVE_STREAM_CHUNK ((size_t)4 << 20)
#define ARCHIVE_READ_STREAMS 4

struct arch {
    struct storage *src, *dst;
    const struct backup_opts *o;
    const char *run;
    struct timespec start;

    struct storage_writer *w_archive, *w_sums, *w_manifest;
    struct filter *chain;      /* compress -> hash -> count -> archive writer */
    struct filter *chain_hash; /* inside chain: SHA-256 of the stored archive */
    struct tar_writer *tar;
    struct manifest_writer *mw;
    struct buf sums;
    char *buf;
    struct prefetch *pf; /* network sources: small files read ahead */
    bool head_wanted;    /* the file being archived was asked of pf */

    _Atomic uint64_t bytes_done, files_done, stored_bytes, list_errors;
    pthread_mutex_t lock;
    char current[512];
    char progress_current[512];
    uint64_t files, bytes, errors;
};

static int sink_storage(void *ctx, const void *data, size_t len, struct err *e)
{
    return storage_write(ctx, data, len, e);
}

static int tar_to_chain(void *ctx, const void *data, size_t len, struct err *e)
{
    struct arch *a = ctx;
    return filter_write(a->chain, data, len, e);
}

static int manifest_to_writer(void *ctx, const void *data, size_t len, struct err *e)
{
    struct arch *a = ctx;
    return storage_write(a->w_manifest, data, len, e);
}

static double elapsed_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void progress_fill(void *ctx, struct event_progress *p)
{
    struct arch *a = ctx;
    p->phase = EVENT_PHASE_TRANSFERRING;
    p->bytes_done = atomic_load(&a->bytes_done);
    p->files_done = atomic_load(&a->files_done);
    p->bytes_total = -1; /* the listing streams: totals are not known ahead */
    p->files_total = -1;
    p->elapsed = elapsed_since(&a->start);
    pthread_mutex_lock(&a->lock);
    snprintf(a->progress_current, sizeof(a->progress_current), "%s", a->current);
    pthread_mutex_unlock(&a->lock);
    p->current = a->progress_current[0] ? a->progress_current : NULL;
}

static int on_list_error(void *ctx, const char *key, const struct err *why)
{
    struct arch *a = ctx;
    atomic_fetch_add(&a->list_errors, 1);
    struct event_file f = {.path = key,
                           .action = EVENT_ACTION_FAILED,
                           .size = -1,
                           .error_code = why->code,
                           .error = why->msg};
    event_emit_file(a->o->events, &f);
    log_warn("%s", why->msg);
    return 0;
}

static void set_current(struct arch *a, const char *key)
{
    pthread_mutex_lock(&a->lock);
    snprintf(a->current, sizeof(a->current), "%s", key);
    pthread_mutex_unlock(&a->lock);
}

/* The manifest entry of a listed path (borrowing its strings). */
static void entry_of(struct manifest_entry *me, const struct storage_entry *s, int64_t offset)
{
    memset(me, 0, sizeof(*me));
    me->path = s->key;
    me->path_len = strlen(s->key);
    me->type = s->type == STORAGE_TYPE_SYMLINK ? MANIFEST_SYMLINK : MANIFEST_FILE;
    me->size = s->type == STORAGE_TYPE_SYMLINK ? 0 : s->size;
    me->mtime_ns = s->mtime_ns;
    me->mode = s->mode;
    me->offset = offset;
}

/* Record a per-file problem: manifest entry with the error, event. */
static int record_error(struct arch *a, const struct storage_entry *s, const struct err *why,
                        int64_t offset, struct err *e)
{
    struct manifest_entry me;
    entry_of(&me, s, offset);
    me.err_code = why->code ? why->code : ERR_IO;
    me.err_class = (char *)err_code_name(me.err_code);
    me.err_msg = (char *)why->msg;
    a->errors++;
    struct event_file f = {.path = s->key,
                           .action = EVENT_ACTION_FAILED,
                           .size = (int64_t)s->size,
                           .error_code = me.err_code,
                           .error = why->msg};
    event_emit_file(a->o->events, &f);
    log_warn("%s", why->msg);
    return manifest_write_entry(a->mw, &me, e);
}

static int record_ok(struct arch *a, const struct storage_entry *s, const char *sha256,
                     int64_t offset, struct err *e)
{
    struct manifest_entry me;
    entry_of(&me, s, offset);
    if (s->type == STORAGE_TYPE_SYMLINK) {
        me.target = s->link_target;
        me.target_len = s->link_target ? strlen(s->link_target) : 0;
    } else {
        snprintf(me.sha256, sizeof(me.sha256), "%s", sha256);
    }
    int r = manifest_write_entry(a->mw, &me, e);
    if (r)
        return r;
    if (s->type != STORAGE_TYPE_SYMLINK &&
        (r = sha256sums_line(&a->sums, sha256, s->key, strlen(s->key), e)) != 0)
        return r;
    /* SHA256SUMS streams out in pieces, not held whole */
    if (a->sums.len >= ARCHIVE_BLOCK) {
        r = storage_write(a->w_sums, a->sums.data, a->sums.len, e);
        buf_reset(&a->sums);
        if (r)
            return r;
    }
    a->files++;
    a->bytes += me.size;
    struct event_file f = {.path = s->key,
                           .action = EVENT_ACTION_COPIED,
                           .size = (int64_t)me.size,
                           .sha256 = sha256 && sha256[0] ? sha256 : NULL};
    event_emit_file(a->o->events, &f);
    return 0;
}

static int archive_symlink(struct arch *a, const struct storage_entry *s, struct err *e)
{
    struct tar_entry te = {.path = s->key,
                           .path_len = strlen(s->key),
                           .type = TAR_SYMLINK,
                           .mtime_ns = s->mtime_ns == STORAGE_MTIME_UNKNOWN ? 0 : s->mtime_ns,
                           .mode = s->mode ? s->mode : 0777,
                           .target = s->link_target ? s->link_target : "",
                           .target_len = s->link_target ? strlen(s->link_target) : 0};
    uint64_t off = 0, padded = 0;
    int r = tar_begin(a->tar, &te, &off, e);
    if (!r)
        r = tar_end(a->tar, &padded, e);
    if (!r)
        r = record_ok(a, s, NULL, (int64_t)off, e);
    return r;
}

static int open_source(struct arch *a, const struct storage_entry *s, struct storage_reader **rd,
                       struct storage_entry *rent, struct err *e)
{
    if (a->head_wanted)
        return prefetch_open(a->pf, s->key, rd, rent, e);
    if ((storage_features(a->src) & STORAGE_FEATURE_PARALLEL_READ) &&
        s->size >= ARCHIVE_STREAM_CUTOFF)
        return storage_multiread_open(a->src, s->key, s->size, ARCHIVE_READ_STREAMS,
                                      ARCHIVE_STREAM_CHUNK, rd, rent, e);
    return storage_read_open(a->src, s->key, 0, -1, rd, rent, e);
}

/*
 * One file into the tar. Source problems are recorded and return 0; the
 * return value is nonzero only for what fails the run (the destination,
 * the manifest, cancellation).
 */
static int archive_file(struct arch *a, struct storage_entry *s, struct err *e)
{
    struct storage_reader *rd = NULL;
    struct storage_entry rent;
    struct err fe; /* the file's own problem */
    err_clear(&fe);
    memset(&rent, 0, sizeof(rent));
    int r = open_source(a, s, &rd, &rent, &fe);
    if (r) {
        storage_entry_clear(&rent);
        if (r == ERR_CANCELLED)
            return err_set(e, ERR_CANCELLED, "interrupted");
        return record_error(a, s, &fe, -1, e);
    }
    if (s->mtime_ns == STORAGE_MTIME_UNKNOWN ||
        !(storage_features(a->src) & STORAGE_FEATURE_LIST_MTIME)) {
        if (rent.mtime_ns != STORAGE_MTIME_UNKNOWN)
            s->mtime_ns = rent.mtime_ns;
    }
    if (!s->mode && rent.mode)
        s->mode = rent.mode;
    storage_entry_clear(&rent);

    struct tar_entry te = {.path = s->key,
                           .path_len = strlen(s->key),
                           .type = TAR_FILE,
                           .size = s->size,
                           .mtime_ns = s->mtime_ns == STORAGE_MTIME_UNKNOWN ? 0 : s->mtime_ns,
                           .mode = s->mode ? s->mode : 0644};
    uint64_t off = 0, padded = 0, total = 0;
    if ((r = tar_begin(a->tar, &te, &off, e)) != 0) {
        storage_read_close(rd);
        return r;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        storage_read_close(rd);
        return err_set(e, ERR_NOMEM, "out of memory hashing '%s'", s->key);
    }
    bool grew = false;
    for (;;) {
        size_t got = 0;
        int rr = storage_read(rd, a->buf, ARCHIVE_BLOCK, &got, &fe);
        if (rr) {
            if (rr == ERR_CANCELLED) {
                r = err_set(e, ERR_CANCELLED, "interrupted");
                goto out;
            }
            break; /* fe says what; the member is padded below */
        }
        if (got == 0)
            break;
        if (total + got > s->size) {
            got = (size_t)(s->size - total);
            grew = true;
        }
        if (got) {
            EVP_DigestUpdate(md, a->buf, got);
            if (a->o->ratelimit && (r = ratelimit_take(a->o->ratelimit, got, e)) != 0)
                goto out;
            if ((r = tar_data(a->tar, a->buf, got, e)) != 0)
                goto out;
            total += got;
            atomic_fetch_add(&a->bytes_done, got);
        }
        if (grew)
            break;
    }
    if ((r = tar_end(a->tar, &padded, e)) != 0)
        goto out;
    atomic_fetch_add(&a->files_done, 1);
    if (fe.code) {
        err_wrap(&fe,
                 "'%s' could not be read whole (%" PRIu64 " of %" PRIu64
                 " bytes; padded with zeros in the archive)",
                 s->key, total, s->size);
        r = record_error(a, s, &fe, (int64_t)off, e);
    } else if (grew || total < s->size) {
        err_set(&fe, ERR_IO,
                "'%s' changed size while being read (listed %" PRIu64 ", read %s%" PRIu64
                "); %s in the archive, will be complete next run",
                s->key, s->size, grew ? "more than " : "", grew ? s->size : total,
                grew ? "cut" : "padded with zeros");
        r = record_error(a, s, &fe, (int64_t)off, e);
    } else {
        unsigned char d[32];
        char hex[65];
        EVP_DigestFinal_ex(md, d, NULL);
        hex_encode(d, 32, hex);
        r = record_ok(a, s, hex, (int64_t)off, e);
    }
out:
    EVP_MD_CTX_free(md);
    storage_read_close(rd);
    return r;
}

static int open_writer(struct arch *a, const char *key, const char *ctype,
                       struct storage_writer **w, struct err *e)
{
    struct storage_write_opts wo = {
        .size_hint = -1, .mtime_ns = STORAGE_MTIME_UNKNOWN, .content_type = ctype};
    return storage_write_open(a->dst, key, &wo, w, e);
}

static int arch_setup(struct arch *a, struct err *e)
{
    char key[256];
    enum compress_kind ck = a->o->compression == COMPRESS_GZIP ? COMPRESS_GZIP : COMPRESS_ZSTD;
    snprintf(key, sizeof(key), "archives/%s.tar%s", a->run, compress_suffix(ck));
    int r = open_writer(a, key, ck == COMPRESS_GZIP ? "application/gzip" : "application/zstd",
                        &a->w_archive, e);
    if (r)
        return r;
    snprintf(key, sizeof(key), "archives/%s.SHA256SUMS", a->run);
    if ((r = open_writer(a, key, "text/plain", &a->w_sums, e)) != 0)
        return r;
    snprintf(key, sizeof(key), "archives/%s.manifest.jsonl", a->run);
    if ((r = open_writer(a, key, "application/jsonl", &a->w_manifest, e)) != 0)
        return r;
    a->chain_hash = filter_hash_new(HASH_SHA256);
    struct filter *parts[] = {
        filter_compress_new(ck, a->o->level, a->o->threads ? a->o->threads : COMPRESS_THREADS_AUTO),
        a->chain_hash,
        filter_counter_new(&a->stored_bytes),
        filter_sink_new(sink_storage, a->w_archive),
    };
    a->chain = filter_chain(parts, sizeof(parts) / sizeof(parts[0]));
    a->tar = tar_writer_new(tar_to_chain, a);
    a->mw = manifest_writer_new(manifest_to_writer, a);
    a->buf = malloc(ARCHIVE_BLOCK);
    if (!a->chain || !a->tar || !a->mw || !a->buf)
        return err_set(e, ERR_NOMEM, "out of memory starting the archive");
    char tool[64];
    snprintf(tool, sizeof(tool), "arca %s", ARCA_VERSION);
    struct manifest_header h = {.format_version = MANIFEST_FORMAT_VERSION,
                                .mode = MANIFEST_ARCHIVE,
                                .source =
                                    a->o->source_desc ? a->o->source_desc : storage_display(a->src),
                                .job = a->o->job,
                                .tool = tool,
                                .started_ms = time_now_ms(),
                                .compression = compress_name(ck)};
    snprintf(h.run, sizeof(h.run), "%s", a->run);
    snprintf(key, sizeof(key), "archives/%s.tar%s", a->run, compress_suffix(ck));
    h.archive = key;
    return manifest_write_header(a->mw, &h, e);
}

#define ARCHIVE_WINDOW 256
#define ARCHIVE_PREFETCH_FILE ((uint64_t)1 << 20)
#define ARCHIVE_PREFETCH_BUDGET ((size_t)16 << 20)
#define ARCHIVE_PREFETCH_THREADS 4

/*
 * Walk the source into the tar; 0 or what fails the run. From a source
 * where each file is a round trip (no cheap re-read: S3, SFTP, SMB) the
 * walk looks up to ARCHIVE_WINDOW entries ahead and has the small files
 * among them fetched in parallel, so the tar stream does not wait for each
 * request in turn; the archive is the same either way.
 */
static int arch_walk(struct arch *a, struct err *e)
{
    struct storage_list *ls;
    struct storage_entry win[ARCHIVE_WINDOW];
    bool wanted[ARCHIVE_WINDOW];
    size_t head = 0, n = 0;
    bool list_end = false;
    int r = storage_list_open(a->src, "", &ls, e);
    if (r)
        return r;
    if (!(storage_features(a->src) & STORAGE_FEATURE_CHEAP_REREAD))
        a->pf = prefetch_new(a->src, ARCHIVE_PREFETCH_THREADS, ARCHIVE_PREFETCH_FILE,
                             ARCHIVE_PREFETCH_BUDGET);
    for (;;) {
        /* look ahead while the prefetcher takes files */
        bool room = true;
        while (!list_end && room && n < (a->pf ? ARCHIVE_WINDOW : 1)) {
            struct storage_entry *w = &win[(head + n) % ARCHIVE_WINDOW];
            memset(w, 0, sizeof(*w));
            int x = storage_list_next(ls, w, e);
            if (x < 0) {
                r = x;
                goto out;
            }
            if (x == 0) {
                list_end = true;
                break;
            }
            if (w->type != STORAGE_TYPE_FILE && w->type != STORAGE_TYPE_SYMLINK) {
                storage_entry_clear(w);
                continue;
            }
            bool small = w->type == STORAGE_TYPE_FILE && w->size <= ARCHIVE_PREFETCH_FILE;
            wanted[(head + n) % ARCHIVE_WINDOW] =
                a->pf && small && prefetch_want(a->pf, w->key, w->size);
            room = !(a->pf && small && !wanted[(head + n) % ARCHIVE_WINDOW]);
            n++;
        }
        if (!n)
            break;
        if (cancel_requested()) {
            r = err_set(e, ERR_CANCELLED, "interrupted");
            break;
        }
        struct storage_entry *s = &win[head];
        set_current(a, s->key);
        a->head_wanted = wanted[head];
        if (s->type == STORAGE_TYPE_SYMLINK)
            r = archive_symlink(a, s, e);
        else
            r = archive_file(a, s, e);
        a->head_wanted = false;
        storage_entry_clear(s);
        head = (head + 1) % ARCHIVE_WINDOW;
        n--;
        if (r)
            break;
    }
out:
    /* the workers stop before the entries they may be reading go */
    prefetch_free(a->pf);
    a->pf = NULL;
    while (n) {
        storage_entry_clear(&win[head]);
        head = (head + 1) % ARCHIVE_WINDOW;
        n--;
    }
    storage_list_close(ls);
    return r < 0 ? r : 0;
}

/* Finish and commit: archive, SHA256SUMS, then (durable) the manifest. */
static int arch_commit(struct arch *a, enum event_status status, struct err *e)
{
    int r = tar_finish(a->tar, e);
    if (!r)
        r = filter_finish(a->chain, e);
    if (r)
        return r;
    char archive_sha[65];
    filter_hash_hex(a->chain_hash, archive_sha, sizeof(archive_sha));
    r = storage_write_commit(a->w_archive, e);
    a->w_archive = NULL;
    if (r)
        return r;
    if (a->sums.len && (r = storage_write(a->w_sums, a->sums.data, a->sums.len, e)) != 0)
        return r;
    r = storage_write_commit(a->w_sums, e);
    a->w_sums = NULL;
    if (r || (r = storage_sync(a->dst, e)) != 0)
        return r;
    struct manifest_trailer t = {.finished_ms = time_now_ms(),
                                 .status = status == EVENT_STATUS_PARTIAL ? "partial" : "succeeded",
                                 .files = a->files,
                                 .bytes = a->bytes,
                                 .errors = a->errors + atomic_load(&a->list_errors),
                                 .archive_size = (int64_t)atomic_load(&a->stored_bytes)};
    snprintf(t.archive_sha256, sizeof(t.archive_sha256), "%s", archive_sha);
    if ((r = manifest_write_trailer(a->mw, &t, e)) != 0)
        return r;
    r = storage_write_commit(a->w_manifest, e);
    a->w_manifest = NULL;
    if (!r)
        r = storage_sync(a->dst, e);
    return r;
}

int backup_archive(struct storage *src, struct storage *dst, const struct backup_opts *o,
                   const char *run, struct backup_result *res, struct err *e)
{
    struct arch a;
    memset(&a, 0, sizeof(a));
    a.src = src;
    a.dst = dst;
    a.o = o;
    a.run = run;
    clock_gettime(CLOCK_MONOTONIC, &a.start);
    pthread_mutex_init(&a.lock, NULL);
    buf_init(&a.sums, 0);
    storage_set_list_error_handler(src, on_list_error, &a);

    struct progress_ticker *pt = NULL;
    int r = arch_setup(&a, e);
    if (!r) {
        pt = progress_ticker_start(o->progress_interval, o->events, progress_fill, &a);
        r = arch_walk(&a, e);
    }
    if (!r && cancel_requested())
        r = err_set(e, ERR_CANCELLED, "interrupted");
    enum event_status status = EVENT_STATUS_SUCCEEDED;
    if (!r && (a.errors || atomic_load(&a.list_errors)))
        status = EVENT_STATUS_PARTIAL;
    if (!r)
        r = arch_commit(&a, status, e);
    if (r)
        status = r == ERR_CANCELLED ? EVENT_STATUS_CANCELLED : EVENT_STATUS_FAILED;
    progress_ticker_stop(pt);

    /* whatever was not committed is dropped: no archive, no manifest */
    if (a.w_archive)
        storage_write_abort(a.w_archive);
    if (a.w_sums)
        storage_write_abort(a.w_sums);
    if (a.w_manifest)
        storage_write_abort(a.w_manifest);
    storage_set_list_error_handler(src, NULL, NULL);
    filter_chain_free(a.chain);
    tar_writer_free(a.tar);
    manifest_writer_free(a.mw);
    buf_release(&a.sums);
    free(a.buf);
    pthread_mutex_destroy(&a.lock);

    res->status = status;
    res->files = a.files;
    res->bytes = a.bytes;
    res->errors = a.errors + atomic_load(&a.list_errors);
    res->stored_bytes = atomic_load(&a.stored_bytes);
    res->elapsed = elapsed_since(&a.start);
    return r;
}
