/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl status, wait, kill and terminate: the verbs that work on one session's object. */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec-options.h"
#include "json.h"
#include "sandboxctl.h"

#define TERMINATE_GRACE_DEFAULT_USEC (10ULL * 1000000ULL)

/* The properties of org.example.Sandbox1.Session, in the order of api.md's table: the order of
 * status --json. Properties a later daemon adds follow them, in the order it sends them. */
static const char *const session_properties[] = {
        "Id", "PID", "UID", "GID", "User", "Argv", "Cwd", "TTY", "Profile", "Tag", "Owner", "State",
        "StartTimestamp", "EndTimestamp", "EndReason", "ExitCode", "ExitSignal", "Detachable",
        "Detached", "OutputOffset", "ControlGroup", "CPUUsageNSec", "MemoryPeak", "TasksCurrent",
};

static int parse_session_id(const char *s, uint32_t *ret) {
        if (parse_u32(s, ret) < 0) {
                log_usage_error("invalid session ID '%s'", s);
                return -EINVAL;
        }
        return 0;
}

/* Connects and finds the session's object. On failure prints "sandboxctl: WHAT: REASON (Kind)" and
 * returns the exit status to end with (> 0); 0 on success. */
static int session_open(Context *ctx, uint32_t id, char **ret_path, const char *what) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        if (context_connect(ctx) < 0)
                return EXIT_FAILED;
        r = sd_bus_call_method(ctx->bus, ctx->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "GetSession",
                               &error, &reply, "u", id);
        if (r < 0) {
                if (context_explain_wrong_address(ctx, &error))
                        return EXIT_FAILED;
                return log_bus_error(&error, false, "%s", what);
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0) {
                log_error_errno(r, "failed to parse the reply to GetSession: %m");
                return EXIT_FAILED;
        }
        *ret_path = strdup(path);
        if (!*ret_path) {
                log_error_errno(-ENOMEM, "out of memory");
                return EXIT_FAILED;
        }
        return 0;
}

/* A call on the session's object. Its record may be dropped between GetSession and the call: the
 * object is then unknown, which to the user is the same as an unknown session. */
static int session_call(Context *ctx, const char *path, const char *interface, const char *member,
                        uint64_t timeout_usec, sd_bus_message **ret_reply, const char *what,
                        const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(ctx->bus, &m, ctx->destination, path, interface, member);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r < 0) {
                log_error_errno(r, "failed to build the %s call: %m", member);
                return EXIT_FAILED;
        }
        r = sd_bus_call(ctx->bus, m, timeout_usec, &error, ret_reply);
        if (r < 0) {
                if (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
                        sd_bus_error_free(&error);
                        (void) sd_bus_error_set(&error, SANDBOX_ERROR_PREFIX "NoSuchSession", NULL);
                }
                return log_bus_error(&error, false, "%s", what);
        }
        return 0;
}

/* The exit status a shell gives for a command that ended so. */
static int exit_status_of(int32_t code, int32_t sig) {
        return code >= 0 ? code & 0xff : 128 + sig;
}

/* --- status --- */

typedef struct SessionStatus {
        uint32_t id, pid, uid, gid;
        const char *user, *cwd, *profile, *tag, *owner, *state, *end_reason, *cgroup;
        char *command;
        int tty, detachable, detached;
        uint64_t start, end, output_offset, cpu_nsec, memory_peak, tasks;
        int32_t exit_code, exit_signal;
} SessionStatus;

static void session_status_done(SessionStatus *s) {
        free(s->command);
}

