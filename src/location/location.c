/* location.c: bindings per AOR in an open-addressing hash table of AOR entries. */
#include "location/location.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/khash.h"
#include "core/pool.h"

/* Bindings and AOR entries come from slabs of their own, in size classes of 16 bytes:
 * no allocator header per binding, and the memory of a million bindings stays together
 * instead of being scattered between short-lived transactions, so that what a burst of
 * transactions frees can go back to the system. */
#define POOL_ALIGN 16
#define POOL_CLASSES 64             /* objects up to 1 KiB; larger ones use malloc */
#define POOL_SLAB (2 * 1024 * 1024) /* one huge page (core/pool.h: why) */

struct slab_free {
	struct slab_free *next;
};

struct slabs {
	struct slab_free *free[POOL_CLASSES];
	char *cur; /* bump region of the newest slab */
	size_t left;
	void **slabs; /* every slab, for freeing them all */
	size_t nslabs, capslabs;
};

static void *slabs_alloc(struct slabs *p, size_t size)
{
	size_t c = (size + POOL_ALIGN - 1) / POOL_ALIGN;
	if (c >= POOL_CLASSES)
		return malloc(size);
	if (p->free[c]) {
		struct slab_free *f = p->free[c];
		p->free[c] = f->next;
		return f;
	}
	size_t need = c * POOL_ALIGN;
	if (p->left < need) {
		if (p->nslabs == p->capslabs) {
			size_t cap = p->capslabs ? p->capslabs * 2 : 16;
			void **ns = realloc(p->slabs, cap * sizeof(*ns));
			if (!ns)
				return NULL;
			p->slabs = ns;
			p->capslabs = cap;
		}
		char *slab = pool_big_calloc(POOL_SLAB);
		if (!slab)
			return NULL;
		p->slabs[p->nslabs++] = slab;
		p->cur = slab;
		p->left = POOL_SLAB;
	}
	void *r = p->cur;
	p->cur += need;
	p->left -= need;
	return r;
}

static void slabs_free(struct slabs *p, void *ptr, size_t size)
{
	size_t c = (size + POOL_ALIGN - 1) / POOL_ALIGN;
	if (!ptr)
		return;
	if (c >= POOL_CLASSES) {
		free(ptr);
		return;
	}
	struct slab_free *f = ptr;
	f->next = p->free[c];
	p->free[c] = f;
}

static void slabs_destroy(struct slabs *p)
{
	for (size_t i = 0; i < p->nslabs; i++)
		pool_big_free(p->slabs[i], POOL_SLAB);
	free(p->slabs);
}

/* The table holds pointers to AOR entries; linear probing with tombstones, grown at 50%
 * load so that probes stay short at a million AORs. */
#define TOMB ((struct loc_aor *)(uintptr_t)1)

struct location {
	struct loc_aor **slot;
	size_t cap;  /* power of two */
	size_t used; /* live entries */
	size_t tombs;
	size_t bindings;
	size_t sweep_pos;
	struct slabs slabs;
	struct khash hk; /* AORs are looked up by peer-chosen Request-URIs */
};

static size_t binding_size(const struct loc_binding *b)
{
	size_t n = sizeof(*b);
	for (unsigned i = 0; i < 7; i++)
		n += b->len[i];
	return n;
}

static void free_binding(struct location *l, struct loc_binding *b)
{
	slabs_free(&l->slabs, b, binding_size(b));
}

static void free_aor_entry(struct location *l, struct loc_aor *a)
{
	slabs_free(&l->slabs, a, sizeof(*a) + a->keylen);
}

void loc_src_from_addr(struct loc_src *s, const struct tp_addr *a, enum tp_proto proto)
{
	memset(s, 0, sizeof(*s));
	s->proto = (uint8_t)proto;
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
		s->family = AF_INET6;
		s->port = ntohs(in6->sin6_port);
		memcpy(s->ip, &in6->sin6_addr, 16);
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
		s->family = AF_INET;
		s->port = ntohs(in->sin_port);
		memcpy(s->ip, &in->sin_addr, 4);
	}
}

void loc_src_to_addr(const struct loc_src *s, struct tp_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (s->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(s->port);
		memcpy(&in6->sin6_addr, s->ip, 16);
		a->len = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(s->port);
		memcpy(&in->sin_addr, s->ip, 4);
		a->len = sizeof(*in);
	}
}

struct str loc_b_field(const struct loc_binding *b, enum loc_field f)
{
	size_t off = 0;
	for (unsigned i = 0; i < (unsigned)f; i++)
		off += b->len[i];
	return (struct str){ b->data + off, b->len[f] };
}

