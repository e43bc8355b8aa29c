/*
 * fuzz_s3_xml.c - libFuzzer target for the S3 XML parsers (s3_xml.c).
 *
 * Input: one control byte, then the body. The control byte picks whether the
 * listing is parsed as encoding-type=url and how the body is cut into
 * chunks. Each input is run through:
 *
 *  - the ListObjectsV2 push parser, fed whole and fed in chunks: both runs
 *    must agree on the return code and on every entry (a digest of them),
 *    since the chunking of a network body must never change the result;
 *  - s3_xml_parse_error and every one-shot parser.
 *
 * Besides the sanitizers, the target checks the documented invariants of the
 * entries (lengths, NUL termination, UTF-8 keys) and that the module's
 * counted memory goes back to where it was after every input.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "storage/s3/s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
    uint64_t h;
    uint64_t n;
};

static void mix(struct digest *d, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        d->h ^= s[i];
        d->h *= 1099511628211u; /* FNV-1a */
    }
}

static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], more, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            more = 1;
            min = 0x80;
            c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2;
            min = 0x800;
            c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        if (n - i <= more)
            return false;
        for (unsigned k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += more + 1;
    }
    return true;
}

static int entry_cb(void *ctx, const struct s3_list_entry *ent, struct err *e)
{
    struct digest *d = ctx;
    (void)e;
    if (ent->key_len > S3_XML_KEY_MAX || strlen(ent->key) != ent->key_len || ent->key_len == 0 ||
        !utf8_ok((const unsigned char *)ent->key, ent->key_len) ||
        strlen(ent->etag) >= S3_XML_ETAG_MAX ||
        strlen(ent->storage_class) >= S3_XML_STORAGE_CLASS_MAX)
        abort();
    mix(d, &ent->is_prefix, sizeof(ent->is_prefix));
    mix(d, ent->key, ent->key_len + 1);
    mix(d, &ent->size, sizeof(ent->size));
    mix(d, &ent->mtime_ns, sizeof(ent->mtime_ns));
    mix(d, ent->etag, strlen(ent->etag) + 1);
    mix(d, ent->storage_class, strlen(ent->storage_class) + 1);
    d->n++;
    return 0;
}

/* Parse the body cut into chunks of 1..chunk bytes (0: whole). */
static int run_list(const char *body, size_t len, bool encoded, size_t chunk, struct digest *d,
                    struct s3_list_result *res)
{
    struct err e;
    err_clear(&e);
    memset(res, 0, sizeof(*res));
    struct s3_list_parser *p = s3_list_parser_new(encoded, entry_cb, d);
    if (!p)
        abort();
    int r = 0;
    size_t off = 0;
    unsigned step = 0;
    while (r == 0 && off < len) {
        size_t n = chunk ? 1 + (step++ * 7919u) % chunk : len;
        if (n > len - off)
            n = len - off;
        r = s3_list_parser_feed(p, body + off, n, &e);
        off += n;
    }
    if (r == 0)
        r = s3_list_parser_finish(p, res, &e);
    if (r < 0 && (e.code != r || e.msg[0] == '\0'))
        abort(); /* every error carries its message */
    s3_list_parser_free(p);
    return r;
}

static void check_list(const char *body, size_t len, bool encoded, size_t chunk)
{
    struct digest a = {14695981039346656037u, 0}, b = a;
    struct s3_list_result ra, rb;
    int r1 = run_list(body, len, encoded, 0, &a, &ra);
    int r2 = run_list(body, len, encoded, chunk, &b, &rb);
    if (r1 != r2 || a.h != b.h || a.n != b.n)
        abort();
    if (r1 == 0) {
        if (ra.is_truncated != rb.is_truncated || ra.n_contents + ra.n_prefixes != a.n ||
            (ra.next_token == NULL) != (rb.next_token == NULL) ||
            (ra.next_token && strcmp(ra.next_token, rb.next_token) != 0))
            abort();
        if (ra.is_truncated && !ra.is_error && (!ra.next_token || !ra.next_token[0]))
            abort();
    }
    s3_list_result_clear(&ra);
    s3_list_result_clear(&rb);
}

static void check_oneshots(const char *body, size_t len)
{
    struct s3_xml_error er;
    struct err e;
    int r = s3_xml_parse_error(body, len, &er);
    if (r != 0 && r != S3_XML_ERROR_DOC && r >= 0)
        abort();
    if (strlen(er.code) >= sizeof(er.code) || strlen(er.message) >= sizeof(er.message))
        abort();

    struct s3_xml_initiate ini;
    err_clear(&e);
    r = s3_xml_parse_initiate(body, len, &ini, &er, &e);
    if (r == 0 && ini.upload_id[0] == '\0')
        abort();

    struct s3_xml_complete comp;
    r = s3_xml_parse_complete(body, len, &comp, &er, &e);
    if (r == 0 && comp.etag[0] == '\0')
        abort();

    struct s3_xml_copy cp;
    r = s3_xml_parse_copy(body, len, &cp, NULL, &e);
    if (r == 0 && cp.etag[0] == '\0')
        abort();

    char region[S3_XML_REGION_MAX];
    r = s3_xml_parse_location(body, len, region, &er, &e);
    if (r == 0 && region[0] == '\0')
        abort();

    int64_t ns;
    (void)s3_xml_parse_time(body, len < 64 ? len : 64, &ns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct s3_xml_mem_stats before, after;
    s3_xml_mem_stats(&before);

    unsigned ctl = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    bool encoded = ctl & 1;
    size_t chunk = ((ctl >> 1) & 0x7f) + 1; /* 1..128 */

    check_list(body, len, encoded, chunk);
    check_oneshots(body, len);

    s3_xml_mem_stats(&after);
    if (after.live_bytes != before.live_bytes)
        abort(); /* something the module allocated was not freed */
    return 0;
}
