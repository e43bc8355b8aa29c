/*
 * manifest.h - run manifests as JSON Lines (docs/FORMAT.md, Manifests).
 *
 * The writer emits a header line, entries in strictly increasing byte
 * order of their paths, and a trailer, each as one JSON object and '\n', to
 * a sink (a destination writer, possibly through zstd). The reader pulls
 * bytes (already decompressed), one line at a time: memory is one line
 * (at most MANIFEST_LINE_MAX) whatever the number of entries.
 *
 * Errors of the reader are ERR_CORRUPT (the stored manifest fails its
 * format check) with one-line messages that name the manifest and the line:
 * "manifest 'runs/X.manifest.jsonl' line 12: 'size' is not a non-negative
 * integer". A format_version newer than MANIFEST_FORMAT_VERSION is
 * ERR_REFUSED with FORMAT.md's message. ERR_NOMEM when out of memory, and
 * whatever the read function returns.
 *
 * Writers and readers are not thread-safe; use one from one thread at a
 * time. Distinct objects are independent.
 */
#ifndef ARCA_BACKUP_MANIFEST_H
#define ARCA_BACKUP_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/runid.h"
#include "core/buf.h"
#include "core/error.h"

#define MANIFEST_FORMAT_VERSION 1
#define MANIFEST_LINE_MAX ((size_t)1 << 20)

enum manifest_mode { MANIFEST_MIRROR, MANIFEST_ARCHIVE };
enum manifest_type { MANIFEST_FILE, MANIFEST_SYMLINK };

/* For writing (strings borrowed). format_version 0 means the current one;
 * source, tool NULL are written as "" and "arca"; job NULL is absent;
 * compression and archive are required in archive mode. Strings that are
 * not valid UTF-8 are written with U+FFFD for the bad bytes. */
struct manifest_header {
    int format_version;
    char run[RUNID_LEN + 1];
    enum manifest_mode mode;
    const char *source;
    const char *job; /* NULL: absent */
    const char *tool;
    int64_t started_ms;
    const char *compression; /* archive */
    const char *archive;     /* archive */
};

/* As read (strings owned; job, compression, archive NULL when absent). */
struct manifest_header_owned {
    int format_version;
    char run[RUNID_LEN + 1];
    enum manifest_mode mode;
    char *source;
    char *job;
    char *tool;
    int64_t started_ms;
    char *compression;
    char *archive;
};
void manifest_header_owned_clear(struct manifest_header_owned *h);

/* One path. Written from borrowed pointers; as read, path, target,
 * err_class and err_msg are owned, NUL-terminated (with their lengths in
 * path_len / target_len) and freed by manifest_entry_clear, which also
 * resets the entry to "nothing" (mtime and offset absent).
 *
 * Writing: a path of 0 bytes or with a NUL byte, a size above INT64_MAX, a
 * file with neither sha256 nor err_code, or a sha256 that is not 64
 * lowercase hex digits is ERR_INTERNAL. A symlink's size is written as 0
 * and its target always (as "" when NULL), unless err_code is set and
 * target is NULL. An entry with err_code gets "error": {class, message}
 * (class err_class, or err_code_name(err_code) when NULL) and no sha256.
 * mode is masked to its permission bits (& 07777).
 *
 * Reading: err_code is the ERR_* whose err_code_name is the class, ERR_IO
 * for a class this arca does not know. */
struct manifest_entry {
    char *path;
    size_t path_len; /* raw bytes, may be non-UTF-8 (then path_b64) */
    enum manifest_type type;
    uint64_t size;
    int64_t mtime_ns; /* INT64_MIN (STORAGE_MTIME_UNKNOWN): absent */
    /* mirror: the mtime the source's listing gave when it is not mtime_ns
     * (S3: LastModified), to tell an unchanged file next run */
    bool has_listed_mtime;
    int64_t listed_mtime_ns;
    uint32_t mode; /* 0: absent */
    char *target;  /* symlinks (target_b64 when not UTF-8) */
    size_t target_len;
    char sha256[65];     /* "": absent */
    bool stored_current; /* mirror: "stored": "current" */
    int64_t offset;      /* archive: data offset in the tar; -1 absent */
    int err_code;        /* 0: no error */
    char *err_class;
    char *err_msg;
};
void manifest_entry_clear(struct manifest_entry *ent);

