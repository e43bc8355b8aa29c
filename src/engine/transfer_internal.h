/*
 * transfer_internal.h - shared by transfer.c (the run: merge, queue,
 * deletions, progress, summary) and transfer_file.c (one work item:
 * compare, transfer, delete). Not for callers: see transfer.h.
 */
#ifndef ARCA_ENGINE_TRANSFER_INTERNAL_H
#define ARCA_ENGINE_TRANSFER_INTERNAL_H

#include "engine/transfer.h"
#include "storage/storage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

enum transfer_mode { TRANSFER_MODE_COPY = 0, TRANSFER_MODE_SYNC, TRANSFER_MODE_CHECK };

enum work_kind {
    WORK_TRANSFER = 0, /* copy/sync: make dst equal to src (compare first unless changed) */
    WORK_COMPARE,      /* check: both present with equal sizes, compare contents */
    WORK_DELETE,       /* sync: remove dst.key */
};

/* One queued job. Owns its entries. */
struct work_item {
    enum work_kind kind;
    struct storage_entry src;
    struct storage_entry dst; /* dst.key == NULL: absent at the destination */
    bool changed;             /* WORK_TRANSFER: known to differ, no compare needed */
};

/* Files above this size are not read just to learn their MD5 when the other
 * side's listing has one (rule 5 in transfer.h). */
#define TRANSFER_MD5_READ_MAX ((uint64_t)64 << 20)
/* mtimes closer than this are equal. */
#define TRANSFER_MTIME_TOLERANCE_NS 1000000

struct transfer_run;

struct transfer_worker {
    struct transfer_run *run;
    pthread_t thread;
    bool started;
    unsigned char *buf;     /* block_size bytes */
    _Atomic uint64_t bytes; /* bytes of the current item counted in run->bytes_done */
};

struct transfer_run {
    enum transfer_mode mode;
    const char *command;
    struct storage *src, *dst;
    struct transfer_opts o;
    bool server_copy;           /* src and dst can copy on the server */
    bool both_list_mtime;       /* both listings report true mtimes */
    int64_t mtime_tolerance_ns; /* mtimes this close are equal (the coarser storage's precision) */
    bool dst_missing;           /* dry run into a destination root that does not exist */
    struct timespec start;

    /* queue of work items, ring buffer of cap */
    pthread_mutex_t lock;
    pthread_cond_t cond_item;  /* an item was queued, or the queue closed/stopped */
    pthread_cond_t cond_space; /* room in the ring, or stop */
    pthread_cond_t cond_idle;  /* pending dropped to 0 */
    struct work_item *ring;
    size_t cap, head, count;
    size_t pending; /* queued + being processed */
    bool closed;

    /* the first whole-run error; stop tells everyone to wind down */
    atomic_bool stop;
    int fatal_code; /* under lock */
    struct err fatal;

    /* sync: keys to delete, spooled to an anonymous file */
    FILE *spool;
    uint64_t delete_count;
    uint64_t src_listed; /* entries the source listing yielded (any type) */

    /* results */
    _Atomic uint64_t files_transferred, bytes_transferred, files_unchanged, files_deleted,
        files_skipped, files_failed, differences, files_checked, list_errors;

    /* progress */
    _Atomic int phase;            /* enum event_phase */
    _Atomic uint64_t files_total; /* grows while listing */
    _Atomic uint64_t bytes_total; /* bytes of queued items, grows while listing */
    _Atomic uint64_t files_done;
    _Atomic uint64_t bytes_done; /* read so far + the rest of finished items */
    atomic_bool totals_known;    /* both listings finished */
    char current[512];           /* under lock */
    struct transfer_worker *workers;
    int nworkers;
    struct progress_ticker *progress; /* NULL: no progress events */
    char progress_current[512];       /* the ticker thread's copy of current */
};

/* Record a whole-run error (the first one wins) and stop everything. */
void transfer_run_fail(struct transfer_run *run, const struct err *e);
/* Emit a file event with the run's dry_run flag. */
void transfer_emit_file(struct transfer_run *run, const char *path, enum event_action action,
                        int64_t size, const char *sha256, bool server_side, int code,
                        const char *error);
/* Handle the error of one item: per-file -> `failed` event, files_failed++;
 * otherwise transfer_run_fail (quietly ignored once the run stops). */
void transfer_item_error(struct transfer_run *run, const char *path, int64_t size,
                         const struct err *e);
/* Process one work item on a worker thread (transfer_file.c). */
void transfer_work_do(struct transfer_worker *w, struct work_item *item);

double transfer_elapsed(const struct transfer_run *run);

#endif
