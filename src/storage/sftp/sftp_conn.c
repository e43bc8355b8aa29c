/*
 * sftp_conn.c - SFTP connections: TCP, SSH handshake, host key check,
 * login, SFTP channel; and the pool that hands them to threads.
 *
 * Each connection is one SSH session with one SFTP channel, used by one
 * thread at a time in blocking mode with a timeout on every call. The pool
 * keeps idle ones for reuse; one that failed is dropped, never reused. A
 * connection idle longer than the keepalive interval is checked with a
 * keepalive before it is handed out.
 */
#include "storage/sftp/sftp_internal.h"

#include "core/cancel.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_once_t sftp_once = PTHREAD_ONCE_INIT;
static int sftp_init_rc;

static void sftp_global_init(void)
{
    sftp_init_rc = libssh2_init(0);
}

/* ---- errors ------------------------------------------------------------ */

static const char *fx_text(unsigned long fx)
{
    switch (fx) {
    case LIBSSH2_FX_EOF:
        return "end of file";
    case LIBSSH2_FX_NO_SUCH_FILE:
    case LIBSSH2_FX_NO_SUCH_PATH:
        return "no such file or directory";
    case LIBSSH2_FX_PERMISSION_DENIED:
        return "permission denied";
    case LIBSSH2_FX_FAILURE:
        return "the server reported a failure";
    case LIBSSH2_FX_BAD_MESSAGE:
        return "bad message";
    case LIBSSH2_FX_OP_UNSUPPORTED:
        return "operation not supported by the server";
    case LIBSSH2_FX_FILE_ALREADY_EXISTS:
        return "it already exists";
    case LIBSSH2_FX_WRITE_PROTECT:
        return "write protected";
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
    case LIBSSH2_FX_QUOTA_EXCEEDED:
        return "no space left on the server";
    case LIBSSH2_FX_NOT_A_DIRECTORY:
        return "not a directory";
    case LIBSSH2_FX_DIR_NOT_EMPTY:
        return "directory not empty";
    case LIBSSH2_FX_INVALID_FILENAME:
        return "invalid file name";
    default:
        return "error";
    }
}

int sftp_error(struct sftp_priv *p, struct sftp_conn *c, struct err *e, const char *verb,
               const char *path)
{
    int rc = libssh2_session_last_errno(c->session);
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        unsigned long fx = libssh2_sftp_last_error(c->sftp);
        int code;
        switch (fx) {
        case LIBSSH2_FX_NO_SUCH_FILE:
        case LIBSSH2_FX_NO_SUCH_PATH:
            code = ERR_NOT_FOUND;
            break;
        case LIBSSH2_FX_PERMISSION_DENIED:
        case LIBSSH2_FX_WRITE_PROTECT:
            code = ERR_PERM;
            break;
        case LIBSSH2_FX_FILE_ALREADY_EXISTS:
            code = ERR_EXISTS;
            break;
        default:
            code = ERR_IO;
            break;
        }
        if (code == ERR_PERM)
            return err_set(e, code,
                           "cannot %s 'sftp://%s%s': permission denied; check the owner and mode "
                           "on the server",
                           verb, p->addr, path);
        return err_set(e, code, "cannot %s 'sftp://%s%s': %s", verb, p->addr, path, fx_text(fx));
    }
    char *msg = NULL;
    libssh2_session_last_error(c->session, &msg, NULL, 0);
    c->broken = true;
    if (rc == LIBSSH2_ERROR_TIMEOUT)
        return err_set(e, ERR_NET,
                       "cannot %s 'sftp://%s%s': the server did not answer within %.0f s", verb,
                       p->addr, path, p->timeout);
    return err_set(e, ERR_NET, "cannot %s 'sftp://%s%s': connection lost (%s)", verb, p->addr, path,
                   msg && *msg ? msg : "SSH error");
}

/* ---- TCP --------------------------------------------------------------- */

