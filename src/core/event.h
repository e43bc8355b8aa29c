/*
 * event.h - the one event schema (docs/EVENTS.md).
 *
 * Every operation reports through these events: `--json` prints them as
 * JSON lines on stdout; the service's run child will send the same lines
 * over its pipe, store them as the run log and stream them to the live
 * view. Fields are only ever added, never renamed or removed.
 *
 * An emitter is a sink function plus its context; emitting is thread-safe
 * (one line is written whole under a lock).
 */
#ifndef ARCA_CORE_EVENT_H
#define ARCA_CORE_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#define EVENT_SCHEMA_VERSION 1

enum event_phase {
    EVENT_PHASE_LISTING = 0,
    EVENT_PHASE_TRANSFERRING,
    EVENT_PHASE_CHECKING,
    EVENT_PHASE_DELETING,
    EVENT_PHASE_DONE,
};

struct event_progress {
    enum event_phase phase;
    uint64_t bytes_done;
    int64_t bytes_total; /* -1: unknown (listing not finished) -> null */
    uint64_t files_done;
    int64_t files_total; /* -1: unknown -> null */
    double rate;         /* bytes per second over the last interval */
    int64_t eta_seconds; /* -1: unknown -> null */
    const char *current; /* path being worked on, may be NULL */
    double elapsed;      /* seconds since start */
};

/* What happened to one path. */
enum event_action {
    EVENT_ACTION_COPIED = 0,  /* new at destination */
    EVENT_ACTION_UPDATED,     /* replaced a different version */
    EVENT_ACTION_UNCHANGED,   /* already identical, not transferred */
    EVENT_ACTION_DELETED,     /* removed from destination (sync) */
    EVENT_ACTION_SKIPPED,     /* not handled on purpose (symlink, special file) */
    EVENT_ACTION_MATCH,       /* check: identical */
    EVENT_ACTION_DIFFER,      /* check: content differs */
    EVENT_ACTION_MISSING_DST, /* check: only in source */
    EVENT_ACTION_MISSING_SRC, /* check: only in destination */
    EVENT_ACTION_FAILED,      /* an error for this path; see error fields */
};

struct event_file {
    const char *path;
    enum event_action action;
    int64_t size;       /* -1 when unknown */
    const char *sha256; /* hex or NULL */
    bool server_side;   /* copied on the server */
    bool dry_run;       /* only reported, nothing changed */
    int error_code;     /* ERR_* when action is FAILED, else 0 */
    const char *error;  /* message when action is FAILED or SKIPPED */
};

enum event_status {
    EVENT_STATUS_SUCCEEDED = 0,
    EVENT_STATUS_PARTIAL,
    EVENT_STATUS_FAILED,
    EVENT_STATUS_CANCELLED,
    EVENT_STATUS_DIFFERENCES, /* check found differences */
};

struct event_summary {
    const char *command; /* "copy", "sync", "check", ... */
    const char *source;  /* display names, may be NULL */
    const char *destination;
    enum event_status status;
    uint64_t files_transferred;
    uint64_t bytes_transferred;
    uint64_t files_unchanged;
    uint64_t files_deleted;
    uint64_t files_skipped;
    uint64_t files_failed;
    uint64_t differences;
    uint64_t files_checked;
    double elapsed;
    bool dry_run;
    int error_code;    /* whole-operation error, 0 if none */
    const char *error; /* its message */
};

typedef void (*event_sink_fn)(const char *json_line, void *ctx);

struct event_emitter {
    event_sink_fn sink; /* NULL: events are dropped */
    void *ctx;
    /* 0: every file event; else only those whose action's bit
     * (1u << action) is set, so a sink that shows few of them is not given
     * (and no one formats) one per unchanged file */
    unsigned file_actions;
};

/* Build the JSON line (without newline) of an event into a malloc'ed
 * string the caller frees; NULL on allocation failure. Exposed for tests. */
char *event_progress_json(const struct event_progress *p);
char *event_file_json(const struct event_file *f);
char *event_summary_json(const struct event_summary *s);

void event_emit_progress(const struct event_emitter *em, const struct event_progress *p);
void event_emit_file(const struct event_emitter *em, const struct event_file *f);
void event_emit_summary(const struct event_emitter *em, const struct event_summary *s);

/* A sink that writes lines to stdout (thread-safe, flushed per line). */
void event_sink_stdout(const char *json_line, void *ctx);

const char *event_action_name(enum event_action a);
const char *event_status_name(enum event_status s);
const char *event_phase_name(enum event_phase p);

#endif
