/*
 * s3_http.c - one S3 request: sign, send, retry, map errors.
 *
 * Retries follow the AWS guidance: 500/502/503/504, SlowDown,
 * RequestTimeout, InternalError and connection failures are retried with
 * exponential backoff and full jitter, bounded both by a number of
 * attempts and by a deadline (30 s by default), so an unreachable endpoint
 * fails in bounded time and says after how many attempts. Other 4xx answers
 * are final at once. Each attempt is signed anew (fresh x-amz-date).
 */
#include "storage/s3/s3_internal.h"
#include "storage/s3/s3_xml.h"
#include "core/cancel.h"
#include "core/log.h"
#include "io/filter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

double s3_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void s3_sleep(double seconds)
{
    /* sleep in slices so cancellation is noticed */
    while (seconds > 0 && !cancel_requested()) {
        double step = seconds < 0.1 ? seconds : 0.1;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL);
        seconds -= step;
    }
}

void s3_resp_init(struct s3_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->total_size = -1;
    r->mtime_ns = STORAGE_MTIME_UNKNOWN;
    buf_init(&r->body, S3_SMALL_BODY_MAX);
}

void s3_resp_release(struct s3_resp *r)
{
    buf_release(&r->body);
}

static void resp_reset_attempt(struct s3_resp *r)
{
    int attempts = r->attempts;
    struct buf body = r->body;
    buf_reset(&body);
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->total_size = -1;
    r->mtime_ns = STORAGE_MTIME_UNKNOWN;
    r->body = body;
    r->attempts = attempts;
}

char *s3_full_key(const struct s3 *s3, const char *key)
{
    size_t a = strlen(s3->prefix), b = strlen(key);
    char *k = malloc(a + b + 1);
    if (k) {
        memcpy(k, s3->prefix, a);
        memcpy(k + a, key, b + 1);
    }
    return k;
}

/* mtime metadata: "[-]<seconds>[.<fraction>]" (rclone writes the same
 * key); the sign applies to the whole value, both ways. */
bool s3_mtime_parse(const char *s, int64_t *ns)
{
    if (!s)
        return false;
    while (*s == ' ')
        s++;
    bool neg = *s == '-';
    if (neg)
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    const int64_t max_sec = INT64_MAX / 1000000000;
    int64_t sec = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (sec > (max_sec - (*s - '0')) / 10)
            return false;
        sec = sec * 10 + (*s - '0');
    }
    int64_t frac = 0;
    int digits = 0;
    if (*s == '.') {
        s++;
        for (; isdigit((unsigned char)*s); s++) {
            if (digits < 9) {
                frac = frac * 10 + (*s - '0');
                digits++;
            }
        }
    }
    while (*s == ' ' || *s == '\r' || *s == '\n')
        s++;
    if (*s)
        return false;
    for (; digits < 9; digits++)
        frac *= 10;
    if (sec * 1000000000 > INT64_MAX - frac)
        return false;
    int64_t v = sec * 1000000000 + frac;
    *ns = neg ? -v : v;
    return true;
}

void s3_mtime_format(int64_t ns, char *out, size_t cap)
{
    uint64_t mag = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    snprintf(out, cap, "%s%" PRIu64 ".%09" PRIu64, ns < 0 ? "-" : "", mag / 1000000000u,
             mag % 1000000000u);
}

enum s3_retry_decision s3_retry_classify(long status, const char *code, int curl_code)
{
    if (status == 0) {
        switch (curl_code) {
        case CURLE_OK:
            return S3_RETRY_NO;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_ABORTED_BY_CALLBACK:
        case CURLE_WRITE_ERROR:
        case CURLE_OUT_OF_MEMORY:
            return S3_RETRY_NO;
        default:
            return S3_RETRY_YES; /* refused, reset, timeout, DNS hiccup, ... */
        }
    }
    if (code && (!strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout") ||
                 !strcmp(code, "InternalError") || !strcmp(code, "ServiceUnavailable") ||
                 !strcmp(code, "RequestTimeTooSkewed")))
        return S3_RETRY_YES;
    if (status == 500 || status == 502 || status == 503 || status == 504 || status == 429)
        return S3_RETRY_YES;
    if (status >= 200 && status < 300 && code && *code) /* 200 with an <Error> body */
        return S3_RETRY_YES;
    return S3_RETRY_NO;
}

