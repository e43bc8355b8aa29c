/*
 * test_manifest.c - backup/manifest (JSON Lines manifests, SHA256SUMS
 * lines) and backup/runid. Oracles: python3's json module reads what the
 * writer wrote (order by bytes, base64 names), GNU sha256sum prints the
 * lines sha256sums_line must match.
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

#include "backup/manifest.h"
#include "backup/runid.h"
#include "core/buf.h"
#include "core/error.h"

/* ---- in-memory sink and source ------------------------------------------ */

static int to_buf(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)e;
    return buf_append(ctx, data, len) ? ERR_NOMEM : 0;
}

struct src {
    const char *data;
    size_t len, pos, step;
};

static int from_src(void *ctx, void *buf, size_t cap, size_t *got, struct err *e)
{
    (void)e;
    struct src *s = ctx;
    size_t n = s->len - s->pos;
    if (n > cap)
        n = cap;
    if (s->step && n > s->step)
        n = s->step;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    *got = n;
    return 0;
}

struct sample {
    const char *path;
    size_t path_len;
    enum manifest_type type;
    uint64_t size;
    int64_t mtime_ns;
    uint32_t mode;
    const char *target;
    size_t target_len;
    bool ok;
};

static const struct sample samples[] = {
    {"a-b", 3, MANIFEST_FILE, 0, 0, 0644, NULL, 0, true},
    {"a/b", 3, MANIFEST_FILE, 12, -1500000000, 0600, NULL, 0, true},
    {"a0", 2, MANIFEST_SYMLINK, 0, INT64_MIN, 0, "a-b", 3, true},
    {"bad\xff\xfename", 9, MANIFEST_FILE, 9223372036854775807ULL, 1, 0, NULL, 0, true},
    {"link-bad", 8, MANIFEST_SYMLINK, 0, 5, 0777, "t\xc3\x28", 3, true},
    {"zz-failed", 9, MANIFEST_FILE, 100, INT64_MIN, 0, NULL, 0, false},
    {"z\xc3\xbcrich/\xe6\x97\xa5\xe6\x9c\xac", 12, MANIFEST_FILE, 7, 7, 07755, NULL, 0, true},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static void write_sample(struct buf *out)
{
    struct manifest_writer *w = manifest_writer_new(to_buf, out);
    struct err e;
    struct manifest_header h = {.format_version = 1,
                                .mode = MANIFEST_ARCHIVE,
                                .source = "sftp://u@h/d",
                                .tool = "arca test",
                                .started_ms = 1795338900120,
                                .compression = "zstd",
                                .archive = "archives/20261122T091500Z-3fa94c1e.tar.zst"};
    strcpy(h.run, "20261122T091500Z-3fa94c1e");
    assert_int_equal(manifest_write_header(w, &h, &e), 0);
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        struct manifest_entry m;
        memset(&m, 0, sizeof(m));
        m.path = (char *)s->path;
        m.path_len = s->path_len;
        m.type = s->type;
        m.size = s->size;
        m.mtime_ns = s->mtime_ns;
        m.mode = s->mode;
        m.target = (char *)s->target;
        m.target_len = s->target_len;
        m.offset = (int64_t)i * 512;
        if (s->type == MANIFEST_FILE && s->ok)
            memset(m.sha256, 'a' + (int)(i % 6), 64);
        if (!s->ok) {
            m.err_code = ERR_IO;
            m.err_msg = "'zz-failed' changed size while being read";
        }
        assert_int_equal(manifest_write_entry(w, &m, &e), 0);
    }
    struct manifest_trailer t = {.finished_ms = 1795338960000,
                                 .status = "partial",
                                 .files = NSAMPLES - 1,
                                 .bytes = 42,
                                 .errors = 1,
                                 .archive_size = 4096};
    memset(t.archive_sha256, 'f', 64);
    assert_int_equal(manifest_write_trailer(w, &t, &e), 0);
    manifest_writer_free(w);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    write_sample(&out);
    const size_t steps[] = {0, 1, 7, 100};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        struct src s = {out.data, out.len, 0, steps[k]};
        struct manifest_reader *r = manifest_reader_new(from_src, &s, "m.jsonl");
        struct manifest_header_owned h;
        struct err e;
        assert_int_equal(manifest_read_header(r, &h, &e), 0);
        assert_string_equal(h.run, "20261122T091500Z-3fa94c1e");
        assert_int_equal(h.mode, MANIFEST_ARCHIVE);
        assert_string_equal(h.archive, "archives/20261122T091500Z-3fa94c1e.tar.zst");
        assert_int_equal(h.started_ms, 1795338900120);
        assert_null(h.job);
        manifest_header_owned_clear(&h);
        for (size_t i = 0; i < NSAMPLES; i++) {
            struct manifest_entry m;
            struct manifest_trailer_owned t;
            int rc = manifest_read_next(r, &m, &t, &e);
            if (rc != 1)
                print_message("entry %zu: %s\n", i, e.msg);
            assert_int_equal(rc, 1);
            const struct sample *sm = &samples[i];
            assert_int_equal(m.path_len, sm->path_len);
            assert_memory_equal(m.path, sm->path, sm->path_len);
            assert_int_equal(m.type, sm->type);
            assert_int_equal(m.size, sm->size);
            assert_int_equal(m.mtime_ns, sm->mtime_ns);
            assert_int_equal(m.mode, sm->mode);
            assert_int_equal(m.offset, (int64_t)i * 512);
            if (sm->target) {
                assert_int_equal(m.target_len, sm->target_len);
                assert_memory_equal(m.target, sm->target, sm->target_len);
            }
            assert_int_equal(m.err_code, sm->ok ? 0 : ERR_IO);
            if (!sm->ok)
                assert_string_equal(m.err_class, "io");
            manifest_entry_clear(&m);
        }
        struct manifest_entry m;
        struct manifest_trailer_owned t;
        assert_int_equal(manifest_read_next(r, &m, &t, &e), 2);
        assert_string_equal(t.status, "partial");
        assert_int_equal(t.files, NSAMPLES - 1);
        assert_int_equal(t.archive_size, 4096);
        manifest_reader_free(r);
    }
    buf_release(&out);
}

