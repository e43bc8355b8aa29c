/*
 * restore.c - a run back into a target (a local folder or any remote).
 *
 * Archive runs: the archive streams through the decompressor into the tar
 * reader; the manifest is read in step (same order), so every member is
 * checked against its entry: its path, and at its end its SHA-256. A member
 * that fails the check stops the restore with ERR_CORRUPT naming the
 * object; what was written for it is dropped (the writer is aborted), so a
 * restored file is either whole and verified or absent.
 *
 * Safety: every path goes through the target storage's key check (no "..",
 * no absolute paths, no empty segments) and the local driver never follows
 * a symlink inside the target; NUL bytes and device nodes in an archive are
 * refused per member and reported.
 */
#include "backup/restore.h"

#include "archive/tar.h"
#include "backup/catalog.h"
#include "backup/mirror_restore.h"
#include "core/log.h"
#include "core/utf8.h"
#include "io/filter.h"
#include "io/progress.h"
#include "storage/storage.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void restore_opts_init(struct restore_opts *o)
{
    memset(o, 0, sizeof(*o));
}

/* A glob matches a path, or a directory the path is in. */
bool restore_included(const struct restore_opts *o, const char *path)
{
    if (!o->nincludes)
        return true;
    for (size_t i = 0; i < o->nincludes; i++) {
        const char *g = o->includes[i];
        if (fnmatch(g, path, 0) == 0)
            return true;
        size_t gl = strlen(g);
        while (gl > 1 && g[gl - 1] == '/')
            gl--;
        /* "dir" or "dir/" includes everything below dir */
        char *dir = strndup(g, gl);
        if (!dir)
            return false;
        for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
            char *head = strndup(path, (size_t)(p - path));
            bool hit = head && fnmatch(dir, head, 0) == 0;
            free(head);
            if (hit) {
                free(dir);
                return true;
            }
        }
        free(dir);
    }
    return false;
}

struct rst {
    struct storage *dst, *target;
    const struct restore_opts *o;
    const struct run_info *ri;
    struct catalog_manifest m;
    struct manifest_entry ment; /* the manifest's current entry */
    bool ment_valid;
    bool ment_used; /* ment was matched by a member already */
    bool manifest_done;
    /* the member being restored */
    struct storage_writer *w;
    EVP_MD_CTX *md;
    char *path;
    uint64_t got;
    bool skip;
    bool verify;  /* verify: hash and compare, write nothing */
    uint64_t bad; /* verify: members that fail their check */
    struct timespec start;
    _Atomic uint64_t bytes_done, files_done;
    uint64_t files, bytes, skipped, errors;
    struct err fatal;
    struct mirror_restore_stats ms; /* mirror runs */
    bool mirror;
};

static double elapsed_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void progress_fill(void *ctx, struct event_progress *p)
{
    struct rst *s = ctx;
    p->phase = EVENT_PHASE_TRANSFERRING;
    p->bytes_done = atomic_load(s->mirror ? &s->ms.bytes_done : &s->bytes_done);
    p->files_done = atomic_load(s->mirror ? &s->ms.files_done : &s->files_done);
    p->bytes_total = (int64_t)s->ri->bytes;
    p->files_total = (int64_t)s->ri->files;
    p->elapsed = elapsed_since(&s->start);
}

/* Printable form of raw path bytes for messages. */
static char *shown(const char *p, size_t n)
{
    return utf8_sanitize(p, n);
}

/* The archive lacks the current manifest entry, which is not an error
 * entry: the archive is damaged. */
static int ment_missing(struct rst *s, struct err *e)
{
    char *p = shown(s->ment.path, s->ment.path_len);
    int r = err_set(e, ERR_CORRUPT,
                    "archive '%s' lacks '%s', which its manifest lists; the archive is damaged or "
                    "incomplete",
                    s->ri->archive_key, p ? p : "?");
    free(p);
    return r;
}

