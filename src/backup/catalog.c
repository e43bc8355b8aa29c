/*
 * catalog.c - the runs at a destination: which manifests exist, what their
 * headers and trailers say, and a manifest opened for reading.
 */
#include "backup/catalog.h"

#include "core/log.h"
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_SUFFIX ".manifest.jsonl"

struct manifest_src {
    struct storage_reader *rd;
    struct decompress_reader *dz;
    char key[128]; /* the manifest's, for messages */
};

static int read_raw(void *ctx, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct manifest_src *s = ctx;
    return storage_read(s->rd, buf, cap, got, e);
}

static int read_src(void *ctx, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct manifest_src *s = ctx;
    int r =
        s->dz ? decompress_read(s->dz, buf, cap, got, e) : storage_read(s->rd, buf, cap, got, e);
    return r ? err_wrap(e, "reading manifest '%s'", s->key) : 0;
}

void catalog_manifest_close(struct catalog_manifest *m)
{
    if (!m)
        return;
    manifest_reader_free(m->reader);
    if (m->src) {
        decompress_reader_free(m->src->dz);
        storage_read_close(m->src->rd);
        free(m->src);
    }
    manifest_header_owned_clear(&m->header);
    memset(m, 0, sizeof(*m));
}

int catalog_manifest_open(struct storage *dst, const struct run_info *ri,
                          struct catalog_manifest *m, struct err *e)
{
    memset(m, 0, sizeof(*m));
    m->src = calloc(1, sizeof(*m->src));
    if (!m->src)
        return err_set(e, ERR_NOMEM, "out of memory reading '%s'", ri->manifest_key);
    snprintf(m->src->key, sizeof(m->src->key), "%s", ri->manifest_key);
    int r = storage_read_open(dst, ri->manifest_key, 0, -1, &m->src->rd, NULL, e);
    if (r)
        goto fail;
    if (ri->manifest_zst &&
        !(m->src->dz = decompress_reader_new(COMPRESS_ZSTD, read_raw, m->src))) {
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", ri->manifest_key);
        goto fail;
    }
    if (!(m->reader = manifest_reader_new(read_src, m->src, ri->manifest_key))) {
        r = err_set(e, ERR_NOMEM, "out of memory reading '%s'", ri->manifest_key);
        goto fail;
    }
    r = manifest_read_header(m->reader, &m->header, e);
    if (r)
        goto fail;
    if (strcmp(m->header.run, ri->run) != 0) {
        r = err_set(e, ERR_CORRUPT, "manifest '%s' says it is run '%s'; it was renamed or copied",
                    ri->manifest_key, m->header.run);
        goto fail;
    }
    return 0;
fail:
    catalog_manifest_close(m);
    return r;
}

/* Key "runs/<id>.manifest.jsonl[.zst]" or "archives/...": fill the id. */
static bool manifest_key_run(const char *key, const char *prefix, char run[RUNID_LEN + 1],
                             bool *zst)
{
    size_t pl = strlen(prefix);
    if (strncmp(key, prefix, pl) != 0)
        return false;
    const char *id = key + pl;
    const char *rest = id + RUNID_LEN;
    if (strlen(id) < RUNID_LEN)
        return false;
    if (!strcmp(rest, MANIFEST_SUFFIX))
        *zst = false;
    else if (!strcmp(rest, MANIFEST_SUFFIX ".zst"))
        *zst = true;
    else
        return false;
    memcpy(run, id, RUNID_LEN);
    run[RUNID_LEN] = '\0';
    return runid_valid(run);
}

/* Read a whole manifest to its trailer, filling ri. */
static int run_info_load(struct storage *dst, struct run_info *ri, struct err *e)
{
    struct catalog_manifest m;
    int r = catalog_manifest_open(dst, ri, &m, e);
    if (r)
        return r;
    ri->mode = m.header.mode;
    ri->started_ms = m.header.started_ms;
    snprintf(ri->source, sizeof(ri->source), "%s", m.header.source ? m.header.source : "");
    snprintf(ri->archive_key, sizeof(ri->archive_key), "%s",
             m.header.archive ? m.header.archive : "");
    struct manifest_entry ent;
    struct manifest_trailer_owned t;
    memset(&ent, 0, sizeof(ent));
    memset(&t, 0, sizeof(t));
    for (;;) {
        r = manifest_read_next(m.reader, &ent, &t, e);
        if (r == 1) {
            manifest_entry_clear(&ent);
            continue;
        }
        break;
    }
    if (r == 2) {
        r = 0;
        ri->finished_ms = t.finished_ms;
        snprintf(ri->status, sizeof(ri->status), "%s", t.status);
        ri->files = t.files;
        ri->bytes = t.bytes;
        ri->errors = t.errors;
        ri->archive_size = t.archive_size;
        snprintf(ri->archive_sha256, sizeof(ri->archive_sha256), "%s", t.archive_sha256);
    }
    manifest_trailer_owned_clear(&t);
    catalog_manifest_close(&m);
    return r;
}

static int cmp_run(const void *a, const void *b)
{
    return strcmp(((const struct run_info *)a)->run, ((const struct run_info *)b)->run);
}

