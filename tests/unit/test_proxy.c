/* test_proxy.c: unit tests of the proxy core over a real transaction layer, a simulated clock and captured sends. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#include "proxy/proxy.h"

#define MAXSENT 64

/* One test's world: clock, layer, proxy, and every message that went out. */
struct fx {
	struct timer_wheel w;
	uint64_t now;
	struct proxy_cfg cfg;
	struct txn_layer *l;
	struct proxy *p;
	struct cdr *cdr;
	struct txn_tu tu;
	struct tp_listener lis;
	struct tp_source caller;
	struct tp_source phone[2];
	struct txn_server *st; /* the last server transaction handed up */
	unsigned ended;        /* call_end calls */
	char *sent[MAXSENT];
	size_t sent_len[MAXSENT];
	unsigned nsent;
};

static int on_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct fx *f = arg;
	if (f->nsent < MAXSENT) {
		f->sent[f->nsent] = malloc(len + 1);
		memcpy(f->sent[f->nsent], buf, len);
		f->sent[f->nsent][len] = '\0';
		f->sent_len[f->nsent] = len;
		f->nsent++;
	}
	return 0;
}

static void on_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct fx *f = arg;
	f->st = st;
}

static void on_end(void *arg, struct str call_id)
{
	struct fx *f = arg;
	CHECK(str_eq(call_id, STR("call1@test")));
	f->ended++;
}

static void source(struct tp_source *s, struct tp_listener *lis, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->proto = TP_UDP;
	s->lis = lis;
	tp_addr_from_host(&s->addr, str_from_cstr(ip), port);
}

static struct fx *setup(unsigned ring_timeout)
{
	struct fx *f = calloc(1, sizeof(*f));
	timer_wheel_init(&f->w, 0);
	proxy_cfg_defaults(&f->cfg);
	f->cfg.ring_timeout = ring_timeout;
	f->tu.on_request = on_request;
	struct txn_cfg tc = { 500, 4000, 5000 };
	txn_layer_new(&f->l, &tc, &f->w, on_send, f, &f->tu, f);
	f->lis.proto = TP_UDP;
	snprintf(f->lis.host, sizeof(f->lis.host), "10.0.0.1");
	f->lis.port = 5060;
	tp_addr_from_host(&f->lis.local, STR("10.0.0.1"), 5060);
	source(&f->caller, &f->lis, "10.0.0.2", 5060);
	source(&f->phone[0], NULL, "10.0.0.3", 5060);
	source(&f->phone[1], NULL, "10.0.0.4", 5060);
	cdr_new(&f->cdr, NULL, &f->w);
	struct proxy_env env = {
		.cfg = &f->cfg,
		.wheel = &f->w,
		.txn = f->l,
		.cdr = f->cdr,
		.send = on_send,
		.send_arg = f,
		.call_end = on_end,
		.call_end_arg = f,
	};
	proxy_new(&f->p, &env);
	return f;
}

static void teardown(struct fx *f)
{
	proxy_free(f->p);
	cdr_free(f->cdr);
	txn_layer_free(f->l);
	for (unsigned i = 0; i < f->nsent; i++)
		free(f->sent[i]);
	free(f);
}

static void advance(struct fx *f, uint64_t ms)
{
	f->now += ms;
	timer_advance(&f->w, f->now);
}

static const char invite[] = "INVITE sip:bob@a.test SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKcaller1;rport\r\n"
			     "From: <sip:alice@a.test>;tag=a1\r\n"
			     "To: <sip:bob@a.test>\r\n"
			     "Call-ID: call1@test\r\n"
			     "CSeq: 1 INVITE\r\n"
			     "Max-Forwards: 70\r\n"
			     "Content-Length: 0\r\n\r\n";

static const char cancel[] = "CANCEL sip:bob@a.test SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKcaller1;rport\r\n"
			     "From: <sip:alice@a.test>;tag=a1\r\n"
			     "To: <sip:bob@a.test>\r\n"
			     "Call-ID: call1@test\r\n"
			     "CSeq: 1 CANCEL\r\n"
			     "Max-Forwards: 70\r\n"
			     "Content-Length: 0\r\n\r\n";

static struct txn_server *inject(struct fx *f, const char *text)
{
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	CHECK(sip_msg_parse(&m, hdr, SIP_MAX_HEADERS, text, strlen(text), true, &perr) == SIP_PARSE_OK);
	f->st = NULL;
	CHECK(txn_recv_request(f->l, &m, &f->caller) == 0);
	return f->st;
}

