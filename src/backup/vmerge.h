/*
 * vmerge.h - the `versions/<k>/` trees of several runs read as one sorted
 * stream of paths (docs/FORMAT.md, Restore rule).
 *
 * Each path comes once, with the EARLIEST of the given runs that holds it
 * and that object's listed size. Memory is one listing per run.
 */
#ifndef ARCA_BACKUP_VMERGE_H
#define ARCA_BACKUP_VMERGE_H

#include <stddef.h>
#include <stdint.h>

#include "backup/catalog.h"
#include "core/error.h"

struct storage;
struct vmerge;

/* runs: n run ids in increasing order (copied). n may be 0 (an empty
 * stream). */
int vmerge_open(struct storage *dst, const catalog_runid *runs, size_t n, struct vmerge **out,
                struct err *e);
/* Move to the first path >= key (byte order; "" for the first path). 1 and
 * *path (borrowed until the next call), *run (index into runs), *size; 0
 * when no such path is left; or a negative error. Keys must not go back. */
int vmerge_seek(struct vmerge *m, const char *key, const char **path, size_t *run, uint64_t *size,
                struct err *e);
/* After vmerge_seek returned path: the indices of every run holding it, in
 * increasing order, into idx (room for n runs); returns how many. */
size_t vmerge_holders(struct vmerge *m, const char *path, size_t *idx);
void vmerge_close(struct vmerge *m);

#endif
