/*
 * sigv4.c - AWS Signature Version 4 for S3 (see sigv4.h for the rules).
 *
 * The signature is computed in four steps, as AWS documents them:
 *
 *   canonical request = METHOD \n path \n query \n headers \n signed \n hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n date \n scope \n sha256(CR)
 *   signing key       = HMAC chain "AWS4"+secret -> date -> region ->
 *                       service -> "aws4_request"
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * The derived key is recomputed for every request: four HMACs of a few bytes
 * cost about a microsecond, far below one HTTP round trip, and not caching
 * means no long-lived copy of key material to protect.
 */
#include "storage/s3/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound of each text we build (keys are <= 1 KiB, metadata <= 2 KiB:
 * anything near this is a bug, not a request). */
#define SIGN_TEXT_MAX (1024 * 1024)
#define SECRET_MAX 4096

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[in[i] >> 4];
        out[2 * i + 1] = hex_lower[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int s3_uri_encode(struct buf *out, const char *s, size_t len, bool encode_slash)
{
    size_t need = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        need += (is_unreserved(c) || (c == '/' && !encode_slash)) ? 1 : 3;
    }
    int r = buf_reserve(out, need);
    if (r)
        return r;
    char *p = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c == '/' && !encode_slash)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex_upper[c >> 4];
            *p++ = hex_upper[c & 0x0f];
        }
    }
    out->len += need;
    out->data[out->len] = '\0';
    return 0;
}

int s3_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return ERR_INTERNAL;
    hex_encode(md, 32, out);
    return 0;
}

static int hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       unsigned char out[32])
{
    unsigned int outlen = 0;
    if (keylen > INT32_MAX)
        return ERR_INTERNAL;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) || outlen != 32)
        return ERR_INTERNAL;
    return 0;
}

void s3_sign_output_init(struct s3_sign_output *out)
{
    out->amz_date[0] = '\0';
    out->signature[0] = '\0';
    buf_init(&out->authorization, SIGN_TEXT_MAX);
    buf_init(&out->canonical_request, SIGN_TEXT_MAX);
    buf_init(&out->string_to_sign, SIGN_TEXT_MAX);
    buf_init(&out->url_path_query, SIGN_TEXT_MAX);
}

void s3_sign_output_release(struct s3_sign_output *out)
{
    if (!out)
        return;
    buf_release(&out->authorization);
    buf_release(&out->canonical_request);
    buf_release(&out->string_to_sign);
    buf_release(&out->url_path_query);
    out->amz_date[0] = '\0';
    out->signature[0] = '\0';
}

/* ---- validation ------------------------------------------------------ */

static bool is_token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_header_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_token_char((unsigned char)*s))
            return false;
    return true;
}

/* Printable ASCII, space and tab: what may appear in a header we sign. */
static bool is_header_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c != '\t' && (c < 0x20 || c > 0x7e))
            return false;
    }
    return true;
}

/* Credential scope parts: printable ASCII without space, '/', ',' or '='. */
static bool is_scope_part(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c > 0x7e || c == '/' || c == ',' || c == '=')
            return false;
    }
    return true;
}

static bool is_method(const char *s)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++)
        if (s[n] < 'A' || s[n] > 'Z')
            return false;
    return n > 0 && n <= 32;
}

static bool is_payload_hash(const char *s)
{
    if (!s)
        return false;
    if (strcmp(s, S3_UNSIGNED_PAYLOAD) == 0)
        return true;
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 64;
}

static bool name_equals_ci(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
            return false;
    return *a == *b;
}

