/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl helpers: error lines, daemon errors mapped to exit statuses, writing, quoting, parsing. */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "sandboxctl.h"

int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;

        fputs("sandboxctl: ", stderr);
        errno = r < 0 ? -r : r;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r;
}

void print_usage_line(FILE *f) {
        fputs("Usage: sandboxctl [-H [USER@]HOST | -M MACHINE | --address=ADDRESS | --bus-address=ADDRESS | "
              "--system] {exec|run|shell|list|status|wait|signal|kill|terminate} ... "
              "(see sandboxctl --help)\n", f);
}

int log_usage_error(const char *fmt, ...) {
        va_list ap;

        fputs("sandboxctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        print_usage_line(stderr);
        return EXIT_USAGE;
}

int log_getopt_error(int c, char *argv[]) {
        const char *arg = optind > 0 ? argv[optind - 1] : "";

        if (c == ':')
                return log_usage_error("option '%s' requires an argument", arg);
        if (optopt != 0 && strncmp(arg, "--", 2) != 0)
                return log_usage_error("invalid option -- '%c'", optopt);
        return log_usage_error("unrecognized option '%s'", arg);
}

int parse_verb_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                default:
                        log_getopt_error(c, argv);
                        return -EINVAL;
                }
        return 1;
}

void print_help(void) {
        printf("sandboxctl [OPTIONS...] VERB ...\n"
               "\n"
               "Run commands as sessions of sandboxd (org.example.Sandbox1).\n"
               "\n"
               "Options:\n"
               "  -h --help                 Show this help and exit\n"
               "     --version              Show the version and exit\n"
               "     --system               Talk to sandboxd on the system bus (the default)\n"
               "     --address=ADDRESS      Connect peer-to-peer, e.g. unix:path=/run/sandboxd/io.socket,\n"
               "                            vsock:cid=CID,port=PORT, vsock-mux:path=PATH,port=PORT\n"
               "     --bus-address=ADDRESS  Talk to org.example.Sandbox1 on the bus at ADDRESS\n"
               "  -H --host=[USER@]HOST[:PORT]\n"
               "                            Reach sandboxd on HOST over ssh (its socket, or with\n"
               "                            --system its bus, or the --address given, there)\n"
               "  -M --machine=MACHINE      Talk to sandboxd on a local container's system bus\n"
               "\n"
               "Verbs:\n"
               "  exec [OPTIONS...] [--] CMD [ARG...]\n"
               "                            Run CMD and behave like it: stdin, stdout, stderr\n"
               "                            and the exit status are the command's\n"
               "     -t --tty               Run on a terminal; put the local one in raw mode\n"
               "                            (-tt: even when stdin is not a terminal)\n"
               "     -u --user=USER         Run as USER (name, uid, name:group, uid:gid)\n"
               "        --cwd=DIR           Absolute working directory\n"
               "     -e --env=KEY=VALUE     Set an environment variable (repeatable)\n"
               "        --rlimit=NAME=SOFT[:HARD]\n"
               "                            Set a resource limit (repeatable; 'infinity')\n"
               "        --profile=NAME      'default' or 'restricted'\n"
               "        --timeout=SECONDS   Kill the command after this long\n"
               "        --tag=TAG           A label for the session, shown by status\n"
               "        --escape=CHAR|none  With -t: the escape character after Enter (default ~):\n"
               "                            ~. disconnects, ~? lists the escapes, ~~ sends a ~\n"
               "  run [OPTIONS...] [--] CMD [ARG...]\n"
               "                            Run CMD to its end in one call, then print its output\n"
               "                            and exit with its status; the options of exec but -t and\n"
               "                            --escape, and\n"
               "        --max-output=BYTES  Keep at most this much of each stream (K, M: 1024-based)\n"
               "  shell [OPTIONS...] [USER]\n"
               "                            A login shell of USER (default: the caller) on a\n"
               "                            terminal, in their home; the options of exec but -t, -u\n"
               "  list [--json=short|pretty] [--no-legend|-q]\n"
               "                            List the sessions the caller may see\n"
               "  status [--json=short|pretty] ID\n"
               "                            Show the state and properties of session ID\n"
               "  wait ID                   Wait for session ID to end; exit with its status\n"
               "  signal ID SIGNAL          Send SIGNAL (a number or a name) to session ID\n"
               "  kill ID [SIGNAL]          Send SIGNAL (default TERM) to every process of session ID\n"
               "  terminate [--grace=SECONDS] ID\n"
               "                            SIGTERM, then SIGKILL after the grace (default 10 s)\n");
}

