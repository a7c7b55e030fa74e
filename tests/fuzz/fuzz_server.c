/* fuzz_server.c: libFuzzer target for the whole receive path: datagrams into the real server on a simulated clock. */
/*
 * One server per process (127.0.0.1:0 and [::1]:0 listeners that never send, the store in
 * memory, users alice@a.test and bob@a.test, bob registered from 127.0.0.20:5070, peer
 * b.test at 127.0.0.30). An input is a list of records:
 *
 *   ctl(1) delay(1) len(2, big-endian) payload(len; shorter at the end of the input)
 *
 *   ctl bits 0-2  the source address (sources[] below)
 *   ctl bits 3-4  0, 1: the payload as is
 *                 2: a request signed for the last 401/407 the server sent (Authorization or
 *                    Proxy-Authorization for the From user, the To user for REGISTER;
 *                    alice unless it is bob): reaches the registrar and authenticated calls
 *                 3: a response to one of the last 4 requests the server sent (bits 0-1
 *                    pick which, newest first), from where it went: the payload gives the
 *                    status line and any further lines; Via, From, To (with a tag),
 *                    Call-ID and CSeq are copied from the request, whose branch nobody
 *                    could guess otherwise
 *   ctl bits 5-7  unit of delay: the clock moves delay * unit ms before the datagram
 *
 * Every message the server sends must parse. After the input the clock runs until no
 * transaction is left, and bob's binding is put back as it was, so that an input finds the
 * same server as any other.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
#include "location/location.h"
#include "route/route.h"
#include "router/router.h"
#include "server/config.h"
#include "server/server.h"
#include "store/store.h"
#include "sip/sip.h"
#include "transport/transport.h"
#include "txn/txn.h"

#define WALL_BASE_MS 1893456000000ull /* 2030-01-01; any fixed time does */
#define NREQ 4                        /* requests remembered for responses */
#define RECREATE_EVERY 4096           /* inputs between fresh servers: call records pile up */
#define QUIET_STEPS 300               /* 2 s steps after an input; RFC 3261 timers end in 64*T1 */

struct sent {
	struct tp_source dst;
	size_t len;
	char buf[SIP_MAX_MSG + 1];
};

struct harness {
	struct config cfg;
	struct log lg;
	struct loop *loop;
	struct server *srv;
	uint64_t mono0;        /* the wheel's time when the server was made */
	struct sent req[NREQ]; /* ring of requests the server sent */
	unsigned nreq;
	char chal[8192]; /* the last 401/407 the server sent */
	size_t chal_len;
	uint32_t nc;             /* nonce count for the next signed request */
	struct loc_binding *bob; /* bob's binding as set up, to notice changes */
	uint32_t bob_cseq, bob_exp;
	unsigned inputs; /* since the server was made */
	char dgram[SIP_MAX_MSG + 8192];
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS]; /* m's header lines */
};

static struct harness *H;

static const struct {
	const char *ip;
	uint16_t port;
} sources[8] = {
	{ "127.0.0.10", 5060 }, /* carol, a phone of another domain */
	{ "127.0.0.11", 5062 }, /* alice's phone */
	{ "127.0.0.20", 5070 }, /* bob's phone: the registered binding */
	{ "127.0.0.30", 5060 }, /* the peer server of b.test */
	{ "::1", 5080 },        { "127.0.0.1", 5060 }, { "10.0.0.5", 5060 }, { "192.0.2.7", 5060 },
};

static const unsigned delay_unit[8] = { 0, 1, 4, 16, 64, 256, 1000, 2000 };

static uint64_t wall_ms(void *arg)
{
	struct harness *h = arg;
	return WALL_BASE_MS + (loop_timers(h->loop)->now - h->mono0);
}

/* The modules the harness looks into (server.h's test seam). */
static struct server_parts parts(struct server *s)
{
	struct server_parts p;
	server_parts(s, &p);
	return p;
}

/* Every request the server sends (a forwarded copy, a CANCEL, an ACK) must parse. Its
 * responses are not held to that: a 400 for a request without From or Via copies only
 * what the request had. */