static int read_property(sd_bus_message *m, const char *name, SessionStatus *s) {
        static const struct {
                const char *name;
                char type;
                size_t offset;
        } table[] = {
#define P(name, type, field) { name, type, offsetof(SessionStatus, field) }
                P("Id", 'u', id), P("PID", 'u', pid), P("UID", 'u', uid), P("GID", 'u', gid),
                P("User", 's', user), P("Cwd", 's', cwd), P("Profile", 's', profile), P("Tag", 's', tag),
                P("Owner", 's', owner), P("State", 's', state), P("EndReason", 's', end_reason),
                P("ControlGroup", 's', cgroup), P("TTY", 'b', tty), P("Detachable", 'b', detachable),
                P("Detached", 'b', detached), P("StartTimestamp", 't', start), P("EndTimestamp", 't', end),
                P("OutputOffset", 't', output_offset), P("CPUUsageNSec", 't', cpu_nsec),
                P("MemoryPeak", 't', memory_peak), P("TasksCurrent", 't', tasks),
                P("ExitCode", 'i', exit_code), P("ExitSignal", 'i', exit_signal),
#undef P
        };
        int r;

        if (streq(name, "Argv")) {
                const char *arg;

                r = sd_bus_message_enter_container(m, 'v', "as");
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(m, 'a', "s");
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_read(m, "s", &arg)) > 0) {
                        s->command = shell_quote_append(s->command, arg);
                        if (!s->command)
                                return -ENOMEM;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        }

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char sig[2] = { table[i].type, 0 };

                if (!streq(table[i].name, name))
                        continue;
                r = sd_bus_message_enter_container(m, 'v', sig);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(m, table[i].type, (uint8_t *) s + table[i].offset);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        }
        return sd_bus_message_skip(m, "v");
}

static int read_status(sd_bus_message *reply, SessionStatus *s) {
        const char *name;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        return r;
                r = read_property(reply, name, s);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

/* "Wed 2026-12-02 15:40:01 UTC" in local time, as systemctl status writes it. */
static const char *format_timestamp(uint64_t usec, char buf[static 64]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, 64, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, 64, "@%" PRIu64, usec / 1000000U);
        return buf;
}

/* "1h 2min", "3min 4s", "5s", "120ms": the two largest units, as systemd's format_timespan. */
static const char *format_timespan(uint64_t usec, char buf[static 64]) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", 86400ULL * 1000000 }, { "h", 3600ULL * 1000000 }, { "min", 60ULL * 1000000 },
                { "s", 1000000 }, { "ms", 1000 },
        };
        size_t n = 0;
        int shown = 0;

        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2; i++) {
                uint64_t v = usec / units[i].usec;

                if (v == 0 && shown == 0)
                        continue;
                if (v > 0)
                        n += (size_t) snprintf(buf + n, 64 - n, "%s%" PRIu64 "%s", shown ? " " : "", v,
                                               units[i].suffix);
                usec -= v * units[i].usec;
                shown++;
        }
        if (n == 0)
                snprintf(buf, 64, "%" PRIu64 "us", usec);
        return buf;
}

