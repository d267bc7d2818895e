/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading and validating the arguments of Exec(as argv, a{sv} options). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "profile.h"
#include "spawn.h"

/* Limits on what one Exec may carry; the kernel's own limits are close to these. */
#define EXEC_ARGS_MAX 4096              /* entries in argv, and in env */
#define EXEC_STRING_MAX (128 * 1024)    /* one argument or env entry, as MAX_ARG_STRLEN */
#define EXEC_TOTAL_MAX (1024 * 1024)    /* argv and env together */

typedef struct ExecRequest {
        char **argv;
        char **env;                     /* validated KEY=VALUE entries, in the caller's order */
        char *cwd;                      /* NULL: the user's home */
        char *user;                     /* NULL: the caller */
        bool tty;
        unsigned rows, cols;
        struct rlimit rlimits[N_RLIMITS];
        bool rlimit_set[N_RLIMITS];
        Profile profile;
        uint64_t timeout_usec;          /* 0: none */
        uint64_t output_window;         /* 0: none */
        int fds[3];                     /* callers' fds for stdin, stdout, stderr, or -EBADF */
} ExecRequest;

void exec_request_init(ExecRequest *req);
void exec_request_done(ExecRequest *req);

/* Reads both arguments from m. Returns 0, or a negative errno with 'error' set to InvalidArgs
 * naming the field for anything malformed. */
int exec_request_parse(sd_bus_message *m, ExecRequest *req, sd_bus_error *error);
