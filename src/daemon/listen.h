/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listening sockets that serve peer-to-peer D-Bus: --listen and systemd socket activation. */
#pragma once

#include "list.h"
#include "manager.h"

struct Listener {
        Manager *manager;
        int fd;
        char *path;                     /* the socket we bound and remove again, or NULL */
        sd_event_source *source;
        LIST_FIELDS(Listener, listeners);
};

/* "unix:path=PATH" (replacing a stale socket there) or "unix:abstract=NAME". */
int listener_new_address(Manager *m, const char *address);
/* A listening socket passed by systemd. */
int listener_new_fd(Manager *m, int fd);
Listener *listener_free(Listener *l);

/* AF_UNIX, AF_VSOCK, …: what a socket is, or a negative errno. */
int socket_family(int fd);
