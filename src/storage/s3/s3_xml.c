/*
 * s3_xml.c - S3 response parsing on top of expat, and the one body we send.
 *
 * Design. Every parser here is a small state machine behind one shared core
 * (struct xml_core) that owns the expat parser and enforces the bounds:
 *
 *  - element text goes into one fixed buffer of S3_XML_TEXT_MAX bytes, and
 *    only for the elements we use; the length of every text node is counted
 *    even when it is thrown away, so no element can be longer than that;
 *  - expat itself keeps an unfinished token (a tag split across chunks) in
 *    its own buffer, so input is fed in slices of FEED_SLICE bytes and we
 *    fail once more than PENDING_MAX bytes were fed past the last event expat
 *    reported: a hostile 1 GiB start tag costs us at most that;
 *  - nesting is limited to S3_XML_DEPTH_MAX, which also bounds expat's stack;
 *  - a DOCTYPE fails the parse as soon as it starts, so no entity can ever be
 *    declared (no billion laughs, no external entities).
 *
 * With these the memory of a listing parser is fixed when it is created:
 * nothing is allocated per <Contents>. All allocations go through a counting
 * memory suite (also given to expat), which is how the unit test proves it.
 *
 * Names are matched on their local part: expat runs with namespace
 * processing and reports "uri|local", and we look at what follows the last
 * separator.
 */
#include "storage/s3/s3_xml.h"
#include "core/utf8.h"

#include <expat.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP '|'
#define FEED_SLICE 16384
#define PENDING_MAX 65536
#define PART_NUMBER_MAX 10000

/* ---- counted memory (the module's and expat's) ---- */

union mem_hdr {
    size_t size;
    max_align_t align;
};

static atomic_uint_fast64_t mem_live;
static atomic_uint_fast64_t mem_peak;
static atomic_uint_fast64_t mem_allocs;

static void mem_grew(size_t n)
{
    uint_fast64_t live = atomic_fetch_add(&mem_live, n) + n;
    uint_fast64_t peak = atomic_load(&mem_peak);
    while (live > peak && !atomic_compare_exchange_weak(&mem_peak, &peak, live))
        ;
    atomic_fetch_add(&mem_allocs, 1);
}

static void *xml_malloc(size_t n)
{
    if (n > SIZE_MAX - sizeof(union mem_hdr))
        return NULL;
    union mem_hdr *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->size = n;
    mem_grew(n);
    return h + 1;
}

static void xml_free(void *p)
{
    if (!p)
        return;
    union mem_hdr *h = (union mem_hdr *)p - 1;
    atomic_fetch_sub(&mem_live, h->size);
    free(h);
}

static void *xml_realloc(void *p, size_t n)
{
    if (!p)
        return xml_malloc(n);
    if (n > SIZE_MAX - sizeof(union mem_hdr))
        return NULL;
    union mem_hdr *h = (union mem_hdr *)p - 1;
    size_t old = h->size;
    union mem_hdr *nh = realloc(h, sizeof(*nh) + n);
    if (!nh)
        return NULL;
    nh->size = n;
    atomic_fetch_sub(&mem_live, old);
    mem_grew(n);
    return nh + 1;
}

static const XML_Memory_Handling_Suite mem_suite = {xml_malloc, xml_realloc, xml_free};

void s3_xml_mem_stats(struct s3_xml_mem_stats *out)
{
    out->live_bytes = atomic_load(&mem_live);
    out->peak_bytes = atomic_load(&mem_peak);
    out->allocs = atomic_load(&mem_allocs);
}

/* ---- element names ---- */

enum el {
    EL_OTHER = 0,
    EL_LIST_BUCKET_RESULT,
    EL_CONTENTS,
    EL_COMMON_PREFIXES,
    EL_KEY,
    EL_SIZE,
    EL_ETAG,
    EL_LAST_MODIFIED,
    EL_STORAGE_CLASS,
    EL_PREFIX,
    EL_IS_TRUNCATED,
    EL_NEXT_CONTINUATION_TOKEN,
    EL_KEY_COUNT,
    EL_ENCODING_TYPE,
    EL_ERROR,
    EL_CODE,
    EL_MESSAGE,
    EL_REQUEST_ID,
    EL_HOST_ID,
    EL_RESOURCE,
    EL_REGION,
    EL_ENDPOINT,
    EL_INITIATE_RESULT,
    EL_UPLOAD_ID,
    EL_COMPLETE_RESULT,
    EL_CHECKSUM_SHA256,
    EL_COPY_OBJECT_RESULT,
    EL_COPY_PART_RESULT,
    EL_LOCATION_CONSTRAINT,
};

/* one-shot parsers keep a bit per element id in an unsigned */
_Static_assert(EL_LOCATION_CONSTRAINT < 32, "too many element ids for struct oneshot.seen");

static const struct {
    const char *name;
    enum el id;
} el_names[] = {
    /* the listing's most frequent names first */
    {"Key", EL_KEY},
    {"Size", EL_SIZE},
    {"ETag", EL_ETAG},
    {"LastModified", EL_LAST_MODIFIED},
    {"StorageClass", EL_STORAGE_CLASS},
    {"Contents", EL_CONTENTS},
    {"Prefix", EL_PREFIX},
    {"CommonPrefixes", EL_COMMON_PREFIXES},
    {"ListBucketResult", EL_LIST_BUCKET_RESULT},
    {"IsTruncated", EL_IS_TRUNCATED},
    {"NextContinuationToken", EL_NEXT_CONTINUATION_TOKEN},
    {"KeyCount", EL_KEY_COUNT},
    {"EncodingType", EL_ENCODING_TYPE},
    {"Error", EL_ERROR},
    {"Code", EL_CODE},
    {"Message", EL_MESSAGE},
    {"RequestId", EL_REQUEST_ID},
    {"HostId", EL_HOST_ID},
    {"Resource", EL_RESOURCE},
    {"Region", EL_REGION},
    {"Endpoint", EL_ENDPOINT},
    {"InitiateMultipartUploadResult", EL_INITIATE_RESULT},
    {"UploadId", EL_UPLOAD_ID},
    {"CompleteMultipartUploadResult", EL_COMPLETE_RESULT},
    {"ChecksumSHA256", EL_CHECKSUM_SHA256},
    {"CopyObjectResult", EL_COPY_OBJECT_RESULT},
    {"CopyPartResult", EL_COPY_PART_RESULT},
    {"LocationConstraint", EL_LOCATION_CONSTRAINT},
};

