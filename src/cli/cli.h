/*
 * cli.h - the one-shot command line: option parsing shared by commands,
 * and the human / JSON output of events.
 */
#ifndef ARCA_CLI_CLI_H
#define ARCA_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "backup/policy.h"
#include "core/config.h"
#include "core/event.h"
#include "storage/remote.h"

struct cli {
    const char *command;
    const char *config_path;
    bool config_given;
    struct config cfg;
    struct remote_flags rflags;
    bool json;
    bool progress;
    int verbose; /* -1 quiet, 0 normal, 1 -v, 2 -vv */
    bool dry_run;
    bool checksum;
    bool allow_empty_source;
    bool report_sha256;
    int transfers;
    int read_streams;            /* 0: the engine's default */
    uint64_t read_stream_cutoff; /* 0: the engine's default */
    int64_t max_delete;
    const char *mode;        /* backup --mode */
    const char *compression; /* backup --compression */
    const char *run_id;      /* restore/verify --run */
    const char *includes[64];
    int nincludes;        /* restore --include, repeatable */
    bool read_data;       /* verify --read-data */
    struct policy policy; /* prune --keep-... */
    const char *against;  /* verify --against SRC */
    uint64_t bwlimit;
    char *args[4];
    int nargs;
};

/* Output: an event emitter that prints JSON lines (--json) or renders them
 * for people (progress line on a TTY with --progress, per-file lines with
 * -v, differences and failures always, a summary unless -q). */
void cli_output_init(struct cli *c, struct event_emitter *em);
void cli_output_finish(void);

/* Report a whole-command error (a summary event with --json, a log line)
 * and return its exit status. */
int cli_fail(struct cli *c, const struct err *e);
/* Exit status of a command that ran: r its error (0 = none), else by
 * status. */
int cli_exit_status(int r, enum event_status status);

int cli_cmd_ls(struct cli *c);
int cli_cmd_transfer(struct cli *c); /* copy, sync, check */
int cli_cmd_backup(struct cli *c);
int cli_cmd_runs(struct cli *c);
int cli_cmd_restore(struct cli *c);
int cli_cmd_verify(struct cli *c);
int cli_cmd_prune(struct cli *c);

#endif
