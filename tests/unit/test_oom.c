/* test_oom.c: every allocation on a request's path fails in turn; the server answers or drops, never crashes or leaks. */
/*
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (CMakeLists.txt): every call
 * from Parley's code (and this file) goes to the __wrap_ functions below, which fail the
 * allocation numbered oom_at (from 0, counted on this thread only: the store's writer
 * thread allocates on its own schedule) and pass the rest on. Libraries in their own
 * shared objects (sqlite, libsodium, libc's stdio) are not reached, which is fine: their
 * failures come back as errors Parley already handles.
 *
 * One run builds a whole server on the test seam (server_new_with_hooks: sends are
 * captured, the clock is simulated), arms the failure, and plays a registration with its
 * challenge, an authenticated call from alice to the registered bob (forwarded, answered,
 * ACKed, hung up) and a second call cancelled while ringing. Then the failure is disarmed,
 * the clock runs until every transaction is over, and the server must still answer an
 * OPTIONS and a REGISTER. The runs go N = 0, 1, 2, ... until one ends without reaching
 * allocation N: every allocation of the scenario has failed once. LeakSanitizer (the
 * ASan build) reports anything a failure left behind when the program exits.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
#include "server/config.h"
#include "server/server.h"
#include "store/store.h"
#include "sip/sip.h"
#include "transport/transport.h"
#include "txn/txn.h"
#include "unit.h"

/* ---- failing allocator ------------------------------------------------------------------ */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static long oom_at = -1;           /* the allocation to fail; -1: none */
static bool oom_sticky;            /* and every one after it (SQLite's mode) */
static long oom_count;             /* allocations counted since armed */
static bool oom_hit;               /* the failure happened in this run */
static _Thread_local bool counted; /* this thread's allocations count (the test's own) */

static bool fail_now(void)
{
	if (!counted || oom_at < 0)
		return false;
	long k = oom_count++;
	if (k != oom_at && !(oom_sticky && k > oom_at))
		return false;
	oom_hit = true;
	return true;
}

void *__wrap_malloc(size_t size)
{
	return fail_now() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return fail_now() ? NULL : __real_realloc(p, size);
}

static void arm(long n, bool sticky)
{
	oom_at = n;
	oom_sticky = sticky;
	oom_count = 0;
	oom_hit = false;
	counted = true;
}

static void disarm(void)
{
	counted = false;
	oom_at = -1;
}

/* ---- the harness ------------------------------------------------------------------------ */

#define WALL_BASE_MS 1893456000000ull /* any fixed time does */
#define MAX_SENT 128

struct sent {
	struct tp_source dst;
	size_t len;
	char buf[8192];
};

/* Static, so that the harness itself allocates nothing while a failure is armed. */
static struct {
	struct config cfg;
	struct log lg;
	struct loop *loop;
	struct server *srv;
	uint64_t mono0;
	struct sent sent[MAX_SENT];
	unsigned nsent; /* sends this run; those past MAX_SENT are counted only */
	char dgram[8192];
	uint32_t nc;
} T;

static uint64_t wall_ms(void *arg)
{
	(void)arg;
	return WALL_BASE_MS + (loop_timers(T.loop)->now - T.mono0);
}

static int on_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	(void)arg;
	if (T.nsent < MAX_SENT && len < sizeof T.sent[0].buf) {
		struct sent *s = &T.sent[T.nsent];
		s->dst = *dst;
		memcpy(s->buf, buf, len);
		s->buf[len] = '\0';
		s->len = len;
	}
	T.nsent++;
	return 0;
}

static void advance(uint64_t ms)
{
	struct timer_wheel *w = loop_timers(T.loop);
	uint64_t end = w->now + ms;
	while (w->now < end)
		timer_advance(w, w->now + 500 < end ? w->now + 500 : end);
}

static void source(struct tp_source *src, const char *ip, uint16_t port)
{
	memset(src, 0, sizeof(*src));
	src->proto = TP_UDP;
	tp_addr_from_host(&src->addr, str_from_cstr(ip), port);
}

