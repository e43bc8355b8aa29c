/*
 * storage.h - one interface over every place arca reads or writes.
 *
 * A `struct storage` is a driver bound to a root (a local directory, an S3
 * bucket + prefix, ...). Keys are relative to that root, use '/' as the
 * separator and never start with '/'. Callers only use the storage_*()
 * functions below; the generic layer (storage.c) enforces the rules every
 * driver must keep, so drivers stay small:
 *
 *  - listings come out in strictly increasing byte order of the key (UTF-8
 *    bytes compared with memcmp, so "a-b" < "a/b" < "a0"); a listing that
 *    does not stops with ERR_UNSORTED before the caller acts on it;
 *  - writes are atomic: nothing is visible under the final key before
 *    storage_write_commit() returns 0; storage_write_abort() leaves nothing;
 *  - every call fills a struct err on failure with the remote named.
 *
 * Thread-safety: a struct storage may be used from several threads at once
 * (drivers keep per-thread or pooled connections); a list, reader or writer
 * handle belongs to one thread at a time.
 */
#ifndef ARCA_STORAGE_STORAGE_H
#define ARCA_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct ratelimit;

enum storage_type { STORAGE_TYPE_FILE = 0, STORAGE_TYPE_SYMLINK = 1, STORAGE_TYPE_DIR = 2 };

/* Feature bits a driver declares. */
enum {
    STORAGE_FEATURE_SERVER_COPY = 1u << 0,   /* copy() within the same storage/endpoint */
    STORAGE_FEATURE_RANGE_READ = 1u << 1,    /* read_open with offset/length */
    STORAGE_FEATURE_MTIME = 1u << 2,         /* keeps the mtime given at write */
    STORAGE_FEATURE_SYMLINK = 1u << 3,       /* can report symlinks */
    STORAGE_FEATURE_LIST_MTIME = 1u << 4,    /* listing reports the true mtime (no stat needed) */
    STORAGE_FEATURE_CHEAP_REREAD = 1u << 5,  /* reading a range again costs no network (local) */
    STORAGE_FEATURE_PARALLEL_READ = 1u << 6, /* ranges read on several connections at once are
                                                faster than one stream (SFTP: one core per
                                                connection); see storage/multiread.h */
};

/* Hash bits: which hashes entries may carry without reading the data. */
enum {
    STORAGE_HASH_MD5 = 1u << 0,
    STORAGE_HASH_SHA256 = 1u << 1,
};

#define STORAGE_MTIME_UNKNOWN INT64_MIN

struct storage_entry {
    char *key; /* owned by the entry */
    enum storage_type type;
    uint64_t size;
    int64_t mtime_ns;           /* source mtime (ns since epoch) or STORAGE_MTIME_UNKNOWN */
    int64_t listed_modified_ns; /* listings without true mtimes: when the storage last
                                   wrote the object (S3 LastModified), a change token;
                                   0 unknown */
    uint32_t mode;              /* permission bits, 0 when unknown */
    char md5[33];               /* lowercase hex or "" when unknown */
    char sha256[65];            /* lowercase hex or "" when unknown */
    char *link_target;          /* symlinks only; owned */
};

void storage_entry_clear(struct storage_entry *ent); /* frees key/link_target, zeroes */
/* Deep copy; ERR_NOMEM on failure. */
int storage_entry_copy(struct storage_entry *dst, const struct storage_entry *src);

struct storage;
struct storage_list;
struct storage_reader;
struct storage_writer;

/* Where a writer may read again what it is being given: bytes
 * [offset, offset + length) of the stream, as a reader. Called from any
 * thread, any number of times (retries). */
struct storage_range_source {
    int (*open)(void *ctx, uint64_t offset, uint64_t length, struct storage_reader **out,
                struct err *e);
    void *ctx;
};

struct storage_write_opts {
    int64_t size_hint;        /* -1 when unknown; lets S3 pick single PUT vs multipart */
    int64_t mtime_ns;         /* STORAGE_MTIME_UNKNOWN: driver default */
    uint32_t mode;            /* 0: driver default */
    const char *content_type; /* NULL: application/octet-stream */
    /* NULL, or the stream's bytes readable again (a local source file): a
     * writer that must send data after it has seen all of it (S3 parts carry
     * their checksum up front) then re-reads ranges instead of holding them
     * in memory. The bytes re-read must equal those written; if the source
     * changed meanwhile the server's checksum check fails the upload. */
    const struct storage_range_source *reread;
};

/* Open `display` (for messages) is the remote as the user typed it. */
const char *storage_display(const struct storage *st);
unsigned storage_features(const struct storage *st);
unsigned storage_hashes(const struct storage *st);
const char *storage_driver_name(const struct storage *st);
/* How finely the storage keeps written mtimes, in ns (>= 1). */
int64_t storage_mtime_precision(const struct storage *st);
/* Identity of the server/account for deciding whether server-side copy
 * between two storages is possible (same driver + same endpoint + same
 * credentials). Owned by st. */
const char *storage_endpoint_id(const struct storage *st);

/* Streaming listing of every object under `prefix` (relative; "" = all),
 * recursive, in strictly increasing key order. */
