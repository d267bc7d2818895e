/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A session: one command on a PTY or pipes, from spawn to its end. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus-error.h"
#include "client.h"
#include "env.h"
#include "log.h"
#include "pty.h"
#include "run.h"
#include "session.h"
#include "strv.h"
#include <systemd/sd-journal.h>

static uint32_t manager_next_id(Manager *m) {
        /* Ids grow and wrap, skipping 0 and ids still in use; the session limit keeps this
         * short. */
        do
                m->last_id++;
        while (m->last_id == 0 || hashmap_get(m->sessions, UINT_TO_PTR(m->last_id)) ||
               hashmap_get(m->ended, UINT_TO_PTR(m->last_id)));
        return m->last_id;
}

/* Sends sig to the command's process group, whose id is the leader's pid. The leader stays
 * unreaped until the session is freed, so that id cannot have been reused; and as the leader of
 * its own session it cannot move to another group (setpgid() fails for a session leader), so the
 * group always reaches it. */
int session_signal(Session *s, int sig) {
        if (kill(-s->pid, sig) < 0 && errno != ESRCH)
                return -errno;
        return 0;
}

static const char *const end_reason_table[_END_REASON_MAX] = {
        [END_REASON_NONE] = "",
        [END_REASON_EXITED] = "exited",
        [END_REASON_SIGNALED] = "signaled",
        [END_REASON_TIMEOUT] = "timeout",
        [END_REASON_OUTPUT_LIMIT] = "output-limit",
        [END_REASON_KILLED] = "killed",
        [END_REASON_OWNER_GONE] = "owner-gone",
        [END_REASON_SHUTDOWN] = "shutdown",
};

const char *end_reason_to_string(EndReason r) {
        return r >= 0 && r < _END_REASON_MAX ? end_reason_table[r] : "";
}

/* Signals whose default action ends the process. */
static bool signal_is_fatal(int sig) {
        switch (sig) {
        case SIGCHLD:
        case SIGCONT:
        case SIGSTOP:
        case SIGTSTP:
        case SIGTTIN:
        case SIGTTOU:
        case SIGURG:
        case SIGWINCH:
                return false;
        default:
                return sig > 0;
        }
}

int session_signal_from_client(Session *s, int sig) {
        if (signal_is_fatal(sig) && s->end_cause == END_REASON_NONE)
                s->end_cause = END_REASON_KILLED;
        return session_signal(s, sig);
}

int session_resize(Session *s, unsigned rows, unsigned cols) {
        if (!s->tty)
                return -EOPNOTSUPP;
        return pty_resize(s->master, rows, cols);
}

/* argv joined with spaces into buf, cut to fit; no allocation on the path of every Exec. */
static const char *cmdline_format(char * const *argv, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = 0;
        for (char * const *a = argv; a && *a && len + 1 < size; a++) {
                int n = snprintf(buf + len, size - len, a == argv ? "%s" : " %s", *a);

                if (n < 0)
                        break;
                len = MIN(len + (size_t) n, size - 1);
        }
        return buf;
}

/* One structured journal entry per session start and end; plain lines on stderr otherwise. */
static void session_log(Session *s, bool start) {
        static int journal = -1;
        char cmdline[4097], msg[LINE_MAX];

        if (journal < 0)
                journal = !!getenv("JOURNAL_STREAM");
        if (!journal) {
                if (start)
                        log_info("Session %u started for uid %u: pid %i, user %s, '%s'.", s->id,
                                 (unsigned) s->owner_uid, s->pid, s->user_name,
                                 cmdline_format(s->argv, cmdline, 1025));
                else
                        log_info("Session %u ended: pid %i, code %i, signal %i, %s.", s->id, s->pid,
                                 s->exit_code, s->exit_signal, end_reason_to_string(s->end_reason));
                return;
        }

        cmdline_format(s->argv, cmdline, sizeof cmdline);
        if (start)
                (void) snprintf(msg, sizeof msg, "Session %u started for uid %u: pid %i, user %s, '%.1024s'.",
                                s->id, (unsigned) s->owner_uid, s->pid, s->user_name, cmdline);
        else
                (void) snprintf(msg, sizeof msg, "Session %u ended: pid %i, code %i, signal %i, %s.",
                                s->id, s->pid, s->exit_code, s->exit_signal,
                                end_reason_to_string(s->end_reason));
        /* The exit fields only at the end: a NULL format ends the list early at the start. */
        (void) sd_journal_send("MESSAGE=%s", msg,
                               "PRIORITY=6",
                               "SANDBOXD_EVENT=%s", start ? "start" : "end",
                               "SANDBOXD_SESSION=%u", s->id,
                               "SANDBOXD_CALLER_UID=%u", (unsigned) s->owner_uid,
                               "SANDBOXD_UID=%u", (unsigned) s->uid,
                               "SANDBOXD_USER=%s", s->user_name,
                               "SANDBOXD_PID=%i", s->pid,
                               "SANDBOXD_ARGV=%s", cmdline,
                               start ? NULL : "SANDBOXD_EXIT_CODE=%i", s->exit_code,
                               "SANDBOXD_EXIT_SIGNAL=%i", s->exit_signal,
                               "SANDBOXD_END_REASON=%s", end_reason_to_string(s->end_reason),
                               NULL);
}

