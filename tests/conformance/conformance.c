/*
 * conformance.c - one suite every storage driver must pass, unchanged.
 *
 * arca-conformance opens ONE remote with remote_open(), exactly as the CLI
 * does, and checks through the generic storage_* layer what storage.h
 * promises: listing order, stat, ranged reads, atomic writes, abort, remove,
 * empty files, unicode names, a large file, a deep tree, invalid keys. The
 * same binary runs against local, S3, and later SFTP and SMB; only the
 * remote string and the config file change.
 *
 *     ARCA_CONFORMANCE_REMOTE    the remote as the CLI takes it: a local path,
 *                                s3://bucket/prefix, name:path (required)
 *     ARCA_CONFORMANCE_CONFIG    config file with the named remotes (unset: none)
 *     ARCA_CONFORMANCE_LARGE_MB  size of the large file in MiB (default 40)
 *     ARCA_CONFORMANCE_ONLY      run only these tests (names, ',' or ' ' between)
 *     ARCA_CONFORMANCE_XFAIL     tests that fail for this driver because of a
 *                                known bug: they still run, and the run fails
 *                                if one of them passes (drop it from the list)
 *
 * Design:
 *  - Every test works below its own prefix "conf-<pid>-<random>-<test>/",
 *    checks that it starts empty, and its teardown aborts the writers a
 *    failed assertion left open and removes every key below it, so the suite
 *    can run against shared buckets and servers, two runs at a time.
 *  - The expected listing order is computed here with memcmp over the keys'
 *    bytes, never with arca's own comparison.
 *  - Keys stay within what every driver can store: no '&' (s3rver), no
 *    characters Windows/SMB forbids, no two keys that differ only in case,
 *    and no key that is also a "directory" of another key (a filesystem
 *    cannot hold both); key_and_prefix checks that case on its own.
 *  - When a driver lacks a feature bit (MTIME, LIST_MTIME, RANGE_READ, ...)
 *    the weaker promise is checked instead, never nothing.
 *  - Each test runs as its own cmocka group so a known failure (XFAIL) can
 *    be told apart from a new one; the last line sums the run up.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "storage/remote.h"
#include "storage/storage.h"

#define MIB (1024 * 1024)
#define NS 1000000000LL
/* a writer left pending long enough that S3 sends a part (part_size 5M in
 * the wrappers' config) */
#define PENDING_BYTES (6 * MIB + 7)
#define FX_HANDLES 8
#define FX_KEYBUFS 32
#define FX_KEYMAX 4096

/* ---- state of the run ---------------------------------------------------- */

static struct storage *g_st;
static const char *g_remote;
static unsigned g_features;
static unsigned g_hashes;
static char g_run[64]; /* "conf-<pid>-<8 hex>" */
static uint64_t g_large_bytes = 40ull * MIB;

struct fx {
    const char *name;
    char p[160]; /* the test's prefix: "<g_run>-<name>/" */
    struct storage_writer *w[FX_HANDLES];
    struct storage_reader *r[FX_HANDLES];
    char keys[FX_KEYBUFS][FX_KEYMAX];
    int next_key;
};

static bool has(unsigned feature)
{
    return (g_features & feature) != 0;
}

/* The full key of rel below the test's prefix. Valid until FX_KEYBUFS more
 * calls. */
static const char *K(struct fx *f, const char *rel)
{
    char *k = f->keys[f->next_key++ % FX_KEYBUFS];
    int n = snprintf(k, FX_KEYMAX, "%s%s", f->p, rel);
    assert_true(n > 0 && n < FX_KEYMAX);
    return k;
}

/* Printable form of a key for messages: bytes >= 0x7f and controls as \xNN. */
static const char *show(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

/* Fail with the error record when r is not 0. */
#define OK(expr, e)                                                                                \
    do {                                                                                           \
        int ok_r_ = (expr);                                                                        \
        if (ok_r_)                                                                                 \
            fail_msg("%s: %s (%s)", #expr, (e)->msg, err_code_name(ok_r_));                        \
    } while (0)

/* Fail unless r is `want`. */
static void expect_code(int r, int want, const struct err *e, const char *what)
{
    if (r != want)
        fail_msg("%s: want %s, got %s%s%s", what, want ? err_code_name(want) : "success",
                 r ? err_code_name(r) : "success", r ? ": " : "", r ? e->msg : "");
}

/* ---- hashes and data ------------------------------------------------------ */

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    assert_int_equal(EVP_Digest(data, len, d, &dl, EVP_md5(), NULL), 1);
    hex(d, dl, out);
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Pseudo-random bytes [off, off + n) of stream `seed`: any range can be
 * made again, so nothing large is kept in memory. */
static void prng_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t pos = off + i;
        uint64_t w = mix64(seed ^ (pos >> 3));
        for (unsigned b = (unsigned)(pos & 7); b < 8 && i < n; b++, i++)
            buf[i] = (unsigned char)(w >> (8 * b));
    }
}

static unsigned char *prng_alloc(uint64_t seed, size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    prng_fill(seed, 0, p, n);
    return p;
}

/* memcmp order of two NUL-terminated keys (the oracle for listings). */
static int bytes_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

