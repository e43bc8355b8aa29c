#include "storage/remote.h"
#include "core/config.h"
#include "core/log.h"
#include "core/units.h"
#include "storage/local/local.h"
#include "storage/s3/s3.h"
#include "storage/sftp/sftp.h"
#include "storage/smb/smb.h"
#include "storage/storage.h"

#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void remote_spec_release(struct remote_spec *rs)
{
    free(rs->name);
    free(rs->bucket);
    free(rs->path);
    free(rs->host);
    free(rs->user);
    free(rs->domain);
    free(rs->share);
    memset(rs, 0, sizeof(*rs));
}

/* S3 bucket names: 3-63 of [a-z0-9.-], plus '_' and upper case that some
 * S3-compatible servers allow; never '/', spaces or control bytes. */
static int check_bucket(const char *spec, const char *b, struct err *e)
{
    size_t n = strlen(b);
    if (n == 0)
        return err_set(e, ERR_USAGE, "remote '%s' has no bucket; write it as s3://bucket/prefix",
                       spec);
    if (n < 3 || n > 63)
        return err_set(e, ERR_USAGE, "bucket name '%s' in '%s' must be 3 to 63 characters long", b,
                       spec);
    for (const char *c = b; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == '_'))
            return err_set(
                e, ERR_USAGE,
                "bucket name '%s' in '%s' may only hold letters, digits, '.', '-' and '_'", b,
                spec);
    return 0;
}

static int split_bucket(const char *spec, const char *rest, struct remote_spec *out, struct err *e)
{
    const char *slash = strchr(rest, '/');
    size_t bl = slash ? (size_t)(slash - rest) : strlen(rest);
    out->bucket = strndup(rest, bl);
    out->path = strdup(slash ? slash + 1 : "");
    if (!out->bucket || !out->path)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (memchr(out->bucket, '@', bl) || memchr(out->bucket, ':', bl)) {
        /* echo nothing of it: a secret may hold '@', ':' and '/' itself */
        return err_set(e, ERR_USAGE,
                       "an s3:// remote holds credentials ('s3://***@...'); put them in the config "
                       "file, the environment or --secret-file, never in a URL");
    }
    return check_bucket(spec, out->bucket, e);
}

/* "[domain;]user@host[:port]" up to the first '/' after the host, for
 * sftp:// and smb:// (domain only for SMB). *path_out points after it. */
static int parse_authority(const char *spec, const char *rest, bool smb, struct remote_spec *out,
                           const char **path_out, struct err *e)
{
    const char *at = NULL;
    const char *s = rest;
    /* the user part ends at the last '@' before the first '/' */
    for (const char *c = rest; *c && *c != '/'; c++)
        if (*c == '@')
            at = c;
    if (at) {
        if (memchr(rest, ':', (size_t)(at - rest)))
            /* echo nothing of it: it holds a password */
            return err_set(e, ERR_USAGE,
                           "remote '%s://***@...' holds a password; put it in the config file, "
                           "the environment or --secret-file, never in a URL",
                           smb ? "smb" : "sftp");
        const char *semi = smb ? memchr(rest, ';', (size_t)(at - rest)) : NULL;
        const char *u = rest;
        if (semi) {
            out->domain = strndup(rest, (size_t)(semi - rest));
            u = semi + 1;
            if (!out->domain)
                return err_set(e, ERR_NOMEM, "out of memory");
        }
        if (at == u)
            return err_set(e, ERR_USAGE, "remote '%s' has an empty user name before '@'", spec);
        out->user = strndup(u, (size_t)(at - u));
        if (!out->user)
            return err_set(e, ERR_NOMEM, "out of memory");
        s = at + 1;
    }
    const char *hend;
    if (*s == '[') {
        hend = strchr(s, ']');
        if (!hend)
            return err_set(e, ERR_USAGE, "remote '%s' has an unclosed '[' in its host", spec);
        out->host = strndup(s + 1, (size_t)(hend - s - 1));
        hend++;
    } else {
        hend = s + strcspn(s, ":/");
        out->host = strndup(s, (size_t)(hend - s));
    }
    if (!out->host)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (!out->host[0])
        return err_set(e, ERR_USAGE, "remote '%s' has no host; write it as %s", spec,
                       smb ? "smb://user@host/share/path" : "sftp://user@host/path");
    if (*hend == ':') {
        char *end;
        long port = strtol(hend + 1, &end, 10);
        if (end == hend + 1 || (*end && *end != '/') || port < 1 || port > 65535)
            return err_set(e, ERR_USAGE, "remote '%s' has an invalid port; give 1 to 65535", spec);
        out->port = (int)port;
        hend = end;
    } else if (*hend && *hend != '/') {
        return err_set(e, ERR_USAGE, "remote '%s' has junk after its host", spec);
    }
    *path_out = hend;
    return 0;
}

