/*
 * smb_conn.c - libsmbclient contexts, URLs and errors of the SMB driver.
 *
 * A libsmbclient context holds the connections it opened (one per server
 * and share) and must be used by one thread at a time. Each storage hands
 * a context to each operation, and to each open reader and writer, which
 * hold it until they close; contexts are kept open for reuse, at most
 * `max` of them (the `connections` option), and a thread that finds them
 * all in use waits for one (see smb_held below for the one exception).
 *
 * Credentials reach libsmbclient through its authentication callback, from
 * the storage's private data: never through the URL, so a password is
 * never part of a string libsmbclient might log.
 */
#include "storage/smb/smb_internal.h"

#include "core/buf.h"
#include "core/cancel.h"
#include "core/log.h"
#include "storage/storage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Thread_local int smb_saved_errno;

/* ---- contexts ---------------------------------------------------------- */

static void smb_auth_cb(SMBCCTX *ctx, const char *srv, const char *shr, char *wg, int wglen,
                        char *un, int unlen, char *pw, int pwlen)
{
    const struct smb_api *a;
    (void)srv;
    (void)shr;
    if (smb_api_get(&a, NULL))
        return;
    const struct smb_priv *p = a->get_user_data(ctx);
    if (!p)
        return;
    if (wglen > 0)
        snprintf(wg, (size_t)wglen, "%s", p->domain);
    if (unlen > 0)
        snprintf(un, (size_t)unlen, "%s", p->user);
    if (pwlen > 0)
        snprintf(pw, (size_t)pwlen, "%s", p->password);
}

/* Samba's own diagnostics: to arca's debug log, never to stderr. */
static void smb_log_cb(void *priv, int level, const char *msg)
{
    (void)priv;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        n--;
    if (n)
        log_debug("libsmbclient (level %d): %.*s", level, (int)(n > 500 ? 500 : n), msg);
}

static void smb_conn_free(struct smb_priv *p, struct smb_conn *c)
{
    if (!c)
        return;
    if (c->ctx) {
        smb_api_lock();
        p->api->free_context(c->ctx, 1);
        smb_api_unlock();
    }
    free(c);
}

static int smb_conn_new(struct smb_priv *p, struct smb_conn **out, struct err *e)
{
    const struct smb_api *a = p->api;
    struct smb_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory connecting to SMB server %s", p->server);

    smb_api_lock();
    c->ctx = a->new_context();
    if (!c->ctx) {
        smb_api_unlock();
        free(c);
        return err_set(e, ERR_NOMEM, "out of memory connecting to SMB server %s", p->server);
    }
    /* Samba's debug level is process-wide: 0 shows only its errors */
    a->set_debug(c->ctx, log_get_level() >= LOG_DEBUG ? 1 : 0);
    if (a->set_log_callback)
        a->set_log_callback(c->ctx, NULL, smb_log_cb);
    a->set_user_data(c->ctx, p);
    a->set_auth_fn(c->ctx, smb_auth_cb);
    /* a refused logon must fail, not go on as an anonymous guest */
    a->set_no_auto_anonymous(c->ctx, 1);
    /* user name and password only: no Kerberos ticket of whoever runs arca */
    a->set_use_kerberos(c->ctx, 0);
    a->set_fallback_after_kerberos(c->ctx, 1);
    if (a->set_use_ccache)
        a->set_use_ccache(c->ctx, 0);
    a->set_timeout(c->ctx, p->timeout_ms);
    a->set_user(c->ctx, p->user);
    a->set_workgroup(c->ctx, p->domain);
    if (p->port)
        a->set_port(c->ctx, p->port);
    /* SMB1 is insecure and slow; "SMB3" is the newest dialect there is */
    if (a->set_protocols)
        a->set_protocols(c->ctx, "SMB2_02", "SMB3");
    if (!a->init_context(c->ctx)) {
        int en = errno;
        a->free_context(c->ctx, 1);
        smb_api_unlock();
        free(c);
        return err_set(e, en == ENOMEM ? ERR_NOMEM : ERR_CONFIG,
                       "cannot start libsmbclient for SMB server %s: %s; check /etc/samba/smb.conf",
                       p->server, strerror(en ? en : EINVAL));
    }
    c->open = a->get_open(c->ctx);
    c->read = a->get_read(c->ctx);
    c->write = a->get_write(c->ctx);
    c->lseek = a->get_lseek(c->ctx);
    c->close = a->get_close(c->ctx);
    c->stat = a->get_stat(c->ctx);
    c->fstat = a->get_fstat(c->ctx);
    c->opendir = a->get_opendir(c->ctx);
    c->readdirplus = a->get_readdirplus(c->ctx);
    c->closedir = a->get_closedir(c->ctx);
    c->rename = a->get_rename(c->ctx);
    c->unlink = a->get_unlink(c->ctx);
    c->mkdir = a->get_mkdir(c->ctx);
    c->rmdir = a->get_rmdir(c->ctx);
    c->utimes = a->get_utimes(c->ctx);
    smb_api_unlock();
    *out = c;
    return 0;
}

