/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resolving the user a session runs as: uid, gid, supplementary groups, passwd fields. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "parse.h"
#include "user.h"

/* Bounds the buffers NSS may ask for, so a broken entry cannot make us allocate without end. */
#define NSS_BUFFER_MAX (1024 * 1024)

static int lookup_passwd(const char *name, uid_t uid, struct passwd *pw, char **buf) {
        size_t size = 4096;

        for (;;) {
                struct passwd *res = NULL;
                int r;

                free(*buf);
                *buf = malloc(size);
                if (!*buf)
                        return -ENOMEM;
                r = name ? getpwnam_r(name, pw, *buf, size, &res)
                         : getpwuid_r(uid, pw, *buf, size, &res);
                if (r == ERANGE && size < NSS_BUFFER_MAX) {
                        size *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                return res ? 0 : -ESRCH;
        }
}

static int lookup_group(const char *spec, gid_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 4096;
        uint32_t gid;

        if (parse_uid(spec, &gid) >= 0) {
                /* A number is taken as given, whether or not the group database knows it. */
                *ret = gid;
                return 0;
        }
        for (;;) {
                struct group gr, *res = NULL;
                int r;

                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getgrnam_r(spec, &gr, buf, size, &res);
                if (r == ERANGE && size < NSS_BUFFER_MAX) {
                        size *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (!res)
                        return -ESRCH;
                *ret = gr.gr_gid;
                return 0;
        }
}

static int user_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n) {
        int n = 64;

        for (;;) {
                _cleanup_free_ gid_t *l = calloc((size_t) n, sizeof(gid_t));
                int k = n;

                if (!l)
                        return -ENOMEM;
                if (getgrouplist(name, gid, l, &k) >= 0) {
                        *ret = TAKE_PTR(l);
                        *ret_n = (size_t) k;
                        return 0;
                }
                if (k <= n || k > 65536)
                        return -EINVAL;
                n = k;
        }
}

int user_resolve(const char *spec, uid_t default_uid, UserInfo *ret) {
        _cleanup_free_ char *uname = NULL, *gname = NULL, *buf = NULL;
        UserInfo u = {};
        struct passwd pw;
        uint32_t uid = default_uid;
        bool by_name = false;
        int r;

        if (spec) {
                r = user_spec_split(spec, &uname, &gname);
                if (r < 0)
                        return r;
                if (parse_uid(uname, &uid) < 0) {
                        if (uname[0] >= '0' && uname[0] <= '9' &&
                            strspn(uname, "0123456789") == strlen(uname))
                                return -EINVAL; /* numeric but out of range */
                        by_name = true;
                }
        }

        r = lookup_passwd(by_name ? uname : NULL, uid, &pw, &buf);
        if (r == -ESRCH && by_name)
                return -ESRCH;
        if (r < 0 && r != -ESRCH)
                return r;

        if (r >= 0) {
                u.known = true;
                u.uid = pw.pw_uid;
                u.gid = pw.pw_gid;
                u.name = strdup(pw.pw_name);
                u.home = strdup(pw.pw_dir && pw.pw_dir[0] == '/' ? pw.pw_dir : "/");
                u.shell = strdup(pw.pw_shell && pw.pw_shell[0] ? pw.pw_shell : "/bin/sh");
        } else {
                /* A bare uid with no passwd entry: its own number as group, no supplementary
                 * groups. */
                u.uid = uid;
                u.gid = uid;
                if (asprintf(&u.name, "%u", uid) < 0)
                        u.name = NULL;
                u.home = strdup("/");
                u.shell = strdup("/bin/sh");
        }
        if (!u.name || !u.home || !u.shell) {
                user_info_done(&u);
                return -ENOMEM;
        }

        if (gname) {
                r = lookup_group(gname, &u.gid);
                if (r < 0) {
                        user_info_done(&u);
                        return r;
                }
        }

        if (u.known) {
                r = user_groups(u.name, u.gid, &u.groups, &u.n_groups);
                if (r < 0) {
                        user_info_done(&u);
                        return r;
                }
        }

        *ret = u;
        return 0;
}

void user_info_done(UserInfo *u) {
        free(u->name);
        free(u->home);
        free(u->shell);
        free(u->groups);
        *u = (UserInfo) {};
}
