/*
 * local.h - the local filesystem storage driver.
 *
 * Keys map to paths below a root directory. The driver never leaves the
 * root: keys with "..", "." or empty segments are refused, and every path
 * below the root is resolved one directory at a time with O_NOFOLLOW, so a
 * symbolic link inside the tree is reported (as STORAGE_TYPE_SYMLINK) but
 * never followed, neither by listings nor by reads or writes. The root
 * itself may be a symbolic link.
 *
 * Listings are recursive, streaming and in strictly increasing byte order
 * of the whole key: a directory "a" sorts as "a/" among its siblings, so
 * "a-b" < "a/x" < "a0". Memory is one sorted name list per directory on the
 * current path (never the whole tree). Regular files and symlinks are
 * yielded; directories are not (an empty directory yields nothing);
 * fifos, sockets and devices are skipped with a warning; files named
 * ".<name>.arca-tmp-<hex>" are this driver's in-flight writes and are never
 * listed.
 *
 * Writes go to ".<name>.arca-tmp-<hex>" in the target directory and become
 * visible on commit (fsync, rename, fsync of the directory). Removing the
 * last file of a directory removes the directories left empty, up to (not
 * including) the root.
 *
 * Features: RANGE_READ | MTIME | SYMLINK | LIST_MTIME; no server-side copy,
 * no stored hashes. Endpoint id: "local".
 *
 * storage_stat of a key that is a directory reports STORAGE_TYPE_DIR;
 * reading it is ERR_USAGE. A listing whose root or prefix directory cannot
 * be opened fails at storage_list_open (a missing root is ERR_NOT_FOUND,
 * never an empty listing); a prefix that does not exist below an existing
 * root lists nothing.
 *
 * Errors name the full path: ERR_PERM (permission denied), ERR_NOT_FOUND,
 * ERR_IO (no space left, I/O errors), ERR_USAGE (invalid key, root that is
 * not a directory), ERR_EXISTS (a directory or file is in the way of a
 * write).
 */
#ifndef ARCA_STORAGE_LOCAL_LOCAL_H
#define ARCA_STORAGE_LOCAL_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

struct storage;

/* Open a storage on the directory `root` (need not exist yet: see
 * storage_check_root, which creates it when asked). `display` is the remote
 * as the user typed it (NULL: root). Does not touch the filesystem.
 * On success *out is owned by the caller (storage_close). ERR_USAGE for an
 * empty root, ERR_NOMEM. */
int local_storage_open(const char *root, const char *display, struct storage **out,
                       struct err *e);

/*
 * Listing errors. A part of the tree that a listing cannot read (a
 * directory that cannot be opened or read, an entry that cannot be
 * stat'ed) does not end the listing: the listing goes on with the rest and
 * reports the part it skipped here.
 *
 * `key` is the key of what was skipped: for a directory it ends with '/'
 * ("photos/private/") and stands for every key under it. `e` says why
 * (ERR_PERM, ERR_IO) and names the full path. IMPORTANT for a sync: keys
 * under a skipped prefix are unknown, not absent; a caller that deletes
 * what the source does not list must not delete anything under it.
 *
 * The handler returns 0 to go on, or a negative ERR_* code to stop: the
 * listing then returns that code from storage_list_next with `e` copied
 * into the caller's error record. It runs on the thread that called
 * storage_list_next, inside that call.
 *
 * Without a handler, the driver logs a warning (log_warn) for each skipped
 * part and goes on. Either way the skip is counted (see below).
 */
typedef int (*local_list_error_fn)(void *ctx, const char *key, const struct err *e);

/* Install (fn != NULL) or remove (fn == NULL) the listing error handler of
 * a local storage. Set it before starting listings; not synchronised with
 * listings running on other threads. st must come from local_storage_open. */
void local_storage_set_list_error_handler(struct storage *st, local_list_error_fn fn, void *ctx);

/* Number of parts skipped by all listings of st so far (thread-safe). */
size_t local_storage_list_error_count(const struct storage *st);

/* True if st was made by local_storage_open. */
bool local_storage_is_local(const struct storage *st);

#endif
