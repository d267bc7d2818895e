/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The org.example.Sandbox1 interface: each method reads, validates, authorizes, acts, replies. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <systemd/sd-journal.h>

#include "bus-error.h"
#include "client.h"
#include "env.h"
#include "exec-queue.h"
#include "exec-request.h"
#include "log.h"
#include "parse.h"
#include "polkit.h"
#include "run.h"
#include "session.h"
#include "strv.h"
#include "user.h"

static int reply_errno(sd_bus_error *error, int r, const char *what) {
        if (sd_bus_error_is_set(error))
                return r;
        if (r == -ENOMEM)
                return sd_bus_error_set_const(error, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
        return sd_bus_error_set_errnof(error, r, "%s: %s", what, strerror(-r));
}

static void log_denial(const Client *c, const char *action, const char *what) {
        (void) sd_journal_send("MESSAGE=Denied %s to uid %u (%s).", what, (unsigned) c->uid,
                               c->name ?: "peer-to-peer", "PRIORITY=5", "SANDBOXD_EVENT=denied",
                               "SANDBOXD_CALLER_UID=%u", (unsigned) c->uid,
                               "SANDBOXD_CALLER=%s", c->name ?: "peer-to-peer",
                               "SANDBOXD_ACTION=%s", action, NULL);
        if (!getenv("JOURNAL_STREAM"))
                log_notice("Denied %s to uid %u (%s).", what, (unsigned) c->uid, c->name ?: "peer-to-peer");
}

/* Looks up a session the caller may act on: client_owns_session(); on the bus, others
 * with polkit's "manage". Returns 0 with *ret set, 0 with *ret NULL when polkit is being asked
 * (the handler returns 1 and is called again), or a negative errno with error set. */
static int session_from_message(Manager *m, sd_bus_message *msg, uint32_t id, bool manage,
                                Session **ret, sd_bus_error *error) {
        _cleanup_free_ char *sid = NULL;
        Client *c;
        Session *s;
        int r;

        *ret = NULL;
        r = client_from_message(m, msg, &c);
        if (r < 0)
                return reply_errno(error, r, "Cannot identify the caller");
        s = hashmap_get(m->sessions, UINT_TO_PTR(id));
        if (s && client_owns_session(c, s)) {
                *ret = s;
                return 0;
        }
        if (!s || !manage || c->p2p)
                return sd_bus_error_setf(error, SANDBOX_ERROR_NO_SUCH_SESSION, "No session %u.", id);

        if (asprintf(&sid, "%u", id) < 0)
                return -ENOMEM;
        r = polkit_check(msg, POLKIT_ACTION_MANAGE,
                         (const char *[]) { "session", sid, "user", s->user_name, NULL },
                         c->uid, &m->polkit_registry, error);
        if (r == 0)
                return 0;
        if (r < 0) {
                log_denial(c, POLKIT_ACTION_MANAGE, "control of another user's session");
                /* To someone who may not manage it, it does not exist. */
                sd_bus_error_free(error);
                return sd_bus_error_setf(error, SANDBOX_ERROR_NO_SUCH_SESSION, "No session %u.", id);
        }
        *ret = s;
        return 0;
}

/* Exec as oneself needs "exec", as anyone else "exec-as-user"; root needs neither. Peer-to-peer
 * callers have no bus name to ask polkit about: the socket's mode admitted them, as themselves
 * only. */
static int authorize_exec(Manager *m, sd_bus_message *msg, Client *c, const ExecRequest *req,
                          const UserInfo *u, bool as_self, sd_bus_error *error) {
        _cleanup_free_ char *cmdline = NULL, *uid = NULL, *gid = NULL, *env_keys = NULL;
        const char *action;
        int r;

        if (c->uid == 0)
                return 1;
        if (c->p2p) {
                if (as_self)
                        return 1;
                log_denial(c, POLKIT_ACTION_EXEC_AS_USER, "Exec as another user or group");
                if (u->uid == c->uid)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Not allowed to run commands with group '%s' on this "
                                                 "socket: '%s' is not a member of it.", u->group,
                                                 u->name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Not allowed to run commands as user '%s' on this socket.",
                                         u->name);
        }

        action = as_self ? POLKIT_ACTION_EXEC : POLKIT_ACTION_EXEC_AS_USER;
        cmdline = strv_join(req->argv, " ");
        if (!cmdline || asprintf(&uid, "%u", (unsigned) u->uid) < 0 ||
            asprintf(&gid, "%u", (unsigned) u->gid) < 0 || env_keys_join(req->env, &env_keys) < 0)
                return -ENOMEM;
        r = polkit_check(msg, action,
                         (const char *[]) {
                                 "user", u->name,
                                 "uid", uid,
                                 "group", u->group,
                                 "gid", gid,
                                 "command_line", cmdline,
                                 "profile", profile_to_string(req->profile),
                                 "env_keys", env_keys,
                                 NULL },
                         c->uid, &m->polkit_registry, error);
        if (r < 0)
                log_denial(c, action, "Exec");
        return r;
}

