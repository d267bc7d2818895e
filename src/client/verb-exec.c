/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl exec: runs a command as a session and behaves like it: streams, terminal, exit status. */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "exec-options.h"
#include "sandboxctl.h"

/* Output we let the daemon send ahead of what we have written out: large enough to keep the pipe
 * full, small enough that a slow reader makes the command block rather than the bus queue grow. */
#define OUTPUT_WINDOW (1024U * 1024U)
#define STDIN_CHUNK (64U * 1024U)

typedef struct Exec {
        Context *ctx;
        const ExecArgs *args;
        sd_event *event;
        sd_bus_slot *match_slot, *filter_slot, *exec_slot;
        sd_event_source *signal_sources[5];
        sd_event_source *stdin_source;
        sd_event_source *stdin_retry;
        char stdin_buf[STDIN_CHUNK];    /* the chunk in flight, kept until the daemon has queued it */
        size_t stdin_size;
        char stdin_next[STDIN_CHUNK];   /* read since, to be sent next */
        size_t stdin_next_size;
        uint64_t stdin_retry_usec;
        bool stdin_in_flight;
        bool stdin_eof;         /* read to its end: CloseStdin once stdin_next is sent */
        bool stdin_closed;
        bool stdin_stopped;     /* the session takes no more input */

        /* ssh's escapes (~. ~? ~~), with --tty */
        bool line_start;        /* the last key sent was Enter, or none was */
        bool escape_pending;    /* the escape character was typed at the start of a line */
        bool disconnected;      /* ~. */

        bool pass_fd[3];        /* our fd N is handed to the daemon; the others are relayed over D-Bus */
        bool relay_output;      /* some Output signals are expected: flow control with Ack */

        bool have_id;
        uint32_t id;
        char *daemon;           /* unique name that replied to Exec; NULL on a peer-to-peer link */
        sd_bus_message **early; /* our signals that came before the Exec reply */
        size_t n_early;

        bool done;
        int exit_status;

        bool raw;
        struct termios saved_termios;
        bool resize_pending;
        int forwarded_signal;
        bool sigpipe_sent;
        bool output_broken[3];
} Exec;

static void exec_restore_terminal(Exec *e) {
        if (!e->raw)
                return;
        (void) tcsetattr(STDIN_FILENO, TCSANOW, &e->saved_termios);
        e->raw = false;
}

/* Every way out of the loop goes through here, so the terminal is restored on each of them. */
static void exec_finish(Exec *e, int status) {
        exec_restore_terminal(e);
        if (e->done)
                return;
        e->done = true;
        e->exit_status = status;
        (void) sd_event_exit(e->event, 0);
}

static void exec_done(Exec *e) {
        exec_restore_terminal(e);
        for (size_t i = 0; i < ELEMENTSOF(e->signal_sources); i++)
                e->signal_sources[i] = sd_event_source_disable_unref(e->signal_sources[i]);
        e->stdin_source = sd_event_source_disable_unref(e->stdin_source);
        e->stdin_retry = sd_event_source_disable_unref(e->stdin_retry);
        e->exec_slot = sd_bus_slot_unref(e->exec_slot);
        e->match_slot = sd_bus_slot_unref(e->match_slot);
        e->filter_slot = sd_bus_slot_unref(e->filter_slot);
        for (size_t i = 0; i < e->n_early; i++)
                sd_bus_message_unref(e->early[i]);
        free(e->early);
        free(e->daemon);
        if (e->ctx->bus)
                (void) sd_bus_detach_event(e->ctx->bus);
        e->event = sd_event_unref(e->event);
}

/* Sends a method call about our session whose reply, if any, goes to callback (NULL: no reply wanted). */
static int exec_call(Exec *e, const char *member, sd_bus_message_handler_t callback,
                     const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(e->ctx->bus, &m, e->ctx->destination, SANDBOX_OBJECT_PATH,
                                           SANDBOX_INTERFACE, member);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r < 0)
                return r;

        if (!callback) {
                r = sd_bus_message_set_expect_reply(m, false);
                if (r < 0)
                        return r;
                return sd_bus_send(e->ctx->bus, m, NULL);
        }
        return sd_bus_call_async(e->ctx->bus, NULL, m, callback, e, 0);
}

