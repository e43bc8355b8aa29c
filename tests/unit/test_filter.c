/*
 * test_filter.c - stackable byte filters and hash helpers (src/io/filter.h).
 *
 * Digests are compared with OpenSSL's one-shot EVP_Digest and with the
 * published test vectors (FIPS 180-2 "abc", RFC 1321, RFC 4648 base64), so
 * a chain that drops, repeats or reorders bytes at block edges shows up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/error.h"
#include "io/filter.h"
#include "io/ratelimit.h"

#define MIB (1024 * 1024)

static void oracle_hex(const EVP_MD *md, const void *data, size_t len, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, d, &n, md, NULL), 1);
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Run data through a lone hash filter in pieces of the given sizes
 * (cycled), and return its hex digest. */
static void filter_digest(enum hash_kind kind, const unsigned char *data, size_t len,
                          const size_t *pieces, size_t npieces, char *hex, size_t cap)
{
    struct err e;
    struct filter *h = filter_hash_new(kind);
    assert_non_null(h);
    size_t off = 0, i = 0;
    while (off < len) {
        size_t n = pieces[i++ % npieces];
        if (n > len - off)
            n = len - off;
        assert_int_equal(filter_write(h, data + off, n, &e), 0);
        off += n;
    }
    assert_int_equal(filter_finish(h, &e), 0);
    filter_hash_hex(h, hex, cap);
    filter_chain_free(h);
}

static void test_known_vectors(void **state)
{
    (void)state;
    size_t one[] = {1};
    size_t whole[] = {1 << 30};
    char hex[129];

    filter_digest(HASH_SHA256, (const unsigned char *)"abc", 3, whole, 1, hex, sizeof(hex));
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    filter_digest(HASH_SHA256, (const unsigned char *)"abc", 3, one, 1, hex, sizeof(hex));
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    filter_digest(HASH_SHA256, (const unsigned char *)"", 0, one, 1, hex, sizeof(hex));
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    filter_digest(HASH_MD5, (const unsigned char *)"abc", 3, one, 1, hex, sizeof(hex));
    assert_string_equal(hex, "900150983cd24fb0d6963f7d28e17f72");
    filter_digest(HASH_MD5, (const unsigned char *)"", 0, one, 1, hex, sizeof(hex));
    assert_string_equal(hex, "d41d8cd98f00b204e9800998ecf8427e");

    /* one-shot helpers */
    char h65[65];
    hash_sha256_hex("abc", 3, h65);
    assert_string_equal(h65, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hash_sha256_hex("", 0, h65);
    assert_string_equal(h65, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    unsigned char raw[32];
    hash_sha256_raw("abc", 3, raw);
    assert_int_equal(raw[0], 0xba);
    assert_int_equal(raw[31], 0xad);
    unsigned char md5[16];
    hash_md5_raw("abc", 3, md5);
    assert_int_equal(md5[0], 0x90);
    assert_int_equal(md5[15], 0x72);
}

static void test_megabyte_odd_chunks(void **state)
{
    (void)state;
    unsigned char *zeros = calloc(1, MIB);
    unsigned char *noise = malloc(MIB);
    assert_non_null(zeros);
    assert_non_null(noise);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < MIB; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise[i] = (unsigned char)x;
    }
    static const size_t odd[] = {1, 3, 63, 64, 65, 127, 4093, 65537, 7};
    static const size_t whole[] = {MIB};
    char want[129], got[129];
    const unsigned char *inputs[] = {zeros, noise};
    for (size_t k = 0; k < 2; k++) {
        oracle_hex(EVP_sha256(), inputs[k], MIB, want);
        filter_digest(HASH_SHA256, inputs[k], MIB, odd, sizeof(odd) / sizeof(odd[0]), got,
                      sizeof(got));
        assert_string_equal(got, want);
        filter_digest(HASH_SHA256, inputs[k], MIB, whole, 1, got, sizeof(got));
        assert_string_equal(got, want);
        char h65[65];
        hash_sha256_hex(inputs[k], MIB, h65);
        assert_string_equal(h65, want);

        oracle_hex(EVP_md5(), inputs[k], MIB, want);
        filter_digest(HASH_MD5, inputs[k], MIB, odd, sizeof(odd) / sizeof(odd[0]), got,
                      sizeof(got));
        assert_string_equal(got, want);
    }
    /* the well-known SHA-256 of 1 MiB of zeros */
    filter_digest(HASH_SHA256, zeros, MIB, odd, sizeof(odd) / sizeof(odd[0]), got, sizeof(got));
    assert_string_equal(got, "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58");
    free(zeros);
    free(noise);
}

static void test_hash_raw_and_small_caps(void **state)
{
    (void)state;
    struct err e;
    struct filter *h = filter_hash_new(HASH_SHA256);
    assert_non_null(h);
    assert_int_equal(filter_write(h, "abc", 3, &e), 0);
    assert_int_equal(filter_finish(h, &e), 0);
    unsigned char raw[64];
    assert_int_equal(filter_hash_raw(h, raw, sizeof(raw)), 32);
    unsigned char want[32];
    hash_sha256_raw("abc", 3, want);
    assert_memory_equal(raw, want, 32);
    /* too small: nothing written, 0 / "" returned */
    assert_int_equal(filter_hash_raw(h, raw, 31), 0);
    char hex[65];
    memset(hex, 'x', sizeof(hex));
    filter_hash_hex(h, hex, 64);
    assert_string_equal(hex, "");
    filter_hash_hex(h, hex, 65);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    filter_chain_free(h);

    h = filter_hash_new(HASH_MD5);
    assert_non_null(h);
    assert_int_equal(filter_finish(h, &e), 0);
    assert_int_equal(filter_hash_raw(h, raw, sizeof(raw)), 16);
    char m33[33];
    filter_hash_hex(h, m33, sizeof(m33));
    assert_string_equal(m33, "d41d8cd98f00b204e9800998ecf8427e");
    filter_chain_free(h);
}

/* ---- chains ------------------------------------------------------------ */

struct sink_ctx {
    struct buf got;
    int calls;
    int fail_at_call; /* 0: never */
};

static int collect(void *ctx, const void *data, size_t len, struct err *e)
{
    struct sink_ctx *s = ctx;
    s->calls++;
    if (s->fail_at_call && s->calls == s->fail_at_call)
        return err_set(e, ERR_IO, "disk full");
    return buf_append(&s->got, data, len);
}

static void test_chain_passes_bytes_through(void **state)
{
    (void)state;
    struct err e;
    _Atomic uint64_t count = 0;
    struct sink_ctx s = {BUF_INIT(0), 0, 0};
    struct ratelimit *rl = ratelimit_new(0, NULL); /* unlimited: never sleeps */
    assert_non_null(rl);
    struct filter *sha = filter_hash_new(HASH_SHA256);
    struct filter *md5 = filter_hash_new(HASH_MD5);
    struct filter *fs[] = {sha, filter_counter_new(&count), md5, filter_ratelimit_new(rl),
                           filter_sink_new(collect, &s)};
    struct filter *chain = filter_chain(fs, 5);
    assert_ptr_equal(chain, sha);

    size_t len = 300000;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 8));
    size_t off = 0, step = 1;
    while (off < len) {
        size_t n = step < len - off ? step : len - off;
        assert_int_equal(filter_write(chain, data + off, n, &e), 0);
        off += n;
        step = step * 2 + 1;
    }
    assert_int_equal(filter_write(chain, data, 0, &e), 0); /* empty write: nothing */
    assert_int_equal(filter_finish(chain, &e), 0);

    assert_int_equal(atomic_load(&count), len);
    assert_int_equal(s.got.len, len);
    assert_memory_equal(s.got.data, data, len);
    char want[129], got[129];
    oracle_hex(EVP_sha256(), data, len, want);
    filter_hash_hex(sha, got, sizeof(got));
    assert_string_equal(got, want);
    oracle_hex(EVP_md5(), data, len, want);
    filter_hash_hex(md5, got, sizeof(got));
    assert_string_equal(got, want);

    filter_chain_free(chain);
    ratelimit_free(rl);
    buf_release(&s.got);
    free(data);
}

