/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small open-addressing hash table from keys to pointers, for O(1) lookups on hot paths. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Hashmap Hashmap;
typedef uint64_t (*hash_func_t)(const void *key);
typedef bool (*equal_func_t)(const void *a, const void *b);

/* Keys that are integers stored in the pointer itself (UINT_TO_PTR) or NUL-terminated strings. */
uint64_t trivial_hash(const void *key);
bool trivial_equal(const void *a, const void *b);
uint64_t string_hash(const void *key);
bool string_equal(const void *a, const void *b);

#define UINT_TO_PTR(u) ((void *) (uintptr_t) (u))
#define PTR_TO_UINT(p) ((unsigned) (uintptr_t) (p))

Hashmap *hashmap_new(hash_func_t hash, equal_func_t equal);
/* Frees the table only, not keys or values. */
Hashmap *hashmap_free(Hashmap *h);
/* -EEXIST if the key is there already. The key is not copied: it must live as long as the entry. */
int hashmap_put(Hashmap *h, const void *key, void *value);
void *hashmap_get(const Hashmap *h, const void *key);
void *hashmap_remove(Hashmap *h, const void *key);
size_t hashmap_size(const Hashmap *h);
/* Iterates with *state starting at 0; the table must not change meanwhile. */
bool hashmap_iterate(const Hashmap *h, size_t *state, void **value);
