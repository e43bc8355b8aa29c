/*
 * s3_driver.c - the S3 storage driver: open, list, stat, remove, copy and
 * the root check. Reads live in s3_read.c, writes in s3_write.c.
 *
 * Listing pages are fetched one at a time (1,000 keys) and served from a
 * page-sized array, so memory is bounded by one page whatever the bucket
 * holds. The page body is kept until it is parsed because servers differ on
 * encoding-type=url: AWS encodes keys and says so in <EncodingType>, s3rver
 * ignores the parameter and sends raw keys; decoding raw keys would rename
 * every key holding '+' or '%'.
 */
#include "storage/s3/s3_internal.h"
#include "storage/s3/s3_xml.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int s3_share_init(struct s3 *s3);
void s3_share_free(struct s3 *s3);

#define S3_LIST_PAGE 1000
#define S3_LIST_BODY_MAX (32 * 1024 * 1024)

/* open */

static void s3_free(struct s3 *s3)
{
    if (!s3)
        return;
    free(s3->scheme);
    free(s3->host);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->region);
    free(s3->access_key_id);
    if (s3->secret_access_key) {
        explicit_bzero(s3->secret_access_key, strlen(s3->secret_access_key));
        free(s3->secret_access_key);
    }
    if (s3->session_token) {
        explicit_bzero(s3->session_token, strlen(s3->session_token));
        free(s3->session_token);
    }
    free(s3->ca_cert);
    free(s3->display);
    free(s3);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Split "scheme://host[:port][/]" and drop a default port, because the Host
 * header curl sends (and we sign) leaves it out. */
