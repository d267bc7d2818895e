/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading and validating the arguments of Exec(as argv, a{sv} options). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec-request.h"
#include "macro.h"
#include "parse.h"
#include "strv.h"

#define INVALID(error, ...) sd_bus_error_setf((error), SD_BUS_ERROR_INVALID_ARGS, __VA_ARGS__)

void exec_request_init(ExecRequest *req) {
        *req = (ExecRequest) {
                .rows = 24,
                .cols = 80,
                .profile = PROFILE_DEFAULT,
                .fds = { -EBADF, -EBADF, -EBADF },
        };
}

void exec_request_done(ExecRequest *req) {
        strv_free(req->argv);
        strv_free(req->env);
        free(req->cwd);
        free(req->user);
        free(req->tag);
        free(req->stdin_data);
        for (int i = 0; i < 3; i++)
                safe_close(req->fds[i]);
        exec_request_init(req);
}

/* Reads an 'as' with bounds on count and size; 'field' names it in errors. */
static int read_strv(sd_bus_message *m, const char *field, char ***ret, size_t *total,
                     sd_bus_error *error) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(m, 's', &s)) > 0) {
                size_t len = strlen(s);
                char *c;

                if (n >= EXEC_ARGS_MAX)
                        return INVALID(error, "Invalid '%s': more than %u entries.", field,
                                       EXEC_ARGS_MAX);
                if (len > EXEC_STRING_MAX)
                        return INVALID(error, "Invalid '%s': entry %zu is longer than %u bytes.", field,
                                       n, EXEC_STRING_MAX);
                *total += len + 1;
                if (*total > EXEC_TOTAL_MAX)
                        return INVALID(error, "Invalid '%s': argv and env together exceed %u bytes.",
                                       field, EXEC_TOTAL_MAX);
                c = strdup(s);
                if (!c)
                        return -ENOMEM;
                r = strv_push(&l, &n, c);
                if (r < 0) {
                        free(c);
                        return r;
                }
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int read_env(sd_bus_message *m, ExecRequest *req, size_t *total, sd_bus_error *error) {
        int r;

        r = read_strv(m, "env", &req->env, total, error);
        if (r < 0)
                return r;
        for (size_t i = 0; req->env[i]; i++)
                if (env_entry_key_len(req->env[i]) < 0)
                        return INVALID(error, "Invalid 'env': entry %zu is not of the form KEY=VALUE "
                                       "with a non-empty KEY.", i);
        return 0;
}

/* The kernel's ceiling for RLIMIT_NOFILE: setrlimit() above it fails with EPERM, even for root
 * and even for "infinity". Read when a nofile limit is given: an administrator may change it. */
static uint64_t nofile_ceiling(void) {
        _cleanup_close_ int fd = open("/proc/sys/fs/nr_open", O_RDONLY | O_CLOEXEC);
        char buf[32];
        uint64_t v;
        ssize_t n;

        n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (n <= 0)
                return 1024 * 1024; /* the kernel's default */
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return parse_u64(buf, &v) >= 0 ? v : 1024 * 1024;
}

static int check_nofile(const struct rlimit *rl, sd_bus_error *error) {
        uint64_t ceiling;

        /* Below 3 the command could not even be given its stdin, stdout and stderr. */
        if (rl->rlim_cur < 3)
                return INVALID(error, "Invalid 'rlimits': the soft limit of 'nofile' must be at least 3 "
                               "(stdin, stdout and stderr).");
        ceiling = nofile_ceiling();
        if (rl->rlim_max > ceiling)
                return INVALID(error, "Invalid 'rlimits': 'nofile' cannot be above %llu, the kernel's "
                               "fs.nr_open%s.", (unsigned long long) ceiling,
                               rl->rlim_max == RLIM_INFINITY ? " (it has no 'infinity')" : "");
        return 0;
}

static int read_rlimits(sd_bus_message *m, ExecRequest *req, sd_bus_error *error) {
        const char *name;
        uint64_t soft, hard;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(stt)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "(stt)", &name, &soft, &hard)) > 0) {
                int res = rlimit_from_name(name);

                if (res < 0 || res >= N_RLIMITS)
                        return INVALID(error, "Invalid 'rlimits': unknown limit '%.64s'.", name);
                if (soft > hard)
                        return INVALID(error, "Invalid 'rlimits': soft limit of '%s' above its hard "
                                       "limit.", name);
                if (req->rlimit_set[res])
                        return INVALID(error, "Invalid 'rlimits': '%s' given twice.", name);
                /* 2^64-1 is RLIM_INFINITY on Linux, so the values pass through unchanged. */
                req->rlimits[res] = (struct rlimit) { .rlim_cur = soft, .rlim_max = hard };
                req->rlimit_set[res] = true;
                if (res == RLIMIT_NOFILE) {
                        r = check_nofile(&req->rlimits[res], error);
                        if (r < 0)
                                return r;
                }
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_fd(sd_bus_message *m, const char *key, int *fd, sd_bus_error *error) {
        int r, in;

        r = sd_bus_message_read_basic(m, 'h', &in);
        if (r < 0)
                return r;
        /* The message owns its fd; keep a copy above 2 so it can never collide with the
         * child's own 0..2 while they are being set up. */
        safe_close(*fd);
        *fd = fcntl(in, F_DUPFD_CLOEXEC, 3);
        if (*fd < 0) {
                if (errno == EMFILE || errno == ENFILE)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                 "Cannot take '%s': too many open files.", key);
                return -errno;
        }
        return 0;
}