/* What the daemon's typed errors mean: the errno a kind stands for when its message names none,
 * and the exit status a shell would give. */
static const struct {
        const char *kind;
        int errnum;
        int exit_status;
} sandbox_errors[] = {
        { "NotFound",         ENOENT,  EXIT_NOT_FOUND },
        { "BadCwd",           ENOTDIR, EXIT_FAILED },
        { "PermissionDenied", EACCES,  EXIT_NOT_EXECUTABLE },
        { "NotExecutable",    ENOEXEC, EXIT_NOT_EXECUTABLE },
        { "BadArgs",          E2BIG,   EXIT_FAILED },
        { "ResourceLimit",    EAGAIN,  EXIT_FAILED },
        { "OutOfMemory",      ENOMEM,  EXIT_FAILED },
};

const char *bus_error_kind(const sd_bus_error *error) {
        const char *dot;

        if (!error || !error->name)
                return "Failed";
        dot = strrchr(error->name, '.');
        return dot ? dot + 1 : error->name;
}

/* The daemon's message names the errno symbolically ("... execve: ENOENT"); finds it. */
static int errno_from_message(const char *message) {
        const char *p = message;

        if (!p)
                return 0;
        while (*p) {
                size_t n;

                if (*p != 'E' || (p > message && (isalnum((unsigned char) p[-1]) || p[-1] == '_'))) {
                        p++;
                        continue;
                }
                n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
                for (int e = 1; e < 200; e++) {
                        const char *name = strerrorname_np(e);

                        if (name && strlen(name) == n && strncmp(name, p, n) == 0)
                                return e;
                }
                p += n;
        }
        return 0;
}

static const char *strrstr_at(const char *s) {
        const char *last = NULL;

        for (const char *p = strstr(s, " at "); p; p = strstr(p + 1, " at "))
                last = p;
        return last;
}

