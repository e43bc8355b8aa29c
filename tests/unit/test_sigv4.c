/*
 * test_sigv4.c - the S3 SigV4 signer against two independent references:
 *
 *  1. the worked examples of the AWS S3 documentation ("Signature
 *     Calculations for the Authorization Header: Transferring Payload in a
 *     Single Chunk"): canonical request, string to sign and signature;
 *  2. botocore's S3SigV4Auth (Debian python3-botocore, run through
 *     tests/unit/sigv4_oracle.py) over a few hundred randomized requests with
 *     hostile keys, query strings and headers. A missing botocore FAILS this
 *     test: CI installs it, and a signer test that silently skips is no test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/s3/sigv4.h"

#define DOC_AK "AKIAIOSFODNN7EXAMPLE"
#define DOC_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_HOST "examplebucket.s3.amazonaws.com"
#define DOC_TIME ((time_t)1369353600) /* 2013-05-24T00:00:00Z */

static void sign_ok(const struct s3_sign_input *in, struct s3_sign_output *out)
{
    struct err e;
    err_clear(&e);
    int r = s3_sign(in, out, &e);
    if (r)
        fail_msg("s3_sign failed (%d): %s", r, e.msg);
}

static struct s3_sign_input doc_input(void)
{
    struct s3_sign_input in = {
        .method = "GET",
        .host = DOC_HOST,
        .path = "/",
        .payload_sha256 = S3_EMPTY_SHA256,
        .region = "us-east-1",
        .service = "s3",
        .access_key_id = DOC_AK,
        .secret_access_key = DOC_SK,
        .now = DOC_TIME,
    };
    return in;
}

static void check_doc_result(const struct s3_sign_output *out, const char *canonical,
                             const char *cr_hash, const char *signed_headers, const char *signature)
{
    char sts[256];
    char auth[512];
    snprintf(sts, sizeof(sts),
             "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n%s", cr_hash);
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=" DOC_AK "/20130524/us-east-1/s3/aws4_request, "
             "SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    assert_string_equal(out->amz_date, "20130524T000000Z");
    assert_string_equal(out->canonical_request.data, canonical);
    assert_string_equal(out->string_to_sign.data, sts);
    assert_string_equal(out->signature, signature);
    assert_string_equal(out->authorization.data, auth);
}

/* ---- AWS documentation examples ---------------------------------------- */

