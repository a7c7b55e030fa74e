/* test_guard.c: unit tests of the per-source guard (rate limit, failures, delays, bans, sync, eviction) on a simulated clock. */
#include "guard/guard.h"

#include "unit.h"

#include <time.h>

static struct tp_addr A(const char *host, uint16_t port) {
	struct tp_addr a;
	int rc = tp_addr_from_host(&a, str_from_cstr(host), port);
	CHECK_INT(rc, 0);
	return a;
}

static struct guard *
make(unsigned rate, unsigned threshold, unsigned window, unsigned ban_time, unsigned slow_after, unsigned max_sources)
{
	struct guard_conf c = { rate, threshold, window, ban_time, slow_after, max_sources };
	struct guard *g = NULL;
	CHECK_INT(guard_new(&g, &c), 0);
	return g;
}

/* Burst of twice the rate, then the rate; an idle bucket refills, but not past the burst. */
static void t_rate(void)
{
	struct guard *g = make(10, 0, 0, 0, 0, 0);
	struct tp_addr s = A("192.0.2.1", 5060);
	uint64_t t = 1000000;
	for (int i = 0; i < 20; i++)
		CHECK_INT(guard_packet(g, &s, t, NULL), GUARD_PASS);
	CHECK_INT(guard_packet(g, &s, t, NULL), GUARD_LIMITED);
	/* 100 ms: one request's worth. */
	t += 100;
	CHECK_INT(guard_packet(g, &s, t, NULL), GUARD_PASS);
	CHECK_INT(guard_packet(g, &s, t, NULL), GUARD_LIMITED);
	/* 20 offered per second for 10 s: 10 per second go through. */
	int pass = 0;
	for (int i = 0; i < 200; i++) {
		t += 50;
		pass += guard_packet(g, &s, t, NULL) == GUARD_PASS;
	}
	CHECK_INT(pass, 100);
	/* Long idle: a full burst again, and no more. */
	t += 100000;
	pass = 0;
	for (int i = 0; i < 50; i++)
		pass += guard_packet(g, &s, t, NULL) == GUARD_PASS;
	CHECK_INT(pass, 20);
	CHECK_INT(guard_stats(g)->limited, 2 + 100 + 30);
	/* Another source has its own bucket. */
	struct tp_addr o = A("192.0.2.2", 5060);
	CHECK_INT(guard_packet(g, &o, t, NULL), GUARD_PASS);
	guard_free(g);

	/* rate 0: everything passes and nothing is stored. */
	g = make(0, 0, 0, 0, 0, 0);
	for (int i = 0; i < 1000; i++)
		CHECK_INT(guard_packet(g, &s, t, NULL), GUARD_PASS);
	CHECK_INT(guard_stats(g)->sources, 0);
	guard_free(g);
}

/* One log line per source per interval, carrying the drops since the previous one. */
static void t_log_once(void)
{
	struct guard *g = make(1, 0, 0, 0, 0, 0);
	struct tp_addr s = A("192.0.2.1", 1), o = A("2001:db8::7", 2);
	struct guard_drop d;
	uint64_t t = 5000;
	CHECK_INT(guard_packet(g, &s, t, &d), GUARD_PASS);
	CHECK(!d.log_now);
	CHECK_INT(guard_packet(g, &s, t, &d), GUARD_PASS);
	CHECK_INT(guard_packet(g, &s, t, &d), GUARD_LIMITED);
	CHECK(d.log_now);
	CHECK_INT(d.dropped, 0);
	int lines = 0;
	for (int i = 0; i < 99; i++) {
		CHECK_INT(guard_packet(g, &s, t + (uint64_t)i, &d), GUARD_LIMITED);
		lines += d.log_now;
	}
	CHECK_INT(lines, 0);
	/* The other source gets its own first line. */
	guard_packet(g, &o, t, &d);
	guard_packet(g, &o, t, &d);
	CHECK_INT(guard_packet(g, &o, t, &d), GUARD_LIMITED);
	CHECK(d.log_now);
	/* Still inside the interval at 9.999 s: silent (the bucket is empty: 1/s, each
	 * second's token spent at once below). */
	for (uint64_t k = 1000; k < GUARD_LOG_INTERVAL_MS; k += 1000) {
		CHECK_INT(guard_packet(g, &s, t + k, &d), GUARD_PASS);
		CHECK_INT(guard_packet(g, &s, t + k, &d), GUARD_LIMITED);
		CHECK(!d.log_now);
	}
	/* Next interval: one line, with the 99 + 9 drops since the first. */
	uint64_t n = t + GUARD_LOG_INTERVAL_MS;
	CHECK_INT(guard_packet(g, &s, n, &d), GUARD_PASS);
	CHECK_INT(guard_packet(g, &s, n, &d), GUARD_LIMITED);
	CHECK(d.log_now);
	CHECK_INT(d.dropped, 99 + 9);
	CHECK_INT(guard_packet(g, &s, n, &d), GUARD_LIMITED);
	CHECK(!d.log_now);
	guard_free(g);
}