/* Starts the call to n phones; returns the index in sent[] of the first forwarded INVITE. */
static unsigned call(struct fx *f, unsigned n)
{
	struct txn_server *st = inject(f, invite);
	CHECK(st != NULL);
	struct proxy_target t[2] = { { .ruri = STR("sip:bob@10.0.0.3"), .dst = f->phone[0] },
				     { .ruri = STR("sip:bob@10.0.0.4"), .dst = f->phone[1] } };
	t[0].dst.lis = t[1].dst.lis = &f->lis;
	struct proxy_fwd_flags fl = { .record_route = true };
	struct proxy_call_info ci = { STR("alice@a.test"), STR("bob@a.test"), STR("direct") };
	unsigned before = f->nsent;
	CHECK_INT(proxy_forward(f->p, st, t, n, &fl, &ci), 0);
	CHECK_INT(f->nsent, before + 1 + n); /* 100 Trying, then one INVITE per phone */
	CHECK(strncmp(f->sent[before], "SIP/2.0 100 Trying", 18) == 0);
	return before + 1;
}

/* Answers the forwarded request sent[i] with status, as phone k. */
static void respond(struct fx *f, unsigned i, unsigned status, const char *tag)
{
	struct sip_msg req, resp;
	struct sip_hdr rqh[SIP_MAX_HEADERS], rsh[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	CHECK(sip_msg_parse(&req, rqh, SIP_MAX_HEADERS, f->sent[i], f->sent_len[i], true, &perr) == SIP_PARSE_OK);
	char buf[4096];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof(buf));
	struct sip_resp_opts opt = { .to_tag = str_from_cstr(tag) };
	CHECK(sip_print_response(&o, &req, status, sip_reason(status), &opt) == 0);
	CHECK(sip_msg_parse(&resp, rsh, SIP_MAX_HEADERS, o.p, o.len, true, &perr) == SIP_PARSE_OK);
	CHECK(txn_recv_response(f->l, &resp, &f->phone[0]) == 0);
}

static bool sent_starts(struct fx *f, unsigned i, const char *prefix)
{
	return i < f->nsent && strncmp(f->sent[i], prefix, strlen(prefix)) == 0;
}

static unsigned count_via(const char *msg)
{
	unsigned n = 0;
	for (const char *p = msg; (p = strstr(p, "\r\nVia: ")); p++)
		n++;
	return n;
}

static void t_forward_edits(void)
{
	struct fx *f = setup(60);
	unsigned i = call(f, 1);
	const char *m = f->sent[i];
	CHECK(sent_starts(f, i, "INVITE sip:bob@10.0.0.3 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK"));
	CHECK(strstr(m, "Record-Route: <sip:10.0.0.1:5060;lr>\r\n") != NULL);
	CHECK(strstr(m, "Max-Forwards: 69\r\n") != NULL);
	CHECK(strstr(m, "rport=5060") != NULL || strstr(m, ";rport\r\n") != NULL);
	CHECK_INT(count_via(m), 2);
	teardown(f);
}

static void t_best_of_486_and_503(void)
{
	struct fx *f = setup(60);
	unsigned i = call(f, 2);
	respond(f, i + 1, 503, "t2");
	unsigned before = f->nsent;
	respond(f, i, 486, "t1");
	/* The ACK to the phone, then the 486 upstream with one Via. */
	bool found = false;
	for (unsigned k = before; k < f->nsent; k++)
		if (sent_starts(f, k, "SIP/2.0 486")) {
			found = true;
			CHECK_INT(count_via(f->sent[k]), 1);
		}
	CHECK(found);
	teardown(f);
}

static void t_503_becomes_500(void)
{
	struct fx *f = setup(60);
	unsigned i = call(f, 1);
	respond(f, i, 503, "t1");
	CHECK(sent_starts(f, f->nsent - 1, "SIP/2.0 500"));
	teardown(f);
}

static void t_6xx_cancels_the_rest(void)
{
	struct fx *f = setup(60);
	unsigned i = call(f, 2);
	respond(f, i, 180, "t1");
	CHECK(sent_starts(f, f->nsent - 1, "SIP/2.0 180"));
	respond(f, i + 1, 603, "t2");
	bool decline = false, cancelled = false;
	for (unsigned k = i + 2; k < f->nsent; k++) {
		decline |= sent_starts(f, k, "SIP/2.0 603");
		cancelled |= sent_starts(f, k, "CANCEL sip:bob@10.0.0.3");
	}
	CHECK(decline && cancelled);
	CHECK_INT(proxy_stats(f->p)->failed, 1);
	teardown(f);
}

