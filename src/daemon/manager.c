/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's state: its connections, the clients on them, idle exit and status. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include "exec-queue.h"
#include "listen.h"
#include "log.h"
#include "polkit.h"
#include "manager.h"
#include "output-splice.h"
#include "p2p-input.h"
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
        m->read_buffer = malloc(OUTPUT_CHUNK_MAX);
        if (!m->sessions || !m->bus_clients || !m->p2p_by_bus || !m->sessions_per_uid || !m->stdin_per_uid ||
            !m->bus_users || !m->read_buffer)
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

static void client_output_forget(Client *c);

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
                p2p_input_free(c->input);
                sd_bus_close(c->bus);
        } else if (c->name)
                hashmap_remove(c->manager->bus_clients, c->name);

        exec_queue_drop_client(c);
        client_output_forget(c);
        sd_bus_slot_unref(c->ping_slot);
        sd_bus_unref(c->bus);
        free(c->name);
        manager_check_idle(c->manager);
        free(c);
        return NULL;
}

/* Output in flight on the bus, see BUS_OUTPUT_PING_AT */

static BusUser *bus_user_get(Manager *m, uid_t uid) {
        const void *key = UINT_TO_PTR((uintptr_t) uid + 1);
        BusUser *u = hashmap_get(m->bus_users, key);

        if (u)
                return u;
        u = calloc(1, sizeof(BusUser));
        if (!u)
                return NULL;
        u->uid = uid;
        if (hashmap_put(m->bus_users, key, u) < 0) {
                free(u);
                return NULL;
        }
        return u;
}

static void bus_user_release(Manager *m, BusUser *u) {
        if (!u || --u->n_clients > 0)
                return;
        hashmap_remove(m->bus_users, UINT_TO_PTR((uintptr_t) u->uid + 1));
        free(u);
}

/* 'bytes' of what was sent to c are confirmed read, or will never be (it is gone). */
static void client_output_confirm(Client *c, uint64_t bytes) {
        bytes = MIN(bytes, c->output_unconfirmed);
        c->output_unconfirmed -= bytes;
        c->bus_user->output_unconfirmed -= bytes;
        c->manager->bus_output_unconfirmed -= bytes;
}

/* Whether c's uid, or the daemon as a whole, is at its bound. */
static bool client_output_blocked(Client *c) {
        return c->bus_user->output_unconfirmed >= BUS_OUTPUT_UID_MAX ||
               c->manager->bus_output_unconfirmed >= BUS_OUTPUT_TOTAL_MAX;
}

static bool client_wants_ping(Client *c) {
        if (!c->name || c->ping_slot || c->ping_disabled || c->output_unconfirmed == 0)
                return false;
        /* At a bound, every client with Output in flight is asked: those that read answer, and
         * their sessions go on; waiting for BUS_OUTPUT_PING_AT would wait for ever. */
        return c->output_unconfirmed >= BUS_OUTPUT_PING_AT || client_output_blocked(c);
}

static void client_ping_release(Client *c) {
        if (!c->ping_slot)
                return;
        c->ping_slot = sd_bus_slot_unref(c->ping_slot);
        c->bus_user->n_pings--;
        c->manager->bus_pings--;
}

static int client_ping(Client *c);

/* Pings every client that wants it, as far as the ping slots go. */
static void manager_ping_clients(Manager *m) {
        size_t state = 0;
        void *v;

        while (m->bus_pings < BUS_PINGS_MAX && hashmap_iterate(m->bus_clients, &state, &v))
                if (client_wants_ping(v))
                        (void) client_ping(v);
}

static int manager_ping_retry_event(sd_event_source *es, uint64_t usec, void *userdata) {
        manager_ping_clients(userdata);
        return 0;
}

