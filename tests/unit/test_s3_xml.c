/*
 * test_s3_xml.c - S3 XML parsers: listings fed in every chunking, encoded
 * keys, error documents, hostile documents, bounded memory, and the
 * CompleteMultipartUpload body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "core/buf.h"
#include "core/error.h"
#include "storage/s3/s3_xml.h"

/* ---- collecting what a listing delivers ---- */

#define MAX_ENTRIES 64

struct got_entry {
    bool is_prefix;
    char key[S3_XML_KEY_MAX + 1];
    size_t key_len;
    uint64_t size;
    int64_t mtime_ns;
    char etag[S3_XML_ETAG_MAX];
    char storage_class[S3_XML_STORAGE_CLASS_MAX];
};

struct got {
    size_t n;
    struct got_entry ent[MAX_ENTRIES];
    /* behaviour of the callback */
    size_t stop_after; /* return 1 once n reaches it (0: never) */
    int fail_code;     /* return this (with a message) once n reaches stop_after */
    /* what finish said */
    int rc;
    struct err e;
    struct s3_list_result res;
};

static int collect_cb(void *ctx, const struct s3_list_entry *ent, struct err *e)
{
    struct got *g = ctx;
    assert_true(g->n < MAX_ENTRIES);
    struct got_entry *x = &g->ent[g->n++];
    x->is_prefix = ent->is_prefix;
    assert_true(ent->key_len <= S3_XML_KEY_MAX);
    assert_int_equal(strlen(ent->key), ent->key_len);
    memcpy(x->key, ent->key, ent->key_len + 1);
    x->key_len = ent->key_len;
    x->size = ent->size;
    x->mtime_ns = ent->mtime_ns;
    snprintf(x->etag, sizeof(x->etag), "%s", ent->etag);
    snprintf(x->storage_class, sizeof(x->storage_class), "%s", ent->storage_class);
    if (g->stop_after && g->n == g->stop_after) {
        if (g->fail_code)
            return err_set(e, g->fail_code, "cannot write 'state.db': disk full");
        return 1;
    }
    return 0;
}

/* Chunking modes: 0 = whole body, 1 = one byte at a time, >1 = random sizes
 * from that seed. Returns the first non-zero feed/finish code. */
static int run_list(const char *body, size_t len, bool url_encoded, unsigned mode, struct got *g)
{
    struct s3_list_parser *p = s3_list_parser_new(url_encoded, collect_cb, g);
    assert_non_null(p);
    int r = 0;
    size_t off = 0;
    unsigned seed = mode;
    err_clear(&g->e);
    while (off < len && r == 0) {
        size_t n;
        if (mode == 0) {
            n = len;
        } else if (mode == 1) {
            n = 1;
        } else {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 700;
        }
        if (n > len - off)
            n = len - off;
        r = s3_list_parser_feed(p, body + off, n, &g->e);
        off += n;
    }
    if (r == 0)
        r = s3_list_parser_finish(p, &g->res, &g->e);
    s3_list_parser_free(p);
    g->rc = r;
    return r;
}

static void got_clear(struct got *g)
{
    s3_list_result_clear(&g->res);
    memset(g, 0, sizeof(*g));
}

static void assert_same_result(const struct got *a, const struct got *b)
{
    assert_int_equal(a->rc, b->rc);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->ent[i].is_prefix, b->ent[i].is_prefix);
        assert_string_equal(a->ent[i].key, b->ent[i].key);
        assert_int_equal(a->ent[i].size, b->ent[i].size);
        assert_int_equal(a->ent[i].mtime_ns, b->ent[i].mtime_ns);
        assert_string_equal(a->ent[i].etag, b->ent[i].etag);
        assert_string_equal(a->ent[i].storage_class, b->ent[i].storage_class);
    }
    assert_int_equal(a->res.is_truncated, b->res.is_truncated);
    assert_int_equal(a->res.key_count, b->res.key_count);
    assert_int_equal(a->res.n_contents, b->res.n_contents);
    assert_int_equal(a->res.n_prefixes, b->res.n_prefixes);
    assert_int_equal(a->res.encoding_confirmed, b->res.encoding_confirmed);
    if (a->res.next_token || b->res.next_token) {
        assert_non_null(a->res.next_token);
        assert_non_null(b->res.next_token);
        assert_string_equal(a->res.next_token, b->res.next_token);
    }
    if (a->rc)
        assert_string_equal(a->e.msg, b->e.msg);
}

/* Parse body whole, byte by byte and in several random chunkings; every way
 * must give the same; the whole-body result is left in *g. */
static int run_list_all_ways(const char *body, bool url_encoded, struct got *g)
{
    size_t len = strlen(body);
    static struct got other;
    run_list(body, len, url_encoded, 0, g);
    const unsigned modes[] = {1, 2, 3, 17, 12345, 99991};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        memset(&other, 0, sizeof(other));
        run_list(body, len, url_encoded, modes[i], &other);
        assert_same_result(g, &other);
        got_clear(&other);
    }
    return g->rc;
}

/* ---- documents ---- */

