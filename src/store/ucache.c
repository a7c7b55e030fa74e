/* ucache.c: a 4-way set-associative, time-limited read-through cache of users' HA1 hashes. */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define KEY_MAX 128   /* user@domain longer than this is not cached */

/* A key may sit in any of the WAYS slots of its set: with one slot per key, two users
 * whose keys land on the same slot evicted each other on every registration and each
 * went to the database, about one user in seven at 10,000 users in 65,536 slots. */
#define WAYS 4

struct slot {
	uint32_t fetched;      /* unix s; 0: empty */
	uint32_t tag;          /* high bits of the key's hash: most mismatches end here */
	uint16_t userlen, keylen;
	int err;               /* 0 or the store's answer (-ENOENT for no such user) */
	char key[KEY_MAX];     /* user '\0' domain, domain lower-case as the store keeps it */
	char ha1_md5[STORE_HA1_MD5_LEN + 1];
	char ha1_sha256[STORE_HA1_SHA256_LEN + 1];
};

struct store_ucache {
	struct store *st;
	unsigned mask;
	unsigned ttl;
	struct slot *slot;
	size_t bytes;          /* of the mapping that holds slot[] */
};

int store_ucache_new(struct store_ucache **cp, struct store *st, unsigned slots, unsigned ttl_s)
{
	unsigned n = 1;
	while (n < slots)
		n <<= 1;
	struct store_ucache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* The slots are mapped rather than allocated: the pages of a fresh mapping take no
	 * memory until a slot in them is used. calloc, depending on what the heap held
	 * before, may instead carve the 16 MB from the top of the heap and clear (and so
	 * make resident) all of it at start-up. */
	c->bytes = (size_t)n * sizeof(*c->slot);
	void *m = mmap(NULL, c->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		free(c);
		return -ENOMEM;
	}
	c->slot = m;
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
	munmap(c->slot, c->bytes);
	free(c);
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
	memcpy(out->ha1_md5, s->ha1_md5, sizeof out->ha1_md5);
	memcpy(out->ha1_sha256, s->ha1_sha256, sizeof out->ha1_sha256);
}

int store_ucache_get(struct store_ucache *c, struct str user, struct str domain, uint32_t now,
		     struct store_user *out)
{
	char k[KEY_MAX];
	size_t kl = make_key(user, domain, k);
	if (kl == 0)
		return store_user_get(c->st, user, domain, out);
	uint64_t h = str_hash((struct str){ k, kl });
	uint32_t tag = (uint32_t)(h >> 32);
	struct slot *set = &c->slot[(h ^ (h >> 29)) & c->mask & ~(uint64_t)(WAYS - 1)];
	/* The slot to fill on a miss: this key's own (expired) slot, else an empty one, else
	 * the one fetched longest ago. */
	struct slot *victim = NULL;
	for (unsigned i = 0; i < WAYS; i++) {
		struct slot *s = &set[i];
		if (s->fetched && s->tag == tag && s->keylen == kl && memcmp(s->key, k, kl) == 0) {
			/* "No such user" is kept only briefly: a user just added must work at once. */
			unsigned ttl = s->err ? (c->ttl < 2 ? c->ttl : 2) : c->ttl;
			if (now - s->fetched < ttl) {
				if (s->err == 0)
					fill(out, s, user, domain);
				return s->err;
			}
			victim = s;
			break;
		}
		if (!victim || (victim->fetched && (!s->fetched || s->fetched < victim->fetched)))
			victim = s;
	}
	int err = store_user_get(c->st, user, domain, out);
	/* Only definite answers are kept: a locked database must be asked again. */
	if (err == 0 || err == -ENOENT) {
		struct slot *s = victim;
		s->fetched = now ? now : 1;
		s->tag = tag;
		s->keylen = (uint16_t)kl;
		s->userlen = (uint16_t)user.l;
		s->err = err;
		memcpy(s->key, k, kl);
		if (err == 0) {
			memcpy(s->ha1_md5, out->ha1_md5, sizeof s->ha1_md5);
			memcpy(s->ha1_sha256, out->ha1_sha256, sizeof s->ha1_sha256);
		}
	}
	return err;
}