static void exec_send_resize(Exec *e) {
        struct winsize ws = {};

        e->resize_pending = false;
        if (!terminal_get_size(&ws))
                return;
        /* A failure (the session just ended) changes nothing worth reporting. */
        (void) exec_call(e, "Resize", NULL, "uqq", e->id, (uint16_t) ws.ws_row, (uint16_t) ws.ws_col);
}

static void exec_stop_stdin(Exec *e) {
        e->stdin_stopped = true;
        e->stdin_source = sd_event_source_disable_unref(e->stdin_source);
        e->stdin_retry = sd_event_source_disable_unref(e->stdin_retry);
}

static int on_write_stdin_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

static int exec_send_stdin(Exec *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(e->ctx->bus, &m, e->ctx->destination, SANDBOX_OBJECT_PATH,
                                           SANDBOX_INTERFACE, "WriteStdin");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "u", e->id);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(m, 'y', e->stdin_buf, e->stdin_size);
        if (r < 0)
                return r;
        return sd_bus_call_async(e->ctx->bus, NULL, m, on_write_stdin_reply, e, 0);
}

/* One chunk in flight at a time, kept until the daemon has queued it; what is read meanwhile waits
 * in stdin_next, and once that is full we stop reading. Reading on while a chunk is in flight is what
 * lets the escape keys work when the other end hangs. At the end of input, CloseStdin follows the
 * last chunk. */
static void exec_flush_stdin(Exec *e) {
        int r;

        if (!e->have_id || e->stdin_in_flight || e->stdin_stopped)
                return;
        if (e->stdin_next_size == 0) {
                if (e->stdin_eof && !e->stdin_closed) {
                        e->stdin_closed = true;
                        (void) exec_call(e, "CloseStdin", NULL, "u", e->id);
                }
                return;
        }

        memcpy(e->stdin_buf, e->stdin_next, e->stdin_next_size);
        e->stdin_size = e->stdin_next_size;
        e->stdin_next_size = 0;
        r = exec_send_stdin(e);
        if (r < 0) {
                log_error_errno(r, "failed to send input: %m");
                exec_stop_stdin(e);
                return;
        }
        e->stdin_in_flight = true;
        if (e->stdin_source)
                (void) sd_event_source_set_enabled(e->stdin_source, SD_EVENT_ON);
}

static int on_stdin_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Exec *e = userdata;
        int r;

        e->stdin_retry = sd_event_source_unref(e->stdin_retry);
        r = exec_send_stdin(e);
        if (r < 0) {
                log_error_errno(r, "failed to send input: %m");
                exec_stop_stdin(e);
        }
        return 0;
}

static int on_write_stdin_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Exec *e = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(m);
        int r;

        if (e->stdin_stopped)
                return 0;

        if (sd_bus_error_has_name(error, SD_BUS_ERROR_LIMITS_EXCEEDED)) {
                /* The daemon's queue for the command's stdin is full: the command is not reading.
                 * Nothing says when it drains, so try the same chunk again a little later. */
                e->stdin_retry_usec = MIN(MAX(e->stdin_retry_usec * 2, 5000U), 200000U);
                r = sd_event_add_time_relative(e->event, &e->stdin_retry, CLOCK_MONOTONIC,
                                               e->stdin_retry_usec, 0, on_stdin_retry, e);
                if (r < 0) {
                        log_error_errno(r, "failed to schedule input: %m");
                        exec_stop_stdin(e);
                }
                return 0;
        }

        /* The session no longer takes input (it ended, or closed its stdin): stop reading ours. */
        if (error) {
                exec_stop_stdin(e);
                return 0;
        }

        e->stdin_retry_usec = 0;
        e->stdin_in_flight = false;
        exec_flush_stdin(e);
        return 0;
}

