/* test_capture.c: the capture ring (eviction by call, per-call limits), listeners, sizes, Call-ID scan, HEP v3. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "unit.h"

/* capture_int.h's encoder, reached the way the module's own files reach it. */
size_t capture__hep_encode(const struct capture_msg *m, uint32_t agent, unsigned char *out, size_t cap);

static struct capture *ring(const char *mem)
{
	struct capture_cfg cfg;
	capture_cfg_defaults(&cfg);
	snprintf(cfg.memory, sizeof cfg.memory, "%s", mem);
	struct capture *c = NULL;
	char err[200];
	CHECK_INT(capture_new(&c, &cfg, NULL, err, sizeof err), 0);
	return c;
}

/* A message of call cid numbered seq, padded to about size bytes. */
static void add(struct capture *c, const char *cid, unsigned seq, size_t size, bool pass_cid)
{
	static char buf[70000];
	int n = snprintf(buf, sizeof buf, "INVITE sip:b@x SIP/2.0\r\nCall-ID: %s\r\nCSeq: %u INVITE\r\nX-Pad: ", cid,
			 seq);
	while ((size_t)n < size && (size_t)n < sizeof buf - 8)
		buf[n++] = 'p';
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	struct capture_msg m = { .wall_ms = 1000 + seq, .out = seq % 2, .text = { buf, (size_t)n } };
	tp_addr_from_host(&m.remote, STR("192.0.2.7"), 5070);
	tp_addr_from_host(&m.local, STR("192.0.2.1"), 5060);
	if (pass_cid)
		m.call_id = (struct str){ strstr(buf, cid), strlen(cid) };
	capture_add(c, &m);
}

struct seen {
	unsigned n;
	unsigned seq[300];
	bool bad;
	const char *cid;
};

static int collect(const struct capture_msg *m, void *arg)
{
	struct seen *s = arg;
	unsigned seq = 0;
	const char *p = memmem(m->text.p, m->text.l, "CSeq: ", 6);
	if (!p || !str_eq(m->call_id, str_from_cstr(s->cid)))
		s->bad = true;
	else
		seq = (unsigned)strtoul(p + 6, NULL, 10);
	if (m->wall_ms != 1000 + seq || m->out != (seq % 2) || tp_addr_port(&m->remote) != 5070)
		s->bad = true;
	if (s->n < 300)
		s->seq[s->n] = seq;
	s->n++;
	return 0;
}

static struct seen each(struct capture *c, const char *cid)
{
	struct seen s = { .cid = cid };
	capture_each(c, str_from_cstr(cid), collect, &s);
	return s;
}

static void test_size_parse(void)
{
	uint64_t b;
	CHECK(capture_size_parse("8M", &b) == 0 && b == 8u << 20);
	CHECK(capture_size_parse("8MB", &b) == 0 && b == 8u << 20);
	CHECK(capture_size_parse("64mib", &b) == 0 && b == 64u << 20);
	CHECK(capture_size_parse("512K", &b) == 0 && b == 512u << 10);
	CHECK(capture_size_parse("1G", &b) == 0 && b == 1u << 30);
	CHECK(capture_size_parse("4096", &b) == 0 && b == 4096);
	CHECK(capture_size_parse("0", &b) == 0 && b == 0);
	CHECK_INT(capture_size_parse("", &b), -EINVAL);
	CHECK_INT(capture_size_parse("M", &b), -EINVAL);
	CHECK_INT(capture_size_parse("8X", &b), -EINVAL);
	CHECK_INT(capture_size_parse("8 M", &b), -EINVAL);
	CHECK_INT(capture_size_parse("-1", &b), -EINVAL);
	CHECK_INT(capture_size_parse("99999999999999999999999", &b), -EINVAL);
}

