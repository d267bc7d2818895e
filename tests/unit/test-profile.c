/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test of profile.c: applies each profile in a forked child and probes the result from inside. */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "profile.h"

#define BIT(cap) (UINT64_C(1) << (cap))
#define NOBODY 65534

/* TAP counters; a child continues the numbering and hands its counters back over a pipe. */
typedef struct Counters {
        unsigned tests;
        unsigned failed;
} Counters;

static Counters counters;

static void _printf_(2, 3) check(bool ok, const char *fmt, ...) {
        va_list ap;

        counters.tests++;
        if (!ok)
                counters.failed++;

        printf("%sok %u - ", ok ? "" : "not ", counters.tests);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

static void _printf_(1, 2) skip(const char *fmt, ...) {
        va_list ap;

        counters.tests++;
        printf("ok %u - ", counters.tests);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(" # SKIP\n");
        fflush(stdout);
}

/* Checks that a raw syscall result (-1 + errno) failed with exactly 'expected'. */
static void check_errno(const char *who, const char *what, long r, int expected) {
        int e = r < 0 ? errno : 0;

        check(r < 0 && e == expected, "%s: %s fails with %s (got %s)", who, what, strerrorname_np(expected),
              r < 0 ? strerrorname_np(e) ?: "?" : "success");
}

/* Reads one field of /proc/self/status; hex for the Cap* lines, decimal otherwise. */
static int status_field(const char *key, uint64_t *ret) {
        _cleanup_free_ char *line = NULL;
        size_t n = 0, len = strlen(key);
        FILE *f;
        int r = -ENOENT;

        f = fopen("/proc/self/status", "re");
        if (!f)
                return -errno;

        while (getline(&line, &n, f) > 0)
                if (strncmp(line, key, len) == 0 && line[len] == ':') {
                        *ret = strtoull(line + len + 1, NULL, strncmp(key, "Cap", 3) == 0 ? 16 : 10);
                        r = 0;
                        break;
                }

        fclose(f);
        return r;
}

static uint64_t status(const char *key) {
        uint64_t v = UINT64_MAX;

        if (status_field(key, &v) < 0)
                check(false, "read %s from /proc/self/status", key);
        return v;
}

typedef struct Caps {
        uint64_t inh, prm, eff, bnd, amb;
} Caps;

static Caps caps_now(void) {
        return (Caps) {
                .inh = status("CapInh"),
                .prm = status("CapPrm"),
                .eff = status("CapEff"),
                .bnd = status("CapBnd"),
                .amb = status("CapAmb"),
        };
}

/* Gives the child something to take away: CAP_SYS_ADMIN and CAP_NET_RAW inheritable, CAP_NET_RAW
 * ambient (ambient survives a switch to uid 0, so only the profile can clear it). */
static int raise_inheritable_and_ambient(void) {
        const cap_value_t list[] = { CAP_SYS_ADMIN, CAP_NET_RAW };
        cap_t c;
        int r = 0;

        c = cap_get_proc();
        if (!c)
                return -errno;
        if (cap_set_flag(c, CAP_INHERITABLE, ELEMENTSOF(list), list, CAP_SET) < 0 || cap_set_proc(c) < 0 ||
            cap_set_ambient(CAP_NET_RAW, CAP_SET) < 0)
                r = -errno;
        cap_free(c);
        return r;
}

static int switch_user(uid_t uid) {
        if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
                return -errno;
        return 0;
}

#if defined(__x86_64__)
/* A system call through the i386 ABI (int $0x80) from this x86-64 process. */
static long syscall_i386(long nr, long a, long b, long c) {
        long ret;

        __asm__ volatile("int $0x80"
                         : "=a"(ret)
                         : "a"(nr), "b"(a), "c"(b), "d"(c)
                         : "memory", "r8", "r9", "r10", "r11");
        return ret;
}

#define X32_SYSCALL_BIT 0x40000000L
#define I386_GETPID 20
#define I386_IOCTL 54
#define I386_UNSHARE 310
#define X32_UNSHARE 272
#define X32_IOCTL 514

/* Where the kernel has i386 emulation switched off (CONFIG_IA32_EMULATION=n, ia32_emulation=0, or
 * a guest kernel without the gate), int $0x80 raises SIGSEGV instead of returning ENOSYS: try it in
 * a child first. Under AddressSanitizer the child does not die of the signal but exits 1, as the
 * sanitizer's handler reports the fault. */
static bool i386_gate_faults(void) {
        pid_t pid;
        int st;

        pid = fork();
        if (pid < 0)
                return false; /* the call itself will tell */
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                if (null >= 0)
                        (void) dup2(null, STDERR_FILENO); /* the sanitizer's report of the fault */
                (void) syscall_i386(I386_GETPID, 0, 0, 0);
                _exit(EXIT_SUCCESS);
        }
        if (waitpid(pid, &st, 0) < 0)
                return false;
        return !WIFEXITED(st) || WEXITSTATUS(st) != EXIT_SUCCESS;
}

