/*
 * sftp.c - the SFTP storage driver (see sftp.h, sftp_internal.h).
 *
 * - Listing: the shared byte-order walker (storage/dirwalk.h) over
 *   SSH_FXP_READDIR, which hands back each entry's attributes, so a walk
 *   costs one round trip per directory page, not one per file.
 * - Reads and writes pass large buffers to libssh2, which then keeps
 *   several SFTP requests in flight per file (pipelining); --transfers
 *   files run on as many sessions from the pool.
 * - A read that loses its connection reconnects and resumes at the byte it
 *   stopped at; a write resumes at the last byte the server acknowledged.
 * - Writes go to a temp name in the target directory and are renamed into
 *   place. SFTP v3 (OpenSSH) refuses to rename onto an existing file and
 *   libssh2 1.10 has no posix-rename, so an existing file is first renamed
 *   aside to another temp name, the new one renamed in, then the old one
 *   removed: at every moment one complete version exists under a name the
 *   listing shows or hides, never a half-written file.
 * - mtime is kept to the second (SFTP v3 has no finer time stamps).
 */
#include "storage/sftp/sftp_internal.h"

#include "core/buf.h"
#include "core/cancel.h"
#include "core/log.h"
#include "storage/dirwalk.h"
#include "storage/storage_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SFTP_NAME_MAX 255
#define SFTP_DEFAULT_MODE 0644u

static const struct storage_driver sftp_driver;

/* ---- paths ------------------------------------------------------------- */