static void test_cfg_check(void)
{
	struct capture_cfg c;
	char err[300];
	capture_cfg_defaults(&c);
	CHECK_INT(capture_cfg_check(&c, err, sizeof err), 0);
	strcpy(c.hep, "udp:127.0.0.1:9060");
	CHECK_INT(capture_cfg_check(&c, err, sizeof err), 0);
	strcpy(c.hep, "udp:[::1]:9060");
	CHECK_INT(capture_cfg_check(&c, err, sizeof err), 0);
	const char *bad[] = { "tcp:127.0.0.1:9060", "udp:127.0.0.1",       "udp:host.example:9060", "udp:127.0.0.1:0",
			      "udp:::1:9060",       "udp:127.0.0.1:99999", "127.0.0.1:9060" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		strcpy(c.hep, bad[i]);
		CHECK_INT(capture_cfg_check(&c, err, sizeof err), -1);
		CHECK(strstr(err, "--hep") != NULL);
	}
	c.hep[0] = '\0';
	strcpy(c.memory, "lots");
	CHECK_INT(capture_cfg_check(&c, err, sizeof err), -1);
	CHECK(strstr(err, "--capture-memory lots") != NULL);
	strcpy(c.memory, "2G");
	CHECK_INT(capture_cfg_check(&c, err, sizeof err), -1);
}

static void test_find_call_id(void)
{
	CHECK_STR(capture_find_call_id(STR("INVITE x SIP/2.0\r\nVia: a\r\nCall-ID: abc@h\r\n\r\n")), "abc@h");
	CHECK_STR(capture_find_call_id(STR("SIP/2.0 200 OK\r\ncall-id :  x1 \r\n\r\n")), "x1");
	CHECK_STR(capture_find_call_id(STR("BYE x SIP/2.0\r\nv: a\r\ni:compact\r\n\r\n")), "compact");
	CHECK_STR(capture_find_call_id(STR("BYE x SIP/2.0\nI: lf-only\n\n")), "lf-only");
	/* In the body, or a header that only starts like it: not the Call-ID. */
	CHECK_STR(capture_find_call_id(STR("BYE x SIP/2.0\r\nIdentity: z\r\n\r\nCall-ID: body\r\n")), "");
	CHECK_STR(capture_find_call_id(STR("BYE x SIP/2.0\r\nCall-IDx: z\r\n")), "");
	CHECK_STR(capture_find_call_id(STR("BYE x SIP/2.0\r\nCall-ID: cut")), "cut");
	CHECK_STR(capture_find_call_id(STR("")), "");
	CHECK_STR(capture_find_call_id(STR("Call-ID: first-line-is-not-a-header\r\n")), "");
}

static void test_ring_basic(void)
{
	struct capture *c = ring("1M");
	CHECK(capture_on(c));
	for (unsigned i = 0; i < 7; i++)
		add(c, "call-a", i, 300, i % 2);
	add(c, "call-b", 0, 300, true);
	struct seen s = each(c, "call-a");
	CHECK_INT(s.n, 7);
	CHECK(!s.bad);
	for (unsigned i = 0; i < s.n; i++)
		CHECK_INT(s.seq[i], i);
	CHECK_INT(each(c, "call-b").n, 1);
	CHECK_INT(each(c, "call-c").n, 0);
	const struct capture_stats *st = capture_stats(c);
	CHECK_INT(st->captured, 8);
	CHECK_INT(st->kept, 8);
	CHECK_INT(st->calls, 2);
	CHECK(st->ring_bytes > 8 * 300 && st->ring_bytes <= st->ring_size);
	/* A message without a Call-ID is captured (listeners, HEP) but not kept. */
	struct capture_msg m = { .text = STR("OPTIONS x SIP/2.0\r\n\r\n") };
	capture_add(c, &m);
	CHECK_INT(st->captured, 9);
	CHECK_INT(st->kept, 8);
	capture_free(c);
}

/* Oldest calls go whole; what is kept of any call is all of it, in order. */
static void test_ring_evicts_calls(void)
{
	struct capture *c = ring("64K");
	char cid[32];
	for (unsigned k = 0; k < 200; k++) {
		snprintf(cid, sizeof cid, "call-%u", k);
		for (unsigned i = 0; i < 6; i++)
			add(c, cid, i, 200 + (k * 37 + i * 101) % 900, true);
	}
	const struct capture_stats *st = capture_stats(c);
	CHECK(st->calls_evicted > 100);
	CHECK(st->ring_bytes <= 64 * 1024);
	CHECK(st->calls > 5);
	unsigned kept = 0;
	bool gap = false;
	for (unsigned k = 0; k < 200; k++) {
		snprintf(cid, sizeof cid, "call-%u", k);
		struct seen s = each(c, cid);
		CHECK(!s.bad);
		if (s.n) {
			kept++;
			if (s.n != 6)
				CHECK_INT(s.n, 6);
		} else if (kept) {
			gap = true; /* an older call kept while a newer one is gone */
		}
	}
	CHECK(!gap);
	CHECK_INT(kept, st->calls);
	/* The newest call is always there. */
	CHECK_INT(each(c, "call-199").n, 6);
	capture_free(c);
}

