/*
 * test_event.c - the event schema (src/core/event.h, docs/EVENTS.md).
 *
 * Every line is parsed back with jansson. Field names and types are checked
 * against a list written from event.h and, when docs/EVENTS.md is found
 * (ARCA_SOURCE_DIR, else the tree this file sits in), against the field
 * tables of that document too: every documented field of an event must be
 * present, and every field we emit must be documented.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/error.h"
#include "core/event.h"

/* ---- helpers ----------------------------------------------------------- */

static json_t *parse(char *line)
{
    assert_non_null(line);
    assert_null(strchr(line, '\n')); /* one line */
    json_error_t jerr;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        print_error("invalid JSON (%s): %s\n", jerr.text, line);
    assert_non_null(o);
    assert_true(json_is_object(o));
    free(line);
    return o;
}

static void check_common(json_t *o, const char *type)
{
    assert_string_equal(json_string_value(json_object_get(o, "type")), type);
    json_t *v = json_object_get(o, "v");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), EVENT_SCHEMA_VERSION);
    assert_int_equal(EVENT_SCHEMA_VERSION, 1);
    const char *t = json_string_value(json_object_get(o, "time"));
    assert_non_null(t);
    /* 2026-11-22T05:05:54.492Z */
    assert_int_equal(strlen(t), 24);
    for (int i = 0; i < 24; i++) {
        if (i == 4 || i == 7)
            assert_int_equal(t[i], '-');
        else if (i == 10)
            assert_int_equal(t[i], 'T');
        else if (i == 13 || i == 16)
            assert_int_equal(t[i], ':');
        else if (i == 19)
            assert_int_equal(t[i], '.');
        else if (i == 23)
            assert_int_equal(t[i], 'Z');
        else
            assert_true(t[i] >= '0' && t[i] <= '9');
    }
}

static void expect_int(json_t *o, const char *k, long long want)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        print_error("field '%s' is not an integer\n", k);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
}

static void expect_null(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_null(v))
        print_error("field '%s' is missing or not null\n", k);
    assert_true(v && json_is_null(v));
}

static void expect_str(json_t *o, const char *k, const char *want)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s)
        print_error("field '%s' is missing or not a string\n", k);
    assert_non_null(s);
    assert_string_equal(s, want);
}

static void expect_number(json_t *o, const char *k, double want)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_number(v));
    double d = json_number_value(v);
    assert_true(d > want - 1e-6 && d < want + 1e-6);
}

/* Keys of o exactly equal to the NULL-terminated list. */
static void expect_keys(json_t *o, const char *const *keys)
{
    size_t n = 0;
    for (; keys[n]; n++) {
        if (!json_object_get(o, keys[n]))
            print_error("missing field '%s'\n", keys[n]);
        assert_non_null(json_object_get(o, keys[n]));
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known |= !strcmp(keys[i], k);
        if (!known)
            print_error("unexpected field '%s'\n", k);
        assert_true(known);
    }
    assert_int_equal(json_object_size(o), n);
}

static const char *const error_classes[] = {
    "usage",    "config",    "not_found", "auth",     "permission", "network", "tls",      "io",
    "protocol", "cancelled", "memory",    "unsorted", "refused",    "exists",  "internal", NULL,
};

static void expect_error_object(json_t *o, const char *cls, const char *msg)
{
    json_t *er = json_object_get(o, "error");
    assert_true(json_is_object(er));
    static const char *const keys[] = {"class", "message", NULL};
    expect_keys(er, keys);
    const char *c = json_string_value(json_object_get(er, "class"));
    assert_non_null(c);
    bool documented = false;
    for (size_t i = 0; error_classes[i]; i++)
        documented |= !strcmp(error_classes[i], c);
    if (!documented)
        print_error("error class '%s' is not one of docs/EVENTS.md \"Error classes\"\n", c);
    assert_true(documented);
    if (cls)
        assert_string_equal(c, cls);
    if (msg)
        expect_str(er, "message", msg);
}

