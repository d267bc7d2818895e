/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's state: its connections, the clients on them, idle exit and status. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include "client.h"
#include "exec-queue.h"
#include "listen.h"
#include "log.h"
#include "manager.h"
#include "output-splice.h"
#include "p2p-input.h"
#include "polkit.h"
#include "session.h"

static int manager_drain_event(sd_event_source *es, void *userdata) {
        manager_resume_paused(userdata);
        return 0;
}

/* Once at startup: whether "restricted" keeps its commands out of other processes' memory. */
static void manager_log_landlock(Manager *m) {
        const char *reason;
        int error, abi;

        abi = profile_program_landlock(m->profile_program, &reason, &error);
        if (abi > 0)
                log_info("Landlock ABI %i: restricted sessions run in a Landlock domain of their own.", abi);
        else if (error != 0)
                log_warning_errno(error,
                                  "Restricted sessions get no Landlock domain (%s: %m): they can write to "
                                  "processes of their user through /proc/PID/mem (ptrace stays denied).",
                                  reason);
        else
                log_warning("Restricted sessions get no Landlock domain (%s): they can write to processes "
                            "of their user through /proc/PID/mem (ptrace stays denied).",
                            reason);
}

int manager_new(Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        struct group *gr;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->exit_epoll = -EBADF;
        m->use_bus = true;
        m->max_sessions = DEFAULT_MAX_SESSIONS;
        m->max_sessions_per_user = DEFAULT_MAX_SESSIONS_PER_USER;
        m->max_connections = DEFAULT_MAX_CONNECTIONS;
        m->max_connections_per_user = DEFAULT_MAX_CONNECTIONS_PER_USER;
        m->idle_timeout_usec = DEFAULT_IDLE_TIMEOUT_USEC;

        m->sessions = hashmap_new(trivial_hash, trivial_equal);
        m->bus_clients = hashmap_new(string_hash, string_equal);
        m->p2p_by_bus = hashmap_new(trivial_hash, trivial_equal);
        m->sessions_per_uid = hashmap_new(trivial_hash, trivial_equal);
        m->bus_users = hashmap_new(trivial_hash, trivial_equal);
        m->stdin_per_uid = hashmap_new(trivial_hash, trivial_equal);
        m->run_output_per_uid = hashmap_new(trivial_hash, trivial_equal);
        m->ended = hashmap_new(trivial_hash, trivial_equal);
        m->ended_per_uid = hashmap_new(trivial_hash, trivial_equal);
        m->retain_usec = DEFAULT_RETAIN_USEC;
        m->read_buffer = malloc(OUTPUT_CHUNK_MAX);
        if (!m->sessions || !m->bus_clients || !m->p2p_by_bus || !m->sessions_per_uid || !m->stdin_per_uid ||
            !m->run_output_per_uid || !m->ended || !m->ended_per_uid ||
            !m->bus_users || !m->read_buffer)
                return -ENOMEM;

        m->version = PACKAGE_VERSION;
        m->notify = !!getenv("NOTIFY_SOCKET");

        /* PTYs belong to the tty group, as login terminals do; the name lookup is done once. */
        gr = getgrnam("tty");
        m->tty_gid = gr ? gr->gr_gid : 5;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        m->exit_epoll = epoll_create1(EPOLL_CLOEXEC);
        if (m->exit_epoll < 0)
                return -errno;
        r = sd_event_add_io(m->event, &m->exit_source, m->exit_epoll, EPOLLIN, manager_exit_event, m);
        if (r < 0)
                return r;
        /* Exits first: finishing a session drains its output anyway, and it takes its hung-up
         * pipes out of the loop in batches instead of one dispatch (and one re-poll of every
         * other ready fd) each. */
        (void) sd_event_source_set_priority(m->exit_source, SD_EVENT_PRIORITY_NORMAL - 10);

        r = sd_event_add_post(m->event, &m->drain_source, manager_drain_event, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->drain_source, SD_EVENT_OFF);

        r = profile_program_new(&m->profile_program);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare the restricted profile: %m");
        manager_log_landlock(m);

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        void *v;
        size_t state;

        if (!m)
                return NULL;

        /* Shutdown: nobody will be there to relay output or report exits. */
        for (;;) {
                state = 0;
                if (!hashmap_iterate(m->sessions, &state, &v))
                        break;
                session_shutdown(v);
        }
        while (m->ended_first)
                session_free(m->ended_first);
        while (m->p2p_clients)
                client_free(m->p2p_clients);
        for (;;) {
                state = 0;
                if (!hashmap_iterate(m->bus_clients, &state, &v))
                        break;
                client_free(v);
        }
        while (m->listeners)
                listener_free(m->listeners);
        exec_queue_done(m);

        sd_event_source_disable_unref(m->idle_source);
        sd_event_source_disable_unref(m->ping_retry);
        sd_event_source_disable_unref(m->bus_reconnect);
        sd_event_source_disable_unref(m->drain_source);
        sd_event_source_disable_unref(m->exit_source);
        safe_close(m->exit_epoll);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        hashmap_free(m->sessions);
        hashmap_free(m->bus_clients);
        hashmap_free(m->p2p_by_bus);
        hashmap_free(m->sessions_per_uid);
        hashmap_free(m->bus_users);
        hashmap_free(m->stdin_per_uid);
        hashmap_free(m->run_output_per_uid);
        hashmap_free(m->ended);
        hashmap_free(m->ended_per_uid);
        profile_program_free(m->profile_program);
        polkit_registry_free(m->polkit_registry);
        free(m->read_buffer);
        free(m->vsock_allow_cids);
        free(m);
        return NULL;
}