static void exec_escape_help(Exec *e) {
        char c = (char) e->args->escape_char;

        /* The terminal is raw: each line ends in "\r\n". */
        fprintf(stderr, "%c?\r\nSupported escape sequences:\r\n"
                " %c.   - disconnect: end sandboxctl; the session is hung up\r\n"
                " %c?   - this message\r\n"
                " %c%c   - send the escape character by typing it twice\r\n"
                "(Note that escapes are only recognized immediately after newline.)\r\n", c, c, c, c, c);
}

static void exec_escape_disconnect(Exec *e) {
        e->disconnected = true;
        exec_stop_stdin(e);
        exec_finish(e, EXIT_CONNECTION_LOST);
        fprintf(stderr, "%c.\nsandboxctl: disconnected", e->args->escape_char);
        if (e->have_id)
                fprintf(stderr, "; session %" PRIu32 " is hung up as its owner went away", e->id);
        fputc('\n', stderr);
}

/* Appends what was read to stdin_next, taking out ssh's escapes: the escape character right after
 * Enter (or first of all) starts one. Returns false when sandboxctl is to end. */
static bool exec_take_input(Exec *e, const char *buf, size_t n) {
        int esc = e->args->tty ? e->args->escape_char : -1;

        for (size_t i = 0; i < n; i++) {
                char c = buf[i];

                if (esc < 0) {
                        e->stdin_next[e->stdin_next_size++] = c;
                        continue;
                }
                if (e->escape_pending) {
                        e->escape_pending = false;
                        if (c == '.') {
                                exec_escape_disconnect(e);
                                return false;
                        }
                        if (c == '?') {
                                /* Still at the start of a line, as ssh: another escape may follow. */
                                exec_escape_help(e);
                                continue;
                        }
                        /* Not an escape: the held-back character goes out, once for "~~". */
                        if (c != (char) esc)
                                e->stdin_next[e->stdin_next_size++] = (char) esc;
                } else if (e->line_start && c == (char) esc) {
                        e->escape_pending = true;
                        continue;
                }
                e->line_start = c == '\r' || c == '\n';
                e->stdin_next[e->stdin_next_size++] = c;
        }
        return true;
}

static int exec_read_stdin(Exec *e) {
        size_t room = sizeof e->stdin_next - e->stdin_next_size;
        char buf[STDIN_CHUNK];
        ssize_t n;

        /* One byte kept free: a held-back escape character can come out with the next one. */
        if (room < 2) {
                (void) sd_event_source_set_enabled(e->stdin_source, SD_EVENT_OFF);
                return 0;
        }
        n = read(STDIN_FILENO, buf, room - 1);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0) {
                /* A read error (a terminal hung up) is the end of input too, but no EOF to pass on. */
                exec_stop_stdin(e);
                return 0;
        }
        if (n == 0) {
                /* EOF: pass it on, after what is still to be sent. */
                if (e->escape_pending)
                        e->stdin_next[e->stdin_next_size++] = (char) e->args->escape_char;
                e->escape_pending = false;
                e->stdin_eof = true;
                e->stdin_source = sd_event_source_disable_unref(e->stdin_source);
                exec_flush_stdin(e);
                return 0;
        }

        if (!exec_take_input(e, buf, (size_t) n))
                return 0;
        if (sizeof e->stdin_next - e->stdin_next_size < 2)
                (void) sd_event_source_set_enabled(e->stdin_source, SD_EVENT_OFF);
        exec_flush_stdin(e);
        return 0;
}

static int on_stdin_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return exec_read_stdin(userdata);
}

static int on_stdin_defer(sd_event_source *s, void *userdata) {
        return exec_read_stdin(userdata);
}

static int exec_start_stdin(Exec *e) {
        int r;

        r = sd_event_add_io(e->event, &e->stdin_source, STDIN_FILENO, EPOLLIN, on_stdin_io, e);
        if (r == -EPERM)
                /* A regular file or /dev/null cannot be polled, and is always readable. */
                r = sd_event_add_defer(e->event, &e->stdin_source, on_stdin_defer, e);
        if (r < 0)
                return log_error_errno(r, "failed to watch standard input: %m");
        return 0;
}

