/* capture.c: the per-call ring of recent messages, the live listeners and the [capture] settings. */
#include "capture/capture_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define NONE UINT32_MAX
/* One call keeps at most this many messages: an endless call (re-INVITEs, OPTIONS,
 * INFO) drops its oldest ones instead of pushing every other call out. */
#define PER_CALL_MSGS 200
/* The ring's records are this far apart at least: a call slot per that much ring. */
#define BYTES_PER_CALL 1024

/*
 * The ring is one arena written front to back and wrapping around: each message is a
 * record (header + the bytes as on the wire) placed at head; room is made by dropping the
 * record at tail. A record belongs to a call (a slot found by Call-ID) whose records are
 * chained oldest to newest. When the record at tail still belongs to a call, the whole
 * call goes: a half ladder is worth less than the next call's whole one. The records of
 * an evicted call stay in place until tail passes them, dead because their slot's gen has
 * moved on: dropping a call touches its slot, not the records scattered over the ring
 * (walking them was half of a message's capture time, each one a cache miss). So the
 * memory is the arena and the slots, allocated once; capturing a message is one copy.
 */
struct rec {
	uint32_t size;     /* the whole record, header included, a multiple of 8 */
	uint32_t call;     /* the owning call's slot; NONE: dead (or padding to the arena end) */
	uint32_t gen;      /* that slot's gen when written: another gen there now, and it is dead */
	uint32_t next;     /* the call's next record, or NONE */
	uint32_t text_len; /* bytes of text */
	uint64_t wall_ms;
	struct tp_addr local, remote;
	uint32_t cid_off; /* the Call-ID's offset in text */
	uint16_t cid_len;
	uint8_t out, proto;
	char text[];
};

struct capture_call {
	uint64_t hash;        /* of its Call-ID: a chain is walked without reading the ring */
	uint32_t first, last; /* its oldest and newest records */
	uint32_t next;        /* next slot in the bucket, or in the free list */
	uint32_t n;           /* records */
	uint32_t bytes;       /* their size */
	uint32_t gen;         /* counts the slot's calls: dropping one kills its records at once */
};

/* ---- settings --------------------------------------------------------------------------- */

const struct cfg_key capture_cfg_keys[] = {
	CFG_KEY_STR(struct capture_cfg, "capture-memory", "capture", "memory", memory, NULL, CFG_F_NONEMPTY),
	CFG_KEY_STR(struct capture_cfg, "hep", "capture", "hep", hep, "off", 0),
	CFG_KEY_UINT(struct capture_cfg, "hep-id", "capture", "hep-id", hep_id, 0, UINT32_MAX),
};
const size_t capture_cfg_nkeys = sizeof(capture_cfg_keys) / sizeof(capture_cfg_keys[0]);

void capture_cfg_defaults(struct capture_cfg *c)
{
	*c = (struct capture_cfg){ .memory = "auto", .hep_id = 2001 };
}

int capture_size_parse(const char *s, uint64_t *bytes)
{
	const char *p = s;
	uint64_t n = 0;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	unsigned shift = 0;
	switch (tolower((unsigned char)*p)) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	default:
		break;
	}
	if (shift) {
		p++;
		if (tolower((unsigned char)*p) == 'i')
			p++;
	}
	if (tolower((unsigned char)*p) == 'b')
		p++;
	if (*p || n > (UINT64_MAX >> shift))
		return -EINVAL;
	*bytes = n << shift;
	return 0;
}

/* "udp:HOST:PORT" (IPv6 in brackets) into a; numeric hosts only. */
int capture__hep_target(const char *s, struct tp_addr *a)
{
	if (strncasecmp(s, "udp:", 4) != 0)
		return -EINVAL;
	s += 4;
	const char *colon = *s == '[' ? strstr(s, "]:") : strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	if (*s == '[')
		colon++;
	else if (strchr(s, ':') != colon)
		return -EINVAL; /* a bare IPv6 address: it must be in brackets */
	uint64_t port;
	if (!str_to_u64(str_from_cstr(colon + 1), 65535, &port) || port == 0)
		return -EINVAL;
	struct str host = { s, (size_t)(colon - s) };
	return tp_addr_from_host(a, host, (uint16_t)port) < 0 ? -EINVAL : 0;
}

int capture_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct capture_cfg *c = base;
	uint64_t n;
	if (strcasecmp(c->memory, "auto") != 0 && (capture_size_parse(c->memory, &n) < 0 || n > (1ull << 30))) {
		snprintf(err, errlen,
			 "--capture-memory %s: expected auto, a size such as 8M, 512K or 0 (off), at most 1G",
			 c->memory);
		return -1;
	}
	struct tp_addr a;
	if (c->hep[0] && capture__hep_target(c->hep, &a) < 0) {
		snprintf(err, errlen, "--hep %s: expected udp:HOST:PORT with a numeric address", c->hep);
		return -1;
	}
	return 0;
}

