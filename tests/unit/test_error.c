/*
 * test_error.c - the error record (src/core/error.h).
 *
 * err_set/err_wrap build "ctx: ctx: message" chains; a message that would
 * not fit is cut and never written past struct err (checked with a canary
 * behind the record). Exit statuses are checked against the table of
 * docs/CLI.md "Exit codes", class names against docs/EVENTS.md.
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

/* An err followed by guard bytes that must never change. */
struct guarded_err {
    struct err e;
    unsigned char canary[256];
};

static void guard_init(struct guarded_err *g)
{
    memset(g, 0x5a, sizeof(*g));
    err_clear(&g->e);
}

static void guard_check(const struct guarded_err *g)
{
    for (size_t i = 0; i < sizeof(g->canary); i++)
        assert_int_equal(g->canary[i], 0x5a);
    assert_true(memchr(g->e.msg, '\0', sizeof(g->e.msg)) != NULL);
}

static void test_clear_and_set(void **state)
{
    (void)state;
    struct err e;
    memset(&e, 0x7f, sizeof(e));
    err_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.msg, "");

    int r = err_set(&e, ERR_IO, "cannot open '%s': %s", "a.txt", "no space left on device");
    assert_int_equal(r, ERR_IO);
    assert_int_equal(e.code, ERR_IO);
    assert_string_equal(e.msg, "cannot open 'a.txt': no space left on device");

    /* a second set replaces code and message */
    r = err_set(&e, ERR_NET, "timed out");
    assert_int_equal(r, ERR_NET);
    assert_int_equal(e.code, ERR_NET);
    assert_string_equal(e.msg, "timed out");

    /* NULL record: only the code comes back */
    assert_int_equal(err_set(NULL, ERR_AUTH, "x %d", 1), ERR_AUTH);
    err_clear(NULL);
}

static void test_wrap_chains_context(void **state)
{
    (void)state;
    struct err e;
    err_clear(&e);
    err_set(&e, ERR_NET, "503 SlowDown after %d attempts", 5);
    int r = err_wrap(&e, "part %d", 3);
    assert_int_equal(r, ERR_NET);
    assert_string_equal(e.msg, "part 3: 503 SlowDown after 5 attempts");
    r = err_wrap(&e, "uploading '%s'", "a.txt");
    assert_int_equal(r, ERR_NET);
    assert_int_equal(e.code, ERR_NET);
    assert_string_equal(e.msg, "uploading 'a.txt': part 3: 503 SlowDown after 5 attempts");
}

static void test_wrap_edge_cases(void **state)
{
    (void)state;
    struct err e;

    /* nothing to wrap yet: the context alone, no dangling ": " */
    err_clear(&e);
    e.code = ERR_IO;
    assert_int_equal(err_wrap(&e, "reading '%s'", "x"), ERR_IO);
    assert_string_equal(e.msg, "reading 'x'");

    /* wrapping a cleared record is a bug: the code must not stay 0 */
    err_clear(&e);
    assert_int_equal(err_wrap(&e, "ctx"), ERR_INTERNAL);
    assert_int_equal(e.code, ERR_INTERNAL);

    /* NULL record */
    assert_int_equal(err_wrap(NULL, "ctx"), ERR_INTERNAL);

    /* a '%' inside the old message is data, not a format */
    err_clear(&e);
    err_set(&e, ERR_IO, "%s", "100%s done %n");
    err_wrap(&e, "ctx");
    assert_string_equal(e.msg, "ctx: 100%s done %n");
}

static void test_set_truncates_huge_message(void **state)
{
    (void)state;
    struct guarded_err g;
    guard_init(&g);
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'm', 4999);
    big[4999] = '\0';
    assert_int_equal(err_set(&g.e, ERR_PROTO, "%s", big), ERR_PROTO);
    guard_check(&g);
    assert_int_equal(strlen(g.e.msg), ERR_MSG_MAX - 1);
    assert_int_equal(strspn(g.e.msg, "m"), ERR_MSG_MAX - 1);
    free(big);
}

