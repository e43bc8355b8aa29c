/*
 * s3_read.c - streaming GET with resume.
 *
 * libcurl pushes body bytes; storage_read() pulls. One easy handle runs in
 * its own multi handle (taken from and given back to a pool, with the
 * connections it holds, so reading many small objects does not connect
 * for each): the write callback copies into a 1 MiB window and
 * pauses the transfer when the window is full; storage_read() drains it and
 * resumes. If the connection breaks mid-body, the next attempt asks for
 * "Range: bytes=<next byte>-" with If-Match on the first answer's ETag, so
 * a resumed download can never splice two versions of an object.
 *
 * A whole-object read is verified as it goes: against the object's
 * SHA-256 checksum when the server returns a full-object one (asked for with
 * x-amz-checksum-mode), else against an ETag that is a plain MD5 (single-part
 * uploads). A mismatch fails the read at its end, so a corrupted body never
 * passes for a good one. Multipart objects without a full-object checksum
 * cannot be verified from the headers.
 */
#include "storage/s3/s3_internal.h"
#include "storage/s3/s3_xml.h"
#include "core/cancel.h"
#include "core/log.h"
#include "io/hash_async.h"

#include <openssl/evp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_READ_WINDOW (1024 * 1024)
/* verification hashing runs on its own thread over blocks of this size */
#define S3_VERIFY_BLOCK (1024 * 1024)
#define S3_VERIFY_BLOCKS 4

void s3_entry_from_resp(struct storage_entry *ent, const struct s3_resp *resp);

struct s3_reader {
    struct s3 *s3;
    char *key;     /* full key */
    char *rel_key; /* for messages */
    uint64_t next; /* absolute offset of the next byte the caller gets */
    int64_t end;   /* absolute end (exclusive), -1 until known */
    char etag[S3_ETAG_MAX];
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    struct s3_resp resp;
    struct buf errbody;
    char *win;
    size_t win_start, win_len;
    bool paused, done, headers_seen;
    CURLcode result;
    int attempts;
    double started;
    char curl_detail[CURL_ERROR_SIZE];
    struct async_hash *verify; /* NULL when the read is not verified */
    unsigned char expect[32];  /* expected digest */
    unsigned expect_len;
    const char *verify_what; /* "sha256 checksum" or "md5 etag" */
};

static size_t rd_header(char *data, size_t size, size_t n, void *ctx)
{
    struct s3_reader *rd = ctx;
    size_t len = size * n;
    s3_parse_header_line(data, len, &rd->resp);
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n') && rd->resp.status >= 200)
        rd->headers_seen = true;
    return len;
}

static size_t rd_write(char *data, size_t size, size_t n, void *ctx)
{
    struct s3_reader *rd = ctx;
    size_t len = size * n;
    if (rd->resp.status < 200 || rd->resp.status >= 300) {
        buf_append(&rd->errbody, data, len);
        return len;
    }
    if (rd->win_start && rd->win_start + rd->win_len + len > S3_READ_WINDOW) {
        memmove(rd->win, rd->win + rd->win_start, rd->win_len);
        rd->win_start = 0;
    }
    if (rd->win_len + len > S3_READ_WINDOW) {
        rd->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    memcpy(rd->win + rd->win_start + rd->win_len, data, len);
    rd->win_len += len;
    return len;
}

static void rd_stop(struct s3_reader *rd)
{
    if (rd->easy) {
        curl_multi_remove_handle(rd->multi, rd->easy);
        if (rd->done && rd->result == CURLE_OK)
            s3_handle_put(rd->s3, rd->easy); /* the connection is reusable */
        else
            curl_easy_cleanup(rd->easy);
        rd->easy = NULL;
    }
    curl_slist_free_all(rd->hdrs);
    rd->hdrs = NULL;
}

/* Start (or restart) the GET from rd->next. */
static int rd_start(struct s3_reader *rd, struct err *e)
{
    char range[96];
    struct s3_kv h[3];
    size_t nh = 0;
    bool ranged = rd->next > 0 || rd->end >= 0;
    if (ranged) {
        if (rd->end >= 0)
            snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRId64, rd->next, rd->end - 1);
        else
            snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", rd->next);
        h[nh++] = (struct s3_kv){"range", range};
    }
    if (rd->next == 0 && rd->end < 0)
        h[nh++] = (struct s3_kv){"x-amz-checksum-mode", "ENABLED"};
    char ifmatch[150];
    if (rd->etag[0]) {
        snprintf(ifmatch, sizeof(ifmatch), "\"%s\"", rd->etag);
        h[nh++] = (struct s3_kv){"if-match", ifmatch};
    }
    struct s3_req req = {.method = "GET", .key = rd->key, .headers = h, .nheaders = nh};
    rd->easy = s3_handle_get(rd->s3);
    if (!rd->easy)
        return err_set(e, ERR_NOMEM, "out of memory");
    int r = s3_prepare(rd->s3, rd->easy, &req, &rd->hdrs, e);
    if (r)
        return r;
    int64_t len_before = rd->resp.total_size;
    s3_resp_init(&rd->resp);
    rd->resp.total_size = len_before;
    buf_reset(&rd->errbody);
    rd->paused = rd->done = rd->headers_seen = false;
    rd->result = CURLE_OK;
    rd->curl_detail[0] = '\0';
    rd->attempts++;
    curl_easy_setopt(rd->easy, CURLOPT_HEADERFUNCTION, rd_header);
    curl_easy_setopt(rd->easy, CURLOPT_HEADERDATA, rd);
    curl_easy_setopt(rd->easy, CURLOPT_WRITEFUNCTION, rd_write);
    curl_easy_setopt(rd->easy, CURLOPT_WRITEDATA, rd);
    curl_easy_setopt(rd->easy, CURLOPT_ERRORBUFFER, rd->curl_detail);
    curl_multi_add_handle(rd->multi, rd->easy);
    return 0;
}