static int check_input(const struct s3_sign_input *in, struct err *e)
{
    static const char *const reserved[] = {"host", "x-amz-date", "x-amz-content-sha256",
                                           "authorization"};

    if (!is_method(in->method))
        return err_set(e, ERR_INTERNAL, "s3 signer: method must be uppercase letters");
    if (!in->host || !*in->host)
        return err_set(e, ERR_INTERNAL, "s3 signer: no host given");
    for (const char *p = in->host; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p > 0x7e)
            return err_set(e, ERR_INTERNAL,
                           "s3 signer: host '%s' has a space, control or "
                           "non-ASCII byte",
                           in->host);
    if (!in->path || in->path[0] != '/')
        return err_set(e, ERR_INTERNAL, "s3 signer: path must start with '/'");
    if (in->nquery && !in->query)
        return err_set(e, ERR_INTERNAL, "s3 signer: query count without query array");
    for (size_t i = 0; i < in->nquery; i++)
        if (!in->query[i].name || !in->query[i].value)
            return err_set(e, ERR_INTERNAL,
                           "s3 signer: query parameter %zu has a NULL name "
                           "or value",
                           i);
    if (in->nheaders && !in->headers)
        return err_set(e, ERR_INTERNAL, "s3 signer: header count without header array");
    for (size_t i = 0; i < in->nheaders; i++) {
        const struct s3_kv *h = &in->headers[i];
        if (!is_header_name(h->name))
            return err_set(e, ERR_INTERNAL,
                           "s3 signer: header %zu has an empty name or one "
                           "that is not an HTTP token",
                           i);
        for (size_t j = 0; j < sizeof(reserved) / sizeof(reserved[0]); j++)
            if (name_equals_ci(h->name, reserved[j]))
                return err_set(e, ERR_INTERNAL,
                               "s3 signer: header '%s' is set by the "
                               "signer, do not pass it",
                               reserved[j]);
        if (!h->value)
            return err_set(e, ERR_INTERNAL, "s3 signer: header '%s' has a NULL value", h->name);
        if (!is_header_value(h->value))
            return err_set(e, ERR_USAGE,
                           "header '%s' has a control or non-ASCII byte in its "
                           "value; encode the value (e.g. RFC 2047 for metadata) before "
                           "sending it",
                           h->name);
    }
    if (!is_payload_hash(in->payload_sha256))
        return err_set(e, ERR_INTERNAL,
                       "s3 signer: payload hash must be 64 lowercase hex "
                       "digits or '" S3_UNSIGNED_PAYLOAD "'");
    if (!is_scope_part(in->region))
        return err_set(e, ERR_INTERNAL,
                       "s3 signer: region is empty or has a space, '/', "
                       "',' or '='");
    if (!is_scope_part(in->service))
        return err_set(e, ERR_INTERNAL,
                       "s3 signer: service is empty or has a space, '/', "
                       "',' or '='");
    if (!is_scope_part(in->access_key_id))
        return err_set(e, ERR_AUTH,
                       "access key id is empty or has a space, '/', ',' or '='; "
                       "check the credentials");
    if (!in->secret_access_key || !*in->secret_access_key ||
        strlen(in->secret_access_key) > SECRET_MAX)
        return err_set(e, ERR_AUTH,
                       "secret access key is empty or longer than %d bytes; "
                       "check the credentials",
                       SECRET_MAX);
    return 0;
}

/* ---- canonical query ------------------------------------------------- */

struct query_pair {
    const char *name; /* encoded, NUL-terminated, inside the pairs' buffer */
    const char *value;
};

static int query_pair_cmp(const void *pa, const void *pb)
{
    const struct query_pair *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->value, b->value);
}

