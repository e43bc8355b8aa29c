/*
 * sftp_internal.h - what the SFTP driver's files share.
 *
 *   sftp_conn.c    connections: TCP, SSH handshake, host key check, login,
 *                  SFTP channel; a pool of them (one per thread at a time)
 *   sftp_hostkey.c known_hosts lookup and pinned fingerprints; private key
 *                  inspection (type, encrypted)
 *   sftp.c         the storage driver on top
 */
#ifndef ARCA_STORAGE_SFTP_SFTP_INTERNAL_H
#define ARCA_STORAGE_SFTP_SFTP_INTERNAL_H

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/error.h"
#include "storage/sftp/sftp.h"

#define SFTP_DEFAULT_TIMEOUT 30.0
#define SFTP_DEFAULT_CONNECTIONS 8
#define SFTP_KEEPALIVE_SECONDS 15
#define SFTP_RETRIES 3 /* attempts for a call that lost its connection */

struct sftp_conn {
    int fd;
    LIBSSH2_SESSION *session;
    LIBSSH2_SFTP *sftp;
    time_t last_used;
    bool broken; /* the connection failed: drop it instead of pooling it */
    struct sftp_conn *next;
};

struct sftp_priv {
    /* options (owned copies; secrets wiped on close) */
    char *host, *user, *root, *password, *key_pem, *key_file, *key_passphrase;
    char *known_hosts, *host_fingerprint;
    int port;
    bool default_keys, follow_symlinks;
    double timeout;
    int max_conns;
    char *addr;       /* "host:port" (or "[v6]:port") for messages */
    char *root_shown; /* root as messages show it */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct sftp_conn *idle;
    int nconns; /* open connections, idle or in use */
};

/* Take a connection from the pool or make one (waits when max_conns are in
 * use). ERR_NET, ERR_AUTH, ERR_REFUSED (host key), ... */
int sftp_conn_get(struct sftp_priv *p, struct sftp_conn **out, struct err *e);
/* Give it back (or drop it when broken). */
void sftp_conn_put(struct sftp_priv *p, struct sftp_conn *c);
void sftp_pool_close(struct sftp_priv *p);

/* Fill e for the last libssh2 error of c while doing `verb` on `path`:
 * SFTP status codes map to ERR_NOT_FOUND, ERR_PERM, ...; session errors to
 * ERR_NET and mark c broken. Returns the code. */
int sftp_error(struct sftp_priv *p, struct sftp_conn *c, struct err *e, const char *verb,
               const char *path);

/* Host keys. */
enum sftp_hostkey_result { HOSTKEY_OK, HOSTKEY_UNKNOWN, HOSTKEY_CHANGED, HOSTKEY_REVOKED };
/* Look up (host, port, key type, key blob) in a known_hosts file; where a
 * different key of the host is listed, *where receives "file:line". The
 * key types known for the host are appended to `types` (comma-separated,
 * for the host key algorithm preference). 0 or ERR_IO/ERR_NOMEM (a file
 * that does not exist is simply empty). */
int sftp_known_hosts_check(const char *file, const char *host, int port, const char *type,
                           const unsigned char *blob, size_t blob_len,
                           enum sftp_hostkey_result *result, char *where, size_t where_cap,
                           char *types, size_t types_cap, struct err *e);
/* "SHA256:<base64 without padding>" of a key blob. */
void sftp_fingerprint(const unsigned char *blob, size_t len, char *out, size_t cap);

/* Private keys: the key type ("ssh-ed25519", "ecdsa-sha2-nistp256",
 * "ssh-rsa", or "" when it cannot tell) and whether it is encrypted. */
void sftp_key_inspect(const char *pem, size_t len, char *type, size_t type_cap, bool *encrypted);

#endif
