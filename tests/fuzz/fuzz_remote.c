/*
 * fuzz_remote.c - libFuzzer target for remote strings and the config file.
 *
 * Input: a config file's text, then a NUL byte, then a remote string. The
 * config is written to a private temporary file and loaded; the remote is
 * parsed against it. Checks the documented invariants: a parse either
 * fails with a message or yields a kind with the fields that kind needs,
 * and a refused URL holding credentials never echoes what precedes '@'.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "storage/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t cfg_len = nul ? (size_t)(nul - data) : 0;
    const uint8_t *spec_bytes = nul ? nul + 1 : data;
    size_t spec_len = size - (size_t)(spec_bytes - data);
    char *spec = malloc(spec_len + 1);
    if (!spec)
        return 0;
    memcpy(spec, spec_bytes, spec_len);
    spec[spec_len] = '\0';

    char path[] = "/tmp/fuzz-remote-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        free(spec);
        return 0;
    }
    if (write(fd, data, cfg_len) != (ssize_t)cfg_len)
        abort();
    close(fd);

    /* the refusal of a URL with credentials is one fixed text: anything it
     * holds beyond that text came from the input */
    static char reference[ERR_MSG_MAX];
    if (!reference[0]) {
        struct remote_spec rs0;
        struct err e0;
        err_clear(&e0);
        if (remote_parse("s3://k:s@bucket/x", NULL, &rs0, &e0) == 0)
            abort();
        memcpy(reference, e0.msg, sizeof(reference));
    }

    struct config cfg;
    struct err e;
    err_clear(&e);
    if (config_load(&cfg, path, true, &e) == 0) {
        struct remote_spec rs;
        err_clear(&e);
        int r = remote_parse(spec, &cfg, &rs, &e);
        if (r) {
            if (!e.msg[0] || r >= 0)
                abort();
            const char *at = strchr(spec, '@');
            if (!strncmp(spec, "s3://", 5) && at && at - spec > 5 && strstr(e.msg, "credentials")) {
                /* whatever sits between "s3://" and '@' must not be echoed */
                size_t n = (size_t)(at - spec) - 5;
                char secret[64];
                if (n >= 4 && n < sizeof(secret)) {
                    memcpy(secret, spec + 5, n);
                    secret[n] = '\0';
                    if (strstr(e.msg, secret) && !strstr(reference, secret))
                        abort();
                }
            }
        } else {
            if (!rs.path)
                abort();
            if (rs.kind == REMOTE_S3 && (!rs.bucket || strlen(rs.bucket) < 3))
                abort();
            remote_spec_release(&rs);
        }
    }
    config_release(&cfg);
    unlink(path);
    free(spec);
    return 0;
}
