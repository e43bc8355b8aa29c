/*
 * test_storage_local.c - the local filesystem driver, through the generic
 * storage_* layer (so the generic order check runs on every listing).
 *
 * Each test works in its own mkdtemp directory. Listing order is checked
 * against hand-written sequences for the known traps and against
 * `find | LC_ALL=C sort` (an independent oracle) for a random tree; data
 * round trips are checked with OpenSSL's SHA-256 and by reading the files
 * back with stdio.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <grp.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "storage/local/local.h"
#include "storage/storage.h"

#define MIB (1024 * 1024)

/* ---- helpers ----------------------------------------------------------- */

struct fixture {
    char dir[64];  /* mkdtemp dir */
    char root[96]; /* dir/root: the storage root */
    struct storage *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct err e;
    umask(022);
    snprintf(f->dir, sizeof(f->dir), "/tmp/arca-local-XXXXXX");
    if (!f->dir[0] || !mkdtemp(f->dir))
        return -1;
    snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
    if (mkdir(f->root, 0755) < 0)
        return -1;
    if (local_storage_open(f->root, "test-root", &f->st, &e))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[256];
    storage_close(f->st);
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", f->dir, f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void path_of(const struct fixture *f, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->root, rel);
}

/* mkdir -p of the parents of root/rel, then write content (rel as text
 * when content is NULL). */
static void put_file(const struct fixture *f, const char *rel, const char *content)
{
    char p[8192];
    path_of(f, rel, p, sizeof(p));
    for (char *s = p + strlen(f->root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0)
                assert_int_equal(errno, EEXIST);
            *s = '/';
        }
    }
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    const char *c = content ? content : rel;
    assert_int_equal(fwrite(c, 1, strlen(c), fp), strlen(c));
    assert_int_equal(fclose(fp), 0);
}

static void put_dir(const struct fixture *f, const char *rel)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", f->root, rel);
    assert_int_equal(system(cmd), 0);
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* The keys of a listing, one per line; asserts the listing succeeds. */
static char *list_keys(struct storage *st, const char *prefix)
{
    struct storage_list *l;
    struct storage_entry ent;
    struct err e;
    struct buf out = BUF_INIT(0);
    int r = storage_list_open(st, prefix, &l, &e);
    if (r)
        fail_msg("list_open('%s'): %s", prefix, e.msg);
    while ((r = storage_list_next(l, &ent, &e)) == 1) {
        assert_int_equal(buf_puts(&out, ent.key), 0);
        assert_int_equal(buf_puts(&out, "\n"), 0);
        storage_entry_clear(&ent);
    }
    if (r)
        fail_msg("list_next: %s", e.msg);
    storage_list_close(l);
    assert_int_equal(buf_puts(&out, ""), 0);
    return buf_detach(&out);
}

static void assert_listing(struct storage *st, const char *prefix, const char *expected)
{
    char *got = list_keys(st, prefix);
    if (strcmp(got, expected) != 0)
        fail_msg("listing of prefix '%s'\n--- got:\n%s--- expected:\n%s", prefix, got, expected);
    free(got);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_int_equal(mdlen, 32);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static unsigned char *pattern(size_t len, uint32_t seed)
{
    unsigned char *b = malloc(len);
    assert_non_null(b);
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)x;
    }
    return b;
}

/* Write data under key with the given opts through the storage layer, in
 * uneven chunks. */
static void store_put(struct storage *st, const char *key, const void *data, size_t len,
                      const struct storage_write_opts *opts)
{
    struct storage_writer *w;
    struct err e;
    if (storage_write_open(st, key, opts, &w, &e))
        fail_msg("write_open('%s'): %s", key, e.msg);
    const char *p = data;
    size_t chunk = 777777;
    while (len) {
        size_t n = len < chunk ? len : chunk;
        if (storage_write(w, p, n, &e))
            fail_msg("write('%s'): %s", key, e.msg);
        p += n;
        len -= n;
    }
    if (storage_write_commit(w, &e))
        fail_msg("commit('%s'): %s", key, e.msg);
}

/* Read [offset, offset+length) of key through the storage layer. */
static unsigned char *store_get(struct storage *st, const char *key, uint64_t offset,
                                int64_t length, size_t *len)
{
    struct storage_reader *rd;
    struct err e;
    struct buf out = BUF_INIT(0);
    size_t cap = MIB + 17;
    unsigned char *tmp = malloc(cap);
    assert_non_null(tmp);
    if (storage_read_open(st, key, offset, length, &rd, NULL, &e))
        fail_msg("read_open('%s'): %s", key, e.msg);
    for (;;) {
        size_t got;
        if (storage_read(rd, tmp, cap, &got, &e))
            fail_msg("read('%s'): %s", key, e.msg);
        if (!got)
            break;
        assert_int_equal(buf_append(&out, tmp, got), 0);
    }
    storage_read_close(rd);
    free(tmp);
    *len = out.len;
    assert_int_equal(buf_reserve(&out, 1), 0);
    return (unsigned char *)buf_detach(&out);
}

/* Captured log lines. */
static struct buf log_lines;
static void log_capture(const char *line, void *ctx)
{
    (void)ctx;
    buf_puts(&log_lines, line);
    buf_puts(&log_lines, "\n");
}

/* ---- listing order ----------------------------------------------------- */

