/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandbox-bench: sandboxd measured against its floors and peers, interleaved, as medians and ratios. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sandbox-api.h"

extern char **environ;

#define FLATPAK_NAME "org.freedesktop.Flatpak"
#define FLATPAK_PATH "/org/freedesktop/Flatpak/Development"
#define FLATPAK_IFACE "org.freedesktop.Flatpak.Development"

#define USEC_PER_SEC 1000000ULL
#define MIB (1024.0 * 1024.0)
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MAX_VARIANTS 16

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)

/* Options. */
static const char *arg_bus = NULL;      /* private system bus with sandboxd on it */
static const char *arg_p2p = NULL;      /* sandboxd's peer-to-peer socket address */
static const char *arg_vsock = NULL;    /* sandboxd on AF_VSOCK (vsock:cid=CID,port=PORT), in a VM guest */
static const char *arg_flatpak = NULL;  /* private session bus with flatpak-session-helper */
static const char *arg_qga = NULL;      /* qemu-ga's unix socket */
static const char *arg_sandboxd = NULL; /* the daemon binary, for the scale and cold-start stages */
static const char *arg_echo = NULL;     /* the cold-start floor program */
static const char *arg_tmpdir = "/tmp";
static const char *arg_only = NULL;     /* run only variants whose name contains this (and floors) */
static const char *arg_base_p2p = NULL; /* another build's sandboxd, peer-to-peer, measured alongside */
static const char *arg_base_bus = NULL; /* another build's sandboxd on its own private system bus */
static const char *arg_base_label = "baseline";
static unsigned arg_exec_rounds = 1000;
static unsigned arg_tput_rounds = 7;
static uint64_t arg_size = 512ULL * 1024 * 1024;
static unsigned arg_cold_rounds = 40;
static unsigned arg_scale[4] = { 1000, 10000 };
static unsigned arg_n_scale = 2;
static unsigned arg_scale_probes = 50;
static uint64_t arg_qga_poll_usec = 0;
static uint64_t arg_window = 1024 * 1024;
static bool arg_stage_latency = true, arg_stage_throughput = true, arg_stage_scale = true,
            arg_stage_cold = true, arg_stage_unit = false;

/* Utilities. */

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / USEC_PER_SEC),
                               .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000 };

        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
                ;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

typedef struct Samples {
        double *v;
        size_t n, allocated;
} Samples;

static void samples_add(Samples *s, double x) {
        if (s->n == s->allocated) {
                s->allocated = s->allocated ? s->allocated * 2 : 64;
                s->v = realloc(s->v, s->allocated * sizeof(double));
                if (!s->v)
                        abort();
        }
        s->v[s->n++] = x;
}

/* Nearest rank on a sorted copy; the median of an even count is the mean of the middle two. */
static double samples_quantile(const Samples *s, double q) {
        _cleanup_free_ double *c = NULL;
        double r;

        if (s->n == 0)
                return -1;
        c = malloc(s->n * sizeof(double));
        if (!c)
                abort();
        memcpy(c, s->v, s->n * sizeof(double));
        qsort(c, s->n, sizeof(double), cmp_double);
        if (q == 0.5 && s->n % 2 == 0)
                r = (c[s->n / 2 - 1] + c[s->n / 2]) / 2;
        else {
                size_t i = (size_t) (q * (double) s->n + 0.999999);

                r = c[i > 0 ? i - 1 : 0];
        }
        return r;
}

