/*
 * remote.h - turn what the user typed ("s3://bucket/prefix", "name:path",
 * "/some/dir") into a struct storage.
 *
 * Rules (docs/REMOTES.md):
 *  - a scheme URL always wins: "s3://bucket[/prefix]",
 *    "sftp://[user@]host[:port]/path", "smb://[domain;]user@host[:port]/share/path";
 *  - "name:path" is a named remote only if [name] exists in the config file;
 *    otherwise the whole string is a local path;
 *  - anything else is a local path.
 * S3 credentials come, in order, from the flags (an access key id only; a
 * secret only through --secret-file), the remote's config section, then
 * the standard AWS_* environment variables. A secret inside a URL is
 * refused.
 */
#ifndef ARCA_STORAGE_REMOTE_H
#define ARCA_STORAGE_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

struct config;
struct storage;

enum remote_kind { REMOTE_LOCAL = 0, REMOTE_S3 = 1, REMOTE_SFTP = 2, REMOTE_SMB = 3 };

/* What a remote string names, before credentials are looked up. */
struct remote_spec {
    enum remote_kind kind;
    char *name;   /* config section, or NULL for a URL/path */
    char *bucket; /* S3 */
    char *path;   /* S3: prefix ("" for the bucket root); local: directory;
                     SFTP: directory ("/abs" or relative to the login directory);
                     SMB: directory inside the share */
    /* SFTP and SMB */
    char *host; /* without brackets */
    int port;   /* 0: the default */
    char *user;
    char *domain; /* SMB */
    char *share;  /* SMB */
};

void remote_spec_release(struct remote_spec *rs);

/* Parse spec. cfg may be NULL (no named remotes). ERR_USAGE for malformed
 * strings, ERR_CONFIG for a named remote whose section is incomplete. */
int remote_parse(const char *spec, const struct config *cfg, struct remote_spec *out,
                 struct err *e);

/* Settings from command-line flags; NULL/0 means not given. */
struct remote_flags {
    const char *endpoint;
    const char *region;
    const char *access_key_id;
    const char *secret_file;
    const char *ca_cert;
    int path_style; /* -1 not given, 0/1 */
    uint64_t part_size;
    int upload_concurrency;
    double retry_timeout;
    bool create_bucket;
    /* SFTP */
    const char *key_file;
    const char *known_hosts;
    const char *host_fingerprint;
    bool follow_symlinks;
};

/* Open the storage for spec. */
int remote_open(const char *spec, const struct config *cfg, const struct remote_flags *flags,
                struct storage **out, struct err *e);
/* Open what remote_parse() gave (e.g. with its path changed). */
int remote_open_spec(const struct remote_spec *rs, const char *display, const struct config *cfg,
                     const struct remote_flags *flags, struct storage **out, struct err *e);
/* The same, naming the storage `display` in messages. */
int remote_open_as(const char *spec, const char *display, const struct config *cfg,
                   const struct remote_flags *flags, struct storage **out, struct err *e);

#endif