static enum el el_lookup(const char *local)
{
    for (size_t i = 0; i < sizeof(el_names) / sizeof(el_names[0]); i++)
        if (strcmp(local, el_names[i].name) == 0)
            return el_names[i].id;
    return EL_OTHER;
}

static const char *el_name(enum el id)
{
    for (size_t i = 0; i < sizeof(el_names) / sizeof(el_names[0]); i++)
        if (el_names[i].id == id)
            return el_names[i].name;
    return "?";
}

/* ---- small text helpers ---- */

static bool is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void trim(const char **s, size_t *len)
{
    while (*len && is_xml_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_xml_space((*s)[*len - 1]))
        (*len)--;
}

/* Length of the longest prefix of s[0..n) that fits in cap-1 bytes and does
 * not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t cap)
{
    if (n < cap)
        return n;
    size_t k = cap - 1;
    /* step back over continuation bytes to the start of the cut character */
    size_t j = k;
    while (j > 0 && ((unsigned char)s[j] & 0xc0) == 0x80)
        j--;
    return j < k && ((unsigned char)s[j] & 0x80) ? j : k;
}

/* Copy a value cut to fit (error documents: the text is for people). */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
    trim(&s, &n);
    n = utf8_cut(s, n, cap);
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Copy a value that must fit; false when it does not. */
static bool copy_exact(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    trim(&s, &n);
    if (n == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* ETag text without whitespace and the surrounding quotes. */
static void etag_strip(const char **s, size_t *n)
{
    trim(s, n);
    if (*n && **s == '"') {
        (*s)++;
        (*n)--;
    }
    if (*n && (*s)[*n - 1] == '"')
        (*n)--;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum { DECODE_OK = 0, DECODE_BAD_ESCAPE, DECODE_TOO_LONG, DECODE_NUL };

/* urllib's unquote_plus, which botocore applies to encoding-type=url keys:
 * "%XX" is one byte, '+' is a space. Writes at most max bytes plus a NUL. */
static int url_decode(const char *in, size_t n, char *out, size_t max, size_t *outlen,
                      bool *changed)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (n - i < 3)
                return DECODE_BAD_ESCAPE;
            int hi = hexval(in[i + 1]);
            int lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return DECODE_BAD_ESCAPE;
            c = (char)(hi << 4 | lo);
            if (c == '\0')
                return DECODE_NUL;
            i += 2;
            *changed = true;
        } else if (c == '+') {
            c = ' ';
            *changed = true;
        }
        if (o >= max)
            return DECODE_TOO_LONG;
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return DECODE_OK;
}

/* ---- time ---- */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int s3_xml_parse_time(const char *s, size_t len, int64_t *ns)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    int64_t frac = 0;

    trim(&s, &len);
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return ERR_PROTO;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
        return ERR_PROTO;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return ERR_PROTO;
    if (sec == 60) /* a leap second is the last instant of that minute */
        sec = 59;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t k = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, k++)
            if (k < 9)
                frac = frac * 10 + (s[i] - '0');
        if (k == 0)
            return ERR_PROTO;
        for (; k < 9; k++)
            frac *= 10;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        if (len - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) ||
            !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return ERR_PROTO;
        i += 6;
    } else {
        return ERR_PROTO;
    }
    if (i != len)
        return ERR_PROTO;

    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
    /* int64 ns reach from 1677 to 2262 */
    if (secs <= INT64_MIN / 1000000000 || secs >= INT64_MAX / 1000000000)
        return ERR_PROTO;
    *ns = secs * 1000000000 + frac;
    return 0;
}

/* ---- the shared expat core ---- */

struct xml_core;
typedef void (*xml_el_fn)(struct xml_core *c, enum el id);

struct xml_core {
    XML_Parser xp;
    int rc;             /* 0, a positive stop code or a negative ERR_*: sticky */
    struct err fail;    /* message for rc */
    const char *what;   /* the document, for messages: "ListObjectsV2 response" */
    xml_el_fn on_start; /* called after depth/path are updated */
    xml_el_fn on_end;   /* called with text[0..text_len) when capture is set */
    int depth;          /* of the current element, root = 1 */
    enum el path[S3_XML_DEPTH_MAX + 1];
    char root_name[64]; /* local name of the root element, for messages */
    bool capture;       /* keep the text of the current element */
    bool started;       /* some non-space byte was fed */
    size_t node_len;    /* length of the current text node */
    size_t text_len;
    uint64_t fed;      /* bytes handed to expat */
    uint64_t consumed; /* end of the last event expat reported */
    char text[S3_XML_TEXT_MAX + 1];
};

__attribute__((format(printf, 3, 4))) static void core_fail(struct xml_core *c, int code,
                                                            const char *fmt, ...)
{
    if (c->rc)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail.msg, sizeof(c->fail.msg), fmt, ap);
    va_end(ap);
    c->fail.code = code;
    c->rc = code;
    XML_StopParser(c->xp, XML_FALSE);
}

