/* khash.h: a keyed hash (SipHash-2-4, per-process random key) for tables whose keys a peer chooses. */
#ifndef PARLEY_CORE_KHASH_H
#define PARLEY_CORE_KHASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* A hash key. A table hashing peer-chosen text (Call-IDs, branches, user names, addresses)
 * with an unkeyed function lets a peer send keys that all fall in one bucket; with a
 * random 128-bit key it cannot know which keys collide. */
struct khash {
	unsigned char key[16];
};

/* Fills k with a random key. Returns 0, or -EIO when libsodium cannot start. */
int khash_init(struct khash *k);
/* The 64-bit keyed hash of len bytes at p. */
uint64_t khash(const struct khash *k, const void *p, size_t len);

#endif
