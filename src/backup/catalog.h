/*
 * catalog.h - the runs a destination holds (docs/FORMAT.md): a run exists
 * when its manifest does.
 */
#ifndef ARCA_BACKUP_CATALOG_H
#define ARCA_BACKUP_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/manifest.h"
#include "backup/runid.h"
#include "core/error.h"
#include "io/compress.h"

struct storage;

struct run_info {
    char run[RUNID_LEN + 1];
    enum manifest_mode mode;
    char manifest_key[128];
    bool manifest_zst;
    /* from the manifest (catalog_list with load, catalog_find) */
    char source[512];
    char archive_key[128];
    int64_t started_ms, finished_ms;
    char status[16];
    uint64_t files, bytes, errors;
    int64_t archive_size;
    char archive_sha256[65];
};

/* Every run, sorted by id (= time). With `load`, each manifest is read to
 * its trailer (a broken one fails the call). *out is malloc'ed. */
int catalog_list(struct storage *dst, bool load, struct run_info **out, size_t *n, struct err *e);
/* The run `run`, or the latest when NULL; loaded. ERR_NOT_FOUND naming the
 * destination when there is none. */
int catalog_find(struct storage *dst, const char *run, struct run_info *out, struct err *e);

/* Mirror runs that are marked started (runs/<id>.started) and have no
 * manifest: runs interrupted after they began changing current/. With
 * `pruned`, also the runs prune forgot whose versions/<id>/ kept runs still
 * read (runs/<id>.pruned). Sorted; *ids is malloc'ed (NULL when none). */
typedef char catalog_runid[RUNID_LEN + 1];
int catalog_interrupted(struct storage *dst, bool pruned, catalog_runid **ids, size_t *n,
                        struct err *e);
/* The marker keys of run `run`: runs/<run>.started, runs/<run>.pruned. */
void catalog_marker_key(char *out, size_t cap, const char *run);
void catalog_pruned_key(char *out, size_t cap, const char *run);

/* A manifest opened for reading, its header read and checked. */
struct manifest_src;
struct catalog_manifest {
    struct manifest_src *src;
    struct manifest_reader *reader;
    struct manifest_header_owned header;
};
int catalog_manifest_open(struct storage *dst, const struct run_info *ri,
                          struct catalog_manifest *m, struct err *e);
void catalog_manifest_close(struct catalog_manifest *m);

#endif