/* ---- the ring --------------------------------------------------------------------------- */

static struct rec *rec_at(const struct capture *c, uint32_t off)
{
	return (struct rec *)(void *)(c->arena + off);
}

static struct str rec_call_id(const struct rec *r)
{
	return (struct str){ r->text + r->cid_off, r->cid_len };
}

static uint32_t bucket_of(const struct capture *c, uint64_t h)
{
	return (uint32_t)(h & (c->nbuckets - 1));
}

/* Whether live call i is cid's. The Call-ID's own bytes live in the ring, in each of the
 * call's records: read in its newest record, the one most likely still in the cache. */
static bool call_is(const struct capture *c, uint32_t i, struct str cid)
{
	return str_eq(rec_call_id(rec_at(c, c->calls[i].last)), cid);
}

/* The live call whose Call-ID hashes to h. A call is known by the keyed 64-bit hash of its
 * Call-ID alone, when a message is captured and when a ladder is read: comparing the bytes
 * kept in the call's newest record, far away in the ring, was a cache miss per captured
 * message. The key is the server's secret (a peer cannot aim at it) and two of the ring's
 * at most few thousand live calls agree with odds of about 1 in 10^15: the price would be
 * two calls' messages in one ladder. */
static uint32_t call_find(const struct capture *c, uint64_t h)
{
	for (uint32_t i = c->buckets[bucket_of(c, h)]; i != NONE; i = c->calls[i].next)
		if (c->calls[i].hash == h)
			return i;
	return NONE;
}

static bool rec_live(const struct capture *c, const struct rec *r)
{
	return r->call != NONE && c->calls[r->call].gen == r->gen;
}

/* Kills every record of call i (by its slot's gen) and frees the slot. */
static void call_drop(struct capture *c, uint32_t i)
{
	struct capture_call *k = &c->calls[i];
	k->gen++;
	c->st.ring_bytes -= k->bytes;
	if (c->last_call == i)
		c->last_call = NONE;
	uint32_t *pp = &c->buckets[bucket_of(c, k->hash)];
	while (*pp != i)
		pp = &c->calls[*pp].next;
	*pp = k->next;
	k->next = c->free_call;
	c->free_call = i;
	c->st.calls--;
}

/* Drops the record at tail (its whole call when it is live). */
static void pop_tail(struct capture *c)
{
	struct rec *r = rec_at(c, c->tail);
	if (rec_live(c, r)) {
		call_drop(c, r->call);
		c->st.calls_evicted++;
	}
	c->used -= r->size;
	c->tail += r->size;
	if (c->tail == c->size)
		c->tail = 0;
	if (c->used == 0)
		c->head = c->tail = 0;
}

/* Room for n contiguous bytes (n <= size): the offset where they go. */
static uint32_t make_room(struct capture *c, uint32_t n)
{
	for (;;) {
		if (c->used == 0)
			c->head = c->tail = 0;
		if (c->used == 0 || c->head > c->tail) {
			if (c->size - c->head >= n)
				return c->head;
			if (c->tail >= n) {
				/* The end of the arena is too short: padding up to it, then the start. */
				struct rec *pad = rec_at(c, c->head);
				pad->size = c->size - c->head;
				pad->call = NONE;
				c->used += pad->size;
				c->head = 0;
				return 0;
			}
		} else if (c->tail - c->head >= n) {
			return c->head;
		}
		pop_tail(c);
	}
}

/* Drops the oldest record of call i (it is over its limits). */
static void call_shift(struct capture *c, uint32_t i)
{
	struct capture_call *k = &c->calls[i];
	struct rec *r = rec_at(c, k->first);
	r->call = NONE;
	k->first = r->next;
	k->n--;
	k->bytes -= r->size;
	c->st.ring_bytes -= r->size;
}

