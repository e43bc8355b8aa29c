/*
 * copy_file.h - one file from a storage to another, hashed as it passes:
 * the piece every engine that moves file bytes shares (copy/sync, mirror
 * backup, mirror restore).
 *
 *     reader -> [SHA-256] -> counters -> [rate limit] -> writer
 *
 * The writer is committed only when the bytes read are exactly the expected
 * size; every other path aborts it, so a failed or interrupted copy never
 * leaves a partial object under its key.
 */
#ifndef ARCA_ENGINE_COPY_FILE_H
#define ARCA_ENGINE_COPY_FILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "storage/storage.h"

struct filter;
struct ratelimit;

struct copy_file_opts {
    unsigned char *buf; /* block_size bytes, the caller's */
    size_t block_size;
    int read_streams;            /* a file of at least read_stream_cutoff bytes from a
                                    source with STORAGE_FEATURE_PARALLEL_READ is read as
                                    this many ranges at once; <= 1: off */
    uint64_t read_stream_cutoff; /* 0: never */
    struct ratelimit *ratelimit; /* may be NULL */
    _Atomic uint64_t *count[2];  /* bytes read are added to these; NULL: none */
    atomic_bool *stop;           /* set: give up with ERR_CANCELLED; may be NULL */
    bool hash;                   /* compute the SHA-256 of the bytes */
    const char *expect_sha256;   /* with hash: a different digest aborts the write
                                    (ERR_CORRUPT) instead of committing it */
};

/*
 * Read rd to its end through chain, checking that exactly `size` bytes come
 * ("'key' changed size while being read", ERR_IO, otherwise), then finish
 * the chain.
 */
int copy_pump(struct storage_reader *rd, const char *key, uint64_t size, struct filter *chain,
              const struct copy_file_opts *o, struct err *e);

/*
 * Copy s (a file listed by src, s->size bytes) to dst_key at dst, keeping
 * its mtime and mode: the listing's mtime when src lists true mtimes, else
 * the one the reader learned (S3 metadata), else the listing's. When
 * o->hash, sha256 receives the digest of what was written. *kept, when not
 * NULL, receives the mtime and mode the copy gave the object (the caller
 * clears it).
 */
int copy_file(struct storage *src, const struct storage_entry *s, struct storage *dst,
              const char *dst_key, const struct copy_file_opts *o, char sha256[65],
              struct storage_entry *kept, struct err *e);

#endif
