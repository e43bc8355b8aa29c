/*
 * s3.h - the S3 storage driver (AWS S3, Cloudflare R2, MinIO, e3 and any
 * server with the S3 API).
 *
 * A storage is a bucket plus an optional key prefix. Requests are signed
 * with our own SigV4 signer (sigv4.h), listings are streamed page by page
 * through an expat parser (s3_xml.h), uploads go as one PUT below the part
 * size and as a multipart upload with parallel parts above it, downloads
 * stream and resume from the last byte after a broken connection.
 *
 * Thread-safety: a struct storage from s3_storage_open() may be used by
 * several threads; each request borrows a libcurl handle from a pool so
 * connections are kept alive and reused.
 */
#ifndef ARCA_STORAGE_S3_S3_H
#define ARCA_STORAGE_S3_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

struct storage;

enum s3_checksum {
    S3_CHECKSUM_SHA256 = 0, /* x-amz-checksum-sha256 (one hash serves signing too) */
    S3_CHECKSUM_MD5 = 1,    /* Content-MD5 (servers without flexible checksums) */
};

struct s3_options {
    const char *endpoint;          /* "https://host[:port]"; NULL: AWS for region */
    const char *region;            /* NULL: "us-east-1" */
    const char *access_key_id;     /* required */
    const char *secret_access_key; /* required; never logged */
    const char *session_token;     /* optional */
    int path_style;                /* 1 path-style, 0 virtual-host, -1 auto */
    const char *ca_cert;           /* PEM file to trust, NULL: system store */
    bool insecure_skip_verify;     /* for nothing but lab setups; documented as unsafe */
    uint64_t part_size;            /* 0: 16 MiB; grows to fit 10,000 parts */
    int upload_concurrency;        /* parts in flight per file; 0: 4 */
    enum s3_checksum checksum;
    int max_attempts;       /* per request; 0: 10 */
    double retry_deadline;  /* seconds to keep retrying one request; 0: 30 */
    double connect_timeout; /* seconds; 0: 10 */
    double low_speed_time;  /* abort a transfer stalled this long; 0: 60 */
    bool create_bucket;     /* check_root(create) may create a missing bucket */
    bool etag_not_md5;      /* never read ETags as MD5s (SSE-KMS/SSE-C buckets,
                               whose listings cannot tell) */
    uint64_t copy_cutoff;   /* server-side copies above this size use
                               UploadPartCopy in parts of this size;
                               0: 5 GiB (CopyObject's limit) */
};

/* Open bucket/prefix. display names it in messages ("s3://b/p"). Copies
 * every option. Nothing is sent until the first operation. */
int s3_storage_open(const struct s3_options *o, const char *bucket, const char *prefix,
                    const char *display, struct storage **out, struct err *e);

/* Retry policy, exposed for unit tests. */
enum s3_retry_decision { S3_RETRY_NO = 0, S3_RETRY_YES = 1 };
/* http_status 0 means no HTTP answer; curl_code is a CURLcode. */
enum s3_retry_decision s3_retry_classify(long http_status, const char *s3_code, int curl_code);
/* Delay before attempt `attempt` (1 = first retry), full jitter on an
 * exponential base of 100 ms capped at 5 s; rnd in [0,1). */
double s3_retry_delay(int attempt, double rnd);

/* Parse "1700000000.123456789" (rclone's x-amz-meta-mtime form) to ns;
 * false when malformed. Format the reverse into out (cap >= 32). */
bool s3_mtime_parse(const char *s, int64_t *ns);
void s3_mtime_format(int64_t ns, char *out, size_t cap);

#endif
