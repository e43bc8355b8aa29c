/*
 * envelope.c - secrets at rest (see envelope.h).
 */
#include "crypto/envelope.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_VERSION 1
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

struct envelope_key {
    unsigned char k[ENVELOPE_KEY_BYTES];
};

int envelope_init(struct err *e)
{
    if (sodium_init() < 0)
        return err_set(e, ERR_INTERNAL, "libsodium cannot start (no randomness source?)");
    return 0;
}

struct envelope_key *envelope_key_random(void)
{
    struct envelope_key *k = sodium_malloc(sizeof(*k));
    if (k)
        crypto_aead_xchacha20poly1305_ietf_keygen(k->k);
    return k;
}

void envelope_key_free(struct envelope_key *k)
{
    if (k)
        sodium_free(k); /* wipes it */
}

int envelope_key_parse(const char *text, const char *what, struct envelope_key **out, struct err *e)
{
    *out = NULL;
    size_t pl = strlen(ENVELOPE_KEY_PREFIX);
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    size_t n = strlen(text);
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                 text[n - 1] == '\r'))
        n--;
    if (n < pl || memcmp(text, ENVELOPE_KEY_PREFIX, pl) != 0)
        return err_set(e, ERR_CONFIG,
                       "%s does not hold an arca master key (it must start with '%s'); give "
                       "the key the data directory was created with",
                       what, ENVELOPE_KEY_PREFIX);
    struct envelope_key *k = sodium_malloc(sizeof(*k));
    if (!k)
        return err_set(e, ERR_NOMEM, "out of locked memory for a key");
    size_t got = 0;
    const char *end = NULL;
    if (sodium_base642bin(k->k, sizeof(k->k), text + pl, n - pl, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != ENVELOPE_KEY_BYTES || end != text + n) {
        envelope_key_free(k);
        return err_set(e, ERR_CONFIG,
                       "%s: the master key is not %d bytes in base64 after '%s'; it was "
                       "damaged or cut",
                       what, ENVELOPE_KEY_BYTES, ENVELOPE_KEY_PREFIX);
    }
    *out = k;
    return 0;
}

void envelope_key_text(const struct envelope_key *k, char *out)
{
    size_t pl = strlen(ENVELOPE_KEY_PREFIX);
    memcpy(out, ENVELOPE_KEY_PREFIX, pl);
    sodium_bin2base64(out + pl, ENVELOPE_KEY_TEXT_LEN + 1 - pl, k->k, sizeof(k->k),
                      sodium_base64_VARIANT_ORIGINAL);
}

int envelope_key_file_read(const char *path, struct envelope_key **out, struct err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_CONFIG,
                       "cannot read the master key file '%s': %s", path, strerror(errno));
    struct stat sb;
    char *buf = NULL;
    int r = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        r = err_set(e, ERR_CONFIG, "the master key file '%s' is not a regular file", path);
    else if (sb.st_mode & 077)
        r = err_set(e, ERR_CONFIG,
                    "the master key file '%s' may be read or written by others (mode %04o); "
                    "chmod 600 it",
                    path, (unsigned)(sb.st_mode & 07777));
    else if (sb.st_size > 256)
        r = err_set(e, ERR_CONFIG, "the master key file '%s' is too large to be a key", path);
    else if (!(buf = sodium_malloc((size_t)sb.st_size + 1)))
        r = err_set(e, ERR_NOMEM, "out of locked memory for a key");
    if (!r) {
        ssize_t got = read(fd, buf, (size_t)sb.st_size);
        if (got != (ssize_t)sb.st_size)
            r = err_set(e, ERR_CONFIG, "cannot read the master key file '%s'", path);
        else {
            buf[got] = '\0';
            char what[1100];
            snprintf(what, sizeof(what), "the master key file '%s'", path);
            r = envelope_key_parse(buf, what, out, e);
        }
    }
    if (buf)
        sodium_free(buf);
    close(fd);
    return r;
}

int envelope_key_file_create(const char *path, const struct envelope_key *k, struct err *e)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return err_set(e, ERR_USAGE, "the master key path '%s' is too long", path);
    struct stat sb;
    if (lstat(path, &sb) == 0)
        return err_set(e, ERR_EXISTS, "'%s' exists already; a master key is never overwritten",
                       path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(e, ERR_IO, "cannot create the master key file '%s': %s", path,
                       strerror(errno));
    char text[ENVELOPE_KEY_TEXT_LEN + 2];
    envelope_key_text(k, text);
    size_t n = strlen(text);
    text[n++] = '\n';
    int r = 0;
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0)
        r = err_set(e, ERR_IO, "cannot write the master key file '%s': %s", path, strerror(errno));
    sodium_memzero(text, sizeof(text));
    close(fd);
    /* link, not rename: never replaces a key that appeared meanwhile */
    if (!r && link(tmp, path) != 0)
        r = err_set(e, errno == EEXIST ? ERR_EXISTS : ERR_IO,
                    "cannot create the master key file '%s': %s", path, strerror(errno));
    unlink(tmp);
    return r;
}