/* Exec, Run and RunText: the same request, answered at once (Exec) or when the session ends. */
static int method_exec_kind(sd_bus_message *msg, Manager *m, ExecKind kind, sd_bus_error *error) {
        _cleanup_(exec_request_done) ExecRequest req;
        _cleanup_(user_info_done) UserInfo u = {};
        bool as_self;
        Client *c;
        int r;

        exec_request_init(&req);
        req.kind = kind;

        /* read, validate */
        r = exec_request_parse(msg, &req, error);
        if (r < 0)
                return reply_errno(error, r, "Cannot read the arguments");

        r = client_from_message(m, msg, &c);
        if (r < 0)
                return reply_errno(error, r, "Cannot identify the caller");

        r = user_resolve(req.user, c->uid, &u);
        if (r == -ESRCH)
                return sd_bus_error_setf(error, SANDBOX_ERROR_NO_SUCH_USER,
                                         "Invalid 'user': '%.256s' does not resolve to a user and "
                                         "group.", req.user);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid 'user': '%.256s' is malformed.", req.user);
        if (r < 0)
                return reply_errno(error, r, "Cannot resolve the user");

        as_self = user_is_caller_itself(&u, c->uid);
        if (!as_self && c->uid != 0) {
                int klen;
                bool bad_value;
                const char *e = env_find_cross_user_refused(req.env, &klen, &bad_value);

                /* Before polkit: no rule is asked about what can never be allowed. */
                if (e && bad_value)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Invalid 'env': the value of %.*s may not name a file "
                                                 "for a command run as another user.", MIN(klen, 256), e);
                if (e)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Invalid 'env': %.*s may not be set for a command run "
                                                 "as another user (only TERM, COLORTERM, NO_COLOR, "
                                                 "LANG, LANGUAGE, LC_* and TZ).", MIN(klen, 256), e);
        }

        /* authorize */
        r = authorize_exec(m, msg, c, &req, &u, as_self, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1; /* polkit is asked; this call is dispatched again with the answer */

        /* act: at once peer-to-peer, in turn with other bus clients on the bus */
        if (!c->p2p)
                return exec_queue_push(c, msg, &req, &u, error);
        return manager_exec_start(m, msg, c, &req, &u, error);
}

static int method_exec(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_exec_kind(msg, userdata, EXEC_KIND_EXEC, error);
}

static int method_run(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_exec_kind(msg, userdata, EXEC_KIND_RUN, error);
}

static int method_run_text(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_exec_kind(msg, userdata, EXEC_KIND_RUN_TEXT, error);
}

