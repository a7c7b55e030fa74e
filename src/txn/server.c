/* server.c: server transactions (RFC 3261 §17.2, RFC 6026): matching, responses, timers G-L. */
#include "txn/txn_int.h"

#include "core/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The request a transaction was created for, compact: in one block its parse, exactly its
 * nhdr header lines and its bytes, the views moved onto those bytes (sip_msg_rebase), so
 * txn_server_request hands out msg itself. Kept only until the final response: after
 * that, matching needs only the identity the transaction copied (branch, sent-by, method)
 * and retransmissions only the response. So a transaction lingering 32 s for
 * retransmissions (timer J) holds a few hundred bytes, not kilobytes, and a burst of them
 * touches little new memory. */
struct txn_req {
	size_t size; /* bytes asked of txn__blk_alloc */
	struct sip_msg msg;
	struct sip_hdr hdr[]; /* msg.hdr: hdr[0..msg.nhdr), then the request's bytes */
};

/* Branch, sent-by host and extension method names up to this long are copied into the
 * transaction, which can then drop its request at the final response; longer ones (rare)
 * keep the request for the transaction's life. */
#define IDENT_MAX 112

struct txn_server {
	struct txn_layer *l;
	uint64_t key; /* table key: branch hash, or Call-ID/CSeq hash (RFC 2543) */
	enum txn_state state;
	bool invite;
	bool reliable;        /* stream transport: no retransmissions, zero wait timers */
	bool rfc2543;         /* branch without the magic cookie: match the old way */
	bool own_ident;       /* branch, sent_by and method point into ident[] */
	unsigned status;      /* last status sent */
	unsigned retx_ms;     /* timer G's next interval */
	uint64_t born_us;     /* when the request came in (monotonic): the response-time figure */
	struct timer retx;    /* G */
	struct timer main;    /* H, I, J, L, or 0 ms to free a terminated transaction */
	struct tp_source src; /* where the request came from */
	struct tp_source dst; /* where responses go */
	void *tu;
	char *resp; /* the last response kept for retransmission */
	size_t resp_len, resp_cap;
	struct str resp_tag;    /* To tag of the final sent, a view into resp (RFC 2543 ACK) */
	char tag[TXN_TAG_SIZE]; /* our To tag, made on first need */
	/* What matching needs: views into ident[], or into the request's bytes. */
	enum sip_method mid;
	uint16_t sent_by_port;
	struct str method;
	struct str branch;   /* top Via branch */
	struct str sent_by;  /* top Via sent-by host, and its port */
	struct txn_req *req; /* the request, NULL once dropped (see struct txn_req) */
	/* While the TU's on_request runs: the caller's parse, used in place. A TU that
	 * answers there (a registrar, a challenge) never makes the transaction copy it. */
	const struct sip_msg *borrowed;
	struct txn_server *drop_next; /* in the layer's list of requests to drop */
	bool drop_queued;
	char ident[IDENT_MAX];
};

/* The request: the caller's while borrowed, else the kept copy; NULL once dropped. */
static const struct sip_msg *request_of(const struct txn_server *st)
{
	if (st->borrowed)
		return st->borrowed;
	return st->req ? &st->req->msg : NULL;
}

/* ---- memory ------------------------------------------------------------------------------ */

static struct txn_req *req_alloc(struct txn_layer *l, size_t size)
{
	struct txn_req *q = txn__blk_alloc(l, size);
	if (q)
		q->size = size;
	return q;
}

static void req_free(struct txn_layer *l, struct txn_req *q)
{
	if (q)
		txn__blk_free(l, q, q->size);
}

/* Whether st may drop its request now (see struct txn_req): RFC 2543 transactions match
 * on the request's fields, and an identity too long for ident[] points into it. */
static bool droppable(const struct txn_server *st)
{
	return st->req && !st->rfc2543 && st->own_ident;
}

/* Drops the request once the final response is out (see struct txn_req). RFC 2543
 * transactions match on the request's fields and keep it. */
