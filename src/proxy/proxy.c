/* proxy.c: the stateful proxy core (RFC 3261 §16): forwarding, parallel forking, CANCEL, response selection, call records. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/khash.h"
#include "core/pool.h"

/* One place a request was forwarded to: a client transaction of its own (§16.6). */
struct branch {
	struct ctx *c;
	struct txn_client *ct;   /* NULL once freed, or when it never started */
	unsigned status;         /* final received (408 after a timeout, 503 when it could
				       not start); 0 while pending */
	bool ringing;            /* a provisional above 100 arrived */
	struct str body;         /* the media relay's SDP for this fork (in ctx.body), or empty */
	struct proxy_flow *flow; /* the phone's other Outbound flows (in ctx.flows), or NULL */
	unsigned nflow, next_flow;
};

/* The response context of one proxied request (§16.7): it lives until a final has gone
 * upstream and every branch transaction is gone, so that late 2xx can still be relayed. */
struct ctx {
	struct proxy *p;
	size_t size;             /* bytes taken from the proxy's pool */
	struct ctx *prev, *next; /* the proxy's list of live contexts */
	struct txn_server *st;   /* NULL once our final is sent: never touched again, since
				       the layer frees it on its own schedule */
	struct tp_source up;     /* where responses go (for 2xx relayed after the final) */
	enum sip_method mid;
	bool record;          /* an INVITE with call info: write records, log steps */
	bool rang;            /* "ringing" was logged */
	bool cancelled;       /* a CANCEL came: the answer is 487 */
	unsigned n;           /* branches */
	unsigned live;        /* client transactions not yet freed */
	struct timer timer;   /* the ring timeout, then the wait for 487s after a CANCEL */
	unsigned best_status; /* best final so far (§16.7 step 6), 0 if none */
	char *best;           /* its bytes without our Via; NULL for one we made up */
	size_t best_len;
	struct proxy_fwd_flags fl; /* how the request was forwarded (for failover) */
	struct tp_source *alt;     /* failover targets for branch 0 (RFC 3263), or NULL */
	unsigned nalt, next_alt;
	struct str call_id; /* views into the text after br[] */
	struct str from_tag, to_tag;
	struct cdr_attempt att;
	/* Held for the media relay (proxy_forward_held) until proxy_release. */
	uint64_t hold_id;          /* 0: not held */
	struct ctx *hprev, *hnext; /* the proxy's list of held contexts */
	struct proxy_target *held; /* the targets, with their text after them */
	char *body;                /* the relay's SDPs (branch.body), kept for failover */
	char *flows;               /* the branches' other flows and their text, or NULL */
	struct branch br[];
};

struct proxy {
	struct proxy_env env;
	struct proxy_stats stats;
	struct ctx *live;      /* every context, so that proxy_free finds them */
	struct ctx *held;      /* contexts waiting for proxy_release (a few at a time) */
	struct pool *pool;     /* contexts (core/pool.h: why) */
	struct timer trim;     /* gives back the pool's unused chunks every second */
	struct khash hk;       /* stateless branches: unguessable, the same for a retransmission */
	char routes[8192];     /* scratch: a rebuilt Route header */
	char out[SIP_MAX_MSG]; /* scratch: the one message being built */
};

/* Room kept in a held call's context for what its record says of the media. */
#define PROXY_MEDIA_ROOM 128

/* RFC 3326: tells the other phones why they stop ringing, so they do not log a missed call. */
#define REASON_ELSEWHERE "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"

static void on_response(void *tu, struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src);
static void on_timeout(void *tu, struct txn_client *ct, int err);
static void on_free(void *tu, struct txn_client *ct);
static bool failover(struct ctx *c, struct branch *b, const char *why, bool lost);

static const struct txn_client_ops branch_ops = {
	.on_response = on_response,
	.on_timeout = on_timeout,
	.on_free = on_free,
};

/* ---- life ------------------------------------------------------------------------------- */

/* Spare pool chunks left unused for a second go back to the system (core/pool.h). */
static void trim_tick(void *arg)
{
	struct proxy *p = arg;
	pool_trim(p->pool);
	timer_start(p->env.wheel, &p->trim, POOL_TRIM_MS, trim_tick, p);
}

int proxy_new(struct proxy **pp, const struct proxy_env *env)
{
	struct proxy *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->env = *env;
	if (pool_new(&p->pool)) {
		free(p);
		return -ENOMEM;
	}
	if (khash_init(&p->hk) < 0) {
		pool_destroy(p->pool);
		free(p);
		return -EIO;
	}
	if (p->env.wheel)
		timer_start(p->env.wheel, &p->trim, POOL_TRIM_MS, trim_tick, p);
	*pp = p;
	return 0;
}

static void unhold(struct ctx *c)
{
	if (!c->hold_id)
		return;
	if (c->hprev)
		c->hprev->hnext = c->hnext;
	else
		c->p->held = c->hnext;
	if (c->hnext)
		c->hnext->hprev = c->hprev;
	c->hold_id = 0;
	free(c->held);
	c->held = NULL;
}

static void destroy(struct ctx *c)
{
	struct proxy *p = c->p;
	if (c->st)
		p->stats.pending--;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	timer_stop(p->env.wheel, &c->timer);
	unhold(c);
	free(c->best);
	free(c->alt);
	free(c->body);
	free(c->flows);
	pool_free(p->pool, c, c->size);
}

void proxy_free(struct proxy *p)
{
	if (!p)
		return;
	if (p->env.wheel)
		timer_stop(p->env.wheel, &p->trim);
	/* The branches run to their end inside the layer without us. */
	while (p->live) {
		struct ctx *c = p->live;
		for (unsigned i = 0; i < c->n; i++)
			if (c->br[i].ct)
				txn_client_detach(c->br[i].ct);
		destroy(c);
	}
	pool_destroy(p->pool);
	free(p);
}

