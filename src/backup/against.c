/*
 * against.c - `arca verify DST --against SRC`: a run's manifest and the
 * live source compared as two sorted streams (memory does not grow with
 * the number of files). Paths only in one of them, and paths whose type,
 * size, link target or mtime (with --read-data: SHA-256) differ are
 * reported like `check` does; they are differences, not corruption.
 */
#include "backup/catalog.h"
#include "backup/restore.h"
#include "core/log.h"
#include "io/filter.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct against {
    struct storage *src;
    const struct restore_opts *o;
    uint64_t checked, differences, skipped;
};

static void say(struct against *a, const char *path, enum event_action act, int64_t size,
                const char *sha, const char *why)
{
    struct event_file f = {.path = path, .action = act, .size = size, .sha256 = sha, .error = why};
    event_emit_file(a->o->events, &f);
    a->checked++;
    if (act != EVENT_ACTION_MATCH)
        a->differences++;
}

/* SHA-256 of the source file (hex); a read error is returned. */
static int hash_source(struct against *a, const char *key, char hex[65], struct err *e)
{
    struct storage_reader *rd;
    int r = storage_read_open(a->src, key, 0, -1, &rd, NULL, e);
    if (r)
        return r;
    struct filter *h = filter_hash_new(HASH_SHA256);
    char *buf = malloc((size_t)1 << 20);
    if (!h || !buf)
        r = err_set(e, ERR_NOMEM, "out of memory hashing '%s'", key);
    while (!r) {
        size_t got = 0;
        if ((r = storage_read(rd, buf, (size_t)1 << 20, &got, e)) != 0 || got == 0)
            break;
        r = filter_write(h, buf, got, e);
    }
    if (!r)
        r = filter_finish(h, e);
    if (!r)
        filter_hash_hex(h, hex, 65);
    filter_chain_free(h);
    free(buf);
    storage_read_close(rd);
    return r;
}

static int compare_one(struct against *a, const struct manifest_entry *m,
                       const struct storage_entry *s, bool read_data, struct err *e)
{
    if (m->err_code) {
        a->skipped++;
        struct event_file f = {.path = s->key,
                               .action = EVENT_ACTION_SKIPPED,
                               .size = (int64_t)s->size,
                               .error = "recorded with an error in its run"};
        event_emit_file(a->o->events, &f);
        return 0;
    }
    bool link = s->type == STORAGE_TYPE_SYMLINK;
    if (link != (m->type == MANIFEST_SYMLINK)) {
        say(a, s->key, EVENT_ACTION_DIFFER, (int64_t)s->size, NULL, "file type differs");
        return 0;
    }
    if (link) {
        bool same = s->link_target && m->target && strlen(s->link_target) == m->target_len &&
                    !memcmp(s->link_target, m->target, m->target_len);
        say(a, s->key, same ? EVENT_ACTION_MATCH : EVENT_ACTION_DIFFER, 0, NULL,
            same ? NULL : "link target differs");
        return 0;
    }
    if (s->size != m->size) {
        say(a, s->key, EVENT_ACTION_DIFFER, (int64_t)s->size, NULL, "size differs");
        return 0;
    }
    if (read_data) {
        char hex[65];
        struct err fe;
        err_clear(&fe);
        int r = hash_source(a, s->key, hex, &fe);
        if (r == ERR_CANCELLED)
            return err_set(e, ERR_CANCELLED, "interrupted");
        if (r) {
            say(a, s->key, EVENT_ACTION_DIFFER, (int64_t)s->size, NULL, fe.msg);
            return 0;
        }
        bool same = !strcmp(hex, m->sha256);
        say(a, s->key, same ? EVENT_ACTION_MATCH : EVENT_ACTION_DIFFER, (int64_t)s->size,
            same ? hex : NULL, same ? NULL : "content differs");
        return 0;
    }
    int64_t prec = storage_mtime_precision(a->src);
    bool known = s->mtime_ns != STORAGE_MTIME_UNKNOWN && m->mtime_ns != INT64_MIN;
    int64_t diff = known ? s->mtime_ns - m->mtime_ns : 0;
    bool same = !known || (diff < prec && diff > -prec);
    say(a, s->key, same ? EVENT_ACTION_MATCH : EVENT_ACTION_DIFFER, (int64_t)s->size, NULL,
        same ? NULL : "modified since the run");
    return 0;
}

