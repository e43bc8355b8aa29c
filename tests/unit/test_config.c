/*
 * test_config.c - the INI config file and secret files (src/core/config.h).
 *
 * Every test writes its files into its own mkdtemp directory, with the
 * mode set explicitly (fchmod, so the umask does not matter).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/arca-config-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/config", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    write_file(path, text, strlen(text), mode);
}

static void test_parse(void **state)
{
    struct fixture *f = *state;
    write_text(f->path,
               "# a comment\n"
               "; another comment\n"
               "\n"
               "   \t \n"
               "[minio]\n"
               "type = s3\n"
               "  endpoint=https://minio.example.net:9000   \n"
               "\taccess_key_id\t=\tAKIA123\t\n"
               "secret_access_key = abc=def==\n"
               "empty =\n"
               "  # indented comment\n"
               "[ nas ]\n"
               "type = local\r\n"
               "root = /mnt/nas with spaces\n"
               "[minio]\n"
               "region = auto\n",
               0600);
    struct config cfg;
    struct err e;
    err_clear(&e);
    int r = config_load(&cfg, f->path, true, &e);
    if (r)
        print_error("%s\n", e.msg);
    assert_int_equal(r, 0);
    assert_string_equal(cfg.path, f->path);
    assert_true(config_has_section(&cfg, "minio"));
    assert_true(config_has_section(&cfg, "nas"));
    assert_false(config_has_section(&cfg, "aws"));
    assert_false(config_has_section(&cfg, "MINIO"));
    assert_string_equal(config_get(&cfg, "minio", "type"), "s3");
    assert_string_equal(config_get(&cfg, "minio", "endpoint"), "https://minio.example.net:9000");
    assert_string_equal(config_get(&cfg, "minio", "access_key_id"), "AKIA123");
    assert_string_equal(config_get(&cfg, "minio", "secret_access_key"), "abc=def==");
    assert_string_equal(config_get(&cfg, "minio", "empty"), "");
    assert_string_equal(config_get(&cfg, "minio", "region"), "auto"); /* a reopened section */
    assert_string_equal(config_get(&cfg, "nas", "type"), "local");
    assert_string_equal(config_get(&cfg, "nas", "root"), "/mnt/nas with spaces");
    assert_null(config_get(&cfg, "nas", "endpoint"));
    assert_null(config_get(&cfg, "aws", "type"));
    assert_null(config_get(&cfg, "minio", "# a comment"));
    /* line numbers are kept */
    bool found = false;
    for (size_t i = 0; i < cfg.n; i++) {
        if (!strcmp(cfg.items[i].key, "root")) {
            assert_int_equal(cfg.items[i].line, 14);
            found = true;
        }
    }
    assert_true(found);
    config_release(&cfg);
    assert_null(cfg.items);
    assert_int_equal(cfg.n, 0);
}

static void test_last_value_wins(void **state)
{
    struct fixture *f = *state;
    write_text(f->path, "[a]\nk = first\nk = second\n[b]\nk = other\n[a]\nk = third\n", 0600);
    struct config cfg;
    struct err e;
    assert_int_equal(config_load(&cfg, f->path, true, &e), 0);
    assert_string_equal(config_get(&cfg, "a", "k"), "third");
    assert_string_equal(config_get(&cfg, "b", "k"), "other");
    config_release(&cfg);

    /* no trailing newline on the last line */
    write_text(f->path, "[a]\nk = v", 0600);
    assert_int_equal(config_load(&cfg, f->path, true, &e), 0);
    assert_string_equal(config_get(&cfg, "a", "k"), "v");
    config_release(&cfg);
}

static void test_unsafe_mode_refused(void **state)
{
    struct fixture *f = *state;
    const mode_t bad[] = {0644, 0640, 0604, 0660, 0602, 0620, 0666, 0610};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(f->path, "[a]\nsecret_access_key = s3cr3t\n", bad[i]);
        struct config cfg;
        struct err e;
        err_clear(&e);
        int r = config_load(&cfg, f->path, false, &e);
        assert_int_equal(r, ERR_CONFIG);
        assert_int_equal(e.code, ERR_CONFIG);
        assert_non_null(strstr(e.msg, "chmod 600"));
        assert_non_null(strstr(e.msg, f->path));
        assert_null(strstr(e.msg, "s3cr3t"));
        assert_int_equal(cfg.n, 0);
        config_release(&cfg);
    }
    /* 0600 and stricter are fine */
    const mode_t good[] = {0600, 0400, 0700};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        write_text(f->path, "[a]\nk = v\n", good[i]);
        struct config cfg;
        struct err e;
        assert_int_equal(config_load(&cfg, f->path, true, &e), 0);
        assert_string_equal(config_get(&cfg, "a", "k"), "v");
        config_release(&cfg);
    }
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nope/config", f->dir);
    struct config cfg;
    struct err e;
    err_clear(&e);
    /* the default path may be absent */
    assert_int_equal(config_load(&cfg, missing, false, &e), 0);
    assert_int_equal(cfg.n, 0);
    assert_false(config_has_section(&cfg, "a"));
    assert_null(config_get(&cfg, "a", "k"));
    config_release(&cfg);
    /* a file given with --config must exist */
    err_clear(&e);
    assert_int_equal(config_load(&cfg, missing, true, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, missing));
    config_release(&cfg);
    /* a directory is not a config file */
    err_clear(&e);
    assert_int_equal(config_load(&cfg, f->dir, false, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, f->dir));
    config_release(&cfg);
}

