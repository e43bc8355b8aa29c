/*
 * local.c - the local filesystem storage driver.
 *
 * Design notes (see local.h for the contract):
 *
 * - Listing order. Keys compare as bytes (memcmp), so within one directory
 *   a subdirectory "a" must be placed as if it were named "a/": "a-b" (0x2d)
 *   < "a/..." (0x2f) < "a0" (0x30). Each directory's names are read in full,
 *   sorted with that rule, and consumed lazily while a stack of open
 *   directories follows the walk. Memory is one name list per directory on
 *   the current path, never the tree.
 *
 * - Everything below the root is reached with openat/fstatat relative to
 *   the parent directory's fd and O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, one
 *   component at a time. That is faster than building absolute paths, has
 *   no PATH_MAX limit, and means a symlink planted in the tree (or a key
 *   from a hostile remote) can never lead a read or a write outside the
 *   root. Only the root path itself is resolved normally.
 *
 * - A directory the listing cannot read is reported (handler or warning)
 *   and skipped, never silently dropped: a sync that took "cannot read" for
 *   "empty" would delete the copies of those files at the destination.
 *
 * - Writes: temp file in the target directory, rename. Temp names start
 *   with '.' and contain ".arca-tmp-" so the listing can skip them (ours, or
 *   leftovers of a crash). Durability is batched: a commit makes the file
 *   visible, storage_sync() makes every committed file durable with one
 *   syncfs() per filesystem written to. An fsync of each file and of its
 *   directory cost more than the copy itself for small files (10,000 x 4 KiB:
 *   seconds of journal commits). Past LOCAL_SYNC_MAX filesystems a commit
 *   falls back to fsync of the file and its directory.
 */
#include "storage/local/local.h"

#include "core/buf.h"
#include "core/cancel.h"
#include "core/log.h"
#include "storage/storage_internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_DEFAULT_MODE 0644u
#define LOCAL_OPEN_RETRIES 3
#define LOCAL_CANCEL_EVERY 1024

#define LOCAL_SYNC_MAX 8

struct local_priv {
    char *root;      /* without trailing '/', except "/" itself */
    const char *sep; /* what goes between root and a key: "/" or "" */
    /* filesystems with commits not yet synced: a directory fd on each */
    pthread_mutex_t sync_lock;
    size_t nsync;
    struct {
        dev_t dev;
        int fd;
        char *key; /* a key written there, for messages */
    } sync[LOCAL_SYNC_MAX];
};

static const struct storage_driver local_driver;

/* ---- errors ------------------------------------------------------------ */

static const char *local_strerror(int errnum)
{
    const char *s = strerrordesc_np(errnum);
    return s ? s : "unknown error";
}

/* Fill e for errno value `errnum` while doing `verb` on root/key[0..len). */
static int local_errno_n(const struct local_priv *p, struct err *e, int errnum, const char *verb,
                         const char *key, size_t len)
{
    int n = len > INT_MAX ? INT_MAX : (int)len;
    const char *sep = n ? p->sep : "";

    switch (errnum) {
    case EACCES:
    case EPERM:
        return err_set(e, ERR_PERM,
                       "cannot %s '%s%s%.*s': permission denied; check the file's owner and mode",
                       verb, p->root, sep, n, key);
    case ENOENT:
        return err_set(e, ERR_NOT_FOUND, "cannot %s '%s%s%.*s': no such file or directory", verb,
                       p->root, sep, n, key);
    case ENOSPC:
    case EDQUOT:
        return err_set(e, ERR_IO,
                       "cannot %s '%s%s%.*s': no space left on device; free some space and retry",
                       verb, p->root, sep, n, key);
    case EROFS:
        return err_set(e, ERR_IO,
                       "cannot %s '%s%s%.*s': read-only file system; choose a writable location",
                       verb, p->root, sep, n, key);
    case ENOMEM:
        return err_set(e, ERR_NOMEM, "cannot %s '%s%s%.*s': out of memory", verb, p->root, sep, n,
                       key);
    case ECANCELED:
        return err_set(e, ERR_CANCELLED, "interrupted");
    default:
        return err_set(e, ERR_IO, "cannot %s '%s%s%.*s': %s", verb, p->root, sep, n, key,
                       local_strerror(errnum));
    }
}

static int local_errno(const struct local_priv *p, struct err *e, int errnum, const char *verb,
                       const char *key)
{
    return local_errno_n(p, e, errnum, verb, key, strlen(key));
}

/* ---- keys and paths ---------------------------------------------------- */

static int64_t local_mtime_ns(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

static struct timespec local_ns_to_timespec(int64_t ns)
{
    struct timespec ts;
    int64_t sec = ns / 1000000000;
    int64_t rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec--;
    }
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)rem;
    return ts;
}

/* mkdir -p of the root. */
static int local_root_create(const struct local_priv *p, struct err *e)
{
    int r = 0;
    char *path = strdup(p->root);
    if (!path)
        return err_set(e, ERR_NOMEM, "out of memory creating '%s'", p->root);
    for (char *s = path + 1;; s++) {
        bool last = *s == '\0';
        if (*s != '/' && !last)
            continue;
        *s = '\0';
        if (mkdir(path, 0777) < 0 && errno != EEXIST) {
            int en = errno;
            if (en == EACCES || en == EPERM)
                r = err_set(e, ERR_PERM,
                            "cannot create '%s': permission denied; check the owner and mode of "
                            "its parent directory",
                            path);
            else
                r = err_set(e, ERR_IO, "cannot create '%s': %s", path, local_strerror(en));
            goto out;
        }
        if (last)
            break;
        *s = '/';
    }
out:
    free(path);
    return r;
}

