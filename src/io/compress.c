/*
 * compress.c - zstd and gzip streams behind one step function, used by the
 * push filters and the pull reader.
 *
 * codec_step() runs a codec over whatever input it is given into a bounded
 * output buffer and reports how much it consumed and produced; the filters
 * and the reader only loop around it. Loops stop on "all input consumed and
 * the output buffer not full", so nothing a codec has made waits in its
 * internal buffers for the next write.
 */
#include "io/compress.h"

#include "core/log.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define COMPRESS_OUT ((size_t)128 << 10)

const char *compress_name(enum compress_kind k)
{
    return k == COMPRESS_ZSTD ? "zstd" : k == COMPRESS_GZIP ? "gzip" : "none";
}

const char *compress_suffix(enum compress_kind k)
{
    return k == COMPRESS_ZSTD ? ".zst" : k == COMPRESS_GZIP ? ".gz" : "";
}

int compress_parse(const char *s, enum compress_kind *out, struct err *e)
{
    if (!strcmp(s, "zstd"))
        *out = COMPRESS_ZSTD;
    else if (!strcmp(s, "gzip"))
        *out = COMPRESS_GZIP;
    else if (!strcmp(s, "none"))
        *out = COMPRESS_NONE;
    else
        return err_set(e, ERR_USAGE, "unknown compression '%s'; use zstd or gzip", s);
    return 0;
}

int compress_level_check(enum compress_kind k, int level, struct err *e)
{
    if (k == COMPRESS_ZSTD && (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()))
        return err_set(e, ERR_USAGE,
                       "compression level %d is out of range for zstd; use 1 to %d (0: the "
                       "default 3)",
                       level, ZSTD_maxCLevel());
    if (k == COMPRESS_GZIP && (level < 0 || level > 9))
        return err_set(e, ERR_USAGE,
                       "compression level %d is out of range for gzip; use 1 to 9 (0: the "
                       "default 6)",
                       level);
    return 0;
}

/* ---- one codec, either direction ----------------------------------------- */

struct codec {
    enum compress_kind kind;
    bool decompress;
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    z_stream z;
    bool z_ready;
    /* decompress */
    bool started;     /* some input was consumed */
    bool in_frame;    /* a frame/member started and is not complete */
    unsigned members; /* gzip members completed */
    bool zero_pad;    /* gzip: in the zero bytes after the last member */
};

static void codec_free(struct codec *c)
{
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    if (c->z_ready) {
        if (c->decompress)
            inflateEnd(&c->z);
        else
            deflateEnd(&c->z);
    }
    memset(c, 0, sizeof(*c));
}

static int zstd_workers(int threads)
{
    if (threads >= 0)
        return threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    int most = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers).upperBound;
    return n < 1 ? 1 : n > most ? most : (int)n;
}

static bool codec_init(struct codec *c, enum compress_kind k, bool decompress, int level,
                       int threads)
{
    memset(c, 0, sizeof(*c));
    c->kind = k;
    c->decompress = decompress;
    if (compress_level_check(k, level, NULL) != 0)
        return false;
    if (k == COMPRESS_ZSTD && decompress)
        return (c->zd = ZSTD_createDCtx()) != NULL;
    if (k == COMPRESS_ZSTD) {
        if (!(c->zc = ZSTD_createCCtx()))
            return false;
        if (ZSTD_isError(
                ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, level ? level : 3)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1)))
            return false;
        int workers = zstd_workers(threads);
        if (workers > 0 && ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_nbWorkers, workers)))
            log_warn("this libzstd cannot use %d worker threads; compressing in one thread",
                     workers);
        return true;
    }
    if (k == COMPRESS_GZIP) {
        int r = decompress ? inflateInit2(&c->z, 15 + 16)
                           : deflateInit2(&c->z, level ? level : 6, Z_DEFLATED, 15 + 16, 8,
                                          Z_DEFAULT_STRATEGY);
        c->z_ready = r == Z_OK;
        return c->z_ready;
    }
    return k == COMPRESS_NONE;
}

