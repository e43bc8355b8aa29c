#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void err_clear(struct err *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
    if (!e)
        return ERR_INTERNAL;
    char ctx[ERR_MSG_MAX];
    char old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    /* "ctx: old", cut at the end when too long (the context matters most) */
    size_t n = strlen(ctx);
    memcpy(e->msg, ctx, n + 1);
    if (old[0] && n + 2 < sizeof(e->msg)) {
        memcpy(e->msg + n, ": ", 2);
        size_t room = sizeof(e->msg) - n - 3;
        size_t m = strlen(old);
        if (m > room)
            m = room;
        memcpy(e->msg + n + 2, old, m);
        e->msg[n + 2 + m] = '\0';
    }
    if (!e->code)
        e->code = ERR_INTERNAL;
    return e->code;
}

const char *err_code_name(int code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_USAGE:
        return "usage";
    case ERR_CONFIG:
        return "config";
    case ERR_NOT_FOUND:
        return "not_found";
    case ERR_AUTH:
        return "auth";
    case ERR_PERM:
        return "permission";
    case ERR_NET:
        return "network";
    case ERR_IO:
        return "io";
    case ERR_PROTO:
        return "protocol";
    case ERR_CANCELLED:
        return "cancelled";
    case ERR_NOMEM:
        return "memory";
    case ERR_UNSORTED:
        return "unsorted";
    case ERR_REFUSED:
        return "refused";
    case ERR_EXISTS:
        return "exists";
    case ERR_TLS:
        return "tls";
    case ERR_LOCKED:
        return "locked";
    case ERR_CORRUPT:
        return "corrupt";
    default:
        return "internal";
    }
}

int err_exit_status(int code)
{
    switch (code) {
    case ERR_OK:
        return EXIT_OK;
    case ERR_USAGE:
        return EXIT_USAGE;
    case ERR_CONFIG:
        return 4;
    case ERR_NOT_FOUND:
        return 5;
    case ERR_AUTH:
        return 6;
    case ERR_PERM:
        return 7;
    case ERR_NET:
        return 8;
    case ERR_TLS:
        return 8;
    case ERR_IO:
        return 9;
    case ERR_PROTO:
        return 10;
    case ERR_REFUSED:
        return 11;
    case ERR_UNSORTED:
        return 11;
    case ERR_LOCKED:
        return 13;
    case ERR_CORRUPT:
        return 14;
    case ERR_CANCELLED:
        return 130;
    default:
        return 12;
    }
}
