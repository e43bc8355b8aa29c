/*
 * smb_dl.c - load libsmbclient when the first SMB remote is opened.
 *
 * libsmbclient pulls in most of Samba (about a hundred shared libraries,
 * tens of MB mapped, a config file read at start). Linking it would make
 * every arca command pay for that, so arca is compiled against its header
 * only and dlopen()s "libsmbclient.so.0" here, once per process, resolving
 * each entry point with dlsym. The soname's major version is the ABI the
 * header describes.
 */
#include "storage/smb/smb_internal.h"

#include "core/log.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define SMB_LIBRARY "libsmbclient.so.0"

static struct smb_api smb_api;
static int smb_api_status = ERR_INTERNAL; /* until loaded */
static char smb_api_missing[64];          /* the first required symbol not found */
static pthread_once_t smb_api_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t smb_api_mu = PTHREAD_MUTEX_INITIALIZER;

struct smb_sym {
    const char *name;
    size_t off; /* of the pointer in struct smb_api */
    bool required;
};

#define SMB_SYM(field, name, req)                                                                  \
    {                                                                                              \
        name, offsetof(struct smb_api, field), req                                                 \
    }

static const struct smb_sym smb_syms[] = {
    SMB_SYM(new_context, "smbc_new_context", true),
    SMB_SYM(init_context, "smbc_init_context", true),
    SMB_SYM(free_context, "smbc_free_context", true),
    SMB_SYM(set_debug, "smbc_setDebug", true),
    SMB_SYM(set_auth_fn, "smbc_setFunctionAuthDataWithContext", true),
    SMB_SYM(set_user_data, "smbc_setOptionUserData", true),
    SMB_SYM(get_user_data, "smbc_getOptionUserData", true),
    SMB_SYM(set_no_auto_anonymous, "smbc_setOptionNoAutoAnonymousLogin", true),
    SMB_SYM(set_use_kerberos, "smbc_setOptionUseKerberos", true),
    SMB_SYM(set_fallback_after_kerberos, "smbc_setOptionFallbackAfterKerberos", true),
    SMB_SYM(set_timeout, "smbc_setTimeout", true),
    SMB_SYM(set_user, "smbc_setUser", true),
    SMB_SYM(set_workgroup, "smbc_setWorkgroup", true),
    SMB_SYM(set_port, "smbc_setPort", true),
    SMB_SYM(get_open, "smbc_getFunctionOpen", true),
    SMB_SYM(get_read, "smbc_getFunctionRead", true),
    SMB_SYM(get_write, "smbc_getFunctionWrite", true),
    SMB_SYM(get_lseek, "smbc_getFunctionLseek", true),
    SMB_SYM(get_close, "smbc_getFunctionClose", true),
    SMB_SYM(get_stat, "smbc_getFunctionStat", true),
    SMB_SYM(get_fstat, "smbc_getFunctionFstat", true),
    SMB_SYM(get_opendir, "smbc_getFunctionOpendir", true),
    SMB_SYM(get_readdirplus, "smbc_getFunctionReaddirPlus", true),
    SMB_SYM(get_closedir, "smbc_getFunctionClosedir", true),
    SMB_SYM(get_rename, "smbc_getFunctionRename", true),
    SMB_SYM(get_unlink, "smbc_getFunctionUnlink", true),
    SMB_SYM(get_mkdir, "smbc_getFunctionMkdir", true),
    SMB_SYM(get_rmdir, "smbc_getFunctionRmdir", true),
    SMB_SYM(get_utimes, "smbc_getFunctionUtimes", true),
    SMB_SYM(set_protocols, "smbc_setOptionProtocols", false),
    SMB_SYM(set_use_ccache, "smbc_setOptionUseCCache", false),
    SMB_SYM(set_log_callback, "smbc_setLogCallback", false),
    SMB_SYM(thread_posix, "smbc_thread_posix", false),
};

static void smb_api_load(void)
{
    /* RTLD_LOCAL: Samba's symbols stay out of the global namespace, where
     * they could collide with OpenSSL, libcurl or libssh2's */
    void *h = dlopen(SMB_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        log_debug("dlopen(\"%s\") failed: %s", SMB_LIBRARY, why ? why : "unknown error");
        smb_api_status = ERR_CONFIG;
        return;
    }
    for (size_t i = 0; i < sizeof(smb_syms) / sizeof(smb_syms[0]); i++) {
        const struct smb_sym *s = &smb_syms[i];
        void *f = dlsym(h, s->name);
        if (!f && s->required) {
            snprintf(smb_api_missing, sizeof(smb_api_missing), "%s", s->name);
            smb_api_status = ERR_CONFIG;
            /* h stays open: unloading Samba's libraries is not safe */
            return;
        }
        /* a data pointer to a function pointer, as POSIX allows */
        memcpy((char *)&smb_api + s->off, &f, sizeof(f));
    }
    if (smb_api.thread_posix)
        smb_api.thread_posix();
    smb_api_status = 0;
}

int smb_api_get(const struct smb_api **api, struct err *e)
{
    *api = NULL;
    pthread_once(&smb_api_once, smb_api_load);
    if (smb_api_status == 0) {
        *api = &smb_api;
        return 0;
    }
    if (smb_api_missing[0])
        return err_set(e, ERR_CONFIG,
                       "SMB needs a newer libsmbclient: '%s' lacks '%s'; install the Debian "
                       "package libsmbclient from Debian 12 or later",
                       SMB_LIBRARY, smb_api_missing);
    return err_set(e, ERR_CONFIG,
                   "SMB needs libsmbclient, which is not installed; install the Debian package "
                   "libsmbclient");
}

void smb_api_lock(void)
{
    pthread_mutex_lock(&smb_api_mu);
}

void smb_api_unlock(void)
{
    pthread_mutex_unlock(&smb_api_mu);
}
