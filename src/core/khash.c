/* khash.c: SipHash-2-4 through libsodium, keyed once per table. */
#include "core/khash.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

_Static_assert(crypto_shorthash_siphash24_KEYBYTES == 16, "a 128-bit key");
_Static_assert(crypto_shorthash_siphash24_BYTES == 8, "a 64-bit hash");

int khash_init(struct khash *k)
{
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(k->key, sizeof k->key);
	return 0;
}

uint64_t khash(const struct khash *k, const void *p, size_t len)
{
	unsigned char out[8];
	uint64_t h;
	crypto_shorthash_siphash24(out, p, len, k->key);
	memcpy(&h, out, sizeof h);
	return h;
}
