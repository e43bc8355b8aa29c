/*
 * sftp_hostkey.c - known_hosts lookups, fingerprints, private key
 * inspection.
 *
 * known_hosts is read here rather than by libssh2's knownhost API so that
 * arca can tell "unknown host" from "changed key" (and say where the other
 * key is), honour @revoked, skip lines it cannot use (certificates, key
 * types libssh2 lacks) instead of failing on them, and learn which key
 * types are known for a host before the handshake, as OpenSSH does, so the
 * server presents a key we can check.
 *
 * Format (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): [@marker] patterns type
 * base64-key [comment]. Patterns are comma-separated host names or
 * addresses with '*' and '?' wildcards, "!" negation, "[host]:port" for
 * ports other than 22, or hashed "|1|base64(salt)|base64(HMAC-SHA1(salt,
 * name))".
 */
#include "storage/sftp/sftp_internal.h"

#include <errno.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decode standard base64 (whitespace ignored, padding optional) into out.
 * Returns the length, or -1 on bad input or when out is too small. */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else if (c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == cap)
                return -1;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)len;
}

void sftp_fingerprint(const unsigned char *blob, size_t len, char *out, size_t cap)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned char b64[64];
    SHA256(blob, len, md);
    int n = EVP_EncodeBlock(b64, md, sizeof(md));
    while (n > 0 && b64[n - 1] == '=')
        n--;
    snprintf(out, cap, "SHA256:%.*s", n, (const char *)b64);
}

/* OpenSSH's wildcards: '*' any run, '?' one character, case-insensitive;
 * everything else literal (so "[host]:port" matches itself). */
static bool wild_match(const char *pat, const char *s)
{
    for (;; pat++, s++) {
        if (*pat == '*') {
            while (*pat == '*')
                pat++;
            if (!*pat)
                return true;
            for (; *s; s++)
                if (wild_match(pat, s))
                    return true;
            return false;
        }
        if (!*pat)
            return !*s;
        if (!*s)
            return false;
        if (*pat != '?' && tolower((unsigned char)*pat) != tolower((unsigned char)*s))
            return false;
    }
}

/* Does one (non-negated) pattern match the lookup name? */
static bool pattern_match(const char *pat, size_t plen, const char *name)
{
    char buf[1024];
    if (plen >= sizeof(buf))
        return false;
    memcpy(buf, pat, plen);
    buf[plen] = '\0';
    if (!strncmp(buf, "|1|", 3)) {
        char *bar = strchr(buf + 3, '|');
        unsigned char salt[64], want[64], got[EVP_MAX_MD_SIZE];
        unsigned int glen = 0;
        if (!bar)
            return false;
        long sl = b64_decode(buf + 3, (size_t)(bar - buf - 3), salt, sizeof(salt));
        long wl = b64_decode(bar + 1, strlen(bar + 1), want, sizeof(want));
        if (sl <= 0 || wl != 20)
            return false;
        if (!HMAC(EVP_sha1(), salt, (int)sl, (const unsigned char *)name, strlen(name), got,
                  &glen) ||
            glen != 20)
            return false;
        return memcmp(got, want, 20) == 0;
    }
    return wild_match(buf, name);
}

/* The host field matches when a pattern matches and no negated one does. */
static bool hosts_match(const char *field, size_t flen, const char *name)
{
    bool hit = false;
    const char *s = field, *end = field + flen;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *pe = comma ? comma : end;
        bool neg = *s == '!';
        const char *ps = neg ? s + 1 : s;
        if (pe > ps && pattern_match(ps, (size_t)(pe - ps), name)) {
            if (neg)
                return false;
            hit = true;
        }
        s = pe + 1;
    }
    return hit;
}

static void append_type(char *types, size_t cap, const char *t, size_t tl)
{
    size_t have = strlen(types);
    /* already listed? */
    for (const char *s = types; *s;) {
        const char *c = strchr(s, ',');
        size_t l = c ? (size_t)(c - s) : strlen(s);
        if (l == tl && !memcmp(s, t, tl))
            return;
        s += l + (c ? 1 : 0);
    }
    if (have + tl + 2 > cap)
        return;
    if (have)
        types[have++] = ',';
    memcpy(types + have, t, tl);
    types[have + tl] = '\0';
}

/* Next whitespace-separated field of line at *s; false at the end. */
static bool next_field(const char **s, const char **f, size_t *n)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '\n' || *p == '#')
        return false;
    const char *q = p + strcspn(p, " \t\r\n");
    *f = p;
    *n = (size_t)(q - p);
    *s = q;
    return true;
}