static const char *const trap_files[] = {
    "photos/x",
    "photos.zip",
    "photos-2/q",
    "photos/y/z",
    "a/b",
    "a0",
    "a-b",
    "a.txt",
    "a/c/d",
    "b c/d e.txt",
    "deep/1/2/3/f",
    "e/1",
    "z~",
    "\xc3\xa9/1",
    "\xe2\x82\xac.txt",
    "A",
    "0",
    "x",
    "x.y/z",
    "ab.c",
    "ab/x",
};

static const char *const trap_sorted = "0\n"
                                       "A\n"
                                       "a-b\n"
                                       "a.txt\n"
                                       "a/b\n"
                                       "a/c/d\n"
                                       "a0\n"
                                       "ab.c\n"
                                       "ab/x\n"
                                       "b c/d e.txt\n"
                                       "deep/1/2/3/f\n"
                                       "e/1\n"
                                       "photos-2/q\n"
                                       "photos.zip\n"
                                       "photos/x\n"
                                       "photos/y/z\n"
                                       "x\n"
                                       "x.y/z\n"
                                       "z~\n"
                                       "\xc3\xa9/1\n"
                                       "\xe2\x82\xac.txt\n";

static void put_traps(struct fixture *f)
{
    for (size_t i = 0; i < sizeof(trap_files) / sizeof(trap_files[0]); i++)
        put_file(f, trap_files[i], NULL);
    put_dir(f, "empty");
    put_dir(f, "a/empty/deeper");
    put_dir(f, "zz-only-dirs/x/y");
}

static void test_order_traps(void **state)
{
    struct fixture *f = *state;
    put_traps(f);

    /* the expected text itself must be in byte order */
    char *copy = strdup(trap_sorted);
    char *prev = NULL;
    for (char *s = strtok(copy, "\n"); s; s = strtok(NULL, "\n")) {
        if (prev)
            assert_true(strcmp(prev, s) < 0);
        prev = s;
    }
    free(copy);

    assert_listing(f->st, "", trap_sorted);

    /* entry fields */
    struct storage_list *l;
    struct storage_entry ent;
    struct err e;
    assert_int_equal(storage_list_open(f->st, "", &l, &e), 0);
    int n = 0;
    while (storage_list_next(l, &ent, &e) == 1) {
        char p[4096];
        struct stat sb;
        path_of(f, ent.key, p, sizeof(p));
        assert_int_equal(lstat(p, &sb), 0);
        assert_int_equal(ent.type, STORAGE_TYPE_FILE);
        assert_int_equal(ent.size, strlen(ent.key)); /* content is the key */
        assert_int_equal(ent.mode, 0644);
        assert_true(ent.mtime_ns == (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec);
        assert_null(ent.link_target);
        assert_string_equal(ent.md5, "");
        storage_entry_clear(&ent);
        n++;
    }
    storage_list_close(l);
    assert_int_equal(n, (int)(sizeof(trap_files) / sizeof(trap_files[0])));
}

static void test_order_random_tree_vs_find(void **state)
{
    struct fixture *f = *state;
    /* segments built from the bytes that straddle '/' (0x2f) */
    static const char *const parts[] = {"a", "b", "-", ".", "0", " ", "~", "\xc3\xa9", "A", "_"};
    const size_t nparts = sizeof(parts) / sizeof(parts[0]);
    unsigned seed = 20240611;
    srand(seed);
    int made = 0;
    for (int i = 0; i < 300; i++) {
        char rel[256] = "";
        int depth = 1 + rand() % 4;
        for (int d = 0; d < depth; d++) {
            char seg[64] = "";
            int len = 1 + rand() % 3;
            for (int k = 0; k < len; k++)
                strncat(seg, parts[(size_t)rand() % nparts], sizeof(seg) - strlen(seg) - 1);
            if (!strcmp(seg, ".") || !strcmp(seg, ".."))
                strncat(seg, "a", sizeof(seg) - strlen(seg) - 1);
            if (d)
                strncat(rel, "/", sizeof(rel) - strlen(rel) - 1);
            strncat(rel, seg, sizeof(rel) - strlen(rel) - 1);
        }
        /* a path whose directory is already a file (or the reverse) is
         * skipped, like any real tree would have it */
        char p[512];
        bool ok = true;
        path_of(f, rel, p, sizeof(p));
        for (char *c = p + strlen(f->root) + 1; *c && ok; c++) {
            if (*c == '/') {
                *c = '\0';
                ok = mkdir(p, 0755) == 0 || errno == EEXIST;
                *c = '/';
            }
        }
        int fd = ok ? open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
        if (fd >= 0) {
            assert_int_equal(write(fd, "x", 1), 1);
            close(fd);
            made++;
        }
    }
    assert_true(made > 150);
    /* a few symlinks too: listed, never followed */
    char lp[4096];
    path_of(f, "a-link", lp, sizeof(lp));
    assert_int_equal(symlink(".", lp), 0);

    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && find . \\( -type f -o -type l \\) -printf '%%P\\n' | LC_ALL=C sort",
             f->root);
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    struct buf want = BUF_INIT(0);
    char line[4096];
    while (fgets(line, sizeof(line), fp))
        assert_int_equal(buf_puts(&want, line), 0);
    assert_int_equal(pclose(fp), 0);
    assert_int_equal(buf_puts(&want, ""), 0);

    char *got = list_keys(f->st, "");
    if (strcmp(got, want.data) != 0)
        fail_msg("seed %u: listing differs from find|sort\n--- got:\n%s--- find:\n%s", seed, got,
                 want.data);
    free(got);
    buf_release(&want);
}

