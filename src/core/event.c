#include "core/event.h"
#include "core/error.h"
#include "core/utf8.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;

const char *event_action_name(enum event_action a)
{
    static const char *names[] = {"copied",
                                  "updated",
                                  "unchanged",
                                  "deleted",
                                  "skipped",
                                  "match",
                                  "differ",
                                  "missing_on_destination",
                                  "missing_on_source",
                                  "failed"};
    return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "unknown";
}

const char *event_status_name(enum event_status s)
{
    static const char *names[] = {"succeeded", "partial", "failed", "cancelled", "differences"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

const char *event_phase_name(enum event_phase p)
{
    static const char *names[] = {"listing", "transferring", "checking", "deleting", "done"};
    return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "unknown";
}

static json_t *path_json(const char *path);

static json_t *event_new(const char *type)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char when[40], stamp[64];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof(stamp), "%s.%03dZ", when, (int)((tv.tv_usec / 1000) % 1000));
    return json_pack("{s:s, s:i, s:s}", "type", type, "v", EVENT_SCHEMA_VERSION, "time", stamp);
}

static json_t *int_or_null(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static char *event_dump(json_t *o)
{
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
    json_decref(o);
    return s;
}

char *event_progress_json(const struct event_progress *p)
{
    json_t *o = event_new("progress");
    if (!o)
        return NULL;
    json_object_set_new(o, "phase", json_string(event_phase_name(p->phase)));
    json_object_set_new(o, "bytes_done", json_integer((json_int_t)p->bytes_done));
    json_object_set_new(o, "bytes_total", int_or_null(p->bytes_total));
    json_object_set_new(o, "files_done", json_integer((json_int_t)p->files_done));
    json_object_set_new(o, "files_total", int_or_null(p->files_total));
    json_object_set_new(o, "rate", json_integer((json_int_t)p->rate));
    json_object_set_new(o, "eta_seconds", int_or_null(p->eta_seconds));
    json_object_set_new(o, "current", p->current ? path_json(p->current) : json_null());
    json_object_set_new(o, "elapsed", json_real(p->elapsed));
    return event_dump(o);
}

/* Paths that are not valid UTF-8 cannot be JSON strings (json_string()
 * refuses them): each byte that is not UTF-8 becomes U+FFFD, the rest of
 * the path stays as it is. (Manifests will carry such names exactly, as
 * path_b64.) */
static json_t *path_json(const char *path)
{
    json_t *s = json_string(path);
    if (s)
        return s;
    char *copy = utf8_sanitize(path, strlen(path));
    if (!copy)
        return json_null();
    s = json_string(copy);
    free(copy);
    return s ? s : json_null();
}

char *event_file_json(const struct event_file *f)
{
    json_t *o = event_new("file");
    if (!o)
        return NULL;
    json_object_set_new(o, "path", path_json(f->path));
    json_object_set_new(o, "action", json_string(event_action_name(f->action)));
    json_object_set_new(o, "size", int_or_null(f->size));
    if (f->sha256)
        json_object_set_new(o, "sha256", json_string(f->sha256));
    if (f->server_side)
        json_object_set_new(o, "server_side", json_true());
    if (f->dry_run)
        json_object_set_new(o, "dry_run", json_true());
    if (f->action == EVENT_ACTION_FAILED || f->error_code) {
        json_t *er = json_object();
        int code = f->error_code ? f->error_code : ERR_INTERNAL;
        json_object_set_new(er, "class", json_string(err_code_name(code)));
        json_object_set_new(er, "message", path_json(f->error ? f->error : ""));
        json_object_set_new(o, "error", er);
    } else if (f->error) {
        json_object_set_new(o, "reason", path_json(f->error)); /* e.g. why it was skipped */
    }
    return event_dump(o);
}

char *event_summary_json(const struct event_summary *s)
{
    json_t *o = event_new("summary");
    if (!o)
        return NULL;
    json_object_set_new(o, "command", json_string(s->command ? s->command : ""));
    json_object_set_new(o, "source", s->source ? path_json(s->source) : json_null());
    json_object_set_new(o, "destination", s->destination ? path_json(s->destination) : json_null());
    json_object_set_new(o, "status", json_string(event_status_name(s->status)));
    json_object_set_new(o, "dry_run", json_boolean(s->dry_run));
    json_object_set_new(o, "files_transferred", json_integer((json_int_t)s->files_transferred));
    json_object_set_new(o, "bytes_transferred", json_integer((json_int_t)s->bytes_transferred));
    json_object_set_new(o, "files_unchanged", json_integer((json_int_t)s->files_unchanged));
    json_object_set_new(o, "files_deleted", json_integer((json_int_t)s->files_deleted));
    json_object_set_new(o, "files_skipped", json_integer((json_int_t)s->files_skipped));
    json_object_set_new(o, "files_failed", json_integer((json_int_t)s->files_failed));
    json_object_set_new(o, "files_checked", json_integer((json_int_t)s->files_checked));
    json_object_set_new(o, "differences", json_integer((json_int_t)s->differences));
    json_object_set_new(o, "elapsed", json_real(s->elapsed));
    if (s->error_code) {
        json_t *er = json_object();
        json_object_set_new(er, "class", json_string(err_code_name(s->error_code)));
        json_object_set_new(er, "message", path_json(s->error ? s->error : ""));
        json_object_set_new(o, "error", er);
    } else {
        json_object_set_new(o, "error", json_null());
    }
    return event_dump(o);
}

static void emit(const struct event_emitter *em, char *line)
{
    if (line && em && em->sink) {
        pthread_mutex_lock(&event_lock);
        em->sink(line, em->ctx);
        pthread_mutex_unlock(&event_lock);
    }
    free(line);
}

void event_emit_progress(const struct event_emitter *em, const struct event_progress *p)
{
    if (em && em->sink)
        emit(em, event_progress_json(p));
}

void event_emit_file(const struct event_emitter *em, const struct event_file *f)
{
    if (em && em->sink && (!em->file_actions || (em->file_actions & (1u << f->action))))
        emit(em, event_file_json(f));
}

void event_emit_summary(const struct event_emitter *em, const struct event_summary *s)
{
    if (em && em->sink)
        emit(em, event_summary_json(s));
}

void event_sink_stdout(const char *json_line, void *ctx)
{
    (void)ctx;
    fputs(json_line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}
