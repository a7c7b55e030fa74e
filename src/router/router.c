/* router.c: decides what happens to each request: registrar, proxy, or an answer of our own (DESIGN §2). */
#include "router/router_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALLOW "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, PRACK, REFER, SUBSCRIBE, NOTIFY"
/* Extensions a phone may Require of the registrar: Path (RFC 3327), Outbound (RFC 5626)
 * and GRUU (RFC 5627). */
#define SUPPORTED "path, outbound, gruu"

/* What a request for a foreign domain keeps while it waits for DNS (route_wait). */
struct waiting {
	struct proxy_fwd_flags fl;
	bool invite;
	bool record; /* write a call record (caller and callee below) */
	char caller[256], callee[256], assert_id[300];
	size_t caller_l, callee_l;
};

static void routed(void *arg, const void *owner, void *state, int err, const struct route_target *t, unsigned n);

/* ---- life ------------------------------------------------------------------------------- */

int router_new(struct router **rp, const struct router_env *env)
{
	struct router *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->env = *env;
	if (route_waits_new(&r->waits, env->route, routed, r) < 0) {
		free(r);
		return -ENOMEM;
	}
	router_reload_trust(r);
	*rp = r;
	return 0;
}

void router_reload_trust(struct router *r)
{
	r->ntrust = 0;
	for (unsigned i = 0; i < r->env.cfg->ntrust && r->ntrust < ROUTER_MAX_TRUST; i++)
		if (tp_addr_from_host(&r->trust[r->ntrust], str_from_cstr(r->env.cfg->trust[i]), 0) == 0)
			r->ntrust++;
}

void router_free(struct router *r)
{
	if (!r)
		return;
	route_waits_free(r->waits);
	router__delayed_free(r);
	free(r);
}

uint64_t router__now_ms(const struct router *r)
{
	return r->env.wall_ms(r->env.clock_arg);
}

const char *router__src(struct req *q)
{
	if (!q->srctxt_buf[0])
		tp_addr_str(&q->src->addr, q->srctxt_buf, sizeof q->srctxt_buf);
	return q->srctxt_buf;
}

bool router_trusted(const struct router *r, const struct tp_addr *a)
{
	for (unsigned i = 0; i < r->ntrust; i++)
		if (tp_addr_same_host(&r->trust[i], a))
			return true;
	return false;
}

void router_tick(struct router *r, uint64_t now_ms)
{
	log_limit_flush(r->env.lg, &r->lim_reject, now_ms);
	log_limit_flush(r->env.lg, &r->lim_drop, now_ms);
	log_limit_flush(r->env.lg, &r->lim_auth, now_ms);
}

int router_load(const struct router *r)
{
	/* Requests still waiting for their answer are what a flood of unanswered calls piles
	 * up; finished transactions linger for their timers too, but at about 1 KB each they
	 * are left to the memory cap. */
	uint64_t live = proxy_stats(r->env.proxy)->pending;
	uint64_t cap_t = r->env.cfg->max_transactions, cap_d = dlg_capacity(r->env.dialogs);
	uint64_t nd = dlg_count(r->env.dialogs);
	if (live >= cap_t || nd >= cap_d)
		return 2;
	if ((live * 5 >= cap_t * 4 || nd * 5 >= cap_d * 4) && r->mem_load < 1)
		return 1;
	return r->mem_load;
}

void router_set_memory_load(struct router *r, int level)
{
	r->mem_load = level;
}

static void on_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct router *r = arg;
	router_request(r, st, m, src, router_load(r));
}

const struct txn_tu router_tu = {
	.on_request = on_request,
};

const struct router_stats *router_stats(const struct router *r)
{
	struct router *w = (struct router *)r;
	w->stats.waiting = route_waits_count(r->waits);
	return &r->stats;
}

/* ---- requests to the server itself --------------------------------------------------- */

static void answer_options(struct req *q)
{
	router__reply_sl(q, 200, "OK",
			 STR("Allow: " ALLOW "\r\nAccept: application/sdp\r\nSupported: " SUPPORTED "\r\n"));
}

