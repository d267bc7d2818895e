/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl: global options, the connection to sandboxd, and dispatch to the verbs. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connect.h"
#include "sandboxctl.h"

typedef enum Transport {
        TRANSPORT_SYSTEM,
        TRANSPORT_BUS_ADDRESS,  /* a bus daemon at a given address: Hello, routing by name */
        TRANSPORT_PEER,         /* peer-to-peer with sandboxd itself: no Hello, no destination */
        TRANSPORT_MACHINE,      /* the system bus of a local container, through systemd-machined */
} Transport;

/* sandboxd's own socket on a host, which -H reaches when nothing else is named. */
#define DEFAULT_PEER_ADDRESS "unix:path=/run/sandboxd/io.socket"
/* For sandboxd behind vsock to answer authentication: time for systemd to start it in a slow guest. */
#define AUTH_TIMEOUT_USEC (10U * 1000000U)

static Transport arg_transport = TRANSPORT_SYSTEM;
static bool arg_system = false;         /* --system given: with -H, the remote system bus */
static const char *arg_address = NULL;
static const char *arg_host = NULL;
static const char *arg_machine = NULL;
static OwnAddress arg_own_address = {};
static bool arg_own = false;            /* arg_address is one sandboxctl connects itself */

static const struct {
        const char *name;
        verb_func_t func;
} verbs[] = {
        { "exec",      verb_exec },
        { "run",       verb_run },
        { "shell",     verb_shell },
        { "list",      verb_list },
        { "status",    verb_status },
        { "wait",      verb_wait },
        { "signal",    verb_signal },
        { "kill",      verb_kill },
        { "terminate", verb_terminate },
};

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SYSTEM,
                ARG_ADDRESS,
                ARG_BUS_ADDRESS,
        };
        static const struct option options[] = {
                { "help",        no_argument,       NULL, 'h' },
                { "version",     no_argument,       NULL, ARG_VERSION },
                { "system",      no_argument,       NULL, ARG_SYSTEM },
                { "address",     required_argument, NULL, ARG_ADDRESS },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "host",        required_argument, NULL, 'H' },
                { "machine",     required_argument, NULL, 'M' },
                {}
        };
        int c, r;

        opterr = 0;
        /* '+': stop at the verb; its options are its own. */
        while ((c = getopt_long(argc, argv, "+:hH:M:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case ARG_VERSION:
                        printf("sandboxctl %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_SYSTEM:
                        arg_transport = TRANSPORT_SYSTEM;
                        arg_system = true;
                        arg_address = NULL;
                        break;
                case ARG_ADDRESS:
                case ARG_BUS_ADDRESS:
                        if (optarg[0] == 0) {
                                log_usage_error("empty address");
                                return -EINVAL;
                        }
                        arg_transport = c == ARG_ADDRESS ? TRANSPORT_PEER : TRANSPORT_BUS_ADDRESS;
                        arg_system = false;
                        arg_address = optarg;
                        break;
                case 'H':
                        r = ssh_host_check(optarg);
                        if (r < 0)
                                return r;
                        arg_host = optarg;
                        break;
                case 'M':
                        if (optarg[0] == 0) {
                                log_usage_error("empty machine name");
                                return -EINVAL;
                        }
                        arg_transport = TRANSPORT_MACHINE;
                        arg_machine = optarg;
                        arg_address = NULL;
                        break;
                default:
                        log_getopt_error(c, argv);
                        return -EINVAL;
                }

        if (arg_host && arg_transport == TRANSPORT_MACHINE) {
                log_usage_error("-H and -M cannot be combined");
                return -EINVAL;
        }
        if (arg_host && arg_transport == TRANSPORT_SYSTEM && !arg_system) {
                /* -H alone: the remote sandboxd's own socket, as ssh's user there (root's socket). */
                arg_transport = TRANSPORT_PEER;
                arg_address = DEFAULT_PEER_ADDRESS;
        }
        if (!arg_host && arg_address) {
                r = own_address_parse(arg_address, &arg_own_address);
                if (r < 0)
                        return r;
                arg_own = r > 0;
        }

        if (optind >= argc) {
                log_usage_error("missing verb");
                return -EINVAL;
        }
        return 1;
}

/* What error messages call the other end. */
static const char *connection_name(void) {
        if (arg_host)
                return arg_host;
        if (arg_transport == TRANSPORT_MACHINE)
                return arg_machine;
        return arg_address;
}

/* Lets the server authenticate us within timeout_usec: sd-bus alone waits 90 s for one that never
 * answers. Returns 0 once the connection is up or has failed (sd-bus then says how), -ETIMEDOUT. */
static int bus_wait_authenticated(sd_bus *bus, uint64_t timeout_usec) {
        struct timespec ts;
        uint64_t deadline;
        int r;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        deadline = (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U + timeout_usec;
        for (;;) {
                uint64_t now_usec;

                if (sd_bus_is_ready(bus) != 0)
                        return 0;
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 0;
                if (r > 0)
                        continue;
                (void) clock_gettime(CLOCK_MONOTONIC, &ts);
                now_usec = (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
                if (now_usec >= deadline)
                        return -ETIMEDOUT;
                r = sd_bus_wait(bus, deadline - now_usec);
                if (r < 0)
                        return 0;
        }
}

static int connect_bus(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        bool fds = true;
        int r;

        if (arg_transport == TRANSPORT_SYSTEM && !arg_host) {
                /* Honours DBUS_SYSTEM_BUS_ADDRESS. */
                r = sd_bus_open_system(&bus);
                if (r < 0)
                        return log_error_errno(r, "failed to connect to the system bus: %m");
        } else if (arg_transport == TRANSPORT_MACHINE) {
                /* sd-bus enters the container's namespaces to connect its bus socket: fds pass. */
                r = sd_bus_open_system_machine(&bus, arg_machine);
                if (r < 0)
                        return log_error_errno(r, "failed to connect to the system bus of machine "
                                               "'%s': %m%s", arg_machine,
                                               r == -EHOSTDOWN || r == -ENXIO || r == -ENOENT ?
                                               " (not a running machine: see machinectl list)" : "");
        } else {
                r = sd_bus_new(&bus);
                if (r < 0)
                        return log_error_errno(r, "failed to allocate a bus connection: %m");

                if (arg_host) {
                        /* As systemctl -H: ssh runs systemd-stdio-bridge there, which connects to
                         * sandboxd's socket (or the bus) and forwards bytes. We run ssh ourselves,
                         * not through a unixexec: address, so that Ctrl-C leaves it alone. */
                        const char *remote = arg_transport == TRANSPORT_SYSTEM ? NULL : arg_address;
                        int fd = ssh_connect(arg_host, remote);

                        if (fd < 0)
                                return fd;
                        r = sd_bus_set_fd(bus, fd, fd);
                        if (r < 0) {
                                (void) close(fd);
                                return log_error_errno(r, "failed to set up the connection: %m");
                        }
                        fds = false;
                } else if (arg_own) {
                        int fd = own_address_connect(&arg_own_address, arg_address);

                        if (fd < 0)
                                return fd;
                        r = sd_bus_set_fd(bus, fd, fd);
                        if (r < 0) {
                                (void) close(fd);
                                return log_error_errno(r, "failed to set up the connection: %m");
                        }
                        /* sd-bus authenticates with EXTERNAL and no uid ("whatever the transport
                         * says"), not ANONYMOUS: sandboxd takes it on vsock, which carries no
                         * credentials (the peer is its default user), and on a unix socket that
                         * stands in for a multiplexer too, where it takes EXTERNAL only. */
                        fds = false;
                } else {
                        r = sd_bus_set_address(bus, arg_address);
                        fds = !address_runs_program(arg_address);
                }
                if (r < 0)
                        return log_error_errno(r, "invalid address '%s': %m", connection_name());
                r = sd_bus_set_bus_client(bus, arg_transport != TRANSPORT_PEER);
                if (r < 0)
                        return log_error_errno(r, "failed to set up the connection: %m");
                /* Where the socket is not the daemon's own (a relaying program, a vsock multiplexer),
                 * fds sent would be dropped on the way, and the message with them lost: then the
                 * verbs relay the streams over D-Bus instead. */
                r = sd_bus_negotiate_fds(bus, fds);
                if (r < 0)
                        return log_error_errno(r, "failed to set up the connection: %m");
                r = sd_bus_start(bus);
                /* Past the socket's connect (and a multiplexer's answer), sandboxd answers at once, or
                 * as soon as systemd has started it: one that does not is stuck or not sandboxd. */
                if (r >= 0 && arg_own && bus_wait_authenticated(bus, AUTH_TIMEOUT_USEC) < 0) {
                        /* Closed first: flushing, on the way out, would wait for the authentication. */
                        sd_bus_close(bus);
                        return log_error_errno(-ETIMEDOUT, "failed to connect to %s: no D-Bus answer within "
                                               "%d s", arg_address, (int) (AUTH_TIMEOUT_USEC / 1000000U));
                }
                /* Some transports (tcp:) connect in the background: wait, so a failure is named here. */
                if (r >= 0)
                        r = sd_bus_get_bus_id(bus, &(sd_id128_t) {});
                if (r < 0 && arg_host)
                        /* ssh has said what it knows; the bridge at the other end may have said nothing. */
                        return log_error_errno(r, "failed to connect to %s over ssh "
                                               "(systemd-stdio-bridge%s%s there): %m", arg_host,
                                               arg_address ? " --bus-path=" : "", strempty(arg_address));
                if (r < 0)
                        return log_error_errno(r, "failed to connect to %s: %m", connection_name());
        }

        /* A person at a terminal can answer a polkit agent's question; give the daemon the time. */
        if (arg_transport != TRANSPORT_PEER && isatty(STDIN_FILENO) > 0) {
                (void) sd_bus_set_allow_interactive_authorization(bus, true);
                (void) sd_bus_set_method_call_timeout(bus, 120 * 1000000ULL);
        }

        *ret = TAKE_PTR(bus);
        return 0;
}

static void context_done(Context *ctx) {
        ctx->bus = sd_bus_flush_close_unref(ctx->bus);
        own_address_done(&arg_own_address);
}

/* The command's fds 0, 1 and 2 are passed on: make sure they are something, so that the numbers
 * are not taken by our own sockets. */
static void ensure_std_fds(void) {
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
                        int nfd = open("/dev/null", O_RDWR);

                        if (nfd >= 0 && nfd != fd)
                                (void) close(nfd);
                }
}

int context_connect(Context *ctx) {
        int r;

        r = connect_bus(&ctx->bus);
        if (r < 0)
                return r;
        ctx->destination = arg_transport == TRANSPORT_PEER ? NULL : SANDBOX_BUS_NAME;
        return 0;
}

bool context_explain_wrong_address(Context *ctx, const sd_bus_error *error) {
        _cleanup_(sd_bus_error_free) sd_bus_error probe_error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        /* Without Hello and a destination, a bus daemon takes our calls as meant for itself and
         * answers that it has no such method. */
        if (arg_transport != TRANSPORT_PEER || !ctx->bus ||
            !sd_bus_error_has_names(error, SD_BUS_ERROR_UNKNOWN_METHOD, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                    SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_SERVICE_UNKNOWN))
                return false;

        /* A bus answers nothing but Hello before it, so say Hello first. sandboxd's sockets answer
         * Hello and the match calls as a bus driver would (for clients that believe they are on a
         * bus), but not GetId: an answer to that comes from a real bus. */
        if (sd_bus_call_method(ctx->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "Hello", &probe_error, NULL, "") < 0)
                return false;
        if (sd_bus_call_method(ctx->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetId", &probe_error, &reply, "") < 0)
                return false;

        log_error_errno(0, "%s is the address of a D-Bus bus, not of sandboxd's peer-to-peer socket: "
                        "use --bus-address=%s to reach %s on that bus", arg_address, arg_address,
                        SANDBOX_BUS_NAME);
        return true;
}

int main(int argc, char *argv[]) {
        _cleanup_(context_done) Context ctx = {};
        int r, verb;

        ensure_std_fds();

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r == 0 ? 0 : EXIT_USAGE;

        verb = optind;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, argv[verb]) == 0) {
                        /* The verb parses its own options, with its name as argv[0]. */
                        optind = 0;
                        return verbs[i].func(&ctx, argc - verb, argv + verb);
                }

        return log_usage_error("unknown verb '%s'", argv[verb]);
}