/* Advance the manifest to the entry for `path`; entries before it that
 * have no error were not in the archive: corrupt. */
static void ment_drop(struct rst *s)
{
    manifest_entry_clear(&s->ment);
    s->ment_valid = false;
    s->ment_used = false;
}

static int manifest_seek(struct rst *s, const char *path, size_t len, struct err *e)
{
    if (s->ment_valid && s->ment_used)
        ment_drop(s);
    for (;;) {
        if (!s->ment_valid) {
            if (s->manifest_done)
                break;
            struct manifest_trailer_owned t;
            memset(&t, 0, sizeof(t));
            int r = manifest_read_next(s->m.reader, &s->ment, &t, e);
            manifest_trailer_owned_clear(&t);
            if (r < 0)
                return r;
            if (r == 2) {
                s->manifest_done = true;
                break;
            }
            s->ment_valid = true;
        }
        int c = memcmp(s->ment.path, path, len < s->ment.path_len ? len : s->ment.path_len);
        if (c == 0 && s->ment.path_len == len) {
            s->ment_used = true;
            return 0;
        }
        if (c > 0 || (c == 0 && s->ment.path_len > len))
            break; /* the manifest is past it */
        /* an entry the archive skipped: only entries with errors may */
        if (!s->ment.err_code) {
            return ment_missing(s, e);
        }
        ment_drop(s);
    }
    char *p = shown(path, len);
    int r = err_set(e, ERR_CORRUPT, "archive '%s' holds '%s', which its manifest does not list",
                    s->ri->archive_key, p ? p : "?");
    free(p);
    return r;
}

/* After the last member: the manifest's remaining entries must all be
 * ones the run could not back up. */
static int manifest_rest(struct rst *s, struct err *e)
{
    if (s->ment_valid && s->ment_used)
        ment_drop(s);
    for (;;) {
        if (s->ment_valid) {
            if (!s->ment.err_code) {
                return ment_missing(s, e);
            }
            manifest_entry_clear(&s->ment);
            s->ment_valid = false;
        }
        if (s->manifest_done)
            return 0;
        struct manifest_trailer_owned t;
        memset(&t, 0, sizeof(t));
        int r = manifest_read_next(s->m.reader, &s->ment, &t, e);
        manifest_trailer_owned_clear(&t);
        if (r < 0)
            return r;
        if (r == 2)
            s->manifest_done = true;
        else
            s->ment_valid = true;
    }
}

static void report(struct rst *s, const char *path, enum event_action a, int64_t size,
                   const char *sha, int code, const char *msg)
{
    struct event_file f = {
        .path = path, .action = a, .size = size, .sha256 = sha, .error_code = code, .error = msg};
    event_emit_file(s->o->events, &f);
}

static int hash_begin(struct rst *s, struct err *e)
{
    if (!s->md)
        s->md = EVP_MD_CTX_new();
    if (!s->md || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1)
        return err_set(e, ERR_NOMEM, "out of memory hashing '%s'", s->path);
    return 0;
}

static void verify_bad(struct rst *s, int64_t size, const char *why)
{
    s->bad++;
    char msg[512];
    snprintf(msg, sizeof(msg), "'%s' in archive '%s' %s", s->path, s->ri->archive_key, why);
    report(s, s->path, EVENT_ACTION_DIFFER, size, NULL, ERR_CORRUPT, msg);
    log_error("%s", msg);
}

