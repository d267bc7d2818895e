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
#include "sandbox-api.h"

typedef struct BusUser BusUser;
typedef struct Client Client;
typedef struct ExecQueued ExecQueued;
typedef struct Listener Listener;
typedef struct Manager Manager;
typedef struct P2PInput P2PInput;
typedef struct Session Session;
typedef struct Waiter Waiter;


/* Defaults that fit a small machine; each can be raised on the command line. */
#define DEFAULT_MAX_SESSIONS 1024
#define DEFAULT_MAX_SESSIONS_PER_USER 128
#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_IDLE_TIMEOUT_USEC (30 * 1000000ULL)
#define DEFAULT_RETAIN_USEC (60 * 1000000ULL)

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
/* Output in flight on the bus: sent, and not yet confirmed read by the receiver (it answered a
 * Ping sent after it). Output a receiver does not read stays queued in the bus, and counts there:
 * dbus-daemon (system bus defaults) stops reading a connection that has more than
 * max_incoming_bytes (127 MiB) of its messages queued anywhere, ours too, which stalls everyone,
 * and rejects messages to a connection with more than max_outgoing_bytes (127 MiB) queued;
 * dbus-broker lets one uid queue to another only a share of the receiver's quota (with the
 * launcher's defaults 64 x 8 MiB = 512 MiB, root's share of it about a third when the receiver
 * uses some itself), and drops what goes past it. So in flight is bounded per receiving client,
 * per receiving uid and in total, far below all of these (sandboxd(8) lists them); a session
 * pauses while its client, its client's uid or the daemon is at its bound. A client is pinged
 * once this much is in flight to it... */
#define BUS_OUTPUT_PING_AT (8 * 1024 * 1024)
/* ... and its sessions pause at this much until it answers ... */
#define BUS_OUTPUT_CLIENT_MAX (16 * 1024 * 1024)
/* ... or when all clients of its uid have this much together (every client of the uid with Output
 * in flight is then pinged, so that those that read go on): more than one client's, so that one
 * client that stops reading leaves its uid's other clients room ... */
#define BUS_OUTPUT_UID_MAX (24 * 1024 * 1024)
/* ... or all clients of all uids: what lets three uids stall their clients without delaying a
 * fourth, and keeps the daemon's queue in dbus-daemon at three quarters of max_incoming_bytes. */
#define BUS_OUTPUT_TOTAL_MAX (96 * 1024 * 1024)
/* Pings awaiting an answer, per receiving uid and in all: dbus-daemon lets a connection have at
 * most 128 calls awaiting replies (max_replies_per_connection) and never times them out, and the
 * polkit checks need their share. A client that does not read keeps its ping pending until it
 * reads or leaves; it is never pinged twice at once. */
#define BUS_PINGS_PER_UID_MAX 16
#define BUS_PINGS_MAX 48
/* After the bus connection is lost, how often and how long to try to get back on the bus
 * before exiting. */
#define BUS_RECONNECT_INTERVAL_USEC (500 * 1000ULL)
#define BUS_RECONNECT_TIMEOUT_USEC (30 * 1000000ULL)
/* A peer-to-peer client that lets this many messages pile up unread is disconnected. */
#define P2P_WRITE_QUEUE_MAX 4096
/* After the command exits, a PTY's final drain may take this much beyond what the master shows as
 * readable: the kernel's input buffers of a terminal hold up to 64 KiB on their way. */
#define PTY_DRAIN_SLACK (64 * 1024)
/* Bytes of WriteStdin data a session may have queued and not yet written; one WriteStdin larger
 * than this is refused as such. */
#define STDIN_QUEUE_MAX (1024 * 1024)
/* ... and all sessions of one owner uid together: without it, 128 sessions of a uid held
 * 128 MiB. */
#define STDIN_QUEUE_PER_UID_MAX (16 * 1024 * 1024)
/* What Run may keep of its output until its reply, reserved at the start as twice its
 * max-output (both streams): per owner uid and in all. With the default 1 MiB, 32 Runs of one uid
 * at once; with the largest, 16 MiB, two. */
#define RUN_OUTPUT_PER_UID_MAX (64 * 1024 * 1024)
#define RUN_OUTPUT_TOTAL_MAX (256 * 1024 * 1024)
/* A bus message is at most 32 MiB in dbus-daemon (max_message_size), and a larger one would cost
 * the daemon its bus connection: a Run reply on the bus keeps at most this much output in all. */
#define RUN_REPLY_BUS_OUTPUT_MAX (31 * 1024 * 1024)
/* A peer-to-peer connection that has not authenticated by then is dropped. */
#define P2P_AUTH_TIMEOUT_USEC (5 * 1000000ULL)
/* Input on a peer-to-peer connection, read by the daemon for sd-bus (p2p-input.c). The text of the
 * authentication: a real client sends about 100 bytes (AUTH EXTERNAL, NEGOTIATE_UNIX_FD, BEGIN). */
