/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A session's data path: output relayed as Output signals, stdin queued to the command, and the
 * backpressure that keeps both bounded. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "output-splice.h"
#include "run.h"
#include "session.h"

/* How many bytes the next read may take: the chunk size, within the output window. */
static size_t output_budget(Session *s) {
        if (!s->owner || s->output_window == 0)
                return OUTPUT_CHUNK_MAX;
        if (s->output_unacked >= s->output_window)
                return 0;
        return (size_t) MIN((uint64_t) OUTPUT_CHUNK_MAX, s->output_window - s->output_unacked);
}

/* Whether the owner's connection has more than 'limit' messages waiting to be written. */
static bool connection_congested(Session *s, uint64_t limit) {
        uint64_t n;

        if (!s->owner || s->run)
                return false; /* Run sends nothing until its reply */
        if (client_output_congested(s->owner))
                return true;
        if (sd_bus_get_n_queued_write(s->owner->bus, &n) < 0)
                return false;
        return n >= limit;
}

void session_output_update(Session *s) {
        bool on = !s->paused && output_budget(s) > 0;

        for (int i = 0; i < 2; i++)
                if (s->out[i].source)
                        (void) sd_event_source_set_enabled(s->out[i].source,
                                                           on && !s->out[i].eof && !s->out[i].resting
                                                                   ? SD_EVENT_ON
                                                                   : SD_EVENT_OFF);
}

static int output_rest_done(sd_event_source *es, uint64_t usec, void *userdata) {
        Session *s = userdata;

        s->out[0].resting = s->out[1].resting = false;
        session_output_update(s);
        return 0;
}

/* Lets the writer fill the pipe before the next read, see OUTPUT_REST_USEC. */
static void output_rest(Session *s, unsigned stream) {
        int r;

        if (s->rest_source)
                r = sd_event_source_set_time_relative(s->rest_source, OUTPUT_REST_USEC);
        else
                r = sd_event_add_time_relative(s->manager->event, &s->rest_source, CLOCK_MONOTONIC,
                                               OUTPUT_REST_USEC, 1, output_rest_done, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->rest_source, SD_EVENT_ONESHOT);
        if (r < 0)
                return; /* no rest then: smaller signals, nothing lost */
        s->out[stream].resting = true;
        session_output_update(s);
}

/* What was sent counts against the window, and on the bus against what the client confirmed. */
static void output_count(Session *s, size_t size) {
        if (s->output_window > 0)
                s->output_unacked += size;
        client_output_sent(s->owner, size);
}

static int output_send_one(Session *s, unsigned stream, const void *data, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        r = sd_bus_message_new_signal(s->owner->bus, &msg, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE,
                                      "Output");
        if (r >= 0 && s->owner->name)
                r = sd_bus_message_set_destination(msg, s->owner->name);
        if (r >= 0)
                r = sd_bus_message_append(msg, "uu", s->id, stream + 1);
        if (r >= 0)
                r = sd_bus_message_append_array(msg, 'y', data, size);
        if (r >= 0)
                r = sd_bus_send(s->owner->bus, msg, NULL);
        if (r < 0)
                return r;
        output_count(s, size);
        return 0;
}

/* Cuts what goes on to max-output, counting all of it; past the limit with on-output-limit=kill,
 * the session is killed (end reason output-limit) and keeps only what fit. */
static size_t output_limit(Session *s, unsigned stream, size_t size) {
        uint64_t before = s->out_bytes[stream], room;

        s->out_bytes[stream] += size;
        if (!s->max_output_set)
                return size;
        room = before < s->max_output ? s->max_output - before : 0;
        if (size <= room)
                return size;
        if (s->on_output_limit == OUTPUT_LIMIT_KILL && s->end_cause != END_REASON_OUTPUT_LIMIT) {
                log_debug("Session %u: more than %llu bytes of output on stream %u, killing it.", s->id,
                          (unsigned long long) s->max_output, stream + 1);
                s->end_cause = END_REASON_OUTPUT_LIMIT;
                (void) session_signal(s, SIGKILL);
        }
        return (size_t) room;
}

static void output_send(Session *s, unsigned stream, const void *data, size_t size) {
        size_t max;

        size = output_limit(s, stream, size);
        if (!s->owner || size == 0)
                return; /* orphaned: drained and dropped; or past max-output */
        if (s->run) {
                run_sink_add(s->run, stream, data, size);
                return;
        }

        max = s->owner->p2p ? size : OUTPUT_BUS_MESSAGE_MAX;
        for (size_t off = 0; off < size; off += max) {
                int r = output_send_one(s, stream, (const uint8_t *) data + off, MIN(max, size - off));
                if (r < 0) {
                        /* The connection is failing; its disconnect handler orphans the session. */
                        log_debug_errno(r, "Session %u: failed to send Output: %m", s->id);
                        return;
                }
        }
}

