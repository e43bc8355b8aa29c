/*
 * s3_xml.h - the XML that S3 answers with, and the one body we send.
 *
 * Everything here parses bytes a remote server chose, so every size is
 * bounded (S3_XML_* below) and documents with a DOCTYPE are refused before
 * any entity can be declared. Element names are matched on their local part,
 * so the S3 namespace (xmlns="http://s3.amazonaws.com/doc/2006-03-01/"), any
 * other namespace or none at all are treated alike.
 *
 * ListObjectsV2 is parsed push-style, as libcurl hands over the body: memory
 * stays the same whatever the number of <Contents> in the page (one parser
 * holds about 90 KiB with expat's buffers, allocated up front; nothing is
 * allocated per entry). The other responses are
 * small and parsed in one call from a body the caller has bounded.
 *
 * Return convention of the one-shot parsers: 0 when the body is the expected
 * document, S3_XML_ERROR_DOC (1) when it is an S3 <Error> document (errdoc is
 * filled; S3 answers "200 OK" with an <Error> body for CompleteMultipartUpload
 * and CopyObject when it fails late), or a negative ERR_* code (ERR_PROTO for
 * malformed or unexpected XML) with e filled.
 *
 * Thread-safety: functions without a parser argument are thread-safe; a list
 * parser belongs to one thread at a time.
 */
#ifndef ARCA_STORAGE_S3_XML_H
#define ARCA_STORAGE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* Longest key or common prefix accepted, after percent-decoding (S3 keys are
 * at most 1024 bytes). */
#define S3_XML_KEY_MAX 4096
/* Longest text of any one element, as it stands in the XML. */
#define S3_XML_TEXT_MAX 65536
/* Deepest element nesting accepted (S3 documents are 4 deep). */
#define S3_XML_DEPTH_MAX 16
/* Capacities of fixed fields, NUL included. */
#define S3_XML_ETAG_MAX 128
#define S3_XML_CHECKSUM_MAX 64
#define S3_XML_STORAGE_CLASS_MAX 64
#define S3_XML_UPLOAD_ID_MAX 1024
#define S3_XML_REGION_MAX 64
/* Largest body the one-shot parsers accept. */
#define S3_XML_BODY_MAX (1024 * 1024)

/* Returned by one-shot parsers (and s3_xml_parse_error) for an <Error> body. */
#define S3_XML_ERROR_DOC 1
/* Returned by s3_list_parser_feed/finish once the entry callback asked to stop. */
#define S3_LIST_STOPPED 2

/* mtime of an entry whose LastModified is missing. */
#define S3_XML_TIME_UNKNOWN INT64_MIN

/* An S3 <Error> document. Fields are NUL-terminated copies, cut (at a UTF-8
 * character boundary) when longer than their array, "" when absent. */
struct s3_xml_error {
    char code[64]; /* "NoSuchBucket", "SlowDown", ... */
    char message[512];
    char request_id[128];
    char host_id[256];
    char resource[512];
    char region[64];    /* AuthorizationHeaderMalformed, PermanentRedirect */
    char endpoint[256]; /* PermanentRedirect, TemporaryRedirect */
};

/*
 * Parse an <Error> document from a whole body (len bytes, need not be
 * NUL-terminated; at most S3_XML_BODY_MAX). Returns S3_XML_ERROR_DOC and
 * fills *out when the root element is <Error> (and the whole document is
 * well-formed); 0 when the body is empty, only whitespace, or XML whose root
 * element is something else (out is zeroed; parsing stops at that root); a
 * negative ERR_* code when the body is not XML, is malformed, has a DOCTYPE
 * or exceeds a bound.
 */
int s3_xml_parse_error(const char *body, size_t len, struct s3_xml_error *out);

/* ---- ListObjectsV2, push-style ---- */

/* One <Contents> or <CommonPrefixes> of a listing. Every pointer is valid only
 * during the callback (the parser reuses the memory). */
struct s3_list_entry {
    bool is_prefix;  /* a <CommonPrefixes><Prefix>: only key/key_len are set */
    const char *key; /* decoded (see s3_list_parser_new), NUL-terminated, valid UTF-8 */
    size_t key_len;  /* <= S3_XML_KEY_MAX */
    uint64_t size;
    int64_t mtime_ns;          /* LastModified in ns since the epoch, or S3_XML_TIME_UNKNOWN */
    const char *etag;          /* surrounding quotes removed; "" when absent */
    const char *storage_class; /* "" when absent */
};

/* Called for every entry, in document order. Return 0 to go on, a negative
 * ERR_* code (after filling e) to fail the parse with it, or a positive
 * value to stop quietly (feed and finish then return S3_LIST_STOPPED). */
typedef int (*s3_list_entry_cb)(void *ctx, const struct s3_list_entry *ent, struct err *e);

struct s3_list_result {
    bool is_error; /* the body was an <Error> document, see error */
    struct s3_xml_error error;
    bool is_truncated; /* IsTruncated: another page follows */
    char *next_token;  /* NextContinuationToken, owned: free with
                        * s3_list_result_clear; NULL when absent */
    bool has_key_count;
    uint64_t key_count;      /* KeyCount as the server stated it */
    uint64_t n_contents;     /* <Contents> delivered to the callback */
    uint64_t n_prefixes;     /* <CommonPrefixes> delivered */
    bool encoding_confirmed; /* the body said <EncodingType>url</EncodingType> */
};

