/* test_router.c: unit tests of the router's decisions (README "What Parley does with a request") over the real modules wired in memory, with captured sends. */
#include "unit.h"

#include <stdlib.h>

#include "router/router.h"

#define MAXSENT 64
/* The wall clock of every test (ms): nonces and call records read it, nothing else does. */
#define NOW_MS 1700000000000ull

/* One message that went out, and where to. */
struct sent {
	char *text;
	struct tp_source dst;
};

/* One test's world: the modules the server wires (server_new), a clock, and every send. */
struct fx {
	struct route_cfg route_cfg;
	struct router_cfg router_cfg;
	struct reg_cfg reg_cfg;
	struct proxy_cfg proxy_cfg;
	struct timer_wheel w; /* driven by hand; the loop's own wheel is never run */
	uint64_t mono;        /* the wheel's time */
	uint64_t wall;        /* the router's clock (env.wall_ms) */
	struct loop *loop;
	struct transport *tp;
	struct txn_layer *l;
	struct store *store;
	struct store_ucache *users;
	struct auth *auth;
	struct location *loc;
	struct registrar *reg;
	struct guard *guard;
	struct dlg_table *dialogs;
	struct route *route;
	struct cdr *cdr;
	struct proxy *proxy;
	struct router *r;
	struct txn_tu tu;
	int load;               /* what on_request passes to router_request */
	char me[80];            /* our listener, "127.0.0.1:PORT" */
	struct tp_source src;   /* where requests come from unless told otherwise */
	struct tp_source phone; /* bob's phone */
	unsigned branch;        /* makes every "$B" a new transaction */
	struct sent sent[MAXSENT];
	unsigned nsent;
};

static int on_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct fx *f = arg;
	if (f->nsent < MAXSENT) {
		struct sent *s = &f->sent[f->nsent++];
		s->text = malloc(len + 1);
		memcpy(s->text, buf, len);
		s->text[len] = '\0';
		s->dst = *dst;
	}
	return 0;
}

static void on_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct fx *f = arg;
	router_request(f->r, st, m, src, f->load);
}

/* Nothing is ever read from the socket: requests are handed to the layer directly. */
static void on_recv(const struct tp_source *src, char *buf, size_t len, void *arg)
{
}

static uint64_t wall_ms(void *arg)
{
	struct fx *f = arg;
	return f->wall;
}

static void add_user(struct fx *f, const char *user, const char *pw)
{
	char md5[AUTH_HEX_MAX], sha[AUTH_HEX_MAX];
	auth_ha1(AUTH_MD5, str_from_cstr(user), STR("a.test"), str_from_cstr(pw), md5);
	auth_ha1(AUTH_SHA256, str_from_cstr(user), STR("a.test"), str_from_cstr(pw), sha);
	CHECK_INT(store_user_add(f->store, str_from_cstr(user), STR("a.test"), md5, sha), 0);
}

static void source(struct fx *f, struct tp_source *s, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->proto = TP_UDP;
	s->lis = tp_listener_at(f->tp, 0);
	tp_addr_from_host(&s->addr, str_from_cstr(ip), port);
}

/* Serves a.test with users alice and bob (no phones yet); trust: a --trust host or NULL.
 * The order is server_new's: the proxy before the router. */
static struct fx *setup(const char *trust)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	route_cfg_defaults(&f->route_cfg);
	router_cfg_defaults(&f->router_cfg);
	reg_cfg_defaults(&f->reg_cfg);
	proxy_cfg_defaults(&f->proxy_cfg);
	snprintf(f->route_cfg.domain[0], sizeof f->route_cfg.domain[0], "a.test");
	f->route_cfg.ndomain = 1;
	if (trust) {
		snprintf(f->router_cfg.trust[0], sizeof f->router_cfg.trust[0], "%s", trust);
		f->router_cfg.ntrust = 1;
	}
	f->wall = NOW_MS;
	timer_wheel_init(&f->w, 0);
	CHECK_INT(loop_new(&f->loop), 0);
	struct store_conf sc = { .path = ":memory:" };
	CHECK_INT(store_open(&f->store, &sc), 0);
	CHECK_INT(store_ucache_new(&f->users, f->store, 64, 30), 0);
	add_user(f, "alice", "alicepw");
	add_user(f, "bob", "bobpw");
	struct auth_conf ac = { 0 };
	CHECK_INT(auth_new(&f->auth, &ac), 0);
	CHECK_INT(loc_new(&f->loc), 0);
	struct reg_env re = { .cfg = &f->reg_cfg, .loc = f->loc, .store = f->store };
	CHECK_INT(reg_new(&f->reg, &re), 0);
	CHECK_INT(tp_new(&f->tp, f->loop, on_recv, f), 0);
	CHECK_INT(tp_listen(f->tp, "udp:127.0.0.1:0", err, sizeof err), 0);
	f->tu.on_request = on_request;
	struct txn_cfg tc = { 500, 4000, 5000 };
	CHECK_INT(txn_layer_new(&f->l, &tc, &f->w, on_send, f, &f->tu, f), 0);
	struct guard_conf gc;
	guard_conf_default(&gc);
	CHECK_INT(guard_new(&f->guard, &gc), 0);
	struct dlg_conf dc = { 0 };
	CHECK_INT(dlg_table_new(&f->dialogs, &dc), 0);
	CHECK_INT(route_new(&f->route, f->loop, &f->route_cfg), 0);
	CHECK_INT(cdr_new(&f->cdr, f->store, &f->w), 0);
	struct proxy_env pe = {
		.cfg = &f->proxy_cfg,
		.realm = f->router_cfg.realm,
		.route = f->route,
		.wheel = &f->w,
		.txn = f->l,
		.tp = f->tp,
		.cdr = f->cdr,
		.dialogs = f->dialogs,
		.send = on_send,
		.send_arg = f,
	};
	CHECK_INT(proxy_new(&f->proxy, &pe), 0);
	struct router_env rv = {
		.cfg = &f->router_cfg,
		.wheel = &f->w,
		.txn = f->l,
		.tp = f->tp,
		.auth = f->auth,
		.users = f->users,
		.store = f->store,
		.loc = f->loc,
		.reg = f->reg,
		.proxy = f->proxy,
		.route = f->route,
		.dialogs = f->dialogs,
		.guard = f->guard,
		.cdr = f->cdr,
		.wall_ms = wall_ms,
		.clock_arg = f,
	};
	CHECK_INT(router_new(&f->r, &rv), 0);
	snprintf(f->me, sizeof f->me, "127.0.0.1:%u", tp_listener_at(f->tp, 0)->port);
	source(f, &f->src, "203.0.113.9", 40000);
	source(f, &f->phone, "198.51.100.7", 5062);
	return f;
}

static void teardown(struct fx *f)
{
	router_free(f->r);
	route_free(f->route);
	proxy_free(f->proxy);
	cdr_free(f->cdr);
	dlg_table_free(f->dialogs);
	guard_free(f->guard);
	txn_layer_free(f->l);
	tp_free(f->tp);
	store_close(f->store);
	store_ucache_free(f->users);
	reg_free(f->reg);
	loc_free(f->loc);
	auth_free(f->auth);
	loop_free(f->loop);
	for (unsigned i = 0; i < f->nsent; i++)
		free(f->sent[i].text);
	free(f);
}

static void advance(struct fx *f, uint64_t ms)
{
	f->mono += ms;
	f->wall += ms;
	timer_advance(&f->w, f->mono);
}

/* A parsed message with room for its headers. */
struct parsed {
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
};