/* verify: a member against its manifest entry (the data is hashed next). */
static int verify_entry(struct rst *s, const struct tar_entry *te, struct err *e)
{
    s->skip = true;
    if (s->ment.err_code) {
        s->skipped++;
        report(s, s->path, EVENT_ACTION_SKIPPED, (int64_t)te->size, NULL, 0,
               "recorded with an error in its run; nothing to check");
        return 0;
    }
    if (te->type == TAR_SYMLINK) {
        bool same = s->ment.type == MANIFEST_SYMLINK && s->ment.target &&
                    s->ment.target_len == te->target_len &&
                    !memcmp(s->ment.target, te->target, te->target_len);
        if (same) {
            s->files++;
            report(s, s->path, EVENT_ACTION_MATCH, 0, NULL, 0, NULL);
        } else {
            verify_bad(s, 0, "is not the symbolic link its manifest lists");
        }
        return 0;
    }
    if (te->type != TAR_FILE || s->ment.type != MANIFEST_FILE || te->size != s->ment.size) {
        verify_bad(s, (int64_t)te->size, "does not match its manifest entry (type or size)");
        return 0;
    }
    s->skip = false;
    s->got = 0;
    return hash_begin(s, e);
}

static int on_entry(void *ctx, const struct tar_entry *te, struct err *e)
{
    struct rst *s = ctx;
    s->skip = false;
    s->got = 0;
    free(s->path);
    s->path = NULL;
    if (memchr(te->path, '\0', te->path_len))
        return err_set(e, ERR_CORRUPT, "archive '%s' has a member name with a NUL byte",
                       s->ri->archive_key);
    s->path = strndup(te->path, te->path_len);
    if (!s->path)
        return err_set(e, ERR_NOMEM, "out of memory restoring");
    int r = manifest_seek(s, te->path, te->path_len, e);
    if (r)
        return r;
    if (s->verify)
        return verify_entry(s, te, e);
    if (!restore_included(s->o, s->path)) {
        s->skip = true;
        return 0;
    }
    struct err fe;
    err_clear(&fe);
    if (te->type == TAR_SYMLINK) {
        s->skip = true;
        char *target = strndup(te->target, te->target_len);
        if (!target)
            return err_set(e, ERR_NOMEM, "out of memory restoring");
        r = memchr(te->target, '\0', te->target_len)
                ? err_set(&fe, ERR_REFUSED, "symbolic link '%s' has a NUL byte in its target",
                          s->path)
                : storage_symlink(s->target, s->path, target, te->mtime_ns, &fe);
        free(target);
        if (r == ERR_USAGE) { /* the target cannot hold links */
            s->skipped++;
            report(s, s->path, EVENT_ACTION_SKIPPED, 0, NULL, 0, fe.msg);
        } else if (r) {
            s->errors++;
            report(s, s->path, EVENT_ACTION_FAILED, 0, NULL, fe.code, fe.msg);
            log_warn("%s", fe.msg);
        } else {
            s->files++;
            report(s, s->path, EVENT_ACTION_COPIED, 0, NULL, 0, NULL);
        }
        return 0;
    }
    if (te->type != TAR_FILE) {
        s->skip = true;
        s->errors++;
        err_set(&fe, ERR_REFUSED, "'%s' in the archive is not a regular file or symlink; refused",
                s->path);
        report(s, s->path, EVENT_ACTION_FAILED, -1, NULL, fe.code, fe.msg);
        log_warn("%s", fe.msg);
        return 0;
    }
    if (s->ment.err_code || s->ment.type != MANIFEST_FILE || te->size != s->ment.size) {
        /* a member its run recorded as damaged (cut or padded): not restored */
        s->skip = true;
        if (!s->ment.err_code)
            return err_set(e, ERR_CORRUPT,
                           "archive '%s': '%s' does not match its manifest entry (size %" PRIu64
                           " in the archive, %" PRIu64 " in the manifest)",
                           s->ri->archive_key, s->path, te->size, s->ment.size);
        s->errors++;
        err_set(&fe, ERR_IO, "'%s' was not backed up whole in run %s (%s); not restored", s->path,
                s->ri->run, s->ment.err_msg ? s->ment.err_msg : "error");
        report(s, s->path, EVENT_ACTION_FAILED, (int64_t)te->size, NULL, fe.code, fe.msg);
        return 0;
    }
    struct storage_write_opts wo = {
        .size_hint = (int64_t)te->size, .mtime_ns = te->mtime_ns, .mode = te->mode & 07777};
    r = storage_write_open(s->target, s->path, &wo, &s->w, &fe);
    if (r) {
        /* a path the target refuses (unsafe, in the way): per file */
        s->skip = true;
        s->errors++;
        report(s, s->path, EVENT_ACTION_FAILED, (int64_t)te->size, NULL, fe.code, fe.msg);
        log_warn("%s", fe.msg);
        return 0;
    }
    return hash_begin(s, e);
}

