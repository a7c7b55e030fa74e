/* ucache.c: a 4-way set-associative, time-limited read-through cache of users' HA1 hashes. */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>

#include "core/khash.h"
#include "core/pool.h"

#define KEY_MAX 70 /* user@domain longer than this is not cached */

/* A key may sit in any of the WAYS slots of its set: with one slot per key, two users
 * whose keys land on the same slot evicted each other on every registration and each
 * went to the database, about one user in seven at 10,000 users in 65,536 slots. */
#define WAYS 4

/* 128 bytes, two cache lines: the hashes are kept as bytes, not hex. */
struct slot {
	uint32_t fetched; /* unix s; 0: empty */
	uint32_t tag;     /* high bits of the key's hash: most mismatches end here */
	uint8_t keylen;
	uint8_t missing;   /* the store said there is no such user */
	char key[KEY_MAX]; /* user '\0' domain, domain lower-case as the store keeps it */
	uint8_t md5[STORE_HA1_MD5_LEN / 2];
	uint8_t sha256[STORE_HA1_SHA256_LEN / 2];
};

_Static_assert(sizeof(struct slot) == 128, "a slot is two cache lines");

struct store_ucache {
	struct store *st;
	unsigned mask;
	unsigned ttl;
	struct slot *slot;
	size_t bytes;    /* of slot[] */
	struct khash hk; /* user names are chosen by whoever sends credentials, before any check */
};

int store_ucache_new(struct store_ucache **cp, struct store *st, unsigned slots, unsigned ttl_s)
{
	unsigned n = WAYS;
	while (n < slots)
		n <<= 1;
	struct store_ucache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (khash_init(&c->hk) < 0) {
		free(c);
		return -EIO;
	}
	/* Mapped apart on huge pages (core/pool.h): every lookup lands on a random slot, and
	 * with 4 KiB pages that cost a TLB miss which, in a virtual machine, was 14% of a
	 * registration's CPU. A fresh mapping takes memory only where slots are used. */
	c->bytes = (size_t)n * sizeof(*c->slot);
	c->slot = pool_big_calloc(c->bytes);
	if (!c->slot) {
		free(c);
		return -ENOMEM;
	}
	c->st = st;
	c->mask = n - 1;
	c->ttl = ttl_s;
	*cp = c;
	return 0;
}

void store_ucache_free(struct store_ucache *c)
{
	if (!c)
		return;
	pool_big_free(c->slot, c->bytes);
	free(c);
}

/* Lower-case hex of exactly 2 * n digits into n bytes; false for anything else, which is
 * then not cached (the database's text is handed out as it is). */
static bool unhex(const char *h, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		char ch = h[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (v < 0)
			return false;
		if (i & 1)
			out[i / 2] = (uint8_t)(out[i / 2] | v);
		else
			out[i / 2] = (uint8_t)(v << 4);
	}
	return h[2 * n] == '\0';
}

static void tohex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The key: user, NUL, lower-cased domain. Returns its length, or 0 when too long. */
static size_t make_key(struct str user, struct str domain, char *k)
{
	if (user.l + 1 + domain.l > KEY_MAX)
		return 0;
	memcpy(k, user.p, user.l);
	k[user.l] = '\0';
	for (size_t i = 0; i < domain.l; i++) {
		char ch = domain.p[i];
		k[user.l + 1 + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	return user.l + 1 + domain.l;
}

static void fill(struct store_user *out, const struct slot *s, struct str user, struct str domain)
{
	out->user = user;
	out->domain = domain;
	tohex(s->md5, sizeof s->md5, out->ha1_md5);
	tohex(s->sha256, sizeof s->sha256, out->ha1_sha256);
}

int store_ucache_get(struct store_ucache *c, struct str user, struct str domain, uint32_t now, struct store_user *out)
{
	char k[KEY_MAX];
	size_t kl = make_key(user, domain, k);
	if (kl == 0)
		return store_user_get(c->st, user, domain, out);
	uint64_t h = khash(&c->hk, k, kl);
	uint32_t tag = (uint32_t)(h >> 32);
	struct slot *set = &c->slot[(h ^ (h >> 29)) & c->mask & ~(uint64_t)(WAYS - 1)];
	/* The slot to fill on a miss: this key's own (expired) slot, else an empty one, else
	 * the one fetched longest ago. */
	struct slot *victim = NULL;
	for (unsigned i = 0; i < WAYS; i++) {
		struct slot *s = &set[i];
		if (s->fetched && s->tag == tag && s->keylen == kl && memcmp(s->key, k, kl) == 0) {
			/* "No such user" is kept only briefly: a user just added must work at once. */
			unsigned ttl = s->missing ? (c->ttl < 2 ? c->ttl : 2) : c->ttl;
			if (now - s->fetched < ttl) {
				if (s->missing)
					return -ENOENT;
				fill(out, s, user, domain);
				return 0;
			}
			victim = s;
			break;
		}
		if (!victim || (victim->fetched && (!s->fetched || s->fetched < victim->fetched)))
			victim = s;
	}
	int err = store_user_get(c->st, user, domain, out);
	/* Only definite answers are kept: a locked database must be asked again. */
	struct slot *s = victim;
	if (err == -ENOENT || (err == 0 && unhex(out->ha1_md5, s->md5, sizeof s->md5) &&
			       unhex(out->ha1_sha256, s->sha256, sizeof s->sha256))) {
		s->fetched = now ? now : 1;
		s->tag = tag;
		s->keylen = (uint8_t)kl;
		s->missing = err == -ENOENT;
		memcpy(s->key, k, kl);
	} else if (err == 0) {
		s->fetched = 0; /* half-written hashes: the slot is empty again */
	}
	return err;
}

void store_ucache_forget(struct store_ucache *c, struct str user, struct str domain)
{
	char k[KEY_MAX];
	size_t kl = make_key(user, domain, k);
	if (kl == 0)
		return; /* never cached */
	uint64_t h = khash(&c->hk, k, kl);
	uint32_t tag = (uint32_t)(h >> 32);
	struct slot *set = &c->slot[(h ^ (h >> 29)) & c->mask & ~(uint64_t)(WAYS - 1)];
	for (unsigned i = 0; i < WAYS; i++) {
		struct slot *s = &set[i];
		if (s->fetched && s->tag == tag && s->keylen == kl && memcmp(s->key, k, kl) == 0)
			s->fetched = 0;
	}
}