static void must_parse(const char *buf, size_t len)
{
	struct sip_parse_err e;
	if (len >= 8 && memcmp(buf, "SIP/2.0 ", 8) == 0)
		return;
	if (sip_msg_parse(&H->m, H->hdr, SIP_MAX_HEADERS, buf, len, true, &e) != SIP_PARSE_OK) {
		/* A forwarded copy may go past the header limit the input was just under. */
		if (e.code == 513 || (e.reason && strcasecmp(e.reason, "Too many headers") == 0))
			return;
		fprintf(stderr, "fuzz_server: the server sent an unparsable request (%s):\n%.*s\n",
			e.reason ? e.reason : "?", (int)len, buf);
		abort();
	}
}

static int on_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct harness *h = arg;
	if (len > SIP_MAX_MSG)
		abort(); /* nothing larger fits in a datagram */
	must_parse(buf, len);
	if (len >= 12 && memcmp(buf, "SIP/2.0 ", 8) == 0) {
		if ((memcmp(buf + 8, "401", 3) == 0 || memcmp(buf + 8, "407", 3) == 0) && len <= sizeof h->chal) {
			memcpy(h->chal, buf, len);
			h->chal_len = len;
		}
		return 0;
	}
	struct sent *s = &h->req[h->nreq++ % NREQ];
	s->dst = *dst;
	memcpy(s->buf, buf, len);
	s->len = len;
	return 0;
}

/* Moves the simulated clock ms forward in steps: a timer fires at most one step late, and a
 * retransmission timer fires once per step, so the order of events stays that of real time.
 * Steps are coarse because the registrar's sweep (every 100 ms) scans a slice of the
 * location table on every one: fine steps over minutes would cost most of the run. */
static void advance(struct harness *h, uint64_t ms)
{
	struct timer_wheel *w = loop_timers(h->loop);
	uint64_t start = w->now, end = w->now + ms;
	while (w->now < end) {
		uint64_t step = w->now - start < 4000 ? 500 : 2000;
		timer_advance(w, w->now + step < end ? w->now + step : end);
	}
}

static void source(struct tp_source *src, unsigned i)
{
	memset(src, 0, sizeof(*src));
	src->proto = TP_UDP;
	tp_addr_from_host(&src->addr, str_from_cstr(sources[i].ip), sources[i].port);
}

static void inject(struct harness *h, const struct tp_source *src, const char *buf, size_t len)
{
	/* The server may read its buffer to the end: give it an exact-size heap copy so that
	 * ASan sees an overread, as the replay driver does for whole inputs. */
	char *p = malloc(len ? len : 1);
	memcpy(p, buf, len);
	server_inject(h->srv, src, p, len);
	free(p);
}

static void out(char **o, const char *end, const char *p, size_t n)
{
	if (n > (size_t)(end - *o))
		n = (size_t)(end - *o);
	memcpy(*o, p, n);
	*o += n;
}

static void out_str(char **o, const char *end, struct str s)
{
	out(o, end, s.p, s.l);
}

static void out_cstr(char **o, const char *end, const char *s)
{
	out(o, end, s, strlen(s));
}

/* Adds digest credentials answering the last challenge to request p (mode 2). Without a
 * challenge, or for a request that would make the server ask DNS (a foreign domain that
 * is neither numeric nor a peer), the request goes as it is. */