static void expect_malformed(struct fixture *f, const char *text, int line)
{
    write_text(f->path, text, 0600);
    struct config cfg;
    struct err e;
    err_clear(&e);
    int r = config_load(&cfg, f->path, true, &e);
    if (r != ERR_CONFIG)
        print_error("accepted: %s\n", text);
    assert_int_equal(r, ERR_CONFIG);
    char want[32];
    snprintf(want, sizeof(want), "line %d", line);
    if (!strstr(e.msg, want))
        print_error("message without '%s': %s\n", want, e.msg);
    assert_non_null(strstr(e.msg, want));
    assert_non_null(strstr(e.msg, f->path));
    config_release(&cfg);
}

static void test_malformed_lines(void **state)
{
    struct fixture *f = *state;
    expect_malformed(f, "[a\nk = v\n", 1);
    expect_malformed(f, "# c\n[a]\nk = v\njust words\n", 4);
    expect_malformed(f, "\n\nk = v\n[a]\n", 3); /* before any section */
    expect_malformed(f, "[a]\nk = v\n[]\n", 3); /* empty name */
    expect_malformed(f, "[a]\nk = v\n[  ]\n", 3);
    expect_malformed(f, "[a]\n[b] trailing\n", 2);
}

static void test_long_line(void **state)
{
    struct fixture *f = *state;
    /* a 4 KiB line is fine, a longer one is an error naming its line */
    size_t len = 4096;
    char *text = malloc(len + 64);
    assert_non_null(text);
    int n = snprintf(text, 64, "[a]\nk = ");
    memset(text + n, 'v', len - 4 - 0);
    size_t total = (size_t)n + len - 4;
    /* line 2 is "k = " + (len - 4) bytes = exactly 4096 bytes */
    text[total++] = '\n';
    write_file(f->path, text, total, 0600);
    struct config cfg;
    struct err e;
    err_clear(&e);
    int r = config_load(&cfg, f->path, true, &e);
    if (r)
        print_error("%s\n", e.msg);
    assert_int_equal(r, 0);
    assert_int_equal(strlen(config_get(&cfg, "a", "k")), len - 4);
    config_release(&cfg);

    memset(text + n, 'v', len + 10);
    total = (size_t)n + len + 10;
    text[total++] = '\n';
    write_file(f->path, text, total, 0600);
    err_clear(&e);
    assert_int_equal(config_load(&cfg, f->path, true, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "line 2"));
    config_release(&cfg);
    free(text);
}

static void test_secret_file(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof(path), "%s/secret", f->dir);
    char *s = NULL;
    struct err e;

    write_text(path, "wJalrXUtnFEMI/K7MDENG\nsecond line\n", 0600);
    assert_int_equal(config_read_secret_file(path, &s, &e), 0);
    assert_string_equal(s, "wJalrXUtnFEMI/K7MDENG");
    free(s);

    write_text(path, "crlf-secret\r\n", 0400);
    assert_int_equal(config_read_secret_file(path, &s, &e), 0);
    assert_string_equal(s, "crlf-secret");
    free(s);

    write_text(path, "no-newline", 0600);
    assert_int_equal(config_read_secret_file(path, &s, &e), 0);
    assert_string_equal(s, "no-newline");
    free(s);

    /* readable by others: refused, without echoing the secret */
    write_text(path, "wJalrXUtnFEMI/K7MDENG\n", 0644);
    s = (char *)1;
    err_clear(&e);
    assert_int_equal(config_read_secret_file(path, &s, &e), ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(e.msg, "chmod 600"));
    assert_null(strstr(e.msg, "wJalrXUtnFEMI"));

    write_text(path, "x\n", 0640);
    assert_int_equal(config_read_secret_file(path, &s, &e), ERR_CONFIG);

    /* empty file, empty first line */
    write_text(path, "", 0600);
    err_clear(&e);
    assert_int_equal(config_read_secret_file(path, &s, &e), ERR_CONFIG);
    assert_null(s);
    write_text(path, "\nsecret on line two\n", 0600);
    err_clear(&e);
    assert_int_equal(config_read_secret_file(path, &s, &e), ERR_CONFIG);
    assert_null(s);
    assert_null(strstr(e.msg, "secret on line two"));

    /* missing */
    char missing[180];
    snprintf(missing, sizeof(missing), "%s/missing", f->dir);
    err_clear(&e);
    assert_int_equal(config_read_secret_file(missing, &s, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, missing));
    assert_null(s);
}

static void test_default_path(void **state)
{
    (void)state;
    char out[512];
    char *saved[3];
    const char *names[3] = {"ARCA_CONFIG", "XDG_CONFIG_HOME", "HOME"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        saved[i] = v ? strdup(v) : NULL;
    }
    setenv("ARCA_CONFIG", "/etc/arca.conf", 1);
    setenv("XDG_CONFIG_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    config_default_path(out, sizeof(out));
    assert_string_equal(out, "/etc/arca.conf");
    unsetenv("ARCA_CONFIG");
    config_default_path(out, sizeof(out));
    assert_string_equal(out, "/xdg/arca/config");
    setenv("XDG_CONFIG_HOME", "", 1);
    config_default_path(out, sizeof(out));
    assert_string_equal(out, "/home/u/.config/arca/config");
    unsetenv("XDG_CONFIG_HOME");
    config_default_path(out, sizeof(out));
    assert_string_equal(out, "/home/u/.config/arca/config");
    /* a small buffer is cut, not overrun */
    char small[8];
    memset(small, 'x', sizeof(small));
    config_default_path(small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    for (int i = 0; i < 3; i++) {
        if (saved[i])
            setenv(names[i], saved[i], 1);
        else
            unsetenv(names[i]);
        free(saved[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_value_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_mode_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
        cmocka_unit_test(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