static int read_string(sd_bus_message *m, const char *key, char **ret, sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_read_basic(m, 's', &s);
        if (r < 0)
                return r;
        if (strlen(s) >= PATH_MAX)
                return INVALID(error, "Invalid '%s': longer than %u bytes.", key, PATH_MAX - 1);
        free(*ret);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

typedef struct Option {
        const char *key;
        const char *signature;
} Option;

static const Option options[] = {
        { "cwd", "s" },         { "env", "as" },        { "user", "s" },
        { "tty", "b" },         { "rows", "q" },        { "cols", "q" },
        { "rlimits", "a(stt)" }, { "profile", "s" },    { "timeout-usec", "t" },
        { "output-window", "t" }, { "stdin", "h" },     { "stdout", "h" },
        { "stderr", "h" },      { "tag", "s" },         { "stdin-data", "ay" },
        { "max-output", "t" },  { "on-output-limit", "s" }, { "timeout-grace-usec", "t" },
};

static int read_bytes(sd_bus_message *m, ExecRequest *req, sd_bus_error *error) {
        const void *data;
        size_t size;
        int r;

        r = sd_bus_message_read_array(m, 'y', &data, &size);
        if (r < 0)
                return r;
        if (size > EXEC_STDIN_DATA_MAX)
                return INVALID(error, "Invalid 'stdin-data': %zu bytes, more than %u.", size,
                               EXEC_STDIN_DATA_MAX);
        free(req->stdin_data);
        req->stdin_data = malloc(MAX(size, (size_t) 1));
        if (!req->stdin_data)
                return -ENOMEM;
        if (size > 0)
                memcpy(req->stdin_data, data, size);
        req->stdin_data_size = size;
        req->stdin_data_set = true;
        return 0;
}

static int read_option(sd_bus_message *m, ExecRequest *req, const char *key, size_t *total,
                       sd_bus_error *error) {
        int r;

        if (streq(key, "cwd")) {
                r = read_string(m, key, &req->cwd, error);
                if (r < 0)
                        return r;
                if (req->cwd[0] != '/')
                        return INVALID(error, "Invalid 'cwd': '%.256s' is not an absolute path.",
                                       req->cwd);
                return 0;
        }
        if (streq(key, "env")) {
                if (req->env)
                        return INVALID(error, "Invalid 'env': given twice.");
                return read_env(m, req, total, error);
        }
        if (streq(key, "user")) {
                r = read_string(m, key, &req->user, error);
                if (r < 0)
                        return r;
                if (!user_spec_valid(req->user))
                        return INVALID(error, "Invalid 'user': '%.256s' is not a user name or uid, "
                                       "optionally followed by ':' and a group name or gid.",
                                       req->user);
                return 0;
        }
        if (streq(key, "tty")) {
                int b;

                r = sd_bus_message_read_basic(m, 'b', &b);
                if (r < 0)
                        return r;
                req->tty = b;
                return 0;
        }
        if (streq(key, "rows") || streq(key, "cols")) {
                uint16_t q;

                r = sd_bus_message_read_basic(m, 'q', &q);
                if (r < 0)
                        return r;
                if (q == 0)
                        return INVALID(error, "Invalid '%s': must be at least 1.", key);
                *(streq(key, "rows") ? &req->rows : &req->cols) = q;
                return 0;
        }
        if (streq(key, "rlimits"))
                return read_rlimits(m, req, error);
        if (streq(key, "profile")) {
                const char *s;

                r = sd_bus_message_read_basic(m, 's', &s);
                if (r < 0)
                        return r;
                req->profile = profile_from_string(s);
                if (req->profile < 0)
                        return INVALID(error, "Invalid 'profile': '%.64s' is neither 'default' nor "
                                       "'restricted'.", s);
                return 0;
        }
        if (streq(key, "timeout-usec"))
                return sd_bus_message_read_basic(m, 't', &req->timeout_usec);
        if (streq(key, "output-window"))
                return sd_bus_message_read_basic(m, 't', &req->output_window);
        if (streq(key, "stdin"))
                return read_fd(m, key, &req->fds[0], error);
        if (streq(key, "stdout"))
                return read_fd(m, key, &req->fds[1], error);
        if (streq(key, "stderr"))
                return read_fd(m, key, &req->fds[2], error);
        if (streq(key, "tag")) {
                const char *t;

                r = sd_bus_message_read_basic(m, 's', &t);
                if (r < 0)
                        return r;
                if (strlen(t) > EXEC_TAG_MAX)
                        return INVALID(error, "Invalid 'tag': longer than %u bytes.", EXEC_TAG_MAX);
                free(req->tag);
                req->tag = strdup(t);
                return req->tag ? 0 : -ENOMEM;
        }
        if (streq(key, "stdin-data"))
                return read_bytes(m, req, error);
        if (streq(key, "max-output")) {
                r = sd_bus_message_read_basic(m, 't', &req->max_output);
                if (r < 0)
                        return r;
                req->max_output_set = true;
                return 0;
        }
        if (streq(key, "on-output-limit")) {
                const char *a;

                r = sd_bus_message_read_basic(m, 's', &a);
                if (r < 0)
                        return r;
                if (streq(a, "kill"))
                        req->on_output_limit = OUTPUT_LIMIT_KILL;
                else if (streq(a, "truncate"))
                        req->on_output_limit = OUTPUT_LIMIT_TRUNCATE;
                else
                        return INVALID(error, "Invalid 'on-output-limit': '%.64s' is neither 'truncate' "
                                       "nor 'kill'.", a);
                return 0;
        }
        if (streq(key, "timeout-grace-usec"))
                return sd_bus_message_read_basic(m, 't', &req->timeout_grace_usec);

        return -EINVAL; /* not reached: the key was checked against the table */
}

/* The rules between options, and those of the method. */
static int check_request(ExecRequest *req, bool output_window_set, bool on_output_limit_set,
                         sd_bus_error *error) {
        bool run = req->kind != EXEC_KIND_EXEC;

        if (req->stdin_data_set && req->fds[0] >= 0)
                return INVALID(error, "Invalid 'stdin-data': 'stdin' is given too.");
        if (req->timeout_grace_usec > 0 && req->timeout_usec == 0)
                return INVALID(error, "Invalid 'timeout-grace-usec': it needs 'timeout-usec'.");
        if (!run) {
                if (req->max_output_set && req->max_output == 0)
                        return INVALID(error, "Invalid 'max-output': must be at least 1 for Exec.");
                if (req->on_output_limit == OUTPUT_LIMIT_TRUNCATE)
                        return INVALID(error, "Invalid 'on-output-limit': 'truncate' is for Run; "
                                       "Exec can only 'kill'.");
                return 0;
        }
        if (output_window_set)
                return INVALID(error, "Invalid 'output-window': not an option of Run, which sends "
                               "no Output.");
        if (!req->max_output_set)
                req->max_output = RUN_OUTPUT_DEFAULT;
        else if (req->max_output > RUN_OUTPUT_MAX)
                return INVALID(error, "Invalid 'max-output': at most %u bytes for Run (16 MiB).",
                               RUN_OUTPUT_MAX);
        req->max_output_set = true;
        if (!on_output_limit_set)
                req->on_output_limit = OUTPUT_LIMIT_TRUNCATE;
        return 0;
}

int exec_request_parse(sd_bus_message *m, ExecRequest *req, sd_bus_error *error) {
        bool output_window_set = false, on_output_limit_set = false;
        size_t total = 0;
        const char *key;
        int r;

        r = read_strv(m, "argv", &req->argv, &total, error);
        if (r < 0)
                return r;
        if (!req->argv[0])
                return INVALID(error, "Invalid 'argv': must not be empty.");
        if (!req->argv[0][0])
                return INVALID(error, "Invalid 'argv': argv[0] must not be empty.");

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const Option *o = NULL;
                const char *contents;
                char type;

                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < ELEMENTSOF(options); i++)
                        if (streq(key, options[i].key))
                                o = &options[i];
                if (!o)
                        return INVALID(error, "Unknown option '%.64s'.", key);

                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (!streq(contents, o->signature))
                        return INVALID(error, "Invalid '%s': expected a value of type '%s', got '%.32s'.",
                                       key, o->signature, contents);
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = read_option(m, req, key, &total, error);
                if (r < 0)
                        return r;
                output_window_set = output_window_set || streq(key, "output-window");
                on_output_limit_set = on_output_limit_set || streq(key, "on-output-limit");
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        req->args_size = total;
        return check_request(req, output_window_set, on_output_limit_set, error);
}