#define P2P_AUTH_TEXT_MAX (16 * 1024)
/* The largest message a peer may send. The largest legitimate ones are an Exec with its 1 MiB of
 * argv and env (EXEC_TOTAL_MAX) and a WriteStdin of 1 MiB (STDIN_QUEUE_MAX), plus their headers and
 * the rest of the options. 8 MiB leaves room for those, and lets a client that overshoots them a few
 * times over get its typed error (InvalidArgs) rather than a reset connection; 8 of them fill
 * P2P_INPUT_TOTAL_MAX. (sd-bus itself would take 128 MiB, BUS_MESSAGE_SIZE_MAX.) A larger one drops
 * the connection. */
#define P2P_MESSAGE_MAX (8 * 1024 * 1024)
/* fds with one message: Exec takes 3 (stdin, stdout, stderr), nothing else any; but sd-bus takes any
 * number a message declares and closes them with it, and clients did send up to 200 with a call
 * (test_passed_fds_do_not_leak), so the bound is the kernel's for one sendmsg(), SCM_MAX_FD. More
 * drops the connection; fds a message does not declare are closed at once. A connection makes the
 * daemon hold at most about one message's worth: sd-bus closes them when the call is handled. */
#define P2P_MESSAGE_FDS_MAX 253
/* A message that has begun to arrive must be whole within this long, or the connection is dropped:
 * 4 MiB on a local socket take milliseconds, over vsock well under a second. */
#define P2P_MESSAGE_TIMEOUT_USEC (10 * 1000000ULL)
/* All messages being received, over all peer-to-peer connections, by their declared sizes: the
 * memory that peers can make the daemon hold at once. A connection that would go past it stops
 * being read until others are done, which P2P_MESSAGE_TIMEOUT_USEC bounds. */
#define P2P_INPUT_TOTAL_MAX (64 * 1024 * 1024)
/* Peer-to-peer connections of one uid other than root at once (--max-connections-per-user). A person
 * holds one per concurrent sandboxctl; 32 is far above that, and lets no one uid take more than
 * an eighth of the DEFAULT_MAX_CONNECTIONS that all of them share. Root is bounded by
 * DEFAULT_MAX_CONNECTIONS of its own instead (see listener_event()). */
#define DEFAULT_MAX_CONNECTIONS_PER_USER 32
/* How long a session whose owner left has after SIGHUP before SIGKILL. */
#define ORPHAN_GRACE_USEC (3 * 1000000ULL)

struct Manager {
        sd_event *event;
        sd_bus *bus;                    /* the system bus, or NULL */
        bool use_bus;
        Hashmap *bus_users;             /* uid + 1 -> BusUser */
        uint64_t bus_output_unconfirmed; /* the sum over all bus clients */
        unsigned bus_pings;             /* pings awaiting an answer, all clients */
        sd_event_source *ping_retry;    /* pings the bus refused are tried again */
        bool bus_refusal_logged;
        sd_event_source *bus_reconnect; /* the bus was lost: trying to get back on it */
        uint64_t bus_lost_usec;         /* ... since then (CLOCK_MONOTONIC) */

        Client *exec_turn_first, *exec_turn_last; /* bus clients with Execs waiting, in turn */
        uint64_t exec_queued_bytes;
        sd_event_source *exec_source;   /* starts the next one */

        Hashmap *sessions;              /* id -> Session, running */
        Hashmap *ended;                 /* id -> Session, ended records */
        Session *ended_first, *ended_last; /* ... oldest first */
        Hashmap *ended_per_uid;         /* owner uid -> ended records */
        uint64_t retain_usec;           /* --retain-sec= */
        uint64_t changed_stamp;         /* counts PropertiesChanged sendings, see session-dbus.c */
        Hashmap *bus_clients;           /* unique name -> Client */
        Hashmap *p2p_by_bus;            /* sd_bus -> Client, for peer-to-peer connections */
        Hashmap *sessions_per_uid;      /* owner uid -> count, see uid_count_get() */
        Hashmap *stdin_per_uid;         /* owner uid -> bytes of stdin queued */
        Hashmap *run_output_per_uid;    /* owner uid -> bytes that its Runs may collect */
        uint64_t run_output_total;      /* ... all uids */
        Client *p2p_clients;
        unsigned n_p2p_clients;
        Listener *listeners;
        uint32_t last_id;

        unsigned max_sessions, max_sessions_per_user, max_connections;
        unsigned max_connections_per_user;
        uint32_t *vsock_allow_cids;     /* --vsock-allow-cid=; NULL: only the host */
        size_t n_vsock_allow_cids;
        uint64_t p2p_input_total;       /* declared sizes of messages being received, p2p */
        P2PInput *p2p_input_waiting;    /* connections waiting for that to go down */
        bool p2p_input_waking;
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
        const char *version;            /* the Version property */
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

/* Counters per uid, in a Hashmap made with trivial_hash (absent: 0). */
uint64_t uid_count_get(Hashmap *h, uid_t uid);
void uid_count_add(Hashmap *h, uid_t uid, int64_t delta);

/* Session limits per owner uid. */
unsigned manager_sessions_of_uid(Manager *m, uid_t uid);
void manager_count_session(Manager *m, uid_t uid, int delta);