static int corrupt(struct err *e, const struct codec *c, const char *why)
{
    char low[200];
    snprintf(low, sizeof(low), "%s", why);
    low[0] = (char)tolower((unsigned char)low[0]); /* zstd's reasons are capitalised */
    return err_set(e, ERR_CORRUPT, "corrupt %s data: %s", compress_name(c->kind), low);
}

static int zstd_decompress_error(struct err *e, const struct codec *c, size_t r)
{
    if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge)
        return err_set(e, ERR_CORRUPT,
                       "zstd data needs a window over 128 MiB (zstd --long=28 or more); "
                       "recompress it without --long");
    if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
        return err_set(e, ERR_NOMEM, "out of memory decompressing zstd data");
    return corrupt(e, c, ZSTD_getErrorName(r));
}

/* At the end of a decompressed stream: 0, or why it is not complete. */
static int codec_end_check(const struct codec *c, struct err *e)
{
    if (!c->decompress)
        return 0;
    if (!c->started)
        return err_set(e, ERR_CORRUPT, "truncated %s data: the stream is empty",
                       compress_name(c->kind));
    if (c->in_frame)
        return err_set(e, ERR_CORRUPT, "truncated %s data: the stream ends inside a %s",
                       compress_name(c->kind), c->kind == COMPRESS_GZIP ? "member" : "frame");
    return 0;
}

static int zstd_step(struct codec *c, const void *in, size_t in_len, size_t *used, void *out,
                     size_t cap, size_t *made, bool end, struct err *e)
{
    ZSTD_inBuffer ib = {in, in_len, 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    size_t r;
    if (c->decompress) {
        r = ZSTD_decompressStream(c->zd, &ob, &ib);
        if (ZSTD_isError(r))
            return zstd_decompress_error(e, c, r);
        if (ib.pos > 0)
            c->started = true;
        if (ib.pos > 0 || ob.pos > 0)
            c->in_frame = r != 0; /* 0: a frame is complete and flushed */
    } else {
        r = ZSTD_compressStream2(c->zc, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r))
            return err_set(
                e, ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? ERR_NOMEM : ERR_INTERNAL,
                "zstd compression failed: %s", ZSTD_getErrorName(r));
    }
    *used = ib.pos;
    *made = ob.pos;
    if (c->decompress)
        return end && ib.pos == in_len && ob.pos < cap ? 1 : 0;
    return end && r == 0 ? 1 : 0;
}

/* Zero bytes after the last gzip member, which gzip -d ignores (tape
 * padding); anything else there is refused. */
static int gzip_zero_pad(struct codec *c, const unsigned char *in, size_t in_len, size_t *used,
                         bool end, struct err *e)
{
    size_t i = 0;
    while (i < in_len && in[i] == 0)
        i++;
    *used = i;
    if (i > 0)
        c->zero_pad = true;
    if (i < in_len)
        return err_set(e, ERR_CORRUPT,
                       "corrupt gzip data: bytes other than zeros after the zero padding that "
                       "follows member %u",
                       c->members);
    return end ? 1 : 0;
}

