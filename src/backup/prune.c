/*
 * prune.c - retention: choose (backup/policy, restic's semantics plus
 * arca's floor), then delete manifest first, data after, so that an
 * interrupted prune leaves every run that still has a manifest whole.
 */
#include "backup/prune.h"

#include "backup/catalog.h"
#include "backup/lock.h"
#include "backup/vmerge.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "storage/storage.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void emit_run(const struct prune_opts *o, const struct run_info *ri, bool keep,
                     const char *reasons)
{
    if (!o->events || !o->events->sink)
        return;
    char now[TIMEFMT_LEN + 1], started[TIMEFMT_LEN + 1];
    time_format_ms(time_now_ms(), now);
    time_format_ms(ri->started_ms, started);
    json_t *j =
        json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "type", "run", "v", 1, "time",
                  now, "run", ri->run, "started", started, "status", ri->status, "action",
                  keep ? "keep" : "forget", "reasons", reasons, "dry_run", o->dry_run);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (s)
        o->events->sink(s, o->events->ctx);
    free(s);
    json_decref(j);
}

static int remove_key(struct storage *dst, const char *key, struct prune_result *res, struct err *e)
{
    int r = storage_remove(dst, key, e);
    if (r == ERR_NOT_FOUND) {
        err_clear(e);
        return 0;
    }
    if (!r) {
        res->objects_deleted++;
        log_info("deleted '%s'", key);
    }
    return r;
}

/* The objects of an archive run: manifest first. */
static int forget_archive_run(struct storage *dst, const struct run_info *ri,
                              struct prune_result *res, struct err *e)
{
    char key[256];
    int r = remove_key(dst, ri->manifest_key, res, e);
    if (!r && ri->archive_key[0])
        r = remove_key(dst, ri->archive_key, res, e);
    if (!r) {
        snprintf(key, sizeof(key), "archives/%s.SHA256SUMS", ri->run);
        r = remove_key(dst, key, res, e);
    }
    return r;
}

/*
 * Mirror runs: versions/<k>/ holds what run k displaced, which the restore
 * rule reads only for runs older than k. So once `oldest` is the oldest
 * kept mirror run (NULL: none is kept), versions/<k>/ with k <= oldest and
 * the markers of interrupted runs there are needed by no kept run. The
 * listing is in key order, so it stops at the first k > oldest.
 */
static int forget_versions(struct storage *dst, const char *oldest, bool dry_run,
                           struct prune_result *res, struct err *e)
{
    static const char *const prefixes[] = {"versions/", "runs/"};
    int r = 0;
    for (size_t p = 0; p < 2 && !r; p++) {
        struct storage_list *ls;
        struct storage_entry ent;
        if ((r = storage_list_open(dst, prefixes[p], &ls, e)) != 0)
            return r;
        size_t pl = strlen(prefixes[p]);
        while ((r = storage_list_next(ls, &ent, e)) == 1) {
            const char *id = ent.key + pl;
            char run[RUNID_LEN + 1];
            snprintf(run, sizeof(run), "%.*s", RUNID_LEN, id);
            bool valid = strlen(id) > RUNID_LEN && runid_valid(run);
            if (valid && oldest && strcmp(run, oldest) > 0) {
                storage_entry_clear(&ent);
                break;
            }
            bool doomed = valid && (p == 0 ? id[RUNID_LEN] == '/'
                                           : !strcmp(id + RUNID_LEN, ".started") ||
                                                 !strcmp(id + RUNID_LEN, ".pruned"));
            if (doomed && dry_run) {
                log_info("would delete '%s' (no kept run reads it)", ent.key);
            } else if (doomed && (r = remove_key(dst, ent.key, res, e)) != 0) {
                storage_entry_clear(&ent);
                break;
            }
            storage_entry_clear(&ent);
        }
        storage_list_close(ls);
        r = r < 0 ? r : 0;
    }
    return r;
}

/* Whether some kept run N has lo <= N < hi (lo NULL: no lower bound). */
/* A mirror run: runs/<id>.pruned first (its versions/ may still be read by
 * older kept runs, and restore must keep finding them), then its manifest. */
static int forget_mirror_run(struct storage *dst, const struct run_info *ri,
                             struct prune_result *res, struct err *e)
{
    char key[64], body[64];
    catalog_pruned_key(key, sizeof(key), ri->run);
    int n = snprintf(body, sizeof(body), "{\"run\":\"%s\"}\n", ri->run);
    int r = storage_put_bytes(dst, key, body, (size_t)n, e);
    return r ? r : remove_key(dst, ri->manifest_key, res, e);
}

static bool kept_between(const catalog_runid *kept, size_t nkept, const char *lo, const char *hi)
{
    for (size_t i = 0; i < nkept; i++)
        if ((!lo || strcmp(kept[i], lo) >= 0) && strcmp(kept[i], hi) < 0)
            return true;
    return false;
}

