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
        char *group;            /* the name of gid, or the gid as text when it has none */
        bool known;             /* has a passwd entry */
        bool own_group;         /* gid is the user's primary group or one it is a member of (a
                                 * bare uid: its own number); false after "name:shadow" */
} UserInfo;

/* Whether a caller of uid 'caller' running a command as u runs it "as itself" (api.md): its own
 * uid, with its own groups only. Anything else needs what running as another user needs. */
static inline bool user_is_caller_itself(const UserInfo *u, uid_t caller) {
        return u->uid == caller && u->own_group;
}

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
