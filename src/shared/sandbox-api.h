/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names and message shapes of org.example.Sandbox1 (api.md), defined once for the daemon, the
 * bench and the load tool (sandboxctl next). Header only: nothing to link. */
#pragma once

#define SANDBOX_BUS_NAME "org.example.Sandbox1"
#define SANDBOX_OBJECT_PATH "/org/example/Sandbox1"
#define SANDBOX_INTERFACE "org.example.Sandbox1"
#define SANDBOX_SESSION_INTERFACE SANDBOX_INTERFACE ".Session"
/* A session's object is SANDBOX_SESSION_PATH_PREFIX "/<id>", the id in decimal. */
#define SANDBOX_SESSION_PATH_PREFIX SANDBOX_OBJECT_PATH "/session"
#define SANDBOX_ERROR_PREFIX SANDBOX_INTERFACE ".Error."

/* Exec(as argv, a{sv} options) -> (u id, u pid); Run adds the session's end to its reply. */
#define SANDBOX_EXEC_SIGNATURE "asa{sv}"
#define SANDBOX_EXEC_REPLY_SIGNATURE "uu"
#define SANDBOX_RUN_REPLY_SIGNATURE "iiayaya{sv}"
#define SANDBOX_RUN_TEXT_REPLY_SIGNATURE "iissa{sv}"
/* Output(u id, u stream, ay data): stream 1 is stdout (or the terminal), 2 stderr. */
#define SANDBOX_OUTPUT_SIGNATURE "uuay"
/* Exited(u id, i code, i signal): code -1 when a signal ended it. */
#define SANDBOX_EXITED_SIGNATURE "uii"
