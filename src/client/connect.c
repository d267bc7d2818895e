/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ways to sandboxd that sd-bus 252 has no address for: vsock, a hypervisor's vsock multiplexer, ssh. */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "connect.h"
#include "sandboxctl.h"

/* Long enough for a hypervisor to reach a guest that is up; a guest that does not listen on the port
 * gets the connection reset at once, so only a stuck peer waits this long. */
#define CONNECT_TIMEOUT_MSEC 5000
/* Firecracker answers "OK <host port>\n"; anything longer is not that. */
#define HANDSHAKE_LINE_MAX 128

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* The n bytes at s, a value in a D-Bus address, with its %XX escapes undone; NULL with errno set. */
static char *address_value_unescape(const char *s, size_t n) {
        char *ret = malloc(n + 1), *p = ret;

        if (!ret)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%') {
                        int hi = i + 2 < n ? unhex(s[i + 1]) : -1;
                        int lo = i + 2 < n ? unhex(s[i + 2]) : -1;

                        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                                free(ret);
                                errno = EINVAL;
                                return NULL;
                        }
                        *p++ = (char) (hi << 4 | lo);
                        i += 2;
                } else
                        *p++ = s[i];
        }
        *p = 0;
        return ret;
}

void own_address_done(OwnAddress *a) {
        free(a->path);
        a->path = NULL;
}

_printf_(2, 3)
static int address_error(const char *address, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "sandboxctl: invalid address '%s': ", address);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        print_usage_line(stderr);
        return -EINVAL;
}

int own_address_parse(const char *address, OwnAddress *ret) {
        _cleanup_(own_address_done) OwnAddress a = {};
        bool have_cid = false, have_port = false;
        const char *p;

        if ((p = startswith(address, "vsock:")))
                a.kind = OWN_ADDRESS_VSOCK;
        else if ((p = startswith(address, "vsock-mux:")))
                a.kind = OWN_ADDRESS_VSOCK_MUX;
        else
                return 0;

        if (strchr(p, ';'))
                return address_error(address, "%s", "a vsock address cannot be one of a list of addresses");

        while (*p) {
                size_t n = strcspn(p, ","), key_len;
                const char *eq = memchr(p, '=', n);
                _cleanup_free_ char *value = NULL;

                if (!eq)
                        return address_error(address, "'%s' is not KEY=VALUE", strndupa(p, n));
                key_len = (size_t) (eq - p);
                value = address_value_unescape(eq + 1, n - key_len - 1);
                if (!value) {
                        if (errno == ENOMEM)
                                return log_error_errno(-ENOMEM, "out of memory");
                        return address_error(address, "bad %%-escape in the value of '%s'",
                                             strndupa(p, key_len));
                }

                if (key_len == 3 && strncmp(p, "cid", 3) == 0 && a.kind == OWN_ADDRESS_VSOCK) {
                        if (have_cid)
                                return address_error(address, "'%s' given twice", "cid");
                        if (parse_u32(value, &a.cid) < 0)
                                return address_error(address, "cid '%s' is not a number (0 to 4294967295)",
                                                     value);
                        have_cid = true;
                } else if (key_len == 4 && strncmp(p, "port", 4) == 0) {
                        if (have_port)
                                return address_error(address, "'%s' given twice", "port");
                        if (parse_u32(value, &a.port) < 0)
                                return address_error(address, "port '%s' is not a number (0 to 4294967295)",
                                                     value);
                        have_port = true;
                } else if (key_len == 4 && strncmp(p, "path", 4) == 0 && a.kind == OWN_ADDRESS_VSOCK_MUX) {
                        if (a.path)
                                return address_error(address, "'%s' given twice", "path");
                        if (value[0] == 0)
                                return address_error(address, "%s", "empty path");
                        if (strlen(value) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                                return address_error(address, "path '%s' is too long for a unix socket",
                                                     value);
                        a.path = TAKE_PTR(value);
                } else
                        return address_error(address, "unknown key '%s'", strndupa(p, key_len));

                p += n;
                if (*p == ',')
                        p++;
        }

        if (a.kind == OWN_ADDRESS_VSOCK && !have_cid)
                return address_error(address, "%s", "cid= is missing");
        if (a.kind == OWN_ADDRESS_VSOCK_MUX && !a.path)
                return address_error(address, "%s", "path= is missing");
        if (!have_port)
                return address_error(address, "%s", "port= is missing");

        *ret = a;
        a.path = NULL;
        return 1;
}

static int64_t now_msec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 0 when they came, -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline) {
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = events };
                int64_t left = deadline - now_msec();
                int r;

                if (left <= 0)
                        return -ETIMEDOUT;
                r = poll(&pfd, 1, (int) MIN(left, (int64_t) 60000));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