/* Drive the transfer until data is in the window, the headers are in (when
 * want_headers), or it ended. */
static int rd_pump(struct s3_reader *rd, bool want_headers, struct err *e)
{
    while (!rd->done) {
        if (cancel_requested())
            return err_set(e, ERR_CANCELLED, "reading '%s': interrupted", rd->rel_key);
        if (rd->win_len && !want_headers)
            return 0;
        if (want_headers && rd->headers_seen && (rd->resp.status >= 200 && rd->resp.status < 300))
            return 0;
        if (rd->paused && rd->win_len + CURL_MAX_WRITE_SIZE <= S3_READ_WINDOW) {
            rd->paused = false;
            curl_easy_pause(rd->easy, CURLPAUSE_CONT);
            continue;
        }
        int running = 0;
        CURLMcode mc = curl_multi_perform(rd->multi, &running);
        if (mc != CURLM_OK)
            return err_set(e, ERR_INTERNAL, "reading '%s': %s", rd->rel_key,
                           curl_multi_strerror(mc));
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(rd->multi, &left))) {
            if (msg->msg == CURLMSG_DONE) {
                rd->done = true;
                rd->result = msg->data.result;
            }
        }
        if (rd->done)
            break;
        if ((rd->win_len && !want_headers) || rd->paused)
            continue;
        curl_multi_poll(rd->multi, NULL, 0, 200, NULL);
    }
    return 0;
}

/* After an attempt ended or its headers came: decide. Returns 0 to go on
 * (data flows), 1 to retry, negative on a final error. */
static int rd_judge(struct s3_reader *rd, struct err *e)
{
    long status = rd->resp.status;
    char what[1200];
    snprintf(what, sizeof(what), "reading '%s' from '%s'", rd->rel_key, rd->s3->display);
    if (status >= 200 && status < 300 && (!rd->done || rd->result == CURLE_OK))
        return 0;
    struct s3_xml_error xe;
    memset(&xe, 0, sizeof(xe));
    if (status >= 300 && rd->errbody.len)
        s3_xml_parse_error(rd->errbody.data, rd->errbody.len, &xe);
    if (status == 412)
        return err_set(e, ERR_IO,
                       "%s: the object changed while it was read; it will be copied next run",
                       what);
    if (status == 416 && rd->next > 0)
        return 0; /* nothing left: the range starts at or past the end */
    CURLcode cr = rd->done ? rd->result : CURLE_OK;
    long judged = (status >= 200 && status < 300) ? 0 : status; /* broken mid-body */
    double elapsed = s3_now() - rd->started;
    if (s3_retry_classify(judged, xe.code, (int)(cr ? cr : CURLE_RECV_ERROR)) == S3_RETRY_YES &&
        rd->attempts < rd->s3->max_attempts) {
        double delay = s3_retry_delay(rd->attempts, 0.5);
        if (elapsed + delay < rd->s3->retry_deadline) {
            log_debug("%s: attempt %d ended (%ld %s); resuming at byte %" PRIu64, what,
                      rd->attempts, status, curl_easy_strerror(cr), rd->next);
            s3_sleep(delay);
            return 1;
        }
    }
    return s3_error_from(rd->s3, judged, xe.code, xe.message, (int)(cr ? cr : CURLE_RECV_ERROR),
                         rd->curl_detail, rd->attempts, elapsed, what, e);
}

static int rd_connect(struct s3_reader *rd, struct err *e)
{
    for (;;) {
        int r = rd_start(rd, e);
        if (r)
            return r;
        r = rd_pump(rd, true, e);
        if (r)
            return r;
        r = rd_judge(rd, e);
        if (r <= 0)
            return r;
        rd_stop(rd);
        rd->win_start = rd->win_len = 0;
    }
}

void s3_read_close(void *state);

