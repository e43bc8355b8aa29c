/*
 * s3_write.c - uploads and server-side copies.
 *
 * An upload buffers up to one part. If the writer is committed before the
 * first part fills, the object goes as one PUT. Otherwise a multipart
 * upload starts and each full part is sent by its own thread, at most
 * upload_concurrency at once; the buffer being filled counts among them,
 * so memory is bounded by concurrency x part size and the writer blocks
 * while every buffer is in flight. Every part is
 * the same size but the last (R2 requires it), the part size grows so a
 * file of known size never needs more than 10,000 parts, and every body
 * carries a checksum the server verifies (x-amz-checksum-sha256, or
 * Content-MD5). The object appears only when CompleteMultipartUpload
 * succeeds; any failure or cancel aborts the upload so no parts remain.
 *
 * When the caller can give the bytes again (opts->reread: a local file),
 * nothing is buffered: each part is hashed as it streams past, and its
 * body is read again from the source when it is sent (and on every retry).
 * Memory then stays at a few curl buffers whatever the part size.
 */
#include "storage/s3/s3_internal.h"
#include "storage/s3/s3_xml.h"
#include "core/cancel.h"
#include "core/log.h"
#include "io/filter.h"

#include <openssl/evp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct s3_part_job;

struct s3_writer {
    struct s3 *s3;
    char *key; /* full key */
    char *rel_key;
    char mtime[40]; /* x-amz-meta-mtime value or "" */
    char content_type[128];
    uint64_t part_size;
    char *cur; /* part being filled */
    size_t cur_len;
    size_t cur_cap; /* the first buffer is small when the size hint is */
    uint64_t total;
    char upload_id[S3_XML_UPLOAD_ID_MAX];
    struct s3_part *parts; /* index = part number - 1 */
    size_t nparts, parts_cap;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inflight;
    char **free_bufs; /* idle part buffers */
    int nfree;
    int nbufs; /* allocated part buffers */
    int first_error;
    struct err error;
    pthread_t *threads;
    size_t nthreads, threads_cap;

    /* re-read mode (opts->reread): no buffers, a running part hash */
    const struct storage_range_source *reread;
    EVP_MD_CTX *part_hash;
    uint64_t part_off, part_len;
};

struct s3_part_job {
    struct s3_writer *w;
    uint32_t number;
    char *data; /* buffered mode: the part; NULL in re-read mode */
    size_t len;
    uint64_t offset; /* re-read mode: where the part starts in the stream */
    char b64[64];    /* re-read mode: its checksum, computed as it passed */
};

/* The checksum header the server verifies the body against. The payload
 * itself is sent as UNSIGNED-PAYLOAD: the checksum header is signed, so the
 * body is as well protected as with a signed payload hash, and the data is
 * hashed once instead of twice (and servers such as s3rver do not re-hash
 * a signed payload slowly). */
static void checksum_header(const struct s3 *s3, const char *b64, struct s3_kv *h, size_t *nh)
{
    h[(*nh)++] = (struct s3_kv){
        s3->checksum == S3_CHECKSUM_MD5 ? "content-md5" : "x-amz-checksum-sha256", b64};
}

static void body_checksums(const struct s3 *s3, const void *data, size_t len, struct s3_kv *h,
                           size_t *nh, char *b64, size_t b64cap)
{
    if (s3->checksum == S3_CHECKSUM_MD5) {
        unsigned char md5[16];
        hash_md5_raw(data, len, md5);
        base64_encode(md5, 16, b64, b64cap);
    } else {
        unsigned char sha[32];
        hash_sha256_raw(data, len, sha);
        base64_encode(sha, 32, b64, b64cap);
    }
    checksum_header(s3, b64, h, nh);
}

/* Re-read mode: start hashing a part / finish it into base64. */
static int part_hash_start(struct s3_writer *w)
{
    return EVP_DigestInit_ex(w->part_hash,
                             w->s3->checksum == S3_CHECKSUM_MD5 ? EVP_md5() : EVP_sha256(), NULL)
               ? 0
               : ERR_INTERNAL;
}

