/*
 * compress.h - streaming zstd and gzip, as push filters (io/filter.h) and
 * as a pull reader (for a manifest read line by line).
 *
 * Memory is the codecs' own state plus one 128 KiB buffer, whatever the
 * size of the data: a compressor passes its output on as it is produced, a
 * decompressor in pieces of at most 128 KiB, however well the data
 * compressed. zstd frames carry a content checksum (`zstd -t` checks it);
 * gzip output is one member (`gzip -t` checks its CRC).
 *
 * Decompressors accept what the command-line tools write: concatenated zstd
 * frames (and skippable frames), multi-member gzip and zero bytes after the
 * last gzip member. They refuse, with ERR_CORRUPT naming the codec, what
 * `zstd -t` / `gzip -t` refuse: damaged data ("corrupt zstd data: ..."),
 * a stream that ends inside a frame or member or is empty ("truncated gzip
 * data: ..."), and any other bytes after the last gzip member. zstd frames
 * whose window is over 128 MiB (`zstd --long=28` and more) are refused too,
 * so that memory stays bounded.
 *
 * A filter or reader belongs to one thread at a time; different ones may be
 * used by different threads at once.
 */
#ifndef ARCA_IO_COMPRESS_H
#define ARCA_IO_COMPRESS_H

#include <stddef.h>

#include "core/error.h"
#include "io/filter.h"

enum compress_kind { COMPRESS_NONE, COMPRESS_ZSTD, COMPRESS_GZIP };

/* threads: one zstd worker per online CPU */
#define COMPRESS_THREADS_AUTO (-1)

const char *compress_name(enum compress_kind k);   /* "none", "zstd", "gzip" */
const char *compress_suffix(enum compress_kind k); /* "", ".zst", ".gz" */
/* "zstd" | "gzip" | "none"; ERR_USAGE "unknown compression 'x'; use zstd or
 * gzip" otherwise. */
int compress_parse(const char *s, enum compress_kind *out, struct err *e);
/* 0, or ERR_USAGE when filter_compress_new would refuse the level: zstd
 * takes 0 (default 3), 1..22 and negative (faster) levels, gzip 0 (default
 * 6) and 1..9. */
int compress_level_check(enum compress_kind k, int level, struct err *e);

/*
 * A filter that compresses what is written to it and passes the compressed
 * bytes on with filter_pass (the chain owns it). level 0: the codec's
 * default (zstd 3, gzip 6). threads: zstd workers, 0 to compress in the
 * caller's thread, COMPRESS_THREADS_AUTO (any negative) for one per online
 * CPU. Workers cut the stream into jobs of 4 << windowLog bytes (8 MiB at
 * level 3) and buffer a few per worker: about 60 MiB with 2 workers at
 * level 3, against 7 MiB in one thread. gzip ignores threads. COMPRESS_NONE
 * passes bytes on unchanged.
 * NULL on allocation failure or a level compress_level_check refuses.
 */
struct filter *filter_compress_new(enum compress_kind k, int level, int threads);
/* A filter that decompresses; errors (see above) come from filter_write or,
 * for a truncated stream, filter_finish. NULL on allocation failure. */
struct filter *filter_decompress_new(enum compress_kind k);

/* Pull side. fn fills buf with up to cap bytes and sets *got; *got == 0 is
 * the end of the stream. Returns 0 or an error code. */
typedef int (*compress_read_fn)(void *ctx, void *buf, size_t cap, size_t *got, struct err *e);
struct decompress_reader;
/* fn and ctx must outlive the reader, which reads from fn in pieces of up to
 * 128 KiB. Free with decompress_reader_free. NULL on allocation failure. */
struct decompress_reader *decompress_reader_new(enum compress_kind k, compress_read_fn fn,
                                                void *ctx);
/* Same contract as fn (cap > 0): some decompressed bytes, or *got == 0 at the
 * end. Errors of fn are returned as they are; corrupt data is ERR_CORRUPT,
 * a truncated stream ERR_CORRUPT at the end. After an error every later call
 * returns it again. */
int decompress_read(struct decompress_reader *r, void *buf, size_t cap, size_t *got, struct err *e);
/* NULL is ignored. */
void decompress_reader_free(struct decompress_reader *r);

#endif
