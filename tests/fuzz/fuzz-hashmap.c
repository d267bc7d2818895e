/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the hash table with sequences of put/get/remove/iterate checked against a plain array. */
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "hashmap.h"

#define N_KEYS 1024

static char string_keys[N_KEYS][8];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        for (unsigned i = 0; i < N_KEYS; i++)
                snprintf(string_keys[i], sizeof(string_keys[i]), "k%u", i);
        return 0;
}

/* Values are never NULL, so that a NULL from get/remove always means "absent". */
static void *value_of(unsigned k, unsigned generation) {
        return UINT_TO_PTR(((generation & 0xffff) << 16) | (k + 1));
}

static void check_all(Hashmap *h, void *const *model, bool strings) {
        static bool seen[N_KEYS];
        size_t n = 0, state = 0, iterated = 0;
        void *v;

        for (unsigned k = 0; k < N_KEYS; k++) {
                const void *key = strings ? (const void *) string_keys[k] : UINT_TO_PTR(k + 1);

                FUZZ_ASSERT(hashmap_get(h, key) == model[k]);
                if (model[k])
                        n++;
                seen[k] = false;
        }
        FUZZ_ASSERT(hashmap_size(h) == n);

        /* Iteration yields every value exactly once. */
        while (hashmap_iterate(h, &state, &v)) {
                unsigned k = (PTR_TO_UINT(v) & 0xffff) - 1;

                FUZZ_ASSERT(k < N_KEYS);
                FUZZ_ASSERT(model[k] == v);
                FUZZ_ASSERT(!seen[k]);
                seen[k] = true;
                iterated++;
        }
        FUZZ_ASSERT(iterated == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static void *model[N_KEYS];
        FuzzCursor c = { data, size };
        bool strings = fuzz_u8(&c) & 1;
        unsigned generation = 0;
        Hashmap *h;

        h = strings ? hashmap_new(string_hash, string_equal) : hashmap_new(trivial_hash, trivial_equal);
        FUZZ_ASSERT(h);
        for (unsigned k = 0; k < N_KEYS; k++)
                model[k] = NULL;

        while (!fuzz_done(&c)) {
                uint8_t op = fuzz_u8(&c);
                /* A small key range in the low bits keeps probe runs crowded; the op's high bits
                 * widen it, so the table also grows and shrinks through several sizes. */
                unsigned range = op & 0x80 ? N_KEYS : 32;
                unsigned k = fuzz_u16(&c) % range;
                const void *key = strings ? (const void *) string_keys[k] : UINT_TO_PTR(k + 1);
                void *v;
                int r;

                switch (op & 3) {
                case 0:
                case 1: /* put */
                        v = value_of(k, ++generation);
                        r = hashmap_put(h, key, v);
                        if (model[k])
                                FUZZ_ASSERT(r == -EEXIST);
                        else {
                                FUZZ_ASSERT(r == 0);
                                model[k] = v;
                        }
                        break;
                case 2: /* remove */
                        FUZZ_ASSERT(hashmap_remove(h, key) == model[k]);
                        model[k] = NULL;
                        FUZZ_ASSERT(!hashmap_get(h, key));
                        break;
                case 3:
                        if (op & 0x40)
                                check_all(h, model, strings);
                        else
                                FUZZ_ASSERT(hashmap_get(h, key) == model[k]);
                        break;
                }
        }
        check_all(h, model, strings);
        hashmap_free(h);
        return 0;
}
