/* router.c: decides what happens to each request: registrar, proxy, or an answer of our own. */
#include "router/router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/server_int.h"

#define ALLOW "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, PRACK, REFER, SUBSCRIBE, NOTIFY"
/* Extensions a phone may Require of the registrar: only Path (RFC 3327) is understood. */
#define SUPPORTED "path"

struct req {
	struct server *s;
	struct txn_server *st;
	const struct sip_msg *m;
	const struct tp_source *src;
	char srctxt_buf[80];        /* filled on first use: most requests are never logged */
};

/* The source address as text, for log lines. */
static const char *srctxt(struct req *q)
{
	if (!q->srctxt_buf[0])
		tp_addr_str(&q->src->addr, q->srctxt_buf, sizeof q->srctxt_buf);
	return q->srctxt_buf;
}

static void reply(struct req *q, unsigned code, const char *reason, struct str extra)
{
	struct sip_resp_opts o = { 0 };
	o.extra = extra;
	o.server = STR("Parley " PARLEY_VERSION);
	txn_server_reply(q->st, code, reason, &o);
}

static void reject(struct req *q, unsigned code, const char *reason, const char *why)
{
	log_info(q->s->lg, "reject", "%.*s %.*s from %s: %u %s (%s)", STR_FMT(q->m->method),
		 STR_FMT(q->m->ruri_str), srctxt(q), code, reason, why);
	reply(q, code, reason, STR_NULL);
}

/* ---- who and where is this server ---------------------------------------------------- */

static struct str unbracket(struct str h)
{
	if (h.l > 2 && h.p[0] == '[' && h.p[h.l - 1] == ']')
		return (struct str){ h.p + 1, h.l - 2 };
	return h;
}

static bool is_local_domain(const struct server *s, struct str host)
{
	for (unsigned i = 0; i < s->cfg->ndomain; i++)
		if (str_caseeq(host, str_from_cstr(s->cfg->domain[i])))
			return true;
	return false;
}

/* A host:port that reaches one of our listeners (port 0 means the default 5060). */
static bool is_me(const struct server *s, struct str host, uint16_t port)
{
	struct str h = unbracket(host);
	for (unsigned i = 0; i < tp_listener_count(s->tp); i++) {
		struct tp_listener *l = tp_listener_at(s->tp, i);
		if ((port ? port : 5060) != l->port)
			continue;
		if (str_caseeq(h, unbracket(str_from_cstr(l->host))))
			return true;
		bool wild = l->local.ss.ss_family == AF_INET6 ?
			IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->local.ss)->sin6_addr) :
			((const struct sockaddr_in *)&l->local.ss)->sin_addr.s_addr == htonl(INADDR_ANY);
		for (unsigned k = 0; wild && k < s->nlocal_ip; k++)
			if (str_caseeq(h, str_from_cstr(s->local_ip[k])))
				return true;
	}
	/* A Route or Request-URI naming one of our domains without a user is us too. */
	return is_local_domain(s, host) && (port == 0 || port == tp_listener_at((struct transport *)s->tp, 0)->port);
}

static bool is_trusted(const struct server *s, const struct tp_source *src)
{
	char h[64];
	tp_addr_host(&src->addr, h, sizeof h);
	for (unsigned i = 0; i < s->cfg->ntrust; i++)
		if (strcmp(h, s->cfg->trust[i]) == 0)
			return true;
	return false;
}