const struct proxy_stats *proxy_stats(const struct proxy *p)
{
	struct proxy *q = (struct proxy *)p;
	q->stats.active = cdr_active(p->env.cdr);
	return &p->stats;
}

struct route *proxy__route(const struct proxy *p)
{
	return p->env.route;
}

struct transport *proxy__tp(const struct proxy *p)
{
	return p->env.tp;
}

/* ---- building a forwarded request ------------------------------------------------------ */

static void out_rr(struct sip_out *o, const struct tp_listener *l)
{
	/* "<sip:HOST:PORT;lr[;transport=T]>" in pieces: vsnprintf for it cost ~1k instructions
	 * per forwarded request. */
	sip_out_str(o, STR("<sip:"));
	sip_out_cstr(o, l->host);
	sip_out_str(o, STR(":"));
	sip_out_u64(o, l->port);
	sip_out_str(o, STR(";lr"));
	if (l->proto != TP_UDP)
		sip_out_cstr(o, l->proto == TP_TCP   ? ";transport=tcp"
				: l->proto == TP_TLS ? ";transport=tls"
						     : ";transport=ws");
	sip_out_str(o, STR(">"));
}

/* Whether the request carries credentials for our own realm: they were for us and are
 * not passed on (§22.3), since the next hop has no use for them. */
static bool our_credentials(const struct proxy *p, const struct sip_msg *req)
{
	const char *realm = p->env.realm;
	for (const struct sip_hdr *h = sip_msg_hdr(req, SIP_HDR_PROXY_AUTHORIZATION); h; h = sip_msg_hdr_next(req, h)) {
		struct sip_auth a;
		if (sip_auth_parse(&a, h->value))
			continue;
		if (realm && realm[0] && str_eq(a.realm, str_from_cstr(realm)))
			return true;
		if (p->env.route && route_domain(p->env.route, a.realm) >= 0)
			return true;
	}
	return false;
}

/* Rebuilds the Route set when the simple "drop our own first Route" of the printer is not
 * enough: a binding's Path goes in front (RFC 3327), and the strict-router fix-up removes
 * the last entry (§16.4). The result replaces every Route line of the request. */
static bool route_opts(struct proxy *p, const struct sip_msg *req, const struct proxy_fwd_flags *fl, struct str path,
		       struct sip_fwd_opts *o)
{
	if (!path.l && !fl->drop_last_route && !fl->pop_second_route) {
		o->drop_first_route = fl->pop_route;
		return false;
	}
	unsigned total = 0;
	for (const struct sip_hdr *h = sip_msg_hdr(req, SIP_HDR_ROUTE); h; h = sip_msg_hdr_next(req, h)) {
		struct str rest = h->value, item;
		while (sip_list_next(&rest, &item))
			total++;
	}
	struct sip_out r;
	sip_out_init(&r, p->routes, sizeof(p->routes));
	unsigned k = 0, written = 0;
	sip_out_str(&r, STR("Route: "));
	if (path.l) {
		sip_out_str(&r, str_trim(path));
		written++;
	}
	for (const struct sip_hdr *h = sip_msg_hdr(req, SIP_HDR_ROUTE); h; h = sip_msg_hdr_next(req, h)) {
		struct str rest = h->value, item;
		while (sip_list_next(&rest, &item)) {
			bool skip = (k == 0 && fl->pop_route) || (k == 1 && fl->pop_second_route) ||
				    (k == total - 1 && fl->drop_last_route);
			k++;
			if (skip)
				continue;
			if (written++)
				sip_out_str(&r, STR(", "));
			sip_out_str(&r, str_trim(item));
		}
	}
	sip_out_str(&r, STR("\r\n"));
	if (written && !r.overflow)
		o->extra = (struct str){ r.p, r.len };
	return true; /* every Route line of the request goes */
}

/* Prints req as forwarded to one target from listener 'out' with Via branch 'branch' into
 * p->out. in is the listener the request came in on. Returns the length, or 0 when the
 * result does not fit. */
