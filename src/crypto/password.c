/*
 * password.c - password hashes and API tokens (see password.h).
 */
#include "crypto/password.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define OPS crypto_pwhash_OPSLIMIT_INTERACTIVE
#define MEM crypto_pwhash_MEMLIMIT_INTERACTIVE

int password_check_policy(const char *password, struct err *e)
{
    size_t n = password ? strlen(password) : 0;
    if (n < PASSWORD_MIN_LEN)
        return err_set(e, ERR_USAGE, "the password is too short; use at least %d characters",
                       PASSWORD_MIN_LEN);
    if (n > 1024)
        return err_set(e, ERR_USAGE, "the password is too long; use at most 1024 characters");
    return 0;
}

int password_hash(const char *password, char out[PASSWORD_HASH_MAX], struct err *e)
{
    if (crypto_pwhash_str(out, password, strlen(password), OPS, MEM) != 0)
        return err_set(e, ERR_NOMEM, "out of memory hashing a password");
    return 0;
}

/* A hash of a password nobody has, made once: unknown users cost as much. */
static const char *dummy_hash(void)
{
    static char h[PASSWORD_HASH_MAX];
    static int made;
    if (!made) {
        char pw[25];
        password_random(pw);
        if (crypto_pwhash_str(h, pw, strlen(pw), OPS, MEM) == 0)
            made = 1;
        sodium_memzero(pw, sizeof(pw));
    }
    return h;
}

bool password_verify(const char *hash, const char *password)
{
    if (!password)
        password = "";
    if (!hash) {
        const char *d = dummy_hash();
        /* the same work as a real check; nobody has the dummy password, and
         * the answer is no whatever it says */
        if (d[0] && crypto_pwhash_str_verify(d, password, strlen(password)) == 0)
            return false;
        return false;
    }
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

bool password_needs_rehash(const char *hash)
{
    return crypto_pwhash_str_needs_rehash(hash, OPS, MEM) != 0;
}

void password_random(char *out)
{
    unsigned char raw[18];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, 25, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, len);
    sodium_bin2hex(out, 65, d, sizeof(d));
}

void token_new(char *out_text, char *out_hash)
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    size_t pl = strlen(TOKEN_PREFIX);
    memcpy(out_text, TOKEN_PREFIX, pl);
    sodium_bin2base64(out_text + pl, TOKEN_TEXT_LEN + 1 - pl, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    sha256_hex(out_text, strlen(out_text), out_hash);
}

int token_hash(const char *text, char out_hash[65], struct err *e)
{
    size_t pl = strlen(TOKEN_PREFIX);
    if (!text || strlen(text) != TOKEN_TEXT_LEN || memcmp(text, TOKEN_PREFIX, pl) != 0)
        return err_set(e, ERR_AUTH, "invalid token");
    for (const char *p = text + pl; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return err_set(e, ERR_AUTH, "invalid token");
    sha256_hex(text, TOKEN_TEXT_LEN, out_hash);
    return 0;
}