int loc_new(struct location **lp)
{
	struct location *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	if (khash_init(&l->hk) < 0) {
		free(l);
		return -EIO;
	}
	l->cap = 1024;
	l->slot = pool_big_calloc(l->cap * sizeof(*l->slot));
	if (!l->slot) {
		free(l);
		return -ENOMEM;
	}
	*lp = l;
	return 0;
}

void loc_free(struct location *l)
{
	if (!l)
		return;
	/* Bindings and AOR entries all live in the pool's slabs (objects past the largest
	 * class are malloc'ed: free those one by one). */
	for (size_t i = 0; i < l->cap; i++) {
		struct loc_aor *a = l->slot[i];
		if (!a || a == TOMB)
			continue;
		for (struct loc_binding *b = a->first, *n; b; b = n) {
			n = b->next;
			free_binding(l, b);
		}
		free_aor_entry(l, a);
	}
	slabs_destroy(&l->slabs);
	pool_big_free(l->slot, l->cap * sizeof(*l->slot));
	free(l);
}

size_t loc_aor_count(const struct location *l)
{
	return l->used;
}

size_t loc_capacity(const struct location *l)
{
	return l->cap;
}

size_t loc_binding_count(const struct location *l)
{
	return l->bindings;
}

static uint32_t hash_key(const struct location *l, struct str k)
{
	uint64_t h = khash(&l->hk, k.p, k.l);
	return (uint32_t)(h ^ (h >> 32));
}

/* Returns the slot index holding key, or the index where it would be inserted (the first
 * tombstone met, else the empty slot ending the probe); *found says which. */
