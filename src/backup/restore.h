/*
 * restore.h - restore a run (docs/FORMAT.md) into a target storage.
 */
#ifndef ARCA_BACKUP_RESTORE_H
#define ARCA_BACKUP_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/runid.h"
#include "core/error.h"
#include "core/event.h"

struct storage;

#define RESTORE_MAX_INCLUDES 64

struct restore_opts {
    const char *run; /* NULL: the latest */
    const char *includes[RESTORE_MAX_INCLUDES];
    size_t nincludes; /* 0: everything */
    const struct event_emitter *events;
    double progress_interval;
    int transfers; /* mirror runs: files in flight; <= 0: 4 */
};
void restore_opts_init(struct restore_opts *o);
/* Whether path is selected by the --include globs (fnmatch; a glob that
 * matches a directory selects everything below it). */
bool restore_included(const struct restore_opts *o, const char *path);

struct restore_result {
    enum event_status status;
    char run[RUNID_LEN + 1];
    uint64_t files, bytes, skipped, errors;
    double elapsed;
};

/* Check a run: its manifest's structure and its archive's presence and
 * size; with read_data also every byte (the archive's SHA-256, each file's
 * SHA-256 and each link's target against the manifest). Problems are
 * `differ` file events and end in ERR_CORRUPT. */
int verify_run(struct storage *dst, const struct restore_opts *o, bool read_data,
               struct restore_result *res, struct err *e);
/* A run against the live source: paths only in one, or whose type, size,
 * link target or mtime differ (read_data: SHA-256) are `differ` /
 * `missing_on_*` events and status EVENT_STATUS_DIFFERENCES. */
int verify_against(struct storage *dst, struct storage *src, const struct restore_opts *o,
                   bool read_data, struct restore_result *res, struct err *e);
int restore_run(struct storage *dst, struct storage *target, const struct restore_opts *o,
                struct restore_result *res, struct err *e);

#endif