/* ---- field lists (from event.h / EVENTS.md) ----------------------------- */

static const char *const progress_keys[] = {
    "type",        "v",    "time",        "phase",   "bytes_done", "bytes_total", "files_done",
    "files_total", "rate", "eta_seconds", "current", "elapsed",    NULL,
};

static const char *const file_keys_all[] = {
    "type",   "v",           "time",    "path",  "action", "size",
    "sha256", "server_side", "dry_run", "error", "reason", NULL,
};

/* a failed file: every field but `reason`, which only a skip carries */
static const char *const file_keys_failed[] = {
    "type",   "v",           "time",    "path",  "action", "size",
    "sha256", "server_side", "dry_run", "error", NULL,
};

static const char *const file_keys_min[] = {"type", "v", "time", "path", "action", "size", NULL};

static const char *const summary_keys[] = {
    "type",
    "v",
    "time",
    "command",
    "source",
    "destination",
    "status",
    "dry_run",
    "files_transferred",
    "bytes_transferred",
    "files_unchanged",
    "files_deleted",
    "files_skipped",
    "files_failed",
    "files_checked",
    "differences",
    "elapsed",
    "error",
    NULL,
};

/* ---- tests ------------------------------------------------------------- */

static void test_progress_unknown_totals(void **state)
{
    (void)state;
    struct event_progress p = {
        .phase = EVENT_PHASE_LISTING,
        .bytes_done = 1234,
        .bytes_total = -1,
        .files_done = 7,
        .files_total = -1,
        .rate = 169.7,
        .eta_seconds = -1,
        .current = NULL,
        .elapsed = 0.25,
    };
    json_t *o = parse(event_progress_json(&p));
    check_common(o, "progress");
    expect_keys(o, progress_keys);
    expect_str(o, "phase", "listing");
    expect_int(o, "bytes_done", 1234);
    expect_null(o, "bytes_total");
    expect_int(o, "files_done", 7);
    expect_null(o, "files_total");
    expect_int(o, "rate", 169); /* an integer, per the schema */
    expect_null(o, "eta_seconds");
    expect_null(o, "current");
    expect_number(o, "elapsed", 0.25);
    json_decref(o);
}

static void test_progress_known_totals(void **state)
{
    (void)state;
    struct event_progress p = {
        .phase = EVENT_PHASE_TRANSFERRING,
        .bytes_done = 5000000000ull, /* past 32 bits */
        .bytes_total = 6000000000ll,
        .files_done = 0,
        .files_total = 0,
        .rate = 0,
        .eta_seconds = 0,
        .current = "photos/2024/a b.jpg",
        .elapsed = 12,
    };
    json_t *o = parse(event_progress_json(&p));
    check_common(o, "progress");
    expect_keys(o, progress_keys);
    expect_str(o, "phase", "transferring");
    expect_int(o, "bytes_done", 5000000000ll);
    expect_int(o, "bytes_total", 6000000000ll);
    expect_int(o, "files_done", 0);
    expect_int(o, "files_total", 0); /* 0 is known, not null */
    expect_int(o, "eta_seconds", 0);
    expect_str(o, "current", "photos/2024/a b.jpg");
    expect_number(o, "elapsed", 12);
    json_decref(o);

    static const struct {
        enum event_phase ph;
        const char *name;
    } phases[] = {
        {EVENT_PHASE_LISTING, "listing"},   {EVENT_PHASE_TRANSFERRING, "transferring"},
        {EVENT_PHASE_CHECKING, "checking"}, {EVENT_PHASE_DELETING, "deleting"},
        {EVENT_PHASE_DONE, "done"},
    };
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        assert_string_equal(event_phase_name(phases[i].ph), phases[i].name);
        p.phase = phases[i].ph;
        o = parse(event_progress_json(&p));
        expect_str(o, "phase", phases[i].name);
        json_decref(o);
    }
    assert_string_equal(event_phase_name((enum event_phase)99), "unknown");
}

