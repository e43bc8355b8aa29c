/*
 * test_lock.c - destination locks (backup/lock) over the local driver, and
 * the RFC 3339 times they carry (core/timefmt).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/lock.h"
#include "core/error.h"
#include "core/timefmt.h"
#include "storage/local/local.h"
#include "storage/storage.h"

struct fixture {
    char dir[64];
    struct storage *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct err e;
    snprintf(f->dir, sizeof(f->dir), "/tmp/arca-lock-XXXXXX");
    if (!mkdtemp(f->dir) || local_storage_open(f->dir, "dst", &f->st, &e))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    storage_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static bool exists(const struct fixture *f, const char *rel)
{
    char p[256];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", f->dir, rel);
    return stat(p, &sb) == 0;
}

static void put(const struct fixture *f, const char *key, const char *text)
{
    struct err e;
    assert_int_equal(storage_put_bytes(f->st, key, text, strlen(text), &e), 0);
}

static void test_acquire_release(void **state)
{
    struct fixture *f = *state;
    struct backup_lock *l = NULL;
    struct err e;
    assert_int_equal(backup_lock_acquire(f->st, "20261122T091500Z-00000001", "backup", &l, &e), 0);
    assert_true(exists(f, "locks/20261122T091500Z-00000001.lock"));
    char *data;
    size_t len;
    assert_int_equal(
        storage_get_bytes(f->st, "locks/20261122T091500Z-00000001.lock", 4096, &data, &len, &e), 0);
    assert_non_null(strstr(data, "\"run\":\"20261122T091500Z-00000001\""));
    assert_non_null(strstr(data, "\"operation\":\"backup\""));
    assert_non_null(strstr(data, "\"renewed\":\""));
    assert_int_equal(data[len - 1], '\n');
    free(data);
    backup_lock_release(l);
    assert_false(exists(f, "locks/20261122T091500Z-00000001.lock"));
    backup_lock_release(NULL);
}

/* A live lock that started earlier refuses us, and ours is removed. */
static void test_live_lock_refuses(void **state)
{
    struct fixture *f = *state;
    struct backup_lock *first = NULL, *second = NULL;
    struct err e;
    assert_int_equal(backup_lock_acquire(f->st, "20261122T091500Z-00000001", "prune", &first, &e),
                     0);
    int r = backup_lock_acquire(f->st, "20261122T091600Z-00000002", "backup", &second, &e);
    assert_int_equal(r, ERR_LOCKED);
    assert_null(second);
    assert_non_null(strstr(e.msg, "destination 'dst' is locked by run 20261122T091500Z-00000001 "
                                  "(prune on "));
    assert_non_null(strstr(e.msg, ") since 20"));
    assert_false(exists(f, "locks/20261122T091600Z-00000002.lock"));
    backup_lock_release(first);
}

/* Another writer's lock that started later does not stop us (it backs off). */
static void test_later_lock_yields(void **state)
{
    struct fixture *f = *state;
    char now[TIMEFMT_LEN + 1], text[512];
    time_format_ms(time_now_ms() + 60000, now);
    snprintf(text, sizeof(text),
             "{\"run\":\"20991231T235959Z-ffffffff\",\"operation\":\"backup\",\"host\":\"h\","
             "\"pid\":1,\"started\":\"%s\",\"renewed\":\"%s\"}\n",
             now, now);
    put(f, "locks/20991231T235959Z-ffffffff.lock", text);
    struct backup_lock *l = NULL;
    struct err e;
    assert_int_equal(backup_lock_acquire(f->st, "20261122T091500Z-00000001", "backup", &l, &e), 0);
    backup_lock_release(l);
    assert_true(exists(f, "locks/20991231T235959Z-ffffffff.lock"));
}

static void test_stale_lock_taken_over(void **state)
{
    struct fixture *f = *state;
    char old[TIMEFMT_LEN + 1], text[512];
    time_format_ms(time_now_ms() - (int64_t)(LOCK_STALE_SECONDS + 5) * 1000, old);
    snprintf(text, sizeof(text),
             "{\"run\":\"20200101T000000Z-0000000a\",\"operation\":\"backup\",\"host\":\"gone\","
             "\"pid\":7,\"started\":\"%s\",\"renewed\":\"%s\"}\n",
             old, old);
    put(f, "locks/20200101T000000Z-0000000a.lock", text);
    /* not a lock we can parse, and old by its mtime */
    put(f, "locks/garbage.lock", "not json");
    char p[256];
    snprintf(p, sizeof(p), "%s/locks/garbage.lock", f->dir);
    struct timespec ts[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    struct backup_lock *l = NULL;
    struct err e;
    assert_int_equal(backup_lock_acquire(f->st, "20261122T091500Z-00000001", "backup", &l, &e), 0);
    assert_false(exists(f, "locks/20200101T000000Z-0000000a.lock"));
    assert_false(exists(f, "locks/garbage.lock"));
    backup_lock_release(l);
}

/* An unparseable lock with a fresh mtime counts as live. */
static void test_fresh_garbage_is_live(void **state)
{
    struct fixture *f = *state;
    put(f, "locks/odd.lock", "{");
    struct backup_lock *l = NULL;
    struct err e;
    assert_int_equal(backup_lock_acquire(f->st, "20261122T091500Z-00000001", "backup", &l, &e),
                     ERR_LOCKED);
    assert_non_null(strstr(e.msg, "locked by run odd.lock"));
}

static void test_timefmt(void **state)
{
    (void)state;
    char s[TIMEFMT_LEN + 1];
    time_format_ms(0, s);
    assert_string_equal(s, "1970-01-01T00:00:00.000Z");
    time_format_ms(1795338900120, s);
    assert_string_equal(s, "2026-11-22T09:15:00.120Z");
    assert_int_equal(time_parse_ms(s), 1795338900120);
    assert_int_equal(time_parse_ms("2026-11-22T09:15:00Z"), 1795338900000);
    assert_int_equal(time_parse_ms("2026-11-22T09:15:00.1Z"), 1795338900100);
    assert_int_equal(time_parse_ms("2026-11-22T09:15:00.123456789Z"), 1795338900123);
    assert_int_equal(time_parse_ms("2026-02-30T09:15:00Z"), -1);
    assert_int_equal(time_parse_ms("2026-11-22 09:15:00Z"), -1);
    assert_int_equal(time_parse_ms("2026-11-22T09:15:00"), -1);
    assert_int_equal(time_parse_ms("2026-11-22T09:15:00.Z"), -1);
    assert_int_equal(time_parse_ms("2026-11-22T09:15:00+01:00"), -1);
    assert_int_equal(time_parse_ms(""), -1);
    assert_int_equal(time_parse_ms(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acquire_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_lock_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_later_lock_yields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_lock_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_garbage_is_live, setup, teardown),
        cmocka_unit_test(test_timefmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