static int bytes_cmp_p(const void *a, const void *b)
{
    return bytes_cmp(*(char *const *)a, *(char *const *)b);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- handles a failed assertion may leave open ------------------------------ */

static void track_w(struct fx *f, struct storage_writer *w)
{
    for (int i = 0; i < FX_HANDLES; i++)
        if (!f->w[i]) {
            f->w[i] = w;
            return;
        }
    fail_msg("more than %d writers open at once", FX_HANDLES);
}

static void untrack_w(struct fx *f, struct storage_writer *w)
{
    for (int i = 0; i < FX_HANDLES; i++)
        if (f->w[i] == w)
            f->w[i] = NULL;
}

static void track_r(struct fx *f, struct storage_reader *r)
{
    for (int i = 0; i < FX_HANDLES; i++)
        if (!f->r[i]) {
            f->r[i] = r;
            return;
        }
    fail_msg("more than %d readers open at once", FX_HANDLES);
}

static void untrack_r(struct fx *f, struct storage_reader *r)
{
    for (int i = 0; i < FX_HANDLES; i++)
        if (f->r[i] == r)
            f->r[i] = NULL;
}

/* ---- writing -------------------------------------------------------------------- */

static struct storage_write_opts opts_of(int64_t mtime_ns, int64_t size_hint)
{
    struct storage_write_opts o = {.size_hint = size_hint, .mtime_ns = mtime_ns};
    return o;
}

/* Open a writer (tracked until commit/abort); returns the driver's code. */
static int w_open(struct fx *f, const char *key, int64_t mtime_ns, int64_t size_hint,
                  struct storage_writer **w, struct err *e)
{
    struct storage_write_opts o = opts_of(mtime_ns, size_hint);
    int r = storage_write_open(g_st, key, &o, w, e);
    if (!r)
        track_w(f, *w);
    return r;
}

static int w_commit(struct fx *f, struct storage_writer *w, struct err *e)
{
    untrack_w(f, w);
    return storage_write_commit(w, e);
}

static void w_abort(struct fx *f, struct storage_writer *w)
{
    untrack_w(f, w);
    storage_write_abort(w);
}

/* Write data in pieces of at most `chunk` bytes. */
static void w_data(struct storage_writer *w, const void *data, size_t len, size_t chunk)
{
    struct err e;
    const unsigned char *p = data;
    while (len) {
        size_t n = len < chunk ? len : chunk;
        OK(storage_write(w, p, n, &e), &e);
        p += n;
        len -= n;
    }
}

/* Store key = data, asserting every step. */
static void put(struct fx *f, const char *key, const void *data, size_t len, int64_t mtime_ns)
{
    struct err e;
    struct storage_writer *w;
    OK(w_open(f, key, mtime_ns, (int64_t)len, &w, &e), &e);
    w_data(w, data, len, 65521);
    int r = w_commit(f, w, &e);
    if (r)
        fail_msg("writing '%s': %s (%s)", key, e.msg, err_code_name(r));
}

static void put_str(struct fx *f, const char *key, const char *s)
{
    put(f, key, s, strlen(s), STORAGE_MTIME_UNKNOWN);
}

/* Write key = data through open/write/commit; the code of the first step
 * that failed, 0 when all passed. */
static int try_put(struct fx *f, const char *key, const char *data, struct err *e)
{
    struct storage_writer *w;
    int r = w_open(f, key, STORAGE_MTIME_UNKNOWN, (int64_t)strlen(data), &w, e);
    if (r)
        return r;
    r = storage_write(w, data, strlen(data), e);
    if (r) {
        w_abort(f, w);
        return r;
    }
    return w_commit(f, w, e);
}

/* ---- reading -------------------------------------------------------------------- */

/* Read [off, off + len) of key into out (appended), with read sizes that
 * vary, so a driver that assumes the caller's buffer size is caught. */
static int get(struct fx *f, const char *key, uint64_t off, int64_t len, struct buf *out,
               struct storage_entry *ent, struct err *e)
{
    static const size_t caps[] = {1, 13, 4093, 65537, 1048573};
    struct storage_reader *rd;
    int r = storage_read_open(g_st, key, off, len, &rd, ent, e);
    if (r)
        return r;
    track_r(f, rd);
    unsigned char *tmp = malloc(1048573);
    assert_non_null(tmp);
    for (size_t i = 0;; i++) {
        size_t got = 0;
        r = storage_read(rd, tmp, caps[i % 5], &got, e);
        if (r || !got)
            break;
        assert_true(got <= caps[i % 5]);
        assert_int_equal(buf_append(out, tmp, got), 0);
    }
    free(tmp);
    untrack_r(f, rd);
    storage_read_close(rd);
    return r;
}

/* key holds exactly data. */
static void expect_content(struct fx *f, const char *key, const void *data, size_t len)
{
    struct err e;
    struct buf b = BUF_INIT(0);
    int r = get(f, key, 0, -1, &b, NULL, &e);
    if (r)
        fail_msg("reading '%s': %s (%s)", key, e.msg, err_code_name(r));
    if (b.len != len || (len && memcmp(b.data, data, len) != 0))
        fail_msg("'%s' holds %zu bytes that differ from the %zu written", key, b.len, len);
    buf_release(&b);
}

static void expect_str(struct fx *f, const char *key, const char *s)
{
    expect_content(f, key, s, strlen(s));
}

/* ---- listing -------------------------------------------------------------------- */

struct listing {
    struct storage_entry *ents;
    size_t n, cap;
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        storage_entry_clear(&l->ents[i]);
    free(l->ents);
    memset(l, 0, sizeof(*l));
}

/* Everything listed under prefix; checks every key starts with it and
 * that keys strictly increase in memcmp order. */
static int list(const char *prefix, struct listing *out, struct err *e)
{
    struct storage_list *l;
    memset(out, 0, sizeof(*out));
    int r = storage_list_open(g_st, prefix, &l, e);
    if (r)
        return r;
    for (;;) {
        struct storage_entry ent;
        r = storage_list_next(l, &ent, e);
        if (r <= 0)
            break;
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 64;
            out->ents = realloc(out->ents, out->cap * sizeof(*out->ents));
            assert_non_null(out->ents);
        }
        out->ents[out->n++] = ent;
    }
    storage_list_close(l);
    if (r)
        return r;
    char a[FX_KEYMAX], b[FX_KEYMAX];
    for (size_t i = 0; i < out->n; i++) {
        if (!starts_with(out->ents[i].key, prefix))
            fail_msg("listing '%s' returned '%s', which is outside the prefix", prefix,
                     show(out->ents[i].key, a, sizeof(a)));
        if (i && bytes_cmp(out->ents[i - 1].key, out->ents[i].key) >= 0)
            fail_msg("listing '%s': '%s' came after '%s' (want strictly increasing bytes)", prefix,
                     show(out->ents[i].key, a, sizeof(a)),
                     show(out->ents[i - 1].key, b, sizeof(b)));
    }
    return 0;
}

static void list_ok(const char *prefix, struct listing *out)
{
    struct err e;
    int r = list(prefix, out, &e);
    if (r)
        fail_msg("listing '%s': %s (%s)", prefix, e.msg, err_code_name(r));
}

/* The listing of prefix is exactly want[0..n) (full keys, any order: they
 * are sorted here), each once, in memcmp order. */
static void expect_keys(const char *prefix, const char *const *want, size_t n)
{
    struct listing l;
    list_ok(prefix, &l);
    const char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    assert_non_null(sorted);
    if (n)
        memcpy(sorted, want, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), bytes_cmp_p);
    bool same = l.n == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(l.ents[i].key, sorted[i]) == 0;
    if (!same) {
        char s[FX_KEYMAX];
        print_error("listing '%s':\n  want (%zu):\n", show(prefix, s, sizeof(s)), n);
        for (size_t i = 0; i < n; i++)
            print_error("    %s\n", show(sorted[i], s, sizeof(s)));
        print_error("  got (%zu):\n", l.n);
        for (size_t i = 0; i < l.n; i++)
            print_error("    %s\n", show(l.ents[i].key, s, sizeof(s)));
    }
    free(sorted);
    listing_free(&l);
    if (!same)
        fail_msg("listing '%s' is not the keys written, each once, in byte order", prefix);
}

static void expect_empty(const char *prefix)
{
    expect_keys(prefix, NULL, 0);
}

/* ---- fixture -------------------------------------------------------------------- */

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->name = *state;
    snprintf(f->p, sizeof(f->p), "%s-%s/", g_run, f->name);
    *state = f;
    struct listing l;
    struct err e;
    int r = list(f->p, &l, &e);
    if (r) {
        print_error("listing '%s' before the test: %s\n", f->p, e.msg);
        return -1;
    }
    size_t n = l.n;
    listing_free(&l);
    if (n) {
        print_error("'%s' is not empty before the test (%zu keys); another run uses it\n", f->p, n);
        return -1;
    }
    return 0;
}

/* Remove every key below prefix; the number left, or -1 if listing fails. */
static long remove_all(const char *prefix)
{
    struct listing l;
    struct err e;
    if (list(prefix, &l, &e)) {
        print_error("cleanup: listing '%s': %s\n", prefix, e.msg);
        return -1;
    }
    for (size_t i = 0; i < l.n; i++)
        if (storage_remove(g_st, l.ents[i].key, &e))
            print_error("cleanup: removing '%s': %s\n", l.ents[i].key, e.msg);
    listing_free(&l);
    if (list(prefix, &l, &e))
        return -1;
    long left = (long)l.n;
    listing_free(&l);
    return left;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    int rc = 0;
    for (int i = 0; i < FX_HANDLES; i++) {
        if (f->w[i])
            storage_write_abort(f->w[i]);
        if (f->r[i])
            storage_read_close(f->r[i]);
    }
    long left = remove_all(f->p);
    if (left != 0) {
        print_error("cleanup: %ld keys still listed under '%s' after removing them all\n", left,
                    f->p);
        rc = -1;
    }
    free(f);
    return rc;
}

