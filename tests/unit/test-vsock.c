/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the vsock peer rule: the host only by default, --vsock-allow-cid= to widen it. */
#include <errno.h>
#include <stdlib.h>

#include "vsock.h"
#include "tap.h"

int main(void) {
        uint32_t *l = NULL;
        size_t n = 0;

        /* Default: the host, and not the guest's own loopback CID 1 or any other guest. */
        CHECK(vsock_cid_allowed(2, NULL, 0));
        CHECK(!vsock_cid_allowed(1, NULL, 0));
        CHECK(!vsock_cid_allowed(0, NULL, 0));
        CHECK(!vsock_cid_allowed(3, NULL, 0));
        CHECK(!vsock_cid_allowed(UINT32_MAX, NULL, 0));

        CHECK(vsock_cid_list_parse("1", &l, &n) == 0 && n == 1 && l[0] == 1);
        CHECK(vsock_cid_allowed(1, l, n));
        /* An explicit list replaces the default: the host only if listed. */
        CHECK(!vsock_cid_allowed(2, l, n));
        CHECK(vsock_cid_list_parse("2,42", &l, &n) == 0 && n == 3 && l[1] == 2 && l[2] == 42);
        CHECK(vsock_cid_allowed(2, l, n) && vsock_cid_allowed(42, l, n) && !vsock_cid_allowed(3, l, n));
        free(l);
        l = NULL;
        n = 0;

        CHECK(vsock_cid_list_parse("", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse("1,", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse(",1", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse("1,,2", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse("x", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse("-1", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse("4294967295", &l, &n) == -EINVAL);
        CHECK(vsock_cid_list_parse("4294967296", &l, &n) == -EINVAL);
        free(l);
        return tap_done();
}
