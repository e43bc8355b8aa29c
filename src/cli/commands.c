/*
 * commands.c - ls, copy, sync, check.
 */
#include "cli/cli.h"
#include "core/cancel.h"
#include "core/log.h"
#include "engine/transfer.h"
#include "io/ratelimit.h"
#include "storage/local/local.h"
#include "storage/storage.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_fail(struct cli *c, const struct err *e)
{
    if (c->json) {
        struct event_summary s = {.command = c->command,
                                  .status = EVENT_STATUS_FAILED,
                                  .error_code = e->code,
                                  .error = e->msg};
        struct event_emitter em = {event_sink_stdout, NULL, 0};
        event_emit_summary(&em, &s);
    }
    log_error("%s", e->msg);
    return err_exit_status(e->code);
}

static void format_time(int64_t ns, char *out, size_t cap)
{
    if (ns == STORAGE_MTIME_UNKNOWN) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cli_cmd_ls(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct storage *st = NULL;
    struct storage_list *l = NULL;
    uint64_t files = 0, bytes = 0;
    int r = remote_open(c->args[0], &c->cfg, &c->rflags, &st, &e);
    if (!r)
        r = storage_check_root(st, false, false, &e);
    if (!r)
        r = storage_list_open(st, "", &l, &e);
    while (!r) {
        struct storage_entry ent;
        int n = storage_list_next(l, &ent, &e);
        if (n <= 0) {
            r = n;
            break;
        }
        files++;
        bytes += ent.size;
        char when[40];
        format_time(ent.mtime_ns, when, sizeof(when));
        if (c->json) {
            json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "type", "entry", "path", ent.key, "size",
                                  (json_int_t)ent.size, "kind",
                                  ent.type == STORAGE_TYPE_SYMLINK ? "symlink" : "file");
            if (o) {
                json_object_set_new(o, "mtime",
                                    ent.mtime_ns == STORAGE_MTIME_UNKNOWN ? json_null()
                                                                          : json_string(when));
                if (ent.md5[0])
                    json_object_set_new(o, "md5", json_string(ent.md5));
                char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
                if (s)
                    puts(s);
                free(s);
                json_decref(o);
            }
        } else {
            printf("%12" PRIu64 "  %-20s  %s%s\n", ent.size, when, ent.key,
                   ent.type == STORAGE_TYPE_SYMLINK ? " (symlink)" : "");
        }
        storage_entry_clear(&ent);
    }
    storage_list_close(l);
    storage_close(st);
    if (r)
        return cli_fail(c, &e);
    if (!c->json && c->verbose >= 1)
        fprintf(stderr, "%" PRIu64 " files, %" PRIu64 " bytes\n", files, bytes);
    return EXIT_OK;
}

/* An S3 source whose last path segment is an object with nothing below
 * it ("s3://b/docs/report.pdf"): open the parent prefix, restricted to that
 * key. 1 when it is such an object (*out, *only_key set), 0 when not. */
static int open_single_object(struct cli *c, const char *spec, const struct remote_spec *rs,
                              struct storage **out, char **only_key, struct err *e)
{
    size_t n = strlen(rs->path);
    if (n == 0 || rs->path[n - 1] == '/')
        return 0;
    const char *base = strrchr(rs->path, '/');
    base = base ? base + 1 : rs->path;
    size_t bl = strlen(base), sl = strlen(spec);
    if (sl < bl || strcmp(spec + sl - bl, base) != 0)
        return 0; /* the spec does not end with the key as written */
    char *parent = strndup(spec, sl - bl);
    char *children = NULL;
    struct storage *st = NULL;
    struct storage_list *l = NULL;
    struct storage_entry ent;
    memset(&ent, 0, sizeof(ent));
    int r = parent ? 0 : err_set(e, ERR_NOMEM, "out of memory");
    size_t pl = r ? 0 : strlen(parent);
    if (!r && pl && parent[pl - 1] == '/' && (pl < 2 || parent[pl - 2] != '/'))
        parent[pl - 1] = '\0'; /* "s3://b/docs/" -> "s3://b/docs"; keep "s3://" and "name:" */
    if (!r)
        r = remote_open_as(parent, spec, &c->cfg, &c->rflags, &st, e);
    if (!r) {
        r = storage_stat(st, base, &ent, e);
        if (r == ERR_NOT_FOUND) { /* no such object: a prefix, as usual */
            err_clear(e);
            r = 0;
            goto out;
        }
    }
    if (!r && asprintf(&children, "%s/", base) < 0)
        r = err_set(e, ERR_NOMEM, "out of memory");
    if (!r)
        r = storage_list_open(st, children, &l, e);
    if (!r) {
        storage_entry_clear(&ent);
        r = storage_list_next(l, &ent, e);
        if (r == 1) /* keys below it too: a "directory", as rclone sees it */
            r = 0;
        else if (r == 0)
            r = 1;
    }
    if (r == 1) {
        *only_key = strdup(base);
        if (!*only_key) {
            r = err_set(e, ERR_NOMEM, "out of memory");
        } else {
            *out = st;
            st = NULL;
        }
    }
out:
    storage_list_close(l);
    storage_entry_clear(&ent);
    storage_close(st);
    free(children);
    free(parent);
    return r;
}

