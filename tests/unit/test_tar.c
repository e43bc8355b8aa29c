/*
 * Unit tests for archive/tar: round trips through our writer and reader,
 * GNU tar as the independent oracle in both directions (it extracts what we
 * write; we read what it writes in --format=pax, gnu and ustar), and
 * damaged input (checksums, truncation at every byte, malformed pax records,
 * overflowing sizes, garbage, random mutations).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "archive/tar.h"

/* ---- helpers --------------------------------------------------------- */

/* an in-memory sink; fail_at > 0 makes it refuse once it would pass that */
struct mem {
    unsigned char *p;
    size_t len, cap;
    size_t fail_at;
    size_t calls;
};

static int mem_sink(void *ctx, const void *data, size_t n, struct err *e)
{
    struct mem *m = ctx;
    m->calls++;
    if (m->fail_at && m->len + n > m->fail_at)
        return err_set(e, ERR_NET, "uploading 'archives/x.tar.zst': connection reset");
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n)
            cap *= 2;
        m->p = realloc(m->p, cap);
        assert_non_null(m->p);
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
    return 0;
}

static void mem_free(struct mem *m)
{
    free(m->p);
    memset(m, 0, sizeof(*m));
}

/* what the reader reported */
struct got_entry {
    char *path;
    size_t path_len;
    enum tar_type type;
    char typeflag;
    uint64_t size;
    int64_t mtime_ns;
    uint32_t mode;
    char *target;
    size_t target_len;
    uint64_t data_offset;
    unsigned char *data;
    size_t data_len;
    bool ended;
};

struct got {
    struct got_entry *v;
    size_t n;
    bool open;
};

static char *dup_bytes(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static int cb_entry(void *ctx, const struct tar_entry *ent, struct err *e)
{
    (void)e;
    struct got *g = ctx;
    assert_false(g->open);
    assert_non_null(ent->path);
    assert_int_equal(ent->path[ent->path_len], '\0'); /* documented: NUL-terminated */
    assert_null(memchr(ent->path, '\0', ent->path_len));
    g->v = realloc(g->v, (g->n + 1) * sizeof(*g->v));
    assert_non_null(g->v);
    struct got_entry *x = &g->v[g->n++];
    memset(x, 0, sizeof(*x));
    x->path = dup_bytes(ent->path, ent->path_len);
    x->path_len = ent->path_len;
    x->type = ent->type;
    x->typeflag = ent->typeflag;
    x->size = ent->size;
    x->mtime_ns = ent->mtime_ns;
    x->mode = ent->mode;
    if (ent->target) {
        assert_int_equal(ent->target[ent->target_len], '\0');
        x->target = dup_bytes(ent->target, ent->target_len);
        x->target_len = ent->target_len;
    }
    x->data_offset = ent->data_offset;
    g->open = true;
    return 0;
}

static int cb_data(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)e;
    struct got *g = ctx;
    assert_true(g->open);
    struct got_entry *x = &g->v[g->n - 1];
    assert_int_equal(x->type, TAR_FILE);
    assert_true(x->data_len + len <= x->size);
    x->data = realloc(x->data, x->data_len + len + 1);
    assert_non_null(x->data);
    memcpy(x->data + x->data_len, data, len);
    x->data_len += len;
    return 0;
}

static int cb_end(void *ctx, struct err *e)
{
    (void)e;
    struct got *g = ctx;
    assert_true(g->open);
    struct got_entry *x = &g->v[g->n - 1];
    if (x->type == TAR_FILE)
        assert_int_equal(x->data_len, x->size);
    x->ended = true;
    g->open = false;
    return 0;
}

static const struct tar_reader_cb collect_cb = {cb_entry, cb_data, cb_end};

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].path);
        free(g->v[i].target);
        free(g->v[i].data);
    }
    free(g->v);
    memset(g, 0, sizeof(*g));
}

/* Feed p[0..len) in chunks of `chunk` bytes, then finish. */
static int read_stream(const void *p, size_t len, size_t chunk, struct got *g, struct err *e)
{
    struct tar_reader *r = tar_reader_new(&collect_cb, g);
    assert_non_null(r);
    err_clear(e);
    int rc = 0;
    for (size_t off = 0; off < len && !rc; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = tar_reader_feed(r, (const unsigned char *)p + off, n, e);
    }
    if (!rc)
        rc = tar_reader_finish(r, e);
    tar_reader_free(r);
    return rc;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 31u + seed * 7u + (i >> 9)) & 0xff);
}

/* a member to write */
struct spec {
    const char *path;
    size_t path_len; /* 0: strlen */
    enum tar_type type;
    size_t size;
    int64_t mtime_ns;
    uint32_t mode;
    const char *target;
    size_t target_len; /* 0: strlen */
    bool want_pax;     /* whether it needs a pax header */
    unsigned char *data;
};

static size_t spec_path_len(const struct spec *s)
{
    return s->path_len ? s->path_len : strlen(s->path);
}

static size_t spec_target_len(const struct spec *s)
{
    return s->target ? (s->target_len ? s->target_len : strlen(s->target)) : 0;
}

/* Write the members to m (data in odd-sized chunks); offsets[i] gets the
 * data offset tar_begin reported. */
static void write_specs(struct mem *m, struct spec *s, size_t n, uint64_t *offsets)
{
    struct err e;
    err_clear(&e);
    struct tar_writer *t = tar_writer_new(mem_sink, m);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        if (s[i].size && !s[i].data) {
            s[i].data = malloc(s[i].size);
            assert_non_null(s[i].data);
            fill_pattern(s[i].data, s[i].size, (unsigned)i);
        }
        struct tar_entry ent = {
            .path = s[i].path,
            .path_len = spec_path_len(&s[i]),
            .type = s[i].type,
            .size = s[i].size,
            .mtime_ns = s[i].mtime_ns,
            .mode = s[i].mode,
            .target = s[i].target,
            .target_len = spec_target_len(&s[i]),
        };
        uint64_t before = tar_offset(t);
        uint64_t off = 0;
        if (tar_begin(t, &ent, &off, &e))
            fail_msg("tar_begin of member %zu: %s", i, e.msg);
        assert_int_equal(off, tar_offset(t));
        if (s[i].want_pax)
            assert_true(off - before > 512);
        else
            assert_int_equal(off - before, 512);
        if (offsets)
            offsets[i] = off;
        for (size_t done = 0; done < s[i].size;) {
            size_t k = s[i].size - done < 333 ? s[i].size - done : 333;
            if (tar_data(t, s[i].data + done, k, &e))
                fail_msg("tar_data: %s", e.msg);
            done += k;
        }
        uint64_t padded = 99;
        assert_int_equal(tar_end(t, &padded, &e), 0);
        assert_int_equal(padded, 0);
        assert_int_equal(tar_offset(t) % 512, 0);
    }
    assert_int_equal(tar_finish(t, &e), 0);
    assert_int_equal(tar_offset(t), m->len);
    tar_writer_free(t);
}

static void specs_free(struct spec *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].data);
        s[i].data = NULL;
    }
}

