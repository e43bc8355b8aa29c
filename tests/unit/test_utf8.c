/* Unit tests for core/utf8: what counts as UTF-8, and sanitizing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

static void test_valid(void **state)
{
    (void)state;
    const char *ok[] = {"",
                        "plain ascii",
                        "Z\xc3\xbcrich",
                        "\xe2\x82\xac 5",
                        "\xf0\x9f\x93\xa6 box",
                        "\xf4\x8f\xbf\xbf" /* U+10FFFF */,
                        "\xed\x9f\xbf" /* U+D7FF */};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!utf8_valid(ok[i], strlen(ok[i])))
            fail_msg("'%s' should be valid", ok[i]);
    }
    assert_int_equal(utf8_seq_len((const unsigned char *)"a", 1), 1);
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xc3\xbc", 2), 2);
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xf0\x9f\x93\xa6", 4), 4);
}

static void test_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "\xff",             /* never in UTF-8 */
        "\x80",             /* lone continuation */
        "\xc3",             /* truncated */
        "\xe2\x82",         /* truncated */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xc3\x41",         /* bad continuation */
        "ok\xfe",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (utf8_valid(bad[i], strlen(bad[i])))
            fail_msg("case %zu should be invalid", i);
    }
    /* the length bound is respected: a sequence cut by n is invalid */
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xc3\xbc", 1), 0);
    assert_int_equal(utf8_seq_len((const unsigned char *)"x", 0), 0);
}

static void test_sanitize(void **state)
{
    (void)state;
    const char *in = "Z\xc3\xbcrich/\xff\xfe.txt";
    char *s = utf8_sanitize(in, strlen(in));
    assert_non_null(s);
    assert_string_equal(s, "Z\xc3\xbcrich/\xef\xbf\xbd\xef\xbf\xbd.txt");
    assert_true(utf8_valid(s, strlen(s)));
    free(s);
    s = utf8_sanitize("\xe2\x82", 2); /* truncated: each byte replaced */
    assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
    s = utf8_sanitize("", 0);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
