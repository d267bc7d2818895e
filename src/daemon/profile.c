/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Security profiles: what "restricted" takes away, prepared in the daemon, applied in the child. */

/*
 * PROFILES
 *
 * default
 *     The command runs with whatever the user switch leaves it: nothing is added or taken away.
 *
 * restricted
 *     Before the command is executed, in this order:
 *
 *     1.  CAP_SYS_ADMIN and CAP_SYS_PTRACE are dropped from the capability bounding set, while the
 *         daemon's privileges are still held. No later execve(2), set-user-ID program or file
 *         capability can give them back.
 *
 *     2.  After the switch to the target user: the ambient capability set is cleared, and
 *         CAP_SYS_ADMIN and CAP_SYS_PTRACE are removed from the effective, permitted and
 *         inheritable sets. Every other capability the process holds at that point is kept: a
 *         command running as root keeps root's remaining capabilities; a command running as any
 *         other user has none in its effective and permitted sets anyway.
 *
 *     3.  The no_new_privs flag is set (PR_SET_NO_NEW_PRIVS, see prctl(2)): set-user-ID,
 *         set-group-ID and file capabilities are ignored by every later execve(2).
 *
 *     4.  The process enters a Landlock domain of its own (landlock_restrict_self(2)), which every
 *         child inherits and which survives execve(2). Processes in a domain may ptrace, and open
 *         the /proc/PID files that need ptrace access to (mem, environ, maps, fd/, ...), only
 *         processes in the same domain or one nested in it: the command cannot write into the
 *         memory of another process of its user (a default-profile session, the user's desktop),
 *         nor, as root without CAP_SYS_PTRACE, into the daemon's. Each session gets its own
 *         domain, so two restricted sessions are kept apart from each other too. Where the
 *         kernel's Landlock ABI is 6 or later (Linux 6.12), signals to processes outside the
 *         domain fail with EPERM as well (LANDLOCK_SCOPE_SIGNAL); the session's own processes can
 *         still signal one another, and the daemon can signal the session.
 *
 *         The domain does not restrict file access. From ABI 6 on it handles no file-system
 *         access right at all. Before, a domain has to handle one to exist: it handles
 *         LANDLOCK_ACCESS_FS_MAKE_BLOCK (creating block device nodes, which is refused then) and
 *         LANDLOCK_ACCESS_FS_REFER with a rule granting it beneath "/", since a domain that
 *         handles any file-system right refuses renaming or linking a file into another
 *         directory (EXDEV) unless a rule grants LANDLOCK_ACCESS_FS_REFER. ABI 1 (Linux 5.13 to
 *         5.18) has no REFER right, and its domains refuse those renames and links whatever the
 *         rules; as that breaks ordinary commands (mv, ln, git), "restricted" gets no Landlock
 *         domain there.
 *
 *         Without a usable Landlock (a kernel before 5.19, or Landlock not enabled in the "lsm="
 *         list) the command runs without a domain, and the daemon says so once at startup. It
 *         then keeps ptrace(2) and process_vm_readv/writev(2) denied by the seccomp filter and
 *         CAP_SYS_PTRACE dropped, but a process of the same user that can be traced (one not made
 *         undumpable, and no Yama ptrace_scope of 1 or more) can still be written through its
 *         /proc/PID/mem.
 *
 *         Abstract UNIX sockets (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET) are not scoped: X11, D-Bus
 *         session buses and other services listen on abstract addresses that ordinary commands
 *         connect to, and their own peer checks are what guards them.
 *
 *         The ruleset is created in the child, as its fds above the spawn slots are gone by then
 *         (see spawn.c); the daemon creates one at startup to learn that it works. Entering the
 *         domain takes one fd (two on ABI 2 to 5) above 0-2 for a moment, which a nofile rlimit of
 *         3 (or 4) does not leave: the command then fails to start (EMFILE at "landlock").
 *
 *     5.  A seccomp filter is installed; it is inherited by every child and survives execve(2).
 *         The following system calls fail with EPERM without being executed:
 *
 *             mount, umount2, pivot_root, move_mount, open_tree, fsopen,
 *             swapon, swapoff, reboot, kexec_load, kexec_file_load,
 *             init_module, finit_module, delete_module, bpf, perf_event_open,
 *             ptrace, process_vm_readv, process_vm_writev,
 *             keyctl, add_key, request_key, userfaultfd, setns, unshare,
 *             acct, quotactl, open_by_handle_at
 *
 *         and so does ioctl(2) when the low 32 bits of its request argument are TIOCSTI
 *         (faking terminal input) or TIOCLINUX; the upper bits are ignored, so setting them
 *         does not get past the filter. Since unshare is refused, clone(2) with any of the
 *         namespace flags (CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS,
 *         CLONE_NEWIPC, CLONE_NEWCGROUP) fails with EPERM too, and clone3(2), whose flags a
 *         filter cannot inspect, fails with ENOSYS so that the C library falls back to clone(2).
 *         All other system calls are allowed.
 *
 *         The filter covers the native system call ABI and its compatibility ABIs (on x86-64:
 *         x86-64, i386 and x32); a system call that does not exist on one of them is simply not
 *         listed there. A system call made through any other ABI kills the calling thread.
 *
 *     If any step fails, the command is not executed.
 */

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "profile.h"

