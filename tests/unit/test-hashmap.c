/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the hash table against a plain array as the model, through growth and deletion. */
#include <errno.h>
#include <stdlib.h>

#include "hashmap.h"
#include "tap.h"

#define N 5000

int main(void) {
        Hashmap *h = hashmap_new(trivial_hash, trivial_equal);
        static bool present[N + 1];
        bool consistent = true;
        unsigned seed = 1;
        size_t count = 0, state = 0, seen = 0;
        void *v;

        CHECK(h != NULL);
        CHECK(hashmap_get(h, UINT_TO_PTR(1)) == NULL);
        CHECK(hashmap_remove(h, UINT_TO_PTR(1)) == NULL);

        /* Random puts and removes, checked against the model after every step. */
        for (int i = 0; i < 200000; i++) {
                unsigned k = (unsigned) (rand_r(&seed) % N) + 1;

                if (present[k]) {
                        consistent &= hashmap_remove(h, UINT_TO_PTR(k)) == UINT_TO_PTR(k * 7);
                        present[k] = false;
                        count--;
                } else {
                        consistent &= hashmap_put(h, UINT_TO_PTR(k), UINT_TO_PTR(k * 7)) == 0;
                        present[k] = true;
                        count++;
                }
                consistent &= hashmap_size(h) == count;
        }
        CHECK(consistent);

        consistent = true;
        for (unsigned k = 1; k <= N; k++)
                consistent &= hashmap_get(h, UINT_TO_PTR(k)) == (present[k] ? UINT_TO_PTR(k * 7) : NULL);
        CHECK(consistent);

        CHECK(hashmap_put(h, UINT_TO_PTR(N + 1), UINT_TO_PTR(1)) == 0);
        CHECK(hashmap_put(h, UINT_TO_PTR(N + 1), UINT_TO_PTR(2)) == -EEXIST);
        hashmap_remove(h, UINT_TO_PTR(N + 1));

        while (hashmap_iterate(h, &state, &v))
                seen++;
        CHECK(seen == count);
        hashmap_free(h);

        h = hashmap_new(string_hash, string_equal);
        CHECK(hashmap_put(h, ":1.42", UINT_TO_PTR(42)) == 0);
        CHECK(hashmap_get(h, ":1.42") == UINT_TO_PTR(42));
        CHECK(hashmap_get(h, ":1.4") == NULL);
        hashmap_free(h);
        return tap_done();
}