/* The one place that parses. */
static bool parse(struct parsed *p, const char *text, size_t len)
{
	struct sip_parse_err perr;
	return sip_msg_parse(&p->m, p->hdr, SIP_MAX_HEADERS, text, len, true, &perr) == SIP_PARSE_OK;
}

/* The request text with "$B" made a fresh branch and "$ME" our listener's host:port;
 * free it. */
static char *expand(struct fx *f, const char *text)
{
	size_t cap = strlen(text) * 2 + 256, n = 0;
	char *out = malloc(cap);
	for (const char *p = text; *p && n + 64 < cap;) {
		if (strncmp(p, "$B", 2) == 0) {
			n += (size_t)snprintf(out + n, cap - n, "z9hG4bKrt%u", ++f->branch);
			p += 2;
		} else if (strncmp(p, "$ME", 3) == 0) {
			n += (size_t)snprintf(out + n, cap - n, "%s", f->me);
			p += 3;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	return out;
}

/* Hands a request (text as for expand) from src to the layer, which passes it to the
 * router; returns the first message sent because of it, or "" when none. */
static const char *send_from(struct fx *f, const struct tp_source *src, const char *text)
{
	char *buf = expand(f, text);
	struct parsed *m = malloc(sizeof(*m));
	unsigned before = f->nsent;
	CHECK(parse(m, buf, strlen(buf)));
	CHECK_INT(txn_recv_request(f->l, &m->m, src), 0);
	free(m);
	free(buf);
	return f->nsent > before ? f->sent[before].text : "";
}

static const char *send_req(struct fx *f, const char *text)
{
	return send_from(f, &f->src, text);
}

/* The last challenge (401/407) sent, or NULL. */
static const char *last_challenge(struct fx *f)
{
	for (unsigned i = f->nsent; i-- > 0;)
		if (strncmp(f->sent[i].text, "SIP/2.0 401 ", 12) == 0 ||
		    strncmp(f->sent[i].text, "SIP/2.0 407 ", 12) == 0)
			return f->sent[i].text;
	return NULL;
}

/* Sends text signed for the last challenge as user/pw: a digest Authorization (401) or
 * Proxy-Authorization (407) line put right after the request line, as a phone does. */
static const char *send_signed_from(struct fx *f, const struct tp_source *src, const char *text, const char *user,
				    const char *pw)
{
	const char *chal = last_challenge(f);
	CHECK(chal != NULL);
	if (!chal)
		return "";
	char *req = expand(f, text);
	struct parsed *pc = malloc(sizeof(*pc));
	CHECK(parse(pc, chal, strlen(chal)));
	struct sip_msg *c = &pc->m;
	bool proxy = c->status == 407;
	const struct sip_hdr *h = sip_msg_hdr(c, proxy ? SIP_HDR_PROXY_AUTHENTICATE : SIP_HDR_WWW_AUTHENTICATE);
	struct sip_auth a = { 0 };
	CHECK(h && sip_auth_parse(&a, h->value) == 0);
	/* The request line: method and Request-URI, which the digest covers. */
	const char *sp1 = strchr(req, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL, *eol = strstr(req, "\r\n");
	CHECK(sp1 && sp2 && eol);
	if (!sp1 || !sp2 || !eol) {
		free(pc);
		free(req);
		return "";
	}
	struct str method = { req, (size_t)(sp1 - req) }, uri = { sp1 + 1, (size_t)(sp2 - sp1 - 1) };
	char resp[AUTH_HEX_MAX];
	struct auth_client ac = {
		.alg = AUTH_MD5,
		.user = str_from_cstr(user),
		.realm = a.realm,
		.password = str_from_cstr(pw),
		.method = method,
		.uri = uri,
		.nonce = a.nonce,
		.qop = STR("auth"),
		.cnonce = STR("c0ffee"),
		.nc = 1,
	};
	CHECK_INT(auth_client_response(&ac, resp), 0);
	size_t cap = strlen(req) + 1024;
	char *out = malloc(cap);
	size_t line = (size_t)(eol + 2 - req);
	memcpy(out, req, line);
	snprintf(out + line, cap - line,
		 "%s: Digest username=\"%s\", realm=\"%.*s\", nonce=\"%.*s\", uri=\"%.*s\", response=\"%s\", "
		 "algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n%s",
		 proxy ? "Proxy-Authorization" : "Authorization", user, STR_FMT(a.realm), STR_FMT(a.nonce),
		 STR_FMT(uri), resp, req + line);
	free(pc);
	free(req);
	/* out has no "$B" or "$ME" left: expand copies it as it is. */
	const char *r = send_from(f, src, out);
	free(out);
	return r;
}

static const char *send_signed(struct fx *f, const char *text, const char *user, const char *pw)
{
	return send_signed_from(f, &f->src, text, user, pw);
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The value of the first header line named name in a message, or "" (a static buffer). */
static const char *header(const char *msg, const char *name)
{
	static char val[512];
	char key[80];
	snprintf(key, sizeof key, "\r\n%s: ", name);
	const char *p = strstr(msg, key);
	val[0] = '\0';
	if (p) {
		p += strlen(key);
		const char *e = strstr(p, "\r\n");
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n >= sizeof val)
			n = sizeof val - 1;
		memcpy(val, p, n);
		val[n] = '\0';
	}
	return val;
}

/* The first message sent since index from that starts with prefix, or NULL. */
static const struct sent *find_sent(struct fx *f, unsigned from, const char *prefix)
{
	for (unsigned i = from; i < f->nsent; i++)
		if (starts(f->sent[i].text, prefix))
			return &f->sent[i];
	return NULL;
}

static bool sent_to(const struct sent *s, const char *ip, uint16_t port)
{
	struct tp_addr a;
	tp_addr_from_host(&a, str_from_cstr(ip), port);
	return s && tp_addr_equal(&s->dst.addr, &a);
}

/* Registers bob's phone at 198.51.100.7:5062 (challenge, then signed), from the phone.
 * cseq: 1, then higher for each refresh (the registrar refuses an older one, §10.3). */
static void register_bob(struct fx *f, unsigned cseq)
{
	char text[512];
	snprintf(text, sizeof text,
		 "REGISTER sip:a.test SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=$B\r\n"
		 "From: <sip:bob@a.test>;tag=rb1\r\n"
		 "To: <sip:bob@a.test>\r\n"
		 "Call-ID: reg-bob@x\r\n"
		 "CSeq: %u REGISTER\r\n"
		 "Max-Forwards: 70\r\n"
		 "Contact: <sip:bob@198.51.100.7:5062>\r\n"
		 "Content-Length: 0\r\n\r\n",
		 cseq);
	CHECK(starts(send_from(f, &f->phone, text), "SIP/2.0 401 "));
	CHECK(starts(send_signed_from(f, &f->phone, text, "bob", "bobpw"), "SIP/2.0 200 OK\r\n"));
	CHECK(loc_find(f->loc, STR("bob@a.test")) != NULL);
}

static int count_call(const struct store_call *c, void *arg)
{
	unsigned *n = arg;
	n[0]++;
	n[1] = c->status; /* newest first: the last one seen is the oldest */
	return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* An INVITE from a caller elsewhere (no challenge for it) to bob. */
static const char invite_bob[] = "INVITE sip:bob@a.test SIP/2.0\r\n"
				 "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
				 "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				 "To: <sip:bob@a.test>\r\n"
				 "Call-ID: call-zed@x\r\n"
				 "CSeq: 1 INVITE\r\n"
				 "Max-Forwards: 70\r\n"
				 "Contact: <sip:zed@203.0.113.9:40000>\r\n"
				 "Content-Length: 0\r\n\r\n";

/* An INVITE from alice, one of ours (challenged), to bob. */
static const char alice_to_bob[] = "INVITE sip:bob@a.test SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
				   "From: <sip:alice@a.test>;tag=a1\r\n"
				   "To: <sip:bob@a.test>\r\n"
				   "Call-ID: call-alice@x\r\n"
				   "CSeq: 1 INVITE\r\n"
				   "Max-Forwards: 70\r\n"
				   "Contact: <sip:alice@203.0.113.9:40000>\r\n"
				   "Content-Length: 0\r\n\r\n";

static const char register_alice[] = "REGISTER sip:a.test SIP/2.0\r\n"
				     "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				     "From: <sip:alice@a.test>;tag=ra1\r\n"
				     "To: <sip:alice@a.test>\r\n"
				     "Call-ID: reg-alice@x\r\n"
				     "CSeq: 1 REGISTER\r\n"
				     "Max-Forwards: 70\r\n"
				     "Contact: <sip:alice@203.0.113.9:40000>\r\n"
				     "Content-Length: 0\r\n\r\n";

static const char options_server[] = "OPTIONS sip:a.test SIP/2.0\r\n"
				     "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				     "From: <sip:zed@elsewhere.test>;tag=o1\r\n"
				     "To: <sip:a.test>\r\n"
				     "Call-ID: opt@x\r\n"
				     "CSeq: 1 OPTIONS\r\n"
				     "Max-Forwards: 70\r\n"
				     "Content-Length: 0\r\n\r\n";

/* ---- rule 3: CANCEL ---------------------------------------------------------------------- */

static void t_cancel_nothing_481(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "CANCEL sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKnone\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: none@x\r\n"
				    "CSeq: 1 CANCEL\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
	CHECK_INT(f->nsent, 1);
	teardown(f);
}

static void t_cancel_pending_invite(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	static const char inv[] = "INVITE sip:bob@a.test SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKcan1\r\n"
				  "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				  "To: <sip:bob@a.test>\r\n"
				  "Call-ID: can@x\r\n"
				  "CSeq: 1 INVITE\r\n"
				  "Max-Forwards: 70\r\n"
				  "Content-Length: 0\r\n\r\n";
	CHECK(starts(send_req(f, inv), "SIP/2.0 100 Trying\r\n"));
	unsigned mark = f->nsent;
	const char *r = send_req(f, "CANCEL sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKcan1\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: can@x\r\n"
				    "CSeq: 1 CANCEL\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_STR(str_from_cstr(header(r, "CSeq")), "1 CANCEL");
	/* The phone sends nothing at all (not even a 180): the caller still gets its 487 soon. */
	advance(f, 5000);
	const struct sent *t = find_sent(f, mark, "SIP/2.0 487 ");
	CHECK(t != NULL);
	if (t) {
		CHECK_STR(str_from_cstr(header(t->text, "CSeq")), "1 INVITE");
		CHECK(sent_to(t, "203.0.113.9", 40000));
	}
	teardown(f);
}

/* ---- rule 4: Max-Forwards, Proxy-Require, Accept ------------------------------------------ */

static void t_max_forwards_zero_483(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	const char *r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: mf0@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 0\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 483 Too Many Hops\r\n"));
	CHECK(find_sent(f, 0, "INVITE ") == NULL);
	teardown(f);
}

static void t_max_forwards_zero_options_to_server_200(void)
{
	struct fx *f = setup(NULL);
	/* The one request a hop count of 0 still lets through: it is for us. */
	const char *r = send_req(f, "OPTIONS sip:a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=o1\r\n"
				    "To: <sip:a.test>\r\n"
				    "Call-ID: opt0@x\r\n"
				    "CSeq: 1 OPTIONS\r\n"
				    "Max-Forwards: 0\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(header(r, "Allow"), "INVITE") != NULL);
	teardown(f);
}

static void t_proxy_require_420(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	const char *r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: preq@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Proxy-Require: foo, bar\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 420 Bad Extension\r\n"));
	CHECK_STR(str_from_cstr(header(r, "Unsupported")), "foo, bar");
	teardown(f);
}

static void t_accept_without_sdp_406(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	const char *r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: acc@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Accept: text/plain\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 406 Not Acceptable\r\n"));
	/* A wildcard over application covers SDP: that one goes on. */
	r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
			"Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
			"From: <sip:zed@elsewhere.test>;tag=z2\r\n"
			"To: <sip:bob@a.test>\r\n"
			"Call-ID: acc2@x\r\n"
			"CSeq: 1 INVITE\r\n"
			"Max-Forwards: 70\r\n"
			"Accept: text/plain, application/*;q=0.5\r\n"
			"Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 100 Trying\r\n"));
	teardown(f);
}

/* ---- rule 5: inside dialogs, and load ------------------------------------------------------ */

static void t_in_dialog_without_our_route_404(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "BYE sip:bob@198.51.100.7:5062 SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>;tag=b1\r\n"
				    "Call-ID: nodlg@x\r\n"
				    "CSeq: 2 BYE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 404 Not Here\r\n"));
	CHECK_INT(f->nsent, 1);
	teardown(f);
}

static const char bye_via_us[] = "BYE sip:bob@198.51.100.7:5062 SIP/2.0\r\n"
				 "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				 "Route: <sip:$ME;lr>\r\n"
				 "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				 "To: <sip:bob@a.test>;tag=b1\r\n"
				 "Call-ID: dlg@x\r\n"
				 "CSeq: 2 BYE\r\n"
				 "Max-Forwards: 70\r\n"
				 "Content-Length: 0\r\n\r\n";

static void t_in_dialog_unknown_dialog_481(void)
{
	struct fx *f = setup(NULL);
	/* Our Route on top, but no dialog was set up through us: a made-up To tag. */
	const char *r = send_req(f, bye_via_us);
	CHECK(starts(r, "SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
	CHECK(find_sent(f, 0, "BYE ") == NULL);
	teardown(f);
}

/* The dialog an INVITE from zed to bob's phone would have left in the table. */
static void open_dialog(struct fx *f)
{
	uint32_t now = (uint32_t)(f->wall / 1000);
	CHECK_INT(dlg_open(f->dialogs, STR("dlg@x"), STR("z1"), now), 0);
	dlg_learn(f->dialogs, STR("dlg@x"), STR("z1"), DLG_CALLER, &f->src.addr);
	dlg_learn(f->dialogs, STR("dlg@x"), STR("z1"), DLG_CALLEE, &f->phone.addr);
	dlg_confirm(f->dialogs, STR("dlg@x"), STR("z1"), now);
}

static void t_in_dialog_known_dialog_forwarded(void)
{
	struct fx *f = setup(NULL);
	open_dialog(f);
	unsigned mark = f->nsent;
	send_req(f, bye_via_us);
	const struct sent *s = find_sent(f, mark, "BYE sip:bob@198.51.100.7:5062 SIP/2.0\r\n");
	CHECK(s != NULL);
	CHECK(sent_to(s, "198.51.100.7", 5062));
	/* Our own Route was used up here. */
	if (s)
		CHECK(strstr(s->text, "Route:") == NULL);
	teardown(f);
}

static void t_in_dialog_to_stranger_403(void)
{
	struct fx *f = setup(NULL);
	open_dialog(f);
	/* The right dialog and our Route, but a Request-URI that is not bob's phone: a
	 * relay through a dialog someone set up. */
	const char *r = send_req(f, "BYE sip:victim@192.0.2.77:5060 SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "Route: <sip:$ME;lr>\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>;tag=b1\r\n"
				    "Call-ID: dlg@x\r\n"
				    "CSeq: 2 BYE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 403 Not Part of This Dialog\r\n"));
	CHECK(find_sent(f, 0, "BYE ") == NULL);
	teardown(f);
}

static void t_load_sheds_new_invite_503(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	f->load = 1;
	const char *r = send_req(f, invite_bob);
	CHECK(starts(r, "SIP/2.0 503 Service Unavailable\r\n"));
	CHECK_STR(str_from_cstr(header(r, "Retry-After")), "5");
	CHECK_INT(router_stats(f->r)->shed, 1);
	CHECK(find_sent(f, 0, "INVITE ") == NULL);
	teardown(f);
}

static void t_load_in_dialog_still_served(void)
{
	struct fx *f = setup(NULL);
	open_dialog(f);
	f->load = 1;
	unsigned mark = f->nsent;
	send_req(f, bye_via_us);
	CHECK(find_sent(f, mark, "SIP/2.0 503 ") == NULL);
	CHECK(sent_to(find_sent(f, mark, "BYE "), "198.51.100.7", 5062));
	CHECK_INT(router_stats(f->r)->shed, 0);
	teardown(f);
}

static void t_load_register_refresh_served(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	f->load = 1;
	/* bob's phone is registered: its refresh is challenged and served as usual. */
	register_bob(f, 2);
	CHECK_INT(router_stats(f->r)->shed, 0);
	teardown(f);
}

static void t_load_register_new_aor_503(void)
{
	struct fx *f = setup(NULL);
	f->load = 1;
	const char *r = send_req(f, register_alice);
	CHECK(starts(r, "SIP/2.0 503 Service Unavailable\r\n"));
	CHECK_STR(str_from_cstr(header(r, "Retry-After")), "5");
	CHECK(loc_find(f->loc, STR("alice@a.test")) == NULL);
	teardown(f);
}

/* ---- rule 6: REGISTER ---------------------------------------------------------------------- */

static void t_register_challenge_then_200(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, register_alice);
	CHECK(starts(r, "SIP/2.0 401 Unauthorized\r\n"));
	CHECK(starts(header(r, "WWW-Authenticate"), "Digest "));
	CHECK(strstr(header(r, "WWW-Authenticate"), "realm=\"a.test\"") != NULL);
	CHECK_INT(router_stats(f->r)->challenges, 1);
	CHECK(loc_find(f->loc, STR("alice@a.test")) == NULL);
	r = send_signed(f, register_alice, "alice", "alicepw");
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(header(r, "Contact"), "sip:alice@203.0.113.9:40000") != NULL);
	struct loc_aor *a = loc_find(f->loc, STR("alice@a.test"));
	CHECK(a != NULL && a->first != NULL);
	if (a && a->first)
		CHECK_STR(loc_b_field(a->first, LOC_URI), "sip:alice@203.0.113.9:40000");
	teardown(f);
}

static void t_register_other_domain_403(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "REGISTER sip:b.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:alice@b.test>;tag=r1\r\n"
				    "To: <sip:alice@b.test>\r\n"
				    "Call-ID: regb@x\r\n"
				    "CSeq: 1 REGISTER\r\n"
				    "Max-Forwards: 70\r\n"
				    "Contact: <sip:alice@203.0.113.9:40000>\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 403 "));
	CHECK_INT(router_stats(f->r)->challenges, 0);
	teardown(f);
}

