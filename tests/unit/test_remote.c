/*
 * test_remote.c - what the user typed -> struct remote_spec
 * (src/storage/remote.h, docs/REMOTES.md).
 *
 * Named remotes come from a real config file written with mode 0600 and
 * loaded with config_load(), as the CLI does.
 */
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
#include "storage/remote.h"

struct fixture {
    char dir[64];
    char path[128];
    struct config cfg;
};

static const char config_text[] = "[minio]\n"
                                  "type = s3\n"
                                  "endpoint = http://127.0.0.1:9000\n"
                                  "\n"
                                  "[r2]\n"
                                  "type = s3\n"
                                  "bucket = backups\n"
                                  "\n"
                                  "[nas]\n"
                                  "type = local\n"
                                  "root = /mnt/nas\n"
                                  "\n"
                                  "[here]\n"
                                  "type = local\n"
                                  "\n"
                                  "[untyped]\n"
                                  "endpoint = http://127.0.0.1:9000\n"
                                  "\n"
                                  "[odd]\n"
                                  "type = ftp\n"
                                  "\n"
                                  "[badbucket]\n"
                                  "type = s3\n"
                                  "bucket = no\n"
                                  "\n"
                                  "[web1]\n"
                                  "type = sftp\n"
                                  "host = web1.example.net\n"
                                  "port = 2222\n"
                                  "user = backup\n"
                                  "root = /srv/backup\n"
                                  "\n"
                                  "[home]\n"
                                  "type = sftp\n"
                                  "host = ::1\n"
                                  "\n"
                                  "[office]\n"
                                  "type = smb\n"
                                  "host = files\n"
                                  "domain = CORP\n"
                                  "user = bob\n"
                                  "\n"
                                  "[finance]\n"
                                  "type = smb\n"
                                  "host = files\n"
                                  "share = Finance\n"
                                  "\n"
                                  "[nohost]\n"
                                  "type = sftp\n"
                                  "user = x\n"
                                  "\n"
                                  "[badport]\n"
                                  "type = sftp\n"
                                  "host = h\n"
                                  "port = 99999\n";

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/arca-remote-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/config", f->dir);
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) || write(fd, config_text, sizeof(config_text) - 1) < 0 ||
        close(fd))
        return -1;
    struct err e;
    if (config_load(&f->cfg, f->path, true, &e)) {
        print_error("%s\n", e.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    config_release(&f->cfg);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void expect_s3(const struct config *cfg, const char *spec, const char *name,
                      const char *bucket, const char *prefix)
{
    struct remote_spec rs;
    struct err e;
    err_clear(&e);
    int r = remote_parse(spec, cfg, &rs, &e);
    if (r)
        print_error("'%s': %s\n", spec, e.msg);
    assert_int_equal(r, 0);
    assert_int_equal(rs.kind, REMOTE_S3);
    if (name)
        assert_string_equal(rs.name, name);
    else
        assert_null(rs.name);
    assert_non_null(rs.bucket);
    assert_string_equal(rs.bucket, bucket);
    assert_non_null(rs.path);
    assert_string_equal(rs.path, prefix);
    remote_spec_release(&rs);
    assert_null(rs.bucket);
    assert_null(rs.path);
}

static void expect_local(const struct config *cfg, const char *spec, const char *name,
                         const char *path)
{
    struct remote_spec rs;
    struct err e;
    err_clear(&e);
    int r = remote_parse(spec, cfg, &rs, &e);
    if (r)
        print_error("'%s': %s\n", spec, e.msg);
    assert_int_equal(r, 0);
    assert_int_equal(rs.kind, REMOTE_LOCAL);
    if (name)
        assert_string_equal(rs.name, name);
    else
        assert_null(rs.name);
    assert_null(rs.bucket);
    assert_non_null(rs.path);
    assert_string_equal(rs.path, path);
    remote_spec_release(&rs);
}

/* Returns the message for further checks (static storage). */
static const char *expect_error(const struct config *cfg, const char *spec, int code)
{
    static struct err e;
    struct remote_spec rs;
    memset(&rs, 0x5a, sizeof(rs));
    err_clear(&e);
    int r = remote_parse(spec, cfg, &rs, &e);
    if (r != code)
        print_error("'%s': got %d (%s), want %d\n", spec, r, r ? e.msg : rs.path, code);
    assert_int_equal(r, code);
    assert_int_equal(e.code, code);
    assert_true(e.msg[0] != '\0');
    /* nothing is left allocated in the output on failure */
    assert_null(rs.name);
    assert_null(rs.bucket);
    assert_null(rs.path);
    return e.msg;
}

static void test_s3_urls(void **state)
{
    struct fixture *f = *state;
    expect_s3(NULL, "s3://bucket/pre/fix", NULL, "bucket", "pre/fix");
    expect_s3(NULL, "s3://bucket", NULL, "bucket", "");
    expect_s3(NULL, "s3://bucket/", NULL, "bucket", "");
    expect_s3(NULL, "s3://my.bucket-01/a/b/c/", NULL, "my.bucket-01", "a/b/c/");
    expect_s3(NULL, "S3://bucket/x", NULL, "bucket", "x");
    expect_s3(NULL, "s3://abc/x", NULL, "abc", "x"); /* 3 characters: the shortest */
    expect_s3(NULL, "s3://bucket/caf\xc3\xa9 d\xc3\xa9j\xc3\xa0/x y", NULL, "bucket",
              "caf\xc3\xa9 d\xc3\xa9j\xc3\xa0/x y");
    /* a URL wins over a config section of the same name */
    expect_s3(&f->cfg, "s3://minio/x", NULL, "minio", "x");
    /* 63 characters is the longest bucket */
    char spec[128] = "s3://";
    memset(spec + 5, 'b', 63);
    spec[68] = '\0';
    struct remote_spec rs;
    struct err e;
    assert_int_equal(remote_parse(spec, NULL, &rs, &e), 0);
    assert_int_equal(strlen(rs.bucket), 63);
    remote_spec_release(&rs);
    spec[68] = 'b';
    spec[69] = '\0';
    expect_error(NULL, spec, ERR_USAGE);
}

/* One sftp:// or smb:// spec; NULL fields must be absent. */
static void expect_net(const struct config *cfg, const char *spec, enum remote_kind kind,
                       const char *user, const char *domain, const char *host, int port,
                       const char *share, const char *path)
{
    struct remote_spec rs;
    struct err e;
    err_clear(&e);
    int r = remote_parse(spec, cfg, &rs, &e);
    if (r)
        print_error("'%s': %s\n", spec, e.msg);
    assert_int_equal(r, 0);
    assert_int_equal(rs.kind, kind);
#define SAME(field, want)                                                                          \
    do {                                                                                           \
        if (want)                                                                                  \
            assert_string_equal(rs.field, want);                                                   \
        else                                                                                       \
            assert_null(rs.field);                                                                 \
    } while (0)
    SAME(user, user);
    SAME(domain, domain);
    SAME(host, host);
    SAME(share, share);
    SAME(path, path);
#undef SAME
    assert_int_equal(rs.port, port);
    remote_spec_release(&rs);
}

static void test_sftp_smb(void **state)
{
    struct fixture *f = *state;
    expect_net(NULL, "sftp://bob@host/abs/dir", REMOTE_SFTP, "bob", NULL, "host", 0, NULL,
               "/abs/dir");
    expect_net(NULL, "sftp://bob@host:2222/abs", REMOTE_SFTP, "bob", NULL, "host", 2222, NULL,
               "/abs");
    expect_net(NULL, "sftp://host/~/rel/dir", REMOTE_SFTP, NULL, NULL, "host", 0, NULL, "rel/dir");
    expect_net(NULL, "sftp://host/~", REMOTE_SFTP, NULL, NULL, "host", 0, NULL, "");
    expect_net(NULL, "sftp://host", REMOTE_SFTP, NULL, NULL, "host", 0, NULL, "");
    expect_net(NULL, "sftp://u@[::1]:22/x", REMOTE_SFTP, "u", NULL, "::1", 22, NULL, "/x");
    expect_net(NULL, "smb://CORP;bob@files:4445/Share/a/b", REMOTE_SMB, "bob", "CORP", "files",
               4445, "Share", "a/b");
    expect_net(NULL, "smb://files/public", REMOTE_SMB, NULL, NULL, "files", 0, "public", "");
    /* named */
    expect_net(&f->cfg, "web1:www/html", REMOTE_SFTP, "backup", NULL, "web1.example.net", 2222,
               NULL, "/srv/backup/www/html");
    expect_net(&f->cfg, "web1:", REMOTE_SFTP, "backup", NULL, "web1.example.net", 2222, NULL,
               "/srv/backup");
    expect_net(&f->cfg, "home:docs", REMOTE_SFTP, NULL, NULL, "::1", 0, NULL, "docs");
    expect_net(&f->cfg, "office:Finance/2024", REMOTE_SMB, "bob", "CORP", "files", 0, "Finance",
               "2024");
    expect_net(&f->cfg, "finance:2024/q1", REMOTE_SMB, NULL, NULL, "files", 0, "Finance",
               "2024/q1");
    /* errors */
    expect_error(NULL, "sftp://", ERR_USAGE);
    expect_error(NULL, "sftp://u@/x", ERR_USAGE);
    expect_error(NULL, "sftp://h:0/x", ERR_USAGE);
    expect_error(NULL, "sftp://h:70000/x", ERR_USAGE);
    expect_error(NULL, "sftp://[::1/x", ERR_USAGE);
    expect_error(NULL, "smb://files", ERR_USAGE);
    expect_error(NULL, "smb://files/", ERR_USAGE);
    expect_error(&f->cfg, "office:", ERR_USAGE);
    const char *msg = expect_error(&f->cfg, "nohost:x", ERR_CONFIG);
    assert_non_null(strstr(msg, "host"));
    expect_error(&f->cfg, "badport:x", ERR_CONFIG);
    /* a password in the URL is refused without being echoed */
    const char *specs[] = {"sftp://bob:hunter2@host/x", "smb://CORP;bob:hunter2@files/s",
                           "sftp://bob:hun@ter2@host/x"};
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        msg = expect_error(NULL, specs[i], ERR_USAGE);
        assert_non_null(strstr(msg, "password"));
        assert_null(strstr(msg, "hunter2"));
        assert_null(strstr(msg, "ter2"));
    }
}

static void test_local_paths(void **state)
{
    struct fixture *f = *state;
    expect_local(NULL, "file:///tmp/x", NULL, "/tmp/x");
    expect_local(NULL, "/abs/path", NULL, "/abs/path");
    expect_local(NULL, "rel/path", NULL, "rel/path");
    expect_local(NULL, ".", NULL, ".");
    expect_local(&f->cfg, "/abs/path", NULL, "/abs/path");
    /* name:path without a section of that name is a local path */
    expect_local(&f->cfg, "notes:2024", NULL, "notes:2024");
    expect_local(NULL, "minio:photos", NULL, "minio:photos"); /* no config at all */
    expect_local(&f->cfg, "C:foo", NULL, "C:foo");
    expect_local(&f->cfg, "C:\\dir\\file", NULL, "C:\\dir\\file");
    /* a colon after a slash is part of a path */
    expect_local(&f->cfg, "dir/minio:x", NULL, "dir/minio:x");
    expect_local(&f->cfg, "./minio:x", NULL, "./minio:x");
    expect_local(&f->cfg, ":x", NULL, ":x");
}

static void test_named_remotes(void **state)
{
    struct fixture *f = *state;
    /* type s3 without bucket=: the path starts with the bucket */
    expect_s3(&f->cfg, "minio:photos/2024", "minio", "photos", "2024");
    expect_s3(&f->cfg, "minio:photos", "minio", "photos", "");
    expect_s3(&f->cfg, "minio:photos/", "minio", "photos", "");
    expect_s3(&f->cfg, "minio:/photos/a/b", "minio", "photos", "a/b");
    /* type s3 with bucket=: the path is only the prefix */
    expect_s3(&f->cfg, "r2:hosts/web1", "r2", "backups", "hosts/web1");
    expect_s3(&f->cfg, "r2:", "r2", "backups", "");
    expect_s3(&f->cfg, "r2:/x", "r2", "backups", "x");
    /* type local with root= */
    expect_local(&f->cfg, "nas:photos/2024", "nas", "/mnt/nas/photos/2024");
    /* type local without root: the path itself */
    expect_local(&f->cfg, "here:some/dir", "here", "some/dir");
}

static void test_named_remote_errors(void **state)
{
    struct fixture *f = *state;
    const char *msg = expect_error(&f->cfg, "untyped:x", ERR_CONFIG);
    assert_non_null(strstr(msg, "untyped"));
    assert_non_null(strstr(msg, "type"));
    msg = expect_error(&f->cfg, "odd:x", ERR_CONFIG);
    assert_non_null(strstr(msg, "ftp"));
    /* a named s3 remote without bucket= needs one in the path */
    expect_error(&f->cfg, "minio:", ERR_USAGE);
    expect_error(&f->cfg, "minio:ab/x", ERR_USAGE);
    /* bucket= itself is checked */
    expect_error(&f->cfg, "badbucket:x", ERR_USAGE);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error(NULL, "", ERR_USAGE);
    expect_error(NULL, "s3://", ERR_USAGE);
    expect_error(NULL, "s3:///x", ERR_USAGE);
    expect_error(NULL, "s3://ab/x", ERR_USAGE);
    const char *msg = expect_error(NULL, "s3://bad_bucket!/x", ERR_USAGE);
    assert_non_null(strstr(msg, "bad_bucket!"));
    expect_error(NULL, "s3://has space/x", ERR_USAGE);
    expect_error(NULL, "s3://tab\tbucket/x", ERR_USAGE);
    msg = expect_error(NULL, "gs://b/x", ERR_USAGE);
    assert_non_null(strstr(msg, "gs"));
    expect_error(NULL, "http://host/x", ERR_USAGE);
    expect_error(NULL, "://x", ERR_USAGE);
}

static void test_credentials_in_url_refused(void **state)
{
    (void)state;
    const char *specs[] = {
        "s3://AKIA:Zq9sEcReT@bucket/x",
        "s3://AKIA:wJalr/XUtnFEMI@bucket/x", /* a secret with '/' in it */
        "s3://AKIA@bucket/x",
        "s3://AKIA:Zq9sEcReT@bucket",
        "s3://AKIA:se@cr3t@bucket/x",        /* a secret with '@' in it */
        "s3://AKIA:wJal/rX@bucketwJal/rX/x", /* the secret again after the '@' */
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        const char *msg = expect_error(NULL, specs[i], ERR_USAGE);
        if (!strstr(msg, "credentials"))
            print_error("'%s': %s\n", specs[i], msg);
        assert_non_null(strstr(msg, "credentials"));
        assert_non_null(strstr(msg, "URL"));
        /* nothing of the key id or the secret is echoed */
        const char *bits[] = {"AKIA", "Zq9sEcReT", "wJal", "cr3t"};
        for (size_t k = 0; k < sizeof(bits) / sizeof(bits[0]); k++) {
            if (strstr(msg, bits[k]))
                print_error("'%s' echoed '%s': %s\n", specs[i], bits[k], msg);
            assert_null(strstr(msg, bits[k]));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_s3_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sftp_smb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_remotes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_remote_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_in_url_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
