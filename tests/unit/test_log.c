/*
 * test_log.c - diagnostics and their redaction (src/core/log.h).
 *
 * Lines are captured with log_set_sink(). Redaction is checked on the
 * shapes secrets really take in this program: registered values anywhere
 * in a line, SigV4 Authorization headers (whose value holds commas),
 * presigned URLs, key=value and JSON pairs. JSON lines are parsed back with
 * jansson, an independent parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/log.h"

#define CAP_LINES 16

static struct {
    char *lines[CAP_LINES];
    size_t n;
} cap;

static void cap_sink(const char *line, void *ctx)
{
    assert_ptr_equal(ctx, &cap);
    if (cap.n < CAP_LINES)
        cap.lines[cap.n++] = strdup(line);
}

static void cap_reset(void)
{
    for (size_t i = 0; i < cap.n; i++)
        free(cap.lines[i]);
    cap.n = 0;
}

static int setup(void **state)
{
    (void)state;
    cap_reset();
    log_set_sink(cap_sink, &cap);
    log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cap_reset();
    log_clear_secrets();
    log_set_sink(NULL, NULL);
    log_setup(LOG_WARN, LOG_FORMAT_TEXT);
    return 0;
}

/* Redact a copy of s and return it in out. */
static void redacted(const char *s, char *out, size_t cap_out)
{
    snprintf(out, cap_out, "%s", s);
    log_redact(out);
}

static void test_registered_secret_anywhere(void **state)
{
    (void)state;
    const char *secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    log_add_secret(secret);
    char out[512];

    redacted("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", out, sizeof(out));
    assert_string_equal(out, "***");

    redacted("start wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY middle "
             "xwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYx end",
             out, sizeof(out));
    assert_string_equal(out, "start *** middle x***x end");

    /* through log_msg, in the middle of a word and twice on a line */
    log_error("curl said: url=http://h/?a=%s&b=%s done", secret, secret);
    assert_int_equal(cap.n, 1);
    assert_null(strstr(cap.lines[0], "wJalrXUtnFEMI"));
    assert_non_null(strstr(cap.lines[0], "done"));

    /* short values are ignored: they would mask ordinary text */
    log_add_secret("abc");
    redacted("abc def", out, sizeof(out));
    assert_string_equal(out, "abc def");

    /* forgetting secrets stops masking them */
    log_clear_secrets();
    redacted("x wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", out, sizeof(out));
    assert_string_equal(out, "x wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
}

static void test_authorization_header(void **state)
{
    (void)state;
    char out[1024];
    /* The AWS documentation's example header: its value holds commas. */
    const char *hdr =
        "> Authorization: AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n"
        "> Host: examplebucket.s3.amazonaws.com";
    redacted(hdr, out, sizeof(out));
    assert_null(strstr(out, "AKIAIOSFODNN7EXAMPLE"));
    assert_null(strstr(out, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
    assert_non_null(strstr(out, "Authorization: "));
    /* the next header line is untouched */
    assert_non_null(strstr(out, "\r\n> Host: examplebucket.s3.amazonaws.com"));

    /* any case, other schemes */
    redacted("authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", out, sizeof(out));
    assert_null(strstr(out, "eyJhbGciOiJIUzI1NiJ9"));
    assert_non_null(strstr(out, "authorization:"));

    redacted("X-Amz-Security-Token: FQoGZXIvYXdzEJr//////////wEaDOK", out, sizeof(out));
    assert_null(strstr(out, "FQoGZXIvYXdzEJr"));
}

static void test_presigned_url(void **state)
{
    (void)state;
    char out[1024];
    redacted("GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 "
             "failed",
             out, sizeof(out));
    assert_null(strstr(out, "aeeed9bbccd4d02ee5c0109b86d86835"));
    assert_null(strstr(out, "AKIAIOSFODNN7EXAMPLE"));
    /* the rest of the URL and the line survive */
    assert_non_null(strstr(out, "X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"));
    assert_non_null(strstr(out, "X-Amz-Signature="));
    assert_non_null(strstr(out, " failed"));

    redacted("?X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE&x=1", out, sizeof(out));
    assert_null(strstr(out, "IQoJb3JpZ2luX2VjEXAMPLE"));
    assert_non_null(strstr(out, "&x=1"));

    /* the value is masked whatever characters it is made of */
    redacted("x-amz-signature=abcdef0123456789 done", out, sizeof(out));
    assert_null(strstr(out, "abcdef0123456789"));
    assert_non_null(strstr(out, " done"));
}

static void test_key_value_forms(void **state)
{
    (void)state;
    char out[512];

    redacted("login password=hunter2 user=bob", out, sizeof(out));
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "password="));
    assert_non_null(strstr(out, " user=bob"));

    redacted("{\"access_key_id\": \"AKIA1\", \"secret_access_key\": \"wJalrXUtnFEMI\", \"region\": "
             "\"x\"}",
             out, sizeof(out));
    assert_null(strstr(out, "wJalrXUtnFEMI"));
    assert_non_null(strstr(out, "\"secret_access_key\": \""));
    assert_non_null(strstr(out, "\"region\": \"x\"}"));

    redacted("token: abc", out, sizeof(out));
    assert_null(strstr(out, "abc"));
    assert_non_null(strstr(out, "token:"));

    redacted("secret_access_key = wJalrXUtnFEMI", out, sizeof(out));
    assert_null(strstr(out, "wJalrXUtnFEMI"));

    redacted("PASSWORD=Hunter2&next=1", out, sizeof(out));
    assert_null(strstr(out, "Hunter2"));
    assert_non_null(strstr(out, "&next=1"));

    redacted("passphrase: correct-horse", out, sizeof(out));
    assert_null(strstr(out, "correct-horse"));

    redacted("session_token=IQoJb3JpZ2luX2VjE", out, sizeof(out));
    assert_null(strstr(out, "IQoJb3JpZ2luX2VjE"));
}

static void test_ordinary_words_kept(void **state)
{
    (void)state;
    const char *lines[] = {
        "secret_access_key is missing; set it in the config file",
        "no password given for 'nas'",
        "the token expired, get a new one",
        "copied 3 files to 's3://b/p' in 1.2 s",
        "",
    };
    char out[512];
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        redacted(lines[i], out, sizeof(out));
        assert_string_equal(out, lines[i]);
    }
}

