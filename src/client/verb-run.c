/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl run: runs a command to its end in one Run call, then prints its output and exits as it did. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec-options.h"
#include "sandboxctl.h"

/* What the daemon takes as stdin-data (EXEC_STDIN_DATA_MAX there). */
#define RUN_STDIN_MAX (1024U * 1024U)

typedef struct RunInfo {
        const char *end_reason;
        uint64_t bytes[2];
        int truncated[2];
        bool have_bytes[2];
} RunInfo;

/* Reads our standard input to its end, up to RUN_STDIN_MAX bytes: -EFBIG past that. */
static int read_stdin(char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = malloc(RUN_STDIN_MAX + 1);
        size_t size = 0;

        if (!buf)
                return -ENOMEM;
        while (size <= RUN_STDIN_MAX) {
                ssize_t n = read(STDIN_FILENO, buf + size, RUN_STDIN_MAX + 1 - size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        if (size > RUN_STDIN_MAX)
                return -EFBIG;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

static int read_info(sd_bus_message *reply, RunInfo *info) {
        static const char *const streams[2] = { "stdout", "stderr" };
        const char *key;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                bool done = false;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "end-reason")) {
                        r = sd_bus_message_read(reply, "v", "s", &info->end_reason);
                        done = true;
                }
                for (int i = 0; i < 2 && !done; i++) {
                        const char *rest = startswith(key, streams[i]);

                        if (rest && streq(rest, "-bytes")) {
                                r = sd_bus_message_read(reply, "v", "t", &info->bytes[i]);
                                info->have_bytes[i] = r >= 0;
                                done = true;
                        } else if (rest && streq(rest, "-truncated")) {
                                r = sd_bus_message_read(reply, "v", "b", &info->truncated[i]);
                                done = true;
                        }
                }
                if (!done)
                        r = sd_bus_message_skip(reply, "v");
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

int verb_run(Context *ctx, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(exec_args_done) ExecArgs args = { .run = true };
        _cleanup_free_ char *input = NULL;
        const void *data[2];
        size_t size[2];
        bool pass_fd[3] = {};
        RunInfo info = {};
        int32_t code, sig;
        int r;

        r = exec_args_parse(argc, argv, &args);
        if (r <= 0)
                return r == 0 ? 0 : r == -EINVAL ? EXIT_USAGE : EXIT_FAILED;

        if (context_connect(ctx) < 0)
                return EXIT_FAILED;

        /* Nothing is relayed while Run runs. A terminal is never handed over (see exec), and nobody
         * would type into it: the command gets end of file at once. A file or pipe is handed over
         * where fds pass, so input of any size streams; elsewhere it is read first, to its end, and
         * sent with the call. */
        if (isatty(STDIN_FILENO) > 0)
                args.have_stdin_data = true;
        else if (sd_bus_can_send(ctx->bus, SD_BUS_TYPE_UNIX_FD) > 0)
                pass_fd[STDIN_FILENO] = true;
        else {
                r = read_stdin(&input, &args.stdin_data_size);
                if (r == -EFBIG) {
                        log_error_errno(r, "standard input is larger than %u bytes, more than run can send "
                                        "over this connection; use exec", RUN_STDIN_MAX);
                        return EXIT_FAILED;
                }
                if (r < 0) {
                        log_error_errno(r, "failed to read standard input: %m");
                        return EXIT_FAILED;
                }
                args.have_stdin_data = true;
                args.stdin_data = input;
        }

        r = sd_bus_message_new_method_call(ctx->bus, &m, ctx->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE,
                                           "Run");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, args.command);
        if (r >= 0)
                r = exec_args_append_options(m, &args, pass_fd, 0);
        if (r < 0) {
                log_error_errno(r, "failed to build the Run call: %m");
                return EXIT_FAILED;
        }

        /* The reply comes when the command has ended, however long that takes. */
        r = sd_bus_call(ctx->bus, m, UINT64_MAX, &error, &reply);
        if (r < 0) {
                if (context_explain_wrong_address(ctx, &error))
                        return EXIT_FAILED;
                return log_bus_error(&error, true, "failed to run '%s'", args.command[0]);
        }

        r = sd_bus_message_read(reply, "ii", &code, &sig);
        for (int i = 0; r >= 0 && i < 2; i++)
                r = sd_bus_message_read_array(reply, 'y', &data[i], &size[i]);
        if (r >= 0)
                r = read_info(reply, &info);
        if (r < 0) {
                log_error_errno(r, "failed to parse the reply to Run: %m");
                return EXIT_FAILED;
        }

        for (int i = 0; i < 2; i++) {
                r = write_all(i == 0 ? STDOUT_FILENO : STDERR_FILENO, data[i], size[i]);
                if (r < 0 && r != -EPIPE) {
                        log_error_errno(r, "failed to write the command's output: %m");
                        return EXIT_FAILED;
                }
        }

        /* What the output alone does not tell: that some of it is missing, or why the command ended. */
        for (int i = 0; i < 2; i++)
                if (info.truncated[i] && info.have_bytes[i])
                        fprintf(stderr, "sandboxctl: '%s' wrote %" PRIu64 " bytes to %s, only the first %zu "
                                "are shown (--max-output=)\n", args.command[0], info.bytes[i],
                                i == 0 ? "stdout" : "stderr", size[i]);
                else if (info.truncated[i])
                        fprintf(stderr, "sandboxctl: '%s' wrote more to %s than is shown (--max-output=)\n",
                                args.command[0], i == 0 ? "stdout" : "stderr");
        if (info.end_reason && !streq(info.end_reason, "exited") && !streq(info.end_reason, "signaled"))
                fprintf(stderr, "sandboxctl: '%s' ended: %s\n", args.command[0], info.end_reason);

        return code >= 0 ? code & 0xff : 128 + sig;
}