static void output_close(Session *s, unsigned stream) {
        OutputStream *o = &s->out[stream];

        o->eof = true;
        o->source = sd_event_source_disable_unref(o->source);
        if (o->fd != s->master)
                o->fd = safe_close(o->fd);
        o->writer = safe_close(o->writer);
}

/* Reads what is there, up to one chunk, coalescing small writes into one signal. Returns 1 when
 * the chunk filled (more may be waiting), 0 when the stream would block or ended, -ENOBUFS when
 * the output window is exhausted. */
static int output_read_chunk(Session *s, unsigned stream) {
        OutputStream *o = &s->out[stream];
        uint8_t *buf = s->manager->read_buffer;
        size_t budget = output_budget(s), len = 0;
        bool end = false;

        if (o->eof || (o->drain_limited && o->drain_left == 0))
                return 0;
        if (budget == 0)
                return -ENOBUFS;
        if (o->drain_limited)
                budget = (size_t) MIN((uint64_t) budget, o->drain_left);

        len = output_splice(s, stream, budget);
        if (len > 0) {
                s->out_bytes[stream] += len;
                output_count(s, len);
                if (o->drain_limited)
                        o->drain_left -= len;
                else if (len < budget)
                        output_rest(s, stream);
                return len == budget;
        }

        while (len < budget) {
                ssize_t n = read(o->fd, buf + len, budget - len);

                if (n > 0) {
                        len += (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                /* EOF, or EIO from a PTY whose last slave fd is closed: the end of the data. */
                if (n < 0 && errno != EIO)
                        log_warning_errno(errno, "Session %u: read failed: %m", s->id);
                end = true;
                break;
        }
        if (len > 0)
                output_send(s, stream, buf, len);
        if (!o->grown && !s->tty && len >= PIPE_DEFAULT_SIZE) {
                /* May fail past the per-user pipe limits (EPERM): a smaller size still works. */
                if (!output_splice_possible(s) ||
                    fcntl(o->fd, F_SETPIPE_SZ, OUTPUT_PIPE_SPLICE_SIZE) < 0)
                        (void) fcntl(o->fd, F_SETPIPE_SZ, OUTPUT_CHUNK_MAX);
                o->grown = true;
        }
        if (o->drain_limited)
                o->drain_left -= len;
        if (end) {
                output_close(s, stream);
                return 0;
        }
        return len == budget;
}

static void session_pause(Session *s) {
        if (s->paused)
                return;
        s->paused = true;
        LIST_PREPEND(paused, s->manager->paused, s);
        (void) sd_event_source_set_enabled(s->manager->drain_source, SD_EVENT_ON);
        session_output_update(s);
}

int session_output_event(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Session *s = userdata;
        unsigned stream = fd == s->out[0].fd ? 0 : 1;

        if (connection_congested(s, OUTPUT_QUEUE_MAX)) {
                session_pause(s);
                return 0;
        }
        /* One chunk per wakeup keeps sessions fair to each other; epoll is level-triggered. */
        if (output_read_chunk(s, stream) == -ENOBUFS)
                session_output_update(s);
        return 0;
}

void session_output_limit_drain(Session *s) {
        for (unsigned i = 0; i < 2; i++) {
                OutputStream *o = &s->out[i];
                int n = 0;

                if (o->eof)
                        continue;
                /* What the command wrote is in the pipe now; a background process that goes on
                 * writing must not keep the drain, and Exited, going for ever. A terminal may
                 * still hold up to its flip buffer's worth on its way to the master. */
                if (ioctl(o->fd, FIONREAD, &n) < 0 || n < 0)
                        n = 0;
                o->drain_limited = true;
                o->drain_left = (uint64_t) n + (s->tty ? PTY_DRAIN_SLACK : 0);
                o->resting = false; /* the drain reads it now */
        }
}

bool session_output_drain(Session *s) {
        for (unsigned i = 0; i < 2; i++)
                for (;;) {
                        int r;

                        /* The rest of a pipe, for each of many sessions, would add up past the
                         * bounds on the bus: the drain waits as reading does. */
                        if (s->owner && !s->run && client_output_congested(s->owner)) {
                                session_pause(s);
                                return false;
                        }
                        r = output_read_chunk(s, i);

                        if (r == -ENOBUFS) {
                                session_output_update(s);
                                return false;
                        }
                        if (r == 0)
                                break;
                }
        return true;
}

void manager_resume_paused(Manager *m) {
        Session *s, *n;

        LIST_FOREACH_SAFE(paused, s, n, m->paused) {
                /* Resume only once the queue is well down, not at the first message written:
                 * pausing and resuming for each message costs more than the relay itself. */
                if (connection_congested(s, OUTPUT_QUEUE_LOW))
                        continue;
                LIST_REMOVE(paused, m->paused, s);
                s->paused = false;
                if (s->leader_exited)
                        session_finish(s); /* its drain waited: go on with it, then Exited */
                else
                        session_output_update(s);
        }
        if (!m->paused)
                (void) sd_event_source_set_enabled(m->drain_source, SD_EVENT_OFF);
}

void session_ack(Session *s, uint64_t bytes) {
        s->output_unacked -= MIN(bytes, s->output_unacked);
        if (s->leader_exited)
                session_finish(s); /* it was waiting for the window to drain the rest */
        else
                session_output_update(s);
}

/* stdin */

/* Keeps the session's and its owner uid's count of queued stdin bytes together. */
static void stdin_account(Session *s, int64_t delta) {
        s->stdin_queued = (size_t) ((int64_t) s->stdin_queued + delta);
        uid_count_add(s->manager->stdin_per_uid, s->owner_uid, delta);
}

static void stdin_close(Session *s) {
        s->stdin_source = sd_event_source_disable_unref(s->stdin_source);
        s->stdin_fd = safe_close(s->stdin_fd);
        while (s->stdin_head) {
                StdinChunk *c = s->stdin_head;

                s->stdin_head = c->next;
                free(c);
        }
        s->stdin_tail = NULL;
        stdin_account(s, -(int64_t) s->stdin_queued);
}

/* Writes queued data until the pipe is full. */
static int stdin_flush(Session *s) {
        while (s->stdin_head) {
                StdinChunk *c = s->stdin_head;
                ssize_t n = write(s->stdin_fd, c->data + c->offset, c->size - c->offset);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                c->offset += (size_t) n;
                stdin_account(s, -(int64_t) n);
                if (c->offset == c->size) {
                        s->stdin_head = c->next;
                        if (!s->stdin_head)
                                s->stdin_tail = NULL;
                        free(c);
                }
        }
        if (!s->stdin_head && s->stdin_close_pending && !s->tty) {
                stdin_close(s);
                return 0;
        }
        if (s->stdin_head && !s->stdin_source) {
                int r = sd_event_add_io(s->manager->event, &s->stdin_source, s->stdin_fd, EPOLLOUT,
                                        session_stdin_event, s);
                if (r < 0)
                        return r;
        } else if (s->stdin_source)
                (void) sd_event_source_set_enabled(s->stdin_source,
                                                   s->stdin_head ? SD_EVENT_ON : SD_EVENT_OFF);
        return 0;
}

int session_stdin_event(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Session *s = userdata;
        int r;

        r = stdin_flush(s);
        if (r < 0) {
                /* EPIPE: the command closed its stdin; what it did not read is dropped. */
                log_debug_errno(r, "Session %u: stdin closed by the command: %m", s->id);
                stdin_close(s);
        }
        return 0;
}

static int stdin_queue(Session *s, const void *data, size_t size, sd_bus_error *error) {
        StdinChunk *c;
        int r;

        if (size == 0)
                return 0;
        if (s->stdin_queued + size > STDIN_QUEUE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Session %u has %zu bytes of stdin queued already; wait for "
                                         "the command to read them.", s->id, s->stdin_queued);
        if (uid_count_get(s->manager->stdin_per_uid, s->owner_uid) + size > STDIN_QUEUE_PER_UID_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "The sessions of uid %u have %llu bytes of stdin queued "
                                         "already (at most %u together); wait for their commands to "
                                         "read them.", (unsigned) s->owner_uid,
                                         (unsigned long long) uid_count_get(s->manager->stdin_per_uid,
                                                                            s->owner_uid),
                                         STDIN_QUEUE_PER_UID_MAX);

        c = malloc(sizeof(StdinChunk) + size);
        if (!c)
                return -ENOMEM;
        *c = (StdinChunk) { .size = size };
        memcpy(c->data, data, size);
        if (s->stdin_tail)
                s->stdin_tail->next = c;
        else
                s->stdin_head = c;
        s->stdin_tail = c;
        stdin_account(s, (int64_t) size);

        r = stdin_flush(s);
        if (r < 0) {
                stdin_close(s);
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "The command of session %u closed its stdin.", s->id);
        }
        return 0;
}

int session_write_stdin(Session *s, const void *data, size_t size, sd_bus_error *error) {
        if (s->stdin_fd < 0 || s->stdin_close_pending)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "Session %u's stdin is closed or was given as an fd.", s->id);
        return stdin_queue(s, data, size, error);
}

int session_close_stdin(Session *s) {
        struct termios t;
        char eof;

        if (s->stdin_fd < 0 || (s->stdin_close_pending && !s->tty))
                return 0;
        if (!s->tty) {
                s->stdin_close_pending = true;
                return stdin_flush(s);
        }
        /* A terminal has no end of input, only the EOF character, which a reader in canonical
         * mode takes as the end. */
        if (tcgetattr(s->master, &t) < 0)
                return -errno;
        eof = (char) t.c_cc[VEOF];
        return stdin_queue(s, &eof, 1, NULL);
}