/* Whether option tag it is one of SUPPORTED. */
static bool understood(struct str it)
{
	struct str rest = STR(SUPPORTED), one;
	while (sip_list_next(&rest, &one))
		if (str_caseeq(str_trim(one), it))
			return true;
	return false;
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
			if (id == SIP_HDR_REQUIRE && understood(it))
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

/* ---- REGISTER --------------------------------------------------------------------------- */

static void do_register(struct req *q, int load)
{
	struct router *r = q->r;
	const struct sip_msg *m = q->m;
	if (m->to.uri.scheme != SIP_SCHEME_SIP && m->to.uri.scheme != SIP_SCHEME_SIPS) {
		router__reject(q, 400, "To Must Be a SIP URI", "address-of-record is not sip: or sips:");
		return;
	}
	int dom = router__local_domain(r, m->to.uri.host);
	if (dom < 0) {
		router__log_reject(r, "register: refused %.*s from %s: wrong domain %.*s", STR_FMT(m->to.uri_str),
				   router__src(q), STR_FMT(m->to.uri.host));
		router__reply_sl(q, 403, "Domain Not Served Here", STR_NULL);
		return;
	}
	char ubuf[256];
	struct str unsup;
	if (unsupported(m, SIP_HDR_REQUIRE, ubuf, sizeof ubuf, &unsup)) {
		/* §8.2.2.3: the 420 lists what we do not support. */
		router__log_reject(r, "REGISTER from %s: 420 Bad Extension (Require)", router__src(q));
		router__reply_sl(q, 420, "Bad Extension", unsup);
		return;
	}
	char abuf[512], tbuf[512];
	struct str to_aor =
		router__aor(m->to.uri.user, str_from_cstr(route_domain_name(r->env.route, dom)), tbuf, sizeof tbuf);
	/* Over the high-water mark, phones that are registered already keep their place:
	 * new registrations wait (503), refreshes are served. */
	if (load > 0 && !loc_find(r->env.loc, to_aor)) {
		router__shed(q, "REGISTER of an address with no binding");
		return;
	}
	struct str aor;
	if (!router__authenticate(q, dom, false, "register", abuf, sizeof abuf, &aor))
		return;
	if (!str_eq(aor, to_aor)) {
		router__log_reject(r, "register: refused %.*s from %s: authenticated as %.*s", STR_FMT(to_aor),
				   router__src(q), STR_FMT(aor));
		router__reply_sl(q, 403, "Not Allowed to Register This AOR", STR_NULL);
		return;
	}
	reg_handle(r->env.reg, q->st, m, q->src, aor, router__now(r));
}

/* ---- who is calling ------------------------------------------------------------------- */

struct caller {
	struct str aor;       /* "alice@a.test" as the From names it */
	bool vouched;         /* authenticated here, or from a trusted peer */
	bool authed;          /* authenticated here: we assert who it is */
	struct str assert_id; /* P-Asserted-Identity value for an authenticated caller */
	char buf[512], idbuf[600], abuf[512];
};

/* A caller in a local domain must prove who it is, and may only use its own identity.
 * Returns false after answering. */
static bool identify(struct req *q, bool trusted, struct caller *c)
{
	struct router *r = q->r;
	const struct sip_msg *m = q->m;
	int dom = router__local_domain(r, m->from.uri.host);
	struct str host = dom >= 0 ? str_from_cstr(route_domain_name(r->env.route, dom)) : m->from.uri.host;
	c->aor = router__aor(m->from.uri.user, host, c->buf, sizeof c->buf);
	c->authed = false;
	c->vouched = trusted;
	c->assert_id = STR_NULL;
	if (dom < 0 || trusted)
		return true;
	struct str aor;
	if (!router__authenticate(q, dom, true, "call", c->abuf, sizeof c->abuf, &aor))
		return false;
	if (!str_eq(aor, c->aor)) {
		router__log_reject(r, "%.*s from %s: From %.*s but authenticated as %.*s", STR_FMT(m->method),
				   router__src(q), STR_FMT(c->aor), STR_FMT(aor));
		router__reply_sl(q, 403, "From Does Not Match Credentials", STR_NULL);
		return false;
	}
	c->authed = c->vouched = true;
	/* RFC 3325: for a caller we authenticated, we assert who it is, toward our phones and
	 * trusted peers. */
	struct sip_out o;
	sip_out_init(&o, c->idbuf, sizeof c->idbuf);
	sip_out_cstr(&o, "<sip:");
	sip_out_str(&o, aor);
	sip_out_cstr(&o, ">");
	if (!o.overflow)
		c->assert_id = (struct str){ o.p, o.len };
	return true;
}

/* Whether the request did not already go through us (RFC 3261 §16.3 step 4); after a loop
 * has been answered 482 returns false. */
static bool not_looped(struct req *q)
{
	struct str via;
	if (!proxy_looped(q->r->env.proxy, q->m, &via))
		return true;
	log_warn(q->r->env.lg, "loop",
		 "%.*s %.*s from %s came back to us (Via %.*s): loop between peers, answering 482",
		 STR_FMT(q->m->method), STR_FMT(q->m->ruri_str), router__src(q), STR_FMT(via));
	router__reply_sl(q, 482, "Loop Detected", STR_NULL);
	return false;
}

/* ---- proxying --------------------------------------------------------------------------- */

/* Where a URI points, when that is known without waiting (numeric host, static peer,
 * cached DNS answer). Returns false when it is not. */
static bool resolve_now(struct router *r, const struct sip_uri *u, struct tp_source *dst)
{
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n = 0;
	memset(dst, 0, sizeof(*dst));
	if (route_lookup(r->env.route, u, t, &n) != 0 || n == 0)
		return false;
	dst->proto = t[0].proto;
	dst->addr = t[0].addr;
	if (t[0].proto == TP_TLS)
		tp_tls_name(r->env.tp, &t[0].addr, t[0].host);
	return true;
}

static void record_refused(struct req *q, const struct proxy_call_info *ci, unsigned status, const char *reason);

/* rtpengine answered the offers of an INVITE the proxy holds (hold id tag): its forks go on
 * with the relay's SDP for each (sdp[i]), as it came (n 0), or it is answered with status. */
static void offered(void *arg, uint64_t tag, unsigned status, const struct str *sdp, unsigned n, const char *relay)
{
	struct router *r = arg;
	char text[160];
	/* "relay NAME" or "direct", without snprintf */
	size_t l = 0;
	if (relay)
		l = str_join(text, sizeof text, (const struct str[]){ STR("relay "), str_from_cstr(relay) }, 2);
	proxy_release(r->env.proxy, tag, status, sdp, n, relay ? (struct str){ text, l } : STR("direct"));
	/* -ENOENT: cancelled meanwhile; its end told the relay already (proxy call_end). */
}

/* The media relay of a new call (README "Phones behind NAT"): whether it is relayed, and
 * when its INVITE carries an offer, rtpengine's SDP for each fork before it goes on. Each
 * fork gets its own offer, tied to the Via branch it will carry (rtpengine's via-branch),
 * so that with several early dialogs each phone has its own ports and the one that
 * answers gets the caller's media. Returns true when the request was taken care of (held
 * for rtpengine, or answered). */
static bool relayed(struct req *q, const struct proxy_target *t, unsigned n, struct proxy_fwd_flags *fl,
		    struct proxy_call_info *ci, const struct media_leg *legs, char *text, size_t cap)
{
	struct router *r = q->r;
	const struct sip_msg *m = q->m;
	const char *why;
	if (n > MEDIA_MAX_FORKS || !media_on(r->env.media) ||
	    !media_wanted(r->env.media, m, q->src, legs, legs ? n : 0, &why))
		return false;
	struct proxy_target ft[MEDIA_MAX_FORKS];
	struct media_fork fork[MEDIA_MAX_FORKS];
	char br[MEDIA_MAX_FORKS][TXN_BRANCH_SIZE];
	for (unsigned i = 0; i < n; i++) {
		ft[i] = t[i];
		ft[i].branch = (struct str){ br[i], txn_make_branch(r->env.txn, br[i]) };
		fork[i] = (struct media_fork){ ft[i].branch, legs && legs[i].webrtc };
	}
	uint64_t id = ++r->next_hold;
	const char *bad;
	int rc = media_offer(r->env.media, m, q->src, fork, n, why, offered, r, id, &bad);
	if (rc >= 300) {
		log_info(r->env.lg, "reject", "INVITE %.*s from %s: %d %s", STR_FMT(m->ruri_str), router__src(q), rc,
			 bad);
		record_refused(q, ci, (unsigned)rc, bad);
		router__reply(q, (unsigned)rc, bad, STR_NULL);
		return true;
	}
	const char *via = media_relay_of(r->env.media, m->call_id);
	if (rc == 0) {
		/* Nothing to wait for: a late offer (relayed once the 2xx brings it), or no
		 * rtpengine answers and the call goes on unrelayed. */
		if (via) {
			snprintf(text, cap, "relay %s", via);
			ci->media = str_from_cstr(text);
			log_info(r->env.lg, "media", "call %.*s relayed through %s (%s; the offer comes in the answer)",
				 STR_FMT(m->call_id), via, why);
		}
		return false;
	}
	/* Recorded once rtpengine has answered (proxy_release): relayed, or not after all. */
	ci->media = STR("relay (waiting for rtpengine)");
	if (proxy_forward_held(r->env.proxy, q->st, ft, n, fl, ci, id) < 0) {
		media_end(r->env.media, m->call_id);
		router__reply(q, 500, "Cannot Forward", STR_NULL);
	}
	return true;
}

/* Opens the dialog an initial INVITE, SUBSCRIBE or REFER may create (see dialog.h), so
 * that the requests inside it can be checked, and forwards the request; a new call may
 * wait for the media relay first (legs: what is known of each target, or NULL). */
static void forward(struct req *q, const struct proxy_target *t, unsigned n, struct proxy_fwd_flags *fl,
		    const struct proxy_call_info *info, const struct media_leg *legs)
{
	enum sip_method mid = q->m->mid;
	if (q->m->to.tag.l == 0 && (mid == SIP_INVITE || mid == SIP_SUBSCRIBE || mid == SIP_REFER)) {
		int err = dlg_open(q->r->env.dialogs, q->m->call_id, q->m->from.tag, router__now(q->r));
		if (err == -ENOSPC || err == -ENOMEM) {
			router__shed(q, "dialog table full");
			return;
		}
		/* Without a From tag (RFC 2543 phones) there is no dialog to check later:
		 * requests inside it are refused, as with any unknown dialog. */
		fl->dialog = err == 0;
	}
	struct proxy_call_info ci;
	char text[160];
	if (info) {
		ci = *info;
		ci.media = STR("direct");
		if (mid == SIP_INVITE && q->m->to.tag.l == 0 && relayed(q, t, n, fl, &ci, legs, text, sizeof text))
			return;
	}
	if (proxy_forward(q->r->env.proxy, q->st, t, n, fl, info ? &ci : NULL) < 0)
		router__reply(q, 500, "Cannot Forward", STR_NULL);
}

/* The call record of an INVITE refused before the proxy saw it, so that every attempt
 * has its row. */
static void record_refused(struct req *q, const struct proxy_call_info *ci, unsigned status, const char *reason)
{
	const struct sip_msg *m = q->m;
	char id[512];
	int k = snprintf(id, sizeof id, "%.*s;%.*s;%u", STR_FMT(m->call_id), STR_FMT(m->from.tag), (unsigned)m->cseq);
	struct cdr_attempt att = {
		.id = { id, k > 0 && (size_t)k < sizeof id ? (size_t)k : 0 },
		.call_id = m->call_id,
		.caller = ci->caller,
		.callee = ci->callee,
		.start_ms = router__now_ms(q->r),
	};
	q->r->stats.refused_calls++;
	cdr_start(q->r->env.cdr, &att);
	cdr_final(q->r->env.cdr, &att, status, reason, 0);
}

/* Where binding b is reached now: false when nowhere (no address, or its connection is
 * gone). */
static bool reachable(struct router *r, const struct loc_binding *b, struct tp_source *dst)
{
	return reg_binding_dest(b, dst) == 0 && (!dst->conn_id || tp_conn_alive(r->env.tp, dst->conn_id));
}

/* Whether dst is reached over TLS (or WSS), as a sips: request needs. */
static bool secure(const struct tp_source *dst)
{
	return dst->proto == TP_TLS || dst->proto == TP_WSS;
}

/* Binding b of a phone that has a target among t[0..n) already (inst[i] is its instance;
 * any is true when every target is that one phone, as for a GRUU): b becomes one of that
 * target's other flows (when reachable, and over TLS when tls_only), and true is returned;
 * false when the phone has none yet. */
static bool add_flow(struct router *r, struct proxy_target *t, const struct str *inst, unsigned n,
		     const struct loc_binding *b, bool any, bool tls_only)
{
	struct str in = loc_b_field(b, LOC_INSTANCE);
	for (unsigned i = 0; i < n; i++) {
		if (!any && (!inst[i].l || !str_eq(inst[i], in)))
			continue;
		struct proxy_flow f = { .ruri = loc_b_field(b, LOC_URI), .path = loc_b_field(b, LOC_PATH) };
		if (t[i].nflow < PROXY_MAX_FLOWS && reachable(r, b, &f.dst) && (!tls_only || secure(&f.dst)))
			t[i].flow[t[i].nflow++] = f;
		return true;
	}
	return false;
}

/* The GRUU (RFC 5627) the Request-URI of q names, when it is one we issued, in *g with
 * *valid saying whether it still is (registrar.h "GRUU"). Returns false when it is none. */
static bool gruu_of(struct req *q, struct str domain, struct reg_gruu *g, bool *valid)
{
	struct router *r = q->r;
	if (!reg_gruu_parse(r->env.reg, &q->m->ruri, domain, g))
		return false;
	*valid = reg_gruu_valid(r->env.reg, g, loc_find(r->env.loc, (struct str){ g->aor, g->aor_l }), router__now(r));
	return true;
}

static void to_local_user(struct req *q, struct proxy_fwd_flags *fl, const struct caller *c, int dom)
{
	struct router *r = q->r;
	const struct sip_msg *m = q->m;
	char abuf[512];
	struct str domain = str_from_cstr(route_domain_name(r->env.route, dom));
	struct str callee = router__aor(m->ruri.user, domain, abuf, sizeof abuf), user = m->ruri.user;
	/* A GRUU reaches the one phone it names, and only while it is valid (RFC 5627 §7). */
	struct reg_gruu g;
	bool valid, gr = gruu_of(q, domain, &g, &valid);
	if (gr && !valid) {
		router__reject(q, 404, "Not Found", "GRUU no longer valid");
		return;
	}
	if (gr) {
		callee = (struct str){ g.aor, g.aor_l };
		long at = str_chr(callee, '@');
		user = (struct str){ g.aor, at > 0 ? (size_t)at : 0 };
	}
	struct proxy_call_info ci = { c->aor, callee, STR_NULL };
	struct loc_aor *a = loc_find(r->env.loc, callee);
	struct proxy_target t[16];
	struct media_leg legs[16];
	struct str inst[16]; /* the instance of t[i] when it is an Outbound flow, else empty */
	unsigned n = 0, insecure = 0;
	uint32_t now = router__now(r);
	/* sips: asks for TLS on every hop (RFC 3261 §26.2.2): only phones registered over TLS
	 * (or WSS) are reached; the others are skipped. */
	bool sips = m->ruri.scheme == SIP_SCHEME_SIPS;
	for (struct loc_binding *b = a ? a->first : NULL; b && n < 16; b = b->next) {
		if (b->expires_at <= now || (gr && !reg_gruu_phone(r->env.reg, &g, b)))
			continue;
		/* RFC 5626 §5.3: a phone with several flows is reached once, over the first
		 * that works; the others are its failover. So is the phone of a GRUU. */
		if ((gr || loc_is_flow(b)) && add_flow(r, t, inst, n, b, gr, sips))
			continue;
		inst[n] = loc_is_flow(b) ? loc_b_field(b, LOC_INSTANCE) : STR_NULL;
		t[n] = (struct proxy_target){ .ruri = loc_b_field(b, LOC_URI), .path = loc_b_field(b, LOC_PATH) };
		/* nalt 0: a phone has one address, no failover */
		legs[n] = (struct media_leg){
			.nat = reg_binding_natted(b),
			.webrtc = b->src.proto == TP_WS || b->src.proto == TP_WSS,
			.relay = route_peer_relay(r->env.route, STR_NULL, &q->src->addr),
		};
		/* A phone reached over its connection is not there once that is gone: skipped
		 * like one with no address, so that the caller hears 480 (or another phone
		 * rings) at once. */
		if (reachable(r, b, &t[n].dst)) {
			if (sips && !secure(&t[n].dst))
				insecure++;
			else
				n++;
		}
	}
	if (n == 0 && !c->vouched) {
		/* Nobody vouches for the caller: whether the user exists, has no phone or is
		 * not there at all, the answer is the same 404, from the same in-memory lookup
		 * (the user table is not read), so that neither the answer nor its timing
		 * tells which users exist. No call record: anyone can send these. */
		router__reject(q, 404, "Not Found", "no registered phone for this address (unauthenticated caller)");
		return;
	}
	if (n == 0 && insecure) {
		if (m->mid == SIP_INVITE)
			record_refused(q, &ci, 480, "not registered over TLS");
		log_info(r->env.lg, "reject",
			 "%.*s %.*s from %s: 480 Not Reachable Over TLS (sips: and the callee has no phone registered "
			 "over TLS)",
			 STR_FMT(m->method), STR_FMT(m->ruri_str), router__src(q));
		router__reply(q, 480, "Not Reachable Over TLS", STR_NULL);
		return;
	}
	if (n == 0) {
		struct store_user u;
		bool exists = store_ucache_get(r->env.users, user, domain, now, &u) == 0;
		unsigned code = exists ? 480 : 404;
		const char *reason = exists ? "Temporarily Unavailable" : "Not Found";
		if (m->mid == SIP_INVITE)
			record_refused(q, &ci, code, exists ? "not registered" : "not found");
		log_info(r->env.lg, "reject", "%.*s %.*s from %s: %u %s (%s)", STR_FMT(m->method), STR_FMT(m->ruri_str),
			 router__src(q), code, reason, exists ? "callee has no registered phone" : "no such user");
		router__reply(q, code, reason, STR_NULL);
		return;
	}
	forward(q, t, n, fl, m->mid == SIP_INVITE ? &ci : NULL, legs);
}

/* Forwards the request where uri points once DNS has answered (RFC 3263): it waits in
 * route/ with w, and routed() takes it on. */
static void resolve_then_forward(struct req *q, const struct sip_uri *uri, const struct waiting *w)
{
	struct router *r = q->r;
	/* DNS answers after this call: the transaction keeps its request from now on, or, out
	 * of memory, would end and leave the wait with a dangling owner. */
	if (!txn_server_request(q->st)) {
		router__reply(q, 500, "Server Out of Memory", STR_NULL);
		return;
	}
	int err = route_wait(r->waits, uri, q->st, w, sizeof *w);
	if (err == -EPROTONOSUPPORT || err == -EINVAL)
		router__reject(q, 416, "Unsupported URI Scheme", "no transport for this URI");
	else if (err < 0)
		router__reply(q, 500, "Cannot Resolve", STR_NULL);
	else if (w->invite && route_waiting(r->waits, q->st))
		txn_server_trying(q->st); /* DNS may take a while: stop the caller's retransmissions */
}

/* A preloaded route beyond us (RFC 3261 §16.12) takes the request wherever its sender
 * chose: only for callers we vouch for, or it is a relay. */
static void preloaded(struct req *q, struct proxy_hop *h, const struct caller *c)
{
	if (!c->vouched) {
		router__reject(q, 403, "Relaying Denied",
			       "preloaded Route beyond this server from a caller that is not authenticated");
		return;
	}
	struct proxy_target t = { 0 };
	if (resolve_now(q->r, &h->next.uri, &t.dst)) {
		forward(q, &t, 1, &h->fl, NULL, NULL);
		return;
	}
	struct waiting w = { .fl = h->fl, .invite = q->m->mid == SIP_INVITE };
	w.fl.assert_id = STR_NULL;
	if (h->fl.assert_id.l)
		str_to_cbuf(h->fl.assert_id, w.assert_id, sizeof w.assert_id);
	resolve_then_forward(q, &h->next.uri, &w);
}

/* Whether a foreign domain is reached through a peer we trust (configured with --peer
 * and listed with --trust): only such a peer is told who the caller is (RFC 3325). */
static bool trusted_peer_domain(const struct router *r, struct str domain)
{
	struct str host = route_peer_host(r->env.route, domain);
	struct tp_addr a;
	if (!host.l)
		return false;
	for (unsigned k = 0; k < r->env.cfg->ntrust; k++)
		if (str_caseeq_cstr(host, r->env.cfg->trust[k]))
			return true;
	return tp_addr_from_host(&a, host, 0) == 0 && router_trusted(r, &a);
}

/* A foreign domain: no open relay. Only our own authenticated users, or a trusted peer,
 * may send requests onward; they wait for DNS (RFC 3263) in route/. */
static void to_foreign(struct req *q, struct proxy_fwd_flags *fl, const struct caller *c)
{
	struct router *r = q->r;
	const struct sip_msg *m = q->m;
	if (!c->vouched) {
		router__reject(q, 403, "Relaying Denied",
			       "foreign domain and caller is not an authenticated local user");
		return;
	}
	struct waiting w = { .fl = *fl, .invite = m->mid == SIP_INVITE };
	if (trusted_peer_domain(r, m->ruri.host) && fl->assert_id.l)
		str_to_cbuf(fl->assert_id, w.assert_id, sizeof w.assert_id);
	w.fl.assert_id = STR_NULL; /* a view of the caller's stack: set again from the copy */
	w.caller_l = str_to_cbuf(c->aor, w.caller, sizeof w.caller) ? strlen(w.caller) : 0;
	char abuf[512];
	struct str callee = router__aor(m->ruri.user, m->ruri.host, abuf, sizeof abuf);
	w.callee_l = strlen(str_to_cbuf(callee, w.callee, sizeof w.callee));
	w.record = w.invite;
	resolve_then_forward(q, &m->ruri, &w);
}

/* DNS answered for a request waiting in resolve_then_forward. */
static void routed(void *arg, const void *owner, void *state, int err, const struct route_target *t, unsigned n)
{
	struct router *r = arg;
	struct waiting *w = state;
	struct txn_server *st = (struct txn_server *)owner;
	const struct sip_msg *m = txn_server_request(st);
	struct req q = { .r = r, .st = st, .m = m, .src = txn_server_source(st) };
	if (!m) {
		router__reply(&q, 500, "Server Out of Memory", STR_NULL);
		return;
	}
	if (err == -ENOENT || (err == 0 && n == 0)) {
		log_info(r->env.lg, "reject",
			 "%.*s %.*s: 404 No Route to Domain (the domain has no SIP servers in DNS and no --peer)",
			 STR_FMT(m->method), STR_FMT(m->ruri_str));
		router__reply(&q, 404, "No Route to Domain", STR_NULL);
		return;
	}
	if (err < 0) {
		log_info(r->env.lg, "reject", "%.*s %.*s: 503 DNS Resolution Failed (%s)", STR_FMT(m->method),
			 STR_FMT(m->ruri_str), err == -ETIMEDOUT ? "DNS timed out" : "DNS failure");
		router__reply(&q, 503, "DNS Resolution Failed", STR_NULL);
		return;
	}
	/* What outbound TLS checks the peer's certificate against: the name each address was
	 * found under. */
	for (unsigned i = 0; i < n; i++)
		if (t[i].proto == TP_TLS)
			tp_tls_name(r->env.tp, &t[i].addr, t[i].host);
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
	log_info(r->env.lg, "route", "%.*s for %.*s goes to %s (%s)%s", STR_FMT(m->method), STR_FMT(m->ruri.host),
		 tp_addr_str(&t[0].addr, to, sizeof to), t[0].host, n > 1 ? ", with failover" : "");
	struct proxy_call_info ci = { { w->caller, w->caller_l }, { w->callee, w->callee_l }, STR_NULL };
	w->fl.assert_id = str_from_cstr(w->assert_id);
	struct media_leg leg = { .relay = route_peer_relay(r->env.route, m->ruri.host, &q.src->addr) };
	forward(&q, &pt, 1, &w->fl, w->record ? &ci : NULL, &leg);
}

/* A CANCEL: matched to its INVITE by the transaction layer (§9.2), answered at once. */
static void cancel(struct req *q)
{
	struct router *r = q->r;
	struct txn_server *ist = txn_server_find_invite(r->env.txn, q->m);
	if (!ist) {
		/* Nothing to cancel: answered without keeping anything. */
		router__reply_sl(q, 481, "Call/Transaction Does Not Exist", STR_NULL);
		return;
	}
	struct waiting w;
	if (route_wait_cancel(r->waits, ist, &w, sizeof w)) {
		/* Still waiting for DNS: nothing was sent downstream yet. */
		txn_server_reply(q->st, 200, "OK", NULL);
		txn_server_reply(ist, 487, "Request Terminated", NULL);
		log_info(r->env.lg, "call", "cancelled %.*s -> %.*s before it was routed", (int)w.caller_l, w.caller,
			 (int)w.callee_l, w.callee);
		return;
	}
	proxy_cancel(r->env.proxy, q->st, ist);
}

/* ---- inside a dialog --------------------------------------------------------------------- */

/* Where a request for GRUU g goes inside a dialog (a phone that put its GRUU in its
 * Contact): the first of its phone's bindings that is reachable, the others as failover.
 * False when none is. */
static bool gruu_target(struct router *r, const struct reg_gruu *g, struct proxy_target *t)
{
	struct loc_aor *a = loc_find(r->env.loc, (struct str){ g->aor, g->aor_l });
	uint32_t now = router__now(r);
	unsigned n = 0;
	struct str none = STR_NULL;
	for (struct loc_binding *b = a ? a->first : NULL; b; b = b->next) {
		if (b->expires_at <= now || !reg_gruu_phone(r->env.reg, g, b) ||
		    add_flow(r, t, &none, n, b, true, false))
			continue;
		*t = (struct proxy_target){ .ruri = loc_b_field(b, LOC_URI), .path = loc_b_field(b, LOC_PATH) };
		n = reachable(r, b, &t->dst);
	}
	return n > 0;
}

/* A request inside a dialog (it has a To tag; st is NULL for an ACK to a 2xx): forwarded
 * only along a route we recorded, for a dialog we set up, to the other side of that
 * dialog. Anything else would let anyone relay through us with a made-up To tag. */
static void in_dialog(struct req *q, struct proxy_hop *h, bool trusted)
{
	struct router *r = q->r;
	const struct sip_msg *m = q->m;
	bool ack = !q->st;
	if (!h->fl.pop_route && !h->strict) {
		if (ack) /* the ACK for a stateless challenge or refusal: expected, nothing to do */
			log_debug(r->env.lg, "drop", "ACK %.*s from %s: not routed through us", STR_FMT(m->ruri_str),
				  router__src(q));
		else
			router__reject(q, 404, "Not Here", "in-dialog request without our Route");
		return;
	}
	struct dlg_ref ref;
	if (!dlg_find(r->env.dialogs, m->call_id, m->from.tag, m->to.tag, router__now(r), &ref)) {
		if (ack) /* most often the ACK for a stateless challenge sent through an outbound proxy */
			log_debug(r->env.lg, "drop", "ACK %.*s from %s: no such dialog", STR_FMT(m->ruri_str),
				  router__src(q));
		else
			router__reject(q, 481, "Call/Transaction Does Not Exist",
				       "no dialog set up through this server (relay refused)");
		return;
	}
	struct proxy_target t = { 0 };
	const struct sip_uri *u = h->have_next ? &h->next.uri : &m->ruri;
	enum dlg_side other = ref.from == DLG_CALLER ? DLG_CALLEE : DLG_CALLER;
	/* A browser phone cannot be reached at its Contact (RFC 7118 §5: "x@y.invalid;
	 * transport=ws"): a request for its side goes over its own WebSocket, the connection
	 * its messages came from (its flow). */
	bool ws_next = !h->have_next && (str_caseeq_cstr(u->transport, "ws") || str_caseeq_cstr(u->transport, "wss"));
	struct tp_addr wsflow;
	/* The other side's target is a GRUU of ours: its phone, over its own flow. */
	int dom = h->have_next ? -1 : router__local_domain(r, m->ruri.host);
	struct reg_gruu g;
	bool valid = false;
	if (dom >= 0 && gruu_of(q, str_from_cstr(route_domain_name(r->env.route, dom)), &g, &valid)) {
		if (!valid || !gruu_target(r, &g, &t)) {
			if (ack)
				router__log_drop(r, "ACK %.*s from %s: its GRUU reaches no phone", STR_FMT(m->ruri_str),
						 router__src(q));
			else if (!valid)
				router__reject(q, 404, "Not Found", "GRUU no longer valid");
			else
				router__reject(q, 480, "Temporarily Unavailable", "the GRUU's phone is not reachable");
			return;
		}
	} else if (ws_next && dlg_flow(r->env.dialogs, &ref, other, &wsflow) &&
		   tp_ws_find(r->env.tp, &wsflow, &t.dst)) {
		/* t.dst is that connection */
	} else if (!resolve_now(r, u, &t.dst)) {
		if (ack)
			router__log_drop(r, "ACK %.*s from %s: unresolvable next hop", STR_FMT(m->ruri_str),
					 router__src(q));
		else
			router__reject(q, 404, "Cannot Reach Next Hop", "unresolvable in-dialog target");
		return;
	}
	/* A phone behind NAT wrote a private address as its Contact, which nobody here can
	 * reach: a request for its side goes where that side's messages come from (its
	 * flow, README "Phones behind NAT"). Only when the Request-URI is the next hop (no
	 * proxy beyond us on the route), so that a peer's route is never bent. */
	struct tp_addr flow;
	if (!ws_next && !h->have_next && tp_addr_is_private(&t.dst.addr) &&
	    dlg_flow(r->env.dialogs, &ref, other, &flow) && !tp_addr_same_host(&flow, &t.dst.addr))
		t.dst.addr = flow;
	if (!dlg_allows(r->env.dialogs, &ref, &t.dst.addr)) {
		char to[80];
		tp_addr_str(&t.dst.addr, to, sizeof to);
		if (ack) {
			router__log_drop(r, "ACK %.*s from %s: next hop %s is not the other side of its dialog",
					 STR_FMT(m->ruri_str), router__src(q), to);
			return;
		}
		router__log_reject(r,
				   "%.*s %.*s from %s: 403 Forbidden (next hop %s is not the other side of its dialog: "
				   "relay refused)",
				   STR_FMT(m->method), STR_FMT(m->ruri_str), router__src(q), to);
		router__reply_sl(q, 403, "Not Part of This Dialog", STR_NULL);
		return;
	}
	/* A target refresh (re-INVITE, UPDATE, SUBSCRIBE, NOTIFY: RFC 3261 §12.2, RFC 6665)
	 * may move the sender: its new Contact is where the other side's requests go from now
	 * on. ACK, BYE and the rest carry none that counts. */
	bool refresh = m->mid == SIP_INVITE || m->mid == SIP_UPDATE || m->mid == SIP_SUBSCRIBE || m->mid == SIP_NOTIFY;
	struct tp_addr ctc;
	if (refresh && proxy_contact_addr(m, &ctc))
		dlg_learn(r->env.dialogs, ref.call_id, ref.caller_tag, ref.from, &ctc);
	h->fl.strip_ids = !trusted;
	if (ack)
		proxy_forward_stateless(r->env.proxy, m, q->src, &t, &h->fl);
	else if (proxy_forward(r->env.proxy, q->st, &t, 1, &h->fl, NULL) < 0)
		router__reply(q, 500, "Cannot Forward", STR_NULL);
}

/* ---- the decision ------------------------------------------------------------------------ */

/* Whether a new request may be taken at all: load, Max-Forwards, Proxy-Require, Accept
 * (RFC 3261 §16.3). Returns false after answering. */
static bool admissible(struct req *q, int load)
{
	const struct sip_msg *m = q->m;
	struct router *r = q->r;
	/* Requests inside dialogs we carry are always served: refusing them would break calls
	 * that are up. Above the high-water mark new work is refused (503) so that they and
	 * the refreshes of registered phones keep going. */
	bool to_server =
		m->mid == SIP_OPTIONS && m->ruri.user.l == 0 &&
		(proxy_is_me(r->env.proxy, m->ruri.host, m->ruri.port) || router__local_domain(r, m->ruri.host) >= 0);
	if (load > 0 && m->to.tag.l == 0 && m->mid != SIP_REGISTER && !to_server) {
		router__shed(q, "new request over the high-water mark");
		return false;
	}
	if (m->max_forwards == 0) {
		if (to_server)
			answer_options(q);
		else
			router__reject(q, 483, "Too Many Hops", "Max-Forwards reached 0");
		return false;
	}
	char ubuf[512];
	struct str unsup;
	if (unsupported(m, SIP_HDR_PROXY_REQUIRE, ubuf, sizeof ubuf, &unsup)) {
		router__log_reject(r, "%.*s from %s: 420 Bad Extension (Proxy-Require)", STR_FMT(m->method),
				   router__src(q));
		router__reply_sl(q, 420, "Bad Extension", unsup);
		return false;
	}
	if (!accepts_sdp(m)) {
		router__log_reject(r, "INVITE from %s: 406 Accept excludes application/sdp", router__src(q));
		router__reply_sl(q, 406, "Not Acceptable",
				 STR("Warning: 399 parley \"application/sdp is required\"\r\n"));
		return false;
	}
	return true;
}

/* A request for the server itself (no user part): OPTIONS is answered, the rest refused. */
static void to_server(struct req *q)
{
	if (q->m->mid == SIP_OPTIONS)
		answer_options(q);
	else if (q->m->mid == SIP_METHOD_OTHER)
		router__reject(q, 501, "Not Implemented", "request for the server itself");
	else
		router__reject(q, 404, "Not Found", "request for the server itself");
}

void router_request(struct router *r, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src,
		    int load)
{
	struct req q = { .r = r, .st = st, .m = m, .src = src };
	if (m->mid == SIP_CANCEL) {
		cancel(&q);
		return;
	}
	struct proxy_hop h;
	proxy_route_set(r->env.proxy, m, &h);
	bool trusted = router_trusted(r, &src->addr);
	if (!st) {                        /* the ACK for a 2xx: stateless, only along a dialog we are on */
		if (m->max_forwards == 0) /* §16.3 step 3; an ACK is never answered */
			log_debug(r->env.lg, "drop", "ACK %.*s from %s: Max-Forwards 0", STR_FMT(m->ruri_str),
				  router__src(&q));
		else
			in_dialog(&q, &h, trusted);
		return;
	}
	if (!admissible(&q, load))
		return;
	if (m->to.tag.l) {
		in_dialog(&q, &h, trusted);
		return;
	}
	if (m->ruri.scheme == SIP_SCHEME_TEL) {
		router__reject(&q, 404, "No Route for tel URI", "tel: URIs are not routed");
		return;
	}
	if (m->mid == SIP_REGISTER) {
		do_register(&q, load);
		return;
	}
	int dom = router__local_domain(r, m->ruri.host);
	if (m->ruri.user.l == 0 && (dom >= 0 || proxy_is_me(r->env.proxy, m->ruri.host, m->ruri.port))) {
		to_server(&q);
		return;
	}
	struct caller c;
	if (!identify(&q, trusted, &c) || !not_looped(&q))
		return;
	/* Initial requests are record-routed, so that the dialog's requests come back to us. */
	h.fl.record_route = true;
	h.fl.strip_ids = !trusted;
	h.fl.assert_id = c.assert_id;
	if (h.have_next)
		preloaded(&q, &h, &c);
	else if (dom >= 0)
		to_local_user(&q, &h.fl, &c, dom);
	else
		to_foreign(&q, &h.fl, &c);
}
