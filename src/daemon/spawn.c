/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting a session's command: fork, the child's identity and confinement, exec. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>

#include "macro.h"
#include "spawn.h"

/* The child runs on this stack while the daemon waits for its exec (CLONE_VFORK), so one stack
 * serves every spawn. */
#define CHILD_STACK_SIZE (256 * 1024)

/* Low fds reserved at startup, pointing at /dev/null while unused. Before each spawn the child's
 * stdin, stdout, stderr and controlling terminal are put there, so that the child can share our
 * fd table (CLONE_FILES) and unshare only the fds up to the last slot: copying a table of
 * thousands of session fds for every spawn would make Exec slower the more sessions the daemon
 * holds. */
enum {
        SLOT_STDIN,
        SLOT_STDOUT,
        SLOT_STDERR,
        SLOT_TTY,
        _SLOT_MAX,
};

static int slots[_SLOT_MAX] = { -EBADF, -EBADF, -EBADF, -EBADF };
static bool slot_is_null[_SLOT_MAX];    /* the slot points at /dev/null: nothing to undo */
static int devnull = -EBADF;
static int last_slot = -EBADF;

/* Where a child that fails to start says why, for the daemon to read once clone() returns: a
 * shared page, so that it works both for a child that shares our memory and for one with a copy
 * of it (under sanitizers). CLONE_VFORK makes the daemon wait until the child has exec'd or
 * exited, so no pipe is needed to learn which. */
static SpawnFailure *shared_failure = NULL;

/* The signals whose disposition was not SIG_DFL at spawn_init(): the only ones the child has to
 * reset. exec() resets handlers by itself, but keeps SIG_IGN, and no handler of ours may run in
 * a child that shares our memory. */
static sigset_t nondefault_signals;

/* The daemon's own limits, which the child starts with. */
static struct rlimit own_rlimits[N_RLIMITS];

/* Everything below until spawn_child() runs in the child: only async-signal-safe calls, no
 * allocation, and with CLONE_VM no writes to memory the daemon owns. */

static _noreturn_ void child_fail(const char *stage, int error) {
        /* The stage pointer is valid in the daemon since both run the same binary image. */
        *shared_failure = (SpawnFailure) { .stage = stage, .error = error };
        _exit(127);
}

static int child_reset_signals(void) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t empty;

        for (int sig = 1; sig < _NSIG; sig++)
                if (sigismember(&nondefault_signals, sig) == 1 && sigaction(sig, &sa, NULL) < 0)
                        return -errno;
        sigemptyset(&empty);
        if (sigprocmask(SIG_SETMASK, &empty, NULL) < 0)
                return -errno;
        return 0;
}

static int child_setup_fds(void) {
        for (int i = 0; i < 3; i++)
                /* The slots are above 2, and dup2 clears O_CLOEXEC on the copy. */
                if (dup2(slots[SLOT_STDIN + i], i) < 0)
                        return -errno;
        /* Everything else goes: the slots and whatever the daemon inherited below them. */
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
                return -errno;
        return 0;
}

/* Before the uid switch only the limits the user could set itself anyway (those not above the
 * hard limits we have), so that RLIMIT_NPROC is in force when setuid() counts the user's
 * processes; the rest after it. done[] says which the first pass set. */
static int child_apply_rlimits(const SpawnParams *p, bool before_setuid, bool done[static N_RLIMITS]) {
        for (int i = 0; i < N_RLIMITS; i++) {
                if (!p->rlimit_set[i] || done[i])
                        continue;
                if (before_setuid && p->rlimits[i].rlim_max > own_rlimits[i].rlim_max)
                        continue;
                if (setrlimit(i, &p->rlimits[i]) < 0)
                        return -errno;
                done[i] = true;
        }
        return 0;
}

static int child_exec(const SpawnParams *p) {
        const char *file = p->argv[0];
        char buf[PATH_MAX];
        bool seen_eacces = false;

        if (strchr(file, '/')) {
                execve(file, p->argv, p->envp);
                return -errno;
        }

        for (const char *dir = p->path ?: "", *end;; dir = end + 1) {
                size_t dlen, flen = strlen(file);

                end = strchrnul(dir, ':');
                dlen = (size_t) (end - dir);
                if (dlen == 0) {
                        /* An empty PATH element means the working directory. */
                        dir = ".";
                        dlen = 1;
                }
                if (dlen + 1 + flen + 1 <= sizeof buf) {
                        memcpy(buf, dir, dlen);
                        buf[dlen] = '/';
                        memcpy(buf + dlen + 1, file, flen + 1);
                        execve(buf, p->argv, p->envp);

                        switch (errno) {
                        case EACCES:
                                seen_eacces = true;
                                _fallthrough_;
                        case ENOENT:
                        case ENOTDIR:
                        case ESTALE:
                        case ENODEV:
                        case ETIMEDOUT:
                                break;
                        default:
                                /* The file is there but cannot run: report that, not a miss. */
                                return -errno;
                        }
                }
                if (*end == 0)
                        break;
        }
        return seen_eacces ? -EACCES : -ENOENT;
}