/* The server path of key ("" = the root itself). Caller frees. */
static char *sftp_path(const struct sftp_priv *p, const char *key, size_t key_len)
{
    struct buf b = BUF_INIT(0);
    int rc;
    if (!p->root[0])
        rc = key_len ? buf_append(&b, key, key_len) : buf_puts(&b, ".");
    else if (!key_len)
        rc = buf_puts(&b, p->root);
    else
        rc =
            buf_printf(&b, "%s%s%.*s", p->root, strcmp(p->root, "/") ? "/" : "", (int)key_len, key);
    if (rc) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* How messages show key: "/abs/key" or "/~/rel/key" (after sftp://addr). */
static void sftp_shown(const struct sftp_priv *p, const char *key, size_t key_len, char *out,
                       size_t cap)
{
    int n = key_len > INT_MAX ? INT_MAX : (int)key_len;
    snprintf(out, cap, "%s%s%.*s", p->root_shown, n && strcmp(p->root_shown, "/") ? "/" : "", n,
             key);
}

static int sftp_fail(struct sftp_priv *p, struct sftp_conn *c, struct err *e, const char *verb,
                     const char *key, size_t key_len)
{
    char shown[4400];
    sftp_shown(p, key, key_len, shown, sizeof(shown));
    return sftp_error(p, c, e, verb, shown);
}

static int nomem(struct err *e)
{
    return err_set(e, ERR_NOMEM, "out of memory");
}

static bool attrs_have(const LIBSSH2_SFTP_ATTRIBUTES *a, unsigned long flag)
{
    return (a->flags & flag) != 0;
}

static enum dirwalk_kind attrs_kind(const LIBSSH2_SFTP_ATTRIBUTES *a)
{
    if (!attrs_have(a, LIBSSH2_SFTP_ATTR_PERMISSIONS))
        return DIRWALK_OTHER;
    switch (a->permissions & LIBSSH2_SFTP_S_IFMT) {
    case LIBSSH2_SFTP_S_IFREG:
        return DIRWALK_FILE;
    case LIBSSH2_SFTP_S_IFDIR:
        return DIRWALK_DIR;
    case LIBSSH2_SFTP_S_IFLNK:
        return DIRWALK_LINK;
    default:
        return DIRWALK_OTHER;
    }
}

static int64_t attrs_mtime(const LIBSSH2_SFTP_ATTRIBUTES *a)
{
    if (!attrs_have(a, LIBSSH2_SFTP_ATTR_ACMODTIME))
        return STORAGE_MTIME_UNKNOWN;
    return (int64_t)a->mtime * 1000000000;
}

/* Run `op` with a pooled connection, again on a fresh one when the
 * connection was lost (ERR_NET) and `retry` allows. */
#define SFTP_WITH_CONN(p, c, e, r, body)                                                           \
    do {                                                                                           \
        for (int attempt_ = 1;; attempt_++) {                                                      \
            r = sftp_conn_get(p, &c, e);                                                           \
            if (r)                                                                                 \
                break;                                                                             \
            body;                                                                                  \
            sftp_conn_put(p, c);                                                                   \
            c = NULL;                                                                              \
            if (r != ERR_NET || attempt_ >= SFTP_RETRIES || cancel_requested())                    \
                break;                                                                             \
            log_info("%s; reconnecting", e->msg);                                                  \
        }                                                                                          \
    } while (0)

/* readlink into a new string; NULL on failure (c may be broken then). */
static char *sftp_readlink(struct sftp_conn *c, const char *path)
{
    char target[4096];
    int n = libssh2_sftp_symlink_ex(c->sftp, path, (unsigned)strlen(path), target,
                                    sizeof(target) - 1, LIBSSH2_SFTP_READLINK);
    if (n < 0)
        return NULL;
    target[n] = '\0';
    return strdup(target);
}

/* ---- listing ----------------------------------------------------------- */

struct sftp_list {
    struct sftp_priv *p;
    struct dirwalk *walk;
};

/* One directory, in full. Entries are passed to add() as they come; a
 * lost connection is retried only before the first one. */
static int sftp_read_dir_once(struct sftp_priv *p, struct sftp_conn *c, const char *dir,
                              dirwalk_add_fn add, void *acc, bool *added, struct err *e)
{
    size_t dlen = strlen(dir);
    char *path = sftp_path(p, dir, dlen ? dlen - 1 : 0);
    char name[4096], lpath[8192];
    LIBSSH2_SFTP_HANDLE *h = NULL;
    int r = 0;

    if (!path)
        return nomem(e);
    h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), 0, 0, LIBSSH2_SFTP_OPENDIR);
    if (!h) {
        r = sftp_fail(p, c, e, "list", dir, dlen);
        goto out;
    }
    for (;;) {
        LIBSSH2_SFTP_ATTRIBUTES a;
        memset(&a, 0, sizeof(a));
        int n = libssh2_sftp_readdir_ex(h, name, sizeof(name), NULL, 0, &a);
        if (n == 0)
            break;
        if (n < 0) {
            if (n == LIBSSH2_ERROR_BUFFER_TOO_SMALL)
                continue; /* a name longer than any file system allows */
            r = sftp_fail(p, c, e, "list", dir, dlen);
            goto out;
        }
        if (n == 1 && name[0] == '.')
            continue;
        if (n == 2 && name[0] == '.' && name[1] == '.')
            continue;
        struct dirwalk_ent de = {
            .name = name,
            .kind = attrs_kind(&a),
            .size = attrs_have(&a, LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : 0,
            .mtime_ns = attrs_mtime(&a),
            .mode = attrs_have(&a, LIBSSH2_SFTP_ATTR_PERMISSIONS) ? (a.permissions & 07777) : 0,
        };
        char *target = NULL;
        if (de.kind == DIRWALK_LINK) {
            snprintf(lpath, sizeof(lpath), "%s/%s", path, name);
            LIBSSH2_SFTP_ATTRIBUTES t;
            if (p->follow_symlinks && libssh2_sftp_stat_ex(c->sftp, lpath, (unsigned)strlen(lpath),
                                                           LIBSSH2_SFTP_STAT, &t) == 0) {
                de.kind = attrs_kind(&t);
                de.size = attrs_have(&t, LIBSSH2_SFTP_ATTR_SIZE) ? t.filesize : 0;
                de.mtime_ns = attrs_mtime(&t);
                de.mode =
                    attrs_have(&t, LIBSSH2_SFTP_ATTR_PERMISSIONS) ? (t.permissions & 07777) : 0;
            } else {
                /* not followed, or dangling: list the link itself */
                target = sftp_readlink(c, lpath);
                de.link_target = target;
                if (!target &&
                    libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_SFTP_PROTOCOL) {
                    r = sftp_fail(p, c, e, "list", dir, dlen);
                    goto out;
                }
            }
        }
        r = add(acc, &de);
        free(target);
        if (r) {
            r = nomem(e);
            goto out;
        }
        *added = true;
    }
out:
    if (h)
        libssh2_sftp_close_handle(h);
    free(path);
    return r;
}

static int sftp_read_dir(void *ctx, const char *dir, dirwalk_add_fn add, void *acc, struct err *e)
{
    struct sftp_priv *p = ctx;
    struct sftp_conn *c = NULL;
    bool added = false;
    int r;
    for (int attempt = 1;; attempt++) {
        r = sftp_conn_get(p, &c, e);
        if (r)
            return r;
        r = sftp_read_dir_once(p, c, dir, add, acc, &added, e);
        sftp_conn_put(p, c);
        if (r != ERR_NET || added || attempt >= SFTP_RETRIES || cancel_requested())
            return r;
        log_info("%s; reconnecting", e->msg);
    }
}

static const struct dirwalk_ops sftp_walk_ops = {.read_dir = sftp_read_dir};

static int sftp_list_open(struct storage *st, const char *prefix, void **state, struct err *e)
{
    struct dirwalk *w;
    int r = dirwalk_open(st, &sftp_walk_ops, st->priv, prefix, &w, e);
    if (r)
        return r;
    *state = w;
    return 0;
}

static int sftp_list_next(void *state, struct storage_entry *ent, struct err *e)
{
    return dirwalk_next(state, ent, e);
}

static void sftp_list_close(void *state)
{
    dirwalk_close(state);
}

/* ---- stat -------------------------------------------------------------- */

static int sftp_stat_once(struct sftp_priv *p, struct sftp_conn *c, const char *key,
                          struct storage_entry *ent, struct err *e)
{
    char *path = sftp_path(p, key, strlen(key));
    LIBSSH2_SFTP_ATTRIBUTES a;
    int r = 0;
    if (!path)
        return nomem(e);
    int type = p->follow_symlinks ? LIBSSH2_SFTP_STAT : LIBSSH2_SFTP_LSTAT;
    if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), type, &a) != 0) {
        r = sftp_fail(p, c, e, "read", key, strlen(key));
        goto out;
    }
    memset(ent, 0, sizeof(*ent));
    enum dirwalk_kind k = attrs_kind(&a);
    if (k == DIRWALK_OTHER) {
        char shown[4400];
        sftp_shown(p, key, strlen(key), shown, sizeof(shown));
        r = err_set(e, ERR_IO,
                    "cannot read 'sftp://%s%s': not a regular file, directory or symbolic link",
                    p->addr, shown);
        goto out;
    }
    ent->type = k == DIRWALK_DIR    ? STORAGE_TYPE_DIR
                : k == DIRWALK_LINK ? STORAGE_TYPE_SYMLINK
                                    : STORAGE_TYPE_FILE;
    ent->size = k == DIRWALK_FILE && attrs_have(&a, LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : 0;
    ent->mtime_ns = attrs_mtime(&a);
    ent->mode = attrs_have(&a, LIBSSH2_SFTP_ATTR_PERMISSIONS) ? (a.permissions & 07777) : 0;
    ent->key = strdup(key);
    if (k == DIRWALK_LINK) {
        ent->link_target = sftp_readlink(c, path);
        if (!ent->link_target)
            ent->link_target = strdup("");
    }
    if (!ent->key || (k == DIRWALK_LINK && !ent->link_target)) {
        storage_entry_clear(ent);
        r = nomem(e);
    }
out:
    free(path);
    return r;
}