/* Open the root directory (following a symlink at the root itself). */
static int local_root_open(const struct local_priv *p, bool create, const char *verb, int *fd,
                           struct err *e)
{
    int d = open(p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0 && errno == ENOENT && create) {
        int r = local_root_create(p, e);
        if (r)
            return r;
        d = open(p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (d < 0) {
        if (errno == ENOENT)
            return err_set(e, ERR_NOT_FOUND, "'%s' does not exist; check the path", p->root);
        if (errno == ENOTDIR)
            return err_set(e, ERR_USAGE, "'%s' is not a directory; give a directory", p->root);
        return local_errno_n(p, e, errno, verb, "", 0);
    }
    *fd = d;
    return 0;
}

/*
 * From the directory root_fd, open the directory that holds `key`, one
 * component at a time, never following symlinks; when `create`, make the
 * directories that are missing. On success *dirfd is a new fd owned by the
 * caller and *base points at the last segment inside key. A component that
 * is a file or a symlink gives ERR_NOT_FOUND (read) or ERR_EXISTS (create).
 */
static int local_walk(const struct local_priv *p, int root_fd, const char *key, bool create,
                      const char *verb, int *dirfd, const char **base, struct err *e)
{
    int r = 0;
    int fd = root_fd;
    const char *s = key;

    for (;;) {
        const char *slash = strchr(s, '/');
        if (!slash)
            break;
        size_t n = (size_t)(slash - s);
        size_t upto = (size_t)(slash - key);
        char name[NAME_MAX + 1];
        if (n > NAME_MAX) {
            r = local_errno_n(p, e, ENAMETOOLONG, verb, key, upto);
            goto out;
        }
        memcpy(name, s, n);
        name[n] = '\0';
        int nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, name, 0777) < 0 && errno != EEXIST) {
                r = local_errno_n(p, e, errno, "create", key, upto);
                goto out;
            }
            nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (nfd < 0) {
            int en = errno;
            int ni = (int)upto;
            if ((en == ENOTDIR || en == ELOOP) && create)
                r = err_set(e, ERR_EXISTS,
                            "cannot %s '%s%s%s': '%s%s%.*s' is a file or a symbolic link, not a "
                            "directory; move it away or choose another destination",
                            verb, p->root, p->sep, key, p->root, p->sep, ni, key);
            else if (en == ENOTDIR || en == ELOOP)
                r = err_set(e, ERR_NOT_FOUND,
                            "cannot %s '%s%s%s': '%s%s%.*s' is not a directory (symbolic links "
                            "below the root are not followed)",
                            verb, p->root, p->sep, key, p->root, p->sep, ni, key);
            else
                r = local_errno_n(p, e, en, verb, key, upto);
            goto out;
        }
        if (fd != root_fd)
            close(fd);
        fd = nfd;
        s = slash + 1;
    }
    if (fd == root_fd) {
        fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            r = local_errno_n(p, e, errno, verb, "", 0);
            goto out;
        }
    }
    *dirfd = fd;
    *base = s;
    fd = root_fd;
out:
    if (fd != root_fd)
        close(fd);
    return r;
}

/* Root + walk in one step. */
static int local_parent_open(const struct local_priv *p, const char *key, bool create,
                             const char *verb, int *dirfd, const char **base, struct err *e)
{
    int root_fd = -1;
    int r = local_root_open(p, create, verb, &root_fd, e);
    if (r)
        return r;
    r = local_walk(p, root_fd, key, create, verb, dirfd, base, e);
    close(root_fd);
    return r;
}

/* readlinkat into a new string. 0 or an errno value. */
static int local_readlink(int dirfd, const char *name, size_t hint, char **out)
{
    size_t cap = hint ? hint + 1 : 256;
    for (;;) {
        char *b = malloc(cap);
        if (!b)
            return ENOMEM;
        ssize_t n = readlinkat(dirfd, name, b, cap);
        if (n < 0) {
            int en = errno;
            free(b);
            return en;
        }
        if ((size_t)n < cap) {
            b[n] = '\0';
            *out = b;
            return 0;
        }
        free(b);
        if (cap > (1u << 20))
            return ENAMETOOLONG;
        cap *= 2;
    }
}

/* Fill ent for a file or symlink named `name` in dirfd; key is copied. */
static int local_entry_fill(const struct local_priv *p, struct storage_entry *ent, const char *key,
                            const struct stat *sb, int dirfd, const char *name, struct err *e)
{
    ent->key = strdup(key);
    if (!ent->key)
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
    ent->size = (uint64_t)sb->st_size;
    ent->mtime_ns = local_mtime_ns(sb);
    ent->mode = (uint32_t)(sb->st_mode & 07777);
    ent->md5[0] = '\0';
    ent->sha256[0] = '\0';
    if (S_ISLNK(sb->st_mode)) {
        ent->type = STORAGE_TYPE_SYMLINK;
        int en = local_readlink(dirfd, name, (size_t)sb->st_size, &ent->link_target);
        if (en) {
            free(ent->key);
            ent->key = NULL;
            return local_errno(p, e, en, "read link", key);
        }
    } else if (S_ISDIR(sb->st_mode)) {
        ent->type = STORAGE_TYPE_DIR;
        ent->size = 0;
    } else {
        ent->type = STORAGE_TYPE_FILE;
    }
    return 0;
}

