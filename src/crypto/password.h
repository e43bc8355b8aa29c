/*
 * password.h - users' passwords and API tokens (the service's auth).
 *
 * Passwords: Argon2id (libsodium's crypto_pwhash_str, its "interactive"
 * limits: 2 passes over 64 MiB), stored as the standard encoded string
 * ("$argon2id$v=19$m=65536,t=2,p=1$..."). A login for a user that does not
 * exist verifies against a fixed dummy hash, so both answers take the same
 * time.
 *
 * API tokens: 256 random bits, shown once as "arca_" + base64url (43
 * characters); only their SHA-256 (hex) is stored, and a presented token is
 * looked up by that hash.
 */
#ifndef ARCA_CRYPTO_PASSWORD_H
#define ARCA_CRYPTO_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */
#define PASSWORD_MIN_LEN 12
#define TOKEN_PREFIX "arca_"
#define TOKEN_TEXT_LEN (sizeof(TOKEN_PREFIX) - 1 + 43)

/* ERR_USAGE, with a message that never repeats it, for a password shorter
 * than PASSWORD_MIN_LEN bytes or longer than 1024. */
int password_check_policy(const char *password, struct err *e);
/* Hash a password into out (PASSWORD_HASH_MAX bytes). */
int password_hash(const char *password, char out[PASSWORD_HASH_MAX], struct err *e);
/* Whether password matches hash. hash NULL (no such user): checked against
 * a dummy hash anyway, and false. */
bool password_verify(const char *hash, const char *password);
/* Whether hash was made with weaker limits than today's (re-hash at the
 * next login). */
bool password_needs_rehash(const char *hash);

/* A new random password for the initial admin (24 base64url characters,
 * 144 bits) into out (at least 25 bytes). */
void password_random(char *out);

/* A new API token: its text (out_text, TOKEN_TEXT_LEN + 1 bytes: give it to
 * the user once) and the hex SHA-256 to store (out_hash, 65 bytes). */
void token_new(char *out_text, char *out_hash);
/* The hex SHA-256 of a presented token; ERR_AUTH (no detail) when it does
 * not have a token's shape. */
int token_hash(const char *text, char out_hash[65], struct err *e);

#endif