uint64_t uid_count_get(Hashmap *h, uid_t uid) {
        /* Stored as count + 1 keyed by uid + 1, so that neither is a NULL pointer. */
        void *v = hashmap_get(h, UINT_TO_PTR((uintptr_t) uid + 1));

        return v ? (uint64_t) (uintptr_t) v - 1 : 0;
}

void uid_count_add(Hashmap *h, uid_t uid, int64_t delta) {
        const void *key = UINT_TO_PTR((uintptr_t) uid + 1);
        uint64_t n = uid_count_get(h, uid) + (uint64_t) delta;

        if (delta == 0)
                return;
        hashmap_remove(h, key);
        /* Fails only on OOM, which undercounts this uid until what it counts is gone. */
        if (n > 0 && hashmap_put(h, key, UINT_TO_PTR((uintptr_t) n + 1)) < 0)
                log_oom();
}

unsigned manager_sessions_of_uid(Manager *m, uid_t uid) {
        return (unsigned) uid_count_get(m->sessions_per_uid, uid);
}

void manager_count_session(Manager *m, uid_t uid, int delta) {
        uid_count_add(m->sessions_per_uid, uid, delta);
}

static bool manager_is_idle(Manager *m) {
        /* Ended records do not keep the daemon: they are kept while it runs. */
        return hashmap_size(m->sessions) == 0 && m->n_p2p_clients == 0;
}

static int manager_name_released(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;

        /* Calls sent to the name before it was released have all arrived by now, ahead of this
         * reply; if one of them started a session, stay for it (without the name) and exit when
         * idle again. Calls after the release activate a new instance. */
        if (!manager_is_idle(m)) {
                log_info("A session started while releasing the bus name; exiting when it ends.");
                return 0;
        }
        return sd_event_exit(m->event, 0);
}

static int manager_idle_event(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        if (!manager_is_idle(m))
                return 0;
        log_info("Idle for %llu s, exiting.", (unsigned long long) (m->idle_timeout_usec / 1000000));
        (void) sd_notify(false, "STOPPING=1");
        if (!m->bus || m->exiting)
                return sd_event_exit(m->event, 0);

        /* Release the name first and exit only when the bus confirms it, so that no call that
         * was on its way to us is lost. */
        m->exiting = true;
        r = sd_bus_call_method_async(m->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "ReleaseName", manager_name_released, m,
                                     "s", SANDBOX_BUS_NAME);
        if (r < 0)
                return sd_event_exit(m->event, 0);
        return 0;
}