/* "user@domain" with the domain lower-cased, into buf. */
static struct str make_aor(struct str user, struct str domain, char *buf, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < user.l && n + 1 < cap; i++)
		buf[n++] = user.p[i];
	if (n + 1 < cap)
		buf[n++] = '@';
	for (size_t i = 0; i < domain.l && n + 1 < cap; i++) {
		char c = domain.p[i];
		buf[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	return (struct str){ buf, n };
}

static struct str realm_for(const struct server *s, struct str domain, char *buf, size_t cap)
{
	if (s->cfg->realm[0])
		return str_from_cstr(s->cfg->realm);
	size_t n = 0;
	for (size_t i = 0; i < domain.l && n < cap; i++) {
		char c = domain.p[i];
		buf[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	return (struct str){ buf, n };
}

/* ---- digest authentication ------------------------------------------------------------ */

static void challenge(struct req *q, struct str realm, bool stale, bool proxy)
{
	char buf[1024];
	int n = auth_challenge(q->s->auth, realm, stale, proxy, server_now(q->s), buf, sizeof buf);
	if (n < 0) {
		reply(q, 500, "Challenge Too Long", STR_NULL);
		return;
	}
	reply(q, proxy ? 407 : 401, proxy ? "Proxy Authentication Required" : "Unauthorized",
	      (struct str){ buf, (size_t)n });
}

/* Authenticates the request as a user of domain. On success returns true with the user's
 * AOR in aor; otherwise the request has been answered (challenge or 403) and logged. */
static bool authenticate(struct req *q, struct str domain, bool proxy, const char *what, char *aor, size_t aorcap,
			 struct str *aor_out)
{
	struct server *s = q->s;
	char rbuf[256];
	struct str realm = realm_for(s, domain, rbuf, sizeof rbuf);
	enum sip_hdr_id hid = proxy ? SIP_HDR_PROXY_AUTHORIZATION : SIP_HDR_AUTHORIZATION;
	struct sip_auth cred;
	bool found = false;
	for (const struct sip_hdr *h = sip_msg_hdr(q->m, hid); h; h = sip_msg_hdr_next(q->m, h)) {
		if (sip_auth_parse(&cred, h->value) == 0 && str_caseeq_cstr(cred.scheme, "Digest") &&
		    str_eq(cred.realm, realm)) {
			found = true;
			break;
		}
	}
	if (!found) {
		challenge(q, realm, false, proxy);
		return false;
	}
	enum auth_alg alg;
	struct store_user u;
	const char *ha1 = NULL;
	bool known = false;
	if (auth_alg_from_name(cred.algorithm, &alg) && store_ucache_get(s->users, cred.username, domain, server_now(s), &u) == 0) {
		known = true;
		ha1 = alg == AUTH_SHA256 ? u.ha1_sha256 : u.ha1_md5;
	}
	struct str user_aor = make_aor(cred.username, domain, aor, aorcap);
	enum auth_result ar = auth_verify(s->auth, &cred, q->m->method, realm, ha1, server_now(s));
	switch (ar) {
	case AUTH_OK:
		*aor_out = user_aor;
		return true;
	case AUTH_STALE:
	case AUTH_BAD_NONCE:
		log_info(s->lg, what, "challenge %.*s from %s again: stale nonce", STR_FMT(user_aor), srctxt(q));
		challenge(q, realm, true, proxy);
		return false;
	case AUTH_REPLAY:
		log_info(s->lg, what, "refused %.*s from %s: replayed nonce count", STR_FMT(user_aor), srctxt(q));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_BAD_REQUEST:
		log_info(s->lg, what, "refused %.*s from %s: unusable credentials (algorithm, qop or parameters)",
			 STR_FMT(user_aor), srctxt(q));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_BAD_RESPONSE:
	default:
		/* Unknown users and wrong passwords get the very same answer, so that nobody
		 * can learn which users exist; only the log tells them apart. */
		log_info(s->lg, what, "refused %.*s from %s: %s", STR_FMT(user_aor), srctxt(q),
			 known ? "bad password" : "unknown user");
		reply(q, 403, "Forbidden", STR_NULL);
		return false;
	}
}

/* ---- requests to the server itself --------------------------------------------------- */

static void answer_options(struct req *q)
{
	reply(q, 200, "OK", STR("Allow: " ALLOW "\r\nAccept: application/sdp\r\nSupported: " SUPPORTED "\r\n"));
}

/* Require/Proxy-Require values we do not support, as an Unsupported header line. */
static bool unsupported(const struct sip_msg *m, enum sip_hdr_id id, char *buf, size_t cap, struct str *out)
{
	struct sip_out o;
	sip_out_init(&o, buf, cap);
	bool any = false;
	for (const struct sip_hdr *h = sip_msg_hdr(m, id); h; h = sip_msg_hdr_next(m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it)) {
			it = str_trim(it);
			if (id == SIP_HDR_REQUIRE && str_caseeq_cstr(it, SUPPORTED))
				continue;
			sip_out_cstr(&o, any ? ", " : "Unsupported: ");
			sip_out_str(&o, it);
			any = true;
		}
	}
	if (any)
		sip_out_cstr(&o, "\r\n");
	*out = (struct str){ o.p, o.overflow ? 0 : o.len };
	return any;
}

/* ---- REGISTER --------------------------------------------------------------------------- */

static void do_register(struct req *q)
{
	struct server *s = q->s;
	const struct sip_msg *m = q->m;
	if (m->to.uri.scheme != SIP_SCHEME_SIP && m->to.uri.scheme != SIP_SCHEME_SIPS) {
		reject(q, 400, "To Must Be a SIP URI", "address-of-record is not sip: or sips:");
		return;
	}
	struct str domain = m->to.uri.host;
	if (!is_local_domain(s, domain)) {
		log_info(s->lg, "register", "refused %.*s from %s: wrong domain %.*s", STR_FMT(m->to.uri_str),
			 srctxt(q), STR_FMT(domain));
		reply(q, 403, "Domain Not Served Here", STR_NULL);
		return;
	}
	char ubuf[256];
	struct str unsup;
	if (unsupported(m, SIP_HDR_REQUIRE, ubuf, sizeof ubuf, &unsup)) {
		/* §8.2.2.3: the 420 lists what we do not support. */
		log_info(s->lg, "reject", "REGISTER from %s: 420 Bad Extension (Require)", srctxt(q));
		reply(q, 420, "Bad Extension", unsup);
		return;
	}
	char abuf[512], tbuf[512];
	struct str aor;
	if (!authenticate(q, domain, false, "register", abuf, sizeof abuf, &aor))
		return;
	struct str to_aor = make_aor(m->to.uri.user, domain, tbuf, sizeof tbuf);
	if (!str_eq(aor, to_aor)) {
		log_info(s->lg, "register", "refused %.*s from %s: authenticated as %.*s", STR_FMT(to_aor), srctxt(q),
			 STR_FMT(aor));
		reply(q, 403, "Not Allowed to Register This AOR", STR_NULL);
		return;
	}
	reg_handle(s->reg, q->st, m, q->src, aor, server_now(s));
}

/* ---- proxying --------------------------------------------------------------------------- */

/* Where a URI points, when that is known without waiting (numeric host, static peer,
 * cached DNS answer). Returns false when it is not. */
static bool resolve_now(struct server *s, const struct sip_uri *u, struct tp_source *dst)
{
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n = 0;
	memset(dst, 0, sizeof(*dst));
	if (route_lookup(s->route, u, t, &n) != 0 || n == 0)
		return false;
	dst->proto = t[0].proto;
	dst->addr = t[0].addr;
	return true;
}

static void forward(struct req *q, struct proxy_target *t, unsigned n, const struct proxy_fwd_flags *fl,
		    const struct proxy_call_info *ci)
{
	if (proxy_forward(q->s->proxy, q->st, t, n, fl, ci) < 0)
		reply(q, 500, "Cannot Forward", STR_NULL);
}

static void to_local_user(struct req *q, struct proxy_fwd_flags *fl, struct str caller)
{
	struct server *s = q->s;
	const struct sip_msg *m = q->m;
	char abuf[512];
	struct str callee = make_aor(m->ruri.user, m->ruri.host, abuf, sizeof abuf);
	struct store_user u;
	struct proxy_call_info ci = { caller, callee };
	if (store_ucache_get(s->users, m->ruri.user, m->ruri.host, server_now(s), &u) != 0) {
		if (m->mid == SIP_INVITE)
			proxy_record_rejected(s->proxy, m, &ci, 404, "not found");
		reject(q, 404, "Not Found", "no such user");
		return;
	}
	struct loc_aor *a = loc_find(s->loc, callee);
	struct proxy_target t[16];
	unsigned n = 0;
	uint32_t now = server_now(s);
	for (struct loc_binding *b = a ? a->first : NULL; b && n < 16; b = b->next) {
		if (b->expires_at <= now)
			continue;
		t[n].ruri = loc_b_field(b, LOC_URI);
		t[n].path = loc_b_field(b, LOC_PATH);
		t[n].nalt = 0; /* a phone has one address: no failover */
		if (reg_binding_dest(b, &t[n].dst) == 0)
			n++;
	}
	if (n == 0) {
		if (m->mid == SIP_INVITE)
			proxy_record_rejected(s->proxy, m, &ci, 480, "not registered");
		reject(q, 480, "Temporarily Unavailable", "callee has no registered phone");
		return;
	}
	forward(q, t, n, fl, m->mid == SIP_INVITE ? &ci : NULL);
}

/* A request waiting for DNS (RFC 3263) before it can be forwarded to a foreign domain. */
struct router_pending {
	struct router_pending *next;
	struct server *s;
	struct txn_server *st;      /* keeps its own copy of the request */
	uint64_t rid;
	struct proxy_fwd_flags fl;
	bool invite;
	char caller[256], callee[256];
	size_t caller_l, callee_l;
};

static void unlink_pending(struct server *s, struct router_pending *p)
{
	for (struct router_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

void router_free_pending(struct server *s)
{
	while (s->pending) {
		struct router_pending *p = s->pending;
		s->pending = p->next;
		free(p);
	}
}

static void routed(void *arg, int err, const struct route_target *t, unsigned n)
{
	struct router_pending *p = arg;
	struct server *s = p->s;
	unlink_pending(s, p);
	const struct sip_msg *m = txn_server_request(p->st);
	struct req q = { .s = s, .st = p->st, .m = m, .src = txn_server_source(p->st) };
	if (err == -ENOENT || (err == 0 && n == 0)) {
		reject(&q, 404, "No Route to Domain", "the domain has no SIP servers in DNS and no --peer");
	} else if (err < 0) {
		reject(&q, 503, "DNS Resolution Failed", err == -ETIMEDOUT ? "DNS timed out" : "DNS failure");
	} else {
		/* Several targets (SRV): the first is tried, the rest are its failover. */
		struct proxy_target pt = { 0 };
		pt.dst.proto = t[0].proto;
		pt.dst.addr = t[0].addr;
		for (unsigned i = 1; i < n && pt.nalt < PROXY_MAX_ALT; i++) {
			pt.alt[pt.nalt].proto = t[i].proto;
			pt.alt[pt.nalt].addr = t[i].addr;
			pt.nalt++;
		}
		char to[80];
		log_info(s->lg, "route", "%.*s for %.*s goes to %s (%s)%s", STR_FMT(m->method), STR_FMT(m->ruri.host),
			 tp_addr_str(&t[0].addr, to, sizeof to), t[0].host, n > 1 ? ", with failover" : "");
		struct proxy_call_info ci = { { p->caller, p->caller_l }, { p->callee, p->callee_l } };
		if (proxy_forward(s->proxy, p->st, &pt, 1, &p->fl, p->invite ? &ci : NULL) < 0)
			reply(&q, 500, "Cannot Forward", STR_NULL);
	}
	free(p);
}

/* A CANCEL for an INVITE still waiting for DNS: nothing was sent downstream yet. */
static bool cancel_pending(struct server *s, struct txn_server *cst, struct txn_server *ist)
{
	for (struct router_pending *p = s->pending; p; p = p->next) {
		if (p->st != ist)
			continue;
		route_cancel(s->route, p->rid);
		unlink_pending(s, p);
		txn_server_reply(cst, 200, "OK", NULL);
		txn_server_reply(ist, 487, "Request Terminated", NULL);
		log_info(s->lg, "call", "cancelled %.*s -> %.*s before it was routed", (int)p->caller_l, p->caller,
			 (int)p->callee_l, p->callee);
		free(p);
		return true;
	}
	return false;
}

static void to_foreign(struct req *q, struct proxy_fwd_flags *fl, struct str caller)
{
	struct server *s = q->s;
	const struct sip_msg *m = q->m;
	struct router_pending *p = calloc(1, sizeof(*p));
	if (!p) {
		reply(q, 500, "Out of Memory", STR_NULL);
		return;
	}
	p->s = s;
	p->st = q->st;
	p->fl = *fl;
	p->invite = m->mid == SIP_INVITE;
	p->caller_l = str_to_cbuf(caller, p->caller, sizeof p->caller) ? strlen(p->caller) : 0;
	char abuf[512];
	struct str callee = make_aor(m->ruri.user, m->ruri.host, abuf, sizeof abuf);
	p->callee_l = strlen(str_to_cbuf(callee, p->callee, sizeof p->callee));
	if (p->invite)
		txn_server_trying(q->st); /* DNS may take a while: stop the caller's retransmissions */
	p->next = s->pending;
	s->pending = p;
	int err = route_resolve(s->route, &m->ruri, routed, p, &p->rid);
	/* On success p may already be gone (answered synchronously): do not touch it. */
	if (err < 0) {
		unlink_pending(s, p);
		free(p);
		if (err == -EPROTONOSUPPORT || err == -EINVAL)
			reject(q, 416, "Unsupported URI Scheme", "no transport for this URI");
		else
			reject(q, 500, "Cannot Resolve", "resolver error");
	}
}

/* An ACK for a 2xx, or any request inside a dialog that we record-routed. */
static void in_dialog(struct req *q, struct proxy_fwd_flags *fl, const struct sip_addr *next_route)
{
	struct proxy_target t = { 0 };
	const struct sip_uri *u = next_route ? &next_route->uri : &q->m->ruri;
	if (!resolve_now(q->s, u, &t.dst)) {
		if (q->st)
			reject(q, 404, "Cannot Reach Next Hop", "unresolvable in-dialog target");
		return;
	}
	if (!q->st) {
		proxy_forward_stateless(q->s->proxy, q->m, q->src, &t, fl);
		return;
	}
	forward(q, &t, 1, fl, NULL);
}

/* Whether the request already went through this server (one of its Via values is ours).
 * Parley never rewrites a Request-URI except to a registered contact, so a request that
 * comes back to it is a loop, never a legitimate spiral (RFC 3261 §16.3 step 4). */
static bool looped(const struct server *s, const struct sip_msg *m, struct str *via_out)
{
	for (const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_VIA); h; h = sip_msg_hdr_next(m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it)) {
			struct sip_via v;
			if (sip_via_parse(&v, it) == 0 && is_me(s, v.host, v.port)) {
				*via_out = str_trim(it);
				return true;
			}
		}
	}
	return false;
}

void router_request(struct server *s, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct req q = { .s = s, .st = st, .m = m, .src = src };

	if (m->mid == SIP_CANCEL) {
		struct txn_server *ist = txn_server_find_invite(s->txn, m);
		if (ist && cancel_pending(s, st, ist))
			return;
		proxy_cancel(s->proxy, st, ist);
		return;
	}

	/* Loose routing (§16.4): our own address on top of Route is removed; a Request-URI
	 * that is us while Routes remain means a strict router sent it: the last Route is
	 * the real Request-URI. */
	struct proxy_fwd_flags fl = { 0 };
	struct sip_addr route, next;
	bool have_next = false;
	const struct sip_hdr *rh = sip_msg_hdr(m, SIP_HDR_ROUTE);
	if (rh) {
		struct str rest = rh->value, it;
		if (sip_list_next(&rest, &it) && sip_addr_parse(&route, it) == 0 && is_me(s, route.uri.host, route.uri.port)) {
			fl.pop_route = true;
			/* the next Route, in this header or the following one */
			if (sip_list_next(&rest, &it) && sip_addr_parse(&next, it) == 0) {
				have_next = true;
			} else {
				const struct sip_hdr *h2 = sip_msg_hdr_next(m, rh);
				struct str r2 = h2 ? h2->value : STR_NULL;
				if (h2 && sip_list_next(&r2, &it) && sip_addr_parse(&next, it) == 0)
					have_next = true;
			}
		}
	}
	/* §16.4 strict routing: a strict router upstream put our Record-Route URI into the
	 * Request-URI and the real target last in Route. */
	bool strict = false;
	struct sip_addr last;
	if (rh && !fl.pop_route && m->ruri.user.l == 0 && is_me(s, m->ruri.host, m->ruri.port)) {
		unsigned nroutes = 0;
		for (const struct sip_hdr *h = rh; h; h = sip_msg_hdr_next(m, h)) {
			struct str rest = h->value, it;
			while (sip_list_next(&rest, &it))
				if (sip_addr_parse(&last, it) == 0)
					nroutes++;
		}
		if (nroutes) {
			strict = true;
			fl.strict_ruri = last.uri_str;
			fl.drop_last_route = true;
			/* the next hop: the first Route when more remain, else the new Request-URI */
			if (nroutes > 1) {
				next = route;
				have_next = true;
			} else {
				next = last;
				have_next = true;
			}
		}
	}
	if (!st) { /* ACK for a 2xx: stateless, only along a route we are on */
		if (strict) {
			in_dialog(&q, &fl, &next);
			return;
		}
		if (fl.pop_route)
			in_dialog(&q, &fl, have_next ? &next : NULL);
		return;
	}
	if (m->max_forwards == 0) {
		if (m->mid == SIP_OPTIONS && m->ruri.user.l == 0 && (is_me(s, m->ruri.host, m->ruri.port) || is_local_domain(s, m->ruri.host))) {
			answer_options(&q);
			return;
		}
		reject(&q, 483, "Too Many Hops", "Max-Forwards reached 0");
		return;
	}
	char ubuf[512];
	struct str unsup;
	if (unsupported(m, SIP_HDR_PROXY_REQUIRE, ubuf, sizeof ubuf, &unsup)) {
		log_info(s->lg, "reject", "%.*s from %s: 420 Bad Extension (Proxy-Require)", STR_FMT(m->method), srctxt(&q));
		reply(&q, 420, "Bad Extension", unsup);
		return;
	}
	/* Every phone that can take INVITE must accept SDP (RFC 3264); an INVITE that
	 * refuses it can be answered by nobody behind us (RFC 4475 sdp01). */
	if (m->mid == SIP_INVITE && sip_msg_hdr(m, SIP_HDR_ACCEPT)) {
		bool sdp = false;
		for (const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_ACCEPT); h && !sdp; h = sip_msg_hdr_next(m, h)) {
			struct str rest = h->value, it;
			while (sip_list_next(&rest, &it)) {
				struct str mt = str_trim(it);
				long semi = str_chr(mt, ';');
				if (semi >= 0)
					mt = str_trim((struct str){ mt.p, (size_t)semi });
				if (str_caseeq_cstr(mt, "application/sdp") || str_caseeq_cstr(mt, "application/*") ||
				    str_caseeq_cstr(mt, "*/*"))
					sdp = true;
			}
		}
		if (!sdp) {
			log_info(s->lg, "reject", "INVITE from %s: 406 Accept excludes application/sdp", srctxt(&q));
			reply(&q, 406, "Not Acceptable", STR("Warning: 399 parley \"application/sdp is required\"\r\n"));
			return;
		}
	}
	if (m->to.tag.l) {
		/* Inside a dialog: only along the route we recorded (our Route on top). */
		if (!fl.pop_route && !strict) {
			reject(&q, 404, "Not Here", "in-dialog request without our Route");
			return;
		}
		in_dialog(&q, &fl, have_next ? &next : NULL);
		return;
	}
	if (m->ruri.scheme == SIP_SCHEME_TEL) {
		reject(&q, 404, "No Route for tel URI", "tel: URIs are not routed");
		return;
	}
	bool ruri_local = is_local_domain(s, m->ruri.host);
	bool ruri_me = is_me(s, m->ruri.host, m->ruri.port);
	if (m->mid == SIP_REGISTER) {
		do_register(&q);
		return;
	}
	if ((ruri_me || ruri_local) && m->ruri.user.l == 0) {
		if (m->mid == SIP_OPTIONS)
			answer_options(&q);
		else
			reject(&q, m->mid == SIP_METHOD_OTHER ? 501 : 404, m->mid == SIP_METHOD_OTHER ? "Not Implemented" : "Not Found",
			       "request for the server itself");
		return;
	}
	/* Who is calling: a local user must prove it, and may only use its own identity. */
	char cbuf[512];
	struct str caller = make_aor(m->from.uri.user, m->from.uri.host, cbuf, sizeof cbuf);
	bool trusted = is_trusted(s, src);
	bool from_local = is_local_domain(s, m->from.uri.host);
	bool authed = false;
	if (from_local && !trusted) {
		char abuf[512];
		struct str aor;
		if (!authenticate(&q, m->from.uri.host, true, "call", abuf, sizeof abuf, &aor))
			return;
		if (!str_eq(aor, caller)) {
			log_info(s->lg, "reject", "%.*s from %s: From %.*s but authenticated as %.*s", STR_FMT(m->method),
				 srctxt(&q), STR_FMT(caller), STR_FMT(aor));
			reply(&q, 403, "From Does Not Match Credentials", STR_NULL);
			return;
		}
		authed = true;
	}
	struct str loopvia;
	if (looped(s, m, &loopvia)) {
		log_warn(s->lg, "loop", "%.*s %.*s from %s came back to us (Via %.*s): loop between peers, answering 482",
			 STR_FMT(m->method), STR_FMT(m->ruri_str), srctxt(&q), STR_FMT(loopvia));
		reply(&q, 482, "Loop Detected", STR_NULL);
		return;
	}
	fl.record_route = true;
	if (have_next) {
		/* A preloaded route beyond us (RFC 3261 §16.12): the next hop is that Route. */
		if (!authed && !trusted && !ruri_local) {
			reject(&q, 403, "Relaying Denied", "preloaded route from a caller that is not a local user");
			return;
		}
		in_dialog(&q, &fl, &next);
		return;
	}
	if (ruri_local) {
		to_local_user(&q, &fl, caller);
		return;
	}
	/* A foreign domain: no open relay. Only our own authenticated users, or a trusted
	 * peer, may send requests onward. */
	if (!authed && !trusted) {
			reject(&q, 403, "Relaying Denied", "foreign domain and caller is not an authenticated local user");
		return;
	}
	to_foreign(&q, &fl, caller);
}