static void t_register_to_not_sip_400(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "REGISTER sip:a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:alice@a.test>;tag=r1\r\n"
				    "To: <tel:+15551234>\r\n"
				    "Call-ID: regtel@x\r\n"
				    "CSeq: 1 REGISTER\r\n"
				    "Max-Forwards: 70\r\n"
				    "Contact: <sip:alice@203.0.113.9:40000>\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 400 "));
	teardown(f);
}

static void t_register_require_420(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "REGISTER sip:a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:alice@a.test>;tag=r1\r\n"
				    "To: <sip:alice@a.test>\r\n"
				    "Call-ID: regreq@x\r\n"
				    "CSeq: 1 REGISTER\r\n"
				    "Max-Forwards: 70\r\n"
				    "Require: path, foo\r\n"
				    "Contact: <sip:alice@203.0.113.9:40000>\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 420 Bad Extension\r\n"));
	/* path is understood: only foo is named. */
	CHECK_STR(str_from_cstr(header(r, "Unsupported")), "foo");
	teardown(f);
}

static void t_register_someone_else_403(void)
{
	struct fx *f = setup(NULL);
	/* alice proves who she is, but asks to bind bob's address. */
	static const char text[] = "REGISTER sip:a.test SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				   "From: <sip:bob@a.test>;tag=r1\r\n"
				   "To: <sip:bob@a.test>\r\n"
				   "Call-ID: regother@x\r\n"
				   "CSeq: 1 REGISTER\r\n"
				   "Max-Forwards: 70\r\n"
				   "Contact: <sip:bob@203.0.113.9:40000>\r\n"
				   "Content-Length: 0\r\n\r\n";
	CHECK(starts(send_req(f, text), "SIP/2.0 401 "));
	const char *r = send_signed(f, text, "alice", "alicepw");
	CHECK(starts(r, "SIP/2.0 403 Not Allowed to Register This AOR\r\n"));
	CHECK(loc_find(f->loc, STR("bob@a.test")) == NULL);
	teardown(f);
}

