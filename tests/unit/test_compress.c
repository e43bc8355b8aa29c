/*
 * test_compress.c - io/compress against the zstd and gzip commands as
 * oracles: what we compress they test and decompress to the same bytes
 * (SHA-256); what they compress (multi-threaded zstd, concatenated and
 * skippable frames, multi-member and zero-padded gzip) we decompress,
 * pushed and pulled; truncated input is refused, and a flipped bit is
 * refused exactly when `zstd -t` / `gzip -t` refuse it. Also: output flows
 * as it is made in pieces of at most 128 KiB (a 64 MiB "bomb" too), zstd
 * workers are real threads, errors of the neighbours pass through.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "core/buf.h"
#include "core/error.h"
#include "io/compress.h"
#include "io/filter.h"

#define MIB ((size_t)1 << 20)
#define PIECE_MAX ((size_t)128 << 10)

static char dir[] = "/tmp/arca-compress-XXXXXX";

/* Reproducible data: 64 KiB runs of random bytes and of text. */
static unsigned char *make_data(size_t n, uint32_t seed)
{
    unsigned char *b = malloc(n ? n : 1);
    assert_non_null(b);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (i / 65536) % 2 ? (unsigned char)("the quick brown fox jumps over a lazy dog\n"
                                                     [(i * 7 + i / 13 + seed) % 42])
                               : (unsigned char)x;
    }
    return b;
}

/* Reproducible text: lines of words and numbers, nothing random in a way
 * that would hide the difference between compression levels. */
static unsigned char *make_text(size_t n)
{
    static const char *const words[] = {"alpha",  "beta",    "gamma",    "delta", "file",
                                        "backup", "archive", "zstd",     "gzip",  "the",
                                        "of",     "and",     "manifest", "run"};
    unsigned char *b = malloc(n + 64);
    assert_non_null(b);
    uint32_t x = 7;
    size_t len = 0;
    while (len < n) {
        x = x * 1103515245u + 12345u;
        uint32_t v = x >> 8;
        if (v % 9 == 0)
            len += (size_t)snprintf((char *)b + len, 16, "%u", v % 100000);
        else
            len += (size_t)snprintf((char *)b + len, 16, "%s", words[v % 14]);
        b[len++] = v % 11 == 0 ? '\n' : ' ';
    }
    return b;
}

static void sha_hex(const void *d, size_t n, char out[65])
{
    hash_sha256_hex(d, n, out);
}

/* ---- files and commands ---------------------------------------------------- */