static int gzip_step(struct codec *c, const void *in, size_t in_len, size_t *used, void *out,
                     size_t cap, size_t *made, bool end, struct err *e)
{
    int zr;
    if (c->decompress && !c->in_frame) {
        if (in_len == 0)
            return end ? 1 : 0;
        if (c->zero_pad || (c->members > 0 && *(const unsigned char *)in == 0))
            return gzip_zero_pad(c, in, in_len, used, end, e);
    }
    c->z.next_in = (Bytef *)(uintptr_t)in;
    c->z.avail_in = (uInt)(in_len > UINT32_MAX ? UINT32_MAX : in_len);
    c->z.next_out = out;
    c->z.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    if (!c->decompress) {
        zr = deflate(&c->z, end ? Z_FINISH : Z_NO_FLUSH);
        *used = in_len - c->z.avail_in;
        *made = cap - c->z.avail_out;
        if (zr == Z_STREAM_END)
            return 1;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return err_set(e, ERR_INTERNAL, "gzip compression failed (zlib error %d)", zr);
        return 0;
    }
    zr = inflate(&c->z, Z_NO_FLUSH);
    *used = in_len - c->z.avail_in;
    *made = cap - c->z.avail_out;
    if (*used > 0)
        c->started = true;
    switch (zr) {
    case Z_OK:
        c->in_frame = true;
        return 0;
    case Z_STREAM_END:
        c->in_frame = false;
        c->members++;
        inflateReset(&c->z); /* another member may follow, as gzip -d allows */
        return 0;
    case Z_BUF_ERROR: /* no progress: needs more input (at the end: truncated) */
        return end ? 1 : 0;
    case Z_MEM_ERROR:
        return err_set(e, ERR_NOMEM, "out of memory decompressing gzip data");
    case Z_NEED_DICT:
        return corrupt(e, c, "a member needs a preset dictionary");
    default:
        return corrupt(e, c, c->z.msg ? c->z.msg : "inflate failed");
    }
}

/*
 * Run the codec over in[0..in_len): *used input bytes consumed, *made
 * output bytes written to out[0..cap). `end`: no more input follows
 * (compressors finish the stream). Returns 1 when the stream is complete
 * and everything is out (only with `end`), 0 to be called again, or an
 * error.
 */
static int codec_step(struct codec *c, const void *in, size_t in_len, size_t *used, void *out,
                      size_t cap, size_t *made, bool end, struct err *e)
{
    *used = *made = 0;
    if (c->kind == COMPRESS_ZSTD)
        return zstd_step(c, in, in_len, used, out, cap, made, end, e);
    return gzip_step(c, in, in_len, used, out, cap, made, end, e);
}

/* Two calls in a row that neither consume nor produce would loop forever;
 * the codecs promise progress, so this is a bug, reported rather than
 * hung on. */
static int stalled(const struct codec *c, int *stalls, size_t used, size_t made, struct err *e)
{
    *stalls = used || made ? 0 : *stalls + 1;
    if (*stalls < 3)
        return 0;
    return err_set(e, ERR_INTERNAL, "%s %s makes no progress", compress_name(c->kind),
                   c->decompress ? "decompression" : "compression");
}

/* ---- push filters --------------------------------------------------------- */

struct codec_filter {
    struct codec c;
    unsigned char *out;
};

static int cf_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    struct codec_filter *s = f->state;
    if (s->c.kind == COMPRESS_NONE)
        return filter_pass(f, data, len, e);
    const unsigned char *p = data;
    size_t made;
    int stalls = 0;
    do {
        size_t used;
        int r = codec_step(&s->c, p, len, &used, s->out, COMPRESS_OUT, &made, false, e);
        if (r < 0 || (r = stalled(&s->c, &stalls, used, made, e)) != 0)
            return r;
        if (made && (r = filter_pass(f, s->out, made, e)) != 0)
            return r;
        p += used;
        len -= used;
    } while (len > 0 || made == COMPRESS_OUT);
    return 0;
}

static int cf_finish(struct filter *f, struct err *e)
{
    struct codec_filter *s = f->state;
    if (s->c.kind == COMPRESS_NONE)
        return 0;
    int stalls = 0;
    for (;;) {
        size_t used, made;
        int done = codec_step(&s->c, NULL, 0, &used, s->out, COMPRESS_OUT, &made, true, e);
        if (done < 0)
            return done;
        int r = made ? filter_pass(f, s->out, made, e) : 0;
        if (r)
            return r;
        if (done == 1)
            break;
        if ((r = stalled(&s->c, &stalls, used, made, e)) != 0)
            return r;
    }
    return codec_end_check(&s->c, e);
}