/* ---- listing order -------------------------------------------------------------- */

/* The traps: '-' (0x2d) < '/' (0x2f) < '0' (0x30) < 'Z' < '_' < 'a' < '~',
 * '.' < '/', a space and '+' (URL-encoding), '%', multi-byte UTF-8 above
 * every ASCII byte, NFC and NFD of the same word as two keys, a 4-byte
 * emoji. No key is also the "directory" of another (see key_and_prefix). */
static const char *const ORDER_KEYS[] = {
    "Z",
    "_u",
    "007",
    "a b",
    "a+b",
    "a-b",
    "a.txt",
    "a%41",
    "a=b",
    "a0",
    "aa",
    "a~",
    "a/b-c",
    "a/b.txt",
    "a/b/c",
    "a/b0",
    "a/c",
    "a/\xc3\xa4", /* a/ä */
    "photo",
    "photos.zip",
    "photos/x",
    "photos0",
    "sp ace/x y",
    "tilde~/x",
    "~t",
    "\xc3\xa9",                              /* é */
    "caf\xc3\xa9",                           /* café, NFC */
    "cafe\xcc\x81",                          /* café, NFD */
    "\xe6\x97\xa5\xe6\x9c\xac/\xe8\xaa\x9e", /* 日本/語 */
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",  /* 日本語 */
    "\xf0\x9f\x98\x80",                      /* 😀 */
    "\xf0\x9f\x99\x82/x",                    /* 🙂/x */
};
#define N_ORDER (sizeof(ORDER_KEYS) / sizeof(ORDER_KEYS[0]))

static void seed_order_keys(struct fx *f, const char **full)
{
    for (size_t i = 0; i < N_ORDER; i++) {
        full[i] = strdup(K(f, ORDER_KEYS[i]));
        assert_non_null(full[i]);
        put_str(f, full[i], ORDER_KEYS[i]);
    }
}

static void free_keys(const char **k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)k[i]);
}

static void test_listing_order(void **state)
{
    struct fx *f = *state;
    const char *full[N_ORDER];
    seed_order_keys(f, full);

    /* the oracle itself: the traps sort as documented */
    assert_true(bytes_cmp("a-b", "a/b") < 0 && bytes_cmp("a/b", "a0") < 0);
    assert_true(bytes_cmp("photos.zip", "photos/x") < 0);
    assert_true(bytes_cmp("cafe\xcc\x81", "caf\xc3\xa9") < 0);

    expect_keys(f->p, full, N_ORDER);

    /* sizes and types as written; mtimes when the listing promises them */
    struct listing l;
    list_ok(f->p, &l);
    int64_t now = (int64_t)time(NULL) * NS;
    for (size_t i = 0; i < l.n; i++) {
        const char *rel = l.ents[i].key + strlen(f->p);
        assert_int_equal(l.ents[i].type, STORAGE_TYPE_FILE);
        if (l.ents[i].size != strlen(rel))
            fail_msg("listing reports %llu bytes for '%s', %zu were written",
                     (unsigned long long)l.ents[i].size, l.ents[i].key, strlen(rel));
        if (has(STORAGE_FEATURE_LIST_MTIME)) {
            int64_t m = l.ents[i].mtime_ns;
            if (m == STORAGE_MTIME_UNKNOWN || m < now - 3600 * NS || m > now + 3600 * NS)
                fail_msg("LIST_MTIME driver lists '%s' without its mtime (write time)",
                         l.ents[i].key);
        }
        if (l.ents[i].md5[0]) {
            char want[33];
            md5_hex(rel, strlen(rel), want);
            assert_string_equal(l.ents[i].md5, want);
        }
    }
    listing_free(&l);
    free_keys(full, N_ORDER);
}

static void test_listing_prefix(void **state)
{
    struct fx *f = *state;
    const char *full[N_ORDER];
    seed_order_keys(f, full);

    static const char *const prefixes[] = {
        "",
        "a",
        "a/",
        "a/b",
        "a/b/",
        "a/b/c",
        "pho",
        "photos",
        "photos/",
        "photos.zip",
        "sp ace/",
        "caf",
        "cafe",
        "\xe6\x97\xa5",              /* 日 */
        "\xe6\x97\xa5\xe6\x9c\xac/", /* 日本/ */
        "\xf0\x9f\x99\x82/",         /* 🙂/ */
        "missing",
        "missing/",
        "missing/deeper/",
        "a/missing/",
        "photos.zip/", /* "below" a key: nothing there, not an error */
    };
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        char prefix[FX_KEYMAX];
        snprintf(prefix, sizeof(prefix), "%s%s", f->p, prefixes[p]);
        const char *want[N_ORDER];
        size_t n = 0;
        for (size_t i = 0; i < N_ORDER; i++)
            if (starts_with(full[i], prefix))
                want[n++] = full[i];
        expect_keys(prefix, want, n);
    }
    free_keys(full, N_ORDER);
}

/* ---- stat ------------------------------------------------------------------------ */

/* m is want as the driver keeps it: within a second, or within the
 * driver's documented precision when that is coarser */
static bool same_second(int64_t m, int64_t want)
{
    int64_t tol = storage_mtime_precision(g_st);
    if (tol < NS)
        tol = NS;
    return m != STORAGE_MTIME_UNKNOWN && m > want - tol && m < want + tol;
}

static bool plausible_now(int64_t m)
{
    int64_t now = (int64_t)time(NULL) * NS;
    return m > now - 3600 * NS && m < now + 3600 * NS;
}

