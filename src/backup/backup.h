/*
 * backup.h - the backup engines (docs/FORMAT.md): `backup` in archive or
 * mirror mode, and what reads their runs back (runs, restore).
 *
 * A backup takes the destination's lock, writes its objects, then its
 * manifest last; a run that fails or is cancelled writes no manifest and
 * so does not exist for restore. Progress and results are the events of
 * docs/EVENTS.md.
 */
#ifndef ARCA_BACKUP_BACKUP_H
#define ARCA_BACKUP_BACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "backup/runid.h"
#include "core/error.h"
#include "core/event.h"
#include "io/compress.h"

struct storage;
struct ratelimit;

enum backup_mode { BACKUP_MIRROR, BACKUP_ARCHIVE };

struct backup_opts {
    enum backup_mode mode;
    enum compress_kind compression;     /* archive: COMPRESS_ZSTD (default) or _GZIP */
    int level;                          /* 0: the compressor's default */
    int threads;                        /* zstd workers; 0: one per online CPU */
    int transfers;                      /* files in flight (mirror); <= 0: 4 */
    struct ratelimit *ratelimit;        /* may be NULL; not owned */
    const struct event_emitter *events; /* may be NULL */
    double progress_interval;           /* seconds; <= 0: no progress events */
    const char *source_desc;            /* the source as the user gave it (no secret) */
    const char *job;                    /* NULL, or the service job's name */
    int64_t max_delete;                 /* mirror: -1 no limit */
    bool allow_empty_source;            /* mirror */
};

void backup_opts_init(struct backup_opts *o);

struct backup_result {
    enum event_status status;
    char run[RUNID_LEN + 1];
    uint64_t files, bytes, errors;
    uint64_t stored_bytes; /* archive: bytes of the stored archive */
    /* mirror: files uploaded (new or changed) and their bytes, files not
     * read because they are unchanged, paths deleted from current/ */
    uint64_t files_transferred, bytes_transferred, files_unchanged, files_deleted;
    double elapsed;
};

int backup_run(struct storage *src, struct storage *dst, const struct backup_opts *o,
               struct backup_result *res, struct err *e);

/* Internal to the engines. */
int backup_archive(struct storage *src, struct storage *dst, const struct backup_opts *o,
                   const char *run, struct backup_result *res, struct err *e);
int backup_mirror(struct storage *src, struct storage *dst, const struct backup_opts *o,
                  const char *run, struct backup_result *res, struct err *e);

#endif