static void part_hash_b64(struct s3_writer *w, char *b64, size_t cap)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(w->part_hash, d, &n);
    base64_encode(d, n, b64, cap);
}

static size_t meta_headers(const struct s3_writer *w, struct s3_kv *h)
{
    size_t nh = 0;
    h[nh++] = (struct s3_kv){"content-type", w->content_type};
    if (w->mtime[0])
        h[nh++] = (struct s3_kv){"x-amz-meta-mtime", w->mtime};
    return nh;
}

static void writer_fail(struct s3_writer *w, const struct err *e)
{
    pthread_mutex_lock(&w->lock);
    if (!w->first_error) {
        w->first_error = e->code ? e->code : ERR_INTERNAL;
        w->error = *e;
    }
    pthread_mutex_unlock(&w->lock);
}

static void *part_thread(void *arg)
{
    struct s3_part_job *job = arg;
    struct s3_writer *w = job->w;
    struct s3 *s3 = w->s3;
    struct err e;
    err_clear(&e);
    char num[16], b64[64];
    snprintf(num, sizeof(num), "%u", job->number);
    struct s3_kv q[] = {{"partNumber", num}, {"uploadId", w->upload_id}};
    struct s3_kv h[2];
    size_t nh = 0;
    struct s3_req req = {.method = "PUT",
                         .key = w->key,
                         .query = q,
                         .nquery = 2,
                         .headers = h,
                         .body = job->data,
                         .body_len = job->len,
                         .payload_sha256 = S3_UNSIGNED_PAYLOAD};
    if (job->data) {
        body_checksums(s3, job->data, job->len, h, &nh, b64, sizeof(b64));
    } else {
        snprintf(b64, sizeof(b64), "%s", job->b64);
        checksum_header(s3, b64, h, &nh);
        req.body_src = w->reread;
        req.body_offset = job->offset;
    }
    req.nheaders = nh;
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[1200];
    snprintf(what, sizeof(what), "uploading '%s' to '%s': part %u", w->rel_key, s3->display,
             job->number);
    int r = s3_request(s3, &req, &resp, what, &e);
    if (!r && !resp.etag[0])
        r = err_set(&e, ERR_PROTO, "%s: no ETag in the answer", what);
    if (r) {
        writer_fail(w, &e);
    } else {
        pthread_mutex_lock(&w->lock);
        struct s3_part *p = &w->parts[job->number - 1];
        p->part_number = job->number;
        snprintf(p->etag, sizeof(p->etag), "%s", resp.etag);
        if (s3->checksum == S3_CHECKSUM_SHA256)
            snprintf(p->checksum_sha256, sizeof(p->checksum_sha256), "%s", b64);
        pthread_mutex_unlock(&w->lock);
    }
    s3_resp_release(&resp);
    pthread_mutex_lock(&w->lock);
    if (job->data)
        w->free_bufs[w->nfree++] = job->data;
    w->inflight--;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    free(job);
    return NULL;
}

static int create_upload(struct s3_writer *w, struct err *e)
{
    struct s3 *s3 = w->s3;
    struct s3_kv q[] = {{"uploads", ""}};
    struct s3_kv h[4];
    size_t nh = meta_headers(w, h);
    if (s3->checksum == S3_CHECKSUM_SHA256)
        h[nh++] = (struct s3_kv){"x-amz-checksum-algorithm", "SHA256"};
    struct s3_req req = {
        .method = "POST", .key = w->key, .query = q, .nquery = 1, .headers = h, .nheaders = nh};
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[1200];
    snprintf(what, sizeof(what), "starting the upload of '%s' to '%s'", w->rel_key, s3->display);
    int r = s3_request(s3, &req, &resp, what, e);
    if (!r) {
        struct s3_xml_initiate init;
        struct s3_xml_error xe;
        int x = s3_xml_parse_initiate(resp.body.data ? resp.body.data : "", resp.body.len, &init,
                                      &xe, e);
        if (x < 0)
            r = err_wrap(e, "%s", what);
        else if (x == S3_XML_ERROR_DOC || !init.upload_id[0])
            r = err_set(e, ERR_PROTO, "%s: no upload id in the answer (%s)", what, xe.code);
        else
            snprintf(w->upload_id, sizeof(w->upload_id), "%s", init.upload_id);
    }
    s3_resp_release(&resp);
    return r;
}