static void core_stop(struct xml_core *c, int code)
{
    if (c->rc)
        return;
    c->rc = code;
    XML_StopParser(c->xp, XML_FALSE);
}

/* Remember where the last reported event ended (see PENDING_MAX). */
static void core_mark(struct xml_core *c)
{
    XML_Index at = XML_GetCurrentByteIndex(c->xp);
    int n = XML_GetCurrentByteCount(c->xp);
    if (at >= 0)
        c->consumed = (uint64_t)at + (uint64_t)(n > 0 ? n : 0);
}

static void XMLCALL core_on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_core *c = ud;
    (void)attrs;
    if (c->rc)
        return;
    core_mark(c);
    const char *local = strrchr(name, NS_SEP);
    local = local ? local + 1 : name;
    if (c->capture) {
        core_fail(c, ERR_PROTO, "%s has an element <%.64s> inside <%s>", c->what, local,
                  el_name(c->path[c->depth]));
        return;
    }
    if (c->depth >= S3_XML_DEPTH_MAX) {
        core_fail(c, ERR_PROTO, "%s nests elements deeper than %d", c->what, S3_XML_DEPTH_MAX);
        return;
    }
    enum el id = el_lookup(local);
    c->depth++;
    c->path[c->depth] = id;
    c->node_len = 0;
    c->text_len = 0;
    if (c->depth == 1)
        snprintf(c->root_name, sizeof(c->root_name), "%s", local);
    c->on_start(c, id);
}

static void XMLCALL core_on_end(void *ud, const XML_Char *name)
{
    struct xml_core *c = ud;
    (void)name;
    if (c->rc)
        return;
    core_mark(c);
    c->text[c->text_len] = '\0';
    c->on_end(c, c->path[c->depth]);
    c->capture = false;
    c->node_len = 0;
    c->text_len = 0;
    c->depth--;
}

static void XMLCALL core_on_text(void *ud, const XML_Char *s, int len)
{
    struct xml_core *c = ud;
    if (c->rc || len <= 0)
        return;
    core_mark(c);
    if ((size_t)len > S3_XML_TEXT_MAX - c->node_len) {
        core_fail(c, ERR_PROTO,
                  "%s has an element longer than %d bytes (is the endpoint an S3 server?)", c->what,
                  S3_XML_TEXT_MAX);
        return;
    }
    c->node_len += (size_t)len;
    if (c->capture) {
        memcpy(c->text + c->text_len, s, (size_t)len);
        c->text_len += (size_t)len;
    }
}

static void XMLCALL core_on_default(void *ud, const XML_Char *s, int len)
{
    struct xml_core *c = ud;
    (void)s;
    (void)len;
    if (!c->rc)
        core_mark(c);
}

static void XMLCALL core_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                    const XML_Char *pubid, int has_internal_subset)
{
    struct xml_core *c = ud;
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    core_fail(c, ERR_PROTO, "%s has a DOCTYPE, which S3 never sends", c->what);
}

static void XMLCALL core_on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                        const XML_Char *value, int value_len, const XML_Char *base,
                                        const XML_Char *sysid, const XML_Char *pubid,
                                        const XML_Char *notation)
{
    struct xml_core *c = ud;
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    core_fail(c, ERR_PROTO, "%s declares an entity, which S3 never does", c->what);
}

static int XMLCALL core_on_external_entity(XML_Parser xp, const XML_Char *context,
                                           const XML_Char *base, const XML_Char *sysid,
                                           const XML_Char *pubid)
{
    (void)xp;
    (void)context;
    (void)base;
    (void)sysid;
    (void)pubid;
    return XML_STATUS_ERROR; /* never load anything */
}

/* Set up c (already zeroed). Returns 0 or ERR_NOMEM. */
static int core_init(struct xml_core *c, const char *what, xml_el_fn on_start, xml_el_fn on_end)
{
    const XML_Char sep[2] = {NS_SEP, '\0'};
    c->what = what;
    c->on_start = on_start;
    c->on_end = on_end;
    c->xp = XML_ParserCreate_MM(NULL, &mem_suite, sep);
    if (!c->xp)
        return ERR_NOMEM;
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, core_on_start, core_on_end);
    XML_SetCharacterDataHandler(c->xp, core_on_text);
    /* the Expand variant leaves entity handling as it is */
    XML_SetDefaultHandlerExpand(c->xp, core_on_default);
    XML_SetStartDoctypeDeclHandler(c->xp, core_on_doctype);
    XML_SetEntityDeclHandler(c->xp, core_on_entity_decl);
    XML_SetExternalEntityRefHandler(c->xp, core_on_external_entity);
    XML_SetParamEntityParsing(c->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    return 0;
}

static void core_release(struct xml_core *c)
{
    if (c->xp)
        XML_ParserFree(c->xp);
    c->xp = NULL;
}

