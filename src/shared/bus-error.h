/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus error names of org.example.Sandbox1, and the mapping of spawn failures onto them. */
#pragma once

#include "sandbox-api.h"

#define SANDBOX_ERROR(kind) SANDBOX_ERROR_PREFIX kind
#define SANDBOX_ERROR_NO_SUCH_USER SANDBOX_ERROR("NoSuchUser")
#define SANDBOX_ERROR_NO_SUCH_SESSION SANDBOX_ERROR("NoSuchSession")
#define SANDBOX_ERROR_TOO_MANY_SESSIONS SANDBOX_ERROR("TooManySessions")

/* The error name for a command that could not start, from the errno and the stage it failed in
 * ("chdir", "execve", ...). */
const char *spawn_error_name(int error, const char *stage);

/* "ENOENT" for ENOENT; a number as text for errnos without a name. */
const char *errno_name(int error, char buf[static 24]);