static void test_file_minimal_and_full(void **state)
{
    (void)state;
    struct event_file f = {.path = "a-b/y", .action = EVENT_ACTION_COPIED, .size = 2};
    json_t *o = parse(event_file_json(&f));
    check_common(o, "file");
    expect_keys(o, file_keys_min); /* optional fields absent, not false/null */
    expect_str(o, "path", "a-b/y");
    expect_str(o, "action", "copied");
    expect_int(o, "size", 2);
    json_decref(o);

    f.size = -1;
    o = parse(event_file_json(&f));
    expect_null(o, "size");
    json_decref(o);

    struct event_file g = {
        .path = "dir/\"quoted\" \\ name\t.txt",
        .action = EVENT_ACTION_FAILED,
        .size = 10,
        .sha256 = "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac",
        .server_side = true,
        .dry_run = true,
        .error_code = ERR_PERM,
        .error = "cannot open 'dir/x': permission denied",
    };
    o = parse(event_file_json(&g));
    check_common(o, "file");
    expect_keys(o, file_keys_failed);
    expect_str(o, "path", "dir/\"quoted\" \\ name\t.txt");
    expect_str(o, "action", "failed");
    expect_str(o, "sha256", "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac");
    assert_true(json_is_true(json_object_get(o, "server_side")));
    assert_true(json_is_true(json_object_get(o, "dry_run")));
    expect_error_object(o, "permission", "cannot open 'dir/x': permission denied");
    json_decref(o);
}

static void test_file_error_classes(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *cls;
    } codes[] = {
        {ERR_USAGE, "usage"},
        {ERR_CONFIG, "config"},
        {ERR_NOT_FOUND, "not_found"},
        {ERR_AUTH, "auth"},
        {ERR_PERM, "permission"},
        {ERR_NET, "network"},
        {ERR_TLS, "tls"},
        {ERR_IO, "io"},
        {ERR_PROTO, "protocol"},
        {ERR_CANCELLED, "cancelled"},
        {ERR_NOMEM, "memory"},
        {ERR_UNSORTED, "unsorted"},
        {ERR_REFUSED, "refused"},
        {ERR_EXISTS, "exists"},
        {ERR_INTERNAL, "internal"},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        struct event_file f = {
            .path = "k",
            .action = EVENT_ACTION_FAILED,
            .size = -1,
            .error_code = codes[i].code,
            .error = "boom",
        };
        json_t *o = parse(event_file_json(&f));
        expect_error_object(o, codes[i].cls, "boom");
        json_decref(o);
    }
    /* a failure without a message still has the error object */
    struct event_file f = {
        .path = "k", .action = EVENT_ACTION_FAILED, .size = -1, .error_code = ERR_IO};
    json_t *o = parse(event_file_json(&f));
    expect_error_object(o, "io", "");
    json_decref(o);
}

static void test_file_skipped_reason(void **state)
{
    (void)state;
    /* the engine reports skipped symlinks with error_code 0 and a reason:
     * that is not an error, so no error object (whose class would have to
     * be an error class) but a `reason` string */
    struct event_file f = {
        .path = "link",
        .action = EVENT_ACTION_SKIPPED,
        .size = -1,
        .error_code = 0,
        .error = "symbolic link, not copied",
    };
    json_t *o = parse(event_file_json(&f));
    expect_str(o, "action", "skipped");
    assert_null(json_object_get(o, "error"));
    expect_str(o, "reason", "symbolic link, not copied");
    json_decref(o);
}