/* A ListObjectsV2 page shaped like the example in the AWS API reference. */
static const char page_plain[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "    <Name>example-bucket</Name>\n"
    "    <Prefix/>\n"
    "    <KeyCount>7</KeyCount>\n"
    "    <MaxKeys>1000</MaxKeys>\n"
    "    <IsTruncated>false</IsTruncated>\n"
    "    <Contents>\n"
    "        <Key>my-image.jpg</Key>\n"
    "        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
    "        <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>\n"
    "        <Size>434234</Size>\n"
    "        <StorageClass>STANDARD</StorageClass>\n"
    "    </Contents>\n"
    "    <Contents>\n"
    "        <Key>a b.txt</Key>\n"
    "        <LastModified>2024-02-29T23:59:59.123456789Z</LastModified>\n"
    "        <ETag>\"d41d8cd98f00b204e9800998ecf8427e-3\"</ETag>\n"
    "        <Size>0</Size>\n"
    "        <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>"
    "<DisplayName>webfile</DisplayName></Owner>\n"
    "        <StorageClass>GLACIER</StorageClass>\n"
    "    </Contents>\n"
    "    <Contents><Key>a+b.txt</Key><LastModified>2023-11-05T08:00:01.5Z</LastModified>"
    "<ETag>&quot;1&quot;</ETag><Size>18446744073709551615</Size><StorageClass>STANDARD</"
    "StorageClass>"
    "<ChecksumAlgorithm>SHA256</ChecksumAlgorithm></Contents>\n"
    "    <Contents><Key>100%.csv</Key><Size>5</Size></Contents>\n"
    "    <Contents><Key>R&amp;D/plan &lt;v2&gt;.txt</Key><Size>6</Size></Contents>\n"
    "    <Contents><Key>\xed\x95\x9c\xea\xb8\x80/caf\xc3\xa9 "
    "\xf0\x9f\x93\xb7.jpg</Key><Size>7</Size></Contents>\n"
    "    <Contents><Key>x%2By</Key><Size>8</Size></Contents>\n"
    "</ListBucketResult>\n";

/* The same listing as S3 sends it for encoding-type=url: keys encoded the
 * way S3 does it, space as '+', a literal '+' as %2B. */
static const char page_encoded[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>example-bucket</Name><Prefix></Prefix><KeyCount>7</KeyCount><MaxKeys>1000</MaxKeys>"
    "<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
    "<Contents><Key>my-image.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>a+b.txt</Key><LastModified>2024-02-29T23:59:59.123456789Z</LastModified>"
    "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e-3&quot;</ETag><Size>0</Size>"
    "<Owner><ID>75aa57f09aa0c8ca</ID><DisplayName>webfile</DisplayName></Owner>"
    "<StorageClass>GLACIER</StorageClass></Contents>"
    "<Contents><Key>a%2Bb.txt</Key><LastModified>2023-11-05T08:00:01.5Z</LastModified>"
    "<ETag>&quot;1&quot;</ETag><Size>18446744073709551615</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>100%25.csv</Key><Size>5</Size></Contents>"
    "<Contents><Key>R%26D/plan+%3Cv2%3E.txt</Key><Size>6</Size></Contents>"
    "<Contents><Key>%ED%95%9C%EA%B8%80/caf%C3%A9+%F0%9F%93%B7.jpg</Key><Size>7</Size></Contents>"
    "<Contents><Key>x%252By</Key><Size>8</Size></Contents>"
    "</ListBucketResult>";

static const char *const page_keys[] = {
    "my-image.jpg",
    "a b.txt",
    "a+b.txt",
    "100%.csv",
    "R&D/plan <v2>.txt",
    "\xed\x95\x9c\xea\xb8\x80/caf\xc3\xa9 \xf0\x9f\x93\xb7.jpg",
    "x%2By",
};

static void check_page(const struct got *g)
{
    assert_int_equal(g->rc, 0);
    assert_int_equal(g->n, 7);
    for (size_t i = 0; i < 7; i++) {
        assert_false(g->ent[i].is_prefix);
        assert_string_equal(g->ent[i].key, page_keys[i]);
    }
    assert_int_equal(g->ent[0].size, 434234);
    assert_int_equal(g->ent[0].mtime_ns, INT64_C(1255369830) * 1000000000);
    assert_string_equal(g->ent[0].etag, "fba9dede5f27731c9771645a39863328");
    assert_string_equal(g->ent[0].storage_class, "STANDARD");
    assert_int_equal(g->ent[1].size, 0);
    assert_int_equal(g->ent[1].mtime_ns, INT64_C(1709251199) * 1000000000 + 123456789);
    assert_string_equal(g->ent[1].etag, "d41d8cd98f00b204e9800998ecf8427e-3");
    assert_string_equal(g->ent[1].storage_class, "GLACIER");
    assert_true(g->ent[2].size == UINT64_MAX);
    assert_int_equal(g->ent[2].mtime_ns, INT64_C(1699171201) * 1000000000 + 500000000);
    assert_string_equal(g->ent[2].etag, "1");
    /* no LastModified, ETag, StorageClass */
    assert_true(g->ent[3].mtime_ns == S3_XML_TIME_UNKNOWN);
    assert_string_equal(g->ent[3].etag, "");
    assert_string_equal(g->ent[3].storage_class, "");
    assert_false(g->res.is_error);
    assert_false(g->res.is_truncated);
    assert_null(g->res.next_token);
    assert_true(g->res.has_key_count);
    assert_int_equal(g->res.key_count, 7);
    assert_int_equal(g->res.n_contents, 7);
    assert_int_equal(g->res.n_prefixes, 0);
}

static void test_list_plain_page(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    run_list_all_ways(page_plain, false, &g);
    check_page(&g);
    assert_false(g.res.encoding_confirmed);
    got_clear(&g);
}

static void test_list_encoded_page(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    run_list_all_ways(page_encoded, true, &g);
    check_page(&g);
    assert_true(g.res.encoding_confirmed);
    got_clear(&g);
}

/* Some servers write <EncodingType> after the keys: still decoded. */
static void test_list_encoding_declared_last(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    const char *body = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                       "<Contents><Key>run+books/a%2Bb</Key><Size>1</Size></Contents>"
                       "<EncodingType>url</EncodingType></ListBucketResult>";
    assert_int_equal(run_list_all_ways(body, true, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.ent[0].key, "run books/a+b");
    assert_true(g.res.encoding_confirmed);
    got_clear(&g);
}

/* A server that ignores encoding-type=url (s3rver): raw keys that decoding
 * would change must fail the page, keys it leaves alone are fine. */
static void test_list_encoding_ignored(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    const char *changed = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                          "<Contents><Key>plain.txt</Key><Size>1</Size></Contents>"
                          "<Contents><Key>c++/notes.txt</Key><Size>1</Size></Contents>"
                          "</ListBucketResult>";
    assert_int_equal(run_list_all_ways(changed, true, &g), ERR_PROTO);
    assert_int_equal(g.e.code, ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "ignored encoding-type=url"));
    got_clear(&g);

    const char *same = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                       "<Contents><Key>dir/plain.txt</Key><Size>1</Size></Contents>"
                       "</ListBucketResult>";
    assert_int_equal(run_list_all_ways(same, true, &g), 0);
    assert_string_equal(g.ent[0].key, "dir/plain.txt");
    assert_false(g.res.encoding_confirmed);
    got_clear(&g);

    /* and the other way round: not asked, but the body claims it */
    const char *unasked = "<ListBucketResult><EncodingType>url</EncodingType>"
                          "<IsTruncated>false</IsTruncated></ListBucketResult>";
    assert_int_equal(run_list_all_ways(unasked, false, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "url-encoded"));
    got_clear(&g);

    const char *other = "<ListBucketResult><EncodingType>base64</EncodingType>"
                        "<IsTruncated>false</IsTruncated></ListBucketResult>";
    assert_int_equal(run_list_all_ways(other, true, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "'base64'"));
    got_clear(&g);
}

static void expect_encoded_key_fails(const char *key, const char *needle)
{
    static struct got g;
    char body[512];
    memset(&g, 0, sizeof(g));
    snprintf(body, sizeof(body),
             "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
             "<Contents><Key>ok</Key><Size>1</Size></Contents>"
             "<Contents><Key>%s</Key><Size>1</Size></Contents></ListBucketResult>",
             key);
    assert_int_equal(run_list_all_ways(body, true, &g), ERR_PROTO);
    assert_int_equal(g.n, 1);
    if (!strstr(g.e.msg, needle))
        fail_msg("'%s' not in '%s'", needle, g.e.msg);
    got_clear(&g);
}

static void test_list_bad_encoded_keys(void **state)
{
    (void)state;
    expect_encoded_key_fails("a%zzb", "malformed %-escape");
    expect_encoded_key_fails("a%4", "malformed %-escape");
    expect_encoded_key_fails("a%", "malformed %-escape");
    expect_encoded_key_fails("a%00b", "NUL byte");
    expect_encoded_key_fails("a%FFb", "not UTF-8");
    expect_encoded_key_fails("%C3", "not UTF-8");
    expect_encoded_key_fails("%ED%A0%80", "not UTF-8"); /* a UTF-16 surrogate */
    expect_encoded_key_fails("", "empty key");
}

static void test_list_truncated_page(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    const char *body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bucket</Name><Prefix>backups/</Prefix>"
        "<ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>"
        "<NextContinuationToken>1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5PcROI4wI/EyIJg==</"
        "NextContinuationToken>"
        "<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType>"
        "<IsTruncated>true</IsTruncated>"
        "<Contents><Key>backups/a</Key><Size>1</Size></Contents>"
        "<Contents><Key>backups/b</Key><Size>2</Size></Contents>"
        "</ListBucketResult>";
    assert_int_equal(run_list_all_ways(body, true, &g), 0);
    assert_int_equal(g.n, 2);
    assert_true(g.res.is_truncated);
    assert_non_null(g.res.next_token);
    /* the token is opaque: never decoded, '+', '/' and '=' kept */
    assert_string_equal(g.res.next_token,
                        "1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5PcROI4wI/EyIJg==");
    assert_int_equal(g.res.key_count, 2);
    got_clear(&g);

    const char *no_token = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                           "<Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>";
    assert_int_equal(run_list_all_ways(no_token, false, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "NextContinuationToken"));
    got_clear(&g);

    const char *no_flag = "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
                          "</ListBucketResult>";
    assert_int_equal(run_list_all_ways(no_flag, false, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "IsTruncated"));
    got_clear(&g);

    const char *bad_flag = "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>";
    assert_int_equal(run_list_all_ways(bad_flag, false, &g), ERR_PROTO);
    got_clear(&g);

    const char *bad_size = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                           "<Contents><Key>a</Key><Size>18446744073709551616</Size></Contents>"
                           "</ListBucketResult>";
    assert_int_equal(run_list_all_ways(bad_size, false, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "<Size>"));
    got_clear(&g);

    const char *no_size = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                          "<Contents><Key>a</Key></Contents></ListBucketResult>";
    assert_int_equal(run_list_all_ways(no_size, false, &g), ERR_PROTO);
    got_clear(&g);

    const char *bad_time = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                           "<Contents><Key>a</Key><Size>1</Size>"
                           "<LastModified>yesterday</LastModified></Contents></ListBucketResult>";
    assert_int_equal(run_list_all_ways(bad_time, false, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "LastModified"));
    got_clear(&g);
}

static void test_list_common_prefixes(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    const char *body =
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>example-bucket</Name><Prefix>photos/</Prefix><KeyCount>3</KeyCount>"
        "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType>"
        "<IsTruncated>false</IsTruncated>"
        "<Contents><Key>photos/index.html</Key><Size>10</Size></Contents>"
        "<CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes>"
        "<CommonPrefixes><Prefix>photos/run+books/</Prefix></CommonPrefixes>"
        "</ListBucketResult>";
    assert_int_equal(run_list_all_ways(body, true, &g), 0);
    assert_int_equal(g.n, 3);
    assert_false(g.ent[0].is_prefix);
    assert_true(g.ent[1].is_prefix);
    assert_string_equal(g.ent[1].key, "photos/2006/");
    assert_true(g.ent[2].is_prefix);
    assert_string_equal(g.ent[2].key, "photos/run books/");
    assert_int_equal(g.res.n_contents, 1);
    assert_int_equal(g.res.n_prefixes, 2);
    got_clear(&g);

    const char *empty = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                        "<CommonPrefixes></CommonPrefixes></ListBucketResult>";
    assert_int_equal(run_list_all_ways(empty, false, &g), ERR_PROTO);
    got_clear(&g);
}

/* A prefix (namespace) on names changes nothing. */
static void test_list_namespace_prefix(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    const char *body = "<s3:ListBucketResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                       "<s3:IsTruncated>false</s3:IsTruncated>"
                       "<s3:Contents><s3:Key>k</s3:Key><s3:Size>3</s3:Size></s3:Contents>"
                       "</s3:ListBucketResult>";
    assert_int_equal(run_list_all_ways(body, false, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.ent[0].key, "k");
    got_clear(&g);
}

static void test_list_error_body(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    const char *body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<Error><Code>NoSuchBucket</Code>"
                       "<Message>The specified bucket does not exist</Message>"
                       "<BucketName>nope</BucketName><RequestId>4442587FB7D0A2F9</RequestId>"
                       "<HostId>host/id=</HostId></Error>";
    assert_int_equal(run_list_all_ways(body, true, &g), 0);
    assert_int_equal(g.n, 0);
    assert_true(g.res.is_error);
    assert_string_equal(g.res.error.code, "NoSuchBucket");
    assert_string_equal(g.res.error.message, "The specified bucket does not exist");
    assert_string_equal(g.res.error.request_id, "4442587FB7D0A2F9");
    assert_string_equal(g.res.error.host_id, "host/id=");
    got_clear(&g);
}

static void test_list_callback_stops(void **state)
{
    (void)state;
    static struct got g;
    memset(&g, 0, sizeof(g));
    g.stop_after = 2;
    assert_int_equal(run_list(page_plain, strlen(page_plain), false, 0, &g), S3_LIST_STOPPED);
    assert_int_equal(g.n, 2);
    got_clear(&g);

    memset(&g, 0, sizeof(g));
    g.stop_after = 3;
    g.fail_code = ERR_IO;
    assert_int_equal(run_list(page_plain, strlen(page_plain), false, 1, &g), ERR_IO);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.e.code, ERR_IO);
    assert_string_equal(g.e.msg, "cannot write 'state.db': disk full");
    got_clear(&g);

    /* sticky: feeding more after a stop changes nothing */
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    struct s3_list_parser *p = s3_list_parser_new(false, collect_cb, &g);
    assert_non_null(p);
    struct err e;
    err_clear(&e);
    assert_int_equal(s3_list_parser_feed(p, page_plain, strlen(page_plain), &e), S3_LIST_STOPPED);
    assert_int_equal(s3_list_parser_feed(p, "junk", 4, &e), S3_LIST_STOPPED);
    assert_int_equal(s3_list_parser_finish(p, &g.res, &e), S3_LIST_STOPPED);
    assert_int_equal(g.n, 1);
    s3_list_parser_free(p);
    got_clear(&g);
}

static void expect_list_fails(const char *body, bool url_encoded, const char *needle)
{
    static struct got g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(run_list_all_ways(body, url_encoded, &g), ERR_PROTO);
    assert_int_equal(g.e.code, ERR_PROTO);
    if (needle && !strstr(g.e.msg, needle))
        fail_msg("'%s' not in '%s'", needle, g.e.msg);
    got_clear(&g);
}

static void test_list_malformed(void **state)
{
    (void)state;
    /* cut short: everything delivered so far must be discarded by the caller */
    expect_list_fails("<ListBucketResult><IsTruncated>false</IsTruncated>"
                      "<Contents><Key>a</Key><Size>1</Size></Contents><Contents><Key>b",
                      false, "not well-formed");
    expect_list_fails("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucket>", false,
                      "mismatched tag");
    expect_list_fails("", false, "not well-formed");
    expect_list_fails("   \n ", false, "not well-formed");
    expect_list_fails("Service Unavailable", false, "not well-formed");
    expect_list_fails("<html><body>502 Bad Gateway</body></html>", false,
                      "root element <html>, not <ListBucketResult>");
    expect_list_fails("<CopyObjectResult><ETag>x</ETag></CopyObjectResult>", false,
                      "not <ListBucketResult>");
    expect_list_fails("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"
                      "<ListBucketResult/>",
                      false, "junk after document element");
    expect_list_fails("<ListBucketResult><IsTruncated>false</IsTruncated>"
                      "<Contents><Key>a<b/></Key><Size>1</Size></Contents></ListBucketResult>",
                      false, "inside <Key>");
    expect_list_fails("<ListBucketResult><IsTruncated>false</IsTruncated>&bogus;"
                      "</ListBucketResult>",
                      false, "undefined entity");
    expect_list_fails("<ListBucketResult><IsTruncated>false</IsTruncated>"
                      "<Contents><Key>a&#0;b</Key><Size>1</Size></Contents></ListBucketResult>",
                      false, "reference to invalid character");

    /* nesting deeper than S3_XML_DEPTH_MAX */
    static char deep[4096];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "<ListBucketResult>");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "<a>");
    expect_list_fails(deep, false, "deeper than");
}

