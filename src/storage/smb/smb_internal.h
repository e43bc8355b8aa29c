/*
 * smb_internal.h - what the files of the SMB driver share.
 *
 * smb_dl.c loads libsmbclient at run time and serialises calls into it;
 * smb_conn.c keeps the pool of libsmbclient contexts, builds URLs and turns
 * errno values into arca errors; smb.c is the storage driver.
 */
#ifndef ARCA_STORAGE_SMB_SMB_INTERNAL_H
#define ARCA_STORAGE_SMB_SMB_INTERNAL_H

#include <errno.h>
#include <libsmbclient.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

struct buf;
struct storage;
struct storage_write_opts;

/* The libsmbclient entry points arca uses, resolved with dlsym. Optional
 * ones are NULL when the installed library lacks them. */
struct smb_api {
    __typeof__(smbc_new_context) *new_context;
    __typeof__(smbc_init_context) *init_context;
    __typeof__(smbc_free_context) *free_context;
    __typeof__(smbc_setDebug) *set_debug;
    __typeof__(smbc_setFunctionAuthDataWithContext) *set_auth_fn;
    __typeof__(smbc_setOptionUserData) *set_user_data;
    __typeof__(smbc_getOptionUserData) *get_user_data;
    __typeof__(smbc_setOptionNoAutoAnonymousLogin) *set_no_auto_anonymous;
    __typeof__(smbc_setOptionUseKerberos) *set_use_kerberos;
    __typeof__(smbc_setOptionFallbackAfterKerberos) *set_fallback_after_kerberos;
    __typeof__(smbc_setTimeout) *set_timeout;
    __typeof__(smbc_setUser) *set_user;
    __typeof__(smbc_setWorkgroup) *set_workgroup;
    __typeof__(smbc_setPort) *set_port;
    __typeof__(smbc_getFunctionOpen) *get_open;
    __typeof__(smbc_getFunctionRead) *get_read;
    __typeof__(smbc_getFunctionWrite) *get_write;
    __typeof__(smbc_getFunctionLseek) *get_lseek;
    __typeof__(smbc_getFunctionClose) *get_close;
    __typeof__(smbc_getFunctionStat) *get_stat;
    __typeof__(smbc_getFunctionFstat) *get_fstat;
    __typeof__(smbc_getFunctionOpendir) *get_opendir;
    __typeof__(smbc_getFunctionReaddirPlus) *get_readdirplus;
    __typeof__(smbc_getFunctionClosedir) *get_closedir;
    __typeof__(smbc_getFunctionRename) *get_rename;
    __typeof__(smbc_getFunctionUnlink) *get_unlink;
    __typeof__(smbc_getFunctionMkdir) *get_mkdir;
    __typeof__(smbc_getFunctionRmdir) *get_rmdir;
    __typeof__(smbc_getFunctionUtimes) *get_utimes;
    /* optional */
    __typeof__(smbc_setOptionProtocols) *set_protocols;
    __typeof__(smbc_setOptionUseCCache) *set_use_ccache;
    __typeof__(smbc_setLogCallback) *set_log_callback;
    __typeof__(smbc_thread_posix) *thread_posix;
};

/* Load libsmbclient.so.0 and resolve its entry points, once per process
 * (thread-safe). *api stays valid until exit. ERR_CONFIG when the library
 * is missing or too old, with a message saying what to install. */
int smb_api_get(const struct smb_api **api, struct err *e);

/*
 * libsmbclient keeps process-wide state without locks (Samba's talloc
 * stack frames, the loadparm tables, the name cache) unless a thread
 * implementation is installed with smbc_thread_posix(), which Debian 12's
 * library does not export. So every call into it runs under this one lock;
 * threads still get contexts (connections) of their own, and a context is
 * never shared, so the lock is the only thing they wait for.
 */
void smb_api_lock(void);
void smb_api_unlock(void);

/* A libsmbclient call under the process-wide lock, with errno kept:
 * SMB_CALL(rc, c->stat(c->ctx, url, &sb)); */
#define SMB_CALL(res, expr)                                                                        \
    do {                                                                                           \
        smb_api_lock();                                                                            \
        errno = 0;                                                                                 \
        (res) = (expr);                                                                            \
        smb_saved_errno = errno;                                                                   \
        smb_api_unlock();                                                                          \
        errno = smb_saved_errno;                                                                   \
    } while (0)
extern _Thread_local int smb_saved_errno;

#define SMB_IO_SIZE ((size_t)1 << 20) /* bytes per read/write call */
#define SMB_NAME_MAX 255              /* bytes; SMB allows 255 UTF-16 units */
#define SMB_RETRIES 3                 /* attempts of an operation that lost its connection */

/* One libsmbclient context: one TCP connection per server and share, used
 * by one thread at a time. */
