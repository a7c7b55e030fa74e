/* cdr.c: writes call records through the store and keeps answered calls by Call-ID until their BYE. */
#include "cdr/cdr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/khash.h"

/* A call that was answered and has not ended. A phone that vanishes never sends its BYE,
 * so a call is forgotten after this long rather than kept forever. */
#define CDR_MAX_LIFE_MS (24ull * 3600 * 1000)
#define CDR_MIN_BUCKETS 64
/* How long an ended call waits for the media relay's figures (cdr_media). */
#define CDR_FIGURES_WAIT_MS 10000
/* An attempt is final within the proxy's timers (timer C is minutes); a missed final
 * answer must not keep it listed for ever. */
#define CDR_RING_LIFE_MS (3600ull * 1000)

struct call {
	struct call *next; /* bucket chain; among the ringing, the next older */
	struct call *prev; /* among the ringing, the next newer */
	struct cdr *owner;
	struct timer life; /* forgets the call after CDR_MAX_LIFE_MS */
	uint64_t hash;     /* of call_id */
	uint64_t start_ms, answer_ms;
	uint64_t end_ms;                               /* set once ended, while the relay's figures are awaited */
	struct str id, call_id, caller, callee, media; /* views into text */
	char figures[160];                             /* the relay's figures (cdr_media), or empty */
	char text[];
};

struct cdr {
	struct store *st;
	struct timer_wheel *w;
	struct call **bucket;
	size_t nbucket; /* power of two */
	unsigned n;
	unsigned ended;  /* of the n: ended, waiting for the relay's figures */
	struct khash hk; /* answered calls by Call-ID, which the caller chooses */
	/* Attempts started and not yet final, by record id: a list, newest first, walked from
	 * the oldest at a final answer (attempts mostly end in the order they started: under
	 * load, hundreds ring at once, and a walk from the newest read most of them each
	 * time), and unlinked in place. */
	struct call *ringing, *oldest;
	unsigned nringing;
};

int cdr_new(struct cdr **cp, struct store *st, struct timer_wheel *w)
{
	struct cdr *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->bucket = calloc(CDR_MIN_BUCKETS, sizeof(*c->bucket));
	if (!c->bucket || khash_init(&c->hk) < 0) {
		free(c->bucket);
		free(c);
		return -ENOMEM;
	}
	c->nbucket = CDR_MIN_BUCKETS;
	c->st = st;
	c->w = w;
	*cp = c;
	return 0;
}

static void put_ended(struct cdr *c, const struct call *k, uint64_t end_ms);

void cdr_free(struct cdr *c)
{
	if (!c)
		return;
	while (c->ringing) {
		struct call *k = c->ringing;
		c->ringing = k->next;
		timer_stop(c->w, &k->life);
		free(k);
	}
	for (size_t i = 0; i < c->nbucket; i++) {
		struct call *k = c->bucket[i];
		while (k) {
			struct call *next = k->next;
			/* An ended call still waiting for the relay's figures has no row of its end
			 * yet: written now, without them, so that stopping the server loses none. */
			if (k->end_ms)
				put_ended(c, k, k->end_ms);
			timer_stop(c->w, &k->life);
			free(k);
			k = next;
		}
	}
	free(c->bucket);
	free(c);
}

unsigned cdr_active(const struct cdr *c)
{
	return c->n - c->ended;
}

static void put(struct cdr *c, const struct cdr_attempt *a, unsigned status, const char *reason, uint64_t answer_ms,
		uint64_t end_ms)
{
	if (!c->st)
		return;
	struct store_call rec = {
		.id = a->id,
		.call_id = a->call_id,
		.caller = a->caller,
		.callee = a->callee,
		.start_ms = a->start_ms,
		.answer_ms = answer_ms,
		.end_ms = end_ms,
		.status = status,
		.reason = str_from_cstr(reason),
		.duration_ms = answer_ms && end_ms > answer_ms ? end_ms - answer_ms : 0,
		.media = a->media,
	};
	/* A full queue loses this one update; the call itself is not affected. */
	store_call_put(c->st, &rec);
}

static struct call *copy_call(const struct cdr_attempt *a);

/* Takes k, which is ringing, off the list. */
static void ring_unlink(struct cdr *c, struct call *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		c->ringing = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		c->oldest = k->prev;
	c->nringing--;
	timer_stop(c->w, &k->life);
}

static void ring_expire(void *arg)
{
	struct call *k = arg;
	ring_unlink(k->owner, k);
	free(k);
}

void cdr_start(struct cdr *c, const struct cdr_attempt *a)
{
	put(c, a, 0, "", 0, 0);
	struct call *k = copy_call(a);
	if (!k)
		return; /* not listed as ringing; its record is written all the same */
	k->owner = c;
	k->prev = NULL;
	k->next = c->ringing;
	if (c->ringing)
		c->ringing->prev = k;
	else
		c->oldest = k;
	c->ringing = k;
	c->nringing++;
	timer_start(c->w, &k->life, CDR_RING_LIFE_MS, ring_expire, k);
}

void cdr_each_live(const struct cdr *c, int (*fn)(const struct cdr_live *l, void *arg), void *arg)
{
	for (const struct call *k = c->ringing; k; k = k->next) {
		struct cdr_live l = { k->call_id, k->caller, k->callee, k->start_ms, 0 };
		if (fn(&l, arg))
			return;
	}
	for (size_t i = 0; i < c->nbucket; i++)
		for (const struct call *k = c->bucket[i]; k; k = k->next) {
			if (k->end_ms)
				continue;
			struct cdr_live l = { k->call_id, k->caller, k->callee, k->start_ms, k->answer_ms };
			if (fn(&l, arg))
				return;
		}
}