/* A source that is a single file - a local regular file, or an S3 object
 * (see open_single_object) - is copied or checked under its name, as
 * rclone does. *only_key is set then (owned by the caller). Returns 1 when
 * it handled the source, 0 when the source is something else, or a
 * negative error. */
/* SFTP and SMB: open the parent directory and stat the last segment; a
 * regular file there makes a single-file source (the connection is kept
 * for the copy). 1, 0 (not a file), or a negative error. */
static int open_single_remote_file(struct cli *c, const char *spec, struct remote_spec *rs,
                                   struct storage **out, char **only_key, struct err *e)
{
    char *path = rs->path;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, "~"))
        return 0;
    char *parent = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup("");
    char *base = strdup(name);
    struct storage *st = NULL;
    struct storage_entry ent;
    int r;
    if (!parent || !base) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    rs->path = parent;
    r = remote_open_spec(rs, spec, &c->cfg, &c->rflags, &st, e);
    rs->path = path;
    if (r)
        goto out;
    memset(&ent, 0, sizeof(ent));
    r = storage_stat(st, base, &ent, e);
    if (r == 0 && ent.type == STORAGE_TYPE_FILE) {
        storage_entry_clear(&ent);
        if (!strcmp(c->command, "sync")) {
            r = err_set(e, ERR_USAGE,
                        "sync needs a directory as source, not the file '%s'; use copy for one "
                        "file",
                        spec);
            goto out;
        }
        *out = st;
        *only_key = base;
        st = NULL;
        base = NULL;
        r = 1;
        goto out;
    }
    if (r == 0)
        storage_entry_clear(&ent);
    /* not a file, absent, or the parent cannot be read: let the normal path
     * open it and say what is wrong; but a refused login or host key is
     * final */
    if (r == ERR_AUTH || r == ERR_REFUSED || r == ERR_NET || r == ERR_CANCELLED)
        goto out;
    err_clear(e);
    r = 0;
out:
    storage_close(st);
    free(parent);
    free(base);
    return r;
}

