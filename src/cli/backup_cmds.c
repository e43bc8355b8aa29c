/*
 * backup_cmds.c - `arca backup`, `arca runs`, `arca restore`.
 */
#include "backup/backup.h"
#include "backup/catalog.h"
#include "backup/prune.h"
#include "backup/restore.h"
#include "cli/cli.h"
#include "core/timefmt.h"
#include "io/ratelimit.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open the two remotes of a command; on failure nothing stays open. */
static int open_two(struct cli *c, struct storage **a, struct storage **b, struct err *e)
{
    *a = *b = NULL;
    int r = remote_open(c->args[0], &c->cfg, &c->rflags, a, e);
    if (!r && (r = remote_open(c->args[1], &c->cfg, &c->rflags, b, e)) != 0) {
        storage_close(*a);
        *a = NULL;
    }
    return r;
}

int cli_cmd_backup(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct backup_opts o;
    backup_opts_init(&o);
    if (c->mode && !strcmp(c->mode, "mirror"))
        o.mode = BACKUP_MIRROR;
    else if (!c->mode || !strcmp(c->mode, "archive"))
        o.mode = BACKUP_ARCHIVE;
    else {
        err_set(&e, ERR_USAGE, "--mode '%s' is not a backup mode; use mirror or archive", c->mode);
        return cli_fail(c, &e);
    }
    if (c->compression) {
        if (o.mode != BACKUP_ARCHIVE) {
            err_set(&e, ERR_USAGE, "--compression applies to --mode archive only");
            return cli_fail(c, &e);
        }
        if (compress_parse(c->compression, &o.compression, &e) != 0)
            return cli_fail(c, &e);
        if (o.compression == COMPRESS_NONE) {
            err_set(&e, ERR_USAGE, "--compression none is not offered; use zstd or gzip");
            return cli_fail(c, &e);
        }
    }
    struct storage *src, *dst;
    if (open_two(c, &src, &dst, &e))
        return cli_fail(c, &e);
    struct ratelimit *rl = c->bwlimit ? ratelimit_new(c->bwlimit, NULL) : NULL;
    struct event_emitter em;
    cli_output_init(c, &em);
    o.transfers = c->transfers;
    o.ratelimit = rl;
    o.events = &em;
    o.progress_interval = (c->progress || c->json) ? 1.0 : 0;
    o.source_desc = c->args[0];
    o.max_delete = c->max_delete;
    o.allow_empty_source = c->allow_empty_source;
    struct backup_result res;
    int r = backup_run(src, dst, &o, &res, &e);
    cli_output_finish();
    if (!c->json && c->verbose >= 0 && res.run[0] && !r)
        printf("run %s\n", res.run);
    storage_close(src);
    storage_close(dst);
    ratelimit_free(rl);
    return cli_exit_status(r, res.status);
}

static void print_run(const struct cli *c, const struct run_info *ri)
{
    char started[TIMEFMT_LEN + 1], finished[TIMEFMT_LEN + 1];
    time_format_ms(ri->started_ms, started);
    time_format_ms(ri->finished_ms, finished);
    const char *mode = ri->mode == MANIFEST_ARCHIVE ? "archive" : "mirror";
    if (c->json) {
        char now[TIMEFMT_LEN + 1];
        time_format_ms(time_now_ms(), now);
        json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s}",
                              "type", "run", "v", 1, "time", now, "run", ri->run, "mode", mode,
                              "started", started, "finished", finished, "status", ri->status,
                              "files", (json_int_t)ri->files, "bytes", (json_int_t)ri->bytes,
                              "errors", (json_int_t)ri->errors, "manifest", ri->manifest_key);
        if (o && ri->mode == MANIFEST_ARCHIVE) {
            json_object_set_new(o, "archive", json_string(ri->archive_key));
            json_object_set_new(o, "archive_size", json_integer(ri->archive_size));
        }
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (s)
            puts(s);
        free(s);
        json_decref(o);
        return;
    }
    printf("%-26s  %-20.19s  %-7s  %8" PRIu64 "  %14" PRIu64 "  %s\n", ri->run, started, mode,
           ri->files, ri->bytes, ri->status);
}