static void test_prefix(void **state)
{
    struct fixture *f = *state;
    struct storage_list *l;
    struct err e;
    put_traps(f);

    assert_listing(f->st, "a", "a-b\na.txt\na/b\na/c/d\na0\nab.c\nab/x\n");
    assert_listing(f->st, "ab", "ab.c\nab/x\n");
    assert_listing(f->st, "a/", "a/b\na/c/d\n");
    assert_listing(f->st, "a/c", "a/c/d\n");
    assert_listing(f->st, "a/c/", "a/c/d\n");
    assert_listing(f->st, "photos", "photos-2/q\nphotos.zip\nphotos/x\nphotos/y/z\n");
    assert_listing(f->st, "photos/", "photos/x\nphotos/y/z\n");
    assert_listing(f->st, "photos/y", "photos/y/z\n");
    assert_listing(f->st, "deep/1/2/3/f", "deep/1/2/3/f\n");
    assert_listing(f->st, "deep/1/", "deep/1/2/3/f\n");
    assert_listing(f->st, "\xc3\xa9", "\xc3\xa9/1\n");
    assert_listing(f->st, "b c/", "b c/d e.txt\n");
    /* absent prefixes list nothing (the root itself exists) */
    assert_listing(f->st, "nope/", "");
    assert_listing(f->st, "nope", "");
    assert_listing(f->st, "a/b/", ""); /* a/b is a file */
    assert_listing(f->st, "empty/", "");
    assert_listing(f->st, "zz-only-dirs", "");

    assert_int_equal(storage_list_open(f->st, "../x", &l, &e), ERR_USAGE);
    assert_int_equal(storage_list_open(f->st, "/a", &l, &e), ERR_USAGE);
    assert_int_equal(storage_list_open(f->st, "a//", &l, &e), ERR_USAGE);
}

/* ---- root -------------------------------------------------------------- */

static void test_root_checks(void **state)
{
    struct fixture *f = *state;
    struct storage *st;
    struct storage_list *l;
    struct err e;
    char p[256];

    /* missing root */
    snprintf(p, sizeof(p), "%s/missing", f->dir);
    assert_int_equal(local_storage_open(p, "missing-src", &st, &e), 0);
    assert_string_equal(storage_driver_name(st), "local");
    assert_string_equal(storage_endpoint_id(st), "local");
    assert_string_equal(storage_display(st), "missing-src");
    assert_int_equal(storage_hashes(st), 0);
    assert_int_equal(storage_features(st),
                     STORAGE_FEATURE_RANGE_READ | STORAGE_FEATURE_MTIME | STORAGE_FEATURE_SYMLINK |
                         STORAGE_FEATURE_LIST_MTIME | STORAGE_FEATURE_CHEAP_REREAD);
    assert_int_equal(storage_check_root(st, false, false, &e), ERR_NOT_FOUND);
    assert_string_equal(e.msg, "source 'missing-src' does not exist; check the path");
    assert_int_equal(storage_check_root(st, true, false, &e), ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, "destination 'missing-src' does not exist"));
    /* a listing of a missing root is an error, never an empty listing */
    assert_int_equal(storage_list_open(st, "", &l, &e), ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, p));
    assert_int_equal(storage_list_open(st, "a/", &l, &e), ERR_NOT_FOUND);
    assert_false(exists(p));
    storage_close(st);

    /* created with mkdir -p semantics, trailing slashes tolerated */
    snprintf(p, sizeof(p), "%s/new/a/b//", f->dir);
    assert_int_equal(local_storage_open(p, NULL, &st, &e), 0);
    assert_int_equal(storage_check_root(st, true, true, &e), 0);
    snprintf(p, sizeof(p), "%s/new/a/b", f->dir);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(storage_check_root(st, false, false, &e), 0);
    assert_listing(st, "", "");
    storage_close(st);

    /* root that is a file */
    snprintf(p, sizeof(p), "%s/file", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(local_storage_open(p, "file-src", &st, &e), 0);
    assert_int_equal(storage_check_root(st, false, false, &e), ERR_USAGE);
    assert_string_equal(e.msg, "source 'file-src' is a file, not a directory; give a directory");
    assert_int_equal(storage_check_root(st, true, true, &e), ERR_USAGE);
    assert_int_equal(storage_list_open(st, "", &l, &e), ERR_USAGE);
    storage_close(st);

    assert_int_equal(local_storage_open("", NULL, &st, &e), ERR_USAGE);
}

/* ---- data -------------------------------------------------------------- */

static void test_empty_file(void **state)
{
    struct fixture *f = *state;
    struct storage_entry ent;
    struct err e;
    size_t len;

    store_put(f->st, "e/empty", "", 0, NULL);
    assert_int_equal(storage_stat(f->st, "e/empty", &ent, &e), 0);
    assert_string_equal(ent.key, "e/empty");
    assert_int_equal(ent.type, STORAGE_TYPE_FILE);
    assert_int_equal(ent.size, 0);
    assert_int_equal(ent.mode, 0644); /* driver default */
    storage_entry_clear(&ent);
    unsigned char *d = store_get(f->st, "e/empty", 0, -1, &len);
    assert_int_equal(len, 0);
    free(d);
    assert_listing(f->st, "", "e/empty\n");
}