static int open_single_file(struct cli *c, const char *spec, struct storage **out, char **only_key,
                            struct err *e)
{
    struct remote_spec rs;
    struct stat sb;
    int r = remote_parse(spec, &c->cfg, &rs, e);
    if (r)
        return r;
    if (rs.kind == REMOTE_S3) {
        r = open_single_object(c, spec, &rs, out, only_key, e);
        if (r == 1 && !strcmp(c->command, "sync")) {
            storage_close(*out);
            *out = NULL;
            free(*only_key);
            *only_key = NULL;
            r = err_set(
                e, ERR_USAGE,
                "sync needs a prefix as source, not the object '%s'; use copy for one object",
                spec);
        }
        remote_spec_release(&rs);
        return r;
    }
    if (rs.kind == REMOTE_SFTP || rs.kind == REMOTE_SMB) {
        r = open_single_remote_file(c, spec, &rs, out, only_key, e);
        remote_spec_release(&rs);
        return r;
    }
    if (rs.kind != REMOTE_LOCAL || stat(rs.path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        remote_spec_release(&rs);
        return 0;
    }
    if (!strcmp(c->command, "sync")) {
        r = err_set(e, ERR_USAGE,
                    "sync needs a directory as source, not the file '%s'; use copy for one file",
                    spec);
        goto out;
    }
    char *slash = strrchr(rs.path, '/');
    const char *dir = ".", *name = rs.path;
    if (slash) {
        *slash = '\0';
        dir = slash == rs.path ? "/" : rs.path;
        name = slash + 1;
    }
    *only_key = strdup(name);
    if (!*only_key) {
        r = err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    r = local_storage_open(dir, spec, out, e);
    if (!r)
        r = 1;
out:
    remote_spec_release(&rs);
    return r;
}

/* Canonical form of a local path that may not exist yet: the real path of
 * its nearest existing ancestor, then the rest as written. Caller frees. */
static char *canonical_path(const char *path)
{
    char *copy = strdup(path), *rest = NULL;
    if (!copy)
        return NULL;
    for (;;) {
        char *real = realpath(copy, NULL);
        if (real) {
            char *out = NULL;
            if (asprintf(&out, "%s%s%s", real, rest ? "/" : "", rest ? rest : "") < 0)
                out = NULL;
            free(real);
            free(copy);
            free(rest);
            return out;
        }
        char *slash = strrchr(copy, '/');
        char *tail = NULL;
        if (asprintf(&tail, "%s%s%s", slash ? slash + 1 : copy, rest ? "/" : "", rest ? rest : "") <
            0) {
            free(copy);
            free(rest);
            return NULL;
        }
        free(rest);
        rest = tail;
        if (!slash) {
            memcpy(copy, ".", 2); /* copy held at least one character */
        } else if (slash == copy) {
            copy[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
}

/* a and b name the same tree, or one lies inside the other ('/'-separated). */
static bool paths_nest(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 1 && b[lb - 1] == '/')
        lb--;
    size_t n = la < lb ? la : lb;
    if (memcmp(a, b, n) != 0)
        return false;
    if (la == lb || n == 0)
        return true;
    const char *longer = la > lb ? a : b;
    return longer[n] == '/' || (n == 1 && longer[0] == '/');
}

/* copy and sync refuse a destination inside the source or around it: each
 * run would copy its own output again (rclone refuses the same). */
static int check_overlap(struct cli *c, struct storage *src, struct storage *dst, struct err *e)
{
    if (!strcmp(c->command, "check") || strcmp(storage_endpoint_id(src), storage_endpoint_id(dst)))
        return 0;
    struct remote_spec a, b;
    if (remote_parse(c->args[0], &c->cfg, &a, e))
        return 0; /* already opened fine: cannot fail here */
    if (remote_parse(c->args[1], &c->cfg, &b, e)) {
        remote_spec_release(&a);
        return 0;
    }
    err_clear(e);
    bool nest = false;
    if (a.kind == REMOTE_LOCAL && b.kind == REMOTE_LOCAL) {
        char *ca = canonical_path(a.path), *cb = canonical_path(b.path);
        nest = ca && cb && paths_nest(ca, cb);
        free(ca);
        free(cb);
    } else if (a.kind == REMOTE_S3 && b.kind == REMOTE_S3 && !strcmp(a.bucket, b.bucket)) {
        /* prefixes as "/p/q" so the root "" nests with everything */
        char pa[2048], pb[2048];
        snprintf(pa, sizeof(pa), "/%s", a.path);
        snprintf(pb, sizeof(pb), "/%s", b.path);
        nest = paths_nest(pa, pb);
    }
    remote_spec_release(&a);
    remote_spec_release(&b);
    if (nest)
        return err_set(e, ERR_USAGE,
                       "'%s' and '%s' overlap (one is inside the other); choose a destination "
                       "outside the source",
                       c->args[0], c->args[1]);
    return 0;
}

int cli_cmd_transfer(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct storage *src = NULL, *dst = NULL;
    struct ratelimit *rl = NULL;
    struct event_emitter em;
    char *only_key = NULL;
    int r = open_single_file(c, c->args[0], &src, &only_key, &e);
    if (r == 0)
        r = remote_open(c->args[0], &c->cfg, &c->rflags, &src, &e);
    if (r < 0) {
        free(only_key);
        return cli_fail(c, &e);
    }
    r = remote_open(c->args[1], &c->cfg, &c->rflags, &dst, &e);
    if (!r && !only_key)
        r = check_overlap(c, src, dst, &e);
    if (r) {
        storage_close(src);
        storage_close(dst);
        free(only_key);
        return cli_fail(c, &e);
    }
    if (c->bwlimit) {
        rl = ratelimit_new(c->bwlimit, NULL);
        if (!rl) {
            storage_close(src);
            storage_close(dst);
            free(only_key);
            err_set(&e, ERR_NOMEM, "out of memory");
            return cli_fail(c, &e);
        }
    }
    cli_output_init(c, &em);
    struct transfer_opts o;
    transfer_opts_init(&o);
    o.transfers = c->transfers > 0 ? c->transfers : 4;
    o.dry_run = c->dry_run;
    o.checksum = c->checksum;
    o.max_delete = c->max_delete;
    o.allow_empty_source = c->allow_empty_source;
    o.ratelimit = rl;
    o.events = &em;
    o.progress_interval = (c->progress || c->json) ? 1.0 : 0;
    o.only_key = only_key;
    o.report_sha256 = c->report_sha256;
    if (c->read_streams)
        o.read_streams = c->read_streams;
    if (c->read_stream_cutoff)
        o.read_stream_cutoff = c->read_stream_cutoff;
    struct transfer_result res;
    memset(&res, 0, sizeof(res));
    if (!strcmp(c->command, "copy"))
        r = transfer_copy(src, dst, &o, &res, &e);
    else if (!strcmp(c->command, "sync"))
        r = transfer_sync(src, dst, &o, &res, &e);
    else
        r = transfer_check(src, dst, &o, &res, &e);
    cli_output_finish();
    storage_close(src);
    storage_close(dst);
    ratelimit_free(rl);
    free(only_key);
    return cli_exit_status(r, res.status);
}

int cli_exit_status(int r, enum event_status status)
{
    if (r) /* the summary event already carried the message */
        return err_exit_status(r);
    switch (status) {
    case EVENT_STATUS_SUCCEEDED:
        return EXIT_OK;
    case EVENT_STATUS_DIFFERENCES:
        return EXIT_DIFFERENCES;
    case EVENT_STATUS_PARTIAL:
        return EXIT_PARTIAL;
    case EVENT_STATUS_CANCELLED:
        return err_exit_status(ERR_CANCELLED);
    default:
        return err_exit_status(ERR_INTERNAL);
    }
}
