/*
 * test_storage_generic.c - the rules storage.c enforces for every driver
 * (src/storage/storage.h, storage_internal.h).
 *
 * A small in-memory driver defined here plays any listing we want (also
 * the out-of-order ones real servers produce), counts every call and every
 * handle it allocates, so the tests can see whether the generic layer
 * reached the driver at all, and whether every handle was given back.
 *
 * Heap accounting: the generic layer's own handles (struct storage_writer,
 * ...) are invisible here, so "the writer is freed" is also checked with
 * glibc's mallinfo2(). glibc's per-thread cache hides frees from
 * mallinfo2, so main() re-executes the test once with the cache turned
 * off (GLIBC_TUNABLES); a calibration step skips the heap checks when the
 * numbers cannot be trusted (other libc, sanitizers: those builds have
 * LeakSanitizer for the same purpose).
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/cancel.h"
#include "core/error.h"
#include "storage/storage.h"
#include "storage/storage_internal.h"

/* ---- the in-memory driver ---------------------------------------------- */

struct mem {
    const char *const *keys; /* what list_next plays, in this order */
    size_t nkeys;
    int commit_result; /* what write_commit returns */
    /* calls that reached the driver */
    int list_open, list_next, list_close, stat, read_open, read, read_close;
    int write_open, write, commit, abort, remove, copy_from, check_root, close;
    int live_handles; /* allocated and not yet freed by the driver */
    char last_copy_src[64];
    struct buf committed;
};

struct mem_list {
    struct mem *m;
    size_t i;
};

struct mem_handle {
    struct mem *m;
    struct buf data;
    size_t pos;
};

static struct mem *mem_of(struct storage *st)
{
    return st->priv;
}

static int mem_list_open(struct storage *st, const char *prefix, void **state, struct err *e)
{
    (void)e;
    assert_non_null(prefix);
    struct mem_list *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->m = mem_of(st);
    l->m->list_open++;
    l->m->live_handles++;
    *state = l;
    return 0;
}

static int mem_list_next(void *state, struct storage_entry *ent, struct err *e)
{
    (void)e;
    struct mem_list *l = state;
    l->m->list_next++;
    if (l->i >= l->m->nkeys)
        return 0;
    ent->key = strdup(l->m->keys[l->i]);
    assert_non_null(ent->key);
    ent->type = STORAGE_TYPE_FILE;
    ent->size = l->i;
    l->i++;
    return 1;
}

static void mem_list_close(void *state)
{
    struct mem_list *l = state;
    l->m->list_close++;
    l->m->live_handles--;
    free(l);
}

static int mem_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    struct mem *m = mem_of(st);
    m->stat++;
    if (strcmp(key, "present"))
        return err_set(e, ERR_NOT_FOUND, "'%s' not found", key);
    ent->key = strdup(key);
    ent->size = 7;
    return 0;
}

static int mem_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length,
                         void **state, struct storage_entry *ent, struct err *e)
{
    (void)key;
    (void)length;
    (void)e;
    struct mem *m = mem_of(st);
    m->read_open++;
    struct mem_handle *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->m = m;
    buf_init(&h->data, 0);
    assert_int_equal(buf_puts(&h->data, "content"), 0);
    h->pos = (size_t)offset;
    if (ent)
        ent->size = 7;
    m->live_handles++;
    *state = h;
    return 0;
}

static int mem_read(void *state, void *out, size_t cap, size_t *got, struct err *e)
{
    (void)e;
    struct mem_handle *h = state;
    h->m->read++;
    size_t n = h->data.len - h->pos;
    if (n > cap)
        n = cap;
    memcpy(out, h->data.data + h->pos, n);
    h->pos += n;
    *got = n;
    return 0;
}

static void handle_free(struct mem_handle *h)
{
    h->m->live_handles--;
    buf_release(&h->data);
    free(h);
}

static void mem_read_close(void *state)
{
    struct mem_handle *h = state;
    h->m->read_close++;
    handle_free(h);
}

static int mem_write_open(struct storage *st, const char *key,
                          const struct storage_write_opts *opts, void **state, struct err *e)
{
    (void)e;
    assert_non_null(opts); /* the generic layer fills defaults */
    assert_non_null(key);
    struct mem *m = mem_of(st);
    m->write_open++;
    struct mem_handle *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->m = m;
    buf_init(&h->data, 0);
    m->live_handles++;
    *state = h;
    return 0;
}

