/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which vsock peers may connect: the host only, unless more CIDs are allowed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse.h"
#include "vsock.h"

bool vsock_cid_allowed(uint32_t cid, const uint32_t *allow, size_t n) {
        if (n == 0)
                return cid == VSOCK_CID_HOST;
        for (size_t i = 0; i < n; i++)
                if (allow[i] == cid)
                        return true;
        return false;
}

int vsock_cid_list_parse(const char *s, uint32_t **list, size_t *n) {
        _cleanup_free_ char *copy = strdup(s);
        char *p, *save = NULL;

        if (!copy)
                return -ENOMEM;
        /* No empty entries: "", "1,", ",1" and "1,,2" are mistakes, not "nothing". */
        if (s[0] == 0 || s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
                return -EINVAL;
        for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
                uint32_t cid, *l;
                int r = parse_u32(p, &cid);

                /* VMADDR_CID_ANY (-1U) is no peer's address. */
                if (r < 0 || cid == UINT32_MAX)
                        return -EINVAL;
                l = realloc(*list, (*n + 1) * sizeof(uint32_t));
                if (!l)
                        return -ENOMEM;
                l[(*n)++] = cid;
                *list = l;
        }
        return 0;
}
