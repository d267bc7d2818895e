/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A session on the bus: the sending of its end (Exited, or Run's reply) and its object,
 * /org/example/Sandbox1/session/<id>, interface org.example.Sandbox1.Session.
 * One fallback vtable serves them all; its find callback looks the session up and decides, from
 * the call being dispatched, whether the caller may see it: to everyone else it does not exist
 * (UnknownObject), in introspection and node enumeration too. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-error.h"
#include "client.h"
#include "log.h"
#include "parse.h"
#include "run.h"
#include "session.h"
#include "strv.h"


bool client_owns_session(const Client *c, const Session *s) {
        return c->uid == 0 || s->owner == c || (c->uid == s->owner_uid && s->as_creator);
}

int session_object_path(uint32_t id, char **ret) {
        return asprintf(ret, SANDBOX_SESSION_PATH_PREFIX "/%u", id) < 0 ? -ENOMEM : 0;
}

/* The client of the call being dispatched on bus, or NULL (a local call, or no client yet). */
static Client *current_client(Manager *m, sd_bus *bus) {
        sd_bus_message *msg = sd_bus_get_current_message(bus);
        Client *c;

        if (!msg || client_from_message(m, msg, &c) < 0)
                return NULL;
        return c;
}

static int session_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                        void **ret, sd_bus_error *error) {
        Manager *m = userdata;
        const char *e = path + strlen(SANDBOX_SESSION_PATH_PREFIX);
        unsigned long id;
        char *end;
        Session *s;
        Client *c;

        if (strncmp(path, SANDBOX_SESSION_PATH_PREFIX "/", strlen(SANDBOX_SESSION_PATH_PREFIX) + 1) != 0)
                return 0;
        e++;
        if (e[0] < '1' || e[0] > '9')
                return 0;
        errno = 0;
        id = strtoul(e, &end, 10);
        if (errno != 0 || *end != 0 || id > UINT32_MAX)
                return 0;
        s = manager_find_session(m, (uint32_t) id, true);
        if (!s)
                return 0;
        c = current_client(m, bus);
        if (!c || !client_owns_session(c, s))
                return 0;
        *ret = s;
        return 1;
}

static int session_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret,
                             sd_bus_error *error) {
        _cleanup_strv_free_ char **l = NULL;
        Manager *m = userdata;
        Client *c = current_client(m, bus);
        size_t n = 0, state;
        void *v;

        if (!c) {
                *ret = NULL;
                return 0;
        }
        for (Hashmap *h = m->sessions;; h = m->ended) {
                state = 0;
                while (hashmap_iterate(h, &state, &v)) {
                        Session *s = v;
                        char *p;

                        if (!client_owns_session(c, s))
                                continue;
                        if (session_object_path(s->id, &p) < 0)
                                return -ENOMEM;
                        if (strv_push(&l, &n, p) < 0) {
                                free(p);
                                return -ENOMEM;
                        }
                }
                if (h == m->ended)
                        break;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* properties */

static const char *session_state(const Session *s) {
        return s->ended ? "ended" : "running";
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        Session *s = userdata;
        const char *v = "";

        if (streq(property, "User"))
                v = s->user_name;
        else if (streq(property, "Cwd"))
                v = s->cwd;
        else if (streq(property, "Profile"))
                v = profile_to_string(s->profile);
        else if (streq(property, "Tag"))
                v = s->tag ?: "";
        else if (streq(property, "Owner"))
                v = s->owner && s->owner->name ? s->owner->name : "";
        else if (streq(property, "State"))
                v = session_state(s);
        else if (streq(property, "EndReason"))
                v = end_reason_to_string(s->end_reason);
        return sd_bus_message_append_basic(reply, 's', v ?: "");
}

static int property_get_u64(sd_bus *bus, const char *path, const char *interface,
                            const char *property, sd_bus_message *reply, void *userdata,
                            sd_bus_error *error) {
        Session *s = userdata;
        uint64_t v = UINT64_MAX; /* CPUUsageNSec, MemoryPeak, TasksCurrent: no cgroup yet */

        if (streq(property, "StartTimestamp"))
                v = s->start_realtime;
        else if (streq(property, "EndTimestamp"))
                v = s->ended ? s->end_realtime : 0;
        else if (streq(property, "OutputOffset"))
                v = s->out_bytes[0] + s->out_bytes[1];
        return sd_bus_message_append_basic(reply, 't', &v);
}

static int property_get_exit(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        Session *s = userdata;
        int32_t v;

        if (streq(property, "ExitCode"))
                v = s->ended ? s->exit_code : -1;
        else
                v = s->ended ? s->exit_signal : 0;
        return sd_bus_message_append_basic(reply, 'i', &v);
}

static int property_get_false(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        int b = false; /* Detachable, Detached: detach comes with its own issue */

        return sd_bus_message_append_basic(reply, 'b', &b);
}

static int property_get_pid(sd_bus *bus, const char *path, const char *interface,
                            const char *property, sd_bus_message *reply, void *userdata,
                            sd_bus_error *error) {
        Session *s = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t) s->pid);
}