static int mem_write(void *state, const void *data, size_t len, struct err *e)
{
    (void)e;
    struct mem_handle *h = state;
    h->m->write++;
    return buf_append(&h->data, data, len);
}

static int mem_write_commit(void *state, struct err *e)
{
    struct mem_handle *h = state;
    struct mem *m = h->m;
    m->commit++;
    int r = m->commit_result;
    if (!r) {
        buf_reset(&m->committed);
        r = buf_append(&m->committed, h->data.data, h->data.len);
    } else {
        err_set(e, r, "commit failed");
    }
    handle_free(h);
    return r;
}

static void mem_write_abort(void *state)
{
    struct mem_handle *h = state;
    h->m->abort++;
    handle_free(h);
}

static int mem_remove(struct storage *st, const char *key, struct err *e)
{
    (void)key;
    (void)e;
    mem_of(st)->remove++;
    return 0;
}

static int mem_copy_from(struct storage *dst, const char *dst_key, struct storage *src,
                         const char *src_key, const struct storage_entry *src_ent, struct err *e)
{
    (void)dst_key;
    (void)src;
    (void)src_ent;
    (void)e;
    struct mem *m = mem_of(dst);
    m->copy_from++;
    snprintf(m->last_copy_src, sizeof(m->last_copy_src), "%s", src_key);
    return 0;
}

static int mem_check_root(struct storage *st, bool for_write, bool create, struct err *e)
{
    (void)for_write;
    (void)create;
    (void)e;
    mem_of(st)->check_root++;
    return 0;
}

static void mem_close(struct storage *st)
{
    mem_of(st)->close++;
}

static const struct storage_driver mem_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "mem",
    .features = STORAGE_FEATURE_SERVER_COPY | STORAGE_FEATURE_MTIME,
    .hashes = STORAGE_HASH_MD5,
    .list_open = mem_list_open,
    .list_next = mem_list_next,
    .list_close = mem_list_close,
    .stat = mem_stat,
    .read_open = mem_read_open,
    .read = mem_read,
    .read_close = mem_read_close,
    .write_open = mem_write_open,
    .write = mem_write,
    .write_commit = mem_write_commit,
    .write_abort = mem_write_abort,
    .remove = mem_remove,
    .copy_from = mem_copy_from,
    .check_root = mem_check_root,
    .close = mem_close,
};

/* the same driver under another name: a different driver */
static const struct storage_driver mem2_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "mem2",
    .features = STORAGE_FEATURE_SERVER_COPY,
    .list_open = mem_list_open,
    .list_next = mem_list_next,
    .list_close = mem_list_close,
    .stat = mem_stat,
    .read_open = mem_read_open,
    .read = mem_read,
    .read_close = mem_read_close,
    .write_open = mem_write_open,
    .write = mem_write,
    .write_commit = mem_write_commit,
    .write_abort = mem_write_abort,
    .remove = mem_remove,
    .copy_from = mem_copy_from,
    .close = mem_close,
};

/* claims server copy but cannot do it, and has no check_root */
static const struct storage_driver mem_nocopy_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "mem-nocopy",
    .features = STORAGE_FEATURE_SERVER_COPY | STORAGE_FEATURE_RANGE_READ,
    .list_open = mem_list_open,
    .list_next = mem_list_next,
    .list_close = mem_list_close,
    .stat = mem_stat,
    .read_open = mem_read_open,
    .read = mem_read,
    .read_close = mem_read_close,
    .write_open = mem_write_open,
    .write = mem_write,
    .write_commit = mem_write_commit,
    .write_abort = mem_write_abort,
    .remove = mem_remove,
    .copy_from = NULL,
    .close = mem_close,
};

static struct storage *mem_open(struct mem *m, const struct storage_driver *drv,
                                const char *display, const char *endpoint)
{
    buf_init(&m->committed, 0);
    struct storage *st = storage_new(drv, display, endpoint, m);
    assert_non_null(st);
    return st;
}

static void mem_done(struct mem *m)
{
    assert_int_equal(m->live_handles, 0);
    buf_release(&m->committed);
}

static int teardown(void **state)
{
    (void)state;
    cancel_reset();
    return 0;
}

/* ---- heap accounting --------------------------------------------------- */