int cli_cmd_runs(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct storage *dst = NULL;
    struct run_info *v = NULL;
    size_t n = 0;
    int r = remote_open(c->args[0], &c->cfg, &c->rflags, &dst, &e);
    if (!r)
        r = storage_check_root(dst, false, false, &e);
    if (!r)
        r = catalog_list(dst, true, &v, &n, &e);
    storage_close(dst);
    if (r)
        return cli_fail(c, &e);
    if (!c->json && n)
        printf("%-26s  %-20s  %-7s  %8s  %14s  %s\n", "RUN", "STARTED (UTC)", "MODE", "FILES",
               "BYTES", "STATUS");
    for (size_t i = 0; i < n; i++)
        print_run(c, &v[i]);
    if (!c->json && !n && c->verbose >= 0)
        fprintf(stderr, "no runs at '%s'\n", c->args[0]);
    free(v);
    return EXIT_OK;
}

int cli_cmd_restore(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct storage *dst, *target;
    if (open_two(c, &dst, &target, &e))
        return cli_fail(c, &e);
    struct event_emitter em;
    cli_output_init(c, &em);
    struct restore_opts o;
    restore_opts_init(&o);
    o.run = c->run_id;
    for (int i = 0; i < c->nincludes; i++)
        o.includes[o.nincludes++] = c->includes[i];
    o.events = &em;
    o.transfers = c->transfers;
    o.progress_interval = (c->progress || c->json) ? 1.0 : 0;
    struct restore_result res;
    int r = restore_run(dst, target, &o, &res, &e);
    cli_output_finish();
    storage_close(dst);
    storage_close(target);
    return cli_exit_status(r, res.status);
}

int cli_cmd_verify(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct storage *dst = NULL;
    if (remote_open(c->args[0], &c->cfg, &c->rflags, &dst, &e))
        return cli_fail(c, &e);
    struct event_emitter em;
    cli_output_init(c, &em);
    struct restore_opts o;
    restore_opts_init(&o);
    o.run = c->run_id;
    o.events = &em;
    o.transfers = c->transfers;
    o.progress_interval = (c->progress || c->json) ? 1.0 : 0;
    struct restore_result res;
    struct storage *src = NULL;
    int r = 0;
    if (c->against) {
        r = remote_open(c->against, &c->cfg, &c->rflags, &src, &e);
        if (r) {
            cli_output_finish();
            storage_close(dst);
            return cli_fail(c, &e);
        }
        r = verify_against(dst, src, &o, c->read_data, &res, &e);
        storage_close(src);
        cli_output_finish();
        storage_close(dst);
        return cli_exit_status(r, res.status);
    }
    r = verify_run(dst, &o, c->read_data, &res, &e);
    cli_output_finish();
    if (!r && !c->json && c->verbose >= 0)
        printf("run %s: %s\n", res.run,
               c->read_data ? "every byte matches its manifest"
                            : "manifest whole, every object present with its size");
    storage_close(dst);
    return cli_exit_status(r, res.status);
}

/* prune's output: `run` events become lines for people (without --json);
 * everything else goes to the usual renderer. */
struct prune_out {
    struct cli *c;
    struct event_emitter inner;
};

static void prune_sink(const char *line, void *ctx)
{
    struct prune_out *po = ctx;
    if (!po->c->json && !strncmp(line, "{\"type\":\"run\",", 14)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o && po->c->verbose >= 0)
            printf("%-6s  %s  %-20.19s  %s\n", json_string_value(json_object_get(o, "action")),
                   json_string_value(json_object_get(o, "run")),
                   json_string_value(json_object_get(o, "started")),
                   json_string_value(json_object_get(o, "reasons")));
        json_decref(o);
        return;
    }
    po->inner.sink(line, po->inner.ctx);
}

int cli_cmd_prune(struct cli *c)
{
    struct err e;
    err_clear(&e);
    struct storage *dst = NULL;
    if (remote_open(c->args[0], &c->cfg, &c->rflags, &dst, &e))
        return cli_fail(c, &e);
    struct prune_out po = {.c = c};
    cli_output_init(c, &po.inner);
    struct event_emitter em = {prune_sink, &po, 0};
    struct prune_opts o = {.policy = c->policy, .dry_run = c->dry_run, .events = &em};
    struct prune_result res;
    int r = prune_run(dst, &o, &res, &e);
    cli_output_finish();
    storage_close(dst);
    return cli_exit_status(r, res.status);
}
