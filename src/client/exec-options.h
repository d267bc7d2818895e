/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The command lines of sandboxctl exec, run and shell, parsed and turned into the options of Exec or Run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

typedef struct Rlimit {
        char *name;
        uint64_t soft;
        uint64_t hard;
} Rlimit;

typedef struct ExecArgs {
        bool run;               /* set before parsing: the command line of run, for Run */
        bool shell;             /* set before parsing: the command line of shell, [USER] */
        bool tty;
        bool force_tty;         /* -t given twice: a PTY even when stdin is not a terminal */
        int escape_char;        /* with tty: ssh's escape character ('~'), -1 for none */
        const char *user;
        const char *cwd;
        const char *profile;
        const char *tag;
        bool have_max_output;   /* run only */
        uint64_t max_output;
        bool have_timeout;
        uint64_t timeout_usec;
        char **env;             /* the strings are borrowed from argv */
        size_t n_env;
        Rlimit *rlimits;
        size_t n_rlimits;
        char **command;         /* borrowed from argv */

        /* Filled in by the verb: bytes for the stdin-data option. */
        bool have_stdin_data;
        const void *stdin_data;
        size_t stdin_data_size;
} ExecArgs;

/* Returns 1 to go on, 0 after --help, -EINVAL after a usage error (printed), other < 0 on failure. */
int exec_args_parse(int argc, char *argv[], ExecArgs *a);
void exec_args_done(ExecArgs *a);

/* Appends the a{sv} of options for Exec or Run: the parsed ones, the terminal's size and $TERM with --tty,
 * each of our fds 0, 1, 2 whose pass_fd[] is set, stdin-data when have_stdin_data, and the flow
 * control window when output_window > 0. */
int exec_args_append_options(sd_bus_message *m, const ExecArgs *a, const bool pass_fd[3],
                             uint64_t output_window);

/* Whole or fractional seconds ("10", "0.5"), to microseconds; -EINVAL, -ERANGE, -ENOMEM. */
int parse_seconds(const char *s, uint64_t *ret_usec);