static int parse_endpoint(struct s3 *s3, const char *ep, struct err *e)
{
    const char *p = strstr(ep, "://");
    if (!p)
        return err_set(e, ERR_USAGE,
                       "endpoint '%s' needs a scheme; write it as https://host[:port]", ep);
    size_t sl = (size_t)(p - ep);
    if (!((sl == 4 && !strncasecmp(ep, "http", 4)) || (sl == 5 && !strncasecmp(ep, "https", 5))))
        return err_set(e, ERR_USAGE, "endpoint '%s' must start with http:// or https://", ep);
    s3->scheme = strndup(ep, sl);
    for (char *c = s3->scheme; c && *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *h = p + 3;
    size_t hl = strcspn(h, "/?#");
    const char *rest = h + hl;
    if (*rest == '/' && rest[1] == '\0')
        rest++;
    if (*rest)
        return err_set(
            e, ERR_USAGE,
            "endpoint '%s' must not have a path; put the bucket in the remote (s3://bucket/prefix)",
            ep);
    if (hl == 0 || memchr(h, '@', hl))
        return err_set(e, ERR_USAGE,
                       "endpoint '%s' has no host (or holds credentials, which belong in the "
                       "config file or environment)",
                       ep);
    s3->host = strndup(h, hl);
    if (!s3->scheme || !s3->host)
        return ERR_NOMEM;
    for (char *c = s3->host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    char *colon = strrchr(s3->host, ':');
    if (colon && !strchr(colon, ']')) {
        if ((!strcmp(s3->scheme, "http") && !strcmp(colon, ":80")) ||
            (!strcmp(s3->scheme, "https") && !strcmp(colon, ":443")))
            *colon = '\0';
    }
    return 0;
}

static bool host_is_aws(const char *host)
{
    size_t n = strlen(host);
    const char *suffix = ".amazonaws.com";
    size_t m = strlen(suffix);
    return n > m && !strcmp(host + n - m, suffix);
}

int s3_storage_open(const struct s3_options *o, const char *bucket, const char *prefix,
                    const char *display, struct storage **out, struct err *e)
{
    int r = 0;
    *out = NULL;
    struct s3 *s3 = calloc(1, sizeof(*s3));
    if (!s3)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (!o->access_key_id || !*o->access_key_id || !o->secret_access_key ||
        !*o->secret_access_key) {
        r = err_set(e, ERR_AUTH,
                    "no credentials for '%s'; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                    "access_key_id and secret_access_key in the remote's config section",
                    display);
        goto fail;
    }
    s3->region = strdup(o->region && *o->region ? o->region : "us-east-1");
    char aws_ep[256];
    const char *ep = o->endpoint;
    if (!ep || !*ep) {
        snprintf(aws_ep, sizeof(aws_ep), "https://s3.%s.amazonaws.com", s3->region);
        ep = aws_ep;
    }
    r = parse_endpoint(s3, ep, e);
    if (r)
        goto fail;
    s3->bucket = strdup(bucket);
    /* root prefix: "" or "dir/" */
    size_t pl = prefix ? strlen(prefix) : 0;
    while (pl && prefix[pl - 1] == '/')
        pl--;
    s3->prefix = malloc(pl + 2);
    if (s3->prefix) {
        memcpy(s3->prefix, prefix ? prefix : "", pl);
        if (pl)
            s3->prefix[pl++] = '/';
        s3->prefix[pl] = '\0';
    }
    s3->access_key_id = strdup(o->access_key_id);
    s3->secret_access_key = strdup(o->secret_access_key);
    s3->session_token =
        dup_or_null(o->session_token && *o->session_token ? o->session_token : NULL);
    s3->ca_cert = dup_or_null(o->ca_cert);
    if (o->ca_cert && access(o->ca_cert, R_OK) != 0) {
        r = err_set(e, ERR_CONFIG,
                    "cannot read CA certificate file '%s': %s; give a PEM file with --ca-cert",
                    o->ca_cert, strerror(errno));
        goto fail;
    }
    s3->display = strdup(display);
    if (!s3->region || !s3->bucket || !s3->prefix || !s3->access_key_id || !s3->secret_access_key ||
        !s3->display) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (o->path_style >= 0)
        s3->path_style = o->path_style != 0;
    else /* AWS wants virtual hosts; everything else (MinIO, R2, IPs) takes paths */
        s3->path_style = !host_is_aws(s3->host) || strchr(bucket, '.') != NULL;
    s3->insecure = o->insecure_skip_verify;
    s3->create_bucket = o->create_bucket;
    s3->etag_not_md5 = o->etag_not_md5;
    s3->copy_cutoff = o->copy_cutoff ? o->copy_cutoff : S3_MAX_SINGLE_COPY;
    if (s3->copy_cutoff < S3_MIN_PART_SIZE || s3->copy_cutoff > S3_MAX_SINGLE_COPY) {
        r = err_set(e, ERR_USAGE, "copy_cutoff must be between 5M and 5G");
        goto fail;
    }
    s3->part_size = o->part_size ? o->part_size : 16u * 1024 * 1024;
    if (s3->part_size < S3_MIN_PART_SIZE) {
        r = err_set(e, ERR_USAGE,
                    "part size %llu is below S3's minimum of 5 MiB; use --s3-part-size 5M or more",
                    (unsigned long long)s3->part_size);
        goto fail;
    }
    if (s3->part_size > 5ull * 1024 * 1024 * 1024) {
        r = err_set(e, ERR_USAGE, "part size is above S3's maximum of 5 GiB");
        goto fail;
    }
    s3->upload_concurrency = o->upload_concurrency > 0 ? o->upload_concurrency : 4;
    s3->checksum = o->checksum;
    s3->max_attempts = o->max_attempts > 0 ? o->max_attempts : 10;
    s3->retry_deadline = o->retry_deadline > 0 ? o->retry_deadline : 30.0;
    s3->connect_timeout_ms = (long)((o->connect_timeout > 0 ? o->connect_timeout : 10.0) * 1000);
    s3->low_speed_time = (long)(o->low_speed_time > 0 ? o->low_speed_time : 60);
    if (s3_share_init(s3)) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    log_add_secret(s3->secret_access_key);
    if (s3->session_token)
        log_add_secret(s3->session_token);

    char endpoint_id[1024];
    snprintf(endpoint_id, sizeof(endpoint_id), "s3 %s://%s %s", s3->scheme, s3->host,
             s3->access_key_id);
    *out = storage_new(&s3_driver, display, endpoint_id, s3);
    if (!*out) {
        s3_share_free(s3);
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    return 0;
fail:
    s3_free(s3);
    return r;
}

static void s3_close(struct storage *st)
{
    struct s3 *s3 = st->priv;
    s3_share_free(s3);
    s3_free(s3);
}

/* listing */

struct s3_list {
    struct s3 *s3;
    char *full_prefix;
    size_t strip; /* length of the root prefix to cut from keys */
    char *token;  /* continuation token, owned */
    bool last_page;
    struct storage_entry page[S3_LIST_PAGE];
    size_t n, idx;
    size_t page_cap_overflow;
    struct buf body;
    struct err cb_err;
};

static void list_page_clear(struct s3_list *l)
{
    for (size_t i = l->idx; i < l->n; i++)
        storage_entry_clear(&l->page[i]);
    l->n = l->idx = 0;
}

static int list_body(void *ctx, const char *data, size_t len)
{
    struct s3_list *l = ctx;
    return buf_append(&l->body, data, len) ? ERR_PROTO : 0;
}

static void list_attempt(void *ctx)
{
    struct s3_list *l = ctx;
    buf_reset(&l->body);
}

static bool is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s))
            return false;
    return true;
}