/*
 * Mirror runs, path by path, for the runs after the oldest kept one: the
 * restore rule reads versions/<k>/p for kept run N only when k is the first
 * run after N holding p, i.e. when prev <= N < k with prev the run before k
 * holding p. Objects no kept run reads are deleted; so are the markers of
 * interrupted runs left with no object. Interrupted runs after the newest
 * manifest are left whole: the next backup repairs current/ from them.
 * Keys to delete are spooled first, then deleted with no listing open.
 */
static int compact_versions(struct storage *dst, const struct run_info *v, size_t n,
                            const struct policy_decision *dec, const char *oldest, bool dry_run,
                            struct prune_result *res, struct err *e)
{
    catalog_runid *ir = NULL, *runs = NULL, *kept = NULL;
    size_t ni = 0, nruns = 0, nkept = 0, *holders = NULL;
    uint64_t *left = NULL;
    struct vmerge *vm = NULL;
    FILE *spool = NULL;
    const char *newest_manifest = NULL;
    int r = catalog_interrupted(dst, true, &ir, &ni, e);
    if (!r && (!(runs = calloc(n + ni + 1, sizeof(*runs))) ||
               !(kept = calloc(n + 1, sizeof(*kept))) || !(spool = tmpfile())))
        r = err_set(e, ERR_NOMEM, "out of memory or no temporary file pruning versions");
    /* the runs after `oldest`, in id order: manifests and markers merged */
    for (size_t a = 0, b = 0; !r && (a < n || b < ni);) {
        const char *id;
        if (b >= ni || (a < n && strcmp(v[a].run, ir[b]) < 0)) {
            if (v[a].mode != MANIFEST_MIRROR) {
                a++;
                continue;
            }
            newest_manifest = v[a].run;
            if (dec[a].keep)
                memcpy(kept[nkept++], v[a].run, RUNID_LEN + 1);
            id = v[a++].run;
        } else {
            id = ir[b++];
        }
        /* a forgotten run is both in v and marked .pruned: once */
        if (strcmp(id, oldest) > 0 && (!nruns || strcmp(runs[nruns - 1], id) != 0))
            memcpy(runs[nruns++], id, RUNID_LEN + 1);
    }
    if (!r && nruns &&
        (!(holders = calloc(nruns, sizeof(*holders))) || !(left = calloc(nruns, sizeof(*left)))))
        r = err_set(e, ERR_NOMEM, "out of memory pruning versions");
    if (!r)
        r = vmerge_open(dst, runs, nruns, &vm, e);
    char *next = NULL;
    const char *path;
    size_t idx;
    uint64_t size;
    while (!r) {
        int x = vmerge_seek(vm, next ? next : "", &path, &idx, &size, e);
        if (x <= 0) {
            r = x;
            break;
        }
        size_t h = vmerge_holders(vm, path, holders);
        for (size_t i = 0; i < h && !r; i++) {
            const char *k = runs[holders[i]];
            const char *prev = i ? runs[holders[i - 1]] : NULL;
            bool repair = newest_manifest && strcmp(k, newest_manifest) > 0;
            if (repair || !newest_manifest || kept_between(kept, nkept, prev, k)) {
                left[holders[i]]++;
                continue;
            }
            char head[RUNID_LEN + 16];
            snprintf(head, sizeof(head), "versions/%s/", k);
            uint32_t len = (uint32_t)(strlen(head) + strlen(path));
            if (fwrite(&len, sizeof(len), 1, spool) != 1 || fputs(head, spool) == EOF ||
                fputs(path, spool) == EOF)
                r = err_set(e, ERR_IO, "cannot write the list of versions to delete");
        }
        size_t pl = strlen(path);
        char *nx = malloc(pl + 2);
        if (!nx) {
            r = err_set(e, ERR_NOMEM, "out of memory pruning versions");
            break;
        }
        memcpy(nx, path, pl);
        nx[pl] = '\x01'; /* the smallest key after path */
        nx[pl + 1] = '\0';
        free(next);
        next = nx;
    }
    free(next);
    vmerge_close(vm);
    vm = NULL;
    if (!r && (fflush(spool) != 0 || fseek(spool, 0, SEEK_SET) != 0))
        r = err_set(e, ERR_IO, "cannot read back the list of versions to delete");
    uint32_t len;
    while (!r && fread(&len, sizeof(len), 1, spool) == 1) {
        char *key = malloc((size_t)len + 1);
        if (!key || fread(key, 1, len, spool) != len) {
            free(key);
            r = err_set(e, ERR_IO, "cannot read back the list of versions to delete");
            break;
        }
        key[len] = '\0';
        if (dry_run)
            log_info("would delete '%s' (no kept run reads it)", key);
        else
            r = remove_key(dst, key, res, e);
        free(key);
    }
    /* markers of runs without a manifest (interrupted before the newest
     * manifest, or forgotten) whose versions/ are now empty */
    for (size_t i = 0; !r && i < nruns; i++) {
        bool marked = false;
        for (size_t j = 0; j < ni; j++)
            marked |= !strcmp(ir[j], runs[i]);
        if (!marked || left[i] || !newest_manifest || strcmp(runs[i], newest_manifest) > 0)
            continue;
        char key[64];
        for (int kind = 0; kind < 2 && !r; kind++) {
            if (kind == 0)
                catalog_marker_key(key, sizeof(key), runs[i]);
            else
                catalog_pruned_key(key, sizeof(key), runs[i]);
            if (dry_run)
                log_info("would delete '%s' if present (nothing of that run is needed)", key);
            else
                r = remove_key(dst, key, res, e);
        }
    }
    if (spool)
        fclose(spool);
    free(ir);
    free(runs);
    free(kept);
    free(holders);
    free(left);
    return r;
}