/* For writing: status "succeeded" or "partial" (else ERR_INTERNAL);
 * archive_size -1 and archive_sha256 "" are absent. */
struct manifest_trailer {
    int64_t finished_ms;
    const char *status; /* "succeeded" | "partial" */
    uint64_t files, bytes, errors;
    int64_t archive_size; /* -1: absent */
    char archive_sha256[65];
};
/* As read; in archive mode archive_size and archive_sha256 are required. */
struct manifest_trailer_owned {
    int64_t finished_ms;
    char status[16];
    uint64_t files, bytes, errors;
    int64_t archive_size; /* -1: absent */
    char archive_sha256[65];
};
void manifest_trailer_owned_clear(struct manifest_trailer_owned *t);

/* Receives each line ('\n' included) in one call; 0, or a negative ERR_*
 * with e filled, which the write function returns as is. */
typedef int (*manifest_sink_fn)(void *ctx, const void *data, size_t len, struct err *e);
struct manifest_writer;
/* NULL when out of memory. Free with manifest_writer_free. */
struct manifest_writer *manifest_writer_new(manifest_sink_fn sink, void *ctx);
/* Exactly once, first. ERR_INTERNAL for a second header, an invalid run id,
 * a format version other than MANIFEST_FORMAT_VERSION, an archive header
 * without compression or archive. */
int manifest_write_header(struct manifest_writer *w, const struct manifest_header *h,
                          struct err *e);
/* ERR_INTERNAL for an entry before the header or after the trailer, one not
 * strictly after the previous one in memcmp order of the path bytes (a
 * shorter prefix sorts first), or one the reader would refuse (above). */
int manifest_write_entry(struct manifest_writer *w, const struct manifest_entry *ent,
                         struct err *e);
/* Exactly once, last. */
int manifest_write_trailer(struct manifest_writer *w, const struct manifest_trailer *t,
                           struct err *e);
void manifest_writer_free(struct manifest_writer *w);

/* Fills buf with up to cap bytes and sets *got; *got 0 means the end. 0, or
 * a negative ERR_* with e filled, which the reader returns as is. */
typedef int (*manifest_read_fn)(void *ctx, void *buf, size_t cap, size_t *got, struct err *e);
struct manifest_reader;
/* `name` names the manifest in messages ("archives/<run>.manifest.jsonl");
 * copied. NULL when out of memory. Free with manifest_reader_free. */
struct manifest_reader *manifest_reader_new(manifest_read_fn fn, void *ctx, const char *name);
/* Line 1 into *h (owned: manifest_header_owned_clear; zeroed on error).
 * Required: type "header", format_version, run (a valid run id), mode,
 * source, tool, started; compression and archive in archive mode; job,
 * compression and archive must be strings when present. Unknown fields are
 * ignored. An empty manifest is ERR_CORRUPT "manifest '...' is empty". */
int manifest_read_header(struct manifest_reader *r, struct manifest_header_owned *h, struct err *e);
/* The next line: 1 with *ent filled (clear it), 2 when it is the trailer
 * (*t filled; nothing may follow it, and the function must not be called
 * again), or a negative error (*ent and *t hold nothing to free). The end
 * of the data before the trailer is ERR_CORRUPT "manifest '...' is truncated
 * (no trailer after line N)"; a path not strictly after the previous one is
 * ERR_CORRUPT naming both paths (non-printable bytes as \xHH). */
int manifest_read_next(struct manifest_reader *r, struct manifest_entry *ent,
                       struct manifest_trailer_owned *t, struct err *e);
void manifest_reader_free(struct manifest_reader *r);

/* Append to out one `sha256sum` line, "<sha256>  <path>\n", escaped the way
 * GNU coreutils 9 writes it when the path holds '\\', '\n' or '\r': a
 * leading '\\', and those bytes as "\\\\", "\\n", "\\r". ERR_NOMEM (out
 * unchanged) when out cannot grow. */
int sha256sums_line(struct buf *out, const char *sha256, const char *path, size_t path_len,
                    struct err *e);

#endif