double s3_retry_delay(int attempt, double rnd)
{
    double cap = 5.0, base = 0.1;
    int doublings = attempt < 1 ? 0 : attempt - 1; /* first retry: up to base */
    double d = base * ldexp(1.0, doublings < 20 ? doublings : 20);
    if (d > cap)
        d = cap;
    return d * rnd;
}

static double jitter(void)
{
    static _Thread_local unsigned int seed;
    if (!seed)
        seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)&seed;
    return (double)rand_r(&seed) / ((double)RAND_MAX + 1.0);
}

/* handle pool */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)h;
    (void)access;
    struct s3 *s3 = ctx;
    pthread_mutex_lock(&s3->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    (void)h;
    struct s3 *s3 = ctx;
    pthread_mutex_unlock(&s3->share_locks[data]);
}

int s3_share_init(struct s3 *s3);
int s3_share_init(struct s3 *s3)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s3->share_locks[i], NULL);
    pthread_mutex_init(&s3->pool_lock, NULL);
    s3->share = curl_share_init();
    if (!s3->share)
        return ERR_NOMEM;
    curl_share_setopt(s3->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(s3->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(s3->share, CURLSHOPT_USERDATA, s3);
    curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return 0;
}

void s3_share_free(struct s3 *s3);
void s3_share_free(struct s3 *s3)
{
    for (size_t i = 0; i < s3->npool; i++)
        curl_easy_cleanup(s3->pool[i]);
    free(s3->pool);
    s3->pool = NULL;
    s3->npool = 0;
    for (size_t i = 0; i < s3->nmpool; i++)
        curl_multi_cleanup(s3->mpool[i]);
    free(s3->mpool);
    s3->mpool = NULL;
    s3->nmpool = 0;
    if (s3->share)
        curl_share_cleanup(s3->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s3->share_locks[i]);
    pthread_mutex_destroy(&s3->pool_lock);
}

/* An idle handle from a pool (NULL when empty). */
static void *pool_pop(struct s3 *s3, void **pool, size_t *n)
{
    void *h = NULL;
    pthread_mutex_lock(&s3->pool_lock);
    if (*n)
        h = pool[--*n];
    pthread_mutex_unlock(&s3->pool_lock);
    return h;
}

/* Keep h in a pool; false (h not kept) when out of memory. */
static bool pool_push(struct s3 *s3, void ***pool, size_t *n, size_t *cap, void *h)
{
    pthread_mutex_lock(&s3->pool_lock);
    bool ok = true;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void **p = realloc(*pool, nc * sizeof(*p));
        if (p) {
            *pool = p;
            *cap = nc;
        }
        ok = p != NULL;
    }
    if (ok)
        (*pool)[(*n)++] = h;
    pthread_mutex_unlock(&s3->pool_lock);
    return ok;
}

CURLM *s3_multi_get(struct s3 *s3)
{
    CURLM *m = pool_pop(s3, s3->mpool, &s3->nmpool);
    return m ? m : curl_multi_init();
}

void s3_multi_put(struct s3 *s3, CURLM *m)
{
    if (m && !pool_push(s3, &s3->mpool, &s3->nmpool, &s3->mpool_cap, m))
        curl_multi_cleanup(m);
}

CURL *s3_handle_get(struct s3 *s3)
{
    CURL *h = pool_pop(s3, s3->pool, &s3->npool);
    return h ? h : curl_easy_init();
}

void s3_handle_put(struct s3 *s3, CURL *h)
{
    if (!h)
        return;
    curl_easy_reset(h); /* keeps live connections and caches */
    if (!pool_push(s3, &s3->pool, &s3->npool, &s3->pool_cap, h))
        curl_easy_cleanup(h);
}

/* request preparation */

static int slist_add(struct curl_slist **l, const char *name, const char *value)
{
    char line[8192];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line))
        return ERR_NOMEM;
    struct curl_slist *nl = curl_slist_append(*l, line);
    if (!nl)
        return ERR_NOMEM;
    *l = nl;
    return 0;
}

