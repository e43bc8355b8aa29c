/*
 * transfer_file.c - one work item on a worker thread: decide whether a file
 * changed, move its bytes, compare contents, delete a key.
 *
 * Bytes of a transfer flow reader -> SHA-256 -> counter -> rate limit ->
 * writer. The writer is committed only after the last byte arrived and the
 * count matched the listed size; every other path aborts it, so a failed
 * or interrupted transfer never leaves a partial object under its key.
 */
#include "engine/transfer_internal.h"
#include "io/filter.h"
#include "core/log.h"
#include "storage/multiread.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Give up an item when the run stopped (whole-run error elsewhere). */
static int check_stop(struct transfer_run *run, struct err *e)
{
    if (atomic_load(&run->stop))
        return err_set(e, ERR_CANCELLED, "stopped: the run failed");
    return 0;
}

static int size_changed(struct err *e, const char *key, uint64_t listed, uint64_t got, bool more)
{
    return err_set(e, ERR_IO,
                   "'%s' changed size while being read (listed %" PRIu64 ", read %s%" PRIu64
                   "); will be copied next run",
                   key, listed, more ? "at least " : "", got);
}

/*
 * Read rd to its end through chain (which hashes, counts, writes, ...),
 * checking that the bytes read are exactly the listed size, then finish the
 * chain.
 */
static int pump(struct transfer_worker *w, struct storage_reader *rd, const char *key,
                uint64_t size, struct filter *chain, struct err *e)
{
    struct transfer_run *run = w->run;
    uint64_t total = 0;
    int r;
    for (;;) {
        size_t got = 0;
        if ((r = check_stop(run, e)) != 0)
            return r;
        if ((r = storage_read(rd, w->buf, run->o.block_size, &got, e)) != 0)
            return r;
        if (got == 0)
            break;
        total += got;
        if (total > size)
            return size_changed(e, key, size, total, true);
        if ((r = filter_write(chain, w->buf, got, e)) != 0)
            return r;
    }
    if (total != size)
        return size_changed(e, key, size, total, false);
    return filter_finish(chain, e);
}

/*
 * Read key from st through a hash of `kind`, put the hex digest into out.
 * The bytes count towards progress when `count` (one side per item). Fails
 * when the bytes read are not the listed size.
 */
static int hash_read(struct transfer_worker *w, struct storage *st, const char *key, uint64_t size,
                     enum hash_kind kind, bool count, char *out, size_t cap, struct err *e)
{
    struct transfer_run *run = w->run;
    struct storage_reader *rd = NULL;
    struct filter *parts[3];
    size_t np = 0;
    parts[np++] = filter_hash_new(kind);
    if (count) {
        parts[np++] = filter_counter_new(&run->bytes_done);
        parts[np++] = filter_counter_new(&w->bytes);
    }
    struct filter *chain = filter_chain(parts, np);
    int r;
    if (!chain) {
        r = err_set(e, ERR_NOMEM, "out of memory hashing '%s'", key);
        goto out;
    }
    r = storage_read_open(st, key, 0, -1, &rd, NULL, e);
    if (!r)
        r = pump(w, rd, key, size, chain, e);
    if (!r)
        filter_hash_hex(chain, out, cap);
out:
    storage_read_close(rd);
    filter_chain_free(chain);
    return r;
}

/*
 * Content compare (transfer.h): hashes both listings carry, else MD5 of the
 * side lacking it when the other has one, else SHA-256 of both. *sha256
 * receives the source's SHA-256 when it is known (may stay "").
 */
