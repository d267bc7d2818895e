/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsers for what callers send: numbers, signal names, rlimit names, user specs, env entries. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "macro.h"
#include "parse.h"

int parse_u64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        *ret = v;
        return 0;
}

int parse_u32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r;

        r = parse_u64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_uid(const char *s, uint32_t *ret) {
        uint64_t v;
        int r;

        r = parse_u64(s, &v);
        if (r < 0)
                return r;
        /* (uid_t) -1 means "no change" to setresuid(); 65535 is the 16-bit variant of it. */
        if (v >= UINT32_MAX || v == 65535)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

static const char *const signal_names[] = {
        [SIGHUP] = "HUP",       [SIGINT] = "INT",       [SIGQUIT] = "QUIT",     [SIGILL] = "ILL",
        [SIGTRAP] = "TRAP",     [SIGABRT] = "ABRT",     [SIGBUS] = "BUS",       [SIGFPE] = "FPE",
        [SIGKILL] = "KILL",     [SIGUSR1] = "USR1",     [SIGSEGV] = "SEGV",     [SIGUSR2] = "USR2",
        [SIGPIPE] = "PIPE",     [SIGALRM] = "ALRM",     [SIGTERM] = "TERM",     [SIGSTKFLT] = "STKFLT",
        [SIGCHLD] = "CHLD",     [SIGCONT] = "CONT",     [SIGSTOP] = "STOP",     [SIGTSTP] = "TSTP",
        [SIGTTIN] = "TTIN",     [SIGTTOU] = "TTOU",     [SIGURG] = "URG",       [SIGXCPU] = "XCPU",
        [SIGXFSZ] = "XFSZ",     [SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF",     [SIGWINCH] = "WINCH",
        [SIGIO] = "IO",         [SIGPWR] = "PWR",       [SIGSYS] = "SYS",
};

/* Other names for the same signals, as kill(1) accepts them. */
static const struct {
        const char *name;
        int sig;
} signal_aliases[] = {
        { "IOT", SIGABRT },
        { "CLD", SIGCHLD },
        { "POLL", SIGIO },
};

/* The kernel delivers 1..64; names of real-time signals follow the C library, as kill(1) does:
 * RTMIN is SIGRTMIN, above the signals glibc keeps for itself. */
#define KERNEL_SIGNAL_MAX 64

bool signal_valid(int sig) {
        return sig >= 1 && sig <= KERNEL_SIGNAL_MAX;
}

static int parse_rt_offset(const char *p, int base, int sign) {
        uint64_t off = 0;

        if (*p == 0)
                return base;
        if (*p != (sign > 0 ? '+' : '-') || parse_u64(p + 1, &off) < 0)
                return -EINVAL;
        if (off > (uint64_t) (SIGRTMAX - SIGRTMIN))
                return -EINVAL;
        return base + sign * (int) off;
}

int signal_from_string(const char *s) {
        uint64_t v;

        if (!s)
                return -EINVAL;
        if (parse_u64(s, &v) >= 0)
                return v <= INT32_MAX && signal_valid((int) v) ? (int) v : -EINVAL;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (size_t i = 0; i < ELEMENTSOF(signal_names); i++)
                if (signal_names[i] && strcasecmp(s, signal_names[i]) == 0)
                        return (int) i;
        for (size_t i = 0; i < ELEMENTSOF(signal_aliases); i++)
                if (strcasecmp(s, signal_aliases[i].name) == 0)
                        return signal_aliases[i].sig;
        if (strncasecmp(s, "RTMIN", 5) == 0)
                return parse_rt_offset(s + 5, SIGRTMIN, +1);
        if (strncasecmp(s, "RTMAX", 5) == 0)
                return parse_rt_offset(s + 5, SIGRTMAX, -1);
        return -EINVAL;
}

const char *signal_to_string(int sig, char buf[static 16]) {
        if (sig > 0 && (size_t) sig < ELEMENTSOF(signal_names) && signal_names[sig])
                snprintf(buf, 16, "%s", signal_names[sig]);
        else if (sig == SIGRTMIN)
                snprintf(buf, 16, "RTMIN");
        else if (sig > SIGRTMIN && sig <= SIGRTMAX)
                snprintf(buf, 16, "RTMIN+%d", sig - SIGRTMIN);
        else
                snprintf(buf, 16, "%d", sig);
        return buf;
}

static const char *const rlimit_names[] = {
        [RLIMIT_CPU] = "cpu",           [RLIMIT_FSIZE] = "fsize",       [RLIMIT_DATA] = "data",
        [RLIMIT_STACK] = "stack",       [RLIMIT_CORE] = "core",         [RLIMIT_RSS] = "rss",
        [RLIMIT_NPROC] = "nproc",       [RLIMIT_NOFILE] = "nofile",     [RLIMIT_MEMLOCK] = "memlock",
        [RLIMIT_AS] = "as",             [RLIMIT_LOCKS] = "locks",       [RLIMIT_SIGPENDING] = "sigpending",
        [RLIMIT_MSGQUEUE] = "msgqueue", [RLIMIT_NICE] = "nice",         [RLIMIT_RTPRIO] = "rtprio",
        [RLIMIT_RTTIME] = "rttime",
};

int rlimit_from_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(rlimit_names); i++)
                if (name && rlimit_names[i] && strcmp(name, rlimit_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

const char *rlimit_to_name(int resource) {
        if (resource < 0 || (size_t) resource >= ELEMENTSOF(rlimit_names))
                return NULL;
        return rlimit_names[resource];
}

bool user_name_valid(const char *s) {
        size_t n;

        if (!s || !*s)
                return false;
        n = strlen(s);
        /* LOGIN_NAME_MAX is 256 with the NUL. */
        if (n > 255)
                return false;
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char) *p) || strchr("._-$", *p)))
                        return false;
        return true;
}

int user_spec_split(const char *spec, char **user, char **group) {
        _cleanup_free_ char *u = NULL, *g = NULL;
        const char *colon;

        if (!spec)
                return -EINVAL;
        colon = strchr(spec, ':');
        u = colon ? strndup(spec, (size_t) (colon - spec)) : strdup(spec);
        if (!u)
                return -ENOMEM;
        if (!user_name_valid(u))
                return -EINVAL;
        if (colon) {
                g = strdup(colon + 1);
                if (!g)
                        return -ENOMEM;
                if (!user_name_valid(g))
                        return -EINVAL;
        }
        *user = TAKE_PTR(u);
        *group = TAKE_PTR(g);
        return 0;
}

int env_entry_key_len(const char *e) {
        const char *eq;

        if (!e)
                return -EINVAL;
        eq = strchr(e, '=');
        if (!eq || eq == e)
                return -EINVAL;
        return (int) (eq - e);
}

bool user_spec_valid(const char *spec) {
        _cleanup_free_ char *u = NULL, *g = NULL;

        return user_spec_split(spec, &u, &g) >= 0;
}
