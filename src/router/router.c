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

/* Answers through the request's transaction: for requests we act on (registrations of
 * authenticated users, proxied requests). */
static void reply(struct req *q, unsigned code, const char *reason, struct str extra)
{
	struct sip_resp_opts o = { 0 };
	o.extra = extra;
	o.server = STR("Parley " PARLEY_VERSION);
	txn_server_reply(q->st, code, reason, &o);
}

/* Answers without keeping anything: challenges and refusals of requests nobody has vouched
 * for yet. One answer per datagram, no retransmissions (a spoofed source gets one reply,
 * not eleven), no memory held, no call record. The transaction the layer made for the
 * request is dropped unused. */
static void reply_sl(struct req *q, unsigned code, const char *reason, struct str extra)
{
	server_reply_stateless(q->s, q->m, q->src, code, reason, extra);
	if (q->st)
		txn_server_drop(q->st);
}

/* A refusal, logged with its reason (aggregated under floods) and answered statelessly. */
static void reject(struct req *q, unsigned code, const char *reason, const char *why)
{
	server_log_reject(q->s, "%.*s %.*s from %s: %u %s (%s)", STR_FMT(q->m->method), STR_FMT(q->m->ruri_str),
			  srctxt(q), code, reason, why);
	reply_sl(q, code, reason, STR_NULL);
}

/* ---- who and where is this server ---------------------------------------------------- */

static struct str unbracket(struct str h)
{
	if (h.l > 2 && h.p[0] == '[' && h.p[h.l - 1] == ']')
		return (struct str){ h.p + 1, h.l - 2 };
	return h;
}

/* Whether listener l answers on address h (without brackets): its own address, or any of
 * the machine's when it listens on 0.0.0.0 or ::. */
static bool listener_has(const struct server *s, const struct tp_listener *l, struct str h)
{
	if (str_caseeq(h, unbracket(str_from_cstr(l->host))))
		return true;
	bool wild = l->local.ss.ss_family == AF_INET6 ?
		IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->local.ss)->sin6_addr) :
		((const struct sockaddr_in *)&l->local.ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	for (unsigned k = 0; wild && k < s->nlocal_ip; k++)
		if (str_caseeq(h, str_from_cstr(s->local_ip[k])))
			return true;
	return false;
}

/* Whether host is one of the machine's addresses that a listener answers on. */
static bool is_my_address(const struct server *s, struct str host)
{
	struct str h = unbracket(host);
	for (unsigned i = 0; i < tp_listener_count(s->tp); i++)
		if (listener_has(s, tp_listener_at(s->tp, i), h))
			return true;
	return false;
}

/* The index in cfg->domain of the domain host names, in any case and with or without the
 * trailing dot of an absolute name, or -1. */
static int served_domain(const struct server *s, struct str host)
{
	if (host.l > 1 && host.p[host.l - 1] == '.')
		host.l--;
	for (unsigned i = 0; i < s->cfg->ndomain; i++)
		if (str_caseeq(host, str_from_cstr(s->cfg->domain[i])))
			return (int)i;
	return -1;
}

/* The served domain a host names, as an index into cfg->domain, or -1. Every spelling of a
 * local domain counts: any case, a trailing dot (an absolute name), and our own addresses
 * (the first domain), so that "alice@OUR.DOMAIN." or "alice@OUR_IP" is challenged like
 * "alice@our.domain" and cannot pass as a caller from elsewhere. */
static int local_domain(const struct server *s, struct str host)
{
	int d = served_domain(s, host);
	if (d >= 0)
		return d;
	if (host.l && is_my_address(s, host))
		return 0;
	return -1;
}

static bool is_local_domain(const struct server *s, struct str host)
{
	return local_domain(s, host) >= 0;
}

/* A host:port that reaches one of our listeners (port 0 means the default 5060). */
static bool is_me(const struct server *s, struct str host, uint16_t port)
{
	struct str h = unbracket(host);
	for (unsigned i = 0; i < tp_listener_count(s->tp); i++) {
		struct tp_listener *l = tp_listener_at(s->tp, i);
		if ((port ? port : 5060) == l->port && listener_has(s, l, h))
			return true;
	}
	/* A Route or Request-URI naming one of our domains without a user is us too. */
	return served_domain(s, host) >= 0 &&
	       (port == 0 || port == tp_listener_at((struct transport *)s->tp, 0)->port);
}

