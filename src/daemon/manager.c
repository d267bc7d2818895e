/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's state: its connections, the clients on them, idle exit and status. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include "listen.h"
#include "log.h"
#include "polkit.h"
#include "manager.h"
#include "output-splice.h"
#include "session.h"

static int manager_drain_event(sd_event_source *es, void *userdata) {
        manager_resume_paused(userdata);
        return 0;
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
        m->idle_timeout_usec = DEFAULT_IDLE_TIMEOUT_USEC;

        m->sessions = hashmap_new(trivial_hash, trivial_equal);
        m->bus_clients = hashmap_new(string_hash, string_equal);
        m->p2p_by_bus = hashmap_new(trivial_hash, trivial_equal);
        m->sessions_per_uid = hashmap_new(trivial_hash, trivial_equal);
        m->read_buffer = malloc(OUTPUT_CHUNK_MAX);
        if (!m->sessions || !m->bus_clients || !m->p2p_by_bus || !m->sessions_per_uid || !m->read_buffer)
                return -ENOMEM;

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
                session_kill_now(v);
        }
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

        sd_event_source_disable_unref(m->idle_source);
        sd_event_source_disable_unref(m->drain_source);
        sd_event_source_disable_unref(m->exit_source);
        safe_close(m->exit_epoll);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        hashmap_free(m->sessions);
        hashmap_free(m->bus_clients);
        hashmap_free(m->p2p_by_bus);
        hashmap_free(m->sessions_per_uid);
        profile_program_free(m->profile_program);
        polkit_registry_free(m->polkit_registry);
        free(m->read_buffer);
        free(m);
        return NULL;
}

unsigned manager_sessions_of_uid(Manager *m, uid_t uid) {
        /* Stored as count + 1 keyed by uid + 1, so that neither is a NULL pointer. */
        void *v = hashmap_get(m->sessions_per_uid, UINT_TO_PTR((uintptr_t) uid + 1));

        return v ? PTR_TO_UINT(v) - 1 : 0;
}

void manager_count_session(Manager *m, uid_t uid, int delta) {
        const void *key = UINT_TO_PTR((uintptr_t) uid + 1);
        unsigned n = manager_sessions_of_uid(m, uid) + (unsigned) delta;

        hashmap_remove(m->sessions_per_uid, key);
        /* Fails only on OOM, which undercounts this uid until its sessions end. */
        if (n > 0 && hashmap_put(m->sessions_per_uid, key, UINT_TO_PTR(n + 1)) < 0)
                log_oom();
}

static bool manager_is_idle(Manager *m) {
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

/* Clients */

static Client *client_alloc(Manager *m, sd_bus *bus) {
        Client *c = calloc(1, sizeof(Client));

        if (!c)
                return NULL;
        c->manager = m;
        c->bus = sd_bus_ref(bus);
        return c;
}

Client *client_free(Client *c) {
        Session *s, *n;

        if (!c)
                return NULL;

        LIST_FOREACH_SAFE(by_owner, s, n, c->sessions)
                session_orphan(s);

        if (c->p2p) {
                LIST_REMOVE(clients, c->manager->p2p_clients, c);
                c->manager->n_p2p_clients--;
                hashmap_remove(c->manager->p2p_by_bus, c->bus);
                sd_event_source_disable_unref(c->auth_timeout);
                sd_event_source_disable_unref(c->auth_post);
                sd_bus_close(c->bus);
        } else if (c->name)
                hashmap_remove(c->manager->bus_clients, c->name);

        sd_bus_slot_unref(c->ping_slot);
        sd_bus_unref(c->bus);
        free(c->name);
        manager_check_idle(c->manager);
        free(c);
        return NULL;
}

static int client_ping(Client *c);

static int client_ping_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Client *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        c->ping_slot = sd_bus_slot_unref(c->ping_slot);
        /* Any answer, even an error from the client, means it has read everything sent before
         * the ping. No answer in time means it has not: ask again. */
        if (e && (sd_bus_error_has_name(e, SD_BUS_ERROR_TIMEOUT) || sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY))) {
                (void) client_ping(c);
                return 0;
        }
        if (e && sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED) &&
            streq_ptr(sd_bus_message_get_sender(reply), "org.freedesktop.DBus")) {
                /* The bus policy does not let us ping (an old policy file?): then this check
                 * cannot work, and must not hold the client's output back. */
                if (!c->manager->ping_denied_logged)
                        log_warning("The bus policy denies pinging clients; a client that stops "
                                    "reading can stall the daemon's bus connection.");
                c->manager->ping_denied_logged = true;
                c->output_unconfirmed = c->output_pinged = 0;
                c->ping_disabled = true;
                manager_resume_paused(c->manager);
                return 0;
        }
        c->output_unconfirmed -= MIN(c->output_pinged, c->output_unconfirmed);
        c->output_pinged = 0;
        if (c->output_unconfirmed >= BUS_OUTPUT_UNCONFIRMED_MAX)
                (void) client_ping(c);
        manager_resume_paused(c->manager);
        return 0;
}

static int client_ping(Client *c) {
        int r;

        c->output_pinged = c->output_unconfirmed;
        r = sd_bus_call_method_async(c->bus, &c->ping_slot, c->name, "/", "org.freedesktop.DBus.Peer",
                                     "Ping", client_ping_reply, c, NULL);
        if (r < 0) {
                /* Cannot ask: do not hold the client's output back on our account. */
                c->output_unconfirmed = c->output_pinged = 0;
                return log_debug_errno(r, "Cannot ping %s: %m", c->name);
        }
        return 0;
}