static void manager_ping_retry_later(Manager *m) {
        int r;

        if (m->ping_retry)
                r = sd_event_source_set_time_relative(m->ping_retry, 1000000);
        else
                r = sd_event_add_time_relative(m->event, &m->ping_retry, CLOCK_MONOTONIC, 1000000,
                                               100 * 1000, manager_ping_retry_event, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->ping_retry, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Cannot arm the ping retry timer: %m");
}

static int client_ping_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Client *c = userdata;
        Manager *m = c->manager;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        bool from_bus = streq_ptr(sd_bus_message_get_sender(reply), "org.freedesktop.DBus");

        client_ping_release(c);
        if (e && from_bus && sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)) {
                /* The bus policy does not let us ping (an old policy file?): then this check
                 * cannot work, and must not hold the client's output back. */
                if (!m->ping_denied_logged)
                        log_warning("The bus policy denies pinging clients; a client that stops "
                                    "reading can stall the daemon's bus connection.");
                m->ping_denied_logged = true;
                client_output_confirm(c, c->output_unconfirmed);
                c->ping_disabled = true;
        } else if (e && (from_bus || sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY))) {
                /* Not the client's answer: the bus refused the call, or our connection is going.
                 * Nothing is confirmed; ask again later, not in a loop with the bus. */
                log_debug("Ping of %s failed: %s", c->name, e->message ?: e->name);
                manager_ping_retry_later(m);
        } else
                /* Any answer from the client itself, even an error, means it has read everything
                 * sent before the ping. */
                client_output_confirm(c, c->output_pinged);
        c->output_pinged = 0;

        /* This client again if it has enough in flight still, and any that waited for a slot. */
        manager_ping_clients(m);
        manager_resume_paused(m);
        return 0;
}

static int client_ping(Client *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        Manager *m = c->manager;
        int r;

        if (c->bus_user->n_pings >= BUS_PINGS_PER_UID_MAX || m->bus_pings >= BUS_PINGS_MAX)
                return 0; /* pinged when an answer frees a slot */

        r = sd_bus_message_new_method_call(c->bus, &msg, c->name, "/", "org.freedesktop.DBus.Peer", "Ping");
        /* No timeout: a ping sent again would be one more call that dbus-daemon holds open for the
         * client (it never expires them), and would confirm nothing sooner. */
        if (r >= 0)
                r = sd_bus_call_async(c->bus, &c->ping_slot, msg, client_ping_reply, c, UINT64_MAX);
        if (r < 0) {
                /* Cannot ask (the connection is going): do not hold the client's output back. */
                client_output_confirm(c, c->output_unconfirmed);
                return log_debug_errno(r, "Cannot ping %s: %m", c->name);
        }
        c->output_pinged = c->output_unconfirmed;
        c->bus_user->n_pings++;
        m->bus_pings++;
        return 0;
}

/* The client is gone: what was in flight to it no longer counts, and its uid's and the daemon's
 * bounds may have room again for other clients' sessions. */
static void client_output_forget(Client *c) {
        Manager *m = c->manager;

        if (!c->bus_user)
                return;
        client_ping_release(c);
        client_output_confirm(c, c->output_unconfirmed);
        bus_user_release(m, c->bus_user);
        c->bus_user = NULL;
        if (m->paused) {
                manager_ping_clients(m);
                manager_resume_paused(m);
        }
}

void client_output_sent(Client *c, size_t size) {
        bool blocked;

        if (!c->name || c->ping_disabled)
                return; /* peer-to-peer: the socket itself pushes back */
        blocked = client_output_blocked(c);
        c->output_unconfirmed += size;
        c->bus_user->output_unconfirmed += size;
        c->manager->bus_output_unconfirmed += size;
        if (!blocked && client_output_blocked(c))
                manager_ping_clients(c->manager);
        else if (client_wants_ping(c))
                (void) client_ping(c);
}

bool client_output_congested(Client *c) {
        if (!c->name || c->ping_disabled)
                return false;
        return c->output_unconfirmed >= BUS_OUTPUT_CLIENT_MAX || client_output_blocked(c);
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

int client_new_p2p(Manager *m, sd_bus *bus, uid_t uid, int socket_fd, P2PInput *input, Client **ret) {
        Client *c;
        int r;

        c = client_alloc(m, bus);
        if (!c) {
                p2p_input_free(input);
                return -ENOMEM;
        }
        c->p2p = true;
        c->uid = uid;
        c->socket_fd = socket_fd;
        c->input = input;
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
        c->bus_user = bus_user_get(m, uid);
        if (c->bus_user)
                c->bus_user->n_clients++;
        c->name = strdup(sender);
        if (!c->bus_user || !c->name || hashmap_put(m->bus_clients, c->name, c) < 0) {
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