static bool host_trusted(const struct server *s, const char *h)
{
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

/* The AOR of user in local domain dom (its canonical name). */
static struct str local_aor(const struct server *s, struct str user, int dom, char *buf, size_t cap)
{
	return make_aor(user, str_from_cstr(s->cfg->domain[dom]), buf, cap);
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

/* What a nonce is bound to besides its realm: the client's IP address when
 * nonce-bind-source is set (a nonce then cannot be used from elsewhere). */
static struct str nonce_bind(const struct req *q)
{
	if (!q->s->cfg->nonce_bind_source)
		return STR_NULL;
	const union tp_sockaddr *a = &q->src->addr.ss;
	if (a->ss_family == AF_INET)
		return (struct str){ (const char *)&a->in.sin_addr, sizeof a->in.sin_addr };
	if (a->ss_family == AF_INET6)
		return (struct str){ (const char *)&a->in6.sin6_addr, sizeof a->in6.sin6_addr };
	return STR_NULL;
}

static void challenge(struct req *q, struct str realm, bool stale, bool proxy)
{
	char buf[1024];
	int n = auth_challenge(q->s->auth, realm, nonce_bind(q), stale, proxy, server_now(q->s), buf, sizeof buf);
	if (n < 0) {
		reply_sl(q, 500, "Challenge Too Long", STR_NULL);
		return;
	}
	q->s->stats.challenges++;
	reply_sl(q, proxy ? 407 : 401, proxy ? "Proxy Authentication Required" : "Unauthorized",
		 (struct str){ buf, (size_t)n });
}

/* Whether a digest uri names this server itself: a URI without a user part whose host
 * and port are ours (SIPp writes sip:SERVER:PORT whatever the Request-URI). */
static bool digest_uri_is_me(const struct server *s, struct str u)
{
	struct sip_uri du;
	return sip_uri_parse(&du, u) == 0 && du.user.l == 0 && is_me(s, du.host, du.port);
}

/* Authenticates the request as a user of local domain dom. On success returns true with
 * the user's AOR in aor; otherwise the request has been answered (challenge, 403 or
 * nothing for a banned source) and logged. */
static bool authenticate(struct req *q, int dom, bool proxy, const char *what, char *aor, size_t aorcap,
			 struct str *aor_out)
{
	struct server *s = q->s;
	char rbuf[256];
	struct str domain = str_from_cstr(s->cfg->domain[dom]);
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
	struct auth_req rq = { q->m->method, q->m->ruri_str, realm, nonce_bind(q) };
	/* A digest uri that names this server itself (no user, our address) is taken as
	 * naming the request too: SIPp writes sip:SERVER:PORT whatever the Request-URI. A
	 * captured response still cannot be used again: its nonce count is spent. */
	if (!str_eq(cred.uri, rq.ruri) && digest_uri_is_me(s, cred.uri))
		rq.ruri = cred.uri;
	enum auth_result ar = auth_verify(s->auth, &cred, &rq, ha1, server_now(s));
	switch (ar) {
	case AUTH_OK:
		server_auth_ok(s, q->src, user_aor);
		*aor_out = user_aor;
		return true;
	case AUTH_STALE:
	case AUTH_BAD_NONCE:
		log_info(s->lg, what, "challenge %.*s from %s again: stale nonce", STR_FMT(user_aor), srctxt(q));
		challenge(q, realm, true, proxy);
		return false;
	case AUTH_REPLAY:
		server_log_reject(s, "%s: refused %.*s from %s: replayed nonce count", what, STR_FMT(user_aor), srctxt(q));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_URI_MISMATCH:
		server_log_reject(s, "%s: refused %.*s from %s: digest uri '%.*s' is not the Request-URI", what,
				  STR_FMT(user_aor), srctxt(q), STR_FMT(cred.uri));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_BAD_REQUEST:
		server_log_reject(s, "%s: refused %.*s from %s: unusable credentials (algorithm, qop=auth or parameters)",
				  what, STR_FMT(user_aor), srctxt(q));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_BAD_RESPONSE:
	default:
		/* Unknown users and wrong passwords get the very same answer, so that nobody
		 * can learn which users exist; only the log tells them apart. Repeated
		 * failures are answered later, then the source is banned. */
		server_auth_failed(s, q->m, q->src, user_aor, known ? "bad password" : "unknown user", what);
		if (q->st)
			txn_server_drop(q->st);
		return false;
	}
}

/* ---- requests to the server itself --------------------------------------------------- */

static void answer_options(struct req *q)
{
	reply_sl(q, 200, "OK", STR("Allow: " ALLOW "\r\nAccept: application/sdp\r\nSupported: " SUPPORTED "\r\n"));
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

static void do_register(struct req *q, int load)
{
	struct server *s = q->s;
	const struct sip_msg *m = q->m;
	if (m->to.uri.scheme != SIP_SCHEME_SIP && m->to.uri.scheme != SIP_SCHEME_SIPS) {
		reject(q, 400, "To Must Be a SIP URI", "address-of-record is not sip: or sips:");
		return;
	}
	int dom = local_domain(s, m->to.uri.host);
	if (dom < 0) {
		server_log_reject(s, "register: refused %.*s from %s: wrong domain %.*s", STR_FMT(m->to.uri_str), srctxt(q),
				  STR_FMT(m->to.uri.host));
		reply_sl(q, 403, "Domain Not Served Here", STR_NULL);
		return;
	}
	char ubuf[256];
	struct str unsup;
	if (unsupported(m, SIP_HDR_REQUIRE, ubuf, sizeof ubuf, &unsup)) {
		/* §8.2.2.3: the 420 lists what we do not support. */
		server_log_reject(s, "REGISTER from %s: 420 Bad Extension (Require)", srctxt(q));
		reply_sl(q, 420, "Bad Extension", unsup);
		return;
	}
	char abuf[512], tbuf[512];
	struct str to_aor = local_aor(s, m->to.uri.user, dom, tbuf, sizeof tbuf);
	/* Over the high-water mark, phones that are registered already keep their place:
	 * new registrations wait (503), refreshes are served. */
	if (load > 0 && !loc_find(s->loc, to_aor)) {
		server_shed(s, q->m, q->src, "REGISTER of an address with no binding");
		if (q->st)
			txn_server_drop(q->st);
		return;
	}
	struct str aor;
	if (!authenticate(q, dom, false, "register", abuf, sizeof abuf, &aor))
		return;
	if (!str_eq(aor, to_aor)) {
		server_log_reject(s, "register: refused %.*s from %s: authenticated as %.*s", STR_FMT(to_aor), srctxt(q),
				  STR_FMT(aor));
		reply_sl(q, 403, "Not Allowed to Register This AOR", STR_NULL);
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

/* Opens the dialog an initial INVITE, SUBSCRIBE or REFER may create (see dialog.h), so
 * that the requests inside it can be checked. Returns false after answering 503 when the
 * table is full. */
static bool open_dialog(struct req *q, struct proxy_fwd_flags *fl)
{
	enum sip_method mid = q->m->mid;
	if (mid != SIP_INVITE && mid != SIP_SUBSCRIBE && mid != SIP_REFER)
		return true;
	int err = dlg_open(q->s->dialogs, q->m->call_id, q->m->from.tag, server_now(q->s));
	if (err == -ENOSPC || err == -ENOMEM) {
		server_shed(q->s, q->m, q->src, "dialog table full");
		if (q->st)
			txn_server_drop(q->st);
		return false;
	}
	/* Without a From tag (RFC 2543 phones) there is no dialog to check later: requests
	 * inside it are refused, as with any unknown dialog. */
	fl->dialog = err == 0;
	return true;
}

static void to_local_user(struct req *q, struct proxy_fwd_flags *fl, struct str caller, int dom, bool vouched)
{
	struct server *s = q->s;
	const struct sip_msg *m = q->m;
	char abuf[512];
	struct str callee = local_aor(s, m->ruri.user, dom, abuf, sizeof abuf);
	struct proxy_call_info ci = { caller, callee };
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
	if (n == 0 && !vouched) {
		/* Nobody vouches for the caller: whether the user exists, has no phone or is
		 * not there at all, the answer is the same 404, from the same in-memory lookup
		 * (the user table is not read), so that neither the answer nor its timing
		 * tells which users exist. No call record: anyone can send these. */
		reject(q, 404, "Not Found", "no registered phone for this address (unauthenticated caller)");
		return;
	}
	if (n == 0) {
		struct store_user u;
		bool exists = store_ucache_get(s->users, m->ruri.user, str_from_cstr(s->cfg->domain[dom]), now, &u) == 0;
		unsigned code = exists ? 480 : 404;
		const char *reason = exists ? "Temporarily Unavailable" : "Not Found";
		if (m->mid == SIP_INVITE)
			proxy_record_rejected(s->proxy, m, &ci, code, exists ? "not registered" : "not found");
		log_info(s->lg, "reject", "%.*s %.*s from %s: %u %s (%s)", STR_FMT(m->method), STR_FMT(m->ruri_str),
			 srctxt(q), code, reason, exists ? "callee has no registered phone" : "no such user");
		reply(q, code, reason, STR_NULL);
		return;
	}
	if (!open_dialog(q, fl))
		return;
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
	char caller[256], callee[256], assert_id[300];
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
		log_info(s->lg, "reject", "%.*s %.*s: 404 No Route to Domain (the domain has no SIP servers in DNS and no --peer)",
			 STR_FMT(m->method), STR_FMT(m->ruri_str));
		reply(&q, 404, "No Route to Domain", STR_NULL);
	} else if (err < 0) {
		log_info(s->lg, "reject", "%.*s %.*s: 503 DNS Resolution Failed (%s)", STR_FMT(m->method), STR_FMT(m->ruri_str),
			 err == -ETIMEDOUT ? "DNS timed out" : "DNS failure");
		reply(&q, 503, "DNS Resolution Failed", STR_NULL);
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
		p->fl.assert_id = str_from_cstr(p->assert_id);
		bool ok = open_dialog(&q, &p->fl);
		if (ok && proxy_forward(s->proxy, p->st, &pt, 1, &p->fl, p->invite ? &ci : NULL) < 0)
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
	/* DNS answers after this call: the transaction keeps its request from now, or, out
	 * of memory, would end and leave p->st dangling. */
	if (!p || !txn_server_request(q->st)) {
		free(p);
		reply(q, 500, "Out of Memory", STR_NULL);
		return;
	}
	p->s = s;
	p->st = q->st;
	p->fl = *fl;
	if (fl->assert_id.l)
		str_to_cbuf(fl->assert_id, p->assert_id, sizeof p->assert_id);
	p->fl.assert_id = STR_NULL; /* a view of the caller's stack: set again from the copy */
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
			reply(q, 500, "Cannot Resolve", STR_NULL);
	}
}

/* Whether a foreign domain is reached through a peer we trust (configured with --peer
 * and listed with --trust): only such a peer is told who the caller is (RFC 3325). */
static bool trusted_peer_domain(const struct server *s, struct str domain)
{
	for (unsigned i = 0; i < s->cfg->npeer; i++) {
		if (!str_caseeq_cstr(domain, s->cfg->peer[i].domain))
			continue;
		struct sip_uri u;
		if (sip_uri_parse(&u, str_from_cstr(s->cfg->peer[i].uri)) != 0)
			return false;
		char h[256];
		struct str host = unbracket(u.host);
		return str_to_cbuf(host, h, sizeof h) && host_trusted(s, h);
	}
	return false;
}

/* The Route and Request-URI work of RFC 3261 §16.4 for one request. */
struct hop {
	struct proxy_fwd_flags fl;
	struct sip_addr route, next;
	bool have_next;             /* a Route beyond ours names the next hop */
	bool strict;                /* a strict router upstream (see below) */
};

static void route_set(struct server *s, const struct sip_msg *m, struct hop *h)
{
	/* Loose routing (§16.4): our own address on top of Route is removed; a Request-URI
	 * that is us while Routes remain means a strict router sent it: the last Route is
	 * the real Request-URI. */
	/* Only the flags: route and next are read only once a flag says they were parsed,
	 * and zeroing two parsed addresses per request costs more than it is worth. */
	h->fl = (struct proxy_fwd_flags){ 0 };
	h->have_next = h->strict = false;
	const struct sip_hdr *rh = sip_msg_hdr(m, SIP_HDR_ROUTE);
	if (rh) {
		struct str rest = rh->value, it;
		if (sip_list_next(&rest, &it) && sip_addr_parse(&h->route, it) == 0 &&
		    is_me(s, h->route.uri.host, h->route.uri.port)) {
			h->fl.pop_route = true;
			/* the next Route, in this header or the following one */
			if (sip_list_next(&rest, &it) && sip_addr_parse(&h->next, it) == 0) {
				h->have_next = true;
			} else {
				const struct sip_hdr *h2 = sip_msg_hdr_next(m, rh);
				struct str r2 = h2 ? h2->value : STR_NULL;
				if (h2 && sip_list_next(&r2, &it) && sip_addr_parse(&h->next, it) == 0)
					h->have_next = true;
			}
		}
	}
	/* §16.4 strict routing: a strict router upstream put our Record-Route URI into the
	 * Request-URI and the real target last in Route. */
	struct sip_addr last;
	if (rh && !h->fl.pop_route && m->ruri.user.l == 0 && is_me(s, m->ruri.host, m->ruri.port)) {
		unsigned nroutes = 0;
		for (const struct sip_hdr *x = rh; x; x = sip_msg_hdr_next(m, x)) {
			struct str rest = x->value, it;
			while (sip_list_next(&rest, &it))
				if (sip_addr_parse(&last, it) == 0)
					nroutes++;
		}
		if (nroutes) {
			h->strict = true;
			h->fl.strict_ruri = last.uri_str;
			h->fl.drop_last_route = true;
			/* the next hop: the first Route when more remain, else the new Request-URI */
			h->next = nroutes > 1 ? h->route : last;
			h->have_next = true;
		}
	}
}

/* A request inside a dialog (it has a To tag; st is NULL for an ACK to a 2xx): forwarded
 * only along a route we recorded, for a dialog we set up, to the other side of that
 * dialog. Anything else would let anyone relay through us with a made-up To tag. */
static void in_dialog(struct req *q, struct hop *h, bool trusted)
{
	struct server *s = q->s;
	const struct sip_msg *m = q->m;
	bool ack = !q->st;
	if (!h->fl.pop_route && !h->strict) {
		if (ack) /* the ACK for a stateless challenge or refusal: expected, nothing to do */
			log_debug(s->lg, "drop", "ACK %.*s from %s: not routed through us", STR_FMT(m->ruri_str), srctxt(q));
		else
			reject(q, 404, "Not Here", "in-dialog request without our Route");
		return;
	}
	struct dlg_ref ref;
	if (!dlg_find(s->dialogs, m->call_id, m->from.tag, m->to.tag, server_now(s), &ref)) {
		if (ack) /* most often the ACK for a stateless challenge sent through an outbound proxy */
			log_debug(s->lg, "drop", "ACK %.*s from %s: no such dialog", STR_FMT(m->ruri_str), srctxt(q));
		else
			reject(q, 481, "Call/Transaction Does Not Exist", "no dialog set up through this server (relay refused)");
		return;
	}
	struct proxy_target t = { 0 };
	const struct sip_uri *u = h->have_next ? &h->next.uri : &m->ruri;
	if (!resolve_now(s, u, &t.dst)) {
		if (ack)
			server_log_drop(s, "ACK %.*s from %s: unresolvable next hop", STR_FMT(m->ruri_str), srctxt(q));
		else
			reject(q, 404, "Cannot Reach Next Hop", "unresolvable in-dialog target");
		return;
	}
	if (!dlg_allows(s->dialogs, &ref, &t.dst.addr)) {
		char to[80];
		tp_addr_str(&t.dst.addr, to, sizeof to);
		if (ack)
			server_log_drop(s, "ACK %.*s from %s: next hop %s is not the other side of its dialog",
					STR_FMT(m->ruri_str), srctxt(q), to);
		else
			server_log_reject(s, "%.*s %.*s from %s: 403 Forbidden (next hop %s is not the other side of its dialog: relay refused)",
					  STR_FMT(m->method), STR_FMT(m->ruri_str), srctxt(q), to);
		if (!ack)
			reply_sl(q, 403, "Not Part of This Dialog", STR_NULL);
		return;
	}
	/* A target refresh (re-INVITE, UPDATE, SUBSCRIBE, NOTIFY: RFC 3261 §12.2, RFC 6665)
	 * may move the sender: its new Contact is where the other side's requests go from now
	 * on. ACK, BYE and the rest carry none that counts. */
	bool refresh = m->mid == SIP_INVITE || m->mid == SIP_UPDATE || m->mid == SIP_SUBSCRIBE || m->mid == SIP_NOTIFY;
	struct tp_addr ctc;
	if (refresh && proxy_contact_addr(m, &ctc))
		dlg_learn(s->dialogs, ref.call_id, ref.caller_tag, ref.from, &ctc);
	h->fl.strip_ids = !trusted;
	if (ack) {
		proxy_forward_stateless(s->proxy, m, q->src, &t, &h->fl);
		return;
	}
	forward(q, &t, 1, &h->fl, NULL);
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

/* Every phone that can take INVITE must accept SDP (RFC 3264); an INVITE that refuses it
 * can be answered by nobody behind us (RFC 4475 sdp01). */
static bool accepts_sdp(const struct sip_msg *m)
{
	if (m->mid != SIP_INVITE || !sip_msg_hdr(m, SIP_HDR_ACCEPT))
		return true;
	for (const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_ACCEPT); h; h = sip_msg_hdr_next(m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it)) {
			struct str mt = str_trim(it);
			long semi = str_chr(mt, ';');
			if (semi >= 0)
				mt = str_trim((struct str){ mt.p, (size_t)semi });
			if (str_caseeq_cstr(mt, "application/sdp") || str_caseeq_cstr(mt, "application/*") ||
			    str_caseeq_cstr(mt, "*/*"))
				return true;
		}
	}
	return false;
}

void router_request(struct server *s, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct req q = { .s = s, .st = st, .m = m, .src = src };

	if (m->mid == SIP_CANCEL) {
		struct txn_server *ist = txn_server_find_invite(s->txn, m);
		if (!ist) {
			/* Nothing to cancel: answered without keeping anything (§9.2). */
			reply_sl(&q, 481, "Call/Transaction Does Not Exist", STR_NULL);
			return;
		}
		if (cancel_pending(s, st, ist))
			return;
		proxy_cancel(s->proxy, st, ist);
		return;
	}
	struct hop h;
	route_set(s, m, &h);
	bool trusted = server_trusted(s, &src->addr);
	if (!st) { /* ACK for a 2xx: stateless, only along a dialog we are on */
		in_dialog(&q, &h, trusted);
		return;
	}
	/* Requests inside dialogs we carry are always served: refusing them would break calls
	 * that are up. Above the high-water mark new work is refused (503) so that they and
	 * the refreshes of registered phones keep going. */
	int load = server_load(s);
	bool initial = m->to.tag.l == 0;
	if (load > 0 && initial && m->mid != SIP_REGISTER && !(m->mid == SIP_OPTIONS && m->ruri.user.l == 0)) {
		server_shed(s, m, src, "new request over the high-water mark");
		txn_server_drop(st);
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
		server_log_reject(s, "%.*s from %s: 420 Bad Extension (Proxy-Require)", STR_FMT(m->method), srctxt(&q));
		reply_sl(&q, 420, "Bad Extension", unsup);
		return;
	}
	if (!accepts_sdp(m)) {
		server_log_reject(s, "INVITE from %s: 406 Accept excludes application/sdp", srctxt(&q));
		reply_sl(&q, 406, "Not Acceptable", STR("Warning: 399 parley \"application/sdp is required\"\r\n"));
		return;
	}
	if (!initial) {
		in_dialog(&q, &h, trusted);
		return;
	}
	if (m->ruri.scheme == SIP_SCHEME_TEL) {
		reject(&q, 404, "No Route for tel URI", "tel: URIs are not routed");
		return;
	}
	if (m->mid == SIP_REGISTER) {
		do_register(&q, load);
		return;
	}
	int ruri_dom = local_domain(s, m->ruri.host);
	bool ruri_me = is_me(s, m->ruri.host, m->ruri.port);
	if ((ruri_me || ruri_dom >= 0) && m->ruri.user.l == 0) {
		if (m->mid == SIP_OPTIONS)
			answer_options(&q);
		else
			reject(&q, m->mid == SIP_METHOD_OTHER ? 501 : 404, m->mid == SIP_METHOD_OTHER ? "Not Implemented" : "Not Found",
			       "request for the server itself");
		return;
	}
	/* Who is calling: a local user must prove it, and may only use its own identity. */
	char cbuf[512];
	int from_dom = local_domain(s, m->from.uri.host);
	struct str caller = from_dom >= 0 ? local_aor(s, m->from.uri.user, from_dom, cbuf, sizeof cbuf) :
					    make_aor(m->from.uri.user, m->from.uri.host, cbuf, sizeof cbuf);
	bool authed = false;
	char abuf[512], idbuf[600];
	struct str aor = STR_NULL;
	if (from_dom >= 0 && !trusted) {
		if (!authenticate(&q, from_dom, true, "call", abuf, sizeof abuf, &aor))
			return;
		if (!str_eq(aor, caller)) {
			server_log_reject(s, "%.*s from %s: From %.*s but authenticated as %.*s", STR_FMT(m->method),
					  srctxt(&q), STR_FMT(caller), STR_FMT(aor));
			reply_sl(&q, 403, "From Does Not Match Credentials", STR_NULL);
			return;
		}
		authed = true;
	}
	struct str loopvia;
	if (looped(s, m, &loopvia)) {
		log_warn(s->lg, "loop", "%.*s %.*s from %s came back to us (Via %.*s): loop between peers, answering 482",
			 STR_FMT(m->method), STR_FMT(m->ruri_str), srctxt(&q), STR_FMT(loopvia));
		reply_sl(&q, 482, "Loop Detected", STR_NULL);
		return;
	}
	/* RFC 3325: what untrusted sources assert about themselves is removed; for a caller we
	 * authenticated, we assert who it is, toward our phones and trusted peers. */
	h.fl.record_route = true;
	h.fl.strip_ids = !trusted;
	if (authed) {
		struct sip_out o;
		sip_out_init(&o, idbuf, sizeof idbuf);
		sip_out_cstr(&o, "<sip:");
		sip_out_str(&o, aor);
		sip_out_cstr(&o, ">");
		if (!o.overflow)
			h.fl.assert_id = (struct str){ o.p, o.len };
	}
	if (h.have_next) {
		/* A preloaded route beyond us (RFC 3261 §16.12) takes the request wherever its
		 * sender chose: only for callers we vouch for, or it is a relay. */
		if (!authed && !trusted) {
			reject(&q, 403, "Relaying Denied", "preloaded Route beyond this server from a caller that is not authenticated");
			return;
		}
		struct proxy_target t = { 0 };
		if (!resolve_now(s, &h.next.uri, &t.dst)) {
			reject(&q, 404, "Cannot Reach Next Hop", "unresolvable preloaded Route");
			return;
		}
		if (!open_dialog(&q, &h.fl))
			return;
		forward(&q, &t, 1, &h.fl, NULL);
		return;
	}
	if (ruri_dom >= 0) {
		to_local_user(&q, &h.fl, caller, ruri_dom, authed || trusted);
		return;
	}
	/* A foreign domain: no open relay. Only our own authenticated users, or a trusted
	 * peer, may send requests onward. */
	if (!authed && !trusted) {
		reject(&q, 403, "Relaying Denied", "foreign domain and caller is not an authenticated local user");
		return;
	}
	if (!trusted_peer_domain(s, m->ruri.host))
		h.fl.assert_id = STR_NULL;
	to_foreign(&q, &h.fl, caller);
}
