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

/* Variables that make the dynamic loader or libc load code or data chosen by whoever sets them;
 * a caller may not set them for a user other than itself. Returns the first one found. */
const char *env_find_loader_variable(char * const *entries);
