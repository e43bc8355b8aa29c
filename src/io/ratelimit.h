/*
 * ratelimit.h - a token bucket shared by every transfer of a command.
 *
 * ratelimit_take(rl, n) returns once n bytes fit under the rate, sleeping
 * in short steps (so cancellation is noticed within 100 ms). Buckets nest:
 * a child (a job) also takes from its parent (a tenant, the node), so a
 * transfer never exceeds any limit that applies to it. The burst is one
 * second of rate. A rate of 0 means unlimited. Thread-safe.
 */
#ifndef ARCA_IO_RATELIMIT_H
#define ARCA_IO_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct ratelimit;

/* NULL on allocation failure. parent may be NULL; it must outlive rl. */
struct ratelimit *ratelimit_new(uint64_t bytes_per_sec, struct ratelimit *parent);
void ratelimit_free(struct ratelimit *rl);
/* Change the rate; running transfers follow within one step. */
void ratelimit_set_rate(struct ratelimit *rl, uint64_t bytes_per_sec);
uint64_t ratelimit_rate(const struct ratelimit *rl);
/* Block until n bytes are allowed; ERR_CANCELLED once cancel_request() was called. */
int ratelimit_take(struct ratelimit *rl, size_t n, struct err *e);

/* For tests: replace the clock (ns, monotonic) and the sleeper. */
void ratelimit_set_clock(struct ratelimit *rl, uint64_t (*now_ns)(void *),
                         void (*sleep_ns)(void *, uint64_t), void *ctx);

#endif