static void test_list_doctype_attacks(void **state)
{
    (void)state;
    const char *laughs =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        "]>\n"
        "<ListBucketResult><IsTruncated>false</IsTruncated>"
        "<Contents><Key>&lol3;</Key><Size>1</Size></Contents></ListBucketResult>";
    expect_list_fails(laughs, false, "DOCTYPE");

    const char *xxe = "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
                      "<ListBucketResult><IsTruncated>false</IsTruncated>"
                      "<Contents><Key>&xxe;</Key><Size>1</Size></Contents></ListBucketResult>";
    expect_list_fails(xxe, false, "DOCTYPE");

    const char *ext = "<!DOCTYPE ListBucketResult SYSTEM \"http://127.0.0.1:1/x.dtd\">"
                      "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    expect_list_fails(ext, false, "DOCTYPE");

    struct s3_xml_error er;
    assert_true(s3_xml_parse_error(laughs, strlen(laughs), &er) < 0);
    struct s3_xml_complete comp;
    struct err e;
    err_clear(&e);
    const char *cxxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                       "<CompleteMultipartUploadResult><ETag>&x;</ETag>"
                       "</CompleteMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_complete(cxxe, strlen(cxxe), &comp, NULL, &e), ERR_PROTO);
    assert_non_null(strstr(e.msg, "DOCTYPE"));
}

