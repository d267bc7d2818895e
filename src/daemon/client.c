/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "exec-queue.h"
#include "log.h"
#include "output-splice.h"
#include "p2p-input.h"
#include "session.h"

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

        /* Its Waits first: orphaning tells those who wait, and it is not one of them any more. */
        while (c->waiters)
                waiter_free(c->waiters);
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

void client_output_session_ended(Client *c) {
        /* What is left in flight below BUS_OUTPUT_PING_AT would otherwise count against the uid's
         * bound until the client's next large output: a client that reads its Exited answers this
         * ping with it, and its uid's other connections get the room back. Small leftovers are not
         * worth a message per session. */
        if (c->name && !c->ping_slot && !c->ping_disabled && c->output_unconfirmed >= BUS_OUTPUT_PING_AT / 8)
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