static int list_entry_cb(void *ctx, const struct s3_list_entry *ent, struct err *e)
{
    struct s3_list *l = ctx;
    if (ent->is_prefix)
        return 0;
    if (ent->key_len < l->strip || memcmp(ent->key, l->s3->prefix, l->strip) != 0)
        return err_set(e, ERR_PROTO, "listing of '%s' returned key '%s' outside the prefix",
                       l->s3->display, ent->key);
    const char *rel = ent->key + l->strip;
    size_t rl = ent->key_len - l->strip;
    /* "folder/" marker objects made by consoles are not files */
    if (rl == 0 || rel[rl - 1] == '/')
        return 0;
    if (l->n >= S3_LIST_PAGE)
        return err_set(e, ERR_PROTO, "listing page of '%s' holds more than %d keys", l->s3->display,
                       S3_LIST_PAGE);
    struct storage_entry *se = &l->page[l->n];
    memset(se, 0, sizeof(*se));
    se->key = strndup(rel, rl);
    if (!se->key)
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", l->s3->display);
    se->type = STORAGE_TYPE_FILE;
    se->size = ent->size;
    se->mtime_ns = STORAGE_MTIME_UNKNOWN;
    if (ent->mtime_ns != S3_XML_TIME_UNKNOWN)
        se->listed_modified_ns = ent->mtime_ns;
    if (is_hex32(ent->etag) && !l->s3->etag_not_md5) {
        for (int i = 0; i < 32; i++)
            se->md5[i] = (char)tolower((unsigned char)ent->etag[i]);
        se->md5[32] = '\0';
    }
    l->n++;
    return 0;
}

static int list_fetch(struct s3_list *l, struct err *e)
{
    int r;
    struct s3 *s3 = l->s3;
    struct s3_kv q[5];
    size_t nq = 0;
    q[nq++] = (struct s3_kv){"list-type", "2"};
    q[nq++] = (struct s3_kv){"prefix", l->full_prefix};
    q[nq++] = (struct s3_kv){"encoding-type", "url"};
    q[nq++] = (struct s3_kv){"max-keys", "1000"};
    if (l->token)
        q[nq++] = (struct s3_kv){"continuation-token", l->token};
    struct s3_req req = {.method = "GET",
                         .query = q,
                         .nquery = nq,
                         .on_body = list_body,
                         .on_attempt = list_attempt,
                         .ctx = l};
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[512];
    snprintf(what, sizeof(what), "listing '%s'", s3->display);
    r = s3_request(s3, &req, &resp, what, e);
    s3_resp_release(&resp);
    if (r)
        return r;

    bool encoded =
        l->body.len && memmem(l->body.data, l->body.len, "<EncodingType>url</EncodingType>",
                              strlen("<EncodingType>url</EncodingType>")) != NULL;
    struct s3_list_parser *p = s3_list_parser_new(encoded, list_entry_cb, l);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of memory listing '%s'", s3->display);
    struct s3_list_result res;
    memset(&res, 0, sizeof(res));
    r = s3_list_parser_feed(p, l->body.data ? l->body.data : "", l->body.len, e);
    if (!r)
        r = s3_list_parser_finish(p, &res, e);
    s3_list_parser_free(p);
    buf_reset(&l->body);
    if (r) {
        list_page_clear(l);
        s3_list_result_clear(&res);
        return err_wrap(e, "%s", what);
    }
    if (res.is_error) {
        r = s3_error_from(s3, 200, res.error.code, res.error.message, 0, NULL, 1, 0, what, e);
        list_page_clear(l);
        s3_list_result_clear(&res);
        return r;
    }
    free(l->token);
    l->token = NULL;
    if (res.is_truncated) {
        l->token = res.next_token;
        res.next_token = NULL;
    } else {
        l->last_page = true;
    }
    s3_list_result_clear(&res);
    return 0;
}

