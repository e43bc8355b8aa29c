/*
 * cancel.h - the process-wide "stop now" flag.
 *
 * Set from a signal handler (async-signal-safe: a lock-free atomic store)
 * or by a caller; every long loop (transfers, retries, rate-limit sleeps,
 * listings) checks it and returns ERR_CANCELLED soon after.
 */
#ifndef ARCA_CORE_CANCEL_H
#define ARCA_CORE_CANCEL_H

#include <stdbool.h>

void cancel_request(void);
bool cancel_requested(void);
/* Cleanup that must run even after a cancel (releasing a lock, removing
 * what a cancelled run left): between hold and release, cancel_requested()
 * is false in the calling thread only. Nests. */
void cancel_hold(void);
void cancel_release(void);
/* For tests that reuse a process. */
void cancel_reset(void);

#endif
