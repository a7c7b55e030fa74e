/* guard.c: fixed-size keyed tables of sources and users behind rate limits, login slowing and bans. */
#include "guard/guard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/khash.h"
#include "core/pool.h"

/* Eight ways: a set's tags fill half a cache line, and with a random key a set overflows
 * only when the whole table is nearly full. */
#define WAYS 8
#define DEFAULT_SOURCES 65536
#define DEFAULT_WINDOW_S 60
#define MAX_RATE 1000000u

enum {
	F_IVAL = 1, /* ival_ms holds the start of a drop-log interval */
	F_SEEN = 2, /* the ban was in the store's table at a sync */
	F_MARK = 4, /* the ban was in the table at the sync running now */
};

/* One source address: 64 bytes, one cache line. */
struct gsrc {
	uint8_t addr[16];     /* IPv6, or IPv4 mapped (::ffff:a.b.c.d) */
	uint64_t seen_ms;     /* last datagram: the token bucket's refill time, idle age */
	uint64_t ival_ms;     /* start of the drop-log interval (with F_IVAL) */
	uint64_t fail_ms;     /* start of the current failure window */
	uint32_t ban_until_s; /* 0: no ban; a ban that is over until cleared */
	uint32_t tokens;      /* thousandths of a request */
	uint32_t dropped;     /* drops since the last log line */
	uint16_t fail_cur;    /* failures in the current window */
	uint16_t fail_prev;   /* failures in the window before it */
	uint8_t flags;
	uint8_t misses; /* syncs that have not shown a ban made here */
};

/* One user name, known by its keyed hash alone: 64 bits under a secret key do not
 * collide by chance or by design, and no name needs to be stored. */
struct guser {
	uint64_t h;
	uint64_t fail_ms;
	uint16_t fail_cur, fail_prev;
};

struct guard {
	struct guard_conf conf;
	struct khash hk;  /* sources and user names are the peer's choice */
	uint64_t win_ms;  /* ban_window in ms */
	uint64_t burst_m; /* bucket size in thousandths: 2 * rate * 1000 */
	size_t mask;      /* sets - 1 */
	uint32_t *stag;   /* per source slot: 0 empty, else a tag from the hash */
	struct gsrc *src;
	uint32_t *utag;
	struct guser *usr;
	size_t stag_bytes, src_bytes, utag_bytes, usr_bytes;
	uint64_t sync_now_ms; /* now_ms of the sync running */
	uint64_t now_ms;      /* latest time any call gave: the age of guard_ban's entries */
	size_t last;          /* slot of the source of the previous datagram (checked by
				   its address before use): a burst from one peer costs one
				   keyed hash, not one per datagram */
	struct guard_stats st;
};

void guard_conf_default(struct guard_conf *conf)
{
	conf->rate_limit = 200;
	conf->ban_threshold = 10;
	conf->ban_window = 60;
	conf->ban_time = 900;
	conf->slow_after = 3;
	conf->max_sources = DEFAULT_SOURCES;
}

int guard_new(struct guard **gp, const struct guard_conf *conf)
{
	*gp = NULL;
	struct guard *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	if (khash_init(&g->hk) < 0) {
		free(g);
		return -EIO;
	}
	if (conf)
		g->conf = *conf;
	else
		guard_conf_default(&g->conf);
	if (g->conf.rate_limit > MAX_RATE)
		g->conf.rate_limit = MAX_RATE;
	if (!g->conf.ban_window)
		g->conf.ban_window = DEFAULT_WINDOW_S;
	if (!g->conf.max_sources)
		g->conf.max_sources = DEFAULT_SOURCES;
	g->win_ms = (uint64_t)g->conf.ban_window * 1000;
	g->burst_m = (uint64_t)g->conf.rate_limit * 2000;

	size_t sets = 1;
	while (sets * WAYS < g->conf.max_sources)
		sets <<= 1;
	g->mask = sets - 1;
	size_t slots = sets * WAYS;
	g->stag_bytes = g->utag_bytes = slots * sizeof(uint32_t);
	g->src_bytes = slots * sizeof(struct gsrc);
	g->usr_bytes = slots * sizeof(struct guser);
	g->stag = pool_big_calloc(g->stag_bytes);
	g->src = pool_big_calloc(g->src_bytes);
	g->utag = pool_big_calloc(g->utag_bytes);
	g->usr = pool_big_calloc(g->usr_bytes);
	if (!g->stag || !g->src || !g->utag || !g->usr) {
		guard_free(g);
		return -ENOMEM;
	}
	g->st.memory = sizeof(*g) + g->stag_bytes + g->src_bytes + g->utag_bytes + g->usr_bytes;
	*gp = g;
	return 0;
}

