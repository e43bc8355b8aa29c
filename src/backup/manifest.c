/*
 * manifest.c - JSON Lines manifests: writer, bounded-memory reader,
 * SHA256SUMS lines.
 */
#include "backup/manifest.h"

#include "core/timefmt.h"
#include "core/utf8.h"
#include "io/filter.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK ((size_t)64 << 10)

static const char *mode_name(enum manifest_mode m)
{
    return m == MANIFEST_ARCHIVE ? "archive" : "mirror";
}

void manifest_header_owned_clear(struct manifest_header_owned *h)
{
    free(h->source);
    free(h->job);
    free(h->tool);
    free(h->compression);
    free(h->archive);
    memset(h, 0, sizeof(*h));
}

void manifest_entry_clear(struct manifest_entry *ent)
{
    free(ent->path);
    free(ent->target);
    free(ent->err_class);
    free(ent->err_msg);
    memset(ent, 0, sizeof(*ent));
}

void manifest_trailer_owned_clear(struct manifest_trailer_owned *t)
{
    memset(t, 0, sizeof(*t));
}

/* ---- base64 -------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard padded base64; NULL when s is not that. */
static char *b64_decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    if (n % 4)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = s[i + k] == '=' ? -2 : b64_value((unsigned char)s[i + k]);
            bool last = i + 4 == n;
            if (v[k] == -1 || (v[k] == -2 && (!last || k < 2)) ||
                (k == 3 && v[2] == -2 && v[3] != -2)) {
                free(out);
                return NULL;
            }
        }
        out[o++] = (char)((v[0] << 2) | (v[1] >> 4));
        if (v[2] >= 0)
            out[o++] = (char)(((v[1] & 15) << 4) | (v[2] >> 2));
        if (v[3] >= 0)
            out[o++] = (char)(((v[2] & 3) << 6) | v[3]);
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Set key (or key_b64 when not UTF-8) to the bytes. */
static int set_bytes(json_t *o, const char *key, const char *p, size_t n)
{
    if (utf8_valid(p, n) && !memchr(p, '\0', n))
        return json_object_set_new(o, key, json_stringn(p, n));
    char k[32];
    snprintf(k, sizeof(k), "%s_b64", key);
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *b = malloc(cap);
    if (!b)
        return -1;
    base64_encode((const unsigned char *)p, n, b, cap);
    int r = json_object_set_new(o, k, json_string(b));
    free(b);
    return r;
}

/* ---- writer -------------------------------------------------------------- */

struct manifest_writer {
    manifest_sink_fn sink;
    void *ctx;
    char *last;
    size_t last_len;
    bool have_last;
};

struct manifest_writer *manifest_writer_new(manifest_sink_fn sink, void *ctx)
{
    struct manifest_writer *w = calloc(1, sizeof(*w));
    if (w) {
        w->sink = sink;
        w->ctx = ctx;
    }
    return w;
}

void manifest_writer_free(struct manifest_writer *w)
{
    if (!w)
        return;
    free(w->last);
    free(w);
}

static int emit(struct manifest_writer *w, json_t *o, struct err *e)
{
    if (!o)
        return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
    size_t n = strlen(s);
    s[n] = '\n'; /* over the NUL */
    int r = w->sink(w->ctx, s, n + 1, e);
    free(s);
    return r;
}

int manifest_write_header(struct manifest_writer *w, const struct manifest_header *h, struct err *e)
{
    char started[TIMEFMT_LEN + 1];
    time_format_ms(h->started_ms, started);
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", "header", "format_version",
                          h->format_version ? h->format_version : MANIFEST_FORMAT_VERSION, "run",
                          h->run, "mode", mode_name(h->mode), "source", h->source ? h->source : "");
    if (o && h->job)
        json_object_set_new(o, "job", json_string(h->job));
    if (o) {
        json_object_set_new(o, "tool", json_string(h->tool ? h->tool : "arca"));
        json_object_set_new(o, "started", json_string(started));
    }
    if (o && h->compression)
        json_object_set_new(o, "compression", json_string(h->compression));
    if (o && h->archive)
        json_object_set_new(o, "archive", json_string(h->archive));
    return emit(w, o, e);
}

static int path_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

