/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NULL-terminated string arrays. */
#include <stdlib.h>
#include <string.h>

#include "strv.h"

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char * const *l) {
        size_t n = 0;

        if (l)
                while (l[n])
                        n++;
        return n;
}

int strv_push(char ***l, size_t *n, char *value) {
        char **c;

        c = reallocarray(*l, *n + 2, sizeof(char *));
        if (!c)
                return -ENOMEM;
        c[(*n)++] = value;
        c[*n] = NULL;
        *l = c;
        return 0;
}

char *strv_join(char * const *l, const char *sep) {
        size_t len = 1, k = strlen(sep);
        char *s, *p;

        for (char * const *i = l; i && *i; i++)
                len += strlen(*i) + k;
        s = p = malloc(len);
        if (!s)
                return NULL;
        *p = 0;
        for (char * const *i = l; i && *i; i++) {
                if (i != l)
                        p = stpcpy(p, sep);
                p = stpcpy(p, *i);
        }
        return s;
}