static void probe_compat(const char *who) {
        long r;

        if (i386_gate_faults())
                skip("%s: i386 ABI not available (int $0x80 faults)", who);
        else if ((r = syscall_i386(I386_GETPID, 0, 0, 0)) == -ENOSYS)
                skip("%s: i386 ABI not available", who);
        else {
                check(r == getpid(), "%s: i386 getpid still works (got %ld)", who, r);
                r = syscall_i386(I386_UNSHARE, CLONE_NEWUSER, 0, 0);
                check(r == -EPERM, "%s: i386 unshare fails with EPERM (got %ld)", who, r);
                r = syscall_i386(I386_IOCTL, STDIN_FILENO, TIOCSTI, 0);
                check(r == -EPERM, "%s: i386 ioctl(TIOCSTI) fails with EPERM (got %ld)", who, r);
        }

        /* The filter answers before the kernel looks the number up: this holds without x32 support,
         * where an unfiltered call would fail with ENOSYS. */
        check_errno(who, "x32 unshare", syscall(X32_SYSCALL_BIT | X32_UNSHARE, CLONE_NEWUSER), EPERM);
        r = syscall(X32_SYSCALL_BIT | X32_IOCTL, STDIN_FILENO, TIOCSTI, NULL);
        check_errno(who, "x32 ioctl(TIOCSTI)", r, EPERM);
}
#endif