int manifest_write_entry(struct manifest_writer *w, const struct manifest_entry *ent, struct err *e)
{
    if (w->have_last && path_cmp(w->last, w->last_len, ent->path, ent->path_len) >= 0)
        return err_set(e, ERR_INTERNAL, "manifest entries out of order at '%.*s'",
                       (int)(ent->path_len > 200 ? 200 : ent->path_len), ent->path);
    char *copy = malloc(ent->path_len + 1);
    if (!copy)
        return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
    memcpy(copy, ent->path, ent->path_len);
    free(w->last);
    w->last = copy;
    w->last_len = ent->path_len;
    w->have_last = true;

    json_t *o = json_object();
    if (!o)
        return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
    json_object_set_new(o, "type", json_string(ent->type == MANIFEST_SYMLINK ? "symlink" : "file"));
    set_bytes(o, "path", ent->path, ent->path_len);
    json_object_set_new(o, "size", json_integer((json_int_t)ent->size));
    if (ent->mtime_ns != INT64_MIN)
        json_object_set_new(o, "mtime_ns", json_integer(ent->mtime_ns));
    if (ent->mode)
        json_object_set_new(o, "mode", json_integer(ent->mode));
    if (ent->type == MANIFEST_SYMLINK && ent->target)
        set_bytes(o, "target", ent->target, ent->target_len);
    if (ent->sha256[0])
        json_object_set_new(o, "sha256", json_string(ent->sha256));
    if (ent->stored_current)
        json_object_set_new(o, "stored", json_string("current"));
    if (ent->offset >= 0)
        json_object_set_new(o, "offset", json_integer(ent->offset));
    if (ent->err_code) {
        char *msg = utf8_sanitize(ent->err_msg ? ent->err_msg : "",
                                  ent->err_msg ? strlen(ent->err_msg) : 0);
        json_object_set_new(
            o, "error",
            json_pack("{s:s, s:s}", "class",
                      ent->err_class ? ent->err_class : err_code_name(ent->err_code), "message",
                      msg ? msg : ""));
        free(msg);
    }
    return emit(w, o, e);
}

int manifest_write_trailer(struct manifest_writer *w, const struct manifest_trailer *t,
                           struct err *e)
{
    char finished[TIMEFMT_LEN + 1];
    time_format_ms(t->finished_ms, finished);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "type", "trailer", "finished", finished,
                          "status", t->status, "files", (json_int_t)t->files, "bytes",
                          (json_int_t)t->bytes, "errors", (json_int_t)t->errors);
    if (o && t->archive_size >= 0)
        json_object_set_new(o, "archive_size", json_integer(t->archive_size));
    if (o && t->archive_sha256[0])
        json_object_set_new(o, "archive_sha256", json_string(t->archive_sha256));
    return emit(w, o, e);
}

/* ---- reader -------------------------------------------------------------- */

struct manifest_reader {
    manifest_read_fn fn;
    void *ctx;
    char *name;
    char *buf; /* unread bytes: buf[pos..len) */
    size_t pos, len, cap;
    bool eof;
    size_t line_no;
    bool header_read, trailer_read;
    char *last;
    size_t last_len;
    bool have_last;
};

struct manifest_reader *manifest_reader_new(manifest_read_fn fn, void *ctx, const char *name)
{
    struct manifest_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->name = strdup(name ? name : "manifest")) || !(r->buf = malloc(READ_CHUNK))) {
        if (r)
            free(r->name);
        free(r);
        return NULL;
    }
    r->fn = fn;
    r->ctx = ctx;
    r->cap = READ_CHUNK;
    return r;
}

void manifest_reader_free(struct manifest_reader *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->buf);
    free(r->last);
    free(r);
}

static int bad(struct manifest_reader *r, struct err *e, const char *what)
{
    return err_set(e, ERR_CORRUPT, "manifest '%s' line %zu: %s", r->name, r->line_no, what);
}

/* Next line (without '\n') in *line and *n, valid until the next call; 0 at
 * EOF (*line NULL), or an error. */