static void ring_add(struct capture *c, const struct capture_msg *m, struct str cid)
{
	if (!c->size || !cid.l || cid.l > UINT16_MAX || m->text.l > UINT32_MAX / 2)
		return;
	/* The key is a view into the copy: a Call-ID that lies in text is found there, one
	 * handed in from elsewhere (what the server was handling when it sent this) is copied
	 * after the text. */
	bool inside = cid.p >= m->text.p && cid.p + cid.l <= m->text.p + m->text.l;
	uint64_t need = (sizeof(struct rec) + m->text.l + (inside ? 0 : cid.l) + 7) & ~(uint64_t)7;
	if (need > c->per_call_bytes)
		return;
	uint32_t n = (uint32_t)need;
	/* The last message's call first (its newest record just written: in the cache): no
	 * hash, no chain. */
	uint32_t i = c->last_call;
	uint64_t h;
	if (i != NONE && call_is(c, i, cid)) {
		h = c->calls[i].hash;
	} else {
		h = khash(&c->key, cid.p, cid.l);
		i = call_find(c, h);
	}
	uint32_t b = bucket_of(c, h);
	if (i != NONE) {
		while (c->calls[i].n && (c->calls[i].n >= PER_CALL_MSGS || c->calls[i].bytes + n > c->per_call_bytes))
			call_shift(c, i);
		if (!c->calls[i].n) {
			call_drop(c, i);
			i = NONE;
		}
	} else {
		while (c->free_call == NONE)
			pop_tail(c); /* every slot is taken: the oldest call goes */
	}
	uint64_t evicted = c->st.calls_evicted;
	uint32_t off = make_room(c, n);
	/* Making room may have evicted this very call (its slot is then free again): looked
	 * up again only when some call went. */
	if (i != NONE && c->st.calls_evicted != evicted)
		i = call_find(c, h);
	if (i == NONE) {
		i = c->free_call;
		c->free_call = c->calls[i].next;
		c->calls[i] = (struct capture_call){
			.hash = h, .first = NONE, .last = NONE, .next = c->buckets[b], .gen = c->calls[i].gen
		};
		c->buckets[b] = i;
		c->st.calls++;
	}
	struct rec *r = rec_at(c, off);
	*r = (struct rec){
		.size = n,
		.call = i,
		.gen = c->calls[i].gen,
		.next = NONE,
		.text_len = (uint32_t)m->text.l,
		.wall_ms = m->wall_ms,
		.local = m->local,
		.remote = m->remote,
		.cid_off = inside ? (uint32_t)(cid.p - m->text.p) : (uint32_t)m->text.l,
		.cid_len = (uint16_t)cid.l,
		.out = m->out,
		.proto = (uint8_t)m->proto,
	};
	memcpy(r->text, m->text.p, m->text.l);
	if (!inside)
		memcpy(r->text + m->text.l, cid.p, cid.l);
	c->used += n;
	c->head = off + n == c->size ? 0 : off + n;
	struct capture_call *k = &c->calls[i];
	if (k->last != NONE)
		rec_at(c, k->last)->next = off;
	else
		k->first = off;
	k->last = off;
	c->last_call = i;
	k->n++;
	k->bytes += n;
	c->st.ring_bytes += n;
	c->st.kept++;
}

/* ---- life ------------------------------------------------------------------------------- */

int capture_new(struct capture **cp, const struct capture_cfg *cfg, struct log *lg, char *err, size_t errlen)
{
	uint64_t size = 0;
	if (capture_size_parse(cfg->memory, &size) < 0 || size > (1ull << 30)) {
		snprintf(err, errlen, "bad --capture-memory '%s'", cfg->memory);
		return -EINVAL;
	}
	struct capture *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->lg = lg;
	c->hep_fd = -1;
	c->hep_id = cfg->hep_id;
	c->hep_lim.burst = 1; /* one line per burst of send errors, then a count */
	c->free_call = NONE;
	c->last_call = NONE;
	size &= ~(uint64_t)7;
	if (size) {
		if (khash_init(&c->key) < 0) {
			snprintf(err, errlen, "no randomness for the capture table");
			capture_free(c);
			return -EIO;
		}
		c->size = (uint32_t)size;
		c->ncalls = c->size / BYTES_PER_CALL + 16;
		c->nbuckets = 16;
		while (c->nbuckets < c->ncalls)
			c->nbuckets <<= 1;
		/* A quarter of the ring for one call, but always room for one largest message. */
		uint64_t pc = size / 4 < sizeof(struct rec) + TP_MAX_MSG + 8 ? size : size / 4;
		c->per_call_bytes = (uint32_t)pc;
		c->arena = malloc(c->size);
		c->calls = malloc((size_t)c->ncalls * sizeof *c->calls);
		c->buckets = malloc((size_t)c->nbuckets * sizeof *c->buckets);
		if (!c->arena || !c->calls || !c->buckets) {
			snprintf(err, errlen, "out of memory for a %s capture ring", cfg->memory);
			capture_free(c);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < c->nbuckets; i++)
			c->buckets[i] = NONE;
		for (uint32_t i = c->ncalls; i-- > 0;) {
			c->calls[i].gen = 0;
			c->calls[i].next = c->free_call;
			c->free_call = i;
		}
		c->st.ring_size = c->size;
	}
	if (cfg->hep[0]) {
		int rc = capture__hep_open(c, cfg->hep, err, errlen);
		if (rc < 0) {
			capture_free(c);
			return rc;
		}
	}
	*cp = c;
	return 0;
}