/* ---- listing ----------------------------------------------------------- */

enum local_kind {
    LOCAL_KIND_FILE,
    LOCAL_KIND_DIR,
    LOCAL_KIND_LINK,
    LOCAL_KIND_OTHER,
    LOCAL_KIND_UNKNOWN, /* could not tell at readdir time; fstatat decides */
};

struct local_dent {
    size_t off; /* name offset in the level's name block */
    unsigned char kind;
};

struct local_level {
    int fd;
    struct local_dent *ents;
    size_t n, next;
    char *names;
    size_t path_len; /* length of list->path while this level is on top */
};

struct local_list {
    struct storage *st;
    struct local_priv *p;
    struct local_level *levels;
    size_t depth, cap;
    struct buf path; /* key prefix of the top directory: "", "a/", "a/b/" */
};

/* Byte order of the names, a directory counting as name + "/". */
static int local_dent_cmp(const void *a, const void *b, void *arg)
{
    const char *names = arg;
    const struct local_dent *x = a;
    const struct local_dent *y = b;
    const unsigned char *p = (const unsigned char *)names + x->off;
    const unsigned char *q = (const unsigned char *)names + y->off;
    while (*p && *p == *q) {
        p++;
        q++;
    }
    int cp = *p ? *p : (x->kind == LOCAL_KIND_DIR ? '/' : 0);
    int cq = *q ? *q : (y->kind == LOCAL_KIND_DIR ? '/' : 0);
    return cp - cq;
}

static void local_level_free(struct local_level *lv)
{
    if (lv->fd >= 0)
        close(lv->fd);
    free(lv->ents);
    free(lv->names);
    lv->fd = -1;
    lv->ents = NULL;
    lv->names = NULL;
}

/* Read and sort the directory open as lv->fd, keeping names that start
 * with filter. 0 or an errno value (lv unchanged but for fd on failure). */
static int local_level_load(struct local_level *lv, const char *filter)
{
    int en = 0;
    size_t flen = strlen(filter);
    struct buf names = BUF_INIT(0);
    struct local_dent *ents = NULL;
    size_t n = 0, cap = 0;
    DIR *d = NULL;

    int dfd = fcntl(lv->fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return errno;
    d = fdopendir(dfd);
    if (!d) {
        en = errno;
        close(dfd);
        return en;
    }
    for (size_t seen = 1;; seen++) {
        if (seen % LOCAL_CANCEL_EVERY == 0 && cancel_requested()) {
            en = ECANCELED;
            goto out;
        }
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            en = errno;
            if (en)
                goto out;
            break;
        }
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
            continue;
        if (flen && strncmp(nm, filter, flen) != 0)
            continue;
        if (storage_is_temp_name(nm))
            continue;
        unsigned char kind;
        switch (de->d_type) {
        case DT_REG:
            kind = LOCAL_KIND_FILE;
            break;
        case DT_DIR:
            kind = LOCAL_KIND_DIR;
            break;
        case DT_LNK:
            kind = LOCAL_KIND_LINK;
            break;
        case DT_UNKNOWN: {
            struct stat sb;
            if (fstatat(lv->fd, nm, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                    continue;
                kind = LOCAL_KIND_UNKNOWN; /* the error is reported when we get there */
            } else if (S_ISREG(sb.st_mode)) {
                kind = LOCAL_KIND_FILE;
            } else if (S_ISDIR(sb.st_mode)) {
                kind = LOCAL_KIND_DIR;
            } else if (S_ISLNK(sb.st_mode)) {
                kind = LOCAL_KIND_LINK;
            } else {
                kind = LOCAL_KIND_OTHER;
            }
            break;
        }
        default:
            kind = LOCAL_KIND_OTHER;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct local_dent *ne = realloc(ents, ncap * sizeof(*ents));
            if (!ne) {
                en = ENOMEM;
                goto out;
            }
            ents = ne;
            cap = ncap;
        }
        ents[n].off = names.len;
        ents[n].kind = kind;
        if (buf_append(&names, nm, strlen(nm) + 1)) {
            en = ENOMEM;
            goto out;
        }
        n++;
    }
    if (n)
        qsort_r(ents, n, sizeof(*ents), local_dent_cmp, names.data);
    lv->ents = ents;
    lv->names = names.data;
    lv->n = n;
    lv->next = 0;
    ents = NULL;
    names.data = NULL;
out:
    closedir(d);
    free(ents);
    buf_release(&names);
    return en;
}

/* Put a loaded level on the stack (takes it over, even on failure). */
static int local_list_push(struct local_list *l, struct local_level *lv, struct err *e)
{
    if (l->depth == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        struct local_level *nl = realloc(l->levels, ncap * sizeof(*nl));
        if (!nl) {
            local_level_free(lv);
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", l->p->root);
        }
        l->levels = nl;
        l->cap = ncap;
    }
    l->levels[l->depth++] = *lv;
    return 0;
}

static void local_list_pop(struct local_list *l)
{
    local_level_free(&l->levels[--l->depth]);
    if (l->depth) {
        l->path.len = l->levels[l->depth - 1].path_len;
        if (l->path.data)
            l->path.data[l->path.len] = '\0';
    }
}

/* Report a part of the tree the listing skips (see local.h). `why` says
 * why; 0 to go on or the handler's code (e filled) to stop. */
static int local_list_skip(struct local_list *l, const char *name, bool is_dir,
                           const struct err *why, struct err *e)
{
    struct local_priv *p = l->p;
    struct buf key = BUF_INIT(0);
    int r = 0;

    if (buf_append(&key, l->path.data ? l->path.data : "", l->path.len) || buf_puts(&key, name) ||
        (is_dir && buf_puts(&key, "/"))) {
        r = err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
        goto out;
    }
    r = storage_list_skipped(l->st, key.data, why, e);
out:
    buf_release(&key);
    return r;
}

/* Enter subdirectory `name` of the top level (skipping it, reported, when
 * it cannot be read). */
static int local_list_descend(struct local_list *l, const char *name, struct err *e)
{
    struct local_priv *p = l->p;
    int parent_fd = l->levels[l->depth - 1].fd;
    size_t parent_len = l->path.len;
    struct local_level lv = {.fd = -1};
    struct err why;
    int en;

    err_clear(&why);
    lv.fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lv.fd < 0) {
        en = errno;
        if (en == ENOENT)
            return 0; /* removed while we were listing */
        goto skip;
    }
    en = local_level_load(&lv, "");
    if (en) {
        close(lv.fd);
        goto skip;
    }
    if (buf_puts(&l->path, name) || buf_puts(&l->path, "/")) {
        local_level_free(&lv);
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
    }
    lv.path_len = l->path.len;
    return local_list_push(l, &lv, e);

skip:
    if (en == ENOMEM || en == ECANCELED)
        return local_errno(p, e, en, "list", name);
    if (en == ENOTDIR || en == ELOOP)
        err_set(&why, ERR_IO,
                "cannot list '%s%s%s%s/': it was replaced by a file during the listing; run "
                "again",
                p->root, p->sep, l->path.data ? l->path.data : "", name);
    else {
        struct buf k = BUF_INIT(0);
        if (buf_append(&k, l->path.data ? l->path.data : "", parent_len) || buf_puts(&k, name) ||
            buf_puts(&k, "/")) {
            buf_release(&k);
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
        }
        local_errno(p, &why, en, "list", k.data);
        buf_release(&k);
    }
    return local_list_skip(l, name, true, &why, e);
}