static size_t print_fwd(struct proxy *p, const struct sip_msg *req, const struct tp_source *src,
			const struct proxy_target *t, const struct proxy_fwd_flags *fl, const struct tp_listener *out,
			struct str branch)
{
	char via[256], rr[300];
	struct sip_out v;
	sip_out_init(&v, via, sizeof(via));
	sip_out_cstr(&v, "SIP/2.0/");
	sip_out_cstr(&v, tp_proto_name(out->proto));
	sip_out_cstr(&v, " ");
	sip_out_cstr(&v, out->host);
	sip_out_cstr(&v, ":");
	sip_out_u64(&v, out->port);
	sip_out_cstr(&v, ";branch=");
	sip_out_str(&v, branch);
	sip_out_cstr(&v, ";rport");
	if (v.overflow)
		return 0;
	struct sip_fwd_opts o = { .via = { v.p, v.len }, .new_body = fl->new_body, .body = fl->body };
	o.new_ruri = t->ruri.l ? t->ruri : fl->strict_ruri;
	if (fl->record_route) {
		/* Two entries when the request crosses from one socket to another (say IPv4 to
		 * IPv6): each side then reaches us on an address it can use. */
		struct sip_out r;
		sip_out_init(&r, rr, sizeof(rr));
		out_rr(&r, out);
		if (src->lis && src->lis != out) {
			sip_out_str(&r, STR(", "));
			out_rr(&r, src->lis);
		}
		if (!r.overflow)
			o.record_route = (struct str){ r.p, r.len };
	}
	struct sip_resp_opts ro = { 0 };
	struct txn_via_text vt;
	txn_response_via(&ro, &vt, req, src);
	o.top_via_received = ro.via_received;
	o.top_via_rport = ro.via_rport;
	enum sip_hdr_id drop[5];
	unsigned nd = 0;
	if (route_opts(p, req, fl, t->path, &o))
		drop[nd++] = SIP_HDR_ROUTE;
	if (our_credentials(p, req))
		drop[nd++] = SIP_HDR_PROXY_AUTHORIZATION;
	/* RFC 3325: identities asserted by a source we do not trust are not passed on; ours
	 * replaces them when we authenticated the caller. */
	if (fl->strip_ids || fl->assert_id.l) {
		drop[nd++] = SIP_HDR_P_ASSERTED_IDENTITY;
		drop[nd++] = SIP_HDR_P_PREFERRED_IDENTITY;
		drop[nd++] = SIP_HDR_REMOTE_PARTY_ID;
	}
	o.drop = drop;
	o.ndrop = nd;
	char extra[8400];
	if (fl->assert_id.l) {
		struct sip_out e;
		sip_out_init(&e, extra, sizeof extra);
		sip_out_str(&e, o.extra);
		sip_out_cstr(&e, "P-Asserted-Identity: ");
		sip_out_str(&e, fl->assert_id);
		sip_out_cstr(&e, "\r\n");
		if (e.overflow)
			return 0;
		o.extra = (struct str){ e.p, e.len };
	}
	struct sip_out w;
	sip_out_init(&w, p->out, sizeof(p->out));
	if (sip_print_request_fwd(&w, req, &o) || w.overflow)
		return 0;
	return w.len;
}

static struct tp_listener *pick(struct proxy *p, const struct tp_source *dst, const struct tp_source *src)
{
	if (dst->lis)
		return dst->lis;
	return tp_pick(p->env.tp, dst->proto, &dst->addr, src ? src->lis : NULL);
}

/* Copies response m into p->out without its top Via (ours): §16.7 step 3. Returns the
 * length, or 0 when m has no Via left to send to. */
static size_t strip_via(struct proxy *p, const struct sip_msg *m)
{
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_VIA);
	if (!h)
		return 0;
	struct str rest = h->value, item;
	sip_list_next(&rest, &item);
	rest = str_trim(rest);
	if (!rest.l && !sip_msg_hdr_next(m, h))
		return 0;
	struct sip_out o;
	sip_out_init(&o, p->out, sizeof(p->out));
	sip_out_str(&o, (struct str){ m->buf, (size_t)(h->line.p - m->buf) });
	if (rest.l) {
		sip_out_str(&o, STR("Via: "));
		sip_out_str(&o, rest);
		sip_out_str(&o, STR("\r\n"));
	}
	const char *end = h->line.p + h->line.l;
	sip_out_str(&o, (struct str){ end, (size_t)(m->buf + m->len - end) });
	return o.overflow ? 0 : o.len;
}

/* ---- call steps: records and log lines --------------------------------------------------- */

static const char *result_word(unsigned status, bool noanswer)
{
	if (noanswer)
		return "no answer";
	switch (status) {
	case 486:
	case 600:
		return "busy";
	case 487:
		return "cancelled";
	case 603:
		return "declined";
	case 404:
	case 604:
		return "not found";
	default:
		return status < 300 ? "answered" : "failed";
	}
}

bool proxy_contact_addr(const struct sip_msg *m, struct tp_addr *a)
{
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_CONTACT);
	struct str rest = h ? h->value : STR_NULL, it;
	struct sip_addr ca;
	if (!h || !sip_list_next(&rest, &it) || sip_addr_parse(&ca, it) != 0 || ca.star)
		return false;
	return tp_addr_from_host(a, ca.uri.host, ca.uri.port ? ca.uri.port : 5060) == 0;
}

/* A response from the callee's side of a dialog we opened: requests for that side may go
 * where it came from and to its Contact. */
static void learn_callee(struct ctx *c, const struct sip_msg *m, const struct tp_source *src)
{
	struct dlg_table *t = c->p->env.dialogs;
	if (!t || !c->fl.dialog || !m->to.tag.l)
		return;
	struct tp_addr a;
	if (m->status < 300)
		dlg_set_flow(t, c->call_id, c->from_tag, DLG_CALLEE, &src->addr, m->status < 200);
	else
		dlg_learn(t, c->call_id, c->from_tag, DLG_CALLEE, &src->addr);
	/* The Contact of a provisional matters only to requests inside an early dialog
	 * (PRACK, UPDATE), which a phone sends where it sends its responses from: the 2xx's
	 * Contact is the remote target that counts. */
	if (m->status >= 200 && m->status < 300) {
		if (proxy_contact_addr(m, &a))
			dlg_learn(t, c->call_id, c->from_tag, DLG_CALLEE, &a);
		dlg_confirm(t, c->call_id, c->from_tag, (uint32_t)(clock_wall_ms() / 1000));
	}
}

/* A BYE got its answer: the call it ends is over (unless the BYE was only challenged). */
static void bye_done(struct ctx *c, unsigned status)
{
	struct proxy *p = c->p;
	if (status == 401 || status == 407)
		return;
	struct dlg_ref ref;
	if (p->env.dialogs && dlg_find(p->env.dialogs, c->call_id, c->from_tag, c->to_tag, 0, &ref))
		dlg_close(p->env.dialogs, ref.call_id, ref.caller_tag);
	if (p->env.call_end)
		p->env.call_end(p->env.call_end_arg, c->call_id);
	char who[600];
	uint64_t dur;
	if (cdr_end(p->env.cdr, c->call_id, clock_wall_ms(), who, sizeof(who), &dur))
		log_info(p->env.lg, "call", "ended %s after %llu s", who, (unsigned long long)((dur + 500) / 1000));
}

