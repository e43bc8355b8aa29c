/*
 * hash_async.h - hash a stream on a thread of its own.
 *
 * A transfer that must verify what it reads (a download checked against its
 * MD5 ETag) would otherwise receive, hash and write on one thread, and MD5
 * alone runs at about 0.7 GB/s. async_hash_update() copies the bytes into
 * one of a few blocks and returns; a worker thread hashes full blocks in
 * order. Memory: nblocks x block bytes. The thread starts only when the
 * stream outgrows one block; up to then (a small object: no thread, no
 * buffers) bytes are hashed inline. Not thread-safe itself: one producer.
 */
#ifndef ARCA_IO_HASH_ASYNC_H
#define ARCA_IO_HASH_ASYNC_H

#include <stddef.h>

#include "io/filter.h"

struct async_hash;

/* NULL when out of memory or no thread can be started. */
struct async_hash *async_hash_new(enum hash_kind kind, size_t block, int nblocks);
/* Queue len bytes; blocks only while every block waits to be hashed.
 * Returns 0 or ERR_NOMEM/ERR_INTERNAL. */
int async_hash_update(struct async_hash *h, const void *data, size_t len);
/* Hash what is left, stop the thread, write the digest (cap >= 32 for
 * SHA-256, 16 for MD5) and return its length, or 0 on failure. */
size_t async_hash_final(struct async_hash *h, unsigned char *out, size_t cap);
/* Stop and free (final not needed). */
void async_hash_free(struct async_hash *h);

#endif