/* Append the canonical query to cr and the URL form ('?' + query) to url. */
static int query_build(const struct s3_sign_input *in, struct buf *cr, struct buf *url)
{
    struct buf enc = BUF_INIT(SIGN_TEXT_MAX);
    struct query_pair *pairs = NULL;
    size_t *offs = NULL;
    int r = 0;

    if (in->nquery == 0)
        goto out;
    pairs = calloc(in->nquery, sizeof(*pairs));
    offs = calloc(in->nquery, 2 * sizeof(*offs));
    if (!pairs || !offs) {
        r = ERR_NOMEM;
        goto out;
    }
    /* Encode every name and value, NUL-separated, into one buffer; take
     * pointers only once it stops moving. */
    for (size_t i = 0; i < in->nquery; i++) {
        offs[2 * i] = enc.len;
        r = s3_uri_encode(&enc, in->query[i].name, strlen(in->query[i].name), true);
        if (!r)
            r = buf_append(&enc, "", 1);
        if (r)
            goto out;
        offs[2 * i + 1] = enc.len;
        r = s3_uri_encode(&enc, in->query[i].value, strlen(in->query[i].value), true);
        if (!r)
            r = buf_append(&enc, "", 1);
        if (r)
            goto out;
    }
    for (size_t i = 0; i < in->nquery; i++) {
        pairs[i].name = enc.data + offs[2 * i];
        pairs[i].value = enc.data + offs[2 * i + 1];
    }
    qsort(pairs, in->nquery, sizeof(*pairs), query_pair_cmp);

    r = buf_append(url, "?", 1);
    for (size_t i = 0; !r && i < in->nquery; i++) {
        const char *sep = i ? "&" : "";
        r = buf_printf(cr, "%s%s=%s", sep, pairs[i].name, pairs[i].value);
        if (!r)
            r = buf_printf(url, "%s%s%s%s", sep, pairs[i].name, *pairs[i].value ? "=" : "",
                           pairs[i].value);
    }

out:
    free(offs);
    free(pairs);
    buf_release(&enc);
    return r;
}

/* ---- canonical headers ----------------------------------------------- */

struct header_ref {
    const char *name;  /* as given (any case) */
    const char *value; /* raw */
    size_t order;      /* position given, keeps repeated names in order */
};

static int header_ref_cmp(const void *pa, const void *pb)
{
    const struct header_ref *a = pa, *b = pb;
    const unsigned char *x = (const unsigned char *)a->name;
    const unsigned char *y = (const unsigned char *)b->name;
    for (; *x && ascii_lower(*x) == ascii_lower(*y); x++, y++)
        ;
    int c = (int)ascii_lower(*x) - (int)ascii_lower(*y);
    if (c)
        return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int append_lower(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    int r = buf_reserve(b, n);
    if (r)
        return r;
    for (size_t i = 0; i < n; i++)
        b->data[b->len + i] = (char)ascii_lower((unsigned char)s[i]);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Trimall: no leading/trailing blanks, inner runs of SP/HT become one SP. */
static int append_trimmed(struct buf *b, const char *v)
{
    bool pending = false, any = false;
    int r = 0;
    for (; *v && !r; v++) {
        if (*v == ' ' || *v == '\t') {
            pending = any;
            continue;
        }
        if (pending)
            r = buf_append(b, " ", 1);
        if (!r)
            r = buf_append(b, v, 1);
        pending = false;
        any = true;
    }
    return r;
}

/* Append the canonical header lines to cr and the name list to signed_names. */
static int headers_build(const struct s3_sign_input *in, const char *amz_date, struct buf *cr,
                         struct buf *signed_names)
{
    size_t n = in->nheaders + 3;
    struct header_ref *refs = calloc(n, sizeof(*refs));
    int r = 0;

    if (!refs)
        return ERR_NOMEM;
    refs[0] = (struct header_ref){"host", in->host, 0};
    refs[1] = (struct header_ref){"x-amz-content-sha256", in->payload_sha256, 1};
    refs[2] = (struct header_ref){"x-amz-date", amz_date, 2};
    for (size_t i = 0; i < in->nheaders; i++)
        refs[i + 3] = (struct header_ref){in->headers[i].name, in->headers[i].value, i + 3};
    qsort(refs, n, sizeof(*refs), header_ref_cmp);

    for (size_t i = 0; i < n && !r; i++) {
        bool repeat = i > 0 && name_equals_ci(refs[i].name, refs[i - 1].name);
        if (repeat) {
            r = buf_append(cr, ",", 1);
        } else {
            if (i > 0)
                r = buf_append(cr, "\n", 1);
            if (!r && i > 0)
                r = buf_append(signed_names, ";", 1);
            if (!r)
                r = append_lower(cr, refs[i].name);
            if (!r)
                r = append_lower(signed_names, refs[i].name);
            if (!r)
                r = buf_append(cr, ":", 1);
        }
        if (!r)
            r = append_trimmed(cr, refs[i].value);
    }
    if (!r)
        r = buf_append(cr, "\n", 1);
    free(refs);
    return r;
}

/* ---- signing --------------------------------------------------------- */

static int signature_compute(const struct s3_sign_input *in, const char *date8,
                             const char *string_to_sign, char out[65])
{
    size_t slen = strlen(in->secret_access_key);
    unsigned char *ksecret = malloc(slen + 4);
    unsigned char k1[32], k2[32];
    int r = 0;

    if (!ksecret)
        return ERR_NOMEM;
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, in->secret_access_key, slen);
    r = hmac_sha256(ksecret, slen + 4, date8, 8, k1); /* kDate */
    if (!r)
        r = hmac_sha256(k1, 32, in->region, strlen(in->region), k2); /* kRegion */
    if (!r)
        r = hmac_sha256(k2, 32, in->service, strlen(in->service), k1); /* kService */
    if (!r)
        r = hmac_sha256(k1, 32, "aws4_request", 12, k2); /* kSigning */
    if (!r)
        r = hmac_sha256(k2, 32, string_to_sign, strlen(string_to_sign), k1);
    if (!r)
        hex_encode(k1, 32, out);
    OPENSSL_cleanse(ksecret, slen + 4);
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    free(ksecret);
    return r;
}

static void output_reset(struct s3_sign_output *out)
{
    struct buf *bufs[] = {&out->authorization, &out->canonical_request, &out->string_to_sign,
                          &out->url_path_query};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        buf_reset(bufs[i]);
        if (bufs[i]->max == 0)
            bufs[i]->max = SIGN_TEXT_MAX;
    }
    out->amz_date[0] = '\0';
    out->signature[0] = '\0';
}