/* The final answer went upstream: note it in stats, record and log. */
static void done(struct ctx *c, unsigned status, struct str reason, bool noanswer)
{
	struct proxy *p = c->p;
	if (c->mid == SIP_BYE)
		bye_done(c, status);
	if (c->fl.dialog && status >= 300 && p->env.dialogs)
		dlg_close(p->env.dialogs, c->call_id, c->from_tag);
	if (!c->record)
		return;
	if (status >= 300 && p->env.call_end)
		p->env.call_end(p->env.call_end_arg, c->call_id);
	const char *word = result_word(status, noanswer);
	struct proxy_stats *s = &p->stats;
	if (status < 300)
		s->answered++;
	else if (noanswer)
		s->noanswer++;
	else if (status == 486 || status == 600)
		s->busy++;
	else if (status == 487)
		s->cancelled++;
	else
		s->failed++;
	cdr_final(p->env.cdr, &c->att, status, word, status < 300 ? clock_wall_ms() : 0);
	if (status < 300 || noanswer || status == 486 || status == 600 || status == 487)
		log_info(p->env.lg, "call", "%s %.*s -> %.*s", word, STR_FMT(c->att.caller), STR_FMT(c->att.callee));
	else
		log_info(p->env.lg, "call", "%s %.*s -> %.*s: %u %.*s", word, STR_FMT(c->att.caller),
			 STR_FMT(c->att.callee), status, STR_FMT(reason));
}

/* ---- response context -------------------------------------------------------------------- */

/* Lets go of the server transaction once the final is out: the layer owns it from here. */
static void release_st(struct ctx *c)
{
	c->p->stats.pending--;
	txn_server_set_tu(c->st, NULL);
	c->st = NULL;
	timer_stop(c->p->env.wheel, &c->timer);
	free(c->best);
	c->best = NULL;
}

static void cancel_all(struct ctx *c, struct str extra)
{
	if (c->mid != SIP_INVITE)
		return;
	for (unsigned i = 0; i < c->n; i++) {
		struct branch *b = &c->br[i];
		/* Errors mean a final is already there or the CANCEL could not be sent; either
		 * way timer B or the final settles the branch. */
		if (b->ct && !b->status)
			txn_client_cancel(b->ct, extra);
	}
}

/* Frees c when nothing can reach it any more. */
static void maybe_free(struct ctx *c)
{
	if (!c->st && c->live == 0)
		destroy(c);
}

/* Lower is better (§16.7 step 6): 6xx, then the lowest class; inside a class the more
 * telling answers beat the ones that only say nobody answered. */
static unsigned rank(unsigned s)
{
	if (s >= 600)
		return 0;
	unsigned r = (s / 100) * 10;
	switch (s) {
	case 408:
		return r + 3;
	case 480:
		return r + 2;
	case 487:
		return r + 1;
	case 503:
		return r + 1;
	default:
		return r;
	}
}

/* Keeps response m (or a made-up status when m is NULL) if it beats the best so far. */
static void consider(struct ctx *c, unsigned status, const struct sip_msg *m)
{
	if (c->best_status && rank(status) >= rank(c->best_status))
		return;
	char *copy = NULL;
	size_t len = 0;
	if (m) {
		len = strip_via(c->p, m);
		copy = len ? malloc(len) : NULL;
		if (copy)
			memcpy(copy, c->p->out, len);
		else
			len = 0;
	}
	free(c->best);
	c->best = copy;
	c->best_len = len;
	c->best_status = status;
}

/* Sends the best response upstream (§16.7 step 8). */
static void answer(struct ctx *c)
{
	unsigned status = c->best_status ? c->best_status : 408;
	struct str reason = str_from_cstr(sip_reason(status));
	if (c->cancelled) {
		status = 487;
		reason = str_from_cstr(sip_reason(487));
		if (c->best && c->best_status == 487)
			txn_server_send(c->st, c->best, c->best_len, 487);
		else
			txn_server_reply(c->st, 487, NULL, NULL);
	} else if (status == 503) {
		/* §16.7 step 6: a 503 would tell the caller that this proxy is overloaded. */
		status = 500;
		reason = str_from_cstr(sip_reason(500));
		txn_server_reply(c->st, 500, NULL, NULL);
	} else if (c->best) {
		/* The reason phrase follows "SIP/2.0 NNN " on the status line we parsed before. */
		const char *eol = memchr(c->best, '\r', c->best_len);
		if (eol && eol - c->best > 12)
			reason = (struct str){ c->best + 12, (size_t)(eol - c->best - 12) };
		done(c, status, reason, false);
		txn_server_send(c->st, c->best, c->best_len, status);
		release_st(c);
		return;
	} else {
		txn_server_reply(c->st, status, NULL, NULL);
	}
	done(c, status, reason, false);
	release_st(c);
}

/* Answers once no branch can still change the outcome. After a CANCEL a branch that never
 * sent a provisional is not waited for: its CANCEL waits for one that may never come. */
static void settle(struct ctx *c)
{
	if (!c->st)
		return;
	for (unsigned i = 0; i < c->n; i++) {
		const struct branch *b = &c->br[i];
		if (b->status || !b->ct)
			continue;
		if (c->cancelled && !b->ringing && !txn_client_got_provisional(b->ct))
			continue;
		return;
	}
	answer(c);
}