/* Failures: answered at once up to slow_after, then later and later, and the source is
 * banned at the threshold; its datagrams are then dropped. */
static void t_failures_delay_ban(void)
{
	struct guard *g = make(0, 5, 60, 100, 2, 0);
	struct tp_addr s = A("198.51.100.9", 5060);
	struct guard_auth_out out;
	uint64_t t = 1000000;
	uint32_t want[] = { 0, 0, 500, 1000, 1500 };
	for (int i = 0; i < 5; i++) {
		guard_auth_failed(g, &s, STR("alice"), t + (uint64_t)i, &out);
		CHECK_INT(out.delay_ms, want[i]);
		CHECK_INT(out.src_failures, i + 1);
		CHECK_INT(out.user_failures, i + 1);
		CHECK_INT(out.banned, i == 4);
	}
	CHECK(guard_banned(g, &s, t + 10));
	struct guard_drop d;
	CHECK_INT(guard_packet(g, &s, t + 10, &d), GUARD_BANNED);
	CHECK(d.log_now);
	CHECK_INT(guard_packet(g, &s, t + 11, &d), GUARD_BANNED);
	CHECK(!d.log_now);
	const struct guard_stats *st = guard_stats(g);
	CHECK_INT(st->bans, 1);
	CHECK_INT(st->failures, 5);
	CHECK_INT(st->banned_drops, 2);
	CHECK_INT(st->banned, 1);
	/* Others pass. */
	struct tp_addr o = A("198.51.100.10", 5060);
	CHECK_INT(guard_packet(g, &o, t + 10, NULL), GUARD_PASS);
	guard_free(g);

	/* The delay stops growing at 5 s. */
	g = make(0, 0, 60, 100, 1, 0);
	for (int i = 0; i < 30; i++)
		guard_auth_failed(g, &s, STR("bob"), t, &out);
	CHECK_INT(out.delay_ms, GUARD_DELAY_MAX_MS);
	CHECK(!out.banned);
	CHECK(!guard_banned(g, &s, t));
	guard_free(g);

	/* slow_after 0: never a delay. */
	g = make(0, 0, 60, 100, 0, 0);
	for (int i = 0; i < 30; i++)
		guard_auth_failed(g, &s, STR("bob"), t, &out);
	CHECK_INT(out.delay_ms, 0);
	guard_free(g);
}

/* Failures age out of the window; a success clears the source's count. */
static void t_window_and_ok(void)
{
	struct guard *g = make(0, 5, 60, 100, 0, 0);
	struct tp_addr s = A("198.51.100.9", 5060);
	struct guard_auth_out out;
	uint64_t t = 0;
	for (int i = 0; i < 4; i++)
		guard_auth_failed(g, &s, STR("x"), t, &out);
	/* Half a window after the first window ended, half of those four still count. */
	guard_auth_failed(g, &s, STR("x"), t + 90000, &out);
	CHECK_INT(out.src_failures, 1 + 2);
	CHECK(!out.banned);
	/* Two windows on, nothing is left. */
	guard_auth_failed(g, &s, STR("x"), t + 300000, &out);
	CHECK_INT(out.src_failures, 1);
	CHECK_INT(out.user_failures, 1);

	/* Four failures, a success, four more: no ban; the user's count is kept. */
	t = 1000000;
	for (int i = 0; i < 4; i++)
		guard_auth_failed(g, &s, STR("y"), t, &out);
	guard_auth_ok(g, &s, STR("y"));
	for (int i = 0; i < 4; i++)
		guard_auth_failed(g, &s, STR("y"), t, &out);
	CHECK_INT(out.src_failures, 4);
	CHECK_INT(out.user_failures, 8);
	CHECK(!guard_banned(g, &s, t));
	guard_auth_failed(g, &s, STR("y"), t, &out);
	CHECK(out.banned);
	guard_free(g);
}

