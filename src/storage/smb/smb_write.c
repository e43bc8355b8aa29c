/*
 * smb_write.c - writes of the SMB driver: temp file, rename into place.
 *
 * - The data goes to a temp name in the target directory (made, with its
 *   parents, when missing), in calls of SMB_IO_SIZE bytes.
 *
 * - A lost connection is re-opened (SMB_RETRIES attempts) and the write
 *   goes on at the byte the server had acknowledged: the temp file is
 *   opened again (libsmbclient opens with "deny none", so a handle the
 *   server still keeps from the dead connection is no obstacle).
 *
 * - The mtime is set on the closed temp file, before the rename (a close
 *   after writes would stamp the time again).
 *
 * - libsmbclient's rename does not replace: on "exists" it deletes the
 *   target and renames again, and if that second rename failed the old
 *   file would be gone. So when the target exists, commit moves it aside
 *   to a second temp name, renames the new file in, and only then deletes
 *   the old one (or moves it back if the rename failed). There is a moment
 *   with no file under the final name, but never one where the data of
 *   either version exists nowhere.
 *
 * - Names: SMB (Windows) names cannot hold control characters or
 *   \ : * ? " < > |, nor end in '.' or ' '. Samba refuses some and shows
 *   others under a mangled 8.3 name ("TZHRWN~N"), so a sync would write
 *   them and then delete them as extraneous. Writes of such keys fail up
 *   front.
 */
#include "core/log.h"
#include "storage/smb/smb_internal.h"
#include "storage/storage_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

struct smb_writer {
    struct smb_priv *p;
    struct smb_conn *c;
    SMBCFILE *f;
    char *key;
    size_t dirlen;   /* key[0..dirlen) is its directory ("" or ending in '/') */
    char *tmp_url;   /* the temp file; NULL once renamed or removed */
    char *final_url; /* the key's */
    uint64_t pos;    /* bytes the server acknowledged */
    int64_t mtime_ns;
    char *buf; /* coalesces small writes into SMB_IO_SIZE calls */
    size_t len;
};

/* Every segment of a key to write must be a name the share keeps as is. */
static int smb_name_check(const struct smb_priv *p, const char *key, struct err *e)
{
    const char *s = key;
    for (;;) {
        const char *end = strchr(s, '/');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        bool bad = n && (s[n - 1] == '.' || s[n - 1] == ' ');
        for (size_t i = 0; i < n && !bad; i++) {
            unsigned char ch = (unsigned char)s[i];
            bad = ch < 0x20 || ch == 0x7f || strchr("\\:*?\"<>|", ch);
        }
        if (bad)
            return err_set(e, ERR_USAGE,
                           "cannot write '%s/%s': SMB names cannot contain control characters or "
                           "\\ : * ? \" < > |, nor end in '.' or ' '; rename it",
                           storage_display(p->st), key);
        if (!end)
            return 0;
        s = end + 1;
    }
}

/* Close the temp file and give back the context; a lost connection's
 * context is freed. */
static void smb_writer_detach(struct smb_writer *w, bool broken)
{
    if (w->f && !broken) {
        int rc;
        SMB_CALL(rc, w->c->close(w->c->ctx, w->f));
        (void)rc;
    }
    w->f = NULL;
    smb_conn_put(w->p, w->c, broken);
    w->c = NULL;
}

static void smb_writer_free(struct smb_writer *w)
{
    if (!w)
        return;
    int rc;
    smb_writer_detach(w, false);
    if (w->tmp_url) {
        struct err ignored;
        if (smb_conn_get(w->p, &w->c, &ignored) == 0) {
            SMB_CALL(rc, w->c->unlink(w->c->ctx, w->tmp_url));
            if (rc < 0 && errno != ENOENT)
                log_debug("cannot remove the temp file of '%s/%s': %s", storage_display(w->p->st),
                          w->key, strerror(errno));
            bool broken = rc < 0 && smb_errno_is_net(errno);
            /* and the directories the write made, if nothing else is there */
            if (!broken)
                smb_prune_parents(w->p, w->c, w->key);
            smb_writer_detach(w, broken);
        }
    }
    free(w->tmp_url);
    free(w->final_url);
    free(w->key);
    free(w->buf);
    free(w);
}