/* Hands text to the server as a datagram from ip:port, in an exact-size buffer (from the
 * real allocator: the harness's memory is not under test) so that ASan sees an overread. */
static void inject(const char *ip, uint16_t port, const char *text, size_t len)
{
	struct tp_source src;
	source(&src, ip, port);
	char *p = __real_malloc(len ? len : 1);
	memcpy(p, text, len);
	server_inject(T.srv, &src, p, len);
	free(p);
}

static void injectf(const char *ip, uint16_t port, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void injectf(const char *ip, uint16_t port, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(T.dgram, sizeof T.dgram, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof T.dgram)
		inject(ip, port, T.dgram, (size_t)n);
}

/* The newest message sent since index from that starts with prefix; NULL if none. */
static const struct sent *sent_since(unsigned from, const char *prefix)
{
	unsigned n = T.nsent < MAX_SENT ? T.nsent : MAX_SENT;
	for (unsigned i = n; i-- > from;)
		if (strncmp(T.sent[i].buf, prefix, strlen(prefix)) == 0)
			return &T.sent[i];
	return NULL;
}

/* Copies the trimmed value of the first header name (full name, as the server prints it)
 * in message s into out (cap bytes); false when absent or too long. */
static bool header(const struct sent *s, const char *name, char *out, size_t cap)
{
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_msg m;
	struct sip_parse_err e;
	if (!s || sip_msg_parse(&m, hdr, SIP_MAX_HEADERS, s->buf, s->len, true, &e) != SIP_PARSE_OK)
		return false;
	const struct sip_hdr *h = sip_msg_hdr_by_name(&m, str_from_cstr(name));
	if (!h || h->value.l >= cap)
		return false;
	memcpy(out, h->value.p, h->value.l);
	out[h->value.l] = '\0';
	return true;
}

/* Fills hdr with an Authorization (or, proxy, Proxy-Authorization) line for user answering
 * the challenge in ch; empty when there is none to answer. */
static void credentials(const struct sent *ch, bool proxy, const char *user, const char *pw, const char *method,
			const char *uri, char *hdr, size_t cap)
{
	char v[1024];
	struct sip_auth a;
	hdr[0] = '\0';
	if (!header(ch, proxy ? "Proxy-Authenticate" : "WWW-Authenticate", v, sizeof v) ||
	    sip_auth_parse(&a, str_from_cstr(v)) != 0)
		return;
	enum auth_alg alg = AUTH_MD5;
	if (a.algorithm.l && !auth_alg_from_name(a.algorithm, &alg))
		return;
	char resp[AUTH_HEX_MAX], cnonce[16];
	uint32_t nc = ++T.nc;
	snprintf(cnonce, sizeof cnonce, "c%u", nc);
	struct auth_client ac = {
		.alg = alg,
		.user = str_from_cstr(user),
		.realm = a.realm,
		.password = str_from_cstr(pw),
		.method = str_from_cstr(method),
		.uri = str_from_cstr(uri),
		.nonce = a.nonce,
		.qop = STR("auth"),
		.cnonce = str_from_cstr(cnonce),
		.nc = nc,
	};
	if (auth_client_response(&ac, resp) < 0)
		return;
	snprintf(hdr, cap,
		 "%s: Digest username=\"%s\", realm=\"%.*s\", nonce=\"%.*s\", uri=\"%s\", response=\"%s\", "
		 "algorithm=%s, qop=auth, nc=%08x, cnonce=\"%s\"\r\n",
		 proxy ? "Proxy-Authorization" : "Authorization", user, STR_FMT(a.realm), STR_FMT(a.nonce), uri, resp,
		 auth_alg_name(alg), nc, cnonce);
}

/* bob's phone answers forwarded request r with status (To tag "bt"), from its address. */
static void phone_answers(const struct sent *r, unsigned status, const char *reason)
{
	char via[2048], from[512], to[512], cid[256], cseq[64], rr[1024];
	if (!header(r, "Via", via, sizeof via) || !header(r, "From", from, sizeof from) ||
	    !header(r, "To", to, sizeof to) || !header(r, "Call-ID", cid, sizeof cid) ||
	    !header(r, "CSeq", cseq, sizeof cseq))
		return;
	char rrline[1100] = "";
	if (header(r, "Record-Route", rr, sizeof rr))
		snprintf(rrline, sizeof rrline, "Record-Route: %s\r\n", rr);
	/* Every Via of the request, in order: the forwarded copy has the server's on top. */
	char vias[4096] = "";
	{
		struct sip_hdr hdr[SIP_MAX_HEADERS];
		struct sip_msg m;
		struct sip_parse_err e;
		if (sip_msg_parse(&m, hdr, SIP_MAX_HEADERS, r->buf, r->len, true, &e) != SIP_PARSE_OK)
			return;
		size_t o = 0;
		for (const struct sip_hdr *h = sip_msg_hdr(&m, SIP_HDR_VIA); h && o < sizeof vias;
		     h = sip_msg_hdr_next(&m, h))
			o += (size_t)snprintf(vias + o, sizeof vias - o, "%.*s", STR_FMT(h->line));
		if (o >= sizeof vias)
			return;
	}
	injectf("127.0.0.20", 5070,
		"SIP/2.0 %u %s\r\n%s%sFrom: %s\r\nTo: %s%s\r\nCall-ID: %s\r\nCSeq: %s\r\n"
		"Contact: <sip:bob@127.0.0.20:5070>\r\nContent-Length: 0\r\n\r\n",
		status, reason, vias, rrline, from, to, strstr(to, "tag=") ? "" : ";tag=bt", cid, cseq);
}

static const char *alice = "127.0.0.11";
static const uint16_t alice_port = 5062;

/* alice's request: method, branch, CSeq number, To tag (may be ""), Request-URI, extra
 * header lines. */
static void alice_sends(const char *method, const char *branch, unsigned cseq, const char *totag, const char *ruri,
			const char *extra, const char *callid)
{
	injectf(alice, alice_port,
		"%s %s SIP/2.0\r\n"
		"Via: SIP/2.0/UDP %s:%u;branch=%s;rport\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:alice@a.test>;tag=at\r\n"
		"To: <sip:bob@a.test>%s%s\r\n"
		"Call-ID: %s\r\n"
		"CSeq: %u %s\r\n"
		"Contact: <sip:alice@%s:%u>\r\n"
		"%s"
		"Content-Length: 0\r\n\r\n",
		method, ruri, alice, alice_port, branch, totag[0] ? ";tag=" : "", totag, callid, cseq, method, alice,
		alice_port, extra);
}

static void bob_registers(unsigned cseq, const char *branch, const char *extra)
{
	injectf("127.0.0.20", 5070,
		"REGISTER sip:a.test SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 127.0.0.20:5070;branch=%s;rport\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:bob@a.test>;tag=br\r\n"
		"To: <sip:bob@a.test>\r\n"
		"Call-ID: bob-reg\r\n"
		"CSeq: %u REGISTER\r\n"
		"Contact: <sip:bob@127.0.0.20:5070>;expires=3600\r\n"
		"%s"
		"Content-Length: 0\r\n\r\n",
		branch, cseq, extra);
}

/* What the scenario reached: checked on the run without failures, so that the test
 * covers what it claims to. */
struct reached {
	bool registered, forwarded, answered, bye_forwarded, cancel_forwarded, cancelled;
	bool message_forwarded, old_rejected, options;
};

/* The whole scenario; every step goes on when an earlier one was refused for want of
 * memory, with whatever the server did send. */
static void scenario(struct reached *r, const char *tag)
{
	char auth[2048], rr[1024], route[1100], b[64], cid[64];
	unsigned mark;

	/* Registration: challenge, then credentials. */
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%sr1", tag);
	bob_registers(1, b, "");
	credentials(sent_since(mark, "SIP/2.0 401"), false, "bob", "bobpw", "REGISTER", "sip:a.test", auth,
		    sizeof auth);
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%sr2", tag);
	bob_registers(2, b, auth);
	r->registered = sent_since(mark, "SIP/2.0 200") != NULL;

	/* A call: 407, its ACK, the INVITE with credentials, forwarded to bob's phone. */
	snprintf(cid, sizeof cid, "call1-%s", tag);
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%si1", tag);
	alice_sends("INVITE", b, 1, "", "sip:bob@a.test", "", cid);
	const struct sent *ch = sent_since(mark, "SIP/2.0 407");
	char totag[128] = "";
	char to[512];
	if (header(ch, "To", to, sizeof to) && strstr(to, "tag="))
		snprintf(totag, sizeof totag, "%s", strstr(to, "tag=") + 4);
	alice_sends("ACK", b, 1, totag, "sip:bob@a.test", "", cid);
	credentials(ch, true, "alice", "alicepw", "INVITE", "sip:bob@a.test", auth, sizeof auth);
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%si2", tag);
	alice_sends("INVITE", b, 2, "", "sip:bob@a.test", auth, cid);
	const struct sent *fwd = sent_since(mark, "INVITE ");
	r->forwarded = fwd != NULL;
	route[0] = '\0';
	if (header(fwd, "Record-Route", rr, sizeof rr))
		snprintf(route, sizeof route, "Route: %s\r\n", rr);
	if (fwd) {
		struct sent copy = *fwd; /* later sends may reuse the slot's neighbours, not it */
		phone_answers(&copy, 180, "Ringing");
		mark = T.nsent;
		phone_answers(&copy, 200, "OK");
		r->answered = sent_since(mark, "SIP/2.0 200") != NULL;
	}
	/* The ACK for the 2xx and the BYE go along the route the INVITE recorded. */
	alice_sends("ACK", "z9hG4bKack2", 2, "bt", "sip:bob@127.0.0.20:5070", route, cid);
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%sy1", tag);
	alice_sends("BYE", b, 3, "bt", "sip:bob@127.0.0.20:5070", route, cid);
	const struct sent *bye = sent_since(mark, "BYE ");
	r->bye_forwarded = bye != NULL;
	if (bye) {
		struct sent copy = *bye;
		phone_answers(&copy, 200, "OK");
	}

	/* A second call, cancelled while it rings. */
	snprintf(cid, sizeof cid, "call2-%s", tag);
	credentials(ch, true, "alice", "alicepw", "INVITE", "sip:bob@a.test", auth, sizeof auth);
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%si3", tag);
	alice_sends("INVITE", b, 1, "", "sip:bob@a.test", auth, cid);
	fwd = sent_since(mark, "INVITE ");
	static struct sent inv;
	if (fwd) {
		inv = *fwd;
		phone_answers(&inv, 180, "Ringing");
	}
	mark = T.nsent;
	alice_sends("CANCEL", b, 1, "", "sip:bob@a.test", "", cid);
	const struct sent *can = sent_since(mark, "CANCEL ");
	r->cancel_forwarded = can != NULL;
	if (can) {
		struct sent copy = *can;
		phone_answers(&copy, 200, "OK");
	}
	if (fwd) {
		mark = T.nsent;
		phone_answers(&inv, 487, "Request Terminated");
		r->cancelled = sent_since(mark, "SIP/2.0 487") != NULL;
	}
	alice_sends("ACK", b, 1, "bt", "sip:bob@a.test", "", cid);

	/* A MESSAGE: a proxied non-INVITE. */
	snprintf(cid, sizeof cid, "msg-%s", tag);
	credentials(ch, true, "alice", "alicepw", "MESSAGE", "sip:bob@a.test", auth, sizeof auth);
	mark = T.nsent;
	snprintf(b, sizeof b, "z9hG4bK%sm1", tag);
	alice_sends("MESSAGE", b, 1, "", "sip:bob@a.test", auth, cid);
	const struct sent *msg = sent_since(mark, "MESSAGE ");
	r->message_forwarded = msg != NULL;
	if (msg) {
		struct sent copy = *msg;
		phone_answers(&copy, 200, "OK");
	}

	/* An RFC 2543 caller (no magic cookie: matched by its fields), refused by bob; its
	 * ACK matches by the To tag of the final. */
	snprintf(cid, sizeof cid, "old-%s", tag);
	credentials(ch, true, "alice", "alicepw", "INVITE", "sip:bob@a.test", auth, sizeof auth);
	mark = T.nsent;
	snprintf(b, sizeof b, "old%s", tag);
	alice_sends("INVITE", b, 1, "", "sip:bob@a.test", auth, cid);
	fwd = sent_since(mark, "INVITE ");
	if (fwd) {
		inv = *fwd;
		mark = T.nsent;
		phone_answers(&inv, 486, "Busy Here");
		r->old_rejected = sent_since(mark, "SIP/2.0 486") != NULL;
	}
	alice_sends("ACK", b, 1, "bt", "sip:bob@a.test", "", cid);

	/* The server itself. */
	mark = T.nsent;
	injectf("127.0.0.10", 5060,
		"OPTIONS sip:a.test SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK%so\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:carol@c.test>;tag=c\r\n"
		"To: <sip:a.test>\r\n"
		"Call-ID: opt-%s\r\n"
		"CSeq: 1 OPTIONS\r\n"
		"Content-Length: 0\r\n\r\n",
		tag, tag);
	r->options = sent_since(mark, "SIP/2.0 200") != NULL;
}

/* The modules the test looks into. */
static struct server_parts srv_parts(void)
{
	struct server_parts p;
	server_parts(T.srv, &p);
	return p;
}

static void setup(void)
{
	char err[256];
	memset(&T.sent, 0, sizeof T.sent);
	T.nsent = 0;
	T.nc = 0;
	CHECK_INT(loop_new(&T.loop), 0);
	T.mono0 = loop_timers(T.loop)->now;
	struct server_hooks hooks = { .send = on_send, .wall_ms = wall_ms };
	if (server_new_with_hooks(&T.srv, &T.cfg, T.loop, &T.lg, &hooks, err, sizeof err) != 0) {
		fprintf(stderr, "test_oom: %s\n", err);
		unit_failures++;
		exit(1);
	}
	char md5[2][AUTH_HEX_MAX], sha256[2][AUTH_HEX_MAX];
	auth_ha1(AUTH_MD5, STR("alice"), STR("a.test"), STR("alicepw"), md5[0]);
	auth_ha1(AUTH_SHA256, STR("alice"), STR("a.test"), STR("alicepw"), sha256[0]);
	auth_ha1(AUTH_MD5, STR("bob"), STR("a.test"), STR("bobpw"), md5[1]);
	auth_ha1(AUTH_SHA256, STR("bob"), STR("a.test"), STR("bobpw"), sha256[1]);
	CHECK_INT(store_user_add(srv_parts().store, STR("alice"), STR("a.test"), md5[0], sha256[0]), 0);
	CHECK_INT(store_user_add(srv_parts().store, STR("bob"), STR("a.test"), md5[1], sha256[1]), 0);
}

static void teardown(void)
{
	server_free(T.srv);
	T.srv = NULL;
	loop_free(T.loop);
	T.loop = NULL;
}

/* After the scenario, with allocations working again: every transaction ends, and the
 * server answers as a fresh one would. Returns false (and says why) when it does not. */
static bool still_stands(long n)
{
	advance(5 * 60 * 1000);
	const struct txn_stats *ts = txn_layer_stats(srv_parts().txn);
	bool ok = true;
	if (ts->servers + ts->clients) {
		fprintf(stderr, "N=%ld: %u server and %u client transactions outlived five minutes\n", n, ts->servers,
			ts->clients);
		ok = false;
	}
	unsigned mark = T.nsent;
	injectf("127.0.0.10", 5060,
		"OPTIONS sip:a.test SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bKopt%ld\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:carol@c.test>;tag=c\r\n"
		"To: <sip:a.test>\r\n"
		"Call-ID: opt-%ld\r\n"
		"CSeq: 1 OPTIONS\r\n"
		"Content-Length: 0\r\n\r\n",
		n, n);
	if (!sent_since(mark, "SIP/2.0 200")) {
		fprintf(stderr, "N=%ld: OPTIONS was not answered 200\n", n);
		ok = false;
	}
	mark = T.nsent;
	char b[64];
	snprintf(b, sizeof b, "z9hG4bKafter%ld", n);
	bob_registers(100, b, "");
	if (!sent_since(mark, "SIP/2.0 401")) {
		fprintf(stderr, "N=%ld: REGISTER was not challenged\n", n);
		ok = false;
	}
	return ok;
}

/* The scenario without failures reaches every step. */
static void t_baseline(void)
{
	struct reached r = { 0 };
	setup();
	arm(-1, false);
	scenario(&r, "base");
	disarm();
	CHECK(r.registered);
	CHECK(r.forwarded);
	CHECK(r.answered);
	CHECK(r.bye_forwarded);
	CHECK(r.cancel_forwarded);
	CHECK(r.cancelled);
	CHECK(r.message_forwarded);
	CHECK(r.old_rejected);
	CHECK(r.options);
	CHECK(still_stands(-1));
	teardown();
}

/* Fails allocation N alone or (sticky) N and every later one, for N = 0, 1, ... until a
 * run does not reach N. Returns how many allocations the scenario made. */
static long every_n(bool sticky)
{
	long n;
	unsigned bad = 0;
	/* TEST_OOM_N=k runs N=k alone (with TEST_OOM_LOG=1 for the server's log). */
	const char *only = getenv("TEST_OOM_N");
	for (n = only ? atol(only) : 0; n < 100000; n++) {
		struct reached r = { 0 };
		setup();
		arm(n, sticky);
		scenario(&r, "oom");
		bool hit = oom_hit;
		disarm();
		if (!still_stands(n) && bad++ < 20)
			unit_failures++;
		teardown();
		if (!hit || only)
			break;
	}
	CHECK(only || (n > 0 && n < 100000));
	CHECK_INT(bad, 0);
	return n;
}

static void t_every_allocation_fails(void)
{
	long n = every_n(false);
	fprintf(stderr, "test_oom: %ld allocations on the path, each failed once\n", n);
	n = every_n(true);
	fprintf(stderr, "test_oom: and from each on, all failed\n");
}

static void init(void)
{
	struct config *c = &T.cfg;
	config_defaults(c);
	strcpy(c->tp.listen[0], "udp:127.0.0.1:0");
	c->tp.nlisten = 1;
	strcpy(c->route.domain[0], "a.test");
	c->route.ndomain = 1;
	strcpy(c->server.db, ":memory:");
	strcpy(c->route.dns, "127.0.0.1:9");
	/* Keepalives to phones behind NAT are sent for as long as they are registered: the
	 * check that no transaction outlives its timers would count them. test_registrar
	 * covers them. */
	c->reg.nat_ping_interval = 0;
	const char *level = getenv("TEST_OOM_LOG");
	if (log_open(&T.lg, level ? LOG_DEBUG : LOG_INFO, false, level ? "" : "/dev/null") < 0)
		exit(1);
}

static void t_all(void)
{
	init();
	t_baseline();
	t_every_allocation_fails();
	log_close(&T.lg);
}

static const struct unit_case cases[] = {
	{ "oom", t_all },
};
UNIT_MAIN(cases)
