/*
 * test_manifest.c - backup/manifest: JSON Lines manifests and SHA256SUMS
 * lines (docs/FORMAT.md).
 *
 * Oracles: Python's json and base64 modules and jq read what the writer
 * wrote (header first, trailer last, paths in byte order, base64 names,
 * counts); GNU sha256sum prints the lines sha256sums_line must match and
 * `sha256sum -c` checks them. The reader's refusals are pinned with their
 * messages and line numbers.
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

#include "backup/manifest.h"
#include "core/buf.h"
#include "core/error.h"
#include "io/filter.h"

/* ---- in-memory sink and source -------------------------------------------- */

static int to_buf(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)e;
    return buf_append(ctx, data, len) ? ERR_NOMEM : 0;
}

static int sink_fails(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)ctx, (void)data, (void)len;
    return err_set(e, ERR_IO, "disk full");
}

/* Hands out data in pieces of at most `step` bytes (0: as much as asked). */
struct src {
    const char *data;
    size_t len, pos, step;
    size_t max_cap; /* the largest cap the reader asked for */
    int fail_at;    /* fail the fail_at-th call (1-based); 0 never */
    int calls;
};

static int from_src(void *ctx, void *buf, size_t cap, size_t *got, struct err *e)
{
    struct src *s = ctx;
    if (cap > s->max_cap)
        s->max_cap = cap;
    if (++s->calls == s->fail_at)
        return err_set(e, ERR_NET, "connection reset");
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

static const char *python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- a manifest with one of everything ------------------------------------ */

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
    bool b64; /* path written as path_b64 */
};

#define S(lit) lit, sizeof(lit) - 1
static const struct sample samples[] = {
    {S(" lead space"), MANIFEST_FILE, 1, 1, 0644, NULL, 0, true, false},
    {S("a-b"), MANIFEST_FILE, 0, 0, 0644, NULL, 0, true, false},
    {S("a/b"), MANIFEST_FILE, 12, -1500000000, 0600, NULL, 0, true, false},
    {S("a/b\n\"q\"\\x\t"), MANIFEST_FILE, 3, 2, 0, NULL, 0, true, false},
    {S("a0"), MANIFEST_SYMLINK, 0, INT64_MIN, 0, S("a-b"), true, false},
    {S("bad\xff\xfename"), MANIFEST_FILE, 9223372036854775807ULL, 1, 0, NULL, 0, true, true},
    {S("bad\xff\xfename/deeper"), MANIFEST_FILE, 9223372036854775806ULL, INT64_MAX, 07777, NULL, 0,
     true, true},
    {S("ed\xed\xa0\x80surrogate"), MANIFEST_FILE, 5, 5, 0644, NULL, 0, true, true},
    {S("link-bad"), MANIFEST_SYMLINK, 0, 5, 0777, S("t\xc3\x28"), true, false},
    {S("link-dangling"), MANIFEST_SYMLINK, 0, 6, 0777, S("../../nowhere \xe2\x82\xac"), true,
     false},
    {S("over\xc0\xaflong"), MANIFEST_FILE, 4, 4, 0, NULL, 0, true, true},
    {S("y\xc3\xbcrich/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80"), MANIFEST_FILE, 7, 7, 0755, NULL,
     0, true, false},
    {S("zz-failed"), MANIFEST_FILE, 100, INT64_MIN, 0, NULL, 0, false, false},
    {S("zz-failed-link"), MANIFEST_SYMLINK, 0, INT64_MIN, 0, NULL, 0, false, false},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))
#define RUN "20261122T091500Z-3fa94c1e"

static void sample_entry(size_t i, struct manifest_entry *m)
{
    const struct sample *s = &samples[i];
    memset(m, 0, sizeof(*m));
    m->path = (char *)s->path;
    m->path_len = s->path_len;
    m->type = s->type;
    m->size = s->size;
    m->mtime_ns = s->mtime_ns;
    m->mode = s->mode;
    m->target = (char *)s->target;
    m->target_len = s->target_len;
    m->offset = i % 3 == 2 ? -1 : (int64_t)i * 512;
    m->stored_current = i % 4 == 1;
    if (s->type == MANIFEST_FILE && s->ok)
        memset(m->sha256, "0123456789abcdef"[i % 16], 64);
    if (!s->ok) {
        m->err_code = s->type == MANIFEST_FILE ? ERR_IO : ERR_PERM;
        m->err_msg = s->type == MANIFEST_FILE ? "'zz-failed' changed size while being read"
                                              : "cannot read link: bad \xff byte";
    }
}

static void write_sample(struct buf *out)
{
    struct manifest_writer *w = manifest_writer_new(to_buf, out);
    assert_non_null(w);
    struct err e;
    struct manifest_header h = {.format_version = 1,
                                .mode = MANIFEST_ARCHIVE,
                                .source = "sftp://u@127.0.0.1/d \xc3\xa9t\xc3\xa9",
                                .job = "nightly",
                                .tool = "arca test",
                                .started_ms = 1795338900120,
                                .compression = "zstd",
                                .archive = "archives/" RUN ".tar.zst"};
    strcpy(h.run, RUN);
    assert_int_equal(manifest_write_header(w, &h, &e), 0);
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct manifest_entry m;
        sample_entry(i, &m);
        int rc = manifest_write_entry(w, &m, &e);
        if (rc)
            print_message("entry %zu: %s\n", i, e.msg);
        assert_int_equal(rc, 0);
    }
    struct manifest_trailer t = {.finished_ms = 1795338960007,
                                 .status = "partial",
                                 .files = NSAMPLES - 2,
                                 .bytes = 42,
                                 .errors = 2,
                                 .archive_size = INT64_MAX};
    memset(t.archive_sha256, 'f', 64);
    assert_int_equal(manifest_write_trailer(w, &t, &e), 0);
    manifest_writer_free(w);
}

/* ---- round trip ------------------------------------------------------------ */