/* Free next_token and zero *res. */
void s3_list_result_clear(struct s3_list_result *res);

struct s3_list_parser;

/*
 * Create a parser for one ListObjectsV2 response body. url_encoded tells
 * whether the request carried encoding-type=url. When it did, each Key and
 * CommonPrefixes/Prefix is decoded the way botocore does (urllib's
 * unquote_plus: "%XX" is a byte, '+' is a space; a literal '+' arrives as
 * "%2B"); a malformed escape, an escaped NUL or a result that is not UTF-8 is
 * ERR_PROTO. A server that ignores encoding-type (s3rver does) sends raw keys:
 * finish() then fails with ERR_PROTO when no <EncodingType>url</EncodingType>
 * was seen and decoding changed some key, rather than let a key holding '+'
 * or '%' be silently renamed. When url_encoded is false, keys are passed on
 * as they are and a body claiming EncodingType url is ERR_PROTO.
 *
 * Entries reach the callback while the body streams in; they are provisional
 * until finish() returns 0 (a body cut short, a malformed tail or the check
 * above fail only there).
 *
 * Returns NULL when out of memory. The parser is freed by s3_list_parser_free.
 */
struct s3_list_parser *s3_list_parser_new(bool url_encoded, s3_list_entry_cb cb, void *ctx);

/* Push the next len bytes of the body. Returns 0, S3_LIST_STOPPED, or a
 * negative ERR_* code with e filled (ERR_PROTO: malformed XML, DOCTYPE, a
 * bound exceeded, a bad value; or the callback's own code). Errors and stops
 * are sticky: later calls return the same. */
int s3_list_parser_feed(struct s3_list_parser *p, const char *data, size_t len, struct err *e);

/* End of body. Returns 0 and fills *res (which the caller clears with
 * s3_list_result_clear), S3_LIST_STOPPED, or a negative ERR_* code with e
 * filled. An <Error> body returns 0 with res->is_error set. A listing must
 * say IsTruncated, and must carry a NextContinuationToken when it is true. */
int s3_list_parser_finish(struct s3_list_parser *p, struct s3_list_result *res, struct err *e);

void s3_list_parser_free(struct s3_list_parser *p);

/* ---- small responses, parsed whole (see the return convention above) ---- */

/* InitiateMultipartUploadResult. */
struct s3_xml_initiate {
    char upload_id[S3_XML_UPLOAD_ID_MAX];
};
int s3_xml_parse_initiate(const char *body, size_t len, struct s3_xml_initiate *out,
                          struct s3_xml_error *errdoc, struct err *e);

/* CompleteMultipartUploadResult. S3 may send whitespace before the XML while
 * it works; that is skipped. */
struct s3_xml_complete {
    char etag[S3_XML_ETAG_MAX];                /* quotes removed */
    char checksum_sha256[S3_XML_CHECKSUM_MAX]; /* "" when absent */
};
int s3_xml_parse_complete(const char *body, size_t len, struct s3_xml_complete *out,
                          struct s3_xml_error *errdoc, struct err *e);

/* CopyObjectResult or CopyPartResult. */
struct s3_xml_copy {
    char etag[S3_XML_ETAG_MAX]; /* quotes removed */
    int64_t mtime_ns;           /* LastModified, or S3_XML_TIME_UNKNOWN */
    char checksum_sha256[S3_XML_CHECKSUM_MAX];
};
int s3_xml_parse_copy(const char *body, size_t len, struct s3_xml_copy *out,
                      struct s3_xml_error *errdoc, struct err *e);

/* GetBucketLocation's <LocationConstraint>: the region, with S3's legacy
 * answers mapped ("" -> "us-east-1", "EU" -> "eu-west-1"). */
int s3_xml_parse_location(const char *body, size_t len, char region[S3_XML_REGION_MAX],
                          struct s3_xml_error *errdoc, struct err *e);

/* ---- the body we send ---- */

struct s3_part {
    uint32_t part_number;                      /* 1..10000 */
    char etag[S3_XML_ETAG_MAX];                /* as UploadPart returned it, quotes optional */
    char checksum_sha256[S3_XML_CHECKSUM_MAX]; /* base64, or "" */
};

/*
 * Append a CompleteMultipartUpload body for parts[0..n) to out. Parts must be
 * in strictly increasing part_number order within 1..10000 and n >= 1; their
 * text must be XML-representable (no control characters). Returns 0,
 * ERR_NOMEM when out's maximum is reached, ERR_INTERNAL for parts that break
 * those rules (out is then left as it was).
 */
int s3_xml_complete_body(struct buf *out, const struct s3_part *parts, size_t n);

/* ---- helpers ---- */

/* Parse an ISO 8601 UTC time as S3 writes it ("2009-10-12T17:50:30.000Z";
 * also without fraction, with up to 9 fraction digits, or with a +hh:mm
 * offset) to ns since the epoch. ERR_PROTO when malformed or out of range. */
int s3_xml_parse_time(const char *s, size_t len, int64_t *ns);

/* Memory used by this module (expat's included), for tests and diagnostics:
 * bytes held now, the most ever held at once, and the number of allocations
 * made so far. Process-wide, thread-safe. */
struct s3_xml_mem_stats {
    uint64_t live_bytes;
    uint64_t peak_bytes;
    uint64_t allocs;
};
void s3_xml_mem_stats(struct s3_xml_mem_stats *out);

#endif
