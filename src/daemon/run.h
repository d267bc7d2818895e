/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Run and RunText: a session whose output is collected, not relayed, and answered in one reply
 * when it ends (api.md, "Main object additions"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#include "exec-request.h"
#include "manager.h"
#include "session.h"

/* Reserves what the Run may collect (twice its max-output) against RUN_OUTPUT_PER_UID_MAX and
 * RUN_OUTPUT_TOTAL_MAX, for call, whose reply it will be. LimitsExceeded past them. */
int run_sink_new(Manager *m, uid_t owner_uid, sd_bus_message *call, const ExecRequest *req,
                 RunSink **ret, sd_bus_error *error);
RunSink *run_sink_free(Manager *m, uid_t owner_uid, RunSink *r);

/* Keeps what fits of a stream's output (the caller already cut it to max-output). */
void run_sink_add(RunSink *r, unsigned stream, const void *data, size_t size);
/* The session ended: answers the call with its status, output and info. */
int run_sink_reply(Session *s);

/* bytes as UTF-8 text, each invalid sequence and NUL made U+FFFD; at most max bytes, cut at a
 * character (*ret_cut then says so). Returns a NUL-terminated string, or NULL without memory. */
char *utf8_sanitize(const void *data, size_t size, size_t max, bool *ret_cut);
