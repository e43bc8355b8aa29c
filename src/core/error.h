/*
 * error.h - the error record every fallible function fills.
 *
 * Functions return 0 or a negative ERR_* code and write a one-line message
 * into a caller-owned struct err. Context is added as the error rises:
 *
 *     r = s3_put(...);              // "503 SlowDown after 5 attempts"
 *     if (r) return err_wrap(e, "uploading '%s'", key);
 *                                   // "uploading 'a.txt': 503 SlowDown ..."
 *
 * Messages are lowercase, have no trailing period, quote their subject and
 * end with a hint the user can act on where there is one. Each code maps to
 * one CLI exit status (err_exit_status) and, later, one HTTP status.
 */
#ifndef ARCA_CORE_ERROR_H
#define ARCA_CORE_ERROR_H

#include <stddef.h>

enum err_code {
    ERR_OK = 0,
    ERR_USAGE = -1,     /* bad command line or remote string */
    ERR_CONFIG = -2,    /* config file unreadable, unsafe or invalid */
    ERR_NOT_FOUND = -3, /* bucket, object, path or remote does not exist */
    ERR_AUTH = -4,      /* credentials missing or refused */
    ERR_PERM = -5,      /* permission denied */
    ERR_NET = -6,       /* connection failed, timed out, gave up retrying */
    ERR_IO = -7,        /* local read/write failure */
    ERR_PROTO = -8,     /* server answered something we cannot use */
    ERR_CANCELLED = -9, /* interrupted by a signal or the caller */
    ERR_NOMEM = -10,    /* allocation failed or a bounded buffer is full */
    ERR_UNSORTED = -11, /* a listing was not in strictly increasing order */
    ERR_REFUSED = -12,  /* a safety check refused the operation */
    ERR_EXISTS = -13,   /* something is already there */
    ERR_TLS = -14,      /* certificate verification failed */
    ERR_INTERNAL = -15, /* a bug */
    ERR_LOCKED = -16,   /* another writer holds the destination's lock */
    ERR_CORRUPT = -17,  /* stored data fails its check (hash, size, format) */
};

#define ERR_MSG_MAX 1024

struct err {
    int code;
    char msg[ERR_MSG_MAX];
};

/* Reset to "no error". */
void err_clear(struct err *e);

/* Set code and message (printf format); returns code so callers can write
 * `return err_set(e, ERR_IO, "cannot open '%s': %s", p, strerror(errno));`.
 * e may be NULL, then only the code is returned. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix the current message with context ("ctx: old message"); returns the
 * current code. A message that would overflow is cut, never overrun. */
int err_wrap(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short stable name of a code, e.g. "not_found"; used as error class in events. */
const char *err_code_name(int code);

/* Process exit status for a code (see docs/CLI.md "Exit codes"). */
int err_exit_status(int code);

/* Exit statuses that are not errors of one operation. */
enum {
    EXIT_OK = 0,
    EXIT_DIFFERENCES = 1, /* check found differences */
    EXIT_USAGE = 2,
    EXIT_PARTIAL = 3, /* some files failed, the rest succeeded */
};

#endif