/* An operation of w failed with errno value en: fill e; a lost connection
 * is dropped (the next attempt opens a new one). */
static int smb_write_fail(struct smb_writer *w, int en, const char *verb, struct err *e)
{
    int r = smb_fail(w->p, w->c, en, verb, w->key, e);
    if (smb_errno_is_net(en))
        smb_writer_detach(w, true);
    return r;
}

/* After a lost connection: a new context, the temp file opened again at
 * the acknowledged byte. */
static int smb_writer_reattach(struct smb_writer *w, struct err *e)
{
    int r = smb_conn_get(w->p, &w->c, e);
    if (r)
        return r;
    struct smb_conn *c = w->c;
    SMB_CALL(w->f, c->open(c->ctx, w->tmp_url, O_WRONLY, 0));
    if (!w->f)
        return smb_write_fail(w, errno ? errno : EIO, "write", e);
    off_t at;
    SMB_CALL(at, c->lseek(c->ctx, w->f, (off_t)w->pos, SEEK_SET));
    if (at < 0)
        return smb_write_fail(w, errno ? errno : EIO, "write", e);
    return 0;
}

int smb_write_open(struct storage *st, const char *key, const struct storage_write_opts *opts,
                   void **state, struct err *e)
{
    struct smb_priv *p = st->priv;
    struct smb_writer *w = NULL;
    int r;

    *state = NULL;
    r = smb_key_check(p, key, false, e);
    if (!r)
        r = smb_name_check(p, key, e);
    if (r)
        return r;
    w = calloc(1, sizeof(*w));
    if (!w || !(w->key = strdup(key)) || !(w->final_url = smb_url(p, key))) {
        if (w)
            free(w->key);
        free(w);
        return err_set(e, ERR_NOMEM, "out of memory writing '%s'", key);
    }
    w->p = p;
    w->mtime_ns = opts ? opts->mtime_ns : STORAGE_MTIME_UNKNOWN;
    const char *slash = strrchr(key, '/');
    w->dirlen = slash ? (size_t)(slash - key) + 1 : 0;
    const char *base = key + w->dirlen;

    /* Retried: a random name may collide (EEXIST), the directory may be
     * missing (ENOENT: made, then once more in case a concurrent remove
     * pruned it meanwhile), the connection may be lost. */
    int made = 0;
    for (int attempt = 1;; attempt++) {
        if (!w->c && (r = smb_conn_get(p, &w->c, e)) != 0)
            goto out;
        struct smb_conn *c = w->c;
        char tmp[SMB_NAME_MAX + 1];
        smb_temp_name(tmp, sizeof(tmp), base);
        w->tmp_url = smb_sibling_url(p, key, w->dirlen, tmp);
        if (!w->tmp_url) {
            r = err_set(e, ERR_NOMEM, "out of memory writing '%s'", key);
            goto out;
        }
        SMB_CALL(w->f, c->open(c->ctx, w->tmp_url, O_WRONLY | O_CREAT | O_EXCL, 0644));
        if (w->f)
            break;
        int en = errno ? errno : EIO;
        free(w->tmp_url);
        w->tmp_url = NULL;
        bool again = attempt < SMB_RETRIES;
        if (en == EEXIST && again)
            continue;
        if ((en == ENOENT || en == ENOTDIR) && made < 2 && again) {
            if (!c->ok) {
                r = smb_fail(p, c, en, "write", key, e); /* the logon or the share? */
                if (!c->ok)
                    goto out;
                err_clear(e);
            }
            r = smb_mkdirs(p, c, key, w->dirlen, e);
            if (r) {
                int b = smb_find_blocking_file(p, c, key, w->dirlen, "write", e);
                if (b)
                    r = b;
                goto out;
            }
            made++;
            continue;
        }
        if ((en == ENOENT || en == ENOTDIR) && made &&
            (r = smb_find_blocking_file(p, c, key, w->dirlen, "write", e)) != 0)
            goto out;
        r = smb_write_fail(w, en, "write", e);
        if (r != ERR_NET || !again || !smb_retry_pause(attempt + 1))
            goto out;
        log_info("%s; reconnecting", e->msg);
    }
    w->c->ok = true;
    *state = w;
    w = NULL;
out:
    smb_writer_free(w);
    return r;
}