/* connect() on a non-blocking socket, finished within the deadline. */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline) {
        int error = 0;
        socklen_t error_len = sizeof error;
        int r;

        for (;;) {
                if (connect(fd, sa, len) >= 0)
                        return 0;
                if (errno != EAGAIN)
                        break;
                /* A unix socket's backlog is full: nothing to wait on but time. */
                if (now_msec() >= deadline)
                        return -ETIMEDOUT;
                (void) poll(NULL, 0, 10);
        }
        if (errno != EINPROGRESS && errno != EINTR)
                return -errno;
        r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len) < 0)
                return -errno;
        return -error;
}

static const char *vsock_hint(int r) {
        switch (r) {
        case -EAFNOSUPPORT:
                return " (this kernel has no vsock support)";
        case -ENODEV:
        case -ENETUNREACH:
        case -EHOSTUNREACH:
                return " (no vsock transport reaches that CID from here)";
        case -ECONNRESET:
        case -ECONNREFUSED:
                return " (nothing listens on that port there)";
        case -ETIMEDOUT:
                return " (no answer)";
        default:
                return "";
        }
}

static int connect_vsock(const OwnAddress *a, const char *address) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_vm svm = {
                .svm_family = AF_VSOCK,
                .svm_cid = a->cid,
                .svm_port = a->port,
        };
        int r;

        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(-errno, "failed to connect to %s: %m%s", address, vsock_hint(-errno));
        r = connect_bounded(fd, (struct sockaddr *) &svm, sizeof svm, now_msec() + CONNECT_TIMEOUT_MSEC);
        if (r < 0)
                return log_error_errno(r, "failed to connect to %s: %m%s", address, vsock_hint(r));
        return TAKE_FD(fd);
}

/* The multiplexer's answer, made printable for an error message. */
static void sanitize_line(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
}