static void test_big_roundtrip_sha256(void **state)
{
    struct fixture *f = *state;
    const size_t n = 5 * MIB + 123;
    unsigned char *data = pattern(n, 42);
    char want[65], got_hex[65], disk_hex[65];
    size_t len;
    struct storage_entry ent;
    struct err e;

    sha256_hex(data, n, want);
    store_put(f->st, "big/five.bin", data, n, NULL);

    unsigned char *back = store_get(f->st, "big/five.bin", 0, -1, &len);
    assert_int_equal(len, n);
    sha256_hex(back, len, got_hex);
    assert_string_equal(got_hex, want);
    free(back);

    /* the file on disk, read without arca */
    char p[4096];
    path_of(f, "big/five.bin", p, sizeof(p));
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    unsigned char *disk = malloc(n + 1);
    assert_int_equal(fread(disk, 1, n + 1, fp), n);
    fclose(fp);
    sha256_hex(disk, n, disk_hex);
    assert_string_equal(disk_hex, want);
    free(disk);

    /* read_open reports the size */
    struct storage_reader *rd;
    assert_int_equal(storage_read_open(f->st, "big/five.bin", 0, -1, &rd, &ent, &e), 0);
    assert_int_equal(ent.size, n);
    assert_string_equal(ent.key, "big/five.bin");
    storage_entry_clear(&ent);
    storage_read_close(rd);
    free(data);
}

static void test_ranged_read(void **state)
{
    struct fixture *f = *state;
    const size_t n = 5 * MIB;
    unsigned char *data = pattern(n, 7);
    size_t len;
    store_put(f->st, "r.bin", data, n, NULL);

    unsigned char *b = store_get(f->st, "r.bin", 1234567, 100000, &len);
    assert_int_equal(len, 100000);
    assert_memory_equal(b, data + 1234567, 100000);
    free(b);

    b = store_get(f->st, "r.bin", 3 * MIB + 5, -1, &len); /* to the end */
    assert_int_equal(len, n - (3 * MIB + 5));
    assert_memory_equal(b, data + 3 * MIB + 5, len);
    free(b);

    b = store_get(f->st, "r.bin", n - 10, 1000, &len); /* length past the end */
    assert_int_equal(len, 10);
    assert_memory_equal(b, data + n - 10, 10);
    free(b);

    b = store_get(f->st, "r.bin", n + 10, -1, &len); /* offset past the end */
    assert_int_equal(len, 0);
    free(b);

    b = store_get(f->st, "r.bin", 100, 0, &len);
    assert_int_equal(len, 0);
    free(b);

    /* small caller buffers step through exactly */
    struct storage_reader *rd;
    struct err e;
    unsigned char small[7];
    size_t got, total = 0;
    assert_int_equal(storage_read_open(f->st, "r.bin", 10, 20, &rd, NULL, &e), 0);
    do {
        assert_int_equal(storage_read(rd, small, sizeof(small), &got, &e), 0);
        assert_true(got <= sizeof(small));
        if (got)
            assert_memory_equal(small, data + 10 + total, got);
        total += got;
    } while (got);
    assert_int_equal(total, 20);
    storage_read_close(rd);

    assert_int_equal(storage_read_open(f->st, "nope.bin", 0, -1, &rd, NULL, &e), ERR_NOT_FOUND);
    assert_non_null(strstr(e.msg, f->root));
    free(data);
}

static int count_temp_files(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    char want[300];
    snprintf(want, sizeof(want), ".%s.arca-tmp-", base);
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, want, strlen(want)))
            n++;
    closedir(d);
    return n;
}