/* Write all of data[0..len) to the temp file. */
static int smb_write_all(struct smb_writer *w, const char *data, size_t len, struct err *e)
{
    int attempt = 1;
    while (len) {
        int r;
        if (!w->f && (r = smb_writer_reattach(w, e)) != 0) {
            if (r != ERR_NET || ++attempt > SMB_RETRIES || !smb_retry_pause(attempt))
                return r;
            continue;
        }
        size_t chunk = len > SMB_IO_SIZE * 8 ? SMB_IO_SIZE * 8 : len;
        ssize_t n;
        SMB_CALL(n, w->c->write(w->c->ctx, w->f, data, chunk));
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            w->pos += (uint64_t)n;
            continue;
        }
        r = smb_write_fail(w, n < 0 && errno ? errno : EIO, "write", e);
        if (r != ERR_NET || ++attempt > SMB_RETRIES || !smb_retry_pause(attempt))
            return r;
        log_info("%s; reconnecting to resume at byte %llu", e->msg, (unsigned long long)w->pos);
    }
    return 0;
}

int smb_write(void *state, const void *data, size_t len, struct err *e)
{
    struct smb_writer *w = state;
    const char *s = data;
    if (!w->len && len >= SMB_IO_SIZE)
        return smb_write_all(w, s, len, e);
    if (!w->buf && !(w->buf = malloc(SMB_IO_SIZE)))
        return err_set(e, ERR_NOMEM, "out of memory writing '%s'", w->key);
    while (len) {
        size_t n = SMB_IO_SIZE - w->len;
        if (n > len)
            n = len;
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        s += n;
        len -= n;
        if (w->len == SMB_IO_SIZE) {
            int r = smb_write_all(w, w->buf, w->len, e);
            if (r)
                return r;
            w->len = 0;
        }
    }
    return 0;
}

static int smb_rename(struct smb_writer *w, const char *from, const char *to)
{
    struct smb_conn *c = w->c;
    int rc;
    SMB_CALL(rc, c->rename(c->ctx, from, c->ctx, to));
    return rc == 0 ? 0 : (errno ? errno : EIO);
}

/* Put the temp file in place of an existing file (see the top comment). */
static int smb_replace(struct smb_writer *w, struct err *e)
{
    struct smb_priv *p = w->p;
    char aside[SMB_NAME_MAX + 1];
    int en, rc;

    smb_temp_name(aside, sizeof(aside), w->key + w->dirlen);
    char *aside_url = smb_sibling_url(p, w->key, w->dirlen, aside);
    if (!aside_url)
        return err_set(e, ERR_NOMEM, "out of memory writing '%s'", w->key);
    en = smb_rename(w, w->final_url, aside_url);
    if (en) {
        free(aside_url);
        return smb_write_fail(w, en, "replace", e);
    }
    en = smb_rename(w, w->tmp_url, w->final_url);
    if (en) {
        /* on a lost connection the retry finds no file under the final
         * name and renames the new one in; the old one stays aside */
        int back = smb_errno_is_net(en) ? en : smb_rename(w, aside_url, w->final_url);
        if (back)
            log_warn("the old version of '%s/%s' is left as '%s' in its directory: %s",
                     storage_display(p->st), w->key, aside, strerror(back));
        free(aside_url);
        return smb_write_fail(w, en, "replace", e);
    }
    free(w->tmp_url);
    w->tmp_url = NULL;
    SMB_CALL(rc, w->c->unlink(w->c->ctx, aside_url));
    if (rc < 0)
        log_warn("cannot remove the old version of '%s/%s' (left as '%s', hidden from listings): "
                 "%s",
                 storage_display(p->st), w->key, aside, strerror(errno ? errno : EIO));
    free(aside_url);
    return 0;
}

