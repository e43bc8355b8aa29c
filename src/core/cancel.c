#include "core/cancel.h"

#include <stdatomic.h>

static atomic_bool cancel_flag;

void cancel_request(void)
{
    atomic_store(&cancel_flag, true);
}

bool cancel_requested(void)
{
    return atomic_load(&cancel_flag);
}

void cancel_reset(void)
{
    atomic_store(&cancel_flag, false);
}