/* Calls interleaved, as on a busy server: an evicted call's slot is taken by a newer call
 * while the old call's records still lie in the ring between the newer ones. Those stay
 * dead when tail reaches them (they evict nobody). What is kept of a call is its newest
 * messages in order: a call evicted while it goes on starts again with its next one. */
static void test_ring_interleaved_reuse(void)
{
	struct capture *c = ring("64K");
	enum { ACTIVE = 12, CALLS = 400 };
	static unsigned added[CALLS];
	unsigned slot[ACTIVE], next_call = 0, rnd = 12345;
	char cid[32];
	for (unsigned a = 0; a < ACTIVE; a++)
		slot[a] = next_call++;
	while (next_call < CALLS) {
		rnd = rnd * 1103515245u + 12345u;
		unsigned a = (rnd >> 16) % ACTIVE, k = slot[a];
		snprintf(cid, sizeof cid, "mixed-%u", k);
		add(c, cid, added[k], 150 + (rnd >> 8) % 900, true);
		if (++added[k] == 3 + k % 6)
			slot[a] = next_call++;
	}
	const struct capture_stats *st = capture_stats(c);
	CHECK(st->calls_evicted > 100);
	unsigned live = 0, whole = 0;
	for (unsigned k = 0; k < CALLS; k++) {
		snprintf(cid, sizeof cid, "mixed-%u", k);
		struct seen s = each(c, cid);
		CHECK(!s.bad);
		if (!s.n)
			continue;
		live++;
		CHECK(s.n <= added[k]);
		for (unsigned i = 0; i < s.n && i < 300; i++)
			CHECK_INT(s.seq[i], added[k] - s.n + i);
		whole += s.n == added[k];
	}
	CHECK_INT(live, st->calls);
	CHECK(whole > live / 2);
	CHECK(st->ring_bytes <= 64 * 1024);
	capture_free(c);
}

/* One endless call keeps its newest messages and leaves room for the others. */
static void test_ring_per_call_cap(void)
{
	struct capture *c = ring("4M");
	add(c, "other", 0, 100, true);
	for (unsigned i = 0; i < 260; i++)
		add(c, "endless", i, 200, true);
	struct seen s = each(c, "endless");
	CHECK_INT(s.n, 200);
	CHECK(!s.bad);
	CHECK_INT(s.seq[0], 60);
	CHECK_INT(s.seq[199], 259);
	CHECK_INT(each(c, "other").n, 1);
	CHECK_INT(capture_stats(c)->calls_evicted, 0);
	/* By bytes: a quarter of the ring at most. */
	for (unsigned i = 0; i < 150; i++)
		add(c, "big", i, 20000, true);
	s = each(c, "big");
	CHECK(s.n > 10 && s.n < 60);
	CHECK_INT(s.seq[s.n - 1], 149);
	CHECK_INT(each(c, "other").n, 1);
	capture_free(c);
}

/* A message too big for the ring is not kept; the ring still works. */
static void test_ring_tiny(void)
{
	struct capture *c = ring("2K");
	add(c, "x", 0, 5000, true);
	CHECK_INT(each(c, "x").n, 0);
	for (unsigned i = 0; i < 50; i++)
		add(c, "y", i, 300, true);
	struct seen s = each(c, "y");
	CHECK(s.n >= 1 && s.n <= 6);
	CHECK_INT(s.seq[s.n - 1], 49);
	CHECK(!s.bad);
	capture_free(c);
}

/* Random calls, sizes and orders: the ring's invariants hold throughout (ASan watches the
 * copies). */
static void test_ring_random(void)
{
	struct capture *c = ring("32K");
	unsigned next[40] = { 0 }, first_kept[40];
	char cid[32];
	srand(7);
	for (unsigned n = 0; n < 5000; n++) {
		unsigned k = (unsigned)rand() % 40;
		snprintf(cid, sizeof cid, "r%u", k);
		add(c, cid, next[k]++, (size_t)(rand() % 3000), rand() % 2);
		if (n % 97 == 0) {
			for (unsigned j = 0; j < 40; j++) {
				snprintf(cid, sizeof cid, "r%u", j);
				struct seen s = each(c, cid);
				CHECK(!s.bad);
				for (unsigned i = 1; i < s.n && i < 300; i++)
					CHECK_INT(s.seq[i], s.seq[i - 1] + 1);
				if (s.n)
					CHECK_INT(s.seq[s.n - 1], next[j] - 1);
				first_kept[j] = s.n ? s.seq[0] : 0;
			}
			CHECK(capture_stats(c)->ring_bytes <= 32 * 1024);
		}
	}
	(void)first_kept;
	capture_free(c);
}