int storage_list_open(struct storage *st, const char *prefix, struct storage_list **out,
                      struct err *e);
/* 1 and fills *ent (caller clears it), 0 at the end, or a negative error. */
int storage_list_next(struct storage_list *l, struct storage_entry *ent, struct err *e);
void storage_list_close(struct storage_list *l);

/* Metadata of one key; ERR_NOT_FOUND when absent. May be slower than the
 * listing but reports everything the driver keeps (S3: mtime metadata). */
int storage_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e);

/* Open for reading from byte `offset`, at most `length` bytes (-1 = to end).
 * If ent is not NULL it receives what the driver learns on open (size,
 * mtime from metadata, ...). */
int storage_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                      struct storage_reader **out, struct storage_entry *ent, struct err *e);
/* Read up to cap bytes; *got == 0 means end of data. */
int storage_read(struct storage_reader *r, void *buf, size_t cap, size_t *got, struct err *e);
void storage_read_close(struct storage_reader *r);

int storage_write_open(struct storage *st, const char *key, const struct storage_write_opts *opts,
                       struct storage_writer **out, struct err *e);
int storage_write(struct storage_writer *w, const void *data, size_t len, struct err *e);
/* Make the object visible under its key. The writer is freed either way. */
int storage_write_commit(struct storage_writer *w, struct err *e);
/* Drop everything written (S3: AbortMultipartUpload). Frees the writer. */
void storage_write_abort(struct storage_writer *w);

int storage_remove(struct storage *st, const char *key, struct err *e);
/* Whether storage_copy works within st: on the server (S3 CopyObject, with
 * STORAGE_FEATURE_SERVER_COPY) or as a hard link (local). ERR_USAGE from
 * storage_copy still means "copy the bytes instead" (a filesystem that
 * cannot link). */
bool storage_can_copy(const struct storage *st);
/* Copy src_key to dst_key within st (see storage_can_copy); ERR_NOT_FOUND
 * when src_key does not exist. */
int storage_copy(struct storage *st, const char *src_key, const struct storage_entry *src,
                 const char *dst_key, struct err *e);
/* Server-side copy from another storage on the same endpoint
 * (storage_endpoint_id equal). */
int storage_copy_from(struct storage *dst, const char *dst_key, struct storage *src,
                      const char *src_key, const struct storage_entry *src_ent, struct err *e);

/* Check that the root exists and is usable (bucket exists, directory
 * exists); create it if `create` and the driver can. */
int storage_check_root(struct storage *st, bool for_write, bool create, struct err *e);

/*
 * Listing errors. A listing that cannot read part of a tree (a directory
 * that cannot be opened, an entry that cannot be stat'ed) does not end: it
 * goes on with the rest and reports the part it skipped to this handler.
 * `key` is what was skipped; for a directory it ends with '/' and stands for
 * every key under it - those keys are unknown, not absent, so a caller that
 * deletes what a source does not list must not delete anything then. `e`
 * says why (ERR_PERM, ERR_IO) and names the full path. The handler returns
 * 0 to go on or a negative ERR_* code to stop the listing with it; it runs
 * inside storage_list_next on the listing's thread. Without a handler the
 * skip is logged as a warning. Either way it is counted.
 */
typedef int (*storage_list_error_fn)(void *ctx, const char *key, const struct err *e);
/* Install (fn != NULL) or remove the handler; not synchronised with running
 * listings of st. */
void storage_set_list_error_handler(struct storage *st, storage_list_error_fn fn, void *ctx);
/* Parts skipped by all listings of st so far (thread-safe). */
size_t storage_list_error_count(const struct storage *st);

/* Create key as a symbolic link to `target` (restore). Drivers that cannot
 * hold links say so with ERR_USAGE. A target that is absolute or climbs out
 * of the storage's root (more ".." than the link's depth) is refused with
 * ERR_REFUSED: a restored tree never points outside itself. */
int storage_symlink(struct storage *st, const char *key, const char *target, int64_t mtime_ns,
                    struct err *e);
/* Whether a link at key pointing to target stays inside the root. */
bool storage_link_inside(const char *key, const char *target);

/* Small whole objects (locks, markers): write data under key atomically;
 * read key whole into a malloc'ed buffer (NUL-terminated, *len without the
 * NUL), refusing objects over `max` bytes with ERR_PROTO. */
int storage_put_bytes(struct storage *st, const char *key, const void *data, size_t len,
                      struct err *e);
int storage_get_bytes(struct storage *st, const char *key, size_t max, char **out, size_t *len,
                      struct err *e);

/* Make every write committed so far durable (on disk, surviving a power
 * loss). A commit makes an object visible; on drivers that batch
 * durability (local: one syncfs per filesystem instead of an fsync per
 * file) it is durable only after this returns 0. Drivers whose commit is
 * durable (S3, SFTP, SMB: the server's business) return 0 at once. Call it
 * before reporting a run done and before writing anything that refers to
 * the objects written (a manifest). */
int storage_sync(struct storage *st, struct err *e);

/* Free st (not its open handles: close those first). */
void storage_close(struct storage *st);

/* Compare keys in the order every listing uses (bytes, memcmp). */
int storage_key_cmp(const char *a, const char *b);

#endif