/* methods */

/* Control methods act on a running session; an ended record answers as the main object's
 * methods do for a session that is gone. */
static int running_or_error(Session *s, sd_bus_error *error) {
        if (s->ended || s->leader_exited)
                return sd_bus_error_setf(error, SANDBOX_ERROR_NO_SUCH_SESSION,
                                         "Session %u has ended.", s->id);
        return 0;
}

static int signal_argument(sd_bus_message *msg, int32_t *ret, sd_bus_error *error) {
        int r = sd_bus_message_read(msg, "i", ret);

        if (r < 0)
                return r;
        if (!signal_valid(*ret))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid 'signal': %i is not a signal number (1..64).", *ret);
        return 0;
}

static int method_signal(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        int32_t sig;
        int r;

        r = signal_argument(msg, &sig, error);
        if (r < 0)
                return r;
        r = running_or_error(s, error);
        if (r < 0)
                return r;
        r = session_signal_from_client(s, sig);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot send the signal: %s", strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_terminate(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        uint64_t grace;
        int r;

        r = sd_bus_message_read(msg, "t", &grace);
        if (r < 0)
                return r;
        r = running_or_error(s, error);
        if (r < 0)
                return r;
        r = session_terminate(s, grace);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot terminate the session: %s", strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_resize(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        uint16_t rows, cols;
        int r;

        r = sd_bus_message_read(msg, "qq", &rows, &cols);
        if (r < 0)
                return r;
        if (rows == 0 || cols == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid '%s': must be at least 1.", rows == 0 ? "rows" : "cols");
        r = running_or_error(s, error);
        if (r < 0)
                return r;
        r = session_resize(s, rows, cols);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "Session %u has no terminal to resize.", s->id);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot resize: %s", strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_write_stdin(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        const void *data;
        size_t size;
        int r;

        r = sd_bus_message_read_array(msg, 'y', &data, &size);
        if (r < 0)
                return r;
        r = running_or_error(s, error);
        if (r < 0)
                return r;
        r = session_write_stdin(s, data, size, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_close_stdin(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        int r;

        r = running_or_error(s, error);
        if (r < 0)
                return r;
        r = session_close_stdin(s);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot close stdin: %s", strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_ack(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        uint64_t bytes;
        int r;

        r = sd_bus_message_read(msg, "t", &bytes);
        if (r < 0)
                return r;
        r = running_or_error(s, error);
        if (r < 0)
                return r;
        session_ack(s, bytes);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_open_pidfd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        int r;

        r = running_or_error(s, error);
        if (r < 0)
                return r;
        if (s->pidfd < 0)
                return sd_bus_error_setf(error, SANDBOX_ERROR_NO_SUCH_SESSION, "Session %u has ended.", s->id);
        if (sd_bus_can_send(sd_bus_message_get_bus(msg), 'h') <= 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "This connection cannot pass file descriptors.");
        return sd_bus_reply_method_return(msg, "h", s->pidfd);
}

/* Until the leader exited, or until now while it runs. */
static uint64_t runtime_usec(const Session *s) {
        uint64_t end = s->end_usec;

        if (end == 0)
                (void) sd_event_now(s->manager->event, CLOCK_MONOTONIC, &end);
        return end > s->start_usec ? end - s->start_usec : 0;
}

int session_append_info(sd_bus_message *m, const Session *s, const bool truncated[2]) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}{sv}{sv}{sv}{sv}",
                                          "id", "u", s->id,
                                          "pid", "u", (uint32_t) s->pid,
                                          "end-reason", "s", end_reason_to_string(s->end_reason),
                                          "stdout-bytes", "t", s->out_bytes[0],
                                          "stderr-bytes", "t", s->out_bytes[1]);
        if (r >= 0 && truncated)
                r = sd_bus_message_append(m, "{sv}{sv}", "stdout-truncated", "b", truncated[0],
                                          "stderr-truncated", "b", truncated[1]);
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "runtime-usec", "t", runtime_usec(s));
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int reply_wait(Session *s, sd_bus_message *call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "iis", s->exit_code, s->exit_signal,
                                          end_reason_to_string(s->end_reason));
        if (r >= 0)
                r = session_append_info(reply, s, NULL);
        if (r >= 0)
                r = sd_bus_send(sd_bus_message_get_bus(call), reply, NULL);
        return r;
}

