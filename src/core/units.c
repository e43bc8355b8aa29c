#include "core/units.h"
#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int units_parse_size(const char *s, const char *what, uint64_t *out, struct err *e)
{
    if (!s || !*s)
        return err_set(e, ERR_USAGE, "%s is empty; give a size like 16M", what);
    /* plain decimal only: strtod would also take "0x10", "1e3", "inf" */
    size_t digits = strspn(s, "0123456789.");
    if (digits == 0 || strchr(s + strspn(s, "0123456789"), '.') != strrchr(s, '.') ||
        (strchr(s, '.') && strchr(s, '.') >= s + digits))
        return err_set(e, ERR_USAGE,
                       "%s '%s' is not a size; use a number with B, K, M, G or T (binary units)",
                       what, s);
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end != s + digits)
        return err_set(e, ERR_USAGE,
                       "%s '%s' is not a size; use a number with B, K, M, G or T (binary units)",
                       what, s);
    if (end == s || errno || v < 0 || !isfinite(v) || isspace((unsigned char)*s) || *s == '-')
        return err_set(e, ERR_USAGE,
                       "%s '%s' is not a size; use a number with B, K, M, G or T (binary units)",
                       what, s);
    double mult = 1;
    const char *u = end;
    switch (toupper((unsigned char)*u)) {
    case '\0':
        break;
    case 'B':
        mult = 1;
        u++;
        goto tail_done;
    case 'K':
        mult = 1024.0;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        break;
    case 'P':
        mult = 1024.0 * 1024 * 1024 * 1024 * 1024;
        break;
    default:
        return err_set(e, ERR_USAGE,
                       "%s '%s' has an unknown unit; use B, K, M, G or T (binary units)", what, s);
    }
    if (*u) {
        u++;
        if (*u == 'i' || *u == 'I')
            u++;
        if (*u == 'b' || *u == 'B')
            u++;
    }
tail_done:
    if (*u)
        return err_set(e, ERR_USAGE,
                       "%s '%s' has trailing characters; use a number with B, K, M, G or T", what,
                       s);
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0)
        return err_set(e, ERR_USAGE, "%s '%s' is too large", what, s);
    *out = (uint64_t)bytes;
    return 0;
}

int units_parse_rate(const char *s, const char *what, uint64_t *out, struct err *e)
{
    if (s && (!strcasecmp(s, "off") || !strcasecmp(s, "0"))) {
        *out = 0;
        return 0;
    }
    char tmp[64];
    if (s) {
        /* accept a trailing "/s" */
        size_t n = strlen(s);
        if (n >= 2 && n < sizeof(tmp) && !strcmp(s + n - 2, "/s")) {
            memcpy(tmp, s, n - 2);
            tmp[n - 2] = '\0';
            s = tmp;
        }
    }
    return units_parse_size(s, what, out, e);
}

char *units_format_size(uint64_t bytes, char *out, size_t cap)
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int i = 0;
    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, cap, "%.1f %s", v, names[i]);
    return out;
}