static void check_sample(const char *data, size_t len, size_t step)
{
    struct src s = {.data = data, .len = len, .step = step};
    struct manifest_reader *r = manifest_reader_new(from_src, &s, "m.jsonl");
    assert_non_null(r);
    struct manifest_header_owned h;
    struct err e;
    assert_int_equal(manifest_read_header(r, &h, &e), 0);
    assert_int_equal(h.format_version, 1);
    assert_string_equal(h.run, RUN);
    assert_int_equal(h.mode, MANIFEST_ARCHIVE);
    assert_string_equal(h.source, "sftp://u@127.0.0.1/d \xc3\xa9t\xc3\xa9");
    assert_string_equal(h.job, "nightly");
    assert_string_equal(h.tool, "arca test");
    assert_string_equal(h.compression, "zstd");
    assert_string_equal(h.archive, "archives/" RUN ".tar.zst");
    assert_int_equal(h.started_ms, 1795338900120);
    manifest_header_owned_clear(&h);
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct manifest_entry m, want;
        struct manifest_trailer_owned t;
        int rc = manifest_read_next(r, &m, &t, &e);
        if (rc != 1)
            print_message("entry %zu: %s\n", i, e.msg);
        assert_int_equal(rc, 1);
        sample_entry(i, &want);
        assert_int_equal(m.path_len, want.path_len);
        assert_memory_equal(m.path, want.path, want.path_len);
        assert_int_equal(m.path[m.path_len], '\0');
        assert_int_equal(m.type, want.type);
        assert_true(m.size == want.size);
        assert_true(m.mtime_ns == want.mtime_ns);
        assert_int_equal(m.mode, want.mode);
        assert_int_equal(m.offset, want.offset);
        assert_int_equal(m.stored_current, want.stored_current);
        if (want.target) {
            assert_non_null(m.target);
            assert_int_equal(m.target_len, want.target_len);
            assert_memory_equal(m.target, want.target, want.target_len);
        } else {
            assert_null(m.target);
        }
        if (want.err_code) {
            assert_int_equal(m.err_code, want.err_code);
            assert_string_equal(m.err_class, err_code_name(want.err_code));
            assert_string_equal(m.sha256, "");
            if (want.type == MANIFEST_FILE)
                assert_string_equal(m.err_msg, want.err_msg);
            else /* the invalid byte became U+FFFD */
                assert_string_equal(m.err_msg, "cannot read link: bad \xef\xbf\xbd byte");
        } else {
            assert_int_equal(m.err_code, 0);
            assert_null(m.err_class);
            assert_string_equal(m.sha256, want.sha256);
        }
        manifest_entry_clear(&m);
    }
    struct manifest_entry m;
    struct manifest_trailer_owned t;
    assert_int_equal(manifest_read_next(r, &m, &t, &e), 2);
    assert_int_equal(t.finished_ms, 1795338960007);
    assert_string_equal(t.status, "partial");
    assert_int_equal(t.files, NSAMPLES - 2);
    assert_int_equal(t.bytes, 42);
    assert_int_equal(t.errors, 2);
    assert_true(t.archive_size == INT64_MAX);
    assert_int_equal(strspn(t.archive_sha256, "f"), 64);
    /* called again after the trailer: a programming error, not a crash */
    assert_int_equal(manifest_read_next(r, &m, &t, &e), ERR_INTERNAL);
    /* bounded: one read never asks for more than a line's worth */
    assert_true(s.max_cap <= 2 * MANIFEST_LINE_MAX);
    manifest_reader_free(r);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    write_sample(&out);
    const size_t steps[] = {0, 1, 2, 7, 100, 4096};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++)
        check_sample(out.data, out.len, steps[k]);
    buf_release(&out);
}

/* The exact bytes of some lines: field names and types of FORMAT.md, no
 * spaces, raw UTF-8, '\n' after each line. */
static void test_exact_lines(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    write_sample(&out);
    char *lines[NSAMPLES + 2];
    size_t n = 0;
    for (char *p = out.data, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        assert_true(n < NSAMPLES + 2);
        *nl = '\0';
        lines[n++] = p;
    }
    assert_int_equal(n, NSAMPLES + 2);
    assert_int_equal(out.data[out.len - 1], '\0'); /* was the last '\n' */
    assert_string_equal(
        lines[0], "{\"type\":\"header\",\"format_version\":1,\"run\":\"" RUN "\","
                  "\"mode\":\"archive\",\"source\":\"sftp://u@127.0.0.1/d \xc3\xa9t\xc3\xa9\","
                  "\"job\":\"nightly\",\"tool\":\"arca test\","
                  "\"started\":\"2026-11-22T09:15:00.120Z\",\"compression\":\"zstd\","
                  "\"archive\":\"archives/" RUN ".tar.zst\"}");
    assert_string_equal(lines[2], "{\"type\":\"file\",\"path\":\"a-b\",\"size\":0,\"mtime_ns\":0,"
                                  "\"mode\":420,\"sha256\":\"" /* 64 x '1' */
                                  "1111111111111111111111111111111111111111111111111111111111111111"
                                  "\",\"stored\":\"current\",\"offset\":512}");
    assert_string_equal(lines[4], "{\"type\":\"file\",\"path\":\"a/b\\n\\\"q\\\"\\\\x\\t\","
                                  "\"size\":3,\"mtime_ns\":2,\"sha256\":\""
                                  "3333333333333333333333333333333333333333333333333333333333333333"
                                  "\",\"offset\":1536}");
    assert_string_equal(lines[5], "{\"type\":\"symlink\",\"path\":\"a0\",\"size\":0,"
                                  "\"target\":\"a-b\",\"offset\":2048}");
    assert_string_equal(lines[6], "{\"type\":\"file\",\"path_b64\":\"YmFk//5uYW1l\","
                                  "\"size\":9223372036854775807,\"mtime_ns\":1,\"sha256\":\""
                                  "5555555555555555555555555555555555555555555555555555555555555555"
                                  "\",\"stored\":\"current\"}");
    assert_string_equal(lines[9], "{\"type\":\"symlink\",\"path\":\"link-bad\",\"size\":0,"
                                  "\"mtime_ns\":5,\"mode\":511,\"target_b64\":\"dMMo\"}");
    assert_string_equal(lines[13], "{\"type\":\"file\",\"path\":\"zz-failed\",\"size\":100,"
                                   "\"offset\":6144,\"error\":{\"class\":"
                                   "\"io\",\"message\":\"'zz-failed' changed size while being "
                                   "read\"}}");
    assert_string_equal(
        lines[14],
        "{\"type\":\"symlink\",\"path\":\"zz-failed-link\",\"size\":0,"
        "\"stored\":\"current\",\"offset\":6656,\"error\":{\"class\":\"permission\",\"message\":"
        "\"cannot read link: bad \xef\xbf\xbd byte\"}}");
    assert_string_equal(lines[NSAMPLES + 1],
                        "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00.007Z\","
                        "\"status\":\"partial\",\"files\":12,\"bytes\":42,\"errors\":2,"
                        "\"archive_size\":9223372036854775807,\"archive_sha256\":\""
                        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"}");
    buf_release(&out);
}