void guard_free(struct guard *g)
{
	if (!g)
		return;
	if (g->stag)
		pool_big_free(g->stag, g->stag_bytes);
	if (g->src)
		pool_big_free(g->src, g->src_bytes);
	if (g->utag)
		pool_big_free(g->utag, g->utag_bytes);
	if (g->usr)
		pool_big_free(g->usr, g->usr_bytes);
	free(g);
}

const struct guard_stats *guard_stats(const struct guard *g)
{
	return &g->st;
}

const struct guard_conf *guard_conf_of(const struct guard *g)
{
	return &g->conf;
}

/* ---- keys and probes ---- */

/* The 16-byte key of an address: IPv6 as is, IPv4 mapped, so that a dual-stack socket's
 * ::ffff:1.2.3.4 and 1.2.3.4 are one source. false for any other family. */
static bool addr_key(const struct tp_addr *a, uint8_t key[16])
{
	if (a->ss.ss_family == AF_INET6) {
		memcpy(key, &a->ss.in6.sin6_addr, 16);
		return true;
	}
	if (a->ss.ss_family == AF_INET) {
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a->ss.in.sin_addr, 4);
		return true;
	}
	return false;
}

static void key_addr(const uint8_t key[16], struct tp_addr *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	memset(a, 0, sizeof(*a));
	if (memcmp(key, mapped, sizeof(mapped)) == 0) {
		a->ss.in.sin_family = AF_INET;
		memcpy(&a->ss.in.sin_addr, key + 12, 4);
		a->len = sizeof(a->ss.in);
	} else {
		a->ss.in6.sin6_family = AF_INET6;
		memcpy(&a->ss.in6.sin6_addr, key, 16);
		a->len = sizeof(a->ss.in6);
	}
}

static uint64_t keyed_hash(const struct guard *g, const void *p, size_t n)
{
	return khash(&g->hk, p, n);
}

/* A slot's tag: the hash's high half, never 0 (which marks an empty slot). */
static inline uint32_t tag_of(uint64_t h)
{
	return (uint32_t)(h >> 32) | 1;
}

static inline size_t set_of(const struct guard *g, uint64_t h)
{
	return (size_t)(h & g->mask) * WAYS;
}

/* The slot holding key, or -1. */
static long src_find(const struct guard *g, const uint8_t key[16], uint64_t h)
{
	size_t base = set_of(g, h);
	uint32_t tag = tag_of(h);
	for (size_t i = base; i < base + WAYS; i++)
		if (g->stag[i] == tag && memcmp(g->src[i].addr, key, 16) == 0)
			return (long)i;
	return -1;
}

static inline bool ban_live(const struct gsrc *e, uint64_t now_ms)
{
	return e->ban_until_s && (uint64_t)e->ban_until_s * 1000 > now_ms;
}

static inline uint64_t since(uint64_t then, uint64_t now)
{
	return now > then ? now - then : 0;
}

/* Moves a failure window on to now: the counts of a window that ended become the previous
 * one's, older ones are forgotten. */
static void fail_roll(uint64_t *start, uint16_t *cur, uint16_t *prev, uint64_t now, uint64_t win)
{
	uint64_t d = since(*start, now);
	if (d >= 2 * win) {
		*cur = *prev = 0;
		*start = now;
	} else if (d >= win) {
		*prev = *cur;
		*cur = 0;
		*start += win;
	}
}