/* ---- bounds ---- */

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = malloc(hl + n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    memset(s + hl, c, n);
    memcpy(s + hl + n, tail, tl + 1);
    return s;
}

static void test_list_long_key(void **state)
{
    (void)state;
    static struct got g;
    const char *head = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>";
    const char *tail = "</Key><Size>1</Size></Contents></ListBucketResult>";

    /* exactly the maximum passes, one more byte fails */
    char *ok = repeat(head, 'k', S3_XML_KEY_MAX, tail);
    memset(&g, 0, sizeof(g));
    assert_int_equal(run_list(ok, strlen(ok), false, 7, &g), 0);
    assert_int_equal(g.ent[0].key_len, S3_XML_KEY_MAX);
    got_clear(&g);
    free(ok);

    char *longer = repeat(head, 'k', S3_XML_KEY_MAX + 1, tail);
    memset(&g, 0, sizeof(g));
    assert_int_equal(run_list(longer, strlen(longer), false, 7, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "key longer than 4096 bytes"));
    got_clear(&g);
    free(longer);

    /* encoded: the bound applies after decoding ("%41" is one byte) */
    size_t n = S3_XML_KEY_MAX + 1;
    char *enc = malloc(strlen(head) + 3 * n + strlen(tail) + 128);
    assert_non_null(enc);
    const char *enc_head = "<ListBucketResult><EncodingType>url</EncodingType>"
                           "<IsTruncated>false</IsTruncated><Contents><Key>";
    size_t off = strlen(enc_head);
    memcpy(enc, enc_head, off);
    for (size_t i = 0; i < n; i++)
        memcpy(enc + off + 3 * i, "%41", 3);
    off += 3 * n;
    memcpy(enc + off, tail, strlen(tail) + 1);
    memset(&g, 0, sizeof(g));
    assert_int_equal(run_list(enc, strlen(enc), true, 0, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "key longer than 4096 bytes"));
    got_clear(&g);
    /* one escape fewer fits */
    memmove(enc + off - 3, tail, strlen(tail) + 1);
    memset(&g, 0, sizeof(g));
    assert_int_equal(run_list(enc, strlen(enc), true, 0, &g), 0);
    assert_int_equal(g.ent[0].key_len, S3_XML_KEY_MAX);
    assert_int_equal(g.ent[0].key[0], 'A');
    got_clear(&g);
    free(enc);

    /* an ETag or StorageClass that does not fit its field */
    char *etag = repeat("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>"
                        "<Size>1</Size><ETag>",
                        'e', S3_XML_ETAG_MAX, "</ETag></Contents></ListBucketResult>");
    memset(&g, 0, sizeof(g));
    assert_int_equal(run_list(etag, strlen(etag), false, 0, &g), ERR_PROTO);
    assert_non_null(strstr(g.e.msg, "<ETag> longer"));
    got_clear(&g);
    free(etag);
}