static void path_of(const char *name, char *p, size_t cap)
{
    snprintf(p, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *d, size_t n)
{
    char p[256];
    path_of(name, p, sizeof(p));
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_file(const char *name, size_t *n)
{
    char p[256];
    path_of(name, p, sizeof(p));
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* Exit status of a shell command run in dir (stderr silenced). */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char script[1024], cmd[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(script, sizeof(script), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "cd %s && { %s ; } 2>/dev/null", dir, script);
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* SHA-256 (hex) of what a command decompresses to stdout; the command must
 * succeed. */
static void tool_sha(const char *decompress_cmd, char out[65])
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "cd %s && set -o pipefail && %s | sha256sum", dir, decompress_cmd);
    char bash[700];
    snprintf(bash, sizeof(bash), "bash -c '%s'", cmd);
    FILE *p = popen(bash, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 65, p));
    assert_int_equal(strlen(out), 64);
    char rest[16];
    while (fgets(rest, sizeof(rest), p))
        ;
    assert_int_equal(pclose(p), 0);
}

/* ---- push and pull ---------------------------------------------------------- */

struct sink {
    struct buf *out;   /* NULL: only count */
    size_t total, max; /* bytes and largest piece */
    size_t at_finish;  /* total when finish began */
    int fail_after;    /* > 0: fail with ERR_IO at that call */
    int calls;
    int max_tasks; /* threads of the process seen while receiving */
};

static int tasks_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static int sink_fn(void *ctx, const void *data, size_t len, struct err *e)
{
    struct sink *s = ctx;
    if (++s->calls == s->fail_after)
        return err_set(e, ERR_IO, "cannot write 'sink': disk full");
    s->total += len;
    if (len > s->max)
        s->max = len;
    if (s->calls % 16 == 1) {
        int t = tasks_now();
        s->max_tasks = t > s->max_tasks ? t : s->max_tasks;
    }
    return s->out ? buf_append(s->out, data, len) : 0;
}

/* Push n bytes through codec into s, in pieces whose sizes cycle through
 * steps[] (odd sizes: codecs must not assume aligned writes). */
static const size_t odd_steps[] = {1, 7777, 65537, 3, MIB + 1, 333};

static int push_steps(struct filter *codec, const unsigned char *d, size_t n, const size_t *steps,
                      size_t nsteps, struct sink *s, struct err *e)
{
    struct filter *parts[] = {codec, filter_sink_new(sink_fn, s)};
    struct filter *chain = filter_chain(parts, 2);
    assert_non_null(chain);
    int r = 0;
    size_t off = 0;
    for (size_t i = 0; !r && off < n; i++) {
        size_t step = steps[i % nsteps];
        size_t k = n - off < step ? n - off : step;
        r = filter_write(chain, d + off, k, e);
        off += k;
    }
    s->at_finish = s->total;
    if (!r)
        r = filter_finish(chain, e);
    filter_chain_free(chain);
    return r;
}

static int push(struct filter *codec, const unsigned char *d, size_t n, struct buf *out,
                struct err *e)
{
    struct sink s = {.out = out};
    return push_steps(codec, d, n, odd_steps, sizeof(odd_steps) / sizeof(odd_steps[0]), &s, e);
}

struct pull_src {
    const unsigned char *d;
    size_t n, pos;
    size_t piece; /* most bytes per call */
    int fail_at;  /* > 0: fail with ERR_NET at that call */
    int calls;
};

static int pull_fn(void *ctx, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct pull_src *s = ctx;
    if (++s->calls == s->fail_at)
        return err_set(e, ERR_NET, "reading 'x.zst': connection reset by peer");
    size_t k = s->n - s->pos < cap ? s->n - s->pos : cap;
    if (k > s->piece)
        k = s->piece;
    memcpy(buf, s->d + s->pos, k);
    s->pos += k;
    *got = k;
    return 0;
}

/* Pull everything through a reader, asking for `cap` bytes at a time, with
 * the source giving at most `piece` bytes per call. */
static int pull_cap(enum compress_kind k, const unsigned char *d, size_t n, size_t piece,
                    size_t cap, struct buf *out, struct err *e)
{
    struct pull_src s = {d, n, 0, piece, 0, 0};
    struct decompress_reader *r = decompress_reader_new(k, pull_fn, &s);
    assert_non_null(r);
    char *buf = malloc(cap);
    assert_non_null(buf);
    int rc;
    for (;;) {
        size_t got = 0;
        if ((rc = decompress_read(r, buf, cap, &got, e)) != 0 || got == 0)
            break;
        assert_true(got <= cap);
        assert_int_equal(buf_append(out, buf, got), 0);
    }
    if (rc == 0) { /* the end stays the end */
        size_t got = 1;
        assert_int_equal(decompress_read(r, buf, cap, &got, e), 0);
        assert_int_equal(got, 0);
    }
    free(buf);
    decompress_reader_free(r);
    return rc;
}

static int pull(enum compress_kind k, const unsigned char *d, size_t n, struct buf *out,
                struct err *e)
{
    return pull_cap(k, d, n, 333, 1000, out, e);
}

static void assert_one_line(const struct err *e, const char *prefix)
{
    if (strncmp(e->msg, prefix, strlen(prefix)) != 0)
        fail_msg("message '%s' does not start with '%s'", e->msg, prefix);
    assert_null(strchr(e->msg, '\n'));
}

/* "corrupt zstd data: ..." or, when a damaged length field makes the data
 * look cut short, "truncated zstd data: ..." */
static void assert_damaged(enum compress_kind k, const struct err *e)
{
    char c[32], t[32];
    snprintf(c, sizeof(c), "corrupt %s data: ", compress_name(k));
    snprintf(t, sizeof(t), "truncated %s data: ", compress_name(k));
    assert_one_line(e, strncmp(e->msg, "truncated", 9) ? c : t);
}

/* Decompress c[0..cn) with our push filter and our pull reader (two
 * shapes); both must give the bytes whose SHA-256 is want. */
static void assert_ours_decompress(enum compress_kind k, const unsigned char *c, size_t cn,
                                   const char *want)
{
    struct buf a, b;
    struct err e;
    char got[65];
    buf_init(&a, 0);
    buf_init(&b, 0);
    assert_int_equal(push(filter_decompress_new(k), c, cn, &a, &e), 0);
    sha_hex(a.data, a.len, got);
    assert_string_equal(got, want);
    assert_int_equal(pull(k, c, cn, &b, &e), 0);
    sha_hex(b.data, b.len, got);
    assert_string_equal(got, want);
    buf_reset(&b);
    assert_int_equal(pull_cap(k, c, cn, 1 << 20, 1 << 17, &b, &e), 0);
    sha_hex(b.data, b.len, got);
    assert_string_equal(got, want);
    buf_release(&a);
    buf_release(&b);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_ours_read_by_tools(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, MIB, 20 * MIB + 3};
    struct {
        enum compress_kind k;
        int level, threads;
        size_t most; /* only for sizes up to this */
    } cfg[] = {
        {COMPRESS_ZSTD, 0, 0, SIZE_MAX},
        {COMPRESS_ZSTD, 0, 2, SIZE_MAX},
        {COMPRESS_GZIP, 0, 0, SIZE_MAX},
        {COMPRESS_ZSTD, 1, 0, MIB},
        {COMPRESS_ZSTD, 19, 0, MIB},
        {COMPRESS_ZSTD, -5, 0, MIB},
        {COMPRESS_ZSTD, 3, COMPRESS_THREADS_AUTO, MIB},
        {COMPRESS_GZIP, 1, 0, MIB},
        {COMPRESS_GZIP, 9, 0, MIB},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *d = make_data(sizes[i], 12345);
        char want[65], got[65];
        sha_hex(d, sizes[i], want);
        for (size_t j = 0; j < sizeof(cfg) / sizeof(cfg[0]); j++) {
            if (sizes[i] > cfg[j].most)
                continue;
            bool z = cfg[j].k == COMPRESS_ZSTD;
            struct buf c;
            struct err e;
            buf_init(&c, 0);
            assert_int_equal(push(filter_compress_new(cfg[j].k, cfg[j].level, cfg[j].threads), d,
                                  sizes[i], &c, &e),
                             0);
            assert_true(c.len > 0);
            if (z) /* frame header descriptor: Content_Checksum_flag */
                assert_true((unsigned char)c.data[4] & 0x04);
            write_file(z ? "ours.zst" : "ours.gz", c.data, c.len);
            assert_int_equal(run(z ? "zstd -q -t ours.zst" : "gzip -t ours.gz"), 0);
            tool_sha(z ? "zstd -q -dc ours.zst" : "gzip -dc ours.gz", got);
            assert_string_equal(got, want);
            if (sizes[i] > MIB && z)
                assert_int_equal(run("zstd -lv ours.zst | grep -q 'Check: XXH64'"), 0);
            assert_ours_decompress(cfg[j].k, (unsigned char *)c.data, c.len, want);
            buf_release(&c);
        }
        free(d);
    }
}

/* The level is the one asked for: our output is within 1% of the size the
 * tool makes at that level (stdin, so neither knows the size), and levels
 * differ by more than that. */
static void test_levels(void **state)
{
    (void)state;
    size_t n = MIB;
    unsigned char *d = make_text(n);
    write_file("txt", d, n);
    const struct {
        enum compress_kind k;
        int level;
        const char *tool;
    } cfg[] = {
        {COMPRESS_ZSTD, 1, "zstd -q -1 -c"},   {COMPRESS_ZSTD, 0, "zstd -q -3 -c"},
        {COMPRESS_ZSTD, 19, "zstd -q -19 -c"}, {COMPRESS_GZIP, 1, "gzip -n -1 -c"},
        {COMPRESS_GZIP, 0, "gzip -n -6 -c"},   {COMPRESS_GZIP, 9, "gzip -n -9 -c"},
    };
    size_t ours[6];
    for (size_t j = 0; j < 6; j++) {
        struct buf c;
        struct err e;
        buf_init(&c, 0);
        assert_int_equal(push(filter_compress_new(cfg[j].k, cfg[j].level, 0), d, n, &c, &e), 0);
        assert_int_equal(run("cat txt | %s > lvl", cfg[j].tool), 0);
        size_t tn;
        free(read_file("lvl", &tn));
        ours[j] = c.len;
        print_message("%s level %d: ours %zu, '%s' %zu\n", compress_name(cfg[j].k), cfg[j].level,
                      c.len, cfg[j].tool, tn);
        assert_true(c.len * 100 <= tn * 101 && tn * 100 <= c.len * 101);
        buf_release(&c);
    }
    assert_true(ours[0] * 100 > ours[1] * 102 && ours[1] * 100 > ours[2] * 102);
    assert_true(ours[3] * 100 > ours[4] * 102 && ours[4] * 100 > ours[5] * 102);
    free(d);
}

static void test_tools_read_by_ours(void **state)
{
    (void)state;
    size_t na = 3 * MIB + 5, nb = MIB + 1;
    unsigned char *a = make_data(na, 777), *b = make_data(nb, 4242);
    write_file("a", a, na);
    write_file("b", b, nb);
    write_file("empty", "", 0);
    /* a skippable frame: magic 0x184D2A5?, 4-byte length, that many bytes */
    static const unsigned char skip[] = {0x53, 0x2a, 0x4d, 0x18, 5,   0,  0,
                                         0,    'h',  'e',  'l',  'l', 'o'};
    write_file("skip", skip, sizeof(skip));
    assert_int_equal(run("zstd -q -f -3 -T0 a -o a0.zst && zstd -q -f -T2 -1 b -o b2.zst && "
                         "zstd -q -f empty -o e.zst && zstd -q -f --no-check -19 b -o bn.zst && "
                         "cat a | zstd -q -T2 --long=27 -c > al.zst && "
                         "cat a0.zst e.zst skip b2.zst bn.zst al.zst > cat.zst"),
                     0);
    assert_int_equal(run("gzip -c a > a.gz && gzip -1 -c b > b.gz && gzip -c empty > e.gz && "
                         "cat a.gz e.gz b.gz > cat.gz && cp cat.gz pad.gz && "
                         "head -c 1000 /dev/zero >> pad.gz"),
                     0);
    /* what the concatenations hold */
    size_t nall = na + nb + nb + na;
    unsigned char *all = malloc(nall);
    assert_non_null(all);
    memcpy(all, a, na);
    memcpy(all + na, b, nb);
    memcpy(all + na + nb, b, nb);
    memcpy(all + na + 2 * nb, a, na);
    char want_zst[65], want_gz[65], want_a[65], tool[65];
    sha_hex(all, nall, want_zst);
    sha_hex(all, na + nb, want_gz);
    sha_hex(a, na, want_a);
    const struct {
        const char *file, *tool;
        enum compress_kind k;
        const char *want;
    } cases[] = {
        {"a0.zst", "zstd -q -dc a0.zst", COMPRESS_ZSTD, want_a},
        {"cat.zst", "zstd -q -dc cat.zst", COMPRESS_ZSTD, want_zst},
        {"a.gz", "gzip -dc a.gz", COMPRESS_GZIP, want_a},
        {"cat.gz", "gzip -dc cat.gz", COMPRESS_GZIP, want_gz},
        {"pad.gz", "gzip -dc pad.gz", COMPRESS_GZIP, want_gz},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tool_sha(cases[i].tool, tool);
        assert_string_equal(tool, cases[i].want); /* the oracle agrees with our expectation */
        size_t cn;
        unsigned char *c = read_file(cases[i].file, &cn);
        assert_ours_decompress(cases[i].k, c, cn, cases[i].want);
        free(c);
    }
    /* the empty frame and the empty member alone: valid, no bytes */
    char want_empty[65];
    sha_hex("", 0, want_empty);
    for (int i = 0; i < 2; i++) {
        size_t cn;
        unsigned char *c = read_file(i ? "e.gz" : "e.zst", &cn);
        assert_ours_decompress(i ? COMPRESS_GZIP : COMPRESS_ZSTD, c, cn, want_empty);
        free(c);
    }
    free(all);
    free(a);
    free(b);
}

/* Truncated, extended and damaged streams: refused, like the tools do. */
static void check_refused(enum compress_kind k, const unsigned char *c, size_t cn,
                          const char *prefix)
{
    struct buf a, b;
    struct err e;
    buf_init(&a, 0);
    buf_init(&b, 0);
    assert_int_equal(push(filter_decompress_new(k), c, cn, &a, &e), ERR_CORRUPT);
    assert_one_line(&e, prefix);
    assert_int_equal(pull(k, c, cn, &b, &e), ERR_CORRUPT);
    assert_one_line(&e, prefix);
    buf_release(&a);
    buf_release(&b);
}

static void test_truncated_and_trailing(void **state)
{
    (void)state;
    size_t n = 2 * MIB + 11;
    unsigned char *d = make_data(n, 99);
    write_file("t", d, n);
    assert_int_equal(run("zstd -q -f -T2 t -o t.zst && gzip -c t > t.gz"), 0);
    for (int i = 0; i < 2; i++) {
        enum compress_kind k = i ? COMPRESS_GZIP : COMPRESS_ZSTD;
        const char *name = i ? "t.gz" : "t.zst";
        size_t cn;
        unsigned char *c = read_file(name, &cn);
        const size_t cuts[] = {0, 1, 4, 5, 10, 18, cn / 3, cn / 2, cn - 8, cn - 4, cn - 1};
        for (size_t j = 0; j < sizeof(cuts) / sizeof(cuts[0]); j++) {
            write_file("cut", c, cuts[j]);
            assert_int_not_equal(run(i ? "gzip -t cut" : "zstd -q -t cut"), 0); /* oracle */
            check_refused(k, c, cuts[j], i ? "truncated gzip data: " : "truncated zstd data: ");
        }
        struct err e;
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(pull(k, c, 0, &b, &e), ERR_CORRUPT);
        assert_string_equal(e.msg, i ? "truncated gzip data: the stream is empty"
                                     : "truncated zstd data: the stream is empty");
        assert_int_equal(pull(k, c, cn / 2, &b, &e), ERR_CORRUPT);
        assert_string_equal(e.msg, i ? "truncated gzip data: the stream ends inside a member"
                                     : "truncated zstd data: the stream ends inside a frame");
        buf_release(&b);
        /* bytes after the end: refused (gzip -t only warns, exit 2) */
        unsigned char *x = malloc(cn + 24);
        memcpy(x, c, cn);
        memcpy(x + cn, "\0\0\0not compressed data\n", 24);
        write_file("trail", x, cn + 24);
        assert_int_not_equal(run(i ? "gzip -t trail" : "zstd -q -t trail"), 0);
        check_refused(k, x, cn + 24, i ? "corrupt gzip data: " : "corrupt zstd data: ");
        memcpy(x + cn, "garbage", 7);
        check_refused(k, x, cn + 7, i ? "corrupt gzip data: " : "corrupt zstd data: ");
        /* not compressed at all */
        check_refused(k, d, 4096, i ? "corrupt gzip data: " : "corrupt zstd data: ");
        free(x);
        free(c);
    }
    free(d);
}

/* A bit flipped anywhere: we refuse it exactly when the tool's -t does, and
 * what both accept decompresses to what the tool makes of it. */
static void test_bit_flips(void **state)
{
    (void)state;
    size_t n = MIB / 2 + 17;
    unsigned char *d = make_data(n, 31337);
    write_file("f", d, n);
    assert_int_equal(run("zstd -q -f f -o f.zst && gzip -c f > f.gz"), 0);
    for (int i = 0; i < 2; i++) {
        enum compress_kind k = i ? COMPRESS_GZIP : COMPRESS_ZSTD;
        size_t cn;
        unsigned char *c = read_file(i ? "f.gz" : "f.zst", &cn);
        int tried = 0, refused = 0;
        for (size_t pos = 0; pos < cn; pos += pos < 64 ? 3 : cn / 41 + 1) {
            unsigned char bit = (unsigned char)(1u << (pos % 8));
            c[pos] ^= bit;
            write_file("flip", c, cn);
            bool tool_ok = run(i ? "gzip -t flip" : "zstd -q -t flip") == 0;
            struct buf a, b;
            struct err e;
            buf_init(&a, 0);
            buf_init(&b, 0);
            int rp = push(filter_decompress_new(k), c, cn, &a, &e);
            if (rp)
                assert_damaged(k, &e);
            int rl = pull(k, c, cn, &b, &e);
            if (rl)
                assert_damaged(k, &e);
            if ((rp == 0) != tool_ok || (rl == 0) != tool_ok)
                fail_msg("%s byte %zu bit %u: tool %s, push %d, pull %d", compress_name(k), pos,
                         bit, tool_ok ? "accepts" : "refuses", rp, rl);
            if (tool_ok) {
                char want[65], got[65];
                tool_sha(i ? "gzip -dc flip" : "zstd -q -dc flip", want);
                sha_hex(a.data, a.len, got);
                assert_string_equal(got, want);
                sha_hex(b.data, b.len, got);
                assert_string_equal(got, want);
            } else {
                assert_int_equal(rp, ERR_CORRUPT);
                assert_int_equal(rl, ERR_CORRUPT);
                refused++;
            }
            tried++;
            buf_release(&a);
            buf_release(&b);
            c[pos] ^= bit;
        }
        /* only header fields without a check (gzip's mtime, flags, OS;
         * zstd's window size) may pass */
        assert_true(tried >= 50);
        assert_true(refused >= tried - 8);
        free(c);
    }
    free(d);
}

/* zstd frames declaring a window over 128 MiB: refused (bounded memory),
 * as zstd -d does without --memory. */
static void test_window_too_large(void **state)
{
    (void)state;
    unsigned char *d = make_data(MIB, 5);
    write_file("w", d, MIB);
    assert_int_equal(run("cat w | zstd -q --long=30 -c > w.zst"), 0);
    assert_int_not_equal(run("zstd -q -t w.zst"), 0);
    size_t cn;
    unsigned char *c = read_file("w.zst", &cn);
    check_refused(COMPRESS_ZSTD, c, cn, "zstd data needs a window over 128 MiB");
    free(c);
    free(d);
}

/* Output reaches the next filter while data is still being written, in
 * pieces of at most 128 KiB; zstd workers are threads of their own. */
static void test_streaming(void **state)
{
    (void)state;
    size_t n = 20 * MIB;
    unsigned char *d = make_data(n, 1);
    const size_t step[] = {65536 + 7};
    int base_tasks = tasks_now();
    struct {
        enum compress_kind k;
        int threads;
    } cfg[] = {{COMPRESS_ZSTD, 0},
               {COMPRESS_ZSTD, 2},
               {COMPRESS_GZIP, 0},
               {COMPRESS_ZSTD, COMPRESS_THREADS_AUTO}};
    for (size_t j = 0; j < 4; j++) {
        struct sink s = {0};
        struct err e;
        assert_int_equal(
            push_steps(filter_compress_new(cfg[j].k, 0, cfg[j].threads), d, n, step, 1, &s, &e), 0);
        assert_true(s.max <= PIECE_MAX);
        /* most of it before finish: nothing is held back */
        assert_true(s.at_finish > 0);
        if (cfg[j].threads == 0)
            assert_true(s.at_finish >= s.total * 3 / 4);
        if (cfg[j].threads == 2)
            assert_true(s.max_tasks >= base_tasks + 2);
        else if (cfg[j].threads == COMPRESS_THREADS_AUTO)
            assert_true(s.max_tasks >= base_tasks + 1); /* one per CPU: at least one */
        else
            assert_int_equal(s.max_tasks, base_tasks);
    }
    free(d);

    /* 64 MiB of zeros in a few KiB: decompressed in bounded pieces, as it
     * goes, pushed and pulled */
    assert_int_equal(run("head -c 64M /dev/zero | zstd -q -c > z.zst && "
                         "head -c 64M /dev/zero | gzip -9 -c > z.gz"),
                     0);
    for (int i = 0; i < 2; i++) {
        enum compress_kind k = i ? COMPRESS_GZIP : COMPRESS_ZSTD;
        size_t cn;
        unsigned char *c = read_file(i ? "z.gz" : "z.zst", &cn);
        assert_true(cn < MIB / 4);
        struct sink s = {0};
        struct err e;
        assert_int_equal(push_steps(filter_decompress_new(k), c, cn, odd_steps,
                                    sizeof(odd_steps) / sizeof(odd_steps[0]), &s, &e),
                         0);
        assert_int_equal(s.total, 64 * MIB);
        assert_true(s.max <= PIECE_MAX);
        assert_int_equal(s.at_finish, 64 * MIB); /* all of it while writing */
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(pull_cap(k, c, cn, 1 << 20, 1 << 20, &b, &e), 0);
        assert_int_equal(b.len, 64 * MIB);
        buf_release(&b);
        free(c);
    }
}

/* Bytes a decoder with unlimited room makes of the input so far: zlib's
 * inflate and zstd's streaming decoder used directly, draining every call. */
struct oracle {
    enum compress_kind k;
    z_stream z;
    ZSTD_DCtx *zd;
    unsigned char *scratch;
    size_t total;
};

static void oracle_feed(struct oracle *o, const unsigned char *in, size_t n)
{
    const size_t room = 4 * MIB;
    if (o->k == COMPRESS_GZIP) {
        o->z.next_in = (Bytef *)(uintptr_t)in;
        o->z.avail_in = (uInt)n;
        for (;;) {
            o->z.next_out = o->scratch;
            o->z.avail_out = (uInt)room;
            int zr = inflate(&o->z, Z_NO_FLUSH);
            assert_true(zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR);
            o->total += room - o->z.avail_out;
            if (zr == Z_STREAM_END) /* the next member */
                assert_int_equal(inflateReset(&o->z), Z_OK);
            else if (o->z.avail_out > 0)
                break;
        }
        return;
    }
    ZSTD_inBuffer ib = {in, n, 0};
    ZSTD_outBuffer ob;
    do {
        ob = (ZSTD_outBuffer){o->scratch, room, 0};
        assert_false(ZSTD_isError(ZSTD_decompressStream(o->zd, &ob, &ib)));
        o->total += ob.pos;
    } while (ob.pos == room || ib.pos < ib.size);
}

/* After every write, the decompressor has passed on all that its input
 * so far can give: nothing waits in its buffers for the next write. */
static void test_nothing_held_back(void **state)
{
    (void)state;
    unsigned char *t = make_text(MIB);
    write_file("text", t, MIB);
    free(t);
    assert_int_equal(run("zstd -q -f text -o txt.zst && gzip -c text > txt.gz && "
                         "head -c 24M /dev/zero > zeros && zstd -q -f zeros -o zeros.zst && "
                         "gzip -9 -c zeros > zeros.gz && cat zeros.zst txt.zst > mix.zst && "
                         "cat zeros.gz txt.gz > mix.gz"),
                     0);
    for (int i = 0; i < 2; i++) {
        struct oracle o = {.k = i ? COMPRESS_GZIP : COMPRESS_ZSTD};
        o.scratch = malloc(4 * MIB);
        assert_non_null(o.scratch);
        if (i)
            assert_int_equal(inflateInit2(&o.z, 15 + 16), Z_OK);
        else
            assert_non_null(o.zd = ZSTD_createDCtx());
        size_t cn;
        unsigned char *c = read_file(i ? "mix.gz" : "mix.zst", &cn);
        struct sink s = {0};
        struct filter *parts[] = {filter_decompress_new(o.k), filter_sink_new(sink_fn, &s)};
        struct filter *chain = filter_chain(parts, 2);
        assert_non_null(chain);
        struct err e;
        for (size_t off = 0, step = 1; off < cn; off += step, step = step % 61 + 1) {
            if (step > cn - off)
                step = cn - off;
            assert_int_equal(filter_write(chain, c + off, step, &e), 0);
            oracle_feed(&o, c + off, step);
            if (o.total != s.total)
                fail_msg("%s: after %zu bytes in, %zu out where %zu can be", compress_name(o.k),
                         off + step, s.total, o.total);
        }
        assert_int_equal(filter_finish(chain, &e), 0);
        assert_int_equal(s.total, 24 * MIB + MIB);
        filter_chain_free(chain);
        free(c);
        free(o.scratch);
        if (i)
            inflateEnd(&o.z);
        ZSTD_freeDCtx(o.zd);
    }
}

/* Errors of the next filter and of the read function come back unchanged,
 * and a reader that failed keeps failing. */
static void test_errors_pass_through(void **state)
{
    (void)state;
    size_t n = 4 * MIB;
    unsigned char *d = make_data(n, 2);
    struct buf c;
    struct err e;
    buf_init(&c, 0);
    assert_int_equal(push(filter_compress_new(COMPRESS_ZSTD, 0, 0), d, n, &c, &e), 0);
    const size_t step[] = {4096};
    for (int fail_at = 1; fail_at <= 3; fail_at += 2) {
        struct filter *codecs[] = {
            filter_compress_new(COMPRESS_ZSTD, 0, 0), filter_compress_new(COMPRESS_ZSTD, 0, 2),
            filter_compress_new(COMPRESS_GZIP, 0, 0), filter_decompress_new(COMPRESS_ZSTD)};
        for (int j = 0; j < 4; j++) {
            struct sink s = {.fail_after = fail_at};
            const unsigned char *in = j == 3 ? (unsigned char *)c.data : d;
            size_t in_n = j == 3 ? c.len : n;
            err_clear(&e);
            assert_int_equal(push_steps(codecs[j], in, in_n, step, 1, &s, &e), ERR_IO);
            assert_string_equal(e.msg, "cannot write 'sink': disk full");
        }
    }
    /* the read function fails on its 3rd call */
    struct pull_src src = {(unsigned char *)c.data, c.len, 0, 1000, 3, 0};
    struct decompress_reader *r = decompress_reader_new(COMPRESS_ZSTD, pull_fn, &src);
    assert_non_null(r);
    char buf[100];
    size_t got;
    int rc;
    while ((rc = decompress_read(r, buf, sizeof(buf), &got, &e)) == 0)
        assert_true(got > 0);
    assert_int_equal(rc, ERR_NET);
    err_clear(&e);
    assert_int_equal(decompress_read(r, buf, sizeof(buf), &got, &e), ERR_NET);
    assert_int_equal(got, 0);
    assert_string_equal(e.msg, "reading 'x.zst': connection reset by peer");
    decompress_reader_free(r);
    decompress_reader_free(NULL);
    buf_release(&c);
    free(d);
}

static void test_names_levels_none(void **state)
{
    (void)state;
    enum compress_kind k;
    struct err e;
    assert_int_equal(compress_parse("zstd", &k, &e), 0);
    assert_int_equal(k, COMPRESS_ZSTD);
    assert_int_equal(compress_parse("gzip", &k, &e), 0);
    assert_int_equal(k, COMPRESS_GZIP);
    assert_int_equal(compress_parse("none", &k, &e), 0);
    assert_int_equal(k, COMPRESS_NONE);
    assert_int_equal(compress_parse("xz", &k, &e), ERR_USAGE);
    assert_string_equal(e.msg, "unknown compression 'xz'; use zstd or gzip");
    assert_int_equal(compress_parse("ZSTD", &k, &e), ERR_USAGE);
    assert_string_equal(compress_name(COMPRESS_ZSTD), "zstd");
    assert_string_equal(compress_name(COMPRESS_GZIP), "gzip");
    assert_string_equal(compress_name(COMPRESS_NONE), "none");
    assert_string_equal(compress_suffix(COMPRESS_ZSTD), ".zst");
    assert_string_equal(compress_suffix(COMPRESS_GZIP), ".gz");
    assert_string_equal(compress_suffix(COMPRESS_NONE), "");

    assert_int_equal(compress_level_check(COMPRESS_ZSTD, 22, &e), 0);
    assert_int_equal(compress_level_check(COMPRESS_ZSTD, -7, &e), 0);
    assert_int_equal(compress_level_check(COMPRESS_ZSTD, 23, &e), ERR_USAGE);
    assert_string_equal(e.msg, "compression level 23 is out of range for zstd; use 1 to 22 (0: the "
                               "default 3)");
    assert_int_equal(compress_level_check(COMPRESS_GZIP, 9, &e), 0);
    assert_int_equal(compress_level_check(COMPRESS_GZIP, 10, &e), ERR_USAGE);
    assert_string_equal(e.msg, "compression level 10 is out of range for gzip; use 1 to 9 (0: the "
                               "default 6)");
    assert_null(filter_compress_new(COMPRESS_GZIP, 10, 0));
    assert_null(filter_compress_new(COMPRESS_ZSTD, 23, 0));

    /* none: the bytes as they are, both ways */
    unsigned char *d = make_data(MIB, 3);
    char want[65], got[65];
    sha_hex(d, MIB, want);
    struct buf a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    assert_int_equal(push(filter_compress_new(COMPRESS_NONE, 0, 0), d, MIB, &a, &e), 0);
    assert_int_equal(
        push(filter_decompress_new(COMPRESS_NONE), (unsigned char *)a.data, a.len, &b, &e), 0);
    sha_hex(b.data, b.len, got);
    assert_string_equal(got, want);
    buf_reset(&b);
    assert_int_equal(pull(COMPRESS_NONE, d, MIB, &b, &e), 0);
    sha_hex(b.data, b.len, got);
    assert_string_equal(got, want);
    buf_release(&a);
    buf_release(&b);
    free(d);
}

static int setup(void **state)
{
    (void)state;
    if (system("command -v zstd >/dev/null && command -v gzip >/dev/null") != 0) {
        fprintf(stderr, "test_compress needs the zstd and gzip commands\n");
        return -1;
    }
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
        cmocka_unit_test(test_ours_read_by_tools),  cmocka_unit_test(test_levels),
        cmocka_unit_test(test_tools_read_by_ours),  cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_bit_flips),           cmocka_unit_test(test_window_too_large),
        cmocka_unit_test(test_streaming),           cmocka_unit_test(test_nothing_held_back),
        cmocka_unit_test(test_errors_pass_through), cmocka_unit_test(test_names_levels_none),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
