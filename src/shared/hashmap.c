/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small open-addressing hash table (linear probing, backward-shift deletion, no tombstones). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

typedef struct Entry {
        const void *key;
        void *value;
        bool used;
} Entry;

struct Hashmap {
        hash_func_t hash;
        equal_func_t equal;
        Entry *entries;
        size_t n_buckets; /* a power of two, or 0 */
        size_t n_entries;
};

static uint64_t mix64(uint64_t x) {
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x *= UINT64_C(0xc4ceb9fe1a85ec53);
        x ^= x >> 33;
        return x;
}

uint64_t trivial_hash(const void *key) {
        return mix64((uint64_t) (uintptr_t) key);
}

bool trivial_equal(const void *a, const void *b) {
        return a == b;
}

uint64_t string_hash(const void *key) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (const unsigned char *p = key; *p; p++)
                h = (h ^ *p) * UINT64_C(0x100000001b3);
        return mix64(h);
}

bool string_equal(const void *a, const void *b) {
        return strcmp(a, b) == 0;
}

Hashmap *hashmap_new(hash_func_t hash, equal_func_t equal) {
        Hashmap *h = calloc(1, sizeof(Hashmap));

        if (!h)
                return NULL;
        h->hash = hash;
        h->equal = equal;
        return h;
}

Hashmap *hashmap_free(Hashmap *h) {
        if (h) {
                free(h->entries);
                free(h);
        }
        return NULL;
}

static size_t bucket_of(const Hashmap *h, const void *key) {
        return (size_t) h->hash(key) & (h->n_buckets - 1);
}

static int resize(Hashmap *h, size_t n_buckets) {
        Entry *old = h->entries;
        size_t n_old = h->n_buckets;

        h->entries = calloc(n_buckets, sizeof(Entry));
        if (!h->entries) {
                h->entries = old;
                return -ENOMEM;
        }
        h->n_buckets = n_buckets;
        for (size_t i = 0; i < n_old; i++) {
                size_t b;

                if (!old[i].used)
                        continue;
                for (b = bucket_of(h, old[i].key); h->entries[b].used; b = (b + 1) & (n_buckets - 1))
                        ;
                h->entries[b] = old[i];
        }
        free(old);
        return 0;
}

static Entry *find(const Hashmap *h, const void *key) {
        if (h->n_entries == 0)
                return NULL;
        for (size_t b = bucket_of(h, key);; b = (b + 1) & (h->n_buckets - 1)) {
                if (!h->entries[b].used)
                        return NULL;
                if (h->equal(h->entries[b].key, key))
                        return &h->entries[b];
        }
}

int hashmap_put(Hashmap *h, const void *key, void *value) {
        size_t b;
        int r;

        if (find(h, key))
                return -EEXIST;
        /* Keep the load factor at or below 1/2 so that probe sequences stay short. */
        if ((h->n_entries + 1) * 2 > h->n_buckets) {
                r = resize(h, h->n_buckets ? h->n_buckets * 2 : 16);
                if (r < 0)
                        return r;
        }
        for (b = bucket_of(h, key); h->entries[b].used; b = (b + 1) & (h->n_buckets - 1))
                ;
        h->entries[b] = (Entry) { .key = key, .value = value, .used = true };
        h->n_entries++;
        return 0;
}

void *hashmap_get(const Hashmap *h, const void *key) {
        Entry *e = find(h, key);

        return e ? e->value : NULL;
}

void *hashmap_remove(Hashmap *h, const void *key) {
        Entry *e = find(h, key);
        size_t mask = h->n_buckets - 1, hole, i;
        void *value;

        if (!e)
                return NULL;
        value = e->value;
        hole = (size_t) (e - h->entries);
        h->entries[hole].used = false;
        h->n_entries--;

        /* Shift later members of the probe run back into the hole, so lookups never need
         * tombstones. */
        for (i = (hole + 1) & mask; h->entries[i].used; i = (i + 1) & mask) {
                size_t home = bucket_of(h, h->entries[i].key);

                /* The entry may move to the hole only if the hole lies cyclically in [home, i). */
                if (((i - home) & mask) >= ((i - hole) & mask)) {
                        h->entries[hole] = h->entries[i];
                        h->entries[i].used = false;
                        hole = i;
                }
        }
        return value;
}

size_t hashmap_size(const Hashmap *h) {
        return h ? h->n_entries : 0;
}

bool hashmap_iterate(const Hashmap *h, size_t *state, void **value) {
        for (; h && *state < h->n_buckets; (*state)++)
                if (h->entries[*state].used) {
                        *value = h->entries[(*state)++].value;
                        return true;
                }
        return false;
}