static void test_atomic_write(void **state)
{
    struct fixture *f = *state;
    struct storage_writer *w;
    struct storage_entry ent;
    struct err e;
    char p[4096], dir[4096];
    size_t len;

    path_of(f, "d/f.txt", p, sizeof(p));
    path_of(f, "d", dir, sizeof(dir));

    assert_int_equal(storage_write_open(f->st, "d/f.txt", NULL, &w, &e), 0);
    assert_int_equal(storage_write(w, "hello ", 6, &e), 0);
    assert_int_equal(storage_write(w, "world", 5, &e), 0);
    /* before commit: not under its name, temp not listed */
    assert_false(exists(p));
    assert_int_equal(count_temp_files(dir, "f.txt"), 1);
    assert_int_equal(storage_stat(f->st, "d/f.txt", &ent, &e), ERR_NOT_FOUND);
    assert_listing(f->st, "", "");
    assert_int_equal(storage_write_commit(w, &e), 0);
    assert_true(exists(p));
    assert_int_equal(count_temp_files(dir, "f.txt"), 0);
    unsigned char *b = store_get(f->st, "d/f.txt", 0, -1, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(b, "hello world", 11);
    free(b);

    /* abort of a new key: nothing remains, not even the directory content */
    assert_int_equal(storage_write_open(f->st, "d/g.txt", NULL, &w, &e), 0);
    assert_int_equal(storage_write(w, "zzz", 3, &e), 0);
    assert_int_equal(count_temp_files(dir, "g.txt"), 1);
    storage_write_abort(w);
    assert_int_equal(count_temp_files(dir, "g.txt"), 0);
    path_of(f, "d/g.txt", p, sizeof(p));
    assert_false(exists(p));

    /* abort of a rewrite keeps the old content; commit replaces it */
    assert_int_equal(storage_write_open(f->st, "d/f.txt", NULL, &w, &e), 0);
    assert_int_equal(storage_write(w, "XX", 2, &e), 0);
    storage_write_abort(w);
    b = store_get(f->st, "d/f.txt", 0, -1, &len);
    assert_int_equal(len, 11);
    free(b);
    store_put(f->st, "d/f.txt", "new", 3, NULL);
    b = store_get(f->st, "d/f.txt", 0, -1, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(b, "new", 3);
    free(b);
    assert_listing(f->st, "", "d/f.txt\n");

    /* a very long name still gets a temp name within NAME_MAX */
    char longkey[300];
    memset(longkey, 'n', 250);
    longkey[250] = '\0';
    store_put(f->st, longkey, "L", 1, NULL);
    char longwant[sizeof(longkey) + 2];
    snprintf(longwant, sizeof(longwant), "%s\n", longkey);
    assert_listing(f->st, "n", longwant);
    assert_int_equal(storage_stat(f->st, longkey, &ent, &e), 0);
    assert_int_equal(ent.size, 1);
    storage_entry_clear(&ent);
}

static void test_write_in_the_way(void **state)
{
    struct fixture *f = *state;
    struct storage_writer *w;
    struct err e;

    put_dir(f, "d/sub");
    assert_int_equal(storage_write_open(f->st, "d/sub", NULL, &w, &e), ERR_EXISTS);
    assert_non_null(strstr(e.msg, "a directory has that name"));
    assert_non_null(strstr(e.msg, f->root));

    put_file(f, "file", "x");
    assert_int_equal(storage_write_open(f->st, "file/g", NULL, &w, &e), ERR_EXISTS);
    assert_non_null(strstr(e.msg, "is a file or a symbolic link"));
    assert_int_equal(storage_write_open(f->st, "file/g/h", NULL, &w, &e), ERR_EXISTS);
}

static void test_mtime_and_mode(void **state)
{
    struct fixture *f = *state;
    struct storage_entry ent;
    struct err e;
    const int64_t t1 = INT64_C(1500000000123456789);
    const int64_t t2 = -INT64_C(1234567891); /* before 1970: -1.234567891 s */

    struct storage_write_opts o1 = {.size_hint = 3, .mtime_ns = t1, .mode = 0600};
    store_put(f->st, "m/one", "abc", 3, &o1);
    struct storage_write_opts o2 = {.size_hint = -1, .mtime_ns = t2, .mode = 0755};
    store_put(f->st, "m/two", "abc", 3, &o2);

    assert_int_equal(storage_stat(f->st, "m/one", &ent, &e), 0);
    assert_true(ent.mtime_ns == t1);
    assert_int_equal(ent.mode, 0600);
    storage_entry_clear(&ent);
    assert_int_equal(storage_stat(f->st, "m/two", &ent, &e), 0);
    assert_true(ent.mtime_ns == t2);
    assert_int_equal(ent.mode, 0755);
    storage_entry_clear(&ent);

    /* seen by the OS */
    char p[4096];
    struct stat sb;
    path_of(f, "m/two", p, sizeof(p));
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal((long long)sb.st_mtim.tv_sec, -2);
    assert_int_equal(sb.st_mtim.tv_nsec, 765432109);

    /* and by the listing */
    struct storage_list *l;
    assert_int_equal(storage_list_open(f->st, "m/", &l, &e), 0);
    assert_int_equal(storage_list_next(l, &ent, &e), 1);
    assert_string_equal(ent.key, "m/one");
    assert_true(ent.mtime_ns == t1);
    assert_int_equal(ent.mode, 0600);
    storage_entry_clear(&ent);
    assert_int_equal(storage_list_next(l, &ent, &e), 1);
    assert_string_equal(ent.key, "m/two");
    assert_true(ent.mtime_ns == t2);
    storage_entry_clear(&ent);
    assert_int_equal(storage_list_next(l, &ent, &e), 0);
    storage_list_close(l);
}

static void test_symlinks_not_followed(void **state)
{
    struct fixture *f = *state;
    struct storage_entry ent;
    struct storage_reader *rd;
    struct storage_writer *w;
    struct err e;
    char p[4096];

    put_file(f, "realdir/f", "data");
    path_of(f, "dirlink", p, sizeof(p));
    assert_int_equal(symlink("realdir", p), 0);
    path_of(f, "dangling", p, sizeof(p));
    assert_int_equal(symlink("does/not/exist", p), 0);
    path_of(f, "outside", p, sizeof(p));
    assert_int_equal(symlink("/etc", p), 0);

    assert_listing(f->st, "", "dangling\ndirlink\noutside\nrealdir/f\n");
    assert_listing(f->st, "dirlink/", "");
    assert_listing(f->st, "outside/", "");

    struct storage_list *l;
    assert_int_equal(storage_list_open(f->st, "d", &l, &e), 0);
    assert_int_equal(storage_list_next(l, &ent, &e), 1);
    assert_string_equal(ent.key, "dangling");
    assert_int_equal(ent.type, STORAGE_TYPE_SYMLINK);
    assert_string_equal(ent.link_target, "does/not/exist");
    assert_int_equal(ent.size, strlen("does/not/exist"));
    storage_entry_clear(&ent);
    assert_int_equal(storage_list_next(l, &ent, &e), 1);
    assert_string_equal(ent.key, "dirlink");
    assert_int_equal(ent.type, STORAGE_TYPE_SYMLINK);
    assert_string_equal(ent.link_target, "realdir");
    storage_entry_clear(&ent);
    assert_int_equal(storage_list_next(l, &ent, &e), 0);
    storage_list_close(l);

    assert_int_equal(storage_stat(f->st, "outside", &ent, &e), 0);
    assert_int_equal(ent.type, STORAGE_TYPE_SYMLINK);
    assert_string_equal(ent.link_target, "/etc");
    storage_entry_clear(&ent);

    /* reads and writes never go through a link */
    assert_int_equal(storage_read_open(f->st, "dangling", 0, -1, &rd, NULL, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "symbolic link"));
    assert_int_equal(storage_read_open(f->st, "dirlink/f", 0, -1, &rd, NULL, &e), ERR_NOT_FOUND);
    assert_int_equal(storage_read_open(f->st, "outside/passwd", 0, -1, &rd, NULL, &e),
                     ERR_NOT_FOUND);
    assert_int_equal(storage_stat(f->st, "outside/passwd", &ent, &e), ERR_NOT_FOUND);
    assert_int_equal(storage_write_open(f->st, "dirlink/g", NULL, &w, &e), ERR_EXISTS);
    path_of(f, "realdir/g", p, sizeof(p));
    assert_false(exists(p));
    assert_int_equal(count_temp_files(p, "g"), 0);
    char rd_dir[4096];
    path_of(f, "realdir", rd_dir, sizeof(rd_dir));
    assert_int_equal(count_temp_files(rd_dir, "g"), 0);

    /* writing over a link replaces the link, not its target */
    store_put(f->st, "dirlink", "plain", 5, NULL);
    assert_int_equal(storage_stat(f->st, "dirlink", &ent, &e), 0);
    assert_int_equal(ent.type, STORAGE_TYPE_FILE);
    storage_entry_clear(&ent);
    path_of(f, "realdir/f", p, sizeof(p));
    assert_true(exists(p));
}

/* ---- skipped parts ----------------------------------------------------- */

static void test_special_and_temp_files_skipped(void **state)
{
    struct fixture *f = *state;
    struct storage_reader *rd;
    struct err e;
    char p[4096];

    put_file(f, "a", "1");
    put_file(f, "dir/.hidden", "1");
    put_file(f, "dir/.x.arca-tmp-0123456789abcdef", "leftover of a crash");
    put_file(f, "dir/x.arca-tmp-1", "not ours: no leading dot");
    path_of(f, "dir/fifo", p, sizeof(p));
    assert_int_equal(mkfifo(p, 0644), 0);

    buf_init(&log_lines, 0);
    log_set_sink(log_capture, NULL);
    assert_listing(f->st, "", "a\ndir/.hidden\ndir/x.arca-tmp-1\n");
    log_set_sink(NULL, NULL);
    assert_non_null(log_lines.data);
    assert_non_null(strstr(log_lines.data, "dir/fifo"));
    assert_non_null(strstr(log_lines.data, "not a regular file"));
    buf_release(&log_lines);
    assert_int_equal(storage_list_error_count(f->st), 0);

    /* opening a fifo must not hang */
    assert_int_equal(storage_read_open(f->st, "dir/fifo", 0, -1, &rd, NULL, &e), ERR_USAGE);
    assert_non_null(strstr(e.msg, "not a regular file"));
}

struct skip_log {
    struct buf text;
    int stop_with; /* returned by the handler */
};

static int on_skip(void *ctx, const char *key, const struct err *why)
{
    struct skip_log *s = ctx;
    buf_printf(&s->text, "SKIP %s %s|%s\n", key, err_code_name(why->code), why->msg);
    return s->stop_with;
}

/* Runs in a child (possibly as nobody): lists st into fd, one line per key
 * or skip, then the error count; the exit status is the listing result. */
static int child_list(const char *root, int stop_with, bool with_handler, int fd)
{
    struct storage *st;
    struct storage_list *l;
    struct storage_entry ent;
    struct err e;
    struct skip_log s = {BUF_INIT(0), stop_with};
    int r;

    if (local_storage_open(root, NULL, &st, &e))
        return 10;
    if (with_handler)
        storage_set_list_error_handler(st, on_skip, &s);
    else {
        buf_init(&log_lines, 0);
        log_set_sink(log_capture, NULL);
    }
    if ((r = storage_list_open(st, "", &l, &e)))
        return 11;
    while ((r = storage_list_next(l, &ent, &e)) == 1) {
        if (s.text.len) {
            dprintf(fd, "%s", s.text.data);
            buf_reset(&s.text);
        }
        dprintf(fd, "%s\n", ent.key);
        storage_entry_clear(&ent);
    }
    if (s.text.len)
        dprintf(fd, "%s", s.text.data);
    if (r)
        dprintf(fd, "ERROR %s|%s\n", err_code_name(r), e.msg);
    if (!with_handler && log_lines.len)
        dprintf(fd, "LOG %s", log_lines.data);
    dprintf(fd, "COUNT %zu\n", storage_list_error_count(st));
    storage_list_close(l);
    storage_close(st);
    return 0;
}

/* Fork, drop to nobody when we are root (root ignores directory modes),
 * run child_list. Returns its output, or NULL when privileges cannot be
 * dropped. */
static char *list_unprivileged(const char *root, int stop_with, bool with_handler)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (geteuid() == 0) {
            if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                _exit(77);
            if (geteuid() == 0)
                _exit(77);
        }
        _exit(child_list(root, stop_with, with_handler, pfd[1]));
    }
    close(pfd[1]);
    struct buf out = BUF_INIT(0);
    char chunk[4096];
    ssize_t n;
    while ((n = read(pfd[0], chunk, sizeof(chunk))) > 0)
        assert_int_equal(buf_append(&out, chunk, (size_t)n), 0);
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        buf_release(&out);
        return NULL;
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(buf_puts(&out, ""), 0);
    return buf_detach(&out);
}