static void drop_request(struct txn_server *st)
{
	if (!droppable(st))
		return;
	req_free(st->l, st->req);
	st->req = NULL;
	/* An INVITE accepted by a 2xx keeps no response: the TU retransmits the 2xx. */
	if (st->state == TXN_ACCEPTED) {
		pool_free(st->l->pool, st->resp, st->resp_cap);
		st->resp = NULL;
		st->resp_cap = 0;
	}
}

/* A final response went out: the request goes at the layer's next entry (txn_recv_*), not
 * now, because the TU that sent the response may still be reading it. */
static void queue_drop(struct txn_server *st)
{
	if (st->drop_queued || !droppable(st))
		return;
	st->drop_queued = true;
	st->drop_next = st->l->server_drops;
	st->l->server_drops = st;
}

void txn__server_reap(struct txn_layer *l)
{
	while (l->server_drops) {
		struct txn_server *st = l->server_drops;
		l->server_drops = st->drop_next;
		st->drop_queued = false;
		drop_request(st);
	}
}

static void unqueue_drop(struct txn_server *st)
{
	if (!st->drop_queued)
		return;
	for (struct txn_server **pp = &st->l->server_drops; *pp; pp = &(*pp)->drop_next)
		if (*pp == st) {
			*pp = st->drop_next;
			break;
		}
	st->drop_queued = false;
}

/* Moves view v into st->ident at *pos; a missing view (no branch) stays missing. */
static void own(struct str *v, char **pos)
{
	if (!v->p)
		return;
	memcpy(*pos, v->p, v->l);
	v->p = *pos;
	*pos += v->l;
}

/* Copies the identity matching needs into st->ident when it fits. */
static void copy_ident(struct txn_server *st)
{
	size_t ml = st->mid == SIP_METHOD_OTHER ? st->method.l : 0;
	if (st->branch.l + st->sent_by.l + ml > sizeof(st->ident))
		return;
	char *pos = st->ident;
	own(&st->branch, &pos);
	own(&st->sent_by, &pos);
	if (ml)
		own(&st->method, &pos);
	st->own_ident = true;
}

static void fire_retx(void *arg);
static void fire_main(void *arg);

/* ---- matching (§17.2.3) ------------------------------------------------------------------ */

static uint64_t request_key(const struct txn_layer *l, const struct sip_msg *m, bool *rfc2543)
{
	*rfc2543 = !txn__has_cookie(m->via.branch);
	if (!*rfc2543)
		return txn__branch_key(l, m->via.branch);
	/* CANCEL and ACK carry the INVITE's Call-ID and CSeq number, so they hash alike. */
	return txn__call_key(l, m->call_id, m->cseq);
}

static bool uri_same(const struct sip_uri *a, const struct sip_uri *b)
{
	if (str_eq(a->raw, b->raw))
		return true;
	bool sip = a->scheme == SIP_SCHEME_SIP || a->scheme == SIP_SCHEME_SIPS;
	return sip && a->scheme == b->scheme && sip_uri_equal(a, b);
}

/* Whether m belongs to st when looking for a transaction of method (mid, mtext); an ACK
 * looks for its INVITE. */
static bool match(const struct txn_server *st, const struct sip_msg *m, bool rfc2543, enum sip_method mid,
		  struct str mtext)
{
	if (st->rfc2543 != rfc2543 || !txn__method_eq(st->mid, st->method, mid, mtext))
		return false;
	if (!rfc2543)
		return str_eq(st->branch, m->via.branch) && str_caseeq(st->sent_by, m->via.host) &&
		       st->sent_by_port == m->via.port;
	/* RFC 2543 clients: the request's identifying fields, the ACK's To tag against the
	 * tag of the response it acknowledges. */
	const struct sip_msg *r = request_of(st);
	if (!r)
		return false;
	if (m->cseq != r->cseq || !str_eq(m->call_id, r->call_id) || !str_eq(m->from.tag, r->from.tag) ||
	    !str_caseeq(m->via.raw, r->via.raw) || !uri_same(&m->ruri, &r->ruri))
		return false;
	if (m->mid == SIP_ACK)
		return st->resp_tag.p && str_eq(m->to.tag, st->resp_tag);
	return str_eq(m->to.tag, r->to.tag);
}