static int next_line(struct manifest_reader *r, char **line, size_t *n, struct err *e)
{
    *line = NULL;
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        if (nl) {
            *line = r->buf + r->pos;
            *n = (size_t)(nl - (r->buf + r->pos));
            *nl = '\0';
            r->pos += *n + 1;
            r->line_no++;
            return 0;
        }
        if (r->eof) {
            if (r->pos < r->len) {
                r->line_no++;
                return bad(r, e, "the last line has no newline (truncated)");
            }
            return 0;
        }
        if (r->len - r->pos > MANIFEST_LINE_MAX) {
            r->line_no++;
            return bad(r, e, "line longer than 1 MiB");
        }
        /* move the partial line to the front, grow if needed, read more */
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
        if (r->cap - r->len < READ_CHUNK) {
            char *nb = realloc(r->buf, r->cap * 2);
            if (!nb)
                return err_set(e, ERR_NOMEM, "out of memory reading '%s'", r->name);
            r->buf = nb;
            r->cap *= 2;
        }
        size_t got = 0;
        int rc = r->fn(r->ctx, r->buf + r->len, r->cap - r->len - 1, &got, e);
        if (rc)
            return rc;
        if (got == 0)
            r->eof = true;
        r->len += got;
    }
}

static int parse_line(struct manifest_reader *r, json_t **out, struct err *e)
{
    char *line;
    size_t n;
    int rc = next_line(r, &line, &n, e);
    if (rc)
        return rc;
    if (!line)
        return err_set(e, ERR_CORRUPT, "manifest '%s' is truncated (no trailer after line %zu)",
                       r->name, r->line_no);
    json_error_t je;
    json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        {
            char why[220];
            snprintf(why, sizeof(why), "not a JSON object (%s)", o ? "another value" : je.text);
            return bad(r, e, why);
        }
    }
    *out = o;
    return 0;
}

static const char *get_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *dup_str(json_t *o, const char *key)
{
    const char *s = get_str(o, key);
    return s ? strdup(s) : NULL;
}

int manifest_read_header(struct manifest_reader *r, struct manifest_header_owned *h, struct err *e)
{
    memset(h, 0, sizeof(*h));
    json_t *o;
    int rc = parse_line(r, &o, e);
    if (rc)
        return rc;
    const char *type = get_str(o, "type");
    json_t *fv = json_object_get(o, "format_version");
    const char *run = get_str(o, "run"), *mode = get_str(o, "mode");
    const char *started = get_str(o, "started");
    if (!type || strcmp(type, "header") != 0)
        rc = bad(r, e, "the first line is not the header");
    else if (!json_is_integer(fv) || json_integer_value(fv) < 1)
        rc = bad(r, e, "'format_version' is not a positive integer");
    else if (json_integer_value(fv) > MANIFEST_FORMAT_VERSION)
        rc = err_set(e, ERR_REFUSED,
                     "manifest '%s' has format version %" JSON_INTEGER_FORMAT
                     "; this arca reads up to %d: upgrade arca",
                     r->name, json_integer_value(fv), MANIFEST_FORMAT_VERSION);
    else if (!run || !runid_valid(run))
        rc = bad(r, e, "'run' is not a run id");
    else if (!mode || (strcmp(mode, "mirror") && strcmp(mode, "archive")))
        rc = bad(r, e, "'mode' is not mirror or archive");
    else if (!started || time_parse_ms(started) < 0)
        rc = bad(r, e, "'started' is not an RFC 3339 UTC time");
    if (!rc) {
        h->format_version = (int)json_integer_value(fv);
        snprintf(h->run, sizeof(h->run), "%s", run);
        h->mode = !strcmp(mode, "archive") ? MANIFEST_ARCHIVE : MANIFEST_MIRROR;
        h->started_ms = time_parse_ms(started);
        h->source = dup_str(o, "source");
        h->job = dup_str(o, "job");
        h->tool = dup_str(o, "tool");
        h->compression = dup_str(o, "compression");
        h->archive = dup_str(o, "archive");
        r->header_read = true;
        if (h->mode == MANIFEST_ARCHIVE && (!h->archive || !h->compression))
            rc = bad(r, e, "an archive manifest needs 'archive' and 'compression'");
    }
    json_decref(o);
    if (rc)
        manifest_header_owned_clear(h);
    return rc;
}

