/*
 * output.c - how events look to a person.
 *
 * The engine only emits events (docs/EVENTS.md). With --json they go out
 * unchanged, one per line on stdout. Otherwise this sink renders them: the
 * progress line is redrawn in place on stderr when it is a terminal, file
 * events become lines according to verbosity, the summary becomes one line.
 */
#include "cli/cli.h"
#include "core/log.h"
#include "core/units.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct cli *out_cli;
static bool out_tty;
static bool out_line_open; /* a progress line is on screen */

static void clear_progress(void)
{
    if (out_line_open) {
        fputs("\r\033[K", stderr);
        out_line_open = false;
    }
}

static void render_progress(json_t *o)
{
    if (!out_cli->progress || !out_tty)
        return;
    char done[32], total[32], rate[32];
    json_t *bt = json_object_get(o, "bytes_total"), *ft = json_object_get(o, "files_total");
    json_t *eta = json_object_get(o, "eta_seconds");
    units_format_size((uint64_t)json_integer_value(json_object_get(o, "bytes_done")), done,
                      sizeof(done));
    if (json_is_integer(bt))
        units_format_size((uint64_t)json_integer_value(bt), total, sizeof(total));
    else
        snprintf(total, sizeof(total), "?");
    units_format_size((uint64_t)json_integer_value(json_object_get(o, "rate")), rate, sizeof(rate));
    char etas[32] = "-";
    if (json_is_integer(eta)) {
        long long s = json_integer_value(eta);
        snprintf(etas, sizeof(etas), "%lldm%02llds", s / 60, s % 60);
    }
    char files[64];
    if (json_is_integer(ft))
        snprintf(files, sizeof(files), "%lld/%lld",
                 json_integer_value(json_object_get(o, "files_done")), json_integer_value(ft));
    else
        snprintf(files, sizeof(files), "%lld/?",
                 json_integer_value(json_object_get(o, "files_done")));
    const char *phase = json_string_value(json_object_get(o, "phase"));
    fprintf(stderr, "\r\033[K%s: %s / %s, %s/s, ETA %s, files %s", phase ? phase : "", done, total,
            rate, etas, files);
    out_line_open = true;
    if (phase && !strcmp(phase, "done")) {
        fputc('\n', stderr);
        out_line_open = false;
    }
}

static void render_file(json_t *o)
{
    const char *action = json_string_value(json_object_get(o, "action"));
    const char *path = json_string_value(json_object_get(o, "path"));
    json_t *er = json_object_get(o, "error");
    bool dry = json_is_true(json_object_get(o, "dry_run"));
    if (!action || !path)
        return;
    if (!strcmp(action, "failed")) {
        clear_progress();
        log_error("%s", json_string_value(json_object_get(er, "message")));
        return;
    }
    bool diff = !strcmp(action, "differ") || !strncmp(action, "missing_on", 10);
    if (diff) {
        clear_progress();
        printf("%s: %s\n", action, path);
        return;
    }
    if (!strcmp(action, "skipped")) {
        if (out_cli->verbose >= 0) {
            clear_progress();
            json_t *why = json_object_get(o, "reason");
            log_warn("skipped '%s': %s", path,
                     json_is_string(why) ? json_string_value(why) : "not a regular file");
        }
        return;
    }
    bool change =
        !strcmp(action, "copied") || !strcmp(action, "updated") || !strcmp(action, "deleted");
    if ((change && (out_cli->verbose >= 1 || dry)) || out_cli->verbose >= 2) {
        clear_progress();
        printf("%s%s: %s\n", dry ? "would be " : "", action, path);
    }
}

static void render_summary(json_t *o)
{
    clear_progress();
    const char *status = json_string_value(json_object_get(o, "status"));
    const char *cmd = json_string_value(json_object_get(o, "command"));
    json_t *er = json_object_get(o, "error");
    if (json_is_object(er))
        log_error("%s", json_string_value(json_object_get(er, "message")));
    if (out_cli->verbose < 0)
        return;
    char bytes[32];
    units_format_size((uint64_t)json_integer_value(json_object_get(o, "bytes_transferred")), bytes,
                      sizeof(bytes));
#define N(k) json_integer_value(json_object_get(o, k))
    bool dry = json_is_true(json_object_get(o, "dry_run"));
    if (cmd && !strcmp(cmd, "prune"))
        fprintf(stderr, "%s%s: %lld runs looked at, %lld objects deleted in %.1f s\n",
                dry ? "dry run, " : "", status, N("files_checked"), N("files_deleted"),
                json_number_value(json_object_get(o, "elapsed")));
    else if (cmd && (!strcmp(cmd, "check") || !strcmp(cmd, "verify")))
        fprintf(stderr, "%s: %lld files checked, %lld differences, %lld failed in %.1f s\n", status,
                N("files_checked"), N("differences"), N("files_failed"),
                json_number_value(json_object_get(o, "elapsed")));
    else
        fprintf(stderr,
                "%s%s: %lld files %s (%s), %lld unchanged, %lld deleted, %lld skipped, "
                "%lld failed in %.1f s\n",
                dry ? "dry run, " : "", status, N("files_transferred"),
                cmd && !strcmp(cmd, "backup")    ? "backed up"
                : cmd && !strcmp(cmd, "restore") ? "restored"
                                                 : "transferred",
                bytes, N("files_unchanged"), N("files_deleted"), N("files_skipped"),
                N("files_failed"), json_number_value(json_object_get(o, "elapsed")));
#undef N
}

static void human_sink(const char *line, void *ctx)
{
    (void)ctx;
    json_t *o = json_loads(line, 0, NULL);
    if (!o)
        return;
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type && !strcmp(type, "progress"))
        render_progress(o);
    else if (type && !strcmp(type, "file"))
        render_file(o);
    else if (type && !strcmp(type, "summary"))
        render_summary(o);
    fflush(stdout);
    json_decref(o);
}

void cli_output_init(struct cli *c, struct event_emitter *em)
{
    out_cli = c;
    out_tty = isatty(STDERR_FILENO);
    em->sink = c->json ? event_sink_stdout : human_sink;
    em->ctx = NULL;
    em->file_actions = 0;
    if (!c->json && c->verbose < 2) {
        /* what render_file shows */
        em->file_actions = 1u << EVENT_ACTION_FAILED | 1u << EVENT_ACTION_DIFFER |
                           1u << EVENT_ACTION_MISSING_DST | 1u << EVENT_ACTION_MISSING_SRC |
                           1u << EVENT_ACTION_SKIPPED;
        if (c->verbose >= 1 || c->dry_run)
            em->file_actions |=
                1u << EVENT_ACTION_COPIED | 1u << EVENT_ACTION_UPDATED | 1u << EVENT_ACTION_DELETED;
    }
}

void cli_output_finish(void)
{
    clear_progress();
    fflush(stdout);
}