int s3_sign(const struct s3_sign_input *in, struct s3_sign_output *out, struct err *e)
{
    struct buf signed_names = BUF_INIT(SIGN_TEXT_MAX);
    char date8[9];
    char cr_hash[65];
    struct tm tm;
    int r;

    output_reset(out);
    r = check_input(in, e);
    if (r)
        goto out;

    if (!gmtime_r(&in->now, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900 ||
        strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16) {
        r = err_set(e, ERR_INTERNAL, "s3 signer: request time %lld is out of range",
                    (long long)in->now);
        goto out;
    }
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';

    struct buf *cr = &out->canonical_request;
    r = buf_printf(cr, "%s\n", in->method);
    if (!r)
        r = s3_uri_encode(&out->url_path_query, in->path, strlen(in->path), false);
    if (!r)
        r = buf_append(cr, out->url_path_query.data, out->url_path_query.len);
    if (!r)
        r = buf_append(cr, "\n", 1);
    if (!r)
        r = query_build(in, cr, &out->url_path_query);
    if (!r)
        r = buf_append(cr, "\n", 1);
    if (!r)
        r = headers_build(in, out->amz_date, cr, &signed_names);
    if (!r)
        r = buf_printf(cr, "\n%s\n%s", signed_names.data, in->payload_sha256);
    if (r) {
        r = err_set(e, r, "s3 signer: request too large to sign (over %d bytes of text)",
                    SIGN_TEXT_MAX);
        goto out;
    }

    r = s3_sha256_hex(cr->data, cr->len, cr_hash);
    if (!r)
        r = buf_printf(&out->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                       out->amz_date, date8, in->region, in->service, cr_hash);
    if (!r)
        r = signature_compute(in, date8, out->string_to_sign.data, out->signature);
    if (!r)
        r = buf_printf(&out->authorization,
                       "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                       "SignedHeaders=%s, Signature=%s",
                       in->access_key_id, date8, in->region, in->service, signed_names.data,
                       out->signature);
    if (r)
        r = err_set(e, r, "s3 signer: cannot compute the signature (%s)", err_code_name(r));

out:
    buf_release(&signed_names);
    if (r)
        output_reset(out);
    return r;
}