/* key or key_b64 into *out (owned); 0 ok, 1 absent, -1 bad. */
static int get_bytes(json_t *o, const char *key, char **out, size_t *len)
{
    char k[32];
    snprintf(k, sizeof(k), "%s_b64", key);
    json_t *plain = json_object_get(o, key), *b64 = json_object_get(o, k);
    *out = NULL;
    *len = 0;
    if (plain && b64)
        return -1;
    if (plain) {
        if (!json_is_string(plain))
            return -1;
        *len = json_string_length(plain);
        *out = malloc(*len + 1);
        if (!*out)
            return -1;
        memcpy(*out, json_string_value(plain), *len + 1);
        return memchr(*out, '\0', *len) ? -1 : 0;
    }
    if (b64) {
        if (!json_is_string(b64) || !(*out = b64_decode(json_string_value(b64), len)))
            return -1;
        return 0;
    }
    return 1;
}

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int class_code(const char *cls)
{
    for (int c = -1; c >= -40; c--)
        if (!strcmp(err_code_name(c), cls))
            return c;
    return ERR_INTERNAL;
}

static int read_entry(struct manifest_reader *r, json_t *o, const char *type,
                      struct manifest_entry *ent, struct err *e)
{
    memset(ent, 0, sizeof(*ent));
    ent->mtime_ns = INT64_MIN;
    ent->offset = -1;
    ent->type = !strcmp(type, "symlink") ? MANIFEST_SYMLINK : MANIFEST_FILE;
    int g = get_bytes(o, "path", &ent->path, &ent->path_len);
    if (g != 0) {
        manifest_entry_clear(ent);
        return bad(r, e, g > 0 ? "an entry without 'path'" : "a bad 'path' or 'path_b64'");
    }
    json_t *size = json_object_get(o, "size");
    json_t *mt = json_object_get(o, "mtime_ns"), *mode = json_object_get(o, "mode");
    json_t *off = json_object_get(o, "offset"), *err = json_object_get(o, "error");
    const char *sha = get_str(o, "sha256"), *stored = get_str(o, "stored");
    const char *why = NULL;
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        why = "'size' is not a non-negative integer";
    else if (mt && !json_is_integer(mt))
        why = "'mtime_ns' is not an integer";
    else if (mode && (!json_is_integer(mode) || json_integer_value(mode) < 0 ||
                      json_integer_value(mode) > 07777))
        why = "'mode' is not permission bits";
    else if (off && (!json_is_integer(off) || json_integer_value(off) < 0))
        why = "'offset' is not a non-negative integer";
    else if (json_object_get(o, "sha256") && !is_hex64(sha))
        why = "'sha256' is not 64 lowercase hex digits";
    else if (err && (!json_is_object(err) || !get_str(err, "class") || !get_str(err, "message")))
        why = "'error' needs 'class' and 'message'";
    else if (ent->type == MANIFEST_FILE && !err && !sha)
        why = "a file without 'sha256' or 'error'";
    if (why) {
        manifest_entry_clear(ent);
        return bad(r, e, why);
    }
    ent->size = (uint64_t)json_integer_value(size);
    if (mt)
        ent->mtime_ns = json_integer_value(mt);
    if (mode)
        ent->mode = (uint32_t)json_integer_value(mode);
    if (off)
        ent->offset = json_integer_value(off);
    if (sha)
        snprintf(ent->sha256, sizeof(ent->sha256), "%s", sha);
    ent->stored_current = stored && !strcmp(stored, "current");
    if (ent->type == MANIFEST_SYMLINK &&
        get_bytes(o, "target", &ent->target, &ent->target_len) < 0) {
        manifest_entry_clear(ent);
        return bad(r, e, "a bad 'target' or 'target_b64'");
    }
    if (err) {
        ent->err_class = strdup(get_str(err, "class"));
        ent->err_msg = strdup(get_str(err, "message"));
        ent->err_code = class_code(ent->err_class ? ent->err_class : "");
    }
    /* order */
    if (r->have_last && path_cmp(r->last, r->last_len, ent->path, ent->path_len) >= 0) {
        manifest_entry_clear(ent);
        return bad(r, e, "paths out of byte order (or repeated)");
    }
    char *copy = malloc(ent->path_len + 1);
    if (!copy) {
        manifest_entry_clear(ent);
        return err_set(e, ERR_NOMEM, "out of memory reading '%s'", r->name);
    }
    memcpy(copy, ent->path, ent->path_len);
    free(r->last);
    r->last = copy;
    r->last_len = ent->path_len;
    r->have_last = true;
    return 1;
}