int catalog_list(struct storage *dst, bool load, struct run_info **out, size_t *n, struct err *e)
{
    static const char *const prefixes[] = {"runs/", "archives/"};
    struct run_info *v = NULL;
    size_t len = 0, cap = 0;
    int r = 0;
    *out = NULL;
    *n = 0;
    for (size_t p = 0; p < 2 && !r; p++) {
        struct storage_list *ls;
        struct storage_entry ent;
        if ((r = storage_list_open(dst, prefixes[p], &ls, e)) != 0)
            break;
        while ((r = storage_list_next(ls, &ent, e)) == 1) {
            char run[RUNID_LEN + 1];
            bool zst = false;
            if (manifest_key_run(ent.key, prefixes[p], run, &zst)) {
                if (len == cap) {
                    cap = cap ? cap * 2 : 16;
                    struct run_info *nv = realloc(v, cap * sizeof(*v));
                    if (!nv) {
                        storage_entry_clear(&ent);
                        r = err_set(e, ERR_NOMEM, "out of memory listing runs");
                        break;
                    }
                    v = nv;
                }
                memset(&v[len], 0, sizeof(v[len]));
                snprintf(v[len].run, sizeof(v[len].run), "%s", run);
                snprintf(v[len].manifest_key, sizeof(v[len].manifest_key), "%s", ent.key);
                v[len].manifest_zst = zst;
                v[len].mode = p == 0 ? MANIFEST_MIRROR : MANIFEST_ARCHIVE;
                len++;
            }
            storage_entry_clear(&ent);
        }
        storage_list_close(ls);
        if (r > 0)
            r = 0;
    }
    if (r < 0) {
        free(v);
        return r;
    }
    qsort(v, len, sizeof(*v), cmp_run);
    for (size_t i = 0; load && i < len; i++) {
        if ((r = run_info_load(dst, &v[i], e)) != 0) {
            free(v);
            return r;
        }
    }
    *out = v;
    *n = len;
    return 0;
}

int catalog_find(struct storage *dst, const char *run, struct run_info *out, struct err *e)
{
    struct run_info *v;
    size_t n;
    if (run && !runid_valid(run))
        return err_set(e, ERR_USAGE,
                       "'%s' is not a run id (like 20261122T091500Z-3fa94c1e); 'arca runs %s' "
                       "lists them",
                       run, storage_display(dst));
    int r = catalog_list(dst, false, &v, &n, e);
    if (r)
        return r;
    const struct run_info *hit = NULL;
    for (size_t i = 0; i < n; i++)
        if (run ? !strcmp(v[i].run, run) : true)
            hit = &v[i]; /* sorted: the last is the latest */
    if (!hit) {
        free(v);
        if (run)
            return err_set(e, ERR_NOT_FOUND,
                           "no run '%s' at '%s' (a run without a manifest does not exist); "
                           "'arca runs %s' lists them",
                           run, storage_display(dst), storage_display(dst));
        return err_set(e, ERR_NOT_FOUND, "no backup runs at '%s'", storage_display(dst));
    }
    *out = *hit;
    free(v);
    return run_info_load(dst, out, e);
}

#define MARKER_SUFFIX ".started"

#define PRUNED_SUFFIX ".pruned"

void catalog_marker_key(char *out, size_t cap, const char *run)
{
    snprintf(out, cap, "runs/%s" MARKER_SUFFIX, run);
}

void catalog_pruned_key(char *out, size_t cap, const char *run)
{
    snprintf(out, cap, "runs/%s" PRUNED_SUFFIX, run);
}

/* "<id><suffix>" */
static bool marker_of(const char *id, const char *suffix)
{
    return strlen(id) == RUNID_LEN + strlen(suffix) && !strcmp(id + RUNID_LEN, suffix);
}

int catalog_interrupted(struct storage *dst, bool pruned, catalog_runid **ids, size_t *n,
                        struct err *e)
{
    catalog_runid *v = NULL, last_manifest = "";
    size_t len = 0, cap = 0;
    struct storage_list *ls;
    struct storage_entry ent;
    *ids = NULL;
    *n = 0;
    int r = storage_list_open(dst, "runs/", &ls, e);
    if (r)
        return r;
    /* "runs/<id>.manifest..." sorts before "runs/<id>.started" */
    while ((r = storage_list_next(ls, &ent, e)) == 1) {
        char run[RUNID_LEN + 1];
        bool zst;
        const char *id = ent.key + 5;
        if (manifest_key_run(ent.key, "runs/", run, &zst)) {
            memcpy(last_manifest, run, sizeof(run));
        } else if (marker_of(id, MARKER_SUFFIX) || (pruned && marker_of(id, PRUNED_SUFFIX))) {
            memcpy(run, id, RUNID_LEN);
            run[RUNID_LEN] = '\0';
            /* one id once: a manifest or a marker before it counts */
            if (runid_valid(run) && strcmp(run, last_manifest) != 0 &&
                (!len || strcmp(v[len - 1], run) != 0)) {
                if (len == cap) {
                    cap = cap ? cap * 2 : 8;
                    catalog_runid *nv = realloc(v, cap * sizeof(*v));
                    if (!nv) {
                        storage_entry_clear(&ent);
                        r = err_set(e, ERR_NOMEM, "out of memory listing runs");
                        break;
                    }
                    v = nv;
                }
                memcpy(v[len++], run, sizeof(run));
            }
        }
        storage_entry_clear(&ent);
    }
    storage_list_close(ls);
    if (r < 0) {
        free(v);
        return r;
    }
    *ids = v;
    *n = len;
    return 0;
}