static int abort_upload(struct s3 *s3, const char *key, const char *upload_id)
{
    struct err e;
    err_clear(&e);
    struct s3_kv q[] = {{"uploadId", upload_id}};
    /* cancellation must not stop the cleanup itself */
    struct s3_req req = {.method = "DELETE", .key = key, .query = q, .nquery = 1, .cleanup = true};
    struct s3_resp resp;
    s3_resp_init(&resp);
    int r = s3_request(s3, &req, &resp, "aborting a multipart upload", &e);
    if (r == ERR_CANCELLED) {
        log_warn(
            "interrupted before the multipart upload of '%s' was aborted; a later run's janitor "
            "or a lifecycle rule must remove its parts",
            key);
    } else if (r && r != ERR_NOT_FOUND) {
        log_warn("%s", e.msg);
    }
    s3_resp_release(&resp);
    return r;
}

/* Wait until a part buffer is free; returns it (or NULL on error). */
static char *take_buffer(struct s3_writer *w, struct err *e)
{
    char *b = NULL;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        if (w->first_error)
            break;
        if (w->nfree) {
            b = w->free_bufs[--w->nfree];
            break;
        }
        if (w->nbufs < w->s3->upload_concurrency) {
            b = malloc(w->part_size);
            if (b)
                w->nbufs++;
            break;
        }
        pthread_cond_wait(&w->cond, &w->lock);
    }
    int err = w->first_error;
    pthread_mutex_unlock(&w->lock);
    if (err) {
        free(b);
        *e = w->error;
        return NULL;
    }
    if (!b)
        err_set(e, ERR_NOMEM, "out of memory for a %" PRIu64 " byte part", w->part_size);
    return b;
}

/* Start the thread that sends the next part: data/len in buffered mode,
 * or (data NULL) len bytes at offset of the stream with checksum b64. */
static int dispatch_job(struct s3_writer *w, char *data, size_t len, uint64_t offset,
                        const char *b64, struct err *e)
{
    if (w->nparts >= S3_MAX_PARTS)
        return err_set(e, ERR_USAGE,
                       "uploading '%s': more than %d parts of %" PRIu64
                       " bytes; raise the part size",
                       w->rel_key, S3_MAX_PARTS, w->part_size);
    if (w->nparts == w->parts_cap) {
        size_t cap = w->parts_cap ? w->parts_cap * 2 : 64;
        struct s3_part *p = realloc(w->parts, cap * sizeof(*p));
        if (!p)
            return err_set(e, ERR_NOMEM, "out of memory");
        memset(p + w->parts_cap, 0, (cap - w->parts_cap) * sizeof(*p));
        w->parts = p;
        w->parts_cap = cap;
    }
    if (w->nthreads == w->threads_cap) {
        size_t cap = w->threads_cap ? w->threads_cap * 2 : 64;
        pthread_t *t = realloc(w->threads, cap * sizeof(*t));
        if (!t)
            return err_set(e, ERR_NOMEM, "out of memory");
        w->threads = t;
        w->threads_cap = cap;
    }
    struct s3_part_job *job = malloc(sizeof(*job));
    if (!job)
        return err_set(e, ERR_NOMEM, "out of memory");
    job->w = w;
    job->number = (uint32_t)++w->nparts;
    job->data = data;
    job->len = len;
    job->offset = offset;
    snprintf(job->b64, sizeof(job->b64), "%s", b64 ? b64 : "");
    pthread_mutex_lock(&w->lock);
    w->inflight++;
    pthread_mutex_unlock(&w->lock);
    if (pthread_create(&w->threads[w->nthreads], NULL, part_thread, job)) {
        pthread_mutex_lock(&w->lock);
        w->inflight--;
        pthread_mutex_unlock(&w->lock);
        free(job);
        w->nparts--;
        return err_set(e, ERR_NOMEM, "cannot start an upload thread");
    }
    w->nthreads++;
    return 0;
}

