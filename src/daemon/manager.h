/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's state: its connections, the clients on them and their sessions. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "hashmap.h"
#include "macro.h"
#include "list.h"
#include "profile.h"

typedef struct Client Client;
typedef struct Listener Listener;
typedef struct Manager Manager;
typedef struct Session Session;

#define SANDBOX_OBJECT_PATH "/org/example/Sandbox1"
#define SANDBOX_INTERFACE "org.example.Sandbox1"
#define SANDBOX_BUS_NAME "org.example.Sandbox1"

/* Defaults that fit a small machine; each can be raised on the command line. */
#define DEFAULT_MAX_SESSIONS 1024
#define DEFAULT_MAX_SESSIONS_PER_USER 128
#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_IDLE_TIMEOUT_USEC (30 * 1000000ULL)

/* Output is read in chunks of up to this size, one Output signal each peer-to-peer (on a bus,
 * several: OUTPUT_BUS_MESSAGE_MAX). A pipe that fills its default 64 KiB is grown to this size,
 * so that a command writing fast is relayed in large signals, with fewer wakeups of everyone on
 * the way. */
#define OUTPUT_CHUNK_MAX (256 * 1024)
#define PIPE_DEFAULT_SIZE (64 * 1024)
/* On a bus, a chunk goes out as Output signals of up to this size. dbus-daemon (libdbus 1.14)
 * reads a message into a buffer that doubles as it fills, and shrinks it back once the message is
 * in. When that buffer passes glibc's mmap threshold (128 KiB), every message lands in freshly
 * mapped pages, a page fault each 4 KiB, and that, not the copying, took most of dbus-daemon's
 * time: 64 KiB signals already cross it (the buffer also holds the header and the next read).
 * Up to about 48 KiB the rate is flat (16, 32 and 48 KiB measured alike), so this keeps a margin. */
#define OUTPUT_BUS_MESSAGE_MAX (32 * 1024)
/* A fast stream whose Output is spliced rests this long after a chunk that did not fill, so that
 * the next one is large: without it the daemon sends whatever the writer managed since the last
 * wakeup (27 KiB on average for `head -c` here), ten times the messages for the client to take
 * apart. Long enough for the writer to fill most of a chunk, short beside anything a person sees. */
#define OUTPUT_REST_USEC 100
/* ... and its pipe is grown to this size instead: spliced pages leave the pipe with the data, and
 * with room for four chunks the writer goes on writing while the daemon rests and sends, instead
 * of sleeping on a full pipe (+40 % over a 256 KiB pipe, measured side by side). */
#define OUTPUT_PIPE_SPLICE_SIZE (1024 * 1024)
/* Reading stops while a connection has more than this many messages queued for writing (at
 * most 4 MiB of Output)... */
#define OUTPUT_QUEUE_MAX 16
/* ... and resumes once it is down to this many. */
#define OUTPUT_QUEUE_LOW 4
/* A bus client is pinged once this much Output is in flight to it, and its sessions pause at twice
 * as much until it answers: on the bus, Output queued in dbus-daemon for a client that does not
 * read counts against the daemon's own limits there, and would stall every other client. */
#define BUS_OUTPUT_UNCONFIRMED_MAX (8 * 1024 * 1024)
/* A peer-to-peer client that lets this many messages pile up unread is disconnected. */
#define P2P_WRITE_QUEUE_MAX 4096
/* After the command exits, a PTY's final drain may take this much beyond what the master shows as
 * readable: the kernel's input buffers of a terminal hold up to 64 KiB on their way. */
#define PTY_DRAIN_SLACK (64 * 1024)
/* Bytes of WriteStdin data a session may have queued and not yet written. */
#define STDIN_QUEUE_MAX (1024 * 1024)
/* How long a session whose owner left has after SIGHUP before SIGKILL. */
/* A peer-to-peer connection that has not authenticated by then is dropped. */
#define P2P_AUTH_TIMEOUT_USEC (5 * 1000000ULL)
#define ORPHAN_GRACE_USEC (3 * 1000000ULL)

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
        bool ping_disabled;
        bool p2p;
        int splice_sndbuf;              /* p2p on a unix socket: its send buffer; <= 0: no splicing */
        uint32_t splice_serial;         /* the next serial of a hand-written Output */
        LIST_FIELDS(Client, clients);
};

struct Manager {
        sd_event *event;
        sd_bus *bus;                    /* the system bus, or NULL */
        bool use_bus;

        Hashmap *sessions;              /* id -> Session */
        Hashmap *bus_clients;           /* unique name -> Client */
        Hashmap *p2p_by_bus;            /* sd_bus -> Client, for peer-to-peer connections */
        Hashmap *sessions_per_uid;      /* owner uid -> count, stored in the pointer */
        Client *p2p_clients;
        unsigned n_p2p_clients;
        Listener *listeners;
        uint32_t last_id;

        unsigned max_sessions, max_sessions_per_user, max_connections;
        uid_t default_uid;              /* callers without credentials (vsock) */
        bool notify;                    /* NOTIFY_SOCKET is set: send STATUS= updates */
        bool exiting;                   /* released the bus name, exiting once it is confirmed */
        uint64_t idle_timeout_usec;
        sd_event_source *idle_source;

        int exit_epoll;                 /* every session's pidfd, see manager_exit_event() */
        sd_event_source *exit_source;
        Session *paused;                /* sessions waiting for their connection to drain */
        sd_event_source *drain_source;

        ProfileProgram *profile_program;
        Hashmap *polkit_registry;       /* pending and answered polkit queries */
        bool ping_denied_logged;
        gid_t tty_gid;                  /* group of PTYs, as a login terminal */
        uint8_t *read_buffer;           /* OUTPUT_CHUNK_MAX bytes shared by all sessions */
};

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

int manager_connect_bus(Manager *m);
int manager_run(Manager *m);
/* Re-evaluates idle exit and the status line after sessions or clients came or went. */
void manager_check_idle(Manager *m);

/* The vtable, for the bus and for each peer-to-peer connection. */
int manager_add_object(Manager *m, sd_bus *bus, sd_bus_slot **ret_slot);

int client_new_p2p(Manager *m, sd_bus *bus, uid_t uid, Client **ret);
/* The Client for a method call's sender, created on first use. */
int client_from_message(Manager *m, sd_bus_message *msg, Client **ret);
/* The client went away (or the daemon stops): its sessions are orphaned (SIGHUP, then SIGKILL). */
Client *client_free(Client *c);
/* Counts Output sent to a bus client and pings it when enough is in flight. */
void client_output_sent(Client *c, size_t size);
bool client_output_congested(Client *c);

/* Session limits per owner uid. */
unsigned manager_sessions_of_uid(Manager *m, uid_t uid);
void manager_count_session(Manager *m, uid_t uid, int delta);