static void test_permission_denied_dir(void **state)
{
    struct fixture *f = *state;
    char p[4096], want[8192];

    /* the child may run as nobody: everything but the trap readable */
    assert_int_equal(chmod(f->dir, 0755), 0);
    put_file(f, "a/1", NULL);
    put_file(f, "b/secret/x", NULL);
    put_file(f, "b/z", NULL);
    put_file(f, "c/1", NULL);
    path_of(f, "b/secret", p, sizeof(p));
    assert_int_equal(chmod(p, 0), 0);

    /* with a handler: told at the right place, listing goes on */
    char *out = list_unprivileged(f->root, 0, true);
    if (!out) {
        assert_int_equal(chmod(p, 0755), 0);
        skip(); /* root without CAP_SETUID: cannot make a directory unreadable */
        return;
    }
    snprintf(want, sizeof(want),
             "a/1\n"
             "SKIP b/secret/ permission|cannot list '%s/b/secret/': permission denied; check the "
             "file's owner and mode\n"
             "b/z\n"
             "c/1\n"
             "COUNT 1\n",
             f->root);
    if (strcmp(out, want))
        fail_msg("--- got:\n%s--- expected:\n%s", out, want);
    free(out);

    /* without a handler: a warning naming the directory, listing goes on */
    out = list_unprivileged(f->root, 0, false);
    assert_non_null(out);
    assert_non_null(strstr(out, "a/1\nb/z\nc/1\nLOG "));
    assert_non_null(strstr(out, "b/secret/': permission denied"));
    assert_non_null(strstr(out, "COUNT 1\n"));
    free(out);

    /* a handler that says stop: the listing ends with its code */
    out = list_unprivileged(f->root, ERR_PERM, true);
    assert_non_null(out);
    assert_non_null(strstr(out, "a/1\nSKIP b/secret/ permission|"));
    assert_non_null(strstr(out, "ERROR permission|cannot list"));
    assert_null(strstr(out, "b/z"));
    free(out);

    /* as the owner (or root), the same tree lists in full */
    assert_int_equal(chmod(p, 0755), 0);
    assert_listing(f->st, "", "a/1\nb/secret/x\nb/z\nc/1\n");
}