/* Compare what the reader reported with the specs. */
static void check_got(const struct got *g, const struct spec *s, size_t n, const uint64_t *offsets,
                      const struct mem *m)
{
    assert_int_equal(g->n, n);
    for (size_t i = 0; i < n; i++) {
        const struct got_entry *x = &g->v[i];
        size_t pl = spec_path_len(&s[i]);
        if (x->path_len != pl || memcmp(x->path, s[i].path, pl) != 0)
            fail_msg("member %zu: path differs (%zu vs %zu bytes)", i, x->path_len, pl);
        assert_int_equal(x->type, s[i].type);
        assert_true(x->ended);
        assert_int_equal(x->mode, s[i].mode & 07777);
        if (x->mtime_ns != s[i].mtime_ns)
            fail_msg("member %zu: mtime %lld, want %lld", i, (long long)x->mtime_ns,
                     (long long)s[i].mtime_ns);
        if (s[i].type == TAR_FILE) {
            assert_int_equal(x->size, s[i].size);
            assert_int_equal(x->data_len, s[i].size);
            if (s[i].size)
                assert_memory_equal(x->data, s[i].data, s[i].size);
            /* the data offset is where the bytes are in the stream */
            if (offsets) {
                assert_int_equal(x->data_offset, offsets[i]);
                if (s[i].size)
                    assert_memory_equal(m->p + offsets[i], s[i].data, s[i].size);
            }
        } else {
            assert_int_equal(x->size, 0);
        }
        if (s[i].type == TAR_SYMLINK) {
            size_t tl = spec_target_len(&s[i]);
            assert_non_null(x->target);
            assert_int_equal(x->target_len, tl);
            assert_memory_equal(x->target, s[i].target, tl);
        }
    }
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A path of exactly n bytes made of components of at most comp bytes. */
static char *long_path(size_t n, size_t comp, char c)
{
    char *s = repeat(c, n);
    for (size_t i = comp; i < n - 1; i += comp + 1)
        s[i] = '/';
    return s;
}

/* ---- running GNU tar ------------------------------------------------- */

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/arca-test-tar-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The output of a shell command (malloc'ed, NUL-terminated). */
static char *capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *capture(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k;
    while ((k = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len < 2) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = '\0';
    pclose(f);
    return out;
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail_msg("cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, p + got, (size_t)st.st_size - got);
        assert_true(k > 0);
        got += (size_t)k;
    }
    close(fd);
    *n = got;
    return p;
}

/* dir "/" path (path may hold any byte but NUL) */
static char *join(const char *dir, const char *path, size_t path_len)
{
    size_t dl = strlen(dir);
    char *s = malloc(dl + 1 + path_len + 1);
    assert_non_null(s);
    memcpy(s, dir, dl);
    s[dl] = '/';
    memcpy(s + dl + 1, path, path_len);
    s[dl + 1 + path_len] = '\0';
    return s;
}

static int64_t mtime_of(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

/* ---- round trips ----------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    char *p100 = repeat('n', 100);
    char *p101 = long_path(101, 50, 'd'); /* 50 "/" 50: prefix + name */
    char *p155 = long_path(155, 60, 'e'); /* fits the split */
    char *p255 = repeat('f', 255);        /* prefix 155 "/" name 99 */
    p255[155] = '/';
    char *p256 = long_path(256, 200, 'g'); /* 200 "/" 55: no split fits */
    char *p5000 = long_path(5000, 200, 'h');
    char *t300 = long_path(300, 40, 't');
    char *p101flat = repeat('m', 101); /* no slash: pax */
    char *p102 = repeat('r', 102);     /* "r" "/" 100: the name field full */
    p102[1] = '/';
    struct spec s[] = {
        {.path = "a.txt",
         .type = TAR_FILE,
         .size = 0,
         .mtime_ns = 1700000000000000000LL,
         .mode = 0644},
        {.path = "one", .type = TAR_FILE, .size = 1, .mtime_ns = 0, .mode = 0600},
        {.path = "d/", .type = TAR_DIR, .mtime_ns = 1600000000000000000LL, .mode = 0755},
        {.path = "d/511",
         .type = TAR_FILE,
         .size = 511,
         .mtime_ns = 1,
         .mode = 0640,
         .want_pax = true},
        {.path = "d/512",
         .type = TAR_FILE,
         .size = 512,
         .mtime_ns = -1,
         .mode = 0644,
         .want_pax = true},
        {.path = "d/513",
         .type = TAR_FILE,
         .size = 513,
         .mtime_ns = -1500000000LL,
         .mode = 04755,
         .want_pax = true},
        {.path = "d/big",
         .type = TAR_FILE,
         .size = 100003,
         .mtime_ns = 1700000000123456789LL,
         .mode = 0644,
         .want_pax = true},
        {.path = p100, .type = TAR_FILE, .size = 5, .mtime_ns = 86400000000000LL, .mode = 0644},
        {.path = p101, .type = TAR_FILE, .size = 5, .mtime_ns = 0, .mode = 0644},
        {.path = p102, .type = TAR_FILE, .size = 5, .mode = 0644},
        {.path = p101flat, .type = TAR_FILE, .size = 5, .mode = 0644, .want_pax = true},
        {.path = p155, .type = TAR_FILE, .size = 5, .mode = 0644},
        {.path = p255, .type = TAR_FILE, .size = 5, .mode = 0644},
        {.path = p256, .type = TAR_FILE, .size = 5, .mode = 0644, .want_pax = true},
        {.path = p5000, .type = TAR_FILE, .size = 700, .mode = 0644, .want_pax = true},
        {.path = "Z\xc3\xbcrich/\xe6\x97\xa5\xe6\x9c\xac \xe2\x9c\x93.txt",
         .type = TAR_FILE,
         .size = 12,
         .mode = 0644,
         .want_pax = true},
        {.path = "bad-\xff\xfe-\x80.bin",
         .type = TAR_FILE,
         .size = 3,
         .mode = 0644,
         .want_pax = true},
        {.path = "ln", .type = TAR_SYMLINK, .mode = 0777, .target = "a.txt"},
        {.path = "ln-long", .type = TAR_SYMLINK, .mode = 0777, .target = t300, .want_pax = true},
        {.path = "ln-uni",
         .type = TAR_SYMLINK,
         .mode = 0777,
         .target = "../caf\xc3\xa9/\xf0\x9f\x93\xa6",
         .want_pax = true},
        {.path = "ln-bin", .type = TAR_SYMLINK, .mode = 0777, .target = "x\xff", .want_pax = true},
        {.path = "t-min",
         .type = TAR_FILE,
         .size = 2,
         .mtime_ns = INT64_MIN,
         .mode = 0,
         .want_pax = true},
        {.path = "t-max",
         .type = TAR_FILE,
         .size = 2,
         .mtime_ns = INT64_MAX,
         .mode = 07777,
         .want_pax = true},
        {.path = "t-ustar-max",
         .type = TAR_FILE,
         .mtime_ns = 077777777777LL * 1000000000LL,
         .mode = 0644},
        {.path = "t-ustar-max+1",
         .type = TAR_FILE,
         .mtime_ns = (077777777777LL + 1) * 1000000000LL,
         .mode = 0644,
         .want_pax = true},
    };
    size_t n = sizeof(s) / sizeof(s[0]);
    uint64_t offsets[sizeof(s) / sizeof(s[0])];
    struct mem m = {0};
    write_specs(&m, s, n, offsets);
    assert_int_equal(m.len % 512, 0);

    /* the same stream whole, in single bytes, and in awkward chunks */
    const size_t chunks[] = {m.len, 1, 7, 511, 513, 4096};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct got g = {0};
        struct err e;
        int rc = read_stream(m.p, m.len, chunks[c], &g, &e);
        if (rc)
            fail_msg("chunk %zu: %s", chunks[c], e.msg);
        check_got(&g, s, n, offsets, &m);
        got_free(&g);
    }

    /* hdrcharset=BINARY only where the bytes are not UTF-8 */
    const char *hb = "hdrcharset=BINARY\n";
    size_t hits = 0;
    for (const unsigned char *q = m.p;
         (q = memmem(q, m.len - (size_t)(q - m.p), hb, strlen(hb))) != NULL; q++)
        hits++;
    assert_int_equal(hits, 2); /* bad-\xff..., ln-bin */
    /* sub-second and negative mtimes as decimal seconds */
    assert_non_null(memmem(m.p, m.len, "mtime=1700000000.123456789\n", 27));
    assert_non_null(memmem(m.p, m.len, "mtime=-1.5\n", 11));
    assert_non_null(memmem(m.p, m.len, "mtime=-0.000000001\n", 19));
    assert_non_null(memmem(m.p, m.len, "mtime=-9223372036.854775808\n", 28));

    mem_free(&m);
    specs_free(s, n);
    free(p100);
    free(p101);
    free(p155);
    free(p255);
    free(p256);
    free(p5000);
    free(t300);
    free(p101flat);
    free(p102);
}

/* A header field read back from a block of the stream. */
static uint64_t octal_field(const unsigned char *f, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w && f[i] >= '0' && f[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(f[i] - '0');
    return v;
}

static void test_header_fields(void **state)
{
    (void)state;
    struct mem m = {0};
    struct spec s[] = {{.path = "x",
                        .type = TAR_FILE,
                        .size = 3,
                        .mtime_ns = 1234000000000LL,
                        .mode = 0100644 /* st_mode: masked */}};
    write_specs(&m, s, 1, NULL);
    const unsigned char *h = m.p;
    assert_memory_equal(h + 257,
                        "ustar\0"
                        "00",
                        8);
    assert_int_equal(octal_field(h + 100, 8), 0644);
    assert_int_equal(octal_field(h + 108, 8), 0); /* uid */
    assert_int_equal(octal_field(h + 116, 8), 0); /* gid */
    assert_int_equal(octal_field(h + 124, 12), 3);
    assert_int_equal(octal_field(h + 136, 12), 1234);
    assert_int_equal(h[156], '0');
    assert_int_equal(h[265], 0); /* uname empty */
    assert_int_equal(h[297], 0); /* gname empty */
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += i >= 148 && i < 156 ? ' ' : h[i];
    assert_int_equal(octal_field(h + 148, 8), sum);
    /* data, zero padding, two zero blocks, nothing else */
    assert_int_equal(m.len, 512 + 512 + 1024);
    for (size_t i = 512 + 3; i < m.len; i++)
        assert_int_equal(m.p[i], 0);
    mem_free(&m);
    specs_free(s, 1);
}

/* The 8 GiB boundary: written as a header only; the reader parses the
 * size from a fake stream that ends early. */
static void test_size_8gib(void **state)
{
    (void)state;
    struct err e;
    err_clear(&e);
    const uint64_t big = 8ULL << 30;
    uint64_t sizes[] = {big - 1, big, (1ULL << 40) + 3};
    for (size_t i = 0; i < 3; i++) {
        struct mem m = {0};
        struct tar_writer *t = tar_writer_new(mem_sink, &m);
        struct tar_entry ent = {
            .path = "huge.bin", .path_len = 8, .type = TAR_FILE, .size = sizes[i], .mode = 0644};
        uint64_t off;
        assert_int_equal(tar_begin(t, &ent, &off, &e), 0);
        char rec[64];
        snprintf(rec, sizeof(rec), "size=%llu\n", (unsigned long long)sizes[i]);
        if (sizes[i] < big) {
            assert_int_equal(off, 512);
            assert_int_equal(octal_field(m.p + 124, 12), sizes[i]);
            assert_null(memmem(m.p, m.len, rec, strlen(rec)));
        } else {
            assert_int_equal(off, 1536); /* 'x' header, records, ustar header */
            assert_non_null(memmem(m.p, m.len, rec, strlen(rec)));
            assert_int_equal(m.p[1024 + 124], 0x80); /* base-256 as GNU tar */
        }
        /* some data, then the stream ends */
        unsigned char data[1000];
        fill_pattern(data, sizeof(data), 3);
        assert_int_equal(tar_data(t, data, sizeof(data), &e), 0);
        struct got g = {0};
        int rc = read_stream(m.p, m.len, 100, &g, &e);
        assert_int_equal(rc, ERR_IO);
        assert_non_null(strstr(e.msg, "truncated tar archive"));
        assert_int_equal(g.n, 1);
        assert_int_equal(g.v[0].size, sizes[i]);
        assert_int_equal(g.v[0].data_offset, off);
        assert_int_equal(g.v[0].data_len, sizeof(data));
        assert_false(g.v[0].ended);
        got_free(&g);

        /* GNU tar lists the header with the full size */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/huge-%zu.tar", tmpdir, i);
        write_file(path, m.p, m.len);
        char *out = capture("LC_ALL=C tar -tvf '%s' 2>/dev/null", path);
        snprintf(rec, sizeof(rec), " %llu ", (unsigned long long)sizes[i]);
        if (!strstr(out, rec) || !strstr(out, "huge.bin"))
            fail_msg("GNU tar listed: %s", out);
        free(out);
        tar_writer_free(t);
        mem_free(&m);
    }
}

/* ---- hand-made streams ------------------------------------------------ */

/* A header block with a valid checksum (magic "ustar\0" "00"). */
static void make_header(unsigned char *h, const char *name, char type, uint64_t size,
                        uint64_t mtime)
{
    memset(h, 0, 512);
    memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
    h[156] = (unsigned char)type;
    memcpy(h + 257,
           "ustar\0"
           "00",
           8);
}

static void fix_checksum(unsigned char *h)
{
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += i >= 148 && i < 156 ? ' ' : h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

/* append a member (header + data padded) to m */
static void add_member(struct mem *m, const char *name, char type, const void *data, size_t n,
                       uint64_t mtime)
{
    unsigned char h[512];
    make_header(h, name, type, n, mtime);
    fix_checksum(h);
    mem_sink(m, h, 512, NULL);
    if (n) {
        mem_sink(m, data, n, NULL);
        unsigned char z[512] = {0};
        mem_sink(m, z, (512 - n % 512) % 512, NULL);
    }
}

static void add_end(struct mem *m)
{
    unsigned char z[1024] = {0};
    mem_sink(m, z, sizeof(z), NULL);
}

static int read_mem(const struct mem *m, struct got *g, struct err *e)
{
    return read_stream(m->p, m->len, m->len ? m->len : 1, g, e);
}

static void expect_error(const struct mem *m, const char *needle)
{
    /* the same error whole and byte by byte */
    for (int pass = 0; pass < 2; pass++) {
        struct got g = {0};
        struct err e;
        int rc = read_stream(m->p, m->len, pass ? 1 : m->len, &g, &e);
        if (rc != ERR_IO || !strstr(e.msg, needle))
            fail_msg("want an error with '%s', got %d '%s'", needle, rc, e.msg);
        got_free(&g);
    }
}

static void test_pax_global_and_overrides(void **state)
{
    (void)state;
    struct mem m = {0};
    const char gbuf[] = "23 mtime=1000000000.25\n"
                        "17 comment=hello\n";
    add_member(&m, "pax_global_header", 'g', gbuf, strlen(gbuf), 0);
    add_member(&m, "a", '0', "A", 1, 5); /* global mtime applies */
    const char x1[] = "19 path=long/name1\n"
                      "12 mtime=42\n";
    add_member(&m, "PaxHeaders/x", 'x', x1, strlen(x1), 0);
    add_member(&m, "short", '0', "BB", 2, 5); /* x overrides both */
    const char x2[] = "9 mtime=\n";           /* cleared: the header's own mtime */
    add_member(&m, "PaxHeaders/y", 'x', x2, strlen(x2), 0);
    add_member(&m, "c", '0', "", 0, 77);
    add_member(&m, "d", '0', "", 0, 78); /* global again */
    add_end(&m);
    struct got got = {0};
    struct err e;
    if (read_mem(&m, &got, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(got.n, 4);
    assert_string_equal(got.v[0].path, "a");
    assert_int_equal(got.v[0].mtime_ns, 1000000000250000000LL);
    assert_string_equal(got.v[1].path, "long/name1");
    assert_int_equal(got.v[1].mtime_ns, 42000000000LL);
    assert_memory_equal(got.v[1].data, "BB", 2);
    assert_int_equal(got.v[2].mtime_ns, 77000000000LL);
    assert_int_equal(got.v[3].mtime_ns, 1000000000250000000LL);
    got_free(&got);
    mem_free(&m);
}

static void test_gnu_long_names_and_base256(void **state)
{
    (void)state;
    struct mem m = {0};
    char *name = long_path(300, 90, 'L');
    char *link = long_path(150, 90, 'K');
    char buf[400];
    snprintf(buf, sizeof(buf), "%s", name);
    add_member(&m, "././@LongLink", 'L', buf, strlen(buf) + 1, 0); /* with its NUL */
    snprintf(buf, sizeof(buf), "%s", link);
    add_member(&m, "././@LongLink", 'K', buf, strlen(buf) + 1, 0);
    add_member(&m, "cut-name", '2', NULL, 0, 0);
    /* a base-256 size (GNU) of 2^40 + 5 and a negative base-256 mtime */
    unsigned char h[512];
    make_header(h, "big", '0', 0, 0);
    memset(h + 124, 0, 12);
    h[124] = 0x80;
    uint64_t v = (1ULL << 40) + 5;
    for (int i = 11; i >= 1; i--, v >>= 8)
        h[124 + i] = (unsigned char)(v & 0xff);
    memset(h + 136, 0xff, 12); /* -1 */
    h[147] = 0xfe;             /* -2 */
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    struct got got = {0};
    struct err e;
    int rc = read_mem(&m, &got, &e);
    assert_int_equal(rc, ERR_IO); /* ends inside the data */
    assert_non_null(strstr(e.msg, "truncated tar archive"));
    assert_int_equal(got.n, 2);
    assert_int_equal(got.v[0].type, TAR_SYMLINK);
    assert_string_equal(got.v[0].path, name);
    assert_string_equal(got.v[0].target, link);
    assert_int_equal(got.v[1].size, (1ULL << 40) + 5);
    assert_int_equal(got.v[1].mtime_ns, -2000000000LL);
    got_free(&got);
    mem_free(&m);
    free(name);
    free(link);
}

static void test_other_types(void **state)
{
    (void)state;
    struct mem m = {0};
    add_member(&m, "f", '0', "data", 4, 0);
    unsigned char h[512];
    make_header(h, "hard", '1', 0, 0);
    memcpy(h + 157, "f", 1);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_member(&m, "fifo", '6', NULL, 0, 0);
    add_member(&m, "chr", '3', NULL, 0, 0);
    add_member(&m, "vendor", 'A', "xyz", 3, 0); /* unknown with data: skipped */
    add_member(&m, "old", '\0', "v7", 2, 0);    /* old regular file */
    add_member(&m, "dir/", '5', NULL, 0, 0);
    /* as GNU tar: a directory's or symlink's size field brings no data, a
     * hard link's does (skipped) */
    make_header(h, "dir2/", '5', 600, 0);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    make_header(h, "sym", '2', 600, 0);
    memcpy(h + 157, "f", 1);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    make_header(h, "hard2", '1', 600, 0);
    memcpy(h + 157, "f", 1);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    unsigned char junk[1024];
    memset(junk, 'J', sizeof(junk));
    mem_sink(&m, junk, sizeof(junk), NULL);
    add_member(&m, "contig", '7', "c7", 2, 0); /* contiguous file: a file */
    /* GNU's magic: the prefix field is not a prefix there (atime, ctime) */
    make_header(h, "gnu-name", '0', 0, 0);
    memcpy(h + 257, "ustar  ", 8);
    memcpy(h + 345, "12345670123", 11);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_end(&m);
    struct got got = {0};
    struct err e;
    if (read_mem(&m, &got, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(got.n, 12);
    assert_int_equal(got.v[7].type, TAR_DIR);
    assert_int_equal(got.v[7].size, 0);
    assert_int_equal(got.v[8].type, TAR_SYMLINK);
    assert_int_equal(got.v[8].size, 0);
    assert_string_equal(got.v[8].target, "f");
    assert_int_equal(got.v[9].type, TAR_OTHER);
    assert_int_equal(got.v[9].size, 600);
    assert_int_equal(got.v[10].type, TAR_FILE);
    assert_int_equal(got.v[10].typeflag, '7');
    assert_memory_equal(got.v[10].data, "c7", 2);
    assert_string_equal(got.v[11].path, "gnu-name");
    assert_int_equal(got.v[1].type, TAR_OTHER);
    assert_int_equal(got.v[1].typeflag, '1');
    assert_string_equal(got.v[1].target, "f");
    assert_int_equal(got.v[2].typeflag, '6');
    assert_int_equal(got.v[3].typeflag, '3');
    assert_int_equal(got.v[4].type, TAR_OTHER);
    assert_int_equal(got.v[4].size, 3);
    assert_null(got.v[4].data); /* not delivered */
    assert_int_equal(got.v[5].type, TAR_FILE);
    assert_memory_equal(got.v[5].data, "v7", 2);
    assert_int_equal(got.v[6].type, TAR_DIR);
    assert_string_equal(got.v[6].path, "dir/");
    got_free(&got);
    mem_free(&m);
}

/* ---- damaged input ---------------------------------------------------- */

static void test_bad_checksum(void **state)
{
    (void)state;
    struct mem m = {0};
    add_member(&m, "a", '0', "hello", 5, 0);
    add_member(&m, "b", '0', "world", 5, 0);
    add_end(&m);
    m.p[1024 + 3] ^= 0x20; /* a byte of b's header (name field) */
    expect_error(&m, "tar header checksum mismatch at offset 1024");
    m.p[1024 + 3] ^= 0x20;
    m.p[1024 + 150] ^= 0x01; /* the checksum field itself */
    expect_error(&m, "tar header checksum mismatch at offset 1024");
    mem_free(&m);
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    char *lp = long_path(400, 80, 'p');
    struct spec s[] = {
        {.path = "a", .type = TAR_FILE, .size = 700, .mode = 0644},
        {.path = lp, .type = TAR_FILE, .size = 10, .mtime_ns = 5, .mode = 0644, .want_pax = true},
        {.path = "l", .type = TAR_SYMLINK, .target = "a", .mode = 0777},
        {.path = "e", .type = TAR_FILE, .mode = 0644},
    };
    struct mem m = {0};
    write_specs(&m, s, 4, NULL);
    size_t ok_from = m.len - 512; /* the first zero block is complete */
    for (size_t len = 0; len < m.len; len++) {
        struct got g = {0};
        struct err e;
        int rc = read_stream(m.p, len, len ? len : 1, &g, &e);
        if (len >= ok_from) {
            if (rc)
                fail_msg("length %zu: %s", len, e.msg);
            assert_int_equal(g.n, 4);
        } else if (rc != ERR_IO || strncmp(e.msg, "truncated tar archive", 21) != 0) {
            fail_msg("length %zu: rc %d '%s'", len, rc, e.msg);
        }
        got_free(&g);
    }
    mem_free(&m);
    specs_free(s, 4);
    free(lp);
}

static void test_malformed_pax(void **state)
{
    (void)state;
    struct {
        const char *records;
        size_t len;
        const char *needle;
    } cases[] = {
        {"30 path=abc\n", 12, "does not fit"},            /* length past the header */
        {"11 path=abc\n", 12, "does not match"},          /* one short */
        {"x2 path=abc\n", 12, "no length prefix"},        /* not a number */
        {"12path=abcd\n", 12, "no length prefix"},        /* no space */
        {"12 pathabcd\n", 12, "no keyword=value"},        /* no '=' */
        {"12 =pathabc\n", 12, "no keyword=value"},        /* empty keyword */
        {"12 path=a\0c\n", 12, "NUL byte in a pax path"}, /* NUL in the path */
        {"16 linkpath=\0bc\n", 16, "NUL byte in a pax path"},
        {"14 size=12x45\n", 14, "bad pax size"},
        {"29 size=99999999999999999999\n", 29, "bad pax size"}, /* overflows */
        {"28 size=9223372036854775808\n", 28, "bad pax size"},  /* > 2^63-1 */
        {"15 mtime=1.2.3\n", 15, "bad pax mtime"},
        {"32 mtime=99999999999999999999.5\n", 32, "bad pax mtime"},
        {"99999999999999999999999 path=x\n", 31, "does not fit"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mem m = {0};
        add_member(&m, "PaxHeaders/a", 'x', cases[i].records, cases[i].len, 0);
        add_member(&m, "a", '0', "z", 1, 0);
        add_end(&m);
        for (int pass = 0; pass < 2; pass++) {
            struct got g = {0};
            struct err e;
            int rc = read_stream(m.p, m.len, pass ? 1 : m.len, &g, &e);
            if (rc != ERR_IO || !strstr(e.msg, cases[i].needle) || !strstr(e.msg, "offset 512:"))
                fail_msg("case %zu: rc %d '%s'", i, rc, e.msg);
            assert_int_equal(g.n, 0);
            got_free(&g);
        }
        mem_free(&m);
    }
    /* the offset named is the record's: the second one here */
    struct mem m = {0};
    const char two[] = "12 path=abc\n12 size=1x3\n";
    add_member(&m, "PaxHeaders/a", 'x', two, strlen(two), 0);
    add_member(&m, "a", '0', "z", 1, 0);
    add_end(&m);
    expect_error(&m, "bad pax size record at offset 524");
    m.len = 0;
    const char junk[] = "12 path=abc\nX";
    add_member(&m, "PaxHeaders/a", 'x', junk, strlen(junk), 0);
    add_member(&m, "a", '0', "z", 1, 0);
    add_end(&m);
    expect_error(&m, "no length prefix");
    mem_free(&m);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct mem m = {0};
    unsigned char h[512];

    /* size overflowing 64 bits (base-256) */
    make_header(h, "a", '0', 0, 0);
    memset(h + 124, 0xff, 12);
    h[124] = 0x80;
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_end(&m);
    expect_error(&m, "bad size field");
    m.len = 0;

    /* size over 2^63-1 */
    make_header(h, "a", '0', 0, 0);
    memset(h + 124, 0, 12);
    h[124] = 0x80;
    h[128] = 0x80;
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_end(&m);
    expect_error(&m, "size over 2^63-1");
    m.len = 0;

    /* bad octal digits */
    make_header(h, "a", '0', 0, 0);
    memcpy(h + 124, "0000000009\0", 12);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_end(&m);
    expect_error(&m, "bad size field");
    m.len = 0;
    make_header(h, "a", '0', 0, 0);
    memcpy(h + 100, "06x4\0\0\0", 8);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_end(&m);
    expect_error(&m, "bad mode field");
    m.len = 0;
    make_header(h, "a", '0', 0, 0);
    memset(h + 136, ' ', 12); /* blank */
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    add_end(&m);
    expect_error(&m, "bad mtime field");
    m.len = 0;

    /* an extended header over the limit */
    make_header(h, "PaxHeaders/a", 'x', 2 * 1024 * 1024, 0);
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    expect_error(&m, "over the limit");
    m.len = 0;

    /* NUL inside a GNU long name */
    add_member(&m, "././@LongLink", 'L', "ab\0cd\0", 6, 0);
    add_member(&m, "x", '0', NULL, 0, 0);
    add_end(&m);
    expect_error(&m, "NUL byte inside the GNU long name at offset 0");
    m.len = 0;

    /* an empty name */
    add_member(&m, "", '0', NULL, 0, 0);
    add_end(&m);
    expect_error(&m, "empty name");
    m.len = 0;

    /* a lone zero block, then more */
    add_member(&m, "a", '0', "x", 1, 0);
    unsigned char z[512] = {0};
    mem_sink(&m, z, 512, NULL);
    add_member(&m, "b", '0', "y", 1, 0);
    add_end(&m);
    expect_error(&m, "lone zero block");
    m.len = 0;

    /* an extended header with no member after it */
    add_member(&m, "PaxHeaders/a", 'x', "12 path=abc\n", 12, 0);
    add_end(&m);
    expect_error(&m, "right after an extended header");
    m.len = 0;

    /* garbage that is not a tar archive at all */
    for (unsigned seed = 1; seed <= 20; seed++) {
        m.len = 0;
        srand(seed);
        for (int i = 0; i < 3000; i++) {
            unsigned char c = (unsigned char)rand();
            mem_sink(&m, &c, 1, NULL);
        }
        expect_error(&m, "checksum mismatch at offset 0");
    }
    m.len = 0;
    const char *text = "This is not a tar archive, just some text that goes on and on.\n";
    for (int i = 0; i < 20; i++)
        mem_sink(&m, text, strlen(text), NULL);
    expect_error(&m, "checksum mismatch at offset 0");

    /* empty input */
    m.len = 0;
    struct got g = {0};
    struct err e;
    assert_int_equal(read_stream("", 0, 1, &g, &e), ERR_IO);
    assert_non_null(strstr(e.msg, "truncated tar archive"));
    got_free(&g);

    /* one zero block then the end: accepted as GNU tar does; bytes after
     * the end (GNU tar's record padding, anything) are ignored */
    m.len = 0;
    add_member(&m, "a", '0', "x", 1, 0);
    mem_sink(&m, z, 512, NULL);
    assert_int_equal(read_mem(&m, &g, &e), 0);
    got_free(&g);
    add_end(&m);
    mem_sink(&m, "junk", 4, NULL);
    assert_int_equal(read_mem(&m, &g, &e), 0);
    assert_int_equal(g.n, 1);
    got_free(&g);
    mem_free(&m);
}

/* Random damage to a valid archive: an error with a message or a success,
 * never a crash or a leak (ASan). */
static void test_mutations(void **state)
{
    (void)state;
    char *lp = long_path(300, 90, 'q');
    struct spec s[] = {
        {.path = "a",
         .type = TAR_FILE,
         .size = 1000,
         .mode = 0644,
         .mtime_ns = 3,
         .want_pax = true},
        {.path = lp, .type = TAR_FILE, .size = 10, .mode = 0644, .want_pax = true},
        {.path = "l", .type = TAR_SYMLINK, .target = lp, .mode = 0777, .want_pax = true},
        {.path = "d/", .type = TAR_DIR, .mode = 0755},
    };
    struct mem m = {0};
    write_specs(&m, s, 4, NULL);
    unsigned char *copy = malloc(m.len);
    assert_non_null(copy);
    srand(42);
    size_t errors = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, m.p, m.len);
        int flips = 1 + rand() % 3;
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)rand() % m.len;
            /* mostly in headers, where the parsing is */
            if (rand() % 4)
                at = (size_t)rand() % 2048;
            copy[at] = (unsigned char)rand();
        }
        struct got g = {0};
        struct err e;
        int rc = read_stream(copy, m.len, 1 + (size_t)rand() % 700, &g, &e);
        if (rc) {
            errors++;
            assert_true(rc < 0);
            assert_true(strlen(e.msg) > 0);
        }
        got_free(&g);
    }
    assert_true(errors > 100); /* the damage is found, mostly */
    free(copy);
    mem_free(&m);
    specs_free(s, 4);
    free(lp);
}

/* ---- writer contract ------------------------------------------------- */

static void test_writer_limits(void **state)
{
    (void)state;
    struct err e;
    err_clear(&e);
    struct mem m = {0};
    struct tar_writer *t = tar_writer_new(mem_sink, &m);
    struct tar_entry ent = {.path = "grew.txt",
                            .path_len = 8,
                            .type = TAR_FILE,
                            .size = 10,
                            .mode = 0644,
                            .mtime_ns = 1700000000000000000LL};
    assert_int_equal(tar_begin(t, &ent, NULL, &e), 0);
    assert_int_equal(tar_data(t, "0123456", 7, &e), 0);
    size_t before = m.len;
    assert_int_equal(tar_data(t, "789AB", 5, &e), ERR_IO); /* 2 over */
    assert_non_null(strstr(e.msg, "exceed"));
    assert_int_equal(m.len, before); /* nothing emitted */
    assert_int_equal(tar_offset(t), before);
    assert_int_equal(tar_data(t, "789", 3, &e), 0); /* exactly what is left */
    assert_int_equal(tar_data(t, "", 0, &e), 0);
    assert_int_equal(tar_data(t, "X", 1, &e), ERR_IO);
    uint64_t padded = 9;
    assert_int_equal(tar_end(t, &padded, &e), 0);
    assert_int_equal(padded, 0);

    /* a file that shrank: padded with zeros to its header's size */
    struct tar_entry shr = {.path = "shrank.bin",
                            .path_len = 10,
                            .type = TAR_FILE,
                            .size = 5000,
                            .mode = 0600,
                            .mtime_ns = 1700000000000000000LL};
    assert_int_equal(tar_begin(t, &shr, NULL, &e), 0);
    assert_int_equal(tar_data(t, "abc", 3, &e), 0);
    assert_int_equal(tar_end(t, &padded, &e), 0);
    assert_int_equal(padded, 4997);

    /* misuse */
    assert_int_equal(tar_data(t, "x", 1, &e), ERR_INTERNAL);
    assert_int_equal(tar_end(t, NULL, &e), ERR_INTERNAL);
    struct tar_entry bad = {.path = "a\0b", .path_len = 3, .type = TAR_FILE};
    assert_int_equal(tar_begin(t, &bad, NULL, &e), ERR_USAGE);
    bad.path_len = 0;
    assert_int_equal(tar_begin(t, &bad, NULL, &e), ERR_USAGE);
    bad.path = "dev";
    bad.path_len = 3;
    bad.type = TAR_OTHER;
    assert_int_equal(tar_begin(t, &bad, NULL, &e), ERR_USAGE);
    bad.type = TAR_SYMLINK;
    bad.target = "";
    assert_int_equal(tar_begin(t, &bad, NULL, &e), ERR_USAGE);
    struct tar_entry d = {.path = "x/", .path_len = 2, .type = TAR_DIR, .mode = 0755};
    assert_int_equal(tar_begin(t, &d, NULL, &e), 0);
    assert_int_equal(tar_begin(t, &d, NULL, &e), ERR_INTERNAL); /* not ended */
    assert_int_equal(tar_finish(t, &e), ERR_INTERNAL);
    assert_int_equal(tar_data(t, "x", 1, &e), ERR_IO); /* a directory has no data */
    assert_int_equal(tar_end(t, NULL, &e), 0);
    assert_int_equal(tar_finish(t, &e), 0);
    tar_writer_free(t);

    /* the misuse left a valid archive: ours and GNU tar read it */
    struct got g = {0};
    if (read_mem(&m, &g, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(g.n, 3);
    assert_memory_equal(g.v[0].data, "0123456789", 10);
    assert_int_equal(g.v[1].size, 5000);
    assert_memory_equal(g.v[1].data, "abc", 3);
    for (size_t i = 3; i < 5000; i++)
        assert_int_equal(g.v[1].data[i], 0);
    got_free(&g);
    char path[PATH_MAX], out[PATH_MAX];
    snprintf(path, sizeof(path), "%s/limits.tar", tmpdir);
    snprintf(out, sizeof(out), "%s/limits", tmpdir);
    write_file(path, m.p, m.len);
    assert_int_equal(run("mkdir -p '%s' && tar -xf '%s' -C '%s'", out, path, out), 0);
    size_t n;
    char fp[PATH_MAX + 32];
    snprintf(fp, sizeof(fp), "%s/shrank.bin", out);
    unsigned char *data = read_file(fp, &n);
    assert_int_equal(n, 5000);
    assert_memory_equal(data, "abc\0\0", 5);
    free(data);
    snprintf(fp, sizeof(fp), "%s/grew.txt", out);
    data = read_file(fp, &n);
    assert_int_equal(n, 10);
    assert_memory_equal(data, "0123456789", 10);
    free(data);
    mem_free(&m);

    /* a failing sink: its error comes back, later calls fail too */
    m.fail_at = 700;
    t = tar_writer_new(mem_sink, &m);
    assert_int_equal(tar_begin(t, &ent, NULL, &e), 0);
    char big[400] = {0};
    err_clear(&e);
    assert_int_equal(tar_data(t, big, 10, &e), 0);
    err_clear(&e);
    assert_int_equal(tar_end(t, NULL, &e), ERR_NET);
    assert_non_null(strstr(e.msg, "connection reset"));
    assert_int_equal(tar_finish(t, &e), ERR_IO);
    assert_non_null(strstr(e.msg, "earlier write error"));
    tar_writer_free(t);
    mem_free(&m);
}

/* ---- GNU tar extracts what we write ---------------------------------- */

/* The line of a `tar -tv` listing that ends with " <name>" holds all three
 * pieces. */
static void expect_listed(const char *list, const char *name, const char *a, const char *b,
                          const char *c)
{
    for (const char *line = list; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        size_t nlen = strlen(name);
        if (len > nlen && line[len - nlen - 1] == ' ' &&
            memcmp(line + len - nlen, name, nlen) == 0) {
            char *copy = dup_bytes(line, len);
            if (!strstr(copy, a) || !strstr(copy, b) || !strstr(copy, c))
                fail_msg("tar -tv listed: %s", copy);
            free(copy);
            return;
        }
        line += len + (nl ? 1 : 0);
    }
    fail_msg("tar -tv did not list '%s'", name);
}

static void test_gnu_tar_extracts_ours(void **state)
{
    (void)state;
    char *p256 = long_path(256, 200, 'g');
    char *p3000 = long_path(3000, 200, 'h');
    char *t300 = long_path(300, 40, 't');
    char *p150 = long_path(150, 80, 'k');
    /* everything below d/ first: GNU tar sets a directory's mtime once it
     * extracts something outside it */
    struct spec s[] = {
        {.path = "d/", .type = TAR_DIR, .mtime_ns = 1600000000000000000LL, .mode = 0750},
        {.path = "d/plain.txt",
         .type = TAR_FILE,
         .size = 1234,
         .mtime_ns = 1700000000123456789LL,
         .mode = 0640,
         .want_pax = true},
        {.path = "d/empty",
         .type = TAR_FILE,
         .size = 0,
         .mtime_ns = 1700000000000000000LL,
         .mode = 0600},
        {.path = "d/exact512",
         .type = TAR_FILE,
         .size = 512,
         .mtime_ns = 1000000001LL,
         .mode = 0755,
         .want_pax = true},
        {.path = "d/old",
         .type = TAR_FILE,
         .size = 10,
         .mtime_ns = -1500000000LL,
         .mode = 0644,
         .want_pax = true},
        {.path = "d/neg-ns",
         .type = TAR_FILE,
         .size = 1,
         .mtime_ns = -1,
         .mode = 0644,
         .want_pax = true},
        {.path = "d/Z\xc3\xbcrich \xe6\x97\xa5\xe6\x9c\xac \xe2\x9c\x93.txt",
         .type = TAR_FILE,
         .size = 20,
         .mtime_ns = 1700000000500000000LL,
         .mode = 0644,
         .want_pax = true},
        {.path = "d/bad-\xff\xfe-\x80.bin",
         .type = TAR_FILE,
         .size = 3,
         .mtime_ns = 1700000000000000000LL,
         .mode = 0644,
         .want_pax = true},
        {.path = "d/ln",
         .type = TAR_SYMLINK,
         .target = "plain.txt",
         .mode = 0777,
         .mtime_ns = 1700000000000000000LL},
        {.path = "d/ln-long",
         .type = TAR_SYMLINK,
         .target = t300,
         .mode = 0777,
         .mtime_ns = 1700000000000000000LL,
         .want_pax = true},
        {.path = "d/ln-uni",
         .type = TAR_SYMLINK,
         .target = "caf\xc3\xa9/\xf0\x9f\x93\xa6",
         .mode = 0777,
         .mtime_ns = 1700000000000000000LL,
         .want_pax = true},
        {.path = p150,
         .type = TAR_FILE,
         .size = 700,
         .mtime_ns = 1700000000000000000LL,
         .mode = 0644},
        {.path = p256,
         .type = TAR_FILE,
         .size = 9999,
         .mtime_ns = 1700000000000000000LL,
         .mode = 0644,
         .want_pax = true},
        {.path = p3000,
         .type = TAR_FILE,
         .size = 77,
         .mtime_ns = 1700000000000000000LL,
         .mode = 0644,
         .want_pax = true},
    };
    size_t n = sizeof(s) / sizeof(s[0]);
    struct mem m = {0};
    write_specs(&m, s, n, NULL);
    char tarpath[PATH_MAX], out[PATH_MAX];
    snprintf(tarpath, sizeof(tarpath), "%s/ours.tar", tmpdir);
    snprintf(out, sizeof(out), "%s/ours", tmpdir);
    write_file(tarpath, m.p, m.len);
    /* -p: modes as stored. GNU tar 1.34 warns about every mtime before 1970
     * (and prints it wrongly) and about the POSIX hdrcharset keyword it does
     * not know; any other message is a failure. */
    char *msgs = capture("mkdir -p '%s' && cd '%s' && LC_ALL=C tar -xpf '%s' 2>&1; echo rc=$?", out,
                         out, tarpath);
    size_t old_stamps = 0, hdrcharset = 0;
    for (char *line = msgs, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        if (strstr(line, ": implausibly old time stamp "))
            old_stamps++;
        else if (strcmp(line, "tar: Ignoring unknown extended header keyword 'hdrcharset'") == 0)
            hdrcharset++;
        else if (strcmp(line, "rc=0") != 0)
            fail_msg("GNU tar: %s", line);
    }
    assert_int_equal(old_stamps, 2); /* d/old, d/neg-ns */
    assert_int_equal(hdrcharset, 1); /* d/bad-... */
    free(msgs);

    for (size_t i = 0; i < n; i++) {
        size_t pl = spec_path_len(&s[i]);
        char *fp = join(out, s[i].path, pl);
        if (s[i].type == TAR_DIR)
            fp[strlen(fp) - 1] = '\0';
        struct stat st;
        /* a 3000-byte path: stat through the directory chain is fine below PATH_MAX */
        if (lstat(fp, &st) != 0)
            fail_msg("member %zu: lstat: %s", i, strerror(errno));
        switch (s[i].type) {
        case TAR_FILE: {
            assert_true(S_ISREG(st.st_mode));
            size_t len;
            unsigned char *data = read_file(fp, &len);
            assert_int_equal(len, s[i].size);
            if (len)
                assert_memory_equal(data, s[i].data, len);
            free(data);
            assert_int_equal(st.st_mode & 07777, s[i].mode);
            break;
        }
        case TAR_DIR:
            assert_true(S_ISDIR(st.st_mode));
            assert_int_equal(st.st_mode & 07777, s[i].mode);
            break;
        default: {
            assert_true(S_ISLNK(st.st_mode));
            char buf[1024];
            ssize_t k = readlink(fp, buf, sizeof(buf));
            assert_int_equal(k, (ssize_t)spec_target_len(&s[i]));
            assert_memory_equal(buf, s[i].target, (size_t)k);
            break;
        }
        }
        if (mtime_of(&st) != s[i].mtime_ns)
            fail_msg("member %zu: GNU tar set mtime %lld, want %lld", i, (long long)mtime_of(&st),
                     (long long)s[i].mtime_ns);
        free(fp);
    }

    /* stat(1) shows the nanoseconds GNU tar restored */
    char *y = capture("TZ=UTC stat -c %%y '%s/d/plain.txt'", out);
    assert_non_null(strstr(y, "2023-11-14 22:13:20.123456789"));
    free(y);
    y = capture("TZ=UTC stat -c %%y '%s/d/old'", out);
    assert_non_null(strstr(y, "1969-12-31 23:59:58.500000000"));
    free(y);

    /* its listing: every name, exactly, in order */
    char *list = capture("LC_ALL=C tar --quoting-style=literal -tf '%s' 2>/dev/null", tarpath);
    char *q = list;
    for (size_t i = 0; i < n; i++) {
        size_t pl = spec_path_len(&s[i]);
        if (strncmp(q, s[i].path, pl) != 0 || q[pl] != '\n')
            fail_msg("listing entry %zu differs: %.80s", i, q);
        q += pl + 1;
    }
    assert_string_equal(q, "");
    free(list);
    /* verbose, full time: owner 0/0, size, nanoseconds */
    list =
        capture("TZ=UTC LC_ALL=C tar --numeric-owner --full-time -tvf '%s' 2>/dev/null", tarpath);
    expect_listed(list, "d/plain.txt", "-rw-r----- 0/0 ", " 1234 ",
                  " 2023-11-14 22:13:20.123456789 ");
    expect_listed(list, "d/ln -> plain.txt", "lrwxrwxrwx 0/0 ", " 0 ", " 2023-11-14 22:13:20 ");
    expect_listed(list, "d/", "drwxr-x--- 0/0 ", " 0 ", " 2020-09-13 12:26:40 ");
    expect_listed(list, "d/exact512", "-rwxr-xr-x 0/0 ", " 512 ",
                  " 1970-01-01 00:00:01.000000001 ");
    free(list);
    /* and GNU tar's own comparison of the archive with the files: no
     * difference (contents, sizes, modes, mtimes, link targets) */
    char *diff =
        capture("cd '%s' && LC_ALL=C tar --compare -f '%s' 2>&1; echo rc=$?", out, tarpath);
    if (!strstr(diff, "rc=0\n"))
        fail_msg("tar --compare: %s", diff);
    free(diff);

    mem_free(&m);
    specs_free(s, n);
    free(p256);
    free(p3000);
    free(t300);
    free(p150);
}

/* ---- we read what GNU tar writes ------------------------------------- */

struct node {
    const char *path; /* below the source root */
    char kind;        /* f file, l symlink, d dir, h hard link, p fifo */
    size_t size;
    const char *target; /* symlinks and hard links */
    int64_t mtime_ns;
    uint32_t mode;
    bool not_ustar; /* ustar cannot hold it */
};

static void make_tree(const char *root, const struct node *nodes, size_t n, const char *format)
{
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].not_ustar && strcmp(format, "ustar") == 0)
            continue;
        char *p = join(root, nodes[i].path, strlen(nodes[i].path));
        /* parents */
        for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')) != NULL; s++) {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
        switch (nodes[i].kind) {
        case 'f': {
            unsigned char *data = malloc(nodes[i].size + 1);
            fill_pattern(data, nodes[i].size, (unsigned)i + 100);
            write_file(p, data, nodes[i].size);
            free(data);
            break;
        }
        case 'd':
            assert_int_equal(mkdir(p, 0755), 0);
            break;
        case 'l':
            assert_int_equal(symlink(nodes[i].target, p), 0);
            break;
        case 'h': {
            char *t = join(root, nodes[i].target, strlen(nodes[i].target));
            assert_int_equal(link(t, p), 0);
            free(t);
            break;
        }
        case 'p':
            assert_int_equal(mkfifo(p, 0644), 0);
            break;
        }
        if (nodes[i].kind != 'l' && nodes[i].kind != 'h')
            assert_int_equal(chmod(p, nodes[i].mode), 0);
        free(p);
    }
    /* mtimes last, deepest first, so that creating children does not change
     * a directory's mtime afterwards */
    for (size_t i = n; i-- > 0;) {
        if (nodes[i].not_ustar && strcmp(format, "ustar") == 0)
            continue;
        if (nodes[i].kind == 'h')
            continue;
        char *p = join(root, nodes[i].path, strlen(nodes[i].path));
        struct timespec ts[2];
        ts[0].tv_sec = ts[1].tv_sec = nodes[i].mtime_ns / 1000000000LL;
        ts[0].tv_nsec = ts[1].tv_nsec = nodes[i].mtime_ns % 1000000000LL;
        if (ts[1].tv_nsec < 0) {
            ts[0].tv_sec = --ts[1].tv_sec;
            ts[0].tv_nsec = ts[1].tv_nsec += 1000000000LL;
        }
        assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
        free(p);
    }
}

static int64_t floor_seconds_ns(int64_t ns)
{
    int64_t s = ns / 1000000000LL - (ns % 1000000000LL < 0 ? 1 : 0);
    return s * 1000000000LL;
}

/* One archive of GNU tar, read by us and checked against the files. */
static void check_gnu_archive(const char *root, const struct node *nodes, size_t n,
                              const char *format, const char *options)
{
    char tarpath[PATH_MAX];
    snprintf(tarpath, sizeof(tarpath), "%s/gnu-%s.tar", tmpdir, format);
    if (run("LC_ALL=C tar --format=%s %s -C '%s' -cf '%s' t", format, options, root, tarpath))
        fail_msg("GNU tar --format=%s failed", format);
    size_t len;
    unsigned char *arc = read_file(tarpath, &len);
    bool exact_mtime = strcmp(format, "pax") == 0 || strcmp(format, "posix") == 0;
    bool ustar = strcmp(format, "ustar") == 0;
    const size_t chunks[] = {len, 1000, 1};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct got g = {0};
        struct err e;
        if (read_stream(arc, len, chunks[c], &g, &e))
            fail_msg("--format=%s: %s", format, e.msg);
        bool seen[32] = {0};
        assert_true(n <= 32);
        for (size_t i = 0; i < g.n; i++) {
            const struct got_entry *x = &g.v[i];
            char *fp = join(root, x->path, x->path_len);
            size_t fl = strlen(fp);
            if (x->type == TAR_DIR) {
                assert_int_equal(fp[fl - 1], '/');
                fp[fl - 1] = '\0';
            }
            for (size_t k = 0; k < n; k++) {
                if (strcmp(nodes[k].path, x->path) == 0 ||
                    (x->type == TAR_DIR && strlen(nodes[k].path) == x->path_len - 1 &&
                     memcmp(nodes[k].path, x->path, x->path_len - 1) == 0)) {
                    assert_false(seen[k]);
                    seen[k] = true;
                }
            }
            struct stat st;
            if (lstat(fp, &st) != 0)
                fail_msg("--format=%s: '%s' is not on disk", format, x->path);
            int64_t want_mtime = exact_mtime ? mtime_of(&st) : floor_seconds_ns(mtime_of(&st));
            if (x->mtime_ns != want_mtime)
                fail_msg("--format=%s: '%s': mtime %lld, want %lld", format, x->path,
                         (long long)x->mtime_ns, (long long)want_mtime);
            if (x->type != TAR_SYMLINK)
                assert_int_equal(x->mode, st.st_mode & 07777);
            switch (x->type) {
            case TAR_FILE: {
                assert_true(S_ISREG(st.st_mode));
                size_t dl;
                unsigned char *data = read_file(fp, &dl);
                assert_int_equal(x->size, dl);
                assert_int_equal(x->data_len, dl);
                if (dl)
                    assert_memory_equal(x->data, data, dl);
                /* the reported offset is where the data is in the stream */
                if (dl)
                    assert_memory_equal(arc + x->data_offset, data, dl);
                free(data);
                break;
            }
            case TAR_DIR:
                assert_true(S_ISDIR(st.st_mode));
                break;
            case TAR_SYMLINK: {
                assert_true(S_ISLNK(st.st_mode));
                char buf[1024];
                ssize_t k = readlink(fp, buf, sizeof(buf));
                assert_true(k > 0);
                assert_int_equal(x->target_len, (size_t)k);
                assert_memory_equal(x->target, buf, (size_t)k);
                break;
            }
            case TAR_OTHER:
                if (x->typeflag == '1') {
                    /* a hard link: to the other name of the same inode */
                    char *tp = join(root, x->target, x->target_len);
                    struct stat ts;
                    assert_int_equal(lstat(tp, &ts), 0);
                    assert_int_equal(ts.st_ino, st.st_ino);
                    assert_true(strcmp(tp, fp) != 0);
                    free(tp);
                } else {
                    assert_int_equal(x->typeflag, '6');
                    assert_true(S_ISFIFO(st.st_mode));
                }
                break;
            }
            free(fp);
        }
        for (size_t k = 0; k < n; k++) {
            if (!seen[k] && !(ustar && nodes[k].not_ustar))
                fail_msg("--format=%s: '%.60s' was not read", format, nodes[k].path);
        }
        got_free(&g);
    }
    free(arc);
}

static void test_read_gnu_tar_output(void **state)
{
    (void)state;
    /* 2 + 8 * 121 + 8: about 1000 bytes, components of 120 */
    char deep[1200] = "t";
    for (int i = 0; i < 8; i++) {
        size_t l = strlen(deep);
        deep[l] = '/';
        memset(deep + l + 1, 'a' + i, 120);
        deep[l + 121] = '\0';
    }
    strcat(deep, "/end.txt");
    /* ustar can split it: prefix 153 bytes, name 90 */
    char split[300] = "t/";
    memset(split + 2, 'u', 90);
    split[92] = '/';
    memset(split + 93, 'v', 60);
    split[153] = '/';
    memset(split + 154, 'w', 90);
    split[244] = '\0';
    char *t200 = long_path(200, 50, 'x');
    const struct node nodes[] = {
        {"t", 'd', 0, NULL, 1600000000000000000LL, 0755, false},
        {"t/plain.txt", 'f', 1234, NULL, 1700000000123456789LL, 0640, false},
        {"t/empty", 'f', 0, NULL, 1700000000000000000LL, 0600, false},
        {"t/exact", 'f', 1024, NULL, 1000000001LL, 0755, false},
        {"t/old", 'f', 10, NULL, -1500000000LL, 0644, true},
        {"t/Z\xc3\xbcrich \xe2\x9c\x93.txt", 'f', 20, NULL, 1700000000500000000LL, 0644, false},
        {"t/\xe6\x97\xa5\xe6\x9c\xac", 'd', 0, NULL, 1500000000000000000LL, 0700, false},
        {"t/\xe6\x97\xa5\xe6\x9c\xac/bad\xff.bin", 'f', 3, NULL, 1700000000000000000LL, 0644,
         false},
        {split, 'f', 700, NULL, 1700000000000000000LL, 0644, false},
        {deep, 'f', 5000, NULL, 1700000000000000000LL, 0644, true},
        {"t/ln", 'l', 0, "plain.txt", 1700000000000000000LL, 0777, false},
        {"t/ln-long", 'l', 0, t200, 1700000000000000000LL, 0777, true},
        {"t/hard", 'h', 0, "t/plain.txt", 0, 0, false},
        {"t/fifo", 'p', 0, NULL, 1700000000000000000LL, 0644, false},
    };
    size_t n = sizeof(nodes) / sizeof(nodes[0]);
    const struct {
        const char *format, *options;
    } variants[] = {
        {"pax", ""},   {"posix", "--pax-option=comment=global"}, /* a 'g' header first */
        {"gnu", ""},   {"oldgnu", ""},
        {"ustar", ""},
    };
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        char root[PATH_MAX];
        snprintf(root, sizeof(root), "%s/src-%s", tmpdir, variants[v].format);
        assert_int_equal(mkdir(root, 0755), 0);
        make_tree(root, nodes, n, variants[v].format);
        check_gnu_archive(root, nodes, n, variants[v].format, variants[v].options);
    }
    free(t200);
}

/* Sparse files: reported as TAR_OTHER 'S' (their data is not the file's
 * bytes), and the stream stays in step after them. */
static void test_gnu_sparse(void **state)
{
    (void)state;
    /* hand-made old GNU sparse header with two extension blocks */
    struct mem m = {0};
    unsigned char h[512];
    make_header(h, "sparse", 'S', 1024, 0);
    memcpy(h + 257, "ustar  ", 8);
    h[482] = 1;
    fix_checksum(h);
    mem_sink(&m, h, 512, NULL);
    unsigned char ext[512];
    memset(ext, 0x31, sizeof(ext)); /* sparse map digits, whatever */
    ext[504] = 1;
    mem_sink(&m, ext, 512, NULL);
    ext[504] = 0;
    mem_sink(&m, ext, 512, NULL);
    unsigned char data[1024];
    memset(data, 'S', sizeof(data));
    mem_sink(&m, data, sizeof(data), NULL);
    add_member(&m, "after", '0', "after\n", 6, 0);
    add_end(&m);
    struct got g = {0};
    struct err e;
    if (read_mem(&m, &g, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.v[0].type, TAR_OTHER);
    assert_int_equal(g.v[0].typeflag, 'S');
    assert_int_equal(g.v[0].size, 1024);
    assert_true(g.v[0].ended);
    assert_string_equal(g.v[1].path, "after");
    assert_memory_equal(g.v[1].data, "after\n", 6);
    got_free(&g);
    mem_free(&m);

    /* GNU tar -S, both formats, when this filesystem keeps holes */
    char root[PATH_MAX], fp[PATH_MAX + 32];
    snprintf(root, sizeof(root), "%s/sparse-src", tmpdir);
    assert_int_equal(mkdir(root, 0755), 0);
    snprintf(fp, sizeof(fp), "%s/t", root);
    assert_int_equal(mkdir(fp, 0755), 0);
    snprintf(fp, sizeof(fp), "%s/t/sparse", root);
    int fd = open(fp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(pwrite(fd, "0123456789", 10, (off_t)i << 20), 10);
    assert_int_equal(ftruncate(fd, 11 << 20), 0);
    close(fd);
    struct stat st;
    assert_int_equal(stat(fp, &st), 0);
    if ((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size) {
        print_message("no holes on this filesystem: GNU tar -S not checked\n");
        return;
    }
    snprintf(fp, sizeof(fp), "%s/t/zafter", root);
    write_file(fp, "after\n", 6);
    const char *formats[] = {"gnu", "pax"};
    for (size_t f = 0; f < 2; f++) {
        char tarpath[PATH_MAX];
        snprintf(tarpath, sizeof(tarpath), "%s/sparse-%s.tar", tmpdir, formats[f]);
        assert_int_equal(run("tar --format=%s -S -C '%s' -cf '%s' t", formats[f], root, tarpath),
                         0);
        size_t len;
        unsigned char *arc = read_file(tarpath, &len);
        if (read_stream(arc, len, 777, &g, &e))
            fail_msg("--format=%s: %s", formats[f], e.msg);
        assert_int_equal(g.n, 3); /* t/, then the two in readdir order */
        size_t sp = strcmp(g.v[1].path, "t/sparse") == 0 ? 1 : 2;
        assert_string_equal(g.v[sp].path, "t/sparse");
        assert_int_equal(g.v[sp].type, TAR_OTHER);
        assert_int_equal(g.v[sp].typeflag, 'S');
        assert_string_equal(g.v[3 - sp].path, "t/zafter");
        assert_memory_equal(g.v[3 - sp].data, "after\n", 6);
        got_free(&g);
        free(arc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_size_8gib),
        cmocka_unit_test(test_pax_global_and_overrides),
        cmocka_unit_test(test_gnu_long_names_and_base256),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_bad_checksum),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed_pax),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_writer_limits),
        cmocka_unit_test(test_gnu_tar_extracts_ours),
        cmocka_unit_test(test_read_gnu_tar_output),
        cmocka_unit_test(test_gnu_sparse),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