/* The checks shared by a child that applied "restricted" and by the program it executed. */
static void probe_restricted(const char *who) {
        uint64_t nnp = status("NoNewPrivs"), mode = status("Seccomp");
        const unsigned long high = 1UL << 32, junk = 0xdeadUL << 32;
        Caps now = caps_now();
        int fd, one = 1;
        char c = 'x';

        printf("# probing %s\n", who);
        check(nnp == 1, "%s: NoNewPrivs is 1 (got %" PRIu64 ")", who, nnp);
        check(mode == 2, "%s: Seccomp is 2, filter mode (got %" PRIu64 ")", who, mode);
        check(!(now.bnd & BIT(CAP_SYS_ADMIN)), "%s: CAP_SYS_ADMIN not in CapBnd", who);
        check(!(now.eff & BIT(CAP_SYS_ADMIN)), "%s: CAP_SYS_ADMIN not in CapEff", who);
        check(!(now.prm & BIT(CAP_SYS_ADMIN)), "%s: CAP_SYS_ADMIN not in CapPrm", who);
        check(!(now.inh & BIT(CAP_SYS_ADMIN)), "%s: CAP_SYS_ADMIN not in CapInh", who);
        check(!(now.bnd & BIT(CAP_SYS_PTRACE)), "%s: CAP_SYS_PTRACE not in CapBnd", who);
        check(!(now.eff & BIT(CAP_SYS_PTRACE)), "%s: CAP_SYS_PTRACE not in CapEff", who);
        check(!(now.prm & BIT(CAP_SYS_PTRACE)), "%s: CAP_SYS_PTRACE not in CapPrm", who);
        check(!(now.inh & BIT(CAP_SYS_PTRACE)), "%s: CAP_SYS_PTRACE not in CapInh", who);
        check(now.amb == 0, "%s: CapAmb is 0 (got %" PRIx64 ")", who, now.amb);

        check_errno(who, "mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL), EPERM);
        check_errno(who, "umount2", umount2("/tmp", MNT_DETACH), EPERM);
        check_errno(who, "unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER), EPERM);
        check_errno(who, "unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS), EPERM);
        /* The same namespaces through clone(), and clone3(), whose flags a filter cannot see. */
        check_errno(who, "clone(CLONE_NEWUSER)",
                    syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0), EPERM);
        check_errno(who, "clone(CLONE_NEWNET)",
                    syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0), EPERM);
        check_errno(who, "clone3", syscall(SYS_clone3, NULL, 0), ENOSYS);
        /* Each of these fails differently, or succeeds, when the filter lets it through. */
        check_errno(who, "setns", setns(-1, 0), EPERM);
#ifdef SYS_open_tree
        check_errno(who, "open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 0), EPERM);
#endif
        check_errno(who, "keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 0),
                    EPERM);
        check_errno(who, "process_vm_readv", process_vm_readv(getpid(), NULL, 0, NULL, 0, 0), EPERM);
        check_errno(who, "perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
        check_errno(who, "ptrace", ptrace(PTRACE_PEEKDATA, getppid(), NULL, NULL), EPERM);

        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        check(fd >= 0, "%s: open(/dev/null) still works", who);
        check(getpid() == syscall(SYS_getpid), "%s: getpid still works", who);

        /* On /dev/null these would fail with ENOTTY if they got through. */
        check_errno(who, "ioctl(TIOCSTI)", ioctl(fd, TIOCSTI, &c), EPERM);
        check_errno(who, "ioctl(TIOCLINUX)", ioctl(fd, TIOCLINUX, &c), EPERM);
        check_errno(who, "ioctl(TIOCSTI | 1 << 32)", syscall(SYS_ioctl, fd, TIOCSTI | high, &c), EPERM);
        check_errno(who, "ioctl(TIOCLINUX | 0xdead << 32)", syscall(SYS_ioctl, fd, TIOCLINUX | junk, &c),
                    EPERM);
        /* Other requests, high bits or not, still reach the kernel (which ignores the high bits). */
        check(ioctl(fd, FIONBIO, &one) == 0, "%s: ioctl(FIONBIO) still works", who);
        check(syscall(SYS_ioctl, fd, FIONBIO | high, &one) == 0, "%s: ioctl(FIONBIO | 1 << 32) still works",
              who);
        check_errno(who, "ioctl(TCGETS) on /dev/null", ioctl(fd, TCGETS, &c), ENOTTY);

#if defined(__x86_64__)
        probe_compat(who);
#endif
        safe_close(fd);
}

/* A process of the child's uid started before the profile was applied: outside its Landlock domain.
 * Dumpable, so that without the domain a process of the same uid could open its memory. It lives
 * until the child and what it executes are gone: they hold the pipe's write end (no O_CLOEXEC).
 * A parent-death signal would not reach it, as that counts as a signal from the child's domain. */
static pid_t start_outsider(uid_t uid) {
        int fds[2];
        pid_t pid;
        char c;

        if (pipe(fds) < 0)
                return -errno;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                safe_close(fds[1]);
                if (switch_user(uid) < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                        _exit(EXIT_FAILURE);
                while (read(fds[0], &c, 1) != 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        safe_close(fds[0]);
        return pid;
}

static int open_mem(pid_t pid) {
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/proc/%i/mem", (int) pid);
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -1;
        safe_close(fd);
        return 0;
}

/* File access is not restricted by the domain: renames and links across directories (which a
 * domain handling file-system rights refuses unless a rule grants LANDLOCK_ACCESS_FS_REFER). */
static void probe_file_access(const char *who, int abi) {
        char dir[] = "/tmp/test-profile.XXXXXX", a[64], b[64], f[64], g[64], h[64], fg[64], blk[64];
        int fd;

        if (!mkdtemp(dir)) {
                check(false, "%s: mkdtemp: %m", who);
                return;
        }
        snprintf(a, sizeof(a), "%s/a", dir);
        snprintf(b, sizeof(b), "%s/b", dir);
        snprintf(f, sizeof(f), "%s/a/f", dir);
        snprintf(g, sizeof(g), "%s/b/g", dir);
        snprintf(h, sizeof(h), "%s/a/h", dir);
        snprintf(fg, sizeof(fg), "%s/a/f/g", dir);     /* g, once b has become a/f */
        snprintf(blk, sizeof(blk), "%s/blk", dir);

        fd = mkdir(a, 0700) < 0 || mkdir(b, 0700) < 0 ? -1 : open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        check(fd >= 0, "%s: create a file in /tmp", who);
        safe_close(fd);
        check(rename(f, g) == 0, "%s: rename into another directory: %m", who);
        check(link(g, h) == 0, "%s: link into another directory: %m", who);
        check(rename(a, g) < 0 && errno == ENOTDIR && rename(b, f) == 0,
              "%s: rename a directory into another one: %m", who);

        /* The domain of ABI 2 to 5 handles creating block devices: refused, for root too. */
        if (getuid() == 0 && abi >= 2 && abi < 6)
                check_errno(who, "mknod(S_IFBLK) in a Landlock domain without scopes",
                            mknod(blk, S_IFBLK | 0600, makedev(7, 0)), EACCES);

        (void) unlink(blk);
        (void) unlink(fg);
        (void) unlink(h);
        (void) rmdir(f);
        (void) rmdir(a);
        (void) rmdir(dir);
}

/* The Landlock domain: no way into the memory of a process outside it, nor (ABI >= 6) signals to
 * it; its own children are reachable. */
static void probe_landlock(const char *who, int abi, pid_t outsider) {
        pid_t child;
        int st;

        printf("# probing Landlock (ABI %i) in %s\n", abi, who);
        if (abi <= 0) {
                skip("%s: no Landlock domain", who);
                probe_file_access(who, abi);
                return;
        }

        /* For root, dropping CAP_SYS_PTRACE alone already refuses this: the outsider holds
         * capabilities the child lacks. For nobody only the domain does. */
        check_errno(who, "open(/proc/OUTSIDER/mem, O_RDWR)", open_mem(outsider), EACCES);
        check_errno(who, "ptrace(PTRACE_ATTACH) of an outsider",
                    syscall(SYS_ptrace, PTRACE_ATTACH, outsider, NULL, NULL), EPERM);
        if (abi >= 6)
                check_errno(who, "kill(OUTSIDER, 0)", kill(outsider, 0), EPERM);
        else
                check(kill(outsider, 0) == 0, "%s: without scopes, kill(OUTSIDER, 0) works: %m", who);

        child = fork();
        if (child < 0) {
                check(false, "%s: fork: %m", who);
                return;
        }
        if (child == 0) {
                for (;;)
                        pause();
        }
        check(kill(child, SIGTERM) == 0, "%s: a child of its own can be signalled: %m", who);
        check(waitpid(child, &st, 0) == child && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
              "%s: the child died of it", who);

        probe_file_access(who, abi);
}

static const char *self_exe;

/* Runs fn in a child with its own mount namespace (a mount that slipped through stays there) and
 * collects its TAP counters. */
static void run_child(const char *name, void (*fn)(const ProfileProgram *p, int report_fd),
                      const ProfileProgram *p) {
        _cleanup_close_pair_ int pipefd[2] = { -EBADF, -EBADF };
        Counters got;
        ssize_t n;
        pid_t pid;
        int st;

        printf("# %s\n", name);
        fflush(stdout);

        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                check(false, "%s: pipe: %m", name);
                return;
        }

        pid = fork();
        if (pid < 0) {
                check(false, "%s: fork: %m", name);
                return;
        }
        if (pid == 0) {
                pipefd[0] = safe_close(pipefd[0]);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                        check(false, "%s: private mount namespace: %m", name);
                        _exit(EXIT_FAILURE);
                }
                fn(p, pipefd[1]);
                n = write(pipefd[1], &counters, sizeof(counters));
                _exit(n == sizeof(counters) ? EXIT_SUCCESS : EXIT_FAILURE);
        }

        pipefd[1] = safe_close(pipefd[1]);
        do
                n = read(pipefd[0], &got, sizeof(got));
        while (n < 0 && errno == EINTR);

        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR) {
                        check(false, "%s: waitpid: %m", name);
                        return;
                }

        if (n == sizeof(got))
                counters = got;
        if (WIFSIGNALED(st))
                check(false, "%s: child killed by SIG%s", name, sigabbrev_np(WTERMSIG(st)) ?: "?");
        else
                check(n == sizeof(got) && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "%s: child finished cleanly (exit status %d)", name, WEXITSTATUS(st));
}

static void child_restricted(const ProfileProgram *p, uid_t uid, int report_fd) {
        const uint64_t keep = ~(BIT(CAP_SYS_ADMIN) | BIT(CAP_SYS_PTRACE));
        const char *stage = NULL;
        char fdbuf[16], nbuf[16], fbuf[16], abibuf[16], obuf[16];
        int r, abi = profile_program_landlock(p, NULL, NULL);
        Caps before, now;
        pid_t outsider;

        outsider = start_outsider(uid);
        check(outsider > 0, "start a process of uid %u outside the domain (%i)", (unsigned) uid, outsider);

        r = raise_inheritable_and_ambient();
        check(r == 0, "set up inheritable and ambient capabilities (%d)", r);
        before = caps_now();

        r = profile_apply_before_setuid(p, PROFILE_RESTRICTED, &stage);
        check(r == 0, "profile_apply_before_setuid() returns 0 (got %d, stage %s)", r, r < 0 ? stage : "-");

        r = switch_user(uid);
        check(r == 0, "switch to uid %u", (unsigned) uid);

        stage = NULL;
        r = profile_apply_after_setuid(p, PROFILE_RESTRICTED, &stage);
        check(r == 0, "profile_apply_after_setuid() returns 0 (got %d, stage %s)", r, r < 0 ? stage : "-");

        probe_restricted(uid == 0 ? "root child" : "nobody child");
        probe_landlock(uid == 0 ? "root child" : "nobody child", abi, outsider);

        /* What the profile must leave alone. */
        now = caps_now();
        check(now.bnd == (before.bnd & keep), "other bounding capabilities kept (%" PRIx64 ")", now.bnd);
        check(now.inh == (before.inh & keep) && (now.inh & BIT(CAP_NET_RAW)),
              "other inheritable capabilities kept (%" PRIx64 ")", now.inh);
        if (uid == 0) {
                check(now.prm == (before.prm & keep), "root keeps the rest of CapPrm (%" PRIx64 ")",
                      now.prm);
                check(now.eff == (before.eff & keep), "root keeps the rest of CapEff (%" PRIx64 ")",
                      now.eff);
        } else
                check(now.prm == 0 && now.eff == 0, "nobody has empty CapPrm and CapEff");

        /* And it all survives execve(): for root, the bounding set keeps CAP_SYS_ADMIN from coming back. */
        snprintf(fdbuf, sizeof(fdbuf), "%d", report_fd);
        snprintf(nbuf, sizeof(nbuf), "%u", counters.tests);
        snprintf(fbuf, sizeof(fbuf), "%u", counters.failed);
        snprintf(abibuf, sizeof(abibuf), "%i", abi);
        snprintf(obuf, sizeof(obuf), "%i", (int) outsider);
        if (fcntl(report_fd, F_SETFD, 0) < 0) {
                check(false, "clear FD_CLOEXEC on report fd: %m");
                return;
        }
        fflush(stdout);
        execl(self_exe, self_exe, "--probe-exec", fdbuf, nbuf, fbuf, abibuf, obuf, (char *) NULL);
        check(false, "execve(%s): %m", self_exe);
}

static void child_restricted_root(const ProfileProgram *p, int report_fd) {
        child_restricted(p, 0, report_fd);
}

static void child_restricted_nobody(const ProfileProgram *p, int report_fd) {
        child_restricted(p, NOBODY, report_fd);
}

/* The same with a program built for an older Landlock, or none: the ABI is in the program. */
static ProfileProgram *program_abi5, *program_none;

static void child_restricted_root_abi5(const ProfileProgram *p _unused_, int report_fd) {
        child_restricted(program_abi5, 0, report_fd);
}

static void child_restricted_nobody_abi5(const ProfileProgram *p _unused_, int report_fd) {
        child_restricted(program_abi5, NOBODY, report_fd);
}

static void child_restricted_nobody_no_landlock(const ProfileProgram *p _unused_, int report_fd) {
        child_restricted(program_none, NOBODY, report_fd);
}

/* Which ruleset the program holds follows the kernel's ABI. */
static void test_landlock_abi(const ProfileProgram *p) {
        const char *reason = NULL;
        int kernel, abi, error = -1;

        kernel = (int) syscall(SYS_landlock_create_ruleset, NULL, 0, 1U /* ..._VERSION */);
        abi = profile_program_landlock(p, &reason, &error);
        printf("# kernel Landlock ABI %i, restricted uses %i%s%s\n", kernel, abi, abi ? "" : ": ",
               abi ? "" : reason);
        if (kernel >= 2)
                check(abi == kernel, "profile_program_landlock() is the kernel's ABI %i (got %i)", kernel, abi);
        else
                check(abi == 0 && reason, "no Landlock domain on a kernel with Landlock ABI %i (got %i)", kernel,
                      abi);

        abi = profile_program_landlock(program_none, &reason, &error);
        check(abi == 0 && reason && error == 0, "a program without Landlock says why (%s)", strempty(reason));
        if (program_abi5) {
                abi = profile_program_landlock(program_abi5, NULL, NULL);
                check(abi == MIN(kernel, 5) || (kernel < 2 && abi == 0), "a program capped at ABI 5 uses %i",
                      abi);
        }
}

static void child_default(const ProfileProgram *p, int report_fd) {
        const char *stage = NULL;
        Caps before = caps_now(), now;
        int r;

        r = profile_apply_before_setuid(p, PROFILE_DEFAULT, &stage);
        check(r == 0 && !stage, "default: profile_apply_before_setuid() does nothing (got %d)", r);
        r = switch_user(0);
        check(r == 0, "default: switch to uid 0");
        r = profile_apply_after_setuid(p, PROFILE_DEFAULT, &stage);
        check(r == 0 && !stage, "default: profile_apply_after_setuid() does nothing (got %d)", r);

        now = caps_now();
        check(status("NoNewPrivs") == 0, "default: NoNewPrivs is 0");
        check(status("Seccomp") == 0, "default: Seccomp is 0");
        check(now.bnd == before.bnd && now.prm == before.prm && now.eff == before.eff,
              "default: capabilities untouched");
        check(profile_apply_after_setuid(NULL, PROFILE_DEFAULT, &stage) == 0, "default: no program needed");
}

/* Without CAP_SETPCAP the bounding set cannot shrink: the error names the stage. */
static void child_too_late(const ProfileProgram *p, int report_fd) {
        const char *stage = NULL;
        int r;

        r = switch_user(NOBODY);
        check(r == 0, "too late: switch to uid %u", NOBODY);
        r = profile_apply_before_setuid(p, PROFILE_RESTRICTED, &stage);
        check(r == -EPERM, "too late: profile_apply_before_setuid() fails with -EPERM (got %d)", r);
        check(stage && strcmp(stage, "capabilities") == 0, "too late: stage is \"capabilities\" (got %s)",
              stage ?: "NULL");
}

static void test_names(void) {
        static const char *const bad[] = { "Restricted", "strict", "", "default ", "RESTRICTED", "none" };

        check(profile_from_string("default") == PROFILE_DEFAULT, "profile_from_string(\"default\")");
        check(profile_from_string("restricted") == PROFILE_RESTRICTED,
              "profile_from_string(\"restricted\")");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                check(profile_from_string(bad[i]) == _PROFILE_INVALID, "profile_from_string rejects \"%s\"",
                      bad[i]);
        check(profile_from_string(NULL) == _PROFILE_INVALID, "profile_from_string rejects NULL");

        for (Profile p = 0; p < _PROFILE_MAX; p++)
                check(profile_from_string(profile_to_string(p)) == p, "profile_to_string(%d) round-trips",
                      (int) p);
        check(!profile_to_string(_PROFILE_MAX) && !profile_to_string(_PROFILE_INVALID),
              "profile_to_string of an invalid profile is NULL");
}

static void test_no_program(void) {
        const char *stage = NULL;

        check(profile_apply_before_setuid(NULL, PROFILE_RESTRICTED, &stage) == -EINVAL && stage,
              "restricted without a program: before_setuid fails");
        stage = NULL;
        check(profile_apply_after_setuid(NULL, PROFILE_RESTRICTED, &stage) == -EINVAL && stage,
              "restricted without a program: after_setuid fails");
        check(!profile_program_free(NULL), "profile_program_free(NULL)");
}

/* The second half of a restricted child, after it executed this binary again. */
static _noreturn_ void probe_exec(char **argv) {
        int fd = atoi(argv[2]);
        ssize_t n;

        counters.tests = strtoul(argv[3], NULL, 10);
        counters.failed = strtoul(argv[4], NULL, 10);
        probe_restricted(getuid() == 0 ? "root after execve" : "nobody after execve");
        probe_landlock(getuid() == 0 ? "root after execve" : "nobody after execve", atoi(argv[5]),
                       (pid_t) atoi(argv[6]));

        /* _exit(): LeakSanitizer's exit-time scan needs ptrace, which this process may no longer use. */
        n = write(fd, &counters, sizeof(counters));
        _exit(n == sizeof(counters) ? EXIT_SUCCESS : EXIT_FAILURE);
}

int main(int argc, char **argv) {
        ProfileProgram *p = NULL;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);

        if (argc == 7 && strcmp(argv[1], "--probe-exec") == 0)
                probe_exec(argv);

        if (geteuid() != 0) {
                printf("1..0 # SKIP must run as root\n");
                return EXIT_SUCCESS;
        }

        self_exe = realpath("/proc/self/exe", NULL);
        if (!self_exe) {
                printf("Bail out! realpath(/proc/self/exe): %m\n");
                return EXIT_FAILURE;
        }

        test_names();
        test_no_program();

        r = profile_program_new(&p);
        check(r == 0 && p, "profile_program_new() (got %d)", r);
        if (r < 0) {
                printf("Bail out! no program to apply\n");
                return EXIT_FAILURE;
        }

        r = profile_program_new_with_landlock(5, &program_abi5);
        check(r == 0, "profile_program_new_with_landlock(5) (got %d)", r);
        r = profile_program_new_with_landlock(0, &program_none);
        check(r == 0, "profile_program_new_with_landlock(0) (got %d)", r);
        if (!program_abi5 || !program_none) {
                printf("Bail out! no program to apply\n");
                return EXIT_FAILURE;
        }
        test_landlock_abi(p);

        run_child("restricted, staying root", child_restricted_root, p);
        run_child("restricted, switching to nobody", child_restricted_nobody, p);
        run_child("restricted, staying root, Landlock ABI 5 at most", child_restricted_root_abi5, p);
        run_child("restricted, switching to nobody, Landlock ABI 5 at most", child_restricted_nobody_abi5, p);
        run_child("restricted, switching to nobody, without Landlock", child_restricted_nobody_no_landlock, p);
        run_child("default", child_default, p);
        run_child("restricted, bounding set after losing privileges", child_too_late, p);

        profile_program_free(p);
        profile_program_free(program_abi5);
        profile_program_free(program_none);
        free((char *) self_exe);

        printf("1..%u\n", counters.tests);
        if (counters.failed > 0)
                printf("# %u of %u failed\n", counters.failed, counters.tests);
        return counters.failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