static const char *format_bytes(uint64_t bytes, char buf[static 32]) {
        static const char suffixes[] = "KMGT";

        if (bytes < 1024) {
                snprintf(buf, 32, "%" PRIu64 "B", bytes);
                return buf;
        }
        double v = (double) bytes / 1024;
        size_t i = 0;

        while (v >= 1024 && i + 1 < strlen(suffixes)) {
                v /= 1024;
                i++;
        }
        snprintf(buf, 32, "%.1f%c", v, suffixes[i]);
        return buf;
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static void print_status(const SessionStatus *s) {
        bool ended = streq_ptr(s->state, "ended");
        uint64_t now = now_realtime_usec();
        char t1[64], t2[64], sigbuf[16], b[32];

        printf("Session %" PRIu32 ": %s\n", s->id, strempty(s->command));
        if (ended) {
                printf("      State: ended (%s) since %s; %s ago\n", strempty(s->end_reason),
                       format_timestamp(s->end, t1), format_timespan(now > s->end ? now - s->end : 0, t2));
                printf("    Started: %s; ran %s\n", format_timestamp(s->start, t1),
                       format_timespan(s->end > s->start ? s->end - s->start : 0, t2));
                if (s->exit_code >= 0)
                        printf("     Status: exited with status %" PRIi32 "\n", s->exit_code);
                else
                        printf("     Status: killed by signal %" PRIi32 " (%s)\n", s->exit_signal,
                               signal_to_string(s->exit_signal, sigbuf));
        } else {
                uint64_t age = now > s->start ? now - s->start : 0;

                printf("      State: %s since %s; %s ago\n", strempty(s->state),
                       format_timestamp(s->start, t1), format_timespan(age, t2));
        }
        printf("        PID: %" PRIu32 "\n", s->pid);
        printf("       User: %s (uid %" PRIu32 ", gid %" PRIu32 ")\n", strempty(s->user), s->uid, s->gid);
        printf("        Cwd: %s\n", strempty(s->cwd));
        printf("    Profile: %s\n", strempty(s->profile));
        printf("        TTY: %s\n", s->tty ? "yes" : "no");
        if (s->tag && s->tag[0])
                printf("        Tag: %s\n", s->tag);
        if (s->owner && s->owner[0])
                printf("      Owner: %s\n", s->owner);
        if (s->detachable)
                printf("   Detached: %s\n", s->detached ? "yes" : "no");
        printf("     Output: %" PRIu64 " bytes\n", s->output_offset);
        if (s->cgroup && s->cgroup[0])
                printf("     CGroup: %s\n", s->cgroup);
        if (s->tasks != UINT64_MAX)
                printf("      Tasks: %" PRIu64 "\n", s->tasks);
        if (s->memory_peak != UINT64_MAX)
                printf("     Memory: %s (peak)\n", format_bytes(s->memory_peak, b));
        if (s->cpu_nsec != UINT64_MAX)
                printf("        CPU: %s\n", format_timespan(s->cpu_nsec / 1000, t1));
}

/* Moves m to the value of the property called name, inside its variant; false if it is not there. */
static int find_property(sd_bus_message *m, const char *name) {
        const char *key;
        int r;

        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, name))
                        return 1;
                r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r;
}

static bool property_is_known(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(session_properties); i++)
                if (streq(session_properties[i], name))
                        return true;
        return false;
}

static int print_status_json(sd_bus_message *reply, JsonMode mode) {
        JsonWriter w = { .f = stdout, .pretty = mode == JSON_PRETTY };
        const char *key;
        int r;

        json_begin(&w, '{');
        for (size_t i = 0; i < ELEMENTSOF(session_properties); i++) {
                r = find_property(reply, session_properties[i]);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                json_key(&w, session_properties[i]);
                r = json_bus_value(&w, reply, true);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_rewind(reply, true);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (property_is_known(key))
                        r = sd_bus_message_skip(reply, "v");
                else {
                        json_key(&w, key);
                        r = json_bus_value(&w, reply, true);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return r;
        json_end(&w, '}');
        fputc('\n', stdout);
        return 0;
}

int verb_status(Context *ctx, int argc, char *argv[]) {
        enum { ARG_JSON = 0x100 };
        static const struct option options[] = {
                { "help", no_argument,       NULL, 'h' },
                { "json", optional_argument, NULL, ARG_JSON },
                {}
        };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(session_status_done) SessionStatus s = {};
        _cleanup_free_ char *path = NULL;
        JsonMode json = JSON_OFF;
        char what[64];
        uint32_t id;
        int c, r;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case ARG_JSON:
                        r = json_mode_from_arg(optarg, &json);
                        if (r != 0)
                                return r;
                        break;
                default:
                        return log_getopt_error(c, argv);
                }
        if (argc - optind != 1)
                return log_usage_error("status takes a session ID");
        if (parse_session_id(argv[optind], &id) < 0)
                return EXIT_USAGE;

        snprintf(what, sizeof what, "failed to get the status of session %" PRIu32, id);
        r = session_open(ctx, id, &path, what);
        if (r != 0)
                return r;
        r = session_call(ctx, path, "org.freedesktop.DBus.Properties", "GetAll", 0, &reply, what, "s",
                         SANDBOX_SESSION_INTERFACE);
        if (r != 0)
                return r;

        if (json != JSON_OFF)
                r = print_status_json(reply, json);
        else {
                r = read_status(reply, &s);
                if (r >= 0)
                        print_status(&s);
        }
        if (r < 0) {
                log_error_errno(r, "failed to parse the properties of session %" PRIu32 ": %m", id);
                return EXIT_FAILED;
        }
        if (fflush(stdout) != 0) {
                log_error_errno(-errno, "failed to write the status: %m");
                return EXIT_FAILED;
        }
        return 0;
}

/* --- wait --- */

int verb_wait(Context *ctx, int argc, char *argv[]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        int32_t code, sig;
        char what[64];
        uint32_t id;
        int r;

        r = parse_verb_argv(argc, argv);
        if (r <= 0)
                return r == 0 ? 0 : EXIT_USAGE;
        if (argc - optind != 1)
                return log_usage_error("wait takes a session ID");
        if (parse_session_id(argv[optind], &id) < 0)
                return EXIT_USAGE;

        snprintf(what, sizeof what, "failed to wait for session %" PRIu32, id);
        r = session_open(ctx, id, &path, what);
        if (r != 0)
                return r;
        /* The reply comes at the session's end, however long that takes. */
        r = session_call(ctx, path, SANDBOX_SESSION_INTERFACE, "Wait", UINT64_MAX, &reply, what, "");
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "ii", &code, &sig);
        if (r < 0) {
                log_error_errno(r, "failed to parse the reply to Wait: %m");
                return EXIT_FAILED;
        }
        return exit_status_of(code, sig);
}