/* Landlock as of ABI 6; Debian 12's <linux/landlock.h> describes ABI 1 only. The system call
 * numbers are the same on every architecture but alpha. */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* struct landlock_ruleset_attr with the fields of ABI 4 (net) and 6 (scoped). The kernel takes a
 * shorter size from callers that know fewer fields. */
typedef struct LandlockRulesetAttr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
} LandlockRulesetAttr;

#define LANDLOCK_ABI_REFER 2    /* LANDLOCK_ACCESS_FS_REFER */
#define LANDLOCK_ABI_SCOPED 6   /* the scoped field, LANDLOCK_SCOPE_SIGNAL */

/* The capabilities "restricted" takes away from every set. */
static const cap_value_t restricted_drop_caps[] = {
        CAP_SYS_ADMIN,
        CAP_SYS_PTRACE,
};

/* Fail with EPERM; ioctl is handled on its own, by request. */
static const char *const restricted_syscalls[] = {
        "mount",
        "umount2",
        "pivot_root",
        "move_mount",
        "open_tree",
        "fsopen",
        "swapon",
        "swapoff",
        "reboot",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "bpf",
        "perf_event_open",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "setns",
        "unshare",
        "acct",
        "quotactl",
        "open_by_handle_at",
};

/* Namespace flags clone() may not use, as unshare() may not be called. */
static const uint64_t restricted_clone_flags[] = {
        CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC,
        CLONE_NEWCGROUP,
};

static const unsigned long restricted_ioctls[] = {
        TIOCSTI,
        TIOCLINUX,
};

struct ProfileProgram {
        /* Capabilities to clear, in the kernel's capset(2) layout (one u32 per 32 capabilities). */
        uint32_t drop_mask[_LINUX_CAPABILITY_U32S_3];
        cap_value_t drop_bounding[ELEMENTSOF(restricted_drop_caps)];
        size_t n_drop_bounding;

        /* The exported seccomp program; fprog points into insns. */
        struct sock_filter *insns;
        struct sock_fprog fprog;

        /* The Landlock ruleset the child creates and enters; no domain when landlock_abi is 0.
         * With landlock_refer, a rule grants LANDLOCK_ACCESS_FS_REFER beneath "/". */
        int landlock_abi;
        const char *landlock_reason;    /* why there is no domain, when landlock_abi is 0 */
        int landlock_error;             /* the errno behind it, or 0 */
        LandlockRulesetAttr landlock_attr;
        size_t landlock_attr_size;
        bool landlock_refer;
};

static const char *const profile_names[_PROFILE_MAX] = {
        [PROFILE_DEFAULT] = "default",
        [PROFILE_RESTRICTED] = "restricted",
};

Profile profile_from_string(const char *s) {
        if (!s)
                return _PROFILE_INVALID;
        for (Profile p = 0; p < _PROFILE_MAX; p++)
                if (strcmp(s, profile_names[p]) == 0)
                        return p;
        return _PROFILE_INVALID;
}