/* Feed len bytes (final: this is the end of the body). Returns c->rc. */
static int core_feed(struct xml_core *c, const char *data, size_t len, bool final)
{
    if (c->rc)
        return c->rc;
    /* S3 may send whitespace before the XML declaration while it works on a
     * long request; the declaration is only valid at the very start */
    while (!c->started && len && is_xml_space(*data)) {
        data++;
        len--;
    }
    if (len)
        c->started = true;
    do {
        size_t n = len < FEED_SLICE ? len : FEED_SLICE;
        bool last = final && n == len;
        enum XML_Status st = XML_Parse(c->xp, n ? data : "", (int)n, last);
        c->fed += n;
        if (c->rc)
            return c->rc;
        if (st != XML_STATUS_OK) {
            enum XML_Error xe = XML_GetErrorCode(c->xp);
            core_fail(c, ERR_PROTO, "%s is not well-formed XML: %s at line %lu column %lu%s",
                      c->what, XML_ErrorString(xe), (unsigned long)XML_GetCurrentLineNumber(c->xp),
                      (unsigned long)XML_GetCurrentColumnNumber(c->xp),
                      c->fed > 0 ? "" : " (the body is empty)");
            return c->rc;
        }
        if (c->fed - c->consumed > PENDING_MAX) {
            core_fail(c, ERR_PROTO,
                      "%s has a tag longer than %d bytes (is the endpoint an S3 server?)", c->what,
                      PENDING_MAX);
            return c->rc;
        }
        data += n;
        len -= n;
    } while (len > 0);
    return 0;
}

static int core_report(struct xml_core *c, struct err *e)
{
    if (c->rc < 0 && e) {
        e->code = c->fail.code;
        memcpy(e->msg, c->fail.msg, sizeof(e->msg));
    }
    return c->rc;
}

/* Store an <Error> child; false when the element is not one we keep. */
static bool error_field(struct s3_xml_error *er, enum el id, const char *s, size_t n, bool store)
{
    char *dst;
    size_t cap;
    switch (id) {
    case EL_CODE:
        dst = er->code;
        cap = sizeof(er->code);
        break;
    case EL_MESSAGE:
        dst = er->message;
        cap = sizeof(er->message);
        break;
    case EL_REQUEST_ID:
        dst = er->request_id;
        cap = sizeof(er->request_id);
        break;
    case EL_HOST_ID:
        dst = er->host_id;
        cap = sizeof(er->host_id);
        break;
    case EL_RESOURCE:
        dst = er->resource;
        cap = sizeof(er->resource);
        break;
    case EL_REGION:
        dst = er->region;
        cap = sizeof(er->region);
        break;
    case EL_ENDPOINT:
        dst = er->endpoint;
        cap = sizeof(er->endpoint);
        break;
    default:
        return false;
    }
    if (store)
        copy_cut(dst, cap, s, n);
    return true;
}

/* ---- ListObjectsV2 ---- */

enum list_doc { DOC_NONE = 0, DOC_LIST, DOC_ERROR };

struct s3_list_parser {
    struct xml_core core; /* first: handlers get the core and cast back */
    bool url_encoded;
    s3_list_entry_cb cb;
    void *ctx;
    enum list_doc doc;
    struct s3_xml_error error;
    bool seen_truncated;
    bool is_truncated;
    char *next_token; /* counted allocation */
    bool has_key_count;
    uint64_t key_count;
    bool encoding_declared;
    bool decode_changed;
    uint64_t n_contents;
    uint64_t n_prefixes;
    /* the entry being read */
    bool has_key;
    bool has_size;
    struct s3_list_entry ent;
    char key[S3_XML_KEY_MAX + 1];
    char etag[S3_XML_ETAG_MAX];
    char storage_class[S3_XML_STORAGE_CLASS_MAX];
};

static void list_entry_reset(struct s3_list_parser *p, bool is_prefix)
{
    p->has_key = false;
    p->has_size = false;
    p->key[0] = '\0';
    p->etag[0] = '\0';
    p->storage_class[0] = '\0';
    p->ent.is_prefix = is_prefix;
    p->ent.key = p->key;
    p->ent.key_len = 0;
    p->ent.size = 0;
    p->ent.mtime_ns = S3_XML_TIME_UNKNOWN;
    p->ent.etag = p->etag;
    p->ent.storage_class = p->storage_class;
}

static void list_on_start(struct xml_core *c, enum el id)
{
    struct s3_list_parser *p = (struct s3_list_parser *)c;
    if (c->depth == 1) {
        if (id == EL_LIST_BUCKET_RESULT)
            p->doc = DOC_LIST;
        else if (id == EL_ERROR)
            p->doc = DOC_ERROR;
        else
            core_fail(c, ERR_PROTO, "%s has root element <%s>, not <ListBucketResult>", c->what,
                      c->root_name);
        return;
    }
    if (p->doc == DOC_ERROR) {
        if (c->depth == 2)
            c->capture = error_field(&p->error, id, NULL, 0, false);
        return;
    }
    if (c->depth == 2) {
        switch (id) {
        case EL_CONTENTS:
            list_entry_reset(p, false);
            break;
        case EL_COMMON_PREFIXES:
            list_entry_reset(p, true);
            break;
        case EL_IS_TRUNCATED:
        case EL_NEXT_CONTINUATION_TOKEN:
        case EL_KEY_COUNT:
        case EL_ENCODING_TYPE:
            c->capture = true;
            break;
        default:
            break;
        }
    } else if (c->depth == 3 && c->path[2] == EL_CONTENTS) {
        switch (id) {
        case EL_KEY:
        case EL_SIZE:
        case EL_ETAG:
        case EL_LAST_MODIFIED:
        case EL_STORAGE_CLASS:
            c->capture = true;
            break;
        default:
            break;
        }
    } else if (c->depth == 3 && c->path[2] == EL_COMMON_PREFIXES && id == EL_PREFIX) {
        c->capture = true;
    }
}