/* ---- rule 7: OPTIONS to the server --------------------------------------------------------- */

static void t_options_to_server_200(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, options_server);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(header(r, "Allow"), "INVITE") != NULL);
	CHECK(strstr(header(r, "Allow"), "REGISTER") != NULL);
	CHECK_STR(str_from_cstr(header(r, "Accept")), "application/sdp");
	CHECK_STR(str_from_cstr(header(r, "Supported")), "path, outbound, gruu");
	CHECK_INT(f->nsent, 1);
	teardown(f);
}

static void t_other_requests_to_server_refused(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "MESSAGE sip:a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=m1\r\n"
				    "To: <sip:a.test>\r\n"
				    "Call-ID: msg@x\r\n"
				    "CSeq: 1 MESSAGE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 404 Not Found\r\n"));
	r = send_req(f, "FROB sip:$ME SIP/2.0\r\n"
			"Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
			"From: <sip:zed@elsewhere.test>;tag=m2\r\n"
			"To: <sip:a.test>\r\n"
			"Call-ID: frob@x\r\n"
			"CSeq: 1 FROB\r\n"
			"Max-Forwards: 70\r\n"
			"Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 501 Not Implemented\r\n"));
	teardown(f);
}

/* ---- rule 8: who is calling ------------------------------------------------------------------ */

static void t_local_from_challenged_407(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	unsigned mark = f->nsent;
	const char *r = send_req(f, alice_to_bob);
	CHECK(starts(r, "SIP/2.0 407 Proxy Authentication Required\r\n"));
	CHECK(starts(header(r, "Proxy-Authenticate"), "Digest "));
	CHECK(find_sent(f, mark, "INVITE ") == NULL);
	/* Challenges are stateless: one answer, never resent, however long we wait. */
	unsigned n = f->nsent;
	advance(f, 40000);
	CHECK_INT(f->nsent, n);
	teardown(f);
}

