/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxd: command line, process setup and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "manager.h"
#include "parse.h"
#include "spawn.h"
#include "strv.h"
#include "user.h"
#include "vsock.h"

static char **arg_listen = NULL;
static size_t arg_n_listen = 0;

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Runs commands for D-Bus clients: org.example.Sandbox1.\n\n"
               "  -h --help                       Show this help\n"
               "     --version                    Show the version\n"
               "     --listen=ADDRESS             Serve peer-to-peer D-Bus on ADDRESS\n"
               "                                  (unix:path=PATH or unix:abstract=NAME)\n"
               "     --no-bus                     Do not take the name on the system bus\n"
               "     --idle-timeout=SECONDS       Exit when idle this long (default 30, 0 = never)\n"
               "     --retain-sec=SECONDS         Keep ended sessions' records this long (default 60)\n"
               "     --max-sessions=N             Sessions at once (default %u)\n"
               "     --max-sessions-per-user=N    Sessions at once per caller uid (default %u)\n"
               "     --max-connections=N          Peer-to-peer connections at once of uids other\n"
               "                                  than root (default %u)\n"
               "     --max-connections-per-user=N Peer-to-peer connections at once per uid\n"
               "                                  (default %u)\n"
               "     --vsock-allow-cid=CID[,CID...]\n"
               "                                  vsock peers that may connect (default: the\n"
               "                                  host, CID 2, only)\n"
               "     --default-user=USER          Who callers without credentials (vsock) are\n"
               "                                  (default root)\n"
               "     --log-level=LEVEL            debug, info, notice, warning or err\n",
               program_invocation_short_name, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_USER,
               DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_USER);
}

static int parse_unsigned_arg(const char *name, const char *value, uint64_t max, uint64_t *ret) {
        int r = parse_u64(value, ret);

        if (r < 0 || *ret > max) {
                log_error("Invalid value for %s: '%s'.", name, value);
                return -EINVAL;
        }
        return 0;
}

static int parse_argv(Manager *m, int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_LISTEN,
                ARG_NO_BUS,
                ARG_IDLE_TIMEOUT,
                ARG_MAX_SESSIONS,
                ARG_MAX_SESSIONS_PER_USER,
                ARG_MAX_CONNECTIONS,
                ARG_LOG_LEVEL,
                ARG_DEFAULT_USER,
                ARG_MAX_CONNECTIONS_PER_USER,
                ARG_VSOCK_ALLOW_CID,
                ARG_RETAIN_SEC,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "no-bus", no_argument, NULL, ARG_NO_BUS },
                { "idle-timeout", required_argument, NULL, ARG_IDLE_TIMEOUT },
                { "max-sessions", required_argument, NULL, ARG_MAX_SESSIONS },
                { "max-sessions-per-user", required_argument, NULL, ARG_MAX_SESSIONS_PER_USER },
                { "max-connections", required_argument, NULL, ARG_MAX_CONNECTIONS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "default-user", required_argument, NULL, ARG_DEFAULT_USER },
                { "max-connections-per-user", required_argument, NULL, ARG_MAX_CONNECTIONS_PER_USER },
                { "vsock-allow-cid", required_argument, NULL, ARG_VSOCK_ALLOW_CID },
                { "retain-sec", required_argument, NULL, ARG_RETAIN_SEC },
                {}
        };
        static const char *const levels[] = {
                [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
        };
        uint64_t v;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sandboxd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_LISTEN: {
                        char *a = strdup(optarg);

                        if (!a || strv_push(&arg_listen, &arg_n_listen, a) < 0) {
                                free(a);
                                return log_oom();
                        }
                        break;
                }
                case ARG_NO_BUS:
                        m->use_bus = false;
                        break;
                case ARG_IDLE_TIMEOUT:
                        r = parse_unsigned_arg("--idle-timeout", optarg, UINT64_MAX / 1000000, &v);
                        if (r < 0)
                                return r;
                        m->idle_timeout_usec = v * 1000000;
                        break;
                case ARG_RETAIN_SEC:
                        r = parse_unsigned_arg("--retain-sec", optarg, UINT64_MAX / 1000000, &v);
                        if (r < 0)
                                return r;
                        m->retain_usec = v * 1000000;
                        break;
                case ARG_MAX_SESSIONS:
                        r = parse_unsigned_arg("--max-sessions", optarg, 1000000, &v);
                        if (r < 0)
                                return r;
                        m->max_sessions = (unsigned) v;
                        break;
                case ARG_MAX_SESSIONS_PER_USER:
                        r = parse_unsigned_arg("--max-sessions-per-user", optarg, 1000000, &v);
                        if (r < 0)
                                return r;
                        m->max_sessions_per_user = (unsigned) v;
                        break;
                case ARG_MAX_CONNECTIONS:
                        r = parse_unsigned_arg("--max-connections", optarg, 1000000, &v);
                        if (r < 0)
                                return r;
                        m->max_connections = (unsigned) v;
                        break;
                case ARG_MAX_CONNECTIONS_PER_USER:
                        r = parse_unsigned_arg("--max-connections-per-user", optarg, 1000000, &v);
                        if (r < 0)
                                return r;
                        m->max_connections_per_user = (unsigned) v;
                        break;
                case ARG_VSOCK_ALLOW_CID:
                        r = vsock_cid_list_parse(optarg, &m->vsock_allow_cids, &m->n_vsock_allow_cids);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                return log_error_errno(EINVAL, "Invalid --vsock-allow-cid '%s'.", optarg);
                        break;
                case ARG_LOG_LEVEL:
                        r = -EINVAL;
                        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                                if (levels[i] && streq(levels[i], optarg)) {
                                        log_set_max_level((int) i);
                                        r = 0;
                                }
                        if (r < 0)
                                return log_error_errno(EINVAL, "Invalid log level '%s'.", optarg);
                        break;
                case ARG_DEFAULT_USER: {
                        _cleanup_(user_info_done) UserInfo u = {};

                        r = user_resolve(optarg, 0, &u);
                        if (r < 0)
                                return log_error_errno(r, "Invalid --default-user '%s': %m", optarg);
                        m->default_uid = u.uid;
                        break;
                }
                case '?':
                        return -EINVAL;
                default:
                        abort();
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "%s takes no positional arguments.",
                                       program_invocation_short_name);
        return 1;
}