static void test_text_format_and_levels(void **state)
{
    (void)state;
    log_setup(LOG_WARN, LOG_FORMAT_TEXT);
    assert_int_equal(log_get_level(), LOG_WARN);
    log_debug("hidden %d", 1);
    log_info("hidden %d", 2);
    assert_int_equal(cap.n, 0);
    log_warn("careful with '%s'", "x");
    log_error("broken: password=%s", "hunter2");
    assert_int_equal(cap.n, 2);
    assert_string_equal(cap.lines[0], "arca: warn: careful with 'x'");
    assert_null(strstr(cap.lines[1], "hunter2"));
    assert_non_null(strstr(cap.lines[1], "arca: error: broken: password="));

    log_setup(LOG_INFO, LOG_FORMAT_TEXT);
    log_info("plain %s", "line");
    assert_int_equal(cap.n, 3);
    assert_string_equal(cap.lines[2], "plain line");
}

static json_t *parse_line(const char *line)
{
    json_error_t jerr;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        print_error("invalid JSON (%s at %d): %s\n", jerr.text, jerr.position, line);
    assert_non_null(o);
    assert_true(json_is_object(o));
    return o;
}

static void test_json_format(void **state)
{
    (void)state;
    log_setup(LOG_DEBUG, LOG_FORMAT_JSON);
    log_add_secret("s3cr3tvalue");
    log_warn("quote \" backslash \\ newline \n tab \t bell \a key s3cr3tvalue, 'caf\xc3\xa9'");
    log_debug("debug line");
    log_info("Authorization: AWS4-HMAC-SHA256 Credential=AKIAXXXXEXAMPLE/x");
    assert_int_equal(cap.n, 3);

    json_t *o = parse_line(cap.lines[0]);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "log");
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "quote \" backslash \\ newline \n tab \t bell \a key ***, 'caf\xc3\xa9'");
    const char *when = json_string_value(json_object_get(o, "time"));
    assert_non_null(when);
    /* RFC 3339 with milliseconds, UTC: 2026-11-22T05:05:54.492Z */
    assert_int_equal(strlen(when), 24);
    assert_int_equal(when[10], 'T');
    assert_int_equal(when[19], '.');
    assert_int_equal(when[23], 'Z');
    json_decref(o);

    o = parse_line(cap.lines[1]);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "debug");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "debug line");
    json_decref(o);

    o = parse_line(cap.lines[2]);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
    assert_null(strstr(json_string_value(json_object_get(o, "msg")), "AKIAXXXXEXAMPLE"));
    json_decref(o);
}

static void test_json_non_utf8(void **state)
{
    (void)state;
    log_setup(LOG_DEBUG, LOG_FORMAT_JSON);
    /* a path that is not UTF-8 must still give a parseable line */
    log_error("cannot read '%s'", "bad\xff\xfe name");
    assert_int_equal(cap.n, 1);
    json_t *o = parse_line(cap.lines[0]);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "error");
    const char *msg = json_string_value(json_object_get(o, "msg"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "cannot read 'bad"));
    assert_non_null(strstr(msg, " name'"));
    json_decref(o);
}

static void test_json_long_message(void **state)
{
    (void)state;
    log_setup(LOG_DEBUG, LOG_FORMAT_JSON);
    /* longer than the line buffer, and every byte needs escaping */
    char *big = malloc(20000);
    assert_non_null(big);
    memset(big, '"', 19999);
    big[19999] = '\0';
    log_error("%s", big);
    memset(big, '\n', 19999);
    log_error("%s", big);
    free(big);
    assert_int_equal(cap.n, 2);
    for (size_t i = 0; i < cap.n; i++) {
        json_t *o = parse_line(cap.lines[i]);
        assert_string_equal(json_string_value(json_object_get(o, "level")), "error");
        const char *msg = json_string_value(json_object_get(o, "msg"));
        assert_non_null(msg);
        assert_true(strlen(msg) > 100);
        assert_int_equal(strspn(msg, i ? "\n" : "\""), strlen(msg));
        json_decref(o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registered_secret_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorization_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presigned_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_value_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ordinary_words_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_format_and_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_non_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_long_message, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