static void t_credentials_of_another_user_403(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	CHECK(starts(send_req(f, alice_to_bob), "SIP/2.0 407 "));
	/* bob's own, right password: but the From says alice. */
	const char *r = send_signed(f, alice_to_bob, "bob", "bobpw");
	CHECK(starts(r, "SIP/2.0 403 From Does Not Match Credentials\r\n"));
	CHECK_INT(router_stats(f->r)->auth_failures, 0);
	teardown(f);
}

static void t_wrong_password_403_counted(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	CHECK(starts(send_req(f, alice_to_bob), "SIP/2.0 407 "));
	const char *r = send_signed(f, alice_to_bob, "alice", "guess");
	CHECK(starts(r, "SIP/2.0 403 Forbidden\r\n"));
	CHECK_INT(router_stats(f->r)->auth_failures, 1);
	CHECK(find_sent(f, 0, "INVITE ") == NULL);
	teardown(f);
}

static void t_local_from_any_spelling_challenged(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	/* Our domain in capitals with the dot of an absolute name, or our own address, is
	 * still our domain: nobody passes as a caller from elsewhere that way. */
	const char *r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:alice@A.TEST.>;tag=s1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: spell1@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 407 "));
	r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
			"Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
			"From: <sip:alice@$ME>;tag=s2\r\n"
			"To: <sip:bob@a.test>\r\n"
			"Call-ID: spell2@x\r\n"
			"CSeq: 1 INVITE\r\n"
			"Max-Forwards: 70\r\n"
			"Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 407 "));
	CHECK(find_sent(f, 0, "INVITE ") == NULL);
	teardown(f);
}

static void t_repeated_failures_answered_later(void)
{
	struct fx *f = setup(NULL);
	/* The guard's default: three failures answered at once, then each waits longer. */
	for (unsigned i = 0; i < 3; i++) {
		CHECK(starts(send_req(f, alice_to_bob), "SIP/2.0 407 "));
		CHECK(starts(send_signed(f, alice_to_bob, "alice", "guess"), "SIP/2.0 403 Forbidden\r\n"));
	}
	CHECK(starts(send_req(f, alice_to_bob), "SIP/2.0 407 "));
	unsigned mark = f->nsent;
	CHECK_STR(str_from_cstr(send_signed(f, alice_to_bob, "alice", "guess")), "");
	CHECK_INT(router_stats(f->r)->auth_failures, 4);
	advance(f, GUARD_DELAY_STEP_MS);
	const struct sent *s = find_sent(f, mark, "SIP/2.0 403 Forbidden\r\n");
	CHECK(s != NULL);
	CHECK(sent_to(s, "203.0.113.9", 40000));
	teardown(f);
}

static void t_trusted_source_not_challenged(void)
{
	struct fx *f = setup("192.0.2.200");
	register_bob(f, 1);
	struct tp_source peer;
	source(f, &peer, "192.0.2.200", 5060);
	CHECK(router_trusted(f->r, &peer.addr));
	CHECK(!router_trusted(f->r, &f->src.addr));
	unsigned mark = f->nsent;
	const char *r = send_from(f, &peer,
				  "INVITE sip:bob@a.test SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 192.0.2.200:5060;branch=$B\r\n"
				  "From: <sip:alice@a.test>;tag=t1\r\n"
				  "To: <sip:bob@a.test>\r\n"
				  "Call-ID: trust@x\r\n"
				  "CSeq: 1 INVITE\r\n"
				  "Max-Forwards: 70\r\n"
				  "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 100 Trying\r\n"));
	CHECK(sent_to(find_sent(f, mark, "INVITE sip:bob@198.51.100.7:5062 "), "198.51.100.7", 5062));
	CHECK_INT(router_stats(f->r)->challenges, 1); /* bob's REGISTER only */
	teardown(f);
}

static void t_trusted_caller_learns_480(void)
{
	struct fx *f = setup("192.0.2.200");
	struct tp_source peer;
	source(f, &peer, "192.0.2.200", 5060);
	/* A trusted peer is vouched for: it learns that bob exists but has no phone. */
	const char *r = send_from(f, &peer,
				  "INVITE sip:bob@a.test SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 192.0.2.200:5060;branch=$B\r\n"
				  "From: <sip:carol@b.test>;tag=t1\r\n"
				  "To: <sip:bob@a.test>\r\n"
				  "Call-ID: trust480@x\r\n"
				  "CSeq: 1 INVITE\r\n"
				  "Max-Forwards: 70\r\n"
				  "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 480 Temporarily Unavailable\r\n"));
	CHECK_INT(router_stats(f->r)->refused_calls, 1);
	teardown(f);
}

/* ---- rule 9: where it goes ------------------------------------------------------------------- */

static void t_invite_local_user_forwarded(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	unsigned mark = f->nsent;
	const char *r = send_req(f, invite_bob);
	/* From elsewhere to one of ours: an inbound call, taken without a challenge. */
	CHECK(starts(r, "SIP/2.0 100 Trying\r\n"));
	CHECK(sent_to(&f->sent[mark], "203.0.113.9", 40000));
	CHECK_INT(router_stats(f->r)->challenges, 1); /* bob's REGISTER only */
	const struct sent *s = find_sent(f, mark, "INVITE sip:bob@198.51.100.7:5062 SIP/2.0\r\n");
	CHECK(s != NULL);
	CHECK(sent_to(s, "198.51.100.7", 5062));
	if (s) {
		char via[128], rr[128];
		snprintf(via, sizeof via, "SIP/2.0/UDP %s;branch=z9hG4bK", f->me);
		snprintf(rr, sizeof rr, "<sip:%s;lr>", f->me);
		CHECK(starts(header(s->text, "Via"), via));
		CHECK_STR(str_from_cstr(header(s->text, "Record-Route")), rr);
		CHECK_STR(str_from_cstr(header(s->text, "Max-Forwards")), "69");
	}
	teardown(f);
}

/* Registers a flow (RFC 5626) of bob's phone from src: reg-id regid, one instance, with
 * outbound and gruu supported. */
static void register_bob_flow(struct fx *f, const struct tp_source *src, unsigned regid)
{
	char text[768], host[64];
	tp_addr_str(&src->addr, host, sizeof host);
	snprintf(text, sizeof text,
		 "REGISTER sip:a.test SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP %s;branch=$B;rport\r\n"
		 "From: <sip:bob@a.test>;tag=rf%u\r\n"
		 "To: <sip:bob@a.test>\r\n"
		 "Call-ID: reg-bob-flow%u@x\r\n"
		 "CSeq: 1 REGISTER\r\n"
		 "Max-Forwards: 70\r\n"
		 "Supported: outbound, gruu\r\n"
		 "Contact: "
		 "<sip:bob@198.51.100.7:5062;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-0000000000b0>\";"
		 "reg-id=%u\r\n"
		 "Content-Length: 0\r\n\r\n",
		 host, regid, regid, regid);
	CHECK(starts(send_from(f, src, text), "SIP/2.0 401 "));
	const char *r = send_signed_from(f, src, text, "bob", "bobpw");
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, "\r\nRequire: outbound\r\n") != NULL);
}

/* How many INVITEs were sent from mark on, and the last one. */
static unsigned invites_sent(struct fx *f, unsigned mark, const struct sent **last)
{
	unsigned n = 0;
	for (unsigned i = mark; i < f->nsent; i++)
		if (starts(f->sent[i].text, "INVITE ")) {
			n++;
			*last = &f->sent[i];
		}
	return n;
}