/* A ban ends at its time; unban lifts it at once. */
static void t_expiry_unban(void)
{
	struct guard *g = make(0, 0, 0, 0, 0, 0);
	struct tp_addr s = A("203.0.113.5", 5060);
	guard_ban(g, &s, 1100);
	CHECK(guard_banned(g, &s, 1099999));
	CHECK_INT(guard_packet(g, &s, 1099999, NULL), GUARD_BANNED);
	CHECK(!guard_banned(g, &s, 1100000));
	CHECK_INT(guard_packet(g, &s, 1100000, NULL), GUARD_PASS);
	CHECK_INT(guard_stats(g)->banned, 0);

	guard_ban(g, &s, 5000);
	CHECK(guard_banned(g, &s, 1000));
	CHECK(guard_unban(g, &s));
	CHECK(!guard_unban(g, &s));
	CHECK(!guard_banned(g, &s, 1000));
	CHECK_INT(guard_packet(g, &s, 1000, NULL), GUARD_PASS);
	CHECK_INT(guard_stats(g)->banned, 0);

	/* Rate off and a ban held: others pass and are not stored. */
	guard_ban(g, &s, 5000);
	struct tp_addr o = A("203.0.113.6", 5060);
	CHECK_INT(guard_packet(g, &o, 1000, NULL), GUARD_PASS);
	CHECK_INT(guard_stats(g)->sources, 1);

	/* A ban from a failure ends ban_time later. */
	guard_free(g);
	g = make(0, 1, 60, 100, 0, 0);
	struct guard_auth_out out;
	guard_auth_failed(g, &s, STR("u"), 50000, &out);
	CHECK(out.banned);
	CHECK_INT(out.until_s, 150);
	CHECK(guard_banned(g, &s, 149999));
	CHECK(!guard_banned(g, &s, 150000));
	guard_free(g);
}

static int count_bans(struct guard *g, uint64_t now)
{
	size_t cur = 0;
	struct tp_addr a;
	uint64_t until;
	int n = 0;
	while (guard_ban_next(g, &cur, now, &a, &until))
		n++;
	return n;
}

/* Sync with the store's table: rows keep bans, a deleted row lifts its ban, a local ban
 * gets GUARD_SYNC_GRACE syncs to reach the table, an ended row lifts. */
static void t_sync(void)
{
	struct guard *g = make(0, 1, 60, 600, 0, 0);
	struct tp_addr a = A("192.0.2.1", 0), b = A("2001:db8::1", 0), c = A("192.0.2.3", 7);
	uint64_t now = 1000000;
	guard_ban_sync_begin(g, now);
	guard_ban_sync_mark(g, &a, 2000);
	guard_ban_sync_mark(g, &b, 2000);
	CHECK_INT(guard_ban_sync_end(g), 0);
	CHECK(guard_banned(g, &a, now) && guard_banned(g, &b, now));
	CHECK_INT(count_bans(g, now), 2);
	CHECK_INT(guard_stats(g)->bans, 0);

	/* c fails a login: a local ban, not yet in the table. */
	struct guard_auth_out out;
	guard_auth_failed(g, &c, STR("u"), now, &out);
	CHECK(out.banned);

	/* b deleted from the table (parley ban del). */
	now += 5000;
	guard_ban_sync_begin(g, now);
	guard_ban_sync_mark(g, &a, 2000);
	CHECK_INT(guard_ban_sync_end(g), 1);
	CHECK(guard_banned(g, &a, now));
	CHECK(!guard_banned(g, &b, now));
	CHECK(guard_banned(g, &c, now));

	/* c reached the table: kept from then on. */
	now += 5000;
	guard_ban_sync_begin(g, now);
	guard_ban_sync_mark(g, &a, 2000);
	guard_ban_sync_mark(g, &c, now / 1000 + 600);
	CHECK_INT(guard_ban_sync_end(g), 0);
	CHECK(guard_banned(g, &c, now));

	/* An earlier row of a source banned again here neither lifts nor shortens the new
	 * ban, whether that row has ended or not. */
	struct tp_addr e = A("192.0.2.5", 0), f = A("192.0.2.6", 0);
	guard_ban(g, &e, now / 1000 + 600);
	guard_ban(g, &f, now / 1000 + 600);
	guard_ban_sync_begin(g, now);
	guard_ban_sync_mark(g, &a, 2000);
	guard_ban_sync_mark(g, &c, 2000);
	guard_ban_sync_mark(g, &e, 10);
	guard_ban_sync_mark(g, &f, now / 1000 + 5);
	guard_ban_sync_mark(g, &f, now / 1000 + 5);
	CHECK_INT(guard_ban_sync_end(g), 0);
	CHECK(guard_banned(g, &e, now + 60000));
	CHECK(guard_banned(g, &f, now + 60000));
	guard_unban(g, &e);
	guard_unban(g, &f);

	/* A local ban that never reaches the table is lifted at the second sync. */
	struct tp_addr d = A("192.0.2.4", 0);
	guard_ban(g, &d, 3000);
	for (int k = 1; k <= GUARD_SYNC_GRACE; k++) {
		now += 5000;
		guard_ban_sync_begin(g, now);
		guard_ban_sync_mark(g, &a, 2000);
		guard_ban_sync_mark(g, &c, 2000);
		CHECK_INT(guard_ban_sync_end(g), k == GUARD_SYNC_GRACE);
		CHECK_INT(guard_banned(g, &d, now), k < GUARD_SYNC_GRACE);
	}

	/* A row whose time is over lifts the ban; the iteration sees what is left. */
	now += 5000;
	guard_ban_sync_begin(g, now);
	guard_ban_sync_mark(g, &a, 10);
	guard_ban_sync_mark(g, &c, 2000);
	guard_ban_sync_end(g);
	CHECK(!guard_banned(g, &a, now));
	CHECK_INT(count_bans(g, now), 1);
	size_t cur = 0;
	struct tp_addr got;
	uint64_t until = 0;
	CHECK(guard_ban_next(g, &cur, now, &got, &until));
	CHECK(tp_addr_equal(&got, &c) == false); /* port 7 was dropped */
	char buf[64];
	CHECK(strcmp(tp_addr_str(&got, buf, sizeof(buf)), "192.0.2.3:0") == 0);
	CHECK_INT(until, 2000);
	CHECK(!guard_ban_next(g, &cur, now, &got, &until));
	CHECK_INT(guard_stats(g)->banned, 1);
	guard_free(g);
}