static void list_set_key(struct s3_list_parser *p, const char *s, size_t n)
{
    struct xml_core *c = &p->core;
    const char *what = p->ent.is_prefix ? "common prefix" : "key";
    size_t len = n;
    if (!p->url_encoded) {
        if (n > S3_XML_KEY_MAX) {
            core_fail(c, ERR_PROTO, "%s has a %s longer than %d bytes", c->what, what,
                      S3_XML_KEY_MAX);
            return;
        }
        memcpy(p->key, s, n);
        p->key[n] = '\0';
    } else {
        switch (url_decode(s, n, p->key, S3_XML_KEY_MAX, &len, &p->decode_changed)) {
        case DECODE_OK:
            break;
        case DECODE_TOO_LONG:
            core_fail(c, ERR_PROTO, "%s has a %s longer than %d bytes", c->what, what,
                      S3_XML_KEY_MAX);
            return;
        case DECODE_NUL:
            core_fail(c, ERR_PROTO, "%s has a %s with a NUL byte ('%.200s')", c->what, what, s);
            return;
        default:
            core_fail(c, ERR_PROTO, "%s has a %s with a malformed %%-escape ('%.200s')", c->what,
                      what, s);
            return;
        }
        if (!utf8_valid(p->key, len)) {
            core_fail(c, ERR_PROTO, "%s has a %s that is not UTF-8 once decoded ('%.200s')",
                      c->what, what, s);
            return;
        }
    }
    if (len == 0) {
        core_fail(c, ERR_PROTO, "%s has an empty %s", c->what, what);
        return;
    }
    p->ent.key_len = len;
    p->has_key = true;
}

static void list_deliver(struct s3_list_parser *p)
{
    struct xml_core *c = &p->core;
    if (!p->has_key) {
        core_fail(c, ERR_PROTO, "%s has a <%s> without <%s>", c->what,
                  p->ent.is_prefix ? "CommonPrefixes" : "Contents",
                  p->ent.is_prefix ? "Prefix" : "Key");
        return;
    }
    if (!p->ent.is_prefix && !p->has_size) {
        core_fail(c, ERR_PROTO, "%s has no <Size> for key '%.200s'", c->what, p->key);
        return;
    }
    if (p->ent.is_prefix)
        p->n_prefixes++;
    else
        p->n_contents++;
    if (!p->cb)
        return;
    err_clear(&c->fail);
    int r = p->cb(p->ctx, &p->ent, &c->fail);
    if (r < 0) {
        if (!c->fail.msg[0])
            snprintf(c->fail.msg, sizeof(c->fail.msg), "listing consumer failed at key '%.200s'",
                     p->key);
        c->fail.code = r;
        core_stop(c, r);
    } else if (r > 0) {
        core_stop(c, S3_LIST_STOPPED);
    }
}

static void list_on_end_list(struct s3_list_parser *p, enum el id, const char *s, size_t n)
{
    struct xml_core *c = &p->core;
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);

    if (c->depth == 2) {
        switch (id) {
        case EL_IS_TRUNCATED:
            if (tn == 4 && strncmp(t, "true", 4) == 0)
                p->is_truncated = true;
            else if (tn == 5 && strncmp(t, "false", 5) == 0)
                p->is_truncated = false;
            else
                core_fail(c, ERR_PROTO, "%s has <IsTruncated> '%.64s', not true or false", c->what,
                          s);
            p->seen_truncated = true;
            break;
        case EL_NEXT_CONTINUATION_TOKEN:
            xml_free(p->next_token);
            p->next_token = xml_malloc(n + 1);
            if (!p->next_token) {
                core_fail(c, ERR_NOMEM, "out of memory reading %s", c->what);
                return;
            }
            memcpy(p->next_token, s, n + 1);
            break;
        case EL_KEY_COUNT:
            if (!parse_u64(s, n, &p->key_count))
                core_fail(c, ERR_PROTO, "%s has <KeyCount> '%.64s', not a number", c->what, s);
            p->has_key_count = true;
            break;
        case EL_ENCODING_TYPE:
            if (tn != 3 || strncmp(t, "url", 3) != 0)
                core_fail(c, ERR_PROTO, "%s has <EncodingType> '%.64s'; only 'url' is known",
                          c->what, s);
            else if (!p->url_encoded)
                core_fail(c, ERR_PROTO, "%s says its keys are url-encoded, which was not asked for",
                          c->what);
            p->encoding_declared = true;
            break;
        default:
            break;
        }
        return;
    }
    switch (id) {
    case EL_KEY:
    case EL_PREFIX:
        list_set_key(p, s, n);
        break;
    case EL_SIZE:
        if (!parse_u64(s, n, &p->ent.size))
            core_fail(c, ERR_PROTO, "%s has <Size> '%.64s', not a number", c->what, s);
        p->has_size = true;
        break;
    case EL_ETAG:
        etag_strip(&t, &tn);
        if (!copy_exact(p->etag, sizeof(p->etag), t, tn))
            core_fail(c, ERR_PROTO, "%s has an <ETag> longer than %zu bytes", c->what,
                      sizeof(p->etag) - 1);
        break;
    case EL_LAST_MODIFIED:
        if (s3_xml_parse_time(s, n, &p->ent.mtime_ns))
            core_fail(c, ERR_PROTO, "%s has <LastModified> '%.64s', not an ISO 8601 time", c->what,
                      s);
        break;
    case EL_STORAGE_CLASS:
        if (!copy_exact(p->storage_class, sizeof(p->storage_class), t, tn))
            core_fail(c, ERR_PROTO, "%s has a <StorageClass> longer than %zu bytes", c->what,
                      sizeof(p->storage_class) - 1);
        break;
    default:
        break;
    }
}

static void list_on_end(struct xml_core *c, enum el id)
{
    struct s3_list_parser *p = (struct s3_list_parser *)c;
    if (c->capture) {
        if (p->doc == DOC_ERROR)
            error_field(&p->error, id, c->text, c->text_len, true);
        else
            list_on_end_list(p, id, c->text, c->text_len);
        return;
    }
    if (p->doc == DOC_LIST && c->depth == 2 && (id == EL_CONTENTS || id == EL_COMMON_PREFIXES))
        list_deliver(p);
}