/*
 * Which storages this thread holds contexts of. A thread that holds one
 * may take another past the cap (a reader open while it stats a file):
 * waiting there could wait for itself. Threads that hold none wait, and
 * since holders never wait, every context in use comes back. Handles may
 * move between threads, so this is a hint that errs towards opening one
 * more context, never towards waiting.
 */
#define SMB_HELD_SLOTS 8
static _Thread_local struct smb_held {
    const struct smb_priv *p;
    int n;
} smb_held[SMB_HELD_SLOTS];

static void smb_held_add(const struct smb_priv *p, int d)
{
    struct smb_held *free_slot = NULL;
    for (int i = 0; i < SMB_HELD_SLOTS; i++) {
        if (smb_held[i].p == p) {
            smb_held[i].n += d;
            if (smb_held[i].n <= 0)
                smb_held[i] = (struct smb_held){NULL, 0};
            return;
        }
        if (!smb_held[i].p && !free_slot)
            free_slot = &smb_held[i];
    }
    if (d > 0 && free_slot)
        *free_slot = (struct smb_held){p, d};
}

static bool smb_held_any(const struct smb_priv *p)
{
    int used = 0;
    for (int i = 0; i < SMB_HELD_SLOTS; i++) {
        if (smb_held[i].p == p)
            return true;
        used += smb_held[i].p != NULL;
    }
    return used == SMB_HELD_SLOTS; /* cannot tell: do not wait */
}

int smb_conn_get(struct smb_priv *p, struct smb_conn **out, struct err *e)
{
    struct smb_conn *c = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->idle) {
            c = p->idle;
            p->idle = c->next;
            c->next = NULL;
            break;
        }
        if (p->n_open < p->max || smb_held_any(p)) {
            p->n_open++;
            break;
        }
        if (cancel_requested()) {
            pthread_mutex_unlock(&p->mu);
            return err_set(e, ERR_CANCELLED, "interrupted");
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000; /* look at cancel_requested() now and then */
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    if (!c) {
        int r = smb_conn_new(p, &c, e);
        if (r) {
            pthread_mutex_lock(&p->mu);
            p->n_open--;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return r;
        }
    }
    smb_held_add(p, 1);
    *out = c;
    return 0;
}