static void provisional(struct ctx *c, struct branch *b, const struct sip_msg *m, const struct tp_source *src)
{
	struct proxy *p = c->p;
	/* §16.7 step 5: a 100 is hop by hop; we sent our own. */
	if (m->status == 100 || !c->st)
		return;
	/* The first provisional of a branch tells where its phone is; later ones say the same. */
	if (!b->ringing)
		learn_callee(c, m, src);
	b->ringing = true;
	size_t len = strip_via(p, m);
	if (len)
		txn_server_send(c->st, p->out, len, m->status);
	if (c->record && !c->rang) {
		c->rang = true;
		log_info(p->env.lg, "call", "ringing %.*s -> %.*s", STR_FMT(c->att.caller), STR_FMT(c->att.callee));
	}
}

static void success(struct ctx *c, struct branch *b, const struct sip_msg *m, const struct tp_source *src)
{
	struct proxy *p = c->p;
	if (!b->status)
		b->status = m->status;
	learn_callee(c, m, src);
	size_t len = strip_via(p, m);
	if (!len)
		return;
	if (c->st) {
		txn_server_send(c->st, p->out, len, m->status);
		done(c, m->status, m->reason, false);
		release_st(c);
		cancel_all(c, STR(REASON_ELSEWHERE));
	} else if (c->mid == SIP_INVITE) {
		/* §16.7 step 10: every 2xx to an INVITE goes upstream, also after our final. */
		p->env.send(p->env.send_arg, &c->up, p->out, len);
	}
}

static void failure(struct ctx *c, struct branch *b, const struct sip_msg *m)
{
	if (b->status)
		return;
	if (m->status == 503 && failover(c, b, "503 from the next hop", false))
		return;
	b->status = m->status;
	if (!c->st)
		return;
	consider(c, m->status, m);
	if (m->status >= 600 && c->mid == SIP_INVITE) {
		/* §16.7 step 5: a 6xx ends the search; the others are told to stop. */
		cancel_all(c, STR(""));
		answer(c);
		return;
	}
	settle(c);
}

static void on_response(void *tu, struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src)
{
	struct branch *b = tu;
	if (ct != b->ct && m->status < 300)
		return; /* an earlier transaction of a branch that failed over */
	if (m->status < 200)
		provisional(b->c, b, m, src);
	else if (m->status < 300)
		success(b->c, b, m, src);
	else
		failure(b->c, b, m);
}

static void on_timeout(void *tu, struct txn_client *ct, int err)
{
	struct branch *b = tu;
	struct ctx *c = b->c;
	if (b->status || ct != b->ct)
		return;
	bool timeout = err == -ETIMEDOUT;
	if (failover(c, b, timeout ? "next hop did not answer" : "next hop unreachable", true))
		return;
	/* §16.7 step 6 / §16.8: a branch that never answered counts as a 408; one whose
	 * transport failed (a connection refused or gone) as a 503. */
	b->status = timeout ? 408 : 503;
	if (!c->st)
		return;
	consider(c, b->status, NULL);
	settle(c);
}

static void on_free(void *tu, struct txn_client *ct)
{
	struct branch *b = tu;
	struct ctx *c = b->c;
	if (b->ct == ct)
		b->ct = NULL;
	c->live--;
	if (c->live == 0 && c->st)
		answer(c); /* not expected: every branch has its final by now */
	maybe_free(c);
}

/* The ring timeout (timer C of §16.6 step 11, for the whole call) or, after a CANCEL, the
 * end of the wait for the branches' 487s. */
static void fire(void *arg)
{
	struct ctx *c = arg;
	if (!c->st)
		return;
	if (c->cancelled) {
		answer(c);
	} else {
		cancel_all(c, STR(""));
		txn_server_reply(c->st, 408, "No Answer", NULL);
		done(c, 408, STR("No Answer"), true);
		release_st(c);
	}
	maybe_free(c);
}

/* ---- forwarding ---------------------------------------------------------------------------- */

static int start_branch(struct ctx *c, const struct sip_msg *req, const struct proxy_target *t,
			const struct proxy_fwd_flags *fl, struct branch *b)
{
	struct proxy *p = c->p;
	const struct tp_source *src = txn_server_source(c->st);
	struct tp_source dst = t->dst;
	dst.lis = pick(p, &dst, src);
	if (!dst.lis)
		return -ENETUNREACH;
	char br[TXN_BRANCH_SIZE];
	size_t bl;
	if (t->branch.l && t->branch.l < sizeof br) {
		bl = t->branch.l;
		memcpy(br, t->branch.p, bl);
	} else {
		bl = txn_make_branch(p->env.txn, br);
	}
	struct proxy_fwd_flags f = *fl;
	if (b->body.l) {
		f.new_body = true;
		f.body = b->body;
	}
	size_t len = print_fwd(p, req, src, t, &f, dst.lis, (struct str){ br, bl });
	if (!len)
		return -EMSGSIZE;
	struct txn_client *ct = NULL;
	int err = txn_client_start(&ct, p->env.txn, p->out, len, (struct str){ br, bl }, req->mid, req->method, &dst,
				   &branch_ops, b);
	if (!err)
		b->ct = ct;
	return err;
}

/* Starts branch b again toward t (failover); true when its transaction started. */
static bool restart_branch(struct ctx *c, struct branch *b, const struct proxy_target *t)
{
	if (start_branch(c, txn_server_request(c->st), t, &c->fl, b) != 0)
		return false;
	b->status = 0;
	c->live++;
	if (c->fl.dialog && c->p->env.dialogs)
		dlg_learn(c->p->env.dialogs, c->call_id, c->from_tag, DLG_CALLEE, &t->dst.addr);
	return true;
}

