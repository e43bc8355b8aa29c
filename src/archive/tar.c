/*
 * tar.c - streaming pax tar writer and reader.
 *
 * Writer. Each member is one buffer: an optional pax extended header
 * (a ustar header with typeflag 'x' named "PaxHeaders/<base>", then the
 * records, padded to a block) followed by the member's ustar header. The
 * ustar fields are always filled as well as they can be (a name cut and
 * made ASCII, a clamped mtime, a base-256 size) so that a reader without
 * pax support still sees something sensible and stays in step. Data is
 * passed through to the sink untouched; the writer only counts it.
 *
 * Reader. A state machine over the stream: a 512-byte header block is
 * collected (it may arrive in any number of pieces), then the member's
 * data is handed on as it arrives, then its padding skipped. Extended
 * headers ('x', 'g', 'L', 'K') are collected whole (bounded by
 * TAR_EXT_MAX) and apply to the next member header. Precedence of a name:
 * pax 'x' record, pax 'g' record, GNU 'L'/'K', then the ustar fields
 * (prefix "/" name). Which data follows a header follows GNU tar 1.34: a
 * directory or symlink has none whatever its size field says, every other
 * type (hard links included) has size bytes.
 */
#include "archive/tar.h"

#include "core/buf.h"
#include "core/utf8.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLK TAR_BLOCK_SIZE

/* ustar header layout (POSIX pax, "ustar Interchange Format") */
#define H_NAME 0
#define H_NAME_LEN 100
#define H_MODE 100
#define H_UID 108
#define H_GID 116
#define H_SIZE 124
#define H_MTIME 136
#define H_CHKSUM 148
#define H_TYPEFLAG 156
#define H_LINKNAME 157
#define H_LINKNAME_LEN 100
#define H_MAGIC 257
#define H_VERSION 263
#define H_DEVMAJOR 329
#define H_DEVMINOR 337
#define H_PREFIX 345
#define H_PREFIX_LEN 155
/* old GNU layout, typeflag 'S': extension blocks follow when set */
#define H_GNU_ISEXTENDED 482
#define H_GNU_EXT_ISEXTENDED 504

/* 11 octal digits: the largest size and mtime a ustar field holds */
#define USTAR_MAX_11 077777777777ULL
#define NS_PER_S 1000000000LL

static const unsigned char zeros[BLK];

static uint64_t pad_to_block(uint64_t n)
{
    return (BLK - n % BLK) % BLK;
}

static bool all_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
            return false;
    }
    return true;
}

/* ---- header fields ------------------------------------------------- */

/* width-1 octal digits, zero-padded, then NUL; v must fit */
static void put_octal(unsigned char *f, size_t width, uint64_t v)
{
    for (size_t i = width - 1; i-- > 0;) {
        f[i] = (unsigned char)('0' + (v & 7));
        v >>= 3;
    }
    f[width - 1] = '\0';
}