int s3_prepare(struct s3 *s3, CURL *h, const struct s3_req *req, struct curl_slist **headers,
               struct err *e)
{
    int r = 0;
    struct buf path = BUF_INIT(64 * 1024);
    struct buf host = BUF_INIT(1024);
    struct buf url = BUF_INIT(80 * 1024);
    struct s3_sign_output so;
    s3_sign_output_init(&so);
    struct s3_kv hdrs[24];
    size_t nh = 0;
    *headers = NULL;

    if (s3->path_style) {
        r = buf_puts(&host, s3->host);
        r = r ? r : buf_printf(&path, "/%s", s3->bucket);
        if (!r && req->key)
            r = buf_printf(&path, "/%s", req->key);
    } else {
        r = buf_printf(&host, "%s.%s", s3->bucket, s3->host);
        r = r ? r : buf_printf(&path, "/%s", req->key ? req->key : "");
    }
    if (r) {
        r = err_set(e, ERR_USAGE, "key too long for '%s'", s3->display);
        goto out;
    }
    if (req->nheaders > 20) {
        r = err_set(e, ERR_INTERNAL, "too many headers");
        goto out;
    }
    for (size_t i = 0; i < req->nheaders; i++)
        hdrs[nh++] = req->headers[i];
    if (s3->session_token)
        hdrs[nh++] = (struct s3_kv){"x-amz-security-token", s3->session_token};

    char payload[65];
    const char *payload_hash = req->payload_sha256;
    if (!payload_hash) {
        s3_sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, payload);
        payload_hash = payload;
    }
    struct s3_sign_input in = {
        .method = req->method,
        .host = host.data,
        .path = path.data,
        .query = req->query,
        .nquery = req->nquery,
        .headers = hdrs,
        .nheaders = nh,
        .payload_sha256 = payload_hash,
        .region = s3->region,
        .service = "s3",
        .access_key_id = s3->access_key_id,
        .secret_access_key = s3->secret_access_key,
        .now = time(NULL),
    };
    r = s3_sign(&in, &so, e);
    if (r)
        goto out;
    r = buf_printf(&url, "%s://%s%s", s3->scheme, host.data, so.url_path_query.data);
    if (r) {
        r = err_set(e, ERR_USAGE, "request URL too long for '%s'", s3->display);
        goto out;
    }
    for (size_t i = 0; i < nh && !r; i++)
        r = slist_add(headers, hdrs[i].name, hdrs[i].value);
    r = r ? r : slist_add(headers, "x-amz-date", so.amz_date);
    r = r ? r : slist_add(headers, "x-amz-content-sha256", payload_hash);
    r = r ? r : slist_add(headers, "Authorization", so.authorization.data);
    /* no "Expect: 100-continue" round trip; no form content type on POST */
    if (!r) {
        struct curl_slist *nl = curl_slist_append(*headers, "Expect:");
        r = nl ? 0 : ERR_NOMEM;
        if (nl)
            *headers = nl;
    }
    if (!r && !strcmp(req->method, "POST")) {
        struct curl_slist *nl = curl_slist_append(*headers, "Content-Type: application/xml");
        r = nl ? 0 : ERR_NOMEM;
        if (nl)
            *headers = nl;
    }
    if (r) {
        r = err_set(e, ERR_NOMEM, "out of memory preparing a request to '%s'", s3->display);
        goto out;
    }

    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    curl_easy_setopt(h, CURLOPT_SHARE, s3->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* send the path exactly as signed */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s3->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s3->low_speed_time);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s3->ca_cert)
        curl_easy_setopt(h, CURLOPT_CAINFO, s3->ca_cert);
    if (s3->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!strcmp(req->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(req->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(req->method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(req->body || req->body_src ? req->body_len : 0));
    } else if (!strcmp(req->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
out:
    if (r && *headers) {
        curl_slist_free_all(*headers);
        *headers = NULL;
    }
    s3_sign_output_release(&so);
    buf_release(&path);
    buf_release(&host);
    buf_release(&url);
    return r;
}

/* response handling */

void s3_parse_header_line(const char *line, size_t len, struct s3_resp *resp)
{
    char tmp[1024];
    if (len >= sizeof(tmp))
        return;
    memcpy(tmp, line, len);
    tmp[len] = '\0';
    while (len && (tmp[len - 1] == '\r' || tmp[len - 1] == '\n'))
        tmp[--len] = '\0';
    if (!strncmp(tmp, "HTTP/", 5)) { /* a new response (after redirects/100) */
        int attempts = resp->attempts;
        resp_reset_attempt(resp);
        resp->attempts = attempts;
        const char *sp = strchr(tmp, ' ');
        if (sp)
            resp->status = strtol(sp + 1, NULL, 10);
        return;
    }
    char *colon = strchr(tmp, ':');
    if (!colon)
        return;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!strcasecmp(tmp, "etag")) {
        if (*v == '"')
            v++;
        size_t n = strlen(v);
        if (n && v[n - 1] == '"')
            v[--n] = '\0';
        snprintf(resp->etag, sizeof(resp->etag), "%s", v);
    } else if (!strcasecmp(tmp, "content-length")) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!errno && end != v && n >= 0) {
            resp->content_length = n;
            if (resp->total_size < 0)
                resp->total_size = n;
        }
    } else if (!strcasecmp(tmp, "content-range")) {
        const char *slash = strrchr(v, '/');
        if (slash && slash[1] != '*')
            resp->total_size = strtoll(slash + 1, NULL, 10);
    } else if ((!strcasecmp(tmp, "x-amz-server-side-encryption") &&
                !strncasecmp(v, "aws:kms", 7)) ||
               !strcasecmp(tmp, "x-amz-server-side-encryption-customer-algorithm")) {
        resp->etag_not_md5 = true;
    } else if (!strcasecmp(tmp, "x-amz-checksum-sha256")) {
        snprintf(resp->checksum_sha256, sizeof(resp->checksum_sha256), "%s", v);
    } else if (!strcasecmp(tmp, "x-amz-meta-mtime")) {
        int64_t ns;
        if (s3_mtime_parse(v, &ns))
            resp->mtime_ns = ns;
    }
}

