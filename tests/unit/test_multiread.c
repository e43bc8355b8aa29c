/*
 * test_multiread.c - storage/multiread over the local driver: the bytes come
 * out whole and in order for every split of a file into chunks and streams,
 * with any read size; a file that shrank or grew after it was listed is
 * noticed; a missing file fails at open; closing in the middle stops the
 * stream threads. The oracle is the file's own bytes, read back with stdio.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "storage/local/local.h"
#include "storage/multiread.h"
#include "storage/storage.h"

struct fixture {
    char dir[64];
    struct storage *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct err e;
    snprintf(f->dir, sizeof(f->dir), "/tmp/arca-multiread-XXXXXX");
    if (!mkdtemp(f->dir) || local_storage_open(f->dir, "test-root", &f->st, &e))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    storage_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Write n pseudo-random bytes (seeded) to dir/name; returns them. */
static unsigned char *make_file(const struct fixture *f, const char *name, size_t n, unsigned seed)
{
    unsigned char *b = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)x;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
    return b;
}

/* Read the whole reader with reads of `step` bytes; returns what came. */
static unsigned char *drain(struct storage_reader *rd, size_t step, size_t *len, int *rc,
                            struct err *e)
{
    size_t cap = 1 << 16, n = 0;
    unsigned char *out = malloc(cap);
    *rc = 0;
    for (;;) {
        if (n + step > cap) {
            cap = (n + step) * 2;
            out = realloc(out, cap);
        }
        size_t got = 0;
        *rc = storage_read(rd, out + n, step, &got, e);
        if (*rc || got == 0)
            break;
        assert_true(got <= step);
        n += got;
    }
    *len = n;
    return out;
}

static void test_every_split(void **state)
{
    struct fixture *f = *state;
    const size_t sizes[] = {1, 4095, 4096, 4097, 3 * 4096, 10 * 4096 + 17};
    const size_t chunks[] = {1, 4096, 5000, 1 << 20};
    const unsigned streams[] = {2, 3, 7};
    const size_t steps[] = {1000, 4096, 1 << 20};
    for (size_t a = 0; a < sizeof(sizes) / sizeof(*sizes); a++) {
        unsigned char *want = make_file(f, "f", sizes[a], (unsigned)a + 1);
        for (size_t b = 0; b < sizeof(chunks) / sizeof(*chunks); b++) {
            if (sizes[a] / chunks[b] > 200)
                continue; /* one-byte chunks of a big file: slow, nothing new */
            for (size_t c = 0; c < sizeof(streams) / sizeof(*streams); c++) {
                for (size_t d = 0; d < sizeof(steps) / sizeof(*steps); d++) {
                    struct storage_reader *rd = NULL;
                    struct storage_entry ent;
                    struct err e;
                    int rc = storage_multiread_open(f->st, "f", sizes[a], streams[c], chunks[b],
                                                    &rd, &ent, &e);
                    assert_int_equal(rc, 0);
                    assert_int_equal(ent.size, sizes[a]);
                    storage_entry_clear(&ent);
                    size_t len;
                    unsigned char *got = drain(rd, steps[d], &len, &rc, &e);
                    assert_int_equal(rc, 0);
                    assert_int_equal(len, sizes[a]);
                    assert_memory_equal(got, want, len);
                    free(got);
                    storage_read_close(rd);
                }
            }
        }
        free(want);
    }
}

/* Listed larger than it is: the short chunk fails the read, naming it. */
static void test_shrunk(void **state)
{
    struct fixture *f = *state;
    free(make_file(f, "s", 10000, 7));
    struct storage_reader *rd = NULL;
    struct err e;
    int rc = storage_multiread_open(f->st, "s", 20000, 3, 4096, &rd, NULL, &e);
    assert_int_equal(rc, 0);
    size_t len;
    free(drain(rd, 4096, &len, &rc, &e));
    assert_int_equal(rc, ERR_IO);
    assert_non_null(strstr(e.msg, "'s' changed size while being read"));
    assert_true(len <= 10000);
    storage_read_close(rd);
}

/* Listed smaller than it is: one byte more than listed comes out, as a
 * single stream would give more, so the caller's size check fires. */
static void test_grown(void **state)
{
    struct fixture *f = *state;
    unsigned char *want = make_file(f, "g", 10000, 8);
    struct storage_reader *rd = NULL;
    struct err e;
    int rc = storage_multiread_open(f->st, "g", 9000, 3, 4096, &rd, NULL, &e);
    assert_int_equal(rc, 0);
    size_t len;
    unsigned char *got = drain(rd, 4096, &len, &rc, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(len, 9001);
    assert_memory_equal(got, want, len);
    free(got);
    free(want);
    storage_read_close(rd);
}

static void test_missing_and_bad_args(void **state)
{
    struct fixture *f = *state;
    struct storage_reader *rd = NULL;
    struct err e;
    assert_int_equal(storage_multiread_open(f->st, "nope", 100, 2, 10, &rd, NULL, &e),
                     ERR_NOT_FOUND);
    assert_null(rd);
    assert_int_equal(storage_multiread_open(f->st, "nope", 0, 2, 10, &rd, NULL, &e), ERR_INTERNAL);
    assert_int_equal(storage_multiread_open(f->st, "nope", 10, 1, 10, &rd, NULL, &e), ERR_INTERNAL);
    assert_int_equal(
        storage_multiread_open(f->st, "nope", 10, MULTIREAD_MAX_STREAMS + 1, 10, &rd, NULL, &e),
        ERR_INTERNAL);
}

/* Closing after one read stops and joins the stream threads (ASan/valgrind
 * would see a leak or a use after free; a hang fails the test's timeout). */
static void test_close_early(void **state)
{
    struct fixture *f = *state;
    free(make_file(f, "c", 1 << 20, 9));
    for (int i = 0; i < 20; i++) {
        struct storage_reader *rd = NULL;
        struct err e;
        assert_int_equal(storage_multiread_open(f->st, "c", 1 << 20, 4, 4096, &rd, NULL, &e), 0);
        char buf[100];
        size_t got = 0;
        if (i % 2)
            assert_int_equal(storage_read(rd, buf, sizeof(buf), &got, &e), 0);
        storage_read_close(rd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shrunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_early, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
