/* Unit tests for the SMB driver's parts that need no server: the URL
 * encoding libsmbclient is given, and the checks of smb_storage_open,
 * which must refuse bad input without loading libsmbclient. (The driver
 * itself is tested against a real smbd: tests/integration/test_smb.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "storage/smb/smb.h"

/* from smb_internal.h, which needs <libsmbclient.h> (not on this target's
 * include path) */
int smb_url_append(struct buf *b, const char *s, size_t n);

static char *encode(const char *s)
{
    struct buf b = BUF_INIT(0);
    assert_int_equal(smb_url_append(&b, s, strlen(s)), 0);
    assert_int_equal(buf_puts(&b, ""), 0);
    return buf_detach(&b);
}

static void test_url_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain/path-1.2_x~", "plain/path-1.2_x~"},
        {"per%cent", "per%25cent"},
        {"hash#tag", "hash%23tag"},
        {"what?x=1", "what%3Fx%3D1"},
        {"sp ace+plus", "sp%20ace%2Bplus"},
        {"user@host;dom:pw", "user%40host%3Bdom%3Apw"},
        {"\xc3\xa9t\xc3\xa9/\xe6\x97\xa5", "%C3%A9t%C3%A9/%E6%97%A5"},
        {"back\\slash", "back%5Cslash"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = encode(cases[i].in);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
    /* only n bytes are taken */
    struct buf b = BUF_INIT(0);
    assert_int_equal(smb_url_append(&b, "a b c", 3), 0);
    assert_int_equal(buf_puts(&b, ""), 0);
    assert_string_equal(b.data, "a%20b");
    buf_release(&b);
}

/* Is libsmbclient mapped into this process? */
static bool smbclient_loaded(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    bool found = false;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "libsmbclient"))
            found = true;
    fclose(f);
    return found;
}

static void expect_usage(const struct smb_opts *o, const char *msg_part)
{
    struct storage *st = (struct storage *)1;
    struct err e;
    err_clear(&e);
    assert_int_equal(smb_storage_open(o, "smb-test", &st, &e), ERR_USAGE);
    assert_null(st);
    if (!strstr(e.msg, msg_part))
        fail_msg("message '%s' lacks '%s'", e.msg, msg_part);
}

static void test_bad_input_without_loading(void **state)
{
    (void)state;
    struct smb_opts base = {.host = "127.0.0.1", .share = "data", .path = "a/b"};
    struct smb_opts o;

    o = base;
    o.host = "";
    expect_usage(&o, "is not a host name");
    o.host = "user@host";
    expect_usage(&o, "is not a host name");
    o.host = "::1";
    expect_usage(&o, "is not a host name");
    o.host = NULL;
    expect_usage(&o, "is not a host name");
    o = base;
    o.share = "";
    expect_usage(&o, "share name");
    o.share = "a/b";
    expect_usage(&o, "share name");
    o = base;
    o.port = 70000;
    expect_usage(&o, "not between 1 and 65535");
    o = base;
    o.path = "a/../b";
    expect_usage(&o, "'.' and '..'");
    o.path = "a//b";
    expect_usage(&o, "empty path segment");
    o.path = "a\\b";
    expect_usage(&o, "cannot contain '\\'");
    o = base;
    o.password = "s3cret-pass";
    o.host = "bad host";
    expect_usage(&o, "is not a host name");

    assert_false(smbclient_loaded());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_encoding),
        cmocka_unit_test(test_bad_input_without_loading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