static int unhex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Choose what a whole-object read is checked against (see the top). */
static void rd_setup_verify(struct s3_reader *rd)
{
    const char *ck = rd->resp.checksum_sha256;
    if (ck[0] && !strchr(ck, '-')) {
        unsigned char raw[64];
        int n = EVP_DecodeBlock(raw, (const unsigned char *)ck, (int)strlen(ck));
        size_t len = strlen(ck);
        if (n >= 32 && len == 44) { /* 32 bytes: 44 base64 chars, one '=' pad */
            memcpy(rd->expect, raw, 32);
            rd->expect_len = 32;
            rd->verify_what = "sha256 checksum";
            rd->verify = async_hash_new(HASH_SHA256, S3_VERIFY_BLOCK, S3_VERIFY_BLOCKS);
            return;
        }
    }
    const char *et = rd->etag;
    if (strlen(et) == 32 && !rd->resp.etag_not_md5) {
        for (int i = 0; i < 16; i++) {
            int a = unhex(et[2 * i]), b = unhex(et[2 * i + 1]);
            if (a < 0 || b < 0)
                return;
            rd->expect[i] = (unsigned char)(a << 4 | b);
        }
        rd->expect_len = 16;
        rd->verify_what = "md5 etag";
        rd->verify = async_hash_new(HASH_MD5, S3_VERIFY_BLOCK, S3_VERIFY_BLOCKS);
    }
}

static int rd_verify_end(struct s3_reader *rd, struct err *e)
{
    if (!rd->verify)
        return 0;
    unsigned char got[EVP_MAX_MD_SIZE];
    size_t n = async_hash_final(rd->verify, got, sizeof(got));
    rd->verify = NULL;
    if (n == rd->expect_len && !memcmp(got, rd->expect, n))
        return 0;
    return err_set(e, ERR_IO,
                   "reading '%s' from '%s': the bytes received do not match the object's %s "
                   "(corrupted in transit or at rest); it was not used, try again",
                   rd->rel_key, rd->s3->display, rd->verify_what);
}

int s3_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length, void **state,
                 struct storage_entry *ent, struct err *e)
{
    struct s3 *s3 = st->priv;
    struct s3_reader *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return err_set(e, ERR_NOMEM, "out of memory");
    rd->s3 = s3;
    rd->key = s3_full_key(s3, key);
    rd->rel_key = strdup(key);
    rd->win = malloc(S3_READ_WINDOW);
    rd->multi = s3_multi_get(s3);
    rd->next = offset;
    rd->end = length >= 0 ? (int64_t)offset + length : -1;
    rd->started = s3_now();
    s3_resp_init(&rd->resp);
    buf_init(&rd->errbody, S3_ERROR_BODY_MAX);
    int r;
    if (!rd->key || !rd->rel_key || !rd->win || !rd->multi) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    r = rd_connect(rd, e);
    if (r)
        goto fail;
    snprintf(rd->etag, sizeof(rd->etag), "%s", rd->resp.etag);
    if (offset == 0 && length < 0)
        rd_setup_verify(rd);
    if (ent) {
        s3_entry_from_resp(ent, &rd->resp);
        ent->key = strdup(key);
    }
    *state = rd;
    return 0;
fail:
    s3_read_close(rd);
    return r;
}

int s3_read(void *state, void *out, size_t cap, size_t *got, struct err *e)
{
    struct s3_reader *rd = state;
    *got = 0;
    for (;;) {
        if (rd->win_len) {
            size_t n = rd->win_len < cap ? rd->win_len : cap;
            if (rd->end >= 0 && (int64_t)(rd->next + n) > rd->end)
                n = (size_t)(rd->end - (int64_t)rd->next);
            memcpy(out, rd->win + rd->win_start, n);
            rd->win_start += n;
            rd->win_len -= n;
            if (!rd->win_len)
                rd->win_start = 0;
            if (rd->verify && async_hash_update(rd->verify, out, n))
                return err_set(e, ERR_INTERNAL, "reading '%s': hashing failed", rd->rel_key);
            rd->next += n;
            *got = n;
            return 0;
        }
        if (rd->end >= 0 && (int64_t)rd->next >= rd->end)
            return 0;
        if (rd->done) {
            int r = rd_judge(rd, e);
            if (r < 0)
                return r;
            if (r == 0) {
                /* clean end: did we get everything the server promised? */
                int64_t total = rd->resp.total_size;
                if (total >= 0 && rd->end < 0 && (int64_t)rd->next < total) {
                    /* premature end without an error: resume */
                } else {
                    return rd_verify_end(rd, e);
                }
            }
            rd_stop(rd);
            r = rd_connect(rd, e);
            if (r)
                return r;
            continue;
        }
        int r = rd_pump(rd, false, e);
        if (r)
            return r;
    }
}

void s3_read_close(void *state)
{
    struct s3_reader *rd = state;
    if (!rd)
        return;
    if (rd->multi) {
        rd_stop(rd);
        s3_multi_put(rd->s3, rd->multi); /* with its connections, for the next read */
    }
    s3_resp_release(&rd->resp);
    buf_release(&rd->errbody);
    async_hash_free(rd->verify);
    free(rd->win);
    free(rd->key);
    free(rd->rel_key);
    free(rd);
}
