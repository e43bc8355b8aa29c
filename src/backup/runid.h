/*
 * runid.h - run ids at a destination: "YYYYMMDDTHHMMSSZ-xxxxxxxx", the UTC
 * start second and 8 random lowercase hex digits (docs/FORMAT.md). Ids
 * sort by time as strings.
 */
#ifndef ARCA_BACKUP_RUNID_H
#define ARCA_BACKUP_RUNID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define RUNID_LEN 25

int runid_new(char out[RUNID_LEN + 1], int64_t unix_seconds, struct err *e);
/* Exactly the shape, with a real date and time. */
bool runid_valid(const char *s);
/* Unix seconds of the id, -1 when it is not valid. */
int64_t runid_time(const char *id);

#endif
