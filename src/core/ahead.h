/*
 * ahead.h - read a stream ahead on its own thread.
 *
 * A producer function yields fixed-size items (1: one item, 0: the end, or
 * a negative ERR_* code); a thread calls it and hands the items over in
 * batches through a bounded queue, so the consumer overlaps its own work
 * with the producer's (a directory walk, a manifest being decompressed and
 * parsed). Memory: nbatches x batch items. Items move by value: the
 * consumer owns what ahead_next gives it; ahead_stop frees, with free_fn,
 * whatever was produced and not taken. The producer runs on the thread:
 * whatever it touches besides its own state must be safe to use from there.
 */
#ifndef ARCA_CORE_AHEAD_H
#define ARCA_CORE_AHEAD_H

#include <stddef.h>

#include "core/error.h"

typedef int (*ahead_next_fn)(void *src, void *item, struct err *e);
typedef void (*ahead_free_fn)(void *item);

struct ahead;

/* NULL when out of memory or the thread cannot start. */
struct ahead *ahead_start(ahead_next_fn next, ahead_free_fn free_fn, void *src, size_t item_size,
                          size_t batch, size_t nbatches);
/* Same contract as next: 1 and *item, 0 at the end, or the producer's error
 * (with e filled) once the items before it were taken. */
int ahead_next(struct ahead *a, void *item, struct err *e);
/* Stop the producer (at its next item), join the thread, free what is left.
 * NULL is fine. */
void ahead_stop(struct ahead *a);

#endif