static void test_stat(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    const size_t size = 12345;
    const int64_t mtime = 1234567890LL * NS + 500000000; /* 2009-02-13T23:31:30.5Z */
    unsigned char *data = prng_alloc(7, size);
    const char *key = K(f, "s.bin");
    put(f, key, data, size, mtime);

    OK(storage_stat(g_st, key, &ent, &e), &e);
    assert_string_equal(ent.key, key);
    assert_int_equal(ent.type, STORAGE_TYPE_FILE);
    assert_int_equal(ent.size, size);
    if (has(STORAGE_FEATURE_MTIME)) {
        if (!same_second(ent.mtime_ns, mtime))
            fail_msg("stat mtime %lld ns, want %lld ns (the mtime given at write, to the second)",
                     (long long)ent.mtime_ns, (long long)mtime);
    } else if (ent.mtime_ns != STORAGE_MTIME_UNKNOWN && !plausible_now(ent.mtime_ns)) {
        fail_msg("driver without MTIME reports mtime %lld ns: want unknown or the write time",
                 (long long)ent.mtime_ns);
    }
    char md5[33];
    md5_hex(data, size, md5);
    if (ent.md5[0])
        assert_string_equal(ent.md5, md5);
    storage_entry_clear(&ent);

    /* the listing: size, and the mtime when LIST_MTIME */
    struct listing l;
    list_ok(f->p, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ents[0].size, size);
    if (has(STORAGE_FEATURE_LIST_MTIME) && !same_second(l.ents[0].mtime_ns, mtime))
        fail_msg("LIST_MTIME driver lists mtime %lld ns, want %lld ns",
                 (long long)l.ents[0].mtime_ns, (long long)mtime);
    if (l.ents[0].md5[0])
        assert_string_equal(l.ents[0].md5, md5);
    listing_free(&l);

    /* what read_open learns agrees */
    struct buf b = BUF_INIT(0);
    OK(get(f, key, 0, -1, &b, &ent, &e), &e);
    assert_int_equal(b.len, size);
    assert_memory_equal(b.data, data, size);
    assert_int_equal(ent.size, size);
    if (ent.mtime_ns != STORAGE_MTIME_UNKNOWN && has(STORAGE_FEATURE_MTIME) &&
        !same_second(ent.mtime_ns, mtime))
        fail_msg("read_open reports mtime %lld ns, want %lld ns", (long long)ent.mtime_ns,
                 (long long)mtime);
    storage_entry_clear(&ent);
    buf_release(&b);

    /* no mtime given: the driver's own (the write time) or unknown */
    const char *key2 = K(f, "d/now.txt");
    put_str(f, key2, "now");
    OK(storage_stat(g_st, key2, &ent, &e), &e);
    assert_int_equal(ent.size, 3);
    if (ent.mtime_ns != STORAGE_MTIME_UNKNOWN && !plausible_now(ent.mtime_ns))
        fail_msg("'%s' written without an mtime reports %lld ns: want the write time", key2,
                 (long long)ent.mtime_ns);
    storage_entry_clear(&ent);

    /* a "directory" (a prefix of keys, not a key): not found, or a DIR */
    int r = storage_stat(g_st, K(f, "d"), &ent, &e);
    if (!(r == ERR_NOT_FOUND || (r == 0 && ent.type == STORAGE_TYPE_DIR)))
        fail_msg("stat of the prefix 'd': want not_found or a directory, got %s (type %d)",
                 r ? err_code_name(r) : "success", r ? -1 : (int)ent.type);
    storage_entry_clear(&ent);

    /* missing keys */
    r = storage_stat(g_st, K(f, "missing"), &ent, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "stat of a missing key");
    r = storage_stat(g_st, K(f, "nodir/missing"), &ent, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "stat of a key in a missing directory");
    r = storage_stat(g_st, K(f, "s.bin/below"), &ent, &e);
    if (r != ERR_NOT_FOUND)
        fail_msg("stat of a key 'below' a file: want not_found, got %s",
                 r ? err_code_name(r) : "success");
    r = get(f, K(f, "missing"), 0, -1, &b, NULL, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "reading a missing key");
    buf_release(&b);
    free(data);
}

/* ---- ranged reads ---------------------------------------------------------------- */

struct range_case {
    uint64_t off;
    int64_t len;
};

/* Read each case of key (data[0..size)); print what went wrong, return
 * how many did. */
static int range_cases(struct fx *f, const char *key, const unsigned char *data, size_t size,
                       const struct range_case *cases, size_t n)
{
    struct err e;
    struct buf b = BUF_INIT(0);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t off = cases[i].off;
        int64_t len = cases[i].len;
        size_t want = off >= size ? 0 : size - (size_t)off;
        if (len >= 0 && (size_t)len < want)
            want = (size_t)len;
        buf_reset(&b);
        int r = get(f, key, off, len, &b, NULL, &e);
        if (r) {
            print_error("  read of %zu bytes at offset %llu, length %lld: %s (%s)\n", size,
                        (unsigned long long)off, (long long)len, e.msg, err_code_name(r));
            bad++;
        } else if (b.len != want || (want && memcmp(b.data, data + off, want) != 0)) {
            print_error("  read of %zu bytes at offset %llu, length %lld: got %zu bytes, want "
                        "%zu%s\n",
                        size, (unsigned long long)off, (long long)len, b.len, want,
                        b.len == want ? " (they differ)" : "");
            bad++;
        }
    }
    buf_release(&b);
    return bad;
}