struct lis {
	struct capture *c;
	int handle, other;
	unsigned n;
	char last_cid[32];
};

static void on_msg(const struct capture_msg *m, void *arg)
{
	struct lis *l = arg;
	l->n++;
	str_to_cbuf(m->call_id, l->last_cid, sizeof l->last_cid);
	if (l->n == 2)
		capture_unlisten(l->c, l->handle); /* from inside its own call */
}

static void test_listeners(void)
{
	struct capture *c = ring("0");
	CHECK(!capture_on(c));
	add(c, "q", 0, 10, true);
	CHECK_INT(capture_stats(c)->captured, 0);
	struct lis a = { .c = c }, b = { .c = c };
	a.handle = capture_listen(c, on_msg, &a);
	b.handle = capture_listen(c, on_msg, &b);
	CHECK(a.handle >= 0 && b.handle >= 0 && a.handle != b.handle);
	CHECK(capture_on(c));
	CHECK_INT(capture_stats(c)->listeners, 2);
	add(c, "q1", 1, 10, false); /* the Call-ID is found in the text */
	CHECK_STR(str_from_cstr(a.last_cid), "q1");
	add(c, "q2", 2, 10, true);
	add(c, "q3", 3, 10, true);
	CHECK_INT(a.n, 2);
	CHECK_INT(b.n, 2);
	CHECK_INT(capture_stats(c)->listeners, 0);
	CHECK(!capture_on(c));
	/* Nothing kept with the ring off. */
	CHECK_INT(each(c, "q1").n, 0);
	int h = capture_listen(c, on_msg, &a);
	CHECK(h >= 0);
	capture_unlisten(c, h);
	capture_unlisten(c, h); /* twice: no effect */
	capture_unlisten(c, 99);
	CHECK_INT(capture_stats(c)->listeners, 0);
	capture_free(c);
}

/* A message the ring would not keep, with no HEP target or listener: only counted, and the
 * server need not build it. A listener takes every message, kept or not. With capture off
 * every message is skipped, and none counted (capture_add would count none). */
