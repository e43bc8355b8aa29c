/*
 * storage_internal.h - what a driver implements.
 *
 * A driver fills a static const struct storage_driver and a constructor
 * that returns a struct storage whose `drv` points at it. The generic
 * layer (storage.c) wraps every call: it checks listing order, fills error
 * context with the remote's display name, and frees handles.
 */
#ifndef ARCA_STORAGE_STORAGE_INTERNAL_H
#define ARCA_STORAGE_STORAGE_INTERNAL_H

#include "storage/storage.h"

#define STORAGE_DRIVER_VERSION 1

struct storage_driver {
    int version; /* STORAGE_DRIVER_VERSION */
    const char *name;
    unsigned features;
    unsigned hashes;
    /* How finely written mtimes are kept, in ns (SFTP: 1 s); 0 means 1 ns. */
    int64_t mtime_precision_ns;

    int (*list_open)(struct storage *st, const char *prefix, void **state, struct err *e);
    int (*list_next)(void *state, struct storage_entry *ent, struct err *e);
    void (*list_close)(void *state);

    int (*stat)(struct storage *st, const char *key, struct storage_entry *ent, struct err *e);

    int (*read_open)(struct storage *st, const char *key, uint64_t offset, int64_t length,
                     void **state, struct storage_entry *ent, struct err *e);
    int (*read)(void *state, void *buf, size_t cap, size_t *got, struct err *e);
    void (*read_close)(void *state);

    int (*write_open)(struct storage *st, const char *key, const struct storage_write_opts *opts,
                      void **state, struct err *e);
    int (*write)(void *state, const void *data, size_t len, struct err *e);
    int (*write_commit)(void *state, struct err *e); /* frees state */
    void (*write_abort)(void *state);                /* frees state */

    int (*remove)(struct storage *st, const char *key, struct err *e);
    /* optional (NULL when the driver cannot) */
    int (*copy_from)(struct storage *dst, const char *dst_key, struct storage *src,
                     const char *src_key, const struct storage_entry *src_ent, struct err *e);
    int (*check_root)(struct storage *st, bool for_write, bool create, struct err *e);
    /* optional: create a symbolic link (see storage_symlink) */
    int (*symlink)(struct storage *st, const char *key, const char *target, int64_t mtime_ns,
                   struct err *e);
    /* optional: make every committed write durable (see storage_sync) */
    int (*sync)(struct storage *st, struct err *e);
    void (*close)(struct storage *st); /* frees driver state, not st */
};

struct storage {
    const struct storage_driver *drv;
    char *display;     /* owned */
    char *endpoint_id; /* owned */
    void *priv;        /* driver state */
    storage_list_error_fn on_list_error;
    void *on_list_error_ctx;
    _Atomic size_t list_errors;
};

/* For drivers: report a part of a tree a listing skips (see storage.h).
 * Counts it, calls the handler (or logs `why`); returns 0 to go on, or the
 * handler's code with e filled to stop. */
int storage_list_skipped(struct storage *st, const char *key, const struct err *why, struct err *e);

/* A reader that is not a driver's own (storage/multiread): storage_read and
 * storage_read_close call these on `state`. */
struct storage_reader_ops {
    int (*read)(void *state, void *buf, size_t cap, size_t *got, struct err *e);
    void (*close)(void *state);
};
/* Wrap state (a non-NULL pointer) as a reader of st; on failure nothing is
 * freed. */
int storage_reader_new(struct storage *st, const struct storage_reader_ops *ops, void *state,
                       struct storage_reader **out, struct err *e);

/* Allocate a storage for a driver; takes copies of display and endpoint_id. */
struct storage *storage_new(const struct storage_driver *drv, const char *display,
                            const char *endpoint_id, void *priv);

/* Keys: a '/'-separated list of non-empty segments other than "." and "..",
 * not starting with '/'. A listing prefix may also be "" or end with '/'.
 * ERR_USAGE naming the key otherwise. For drivers that map keys to paths. */
int storage_key_check(const char *key, bool is_prefix, struct err *e);

/* Temp names of atomic writes on file-like storages (local, SFTP, SMB):
 * ".<base>.arca-tmp-<16 hex>", cut to at most max_name bytes (cap must be
 * larger). Listings skip names that look like this (ours, or a crash's
 * leftovers). */
#define STORAGE_TMP_MARK ".arca-tmp-"
void storage_temp_name(char *out, size_t cap, const char *base, size_t max_name);
bool storage_is_temp_name(const char *name);

/* Split a listing prefix into the directory part ("" or ending in '/') and
 * the name filter after it: "a/b/c" -> "a/b/" + "c". Returns the length of
 * the directory part. */
size_t storage_prefix_split(const char *prefix);

/* A random 64-bit value (getrandom, with a time/counter fallback). */
uint64_t storage_random64(void);

#endif
