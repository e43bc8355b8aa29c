/*
 * config.h - the INI config file (~/.config/arca/config).
 *
 *     # comment
 *     [name]            a named remote (or, later, [server])
 *     key = value       whitespace around key and value is trimmed
 *
 * The file holds secrets, so config_load() refuses one that group or
 * others can read or write (mode must be 0600 or stricter), naming the fix.
 * Lines are at most 4 KiB; the file at most 1 MiB.
 */
#ifndef ARCA_CORE_CONFIG_H
#define ARCA_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct err;

struct config_kv {
    char *section;
    char *key;
    char *value;
    int line;
};

struct config {
    char *path;
    struct config_kv *items;
    size_t n;
};

/* Load path. A missing file is an empty config when !required (the
 * default path), ERR_CONFIG when required (given with --config). */
int config_load(struct config *cfg, const char *path, bool required, struct err *e);
void config_release(struct config *cfg); /* wipes values (they may be secrets) */

bool config_has_section(const struct config *cfg, const char *section);
/* Value of key in section, or NULL. Owned by cfg. */
const char *config_get(const struct config *cfg, const char *section, const char *key);

/* Default path: $ARCA_CONFIG, else $XDG_CONFIG_HOME/arca/config, else
 * $HOME/.config/arca/config. Writes into out. */
void config_default_path(char *out, size_t cap);

/* Read a secret from a file (first line, trailing newline removed); the
 * file must not be readable by group or others. Caller frees (and wipes). */
int config_read_secret_file(const char *path, char **out, struct err *e);

/* Ask for a secret on the terminal (/dev/tty, echo off). ERR_AUTH when
 * there is no terminal, naming `how` (where else the secret can come from).
 * Caller frees (and wipes). */
int config_prompt_secret(const char *prompt, const char *how, char **out, struct err *e);

#endif