static int connect_vsock_mux(const OwnAddress *a, const char *address) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        int64_t deadline = now_msec() + CONNECT_TIMEOUT_MSEC;
        char request[32], line[HANDSHAKE_LINE_MAX + 1];
        size_t n_request, done = 0, n_line = 0;
        int r;

        strncpy(sun.sun_path, a->path, sizeof sun.sun_path - 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(-errno, "failed to connect to %s: %m", address);
        r = connect_bounded(fd, (struct sockaddr *) &sun, sizeof sun, deadline);
        if (r < 0)
                return log_error_errno(r, "failed to connect to %s: %m", address);

        n_request = (size_t) snprintf(request, sizeof request, "CONNECT %" PRIu32 "\n", a->port);
        while (done < n_request) {
                ssize_t k = send(fd, request + done, n_request - done, MSG_NOSIGNAL);

                if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                        r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return log_error_errno(r, "failed to connect to %s: sending CONNECT: %m",
                                                       address);
                        continue;
                }
                if (k < 0)
                        return log_error_errno(-errno, "failed to connect to %s: sending CONNECT: %m",
                                               address);
                done += (size_t) k;
        }

        /* One byte at a time: what follows the line is the D-Bus server's, and sd-bus must read it. */
        for (;;) {
                ssize_t k = recv(fd, line + n_line, 1, 0);

                if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                        r = wait_fd(fd, POLLIN, deadline);
                        if (r == -ETIMEDOUT)
                                return log_error_errno(r, "failed to connect to %s: no answer to "
                                                       "'CONNECT %" PRIu32 "' within %d s",
                                                       address, a->port, CONNECT_TIMEOUT_MSEC / 1000);
                        if (r < 0)
                                return log_error_errno(r, "failed to connect to %s: %m", address);
                        continue;
                }
                if (k < 0)
                        return log_error_errno(-errno, "failed to connect to %s: reading the answer to "
                                               "CONNECT: %m", address);
                if (k == 0)
                        return log_error_errno(-ECONNRESET, "failed to connect to %s: the connection was "
                                               "closed before an answer to 'CONNECT %" PRIu32 "' "
                                               "(nothing listens on that port in the guest?)",
                                               address, a->port);
                if (line[n_line] == '\n')
                        break;
                if (++n_line >= HANDSHAKE_LINE_MAX) {
                        line[n_line] = 0;
                        sanitize_line(line);
                        return log_error_errno(-EPROTO, "failed to connect to %s: the answer to CONNECT "
                                               "is not a line: '%s...'", address, line);
                }
        }
        line[n_line] = 0;
        if (n_line > 0 && line[n_line - 1] == '\r')
                line[--n_line] = 0;

        if (!startswith(line, "OK ")) {
                sanitize_line(line);
                return log_error_errno(-ECONNREFUSED, "failed to connect to %s: 'CONNECT %" PRIu32 "' "
                                       "was answered '%s', not 'OK ...'", address, a->port, line);
        }
        return TAKE_FD(fd);
}

int own_address_connect(const OwnAddress *a, const char *address) {
        switch (a->kind) {
        case OWN_ADDRESS_VSOCK:
                return connect_vsock(a, address);
        case OWN_ADDRESS_VSOCK_MUX:
                return connect_vsock_mux(a, address);
        default:
                return log_error_errno(-EINVAL, "unknown kind of address '%s'", address);
        }
}

bool address_runs_program(const char *address) {
        /* An address may be a list of alternatives separated by ';'. */
        for (const char *p = address; p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL)
                if (startswith(p, "unixexec:"))
                        return true;
        return false;
}

/* Splits "[USER@]HOST[:PORT]" (HOST may be "[IPV6]") into the ssh destination and the port. */
static int ssh_host_split(const char *host, char **ret_dest, char **ret_port) {
        const char *at = strrchr(host, '@'), *h = at ? at + 1 : host, *colon = NULL;
        _cleanup_free_ char *dest = NULL, *port = NULL;
        uint32_t number;

        if (h[0] == 0 || h[0] == '-' || host[0] == '-' || (at && at == host))
                return -EINVAL;
        if (h[0] == '[') {
                const char *end = strchr(h, ']');

                if (!end || end == h + 1)
                        return -EINVAL;
                if (end[1] == ':')
                        colon = end + 1;
                else if (end[1] != 0)
                        return -EINVAL;
        } else if (strchr(h, ':') == strrchr(h, ':'))
                /* One colon: a port. More: an IPv6 address without one. */
                colon = strchr(h, ':');

        for (const char *p = host; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return -EINVAL;

        if (colon) {
                if (parse_u32(colon + 1, &number) < 0 || number == 0 || number > 65535)
                        return -EINVAL;
                port = strdup(colon + 1);
                dest = strndup(host, (size_t) (colon - host));
        } else
                dest = strdup(host);
        if (!dest || (colon && !port))
                return -ENOMEM;
        if (h[0] == '[') {
                /* ssh takes an IPv6 address without the brackets. */
                char *open = strchr(dest, '['), *close = strrchr(dest, ']');

                memmove(close, close + 1, strlen(close + 1) + 1);
                memmove(open, open + 1, strlen(open + 1) + 1);
        }

        *ret_dest = TAKE_PTR(dest);
        *ret_port = TAKE_PTR(port);
        return 0;
}

int ssh_host_check(const char *host) {
        _cleanup_free_ char *dest = NULL, *port = NULL;
        int r;

        r = ssh_host_split(host, &dest, &port);
        if (r == -ENOMEM)
                return log_error_errno(r, "out of memory");
        if (r < 0) {
                log_usage_error("invalid host '%s': expected [USER@]HOST[:PORT]", host);
                return -EINVAL;
        }
        return 0;
}

/* The child of fork(), before exec: our single thread's copy, so anything goes, but it must not
 * return. */
_noreturn_ static void ssh_child(int sock, int error_fd, char **argv) {
        struct sigaction ignore = { .sa_handler = SIG_IGN }, dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int e;

        if (dup2(sock, STDIN_FILENO) < 0 || dup2(sock, STDOUT_FILENO) < 0)
                goto fail;
        /* The keys of our terminal signal our whole process group, ssh too: Ctrl-C is for the
         * command (sandboxctl passes it on), and must not cut the connection. ssh keeps SIGINT and
         * SIGQUIT ignored when it finds them so; its prompts still read the terminal. */
        (void) sigaction(SIGINT, &ignore, NULL);
        (void) sigaction(SIGQUIT, &ignore, NULL);
        (void) sigaction(SIGPIPE, &dfl, NULL);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], argv);