/* ---- independent readers: python3 (json, base64) and jq --------------------- */

static const char oracle_py[] =
    "import base64, json, sys\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "assert raw.endswith(b'\\n'), 'no newline at the end'\n"
    "L = [json.loads(l) for l in raw[:-1].split(b'\\n')]\n"
    "assert all(isinstance(x, dict) for x in L)\n"
    "h, t, E = L[0], L[-1], L[1:-1]\n"
    "assert h['type'] == 'header' and h['format_version'] == 1, h\n"
    "assert h['run'] == '" RUN "' and h['mode'] == 'archive', h\n"
    "assert h['started'] == '2026-11-22T09:15:00.120Z', h\n"
    "assert t['type'] == 'trailer', t\n"
    "assert not any(x['type'] in ('header', 'trailer') for x in E)\n"
    "def raw_of(x, k):\n"
    "    if k + '_b64' in x:\n"
    "        assert k not in x, x\n"
    "        b = base64.b64decode(x[k + '_b64'], validate=True)\n"
    "        try:\n"
    "            b.decode('utf-8')\n"
    "        except UnicodeDecodeError:\n"
    "            return b\n"
    "        raise AssertionError('base64 for valid UTF-8: %r' % x)\n"
    "    return x[k].encode('utf-8')\n"
    "P = [raw_of(x, 'path') for x in E]\n"
    "assert P == sorted(P), 'not in byte order'\n"
    "assert len(set(P)) == len(P), 'a path twice'\n"
    "assert P[5] == b'bad\\xff\\xfename', P[5]\n"
    "assert P[7] == b'ed\\xed\\xa0\\x80surrogate', P[7]\n"
    "links = {raw_of(x, 'path'): raw_of(x, 'target') for x in E\n"
    "         if x['type'] == 'symlink' and 'error' not in x}\n"
    "assert links[b'link-bad'] == b't\\xc3\\x28', links\n"
    "ok = [x for x in E if 'error' not in x]\n"
    "bad = [x for x in E if 'error' in x]\n"
    "assert all(type(x['size']) is int and x['size'] >= 0 for x in E)\n"
    "assert all('sha256' not in x for x in bad)\n"
    "assert all(len(x['sha256']) == 64 for x in ok if x['type'] == 'file')\n"
    "assert t['files'] == len(ok) and t['errors'] == len(bad), t\n"
    "assert max(x['size'] for x in E) == 2**63 - 1\n"
    "assert t['status'] == 'partial' and t['archive_size'] == 2**63 - 1\n"
    "print(len(E))\n";

static void test_python_and_jq(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out, 0);
    write_sample(&out);
    char dir[] = "/tmp/arca-manifest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char m[128], py[128], cmd[512], got[64];
    snprintf(m, sizeof(m), "%s/m.jsonl", dir);
    snprintf(py, sizeof(py), "%s/oracle.py", dir);
    write_file(m, out.data, out.len);
    write_file(py, oracle_py, strlen(oracle_py));

    snprintf(cmd, sizeof(cmd), "%s %s %s", python(), py, m);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(got, 1, sizeof(got) - 1, p);
    got[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_int_equal(atoi(got), NSAMPLES);

    /* jq: every line is one JSON value; header first, trailer last; the
     * entry count; non-UTF-8 paths only as path_b64 */
    snprintf(cmd, sizeof(cmd),
             "jq -c . %s > /dev/null && jq -e -s 'length == %zu and .[0].type == \"header\" "
             "and .[-1].type == \"trailer\" and ([.[] | select(.path_b64)] | length) == 4 "
             "and ([.[1:-1][] | select(.type != \"file\" and .type != \"symlink\")] | length) "
             "== 0' %s > /dev/null",
             m, NSAMPLES + 2, m);
    assert_int_equal(system(cmd), 0);
    /* the oracles do fail: a swapped pair of lines */
    snprintf(cmd, sizeof(cmd), "sed -i '3{h;d};4G' %s && ! %s %s %s 2> /dev/null", m, python(), py,
             m);
    assert_int_equal(system(cmd), 0);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    buf_release(&out);
}

/* ---- the reader refuses what is not a manifest ------------------------------ */