/* GNU base-256: high bit of the first byte set, big-endian value after */
static void put_base256(unsigned char *f, size_t width, uint64_t v)
{
    for (size_t i = width; i-- > 1;) {
        f[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    f[0] = 0x80;
}

/* copy at most max bytes, non-ASCII ones as '_' (for fields that a pax
 * record overrides: what a pax-unaware reader sees) */
static void put_ascii(unsigned char *f, size_t max, const char *s, size_t n)
{
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        f[i] = c >= 0x80 ? '_' : c;
    }
}

static unsigned header_sum(const unsigned char *h)
{
    unsigned sum = 0;
    for (size_t i = 0; i < BLK; i++)
        sum += (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
    return sum;
}

static void put_checksum(unsigned char *h)
{
    put_octal(h + H_CHKSUM, 7, header_sum(h)); /* 6 digits, NUL */
    h[H_CHKSUM + 7] = ' ';
}

/* The common part of every header we write. */
static void ustar_fill(unsigned char *h, char typeflag, uint32_t mode, uint64_t size,
                       uint64_t mtime_s)
{
    memset(h, 0, BLK);
    put_octal(h + H_MODE, 8, mode & 07777);
    put_octal(h + H_UID, 8, 0);
    put_octal(h + H_GID, 8, 0);
    if (size <= USTAR_MAX_11)
        put_octal(h + H_SIZE, 12, size);
    else
        put_base256(h + H_SIZE, 12, size);
    put_octal(h + H_MTIME, 12, mtime_s);
    h[H_TYPEFLAG] = (unsigned char)typeflag;
    memcpy(h + H_MAGIC, "ustar", 6); /* with its NUL */
    memcpy(h + H_VERSION, "00", 2);
    put_octal(h + H_DEVMAJOR, 8, 0);
    put_octal(h + H_DEVMINOR, 8, 0);
}

/* Where to cut a path into ustar prefix "/" name: *prefix_len, or false
 * when no cut fits (name 1..100 bytes, prefix 1..155 bytes). */
static bool ustar_split(const char *p, size_t n, size_t *prefix_len)
{
    if (n <= H_NAME_LEN) {
        *prefix_len = 0;
        return true;
    }
    size_t lo = n - H_NAME_LEN - 1; /* the name after the cut is <= 100 */
    for (size_t i = lo > 0 ? lo : 1; i <= H_PREFIX_LEN && i + 1 < n; i++) {
        if (p[i] == '/') {
            *prefix_len = i;
            return true;
        }
    }
    return false;
}

/* ---- pax records ---------------------------------------------------- */

static size_t dec_digits(size_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* "<len> <key>=<value>\n", len counting the whole record, itself included */
static int pax_add(struct buf *b, const char *key, const char *val, size_t vlen)
{
    size_t base = strlen(key) + vlen + 3;
    size_t d = 1;
    while (dec_digits(base + d) != d)
        d++;
    int r = buf_printf(b, "%zu %s=", base + d, key);
    if (!r)
        r = buf_append(b, val, vlen);
    if (!r)
        r = buf_append(b, "\n", 1);
    return r;
}

/* Decimal seconds with the fraction, trailing zeros dropped: "-1.5". */
static int fmt_mtime(char *out, size_t cap, int64_t ns)
{
    uint64_t mag = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;
    uint64_t sec = mag / NS_PER_S, frac = mag % NS_PER_S;
    int n = snprintf(out, cap, "%s%llu", ns < 0 ? "-" : "", (unsigned long long)sec);
    if (frac) {
        int digits = 9;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        n += snprintf(out + n, cap - (size_t)n, ".%0*llu", digits, (unsigned long long)frac);
    }
    return n;
}

/* ---- writer --------------------------------------------------------- */

struct tar_writer {
    tar_sink_fn sink;
    void *ctx;
    uint64_t offset;    /* bytes the sink accepted */
    bool in_member;     /* between tar_begin and tar_end */
    bool failed;        /* the sink failed: the stream is unusable */
    uint64_t remaining; /* data bytes the current member still owes */
    struct buf hdr;     /* headers of the current member */
};

struct tar_writer *tar_writer_new(tar_sink_fn sink, void *ctx)
{
    struct tar_writer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->sink = sink;
    t->ctx = ctx;
    buf_init(&t->hdr, 0);
    return t;
}

void tar_writer_free(struct tar_writer *t)
{
    if (!t)
        return;
    buf_release(&t->hdr);
    free(t);
}

uint64_t tar_offset(const struct tar_writer *t)
{
    return t->offset;
}

static int emit(struct tar_writer *t, const void *p, size_t n, struct err *e)
{
    if (t->failed)
        return err_set(e, ERR_IO, "tar stream is unusable after an earlier write error");
    if (!n)
        return 0;
    int r = t->sink(t->ctx, p, n, e);
    if (r) {
        t->failed = true;
        if (e && !e->code)
            err_set(e, r, "writing the tar stream failed");
        return r;
    }
    t->offset += n;
    return 0;
}

static int emit_zeros(struct tar_writer *t, uint64_t n, struct err *e)
{
    while (n) {
        size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        int r = emit(t, zeros, k, e);
        if (r)
            return r;
        n -= k;
    }
    return 0;
}

/* The extended header's own ustar header: "PaxHeaders/<base>", ASCII. */
static void pax_header_block(unsigned char *h, const struct tar_entry *ent, size_t records,
                             uint64_t mtime_s)
{
    ustar_fill(h, 'x', 0644, records, mtime_s);
    const char *p = ent->path;
    size_t n = ent->path_len;
    while (n > 1 && p[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && p[start - 1] != '/')
        start--;
    const char *base = p + start;
    size_t blen = n - start;
    static const char dir[] = "PaxHeaders/";
    memcpy(h + H_NAME, dir, sizeof(dir) - 1);
    put_ascii(h + H_NAME + sizeof(dir) - 1, H_NAME_LEN - (sizeof(dir) - 1), base, blen);
    put_checksum(h);
}

int tar_begin(struct tar_writer *t, const struct tar_entry *ent, uint64_t *data_offset,
              struct err *e)
{
    if (t->in_member)
        return err_set(e, ERR_INTERNAL, "tar member begun before the previous one was ended");
    if (t->failed)
        return err_set(e, ERR_IO, "tar stream is unusable after an earlier write error");
    if (!ent->path_len || memchr(ent->path, '\0', ent->path_len))
        return err_set(e, ERR_USAGE, "a tar member's path must not be empty or hold a NUL byte");
    char typeflag;
    uint64_t size = 0;
    const char *target = NULL;
    size_t target_len = 0;
    switch (ent->type) {
    case TAR_FILE:
        typeflag = '0';
        size = ent->size;
        break;
    case TAR_SYMLINK:
        typeflag = '2';
        target = ent->target;
        target_len = ent->target_len;
        if (!target_len || memchr(target, '\0', target_len))
            return err_set(e, ERR_USAGE,
                           "a symlink's target must not be empty or hold a NUL byte in tar");
        break;
    case TAR_DIR:
        typeflag = '5';
        break;
    default:
        return err_set(e, ERR_USAGE, "only files, symlinks and directories can be archived");
    }

    /* mtime: ustar holds whole seconds 0 .. 8^11-1 */
    int64_t ns = ent->mtime_ns;
    int64_t sec = ns / NS_PER_S - (ns % NS_PER_S < 0 ? 1 : 0); /* floor */
    bool mtime_fits = ns % NS_PER_S == 0 && sec >= 0 && (uint64_t)sec <= USTAR_MAX_11;
    uint64_t mtime_field = sec < 0                        ? 0
                           : (uint64_t)sec > USTAR_MAX_11 ? USTAR_MAX_11
                                                          : (uint64_t)sec;

    size_t prefix_len = 0;
    bool path_fits =
        all_ascii(ent->path, ent->path_len) && ustar_split(ent->path, ent->path_len, &prefix_len);
    bool target_fits = !target || (target_len <= H_LINKNAME_LEN && all_ascii(target, target_len));
    bool size_fits = size <= USTAR_MAX_11;

    int r = 0;
    buf_reset(&t->hdr);
    if (!path_fits || !target_fits || !size_fits || !mtime_fits) {
        /* records first, the 'x' header in front of them afterwards */
        struct buf *b = &t->hdr;
        r = buf_append(b, zeros, BLK);
        if (!r && ((!path_fits && !utf8_valid(ent->path, ent->path_len)) ||
                   (!target_fits && !utf8_valid(target, target_len))))
            r = pax_add(b, "hdrcharset", "BINARY", 6);
        if (!r && !path_fits)
            r = pax_add(b, "path", ent->path, ent->path_len);
        if (!r && !target_fits)
            r = pax_add(b, "linkpath", target, target_len);
        char num[48];
        if (!r && !size_fits) {
            int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
            r = pax_add(b, "size", num, (size_t)n);
        }
        if (!r && !mtime_fits)
            r = pax_add(b, "mtime", num, (size_t)fmt_mtime(num, sizeof(num), ns));
        size_t records = b->len - BLK;
        if (!r)
            r = buf_append(b, zeros, (size_t)pad_to_block(records));
        if (r)
            return err_set(e, ERR_NOMEM, "out of memory for a tar header");
        pax_header_block((unsigned char *)b->data, ent, records, mtime_field);
    }
    r = buf_reserve(&t->hdr, BLK);
    if (r)
        return err_set(e, ERR_NOMEM, "out of memory for a tar header");
    unsigned char *h = (unsigned char *)t->hdr.data + t->hdr.len;
    t->hdr.len += BLK;
    ustar_fill(h, typeflag, ent->mode, size, mtime_field);
    if (path_fits) {
        if (prefix_len) {
            memcpy(h + H_PREFIX, ent->path, prefix_len);
            memcpy(h + H_NAME, ent->path + prefix_len + 1, ent->path_len - prefix_len - 1);
        } else {
            memcpy(h + H_NAME, ent->path, ent->path_len);
        }
    } else {
        put_ascii(h + H_NAME, H_NAME_LEN, ent->path, ent->path_len);
    }
    if (target)
        put_ascii(h + H_LINKNAME, H_LINKNAME_LEN, target, target_len);
    put_checksum(h);

    r = emit(t, t->hdr.data, t->hdr.len, e);
    if (r)
        return r;
    t->in_member = true;
    t->remaining = size;
    if (data_offset)
        *data_offset = t->offset;
    return 0;
}

int tar_data(struct tar_writer *t, const void *data, size_t len, struct err *e)
{
    if (!t->in_member)
        return err_set(e, ERR_INTERNAL, "tar data written outside a member");
    if (len > t->remaining)
        return err_set(e, ERR_IO,
                       "%zu bytes of data exceed the %llu bytes the tar member has left: the "
                       "file grew while it was read",
                       len, (unsigned long long)t->remaining);
    int r = emit(t, data, len, e);
    if (r)
        return r;
    t->remaining -= len;
    return 0;
}

int tar_end(struct tar_writer *t, uint64_t *padded, struct err *e)
{
    if (!t->in_member)
        return err_set(e, ERR_INTERNAL, "tar member ended but none was begun");
    uint64_t missing = t->remaining;
    int r = emit_zeros(t, missing, e);
    if (!r)
        r = emit_zeros(t, pad_to_block(t->offset), e);
    if (r)
        return r;
    t->in_member = false;
    t->remaining = 0;
    if (padded)
        *padded = missing;
    return 0;
}

int tar_finish(struct tar_writer *t, struct err *e)
{
    if (t->failed)
        return err_set(e, ERR_IO, "tar stream is unusable after an earlier write error");
    if (t->in_member)
        return err_set(e, ERR_INTERNAL, "tar archive finished inside a member");
    return emit_zeros(t, 2 * BLK, e);
}

/* ---- reader --------------------------------------------------------- */

enum rstate {
    R_HEADER,     /* collecting a header block */
    R_ZERO1,      /* one zero block seen, collecting the next block */
    R_EXT,        /* collecting an extended header's data */
    R_SPARSE_EXT, /* skipping old GNU sparse extension blocks */
    R_DATA,       /* a member's data */
    R_PAD,        /* padding to the next block */
    R_END,        /* end of archive seen */
    R_FAILED,
};

/* A pax attribute: unset, set, or (per member) explicitly cleared by an
 * empty value, which brings back the header's own field. */
enum pax_state { PAX_UNSET, PAX_SET, PAX_CLEARED };

struct pax_attrs {
    enum pax_state path, linkpath, size, mtime;
    struct buf path_v, linkpath_v;
    uint64_t size_v;
    int64_t mtime_ns_v;
    bool sparse; /* GNU.sparse.* records: data is not the file's bytes */
};

struct tar_reader {
    struct tar_reader_cb cb;
    void *ctx;
    enum rstate state;
    int fail_code;
    uint64_t offset;  /* bytes consumed */
    uint64_t hdr_off; /* offset of the current header block */
    unsigned char blk[BLK];
    size_t blk_len;
    char ext_type; /* 'x', 'g', 'L', 'K' while in R_EXT */
    uint64_t ext_size;
    struct buf ext;
    bool pending; /* extended headers waiting for their member */
    struct pax_attrs x, g;
    bool has_longname, has_longlink;
    struct buf longname, longlink;
    struct buf path, target; /* the current member's */
    struct tar_entry ent;
    uint64_t remaining; /* data bytes left in the current member */
    uint64_t pad;       /* padding bytes left after it */
    bool deliver;       /* data goes to cb.data */
};

static void pax_init(struct pax_attrs *a)
{
    memset(a, 0, sizeof(*a));
    buf_init(&a->path_v, TAR_EXT_MAX);
    buf_init(&a->linkpath_v, TAR_EXT_MAX);
}

static void pax_release(struct pax_attrs *a)
{
    buf_release(&a->path_v);
    buf_release(&a->linkpath_v);
}

static void pax_reset(struct pax_attrs *a)
{
    a->path = a->linkpath = a->size = a->mtime = PAX_UNSET;
    a->sparse = false;
    buf_reset(&a->path_v);
    buf_reset(&a->linkpath_v);
}

struct tar_reader *tar_reader_new(const struct tar_reader_cb *cb, void *ctx)
{
    struct tar_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (cb)
        r->cb = *cb;
    r->ctx = ctx;
    r->state = R_HEADER;
    buf_init(&r->ext, TAR_EXT_MAX);
    pax_init(&r->x);
    pax_init(&r->g);
    buf_init(&r->longname, TAR_EXT_MAX);
    buf_init(&r->longlink, TAR_EXT_MAX);
    buf_init(&r->path, 0);
    buf_init(&r->target, 0);
    return r;
}

void tar_reader_free(struct tar_reader *r)
{
    if (!r)
        return;
    buf_release(&r->ext);
    pax_release(&r->x);
    pax_release(&r->g);
    buf_release(&r->longname);
    buf_release(&r->longlink);
    buf_release(&r->path);
    buf_release(&r->target);
    free(r);
}

static int fail(struct tar_reader *r, struct err *e, int code)
{
    r->state = R_FAILED;
    r->fail_code = code ? code : ERR_INTERNAL;
    if (e && !e->code)
        err_set(e, r->fail_code, "tar reader callback failed");
    return r->fail_code;
}

#define BAD(r, e, ...) fail((r), (e), err_set((e), ERR_IO, __VA_ARGS__))

/* A numeric header field: octal digits after optional spaces, ended by
 * space or NUL (or the field's end), or GNU base-256 (first byte 0x80 for
 * positive, 0xff for negative). *neg set for negative base-256 values,
 * which only mtime may have. false when the field is not a number or does
 * not fit 64 bits. */
static bool parse_number(const unsigned char *f, size_t width, uint64_t *v, bool *neg)
{
    *v = 0;
    *neg = false;
    if (f[0] == 0x80 || f[0] == 0xff) {
        bool negative = f[0] == 0xff;
        uint64_t acc = 0;
        for (size_t i = 1; i < width; i++) {
            unsigned char c = negative ? (unsigned char)~f[i] : f[i];
            if (acc >> 56)
                return false;
            acc = (acc << 8) | c;
        }
        if (negative) {
            /* two's complement: value = -(~bits + 1) */
            if (acc == UINT64_MAX)
                return false;
            acc += 1;
        }
        *v = acc;
        *neg = negative;
        return true;
    }
    size_t i = 0;
    while (i < width && f[i] == ' ')
        i++;
    size_t start = i;
    uint64_t acc = 0;
    while (i < width && f[i] >= '0' && f[i] <= '7') {
        if (acc >> 61)
            return false;
        acc = (acc << 3) | (uint64_t)(f[i] - '0');
        i++;
    }
    if (i == start)
        return false;
    for (; i < width; i++) {
        if (f[i] != ' ' && f[i] != '\0')
            return false;
    }
    *v = acc;
    return true;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* Decimal digits only, at most INT64_MAX. */
static bool parse_pax_size(const char *s, size_t n, uint64_t *v)
{
    uint64_t acc = 0;
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (acc > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    *v = acc;
    return true;
}

/* [-]seconds[.fraction] into ns; digits past the 9th are dropped. */
static bool parse_pax_mtime(const char *s, size_t n, int64_t *ns)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t start = i;
    uint64_t sec = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (sec > UINT64_MAX / 20)
            return false;
        sec = sec * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == start)
        return false;
    uint64_t frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t digits = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 9) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                digits++;
            }
        }
        for (; digits < 9; digits++)
            frac *= 10;
    }
    if (i != n)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (sec > limit / NS_PER_S || sec * NS_PER_S > limit - frac)
        return false;
    uint64_t mag = sec * NS_PER_S + frac;
    *ns = neg ? (mag ? -(int64_t)(mag - 1) - 1 : 0) : (int64_t)mag;
    return true;
}