static void test_range_read(void **state)
{
    struct fx *f = *state;
    struct err e;
    const size_t size = 100003;
    unsigned char *data = prng_alloc(11, size);
    const char *key = K(f, "range.bin");
    put(f, key, data, size, STORAGE_MTIME_UNKNOWN);

    /* every driver: the whole object */
    static const struct range_case whole[] = {{0, -1}};
    if (range_cases(f, key, data, size, whole, 1))
        fail_msg("reading '%s' whole went wrong", key);

    if (!has(STORAGE_FEATURE_RANGE_READ)) {
        /* the weaker promise: a range is refused, never answered with
         * other bytes */
        struct buf b = BUF_INIT(0);
        int r = get(f, key, 10, 5, &b, NULL, &e);
        if (r == 0)
            fail_msg("driver without RANGE_READ answered a ranged read");
        buf_release(&b);
        free(data);
        return;
    }
    static const struct range_case cases[] = {
        {0, 10},       {0, 0},      {50000, 777}, {50000, -1}, {99993, -1}, {99993, 10},
        {99993, 1000}, {100002, 1}, {100003, -1}, {0, 100003}, {0, 200000}, {1, 100002},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    int bad = range_cases(f, key, data, size, cases, N);
    free(data);
    if (bad)
        fail_msg("%d of %d ranged reads of '%s' went wrong", bad, (int)N, key);
}

/* Ranges that start at the end of the data with a length: "at most n
 * bytes" from there is no bytes, not an error (an empty object included). */
static void test_range_read_end(void **state)
{
    struct fx *f = *state;
    const size_t size = 4099;
    unsigned char *data = prng_alloc(29, size);
    const char *key = K(f, "end.bin"), *empty = K(f, "empty.bin");
    put(f, key, data, size, STORAGE_MTIME_UNKNOWN);
    put(f, empty, "", 0, STORAGE_MTIME_UNKNOWN);
    if (!has(STORAGE_FEATURE_RANGE_READ)) {
        /* nothing to check beyond range_read's refusal */
        free(data);
        return;
    }
    static const struct range_case at_end[] = {{4099, 5}, {4099, 0}, {4098, 0}};
    /* not {0, 10} of the empty object: s3rver answers it 206 with a
     * Content-Length of 1 and no body, and the reader retries for 30 s */
    static const struct range_case of_empty[] = {{0, -1}, {0, 0}};
    int bad = range_cases(f, key, data, size, at_end, 3);
    bad += range_cases(f, empty, data, 0, of_empty, 2);
    free(data);
    if (bad)
        fail_msg("%d of 5 reads at the end of the data went wrong", bad);
}

/* ---- atomic writes ---------------------------------------------------------------- */

static void test_atomic_write(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    const char *old = "old content";
    const char *key = K(f, "k");
    const char *fresh = K(f, "sub/fresh");
    put_str(f, key, old);

    /* a pending overwrite, big enough that S3 sends a part, and a pending
     * new key in a new "directory" */
    unsigned char *big = prng_alloc(13, PENDING_BYTES);
    struct storage_writer *w1, *w2;
    OK(w_open(f, key, STORAGE_MTIME_UNKNOWN, -1, &w1, &e), &e);
    w_data(w1, big, PENDING_BYTES, 1048573);
    OK(w_open(f, fresh, STORAGE_MTIME_UNKNOWN, 5, &w2, &e), &e);
    w_data(w2, "fresh", 5, 2);

    /* neither is visible yet */
    const char *only_old[] = {key};
    expect_keys(f->p, only_old, 1);
    expect_empty(K(f, "sub/"));
    OK(storage_stat(g_st, key, &ent, &e), &e);
    assert_int_equal(ent.size, strlen(old));
    storage_entry_clear(&ent);
    expect_str(f, key, old);
    int r = storage_stat(g_st, fresh, &ent, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "stat of a key whose writer is not committed");
    struct buf b = BUF_INIT(0);
    r = get(f, fresh, 0, -1, &b, NULL, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "reading a key whose writer is not committed");

    /* after commit: the new content */
    OK(w_commit(f, w1, &e), &e);
    OK(w_commit(f, w2, &e), &e);
    expect_content(f, key, big, PENDING_BYTES);
    expect_str(f, fresh, "fresh");
    const char *both[] = {key, fresh};
    expect_keys(f->p, both, 2);

    /* an overwrite replaces: a shorter content leaves no tail of the old */
    put_str(f, key, "short");
    expect_str(f, key, "short");
    OK(storage_stat(g_st, key, &ent, &e), &e);
    assert_int_equal(ent.size, 5);
    storage_entry_clear(&ent);
    put(f, key, "", 0, STORAGE_MTIME_UNKNOWN);
    expect_content(f, key, "", 0);
    expect_keys(f->p, both, 2);

    /* the last commit of two writers on one key wins */
    OK(w_open(f, fresh, STORAGE_MTIME_UNKNOWN, -1, &w1, &e), &e);
    OK(w_open(f, fresh, STORAGE_MTIME_UNKNOWN, -1, &w2, &e), &e);
    w_data(w1, "first", 5, 5);
    w_data(w2, "second!", 7, 3);
    OK(w_commit(f, w1, &e), &e);
    expect_str(f, fresh, "first");
    OK(w_commit(f, w2, &e), &e);
    expect_str(f, fresh, "second!");
    expect_keys(f->p, both, 2);
    buf_release(&b);
    free(big);
}

/* ---- abort -------------------------------------------------------------------------- */

static void expect_same_listing(const char *prefix, const struct listing *before)
{
    struct listing now;
    list_ok(prefix, &now);
    bool same = now.n == before->n;
    for (size_t i = 0; same && i < now.n; i++)
        same = !strcmp(now.ents[i].key, before->ents[i].key) &&
               now.ents[i].size == before->ents[i].size;
    if (!same) {
        for (size_t i = 0; i < now.n; i++)
            print_error("  now: %s (%llu bytes)\n", now.ents[i].key,
                        (unsigned long long)now.ents[i].size);
        for (size_t i = 0; i < before->n; i++)
            print_error("  before: %s (%llu bytes)\n", before->ents[i].key,
                        (unsigned long long)before->ents[i].size);
        listing_free(&now);
        fail_msg("listing of '%s' changed after aborted writes", prefix);
    }
    listing_free(&now);
}

static void test_abort(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    put_str(f, K(f, "keep"), "keep");
    put_str(f, K(f, "old"), "old content");
    struct listing before;
    list_ok(f->p, &before);
    assert_int_equal(before.n, 2);

    struct storage_writer *w;
    /* a new key in new "directories" */
    OK(w_open(f, K(f, "new/deep/file"), STORAGE_MTIME_UNKNOWN, 1000, &w, &e), &e);
    unsigned char *small = prng_alloc(17, 1000);
    w_data(w, small, 1000, 333);
    w_abort(f, w);
    /* the same, in "directories" nothing else will ever use: on a
     * filesystem the directories made for it must go too (the wrappers
     * check the tree afterwards) */
    OK(w_open(f, K(f, "gone/deep/file"), STORAGE_MTIME_UNKNOWN, -1, &w, &e), &e);
    w_data(w, small, 1000, 1000);
    w_abort(f, w);
    /* over an existing key, past one S3 part */
    unsigned char *big = prng_alloc(19, PENDING_BYTES);
    OK(w_open(f, K(f, "old"), STORAGE_MTIME_UNKNOWN, -1, &w, &e), &e);
    w_data(w, big, PENDING_BYTES, 1048573);
    w_abort(f, w);
    /* nothing written at all */
    OK(w_open(f, K(f, "nothing"), STORAGE_MTIME_UNKNOWN, -1, &w, &e), &e);
    w_abort(f, w);
    /* a name that sorts right beside an existing one */
    OK(w_open(f, K(f, "keep2"), STORAGE_MTIME_UNKNOWN, 4, &w, &e), &e);
    w_data(w, "kee2", 4, 4);
    w_abort(f, w);

    expect_same_listing(f->p, &before);
    expect_empty(K(f, "new/"));
    expect_empty(K(f, "gone/"));
    expect_str(f, K(f, "old"), "old content");
    expect_str(f, K(f, "keep"), "keep");
    int r = storage_stat(g_st, K(f, "new/deep/file"), &ent, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "stat of an aborted new key");
    r = storage_stat(g_st, K(f, "nothing"), &ent, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "stat of an aborted empty key");

    /* the name is free again: a new write there works */
    put_str(f, K(f, "new/deep/file"), "after abort");
    expect_str(f, K(f, "new/deep/file"), "after abort");
    listing_free(&before);
    free(small);
    free(big);
}

/* ---- remove ------------------------------------------------------------------------ */

/* storage.h does not say what removing a missing key returns; the one
 * caller (the transfer engine's delete) takes 0 and ERR_NOT_FOUND alike as
 * "gone". Accept those two, say which one this driver gives. */
static int remove_missing(const char *key, const char *what)
{
    struct err e;
    int r = storage_remove(g_st, key, &e);
    if (r != 0 && r != ERR_NOT_FOUND)
        fail_msg("removing %s: want success or not_found, got %s: %s", what, err_code_name(r),
                 e.msg);
    return r;
}

static void test_remove(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    put_str(f, K(f, "r1"), "r1");
    put_str(f, K(f, "d/r2"), "r2");
    put_str(f, K(f, "d/e/r3"), "r3");
    put_str(f, K(f, "keep"), "keep");

    OK(storage_remove(g_st, K(f, "r1"), &e), &e);
    int r = storage_stat(g_st, K(f, "r1"), &ent, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "stat of a removed key");
    struct buf b = BUF_INIT(0);
    r = get(f, K(f, "r1"), 0, -1, &b, NULL, &e);
    expect_code(r, ERR_NOT_FOUND, &e, "reading a removed key");
    const char *left3[] = {K(f, "d/e/r3"), K(f, "d/r2"), K(f, "keep")};
    expect_keys(f->p, left3, 3);

    /* the last key of a "directory" */
    OK(storage_remove(g_st, K(f, "d/e/r3"), &e), &e);
    const char *left2[] = {K(f, "d/r2"), K(f, "keep")};
    expect_keys(f->p, left2, 2);
    expect_empty(K(f, "d/e/"));

    /* a prefix that is no key: storage.h does not say what removing it
     * answers (local: usage, S3: success, SFTP: io), but what is below
     * must stay */
    r = storage_remove(g_st, K(f, "d"), &e);
    print_message("arca-conformance:   note: driver '%s': removing a \"directory\" returns %s\n",
                  storage_driver_name(g_st), r ? err_code_name(r) : "success");
    expect_keys(f->p, left2, 2);
    expect_str(f, K(f, "d/r2"), "r2");

    /* missing keys: the same answer for each, and nothing changes */
    int r1 = remove_missing(K(f, "r1"), "a key removed before");
    int r2 = remove_missing(K(f, "never"), "a key never written");
    int r3 = remove_missing(K(f, "nodir/never"), "a key in a missing directory");
    if (r1 != r2 || r2 != r3)
        fail_msg("removing missing keys answers differently: %d, %d, %d", r1, r2, r3);
    print_message("arca-conformance:   note: driver '%s': removing a missing key returns %s\n",
                  storage_driver_name(g_st), r1 ? err_code_name(r1) : "success");
    expect_keys(f->p, left2, 2);

    OK(storage_remove(g_st, K(f, "d/r2"), &e), &e);
    OK(storage_remove(g_st, K(f, "keep"), &e), &e);
    expect_empty(f->p);
    buf_release(&b);
}

/* ---- empty files -------------------------------------------------------------------- */

static void test_empty(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    struct storage_writer *w;

    /* no write call at all */
    OK(w_open(f, K(f, "empty"), STORAGE_MTIME_UNKNOWN, 0, &w, &e), &e);
    OK(w_commit(f, w, &e), &e);
    /* one write of 0 bytes, size unknown, in a "directory" */
    OK(w_open(f, K(f, "e/empty2"), STORAGE_MTIME_UNKNOWN, -1, &w, &e), &e);
    OK(storage_write(w, "", 0, &e), &e);
    OK(w_commit(f, w, &e), &e);
    /* a non-empty file overwritten with nothing */
    put_str(f, K(f, "was-full"), "0123456789");
    put(f, K(f, "was-full"), "", 0, STORAGE_MTIME_UNKNOWN);

    const char *keys[] = {K(f, "e/empty2"), K(f, "empty"), K(f, "was-full")};
    for (int i = 0; i < 3; i++) {
        OK(storage_stat(g_st, keys[i], &ent, &e), &e);
        assert_int_equal(ent.type, STORAGE_TYPE_FILE);
        assert_int_equal(ent.size, 0);
        if (ent.md5[0])
            assert_string_equal(ent.md5, "d41d8cd98f00b204e9800998ecf8427e");
        storage_entry_clear(&ent);
        expect_content(f, keys[i], "", 0);
    }
    struct listing l;
    list_ok(f->p, &l);
    assert_int_equal(l.n, 3);
    for (size_t i = 0; i < l.n; i++) {
        assert_string_equal(l.ents[i].key, keys[i]);
        assert_int_equal(l.ents[i].size, 0);
    }
    listing_free(&l);
}

/* ---- unicode names ------------------------------------------------------------------ */

static void test_unicode(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    /* café NFC and NFD, Über/Straße, 日本語/ファイル.txt, an emoji with a
     * space, the rainbow flag (a ZWJ sequence), Hebrew (right to left),
     * Ωmega €, a no-break space, the "ﬁ" ligature */
    static const char *const names[] = {
        "caf\xc3\xa9",
        "cafe\xcc\x81",
        "\xc3\x9c"
        "ber/Stra\xc3\x9f"
        "e",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab.txt",
        "\xf0\x9f\x98\x80 smile",
        "\xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x8c\x88",
        "\xd7\xa2\xd7\x91\xd7\xa8\xd7\x99\xd7\xaa",
        "\xce\xa9mega \xe2\x82\xac",
        "nb\xc2\xa0sp",
        "\xef\xac\x81le",
    };
    enum { N = sizeof(names) / sizeof(names[0]) };
    const char *full[N];
    for (int i = 0; i < N; i++) {
        full[i] = strdup(K(f, names[i]));
        assert_non_null(full[i]);
        char content[64];
        snprintf(content, sizeof(content), "name %d", i);
        put_str(f, full[i], content);
    }
    for (int i = 0; i < N; i++) {
        char content[64], s[FX_KEYMAX];
        snprintf(content, sizeof(content), "name %d", i);
        int r = storage_stat(g_st, full[i], &ent, &e);
        if (r)
            fail_msg("stat of '%s': %s", show(full[i], s, sizeof(s)), e.msg);
        if (strcmp(ent.key, full[i]) != 0)
            fail_msg("stat of '%s' names it '%s'", show(full[i], s, sizeof(s)), ent.key);
        storage_entry_clear(&ent);
        expect_str(f, full[i], content);
    }
    expect_keys(f->p, full, N);
    /* NFC and NFD stay apart in prefixes too */
    const char *both[] = {full[0], full[1]};
    expect_keys(K(f, "caf"), both, 2);
    const char *nfd[] = {full[1]};
    expect_keys(K(f, "cafe"), nfd, 1);
    free_keys(full, N);
}

/* ---- a large file ------------------------------------------------------------------- */

static void test_large_file(void **state)
{
    struct fx *f = *state;
    struct err e;
    struct storage_entry ent;
    static const size_t chunks[] = {1, 7, 4093, 65537, 1048573, 3 * MIB + 1, 13, 999999};
    const uint64_t size = g_large_bytes;
    const uint64_t seed = 23;
    const char *key = K(f, "large.bin");
    unsigned char *buf = malloc(4 * MIB);
    assert_non_null(buf);
    unsigned char want[32], got[32];
    unsigned dl;

    EVP_MD_CTX *h = EVP_MD_CTX_new();
    assert_non_null(h);
    assert_int_equal(EVP_DigestInit_ex(h, EVP_sha256(), NULL), 1);
    struct storage_writer *w;
    OK(w_open(f, key, STORAGE_MTIME_UNKNOWN, -1, &w, &e), &e);
    uint64_t off = 0;
    for (size_t i = 0; off < size; i++) {
        size_t n = chunks[i % (sizeof(chunks) / sizeof(chunks[0]))];
        if (n > size - off)
            n = (size_t)(size - off);
        prng_fill(seed, off, buf, n);
        assert_int_equal(EVP_DigestUpdate(h, buf, n), 1);
        OK(storage_write(w, buf, n, &e), &e);
        off += n;
    }
    assert_int_equal(EVP_DigestFinal_ex(h, want, &dl), 1);
    int r = w_commit(f, w, &e);
    if (r)
        fail_msg("committing %llu bytes: %s", (unsigned long long)size, e.msg);

    OK(storage_stat(g_st, key, &ent, &e), &e);
    assert_int_equal(ent.size, size);
    storage_entry_clear(&ent);

    /* read back in odd sizes, compared by SHA-256 */
    static const size_t caps[] = {4097, 1048573, 3, 2 * MIB + 5, 65536};
    struct storage_reader *rd;
    OK(storage_read_open(g_st, key, 0, -1, &rd, NULL, &e), &e);
    track_r(f, rd);
    assert_int_equal(EVP_DigestInit_ex(h, EVP_sha256(), NULL), 1);
    uint64_t total = 0;
    for (size_t i = 0;; i++) {
        size_t n = 0;
        size_t cap = caps[i % (sizeof(caps) / sizeof(caps[0]))];
        r = storage_read(rd, buf, cap, &n, &e);
        if (r)
            fail_msg("reading '%s' at byte %llu: %s", key, (unsigned long long)total, e.msg);
        if (!n)
            break;
        assert_true(n <= cap);
        assert_int_equal(EVP_DigestUpdate(h, buf, n), 1);
        total += n;
    }
    untrack_r(f, rd);
    storage_read_close(rd);
    assert_int_equal(EVP_DigestFinal_ex(h, got, &dl), 1);
    EVP_MD_CTX_free(h);
    if (total != size || memcmp(got, want, 32) != 0) {
        char a[65], b[65];
        hex(want, 32, a);
        hex(got, 32, b);
        fail_msg("'%s' read back as %llu bytes, sha256 %s; wrote %llu bytes, sha256 %s", key,
                 (unsigned long long)total, b, (unsigned long long)size, a);
    }

    /* a range across the 5 MiB mark (an S3 part boundary here) */
    if (has(STORAGE_FEATURE_RANGE_READ) && size > 5 * MIB + 100) {
        struct buf b = BUF_INIT(0);
        OK(get(f, key, 5 * MIB - 37, 100, &b, NULL, &e), &e);
        assert_int_equal(b.len, 100);
        prng_fill(seed, 5 * MIB - 37, buf, 100);
        assert_memory_equal(b.data, buf, 100);
        buf_release(&b);
    }
    free(buf);
    print_message("arca-conformance:   note: large file of %llu bytes\n", (unsigned long long)size);
}

/* ---- a deep tree --------------------------------------------------------------------- */

static void test_deep_tree(void **state)
{
    struct fx *f = *state;
    enum { DEPTH = 40 };
    static const int at[] = {0, 1, 2, 7, 20, 33, 39, DEPTH};
    enum { NAT = sizeof(at) / sizeof(at[0]) };
    const char *full[2 * NAT];
    size_t n = 0;
    char rel[FX_KEYMAX];
    for (int i = 0; i < NAT; i++) {
        size_t o = 0;
        for (int d = 1; d <= at[i]; d++)
            o += (size_t)snprintf(rel + o, sizeof(rel) - o, "d%02d/", d);
        /* "f" and, beside the next directory, a name that sorts before it
         * ('.' < '/') */
        snprintf(rel + o, sizeof(rel) - o, "f");
        full[n++] = strdup(K(f, rel));
        snprintf(rel + o, sizeof(rel) - o, "d%02d.txt", at[i] + 1);
        full[n++] = strdup(K(f, rel));
    }
    for (size_t i = 0; i < n; i++) {
        assert_non_null(full[i]);
        put_str(f, full[i], full[i] + strlen(f->p));
    }
    expect_keys(f->p, full, n);

    /* below depth 20: the keys of depth >= 20 only */
    size_t o = 0;
    for (int d = 1; d <= 20; d++)
        o += (size_t)snprintf(rel + o, sizeof(rel) - o, "d%02d/", d);
    const char *prefix = K(f, rel);
    const char *below[2 * NAT];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (starts_with(full[i], prefix))
            below[m++] = full[i];
    assert_int_equal(m, 8);
    expect_keys(prefix, below, m);
    expect_str(f, full[n - 2], full[n - 2] + strlen(f->p));
    free_keys(full, n);
}

/* ---- invalid keys ---------------------------------------------------------------------- */

static void test_invalid_keys(void **state)
{
    struct fx *f = *state;
    struct err e;
    char base[sizeof(f->p)];
    snprintf(base, sizeof(base), "%s-%s", g_run, f->name); /* the prefix without '/' */
    char escape[FX_KEYMAX], absolute[FX_KEYMAX];
    /* were ".." honoured, this would land beside the test's prefix, where
     * the partial listing below sees it */
    snprintf(escape, sizeof(escape), "%s/../%s-escaped", base, base);
    snprintf(absolute, sizeof(absolute), "/%sabs", f->p);
    const char *bad[] = {
        escape,        absolute,   K(f, "a//b"), K(f, "./x"),
        K(f, "a/./b"), K(f, ".."), K(f, "x/.."), K(f, "trail/"),
    };
    enum { NBAD = sizeof(bad) / sizeof(bad[0]) };
    int accepted = 0;
    char s[FX_KEYMAX];
    for (int i = 0; i < NBAD; i++) {
        int r = try_put(f, bad[i], "x", &e);
        if (r == ERR_USAGE)
            continue;
        print_error("  write of invalid key '%s': want usage, got %s%s%s\n",
                    show(bad[i], s, sizeof(s)), r ? err_code_name(r) : "success", r ? ": " : "",
                    r ? e.msg : "");
        accepted++;
        if (!r && storage_remove(g_st, bad[i], &e))
            print_error("  and removing it again failed: %s\n", e.msg);
    }
    /* The empty key only from a driver that refused the rest: one that
     * takes "" may write the root itself (S3: PUT /bucket/), and removing
     * that again could be DELETE /bucket/ */
    if (!accepted) {
        int r = try_put(f, "", "x", &e);
        if (r != ERR_USAGE) {
            print_error("  write of the empty key: want usage, got %s\n",
                        r ? err_code_name(r) : "success");
            accepted++;
        }
    }
    /* nothing created, not even beside the prefix */
    expect_empty(f->p);
    expect_empty(base);
    if (accepted)
        fail_msg("%d of %d invalid keys were not refused with ERR_USAGE", accepted, NBAD + 1);
}

/* ---- a key that is also a prefix ---------------------------------------------------------- */

/* Object stores hold "d" and "d/x" side by side; a filesystem cannot. The
 * driver may do either, but must say ERR_EXISTS when it cannot, change
 * nothing then, and behave the same way in both orders. Stored, "d" lists
 * before "d-b" and "d/x" before "d0" (the a-b < a/b < a/b/c < a0 trap with a
 * key that is both). */
static void test_key_and_prefix(void **state)
{
    struct fx *f = *state;
    struct err e;
    put_str(f, K(f, "d/x"), "d/x");
    put_str(f, K(f, "d-b"), "d-b");
    put_str(f, K(f, "d0"), "d0");
    int r1 = try_put(f, K(f, "d"), "d", &e);
    if (r1 && r1 != ERR_EXISTS)
        fail_msg("writing 'd' where 'd/x' exists: want success or exists, got %s: %s",
                 err_code_name(r1), e.msg);
    put_str(f, K(f, "f"), "f");
    int r2 = try_put(f, K(f, "f/y"), "f/y", &e);
    if (r2 && r2 != ERR_EXISTS)
        fail_msg("writing 'f/y' where 'f' exists: want success or exists, got %s: %s",
                 err_code_name(r2), e.msg);
    if (!r1 != !r2)
        fail_msg("a key beside a prefix of the same name: 'd' after 'd/x' gives %s, 'f/y' after "
                 "'f' gives %s; want the same both ways",
                 r1 ? err_code_name(r1) : "success", r2 ? err_code_name(r2) : "success");
    if (!r1) {
        const char *all[] = {K(f, "d"),  K(f, "d-b"), K(f, "d/x"),
                             K(f, "d0"), K(f, "f"),   K(f, "f/y")};
        expect_keys(f->p, all, 6);
        expect_str(f, K(f, "d"), "d");
        expect_str(f, K(f, "f/y"), "f/y");
        const char *under_d[] = {K(f, "d"), K(f, "d-b"), K(f, "d/x"), K(f, "d0")};
        expect_keys(K(f, "d"), under_d, 4);
        const char *below_d[] = {K(f, "d/x")};
        expect_keys(K(f, "d/"), below_d, 1);
    } else {
        const char *all[] = {K(f, "d-b"), K(f, "d/x"), K(f, "d0"), K(f, "f")};
        expect_keys(f->p, all, 4);
    }
    expect_str(f, K(f, "d/x"), "d/x");
    expect_str(f, K(f, "f"), "f");
    print_message(
        "arca-conformance:   note: driver '%s': a key beside a prefix of the same name: %s\n",
        storage_driver_name(g_st), r1 ? "refused (exists)" : "stored");
}

/* ---- main ------------------------------------------------------------------------------- */

#define T(fn, name)                                                                                \
    {                                                                                              \
        name, cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, (void *)name)    \
    }

