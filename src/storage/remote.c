#include "storage/remote.h"
#include "core/config.h"
#include "core/log.h"
#include "core/units.h"
#include "storage/local/local.h"
#include "storage/s3/s3.h"
#include "storage/storage.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void remote_spec_release(struct remote_spec *rs)
{
    free(rs->name);
    free(rs->bucket);
    free(rs->path);
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
        } else if (sl == 4 && !strncasecmp(spec, "file", 4)) {
            out->kind = REMOTE_LOCAL;
            out->path = strdup(*rest ? rest : "/");
            r = out->path ? 0 : err_set(e, ERR_NOMEM, "out of memory");
        } else {
            r = err_set(
                e, ERR_USAGE,
                "remote '%s' has an unsupported scheme '%.*s'; use s3://, a local path or a "
                "named remote (name:path)",
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
                    r = err_set(e, ERR_CONFIG,
                                "remote '%s' in '%s' has no 'type'; set type = s3 or type = local",
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
                    r = err_set(e, ERR_CONFIG,
                                "remote '%s' in '%s' has unknown type '%s'; use s3 or local", name,
                                cfg->path, type);
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

int remote_open(const char *spec, const struct config *cfg, const struct remote_flags *flags,
                struct storage **out, struct err *e)
{
    return remote_open_as(spec, spec, cfg, flags, out, e);
}

int remote_open_as(const char *spec, const char *display, const struct config *cfg,
                   const struct remote_flags *flags, struct storage **out, struct err *e)
{
    struct remote_spec rs;
    struct remote_flags none = {.path_style = -1};
    int r = remote_parse(spec, cfg, &rs, e);
    if (r)
        return r;
    if (!flags)
        flags = &none;
    if (rs.kind == REMOTE_S3)
        r = open_s3(display, &rs, cfg, flags, out, e);
    else
        r = local_storage_open(rs.path, display, out, e);
    remote_spec_release(&rs);
    return r;
}
