/*
 * test_compress.c - io/compress against the zstd and gzip commands: what we
 * compress they test and decompress to the same bytes; what they compress
 * (multi-threaded zstd, concatenated frames, multi-member gzip) we
 * decompress, pushed and pulled; truncated or flipped input is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "io/compress.h"
#include "io/filter.h"

static char dir[] = "/tmp/arca-compress-XXXXXX";

/* Reproducible data: random runs and text runs. */
static unsigned char *make_data(size_t n)
{
    unsigned char *b = malloc(n ? n : 1);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (i / 65536) % 2 ? (unsigned char)('a' + (i * 7 + i / 13) % 26) : (unsigned char)x;
    }
    return b;
}

static int to_buf(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)e;
    return buf_append(ctx, data, len) ? ERR_NOMEM : 0;
}

/* Push data through a new (de)compressor in pieces of `step`. */
static int push(struct filter *codec, const unsigned char *d, size_t n, size_t step,
                struct buf *out, struct err *e)
{
    struct filter *parts[] = {codec, filter_sink_new(to_buf, out)};
    struct filter *chain = filter_chain(parts, 2);
    assert_non_null(chain);
    int r = 0;
    for (size_t off = 0; !r && off < n; off += step)
        r = filter_write(chain, d + off, n - off < step ? n - off : step, e);
    if (!r)
        r = filter_finish(chain, e);
    filter_chain_free(chain);
    return r;
}

static void write_file(const char *name, const void *d, size_t n)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_file(const char *name, size_t *n)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void sh(const char *script)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cd %s && %s", dir, script);
    assert_int_equal(system(cmd), 0);
}

struct pull_src {
    const unsigned char *d;
    size_t n, pos;
};

static int pull_fn(void *ctx, void *buf, size_t cap, size_t *got, struct err *e)
{
    (void)e;
    struct pull_src *s = ctx;
    size_t k = s->n - s->pos < cap ? s->n - s->pos : cap;
    if (k > 333)
        k = 333;
    memcpy(buf, s->d + s->pos, k);
    s->pos += k;
    *got = k;
    return 0;
}

static int pull(enum compress_kind k, const unsigned char *d, size_t n, struct buf *out,
                struct err *e)
{
    struct pull_src s = {d, n, 0};
    struct decompress_reader *r = decompress_reader_new(k, pull_fn, &s);
    assert_non_null(r);
    char buf[1000];
    int rc;
    for (;;) {
        size_t got = 0;
        if ((rc = decompress_read(r, buf, sizeof(buf), &got, e)) != 0 || got == 0)
            break;
        buf_append(out, buf, got);
    }
    decompress_reader_free(r);
    return rc;
}

static void test_ours_read_by_tools(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 1 << 20, 5 * (1 << 20) + 3};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *d = make_data(sizes[i]);
        write_file("plain", d, sizes[i]);
        for (int threads = 0; threads <= 2; threads += 2) {
            struct buf z, g;
            struct err e;
            buf_init(&z, 0);
            buf_init(&g, 0);
            assert_int_equal(
                push(filter_compress_new(COMPRESS_ZSTD, 0, threads), d, sizes[i], 7777, &z, &e), 0);
            assert_int_equal(
                push(filter_compress_new(COMPRESS_GZIP, 0, 0), d, sizes[i], 7777, &g, &e), 0);
            write_file("ours.zst", z.data, z.len);
            write_file("ours.gz", g.data, g.len);
            sh("zstd -q -t ours.zst && zstd -q -dc ours.zst | cmp -s - plain");
            sh("gzip -t ours.gz && gzip -dc ours.gz | cmp -s - plain");
            buf_release(&z);
            buf_release(&g);
        }
        free(d);
    }
}

static void test_tools_read_by_ours(void **state)
{
    (void)state;
    size_t n = 3 * (1 << 20) + 5;
    unsigned char *d = make_data(n);
    write_file("plain", d, n);
    sh("zstd -q -f -T2 -3 plain -o t.zst && cat t.zst t.zst > tt.zst");
    sh("gzip -c plain > t.gz && cat t.gz t.gz > tt.gz");
    const char *files[] = {"tt.zst", "tt.gz"};
    for (int i = 0; i < 2; i++) {
        enum compress_kind k = i == 0 ? COMPRESS_ZSTD : COMPRESS_GZIP;
        size_t cn;
        unsigned char *c = read_file(files[i], &cn);
        struct buf a, b;
        struct err e;
        buf_init(&a, 0);
        buf_init(&b, 0);
        assert_int_equal(push(filter_decompress_new(k), c, cn, 1000, &a, &e), 0);
        assert_int_equal(pull(k, c, cn, &b, &e), 0);
        assert_int_equal(a.len, 2 * n);
        assert_memory_equal(a.data, d, n);
        assert_memory_equal((char *)a.data + n, d, n);
        assert_int_equal(b.len, 2 * n);
        assert_memory_equal(b.data, a.data, a.len);
        /* truncated: refused at the end, both ways */
        buf_reset(&a);
        buf_reset(&b);
        assert_int_equal(push(filter_decompress_new(k), c, cn / 3, 1000, &a, &e), ERR_CORRUPT);
        assert_non_null(strstr(e.msg, compress_name(k)));
        assert_int_equal(pull(k, c, cn / 3, &b, &e), ERR_CORRUPT);
        /* a flipped byte in the middle */
        c[cn / 4] ^= 0x5a;
        buf_reset(&a);
        assert_int_equal(push(filter_decompress_new(k), c, cn / 2, 1000, &a, &e), ERR_CORRUPT);
        buf_release(&a);
        buf_release(&b);
        free(c);
    }
    free(d);
}

static void test_names(void **state)
{
    (void)state;
    enum compress_kind k;
    struct err e;
    assert_int_equal(compress_parse("zstd", &k, &e), 0);
    assert_int_equal(k, COMPRESS_ZSTD);
    assert_int_equal(compress_parse("gzip", &k, &e), 0);
    assert_int_equal(compress_parse("xz", &k, &e), ERR_USAGE);
    assert_string_equal(e.msg, "unknown compression 'xz'; use zstd or gzip");
    assert_string_equal(compress_suffix(COMPRESS_ZSTD), ".zst");
    assert_string_equal(compress_suffix(COMPRESS_GZIP), ".gz");
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ours_read_by_tools),
        cmocka_unit_test(test_tools_read_by_ours),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
