/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Execs from the bus wait their turn, one connection after another.
 *
 * Every bus client reaches the daemon over its one bus connection, in the order the bus delivers
 * the calls: without this queue, a client that pipelines a thousand Execs would make everyone
 * else's wait behind all of their spawns. So an authorized Exec from the bus is queued on its
 * client, and an event source at the bus's own priority starts one Exec per dispatch, taking the
 * clients in turn; before each, it reads ahead what the bus has delivered, so that a call that
 * came later but from someone else joins the round. Peer-to-peer connections need none of this:
 * each is its own event source, and sd-event already takes them in turn. */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "exec-request.h"
#include "manager.h"
#include "user.h"

/* Execs of one bus connection waiting to start; more are refused with LimitsExceeded. dbus-daemon
 * refuses calls past 128 replies pending on one connection (max_replies_per_connection), so this
 * gives dbus-broker's clients the same bound. */
#define EXEC_QUEUE_CLIENT_MAX 128
/* The memory that waiting Execs may hold in all, by the size of their argv and env. */
#define EXEC_QUEUE_BYTES_MAX (64 * 1024 * 1024)
/* Calls read ahead from the bus before each start. */
#define EXEC_QUEUE_READ_AHEAD 256

/* Takes req and u (left empty) and queues them with msg, to be answered when started. Returns 1
 * when queued, or a negative errno with error set. */
int exec_queue_push(Client *c, sd_bus_message *msg, ExecRequest *req, UserInfo *u,
                    sd_bus_error *error);
/* The client is going away: its waiting Execs are dropped unanswered. */
void exec_queue_drop_client(Client *c);
void exec_queue_done(Manager *m);

/* Starts the session of an authorized Exec and replies to msg (manager-dbus.c). Returns 1, or a
 * negative errno with error possibly set, for the caller to reply with. */
int manager_exec_start(Manager *m, sd_bus_message *msg, Client *c, ExecRequest *req,
                       const UserInfo *u, sd_bus_error *error);
