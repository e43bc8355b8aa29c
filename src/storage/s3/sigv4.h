/*
 * sigv4.h - AWS Signature Version 4 for S3 requests (Authorization header).
 *
 * Our own signer rather than libcurl's CURLOPT_AWS_SIGV4, which signs the
 * path and query exactly as given instead of canonicalizing them. Here the
 * caller hands over the *raw* path and query parameters; the signer encodes
 * them once, with S3's rules, and returns both the canonical request and the
 * path+query to put in the URL, so what is sent is by construction what was
 * signed.
 *
 * S3 rules applied (checked against the AWS documentation examples and
 * against botocore's S3SigV4Auth in tests/unit/test_sigv4.c):
 *  - path: every byte percent-encoded (uppercase hex) except the unreserved
 *    A-Z a-z 0-9 - . _ ~ and '/'; no normalization: "//", "/./", "/../" and a
 *    trailing '/' are kept as they are (S3 keys may contain them);
 *  - query: names and values encoded the same way but '/' too; pairs sorted
 *    by encoded name, then encoded value; "name=value" joined by '&', a
 *    parameter without a value becomes "name=";
 *  - headers: names lowercased, values trimmed with inner runs of spaces and
 *    tabs collapsed to one space, sorted by name; repeated names are joined
 *    with ',' in the order given; host, x-amz-content-sha256 and x-amz-date
 *    are always signed.
 *
 * Thread-safety: every function here is reentrant and thread-safe.
 * Secrets: the secret key and the derived keys are wiped from our stack
 * after use and never appear in an error message.
 */
#ifndef ARCA_STORAGE_S3_SIGV4_H
#define ARCA_STORAGE_S3_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"
#include "core/error.h"

/* Payload hash values that are not a hex digest. */
#define S3_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A raw (not encoded) name/value pair; value may be "" but not NULL. */
struct s3_kv {
    const char *name;
    const char *value;
};

/* Everything a signature covers. All strings are borrowed for the call. */
struct s3_sign_input {
    const char *method;        /* "GET", "PUT", ...: uppercase letters only */
    const char *host;          /* exactly the Host header that will be sent,
                                  e.g. "bucket.s3.eu-west-1.amazonaws.com" or
                                  "127.0.0.1:4568" (no default port) */
    const char *path;          /* raw absolute path, starts with '/', e.g.
                                  "/bucket/dir/naïve file+1.txt" */
    const struct s3_kv *query; /* raw query parameters, any order; may repeat */
    size_t nquery;
    const struct s3_kv *headers; /* further headers to sign and send (content-md5,
                                    content-type, range, x-amz-meta-*,
                                    x-amz-copy-source (already URL-encoded),
                                    x-amz-security-token, ...); names are
                                    HTTP tokens, values printable ASCII. Must
                                    not hold host, x-amz-date,
                                    x-amz-content-sha256 or authorization */
    size_t nheaders;
    const char *payload_sha256; /* 64 lowercase hex digits, or S3_UNSIGNED_PAYLOAD;
                                   also the x-amz-content-sha256 header to send */
    const char *region;         /* "us-east-1", "auto", ... */
    const char *service;        /* "s3" */
    const char *access_key_id;
    const char *secret_access_key;
    time_t now; /* request time (seconds since the epoch, UTC) */
};

/*
 * Result of s3_sign(). Initialize with s3_sign_output_init() (or zero it);
 * s3_sign() may then be called again on the same output (its buffers are
 * reused); free with s3_sign_output_release().
 */
struct s3_sign_output {
    char amz_date[17];            /* "20130524T000000Z": send as x-amz-date */
    char signature[65];           /* lowercase hex */
    struct buf authorization;     /* full Authorization header value */
    struct buf canonical_request; /* for tests and debugging (no secrets) */
    struct buf string_to_sign;    /* likewise */
    struct buf url_path_query;    /* encoded path, then "?" and the query in
                                     canonical order when there is one, a
                                     parameter without value written as a
                                     bare "name" ("/b?uploads"): the part of
                                     the URL after the host */
};

void s3_sign_output_init(struct s3_sign_output *out);
void s3_sign_output_release(struct s3_sign_output *out);

/*
 * Sign a request. On success fills out (see above) and returns 0. The caller
 * sends: Host = in->host, x-amz-date = out->amz_date, x-amz-content-sha256 =
 * in->payload_sha256, Authorization = out->authorization.data, every header of
 * in->headers unchanged, to the URL scheme://host + out->url_path_query.
 * With libcurl set CURLOPT_PATH_AS_IS: otherwise curl squashes "/./" and
 * "/../" in keys and the request no longer matches its signature (and names
 * another object). Ownership: out's buffers belong to out.
 * Errors (e filled, no secret in the message):
 *  ERR_USAGE    a header value with control or non-ASCII bytes (user data
 *               such as metadata must be encoded by the caller first);
 *  ERR_AUTH     empty access key id or secret, or one that cannot be used;
 *  ERR_INTERNAL missing/invalid fields (bad method, path not starting with
 *               '/', header name not a token, reserved header given, bad
 *               payload hash, time out of range) - bugs of the caller;
 *  ERR_NOMEM    allocation failed or the request exceeds 1 MiB of text.
 */
int s3_sign(const struct s3_sign_input *in, struct s3_sign_output *out, struct err *e);

/*
 * Append the S3 URI encoding of s[0..len) to out: bytes other than
 * A-Z a-z 0-9 - . _ ~ become %XX (uppercase hex); '/' is kept unless
 * encode_slash. Returns 0 or ERR_NOMEM (out's maximum reached).
 */
int s3_uri_encode(struct buf *out, const char *s, size_t len, bool encode_slash);

/* Lowercase hex SHA-256 of data[0..len) into out (NUL-terminated).
 * Returns 0, or ERR_INTERNAL if OpenSSL fails (out is then ""). */
int s3_sha256_hex(const void *data, size_t len, char out[65]);

#endif