int manager_exec_start(Manager *m, sd_bus_message *msg, Client *c, ExecRequest *req,
                       const UserInfo *u, sd_bus_error *error) {
        RunSink *run = NULL;
        Session *s;
        int r;

        if (hashmap_size(m->sessions) >= m->max_sessions)
                return sd_bus_error_setf(error, SANDBOX_ERROR_TOO_MANY_SESSIONS,
                                         "Too many sessions (%u).", m->max_sessions);
        if (manager_sessions_of_uid(m, c->uid) >= m->max_sessions_per_user)
                return sd_bus_error_setf(error, SANDBOX_ERROR_TOO_MANY_SESSIONS,
                                         "Too many sessions for uid %u (%u).", (unsigned) c->uid,
                                         m->max_sessions_per_user);
        if (req->kind != EXEC_KIND_EXEC) {
                /* what its output may take is reserved before anything runs */
                r = run_sink_new(m, c->uid, msg, req, &run, error);
                if (r < 0)
                        return r;
        }

        r = session_start(m, c, req, u, &s, error);
        if (r < 0) {
                run_sink_free(m, c->uid, run);
                return reply_errno(error, r, "Cannot start the session");
        }

        if (run)
                s->run = run; /* answered when it ends */
        else {
                /* reply before anything is relayed, so that it precedes every Output */
                r = sd_bus_reply_method_return(msg, "uu", s->id, (uint32_t) s->pid);
                if (r < 0) {
                        log_warning_errno(r, "Session %u: cannot reply to Exec, killing it: %m", s->id);
                        session_kill_now(s);
                        return r;
                }
        }

        r = session_activate(s);
        if (r < 0) {
                log_warning_errno(r, "Session %u: cannot watch it, killing it: %m", s->id);
                session_kill_now(s);
        }
        return 1;
}

static int method_signal(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t id;
        int32_t sig;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "ui", &id, &sig);
        if (r < 0)
                return r;
        if (!signal_valid(sig))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid 'signal': %i is not a signal number (1..64).", sig);
        r = session_from_message(m, msg, id, true, &s, error);
        if (r < 0)
                return r;
        if (!s)
                return 1;
        r = session_signal_from_client(s, sig);
        if (r < 0)
                return reply_errno(error, r, "Cannot send the signal");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_resize(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint16_t rows, cols;
        uint32_t id;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "uqq", &id, &rows, &cols);
        if (r < 0)
                return r;
        if (rows == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid 'rows': must be at least 1.");
        if (cols == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid 'cols': must be at least 1.");
        r = session_from_message(m, msg, id, true, &s, error);
        if (r < 0)
                return r;
        if (!s)
                return 1;
        if (!s->tty)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "Session %u runs on pipes, not a terminal.", id);
        r = session_resize(s, rows, cols);
        if (r < 0)
                return reply_errno(error, r, "Cannot resize the terminal");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_write_stdin(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const void *data;
        size_t size;
        uint32_t id;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "u", &id);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(msg, 'y', &data, &size);
        if (r < 0)
                return r;
        if (size > STDIN_QUEUE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid 'data': %zu bytes, more than a session may have "
                                         "queued (%u): send it in smaller pieces.", size, STDIN_QUEUE_MAX);
        r = session_from_message(m, msg, id, true, &s, error);
        if (r < 0)
                return r;
        if (!s)
                return 1;
        r = session_write_stdin(s, data, size, error);
        if (r < 0)
                return reply_errno(error, r, "Cannot write to stdin");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_close_stdin(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t id;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "u", &id);
        if (r < 0)
                return r;
        r = session_from_message(m, msg, id, true, &s, error);
        if (r < 0)
                return r;
        if (!s)
                return 1;
        r = session_close_stdin(s);
        if (r < 0)
                return reply_errno(error, r, "Cannot close stdin");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_ack(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t bytes;
        uint32_t id;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "ut", &id, &bytes);
        if (r < 0)
                return r;
        r = session_from_message(m, msg, id, false, &s, error);
        if (r < 0)
                return r;
        if (!s)
                return 1;
        /* Reply first: the ack may finish the session and send Exited. */
        r = sd_bus_reply_method_return(msg, NULL);
        session_ack(s, bytes);
        return r;
}

