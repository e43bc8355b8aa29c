/*
 * mirror_restore.c - restore and verify a mirror run (docs/FORMAT.md,
 * Restore rule).
 *
 * The run's manifest is read in order next to one stream of the
 * versions/<k>/ trees of every later run k (vmerge: the earliest k holding
 * a path wins) and, for the structural check, the current/ listing. Each
 * file's bytes are in that earliest versions/<k>/<p>, else in current/<p>.
 * Files go to worker threads, which hash what they read: a restore writes
 * to the target and commits a file only when its SHA-256 is the manifest's
 * (a mismatch stops the restore, ERR_CORRUPT naming the object); verify
 * --read-data only hashes. The structural check compares each object's
 * listed size with the manifest.
 */
#include "backup/mirror_restore.h"

#include "backup/vmerge.h"
#include "core/cancel.h"
#include "core/first_error.h"
#include "core/log.h"
#include "core/workq.h"
#include "engine/copy_file.h"
#include "engine/transfer.h"
#include "io/filter.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MR_BLOCK ((size_t)1 << 20)

struct mr {
    struct storage *dst, *target; /* target NULL: verify */
    const struct restore_opts *o;
    const struct run_info *ri;
    bool read_data;
    struct mirror_restore_stats *st;
    catalog_runid *later;
    size_t nlater;
    struct vmerge *vm;
    struct storage_list *cur;
    struct storage_entry ce; /* current/ head, key without "current/" */
    struct first_error fe;
};

struct mr_job {
    char *path, *obj;
    uint64_t size;
    int64_t mtime_ns;
    uint32_t mode;
    char sha256[65];
};

static void report(struct mr *m, const char *path, enum event_action a, int64_t size,
                   const char *sha, int code, const char *msg)
{
    struct event_file f = {
        .path = path, .action = a, .size = size, .sha256 = sha, .error_code = code, .error = msg};
    event_emit_file(m->o->events, &f);
}

static void fail(struct mr *m, const struct err *e)
{
    first_error_set(&m->fe, e);
}

/* A file whose stored copy fails its check (verify) */
static void bad(struct mr *m, const char *path, int64_t size, const char *msg)
{
    atomic_fetch_add(&m->st->bad, 1);
    report(m, path, EVENT_ACTION_DIFFER, size, NULL, ERR_CORRUPT, msg);
    log_error("%s", msg);
}

static int hash_object(struct mr *m, const struct mr_job *j, unsigned char *buf, char hex[65],
                       struct err *e)
{
    struct storage_reader *rd = NULL;
    struct filter *parts[] = {filter_hash_new(HASH_SHA256), filter_counter_new(&m->st->bytes_done)};
    struct filter *chain = filter_chain(parts, 2);
    if (!chain)
        return err_set(e, ERR_NOMEM, "out of memory");
    struct copy_file_opts co = {.buf = buf, .block_size = MR_BLOCK, .stop = &m->fe.stop};
    int r = storage_read_open(m->dst, j->obj, 0, -1, &rd, NULL, e);
    if (!r)
        r = copy_pump(rd, j->obj, j->size, chain, &co, e);
    if (!r)
        filter_hash_hex(chain, hex, 65);
    storage_read_close(rd);
    filter_chain_free(chain);
    return r;
}

