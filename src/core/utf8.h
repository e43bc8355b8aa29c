/*
 * utf8.h - UTF-8 validation, the one place that decides what is UTF-8.
 *
 * Strict: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF. Used wherever bytes from outside (keys, paths) must become
 * JSON or XML text. Thread-safe, no allocation.
 */
#ifndef ARCA_CORE_UTF8_H
#define ARCA_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at s[0..n), or 0 when s does not
 * start with one (n == 0 included). */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* Whether s[0..n) is valid UTF-8 as a whole. */
bool utf8_valid(const char *s, size_t n);

/* A malloc'ed, NUL-terminated copy of s[0..n) in which each byte that does
 * not start a valid sequence is replaced by U+FFFD; NULL when out of memory.
 * Caller frees. */
char *utf8_sanitize(const char *s, size_t n);

#endif