/* Feed a body that is produced piece by piece, so huge inputs need no
 * memory here either. */
static int feed_repeated(struct s3_list_parser *p, const char *head, char c, size_t n,
                         struct err *e)
{
    static char chunk[8192];
    int r = s3_list_parser_feed(p, head, strlen(head), e);
    memset(chunk, c, sizeof(chunk));
    while (r == 0 && n > 0) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        r = s3_list_parser_feed(p, chunk, k, e);
        n -= k;
    }
    return r;
}

static void test_list_hostile_sizes(void **state)
{
    (void)state;
    struct s3_xml_mem_stats before, after;
    struct err e;
    static struct got g;
    memset(&g, 0, sizeof(g));

    /* a 100 MiB text node in an element we do not even keep */
    struct s3_list_parser *p = s3_list_parser_new(false, collect_cb, &g);
    assert_non_null(p);
    s3_xml_mem_stats(&before);
    err_clear(&e);
    assert_int_equal(feed_repeated(p,
                                   "<ListBucketResult><IsTruncated>false</IsTruncated>"
                                   "<Contents><Owner><DisplayName>",
                                   'x', (size_t)100 << 20, &e),
                     ERR_PROTO);
    assert_non_null(strstr(e.msg, "element longer than 65536 bytes"));
    s3_xml_mem_stats(&after);
    /* the text was never stored: at most expat's buffer grew */
    assert_true(after.peak_bytes - before.live_bytes < 256 * 1024);
    s3_list_parser_free(p);

    /* a text node of exactly the maximum passes, fed in small pieces */
    const char *tok_head =
        "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>";
    const char *tok_tail = "</NextContinuationToken></ListBucketResult>";
    for (size_t extra = 0; extra < 2; extra++) {
        char *tok = repeat(tok_head, 't', S3_XML_TEXT_MAX + extra, tok_tail);
        memset(&g, 0, sizeof(g));
        if (extra == 0) {
            assert_int_equal(run_list(tok, strlen(tok), false, 5, &g), 0);
            assert_int_equal(strlen(g.res.next_token), S3_XML_TEXT_MAX);
        } else {
            assert_int_equal(run_list(tok, strlen(tok), false, 5, &g), ERR_PROTO);
            assert_non_null(strstr(g.e.msg, "element longer than 65536 bytes"));
        }
        got_clear(&g);
        free(tok);
    }

    /* a 100 MiB start tag (attribute value) */
    p = s3_list_parser_new(false, collect_cb, &g);
    assert_non_null(p);
    s3_xml_mem_stats(&before);
    err_clear(&e);
    assert_int_equal(
        feed_repeated(p, "<ListBucketResult><Contents id=\"", 'y', (size_t)100 << 20, &e),
        ERR_PROTO);
    assert_non_null(strstr(e.msg, "tag longer than"));
    s3_xml_mem_stats(&after);
    assert_true(after.peak_bytes - before.live_bytes < 512 * 1024);
    s3_list_parser_free(p);

    /* a 100 MiB element name */
    p = s3_list_parser_new(false, collect_cb, &g);
    assert_non_null(p);
    err_clear(&e);
    assert_int_equal(feed_repeated(p, "<ListBucketResult><Contents", 'z', (size_t)100 << 20, &e),
                     ERR_PROTO);
    assert_non_null(strstr(e.msg, "tag longer than"));
    s3_list_parser_free(p);
    got_clear(&g);
}

/* ---- memory does not grow with the number of entries ---- */

static int count_cb(void *ctx, const struct s3_list_entry *ent, struct err *e)
{
    (void)e;
    uint64_t *n = ctx;
    /* keys come in the order generated: check one cheaply */
    if (*n == 123456 && strcmp(ent->key, "backup/2024/file-00123456 with+plus.dat") != 0)
        return ERR_INTERNAL;
    (*n)++;
    return 0;
}

static void test_list_memory_flat(void **state)
{
    (void)state;
    const uint64_t total = 200000;
    const uint64_t warmup = 2000;
    uint64_t delivered = 0;
    struct s3_xml_mem_stats start, created, at_warmup, at_end;
    size_t heap_warmup = 0;
    struct err e;
    err_clear(&e);

    s3_xml_mem_stats(&start);
    struct s3_list_parser *p = s3_list_parser_new(true, count_cb, &delivered);
    assert_non_null(p);
    s3_xml_mem_stats(&created);
    /* the counter sees the parser itself: the measurement is live */
    assert_true(created.live_bytes - start.live_bytes >= S3_XML_TEXT_MAX);
    assert_true(created.allocs > start.allocs);

    static char body[1 << 16];
    size_t len = 0;
    unsigned seed = 42;
    len += (size_t)snprintf(body, sizeof(body),
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                            "<Name>b</Name><Prefix>backup%%2F</Prefix><KeyCount>%llu</KeyCount>"
                            "<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>",
                            (unsigned long long)total);
    for (uint64_t i = 0; i < total; i++) {
        len += (size_t)snprintf(
            body + len, sizeof(body) - len,
            "<Contents><Key>backup%%2F2024%%2Ffile-%08llu+with%%2Bplus.dat</Key>"
            "<LastModified>2024-05-01T10:11:12.000Z</LastModified>"
            "<ETag>&quot;%032llx&quot;</ETag><Size>%llu</Size>"
            "<Owner><ID>0123456789abcdef</ID></Owner>"
            "<StorageClass>STANDARD</StorageClass></Contents>\n",
            (unsigned long long)i, (unsigned long long)i * 7919, (unsigned long long)i);
        if (len > sizeof(body) - 1024 || i + 1 == total) {
            /* hand it over in uneven pieces, as a network would */
            size_t off = 0;
            while (off < len) {
                seed = seed * 1103515245u + 12345u;
                size_t n = 1 + (seed >> 8) % 9000;
                if (n > len - off)
                    n = len - off;
                assert_int_equal(s3_list_parser_feed(p, body + off, n, &e), 0);
                off += n;
            }
            len = 0;
        }
        if (i + 1 == warmup) {
            s3_xml_mem_stats(&at_warmup);
            heap_warmup = mallinfo2().uordblks;
        }
    }
    len = (size_t)snprintf(body, sizeof(body), "</ListBucketResult>\n");
    assert_int_equal(s3_list_parser_feed(p, body, len, &e), 0);
    struct s3_list_result res;
    assert_int_equal(s3_list_parser_finish(p, &res, &e), 0);
    s3_xml_mem_stats(&at_end);
    size_t heap_end = mallinfo2().uordblks;

    assert_int_equal(delivered, total);
    assert_int_equal(res.n_contents, total);
    assert_int_equal(res.key_count, total);
    assert_true(res.encoding_confirmed);
    /* Between entry 2,000 and 200,000 nothing per entry may be allocated:
     * a single allocation per entry would show up 198,000 times. expat may
     * still grow its input buffer once or twice for a larger chunk. */
    assert_true(at_end.allocs - at_warmup.allocs <= 4);
    assert_true(at_end.live_bytes <= at_warmup.live_bytes + 32 * 1024);
    /* the same seen by the C library, for allocations made outside the
     * counted suite (under ASan mallinfo2 reports nothing and this is moot) */
    assert_true(heap_end <= heap_warmup + 64 * 1024);
    /* and the whole run stayed within a fixed budget */
    assert_true(at_end.peak_bytes - start.live_bytes < 400 * 1024);

    s3_list_parser_free(p);
    s3_list_result_clear(&res);
    struct s3_xml_mem_stats freed;
    s3_xml_mem_stats(&freed);
    assert_int_equal(freed.live_bytes, start.live_bytes);
}

