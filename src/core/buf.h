/*
 * buf.h - growable byte buffer with a hard maximum size.
 *
 * Everything fed by the network goes through a buf with a maximum, so a
 * hostile or broken server cannot make us allocate without bound. The data
 * is always NUL-terminated (not counted in len) so text can be used directly.
 */
#ifndef ARCA_CORE_BUF_H
#define ARCA_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* 0 means SIZE_MAX */
};

#define BUF_INIT(maxsize)                                                                          \
    {                                                                                              \
        NULL, 0, 0, (maxsize)                                                                      \
    }

void buf_init(struct buf *b, size_t max);
/* Append n bytes; ERR_NOMEM when the maximum would be exceeded (b unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Make room for n more bytes without changing len. */
int buf_reserve(struct buf *b, size_t n);
void buf_reset(struct buf *b);   /* len = 0, keeps memory */
void buf_release(struct buf *b); /* frees memory, keeps max */
/* Hand the data to the caller (who frees it); b becomes empty. Never NULL
 * unless allocation fails. */
char *buf_detach(struct buf *b);

#endif
