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
 * stdin, stdout, stderr, controlling terminal and error pipe are put there, so that the child
 * can share our fd table (CLONE_FILES) and unshare only the fds up to the last slot: copying a
 * table of thousands of session fds for every spawn would make Exec slower the more sessions
 * the daemon holds. */
enum {
        SLOT_STDIN,
        SLOT_STDOUT,
        SLOT_STDERR,
        SLOT_TTY,
        SLOT_ERROR,
        _SLOT_MAX,
};

static int slots[_SLOT_MAX] = { -EBADF, -EBADF, -EBADF, -EBADF, -EBADF };
static int devnull = -EBADF;
static int last_slot = -EBADF;

typedef struct ChildArgs {
        const SpawnParams *p;
        int error_fd;
} ChildArgs;

/* Everything below until spawn_child() runs in the child: only async-signal-safe calls, no
 * allocation, and with CLONE_VM no writes to memory the daemon owns. */

static _noreturn_ void child_fail(int error_fd, const char *stage, int error) {
        SpawnFailure f = { .stage = stage, .error = error };

        /* The daemon reads the struct as a whole: the pipe is fresh and it is far below
         * PIPE_BUF, so the write is atomic. The stage pointer is valid in the daemon since both
         * share the same binary image. */
        (void) !write(error_fd, &f, sizeof f);
        _exit(127);
}

static int child_reset_signals(void) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t empty;

        for (int sig = 1; sig < _NSIG; sig++) {
                if (sig == SIGKILL || sig == SIGSTOP)
                        continue;
                /* Fails for the signals glibc reserves; they are at their defaults anyway. */
                (void) sigaction(sig, &sa, NULL);
        }
        sigemptyset(&empty);
        if (sigprocmask(SIG_SETMASK, &empty, NULL) < 0)
                return -errno;
        return 0;
}

static int child_setup_fds(int error_fd) {
        for (int i = 0; i < 3; i++)
                /* The slots are above 2, and dup2 clears O_CLOEXEC on the copy. */
                if (dup2(slots[SLOT_STDIN + i], i) < 0)
                        return -errno;
        /* Everything else goes, but the error pipe, which O_CLOEXEC closes at exec. */
        if (error_fd > 3 && syscall(SYS_close_range, 3U, (unsigned) error_fd - 1, 0U) < 0)
                return -errno;
        if (syscall(SYS_close_range, (unsigned) error_fd + 1, ~0U, 0U) < 0)
                return -errno;
        return 0;
}

static int child_apply_rlimits(const SpawnParams *p, bool lowering_only) {
        for (int i = 0; i < N_RLIMITS; i++) {
                struct rlimit cur;

                if (!p->rlimit_set[i])
                        continue;
                if (lowering_only) {
                        /* Before the uid switch only what the user could do itself anyway, so
                         * that RLIMIT_NPROC is in force when setuid() counts the user's
                         * processes. */
                        if (getrlimit(i, &cur) < 0)
                                return -errno;
                        if (p->rlimits[i].rlim_max > cur.rlim_max)
                                continue;
                }
                if (setrlimit(i, &p->rlimits[i]) < 0)
                        return -errno;
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
        const ChildArgs *a = userdata;
        const SpawnParams *p = a->p;
        const char *stage = NULL;
        int r;

        /* Our own copy of the fd table, of the fds up to the last slot only. */
        if (syscall(SYS_close_range, (unsigned) last_slot + 1, ~0U, CLOSE_RANGE_UNSHARE) < 0)
                child_fail(a->error_fd, "fds", errno);
        if (child_reset_signals() < 0)
                child_fail(a->error_fd, "signals", errno);
        if (setsid() < 0)
                child_fail(a->error_fd, "setsid", errno);
        if (p->tty >= 0 && ioctl(slots[SLOT_TTY], TIOCSCTTY, 0) < 0)
                child_fail(a->error_fd, "controlling-terminal", errno);
        if (a->error_fd <= 2)
                child_fail(a->error_fd, "fds", EBADF);

        if (setgroups(p->n_groups, p->groups) < 0)
                child_fail(a->error_fd, "setgroups", errno);
        if (setresgid(p->gid, p->gid, p->gid) < 0)
                child_fail(a->error_fd, "setgid", errno);
        r = child_apply_rlimits(p, true);
        if (r < 0)
                child_fail(a->error_fd, "setrlimit", -r);
        r = profile_apply_before_setuid(p->program, p->profile, &stage);
        if (r < 0)
                child_fail(a->error_fd, stage ?: "capabilities", -r);
        if (setresuid(p->uid, p->uid, p->uid) < 0)
                child_fail(a->error_fd, "setuid", errno);
        r = child_apply_rlimits(p, false);
        if (r < 0)
                child_fail(a->error_fd, "setrlimit", -r);

        if (chdir(p->cwd) < 0) {
                if (!p->cwd_fallback || chdir("/") < 0)
                        child_fail(a->error_fd, "chdir", errno);
        }

        r = profile_apply_after_setuid(p->program, p->profile, &stage);
        if (r < 0)
                child_fail(a->error_fd, stage ?: "seccomp", -r);

        r = child_setup_fds(a->error_fd);
        if (r < 0)
                child_fail(a->error_fd, "fds", -r);

        r = child_exec(p);
        child_fail(a->error_fd, "execve", -r);
}

/* The daemon's side. */

#if !HAVE_SANITIZER
static void *child_stack = NULL;
#endif

int spawn_init(void) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return -errno;
        for (int i = 0; i < _SLOT_MAX; i++) {
                slots[i] = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
                if (slots[i] < 0)
                        return -errno;
                last_slot = MAX(last_slot, slots[i]);
        }
        return 0;
}