struct xfer {
    const struct s3_req *req;
    struct s3_resp *resp;
    size_t upload_pos;
    struct buf errbody;
    int body_error;                /* consumer asked to stop */
    struct storage_reader *src_rd; /* body_src's reader of this attempt */
    struct err src_err;            /* why reading body_src failed */
};

static size_t header_cb(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    s3_parse_header_line(data, size * n, x->resp);
    return size * n;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    long st = x->resp->status;
    if (st < 200 || st >= 300) {
        buf_append(&x->errbody, data, len); /* bounded; overflow just truncates */
        return len;
    }
    if (x->req->on_body) {
        int r = x->req->on_body(x->req->ctx, data, len);
        if (r) {
            x->body_error = r;
            return 0;
        }
        return len;
    }
    /* 200 with an <Error> body is possible: keep the start of every body */
    if (buf_append(&x->resp->body, data, len)) {
        x->body_error = ERR_PROTO;
        return 0;
    }
    return len;
}

static size_t read_cb(char *dst, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t room = size * n;
    if (x->src_rd) {
        size_t left = x->req->body_len - x->upload_pos, got = 0;
        if (left < room)
            room = left;
        if (!room)
            return 0;
        if (storage_read(x->src_rd, dst, room, &got, &x->src_err) || !got) {
            if (!x->src_err.code)
                err_set(&x->src_err, ERR_IO, "the source ended %zu bytes early", left);
            return CURL_READFUNC_ABORT;
        }
        x->upload_pos += got;
        return got;
    }
    size_t left = x->req->body_len - x->upload_pos;
    if (left < room)
        room = left;
    memcpy(dst, (const char *)x->req->body + x->upload_pos, room);
    x->upload_pos += room;
    return room;
}

static int xferinfo_cb(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const struct xfer *x = ctx;
    if (x->req->cleanup)
        return 0;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return cancel_requested() ? 1 : 0;
}

static const char *host_of(const struct s3 *s3, char *out, size_t cap)
{
    snprintf(out, cap, "%s://%s", s3->scheme, s3->host);
    return out;
}