static void test_wrap_huge_context_never_overruns(void **state)
{
    (void)state;
    size_t sizes[] = {0,
                      1,
                      100,
                      ERR_MSG_MAX - 4,
                      ERR_MSG_MAX - 3,
                      ERR_MSG_MAX - 2,
                      ERR_MSG_MAX - 1,
                      ERR_MSG_MAX,
                      ERR_MSG_MAX + 1,
                      3 * ERR_MSG_MAX};
    size_t old_sizes[] = {0, 1, 10, ERR_MSG_MAX / 2, ERR_MSG_MAX - 1};
    char *ctx = malloc(3 * ERR_MSG_MAX + 1);
    char *old = malloc(ERR_MSG_MAX);
    assert_non_null(ctx);
    assert_non_null(old);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t j = 0; j < sizeof(old_sizes) / sizeof(old_sizes[0]); j++) {
            size_t cn = sizes[i], on = old_sizes[j];
            memset(ctx, 'c', cn);
            ctx[cn] = '\0';
            memset(old, 'o', on);
            old[on] = '\0';
            struct guarded_err g;
            guard_init(&g);
            err_set(&g.e, ERR_NOT_FOUND, "%s", old);
            assert_int_equal(err_wrap(&g.e, "%s", ctx), ERR_NOT_FOUND);
            guard_check(&g);
            size_t len = strlen(g.e.msg);
            assert_true(len <= ERR_MSG_MAX - 1);
            /* the context comes first and is kept as far as it fits */
            size_t ckept = cn < ERR_MSG_MAX - 1 ? cn : ERR_MSG_MAX - 1;
            assert_true(strspn(g.e.msg, "c") >= ckept);
            if (on && cn + 2 + on <= ERR_MSG_MAX - 1) {
                /* everything fits: exactly "ctx: old" */
                assert_int_equal(len, cn + 2 + on);
                assert_memory_equal(g.e.msg + cn, ": ", 2);
                assert_int_equal(strspn(g.e.msg + cn + 2, "o"), on);
            }
            if (!on)
                assert_int_equal(len, ckept); /* no ": " after the context */
        }
    }
    free(ctx);
    free(old);
}

static void test_code_names(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {ERR_OK, "ok"},           {ERR_USAGE, "usage"},
        {ERR_CONFIG, "config"},   {ERR_NOT_FOUND, "not_found"},
        {ERR_AUTH, "auth"},       {ERR_PERM, "permission"},
        {ERR_NET, "network"},     {ERR_IO, "io"},
        {ERR_PROTO, "protocol"},  {ERR_CANCELLED, "cancelled"},
        {ERR_NOMEM, "memory"},    {ERR_UNSORTED, "unsorted"},
        {ERR_REFUSED, "refused"}, {ERR_EXISTS, "exists"},
        {ERR_TLS, "tls"},         {ERR_INTERNAL, "internal"},
    };
    size_t n = sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(err_code_name(names[i].code), names[i].name);
        for (size_t k = 0; k < i; k++) /* distinct */
            assert_string_not_equal(err_code_name(names[i].code), err_code_name(names[k].code));
    }
    /* unknown codes are bugs */
    assert_string_equal(err_code_name(-999), "internal");
    assert_string_equal(err_code_name(42), "internal");
}

static void test_exit_status(void **state)
{
    (void)state;
    /* docs/CLI.md "Exit codes" */
    assert_int_equal(err_exit_status(ERR_OK), 0);
    assert_int_equal(err_exit_status(ERR_USAGE), 2);
    assert_int_equal(err_exit_status(ERR_USAGE), EXIT_USAGE);
    assert_int_equal(err_exit_status(ERR_CONFIG), 4);
    assert_int_equal(err_exit_status(ERR_NOT_FOUND), 5);
    assert_int_equal(err_exit_status(ERR_AUTH), 6);
    assert_int_equal(err_exit_status(ERR_PERM), 7);
    assert_int_equal(err_exit_status(ERR_NET), 8);
    assert_int_equal(err_exit_status(ERR_TLS), 8);
    assert_int_equal(err_exit_status(ERR_IO), 9);
    assert_int_equal(err_exit_status(ERR_PROTO), 10);
    assert_int_equal(err_exit_status(ERR_REFUSED), 11);
    assert_int_equal(err_exit_status(ERR_UNSORTED), 11);
    assert_int_equal(err_exit_status(ERR_INTERNAL), 12);
    assert_int_equal(err_exit_status(ERR_NOMEM), 12);
    assert_int_equal(err_exit_status(ERR_CANCELLED), 130);
    assert_int_equal(err_exit_status(-999), 12);

    /* every error is a failure status that no non-error outcome uses */
    for (int c = ERR_INTERNAL; c <= ERR_USAGE; c++) {
        int s = err_exit_status(c);
        assert_true(s >= 2 && s <= 255);
        assert_int_not_equal(s, EXIT_OK);
        assert_int_not_equal(s, EXIT_DIFFERENCES);
        assert_int_not_equal(s, EXIT_PARTIAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clear_and_set),
        cmocka_unit_test(test_wrap_chains_context),
        cmocka_unit_test(test_wrap_edge_cases),
        cmocka_unit_test(test_set_truncates_huge_message),
        cmocka_unit_test(test_wrap_huge_context_never_overruns),
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_exit_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