void capture_free(struct capture *c)
{
	if (!c)
		return;
	if (c->hep_fd >= 0)
		close(c->hep_fd);
	free(c->arena);
	free(c->calls);
	free(c->buckets);
	free(c->lis);
	free(c);
}

/* ---- capturing -------------------------------------------------------------------------- */

bool capture_on(const struct capture *c)
{
	return c && (c->size || c->hep_fd >= 0 || c->st.listeners);
}

/* "call-id" at q, any case (q has at least 7 bytes). */
static bool is_call_id(const char *q)
{
	static const char want[7] = { 'c', 'a', 'l', 'l', '-', 'i', 'd' };
	for (int i = 1; i < 7; i++)
		if ((char)(q[i] | (i == 4 ? 0 : 0x20)) != want[i])
			return false;
	return true;
}

struct str capture_find_call_id(struct str t)
{
	/* Header lines start after a line break; the header section ends at an empty line.
	 * "Call-ID" or the compact "i", any case, then optional blanks and a colon. */
	const char *p = t.p, *end = t.p + t.l;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return STR_NULL;
		p = nl + 1;
		if (p >= end || *p == '\r' || *p == '\n')
			return STR_NULL; /* the body starts */
		const char *q = p;
		/* The first letter decides for most lines: only "c..." lines are compared
		 * further (a call per line cost more than the rest of the capture). */
		char c0 = (char)(*q | 0x20);
		if (c0 == 'c' && (size_t)(end - q) > 7 && is_call_id(q))
			q += 7;
		else if (c0 == 'i')
			q++;
		else
			continue;
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		if (q >= end || *q != ':')
			continue;
		q++;
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		const char *e = q;
		while (e < end && *e != '\r' && *e != '\n')
			e++;
		while (e > q && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		return (struct str){ q, (size_t)(e - q) };
	}
	return STR_NULL;
}

bool capture_skips(struct capture *c, bool keep)
{
	if (!capture_on(c))
		return true;
	if (keep || c->hep_fd >= 0 || c->st.listeners)
		return false;
	c->st.captured++;
	return true;
}

void capture_add(struct capture *c, const struct capture_msg *m)
{
	if (!capture_on(c))
		return;
	struct capture_msg mm = *m;
	if (!mm.call_id.l)
		mm.call_id = capture_find_call_id(mm.text);
	c->st.captured++;
	if (!mm.transient)
		ring_add(c, &mm, mm.call_id);
	if (c->hep_fd >= 0)
		capture__hep_send(c, &mm);
	/* By index, the entry copied first: a listener may unlisten itself or another. */
	for (unsigned i = 0; i < c->nlis; i++) {
		struct capture_listener l = c->lis[i];
		if (l.used)
			l.fn(&mm, l.arg);
	}
}

int capture_each(const struct capture *c, struct str call_id, int (*fn)(const struct capture_msg *m, void *arg),
		 void *arg)
{
	if (!c || !c->size || !call_id.l)
		return 0;
	uint32_t i = call_find(c, khash(&c->key, call_id.p, call_id.l));
	if (i == NONE)
		return 0;
	for (uint32_t o = c->calls[i].first; o != NONE;) {
		const struct rec *r = rec_at(c, o);
		struct capture_msg m = {
			.wall_ms = r->wall_ms,
			.out = r->out,
			.proto = (enum tp_proto)r->proto,
			.local = r->local,
			.remote = r->remote,
			.call_id = rec_call_id(r),
			.text = { r->text, r->text_len },
		};
		int rc = fn(&m, arg);
		if (rc)
			return rc;
		o = r->next;
	}
	return 0;
}

int capture_listen(struct capture *c, void (*fn)(const struct capture_msg *m, void *arg), void *arg)
{
	unsigned i = 0;
	while (i < c->nlis && c->lis[i].used)
		i++;
	if (i == c->nlis) {
		if (c->nlis == c->lis_cap) {
			unsigned cap = c->lis_cap ? c->lis_cap * 2 : 8;
			struct capture_listener *n = realloc(c->lis, cap * sizeof *n);
			if (!n)
				return -ENOMEM;
			c->lis = n;
			c->lis_cap = cap;
		}
		c->nlis++;
	}
	c->lis[i] = (struct capture_listener){ .fn = fn, .arg = arg, .used = true };
	c->st.listeners++;
	return (int)i;
}

void capture_unlisten(struct capture *c, int handle)
{
	if (!c || handle < 0 || (unsigned)handle >= c->nlis || !c->lis[handle].used)
		return;
	c->lis[handle].used = false;
	c->st.listeners--;
	while (c->nlis && !c->lis[c->nlis - 1].used)
		c->nlis--;
}

const struct capture_stats *capture_stats(const struct capture *c)
{
	return &c->st;
}