int s3_error_from(struct s3 *s3, long status, const char *code, const char *message, int curl_code,
                  const char *curl_detail, int attempts, double elapsed, const char *what,
                  struct err *e)
{
    char ep[600];
    host_of(s3, ep, sizeof(ep));
    const char *c = code && *code ? code : NULL;
    if (status == 0) {
        if (curl_code == CURLE_ABORTED_BY_CALLBACK)
            return err_set(e, ERR_CANCELLED, "%s: interrupted", what);
        if (curl_code == CURLE_PEER_FAILED_VERIFICATION || curl_code == CURLE_SSL_CACERT_BADFILE ||
            curl_code == CURLE_SSL_CERTPROBLEM)
            return err_set(e, ERR_TLS,
                           "%s: certificate of '%s' is not trusted (%s); pass --ca-cert FILE "
                           "with the issuing CA, or fix the server's certificate",
                           what, ep,
                           curl_detail && *curl_detail ? curl_detail
                                                       : curl_easy_strerror(curl_code));
        return err_set(e, ERR_NET,
                       "%s: cannot reach '%s' (%s) after %d attempt%s in %.1f s; check the "
                       "endpoint and that the server is running",
                       what, ep,
                       curl_detail && *curl_detail ? curl_detail : curl_easy_strerror(curl_code),
                       attempts, attempts == 1 ? "" : "s", elapsed);
    }
    if (c && (!strcmp(c, "SignatureDoesNotMatch") || !strcmp(c, "InvalidAccessKeyId") ||
              !strcmp(c, "InvalidToken") || !strcmp(c, "ExpiredToken") ||
              !strcmp(c, "InvalidSecurity") || !strcmp(c, "AuthorizationHeaderMalformed")))
        return err_set(e, ERR_AUTH,
                       "%s: '%s' refused the credentials (%s); check the access key id and secret "
                       "access key for '%s'",
                       what, ep, c, s3->display);
    if (c && !strcmp(c, "NoSuchBucket"))
        return err_set(e, ERR_NOT_FOUND,
                       "%s: bucket '%s' does not exist at '%s'; create it or pass --create-bucket",
                       what, s3->bucket, ep);
    if (c && (!strcmp(c, "NoSuchKey") || !strcmp(c, "NoSuchUpload")))
        return err_set(e, ERR_NOT_FOUND, "%s: not found (%s)", what, c);
    if (status == 404)
        return err_set(e, ERR_NOT_FOUND, "%s: not found", what);
    if (status == 403 || (c && !strcmp(c, "AccessDenied")))
        return err_set(
            e, ERR_PERM,
            "%s: access denied by '%s'%s%s%s; check that these credentials may use bucket '%s'",
            what, ep, c ? " (" : "", c ? c : "", c ? ")" : "", s3->bucket);
    if (c && (!strcmp(c, "BadDigest") || !strcmp(c, "XAmzContentSHA256Mismatch") ||
              !strcmp(c, "InvalidDigest")))
        return err_set(e, ERR_IO,
                       "%s: the server received other bytes than were checksummed (%s): the source "
                       "changed while it was uploaded, or the data was damaged in transit; nothing "
                       "was stored, it will be copied next run",
                       what, c);
    if (c && (!strcmp(c, "EntityTooLarge") || !strcmp(c, "QuotaExceeded")))
        return err_set(e, ERR_IO, "%s: destination refused the data (%s: %s)", what, c,
                       message ? message : "");
    if (status >= 500 || (c && (!strcmp(c, "SlowDown") || !strcmp(c, "InternalError"))))
        return err_set(e, ERR_NET,
                       "%s: '%s' answered %ld %s after %d attempt%s in %.1f s; try again later",
                       what, ep, status, c ? c : "", attempts, attempts == 1 ? "" : "s", elapsed);
    return err_set(e, ERR_PROTO, "%s: '%s' answered %ld%s%s%s%s", what, ep, status, c ? " " : "",
                   c ? c : "", message && *message ? ": " : "", message ? message : "");
}

int s3_request(struct s3 *s3, const struct s3_req *req, struct s3_resp *resp, const char *what,
               struct err *e)
{
    double start = s3_now();
    int r = 0;
    struct xfer x = {.req = req, .resp = resp};
    buf_init(&x.errbody, S3_ERROR_BODY_MAX);
    char curl_detail[CURL_ERROR_SIZE];
    resp->attempts = 0;

