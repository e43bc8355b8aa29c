/*
 * prefetch.h - small files of a storage read ahead on worker threads and
 * handed out in the order they were asked for.
 *
 * For a source where each file costs a round trip (S3, SFTP, SMB), a
 * consumer that must take files one after another (the tar stream of an
 * archive) would otherwise wait for every request in turn. The caller
 * looks ahead in its listing and asks for the next files with
 * prefetch_want; workers fetch them whole into memory; prefetch_open then
 * gives the oldest one as a reader. Memory is bounded by the budget given.
 */
#ifndef ARCA_STORAGE_PREFETCH_H
#define ARCA_STORAGE_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "storage/storage.h"

struct prefetch;

/* threads workers, files of at most max_file bytes, at most budget bytes
 * and 256 files ahead. NULL when out of memory. */
struct prefetch *prefetch_new(struct storage *st, int threads, uint64_t max_file, size_t budget);
/* Ask for key (listed with size bytes) to be read ahead. false, and
 * nothing queued, when it is too large or the window is full: the caller
 * opens it itself (and may ask again for later files once it took one). */
bool prefetch_want(struct prefetch *pf, const char *key, uint64_t size);
/* The oldest wanted file, which must be key, as a reader: its bytes (up to
 * one more than listed, so growth shows), then the error that stopped the
 * read, if any. Blocks until it is fetched. *ent, when not NULL, gets what
 * the reader learned on open (mtime, mode). An error opening it is
 * returned here, as storage_read_open would. */
int prefetch_open(struct prefetch *pf, const char *key, struct storage_reader **rd,
                  struct storage_entry *ent, struct err *e);
/* Stop the workers; files fetched and not taken are dropped. NULL is fine. */
void prefetch_free(struct prefetch *pf);

#endif