static int method_list_sessions(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        size_t state = 0;
        void *v;
        Client *c;
        int r;

        r = client_from_message(m, msg, &c);
        if (r < 0)
                return reply_errno(error, r, "Cannot identify the caller");

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(uusas)");
        if (r < 0)
                return r;
        while (hashmap_iterate(m->sessions, &state, &v)) {
                Session *s = v;

                if (!client_owns_session(c, s))
                        continue;
                r = sd_bus_message_open_container(reply, 'r', "uusas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "uus", s->id, (uint32_t) s->pid, s->user_name);
                if (r >= 0)
                        r = sd_bus_message_append_strv(reply, s->argv);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The object of a session the caller may see, running or ended (session-dbus.c). */
static int method_get_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        Manager *m = userdata;
        uint32_t id;
        Session *s;
        Client *c;
        int r;

        r = sd_bus_message_read(msg, "u", &id);
        if (r < 0)
                return r;
        r = client_from_message(m, msg, &c);
        if (r < 0)
                return reply_errno(error, r, "Cannot identify the caller");
        s = manager_find_session(m, id, true);
        if (!s || !client_owns_session(c, s))
                return sd_bus_error_setf(error, SANDBOX_ERROR_NO_SUCH_SESSION, "No session %u.", id);
        r = session_object_path(id, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int property_get_features(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        const char *reason;
        int r, errnum;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ss", "run", "session-objects");
        if (r >= 0 && profile_program_landlock(m->profile_program, &reason, &errnum) > 0)
                r = sd_bus_message_append(reply, "s", "landlock");
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", NULL, offsetof(Manager, version), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Features", "as", property_get_features, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_NAMES("Exec", "asa{sv}", SD_BUS_PARAM(argv) SD_BUS_PARAM(options),
                                 "uu", SD_BUS_PARAM(id) SD_BUS_PARAM(pid),
                                 method_exec, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Run", "asa{sv}", SD_BUS_PARAM(argv) SD_BUS_PARAM(options),
                                 "iiayaya{sv}", SD_BUS_PARAM(code) SD_BUS_PARAM(signal)
                                 SD_BUS_PARAM(stdout) SD_BUS_PARAM(stderr) SD_BUS_PARAM(info),
                                 method_run, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RunText", "asa{sv}", SD_BUS_PARAM(argv) SD_BUS_PARAM(options),
                                 "iissa{sv}", SD_BUS_PARAM(code) SD_BUS_PARAM(signal)
                                 SD_BUS_PARAM(stdout) SD_BUS_PARAM(stderr) SD_BUS_PARAM(info),
                                 method_run_text, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Signal", "ui", SD_BUS_PARAM(id) SD_BUS_PARAM(signal),
                                 "", , method_signal, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Resize", "uqq", SD_BUS_PARAM(id) SD_BUS_PARAM(rows) SD_BUS_PARAM(cols),
                                 "", , method_resize, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("WriteStdin", "uay", SD_BUS_PARAM(id) SD_BUS_PARAM(data),
                                 "", , method_write_stdin, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CloseStdin", "u", SD_BUS_PARAM(id),
                                 "", , method_close_stdin, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Ack", "ut", SD_BUS_PARAM(id) SD_BUS_PARAM(bytes),
                                 "", , method_ack, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetSession", "u", SD_BUS_PARAM(id), "o", SD_BUS_PARAM(path),
                                 method_get_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListSessions", "", , "a(uusas)", SD_BUS_PARAM(sessions),
                                 method_list_sessions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("Output", "uuay", SD_BUS_PARAM(id) SD_BUS_PARAM(stream) SD_BUS_PARAM(data), 0),
        SD_BUS_SIGNAL_WITH_NAMES("Exited", "uii", SD_BUS_PARAM(id) SD_BUS_PARAM(code) SD_BUS_PARAM(signal), 0),
        SD_BUS_VTABLE_END
};

int manager_add_object(Manager *m, sd_bus *bus, sd_bus_slot **ret_slot) {
        int r;

        r = sd_bus_add_object_vtable(bus, ret_slot, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE,
                                     manager_vtable, m);
        if (r < 0)
                return r;
        return session_add_objects(m, bus);
}