/* Failures for one user from many sources slow the answers but ban nobody. */
static void t_user_never_banned(void)
{
	struct guard *g = make(0, 3, 60, 600, 2, 0);
	struct guard_auth_out out;
	char host[32];
	for (int i = 0; i < 100; i++) {
		snprintf(host, sizeof(host), "10.0.%d.%d", i / 200, i % 200 + 1);
		struct tp_addr s = A(host, 5060);
		guard_auth_failed(g, &s, STR("alice"), 1000, &out);
		CHECK(!out.banned);
		CHECK_INT(out.src_failures, 1);
		CHECK_INT(out.user_failures, i + 1);
	}
	CHECK_INT(out.delay_ms, GUARD_DELAY_MAX_MS);
	CHECK_INT(guard_stats(g)->bans, 0);
	CHECK_INT(guard_stats(g)->banned, 0);
	/* Another user from a fresh source is answered at once. */
	struct tp_addr s = A("10.9.9.9", 5060);
	guard_auth_failed(g, &s, STR("bob"), 1000, &out);
	CHECK_INT(out.delay_ms, 0);
	CHECK_INT(out.user_failures, 1);
	guard_free(g);
}

/* A flood of new sources never grows the tables; bans and failure counts outlast plain
 * rate state; sweep frees what is over. */
static void t_eviction(void)
{
	struct guard *g = make(100, 3, 60, 600, 0, 64);
	size_t mem = guard_stats(g)->memory;
	CHECK(mem > 0);
	struct tp_addr banned = A("192.0.2.200", 1), failing = A("192.0.2.201", 1);
	guard_ban(g, &banned, 100000);
	struct guard_auth_out out;
	guard_auth_failed(g, &failing, STR("u"), 0, &out);
	char host[64];
	uint64_t t = 0;
	for (int i = 0; i < 100000; i++) {
		snprintf(host, sizeof(host), "2001:db8::%x:%x", i >> 16, i & 0xffff);
		struct tp_addr s = A(host, 5060);
		CHECK_INT(guard_packet(g, &s, t, NULL), GUARD_PASS);
		/* And a spray of made-up user names from one source. */
		snprintf(host, sizeof(host), "user%d", i);
		guard_auth_failed(g, &banned, str_from_cstr(host), t, &out);
		t = (uint64_t)i / 10;
	}
	const struct guard_stats *st = guard_stats(g);
	CHECK(st->sources <= 64);
	CHECK(st->users <= 64);
	CHECK_INT(st->memory, mem);
	CHECK(st->evicted > 0);
	CHECK(guard_banned(g, &banned, t));
	/* The failing source is still counted: two more failures ban it. */
	guard_auth_failed(g, &failing, STR("u"), t, &out);
	guard_auth_failed(g, &failing, STR("u"), t, &out);
	CHECK(out.banned);
	/* Long after, sweep frees everything but the bans. */
	t += 200000;
	guard_sweep(g, t);
	CHECK_INT(st->sources, 2);
	CHECK_INT(st->users, 0);
	guard_free(g);
}

