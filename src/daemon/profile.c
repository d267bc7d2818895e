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
 *     1.  CAP_SYS_ADMIN is dropped from the capability bounding set, while the daemon's
 *         privileges are still held. No later execve(2), set-user-ID program or file capability
 *         can give it back.
 *
 *     2.  After the switch to the target user: the ambient capability set is cleared, and
 *         CAP_SYS_ADMIN is removed from the effective, permitted and inheritable sets. Every
 *         other capability the process holds at that point is kept: a command running as root
 *         keeps root's remaining capabilities; a command running as any other user has none in
 *         its effective and permitted sets anyway.
 *
 *     3.  The no_new_privs flag is set (PR_SET_NO_NEW_PRIVS, see prctl(2)): set-user-ID,
 *         set-group-ID and file capabilities are ignored by every later execve(2).
 *
 *     4.  A seccomp filter is installed; it is inherited by every child and survives execve(2).
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

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
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

/* The capabilities "restricted" takes away from every set. */
static const cap_value_t restricted_drop_caps[] = {
        CAP_SYS_ADMIN,
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

int profile_program_new(ProfileProgram **ret) {
        _cleanup_(profile_program_freep) ProfileProgram *p = NULL;
        int r;

        p = calloc(1, sizeof(ProfileProgram));
        if (!p)
                return -ENOMEM;

        prepare_capabilities(p);

        r = prepare_seccomp(p);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
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

        /* Loading a filter without CAP_SYS_ADMIN needs no_new_privs, which is why it comes last. */
        *stage = "seccomp";
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->fprog, 0, 0) < 0)
                return negative_errno();

        return 0;
}