static int sftp_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    struct sftp_priv *p = st->priv;
    struct sftp_conn *c = NULL;
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    SFTP_WITH_CONN(p, c, e, r, r = sftp_stat_once(p, c, key, ent, e));
    return r;
}

/* ---- read -------------------------------------------------------------- */

struct sftp_reader {
    struct sftp_priv *p;
    struct sftp_conn *c;
    LIBSSH2_SFTP_HANDLE *h;
    char *key;
    char *path;
    uint64_t pos;
    uint64_t left; /* UINT64_MAX: to the end */
};

static void sftp_read_close(void *state)
{
    struct sftp_reader *rd = state;
    if (!rd)
        return;
    if (rd->h)
        libssh2_sftp_close_handle(rd->h);
    sftp_conn_put(rd->p, rd->c);
    free(rd->key);
    free(rd->path);
    free(rd);
}

/* Open rd->path at rd->pos on a pooled connection; fills ent if given. */
static int sftp_reader_attach(struct sftp_reader *rd, struct storage_entry *ent, struct err *e)
{
    struct sftp_priv *p = rd->p;
    int r = sftp_conn_get(p, &rd->c, e);
    if (r)
        return r;
    rd->h = libssh2_sftp_open_ex(rd->c->sftp, rd->path, (unsigned)strlen(rd->path),
                                 LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE);
    if (!rd->h)
        return sftp_fail(p, rd->c, e, "read", rd->key, strlen(rd->key));
    LIBSSH2_SFTP_ATTRIBUTES a;
    if (libssh2_sftp_fstat_ex(rd->h, &a, 0) != 0)
        return sftp_fail(p, rd->c, e, "read", rd->key, strlen(rd->key));
    enum dirwalk_kind k = attrs_kind(&a);
    if (k != DIRWALK_FILE) {
        char shown[4400];
        sftp_shown(p, rd->key, strlen(rd->key), shown, sizeof(shown));
        return err_set(e, ERR_USAGE, "cannot read 'sftp://%s%s': %s", p->addr, shown,
                       k == DIRWALK_DIR ? "it is a directory" : "not a regular file");
    }
    if (rd->pos)
        libssh2_sftp_seek64(rd->h, rd->pos);
    /* never ask past the size the file had at open: libssh2 1.10 sends
     * read-ahead requests for the whole buffer it is given, ~140 of them
     * answered EOF for a 4 KiB file */
    if (attrs_have(&a, LIBSSH2_SFTP_ATTR_SIZE)) {
        uint64_t rest = a.filesize > rd->pos ? a.filesize - rd->pos : 0;
        if (rest < rd->left)
            rd->left = rest;
    }
    if (ent) {
        memset(ent, 0, sizeof(*ent));
        ent->key = strdup(rd->key);
        if (!ent->key)
            return nomem(e);
        ent->type = STORAGE_TYPE_FILE;
        ent->size = attrs_have(&a, LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : 0;
        ent->mtime_ns = attrs_mtime(&a);
        ent->mode = attrs_have(&a, LIBSSH2_SFTP_ATTR_PERMISSIONS) ? (a.permissions & 07777) : 0;
    }
    return 0;
}

/* Drop the reader's (lost) connection. */
static void sftp_reader_detach(struct sftp_reader *rd)
{
    if (rd->h && rd->c && !rd->c->broken)
        libssh2_sftp_close_handle(rd->h);
    rd->h = NULL;
    sftp_conn_put(rd->p, rd->c);
    rd->c = NULL;
}

static int sftp_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                          void **state, struct storage_entry *ent, struct err *e)
{
    struct sftp_priv *p = st->priv;
    struct sftp_reader *rd;
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    *state = NULL;
    rd = calloc(1, sizeof(*rd));
    if (!rd || !(rd->key = strdup(key)) || !(rd->path = sftp_path(p, key, strlen(key)))) {
        sftp_read_close(rd);
        return nomem(e);
    }
    rd->p = p;
    rd->pos = offset;
    rd->left = length < 0 ? UINT64_MAX : (uint64_t)length;
    for (int attempt = 1;; attempt++) {
        r = sftp_reader_attach(rd, ent, e);
        if (r == 0)
            break;
        if (ent)
            storage_entry_clear(ent);
        sftp_reader_detach(rd);
        if (r != ERR_NET || attempt >= SFTP_RETRIES || cancel_requested()) {
            sftp_read_close(rd);
            return r;
        }
        log_info("%s; reconnecting", e->msg);
    }
    *state = rd;
    return 0;
}

