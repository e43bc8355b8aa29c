/*
 * smb.c - the SMB storage driver (Windows and Samba file shares), over
 * libsmbclient loaded at run time (smb_dl.c).
 *
 * Design notes (see smb.h for the contract):
 *
 * - Keys map to paths below smb://host/share/root, each segment
 *   percent-encoded (smb_conn.c). libsmbclient follows symbolic links on
 *   the server itself (Samba does), so the listing has files and
 *   directories only.
 *
 * - Listing is dirwalk's byte-ordered walk; read_dir reads one directory
 *   with opendir/readdirplus, which gives type, size and mtime (100 ns)
 *   without one stat per file. SMB has no POSIX mode: entries carry 0.
 *
 * - Writes: smb_write.c (temp name, rename into place, names SMB cannot
 *   hold refused up front).
 *
 * - A lost connection is re-opened (SMB_RETRIES attempts) for listings,
 *   stats and reads; a read goes on at the byte it had reached.
 *
 * - Shares are usually case-insensitive: "A" and "a" are one file there.
 */
#include "storage/smb/smb.h"

#include "core/buf.h"
#include "core/log.h"
#include "storage/dirwalk.h"
#include "storage/smb/smb_internal.h"
#include "storage/storage_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SMB_DEFAULT_TIMEOUT_S 60
#define SMB_DEFAULT_CONNECTIONS 4
#define SMB_FILE_ATTRIBUTE_DIRECTORY 0x10

static const struct storage_driver smb_driver;

/* ---- helpers ------------------------------------------------------------ */