int sftp_known_hosts_check(const char *file, const char *host, int port, const char *type,
                           const unsigned char *blob, size_t blob_len,
                           enum sftp_hostkey_result *result, char *where, size_t where_cap,
                           char *types, size_t types_cap, struct err *e)
{
    char name[600];
    if (port == 22)
        snprintf(name, sizeof(name), "%s", host);
    else
        snprintf(name, sizeof(name), "[%s]:%d", host, port);

    FILE *f = fopen(file, "re");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return err_set(e, ERR_IO, "cannot read known_hosts file '%s': %s", file, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    bool found = false, revoked = false;
    unsigned char *kb = NULL;
    size_t kcap = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        const char *s = line, *fld, *hostsf, *typef, *keyf;
        size_t n, hn, tn, kn;
        if (!next_field(&s, &fld, &n))
            continue;
        bool is_revoked = false;
        if (fld[0] == '@') {
            if (n == 8 && !memcmp(fld, "@revoked", 8))
                is_revoked = true;
            else
                continue; /* @cert-authority: certificates are not used */
            if (!next_field(&s, &fld, &n))
                continue;
        }
        hostsf = fld;
        hn = n;
        if (!next_field(&s, &typef, &tn) || !next_field(&s, &keyf, &kn))
            continue;
        if (!hosts_match(hostsf, hn, name))
            continue;
        if (!is_revoked && types)
            append_type(types, types_cap, typef, tn);
        if (!type)
            continue;
        if (kcap < kn) {
            unsigned char *nk = realloc(kb, kn);
            if (!nk) {
                free(kb);
                free(line);
                fclose(f);
                return err_set(e, ERR_NOMEM, "out of memory reading '%s'", file);
            }
            kb = nk;
            kcap = kn;
        }
        long kl = b64_decode(keyf, kn, kb, kcap);
        bool same_key = kl >= 0 && (size_t)kl == blob_len && !memcmp(kb, blob, blob_len) &&
                        strlen(type) == tn && !memcmp(typef, type, tn);
        if (is_revoked) {
            if (same_key)
                revoked = true;
            continue;
        }
        if (same_key) {
            found = true;
        } else if (where && !where[0]) {
            snprintf(where, where_cap, "%s:%d", file, lineno);
        }
    }
    free(kb);
    free(line);
    fclose(f);
    if (!type)
        return 0;
    if (revoked)
        *result = HOSTKEY_REVOKED;
    else if (found && *result != HOSTKEY_REVOKED)
        *result = HOSTKEY_OK;
    else if (where && where[0] && *result == HOSTKEY_UNKNOWN)
        *result = HOSTKEY_CHANGED;
    return 0;
}

/* ---- private keys ------------------------------------------------------ */

static bool get_string(const unsigned char **p, const unsigned char *end, const unsigned char **s,
                       uint32_t *n)
{
    if (end - *p < 4)
        return false;
    uint32_t l =
        ((uint32_t)(*p)[0] << 24) | ((uint32_t)(*p)[1] << 16) | ((uint32_t)(*p)[2] << 8) | (*p)[3];
    *p += 4;
    if ((size_t)(end - *p) < l)
        return false;
    *s = *p;
    *n = l;
    *p += l;
    return true;
}

void sftp_key_inspect(const char *pem, size_t len, char *type, size_t type_cap, bool *encrypted)
{
    static const char openssh[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
    type[0] = '\0';
    *encrypted = false;
    const char *b = memmem(pem, len, "-----BEGIN ", 11);
    if (!b)
        return;
    size_t rest = len - (size_t)(b - pem);
    if (rest > 30 && !memcmp(b, "-----BEGIN RSA PRIVATE KEY-----", 31)) {
        snprintf(type, type_cap, "ssh-rsa");
        *encrypted = memmem(b, rest, "ENCRYPTED", 9) != NULL;
        return;
    }
    if (rest > 29 && !memcmp(b, "-----BEGIN EC PRIVATE KEY-----", 30)) {
        snprintf(type, type_cap, "ecdsa");
        *encrypted = memmem(b, rest, "ENCRYPTED", 9) != NULL;
        return;
    }
    if (rest > 36 && !memcmp(b, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37)) {
        *encrypted = true;
        return;
    }
    if (rest <= sizeof(openssh) - 1 || memcmp(b, openssh, sizeof(openssh) - 1))
        return;
    const char *body = b + sizeof(openssh) - 1;
    const char *stop = memmem(body, len - (size_t)(body - pem), "-----END", 8);
    if (!stop)
        return;
    size_t cap = (size_t)(stop - body);
    unsigned char *raw = malloc(cap + 1);
    if (!raw)
        return;
    long n = b64_decode(body, cap, raw, cap);
    static const char magic[] = "openssh-key-v1";
    if (n > (long)sizeof(magic) && !memcmp(raw, magic, sizeof(magic))) {
        const unsigned char *p = raw + sizeof(magic), *end = raw + n, *s, *pk;
        uint32_t sl, pkl, nkeys;
        if (get_string(&p, end, &s, &sl)) {
            *encrypted = !(sl == 4 && !memcmp(s, "none", 4));
            if (get_string(&p, end, &s, &sl) && get_string(&p, end, &s, &sl) && end - p >= 4) {
                nkeys =
                    ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
                p += 4;
                if (nkeys >= 1 && get_string(&p, end, &pk, &pkl)) {
                    const unsigned char *q = pk;
                    if (get_string(&q, pk + pkl, &s, &sl))
                        snprintf(type, type_cap, "%.*s", (int)sl, (const char *)s);
                }
            }
        }
    }
    free(raw);
}