/* --- kill, terminate --- */

int verb_kill(Context *ctx, int argc, char *argv[]) {
        _cleanup_free_ char *path = NULL;
        int sig = SIGTERM, r;
        char what[96], name[16];
        uint32_t id;

        r = parse_verb_argv(argc, argv);
        if (r <= 0)
                return r == 0 ? 0 : EXIT_USAGE;
        if (argc - optind < 1 || argc - optind > 2)
                return log_usage_error("kill takes a session ID and optionally a signal");
        if (parse_session_id(argv[optind], &id) < 0)
                return EXIT_USAGE;
        if (argc - optind == 2) {
                sig = signal_from_string(argv[optind + 1]);
                if (sig < 0)
                        return log_usage_error("unknown signal '%s'", argv[optind + 1]);
        }

        snprintf(what, sizeof what, "failed to send signal %s to session %" PRIu32,
                 signal_to_string(sig, name), id);
        r = session_open(ctx, id, &path, what);
        if (r != 0)
                return r;
        return session_call(ctx, path, SANDBOX_SESSION_INTERFACE, "Kill", 0, NULL, what, "i", (int32_t) sig);
}

int verb_terminate(Context *ctx, int argc, char *argv[]) {
        enum { ARG_GRACE = 0x100 };
        static const struct option options[] = {
                { "help",  no_argument,       NULL, 'h' },
                { "grace", required_argument, NULL, ARG_GRACE },
                {}
        };
        uint64_t grace = TERMINATE_GRACE_DEFAULT_USEC;
        _cleanup_free_ char *path = NULL;
        char what[64];
        uint32_t id;
        int c, r;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case ARG_GRACE:
                        r = parse_seconds(optarg, &grace);
                        if (r == -ENOMEM) {
                                log_error_errno(r, "out of memory");
                                return EXIT_FAILED;
                        }
                        if (r < 0)
                                return log_usage_error("invalid grace '%s', expected seconds", optarg);
                        break;
                default:
                        return log_getopt_error(c, argv);
                }
        if (argc - optind != 1)
                return log_usage_error("terminate takes a session ID");
        if (parse_session_id(argv[optind], &id) < 0)
                return EXIT_USAGE;

        snprintf(what, sizeof what, "failed to terminate session %" PRIu32, id);
        r = session_open(ctx, id, &path, what);
        if (r != 0)
                return r;
        return session_call(ctx, path, SANDBOX_SESSION_INTERFACE, "Terminate", 0, NULL, what, "t", grace);
}