static void test_actions_and_statuses(void **state)
{
    (void)state;
    static const struct {
        enum event_action a;
        const char *name;
    } actions[] = {
        {EVENT_ACTION_COPIED, "copied"},
        {EVENT_ACTION_UPDATED, "updated"},
        {EVENT_ACTION_UNCHANGED, "unchanged"},
        {EVENT_ACTION_DELETED, "deleted"},
        {EVENT_ACTION_SKIPPED, "skipped"},
        {EVENT_ACTION_MATCH, "match"},
        {EVENT_ACTION_DIFFER, "differ"},
        {EVENT_ACTION_MISSING_DST, "missing_on_destination"},
        {EVENT_ACTION_MISSING_SRC, "missing_on_source"},
        {EVENT_ACTION_FAILED, "failed"},
    };
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        assert_string_equal(event_action_name(actions[i].a), actions[i].name);
        struct event_file f = {.path = "p", .action = actions[i].a, .size = 1};
        json_t *o = parse(event_file_json(&f));
        expect_str(o, "action", actions[i].name);
        /* the error object only comes with failures (or a reason) */
        assert_int_equal(json_object_get(o, "error") != NULL, actions[i].a == EVENT_ACTION_FAILED);
        json_decref(o);
    }
    assert_string_equal(event_action_name((enum event_action)99), "unknown");

    static const struct {
        enum event_status s;
        const char *name;
    } statuses[] = {
        {EVENT_STATUS_SUCCEEDED, "succeeded"},     {EVENT_STATUS_PARTIAL, "partial"},
        {EVENT_STATUS_FAILED, "failed"},           {EVENT_STATUS_CANCELLED, "cancelled"},
        {EVENT_STATUS_DIFFERENCES, "differences"},
    };
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        assert_string_equal(event_status_name(statuses[i].s), statuses[i].name);
    assert_string_equal(event_status_name((enum event_status)99), "unknown");
}

static void test_summary(void **state)
{
    (void)state;
    struct event_summary s = {
        .command = "sync",
        .source = "src",
        .destination = "s3://b/p",
        .status = EVENT_STATUS_SUCCEEDED,
        .files_transferred = 1,
        .bytes_transferred = 2,
        .files_unchanged = 3,
        .files_deleted = 4,
        .files_skipped = 5,
        .files_failed = 6,
        .differences = 7,
        .files_checked = 8,
        .elapsed = 0.011,
        .dry_run = false,
    };
    json_t *o = parse(event_summary_json(&s));
    check_common(o, "summary");
    expect_keys(o, summary_keys);
    expect_str(o, "command", "sync");
    expect_str(o, "source", "src");
    expect_str(o, "destination", "s3://b/p");
    expect_str(o, "status", "succeeded");
    assert_true(json_is_false(json_object_get(o, "dry_run")));
    expect_int(o, "files_transferred", 1);
    expect_int(o, "bytes_transferred", 2);
    expect_int(o, "files_unchanged", 3);
    expect_int(o, "files_deleted", 4);
    expect_int(o, "files_skipped", 5);
    expect_int(o, "files_failed", 6);
    expect_int(o, "differences", 7);
    expect_int(o, "files_checked", 8);
    expect_number(o, "elapsed", 0.011);
    expect_null(o, "error");
    json_decref(o);

    struct event_summary f = {
        .command = "copy",
        .source = NULL,
        .destination = NULL,
        .status = EVENT_STATUS_FAILED,
        .dry_run = true,
        .error_code = ERR_NET,
        .error = "listing 's3://b/p': connection refused; check --endpoint",
    };
    o = parse(event_summary_json(&f));
    check_common(o, "summary");
    expect_keys(o, summary_keys);
    expect_str(o, "status", "failed");
    expect_null(o, "source");
    expect_null(o, "destination");
    assert_true(json_is_true(json_object_get(o, "dry_run")));
    expect_error_object(o, "network", "listing 's3://b/p': connection refused; check --endpoint");
    json_decref(o);
}