struct s3_list_parser *s3_list_parser_new(bool url_encoded, s3_list_entry_cb cb, void *ctx)
{
    struct s3_list_parser *p = xml_malloc(sizeof(*p));
    if (!p)
        return NULL;
    memset(p, 0, sizeof(*p));
    if (core_init(&p->core, "ListObjectsV2 response", list_on_start, list_on_end)) {
        xml_free(p);
        return NULL;
    }
    p->url_encoded = url_encoded;
    p->cb = cb;
    p->ctx = ctx;
    list_entry_reset(p, false);
    return p;
}

int s3_list_parser_feed(struct s3_list_parser *p, const char *data, size_t len, struct err *e)
{
    core_feed(&p->core, data, len, false);
    return core_report(&p->core, e);
}

void s3_list_result_clear(struct s3_list_result *res)
{
    free(res->next_token);
    memset(res, 0, sizeof(*res));
}

int s3_list_parser_finish(struct s3_list_parser *p, struct s3_list_result *res, struct err *e)
{
    struct xml_core *c = &p->core;
    memset(res, 0, sizeof(*res));
    if (core_feed(c, NULL, 0, true))
        goto out;
    if (p->doc == DOC_ERROR) {
        res->is_error = true;
        res->error = p->error;
        goto out;
    }
    if (p->doc != DOC_LIST) {
        core_fail(c, ERR_PROTO, "%s has no <ListBucketResult>", c->what);
        goto out;
    }
    if (!p->seen_truncated) {
        core_fail(c, ERR_PROTO, "%s has no <IsTruncated>, so it cannot be known to be complete",
                  c->what);
        goto out;
    }
    if (p->is_truncated && (!p->next_token || !p->next_token[0])) {
        core_fail(c, ERR_PROTO, "%s is truncated but has no <NextContinuationToken>", c->what);
        goto out;
    }
    if (p->url_encoded && !p->encoding_declared && p->decode_changed) {
        core_fail(c, ERR_PROTO,
                  "%s ignored encoding-type=url, so keys holding '+' or '%%' cannot be read "
                  "safely; the server is not S3-compatible enough for this listing",
                  c->what);
        goto out;
    }
    res->is_truncated = p->is_truncated;
    res->has_key_count = p->has_key_count;
    res->key_count = p->key_count;
    res->n_contents = p->n_contents;
    res->n_prefixes = p->n_prefixes;
    res->encoding_confirmed = p->encoding_declared;
    if (p->next_token) {
        res->next_token = strdup(p->next_token);
        if (!res->next_token)
            core_fail(c, ERR_NOMEM, "out of memory reading %s", c->what);
    }
out:
    return core_report(c, e);
}

void s3_list_parser_free(struct s3_list_parser *p)
{
    if (!p)
        return;
    core_release(&p->core);
    xml_free(p->next_token);
    xml_free(p);
}

/* ---- one-shot documents ---- */

struct oneshot;
typedef void (*oneshot_leaf_fn)(struct oneshot *o, enum el id, const char *s, size_t n);

struct oneshot {
    struct xml_core core;  /* first */
    const enum el *roots;  /* accepted root elements, EL_OTHER-terminated */
    const enum el *fields; /* depth-2 elements to keep, EL_OTHER-terminated */
    bool root_is_leaf;     /* the root's own text is the value (LocationConstraint) */
    bool only_error;       /* s3_xml_parse_error: stop at any other root */
    oneshot_leaf_fn leaf;
    void *out;
    bool is_error;
    struct s3_xml_error error;
    unsigned seen; /* bit (1 << id) of every leaf stored */
};

#define ONESHOT_OTHER_ROOT 3 /* internal stop code */

static bool el_in(enum el id, const enum el *set)
{
    for (; set && *set != EL_OTHER; set++)
        if (*set == id)
            return true;
    return false;
}

static void oneshot_on_start(struct xml_core *c, enum el id)
{
    struct oneshot *o = (struct oneshot *)c;
    if (c->depth == 1) {
        if (id == EL_ERROR) {
            o->is_error = true;
        } else if (o->only_error) {
            core_stop(c, ONESHOT_OTHER_ROOT);
        } else if (!el_in(id, o->roots)) {
            core_fail(c, ERR_PROTO, "%s has root element <%s>, not <%s>", c->what, c->root_name,
                      el_name(o->roots[0]));
        } else if (o->root_is_leaf) {
            c->capture = true;
        }
        return;
    }
    if (c->depth == 2)
        c->capture =
            o->is_error ? error_field(&o->error, id, NULL, 0, false) : el_in(id, o->fields);
}

static void oneshot_on_end(struct xml_core *c, enum el id)
{
    struct oneshot *o = (struct oneshot *)c;
    if (!c->capture)
        return;
    if (o->is_error) {
        error_field(&o->error, id, c->text, c->text_len, true);
        return;
    }
    o->seen |= 1u << id;
    o->leaf(o, id, c->text, c->text_len);
}

/* Parse body with o's rules. Returns 0, S3_XML_ERROR_DOC (errdoc filled
 * when not NULL), ONESHOT_OTHER_ROOT (only_error), or a negative code. */
