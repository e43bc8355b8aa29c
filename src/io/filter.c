#include "io/filter.h"
#include "io/ratelimit.h"
#include "core/error.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct filter *filter_chain(struct filter *const *fs, size_t n)
{
    bool complete = n > 0;
    for (size_t i = 0; i < n; i++)
        complete = complete && fs[i] != NULL;
    if (!complete) {
        for (size_t i = 0; i < n; i++)
            if (fs[i]) {
                fs[i]->next = NULL;
                filter_chain_free(fs[i]);
            }
        return NULL;
    }
    for (size_t i = 0; i + 1 < n; i++)
        fs[i]->next = fs[i + 1];
    fs[n - 1]->next = NULL;
    return fs[0];
}

int filter_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    if (!f || !len)
        return 0;
    return f->ops->write(f, data, len, e);
}

int filter_pass(struct filter *f, const void *data, size_t len, struct err *e)
{
    return filter_write(f->next, data, len, e);
}

int filter_finish(struct filter *f, struct err *e)
{
    for (; f; f = f->next) {
        if (f->ops->finish) {
            int r = f->ops->finish(f, e);
            if (r)
                return r;
        }
    }
    return 0;
}

void filter_chain_free(struct filter *head)
{
    while (head) {
        struct filter *next = head->next;
        if (head->ops->free)
            head->ops->free(head);
        free(head);
        head = next;
    }
}

static struct filter *filter_alloc(const struct filter_ops *ops, void *state)
{
    struct filter *f = calloc(1, sizeof(*f));
    if (f) {
        f->ops = ops;
        f->state = state;
    }
    return f;
}

/* hash */

struct hash_state {
    EVP_MD_CTX *ctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len;
};

static int hash_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    struct hash_state *h = f->state;
    if (!EVP_DigestUpdate(h->ctx, data, len))
        return err_set(e, ERR_INTERNAL, "hash update failed");
    return filter_pass(f, data, len, e);
}

static int hash_finish(struct filter *f, struct err *e)
{
    struct hash_state *h = f->state;
    if (!EVP_DigestFinal_ex(h->ctx, h->digest, &h->len))
        return err_set(e, ERR_INTERNAL, "hash final failed");
    return 0;
}

static void hash_free(struct filter *f)
{
    struct hash_state *h = f->state;
    if (h) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
    }
}

static const struct filter_ops hash_ops = {"hash", hash_write, hash_finish, hash_free};

struct filter *filter_hash_new(enum hash_kind kind)
{
    struct hash_state *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || !EVP_DigestInit_ex(h->ctx, kind == HASH_MD5 ? EVP_md5() : EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    struct filter *f = filter_alloc(&hash_ops, h);
    if (!f) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
    }
    return f;
}

void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

void filter_hash_hex(const struct filter *f, char *out, size_t cap)
{
    const struct hash_state *h = f->state;
    if (cap < 2 * (size_t)h->len + 1) {
        if (cap)
            out[0] = '\0';
        return;
    }
    hex_encode(h->digest, h->len, out);
}

size_t filter_hash_raw(const struct filter *f, unsigned char *out, size_t cap)
{
    const struct hash_state *h = f->state;
    if (cap < h->len)
        return 0;
    memcpy(out, h->digest, h->len);
    return h->len;
}

/* counter */

static int counter_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    atomic_fetch_add((_Atomic uint64_t *)f->state, (uint64_t)len);
    return filter_pass(f, data, len, e);
}

static const struct filter_ops counter_ops = {"counter", counter_write, NULL, NULL};

struct filter *filter_counter_new(_Atomic uint64_t *counter)
{
    return filter_alloc(&counter_ops, counter);
}

/* rate limit */

static int ratelimit_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    int r = ratelimit_take(f->state, len, e);
    if (r)
        return r;
    return filter_pass(f, data, len, e);
}

static const struct filter_ops ratelimit_ops = {"ratelimit", ratelimit_write, NULL, NULL};

struct filter *filter_ratelimit_new(struct ratelimit *rl)
{
    return filter_alloc(&ratelimit_ops, rl);
}

/* sink */

struct sink_state {
    filter_sink_fn fn;
    void *ctx;
};

static int sink_write(struct filter *f, const void *data, size_t len, struct err *e)
{
    struct sink_state *s = f->state;
    return s->fn(s->ctx, data, len, e);
}

static void sink_free(struct filter *f)
{
    free(f->state);
}

static const struct filter_ops sink_ops = {"sink", sink_write, NULL, sink_free};

struct filter *filter_sink_new(filter_sink_fn fn, void *ctx)
{
    struct sink_state *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    s->fn = fn;
    s->ctx = ctx;
    struct filter *f = filter_alloc(&sink_ops, s);
    if (!f)
        free(s);
    return f;
}

/* one-shot helpers */

static void digest_once(const EVP_MD *md, const void *data, size_t len, unsigned char *out)
{
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, md, NULL);
}

void hash_sha256_raw(const void *data, size_t len, unsigned char out[32])
{
    digest_once(EVP_sha256(), data, len, out);
}

void hash_md5_raw(const void *data, size_t len, unsigned char out[16])
{
    digest_once(EVP_md5(), data, len, out);
}

void hash_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    hash_sha256_raw(data, len, d);
    hex_encode(d, 32, out);
}

void base64_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    if (cap < 4 * ((len + 2) / 3) + 1) {
        if (cap)
            out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}
