/*
 * s3_internal.h - shared by the S3 driver's files (not for callers).
 */
#ifndef ARCA_STORAGE_S3_S3_INTERNAL_H
#define ARCA_STORAGE_S3_S3_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "storage/s3/s3.h"
#include "storage/s3/sigv4.h"
#include "storage/storage_internal.h"

#define S3_MAX_PARTS 10000
#define S3_MIN_PART_SIZE (5u * 1024 * 1024)
#define S3_MAX_SINGLE_COPY (5ull * 1024 * 1024 * 1024)
#define S3_ERROR_BODY_MAX (64 * 1024)
#define S3_SMALL_BODY_MAX (1024 * 1024)
#define S3_ETAG_MAX 128

struct s3 {
    char *scheme; /* "http" or "https" */
    char *host;   /* endpoint host[:port] as sent (default port dropped) */
    char *bucket;
    char *prefix; /* "" or ending in '/' */
    char *region;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *ca_cert;
    char *display;
    bool path_style;
    bool insecure;
    bool create_bucket;
    bool etag_not_md5;
    uint64_t copy_cutoff;
    uint64_t part_size;
    int upload_concurrency;
    enum s3_checksum checksum;
    int max_attempts;
    double retry_deadline;
    long connect_timeout_ms;
    long low_speed_time;

    pthread_mutex_t pool_lock;
    void **pool; /* idle easy handles (CURL *), kept for connection reuse */
    size_t npool, pool_cap;
    /* idle multi handles of finished streaming reads: a multi handle holds
     * the connections its transfers used, so the next read reuses one
     * instead of connecting again (libcurl cannot share a connection cache
     * between threads) */
    void **mpool; /* CURLM * */
    size_t nmpool, mpool_cap;
    CURLSH *share; /* DNS and TLS session cache shared by all handles */
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* What one request sends. Keys are full object keys (prefix included). */
struct s3_req {
    const char *method;
    const char *key; /* NULL: bucket-level request */
    const struct s3_kv *query;
    size_t nquery;
    const struct s3_kv *headers; /* extra signed headers */
    size_t nheaders;
    const void *body; /* PUT/POST body in memory, or NULL */
    size_t body_len;
    /* or a PUT body read anew on every attempt: body_len bytes from
     * body_offset of body_src (body is NULL then) */
    const struct storage_range_source *body_src;
    uint64_t body_offset;
    const char *payload_sha256; /* hex of body; NULL: computed here */
    bool no_body_response;      /* HEAD */
    bool cleanup;               /* runs even after cancel_request(): aborting
                                   a multipart upload must still happen */
    /* 2xx response body: streamed to on_body when set, else collected into
     * resp->body (bounded by S3_SMALL_BODY_MAX). on_attempt is called before
     * every attempt so a streaming consumer can start over. */
    int (*on_body)(void *ctx, const char *data, size_t len);
    void (*on_attempt)(void *ctx);
    void *ctx;
};

struct s3_resp {
    long status;
    char etag[S3_ETAG_MAX];   /* quotes stripped */
    int64_t content_length;   /* -1 unknown */
    int64_t total_size;       /* from Content-Range "bytes a-b/TOTAL", else content_length */
    int64_t mtime_ns;         /* x-amz-meta-mtime, or STORAGE_MTIME_UNKNOWN */
    char checksum_sha256[64]; /* x-amz-checksum-sha256 (base64; "-N" when composite) */
    bool etag_not_md5;        /* SSE-KMS or SSE-C: the ETag is not the content's MD5 */
    char s3_code[64];         /* <Code> of an error document */
    char s3_message[512];
    struct buf body; /* 2xx body when no on_body (caller releases) */
    int attempts;
};

void s3_resp_init(struct s3_resp *r);
void s3_resp_release(struct s3_resp *r);

/* Perform a request with signing, retries and error mapping. Returns 0 on a
 * 2xx answer (resp filled), else a negative ERR_* with e naming `what`. A
 * 404 gives ERR_NOT_FOUND. A 200 whose body is an <Error> document counts as
 * an error (and is retried when its code is retryable). */
int s3_request(struct s3 *s3, const struct s3_req *req, struct s3_resp *resp, const char *what,
               struct err *e);

/* Handle pool. */
CURL *s3_handle_get(struct s3 *s3);
void s3_handle_put(struct s3 *s3, CURL *h);
/* Multi handle pool (no easy handle attached when put back). */
CURLM *s3_multi_get(struct s3 *s3);
void s3_multi_put(struct s3 *s3, CURLM *m);

/* Prepare a curl handle for a request: URL, signed headers (returned list
 * must be freed by the caller with curl_slist_free_all), TLS and timeouts.
 * Used by s3_request and by the streaming reader. */
int s3_prepare(struct s3 *s3, CURL *h, const struct s3_req *req, struct curl_slist **headers,
               struct err *e);

/* Map an HTTP status / S3 code / curl result to an error, naming what. */
int s3_error_from(struct s3 *s3, long status, const char *code, const char *message, int curl_code,
                  const char *curl_detail, int attempts, double elapsed, const char *what,
                  struct err *e);

/* Header parsing shared by s3_request and the reader. */
void s3_parse_header_line(const char *line, size_t len, struct s3_resp *resp);

/* Full key for a key relative to the storage root (malloc'ed). */
char *s3_full_key(const struct s3 *s3, const char *key);

double s3_now(void);
void s3_sleep(double seconds);

extern const struct storage_driver s3_driver;

#endif