static int oneshot_run(struct oneshot *o, const char *what, const char *body, size_t len,
                       struct s3_xml_error *errdoc, struct err *e)
{
    struct xml_core *c = &o->core;
    int r;
    if (errdoc)
        memset(errdoc, 0, sizeof(*errdoc));
    if (len > S3_XML_BODY_MAX)
        return err_set(e, ERR_PROTO, "%s is larger than %d bytes", what, S3_XML_BODY_MAX);
    if (core_init(c, what, oneshot_on_start, oneshot_on_end)) {
        r = err_set(e, ERR_NOMEM, "out of memory reading %s", what);
        goto out;
    }
    r = core_feed(c, body, len, true);
    if (r == 0 && c->depth != 0)
        core_fail(c, ERR_INTERNAL, "%s ended inside an element", what);
    r = core_report(c, e);
    if (r)
        goto out;
    if (o->is_error) {
        if (errdoc)
            *errdoc = o->error;
        r = S3_XML_ERROR_DOC;
    }
out:
    core_release(c);
    return r;
}

static struct oneshot *oneshot_new(void)
{
    struct oneshot *o = xml_malloc(sizeof(*o));
    if (o)
        memset(o, 0, sizeof(*o));
    return o;
}

int s3_xml_parse_error(const char *body, size_t len, struct s3_xml_error *out)
{
    const char *s = body;
    size_t n = len;
    memset(out, 0, sizeof(*out));
    trim(&s, &n);
    if (n == 0)
        return 0;
    struct oneshot *o = oneshot_new();
    if (!o)
        return ERR_NOMEM;
    o->only_error = true;
    int r = oneshot_run(o, "error response", body, len, out, NULL);
    if (r == ONESHOT_OTHER_ROOT)
        r = 0;
    xml_free(o);
    return r;
}

/* Values a result document must carry: fail when one is missing. */
static int oneshot_require(struct oneshot *o, const enum el *need, struct err *e)
{
    for (; *need != EL_OTHER; need++)
        if (!(o->seen & (1u << *need)))
            return err_set(e, ERR_PROTO, "%s has no <%s>", o->core.what, el_name(*need));
    return 0;
}

static void leaf_etag(struct oneshot *o, char *dst, size_t cap, const char *s, size_t n)
{
    etag_strip(&s, &n);
    if (n == 0)
        core_fail(&o->core, ERR_PROTO, "%s has an empty <ETag>", o->core.what);
    else if (!copy_exact(dst, cap, s, n))
        core_fail(&o->core, ERR_PROTO, "%s has an <ETag> longer than %zu bytes", o->core.what,
                  cap - 1);
}

static void leaf_text(struct oneshot *o, enum el id, char *dst, size_t cap, const char *s, size_t n)
{
    trim(&s, &n);
    if (!copy_exact(dst, cap, s, n))
        core_fail(&o->core, ERR_PROTO, "%s has a <%s> longer than %zu bytes", o->core.what,
                  el_name(id), cap - 1);
}

static void initiate_leaf(struct oneshot *o, enum el id, const char *s, size_t n)
{
    struct s3_xml_initiate *out = o->out;
    if (id == EL_UPLOAD_ID)
        leaf_text(o, id, out->upload_id, sizeof(out->upload_id), s, n);
    if (id == EL_UPLOAD_ID && !out->upload_id[0])
        core_fail(&o->core, ERR_PROTO, "%s has an empty <UploadId>", o->core.what);
}

int s3_xml_parse_initiate(const char *body, size_t len, struct s3_xml_initiate *out,
                          struct s3_xml_error *errdoc, struct err *e)
{
    static const enum el roots[] = {EL_INITIATE_RESULT, EL_OTHER};
    static const enum el fields[] = {EL_UPLOAD_ID, EL_OTHER};
    memset(out, 0, sizeof(*out));
    struct oneshot *o = oneshot_new();
    if (!o)
        return err_set(e, ERR_NOMEM, "out of memory reading InitiateMultipartUpload response");
    o->roots = roots;
    o->fields = fields;
    o->leaf = initiate_leaf;
    o->out = out;
    int r = oneshot_run(o, "InitiateMultipartUpload response", body, len, errdoc, e);
    if (r == 0)
        r = oneshot_require(o, fields, e);
    xml_free(o);
    if (r < 0)
        memset(out, 0, sizeof(*out));
    return r;
}

static void complete_leaf(struct oneshot *o, enum el id, const char *s, size_t n)
{
    struct s3_xml_complete *out = o->out;
    if (id == EL_ETAG)
        leaf_etag(o, out->etag, sizeof(out->etag), s, n);
    else if (id == EL_CHECKSUM_SHA256)
        leaf_text(o, id, out->checksum_sha256, sizeof(out->checksum_sha256), s, n);
}

int s3_xml_parse_complete(const char *body, size_t len, struct s3_xml_complete *out,
                          struct s3_xml_error *errdoc, struct err *e)
{
    static const enum el roots[] = {EL_COMPLETE_RESULT, EL_OTHER};
    static const enum el fields[] = {EL_ETAG, EL_CHECKSUM_SHA256, EL_OTHER};
    static const enum el need[] = {EL_ETAG, EL_OTHER};
    memset(out, 0, sizeof(*out));
    struct oneshot *o = oneshot_new();
    if (!o)
        return err_set(e, ERR_NOMEM, "out of memory reading CompleteMultipartUpload response");
    o->roots = roots;
    o->fields = fields;
    o->leaf = complete_leaf;
    o->out = out;
    int r = oneshot_run(o, "CompleteMultipartUpload response", body, len, errdoc, e);
    if (r == 0)
        r = oneshot_require(o, need, e);
    xml_free(o);
    if (r < 0)
        memset(out, 0, sizeof(*out));
    return r;
}