static size_t sign(struct harness *h, const char *p, size_t n, char *dst, size_t cap)
{
	struct sip_parse_err e;
	struct sip_msg *m = &h->m;
	if (!h->chal_len || sip_msg_parse(m, h->hdr, SIP_MAX_HEADERS, p, n, true, &e) != SIP_PARSE_OK || !m->request)
		goto as_is;
	if (m->mid != SIP_REGISTER && !str_caseeq_cstr(m->ruri.host, "a.test")) {
		struct route_target t[ROUTE_MAX_TARGETS];
		unsigned nt;
		if (route_lookup(parts(h->srv).route, &m->ruri, t, &nt) == -EWOULDBLOCK)
			goto as_is;
	}
	struct str who = m->mid == SIP_REGISTER ? m->to.uri.user : m->from.uri.user;
	bool bob = str_eq(who, STR("bob"));
	struct str method = m->method, uri = m->ruri_str;
	if (m->nhdr == 0)
		goto as_is;
	size_t line = (size_t)(m->hdr[0].line.p - p); /* the request line with its CRLF */

	struct sip_msg *c = &h->m; /* the challenge, parsed after the request's views are used */
	char hdr[2048];
	char *o = hdr, *end = hdr + sizeof hdr;
	/* The request's views die with the next parse: keep the values needed. */
	char mbuf[64], ubuf[1024];
	if (method.l >= sizeof mbuf || uri.l >= sizeof ubuf)
		goto as_is;
	memcpy(mbuf, method.p, method.l);
	memcpy(ubuf, uri.p, uri.l);
	method.p = mbuf;
	uri.p = ubuf;
	if (sip_msg_parse(c, h->hdr, SIP_MAX_HEADERS, h->chal, h->chal_len, true, &e) != SIP_PARSE_OK)
		goto as_is;
	bool proxy = c->status == 407;
	const struct sip_hdr *ch = sip_msg_hdr(c, proxy ? SIP_HDR_PROXY_AUTHENTICATE : SIP_HDR_WWW_AUTHENTICATE);
	struct sip_auth a;
	enum auth_alg alg = AUTH_MD5;
	if (!ch || sip_auth_parse(&a, ch->value) != 0 || (a.algorithm.l && !auth_alg_from_name(a.algorithm, &alg)))
		goto as_is;
	char cnonce[16], nc[16], resp[AUTH_HEX_MAX];
	snprintf(cnonce, sizeof cnonce, "fz%u", h->nc);
	struct auth_client ac = {
		.alg = alg,
		.user = bob ? STR("bob") : STR("alice"),
		.realm = a.realm,
		.password = bob ? STR("bobpw") : STR("alicepw"),
		.method = method,
		.uri = uri,
		.nonce = a.nonce,
		.qop = STR("auth"),
		.cnonce = str_from_cstr(cnonce),
		.nc = h->nc,
	};
	if (auth_client_response(&ac, resp) < 0)
		goto as_is;
	snprintf(nc, sizeof nc, "%08x", h->nc++);
	out_cstr(&o, end, proxy ? "Proxy-Authorization: Digest username=\"" : "Authorization: Digest username=\"");
	out_str(&o, end, ac.user);
	out_cstr(&o, end, "\", realm=\"");
	out_str(&o, end, a.realm);
	out_cstr(&o, end, "\", nonce=\"");
	out_str(&o, end, a.nonce);
	out_cstr(&o, end, "\", uri=\"");
	out_str(&o, end, uri);
	out_cstr(&o, end, "\", response=\"");
	out_cstr(&o, end, resp);
	out_cstr(&o, end, "\", algorithm=");
	out_cstr(&o, end, auth_alg_name(alg));
	out_cstr(&o, end, ", qop=auth, nc=");
	out_cstr(&o, end, nc);
	out_cstr(&o, end, ", cnonce=\"");
	out_cstr(&o, end, cnonce);
	out_cstr(&o, end, "\"\r\n");
	size_t hl = (size_t)(o - hdr);
	if (line + hl + (n - line) > cap)
		goto as_is;
	memcpy(dst, p, line);
	memcpy(dst + line, hdr, hl);
	memcpy(dst + line + hl, p + line, n - line);
	return line + hl + (n - line);
as_is:
	if (n > cap)
		n = cap;
	memcpy(dst, p, n);
	return n;
}

/* Builds a response to remembered request r (mode 3) from the payload's status line and
 * further lines. Returns 0 when there is no such request. */
static size_t respond(struct harness *h, const struct sent *r, const char *p, size_t n, char *dst, size_t cap)
{
	struct sip_parse_err e;
	struct sip_msg *m = &h->m;
	if (!r->len || sip_msg_parse(m, h->hdr, SIP_MAX_HEADERS, r->buf, r->len, true, &e) != SIP_PARSE_OK)
		return 0;
	const char *nl = memchr(p, '\n', n);
	size_t first = nl ? (size_t)(nl - p) + 1 : n;
	char *o = dst, *end = dst + cap;
	out(&o, end, p, first);
	if (!nl)
		out_cstr(&o, end, "\r\n");
	static const enum sip_hdr_id copy[] = { SIP_HDR_VIA, SIP_HDR_FROM, SIP_HDR_TO, SIP_HDR_CALL_ID, SIP_HDR_CSEQ };
	for (unsigned k = 0; k < sizeof copy / sizeof copy[0]; k++) {
		for (const struct sip_hdr *hd = sip_msg_hdr(m, copy[k]); hd; hd = sip_msg_hdr_next(m, hd)) {
			if (copy[k] == SIP_HDR_TO && m->to.tag.l == 0 && !(n >= 11 && memcmp(p + 8, "100", 3) == 0)) {
				/* the phone's tag: its dialog */
				out_str(&o, end, hd->name);
				out_cstr(&o, end, ": ");
				out_str(&o, end, hd->value);
				out_cstr(&o, end, ";tag=fzb1\r\n");
				continue;
			}
			out_str(&o, end, hd->line);
		}
	}
	if (first < n)
		out(&o, end, p + first, n - first);
	else
		out_cstr(&o, end, "Content-Length: 0\r\n\r\n");
	return (size_t)(o - dst);
}

