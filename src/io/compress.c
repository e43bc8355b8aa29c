/*
 * compress.c - zstd and gzip streams behind one step function, used by the
 * push filters and the pull reader.
 */
#include "io/compress.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

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

/* ---- one codec, either direction ---------------------------------------- */

struct codec {
    enum compress_kind kind;
    bool decompress;
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    z_stream z;
    bool z_ready;
    bool in_frame; /* decompress: a frame/member started and is not complete */
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
}

static bool codec_init(struct codec *c, enum compress_kind k, bool decompress, int level,
                       int threads)
{
    memset(c, 0, sizeof(*c));
    c->kind = k;
    c->decompress = decompress;
    if (k == COMPRESS_ZSTD && decompress)
        return (c->zd = ZSTD_createDCtx()) != NULL;
    if (k == COMPRESS_ZSTD) {
        if (!(c->zc = ZSTD_createCCtx()))
            return false;
        ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, level ? level : 3);
        ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1);
        if (threads > 0)
            ZSTD_CCtx_setParameter(c->zc, ZSTD_c_nbWorkers, threads);
        return true;
    }
    if (k == COMPRESS_GZIP) {
        int r = decompress ? inflateInit2(&c->z, 15 + 16)
                           : deflateInit2(&c->z, level ? level : 6, Z_DEFLATED, 15 + 16, 8,
                                          Z_DEFAULT_STRATEGY);
        c->z_ready = r == Z_OK;
        return c->z_ready;
    }
    return false;
}

static int corrupt(struct err *e, const struct codec *c, const char *why)
{
    return err_set(e, ERR_CORRUPT, "corrupt %s data: %s", compress_name(c->kind), why);
}

/*
 * Run the codec over in[0..in_len): *used input bytes consumed, *made
 * output bytes written to out. `end`: no more input follows (compressors
 * finish the stream). Returns 1 when everything is flushed (end reached),
 * 0 to be called again, or an error.
 */
static int codec_step(struct codec *c, const void *in, size_t in_len, size_t *used, void *out,
                      size_t cap, size_t *made, bool end, struct err *e)
{
    *used = *made = 0;
    if (c->kind == COMPRESS_ZSTD) {
        ZSTD_inBuffer ib = {in, in_len, 0};
        ZSTD_outBuffer ob = {out, cap, 0};
        size_t r;
        if (c->decompress) {
            r = ZSTD_decompressStream(c->zd, &ob, &ib);
            if (ZSTD_isError(r))
                return corrupt(e, c, ZSTD_getErrorName(r));
            if (ib.pos > 0 || ob.pos > 0)
                c->in_frame = r != 0;
        } else {
            r = ZSTD_compressStream2(c->zc, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(r))
                return err_set(e, ERR_INTERNAL, "zstd compression failed: %s",
                               ZSTD_getErrorName(r));
        }
        *used = ib.pos;
        *made = ob.pos;
        if (c->decompress)
            return end && ib.pos == in_len && ob.pos < cap ? 1 : 0;
        return end && r == 0 ? 1 : 0;
    }
    c->z.next_in = (Bytef *)(uintptr_t)in;
    c->z.avail_in = (uInt)(in_len > UINT32_MAX ? UINT32_MAX : in_len);
    c->z.next_out = out;
    c->z.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    int zr;
    if (c->decompress) {
        if (in_len == 0 && !c->in_frame)
            return end ? 1 : 0;
        zr = inflate(&c->z, Z_NO_FLUSH);
        *used = in_len - c->z.avail_in;
        *made = cap - c->z.avail_out;
        if (zr == Z_STREAM_END) {
            c->in_frame = false;
            inflateReset(&c->z); /* another member may follow, as gzip -d allows */
            return 0;
        }
        if (zr == Z_BUF_ERROR && *used == 0 && *made == 0)
            return end ? 1 : 0; /* needs more input (at the end: truncated, caller checks) */
        if (zr != Z_OK)
            return corrupt(e, c, c->z.msg ? c->z.msg : "inflate failed");
        c->in_frame = true;
        return 0;
    }
    zr = deflate(&c->z, end ? Z_FINISH : Z_NO_FLUSH);
    *used = in_len - c->z.avail_in;
    *made = cap - c->z.avail_out;
    if (zr == Z_STREAM_END)
        return 1;
    if (zr != Z_OK && zr != Z_BUF_ERROR)
        return err_set(e, ERR_INTERNAL, "gzip compression failed (%d)", zr);
    return 0;
}

/* ---- push filters ---------------------------------------------------------- */

struct codec_filter {
    struct codec c;
    unsigned char *out;
};

static int cf_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    struct codec_filter *s = f->state;
    const unsigned char *p = data;
    while (len > 0) {
        size_t used, made;
        int r = codec_step(&s->c, p, len, &used, s->out, COMPRESS_OUT, &made, false, e);
        if (r < 0)
            return r;
        if (made && (r = filter_pass(f, s->out, made, e)) != 0)
            return r;
        p += used;
        len -= used;
    }
    return 0;
}

static int cf_finish(struct filter *f, struct err *e)
{
    struct codec_filter *s = f->state;
    for (;;) {
        size_t used, made;
        int done = codec_step(&s->c, NULL, 0, &used, s->out, COMPRESS_OUT, &made, true, e);
        if (done < 0)
            return done;
        int r = made ? filter_pass(f, s->out, made, e) : 0;
        if (r)
            return r;
        if (done == 1 && made < COMPRESS_OUT)
            break;
    }
    if (s->c.decompress && s->c.in_frame)
        return err_set(e, ERR_CORRUPT, "truncated %s data", compress_name(s->c.kind));
    return 0;
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

static const struct filter_ops codec_ops = {"codec", cf_write, cf_finish, cf_free};

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
    f->ops = &codec_ops;
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

/* ---- pull reader ------------------------------------------------------------- */

struct decompress_reader {
    struct codec c;
    compress_read_fn fn;
    void *ctx;
    unsigned char *in;
    size_t in_len, in_pos;
    bool eof, done;
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

int decompress_read(struct decompress_reader *r, void *buf, size_t cap, size_t *got, struct err *e)
{
    *got = 0;
    while (!r->done && cap > 0) {
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
        if (r->eof && r->in_pos == r->in_len && (rc == 1 || used == 0)) {
            r->done = true;
            if (r->c.in_frame)
                return err_set(e, ERR_CORRUPT, "truncated %s data", compress_name(r->c.kind));
        }
    }
    return 0;
}

void decompress_reader_free(struct decompress_reader *r)
{
    if (!r)
        return;
    codec_free(&r->c);
    free(r->in);
    free(r);
}
