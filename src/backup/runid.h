/*
 * runid.h - run ids at a destination: "YYYYMMDDTHHMMSSZ-xxxxxxxx", the UTC
 * start second and 8 random lowercase hex digits (docs/FORMAT.md, Run ids).
 * Ids sort by time as plain strings (fixed width, most significant first).
 */
#ifndef ARCA_BACKUP_RUNID_H
#define ARCA_BACKUP_RUNID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define RUNID_LEN 25 /* "20261122T091500Z-3fa94c1e" */

/* A new id for the UTC second unix_seconds into out (NUL-terminated). The
 * hex part comes from getrandom(); within the process, ids of the same
 * second are never repeated (a drawn value already given out for that
 * second is drawn again), so retries in one second get distinct ids.
 * ERR_INTERNAL when the second is outside 1970..9999 or the kernel gives no
 * random bytes, ERR_NOMEM when the record of the second's ids cannot grow.
 * Thread-safe. */
int runid_new(char out[RUNID_LEN + 1], int64_t unix_seconds, struct err *e);
/* Exactly the shape (8+1+6 digits, 'T', 'Z', '-', 8 lowercase hex digits,
 * nothing after), with a real UTC date and time (no month 13, Feb 30,
 * hour 24, second 60). NULL is not valid. */
bool runid_valid(const char *s);
/* Unix seconds of the id, -1 when it is not valid. */
int64_t runid_time(const char *id);

#endif
