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

#include "client.h"
#include "listen.h"
#include "log.h"
#include "p2p-input.h"
#include "vsock.h"

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

/* The names this "bus" has: the driver's and ours. Our messages carry ours as their sender
 * (sd_bus_set_sender() below), so a library that matches signals by the owner of the name it
 * asked for (python's dbus-next does) finds them. */
static bool driver_name_known(const char *name) {
        return streq(name, "org.freedesktop.DBus") || streq(name, SANDBOX_BUS_NAME);
}

static int driver_get_name_owner(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (!driver_name_known(name))
                return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.NameHasNoOwner",
                                         "Could not get owner of name '%.256s': no such name", name);
        return sd_bus_reply_method_return(msg, "s", name);
}

static int driver_name_has_owner(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "b", driver_name_known(name));
}

static int driver_list_names(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(msg, "as", 2, "org.freedesktop.DBus", SANDBOX_BUS_NAME);
}

static int driver_start_service(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *name;
        uint32_t flags;
        int r;

        r = sd_bus_message_read(msg, "su", &name, &flags);
        if (r < 0)
                return r;
        if (!streq(name, SANDBOX_BUS_NAME))
                return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.ServiceUnknown",
                                         "The name %.256s was not provided by any .service files", name);
        return sd_bus_reply_method_return(msg, "u", (uint32_t) 2); /* already running */
}

static int driver_get_id(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        static char id[SD_ID128_STRING_MAX];

        if (!id[0]) {
                sd_id128_t v;

                if (sd_id128_randomize(&v) < 0)
                        v = SD_ID128_NULL;
                (void) sd_id128_to_string(v, id);
        }
        return sd_bus_reply_method_return(msg, "s", id);
}

static const sd_bus_vtable driver_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hello", "", "s", driver_hello, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("AddMatch", "s", "", driver_nop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RemoveMatch", "s", "", driver_nop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetNameOwner", "s", "s", driver_get_name_owner, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("NameHasOwner", "s", "b", driver_name_has_owner, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ListNames", "", "as", driver_list_names, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("StartServiceByName", "su", "u", driver_start_service, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetId", "", "s", driver_get_id, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int socket_family(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return -errno;
        return ss.ss_family;
}

/* Serves an accepted connection of 'uid'; takes fd. */
static int listener_serve(Listener *l, int fd, uid_t uid, bool vsock) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        Manager *m = l->manager;
        P2PInput *input = NULL;
        int bus_fd = -EBADF;
        sd_id128_t id;
        int r;

        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = p2p_input_new(m, fd, uid, &bus_fd, &input);
        if (r >= 0)
                r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_fd(bus, bus_fd, fd);
        if (r >= 0)
                p2p_input_set_bus(input, bus);
        if (r < 0) {
                p2p_input_free(input);
                safe_close(bus_fd);
                safe_close(fd);
                return r;
        }
        /* From here on the bus owns both fds. sd-bus reads what the input passes on (see
         * p2p-input.c) and writes to the peer's socket itself. */
        r = sd_bus_set_server(bus, true, id);
        /* sd-bus checks a uid claimed with EXTERNAL against SO_PEERCRED of the fd it reads, now the
         * daemon's own socketpair; anonymous makes it take any claim (and ANONYMOUS). Who the peer is
         * came from the kernel above, never from what it claims: the socket's SO_PEERCRED, or on
         * vsock, which carries no credentials, the default user. */
        if (r >= 0)
                r = sd_bus_set_anonymous(bus, true);
        /* Only where sd-bus sees both fds are AF_UNIX: never on vsock. */
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, true);
        if (r >= 0)
                r = sd_bus_set_sender(bus, SANDBOX_BUS_NAME);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                             driver_vtable, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                p2p_input_free(input);
                return r;
        }
        /* After sd_bus_start(), which sizes the socket's buffers: the splice path reads them. */
        r = client_new_p2p(m, bus, uid, fd, input, NULL);
        if (r < 0)
                return r;
        log_debug("Peer-to-peer client connected (uid %u%s).", (unsigned) uid, vsock ? ", vsock" : "");
        return 0;
}

static unsigned connections_of_uid(Manager *m, uid_t uid) {
        unsigned n = 0;
        Client *c, *next;

        LIST_FOREACH_SAFE(clients, c, next, m->p2p_clients)
                if (c->uid == uid)
                        n++;
        return n;
}

static int listener_event(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        Manager *m = l->manager;
        struct ucred cred = {};
        socklen_t len = sizeof cred;
        unsigned n_uid, n_root, n_class;
        bool vsock;
        uid_t uid;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "accept() failed: %m");
                return 0;
        }

        /* The kernel's word for who connected. vsock carries no credentials: the host talking to a
         * guest agent is served as the configured default user, and only the host (or the CIDs
         * --vsock-allow-cid= names): any local user of a guest reaches its own listener through
         * the loopback transport, CID 1. */
        vsock = socket_family(cfd) == AF_VSOCK;
        if (vsock) {
                struct sockaddr_vm svm = {};
                socklen_t svm_len = sizeof svm;

                if (getpeername(cfd, (struct sockaddr *) &svm, &svm_len) < 0 || svm.svm_family != AF_VSOCK) {
                        log_warning_errno(errno, "Refusing a vsock connection without a peer address: %m");
                        safe_close(cfd);
                        return 0;
                }
                if (!vsock_cid_allowed(svm.svm_cid, m->vsock_allow_cids, m->n_vsock_allow_cids)) {
                        log_warning("Refusing a vsock connection from CID %u (port %u): only %s may connect "
                                    "(--vsock-allow-cid=).", (unsigned) svm.svm_cid, (unsigned) svm.svm_port,
                                    m->n_vsock_allow_cids > 0 ? "the allowed CIDs" : "the host, CID 2,");
                        safe_close(cfd);
                        return 0;
                }
                uid = m->default_uid;
        } else if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) >= 0 && len == sizeof cred)
                uid = cred.uid;
        else {
                safe_close(cfd);
                log_warning("Refusing a peer without credentials.");
                return 0;
        }

        /* Root (and vsock's default user, when that is root) and all other uids together each have
         * --max-connections: no other uid can take root's connections away. Other uids also have at
         * most --max-connections-per-user each, so that one of them cannot take all of theirs.
         * Root has no share of its own: the socket systemd listens on is root's alone. */
        n_root = connections_of_uid(m, 0);
        n_uid = uid == 0 ? n_root : connections_of_uid(m, uid);
        if (uid != 0 && n_uid >= m->max_connections_per_user) {
                log_warning("Refusing a connection of uid %u: it has %u connections already "
                            "(--max-connections-per-user=%u).", (unsigned) uid, n_uid,
                            m->max_connections_per_user);
                safe_close(cfd);
                return 0;
        }
        n_class = uid == 0 ? n_root : m->n_p2p_clients - n_root;
        if (n_class >= m->max_connections) {
                log_warning("Refusing a connection of uid %u: %u clients %s connected already "
                            "(--max-connections=%u).", (unsigned) uid, n_class,
                            uid == 0 ? "of root" : "of uids other than root", m->max_connections);
                safe_close(cfd);
                return 0;
        }
        r = listener_serve(l, cfd, uid, vsock);
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