static void job_run(void *job, unsigned char *buf, void *ctx)
{
    struct mr *m = ctx;
    struct mr_job *j = job;
    struct err e;
    err_clear(&e);
    char hex[65] = "";
    if (atomic_load(&m->fe.stop) || cancel_requested())
        goto out;
    if (!m->target) {
        int r = hash_object(m, j, buf, hex, &e);
        atomic_fetch_add(&m->st->files_done, 1);
        if (r == ERR_NOT_FOUND || r == ERR_IO) {
            char msg[2048];
            snprintf(msg, sizeof(msg), "'%s' (object '%s'): %s", j->path, j->obj, e.msg);
            bad(m, j->path, (int64_t)j->size, msg);
        } else if (r) {
            fail(m, &e);
        } else if (strcmp(hex, j->sha256) != 0) {
            char msg[2048];
            snprintf(msg, sizeof(msg), "'%s' (object '%s') fails its SHA-256 check", j->path,
                     j->obj);
            bad(m, j->path, (int64_t)j->size, msg);
        } else {
            atomic_fetch_add(&m->st->files, 1);
            atomic_fetch_add(&m->st->bytes, j->size);
            report(m, j->path, EVENT_ACTION_MATCH, (int64_t)j->size, hex, 0, NULL);
        }
        goto out;
    }
    struct storage_entry s;
    memset(&s, 0, sizeof(s));
    s.key = j->obj;
    s.size = j->size;
    s.mtime_ns = j->mtime_ns;
    s.mode = j->mode;
    struct copy_file_opts co = {.buf = buf,
                                .block_size = MR_BLOCK,
                                .count = {&m->st->bytes_done, NULL},
                                .stop = &m->fe.stop,
                                .hash = true,
                                .expect_sha256 = j->sha256};
    int r = copy_file(m->dst, &s, m->target, j->path, &co, hex, NULL, &e);
    atomic_fetch_add(&m->st->files_done, 1);
    if (r == ERR_CORRUPT || r == ERR_NOT_FOUND || (r == ERR_IO && strstr(e.msg, "changed size"))) {
        /* the stored object is damaged or gone: the run cannot be restored */
        err_wrap(&e, "run %s: '%s' (object '%s')", m->ri->run, j->path, j->obj);
        e.code = ERR_CORRUPT;
        fail(m, &e);
    } else if (r && transfer_error_is_per_file(r)) {
        atomic_fetch_add(&m->st->errors, 1);
        report(m, j->path, EVENT_ACTION_FAILED, (int64_t)j->size, NULL, r, e.msg);
        log_warn("%s", e.msg);
    } else if (r) {
        fail(m, &e);
    } else {
        atomic_fetch_add(&m->st->files, 1);
        atomic_fetch_add(&m->st->bytes, j->size);
        report(m, j->path, EVENT_ACTION_COPIED, (int64_t)j->size, hex, 0, NULL);
    }
out:
    free(j->path);
    free(j->obj);
}

/* The runs after ri (with or without a manifest): where versions may be. */
static int later_runs(struct mr *m, struct err *e)
{
    struct run_info *v = NULL;
    size_t n = 0;
    catalog_runid *ir = NULL;
    size_t ni = 0;
    int r = catalog_list(m->dst, false, &v, &n, e);
    if (!r)
        r = catalog_interrupted(m->dst, true, &ir, &ni, e);
    if (!r && !(m->later = calloc(n + ni + 1, sizeof(*m->later))))
        r = err_set(e, ERR_NOMEM, "out of memory");
    /* both sorted: merge them */
    size_t a = 0, b = 0;
    while (!r && (a < n || b < ni)) {
        const char *id;
        if (b >= ni || (a < n && strcmp(v[a].run, ir[b]) < 0))
            id = v[a++].run;
        else
            id = ir[b++];
        if (strcmp(id, m->ri->run) > 0)
            memcpy(m->later[m->nlater++], id, RUNID_LEN + 1);
    }
    free(v);
    free(ir);
    return r;
}

static int cur_seek(struct mr *m, const char *path, struct err *e)
{
    while (m->cur && (!m->ce.key || storage_key_cmp(m->ce.key, path) < 0)) {
        storage_entry_clear(&m->ce);
        int r = storage_list_next(m->cur, &m->ce, e);
        if (r < 0)
            return r;
        if (r == 0) {
            storage_list_close(m->cur);
            m->cur = NULL;
            break;
        }
        if (strlen(m->ce.key) > 8)
            memmove(m->ce.key, m->ce.key + 8, strlen(m->ce.key + 8) + 1);
    }
    return 0;
}

static int stopped(struct mr *m, struct err *e)
{
    return first_error_check(&m->fe, e);
}

