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

uint64_t khash2(const struct khash *k, struct str a, struct str b)
{
	/* Short keys (Call-ID + tag) are hashed from one buffer; longer ones in two parts. */
	unsigned char buf[512];
	if (a.l + b.l + 2 <= sizeof buf) {
		if (a.l)
			memcpy(buf, a.p, a.l);
		buf[a.l] = (unsigned char)(a.l & 0xff);
		buf[a.l + 1] = (unsigned char)(a.l >> 8);
		if (b.l)
			memcpy(buf + a.l + 2, b.p, b.l);
		return khash(k, buf, a.l + b.l + 2);
	}
	uint64_t ha = khash(k, a.p, a.l), hb = khash(k, b.p, b.l);
	ha ^= hb + 0x9e3779b97f4a7c15ull + (ha << 6) + (ha >> 2);
	return khash(k, &ha, sizeof ha);
}
