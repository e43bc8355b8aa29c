/*
 * prune.h - forget runs by a retention policy (docs/FORMAT.md, Retention).
 */
#ifndef ARCA_BACKUP_PRUNE_H
#define ARCA_BACKUP_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "backup/policy.h"
#include "core/error.h"
#include "core/event.h"

struct storage;

struct prune_opts {
    struct policy policy;
    bool dry_run;
    const struct event_emitter *events;
};

struct prune_result {
    enum event_status status;
    uint64_t kept, forgotten, objects_deleted;
};

/* Apply the policy to DST's runs; each run is reported as a `run` event
 * with "action" keep|forget and its reasons. Unless dry_run, under the
 * destination's lock, a forgotten run's manifest is deleted first, then its
 * archive and SHA256SUMS; objects of runs that never wrote a manifest are
 * deleted too. */
int prune_run(struct storage *dst, const struct prune_opts *o, struct prune_result *res,
              struct err *e);

#endif
