/*
 * dirwalk.h - a streaming, byte-ordered listing of a remote directory tree
 * for drivers that only know "read one directory" (SFTP, SMB).
 *
 * Keys compare as bytes, so within one directory a subdirectory "a" sorts
 * as if it were named "a/": "a-b" (0x2d) < "a/..." (0x2f) < "a0" (0x30).
 * The walker reads each directory in full through the driver's read_dir,
 * sorts it by that rule and consumes it lazily while it descends. Memory is
 * one directory's entries per level of the current path, never the tree.
 *
 * It also keeps the rules every file-like driver shares: temp names of
 * atomic writes are hidden, "." and ".." are dropped, special files are
 * skipped with a warning, a directory that cannot be read is reported to
 * the storage's list-error handler (storage_list_skipped) and the walk goes
 * on, and descending stops at DIRWALK_MAX_DEPTH (a symlink loop when links
 * are followed).
 */
#ifndef ARCA_STORAGE_DIRWALK_H
#define ARCA_STORAGE_DIRWALK_H

#include <stdint.h>

#include "core/error.h"

struct storage;
struct storage_entry;

#define DIRWALK_MAX_DEPTH 256

enum dirwalk_kind { DIRWALK_FILE, DIRWALK_DIR, DIRWALK_LINK, DIRWALK_OTHER };

/* One entry as the driver reads it. */
struct dirwalk_ent {
    const char *name; /* one path segment */
    enum dirwalk_kind kind;
    uint64_t size;
    int64_t mtime_ns;        /* or STORAGE_MTIME_UNKNOWN */
    uint32_t mode;           /* permission bits, 0 when unknown */
    const char *link_target; /* DIRWALK_LINK: its target, or NULL */
};

/* Called by read_dir for each entry; 0, or ERR_NOMEM (return it). */
typedef int (*dirwalk_add_fn)(void *acc, const struct dirwalk_ent *de);

struct dirwalk_ops {
    /* Read the directory `dir` (a key prefix: "" for the root, else ending
     * in '/') in full, calling add() for each entry (the walker drops "."
     * and ".." itself). 0, or an ERR_* code with e naming the directory:
     * ERR_NOT_FOUND when it does not exist (or is not a directory), ERR_PERM,
     * ERR_IO...; ERR_NOMEM, ERR_CANCELLED, ERR_NET, ERR_AUTH and ERR_PROTO (whole
     * remote problems) end the listing, others skip the directory. */
    int (*read_dir)(void *ctx, const char *dir, dirwalk_add_fn add, void *acc, struct err *e);
};

struct dirwalk;

/* Start listing every key under `prefix` (checked with storage_key_check).
 * A prefix whose directory does not exist gives an empty listing; `st` is
 * where skipped parts are reported. */
int dirwalk_open(struct storage *st, const struct dirwalk_ops *ops, void *ctx, const char *prefix,
                 struct dirwalk **out, struct err *e);
/* 1 with *ent filled (a file or a symlink), 0 at the end, or an ERR_*. */
int dirwalk_next(struct dirwalk *w, struct storage_entry *ent, struct err *e);
void dirwalk_close(struct dirwalk *w);

#endif