static void local_list_close(void *state)
{
    struct local_list *l = state;
    if (!l)
        return;
    while (l->depth)
        local_level_free(&l->levels[--l->depth]);
    free(l->levels);
    buf_release(&l->path);
    free(l);
}

static int local_list_open(struct storage *st, const char *prefix, void **state, struct err *e)
{
    struct local_priv *p = st->priv;
    struct local_list *l = NULL;
    struct local_level lv = {.fd = -1};
    int root_fd = -1;
    const char *filter = "";
    int r;

    *state = NULL;
    r = storage_key_check(prefix, true, e);
    if (r)
        return r;
    l = calloc(1, sizeof(*l));
    if (!l)
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
    l->st = st;
    l->p = p;
    buf_init(&l->path, 0);
    r = local_root_open(p, false, "list", &root_fd, e);
    if (r)
        goto out;
    r = local_walk(p, root_fd, prefix, false, "list", &lv.fd, &filter, e);
    if (r == ERR_NOT_FOUND) {
        /* nothing under this prefix: an empty listing, not an error (the
         * root exists, checked above) */
        err_clear(e);
        r = 0;
        goto done;
    }
    if (r)
        goto out;
    if (buf_append(&l->path, prefix, (size_t)(filter - prefix))) {
        r = err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
        goto out;
    }
    int en = local_level_load(&lv, filter);
    if (en) {
        r = local_errno_n(p, e, en, "list", prefix, (size_t)(filter - prefix));
        goto out;
    }
    lv.path_len = l->path.len;
    r = local_list_push(l, &lv, e);
    lv.fd = -1;
    lv.ents = NULL;
    lv.names = NULL;
    if (r)
        goto out;
done:
    *state = l;
    l = NULL;
out:
    if (root_fd >= 0)
        close(root_fd);
    local_level_free(&lv);
    local_list_close(l);
    return r;
}

static int local_list_next(void *state, struct storage_entry *ent, struct err *e)
{
    struct local_list *l = state;
    struct local_priv *p = l->p;
    int r;

    while (l->depth) {
        struct local_level *lv = &l->levels[l->depth - 1];
        if (lv->next == lv->n) {
            local_list_pop(l);
            continue;
        }
        struct local_dent *d = &lv->ents[lv->next++];
        const char *name = lv->names + d->off;

        if (d->kind == LOCAL_KIND_DIR) {
            r = local_list_descend(l, name, e);
            if (r)
                return r;
            continue;
        }

        struct stat sb;
        if (fstatat(lv->fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            int en = errno;
            if (en == ENOENT)
                continue; /* removed while we were listing */
            struct err why;
            struct buf k = BUF_INIT(0);
            if (buf_append(&k, l->path.data, l->path.len) || buf_puts(&k, name)) {
                buf_release(&k);
                return err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
            }
            local_errno(p, &why, en, "read", k.data);
            buf_release(&k);
            r = local_list_skip(l, name, false, &why, e);
            if (r)
                return r;
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            /* it was not a directory when we sorted: its contents would
             * come out of order here, so report it instead */
            struct err why;
            err_set(&why, ERR_IO,
                    "cannot list '%s%s%s%s/': it became a directory during the listing; run again",
                    p->root, p->sep, l->path.data ? l->path.data : "", name);
            r = local_list_skip(l, name, true, &why, e);
            if (r)
                return r;
            continue;
        }
        if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
            log_warn("skipping '%s%s%s%s': not a regular file, directory or symbolic link "
                     "(fifo, socket or device)",
                     p->root, p->sep, l->path.data ? l->path.data : "", name);
            continue;
        }
        if (buf_puts(&l->path, name))
            return err_set(e, ERR_NOMEM, "out of memory listing '%s'", p->root);
        struct err why;
        err_clear(&why);
        r = local_entry_fill(p, ent, l->path.data, &sb, lv->fd, name, &why);
        l->path.len = lv->path_len;
        l->path.data[l->path.len] = '\0';
        if (r) {
            if (r == ERR_NOMEM)
                return err_set(e, r, "%s", why.msg);
            /* the link vanished or cannot be read: report and go on */
            r = local_list_skip(l, name, false, &why, e);
            if (r)
                return r;
            continue;
        }
        return 1;
    }
    return 0;
}

