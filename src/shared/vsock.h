/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which vsock peers may connect: the host only, unless more CIDs are allowed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The host, as a guest sees it (VMADDR_CID_HOST). */
#define VSOCK_CID_HOST 2U

/* With no list (n == 0), only the host; otherwise only the CIDs in the list. */
bool vsock_cid_allowed(uint32_t cid, const uint32_t *allow, size_t n);

/* "CID[,CID...]", decimal, appended to *list (realloc'd). -EINVAL for anything else, -ENOMEM. */
int vsock_cid_list_parse(const char *s, uint32_t **list, size_t *n);
