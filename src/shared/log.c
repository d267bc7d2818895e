/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging to stderr, with syslog priority prefixes that journald understands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
        int saved = errno;
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        /* journald reads "<N>" prefixes on its stream; a terminal should not see them. */
        if (prefix < 0)
                prefix = !!getenv("JOURNAL_STREAM");

        errno = error;
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);

        if (prefix)
                fprintf(stderr, "<%i>%s\n", level, buf);
        else
                fprintf(stderr, "%s\n", buf);

        errno = saved;
        return -error;
}