static int tcp_connect(struct sftp_priv *p, int *out, struct err *e)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", p->port);
    int gr = getaddrinfo(p->host, port, &hints, &res);
    if (gr)
        return err_set(e, ERR_NET, "cannot connect to SFTP server %s: %s; check the host name",
                       p->addr, gai_strerror(gr));
    int last = 0;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int ms = (int)(p->timeout * 1000);
            int pr;
            do
                pr = poll(&pf, 1, ms > 250 ? 250 : ms);
            while (pr == 0 && (ms -= 250) > 0 && !cancel_requested());
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (pr > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
                int fl = fcntl(fd, F_GETFL);
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
                freeaddrinfo(res);
                *out = fd;
                return 0;
            }
            last = pr == 0 ? ETIMEDOUT : (soerr ? soerr : errno);
        } else {
            last = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (cancel_requested())
        return err_set(e, ERR_CANCELLED, "interrupted");
    if (last == ETIMEDOUT)
        return err_set(e, ERR_NET,
                       "cannot connect to SFTP server %s: no answer within %.0f s; check the host "
                       "and port and that no firewall drops the connection",
                       p->addr, p->timeout);
    return err_set(e, ERR_NET, "cannot connect to SFTP server %s: %s; check the host and port",
                   p->addr, strerrordesc_np(last) ? strerrordesc_np(last) : "error");
}

/* ---- host key ---------------------------------------------------------- */

static const char *hostkey_type_name(int t)
{
    switch (t) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return "ssh-rsa";
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return "ssh-dss";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return "ecdsa-sha2-nistp256";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return "ecdsa-sha2-nistp384";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return "ecdsa-sha2-nistp521";
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return "ssh-ed25519";
    default:
        return "unknown";
    }
}

/* The known_hosts files to consult. */
static int known_hosts_files(struct sftp_priv *p, char files[2][4096])
{
    if (p->known_hosts) {
        snprintf(files[0], sizeof(files[0]), "%s", p->known_hosts);
        return 1;
    }
    const char *home = getenv("HOME");
    int n = 0;
    if (home && *home)
        snprintf(files[n++], sizeof(files[0]), "%s/.ssh/known_hosts", home);
    snprintf(files[n++], sizeof(files[0]), "/etc/ssh/ssh_known_hosts");
    return n;
}

/* Before the handshake: prefer the host key types known for this host, as
 * OpenSSH does, so the server presents a key we can check; then OpenSSH's
 * own order (ed25519 first, the key a pinned fingerprint most often is). */
static void prefer_known_types(struct sftp_priv *p, LIBSSH2_SESSION *sess)
{
    static const char supported[] = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                                    "ecdsa-sha2-nistp521,ssh-rsa";
    char files[2][4096];
    char types[512] = "";
    int n = p->host_fingerprint ? 0 : known_hosts_files(p, files);
    for (int i = 0; i < n; i++)
        sftp_known_hosts_check(files[i], p->host, p->port, NULL, NULL, 0, NULL, NULL, 0, types,
                               sizeof(types), NULL);
    char pref[1024] = "";
    size_t used = 0;
    /* the known types libssh2 supports first, then the rest */
    for (int pass = 0; pass < 2; pass++) {
        const char *s = supported;
        while (*s) {
            const char *c = strchr(s, ',');
            size_t l = c ? (size_t)(c - s) : strlen(s);
            bool known = false;
            for (const char *t = types; *t;) {
                const char *tc = strchr(t, ',');
                size_t tl = tc ? (size_t)(tc - t) : strlen(t);
                if (tl == l && !memcmp(t, s, l))
                    known = true;
                t += tl + (tc ? 1 : 0);
            }
            if (known == (pass == 0) && used + l + 2 < sizeof(pref)) {
                if (used)
                    pref[used++] = ',';
                memcpy(pref + used, s, l);
                used += l;
                pref[used] = '\0';
            }
            s += l + (c ? 1 : 0);
        }
    }
    libssh2_session_method_pref(sess, LIBSSH2_METHOD_HOSTKEY, pref);
}