static int sftp_read(void *state, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct sftp_reader *rd = state;
    *got = 0;
    if (!rd->left || !cap)
        return 0;
    /* libssh2 1.10 keeps requests for four times the buffer it is given in
     * flight: ask for at most a quarter of what is left, or a ranged read
     * (storage/multiread) fetches and decrypts up to four times its range */
    if (rd->left != UINT64_MAX && (rd->left + 3) / 4 < cap)
        cap = (size_t)((rd->left + 3) / 4);
    for (int attempt = 1;; attempt++) {
        if (!rd->h) {
            int r = sftp_reader_attach(rd, NULL, e);
            if (r) {
                sftp_reader_detach(rd);
                if (r != ERR_NET || attempt >= SFTP_RETRIES || cancel_requested())
                    return r;
                continue;
            }
        }
        ssize_t n = libssh2_sftp_read(rd->h, buf, cap);
        if (n >= 0) {
            rd->pos += (uint64_t)n;
            if (rd->left != UINT64_MAX)
                rd->left -= (uint64_t)n;
            *got = (size_t)n;
            return 0;
        }
        int r = sftp_fail(rd->p, rd->c, e, "read", rd->key, strlen(rd->key));
        sftp_reader_detach(rd);
        if (r != ERR_NET || attempt >= SFTP_RETRIES || cancel_requested())
            return r;
        log_info("%s; reconnecting to resume at byte %llu", e->msg, (unsigned long long)rd->pos);
    }
}

/* ---- write ------------------------------------------------------------- */

struct sftp_writer {
    struct sftp_priv *p;
    struct sftp_conn *c;
    LIBSSH2_SFTP_HANDLE *h;
    char *key;
    char *dir_path; /* server path of the target directory */
    const char *base;
    char tmp[SFTP_NAME_MAX + 1];
    uint64_t pos; /* bytes the server acknowledged */
    int64_t mtime_ns;
    uint32_t mode;
};

static char *join_path(const char *dir, const char *name)
{
    struct buf b = BUF_INIT(0);
    if (buf_printf(&b, "%s/%s", dir, name)) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* mkdir -p of the directories of key[0..upto) below the root. */
static int sftp_mkdirs(struct sftp_priv *p, struct sftp_conn *c, const char *key, size_t upto,
                       struct err *e)
{
    /* fast path: the directory exists */
    char *path = sftp_path(p, key, upto);
    LIBSSH2_SFTP_ATTRIBUTES a;
    if (!path)
        return nomem(e);
    int rc = libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, &a);
    free(path);
    if (rc == 0 && attrs_kind(&a) == DIRWALK_DIR)
        return 0;
    if (rc != 0 && libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_SFTP_PROTOCOL)
        return sftp_fail(p, c, e, "write", key, upto);
    /* walk from the top, creating what is missing */
    for (size_t i = 0; i <= upto; i++) {
        if (i < upto && key[i] != '/')
            continue;
        if (i == 0)
            continue;
        path = sftp_path(p, key, i);
        if (!path)
            return nomem(e);
        rc = libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, &a);
        if (rc == 0 && attrs_kind(&a) != DIRWALK_DIR) {
            char shown[4400];
            sftp_shown(p, key, i, shown, sizeof(shown));
            free(path);
            return err_set(e, ERR_EXISTS,
                           "cannot write '%s': 'sftp://%s%s' is a file, not a directory; move it "
                           "away or choose another destination",
                           key, p->addr, shown);
        }
        if (rc != 0) {
            if (libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_SFTP_PROTOCOL) {
                free(path);
                return sftp_fail(p, c, e, "write", key, i);
            }
            if (libssh2_sftp_mkdir_ex(c->sftp, path, (unsigned)strlen(path), 0777) != 0) {
                /* created meanwhile by another thread? */
                int again = libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
                                                 LIBSSH2_SFTP_STAT, &a);
                if (again != 0 || attrs_kind(&a) != DIRWALK_DIR) {
                    free(path);
                    return sftp_fail(p, c, e, "create", key, i);
                }
            }
        }
        free(path);
    }
    return 0;
}

