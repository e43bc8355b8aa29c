/*
 * test_buf.c - the bounded growable buffer (src/core/buf.h).
 *
 * The maximum is the point of this type: a network peer must not make us
 * allocate past it, and a refused append must leave the buffer as it was.
 * "Always NUL-terminated" is checked on fresh allocations too.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"

static void test_init_and_append(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_true(b.cap >= 4);
    assert_string_equal(b.data, "abc");
    assert_int_equal(buf_puts(&b, "def"), 0);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    /* binary data with NULs, still terminated after len */
    assert_int_equal(buf_append(&b, "\0x\0", 3), 0);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "abcdef\0x\0", 9);
    assert_int_equal(b.data[9], '\0');
    /* empty append changes nothing */
    assert_int_equal(buf_append(&b, "zzz", 0), 0);
    assert_int_equal(b.len, 9);
    buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    buf_init(&b, 77);
    assert_null(b.data);
    assert_int_equal(b.max, 77);
    /* an empty append still gives a terminated string */
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    buf_release(&b);
    assert_int_equal(b.max, 77); /* release keeps the maximum */
}

static void test_growth_keeps_content(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(0);
    unsigned char expect[100000];
    for (size_t i = 0; i < sizeof(expect); i++)
        expect[i] = (unsigned char)(i * 7 + 3);
    /* odd-sized pieces so growth happens mid-piece */
    size_t off = 0, step = 1;
    while (off < sizeof(expect)) {
        size_t n = step < sizeof(expect) - off ? step : sizeof(expect) - off;
        assert_int_equal(buf_append(&b, expect + off, n), 0);
        off += n;
        step = step * 3 + 1;
        assert_int_equal(b.len, off);
        assert_true(b.cap > b.len);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_memory_equal(b.data, expect, sizeof(expect));
    buf_release(&b);
}

static void test_max_enforced(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(10);
    assert_int_equal(buf_append(&b, "0123456", 7), 0);
    char *before = b.data;
    size_t cap = b.cap;
    /* 7 + 4 > 10: refused, nothing changes */
    assert_int_equal(buf_append(&b, "abcd", 4), ERR_NOMEM);
    assert_int_equal(b.len, 7);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "0123456");
    assert_int_equal(buf_puts(&b, "abcd"), ERR_NOMEM);
    assert_string_equal(b.data, "0123456");
    assert_int_equal(buf_printf(&b, "%s", "abcd"), ERR_NOMEM);
    assert_int_equal(b.len, 7);
    assert_string_equal(b.data, "0123456");
    /* exactly up to the maximum is fine */
    assert_int_equal(buf_append(&b, "789", 3), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    /* and not one byte more */
    assert_int_equal(buf_append(&b, "x", 1), ERR_NOMEM);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    /* reset frees room again */
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_append(&b, "abcdefghij", 10), 0);
    assert_int_equal(buf_append(&b, "k", 1), ERR_NOMEM);
    buf_release(&b);

    /* a single append larger than the maximum, on an empty buffer */
    struct buf c = BUF_INIT(4);
    assert_int_equal(buf_append(&c, "12345", 5), ERR_NOMEM);
    assert_int_equal(c.len, 0);
    assert_int_equal(buf_reserve(&c, 5), ERR_NOMEM);
    assert_int_equal(buf_reserve(&c, 4), 0);
    assert_int_equal(c.len, 0);
    assert_true(c.cap >= 5);
    buf_release(&c);
}

static void test_reserve_overflow(void **state)
{
    (void)state;
    /* sizes whose sum wraps around must be refused, never "succeed" */
    struct buf b = BUF_INIT(0);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), ERR_NOMEM);
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 3), ERR_NOMEM);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    buf_release(&b);

    struct buf m = BUF_INIT(SIZE_MAX);
    assert_int_not_equal(buf_reserve(&m, SIZE_MAX), 0);
    assert_int_equal(buf_append(&m, "abc", 3), 0);
    assert_int_not_equal(buf_reserve(&m, SIZE_MAX - 3), 0);
    assert_int_equal(m.len, 3);
    assert_string_equal(m.data, "abc");
    buf_release(&m);
}

static void test_printf(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(0);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");
    assert_int_equal(b.len, 4);
    /* growth across many appends, each larger than the last capacity */
    char expect[20000];
    size_t off = (size_t)snprintf(expect, sizeof(expect), "42-x");
    for (int i = 0; i < 600; i++) {
        assert_int_equal(buf_printf(&b, "[%05d]", i * 13), 0);
        off += (size_t)snprintf(expect + off, sizeof(expect) - off, "[%05d]", i * 13);
    }
    assert_int_equal(b.len, off);
    assert_string_equal(b.data, expect);
    char big[5000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_printf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, off + sizeof(big) + 1);
    assert_int_equal(b.data[off], '<');
    assert_int_equal(b.data[b.len - 1], '>');
    assert_int_equal(b.data[b.len], '\0');
    buf_release(&b);

    /* printf that fits exactly under a maximum, then one that does not */
    struct buf m = BUF_INIT(6);
    assert_int_equal(buf_printf(&m, "%s", "abc"), 0);
    assert_int_equal(buf_printf(&m, "%d", 123), 0);
    assert_string_equal(m.data, "abc123");
    assert_int_equal(buf_printf(&m, "%d", 4), ERR_NOMEM);
    assert_string_equal(m.data, "abc123");
    assert_int_equal(m.len, 6);
    buf_release(&m);
}

static void test_detach(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(100);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    char *p = buf_detach(&b);
    assert_non_null(p);
    assert_string_equal(p, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    /* the buffer is usable again, and independent of the detached string */
    assert_int_equal(buf_puts(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    assert_string_equal(p, "hello");
    free(p);
    buf_release(&b);

    /* detaching an empty buffer gives "" (never NULL) */
    struct buf e = BUF_INIT(0);
    p = buf_detach(&e);
    assert_non_null(p);
    int first = p[0]; /* not assert_string_equal: an unterminated p would be over-read */
    free(p);
    assert_int_equal(first, '\0');
}

static void test_reserve_keeps_terminated(void **state)
{
    (void)state;
    /* "The data is always NUL-terminated": also right after a reserve on a
     * buffer that never held data */
    struct buf b = BUF_INIT(0);
    assert_int_equal(buf_reserve(&b, 100), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_true(b.cap >= 101);
    assert_int_equal(b.data[0], '\0');
    buf_release(&b);
}

int main(void)
{
    /* fresh heap memory is never zero here, so a missing terminator shows
     * up every time rather than by luck (glibc; ASan fills it anyway) */
    mallopt(M_PERTURB, 0x5a);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_append),
        cmocka_unit_test(test_growth_keeps_content),
        cmocka_unit_test(test_max_enforced),
        cmocka_unit_test(test_reserve_overflow),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_reserve_keeps_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