/* Keys: the port is ignored, IPv4 and its mapped IPv6 form are one source, IPv6
 * addresses are told apart. */
static void t_keys(void)
{
	struct guard *g = make(1, 0, 0, 0, 0, 0);
	struct tp_addr p1 = A("192.0.2.1", 5060), p2 = A("192.0.2.1", 40000), m = A("::ffff:192.0.2.1", 5060),
		       o = A("192.0.2.11", 5060);
	CHECK_INT(guard_packet(g, &p1, 0, NULL), GUARD_PASS);
	CHECK_INT(guard_packet(g, &p2, 0, NULL), GUARD_PASS);
	CHECK_INT(guard_packet(g, &m, 0, NULL), GUARD_LIMITED);
	CHECK_INT(guard_packet(g, &o, 0, NULL), GUARD_PASS);
	struct tp_addr v1 = A("2001:db8::1", 5060), v1b = A("[2001:db8::1]", 9), v2 = A("2001:db8::2", 5060);
	CHECK_INT(guard_packet(g, &v1, 0, NULL), GUARD_PASS);
	CHECK_INT(guard_packet(g, &v1b, 0, NULL), GUARD_PASS);
	CHECK_INT(guard_packet(g, &v1, 0, NULL), GUARD_LIMITED);
	CHECK_INT(guard_packet(g, &v2, 0, NULL), GUARD_PASS);
	CHECK_INT(guard_stats(g)->sources, 4);

	guard_ban(g, &p1, 100);
	CHECK(guard_banned(g, &p2, 0));
	CHECK(guard_banned(g, &m, 0));
	CHECK(!guard_banned(g, &o, 0));
	guard_ban(g, &v1b, 100);
	CHECK(guard_banned(g, &v1, 0));
	CHECK(!guard_banned(g, &v2, 0));
	/* The iteration gives back IPv4 for the mapped key. */
	size_t cur = 0;
	struct tp_addr a;
	uint64_t until;
	int v4 = 0, v6 = 0;
	while (guard_ban_next(g, &cur, 0, &a, &until)) {
		v4 += a.ss.ss_family == AF_INET;
		v6 += a.ss.ss_family == AF_INET6;
		CHECK_INT(tp_addr_port(&a), 0);
	}
	CHECK_INT(v4, 1);
	CHECK_INT(v6, 1);
	guard_free(g);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Not a test of speed (that is never asserted): prints the cost of guard_packet. */
static void t_bench(void)
{
	enum { SOURCES = 10000, CALLS = 1000000 };
	static struct tp_addr src[SOURCES];
	char host[32];
	for (int i = 0; i < SOURCES; i++) {
		snprintf(host, sizeof(host), "10.%d.%d.%d", i >> 16, (i >> 8) & 0xff, i & 0xff);
		src[i] = A(host, 5060);
	}
	struct guard *g = make(200, 10, 60, 900, 3, 0);
	unsigned pass = 0;
	double t0 = now_ns();
	for (unsigned i = 0; i < CALLS; i++)
		pass += guard_packet(g, &src[(i * 7919u) % SOURCES], i / 100, NULL) == GUARD_PASS;
	double t1 = now_ns();
	printf("guard_packet: %.1f ns/call (1M calls, 10k sources, 64k slots, %u passed, %zu KiB)\n", (t1 - t0) / CALLS,
	       pass, guard_stats(g)->memory / 1024);
	CHECK(pass > 0);
	guard_free(g);

	g = make(0, 10, 60, 900, 3, 0);
	t0 = now_ns();
	for (unsigned i = 0; i < CALLS; i++)
		pass += guard_packet(g, &src[(i * 7919u) % SOURCES], i / 100, NULL) == GUARD_PASS;
	t1 = now_ns();
	printf("guard_packet, rate off and no bans: %.1f ns/call\n", (t1 - t0) / CALLS);
	guard_free(g);
}

static const struct unit_case cases[] = {
	{ "rate", t_rate },
	{ "log_once", t_log_once },
	{ "failures_delay_ban", t_failures_delay_ban },
	{ "window_and_ok", t_window_and_ok },
	{ "expiry_unban", t_expiry_unban },
	{ "sync", t_sync },
	{ "user_never_banned", t_user_never_banned },
	{ "eviction", t_eviction },
	{ "keys", t_keys },
	{ "bench", t_bench },
};
UNIT_MAIN(cases)