/* Failures over the last window: the current window's plus the share of the previous
 * one's that still overlaps a window ending now. Call after fail_roll. */
static unsigned fail_estimate(uint64_t start, uint16_t cur, uint16_t prev, uint64_t now, uint64_t win)
{
	uint64_t d = since(start, now);
	if (d >= win)
		return cur;
	return cur + (unsigned)((uint64_t)prev * (win - d) / win);
}

static bool fails_live(const struct guard *g, const struct gsrc *e, uint64_t now_ms)
{
	return (e->fail_cur || e->fail_prev) && since(e->fail_ms, now_ms) < 2 * g->win_ms;
}

/* An entry with nothing left to remember: no ban in force, no failure in the window, a
 * bucket that would be full again, no drop-log interval running. */
static bool src_dead(const struct guard *g, const struct gsrc *e, uint64_t now_ms)
{
	if (ban_live(e, now_ms) || fails_live(g, e, now_ms))
		return false;
	if ((e->flags & F_IVAL) && since(e->ival_ms, now_ms) < GUARD_LOG_INTERVAL_MS)
		return false;
	if (!g->conf.rate_limit)
		return true;
	uint64_t d = since(e->seen_ms, now_ms);
	return d >= g->burst_m || e->tokens + d * g->conf.rate_limit >= g->burst_m;
}

static void src_clear(struct guard *g, size_t i)
{
	if (g->src[i].ban_until_s)
		g->st.banned--;
	g->stag[i] = 0;
	g->st.sources--;
}

/* How little an entry is worth keeping: lower gives way first. Class in the top bits
 * (dead, rate state only, failures, ban in force), then age within the class. */
static uint64_t src_worth(const struct guard *g, const struct gsrc *e, uint64_t now_ms)
{
	if (src_dead(g, e, now_ms))
		return 0;
	if (ban_live(e, now_ms))
		return (3ull << 62) | e->ban_until_s;
	uint64_t age = e->seen_ms & ((1ull << 62) - 1);
	if (fails_live(g, e, now_ms))
		return (2ull << 62) | age;
	return (1ull << 62) | age;
}

/* The slot for key, made if missing: an empty way of its set, or the way least worth
 * keeping. Never fails. */
static struct gsrc *src_get(struct guard *g, const uint8_t key[16], uint64_t h, uint64_t now_ms)
{
	long found = src_find(g, key, h);
	if (found >= 0)
		return &g->src[found];
	size_t base = set_of(g, h), victim = base;
	uint64_t worst = UINT64_MAX;
	for (size_t i = base; i < base + WAYS; i++) {
		if (!g->stag[i]) {
			victim = i;
			worst = UINT64_MAX;
			break;
		}
		uint64_t w = src_worth(g, &g->src[i], now_ms);
		if (w < worst) {
			worst = w;
			victim = i;
		}
	}
	if (g->stag[victim]) {
		if (worst)
			g->st.evicted++;
		src_clear(g, victim);
	}
	struct gsrc *e = &g->src[victim];
	memset(e, 0, sizeof(*e));
	memcpy(e->addr, key, 16);
	e->seen_ms = now_ms;
	e->fail_ms = now_ms;
	e->tokens = (uint32_t)g->burst_m;
	g->stag[victim] = tag_of(h);
	g->st.sources++;
	return e;
}

static void set_ban(struct guard *g, struct gsrc *e, uint64_t until_s)
{
	if (!e->ban_until_s)
		g->st.banned++;
	/* Seconds since 1970 fit 32 bits until 2106; a later time is as good as forever. */
	uint32_t u = until_s > UINT32_MAX ? UINT32_MAX : (uint32_t)until_s;
	e->ban_until_s = u ? u : 1;
	/* The first datagram dropped under the ban gets its log line. */
	e->flags &= (uint8_t)~F_IVAL;
}