static int on_data(void *ctx, const void *data, size_t len, struct err *e)
{
    struct rst *s = ctx;
    if (s->skip)
        return 0;
    EVP_DigestUpdate(s->md, data, len);
    s->got += len;
    atomic_fetch_add(&s->bytes_done, len);
    return s->w ? storage_write(s->w, data, len, e) : 0;
}

static int on_entry_end(void *ctx, struct err *e)
{
    struct rst *s = ctx;
    if (s->skip)
        return 0;
    unsigned char d[32];
    char hex[65];
    EVP_DigestFinal_ex(s->md, d, NULL);
    hex_encode(d, 32, hex);
    if (s->verify) {
        atomic_fetch_add(&s->files_done, 1);
        if (strcmp(hex, s->ment.sha256) != 0) {
            verify_bad(s, (int64_t)s->got, "fails its SHA-256 check");
            return 0;
        }
        s->files++;
        s->bytes += s->got;
        report(s, s->path, EVENT_ACTION_MATCH, (int64_t)s->got, hex, 0, NULL);
        return 0;
    }
    if (strcmp(hex, s->ment.sha256) != 0) {
        storage_write_abort(s->w);
        s->w = NULL;
        return err_set(e, ERR_CORRUPT,
                       "archive '%s': '%s' fails its SHA-256 check (manifest %.16s..., read "
                       "%.16s...); not restored",
                       s->ri->archive_key, s->path, s->ment.sha256, hex);
    }
    int r = storage_write_commit(s->w, e);
    s->w = NULL;
    if (r)
        return r;
    s->files++;
    s->bytes += s->got;
    atomic_fetch_add(&s->files_done, 1);
    report(s, s->path, EVENT_ACTION_COPIED, (int64_t)s->got, hex, 0, NULL);
    return 0;
}

static int feed_tar(void *ctx, const void *data, size_t len, struct err *e)
{
    return tar_reader_feed(ctx, data, len, e);
}