static void cf_free(struct filter *f)
{
    struct codec_filter *s = f->state;
    if (!s)
        return;
    codec_free(&s->c);
    free(s->out);
    free(s);
}

static const struct filter_ops compress_ops = {"compress", cf_write, cf_finish, cf_free};
static const struct filter_ops decompress_ops = {"decompress", cf_write, cf_finish, cf_free};

static struct filter *codec_filter_new(enum compress_kind k, bool decompress, int level,
                                       int threads)
{
    struct filter *f = calloc(1, sizeof(*f));
    struct codec_filter *s = calloc(1, sizeof(*s));
    if (!f || !s || !(s->out = malloc(COMPRESS_OUT)) ||
        !codec_init(&s->c, k, decompress, level, threads)) {
        if (s) {
            codec_free(&s->c);
            free(s->out);
        }
        free(s);
        free(f);
        return NULL;
    }
    f->ops = decompress ? &decompress_ops : &compress_ops;
    f->state = s;
    return f;
}

struct filter *filter_compress_new(enum compress_kind k, int level, int threads)
{
    return codec_filter_new(k, false, level, threads);
}

struct filter *filter_decompress_new(enum compress_kind k)
{
    return codec_filter_new(k, true, 0, 0);
}

/* ---- pull reader ------------------------------------------------------------ */

struct decompress_reader {
    struct codec c;
    compress_read_fn fn;
    void *ctx;
    unsigned char *in;
    size_t in_len, in_pos;
    bool eof, done;
    struct err failed; /* code 0, or the error every later call returns */
};

struct decompress_reader *decompress_reader_new(enum compress_kind k, compress_read_fn fn,
                                                void *ctx)
{
    struct decompress_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->in = malloc(COMPRESS_OUT)) || !codec_init(&r->c, k, true, 0, 0)) {
        if (r) {
            codec_free(&r->c);
            free(r->in);
        }
        free(r);
        return NULL;
    }
    r->fn = fn;
    r->ctx = ctx;
    return r;
}

static int reader_step(struct decompress_reader *r, void *buf, size_t cap, size_t *got,
                       struct err *e)
{
    int stalls = 0;
    while (!r->done) {
        if (r->in_pos == r->in_len && !r->eof) {
            size_t n = 0;
            int rc = r->fn(r->ctx, r->in, COMPRESS_OUT, &n, e);
            if (rc)
                return rc;
            r->in_len = n;
            r->in_pos = 0;
            r->eof = n == 0;
        }
        size_t used, made;
        int rc = codec_step(&r->c, r->in + r->in_pos, r->in_len - r->in_pos, &used, buf, cap, &made,
                            r->eof, e);
        if (rc < 0)
            return rc;
        r->in_pos += used;
        if (made) {
            *got = made;
            return 0;
        }
        if (rc == 1) {
            r->done = true;
            return codec_end_check(&r->c, e);
        }
        if (r->in_pos < r->in_len && (rc = stalled(&r->c, &stalls, used, made, e)) != 0)
            return rc;
    }
    return 0;
}

int decompress_read(struct decompress_reader *r, void *buf, size_t cap, size_t *got, struct err *e)
{
    *got = 0;
    if (r->failed.code) {
        if (e)
            *e = r->failed;
        return r->failed.code;
    }
    if (cap == 0)
        return err_set(e, ERR_INTERNAL, "decompress_read called with no room");
    int rc = r->c.kind == COMPRESS_NONE ? r->fn(r->ctx, buf, cap, got, e)
                                        : reader_step(r, buf, cap, got, e);
    if (rc) {
        r->failed.code = rc;
        snprintf(r->failed.msg, sizeof(r->failed.msg), "%s", e ? e->msg : "");
    }
    return rc;
}

void decompress_reader_free(struct decompress_reader *r)
{
    if (!r)
        return;
    codec_free(&r->c);
    free(r->in);
    free(r);
}