/* Runs one record: where it comes from, what it carries. */
static void record(struct harness *h, uint8_t ctl, const char *p, size_t n)
{
	struct tp_source src;
	size_t len;
	unsigned how = (ctl >> 3) & 3;
	if (how == 3) {
		const struct sent *r = &h->req[(h->nreq + NREQ - 1 - (ctl & 3)) % NREQ];
		if (h->nreq <= (ctl & 3u))
			return;
		len = respond(h, r, p, n, h->dgram, sizeof h->dgram);
		if (!len)
			return;
		src = r->dst;
		src.lis = NULL;
	} else {
		source(&src, ctl & 7);
		len = how == 2 ? sign(h, p, n, h->dgram, sizeof h->dgram) : (memcpy(h->dgram, p, n), n);
	}
	inject(h, &src, h->dgram, len);
}

/* Runs the clock until every transaction and DNS wait is over; RFC 3261's timers end
 * every transaction within minutes, whatever the peers do, so one left after ten
 * simulated minutes is a leak. */
static void quiesce(struct harness *h)
{
	const struct txn_stats *ts = txn_layer_stats(parts(h->srv).txn);
	for (unsigned i = 0; i < QUIET_STEPS; i++) {
		if (ts->servers + ts->clients == 0 && !router_stats(parts(h->srv).router)->waiting)
			return;
		advance(h, 2000);
	}
	fprintf(stderr, "fuzz_server: %u server and %u client transactions%s outlived ten minutes\n", ts->servers,
		ts->clients, router_stats(parts(h->srv).router)->waiting ? " and a DNS wait" : "");
	abort();
}

static void send_text(struct harness *h, uint8_t ctl, const char *text)
{
	record(h, ctl, text, strlen(text));
}

/* Registers bob's phone through the server itself: a REGISTER, its 401, the signed one. */
static void register_bob(struct harness *h)
{
	static const char reg[] = "REGISTER sip:a.test SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bKbobreg%u;rport\r\n"
				  "Max-Forwards: 70\r\n"
				  "From: <sip:bob@a.test>;tag=bobreg\r\n"
				  "To: <sip:bob@a.test>\r\n"
				  "Call-ID: bob-reg@127.0.0.20\r\n"
				  "CSeq: %u REGISTER\r\n"
				  "Contact: <sip:bob@127.0.0.20:5070>;expires=86400\r\n"
				  "Content-Length: 0\r\n\r\n";
	char buf[1024];
	static unsigned cseq; /* the registrar wants it to grow within one Call-ID */
	h->chal_len = 0;
	h->nc = 1;
	cseq++;
	snprintf(buf, sizeof buf, reg, cseq, cseq);
	send_text(h, 2, buf);
	cseq++;
	snprintf(buf, sizeof buf, reg, cseq, cseq);
	send_text(h, 2 | 2 << 3, buf);
	quiesce(h);
	struct loc_aor *a = loc_find(parts(h->srv).loc, STR("bob@a.test"));
	h->bob = a ? a->first : NULL;
	if (!h->bob) {
		fprintf(stderr, "fuzz_server: bob could not register\n");
		abort();
	}
	h->bob_cseq = h->bob->cseq;
	h->bob_exp = h->bob->expires_at;
}

static void drop_bindings(struct harness *h, const char *aor)
{
	struct loc_aor *a;
	while ((a = loc_find(parts(h->srv).loc, str_from_cstr(aor))) && a->first)
		loc_del(parts(h->srv).loc, a->first);
}

/* Puts the location table back to bob's one binding when an input changed it. */
static void restore(struct harness *h)
{
	uint32_t now = (uint32_t)(wall_ms(h) / 1000);
	struct loc_aor *a = loc_find(parts(h->srv).loc, STR("bob@a.test"));
	if (loc_binding_count(parts(h->srv).loc) == 1 && a && a->first == h->bob && h->bob->cseq == h->bob_cseq &&
	    h->bob->expires_at == h->bob_exp && h->bob_exp > now + 3600)
		return;
	drop_bindings(h, "alice@a.test");
	drop_bindings(h, "bob@a.test");
	register_bob(h);
}