void client_output_sent(Client *c, size_t size) {
        if (!c->name || c->ping_disabled)
                return; /* peer-to-peer: the socket itself pushes back */
        c->output_unconfirmed += size;
        if (!c->ping_slot && c->output_unconfirmed >= BUS_OUTPUT_UNCONFIRMED_MAX)
                (void) client_ping(c);
}

bool client_output_congested(Client *c) {
        return c->name && c->output_unconfirmed >= 2 * (uint64_t) BUS_OUTPUT_UNCONFIRMED_MAX;
}

static int client_p2p_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Client *c = userdata;

        log_debug("Peer-to-peer client (uid %u) disconnected.", (unsigned) c->uid);
        client_free(c);
        return 0;
}

/* sd-bus reads what follows BEGIN into its buffer during authentication and, once running, only
 * looks at it again when the socket wakes it up: a first call sent together with BEGIN would wait
 * for the next one. So, right after the connection is ready, process what is buffered. */
static int client_auth_post(sd_event_source *es, void *userdata) {
        Client *c = userdata;
        Manager *m = c->manager;
        sd_bus *bus;
        int r = 0;

        if (sd_bus_is_ready(c->bus) <= 0)
                return 0;
        c->auth_post = sd_event_source_disable_unref(c->auth_post);
        c->auth_timeout = sd_event_source_disable_unref(c->auth_timeout);

        /* Processing may free c (a disconnect); hold the bus, not the client. */
        bus = sd_bus_ref(c->bus);
        for (unsigned i = 0; i < 1024; i++) {
                r = sd_bus_process(bus, NULL);
                if (r <= 0)
                        break;
        }
        if (r < 0) {
                /* A broken message: nothing would wake this connection again. */
                Client *still = hashmap_get(m->p2p_by_bus, bus);

                log_debug_errno(r, "Dropping a peer-to-peer client that sent garbage: %m");
                if (still)
                        client_free(still);
        }
        sd_bus_unref(bus);
        return 0;
}

static int client_auth_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        Client *c = userdata;

        if (sd_bus_is_ready(c->bus) > 0) {
                c->auth_timeout = sd_event_source_disable_unref(c->auth_timeout);
                return 0;
        }
        log_info("Peer-to-peer client did not authenticate in time, dropping it.");
        client_free(c);
        return 0;
}

/* Runs before every call on a peer-to-peer connection: a client that sends calls but does not
 * read the replies would make them pile up in our memory. */
static int client_p2p_filter(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Client *c = userdata;
        uint64_t n;

        if (sd_bus_get_n_queued_write(c->bus, &n) < 0 || n < P2P_WRITE_QUEUE_MAX)
                return 0;
        log_warning("Dropping a peer-to-peer client (uid %u) that does not read its replies.",
                    (unsigned) c->uid);
        client_free(c);
        return 1;
}

int client_new_p2p(Manager *m, sd_bus *bus, uid_t uid, Client **ret) {
        Client *c;
        int r;

        c = client_alloc(m, bus);
        if (!c)
                return -ENOMEM;
        c->p2p = true;
        c->uid = uid;
        client_splice_init(c);
        LIST_PREPEND(clients, m->p2p_clients, c);
        m->n_p2p_clients++;

        r = hashmap_put(m->p2p_by_bus, bus, c);
        if (r < 0)
                goto fail;
        /* Floating slots: they go with the connection, even when it is closed from within one. */
        r = manager_add_object(m, bus, NULL);
        if (r < 0)
                goto fail;
        r = sd_bus_add_filter(bus, NULL, client_p2p_filter, c);
        if (r < 0)
                goto fail;
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local",
                                "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", client_p2p_disconnected, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(m->event, &c->auth_timeout, CLOCK_MONOTONIC, P2P_AUTH_TIMEOUT_USEC,
                                       100 * 1000, client_auth_timeout, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_post(m->event, &c->auth_post, client_auth_post, c);
        if (r < 0)
                goto fail;

        manager_check_idle(m);
        if (ret)
                *ret = c;
        return 0;
fail:
        client_free(c);
        return r;
}

static int client_new_bus(Manager *m, sd_bus_message *msg, Client **ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(msg);
        Client *c;
        uid_t uid;
        int r;

        if (!sender)
                return -EBADMSG;
        /* The bus driver's word for the uid; dbus-daemon attaches no credentials itself. */
        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return r;

        c = client_alloc(m, m->bus);
        if (!c)
                return -ENOMEM;
        c->uid = uid;
        c->name = strdup(sender);
        if (!c->name || hashmap_put(m->bus_clients, c->name, c) < 0) {
                free(c->name);
                c->name = NULL;
                client_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int client_from_message(Manager *m, sd_bus_message *msg, Client **ret) {
        sd_bus *bus = sd_bus_message_get_bus(msg);
        const char *sender;
        Client *c;

        if (bus != m->bus) {
                c = hashmap_get(m->p2p_by_bus, bus);
                if (!c)
                        return -ENOTCONN;
                *ret = c;
                return 0;
        }
        sender = sd_bus_message_get_sender(msg);
        c = sender ? hashmap_get(m->bus_clients, sender) : NULL;
        if (c) {
                *ret = c;
                return 0;
        }
        return client_new_bus(m, msg, ret);
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

int manager_connect_bus(Manager *m) {
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
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

int manager_run(Manager *m) {
        manager_check_idle(m);
        (void) sd_notify(false, "READY=1");
        return sd_event_loop(m->event);
}
