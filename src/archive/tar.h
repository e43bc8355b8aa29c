/*
 * tar.h - streaming POSIX pax tar writer and reader (docs/FORMAT.md,
 * "Archive mode").
 *
 * The writer turns a sequence of members into one pax tar stream that goes,
 * byte for byte and in order, to a sink (the compressor). It keeps no data:
 * its memory is the header buffer of the current member, whatever the
 * file sizes. Headers are plain ustar; a pax extended header ('x') comes
 * first only when a field does not fit ustar exactly (a long or non-ASCII
 * path or link target, a size of 8 GiB or more, an mtime with a sub-second
 * part or outside 0 .. 8^11-1 seconds). Owner is 0:0 with empty names.
 * GNU tar, bsdtar and any POSIX pax reader extract the result.
 *
 * The reader is push-based: the caller feeds it whatever the decompressor
 * produced and it calls back per member. It reads ustar, pax ('x', 'g'),
 * GNU tar's long names ('L', 'K') and base-256 numbers, and GNU tar's
 * --format=gnu, posix and ustar output. It checks every header (checksum,
 * numeric fields, pax record syntax, NUL bytes in names) and bounds what it
 * allocates (an extended header over TAR_EXT_MAX is refused). It gives the
 * names exactly as stored: path safety is the caller's job (restore).
 *
 * Reader errors are ERR_IO with a message that names the stream offset of
 * the bad header, e.g. "tar header checksum mismatch at offset 1536".
 *
 * Neither object is thread-safe; distinct objects are independent.
 */
#ifndef ARCA_ARCHIVE_TAR_H
#define ARCA_ARCHIVE_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define TAR_BLOCK_SIZE 512
/* Largest extended header ('x', 'g', 'L', 'K') the reader accepts. */
#define TAR_EXT_MAX (1024 * 1024)

enum tar_type {
    TAR_FILE,
    TAR_SYMLINK,
    TAR_DIR,
    TAR_OTHER, /* reader only: hard link, device, fifo, sparse file, unknown */
};

struct tar_entry {
    const char *path; /* bytes, not necessarily UTF-8, no NUL inside */
    size_t path_len;
    enum tar_type type;
    uint64_t size;      /* files: data bytes (reader: also TAR_OTHER's) */
    int64_t mtime_ns;   /* ns since the epoch; may be negative */
    uint32_t mode;      /* permission bits 07777 */
    const char *target; /* symlinks (reader: also a hard link's target) */
    size_t target_len;
    /* Reader only (the writer ignores them): */
    char typeflag;        /* the header's raw typeflag, e.g. '0', '1', '6'; 'S' sparse */
    uint64_t data_offset; /* stream offset of the member's first data byte (old GNU
                           * sparse 'S': of its first extension block) */
};

/* Receives the stream's bytes in order. Returns 0, or a negative ERR_* with
 * e filled; the writer then fails every later call. */
typedef int (*tar_sink_fn)(void *ctx, const void *data, size_t len, struct err *e);

/* ---- writer ---------------------------------------------------------- */

struct tar_writer;

/* A writer sending its bytes to sink(ctx, ...). NULL when out of memory.
 * Free with tar_writer_free. */
struct tar_writer *tar_writer_new(tar_sink_fn sink, void *ctx);

/* Start a member: emits its header(s). ent->path (path_len bytes, not
 * NUL-terminated, no NUL inside, not empty) is stored exactly as given: pass
 * directories with a trailing '/' as tar tools do. ent->mode is masked to
 * 07777; size counts for TAR_FILE only, target for TAR_SYMLINK only
 * (not empty, no NUL). *data_offset (may be NULL) is the stream offset of
 * the member's first data byte. ERR_USAGE for an entry tar cannot hold
 * (empty path, NUL byte, TAR_OTHER), ERR_INTERNAL when the previous member
 * was not ended, or the sink's error. */
int tar_begin(struct tar_writer *t, const struct tar_entry *ent, uint64_t *data_offset,
              struct err *e);

/* Member data, in order, any chunk size. More than the size given to
 * tar_begin is refused with ERR_IO and nothing of that call is emitted. */
int tar_data(struct tar_writer *t, const void *data, size_t len, struct err *e);

/* End the member: pads with zero bytes up to the size in its header
 * (*padded = how many; 0 normally; padded may be NULL), then to the block
 * boundary. */
int tar_end(struct tar_writer *t, uint64_t *padded, struct err *e);

/* End of archive: two zero blocks. No member may be open. */
int tar_finish(struct tar_writer *t, struct err *e);

/* Bytes emitted so far (accepted by the sink). */
uint64_t tar_offset(const struct tar_writer *t);

/* NULL is fine. Emits nothing. */
void tar_writer_free(struct tar_writer *t);

/* ---- reader ---------------------------------------------------------- */

/* Each callback returns 0, or a negative ERR_* with e filled, which stops
 * the reader and is returned by tar_reader_feed. Any may be NULL.
 * entry: a member begins; ent and the bytes behind path/target (both also
 * NUL-terminated) stay valid until entry_end returns. data: the member's
 * data in order, for TAR_FILE only (the data of other types is skipped).
 * entry_end: the member's data is complete (called for every member). */
struct tar_reader_cb {
    int (*entry)(void *ctx, const struct tar_entry *ent, struct err *e);
    int (*data)(void *ctx, const void *data, size_t len, struct err *e);
    int (*entry_end)(void *ctx, struct err *e);
};

struct tar_reader;

/* A reader calling cb (copied) with ctx. NULL when out of memory. Free
 * with tar_reader_free. */
struct tar_reader *tar_reader_new(const struct tar_reader_cb *cb, void *ctx);

/* Push the next len bytes of the stream (any split). Returns 0, ERR_IO for
 * a damaged or unsupported archive (the message names the offset),
 * ERR_NOMEM, or a callback's error; after an error every later call fails.
 * Bytes after the end-of-archive blocks are ignored. */
int tar_reader_feed(struct tar_reader *r, const void *data, size_t len, struct err *e);

/* The stream has ended: ERR_IO "truncated tar archive: ..." unless the end
 * of the archive was seen (two zero blocks, or one then the end of the
 * stream, as GNU tar accepts). */
int tar_reader_finish(struct tar_reader *r, struct err *e);

/* NULL is fine. */
void tar_reader_free(struct tar_reader *r);

#endif