static int restore_archive(struct rst *s, struct err *e)
{
    static const struct tar_reader_cb cb = {on_entry, on_data, on_entry_end};
    enum compress_kind ck = COMPRESS_ZSTD;
    if (s->m.header.compression && compress_parse(s->m.header.compression, &ck, e) != 0)
        return err_set(e, ERR_CORRUPT,
                       "the manifest of run %s names compression '%s', which this arca cannot "
                       "read; use a newer arca",
                       s->m.header.run, s->m.header.compression);
    struct tar_reader *tr = tar_reader_new(&cb, s);
    /* the read, the archive's hash and the decompressor in this thread;
     * tar, the files' hashes and the writes in the next */
    struct filter *parts[] = {filter_decompress_new(ck), filter_thread_new((size_t)256 << 10, 8),
                              filter_sink_new(feed_tar, tr)};
    struct filter *chain = tr ? filter_chain(parts, 3) : NULL;
    char *buf = malloc((size_t)1 << 20);
    struct storage_reader *rd = NULL;
    int r;
    if (!tr || !chain || !buf) {
        r = err_set(e, ERR_NOMEM, "out of memory restoring");
        goto out;
    }
    r = storage_read_open(s->dst, s->ri->archive_key, 0, -1, &rd, NULL, e);
    if (r)
        goto out;
    EVP_MD_CTX *amd = EVP_MD_CTX_new(); /* the stored archive's own SHA-256 */
    EVP_DigestInit_ex(amd, EVP_sha256(), NULL);
    uint64_t stored = 0;
    for (;;) {
        size_t got = 0;
        if ((r = storage_read(rd, buf, (size_t)1 << 20, &got, e)) != 0 || got == 0)
            break;
        EVP_DigestUpdate(amd, buf, got);
        stored += got;
        if ((r = filter_write(chain, buf, got, e)) != 0)
            break;
    }
    unsigned char d[32];
    char hex[65];
    EVP_DigestFinal_ex(amd, d, NULL);
    EVP_MD_CTX_free(amd);
    hex_encode(d, 32, hex);
    if (!r)
        r = filter_finish(chain, e);
    if (!r)
        r = tar_reader_finish(tr, e);
    if (r && r != ERR_CANCELLED && !strstr(e->msg, s->ri->archive_key))
        err_wrap(e, "archive '%s'", s->ri->archive_key);
    if (!r && (stored != (uint64_t)s->ri->archive_size || strcmp(hex, s->ri->archive_sha256)))
        r = err_set(e, ERR_CORRUPT,
                    "archive '%s' is %" PRIu64 " bytes with SHA-256 %.16s...; its manifest says "
                    "%" PRId64 " bytes, %.16s...",
                    s->ri->archive_key, stored, hex, s->ri->archive_size, s->ri->archive_sha256);
    if (!r)
        r = manifest_rest(s, e);
out:
    filter_chain_free(chain); /* first: joins the thread that writes */
    if (s->w)
        storage_write_abort(s->w);
    s->w = NULL;
    storage_read_close(rd);
    tar_reader_free(tr);
    free(buf);
    return r;
}

/* A mirror run: its counts go where the archive code keeps them. */
static int restore_mirror(struct rst *s, struct storage *target, bool read_data, struct err *e)
{
    s->mirror = true;
    int r =
        mirror_restore(s->dst, target, s->ri, &s->m, s->o, read_data, s->o->transfers, &s->ms, e);
    s->files = atomic_load(&s->ms.files);
    s->bytes = atomic_load(&s->ms.bytes);
    s->skipped = atomic_load(&s->ms.skipped);
    s->errors = atomic_load(&s->ms.errors);
    s->bad = atomic_load(&s->ms.bad);
    return r;
}

int restore_run(struct storage *dst, struct storage *target, const struct restore_opts *o,
                struct restore_result *res, struct err *e)
{
    struct run_info ri;
    struct rst s;
    memset(&s, 0, sizeof(s));
    memset(res, 0, sizeof(*res));
    res->status = EVENT_STATUS_FAILED;
    clock_gettime(CLOCK_MONOTONIC, &s.start);
    int r = catalog_find(dst, o->run, &ri, e);
    if (!r)
        r = storage_check_root(target, true, true, e);
    if (!r) {
        snprintf(res->run, sizeof(res->run), "%s", ri.run);
        s.dst = dst;
        s.target = target;
        s.o = o;
        s.ri = &ri;
        r = catalog_manifest_open(dst, &ri, &s.m, e);
    }
    struct progress_ticker *pt = NULL;
    if (!r) {
        pt = progress_ticker_start(o->progress_interval, o->events, progress_fill, &s);
        if (ri.mode == MANIFEST_ARCHIVE)
            r = restore_archive(&s, e);
        else
            r = restore_mirror(&s, target, false, e);
    }
    if (!r)
        r = storage_sync(target, e);
    progress_ticker_stop(pt);
    catalog_manifest_close(&s.m);
    if (s.ment_valid)
        manifest_entry_clear(&s.ment);
    EVP_MD_CTX_free(s.md);
    free(s.path);
    res->files = s.files;
    res->bytes = s.bytes;
    res->errors = s.errors;
    res->skipped = s.skipped;
    res->elapsed = elapsed_since(&s.start);
    if (r)
        res->status = r == ERR_CANCELLED ? EVENT_STATUS_CANCELLED : EVENT_STATUS_FAILED;
    else
        res->status = s.errors ? EVENT_STATUS_PARTIAL : EVENT_STATUS_SUCCEEDED;
    struct event_summary sum = {.command = "restore",
                                .source = storage_display(dst),
                                .destination = storage_display(target),
                                .status = res->status,
                                .files_transferred = s.files,
                                .bytes_transferred = s.bytes,
                                .files_skipped = s.skipped,
                                .files_failed = s.errors,
                                .elapsed = res->elapsed,
                                .error_code = r,
                                .error = r ? e->msg : NULL};
    event_emit_summary(o->events, &sum);
    return r;
}

