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

/* What a caller may set for a command that runs as another user (api.md): variables that choose
 * how text is shown, never what code or data is loaded. LANG, LANGUAGE and LC_* name a locale,
 * which glibc loads from a path when the name has a '/'; TZ names a file below the zoneinfo
 * directory unless it starts with '/' (or ":/"), and ".." climbs out of it. So those values are
 * refused too. */
static const char *const cross_user_variables[] = {
        "TERM", "COLORTERM", "NO_COLOR", "LANG", "LANGUAGE", "TZ",
};

static bool cross_user_key_allowed(const char *e, size_t klen) {
        if (klen > 3 && strncmp(e, "LC_", 3) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(cross_user_variables); i++)
                if (strlen(cross_user_variables[i]) == klen && strncmp(e, cross_user_variables[i], klen) == 0)
                        return true;
        return false;
}

static bool cross_user_value_allowed(const char *e, size_t klen) {
        const char *v = e + klen + 1;

        if (strncmp(e, "TERM=", 5) == 0 || strncmp(e, "COLORTERM=", 10) == 0 ||
            strncmp(e, "NO_COLOR=", 9) == 0)
                return !strchr(v, '/');
        if (strncmp(e, "TZ=", 3) == 0)
                return v[0] != '/' && strncmp(v, ":/", 2) != 0 && !strstr(v, "..");
        return !strchr(v, '/'); /* LANG, LANGUAGE, LC_* */
}

const char *env_find_cross_user_refused(char * const *entries, int *ret_key_len, bool *ret_bad_value) {
        for (char * const *e = entries; e && *e; e++) {
                int klen = env_entry_key_len(*e);

                *ret_key_len = klen;
                *ret_bad_value = false;
                if (!cross_user_key_allowed(*e, (size_t) klen))
                        return *e;
                if (!cross_user_value_allowed(*e, (size_t) klen)) {
                        *ret_bad_value = true;
                        return *e;
                }
        }
        return NULL;
}

int env_keys_join(char * const *entries, char **ret) {
        size_t size = 1;
        char *s, *p;

        for (char * const *e = entries; e && *e; e++)
                size += (size_t) env_entry_key_len(*e) + 1;
        s = p = malloc(size);
        if (!s)
                return -ENOMEM;
        for (char * const *e = entries; e && *e; e++) {
                size_t klen = (size_t) env_entry_key_len(*e);

                if (p != s)
                        *p++ = ',';
                memcpy(p, *e, klen);
                p += klen;
        }
        *p = 0;
        *ret = s;
        return 0;
}