/* One manifest entry. */
static int entry(struct mr *m, struct workq *q, struct manifest_entry *me, struct err *e)
{
    if (memchr(me->path, '\0', me->path_len))
        return err_set(e, ERR_CORRUPT, "the manifest of run %s has a path with a NUL byte",
                       m->ri->run);
    const char *path = me->path;
    if (m->target && !restore_included(m->o, path))
        return 0;
    if (me->err_code) {
        atomic_fetch_add(&m->st->skipped, 1);
        char msg[2048];
        snprintf(msg, sizeof(msg), "'%s' was not backed up in run %s (%s); not %s", path,
                 m->ri->run, me->err_msg ? me->err_msg : "error",
                 m->target ? "restored" : "checked");
        report(m, path, EVENT_ACTION_SKIPPED, -1, NULL, 0, msg);
        return 0;
    }
    if (me->type == MANIFEST_SYMLINK) {
        if (!m->target) {
            atomic_fetch_add(&m->st->files, 1);
            report(m, path, EVENT_ACTION_MATCH, 0, NULL, 0, NULL);
            return 0;
        }
        struct err fe;
        err_clear(&fe);
        int r =
            memchr(me->target, '\0', me->target_len)
                ? err_set(&fe, ERR_REFUSED, "symbolic link '%s' has a NUL byte in its target", path)
                : storage_symlink(m->target, path, me->target, me->mtime_ns, &fe);
        if (r == ERR_USAGE) {
            atomic_fetch_add(&m->st->skipped, 1);
            report(m, path, EVENT_ACTION_SKIPPED, 0, NULL, 0, fe.msg);
        } else if (r) {
            atomic_fetch_add(&m->st->errors, 1);
            report(m, path, EVENT_ACTION_FAILED, 0, NULL, fe.code, fe.msg);
            log_warn("%s", fe.msg);
        } else {
            atomic_fetch_add(&m->st->files, 1);
            report(m, path, EVENT_ACTION_COPIED, 0, NULL, 0, NULL);
        }
        return 0;
    }
    const char *vp;
    size_t vi;
    uint64_t vsize = 0;
    int x = vmerge_seek(m->vm, path, &vp, &vi, &vsize, e);
    if (x < 0)
        return x;
    struct mr_job j = {.size = me->size, .mtime_ns = me->mtime_ns, .mode = me->mode};
    memcpy(j.sha256, me->sha256, sizeof(j.sha256));
    size_t kl = strlen(path) + RUNID_LEN + 16;
    if (!(j.obj = malloc(kl)))
        return err_set(e, ERR_NOMEM, "out of memory");
    bool in_versions = x == 1 && !strcmp(vp, path);
    if (in_versions)
        snprintf(j.obj, kl, "versions/%s/%s", m->later[vi], path);
    else
        snprintf(j.obj, kl, "current/%s", path);
    if (!m->read_data && !m->target) {
        /* structural: the object is there with the manifest's size */
        uint64_t have = vsize;
        bool found = in_versions;
        if (!in_versions) {
            int r = cur_seek(m, path, e);
            if (r) {
                free(j.obj);
                return r;
            }
            found = m->ce.key && !strcmp(m->ce.key, path);
            have = found ? m->ce.size : 0;
        }
        char msg[2048];
        if (!found)
            snprintf(msg, sizeof(msg), "'%s': its object '%s' is missing", path, j.obj);
        else if (have != me->size)
            snprintf(msg, sizeof(msg), "'%s': its object '%s' is %" PRIu64 " bytes, not %" PRIu64,
                     path, j.obj, have, me->size);
        if (!found || have != me->size)
            bad(m, path, (int64_t)me->size, msg);
        else {
            atomic_fetch_add(&m->st->files, 1);
            atomic_fetch_add(&m->st->bytes, me->size);
        }
        free(j.obj);
        return 0;
    }
    if (!(j.path = strdup(path))) {
        free(j.obj);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    workq_push(q, &j);
    return 0;
}

int mirror_restore(struct storage *dst, struct storage *target, const struct run_info *ri,
                   struct catalog_manifest *cm, const struct restore_opts *o, bool read_data,
                   int transfers, struct mirror_restore_stats *st, struct err *e)
{
    struct mr m;
    memset(&m, 0, sizeof(m));
    m.dst = dst;
    m.target = target;
    m.o = o;
    m.ri = ri;
    m.read_data = read_data;
    m.st = st;
    first_error_init(&m.fe);
    int r = later_runs(&m, e);
    if (!r)
        r = vmerge_open(dst, m.later, m.nlater, &m.vm, e);
    if (!r && !target && !read_data)
        r = storage_list_open(dst, "current/", &m.cur, e);
    struct workq *q = NULL;
    if (!r && (target || read_data) &&
        !(q = workq_new(transfers > 0 ? transfers : 4, 64, sizeof(struct mr_job), MR_BLOCK, job_run,
                        &m)))
        r = err_set(e, ERR_NOMEM, "out of memory starting workers");
    struct manifest_entry me;
    memset(&me, 0, sizeof(me));
    while (!r) {
        struct manifest_trailer_owned t;
        memset(&t, 0, sizeof(t));
        int x = manifest_read_next(cm->reader, &me, &t, e);
        manifest_trailer_owned_clear(&t);
        if (x < 0) {
            r = x;
            break;
        }
        if (x == 2)
            break;
        if ((r = stopped(&m, e)) == 0)
            r = entry(&m, q, &me, e);
        manifest_entry_clear(&me);
    }
    workq_finish(q);
    if (!r)
        r = stopped(&m, e);
    vmerge_close(m.vm);
    storage_entry_clear(&m.ce);
    storage_list_close(m.cur);
    free(m.later);
    first_error_destroy(&m.fe);
    return r;
}