static void test_counter_shared(void **state)
{
    (void)state;
    struct err e;
    _Atomic uint64_t count = 5;
    struct filter *a = filter_counter_new(&count);
    struct filter *b = filter_counter_new(&count);
    assert_non_null(a);
    assert_non_null(b);
    /* a lone counter (no next) counts and drops */
    assert_int_equal(filter_write(a, "12345", 5, &e), 0);
    assert_int_equal(filter_write(b, "123", 3, &e), 0);
    assert_int_equal(filter_write(a, "1", 1, &e), 0);
    assert_int_equal(atomic_load(&count), 5 + 5 + 3 + 1);
    assert_int_equal(filter_finish(a, &e), 0);
    filter_chain_free(a);
    filter_chain_free(b);
}

static void test_sink_error_propagates(void **state)
{
    (void)state;
    struct err e;
    err_clear(&e);
    _Atomic uint64_t count = 0;
    struct sink_ctx s = {BUF_INIT(0), 0, 2};
    struct filter *fs[] = {filter_hash_new(HASH_SHA256), filter_counter_new(&count),
                           filter_sink_new(collect, &s)};
    struct filter *chain = filter_chain(fs, 3);
    assert_non_null(chain);
    assert_int_equal(filter_write(chain, "aaaa", 4, &e), 0);
    assert_int_equal(filter_write(chain, "bbbb", 4, &e), ERR_IO);
    assert_int_equal(e.code, ERR_IO);
    assert_string_equal(e.msg, "disk full");
    assert_int_equal(s.got.len, 4);
    filter_chain_free(chain);
    buf_release(&s.got);
}

static void test_chain_with_failed_allocation(void **state)
{
    (void)state;
    /* NULL first: everything else freed, NULL returned */
    _Atomic uint64_t count = 0;
    struct filter *first[] = {NULL, filter_counter_new(&count), filter_hash_new(HASH_MD5)};
    struct filter *r = filter_chain(first, 3);
    assert_null(r);

    /* a failure in the middle must not give a shorter chain that silently
     * drops everything after the hole (the others are freed: ASan checks) */
    struct filter *middle[] = {filter_hash_new(HASH_SHA256), NULL, filter_counter_new(&count)};
    assert_non_null(middle[0]);
    assert_non_null(middle[2]);
    r = filter_chain(middle, 3);
    assert_null(r);
    assert_null(filter_chain(middle, 0));
}

