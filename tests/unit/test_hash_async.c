/* Unit tests for io/hash_async: the digest of bytes hashed on a worker
 * thread equals the one-shot digest, whatever the chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "io/filter.h"
#include "io/hash_async.h"

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* Feed n bytes in chunks cycling through `steps`, compare with one shot. */
static void check(enum hash_kind kind, size_t n, size_t block, int nblocks, const size_t *steps,
                  size_t nsteps)
{
    unsigned char *data = pattern(n);
    assert_non_null(data);
    unsigned char want[32], got[32];
    size_t want_len = kind == HASH_MD5 ? 16 : 32;
    if (kind == HASH_MD5)
        hash_md5_raw(data, n, want);
    else
        hash_sha256_raw(data, n, want);
    struct async_hash *h = async_hash_new(kind, block, nblocks);
    assert_non_null(h);
    size_t off = 0, i = 0;
    while (off < n) {
        size_t c = steps[i++ % nsteps];
        if (c > n - off)
            c = n - off;
        assert_int_equal(async_hash_update(h, data + off, c), 0);
        off += c;
    }
    assert_int_equal(async_hash_final(h, got, sizeof(got)), want_len);
    assert_memory_equal(got, want, want_len);
    free(data);
}

static void test_empty(void **state)
{
    (void)state;
    size_t steps[] = {1};
    check(HASH_MD5, 0, 4096, 2, steps, 1);
    check(HASH_SHA256, 0, 4096, 2, steps, 1);
}

static void test_odd_chunks_across_blocks(void **state)
{
    (void)state;
    size_t steps[] = {1, 4095, 4096, 4097, 7, 12289, 3};
    /* many more bytes than blocks: the ring wraps many times */
    check(HASH_MD5, 1000003, 4096, 3, steps, 7);
    check(HASH_SHA256, 1000003, 4096, 2, steps, 7);
}

static void test_exact_blocks_and_big_writes(void **state)
{
    (void)state;
    size_t one[] = {65536};
    check(HASH_MD5, 65536 * 9, 65536, 4, one, 1); /* ends exactly on a block */
    size_t big[] = {300000};
    check(HASH_SHA256, 2000000, 65536, 4, big, 1); /* one write spans many blocks */
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(async_hash_new(HASH_MD5, 0, 4));
    assert_null(async_hash_new(HASH_MD5, 4096, 1));
    async_hash_free(NULL);
    /* freeing without final stops the thread (leaks show under ASan) */
    struct async_hash *h = async_hash_new(HASH_SHA256, 4096, 2);
    assert_non_null(h);
    unsigned char buf[10000] = {0};
    assert_int_equal(async_hash_update(h, buf, sizeof(buf)), 0);
    async_hash_free(h);
    /* a digest that does not fit gives 0 */
    h = async_hash_new(HASH_SHA256, 4096, 2);
    assert_non_null(h);
    unsigned char small[16];
    assert_int_equal(async_hash_final(h, small, sizeof(small)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_odd_chunks_across_blocks),
        cmocka_unit_test(test_exact_blocks_and_big_writes),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
