/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pseudo-terminal allocation. */
#pragma once

/* A new PTY pair with the given window size: the master non-blocking, both O_CLOEXEC and
 * neither becoming our controlling terminal. The slave is opened from the master (TIOCGPTPEER),
 * so no path lookup can be raced. */
int pty_open(unsigned rows, unsigned cols, int *ret_master, int *ret_slave);
int pty_resize(int master, unsigned rows, unsigned cols);