static void sftp_writer_free(struct sftp_writer *w, bool unlink_tmp)
{
    if (!w)
        return;
    if (w->h && w->c && !w->c->broken)
        libssh2_sftp_close_handle(w->h);
    if (unlink_tmp && w->c && !w->c->broken && w->tmp[0]) {
        char *t = join_path(w->dir_path, w->tmp);
        if (t) {
            libssh2_sftp_unlink_ex(w->c->sftp, t, (unsigned)strlen(t));
            free(t);
        }
    }
    sftp_conn_put(w->p, w->c);
    free(w->key);
    free(w->dir_path);
    free(w);
}

/* Open the temp file at w->pos (0: create it). */
static int sftp_writer_attach(struct sftp_writer *w, struct err *e)
{
    struct sftp_priv *p = w->p;
    int r;
    if (!w->c) {
        r = sftp_conn_get(p, &w->c, e);
        if (r)
            return r;
    }
    size_t dlen = (size_t)(w->base - w->key);
    bool created = w->tmp[0] != '\0';
    if (!created)
        storage_temp_name(w->tmp, sizeof(w->tmp), w->base, SFTP_NAME_MAX);
    char *t = join_path(w->dir_path, w->tmp);
    if (!t)
        return nomem(e);
    unsigned long flags = LIBSSH2_FXF_WRITE | (w->pos ? 0 : LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC);
    for (int pass = 0;; pass++) {
        w->h = libssh2_sftp_open_ex(w->c->sftp, t, (unsigned)strlen(t), flags, 0600,
                                    LIBSSH2_SFTP_OPENFILE);
        if (w->h)
            break;
        r = sftp_fail(p, w->c, e, "write", w->key, strlen(w->key));
        /* the first create in a directory that is missing (or has a file
         * in its way): make the directories, which says what blocks them,
         * and try once more; one round trip per file otherwise */
        if (created || pass > 0 || (r != ERR_NOT_FOUND && r != ERR_IO) ||
            (r = sftp_mkdirs(p, w->c, w->key, dlen ? dlen - 1 : 0, e)) != 0) {
            free(t);
            return r;
        }
        err_clear(e);
    }
    free(t);
    if (w->pos)
        libssh2_sftp_seek64(w->h, w->pos);
    return 0;
}

static void sftp_writer_detach(struct sftp_writer *w)
{
    if (w->h && w->c && !w->c->broken)
        libssh2_sftp_close_handle(w->h);
    w->h = NULL;
    sftp_conn_put(w->p, w->c);
    w->c = NULL;
}

static int sftp_write_open(struct storage *st, const char *key,
                           const struct storage_write_opts *opts, void **state, struct err *e)
{
    struct sftp_priv *p = st->priv;
    struct sftp_writer *w;
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    *state = NULL;
    const char *slash = strrchr(key, '/');
    size_t dlen = slash ? (size_t)(slash - key) : 0;
    w = calloc(1, sizeof(*w));
    if (!w || !(w->key = strdup(key)) || !(w->dir_path = sftp_path(p, key, dlen))) {
        sftp_writer_free(w, false);
        return nomem(e);
    }
    w->p = p;
    w->base = w->key + (slash ? dlen + 1 : 0);
    if (strlen(w->base) > SFTP_NAME_MAX) {
        sftp_writer_free(w, false);
        return err_set(e, ERR_USAGE, "cannot write '%s': its name is longer than %d bytes", key,
                       SFTP_NAME_MAX);
    }
    w->mtime_ns = opts ? opts->mtime_ns : STORAGE_MTIME_UNKNOWN;
    w->mode = opts && opts->mode ? (opts->mode & 07777) : SFTP_DEFAULT_MODE;
    for (int attempt = 1;; attempt++) {
        r = sftp_writer_attach(w, e);
        if (r == 0)
            break;
        sftp_writer_detach(w);
        w->tmp[0] = '\0'; /* start over with a new temp name */
        if (r != ERR_NET || attempt >= SFTP_RETRIES || cancel_requested()) {
            sftp_writer_free(w, false);
            return r;
        }
        log_info("%s; reconnecting", e->msg);
    }
    *state = w;
    return 0;
}

