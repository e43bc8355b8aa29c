/*
 * lock.c - destination locks: write ours, look at the others, renew ours
 * from a thread until released.
 */
#include "backup/lock.h"

#include "core/cancel.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "storage/storage.h"

#include <jansson.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCK_MAX_BYTES 4096

struct backup_lock {
    struct storage *dst;
    char key[128];
    char run[64];
    char operation[16];
    char host[256];
    long pid;
    int64_t started_ms;
    pthread_t thread;
    bool running;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* What a lock object says. */
struct lock_info {
    char run[64];
    char operation[32];
    char host[256];
    long pid;
    int64_t started_ms;
    int64_t renewed_ms;
};

/* Whether pid runs on this host: it exists and is not a zombie (a killed
 * process whose parent has not reaped it). */
static bool process_alive(long pid)
{
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return false;
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return !(close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z');
}

static char *lock_json(const struct backup_lock *l, int64_t renewed_ms)
{
    char started[TIMEFMT_LEN + 1], renewed[TIMEFMT_LEN + 1];
    time_format_ms(l->started_ms, started);
    time_format_ms(renewed_ms, renewed);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "run", l->run, "operation",
                          l->operation, "host", l->host, "pid", (json_int_t)l->pid, "started",
                          started, "renewed", renewed);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int lock_write(struct backup_lock *l, struct err *e)
{
    char *s = lock_json(l, time_now_ms());
    if (!s)
        return err_set(e, ERR_NOMEM, "out of memory writing the lock");
    size_t n = strlen(s);
    s[n] = '\n'; /* the NUL json_dumps wrote becomes the newline */
    int r = storage_put_bytes(l->dst, l->key, s, n + 1, e);
    free(s);
    return r;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Parse a lock object; false when it is not one (then only the object's
 * mtime tells its age). */
static bool lock_parse(const char *data, struct lock_info *li)
{
    json_error_t je;
    json_t *o = json_loads(data, 0, &je);
    if (!o)
        return false;
    const char *run = NULL, *op = NULL, *host = NULL, *started = NULL, *renewed = NULL;
    json_int_t pid = 0;
    int bad = json_unpack(o, "{s:s, s?s, s?s, s?I, s:s, s:s}", "run", &run, "operation", &op,
                          "host", &host, "pid", &pid, "started", &started, "renewed", &renewed);
    if (!bad) {
        copy_str(li->run, sizeof(li->run), run);
        copy_str(li->operation, sizeof(li->operation), op ? op : "?");
        copy_str(li->host, sizeof(li->host), host ? host : "?");
        li->pid = (long)pid;
        li->started_ms = time_parse_ms(started);
        li->renewed_ms = time_parse_ms(renewed);
        bad = li->started_ms < 0 || li->renewed_ms < 0;
    }
    json_decref(o);
    return !bad;
}

static void *renew_main(void *arg)
{
    struct backup_lock *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += LOCK_RENEW_SECONDS;
        while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
            ;
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        struct err e;
        err_clear(&e);
        if (lock_write(l, &e) != 0)
            log_warn("cannot renew the lock '%s': %s", l->key, e.msg);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* -1: a orders before b (wins), 1: after. */
static int lock_order(int64_t a_started, const char *a_run, int64_t b_started, const char *b_run)
{
    if (a_started != b_started)
        return a_started < b_started ? -1 : 1;
    return strcmp(a_run, b_run) < 0 ? -1 : 1;
}

/* Look at every other lock; 0 when we may go on. */
static int lock_check_others(struct backup_lock *l, struct err *e)
{
    struct storage_list *ls;
    struct storage_entry ent;
    int r = storage_list_open(l->dst, LOCK_PREFIX, &ls, e);
    if (r)
        return r;
    int64_t now = time_now_ms();
    while ((r = storage_list_next(ls, &ent, e)) == 1) {
        if (!strcmp(ent.key, l->key)) {
            storage_entry_clear(&ent);
            continue;
        }
        struct lock_info li;
        memset(&li, 0, sizeof(li));
        char *data = NULL;
        size_t len = 0;
        struct err ge;
        err_clear(&ge);
        int gr = storage_get_bytes(l->dst, ent.key, LOCK_MAX_BYTES, &data, &len, &ge);
        if (gr == ERR_NOT_FOUND) { /* released meanwhile */
            storage_entry_clear(&ent);
            continue;
        }
        bool parsed = gr == 0 && lock_parse(data, &li);
        free(data);
        if (!parsed) {
            copy_str(li.run, sizeof(li.run), ent.key + strlen(LOCK_PREFIX));
            copy_str(li.operation, sizeof(li.operation), "?");
            copy_str(li.host, sizeof(li.host), "?");
            li.renewed_ms = ent.mtime_ns != STORAGE_MTIME_UNKNOWN ? ent.mtime_ns / 1000000 : 0;
            li.started_ms = INT64_MIN; /* not ordered: a live one always wins */
        }
        char when[TIMEFMT_LEN + 1];
        time_format_ms(li.renewed_ms, when);
        /* on this host a lock whose process is gone is stale at once (as
         * restic does); a live pid, perhaps reused, keeps it */
        bool dead = li.pid > 0 && !strcmp(li.host, l->host) && !process_alive(li.pid);
        if (dead || now - li.renewed_ms > (int64_t)LOCK_STALE_SECONDS * 1000) {
            log_warn("taking over the stale lock of run %s (%s on %s, pid %ld%s), last renewed %s",
                     li.run, li.operation, li.host, li.pid, dead ? ", no longer running" : "",
                     when);
            struct err re;
            err_clear(&re);
            if (storage_remove(l->dst, ent.key, &re) != 0 && re.code != ERR_NOT_FOUND)
                log_warn("cannot remove the stale lock '%s': %s", ent.key, re.msg);
            storage_entry_clear(&ent);
            continue;
        }
        if (lock_order(li.started_ms, li.run, l->started_ms, l->run) < 0) {
            char since[TIMEFMT_LEN + 1];
            time_format_ms(li.started_ms == INT64_MIN ? li.renewed_ms : li.started_ms, since);
            r = err_set(e, ERR_LOCKED,
                        "destination '%s' is locked by run %s (%s on %s, pid %ld) since %s; "
                        "wait for it to end (a lock not renewed for %d minutes is stale)",
                        storage_display(l->dst), li.run, li.operation, li.host, li.pid, since,
                        LOCK_STALE_SECONDS / 60);
            storage_entry_clear(&ent);
            break;
        }
        storage_entry_clear(&ent);
    }
    storage_list_close(ls);
    return r < 0 ? r : 0;
}

int backup_lock_acquire(struct storage *dst, const char *run, const char *operation,
                        struct backup_lock **out, struct err *e)
{
    *out = NULL;
    struct backup_lock *l = calloc(1, sizeof(*l));
    if (!l)
        return err_set(e, ERR_NOMEM, "out of memory taking the lock");
    l->dst = dst;
    snprintf(l->key, sizeof(l->key), LOCK_PREFIX "%s.lock", run);
    copy_str(l->run, sizeof(l->run), run);
    copy_str(l->operation, sizeof(l->operation), operation);
    if (gethostname(l->host, sizeof(l->host)) != 0)
        copy_str(l->host, sizeof(l->host), "unknown");
    l->host[sizeof(l->host) - 1] = '\0';
    l->pid = (long)getpid();
    l->started_ms = time_now_ms();
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int r = lock_write(l, e);
    if (r) {
        err_wrap(e, "cannot write the lock at '%s'", storage_display(dst));
        goto fail;
    }
    r = lock_check_others(l, e);
    if (r) {
        struct err re;
        storage_remove(dst, l->key, &re);
        goto fail;
    }
    if (pthread_create(&l->thread, NULL, renew_main, l) != 0) {
        struct err re;
        storage_remove(dst, l->key, &re);
        r = err_set(e, ERR_INTERNAL, "cannot start the lock renewal thread");
        goto fail;
    }
    l->running = true;
    *out = l;
    return 0;
fail:
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
    return r;
}

void backup_lock_release(struct backup_lock *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->running)
        pthread_join(l->thread, NULL);
    struct err e;
    err_clear(&e);
    cancel_hold(); /* a cancelled run still releases its lock */
    int r = storage_remove(l->dst, l->key, &e);
    cancel_release();
    if (r != 0 && e.code != ERR_NOT_FOUND)
        log_warn("cannot remove the lock '%s' (it goes stale in %d minutes): %s", l->key,
                 LOCK_STALE_SECONDS / 60, e.msg);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
