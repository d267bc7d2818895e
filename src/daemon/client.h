/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Someone who starts sessions: a unique name on the bus, or a peer-to-peer connection; and the
 * bounds on the Output in flight to bus clients (pings, see BUS_OUTPUT_PING_AT). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "manager.h"

/* The bus clients of one uid, for the bounds on Output in flight to them. */
struct BusUser {
        uid_t uid;
        unsigned n_clients;
        unsigned n_pings;               /* pings to its clients awaiting an answer */
        uint64_t output_unconfirmed;    /* the sum of its clients' */
};

/* Someone who started sessions: a unique name on the bus, or a peer-to-peer connection. */
struct Client {
        Manager *manager;
        sd_bus *bus;
        char *name;                     /* unique bus name; NULL on a peer-to-peer connection */
        uid_t uid;
        sd_bus_track *track;            /* bus clients: notices the name going away */
        sd_event_source *auth_timeout;
        sd_event_source *auth_post;     /* processes what came with BEGIN, once ready */
        Session *sessions;
        uint64_t output_unconfirmed;    /* bus: Output bytes sent since the last answered ping */
        uint64_t output_pinged;         /* ... of which the pending ping confirms this many */
        sd_bus_slot *ping_slot;
        BusUser *bus_user;              /* bus: what is in flight to all clients of this uid */
        bool ping_disabled;
        bool p2p;
        int socket_fd;                  /* p2p: the peer's socket, sd-bus's output fd (it owns it) */
        P2PInput *input;                /* p2p: reads socket_fd for sd-bus */
        int splice_sndbuf;              /* p2p on a unix socket: its send buffer; <= 0: no splicing */
        uint32_t splice_serial;         /* the next serial of a hand-written Output */
        ExecQueued *exec_first, *exec_last; /* bus: authorized Execs waiting (exec-queue.h) */
        unsigned n_exec_queued;
        uint64_t exec_queued_bytes;
        Client *exec_turn_next, *exec_turn_prev; /* in line while it has Execs waiting */
        bool exec_in_turn;
        Waiter *waiters;                /* its pending Wait() calls */
        unsigned n_waiters;
        uint64_t changed_stamp;         /* the last PropertiesChanged it was sent, see session-dbus.c */
        LIST_FIELDS(Client, clients);
};

/* Pending Wait() calls per connection. */
#define CLIENT_WAITERS_MAX 64

/* Takes 'input' (freed on failure too); socket_fd is the bus's output fd. */
int client_new_p2p(Manager *m, sd_bus *bus, uid_t uid, int socket_fd, P2PInput *input, Client **ret);
/* The Client for a method call's sender, created on first use. */
int client_from_message(Manager *m, sd_bus_message *msg, Client **ret);
/* The client went away (or the daemon stops): its sessions are orphaned (SIGHUP, then SIGKILL). */
Client *client_free(Client *c);
/* Counts Output sent to a bus client and pings it when enough is in flight. */
void client_output_sent(Client *c, size_t size);
bool client_output_congested(Client *c);
/* A session of the client sent its Exited: a ping confirms what is still in flight. */
void client_output_session_ended(Client *c);
