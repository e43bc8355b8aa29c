/*
 * copy_file.c - one file from a storage to another (see copy_file.h).
 */
#include "engine/copy_file.h"

#include "core/log.h"
#include "io/filter.h"
#include "storage/multiread.h"

#include <inttypes.h>
#include <string.h>

/* Range size of a file read as several streams (read_streams buffers of it). */
#define COPY_STREAM_CHUNK ((size_t)4 << 20)

static int size_changed(struct err *e, const char *key, uint64_t listed, uint64_t got, bool more)
{
    return err_set(e, ERR_IO,
                   "'%s' changed size while being read (listed %" PRIu64 ", read %s%" PRIu64
                   "); will be copied next run",
                   key, listed, more ? "at least " : "", got);
}

int copy_pump(struct storage_reader *rd, const char *key, uint64_t size, struct filter *chain,
              const struct copy_file_opts *o, struct err *e)
{
    uint64_t total = 0;
    int r;
    for (;;) {
        size_t got = 0;
        if (o->stop && atomic_load(o->stop))
            return err_set(e, ERR_CANCELLED, "stopped: the run failed");
        if ((r = storage_read(rd, o->buf, o->block_size, &got, e)) != 0)
            return r;
        if (got == 0)
            break;
        total += got;
        if (total > size)
            return size_changed(e, key, size, total, true);
        if ((r = filter_write(chain, o->buf, got, e)) != 0)
            return r;
    }
    if (total != size)
        return size_changed(e, key, size, total, false);
    return filter_finish(chain, e);
}

static int sink_storage_write(void *ctx, const void *data, size_t len, struct err *e)
{
    return storage_write(ctx, data, len, e);
}

/* The source file's bytes, readable again by the destination writer. */
struct reread_ctx {
    struct storage *src;
    const char *key;
};

static int reread_open(void *ctx, uint64_t offset, uint64_t length, struct storage_reader **out,
                       struct err *e)
{
    struct reread_ctx *rc = ctx;
    return storage_read_open(rc->src, rc->key, offset, (int64_t)length, out, NULL, e);
}

int copy_file(struct storage *src, const struct storage_entry *s, struct storage *dst,
              const char *dst_key, const struct copy_file_opts *o, char sha256[65],
              struct storage_entry *kept, struct err *e)
{
    struct storage_reader *rd = NULL;
    struct storage_writer *wr = NULL;
    struct filter *chain = NULL;
    struct storage_entry rent;
    int r;
    memset(&rent, 0, sizeof(rent));
    rent.mtime_ns = STORAGE_MTIME_UNKNOWN;

    /* Open the reader first: it may tell the mtime the listing lacks. A
     * large file from a source that gains from it is read as several
     * ranges at once. */
    if ((storage_features(src) & STORAGE_FEATURE_PARALLEL_READ) && o->read_streams > 1 &&
        o->read_stream_cutoff && s->size >= o->read_stream_cutoff) {
        log_debug("reading '%s' as %d ranges at once", s->key, o->read_streams);
        r = storage_multiread_open(src, s->key, s->size, (unsigned)o->read_streams,
                                   COPY_STREAM_CHUNK, &rd, &rent, e);
    } else
        r = storage_read_open(src, s->key, 0, -1, &rd, &rent, e);
    if (r)
        goto out;
    struct storage_write_opts wo = {
        .size_hint = (int64_t)s->size,
        .mtime_ns = STORAGE_MTIME_UNKNOWN,
        .mode = s->mode ? s->mode : rent.mode,
    };
    /* A listing without true mtimes (S3 LastModified is the upload time)
     * loses to what the reader learned from metadata. */
    bool list_true = storage_features(src) & STORAGE_FEATURE_LIST_MTIME;
    if (list_true && s->mtime_ns != STORAGE_MTIME_UNKNOWN)
        wo.mtime_ns = s->mtime_ns;
    else if (rent.mtime_ns != STORAGE_MTIME_UNKNOWN)
        wo.mtime_ns = rent.mtime_ns;
    else
        wo.mtime_ns = s->mtime_ns;
    /* a local source can be read again: the writer need not hold parts */
    struct reread_ctx rc = {src, s->key};
    struct storage_range_source reread = {reread_open, &rc};
    unsigned need = STORAGE_FEATURE_CHEAP_REREAD | STORAGE_FEATURE_RANGE_READ;
    if ((storage_features(src) & need) == need)
        wo.reread = &reread;

    r = storage_write_open(dst, dst_key, &wo, &wr, e);
    if (r)
        goto out;
    struct filter *parts[5];
    size_t np = 0;
    if (o->hash)
        parts[np++] = filter_hash_new(HASH_SHA256);
    for (int i = 0; i < 2; i++)
        if (o->count[i])
            parts[np++] = filter_counter_new(o->count[i]);
    if (o->ratelimit)
        parts[np++] = filter_ratelimit_new(o->ratelimit);
    parts[np++] = filter_sink_new(sink_storage_write, wr);
    chain = filter_chain(parts, np);
    if (!chain) {
        r = err_set(e, ERR_NOMEM, "out of memory copying '%s'", s->key);
        goto out;
    }
    if ((r = copy_pump(rd, s->key, s->size, chain, o, e)) != 0)
        goto out;
    if (o->hash)
        filter_hash_hex(chain, sha256, 65);
    if (o->hash && o->expect_sha256 && strcmp(sha256, o->expect_sha256) != 0) {
        r = err_set(e, ERR_CORRUPT,
                    "'%s' fails its SHA-256 check (expected %.16s..., read %.16s...); not written",
                    s->key, o->expect_sha256, sha256);
        goto out;
    }
    r = storage_write_commit(wr, e); /* frees wr either way */
    wr = NULL;
    if (!r && kept) {
        kept->mtime_ns = wo.mtime_ns;
        kept->mode = wo.mode;
    }
out:
    if (wr)
        storage_write_abort(wr);
    storage_read_close(rd);
    filter_chain_free(chain);
    storage_entry_clear(&rent);
    return r;
}
