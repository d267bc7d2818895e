/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Asking polkit whether a caller on the system bus may do something, without blocking. */
#pragma once

#include <systemd/sd-bus.h>

#include "hashmap.h"

#define POLKIT_ACTION_EXEC "org.example.sandbox1.exec"
#define POLKIT_ACTION_EXEC_AS_USER "org.example.sandbox1.exec-as-user"
#define POLKIT_ACTION_MANAGE "org.example.sandbox1.manage"

/* Checks 'action' for the sender of the method call 'msg' (subject: system-bus-name), honouring
 * the message's allow-interactive-authorization flag. 'details' is a NULL-terminated list of
 * key, value, key, value, ... passed to polkit for rules to decide on (may be NULL).
 *
 * Returns 1 when authorized, 0 when the question is on its way to polkit (the handler must
 * return 1 without replying: once polkit answers, the same message is dispatched again and this
 * call answers from 'registry'), or a negative errno with 'error' set: AccessDenied when polkit
 * says no, is unreachable, or the caller is gone. Root (uid 0) is always authorized without
 * asking; pass its uid as 'caller_uid'.
 *
 * 'registry' is owned by the caller (the Manager) and freed with polkit_registry_free(). */
int polkit_check(sd_bus_message *msg, const char *action, const char **details, uid_t caller_uid,
                 Hashmap **registry, sd_bus_error *error);
void polkit_registry_free(Hashmap *registry);