/* RFC 3263 §4.3: when the first target of a domain times out or answers 503 before any
 * provisional, the next one (SRV order) gets the request; and a phone whose flow is lost
 * (lost: the transport failed or nobody answered) gets it over its next Outbound flow.
 * Returns true when a new transaction took over the branch. */
static bool failover(struct ctx *c, struct branch *b, const char *why, bool lost)
{
	struct proxy *p = c->p;
	if (!c->st || b->ringing || c->cancelled)
		return false;
	/* RFC 5626 §5.3: a phone whose flow failed (lost or silent; not one that answered
	 * 503 itself) is tried over its next one. */
	while (lost && b->next_flow < b->nflow) {
		const struct proxy_flow *f = &b->flow[b->next_flow++];
		struct proxy_target t = { .ruri = f->ruri, .path = f->path, .dst = f->dst };
		char to[80];
		log_info(p->env.lg, "route", "%s: trying the phone's next flow, %s", why,
			 tp_addr_str(&t.dst.addr, to, sizeof to));
		if (restart_branch(c, b, &t))
			return true;
	}
	if (b != &c->br[0])
		return false;
	while (c->next_alt < c->nalt) {
		struct proxy_target t = { 0 };
		t.dst = c->alt[c->next_alt++];
		char to[80];
		log_info(p->env.lg, "route", "%s: failing over to %s", why, tp_addr_str(&t.dst.addr, to, sizeof to));
		if (restart_branch(c, b, &t))
			return true;
	}
	return false;
}

static struct str keep(char **pos, struct str s)
{
	struct str r = { *pos, s.l };
	if (s.l)
		memcpy(*pos, s.p, s.l);
	*pos += s.l;
	return r;
}

/* Starts the branches of c to t[0..n) and, once one runs, makes c live: the layer's
 * answers reach it from then on. Returns 0, or the error of the last branch when none
 * started (c is then freed by the caller). */
static int start_all(struct ctx *c, const struct sip_msg *req, const struct proxy_target *t)
{
	struct proxy *p = c->p;
	int err = 0;
	for (unsigned i = 0; i < c->n; i++) {
		struct branch *b = &c->br[i];
		b->c = c;
		int e = start_branch(c, req, &t[i], &c->fl, b);
		if (e) {
			err = e;
			b->ct = NULL;
			b->status = 503;
			continue;
		}
		c->live++;
	}
	if (c->live == 0)
		return err ? err : -EIO;
	if (c->live < c->n)
		consider(c, 503, NULL);
	if (c->mid == SIP_INVITE && p->env.cfg && p->env.cfg->ring_timeout)
		timer_start(p->env.wheel, &c->timer, (uint64_t)p->env.cfg->ring_timeout * 1000, fire, c);
	return 0;
}

/* Copies t[0..n) and the text they point to into one block, for a held request. */
static struct proxy_target *copy_targets(const struct proxy_target *t, unsigned n)
{
	size_t tl = 0;
	for (unsigned i = 0; i < n; i++) {
		tl += t[i].ruri.l + t[i].path.l + t[i].branch.l;
		for (unsigned k = 0; k < t[i].nflow; k++)
			tl += t[i].flow[k].ruri.l + t[i].flow[k].path.l;
	}
	struct proxy_target *h = malloc(n * sizeof(*h) + tl + 1);
	if (!h)
		return NULL;
	char *pos = (char *)&h[n];
	for (unsigned i = 0; i < n; i++) {
		h[i] = t[i];
		h[i].ruri = keep(&pos, t[i].ruri);
		h[i].path = keep(&pos, t[i].path);
		h[i].branch = keep(&pos, t[i].branch);
		for (unsigned k = 0; k < t[i].nflow; k++) {
			h[i].flow[k].ruri = keep(&pos, t[i].flow[k].ruri);
			h[i].flow[k].path = keep(&pos, t[i].flow[k].path);
		}
	}
	return h;
}

/* Copies the other flows of each target (and their text) into one block for failover, and
 * points the branches at them. Returns 0 or -ENOMEM. */
static int keep_flows(struct ctx *c, const struct proxy_target *t, unsigned n)
{
	size_t nf = 0, tl = 0;
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = 0; k < t[i].nflow; k++) {
			nf++;
			tl += t[i].flow[k].ruri.l + t[i].flow[k].path.l;
		}
	if (!nf)
		return 0;
	c->flows = malloc(nf * sizeof(struct proxy_flow) + tl);
	if (!c->flows)
		return -ENOMEM;
	struct proxy_flow *f = (struct proxy_flow *)c->flows;
	char *pos = (char *)&f[nf];
	for (unsigned i = 0; i < n; i++) {
		c->br[i].flow = f;
		c->br[i].nflow = t[i].nflow;
		for (unsigned k = 0; k < t[i].nflow; k++, f++) {
			*f = t[i].flow[k];
			f->ruri = keep(&pos, t[i].flow[k].ruri);
			f->path = keep(&pos, t[i].flow[k].path);
		}
	}
	return 0;
}

