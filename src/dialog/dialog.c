/* dialog.c: a bounded table of the dialogs Parley record-routed, keyed by Call-ID and caller tag. */
#include "dialog/dialog.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/khash.h"

#define ADDRS_PER_SIDE 6
#define KEY_MAX 255

struct dlg {
	struct dlg *hnext;       /* bucket chain */
	struct dlg *prev, *next; /* age list: least recently used first */
	uint64_t hash;
	uint32_t touched; /* last request or update, unix seconds */
	bool confirmed;
	uint8_t naddr[2];    /* addresses kept per side */
	uint8_t nextaddr[2]; /* the next slot to overwrite when a side is full */
	struct tp_addr addr[2][ADDRS_PER_SIDE];
	struct tp_addr flow[2]; /* where each side's messages last came from (len 0: none yet) */
	uint16_t cl, tl;        /* Call-ID and tag lengths */
	char key[];             /* Call-ID then tag */
};

struct dlg_table {
	struct dlg_conf conf;
	struct khash hk;
	struct dlg **bucket;
	uint64_t mask;
	unsigned count;
	struct dlg *oldest, *newest;
	struct dlg *last; /* the dialog last found: a message touches one dialog
			   * several times in a row (learn, confirm, find, allows),
			   * and a compare is cheaper than a keyed hash */
};

int dlg_table_new(struct dlg_table **tp, const struct dlg_conf *c)
{
	struct dlg_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->conf = *c;
	if (!t->conf.max)
		t->conf.max = 100000;
	if (!t->conf.idle_s)
		t->conf.idle_s = 12 * 3600;
	if (!t->conf.early_s)
		t->conf.early_s = 600;
	uint64_t n = 1024;
	while (n < t->conf.max)
		n <<= 1;
	t->bucket = calloc(n, sizeof(*t->bucket));
	if (!t->bucket || khash_init(&t->hk) < 0) {
		free(t->bucket);
		free(t);
		return -ENOMEM;
	}
	t->mask = n - 1;
	*tp = t;
	return 0;
}

static void unlink_age(struct dlg_table *t, struct dlg *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		t->oldest = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		t->newest = d->prev;
	d->prev = d->next = NULL;
}

static void append_age(struct dlg_table *t, struct dlg *d)
{
	d->prev = t->newest;
	d->next = NULL;
	if (t->newest)
		t->newest->next = d;
	else
		t->oldest = d;
	t->newest = d;
}

void dlg_table_free(struct dlg_table *t)
{
	if (!t)
		return;
	for (struct dlg *d = t->oldest, *n; d; d = n) {
		n = d->next;
		free(d);
	}
	free(t->bucket);
	free(t);
}

unsigned dlg_count(const struct dlg_table *t)
{
	return t->count;
}

unsigned dlg_capacity(const struct dlg_table *t)
{
	return t->conf.max;
}

static bool is_key(const struct dlg *d, struct str call_id, struct str tag)
{
	return d->cl == call_id.l && d->tl == tag.l && memcmp(d->key, call_id.p, call_id.l) == 0 &&
	       memcmp(d->key + d->cl, tag.p, tag.l) == 0;
}

static struct dlg **slot(struct dlg_table *t, struct str call_id, struct str tag, uint64_t *hash)
{
	/* Keyed by the Call-ID alone, so that a request is looked up with one hash whichever
	 * side sent it (dlg_find); forks of one call share a bucket and differ by tag. */
	uint64_t h = khash(&t->hk, call_id.p, call_id.l);
	*hash = h;
	struct dlg **pp = &t->bucket[h & t->mask];
	for (; *pp; pp = &(*pp)->hnext) {
		struct dlg *d = *pp;
		if (d->hash == h && is_key(d, call_id, tag))
			return pp;
	}
	return pp;
}

static struct dlg *get(struct dlg_table *t, struct str call_id, struct str tag)
{
	uint64_t h;
	if (!call_id.l || !tag.l || call_id.l > KEY_MAX || tag.l > KEY_MAX)
		return NULL;
	if (t->last && is_key(t->last, call_id, tag))
		return t->last;
	struct dlg *d = *slot(t, call_id, tag, &h);
	if (d)
		t->last = d;
	return d;
}

static void touch(struct dlg_table *t, struct dlg *d, uint32_t now)
{
	d->touched = now;
	if (t->newest != d) {
		unlink_age(t, d);
		append_age(t, d);
	}
}

int dlg_open(struct dlg_table *t, struct str call_id, struct str caller_tag, uint32_t now)
{
	if (!call_id.l || !caller_tag.l || call_id.l > KEY_MAX || caller_tag.l > KEY_MAX)
		return -EINVAL;
	uint64_t h;
	struct dlg **pp = slot(t, call_id, caller_tag, &h);
	if (*pp) {
		touch(t, *pp, now);
		return 0;
	}
	if (t->count >= t->conf.max)
		return -ENOSPC;
	/* Not zeroed whole: the address slots are read only up to naddr. */
	struct dlg *d = malloc(sizeof(*d) + call_id.l + caller_tag.l);
	if (!d)
		return -ENOMEM;
	memset(d, 0, offsetof(struct dlg, addr));
	d->hash = h;
	d->cl = (uint16_t)call_id.l;
	d->tl = (uint16_t)caller_tag.l;
	memcpy(d->key, call_id.p, call_id.l);
	memcpy(d->key + call_id.l, caller_tag.p, caller_tag.l);
	d->touched = now;
	d->hnext = NULL;
	*pp = d;
	append_age(t, d);
	t->count++;
	t->last = d;
	return 0;
}