/* ---- error documents ---- */

static void test_error_documents(void **state)
{
    (void)state;
    struct s3_xml_error er;

    const char *nsb = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<Error>\n  <Code>NoSuchBucket</Code>\n"
                      "  <Message>The specified bucket does not exist</Message>\n"
                      "  <BucketName>missing</BucketName>\n"
                      "  <Resource>/missing</Resource>\n"
                      "  <RequestId>4442587FB7D0A2F9</RequestId>\n</Error>";
    assert_int_equal(s3_xml_parse_error(nsb, strlen(nsb), &er), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "NoSuchBucket");
    assert_string_equal(er.message, "The specified bucket does not exist");
    assert_string_equal(er.resource, "/missing");
    assert_string_equal(er.request_id, "4442587FB7D0A2F9");
    assert_string_equal(er.host_id, "");

    const char *denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
                         "<RequestId>656c76696e6727732072657175657374</RequestId>"
                         "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>"
                         "</Error>";
    assert_int_equal(s3_xml_parse_error(denied, strlen(denied), &er), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "AccessDenied");
    assert_string_equal(er.host_id, "Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==");

    const char *sig =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we "
        "calculated does not match the signature you provided. Check your key and "
        "signing method.</Message><AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId>"
        "<StringToSign>AWS4-HMAC-SHA256\n20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\nabc</StringToSign>"
        "<SignatureProvided>f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        "</SignatureProvided><StringToSignBytes>41 57 53</StringToSignBytes>"
        "<CanonicalRequest>GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com"
        "</CanonicalRequest><RequestId>7E1A</RequestId><HostId>h</HostId></Error>";
    assert_int_equal(s3_xml_parse_error(sig, strlen(sig), &er), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "SignatureDoesNotMatch");
    assert_non_null(strstr(er.message, "does not match the signature you provided"));
    assert_string_equal(er.request_id, "7E1A");

    const char *redirect =
        "<Error><Code>PermanentRedirect</Code><Message>use the endpoint</Message>"
        "<Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>b</Bucket>"
        "<Region>eu-west-1</Region></Error>";
    assert_int_equal(s3_xml_parse_error(redirect, strlen(redirect), &er), S3_XML_ERROR_DOC);
    assert_string_equal(er.endpoint, "b.s3.eu-west-1.amazonaws.com");
    assert_string_equal(er.region, "eu-west-1");

    /* not an error document */
    const char *other = "<CompleteMultipartUploadResult><ETag>\"x\"</ETag>"
                        "</CompleteMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_error(other, strlen(other), &er), 0);
    assert_string_equal(er.code, "");
    assert_int_equal(s3_xml_parse_error("", 0, &er), 0);
    assert_int_equal(s3_xml_parse_error(" \r\n ", 4, &er), 0);
    assert_int_equal(s3_xml_parse_error(NULL, 0, &er), 0);

    /* malformed */
    assert_int_equal(s3_xml_parse_error("<Error><Code>x</Error>", 22, &er), ERR_PROTO);
    assert_int_equal(s3_xml_parse_error("Bad Gateway", 11, &er), ERR_PROTO);
    assert_int_equal(s3_xml_parse_error("<Error><Code>x</Code>", 21, &er), ERR_PROTO);

    /* a message longer than the field is cut at a character boundary:
     * 300 two-byte characters are 600 bytes for a 512-byte field */
    static char big[2048];
    size_t n = (size_t)snprintf(big, sizeof(big), "<Error><Code>SlowDown</Code><Message>");
    for (int i = 0; i < 300; i++) {
        memcpy(big + n, "\xc3\xa9", 2);
        n += 2;
    }
    n += (size_t)snprintf(big + n, sizeof(big) - n, "</Message></Error>");
    assert_int_equal(s3_xml_parse_error(big, n, &er), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "SlowDown");
    assert_int_equal(strlen(er.message), 510);
    assert_int_equal((unsigned char)er.message[509], 0xa9);

    /* a body larger than the bound is refused without parsing */
    char *huge = repeat("<Error><Message>", 'm', S3_XML_BODY_MAX, "</Message></Error>");
    assert_int_equal(s3_xml_parse_error(huge, strlen(huge), &er), ERR_PROTO);
    free(huge);
}

/* ---- one-shot documents ---- */

