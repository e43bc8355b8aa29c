/*
 * test_s3_retry.c - the S3 retry policy and the mtime metadata form
 * (src/storage/s3/s3.h; docs/CLI.md "Retries").
 *
 * Classification: what S3 and S3-compatible servers answer when they are
 * overloaded or broken (retry) versus what will not change on a second try
 * (do not). Backoff: full jitter on 100 ms doubling, capped at 5 s.
 * mtime: rclone's x-amz-meta-mtime form "<seconds>.<fraction>".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "core/error.h"
#include "storage/s3/s3.h"

static void expect_retry(long status, const char *code, int curl_code, enum s3_retry_decision want)
{
    enum s3_retry_decision got = s3_retry_classify(status, code, curl_code);
    if (got != want)
        print_error("status %ld code '%s' curl %d (%s): got %s, want %s\n", status,
                    code ? code : "(null)", curl_code, curl_easy_strerror((CURLcode)curl_code),
                    got ? "retry" : "no retry", want ? "retry" : "no retry");
    assert_int_equal(got, want);
}

static void test_http_statuses(void **state)
{
    (void)state;
    const long retry[] = {500, 502, 503, 504, 429};
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        expect_retry(retry[i], NULL, CURLE_OK, S3_RETRY_YES);
        expect_retry(retry[i], "", CURLE_OK, S3_RETRY_YES);
    }
    const long final[] = {400, 401, 403, 404, 405, 409, 411, 412, 416, 501};
    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++) {
        expect_retry(final[i], NULL, CURLE_OK, S3_RETRY_NO);
        expect_retry(final[i], "", CURLE_OK, S3_RETRY_NO);
    }
    /* success is not retried */
    expect_retry(200, NULL, CURLE_OK, S3_RETRY_NO);
    expect_retry(200, "", CURLE_OK, S3_RETRY_NO);
    expect_retry(204, NULL, CURLE_OK, S3_RETRY_NO);
    expect_retry(206, "", CURLE_OK, S3_RETRY_NO);
}

static void test_s3_error_codes(void **state)
{
    (void)state;
    /* retryable codes, with the statuses servers really send them with */
    expect_retry(503, "SlowDown", CURLE_OK, S3_RETRY_YES);
    expect_retry(400, "RequestTimeout", CURLE_OK, S3_RETRY_YES);
    expect_retry(500, "InternalError", CURLE_OK, S3_RETRY_YES);
    expect_retry(503, "ServiceUnavailable", CURLE_OK, S3_RETRY_YES);
    /* final ones */
    expect_retry(403, "AccessDenied", CURLE_OK, S3_RETRY_NO);
    expect_retry(404, "NoSuchKey", CURLE_OK, S3_RETRY_NO);
    expect_retry(404, "NoSuchBucket", CURLE_OK, S3_RETRY_NO);
    expect_retry(403, "SignatureDoesNotMatch", CURLE_OK, S3_RETRY_NO);
    expect_retry(403, "InvalidAccessKeyId", CURLE_OK, S3_RETRY_NO);
    expect_retry(400, "InvalidArgument", CURLE_OK, S3_RETRY_NO);
    expect_retry(400, "EntityTooSmall", CURLE_OK, S3_RETRY_NO);
    expect_retry(400, "BadDigest", CURLE_OK, S3_RETRY_NO);
    expect_retry(412, "PreconditionFailed", CURLE_OK, S3_RETRY_NO);
    /* codes are case-sensitive names, not prefixes */
    expect_retry(400, "slowdown", CURLE_OK, S3_RETRY_NO);
    expect_retry(400, "SlowDownPlease", CURLE_OK, S3_RETRY_NO);
}

static void test_200_with_error_body(void **state)
{
    (void)state;
    /* CompleteMultipartUpload and CopyObject may answer 200 and then an
     * <Error> document: that is a failure, and worth another try */
    expect_retry(200, "InternalError", CURLE_OK, S3_RETRY_YES);
    expect_retry(200, "SlowDown", CURLE_OK, S3_RETRY_YES);
    expect_retry(200, "SomethingWentWrong", CURLE_OK, S3_RETRY_YES);
}

static void test_connection_errors(void **state)
{
    (void)state;
    const int retry[] = {
        CURLE_COULDNT_CONNECT, CURLE_RECV_ERROR,   CURLE_OPERATION_TIMEDOUT,   CURLE_SEND_ERROR,
        CURLE_GOT_NOTHING,     CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST,
    };
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
        expect_retry(0, NULL, retry[i], S3_RETRY_YES);
    /* TLS verification failures do not heal by themselves; nor do our own
     * mistakes or our own abort */
    const int final[] = {
        CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,  CURLE_URL_MALFORMAT,
        CURLE_UNSUPPORTED_PROTOCOL,     CURLE_ABORTED_BY_CALLBACK,
    };
    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
        expect_retry(0, NULL, final[i], S3_RETRY_NO);
}