static int read_trailer(struct manifest_reader *r, json_t *o, struct manifest_trailer_owned *t,
                        struct err *e)
{
    memset(t, 0, sizeof(*t));
    t->archive_size = -1;
    const char *fin = get_str(o, "finished"), *status = get_str(o, "status");
    json_t *files = json_object_get(o, "files"), *bytes = json_object_get(o, "bytes");
    json_t *errors = json_object_get(o, "errors"), *as = json_object_get(o, "archive_size");
    const char *asha = get_str(o, "archive_sha256");
    if (!fin || time_parse_ms(fin) < 0)
        return bad(r, e, "'finished' is not an RFC 3339 UTC time");
    if (!status || (strcmp(status, "succeeded") && strcmp(status, "partial")))
        return bad(r, e, "'status' is not succeeded or partial");
    if (!json_is_integer(files) || !json_is_integer(bytes) || !json_is_integer(errors) ||
        json_integer_value(files) < 0 || json_integer_value(bytes) < 0 ||
        json_integer_value(errors) < 0)
        return bad(r, e, "'files', 'bytes' and 'errors' must be non-negative integers");
    if (as && (!json_is_integer(as) || json_integer_value(as) < 0))
        return bad(r, e, "'archive_size' is not a non-negative integer");
    if (json_object_get(o, "archive_sha256") && !is_hex64(asha))
        return bad(r, e, "'archive_sha256' is not 64 lowercase hex digits");
    t->finished_ms = time_parse_ms(fin);
    snprintf(t->status, sizeof(t->status), "%s", status);
    t->files = (uint64_t)json_integer_value(files);
    t->bytes = (uint64_t)json_integer_value(bytes);
    t->errors = (uint64_t)json_integer_value(errors);
    if (as)
        t->archive_size = json_integer_value(as);
    if (asha)
        snprintf(t->archive_sha256, sizeof(t->archive_sha256), "%s", asha);
    return 2;
}

int manifest_read_next(struct manifest_reader *r, struct manifest_entry *ent,
                       struct manifest_trailer_owned *t, struct err *e)
{
    if (!r->header_read)
        return err_set(e, ERR_INTERNAL, "manifest '%s': header not read", r->name);
    if (r->trailer_read)
        return err_set(e, ERR_INTERNAL, "manifest '%s': read past the trailer", r->name);
    json_t *o;
    int rc = parse_line(r, &o, e);
    if (rc)
        return rc;
    const char *type = get_str(o, "type");
    if (!type)
        rc = bad(r, e, "a line without 'type'");
    else if (!strcmp(type, "file") || !strcmp(type, "symlink"))
        rc = read_entry(r, o, type, ent, e);
    else if (!strcmp(type, "trailer"))
        rc = read_trailer(r, o, t, e);
    else {
        char why[80];
        snprintf(why, sizeof(why), "unknown type '%.40s'", type);
        rc = bad(r, e, why);
    }
    json_decref(o);
    if (rc == 2) {
        r->trailer_read = true;
        char *line;
        size_t n;
        int x = next_line(r, &line, &n, e);
        if (x)
            return x;
        if (line)
            return bad(r, e, "a line after the trailer");
    }
    return rc;
}

/* ---- SHA256SUMS ----------------------------------------------------------- */

int sha256sums_line(struct buf *out, const char *sha256, const char *path, size_t path_len,
                    struct err *e)
{
    bool esc = memchr(path, '\\', path_len) || memchr(path, '\n', path_len);
    int r = 0;
    if (esc)
        r = buf_puts(out, "\\");
    if (!r)
        r = buf_printf(out, "%s  ", sha256);
    for (size_t i = 0; !r && i < path_len; i++) {
        if (esc && path[i] == '\\')
            r = buf_puts(out, "\\\\");
        else if (esc && path[i] == '\n')
            r = buf_puts(out, "\\n");
        else
            r = buf_append(out, path + i, 1);
    }
    if (!r)
        r = buf_puts(out, "\n");
    if (r)
        return err_set(e, ERR_NOMEM, "out of memory writing SHA256SUMS");
    return 0;
}