static void test_doc_get_object(void **state)
{
    (void)state;
    struct s3_kv hdrs[] = {{"Range", "bytes=0-9"}};
    struct s3_sign_input in = doc_input();
    in.path = "/test.txt";
    in.headers = hdrs;
    in.nheaders = 1;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    check_doc_result(&out,
                     "GET\n"
                     "/test.txt\n"
                     "\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "range:bytes=0-9\n"
                     "x-amz-content-sha256:"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                     "x-amz-date:20130524T000000Z\n"
                     "\n"
                     "host;range;x-amz-content-sha256;x-amz-date\n"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                     "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
                     "host;range;x-amz-content-sha256;x-amz-date",
                     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(out.url_path_query.data, "/test.txt");
    s3_sign_output_release(&out);
}

static void test_doc_put_object(void **state)
{
    (void)state;
    static const char body[] = "Welcome to Amazon S3.";
    char payload[65];
    assert_int_equal(s3_sha256_hex(body, strlen(body), payload), 0);
    assert_string_equal(payload,
                        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

    struct s3_kv hdrs[] = {
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
    };
    struct s3_sign_input in = doc_input();
    in.method = "PUT";
    in.path = "/test$file.text";
    in.headers = hdrs;
    in.nheaders = 2;
    in.payload_sha256 = payload;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    check_doc_result(&out,
                     "PUT\n"
                     "/test%24file.text\n"
                     "\n"
                     "date:Fri, 24 May 2013 00:00:00 GMT\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "x-amz-content-sha256:"
                     "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
                     "x-amz-date:20130524T000000Z\n"
                     "x-amz-storage-class:REDUCED_REDUNDANCY\n"
                     "\n"
                     "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                     "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                     "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
                     "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    assert_string_equal(out.url_path_query.data, "/test%24file.text");
    s3_sign_output_release(&out);
}

static void test_doc_get_lifecycle(void **state)
{
    (void)state;
    struct s3_kv query[] = {{"lifecycle", ""}};
    struct s3_sign_input in = doc_input();
    in.query = query;
    in.nquery = 1;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    check_doc_result(&out,
                     "GET\n"
                     "/\n"
                     "lifecycle=\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "x-amz-content-sha256:"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                     "x-amz-date:20130524T000000Z\n"
                     "\n"
                     "host;x-amz-content-sha256;x-amz-date\n"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                     "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
                     "host;x-amz-content-sha256;x-amz-date",
                     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    assert_string_equal(out.url_path_query.data, "/?lifecycle");
    s3_sign_output_release(&out);
}

static void test_doc_list_objects(void **state)
{
    (void)state;
    /* Given out of order on purpose: the signer sorts. */
    struct s3_kv query[] = {{"prefix", "J"}, {"max-keys", "2"}};
    struct s3_sign_input in = doc_input();
    in.query = query;
    in.nquery = 2;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    check_doc_result(&out,
                     "GET\n"
                     "/\n"
                     "max-keys=2&prefix=J\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "x-amz-content-sha256:"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                     "x-amz-date:20130524T000000Z\n"
                     "\n"
                     "host;x-amz-content-sha256;x-amz-date\n"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                     "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
                     "host;x-amz-content-sha256;x-amz-date",
                     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    assert_string_equal(out.url_path_query.data, "/?max-keys=2&prefix=J");
    s3_sign_output_release(&out);
}

/* A wrong secret must change the signature (the examples above would all
 * pass with a signer that ignored the key if this did not hold). */
static void test_secret_matters(void **state)
{
    (void)state;
    struct s3_sign_input in = doc_input();
    struct s3_sign_output a, b;
    s3_sign_output_init(&a);
    s3_sign_output_init(&b);
    sign_ok(&in, &a);
    in.secret_access_key = DOC_SK "x";
    sign_ok(&in, &b);
    assert_string_equal(a.canonical_request.data, b.canonical_request.data);
    assert_string_not_equal(a.signature, b.signature);
    s3_sign_output_release(&a);
    s3_sign_output_release(&b);
}

/* ---- URI encoding ------------------------------------------------------ */

static void check_encode(const char *in, bool encode_slash, const char *want)
{
    struct buf b = BUF_INIT(0);
    assert_int_equal(s3_uri_encode(&b, in, strlen(in), encode_slash), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
    buf_release(&b);
}

static void test_uri_encode(void **state)
{
    (void)state;
    check_encode("AZaz09-._~", false, "AZaz09-._~");
    check_encode("AZaz09-._~", true, "AZaz09-._~");
    check_encode("a b", false, "a%20b");
    check_encode("a+b", false, "a%2Bb");
    check_encode("100%", false, "100%25");
    check_encode("/dir//sub/", false, "/dir//sub/");
    check_encode("/dir//sub/", true, "%2Fdir%2F%2Fsub%2F");
    check_encode("naïve", false, "na%C3%AFve");
    check_encode("日本", false, "%E6%97%A5%E6%9C%AC");
    check_encode("\xF0\x9F\x98\x80", false, "%F0%9F%98%80");
    check_encode("=&?#", true, "%3D%26%3F%23");
    check_encode("!'()*:@,;$", false, "%21%27%28%29%2A%3A%40%2C%3B%24");
    check_encode("\x01\x7f\xff", false, "%01%7F%FF");
    check_encode("", false, "");

    /* Appends, and embedded NUL bytes are encoded, not a terminator. */
    struct buf b = BUF_INIT(0);
    assert_int_equal(buf_puts(&b, "x="), 0);
    assert_int_equal(s3_uri_encode(&b, "a\0b", 3, true), 0);
    assert_string_equal(b.data, "x=a%00b");
    buf_release(&b);

    /* Bounded: a full buffer gives ERR_NOMEM and stays unchanged; exactly
     * full is fine (max 8: "ab" + "%20%20" fits, "ab" + "c%20d%20" does not). */
    struct buf small = BUF_INIT(8);
    assert_int_equal(buf_puts(&small, "ab"), 0);
    assert_int_equal(s3_uri_encode(&small, "c d ", 4, false), ERR_NOMEM);
    assert_string_equal(small.data, "ab");
    assert_int_equal(small.len, 2);
    assert_int_equal(s3_uri_encode(&small, "  ", 2, false), 0);
    assert_string_equal(small.data, "ab%20%20");
    buf_release(&small);
}

static void test_sha256_hex(void **state)
{
    (void)state;
    char hex[65];
    assert_int_equal(s3_sha256_hex("", 0, hex), 0);
    assert_string_equal(hex, S3_EMPTY_SHA256);
    assert_int_equal(s3_sha256_hex("abc", 3, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* ---- canonicalization details ------------------------------------------ */

static void test_path_and_query_encoding(void **state)
{
    (void)state;
    struct s3_kv query[] = {
        {"prefix", "a b/c+d"}, {"uploads", ""}, {"Prefix", "x"}, {"a", "2"}, {"a", "10"},
    };
    struct s3_sign_input in = doc_input();
    in.path = "/bucket//naïve dir/a+b~c/";
    in.query = query;
    in.nquery = 5;
    in.payload_sha256 = S3_UNSIGNED_PAYLOAD;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    /* Uppercase sorts before lowercase (byte order); repeated names by value. */
    assert_string_equal(out.canonical_request.data,
                        "GET\n"
                        "/bucket//na%C3%AFve%20dir/a%2Bb~c/\n"
                        "Prefix=x&a=10&a=2&prefix=a%20b%2Fc%2Bd&uploads=\n"
                        "host:examplebucket.s3.amazonaws.com\n"
                        "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
                        "x-amz-date:20130524T000000Z\n"
                        "\n"
                        "host;x-amz-content-sha256;x-amz-date\n"
                        "UNSIGNED-PAYLOAD");
    assert_string_equal(out.url_path_query.data, "/bucket//na%C3%AFve%20dir/a%2Bb~c/"
                                                 "?Prefix=x&a=10&a=2&prefix=a%20b%2Fc%2Bd&uploads");
    s3_sign_output_release(&out);
}

static void test_header_canonicalization(void **state)
{
    (void)state;
    struct s3_kv hdrs[] = {
        {"X-Amz-Meta-Note", "  two   spaces\t\tand tabs  "},
        {"content-type", "text/plain"},
        {"x-amz-meta-note", "second"},
        {"X-Amz-Meta-Empty", "   "},
        {"x-amz-meta-a", "1"},
    };
    struct s3_sign_input in = doc_input();
    in.method = "PUT";
    in.host = "127.0.0.1:4568";
    in.path = "/b/k";
    in.headers = hdrs;
    in.nheaders = 5;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    assert_string_equal(out.canonical_request.data,
                        "PUT\n"
                        "/b/k\n"
                        "\n"
                        "content-type:text/plain\n"
                        "host:127.0.0.1:4568\n"
                        "x-amz-content-sha256:" S3_EMPTY_SHA256 "\n"
                        "x-amz-date:20130524T000000Z\n"
                        "x-amz-meta-a:1\n"
                        "x-amz-meta-empty:\n"
                        "x-amz-meta-note:two spaces and tabs,second\n"
                        "\n"
                        "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;"
                        "x-amz-meta-empty;x-amz-meta-note\n" S3_EMPTY_SHA256);
    assert_non_null(strstr(out.authorization.data,
                           "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
                           "x-amz-meta-a;x-amz-meta-empty;x-amz-meta-note, Signature="));
    s3_sign_output_release(&out);
}

static void test_output_reuse(void **state)
{
    (void)state;
    struct s3_kv query[] = {{"lifecycle", ""}};
    struct s3_sign_input in = doc_input();
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    in.query = query;
    in.nquery = 1;
    sign_ok(&in, &out);
    assert_string_equal(out.signature,
                        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    in.nquery = 0;
    in.query = NULL;
    in.path = "/test.txt";
    struct s3_kv hdrs[] = {{"Range", "bytes=0-9"}};
    in.headers = hdrs;
    in.nheaders = 1;
    sign_ok(&in, &out);
    assert_string_equal(out.signature,
                        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(out.url_path_query.data, "/test.txt");

    /* A zeroed output works too. */
    struct s3_sign_output zero;
    memset(&zero, 0, sizeof(zero));
    sign_ok(&in, &zero);
    assert_string_equal(zero.authorization.data, out.authorization.data);
    s3_sign_output_release(&zero);
    s3_sign_output_release(&out);
}

static void expect_sign_error(const struct s3_sign_input *in, int code, const char *fragment)
{
    struct s3_sign_output out;
    struct err e;
    s3_sign_output_init(&out);
    err_clear(&e);
    assert_int_equal(s3_sign(in, &out, &e), code);
    assert_int_equal(e.code, code);
    if (!strstr(e.msg, fragment))
        fail_msg("error message '%s' lacks '%s'", e.msg, fragment);
    assert_null(strstr(e.msg, DOC_SK));
    assert_int_equal(out.authorization.len, 0);
    assert_string_equal(out.signature, "");
    s3_sign_output_release(&out);
}

static void test_invalid_input(void **state)
{
    (void)state;
    struct s3_sign_input in;

    in = doc_input();
    in.method = "get";
    expect_sign_error(&in, ERR_INTERNAL, "method");
    in = doc_input();
    in.path = "test.txt";
    expect_sign_error(&in, ERR_INTERNAL, "path");
    in = doc_input();
    in.payload_sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    expect_sign_error(&in, ERR_INTERNAL, "payload hash");
    in = doc_input();
    in.host = "a b";
    expect_sign_error(&in, ERR_INTERNAL, "host");
    in = doc_input();
    in.region = "us/east";
    expect_sign_error(&in, ERR_INTERNAL, "region");
    in = doc_input();
    in.secret_access_key = "";
    expect_sign_error(&in, ERR_AUTH, "secret access key");
    in = doc_input();
    in.now = (time_t)400000000000LL; /* year ~14645 */
    expect_sign_error(&in, ERR_INTERNAL, "time");

    struct s3_kv reserved[] = {{"X-Amz-Date", "20130524T000000Z"}};
    in = doc_input();
    in.headers = reserved;
    in.nheaders = 1;
    expect_sign_error(&in, ERR_INTERNAL, "'x-amz-date' is set by the signer");

    struct s3_kv badname[] = {{"x amz", "v"}};
    in.headers = badname;
    expect_sign_error(&in, ERR_INTERNAL, "not an HTTP token");

    struct s3_kv crlf[] = {{"x-amz-meta-a", "v\r\nx-evil: 1"}};
    in.headers = crlf;
    expect_sign_error(&in, ERR_USAGE, "'x-amz-meta-a'");

    struct s3_kv utf8[] = {{"x-amz-meta-a", "naïve"}};
    in.headers = utf8;
    expect_sign_error(&in, ERR_USAGE, "non-ASCII");
}

/* ---- botocore oracle --------------------------------------------------- */

#define ORACLE_CASES 300

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: the same sequence on every platform, unlike rand(). */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

#define PICK(arr) ((arr)[rng_below(sizeof(arr) / sizeof((arr)[0]))])

static const char *const key_parts[] = {
    "a",        "Z",      "0",
    "photos",   "x y",    "+",
    "%",        "~",      "=",
    "&",        "?",      "#",
    "/",        "//",     ".",
    "..",       "-",      "_",
    "naïve",    "日本語", "\xF0\x9F\x98\x80",
    "é",        "!",      "'",
    "(",        ")",      "*",
    ":",        "@",      ",",
    ";",        "$",      "[",
    "]",        "\"",     "<",
    ">",        "\\",     "^",
    "`",        "{",      "}",
    "|",        " ",      "%20",
    "%2F",      "A+B",    "\t",
    "\x01",     "\x7f",   "2024-01-01T00:00:00Z",
    "file.txt", "ü/ö",
};
static const char *const query_names[] = {
    "uploads",     "uploadId",  "partNumber", "prefix",
    "Prefix",      "delimiter", "list-type",  "continuation-token",
    "start-after", "max-keys",  "versionId",  "encoding-type",
    "x-id",        "acl",       "tagging",    "delete",
    "a",           "B",         "a b",        "k+",
    "ключ",        "x=y",       "&",          "~t",
};
static const char *const methods[] = {"GET", "PUT", "HEAD", "DELETE", "POST"};
static const char *const regions[] = {"us-east-1", "eu-west-1", "auto", "us-gov-west-1", "garage"};
static const char *const access_keys[] = {"AKIAIOSFODNN7EXAMPLE", "S3RVER",
                                          "GK31c2f218a2e44f485b94239e"};
static const struct {
    const char *host;
    bool derivable; /* botocore derives this exact Host from the URL */
} hosts[] = {
    {"examplebucket.s3.amazonaws.com", true},
    {"s3.eu-west-1.amazonaws.com", true},
    {"127.0.0.1:4568", true},
    {"localhost:9000", true},
    {"[::1]:9000", false},
    {"Bucket.Example.COM", false},
};
static const char *const header_names[] = {
    "Content-Type",        "content-md5",         "Range",
    "x-amz-meta-Note",     "X-Amz-Meta-note",     "x-amz-copy-source",
    "x-amz-storage-class", "x-amz-tagging",       "If-None-Match",
    "x-amz-acl",           "Content-Disposition",
};
static const char *const header_values[] = {
    "application/octet-stream",
    "text/plain;  charset=utf-8 ",
    "  padded  ",
    "a\t\tb",
    "bytes=0-9",
    "STANDARD",
    "1B2M2Y8AsgTpgAmY7PhCfg==",
    "*",
    "k1=v1&k2=v%202",
    "/bucket/na%C3%AFve%20key",
    "attachment; filename=\"a b.txt\"",
    "",
    "x  y   z",
};

static void gen_text(struct buf *b, size_t min_parts, size_t max_parts)
{
    size_t n = min_parts + rng_below(max_parts - min_parts + 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(buf_puts(b, PICK(key_parts)), 0);
    if (!b->data)
        assert_int_equal(buf_puts(b, ""), 0);
}

static void gen_path(struct buf *b)
{
    switch (rng_below(8)) {
    case 0:
        assert_int_equal(buf_puts(b, "/"), 0);
        return;
    case 1:
        assert_int_equal(buf_puts(b, "//"), 0);
        break;
    default:
        assert_int_equal(buf_puts(b, PICK(((const char *const[]){"/bucket/", "/", "/b-1/"}))), 0);
        break;
    }
    gen_text(b, 1, 8);
    if (rng_below(5) == 0)
        assert_int_equal(buf_puts(b, "/"), 0);
}

static void gen_secret(char *out, size_t len)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=";
    for (size_t i = 0; i < len; i++)
        out[i] = set[rng_below(sizeof(set) - 1)];
    out[len] = '\0';
}

struct oracle_ours {
    json_t *input;
    char *canonical_request;
    char *string_to_sign;
    char *authorization;
    char amz_date[17];
    char payload[65];
};

static json_t *json_kv_array(const struct s3_kv *kv, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("[ss]", kv[i].name, kv[i].value));
    return a;
}

/* Build one random request, sign it, keep our result and botocore's input. */
static void oracle_case_make(size_t id, struct oracle_ours *ours)
{
    struct buf path = BUF_INIT(0);
    struct buf qtext[12];
    struct s3_kv query[6];
    struct s3_kv headers[8];
    char secret[48], token[48];
    unsigned char body[48];
    char body_hex[2 * sizeof(body) + 1];
    size_t nq = rng_below(7) == 0 ? 0 : rng_below(6);
    size_t nh = rng_below(5);
    bool unsigned_payload = rng_below(3) == 0;
    bool has_token = rng_below(6) == 0;
    size_t host_i = rng_below(sizeof(hosts) / sizeof(hosts[0]));
    bool host_header = !hosts[host_i].derivable || rng_below(2) == 0;
    size_t body_len = rng_below(sizeof(body) + 1);

    gen_path(&path);
    for (size_t i = 0; i < nq; i++) {
        buf_init(&qtext[2 * i], 0);
        buf_init(&qtext[2 * i + 1], 0);
        if (rng_below(4) == 0)
            gen_text(&qtext[2 * i], 1, 3);
        else
            assert_int_equal(buf_puts(&qtext[2 * i], PICK(query_names)), 0);
        if (rng_below(3) == 0)
            gen_text(&qtext[2 * i + 1], 0, 0);
        else if (rng_below(2) == 0)
            assert_int_equal(buf_printf(&qtext[2 * i + 1], "%zu", rng_below(100000)), 0);
        else
            gen_text(&qtext[2 * i + 1], 1, 5);
        query[i].name = qtext[2 * i].data;
        query[i].value = qtext[2 * i + 1].data;
    }
    for (size_t i = 0; i < nh; i++) {
        headers[i].name = PICK(header_names);
        headers[i].value = PICK(header_values);
    }
    gen_secret(secret, 8 + rng_below(33));
    gen_secret(token, 16 + rng_below(24));
    for (size_t i = 0; i < body_len; i++)
        body[i] = (unsigned char)rng_next();
    for (size_t i = 0; i < body_len; i++)
        snprintf(body_hex + 2 * i, 3, "%02x", body[i]);
    body_hex[2 * body_len] = '\0';

    if (unsigned_payload)
        snprintf(ours->payload, sizeof(ours->payload), "%s", S3_UNSIGNED_PAYLOAD);
    else
        assert_int_equal(s3_sha256_hex(body, body_len, ours->payload), 0);

    struct s3_sign_input in = {
        .method = PICK(methods),
        .host = hosts[host_i].host,
        .path = path.data,
        .query = query,
        .nquery = nq,
        .headers = headers,
        .nheaders = nh,
        .payload_sha256 = ours->payload,
        .region = PICK(regions),
        .service = "s3",
        .access_key_id = PICK(access_keys),
        .secret_access_key = secret,
        /* 2000-01-01 .. ~2040 */
        .now = (time_t)(946684800 + rng_below(40u * 365 * 86400)),
    };
    if (has_token) {
        headers[nh].name = "x-amz-security-token";
        headers[nh].value = token;
        in.nheaders = nh + 1;
    }

    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    ours->canonical_request = strdup(out.canonical_request.data);
    ours->string_to_sign = strdup(out.string_to_sign.data);
    ours->authorization = strdup(out.authorization.data);
    assert_non_null(ours->canonical_request);
    assert_non_null(ours->string_to_sign);
    assert_non_null(ours->authorization);
    memcpy(ours->amz_date, out.amz_date, sizeof(ours->amz_date));

    ours->input =
        json_pack("{sI ss ss sb ss so so sb ss ss ss ss ss sI ss}", "id", (json_int_t)id, "method",
                  in.method, "host", in.host, "host_header", host_header, "path", in.path, "query",
                  json_kv_array(query, nq), "headers", json_kv_array(headers, nh), "unsigned",
                  unsigned_payload, "body_hex", body_hex, "region", in.region, "service",
                  in.service, "access_key", in.access_key_id, "secret_key", secret, "now",
                  (json_int_t)in.now, "url_path_query", out.url_path_query.data);
    if (!ours->input)
        fail_msg("case %zu: cannot build its JSON (invalid UTF-8 in a generated string?)", id);
    if (has_token)
        json_object_set_new(ours->input, "token", json_string(token));

    s3_sign_output_release(&out);
    for (size_t i = 0; i < 2 * nq; i++)
        buf_release(&qtext[i]);
    buf_release(&path);
}

/* The AWS GET Object example goes to botocore too: proves that the harness
 * (time pinning, payload, headers) makes botocore reproduce a known value. */
static void oracle_case_doc(struct oracle_ours *ours)
{
    struct s3_kv hdrs[] = {{"Range", "bytes=0-9"}};
    struct s3_sign_input in = doc_input();
    in.path = "/test.txt";
    in.headers = hdrs;
    in.nheaders = 1;
    struct s3_sign_output out;
    s3_sign_output_init(&out);
    sign_ok(&in, &out);
    ours->canonical_request = strdup(out.canonical_request.data);
    ours->string_to_sign = strdup(out.string_to_sign.data);
    ours->authorization = strdup(out.authorization.data);
    memcpy(ours->amz_date, out.amz_date, sizeof(ours->amz_date));
    snprintf(ours->payload, sizeof(ours->payload), "%s", in.payload_sha256);
    ours->input = json_pack("{sI ss ss sb ss s[] so sb ss ss ss ss ss sI ss}", "id", (json_int_t)0,
                            "method", in.method, "host", in.host, "host_header", 1, "path", in.path,
                            "query", "headers", json_kv_array(hdrs, 1), "unsigned", 0, "body_hex",
                            "", "region", in.region, "service", in.service, "access_key",
                            in.access_key_id, "secret_key", in.secret_access_key, "now",
                            (json_int_t)in.now, "url_path_query", out.url_path_query.data);
    assert_non_null(ours->input);
    s3_sign_output_release(&out);
}

static const char *source_dir(char *buf, size_t size)
{
    const char *env = getenv("ARCA_SOURCE_DIR");
    if (env && *env)
        return env;
    /* Fall back on where this file was compiled from (absolute in CMake
     * builds): strip "tests/unit/test_sigv4.c". */
    snprintf(buf, size, "%s", __FILE__);
    char *p = strstr(buf, "tests/unit/test_sigv4.c");
    if (p == buf)
        snprintf(buf, size, ".");
    else if (p)
        p[-1] = '\0';
    return buf;
}

static int run_oracle(const char *script, const char *in_path, const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", script, in_path, out_path, (char *)NULL);
        fprintf(stderr, "cannot run /usr/bin/python3: %s\n", strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *json_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "(missing)";
}

static bool compare_field(size_t id, json_t *input, const char *what, const char *ours,
                          const char *theirs)
{
    if (strcmp(ours, theirs) == 0)
        return true;
    char *dump = json_dumps(input, JSON_COMPACT | JSON_ENSURE_ASCII);
    /* stderr directly: cmocka's print_error() cuts long messages. */
    fprintf(stderr,
            "oracle case %zu: %s differs\n  input: %s\n"
            "  ---- ours ----\n%s\n  ---- botocore ----\n%s\n  ----\n",
            id, what, dump ? dump : "?", ours, theirs);
    fflush(stderr);
    free(dump);
    return false;
}

/* Temporary files of the oracle run; the teardown removes them even when an
 * assertion failed half-way. */
struct oracle_files {
    char dir[32];
    char in_path[64];
    char out_path[64];
};

static int oracle_setup(void **state)
{
    static struct oracle_files files;
    snprintf(files.dir, sizeof(files.dir), "/tmp/arca-sigv4-XXXXXX");
    if (!mkdtemp(files.dir))
        return -1;
    snprintf(files.in_path, sizeof(files.in_path), "%s/cases.jsonl", files.dir);
    snprintf(files.out_path, sizeof(files.out_path), "%s/results.json", files.dir);
    *state = &files;
    return 0;
}

static int oracle_teardown(void **state)
{
    struct oracle_files *files = *state;
    unlink(files->in_path);
    unlink(files->out_path);
    rmdir(files->dir);
    return 0;
}

static void test_botocore_oracle(void **state)
{
    const struct oracle_files *files = *state;
    const char *in_path = files->in_path, *out_path = files->out_path;
    struct oracle_ours *ours = calloc(ORACLE_CASES + 1, sizeof(*ours));
    char script[4096], srcbuf[4096];
    size_t with_query = 0, with_headers = 0, with_empty_value = 0;

    assert_non_null(ours);
    int n = snprintf(script, sizeof(script), "%s/tests/unit/sigv4_oracle.py",
                     source_dir(srcbuf, sizeof(srcbuf)));
    assert_true(n > 0 && (size_t)n < sizeof(script));

    rng_state = 0x5157a4c0ffee2024ULL;
    oracle_case_doc(&ours[0]);
    for (size_t i = 1; i <= ORACLE_CASES; i++) {
        oracle_case_make(i, &ours[i]);
        json_t *q = json_object_get(ours[i].input, "query");
        with_query += json_array_size(q) > 0;
        with_headers += json_array_size(json_object_get(ours[i].input, "headers")) > 0;
        for (size_t j = 0; j < json_array_size(q); j++)
            with_empty_value += *json_string_value(json_array_get(json_array_get(q, j), 1)) == 0;
    }
    /* The generator must keep exercising what it is for. */
    assert_true(with_query > ORACLE_CASES / 2);
    assert_true(with_headers > ORACLE_CASES / 2);
    assert_true(with_empty_value > 20);

    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    for (size_t i = 0; i <= ORACLE_CASES; i++) {
        assert_int_equal(json_dumpf(ours[i].input, f, JSON_COMPACT), 0);
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);

    int rc = run_oracle(script, in_path, out_path);
    if (rc == 3)
        fail_msg("botocore is not installed for /usr/bin/python3: apt-get install "
                 "python3-botocore (this test must not be skipped)");
    if (rc != 0)
        fail_msg("oracle '%s' exited with status %d", script, rc);

    json_error_t jerr;
    json_t *results = json_load_file(out_path, 0, &jerr);
    if (!results)
        fail_msg("cannot parse '%s': %s (line %d)", out_path, jerr.text, jerr.line);
    assert_int_equal(json_array_size(results), ORACLE_CASES + 1);

    /* botocore reproduces the documented example: the harness is sound. */
    json_t *doc = json_array_get(results, 0);
    assert_non_null(
        strstr(json_str(doc, "authorization"),
               "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));

    size_t bad = 0;
    for (size_t i = 0; i <= ORACLE_CASES && bad == 0; i++) {
        json_t *res = json_array_get(results, i);
        assert_int_equal(json_integer_value(json_object_get(res, "id")), (json_int_t)i);
        bool ok = compare_field(i, ours[i].input, "canonical request", ours[i].canonical_request,
                                json_str(res, "canonical_request")) &&
                  compare_field(i, ours[i].input, "string to sign", ours[i].string_to_sign,
                                json_str(res, "string_to_sign")) &&
                  compare_field(i, ours[i].input, "authorization", ours[i].authorization,
                                json_str(res, "authorization")) &&
                  compare_field(i, ours[i].input, "x-amz-date", ours[i].amz_date,
                                json_str(res, "amz_date")) &&
                  compare_field(i, ours[i].input, "x-amz-content-sha256", ours[i].payload,
                                json_str(res, "content_sha256")) &&
                  compare_field(i, ours[i].input, "url check", "ok", json_str(res, "url_check"));
        bad += !ok;
    }
    json_decref(results);

    for (size_t i = 0; i <= ORACLE_CASES; i++) {
        json_decref(ours[i].input);
        free(ours[i].canonical_request);
        free(ours[i].string_to_sign);
        free(ours[i].authorization);
    }
    free(ours);
    if (bad)
        fail_msg("our signer and botocore disagree (first mismatch printed above)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_get_object),
        cmocka_unit_test(test_doc_put_object),
        cmocka_unit_test(test_doc_get_lifecycle),
        cmocka_unit_test(test_doc_list_objects),
        cmocka_unit_test(test_secret_matters),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_path_and_query_encoding),
        cmocka_unit_test(test_header_canonicalization),
        cmocka_unit_test(test_output_reuse),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test_setup_teardown(test_botocore_oracle, oracle_setup, oracle_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