static int sftp_write(void *state, const void *data, size_t len, struct err *e)
{
    struct sftp_writer *w = state;
    const char *s = data;
    int attempt = 1;
    while (len) {
        if (!w->h) {
            int r = sftp_writer_attach(w, e);
            if (r) {
                sftp_writer_detach(w);
                if (r != ERR_NET || ++attempt > SFTP_RETRIES || cancel_requested())
                    return r;
                continue;
            }
        }
        ssize_t n = libssh2_sftp_write(w->h, s, len);
        if (n >= 0) {
            s += n;
            len -= (size_t)n;
            w->pos += (uint64_t)n;
            continue;
        }
        int r = sftp_fail(w->p, w->c, e, "write", w->key, strlen(w->key));
        sftp_writer_detach(w);
        if (r != ERR_NET || ++attempt > SFTP_RETRIES || cancel_requested())
            return r;
        log_info("%s; reconnecting to resume at byte %llu", e->msg, (unsigned long long)w->pos);
    }
    return 0;
}

/* Rename the finished temp file onto the key (see the top comment). */
static int sftp_put_in_place(struct sftp_writer *w, struct err *e)
{
    struct sftp_priv *p = w->p;
    struct sftp_conn *c = w->c;
    char *tmp = join_path(w->dir_path, w->tmp);
    char *dst = join_path(w->dir_path, w->base);
    char *old = NULL;
    int r = 0;
    if (!tmp || !dst) {
        r = nomem(e);
        goto out;
    }
    if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp), dst, (unsigned)strlen(dst),
                               LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
                                   LIBSSH2_SFTP_RENAME_NATIVE) == 0)
        goto out;
    if (libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_SFTP_PROTOCOL) {
        r = sftp_fail(p, c, e, "write", w->key, strlen(w->key));
        goto out;
    }
    LIBSSH2_SFTP_ATTRIBUTES a;
    if (libssh2_sftp_stat_ex(c->sftp, dst, (unsigned)strlen(dst), LIBSSH2_SFTP_LSTAT, &a) != 0) {
        /* nothing in the way: the rename failed for another reason */
        r = sftp_fail(p, c, e, "write", w->key, strlen(w->key));
        goto out;
    }
    if (attrs_kind(&a) == DIRWALK_DIR) {
        char shown[4400];
        sftp_shown(p, w->key, strlen(w->key), shown, sizeof(shown));
        r = err_set(e, ERR_EXISTS,
                    "cannot write 'sftp://%s%s': a directory has that name; move it away or "
                    "choose another destination",
                    p->addr, shown);
        goto out;
    }
    char aside[SFTP_NAME_MAX + 1];
    storage_temp_name(aside, sizeof(aside), w->base, SFTP_NAME_MAX);
    old = join_path(w->dir_path, aside);
    if (!old) {
        r = nomem(e);
        goto out;
    }
    if (libssh2_sftp_rename_ex(c->sftp, dst, (unsigned)strlen(dst), old, (unsigned)strlen(old),
                               0) != 0) {
        r = sftp_fail(p, c, e, "replace", w->key, strlen(w->key));
        goto out;
    }
    if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp), dst, (unsigned)strlen(dst),
                               0) != 0) {
        r = sftp_fail(p, c, e, "write", w->key, strlen(w->key));
        /* put the old version back */
        if (!c->broken)
            libssh2_sftp_rename_ex(c->sftp, old, (unsigned)strlen(old), dst, (unsigned)strlen(dst),
                                   0);
        goto out;
    }
    if (libssh2_sftp_unlink_ex(c->sftp, old, (unsigned)strlen(old)) != 0)
        log_warn("replaced 'sftp://%s/%s', but could not remove the old version '%s'", p->addr,
                 w->key, aside);
out:
    free(tmp);
    free(dst);
    free(old);
    return r;
}

static int sftp_write_commit(void *state, struct err *e)
{
    struct sftp_writer *w = state;
    struct sftp_priv *p = w->p;
    bool placed = false;
    int r = 0;
    if (!w->h) {
        r = sftp_writer_attach(w, e);
        if (r)
            goto out;
    }
    LIBSSH2_SFTP_ATTRIBUTES a;
    memset(&a, 0, sizeof(a));
    a.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
    a.permissions = w->mode;
    if (w->mtime_ns != STORAGE_MTIME_UNKNOWN) {
        int64_t sec = w->mtime_ns / 1000000000;
        if (w->mtime_ns % 1000000000 < 0)
            sec--;
        a.flags |= LIBSSH2_SFTP_ATTR_ACMODTIME;
        a.mtime = a.atime = (unsigned long)sec;
    }
    if (libssh2_sftp_fsetstat(w->h, &a) != 0) {
        r = sftp_fail(p, w->c, e, "set the time of", w->key, strlen(w->key));
        goto out;
    }
    int rc = libssh2_sftp_close_handle(w->h);
    w->h = NULL;
    if (rc != 0) {
        /* the close is where a server reports a failed flush */
        r = sftp_fail(p, w->c, e, "write", w->key, strlen(w->key));
        goto out;
    }
    r = sftp_put_in_place(w, e);
    placed = r == 0;
out:
    sftp_writer_free(w, !placed);
    return r;
}

