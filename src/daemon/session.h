/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A session: one command on a PTY or pipes, its output relay and its end. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec-request.h"
#include "list.h"
#include "manager.h"
#include "user.h"

typedef struct OutputStream {
        int fd;                         /* read end of the child's stdout/stderr, or the PTY */
        int writer;                     /* our copy of the pipe's write end, or -EBADF */
        sd_event_source *source;
        bool eof;
        bool drain_limited;             /* the leader exited: read at most drain_left more */
        bool grown;                     /* the pipe filled once and was offered more buffer */
        bool resting;                   /* not read until rest_source fires, see output_rest() */
        uint64_t drain_left;
} OutputStream;

/* How a session ended (api.md, "End reasons"). */
typedef enum EndReason {
        END_REASON_NONE,                /* still running */
        END_REASON_EXITED,
        END_REASON_SIGNALED,
        END_REASON_TIMEOUT,
        END_REASON_OUTPUT_LIMIT,
        END_REASON_KILLED,
        END_REASON_OWNER_GONE,
        END_REASON_SHUTDOWN,
        _END_REASON_MAX,
} EndReason;

const char *end_reason_to_string(EndReason r);

typedef struct RunSink RunSink;
typedef struct StdinChunk StdinChunk;

/* A pending Wait() on a session (session-dbus.c). */
struct Waiter {
        Session *session;
        Client *client;
        sd_bus_message *call;
        LIST_FIELDS(Waiter, by_session);
        LIST_FIELDS(Waiter, by_client);
};
struct StdinChunk {
        StdinChunk *next;
        size_t size, offset;
        uint8_t data[];
};

struct Session {
        Manager *manager;
        Client *owner;                  /* NULL once the owner went away */
        uint32_t id;
        uid_t owner_uid;                /* who may see and control it */
        uid_t uid;                      /* who it runs as */
        bool as_creator;                /* ... which is its creator itself, with its own groups */
        char *user_name;
        char **argv;

        pid_t pid;
        int pidfd;
        sd_event_source *timeout_source;
        sd_event_source *kill_source;   /* SIGKILL after the grace, once orphaned */

        bool tty;
        int master;                     /* PTY master, or -EBADF */

        OutputStream out[2];            /* stream 1 (stdout, PTY) and 2 (stderr) */

        int stdin_fd;                   /* pipe write end, a dup of the PTY master, or -EBADF */
        sd_event_source *stdin_source;
        StdinChunk *stdin_head, *stdin_tail;
        size_t stdin_queued;
        bool stdin_close_pending;

        uint64_t output_window, output_unacked;
        bool paused;                    /* waiting for the connection's queue to drain */
        sd_event_source *rest_source;   /* ends a stream's rest */
        bool leader_exited;             /* draining what it wrote before sending Exited */
        int exit_code, exit_signal;

        char *tag;                      /* the 'tag' option, or NULL */
        uint64_t start_usec, end_usec;  /* CLOCK_MONOTONIC: start, and the leader's exit (0 before) */
        uint64_t out_bytes[2];          /* what each stream wrote, whether relayed or not */
        uint64_t max_output;            /* per stream, with max_output_set */
        bool max_output_set;
        OutputLimitAction on_output_limit;
        uint64_t timeout_grace_usec;
        bool timeout_termed;            /* SIGTERM sent at the timeout, SIGKILL after the grace */
        EndReason end_cause;            /* what the daemon or a client did to end it, if anything */
        EndReason end_reason;           /* set once it ended */
        RunSink *run;                   /* Run and RunText: collects output for the reply */

        gid_t gid;
        char *cwd;                      /* where it was started (the home directory by default) */
        Profile profile;
        uint64_t start_realtime, end_realtime; /* CLOCK_REALTIME µs */
        sd_event_source *terminate_source; /* Terminate(): SIGKILL after the grace */
        Waiter *waiters;
        bool released;                  /* its process is reaped and its fds closed */
        bool ended;                     /* a retained record (Manager.ended), see session_retire() */
        sd_event_source *retain_source; /* drops the record */
        LIST_FIELDS(Session, ended_list);