/* python3 reads every line as JSON, finds header first, trailer last, and
 * the paths (base64-decoded where needed) in increasing byte order. */
static void test_python_oracle(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    write_sample(&out);
    char path[] = "/tmp/arca-manifest-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out.data, out.len), (ssize_t)out.len);
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys,base64\n"
             "L=[json.loads(l) for l in open(sys.argv[1],\"rb\").read().split(b\"\\n\") if l]\n"
             "assert L[0][\"type\"]==\"header\" and L[-1][\"type\"]==\"trailer\"\n"
             "P=[base64.b64decode(x[\"path_b64\"]) if \"path_b64\" in x else "
             "x[\"path\"].encode() for x in L[1:-1]]\n"
             "assert P==sorted(P) and len(set(P))==len(P)==%zu\n"
             "assert P[3]==b\"bad\\xff\\xfename\"' %s",
             NSAMPLES, path);
    int rc = system(cmd);
    unlink(path);
    buf_release(&out);
    assert_int_equal(rc, 0);
}

static int read_all(const char *text, struct err *e)
{
    struct src s = {text, strlen(text), 0, 0};
    struct manifest_reader *r = manifest_reader_new(from_src, &s, "bad.jsonl");
    struct manifest_header_owned h;
    int rc = manifest_read_header(r, &h, e);
    if (!rc) {
        manifest_header_owned_clear(&h);
        for (;;) {
            struct manifest_entry m;
            struct manifest_trailer_owned t;
            rc = manifest_read_next(r, &m, &t, e);
            if (rc == 1) {
                manifest_entry_clear(&m);
                continue;
            }
            if (rc == 2)
                rc = 0;
            break;
        }
    }
    manifest_reader_free(r);
    return rc;
}

#define HDR                                                                                        \
    "{\"type\":\"header\",\"format_version\":1,\"run\":\"20261122T091500Z-3fa94c1e\","             \
    "\"mode\":\"mirror\",\"source\":\"s\",\"started\":\"2026-11-22T09:15:00.000Z\"}\n"
#define TRL                                                                                        \
    "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00.000Z\",\"status\":\"succeeded\","    \
    "\"files\":1,\"bytes\":1,\"errors\":0}\n"
#define SHA                                                                                        \
    "\"sha256\":\""                                                                                \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""
#define ENT(p) "{\"type\":\"file\",\"path\":\"" p "\",\"size\":1," SHA "}\n"