/* Remove the directories of key[0..klen) left empty, deepest first, up to
 * (not including) the root; stops at the first that stays. */
static void sftp_prune_parents(struct sftp_priv *p, struct sftp_conn *c, const char *key,
                               size_t klen)
{
    for (size_t n = klen; n > 0 && !c->broken; n--) {
        if (key[n - 1] != '/')
            continue;
        char *d = sftp_path(p, key, n - 1);
        if (!d)
            break;
        int rc = libssh2_sftp_rmdir_ex(c->sftp, d, (unsigned)strlen(d));
        free(d);
        if (rc != 0) {
            if (libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_SFTP_PROTOCOL)
                c->broken = true;
            break;
        }
    }
}

/* Abort leaves nothing: the temp file, and the directories left empty. */
static void sftp_write_abort(void *state)
{
    struct sftp_writer *w = state;
    if (w->c && !w->c->broken && w->tmp[0]) {
        if (w->h)
            libssh2_sftp_close_handle(w->h);
        w->h = NULL;
        char *t = join_path(w->dir_path, w->tmp);
        if (t) {
            libssh2_sftp_unlink_ex(w->c->sftp, t, (unsigned)strlen(t));
            free(t);
        }
        w->tmp[0] = '\0';
        sftp_prune_parents(w->p, w->c, w->key, strlen(w->key));
    }
    sftp_writer_free(w, false);
}

/* ---- remove ------------------------------------------------------------ */

static int sftp_remove_once(struct sftp_priv *p, struct sftp_conn *c, const char *key,
                            struct err *e)
{
    size_t klen = strlen(key);
    char *path = sftp_path(p, key, klen);
    if (!path)
        return nomem(e);
    int rc = libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path));
    free(path);
    if (rc != 0) {
        int r = sftp_fail(p, c, e, "remove", key, klen);
        if (r == ERR_NOT_FOUND) {
            char shown[4400];
            sftp_shown(p, key, klen, shown, sizeof(shown));
            err_set(e, ERR_NOT_FOUND, "cannot remove 'sftp://%s%s': it does not exist", p->addr,
                    shown);
        }
        return r;
    }
    sftp_prune_parents(p, c, key, klen);
    return 0;
}

static int sftp_remove(struct storage *st, const char *key, struct err *e)
{
    struct sftp_priv *p = st->priv;
    struct sftp_conn *c = NULL;
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    SFTP_WITH_CONN(p, c, e, r, r = sftp_remove_once(p, c, key, e));
    return r;
}

/* ---- root -------------------------------------------------------------- */

static int sftp_check_root_once(struct storage *st, struct sftp_conn *c, bool for_write,
                                bool create, struct err *e)
{
    struct sftp_priv *p = st->priv;
    const char *role = for_write ? "destination" : "source";
    char *path = sftp_path(p, "", 0);
    LIBSSH2_SFTP_ATTRIBUTES a;
    int r = 0;
    if (!path)
        return nomem(e);
    if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, &a) != 0) {
        r = sftp_fail(p, c, e, for_write ? "write to" : "read", "", 0);
        if (r != ERR_NOT_FOUND)
            goto out;
        if (!create) {
            r = err_set(e, ERR_NOT_FOUND, "%s '%s' does not exist on the server; check the path",
                        role, st->display);
            goto out;
        }
        err_clear(e);
        r = 0;
        /* mkdir -p of the root: every '/'-separated prefix of the path */
        for (size_t i = 1; path[i - 1]; i++) {
            if (path[i] != '/' && path[i] != '\0')
                continue;
            char save = path[i];
            path[i] = '\0';
            if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT,
                                     &a) != 0 &&
                libssh2_sftp_mkdir_ex(c->sftp, path, (unsigned)strlen(path), 0777) != 0) {
                r = sftp_error(p, c, e, "create", path);
                path[i] = save;
                goto out;
            }
            path[i] = save;
            if (!save)
                break;
        }
        if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, &a) !=
            0) {
            r = sftp_fail(p, c, e, "create", "", 0);
            goto out;
        }
    }
    if (attrs_kind(&a) != DIRWALK_DIR)
        r = err_set(e, ERR_USAGE, "%s '%s' is %s, not a directory; give a directory", role,
                    st->display, attrs_kind(&a) == DIRWALK_FILE ? "a file" : "a special file");
out:
    free(path);
    return r;
}

static int sftp_check_root(struct storage *st, bool for_write, bool create, struct err *e)
{
    struct sftp_priv *p = st->priv;
    struct sftp_conn *c = NULL;
    int r;
    SFTP_WITH_CONN(p, c, e, r, r = sftp_check_root_once(st, c, for_write, create, e));
    return r;
}