static void teardown(struct harness *h)
{
	server_free(h->srv);
	h->srv = NULL;
	loop_free(h->loop);
	h->loop = NULL;
}

static void setup(struct harness *h)
{
	char err[256];
	if (loop_new(&h->loop) < 0)
		abort();
	h->mono0 = loop_timers(h->loop)->now;
	struct server_hooks hooks = { .send = on_send, .send_arg = h, .wall_ms = wall_ms, .clock_arg = h };
	if (server_new_with_hooks(&h->srv, &h->cfg, h->loop, &h->lg, &hooks, err, sizeof err) != 0) {
		/* No IPv6 loopback here: go on with IPv4 alone. */
		h->cfg.tp.nlisten = 1;
		if (server_new_with_hooks(&h->srv, &h->cfg, h->loop, &h->lg, &hooks, err, sizeof err) != 0) {
			fprintf(stderr, "fuzz_server: %s\n", err);
			abort();
		}
	}
	struct store *st = parts(h->srv).store;
	/* No realm configured: the HA1 values are over the domain, as `parley user add` makes them. */
	char md5[2][AUTH_HEX_MAX], sha256[2][AUTH_HEX_MAX];
	auth_ha1(AUTH_MD5, STR("alice"), STR("a.test"), STR("alicepw"), md5[0]);
	auth_ha1(AUTH_SHA256, STR("alice"), STR("a.test"), STR("alicepw"), sha256[0]);
	auth_ha1(AUTH_MD5, STR("bob"), STR("a.test"), STR("bobpw"), md5[1]);
	auth_ha1(AUTH_SHA256, STR("bob"), STR("a.test"), STR("bobpw"), sha256[1]);
	if (store_user_add(st, STR("alice"), STR("a.test"), md5[0], sha256[0]) < 0 ||
	    store_user_add(st, STR("bob"), STR("a.test"), md5[1], sha256[1]) < 0) {
		fprintf(stderr, "fuzz_server: %s\n", store_errmsg(st));
		abort();
	}
	h->nreq = 0;
	h->inputs = 0;
	register_bob(h);
}

static void init(void)
{
	if (H)
		return;
	H = calloc(1, sizeof(*H));
	if (!H)
		abort();
	struct config *c = &H->cfg;
	config_defaults(c);
	strcpy(c->tp.listen[0], "udp:127.0.0.1:0");
	strcpy(c->tp.listen[1], "udp:[::1]:0");
	c->tp.nlisten = 2;
	strcpy(c->route.domain[0], "a.test");
	c->route.ndomain = 1;
	strcpy(c->server.db, ":memory:");
	strcpy(c->route.peer[0].domain, "b.test");
	strcpy(c->route.peer[0].uri, "sip:127.0.0.30:5060");
	c->route.npeer = 1;
	/* Never asked (sign() keeps requests away from DNS), and were it asked, the query
	 * would stay on this host. */
	strcpy(c->route.dns, "127.0.0.1:9");
	/* Keepalives to phones behind NAT are sent for as long as they are registered: the
	 * check that no transaction outlives its timers would count them. test_registrar
	 * covers them. */
	c->reg.nat_ping_interval = 0;
	/* Every log line is formatted, so views printed in logs are checked too. */
	const char *level = getenv("FUZZ_SERVER_LOG");
	if (log_open(&H->lg, level ? LOG_DEBUG : LOG_INFO, false, level ? "" : "/dev/null") < 0)
		abort();
	setup(H);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init(); /* the replay driver does not call LLVMFuzzerInitialize */
	struct harness *h = H;
	if (h->inputs++ == RECREATE_EVERY) {
		teardown(h);
		setup(h);
		h->inputs = 1;
	}
	h->chal_len = 0;
	h->nc = 1;
	memset(h->req, 0, sizeof h->req);
	h->nreq = 0;
	size_t i = 0;
	while (size - i >= 4) {
		uint8_t ctl = data[i], delay = data[i + 1];
		size_t n = (size_t)data[i + 2] << 8 | data[i + 3];
		i += 4;
		if (n > size - i)
			n = size - i;
		advance(h, (uint64_t)delay * delay_unit[ctl >> 5]);
		record(h, ctl, (const char *)data + i, n);
		i += n;
	}
	quiesce(h);
	restore(h);
	return 0;
}