Waiter *waiter_free(Waiter *w) {
        if (!w)
                return NULL;
        LIST_REMOVE(by_session, w->session->waiters, w);
        LIST_REMOVE(by_client, w->client->waiters, w);
        w->client->n_waiters--;
        sd_bus_message_unref(w->call);
        free(w);
        return NULL;
}

void session_answer_waiters(Session *s) {
        while (s->waiters) {
                Waiter *w = s->waiters;
                int r = reply_wait(s, w->call);

                if (r < 0)
                        log_debug_errno(r, "Session %u: cannot answer Wait(): %m", s->id);
                waiter_free(w);
        }
}

static int method_wait(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        Manager *m = s->manager;
        Client *c;
        Waiter *w;
        int r;

        if (s->ended)
                return reply_wait(s, msg);
        r = client_from_message(m, msg, &c);
        if (r < 0)
                return r;
        if (c->n_waiters >= CLIENT_WAITERS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too many Wait() calls pending on this connection (%u).",
                                         CLIENT_WAITERS_MAX);
        w = calloc(1, sizeof(Waiter));
        if (!w)
                return -ENOMEM;
        w->session = s;
        w->client = c;
        w->call = sd_bus_message_ref(msg);
        LIST_PREPEND(by_session, s->waiters, w);
        LIST_PREPEND(by_client, c->waiters, w);
        c->n_waiters++;
        return 1;
}

/* PropertiesChanged, unicast: to the owner, and to each other connection with a Wait() pending. */
static int send_changed_to(Session *s, Client *c, const char *path, const char *const *properties) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        r = sd_bus_message_new_signal(c->bus, &msg, path, "org.freedesktop.DBus.Properties",
                                      "PropertiesChanged");
        if (r >= 0 && c->name)
                r = sd_bus_message_set_destination(msg, c->name);
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", SANDBOX_SESSION_INTERFACE);
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "{sv}");
        for (const char *const *p = properties; r >= 0 && *p; p++) {
                const char *name = *p;

                if (streq(name, "State"))
                        r = sd_bus_message_append(msg, "{sv}", name, "s", session_state(s));
                else if (streq(name, "EndReason"))
                        r = sd_bus_message_append(msg, "{sv}", name, "s", end_reason_to_string(s->end_reason));
                else if (streq(name, "ExitCode"))
                        r = sd_bus_message_append(msg, "{sv}", name, "i", s->ended ? s->exit_code : -1);
                else if (streq(name, "ExitSignal"))
                        r = sd_bus_message_append(msg, "{sv}", name, "i", s->ended ? s->exit_signal : 0);
                else if (streq(name, "EndTimestamp"))
                        r = sd_bus_message_append(msg, "{sv}", name, "t", s->ended ? s->end_realtime : 0);
                else if (streq(name, "Owner"))
                        r = sd_bus_message_append(msg, "{sv}", name, "s",
                                                  s->owner && s->owner->name ? s->owner->name : "");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_append(msg, "as", 0);
        if (r >= 0)
                r = sd_bus_send(c->bus, msg, NULL);
        return r;
}

