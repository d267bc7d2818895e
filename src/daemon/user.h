/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resolving the user a session runs as: uid, gid, supplementary groups, passwd fields. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

typedef struct UserInfo {
        uid_t uid;
        gid_t gid;
        char *name;             /* the passwd name, or the uid as text for a bare uid */
        char *home;             /* "/" without a passwd entry */
        char *shell;            /* "/bin/sh" without a passwd entry */
        gid_t *groups;          /* supplementary groups: the user's own, none for a bare uid */
        size_t n_groups;
        bool known;             /* has a passwd entry */
} UserInfo;

/* spec is "name", "uid", "name:group" or "uid:gid", or NULL for default_uid. Returns -EINVAL
 * for a malformed spec, -ESRCH when the user or group does not exist. Looks up NSS, so call
 * it in the daemon, never in a child. Answers are kept for up to a second while
 * /etc/nsswitch.conf, /etc/passwd and /etc/group are unchanged (an inotify watch on /etc). */
int user_resolve(const char *spec, uid_t default_uid, UserInfo *ret);
void user_info_done(UserInfo *u);
/* Forgets the kept answers. */
void user_cache_flush(void);
/* Forgets them and stops watching the files (at exit, so that leak checkers see nothing left). */
void user_cache_done(void);