void smb_conn_put(struct smb_priv *p, struct smb_conn *c, bool broken)
{
    if (!c)
        return;
    smb_held_add(p, -1);
    pthread_mutex_lock(&p->mu);
    if (broken) {
        p->n_open--;
    } else {
        c->next = p->idle;
        p->idle = c;
        c = NULL;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    smb_conn_free(p, c);
}

void smb_conn_drain(struct smb_priv *p)
{
    pthread_mutex_lock(&p->mu);
    struct smb_conn *c = p->idle;
    p->idle = NULL;
    pthread_mutex_unlock(&p->mu);
    while (c) {
        struct smb_conn *next = c->next;
        smb_conn_free(p, c);
        c = next;
        pthread_mutex_lock(&p->mu);
        p->n_open--;
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- URLs -------------------------------------------------------------- */

/* libsmbclient percent-decodes the whole URL and reads '?' as the start of
 * options and '@', ';' and ':' in the authority as credentials: encode
 * every byte but the unreserved ones (and '/' between path segments). */
int smb_url_append(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~' ||
                     ch == '/';
        if (plain) {
            if (buf_append(b, &s[i], 1))
                return ERR_NOMEM;
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            if (buf_append(b, esc, 3))
                return ERR_NOMEM;
        }
    }
    return 0;
}

char *smb_url(const struct smb_priv *p, const char *key)
{
    struct buf b = BUF_INIT(0);
    if (buf_puts(&b, p->base_url) || buf_puts(&b, "/") || smb_url_append(&b, key, strlen(key))) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

char *smb_share_path_url(const struct smb_priv *p, const char *path, size_t len)
{
    struct buf b = BUF_INIT(0);
    if (buf_puts(&b, p->share_url) || smb_url_append(&b, path, len)) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* ---- errors ------------------------------------------------------------ */

bool smb_errno_is_net(int en)
{
    switch (en) {
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case ECONNRESET:
    case ECONNABORTED:
    case ENOTCONN:
    case EPIPE:
    case EADDRNOTAVAIL:
        return true;
    default:
        return false;
    }
}

bool smb_retry_pause(int attempt)
{
    for (int i = 0; i < attempt; i++) { /* 100 ms per attempt */
        if (cancel_requested())
            return false;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    return !cancel_requested();
}

static int smb_net_err(const struct smb_priv *p, struct err *e, int en)
{
    switch (en) {
    case ECONNREFUSED:
        return err_set(e, ERR_NET,
                       "cannot connect to SMB server %s: connection refused; check the host and "
                       "the port, and that the server runs",
                       p->server);
    case ETIMEDOUT:
        return err_set(e, ERR_NET,
                       "SMB server %s did not answer within %d s; check the host, the port and "
                       "the network",
                       p->server, p->timeout_ms / 1000);
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case EADDRNOTAVAIL:
        return err_set(e, ERR_NET, "cannot reach SMB server %s: %s; check the host and the network",
                       p->server, strerror(en));
    case ECONNRESET:
    case ECONNABORTED:
    case ENOTCONN:
    case EPIPE:
        return err_set(e, ERR_NET, "the connection to SMB server %s was lost (%s); retry",
                       p->server, strerror(en));
    default:
        return err_set(e, ERR_NET, "connection to SMB server %s failed: %s; retry", p->server,
                       strerror(en));
    }
}

/* The user as messages show it: 'DOMAIN\user', 'user' or guest. */
static void smb_who(const struct smb_priv *p, char *out, size_t cap)
{
    if (!p->user[0])
        snprintf(out, cap, "guest");
    else if (p->domain[0] && strcmp(p->domain, "WORKGROUP") != 0)
        snprintf(out, cap, "'%s\\%s'", p->domain, p->user);
    else
        snprintf(out, cap, "'%s'", p->user);
}

int smb_errno_n(const struct smb_priv *p, struct err *e, int en, const char *verb, const char *key,
                size_t len)
{
    const char *d = storage_display(p->st);
    size_t dl = strlen(d);
    int n = len > 4096 ? 4096 : (int)len;
    const char *sep = (n && dl && d[dl - 1] != '/') ? "/" : "";
    char who[300];

    if (smb_errno_is_net(en))
        return smb_net_err(p, e, en);
    switch (en) {
    case ENOENT:
        return err_set(e, ERR_NOT_FOUND, "cannot %s '%s%s%.*s': no such file or directory", verb, d,
                       sep, n, key);
    case ENOTDIR:
        return err_set(e, ERR_NOT_FOUND,
                       "cannot %s '%s%s%.*s': a part of its path is a file, not a directory", verb,
                       d, sep, n, key);
    case EACCES:
    case EPERM:
        smb_who(p, who, sizeof(who));
        return err_set(e, ERR_PERM,
                       "cannot %s '%s%s%.*s': permission denied; check what user %s may do on "
                       "the share and the file",
                       verb, d, sep, n, key, who);
    case EEXIST:
        return err_set(e, ERR_EXISTS, "cannot %s '%s%s%.*s': it already exists", verb, d, sep, n,
                       key);
    case EISDIR:
        return err_set(e, ERR_USAGE, "cannot %s '%s%s%.*s': it is a directory", verb, d, sep, n,
                       key);
    case ENOSPC:
    case EDQUOT:
        return err_set(e, ERR_IO,
                       "cannot %s '%s%s%.*s': no space left on the share; free some space and "
                       "retry",
                       verb, d, sep, n, key);
    case EROFS:
        return err_set(e, ERR_IO,
                       "cannot %s '%s%s%.*s': the share is read-only; choose a writable share",
                       verb, d, sep, n, key);
    case EBUSY:
    case ETXTBSY:
        return err_set(e, ERR_IO,
                       "cannot %s '%s%s%.*s': the file is in use by another program (sharing "
                       "violation); retry later",
                       verb, d, sep, n, key);
    case EINVAL:
        return err_set(e, ERR_IO,
                       "cannot %s '%s%s%.*s': the SMB server refused the request (invalid "
                       "argument); the name may be one it does not allow",
                       verb, d, sep, n, key);
    case ENOMEM:
        return err_set(e, ERR_NOMEM, "cannot %s '%s%s%.*s': out of memory", verb, d, sep, n, key);
    case ECANCELED:
        return err_set(e, ERR_CANCELLED, "interrupted");
    default:
        return err_set(e, ERR_IO, "cannot %s '%s%s%.*s': %s", verb, d, sep, n, key,
                       strerror(en ? en : EIO));
    }
}

/*
 * Why did the first operation of a context fail? libsmbclient connects on
 * the first call and reports a refused logon, a share the user may not use
 * and a file the user may not read all as EACCES (and a missing share as
 * ENOENT, like a missing file). So: stat the share's top (which always
 * exists), then list the server's shares, which needs a logon but no
 * share. 0 when the share is fine: the error is about the path.
 */
static int smb_diagnose(struct smb_priv *p, struct smb_conn *c, struct err *e)
{
    struct stat sb;
    char who[300];

    smb_api_lock();
    errno = 0;
    int rc = c->stat(c->ctx, p->share_url, &sb);
    int en = errno;
    smb_api_unlock();
    if (rc == 0) {
        c->ok = true;
        return 0;
    }
    if (en == ENOENT || en == ENODEV)
        return err_set(e, ERR_NOT_FOUND,
                       "SMB share '%s' does not exist on %s; check the share name", p->share,
                       p->server);
    if (smb_errno_is_net(en))
        return smb_net_err(p, e, en);
    if (en == ENOMEM)
        return err_set(e, ERR_NOMEM, "out of memory connecting to SMB server %s", p->server);

    smb_api_lock();
    errno = 0;
    SMBCFILE *d = c->opendir(c->ctx, p->server_url);
    int en2 = errno;
    if (d)
        c->closedir(c->ctx, d);
    smb_api_unlock();
    smb_who(p, who, sizeof(who));
    if (!d && smb_errno_is_net(en2))
        return smb_net_err(p, e, en2);
    if (!d && (en2 == EACCES || en2 == EPERM || en2 == EINVAL)) {
        if (!p->user[0])
            return err_set(e, ERR_AUTH,
                           "SMB guest logon to %s failed: the server does not accept guests; "
                           "give a user name and a password",
                           p->server);
        return err_set(e, ERR_AUTH, "SMB logon to %s as %s failed: wrong user name or password",
                       p->server, who);
    }
    if (!p->user[0])
        return err_set(e, ERR_PERM,
                       "SMB share '%s' on %s does not accept guests (access denied); give a user "
                       "name and a password",
                       p->share, p->server);
    return err_set(e, ERR_PERM,
                   "SMB share '%s' on %s refused user %s (access denied); check the share's "
                   "allowed users (a server that maps unknown users to guest logs them on, then "
                   "refuses them here)",
                   p->share, p->server, who);
}

int smb_fail(struct smb_priv *p, struct smb_conn *c, int en, const char *verb, const char *key,
             struct err *e)
{
    if (c && !c->ok && !smb_errno_is_net(en) && en != ENOMEM && en != ECANCELED) {
        int r = smb_diagnose(p, c, e);
        if (r)
            return r;
    }
    return smb_errno_n(p, e, en, verb, key, strlen(key));
}