void session_send_changed(Session *s, const char *const *properties) {
        _cleanup_free_ char *path = NULL;
        uint64_t stamp = ++s->manager->changed_stamp;
        int r;

        if (session_object_path(s->id, &path) < 0)
                return;
        /* Each connection once: the owner, and every other one with a Wait() pending here (a
         * connection may have several). The stamp marks those already told. */
        if (s->owner)
                s->owner->changed_stamp = stamp;
        for (Waiter *w = s->waiters; w; w = w->by_session_next)
                if (w->client->changed_stamp != stamp) {
                        w->client->changed_stamp = stamp;
                        r = send_changed_to(s, w->client, path, properties);
                        if (r < 0)
                                log_debug_errno(r, "Session %u: cannot send PropertiesChanged: %m", s->id);
                }
        if (s->owner) {
                r = send_changed_to(s, s->owner, path, properties);
                if (r < 0)
                        log_debug_errno(r, "Session %u: cannot send PropertiesChanged: %m", s->id);
        }
}

/* How a session's end reaches its owner: Exited, or for Run the reply it waits for. */
void session_send_end(Session *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        if (!s->owner)
                return;
        if (s->run) {
                r = run_sink_reply(s);
                if (r < 0)
                        log_warning_errno(r, "Session %u: failed to reply to Run: %m", s->id);
                return;
        }
        r = sd_bus_message_new_signal(s->owner->bus, &msg, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE,
                                      "Exited");
        if (r >= 0 && s->owner->name)
                r = sd_bus_message_set_destination(msg, s->owner->name);
        if (r >= 0)
                r = sd_bus_message_append(msg, SANDBOX_EXITED_SIGNATURE, s->id, s->exit_code, s->exit_signal);
        if (r >= 0)
                r = sd_bus_send(s->owner->bus, msg, NULL);
        if (r < 0)
                log_warning_errno(r, "Session %u: failed to send Exited: %m", s->id);
        else
                client_output_session_ended(s->owner);
}

static const sd_bus_vtable session_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "u", NULL, offsetof(Session, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PID", "u", property_get_pid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UID", "u", NULL, offsetof(Session, uid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("GID", "u", NULL, offsetof(Session, gid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("User", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Argv", "as", NULL, offsetof(Session, argv), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Cwd", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TTY", "b", NULL, offsetof(Session, tty), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Profile", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Tag", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StartTimestamp", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("EndTimestamp", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EndReason", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ExitCode", "i", property_get_exit, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ExitSignal", "i", property_get_exit, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Detachable", "b", property_get_false, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Detached", "b", property_get_false, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OutputOffset", "t", property_get_u64, 0, 0),
        SD_BUS_PROPERTY("ControlGroup", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CPUUsageNSec", "t", property_get_u64, 0, 0),
        SD_BUS_PROPERTY("MemoryPeak", "t", property_get_u64, 0, 0),
        SD_BUS_PROPERTY("TasksCurrent", "t", property_get_u64, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("Signal", "i", SD_BUS_PARAM(signal), "", , method_signal,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Kill", "i", SD_BUS_PARAM(signal), "", , method_signal,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Terminate", "t", SD_BUS_PARAM(grace_usec), "", , method_terminate,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Resize", "qq", SD_BUS_PARAM(rows) SD_BUS_PARAM(cols), "", ,
                                 method_resize, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("WriteStdin", "ay", SD_BUS_PARAM(data), "", , method_write_stdin,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("CloseStdin", "", "", method_close_stdin, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Ack", "t", SD_BUS_PARAM(bytes), "", , method_ack,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Wait", "", , "iisa{sv}", SD_BUS_PARAM(code) SD_BUS_PARAM(signal)
                                 SD_BUS_PARAM(end_reason) SD_BUS_PARAM(info), method_wait,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("OpenPidfd", "", , "h", SD_BUS_PARAM(pidfd), method_open_pidfd,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int session_add_objects(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_fallback_vtable(bus, NULL, SANDBOX_SESSION_PATH_PREFIX, SANDBOX_SESSION_INTERFACE, session_vtable,
                                       session_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, SANDBOX_SESSION_PATH_PREFIX, session_enumerate, m);
}