/* RFC 5626 §5.3: a phone with two flows gets one branch, over its first flow; RFC 5627: a
 * GRUU reaches that phone only, and a GRUU nobody has gets 404. */
static void t_invite_flows_and_gruu(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1); /* another phone of bob's, no outbound */
	struct tp_source flow2;
	source(f, &flow2, "198.51.100.8", 6000);
	register_bob_flow(f, &f->phone, 1);
	register_bob_flow(f, &flow2, 2);
	unsigned mark = f->nsent;
	const struct sent *s = NULL;
	send_req(f, invite_bob);
	CHECK_INT(invites_sent(f, mark, &s), 2); /* the plain phone and the flow phone once */
	CHECK(find_sent(f, mark, "INVITE sip:bob@198.51.100.7:5062;ob SIP/2.0\r\n") != NULL);
	mark = f->nsent;
	send_req(f, "INVITE sip:bob@a.test;gr=urn:uuid:00000000-0000-1000-8000-0000000000b0 SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
		    "From: <sip:zed@elsewhere.test>;tag=z2\r\n"
		    "To: <sip:bob@a.test>\r\n"
		    "Call-ID: call-zed-gr@x\r\n"
		    "CSeq: 1 INVITE\r\n"
		    "Max-Forwards: 70\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK_INT(invites_sent(f, mark, &s), 1);
	CHECK(s && starts(s->text, "INVITE sip:bob@198.51.100.7:5062;ob SIP/2.0\r\n"));
	CHECK(sent_to(s, "198.51.100.7", 5062)); /* flow 1, where its REGISTER came from */
	mark = f->nsent;
	const char *r = send_req(f, "INVITE sip:bob@a.test;gr=urn:uuid:00000000-0000-1000-8000-0000000000ff SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z3\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: call-zed-gr2@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 404 Not Found\r\n"));
	CHECK_INT(invites_sent(f, mark, &s), 0);
	teardown(f);
}

static void t_missing_max_forwards_forwarded(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	unsigned mark = f->nsent;
	/* No Max-Forwards is not zero: the proxy puts one in (§16.6 step 3). */
	send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
		    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
		    "To: <sip:bob@a.test>\r\n"
		    "Call-ID: nomf@x\r\n"
		    "CSeq: 1 INVITE\r\n"
		    "Content-Length: 0\r\n\r\n");
	const struct sent *s = find_sent(f, mark, "INVITE sip:bob@198.51.100.7:5062 ");
	CHECK(s != NULL);
	if (s)
		CHECK_STR(str_from_cstr(header(s->text, "Max-Forwards")), "70");
	teardown(f);
}

static void t_no_binding_unauthenticated_404(void)
{
	struct fx *f = setup(NULL);
	/* bob exists but has no phone; nobody vouches for the caller: the same 404 as for
	 * a user that does not exist, and no call record. */
	const char *r = send_req(f, invite_bob);
	CHECK(starts(r, "SIP/2.0 404 Not Found\r\n"));
	CHECK_INT(router_stats(f->r)->refused_calls, 0);
	/* Stateless: never resent. */
	advance(f, 40000);
	CHECK_INT(f->nsent, 1);
	unsigned rows[2] = { 0, 0 };
	CHECK_INT(store_flush(f->store), 0);
	CHECK_INT(store_calls_list(f->store, 0, count_call, rows), 0);
	CHECK_INT(rows[0], 0);
	teardown(f);
}

static void t_no_binding_authenticated_480_and_404(void)
{
	struct fx *f = setup(NULL);
	CHECK(starts(send_req(f, alice_to_bob), "SIP/2.0 407 "));
	const char *r = send_signed(f, alice_to_bob, "alice", "alicepw");
	CHECK(starts(r, "SIP/2.0 480 Temporarily Unavailable\r\n"));
	CHECK_INT(router_stats(f->r)->refused_calls, 1);
	unsigned rows[2] = { 0, 0 };
	CHECK_INT(store_flush(f->store), 0);
	CHECK_INT(store_calls_list(f->store, 0, count_call, rows), 0);
	CHECK_INT(rows[0], 1);
	CHECK_INT(rows[1], 480);

	static const char to_nobody[] = "INVITE sip:nobody@a.test SIP/2.0\r\n"
					"Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
					"From: <sip:alice@a.test>;tag=a2\r\n"
					"To: <sip:nobody@a.test>\r\n"
					"Call-ID: call-nobody@x\r\n"
					"CSeq: 1 INVITE\r\n"
					"Max-Forwards: 70\r\n"
					"Content-Length: 0\r\n\r\n";
	CHECK(starts(send_req(f, to_nobody), "SIP/2.0 407 "));
	r = send_signed(f, to_nobody, "alice", "alicepw");
	CHECK(starts(r, "SIP/2.0 404 Not Found\r\n"));
	CHECK_INT(router_stats(f->r)->refused_calls, 2);
	unsigned rows2[2] = { 0, 0 };
	CHECK_INT(store_flush(f->store), 0);
	CHECK_INT(store_calls_list(f->store, 0, count_call, rows2), 0);
	CHECK_INT(rows2[0], 2);
	teardown(f);
}

static void t_preloaded_route_unauthenticated_403(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	const char *r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "Route: <sip:$ME;lr>, <sip:192.0.2.99;lr>\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: preload@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 403 Relaying Denied\r\n"));
	CHECK(find_sent(f, 0, "INVITE ") == NULL);
	teardown(f);
}

static void t_preloaded_route_authenticated_forwarded(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	static const char text[] = "INVITE sip:bob@a.test SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
				   "Route: <sip:$ME;lr>, <sip:192.0.2.99;lr>\r\n"
				   "From: <sip:alice@a.test>;tag=a1\r\n"
				   "To: <sip:bob@a.test>\r\n"
				   "Call-ID: preload-ok@x\r\n"
				   "CSeq: 1 INVITE\r\n"
				   "Max-Forwards: 70\r\n"
				   "Content-Length: 0\r\n\r\n";
	CHECK(starts(send_req(f, text), "SIP/2.0 407 "));
	unsigned mark = f->nsent;
	/* Our own user chose the next hop: it is honoured, not bob's phone. */
	CHECK(starts(send_signed(f, text, "alice", "alicepw"), "SIP/2.0 100 Trying\r\n"));
	const struct sent *s = find_sent(f, mark, "INVITE sip:bob@a.test SIP/2.0\r\n");
	CHECK(sent_to(s, "192.0.2.99", 5060));
	if (s)
		CHECK_STR(str_from_cstr(header(s->text, "Route")), "<sip:192.0.2.99;lr>");
	CHECK(find_sent(f, mark, "INVITE sip:bob@198.51.100.7") == NULL);
	teardown(f);
}

static void t_foreign_domain_unauthenticated_403(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "INVITE sip:carol@192.0.2.50:5060 SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:carol@192.0.2.50>\r\n"
				    "Call-ID: relay@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 403 Relaying Denied\r\n"));
	CHECK_INT(f->nsent, 1);
	teardown(f);
}

