#include "core/cancel.h"

#include <stdatomic.h>

static atomic_bool cancel_flag;
static _Thread_local int cancel_held;

void cancel_request(void)
{
    atomic_store(&cancel_flag, true);
}

bool cancel_requested(void)
{
    return !cancel_held && atomic_load(&cancel_flag);
}

void cancel_hold(void)
{
    cancel_held++;
}

void cancel_release(void)
{
    if (cancel_held > 0)
        cancel_held--;
}

void cancel_reset(void)
{
    atomic_store(&cancel_flag, false);
}
