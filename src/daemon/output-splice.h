/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Output signals written on a peer-to-peer unix socket by hand, their bytes spliced from the pipe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "manager.h"

/* An Output signal's header and the body up to its data: 156 bytes with this path, interface and
 * sender. */
#define OUTPUT_HEADER_MAX 160

/* Finds out whether the client's connection may carry spliced Output. */
void client_splice_init(Client *c);

/* Whether the session's output may be spliced to its client, now. */
bool output_splice_possible(Session *s);

/* Sends up to 'max' bytes of the stream's output as one Output signal, without copying them.
 * Returns how many bytes it took from the pipe, or 0 where this does not apply now: then the
 * caller relays them through sd-bus. */
size_t output_splice(Session *s, unsigned stream, size_t max);
