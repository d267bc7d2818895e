/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cold-start floor: a trivial socket-activated server that echoes one connection's bytes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* It links nothing but libc, so what it costs is systemd-socket-activate, exec and one round trip:
 * the least any socket-activated service can take. */
int main(void) {
        const char *fds = getenv("LISTEN_FDS");
        char buf[4096];
        int fd;

        if (!fds || atoi(fds) < 1)
                return 1;
        fd = accept4(3, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return 1;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return 0;
                if (write(fd, buf, (size_t) n) != n)
                        return 1;
        }
}
