/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A minimal TAP producer for the pure C unit tests. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

static unsigned tap_n = 0, tap_failed = 0;

#define CHECK(cond)                                                                     \
        do {                                                                            \
                bool _ok = (cond);                                                      \
                tap_n++;                                                                \
                if (!_ok)                                                               \
                        tap_failed++;                                                   \
                printf("%sok %u - %s (%s:%d)\n", _ok ? "" : "not ", tap_n, #cond,       \
                       __FILE__, __LINE__);                                             \
        } while (0)

static inline int tap_done(void) {
        printf("1..%u\n", tap_n);
        return tap_failed ? 1 : 0;
}
