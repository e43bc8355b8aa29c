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
 * visible on commit (rename); they are durable after storage_sync() (one
 * syncfs per filesystem written to). Removing the
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

#include "core/error.h"

struct storage;

/* Open a storage on the directory `root` (need not exist yet: see
 * storage_check_root, which creates it when asked). `display` is the remote
 * as the user typed it (NULL: root). Does not touch the filesystem.
 * On success *out is owned by the caller (storage_close). ERR_USAGE for an
 * empty root, ERR_NOMEM. */
int local_storage_open(const char *root, const char *display, struct storage **out, struct err *e);

#endif