static void exec_handle_output(Exec *e, sd_bus_message *m) {
        const void *data;
        uint32_t id, stream;
        size_t size;
        int fd, r;

        if (sd_bus_message_read(m, "uu", &id, &stream) < 0 ||
            sd_bus_message_read_array(m, 'y', &data, &size) < 0)
                return;
        if (id != e->id)
                return;

        fd = stream == 2 ? STDERR_FILENO : STDOUT_FILENO;
        if (!e->output_broken[fd]) {
                r = write_all(fd, data, size);
                if (r == -EPIPE) {
                        /* Our reader went away: the command would have got SIGPIPE, so let it. */
                        e->output_broken[fd] = true;
                        if (!e->sigpipe_sent) {
                                e->sigpipe_sent = true;
                                (void) exec_call(e, "Signal", NULL, "ui", e->id, (int32_t) SIGPIPE);
                        }
                } else if (r < 0) {
                        e->output_broken[fd] = true;
                        log_error_errno(r, "failed to write the command's output: %m");
                }
        }

        /* Written (or dropped): the daemon may send this much more. */
        if (e->relay_output)
                (void) exec_call(e, "Ack", NULL, "ut", e->id, (uint64_t) size);
}

static void exec_handle_exited(Exec *e, sd_bus_message *m) {
        int32_t code, sig;
        uint32_t id;

        if (sd_bus_message_read(m, "uii", &id, &code, &sig) < 0 || id != e->id)
                return;
        exec_finish(e, code >= 0 ? code & 0xff : 128 + sig);
}

static void exec_handle_signal(Exec *e, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);

        if (e->done)
                return;
        /* Signals are unicast to us, but anyone on a bus could send one: only the daemon counts. */
        if (e->daemon && (!sender || strcmp(sender, e->daemon) != 0))
                return;
        (void) sd_bus_message_rewind(m, true);

        if (sd_bus_message_is_signal(m, SANDBOX_INTERFACE, "Output"))
                exec_handle_output(e, m);
        else if (sd_bus_message_is_signal(m, SANDBOX_INTERFACE, "Exited"))
                exec_handle_exited(e, m);
}

static int on_session_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Exec *e = userdata;
        sd_bus_message **early;

        if (e->have_id) {
                exec_handle_signal(e, m);
                return 0;
        }

        /* The id is not known before the Exec reply: keep everything until then, in order. */
        early = realloc(e->early, (e->n_early + 1) * sizeof(sd_bus_message *));
        if (!early)
                return log_error_errno(-ENOMEM, "out of memory");
        e->early = early;
        e->early[e->n_early++] = sd_bus_message_ref(m);
        return 0;
}

static int on_exec_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Exec *e = userdata;
        const char *sender;
        uint32_t pid;
        int r;

        e->exec_slot = sd_bus_slot_unref(e->exec_slot);

        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *error = sd_bus_message_get_error(m);

                exec_restore_terminal(e);
                if (context_explain_wrong_address(e->ctx, error))
                        exec_finish(e, EXIT_FAILED);
                else
                        exec_finish(e, log_bus_error(error, true, "failed to run '%s'",
                                                     e->args->command[0]));
                return 0;
        }

        r = sd_bus_message_read(m, "uu", &e->id, &pid);
        if (r < 0) {
                exec_restore_terminal(e);
                log_error_errno(r, "failed to parse the reply to Exec: %m");
                /* The command may be running and is gone with our connection. */
                exec_finish(e, EXIT_CONNECTION_LOST);
                return 0;
        }
        e->have_id = true;

        sender = sd_bus_message_get_sender(m);
        if (sender) {
                e->daemon = strdup(sender);
                if (!e->daemon) {
                        exec_restore_terminal(e);
                        log_error_errno(-ENOMEM, "out of memory");
                        exec_finish(e, EXIT_CONNECTION_LOST);
                        return 0;
                }
        }

        for (size_t i = 0; i < e->n_early; i++) {
                exec_handle_signal(e, e->early[i]);
                e->early[i] = sd_bus_message_unref(e->early[i]);
        }
        e->n_early = 0;
        if (e->done)
                return 0;

        /* On a terminal it has been read from the start, for the escapes: send what was typed. */
        if (e->args->tty)
                exec_flush_stdin(e);
        else if (!e->pass_fd[STDIN_FILENO] && exec_start_stdin(e) < 0) {
                exec_finish(e, EXIT_CONNECTION_LOST);
                return 0;
        }
        if (e->resize_pending)
                exec_send_resize(e);
        return 0;
}