static void test_bad_input(void **state)
{
    (void)state;
    struct err e;
    assert_int_equal(read_all(HDR ENT("a") TRL, &e), 0);

    assert_int_equal(
        read_all("{\"type\":\"header\",\"format_version\":2,\"run\":\"20261122T091500Z-"
                 "3fa94c1e\",\"mode\":\"mirror\",\"started\":\"2026-11-22T09:15:00Z\"}\n",
                 &e),
        ERR_REFUSED);
    assert_string_equal(e.msg, "manifest 'bad.jsonl' has format version 2; this arca reads up "
                               "to 1: upgrade arca");
    assert_int_equal(read_all(HDR ENT("a"), &e), ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "is truncated"));
    assert_int_equal(read_all(HDR ENT("b") ENT("a") TRL, &e), ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "line 3: paths out of byte order"));
    assert_int_equal(read_all(HDR ENT("a") ENT("a") TRL, &e), ERR_CORRUPT);
    assert_int_equal(read_all(HDR ENT("a/b") ENT("a-b") TRL, &e), ERR_CORRUPT);
    assert_int_equal(
        read_all(HDR "{\"type\":\"file\",\"path_b64\":\"!!!!\",\"size\":1," SHA "}\n" TRL, &e),
        ERR_CORRUPT);
    assert_int_equal(read_all(HDR "{\"type\":\"file\",\"path\":\"a\",\"path_b64\":\"YQ==\","
                                  "\"size\":1," SHA "}\n" TRL,
                              &e),
                     ERR_CORRUPT);
    assert_int_equal(read_all(HDR "{\"type\":\"fifo\",\"path\":\"a\",\"size\":1}\n" TRL, &e),
                     ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "line 2: unknown type 'fifo'"));
    assert_int_equal(read_all(HDR "not json\n" TRL, &e), ERR_CORRUPT);
    assert_int_equal(
        read_all(HDR "{\"type\":\"file\",\"path\":\"a\",\"size\":\"1\"," SHA "}\n" TRL, &e),
        ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "'size' is not a non-negative integer"));
    assert_int_equal(read_all(HDR "{\"type\":\"file\",\"path\":\"a\",\"size\":1}\n" TRL, &e),
                     ERR_CORRUPT);
    assert_int_equal(read_all(HDR ENT("a") TRL ENT("b"), &e), ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "a line after the trailer"));
    assert_int_equal(read_all("", &e), ERR_CORRUPT);
    assert_int_equal(read_all(ENT("a"), &e), ERR_CORRUPT);
    assert_int_equal(read_all(HDR ENT("a") "{\"type\":\"trailer\"", &e), ERR_CORRUPT);
    /* a line over 1 MiB */
    size_t big = (2u << 20) + 10;
    char *huge = malloc(sizeof(HDR) + big + 2);
    strcpy(huge, HDR);
    memset(huge + strlen(HDR), 'x', big);
    strcpy(huge + strlen(HDR) + big, "\n");
    assert_int_equal(read_all(huge, &e), ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "longer than 1 MiB"));
    free(huge);
}

static void test_writer_order(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    struct manifest_writer *w = manifest_writer_new(to_buf, &out);
    struct manifest_entry m;
    struct err e;
    memset(&m, 0, sizeof(m));
    m.mtime_ns = INT64_MIN;
    m.offset = -1;
    m.path = "b";
    m.path_len = 1;
    assert_int_equal(manifest_write_entry(w, &m, &e), 0);
    m.path = "a";
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    m.path = "b";
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    manifest_writer_free(w);
    buf_release(&out);
}

/* sha256sums_line against what GNU sha256sum prints for awkward names. */
static void test_sha256sums_gnu(void **state)
{
    (void)state;
    char dir[] = "/tmp/arca-sums-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *names[] = {"plain", "back\\slash", "new\nline", "sp ace", "\xc3\xbc"};
    struct buf mine;
    buf_init(&mine, 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
        struct err e;
        assert_int_equal(sha256sums_line(&mine,
                                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4"
                                         "95991b7852b855",
                                         names[i], strlen(names[i]), &e),
                         0);
    }
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd),
             "cd %s && sha256sum plain 'back\\slash' \"$(printf 'new\\nline')\" 'sp ace' "
             "\"$(printf '\\303\\274')\"",
             dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_int_equal(mine.len, n);
    assert_memory_equal(mine.data, out, n);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    buf_release(&mine);
}

static void test_runid(void **state)
{
    (void)state;
    char id[RUNID_LEN + 1], prev[RUNID_LEN + 1] = "";
    struct err e;
    assert_int_equal(runid_new(id, 1795338900, &e), 0);
    assert_int_equal(strlen(id), RUNID_LEN);
    assert_memory_equal(id, "20261122T091500Z-", 17);
    assert_true(runid_valid(id));
    assert_int_equal(runid_time(id), 1795338900);
    assert_true(runid_valid("20240229T235959Z-00000000"));
    assert_false(runid_valid("20230229T000000Z-00000000")); /* not a leap year */
    assert_false(runid_valid("20261322T091500Z-3fa94c1e"));
    assert_false(runid_valid("20261122T091500Z-3FA94C1E"));
    assert_false(runid_valid("20261122T091500-3fa94c1e0"));
    assert_false(runid_valid("20261122T091500Z-3fa94c1"));
    assert_false(runid_valid("20261122T091500Z-3fa94c1ee"));
    assert_false(runid_valid("20261122T246000Z-3fa94c1e"));
    assert_false(runid_valid(""));
    assert_false(runid_valid(NULL));
    /* ids of later seconds sort later as strings */
    for (int64_t t = 0; t < 400; t++) {
        assert_int_equal(runid_new(id, 1700000000 + t * 86399, &e), 0);
        assert_true(strcmp(prev, id) < 0);
        memcpy(prev, id, sizeof(id));
    }
    /* 10,000 ids of one second are distinct (random part) */
    static char ids[10000][RUNID_LEN + 1];
    for (int i = 0; i < 10000; i++)
        assert_int_equal(runid_new(ids[i], 1795338900, &e), 0);
    qsort(ids, 10000, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
    int dups = 0;
    for (int i = 1; i < 10000; i++)
        dups += !strcmp(ids[i - 1], ids[i]);
    assert_true(dups <= 1); /* birthday bound over 2^32: ~1% chance of one */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_python_oracle),
        cmocka_unit_test(test_bad_input),      cmocka_unit_test(test_writer_order),
        cmocka_unit_test(test_sha256sums_gnu), cmocka_unit_test(test_runid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