static void t_foreign_domain_authenticated_forwarded(void)
{
	struct fx *f = setup(NULL);
	static const char text[] = "INVITE sip:carol@192.0.2.50:5060 SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
				   "From: <sip:alice@a.test>;tag=a1\r\n"
				   "To: <sip:carol@192.0.2.50>\r\n"
				   "Call-ID: out@x\r\n"
				   "CSeq: 1 INVITE\r\n"
				   "Max-Forwards: 70\r\n"
				   "Content-Length: 0\r\n\r\n";
	CHECK(starts(send_req(f, text), "SIP/2.0 407 "));
	unsigned mark = f->nsent;
	const char *r = send_signed(f, text, "alice", "alicepw");
	CHECK(starts(r, "SIP/2.0 100 Trying\r\n"));
	const struct sent *s = find_sent(f, mark, "INVITE sip:carol@192.0.2.50:5060 SIP/2.0\r\n");
	CHECK(s != NULL);
	CHECK(sent_to(s, "192.0.2.50", 5060));
	if (s) {
		/* Our own credentials stay here; who the caller is, is not told to an untrusted
		 * next hop. */
		CHECK(strstr(s->text, "Proxy-Authorization") == NULL);
		CHECK(strstr(s->text, "P-Asserted-Identity") == NULL);
	}
	CHECK_INT(router_stats(f->r)->waiting, 0);
	teardown(f);
}

static void t_loop_482(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	const char *r = send_req(f, "INVITE sip:bob@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "Via: SIP/2.0/UDP $ME;branch=z9hG4bKearlier\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>\r\n"
				    "Call-ID: loop@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 482 Loop Detected\r\n"));
	CHECK(find_sent(f, 0, "INVITE ") == NULL);
	teardown(f);
}

static void t_tel_uri_404(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "INVITE tel:+15551234 SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <tel:+15551234>\r\n"
				    "Call-ID: tel@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 404 No Route for tel URI\r\n"));
	teardown(f);
}

