/*
 * progress.h - a thread that emits a progress event every interval.
 *
 * The owner keeps its counters (atomics) and gives a fill function that
 * reads them into a struct event_progress; the ticker adds the rate over
 * the last interval and the ETA, emits, and at stop emits the final `done`
 * event (rate over the whole run).
 */
#ifndef ARCA_IO_PROGRESS_H
#define ARCA_IO_PROGRESS_H

#include "core/event.h"

/* Fill p (zeroed by the caller) from the owner's counters: phase,
 * bytes/files done and total (-1 unknown), current (a string that stays
 * valid until the next call), elapsed. */
typedef void (*progress_fill_fn)(void *ctx, struct event_progress *p);

struct progress_ticker;

/* NULL (no thread, nothing emitted) when interval <= 0 or em has no sink;
 * also NULL when the thread cannot start (progress is not worth failing
 * a run for). */
struct progress_ticker *progress_ticker_start(double interval, const struct event_emitter *em,
                                              progress_fill_fn fill, void *ctx);
/* Stop the thread and emit the final event with phase `done`. NULL is
 * fine (nothing emitted). */
void progress_ticker_stop(struct progress_ticker *t);

#endif
