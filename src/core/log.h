/*
 * log.h - diagnostics on stderr: human-readable on a TTY, JSON lines
 * otherwise. Every line passes through log_redact() first, so secrets never
 * reach a terminal or a log file even when a caller formats a header or a
 * URL carelessly. Thread-safe.
 */
#ifndef ARCA_CORE_LOG_H
#define ARCA_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

enum log_format { LOG_FORMAT_AUTO = 0, LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Configure level and format (AUTO: text when stderr is a TTY). */
void log_setup(enum log_level level, enum log_format format);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Register a secret value (access key secret, password, token): any later
 * occurrence of it in a log line is replaced by "***". Values shorter than 4
 * bytes are ignored (they would mask ordinary text). Copies the value. */
void log_add_secret(const char *secret);
/* Forget all registered secrets (wiping their copies). */
void log_clear_secrets(void);

/* Redact s in place: registered secrets, and the values after
 * "Authorization:", "X-Amz-Security-Token:", "X-Amz-Signature=",
 * "X-Amz-Credential=", "password", "secret" and "token" keys (= or :). */
void log_redact(char *s);

/* Where log lines go (default stderr); for tests. */
void log_set_sink(void (*sink)(const char *line, void *ctx), void *ctx);

#endif