static int s3_list_open(struct storage *st, const char *prefix, void **state, struct err *e)
{
    struct s3 *s3 = st->priv;
    struct s3_list *l = calloc(1, sizeof(*l));
    if (!l)
        return err_set(e, ERR_NOMEM, "out of memory");
    l->s3 = s3;
    l->full_prefix = s3_full_key(s3, prefix);
    l->strip = strlen(s3->prefix);
    buf_init(&l->body, S3_LIST_BODY_MAX);
    if (!l->full_prefix) {
        free(l);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    *state = l;
    return 0;
}

static int s3_list_next(void *state, struct storage_entry *ent, struct err *e)
{
    struct s3_list *l = state;
    while (l->idx >= l->n) {
        l->n = l->idx = 0;
        if (l->last_page)
            return 0;
        int r = list_fetch(l, e);
        if (r)
            return r;
    }
    *ent = l->page[l->idx];
    memset(&l->page[l->idx], 0, sizeof(l->page[l->idx]));
    l->idx++;
    return 1;
}

static void s3_list_close(void *state)
{
    struct s3_list *l = state;
    list_page_clear(l);
    free(l->full_prefix);
    free(l->token);
    buf_release(&l->body);
    free(l);
}

/* stat */

static void entry_from_resp(struct storage_entry *ent, const struct s3_resp *resp)
{
    ent->type = STORAGE_TYPE_FILE;
    ent->size = resp->total_size >= 0 ? (uint64_t)resp->total_size : 0;
    ent->mtime_ns = resp->mtime_ns;
    if (is_hex32(resp->etag) && !resp->etag_not_md5) {
        for (int i = 0; i < 32; i++)
            ent->md5[i] = (char)tolower((unsigned char)resp->etag[i]);
        ent->md5[32] = '\0';
    }
}

void s3_entry_from_resp(struct storage_entry *ent, const struct s3_resp *resp);
void s3_entry_from_resp(struct storage_entry *ent, const struct s3_resp *resp)
{
    entry_from_resp(ent, resp);
}

static int s3_stat(struct storage *st, const char *key, struct storage_entry *ent, struct err *e)
{
    struct s3 *s3 = st->priv;
    char *full = s3_full_key(s3, key);
    if (!full)
        return err_set(e, ERR_NOMEM, "out of memory");
    struct s3_req req = {.method = "HEAD", .key = full, .no_body_response = true};
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[1200];
    snprintf(what, sizeof(what), "reading metadata of '%s' in '%s'", key, s3->display);
    int r = s3_request(s3, &req, &resp, what, e);
    if (!r) {
        entry_from_resp(ent, &resp);
        ent->key = strdup(key);
        if (!ent->key)
            r = err_set(e, ERR_NOMEM, "out of memory");
    }
    s3_resp_release(&resp);
    free(full);
    return r;
}

/* remove */

static int s3_remove(struct storage *st, const char *key, struct err *e)
{
    struct s3 *s3 = st->priv;
    char *full = s3_full_key(s3, key);
    if (!full)
        return err_set(e, ERR_NOMEM, "out of memory");
    struct s3_req req = {.method = "DELETE", .key = full};
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[1200];
    snprintf(what, sizeof(what), "deleting '%s' from '%s'", key, s3->display);
    int r = s3_request(s3, &req, &resp, what, e);
    s3_resp_release(&resp);
    free(full);
    return r;
}

/* root check */

static int s3_create_bucket(struct s3 *s3, struct err *e)
{
    struct buf body = BUF_INIT(4096);
    int r = 0;
    if (strcmp(s3->region, "us-east-1") && strcmp(s3->region, "auto"))
        r = buf_printf(
            &body,
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
            s3->region);
    if (r) {
        buf_release(&body);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    struct s3_req req = {.method = "PUT", .body = body.data, .body_len = body.len};
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[600];
    snprintf(what, sizeof(what), "creating bucket '%s'", s3->bucket);
    r = s3_request(s3, &req, &resp, what, e);
    if (r && resp.s3_code[0] && !strcmp(resp.s3_code, "BucketAlreadyOwnedByYou"))
        r = 0;
    s3_resp_release(&resp);
    buf_release(&body);
    if (!r)
        log_info("created bucket '%s'", s3->bucket);
    return r;
}

static int s3_check_root(struct storage *st, bool for_write, bool create, struct err *e)
{
    (void)for_write;
    struct s3 *s3 = st->priv;
    struct s3_kv q[] = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", s3->prefix}};
    struct s3_req req = {.method = "GET", .query = q, .nquery = 3};
    struct s3_resp resp;
    s3_resp_init(&resp);
    char what[600];
    snprintf(what, sizeof(what), "opening '%s'", s3->display);
    int r = s3_request(s3, &req, &resp, what, e);
    bool no_bucket = r == ERR_NOT_FOUND && !strcmp(resp.s3_code, "NoSuchBucket");
    s3_resp_release(&resp);
    if (r == ERR_NOT_FOUND && !no_bucket)
        r = err_set(
            e, ERR_NOT_FOUND,
            "%s: bucket '%s' does not exist at '%s://%s'; create it or pass --create-bucket", what,
            s3->bucket, s3->scheme, s3->host);
    if (r == ERR_NOT_FOUND && create && s3->create_bucket) {
        err_clear(e);
        return s3_create_bucket(s3, e);
    }
    return r;
}

/* server-side copy */

int s3_copy_from(struct storage *dst, const char *dst_key, struct storage *src, const char *src_key,
                 const struct storage_entry *src_ent, struct err *e);

int s3_read_open(struct storage *st, const char *key, uint64_t offset, int64_t length, void **state,
                 struct storage_entry *ent, struct err *e);
int s3_read(void *state, void *buf, size_t cap, size_t *got, struct err *e);
void s3_read_close(void *state);
int s3_write_open(struct storage *st, const char *key, const struct storage_write_opts *opts,
                  void **state, struct err *e);
int s3_write(void *state, const void *data, size_t len, struct err *e);
int s3_write_commit(void *state, struct err *e);
void s3_write_abort(void *state);

const struct storage_driver s3_driver = {
    .version = STORAGE_DRIVER_VERSION,
    .name = "s3",
    .features = STORAGE_FEATURE_SERVER_COPY | STORAGE_FEATURE_RANGE_READ | STORAGE_FEATURE_MTIME,
    .hashes = STORAGE_HASH_MD5,
    .list_open = s3_list_open,
    .list_next = s3_list_next,
    .list_close = s3_list_close,
    .stat = s3_stat,
    .read_open = s3_read_open,
    .read = s3_read,
    .read_close = s3_read_close,
    .write_open = s3_write_open,
    .write = s3_write,
    .write_commit = s3_write_commit,
    .write_abort = s3_write_abort,
    .remove = s3_remove,
    .copy_from = s3_copy_from,
    .check_root = s3_check_root,
    .close = s3_close,
};