size_t envelope_sealed_len(size_t plain_len)
{
    return 1 + NONCE_BYTES + plain_len + TAG_BYTES;
}

int envelope_seal(const struct envelope_key *key, const char *ad, const void *plain, size_t len,
                  unsigned char **out, size_t *out_len, struct err *e)
{
    size_t n = envelope_sealed_len(len);
    unsigned char *s = malloc(n);
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory sealing a secret");
    s[0] = SEAL_VERSION;
    randombytes_buf(s + 1, NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(s + 1 + NONCE_BYTES, &clen, plain, len,
                                               (const unsigned char *)ad, strlen(ad), NULL, s + 1,
                                               key->k);
    *out = s;
    *out_len = 1 + NONCE_BYTES + (size_t)clen;
    return 0;
}

int envelope_open(const struct envelope_key *key, const char *ad, const unsigned char *sealed,
                  size_t len, const char *what, char **plain, size_t *plain_len, struct err *e)
{
    *plain = NULL;
    *plain_len = 0;
    if (len < envelope_sealed_len(0) || sealed[0] != SEAL_VERSION)
        return err_set(e, ERR_CORRUPT, "%s is not a sealed secret of a version this arca reads",
                       what);
    size_t clen = len - 1 - NONCE_BYTES;
    char *p = sodium_malloc(clen - TAG_BYTES + 1);
    if (!p)
        return err_set(e, ERR_NOMEM, "out of locked memory opening %s", what);
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            (unsigned char *)p, &mlen, NULL, sealed + 1 + NONCE_BYTES, clen,
            (const unsigned char *)ad, strlen(ad), sealed + 1, key->k) != 0) {
        sodium_free(p);
        return err_set(e, ERR_CORRUPT,
                       "%s does not open with this key: a wrong master key, or the value was "
                       "changed or copied from another record",
                       what);
    }
    p[mlen] = '\0';
    *plain = p;
    *plain_len = (size_t)mlen;
    return 0;
}

void envelope_free(char *plain)
{
    if (plain)
        sodium_free(plain);
}

#define DEK_AD_PREFIX "arca-dek-v1:"

int envelope_wrap(const struct envelope_key *master, const char *dek_id,
                  const struct envelope_key *dek, unsigned char **out, size_t *out_len,
                  struct err *e)
{
    char ad[256];
    if (snprintf(ad, sizeof(ad), DEK_AD_PREFIX "%s", dek_id) >= (int)sizeof(ad))
        return err_set(e, ERR_INTERNAL, "data key id '%s' is too long", dek_id);
    return envelope_seal(master, ad, dek->k, sizeof(dek->k), out, out_len, e);
}

int envelope_unwrap(const struct envelope_key *master, const char *dek_id,
                    const unsigned char *wrapped, size_t len, struct envelope_key **dek,
                    struct err *e)
{
    *dek = NULL;
    char ad[256], what[300];
    if (snprintf(ad, sizeof(ad), DEK_AD_PREFIX "%s", dek_id) >= (int)sizeof(ad))
        return err_set(e, ERR_INTERNAL, "data key id '%s' is too long", dek_id);
    snprintf(what, sizeof(what), "data key '%s'", dek_id);
    char *p;
    size_t n;
    int r = envelope_open(master, ad, wrapped, len, what, &p, &n, e);
    if (r)
        return r;
    struct envelope_key *k = n == ENVELOPE_KEY_BYTES ? sodium_malloc(sizeof(*k)) : NULL;
    if (k)
        memcpy(k->k, p, ENVELOPE_KEY_BYTES);
    envelope_free(p);
    if (!k)
        return err_set(e, n == ENVELOPE_KEY_BYTES ? ERR_NOMEM : ERR_CORRUPT,
                       "%s did not unwrap to a key", what);
    *dek = k;
    return 0;
}

int envelope_secret_ad(char *out, size_t cap, const char *tenant, const char *table,
                       const char *record, const char *field, struct err *e)
{
    const char *v[] = {tenant, table, record, field};
    for (int i = 0; i < 4; i++)
        if (!v[i] || strchr(v[i], '|'))
            return err_set(e, ERR_INTERNAL, "a secret's binding must not hold '|'");
    if (snprintf(out, cap, "arca-secret-v1|tenant=%s|table=%s|record=%s|field=%s", tenant, table,
                 record, field) >= (int)cap)
        return err_set(e, ERR_INTERNAL, "a secret's binding is too long");
    return 0;
}
