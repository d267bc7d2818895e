/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus error names of org.example.Sandbox1, and the mapping of spawn failures onto them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus-error.h"

const char *spawn_error_name(int error, const char *stage) {
        if (error < 0)
                error = -error;

        /* A working directory that is missing is a bad cwd, not a missing command. */
        if (stage && strcmp(stage, "chdir") == 0 && error == ENOENT)
                return SANDBOX_ERROR("BadCwd");

        switch (error) {
        case ENOENT:
                return SANDBOX_ERROR("NotFound");
        case ENOTDIR:
                return SANDBOX_ERROR("BadCwd");
        case EACCES:
        case EPERM:
                return SANDBOX_ERROR("PermissionDenied");
        case ENOEXEC:
        case EISDIR:
        case ETXTBSY:
                return SANDBOX_ERROR("NotExecutable");
        case E2BIG:
        case ELOOP:
        case ENAMETOOLONG:
        case EFAULT:
                return SANDBOX_ERROR("BadArgs");
        case EMFILE:
        case ENFILE:
        case EAGAIN:
                return SANDBOX_ERROR("ResourceLimit");
        case ENOMEM:
                return SANDBOX_ERROR("OutOfMemory");
        default:
                return SANDBOX_ERROR("Failed");
        }
}

const char *errno_name(int error, char buf[static 24]) {
        const char *n;

        if (error < 0)
                error = -error;
        n = strerrorname_np(error);
        if (n)
                return n;
        snprintf(buf, 24, "errno %i", error);
        return buf;
}