/* ---- encodings --------------------------------------------------------- */

static void test_base64_and_hex(void **state)
{
    (void)state;
    /* RFC 4648 section 10 */
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'x', sizeof(out));
        size_t n = strlen(v[i].in);
        base64_encode((const unsigned char *)v[i].in, n, out,
                      4 * ((n + 2) / 3) + 1); /* exact cap */
        assert_string_equal(out, v[i].out);
    }
    /* binary, all byte values: the Content-MD5 of "" */
    unsigned char md5[16];
    hash_md5_raw("", 0, md5);
    base64_encode(md5, 16, out, sizeof(out));
    assert_string_equal(out, "1B2M2Y8AsgTpgAmY7PhCfg==");
    unsigned char ff[3] = {0xff, 0xfe, 0x00};
    base64_encode(ff, 3, out, sizeof(out));
    assert_string_equal(out, "//4A");
    /* cap too small: "" and nothing past cap */
    memset(out, 'x', sizeof(out));
    base64_encode((const unsigned char *)"foobar", 6, out, 8);
    assert_string_equal(out, "");
    assert_int_equal(out[1], 'x');

    char hex[8];
    unsigned char b[3] = {0x00, 0xab, 0xff};
    hex_encode(b, 3, hex);
    assert_string_equal(hex, "00abff");
    hex_encode(b, 0, hex);
    assert_string_equal(hex, "");
}

/* ---- filter_thread ----------------------------------------------------- */

struct collect {
    struct buf out;
    size_t fail_after; /* 0: never */
};

static int collect_fn(void *ctx, const void *data, size_t len, struct err *e)
{
    struct collect *c = ctx;
    if (c->fail_after && c->out.len + len > c->fail_after)
        return err_set(e, ERR_IO, "disk full at byte %zu", c->out.len);
    return buf_append(&c->out, data, len) ? ERR_NOMEM : 0;
}

/* Bytes come out whole and in order across the thread, in any pieces. */
static void test_thread_passes_in_order(void **state)
{
    (void)state;
    size_t n = 10 * 1000 * 1000 + 7;
    unsigned char *d = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)(i * 131 + i / 977);
    struct collect c = {.fail_after = 0};
    buf_init(&c.out, 0);
    struct filter *parts[] = {filter_thread_new(4096, 3), filter_sink_new(collect_fn, &c)};
    struct filter *chain = filter_chain(parts, 2);
    assert_non_null(chain);
    struct err e;
    size_t step = 1;
    for (size_t off = 0; off < n; off += step, step = step * 3 % 100003 + 1)
        assert_int_equal(filter_write(chain, d + off, off + step > n ? n - off : step, &e), 0);
    assert_int_equal(filter_finish(chain, &e), 0);
    assert_int_equal(c.out.len, n);
    assert_memory_equal(c.out.data, d, n);
    filter_chain_free(chain);
    buf_release(&c.out);
    free(d);
}

/* An error downstream reaches the writer (a later write, or finish), and a
 * chain dropped without finish does not hang. */
static void test_thread_errors_and_abandon(void **state)
{
    (void)state;
    char block[1000];
    memset(block, 'x', sizeof(block));
    struct collect c = {.fail_after = 50000};
    buf_init(&c.out, 0);
    struct filter *parts[] = {filter_thread_new(1000, 2), filter_sink_new(collect_fn, &c)};
    struct filter *chain = filter_chain(parts, 2);
    struct err e;
    int r = 0;
    for (int i = 0; i < 1000 && !r; i++)
        r = filter_write(chain, block, sizeof(block), &e);
    if (!r)
        r = filter_finish(chain, &e);
    assert_int_equal(r, ERR_IO);
    assert_non_null(strstr(e.msg, "disk full"));
    filter_chain_free(chain);
    buf_release(&c.out);

    struct collect c2 = {.fail_after = 0};
    buf_init(&c2.out, 0);
    struct filter *p2[] = {filter_thread_new(1000, 2), filter_sink_new(collect_fn, &c2)};
    chain = filter_chain(p2, 2);
    for (int i = 0; i < 10; i++)
        assert_int_equal(filter_write(chain, block, sizeof(block), &e), 0);
    filter_chain_free(chain); /* no finish */
    buf_release(&c2.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_thread_passes_in_order),
        cmocka_unit_test(test_thread_errors_and_abandon),
        cmocka_unit_test(test_megabyte_odd_chunks),
        cmocka_unit_test(test_hash_raw_and_small_caps),
        cmocka_unit_test(test_chain_passes_bytes_through),
        cmocka_unit_test(test_counter_shared),
        cmocka_unit_test(test_sink_error_propagates),
        cmocka_unit_test(test_chain_with_failed_allocation),
        cmocka_unit_test(test_base64_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