static void session_release(Session *s);

static uint64_t now_realtime(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

Session *manager_find_session(Manager *m, uint32_t id, bool with_ended) {
        Session *s = hashmap_get(m->sessions, UINT_TO_PTR(id));

        if (!s && with_ended)
                s = hashmap_get(m->ended, UINT_TO_PTR(id));
        return s;
}

static int session_retain_event(sd_event_source *es, uint64_t usec, void *userdata) {
        session_free(userdata);
        return 0;
}

/* The oldest ended record of uid, or of anyone with UID_INVALID. */
static Session *ended_oldest(Manager *m, uid_t uid) {
        for (Session *s = m->ended_last; s; s = s->ended_list_prev)
                if (uid == (uid_t) -1 || s->owner_uid == uid)
                        return s;
        return NULL;
}

/* Its process is reaped and its fds are closed: the session becomes a record of how it ended,
 * which Wait(), the properties and GetSession() still see for --retain-sec=. */
static void session_retire(Session *s) {
        static const char *const changed[] = { "State", "EndReason", "ExitCode", "ExitSignal",
                                                "EndTimestamp", NULL };
        Manager *m = s->manager;
        Session *old;
        int r;

        session_release(s);
        s->end_realtime = now_realtime();
        s->ended = true;
        session_send_changed(s, changed);
        session_answer_waiters(s);
        if (m->retain_usec == 0 || hashmap_put(m->ended, UINT_TO_PTR(s->id), s) < 0) {
                s->ended = false;
                session_free(s);
                return;
        }
        LIST_PREPEND(ended_list, m->ended_first, s);
        if (!m->ended_last)
                m->ended_last = s;
        uid_count_add(m->ended_per_uid, s->owner_uid, +1);

        r = sd_event_add_time_relative(m->event, &s->retain_source, CLOCK_MONOTONIC, m->retain_usec,
                                       100 * 1000, session_retain_event, s);
        if (r == -EOVERFLOW)
                r = 0; /* kept for as long as the bounds allow */
        if (r < 0) {
                session_free(s);
                return;
        }
        if (uid_count_get(m->ended_per_uid, s->owner_uid) > SESSION_ENDED_PER_UID_MAX &&
            (old = ended_oldest(m, s->owner_uid)))
                session_free(old);
        if (hashmap_size(m->ended) > SESSION_ENDED_MAX && (old = ended_oldest(m, (uid_t) -1)))
                session_free(old);
}

/* Once the command's own process has exited and what it wrote is relayed: Exited, then retire.
 * Exited goes first: the caller usually wakes on the other CPU, while we log, reap and close. */
void session_finish(Session *s) {
        if (!s->leader_exited || s->released)
                return;
        if (!session_output_drain(s))
                return; /* the output window is full: Ack resumes this */

        session_send_end(s);
        session_log(s, false);
        session_retire(s);
}

/* The command's own process has exited: record how, and finish once its output is relayed. */
static void session_exited(Session *s) {
        siginfo_t si = {};

        /* WNOWAIT: the leader stays a zombie, so its pid and process group id stay ours until
         * the session is freed. */
        if (waitid(P_PIDFD, (id_t) s->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
                log_warning_errno(errno, "Session %u: waitid failed: %m", s->id);
                return;
        }
        if (si.si_pid == 0)
                return;

        s->leader_exited = true;
        (void) sd_event_now(s->manager->event, CLOCK_MONOTONIC, &s->end_usec);
        if (si.si_code == CLD_EXITED) {
                s->exit_code = si.si_status;
                s->exit_signal = 0;
        } else {
                s->exit_code = -1;
                s->exit_signal = si.si_status;
        }
        /* A limit the daemon enforced is the reason whatever the command did about it; a client's
         * signal or the owner leaving only when the command died of a signal. */
        if (s->end_cause == END_REASON_TIMEOUT || s->end_cause == END_REASON_OUTPUT_LIMIT ||
            (s->exit_signal != 0 && s->end_cause != END_REASON_NONE))
                s->end_reason = s->end_cause;
        else
                s->end_reason = s->exit_signal != 0 ? END_REASON_SIGNALED : END_REASON_EXITED;
        session_output_limit_drain(s);
        /* It stays readable: stop watching it, in case Exited has to wait for an Ack. */
        (void) epoll_ctl(s->manager->exit_epoll, EPOLL_CTL_DEL, s->pidfd, NULL);
        s->timeout_source = sd_event_source_disable_unref(s->timeout_source);

        session_finish(s);
}

/* All sessions' pidfds sit in one inner epoll, so that when thousands of commands exit at once
 * the event loop polls one fd per iteration, not every pidfd that is still ready. */
int manager_exit_event(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        struct epoll_event ev[64];
        int n;

        n = epoll_wait(m->exit_epoll, ev, ELEMENTSOF(ev), 0);
        if (n < 0) {
                if (errno != EINTR)
                        log_warning_errno(errno, "epoll_wait() on the pidfds failed: %m");
                return 0;
        }
        /* Each event is a different session, and finishing one frees only that one. */
        for (int i = 0; i < n; i++)
                session_exited(ev[i].data.ptr);
        return 0;
}

/* The grace after an orphan's SIGHUP ran out. */
static int session_kill_event(sd_event_source *es, uint64_t usec, void *userdata) {
        Session *s = userdata;

        log_debug("Session %u: time is up, killing it.", s->id);
        (void) session_signal(s, SIGKILL);
        return 0;
}

/* timeout-usec ran out: SIGKILL, or SIGTERM first and SIGKILL after timeout-grace-usec. */
static int session_timeout_event(sd_event_source *es, uint64_t usec, void *userdata) {
        Session *s = userdata;
        int r;

        s->end_cause = END_REASON_TIMEOUT;
        if (s->timeout_grace_usec > 0 && !s->timeout_termed) {
                log_debug("Session %u: time is up, terminating it.", s->id);
                s->timeout_termed = true;
                (void) session_signal(s, SIGTERM);
                (void) session_signal(s, SIGCONT);
                r = sd_event_source_set_time_relative(es, s->timeout_grace_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                if (r >= 0)
                        return 0;
                log_warning_errno(r, "Session %u: cannot arm the grace timer, killing now: %m", s->id);
        } else
                log_debug("Session %u: time is up, killing it.", s->id);
        (void) session_signal(s, SIGKILL);
        return 0;
}

void session_orphan(Session *s) {
        int r;

        if (!s->owner)
                return;
        LIST_REMOVE(by_owner, s->owner->sessions, s);
        s->owner = NULL;
        session_send_changed(s, (const char *const[]) { "Owner", NULL }); /* to those waiting */
        if (s->ended)
                return; /* a record: nothing runs */
        if (s->end_cause == END_REASON_NONE)
                s->end_cause = END_REASON_OWNER_GONE;

        /* Nobody reads the output any more: keep draining it so the command is not blocked
         * by a full pipe while it handles SIGHUP. */
        if (s->paused) {
                LIST_REMOVE(paused, s->manager->paused, s);
                s->paused = false;
        }
        session_output_update(s);

        if (s->leader_exited) {
                session_finish(s);
                return;
        }

        (void) session_signal(s, SIGHUP);
        (void) session_signal(s, SIGCONT);
        r = sd_event_add_time_relative(s->manager->event, &s->kill_source, CLOCK_MONOTONIC,
                                       ORPHAN_GRACE_USEC, 10 * 1000, session_kill_event, s);
        if (r < 0) {
                log_warning_errno(r, "Session %u: cannot arm the kill timer, killing now: %m", s->id);
                (void) session_signal(s, SIGKILL);
        }
}

void session_shutdown(Session *s) {
        if (!s->leader_exited) {
                s->end_cause = s->end_reason = END_REASON_SHUTDOWN;
                s->exit_code = -1;
                s->exit_signal = SIGKILL;
                session_log(s, false);
        }
        (void) session_signal(s, SIGKILL);
        session_release(s);
        s->end_realtime = now_realtime();
        if (s->end_usec == 0)
                (void) sd_event_now(s->manager->event, CLOCK_MONOTONIC, &s->end_usec);
        session_answer_waiters(s);
        session_free(s);
}

static int session_terminate_event(sd_event_source *es, uint64_t usec, void *userdata) {
        Session *s = userdata;

        log_debug("Session %u: the grace of Terminate() is over, killing it.", s->id);
        (void) session_signal(s, SIGKILL);
        return 0;
}

int session_terminate(Session *s, uint64_t grace_usec) {
        int r;

        if (s->end_cause == END_REASON_NONE)
                s->end_cause = END_REASON_KILLED;
        if (grace_usec == 0)
                return session_signal(s, SIGKILL);
        r = session_signal(s, SIGTERM);
        if (r < 0)
                return r;
        (void) session_signal(s, SIGCONT);
        if (s->terminate_source)
                return 0; /* the first grace holds */
        r = sd_event_add_time_relative(s->manager->event, &s->terminate_source, CLOCK_MONOTONIC,
                                       grace_usec, 1000, session_terminate_event, s);
        if (r == -EOVERFLOW)
                return 0;
        return r;
}

void session_kill_now(Session *s) {
        (void) session_signal(s, SIGKILL);
        session_free(s);
}

/* Everything a running session holds: its place among the running, its process, its fds and
 * event sources, what it counts against the limits. */
static void session_release(Session *s) {
        Manager *m = s->manager;

        if (s->released)
                return;
        s->released = true;
        if (s->id != 0)
                hashmap_remove(m->sessions, UINT_TO_PTR(s->id));
        if (s->paused) {
                LIST_REMOVE(paused, m->paused, s);
                s->paused = false;
        }
        if (s->pid > 0) {
                manager_count_session(m, s->owner_uid, -1);
                /* Reaps the leader. Normally it has exited already; otherwise this is shutdown
                 * or a failed setup, and it was just sent SIGKILL. */
                if (!s->leader_exited)
                        (void) session_signal(s, SIGKILL);
                (void) waitid(P_PIDFD, (id_t) s->pidfd, &(siginfo_t) {}, WEXITED);
        }

        s->timeout_source = sd_event_source_disable_unref(s->timeout_source);
        s->kill_source = sd_event_source_disable_unref(s->kill_source);
        s->terminate_source = sd_event_source_disable_unref(s->terminate_source);
        s->stdin_source = sd_event_source_disable_unref(s->stdin_source);
        s->rest_source = sd_event_source_disable_unref(s->rest_source);
        for (int i = 0; i < 2; i++) {
                s->out[i].source = sd_event_source_disable_unref(s->out[i].source);
                if (s->out[i].fd != s->master)
                        safe_close(s->out[i].fd);
                s->out[i].fd = -EBADF;
                s->out[i].eof = true;
                s->out[i].writer = safe_close(s->out[i].writer);
        }
        s->master = safe_close(s->master);
        s->stdin_fd = safe_close(s->stdin_fd);
        s->pidfd = safe_close(s->pidfd);
        uid_count_add(m->stdin_per_uid, s->owner_uid, -(int64_t) s->stdin_queued);
        s->stdin_queued = 0;
        while (s->stdin_head) {
                StdinChunk *c = s->stdin_head;

                s->stdin_head = c->next;
                free(c);
        }
        s->stdin_tail = NULL;
        s->run = run_sink_free(m, s->owner_uid, s->run);
        /* One running session fewer: the daemon may be idle now, record or not. */
        manager_check_idle(m);
}

Session *session_free(Session *s) {
        Manager *m;

        if (!s)
                return NULL;
        m = s->manager;
        session_release(s);
        if (s->owner)
                LIST_REMOVE(by_owner, s->owner->sessions, s);
        while (s->waiters)
                waiter_free(s->waiters);
        if (s->ended) {
                hashmap_remove(m->ended, UINT_TO_PTR(s->id));
                if (m->ended_last == s)
                        m->ended_last = s->ended_list_prev;
                LIST_REMOVE(ended_list, m->ended_first, s);
                uid_count_add(m->ended_per_uid, s->owner_uid, -1);
        }
        sd_event_source_disable_unref(s->retain_source);
        strv_free(s->argv);
        free(s->user_name);
        free(s->tag);
        free(s->cwd);
        free(s); /* session_release() re-checked idleness */
        return NULL;
}

/* For a fresh pipe end, whose other status flags are all clear. */
static int set_nonblock(int fd) {
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

/* The fds of a pipe session: ours non-blocking, the child's end in child_fds. */
static int session_open_pipes(Session *s, const ExecRequest *req, int child_fds[3]) {
        for (int i = 0; i < 3; i++) {
                int p[2], r;

                if (req->fds[i] >= 0) {
                        child_fds[i] = req->fds[i];
                        continue;
                }
                if (pipe2(p, O_CLOEXEC) < 0)
                        return -errno;
                /* stdin: the child reads p[0]; stdout, stderr: the child writes p[1]. */
                child_fds[i] = i == 0 ? p[0] : p[1];
                if (i == 0)
                        s->stdin_fd = p[1];
                else
                        s->out[i - 1].fd = p[0];
                r = set_nonblock(i == 0 ? p[1] : p[0]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int session_open_pty(Session *s, const ExecRequest *req, const UserInfo *u, int *ret_slave) {
        _cleanup_close_ int slave = -EBADF;
        int r;

        r = pty_open(req->rows, req->cols, &s->master, &slave);
        if (r < 0)
                return r;
        /* As a login terminal: owned by the user, writable by the tty group (write(1)). */
        if (fchown(slave, u->uid, s->manager->tty_gid) < 0 || fchmod(slave, 0620) < 0)
                return -errno;

        s->out[0].fd = s->master;
        /* A second fd on the master, so input and output each get their own event source. */
        if (req->fds[0] < 0) {
                s->stdin_fd = fcntl(s->master, F_DUPFD_CLOEXEC, 3);
                if (s->stdin_fd < 0)
                        return -errno;
        }
        *ret_slave = TAKE_FD(slave);
        return 0;
}

static int spawn_failure_to_error(const ExecRequest *req, const SpawnFailure *f, sd_bus_error *error) {
        char buf[24];

        /* The one setrlimit() failure a caller can cause once the values are valid: raising a
         * hard limit past the daemon's own, which takes CAP_SYS_RESOURCE. */
        bool raising = f->error == EPERM && streq(f->stage, "setrlimit");

        return sd_bus_error_setf(error, spawn_error_name(f->error, f->stage),
                                 "Failed to start '%.256s': %s (%s) at %s%s.", req->argv[0],
                                 errno_name(f->error, buf), strerror(f->error), f->stage,
                                 raising ? ": a hard limit in 'rlimits' is above the daemon's own, and "
                                 "the daemon may not raise it (no CAP_SYS_RESOURCE)" : "");
}

int session_start(Manager *m, Client *owner, ExecRequest *req, const UserInfo *u, Session **ret,
                  sd_bus_error *error) {
        _cleanup_(session_freep) Session *s = NULL;
        _cleanup_strv_free_ char **envp = NULL;
        _cleanup_close_ int slave = -EBADF;
        int child_fds[3] = { -EBADF, -EBADF, -EBADF };
        SpawnFailure f;
        SpawnParams p;
        int r;

        s = calloc(1, sizeof(Session));
        if (!s)
                return -ENOMEM;
        *s = (Session) {
                .manager = m,
                .owner_uid = owner->uid,
                .uid = u->uid,
                .as_creator = user_is_caller_itself(u, owner->uid),
                .pidfd = -EBADF,
                .master = -EBADF,
                .stdin_fd = -EBADF,
                .out = { { .fd = -EBADF, .writer = -EBADF }, { .fd = -EBADF, .writer = -EBADF } },
                .tty = req->tty,
                .output_window = req->output_window,
        };
        s->user_name = strdup(u->name);
        if (!s->user_name)
                return -ENOMEM;
        s->tag = TAKE_PTR(req->tag);
        s->gid = u->gid;
        s->profile = req->profile;
        s->cwd = strdup(req->cwd ?: u->home);
        s->start_realtime = now_realtime();
        if (!s->cwd)
                return -ENOMEM;
        s->max_output = req->max_output;
        s->max_output_set = req->max_output_set;
        s->on_output_limit = req->on_output_limit;
        s->timeout_grace_usec = req->timeout_grace_usec;

        r = env_build(req->env, u, req->tty, &envp);
        if (r < 0)
                return r;

        if (req->tty) {
                r = session_open_pty(s, req, u, &slave);
                if (r < 0)
                        return log_error_errno(r, "Failed to allocate a PTY: %m");
                for (int i = 0; i < 3; i++)
                        child_fds[i] = req->fds[i] >= 0 ? req->fds[i] : slave;
        } else {
                r = session_open_pipes(s, req, child_fds);
                if (r < 0) {
                        for (int i = 0; i < 3; i++)
                                if (child_fds[i] != req->fds[i])
                                        safe_close(child_fds[i]);
                        if (r == -EMFILE || r == -ENFILE)
                                return sd_bus_error_setf(error, SANDBOX_ERROR("ResourceLimit"),
                                                         "Failed to start '%.256s': no fds left "
                                                         "for its pipes.", req->argv[0]);
                        return r;
                }
        }
        for (int i = 0; i < 2; i++)
                s->out[i].eof = s->out[i].fd < 0;

        p = (SpawnParams) {
                .argv = req->argv,
                .envp = envp,
                .path = env_get(envp, "PATH"),
                .cwd = req->cwd ?: u->home,
                .cwd_fallback = !req->cwd,
                .uid = u->uid,
                .gid = u->gid,
                .groups = u->groups,
                .n_groups = u->n_groups,
                .profile = req->profile,
                .program = m->profile_program,
                .fds = { child_fds[0], child_fds[1], child_fds[2] },
                .tty = slave,
        };
        memcpy(p.rlimits, req->rlimits, sizeof p.rlimits);
        memcpy(p.rlimit_set, req->rlimit_set, sizeof p.rlimit_set);
        if (!p.rlimit_set[RLIMIT_NOFILE]) {
                p.rlimits[RLIMIT_NOFILE] = spawn_default_nofile();
                p.rlimit_set[RLIMIT_NOFILE] = true;
        }

        r = spawn_child(&p, &s->pid, &s->pidfd, &f);
        if (!req->tty)
                for (int i = 0; i < 3; i++) {
                        if (child_fds[i] == req->fds[i])
                                continue;
                        /* We keep a write end of each output pipe until the session ends: when
                         * the command exits, closing its own does not hang the pipe up and wake
                         * us (and preempt it) once per stream before its exit is even reported;
                         * its pidfd tells us, and the final drain stops at what was written. */
                        if (i > 0 && r >= 0)
                                s->out[i - 1].writer = child_fds[i];
                        else
                                safe_close(child_fds[i]);
                }
        if (r < 0) {
                if (streq(f.stage, "fork") && (f.error == EAGAIN || f.error == ENOMEM))
                        return sd_bus_error_setf(error, spawn_error_name(f.error, f.stage),
                                                 "Failed to start '%.256s': cannot fork: %s.",
                                                 req->argv[0], strerror(f.error));
                return spawn_failure_to_error(req, &f, error);
        }
        manager_count_session(m, s->owner_uid, +1);

        s->id = manager_next_id(m);
        r = hashmap_put(m->sessions, UINT_TO_PTR(s->id), s);
        if (r < 0) {
                s->id = 0;
                return r;
        }
        s->argv = TAKE_PTR(req->argv);

        s->owner = owner;
        LIST_PREPEND(by_owner, owner->sessions, s);

        if (req->timeout_usec > 0) {
                r = sd_event_add_time_relative(m->event, &s->timeout_source, CLOCK_MONOTONIC,
                                               req->timeout_usec, 1000, session_timeout_event, s);
                if (r == -EOVERFLOW)
                        r = 0; /* so far in the future that it is never */
                if (r < 0)
                        return r;
        }
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &s->start_usec);

        if (req->stdin_data_set) {
                r = session_write_stdin(s, req->stdin_data, req->stdin_data_size, error);
                if (r >= 0)
                        r = session_close_stdin(s);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(s);
        return 0;
}

int session_activate(Session *s) {
        Manager *m = s->manager;
        int r;

        /* Sources are made here, enabled, rather than disabled at start and enabled now: each
         * change is a system call on the hot path. The stdin source is made when first needed. */
        r = epoll_ctl(m->exit_epoll, EPOLL_CTL_ADD, s->pidfd,
                      &(struct epoll_event) { .events = EPOLLIN, .data.ptr = s });
        if (r < 0)
                return -errno;
        for (int i = 0; i < 2; i++) {
                if (s->out[i].fd < 0)
                        continue;
                r = sd_event_add_io(m->event, &s->out[i].source, s->out[i].fd, EPOLLIN,
                                    session_output_event, s);
                if (r < 0)
                        return r;
        }

        session_log(s, true);
        manager_check_idle(m);
        return 0;
}