/* key and rfc2543 are request_key(m). */
static struct txn_server *find_by(struct txn_layer *l, const struct sip_msg *m, uint64_t key, bool rfc2543,
				  enum sip_method mid, struct str mtext)
{
	struct txn__tab *t = &l->servers;
	for (TXN__EACH(t, key, i))
		if (t->s[i].h == key && match(t->s[i].p, m, rfc2543, mid, mtext))
			return t->s[i].p;
	return NULL;
}

static struct txn_server *find(struct txn_layer *l, const struct sip_msg *m, enum sip_method mid, struct str mtext)
{
	bool rfc2543;
	uint64_t key = request_key(l, m, &rfc2543);
	return find_by(l, m, key, rfc2543, mid, mtext);
}

struct txn_server *txn_server_find_invite(struct txn_layer *l, const struct sip_msg *cancel)
{
	/* A terminated one (dropped after a stateless answer) waits only to be freed: there is
	 * nothing left to cancel. */
	struct txn_server *st = find(l, cancel, SIP_INVITE, STR("INVITE"));
	return st && st->state != TXN_TERMINATED ? st : NULL;
}

/* ---- life ------------------------------------------------------------------------------ */

static void destroy(struct txn_server *st)
{
	struct txn_layer *l = st->l;
	txn__tab_del(&l->servers, st->key, st);
	unqueue_drop(st);
	timer_stop(l->w, &st->retx);
	timer_stop(l->w, &st->main);
	l->stats.servers--;
	if (l->tu->on_server_free)
		l->tu->on_server_free(l->tu_arg, st);
	pool_free(l->pool, st->resp, st->resp_cap);
	req_free(l, st->req);
	pool_free(l->pool, st, sizeof(*st));
}

void txn__server_free_all(struct txn_layer *l)
{
	struct txn__tab *t = &l->servers;
	for (size_t i = 0; i < t->cap; i++) {
		struct txn_server *st = t->s[i].p;
		if (!st)
			continue;
		timer_stop(l->w, &st->retx);
		timer_stop(l->w, &st->main);
		pool_free(l->pool, st->resp, st->resp_cap);
		req_free(l, st->req);
		pool_free(l->pool, st, sizeof(*st));
		t->s[i].p = NULL;
	}
	t->n = 0;
	l->stats.servers = 0;
}

/* Ends st from inside a TU call: it stays matchable (absorbing late retransmissions) and
 * is freed by a zero-delay timer, so the caller's pointer outlives the call. */
static void finish(struct txn_server *st)
{
	st->state = TXN_TERMINATED;
	timer_stop(st->l->w, &st->retx);
	timer_start(st->l->w, &st->main, 0, fire_main, st);
}

static void wait_then_free(struct txn_server *st, unsigned ms)
{
	timer_start(st->l->w, &st->main, ms, fire_main, st);
}

/* Copies the borrowed request into the transaction's own block (struct txn_req) and moves
 * its parse onto the copy: no second parse. Views matching needs that were not copied to
 * ident follow the copy. Returns 0 or -ENOMEM. */
static int keep_request(struct txn_server *st)
{
	const struct sip_msg *m = st->borrowed;
	struct txn_req *q = req_alloc(st->l, sizeof(*q) + m->nhdr * sizeof(q->hdr[0]) + m->len + 1);
	if (!q)
		return -ENOMEM;
	char *buf = (char *)(q->hdr + m->nhdr);
	memcpy(buf, m->buf, m->len);
	buf[m->len] = '\0';
	sip_msg_rebase(&q->msg, q->hdr, m, buf);
	st->req = q;
	if (!st->own_ident) {
		if (st->mid == SIP_METHOD_OTHER)
			st->method = q->msg.method;
		st->branch = q->msg.via.branch;
		st->sent_by = q->msg.via.host;
	}
	return 0;
}