static int on_bus_filter(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Exec *e = userdata;

        if (!sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") || e->done)
                return 0;

        exec_restore_terminal(e);
        log_error_errno(-ECONNRESET, "lost the connection to sandboxd while '%s' was running",
                        e->args->command[0]);
        exec_finish(e, EXIT_CONNECTION_LOST);
        return 0;
}

static int on_unix_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Exec *e = userdata;
        int sig = (int) si->ssi_signo;

        if (sig == SIGWINCH) {
                if (e->have_id)
                        exec_send_resize(e);
                else
                        e->resize_pending = true;
                return 0;
        }

        /* Without a terminal, sandboxctl stands for the command: the first INT/TERM/HUP/QUIT goes to
         * it and its exit status decides. On a terminal (raw: such a signal never comes from the
         * keyboard), and for a second signal, sandboxctl itself ends; the session then gets SIGHUP
         * as its connection goes away. */
        if (!e->args->tty && e->have_id && e->forwarded_signal == 0) {
                e->forwarded_signal = sig;
                if (exec_call(e, "Signal", NULL, "ui", e->id, (int32_t) sig) >= 0)
                        return 0;
        }

        exec_finish(e, 128 + sig);
        return 0;
}

static int exec_setup_signals(Exec *e) {
        static const int signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH };
        sigset_t mask;
        int r;

        /* The command's own SIGPIPE is forwarded instead (see exec_handle_output). */
        (void) signal(SIGPIPE, SIG_IGN);

        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&mask, signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "failed to block signals: %m");

        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(e->event, &e->signal_sources[i], signals[i], on_unix_signal, e);
                if (r < 0)
                        return log_error_errno(r, "failed to watch signals: %m");
        }
        return 0;
}

static int exec_enter_raw_mode(Exec *e) {
        struct termios raw;

        if (!isatty(STDIN_FILENO))
                return 0;
        if (tcgetattr(STDIN_FILENO, &e->saved_termios) < 0)
                return log_error_errno(-errno, "failed to read the terminal settings: %m");
        raw = e->saved_termios;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
                return log_error_errno(-errno, "failed to put the terminal in raw mode: %m");
        e->raw = true;
        return 0;
}