const char *profile_to_string(Profile p) {
        return p >= 0 && p < _PROFILE_MAX ? profile_names[p] : NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(ProfileProgram *, profile_program_free);

static void seccomp_releasep(scmp_filter_ctx *ctx) {
        if (*ctx)
                seccomp_release(*ctx);
}

static void prepare_capabilities(ProfileProgram *p) {
        for (size_t i = 0; i < ELEMENTSOF(restricted_drop_caps); i++) {
                cap_value_t c = restricted_drop_caps[i];

                /* A capability the running kernel does not know cannot be held: nothing to drop. */
                if (!CAP_IS_SUPPORTED(c))
                        continue;

                p->drop_mask[CAP_TO_INDEX(c)] |= CAP_TO_MASK(c);
                p->drop_bounding[p->n_drop_bounding++] = c;
        }
}

/* The compatibility ABIs a process on this architecture can make system calls through. */
static size_t compat_arches(uint32_t native, uint32_t ret[static 2]) {
        switch (native) {
        case SCMP_ARCH_X86_64:
                ret[0] = SCMP_ARCH_X86;
                ret[1] = SCMP_ARCH_X32;
                return 2;
        case SCMP_ARCH_AARCH64:
                ret[0] = SCMP_ARCH_ARM;
                return 1;
        case SCMP_ARCH_PPC64:
                ret[0] = SCMP_ARCH_PPC;
                return 1;
        case SCMP_ARCH_S390X:
                ret[0] = SCMP_ARCH_S390;
                return 1;
        case SCMP_ARCH_MIPS64:
                ret[0] = SCMP_ARCH_MIPS;
                ret[1] = SCMP_ARCH_MIPS64N32;
                return 2;
        case SCMP_ARCH_MIPSEL64:
                ret[0] = SCMP_ARCH_MIPSEL;
                ret[1] = SCMP_ARCH_MIPSEL64N32;
                return 2;
        default:
                return 0;
        }
}

static bool syscall_exists(uint32_t arch, const char *name) {
        return seccomp_syscall_resolve_name_arch(arch, name) >= 0;
}

/* A filter for one ABI only. Rules take native syscall numbers, which libseccomp translates by name;
 * checking the name on the ABI first is what lets a missing syscall be skipped instead of failing. */
static int seccomp_new_for_arch(uint32_t arch, uint32_t native, scmp_filter_ctx *ret) {
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        int r;

        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;

        if (arch != native) {
                r = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
                if (r < 0)
                        return r;
                r = seccomp_arch_add(ctx, arch);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < ELEMENTSOF(restricted_syscalls); i++) {
                const char *name = restricted_syscalls[i];

                if (!syscall_exists(arch, name))
                        continue;

                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), seccomp_syscall_resolve_name(name), 0);
                if (r < 0)
                        return r;
        }

        /* The kernel reads the request as an unsigned int: compare only the bits it sees, so that
         * setting the upper ones does not slip past. */
        if (syscall_exists(arch, "ioctl"))
                for (size_t i = 0; i < ELEMENTSOF(restricted_ioctls); i++) {
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                             SCMP_A1(SCMP_CMP_MASKED_EQ, UINT32_MAX, restricted_ioctls[i]));
                        if (r < 0)
                                return r;
                }

        /* unshare() is refused, so clone() must not create namespaces either; clone3() passes its
         * flags in memory, where a filter cannot see them, so it reports ENOSYS and libc falls
         * back to clone(). s390 swaps clone()'s first two arguments. */
        if (syscall_exists(arch, "clone"))
                for (size_t i = 0; i < ELEMENTSOF(restricted_clone_flags); i++) {
                        bool s390 = arch == SCMP_ARCH_S390 || arch == SCMP_ARCH_S390X;

                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                             s390 ? SCMP_A1(SCMP_CMP_MASKED_EQ, restricted_clone_flags[i],
                                                            restricted_clone_flags[i])
                                                  : SCMP_A0(SCMP_CMP_MASKED_EQ, restricted_clone_flags[i],
                                                            restricted_clone_flags[i]));
                        if (r < 0)
                                return r;
                }
        if (syscall_exists(arch, "clone3")) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), seccomp_syscall_resolve_name("clone3"), 0);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(ctx);
        return 0;
}