static int read_all(const char *text, size_t len, struct err *e)
{
    struct src s = {.data = text, .len = len};
    struct manifest_reader *r = manifest_reader_new(from_src, &s, "runs/x.manifest.jsonl");
    assert_non_null(r);
    struct manifest_header_owned h;
    err_clear(e);
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

#define HDR_FIELDS "\"run\":\"" RUN "\",\"source\":\"s\",\"tool\":\"t\""
#define HDR_AT(mode)                                                                               \
    "{\"type\":\"header\",\"format_version\":1," HDR_FIELDS ",\"mode\":\"" mode "\","              \
    "\"started\":\"2026-11-22T09:15:00.000Z\"}\n"
#define HDR HDR_AT("mirror")
#define AHDR                                                                                       \
    "{\"type\":\"header\",\"format_version\":1," HDR_FIELDS ",\"mode\":\"archive\","               \
    "\"started\":\"2026-11-22T09:15:00Z\",\"compression\":\"gzip\","                               \
    "\"archive\":\"archives/" RUN ".tar.gz\"}\n"
#define TRL                                                                                        \
    "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00.000Z\",\"status\":\"succeeded\","    \
    "\"files\":1,\"bytes\":1,\"errors\":0}\n"
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA "\"sha256\":\"" HEX64 "\""
#define ENT(p) "{\"type\":\"file\",\"path\":\"" p "\",\"size\":1," SHA "}\n"
#define ENTX(fields) "{\"type\":\"file\",\"path\":\"a\"," fields "}\n"

struct bad_case {
    const char *text;
    int code;
    const char *msg; /* a substring of the message */
};

static const struct bad_case bad_cases[] = {
    /* refusal of a newer format, FORMAT.md's message */
    {"{\"type\":\"header\",\"format_version\":2,\"run\":\"" RUN "\",\"mode\":\"mirror\"}\n",
     ERR_REFUSED,
     "manifest 'runs/x.manifest.jsonl' has format version 2; this arca reads up to 1: upgrade "
     "arca"},
    {"", ERR_CORRUPT, "manifest 'runs/x.manifest.jsonl' is empty"},
    {HDR, ERR_CORRUPT, "manifest 'runs/x.manifest.jsonl' is truncated (no trailer after line 1)"},
    {HDR ENT("a"), ERR_CORRUPT,
     "manifest 'runs/x.manifest.jsonl' is truncated (no trailer after line 2)"},
    {HDR ENT("a") "{\"type\":\"trailer\"", ERR_CORRUPT,
     "line 3: the last line has no newline; the manifest is truncated"},
    {HDR ENT("a") TRL "\n", ERR_CORRUPT, "line 4: a line after the trailer"},
    {HDR ENT("a") TRL ENT("b"), ERR_CORRUPT, "line 4: a line after the trailer"},
    {HDR ENT("a") TRL "garbage", ERR_CORRUPT, "line 4: the last line has no newline"},
    {HDR ENT("a") TRL TRL, ERR_CORRUPT, "line 4: a line after the trailer"},
    /* order */
    {HDR ENT("b") ENT("a") TRL, ERR_CORRUPT,
     "manifest 'runs/x.manifest.jsonl' line 3: 'a' comes after 'b'; entries must be in "
     "increasing byte order"},
    {HDR ENT("a") ENT("c") ENT("c") TRL, ERR_CORRUPT, "line 4: 'c' is listed twice"},
    {HDR ENT("a/b") ENT("a-b") TRL, ERR_CORRUPT, "line 3: 'a-b' comes after 'a/b'"},
    {HDR ENT("ab") ENT("a") TRL, ERR_CORRUPT, "line 3: 'a' comes after 'ab'"},
    {HDR ENT("\xc3\xa9") "{\"type\":\"file\",\"path_b64\":\"/w==\",\"size\":1," SHA "}\n" ENT("b")
         TRL,
     ERR_CORRUPT, "line 4: 'b' comes after '\\xff'"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"/w==\",\"size\":1," SHA "}\n" ENT("\xc3\xa9") TRL,
     ERR_CORRUPT, "line 3: '\\xc3\\xa9' comes after '\\xff'"},
    /* path and path_b64 */
    {HDR "{\"type\":\"file\",\"path_b64\":\"!!!!\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"YQ=\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"YR==\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"Y===\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"YQ==YQ==\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"YQ\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' is not standard base64"},
    {HDR "{\"type\":\"file\",\"path_b64\":\"YQBi\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path_b64' holds a NUL byte"},
    {HDR "{\"type\":\"file\",\"path\":\"a\",\"path_b64\":\"YQ==\",\"size\":1," SHA "}\n" TRL,
     ERR_CORRUPT, "line 2: both 'path' and 'path_b64'"},
    {HDR "{\"type\":\"file\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: no 'path' (or 'path_b64')"},
    {HDR "{\"type\":\"file\",\"path\":7,\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: 'path' is not a string"},
    {HDR "{\"type\":\"file\",\"path\":\"\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: an empty path"},
    {HDR "{\"type\":\"file\",\"path\":\"a\\u0000b\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: not valid JSON"},
    /* types and lines */
    {HDR "{\"type\":\"fifo\",\"path\":\"a\",\"size\":1}\n" TRL, ERR_CORRUPT,
     "line 2: unknown type 'fifo'"},
    {HDR "{\"path\":\"a\",\"size\":1}\n" TRL, ERR_CORRUPT, "line 2: no string 'type'"},
    {HDR "{\"type\":1,\"path\":\"a\",\"size\":1}\n" TRL, ERR_CORRUPT, "line 2: no string 'type'"},
    {HDR HDR TRL, ERR_CORRUPT, "line 2: a second header"},
    {HDR "not json\n" TRL, ERR_CORRUPT, "manifest 'runs/x.manifest.jsonl' line 2: not valid JSON"},
    {HDR "\n" TRL, ERR_CORRUPT, "line 2: not valid JSON"},
    {HDR "[1,2]\n" TRL, ERR_CORRUPT, "line 2: not a JSON object"},
    {HDR "{\"type\":\"file\",\"path\":\"a\",\"size\":1," SHA "} x\n" TRL, ERR_CORRUPT,
     "line 2: not valid JSON"},
    {HDR "{\"type\":\"file\",\"path\":\"a\",\"path\":\"b\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: not valid JSON (duplicate object key"},
    {HDR "{\"type\":\"file\",\"path\":\"\xff\",\"size\":1," SHA "}\n" TRL, ERR_CORRUPT,
     "line 2: not valid JSON"},
    {ENT("a") TRL, ERR_CORRUPT, "line 1: the first line is not a manifest header"},
    {TRL, ERR_CORRUPT, "line 1: the first line is not a manifest header"},
    /* wrongly typed fields of an entry */
    {HDR ENTX("\"size\":\"1\"," SHA) TRL, ERR_CORRUPT,
     "line 2: 'size' is not a non-negative integer"},
    {HDR ENTX("\"size\":-1," SHA) TRL, ERR_CORRUPT, "line 2: 'size' is not a non-negative integer"},
    {HDR ENTX("\"size\":1.0," SHA) TRL, ERR_CORRUPT,
     "line 2: 'size' is not a non-negative integer"},
    {HDR ENTX("\"size\":null," SHA) TRL, ERR_CORRUPT,
     "line 2: 'size' is not a non-negative integer"},
    {HDR ENTX(SHA) TRL, ERR_CORRUPT, "line 2: 'size' is missing"},
    {HDR ENTX("\"size\":18446744073709551615," SHA) TRL, ERR_CORRUPT, "line 2: not valid JSON"},
    {HDR ENTX("\"size\":1,\"mtime_ns\":\"0\"," SHA) TRL, ERR_CORRUPT,
     "line 2: 'mtime_ns' is not an integer"},
    {HDR ENTX("\"size\":1,\"mode\":4096," SHA) TRL, ERR_CORRUPT,
     "line 2: 'mode' is not permission"},
    {HDR ENTX("\"size\":1,\"mode\":-1," SHA) TRL, ERR_CORRUPT, "line 2: 'mode' is not permission"},
    {HDR ENTX("\"size\":1,\"offset\":-5," SHA) TRL, ERR_CORRUPT,
     "line 2: 'offset' is not a non-negative integer"},
    {HDR ENTX("\"size\":1,\"sha256\":\"" HEX64 "0\"") TRL, ERR_CORRUPT,
     "line 2: 'sha256' is not 64 lowercase hex digits"},
    {HDR ENTX("\"size\":1,\"sha256\":\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789"
              "abcdef\"") TRL,
     ERR_CORRUPT, "line 2: 'sha256' is not 64 lowercase hex digits"},
    {HDR ENTX("\"size\":1,\"sha256\":64") TRL, ERR_CORRUPT,
     "line 2: 'sha256' is not 64 lowercase hex digits"},
    {HDR ENTX("\"size\":1,\"stored\":1," SHA) TRL, ERR_CORRUPT, "line 2: 'stored' is not a string"},
    {HDR ENTX("\"size\":1") TRL, ERR_CORRUPT, "line 2: a file without 'sha256' or 'error'"},
    {HDR ENTX("\"size\":1,\"error\":\"io\"") TRL, ERR_CORRUPT,
     "line 2: 'error' is not an object with the strings 'class' and 'message'"},
    {HDR ENTX("\"size\":1,\"error\":{\"class\":\"io\"}") TRL, ERR_CORRUPT,
     "line 2: 'error' is not an object"},
    {HDR ENTX("\"size\":1,\"error\":{\"class\":\"io\",\"message\":\"m\"}," SHA) TRL, ERR_CORRUPT,
     "line 2: an entry with both 'error' and 'sha256'"},
    {HDR "{\"type\":\"symlink\",\"path\":\"l\",\"size\":0}\n" TRL, ERR_CORRUPT,
     "line 2: no 'target' (or 'target_b64')"},
    {HDR "{\"type\":\"symlink\",\"path\":\"l\",\"size\":0,\"target_b64\":\"%%%%\"}\n" TRL,
     ERR_CORRUPT, "line 2: 'target_b64' is not standard base64"},
    {HDR "{\"type\":\"symlink\",\"path\":\"l\",\"size\":0,\"target\":\"x\","
         "\"target_b64\":\"eA==\"}\n" TRL,
     ERR_CORRUPT, "line 2: both 'target' and 'target_b64'"},
    /* the header */
    {"{\"type\":\"header\",\"format_version\":\"1\",\"run\":\"" RUN "\"}\n", ERR_CORRUPT,
     "line 1: 'format_version' is not a positive integer"},
    {"{\"type\":\"header\",\"format_version\":0}\n", ERR_CORRUPT,
     "line 1: 'format_version' is not a positive integer"},
    {"{\"type\":\"header\",\"run\":\"" RUN "\"}\n", ERR_CORRUPT,
     "line 1: 'format_version' is not a positive integer"},
    {"{\"type\":\"header\",\"format_version\":1,\"run\":\"20261122T091500Z-3FA94C1E\"}\n",
     ERR_CORRUPT, "line 1: 'run' is not a run id"},
    {HDR_AT("copy") TRL, ERR_CORRUPT, "line 1: 'mode' is not \"mirror\" or \"archive\""},
    {"{\"type\":\"header\",\"format_version\":1,\"run\":\"" RUN "\",\"mode\":\"mirror\","
     "\"tool\":\"t\",\"started\":\"2026-11-22T09:15:00Z\"}\n" TRL,
     ERR_CORRUPT, "line 1: 'source' is missing"},
    {"{\"type\":\"header\",\"format_version\":1,\"run\":\"" RUN "\",\"mode\":\"mirror\","
     "\"source\":[],\"tool\":\"t\",\"started\":\"2026-11-22T09:15:00Z\"}\n" TRL,
     ERR_CORRUPT, "line 1: 'source' is not a string"},
    {"{\"type\":\"header\",\"format_version\":1,\"run\":\"" RUN "\",\"mode\":\"mirror\","
     "\"source\":\"s\",\"started\":\"2026-11-22T09:15:00Z\"}\n" TRL,
     ERR_CORRUPT, "line 1: 'tool' is missing"},
    {"{\"type\":\"header\",\"format_version\":1," HDR_FIELDS ",\"mode\":\"mirror\","
     "\"started\":\"2026-11-22 09:15:00Z\"}\n" TRL,
     ERR_CORRUPT, "line 1: 'started' is not an RFC 3339 UTC time"},
    {"{\"type\":\"header\",\"format_version\":1," HDR_FIELDS ",\"mode\":\"mirror\","
     "\"started\":\"2026-11-22T09:15:00Z\",\"job\":5}\n" TRL,
     ERR_CORRUPT, "line 1: 'job' is not a string"},
    {HDR_AT("archive") TRL, ERR_CORRUPT,
     "line 1: an archive manifest needs 'compression' and 'archive'"},
    /* the trailer */
    {HDR "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00Z\",\"status\":\"failed\","
         "\"files\":0,\"bytes\":0,\"errors\":0}\n",
     ERR_CORRUPT, "line 2: 'status' is not \"succeeded\" or \"partial\""},
    {HDR "{\"type\":\"trailer\",\"status\":\"succeeded\",\"files\":0,\"bytes\":0,\"errors\":0}\n",
     ERR_CORRUPT, "line 2: 'finished' is not an RFC 3339 UTC time"},
    {HDR "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00Z\",\"status\":\"succeeded\","
         "\"files\":\"0\",\"bytes\":0,\"errors\":0}\n",
     ERR_CORRUPT, "line 2: 'files' is not a non-negative integer"},
    {HDR "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00Z\",\"status\":\"succeeded\","
         "\"files\":0,\"bytes\":0}\n",
     ERR_CORRUPT, "line 2: 'errors' is not a non-negative integer"},
    {HDR "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00Z\",\"status\":\"succeeded\","
         "\"files\":0,\"bytes\":0,\"errors\":0,\"archive_size\":-1}\n",
     ERR_CORRUPT, "line 2: 'archive_size' is not a non-negative integer"},
    {AHDR TRL, ERR_CORRUPT, "line 2: 'archive_size' is missing (archive mode)"},
    {AHDR "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00Z\",\"status\":\"succeeded\","
          "\"files\":0,\"bytes\":0,\"errors\":0,\"archive_size\":10}\n",
     ERR_CORRUPT, "line 2: 'archive_sha256' is missing (archive mode)"},
};

static void test_bad_input(void **state)
{
    (void)state;
    struct err e;
    /* the well-formed neighbours of the cases below are accepted */
    static const char *good[] = {
        HDR TRL,
        HDR ENT("a") TRL,
        HDR ENT("a") ENT("a-b") ENT("a/b") ENT("a0") ENT("b") TRL,
        HDR ENTX("\"size\":1,\"future_field\":{\"x\":[1]}," SHA) TRL, /* unknown: ignored */
        HDR ENTX("\"size\":1,\"error\":{\"class\":\"from_the_future\",\"message\":\"m\"}") TRL,
        HDR "{\"type\":\"symlink\",\"path\":\"l\",\"size\":0,\"error\":{\"class\":\"io\","
            "\"message\":\"m\"}}\n" TRL,
        HDR "{\"type\":\"file\",\"path_b64\":\"/w==\",\"size\":1," SHA "}\n" TRL,
        HDR ENTX("\"size\":1,\"mtime_ns\":-9223372036854775807," SHA) TRL,
        AHDR "{\"type\":\"trailer\",\"finished\":\"2026-11-22T09:16:00Z\",\"status\":"
             "\"succeeded\",\"files\":0,\"bytes\":0,\"errors\":0,\"archive_size\":10,"
             "\"archive_sha256\":\"" HEX64 "\"}\n",
        "{\"type\":\"header\",\"format_version\":1," HDR_FIELDS ",\"mode\":\"mirror\","
        "\"started\":\"2026-11-22T09:15:00Z\",\"new\":1}\r\n" TRL,
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = read_all(good[i], strlen(good[i]), &e);
        if (rc)
            print_message("good case %zu: %s\n", i, e.msg);
        assert_int_equal(rc, 0);
    }
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        int rc = read_all(c->text, strlen(c->text), &e);
        if (rc != c->code || !strstr(e.msg, c->msg))
            print_message("bad case %zu: rc %d, message: %s\nwanted: %s\n", i, rc, e.msg, c->msg);
        assert_int_equal(rc, c->code);
        assert_non_null(strstr(e.msg, c->msg));
        assert_null(strchr(e.msg, '\n')); /* one line */
    }
    /* the unknown error class reads as ERR_IO, the known ones as theirs */
    struct src s = {.data =
                        HDR ENTX("\"size\":1,\"error\":{\"class\":\"x\",\"message\":\"m\"}") TRL};
    s.len = strlen(s.data);
    struct manifest_reader *r = manifest_reader_new(from_src, &s, "n");
    struct manifest_header_owned h;
    struct manifest_entry m;
    struct manifest_trailer_owned t;
    assert_int_equal(manifest_read_header(r, &h, &e), 0);
    manifest_header_owned_clear(&h);
    assert_int_equal(manifest_read_next(r, &m, &t, &e), 1);
    assert_int_equal(m.err_code, ERR_IO);
    assert_string_equal(m.err_class, "x");
    manifest_entry_clear(&m);
    manifest_reader_free(r);
}

/* Lines up to MANIFEST_LINE_MAX bytes are read, longer ones refused, and a
 * 2 MiB line never makes the reader hold more than about two lines. */
/* The reader's fast path (the lines arca writes) and jansson, which takes
 * every other line, agree: what one refuses the other never accepts. */
static void test_fast_path_edges(void **state)
{
    (void)state;
    struct err e;
    static const char *const good[] = {
        HDR ENT("a") TRL,
        HDR " { \"type\" : \"file\" ,\t\"path\":\"a\", \"size\" : 1 , " SHA " } \n" TRL,
        HDR "{\"type\":\"file\",\"path\":\"\\u0061\",\"size\":1," SHA "}\n" TRL,
        HDR "{\"type\":\"file\",\"path\":\"a\\/b\\n\",\"size\":1," SHA "}\n" TRL,
        HDR ENTX("\"size\":9223372036854775807," SHA) TRL,
        HDR ENTX("\"size\":0,\"mtime_ns\":-1795348366613485955," SHA) TRL,
        HDR ENTX("\"size\":1,\"x\":{\"y\":\"z\"},\"z\":[1,2.5,true,null]," SHA) TRL,
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = read_all(good[i], strlen(good[i]), &e);
        if (rc)
            fail_msg("good input %zu refused: %s", i, e.msg);
    }
    static const char *const bad[] = {
        HDR ENTX("\"size\":1,\"size\":1," SHA) TRL,
        HDR ENTX("\"size\":01," SHA) TRL,
        HDR ENTX("\"size\":9223372036854775808," SHA) TRL,
        HDR ENTX("\"size\":1.0," SHA) TRL,
        HDR ENTX("\"size\":-," SHA) TRL,
        HDR ENTX("\"size\":1,," SHA) TRL,
        HDR ENTX("\"size\":1," SHA ",") TRL,
        HDR "{\"type\":\"file\",\"path\":\"a\tb\",\"size\":1," SHA "}\n" TRL,
        HDR "{\"type\":\"file\",\"path\":\"\xff\",\"size\":1," SHA "}\n" TRL,
        HDR "{\"type\":\"file\",\"path\":\"a\\x\",\"size\":1," SHA "}\n" TRL,
        HDR "{\"type\":\"file\",\"path\":\"a\",\"size\":1," SHA "} x\n" TRL,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = read_all(bad[i], strlen(bad[i]), &e);
        if (rc != ERR_CORRUPT)
            fail_msg("bad input %zu: want ERR_CORRUPT, got %d (%s)", i, rc, e.msg);
        if (!strstr(e.msg, "line 2"))
            fail_msg("bad input %zu: the message does not name line 2: %s", i, e.msg);
    }
}

static void test_long_lines(void **state)
{
    (void)state;
    struct err e;
    const char *ent = ENT("a");
    size_t ent_len = strlen(ent) - 1; /* without '\n' */
    for (int extra = 0; extra <= 1; extra++) {
        size_t line = MANIFEST_LINE_MAX + (size_t)extra;
        size_t total = strlen(HDR) + line + 1 + strlen(TRL);
        char *text = malloc(total + 1);
        assert_non_null(text);
        char *p = text;
        memcpy(p, HDR, strlen(HDR));
        p += strlen(HDR);
        /* the entry padded with spaces before its closing brace */
        memcpy(p, ent, ent_len - 1);
        memset(p + ent_len - 1, ' ', line - ent_len);
        p[line - 1] = '}';
        p[line] = '\n';
        p += line + 1;
        memcpy(p, TRL, strlen(TRL) + 1);
        for (size_t step = 0; step <= 65536; step += 65536) {
            struct src s = {.data = text, .len = total, .step = step};
            struct manifest_reader *r = manifest_reader_new(from_src, &s, "long.jsonl");
            struct manifest_header_owned h;
            struct manifest_entry m;
            struct manifest_trailer_owned t;
            assert_int_equal(manifest_read_header(r, &h, &e), 0);
            manifest_header_owned_clear(&h);
            int rc = manifest_read_next(r, &m, &t, &e);
            if (extra) {
                assert_int_equal(rc, ERR_CORRUPT);
                assert_string_equal(e.msg, "manifest 'long.jsonl' line 2: the line is longer than "
                                           "1 MiB; this is not an arca manifest");
            } else {
                assert_int_equal(rc, 1);
                manifest_entry_clear(&m);
                assert_int_equal(manifest_read_next(r, &m, &t, &e), 2);
            }
            assert_true(s.max_cap <= 2 * MANIFEST_LINE_MAX);
            manifest_reader_free(r);
        }
        free(text);
    }
    /* 2 and 8 MiB in one line: refused without holding more than about two
     * lines' worth */
    for (size_t big = (size_t)2 << 20; big <= (size_t)8 << 20; big *= 4) {
        char *huge = malloc(strlen(HDR) + big + 2);
        assert_non_null(huge);
        strcpy(huge, HDR);
        memset(huge + strlen(HDR), 'x', big);
        strcpy(huge + strlen(HDR) + big, "\n");
        struct src s = {.data = huge, .len = strlen(huge)};
        struct manifest_reader *r = manifest_reader_new(from_src, &s, "huge.jsonl");
        struct manifest_header_owned h;
        struct manifest_entry m;
        struct manifest_trailer_owned t;
        assert_int_equal(manifest_read_header(r, &h, &e), 0);
        manifest_header_owned_clear(&h);
        assert_int_equal(manifest_read_next(r, &m, &t, &e), ERR_CORRUPT);
        assert_string_equal(e.msg, "manifest 'huge.jsonl' line 2: the line is longer than 1 MiB; "
                                   "this is not an arca manifest");
        assert_true(s.pos <= strlen(HDR) + 2 * MANIFEST_LINE_MAX);
        assert_true(s.max_cap <= 2 * MANIFEST_LINE_MAX);
        manifest_reader_free(r);
        free(huge);
    }
}

/* Errors of the read function and the sink come back as they were. */
static void test_io_errors(void **state)
{
    (void)state;
    struct err e;
    const char *text = HDR ENT("a") TRL;
    struct src s = {.data = text, .len = strlen(text), .step = 10, .fail_at = 5};
    struct manifest_reader *r = manifest_reader_new(from_src, &s, "x");
    struct manifest_header_owned h;
    struct manifest_entry m;
    struct manifest_trailer_owned t;
    int rc = manifest_read_header(r, &h, &e);
    if (!rc) {
        manifest_header_owned_clear(&h);
        rc = manifest_read_next(r, &m, &t, &e);
    }
    assert_int_equal(rc, ERR_NET);
    assert_string_equal(e.msg, "connection reset");
    manifest_reader_free(r);

    struct manifest_writer *w = manifest_writer_new(sink_fails, NULL);
    struct manifest_header hd = {.mode = MANIFEST_MIRROR, .source = "s", .started_ms = 0};
    strcpy(hd.run, RUN);
    assert_int_equal(manifest_write_header(w, &hd, &e), ERR_IO);
    assert_string_equal(e.msg, "disk full");
    manifest_writer_free(w);
}

/* A manifest of 200,000 entries goes through in order. */
static void test_many_entries(void **state)
{
    (void)state;
    enum { N = 200000 };
    struct buf out;
    buf_init(&out, 0);
    struct manifest_writer *w = manifest_writer_new(to_buf, &out);
    struct err e;
    struct manifest_header h = {.mode = MANIFEST_MIRROR, .source = "/src", .started_ms = 1};
    strcpy(h.run, RUN);
    assert_int_equal(manifest_write_header(w, &h, &e), 0);
    for (int i = 0; i < N; i++) {
        char p[32];
        struct manifest_entry m = {.path = p,
                                   .type = MANIFEST_FILE,
                                   .size = (uint64_t)i,
                                   .mtime_ns = INT64_MIN,
                                   .offset = -1,
                                   .stored_current = true};
        m.path_len = (size_t)snprintf(p, sizeof(p), "d%03d/f%07d", i / 1000, i);
        memset(m.sha256, 'e', 64);
        assert_int_equal(manifest_write_entry(w, &m, &e), 0);
    }
    struct manifest_trailer t = {
        .finished_ms = 2, .status = "succeeded", .files = N, .archive_size = -1};
    assert_int_equal(manifest_write_trailer(w, &t, &e), 0);
    manifest_writer_free(w);
    struct src s = {.data = out.data, .len = out.len};
    struct manifest_reader *r = manifest_reader_new(from_src, &s, "many");
    struct manifest_header_owned ho;
    assert_int_equal(manifest_read_header(r, &ho, &e), 0);
    assert_int_equal(ho.mode, MANIFEST_MIRROR);
    assert_null(ho.compression);
    manifest_header_owned_clear(&ho);
    int n = 0, rc;
    struct manifest_entry m;
    struct manifest_trailer_owned to;
    while ((rc = manifest_read_next(r, &m, &to, &e)) == 1) {
        assert_int_equal(m.size, (uint64_t)n);
        assert_true(m.stored_current);
        manifest_entry_clear(&m);
        n++;
    }
    assert_int_equal(rc, 2);
    assert_int_equal(n, N);
    assert_int_equal(to.files, N);
    assert_int_equal(to.archive_size, -1);
    assert_string_equal(to.archive_sha256, "");
    assert_true(s.max_cap <= 2 * MANIFEST_LINE_MAX);
    manifest_reader_free(r);
    buf_release(&out);
}

/* ---- the writer refuses what the reader would ------------------------------- */

static void test_writer_refusals(void **state)
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
    memset(m.sha256, 'a', 64);
    m.path = "b";
    m.path_len = 1;
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    assert_non_null(strstr(e.msg, "before the header"));
    struct manifest_trailer t = {.status = "succeeded", .archive_size = -1};
    assert_int_equal(manifest_write_trailer(w, &t, &e), ERR_INTERNAL);

    struct manifest_header h = {.mode = MANIFEST_MIRROR, .source = "s"};
    strcpy(h.run, "20261122T091500Z-3fa94c1");
    assert_int_equal(manifest_write_header(w, &h, &e), ERR_INTERNAL);
    strcpy(h.run, RUN);
    h.format_version = 2;
    assert_int_equal(manifest_write_header(w, &h, &e), ERR_INTERNAL);
    h.format_version = 0;
    h.mode = MANIFEST_ARCHIVE;
    assert_int_equal(manifest_write_header(w, &h, &e), ERR_INTERNAL);
    h.mode = MANIFEST_MIRROR;
    assert_int_equal(out.len, 0);
    assert_int_equal(manifest_write_header(w, &h, &e), 0);
    assert_int_equal(manifest_write_header(w, &h, &e), ERR_INTERNAL);

    assert_int_equal(manifest_write_entry(w, &m, &e), 0);
    size_t len = out.len;
    m.path = "a";
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    assert_string_equal(e.msg, "manifest entry 'a' is not after 'b' in byte order");
    m.path = "b";
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    m.path = "b\xff";
    m.path_len = 2;
    assert_int_equal(manifest_write_entry(w, &m, &e), 0);
    m.path = "b\x01";
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    assert_string_equal(e.msg, "manifest entry 'b\\x01' is not after 'b\\xff' in byte order");
    len = out.len;
    m.path = "c\0d";
    m.path_len = 3;
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    m.path = "";
    m.path_len = 0;
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    m.path = "c";
    m.path_len = 1;
    m.size = (uint64_t)INT64_MAX + 1;
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    m.size = 1;
    m.sha256[3] = 'A';
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    m.sha256[0] = '\0';
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    assert_int_equal(out.len, len); /* nothing of the refused entries was written */
    m.err_code = ERR_IO;            /* an error needs no sha256 */
    assert_int_equal(manifest_write_entry(w, &m, &e), 0);

    t.status = "failed";
    assert_int_equal(manifest_write_trailer(w, &t, &e), ERR_INTERNAL);
    t.status = "succeeded";
    memset(t.archive_sha256, 'G', 64);
    assert_int_equal(manifest_write_trailer(w, &t, &e), ERR_INTERNAL);
    t.archive_sha256[0] = '\0';
    assert_int_equal(manifest_write_trailer(w, &t, &e), 0);
    assert_int_equal(manifest_write_trailer(w, &t, &e), ERR_INTERNAL);
    m.path = "d";
    assert_int_equal(manifest_write_entry(w, &m, &e), ERR_INTERNAL);
    assert_non_null(strstr(e.msg, "after the trailer"));
    manifest_writer_free(w);

    /* what was written reads back */
    assert_int_equal(read_all(out.data, out.len, &e), 0);
    buf_release(&out);
}