static bool heap_trusted;

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Does freeing show up in heap_in_use()? */
static void heap_calibrate(void)
{
    heap_trusted = false;
#if defined(__SANITIZE_ADDRESS__)
    return;
#else
    for (int round = 0; round < 3; round++) {
        size_t before = heap_in_use();
        void *p[4];
        for (int i = 0; i < 4; i++)
            p[i] = malloc(24 + 40 * (size_t)i);
        size_t mid = heap_in_use();
        for (int i = 3; i >= 0; i--)
            free(p[i]);
        size_t after = heap_in_use();
        if (!(mid > before && after == before))
            return;
    }
    heap_trusted = true;
#endif
}

/* ---- listing order ----------------------------------------------------- */

/* Play keys through the generic layer; returns what the last call returned
 * and how many entries came out before it. */
static int play(const char *display, const char *const *keys, size_t n, size_t *accepted,
                struct err *e)
{
    struct mem m = {.keys = keys, .nkeys = n};
    struct storage *st = mem_open(&m, &mem_driver, display, "mem://ep");
    struct storage_list *l = NULL;
    err_clear(e);
    assert_int_equal(storage_list_open(st, "", &l, e), 0);
    assert_non_null(l);
    int r;
    *accepted = 0;
    for (;;) {
        struct storage_entry ent;
        memset(&ent, 0x5a, sizeof(ent));
        r = storage_list_next(l, &ent, e);
        if (r != 1) {
            if (r < 0) {
                /* the refused entry is not handed out */
                assert_null(ent.key);
                assert_null(ent.link_target);
            }
            break;
        }
        assert_string_equal(ent.key, keys[*accepted]);
        assert_int_equal(ent.size, *accepted);
        (*accepted)++;
        storage_entry_clear(&ent);
        assert_null(ent.key);
    }
    if (r < 0) {
        /* a refused listing stays refused: it never continues past the
         * out-of-order key */
        struct storage_entry ent;
        int again = storage_list_next(l, &ent, e);
        assert_true(again <= 0);
        if (again == 0)
            assert_int_equal(e->code, r); /* the error is still there to read */
    }
    storage_list_close(l);
    assert_int_equal(m.list_close, 1);
    storage_close(st);
    assert_int_equal(m.close, 1);
    mem_done(&m);
    return r;
}

static void test_sorted_edge_cases_accepted(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "",
        "A",
        "Z",
        "a",
        "a b",
        "a!",
        "a-b",
        "a-b/y",
        "a.txt",
        "a/b",
        "a/b/c",
        "a/bc",
        "a0",
        "a~",
        "b",
        "photos.zip",
        "photos/x",
        "z\x7f",
        "\xc3\xa9", /* é: UTF-8 bytes sort after all ASCII */
        "\xc3\xa9/x",
        "\xe2\x82\xac",     /* € */
        "\xf0\x9f\x98\x80", /* 😀 */
    };
    size_t n = sizeof(keys) / sizeof(keys[0]);
    size_t accepted;
    struct err e;
    assert_int_equal(play("mem://sorted", keys, n, &accepted, &e), 0);
    assert_int_equal(accepted, n);

    /* the comparison itself */
    assert_true(storage_key_cmp("a-b", "a/b") < 0);
    assert_true(storage_key_cmp("a/b", "a0") < 0);
    assert_true(storage_key_cmp("a-b", "a0") < 0);
    assert_true(storage_key_cmp("z", "\xc3\xa9") < 0);
    assert_true(storage_key_cmp("\x7f", "\x80") < 0);
    assert_true(storage_key_cmp("a", "a/") < 0);
    assert_true(storage_key_cmp("a", "a") == 0);
    assert_true(storage_key_cmp("b", "a") > 0);

    /* empty listing */
    assert_int_equal(play("mem://empty", keys, 0, &accepted, &e), 0);
    assert_int_equal(accepted, 0);
}

static void expect_unsorted(const char *const *keys, size_t n, size_t good, const char *at)
{
    size_t accepted;
    struct err e;
    int r = play("mem://bucket/pre", keys, n, &accepted, &e);
    assert_int_equal(r, ERR_UNSORTED);
    assert_int_equal(e.code, ERR_UNSORTED);
    assert_int_equal(accepted, good);
    char want[256];
    snprintf(want, sizeof(want), "listing of 'mem://bucket/pre' is not sorted at '%s'", at);
    if (!strstr(e.msg, want))
        print_error("message: %s\nwanted: %s\n", e.msg, want);
    assert_non_null(strstr(e.msg, want));
}