static void test_non_utf8(void **state)
{
    (void)state;
    const char *bad = "dir/bad\xff\xfe\xc3 name";
    struct event_file f = {
        .path = bad,
        .action = EVENT_ACTION_FAILED,
        .size = 3,
        .error_code = ERR_IO,
        .error = "cannot read 'dir/bad\xff\xfe\xc3 name'",
    };
    json_t *o = parse(event_file_json(&f));
    const char *p = json_string_value(json_object_get(o, "path"));
    assert_non_null(p);
    assert_true(!strncmp(p, "dir/bad", 7));
    assert_true(strlen(p) >= 12 && !strcmp(p + strlen(p) - 5, " name"));
    expect_error_object(o, "io", NULL);
    json_decref(o);

    /* only the bad bytes are replaced (U+FFFD); valid characters stay */
    f.path = "Z\xc3\xbcrich/\xff.txt";
    o = parse(event_file_json(&f));
    assert_string_equal(json_string_value(json_object_get(o, "path")),
                        "Z\xc3\xbcrich/\xef\xbf\xbd.txt");
    json_decref(o);

    struct event_progress pr = {
        .bytes_total = -1, .files_total = -1, .eta_seconds = -1, .current = bad};
    o = parse(event_progress_json(&pr));
    /* current: a string or null, never a missing field */
    json_t *cur = json_object_get(o, "current");
    assert_true(cur && (json_is_string(cur) || json_is_null(cur)));
    json_decref(o);

    struct event_summary s = {.command = "copy", .source = bad, .destination = "/tmp/\x80"};
    o = parse(event_summary_json(&s));
    expect_keys(o, summary_keys);
    assert_true(json_is_string(json_object_get(o, "source")));
    assert_true(json_is_string(json_object_get(o, "destination")));
    json_decref(o);
}

/* ---- emitters ---------------------------------------------------------- */

struct captured {
    int n;
    char last[4096];
};

static void capture_sink(const char *line, void *ctx)
{
    struct captured *c = ctx;
    c->n++;
    snprintf(c->last, sizeof(c->last), "%s", line);
}

static void test_emitters(void **state)
{
    (void)state;
    struct captured c = {0};
    struct event_emitter em = {capture_sink, &c, 0};
    struct event_progress p = {.bytes_total = -1, .files_total = -1, .eta_seconds = -1};
    struct event_file f = {.path = "x", .action = EVENT_ACTION_DELETED, .size = 5};
    struct event_summary s = {.command = "check", .status = EVENT_STATUS_DIFFERENCES};

    event_emit_progress(&em, &p);
    assert_int_equal(c.n, 1);
    json_t *o = parse(strdup(c.last));
    check_common(o, "progress");
    json_decref(o);

    event_emit_file(&em, &f);
    assert_int_equal(c.n, 2);
    o = parse(strdup(c.last));
    expect_str(o, "action", "deleted");
    json_decref(o);

    event_emit_summary(&em, &s);
    assert_int_equal(c.n, 3);
    o = parse(strdup(c.last));
    expect_str(o, "status", "differences");
    expect_str(o, "command", "check");
    json_decref(o);

    /* no sink, no emitter: dropped quietly */
    struct event_emitter none = {NULL, NULL, 0};
    event_emit_progress(&none, &p);
    event_emit_file(&none, &f);
    event_emit_summary(&none, &s);
    event_emit_progress(NULL, &p);
    event_emit_file(NULL, &f);
    event_emit_summary(NULL, &s);
    assert_int_equal(c.n, 3);
}

/* ---- docs/EVENTS.md ---------------------------------------------------- */

static char *read_events_doc(void)
{
    char path[4096];
    const char *src = getenv("ARCA_SOURCE_DIR");
    if (src && *src) {
        snprintf(path, sizeof(path), "%s/docs/EVENTS.md", src);
    } else {
        /* this file is <src>/tests/unit/test_event.c */
        snprintf(path, sizeof(path), "%s", __FILE__);
        char *t = strstr(path, "tests/unit/test_event.c");
        if (!t)
            return NULL;
        snprintf(t, sizeof(path) - (size_t)(t - path), "docs/EVENTS.md");
    }
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char *doc = calloc(1, 1 << 20);
    if (doc) {
        size_t got = fread(doc, 1, (1 << 20) - 1, fp);
        doc[got] = '\0';
    }
    fclose(fp);
    return doc;
}

/* Backquoted names in the first cell of table rows between `from` and the
 * next "\n## " heading. Returns how many were stored. */