/* ---- remove and keys --------------------------------------------------- */

static void test_remove_prunes_empty_dirs(void **state)
{
    struct fixture *f = *state;
    struct err e;
    char p[4096];

    store_put(f->st, "p/q/r/file", "1", 1, NULL);
    store_put(f->st, "p/keep", "1", 1, NULL);
    put_dir(f, "p/q/other-empty");

    assert_int_equal(storage_remove(f->st, "p/q/r/file", &e), 0);
    path_of(f, "p/q/r", p, sizeof(p));
    assert_false(exists(p));
    path_of(f, "p/q", p, sizeof(p));
    assert_true(exists(p)); /* still holds other-empty: not ours to judge */
    path_of(f, "p/keep", p, sizeof(p));
    assert_true(exists(p));

    assert_int_equal(storage_remove(f->st, "p/keep", &e), 0);
    path_of(f, "p", p, sizeof(p));
    assert_true(exists(p)); /* p/q/other-empty still there */

    store_put(f->st, "solo/a/b/c", "1", 1, NULL);
    assert_int_equal(storage_remove(f->st, "solo/a/b/c", &e), 0);
    path_of(f, "solo", p, sizeof(p));
    assert_false(exists(p));
    assert_true(exists(f->root)); /* never the root */

    store_put(f->st, "top", "1", 1, NULL);
    assert_int_equal(storage_remove(f->st, "top", &e), 0);
    assert_true(exists(f->root));

    assert_int_equal(storage_remove(f->st, "top", &e), ERR_NOT_FOUND);
    assert_int_equal(storage_remove(f->st, "no/such/dir/file", &e), ERR_NOT_FOUND);
    assert_int_equal(storage_remove(f->st, "p", &e), ERR_USAGE); /* a directory */
    path_of(f, "p", p, sizeof(p));
    assert_true(exists(p));
}