static long proc_status_kb(pid_t pid, const char *field) {
        char path[64], line[256];
        size_t l = strlen(field);
        long v = -1;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%i/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, field, l) == 0 && line[l] == ':') {
                        v = strtol(line + l + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static long proc_count_fds(pid_t pid) {
        char path[64];
        struct dirent *de;
        long n = 0;
        DIR *d;

        snprintf(path, sizeof path, "/proc/%i/fd", (int) pid);
        d = opendir(path);
        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static long read_sysctl(const char *path) {
        char buf[64] = {};
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        if (!fgets(buf, sizeof buf, f))
                buf[0] = 0;
        fclose(f);
        return strtol(buf, NULL, 10);
}

/* Starts a helper process with stdin from /dev/null and output to LOG (or /dev/null). */
static int spawn_logged(char **argv, const char *log, pid_t *ret) {
        posix_spawn_file_actions_t fa;
        int r;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log ?: "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        r = posix_spawn(ret, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

static void kill_and_reap(pid_t pid) {
        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        for (int i = 0; i < 500; i++) {
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        return;
                sleep_usec(10000);
        }
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
}

static int wait_for_path(const char *path, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        struct stat st;

        while (stat(path, &st) < 0) {
                if (now_usec() > deadline)
                        return -ETIMEDOUT;
                sleep_usec(20);
        }
        return 0;
}

/* Results and targets, printed at the end. */

typedef struct Target {
        char name[96], value[48], limit[48];
        int pass; /* 1 PASS, 0 MISS, -1 not measured */
} Target;

static Target targets[64];
static size_t n_targets = 0;

__attribute__((format(printf, 4, 5)))
static void target_add(const char *name, int pass, const char *limit, const char *fmt, ...) {
        Target *t = &targets[n_targets++];
        va_list ap;

        snprintf(t->name, sizeof t->name, "%s", name);
        snprintf(t->limit, sizeof t->limit, "%s", limit);
        va_start(ap, fmt);
        vsnprintf(t->value, sizeof t->value, fmt, ap);
        va_end(ap);
        t->pass = pass;
}

/* A variant of a stage: one function that measures once, run interleaved with the others. */
typedef struct Variant Variant;
struct Variant {
        const char *name;
        int (*run)(Variant *v, double *ret);
        void *userdata;
        Samples samples;
        unsigned failures;
        char error[256];
        double extra_sum; /* a variant's own per-run count (qemu-ga's polls) */
};

/* xorshift64, with a fixed seed: every run shuffles the same way. */
static uint64_t shuffle_state = 0x9e3779b97f4a7c15ULL;

static size_t random_below(size_t n) {
        shuffle_state ^= shuffle_state << 13;
        shuffle_state ^= shuffle_state >> 7;
        shuffle_state ^= shuffle_state << 17;
        return (size_t) (shuffle_state % n);
}

static void run_interleaved(Variant *variants, size_t n, unsigned rounds, const char *what) {
        uint64_t start = now_usec();
        size_t order[MAX_VARIANTS];

        for (unsigned r = 0; r < rounds; r++) {
                /* A new order every round. A fixed rotation put each variant always right after
                 * the same neighbour, whose leftovers (a daemon still closing and reaping after
                 * its reply) then always landed on it: up to 20 us on the floor here. */
                for (size_t k = 0; k < n; k++)
                        order[k] = k;
                for (size_t k = n; k > 1; k--) {
                        size_t j = random_below(k), t = order[k - 1];

                        order[k - 1] = order[j];
                        order[j] = t;
                }
                for (size_t k = 0; k < n; k++) {
                        Variant *v = &variants[order[k]];
                        double x;
                        int q;

                        if (!v->run || v->failures >= 3)
                                continue;
                        if (arg_only && !strstr(v->name, arg_only) && !strstr(v->name, "floor") &&
                            !strstr(v->name, "directly") && !strstr(v->name, "reference"))
                                continue;
                        q = v->run(v, &x);
                        if (q < 0) {
                                v->failures++;
                                if (!v->error[0])
                                        snprintf(v->error, sizeof v->error, "%s", strerror(-q));
                                fprintf(stderr, "  %s: failed: %s\n", v->name, v->error);
                                continue;
                        }
                        samples_add(&v->samples, x);
                }
                if (rounds >= 10 && (r + 1) % (rounds / 10) == 0)
                        fprintf(stderr, "  %s: %u/%u rounds, %.1f s\n", what, r + 1, rounds,
                                (double) (now_usec() - start) / USEC_PER_SEC);
        }
}

/* sd-bus helpers. */

/* "vsock:cid=CID,port=PORT" (keys in any order). sd-bus 252 has no vsock addresses. */
static int parse_vsock_address(const char *address, unsigned *ret_cid, unsigned *ret_port) {
        const char *p;
        bool have_cid = false, have_port = false;

        if (strncmp(address, "vsock:", 6) != 0)
                return -EINVAL;
        p = address + 6;
        while (*p) {
                unsigned long v;
                char *end;
                bool cid = strncmp(p, "cid=", 4) == 0, port = strncmp(p, "port=", 5) == 0;

                if (!cid && !port)
                        return -EINVAL;
                p += cid ? 4 : 5;
                errno = 0;
                v = strtoul(p, &end, 10);
                if (errno != 0 || end == p || v > UINT32_MAX || (*end != 0 && *end != ','))
                        return -EINVAL;
                if (cid) {
                        *ret_cid = (unsigned) v;
                        have_cid = true;
                } else {
                        *ret_port = (unsigned) v;
                        have_port = true;
                }
                p = *end == ',' ? end + 1 : end;
        }
        return have_cid && have_port ? 0 : -EINVAL;
}

static int vsock_connect(const char *address) {
        struct sockaddr_vm svm = { .svm_family = AF_VSOCK };
        unsigned cid = 0, port = 0;
        int fd, r;

        r = parse_vsock_address(address, &cid, &port);
        if (r < 0)
                return r;
        svm.svm_cid = cid;
        svm.svm_port = port;
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &svm, sizeof svm) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static int bus_open(const char *address, bool bus_client, sd_bus **ret) {
        bool vsock = strncmp(address, "vsock:", 6) == 0;
        sd_bus *b = NULL;
        int r;

        r = sd_bus_new(&b);
        if (r < 0)
                return r;
        if (vsock) {
                /* Connected here and handed over. vsock has no credentials (ANONYMOUS, as sandboxd
                 * expects there) and carries no fds. */
                int fd = vsock_connect(address);

                r = fd;
                if (fd >= 0) {
                        r = sd_bus_set_fd(b, fd, fd);
                        if (r < 0)
                                close(fd);
                }
                if (r >= 0)
                        r = sd_bus_set_anonymous(b, true);
        } else
                r = sd_bus_set_address(b, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(b, bus_client);
        if (r >= 0)
                r = sd_bus_negotiate_fds(b, !vsock);
        if (r >= 0)
                r = sd_bus_start(b);
        if (r < 0) {
                sd_bus_unref(b);
                return r;
        }
        *ret = b;
        return 0;
}

typedef bool (*cond_t)(void *userdata);

static int bus_run_until(sd_bus *b, cond_t done, void *userdata, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        int r;

        for (;;) {
                if (done(userdata))
                        return 0;
                r = sd_bus_process(b, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (now_usec() > deadline)
                        return -ETIMEDOUT;
                r = sd_bus_wait(b, deadline - now_usec());
                if (r < 0 && r != -EINTR)
                        return r;
        }
}

static int bus_wait_for_name(sd_bus *b, const char *name, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;

        for (;;) {
                sd_bus_message *reply = NULL;
                int has = 0, r;

                r = sd_bus_call_method(b, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner", NULL, &reply, "s", name);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                if (has)
                        return 0;
                if (now_usec() > deadline)
                        return -ETIMEDOUT;
                sleep_usec(10000);
        }
}

/* A connection to sandboxd with at most one session of interest in flight. */
typedef struct Conn {
        sd_bus *bus;
        const char *destination; /* NULL on a peer-to-peer connection */
        /* the session in flight */
        bool replied, exited, failed;
        uint32_t id, early_exit_id;
        bool early_exit;
        char error[256];
        uint64_t bytes, window, unacked, pending_ack;
        int32_t code, sig;
        /* pipelined Execs (scale) */
        unsigned n_replies, n_errors;
        char first_error[256];
} Conn;

static void conn_ack(Conn *c, uint64_t n) {
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, c->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "Ack");
        if (r >= 0)
                r = sd_bus_message_set_expect_reply(m, 0);
        if (r >= 0)
                r = sd_bus_message_append(m, "ut", c->id, n);
        if (r >= 0)
                r = sd_bus_send(c->bus, m, NULL);
        sd_bus_message_unref(m);
        if (r < 0)
                fprintf(stderr, "Ack failed: %s\n", strerror(-r));
}

static int conn_filter(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Conn *c = userdata;
        uint32_t id, stream;
        const void *p;
        size_t n;

        if (sd_bus_message_is_signal(m, SANDBOX_INTERFACE, "Output")) {
                if (sd_bus_message_read(m, "uu", &id, &stream) < 0 ||
                    sd_bus_message_read_array(m, 'y', &p, &n) < 0)
                        return 0;
                if (c->replied && id != c->id)
                        return 0;
                c->bytes += n;
                if (c->window == 0)
                        return 0;
                /* A reasonable client acknowledges in batches, not per signal. */
                c->unacked += n;
                if (c->unacked >= c->window / 4) {
                        if (c->replied)
                                conn_ack(c, c->unacked);
                        else
                                c->pending_ack += c->unacked;
                        c->unacked = 0;
                }
        } else if (sd_bus_message_is_signal(m, SANDBOX_INTERFACE, "Exited")) {
                int32_t code, sig;

                if (sd_bus_message_read(m, "uii", &id, &code, &sig) < 0)
                        return 0;
                if (!c->replied) {
                        c->early_exit = true;
                        c->early_exit_id = id;
                } else if (id == c->id)
                        c->exited = true;
                c->code = code;
                c->sig = sig;
        }
        return 0;
}

static int conn_open(const char *address, bool bus_client, Conn **ret) {
        Conn *c = calloc(1, sizeof(Conn));
        int r;

        if (!c)
                return -ENOMEM;
        r = bus_open(address, bus_client, &c->bus);
        if (r >= 0)
                r = sd_bus_add_filter(c->bus, NULL, conn_filter, c);
        if (r >= 0 && bus_client) {
                c->destination = SANDBOX_BUS_NAME;
                r = bus_wait_for_name(c->bus, SANDBOX_BUS_NAME, 10 * USEC_PER_SEC);
        }
        if (r < 0) {
                sd_bus_flush_close_unref(c->bus);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

/* The socket file appears at bind(), a moment before listen(): a refused connection is retried. */
static int conn_open_retry(const char *address, Conn **ret) {
        uint64_t deadline = now_usec() + 10 * USEC_PER_SEC;
        int r;

        for (;;) {
                r = conn_open(address, false, ret);
                if (r >= 0 || (r != -ECONNREFUSED && r != -ENOENT) || now_usec() > deadline)
                        return r;
                sleep_usec(20);
        }
}

static void conn_close(Conn *c) {
        if (!c)
                return;
        sd_bus_flush_close_unref(c->bus);
        free(c);
}

typedef struct ExecOpts {
        bool tty;
        uint64_t window;
        int stdio[3]; /* fds to pass as stdin, stdout, stderr; 0 = relayed (fd 0 is never passed) */
} ExecOpts;

static int append_option(sd_bus_message *m, const char *key, const char *sig, ...) {
        va_list ap;
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", key);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', sig);
        if (r >= 0) {
                va_start(ap, sig);
                r = sd_bus_message_appendv(m, sig, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int conn_exec_async(Conn *c, char **argv, const ExecOpts *o, sd_bus_message_handler_t cb,
                           void *userdata, uint64_t timeout_usec) {
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, c->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "Exec");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, argv);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && o && o->tty)
                r = append_option(m, "tty", "b", 1);
        if (r >= 0 && o && o->window > 0)
                r = append_option(m, "output-window", "t", o->window);
        for (int i = 0; r >= 0 && o && i < 3; i++)
                if (o->stdio[i] > 0)
                        r = append_option(m, (const char *[]) { "stdin", "stdout", "stderr" }[i], "h",
                                          o->stdio[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call_async(c->bus, NULL, m, cb, userdata, timeout_usec);
        sd_bus_message_unref(m);
        return r;
}

static int on_exec_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Conn *c = userdata;
        uint32_t pid;

        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *err = sd_bus_message_get_error(m);

                c->failed = true;
                snprintf(c->error, sizeof c->error, "%s: %s", err->name, err->message);
                return 0;
        }
        if (sd_bus_message_read(m, "uu", &c->id, &pid) < 0) {
                c->failed = true;
                snprintf(c->error, sizeof c->error, "bad Exec reply");
                return 0;
        }
        c->replied = true;
        if (c->early_exit && c->early_exit_id == c->id)
                c->exited = true;
        if (c->pending_ack > 0) {
                conn_ack(c, c->pending_ack);
                c->pending_ack = 0;
        }
        return 0;
}

static bool conn_done(void *userdata) {
        Conn *c = userdata;

        return c->failed || c->exited;
}

static bool conn_replied(void *userdata) {
        Conn *c = userdata;

        return c->failed || c->replied;
}

static void conn_reset(Conn *c, uint64_t window) {
        c->replied = c->exited = c->failed = c->early_exit = false;
        c->id = c->early_exit_id = 0;
        c->bytes = c->unacked = c->pending_ack = 0;
        c->window = window;
        c->error[0] = 0;
}

/* Runs one session to its Exited. */
static int conn_run(Conn *c, char **argv, const ExecOpts *o, uint64_t timeout_usec) {
        int r;

        conn_reset(c, o ? o->window : 0);
        r = conn_exec_async(c, argv, o, on_exec_reply, c, timeout_usec);
        if (r < 0)
                return r;
        r = bus_run_until(c->bus, conn_done, c, timeout_usec);
        if (r < 0)
                return r;
        /* What came after Exited (the daemon's ping confirming the Output in flight) is answered
         * now, not when this connection's variant next runs: other connections of this uid would
         * meanwhile measure with its unconfirmed Output counted against the uid's bound. */
        while (sd_bus_process(c->bus, NULL) > 0)
                ;
        return c->failed ? -EIO : 0;
}

/* Stage 1: Exec latency. */

static char *true_argv[] = { (char *) "/bin/true", NULL };

static int run_spawn_true(Variant *v, double *ret) {
        uint64_t t0 = now_usec();
        pid_t pid;
        int r, status;

        r = posix_spawn(&pid, true_argv[0], NULL, NULL, true_argv, environ);
        if (r != 0)
                return -r;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        *ret = (double) (now_usec() - t0) / 1000.0;
        return 0;
}

/* The least any daemon that spawns on request pays: a process that, for each byte it reads on a
 * socket, posix_spawn()s the command and answers one byte, then one more when the command's
 * pidfd says it exited. Against the floor it adds the two wakeups across processes; sandboxd
 * against it adds D-Bus and what sandboxd does for a session. */
typedef struct SpawnServer {
        pid_t pid;
        int fd;
} SpawnServer;

static _Noreturn void spawn_server_main(int fd) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = 3 };
        int ep;

        /* Nothing of the harness's: its connections must close when it closes them. */
        if (dup2(fd, 3) < 0 || syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
                _exit(1);
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 3, &ev) < 0)
                _exit(1);
        for (;;) {
                struct epoll_event e[8];
                int n = epoll_wait(ep, e, ELEMENTSOF(e), -1);

                for (int i = 0; i < n; i++) {
                        char c = 'x';

                        if (e[i].data.fd == 3) {
                                pid_t pid;
                                int pidfd;

                                if (read(3, &c, 1) <= 0)
                                        _exit(0);
                                if (posix_spawn(&pid, true_argv[0], NULL, NULL, true_argv, environ) != 0)
                                        _exit(1);
                                pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
                                ev = (struct epoll_event) { .events = EPOLLIN, .data.fd = pidfd };
                                if (pidfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pidfd, &ev) < 0)
                                        _exit(1);
                                c = 'r';
                        } else {
                                (void) waitid(P_PIDFD, (id_t) e[i].data.fd, &(siginfo_t) {}, WEXITED);
                                close(e[i].data.fd);
                        }
                        if (write(3, &c, 1) != 1)
                                _exit(1);
                }
        }
}

static int spawn_server_start(SpawnServer *srv) {
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        srv->pid = fork();
        if (srv->pid < 0) {
                close(sv[0]);
                close(sv[1]);
                return -errno;
        }
        if (srv->pid == 0)
                spawn_server_main(sv[1]);
        close(sv[1]);
        srv->fd = sv[0];
        return 0;
}

static void spawn_server_stop(SpawnServer *srv) {
        if (srv->pid <= 0)
                return;
        close(srv->fd);
        (void) waitpid(srv->pid, NULL, 0);
        srv->pid = 0;
}

static int run_spawn_server(Variant *v, double *ret) {
        SpawnServer *srv = v->userdata;
        uint64_t t0 = now_usec();
        char buf[2];
        size_t got = 0;

        if (write(srv->fd, "e", 1) != 1)
                return -EIO;
        while (got < sizeof buf) {
                ssize_t k = read(srv->fd, buf + got, sizeof buf - got);

                if (k <= 0)
                        return -EIO;
                got += (size_t) k;
        }
        *ret = (double) (now_usec() - t0) / 1000.0;
        return 0;
}

static int run_sandbox_true(Variant *v, double *ret) {
        Conn *c = v->userdata;
        uint64_t t0 = now_usec();
        int r;

        r = conn_run(c, true_argv, NULL, 30 * USEC_PER_SEC);
        if (r < 0) {
                if (c->error[0])
                        snprintf(v->error, sizeof v->error, "%s", c->error);
                return r;
        }
        *ret = (double) (now_usec() - t0) / 1000.0;
        return 0;
}

/* Run: the whole session in one call, the reply carrying status and output. */
static int run_sandbox_run_true(Variant *v, double *ret) {
        Conn *c = v->userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        uint64_t t0 = now_usec();
        int32_t code = -1, sig = 0;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, c->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "Run");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, true_argv);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call(c->bus, m, 30 * USEC_PER_SEC, &error, &reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ii", &code, &sig);
        if (r < 0 && error.message)
                snprintf(v->error, sizeof v->error, "%s: %s", error.name, error.message);
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        if (code != 0 || sig != 0) {
                snprintf(v->error, sizeof v->error, "/bin/true ended with %i/%i", code, sig);
                return -EIO;
        }
        *ret = (double) (now_usec() - t0) / 1000.0;
        return 0;
}

typedef struct Flatpak {
        sd_bus *bus;
        bool options_arg; /* HostCommand takes a trailing a{sv} (newer flatpak) */
        bool replied, exited, failed;
        uint32_t pid;
        uint32_t early[16];
        unsigned n_early;
        char error[256];
} Flatpak;

static int flatpak_on_exited(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Flatpak *f = userdata;
        uint32_t pid, status;

        if (sd_bus_message_read(m, "uu", &pid, &status) < 0)
                return 0;
        if (f->replied && pid == f->pid)
                f->exited = true;
        else if (!f->replied)
                f->early[f->n_early++ % ELEMENTSOF(f->early)] = pid;
        return 0;
}

static int flatpak_on_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Flatpak *f = userdata;

        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *err = sd_bus_message_get_error(m);

                f->failed = true;
                snprintf(f->error, sizeof f->error, "%s: %s", err->name, err->message);
                return 0;
        }
        if (sd_bus_message_read(m, "u", &f->pid) < 0) {
                f->failed = true;
                return 0;
        }
        f->replied = true;
        for (unsigned i = 0; i < f->n_early && i < ELEMENTSOF(f->early); i++)
                if (f->early[i] == f->pid)
                        f->exited = true;
        return 0;
}

static bool flatpak_done(void *userdata) {
        Flatpak *f = userdata;

        return f->failed || f->exited;
}

static int flatpak_open(const char *address, Flatpak **ret) {
        Flatpak *f = calloc(1, sizeof(Flatpak));
        sd_bus_message *reply = NULL;
        const char *xml, *p, *end;
        int r;

        if (!f)
                return -ENOMEM;
        r = bus_open(address, true, &f->bus);
        if (r >= 0)
                r = bus_wait_for_name(f->bus, FLATPAK_NAME, 10 * USEC_PER_SEC);
        if (r >= 0)
                r = sd_bus_add_match(f->bus, NULL,
                                     "type='signal',interface='" FLATPAK_IFACE "',member='HostCommandExited'",
                                     flatpak_on_exited, f);
        /* The interface as this flatpak has it: version 1 has no options argument. */
        if (r >= 0)
                r = sd_bus_call_method(f->bus, FLATPAK_NAME, FLATPAK_PATH,
                                       "org.freedesktop.DBus.Introspectable", "Introspect", NULL, &reply, "");
        if (r >= 0)
                r = sd_bus_message_read(reply, "s", &xml);
        if (r >= 0) {
                p = strstr(xml, "name=\"HostCommand\"");
                end = p ? strstr(p, "</method>") : NULL;
                if (!p || !end)
                        r = -EOPNOTSUPP;
                else {
                        const char *o = strstr(p, "type=\"a{sv}\"");

                        f->options_arg = o && o < end;
                }
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                sd_bus_flush_close_unref(f->bus);
                free(f);
                return r;
        }
        *ret = f;
        return 0;
}

static int run_flatpak_true(Variant *v, double *ret) {
        Flatpak *f = v->userdata;
        sd_bus_message *m = NULL;
        uint64_t t0 = now_usec();
        int r;

        f->replied = f->exited = f->failed = false;
        f->n_early = 0;
        r = sd_bus_message_new_method_call(f->bus, &m, FLATPAK_NAME, FLATPAK_PATH, FLATPAK_IFACE,
                                           "HostCommand");
        /* Byte strings with their terminating NUL, as flatpak-spawn sends them. */
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', "/", 2);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "ay");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', "/bin/true", strlen("/bin/true") + 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{uh}a{ss}u", 0, 0, 0);
        if (r >= 0 && f->options_arg)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call_async(f->bus, NULL, m, flatpak_on_reply, f, 30 * USEC_PER_SEC);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        r = bus_run_until(f->bus, flatpak_done, f, 30 * USEC_PER_SEC);
        if (r < 0)
                return r;
        if (f->failed) {
                snprintf(v->error, sizeof v->error, "%s", f->error);
                return -EIO;
        }
        *ret = (double) (now_usec() - t0) / 1000.0;
        return 0;
}

typedef struct Qga {
        int fd;
        uint64_t poll_usec;
        char buf[65536];
        size_t len;
} Qga;

/* Sends one command line, reads one reply line into q->buf. */
static int qga_command(Qga *q, const char *cmd) {
        size_t l = strlen(cmd), done = 0;

        while (done < l) {
                ssize_t n = write(q->fd, cmd + done, l - done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                done += (size_t) n;
        }
        q->len = 0;
        for (;;) {
                ssize_t n = read(q->fd, q->buf + q->len, sizeof q->buf - 1 - q->len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                q->len += (size_t) n;
                q->buf[q->len] = 0;
                if (memchr(q->buf, '\n', q->len))
                        return strstr(q->buf, "\"error\"") ? -EIO : 0;
                if (q->len >= sizeof q->buf - 1)
                        return -E2BIG;
        }
}

static int qga_open(const char *path, uint64_t poll_usec, Qga **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Qga *q = calloc(1, sizeof(Qga));
        int r;

        if (!q)
                return -ENOMEM;
        q->poll_usec = poll_usec;
        if (strlen(path) >= sizeof sa.sun_path) {
                free(q);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, path, strlen(path) + 1);
        q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (q->fd < 0 || connect(q->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                r = -errno;
                if (q->fd >= 0)
                        close(q->fd);
                free(q);
                return r;
        }
        /* guest-sync flushes anything left from an earlier client. */
        r = qga_command(q, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":4242}}\n");
        if (r < 0) {
                close(q->fd);
                free(q);
                return r;
        }
        *ret = q;
        return 0;
}

static int run_qga_true(Variant *v, double *ret) {
        Qga *q = v->userdata;
        uint64_t t0 = now_usec();
        char cmd[256];
        unsigned polls = 0;
        const char *p;
        long pid;
        int r;

        r = qga_command(q, "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/true\","
                           "\"capture-output\":true}}\n");
        if (r < 0) {
                snprintf(v->error, sizeof v->error, "guest-exec: %.200s", q->buf);
                return r;
        }
        p = strstr(q->buf, "\"pid\"");
        if (!p)
                return -EBADMSG;
        pid = strtol(p + 6, NULL, 10);
        snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":%ld}}\n", pid);
        for (;;) {
                r = qga_command(q, cmd);
                polls++;
                if (r < 0) {
                        snprintf(v->error, sizeof v->error, "guest-exec-status: %.200s", q->buf);
                        return r;
                }
                if (strstr(q->buf, "\"exited\": true") || strstr(q->buf, "\"exited\":true"))
                        break;
                if (now_usec() - t0 > 30 * USEC_PER_SEC)
                        return -ETIMEDOUT;
                if (q->poll_usec > 0)
                        sleep_usec(q->poll_usec);
        }
        *ret = (double) (now_usec() - t0) / 1000.0;
        v->extra_sum += polls;
        return 0;
}

static void print_header(const char *title) {
        printf("\n== %s ==\n", title);
}

static void print_latency_row(const Variant *v, double floor_median, bool with_polls) {
        double med = samples_quantile(&v->samples, 0.5), p90 = samples_quantile(&v->samples, 0.9);

        if (v->samples.n == 0) {
                printf("  %-34s %10s %10s %8s   failed: %s\n", v->name, "-", "-", "-", v->error);
                return;
        }
        printf("  %-34s %7.3f ms %7.3f ms %7.2fx", v->name, med, p90, med / floor_median);
        if (with_polls)
                printf("   %.2f polls/exec", v->extra_sum / (double) v->samples.n);
        if (v->failures)
                printf("   %u failures: %s", v->failures, v->error);
        printf("\n");
}

/* This build against the baseline's, measured in the same interleaved rounds: the one comparison
 * of two builds that machine drift does not spoil. */
static void print_baseline_delta(const char *what, const Variant *vs, size_t i_this, size_t i_base, bool rate) {
        double a, b;

        if (i_this == SIZE_MAX || i_base == SIZE_MAX || vs[i_this].samples.n == 0 || vs[i_base].samples.n == 0)
                return;
        a = samples_quantile(&vs[i_this].samples, 0.5);
        b = samples_quantile(&vs[i_base].samples, 0.5);
        if (rate)
                printf("  %s: this build %.0f MiB/s, %s %.0f MiB/s (%+.1f %%)\n", what, a, arg_base_label, b,
                       (a / b - 1) * 100);
        else
                printf("  %s: this build %.3f ms, %s %.3f ms (%+.1f us, %+.1f %%)\n", what, a, arg_base_label, b,
                       (a - b) * 1000, (a / b - 1) * 100);
}

static void stage_latency(void) {
        Variant vs[MAX_VARIANTS] = {};
        Conn *bus = NULL, *p2p = NULL, *vsock = NULL, *base_bus = NULL, *base_p2p = NULL;
        static char base_p2p_name[64], base_bus_name[64];
        SpawnServer srv = {};
        Flatpak *fp = NULL;
        Qga *qga = NULL, *qga_slow = NULL;
        size_t n = 0;
        int r;
        size_t i_floor, i_p2p = SIZE_MAX, i_vsock = SIZE_MAX, i_bus = SIZE_MAX, i_fp = SIZE_MAX,
               i_qga = SIZE_MAX, i_base_p2p = SIZE_MAX, i_base_bus = SIZE_MAX, i_run_p2p = SIZE_MAX,
               i_run_bus = SIZE_MAX;

        i_floor = n;
        vs[n++] = (Variant) { .name = "posix_spawn+waitpid (floor)", .run = run_spawn_true };
        r = spawn_server_start(&srv);
        vs[n++] = (Variant) { .name = "minimal spawn server (reference)", .run = r < 0 ? NULL : run_spawn_server,
                              .userdata = &srv };
        if (arg_p2p) {
                r = conn_open(arg_p2p, false, &p2p);
                if (r < 0)
                        fprintf(stderr, "p2p: %s\n", strerror(-r));
                i_p2p = n;
                vs[n++] = (Variant) { .name = "sandboxd Exec, peer-to-peer", .run = r < 0 ? NULL : run_sandbox_true,
                                      .userdata = p2p };
        }
        if (arg_vsock) {
                r = conn_open(arg_vsock, false, &vsock);
                if (r < 0)
                        fprintf(stderr, "vsock: %s\n", strerror(-r));
                i_vsock = n;
                vs[n++] = (Variant) { .name = "sandboxd Exec, over vsock",
                                      .run = r < 0 ? NULL : run_sandbox_true, .userdata = vsock };
                if (r < 0)
                        snprintf(vs[i_vsock].error, sizeof vs[i_vsock].error, "connect %s: %s", arg_vsock,
                                 strerror(-r));
        }
        if (arg_bus) {
                r = conn_open(arg_bus, true, &bus);
                if (r < 0)
                        fprintf(stderr, "bus: %s\n", strerror(-r));
                i_bus = n;
                vs[n++] = (Variant) { .name = "sandboxd Exec, via dbus-daemon", .run = r < 0 ? NULL : run_sandbox_true,
                                      .userdata = bus };
        }
        /* Run, on the same connections (a daemon of before this call existed answers UnknownMethod:
         * the row says so and the rest goes on). */
        if (p2p) {
                i_run_p2p = n;
                vs[n++] = (Variant) { .name = "sandboxd Run, peer-to-peer", .run = run_sandbox_run_true,
                                      .userdata = p2p };
        }
        if (bus) {
                i_run_bus = n;
                vs[n++] = (Variant) { .name = "sandboxd Run, via dbus-daemon", .run = run_sandbox_run_true,
                                      .userdata = bus };
        }
        if (arg_base_p2p) {
                r = conn_open(arg_base_p2p, false, &base_p2p);
                if (r < 0)
                        fprintf(stderr, "%s p2p: %s\n", arg_base_label, strerror(-r));
                snprintf(base_p2p_name, sizeof base_p2p_name, "  peer-to-peer, %s", arg_base_label);
                i_base_p2p = n;
                vs[n++] = (Variant) { .name = base_p2p_name, .run = r < 0 ? NULL : run_sandbox_true,
                                      .userdata = base_p2p };
        }
        if (arg_base_bus) {
                r = conn_open(arg_base_bus, true, &base_bus);
                if (r < 0)
                        fprintf(stderr, "%s bus: %s\n", arg_base_label, strerror(-r));
                snprintf(base_bus_name, sizeof base_bus_name, "  via dbus-daemon, %s", arg_base_label);
                i_base_bus = n;
                vs[n++] = (Variant) { .name = base_bus_name, .run = r < 0 ? NULL : run_sandbox_true,
                                      .userdata = base_bus };
        }
        if (arg_flatpak) {
                r = flatpak_open(arg_flatpak, &fp);
                i_fp = n;
                vs[n++] = (Variant) { .name = "flatpak-session-helper HostCommand", .run = r < 0 ? NULL : run_flatpak_true,
                                      .userdata = fp };
                if (r < 0)
                        snprintf(vs[i_fp].error, sizeof vs[i_fp].error, "connect: %s", strerror(-r));
        }
        if (arg_qga) {
                r = qga_open(arg_qga, arg_qga_poll_usec, &qga);
                i_qga = n;
                vs[n++] = (Variant) { .name = "qemu-ga guest-exec, poll back-to-back", .run = r < 0 ? NULL : run_qga_true,
                                      .userdata = qga };
                if (r < 0)
                        snprintf(vs[i_qga].error, sizeof vs[i_qga].error, "connect: %s", strerror(-r));
                /* qemu-ga takes one client at a time: the slow poller shares the connection's
                 * agent but not its interval. */
                if (r >= 0) {
                        qga_slow = calloc(1, sizeof(Qga));
                        *qga_slow = (Qga) { .fd = qga->fd, .poll_usec = 1000 };
                        vs[n++] = (Variant) { .name = "qemu-ga guest-exec, poll every 1 ms", .run = run_qga_true,
                                              .userdata = qga_slow };
                }
        }

        /* A few unmeasured rounds so that every path is warm. */
        run_interleaved(vs, n, 5, "latency warm-up");
        for (size_t i = 0; i < n; i++) {
                free(vs[i].samples.v);
                vs[i].samples = (Samples) {};
                vs[i].extra_sum = 0;
        }
        run_interleaved(vs, n, arg_exec_rounds, "latency");

        print_header("Exec latency: /bin/true from request to exit status");
        printf("  %u rounds, variants in a new random order each round; ratio to the posix_spawn floor\n",
               arg_exec_rounds);
        printf("  %-34s %10s %10s %8s\n", "variant", "median", "p90", "ratio");
        double floor_med = samples_quantile(&vs[i_floor].samples, 0.5);
        for (size_t i = 0; i < n; i++)
                print_latency_row(&vs[i], floor_med, vs[i].run == run_qga_true);
        print_baseline_delta("Exec latency, peer-to-peer", vs, i_p2p, i_base_p2p, false);
        print_baseline_delta("Exec latency, via dbus-daemon", vs, i_bus, i_base_bus, false);

        /* Targets. */
        double best_peer = -1;
        if (i_fp != SIZE_MAX && vs[i_fp].samples.n > 0)
                best_peer = samples_quantile(&vs[i_fp].samples, 0.5);
        if (i_qga != SIZE_MAX && vs[i_qga].samples.n > 0) {
                double q = samples_quantile(&vs[i_qga].samples, 0.5);

                if (best_peer < 0 || q < best_peer)
                        best_peer = q;
        }
        /* Run needs one message less than Exec and Exited (api.md: within 1.10x p2p, 1.20x bus). */
        size_t runs[2] = { i_run_p2p, i_run_bus };
        const char *run_label[2] = { "peer-to-peer", "via dbus-daemon" };
        const double run_bound[2] = { 1.10, 1.20 };
        for (int k = 0; k < 2; k++) {
                char name[96], bound[16];

                if (runs[k] == SIZE_MAX)
                        continue;
                snprintf(name, sizeof name, "Run latency %s / posix_spawn", run_label[k]);
                snprintf(bound, sizeof bound, "<= %.2fx", run_bound[k]);
                if (vs[runs[k]].samples.n == 0)
                        target_add(name, -1, bound, "failed");
                else {
                        double med = samples_quantile(&vs[runs[k]].samples, 0.5);

                        target_add(name, med / floor_med <= run_bound[k], bound, "%.2fx", med / floor_med);
                }
        }
        size_t mine[3] = { i_p2p, i_vsock, i_bus };
        const char *label[3] = { "peer-to-peer", "over vsock", "via dbus-daemon" };
        for (int k = 0; k < 3; k++) {
                char name[96];
                double med;

                if (mine[k] == SIZE_MAX)
                        continue;
                if (vs[mine[k]].samples.n == 0) {
                        snprintf(name, sizeof name, "Exec latency %s", label[k]);
                        target_add(name, -1, "", "failed");
                        continue;
                }
                med = samples_quantile(&vs[mine[k]].samples, 0.5);
                snprintf(name, sizeof name, "Exec latency %s / posix_spawn", label[k]);
                target_add(name, med / floor_med <= 1.25, "<= 1.25x", "%.2fx", med / floor_med);
                snprintf(name, sizeof name, "Exec latency %s / faster peer", label[k]);
                if (best_peer > 0)
                        target_add(name, med / best_peer <= 0.6, "<= 0.60x", "%.2fx", med / best_peer);
                else
                        target_add(name, -1, "<= 0.60x", "no peer");
        }

        for (size_t i = 0; i < n; i++)
                free(vs[i].samples.v);
        conn_close(p2p);
        conn_close(vsock);
        conn_close(bus);
        conn_close(base_p2p);
        conn_close(base_bus);
        spawn_server_stop(&srv);
        if (fp) {
                sd_bus_flush_close_unref(fp->bus);
                free(fp);
        }
        if (qga) {
                close(qga->fd);
                free(qga);
        }
        free(qga_slow);
}

/* Stage 2: output throughput. */

static char size_arg[32];
static char *head_argv[] = { (char *) "/usr/bin/head", (char *) "-c", size_arg, (char *) "/dev/zero", NULL };

static int read_all_count(int fd, uint64_t *ret) {
        static char buf[64 * 1024];
        uint64_t total = 0;

        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EIO)
                        break; /* a PTY master whose slave side is gone */
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                total += (uint64_t) n;
        }
        *ret = total;
        return 0;
}

static double mib_per_sec(uint64_t bytes, uint64_t usec) {
        return (double) bytes / MIB / ((double) usec / USEC_PER_SEC);
}

static int run_pipe(Variant *v, double *ret) {
        posix_spawn_file_actions_t fa;
        int p[2], r, status;
        uint64_t t0 = now_usec(), total;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        r = -posix_spawn(&pid, head_argv[0], &fa, NULL, head_argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        if (r == 0)
                r = read_all_count(p[0], &total);
        close(p[0]);
        if (r < 0)
                return r;
        (void) waitpid(pid, &status, 0);
        if (total != arg_size) {
                snprintf(v->error, sizeof v->error, "read %" PRIu64 " bytes, not %" PRIu64, total, arg_size);
                return -EIO;
        }
        *ret = mib_per_sec(total, now_usec() - t0);
        return 0;
}

static int run_pty_direct(Variant *v, double *ret) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int master, slave, r, status;
        uint64_t t0 = now_usec(), total = 0;
        pid_t pid;

        /* As the daemon does it: a fresh PTY, the command leads a new session on it. */
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0)
                return -errno;
        if (unlockpt(master) < 0 || (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
                r = -errno;
                close(master);
                return r;
        }
        posix_spawn_file_actions_init(&fa);
        for (int i = 0; i < 3; i++)
                posix_spawn_file_actions_adddup2(&fa, slave, i);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
        r = -posix_spawn(&pid, head_argv[0], &fa, &attr, head_argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(slave);
        if (r == 0)
                r = read_all_count(master, &total);
        close(master);
        if (r < 0)
                return r;
        (void) waitpid(pid, &status, 0);
        if (total != arg_size) {
                snprintf(v->error, sizeof v->error, "read %" PRIu64 " bytes, not %" PRIu64, total, arg_size);
                return -EIO;
        }
        *ret = mib_per_sec(total, now_usec() - t0);
        return 0;
}

typedef struct RelayVariant {
        Conn *conn;
        ExecOpts opts;
} RelayVariant;

static int run_relay(Variant *v, double *ret) {
        RelayVariant *rv = v->userdata;
        uint64_t t0 = now_usec();
        int r;

        r = conn_run(rv->conn, head_argv, &rv->opts, 600 * USEC_PER_SEC);
        if (r < 0) {
                if (rv->conn->error[0])
                        snprintf(v->error, sizeof v->error, "%s", rv->conn->error);
                return r;
        }
        if (rv->conn->bytes != arg_size) {
                snprintf(v->error, sizeof v->error, "received %" PRIu64 " bytes, not %" PRIu64,
                         rv->conn->bytes, arg_size);
                return -EIO;
        }
        *ret = mib_per_sec(rv->conn->bytes, now_usec() - t0);
        return 0;
}

static int run_fd_mode(Variant *v, double *ret) {
        RelayVariant *rv = v->userdata;
        Conn *c = rv->conn;
        ExecOpts o = {};
        uint64_t t0 = now_usec(), total = 0;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        conn_reset(c, 0);
        o.stdio[1] = p[1];
        r = conn_exec_async(c, head_argv, &o, on_exec_reply, c, 600 * USEC_PER_SEC);
        if (r >= 0)
                r = sd_bus_flush(c->bus); /* the message holds its own copy of the fd until sent */
        close(p[1]);
        if (r >= 0)
                r = read_all_count(p[0], &total);
        close(p[0]);
        if (r >= 0)
                r = bus_run_until(c->bus, conn_done, c, 60 * USEC_PER_SEC);
        if (r < 0)
                return r;
        if (c->failed) {
                snprintf(v->error, sizeof v->error, "%s", c->error);
                return -EIO;
        }
        if (total != arg_size) {
                snprintf(v->error, sizeof v->error, "read %" PRIu64 " bytes, not %" PRIu64, total, arg_size);
                return -EIO;
        }
        *ret = mib_per_sec(total, now_usec() - t0);
        return 0;
}

static void stage_throughput(void) {
        Variant vs[MAX_VARIANTS] = {};
        RelayVariant rvs[MAX_VARIANTS] = {};
        Conn *bus = NULL, *p2p = NULL, *vsock = NULL;
        size_t n = 0, nr = 0;
        size_t i_pipe, i_ptyd, i_bus = SIZE_MAX, i_p2p = SIZE_MAX, i_pty = SIZE_MAX, i_fd = SIZE_MAX,
               i_base_bus = SIZE_MAX, i_base_p2p = SIZE_MAX;
        static char base_p2p_name[64], base_bus_name[64];
        Conn *base_bus = NULL, *base_p2p = NULL;
        int r;

        snprintf(size_arg, sizeof size_arg, "%" PRIu64, arg_size);
        i_pipe = n;
        vs[n++] = (Variant) { .name = "pipe, read directly (floor)", .run = run_pipe };
        i_ptyd = n;
        vs[n++] = (Variant) { .name = "PTY master, read directly", .run = run_pty_direct };
        if (arg_bus) {
                r = conn_open(arg_bus, true, &bus);
                if (r < 0)
                        fprintf(stderr, "bus: %s\n", strerror(-r));
                else {
                        /* The targets are on the default options; the window variants show
                         * what sandboxctl's flow control costs. */
                        rvs[nr] = (RelayVariant) { bus, {} };
                        i_bus = n;
                        vs[n++] = (Variant) { .name = "Output via dbus-daemon", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                        rvs[nr] = (RelayVariant) { bus, { .window = arg_window } };
                        vs[n++] = (Variant) { .name = "Output via dbus-daemon, window", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                }
        }
        if (arg_p2p) {
                r = conn_open(arg_p2p, false, &p2p);
                if (r < 0)
                        fprintf(stderr, "p2p: %s\n", strerror(-r));
                else {
                        rvs[nr] = (RelayVariant) { p2p, {} };
                        i_p2p = n;
                        vs[n++] = (Variant) { .name = "Output peer-to-peer", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                        rvs[nr] = (RelayVariant) { p2p, { .window = arg_window } };
                        vs[n++] = (Variant) { .name = "Output peer-to-peer, window", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                        rvs[nr] = (RelayVariant) { p2p, { .tty = true } };
                        i_pty = n;
                        vs[n++] = (Variant) { .name = "Output on a PTY (tty=true), p2p", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                        rvs[nr] = (RelayVariant) { p2p, {} };
                        i_fd = n;
                        vs[n++] = (Variant) { .name = "stdout fd (pipe passed), p2p", .run = run_fd_mode,
                                              .userdata = &rvs[nr++] };
                }
        }
        if (arg_vsock) {
                /* No splicing on vsock (its flow control is the peer's credit): the copying path. */
                r = conn_open(arg_vsock, false, &vsock);
                if (r < 0)
                        fprintf(stderr, "vsock: %s\n", strerror(-r));
                else {
                        rvs[nr] = (RelayVariant) { vsock, {} };
                        vs[n++] = (Variant) { .name = "Output over vsock", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                        rvs[nr] = (RelayVariant) { vsock, { .window = arg_window } };
                        vs[n++] = (Variant) { .name = "Output over vsock, window", .run = run_relay,
                                              .userdata = &rvs[nr++] };
                }
        }

        if (arg_base_bus && conn_open(arg_base_bus, true, &base_bus) >= 0) {
                snprintf(base_bus_name, sizeof base_bus_name, "  via dbus-daemon, %s", arg_base_label);
                rvs[nr] = (RelayVariant) { base_bus, {} };
                i_base_bus = n;
                vs[n++] = (Variant) { .name = base_bus_name, .run = run_relay, .userdata = &rvs[nr++] };
        }
        if (arg_base_p2p && conn_open(arg_base_p2p, false, &base_p2p) >= 0) {
                snprintf(base_p2p_name, sizeof base_p2p_name, "  peer-to-peer, %s", arg_base_label);
                rvs[nr] = (RelayVariant) { base_p2p, {} };
                i_base_p2p = n;
                vs[n++] = (Variant) { .name = base_p2p_name, .run = run_relay, .userdata = &rvs[nr++] };
        }

        run_interleaved(vs, n, arg_tput_rounds, "throughput");

        print_header("Output throughput");
        printf("  `head -c %" PRIu64 " /dev/zero` (%.0f MiB), %u rounds interleaved; window = %" PRIu64
               " bytes (sandboxctl's), acknowledged every quarter\n", arg_size, (double) arg_size / MIB, arg_tput_rounds,
               arg_window);
        printf("  %-34s %10s %10s %8s\n", "variant", "median", "p10", "vs pipe");
        double pipe_med = samples_quantile(&vs[i_pipe].samples, 0.5);
        for (size_t i = 0; i < n; i++) {
                const Variant *v = &vs[i];

                if (v->samples.n == 0) {
                        printf("  %-34s %10s %10s %8s   failed: %s\n", v->name, "-", "-", "-", v->error);
                        continue;
                }
                /* For a rate the bad tail is the low one. */
                double med = samples_quantile(&v->samples, 0.5), p10 = samples_quantile(&v->samples, 0.1);
                printf("  %-34s %6.0f MiB/s %5.0f MiB/s %6.2fx", v->name, med, p10, med / pipe_med);
                if (v->run == run_relay && ((RelayVariant *) v->userdata)->opts.tty)
                        printf("  (%.2fx the PTY read directly)", med / samples_quantile(&vs[i_ptyd].samples, 0.5));
                if (v->failures)
                        printf("   %u failures: %s", v->failures, v->error);
                printf("\n");
        }
        print_baseline_delta("Output via dbus-daemon", vs, i_bus, i_base_bus, true);
        print_baseline_delta("Output peer-to-peer", vs, i_p2p, i_base_p2p, true);

        struct {
                size_t i;
                const char *name;
                double min;
                size_t base;
                const char *limit;
        } t[] = {
                { i_bus, "Output via dbus-daemon / pipe", 0.5, i_pipe, ">= 0.50x" },
                { i_p2p, "Output peer-to-peer / pipe", 0.8, i_pipe, ">= 0.80x" },
                { i_fd, "stdout fd mode / pipe", 0.95, i_pipe, ">= 0.95x" },
                { i_pty, "Output on a PTY / PTY read directly", 0.8, i_ptyd, ">= 0.80x" },
        };
        for (size_t k = 0; k < ELEMENTSOF(t); k++) {
                double ratio;

                if (t[k].i == SIZE_MAX)
                        continue;
                if (vs[t[k].i].samples.n == 0 || vs[t[k].base].samples.n == 0) {
                        target_add(t[k].name, -1, t[k].limit, "failed");
                        continue;
                }
                ratio = samples_quantile(&vs[t[k].i].samples, 0.5) / samples_quantile(&vs[t[k].base].samples, 0.5);
                target_add(t[k].name, ratio >= t[k].min, t[k].limit, "%.2fx", ratio);
        }

        for (size_t i = 0; i < n; i++)
                free(vs[i].samples.v);
        conn_close(p2p);
        conn_close(vsock);
        conn_close(bus);
        conn_close(base_p2p);
        conn_close(base_bus);
}

/* Stage 3: many sessions at once. */

static int start_private_daemon(const char *socket_path, unsigned max_sessions, const char *log, pid_t *ret) {
        char listen[512], maxs[64], maxu[64];
        char *argv[] = { (char *) arg_sandboxd, (char *) "--no-bus", listen, (char *) "--idle-timeout=0",
                         maxs, maxu, NULL };
        int r;

        snprintf(listen, sizeof listen, "--listen=unix:path=%s", socket_path);
        snprintf(maxs, sizeof maxs, "--max-sessions=%u", max_sessions);
        snprintf(maxu, sizeof maxu, "--max-sessions-per-user=%u", max_sessions);
        (void) unlink(socket_path);
        r = spawn_logged(argv, log, ret);
        if (r < 0)
                return r;
        return wait_for_path(socket_path, 10 * USEC_PER_SEC);
}

static int on_scale_reply(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        Conn *c = userdata;

        c->n_replies++;
        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *err = sd_bus_message_get_error(m);

                if (c->n_errors++ == 0)
                        snprintf(c->first_error, sizeof c->first_error, "%s: %s", err->name, err->message);
        }
        return 0;
}

typedef struct ScaleWait {
        Conn *c;
        unsigned want;
} ScaleWait;

static bool scale_done(void *userdata) {
        ScaleWait *w = userdata;

        return w->c->n_replies >= w->want;
}

static int count_sessions(Conn *c, unsigned *ret) {
        sd_bus_message *reply = NULL;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(c->bus, c->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "ListSessions", NULL,
                               &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(uusas)");
        while (r >= 0 && (r = sd_bus_message_skip(reply, "(uusas)")) > 0)
                n++;
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

static void probe_latency(Conn *c, unsigned n, Samples *s) {
        for (unsigned i = 0; i < n; i++) {
                uint64_t t0 = now_usec();

                if (conn_run(c, true_argv, NULL, 60 * USEC_PER_SEC) < 0)
                        continue;
                samples_add(s, (double) (now_usec() - t0) / 1000.0);
        }
}

/* One load of N sessions on a fresh daemon. With pass_fds the sessions get /dev/null as stdin,
 * stdout and stderr, so the daemon holds one fd (the pidfd) per session instead of six. */
static void scale_one(unsigned N, bool pass_fds) {
        static char *sleep_argv[] = { (char *) "/usr/bin/sleep", (char *) "1000", NULL };
        char path[512], log[512], address[600], name[96];
        const char *mode = pass_fds ? "fds" : "relay";
        Conn *load = NULL, *probe = NULL;
        Samples idle = {}, busy = {};
        ExecOpts o = {};
        ScaleWait w;
        pid_t daemon = 0;
        long rss0, rss1, fds;
        uint64_t t0, t_start, t_down;
        unsigned left = 0, ok;
        int r, null_fd = -1;

        snprintf(path, sizeof path, "%s/scale.socket", arg_tmpdir);
        snprintf(log, sizeof log, "%s/scale-%u-%s.log", arg_tmpdir, N, mode);
        snprintf(address, sizeof address, "unix:path=%s", path);
        r = start_private_daemon(path, N + 100, log, &daemon);
        if (r >= 0)
                r = conn_open_retry(address, &probe);
        if (r >= 0)
                r = conn_open(address, false, &load);
        if (r >= 0 && pass_fds) {
                null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null_fd < 0)
                        r = -errno;
                o.stdio[0] = o.stdio[1] = o.stdio[2] = null_fd;
        }
        if (r < 0) {
                printf("  %-6u %-6s could not start a daemon: %s\n", N, mode, strerror(-r));
                snprintf(name, sizeof name, "%u sessions (%s) without a failure", N, mode);
                target_add(name, -1, "all", "no daemon");
                goto finish;
        }
        probe_latency(probe, 5, &idle); /* warm-up */
        free(idle.v);
        idle = (Samples) {};
        probe_latency(probe, arg_scale_probes, &idle);
        sleep_usec(100000);
        rss0 = proc_status_kb(daemon, "VmRSS");

        /* All Execs pipelined on one connection; the replies come as the daemon spawns. */
        t0 = now_usec();
        for (unsigned i = 0; i < N; i++) {
                r = conn_exec_async(load, sleep_argv, &o, on_scale_reply, load, 600 * USEC_PER_SEC);
                if (r < 0)
                        break;
                /* Write out and take in what we can while queueing the rest. */
                while (sd_bus_process(load->bus, NULL) > 0)
                        ;
        }
        w = (ScaleWait) { load, N };
        if (r >= 0)
                r = bus_run_until(load->bus, scale_done, &w, 600 * USEC_PER_SEC);
        t_start = now_usec() - t0;
        sleep_usec(200000);
        rss1 = proc_status_kb(daemon, "VmRSS");
        fds = proc_count_fds(daemon);
        (void) count_sessions(probe, &left);

        probe_latency(probe, arg_scale_probes, &busy);

        ok = load->n_replies - load->n_errors;
        printf("  %-6u %-6s %8u %8.2f %8.0f %8ld %9ld %9.1f %7ld %7.3f ms %7.3f ms\n", N, mode, ok,
               (double) t_start / USEC_PER_SEC, (double) ok / ((double) t_start / USEC_PER_SEC), rss0, rss1,
               ok ? (double) (rss1 - rss0) / (double) ok : 0.0, fds, samples_quantile(&idle, 0.5),
               samples_quantile(&busy, 0.5));
        printf("  %-13s listed %u sessions; /bin/true p90 idle %.3f ms, at load %.3f ms%s%s\n", "", left,
               samples_quantile(&idle, 0.9), samples_quantile(&busy, 0.9),
               load->n_errors ? "; first error: " : "", load->n_errors ? load->first_error : "");
        if (r < 0)
                printf("  %-13s waiting for the replies failed: %s\n", "", strerror(-r));
        if (busy.n == 0)
                printf("  %-13s every /bin/true probe at load failed (-1 above)\n", "");

        snprintf(name, sizeof name, "%u sessions (%s) without a failure", N, mode);
        target_add(name, ok == N && r >= 0, "all", "%u/%u", ok, N);
        if (ok > 0 && !pass_fds) {
                snprintf(name, sizeof name, "daemon memory per session (N=%u, %s)", N, mode);
                target_add(name, (double) (rss1 - rss0) / ok < 64, "< 64 KiB", "%.1f KiB",
                           (double) (rss1 - rss0) / ok);
        }

        /* Dropping the connection sends every session SIGHUP; wait for the daemon to reap them
         * all before the next load. */
        t_down = now_usec();
        conn_close(load);
        load = NULL;
        for (;;) {
                if (count_sessions(probe, &left) < 0 || left == 0)
                        break;
                if (now_usec() - t_down > 120 * USEC_PER_SEC)
                        break;
                sleep_usec(50000);
        }
        printf("  %-13s teardown (connection closed, all sessions gone): %.2f s\n", "",
               (double) (now_usec() - t_down) / USEC_PER_SEC);
finish:
        if (null_fd >= 0)
                close(null_fd);
        conn_close(load);
        conn_close(probe);
        kill_and_reap(daemon);
        free(idle.v);
        free(busy.v);
}

static void stage_scale(void) {
        long pid_max = read_sysctl("/proc/sys/kernel/pid_max");
        long threads_max = read_sysctl("/proc/sys/kernel/threads-max");
        struct rlimit rl;

        print_header("Scale: N concurrent sessions of `sleep 1000` on one peer-to-peer connection");
        getrlimit(RLIMIT_NOFILE, &rl);
        printf("  kernel.pid_max = %ld, kernel.threads-max = %ld, RLIMIT_NOFILE hard (harness, daemon) = %llu\n",
               pid_max, threads_max, (unsigned long long) rl.rlim_max);
        printf("  relay: stdio relayed (5 pipe fds + 1 pidfd per session in the daemon); "
               "fds: /dev/null passed as stdin/stdout/stderr\n");
        printf("  %-6s %-6s %8s %8s %8s %8s %9s %9s %7s %10s %10s\n", "N", "mode", "started", "start s",
               "Exec/s", "RSS0 KiB", "RSS KiB", "KiB/sess", "fds", "true idle", "true load");

        for (unsigned k = 0; k < arg_n_scale; k++) {
                unsigned N = arg_scale[k];
                /* A relayed session holds six fds in the daemon: see sandboxd(8), --max-sessions. */
                rlim_t need = (rlim_t) N * 6 + 64;

                if (pid_max > 0 && (long) N + 1000 > pid_max)
                        printf("  N=%u: kernel.pid_max=%ld is tight\n", N, pid_max);
                if (need > rl.rlim_max)
                        printf("  N=%u relayed needs ~%llu fds in the daemon, more than the hard limit %llu "
                               "(raising it needs CAP_SYS_RESOURCE)\n", N, (unsigned long long) need,
                               (unsigned long long) rl.rlim_max);
                scale_one(N, false);
                if (need > rl.rlim_max)
                        scale_one(N, true);
        }
}

/* Stage 4: cold start and idle memory. */

typedef struct ColdVariant {
        bool sandboxd;
        unsigned round;
} ColdVariant;

static int connect_retry(const char *path, uint64_t deadline) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        for (;;) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0)
                        return fd;
                close(fd);
                if (errno != ENOENT && errno != ECONNREFUSED)
                        return -errno;
                if (now_usec() > deadline)
                        return -ETIMEDOUT;
                sleep_usec(20);
        }
}

static int run_cold(Variant *v, double *ret) {
        ColdVariant *cv = v->userdata;
        char path[512], listen_arg[600];
        char *argv[8];
        uint64_t t0, deadline;
        pid_t pid;
        int r;

        snprintf(path, sizeof path, "%s/cold-%s.socket", arg_tmpdir, cv->sandboxd ? "sbx" : "echo");
        (void) unlink(path);
        snprintf(listen_arg, sizeof listen_arg, "%s", path);
        argv[0] = (char *) "/usr/bin/systemd-socket-activate";
        argv[1] = (char *) "-l";
        argv[2] = listen_arg;
        if (cv->sandboxd) {
                argv[3] = (char *) arg_sandboxd;
                argv[4] = (char *) "--no-bus";
                argv[5] = (char *) "--idle-timeout=0";
                argv[6] = NULL;
        } else {
                argv[3] = (char *) arg_echo;
                argv[4] = NULL;
        }

        t0 = now_usec();
        deadline = t0 + 10 * USEC_PER_SEC;
        r = spawn_logged(argv, NULL, &pid);
        if (r < 0)
                return r;
        if (cv->sandboxd) {
                Conn *c = NULL;
                char address[600];

                /* A connection made while the socket is not yet listening is refused: retry
                 * with a fresh one, as a client of a starting service would. */
                snprintf(address, sizeof address, "unix:path=%s", path);
                r = wait_for_path(path, 10 * USEC_PER_SEC);
                if (r >= 0)
                        r = conn_open_retry(address, &c);
                if (r >= 0) {
                        conn_reset(c, 0);
                        r = conn_exec_async(c, true_argv, NULL, on_exec_reply, c, 10 * USEC_PER_SEC);
                }
                if (r >= 0)
                        r = bus_run_until(c->bus, conn_replied, c, 10 * USEC_PER_SEC);
                if (r >= 0 && c->failed) {
                        snprintf(v->error, sizeof v->error, "%s", c->error);
                        r = -EIO;
                }
                *ret = (double) (now_usec() - t0) / 1000.0;
                if (r >= 0)
                        (void) bus_run_until(c->bus, conn_done, c, 10 * USEC_PER_SEC);
                conn_close(c);
        } else {
                char b = 'x';
                int fd = connect_retry(path, deadline);

                r = fd;
                if (fd >= 0) {
                        r = write(fd, &b, 1) == 1 && read(fd, &b, 1) == 1 ? 0 : -EIO;
                        *ret = (double) (now_usec() - t0) / 1000.0;
                        close(fd);
                }
        }
        kill_and_reap(pid);
        (void) unlink(path);
        return r;
}

static void stage_cold(void) {
        ColdVariant sbx = { .sandboxd = true }, echo = { .sandboxd = false };
        Variant vs[2] = {
                { .name = "trivial socket-activated echo (floor)", .run = run_cold, .userdata = &echo },
                { .name = "sandboxd, socket-activated", .run = run_cold, .userdata = &sbx },
        };
        char path[512], address[600];
        long rss_start = -1, rss_after = -1, rss_peak;
        pid_t daemon = 0;
        Conn *c = NULL;
        int r;

        print_header("Cold start and idle memory");

        /* Idle RSS: a daemon with no connection yet, then after one session and its client
         * have come and gone. */
        snprintf(path, sizeof path, "%s/idle.socket", arg_tmpdir);
        snprintf(address, sizeof address, "unix:path=%s", path);
        r = start_private_daemon(path, 1024, NULL, &daemon);
        if (r >= 0) {
                sleep_usec(200000);
                rss_start = proc_status_kb(daemon, "VmRSS");
                r = conn_open_retry(address, &c);
        }
        if (r >= 0) {
                r = conn_run(c, true_argv, NULL, 10 * USEC_PER_SEC);
                conn_close(c);
                sleep_usec(200000);
                rss_after = proc_status_kb(daemon, "VmRSS");
        }
        rss_peak = daemon > 0 ? proc_status_kb(daemon, "VmHWM") : -1;
        printf("  idle RSS right after start:          %6ld KiB\n", rss_start);
        printf("  idle RSS after one session came/went: %6ld KiB (peak %ld KiB)\n", rss_after, rss_peak);
        kill_and_reap(daemon);
        if (rss_start > 0)
                target_add("idle RSS after start", rss_start < 4096, "< 4096 KiB", "%ld KiB", rss_start);
        else
                target_add("idle RSS after start", -1, "< 4096 KiB", "failed: %s", strerror(-r));

        run_interleaved(vs, 2, 3, "cold warm-up");
        for (size_t i = 0; i < 2; i++) {
                free(vs[i].samples.v);
                vs[i].samples = (Samples) {};
        }
        run_interleaved(vs, 2, arg_cold_rounds, "cold start");

        printf("  launch with systemd-socket-activate → first reply, %u rounds interleaved\n", arg_cold_rounds);
        printf("  %-40s %10s %10s %10s\n", "variant", "median", "p90", "beyond");
        double floor_med = samples_quantile(&vs[0].samples, 0.5);
        for (size_t i = 0; i < 2; i++) {
                if (vs[i].samples.n == 0) {
                        printf("  %-40s failed: %s\n", vs[i].name, vs[i].error);
                        continue;
                }
                double med = samples_quantile(&vs[i].samples, 0.5);
                printf("  %-40s %7.2f ms %7.2f ms %+7.2f ms\n", vs[i].name, med,
                       samples_quantile(&vs[i].samples, 0.9), med - floor_med);
        }
        if (vs[0].samples.n > 0 && vs[1].samples.n > 0) {
                double d = samples_quantile(&vs[1].samples, 0.5) - floor_med;

                target_add("cold start beyond the floor", d < 30, "< 30 ms", "%.2f ms", d);
        } else
                target_add("cold start beyond the floor", -1, "< 30 ms", "failed");
        free(vs[0].samples.v);
        free(vs[1].samples.v);
}

/* Stage 5, run inside a booted system (bench/boot-cold.sh): the real units. From the first
 * connection to /run/sandboxd/io.socket, with sandboxd.service stopped, to the Exec reply,
 * against a trivial service socket-activated by the same service manager, which answers one
 * byte: what systemd itself takes to start a service on a connection. */

#define UNIT_IO_SOCKET "/run/sandboxd/io.socket"
#define UNIT_ECHO_SOCKET "/run/sandbox-bench-echo.socket"

static int systemctl(const char *verb, const char *unit) {
        char *argv[] = { (char *) "/usr/bin/systemctl", (char *) verb, (char *) unit, NULL };
        pid_t pid;
        int r, status;

        r = spawn_logged(argv, NULL, &pid);
        if (r < 0)
                return r;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int run_unit_cold(Variant *v, double *ret) {
        bool sandboxd = v->userdata != NULL;
        const char *service = sandboxd ? "sandboxd.service" : "sandbox-bench-echo.service";
        static uint64_t last[2];
        uint64_t t0;
        int r;

        /* Not measured: the service is stopped, and its start limit forgotten, since it is
         * started here far more often than an on-demand service ever is; and a socket unit
         * refuses to trigger more than 20 times in 2 s (TriggerLimitBurst=), so each is left
         * 120 ms between rounds. */
        r = systemctl("stop", service);
        if (r < 0) {
                snprintf(v->error, sizeof v->error, "systemctl stop %s failed", service);
                return r;
        }
        (void) systemctl("reset-failed", service);
        if (last[sandboxd] > 0 && now_usec() < last[sandboxd] + 120000)
                sleep_usec(last[sandboxd] + 120000 - now_usec());
        last[sandboxd] = now_usec();

        t0 = now_usec();
        if (sandboxd) {
                Conn *c = NULL;

                r = conn_open("unix:path=" UNIT_IO_SOCKET, false, &c);
                if (r >= 0) {
                        conn_reset(c, 0);
                        r = conn_exec_async(c, true_argv, NULL, on_exec_reply, c, 10 * USEC_PER_SEC);
                }
                if (r >= 0)
                        r = bus_run_until(c->bus, conn_replied, c, 10 * USEC_PER_SEC);
                if (r >= 0 && c->failed) {
                        snprintf(v->error, sizeof v->error, "%s", c->error);
                        r = -EIO;
                }
                *ret = (double) (now_usec() - t0) / 1000.0;
                if (r >= 0)
                        (void) bus_run_until(c->bus, conn_done, c, 10 * USEC_PER_SEC);
                conn_close(c);
        } else {
                struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = UNIT_ECHO_SOCKET };
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                char b = 'x';

                r = fd < 0 ? -errno : 0;
                if (r >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                        r = -errno;
                if (r >= 0)
                        r = write(fd, &b, 1) == 1 && read(fd, &b, 1) == 1 ? 0 : -EIO;
                *ret = (double) (now_usec() - t0) / 1000.0;
                if (fd >= 0)
                        close(fd);
        }
        return r;
}

static void stage_unit(void) {
        static int sandboxd_tag;
        Variant vs[2] = {
                { .name = "trivial socket-activated service (floor)", .run = run_unit_cold },
                { .name = "sandboxd.socket → sandboxd.service", .run = run_unit_cold, .userdata = &sandboxd_tag },
        };
        char comm[32] = "";
        FILE *f;

        print_header("Cold start on a booted system: the real units, systemd as PID 1");
        f = fopen("/proc/1/comm", "re");
        if (!f || !fgets(comm, sizeof comm, f) || strcmp(comm, "systemd\n") != 0) {
                printf("  PID 1 is not systemd here; bench/boot-cold.sh runs this stage in a container\n");
                if (f)
                        fclose(f);
                return;
        }
        fclose(f);
        run_interleaved(vs, 2, 3, "unit warm-up");
        for (size_t i = 0; i < 2; i++) {
                free(vs[i].samples.v);
                vs[i].samples = (Samples) {};
        }
        run_interleaved(vs, 2, arg_cold_rounds, "unit cold start");

        printf("  first connection → first reply, the service stopped before each round, %u rounds\n",
               arg_cold_rounds);
        printf("  %-40s %10s %10s %10s\n", "variant", "median", "p90", "beyond");
        double floor_med = vs[0].samples.n > 0 ? samples_quantile(&vs[0].samples, 0.5) : 0;
        for (size_t i = 0; i < 2; i++) {
                if (vs[i].samples.n == 0) {
                        printf("  %-40s failed: %s\n", vs[i].name, vs[i].error);
                        continue;
                }
                double med = samples_quantile(&vs[i].samples, 0.5);
                printf("  %-40s %7.2f ms %7.2f ms %+7.2f ms\n", vs[i].name, med,
                       samples_quantile(&vs[i].samples, 0.9), med - floor_med);
        }
        if (vs[0].samples.n > 0 && vs[1].samples.n > 0) {
                double d = samples_quantile(&vs[1].samples, 0.5) - floor_med;

                target_add("cold start beyond systemd's own (booted)", d < 30, "< 30 ms", "%.2f ms", d);
        } else
                target_add("cold start beyond systemd's own (booted)", -1, "< 30 ms", "failed");
        free(vs[0].samples.v);
        free(vs[1].samples.v);
}

/* Main. */

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Measures sandboxd against posix_spawn, a pipe, a PTY, flatpak-session-helper and qemu-ga.\n\n"
               "  --bus=ADDRESS          Private system bus with sandboxd on it\n"
               "  --p2p=ADDRESS          sandboxd's peer-to-peer address (unix:path=…)\n"
               "  --vsock=ADDRESS        sandboxd on vsock (vsock:cid=CID,port=PORT; in a VM guest)\n"
               "  --flatpak=ADDRESS      Private session bus with flatpak-session-helper on it\n"
               "  --qga=PATH             qemu-ga's unix-listen socket\n"
               "  --sandboxd=PATH        The daemon binary (scale and cold-start stages)\n"
               "  --echo=PATH            The cold-start floor (echo-activated)\n"
               "  --tmpdir=DIR           Where private sockets go\n"
               "  --stages=LIST          latency,throughput,scale,cold (default); unit: only inside a\n"
               "                         booted system with the units installed (bench/boot-cold.sh)\n"
               "  --exec-rounds=N        Exec latency rounds (default %u)\n"
               "  --throughput-rounds=N  Throughput rounds (default %u)\n"
               "  --size=BYTES           Output per throughput run (default %" PRIu64 "; K, M, G suffixes)\n"
               "  --scale=N[,N...]       Concurrent sessions (default 1000,10000)\n"
               "  --scale-probes=N       /bin/true probes at each load (default %u)\n"
               "  --cold-rounds=N        Cold-start rounds (default %u)\n"
               "  --window=BYTES         output-window for the relayed variants (default %" PRIu64 ")\n"
               "  --qga-poll-usec=USEC   Pause between guest-exec-status polls (default 0)\n"
               "  --only=TEXT            Only the variants whose name contains TEXT, and the floors\n"
               "  --baseline-p2p=ADDRESS Another build's sandboxd, peer-to-peer, measured in the same rounds\n"
               "  --baseline-bus=ADDRESS Another build's sandboxd on its own private system bus\n"
               "  --baseline-label=TEXT  What to call that build (default: baseline)\n"
               "  --quick                Small sizes and few rounds (about a minute)\n",
               program_invocation_short_name, arg_exec_rounds, arg_tput_rounds, arg_size, arg_scale_probes,
               arg_cold_rounds, arg_window);
}

static uint64_t parse_size(const char *s) {
        char *end;
        uint64_t v = strtoull(s, &end, 10);

        switch (*end) {
        case 'K': case 'k': return v << 10;
        case 'M': case 'm': return v << 20;
        case 'G': case 'g': return v << 30;
        default: return v;
        }
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_BUS = 0x100, ARG_P2P, ARG_FLATPAK, ARG_QGA, ARG_SANDBOXD, ARG_ECHO, ARG_TMPDIR, ARG_STAGES,
                ARG_EXEC_ROUNDS, ARG_TPUT_ROUNDS, ARG_SIZE, ARG_SCALE, ARG_SCALE_PROBES, ARG_COLD_ROUNDS,
                ARG_WINDOW, ARG_QGA_POLL, ARG_QUICK, ARG_ONLY, ARG_BASE_P2P, ARG_BASE_BUS, ARG_BASE_LABEL,
                ARG_VSOCK,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "bus", required_argument, NULL, ARG_BUS },
                { "p2p", required_argument, NULL, ARG_P2P },
                { "vsock", required_argument, NULL, ARG_VSOCK },
                { "flatpak", required_argument, NULL, ARG_FLATPAK },
                { "qga", required_argument, NULL, ARG_QGA },
                { "sandboxd", required_argument, NULL, ARG_SANDBOXD },
                { "echo", required_argument, NULL, ARG_ECHO },
                { "tmpdir", required_argument, NULL, ARG_TMPDIR },
                { "stages", required_argument, NULL, ARG_STAGES },
                { "exec-rounds", required_argument, NULL, ARG_EXEC_ROUNDS },
                { "throughput-rounds", required_argument, NULL, ARG_TPUT_ROUNDS },
                { "size", required_argument, NULL, ARG_SIZE },
                { "scale", required_argument, NULL, ARG_SCALE },
                { "scale-probes", required_argument, NULL, ARG_SCALE_PROBES },
                { "cold-rounds", required_argument, NULL, ARG_COLD_ROUNDS },
                { "window", required_argument, NULL, ARG_WINDOW },
                { "qga-poll-usec", required_argument, NULL, ARG_QGA_POLL },
                { "quick", no_argument, NULL, ARG_QUICK },
                { "only", required_argument, NULL, ARG_ONLY },
                { "baseline-p2p", required_argument, NULL, ARG_BASE_P2P },
                { "baseline-bus", required_argument, NULL, ARG_BASE_BUS },
                { "baseline-label", required_argument, NULL, ARG_BASE_LABEL },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        exit(0);
                case ARG_BUS: arg_bus = optarg; break;
                case ARG_P2P: arg_p2p = optarg; break;
                case ARG_VSOCK: {
                        unsigned cid, port;

                        if (parse_vsock_address(optarg, &cid, &port) < 0) {
                                fprintf(stderr, "--vsock= takes vsock:cid=CID,port=PORT, not '%s'.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        arg_vsock = optarg;
                        break;
                }
                case ARG_FLATPAK: arg_flatpak = optarg; break;
                case ARG_QGA: arg_qga = optarg; break;
                case ARG_SANDBOXD: arg_sandboxd = optarg; break;
                case ARG_ECHO: arg_echo = optarg; break;
                case ARG_TMPDIR: arg_tmpdir = optarg; break;
                case ARG_STAGES:
                        arg_stage_latency = strstr(optarg, "latency");
                        arg_stage_throughput = strstr(optarg, "throughput");
                        arg_stage_scale = strstr(optarg, "scale");
                        arg_stage_cold = strstr(optarg, "cold");
                        arg_stage_unit = strstr(optarg, "unit");
                        break;
                case ARG_EXEC_ROUNDS: arg_exec_rounds = (unsigned) atoi(optarg); break;
                case ARG_TPUT_ROUNDS: arg_tput_rounds = (unsigned) atoi(optarg); break;
                case ARG_SIZE: arg_size = parse_size(optarg); break;
                case ARG_SCALE: {
                        char *s = optarg;

                        arg_n_scale = 0;
                        while (*s && arg_n_scale < ELEMENTSOF(arg_scale)) {
                                arg_scale[arg_n_scale++] = (unsigned) strtoul(s, &s, 10);
                                if (*s == ',')
                                        s++;
                        }
                        break;
                }
                case ARG_SCALE_PROBES: arg_scale_probes = (unsigned) atoi(optarg); break;
                case ARG_COLD_ROUNDS: arg_cold_rounds = (unsigned) atoi(optarg); break;
                case ARG_WINDOW: arg_window = parse_size(optarg); break;
                case ARG_ONLY: arg_only = optarg; break;
                case ARG_BASE_P2P: arg_base_p2p = optarg; break;
                case ARG_BASE_BUS: arg_base_bus = optarg; break;
                case ARG_BASE_LABEL: arg_base_label = optarg; break;
                case ARG_QGA_POLL: arg_qga_poll_usec = strtoull(optarg, NULL, 10); break;
                case ARG_QUICK:
                        arg_exec_rounds = 150;
                        arg_tput_rounds = 3;
                        arg_size = 32ULL << 20;
                        arg_scale[0] = 1000;
                        arg_n_scale = 1;
                        arg_scale_probes = 20;
                        arg_cold_rounds = 10;
                        break;
                default:
                        return -EINVAL;
                }
        return 0;
}

static void raise_nofile(void) {
        long nr_open = read_sysctl("/proc/sys/fs/nr_open");
        struct rlimit rl;

        /* The daemons started here inherit this; sandboxd raises its soft limit to the hard one. */
        rl.rlim_max = rl.rlim_cur = (rlim_t) (nr_open > 0 ? (nr_open < 524288 ? nr_open : 524288) : 65536);
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                /* Without CAP_SYS_RESOURCE: as far as the hard limit goes. */
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int main(int argc, char *argv[]) {
        struct utsname u;
        char cpu[256] = "?", line[512];
        FILE *f;

        if (parse_argv(argc, argv) < 0)
                return 2;
        signal(SIGPIPE, SIG_IGN);
        raise_nofile();
        if ((arg_stage_scale || arg_stage_cold) && !arg_sandboxd) {
                fprintf(stderr, "--sandboxd= is needed for the scale and cold stages; skipping them.\n");
                arg_stage_scale = arg_stage_cold = false;
        }
        if (arg_stage_cold && !arg_echo) {
                fprintf(stderr, "--echo= is needed for the cold stage; skipping it.\n");
                arg_stage_cold = false;
        }

        uname(&u);
        f = fopen("/proc/cpuinfo", "re");
        while (f && fgets(line, sizeof line, f))
                if (strncmp(line, "model name", 10) == 0) {
                        char *p = strchr(line, ':');

                        snprintf(cpu, sizeof cpu, "%.200s", p ? p + 2 : line);
                        cpu[strcspn(cpu, "\n")] = 0;
                        break;
                }
        if (f)
                fclose(f);
        printf("sandbox-bench on %s %s, %ld CPUs (%s)\n", u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN), cpu);

        if (arg_stage_latency)
                stage_latency();
        fflush(stdout);
        if (arg_stage_throughput)
                stage_throughput();
        fflush(stdout);
        if (arg_stage_scale)
                stage_scale();
        fflush(stdout);
        if (arg_stage_cold)
                stage_cold();
        if (arg_stage_unit)
                stage_unit();

        print_header("Targets");
        unsigned miss = 0;
        for (size_t i = 0; i < n_targets; i++) {
                const Target *t = &targets[i];

                printf("  %-50s %12s %12s   %s\n", t->name, t->value, t->limit,
                       t->pass > 0 ? "PASS" : t->pass == 0 ? "MISS" : "n/a");
                if (t->pass == 0)
                        miss++;
        }
        printf("  %zu targets, %u missed\n", n_targets, miss);
        return 0;
}