static int forward(struct proxy *p, struct txn_server *st, const struct proxy_target *t, unsigned n,
		   const struct proxy_fwd_flags *fl, const struct proxy_call_info *info, uint64_t hold_id)
{
	if (n == 0)
		return -EINVAL;
	const struct sip_msg *req = txn_server_request(st);
	if (!req)
		return -ENOMEM;
	bool invite = req->mid == SIP_INVITE;
	bool record = invite && info;
	/* Text kept: the Call-ID, and for a call record its key "Call-ID;From-tag;CSeq" and
	 * the two parties. */
	size_t tl = req->call_id.l + req->from.tag.l + req->to.tag.l + fl->assert_id.l + fl->strict_ruri.l + 1;
	if (record)
		tl += info->caller.l + info->callee.l + req->call_id.l + req->from.tag.l + 16 +
		      (hold_id && info->media.l < PROXY_MEDIA_ROOM ? PROXY_MEDIA_ROOM : info->media.l);
	size_t size = sizeof(struct ctx) + n * sizeof(struct branch) + tl;
	struct ctx *c = pool_alloc(p->pool, size);
	if (!c)
		return -ENOMEM;
	memset(c, 0, size);
	c->size = size;
	char *pos = (char *)&c->br[n];
	c->call_id = keep(&pos, req->call_id);
	c->from_tag = keep(&pos, req->from.tag);
	c->to_tag = keep(&pos, req->to.tag);
	c->p = p;
	c->st = st;
	c->up = *txn_server_dest(st);
	c->mid = req->mid;
	c->n = n;
	c->record = record;
	c->fl = *fl;
	/* The flags' views point into the caller's buffers: failover needs them later. */
	c->fl.assert_id = keep(&pos, fl->assert_id);
	c->fl.strict_ruri = keep(&pos, fl->strict_ruri);
	c->fl.new_body = false;
	c->fl.body = STR_NULL;
	if (n == 1 && t[0].nalt) {
		c->alt = malloc(t[0].nalt * sizeof(*c->alt));
		if (c->alt) {
			memcpy(c->alt, t[0].alt, t[0].nalt * sizeof(*c->alt));
			c->nalt = t[0].nalt;
		}
	}
	if (keep_flows(c, t, n) < 0) {
		free(c->alt);
		pool_free(p->pool, c, c->size);
		return -ENOMEM;
	}
	if (record) {
		c->att.call_id = c->call_id;
		c->att.caller = keep(&pos, info->caller);
		c->att.callee = keep(&pos, info->callee);
		c->att.media = keep(&pos, info->media);
		if (hold_id && info->media.l < PROXY_MEDIA_ROOM)
			pos += PROXY_MEDIA_ROOM - info->media.l; /* proxy_release may write a longer one */
		/* "Call-ID;From-tag;CSeq" with the messages' writer (sprintf was ~1k instructions a
		 * call); its room is the 16 bytes counted above beside the two views, a NUL kept */
		struct sip_out o;
		sip_out_init(&o, pos, req->call_id.l + req->from.tag.l + 15);
		sip_out_str(&o, req->call_id);
		sip_out_str(&o, STR(";"));
		sip_out_str(&o, req->from.tag);
		sip_out_str(&o, STR(";"));
		sip_out_u64(&o, req->cseq);
		pos[o.len] = '\0';
		c->att.id = (struct str){ pos, o.len };
		c->att.start_ms = clock_wall_ms();
	}
	for (unsigned i = 0; i < n; i++)
		c->br[i].c = c;
	/* §16.2: a proxy answers 100 at once, so that the caller stops retransmitting. */
	if (invite)
		txn_server_trying(st);
	int err = 0;
	if (hold_id) {
		c->held = copy_targets(t, n);
		if (!c->held)
			err = -ENOMEM;
	} else {
		err = start_all(c, req, t);
	}
	if (err) {
		free(c->alt);
		free(c->flows);
		pool_free(p->pool, c, c->size);
		return err;
	}
	c->next = p->live;
	if (p->live)
		p->live->prev = c;
	p->live = c;
	p->stats.pending++;
	txn_server_set_tu(st, c);
	if (hold_id) {
		c->hold_id = hold_id;
		c->hnext = p->held;
		if (p->held)
			p->held->hprev = c;
		p->held = c;
	}
	if (fl->dialog && p->env.dialogs) {
		/* Requests for the caller go back where it sent from, or to its Contact; those
		 * for the callee to where each branch went (its responses add more). */
		struct tp_addr a;
		dlg_set_flow(p->env.dialogs, c->call_id, c->from_tag, DLG_CALLER, &txn_server_source(st)->addr, false);
		if (proxy_contact_addr(req, &a))
			dlg_learn(p->env.dialogs, c->call_id, c->from_tag, DLG_CALLER, &a);
		for (unsigned i = 0; i < n; i++)
			dlg_learn(p->env.dialogs, c->call_id, c->from_tag, DLG_CALLEE, &t[i].dst.addr);
	}
	if (record) {
		p->stats.calls++;
		cdr_start(p->env.cdr, &c->att);
		log_info(p->env.lg, "call", "INVITE %.*s -> %.*s (%u branch%s)", STR_FMT(info->caller),
			 STR_FMT(info->callee), n, n == 1 ? "" : "es");
	}
	return 0;
}

int proxy_forward(struct proxy *p, struct txn_server *st, const struct proxy_target *t, unsigned n,
		  const struct proxy_fwd_flags *fl, const struct proxy_call_info *info)
{
	return forward(p, st, t, n, fl, info, 0);
}

/* Copies each fork's SDP into one block (c->body) for its branch: failover sends it again.
 * Out of memory: the forks go with the caller's SDP, unrelayed. */
static void keep_bodies(struct ctx *c, const struct str *body)
{
	size_t tl = 0;
	for (unsigned i = 0; i < c->n; i++)
		tl += body[i].l;
	c->body = tl ? malloc(tl) : NULL;
	if (!c->body)
		return;
	char *pos = c->body;
	for (unsigned i = 0; i < c->n; i++)
		c->br[i].body = keep(&pos, body[i]);
}