static int check_host_key(struct sftp_priv *p, LIBSSH2_SESSION *s, struct err *e)
{
    size_t len = 0;
    int ktype = 0;
    const char *key = libssh2_session_hostkey(s, &len, &ktype);
    if (!key)
        return err_set(e, ERR_PROTO, "SFTP server %s sent no host key", p->addr);
    const char *tname = hostkey_type_name(ktype);
    char fp[128];
    sftp_fingerprint((const unsigned char *)key, len, fp, sizeof(fp));

    if (p->host_fingerprint) {
        const char *want = p->host_fingerprint;
        /* accept it with or without base64 padding */
        size_t wl = strlen(want);
        while (wl && want[wl - 1] == '=')
            wl--;
        if (strlen(fp) == wl && !memcmp(fp, want, wl))
            return 0;
        return err_set(e, ERR_REFUSED,
                       "host key of SFTP server %s is %s %s, not the pinned %s; if the server "
                       "was re-keyed, update host_fingerprint, otherwise this may be an attack",
                       p->addr, tname, fp, want);
    }
    char files[2][4096];
    char where[4200] = "";
    enum sftp_hostkey_result res = HOSTKEY_UNKNOWN;
    int n = known_hosts_files(p, files);
    for (int i = 0; i < n; i++) {
        int r =
            sftp_known_hosts_check(files[i], p->host, p->port, tname, (const unsigned char *)key,
                                   len, &res, where, sizeof(where), NULL, 0, e);
        if (r)
            return r;
    }
    switch (res) {
    case HOSTKEY_OK:
        return 0;
    case HOSTKEY_REVOKED:
        return err_set(e, ERR_REFUSED,
                       "host key of SFTP server %s (%s %s) is marked @revoked in known_hosts; "
                       "refusing to connect",
                       p->addr, tname, fp);
    case HOSTKEY_CHANGED:
        return err_set(e, ERR_REFUSED,
                       "host key of SFTP server %s has changed: it is now %s %s, but %s lists "
                       "another; if the server was re-keyed, replace that line, otherwise this "
                       "may be an attack",
                       p->addr, tname, fp, where);
    default:
        break;
    }
    char hostpart[600];
    if (p->port == 22)
        snprintf(hostpart, sizeof(hostpart), "%s", p->host);
    else
        snprintf(hostpart, sizeof(hostpart), "-p %d %s", p->port, p->host);
    return err_set(e, ERR_REFUSED,
                   "host key of SFTP server %s is not known (%s %s); if that is the server's "
                   "key, add it to %s (ssh-keyscan %s >> %s) or pin it with host_fingerprint = %s",
                   p->addr, tname, fp, files[0], hostpart, files[0], fp);
}

/* ---- login ------------------------------------------------------------- */

static int read_key_file(const char *path, char **out, size_t *len, struct err *e)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return err_set(e, ERR_NOT_FOUND, "SSH key file '%s' does not exist", path);
        return err_set(e, ERR_PERM, "cannot read SSH key file '%s': %s", path, strerror(errno));
    }
    char *buf = malloc(65537);
    if (!buf) {
        fclose(f);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, 65536, f);
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Log in with one private key. 0, ERR_AUTH (refused: try something else)
 * with e saying why, or another code to stop. */
static int auth_key(struct sftp_priv *p, LIBSSH2_SESSION *s, const char *what, const char *pem,
                    size_t len, struct err *e)
{
    char type[64];
    bool encrypted;
    sftp_key_inspect(pem, len, type, sizeof(type), &encrypted);
    if (!strcmp(type, "ssh-rsa"))
        return err_set(e, ERR_AUTH,
                       "%s is an RSA key: rsa keys need rsa-sha2, which this libssh2 lacks; use "
                       "an ed25519 key",
                       what);
    if (encrypted && (!p->key_passphrase || !*p->key_passphrase))
        return err_set(e, ERR_AUTH,
                       "%s is encrypted; give its passphrase (key_passphrase in the config file, "
                       "ARCA_SFTP_KEY_PASSPHRASE or --secret-file)",
                       what);
    int rc = libssh2_userauth_publickey_frommemory(s, p->user, strlen(p->user), NULL, 0, pem, len,
                                                   encrypted ? p->key_passphrase : NULL);
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED ||
        rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED)
        return err_set(e, ERR_AUTH,
                       encrypted ? "cannot use %s: wrong passphrase, or a key format libssh2 "
                                   "cannot read"
                                 : "cannot use %s: a key format libssh2 cannot read (use an "
                                   "OpenSSH ed25519 or ECDSA key)",
                       what);
    if (rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED || rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED)
        return err_set(e, ERR_AUTH,
                       "SFTP server %s refused %s for user '%s' (is its public key in the "
                       "user's authorized_keys?)",
                       p->addr, what, p->user);
    char *msg = NULL;
    libssh2_session_last_error(s, &msg, NULL, 0);
    if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_RECV ||
        rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT)
        return err_set(e, ERR_NET, "SFTP login to %s failed: %s", p->addr, msg ? msg : "");
    return err_set(e, ERR_AUTH, "SFTP login to %s with %s failed: %s", p->addr, what,
                   msg ? msg : "");
}