static void test_unsorted_rejected(void **state)
{
    (void)state;
    static const char *const plain[] = {"a", "c", "b", "d"};
    expect_unsorted(plain, 4, 2, "b");
    /* what s3rver's directory walk produces */
    static const char *const walk1[] = {"a/b", "a-b"};
    expect_unsorted(walk1, 2, 1, "a-b");
    static const char *const walk2[] = {"photos/x", "photos.zip"};
    expect_unsorted(walk2, 2, 1, "photos.zip");
    /* a signed-char comparison would put UTF-8 before ASCII */
    static const char *const utf8[] = {"\xc3\xa9", "z"};
    expect_unsorted(utf8, 2, 1, "z");
    /* a prefix after a longer key */
    static const char *const prefix[] = {"ab", "a"};
    expect_unsorted(prefix, 2, 1, "a");
}

static void test_duplicates_rejected(void **state)
{
    (void)state;
    static const char *const dup[] = {"a", "b", "b", "c"};
    expect_unsorted(dup, 4, 2, "b");
    static const char *const dup_first[] = {"x", "x"};
    expect_unsorted(dup_first, 2, 1, "x");
    static const char *const dup_empty[] = {"", ""};
    expect_unsorted(dup_empty, 2, 1, "");
    /* a page boundary that repeats a key */
    static const char *const page[] = {"k1", "k2", "k3", "k3", "k4"};
    expect_unsorted(page, 5, 3, "k3");
}

/* ---- server-side copy ---------------------------------------------------- */

static void test_copy_from_needs_same_endpoint(void **state)
{
    (void)state;
    struct mem ma = {0}, mb = {0}, mc = {0}, md = {0};
    struct storage *a = mem_open(&ma, &mem_driver, "mem://a", "http://127.0.0.1:9000|AKIA1");
    struct storage *b = mem_open(&mb, &mem_driver, "mem://b", "http://127.0.0.1:9001|AKIA1");
    struct storage *c = mem_open(&mc, &mem_driver, "mem://c", "http://127.0.0.1:9000|AKIA1");
    struct storage *d = mem_open(&md, &mem2_driver, "mem://d", "http://127.0.0.1:9000|AKIA1");
    struct storage_entry ent;
    memset(&ent, 0, sizeof(ent));
    ent.key = (char *)"k";
    ent.size = 1;
    struct err e;

    /* different endpoint: refused before the driver is asked */
    err_clear(&e);
    int r = storage_copy_from(a, "dst", b, "src", &ent, &e);
    assert_true(r < 0);
    assert_int_equal(e.code, r);
    assert_non_null(strstr(e.msg, "mem://a"));
    assert_non_null(strstr(e.msg, "mem://b"));
    assert_int_equal(ma.copy_from + mb.copy_from, 0);

    /* different driver on the same endpoint: refused too */
    err_clear(&e);
    assert_true(storage_copy_from(a, "dst", d, "src", &ent, &e) < 0);
    assert_true(storage_copy_from(d, "dst", a, "src", &ent, &e) < 0);
    assert_int_equal(ma.copy_from + md.copy_from, 0);

    /* same driver, same endpoint: the destination's driver copies */
    err_clear(&e);
    assert_int_equal(storage_copy_from(a, "dst", c, "src-key", &ent, &e), 0);
    assert_int_equal(ma.copy_from, 1);
    assert_int_equal(mc.copy_from, 0);
    assert_string_equal(ma.last_copy_src, "src-key");

    /* within one storage */
    assert_int_equal(storage_copy(a, "k", &ent, "k2", &e), 0);
    assert_int_equal(ma.copy_from, 2);
    assert_string_equal(ma.last_copy_src, "k");

    assert_string_equal(storage_endpoint_id(a), "http://127.0.0.1:9000|AKIA1");
    assert_true(storage_features(a) & STORAGE_FEATURE_SERVER_COPY);

    storage_close(a);
    storage_close(b);
    storage_close(c);
    storage_close(d);
    mem_done(&ma);
    mem_done(&mb);
    mem_done(&mc);
    mem_done(&md);
}

