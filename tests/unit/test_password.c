/*
 * test_password.c - password hashes and API tokens (src/crypto/password.h).
 *
 * A hash verifies its password and no other (one byte off, a prefix, the
 * empty string), is Argon2id in the standard encoded form and differs for
 * two hashes of one password (salt). An unknown user (no hash) never
 * verifies and costs about as much as a real check. Tokens have their
 * documented shape, are unique, and their stored hash is the SHA-256 of the
 * text (checked against OpenSSL); malformed tokens are refused without
 * detail. The policy message never repeats the password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "core/error.h"
#include "crypto/envelope.h"
#include "crypto/password.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_hash_verify(void **state)
{
    (void)state;
    struct err e;
    const char *pw = "correct horse battery staple";
    char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX];
    assert_int_equal(password_hash(pw, h1, &e), 0);
    assert_int_equal(password_hash(pw, h2, &e), 0);
    assert_int_equal(strncmp(h1, "$argon2id$", 10), 0);
    assert_string_not_equal(h1, h2);
    assert_null(strstr(h1, pw));
    assert_true(password_verify(h1, pw));
    assert_true(password_verify(h2, pw));
    assert_false(password_verify(h1, "correct horse battery stapl"));
    assert_false(password_verify(h1, "correct horse battery staplE"));
    assert_false(password_verify(h1, ""));
    assert_false(password_verify(h1, NULL));
    assert_false(password_needs_rehash(h1));
    /* an unknown user: never true, and not answered faster than a real check */
    double t0 = now_s();
    assert_false(password_verify(h1, "wrong password here"));
    double real = now_s() - t0;
    (void)password_verify(NULL, "warm up the dummy hash");
    t0 = now_s();
    assert_false(password_verify(NULL, pw));
    double unknown = now_s() - t0;
    assert_true(unknown > real / 4);
}

static void test_policy(void **state)
{
    (void)state;
    struct err e;
    assert_int_equal(password_check_policy("short-pw", &e), ERR_USAGE);
    assert_null(strstr(e.msg, "short-pw"));
    assert_int_equal(password_check_policy(NULL, &e), ERR_USAGE);
    assert_int_equal(password_check_policy("twelve chars", &e), 0);
    char longpw[1100];
    memset(longpw, 'a', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(password_check_policy(longpw, &e), ERR_USAGE);
    char r1[25], r2[25];
    password_random(r1);
    password_random(r2);
    assert_int_equal(strlen(r1), 24);
    assert_string_not_equal(r1, r2);
    assert_int_equal(password_check_policy(r1, &e), 0);
}

static void test_tokens(void **state)
{
    (void)state;
    struct err e;
    char t1[TOKEN_TEXT_LEN + 1], h1[65], t2[TOKEN_TEXT_LEN + 1], h2[65], again[65];
    token_new(t1, h1);
    token_new(t2, h2);
    assert_int_equal(strlen(t1), TOKEN_TEXT_LEN);
    assert_int_equal(strncmp(t1, TOKEN_PREFIX, strlen(TOKEN_PREFIX)), 0);
    assert_string_not_equal(t1, t2);
    assert_string_not_equal(h1, h2);
    /* the stored hash is the SHA-256 of the text, by OpenSSL */
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)t1, strlen(t1), d);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(h1, hex);
    assert_int_equal(token_hash(t1, again, &e), 0);
    assert_string_equal(again, h1);
    /* malformed: refused, and the message says nothing more */
    char bad[TOKEN_TEXT_LEN + 2];
    const char *cases[] = {"", "arca_", "Bearer x", NULL};
    for (size_t i = 0; cases[i]; i++) {
        assert_int_equal(token_hash(cases[i], again, &e), ERR_AUTH);
        assert_string_equal(e.msg, "invalid token");
    }
    snprintf(bad, sizeof(bad), "%s", t1);
    bad[10] = '+';
    assert_int_equal(token_hash(bad, again, &e), ERR_AUTH);
    snprintf(bad, sizeof(bad), "%sx", t1);
    assert_int_equal(token_hash(bad, again, &e), ERR_AUTH);
    assert_int_equal(token_hash(NULL, again, &e), ERR_AUTH);
}

static int setup(void **state)
{
    (void)state;
    struct err e;
    return envelope_init(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