static int login(struct sftp_priv *p, LIBSSH2_SESSION *s, struct err *e)
{
    char *methods = libssh2_userauth_list(s, p->user, (unsigned)strlen(p->user));
    if (!methods) {
        if (libssh2_userauth_authenticated(s))
            return 0;
        char *msg = NULL;
        libssh2_session_last_error(s, &msg, NULL, 0);
        return err_set(e, ERR_NET, "SFTP login to %s failed: %s", p->addr, msg ? msg : "");
    }
    bool can_key = strstr(methods, "publickey") != NULL;
    bool can_pw = strstr(methods, "password") != NULL;
    struct err first;
    err_clear(&first);
    int tried = 0;

    if (p->key_file || p->key_pem) {
        char what[4200];
        char *pem = p->key_pem;
        size_t len = pem ? strlen(pem) : 0;
        char *owned = NULL;
        if (p->key_file) {
            int r = read_key_file(p->key_file, &owned, &len, e);
            if (r)
                return r;
            pem = owned;
            snprintf(what, sizeof(what), "key '%s'", p->key_file);
        } else {
            snprintf(what, sizeof(what), "the configured key");
        }
        int r = can_key ? auth_key(p, s, what, pem, len, &first)
                        : err_set(&first, ERR_AUTH,
                                  "SFTP server %s does not accept keys for '%s' (it offers: %s)",
                                  p->addr, p->user, methods);
        if (owned) {
            explicit_bzero(owned, len);
            free(owned);
        }
        if (r == 0)
            return 0;
        if (r != ERR_AUTH) {
            *e = first;
            return r;
        }
        tried++;
    } else if (p->default_keys && can_key) {
        static const char *const names[] = {"id_ed25519", "id_ecdsa"};
        const char *home = getenv("HOME");
        for (size_t i = 0; home && *home && i < 2; i++) {
            char path[4096], what[4200];
            char *pem;
            size_t len;
            struct err ke;
            snprintf(path, sizeof(path), "%s/.ssh/%s", home, names[i]);
            if (access(path, R_OK) != 0)
                continue;
            if (read_key_file(path, &pem, &len, &ke))
                continue;
            snprintf(what, sizeof(what), "key '%s'", path);
            struct err this;
            err_clear(&this);
            int r = auth_key(p, s, what, pem, len, &this);
            explicit_bzero(pem, len);
            free(pem);
            if (r == 0)
                return 0;
            if (r != ERR_AUTH) {
                *e = this;
                return r;
            }
            if (!tried++)
                first = this;
        }
    }
    if (p->password) {
        if (!can_pw)
            return err_set(e, ERR_AUTH,
                           "SFTP server %s does not accept passwords for '%s' (it offers: %s)%s%s",
                           p->addr, p->user, methods, tried ? "; " : "", tried ? first.msg : "");
        int rc = libssh2_userauth_password_ex(s, p->user, (unsigned)strlen(p->user), p->password,
                                              (unsigned)strlen(p->password), NULL);
        if (rc == 0)
            return 0;
        if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PASSWORD_EXPIRED)
            return err_set(e, ERR_AUTH,
                           "SFTP login to %s as '%s' failed: wrong password or unknown user",
                           p->addr, p->user);
        char *msg = NULL;
        libssh2_session_last_error(s, &msg, NULL, 0);
        return err_set(e, ERR_NET, "SFTP login to %s failed: %s", p->addr, msg ? msg : "");
    }
    if (tried) {
        *e = first;
        return ERR_AUTH;
    }
    return err_set(e, ERR_AUTH,
                   "no way to log in to SFTP server %s as '%s': give a key (key_file, "
                   "~/.ssh/id_ed25519) or a password (password in the config file, "
                   "ARCA_SFTP_PASSWORD or --secret-file)",
                   p->addr, p->user);
}

/* ---- connections ------------------------------------------------------- */