/* Children get fds 0..2 by dup2() from fds above 2: make sure 0..2 are never handed out for
 * anything else. */
static int ensure_std_fds(void) {
        for (int i = 0; i < 3; i++)
                if (fcntl(i, F_GETFD) < 0) {
                        int fd = open("/dev/null", O_RDWR);

                        if (fd < 0)
                                return -errno;
                        if (fd != i)
                                return -EBADF;
                }
        return 0;
}

static void raise_nofile(void) {
        struct rlimit rl;

        /* Every session holds several fds; children get the usual 1024 back. */
        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int on_exit_signal(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) sd_notify(false, "STOPPING=1");
        log_info("Received SIG%s, exiting.", sigabbrev_np((int) si->ssi_signo) ?: "?");
        return sd_event_exit(m->event, 0);
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r, n;

        r = ensure_std_fds();
        if (r < 0)
                return log_error_errno(r, "Cannot set up fds 0..2: %m");
        raise_nofile();
        /* A client that goes away mid-write must not kill us. */
        (void) signal(SIGPIPE, SIG_IGN);
        r = spawn_init();
        if (r < 0)
                return log_error_errno(r, "Cannot reserve fds for spawning: %m");

        r = manager_new(&m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up: %m");
        r = parse_argv(m, argc, argv);
        if (r <= 0)
                return r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "sigprocmask() failed: %m");
        (void) sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
        (void) sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
        (void) sd_event_add_signal(m->event, NULL, SIGHUP, on_exit_signal, m);

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Cannot take the sockets from systemd: %m");
        for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
                r = listener_new_fd(m, fd);
                if (r < 0)
                        return log_error_errno(r, "Cannot serve socket fd %i: %m", fd);
        }
        for (size_t i = 0; i < arg_n_listen; i++) {
                r = listener_new_address(m, arg_listen[i]);
                if (r < 0)
                        return r;
        }

        if (m->use_bus) {
                r = manager_connect_bus(m);
                if (r < 0) {
                        if (!m->listeners)
                                return log_error_errno(r, "Cannot connect to the system bus: %m");
                        log_notice_errno(r, "No system bus (%m), serving only the sockets.");
                        m->bus = sd_bus_flush_close_unref(m->bus);
                }
        } else if (!m->listeners)
                return log_error_errno(EINVAL, "Nothing to serve: --no-bus and no socket.");

        r = manager_run(m);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        strv_free(arg_listen);
        user_cache_done();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