static void test_driver_without_copy(void **state)
{
    (void)state;
    struct mem ma = {0}, mb = {0};
    struct storage *a = mem_open(&ma, &mem_nocopy_driver, "mem://a", "ep");
    struct storage *b = mem_open(&mb, &mem_nocopy_driver, "mem://b", "ep");
    /* the feature is not claimed without the function behind it */
    assert_false(storage_features(a) & STORAGE_FEATURE_SERVER_COPY);
    assert_true(storage_features(a) & STORAGE_FEATURE_RANGE_READ);
    struct storage_entry ent;
    memset(&ent, 0, sizeof(ent));
    struct err e;
    assert_true(storage_copy_from(a, "x", b, "y", &ent, &e) < 0);
    assert_true(storage_copy(a, "y", &ent, "x", &e) < 0);
    /* no check_root: nothing to check */
    assert_int_equal(storage_check_root(a, true, false, &e), 0);
    storage_close(a);
    storage_close(b);
    mem_done(&ma);
    mem_done(&mb);
}

/* ---- writers ------------------------------------------------------------- */

static void write_and_commit(struct storage *st, struct mem *m, int expect)
{
    struct storage_writer *w = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(storage_write_open(st, "dir/file", NULL, &w, &e), 0);
    assert_non_null(w);
    assert_int_equal(m->live_handles, 1);
    assert_int_equal(storage_write(w, "hello ", 6, &e), 0);
    assert_int_equal(storage_write(w, "world", 5, &e), 0);
    assert_int_equal(storage_write_commit(w, &e), expect);
    assert_int_equal(m->live_handles, 0);
}

static void test_write_commit_frees_writer(void **state)
{
    (void)state;
    struct mem m = {0};
    struct storage *st = mem_open(&m, &mem_driver, "mem://w", "ep");

    /* success: committed once, never aborted, the driver state freed */
    write_and_commit(st, &m, 0);
    assert_int_equal(m.commit, 1);
    assert_int_equal(m.abort, 0);
    assert_int_equal(m.committed.len, 11);
    assert_memory_equal(m.committed.data, "hello world", 11);

    /* failure: the writer is freed either way */
    m.commit_result = ERR_NET;
    write_and_commit(st, &m, ERR_NET);
    assert_int_equal(m.commit, 2);
    assert_int_equal(m.abort, 0);
    m.commit_result = 0;

    /* abort frees too */
    struct storage_writer *w = NULL;
    struct err e;
    assert_int_equal(storage_write_open(st, "x", NULL, &w, &e), 0);
    storage_write_abort(w);
    assert_int_equal(m.abort, 1);
    assert_int_equal(m.live_handles, 0);
    storage_write_abort(NULL);

    /* and the generic layer's own handle is freed as well */
    heap_calibrate();
    if (heap_trusted) {
        write_and_commit(st, &m, 0); /* warm up */
        size_t before = heap_in_use();
        write_and_commit(st, &m, 0);
        size_t after_ok = heap_in_use();
        m.commit_result = ERR_IO;
        write_and_commit(st, &m, ERR_IO);
        size_t after_fail = heap_in_use();
        m.commit_result = 0;
        assert_int_equal(storage_write_open(st, "x", NULL, &w, &e), 0);
        storage_write_abort(w);
        size_t after_abort = heap_in_use();
        if (after_ok != before || after_fail != before || after_abort != before)
            print_error("heap in use: %zu before, %zu after commit, %zu after failed commit, %zu "
                        "after abort\n",
                        before, after_ok, after_fail, after_abort);
        assert_int_equal(after_ok, before);
        assert_int_equal(after_fail, before);
        assert_int_equal(after_abort, before);
    } else {
        print_message("heap accounting not trusted here; relying on the driver's counters\n");
    }
    storage_close(st);
    mem_done(&m);
}

/* ---- reads --------------------------------------------------------------- */

