/*
 * lock.h - a writer's lock at a backup destination (docs/FORMAT.md, Locks).
 *
 * backup and prune hold locks/<run>.lock while they work; a thread renews
 * it every LOCK_RENEW_SECONDS. Another live lock refuses the start
 * (ERR_LOCKED); a lock not renewed for LOCK_STALE_SECONDS is reported and
 * taken over.
 */
#ifndef ARCA_BACKUP_LOCK_H
#define ARCA_BACKUP_LOCK_H

#include "core/error.h"

struct storage;

#define LOCK_RENEW_SECONDS 60
#define LOCK_STALE_SECONDS 600
#define LOCK_PREFIX "locks/"

struct backup_lock;

/* Take the destination's lock for run `run` doing `operation` ("backup",
 * "prune"). */
int backup_lock_acquire(struct storage *dst, const char *run, const char *operation,
                        struct backup_lock **out, struct err *e);
/* Stop renewing and remove the lock (best effort: a lock that cannot be
 * removed goes stale). NULL is fine. */
void backup_lock_release(struct backup_lock *l);

#endif