static void test_initiate(void **state)
{
    (void)state;
    struct s3_xml_initiate ini;
    struct s3_xml_error er;
    struct err e;
    err_clear(&e);
    const char *body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>example-bucket</Bucket><Key>example-object</Key>"
        "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
        "</InitiateMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_initiate(body, strlen(body), &ini, &er, &e), 0);
    assert_string_equal(ini.upload_id,
                        "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");

    const char *missing = "<InitiateMultipartUploadResult><Bucket>b</Bucket>"
                          "</InitiateMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_initiate(missing, strlen(missing), &ini, &er, &e), ERR_PROTO);
    assert_non_null(strstr(e.msg, "no <UploadId>"));

    const char *empty = "<InitiateMultipartUploadResult><UploadId> </UploadId>"
                        "</InitiateMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_initiate(empty, strlen(empty), &ini, &er, &e), ERR_PROTO);

    const char *wrong = "<ListBucketResult/>";
    assert_int_equal(s3_xml_parse_initiate(wrong, strlen(wrong), &ini, &er, &e), ERR_PROTO);
    assert_non_null(strstr(e.msg, "not <InitiateMultipartUploadResult>"));

    const char *error = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    assert_int_equal(s3_xml_parse_initiate(error, strlen(error), &ini, &er, &e), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "AccessDenied");
    assert_string_equal(ini.upload_id, "");
    /* errdoc may be NULL */
    assert_int_equal(s3_xml_parse_initiate(error, strlen(error), &ini, NULL, &e), S3_XML_ERROR_DOC);

    char *longid = repeat("<InitiateMultipartUploadResult><UploadId>", 'u', S3_XML_UPLOAD_ID_MAX,
                          "</UploadId></InitiateMultipartUploadResult>");
    assert_int_equal(s3_xml_parse_initiate(longid, strlen(longid), &ini, &er, &e), ERR_PROTO);
    assert_non_null(strstr(e.msg, "longer than"));
    free(longid);
}

static void test_complete(void **state)
{
    (void)state;
    struct s3_xml_complete c;
    struct s3_xml_error er;
    struct err e;
    err_clear(&e);
    /* S3 sends whitespace while it works, then the result */
    const char *ok =
        "\n \n \n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Location>http://Example-Bucket.s3.amazonaws.com/Example-Object</Location>"
        "<Bucket>Example-Bucket</Bucket><Key>Example-Object</Key>"
        "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
        "<ChecksumSHA256>n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=-9</ChecksumSHA256>"
        "</CompleteMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_complete(ok, strlen(ok), &c, &er, &e), 0);
    assert_string_equal(c.etag, "3858f62230ac3c915f300c664312c11f-9");
    assert_string_equal(c.checksum_sha256, "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=-9");

    /* "200 OK" whose body is an error */
    const char *late = "\n \n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<Error><Code>InternalError</Code>"
                       "<Message>We encountered an internal error. Please try again.</Message>"
                       "<RequestId>656c76696e6727732072657175657374</RequestId>"
                       "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>"
                       "</Error>";
    assert_int_equal(s3_xml_parse_complete(late, strlen(late), &c, &er, &e), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "InternalError");
    assert_string_equal(er.message, "We encountered an internal error. Please try again.");
    assert_string_equal(c.etag, "");
    assert_int_equal(s3_xml_parse_error(late, strlen(late), &er), S3_XML_ERROR_DOC);

    /* cut short (connection dropped while S3 was still sending spaces) */
    const char *cut = "\n \n \n";
    assert_int_equal(s3_xml_parse_complete(cut, strlen(cut), &c, &er, &e), ERR_PROTO);
    const char *cut2 = "<CompleteMultipartUploadResult><ETag>\"abc\"</ETag>";
    assert_int_equal(s3_xml_parse_complete(cut2, strlen(cut2), &c, &er, &e), ERR_PROTO);
    assert_string_equal(c.etag, "");

    const char *noetag = "<CompleteMultipartUploadResult><Key>k</Key>"
                         "</CompleteMultipartUploadResult>";
    assert_int_equal(s3_xml_parse_complete(noetag, strlen(noetag), &c, &er, &e), ERR_PROTO);
    assert_non_null(strstr(e.msg, "no <ETag>"));
}

static void test_copy(void **state)
{
    (void)state;
    struct s3_xml_copy c;
    struct s3_xml_error er;
    struct err e;
    err_clear(&e);
    const char *obj = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<CopyObjectResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                      "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
                      "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>";
    assert_int_equal(s3_xml_parse_copy(obj, strlen(obj), &c, &er, &e), 0);
    assert_string_equal(c.etag, "9b2cf535f27731c974343645a3985328");
    assert_int_equal(c.mtime_ns, INT64_C(1255369830) * 1000000000);

    const char *part = "<CopyPartResult><ETag>&quot;b&quot;</ETag></CopyPartResult>";
    assert_int_equal(s3_xml_parse_copy(part, strlen(part), &c, &er, &e), 0);
    assert_string_equal(c.etag, "b");
    assert_true(c.mtime_ns == S3_XML_TIME_UNKNOWN);

    const char *late = "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message>"
                       "</Error>";
    assert_int_equal(s3_xml_parse_copy(late, strlen(late), &c, &er, &e), S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "SlowDown");

    const char *badtime = "<CopyObjectResult><LastModified>2009-13-12T17:50:30Z</LastModified>"
                          "<ETag>x</ETag></CopyObjectResult>";
    assert_int_equal(s3_xml_parse_copy(badtime, strlen(badtime), &c, &er, &e), ERR_PROTO);
    assert_true(c.mtime_ns == S3_XML_TIME_UNKNOWN);
}

static void test_location(void **state)
{
    (void)state;
    char region[S3_XML_REGION_MAX];
    struct s3_xml_error er;
    struct err e;
    err_clear(&e);
    const char *empty = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>";
    assert_int_equal(s3_xml_parse_location(empty, strlen(empty), region, &er, &e), 0);
    assert_string_equal(region, "us-east-1");
    const char *eu = "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">EU"
                     "</LocationConstraint>";
    assert_int_equal(s3_xml_parse_location(eu, strlen(eu), region, &er, &e), 0);
    assert_string_equal(region, "eu-west-1");
    const char *ap = "<LocationConstraint>ap-south-1</LocationConstraint>";
    assert_int_equal(s3_xml_parse_location(ap, strlen(ap), region, &er, &e), 0);
    assert_string_equal(region, "ap-south-1");
    const char *nested = "<LocationConstraint><x/></LocationConstraint>";
    assert_int_equal(s3_xml_parse_location(nested, strlen(nested), region, &er, &e), ERR_PROTO);
    const char *error = "<Error><Code>AccessDenied</Code></Error>";
    assert_int_equal(s3_xml_parse_location(error, strlen(error), region, &er, &e),
                     S3_XML_ERROR_DOC);
    assert_string_equal(er.code, "AccessDenied");
}

/* ---- time ---- */

