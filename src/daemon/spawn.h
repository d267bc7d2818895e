/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting a session's command: fork, the child's identity and confinement, exec. */
#pragma once

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "profile.h"

#define N_RLIMITS 16

typedef struct SpawnParams {
        char * const *argv;
        char * const *envp;
        const char *path;               /* PATH of envp, for argv[0] without a slash */
        const char *cwd;
        bool cwd_fallback;              /* cwd is the default (home): fall back to / if it fails */

        /* Identity, applied in this order: setgroups, setgid, setuid. */
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;

        /* Resource limits indexed by RLIMIT_*; only those with rlimit_set[] are applied. */
        struct rlimit rlimits[N_RLIMITS];
        bool rlimit_set[N_RLIMITS];

        Profile profile;
        const ProfileProgram *program;

        /* What becomes the child's fds 0, 1 and 2. */
        int fds[3];
        /* The PTY slave to make the controlling terminal, or -EBADF. */
        int tty;
} SpawnParams;

typedef struct SpawnFailure {
        const char *stage;              /* static string: "setuid", "chdir", "execve", ... */
        int error;                      /* positive errno */
} SpawnFailure;

/* Reserves the low fds spawn_child() passes the child's fds through, and notes the daemon's signal
 * dispositions and resource limits, which children start from. Call it early, before the daemon
 * opens many fds, and after it has set its limits and dispositions: the child resets only the
 * signals that were not SIG_DFL here. */
int spawn_init(void);

/* RLIMIT_NOFILE for a child that asks for none: the daemon's hard limit, and the usual soft
 * 1024 rather than the daemon's raised one (programs size tables by it, or use select()). */
struct rlimit spawn_default_nofile(void);

/* Starts the command and returns only once it has been exec'd (0, with pid and a pidfd) or has
 * failed to start (a negative errno, with *failure saying where and why). The child leads a new
 * session and process group. */
int spawn_child(const SpawnParams *p, pid_t *ret_pid, int *ret_pidfd, SpawnFailure *failure);