static void lift_ban(struct guard *g, struct gsrc *e)
{
	if (e->ban_until_s)
		g->st.banned--;
	e->ban_until_s = 0;
	e->flags &= (uint8_t) ~(F_SEEN | F_MARK);
	e->misses = 0;
}

/* ---- datagrams ---- */

static void note_drop(struct gsrc *e, uint64_t now_ms, struct guard_drop *drop)
{
	if (!(e->flags & F_IVAL) || since(e->ival_ms, now_ms) >= GUARD_LOG_INTERVAL_MS || now_ms < e->ival_ms) {
		if (drop) {
			drop->log_now = true;
			drop->dropped = e->dropped;
		}
		e->flags |= F_IVAL;
		e->ival_ms = now_ms;
		e->dropped = 0;
	} else if (e->dropped < UINT32_MAX) {
		e->dropped++;
	}
}

enum guard_verdict guard_packet(struct guard *g, const struct tp_addr *src, uint64_t now_ms, struct guard_drop *drop)
{
	uint8_t key[16];
	if (drop) {
		drop->log_now = false;
		drop->dropped = 0;
	}
	/* Most servers see no ban most of the time: then, without a rate, nothing to look up. */
	if (!g->conf.rate_limit && !g->st.banned)
		return GUARD_PASS;
	if (!addr_key(src, key))
		return GUARD_PASS;
	if (now_ms > g->now_ms)
		g->now_ms = now_ms;
	struct gsrc *e;
	if (g->last <= g->mask * WAYS + WAYS - 1 && g->stag[g->last] && memcmp(g->src[g->last].addr, key, 16) == 0) {
		e = &g->src[g->last];
	} else {
		uint64_t h = keyed_hash(g, key, sizeof(key));
		if (!g->conf.rate_limit) {
			long i = src_find(g, key, h);
			if (i < 0)
				return GUARD_PASS;
			e = &g->src[i];
		} else {
			e = src_get(g, key, h, now_ms);
		}
		g->last = (size_t)(e - g->src);
	}
	if (e->ban_until_s) {
		if (ban_live(e, now_ms)) {
			g->st.banned_drops++;
			note_drop(e, now_ms, drop);
			return GUARD_BANNED;
		}
		/* A ban made here ends here; one from the store ends there too. */
		lift_ban(g, e);
	}
	if (!g->conf.rate_limit)
		return GUARD_PASS;
	uint64_t t = e->tokens;
	if (now_ms > e->seen_ms) {
		uint64_t d = now_ms - e->seen_ms;
		/* d * rate overflows only after centuries; cap first anyway. */
		t = d >= g->burst_m ? g->burst_m : t + d * g->conf.rate_limit;
		if (t > g->burst_m)
			t = g->burst_m;
		e->seen_ms = now_ms;
	}
	if (t >= 1000) {
		e->tokens = (uint32_t)(t - 1000);
		return GUARD_PASS;
	}
	e->tokens = (uint32_t)t;
	g->st.limited++;
	note_drop(e, now_ms, drop);
	return GUARD_LIMITED;
}

/* ---- failed authentications ---- */

static struct guser *usr_get(struct guard *g, struct str user, uint64_t now_ms)
{
	uint64_t h = keyed_hash(g, user.p ? user.p : "", user.l);
	size_t base = set_of(g, h), victim = base;
	uint32_t tag = tag_of(h);
	uint64_t worst = UINT64_MAX;
	for (size_t i = base; i < base + WAYS; i++) {
		if (g->utag[i] == tag && g->usr[i].h == h)
			return &g->usr[i];
	}
	/* Give way: an empty slot, else the user with fewest failures, oldest first (a
	 * spray of made-up names one failure each does not push out a user under attack). */
	for (size_t i = base; i < base + WAYS; i++) {
		if (!g->utag[i]) {
			victim = i;
			worst = UINT64_MAX;
			break;
		}
		struct guser *u = &g->usr[i];
		fail_roll(&u->fail_ms, &u->fail_cur, &u->fail_prev, now_ms, g->win_ms);
		uint64_t w = ((uint64_t)fail_estimate(u->fail_ms, u->fail_cur, u->fail_prev, now_ms, g->win_ms) << 40) |
			     (u->fail_ms & ((1ull << 40) - 1));
		if (w < worst) {
			worst = w;
			victim = i;
		}
	}
	if (g->utag[victim]) {
		if (worst >> 40)
			g->st.evicted++;
	} else {
		g->st.users++;
	}
	struct guser *u = &g->usr[victim];
	u->h = h;
	u->fail_ms = now_ms;
	u->fail_cur = u->fail_prev = 0;
	g->utag[victim] = tag;
	return u;
}