int verify_against(struct storage *dst, struct storage *src, const struct restore_opts *o,
                   bool read_data, struct restore_result *res, struct err *e)
{
    struct against a = {.src = src, .o = o};
    struct run_info ri;
    struct catalog_manifest m;
    struct storage_list *ls = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(res, 0, sizeof(*res));
    memset(&m, 0, sizeof(m));
    int r = catalog_find(dst, o->run, &ri, e);
    if (!r) {
        snprintf(res->run, sizeof(res->run), "%s", ri.run);
        r = catalog_manifest_open(dst, &ri, &m, e);
    }
    if (!r)
        r = storage_check_root(src, false, false, e);
    if (!r)
        r = storage_list_open(src, "", &ls, e);
    struct manifest_entry me;
    struct manifest_trailer_owned t;
    struct storage_entry se;
    memset(&me, 0, sizeof(me));
    memset(&se, 0, sizeof(se));
    bool have_m = false, have_s = false, m_done = r != 0, s_done = r != 0;
    while (!r) {
        if (!have_m && !m_done) {
            int n = manifest_read_next(m.reader, &me, &t, e);
            if (n < 0) {
                r = n;
                break;
            }
            have_m = n == 1;
            m_done = n == 2;
        }
        if (!have_s && !s_done) {
            int n = storage_list_next(ls, &se, e);
            if (n < 0) {
                r = n;
                break;
            }
            have_s = n == 1;
            s_done = n == 0;
        }
        if (!have_m && !have_s)
            break;
        int c;
        if (!have_m)
            c = 1;
        else if (!have_s)
            c = -1;
        else {
            size_t sl = strlen(se.key);
            c = memcmp(me.path, se.key, me.path_len < sl ? me.path_len : sl);
            if (!c)
                c = me.path_len < sl ? -1 : me.path_len > sl;
        }
        if (c < 0) {
            char *p = strndup(me.path, me.path_len);
            say(&a, p ? p : "?", EVENT_ACTION_MISSING_SRC, (int64_t)me.size, NULL,
                "in the run, no longer in the source");
            free(p);
            manifest_entry_clear(&me);
            have_m = false;
        } else if (c > 0) {
            say(&a, se.key, EVENT_ACTION_MISSING_DST, (int64_t)se.size, NULL,
                "in the source, not in the run");
            storage_entry_clear(&se);
            have_s = false;
        } else {
            r = compare_one(&a, &me, &se, read_data, e);
            manifest_entry_clear(&me);
            storage_entry_clear(&se);
            have_m = have_s = false;
        }
    }
    if (have_m)
        manifest_entry_clear(&me);
    if (have_s)
        storage_entry_clear(&se);
    storage_list_close(ls);
    catalog_manifest_close(&m);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    res->files = a.checked;
    res->skipped = a.skipped;
    res->errors = a.differences;
    res->status = r == ERR_CANCELLED ? EVENT_STATUS_CANCELLED
                  : r                ? EVENT_STATUS_FAILED
                  : a.differences    ? EVENT_STATUS_DIFFERENCES
                                     : EVENT_STATUS_SUCCEEDED;
    struct event_summary sum = {.command = "verify",
                                .source = storage_display(src),
                                .destination = storage_display(dst),
                                .status = res->status,
                                .files_checked = a.checked,
                                .differences = a.differences,
                                .files_skipped = a.skipped,
                                .elapsed = res->elapsed,
                                .error_code = r,
                                .error = r ? e->msg : NULL};
    event_emit_summary(o->events, &sum);
    return r;
}