fail:
        e = errno;
        (void) !write(error_fd, &e, sizeof e);
        _exit(127);
}

int ssh_connect(const char *host, const char *remote_address) {
        _cleanup_free_ char *dest = NULL, *port = NULL, *remote = NULL;
        _cleanup_close_pair_ int pair[2] = { -EBADF, -EBADF }, error_pipe[2] = { -EBADF, -EBADF };
        const char *ssh = getenv("SANDBOXCTL_SSH");
        char *argv[9];
        size_t n = 0;
        ssize_t k;
        pid_t pid;
        int r, e;

        if (!ssh || ssh[0] == 0)
                ssh = "ssh";
        r = ssh_host_split(host, &dest, &port);
        if (r < 0)
                return log_error_errno(r, "invalid host '%s': %m", host);

        /* ssh hands the remote shell one string: quote each word of it. */
        remote = shell_quote_append(NULL, "systemd-stdio-bridge");
        if (remote && remote_address) {
                _cleanup_free_ char *bus_path = malloc(strlen("--bus-path=") + strlen(remote_address) + 1);

                if (!bus_path)
                        return log_error_errno(-ENOMEM, "out of memory");
                strcpy(stpcpy(bus_path, "--bus-path="), remote_address);
                remote = shell_quote_append(remote, bus_path);
        }
        if (!remote)
                return log_error_errno(-ENOMEM, "out of memory");

        argv[n++] = (char *) ssh;
        /* -x: no X11 forwarding, -T: no terminal; the bytes on the channel are D-Bus's. */
        argv[n++] = (char *) "-xT";
        if (port) {
                argv[n++] = (char *) "-p";
                argv[n++] = port;
        }
        argv[n++] = (char *) "--";
        argv[n++] = dest;
        argv[n++] = remote;
        argv[n] = NULL;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0 ||
            pipe2(error_pipe, O_CLOEXEC) < 0)
                return log_error_errno(-errno, "failed to connect to %s: %m", host);

        pid = fork();
        if (pid < 0)
                return log_error_errno(-errno, "failed to run %s: %m", ssh);
        if (pid == 0)
                ssh_child(pair[1], error_pipe[1], argv);

        pair[1] = safe_close(pair[1]);
        error_pipe[1] = safe_close(error_pipe[1]);
        /* EOF once ssh is running: the pipe closes on exec. */
        do
                k = read(error_pipe[0], &e, sizeof e);
        while (k < 0 && errno == EINTR);
        if (k == (ssize_t) sizeof e) {
                (void) waitpid(pid, NULL, 0);
                return log_error_errno(-e, "failed to run %s: %m", ssh);
        }
        /* ssh is not waited for: it ends with the connection, and sandboxctl soon after. */
        return TAKE_FD(pair[0]);
}