/* ---- stat and read ----------------------------------------------------- */

static int local_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    struct local_priv *p = st->priv;
    int dirfd = -1;
    const char *base;
    struct stat sb;
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    r = local_parent_open(p, key, false, "read", &dirfd, &base, e);
    if (r)
        return r;
    if (fstatat(dirfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            r = err_set(e, ERR_NOT_FOUND, "'%s%s%s' does not exist", p->root, p->sep, key);
        else
            r = local_errno(p, e, errno, "read", key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
        r = err_set(e, ERR_IO,
                    "cannot read '%s%s%s': not a regular file, directory or symbolic link "
                    "(fifo, socket or device)",
                    p->root, p->sep, key);
        goto out;
    }
    r = local_entry_fill(p, ent, key, &sb, dirfd, base, e);
out:
    close(dirfd);
    return r;
}

struct local_reader {
    struct local_priv *p;
    int fd;
    uint64_t pos;
    uint64_t left; /* UINT64_MAX: to the end */
    char *key;
};

static void local_read_close(void *state)
{
    struct local_reader *rd = state;
    if (!rd)
        return;
    if (rd->fd >= 0)
        close(rd->fd);
    free(rd->key);
    free(rd);
}

static int local_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                           void **state, struct storage_entry *ent, struct err *e)
{
    struct local_priv *p = st->priv;
    struct local_reader *rd = NULL;
    int dirfd = -1;
    const char *base;
    struct stat sb;
    int r;

    *state = NULL;
    r = storage_key_check(key, false, e);
    if (r)
        return r;
    rd = calloc(1, sizeof(*rd));
    if (!rd || !(rd->key = strdup(key))) {
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", key);
        goto out;
    }
    rd->p = p;
    rd->fd = -1;
    r = local_parent_open(p, key, false, "read", &dirfd, &base, e);
    if (r)
        goto out;
    /* O_NONBLOCK: opening a fifo must not hang; regular files ignore it.
     * O_NOATIME: a backup should not touch atimes; only the owner (or a
     * privileged process) may ask for it, so fall back without. */
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    rd->fd = openat(dirfd, base, flags | O_NOATIME);
    if (rd->fd < 0 && errno == EPERM)
        rd->fd = openat(dirfd, base, flags);
    if (rd->fd < 0) {
        if (errno == ELOOP)
            r = err_set(e, ERR_USAGE,
                        "cannot read '%s%s%s': it is a symbolic link (not followed; its target "
                        "is in the listing)",
                        p->root, p->sep, key);
        else if (errno == ENOENT)
            r = err_set(e, ERR_NOT_FOUND, "'%s%s%s' does not exist", p->root, p->sep, key);
        else
            r = local_errno(p, e, errno, "read", key);
        goto out;
    }
    if (fstat(rd->fd, &sb) < 0) {
        r = local_errno(p, e, errno, "read", key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        r = err_set(e, ERR_USAGE, "cannot read '%s%s%s': %s", p->root, p->sep, key,
                    S_ISDIR(sb.st_mode) ? "it is a directory" : "not a regular file");
        goto out;
    }
    rd->pos = offset;
    rd->left = length < 0 ? UINT64_MAX : (uint64_t)length;
    (void)posix_fadvise(rd->fd, (off_t)offset, length < 0 ? 0 : (off_t)length,
                        POSIX_FADV_SEQUENTIAL);
    if (ent) {
        r = local_entry_fill(p, ent, key, &sb, dirfd, base, e);
        if (r)
            goto out;
    }
    *state = rd;
    rd = NULL;
out:
    if (dirfd >= 0)
        close(dirfd);
    local_read_close(rd);
    return r;
}

static int local_read(void *state, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct local_reader *rd = state;
    *got = 0;
    if (rd->left < cap)
        cap = (size_t)rd->left;
    if (cap > (size_t)SSIZE_MAX)
        cap = (size_t)SSIZE_MAX;
    if (!cap)
        return 0;
    for (;;) {
        ssize_t n = pread(rd->fd, buf, cap, (off_t)rd->pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return local_errno(rd->p, e, errno, "read", rd->key);
        }
        rd->pos += (uint64_t)n;
        if (rd->left != UINT64_MAX)
            rd->left -= (uint64_t)n;
        *got = (size_t)n;
        return 0;
    }
}

/* ---- write ------------------------------------------------------------- */

struct local_writer {
    struct local_priv *p;
    int dirfd;
    int fd;
    char *key;
    const char *base; /* inside key */
    char tmp[NAME_MAX + 1];
    int64_t mtime_ns;
    uint32_t mode;
};

static void local_writer_free(struct local_writer *w, bool unlink_tmp)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (unlink_tmp && w->dirfd >= 0 && w->tmp[0])
        (void)unlinkat(w->dirfd, w->tmp, 0);
    if (w->dirfd >= 0)
        close(w->dirfd);
    free(w->key);
    free(w);
}