int proxy_forward_held(struct proxy *p, struct txn_server *st, const struct proxy_target *t, unsigned n,
		       const struct proxy_fwd_flags *fl, const struct proxy_call_info *info, uint64_t hold_id)
{
	return forward(p, st, t, n, fl, info, hold_id);
}

int proxy_release(struct proxy *p, uint64_t hold_id, unsigned status, const struct str *body, unsigned nbody,
		  struct str media)
{
	struct ctx *c = p->held;
	while (c && c->hold_id != hold_id)
		c = c->hnext;
	if (!c || !c->st)
		return -ENOENT;
	struct proxy_target *t = c->held;
	c->held = NULL;
	unhold(c);
	if (c->record && media.l) {
		/* Room for it was kept when the request was held. */
		size_t l = media.l < PROXY_MEDIA_ROOM ? media.l : PROXY_MEDIA_ROOM;
		memcpy((char *)c->att.media.p, media.p, l);
		c->att.media.l = l;
	}
	int err = 0;
	const struct sip_msg *req = txn_server_request(c->st);
	if (status >= 300) {
		txn_server_reply(c->st, status, NULL, NULL);
		done(c, status, str_from_cstr(sip_reason(status)), false);
		release_st(c);
	} else if (!req) {
		err = -ENOMEM;
	} else {
		if (nbody == c->n)
			keep_bodies(c, body);
		err = start_all(c, req, t);
	}
	free(t);
	if (err && c->st) {
		txn_server_reply(c->st, 500, "Cannot Forward", NULL);
		done(c, 500, STR("Cannot Forward"), false);
		release_st(c);
	}
	maybe_free(c);
	return err;
}

void proxy_cancel(struct proxy *p, struct txn_server *cst, struct txn_server *ist)
{
	if (!ist) {
		txn_server_reply(cst, 481, NULL, NULL);
		return;
	}
	/* §16.10: the CANCEL is answered at once, whatever happens to the INVITE. */
	txn_server_reply(cst, 200, NULL, NULL);
	struct ctx *c = txn_server_tu(ist);
	if (!c || c->st != ist || c->mid != SIP_INVITE || c->cancelled)
		return;
	c->cancelled = true;
	if (c->hold_id) {
		/* Nothing went downstream yet. */
		unhold(c);
		txn_server_reply(c->st, 487, NULL, NULL);
		done(c, 487, str_from_cstr(sip_reason(487)), false);
		release_st(c);
		maybe_free(c);
		return;
	}
	cancel_all(c, STR(""));
	settle(c);
	if (c->st) {
		/* Each ringing branch owes us a 487. A phone that ignores the CANCEL must not
		 * keep the caller waiting long: T2 covers three retransmissions of its 487. */
		const struct txn_cfg *tc = txn_layer_cfg(p->env.txn);
		timer_start(p->env.wheel, &c->timer, tc->t2 ? tc->t2 : 4000, fire, c);
	}
	maybe_free(c);
}

/* ---- stateless forwarding ------------------------------------------------------------------ */

int proxy_forward_stateless(struct proxy *p, const struct sip_msg *req, const struct tp_source *src,
			    const struct proxy_target *t, const struct proxy_fwd_flags *fl)
{
	struct tp_source dst = t->dst;
	dst.lis = pick(p, &dst, src);
	if (!dst.lis)
		return -ENETUNREACH;
	/* §16.11: the same incoming request (a retransmitted ACK) gets the same branch. */
	uint64_t h = req->via.branch.l ? khash(&p->hk, req->via.branch.p, req->via.branch.l)
				       : khash(&p->hk, req->call_id.p, req->call_id.l) ^
						 khash(&p->hk, req->from.tag.p, req->from.tag.l) ^ req->cseq;
	/* "z9hG4bK" and 16 hex digits */
	char br[7 + 16];
	memcpy(br, "z9hG4bK", 7);
	str_hex_u64(h ^ (h >> 29), br + 7);
	size_t len = print_fwd(p, req, src, t, fl, dst.lis, (struct str){ br, sizeof br });
	if (!len)
		return -EMSGSIZE;
	return p->env.send(p->env.send_arg, &dst, p->out, len);
}

/* The Via below the top one: the next hop of a response. */
static bool second_via(const struct sip_msg *m, struct sip_via *v)
{
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_VIA);
	if (!h)
		return false;
	struct str rest = h->value, item;
	sip_list_next(&rest, &item);
	if (!sip_list_next(&rest, &item)) {
		h = sip_msg_hdr_next(m, h);
		if (!h)
			return false;
		rest = h->value;
		if (!sip_list_next(&rest, &item))
			return false;
	}
	return sip_via_parse(v, item) == 0;
}

void proxy_response_stateless(struct proxy *p, const struct sip_msg *resp, const struct tp_source *src)
{
	struct sip_via v;
	if (!proxy_is_me(p, resp->via.host, resp->via.port) || !second_via(resp, &v))
		return;
	/* §18.2.2 and RFC 3581: received= and rport= of the next Via say where its sender
	 * really is; they were added when the request passed. */
	struct tp_source dst = { .proto = TP_UDP };
	if (!tp_proto_from_str(v.transport, &dst.proto))
		return;
	uint64_t port = v.port ? v.port : 5060;
	if (v.rport.l && !str_to_u64(v.rport, 65535, &port))
		return;
	if (tp_addr_from_host(&dst.addr, v.received.l ? v.received : v.host, (uint16_t)port))
		return; /* a host name: a response is not worth a DNS query */
	dst.lis = tp_pick(p->env.tp, dst.proto, &dst.addr, src->lis);
	if (!dst.lis)
		return;
	size_t len = strip_via(p, resp);
	if (len)
		p->env.send(p->env.send_arg, &dst, p->out, len);
}