void manager_check_idle(Manager *m) {
        unsigned n_sessions = (unsigned) hashmap_size(m->sessions);
        bool idle = manager_is_idle(m);
        int r;

        unsigned n_clients = m->n_p2p_clients + (unsigned) hashmap_size(m->bus_clients);

        /* Runs at every session start and end: format nothing when no service manager listens. */
        if (m->notify)
                (void) sd_notifyf(false, "STATUS=%u session%s, %u client%s.", n_sessions,
                                  n_sessions == 1 ? "" : "s", n_clients, n_clients == 1 ? "" : "s");

        if (m->idle_timeout_usec == 0 || !m->event || m->exiting ||
            sd_event_get_state(m->event) == SD_EVENT_EXITING || sd_event_get_state(m->event) == SD_EVENT_FINISHED)
                return;
        if (!idle) {
                (void) sd_event_source_set_enabled(m->idle_source, SD_EVENT_OFF);
                return;
        }
        if (m->idle_source) {
                r = sd_event_source_set_time_relative(m->idle_source, m->idle_timeout_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(m->idle_source, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(m->event, &m->idle_source, CLOCK_MONOTONIC,
                                               m->idle_timeout_usec, 100 * 1000, manager_idle_event, m);
        if (r < 0)
                log_warning_errno(r, "Cannot arm the idle timer: %m");
}

/* One match for every name that leaves the bus: a rule per client would run into the bus's
 * limit on match rules per connection. */
static int manager_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name, *old, *new;
        Client *c;
        int r;

        r = sd_bus_message_read(msg, "sss", &name, &old, &new);
        if (r < 0 || new[0] != 0)
                return 0;
        c = hashmap_get(m->bus_clients, name);
        if (c) {
                log_debug("Bus client %s disconnected.", name);
                client_free(c);
        }
        return 0;
}

/* Output is bounded so that no bus refuses it (see BUS_OUTPUT_PING_AT); if one does anyway, say so:
 * the Output is lost, and nothing else would tell. dbus-daemon and dbus-broker answer a signal
 * they refuse with an error that names no call of ours, which only a filter sees. */
static int manager_bus_filter(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const sd_bus_error *e;
        uint8_t type;

        if (m->bus_refusal_logged || sd_bus_message_get_type(msg, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_ERROR)
                return 0;
        e = sd_bus_message_get_error(msg);
        if (!e || !sd_bus_error_has_name(e, SD_BUS_ERROR_LIMITS_EXCEEDED) ||
            !streq_ptr(sd_bus_message_get_sender(msg), "org.freedesktop.DBus"))
                return 0;
        log_warning("The bus refused a message of ours (%s); if it was Output, it is lost.",
                    e->message ?: e->name);
        m->bus_refusal_logged = true;
        return 0;
}

static int manager_bus_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* Takes the name only if nobody else has it (sd-bus's default, without SD_BUS_NAME_QUEUE). */
int manager_connect_bus(Manager *m) {
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(m->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", manager_bus_disconnected, m);
        if (r < 0)
                return r;
        r = sd_bus_add_filter(m->bus, NULL, manager_bus_filter, m);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(m->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameOwnerChanged", manager_name_owner_changed, m);
        if (r < 0)
                return r;
        r = manager_add_object(m, m->bus, NULL);
        if (r < 0)
                return r;
        r = sd_bus_request_name(m->bus, SANDBOX_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the name %s: %m", SANDBOX_BUS_NAME);
        return 0;
}

static int manager_bus_reconnect_event(sd_event_source *es, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now_usec = 0;
        int r;

        m->bus = sd_bus_flush_close_unref(m->bus);
        r = manager_connect_bus(m);
        if (r >= 0) {
                log_notice("Back on the system bus as %s.", SANDBOX_BUS_NAME);
                m->bus_reconnect = sd_event_source_disable_unref(m->bus_reconnect);
                manager_check_idle(m);
                return 0;
        }
        m->bus = sd_bus_flush_close_unref(m->bus);
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now_usec);
        if (r == -EEXIST) {
                /* Another instance serves the name now (bus activation while we were away). */
                log_error("Another process owns %s now; exiting.", SANDBOX_BUS_NAME);
                return sd_event_exit(m->event, r);
        }
        if (now_usec - m->bus_lost_usec >= BUS_RECONNECT_TIMEOUT_USEC) {
                log_error_errno(r, "Could not get back on the system bus for %llu s (%m); exiting.",
                                (unsigned long long) (BUS_RECONNECT_TIMEOUT_USEC / 1000000));
                return sd_event_exit(m->event, r);
        }
        log_debug_errno(r, "Cannot reconnect to the system bus yet: %m");
        r = sd_event_source_set_time_relative(es, BUS_RECONNECT_INTERVAL_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
        if (r < 0)
                return sd_event_exit(m->event, r);
        return 0;
}

/* The bus closed our connection (it went away, or it dropped us): a daemon off the bus would be
 * unreachable for every bus client while looking alive. Its bus clients are gone with the
 * connection (their sessions are orphaned, as when a client leaves); then get back on the bus and
 * take the name again, or exit non-zero when that fails for BUS_RECONNECT_TIMEOUT_USEC. */
static int manager_bus_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        void *v;
        int r;

        if (m->exiting)
                return sd_event_exit(m->event, 0); /* released the name, exiting anyway */
        log_error("Lost the connection to the system bus; orphaning the sessions of %u bus client%s "
                  "and reconnecting.", (unsigned) hashmap_size(m->bus_clients),
                  hashmap_size(m->bus_clients) == 1 ? "" : "s");
        for (;;) {
                size_t state = 0;

                if (!hashmap_iterate(m->bus_clients, &state, &v))
                        break;
                client_free(v);
        }
        m->bus_refusal_logged = false;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &m->bus_lost_usec);
        /* Not from within the old connection's dispatch: it is closed and freed there. */
        r = sd_event_add_time_relative(m->event, &m->bus_reconnect, CLOCK_MONOTONIC, 0, 0,
                                       manager_bus_reconnect_event, m);
        if (r < 0) {
                log_error_errno(r, "Cannot arm the reconnect timer, exiting: %m");
                return sd_event_exit(m->event, r);
        }
        return 0;
}

/* At exit, sd-bus flushes each connection (its exit source), and sd_bus_flush() waits without a
 * bound: for a peer still authenticating, until it finishes; for replies queued to a peer that does
 * not read, until it does. Such peers are dropped first, so that one of them cannot hold up the
 * exit. */
static int manager_on_quit(sd_event_source *es, void *userdata) {
        Manager *m = userdata;
        Client *c, *n;

        LIST_FOREACH_SAFE(clients, c, n, m->p2p_clients) {
                uint64_t queued = 0;

                if (sd_bus_is_ready(c->bus) > 0 &&
                    (sd_bus_get_n_queued_write(c->bus, &queued) < 0 || queued == 0))
                        continue;
                log_debug("Exiting: dropping a peer-to-peer client (uid %u) that %s.", (unsigned) c->uid,
                          queued > 0 ? "has replies waiting to be read" : "is still authenticating");
                client_free(c);
        }
        return 0;
}

int manager_run(Manager *m) {
        sd_event_source *es = NULL;
        int r;

        r = sd_event_add_exit(m->event, &es, manager_on_quit, m);
        if (r < 0)
                return r;
        /* before sd-bus's own exit sources, which run at the connections' priority */
        r = sd_event_source_set_priority(es, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0) {
                manager_check_idle(m);
                (void) sd_notify(false, "READY=1");
                r = sd_event_loop(m->event);
        }
        sd_event_source_disable_unref(es);
        return r;
}