static void t_2xx_cancels_the_rest(void)
{
	struct fx *f = setup(60);
	unsigned i = call(f, 2);
	respond(f, i, 180, "t1");
	respond(f, i + 1, 200, "t2");
	bool ok = false, cancelled = false;
	for (unsigned k = i + 2; k < f->nsent; k++) {
		ok |= sent_starts(f, k, "SIP/2.0 200");
		cancelled |=
			sent_starts(f, k, "CANCEL sip:bob@10.0.0.3") && strstr(f->sent[k], "Call completed elsewhere");
	}
	CHECK(ok && cancelled);
	/* The other phone's 487 does not reach the caller. */
	unsigned before = f->nsent;
	respond(f, i, 487, "t1");
	for (unsigned k = before; k < f->nsent; k++)
		CHECK(!sent_starts(f, k, "SIP/2.0 487"));
	CHECK_INT(proxy_stats(f->p)->answered, 1);
	CHECK_INT(proxy_stats(f->p)->active, 1);
	teardown(f);
}

static void t_cancel_before_any_provisional(void)
{
	struct fx *f = setup(60);
	call(f, 1);
	struct txn_server *ist = f->st;
	struct txn_server *cst = inject(f, cancel);
	unsigned before = f->nsent;
	proxy_cancel(f->p, cst, ist);
	/* 200 for the CANCEL and 487 for the INVITE at once; no CANCEL downstream yet (§9.1). */
	CHECK_INT(f->nsent, before + 2);
	CHECK(sent_starts(f, before, "SIP/2.0 200"));
	CHECK(sent_starts(f, before + 1, "SIP/2.0 487"));
	CHECK_INT(proxy_stats(f->p)->cancelled, 1);
	teardown(f);
}

static void t_ring_timeout(void)
{
	struct fx *f = setup(2);
	unsigned i = call(f, 1);
	respond(f, i, 180, "t1");
	advance(f, 1900);
	CHECK(sent_starts(f, f->nsent - 1, "SIP/2.0 180"));
	advance(f, 200);
	bool timeout = false, cancelled = false;
	for (unsigned k = i + 1; k < f->nsent; k++) {
		timeout |= sent_starts(f, k, "SIP/2.0 408 No Answer");
		cancelled |= sent_starts(f, k, "CANCEL ");
	}
	CHECK(timeout && cancelled);
	CHECK_INT(proxy_stats(f->p)->noanswer, 1);
	teardown(f);
}

static void t_branch_timeout_is_408(void)
{
	struct fx *f = setup(600);
	call(f, 1);
	for (int k = 0; k < 40; k++)
		advance(f, 1000);
	bool timeout = false;
	for (unsigned k = 0; k < f->nsent; k++)
		timeout |= sent_starts(f, k, "SIP/2.0 408");
	CHECK(timeout);
	teardown(f);
}

/* The INVITE to bob's first phone, held for the media relay under hold_id (record-routed
 * when rr); returns its server transaction. */
static struct txn_server *hold_invite(struct fx *f, bool rr, uint64_t hold_id)
{
	struct txn_server *st = inject(f, invite);
	struct proxy_target t = { .ruri = STR("sip:bob@10.0.0.3"), .dst = f->phone[0] };
	t.dst.lis = &f->lis;
	struct proxy_fwd_flags fl = { .record_route = rr };
	struct proxy_call_info ci = { STR("alice@a.test"), STR("bob@a.test"), STR("relay udp:127.0.0.1:2223") };
	CHECK_INT(proxy_forward_held(f->p, st, &t, 1, &fl, &ci, hold_id), 0);
	return st;
}

/* A call held for the media relay: 100 Trying at once, no INVITE until the release, then
 * the INVITE with the relay's SDP (Content-Length following it). */
static void t_held_then_released_with_sdp(void)
{
	struct fx *f = setup(60);
	unsigned before = f->nsent;
	hold_invite(f, true, 7);
	CHECK_INT(f->nsent, before + 1);
	CHECK(sent_starts(f, before, "SIP/2.0 100 Trying"));
	CHECK_INT(proxy_release(f->p, 8, 0, NULL, 0, STR_NULL), -ENOENT); /* not ours */
	const char sdp[] = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
			   "m=audio 30000 RTP/AVP 0\r\n";
	struct str body = str_from_cstr(sdp);
	CHECK_INT(proxy_release(f->p, 7, 0, &body, 1, STR("relay udp:127.0.0.1:2223")), 0);
	CHECK_INT(f->nsent, before + 2);
	CHECK(sent_starts(f, before + 1, "INVITE sip:bob@10.0.0.3 SIP/2.0"));
	CHECK(strstr(f->sent[before + 1], "c=IN IP4 192.0.2.9") != NULL);
	char cl[40];
	snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(sdp));
	CHECK(strstr(f->sent[before + 1], cl) != NULL);
	CHECK_INT(proxy_release(f->p, 7, 0, NULL, 0, STR_NULL), -ENOENT); /* released once */
	respond(f, before + 1, 486, "t1");
	CHECK_INT(f->ended, 1); /* the relay is told the call is over */
	teardown(f);
}