static int content_equal(struct transfer_worker *w, const struct storage_entry *s,
                         const struct storage_entry *d, bool *equal, char sha256[65], struct err *e)
{
    struct transfer_run *run = w->run;
    char a[65] = "", b[65] = "";
    int r;
    sha256[0] = '\0';
    if (s->sha256[0] && d->sha256[0]) {
        memcpy(sha256, s->sha256, 65);
        *equal = strcmp(s->sha256, d->sha256) == 0;
        return 0;
    }
    if (s->md5[0] && d->md5[0]) {
        *equal = strcmp(s->md5, d->md5) == 0;
        return 0;
    }
    if (s->md5[0]) {
        r = hash_read(w, run->dst, d->key, d->size, HASH_MD5, true, a, sizeof(a), e);
        if (r == 0)
            *equal = strcmp(a, s->md5) == 0;
        return r;
    }
    if (d->md5[0]) {
        r = hash_read(w, run->src, s->key, s->size, HASH_MD5, true, a, sizeof(a), e);
        if (r == 0)
            *equal = strcmp(a, d->md5) == 0;
        return r;
    }
    r = hash_read(w, run->src, s->key, s->size, HASH_SHA256, true, a, sizeof(a), e);
    if (r)
        return r;
    if (d->sha256[0]) {
        memcpy(b, d->sha256, 65);
    } else {
        r = hash_read(w, run->dst, d->key, d->size, HASH_SHA256, false, b, sizeof(b), e);
        if (r)
            return r;
    }
    memcpy(sha256, a, 65);
    *equal = strcmp(a, b) == 0;
    return 0;
}

/* The true mtime of ent: the listing's when the storage lists true mtimes,
 * else what storage_stat reports. STORAGE_MTIME_UNKNOWN when neither. */
static int true_mtime(struct storage *st, const struct storage_entry *ent, int64_t *out,
                      struct err *e)
{
    *out = STORAGE_MTIME_UNKNOWN;
    if ((storage_features(st) & STORAGE_FEATURE_LIST_MTIME) &&
        ent->mtime_ns != STORAGE_MTIME_UNKNOWN) {
        *out = ent->mtime_ns;
        return 0;
    }
    struct storage_entry st_ent;
    int r = storage_stat(st, ent->key, &st_ent, e);
    if (r)
        return r;
    if (st_ent.size != ent->size) {
        storage_entry_clear(&st_ent);
        return err_set(e, ERR_IO,
                       "'%s' changed size since it was listed; will be compared next run",
                       ent->key);
    }
    *out = st_ent.mtime_ns;
    storage_entry_clear(&st_ent);
    return 0;
}

/* Rules 2, 5, 6, 7 of transfer.h (1, 3, 4 were settled by the merge). */
static int decide_unchanged(struct transfer_worker *w, const struct storage_entry *s,
                            const struct storage_entry *d, bool *same, char sha256[65],
                            struct err *e)
{
    struct transfer_run *run = w->run;
    char hex[65];
    int r;
    sha256[0] = '\0';
    if (!run->o.checksum) {
        if (s->md5[0] && !d->md5[0] && d->size <= TRANSFER_MD5_READ_MAX) {
            r = hash_read(w, run->dst, d->key, d->size, HASH_MD5, true, hex, sizeof(hex), e);
            if (r == 0)
                *same = strcmp(hex, s->md5) == 0;
            return r;
        }
        if (d->md5[0] && !s->md5[0] && s->size <= TRANSFER_MD5_READ_MAX) {
            r = hash_read(w, run->src, s->key, s->size, HASH_MD5, true, hex, sizeof(hex), e);
            if (r == 0)
                *same = strcmp(hex, d->md5) == 0;
            return r;
        }
        int64_t sm, dm;
        if ((r = true_mtime(run->src, s, &sm, e)) != 0)
            return r;
        if ((r = true_mtime(run->dst, d, &dm, e)) != 0)
            return r;
        if (sm != STORAGE_MTIME_UNKNOWN && dm != STORAGE_MTIME_UNKNOWN) {
            int64_t diff = sm > dm ? sm - dm : dm - sm;
            *same = diff < run->mtime_tolerance_ns;
            return 0;
        }
    }
    return content_equal(w, s, d, same, sha256, e);
}

static int sink_storage_write(void *ctx, const void *data, size_t len, struct err *e)
{
    return storage_write(ctx, data, len, e);
}

/* The source file's bytes, readable again by the destination writer. */
struct reread_ctx {
    struct storage *src;
    const char *key;
};

