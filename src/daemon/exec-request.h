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

/* Bytes of 'stdin-data', as much as WriteStdin may queue (STDIN_QUEUE_MAX). */
#define EXEC_STDIN_DATA_MAX (1024 * 1024)
/* 'max-output' of Run: each stream's bytes are kept in the daemon's memory until the reply. */
#define RUN_OUTPUT_MAX (16 * 1024 * 1024)
#define RUN_OUTPUT_DEFAULT (1024 * 1024)
#define EXEC_TAG_MAX 256

/* The method that asked: Exec relays, Run and RunText collect and reply at the end. */
typedef enum ExecKind {
        EXEC_KIND_EXEC,
        EXEC_KIND_RUN,
        EXEC_KIND_RUN_TEXT,
} ExecKind;

typedef enum OutputLimitAction {
        OUTPUT_LIMIT_KILL,              /* end the session, end reason output-limit */
        OUTPUT_LIMIT_TRUNCATE,          /* Run: keep the first max-output bytes, count the rest */
} OutputLimitAction;

typedef struct ExecRequest {
        ExecKind kind;                  /* set before parsing */
        char **argv;
        char **env;                     /* validated KEY=VALUE entries, in the caller's order */
        size_t args_size;               /* argv and env, as counted against EXEC_TOTAL_MAX */
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
        char *tag;                      /* NULL: none */
        uint8_t *stdin_data;            /* with stdin_data_set: written to stdin, then EOF */
        size_t stdin_data_size;
        bool stdin_data_set;
        uint64_t max_output;            /* per stream; 0 with !max_output_set: none (Exec) */
        bool max_output_set;
        OutputLimitAction on_output_limit;
        uint64_t timeout_grace_usec;    /* 0: SIGKILL at the timeout */
} ExecRequest;

void exec_request_init(ExecRequest *req);
void exec_request_done(ExecRequest *req);

/* Reads both arguments from m. Returns 0, or a negative errno with 'error' set to InvalidArgs
 * naming the field for anything malformed. */
int exec_request_parse(sd_bus_message *m, ExecRequest *req, sd_bus_error *error);
