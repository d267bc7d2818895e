/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ways to sandboxd that sd-bus 252 has no address for: vsock, a hypervisor's vsock multiplexer, ssh. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum OwnAddressKind {
        OWN_ADDRESS_VSOCK,      /* vsock:cid=CID,port=PORT */
        OWN_ADDRESS_VSOCK_MUX,  /* vsock-mux:path=PATH,port=PORT (Firecracker, Cloud Hypervisor) */
} OwnAddressKind;

typedef struct OwnAddress {
        OwnAddressKind kind;
        uint32_t cid;
        uint32_t port;
        char *path;
} OwnAddress;

/* Parses an address that sandboxctl connects itself. Returns 1 when it is one (and fills *ret), 0 when
 * it is for sd-bus, -EINVAL after printing what is wrong with it, -ENOMEM. */
int own_address_parse(const char *address, OwnAddress *ret);
void own_address_done(OwnAddress *a);

/* Connects the socket (and speaks the multiplexer's handshake), bounded in time. Returns the connected
 * fd, or prints one line naming 'address' and returns < 0. */
int own_address_connect(const OwnAddress *a, const char *address);

/* Whether sd-bus would reach the address through a program it runs (unixexec:): whatever that program
 * is (ssh and systemd-stdio-bridge, socat), it forwards bytes, not the fds of SCM_RIGHTS. */
bool address_runs_program(const char *address);

/* Checks "[USER@]HOST[:PORT]" as -H takes it; prints what is wrong and returns -EINVAL. */
int ssh_host_check(const char *host);
/* Runs ssh to host with systemd-stdio-bridge at the other end, connected to remote_address there (NULL:
 * the remote system bus), and returns our end of the socket that is its stdin and stdout; prints the
 * error and returns < 0. $SANDBOXCTL_SSH names the ssh program. */
int ssh_connect(const char *host, const char *remote_address);
