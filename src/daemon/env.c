/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A session's environment: the documented default, with the caller's entries over it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "macro.h"
#include "parse.h"
#include "strv.h"

static int env_set(char ***l, size_t *n, char *entry) {
        size_t klen = (size_t) env_entry_key_len(entry);

        for (size_t i = 0; i < *n; i++)
                if (strncmp((*l)[i], entry, klen + 1) == 0) {
                        free((*l)[i]);
                        (*l)[i] = entry;
                        return 0;
                }
        return strv_push(l, n, entry);
}

static int env_setf(char ***l, size_t *n, const char *key, const char *value) {
        char *e;
        int r;

        if (asprintf(&e, "%s=%s", key, value) < 0)
                return -ENOMEM;
        r = env_set(l, n, e);
        if (r < 0)
                free(e);
        return r;
}

int env_build(char * const *entries, const UserInfo *u, bool tty, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        r = env_setf(&l, &n, "PATH", DEFAULT_PATH);
        if (r >= 0)
                r = env_setf(&l, &n, "HOME", u->home);
        if (r >= 0)
                r = env_setf(&l, &n, "USER", u->name);
        if (r >= 0)
                r = env_setf(&l, &n, "LOGNAME", u->name);
        if (r >= 0)
                r = env_setf(&l, &n, "SHELL", u->shell);
        if (r >= 0 && tty)
                r = env_setf(&l, &n, "TERM", DEFAULT_TERM);
        if (r < 0)
                return r;

        /* The caller's entries replace the defaults key by key. With thousands of entries this
         * is quadratic, but EXEC_ARGS_MAX bounds it and it runs once per Exec. */
        for (char * const *e = entries; e && *e; e++) {
                char *c = strdup(*e);

                if (!c)
                        return -ENOMEM;
                r = env_set(&l, &n, c);
                if (r < 0) {
                        free(c);
                        return r;
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

const char *env_get(char * const *envp, const char *key) {
        size_t klen = strlen(key);

        for (char * const *e = envp; e && *e; e++)
                if (strncmp(*e, key, klen) == 0 && (*e)[klen] == '=')
                        return *e + klen + 1;
        return NULL;
}

/* glibc's list of variables it ignores in set-user-ID programs, and a few more of the same kind. */
static const char *const loader_variables[] = {
        "GCONV_PATH",     "GETCONF_DIR",     "HOSTALIASES",     "LD_AUDIT",        "LD_DEBUG",
        "LD_DEBUG_OUTPUT", "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK",  "LD_LIBRARY_PATH", "LD_ORIGIN_PATH",
        "LD_PRELOAD",     "LD_PROFILE",      "LD_SHOW_AUXV",    "LD_USE_LOAD_BIAS", "LOCALDOMAIN",
        "LOCPATH",        "MALLOC_TRACE",    "NIS_PATH",        "NLSPATH",         "RESOLV_HOST_CONF",
        "RES_OPTIONS",    "TMPDIR",          "TZDIR",           "GLIBC_TUNABLES",  "LD_BIND_NOW",
        "LD_BIND_NOT",    "MALLOC_CHECK_",   "MALLOC_PERTURB_",
};

const char *env_find_loader_variable(char * const *entries) {
        for (char * const *e = entries; e && *e; e++) {
                size_t klen = (size_t) env_entry_key_len(*e);

                for (size_t i = 0; i < ELEMENTSOF(loader_variables); i++)
                        if (strlen(loader_variables[i]) == klen &&
                            strncmp(*e, loader_variables[i], klen) == 0)
                                return loader_variables[i];
        }
        return NULL;
}