/* The message ends in "at STAGE." ("setgid", "chdir", ...): returns STAGE's length, 0 if none. */
static size_t stage_from_message(const char *message, const char **ret) {
        const char *at = message ? strrstr_at(message) : NULL;
        size_t n;

        if (!at)
                return 0;
        at += 4;
        n = strspn(at, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (n == 0 || (at[n] != 0 && strcmp(at + n, ".") != 0))
                return 0;
        *ret = at;
        return n;
}

int log_bus_error(const sd_bus_error *error, bool lost_is_fatal, const char *what_fmt, ...) {
        const char *kind = bus_error_kind(error), *reason = NULL, *stage = NULL;
        const char *message = error && error->message && error->message[0] ? error->message : NULL;
        int status = EXIT_FAILED, reason_len = INT_MAX, stage_len = 0;
        char what[512];
        va_list ap;

        va_start(ap, what_fmt);
        vsnprintf(what, sizeof what, what_fmt, ap);
        va_end(ap);

        if (error && error->name && strncmp(error->name, SANDBOX_ERROR_PREFIX,
                                            strlen(SANDBOX_ERROR_PREFIX)) == 0) {
                for (size_t i = 0; i < ELEMENTSOF(sandbox_errors); i++) {
                        int e;

                        if (strcmp(kind, sandbox_errors[i].kind) != 0)
                                continue;
                        e = errno_from_message(message);
                        reason = strerror(e > 0 ? e : sandbox_errors[i].errnum);
                        status = sandbox_errors[i].exit_status;
                        /* Where it failed, unless it is the obvious place. */
                        stage_len = (int) stage_from_message(message, &stage);
                        if (stage_len == 6 && strncmp(stage, "execve", 6) == 0)
                                stage_len = 0;
                        break;
                }
                if (!reason && strcmp(kind, "NoSuchSession") == 0)
                        reason = "No such session";
        } else if (sd_bus_error_has_names(error, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED)) {
                if (lost_is_fatal)
                        status = EXIT_CONNECTION_LOST;
        }

        if (!reason && message) {
                /* The daemon's sentences end with a full stop; here the error kind follows. */
                reason = message;
                reason_len = (int) strlen(message);
                if (reason_len > 1 && message[reason_len - 1] == '.')
                        reason_len--;
        }
        if (!reason)
                reason = strerror(sd_bus_error_get_errno(error) ?: EIO);

        if (stage_len > 0)
                fprintf(stderr, "sandboxctl: %s: %.*s: %s (%s)\n", what, stage_len, stage, reason, kind);
        else
                fprintf(stderr, "sandboxctl: %s: %.*s (%s)\n", what, reason_len, reason, kind);
        return status;
}

int write_all(int fd, const void *buf, size_t size) {
        const char *p = buf;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                /* Someone else made the file description non-blocking: wait. */
                                struct pollfd pfd = { .fd = fd, .events = POLLOUT };

                                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                                        return -errno;
                                continue;
                        }
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

static bool char_is_plain(char c) {
        return isalnum((unsigned char) c) || strchr("_@%+=:,./-", c);
}

static char *append(char *s, const char *add, size_t n) {
        size_t len = s ? strlen(s) : 0;
        char *t = realloc(s, len + n + 1);

        if (!t) {
                free(s);
                return NULL;
        }
        memcpy(t + len, add, n);
        t[len + n] = 0;
        return t;
}

char *shell_quote_append(char *s, const char *arg) {
        bool plain = arg[0] != 0, control = false;

        if (s && s[0] != 0) {
                s = append(s, " ", 1);
                if (!s)
                        return NULL;
        }

        for (const char *p = arg; *p; p++) {
                if (!char_is_plain(*p))
                        plain = false;
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        control = true;
        }

        if (plain)
                return append(s, arg, strlen(arg));

        if (!control) {
                /* '...' with each ' written as '\'' */
                s = append(s, "'", 1);
                for (const char *p = arg; s && *p; p++)
                        s = *p == '\'' ? append(s, "'\\''", 4) : append(s, p, 1);
                return s ? append(s, "'", 1) : NULL;
        }

        /* $'...' so that control characters stay visible and the result is still valid shell. */
        s = append(s, "$'", 2);
        for (const char *p = arg; s && *p; p++) {
                unsigned char c = (unsigned char) *p;
                char esc[8];

                if (c == '\n')
                        s = append(s, "\\n", 2);
                else if (c == '\t')
                        s = append(s, "\\t", 2);
                else if (c == '\\' || c == '\'')
                        s = append(s, esc, (size_t) snprintf(esc, sizeof esc, "\\%c", c));
                else if (c < 0x20 || c == 0x7f)
                        s = append(s, esc, (size_t) snprintf(esc, sizeof esc, "\\x%02x", c));
                else
                        s = append(s, p, 1);
        }
        return s ? append(s, "'", 1) : NULL;
}

/* The local terminal's size, from stdin or else stdout; false when neither is a terminal. */
bool terminal_get_size(struct winsize *ws) {
        if (ioctl(STDIN_FILENO, TIOCGWINSZ, ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, ws) < 0)
                return false;
        return ws->ws_row > 0 && ws->ws_col > 0;
}

bool utf8_is_valid(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p) {
                uint32_t c;
                size_t n;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if (*p >= 0xc2 && *p <= 0xdf)
                        n = 1, c = *p & 0x1f;
                else if (*p >= 0xe0 && *p <= 0xef)
                        n = 2, c = *p & 0x0f;
                else if (*p >= 0xf0 && *p <= 0xf4)
                        n = 3, c = *p & 0x07;
                else
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        c = (c << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates and past U+10FFFF are not UTF-8; sd-bus also
                 * refuses the noncharacters. */
                if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10ffff)) ||
                    (c >= 0xd800 && c <= 0xdfff) || (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
                        return false;
                p += n + 1;
        }
        return true;
}