static int child_main(void *userdata) {
        const SpawnParams *p = userdata;
        bool rlimits_done[N_RLIMITS] = {};
        const char *stage = NULL;
        int r;

        /* Our own copy of the fd table, of the fds up to the last slot only. */
        if (syscall(SYS_close_range, (unsigned) last_slot + 1, ~0U, CLOSE_RANGE_UNSHARE) < 0)
                child_fail("fds", errno);
        if (child_reset_signals() < 0)
                child_fail("signals", errno);
        if (setsid() < 0)
                child_fail("setsid", errno);
        if (p->tty >= 0 && ioctl(slots[SLOT_TTY], TIOCSCTTY, 0) < 0)
                child_fail("controlling-terminal", errno);

        if (setgroups(p->n_groups, p->groups) < 0)
                child_fail("setgroups", errno);
        if (setresgid(p->gid, p->gid, p->gid) < 0)
                child_fail("setgid", errno);
        r = child_apply_rlimits(p, true, rlimits_done);
        if (r < 0)
                child_fail("setrlimit", -r);
        r = profile_apply_before_setuid(p->program, p->profile, &stage);
        if (r < 0)
                child_fail(stage ?: "capabilities", -r);
        if (setresuid(p->uid, p->uid, p->uid) < 0)
                child_fail("setuid", errno);
        r = child_apply_rlimits(p, false, rlimits_done);
        if (r < 0)
                child_fail("setrlimit", -r);

        if (chdir(p->cwd) < 0) {
                if (!p->cwd_fallback || chdir("/") < 0)
                        child_fail("chdir", errno);
        }

        r = child_setup_fds();
        if (r < 0)
                child_fail("fds", -r);

        /* After the fds: entering the Landlock domain needs free fds below RLIMIT_NOFILE. */
        r = profile_apply_after_setuid(p->program, p->profile, &stage);
        if (r < 0)
                child_fail(stage ?: "seccomp", -r);

        r = child_exec(p);
        child_fail("execve", -r);
}

/* The daemon's side. */

#if !HAVE_SANITIZER
static void *child_stack = NULL;
#endif

int spawn_init(void) {
        void *page;

        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return -errno;
        for (int i = 0; i < _SLOT_MAX; i++) {
                slots[i] = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
                if (slots[i] < 0)
                        return -errno;
                slot_is_null[i] = true;
                last_slot = MAX(last_slot, slots[i]);
        }

        page = mmap(NULL, sizeof(SpawnFailure), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
        if (page == MAP_FAILED)
                return -errno;
        shared_failure = page;

        sigemptyset(&nondefault_signals);
        for (int sig = 1; sig < _NSIG; sig++) {
                struct sigaction sa;

                /* Fails for the signals glibc reserves for itself; they stay as they are. */
                if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
                        continue;
                if (sa.sa_handler != SIG_DFL)
                        (void) sigaddset(&nondefault_signals, sig);
        }

        for (int i = 0; i < N_RLIMITS; i++)
                if (getrlimit(i, &own_rlimits[i]) < 0)
                        return -errno;
        return 0;
}

struct rlimit spawn_default_nofile(void) {
        return (struct rlimit) {
                .rlim_cur = MIN(own_rlimits[RLIMIT_NOFILE].rlim_cur, (rlim_t) 1024),
                .rlim_max = own_rlimits[RLIMIT_NOFILE].rlim_max,
        };
}

/* Points the slots at the child's fds (or back at /dev/null when p is NULL). */
static int slots_set(const SpawnParams *p) {
        int want[_SLOT_MAX] = {
                p ? p->fds[0] : devnull,
                p ? p->fds[1] : devnull,
                p ? p->fds[2] : devnull,
                p && p->tty >= 0 ? p->tty : devnull,
        };

        for (int i = 0; i < _SLOT_MAX; i++) {
                if (want[i] == devnull && slot_is_null[i])
                        continue;
                if (dup3(want[i], slots[i], O_CLOEXEC) < 0)
                        return -errno;
                slot_is_null[i] = want[i] == devnull;
        }
        return 0;
}

int spawn_child(const SpawnParams *p, pid_t *ret_pid, int *ret_pidfd, SpawnFailure *failure) {
        sigset_t all, saved;
        int pidfd = -EBADF;
        pid_t pid;

        *failure = (SpawnFailure) { .stage = "fork" };

        if (last_slot < 0)
                return -(failure->error = EBADF); /* spawn_init() was not called */
        if (slots_set(p) < 0) {
                failure->error = errno;
                (void) slots_set(NULL);
                return -failure->error;
        }
        *shared_failure = (SpawnFailure) {};

        /* No signal may run a handler of ours in the child before it has reset them. */
        sigfillset(&all);
        if (sigprocmask(SIG_SETMASK, &all, &saved) < 0)
                return -(failure->error = errno);

#if HAVE_SANITIZER
        /* The sanitizers' shadow memory cannot follow a child that shares our address space: this
         * child gets a copy of it, as with fork(), but we still sleep until it has exec'd or
         * died. The raw system call takes the flags first on the architectures we build
         * sanitized tests on. */
#  if defined(__s390__) || defined(__CRIS__)
#    error "clone() takes the stack first here"
#  endif
        pid = (pid_t) syscall(SYS_clone, CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | SIGCHLD, NULL, &pidfd,
                              NULL, 0);
        if (pid == 0)
                _exit(child_main((void *) p));
#else
        if (!child_stack) {
                void *s = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
                if (s == MAP_FAILED) {
                        failure->error = errno;
                        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
                        return -failure->error;
                }
                child_stack = s;
        }
        /* As posix_spawn does: share memory and sleep until the child has exec'd or died, which
         * costs no page table copy however large the daemon grows. */
        pid = clone(child_main, (char *) child_stack + CHILD_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | SIGCHLD, (void *) p, &pidfd);
#endif
        if (pid < 0)
                failure->error = errno;
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        /* The child has its own copies by now; ours must not keep its pipe ends open. */
        (void) slots_set(NULL);
        if (pid < 0)
                return -failure->error;

        if (shared_failure->stage) {
                *failure = *shared_failure;
                (void) waitpid(pid, NULL, 0);
                safe_close(pidfd);
                return -failure->error;
        }

        /* CLONE_PIDFD gives it O_CLOEXEC; in the child's copy of the fd table it was above the
         * slots, so the child dropped it. */
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        *failure = (SpawnFailure) {};
        return 0;
}
