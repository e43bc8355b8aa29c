/*
 * test_envelope.c - secrets at rest (src/crypto/envelope.h).
 *
 * A secret opens only with the key and the binding it was sealed with: a
 * wrong master key, another tenant, record or field, a flipped bit, a cut
 * or a future version byte all fail with ERR_CORRUPT and a message that
 * holds neither the secret nor the key. Data keys survive a master key
 * rotation (re-wrapped). Key files: mode 0600 only, never overwritten,
 * their text form round-trips, and damaged ones are refused without
 * echoing them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "crypto/envelope.h"

static const char SECRET[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

static void ad_of(char *ad, const char *tenant, const char *record, const char *field)
{
    struct err e;
    assert_int_equal(envelope_secret_ad(ad, 256, tenant, "profiles", record, field, &e), 0);
}

static void test_seal_open(void **state)
{
    (void)state;
    struct err e;
    struct envelope_key *k = envelope_key_random(), *other = envelope_key_random();
    assert_non_null(k);
    char ad[256], ad2[256];
    ad_of(ad, "t1", "p7", "secret_access_key");
    unsigned char *s;
    size_t n;
    assert_int_equal(envelope_seal(k, ad, SECRET, strlen(SECRET), &s, &n, &e), 0);
    assert_int_equal(n, envelope_sealed_len(strlen(SECRET)));
    assert_null(memmem(s, n, SECRET, strlen(SECRET)));
    char *p;
    size_t pn;
    assert_int_equal(envelope_open(k, ad, s, n, "profile p7", &p, &pn, &e), 0);
    assert_int_equal(pn, strlen(SECRET));
    assert_string_equal(p, SECRET);
    envelope_free(p);

    /* every other key or binding fails, naming the record, not the secret */
    const char *binds[][3] = {{"t2", "p7", "secret_access_key"},
                              {"t1", "p8", "secret_access_key"},
                              {"t1", "p7", "password"}};
    for (size_t i = 0; i < 3; i++) {
        ad_of(ad2, binds[i][0], binds[i][1], binds[i][2]);
        assert_int_equal(envelope_open(k, ad2, s, n, "profile p7", &p, &pn, &e), ERR_CORRUPT);
        assert_null(p);
        assert_non_null(strstr(e.msg, "profile p7"));
        assert_null(strstr(e.msg, SECRET));
    }
    assert_int_equal(envelope_open(other, ad, s, n, "profile p7", &p, &pn, &e), ERR_CORRUPT);
    /* any changed byte, a cut, a version this arca does not know */
    for (size_t i = 0; i < n; i++) {
        s[i] ^= 0x01;
        assert_int_equal(envelope_open(k, ad, s, n, "x", &p, &pn, &e), ERR_CORRUPT);
        s[i] ^= 0x01;
    }
    assert_int_equal(envelope_open(k, ad, s, n - 1, "x", &p, &pn, &e), ERR_CORRUPT);
    assert_int_equal(envelope_open(k, ad, s, 10, "x", &p, &pn, &e), ERR_CORRUPT);
    /* two seals of one secret differ (random nonces) */
    unsigned char *s2;
    size_t n2;
    assert_int_equal(envelope_seal(k, ad, SECRET, strlen(SECRET), &s2, &n2, &e), 0);
    assert_memory_not_equal(s, s2, n);
    free(s2);
    free(s);
    /* an empty secret */
    assert_int_equal(envelope_seal(k, ad, "", 0, &s, &n, &e), 0);
    assert_int_equal(envelope_open(k, ad, s, n, "x", &p, &pn, &e), 0);
    assert_int_equal(pn, 0);
    envelope_free(p);
    free(s);
    assert_int_equal(envelope_secret_ad(ad, sizeof(ad), "t|1", "profiles", "p", "f", &e),
                     ERR_INTERNAL);
    envelope_key_free(k);
    envelope_key_free(other);
}