/* Two forks held for the relay: each INVITE carries the Via branch its offer was made for
 * and its own SDP. */
static void t_held_forks_own_branch_and_sdp(void)
{
	struct fx *f = setup(60);
	struct txn_server *st = inject(f, invite);
	struct proxy_target t[2] = {
		{ .ruri = STR("sip:bob@10.0.0.3"), .dst = f->phone[0], .branch = STR("z9hG4bKfork0") },
		{ .ruri = STR("sip:bob@10.0.0.4"), .dst = f->phone[1], .branch = STR("z9hG4bKfork1") },
	};
	t[0].dst.lis = t[1].dst.lis = &f->lis;
	struct proxy_fwd_flags fl = { .record_route = true };
	struct proxy_call_info ci = { STR("alice@a.test"), STR("bob@a.test"), STR("relay udp:127.0.0.1:2223") };
	CHECK_INT(proxy_forward_held(f->p, st, t, 2, &fl, &ci, 5), 0);
	unsigned before = f->nsent;
	struct str body[2] = { STR("v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 30000 RTP/AVP 0\r\n"),
			       STR("v=0\r\nc=IN IP4 192.0.2.11\r\nm=audio 30002 RTP/AVP 0\r\n") };
	CHECK_INT(proxy_release(f->p, 5, 0, body, 2, STR("relay udp:127.0.0.1:2223")), 0);
	CHECK_INT(f->nsent, before + 2);
	for (unsigned i = 0; i < 2; i++) {
		const char *m = f->sent[before + i];
		bool first = strstr(m, "INVITE sip:bob@10.0.0.3 ") == m;
		CHECK(strstr(m, first ? "branch=z9hG4bKfork0" : "branch=z9hG4bKfork1") != NULL);
		CHECK(strstr(m, first ? "192.0.2.10" : "192.0.2.11") != NULL);
		CHECK(strstr(m, first ? "192.0.2.11" : "192.0.2.10") == NULL);
	}
	teardown(f);
}

/* A CANCEL while the relay works: 487 at once, nothing downstream, the release finds nothing. */
static void t_held_cancelled(void)
{
	struct fx *f = setup(60);
	struct txn_server *st = hold_invite(f, false, 1);
	struct txn_server *cst = inject(f, cancel);
	unsigned before = f->nsent;
	proxy_cancel(f->p, cst, st);
	CHECK_INT(f->nsent, before + 2);
	CHECK(sent_starts(f, before, "SIP/2.0 200"));
	CHECK(sent_starts(f, before + 1, "SIP/2.0 487"));
	CHECK_INT(f->ended, 1);
	CHECK_INT(proxy_release(f->p, 1, 0, NULL, 0, STR_NULL), -ENOENT);
	CHECK_INT(f->nsent, before + 2);
	teardown(f);
}

/* A required relay that failed: the held INVITE is answered 503. */
static void t_held_refused(void)
{
	struct fx *f = setup(60);
	hold_invite(f, false, 3);
	unsigned before = f->nsent;
	CHECK_INT(proxy_release(f->p, 3, 503, NULL, 0, STR("direct")), 0);
	CHECK_INT(f->nsent, before + 1);
	CHECK(sent_starts(f, before, "SIP/2.0 503"));
	CHECK_INT(f->ended, 1);
	teardown(f);
}

static const struct unit_case cases[] = {
	{ "held_then_released_with_sdp", t_held_then_released_with_sdp },
	{ "held_forks_own_branch_and_sdp", t_held_forks_own_branch_and_sdp },
	{ "held_cancelled", t_held_cancelled },
	{ "held_refused", t_held_refused },
	{ "forward_edits", t_forward_edits },
	{ "best_of_486_and_503", t_best_of_486_and_503 },
	{ "503_becomes_500", t_503_becomes_500 },
	{ "6xx_cancels_the_rest", t_6xx_cancels_the_rest },
	{ "2xx_cancels_the_rest", t_2xx_cancels_the_rest },
	{ "cancel_before_any_provisional", t_cancel_before_any_provisional },
	{ "ring_timeout", t_ring_timeout },
	{ "branch_timeout_is_408", t_branch_timeout_is_408 },
};

UNIT_MAIN(cases)