/* Rename the closed temp file onto the key. `retried`: an earlier attempt
 * lost its connection, maybe after the server had renamed the file. */
static int smb_put_in_place(struct smb_writer *w, bool retried, struct err *e)
{
    struct smb_priv *p = w->p;
    struct smb_conn *c = w->c;
    struct stat sb;
    int rc;

    if (retried) {
        SMB_CALL(rc, c->stat(c->ctx, w->tmp_url, &sb));
        if (rc < 0 && errno == ENOENT) {
            free(w->tmp_url); /* renamed before the connection was lost */
            w->tmp_url = NULL;
            return 0;
        }
    }
    SMB_CALL(rc, c->stat(c->ctx, w->final_url, &sb));
    if (rc == 0 && S_ISDIR(sb.st_mode))
        return err_set(e, ERR_EXISTS,
                       "cannot write '%s/%s': a directory has that name; move it away or choose "
                       "another destination",
                       storage_display(p->st), w->key);
    if (rc == 0)
        return smb_replace(w, e);
    if (errno != ENOENT)
        return smb_write_fail(w, errno ? errno : EIO, "write", e);
    int en = smb_rename(w, w->tmp_url, w->final_url);
    if (en)
        return smb_write_fail(w, en, "write", e);
    free(w->tmp_url);
    w->tmp_url = NULL;
    return 0;
}

/* Close the temp file (retried, with a reopen, when the connection is
 * lost: the data the server acknowledged is in it) and set its mtime. */
static int smb_write_finish(struct smb_writer *w, struct err *e)
{
    int r, rc;
    for (int attempt = 1;; attempt++) {
        if (!w->f && (r = smb_writer_reattach(w, e)) != 0)
            goto retry;
        SMBCFILE *f = w->f;
        w->f = NULL;
        SMB_CALL(rc, w->c->close(w->c->ctx, f));
        if (rc < 0) {
            r = smb_write_fail(w, errno ? errno : EIO, "write", e);
            goto retry;
        }
        if (w->mtime_ns == STORAGE_MTIME_UNKNOWN)
            return 0;
        struct timeval tv[2];
        int64_t sec = w->mtime_ns / 1000000000, ns = w->mtime_ns % 1000000000;
        if (ns < 0) {
            ns += 1000000000;
            sec--;
        }
        gettimeofday(&tv[0], NULL); /* atime: now */
        tv[1].tv_sec = (time_t)sec;
        tv[1].tv_usec = (suseconds_t)(ns / 1000);
        SMB_CALL(rc, w->c->utimes(w->c->ctx, w->tmp_url, tv));
        if (rc == 0)
            return 0;
        r = smb_write_fail(w, errno ? errno : EIO, "set the time of", e);
    retry:
        if (r != ERR_NET || attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
            return r;
        log_info("%s; reconnecting", e->msg);
    }
}

int smb_write_commit(void *state, struct err *e)
{
    struct smb_writer *w = state;
    int r = 0;

    if (w->len && (r = smb_write_all(w, w->buf, w->len, e)) != 0)
        goto out;
    w->len = 0;
    if ((r = smb_write_finish(w, e)) != 0)
        goto out;
    for (int attempt = 1;; attempt++) {
        if (!w->c && (r = smb_conn_get(w->p, &w->c, e)) != 0)
            goto out;
        r = smb_put_in_place(w, attempt > 1, e);
        if (r != ERR_NET || attempt >= SMB_RETRIES || !smb_retry_pause(attempt + 1))
            break;
        log_info("%s; reconnecting", e->msg);
    }
out:
    smb_writer_free(w);
    return r;
}

void smb_write_abort(void *state)
{
    smb_writer_free(state);
}
