/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A session's environment: the documented default, with the caller's entries over it. */
#pragma once

#include <stdbool.h>

#include "user.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_TERM "xterm-256color"

/* PATH, HOME, USER, LOGNAME, SHELL (from u), TERM on a PTY, then 'entries' (KEY=VALUE, already
 * validated), later keys replacing earlier ones. Nothing from the daemon's own environment. */
int env_build(char * const *entries, const UserInfo *u, bool tty, char ***ret);
const char *env_get(char * const *envp, const char *key);

/* The variables a caller may set for a command run as another user: TERM, COLORTERM, NO_COLOR,
 * LANG, LANGUAGE, LC_* and TZ, with values that name no file outside the system's own locale and
 * zoneinfo directories. Returns the first entry refused (its key is *ret_key_len bytes long;
 * *ret_bad_value tells whether its key is allowed and only its value is not), or NULL. */
const char *env_find_cross_user_refused(char * const *entries, int *ret_key_len, bool *ret_bad_value);
/* The keys of entries, joined with ',' (polkit's "env_keys" detail). */
int env_keys_join(char * const *entries, char **ret);