static void copy_leaf(struct oneshot *o, enum el id, const char *s, size_t n)
{
    struct s3_xml_copy *out = o->out;
    if (id == EL_ETAG)
        leaf_etag(o, out->etag, sizeof(out->etag), s, n);
    else if (id == EL_CHECKSUM_SHA256)
        leaf_text(o, id, out->checksum_sha256, sizeof(out->checksum_sha256), s, n);
    else if (id == EL_LAST_MODIFIED && s3_xml_parse_time(s, n, &out->mtime_ns))
        core_fail(&o->core, ERR_PROTO, "%s has <LastModified> '%.64s', not an ISO 8601 time",
                  o->core.what, s);
}

int s3_xml_parse_copy(const char *body, size_t len, struct s3_xml_copy *out,
                      struct s3_xml_error *errdoc, struct err *e)
{
    static const enum el roots[] = {EL_COPY_OBJECT_RESULT, EL_COPY_PART_RESULT, EL_OTHER};
    static const enum el fields[] = {EL_ETAG, EL_LAST_MODIFIED, EL_CHECKSUM_SHA256, EL_OTHER};
    static const enum el need[] = {EL_ETAG, EL_OTHER};
    memset(out, 0, sizeof(*out));
    out->mtime_ns = S3_XML_TIME_UNKNOWN;
    struct oneshot *o = oneshot_new();
    if (!o)
        return err_set(e, ERR_NOMEM, "out of memory reading CopyObject response");
    o->roots = roots;
    o->fields = fields;
    o->leaf = copy_leaf;
    o->out = out;
    int r = oneshot_run(o, "CopyObject response", body, len, errdoc, e);
    if (r == 0)
        r = oneshot_require(o, need, e);
    xml_free(o);
    if (r < 0) {
        memset(out, 0, sizeof(*out));
        out->mtime_ns = S3_XML_TIME_UNKNOWN;
    }
    return r;
}

static void location_leaf(struct oneshot *o, enum el id, const char *s, size_t n)
{
    char *region = o->out;
    trim(&s, &n);
    if (n == 0) {
        s = "us-east-1";
        n = strlen(s);
    } else if (n == 2 && memcmp(s, "EU", 2) == 0) {
        s = "eu-west-1";
        n = strlen(s);
    }
    leaf_text(o, id, region, S3_XML_REGION_MAX, s, n);
}

int s3_xml_parse_location(const char *body, size_t len, char region[S3_XML_REGION_MAX],
                          struct s3_xml_error *errdoc, struct err *e)
{
    static const enum el roots[] = {EL_LOCATION_CONSTRAINT, EL_OTHER};
    static const enum el need[] = {EL_LOCATION_CONSTRAINT, EL_OTHER};
    region[0] = '\0';
    struct oneshot *o = oneshot_new();
    if (!o)
        return err_set(e, ERR_NOMEM, "out of memory reading GetBucketLocation response");
    o->roots = roots;
    o->root_is_leaf = true;
    o->leaf = location_leaf;
    o->out = region;
    int r = oneshot_run(o, "GetBucketLocation response", body, len, errdoc, e);
    if (r == 0)
        r = oneshot_require(o, need, e);
    xml_free(o);
    if (r < 0)
        region[0] = '\0';
    return r;
}

/* ---- CompleteMultipartUpload body ---- */

/* Text that can go into an XML element: NUL-terminated within cap, UTF-8,
 * no control characters. */
static bool part_text_ok(const char *s, size_t cap)
{
    const char *end = memchr(s, '\0', cap);
    if (!end)
        return false;
    for (const char *q = s; q < end; q++)
        if ((unsigned char)*q < 0x20)
            return false;
    return utf8_valid(s, (size_t)(end - s));
}

static int put_escaped(struct buf *out, const char *s, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n && !r; i++) {
        switch (s[i]) {
        case '&':
            r = buf_puts(out, "&amp;");
            break;
        case '<':
            r = buf_puts(out, "&lt;");
            break;
        case '>':
            r = buf_puts(out, "&gt;");
            break;
        default:
            r = buf_append(out, &s[i], 1);
            break;
        }
    }
    return r;
}

int s3_xml_complete_body(struct buf *out, const struct s3_part *parts, size_t n)
{
    size_t mark = out->len;
    int r = 0;

    if (!parts || n == 0 || n > PART_NUMBER_MAX)
        return ERR_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].part_number < 1 || parts[i].part_number > PART_NUMBER_MAX ||
            (i > 0 && parts[i].part_number <= parts[i - 1].part_number) ||
            !part_text_ok(parts[i].etag, sizeof(parts[i].etag)) ||
            !part_text_ok(parts[i].checksum_sha256, sizeof(parts[i].checksum_sha256)))
            return ERR_INTERNAL;
        const char *t = parts[i].etag;
        size_t tn = strlen(t);
        etag_strip(&t, &tn);
        if (tn == 0)
            return ERR_INTERNAL;
    }

    r = buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<CompleteMultipartUpload "
                      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < n && !r; i++) {
        const char *t = parts[i].etag;
        size_t tn = strlen(t);
        etag_strip(&t, &tn);
        r = buf_printf(out, "<Part><PartNumber>%u</PartNumber><ETag>\"",
                       (unsigned)parts[i].part_number);
        if (!r)
            r = put_escaped(out, t, tn);
        if (!r)
            r = buf_puts(out, "\"</ETag>");
        if (!r && parts[i].checksum_sha256[0]) {
            r = buf_puts(out, "<ChecksumSHA256>");
            if (!r)
                r = put_escaped(out, parts[i].checksum_sha256, strlen(parts[i].checksum_sha256));
            if (!r)
                r = buf_puts(out, "</ChecksumSHA256>");
        }
        if (!r)
            r = buf_puts(out, "</Part>");
    }
    if (!r)
        r = buf_puts(out, "</CompleteMultipartUpload>");
    if (r) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return r;
}
