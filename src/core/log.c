#include "core/log.h"
#include "core/utf8.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX_SECRETS 32
#define LOG_LINE_MAX 4096

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_level = LOG_WARN;
static enum log_format log_format = LOG_FORMAT_AUTO;
static char *log_secrets[LOG_MAX_SECRETS];
static size_t log_nsecrets;
static void (*log_sink)(const char *, void *);
static void *log_sink_ctx;

void log_setup(enum log_level level, enum log_format format)
{
    log_level = level;
    log_format = format;
    if (format == LOG_FORMAT_AUTO)
        log_format = isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
}

enum log_level log_get_level(void)
{
    return log_level;
}

void log_set_sink(void (*sink)(const char *, void *), void *ctx)
{
    pthread_mutex_lock(&log_lock);
    log_sink = sink;
    log_sink_ctx = ctx;
    pthread_mutex_unlock(&log_lock);
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_nsecrets; i++)
        if (!strcmp(log_secrets[i], secret))
            goto out;
    if (log_nsecrets < LOG_MAX_SECRETS) {
        char *copy = strdup(secret);
        if (copy)
            log_secrets[log_nsecrets++] = copy;
    }
out:
    pthread_mutex_unlock(&log_lock);
}

void log_clear_secrets(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_nsecrets; i++) {
        volatile char *p = log_secrets[i];
        while (*p)
            *p++ = 0;
        free(log_secrets[i]);
    }
    log_nsecrets = 0;
    pthread_mutex_unlock(&log_lock);
}

/* Replace every occurrence of needle in s by "***" (s shrinks or stays). */
static void redact_value(char *s, const char *needle)
{
    size_t n = strlen(needle);
    char *p;
    while ((p = strstr(s, needle)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + n, strlen(p + n) + 1);
    }
}

/* Mask the value that starts at v (after "key" and its '=' or ':'):
 * KEY_HEADER values run to the end of the line (an Authorization value
 * holds spaces and commas), KEY_PARAM values to '&', space or a quote,
 * KEY_WORD values to the next delimiter. Returns where scanning goes on. */
enum redact_kind { KEY_HEADER, KEY_PARAM, KEY_WORD };

static char *mask_value(char *v, enum redact_kind kind)
{
    while (*v == ' ' || *v == '"' || *v == '\'' || *v == '=' || *v == ':')
        v++;
    char *end = v;
    if (kind == KEY_HEADER) {
        while (*end && *end != '\n' && *end != '\r' && *end != '"')
            end++;
    } else {
        while (*end && !isspace((unsigned char)*end) && *end != '&' && *end != '"' &&
               *end != '\'' && *end != ',' && *end != ';' && *end != '}' &&
               (kind == KEY_PARAM || *end != ')'))
            end++;
    }
    if (end == v)
        return end;
    size_t n = (size_t)(end - v);
    if (n >= 3) {
        memcpy(v, "***", 3);
        memmove(v + 3, end, strlen(end) + 1);
        return v + 3;
    }
    memset(v, '*', n);
    return end;
}

static const struct {
    const char *key;
    enum redact_kind kind;
} redact_keys[] = {
    {"authorization:", KEY_HEADER},
    {"x-amz-security-token:", KEY_HEADER},
    {"x-amz-signature=", KEY_PARAM},
    {"x-amz-credential=", KEY_PARAM},
    {"x-amz-security-token=", KEY_PARAM},
    {"signature=", KEY_PARAM},
    {"credential=", KEY_PARAM},
    {"password", KEY_WORD},
    {"secret", KEY_WORD},
    {"token", KEY_WORD},
    {"passphrase", KEY_WORD},
};

static char *strcasestr_local(char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return hay;
    return NULL;
}

void log_redact(char *s)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_nsecrets; i++)
        redact_value(s, log_secrets[i]);
    pthread_mutex_unlock(&log_lock);
    for (size_t k = 0; k < sizeof(redact_keys) / sizeof(redact_keys[0]); k++) {
        char *p = s;
        while ((p = strcasestr_local(p, redact_keys[k].key)) != NULL) {
            char *v = p + strlen(redact_keys[k].key);
            if (redact_keys[k].kind == KEY_WORD) {
                /* Only "key=value", "key: value", "key"="..." forms; the key
                 * may go on as a name ("secret_access_key = x"), but words
                 * in prose ("secret access key is missing") stay. */
                while (*v == '_' || *v == '-' || isalnum((unsigned char)*v))
                    v++;
                char *q = v;
                while (*q == '"' || *q == '\'' || *q == ' ')
                    q++;
                if (*q != '=' && *q != ':') {
                    p = v;
                    continue;
                }
                v = q;
            }
            p = mask_value(v, redact_keys[k].kind);
        }
    }
}

/* JSON string body of s: escapes, and U+FFFD for bytes that are not UTF-8,
 * so a log line is valid JSON whatever a path holds. */
static void json_escape_into(char *out, size_t cap, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + strlen(str);
    size_t o = 0;
    while (*s && o + 8 < cap) {
        unsigned char c = *s;
        size_t n = utf8_seq_len(s, (size_t)(end - s));
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            s++;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
            s++;
        } else if (n == 0) {
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
            s++;
        } else {
            memcpy(out + o, s, n);
            o += n;
            s += n;
        }
    }
    out[o] = '\0';
}

static const char *level_names[] = {"error", "warn", "info", "debug"};

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_redact(msg);

    char line[LOG_LINE_MAX * 2];
    if (log_format == LOG_FORMAT_JSON) {
        char esc[LOG_LINE_MAX * 2 - 128];
        json_escape_into(esc, sizeof(esc), msg);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(line, sizeof(line),
                 "{\"type\":\"log\",\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}", when,
                 ts.tv_nsec / 1000000, level_names[level], esc);
    } else if (level == LOG_INFO) {
        snprintf(line, sizeof(line), "%s", msg);
    } else {
        snprintf(line, sizeof(line), "arca: %s: %s", level_names[level], msg);
    }
    pthread_mutex_lock(&log_lock);
    if (log_sink)
        log_sink(line, log_sink_ctx);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}