/* Buffered mode: send the full buffer cur. */
static int dispatch_part(struct s3_writer *w, struct err *e)
{
    if (w->cur_cap < w->part_size) /* never: parts are only full buffers */
        return err_set(e, ERR_INTERNAL, "short part buffer");
    int r = dispatch_job(w, w->cur, w->cur_len, 0, NULL, e);
    if (!r) {
        w->cur = NULL;
        w->cur_len = 0;
    }
    return r;
}

/* Re-read mode: wait until fewer than upload_concurrency parts are in
 * flight; the first error of a part stops the writer. */
static int wait_slot(struct s3_writer *w, struct err *e)
{
    pthread_mutex_lock(&w->lock);
    while (!w->first_error && w->inflight >= w->s3->upload_concurrency)
        pthread_cond_wait(&w->cond, &w->lock);
    int r = w->first_error;
    if (r)
        *e = w->error;
    pthread_mutex_unlock(&w->lock);
    return r;
}

/* Re-read mode: the current part is complete (or the stream ended): send
 * it, and start hashing the next. */
static int dispatch_reread_part(struct s3_writer *w, struct err *e)
{
    char b64[64];
    part_hash_b64(w, b64, sizeof(b64));
    int r = wait_slot(w, e);
    if (!r)
        r = dispatch_job(w, NULL, (size_t)w->part_len, w->part_off, b64, e);
    if (r)
        return r;
    w->part_off += w->part_len;
    w->part_len = 0;
    if (part_hash_start(w))
        return err_set(e, ERR_INTERNAL, "cannot start a hash");
    return 0;
}

static void join_parts(struct s3_writer *w)
{
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
}