    for (;;) {
        if (cancel_requested() && !req->cleanup) {
            r = err_set(e, ERR_CANCELLED, "%s: interrupted", what);
            goto out;
        }
        resp->attempts++;
        resp_reset_attempt(resp);
        buf_reset(&x.errbody);
        x.upload_pos = 0;
        x.body_error = 0;
        curl_detail[0] = '\0';
        if (req->on_attempt)
            req->on_attempt(req->ctx);

        CURL *h = s3_handle_get(s3);
        struct curl_slist *hl = NULL;
        if (!h) {
            r = err_set(e, ERR_NOMEM, "%s: cannot create an HTTP handle", what);
            goto out;
        }
        r = s3_prepare(s3, h, req, &hl, e);
        if (r) {
            s3_handle_put(s3, h);
            err_wrap(e, "%s", what);
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_detail);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
        if (!strcmp(req->method, "PUT")) {
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, &x);
        }
        err_clear(&x.src_err);
        if (req->body_src) {
            r = req->body_src->open(req->body_src->ctx, req->body_offset, req->body_len, &x.src_rd,
                                    e);
            if (r) {
                curl_slist_free_all(hl);
                s3_handle_put(s3, h);
                err_wrap(e, "%s: reading the source again", what);
                goto out;
            }
        }
        CURLcode cr = curl_easy_perform(h);
        curl_slist_free_all(hl);
        storage_read_close(x.src_rd);
        x.src_rd = NULL;
        if (x.src_err.code) { /* the source failed us: no point retrying */
            s3_handle_put(s3, h);
            r = err_set(e, x.src_err.code, "%s: reading the source again: %s", what, x.src_err.msg);
            goto out;
        }
        char url[512] = "";
        if (log_get_level() >= LOG_DEBUG) {
            char *u = NULL;
            curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &u);
            snprintf(url, sizeof(url), "%s", u ? u : "");
        }
        long status = 0;
        if (cr == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        else if (resp->status && x.body_error)
            status = resp->status;
        s3_handle_put(s3, h);

        if (x.body_error && x.body_error != ERR_PROTO) {
            r = err_set(e, x.body_error, "%s: cannot use the response body", what);
            goto out;
        }
        struct s3_xml_error xe;
        memset(&xe, 0, sizeof(xe));
        if (status >= 300 && x.errbody.len)
            s3_xml_parse_error(x.errbody.data, x.errbody.len, &xe);
        else if (status >= 200 && status < 300 && !req->on_body && resp->body.len &&
                 s3_xml_parse_error(resp->body.data, resp->body.len, &xe) == 1)
            log_debug("%s: 200 answer with an error document (%s)", what, xe.code);
        snprintf(resp->s3_code, sizeof(resp->s3_code), "%s", xe.code);
        snprintf(resp->s3_message, sizeof(resp->s3_message), "%s", xe.message);
        if (log_get_level() >= LOG_DEBUG)
            log_debug("%s %s -> %ld in %.3f s (attempt %d)", req->method, url, status,
                      s3_now() - start, resp->attempts);
        if (status >= 200 && status < 300 && !xe.code[0]) {
            resp->status = status;
            r = 0;
            goto out;
        }
        if (status == 0 && cr == CURLE_OK)
            cr = CURLE_RECV_ERROR;
        double elapsed = s3_now() - start;
        if (s3_retry_classify(status, xe.code, (int)cr) == S3_RETRY_YES &&
            resp->attempts < s3->max_attempts) {
            double delay = s3_retry_delay(resp->attempts, jitter());
            if (elapsed + delay < s3->retry_deadline) {
                log_debug("%s: attempt %d: %ld %s %s; retrying in %.2f s", what, resp->attempts,
                          status, xe.code, status ? "" : curl_easy_strerror(cr), delay);
                s3_sleep(delay);
                continue;
            }
        }
        if (x.body_error == ERR_PROTO && status >= 200 && status < 300 && !xe.code[0]) {
            r = err_set(e, ERR_PROTO, "%s: response body larger than %d bytes", what,
                        S3_SMALL_BODY_MAX);
            goto out;
        }
        resp->status = status;
        r = s3_error_from(s3, status, xe.code, xe.message, (int)cr, curl_detail, resp->attempts,
                          elapsed, what, e);
        goto out;
    }
out:
    buf_release(&x.errbody);
    return r;
}