static void test_reads(void **state)
{
    (void)state;
    struct mem m = {0};
    struct storage *st = mem_open(&m, &mem_driver, "mem://r", "ep");
    struct storage_reader *rd = NULL;
    struct storage_entry ent;
    struct err e;
    char out[16];
    size_t got;

    memset(&ent, 0x5a, sizeof(ent));
    assert_int_equal(storage_read_open(st, "k", 0, -1, &rd, &ent, &e), 0);
    assert_int_equal(ent.size, 7);
    assert_null(ent.key); /* the generic layer cleared it first */
    assert_true(ent.mtime_ns == STORAGE_MTIME_UNKNOWN);
    assert_int_equal(storage_read(rd, out, 4, &got, &e), 0);
    assert_int_equal(got, 4);
    assert_int_equal(storage_read(rd, out + 4, sizeof(out) - 4, &got, &e), 0);
    assert_int_equal(got, 3);
    assert_memory_equal(out, "content", 7);
    assert_int_equal(storage_read(rd, out, sizeof(out), &got, &e), 0);
    assert_int_equal(got, 0);
    storage_read_close(rd);
    storage_read_close(NULL);
    assert_int_equal(m.live_handles, 0);

    /* a range from a driver that cannot read ranges: refused up front */
    int opens = m.read_open;
    rd = (struct storage_reader *)&m;
    assert_true(storage_read_open(st, "k", 3, -1, &rd, NULL, &e) < 0);
    assert_null(rd);
    assert_true(storage_read_open(st, "k", 0, 2, &rd, NULL, &e) < 0);
    assert_int_equal(m.read_open, opens);

    /* stat clears the entry and passes errors through */
    memset(&ent, 0x5a, sizeof(ent));
    assert_int_equal(storage_stat(st, "absent", &ent, &e), ERR_NOT_FOUND);
    assert_null(ent.key);
    assert_int_equal(storage_stat(st, "present", &ent, &e), 0);
    assert_string_equal(ent.key, "present");
    assert_true(ent.mtime_ns == STORAGE_MTIME_UNKNOWN);
    storage_entry_clear(&ent);

    storage_close(st);
    mem_done(&m);
}

/* ---- cancellation -------------------------------------------------------- */

static void test_cancellation(void **state)
{
    (void)state;
    static const char *const keys[] = {"a", "b", "c"};
    struct mem m = {.keys = keys, .nkeys = 3};
    struct mem m2 = {0};
    struct storage *st = mem_open(&m, &mem_driver, "mem://c", "ep");
    struct storage *st2 = mem_open(&m2, &mem_driver, "mem://c2", "ep");
    struct err e;
    struct storage_entry ent, src;
    memset(&src, 0, sizeof(src));

    /* handles opened before the request */
    struct storage_list *l = NULL;
    assert_int_equal(storage_list_open(st, "", &l, &e), 0);
    assert_int_equal(storage_list_next(l, &ent, &e), 1);
    storage_entry_clear(&ent);
    struct storage_reader *rd = NULL;
    assert_int_equal(storage_read_open(st, "k", 0, -1, &rd, NULL, &e), 0);
    struct storage_writer *w = NULL, *w2 = NULL;
    assert_int_equal(storage_write_open(st, "k", NULL, &w, &e), 0);
    assert_int_equal(storage_write_open(st, "k2", NULL, &w2, &e), 0);
    struct mem before = m;

    cancel_request();

    err_clear(&e);
    assert_int_equal(storage_list_next(l, &ent, &e), ERR_CANCELLED);
    assert_int_equal(e.code, ERR_CANCELLED);
    char buf[8];
    size_t got = 99;
    assert_int_equal(storage_read(rd, buf, sizeof(buf), &got, &e), ERR_CANCELLED);
    assert_int_equal(got, 0);
    assert_int_equal(storage_write(w, "x", 1, &e), ERR_CANCELLED);
    /* a cancelled commit does not publish: it aborts, and frees */
    assert_int_equal(storage_write_commit(w, &e), ERR_CANCELLED);
    assert_int_equal(m.commit, before.commit);
    assert_int_equal(m.abort, before.abort + 1);

    struct storage_list *l2 = (struct storage_list *)&m;
    assert_int_equal(storage_list_open(st, "", &l2, &e), ERR_CANCELLED);
    assert_null(l2);
    assert_int_equal(storage_stat(st, "present", &ent, &e), ERR_CANCELLED);
    struct storage_reader *rd2 = (struct storage_reader *)&m;
    assert_int_equal(storage_read_open(st, "k", 0, -1, &rd2, NULL, &e), ERR_CANCELLED);
    assert_null(rd2);
    struct storage_writer *w3 = (struct storage_writer *)&m;
    assert_int_equal(storage_write_open(st, "k", NULL, &w3, &e), ERR_CANCELLED);
    assert_null(w3);
    assert_int_equal(storage_remove(st, "k", &e), ERR_CANCELLED);
    assert_int_equal(storage_copy_from(st, "k", st2, "j", &src, &e), ERR_CANCELLED);
    assert_int_equal(storage_copy(st, "j", &src, "k", &e), ERR_CANCELLED);

    /* none of it reached the driver */
    assert_int_equal(m.list_open, before.list_open);
    assert_int_equal(m.list_next, before.list_next);
    assert_int_equal(m.stat, before.stat);
    assert_int_equal(m.read_open, before.read_open);
    assert_int_equal(m.read, before.read);
    assert_int_equal(m.write_open, before.write_open);
    assert_int_equal(m.write, before.write);
    assert_int_equal(m.remove, before.remove);
    assert_int_equal(m.copy_from, before.copy_from);

    /* closing and aborting still work while cancelled */
    storage_write_abort(w2);
    storage_read_close(rd);
    storage_list_close(l);
    assert_int_equal(m.live_handles, 0);

    cancel_reset();
    assert_int_equal(storage_remove(st, "k", &e), 0);
    assert_int_equal(m.remove, before.remove + 1);
    storage_close(st);
    storage_close(st2);
    mem_done(&m);
    mem_done(&m2);
}

