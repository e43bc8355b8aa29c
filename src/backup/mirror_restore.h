/*
 * mirror_restore.h - restore or verify a mirror run (internal to
 * restore.c; see mirror_restore.c).
 */
#ifndef ARCA_BACKUP_MIRROR_RESTORE_H
#define ARCA_BACKUP_MIRROR_RESTORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backup/catalog.h"
#include "backup/restore.h"
#include "core/error.h"

struct storage;

struct mirror_restore_stats {
    _Atomic uint64_t files, bytes; /* restored / found good */
    _Atomic uint64_t skipped;      /* entries with errors, links a target cannot hold */
    _Atomic uint64_t errors;       /* per-file failures at the target */
    _Atomic uint64_t bad;          /* verify: objects that fail their check */
    _Atomic uint64_t bytes_done, files_done;
};

/*
 * Run ri (its manifest cm open, header read) into target, or with target
 * NULL verify it: with read_data every object is read and hashed, else
 * each must exist with the manifest's size. Failures of a check are
 * counted in st->bad (verify) or stop a restore with ERR_CORRUPT.
 */
int mirror_restore(struct storage *dst, struct storage *target, const struct run_info *ri,
                   struct catalog_manifest *cm, const struct restore_opts *o, bool read_data,
                   int transfers, struct mirror_restore_stats *st, struct err *e);

#endif