static void test_count_only(void)
{
	struct capture *off = ring("0");
	CHECK(capture_skips(off, false));
	CHECK(capture_skips(off, true));
	CHECK_INT(capture_stats(off)->captured, 0);
	capture_free(off);
	struct capture *c = ring("64K");
	CHECK(capture_skips(c, false));
	CHECK(!capture_skips(c, true));
	CHECK_INT(capture_stats(c)->captured, 1);
	CHECK_INT(capture_stats(c)->kept, 0);
	struct lis a = { .c = c };
	a.handle = capture_listen(c, on_msg, &a);
	CHECK(!capture_skips(c, false));
	CHECK(!capture_skips(c, true));
	CHECK_INT(capture_stats(c)->captured, 1);
	capture_unlisten(c, a.handle);
	CHECK(capture_skips(c, false));
	CHECK_INT(capture_stats(c)->captured, 2);
	capture_free(c);
}

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_hep_encode(void)
{
	static unsigned char out[70000];
	const char *text = "SIP/2.0 180 Ringing\r\nCall-ID: hep-1\r\n\r\n";
	struct capture_msg m = {
		.wall_ms = 1700000000123ull, .out = true, .proto = TP_TCP, .text = str_from_cstr(text)
	};
	m.call_id = (struct str){ text + 30, 5 };
	tp_addr_from_host(&m.local, STR("10.0.0.1"), 5060);
	tp_addr_from_host(&m.remote, STR("10.0.0.2"), 5072);
	size_t n = capture__hep_encode(&m, 2001, out, sizeof out);
	CHECK(n > 6 + strlen(text));
	CHECK(memcmp(out, "HEP3", 4) == 0);
	CHECK_INT(get16(out + 4), n);
	unsigned seen = 0;
	for (size_t o = 6; o < n;) {
		CHECK_INT(get16(out + o), 0); /* generic vendor */
		unsigned type = get16(out + o + 2), len = get16(out + o + 4);
		CHECK(len >= 6 && o + len <= n);
		const unsigned char *v = out + o + 6;
		seen |= 1u << type;
		switch (type) {
		case 1:
			CHECK_INT(v[0], 2);
			break;
		case 2:
			CHECK_INT(v[0], 6);
			break;
		case 3:
			CHECK(memcmp(v, "\x0a\x00\x00\x01", 4) == 0); /* sent: Parley is the source */
			break;
		case 4:
			CHECK(memcmp(v, "\x0a\x00\x00\x02", 4) == 0);
			break;
		case 7:
			CHECK_INT(get16(v), 5060);
			break;
		case 8:
			CHECK_INT(get16(v), 5072);
			break;
		case 9:
			CHECK_INT(get32(v), 1700000000u);
			break;
		case 10:
			CHECK_INT(get32(v), 123000);
			break;
		case 11:
			CHECK_INT(v[0], 1);
			break;
		case 12:
			CHECK_INT(get32(v), 2001);
			break;
		case 15:
			CHECK_INT(len - 6, strlen(text));
			CHECK(memcmp(v, text, strlen(text)) == 0);
			break;
		case 17:
			CHECK(len == 11 && memcmp(v, "hep-1", 5) == 0);
			break;
		default:
			CHECK(!"unexpected chunk");
		}
		o += len;
	}
	CHECK_INT(seen, (1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 7 | 1u << 8 | 1u << 9 | 1u << 10 | 1u << 11 |
			 1u << 12 | 1u << 15 | 1u << 17));
	/* IPv6, received: the peer is the source. */
	m.out = false;
	m.proto = TP_UDP;
	tp_addr_from_host(&m.local, STR("::1"), 5060);
	tp_addr_from_host(&m.remote, STR("2001:db8::2"), 5072);
	n = capture__hep_encode(&m, 7, out, sizeof out);
	CHECK(n > 0);
	CHECK_INT(out[6 + 6], 10);     /* family chunk first */
	CHECK_INT(out[6 + 7 + 6], 17); /* then UDP */
	CHECK_INT(get16(out + 6 + 14 + 2), 5);
	CHECK_INT(out[6 + 14 + 6 + 0], 0x20); /* 2001:db8::2 is the source */
	/* Too big for one packet, or for the buffer: 0. */
	CHECK_INT(capture__hep_encode(&m, 7, out, 50), 0);
	static char big[65600];
	memset(big, 'a', sizeof big);
	m.text = (struct str){ big, sizeof big };
	CHECK_INT(capture__hep_encode(&m, 7, out, sizeof out), 0);
}

/* A message that did not parse reaches listeners (with its Call-ID found in the text)
 * but is not kept: junk cannot evict the ladders of real calls. */
static void test_unparsed_not_kept(void)
{
	struct capture *c = ring("64K");
	struct lis a = { .c = c };
	a.handle = capture_listen(c, on_msg, &a);
	static const char junk[] = "NOT SIP\r\nCall-ID: j1\r\n\r\n";
	struct capture_msg m = { .wall_ms = 1, .text = { junk, sizeof junk - 1 }, .transient = true };
	capture_add(c, &m);
	CHECK_INT(a.n, 1);
	CHECK_STR(str_from_cstr(a.last_cid), "j1");
	CHECK_INT(each(c, "j1").n, 0);
	CHECK_INT(capture_stats(c)->captured, 1);
	CHECK_INT(capture_stats(c)->kept, 0);
	capture_unlisten(c, a.handle);
	capture_free(c);
}

static const struct unit_case cases[] = {
	{ "size_parse", test_size_parse },
	{ "cfg_check", test_cfg_check },
	{ "find_call_id", test_find_call_id },
	{ "ring_basic", test_ring_basic },
	{ "ring_evicts_calls", test_ring_evicts_calls },
	{ "ring_interleaved_reuse", test_ring_interleaved_reuse },
	{ "ring_per_call_cap", test_ring_per_call_cap },
	{ "ring_tiny", test_ring_tiny },
	{ "ring_random", test_ring_random },
	{ "listeners", test_listeners },
	{ "count_only", test_count_only },
	{ "hep_encode", test_hep_encode },
	{ "unparsed_not_kept", test_unparsed_not_kept },
};
UNIT_MAIN(cases)