static size_t probe(const struct location *l, struct str key, uint32_t h, bool *found)
{
	size_t mask = l->cap - 1, i = h & mask, ins = (size_t)-1;
	for (;;) {
		struct loc_aor *a = l->slot[i];
		if (!a) {
			*found = false;
			return ins != (size_t)-1 ? ins : i;
		}
		if (a == TOMB) {
			if (ins == (size_t)-1)
				ins = i;
		} else if (a->hash == h && str_eq(loc_aor_key(a), key)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int grow(struct location *l)
{
	size_t ncap = l->used * 4 > l->cap ? l->cap * 2 : l->cap; /* rehash in place when tombs dominate */
	struct loc_aor **old = l->slot;
	size_t ocap = l->cap;
	struct loc_aor **ns = pool_big_calloc(ncap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	l->slot = ns;
	l->cap = ncap;
	l->tombs = 0;
	for (size_t i = 0; i < ocap; i++) {
		struct loc_aor *a = old[i];
		if (!a || a == TOMB)
			continue;
		size_t j = a->hash & (ncap - 1);
		while (ns[j])
			j = (j + 1) & (ncap - 1);
		ns[j] = a;
	}
	pool_big_free(old, ocap * sizeof(*old));
	l->sweep_pos = 0;
	return 0;
}

static void drop_aor(struct location *l, struct loc_aor *a);

struct loc_aor *loc_find(struct location *l, struct str aor)
{
	bool found;
	size_t i = probe(l, aor, hash_key(l, aor), &found);
	return found ? l->slot[i] : NULL;
}

struct loc_binding *loc_find_contact(struct loc_aor *a, struct str uri)
{
	for (struct loc_binding *b = a ? a->first : NULL; b; b = b->next)
		if (str_eq(loc_b_field(b, LOC_URI), uri))
			return b;
	return NULL;
}

bool loc_is_flow(const struct loc_binding *b)
{
	return b->len[LOC_INSTANCE] && b->len[LOC_REGID];
}

struct loc_binding *loc_find_binding(struct loc_aor *a, struct str uri, struct str instance, struct str regid)
{
	bool flow = instance.l && regid.l;
	for (struct loc_binding *b = a ? a->first : NULL; b; b = b->next) {
		if (loc_is_flow(b) != flow)
			continue;
		if (flow ? str_eq(loc_b_field(b, LOC_INSTANCE), instance) && str_eq(loc_b_field(b, LOC_REGID), regid)
			 : str_eq(loc_b_field(b, LOC_URI), uri))
			return b;
	}
	return NULL;
}

static struct loc_binding *make_binding(struct location *l, const struct loc_contact *c)
{
	size_t total = 0;
	for (unsigned i = 0; i < 7; i++) {
		if (c->field[i].l > UINT16_MAX)
			return NULL;
		total += c->field[i].l;
	}
	struct loc_binding *b = slabs_alloc(&l->slabs, sizeof(*b) + total);
	if (!b)
		return NULL;
	memset(b, 0, sizeof(*b));
	size_t off = 0;
	for (unsigned i = 0; i < 7; i++) {
		b->len[i] = (uint16_t)c->field[i].l;
		if (c->field[i].l)
			memcpy(b->data + off, c->field[i].p, c->field[i].l);
		off += c->field[i].l;
	}
	b->expires_at = c->expires_at;
	b->cseq = c->cseq;
	b->q = c->q;
	b->src = c->src;
	b->flags = c->flags;
	return b;
}

int loc_put(struct location *l, struct str aor, const struct loc_contact *c, struct loc_binding **out)
{
	if ((l->used + l->tombs + 1) * 2 > l->cap && grow(l) < 0)
		return -ENOMEM;
	uint32_t h = hash_key(l, aor);
	bool found;
	size_t i = probe(l, aor, h, &found);
	struct loc_aor *a;
	if (found) {
		a = l->slot[i];
	} else {
		if (aor.l > UINT16_MAX)
			return -EINVAL;
		a = slabs_alloc(&l->slabs, sizeof(*a) + aor.l);
		if (!a)
			return -ENOMEM;
		memset(a, 0, sizeof(*a));
		a->hash = h;
		a->keylen = (uint16_t)aor.l;
		memcpy(a->key, aor.p, aor.l);
		if (l->slot[i] == TOMB)
			l->tombs--;
		l->slot[i] = a;
		l->used++;
	}
	struct loc_binding *nb = make_binding(l, c);
	if (!nb) {
		if (!a->first)
			drop_aor(l, a);
		return -ENOMEM;
	}
	nb->aor = a;
	/* Replace in place to keep the order in which the phone's contacts were registered. */
	struct loc_binding *old = loc_find_binding(a, c->field[LOC_URI], c->field[LOC_INSTANCE], c->field[LOC_REGID]);
	struct loc_binding **pp = &a->first;
	while (*pp && *pp != old)
		pp = &(*pp)->next;
	if (*pp) {
		nb->next = old->next;
		*pp = nb;
		free_binding(l, old);
	} else {
		*pp = nb;
		a->count++;
		l->bindings++;
	}
	if (out)
		*out = nb;
	return 0;
}

static void drop_aor(struct location *l, struct loc_aor *a)
{
	bool found;
	size_t i = probe(l, loc_aor_key(a), a->hash, &found);
	if (found) {
		l->slot[i] = TOMB;
		l->tombs++;
		l->used--;
	}
	free_aor_entry(l, a);
}

void loc_del(struct location *l, struct loc_binding *b)
{
	if (!b)
		return;
	struct loc_aor *a = b->aor;
	struct loc_binding **pp = &a->first;
	while (*pp && *pp != b)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = b->next;
	free_binding(l, b);
	a->count--;
	l->bindings--;
	if (!a->first)
		drop_aor(l, a);
}

unsigned loc_sweep(struct location *l, uint32_t now, unsigned budget, loc_expired_h *h, void *arg)
{
	unsigned removed = 0;
	for (unsigned n = 0; n < budget && n < l->cap; n++) {
		size_t i = l->sweep_pos;
		l->sweep_pos = (l->sweep_pos + 1) & (l->cap - 1);
		struct loc_aor *a = l->slot[i];
		if (!a || a == TOMB)
			continue;
		struct loc_binding **pp = &a->first;
		while (*pp) {
			struct loc_binding *b = *pp;
			if (b->expires_at <= now) {
				if (h)
					h(b, arg);
				*pp = b->next;
				free_binding(l, b);
				a->count--;
				l->bindings--;
				removed++;
			} else {
				pp = &b->next;
			}
		}
		if (!a->first) {
			l->slot[i] = TOMB;
			l->tombs++;
			l->used--;
			free_aor_entry(l, a);
		}
	}
	return removed;
}

void loc_walk(struct location *l, size_t *cursor, unsigned budget, void (*h)(struct loc_binding *b, void *arg),
	      void *arg)
{
	for (unsigned n = 0; n < budget && n < l->cap; n++) {
		size_t i = *cursor & (l->cap - 1);
		*cursor = (i + 1) & (l->cap - 1);
		struct loc_aor *a = l->slot[i];
		if (!a || a == TOMB)
			continue;
		for (struct loc_binding *b = a->first; b; b = b->next)
			h(b, arg);
	}
}