static inline void inc16(uint16_t *v)
{
	if (*v < UINT16_MAX)
		(*v)++;
}

void guard_auth_failed(struct guard *g, const struct tp_addr *src, struct str user, uint64_t now_ms,
		       struct guard_auth_out *out)
{
	memset(out, 0, sizeof(*out));
	g->st.failures++;
	if (now_ms > g->now_ms)
		g->now_ms = now_ms;

	struct guser *u = usr_get(g, user, now_ms);
	fail_roll(&u->fail_ms, &u->fail_cur, &u->fail_prev, now_ms, g->win_ms);
	inc16(&u->fail_cur);
	out->user_failures = fail_estimate(u->fail_ms, u->fail_cur, u->fail_prev, now_ms, g->win_ms);

	uint8_t key[16];
	if (addr_key(src, key)) {
		struct gsrc *e = src_get(g, key, keyed_hash(g, key, sizeof(key)), now_ms);
		fail_roll(&e->fail_ms, &e->fail_cur, &e->fail_prev, now_ms, g->win_ms);
		inc16(&e->fail_cur);
		out->src_failures = fail_estimate(e->fail_ms, e->fail_cur, e->fail_prev, now_ms, g->win_ms);
		if (g->conf.ban_threshold && g->conf.ban_time && !ban_live(e, now_ms) &&
		    out->src_failures >= g->conf.ban_threshold) {
			out->until_s = now_ms / 1000 + g->conf.ban_time;
			set_ban(g, e, out->until_s);
			e->flags &= (uint8_t) ~(F_SEEN | F_MARK);
			e->misses = 0;
			/* Once the ban is over the source starts afresh. */
			e->fail_cur = e->fail_prev = 0;
			out->banned = true;
			g->st.bans++;
		}
	}

	unsigned n = out->src_failures > out->user_failures ? out->src_failures : out->user_failures;
	if (g->conf.slow_after && n > g->conf.slow_after) {
		uint64_t d = (uint64_t)(n - g->conf.slow_after) * GUARD_DELAY_STEP_MS;
		out->delay_ms = d > GUARD_DELAY_MAX_MS ? GUARD_DELAY_MAX_MS : (uint32_t)d;
	}
}

void guard_auth_ok(struct guard *g, const struct tp_addr *src, struct str user)
{
	uint8_t key[16];
	if (!addr_key(src, key))
		return;
	long i = src_find(g, key, keyed_hash(g, key, sizeof(key)));
	if (i >= 0)
		g->src[i].fail_cur = g->src[i].fail_prev = 0;
}

/* ---- bans ---- */

void guard_ban(struct guard *g, const struct tp_addr *src, uint64_t until_s)
{
	uint8_t key[16];
	if (!addr_key(src, key))
		return;
	/* No clock here: the latest time a call gave is near enough to pick a victim by. */
	uint64_t h = keyed_hash(g, key, sizeof(key));
	struct gsrc *e = src_get(g, key, h, g->now_ms);
	set_ban(g, e, until_s);
	e->flags &= (uint8_t) ~(F_SEEN | F_MARK);
	e->misses = 0;
}