static bool key_is(const char *k, size_t klen, const char *want)
{
    return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

/* A path-like pax value into dst (state SET), or cleared when empty. */
static int pax_set_name(struct tar_reader *r, struct err *e, struct buf *dst, enum pax_state *st,
                        bool global, const char *v, size_t vlen, uint64_t at)
{
    if (memchr(v, '\0', vlen))
        return BAD(r, e, "NUL byte in a pax path record at offset %llu: the archive is damaged",
                   (unsigned long long)at);
    buf_reset(dst);
    if (!vlen) {
        *st = global ? PAX_UNSET : PAX_CLEARED;
        return 0;
    }
    if (buf_append(dst, v, vlen))
        return fail(r, e, err_set(e, ERR_NOMEM, "out of memory for a pax record"));
    *st = PAX_SET;
    return 0;
}

/* Parse the records of a complete 'x' or 'g' header. */
static int pax_parse(struct tar_reader *r, struct err *e, struct pax_attrs *a, bool global)
{
    const char *d = r->ext.data ? r->ext.data : "";
    size_t len = r->ext.len;
    uint64_t base = r->hdr_off + BLK;
    size_t pos = 0;
    while (pos < len) {
        if (all_zero((const unsigned char *)d + pos, len - pos))
            break; /* some writers pad the records with NULs */
        uint64_t at = base + pos;
        size_t p = pos, rec = 0;
        for (; p < len && d[p] >= '0' && d[p] <= '9'; p++) {
            if (rec <= len) /* beyond len it is wrong anyway: no overflow */
                rec = rec * 10 + (size_t)(d[p] - '0');
        }
        if (p == pos || p >= len || d[p] != ' ')
            return BAD(r, e,
                       "malformed pax record at offset %llu: no length prefix: the archive "
                       "is damaged",
                       (unsigned long long)at);
        if (rec > len - pos || rec < p - pos + 4)
            return BAD(r, e,
                       "malformed pax record at offset %llu: its length %zu does not fit the "
                       "header: the archive is damaged",
                       (unsigned long long)at, rec);
        size_t end = pos + rec; /* one past the '\n' */
        if (d[end - 1] != '\n')
            return BAD(r, e,
                       "malformed pax record at offset %llu: its length prefix %zu does not "
                       "match the record: the archive is damaged",
                       (unsigned long long)at, rec);
        const char *k = d + p + 1;
        const char *eq = memchr(k, '=', (size_t)(d + end - 1 - k));
        if (!eq || eq == k)
            return BAD(r, e,
                       "malformed pax record at offset %llu: no keyword=value: the archive is "
                       "damaged",
                       (unsigned long long)at);
        size_t klen = (size_t)(eq - k);
        const char *v = eq + 1;
        size_t vlen = (size_t)(d + end - 1 - v);
        int rc = 0;
        if (key_is(k, klen, "path")) {
            rc = pax_set_name(r, e, &a->path_v, &a->path, global, v, vlen, at);
        } else if (key_is(k, klen, "linkpath")) {
            rc = pax_set_name(r, e, &a->linkpath_v, &a->linkpath, global, v, vlen, at);
        } else if (key_is(k, klen, "GNU.sparse.name")) {
            rc = pax_set_name(r, e, &a->path_v, &a->path, global, v, vlen, at);
            a->sparse = true;
        } else if (klen > 11 && memcmp(k, "GNU.sparse.", 11) == 0) {
            a->sparse = true;
        } else if (key_is(k, klen, "size")) {
            if (!vlen) {
                a->size = global ? PAX_UNSET : PAX_CLEARED;
            } else if (parse_pax_size(v, vlen, &a->size_v)) {
                a->size = PAX_SET;
            } else {
                return BAD(r, e,
                           "bad pax size record at offset %llu: not a decimal number up to "
                           "2^63-1: the archive is damaged",
                           (unsigned long long)at);
            }
        } else if (key_is(k, klen, "mtime")) {
            if (!vlen) {
                a->mtime = global ? PAX_UNSET : PAX_CLEARED;
            } else if (parse_pax_mtime(v, vlen, &a->mtime_ns_v)) {
                a->mtime = PAX_SET;
            } else {
                return BAD(r, e,
                           "bad pax mtime record at offset %llu: not decimal seconds within "
                           "years 1678-2262: the archive is damaged",
                           (unsigned long long)at);
            }
        }
        if (rc)
            return rc;
        pos = end;
    }
    return 0;
}

/* A GNU 'L' / 'K' long name: the data, trailing NULs removed. */
static int gnu_long_name(struct tar_reader *r, struct err *e, struct buf *dst, bool *has)
{
    size_t n = r->ext.len;
    const char *d = r->ext.data ? r->ext.data : "";
    while (n && d[n - 1] == '\0')
        n--;
    if (memchr(d, '\0', n))
        return BAD(r, e, "NUL byte inside the GNU long name at offset %llu: the archive is damaged",
                   (unsigned long long)r->hdr_off);
    buf_reset(dst);
    if (buf_append(dst, d, n))
        return fail(r, e, err_set(e, ERR_NOMEM, "out of memory for a GNU long name"));
    *has = true;
    return 0;
}

static int ext_complete(struct tar_reader *r, struct err *e)
{
    switch (r->ext_type) {
    case 'g':
        return pax_parse(r, e, &r->g, true);
    case 'L':
        return gnu_long_name(r, e, &r->longname, &r->has_longname);
    case 'K':
        return gnu_long_name(r, e, &r->longlink, &r->has_longlink);
    default:
        return pax_parse(r, e, &r->x, false);
    }
}

/* The value of a name: pax 'x', pax 'g', GNU long name, header field. */
static int pick_name(struct tar_reader *r, struct err *e, struct buf *out, enum pax_state xs,
                     const struct buf *xv, enum pax_state gs, const struct buf *gv, bool has_long,
                     const struct buf *lv, const unsigned char *f1, size_t f1_len,
                     const unsigned char *f2, size_t f2_len)
{
    buf_reset(out);
    int rc = 0;
    if (xs == PAX_SET) {
        rc = buf_append(out, xv->data, xv->len);
    } else if (xs == PAX_UNSET && gs == PAX_SET) {
        rc = buf_append(out, gv->data, gv->len);
    } else if (has_long) {
        rc = buf_append(out, lv->data, lv->len);
    } else {
        /* ustar prefix "/" name (f1 = prefix, may be empty) */
        size_t n1 = f1 ? strnlen((const char *)f1, f1_len) : 0;
        size_t n2 = strnlen((const char *)f2, f2_len);
        if (n1)
            rc = buf_append(out, f1, n1);
        if (!rc && n1)
            rc = buf_append(out, "/", 1);
        if (!rc)
            rc = buf_append(out, f2, n2);
    }
    if (!rc && !out->data)
        rc = buf_reserve(out, 0); /* always a NUL-terminated string */
    if (rc)
        return fail(r, e, err_set(e, ERR_NOMEM, "out of memory for a tar member's name"));
    return 0;
}

static int member_header(struct tar_reader *r, struct err *e, uint64_t hsize)
{
    const unsigned char *h = r->blk;
    unsigned long long at = (unsigned long long)r->hdr_off;
    char tf = (char)h[H_TYPEFLAG];
    uint64_t mode = 0, mt = 0;
    bool neg = false, mneg = false;
    if (!parse_number(h + H_MODE, 8, &mode, &neg) || neg)
        return BAD(r, e, "tar header at offset %llu has a bad mode field: the archive is damaged",
                   at);
    if (!parse_number(h + H_MTIME, 12, &mt, &mneg))
        return BAD(r, e, "tar header at offset %llu has a bad mtime field: the archive is damaged",
                   at);
    bool posix = memcmp(h + H_MAGIC, "ustar", 6) == 0;

    struct tar_entry *ent = &r->ent;
    memset(ent, 0, sizeof(*ent));
    ent->typeflag = tf;
    switch (tf) {
    case '0':
    case '\0':
    case '7':
        ent->type = TAR_FILE;
        break;
    case '2':
        ent->type = TAR_SYMLINK;
        break;
    case '5':
        ent->type = TAR_DIR;
        break;
    default:
        ent->type = TAR_OTHER;
        break;
    }
    if (r->x.sparse || r->g.sparse) {
        ent->type = TAR_OTHER;
        ent->typeflag = 'S';
    }

    int rc =
        pick_name(r, e, &r->path, r->x.path, &r->x.path_v, r->g.path, &r->g.path_v, r->has_longname,
                  &r->longname, posix ? h + H_PREFIX : NULL, H_PREFIX_LEN, h + H_NAME, H_NAME_LEN);
    if (!rc)
        rc = pick_name(r, e, &r->target, r->x.linkpath, &r->x.linkpath_v, r->g.linkpath,
                       &r->g.linkpath_v, r->has_longlink, &r->longlink, NULL, 0, h + H_LINKNAME,
                       H_LINKNAME_LEN);
    if (rc)
        return rc;
    if (!r->path.len)
        return BAD(r, e, "tar header at offset %llu has an empty name: the archive is damaged", at);

    uint64_t size = hsize;
    if (r->x.size == PAX_SET)
        size = r->x.size_v;
    else if (r->x.size == PAX_UNSET && r->g.size == PAX_SET)
        size = r->g.size_v;
    if (size > (uint64_t)INT64_MAX)
        return BAD(r, e, "tar header at offset %llu has a size over 2^63-1: the archive is damaged",
                   at);
    int64_t mtime_ns;
    if (r->x.mtime == PAX_SET) {
        mtime_ns = r->x.mtime_ns_v;
    } else if (r->x.mtime == PAX_UNSET && r->g.mtime == PAX_SET) {
        mtime_ns = r->g.mtime_ns_v;
    } else {
        uint64_t limit = (uint64_t)INT64_MAX / NS_PER_S;
        if (mt > limit)
            return BAD(r, e,
                       "tar header at offset %llu has an mtime beyond year 2262: the archive is "
                       "damaged",
                       at);
        mtime_ns = mneg ? -(int64_t)mt * NS_PER_S : (int64_t)mt * NS_PER_S;
    }

    ent->path = r->path.data;
    ent->path_len = r->path.len;
    if (ent->type == TAR_SYMLINK || tf == '1') {
        ent->target = r->target.data;
        ent->target_len = r->target.len;
    }
    ent->mode = (uint32_t)(mode & 07777);
    ent->mtime_ns = mtime_ns;
    /* as GNU tar: directories and symlinks have no data whatever their size
     * field says; everything else (hard links too) has size bytes */
    uint64_t data = ent->type == TAR_DIR || ent->type == TAR_SYMLINK ? 0 : size;
    ent->size = data;

    /* these applied to this member only */
    pax_reset(&r->x);
    r->has_longname = r->has_longlink = false;
    r->pending = false;

    bool sparse_ext = tf == 'S' && memcmp(h + H_MAGIC, "ustar  ", 8) == 0 && h[H_GNU_ISEXTENDED];
    r->remaining = data;
    r->pad = pad_to_block(data);
    r->deliver = ent->type == TAR_FILE;
    r->state = sparse_ext ? R_SPARSE_EXT : R_DATA;
    return 0;
}

/* A complete 512-byte block in r->blk at r->hdr_off. */
static int header_block(struct tar_reader *r, struct err *e)
{
    const unsigned char *h = r->blk;
    unsigned long long at = (unsigned long long)r->hdr_off;
    if (all_zero(h, BLK)) {
        if (r->pending)
            return BAD(r, e,
                       "tar archive ends at offset %llu right after an extended header: the "
                       "archive is damaged",
                       at);
        r->state = r->state == R_ZERO1 ? R_END : R_ZERO1;
        return 0;
    }
    if (r->state == R_ZERO1)
        return BAD(r, e,
                   "lone zero block in the tar archive before offset %llu, then more data: the "
                   "archive is damaged",
                   at);
    uint64_t want = 0;
    bool neg = false;
    unsigned sum = header_sum(h);
    int ssum = 0; /* some old tars summed signed chars */
    for (size_t i = 0; i < BLK; i++)
        ssum += (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : (signed char)h[i];
    if (!parse_number(h + H_CHKSUM, 8, &want, &neg) || neg ||
        (want != sum && (int64_t)want != ssum))
        return BAD(r, e,
                   "tar header checksum mismatch at offset %llu: the archive is damaged or not "
                   "a tar archive",
                   at);
    uint64_t size = 0;
    if (!parse_number(h + H_SIZE, 12, &size, &neg) || neg)
        return BAD(r, e, "tar header at offset %llu has a bad size field: the archive is damaged",
                   at);
    char tf = (char)h[H_TYPEFLAG];
    switch (tf) {
    case 'x':
    case 'X': /* Solaris' name for it */
    case 'g':
    case 'L':
    case 'K':
        if (size > TAR_EXT_MAX)
            return BAD(r, e,
                       "extended tar header at offset %llu is %llu bytes, over the limit of %d: "
                       "the archive is damaged",
                       at, (unsigned long long)size, TAR_EXT_MAX);
        r->ext_type = tf == 'X' ? 'x' : tf;
        r->ext_size = size;
        buf_reset(&r->ext);
        if (tf != 'g')
            r->pending = true;
        r->pad = pad_to_block(size);
        if (size) {
            r->state = R_EXT;
            return 0;
        }
        r->state = R_HEADER;
        return ext_complete(r, e);
    default:
        return member_header(r, e, size);
    }
}

static int call_entry_end(struct tar_reader *r, struct err *e)
{
    if (r->cb.entry_end) {
        int rc = r->cb.entry_end(r->ctx, e);
        if (rc)
            return fail(r, e, rc);
    }
    return 0;
}

/* After a member header: tell the caller; then its old GNU sparse
 * extension blocks, if any, or its data. */
static int member_start(struct tar_reader *r, struct err *e)
{
    r->ent.data_offset = r->offset;
    if (r->cb.entry) {
        int rc = r->cb.entry(r->ctx, &r->ent, e);
        if (rc)
            return fail(r, e, rc);
    }
    if (r->state == R_SPARSE_EXT || r->remaining)
        return 0;
    r->state = R_HEADER;
    return call_entry_end(r, e);
}

/* A complete block in r->blk. */
static int block_complete(struct tar_reader *r, struct err *e)
{
    if (r->state != R_SPARSE_EXT) {
        int rc = header_block(r, e);
        if (!rc && (r->state == R_DATA || r->state == R_SPARSE_EXT))
            rc = member_start(r, e);
        return rc;
    }
    if (r->blk[H_GNU_EXT_ISEXTENDED])
        return 0; /* more extension blocks follow */
    if (r->remaining) {
        r->state = R_DATA;
        return 0;
    }
    r->state = R_HEADER;
    return call_entry_end(r, e);
}

int tar_reader_feed(struct tar_reader *r, const void *data, size_t len, struct err *e)
{
    const unsigned char *p = data;
    if (r->state == R_FAILED)
        return err_set(e, r->fail_code, "tar stream is unusable after an earlier error");
    while (len) {
        int rc = 0;
        size_t n;
        switch (r->state) {
        case R_HEADER:
        case R_ZERO1:
        case R_SPARSE_EXT:
            if (!r->blk_len)
                r->hdr_off = r->offset;
            n = BLK - r->blk_len < len ? BLK - r->blk_len : len;
            memcpy(r->blk + r->blk_len, p, n);
            r->blk_len += n;
            r->offset += n;
            if (r->blk_len == BLK) {
                r->blk_len = 0;
                rc = block_complete(r, e);
            }
            break;
        case R_EXT:
            n = r->ext_size - r->ext.len < len ? (size_t)(r->ext_size - r->ext.len) : len;
            if (buf_append(&r->ext, p, n))
                return fail(r, e, err_set(e, ERR_NOMEM, "out of memory for a tar header"));
            r->offset += n;
            if (r->ext.len == r->ext_size) {
                r->state = r->pad ? R_PAD : R_HEADER;
                rc = ext_complete(r, e);
            }
            break;
        case R_DATA:
            n = r->remaining < len ? (size_t)r->remaining : len;
            if (r->deliver && r->cb.data) {
                rc = r->cb.data(r->ctx, p, n, e);
                if (rc)
                    return fail(r, e, rc);
            }
            r->remaining -= n;
            r->offset += n;
            if (!r->remaining) {
                r->state = r->pad ? R_PAD : R_HEADER;
                rc = call_entry_end(r, e);
            }
            break;
        case R_PAD:
            n = r->pad < len ? (size_t)r->pad : len;
            r->pad -= n;
            r->offset += n;
            if (!r->pad)
                r->state = R_HEADER;
            break;
        case R_END:
            r->offset += len; /* GNU tar's record padding, or anything: ignored */
            return 0;
        default:
            return err_set(e, r->fail_code, "tar stream is unusable after an earlier error");
        }
        if (rc)
            return rc;
        p += n;
        len -= n;
    }
    return 0;
}

int tar_reader_finish(struct tar_reader *r, struct err *e)
{
    unsigned long long at = (unsigned long long)r->offset;
    switch (r->state) {
    case R_END:
        return 0;
    case R_ZERO1:
        if (all_zero(r->blk, r->blk_len))
            return 0;
        break;
    case R_FAILED:
        return err_set(e, r->fail_code, "tar stream is unusable after an earlier error");
    default:
        break;
    }
    const char *where;
    if (r->state == R_DATA)
        where = "inside a member's data";
    else if (r->state == R_EXT)
        where = "inside an extended header";
    else if (r->blk_len || r->state == R_SPARSE_EXT)
        where = "inside a header";
    else if (r->pending)
        where = "after an extended header";
    else if (r->state == R_PAD)
        where = "inside a member's padding";
    else
        where = "without the end-of-archive blocks";
    r->state = R_FAILED;
    r->fail_code = ERR_IO;
    return err_set(e, ERR_IO, "truncated tar archive: the stream ends %s at offset %llu", where,
                   at);
}
