/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listening sockets that serve peer-to-peer D-Bus: --listen and systemd socket activation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"

/* Clients that think they talk to a bus (busctl --address=..., sd_bus_open_with_address()) start
 * with Hello; answer it, and the match calls that follow, as a bus driver would, so that they work
 * on the peer-to-peer socket too. */
static int driver_hello(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        static uint64_t counter = 0;
        char name[32];

        (void) snprintf(name, sizeof name, ":1.%llu", (unsigned long long) ++counter);
        return sd_bus_reply_method_return(msg, "s", name);
}

static int driver_nop(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable driver_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hello", "", "s", driver_hello, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("AddMatch", "s", "", driver_nop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RemoveMatch", "s", "", driver_nop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int socket_family(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return -errno;
        return ss.ss_family;
}

static int listener_serve(Listener *l, int fd) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        Manager *m = l->manager;
        struct ucred cred = {};
        socklen_t len = sizeof cred;
        sd_id128_t id;
        uid_t uid = 0;
        int r;

        /* The kernel's word for who connected. vsock carries no credentials: the host talking
         * to a guest agent is served as the configured default user. */
        if (socket_family(fd) == AF_VSOCK)
                uid = m->default_uid;
        else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) >= 0 && len == sizeof cred)
                uid = cred.uid;
        else {
                safe_close(fd);
                return log_warning_errno(EPERM, "Refusing a peer without credentials.");
        }

        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        /* From here on the bus owns the fd. */
        r = sd_bus_set_server(bus, true, id);
        if (r < 0)
                return r;
        /* vsock carries no credentials, so EXTERNAL cannot succeed there; its peers are the
         * default user whatever they claim. Elsewhere the kernel's credentials are required. */
        r = sd_bus_set_anonymous(bus, socket_family(fd) == AF_VSOCK);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     driver_vtable, NULL);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = client_new_p2p(m, bus, uid, NULL);
        if (r < 0)
                return r;
        log_debug("Peer-to-peer client connected (uid %u).", (unsigned) uid);
        return 0;
}

static int listener_event(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "accept() failed: %m");
                return 0;
        }
        if (l->manager->n_p2p_clients >= l->manager->max_connections) {
                log_warning("Refusing a connection: %u clients connected already.",
                            l->manager->n_p2p_clients);
                safe_close(cfd);
                return 0;
        }
        r = listener_serve(l, cfd);
        if (r < 0)
                log_warning_errno(r, "Cannot serve a peer-to-peer connection: %m");
        return 0;
}

static int listener_add(Manager *m, int fd, char *path) {
        Listener *l;
        int r;

        l = calloc(1, sizeof(Listener));
        if (!l) {
                free(path);
                safe_close(fd);
                return -ENOMEM;
        }
        *l = (Listener) { .manager = m, .fd = fd, .path = path };
        LIST_PREPEND(listeners, m->listeners, l);

        r = sd_event_add_io(m->event, &l->source, fd, EPOLLIN, listener_event, l);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        return 0;
}

int listener_new_fd(Manager *m, int fd) {
        return listener_add(m, fd, NULL);
}

int listener_new_address(Manager *m, const char *address) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *path = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        const char *p;
        struct stat st;
        size_t n;

        if ((p = startswith(address, "unix:path="))) {
                n = strlen(p);
                if (n == 0 || n >= sizeof sa.sun_path)
                        return log_error_errno(EINVAL, "Invalid socket path in '%s'.", address);
                memcpy(sa.sun_path, p, n);
                salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
                path = strdup(p);
                if (!path)
                        return -ENOMEM;
                /* Only a socket left behind by an earlier run is replaced, never another file. */
                if (lstat(p, &st) >= 0 && S_ISSOCK(st.st_mode))
                        (void) unlink(p);
        } else if ((p = startswith(address, "unix:abstract="))) {
                n = strlen(p);
                if (n == 0 || n + 1 >= sizeof sa.sun_path)
                        return log_error_errno(EINVAL, "Invalid abstract socket name in '%s'.", address);
                memcpy(sa.sun_path + 1, p, n);
                salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n);
        } else
                return log_error_errno(EINVAL, "Unsupported listen address '%s' (use unix:path=PATH).",
                                       address);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "socket() failed: %m");
        if (bind(fd, (struct sockaddr *) &sa, salen) < 0)
                return log_error_errno(errno, "Cannot bind to '%s': %m", address);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Cannot listen on '%s': %m", address);

        return listener_add(m, TAKE_FD(fd), TAKE_PTR(path));
}

Listener *listener_free(Listener *l) {
        if (!l)
                return NULL;
        LIST_REMOVE(listeners, l->manager->listeners, l);
        sd_event_source_disable_unref(l->source);
        if (l->path)
                (void) unlink(l->path);
        safe_close(l->fd);
        free(l->path);
        free(l);
        return NULL;
}
