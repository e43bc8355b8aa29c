/*
 * smb.h - the SMB (Windows / Samba file share) storage driver.
 *
 * libsmbclient pulls in most of Samba's libraries, so it is not linked:
 * the driver dlopen()s it the first time an SMB remote is opened, and every
 * other command (and the daemon) never pays its start-up time or memory.
 */
#ifndef ARCA_STORAGE_SMB_SMB_H
#define ARCA_STORAGE_SMB_SMB_H

#include "core/error.h"

struct storage;

struct smb_opts {
    const char *host;     /* required: name or address */
    int port;             /* 0: 445 */
    const char *share;    /* required */
    const char *path;     /* the root inside the share, "" or NULL for its top */
    const char *domain;   /* NULL or "": WORKGROUP */
    const char *user;     /* NULL or "": guest */
    const char *password; /* a secret: never logged; NULL means "" */
    double timeout;       /* seconds for connect and each request; 0: 60 */
    int connections;      /* connections opened at most, 0: 4 (a thread that holds one
                           * may open another rather than wait for itself) */
};

/* Open an SMB storage rooted at share/path. `display` names it in
 * messages (never contains the password). Does not connect yet;
 * storage_check_root() does. Loads libsmbclient on first use (ERR_CONFIG
 * with an install hint when it is missing); bad options are ERR_USAGE
 * without loading it. Copies what it keeps of o; the password is wiped
 * at storage_close(). */
int smb_storage_open(const struct smb_opts *o, const char *display, struct storage **out,
                     struct err *e);

#endif