/* Unlinks k from its bucket; it must be there. */
static void unlink_call(struct cdr *c, struct call *k)
{
	struct call **pp = &c->bucket[k->hash & (c->nbucket - 1)];
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	c->n--;
	if (k->end_ms)
		c->ended--;
	timer_stop(c->w, &k->life);
}

/* A call's life is over: after a day unended (nothing is written), or after the wait for
 * the relay's figures, which never came (its end is written without them). */
static void expire(void *arg)
{
	struct call *k = arg;
	if (k->end_ms)
		put_ended(k->owner, k, k->end_ms);
	unlink_call(k->owner, k);
	free(k);
}

/* Doubles the bucket array when chains grow past two entries on average. */
static void grow(struct cdr *c)
{
	if (c->n < 2 * c->nbucket)
		return;
	size_t nb = c->nbucket * 2;
	struct call **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->nbucket; i++) {
		struct call *k = c->bucket[i];
		while (k) {
			struct call *next = k->next;
			k->next = b[k->hash & (nb - 1)];
			b[k->hash & (nb - 1)] = k;
			k = next;
		}
	}
	free(c->bucket);
	c->bucket = b;
	c->nbucket = nb;
}

static struct str keep(char **pos, struct str s)
{
	struct str r = { *pos, s.l };
	if (s.l)
		memcpy(*pos, s.p, s.l);
	*pos += s.l;
	return r;
}

/* A call with a copy of a's text, or NULL. */
static struct call *copy_call(const struct cdr_attempt *a)
{
	size_t len = a->id.l + a->call_id.l + a->caller.l + a->callee.l + a->media.l;
	struct call *k = calloc(1, sizeof(*k) + len + 1);
	if (!k)
		return NULL;
	char *pos = k->text;
	k->id = keep(&pos, a->id);
	k->call_id = keep(&pos, a->call_id);
	k->caller = keep(&pos, a->caller);
	k->callee = keep(&pos, a->callee);
	k->media = keep(&pos, a->media);
	k->start_ms = a->start_ms;
	return k;
}

static void remember(struct cdr *c, const struct cdr_attempt *a, uint64_t answer_ms)
{
	struct call *k = copy_call(a);
	if (!k)
		return; /* the end of this call will not be recorded */
	k->owner = c;
	k->hash = khash(&c->hk, a->call_id.p, a->call_id.l);
	k->start_ms = a->start_ms;
	k->answer_ms = answer_ms;
	grow(c);
	struct call **head = &c->bucket[k->hash & (c->nbucket - 1)];
	k->next = *head;
	*head = k;
	c->n++;
	timer_start(c->w, &k->life, CDR_MAX_LIFE_MS, expire, k);
}

void cdr_final(struct cdr *c, const struct cdr_attempt *a, unsigned status, const char *reason, uint64_t answer_ms)
{
	bool ok = status >= 200 && status < 300;
	for (struct call *k = c->oldest; k; k = k->prev)
		if (str_eq(k->id, a->id)) {
			ring_unlink(c, k);
			free(k);
			break;
		}
	put(c, a, status, reason, ok ? answer_ms : 0, 0);
	if (ok)
		remember(c, a, answer_ms);
}

static struct call *find(struct cdr *c, struct str call_id)
{
	uint64_t h = khash(&c->hk, call_id.p, call_id.l);
	struct call *k = c->bucket[h & (c->nbucket - 1)];
	while (k && !(k->hash == h && str_eq(k->call_id, call_id)))
		k = k->next;
	return k;
}

/* Writes call k as ended at end_ms, with the relay's figures when they are known. */
static void put_ended(struct cdr *c, const struct call *k, uint64_t end_ms)
{
	struct cdr_attempt a = {
		.id = k->id,
		.call_id = k->call_id,
		.caller = k->caller,
		.callee = k->callee,
		.start_ms = k->start_ms,
		.media = k->figures[0] ? str_from_cstr(k->figures) : k->media,
	};
	put(c, &a, 200, "answered", k->answer_ms, end_ms);
}

bool cdr_end(struct cdr *c, struct str call_id, uint64_t end_ms, char *who, size_t n, uint64_t *dur_ms)
{
	struct call *k = find(c, call_id);
	if (!k || k->end_ms)
		return false;
	*dur_ms = end_ms > k->answer_ms ? end_ms - k->answer_ms : 0;
	/* "caller -> callee" without snprintf's ~1k instructions a call */
	const struct str part[3] = { k->caller, STR(" -> "), k->callee };
	str_join(who, n, part, 3);
	if (str_has_prefix_case(k->media, STR("relay")) && !k->figures[0]) {
		/* The relay's figures come with the answer to its delete, a moment later: the
		 * end is written once, with them (cdr_media), or without them when they do not
		 * come in time (expire) or the server stops first (cdr_free). Each write costs
		 * the store's thread as much as the rest of the call. */
		c->ended++;
		k->end_ms = end_ms;
		timer_stop(c->w, &k->life);
		timer_start(c->w, &k->life, CDR_FIGURES_WAIT_MS, expire, k);
		return true;
	}
	put_ended(c, k, end_ms);
	unlink_call(c, k);
	free(k);
	return true;
}

void cdr_media(struct cdr *c, struct str call_id, const char *figures)
{
	struct call *k = find(c, call_id);
	if (!k)
		return;
	size_t l = strnlen(figures, sizeof k->figures - 1);
	memcpy(k->figures, figures, l);
	k->figures[l] = '\0';
	if (!k->end_ms)
		return; /* written with the end */
	put_ended(c, k, k->end_ms);
	unlink_call(c, k);
	free(k);
}