static int prepare_seccomp(ProfileProgram *p) {
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint32_t native, compat[2];
        size_t n_compat;
        struct stat st;
        int r;

        native = seccomp_arch_native();
        r = seccomp_new_for_arch(native, native, &ctx);
        if (r < 0)
                return r;

        n_compat = compat_arches(native, compat);
        for (size_t i = 0; i < n_compat; i++) {
                _cleanup_(seccomp_releasep) scmp_filter_ctx other = NULL;

                r = seccomp_new_for_arch(compat[i], native, &other);
                if (r < 0)
                        return r;

                r = seccomp_merge(ctx, other);
                if (r < 0)
                        return r;
                /* Merged: 'other' now belongs to 'ctx'. */
                other = NULL;
        }

        /* libseccomp only exports to an fd; read the program back so the child needs no library. */
        fd = memfd_create("sandboxd-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;

        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0)
                return -EBADMSG;
        if (st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -E2BIG;

        p->insns = malloc(st.st_size);
        if (!p->insns)
                return -ENOMEM;

        for (size_t done = 0; done < (size_t) st.st_size;) {
                ssize_t n = pread(fd, (uint8_t *) p->insns + done, st.st_size - done, done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EBADMSG;
                done += n;
        }

        p->fprog = (struct sock_fprog) {
                .len = st.st_size / sizeof(struct sock_filter),
                .filter = p->insns,
        };
        return 0;
}

/* Creates the ruleset 'p' describes; runs in the daemon and in the child, so system calls only. */
static int landlock_ruleset_create(const ProfileProgram *p) {
        _cleanup_close_ int fd = -EBADF;

        fd = (int) syscall(SYS_landlock_create_ruleset, &p->landlock_attr, p->landlock_attr_size, 0U);
        if (fd < 0)
                return -errno;

        if (p->landlock_refer) {
                _cleanup_close_ int root = -EBADF;
                struct landlock_path_beneath_attr rule = {
                        .allowed_access = LANDLOCK_ACCESS_FS_REFER,
                };

                root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (root < 0)
                        return -errno;
                rule.parent_fd = root;

                if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0U) < 0)
                        return -errno;
        }

        return TAKE_FD(fd);
}

/* Picks the ruleset for the kernel's ABI (capped at max_abi) and checks that it can be built, so
 * that a kernel without Landlock is found here, once, and not by every child. */
static void prepare_landlock(ProfileProgram *p, int max_abi) {
        int abi, fd;

        abi = (int) syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (abi < 0) {
                /* ENOSYS: not built in; EOPNOTSUPP: not in the lsm= list. */
                p->landlock_error = errno;
                p->landlock_reason = "Landlock is not available";
                return;
        }
        abi = MIN(abi, max_abi);

        if (abi >= LANDLOCK_ABI_SCOPED) {
                /* A domain that handles no file-system right leaves file access alone. Abstract
                 * UNIX sockets are not scoped: ordinary commands talk to X11, session buses and
                 * the like on abstract addresses. */
                p->landlock_attr = (LandlockRulesetAttr) { .scoped = LANDLOCK_SCOPE_SIGNAL };
                p->landlock_attr_size = sizeof(LandlockRulesetAttr);
        } else if (abi >= LANDLOCK_ABI_REFER) {
                /* Before scopes a domain must handle some file-system right. Any does make the
                 * kernel refuse renames and links across directories, unless a rule grants
                 * REFER there: grant it everywhere, and refuse only what no command needs. */
                p->landlock_attr = (LandlockRulesetAttr) {
                        .handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_REFER,
                };
                p->landlock_attr_size = offsetof(LandlockRulesetAttr, handled_access_net);
                p->landlock_refer = true;
        } else {
                p->landlock_reason = "Landlock ABI 1 refuses every rename and link across directories";
                return;
        }

        fd = landlock_ruleset_create(p);
        if (fd < 0) {
                p->landlock_error = -fd;
                p->landlock_reason = "a Landlock ruleset cannot be created";
                p->landlock_attr = (LandlockRulesetAttr) {};
                p->landlock_refer = false;
                return;
        }
        safe_close(fd);

        p->landlock_abi = abi;
}