static bool has_run(const struct run_info *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strncmp(v[i].run, id, RUNID_LEN))
            return true;
    return false;
}

/* archives/<id>.* of runs without a manifest (failed or killed runs). */
static int forget_orphans(struct storage *dst, const struct run_info *v, size_t n, bool dry_run,
                          struct prune_result *res, struct err *e)
{
    struct storage_list *ls;
    struct storage_entry ent;
    int r = storage_list_open(dst, "archives/", &ls, e);
    if (r)
        return r;
    while ((r = storage_list_next(ls, &ent, e)) == 1) {
        const char *id = ent.key + strlen("archives/");
        char run[RUNID_LEN + 1];
        snprintf(run, sizeof(run), "%.*s", RUNID_LEN, id);
        if (strlen(id) > RUNID_LEN && id[RUNID_LEN] == '.' && runid_valid(run) &&
            !has_run(v, n, run)) {
            if (dry_run) {
                log_info("would delete '%s' (a run without a manifest)", ent.key);
            } else if ((r = remove_key(dst, ent.key, res, e)) != 0) {
                storage_entry_clear(&ent);
                break;
            }
        }
        storage_entry_clear(&ent);
    }
    storage_list_close(ls);
    return r < 0 ? r : 0;
}

int prune_run(struct storage *dst, const struct prune_opts *o, struct prune_result *res,
              struct err *e)
{
    memset(res, 0, sizeof(*res));
    res->status = EVENT_STATUS_FAILED;
    struct backup_lock *lock = NULL;
    struct run_info *v = NULL;
    struct policy_run *pr = NULL;
    struct policy_decision *dec = NULL;
    size_t n = 0;
    char id[RUNID_LEN + 1];
    int r = 0;
    if (policy_empty(&o->policy))
        r = err_set(e, ERR_USAGE,
                    "a prune policy must keep something; give --keep-last, "
                    "--keep-within, --keep-daily ...");
    if (!r)
        r = storage_check_root(dst, false, false, e);
    if (!r && !o->dry_run && !(r = runid_new(id, (int64_t)time(NULL), e)))
        r = backup_lock_acquire(dst, id, "prune", &lock, e);
    if (!r)
        r = catalog_list(dst, true, &v, &n, e);
    if (!r && n) {
        pr = calloc(n, sizeof(*pr));
        dec = calloc(n, sizeof(*dec));
        if (!pr || !dec)
            r = err_set(e, ERR_NOMEM, "out of memory pruning");
    }
    if (!r && n) {
        for (size_t i = 0; i < n; i++) {
            pr[i].id = v[i].run;
            pr[i].time_s = v[i].started_ms / 1000;
            pr[i].eligible = true; /* a manifest exists only for succeeded/partial runs */
        }
        struct policy p = o->policy;
        p.now_s = (int64_t)time(NULL);
        r = policy_apply(&p, pr, n, dec, e);
    }
    for (size_t i = 0; !r && i < n; i++) {
        emit_run(o, &v[i], dec[i].keep, dec[i].reasons);
        if (dec[i].keep) {
            res->kept++;
            continue;
        }
        res->forgotten++;
        if (!o->dry_run && v[i].mode == MANIFEST_ARCHIVE)
            r = forget_archive_run(dst, &v[i], res, e);
        else if (!o->dry_run)
            r = forget_mirror_run(dst, &v[i], res, e);
    }
    if (!r)
        r = forget_orphans(dst, v, n, o->dry_run, res, e);
    /* mirror: after the manifests, what no kept run reads any more */
    const char *oldest = NULL;
    bool mirror = false;
    for (size_t i = 0; !r && i < n; i++) {
        mirror |= v[i].mode == MANIFEST_MIRROR;
        if (v[i].mode == MANIFEST_MIRROR && dec[i].keep && !oldest)
            oldest = v[i].run;
    }
    if (!r && mirror)
        r = forget_versions(dst, oldest, o->dry_run, res, e);
    if (!r && oldest)
        r = compact_versions(dst, v, n, dec, oldest, o->dry_run, res, e);
    backup_lock_release(lock);
    free(v);
    free(pr);
    free(dec);
    if (!r)
        res->status = EVENT_STATUS_SUCCEEDED;
    else if (r == ERR_CANCELLED)
        res->status = EVENT_STATUS_CANCELLED;
    struct event_summary sum = {.command = "prune",
                                .destination = storage_display(dst),
                                .status = res->status,
                                .files_deleted = res->objects_deleted,
                                .files_checked = res->kept + res->forgotten,
                                .dry_run = o->dry_run,
                                .error_code = r,
                                .error = r ? e->msg : NULL};
    event_emit_summary(o->events, &sum);
    return r;
}
