/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon reads a peer-to-peer connection's socket for sd-bus: bounded, and with no fd left behind. */
#pragma once

#include "manager.h"

typedef struct P2PInput P2PInput;

/* Starts reading 'socket_fd' (which stays the caller's; a duplicate is read). Returns in *ret_bus_fd
 * the fd that sd-bus is to read instead (sd_bus_set_fd(bus, *ret_bus_fd, socket_fd)). 'uid' is
 * only for the log. */
int p2p_input_new(Manager *m, int socket_fd, uid_t uid, int *ret_bus_fd, P2PInput **ret);
P2PInput *p2p_input_free(P2PInput *p);
/* The connection that reads what is passed on: processed right after (holds a reference). */
void p2p_input_set_bus(P2PInput *p, sd_bus *bus);

/* The message bounds leave room again: wakes connections that wait for it. */
void p2p_input_wake(Manager *m);
