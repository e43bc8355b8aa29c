/*
 * transfer.h - the engine behind `arca copy`, `arca sync` and `arca check`.
 *
 * All three walk two storages at once: the source and destination listings
 * (each in strictly increasing byte order, see storage.h) are merged as
 * streams, so memory stays bounded whatever the number of objects. Work
 * that needs I/O (transfer one file, compare contents, delete one key)
 * goes to a bounded queue served by `transfers` worker threads; the merge
 * blocks while the queue is full.
 *
 *   copy   make every source file present and identical at the destination
 *   sync   copy, then delete what the destination has and the source lacks
 *   check  compare both sides (never by mtime); change nothing
 *
 * Deciding that a file is unchanged (copy/sync), in this order:
 *   1. sizes differ                             -> transfer
 *   2. opts.checksum                            -> content hash compare
 *   3. both entries carry md5 (or both sha256)  -> compare them
 *   4. both storages have STORAGE_FEATURE_LIST_MTIME and both listing
 *      mtimes are known                         -> unchanged when they
 *      differ by less than 1 ms (the precision every driver we have keeps;
 *      a destination with coarser mtimes would be re-copied every run)
 *   5. one side has md5 in its listing and the other side is at most
 *      64 MiB                                   -> read that side, MD5 it
 *   6. storage_stat() the side(s) whose listing has no true mtime (S3 keeps
 *      the source mtime as metadata) and compare mtimes as in 4
 *   7. otherwise                                -> content hash compare
 * Content hash compare: both sha256 or both md5 known -> compare; one side
 * has md5 -> MD5 the other by reading; else SHA-256 both by reading.
 *
 * Transferring one file: server-side (storage_copy_from) when both storages
 * are the same driver on the same endpoint and the destination has
 * STORAGE_FEATURE_SERVER_COPY; otherwise read -> SHA-256 -> counter ->
 * rate limit -> storage_write, committed only when every byte arrived and
 * the byte count equals the listed size (else the write is aborted and the
 * file fails: "changed size while being read"). Symlinks are never
 * followed nor copied: they are reported as `skipped`. Directory entries
 * (drivers that list them) are ignored on both sides.
 *
 * Sync deletions happen last, after both listings ended without error and
 * every transfer finished; the keys are spooled to an anonymous temporary
 * file meanwhile (bounded memory). They are skipped (status PARTIAL, a
 * warning) when any file failed or a listing skipped part of a tree; they
 * are refused (ERR_REFUSED, nothing deleted) when the source listed nothing
 * at all and !allow_empty_source, or when there are more than max_delete.
 * Dry runs apply the same checks, so they predict the real run.
 *
 * Errors are sorted by code:
 *  - per file (a `failed` event, files_failed++, the run goes on, status
 *    PARTIAL): ERR_NOT_FOUND (vanished), ERR_PERM, ERR_IO, ERR_EXISTS,
 *    ERR_USAGE (a key the destination refuses), ERR_PROTO (an answer about
 *    one object we cannot use);
 *  - whole run (stop dispatching, drop what is queued, abort in-flight
 *    writes at their next block, no deletions, the function returns the
 *    code): everything else - ERR_AUTH, ERR_NET (after the driver's
 *    retries), ERR_TLS, ERR_CANCELLED, ERR_UNSORTED, ERR_NOMEM,
 *    ERR_REFUSED, ERR_CONFIG, ERR_INTERNAL - and any error from opening or
 *    reading a listing or from storage_check_root (a destination that is
 *    not writable at all fails there, before any file is touched).
 * Listings that skip an unreadable part of a tree do not fail the run: the
 * engine installs its own listing error handler (storage.h) on both
 * storages for the duration of the call, reports each skipped part as a
 * `failed` event, counts it in files_failed and suppresses deletions. Any
 * handler the caller installed is replaced and removed.
 *
 * Events (core/event.h) go to opts->events: one `file` event per path
 * (copied, updated, unchanged, deleted, skipped, failed; check: match,
 * differ, missing_on_destination, missing_on_source, skipped, failed),
 * `progress` events every progress_interval seconds plus a final one with
 * phase "done", and always exactly one `summary` event last, also when the
 * run fails as a whole.
 *
 * Thread-safety: the functions may run concurrently on different storages
 * or the same storages; they use cancel_requested() (process-wide).
 */
#ifndef ARCA_ENGINE_TRANSFER_H
#define ARCA_ENGINE_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/event.h"

struct storage;
struct ratelimit;

struct transfer_opts {
    int transfers;                      /* files in flight; <= 0: 4, at most 256 */
    bool dry_run;                       /* list and compare, change nothing */
    bool checksum;                      /* copy/sync: compare content hashes, not mtimes */
    int64_t max_delete;                 /* sync: refuse more deletions than this; -1: no limit */
    bool allow_empty_source;            /* sync: permit deleting everything when the source
                                           lists nothing */
    struct ratelimit *ratelimit;        /* shared bandwidth limit, may be NULL; not owned */
    const struct event_emitter *events; /* may be NULL; not owned */
    double progress_interval;           /* seconds between progress events; <= 0: none */
    size_t block_size;                  /* read size; 0: 1 MiB */
    const char *only_key;               /* NULL, or the one key both sides are
                                           restricted to (a single-file copy) */
    bool report_sha256;                 /* put the SHA-256 of every transferred
                                           file in its event (costs a hash pass) */
    int read_streams;                   /* a file of at least read_stream_cutoff bytes
                                           from a source that gains from it (SFTP) is
                                           read as this many ranges at once; <= 1: off */
    uint64_t read_stream_cutoff;        /* 0: 64 MiB */
};

/* Defaults: transfers 4, max_delete -1, block_size 1 MiB, read_streams 4,
 * read_stream_cutoff 64 MiB, the rest 0/NULL. */
void transfer_opts_init(struct transfer_opts *o);

struct transfer_result {
    enum event_status status;
    uint64_t files_transferred; /* copied + updated (dry run: would be) */
    uint64_t bytes_transferred; /* bytes of those files */
    uint64_t files_unchanged;
    uint64_t files_deleted; /* sync (dry run: would be) */
    uint64_t files_skipped; /* symlinks */
    uint64_t files_failed;  /* per-file errors + skipped parts of listings */
    uint64_t differences;   /* check: differ + missing either side */
    uint64_t files_checked; /* copy/sync: paths present on both sides and compared;
                               check: every path reported */
    double elapsed;         /* seconds */
};

/*
 * Run copy / sync / check from src to dst. opts may be NULL (defaults);
 * res may be NULL. Returns 0 when the operation ran to its end - res->status
 * is then SUCCEEDED, PARTIAL (some files failed, or sync deletions were
 * skipped because of them) or, for check, DIFFERENCES (PARTIAL wins over
 * DIFFERENCES: a check that could not read a file is incomplete) - or a
 * negative ERR_* code for a whole-run failure (see above) with e filled and
 * res->status FAILED or CANCELLED. res is filled in every case. The storages
 * stay owned by the caller.
 */
int transfer_copy(struct storage *src, struct storage *dst, const struct transfer_opts *opts,
                  struct transfer_result *res, struct err *e);
int transfer_sync(struct storage *src, struct storage *dst, const struct transfer_opts *opts,
                  struct transfer_result *res, struct err *e);
int transfer_check(struct storage *src, struct storage *dst, const struct transfer_opts *opts,
                   struct transfer_result *res, struct err *e);

/* True when code is an error that concerns one file only (see above). */
bool transfer_error_is_per_file(int code);

#endif
