/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging to stderr, with syslog priority prefixes that journald understands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_INFO;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_internal(int level, int error, const char *fmt, ...) {
        static int prefix = -1;
        int saved = errno, n;
        char buf[2048];
        size_t len = 0;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        /* journald reads "<N>" prefixes on its stream; a terminal should not see them. */
        if (prefix < 0)
                prefix = !!getenv("JOURNAL_STREAM");
        if (prefix)
                len = (size_t) snprintf(buf, sizeof buf, "<%i>", level);

        errno = error;
        va_start(ap, fmt);
        n = vsnprintf(buf + len, sizeof buf - len - 1, fmt, ap);
        va_end(ap);
        if (n > 0)
                len = MIN(len + (size_t) n, sizeof buf - 2);
        buf[len++] = '\n';

        /* One write per line, without stdio formatting the line a second time. */
        for (size_t done = 0; done < len;) {
                ssize_t k = write(STDERR_FILENO, buf + done, len - done);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                done += (size_t) k;
        }

        errno = saved;
        return -error;
}