        LIST_FIELDS(Session, by_owner);
        LIST_FIELDS(Session, paused);
};

/* Spawns the command of req as user u for owner; on a failure to start, error says how. */
int session_start(Manager *m, Client *owner, ExecRequest *req, const UserInfo *u, Session **ret,
                  sd_bus_error *error);
/* Starts relaying once the Exec reply is queued, so that it precedes any Output. */
int session_activate(Session *s);
Session *session_free(Session *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Session *, session_free);

int session_signal(Session *s, int sig);
/* A client sent sig: a fatal one makes the end reason 'killed' if the command dies of a signal. */
int session_signal_from_client(Session *s, int sig);
int session_resize(Session *s, unsigned rows, unsigned cols);
int session_write_stdin(Session *s, const void *data, size_t size, sd_bus_error *error);
int session_close_stdin(Session *s);
void session_ack(Session *s, uint64_t bytes);
/* Once the leader has exited: relays what is left, then sends Exited and frees the session;
 * waits for Ack instead while the output window is full. */
void session_finish(Session *s);
/* The owner went away: SIGHUP now, SIGKILL after a grace period, output discarded. (An ended
 * record only forgets its owner.) */
void session_orphan(Session *s);
/* Terminate(): SIGTERM to the process group now, SIGKILL after grace_usec; end reason killed. */
int session_terminate(Session *s, uint64_t grace_usec);
/* Kills and reaps without waiting (a session that could not be set up). */
void session_kill_now(Session *s);
/* The same at daemon shutdown, logged with end reason 'shutdown'; nobody is told. */
void session_shutdown(Session *s);

/* Ended records (api.md, "Session objects"): kept for --retain-sec= after the end, at most
 * SESSION_ENDED_PER_UID_MAX per owner uid, oldest dropped first; they hold no process and no fd and
 * do not count against the session limits. */
#define SESSION_ENDED_PER_UID_MAX 64
#define SESSION_ENDED_MAX 4096
Session *manager_find_session(Manager *m, uint32_t id, bool with_ended);

/* Session objects on the bus (session-dbus.c). */
int session_add_objects(Manager *m, sd_bus *bus);
/* The object path of a session. */
int session_object_path(uint32_t id, char **ret);
/* The a{sv} info of Run's reply and Wait's (id, pid, end-reason, the bytes of each stream,
 * runtime-usec), with the truncation flags of Run where truncated is not NULL. */
int session_append_info(sd_bus_message *m, const Session *s, const bool truncated[2]);
/* The end, to the owner: the Exited signal, or Run's reply. */
void session_send_end(Session *s);
/* PropertiesChanged for the listed properties, unicast to the owner and to waiting connections. */
void session_send_changed(Session *s, const char *const *properties);
/* The session ended: every Wait() gets its answer. */
void session_answer_waiters(Session *s);
/* A waiter's connection is gone: dropped unanswered. */
Waiter *waiter_free(Waiter *w);
/* Who may see a session without asking polkit (api.md, "Authorization"). */
bool client_owns_session(const Client *c, const Session *s);

/* Output relay (io.c). */
int manager_exit_event(sd_event_source *es, int fd, uint32_t revents, void *userdata);
int session_output_event(sd_event_source *es, int fd, uint32_t revents, void *userdata);
int session_stdin_event(sd_event_source *es, int fd, uint32_t revents, void *userdata);
void session_output_update(Session *s);
/* At the leader's exit: bounds the final drain to what is buffered now. */
void session_output_limit_drain(Session *s);
/* Reads what is buffered on each open stream until it would block; false if the window
 * stopped it first. */
bool session_output_drain(Session *s);
void manager_resume_paused(Manager *m);
