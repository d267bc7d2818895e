/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl: global options, the connection to sandboxd, and dispatch to the verbs. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandboxctl.h"

typedef enum Transport {
        TRANSPORT_SYSTEM,
        TRANSPORT_BUS_ADDRESS,  /* a bus daemon at a given address: Hello, routing by name */
        TRANSPORT_PEER,         /* peer-to-peer with sandboxd itself: no Hello, no destination */
} Transport;

static Transport arg_transport = TRANSPORT_SYSTEM;
static const char *arg_address = NULL;

static const struct {
        const char *name;
        verb_func_t func;
} verbs[] = {
        { "exec",   verb_exec },
        { "list",   verb_list },
        { "signal", verb_signal },
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
                {}
        };
        int c;

        opterr = 0;
        /* '+': stop at the verb; its options are its own. */
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case ARG_VERSION:
                        printf("sandboxctl %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_SYSTEM:
                        arg_transport = TRANSPORT_SYSTEM;
                        arg_address = NULL;
                        break;
                case ARG_ADDRESS:
                case ARG_BUS_ADDRESS:
                        if (optarg[0] == 0) {
                                log_usage_error("empty address");
                                return -EINVAL;
                        }
                        arg_transport = c == ARG_ADDRESS ? TRANSPORT_PEER : TRANSPORT_BUS_ADDRESS;
                        arg_address = optarg;
                        break;
                default:
                        log_getopt_error(c, argv);
                        return -EINVAL;
                }

        if (optind >= argc) {
                log_usage_error("missing verb");
                return -EINVAL;
        }
        return 1;
}

static int connect_bus(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (arg_transport == TRANSPORT_SYSTEM) {
                /* Honours DBUS_SYSTEM_BUS_ADDRESS. */
                r = sd_bus_open_system(&bus);
                if (r < 0)
                        return log_error_errno(r, "failed to connect to the system bus: %m");
        } else {
                r = sd_bus_new(&bus);
                if (r < 0)
                        return log_error_errno(r, "failed to allocate a bus connection: %m");
                r = sd_bus_set_address(bus, arg_address);
                if (r < 0)
                        return log_error_errno(r, "invalid address '%s': %m", arg_address);
                r = sd_bus_set_bus_client(bus, arg_transport == TRANSPORT_BUS_ADDRESS);
                if (r < 0)
                        return log_error_errno(r, "failed to set up the connection: %m");
                r = sd_bus_negotiate_fds(bus, true);
                if (r < 0)
                        return log_error_errno(r, "failed to set up the connection: %m");
                r = sd_bus_start(bus);
                if (r < 0)
                        return log_error_errno(r, "failed to connect to %s: %m", arg_address);
                /* Some transports (tcp:) connect in the background: wait, so a failure is named here. */
                r = sd_bus_get_bus_id(bus, &(sd_id128_t) {});
                if (r < 0)
                        return log_error_errno(r, "failed to connect to %s: %m", arg_address);
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
        ctx->destination = arg_transport == TRANSPORT_PEER ? NULL : SANDBOX_SERVICE;
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
                        SANDBOX_SERVICE);
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
