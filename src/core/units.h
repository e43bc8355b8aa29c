/*
 * units.h - sizes and rates in binary units.
 *
 * "10M" is 10 MiB (10 * 2^20 bytes); suffixes B, K, M, G, T, P (case
 * insensitive, an optional trailing "i", "iB" or "B" is accepted: "10MiB",
 * "10MB" and "10m" are all 10 MiB). A rate is a size per second: "--bwlimit
 * 10M" is 10 MiB/s; "0" or "off" means unlimited. Fractions are allowed
 * ("1.5G"). See docs/CLI.md.
 */
#ifndef ARCA_CORE_UNITS_H
#define ARCA_CORE_UNITS_H

#include <stddef.h>
#include <stdint.h>

struct err;

/* Parse a size; ERR_USAGE with a message naming `what` when malformed. */
int units_parse_size(const char *s, const char *what, uint64_t *out, struct err *e);
/* Parse a rate in bytes/second; "off" gives 0. */
int units_parse_rate(const char *s, const char *what, uint64_t *out, struct err *e);
/* Format bytes as "1.5 MiB" into out (cap >= 16). Returns out. */
char *units_format_size(uint64_t bytes, char *out, size_t cap);

#endif