static void t_ack_for_2xx_never_answered(void)
{
	struct fx *f = setup(NULL);
	register_bob(f, 1);
	unsigned mark = f->nsent;
	/* The ACK for a 2xx matches no transaction (st NULL): never answered, and with no
	 * dialog of ours it goes nowhere either. */
	const char *r = send_req(f, "ACK sip:bob@198.51.100.7:5062 SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "Route: <sip:$ME;lr>\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:bob@a.test>;tag=b1\r\n"
				    "Call-ID: ack@x\r\n"
				    "CSeq: 1 ACK\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK_STR(str_from_cstr(r), "");
	CHECK_INT(f->nsent, mark);
	/* Inside a dialog we set up, the same kind of ACK is passed on, still unanswered. */
	open_dialog(f);
	send_req(f, "ACK sip:bob@198.51.100.7:5062 SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
		    "Route: <sip:$ME;lr>\r\n"
		    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
		    "To: <sip:bob@a.test>;tag=b1\r\n"
		    "Call-ID: dlg@x\r\n"
		    "CSeq: 1 ACK\r\n"
		    "Max-Forwards: 70\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK_INT(f->nsent, mark + 1);
	CHECK(sent_to(find_sent(f, mark, "ACK sip:bob@198.51.100.7:5062 SIP/2.0\r\n"), "198.51.100.7", 5062));
	teardown(f);
}

/* ---- findings of this file, fixed ----------------------------------------------------------- */

/* Over the high-water mark only OPTIONS to the server itself passes: one for any other
 * host is new work like any other. */
static void t_load_options_elsewhere_503(void)
{
	struct fx *f = setup(NULL);
	f->load = 1;
	const char *r = send_req(f, "OPTIONS sip:192.0.2.50 SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
				    "From: <sip:alice@a.test>;tag=o2\r\n"
				    "To: <sip:192.0.2.50>\r\n"
				    "Call-ID: opt-else@x\r\n"
				    "CSeq: 1 OPTIONS\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 503 Service Unavailable\r\n"));
	CHECK(find_sent(f, 0, "OPTIONS ") == NULL);
	/* ... while the one to the server is still answered. */
	CHECK(starts(send_req(f, options_server), "SIP/2.0 200 OK\r\n"));
	teardown(f);
}

/* An ACK for a 2xx that has run out of hops is dropped, not passed on (§16.3 step 3). */
static void t_ack_max_forwards_zero_dropped(void)
{
	struct fx *f = setup(NULL);
	open_dialog(f);
	unsigned mark = f->nsent;
	send_req(f, "ACK sip:bob@198.51.100.7:5062 SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
		    "Route: <sip:$ME;lr>\r\n"
		    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
		    "To: <sip:bob@a.test>;tag=b1\r\n"
		    "Call-ID: dlg@x\r\n"
		    "CSeq: 1 ACK\r\n"
		    "Max-Forwards: 0\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK_INT(f->nsent, mark);
	teardown(f);
}

/* A CANCEL for an INVITE that was refused statelessly finds nothing to cancel, even
 * before the refused transaction is freed. */
static void t_cancel_after_stateless_refusal_481(void)
{
	struct fx *f = setup(NULL);
	const char *r = send_req(f, "INVITE sip:nobody@a.test SIP/2.0\r\n"
				    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKrefused\r\n"
				    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
				    "To: <sip:nobody@a.test>\r\n"
				    "Call-ID: refused@x\r\n"
				    "CSeq: 1 INVITE\r\n"
				    "Max-Forwards: 70\r\n"
				    "Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 404 Not Found\r\n"));
	r = send_req(f, "CANCEL sip:nobody@a.test SIP/2.0\r\n"
			"Via: SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKrefused\r\n"
			"From: <sip:zed@elsewhere.test>;tag=z1\r\n"
			"To: <sip:nobody@a.test>\r\n"
			"Call-ID: refused@x\r\n"
			"CSeq: 1 CANCEL\r\n"
			"Max-Forwards: 70\r\n"
			"Content-Length: 0\r\n\r\n");
	CHECK(starts(r, "SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
	teardown(f);
}

/* A sips: Request-URI with UDP alone is refused with one answer: no 100 Trying first. */
static void t_sips_over_udp_416_alone(void)
{
	struct fx *f = setup(NULL);
	static const char text[] = "INVITE sips:carol@192.0.2.50 SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
				   "From: <sip:alice@a.test>;tag=a1\r\n"
				   "To: <sips:carol@192.0.2.50>\r\n"
				   "Call-ID: sips@x\r\n"
				   "CSeq: 1 INVITE\r\n"
				   "Max-Forwards: 70\r\n"
				   "Content-Length: 0\r\n\r\n";
	CHECK(starts(send_req(f, text), "SIP/2.0 407 "));
	unsigned mark = f->nsent;
	const char *r = send_signed(f, text, "alice", "alicepw");
	CHECK(starts(r, "SIP/2.0 416 "));
	CHECK_INT(f->nsent, mark + 1);
	teardown(f);
}

/* router_load: requests proxied and not yet answered count toward max-transactions (80 %:
 * level 1, all of it: level 2), and the memory level the server reports counts too. */
static void t_load_levels(void)
{
	struct fx *f = setup(NULL);
	f->router_cfg.max_transactions = 100;
	register_bob(f, 1);
	CHECK_INT(router_load(f->r), 0);
	char text[512];
	for (int i = 0; i < 100; i++) {
		snprintf(text, sizeof text,
			 "INVITE sip:bob@a.test SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B\r\n"
			 "From: <sip:zed@elsewhere.test>;tag=l%d\r\n"
			 "To: <sip:bob@a.test>\r\n"
			 "Call-ID: load-%d@x\r\n"
			 "CSeq: 1 INVITE\r\n"
			 "Max-Forwards: 70\r\n"
			 "Content-Length: 0\r\n\r\n",
			 i, i);
		send_req(f, text);
		if (i == 78)
			CHECK_INT(router_load(f->r), 0);
		if (i == 79)
			CHECK_INT(router_load(f->r), 1);
	}
	CHECK_INT(router_load(f->r), 2);
	teardown(f);
	f = setup(NULL);
	router_set_memory_load(f->r, 1);
	CHECK_INT(router_load(f->r), 1);
	router_set_memory_load(f->r, 2);
	CHECK_INT(router_load(f->r), 2);
	router_set_memory_load(f->r, 0);
	CHECK_INT(router_load(f->r), 0);
	teardown(f);
}

/* Two phones behind NAT wrote private Contacts (192.168.x): requests inside their dialog go
 * to where each side's messages came from (its flow), in both directions; a public or
 * loopback remote target is left alone. */
static void t_in_dialog_behind_nat_goes_to_flow(void)
{
	struct fx *f = setup(NULL);
	uint32_t now = (uint32_t)(f->wall / 1000);
	struct tp_addr caller_ctc, callee_ctc;
	tp_addr_from_host(&caller_ctc, STR("10.0.0.5"), 5060);
	tp_addr_from_host(&callee_ctc, STR("192.168.72.2"), 5060);
	CHECK_INT(dlg_open(f->dialogs, STR("nat@x"), STR("z1"), now), 0);
	dlg_set_flow(f->dialogs, STR("nat@x"), STR("z1"), DLG_CALLER, &f->src.addr, false);
	dlg_learn(f->dialogs, STR("nat@x"), STR("z1"), DLG_CALLER, &caller_ctc);
	dlg_set_flow(f->dialogs, STR("nat@x"), STR("z1"), DLG_CALLEE, &f->phone.addr, true);
	dlg_learn(f->dialogs, STR("nat@x"), STR("z1"), DLG_CALLEE, &callee_ctc);
	dlg_confirm(f->dialogs, STR("nat@x"), STR("z1"), now);
	unsigned mark = f->nsent;
	/* The caller's ACK and BYE, to the callee's private Contact. */
	send_req(f, "ACK sip:bob@192.168.72.2:5060 SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=$B;rport\r\n"
		    "Route: <sip:$ME;lr>\r\n"
		    "From: <sip:zed@elsewhere.test>;tag=z1\r\n"
		    "To: <sip:bob@a.test>;tag=b1\r\n"
		    "Call-ID: nat@x\r\n"
		    "CSeq: 1 ACK\r\n"
		    "Max-Forwards: 70\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sent_to(find_sent(f, mark, "ACK sip:bob@192.168.72.2:5060 SIP/2.0\r\n"), "198.51.100.7", 5062));
	/* The callee's BYE, to the caller's private Contact, from the callee's flow. */
	mark = f->nsent;
	send_from(f, &f->phone,
		  "BYE sip:zed@10.0.0.5:5060 SIP/2.0\r\n"
		  "Via: SIP/2.0/UDP 192.168.72.2:5060;branch=$B;rport\r\n"
		  "Route: <sip:$ME;lr>\r\n"
		  "From: <sip:bob@a.test>;tag=b1\r\n"
		  "To: <sip:zed@elsewhere.test>;tag=z1\r\n"
		  "Call-ID: nat@x\r\n"
		  "CSeq: 5 BYE\r\n"
		  "Max-Forwards: 70\r\n"
		  "Content-Length: 0\r\n\r\n");
	CHECK(sent_to(find_sent(f, mark, "BYE sip:zed@10.0.0.5:5060 SIP/2.0\r\n"), "203.0.113.9", 40000));
	teardown(f);
	/* A dialog whose remote target is public (here a documentation address, as good as
	 * public) is routed by its Request-URI as before. */
	f = setup(NULL);
	open_dialog(f);
	mark = f->nsent;
	send_req(f, bye_via_us);
	CHECK(sent_to(find_sent(f, mark, "BYE sip:bob@198.51.100.7:5062 SIP/2.0\r\n"), "198.51.100.7", 5062));
	teardown(f);
}

static const struct unit_case cases[] = {
	{ "cancel_nothing_481", t_cancel_nothing_481 },
	{ "load_options_elsewhere_503", t_load_options_elsewhere_503 },
	{ "load_levels", t_load_levels },
	{ "in_dialog_behind_nat_goes_to_flow", t_in_dialog_behind_nat_goes_to_flow },
	{ "ack_max_forwards_zero_dropped", t_ack_max_forwards_zero_dropped },
	{ "cancel_after_stateless_refusal_481", t_cancel_after_stateless_refusal_481 },
	{ "sips_over_udp_416_alone", t_sips_over_udp_416_alone },
	{ "cancel_pending_invite", t_cancel_pending_invite },
	{ "max_forwards_zero_483", t_max_forwards_zero_483 },
	{ "max_forwards_zero_options_to_server_200", t_max_forwards_zero_options_to_server_200 },
	{ "proxy_require_420", t_proxy_require_420 },
	{ "accept_without_sdp_406", t_accept_without_sdp_406 },
	{ "in_dialog_without_our_route_404", t_in_dialog_without_our_route_404 },
	{ "in_dialog_unknown_dialog_481", t_in_dialog_unknown_dialog_481 },
	{ "in_dialog_known_dialog_forwarded", t_in_dialog_known_dialog_forwarded },
	{ "in_dialog_to_stranger_403", t_in_dialog_to_stranger_403 },
	{ "load_sheds_new_invite_503", t_load_sheds_new_invite_503 },
	{ "load_in_dialog_still_served", t_load_in_dialog_still_served },
	{ "load_register_refresh_served", t_load_register_refresh_served },
	{ "load_register_new_aor_503", t_load_register_new_aor_503 },
	{ "register_challenge_then_200", t_register_challenge_then_200 },
	{ "register_other_domain_403", t_register_other_domain_403 },
	{ "register_to_not_sip_400", t_register_to_not_sip_400 },
	{ "register_require_420", t_register_require_420 },
	{ "register_someone_else_403", t_register_someone_else_403 },
	{ "options_to_server_200", t_options_to_server_200 },
	{ "other_requests_to_server_refused", t_other_requests_to_server_refused },
	{ "local_from_challenged_407", t_local_from_challenged_407 },
	{ "credentials_of_another_user_403", t_credentials_of_another_user_403 },
	{ "wrong_password_403_counted", t_wrong_password_403_counted },
	{ "local_from_any_spelling_challenged", t_local_from_any_spelling_challenged },
	{ "repeated_failures_answered_later", t_repeated_failures_answered_later },
	{ "trusted_source_not_challenged", t_trusted_source_not_challenged },
	{ "trusted_caller_learns_480", t_trusted_caller_learns_480 },
	{ "invite_local_user_forwarded", t_invite_local_user_forwarded },
	{ "invite_flows_and_gruu", t_invite_flows_and_gruu },
	{ "missing_max_forwards_forwarded", t_missing_max_forwards_forwarded },
	{ "no_binding_unauthenticated_404", t_no_binding_unauthenticated_404 },
	{ "no_binding_authenticated_480_and_404", t_no_binding_authenticated_480_and_404 },
	{ "preloaded_route_unauthenticated_403", t_preloaded_route_unauthenticated_403 },
	{ "preloaded_route_authenticated_forwarded", t_preloaded_route_authenticated_forwarded },
	{ "foreign_domain_unauthenticated_403", t_foreign_domain_unauthenticated_403 },
	{ "foreign_domain_authenticated_forwarded", t_foreign_domain_authenticated_forwarded },
	{ "loop_482", t_loop_482 },
	{ "tel_uri_404", t_tel_uri_404 },
	{ "ack_for_2xx_never_answered", t_ack_for_2xx_never_answered },
};

UNIT_MAIN(cases)
