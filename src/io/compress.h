/*
 * compress.h - streaming zstd and gzip, as push filters (io/filter.h) and
 * as a pull reader (for a manifest read line by line).
 *
 * Memory is the codecs' own state plus one output buffer, whatever the size
 * of the data. zstd frames carry a content checksum (`zstd -t` checks it);
 * gzip output is one member (`gzip -t` checks its CRC). Decompressors
 * accept what the command-line tools write: concatenated zstd frames,
 * multi-member gzip.
 */
#ifndef ARCA_IO_COMPRESS_H
#define ARCA_IO_COMPRESS_H

#include <stddef.h>

#include "core/error.h"
#include "io/filter.h"

enum compress_kind { COMPRESS_NONE, COMPRESS_ZSTD, COMPRESS_GZIP };

const char *compress_name(enum compress_kind k);   /* "none", "zstd", "gzip" */
const char *compress_suffix(enum compress_kind k); /* "", ".zst", ".gz" */
/* "zstd" | "gzip" | "none"; ERR_USAGE otherwise. */
int compress_parse(const char *s, enum compress_kind *out, struct err *e);

/* level 0: the codec's default (zstd 3, gzip 6); threads: zstd workers
 * (0: compress in the caller's thread). NULL on allocation failure. */
struct filter *filter_compress_new(enum compress_kind k, int level, int threads);
/* Corrupt or truncated input: ERR_CORRUPT naming the codec. */
struct filter *filter_decompress_new(enum compress_kind k);

typedef int (*compress_read_fn)(void *ctx, void *buf, size_t cap, size_t *got, struct err *e);
struct decompress_reader;
struct decompress_reader *decompress_reader_new(enum compress_kind k, compress_read_fn fn,
                                                void *ctx);
/* Same contract as fn: *got == 0 at the end; truncated input is
 * ERR_CORRUPT at the end. */
int decompress_read(struct decompress_reader *r, void *buf, size_t cap, size_t *got, struct err *e);
void decompress_reader_free(struct decompress_reader *r);

#endif