static int local_write_open(struct storage *st, const char *key,
                            const struct storage_write_opts *opts, void **state, struct err *e)
{
    struct local_priv *p = st->priv;
    struct local_writer *w = NULL;
    int r;

    *state = NULL;
    r = storage_key_check(key, false, e);
    if (r)
        return r;
    w = calloc(1, sizeof(*w));
    if (!w || !(w->key = strdup(key))) {
        free(w);
        return err_set(e, ERR_NOMEM, "out of memory writing '%s'", key);
    }
    w->p = p;
    w->dirfd = -1;
    w->fd = -1;
    w->mtime_ns = opts ? opts->mtime_ns : STORAGE_MTIME_UNKNOWN;
    w->mode = opts && opts->mode ? (opts->mode & 07777) : LOCAL_DEFAULT_MODE;

    /* Retried because a concurrent remove may prune the directory between
     * our walk and the creation of the temp file (ENOENT), and because a
     * random name may collide (EEXIST). */
    for (int attempt = 0;; attempt++) {
        struct stat sb;
        r = local_parent_open(p, w->key, true, "write", &w->dirfd, &w->base, e);
        if (r)
            goto out;
        if (fstatat(w->dirfd, w->base, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
            r = err_set(e, ERR_EXISTS,
                        "cannot write '%s%s%s': a directory has that name; move it away or "
                        "choose another destination",
                        p->root, p->sep, key);
            goto out;
        }
        storage_temp_name(w->tmp, sizeof(w->tmp), w->base, NAME_MAX);
        w->fd =
            openat(w->dirfd, w->tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (w->fd >= 0)
            break;
        int en = errno;
        w->tmp[0] = '\0';
        if ((en == ENOENT || en == EEXIST) && attempt + 1 < LOCAL_OPEN_RETRIES) {
            close(w->dirfd);
            w->dirfd = -1;
            continue;
        }
        r = local_errno(p, e, en, "write", key);
        goto out;
    }
    *state = w;
    w = NULL;
out:
    local_writer_free(w, true);
    return r;
}

static int local_write(void *state, const void *data, size_t len, struct err *e)
{
    struct local_writer *w = state;
    const char *s = data;
    while (len) {
        size_t chunk = len > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : len;
        ssize_t n = write(w->fd, s, chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return local_errno(w->p, e, errno, "write", w->key);
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Remember that dirfd's filesystem has a commit to sync; false when the
 * caller must fsync itself (too many filesystems, no fd left). */
static bool local_sync_note(struct local_priv *p, int dirfd, const char *key)
{
    struct stat sb;
    if (fstat(dirfd, &sb) < 0)
        return false;
    bool ok = false;
    pthread_mutex_lock(&p->sync_lock);
    for (size_t i = 0; i < p->nsync && !ok; i++)
        ok = p->sync[i].dev == sb.st_dev;
    if (!ok && p->nsync < LOCAL_SYNC_MAX) {
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        char *k = fd >= 0 ? strdup(key) : NULL;
        if (k) {
            p->sync[p->nsync].dev = sb.st_dev;
            p->sync[p->nsync].fd = fd;
            p->sync[p->nsync].key = k;
            p->nsync++;
            ok = true;
        } else if (fd >= 0) {
            close(fd);
        }
    }
    pthread_mutex_unlock(&p->sync_lock);
    return ok;
}

static void local_sync_forget(struct local_priv *p)
{
    for (size_t i = 0; i < p->nsync; i++) {
        close(p->sync[i].fd);
        free(p->sync[i].key);
    }
    p->nsync = 0;
}

static int local_sync(struct storage *st, struct err *e)
{
    struct local_priv *p = st->priv;
    int r = 0;
    pthread_mutex_lock(&p->sync_lock);
    for (size_t i = 0; i < p->nsync && !r; i++) {
        if (syncfs(p->sync[i].fd) < 0) {
            int errnum = errno;
            r = local_errno(p, e, errnum, "make durable what was written with", p->sync[i].key);
        }
    }
    local_sync_forget(p);
    pthread_mutex_unlock(&p->sync_lock);
    return r;
}

static int local_write_commit(void *state, struct err *e)
{
    struct local_writer *w = state;
    struct local_priv *p = w->p;
    bool renamed = false;
    int r = 0;

    /* mode and mtime before fsync so they are durable with the data; mode
     * after the writes so a set-id bit is not cleared by them */
    if (fchmod(w->fd, (mode_t)w->mode) < 0) {
        r = local_errno(p, e, errno, "write", w->key);
        goto out;
    }
    if (w->mtime_ns != STORAGE_MTIME_UNKNOWN) {
        struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
                                 local_ns_to_timespec(w->mtime_ns)};
        if (futimens(w->fd, ts) < 0) {
            r = local_errno(p, e, errno, "set the time of", w->key);
            goto out;
        }
    }
    bool batched = local_sync_note(p, w->dirfd, w->key);
    if (!batched && fsync(w->fd) < 0) {
        r = local_errno(p, e, errno, "write", w->key);
        goto out;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0) {
        r = local_errno(p, e, errno, "write", w->key);
        goto out;
    }
    if (renameat(w->dirfd, w->tmp, w->dirfd, w->base) < 0) {
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
            r = err_set(e, ERR_EXISTS,
                        "cannot write '%s%s%s': a directory has that name; move it away or "
                        "choose another destination",
                        p->root, p->sep, w->key);
        else
            r = local_errno(p, e, errno, "write", w->key);
        goto out;
    }
    renamed = true;
    if (!batched && fsync(w->dirfd) < 0 && errno != EINVAL && errno != EROFS) {
        r = local_errno_n(p, e, errno, "sync the directory of", w->key, (size_t)(w->base - w->key));
        goto out;
    }
out:
    local_writer_free(w, !renamed);
    return r;
}

static void local_prune_parents(const struct local_priv *p, int root_fd, const char *key);

/* Abort leaves nothing: the temp file, and the directories the write
 * created (any directory of the key left empty). */
static void local_write_abort(void *state)
{
    struct local_writer *w = state;
    struct local_priv *p = w->p;
    char *key = strdup(w->key);
    local_writer_free(w, true);
    int root_fd = -1;
    struct err ignored;
    if (key && local_root_open(p, false, "remove", &root_fd, &ignored) == 0) {
        local_prune_parents(p, root_fd, key);
        close(root_fd);
    }
    free(key);
}

/* ---- remove ------------------------------------------------------------ */

/* Remove the directories of key left empty, deepest first, up to (not
 * including) the root. Best effort: stops at the first one that stays. */
static void local_prune_parents(const struct local_priv *p, int root_fd, const char *key)
{
    char *k = strdup(key);
    if (!k)
        return;
    for (;;) {
        char *slash = strrchr(k, '/');
        if (!slash)
            break;
        *slash = '\0';
        int dirfd;
        const char *base;
        struct err ignored;
        if (local_walk(p, root_fd, k, false, "remove", &dirfd, &base, &ignored))
            break;
        int rc = unlinkat(dirfd, base, AT_REMOVEDIR);
        int en = errno;
        close(dirfd);
        if (rc < 0) {
            if (en != ENOTEMPTY && en != EEXIST && en != ENOENT)
                log_debug("not removing directory '%s%s%s': %s", p->root, p->sep, k,
                          local_strerror(en));
            break;
        }
    }
    free(k);
}

static int local_remove(struct storage *st, const char *key, struct err *e)
{
    struct local_priv *p = st->priv;
    int root_fd = -1, dirfd = -1;
    const char *base;
    int r = storage_key_check(key, false, e);
    if (r)
        return r;
    r = local_root_open(p, false, "remove", &root_fd, e);
    if (r)
        return r;
    r = local_walk(p, root_fd, key, false, "remove", &dirfd, &base, e);
    if (r)
        goto out;
    if (unlinkat(dirfd, base, 0) < 0) {
        if (errno == ENOENT)
            r = err_set(e, ERR_NOT_FOUND, "cannot remove '%s%s%s': it does not exist", p->root,
                        p->sep, key);
        else if (errno == EISDIR)
            r = err_set(e, ERR_USAGE, "cannot remove '%s%s%s': it is a directory", p->root, p->sep,
                        key);
        else
            r = local_errno(p, e, errno, "remove", key);
        goto out;
    }
    close(dirfd);
    dirfd = -1;
    local_prune_parents(p, root_fd, key);
out:
    if (dirfd >= 0)
        close(dirfd);
    close(root_fd);
    return r;
}

/* A symlink at key (replacing a file or link there, never a directory). */
static int local_symlink(struct storage *st, const char *key, const char *target, int64_t mtime_ns,
                         struct err *e)
{
    struct local_priv *p = st->priv;
    int dirfd = -1;
    const char *base;
    int r = local_parent_open(p, key, true, "create", &dirfd, &base, e);
    if (r)
        return r;
    char tmp[NAME_MAX + 1];
    storage_temp_name(tmp, sizeof(tmp), base, NAME_MAX);
    if (symlinkat(target, dirfd, tmp) < 0) {
        r = local_errno(p, e, errno, "create the link", key);
    } else {
        if (mtime_ns != STORAGE_MTIME_UNKNOWN) {
            struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
                                     local_ns_to_timespec(mtime_ns)};
            utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
        }
        struct stat sb;
        if (fstatat(dirfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
            r = err_set(e, ERR_EXISTS, "cannot create the link '%s%s%s': a directory has that name",
                        p->root, p->sep, key);
            unlinkat(dirfd, tmp, 0);
        } else if (renameat(dirfd, tmp, dirfd, base) < 0) {
            r = local_errno(p, e, errno, "create the link", key);
            unlinkat(dirfd, tmp, 0);
        } else {
            local_sync_note(p, dirfd, key);
        }
    }
    close(dirfd);
    return r;
}

/*
 * A copy of src_key at dst_key within one root, as a hard link: no bytes
 * move, and since every write replaces a file by rename, neither name ever
 * sees the other's later writes. ERR_NOT_FOUND when src_key does not exist;
 * ERR_USAGE when the filesystem cannot link (the caller copies the bytes).
 */
static int local_copy_from(struct storage *dst, const char *dst_key, struct storage *src,
                           const char *src_key, const struct storage_entry *src_ent, struct err *e)
{
    (void)src_ent;
    struct local_priv *p = dst->priv;
    if (src->priv != dst->priv)
        return err_set(e, ERR_USAGE, "'%s' links only within itself", p->root);
    int sfd = -1, dfd = -1;
    const char *sbase, *dbase;
    int r = local_parent_open(p, src_key, false, "read", &sfd, &sbase, e);
    if (r)
        return r;
    if ((r = local_parent_open(p, dst_key, true, "create", &dfd, &dbase, e)) != 0)
        goto out;
    char tmp[NAME_MAX + 1];
    storage_temp_name(tmp, sizeof(tmp), dbase, NAME_MAX);
    if (linkat(sfd, sbase, dfd, tmp, 0) < 0) {
        int en = errno;
        if (en == ENOENT)
            r = err_set(e, ERR_NOT_FOUND, "cannot copy '%s%s%s': it does not exist", p->root,
                        p->sep, src_key);
        else if (en == EXDEV || en == EPERM || en == EMLINK || en == ENOTSUP || en == EOPNOTSUPP)
            r = err_set(e, ERR_USAGE, "cannot hard-link '%s%s%s': %s", p->root, p->sep, src_key,
                        local_strerror(en));
        else
            r = local_errno(p, e, en, "link", dst_key);
        goto out;
    }
    if (renameat(dfd, tmp, dfd, dbase) < 0) {
        r = local_errno(p, e, errno, "link", dst_key);
        unlinkat(dfd, tmp, 0);
        goto out;
    }
    local_sync_note(p, dfd, dst_key);
out:
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    return r;
}

/* ---- root -------------------------------------------------------------- */

static int local_check_root(struct storage *st, bool for_write, bool create, struct err *e)
{
    struct local_priv *p = st->priv;
    const char *role = for_write ? "destination" : "source";
    struct stat sb;
    int r;

    if (stat(p->root, &sb) < 0) {
        if (errno != ENOENT)
            return local_errno_n(p, e, errno, for_write ? "write" : "read", "", 0);
        if (!create)
            return err_set(e, ERR_NOT_FOUND, "%s '%s' does not exist; check the path", role,
                           st->display);
        r = local_root_create(p, e);
        if (r)
            return r;
        if (stat(p->root, &sb) < 0)
            return local_errno_n(p, e, errno, "create", "", 0);
    }
    if (!S_ISDIR(sb.st_mode))
        return err_set(e, ERR_USAGE, "%s '%s' is %s, not a directory; give a directory", role,
                       st->display, S_ISREG(sb.st_mode) ? "a file" : "a special file");
    int mode = for_write ? (W_OK | X_OK) : (R_OK | X_OK);
    if (faccessat(AT_FDCWD, p->root, mode, AT_EACCESS) < 0) {
        if (errno == EACCES || errno == EPERM)
            return err_set(e, ERR_PERM,
                           "cannot %s %s '%s': permission denied; check the directory's owner "
                           "and mode",
                           for_write ? "write to" : "read", role, st->display);
        if (errno == EROFS && for_write)
            return err_set(e, ERR_IO,
                           "cannot write to %s '%s': read-only file system; choose a writable "
                           "location",
                           role, st->display);
        return local_errno_n(p, e, errno, for_write ? "write" : "read", "", 0);
    }
    return 0;
}

static void local_close(struct storage *st)
{
    struct local_priv *p = st->priv;
    if (!p)
        return;
    local_sync_forget(p);
    pthread_mutex_destroy(&p->sync_lock);
    free(p->root);
    free(p);
    st->priv = NULL;
}

static const struct storage_driver local_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "local",
    .features = STORAGE_FEATURE_RANGE_READ | STORAGE_FEATURE_MTIME | STORAGE_FEATURE_SYMLINK |
                STORAGE_FEATURE_LIST_MTIME | STORAGE_FEATURE_CHEAP_REREAD,
    .hashes = 0,
    .list_open = local_list_open,
    .list_next = local_list_next,
    .list_close = local_list_close,
    .stat = local_stat,
    .read_open = local_read_open,
    .read = local_read,
    .read_close = local_read_close,
    .write_open = local_write_open,
    .write = local_write,
    .write_commit = local_write_commit,
    .write_abort = local_write_abort,
    .remove = local_remove,
    .copy_from = local_copy_from, /* links within one root; no SERVER_COPY feature */
    .check_root = local_check_root,
    .symlink = local_symlink,
    .sync = local_sync,
    .close = local_close,
};

int local_storage_open(const char *root, const char *display, struct storage **out, struct err *e)
{
    struct local_priv *p = NULL;
    *out = NULL;

    if (!root || !*root)
        return err_set(e, ERR_USAGE, "local path is empty; give a directory");
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    p = calloc(1, sizeof(*p));
    if (!p || !(p->root = strndup(root, n))) {
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory opening '%s'", root);
    }
    p->sep = (n == 1 && root[0] == '/') ? "" : "/";
    pthread_mutex_init(&p->sync_lock, NULL);
    struct storage *st = storage_new(&local_driver, display ? display : root, "local", p);
    if (!st) {
        free(p->root);
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory opening '%s'", root);
    }
    *out = st;
    return 0;
}
