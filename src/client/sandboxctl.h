/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl's shared pieces: the connection context, the verbs, and small helpers they use. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#include "macro.h"
#include "sandbox-api.h"


/* Exit statuses of sandboxctl itself, apart from those it passes on from the command. */
enum {
        EXIT_FAILED = 1,          /* sandboxctl or the daemon failed; the command did not run */
        EXIT_USAGE = 2,           /* bad command line */
        EXIT_NOT_EXECUTABLE = 126,
        EXIT_NOT_FOUND = 127,
        EXIT_CONNECTION_LOST = 255, /* connection lost while the command may have been running */
};

typedef struct Context {
        sd_bus *bus;
        /* NULL on a peer-to-peer connection, where there is no bus to route by name. */
        const char *destination;
} Context;

/* Connects as the global options say; prints the error and returns < 0 on failure. */
int context_connect(Context *ctx);
/* After a call failed with error: when --address= named a bus rather than sandboxd's own socket,
 * says so and what to use instead, and returns true; false when it is not that (nothing printed). */
bool context_explain_wrong_address(Context *ctx, const sd_bus_error *error);

typedef int (*verb_func_t)(Context *ctx, int argc, char *argv[]);

int verb_exec(Context *ctx, int argc, char *argv[]);
int verb_run(Context *ctx, int argc, char *argv[]);
int verb_shell(Context *ctx, int argc, char *argv[]);
int verb_list(Context *ctx, int argc, char *argv[]);
int verb_signal(Context *ctx, int argc, char *argv[]);
int verb_status(Context *ctx, int argc, char *argv[]);
int verb_wait(Context *ctx, int argc, char *argv[]);
int verb_kill(Context *ctx, int argc, char *argv[]);
int verb_terminate(Context *ctx, int argc, char *argv[]);

/* Prints "sandboxctl: MESSAGE" on stderr; %m names -r. Returns r. */
int log_error_errno(int r, const char *fmt, ...) _printf_(2, 3);
/* Prints the error and the usage line on stderr; returns EXIT_USAGE. */
int log_usage_error(const char *fmt, ...) _printf_(1, 2);
void print_usage_line(FILE *f);
void print_help(void);
/* Reports a getopt failure ('?' or ':') for argv[optind - 1]; returns EXIT_USAGE. */
int log_getopt_error(int c, char *argv[]);
/* Parses a verb's argv when it has no options but --help: returns 1 to go on, 0 after the help,
 * -EINVAL after a usage error. optind is then the first positional argument. */
int parse_verb_argv(int argc, char *argv[]);

/* Prints "sandboxctl: WHAT: REASON (Kind)" for a failed call and returns the exit status it maps to:
 * 127 for NotFound, 126 for PermissionDenied and NotExecutable, 255 when the connection went away
 * (if lost_is_fatal), 1 for anything else. */
int log_bus_error(const sd_bus_error *error, bool lost_is_fatal, const char *what_fmt, ...) _printf_(3, 4);
/* The last dot-separated part of the error name: "NotFound", "InvalidArgs", ... */
const char *bus_error_kind(const sd_bus_error *error);

struct winsize;
/* The local terminal's size, from stdin or else stdout; false when neither is a terminal. */
bool terminal_get_size(struct winsize *ws);

/* Writes all of buf, waiting on EAGAIN and retrying on EINTR. */
int write_all(int fd, const void *buf, size_t size);

/* Whether s is valid UTF-8, which is what a D-Bus string must be. */
bool utf8_is_valid(const char *s);

/* Appends ARG to the command line S (NULL or "" to start), after a space unless S is empty, quoted
 * for a POSIX shell where it needs it. Frees S and returns NULL on OOM. */
char *shell_quote_append(char *s, const char *arg);

/* Numbers and signal names: src/shared/parse.h, shared with the daemon. */
#include "parse.h"
