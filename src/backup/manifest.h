/*
 * manifest.h - run manifests as JSON Lines (docs/FORMAT.md, Manifests).
 *
 * The writer emits a header line, entries in strictly increasing byte
 * order of their paths, and a trailer, each as one JSON object and '\n', to
 * a sink (a destination writer, possibly through zstd). The reader pulls
 * bytes (already decompressed), one line at a time: memory is one line
 * (at most MANIFEST_LINE_MAX) whatever the number of entries.
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

/* For writing (strings borrowed). */
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

/* As read (strings owned; NULL when absent). */
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
 * err_class and err_msg are owned (manifest_entry_clear frees them). */
struct manifest_entry {
    char *path;
    size_t path_len; /* raw bytes, may be non-UTF-8 (then path_b64) */
    enum manifest_type type;
    uint64_t size;
    int64_t mtime_ns; /* INT64_MIN: absent */
    uint32_t mode;    /* 0: absent */
    char *target;     /* symlinks */
    size_t target_len;
    char sha256[65];     /* "": absent */
    bool stored_current; /* mirror: "stored": "current" */
    int64_t offset;      /* archive: data offset in the tar; -1 absent */
    int err_code;        /* 0: no error */
    char *err_class;
    char *err_msg;
};
void manifest_entry_clear(struct manifest_entry *ent);

struct manifest_trailer {
    int64_t finished_ms;
    const char *status; /* "succeeded" | "partial" */
    uint64_t files, bytes, errors;
    int64_t archive_size; /* -1: absent */
    char archive_sha256[65];
};
struct manifest_trailer_owned {
    int64_t finished_ms;
    char status[16];
    uint64_t files, bytes, errors;
    int64_t archive_size;
    char archive_sha256[65];
};
void manifest_trailer_owned_clear(struct manifest_trailer_owned *t);

typedef int (*manifest_sink_fn)(void *ctx, const void *data, size_t len, struct err *e);
struct manifest_writer;
struct manifest_writer *manifest_writer_new(manifest_sink_fn sink, void *ctx);
int manifest_write_header(struct manifest_writer *w, const struct manifest_header *h,
                          struct err *e);
/* ERR_INTERNAL for an entry not strictly after the previous one. */
int manifest_write_entry(struct manifest_writer *w, const struct manifest_entry *ent,
                         struct err *e);
int manifest_write_trailer(struct manifest_writer *w, const struct manifest_trailer *t,
                           struct err *e);
void manifest_writer_free(struct manifest_writer *w);

typedef int (*manifest_read_fn)(void *ctx, void *buf, size_t cap, size_t *got, struct err *e);
struct manifest_reader;
/* `name` names the manifest in messages ("archives/<run>.manifest.jsonl"). */
struct manifest_reader *manifest_reader_new(manifest_read_fn fn, void *ctx, const char *name);
/* ERR_CORRUPT for anything malformed (naming the line); a format_version
 * newer than MANIFEST_FORMAT_VERSION is ERR_REFUSED. */
int manifest_read_header(struct manifest_reader *r, struct manifest_header_owned *h, struct err *e);
/* 1: *ent filled (clear it), 2: the trailer (*t filled), negative: error
 * (EOF before the trailer is ERR_CORRUPT "truncated"). */
int manifest_read_next(struct manifest_reader *r, struct manifest_entry *ent,
                       struct manifest_trailer_owned *t, struct err *e);
void manifest_reader_free(struct manifest_reader *r);

/* Append one `sha256sum` line for path (GNU escaping of '\\' and '\n'). */
int sha256sums_line(struct buf *out, const char *sha256, const char *path, size_t path_len,
                    struct err *e);

#endif
