/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The command lines of sandboxctl exec, run and shell, parsed and turned into the options of Exec or Run. */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "exec-options.h"
#include "sandboxctl.h"

void exec_args_done(ExecArgs *a) {
        for (size_t i = 0; i < a->n_rlimits; i++)
                free(a->rlimits[i].name);
        free(a->rlimits);
        free(a->env);
}

static int parse_rlimit_value(const char *s, uint64_t *ret) {
        if (strcmp(s, "infinity") == 0 || strcmp(s, "unlimited") == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        return parse_u64(s, ret);
}

/* NAME=SOFT[:HARD]; NAME as the daemon knows it ("nofile"), also accepted as NOFILE or RLIMIT_NOFILE. */
static int parse_rlimit(const char *s, Rlimit *ret) {
        _cleanup_free_ char *name = NULL, *soft = NULL;
        const char *eq = strchr(s, '='), *colon;
        int r;

        if (!eq || eq == s)
                return -EINVAL;
        if (strncasecmp(s, "RLIMIT_", 7) == 0 && eq - s > 7)
                s += 7;
        name = strndup(s, (size_t) (eq - s));
        if (!name)
                return -ENOMEM;
        for (char *p = name; *p; p++)
                *p = (char) tolower((unsigned char) *p);

        colon = strchr(eq + 1, ':');
        soft = strndup(eq + 1, colon ? (size_t) (colon - eq - 1) : strlen(eq + 1));
        if (!soft)
                return -ENOMEM;
        r = parse_rlimit_value(soft, &ret->soft);
        if (r < 0)
                return r;
        if (colon) {
                r = parse_rlimit_value(colon + 1, &ret->hard);
                if (r < 0)
                        return r;
        } else
                ret->hard = ret->soft;

        ret->name = TAKE_PTR(name);
        return 0;
}

int parse_seconds(const char *s, uint64_t *ret) {
        const char *dot = strchr(s, '.');
        _cleanup_free_ char *whole = NULL;
        uint64_t sec, usec = 0, scale = 100000;
        int r;

        whole = strndup(s, dot ? (size_t) (dot - s) : strlen(s));
        if (!whole)
                return -ENOMEM;
        r = parse_u64(whole, &sec);
        if (r < 0)
                return r;
        if (dot) {
                if (!isdigit((unsigned char) dot[1]))
                        return -EINVAL;
                for (const char *p = dot + 1; *p; p++) {
                        if (!isdigit((unsigned char) *p))
                                return -EINVAL;
                        usec += (uint64_t) (*p - '0') * scale;
                        scale /= 10;
                }
        }
        if (sec > (UINT64_MAX - usec) / 1000000)
                return -ERANGE;
        *ret = sec * 1000000 + usec;
        return 0;
}

/* Bytes, with an optional K, M or G (1024-based, as systemd's sizes), with or without a trailing B. */
static int parse_size(const char *s, uint64_t *ret) {
        _cleanup_free_ char *digits = NULL;
        size_t n = strspn(s, "0123456789");
        uint64_t v, factor = 1;
        const char *suffix = s + n;
        int r;

        if (n == 0)
                return -EINVAL;
        if (*suffix == 'K' || *suffix == 'M' || *suffix == 'G') {
                factor = *suffix == 'K' ? 1024ULL : *suffix == 'M' ? 1024ULL * 1024 : 1024ULL * 1024 * 1024;
                suffix++;
        }
        if (*suffix == 'B')
                suffix++;
        if (*suffix)
                return -EINVAL;
        digits = strndup(s, n);
        if (!digits)
                return -ENOMEM;
        r = parse_u64(digits, &v);
        if (r < 0)
                return r;
        if (v > UINT64_MAX / factor)
                return -ERANGE;
        *ret = v * factor;
        return 0;
}

/* As ssh -e: one character, "^X" for a control character, or "none". */
static int parse_escape_char(const char *s, int *ret) {
        if (strcmp(s, "none") == 0) {
                *ret = -1;
                return 0;
        }
        if (s[0] == '^' && s[1] != 0 && s[2] == 0) {
                *ret = (unsigned char) s[1] & 0x1f;
                return 0;
        }
        if (s[0] != 0 && s[1] == 0) {
                *ret = (unsigned char) s[0];
                return 0;
        }
        return -EINVAL;
}

int exec_args_parse(int argc, char *argv[], ExecArgs *a) {
        enum {
                ARG_CWD = 0x100,
                ARG_RLIMIT,
                ARG_PROFILE,
                ARG_TIMEOUT,
                ARG_TAG,
                ARG_MAX_OUTPUT,
                ARG_ESCAPE,
        };
        static const struct option options[] = {
                { "help",    no_argument,       NULL, 'h' },
                { "tty",     no_argument,       NULL, 't' },
                { "user",    required_argument, NULL, 'u' },
                { "cwd",     required_argument, NULL, ARG_CWD },
                { "env",     required_argument, NULL, 'e' },
                { "rlimit",  required_argument, NULL, ARG_RLIMIT },
                { "profile", required_argument, NULL, ARG_PROFILE },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "tag",     required_argument, NULL, ARG_TAG },
                { "max-output", required_argument, NULL, ARG_MAX_OUTPUT },
                { "escape",  required_argument, NULL, ARG_ESCAPE },
                {}
        };
        int c, r;

        a->escape_char = '~';

        /* '+': the first non-option is the command; everything after it is the command's. */
        while ((c = getopt_long(argc, argv, "+:htu:e:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case 't':
                case 'u':
                        if (a->shell) {
                                /* Always on a terminal; the user is the one argument. */
                                log_usage_error("shell takes no -%c: sandboxctl shell [OPTIONS...] [USER]",
                                                c);
                                return -EINVAL;
                        }
                        if (c == 'u') {
                                a->user = optarg;
                                break;
                        }
                        if (a->run) {
                                /* Run relays nothing while the command runs: no keys, no window. */
                                log_usage_error("run cannot use a terminal (its output is printed at "
                                                "the end); use exec -t");
                                return -EINVAL;
                        }
                        /* As ssh: a second -t insists on a PTY even without a terminal here. */
                        if (a->tty)
                                a->force_tty = true;
                        a->tty = true;
                        break;
                case ARG_CWD:
                        a->cwd = optarg;
                        break;
                case 'e': {
                        char **env;

                        if (!strchr(optarg, '=') || optarg[0] == '=') {
                                log_usage_error("invalid environment entry '%s', expected KEY=VALUE",
                                                optarg);
                                return -EINVAL;
                        }
                        env = realloc(a->env, (a->n_env + 1) * sizeof(char *));
                        if (!env)
                                return log_error_errno(-ENOMEM, "out of memory");
                        a->env = env;
                        a->env[a->n_env++] = optarg;
                        break;
                }
                case ARG_RLIMIT: {
                        Rlimit *l = realloc(a->rlimits, (a->n_rlimits + 1) * sizeof(Rlimit));

                        if (!l)
                                return log_error_errno(-ENOMEM, "out of memory");
                        a->rlimits = l;
                        r = parse_rlimit(optarg, &a->rlimits[a->n_rlimits]);
                        if (r == -ENOMEM)
                                return log_error_errno(r, "out of memory");
                        if (r < 0) {
                                log_usage_error("invalid resource limit '%s', expected NAME=SOFT[:HARD]",
                                                optarg);
                                return -EINVAL;
                        }
                        a->n_rlimits++;
                        break;
                }
                case ARG_PROFILE:
                        a->profile = optarg;
                        break;
                case ARG_TIMEOUT:
                        r = parse_seconds(optarg, &a->timeout_usec);
                        if (r == -ENOMEM)
                                return log_error_errno(r, "out of memory");
                        if (r < 0) {
                                log_usage_error("invalid timeout '%s', expected seconds", optarg);
                                return -EINVAL;
                        }
                        a->have_timeout = true;
                        break;
                case ARG_TAG:
                        a->tag = optarg;
                        break;
                case ARG_MAX_OUTPUT:
                        /* Exec's limit would kill the command; run's only truncates what is kept. */
                        if (!a->run) {
                                log_usage_error("--max-output is an option of run");
                                return -EINVAL;
                        }
                        r = parse_size(optarg, &a->max_output);
                        if (r < 0) {
                                log_usage_error("invalid size '%s', expected bytes (K, M, G: 1024-based)",
                                                optarg);
                                return -EINVAL;
                        }
                        a->have_max_output = true;
                        break;
                case ARG_ESCAPE:
                        if (a->run) {
                                log_usage_error("--escape is an option of exec -t and shell");
                                return -EINVAL;
                        }
                        if (parse_escape_char(optarg, &a->escape_char) < 0) {
                                log_usage_error("invalid escape character '%s', expected one character, "
                                                "^X or 'none'", optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        log_getopt_error(c, argv);
                        return -EINVAL;
                }

        if (a->shell) {
                if (argc - optind > 1) {
                        log_usage_error("shell takes at most one argument, the user");
                        return -EINVAL;
                }
                a->user = argv[optind];         /* NULL: the caller's own user */
                return 1;
        }
        if (optind >= argc) {
                log_usage_error("%s needs a command", a->run ? "run" : "exec");
                return -EINVAL;
        }
        a->command = argv + optind;
        return 1;
}

static bool env_has(const ExecArgs *a, const char *key) {
        size_t n = strlen(key);

        for (size_t i = 0; i < a->n_env; i++)
                if (strncmp(a->env[i], key, n) == 0 && a->env[i][n] == '=')
                        return true;
        return false;
}

static int append_option_open(sd_bus_message *m, const char *key, const char *type) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", key);
        if (r < 0)
                return r;
        return sd_bus_message_open_container(m, 'v', type);
}

static int append_option_close(sd_bus_message *m) {
        int r;

        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* A scalar option: ("key", <value>) */
#define APPEND_OPTION(m, key, type, ...)                                        \
        ({                                                                      \
                int _r = append_option_open(m, key, type);                      \
                if (_r >= 0)                                                    \
                        _r = sd_bus_message_append(m, type, __VA_ARGS__);       \
                if (_r >= 0)                                                    \
                        _r = append_option_close(m);                            \
                _r;                                                             \
        })

/* With a terminal, as ssh's default SendEnv: the language and the colours the user reads in follow
 * them into the command. Only these: the rest of our environment is ours, not the session's. */
static bool env_key_is_passed(const char *e, size_t klen) {
        return (klen == 4 && strncmp(e, "LANG", 4) == 0) ||
                (klen == 9 && strncmp(e, "COLORTERM", 9) == 0) ||
                (klen > 3 && strncmp(e, "LC_", 3) == 0);
}

/* A value with a '/' is a locale loaded from a path: the daemon refuses it for a command run as
 * another user, and it names a file here, not one there. Such a value is left out rather than
 * failing the command, as the variable would be on a host without that locale. A value that is not
 * UTF-8 cannot travel in a D-Bus string. */
static bool env_value_is_passed(const char *v) {
        return !strchr(v, '/') && utf8_is_valid(v);
}

/* The entries of environ to pass on with --tty, borrowed, NULL-terminated; -e entries win. */
static int env_collect_passed(const ExecArgs *a, const char ***ret) {
        _cleanup_free_ const char **l = NULL;
        size_t n = 0;

        for (char **e = environ; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                _cleanup_free_ char *key = NULL;
                const char **nl;

                if (!eq || eq == *e || !env_key_is_passed(*e, (size_t) (eq - *e)) ||
                    !env_value_is_passed(eq + 1))
                        continue;
                key = strndup(*e, (size_t) (eq - *e));
                if (!key)
                        return -ENOMEM;
                if (env_has(a, key))
                        continue;
                nl = realloc(l, (n + 2) * sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n++] = *e;
                l[n] = NULL;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int append_env(sd_bus_message *m, const ExecArgs *a, const char *term, const char *const *passed) {
        int r;

        r = append_option_open(m, "env", "as");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "s");
        if (r < 0)
                return r;
        if (term) {
                _cleanup_free_ char *entry = NULL;

                if (asprintf(&entry, "TERM=%s", term) < 0)
                        return -ENOMEM;
                r = sd_bus_message_append(m, "s", entry);
                if (r < 0)
                        return r;
        }
        for (const char *const *e = passed; e && *e; e++) {
                r = sd_bus_message_append(m, "s", *e);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < a->n_env; i++) {
                r = sd_bus_message_append(m, "s", a->env[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return append_option_close(m);
}

static int append_rlimits(sd_bus_message *m, const ExecArgs *a) {
        int r;

        r = append_option_open(m, "rlimits", "a(stt)");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "(stt)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < a->n_rlimits; i++) {
                r = sd_bus_message_append(m, "(stt)", a->rlimits[i].name, a->rlimits[i].soft,
                                          a->rlimits[i].hard);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return append_option_close(m);
}

int exec_args_append_options(sd_bus_message *m, const ExecArgs *a, const bool pass_fd[3],
                             uint64_t output_window) {
        static const char *const fd_keys[3] = { "stdin", "stdout", "stderr" };
        _cleanup_free_ const char **passed = NULL;
        const char *term = NULL;
        int r = 0;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        if (a->tty) {
                struct winsize ws = {};

                r = APPEND_OPTION(m, "tty", "b", true);
                if (r < 0)
                        return r;
                if (terminal_get_size(&ws)) {
                        r = APPEND_OPTION(m, "rows", "q", (uint16_t) ws.ws_row);
                        if (r < 0)
                                return r;
                        r = APPEND_OPTION(m, "cols", "q", (uint16_t) ws.ws_col);
                        if (r < 0)
                                return r;
                }
                term = getenv("TERM");
                if (term && (term[0] == 0 || env_has(a, "TERM")))
                        term = NULL;
                r = env_collect_passed(a, &passed);
                if (r < 0)
                        return r;
        }

        if (a->n_env > 0 || term || (passed && passed[0])) {
                r = append_env(m, a, term, passed);
                if (r < 0)
                        return r;
        }
        if (a->user) {
                r = APPEND_OPTION(m, "user", "s", a->user);
                if (r < 0)
                        return r;
        }
        if (a->cwd) {
                r = APPEND_OPTION(m, "cwd", "s", a->cwd);
                if (r < 0)
                        return r;
        }
        if (a->profile) {
                r = APPEND_OPTION(m, "profile", "s", a->profile);
                if (r < 0)
                        return r;
        }
        if (a->have_timeout) {
                r = APPEND_OPTION(m, "timeout-usec", "t", a->timeout_usec);
                if (r < 0)
                        return r;
        }
        if (a->tag) {
                r = APPEND_OPTION(m, "tag", "s", a->tag);
                if (r < 0)
                        return r;
        }
        if (a->have_max_output) {
                r = APPEND_OPTION(m, "max-output", "t", a->max_output);
                if (r < 0)
                        return r;
        }
        if (a->have_stdin_data) {
                r = append_option_open(m, "stdin-data", "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', a->stdin_data, a->stdin_data_size);
                if (r >= 0)
                        r = append_option_close(m);
                if (r < 0)
                        return r;
        }
        if (a->n_rlimits > 0) {
                r = append_rlimits(m, a);
                if (r < 0)
                        return r;
        }
        for (int fd = 0; fd < 3; fd++) {
                if (!pass_fd[fd])
                        continue;
                r = APPEND_OPTION(m, fd_keys[fd], "h", fd);
                if (r < 0)
                        return r;
        }
        if (output_window > 0) {
                r = APPEND_OPTION(m, "output-window", "t", output_window);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(m);
}
