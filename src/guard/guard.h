/* guard.h: per-source defences of a public server: request-rate limit, failed-login counting, slowing and bans. */
#ifndef PARLEY_GUARD_H
#define PARLEY_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/str.h"
#include "transport/transport.h"

/*
 * Why: a server on a public address is probed all day by password scanners and flooded by
 * broken or hostile peers. The guard keeps a little state per source IP address (the port
 * is ignored: a peer picks its ports freely) and per user name, and answers three
 * questions cheaply: may this datagram go on (rate limit, bans), how long should the
 * answer to this failed login wait, and is it time to ban the source.
 *
 * It knows no SIP: sources are socket addresses and users opaque bytes. An IPv4 address
 * and the same address mapped into IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports)
 * are one source.
 *
 * Memory is fixed at guard_new: tables of max_sources entries, set-associative (8 ways),
 * keyed by SipHash under a random per-instance key so that no peer can aim its addresses
 * or user names at one set. When a set is full, the least useful entry gives way: one
 * only rate-limited and idle longest first, then one counting failures, a ban last. No
 * call allocates.
 *
 * Time is the caller's: every call that needs it takes now_ms, so tests drive a simulated
 * clock. Bans are kept in seconds of that same clock (until_s); when bans are shared with
 * the store, pass the wall clock (clock_wall_ms) so that they mean the same after a
 * restart. A clock that steps back is read as no time having passed.
 *
 * Not thread-safe: one guard per event loop.
 */

/* Per-source drops are reported once per this interval (see struct guard_drop). */
#define GUARD_LOG_INTERVAL_MS 10000
/* Failed-login delay: this much per failure past slow_after, at most GUARD_DELAY_MAX_MS. */
#define GUARD_DELAY_STEP_MS 500
#define GUARD_DELAY_MAX_MS 5000
/* A ban made here that the store's table still lacks after this many syncs is taken as
 * deleted there (the store writes within a second; syncs run every few seconds). */
#define GUARD_SYNC_GRACE 2

struct guard_conf {
	unsigned rate_limit;    /* requests/s per source, burst twice that; 0 off (max 1000000) */
	unsigned ban_threshold; /* failures of one source within ban_window that ban it; 0 no bans */
	unsigned ban_window;    /* seconds failures are counted over (sliding); 0: 60 */
	unsigned ban_time;      /* seconds a ban lasts; 0 no bans */
	unsigned slow_after;    /* failures answered at once, later ones wait; 0 no delay */
	unsigned max_sources;   /* source entries (and as many user entries); 0: 65536 */
};

/* The defaults of the [security] section: 200/s, 10 failures in 60 s ban for 900 s, slow
 * after 3, 65536 sources. */
void guard_conf_default(struct guard_conf *conf /* OUT */);
/* The [security] keys of struct guard_conf, and their check: slow-after below
 * ban-threshold. */
extern const struct cfg_key guard_cfg_keys[];
extern const size_t guard_cfg_nkeys;
int guard_cfg_check(const void *base, char *err, size_t errlen);

struct guard;

/* Creates a guard with a fresh random hash key. Returns 0, -ENOMEM, or -EIO when libsodium
 * cannot start. */
int guard_new(struct guard **gp /* OUT */, const struct guard_conf *conf);
void guard_free(struct guard *g);

enum guard_verdict {
	GUARD_PASS = 0, /* go on */
	GUARD_LIMITED,  /* over its rate: drop */
	GUARD_BANNED,   /* source banned: drop */
};

/* What the caller should log about a dropped datagram: one line per source per interval,
 * not one per datagram. */
struct guard_drop {
	bool log_now;     /* first drop of this source in a new interval: log one line */
	uint32_t dropped; /* with log_now: drops of this source since its previous line
			   * (not counting this one); 0 for the first line */
};

/* Called for each datagram before it is parsed: one keyed hash and one set probe, and
 * none at all while rate limiting is off and nothing is banned. drop (may be NULL) is
 * filled for every call. Exempt (trusted) sources are the caller's business: do not call
 * for them. */
enum guard_verdict guard_packet(struct guard *g, const struct tp_addr *src, uint64_t now_ms,
				struct guard_drop *drop /* OUT */);

struct guard_auth_out {
	uint32_t delay_ms;      /* answer this much later (0: at once) */
	bool banned;            /* this failure banned the source ... */
	uint64_t until_s;       /* ... until then (now + ban_time): what the store records */
	unsigned src_failures;  /* failures of the source in the window, this one included */
	unsigned user_failures; /* failures for the user in the window, from all sources */
};

/* Counts a failed authentication of user (opaque bytes; may be empty) from src. The delay
 * grows with the larger of the two counts, so that a user attacked from many sources gets
 * slow answers too; only the source's count bans, as banning a user would let anyone lock
 * a user out. */
void guard_auth_failed(struct guard *g, const struct tp_addr *src, struct str user, uint64_t now_ms,
		       struct guard_auth_out *out /* OUT */);
/* A successful authentication: clears the source's failure count. The user's count is
 * left to age out: the real user succeeding must not reset an attacker's slowdown. */
void guard_auth_ok(struct guard *g, const struct tp_addr *src, struct str user);

/* Bans src until until_s (seconds of the caller's clock), replacing any ban it had. */
void guard_ban(struct guard *g, const struct tp_addr *src, uint64_t until_s);
/* Lifts src's ban; returns whether it had one. */
bool guard_unban(struct guard *g, const struct tp_addr *src);
bool guard_banned(const struct guard *g, const struct tp_addr *src, uint64_t now_ms);
/* Iterates the bans in force at now_ms: start with *cursor = 0, call until false. src gets
 * the address with port 0 (IPv4 for mapped addresses). Bans made or lifted during an
 * iteration may be seen or missed. */
bool guard_ban_next(const struct guard *g, size_t *cursor, uint64_t now_ms, struct tp_addr *src /* OUT */,
		    uint64_t *until_s /* OUT */);

/* Syncing with the store's bans table: begin, mark every row read, end. Bans the table
 * had at an earlier sync and no longer has are lifted (parley ban del); bans made here
 * that the table has not shown within GUARD_SYNC_GRACE syncs are lifted too; rows whose
 * time is over lift the ban. A row ending before such a not-yet-shown ban is an earlier
 * ban of the source, about to be overwritten: it is ignored. Returns from end the number
 * of bans in force that were lifted. */
void guard_ban_sync_begin(struct guard *g, uint64_t now_ms);
void guard_ban_sync_mark(struct guard *g, const struct tp_addr *src, uint64_t until_s);
unsigned guard_ban_sync_end(struct guard *g);

/* Frees entries with nothing left to remember (bucket refilled, failures and bans over):
 * call from a timer every few seconds so that the counts of guard_stats mean something.
 * Entries are reused without it too. Returns the number freed. */
size_t guard_sweep(struct guard *g, uint64_t now_ms);

struct guard_stats {
	uint64_t limited;      /* datagrams dropped over the rate */
	uint64_t banned_drops; /* datagrams dropped from banned sources */
	uint64_t bans;         /* bans made for failures (not guard_ban or syncs) */
	uint64_t failures;     /* failed authentications counted */
	uint64_t evicted;      /* entries given way to a new source or user */
	size_t sources;        /* source entries in use (until swept) */
	size_t users;          /* user entries in use */
	size_t banned;         /* sources holding a ban (some may have just ended) */
	size_t memory;         /* bytes held, fixed at guard_new */
};
const struct guard_stats *guard_stats(const struct guard *g);
/* The settings the guard runs with. */
const struct guard_conf *guard_conf_of(const struct guard *g);

#endif
