/*
 * multiread.h - one object read in order, fetched as several byte ranges at
 * once.
 *
 * Over one SSH connection arca's throughput is bounded by one core (libssh2
 * 1.10 decrypts 16 bytes per cipher call); reading a large file as chunks
 * on `streams` connections at a time spreads that over every core, as
 * rclone's multi-thread downloads do. The caller still sees one stream of
 * bytes in order, so hashing, counting, rate limits and every writer work
 * unchanged. Memory: `streams` buffers of `chunk` bytes.
 */
#ifndef ARCA_STORAGE_MULTIREAD_H
#define ARCA_STORAGE_MULTIREAD_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

#define MULTIREAD_MAX_STREAMS 16

/*
 * Open key (listed at `size` bytes, > 0) for reading with `streams` (2 to
 * MULTIREAD_MAX_STREAMS) ranged readers of `chunk` bytes each in flight;
 * needs STORAGE_FEATURE_RANGE_READ. `ent` as for storage_read_open (from
 * the first range's open). The reader gives exactly the object's bytes: a
 * chunk that ends early fails the read with ERR_IO ("changed size"), and
 * the last range asks for one byte more than listed so that growth shows as
 * more bytes than `size`, as with a single stream. Read it and close it
 * with storage_read / storage_read_close.
 */
int storage_multiread_open(struct storage *st, const char *key, uint64_t size, unsigned streams,
                           size_t chunk, struct storage_reader **out, struct storage_entry *ent,
                           struct err *e);

#endif
