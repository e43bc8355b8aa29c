/*
 * envelope.h - secrets at rest (the service's credentials), by envelope
 * encryption with libsodium.
 *
 *   master key (32 bytes: a key file or ARCA_MASTER_KEY)
 *     wraps  data keys (32 random bytes each, stored wrapped)
 *              seal  secrets (XChaCha20-Poly1305)
 *
 * Every sealed value carries associated data naming what it belongs to
 * (a data key: its id; a secret: tenant, table, record, field), so a
 * ciphertext copied to another row, tenant or field does not open.
 * Rotating the master key re-wraps the data keys only.
 *
 * Text form of a master key: "arca-master-key-v1:" followed by the standard
 * base64 of the 32 bytes (a key file holds that one line, mode 0600).
 * Sealed bytes: a version byte (1), a 24-byte nonce, the ciphertext and its
 * 16-byte tag. Key material lives in sodium_malloc'ed, locked memory and is
 * wiped when freed; plaintexts handed out must be freed with
 * envelope_free().
 */
#ifndef ARCA_CRYPTO_ENVELOPE_H
#define ARCA_CRYPTO_ENVELOPE_H

#include <stddef.h>

#include "core/error.h"

#define ENVELOPE_KEY_BYTES 32
#define ENVELOPE_KEY_PREFIX "arca-master-key-v1:"

struct envelope_key; /* a master key or a data key */

/* libsodium's init; once per process (safe to call again). */
int envelope_init(struct err *e);

/* A new random key. NULL when out of (locked) memory. */
struct envelope_key *envelope_key_random(void);
void envelope_key_free(struct envelope_key *k);

/* Parse the text form (surrounding whitespace ignored). ERR_CONFIG with a
 * message naming `what` (a path, "ARCA_MASTER_KEY") and never the text. */
int envelope_key_parse(const char *text, const char *what, struct envelope_key **out,
                       struct err *e);
/* The text form of k into out (at least ENVELOPE_KEY_TEXT_LEN + 1 bytes). */
#define ENVELOPE_KEY_TEXT_LEN (sizeof(ENVELOPE_KEY_PREFIX) - 1 + 44)
void envelope_key_text(const struct envelope_key *k, char *out);

/* A key file: read one (refused, ERR_CONFIG, when group or others may read
 * or write it, or it is not a regular file), or create one that must not
 * exist yet (mode 0600, written whole and synced before it is renamed into
 * place). */
int envelope_key_file_read(const char *path, struct envelope_key **out, struct err *e);
int envelope_key_file_create(const char *path, const struct envelope_key *k, struct err *e);

/* Seal len bytes of plain under key with associated data ad; *out is
 * malloc'ed (envelope_sealed_len(len) bytes). */
size_t envelope_sealed_len(size_t plain_len);
int envelope_seal(const struct envelope_key *key, const char *ad, const void *plain, size_t len,
                  unsigned char **out, size_t *out_len, struct err *e);
/* Open what envelope_seal made with the same key and ad. A wrong key, other
 * ad, or any changed byte is ERR_CORRUPT naming `what` (never the data).
 * *plain is sodium_malloc'ed and NUL-terminated after *plain_len bytes:
 * free it with envelope_free(). */
int envelope_open(const struct envelope_key *key, const char *ad, const unsigned char *sealed,
                  size_t len, const char *what, char **plain, size_t *plain_len, struct err *e);
void envelope_free(char *plain);

/* Data keys: wrap a data key under the master key (ad "arca-dek-v1:" +
 * dek_id) and unwrap it again. */
int envelope_wrap(const struct envelope_key *master, const char *dek_id,
                  const struct envelope_key *dek, unsigned char **out, size_t *out_len,
                  struct err *e);
int envelope_unwrap(const struct envelope_key *master, const char *dek_id,
                    const unsigned char *wrapped, size_t len, struct envelope_key **dek,
                    struct err *e);

/* The associated data of a secret: "arca-secret-v1|tenant=..|table=..|
 * record=..|field=..". Values must not contain '|' (ERR_INTERNAL). */
int envelope_secret_ad(char *out, size_t cap, const char *tenant, const char *table,
                       const char *record, const char *field, struct err *e);

#endif
