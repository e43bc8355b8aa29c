/*
 * sftp.h - the SFTP storage driver (libssh2).
 *
 * The root is a directory on the server: absolute, or relative to the
 * login directory. Host keys are always verified (known_hosts or a pinned
 * SHA256 fingerprint); see docs/REMOTES.md.
 */
#ifndef ARCA_STORAGE_SFTP_SFTP_H
#define ARCA_STORAGE_SFTP_SFTP_H

#include <stdbool.h>

#include "core/error.h"

struct storage;

struct sftp_opts {
    const char *host; /* required: name or address ("::1" without brackets) */
    int port;         /* 0: 22 */
    const char *user; /* required */
    const char *path; /* root: "/abs", "rel" (to the login directory) or "" */
    /* authentication: any of these; secrets are never logged */
    const char *password;
    const char *key_file;       /* private key file (OpenSSH or PEM format) */
    const char *key_pem;        /* or the key itself */
    const char *key_passphrase; /* for an encrypted key */
    bool default_keys;          /* no key given: try ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa */
    /* host key: a pinned "SHA256:..." fingerprint wins over known_hosts */
    const char *known_hosts;      /* NULL: ~/.ssh/known_hosts + /etc/ssh/ssh_known_hosts */
    const char *host_fingerprint; /* NULL or "SHA256:<base64>" */
    bool follow_symlinks;         /* list and read what symlinks point to */
    double timeout;               /* seconds for connect and each request; 0: 30 */
    int connections;              /* parallel sessions, 0: 8 */
};

/* Open an SFTP storage. Connects lazily: storage_check_root() (or the first
 * call) logs in and checks the host key. */
int sftp_storage_open(const struct sftp_opts *o, const char *display, struct storage **out,
                      struct err *e);

#endif