static void test_parse_time(void **state)
{
    (void)state;
    int64_t ns = 0;
#define T_OK(s, want)                                                                              \
    do {                                                                                           \
        assert_int_equal(s3_xml_parse_time((s), strlen(s), &ns), 0);                               \
        assert_int_equal(ns, (want));                                                              \
    } while (0)
#define T_BAD(s) assert_int_equal(s3_xml_parse_time((s), strlen(s), &ns), ERR_PROTO)
    T_OK("1970-01-01T00:00:00Z", 0);
    T_OK("1970-01-01T00:00:00.000Z", 0);
    T_OK("2009-10-12T17:50:30.000Z", INT64_C(1255369830) * 1000000000);
    T_OK("2024-02-29T23:59:59.123456789Z", INT64_C(1709251199) * 1000000000 + 123456789);
    T_OK("2024-02-29T23:59:59.1234567891234Z", INT64_C(1709251199) * 1000000000 + 123456789);
    T_OK("1969-12-31T23:59:59Z", INT64_C(-1000000000));
    T_OK("2012-06-01T02:00:00+02:00", INT64_C(1338508800) * 1000000000);
    T_OK("2012-05-31T22:00:00-02:00", INT64_C(1338508800) * 1000000000);
    T_OK(" 2009-10-12T17:50:30Z\n", INT64_C(1255369830) * 1000000000);
    T_BAD("");
    T_BAD("2009-10-12T17:50:30");
    T_BAD("2009-10-12 17:50:30Z");
    T_BAD("2009-10-12T17:50:30.Z");
    T_BAD("2023-02-29T00:00:00Z");
    T_BAD("2009-10-32T00:00:00Z");
    T_BAD("2009-10-12T24:00:00Z");
    T_BAD("2009-10-12T17:50:30ZZ");
    T_BAD("2009-10-12T17:50:30+0200");
    T_BAD("2300-01-01T00:00:00Z"); /* beyond int64 ns */
    T_BAD("Mon, 12 Oct 2009 17:50:30 GMT");
#undef T_OK
#undef T_BAD
}

/* ---- CompleteMultipartUpload body ---- */

static void test_complete_body(void **state)
{
    (void)state;
    struct s3_part parts[3];
    memset(parts, 0, sizeof(parts));
    parts[0].part_number = 1;
    snprintf(parts[0].etag, sizeof(parts[0].etag), "a54357aff0632cce46d942af68356b38");
    parts[1].part_number = 2;
    snprintf(parts[1].etag, sizeof(parts[1].etag), "\"0c78aef83f66abc1fa1e8477f296d394\"");
    snprintf(parts[1].checksum_sha256, sizeof(parts[1].checksum_sha256),
             "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=");
    parts[2].part_number = 10000;
    snprintf(parts[2].etag, sizeof(parts[2].etag), "odd<&>etag");

    struct buf b = BUF_INIT(0);
    assert_int_equal(buf_puts(&b, "keep:"), 0);
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), 0);
    assert_string_equal(
        b.data,
        "keep:<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag>"
        "<ChecksumSHA256>n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=</ChecksumSHA256></Part>"
        "<Part><PartNumber>10000</PartNumber><ETag>\"odd&lt;&amp;&gt;etag\"</ETag></Part>"
        "</CompleteMultipartUpload>");
    size_t good_len = b.len;

    /* rule breaks leave the buffer as it was */
    parts[1].part_number = 1;
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), ERR_INTERNAL);
    parts[1].part_number = 2;
    parts[2].part_number = 10001;
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), ERR_INTERNAL);
    parts[2].part_number = 3;
    parts[2].etag[1] = '\x01';
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), ERR_INTERNAL);
    snprintf(parts[2].etag, sizeof(parts[2].etag), "\"\"");
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), ERR_INTERNAL);
    memset(parts[2].etag, 'x', sizeof(parts[2].etag)); /* not NUL-terminated */
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), ERR_INTERNAL);
    snprintf(parts[2].etag, sizeof(parts[2].etag), "\xff\xfe");
    assert_int_equal(s3_xml_complete_body(&b, parts, 3), ERR_INTERNAL);
    assert_int_equal(s3_xml_complete_body(&b, parts, 0), ERR_INTERNAL);
    parts[0].part_number = 0;
    assert_int_equal(s3_xml_complete_body(&b, parts, 1), ERR_INTERNAL);
    assert_int_equal(b.len, good_len);
    buf_release(&b);

    /* a full buffer rolls back too */
    parts[0].part_number = 1;
    struct buf small = BUF_INIT(100);
    assert_int_equal(buf_puts(&small, "x"), 0);
    assert_int_equal(s3_xml_complete_body(&small, parts, 2), ERR_NOMEM);
    assert_int_equal(small.len, 1);
    assert_string_equal(small.data, "x");
    buf_release(&small);
}

/* The body we write must read back as what we meant. */
static void test_complete_body_roundtrip(void **state)
{
    (void)state;
    static struct s3_part parts[10000];
    memset(parts, 0, sizeof(parts));
    for (uint32_t i = 0; i < 10000; i++) {
        parts[i].part_number = i + 1;
        snprintf(parts[i].etag, sizeof(parts[i].etag), "%032x", i * 2654435761u);
    }
    struct buf b = BUF_INIT(4 * 1024 * 1024);
    assert_int_equal(s3_xml_complete_body(&b, parts, 10000), 0);
    /* count parts and check one of them in the text */
    size_t n = 0;
    for (const char *q = b.data; (q = strstr(q, "<Part>")); q++)
        n++;
    assert_int_equal(n, 10000);
    char want[128];
    snprintf(want, sizeof(want), "<Part><PartNumber>5000</PartNumber><ETag>\"%032x\"</ETag></Part>",
             4999 * 2654435761u);
    assert_non_null(strstr(b.data, want));
    /* it is well-formed XML: the error parser reads it as "not an error" */
    assert_true(b.len < S3_XML_BODY_MAX);
    struct s3_xml_error er;
    assert_int_equal(s3_xml_parse_error(b.data, b.len, &er), 0);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_plain_page),
        cmocka_unit_test(test_list_encoded_page),
        cmocka_unit_test(test_list_encoding_declared_last),
        cmocka_unit_test(test_list_encoding_ignored),
        cmocka_unit_test(test_list_bad_encoded_keys),
        cmocka_unit_test(test_list_truncated_page),
        cmocka_unit_test(test_list_common_prefixes),
        cmocka_unit_test(test_list_namespace_prefix),
        cmocka_unit_test(test_list_error_body),
        cmocka_unit_test(test_list_callback_stops),
        cmocka_unit_test(test_list_malformed),
        cmocka_unit_test(test_list_doctype_attacks),
        cmocka_unit_test(test_list_long_key),
        cmocka_unit_test(test_list_hostile_sizes),
        cmocka_unit_test(test_list_memory_flat),
        cmocka_unit_test(test_error_documents),
        cmocka_unit_test(test_initiate),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_location),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_complete_body),
        cmocka_unit_test(test_complete_body_roundtrip),
    };
    return cmocka_run_group_tests_name("s3_xml", tests, NULL, NULL);
}