struct smb_conn {
    SMBCCTX *ctx;
    bool ok; /* an operation on the share succeeded: logon and share are fine */
    smbc_open_fn open;
    smbc_read_fn read;
    smbc_write_fn write;
    smbc_lseek_fn lseek;
    smbc_close_fn close;
    smbc_stat_fn stat;
    smbc_fstat_fn fstat;
    smbc_opendir_fn opendir;
    smbc_readdirplus_fn readdirplus;
    smbc_closedir_fn closedir;
    smbc_rename_fn rename;
    smbc_unlink_fn unlink;
    smbc_mkdir_fn mkdir;
    smbc_rmdir_fn rmdir;
    smbc_utimes_fn utimes;
    struct smb_conn *next; /* in the idle list */
};

struct smb_priv {
    const struct smb_api *api;
    struct storage *st; /* for its display name */
    char *host;
    uint16_t port; /* 0: libsmbclient's default (445) */
    char *share;
    char *root;     /* path inside the share: "" or "a/b" */
    char *domain;   /* never NULL */
    char *user;     /* "" for a guest (anonymous) logon */
    char *password; /* secret; wiped at close */
    int timeout_ms;
    char *server;     /* "host:port" for messages */
    char *server_url; /* "smb://host/" */
    char *share_url;  /* "smb://host/share/" */
    char *base_url;   /* "smb://host/share[/root]" (encoded, no trailing '/') */

    pthread_mutex_t mu;
    pthread_cond_t cv;     /* a context came back */
    struct smb_conn *idle; /* contexts not in use */
    int n_open;            /* contexts in use or idle */
    int max;               /* the `connections` option */
};

/* A context for this thread: an idle one, a new one while fewer than max
 * are open, else the next one given back. 0, ERR_CANCELLED or an error of
 * libsmbclient's start. */
int smb_conn_get(struct smb_priv *p, struct smb_conn **out, struct err *e);
/* Give it back for reuse. When `broken`, it is freed instead: its
 * connection is in an unknown state. */
void smb_conn_put(struct smb_priv *p, struct smb_conn *c, bool broken);
/* Free every idle context. */
void smb_conn_drain(struct smb_priv *p);

/* Append s[0..n) to b percent-encoded for a libsmbclient URL: every byte
 * but [A-Za-z0-9._~-] and '/'. 0 or ERR_NOMEM. */
int smb_url_append(struct buf *b, const char *s, size_t n);
/* The URL of `key` below the root ("" for the root itself; a trailing '/'
 * is kept), each byte outside [A-Za-z0-9._~-] percent-encoded. NULL when
 * out of memory. Caller frees. */
char *smb_url(const struct smb_priv *p, const char *key);
/* The URL of a path relative to the share (not the root). */
char *smb_share_path_url(const struct smb_priv *p, const char *path, size_t len);

/*
 * Fill e for a failed libsmbclient call: errno value `en` while doing
 * `verb` ("read", "write", ...) on `key` (below the root; "" for the
 * root). When the context has never reached the share, first finds out
 * whether the logon or the share is what failed (libsmbclient reports a
 * wrong password, a share the user may not use and a file the user may
 * not read all as EACCES). Returns the code.
 */
int smb_fail(struct smb_priv *p, struct smb_conn *c, int en, const char *verb, const char *key,
             struct err *e);
/* The same without the logon check, for a key of known length. */
int smb_errno_n(const struct smb_priv *p, struct err *e, int en, const char *verb, const char *key,
                size_t len);
/* True for errno values that mean the connection (not the file) failed. */
bool smb_errno_is_net(int en);
/* Before attempt `attempt` (2, 3...) of an operation whose connection was
 * lost: a short pause. False when the command is being cancelled. */
bool smb_retry_pause(int attempt);

/* ---- paths (smb.c) ---- */

/* storage_key_check, and no '\' (a separator to SMB). */
int smb_key_check(const struct smb_priv *p, const char *key, bool is_prefix, struct err *e);
/* A temp name for base (storage_temp_name, cut at a UTF-8 boundary). */
void smb_temp_name(char *out, size_t cap, const char *base);
/* The URL of `name` in the directory of key (key[0..dirlen)); caller
 * frees; NULL when out of memory. */
char *smb_sibling_url(const struct smb_priv *p, const char *key, size_t dirlen, const char *name);
/* mkdir -p of the root and key[0..dirlen) (dirlen 0: the root only). */
int smb_mkdirs(struct smb_priv *p, struct smb_conn *c, const char *key, size_t dirlen,
               struct err *e);
/* Is a directory on the path of key (key[0..upto)) a file? Then e says so
 * (ERR_EXISTS) and that is returned; 0 when none is. */
int smb_find_blocking_file(struct smb_priv *p, struct smb_conn *c, const char *key, size_t upto,
                           const char *verb, struct err *e);

/* Remove the directories of key left empty, deepest first, up to (not
 * including) the root. Best effort: stops at the first one that stays. */
void smb_prune_parents(struct smb_priv *p, struct smb_conn *c, const char *key);

/* ---- the writer (smb_write.c) ---- */

int smb_write_open(struct storage *st, const char *key, const struct storage_write_opts *opts,
                   void **state, struct err *e);
int smb_write(void *state, const void *data, size_t len, struct err *e);
int smb_write_commit(void *state, struct err *e);
void smb_write_abort(void *state);

#endif