/* ---- entries and accessors ----------------------------------------------- */

static void test_entries_and_accessors(void **state)
{
    (void)state;
    struct storage_entry a, b;
    memset(&a, 0, sizeof(a));
    a.key = strdup("dir/link");
    a.link_target = strdup("../target");
    a.type = STORAGE_TYPE_SYMLINK;
    a.size = 9;
    a.mtime_ns = 1700000000123456789ll;
    a.mode = 0644;
    snprintf(a.md5, sizeof(a.md5), "%s", "d41d8cd98f00b204e9800998ecf8427e");
    assert_int_equal(storage_entry_copy(&b, &a), 0);
    assert_ptr_not_equal(b.key, a.key);
    assert_ptr_not_equal(b.link_target, a.link_target);
    assert_string_equal(b.key, "dir/link");
    assert_string_equal(b.link_target, "../target");
    assert_int_equal(b.type, STORAGE_TYPE_SYMLINK);
    assert_int_equal(b.size, 9);
    assert_true(b.mtime_ns == 1700000000123456789ll);
    assert_int_equal(b.mode, 0644);
    assert_string_equal(b.md5, "d41d8cd98f00b204e9800998ecf8427e");
    storage_entry_clear(&a);
    assert_null(a.key);
    assert_null(a.link_target);
    assert_true(a.mtime_ns == STORAGE_MTIME_UNKNOWN);
    assert_string_equal(b.key, "dir/link"); /* independent */
    storage_entry_clear(&b);
    storage_entry_clear(NULL);

    struct mem m = {0};
    struct storage *st = mem_open(&m, &mem_driver, "s3://b/p", "ep-id");
    assert_string_equal(storage_display(st), "s3://b/p");
    assert_string_equal(storage_endpoint_id(st), "ep-id");
    assert_string_equal(storage_driver_name(st), "mem");
    assert_int_equal(storage_hashes(st), STORAGE_HASH_MD5);
    assert_int_equal(storage_features(st), STORAGE_FEATURE_SERVER_COPY | STORAGE_FEATURE_MTIME);
    struct err e;
    assert_int_equal(storage_check_root(st, true, true, &e), 0);
    assert_int_equal(m.check_root, 1);
    storage_close(st);
    assert_int_equal(m.close, 1);
    storage_close(NULL);
    mem_done(&m);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* once: run again with glibc's thread cache off, for heap accounting */
    if (!getenv("ARCA_TEST_REEXEC")) {
        char tun[1024];
        const char *old = getenv("GLIBC_TUNABLES");
        snprintf(tun, sizeof(tun), "%s%sglibc.malloc.tcache_count=0", old ? old : "",
                 old && *old ? ":" : "");
        setenv("GLIBC_TUNABLES", tun, 1);
        setenv("ARCA_TEST_REEXEC", "1", 1);
        execv("/proc/self/exe", argv);
        /* not possible: go on, the calibration will tell */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sorted_edge_cases_accepted, teardown),
        cmocka_unit_test_teardown(test_unsorted_rejected, teardown),
        cmocka_unit_test_teardown(test_duplicates_rejected, teardown),
        cmocka_unit_test_teardown(test_copy_from_needs_same_endpoint, teardown),
        cmocka_unit_test_teardown(test_driver_without_copy, teardown),
        cmocka_unit_test_teardown(test_write_commit_frees_writer, teardown),
        cmocka_unit_test_teardown(test_reads, teardown),
        cmocka_unit_test_teardown(test_cancellation, teardown),
        cmocka_unit_test_teardown(test_entries_and_accessors, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