static int64_t smb_ts_ns(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A key that names a path libsmbclient would read differently: '\' is a
 * separator to SMB. */
int smb_key_check(const struct smb_priv *p, const char *key, bool is_prefix, struct err *e)
{
    int r = storage_key_check(key, is_prefix, e);
    if (r)
        return r;
    if (strchr(key, '\\'))
        return err_set(e, ERR_USAGE,
                       "invalid key '%s' for '%s': SMB names cannot contain '\\' (it separates "
                       "directories there)",
                       key, storage_display(p->st));
    return 0;
}

/* storage_temp_name with the base cut at a UTF-8 character boundary: a cut
 * inside a character would make a name the server refuses. */
void smb_temp_name(char *out, size_t cap, const char *base)
{
    char cut[SMB_NAME_MAX + 1];
    size_t room = SMB_NAME_MAX - (1 + strlen(STORAGE_TMP_MARK) + 16);
    size_t n = strlen(base);
    if (n > room) {
        n = room;
        while (n && ((unsigned char)base[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(cut, base, n);
    cut[n] = '\0';
    storage_temp_name(out, cap, cut, SMB_NAME_MAX);
}

/* The URL of `name` in the directory of key (key[0..dirlen) ends in '/'
 * or is empty). */
char *smb_sibling_url(const struct smb_priv *p, const char *key, size_t dirlen, const char *name)
{
    size_t nl = strlen(name);
    char *k = malloc(dirlen + nl + 1);
    if (!k)
        return NULL;
    memcpy(k, key, dirlen);
    memcpy(k + dirlen, name, nl + 1);
    char *url = smb_url(p, k);
    free(k);
    return url;
}

/* stat of key[0..len) below the root; 0 or an errno value. */
static int smb_stat_n(const struct smb_priv *p, struct smb_conn *c, const char *key, size_t len,
                      struct stat *sb)
{
    char *k = strndup(key, len);
    char *url = k ? smb_url(p, k) : NULL;
    int rc, en = ENOMEM;
    if (url) {
        SMB_CALL(rc, c->stat(c->ctx, url, sb));
        en = rc == 0 ? 0 : (errno ? errno : EIO);
    }
    free(url);
    free(k);
    return en;
}

/*
 * A write or a root check of key failed with "no such file": is one of
 * the directories on its path (key[0..upto)) a file? Then fill e saying so
 * (ERR_EXISTS) and return it; 0 when none is.
 */
int smb_find_blocking_file(struct smb_priv *p, struct smb_conn *c, const char *key, size_t upto,
                           const char *verb, struct err *e)
{
    for (size_t i = 0; i < upto; i++) {
        if (key[i] != '/')
            continue;
        struct stat sb;
        int en = smb_stat_n(p, c, key, i, &sb);
        if (en == ENOENT)
            return 0;
        if (en)
            return smb_errno_n(p, e, en, verb, key, i);
        if (!S_ISDIR(sb.st_mode))
            return err_set(e, ERR_EXISTS,
                           "cannot %s '%s/%s': '%s/%.*s' is a file, not a directory; move it away "
                           "or choose another destination",
                           verb, storage_display(p->st), key, storage_display(p->st), (int)i, key);
    }
    return 0;
}

/* mkdir of share-relative rel[0..len); 0 when made or already there, else
 * an errno value. */
static int smb_mkdir1(struct smb_priv *p, struct smb_conn *c, const char *rel, size_t len)
{
    char *url = smb_share_path_url(p, rel, len);
    if (!url)
        return ENOMEM;
    int rc;
    SMB_CALL(rc, c->mkdir(c->ctx, url, 0777));
    int en = rc == 0 ? 0 : (errno ? errno : EIO);
    free(url);
    return en == EEXIST ? 0 : en;
}

/* mkdir -p of the root and key[0..dirlen) (dirlen 0: the root only). */
int smb_mkdirs(struct smb_priv *p, struct smb_conn *c, const char *key, size_t dirlen,
               struct err *e)
{
    struct buf rel = BUF_INIT(0);
    size_t rootlen = strlen(p->root);
    int r = 0, en = 0;

    if (buf_puts(&rel, p->root) || (rootlen && dirlen && buf_puts(&rel, "/")) ||
        buf_append(&rel, key, dirlen ? dirlen - 1 : 0) || buf_puts(&rel, "")) {
        r = err_set(e, ERR_NOMEM, "out of memory creating directories on %s", p->server);
        goto out;
    }
    size_t len = rel.len, end = len;
    if (!len)
        goto out; /* the share's top always exists */
    for (;;) {    /* up, to the deepest directory that exists */
        en = smb_mkdir1(p, c, rel.data, end);
        if (en == 0)
            break;
        if (en != ENOENT)
            goto fail;
        size_t k = end;
        while (k && rel.data[k - 1] != '/')
            k--;
        if (!k)
            goto fail; /* not even the top level could be made */
        end = k - 1;
    }
    while (end < len) { /* and down again */
        size_t k = end + 1;
        while (k < len && rel.data[k] != '/')
            k++;
        end = k;
        en = smb_mkdir1(p, c, rel.data, end);
        if (en)
            goto fail;
    }
    goto out;
fail:
    if (!c->ok && !smb_errno_is_net(en)) {
        r = smb_fail(p, c, en, "create", "", e); /* the logon or the share? */
        if (!c->ok)
            goto out;
    }
    /* name the directory below the root if it is one, else the root */
    size_t off = rootlen + (rootlen ? 1 : 0);
    if (end > off)
        r = smb_errno_n(p, e, en, "create directory", rel.data + off, end - off);
    else
        r = smb_errno_n(p, e, en, "create", "", 0);
out:
    buf_release(&rel);
    return r;
}

/* ---- listing ------------------------------------------------------------ */

static int smb_read_dir_once(void *ctx, const char *dir, dirwalk_add_fn add, void *acc,
                             struct err *e)
{
    struct smb_priv *p = ctx;
    struct smb_conn *c = NULL;
    char *url = NULL;
    int r = smb_conn_get(p, &c, e);
    if (r)
        return r;
    url = smb_url(p, dir);
    if (!url) {
        r = err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(p->st));
        goto out;
    }
    /* the whole directory in one hold of the lock: libsmbclient reads it
     * all at opendir, readdirplus only walks its memory */
    smb_api_lock();
    errno = 0;
    SMBCFILE *d = c->opendir(c->ctx, url);
    int en = errno;
    if (d) {
        for (;;) {
            const struct libsmb_file_info *fi = c->readdirplus(c->ctx, d);
            if (!fi)
                break;
            if (!fi->name)
                continue;
            struct dirwalk_ent de = {
                .name = fi->name,
                .kind = (fi->attrs & SMB_FILE_ATTRIBUTE_DIRECTORY) ? DIRWALK_DIR : DIRWALK_FILE,
                .size = fi->size,
                .mtime_ns = smb_ts_ns(fi->mtime_ts),
                .mode = 0,
            };
            r = add(acc, &de);
            if (r)
                break;
        }
        c->closedir(c->ctx, d);
    }
    smb_api_unlock();
    if (!d) {
        size_t dl = strlen(dir);
        if (smb_errno_is_net(en)) {
            r = smb_errno_n(p, e, en, "list", dir, dl);
            smb_conn_put(p, c, true);
            c = NULL;
            goto out;
        }
        if (!c->ok) {
            r = smb_fail(p, c, en, "list", dir, e); /* the logon or the share? */
            if (!c->ok)
                goto out;
        }
        if (en == ENOTDIR || en == ENOENT)
            r = err_set(e, ERR_NOT_FOUND, "cannot list '%s%s%.*s': no such directory",
                        storage_display(p->st), dl ? "/" : "", (int)(dl ? dl - 1 : 0), dir);
        else
            r = smb_errno_n(p, e, en, "list", dir, dl ? dl - 1 : 0);
        goto out;
    }
    c->ok = true;
    if (r == ERR_NOMEM)
        r = err_set(e, ERR_NOMEM, "out of memory listing '%s'", storage_display(p->st));
out:
    smb_conn_put(p, c, false);
    free(url);
    return r;
}

/* The whole directory is read at opendir, before add() is called: a retry
 * after a lost connection adds nothing twice. */
static int smb_read_dir(void *ctx, const char *dir, dirwalk_add_fn add, void *acc, struct err *e)
{
    for (int attempt = 1;; attempt++) {
        int r = smb_read_dir_once(ctx, dir, add, acc, e);
        if (r != ERR_NET || attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
            return r;
        log_info("%s; reconnecting", e->msg);
    }
}

static const struct dirwalk_ops smb_walk_ops = {.read_dir = smb_read_dir};

static int smb_list_open(struct storage *st, const char *prefix, void **state, struct err *e)
{
    struct smb_priv *p = st->priv;
    struct dirwalk *w = NULL;
    *state = NULL;
    int r = smb_key_check(p, prefix, true, e);
    if (r)
        return r;
    r = dirwalk_open(st, &smb_walk_ops, p, prefix, &w, e);
    if (r)
        return r;
    *state = w;
    return 0;
}

static int smb_list_next(void *state, struct storage_entry *ent, struct err *e)
{
    return dirwalk_next(state, ent, e);
}

static void smb_list_close(void *state)
{
    dirwalk_close(state);
}

/* ---- stat and read -------------------------------------------------------- */

static int smb_entry_fill(struct storage_entry *ent, const char *key, const struct stat *sb)
{
    ent->key = strdup(key);
    if (!ent->key)
        return ERR_NOMEM;
    ent->type = S_ISDIR(sb->st_mode) ? STORAGE_TYPE_DIR : STORAGE_TYPE_FILE;
    ent->size = S_ISDIR(sb->st_mode) ? 0 : (uint64_t)sb->st_size;
    ent->mtime_ns = smb_ts_ns(sb->st_mtim);
    ent->mode = 0; /* SMB has no POSIX mode; libsmbclient makes one up */
    ent->md5[0] = '\0';
    ent->sha256[0] = '\0';
    return 0;
}

static int smb_stat_once(struct storage *st, const char *key, struct storage_entry *ent,
                         struct err *e)
{
    struct smb_priv *p = st->priv;
    struct smb_conn *c = NULL;
    struct stat sb;
    int r = smb_conn_get(p, &c, e);
    if (r)
        return r;
    char *url = smb_url(p, key);
    if (!url) {
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
        goto out;
    }
    int rc;
    SMB_CALL(rc, c->stat(c->ctx, url, &sb));
    if (rc < 0) {
        int en = errno ? errno : EIO;
        r = smb_fail(p, c, en, "read", key, e);
        if (r == ERR_NOT_FOUND && (en == ENOENT || en == ENOTDIR) && c->ok)
            r = err_set(e, ERR_NOT_FOUND, "'%s/%s' does not exist", storage_display(st), key);
        goto out;
    }
    c->ok = true;
    if (smb_entry_fill(ent, key, &sb))
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
out:
    smb_conn_put(p, c, r == ERR_NET);
    free(url);
    return r;
}

static int smb_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    int r = smb_key_check(st->priv, key, false, e);
    if (r)
        return r;
    for (int attempt = 1;; attempt++) {
        r = smb_stat_once(st, key, ent, e);
        if (r != ERR_NET || attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
            return r;
        log_info("%s; reconnecting", e->msg);
    }
}

struct smb_reader {
    struct smb_priv *p;
    struct smb_conn *c;
    SMBCFILE *f;
    char *key;
    char *url;
    uint64_t pos;  /* next byte to read */
    uint64_t left; /* UINT64_MAX: to the end */
};

/* Close the file and give back the context (freed after a lost
 * connection). */
static void smb_reader_detach(struct smb_reader *rd, bool broken)
{
    if (rd->f && !broken) {
        int rc;
        SMB_CALL(rc, rd->c->close(rd->c->ctx, rd->f));
        (void)rc;
    }
    rd->f = NULL;
    smb_conn_put(rd->p, rd->c, broken);
    rd->c = NULL;
}

/* Open the file on a context, at rd->pos; sb (if not NULL) receives what
 * the server says of it. */
static int smb_reader_attach(struct smb_reader *rd, struct stat *sb, struct err *e)
{
    struct smb_priv *p = rd->p;
    const char *d = storage_display(p->st);
    int r = smb_conn_get(p, &rd->c, e);
    if (r)
        return r;
    struct smb_conn *c = rd->c;
    SMB_CALL(rd->f, c->open(c->ctx, rd->url, O_RDONLY, 0));
    if (!rd->f) {
        int en = errno ? errno : EIO;
        if (en == EISDIR)
            return err_set(e, ERR_USAGE, "cannot read '%s/%s': it is a directory", d, rd->key);
        r = smb_fail(p, c, en, "read", rd->key, e);
        if (r == ERR_NOT_FOUND && (en == ENOENT || en == ENOTDIR) && c->ok)
            r = err_set(e, ERR_NOT_FOUND, "'%s/%s' does not exist", d, rd->key);
        return r;
    }
    c->ok = true;
    int rc;
    if (sb) {
        SMB_CALL(rc, c->fstat(c->ctx, rd->f, sb));
        if (rc < 0)
            return smb_fail(p, c, errno ? errno : EIO, "read", rd->key, e);
        if (S_ISDIR(sb->st_mode))
            return err_set(e, ERR_USAGE, "cannot read '%s/%s': it is a directory", d, rd->key);
    }
    if (rd->pos) {
        off_t at;
        SMB_CALL(at, c->lseek(c->ctx, rd->f, (off_t)rd->pos, SEEK_SET));
        if (at < 0)
            return smb_fail(p, c, errno ? errno : EIO, "read", rd->key, e);
    }
    return 0;
}

static void smb_read_close(void *state)
{
    struct smb_reader *rd = state;
    if (!rd)
        return;
    smb_reader_detach(rd, false);
    free(rd->url);
    free(rd->key);
    free(rd);
}

static int smb_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                         void **state, struct storage_entry *ent, struct err *e)
{
    struct smb_priv *p = st->priv;
    struct smb_reader *rd = NULL;
    struct stat sb;
    int r;

    *state = NULL;
    r = smb_key_check(p, key, false, e);
    if (r)
        return r;
    rd = calloc(1, sizeof(*rd));
    if (!rd || !(rd->key = strdup(key)) || !(rd->url = smb_url(p, key))) {
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
        goto out;
    }
    rd->p = p;
    rd->pos = offset;
    rd->left = length < 0 ? UINT64_MAX : (uint64_t)length;
    for (int attempt = 1;; attempt++) {
        r = smb_reader_attach(rd, &sb, e);
        if (!r)
            break;
        smb_reader_detach(rd, r == ERR_NET);
        if (r != ERR_NET || attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
            goto out;
        log_info("%s; reconnecting", e->msg);
    }
    if (ent && smb_entry_fill(ent, key, &sb)) {
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
        goto out;
    }
    *state = rd;
    rd = NULL;
out:
    smb_read_close(rd);
    return r;
}

static int smb_read(void *state, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct smb_reader *rd = state;
    *got = 0;
    if (rd->left < cap)
        cap = (size_t)rd->left;
    if (cap > SMB_IO_SIZE * 8)
        cap = SMB_IO_SIZE * 8;
    if (!cap)
        return 0;
    for (int attempt = 1;; attempt++) {
        int r;
        if (!rd->f && (r = smb_reader_attach(rd, NULL, e)) != 0) {
            smb_reader_detach(rd, r == ERR_NET);
            if (r != ERR_NET || attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
                return r;
            continue;
        }
        ssize_t n;
        SMB_CALL(n, rd->c->read(rd->c->ctx, rd->f, buf, cap));
        if (n >= 0) {
            rd->pos += (uint64_t)n;
            if (rd->left != UINT64_MAX)
                rd->left -= (uint64_t)n;
            *got = (size_t)n;
            return 0;
        }
        int en = errno ? errno : EIO;
        r = smb_errno_n(rd->p, e, en, "read", rd->key, strlen(rd->key));
        if (!smb_errno_is_net(en))
            return r;
        smb_reader_detach(rd, true);
        if (attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
            return r;
        log_info("%s; reconnecting to resume at byte %llu", e->msg, (unsigned long long)rd->pos);
    }
}

/* ---- remove ------------------------------------------------------------- */

/* Remove the directories of key left empty, deepest first, up to (not
 * including) the root. Best effort: stops at the first one that stays. */
void smb_prune_parents(struct smb_priv *p, struct smb_conn *c, const char *key)
{
    char *k = strdup(key);
    if (!k)
        return;
    for (;;) {
        char *slash = strrchr(k, '/');
        if (!slash)
            break;
        *slash = '\0';
        char *url = smb_url(p, k);
        if (!url)
            break;
        int rc;
        SMB_CALL(rc, c->rmdir(c->ctx, url));
        int en = errno;
        free(url);
        if (rc < 0) {
            if (en != ENOTEMPTY && en != EEXIST && en != ENOENT)
                log_debug("not removing directory '%s/%s': %s", storage_display(p->st), k,
                          strerror(en ? en : EIO));
            break;
        }
    }
    free(k);
}

static int smb_remove(struct storage *st, const char *key, struct err *e)
{
    struct smb_priv *p = st->priv;
    struct smb_conn *c = NULL;
    struct stat sb;
    int r = smb_key_check(p, key, false, e);
    if (r)
        return r;
    r = smb_conn_get(p, &c, e);
    if (r)
        return r;
    char *url = smb_url(p, key);
    if (!url) {
        r = err_set(e, ERR_NOMEM, "out of memory removing '%s'", key);
        goto out;
    }
    /* libsmbclient's unlink of a directory reports success and does
     * nothing: look first */
    int rc;
    SMB_CALL(rc, c->stat(c->ctx, url, &sb));
    if (rc == 0 && S_ISDIR(sb.st_mode)) {
        r = err_set(e, ERR_USAGE, "cannot remove '%s/%s': it is a directory", storage_display(st),
                    key);
        goto out;
    }
    if (rc == 0)
        SMB_CALL(rc, c->unlink(c->ctx, url));
    if (rc < 0) {
        int en = errno ? errno : EIO;
        r = smb_fail(p, c, en, "remove", key, e);
        if (r == ERR_NOT_FOUND && en == ENOENT && c->ok)
            r = err_set(e, ERR_NOT_FOUND, "cannot remove '%s/%s': it does not exist",
                        storage_display(st), key);
        goto out;
    }
    c->ok = true;
    smb_prune_parents(p, c, key);
out:
    smb_conn_put(p, c, r == ERR_NET);
    free(url);
    return r;
}

/* ---- root --------------------------------------------------------------- */

static int smb_check_root(struct storage *st, bool for_write, bool create, struct err *e)
{
    struct smb_priv *p = st->priv;
    const char *role = for_write ? "destination" : "source";
    struct smb_conn *c = NULL;
    struct stat sb;
    int r, rc;
    char *url = NULL;

    r = smb_conn_get(p, &c, e);
    if (r)
        return r;
    url = smb_url(p, "");
    if (!url) {
        r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", storage_display(st));
        goto out;
    }
    SMB_CALL(rc, c->stat(c->ctx, url, &sb));
    if (rc < 0) {
        int en = errno ? errno : EIO;
        if (!c->ok && !smb_errno_is_net(en)) {
            r = smb_fail(p, c, en, for_write ? "write to" : "read", "", e);
            if (!c->ok) /* the logon or the share failed */
                goto out;
            err_clear(e);
        }
        if (en != ENOENT && en != ENOTDIR) {
            r = smb_errno_n(p, e, en, for_write ? "write to" : "read", "", 0);
            goto out;
        }
        /* a directory on the way may be a file */
        size_t rl = strlen(p->root);
        for (size_t i = 1; i <= rl; i++) {
            if (i < rl && p->root[i] != '/')
                continue;
            char *u = smb_share_path_url(p, p->root, i);
            if (!u) {
                r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", storage_display(st));
                goto out;
            }
            SMB_CALL(rc, c->stat(c->ctx, u, &sb));
            free(u);
            if (rc < 0)
                break;
            if (!S_ISDIR(sb.st_mode)) {
                r = err_set(e, ERR_USAGE,
                            "%s '%s' cannot be a directory: '%.*s' in share '%s' is a file; give "
                            "a directory",
                            role, storage_display(st), (int)i, p->root, p->share);
                goto out;
            }
        }
        if (!create) {
            r = err_set(e, ERR_NOT_FOUND, "%s '%s' does not exist; check the path", role,
                        storage_display(st));
            goto out;
        }
        r = smb_mkdirs(p, c, "", 0, e);
        if (r)
            goto out;
        SMB_CALL(rc, c->stat(c->ctx, url, &sb));
        if (rc < 0) {
            r = smb_errno_n(p, e, errno ? errno : EIO, "create", "", 0);
            goto out;
        }
    }
    c->ok = true;
    if (!S_ISDIR(sb.st_mode)) {
        r = err_set(e, ERR_USAGE, "%s '%s' is a file, not a directory; give a directory", role,
                    storage_display(st));
        goto out;
    }
    if (for_write) {
        /* SMB has no access(): create and delete a temp file */
        char tmp[SMB_NAME_MAX + 1];
        smb_temp_name(tmp, sizeof(tmp), "write-check");
        char *tu = smb_url(p, tmp);
        if (!tu) {
            r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", storage_display(st));
            goto out;
        }
        SMBCFILE *f;
        SMB_CALL(f, c->open(c->ctx, tu, O_WRONLY | O_CREAT | O_EXCL, 0644));
        int en = errno;
        if (f) {
            SMB_CALL(rc, c->close(c->ctx, f));
            SMB_CALL(rc, c->unlink(c->ctx, tu));
        }
        free(tu);
        if (!f) {
            char who[300];
            if (p->user[0])
                snprintf(who, sizeof(who), "user '%s'", p->user);
            else
                snprintf(who, sizeof(who), "guests");
            if (en == EACCES || en == EPERM)
                r = err_set(e, ERR_PERM,
                            "cannot write to %s '%s': permission denied; check that the share "
                            "is writable and what %s may do there",
                            role, storage_display(st), who);
            else
                r = smb_errno_n(p, e, en ? en : EIO, "write to", "", 0);
            goto out;
        }
    }
out:
    smb_conn_put(p, c, r == ERR_NET);
    free(url);
    return r;
}

/* ---- open and close ------------------------------------------------------- */

static void smb_priv_free(struct smb_priv *p)
{
    if (!p)
        return;
    smb_conn_drain(p);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->host);
    free(p->share);
    free(p->root);
    free(p->domain);
    free(p->user);
    free(p->server);
    free(p->server_url);
    free(p->share_url);
    free(p->base_url);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void smb_close(struct storage *st)
{
    smb_priv_free(st->priv);
    st->priv = NULL;
}

static const struct storage_driver smb_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "smb",
    .features = STORAGE_FEATURE_RANGE_READ | STORAGE_FEATURE_MTIME | STORAGE_FEATURE_LIST_MTIME,
    .hashes = 0,
    .list_open = smb_list_open,
    .list_next = smb_list_next,
    .list_close = smb_list_close,
    .stat = smb_stat,
    .read_open = smb_read_open,
    .read = smb_read,
    .read_close = smb_read_close,
    .write_open = smb_write_open,
    .write = smb_write,
    .write_commit = smb_write_commit,
    .write_abort = smb_write_abort,
    .remove = smb_remove,
    .copy_from = NULL,
    .check_root = smb_check_root,
    .close = smb_close,
};

/* Host names and addresses: no byte libsmbclient's URL parser would read
 * as something else. */
static bool smb_host_ok(const char *h)
{
    if (!*h || strlen(h) > 255)
        return false;
    for (const unsigned char *s = (const unsigned char *)h; *s; s++)
        if (*s <= ' ' || *s == 0x7f || strchr("/\\@;?#%[]", *s))
            return false;
    return !strchr(h, ':'); /* IPv6 literals: not supported by libsmbclient's URLs */
}

static bool smb_share_ok(const char *s)
{
    if (!*s || strlen(s) > 255)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f || strchr("/\\", *c))
            return false;
    return true;
}

int smb_storage_open(const struct smb_opts *o, const char *display, struct storage **out,
                     struct err *e)
{
    struct smb_priv *p = NULL;
    struct buf b = BUF_INIT(0);
    int r;
    *out = NULL;

    if (!o->host || !smb_host_ok(o->host))
        return err_set(e, ERR_USAGE,
                       "SMB host '%s' is not a host name or an IPv4 address; write it as "
                       "smb://[domain;]user@host[:port]/share/path",
                       o->host ? o->host : "");
    if (!o->share || !smb_share_ok(o->share))
        return err_set(e, ERR_USAGE, "SMB share name '%s' is empty or invalid; give a share name",
                       o->share ? o->share : "");
    if (o->port < 0 || o->port > 65535)
        return err_set(e, ERR_USAGE, "SMB port %d is not between 1 and 65535", o->port);
    if (o->timeout < 0)
        return err_set(e, ERR_USAGE, "SMB timeout must not be negative");

    /* the root: no leading or trailing '/', then the key rules */
    const char *path = o->path ? o->path : "";
    while (*path == '/')
        path++;
    size_t pl = strlen(path);
    while (pl && path[pl - 1] == '/')
        pl--;

    p = calloc(1, sizeof(*p));
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory opening '%s'", display);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->host = strdup(o->host);
    p->share = strdup(o->share);
    p->root = strndup(path, pl);
    p->domain = strdup(o->domain && *o->domain ? o->domain : "WORKGROUP");
    p->user = strdup(o->user ? o->user : "");
    p->password = strdup(o->password ? o->password : "");
    if (!p->host || !p->share || !p->root || !p->domain || !p->user || !p->password) {
        r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", display);
        goto out;
    }
    if (p->root[0]) {
        r = storage_key_check(p->root, false, e);
        if (!r && strchr(p->root, '\\'))
            r = err_set(e, ERR_USAGE, "SMB path '%s' cannot contain '\\'; use '/'", p->root);
        if (r)
            goto out;
    }
    p->port = (uint16_t)o->port;
    double t = o->timeout > 0 ? o->timeout : SMB_DEFAULT_TIMEOUT_S;
    p->timeout_ms = t > 86400 ? 86400000 : (int)(t * 1000);
    if (p->timeout_ms < 1)
        p->timeout_ms = 1;
    p->max = o->connections > 0 ? o->connections : SMB_DEFAULT_CONNECTIONS;

    if (buf_printf(&b, "%s:%d", p->host, p->port ? p->port : 445) ||
        !(p->server = buf_detach(&b)) || buf_printf(&b, "smb://%s/", p->host) ||
        !(p->server_url = buf_detach(&b)) || buf_puts(&b, p->server_url) ||
        smb_url_append(&b, p->share, strlen(p->share)) || buf_puts(&b, "/") ||
        !(p->share_url = buf_detach(&b)) || buf_puts(&b, p->share_url) ||
        smb_url_append(&b, p->root, strlen(p->root))) {
        r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", display);
        goto out;
    }
    if (!p->root[0])
        b.data[--b.len] = '\0'; /* no trailing '/' */
    p->base_url = buf_detach(&b);
    if (!p->base_url) {
        r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", display);
        goto out;
    }

    /* load libsmbclient only now that the remote is known to be SMB */
    r = smb_api_get(&p->api, e);
    if (r)
        goto out;
    if (p->password[0])
        log_add_secret(p->password);

    if (buf_printf(&b, "smb://%s%s%s@%s/%s", p->domain, ";", p->user, p->server, p->share)) {
        r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", display);
        goto out;
    }
    struct storage *st = storage_new(&smb_driver, display, b.data, p);
    if (!st) {
        r = err_set(e, ERR_NOMEM, "out of memory opening '%s'", display);
        goto out;
    }
    p->st = st;
    *out = st;
    p = NULL;
    r = 0;
out:
    buf_release(&b);
    smb_priv_free(p);
    return r;
}