static void conn_free(struct sftp_conn *c)
{
    if (!c)
        return;
    if (c->sftp) {
        if (!c->broken)
            libssh2_sftp_shutdown(c->sftp);
    }
    if (c->session) {
        if (!c->broken)
            libssh2_session_disconnect(c->session, "bye");
        libssh2_session_free(c->session);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static int conn_new(struct sftp_priv *p, struct sftp_conn **out, struct err *e)
{
    struct sftp_conn *c = calloc(1, sizeof(*c));
    int r;
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory");
    c->fd = -1;
    c->broken = true; /* until fully set up: no polite shutdown */
    r = tcp_connect(p, &c->fd, e);
    if (r)
        goto fail;
    c->session = libssh2_session_init_ex(NULL, NULL, NULL, NULL);
    if (!c->session) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    libssh2_session_set_blocking(c->session, 1);
    libssh2_session_set_timeout(c->session, (long)(p->timeout * 1000));
    /* AES-CTR first: AES-NI makes it the fastest cipher libssh2 1.10 has */
    libssh2_session_method_pref(c->session, LIBSSH2_METHOD_CRYPT_CS,
                                "aes128-ctr,aes256-ctr,aes192-ctr,aes256-cbc,aes128-cbc");
    libssh2_session_method_pref(c->session, LIBSSH2_METHOD_CRYPT_SC,
                                "aes128-ctr,aes256-ctr,aes192-ctr,aes256-cbc,aes128-cbc");
    prefer_known_types(p, c->session);
    int rc = libssh2_session_handshake(c->session, c->fd);
    if (rc) {
        char *msg = NULL;
        libssh2_session_last_error(c->session, &msg, NULL, 0);
        r = err_set(e, rc == LIBSSH2_ERROR_KEX_FAILURE ? ERR_PROTO : ERR_NET,
                    "SSH handshake with %s failed: %s%s", p->addr, msg ? msg : "error",
                    rc == LIBSSH2_ERROR_TIMEOUT ? " (timed out; is it an SSH server?)" : "");
        goto fail;
    }
    r = check_host_key(p, c->session, e);
    if (r)
        goto fail;
    r = login(p, c->session, e);
    if (r)
        goto fail;
    c->sftp = libssh2_sftp_init(c->session);
    if (!c->sftp) {
        char *msg = NULL;
        libssh2_session_last_error(c->session, &msg, NULL, 0);
        r = err_set(e, ERR_PROTO,
                    "SFTP server %s: logged in, but the SFTP subsystem failed to start (%s); "
                    "is SFTP enabled on the server?",
                    p->addr, msg ? msg : "");
        goto fail;
    }
    libssh2_keepalive_config(c->session, 1, SFTP_KEEPALIVE_SECONDS);
    c->broken = false;
    c->last_used = time(NULL);
    *out = c;
    return 0;
fail:
    conn_free(c);
    return r;
}

int sftp_conn_get(struct sftp_priv *p, struct sftp_conn **out, struct err *e)
{
    pthread_once(&sftp_once, sftp_global_init);
    if (sftp_init_rc)
        return err_set(e, ERR_INTERNAL, "libssh2 failed to initialise");
    *out = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->idle) {
            struct sftp_conn *c = p->idle;
            p->idle = c->next;
            c->next = NULL;
            pthread_mutex_unlock(&p->lock);
            /* an idle connection may have been closed by the server */
            int next = 0;
            if (time(NULL) - c->last_used >= SFTP_KEEPALIVE_SECONDS &&
                libssh2_keepalive_send(c->session, &next) != 0) {
                c->broken = true;
                sftp_conn_put(p, c);
                pthread_mutex_lock(&p->lock);
                continue;
            }
            *out = c;
            return 0;
        }
        if (p->nconns < p->max_conns)
            break;
        if (cancel_requested()) {
            pthread_mutex_unlock(&p->lock);
            return err_set(e, ERR_CANCELLED, "interrupted");
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
    p->nconns++;
    pthread_mutex_unlock(&p->lock);
    int r = conn_new(p, out, e);
    if (r) {
        pthread_mutex_lock(&p->lock);
        p->nconns--;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
    return r;
}

void sftp_conn_put(struct sftp_priv *p, struct sftp_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->lock);
    if (c->broken) {
        /* one connection lost: the idle ones most likely went with it (a
         * server restart, a dropped link) and a retry must not spend its
         * attempts on them; they are dropped, later calls connect anew */
        struct sftp_conn *idle = p->idle;
        p->idle = NULL;
        p->nconns--;
        for (struct sftp_conn *i = idle; i; i = i->next)
            p->nconns--;
        pthread_mutex_unlock(&p->lock);
        conn_free(c);
        while (idle) {
            struct sftp_conn *next = idle->next;
            idle->broken = true; /* no goodbye: it may hang on a dead link */
            conn_free(idle);
            idle = next;
        }
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->cond);
    } else {
        c->last_used = time(NULL);
        c->next = p->idle;
        p->idle = c;
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void sftp_pool_close(struct sftp_priv *p)
{
    pthread_mutex_lock(&p->lock);
    struct sftp_conn *c = p->idle;
    p->idle = NULL;
    pthread_mutex_unlock(&p->lock);
    while (c) {
        struct sftp_conn *next = c->next;
        conn_free(c);
        c = next;
    }
}