static void test_wrap_rotate(void **state)
{
    (void)state;
    struct err e;
    struct envelope_key *m1 = envelope_key_random(), *m2 = envelope_key_random();
    struct envelope_key *dek = envelope_key_random(), *got;
    unsigned char *w;
    size_t wn;
    assert_int_equal(envelope_wrap(m1, "dek-1", dek, &w, &wn, &e), 0);
    /* another id or master key does not unwrap it */
    assert_int_equal(envelope_unwrap(m1, "dek-2", w, wn, &got, &e), ERR_CORRUPT);
    assert_int_equal(envelope_unwrap(m2, "dek-1", w, wn, &got, &e), ERR_CORRUPT);
    assert_null(got);
    /* a secret sealed with the data key survives rotating the master key */
    char ad[256];
    ad_of(ad, "t1", "p1", "password");
    unsigned char *s;
    size_t n;
    assert_int_equal(envelope_seal(dek, ad, SECRET, strlen(SECRET), &s, &n, &e), 0);
    assert_int_equal(envelope_unwrap(m1, "dek-1", w, wn, &got, &e), 0);
    unsigned char *w2;
    size_t wn2;
    assert_int_equal(envelope_wrap(m2, "dek-1", got, &w2, &wn2, &e), 0);
    envelope_key_free(got);
    assert_int_equal(envelope_unwrap(m2, "dek-1", w2, wn2, &got, &e), 0);
    char *p;
    size_t pn;
    assert_int_equal(envelope_open(got, ad, s, n, "x", &p, &pn, &e), 0);
    assert_string_equal(p, SECRET);
    envelope_free(p);
    envelope_key_free(got);
    free(w);
    free(w2);
    free(s);
    envelope_key_free(m1);
    envelope_key_free(m2);
    envelope_key_free(dek);
}

static void test_key_text_and_files(void **state)
{
    (void)state;
    struct err e;
    char dir[] = "/tmp/arca-test-envelope-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], text[ENVELOPE_KEY_TEXT_LEN + 1];
    snprintf(path, sizeof(path), "%s/master.key", dir);
    struct envelope_key *k = envelope_key_random(), *k2;
    envelope_key_text(k, text);
    assert_int_equal(strlen(text), ENVELOPE_KEY_TEXT_LEN);
    assert_int_equal(envelope_key_file_create(path, k, &e), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* never overwritten */
    assert_int_equal(envelope_key_file_create(path, k, &e), ERR_EXISTS);
    /* read back: the same key (a secret sealed with one opens with the other) */
    assert_int_equal(envelope_key_file_read(path, &k2, &e), 0);
    unsigned char *s;
    size_t n;
    char *p;
    size_t pn;
    assert_int_equal(envelope_seal(k, "ad", "x", 1, &s, &n, &e), 0);
    assert_int_equal(envelope_open(k2, "ad", s, n, "x", &p, &pn, &e), 0);
    envelope_free(p);
    free(s);
    envelope_key_free(k2);
    /* the text form with spaces and newlines around it */
    char padded[ENVELOPE_KEY_TEXT_LEN + 8];
    snprintf(padded, sizeof(padded), "  %s\r\n", text);
    assert_int_equal(envelope_key_parse(padded, "ARCA_MASTER_KEY", &k2, &e), 0);
    envelope_key_free(k2);
    /* damaged: wrong prefix, cut, one character off; the text is never echoed */
    char bad[ENVELOPE_KEY_TEXT_LEN + 1];
    snprintf(bad, sizeof(bad), "%s", text);
    bad[ENVELOPE_KEY_TEXT_LEN - 3] = '\0';
    assert_int_equal(envelope_key_parse(bad, "ARCA_MASTER_KEY", &k2, &e), ERR_CONFIG);
    assert_null(strstr(e.msg, text + strlen(ENVELOPE_KEY_PREFIX)));
    assert_non_null(strstr(e.msg, "ARCA_MASTER_KEY"));
    assert_int_equal(envelope_key_parse(text + 1, "k", &k2, &e), ERR_CONFIG);
    snprintf(bad, sizeof(bad), "%s", text);
    bad[ENVELOPE_KEY_TEXT_LEN - 5] = '!';
    assert_int_equal(envelope_key_parse(bad, "k", &k2, &e), ERR_CONFIG);
    /* a key file others may read is refused */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(envelope_key_file_read(path, &k2, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "chmod 600"));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(envelope_key_file_read(path, &k2, &e), ERR_NOT_FOUND);
    assert_int_equal(rmdir(dir), 0);
    envelope_key_free(k);
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
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_wrap_rotate),
        cmocka_unit_test(test_key_text_and_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
