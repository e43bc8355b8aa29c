#include "core/config.h"
#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (1024 * 1024)

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

void config_default_path(char *out, size_t cap)
{
    const char *p = getenv("ARCA_CONFIG");
    if (p && *p) {
        snprintf(out, cap, "%s", p);
        return;
    }
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg) {
        snprintf(out, cap, "%s/arca/config", xdg);
        return;
    }
    const char *home = getenv("HOME");
    snprintf(out, cap, "%s/.config/arca/config", home && *home ? home : ".");
}

/* Open a file holding secrets: it must be a regular file that group and
 * others cannot read or write. */
static int open_private(const char *path, const char *what, bool required, FILE **out,
                        struct err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && !required)
            return 0;
        if (errno == ENOENT)
            return err_set(e, ERR_CONFIG, "%s '%s' does not exist; check the path", what, path);
        return err_set(e, ERR_CONFIG, "cannot open %s '%s': %s", what, path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, ERR_CONFIG, "%s '%s' is not a regular file", what, path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return err_set(e, ERR_CONFIG,
                       "%s '%s' is accessible by others (mode %04o) and may hold secrets; run "
                       "chmod 600 '%s'",
                       what, path, (unsigned)(st.st_mode & 07777), path);
    }
    if (st.st_size > CONFIG_MAX_BYTES) {
        close(fd);
        return err_set(e, ERR_CONFIG, "%s '%s' is larger than 1 MiB", what, path);
    }
    *out = fdopen(fd, "r");
    if (!*out) {
        close(fd);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    return 0;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

int config_load(struct config *cfg, const char *path, bool required, struct err *e)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = strdup(path);
    if (!cfg->path)
        return err_set(e, ERR_NOMEM, "out of memory");
    FILE *f;
    int r = open_private(path, "config file", required, &f, e);
    if (r || !f)
        return r;
    char line[4096 + 2];
    char *section = NULL;
    int lineno = 0;
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            r = err_set(e, ERR_CONFIG, "config file '%s' line %d is longer than 4 KiB", path,
                        lineno);
            goto out;
        }
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || end[1]) {
                r = err_set(e, ERR_CONFIG,
                            "config file '%s' line %d: a section header looks like [name]", path,
                            lineno);
                goto out;
            }
            *end = '\0';
            char *name = trim(s + 1);
            if (!*name) {
                r = err_set(e, ERR_CONFIG, "config file '%s' line %d: empty section name", path,
                            lineno);
                goto out;
            }
            free(section);
            section = strdup(name);
            if (!section) {
                r = err_set(e, ERR_NOMEM, "out of memory");
                goto out;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            r = err_set(e, ERR_CONFIG, "config file '%s' line %d: expected 'key = value'", path,
                        lineno);
            goto out;
        }
        if (!section) {
            r = err_set(e, ERR_CONFIG,
                        "config file '%s' line %d: 'key = value' before any [section]", path,
                        lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (cfg->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct config_kv *items = realloc(cfg->items, cap * sizeof(*items));
            if (!items) {
                r = err_set(e, ERR_NOMEM, "out of memory");
                goto out;
            }
            cfg->items = items;
        }
        struct config_kv *kv = &cfg->items[cfg->n];
        kv->section = strdup(section);
        kv->key = strdup(key);
        kv->value = strdup(value);
        kv->line = lineno;
        cfg->n++;
        if (!kv->section || !kv->key || !kv->value) {
            r = err_set(e, ERR_NOMEM, "out of memory");
            goto out;
        }
    }
out:
    explicit_bzero(line, sizeof(line));
    free(section);
    fclose(f);
    return r;
}

void config_release(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->items[i].section);
        free(cfg->items[i].key);
        wipe_free(cfg->items[i].value);
    }
    free(cfg->items);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

bool config_has_section(const struct config *cfg, const char *section)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (!strcmp(cfg->items[i].section, section))
            return true;
    return false;
}

const char *config_get(const struct config *cfg, const char *section, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < cfg->n; i++) /* the last one wins */
        if (!strcmp(cfg->items[i].section, section) && !strcmp(cfg->items[i].key, key))
            v = cfg->items[i].value;
    return v;
}

int config_read_secret_file(const char *path, char **out, struct err *e)
{
    *out = NULL;
    FILE *f;
    int r = open_private(path, "secret file", true, &f, e);
    if (r)
        return r;
    char line[4096];
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return err_set(e, ERR_CONFIG, "secret file '%s' is empty", path);
    }
    fclose(f);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (!n) {
        explicit_bzero(line, sizeof(line));
        return err_set(e, ERR_CONFIG, "secret file '%s' has an empty first line", path);
    }
    *out = strdup(line);
    explicit_bzero(line, sizeof(line));
    return *out ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}

int config_prompt_secret(const char *prompt, const char *how, char **out, struct err *e)
{
    *out = NULL;
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !isatty(fd)) {
        if (fd >= 0)
            close(fd);
        return err_set(e, ERR_AUTH, "%s: no terminal to ask on; %s", prompt, how);
    }
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        (void)tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    dprintf(fd, "%s: ", prompt);
    char line[4096];
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t got = read(fd, &c, 1);
        if (got <= 0 || c == '\n' || c == '\r')
            break;
        if (n + 1 < sizeof(line))
            line[n++] = c;
    }
    line[n] = '\0';
    if (restore)
        (void)tcsetattr(fd, TCSAFLUSH, &old);
    dprintf(fd, "\n");
    close(fd);
    *out = strdup(line);
    explicit_bzero(line, sizeof(line));
    return *out ? 0 : err_set(e, ERR_NOMEM, "out of memory");
}
