/*
 * timefmt.h - wall-clock times as arca writes them: UTC, RFC 3339 with
 * milliseconds ("2026-11-22T09:15:00.120Z").
 */
#ifndef ARCA_CORE_TIMEFMT_H
#define ARCA_CORE_TIMEFMT_H

#include <stdint.h>

#define TIMEFMT_LEN 24 /* "2026-11-22T09:15:00.120Z" */

/* Milliseconds since the epoch, now (CLOCK_REALTIME). */
int64_t time_now_ms(void);
/* Format ms as above into out (at least TIMEFMT_LEN + 1 bytes). */
void time_format_ms(int64_t ms, char *out);
/* Unix seconds of a UTC date and time, -1 unless it is a real one from
 * 1970 on (no Feb 30, no hour 24; second 60 is refused). */
int64_t time_civil(int y, int mo, int d, int h, int mi, int s);
/* Parse "YYYY-MM-DDTHH:MM:SS[.fff...]Z"; -1 (and nothing else) when s is
 * not exactly that. */
int64_t time_parse_ms(const char *s);

#endif