/* Points the slots at the child's fds (or back at /dev/null when fds is NULL). */
static int slots_set(const SpawnParams *p, int error_fd) {
        int want[_SLOT_MAX] = {
                p ? p->fds[0] : devnull,
                p ? p->fds[1] : devnull,
                p ? p->fds[2] : devnull,
                p && p->tty >= 0 ? p->tty : devnull,
                p ? error_fd : devnull,
        };

        for (int i = 0; i < _SLOT_MAX; i++)
                if (dup3(want[i], slots[i], O_CLOEXEC) < 0)
                        return -errno;
        return 0;
}

int spawn_child(const SpawnParams *p, pid_t *ret_pid, int *ret_pidfd, SpawnFailure *failure) {
        _cleanup_close_pair_ int pipefd[2] = { -EBADF, -EBADF };
        sigset_t all, saved;
        SpawnFailure f = {};
        ChildArgs args;
        ssize_t n;
        pid_t pid;
        int pidfd;

        *failure = (SpawnFailure) { .stage = "fork" };

        if (last_slot < 0)
                return -(failure->error = EBADF); /* spawn_init() was not called */
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -(failure->error = errno);
        if (slots_set(p, pipefd[1]) < 0) {
                failure->error = errno;
                (void) slots_set(NULL, -EBADF);
                return -failure->error;
        }
        args = (ChildArgs) { .p = p, .error_fd = slots[SLOT_ERROR] };

        /* No signal may run a handler of ours in the child before it has reset them. */
        sigfillset(&all);
        if (sigprocmask(SIG_SETMASK, &all, &saved) < 0)
                return -(failure->error = errno);

#if HAVE_SANITIZER
        /* The sanitizers' shadow memory cannot follow a child that shares our address space. */
        pid = fork();
        if (pid == 0)
                _exit(child_main(&args));
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
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &args);
#endif
        if (pid < 0)
                failure->error = errno;
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        /* The child has its own copies by now; ours must not keep its pipe ends open. */
        (void) slots_set(NULL, -EBADF);
        if (pid < 0)
                return -failure->error;

        pipefd[1] = safe_close(pipefd[1]);

        /* EOF means the exec closed the write end: the command is running. */
        do
                n = read(pipefd[0], &f, sizeof f);
        while (n < 0 && errno == EINTR);
        if (n == sizeof f) {
                (void) waitpid(pid, NULL, 0);
                *failure = f;
                return -f.error;
        }
        if (n != 0) {
                /* Cannot happen with an atomic write; do not leave a half-known child behind. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                failure->stage = "fork";
                return -(failure->error = EIO);
        }

        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                /* The child is ours and unreaped, so the pid cannot have been reused. */
                failure->error = errno;
                failure->stage = "pidfd";
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return -failure->error;
        }
        /* pidfd_open() gives O_CLOEXEC already. */
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        *failure = (SpawnFailure) {};
        return 0;
}