static size_t doc_fields(const char *doc, const char *from, char names[][64], size_t max)
{
    const char *sec = strstr(doc, from);
    if (!sec)
        return 0;
    const char *end = strstr(sec + strlen(from), "\n## ");
    if (!end)
        end = sec + strlen(sec);
    size_t n = 0;
    for (const char *line = sec; line && line < end; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (line[0] != '|')
            continue;
        const char *cell_end = strchr(line + 1, '|');
        if (!cell_end || cell_end > end)
            continue;
        for (const char *q = line + 1; q < cell_end;) {
            const char *a = memchr(q, '`', (size_t)(cell_end - q));
            if (!a)
                break;
            const char *b = memchr(a + 1, '`', (size_t)(cell_end - a - 1));
            if (!b)
                break;
            size_t len = (size_t)(b - a - 1);
            if (len && len < 64 && n < max) {
                memcpy(names[n], a + 1, len);
                names[n][len] = '\0';
                n++;
            }
            q = b + 1;
        }
    }
    return n;
}

static bool in_list(const char *const *list, const char *k)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], k))
            return true;
    return false;
}

static void check_against_doc(const char *doc, const char *heading, const char *const *keys)
{
    char names[64][64];
    size_t n = doc_fields(doc, heading, names, 64);
    if (!n)
        print_error("docs/EVENTS.md: no field table under '%s'\n", heading);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        if (!in_list(keys, names[i]))
            print_error("docs/EVENTS.md documents '%s' under '%s' but the event lacks it\n",
                        names[i], heading);
        assert_true(in_list(keys, names[i]));
    }
    for (size_t i = 0; keys[i]; i++) {
        bool documented = false;
        for (size_t k = 0; k < n; k++)
            documented |= !strcmp(names[k], keys[i]);
        if (!documented) {
            /* the common fields are documented once, at the top */
            char common[16][64];
            size_t m = doc_fields(doc, "Common fields", common, 16);
            for (size_t k = 0; k < m; k++)
                documented |= !strcmp(common[k], keys[i]);
        }
        if (!documented)
            print_error("field '%s' of '%s' is not in docs/EVENTS.md\n", keys[i], heading);
        assert_true(documented);
    }
}

static void test_fields_match_events_md(void **state)
{
    (void)state;
    char *doc = read_events_doc();
    if (!doc) {
        /* no document in this tree: the lists above (from event.h) stand */
        skip();
    }
    check_against_doc(doc, "## `progress`", progress_keys);
    check_against_doc(doc, "## `file`", file_keys_all);
    check_against_doc(doc, "## `summary`", summary_keys);
    /* the documented action, status and class words are the ones we emit */
    const char *words[] = {"copied",
                           "updated",
                           "unchanged",
                           "deleted",
                           "skipped",
                           "failed",
                           "match",
                           "differ",
                           "missing_on_destination",
                           "missing_on_source",
                           "succeeded",
                           "partial",
                           "cancelled",
                           "differences",
                           "listing",
                           "transferring",
                           "checking",
                           "deleting",
                           "done"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        char q[64];
        snprintf(q, sizeof(q), "`%s`", words[i]);
        if (!strstr(doc, q))
            print_error("'%s' is not in docs/EVENTS.md\n", words[i]);
        assert_non_null(strstr(doc, q));
    }
    for (size_t i = 0; error_classes[i]; i++) {
        char q[64];
        snprintf(q, sizeof(q), "`%s`", error_classes[i]);
        assert_non_null(strstr(doc, q));
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_unknown_totals),
        cmocka_unit_test(test_progress_known_totals),
        cmocka_unit_test(test_file_minimal_and_full),
        cmocka_unit_test(test_file_error_classes),
        cmocka_unit_test(test_file_skipped_reason),
        cmocka_unit_test(test_actions_and_statuses),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_non_utf8),
        cmocka_unit_test(test_emitters),
        cmocka_unit_test(test_fields_match_events_md),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
