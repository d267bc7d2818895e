/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placeholder until the restricted profile lands: only the names. */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "profile.h"

struct ProfileProgram {
        int unused;
};

static const char *const profile_names[_PROFILE_MAX] = {
        [PROFILE_DEFAULT] = "default",
        [PROFILE_RESTRICTED] = "restricted",
};

Profile profile_from_string(const char *s) {
        for (Profile p = 0; p < _PROFILE_MAX; p++)
                if (s && strcmp(s, profile_names[p]) == 0)
                        return p;
        return _PROFILE_INVALID;
}

const char *profile_to_string(Profile p) {
        return p >= 0 && p < _PROFILE_MAX ? profile_names[p] : NULL;
}

int profile_program_new(ProfileProgram **ret) {
        *ret = calloc(1, sizeof(ProfileProgram));
        return *ret ? 0 : -ENOMEM;
}

ProfileProgram *profile_program_free(ProfileProgram *p) {
        free(p);
        return NULL;
}

int profile_apply_before_setuid(const ProfileProgram *p, Profile profile, const char **stage) {
        return 0;
}

int profile_apply_after_setuid(const ProfileProgram *p, Profile profile, const char **stage) {
        if (profile == PROFILE_RESTRICTED) {
                *stage = "seccomp";
                return -EOPNOTSUPP;
        }
        return 0;
}