static void test_delay_bounds_and_growth(void **state)
{
    (void)state;
    const double rnds[] = {0.0, 0.001, 0.25, 0.5, 0.75, 0.999999};
    for (int attempt = 1; attempt <= 64; attempt++) {
        for (size_t i = 0; i < sizeof(rnds) / sizeof(rnds[0]); i++) {
            double d = s3_retry_delay(attempt, rnds[i]);
            assert_true(d >= 0.0);
            assert_true(d <= 5.0);
        }
        /* full jitter: rnd 0 means no wait at all */
        assert_true(s3_retry_delay(attempt, 0.0) == 0.0);
        /* linear in rnd */
        double hi = s3_retry_delay(attempt, 0.999999);
        double mid = s3_retry_delay(attempt, 0.5);
        double want = hi / 0.999999 * 0.5;
        assert_true(mid > want * (1 - 1e-9) && mid < want * (1 + 1e-9));
    }
    /* the bound grows (doubling) until it reaches the cap, then stays */
    double prev = 0;
    bool capped = false;
    for (int attempt = 1; attempt <= 40; attempt++) {
        double d = s3_retry_delay(attempt, 0.999999);
        assert_true(d >= prev - 1e-12);
        if (!capped && d < 4.99) {
            if (attempt > 1)
                assert_true(d > prev * 1.9 && d < prev * 2.1);
        } else {
            capped = true;
            assert_true(d > 4.99);
        }
        prev = d;
    }
    assert_true(capped);
    /* huge attempt numbers do not overflow into NaN or infinity */
    assert_true(s3_retry_delay(1000000, 0.5) <= 5.0);
    assert_true(s3_retry_delay(1000000, 0.5) >= 2.49);
}

static void test_delay_base(void **state)
{
    (void)state;
    /* "100 ms doubling" (docs/CLI.md), attempt 1 = the first retry: the
     * first retry waits at most 100 ms, the second at most 200 ms */
    double d1 = s3_retry_delay(1, 0.999999);
    double d2 = s3_retry_delay(2, 0.999999);
    if (d1 > 0.1 + 1e-9)
        print_error("first retry may wait %.3f s, more than 100 ms\n", d1);
    assert_true(d1 > 0.099 && d1 <= 0.1 + 1e-9);
    assert_true(d2 > 0.199 && d2 <= 0.2 + 1e-9);
}

/* ---- mtime ------------------------------------------------------------- */

static void expect_mtime(const char *s, int64_t want)
{
    int64_t ns = 12345;
    bool ok = s3_mtime_parse(s, &ns);
    if (!ok || ns != want)
        print_error("'%s': ok %d ns %lld, want %lld\n", s, ok, (long long)ns, (long long)want);
    assert_true(ok);
    assert_true(ns == want);
}

static void expect_mtime_bad(const char *s)
{
    int64_t ns = 12345;
    bool ok = s3_mtime_parse(s, &ns);
    if (ok)
        print_error("'%s' accepted as %lld\n", s ? s : "(null)", (long long)ns);
    assert_false(ok);
}

static void test_mtime_parse(void **state)
{
    (void)state;
    expect_mtime("1700000000.5", 1700000000500000000ll);
    expect_mtime("1700000000", 1700000000000000000ll);
    expect_mtime("1700000000.", 1700000000000000000ll);
    expect_mtime("1700000000.123456789", 1700000000123456789ll);
    expect_mtime("1700000000.000000001", 1700000000000000001ll);
    /* more digits than ns: cut, not rounded into the seconds */
    expect_mtime("1700000000.9999999999", 1700000000999999999ll);
    expect_mtime("0", 0);
    expect_mtime("0.0", 0);
    expect_mtime("-5", -5000000000ll);
    expect_mtime("1700000000.5\r\n", 1700000000500000000ll); /* header line endings */
    /* the largest representable value */
    expect_mtime("9223372036.854775807", INT64_MAX);

    expect_mtime_bad(NULL);
    expect_mtime_bad("");
    expect_mtime_bad("abc");
    expect_mtime_bad("12x");
    expect_mtime_bad("1.2.3");
    expect_mtime_bad("--1");
    expect_mtime_bad("-");
    expect_mtime_bad(".5");
    expect_mtime_bad("1e9");
    expect_mtime_bad("0x10");
    expect_mtime_bad("2023-11-14T22:13:20Z");
    expect_mtime_bad("99999999999999999999");
}

static void test_mtime_overflow(void **state)
{
    (void)state;
    /* values past INT64_MAX ns come from a server, not from us: they must
     * be refused, never wrap (signed overflow is undefined behaviour) */
    expect_mtime_bad("9223372037");
    expect_mtime_bad("9223372039");
    expect_mtime_bad("9223372036.854775808");
    expect_mtime_bad("9223372036.999999999");
    expect_mtime_bad("-9223372037");
}

static void test_mtime_format_and_round_trip(void **state)
{
    (void)state;
    char out[32];
    s3_mtime_format(1700000000500000000ll, out, sizeof(out));
    assert_string_equal(out, "1700000000.500000000");
    s3_mtime_format(1700000000000000000ll, out, sizeof(out));
    assert_string_equal(out, "1700000000.000000000");
    s3_mtime_format(0, out, sizeof(out));
    assert_string_equal(out, "0.000000000");
    s3_mtime_format(1, out, sizeof(out));
    assert_string_equal(out, "0.000000001");

    const int64_t samples[] = {
        0,
        1,
        999999999,
        1000000000,
        1700000000500000000ll,
        1700000000123456789ll,
        INT64_MAX,
        -1000000000, /* whole negative seconds */
        -5000000000ll,
        -1500000000, /* 1.5 s before the epoch */
        -1,
        -999999999,
        -1700000000123456789ll,
    };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        s3_mtime_format(samples[i], out, sizeof(out));
        int64_t back = 12345;
        bool ok = s3_mtime_parse(out, &back);
        if (!ok || back != samples[i])
            print_error("%lld -> '%s' -> %lld (ok %d)\n", (long long)samples[i], out,
                        (long long)back, ok);
        assert_true(ok);
        assert_true(back == samples[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_statuses),
        cmocka_unit_test(test_s3_error_codes),
        cmocka_unit_test(test_200_with_error_body),
        cmocka_unit_test(test_connection_errors),
        cmocka_unit_test(test_delay_bounds_and_growth),
        cmocka_unit_test(test_delay_base),
        cmocka_unit_test(test_mtime_parse),
        cmocka_unit_test(test_mtime_overflow),
        cmocka_unit_test(test_mtime_format_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
