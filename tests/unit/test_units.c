/*
 * test_units.c - sizes and rates in binary units (src/core/units.h,
 * docs/CLI.md "Units").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/units.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define TIB (1024ull * 1024 * 1024 * 1024)
#define PIB (1024ull * 1024 * 1024 * 1024 * 1024)

static void expect_size(const char *s, uint64_t want)
{
    struct err e;
    err_clear(&e);
    uint64_t v = 12345;
    int r = units_parse_size(s, "--s3-part-size", &v, &e);
    if (r)
        print_error("'%s': %s\n", s, e.msg);
    assert_int_equal(r, 0);
    if (v != want)
        print_error("'%s': got %llu, want %llu\n", s, (unsigned long long)v,
                    (unsigned long long)want);
    assert_true(v == want);
}

static void expect_rate(const char *s, uint64_t want)
{
    struct err e;
    err_clear(&e);
    uint64_t v = 12345;
    int r = units_parse_rate(s, "--bwlimit", &v, &e);
    if (r)
        print_error("'%s': %s\n", s, e.msg);
    assert_int_equal(r, 0);
    if (v != want)
        print_error("'%s': got %llu, want %llu\n", s, (unsigned long long)v,
                    (unsigned long long)want);
    assert_true(v == want);
}

static void expect_size_error(const char *s)
{
    struct err e;
    err_clear(&e);
    uint64_t v = 12345;
    int r = units_parse_size(s, "--s3-part-size", &v, &e);
    if (!r)
        print_error("'%s' was accepted as %llu\n", s ? s : "(null)", (unsigned long long)v);
    assert_int_equal(r, ERR_USAGE);
    assert_int_equal(e.code, ERR_USAGE);
    assert_true(v == 12345); /* untouched */
    /* the message names the option */
    assert_non_null(strstr(e.msg, "--s3-part-size"));
}

static void expect_rate_error(const char *s)
{
    struct err e;
    err_clear(&e);
    uint64_t v = 12345;
    int r = units_parse_rate(s, "--bwlimit", &v, &e);
    if (!r)
        print_error("rate '%s' was accepted as %llu\n", s ? s : "(null)", (unsigned long long)v);
    assert_int_equal(r, ERR_USAGE);
    assert_non_null(strstr(e.msg, "--bwlimit"));
}

static void test_sizes(void **state)
{
    (void)state;
    expect_size("0", 0);
    expect_size("1", 1);
    expect_size("123", 123);
    expect_size("10B", 10);
    expect_size("512K", 512 * KIB);
    expect_size("512k", 512 * KIB);
    expect_size("10M", 10 * MIB);
    expect_size("10m", 10 * MIB);
    expect_size("10MiB", 10 * MIB);
    expect_size("10MB", 10 * MIB);
    expect_size("10Mi", 10 * MIB);
    expect_size("10mib", 10 * MIB);
    expect_size("1.5G", GIB + GIB / 2);
    expect_size("1.5GiB", GIB + GIB / 2);
    expect_size("0.5K", 512);
    expect_size("2T", 2 * TIB);
    expect_size("1P", PIB);
    expect_size("16M", 16 * MIB);
    expect_size("16383P", 16383 * PIB);
}

static void test_size_errors(void **state)
{
    (void)state;
    expect_size_error("");
    expect_size_error(NULL);
    expect_size_error("-1");
    expect_size_error("-1M");
    expect_size_error("10X");
    expect_size_error("abc");
    expect_size_error("M");
    expect_size_error("1e400");
    expect_size_error("nan");
    expect_size_error("inf");
    expect_size_error(" 10M");
    expect_size_error("10 M");
    expect_size_error("10M ");
    expect_size_error("10Mx");
    expect_size_error("10MiBB");
    expect_size_error("10Bi");
    expect_size_error("16384P"); /* 2^64: does not fit */
    expect_size_error("99999999999999999999999");
}

static void test_rates(void **state)
{
    (void)state;
    expect_rate("0", 0);
    expect_rate("off", 0);
    expect_rate("OFF", 0);
    expect_rate("10M", 10 * MIB);
    expect_rate("10M/s", 10 * MIB);
    expect_rate("10MiB/s", 10 * MIB);
    expect_rate("1.5G/s", GIB + GIB / 2);
    expect_rate("512K", 512 * KIB);
    expect_rate("100", 100);
    expect_rate("100/s", 100);

    expect_rate_error("");
    expect_rate_error("/s");
    expect_rate_error("fast");
    expect_rate_error("-1");
    expect_rate_error("10X/s");
    expect_rate_error("10M/h");
    expect_rate_error("1e400");
}

static void test_format_size(void **state)
{
    (void)state;
    char out[32];
    assert_ptr_equal(units_format_size(0, out, sizeof(out)), out);
    assert_string_equal(out, "0 B");
    assert_string_equal(units_format_size(1023, out, sizeof(out)), "1023 B");
    assert_string_equal(units_format_size(1024, out, sizeof(out)), "1.0 KiB");
    assert_string_equal(units_format_size(1536, out, sizeof(out)), "1.5 KiB");
    assert_string_equal(units_format_size(10 * MIB, out, sizeof(out)), "10.0 MiB");
    assert_string_equal(units_format_size(GIB + GIB / 2, out, sizeof(out)), "1.5 GiB");
    assert_string_equal(units_format_size(3 * TIB, out, sizeof(out)), "3.0 TiB");
    assert_string_equal(units_format_size(2 * PIB, out, sizeof(out)), "2.0 PiB");
    /* the largest value still fits the documented 16 bytes and stays sane */
    char small[16];
    units_format_size(UINT64_MAX, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_non_null(strstr(small, "PiB"));

    /* round trip: what we print parses back to about the same size */
    uint64_t v;
    struct err e;
    uint64_t samples[] = {1536, 10 * MIB, GIB + GIB / 2, 7 * TIB};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char num[32], *sp;
        units_format_size(samples[i], num, sizeof(num));
        sp = strchr(num, ' ');
        assert_non_null(sp);
        memmove(sp, sp + 1, strlen(sp + 1) + 1); /* "1.5 KiB" -> "1.5KiB" */
        assert_int_equal(units_parse_size(num, "x", &v, &e), 0);
        assert_true(v == samples[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_format_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