static int reread_open(void *ctx, uint64_t offset, uint64_t length, struct storage_reader **out,
                       struct err *e)
{
    struct reread_ctx *rc = ctx;
    return storage_read_open(rc->src, rc->key, offset, (int64_t)length, out, NULL, e);
}

/* Copy s to the destination through the filter chain; sha256 receives the
 * digest of what was written. */
static int stream_copy(struct transfer_worker *w, const struct storage_entry *s, char sha256[65],
                       struct err *e)
{
    struct transfer_run *run = w->run;
    struct storage_reader *rd = NULL;
    struct storage_writer *wr = NULL;
    struct filter *chain = NULL;
    struct storage_entry rent;
    int r;
    memset(&rent, 0, sizeof(rent));
    rent.mtime_ns = STORAGE_MTIME_UNKNOWN;

    /* Open the reader first: it may tell the mtime the listing lacks. A
     * large file from a source that gains from it is read as several
     * ranges at once. */
    if ((storage_features(run->src) & STORAGE_FEATURE_PARALLEL_READ) && run->o.read_streams > 1 &&
        s->size >= run->o.read_stream_cutoff) {
        log_debug("reading '%s' as %d ranges at once", s->key, run->o.read_streams);
        r = storage_multiread_open(run->src, s->key, s->size, (unsigned)run->o.read_streams,
                                   TRANSFER_STREAM_CHUNK, &rd, &rent, e);
    } else
        r = storage_read_open(run->src, s->key, 0, -1, &rd, &rent, e);
    if (r)
        goto out;
    struct storage_write_opts wo = {
        .size_hint = (int64_t)s->size,
        .mtime_ns = STORAGE_MTIME_UNKNOWN,
        .mode = s->mode ? s->mode : rent.mode,
    };
    /* A listing without true mtimes (S3 LastModified is the upload time)
     * loses to what the reader learned from metadata. */
    bool list_true = storage_features(run->src) & STORAGE_FEATURE_LIST_MTIME;
    if (list_true && s->mtime_ns != STORAGE_MTIME_UNKNOWN)
        wo.mtime_ns = s->mtime_ns;
    else if (rent.mtime_ns != STORAGE_MTIME_UNKNOWN)
        wo.mtime_ns = rent.mtime_ns;
    else
        wo.mtime_ns = s->mtime_ns;
    /* a local source can be read again: the writer need not hold parts */
    struct reread_ctx rc = {run->src, s->key};
    struct storage_range_source reread = {reread_open, &rc};
    unsigned need = STORAGE_FEATURE_CHEAP_REREAD | STORAGE_FEATURE_RANGE_READ;
    if ((storage_features(run->src) & need) == need)
        wo.reread = &reread;

    r = storage_write_open(run->dst, s->key, &wo, &wr, e);
    if (r)
        goto out;
    struct filter *parts[5];
    size_t np = 0;
    if (run->o.report_sha256)
        parts[np++] = filter_hash_new(HASH_SHA256);
    parts[np++] = filter_counter_new(&run->bytes_done);
    parts[np++] = filter_counter_new(&w->bytes);
    if (run->o.ratelimit)
        parts[np++] = filter_ratelimit_new(run->o.ratelimit);
    parts[np++] = filter_sink_new(sink_storage_write, wr);
    chain = filter_chain(parts, np);
    if (!chain) {
        r = err_set(e, ERR_NOMEM, "out of memory copying '%s'", s->key);
        goto out;
    }
    if ((r = pump(w, rd, s->key, s->size, chain, e)) != 0)
        goto out;
    if (run->o.report_sha256)
        filter_hash_hex(chain, sha256, 65);
    r = storage_write_commit(wr, e); /* frees wr either way */
    wr = NULL;
out:
    if (wr)
        storage_write_abort(wr);
    storage_read_close(rd);
    filter_chain_free(chain);
    storage_entry_clear(&rent);
    return r;
}

