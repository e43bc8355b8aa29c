/*
 * manifest.c - JSON Lines manifests (docs/FORMAT.md): writer, bounded-memory
 * reader, SHA256SUMS lines.
 *
 * Both sides build or parse one line at a time with jansson: a line is one
 * small object, so the cost of a DOM per line is negligible next to the
 * I/O, and jansson does the escaping and the UTF-8 checks. Memory does not
 * grow with the number of entries: the reader keeps one line (at most
 * MANIFEST_LINE_MAX) plus the previous path, for the order check.
 *
 * The writer refuses (ERR_INTERNAL) what the reader would refuse, so a
 * manifest arca writes is always one arca reads back.
 */
#include "backup/manifest.h"
#include "core/buf.h"

#include "core/timefmt.h"
#include "core/utf8.h"
#include "io/filter.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK ((size_t)64 << 10)
/* bytes of a path quoted in a message (ERR_MSG_MAX holds two of them) */
#define MSG_PATH_MAX 120

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
    ent->mtime_ns = INT64_MIN;
    ent->offset = -1;
}

void manifest_trailer_owned_clear(struct manifest_trailer_owned *t)
{
    memset(t, 0, sizeof(*t));
    t->archive_size = -1;
}

/* ---- helpers -------------------------------------------------------------- */

static int path_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* p[0..n) for a message: printable ASCII as is, '\\' doubled, any other byte
 * as \xHH, cut with "..." after MSG_PATH_MAX bytes. out holds at least
 * 4 * MSG_PATH_MAX + 4 bytes. */