struct conf_test {
    const char *name;
    struct CMUnitTest t;
};

static const struct conf_test TESTS[] = {
    T(test_listing_order, "listing_order"),
    T(test_listing_prefix, "listing_prefix"),
    T(test_stat, "stat"),
    T(test_range_read, "range_read"),
    T(test_range_read_end, "range_read_end"),
    T(test_atomic_write, "atomic_write"),
    T(test_abort, "abort"),
    T(test_remove, "remove"),
    T(test_empty, "empty"),
    T(test_unicode, "unicode"),
    T(test_large_file, "large_file"),
    T(test_deep_tree, "deep_tree"),
    T(test_invalid_keys, "invalid_keys"),
    T(test_key_and_prefix, "key_and_prefix"),
};
#define N_TESTS (sizeof(TESTS) / sizeof(TESTS[0]))

/* name is in list (names separated by ',' or whitespace) */
static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *s = list; s && *s;) {
        s += strspn(s, ", \t\n");
        size_t l = strcspn(s, ", \t\n");
        if (l == n && !strncmp(s, name, n))
            return true;
        s += l;
    }
    return false;
}

static bool known_test(const char *name)
{
    for (size_t i = 0; i < N_TESTS; i++)
        if (!strcmp(TESTS[i].name, name))
            return true;
    return false;
}