/* ---- open/close -------------------------------------------------------- */

static void wipe(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void sftp_priv_free(struct sftp_priv *p)
{
    if (!p)
        return;
    sftp_pool_close(p);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->host);
    free(p->user);
    free(p->root);
    wipe(p->password);
    wipe(p->key_pem);
    free(p->key_file);
    wipe(p->key_passphrase);
    free(p->known_hosts);
    free(p->host_fingerprint);
    free(p->addr);
    free(p->root_shown);
    free(p);
}

static void sftp_close(struct storage *st)
{
    sftp_priv_free(st->priv);
    st->priv = NULL;
}

static const struct storage_driver sftp_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "sftp",
    .features = STORAGE_FEATURE_RANGE_READ | STORAGE_FEATURE_MTIME | STORAGE_FEATURE_SYMLINK |
                STORAGE_FEATURE_LIST_MTIME | STORAGE_FEATURE_PARALLEL_READ,
    .hashes = 0,
    .mtime_precision_ns = 1000000000,
    .list_open = sftp_list_open,
    .list_next = sftp_list_next,
    .list_close = sftp_list_close,
    .stat = sftp_stat,
    .read_open = sftp_read_open,
    .read = sftp_read,
    .read_close = sftp_read_close,
    .write_open = sftp_write_open,
    .write = sftp_write,
    .write_commit = sftp_write_commit,
    .write_abort = sftp_write_abort,
    .remove = sftp_remove,
    .copy_from = NULL,
    .check_root = sftp_check_root,
    .close = sftp_close,
};

static int dup_or_null(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

int sftp_storage_open(const struct sftp_opts *o, const char *display, struct storage **out,
                      struct err *e)
{
    *out = NULL;
    if (!o->host || !*o->host)
        return err_set(e, ERR_USAGE, "SFTP remote has no host; write it as sftp://user@host/path");
    if (!o->user || !*o->user)
        return err_set(e, ERR_USAGE, "SFTP remote has no user; write it as sftp://user@host/path");
    if (o->host_fingerprint && strncmp(o->host_fingerprint, "SHA256:", 7) != 0)
        return err_set(e, ERR_CONFIG,
                       "host_fingerprint '%s' is not a SHA256 fingerprint; give it as "
                       "'SHA256:...' (ssh-keygen -lf KEY.pub prints it)",
                       o->host_fingerprint);
    struct sftp_priv *p = calloc(1, sizeof(*p));
    if (!p)
        return nomem(e);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->port = o->port ? o->port : 22;
    p->default_keys = o->default_keys;
    p->follow_symlinks = o->follow_symlinks;
    p->timeout = o->timeout > 0 ? o->timeout : SFTP_DEFAULT_TIMEOUT;
    p->max_conns = o->connections > 0 ? o->connections : SFTP_DEFAULT_CONNECTIONS;
    /* the root without trailing '/' (except "/" itself) */
    const char *root = o->path ? o->path : "";
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    struct buf addr = BUF_INIT(0), shown = BUF_INIT(0);
    int rc = 0;
    if (strchr(o->host, ':'))
        rc |= buf_printf(&addr, "[%s]:%d", o->host, p->port);
    else
        rc |= buf_printf(&addr, "%s:%d", o->host, p->port);
    if (rl && root[0] == '/')
        rc |= buf_printf(&shown, "%.*s", (int)rl, root);
    else
        rc |= buf_printf(&shown, "/~%s%.*s", rl ? "/" : "", (int)rl, root);
    p->addr = buf_detach(&addr);
    p->root_shown = buf_detach(&shown);
    p->root = strndup(root, rl);
    if (rc || !p->addr || !p->root_shown || !p->root || dup_or_null(&p->host, o->host) ||
        dup_or_null(&p->user, o->user) || dup_or_null(&p->password, o->password) ||
        dup_or_null(&p->key_pem, o->key_pem) || dup_or_null(&p->key_file, o->key_file) ||
        dup_or_null(&p->key_passphrase, o->key_passphrase) ||
        dup_or_null(&p->known_hosts, o->known_hosts) ||
        dup_or_null(&p->host_fingerprint, o->host_fingerprint)) {
        sftp_priv_free(p);
        return nomem(e);
    }
    /* never in a log line, whatever message might quote them */
    if (p->password && *p->password)
        log_add_secret(p->password);
    if (p->key_passphrase && *p->key_passphrase)
        log_add_secret(p->key_passphrase);
    char endpoint[1024];
    snprintf(endpoint, sizeof(endpoint), "sftp://%s@%s", p->user, p->addr);
    struct storage *st = storage_new(&sftp_driver, display, endpoint, p);
    if (!st) {
        sftp_priv_free(p);
        return nomem(e);
    }
    *out = st;
    return 0;
}
