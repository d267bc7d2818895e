/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl signal: sends a signal, given by number or name, to a session's process group. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "sandboxctl.h"

int verb_signal(Context *ctx, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char name[16];
        uint32_t id;
        int r, sig;

        r = parse_verb_argv(argc, argv);
        if (r <= 0)
                return r == 0 ? 0 : EXIT_USAGE;
        if (argc - optind != 2)
                return log_usage_error("signal takes a session ID and a signal");

        if (parse_u32(argv[optind], &id) < 0)
                return log_usage_error("invalid session ID '%s'", argv[optind]);
        sig = signal_from_string(argv[optind + 1]);
        if (sig < 0)
                return log_usage_error("unknown signal '%s'", argv[optind + 1]);

        if (context_connect(ctx) < 0)
                return EXIT_FAILED;

        r = sd_bus_call_method(ctx->bus, ctx->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "Signal",
                               &error, NULL, "ui", id, (int32_t) sig);
        if (r < 0) {
                if (context_explain_wrong_address(ctx, &error))
                        return EXIT_FAILED;
                return log_bus_error(&error, false, "failed to send signal %s to session %" PRIu32,
                                     signal_to_string(sig, name), id);
        }
        return 0;
}