bool guard_unban(struct guard *g, const struct tp_addr *src)
{
	uint8_t key[16];
	if (!addr_key(src, key))
		return false;
	long i = src_find(g, key, keyed_hash(g, key, sizeof(key)));
	if (i < 0 || !g->src[i].ban_until_s)
		return false;
	lift_ban(g, &g->src[i]);
	return true;
}

bool guard_banned(const struct guard *g, const struct tp_addr *src, uint64_t now_ms)
{
	uint8_t key[16];
	if (!g->st.banned || !addr_key(src, key))
		return false;
	long i = src_find(g, key, keyed_hash(g, key, sizeof(key)));
	return i >= 0 && ban_live(&g->src[i], now_ms);
}

bool guard_ban_next(const struct guard *g, size_t *cursor, uint64_t now_ms, struct tp_addr *src, uint64_t *until_s)
{
	size_t slots = (g->mask + 1) * WAYS;
	for (size_t i = *cursor; i < slots; i++) {
		if (g->stag[i] && ban_live(&g->src[i], now_ms)) {
			key_addr(g->src[i].addr, src);
			*until_s = g->src[i].ban_until_s;
			*cursor = i + 1;
			return true;
		}
	}
	*cursor = slots;
	return false;
}

void guard_ban_sync_begin(struct guard *g, uint64_t now_ms)
{
	g->sync_now_ms = now_ms;
	if (now_ms > g->now_ms)
		g->now_ms = now_ms;
}

void guard_ban_sync_mark(struct guard *g, const struct tp_addr *src, uint64_t until_s)
{
	uint8_t key[16];
	if (!addr_key(src, key))
		return;
	uint64_t h = keyed_hash(g, key, sizeof(key));
	long i = src_find(g, key, h);
	struct gsrc *e = i >= 0 ? &g->src[i] : NULL;
	/* A row ending before a ban made here that the table has not shown yet is an earlier
	 * ban of the same source, which the store is about to overwrite: it neither lifts nor
	 * shortens the new one (nor counts as showing it). */
	if (e && e->ban_until_s && !(e->flags & F_SEEN) && until_s < e->ban_until_s)
		return;
	if (until_s <= g->sync_now_ms / 1000) {
		/* A row whose time is over: a ban we had from the table is over too. */
		if (e && e->ban_until_s)
			lift_ban(g, e);
		return;
	}
	if (!e)
		e = src_get(g, key, h, g->sync_now_ms);
	set_ban(g, e, until_s);
	e->flags |= F_SEEN | F_MARK;
	e->misses = 0;
}

unsigned guard_ban_sync_end(struct guard *g)
{
	size_t slots = (g->mask + 1) * WAYS;
	unsigned lifted = 0;
	for (size_t i = 0; i < slots; i++) {
		struct gsrc *e = &g->src[i];
		if (!g->stag[i] || !e->ban_until_s)
			continue;
		if (e->flags & F_MARK) {
			e->flags &= (uint8_t)~F_MARK;
			continue;
		}
		if (!(e->flags & F_SEEN) && ++e->misses < GUARD_SYNC_GRACE)
			continue;
		if (ban_live(e, g->sync_now_ms))
			lifted++;
		lift_ban(g, e);
	}
	return lifted;
}

size_t guard_sweep(struct guard *g, uint64_t now_ms)
{
	size_t slots = (g->mask + 1) * WAYS, freed = 0;
	if (now_ms > g->now_ms)
		g->now_ms = now_ms;
	for (size_t i = 0; i < slots; i++) {
		if (g->stag[i] && src_dead(g, &g->src[i], now_ms)) {
			src_clear(g, i);
			freed++;
		}
		if (g->utag[i]) {
			struct guser *u = &g->usr[i];
			fail_roll(&u->fail_ms, &u->fail_cur, &u->fail_prev, now_ms, g->win_ms);
			if (!u->fail_cur && !u->fail_prev) {
				g->utag[i] = 0;
				g->st.users--;
				freed++;
			}
		}
	}
	return freed;
}
