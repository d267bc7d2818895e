/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every fuzz target shares: the libFuzzer entry points and a cursor over the input bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant the code under test must keep: abort, so that libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                       \
        do {                                                                                    \
                if (!(cond)) {                                                                  \
                        fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,    \
                                #cond);                                                         \
                        abort();                                                                \
                }                                                                               \
        } while (0)

/* The input read as a stream of choices; once it runs out every read yields zeros, so that any
 * input decodes to some complete sequence of operations. */
typedef struct FuzzCursor {
        const uint8_t *p;
        size_t n;
} FuzzCursor;

static inline bool fuzz_done(const FuzzCursor *c) {
        return c->n == 0;
}

static inline uint8_t fuzz_u8(FuzzCursor *c) {
        if (c->n == 0)
                return 0;
        c->n--;
        return *c->p++;
}

static inline uint16_t fuzz_u16(FuzzCursor *c) {
        return (uint16_t) (fuzz_u8(c) | fuzz_u8(c) << 8);
}

static inline uint64_t fuzz_u64(FuzzCursor *c) {
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v |= (uint64_t) fuzz_u8(c) << (8 * i);
        return v;
}

/* Up to 'max' raw bytes; returns how many were taken. */
static inline size_t fuzz_bytes(FuzzCursor *c, size_t max, const uint8_t **ret) {
        size_t k = max < c->n ? max : c->n;

        *ret = c->p;
        c->p += k;
        c->n -= k;
        return k;
}
