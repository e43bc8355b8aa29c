/*
 * backup.c - one backup run: a run id, the destination's lock, the mode's
 * engine, the summary event.
 */
#include "backup/backup.h"

#include "backup/catalog.h"
#include "backup/lock.h"
#include "core/log.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void backup_opts_init(struct backup_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = BACKUP_ARCHIVE;
    o->compression = COMPRESS_ZSTD;
    o->transfers = 4;
    o->max_delete = -1;
}

/*
 * Ids sort by time only to the second: a run started in the same second as
 * the latest one at the destination takes an id just above it, so "the
 * latest run" stays the last one made. Called under the lock.
 */
static int runid_after_latest(struct storage *dst, char run[RUNID_LEN + 1], struct err *e)
{
    struct run_info *v;
    size_t n;
    int r = catalog_list(dst, false, &v, &n, e);
    if (r)
        return r;
    if (n && strcmp(v[n - 1].run, run) >= 0) {
        const char *latest = v[n - 1].run;
        if (!strncmp(latest, run, 16)) {
            unsigned long hex = strtoul(latest + 17, NULL, 16);
            if (hex < 0xffffffffUL) {
                char buf[16];
                snprintf(buf, sizeof(buf), "%08lx", hex + 1);
                memcpy(run + 17, buf, 8);
            }
        } else {
            log_warn("the clock is behind the latest run at '%s' (%s); run %s sorts before it",
                     storage_display(dst), latest, run);
        }
    }
    free(v);
    return 0;
}

int backup_run(struct storage *src, struct storage *dst, const struct backup_opts *o,
               struct backup_result *res, struct err *e)
{
    memset(res, 0, sizeof(*res));
    res->status = EVENT_STATUS_FAILED;
    struct backup_lock *lock = NULL;
    int r = runid_new(res->run, (int64_t)time(NULL), e);
    if (!r)
        r = storage_check_root(src, false, false, e);
    if (!r)
        r = storage_check_root(dst, true, true, e);
    if (!r)
        r = backup_lock_acquire(dst, res->run, "backup", &lock, e);
    if (!r && (r = runid_after_latest(dst, res->run, e)) != 0) {
        backup_lock_release(lock);
        lock = NULL;
    }
    if (!r) {
        log_info("backup run %s of '%s' to '%s' (%s)", res->run,
                 o->source_desc ? o->source_desc : storage_display(src), storage_display(dst),
                 o->mode == BACKUP_ARCHIVE ? "archive" : "mirror");
        if (o->mode == BACKUP_ARCHIVE) {
            r = backup_archive(src, dst, o, res->run, res, e);
            res->files_transferred = res->files;
            res->bytes_transferred = res->bytes;
        } else {
            r = backup_mirror(src, dst, o, res->run, res, e);
        }
        backup_lock_release(lock);
    }
    if (r)
        res->status = r == ERR_CANCELLED ? EVENT_STATUS_CANCELLED : EVENT_STATUS_FAILED;
    struct event_summary sum = {
        .command = "backup",
        .source = o->source_desc ? o->source_desc : storage_display(src),
        .destination = storage_display(dst),
        .status = res->status,
        .files_transferred = res->files_transferred,
        .bytes_transferred = res->bytes_transferred,
        .files_unchanged = res->files_unchanged,
        .files_deleted = res->files_deleted,
        .files_failed = res->errors,
        .elapsed = res->elapsed,
        .error_code = r,
        .error = r ? e->msg : NULL,
    };
    event_emit_summary(o->events, &sum);
    return r;
}
