/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NULL-terminated string arrays. */
#pragma once

#include <stddef.h>

#include "macro.h"

char **strv_free(char **l);
size_t strv_length(char * const *l);
/* Takes ownership of 'value' on success. */
int strv_push(char ***l, size_t *n, char *value);
/* A copy of argv joined with spaces, for logs and messages; NULL on OOM. */
char *strv_join(char * const *l, const char *sep);

static inline void strv_freep(char ***l) {
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)