int profile_program_new_with_landlock(int landlock_abi, ProfileProgram **ret) {
        _cleanup_(profile_program_freep) ProfileProgram *p = NULL;
        int r;

        p = calloc(1, sizeof(ProfileProgram));
        if (!p)
                return -ENOMEM;

        prepare_capabilities(p);

        r = prepare_seccomp(p);
        if (r < 0)
                return r;

        if (landlock_abi > 0)
                prepare_landlock(p, landlock_abi);
        else
                p->landlock_reason = "Landlock is not to be used";

        *ret = TAKE_PTR(p);
        return 0;
}

int profile_program_new(ProfileProgram **ret) {
        return profile_program_new_with_landlock(INT_MAX, ret);
}

int profile_program_landlock(const ProfileProgram *p, const char **reason, int *error) {
        if (reason)
                *reason = p ? p->landlock_reason : "no profile program";
        if (error)
                *error = p ? p->landlock_error : 0;
        return p ? p->landlock_abi : 0;
}

ProfileProgram *profile_program_free(ProfileProgram *p) {
        if (!p)
                return NULL;
        free(p->insns);
        free(p);
        return NULL;
}

/* Everything below runs in the child between fork and execve: syscalls only, nothing allocated. */

static int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

int profile_apply_before_setuid(const ProfileProgram *p, Profile profile, const char **stage) {
        if (profile != PROFILE_RESTRICTED)
                return 0;

        *stage = "capabilities";
        if (!p)
                return -EINVAL;

        for (size_t i = 0; i < p->n_drop_bounding; i++) {
                int r;

                /* Already gone (e.g. the daemon's unit dropped it): no CAP_SETPCAP needed. */
                r = prctl(PR_CAPBSET_READ, (unsigned long) p->drop_bounding[i], 0, 0, 0);
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        continue;

                if (prctl(PR_CAPBSET_DROP, (unsigned long) p->drop_bounding[i], 0, 0, 0) < 0)
                        return negative_errno();
        }

        return 0;
}

static int drop_capabilities(const ProfileProgram *p) {
        struct __user_cap_header_struct header = {
                .version = _LINUX_CAPABILITY_VERSION_3,
        };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        bool changed = false;

        /* Clearing ambient first: an ambient bit must stay in permitted and inheritable. Kernels
         * before 4.3 have no ambient set (EINVAL) and so nothing to clear. */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return negative_errno();

        /* What the child holds now depends on the uid switch, so read it rather than guess it. */
        if (syscall(SYS_capget, &header, data) < 0)
                return negative_errno();

        for (size_t i = 0; i < ELEMENTSOF(data); i++) {
                uint32_t keep = ~p->drop_mask[i];

                if ((data[i].effective | data[i].permitted | data[i].inheritable) & p->drop_mask[i])
                        changed = true;

                data[i].effective &= keep;
                data[i].permitted &= keep;
                data[i].inheritable &= keep;
        }

        if (changed && syscall(SYS_capset, &header, data) < 0)
                return negative_errno();

        return 0;
}

int profile_apply_after_setuid(const ProfileProgram *p, Profile profile, const char **stage) {
        int r;

        if (profile != PROFILE_RESTRICTED)
                return 0;

        *stage = "capabilities";
        if (!p)
                return -EINVAL;

        r = drop_capabilities(p);
        if (r < 0)
                return r;

        *stage = "no_new_privs";
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();

        /* Entering a domain without CAP_SYS_ADMIN, like loading a filter, needs no_new_privs. */
        if (p->landlock_abi > 0) {
                _cleanup_close_ int ruleset = -EBADF;

                *stage = "landlock";
                ruleset = landlock_ruleset_create(p);
                if (ruleset < 0)
                        return ruleset;
                if (syscall(SYS_landlock_restrict_self, ruleset, 0U) < 0)
                        return negative_errno();
        }

        /* Loading a filter without CAP_SYS_ADMIN needs no_new_privs, which is why it comes last. */
        *stage = "seccomp";
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->fprog, 0, 0) < 0)
                return negative_errno();

        return 0;
}