void dlg_learn(struct dlg_table *t, struct str call_id, struct str caller_tag, enum dlg_side side,
	       const struct tp_addr *a)
{
	struct dlg *d = get(t, call_id, caller_tag);
	if (!d || !a || !a->len)
		return;
	for (unsigned i = 0; i < d->naddr[side]; i++)
		if (tp_addr_equal(&d->addr[side][i], a))
			return;
	if (d->naddr[side] < ADDRS_PER_SIDE) {
		d->addr[side][d->naddr[side]++] = *a;
		return;
	}
	/* Full: the oldest learned goes, except the first, which is where the dialog began. */
	unsigned k = 1 + d->nextaddr[side] % (ADDRS_PER_SIDE - 1);
	d->addr[side][k] = *a;
	d->nextaddr[side]++;
}

void dlg_set_flow(struct dlg_table *t, struct str call_id, struct str caller_tag, enum dlg_side side,
		  const struct tp_addr *a, bool early)
{
	struct dlg *d = get(t, call_id, caller_tag);
	if (!d || !a || !a->len)
		return;
	/* Once a 2xx chose the callee, a late provisional of another fork says nothing. */
	if (!early || !d->confirmed)
		d->flow[side] = *a;
	dlg_learn(t, call_id, caller_tag, side, a);
}

bool dlg_flow(struct dlg_table *t, const struct dlg_ref *ref, enum dlg_side side, struct tp_addr *out)
{
	struct dlg *d = get(t, ref->call_id, ref->caller_tag);
	if (!d || !d->flow[side].len)
		return false;
	*out = d->flow[side];
	return true;
}

void dlg_confirm(struct dlg_table *t, struct str call_id, struct str caller_tag, uint32_t now)
{
	struct dlg *d = get(t, call_id, caller_tag);
	if (!d)
		return;
	d->confirmed = true;
	touch(t, d, now);
}

static void drop(struct dlg_table *t, struct dlg **pp);

/* Unlinks and frees d, found by its stored hash (no hashing again). */
static void drop_dlg(struct dlg_table *t, struct dlg *d)
{
	struct dlg **pp = &t->bucket[d->hash & t->mask];
	while (*pp && *pp != d)
		pp = &(*pp)->hnext;
	if (*pp)
		drop(t, pp);
}

static void drop(struct dlg_table *t, struct dlg **pp)
{
	struct dlg *d = *pp;
	if (t->last == d)
		t->last = NULL;
	*pp = d->hnext;
	unlink_age(t, d);
	t->count--;
	free(d);
}

void dlg_close(struct dlg_table *t, struct str call_id, struct str caller_tag)
{
	struct dlg *d = get(t, call_id, caller_tag);
	if (d)
		drop_dlg(t, d);
}

bool dlg_find(struct dlg_table *t, struct str call_id, struct str from_tag, struct str to_tag, uint32_t now,
	      struct dlg_ref *out)
{
	struct dlg *d = NULL;
	enum dlg_side side = DLG_CALLER;
	if (!call_id.l || call_id.l > KEY_MAX)
		return false;
	if (t->last && is_key(t->last, call_id, from_tag)) {
		d = t->last;
	} else if (t->last && is_key(t->last, call_id, to_tag)) {
		d = t->last;
		side = DLG_CALLEE;
	} else {
		uint64_t h = khash(&t->hk, call_id.p, call_id.l);
		for (struct dlg *x = t->bucket[h & t->mask]; x && !d; x = x->hnext) {
			if (x->hash != h)
				continue;
			if (from_tag.l && is_key(x, call_id, from_tag))
				d = x;
			else if (to_tag.l && is_key(x, call_id, to_tag))
				d = x, side = DLG_CALLEE;
		}
	}
	if (!d)
		return false;
	t->last = d;
	touch(t, d, now);
	out->call_id = (struct str){ d->key, d->cl };
	out->caller_tag = (struct str){ d->key + d->cl, d->tl };
	out->from = side;
	return true;
}

bool dlg_allows(struct dlg_table *t, const struct dlg_ref *ref, const struct tp_addr *dst)
{
	struct dlg *d = get(t, ref->call_id, ref->caller_tag);
	if (!d || !dst)
		return false;
	enum dlg_side other = ref->from == DLG_CALLER ? DLG_CALLEE : DLG_CALLER;
	for (unsigned i = 0; i < d->naddr[other]; i++)
		if (tp_addr_equal(&d->addr[other][i], dst))
			return true;
	return false;
}

void dlg_sweep(struct dlg_table *t, uint32_t now, unsigned max)
{
	/* The age list is in order of last use; an entry younger than the shorter timeout
	 * ends the walk, since every entry after it is younger still. */
	uint32_t shortest = t->conf.early_s < t->conf.idle_s ? t->conf.early_s : t->conf.idle_s;
	struct dlg *d = t->oldest;
	while (d && max--) {
		struct dlg *next = d->next;
		uint32_t life = d->confirmed ? t->conf.idle_s : t->conf.early_s;
		if (now - d->touched >= life) {
			drop_dlg(t, d);
		} else if (now - d->touched < shortest) {
			break;
		}
		d = next;
	}
}
