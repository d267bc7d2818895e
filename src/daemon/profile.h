/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Security profiles: what "restricted" takes away, prepared in the daemon and applied in the child. */
#pragma once

#include <errno.h>

typedef enum Profile {
        PROFILE_DEFAULT,
        PROFILE_RESTRICTED,
        _PROFILE_MAX,
        _PROFILE_INVALID = -EINVAL,
} Profile;

Profile profile_from_string(const char *s);
const char *profile_to_string(Profile p);

/* Everything the child needs, built once in the daemon (the seccomp BPF program, capability
 * sets, the Landlock ruleset's attributes), so that applying it after fork needs no allocation
 * and no library state. */
typedef struct ProfileProgram ProfileProgram;

/* profile_program_new() gives "restricted" a Landlock domain where the kernel's Landlock can have
 * one that leaves file access alone; profile_program_new_with_landlock() uses at most ABI
 * 'landlock_abi' (tests use it to exercise what older kernels get; 0: no Landlock). */
int profile_program_new(ProfileProgram **ret);
int profile_program_new_with_landlock(int landlock_abi, ProfileProgram **ret);
ProfileProgram *profile_program_free(ProfileProgram *p);

/* The Landlock ABI "restricted" sessions are confined with (> 0), or 0 with *reason saying why
 * they get no Landlock domain (a static string) and *error the errno behind it, or 0. */
int profile_program_landlock(const ProfileProgram *p, const char **reason, int *error);

/* Called in the child between fork and exec, async-signal-safe. Return 0 or a negative errno
 * and set *stage to a static string naming the step that failed ("capabilities", "seccomp", ...).
 * _before_setuid runs while the child still has the daemon's capabilities (bounding set drop
 * needs CAP_SETPCAP); _after_setuid runs after setgroups/setgid/setuid/setrlimit and after fds
 * 0-2 are in place and every other fd is closed (entering the Landlock domain needs up to two free
 * fds below RLIMIT_NOFILE), and is the last step before execve. Both do nothing for
 * PROFILE_DEFAULT. */
int profile_apply_before_setuid(const ProfileProgram *p, Profile profile, const char **stage);
int profile_apply_after_setuid(const ProfileProgram *p, Profile profile, const char **stage);