/* The archive object is there with the size its trailer says. */
static int verify_objects(struct storage *dst, const struct run_info *ri, struct err *e)
{
    struct storage_entry ent;
    int r = storage_stat(dst, ri->archive_key, &ent, e);
    if (r == ERR_NOT_FOUND)
        return err_set(e, ERR_CORRUPT, "archive '%s' of run %s is missing at '%s'", ri->archive_key,
                       ri->run, storage_display(dst));
    if (r)
        return r;
    uint64_t size = ent.size;
    storage_entry_clear(&ent);
    if (size != (uint64_t)ri->archive_size)
        return err_set(e, ERR_CORRUPT,
                       "archive '%s' of run %s is %" PRIu64 " bytes; its manifest says %" PRId64,
                       ri->archive_key, ri->run, size, ri->archive_size);
    return 0;
}

int verify_run(struct storage *dst, const struct restore_opts *o, bool read_data,
               struct restore_result *res, struct err *e)
{
    struct run_info ri;
    struct rst s;
    memset(&s, 0, sizeof(s));
    memset(res, 0, sizeof(*res));
    clock_gettime(CLOCK_MONOTONIC, &s.start);
    s.verify = true;
    s.o = o;
    s.ri = &ri;
    s.dst = dst;
    int r = catalog_find(dst, o->run, &ri, e); /* reads the whole manifest: its structure */
    if (!r)
        snprintf(res->run, sizeof(res->run), "%s", ri.run);
    bool mirror = !r && ri.mode == MANIFEST_MIRROR;
    if (!r && !mirror)
        r = verify_objects(dst, &ri, e);
    struct progress_ticker *pt = NULL;
    if (!r && (read_data || mirror) && !(r = catalog_manifest_open(dst, &ri, &s.m, e))) {
        pt = progress_ticker_start(o->progress_interval, o->events, progress_fill, &s);
        r = mirror ? restore_mirror(&s, NULL, read_data, e) : restore_archive(&s, e);
        if (!r && s.bad)
            r = err_set(e, ERR_CORRUPT, "%" PRIu64 " file%s of run %s fail their check at '%s'",
                        s.bad, s.bad == 1 ? "" : "s", ri.run, storage_display(dst));
    }
    progress_ticker_stop(pt);
    catalog_manifest_close(&s.m);
    if (s.ment_valid)
        manifest_entry_clear(&s.ment);
    EVP_MD_CTX_free(s.md);
    free(s.path);
    res->files = read_data || mirror ? s.files : (r ? 0 : ri.files);
    res->bytes = read_data || mirror ? s.bytes : (r ? 0 : ri.bytes);
    res->skipped = s.skipped;
    res->errors = s.bad;
    res->elapsed = elapsed_since(&s.start);
    res->status = r == ERR_CANCELLED ? EVENT_STATUS_CANCELLED
                  : r                ? EVENT_STATUS_FAILED
                                     : EVENT_STATUS_SUCCEEDED;
    struct event_summary sum = {.command = "verify",
                                .source = storage_display(dst),
                                .status = res->status,
                                .files_checked = res->files + s.bad,
                                .differences = s.bad,
                                .files_skipped = s.skipped,
                                .elapsed = res->elapsed,
                                .error_code = r,
                                .error = r ? e->msg : NULL};
    event_emit_summary(o->events, &sum);
    return r;
}