static void test_invalid_keys(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "", "/abs", "..", ".", "../escape", "a/../../escape", "a/./b", "a//b", "a/", "./a",
    };
    struct storage_writer *w;
    struct storage_reader *rd;
    struct storage_entry ent;
    struct err e;
    char p[256];

    put_file(f, "a/b", "1");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(storage_write_open(f->st, bad[i], NULL, &w, &e), ERR_USAGE);
        assert_non_null(strstr(e.msg, "invalid key"));
        assert_int_equal(storage_read_open(f->st, bad[i], 0, -1, &rd, NULL, &e), ERR_USAGE);
        assert_int_equal(storage_stat(f->st, bad[i], &ent, &e), ERR_USAGE);
        assert_int_equal(storage_remove(f->st, bad[i], &e), ERR_USAGE);
    }
    snprintf(p, sizeof(p), "%s/escape", f->dir);
    assert_false(exists(p));
    path_of(f, "a/b", p, sizeof(p));
    assert_true(exists(p));
}

static void test_deeper_than_path_max(void **state)
{
    struct fixture *f = *state;
    struct buf key = BUF_INIT(0);
    size_t len;

    /* 200 levels x 30 bytes: 6 KB keys, beyond PATH_MAX (4096) */
    for (int i = 0; i < 200; i++)
        assert_int_equal(buf_printf(&key, "level-%03d-abcdefghijklmnopqrs/", i), 0);
    assert_int_equal(buf_puts(&key, "leaf"), 0);
    assert_true(key.len > 4096);
    store_put(f->st, key.data, "deep", 4, NULL);
    char *want = NULL;
    assert_true(asprintf(&want, "%s\n", key.data) > 0);
    assert_listing(f->st, "", want);
    unsigned char *b = store_get(f->st, key.data, 0, -1, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(b, "deep", 4);
    free(b);
    struct err e;
    assert_int_equal(storage_remove(f->st, key.data, &e), 0);
    assert_listing(f->st, "", "");
    char p[256];
    path_of(f, "level-000-abcdefghijklmnopqrs", p, sizeof(p));
    assert_false(exists(p));
    free(want);
    buf_release(&key);
}

static void test_large_directory(void **state)
{
    struct fixture *f = *state;
    struct storage_list *l;
    struct storage_entry ent;
    struct err e;
    char rel[64];
    /* 1500 names in one directory next to same-prefix subdirectories */
    for (int i = 0; i < 1500; i++) {
        snprintf(rel, sizeof(rel), "big/%x%s", (unsigned)(i * 2654435761u), i % 7 ? "" : "/in");
        put_file(f, rel, "");
    }
    assert_int_equal(storage_list_open(f->st, "big/", &l, &e), 0);
    int n = 0;
    char prev[64] = "";
    int r;
    while ((r = storage_list_next(l, &ent, &e)) == 1) {
        assert_true(strcmp(prev, ent.key) < 0);
        snprintf(prev, sizeof(prev), "%s", ent.key);
        storage_entry_clear(&ent);
        n++;
    }
    assert_int_equal(r, 0);
    assert_int_equal(n, 1500);
    storage_list_close(l);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_no_fd_leaks(void **state)
{
    struct fixture *f = *state;
    struct storage_list *l;
    struct storage_entry ent;
    struct storage_reader *rd;
    struct storage_writer *w;
    struct err e;
    size_t len;

    put_traps(f);
    int before = count_fds();
    for (int i = 0; i < 3; i++) {
        free(list_keys(f->st, ""));
        free(list_keys(f->st, "photos/"));
        /* a listing closed half way through a deep descent */
        assert_int_equal(storage_list_open(f->st, "", &l, &e), 0);
        for (int k = 0; k < 11; k++) {
            assert_int_equal(storage_list_next(l, &ent, &e), 1);
            storage_entry_clear(&ent);
        }
        storage_list_close(l);
        store_put(f->st, "w/x/y", "1", 1, NULL);
        free(store_get(f->st, "w/x/y", 0, -1, &len));
        assert_int_equal(storage_stat(f->st, "w/x/y", &ent, &e), 0);
        storage_entry_clear(&ent);
        assert_int_equal(storage_write_open(f->st, "w/x/z", NULL, &w, &e), 0);
        storage_write_abort(w);
        assert_int_equal(storage_remove(f->st, "w/x/y", &e), 0);
        /* error paths */
        assert_int_equal(storage_read_open(f->st, "a/nope", 0, -1, &rd, NULL, &e), ERR_NOT_FOUND);
        assert_int_equal(storage_read_open(f->st, "a/b/c", 0, -1, &rd, NULL, &e), ERR_NOT_FOUND);
        assert_int_equal(storage_write_open(f->st, "a/b/c", NULL, &w, &e), ERR_EXISTS);
        assert_int_equal(storage_write_open(f->st, "a/c", NULL, &w, &e), ERR_EXISTS);
        assert_int_equal(storage_stat(f->st, "a/x/y", &ent, &e), ERR_NOT_FOUND);
        assert_int_equal(storage_remove(f->st, "a/x", &e), ERR_NOT_FOUND);
        assert_int_equal(storage_read_open(f->st, "a", 0, -1, &rd, NULL, &e), ERR_USAGE);
    }
    /* commits hold one directory fd per filesystem until storage_sync */
    assert_int_equal(count_fds(), before + 1);
    assert_int_equal(storage_sync(f->st, &e), 0);
    assert_int_equal(count_fds(), before);
    assert_int_equal(storage_sync(f->st, &e), 0); /* nothing to do */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_traps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_random_tree_vs_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_roundtrip_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranged_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_in_the_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mtime_and_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_and_temp_files_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_prunes_empty_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deeper_than_path_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_fd_leaks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