static void writer_free(struct s3_writer *w)
{
    join_parts(w);
    for (int i = 0; i < w->nfree; i++)
        free(w->free_bufs[i]);
    free(w->free_bufs);
    free(w->cur);
    free(w->parts);
    free(w->threads);
    EVP_MD_CTX_free(w->part_hash);
    free(w->key);
    free(w->rel_key);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

int s3_write_open(struct storage *st, const char *key, const struct storage_write_opts *opts,
                  void **state, struct err *e)
{
    struct s3 *s3 = st->priv;
    struct s3_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return err_set(e, ERR_NOMEM, "out of memory");
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->s3 = s3;
    w->key = s3_full_key(s3, key);
    w->rel_key = strdup(key);
    w->free_bufs = calloc((size_t)s3->upload_concurrency + 2, sizeof(char *));
    if (!w->key || !w->rel_key || !w->free_bufs) {
        writer_free(w);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (opts->mtime_ns != STORAGE_MTIME_UNKNOWN)
        s3_mtime_format(opts->mtime_ns, w->mtime, sizeof(w->mtime));
    snprintf(w->content_type, sizeof(w->content_type), "%s",
             opts->content_type ? opts->content_type : "application/octet-stream");
    w->part_size = s3->part_size;
    if (opts->size_hint > 0) {
        /* grow in MiB steps so the file fits in 10,000 equal parts */
        uint64_t mib = 1024 * 1024;
        uint64_t need = ((uint64_t)opts->size_hint + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        need = (need + mib - 1) / mib * mib;
        if (need > w->part_size)
            w->part_size = need;
    }
    if (opts->reread) {
        w->reread = opts->reread;
        w->part_hash = EVP_MD_CTX_new();
        if (!w->part_hash || part_hash_start(w)) {
            writer_free(w);
            return err_set(e, ERR_NOMEM, "out of memory");
        }
        *state = w;
        return 0;
    }
    /* a small file needs no part-sized buffer; +1 so a file of exactly the
     * hinted size is known complete without growing */
    w->cur_cap = w->part_size;
    if (opts->size_hint >= 0 && (uint64_t)opts->size_hint < w->part_size)
        w->cur_cap = (size_t)opts->size_hint + 1;
    w->cur = malloc(w->cur_cap);
    if (!w->cur) {
        writer_free(w);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->nbufs = 1;
    *state = w;
    return 0;
}

/* A part is complete: start the multipart upload if this is the first one,
 * then send it (from the buffer, or by re-reading it). */
static int part_complete(struct s3_writer *w, struct err *e)
{
    int r = 0;
    if (!w->upload_id[0])
        r = create_upload(w, e);
    if (!r)
        r = w->reread ? dispatch_reread_part(w, e) : dispatch_part(w, e);
    return r;
}

/* Re-read mode: hash what passes; a part is sent when its bytes are all seen. */
static int reread_write(struct s3_writer *w, const char *p, size_t len, struct err *e)
{
    while (len) {
        if (w->first_error) {
            *e = w->error;
            return w->first_error;
        }
        uint64_t room = w->part_size - w->part_len;
        size_t n = len < room ? len : (size_t)room;
        EVP_DigestUpdate(w->part_hash, p, n);
        w->part_len += n;
        w->total += n;
        p += n;
        len -= n;
        if (w->part_len == w->part_size) {
            int r = part_complete(w, e);
            if (r)
                return r;
        }
    }
    return 0;
}

int s3_write(void *state, const void *data, size_t len, struct err *e)
{
    struct s3_writer *w = state;
    const char *p = data;
    if (w->reread)
        return reread_write(w, p, len, e);
    while (len) {
        if (w->first_error) {
            *e = w->error;
            return w->first_error;
        }
        if (!w->cur) {
            w->cur = take_buffer(w, e);
            if (!w->cur)
                return e->code ? e->code : ERR_NOMEM;
            w->cur_cap = w->part_size;
        }
        if (w->cur_len + len > w->cur_cap && w->cur_cap < w->part_size) {
            /* the size hint was short: grow the first buffer to a part */
            char *b = realloc(w->cur, w->part_size);
            if (!b)
                return err_set(e, ERR_NOMEM, "out of memory");
            w->cur = b;
            w->cur_cap = w->part_size;
        }
        size_t room = w->cur_cap - w->cur_len;
        size_t n = len < room ? len : room;
        memcpy(w->cur + w->cur_len, p, n);
        w->cur_len += n;
        w->total += n;
        p += n;
        len -= n;
        if (w->cur_len == w->part_size) {
            int r = part_complete(w, e);
            if (r)
                return r;
        }
    }
    return 0;
}

static int put_single(struct s3_writer *w, struct err *e)
{
    struct s3 *s3 = w->s3;
    char b64[64];
    struct s3_kv h[4];
    size_t nh = meta_headers(w, h);
    struct s3_req req = {.method = "PUT",
                         .key = w->key,
                         .headers = h,
                         .body = w->cur ? w->cur : "",
                         .body_len = w->cur_len,
                         .payload_sha256 = S3_UNSIGNED_PAYLOAD};
    if (w->reread) {
        part_hash_b64(w, b64, sizeof(b64));
        checksum_header(s3, b64, h, &nh);
        req.body = NULL;
        req.body_len = (size_t)w->total;
        if (w->total) {
            req.body_src = w->reread;
            req.body_offset = 0;
        } else {
            req.body = "";
        }
    } else {
        body_checksums(s3, w->cur ? w->cur : "", w->cur_len, h, &nh, b64, sizeof(b64));
    }
    req.nheaders = nh;
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[1200];
    snprintf(what, sizeof(what), "uploading '%s' to '%s'", w->rel_key, s3->display);
    int r = s3_request(s3, &req, &resp, what, e);
    s3_resp_release(&resp);
    return r;
}

static int complete_upload(struct s3_writer *w, struct err *e)
{
    struct s3 *s3 = w->s3;
    struct buf body = BUF_INIT(4 * 1024 * 1024);
    char what[1200];
    snprintf(what, sizeof(what), "completing the upload of '%s' to '%s'", w->rel_key, s3->display);
    if (s3_xml_complete_body(&body, w->parts, w->nparts)) {
        buf_release(&body);
        return err_set(e, ERR_INTERNAL, "%s: cannot build the part list", what);
    }
    struct s3_kv q[] = {{"uploadId", w->upload_id}};
    struct s3_req req = {.method = "POST",
                         .key = w->key,
                         .query = q,
                         .nquery = 1,
                         .body = body.data,
                         .body_len = body.len};
    struct s3_resp resp;
    s3_resp_init(&resp);
    /* a 200 answer holding <Error> is turned into an error by s3_request */
    int r = s3_request(s3, &req, &resp, what, e);
    if (!r) {
        struct s3_xml_complete c;
        struct s3_xml_error xe;
        int x =
            s3_xml_parse_complete(resp.body.data ? resp.body.data : "", resp.body.len, &c, &xe, e);
        if (x < 0)
            r = err_wrap(e, "%s", what);
        else if (x == S3_XML_ERROR_DOC)
            r = err_set(e, ERR_NET, "%s: %s: %s", what, xe.code, xe.message);
    }
    s3_resp_release(&resp);
    buf_release(&body);
    return r;
}

int s3_write_commit(void *state, struct err *e)
{
    struct s3_writer *w = state;
    int r = 0;
    if (!w->upload_id[0]) {
        r = w->first_error ? w->first_error : put_single(w, e);
        if (w->first_error)
            *e = w->error;
        writer_free(w);
        return r;
    }
    if (w->reread && w->part_len)
        r = dispatch_reread_part(w, e);
    else if (!w->reread && w->cur_len)
        r = dispatch_part(w, e);
    join_parts(w);
    if (!r && w->first_error) {
        *e = w->error;
        r = w->first_error;
    }
    if (!r)
        r = complete_upload(w, e);
    if (r)
        abort_upload(w->s3, w->key, w->upload_id);
    writer_free(w);
    return r;
}

void s3_write_abort(void *state)
{
    struct s3_writer *w = state;
    join_parts(w);
    if (w->upload_id[0])
        abort_upload(w->s3, w->key, w->upload_id);
    writer_free(w);
}

/* server-side copy */

/* Send a CopyObject or UploadPartCopy request and read its result; S3 may
 * answer 200 and report the failure in the body. */
static int copy_request(struct s3 *s3, const struct s3_req *req, const char *what,
                        struct s3_xml_copy *c, struct err *e)
{
    struct s3_resp resp;
    s3_resp_init(&resp);
    int r = s3_request(s3, req, &resp, what, e);
    if (!r) {
        struct s3_xml_error xe;
        int x = s3_xml_parse_copy(resp.body.data ? resp.body.data : "", resp.body.len, c, &xe, e);
        if (x < 0)
            r = err_wrap(e, "%s", what);
        else if (x == S3_XML_ERROR_DOC)
            r = err_set(e, ERR_NET, "%s: %s: %s", what, xe.code, xe.message);
        else if (!c->etag[0])
            r = err_set(e, ERR_PROTO, "%s: no ETag in the answer", what);
    }
    s3_resp_release(&resp);
    return r;
}

static int copy_source_header(const struct s3 *src, const char *full_key, struct buf *out)
{
    int r = buf_printf(out, "/%s/", src->bucket);
    return r ? r : s3_uri_encode(out, full_key, strlen(full_key), false);
}

static int copy_multipart(struct s3 *dst, const char *dst_full, const char *dst_key,
                          const char *src_hdr, const struct storage_entry *src_ent, struct err *e)
{
    struct s3_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return err_set(e, ERR_NOMEM, "out of memory");
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->s3 = dst;
    w->key = strdup(dst_full);
    w->rel_key = strdup(dst_key);
    snprintf(w->content_type, sizeof(w->content_type), "application/octet-stream");
    if (src_ent->mtime_ns != STORAGE_MTIME_UNKNOWN)
        s3_mtime_format(src_ent->mtime_ns, w->mtime, sizeof(w->mtime));
    int r = 0;
    if (!w->key || !w->rel_key) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    enum s3_checksum saved = dst->checksum;
    uint64_t part = dst->copy_cutoff;
    uint64_t need = (src_ent->size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
    if (need > part)
        part = need;
    uint64_t nparts = (src_ent->size + part - 1) / part;
    w->parts = calloc(nparts, sizeof(*w->parts));
    if (!w->parts) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    dst->checksum = S3_CHECKSUM_MD5; /* no checksum algorithm on a copied upload */
    r = create_upload(w, e);
    dst->checksum = saved;
    if (r)
        goto out;
    for (uint64_t i = 0; i < nparts && !r; i++) {
        uint64_t a = i * part, b = a + part > src_ent->size ? src_ent->size : a + part;
        char num[24], range[80];
        snprintf(num, sizeof(num), "%" PRIu64, i + 1);
        snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, a, b - 1);
        struct s3_kv q[] = {{"partNumber", num}, {"uploadId", w->upload_id}};
        struct s3_kv h[] = {{"x-amz-copy-source", src_hdr}, {"x-amz-copy-source-range", range}};
        struct s3_req req = {
            .method = "PUT", .key = w->key, .query = q, .nquery = 2, .headers = h, .nheaders = 2};
        char what[1200];
        snprintf(what, sizeof(what), "copying '%s' on the server: part %s", dst_key, num);
        struct s3_xml_copy c;
        r = copy_request(dst, &req, what, &c, e);
        if (!r) {
            w->parts[i].part_number = (uint32_t)(i + 1);
            snprintf(w->parts[i].etag, sizeof(w->parts[i].etag), "%s", c.etag);
        }
        w->nparts = i + 1;
    }
    if (!r)
        r = complete_upload(w, e);
    if (r)
        abort_upload(dst, w->key, w->upload_id);
out:
    writer_free(w);
    return r;
}

int s3_copy_from(struct storage *dst_st, const char *dst_key, struct storage *src_st,
                 const char *src_key, const struct storage_entry *src_ent, struct err *e)
{
    struct s3 *dst = dst_st->priv, *src = src_st->priv;
    char *dst_full = s3_full_key(dst, dst_key);
    char *src_full = s3_full_key(src, src_key);
    struct buf hdr = BUF_INIT(16 * 1024);
    int r = 0;
    if (!dst_full || !src_full || copy_source_header(src, src_full, &hdr)) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (src_ent->size > dst->copy_cutoff) {
        /* a multipart copy sets metadata anew: keep the source's mtime */
        struct storage_entry meta;
        memset(&meta, 0, sizeof(meta));
        if (src_ent->mtime_ns == STORAGE_MTIME_UNKNOWN) {
            r = storage_stat(src_st, src_key, &meta, e);
            if (r)
                goto out;
            src_ent = &meta;
        }
        r = copy_multipart(dst, dst_full, dst_key, hdr.data, src_ent, e);
        storage_entry_clear(&meta);
        goto out;
    }
    struct s3_kv h[] = {{"x-amz-copy-source", hdr.data}};
    struct s3_req req = {.method = "PUT", .key = dst_full, .headers = h, .nheaders = 1};
    char what[1200];
    snprintf(what, sizeof(what), "copying '%s' to '%s' on the server", src_key, dst_key);
    struct s3_xml_copy c;
    r = copy_request(dst, &req, what, &c, e);
out:
    buf_release(&hdr);
    free(dst_full);
    free(src_full);
    return r;
}
