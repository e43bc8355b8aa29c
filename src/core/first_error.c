/*
 * first_error.c - see first_error.h.
 */
#include "core/first_error.h"

#include "core/cancel.h"

#include <string.h>

void first_error_init(struct first_error *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    atomic_init(&f->stop, false);
}

void first_error_destroy(struct first_error *f)
{
    pthread_mutex_destroy(&f->lock);
}

void first_error_set(struct first_error *f, const struct err *e)
{
    pthread_mutex_lock(&f->lock);
    if (!f->code) {
        f->code = e->code ? e->code : ERR_INTERNAL;
        f->e = *e;
        f->e.code = f->code;
    }
    atomic_store(&f->stop, true);
    pthread_mutex_unlock(&f->lock);
}

int first_error_check(struct first_error *f, struct err *e)
{
    if (cancel_requested())
        return err_set(e, ERR_CANCELLED, "interrupted");
    if (!atomic_load(&f->stop))
        return 0;
    pthread_mutex_lock(&f->lock);
    int r = f->code ? f->code : ERR_CANCELLED;
    if (f->code)
        *e = f->e;
    else
        err_set(e, ERR_CANCELLED, "interrupted");
    pthread_mutex_unlock(&f->lock);
    return r;
}
