/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pseudo-terminal allocation. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "macro.h"
#include "pty.h"

int pty_open(unsigned rows, unsigned cols, int *ret_master, int *ret_slave) {
        _cleanup_close_ int master = -EBADF, slave = -EBADF;
        int r;

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (master < 0)
                return -errno;
        if (unlockpt(master) < 0)
                return -errno;
        slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return -errno;
        r = pty_resize(master, rows, cols);
        if (r < 0)
                return r;

        *ret_master = TAKE_FD(master);
        *ret_slave = TAKE_FD(slave);
        return 0;
}

int pty_resize(int master, unsigned rows, unsigned cols) {
        struct winsize ws = { .ws_row = (unsigned short) rows, .ws_col = (unsigned short) cols };

        /* The kernel sends SIGWINCH to the terminal's foreground process group when the size
         * changes. */
        if (ioctl(master, TIOCSWINSZ, &ws) < 0)
                return -errno;
        return 0;
}
