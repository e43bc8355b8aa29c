/*
 * first_error.h - the first whole-run error among several threads, and the
 * stop flag it raises for all of them.
 */
#ifndef ARCA_CORE_FIRST_ERROR_H
#define ARCA_CORE_FIRST_ERROR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/error.h"

struct first_error {
    pthread_mutex_t lock;
    atomic_bool stop; /* set by first_error_set; read by anyone */
    int code;         /* under lock */
    struct err e;
};

void first_error_init(struct first_error *f);
void first_error_destroy(struct first_error *f);
/* Keep e unless an error is kept already (a code of 0 counts as
 * ERR_INTERNAL); raise stop either way. */
void first_error_set(struct first_error *f, const struct err *e);
/* 0 while nothing stopped the run; ERR_CANCELLED when cancellation was
 * requested (core/cancel.h); else the kept error, copied into e. */
int first_error_check(struct first_error *f, struct err *e);

#endif