static int create(struct txn_server **stp, struct txn_layer *l, const struct sip_msg *m, uint64_t key, bool rfc2543,
		  const struct tp_source *src)
{
	struct txn_server *st = pool_alloc(l->pool, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->borrowed = m;
	st->req = NULL;
	st->mid = m->mid;
	/* Only an extension method is matched by its text (txn__method_eq); a known one gets
	 * its static name rather than a view into a buffer the transaction may outlive. */
	st->method = m->mid == SIP_METHOD_OTHER ? m->method : str_from_cstr(sip_method_name(m->mid));
	st->branch = m->via.branch;
	st->sent_by = m->via.host;
	st->sent_by_port = m->via.port;
	st->own_ident = false;
	st->drop_queued = false;
	st->drop_next = NULL;
	copy_ident(st);
	st->l = l;
	st->key = key;
	st->rfc2543 = rfc2543;
	st->invite = m->mid == SIP_INVITE;
	st->state = st->invite ? TXN_PROCEEDING : TXN_TRYING;
	st->reliable = src->proto != TP_UDP;
	st->status = 0;
	st->born_us = l->in_us;
	st->retx_ms = 0;
	st->retx = (struct timer){ 0 };
	st->main = (struct timer){ 0 };
	st->src = *src;
	txn_response_dest(&st->dst, m, src);
	st->tu = NULL;
	st->resp = NULL;
	st->resp_len = st->resp_cap = 0;
	st->resp_tag = STR_NULL;
	st->tag[0] = '\0';
	/* Views that did not fit ident point into the caller's buffer: copy now. */
	if (!st->own_ident && keep_request(st)) {
		pool_free(l->pool, st, sizeof(*st));
		return -ENOMEM;
	}
	if (txn__tab_put(&l->servers, st->key, st)) {
		req_free(l, st->req);
		pool_free(l->pool, st, sizeof(*st));
		return -ENOMEM;
	}
	l->stats.servers++;
	l->stats.servers_total++;
	*stp = st;
	return 0;
}

/* The TU's on_request returned: a transaction that still needs its request (no final
 * yet, or matched the RFC 2543 way) copies it before the caller's buffer goes. When memory
 * runs out for that, the transaction is ended (the client retransmits). */
static void unborrow(struct txn_server *st)
{
	bool done = st->status >= 200 || st->state == TXN_TERMINATED;
	if (!st->req && (!done || st->rfc2543) && keep_request(st) && st->state != TXN_TERMINATED)
		finish(st);
	st->borrowed = NULL;
}

/* ---- requests in ------------------------------------------------------------------------ */

static void resend(struct txn_server *st)
{
	if (!st->resp_len)
		return;
	st->l->stats.retransmits++;
	txn__send(st->l, &st->dst, st->resp, st->resp_len);
}

/* An ACK for our non-2xx final: stop retransmitting and linger T4 for ACK copies. */
static void confirm(struct txn_server *st)
{
	st->state = TXN_CONFIRMED;
	timer_stop(st->l->w, &st->retx);
	wait_then_free(st, st->reliable ? 0 : st->l->cfg.t4);
}

/* Returns true when the ACK was absorbed; false when it is for the TU (a 2xx ACK). */
static bool ack_in(struct txn_layer *l, const struct sip_msg *m)
{
	struct txn_server *st = find(l, m, SIP_INVITE, STR("INVITE"));
	/* In Accepted the ACK is for a 2xx (a client reusing the INVITE's branch): it belongs
	 * to the dialog, not to this transaction. */
	if (!st || st->state == TXN_ACCEPTED)
		return false;
	if (st->state == TXN_COMPLETED)
		confirm(st);
	l->stats.absorbed++;
	return true;
}

int txn_recv_request(struct txn_layer *l, const struct sip_msg *m, const struct tp_source *src)
{
	if (!m->request)
		return -EINVAL;
	txn__server_reap(l);
	if (m->mid == SIP_ACK) {
		if (!ack_in(l, m))
			l->tu->on_request(l->tu_arg, NULL, m, src);
		return 0;
	}
	bool rfc2543;
	uint64_t key = request_key(l, m, &rfc2543);
	struct txn_server *st = find_by(l, m, key, rfc2543, m->mid, m->method);
	if (st) {
		l->stats.absorbed++;
		/* Trying has nothing to resend, Confirmed and Accepted absorb silently (the
		 * TU retransmits a 2xx itself), Terminated is on its way out. */
		if (st->state == TXN_PROCEEDING || st->state == TXN_COMPLETED)
			resend(st);
		return 0;
	}
	/* One clock read per new request: the start of its response time. */
	l->in_us = clock_mono_us();
	int err = create(&st, l, m, key, rfc2543, src);
	if (err) {
		l->in_us = 0;
		return err;
	}
	l->tu->on_request(l->tu_arg, st, m, src);
	l->in_us = 0;
	unborrow(st);
	return 0;
}

/* ---- responses out ----------------------------------------------------------------------- */

/* Keeps the response for retransmission; on -ENOMEM nothing is kept (resp_len 0). */
static int keep(struct txn_server *st, const char *buf, size_t len)
{
	if (len > st->resp_cap) {
		char *p = pool_realloc(st->l->pool, st->resp, st->resp_cap, len);
		if (!p) {
			st->resp_len = 0;
			st->resp_tag = STR_NULL;
			return -ENOMEM;
		}
		st->resp = p;
		st->resp_cap = len;
	}
	memcpy(st->resp, buf, len);
	st->resp_len = len;
	st->resp_tag = STR_NULL;
	return 0;
}

/* RFC 2543 clients acknowledge by To tag, so remember the one our final carried: a view
 * into the kept response, found by reading its To header alone (no parse, no header array). */
static void note_tag(struct txn_server *st)
{
	struct str to;
	struct sip_addr a;
	st->resp_tag = (struct str){ st->resp, 0 };
	if (sip_msg_peek(st->resp, st->resp_len, SIP_HDR_TO, &to) && sip_addr_parse(&a, to) == 0 && a.tag.p)
		st->resp_tag = a.tag;
}

const uint32_t txn_rt_bounds_us[TXN_RT_BUCKETS] = { 500,    1000,   2500,   5000,    10000,   25000,   50000,
						    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000 };

/* A few compares and adds, no allocation. */
void txn__rt_observe(struct txn_layer *l, uint64_t in_us)
{
	uint64_t us = clock_mono_us() - in_us;
	unsigned i = 0;
	while (i < TXN_RT_BUCKETS && us > txn_rt_bounds_us[i])
		i++;
	l->stats.rt_bucket[i]++;
	l->stats.rt_count++;
	l->stats.rt_sum_us += us;
}

int txn_server_send(struct txn_server *st, const char *buf, size_t len, unsigned status)
{
	struct txn_layer *l = st->l;
	if (status < 100 || status > 699)
		return -EINVAL;
	bool ok2xx = status >= 200 && status < 300;
	if (st->state == TXN_ACCEPTED) {
		/* RFC 6026: 2xx retransmissions and 2xx from other forks still go out. */
		if (!ok2xx)
			return -EINVAL;
		st->status = status;
		return txn__send(l, &st->dst, buf, len);
	}
	if (st->state != TXN_TRYING && st->state != TXN_PROCEEDING)
		return -EALREADY;
	if (status >= 200)
		txn__rt_observe(l, st->born_us);
	if (st->invite && ok2xx) {
		/* The 2xx is retransmitted by the TU end to end, not by us (§13.3.1.4). */
		st->status = status;
		st->state = TXN_ACCEPTED;
		st->resp_len = 0;
		wait_then_free(st, 64 * l->cfg.t1);
		queue_drop(st);
		return txn__send(l, &st->dst, buf, len);
	}
	/* Without memory to keep it, the response still goes out once and the state moves
	 * on as usual, so that the transaction ends on its timers; only retransmissions of
	 * the request go unanswered. A TU that ignores the result (most do) loses nothing. */
	keep(st, buf, len);
	st->status = status;
	if (status >= 200)
		queue_drop(st);
	if (status < 200) {
		st->state = TXN_PROCEEDING;
	} else if (st->invite) {
		st->state = TXN_COMPLETED;
		if (st->rfc2543)
			note_tag(st);
		if (!st->reliable) {
			st->retx_ms = l->cfg.t1;
			timer_start(l->w, &st->retx, st->retx_ms, fire_retx, st);
		}
		wait_then_free(st, 64 * l->cfg.t1);
	} else {
		st->state = TXN_COMPLETED;
		if (st->reliable)
			finish(st);
		else
			wait_then_free(st, 64 * l->cfg.t1);
	}
	return txn__send(l, &st->dst, buf, len);
}

int txn_server_reply(struct txn_server *st, unsigned status, const char *reason, const struct sip_resp_opts *opt)
{
	if (status < 100 || status > 699)
		return -EINVAL;
	struct sip_resp_opts o = opt ? *opt : (struct sip_resp_opts){ 0 };
	const struct sip_msg *r = request_of(st);
	if (!r) /* the request went with the final response: nothing more can be built */
		return st->state == TXN_ACCEPTED && (status < 200 || status > 299) ? -EINVAL : -EALREADY;
	struct txn_via_text vt;
	txn_response_via(&o, &vt, r, &st->src);
	/* Every response of one transaction carries the same tag, so that a client sees one
	 * dialog and an RFC 2543 ACK matches. */
	if (o.to_tag.l == 0 && status > 100 && r->to.tag.l == 0) {
		if (!st->tag[0])
			txn_make_tag(st->l, st->tag);
		o.to_tag = str_from_cstr(st->tag);
	}
	if (!reason)
		reason = sip_reason(status);
	char small[4096];
	struct sip_out out;
	sip_out_init(&out, small, sizeof(small));
	if (sip_print_response(&out, r, status, reason, &o) == 0 && !out.overflow)
		return txn_server_send(st, out.p, out.len, status);
	/* A big body or many Vias: build once more on the heap. */
	char *big = malloc(SIP_MAX_MSG);
	if (!big)
		return -ENOMEM;
	sip_out_init(&out, big, SIP_MAX_MSG);
	int err = -ENOBUFS;
	if (sip_print_response(&out, r, status, reason, &o) == 0 && !out.overflow)
		err = txn_server_send(st, out.p, out.len, status);
	free(big);
	return err;
}

int txn_server_trying(struct txn_server *st)
{
	return txn_server_reply(st, 100, "Trying", NULL);
}

void txn_server_drop(struct txn_server *st)
{
	if (st->state != TXN_TERMINATED)
		finish(st);
}

/* ---- timers ----------------------------------------------------------------------------- */

/* Timer G: the non-2xx final to an INVITE again, backing off to T2. */
static void fire_retx(void *arg)
{
	struct txn_server *st = arg;
	if (st->state != TXN_COMPLETED)
		return;
	resend(st);
	st->retx_ms = st->retx_ms * 2 < st->l->cfg.t2 ? st->retx_ms * 2 : st->l->cfg.t2;
	timer_start(st->l->w, &st->retx, st->retx_ms, fire_retx, st);
}

/* Timer H (no ACK: tell the TU), or I, J, L and the zero wait of a finished transaction. */
static void fire_main(void *arg)
{
	struct txn_server *st = arg;
	struct txn_layer *l = st->l;
	if (st->invite && st->state == TXN_COMPLETED) {
		l->stats.timeouts++;
		st->state = TXN_TERMINATED;
		timer_stop(l->w, &st->retx);
		if (l->tu->on_server_timeout)
			l->tu->on_server_timeout(l->tu_arg, st);
	}
	destroy(st);
}

/* ---- accessors -------------------------------------------------------------------------- */

const struct sip_msg *txn_server_request(const struct txn_server *st)
{
	/* Asked for while borrowed: the TU means to keep it past its call. */
	if (!st->req && st->borrowed && keep_request((struct txn_server *)st))
		return NULL;
	return st->req ? &st->req->msg : NULL;
}

const struct tp_source *txn_server_source(const struct txn_server *st)
{
	return &st->src;
}

const struct tp_source *txn_server_dest(const struct txn_server *st)
{
	return &st->dst;
}

enum txn_state txn_server_state(const struct txn_server *st)
{
	return st->state;
}

unsigned txn_server_status(const struct txn_server *st)
{
	return st->status;
}

void txn_server_set_tu(struct txn_server *st, void *tu)
{
	st->tu = tu;
}

void *txn_server_tu(const struct txn_server *st)
{
	return st->tu;
}
