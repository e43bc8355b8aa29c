/*
 * filter.h - stackable byte filters.
 *
 * A transfer pushes bytes through a chain: source reader -> hash ->
 * counter -> rate limit -> ... -> sink (a storage writer). Each filter sees
 * the bytes, may transform them (compression and encryption in later
 * modes) and passes its output to `next` with filter_pass(). The chain is
 * owned by whoever built it and freed with filter_chain_free().
 *
 *     struct filter *fs[] = {filter_hash_new(HASH_SHA256), filter_counter_new(&bytes),
 *                            filter_sink_new(write_fn, writer)};
 *     struct filter *chain = filter_chain(fs, 3);   // NULL if any allocation failed
 *     filter_write(chain, data, n, e); ... filter_finish(chain, e);
 *
 * Not thread-safe: one chain belongs to one transfer at a time (the rate
 * limiter and atomic counters it points at may be shared).
 */
#ifndef ARCA_IO_FILTER_H
#define ARCA_IO_FILTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct ratelimit;

struct filter;

struct filter_ops {
    const char *name;
    /* consume len bytes; pass output on with filter_pass() */
    int (*write)(struct filter *f, const void *data, size_t len, struct err *e);
    /* end of data: flush, then the chain continues with next's finish */
    int (*finish)(struct filter *f, struct err *e);
    void (*free)(struct filter *f);
};

struct filter {
    const struct filter_ops *ops;
    struct filter *next;
    void *state;
};

/* Link fs[0..n) in order and return the first, which then owns the chain.
 * If any entry is NULL (a failed allocation) every other entry is freed and
 * NULL is returned, so a chain is never silently shorter than asked. */
struct filter *filter_chain(struct filter *const *fs, size_t n);
int filter_write(struct filter *f, const void *data, size_t len, struct err *e);
int filter_pass(struct filter *f, const void *data, size_t len, struct err *e);
int filter_finish(struct filter *f, struct err *e);
void filter_chain_free(struct filter *head);

enum hash_kind { HASH_SHA256 = 0, HASH_MD5 = 1 };

/* Observes bytes and hashes them. */
struct filter *filter_hash_new(enum hash_kind kind);
/* After filter_finish: lowercase hex digest into out (65 bytes for SHA-256,
 * 33 for MD5), and the raw digest length. */
void filter_hash_hex(const struct filter *f, char *out, size_t cap);
size_t filter_hash_raw(const struct filter *f, unsigned char *out, size_t cap);

/* Adds the byte count to *counter (atomic: may be shared by threads). */
struct filter *filter_counter_new(_Atomic uint64_t *counter);

/* Blocks as needed to keep the rate of rl (shared by all transfers). */
struct filter *filter_ratelimit_new(struct ratelimit *rl);

/* Passes the bytes on from a thread of its own through a queue of `depth`
 * copies of up to `block` bytes, so the stages before and after it run at
 * the same time. An error downstream is returned by a later write or by
 * finish; finish drains the queue and joins the thread. */
struct filter *filter_thread_new(size_t block, int depth);

/* The end of a chain: calls fn(ctx, data, len, e) for every block. */
typedef int (*filter_sink_fn)(void *ctx, const void *data, size_t len, struct err *e);
struct filter *filter_sink_new(filter_sink_fn fn, void *ctx);

/* One-shot helpers for whole buffers. */
void hash_sha256_hex(const void *data, size_t len, char out[65]);
void hash_md5_raw(const void *data, size_t len, unsigned char out[16]);
void hash_sha256_raw(const void *data, size_t len, unsigned char out[32]);
/* Base64 (standard alphabet, padded) of len bytes into out (cap >= 4*ceil(len/3)+1). */
void base64_encode(const unsigned char *in, size_t len, char *out, size_t cap);
void hex_encode(const unsigned char *in, size_t len, char *out);

#endif