/* sftp://[user@]host[:port][/path]: "/abs" is absolute, "/~/rel" relative
 * to the login directory, no path the login directory itself. */
static int parse_sftp_url(const char *spec, const char *rest, struct remote_spec *out,
                          struct err *e)
{
    const char *path;
    int r = parse_authority(spec, rest, false, out, &path, e);
    if (r)
        return r;
    if (!strncmp(path, "/~/", 3) || !strcmp(path, "/~"))
        path += path[2] ? 3 : 2;
    out->path = strdup(path);
    return out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

/* "share/path" (leading '/' ignored) into share and path. */
static int split_share(const char *spec, const char *s, struct remote_spec *out, struct err *e)
{
    while (*s == '/')
        s++;
    const char *slash = strchr(s, '/');
    out->share = strndup(s, slash ? (size_t)(slash - s) : strlen(s));
    out->path = strdup(slash ? slash + 1 : "");
    if (!out->share || !out->path)
        return err_set(e, ERR_NOMEM, "out of memory");
    if (!out->share[0])
        return err_set(e, ERR_USAGE, "remote '%s' has no share; write it as %s", spec,
                       out->name ? "name:share/path" : "smb://user@host/share/path");
    return 0;
}

static int parse_smb_url(const char *spec, const char *rest, struct remote_spec *out, struct err *e)
{
    const char *path;
    int r = parse_authority(spec, rest, true, out, &path, e);
    return r ? r : split_share(spec, path, out, e);
}

static int dup_opt(char **dst, const char *v, struct err *e)
{
    if (!v || !*v)
        return 0;
    *dst = strdup(v);
    return *dst ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

static int parse_port_opt(const char *v, const char *name, const char *file, int *out,
                          struct err *e)
{
    if (!v || !*v)
        return 0;
    char *end;
    long port = strtol(v, &end, 10);
    if (*end || port < 1 || port > 65535)
        return err_set(e, ERR_CONFIG, "remote '%s' in '%s': port '%s' must be 1 to 65535", name,
                       file, v);
    *out = (int)port;
    return 0;
}

/* A named sftp or smb remote: host, port, user (+ domain, share) from the
 * section; path from after the colon (joined to `root` for SFTP). */
static int parse_named_net(const char *spec, const struct config *cfg, const char *name,
                           const char *path, bool smb, struct remote_spec *out, struct err *e)
{
    const char *host = config_get(cfg, name, "host");
    int r;
    if (!host || !*host)
        return err_set(e, ERR_CONFIG,
                       "remote '%s' in '%s' has no 'host'; set host = <name or address>", name,
                       cfg->path);
    if ((r = dup_opt(&out->host, host, e)) ||
        (r = dup_opt(&out->user, config_get(cfg, name, "user"), e)) ||
        (r = parse_port_opt(config_get(cfg, name, "port"), name, cfg->path, &out->port, e)))
        return r;
    if (smb) {
        if ((r = dup_opt(&out->domain, config_get(cfg, name, "domain"), e)))
            return r;
        const char *share = config_get(cfg, name, "share");
        if (share && *share) {
            while (*path == '/')
                path++;
            out->share = strdup(share);
            out->path = strdup(path);
            return out->share && out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
        }
        return split_share(spec, path, out, e);
    }
    const char *root = config_get(cfg, name, "root");
    char joined[4096];
    if (root && *root && *path)
        snprintf(joined, sizeof(joined), "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/",
                 path);
    else
        snprintf(joined, sizeof(joined), "%s", root && *root ? root : path);
    out->path = strdup(joined);
    return out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

int remote_parse(const char *spec, const struct config *cfg, struct remote_spec *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    int r = 0;
    if (!spec || !*spec)
        return err_set(e, ERR_USAGE,
                       "empty remote; give a local path, s3://bucket/prefix or name:path");
    const char *sep = strstr(spec, "://");
    if (sep) {
        size_t sl = (size_t)(sep - spec);
        const char *rest = sep + 3;
        if (sl == 2 && !strncasecmp(spec, "s3", 2)) {
            out->kind = REMOTE_S3;
            r = split_bucket(spec, rest, out, e);
        } else if (sl == 4 && !strncasecmp(spec, "sftp", 4)) {
            out->kind = REMOTE_SFTP;
            r = parse_sftp_url(spec, rest, out, e);
        } else if (sl == 3 && !strncasecmp(spec, "smb", 3)) {
            out->kind = REMOTE_SMB;
            r = parse_smb_url(spec, rest, out, e);
        } else if (sl == 4 && !strncasecmp(spec, "file", 4)) {
            out->kind = REMOTE_LOCAL;
            out->path = strdup(*rest ? rest : "/");
            r = out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
        } else {
            r = err_set(
                e, ERR_USAGE,
                "remote '%s' has an unsupported scheme '%.*s'; use s3://, sftp://, smb://, a "
                "local path or a named remote (name:path)",
                spec, (int)sl, spec);
        }
        goto out;
    }
    const char *colon = strchr(spec, ':');
    if (colon && colon != spec && !memchr(spec, '/', (size_t)(colon - spec))) {
        char name[256];
        size_t nl = (size_t)(colon - spec);
        if (nl < sizeof(name)) {
            memcpy(name, spec, nl);
            name[nl] = '\0';
            if (cfg && config_has_section(cfg, name)) {
                out->name = strdup(name);
                const char *type = config_get(cfg, name, "type");
                const char *path = colon + 1;
                if (!type) {
                    r = err_set(
                        e, ERR_CONFIG,
                        "remote '%s' in '%s' has no 'type'; set type = s3, sftp, smb or local",
                        name, cfg->path);
                } else if (!strcmp(type, "s3")) {
                    out->kind = REMOTE_S3;
                    const char *bucket = config_get(cfg, name, "bucket");
                    if (bucket && *bucket) {
                        out->bucket = strdup(bucket);
                        while (*path == '/')
                            path++;
                        out->path = strdup(path);
                        r = (out->bucket && out->path) ? check_bucket(spec, bucket, e)
                                                       : err_set(e, ERR_NOMEM, "out of memory");
                    } else {
                        while (*path == '/')
                            path++;
                        r = split_bucket(spec, path, out, e);
                    }
                } else if (!strcmp(type, "sftp") || !strcmp(type, "smb")) {
                    bool smb = type[1] == 'm';
                    out->kind = smb ? REMOTE_SMB : REMOTE_SFTP;
                    r = parse_named_net(spec, cfg, name, path, smb, out, e);
                } else if (!strcmp(type, "local")) {
                    out->kind = REMOTE_LOCAL;
                    const char *root = config_get(cfg, name, "root");
                    char joined[4096];
                    if (root && *root)
                        snprintf(joined, sizeof(joined), "%s/%s", root, path);
                    else
                        snprintf(joined, sizeof(joined), "%s", *path ? path : ".");
                    out->path = strdup(joined);
                    r = out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
                } else {
                    r = err_set(
                        e, ERR_CONFIG,
                        "remote '%s' in '%s' has unknown type '%s'; use s3, sftp, smb or local",
                        name, cfg->path, type);
                }
                goto out;
            }
        }
    }
    out->kind = REMOTE_LOCAL;
    out->path = strdup(spec);
    r = out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
out:
    if (r)
        remote_spec_release(out);
    return r;
}

static const char *first(const char *a, const char *b, const char *c)
{
    if (a && *a)
        return a;
    if (b && *b)
        return b;
    return c && *c ? c : NULL;
}

static int parse_bool_opt(const char *v, const char *what, int *out, struct err *e)
{
    if (!v)
        return 0;
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
        *out = 0;
    else if (!strcasecmp(v, "auto"))
        *out = -1;
    else
        return err_set(e, ERR_CONFIG, "%s must be true, false or auto, not '%s'", what, v);
    return 0;
}

static int open_s3(const char *display, const struct remote_spec *rs, const struct config *cfg,
                   const struct remote_flags *fl, struct storage **out, struct err *e)
{
    const char *sec = rs->name;
#define CFG(k) (sec && cfg ? config_get(cfg, sec, k) : NULL)
    struct s3_options o;
    memset(&o, 0, sizeof(o));
    char *secret_from_file = NULL;
    int r = 0;
    o.endpoint = first(fl->endpoint, CFG("endpoint"), getenv("AWS_ENDPOINT_URL_S3"));
    if (!o.endpoint)
        o.endpoint = first(getenv("AWS_ENDPOINT_URL"), NULL, NULL);
    o.region = first(fl->region, CFG("region"), getenv("AWS_REGION"));
    if (!o.region)
        o.region = first(getenv("AWS_DEFAULT_REGION"), NULL, NULL);
    o.ca_cert = first(fl->ca_cert, CFG("ca_cert"), NULL);
    o.path_style = -1;
    r = parse_bool_opt(CFG("path_style"), "path_style", &o.path_style, e);
    if (r)
        goto out;
    if (fl->path_style >= 0)
        o.path_style = fl->path_style;

    /* credentials: flag (id only) / secret file, then config, then env */
    const char *id = first(fl->access_key_id, CFG("access_key_id"), NULL);
    const char *secret = CFG("secret_access_key");
    const char *token = CFG("session_token");
    if (fl->secret_file) {
        r = config_read_secret_file(fl->secret_file, &secret_from_file, e);
        if (r)
            goto out;
        secret = secret_from_file;
    }
    if (!id && !secret) {
        id = getenv("AWS_ACCESS_KEY_ID");
        secret = getenv("AWS_SECRET_ACCESS_KEY");
        token = getenv("AWS_SESSION_TOKEN");
    } else {
        if (!id)
            id = getenv("AWS_ACCESS_KEY_ID");
        if (!secret)
            secret = getenv("AWS_SECRET_ACCESS_KEY");
    }
    o.access_key_id = id;
    o.secret_access_key = secret;
    o.session_token = token;

    const char *v;
    if ((v = CFG("part_size"))) {
        r = units_parse_size(v, "part_size", &o.part_size, e);
        if (r)
            goto out;
    }
    if (fl->part_size)
        o.part_size = fl->part_size;
    if ((v = CFG("etag_md5"))) {
        int on = -1;
        r = parse_bool_opt(v, "etag_md5", &on, e);
        if (r)
            goto out;
        o.etag_not_md5 = on == 0;
    }
    if ((v = CFG("copy_cutoff"))) {
        r = units_parse_size(v, "copy_cutoff", &o.copy_cutoff, e);
        if (r)
            goto out;
    }
    if ((v = CFG("upload_concurrency")))
        o.upload_concurrency = (int)strtol(v, NULL, 10);
    if (fl->upload_concurrency)
        o.upload_concurrency = fl->upload_concurrency;
    if ((v = CFG("checksum"))) {
        if (!strcasecmp(v, "md5"))
            o.checksum = S3_CHECKSUM_MD5;
        else if (!strcasecmp(v, "sha256"))
            o.checksum = S3_CHECKSUM_SHA256;
        else {
            r = err_set(e, ERR_CONFIG, "checksum must be sha256 or md5, not '%s'", v);
            goto out;
        }
    }
    o.retry_deadline = fl->retry_timeout;
    o.create_bucket = fl->create_bucket;
    r = s3_storage_open(&o, rs->bucket, rs->path, display, out, e);
out:
    if (secret_from_file) {
        explicit_bzero(secret_from_file, strlen(secret_from_file));
        free(secret_from_file);
    }
    return r;
#undef CFG
}

/* The secret of a remote, in order: the config section's `key`, the
 * --secret-file, the environment variable `env`, a terminal prompt (when
 * `prompt` is set and there is a terminal). *owned is what to free. */
static int pick_secret(const struct config *cfg, const char *sec, const char *key,
                       const char *secret_file, const char *env, const char *prompt,
                       const char *how, const char **out, char **owned, struct err *e)
{
    const char *v = sec && cfg ? config_get(cfg, sec, key) : NULL;
    *out = NULL;
    if (v) {
        *out = v;
        return 0;
    }
    if (secret_file) {
        int r = config_read_secret_file(secret_file, owned, e);
        if (r == 0)
            *out = *owned;
        return r;
    }
    if ((v = getenv(env)) != NULL) {
        *out = v;
        return 0;
    }
    if (!prompt || !isatty(STDIN_FILENO))
        return 0;
    int r = config_prompt_secret(prompt, how, owned, e);
    if (r == 0)
        *out = *owned;
    return r;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static int parse_seconds_opt(const char *v, const char *what, double *out, struct err *e)
{
    if (!v)
        return 0;
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d > 0) || d > 86400)
        return err_set(e, ERR_CONFIG, "%s '%s' must be a number of seconds from 1 to 86400", what,
                       v);
    *out = d;
    return 0;
}

static int parse_count_opt(const char *v, const char *what, int *out, struct err *e)
{
    if (!v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > 64)
        return err_set(e, ERR_CONFIG, "%s '%s' must be a whole number from 1 to 64", what, v);
    *out = (int)n;
    return 0;
}

/* A PEM key inline in a one-line config value: "\n" stands for a newline. */
static char *unescape_pem(const char *v)
{
    char *s = malloc(strlen(v) + 1);
    if (!s)
        return NULL;
    char *d = s;
    for (; *v; v++) {
        if (v[0] == '\\' && v[1] == 'n') {
            *d++ = '\n';
            v++;
        } else {
            *d++ = *v;
        }
    }
    *d = '\0';
    return s;
}

static bool have_default_key(void)
{
    const char *home = getenv("HOME");
    char p[4096];
    if (!home || !*home)
        return false;
    snprintf(p, sizeof(p), "%s/.ssh/id_ed25519", home);
    if (access(p, R_OK) == 0)
        return true;
    snprintf(p, sizeof(p), "%s/.ssh/id_ecdsa", home);
    return access(p, R_OK) == 0;
}

static int open_sftp(const char *display, const struct remote_spec *rs, const struct config *cfg,
                     const struct remote_flags *fl, struct storage **out, struct err *e)
{
    const char *sec = rs->name;
#define CFG(k) (sec && cfg ? config_get(cfg, sec, k) : NULL)
    struct sftp_opts o;
    char *pem = NULL, *password = NULL, *passphrase = NULL;
    char prompt[512];
    int r = 0;
    memset(&o, 0, sizeof(o));
    o.host = rs->host;
    o.port = rs->port;
    o.path = rs->path;
    o.user = rs->user;
    if (!o.user) {
        struct passwd *pw = getpwuid(geteuid());
        o.user = pw ? pw->pw_name : getenv("USER");
    }
    if (!o.user || !*o.user)
        return err_set(e, ERR_USAGE, "remote '%s' has no user; write it as sftp://user@host/path",
                       display);
    o.key_file = first(fl->key_file, CFG("key_file"), NULL);
    const char *v = CFG("key_pem");
    if (v && *v && !o.key_file) {
        if (!(pem = unescape_pem(v)))
            return err_set(e, ERR_NOMEM, "out of memory");
        o.key_pem = pem;
    }
    o.default_keys = !o.key_file && !o.key_pem;
    o.known_hosts = first(fl->known_hosts, CFG("known_hosts"), NULL);
    o.host_fingerprint = first(fl->host_fingerprint, CFG("host_fingerprint"), NULL);
    int follow = 0;
    if ((r = parse_bool_opt(CFG("follow_symlinks"), "follow_symlinks", &follow, e)) ||
        (r = parse_seconds_opt(CFG("timeout"), "timeout", &o.timeout, e)) ||
        (r = parse_count_opt(CFG("connections"), "connections", &o.connections, e)))
        goto out;
    o.follow_symlinks = fl->follow_symlinks || follow == 1;

    /* a key's passphrase, or the password: --secret-file gives the one
     * this remote uses */
    const char *how = "set password in the config file, ARCA_SFTP_PASSWORD or --secret-file, or "
                      "use a key";
    if (!o.default_keys) {
        r = pick_secret(cfg, sec, "key_passphrase", fl->secret_file, "ARCA_SFTP_KEY_PASSPHRASE",
                        NULL, NULL, &o.key_passphrase, &passphrase, e);
        if (r == 0 && CFG("password"))
            o.password = CFG("password");
    } else {
        snprintf(prompt, sizeof(prompt), "password for %s@%s", o.user, o.host);
        r = pick_secret(cfg, sec, "password", fl->secret_file, "ARCA_SFTP_PASSWORD",
                        have_default_key() ? NULL : prompt, how, &o.password, &password, e);
        if (r == 0 && !o.key_passphrase)
            o.key_passphrase =
                first(CFG("key_passphrase"), getenv("ARCA_SFTP_KEY_PASSPHRASE"), NULL);
    }
    if (r)
        goto out;
    r = sftp_storage_open(&o, display, out, e);
out:
    wipe_free(pem);
    wipe_free(password);
    wipe_free(passphrase);
    return r;
#undef CFG
}

static int open_smb(const char *display, const struct remote_spec *rs, const struct config *cfg,
                    const struct remote_flags *fl, struct storage **out, struct err *e)
{
    const char *sec = rs->name;
#define CFG(k) (sec && cfg ? config_get(cfg, sec, k) : NULL)
    struct smb_opts o;
    char *password = NULL;
    char prompt[512];
    int r = 0;
    memset(&o, 0, sizeof(o));
    o.host = rs->host;
    o.port = rs->port;
    o.share = rs->share;
    o.path = rs->path;
    o.domain = rs->domain;
    o.user = rs->user;
    if ((r = parse_seconds_opt(CFG("timeout"), "timeout", &o.timeout, e)) ||
        (r = parse_count_opt(CFG("connections"), "connections", &o.connections, e)))
        goto out;
    if (o.user && *o.user) {
        snprintf(prompt, sizeof(prompt), "SMB password for %s@%s", o.user, o.host);
        r = pick_secret(cfg, sec, "password", fl->secret_file, "ARCA_SMB_PASSWORD", prompt,
                        "set password in the config file, ARCA_SMB_PASSWORD or --secret-file",
                        &o.password, &password, e);
        if (r)
            goto out;
    }
    r = smb_storage_open(&o, display, out, e);
out:
    wipe_free(password);
    return r;
#undef CFG
}

int remote_open(const char *spec, const struct config *cfg, const struct remote_flags *flags,
                struct storage **out, struct err *e)
{
    return remote_open_as(spec, spec, cfg, flags, out, e);
}

int remote_open_as(const char *spec, const char *display, const struct config *cfg,
                   const struct remote_flags *flags, struct storage **out, struct err *e)
{
    struct remote_spec rs;
    int r = remote_parse(spec, cfg, &rs, e);
    if (r)
        return r;
    r = remote_open_spec(&rs, display, cfg, flags, out, e);
    remote_spec_release(&rs);
    return r;
}

int remote_open_spec(const struct remote_spec *rs, const char *display, const struct config *cfg,
                     const struct remote_flags *flags, struct storage **out, struct err *e)
{
    struct remote_flags none = {.path_style = -1};
    if (!flags)
        flags = &none;
    if (rs->kind == REMOTE_S3)
        return open_s3(display, rs, cfg, flags, out, e);
    if (rs->kind == REMOTE_SFTP)
        return open_sftp(display, rs, cfg, flags, out, e);
    if (rs->kind == REMOTE_SMB)
        return open_smb(display, rs, cfg, flags, out, e);
    return local_storage_open(rs->path, display, out, e);
}