/* every name in list is a test (a typo must not silence a check) */
static int check_names(const char *var, const char *list)
{
    for (const char *s = list; s && *s;) {
        s += strspn(s, ", \t\n");
        size_t l = strcspn(s, ", \t\n");
        if (l) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(l < 63 ? l : 63), s);
            if (!known_test(name)) {
                fprintf(stderr,
                        "arca-conformance: %s names '%s', which is no test; the tests:", var, name);
                for (size_t i = 0; i < N_TESTS; i++)
                    fprintf(stderr, " %s", TESTS[i].name);
                fprintf(stderr, "\n");
                return -1;
            }
        }
        s += l;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    struct config cfg;
    struct err e;
    int rc = 1;
    memset(&cfg, 0, sizeof(cfg));
    err_clear(&e);

    g_remote = getenv("ARCA_CONFORMANCE_REMOTE");
    const char *cfg_path = getenv("ARCA_CONFORMANCE_CONFIG");
    const char *large = getenv("ARCA_CONFORMANCE_LARGE_MB");
    const char *only = getenv("ARCA_CONFORMANCE_ONLY");
    const char *xfail = getenv("ARCA_CONFORMANCE_XFAIL");
    if (!g_remote || !*g_remote) {
        fprintf(stderr,
                "arca-conformance: set ARCA_CONFORMANCE_REMOTE to the remote to test "
                "(a directory, s3://bucket/prefix or name:path) and ARCA_CONFORMANCE_CONFIG "
                "to the config file that defines a named remote\n");
        return 2;
    }
    if (large && *large) {
        char *end;
        long long mb = strtoll(large, &end, 10);
        if (*end || mb < 0 || mb > 1024 * 1024) {
            fprintf(stderr,
                    "arca-conformance: ARCA_CONFORMANCE_LARGE_MB='%s' is not a size in "
                    "MiB; give a whole number like 40\n",
                    large);
            return 2;
        }
        g_large_bytes = (uint64_t)mb * MIB;
    }
    if (check_names("ARCA_CONFORMANCE_ONLY", only) || check_names("ARCA_CONFORMANCE_XFAIL", xfail))
        return 2;

    signal(SIGPIPE, SIG_IGN);
    log_setup(LOG_WARN, LOG_FORMAT_TEXT);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cfg_path && *cfg_path && config_load(&cfg, cfg_path, true, &e)) {
        fprintf(stderr, "arca-conformance: %s\n", e.msg);
        goto out;
    }
    if (remote_open(g_remote, &cfg, NULL, &g_st, &e) || storage_check_root(g_st, true, true, &e)) {
        fprintf(stderr, "arca-conformance: opening '%s': %s\n", g_remote, e.msg);
        goto out;
    }
    g_features = storage_features(g_st);
    g_hashes = storage_hashes(g_st);
    unsigned long long rnd = 0;
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(&rnd, sizeof(rnd), 1, ur) != 1)
        rnd = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
    if (ur)
        fclose(ur);
    snprintf(g_run, sizeof(g_run), "conf-%ld-%08llx", (long)getpid(), rnd & 0xffffffffull);
    printf(
        "arca-conformance: remote '%s', driver '%s', features%s%s%s%s%s%s, hashes%s%s; "
        "keys below '%s-<test>/'\n",
        g_remote, storage_driver_name(g_st), has(STORAGE_FEATURE_SERVER_COPY) ? " server_copy" : "",
        has(STORAGE_FEATURE_RANGE_READ) ? " range_read" : "",
        has(STORAGE_FEATURE_MTIME) ? " mtime" : "", has(STORAGE_FEATURE_SYMLINK) ? " symlink" : "",
        has(STORAGE_FEATURE_LIST_MTIME) ? " list_mtime" : "",
        has(STORAGE_FEATURE_CHEAP_REREAD) ? " cheap_reread" : "",
        (g_hashes & STORAGE_HASH_MD5) ? " md5" : "",
        (g_hashes & STORAGE_HASH_SHA256) ? " sha256" : (g_hashes ? "" : " none"), g_run);
    fflush(stdout);

    int passed = 0, failed = 0, xfailed = 0, xpassed = 0;
    double started = now_s();
    char failures[1024] = "";
    size_t fl = 0;
    for (size_t i = 0; i < N_TESTS; i++) {
        const struct conf_test *t = &TESTS[i];
        if (only && *only && !in_list(only, t->name))
            continue;
        bool expect_fail = xfail && in_list(xfail, t->name);
        double t0 = now_s();
        int nf = _cmocka_run_group_tests(t->name, &t->t, 1, NULL, NULL);
        double dt = now_s() - t0;
        const char *verdict;
        if (nf == 0 && !expect_fail) {
            passed++;
            verdict = "ok";
        } else if (nf && expect_fail) {
            xfailed++;
            verdict = "failed, as expected (ARCA_CONFORMANCE_XFAIL: a known bug)";
        } else {
            if (nf) {
                failed++;
                verdict = "FAILED";
            } else {
                xpassed++;
                verdict = "PASSED but is listed in ARCA_CONFORMANCE_XFAIL: the bug is fixed, "
                          "drop it from the list";
            }
            fl += (size_t)snprintf(failures + fl, fl < sizeof(failures) ? sizeof(failures) - fl : 0,
                                   " %s", t->name);
            if (fl >= sizeof(failures))
                fl = sizeof(failures) - 1;
        }
        printf("arca-conformance: %-16s %6.2f s  %s\n", t->name, dt, verdict);
        fflush(stdout);
    }
    printf("arca-conformance: '%s' (%s) in %.1f s: %d passed, %d failed, %d known failures, %d "
           "unexpected passes%s%s\n",
           g_remote, storage_driver_name(g_st), now_s() - started, passed, failed, xfailed, xpassed,
           *failures ? "; not conforming:" : "", failures);
    fflush(stdout);
    rc = failed || xpassed ? 1 : 0;
out:
    storage_close(g_st);
    config_release(&cfg);
    log_clear_secrets();
    curl_global_cleanup();
    return rc;
}