static void do_transfer(struct transfer_worker *w, struct work_item *it)
{
    struct transfer_run *run = w->run;
    const struct storage_entry *s = &it->src;
    bool present = it->dst.key != NULL;
    char sha256[65] = "";
    struct err e;
    int r;
    err_clear(&e);

    if (!it->changed && present) {
        bool same = false;
        r = decide_unchanged(w, s, &it->dst, &same, sha256, &e);
        if (r) {
            transfer_item_error(run, s->key, (int64_t)s->size, &e);
            return;
        }
        if (same) {
            atomic_fetch_add(&run->files_unchanged, 1);
            transfer_emit_file(run, s->key, EVENT_ACTION_UNCHANGED, (int64_t)s->size,
                               sha256[0] ? sha256 : (s->sha256[0] ? s->sha256 : NULL), false, 0,
                               NULL);
            return;
        }
    }
    enum event_action action = present ? EVENT_ACTION_UPDATED : EVENT_ACTION_COPIED;
    if (run->o.dry_run) {
        atomic_fetch_add(&run->files_transferred, 1);
        atomic_fetch_add(&run->bytes_transferred, s->size);
        transfer_emit_file(run, s->key, action, (int64_t)s->size, s->sha256[0] ? s->sha256 : NULL,
                           false, 0, NULL);
        return;
    }
    if (run->server_copy) {
        r = storage_copy_from(run->dst, s->key, run->src, s->key, s, &e);
        if (r) {
            transfer_item_error(run, s->key, (int64_t)s->size, &e);
            return;
        }
        atomic_fetch_add(&run->files_transferred, 1);
        atomic_fetch_add(&run->bytes_transferred, s->size);
        transfer_emit_file(run, s->key, action, (int64_t)s->size, s->sha256[0] ? s->sha256 : NULL,
                           true, 0, NULL);
        return;
    }
    sha256[0] = '\0';
    r = stream_copy(w, s, sha256, &e);
    if (r) {
        transfer_item_error(run, s->key, (int64_t)s->size, &e);
        return;
    }
    atomic_fetch_add(&run->files_transferred, 1);
    atomic_fetch_add(&run->bytes_transferred, s->size);
    log_debug("%s '%s' (%" PRIu64 " bytes)", event_action_name(action), s->key, s->size);
    transfer_emit_file(run, s->key, action, (int64_t)s->size, sha256, false, 0, NULL);
}

static void do_compare(struct transfer_worker *w, struct work_item *it)
{
    struct transfer_run *run = w->run;
    char sha256[65] = "";
    bool equal = false;
    struct err e;
    err_clear(&e);
    int r = content_equal(w, &it->src, &it->dst, &equal, sha256, &e);
    if (r) {
        atomic_fetch_add(&run->files_checked, 1);
        transfer_item_error(run, it->src.key, (int64_t)it->src.size, &e);
        return;
    }
    atomic_fetch_add(&run->files_checked, 1);
    if (!equal)
        atomic_fetch_add(&run->differences, 1);
    transfer_emit_file(run, it->src.key, equal ? EVENT_ACTION_MATCH : EVENT_ACTION_DIFFER,
                       (int64_t)it->src.size, equal && sha256[0] ? sha256 : NULL, false, 0, NULL);
}

static void do_delete(struct transfer_worker *w, struct work_item *it)
{
    struct transfer_run *run = w->run;
    struct err e;
    err_clear(&e);
    int r = storage_remove(run->dst, it->dst.key, &e);
    /* gone already: the goal is reached */
    if (r && r != ERR_NOT_FOUND) {
        transfer_item_error(run, it->dst.key, (int64_t)it->dst.size, &e);
        return;
    }
    atomic_fetch_add(&run->files_deleted, 1);
    transfer_emit_file(run, it->dst.key, EVENT_ACTION_DELETED, (int64_t)it->dst.size, NULL, false,
                       0, NULL);
}

void transfer_work_do(struct transfer_worker *w, struct work_item *it)
{
    switch (it->kind) {
    case WORK_TRANSFER:
        do_transfer(w, it);
        break;
    case WORK_COMPARE:
        do_compare(w, it);
        break;
    case WORK_DELETE:
        do_delete(w, it);
        break;
    }
}
