/*
 * transfer_file.c - one work item on a worker thread: decide whether a file
 * changed, move its bytes, compare contents, delete a key.
 *
 * Bytes of a transfer flow reader -> SHA-256 -> counter -> rate limit ->
 * writer. The writer is committed only after the last byte arrived and the
 * count matched the listed size; every other path aborts it, so a failed
 * or interrupted transfer never leaves a partial object under its key.
 */
#include "engine/copy_file.h"
#include "engine/transfer_internal.h"
#include "io/filter.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The copy options of a worker (its buffer, the run's counters). */
static struct copy_file_opts worker_copy_opts(struct transfer_worker *w, bool count)
{
    struct transfer_run *run = w->run;
    struct copy_file_opts o = {
        .buf = w->buf,
        .block_size = run->o.block_size,
        .read_streams = run->o.read_streams,
        .read_stream_cutoff = run->o.read_stream_cutoff,
        .ratelimit = run->o.ratelimit,
        .stop = &run->stop,
        .hash = run->o.report_sha256,
    };
    if (count) {
        o.count[0] = &run->bytes_done;
        o.count[1] = &w->bytes;
    }
    return o;
}

/* Read rd to its end through chain (copy_pump with the worker's buffer). */
static int pump(struct transfer_worker *w, struct storage_reader *rd, const char *key,
                uint64_t size, struct filter *chain, struct err *e)
{
    struct copy_file_opts o = worker_copy_opts(w, false);
    return copy_pump(rd, key, size, chain, &o, e);
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

/* Copy s to the destination; sha256 receives the digest of what was
 * written when the run reports it. */
static int stream_copy(struct transfer_worker *w, const struct storage_entry *s, char sha256[65],
                       struct err *e)
{
    struct copy_file_opts o = worker_copy_opts(w, true);
    return copy_file(w->run->src, s, w->run->dst, s->key, &o, sha256, NULL, e);
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