/* ---- SHA256SUMS ---------------------------------------------------------------- */

/* sha256sums_line against what GNU sha256sum prints for awkward names, and
 * `sha256sum -c` accepts the lines. */
static void test_sha256sums_gnu(void **state)
{
    (void)state;
    char dir[] = "/tmp/arca-sums-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* in the order of the shell glob below (C locale) */
    static const char *names[] = {
        "\\lead", "back\\slash", "both\\\nand\r", "cr\rname", "new\nline",
        "plain",  "sp ace  two", "tab\there",     "x\\\\",    "\xc3\xbc",
    };
    enum { N = sizeof(names) / sizeof(names[0]) };
    struct buf mine;
    buf_init(&mine, 0);
    char d[128];
    snprintf(d, sizeof(d), "%s/files", dir);
    assert_int_equal(mkdir(d, 0700), 0);
    for (size_t i = 0; i < N; i++) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", d, names[i]);
        char content[64];
        int clen = snprintf(content, sizeof(content), "content of file %zu\n", i);
        write_file(p, content, (size_t)clen);
        unsigned char raw[32];
        char hex[65];
        hash_sha256_raw(content, (size_t)clen, raw);
        hex_encode(raw, 32, hex);
        struct err e;
        assert_int_equal(sha256sums_line(&mine, hex, names[i], strlen(names[i]), &e), 0);
    }
    /* GNU's lines for the same files */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "export LC_ALL=C && cd %s/files && sha256sum -- * > ../gnu", dir);
    assert_int_equal(system(cmd), 0);
    char gpath[128];
    snprintf(gpath, sizeof(gpath), "%s/gnu", dir);
    FILE *f = fopen(gpath, "rb");
    assert_non_null(f);
    char gnu[4096];
    size_t n = fread(gnu, 1, sizeof(gnu), f);
    fclose(f);
    if (mine.len != n || memcmp(mine.data, gnu, n) != 0)
        print_message("mine:\n%.*s\ngnu:\n%.*s\n", (int)mine.len, mine.data, (int)n, gnu);
    assert_int_equal(mine.len, n);
    assert_memory_equal(mine.data, gnu, n);
    /* escaping happened where it should: 6 of the names */
    int escaped = 0;
    for (size_t i = 0; i < mine.len; i++)
        escaped += mine.data[i] == '\\' && (i == 0 || mine.data[i - 1] == '\n');
    assert_int_equal(escaped, 6);
    /* and sha256sum -c takes ours */
    char mpath[128];
    snprintf(mpath, sizeof(mpath), "%s/mine", dir);
    write_file(mpath, mine.data, mine.len);
    snprintf(cmd, sizeof(cmd), "cd %s/files && sha256sum --strict --quiet -c ../mine", dir);
    assert_int_equal(system(cmd), 0);
    /* a changed file fails the check (the oracle is not blind) */
    snprintf(cmd, sizeof(cmd),
             "cd %s/files && echo x >> plain && ! sha256sum --quiet -c ../mine > /dev/null 2>&1",
             dir);
    assert_int_equal(system(cmd), 0);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    buf_release(&mine);

    /* a full buffer: ERR_NOMEM and the buffer as it was */
    struct buf small;
    buf_init(&small, 80);
    struct err e;
    assert_int_equal(sha256sums_line(&small, HEX64, "a", 1, &e), 0);
    assert_int_equal(sha256sums_line(&small, HEX64, "b\\c", 3, &e), ERR_NOMEM);
    assert_int_equal(small.len, 68);
    assert_string_equal(small.data, HEX64 "  a\n");
    buf_release(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_exact_lines),
        cmocka_unit_test(test_python_and_jq),  cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_long_lines),     cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_many_entries),   cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_sha256sums_gnu), cmocka_unit_test(test_fast_path_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