static int exec_run(Exec *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus *bus = e->ctx->bus;
        bool can_pass;
        int r;

        r = sd_event_new(&e->event);
        if (r < 0)
                return log_error_errno(r, "failed to allocate an event loop: %m");
        r = exec_setup_signals(e);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, e->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "failed to attach the connection to the event loop: %m");
        r = sd_bus_add_filter(bus, &e->filter_slot, on_bus_filter, e);
        if (r < 0)
                return log_error_errno(r, "failed to watch the connection: %m");

        /* Before Exec, so that no Output or Exited can slip by. */
        r = sd_bus_match_signal(bus, &e->match_slot, NULL, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, NULL,
                                on_session_signal, e);
        if (r < 0)
                return log_error_errno(r, "failed to subscribe to the session's signals: %m");

        /* A terminal is never passed: the command's session, and whatever it leaves running, could
         * go on reading and writing it after we returned, taking what the user types next at the
         * shell. Relayed over D-Bus, the stream ends with us. Files and pipes are passed as they
         * are: they carry only what the caller wired up for the command, and cost no copies. */
        can_pass = !e->args->tty && sd_bus_can_send(bus, SD_BUS_TYPE_UNIX_FD) > 0;
        for (int fd = 0; fd < 3; fd++)
                e->pass_fd[fd] = can_pass && isatty(fd) == 0;
        e->relay_output = !e->pass_fd[STDOUT_FILENO] || !e->pass_fd[STDERR_FILENO];

        r = sd_bus_message_new_method_call(bus, &m, e->ctx->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE,
                                           "Exec");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, e->args->command);
        if (r >= 0)
                r = exec_args_append_options(m, e->args, e->pass_fd, e->relay_output ? OUTPUT_WINDOW : 0);
        if (r < 0)
                return log_error_errno(r, "failed to build the Exec call: %m");

        if (e->args->tty) {
                r = exec_enter_raw_mode(e);
                if (r < 0)
                        return r;
        }

        r = sd_bus_call_async(bus, &e->exec_slot, m, on_exec_reply, e, 0);
        if (r < 0) {
                exec_restore_terminal(e);
                return log_error_errno(r, "failed to call Exec: %m");
        }

        /* A terminal is read from the start, so that ~. works even when Exec gets no answer; what is
         * typed before the reply is sent after it. */
        e->line_start = true;
        if (e->args->tty) {
                r = exec_start_stdin(e);
                if (r < 0) {
                        exec_restore_terminal(e);
                        return r;
                }
        }

        r = sd_event_loop(e->event);
        exec_restore_terminal(e);
        if (r < 0)
                return log_error_errno(r, "event loop failed: %m");
        return 0;
}

/* Runs the parsed command line to its end; returns sandboxctl's exit status. */
static int exec_command(Context *ctx, ExecArgs *args) {
        _cleanup_(exec_done) Exec e = { .ctx = ctx, .args = args };
        int r;

        /* As ssh does: on a PTY, bytes from a pipe or file would be taken as typed keys (0x03 as
         * Ctrl-C, 0x04 as EOF) and echoed back; -tt says that is what the caller wants. */
        if (args->tty && !args->force_tty && isatty(STDIN_FILENO) == 0) {
                fprintf(stderr, "sandboxctl: Pseudo-terminal will not be allocated because stdin is not a "
                        "terminal%s.\n", args->shell ? "" : " (-tt forces one)");
                args->tty = false;
        }

        if (context_connect(ctx) < 0)
                return EXIT_FAILED;

        r = exec_run(&e);
        if (e.disconnected)
                /* The other end may be hung: flushing what is queued for it, on the way out, would
                 * wait for ever. */
                sd_bus_close(ctx->bus);
        if (r < 0)
                return e.have_id ? EXIT_CONNECTION_LOST : EXIT_FAILED;
        return e.exit_status;
}

int verb_exec(Context *ctx, int argc, char *argv[]) {
        _cleanup_(exec_args_done) ExecArgs args = {};
        int r;

        r = exec_args_parse(argc, argv, &args);
        if (r <= 0)
                return r == 0 ? 0 : r == -EINVAL ? EXIT_USAGE : EXIT_FAILED;
        return exec_command(ctx, &args);
}

int verb_shell(Context *ctx, int argc, char *argv[]) {
        /* The login shell of the session's user, as machinectl shell starts it. The daemon puts that
         * user's passwd shell in $SHELL and starts in their home (else /), so nothing is looked up
         * here, and it works the same with a remote daemon. Exec has no separate argv[0] to give
         * the shell a '-' name, and dash's exec has no -a: so -l, which bash, zsh, dash, ksh, fish
         * and tcsh all take as "login shell". */
        static char *shell_command[] = { (char *) "/bin/sh", (char *) "-c", (char *) "exec \"$SHELL\" -l",
                                         NULL };
        _cleanup_(exec_args_done) ExecArgs args = { .shell = true };
        int r;

        r = exec_args_parse(argc, argv, &args);
        if (r <= 0)
                return r == 0 ? 0 : r == -EINVAL ? EXIT_USAGE : EXIT_FAILED;
        args.command = shell_command;
        args.tty = true;
        return exec_command(ctx, &args);
}