static void path_for_msg(char *out, const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < MSG_PATH_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        }
    }
    if (n > MSG_PATH_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
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

/* ---- base64 --------------------------------------------------------------- */

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

/* Standard padded base64 (RFC 4648 section 4, canonical: the unused bits of
 * the last symbol are zero) of s[0..n) into a malloc'ed, NUL-terminated
 * buffer; NULL when s is not that (or out of memory). */
static char *b64_decode(const char *s, size_t n, size_t *out_len)
{
    if (n == 0 || n % 4)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = s[i + k] == '=' ? -2 : b64_value((unsigned char)s[i + k]);
        bool ok = v[0] >= 0 && v[1] >= 0 && v[2] != -1 && v[3] != -1 &&
                  (last || (v[2] >= 0 && v[3] >= 0)) && !(v[2] == -2 && v[3] != -2) &&
                  !(v[2] == -2 && (v[1] & 15)) && !(v[2] >= 0 && v[3] == -2 && (v[2] & 3));
        if (!ok) {
            free(out);
            return NULL;
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

/* ---- writer --------------------------------------------------------------- */

enum writer_state { W_NEW, W_ENTRIES, W_DONE };

struct manifest_writer {
    manifest_sink_fn sink;
    void *ctx;
    enum writer_state state;
    struct buf line; /* an entry being formatted (the common case, without jansson) */
    char *last;      /* the previous entry's path, for the order check */
    size_t last_len;
    bool have_last;
};

struct manifest_writer *manifest_writer_new(manifest_sink_fn sink, void *ctx)
{
    struct manifest_writer *w = calloc(1, sizeof(*w));
    if (w) {
        w->sink = sink;
        w->ctx = ctx;
        buf_init(&w->line, 0);
    }
    return w;
}

void manifest_writer_free(struct manifest_writer *w)
{
    if (!w)
        return;
    buf_release(&w->line);
    free(w->last);
    free(w);
}

/* Builds an object and remembers whether any step failed (out of memory,
 * or a string jansson refused), so one check at the end covers them all. */
struct obj {
    json_t *o;
    bool failed;
};

static void put(struct obj *b, const char *key, json_t *v)
{
    if (!v || !b->o || json_object_set_new(b->o, key, v) != 0)
        b->failed = true;
}

/* A string field from text that should be UTF-8 (a remote, a message): any
 * invalid byte becomes U+FFFD rather than losing the field. */
static void put_text(struct obj *b, const char *key, const char *s)
{
    char *clean = utf8_sanitize(s, strlen(s));
    put(b, key, clean ? json_string(clean) : NULL);
    free(clean);
}

/* key, or key_b64 when p[0..n) is not valid UTF-8. */
static void put_bytes(struct obj *b, const char *key, const char *p, size_t n)
{
    if (utf8_valid(p, n)) {
        put(b, key, json_stringn(p, n));
        return;
    }
    char k[32];
    snprintf(k, sizeof(k), "%s_b64", key);
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *enc = malloc(cap);
    if (enc)
        base64_encode((const unsigned char *)p, n, enc, cap);
    put(b, k, enc ? json_string(enc) : NULL);
    free(enc);
}

/* One object as one line to the sink; consumes b->o. */
static int emit(struct manifest_writer *w, struct obj *b, struct err *e)
{
    char *s = b->failed ? NULL : json_dumps(b->o, JSON_COMPACT);
    json_decref(b->o);
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
    size_t n = strlen(s);
    s[n] = '\n'; /* over the NUL: the line is n + 1 bytes */
    int r = w->sink(w->ctx, s, n + 1, e);
    free(s);
    return r;
}

int manifest_write_header(struct manifest_writer *w, const struct manifest_header *h, struct err *e)
{
    if (w->state != W_NEW)
        return err_set(e, ERR_INTERNAL, "manifest header written twice");
    int fv = h->format_version ? h->format_version : MANIFEST_FORMAT_VERSION;
    if (fv != MANIFEST_FORMAT_VERSION)
        return err_set(e, ERR_INTERNAL, "manifest format version %d is not %d", fv,
                       MANIFEST_FORMAT_VERSION);
    if (!runid_valid(h->run))
        return err_set(e, ERR_INTERNAL, "manifest header: '%.*s' is not a run id", RUNID_LEN,
                       h->run);
    if (h->mode == MANIFEST_ARCHIVE && (!h->compression || !h->archive))
        return err_set(e, ERR_INTERNAL, "an archive manifest needs its compression and archive");
    if (h->started_ms < 0)
        return err_set(e, ERR_INTERNAL, "manifest header: start time before 1970");
    char started[TIMEFMT_LEN + 1];
    time_format_ms(h->started_ms, started);
    struct obj b = {json_object(), false};
    put(&b, "type", json_string("header"));
    put(&b, "format_version", json_integer(fv));
    put(&b, "run", json_string(h->run));
    put(&b, "mode", json_string(h->mode == MANIFEST_ARCHIVE ? "archive" : "mirror"));
    put_text(&b, "source", h->source ? h->source : "");
    if (h->job)
        put_text(&b, "job", h->job);
    put_text(&b, "tool", h->tool ? h->tool : "arca");
    put(&b, "started", json_string(started));
    if (h->compression)
        put_text(&b, "compression", h->compression);
    if (h->archive)
        put_text(&b, "archive", h->archive);
    int r = emit(w, &b, e);
    if (!r)
        w->state = W_ENTRIES;
    return r;
}

/* ERR_INTERNAL when ent is not something the reader would accept. */
static int entry_check(struct manifest_writer *w, const struct manifest_entry *ent, struct err *e)
{
    char p[4 * MSG_PATH_MAX + 4], q[4 * MSG_PATH_MAX + 4];
    if (w->state != W_ENTRIES)
        return err_set(e, ERR_INTERNAL, "manifest entry written %s",
                       w->state == W_NEW ? "before the header" : "after the trailer");
    if (!ent->path || ent->path_len == 0)
        return err_set(e, ERR_INTERNAL, "manifest entry with an empty path");
    path_for_msg(p, ent->path, ent->path_len);
    if (memchr(ent->path, '\0', ent->path_len))
        return err_set(e, ERR_INTERNAL, "manifest entry '%s' has a NUL byte in its path", p);
    if (w->have_last && path_cmp(w->last, w->last_len, ent->path, ent->path_len) >= 0) {
        path_for_msg(q, w->last, w->last_len);
        return err_set(e, ERR_INTERNAL, "manifest entry '%s' is not after '%s' in byte order", p,
                       q);
    }
    if (ent->size > (uint64_t)INT64_MAX)
        return err_set(e, ERR_INTERNAL, "manifest entry '%s': size %" PRIu64 " is too large", p,
                       ent->size);
    if (ent->sha256[0] && !ent->err_code && !is_hex64(ent->sha256))
        return err_set(e, ERR_INTERNAL, "manifest entry '%s': sha256 is not 64 lowercase hex", p);
    if (ent->type == MANIFEST_FILE && !ent->err_code && !ent->sha256[0])
        return err_set(e, ERR_INTERNAL, "manifest entry '%s': a file needs its sha256 or an error",
                       p);
    if (ent->type == MANIFEST_SYMLINK && ent->target && memchr(ent->target, '\0', ent->target_len))
        return err_set(e, ERR_INTERNAL, "manifest entry '%s' has a NUL byte in its link target", p);
    return 0;
}

/* A JSON string of valid UTF-8 bytes, escaped as jansson does (", \\ and
 * control characters; everything else as is). */
static int json_str(struct buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int r = buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n && !r; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        r = buf_append(b, p + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        if (!r)
            r = buf_append(b, esc, el);
    }
    if (!r)
        r = buf_append(b, p + run, n - run);
    return r ? r : buf_append(b, "\"", 1);
}

/* ,"key":"..." or ,"key_b64":"..." (as put_bytes). */
static int json_bytes_field(struct buf *b, const char *key, const char *p, size_t n)
{
    if (utf8_valid(p, n)) {
        int r = buf_append(b, ",\"", 2);
        r = r ? r : buf_puts(b, key);
        r = r ? r : buf_append(b, "\":", 2);
        return r ? r : json_str(b, p, n);
    }
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *enc = malloc(cap);
    if (!enc)
        return ERR_NOMEM;
    base64_encode((const unsigned char *)p, n, enc, cap);
    int r = buf_printf(b, ",\"%s_b64\":\"%s\"", key, enc);
    free(enc);
    return r;
}

/* ,"key":<integer> without printf (a manifest has a few per path). */
static int int_field(struct buf *b, const char *key, int64_t v)
{
    char tmp[48];
    char *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    size_t kl = strlen(key);
    int r = buf_reserve(b, kl + 4 + (size_t)(tmp + sizeof(tmp) - p));
    if (!r) {
        r = buf_append(b, ",\"", 2);
        r = r ? r : buf_append(b, key, kl);
        r = r ? r : buf_append(b, "\":", 2);
        r = r ? r : buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
    }
    return r;
}

/* An entry without an error as one line, the fields in the order the jansson
 * path writes them. */
static int entry_line(struct buf *b, const struct manifest_entry *ent)
{
    bool link = ent->type == MANIFEST_SYMLINK;
    int r = buf_puts(b, link ? "{\"type\":\"symlink\"" : "{\"type\":\"file\"");
    if (!r)
        r = json_bytes_field(b, "path", ent->path, ent->path_len);
    if (!r)
        r = int_field(b, "size", link ? 0 : (int64_t)ent->size);
    if (!r && ent->mtime_ns != INT64_MIN)
        r = int_field(b, "mtime_ns", ent->mtime_ns);
    if (!r && ent->has_listed_mtime)
        r = int_field(b, "listed_mtime_ns", ent->listed_mtime_ns);
    if (!r && (ent->mode & 07777))
        r = int_field(b, "mode", (int64_t)(ent->mode & 07777));
    if (!r && link)
        r = json_bytes_field(b, "target", ent->target ? ent->target : "",
                             ent->target ? ent->target_len : 0);
    if (!r && !link && ent->sha256[0]) {
        r = buf_puts(b, ",\"sha256\":\"");
        r = r ? r : buf_append(b, ent->sha256, 64);
        r = r ? r : buf_append(b, "\"", 1);
    }
    if (!r && ent->stored_current)
        r = buf_puts(b, ",\"stored\":\"current\"");
    if (!r && ent->offset >= 0)
        r = int_field(b, "offset", ent->offset);
    return r ? r : buf_append(b, "}\n", 2);
}

int manifest_write_entry(struct manifest_writer *w, const struct manifest_entry *ent, struct err *e)
{
    int r = entry_check(w, ent, e);
    if (r)
        return r;
    char *copy = malloc(ent->path_len + 1);
    if (!copy)
        return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
    memcpy(copy, ent->path, ent->path_len);
    free(w->last);
    w->last = copy;
    w->last_len = ent->path_len;
    w->have_last = true;

    if (!ent->err_code) {
        buf_reset(&w->line);
        if (entry_line(&w->line, ent) != 0)
            return err_set(e, ERR_NOMEM, "out of memory writing a manifest");
        return w->sink(w->ctx, w->line.data, w->line.len, e);
    }
    struct obj b = {json_object(), false};
    put(&b, "type", json_string(ent->type == MANIFEST_SYMLINK ? "symlink" : "file"));
    put_bytes(&b, "path", ent->path, ent->path_len);
    put(&b, "size", json_integer(ent->type == MANIFEST_SYMLINK ? 0 : (json_int_t)ent->size));
    if (ent->mtime_ns != INT64_MIN)
        put(&b, "mtime_ns", json_integer(ent->mtime_ns));
    if (ent->has_listed_mtime)
        put(&b, "listed_mtime_ns", json_integer(ent->listed_mtime_ns));
    if (ent->mode & 07777)
        put(&b, "mode", json_integer(ent->mode & 07777));
    /* a symlink always has a target unless its entry records why not */
    if (ent->type == MANIFEST_SYMLINK && (ent->target || !ent->err_code))
        put_bytes(&b, "target", ent->target ? ent->target : "", ent->target ? ent->target_len : 0);
    if (ent->type == MANIFEST_FILE && ent->sha256[0] && !ent->err_code)
        put(&b, "sha256", json_string(ent->sha256));
    if (ent->stored_current)
        put(&b, "stored", json_string("current"));
    if (ent->offset >= 0)
        put(&b, "offset", json_integer(ent->offset));
    if (ent->err_code) {
        struct obj eb = {json_object(), false};
        put_text(&eb, "class", ent->err_class ? ent->err_class : err_code_name(ent->err_code));
        put_text(&eb, "message", ent->err_msg ? ent->err_msg : "");
        if (eb.failed) {
            json_decref(eb.o);
            eb.o = NULL;
        }
        put(&b, "error", eb.o);
    }
    return emit(w, &b, e);
}

int manifest_write_trailer(struct manifest_writer *w, const struct manifest_trailer *t,
                           struct err *e)
{
    if (w->state != W_ENTRIES)
        return err_set(e, ERR_INTERNAL, "manifest trailer written %s",
                       w->state == W_NEW ? "before the header" : "twice");
    if (!t->status || (strcmp(t->status, "succeeded") && strcmp(t->status, "partial")))
        return err_set(e, ERR_INTERNAL, "manifest trailer: status '%s' is not succeeded or partial",
                       t->status ? t->status : "");
    if (t->files > (uint64_t)INT64_MAX || t->bytes > (uint64_t)INT64_MAX ||
        t->errors > (uint64_t)INT64_MAX || t->finished_ms < 0)
        return err_set(e, ERR_INTERNAL, "manifest trailer: a count or time out of range");
    if (t->archive_sha256[0] && !is_hex64(t->archive_sha256))
        return err_set(e, ERR_INTERNAL, "manifest trailer: archive_sha256 is not 64 lowercase hex");
    char finished[TIMEFMT_LEN + 1];
    time_format_ms(t->finished_ms, finished);
    struct obj b = {json_object(), false};
    put(&b, "type", json_string("trailer"));
    put(&b, "finished", json_string(finished));
    put(&b, "status", json_string(t->status));
    put(&b, "files", json_integer((json_int_t)t->files));
    put(&b, "bytes", json_integer((json_int_t)t->bytes));
    put(&b, "errors", json_integer((json_int_t)t->errors));
    if (t->archive_size >= 0)
        put(&b, "archive_size", json_integer(t->archive_size));
    if (t->archive_sha256[0])
        put(&b, "archive_sha256", json_string(t->archive_sha256));
    int r = emit(w, &b, e);
    if (!r)
        w->state = W_DONE;
    return r;
}

/* ---- reader --------------------------------------------------------------- */

struct manifest_reader {
    manifest_read_fn fn;
    void *ctx;
    char *name;
    char *buf; /* unread bytes: buf[pos..len) */
    size_t pos, len, cap;
    bool eof;
    size_t line_no; /* of the line last returned */
    bool header_read, trailer_read, archive_mode;
    char *last; /* the previous entry's path, for the order check */
    size_t last_len;
    bool have_last;
    char *fp_tmp; /* fast_parse's string buffer */
    size_t fp_cap;
};

struct manifest_reader *manifest_reader_new(manifest_read_fn fn, void *ctx, const char *name)
{
    struct manifest_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->name = strdup(name ? name : "manifest");
    r->buf = malloc(READ_CHUNK);
    if (!r->name || !r->buf) {
        manifest_reader_free(r);
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
    free(r->fp_tmp);
    free(r);
}

static int bad(struct manifest_reader *r, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ERR_CORRUPT "manifest 'NAME' line N: WHAT". */
static int bad(struct manifest_reader *r, struct err *e, const char *fmt, ...)
{
    char what[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return err_set(e, ERR_CORRUPT, "manifest '%s' line %zu: %s", r->name, r->line_no, what);
}

/* The next line (without its '\n', NUL-terminated) in *line and *n, valid
 * until the next call; *line NULL at the end of the data. The buffer holds
 * at most one line of MANIFEST_LINE_MAX plus one read. */
static int next_line(struct manifest_reader *r, char **line, size_t *n, struct err *e)
{
    *line = NULL;
    for (;;) {
        char *start = r->buf + r->pos;
        char *nl = memchr(start, '\n', r->len - r->pos);
        size_t have = nl ? (size_t)(nl - start) : r->len - r->pos;
        if (have > MANIFEST_LINE_MAX) {
            r->line_no++;
            return bad(r, e, "the line is longer than 1 MiB; this is not an arca manifest");
        }
        if (nl) {
            *nl = '\0';
            *line = start;
            *n = have;
            r->pos += have + 1;
            r->line_no++;
            return 0;
        }
        if (r->eof) {
            if (have) {
                r->line_no++;
                return bad(r, e, "the last line has no newline; the manifest is truncated");
            }
            return 0;
        }
        /* keep the partial line, at the front; room for one more read */
        memmove(r->buf, start, have);
        r->len = have;
        r->pos = 0;
        if (r->cap - r->len < READ_CHUNK + 1) {
            char *nb = realloc(r->buf, r->cap * 2);
            if (!nb)
                return err_set(e, ERR_NOMEM, "out of memory reading manifest '%s'", r->name);
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

/* The next line as a JSON object; end of data is "truncated". */
/*
 * A fast path for the lines arca writes: objects (nested once) of strings
 * with simple escapes and integers, built straight into jansson values.
 * Anything else - \\u escapes, other value kinds, duplicate keys, numbers
 * that are not plain integers, any syntax error - returns NULL, and jansson
 * parses the line itself (and reports what is wrong with it).
 */
struct fp {
    const char *p, *end;
    char *tmp; /* decoded string, cap bytes */
    size_t cap;
};

static void fp_ws(struct fp *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
        f->p++;
}

static json_t *fp_string(struct fp *f)
{
    if (f->p >= f->end || *f->p != '"')
        return NULL;
    f->p++;
    size_t len = 0;
    while (f->p < f->end && *f->p != '"') {
        unsigned char c = (unsigned char)*f->p++;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (f->p >= f->end)
                return NULL;
            switch (*f->p++) {
            case '"':
                c = '"';
                break;
            case '\\':
                c = '\\';
                break;
            case '/':
                c = '/';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            default:
                return NULL; /* \\u and errors: jansson's job */
            }
        }
        if (len == f->cap)
            return NULL;
        f->tmp[len++] = (char)c;
    }
    if (f->p >= f->end)
        return NULL;
    f->p++;
    return json_stringn(f->tmp, len); /* NULL for invalid UTF-8 */
}

static json_t *fp_integer(struct fp *f)
{
    bool neg = f->p < f->end && *f->p == '-';
    if (neg)
        f->p++;
    const char *d = f->p;
    uint64_t v = 0;
    while (f->p < f->end && *f->p >= '0' && *f->p <= '9') {
        unsigned dig = (unsigned)(*f->p++ - '0');
        if (v > ((uint64_t)INT64_MAX - dig) / 10)
            return NULL; /* out of range: jansson says so */
        v = v * 10 + dig;
    }
    size_t nd = (size_t)(f->p - d);
    if (nd == 0 || (nd > 1 && *d == '0'))
        return NULL;
    if (f->p < f->end && (*f->p == '.' || *f->p == 'e' || *f->p == 'E'))
        return NULL;
    return json_integer(neg ? -(json_int_t)v : (json_int_t)v);
}

static json_t *fp_object(struct fp *f, int depth)
{
    if (f->p >= f->end || *f->p != '{' || depth > 2)
        return NULL;
    f->p++;
    json_t *o = json_object();
    if (!o)
        return NULL;
    fp_ws(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return o;
    }
    for (;;) {
        fp_ws(f);
        json_t *k = fp_string(f);
        if (!k)
            goto fail;
        fp_ws(f);
        json_t *v = NULL;
        if (f->p < f->end && *f->p == ':') {
            f->p++;
            fp_ws(f);
            if (f->p < f->end && *f->p == '"')
                v = fp_string(f);
            else if (f->p < f->end && *f->p == '{')
                v = fp_object(f, depth + 1);
            else
                v = fp_integer(f);
        }
        const char *key = json_string_value(k);
        bool ok = v && strlen(key) == json_string_length(k) && !json_object_get(o, key) &&
                  json_object_set_new(o, key, v) == 0;
        if (!ok && v)
            json_decref(v);
        json_decref(k);
        if (!ok)
            goto fail;
        fp_ws(f);
        if (f->p < f->end && *f->p == ',') {
            f->p++;
            continue;
        }
        if (f->p < f->end && *f->p == '}') {
            f->p++;
            return o;
        }
        goto fail;
    }
fail:
    json_decref(o);
    return NULL;
}

static json_t *fast_parse(struct manifest_reader *r, const char *line, size_t n)
{
    if (r->fp_cap < n) {
        char *nb = realloc(r->fp_tmp, n);
        if (!nb)
            return NULL;
        r->fp_tmp = nb;
        r->fp_cap = n;
    }
    struct fp f = {line, line + n, r->fp_tmp, r->fp_cap};
    fp_ws(&f);
    json_t *o = fp_object(&f, 1);
    fp_ws(&f);
    if (o && f.p != f.end) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static int parse_line(struct manifest_reader *r, json_t **out, struct err *e)
{
    char *line;
    size_t n;
    int rc = next_line(r, &line, &n, e);
    if (rc)
        return rc;
    if (!line) {
        if (r->line_no == 0)
            return err_set(e, ERR_CORRUPT, "manifest '%s' is empty; it is not a manifest", r->name);
        return err_set(e, ERR_CORRUPT,
                       "manifest '%s' is truncated (no trailer after line %zu); the run's "
                       "manifest was cut short",
                       r->name, r->line_no);
    }
    json_t *o = fast_parse(r, line, n);
    json_error_t je;
    if (!o && !(o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je)))
        return bad(r, e, "not valid JSON (%s at column %d)", je.text, je.column);
    if (!json_is_object(o)) {
        json_decref(o);
        return bad(r, e, "not a JSON object");
    }
    *out = o;
    return 0;
}

/* A field that must be a string when present: 0 (ok, *s NULL when absent),
 * or -1 (ill-typed). */
static int opt_str(json_t *o, const char *key, const char **s)
{
    json_t *v = json_object_get(o, key);
    *s = json_is_string(v) ? json_string_value(v) : NULL;
    return v && !*s ? -1 : 0;
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s && !(*out = strdup(s)))
        return -1;
    return 0;
}

int manifest_read_header(struct manifest_reader *r, struct manifest_header_owned *h, struct err *e)
{
    memset(h, 0, sizeof(*h));
    if (r->header_read)
        return err_set(e, ERR_INTERNAL, "manifest '%s': header read twice", r->name);
    json_t *o;
    int rc = parse_line(r, &o, e);
    if (rc)
        return rc;
    const char *type = NULL, *run = NULL, *mode = NULL, *started = NULL, *source = NULL,
               *tool = NULL, *job = NULL, *compression = NULL, *archive = NULL;
    json_t *fv = json_object_get(o, "format_version");
    opt_str(o, "type", &type);
    if (!type || strcmp(type, "header") != 0)
        rc = bad(r, e, "the first line is not a manifest header");
    else if (!json_is_integer(fv) || json_integer_value(fv) < 1)
        rc = bad(r, e, "'format_version' is not a positive integer");
    else if (json_integer_value(fv) > MANIFEST_FORMAT_VERSION)
        rc = err_set(e, ERR_REFUSED,
                     "manifest '%s' has format version %" JSON_INTEGER_FORMAT
                     "; this arca reads up to %d: upgrade arca",
                     r->name, json_integer_value(fv), MANIFEST_FORMAT_VERSION);
    else if (opt_str(o, "run", &run) || !run || !runid_valid(run))
        rc = bad(r, e, "'run' is not a run id");
    else if (opt_str(o, "mode", &mode) || !mode ||
             (strcmp(mode, "mirror") != 0 && strcmp(mode, "archive") != 0))
        rc = bad(r, e, "'mode' is not \"mirror\" or \"archive\"");
    else if (opt_str(o, "source", &source) || !source)
        rc = bad(r, e, "'source' is %s", json_object_get(o, "source") ? "not a string" : "missing");
    else if (opt_str(o, "tool", &tool) || !tool)
        rc = bad(r, e, "'tool' is %s", json_object_get(o, "tool") ? "not a string" : "missing");
    else if (opt_str(o, "started", &started) || !started || time_parse_ms(started) < 0)
        rc = bad(r, e, "'started' is not an RFC 3339 UTC time");
    else if (opt_str(o, "job", &job))
        rc = bad(r, e, "'job' is not a string");
    else if (opt_str(o, "compression", &compression))
        rc = bad(r, e, "'compression' is not a string");
    else if (opt_str(o, "archive", &archive))
        rc = bad(r, e, "'archive' is not a string");
    else if (!strcmp(mode, "archive") && (!compression || !archive))
        rc = bad(r, e, "an archive manifest needs 'compression' and 'archive'");
    if (!rc) {
        h->format_version = (int)json_integer_value(fv);
        snprintf(h->run, sizeof(h->run), "%s", run);
        h->mode = !strcmp(mode, "archive") ? MANIFEST_ARCHIVE : MANIFEST_MIRROR;
        h->started_ms = time_parse_ms(started);
        if (dup_opt(source, &h->source) || dup_opt(tool, &h->tool) || dup_opt(job, &h->job) ||
            dup_opt(compression, &h->compression) || dup_opt(archive, &h->archive))
            rc = err_set(e, ERR_NOMEM, "out of memory reading manifest '%s'", r->name);
    }
    json_decref(o);
    if (rc) {
        manifest_header_owned_clear(h);
        return rc;
    }
    r->header_read = true;
    r->archive_mode = h->mode == MANIFEST_ARCHIVE;
    return 0;
}

/* key or key_b64 into *out (owned, NUL-terminated) and *len: 0, or an error
 * naming the field ("absent" only when want is set). */
static int get_bytes(struct manifest_reader *r, json_t *o, const char *key, bool want, char **out,
                     size_t *len, struct err *e)
{
    char k[32];
    snprintf(k, sizeof(k), "%s_b64", key);
    json_t *plain = json_object_get(o, key), *b64 = json_object_get(o, k);
    *out = NULL;
    *len = 0;
    if (plain && b64)
        return bad(r, e, "both '%s' and '%s'", key, k);
    if (!plain && !b64)
        return want ? bad(r, e, "no '%s' (or '%s')", key, k) : 0;
    if (plain && !json_is_string(plain))
        return bad(r, e, "'%s' is not a string", key);
    if (b64 && !json_is_string(b64))
        return bad(r, e, "'%s' is not a string", k);
    if (plain) {
        /* jansson refuses "\u0000", so the string has no NUL byte */
        *len = json_string_length(plain);
        if (!(*out = strdup(json_string_value(plain))))
            return err_set(e, ERR_NOMEM, "out of memory reading manifest '%s'", r->name);
        return 0;
    }
    if (!(*out = b64_decode(json_string_value(b64), json_string_length(b64), len)))
        return bad(r, e, "'%s' is not standard base64", k);
    if (memchr(*out, '\0', *len)) {
        free(*out);
        *out = NULL;
        *len = 0;
        return bad(r, e, "'%s' holds a NUL byte", k);
    }
    return 0;
}

/* The code of an error class name (err_code_name); ERR_IO for a class this
 * arca does not know (a newer one's). */
static int class_code(const char *cls)
{
    for (int c = -1; c >= ERR_CORRUPT; c--)
        if (!strcmp(err_code_name(c), cls))
            return c;
    return ERR_IO;
}

/* Whether v is an integer in [lo, hi]; absent is fine unless required. */
static bool int_in(json_t *v, bool required, json_int_t lo, json_int_t hi)
{
    if (!v)
        return !required;
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static int read_entry(struct manifest_reader *r, json_t *o, enum manifest_type type,
                      struct manifest_entry *ent, struct err *e)
{
    memset(ent, 0, sizeof(*ent));
    ent->mtime_ns = INT64_MIN;
    ent->offset = -1;
    ent->type = type;
    int rc = get_bytes(r, o, "path", true, &ent->path, &ent->path_len, e);
    if (rc)
        goto fail;
    if (ent->path_len == 0) {
        rc = bad(r, e, "an empty path");
        goto fail;
    }
    /* order first: the most telling problem of a line that is fine by itself */
    if (r->have_last && path_cmp(r->last, r->last_len, ent->path, ent->path_len) >= 0) {
        char p[4 * MSG_PATH_MAX + 4], q[4 * MSG_PATH_MAX + 4];
        path_for_msg(p, ent->path, ent->path_len);
        path_for_msg(q, r->last, r->last_len);
        if (path_cmp(r->last, r->last_len, ent->path, ent->path_len) == 0)
            rc = bad(r, e, "'%s' is listed twice", p);
        else
            rc = bad(r, e, "'%s' comes after '%s'; entries must be in increasing byte order", p, q);
        goto fail;
    }
    json_t *size = json_object_get(o, "size"), *mt = json_object_get(o, "mtime_ns");
    json_t *lmt = json_object_get(o, "listed_mtime_ns");
    json_t *mode = json_object_get(o, "mode"), *off = json_object_get(o, "offset");
    json_t *err = json_object_get(o, "error");
    const char *sha = NULL, *stored = NULL, *cls = NULL, *msg = NULL;
    if (!int_in(size, true, 0, INT64_MAX))
        rc = bad(r, e, "'size' is %s", size ? "not a non-negative integer" : "missing");
    else if (!int_in(mt, false, INT64_MIN + 1, INT64_MAX))
        rc = bad(r, e, "'mtime_ns' is not an integer");
    else if (!int_in(lmt, false, INT64_MIN + 1, INT64_MAX))
        rc = bad(r, e, "'listed_mtime_ns' is not an integer");
    else if (!int_in(mode, false, 0, 07777))
        rc = bad(r, e, "'mode' is not permission bits (an integer from 0 to 4095)");
    else if (!int_in(off, false, 0, INT64_MAX))
        rc = bad(r, e, "'offset' is not a non-negative integer");
    else if (opt_str(o, "sha256", &sha) || (json_object_get(o, "sha256") && !is_hex64(sha)))
        rc = bad(r, e, "'sha256' is not 64 lowercase hex digits");
    else if (opt_str(o, "stored", &stored))
        rc = bad(r, e, "'stored' is not a string");
    else if (err && (!json_is_object(err) || opt_str(err, "class", &cls) || !cls ||
                     opt_str(err, "message", &msg) || !msg))
        rc = bad(r, e, "'error' is not an object with the strings 'class' and 'message'");
    else if (err && sha)
        rc = bad(r, e, "an entry with both 'error' and 'sha256'");
    else if (type == MANIFEST_FILE && !err && !sha)
        rc = bad(r, e, "a file without 'sha256' or 'error'");
    if (rc)
        goto fail;
    if (type == MANIFEST_SYMLINK &&
        (rc = get_bytes(r, o, "target", !err, &ent->target, &ent->target_len, e)) != 0)
        goto fail;
    ent->size = (uint64_t)json_integer_value(size);
    if (mt)
        ent->mtime_ns = json_integer_value(mt);
    if (lmt) {
        ent->has_listed_mtime = true;
        ent->listed_mtime_ns = json_integer_value(lmt);
    }
    if (mode)
        ent->mode = (uint32_t)json_integer_value(mode);
    if (off)
        ent->offset = json_integer_value(off);
    if (sha)
        memcpy(ent->sha256, sha, 65);
    ent->stored_current = stored && !strcmp(stored, "current");
    if (err) {
        ent->err_class = strdup(cls);
        ent->err_msg = strdup(msg);
        ent->err_code = class_code(cls);
    }
    char *copy = malloc(ent->path_len + 1);
    if (!copy || (err && (!ent->err_class || !ent->err_msg))) {
        free(copy);
        rc = err_set(e, ERR_NOMEM, "out of memory reading manifest '%s'", r->name);
        goto fail;
    }
    memcpy(copy, ent->path, ent->path_len + 1);
    free(r->last);
    r->last = copy;
    r->last_len = ent->path_len;
    r->have_last = true;
    return 1;
fail:
    manifest_entry_clear(ent);
    return rc;
}

static int read_trailer(struct manifest_reader *r, json_t *o, struct manifest_trailer_owned *t,
                        struct err *e)
{
    manifest_trailer_owned_clear(t);
    const char *fin = NULL, *status = NULL, *asha = NULL;
    json_t *files = json_object_get(o, "files"), *bytes = json_object_get(o, "bytes");
    json_t *errors = json_object_get(o, "errors"), *as = json_object_get(o, "archive_size");
    if (opt_str(o, "finished", &fin) || !fin || time_parse_ms(fin) < 0)
        return bad(r, e, "'finished' is not an RFC 3339 UTC time");
    if (opt_str(o, "status", &status) || !status ||
        (strcmp(status, "succeeded") != 0 && strcmp(status, "partial") != 0))
        return bad(r, e, "'status' is not \"succeeded\" or \"partial\"");
    if (!int_in(files, true, 0, INT64_MAX))
        return bad(r, e, "'files' is not a non-negative integer");
    if (!int_in(bytes, true, 0, INT64_MAX))
        return bad(r, e, "'bytes' is not a non-negative integer");
    if (!int_in(errors, true, 0, INT64_MAX))
        return bad(r, e, "'errors' is not a non-negative integer");
    if (!int_in(as, false, 0, INT64_MAX))
        return bad(r, e, "'archive_size' is not a non-negative integer");
    if (r->archive_mode && !as)
        return bad(r, e, "'archive_size' is missing (archive mode)");
    if (opt_str(o, "archive_sha256", &asha) ||
        (json_object_get(o, "archive_sha256") && !is_hex64(asha)))
        return bad(r, e, "'archive_sha256' is not 64 lowercase hex digits");
    if (r->archive_mode && !asha)
        return bad(r, e, "'archive_sha256' is missing (archive mode)");
    t->finished_ms = time_parse_ms(fin);
    snprintf(t->status, sizeof(t->status), "%s", status);
    t->files = (uint64_t)json_integer_value(files);
    t->bytes = (uint64_t)json_integer_value(bytes);
    t->errors = (uint64_t)json_integer_value(errors);
    if (as)
        t->archive_size = json_integer_value(as);
    if (asha)
        memcpy(t->archive_sha256, asha, 65);
    return 2;
}

int manifest_read_next(struct manifest_reader *r, struct manifest_entry *ent,
                       struct manifest_trailer_owned *t, struct err *e)
{
    if (!r->header_read)
        return err_set(e, ERR_INTERNAL, "manifest '%s': entries read before the header", r->name);
    if (r->trailer_read)
        return err_set(e, ERR_INTERNAL, "manifest '%s': read past the trailer", r->name);
    json_t *o;
    int rc = parse_line(r, &o, e);
    if (rc)
        return rc;
    const char *type = NULL;
    if (opt_str(o, "type", &type) || !type)
        rc = bad(r, e, "no string 'type'");
    else if (!strcmp(type, "file"))
        rc = read_entry(r, o, MANIFEST_FILE, ent, e);
    else if (!strcmp(type, "symlink"))
        rc = read_entry(r, o, MANIFEST_SYMLINK, ent, e);
    else if (!strcmp(type, "trailer"))
        rc = read_trailer(r, o, t, e);
    else if (!strcmp(type, "header"))
        rc = bad(r, e, "a second header");
    else
        rc = bad(r, e, "unknown type '%.40s'", type);
    json_decref(o);
    if (rc != 2)
        return rc;
    /* the trailer is the last line: anything after it is damage */
    r->trailer_read = true;
    char *line;
    size_t n;
    int x = next_line(r, &line, &n, e);
    if (!x && line)
        x = bad(r, e, "a line after the trailer");
    if (x)
        manifest_trailer_owned_clear(t);
    return x ? x : 2;
}

/* ---- SHA256SUMS ----------------------------------------------------------- */

static bool sums_escaped(char c)
{
    return c == '\\' || c == '\n' || c == '\r';
}

int sha256sums_line(struct buf *out, const char *sha256, const char *path, size_t path_len,
                    struct err *e)
{
    /* GNU coreutils (9.x) escapes '\\', '\n' and '\r' in a name and marks
     * such a line with a leading '\\'; `sha256sum -c` undoes both */
    bool esc = false;
    for (size_t i = 0; i < path_len && !esc; i++)
        esc = sums_escaped(path[i]);
    size_t start = out->len;
    int r = esc ? buf_puts(out, "\\") : 0;
    if (!r)
        r = buf_printf(out, "%s  ", sha256);
    size_t i = 0;
    while (!r && i < path_len) {
        size_t j = i;
        while (j < path_len && !sums_escaped(path[j]))
            j++;
        r = buf_append(out, path + i, j - i);
        if (!r && j < path_len)
            r = buf_puts(out, path[j] == '\\' ? "\\\\" : path[j] == '\n' ? "\\n" : "\\r");
        i = j + 1;
    }
    if (!r)
        r = buf_puts(out, "\n");
    if (r) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return err_set(e, ERR_NOMEM, "out of memory writing SHA256SUMS");
    }
    return 0;
}
