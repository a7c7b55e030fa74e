/* client.c: client transactions (RFC 3261 §17.1, RFC 6026): timers A B D E F K M, ACK, CANCEL. */
#include "txn/txn_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Branches are ours (txn_make_branch), so they and the method name fit here; a longer
 * extension method (rare) is refused with -EMSGSIZE rather than kept apart. */
#define IDENT_MAX (TXN_BRANCH_SIZE + 40)

struct txn_client {
	struct txn_layer *l;
	uint64_t key; /* hash of the branch */
	enum txn_state state;
	bool invite;
	bool reliable; /* stream transport: no retransmissions, zero wait timers */
	bool got_provisional;
	bool cancel_wanted; /* txn_client_cancel came before any provisional */
	bool cancel_sent;
	unsigned status;   /* last status received */
	unsigned retx_ms;  /* timer A / E's next interval */
	struct timer retx; /* A or E */
	struct timer main; /* B, F, D, K, M */
	struct tp_source dst;
	const struct txn_client_ops *ops;
	void *tu;
	struct str branch; /* views into ident */
	struct str method;
	enum sip_method mid;
	char *ack; /* the ACK for our non-2xx final, resent on its retransmissions */
	size_t ack_len;
	char *cancel_extra; /* header lines for a CANCEL that waits for a provisional */
	size_t cancel_extra_len;
	/* The request as sent, until the final response: after it nothing is retransmitted
	 * and the ACK for a non-2xx is built, so a transaction lingering for timers D, K and M
	 * holds only this struct (and that ACK). */
	char *buf;
	size_t len;
	char ident[IDENT_MAX];
};

static void fire_retx(void *arg);
static void fire_main(void *arg);

/* ---- life ------------------------------------------------------------------------------ */

/* The final response is in: the request bytes are not needed any more. */
static void drop_request(struct txn_client *ct)
{
	if (!ct->buf)
		return;
	txn__blk_free(ct->l, ct->buf, ct->len + 1);
	ct->buf = NULL;
	ct->len = 0;
}

static void release(struct txn_client *ct)
{
	timer_stop(ct->l->w, &ct->retx);
	timer_stop(ct->l->w, &ct->main);
	drop_request(ct);
	free(ct->ack);
	free(ct->cancel_extra);
	pool_free(ct->l->pool, ct, sizeof(*ct));
}

static void destroy(struct txn_client *ct)
{
	struct txn_layer *l = ct->l;
	txn__tab_del(&l->clients, ct->key, ct);
	l->stats.clients--;
	if (ct->ops && ct->ops->on_free)
		ct->ops->on_free(ct->tu, ct);
	release(ct);
}

void txn__client_free_all(struct txn_layer *l)
{
	struct txn__tab *t = &l->clients;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->s[i].p)
			release(t->s[i].p);
		t->s[i].p = NULL;
	}
	t->n = 0;
	l->stats.clients = 0;
}

static struct txn_client *find(struct txn_layer *l, struct str branch, enum sip_method mid, struct str mtext)
{
	uint64_t key = txn__branch_key(l, branch);
	struct txn__tab *t = &l->clients;
	for (TXN__EACH(t, key, i)) {
		struct txn_client *ct = t->s[i].p;
		if (t->s[i].h == key && str_eq(ct->branch, branch) && txn__method_eq(ct->mid, ct->method, mid, mtext))
			return ct;
	}
	return NULL;
}

/* Our own copy of the request, parsed (for the ACK or CANCEL built from it) on the
 * caller's stack: it is needed only for as long as one of those is printed. */
struct own {
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
};

/* Parses ct's request into *o; -EALREADY once the final response has dropped it. */
static int parse_own(const struct txn_client *ct, struct own *o)
{
	struct sip_parse_err perr;
	if (!ct->buf)
		return -EALREADY;
	if (sip_msg_parse(&o->m, o->hdr, SIP_MAX_HEADERS, ct->buf, ct->len, true, &perr) != SIP_PARSE_OK)
		return -EINVAL;
	return 0;
}

int txn_client_start(struct txn_client **ctp, struct txn_layer *l, const char *buf, size_t len, struct str branch,
		     enum sip_method mid, struct str method, const struct tp_source *dst,
		     const struct txn_client_ops *ops, void *tu)
{
	if (l->closing)
		return -ESHUTDOWN;
	if (len > SIP_MAX_MSG || branch.l + method.l > IDENT_MAX)
		return -EMSGSIZE;
	if (mid == SIP_ACK || !txn__has_cookie(branch))
		return -EINVAL;
	if (find(l, branch, mid, method))
		return -EEXIST;
	struct txn_client *ct = pool_alloc(l->pool, sizeof(*ct));
	char *copy = ct ? txn__blk_alloc(l, len + 1) : NULL;
	if (!copy) {
		pool_free(l->pool, ct, sizeof(*ct));
		return -ENOMEM;
	}
	memset(ct, 0, sizeof(*ct));
	memcpy(copy, buf, len);
	copy[len] = '\0';
	ct->buf = copy;
	ct->len = len;
	memcpy(ct->ident, branch.p, branch.l);
	memcpy(ct->ident + branch.l, method.p, method.l);
	ct->branch = (struct str){ ct->ident, branch.l };
	ct->method = (struct str){ ct->ident + branch.l, method.l };
	ct->l = l;
	ct->mid = mid;
	ct->key = txn__branch_key(l, ct->branch);
	ct->invite = mid == SIP_INVITE;
	ct->state = ct->invite ? TXN_CALLING : TXN_TRYING;
	ct->reliable = dst->proto != TP_UDP;
	ct->dst = *dst;
	ct->ops = ops;
	ct->tu = tu;
	int err = txn__send(l, &ct->dst, ct->buf, ct->len);
	if (!err)
		err = txn__tab_put(&l->clients, ct->key, ct);
	if (err) {
		drop_request(ct);
		pool_free(l->pool, ct, sizeof(*ct));
		return err;
	}
	l->stats.clients++;
	l->stats.clients_total++;
	if (!ct->reliable) {
		ct->retx_ms = l->cfg.t1;
		timer_start(l->w, &ct->retx, ct->retx_ms, fire_retx, ct);
	}
	/* Timer B for INVITE, F otherwise: both 64*T1 on every transport. */
	timer_start(l->w, &ct->main, 64 * l->cfg.t1, fire_main, ct);
	if (ctp)
		*ctp = ct;
	return 0;
}

int txn_client_new(struct txn_client **ctp, struct txn_layer *l, const char *buf, size_t len,
		   const struct tp_source *dst, const struct txn_client_ops *ops, void *tu)
{
	if (len > SIP_MAX_MSG)
		return -EMSGSIZE;
	/* Parsed only to learn the branch and method. */
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	if (sip_msg_parse(&m, hdr, SIP_MAX_HEADERS, buf, len, true, &perr) != SIP_PARSE_OK || !m.request)
		return -EINVAL;
	return txn_client_start(ctp, l, buf, len, m.via.branch, m.mid, m.method, dst, ops, tu);
}

/* ---- ACK and CANCEL --------------------------------------------------------------------- */

/* The request line and headers that ACK (§17.1.1.3) and CANCEL (§9.1) share with the INVITE:
 * Request-URI, the top Via alone, Route, From, Call-ID, CSeq number. */
static void print_like(struct sip_out *o, const struct sip_msg *inv, const char *method, struct str to,
		       struct str extra)
{
	sip_out_cstr(o, method);
	sip_out_cstr(o, " ");
	sip_out_str(o, inv->ruri_str);
	sip_out_cstr(o, " SIP/2.0\r\nVia: ");
	sip_out_str(o, inv->via.raw);
	sip_out_cstr(o, "\r\n");
	for (const struct sip_hdr *h = sip_msg_hdr(inv, SIP_HDR_ROUTE); h; h = sip_msg_hdr_next(inv, h))
		sip_out_str(o, h->line);
	sip_out_cstr(o, "From: ");
	sip_out_str(o, inv->from.raw);
	sip_out_cstr(o, "\r\nTo: ");
	sip_out_str(o, to);
	sip_out_cstr(o, "\r\nCall-ID: ");
	sip_out_str(o, inv->call_id);
	sip_out_cstr(o, "\r\nCSeq: ");
	sip_out_u64(o, inv->cseq);
	sip_out_cstr(o, " ");
	sip_out_cstr(o, method);
	sip_out_cstr(o, "\r\nMax-Forwards: 70\r\n");
	sip_out_str(o, extra);
	sip_out_cstr(o, "Content-Length: 0\r\n\r\n");
}

/* Prints ACK or CANCEL for ct into a fresh heap buffer of exactly its size (*outp, *lenp).
 * Printed on the stack first: ACK and CANCEL are short unless Route is long. */
static int print_short(const struct txn_client *ct, const char *method, const struct sip_msg *resp, struct str extra,
		       char **outp, size_t *lenp)
{
	struct own inv;
	int err = parse_own(ct, &inv);
	if (err)
		return err;
	/* The ACK takes To from the response (it has the tag); CANCEL from the INVITE. */
	struct str to = resp ? resp->to.raw : inv.m.to.raw;
	char small[2048], *big = NULL;
	struct sip_out o;
	sip_out_init(&o, small, sizeof small);
	print_like(&o, &inv.m, method, to, extra);
	if (o.overflow) {
		big = malloc(SIP_MAX_MSG);
		if (!big)
			return -ENOMEM;
		sip_out_init(&o, big, SIP_MAX_MSG);
		print_like(&o, &inv.m, method, to, extra);
	}
	err = -ENOBUFS;
	char *out = NULL;
	if (!o.overflow) {
		err = -ENOMEM;
		out = malloc(o.len ? o.len : 1);
	}
	if (out) {
		memcpy(out, o.p, o.len);
		*outp = out;
		*lenp = o.len;
		err = 0;
	}
	free(big);
	return err;
}

int txn_client_print_cancel(const struct txn_client *ct, struct sip_out *o, struct str extra)
{
	if (!ct->invite)
		return -EINVAL;
	struct own inv;
	int err = parse_own(ct, &inv);
	if (err)
		return err;
	print_like(o, &inv.m, "CANCEL", inv.m.to.raw, extra);
	return o->overflow ? -ENOBUFS : 0;
}

static int send_cancel(struct txn_client *ct, struct str extra)
{
	char *buf = NULL;
	size_t len = 0;
	int err = print_short(ct, "CANCEL", NULL, extra, &buf, &len);
	if (err)
		return err;
	/* Its own transaction, owned by nobody: the layer absorbs its 200 (or 481), and the
	 * INVITE's 487 is what the owner waits for. */
	err = txn_client_new(NULL, ct->l, buf, len, &ct->dst, NULL, NULL);
	free(buf);
	if (err)
		return err;
	ct->cancel_sent = true;
	ct->cancel_wanted = false;
	free(ct->cancel_extra);
	ct->cancel_extra = NULL;
	/* §9.1: with no final for the INVITE 64*T1 after the CANCEL, the transaction is
	 * over. Nothing else would end it: a ringing branch has no timer B, and a phone that
	 * rings and then ignores the CANCEL would hold it (and its proxy call) for ever. */
	if (ct->state == TXN_PROCEEDING)
		timer_start(ct->l->w, &ct->main, 64 * ct->l->cfg.t1, fire_main, ct);
	return 0;
}

int txn_client_cancel(struct txn_client *ct, struct str extra)
{
	if (!ct->invite)
		return -EINVAL;
	if (ct->cancel_sent || ct->cancel_wanted)
		return 0;
	if (ct->state == TXN_PROCEEDING)
		return send_cancel(ct, extra);
	if (ct->state != TXN_CALLING)
		return -EALREADY;
	/* §9.1: no CANCEL before a provisional, since a CANCEL overtaking its INVITE would
	 * find nothing to cancel. Keep the extra lines until then. */
	if (extra.l) {
		ct->cancel_extra = malloc(extra.l);
		if (!ct->cancel_extra)
			return -ENOMEM;
		memcpy(ct->cancel_extra, extra.p, extra.l);
		ct->cancel_extra_len = extra.l;
	}
	ct->cancel_wanted = true;
	return 0;
}

/* ---- responses in ----------------------------------------------------------------------- */

static void deliver(struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src)
{
	if (ct->ops && ct->ops->on_response)
		ct->ops->on_response(ct->tu, ct, m, src);
}

static void stop_timers(struct txn_client *ct)
{
	timer_stop(ct->l->w, &ct->retx);
	timer_stop(ct->l->w, &ct->main);
}

static void invite_response(struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src)
{
	struct txn_layer *l = ct->l;
	unsigned status = m->status;
	switch (ct->state) {
	case TXN_CALLING:
	case TXN_PROCEEDING:
		ct->status = status;
		if (status < 200) {
			if (ct->state == TXN_CALLING) {
				/* No more retransmissions, and timer B no longer applies: the
				 * TU's timer C (§16.6 step 11) bounds a ringing branch. */
				stop_timers(ct);
				ct->state = TXN_PROCEEDING;
			}
			ct->got_provisional = true;
			if (ct->cancel_wanted)
				send_cancel(ct, (struct str){ ct->cancel_extra, ct->cancel_extra_len });
		} else if (status < 300) {
			stop_timers(ct);
			ct->state = TXN_ACCEPTED;
			drop_request(ct);
			timer_start(l->w, &ct->main, 64 * l->cfg.t1, fire_main, ct);
		} else {
			stop_timers(ct);
			ct->state = TXN_COMPLETED;
			if (print_short(ct, "ACK", m, STR(""), &ct->ack, &ct->ack_len) == 0)
				txn__send(l, &ct->dst, ct->ack, ct->ack_len);
			drop_request(ct);
			/* Timer D outlives the server's retransmissions of the final. */
			unsigned d = 64 * l->cfg.t1 > 32000 ? 64 * l->cfg.t1 : 32000;
			timer_start(l->w, &ct->main, ct->reliable ? 0 : d, fire_main, ct);
		}
		if (status >= 200) {
			ct->cancel_wanted = false;
			free(ct->cancel_extra);
			ct->cancel_extra = NULL;
		}
		deliver(ct, m, src);
		return;
	case TXN_COMPLETED:
		/* A retransmitted final: the server did not get our ACK. */
		l->stats.absorbed++;
		if (status >= 300 && ct->ack) {
			l->stats.retransmits++;
			txn__send(l, &ct->dst, ct->ack, ct->ack_len);
		}
		return;
	case TXN_ACCEPTED:
		/* RFC 6026: every 2xx goes up (retransmissions, other forks); the rest is late. */
		if (status >= 200 && status < 300) {
			deliver(ct, m, src);
			return;
		}
		l->stats.absorbed++;
		return;
	default:
		l->stats.absorbed++;
		return;
	}
}

static void plain_response(struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src)
{
	struct txn_layer *l = ct->l;
	if (ct->state != TXN_TRYING && ct->state != TXN_PROCEEDING) {
		l->stats.absorbed++;
		return;
	}
	ct->status = m->status;
	if (m->status < 200) {
		ct->state = TXN_PROCEEDING;
		ct->got_provisional = true;
	} else {
		stop_timers(ct);
		ct->state = TXN_COMPLETED;
		drop_request(ct);
		/* Timer K absorbs the final's retransmissions over UDP. */
		timer_start(l->w, &ct->main, ct->reliable ? 0 : l->cfg.t4, fire_main, ct);
	}
	deliver(ct, m, src);
}

int txn_recv_response(struct txn_layer *l, const struct sip_msg *m, const struct tp_source *src)
{
	if (m->request)
		return -EINVAL;
	txn__server_reap(l);
	struct txn_client *ct = find(l, m->via.branch, m->cseq_method, m->cseq_method_str);
	if (!ct)
		return -ENOENT;
	if (ct->invite)
		invite_response(ct, m, src);
	else
		plain_response(ct, m, src);
	return 0;
}

/* ---- timers ----------------------------------------------------------------------------- */

/* Timer A (INVITE: doubling without cap) or E (doubling up to T2, T2 once Proceeding). */
static void fire_retx(void *arg)
{
	struct txn_client *ct = arg;
	struct txn_layer *l = ct->l;
	if (ct->state != TXN_CALLING && ct->state != TXN_TRYING && ct->state != TXN_PROCEEDING)
		return;
	l->stats.retransmits++;
	/* A failed UDP send is not fatal: the next retransmission or timer B/F settles it. */
	if (ct->buf)
		txn__send(l, &ct->dst, ct->buf, ct->len);
	if (ct->invite)
		ct->retx_ms *= 2;
	else if (ct->state == TXN_PROCEEDING)
		ct->retx_ms = l->cfg.t2;
	else
		ct->retx_ms = ct->retx_ms * 2 < l->cfg.t2 ? ct->retx_ms * 2 : l->cfg.t2;
	timer_start(l->w, &ct->retx, ct->retx_ms, fire_retx, ct);
}

/* Timer B or F (no final: tell the owner), or D, K, M (done waiting). */
static void fire_main(void *arg)
{
	struct txn_client *ct = arg;
	struct txn_layer *l = ct->l;
	if (ct->state == TXN_CALLING || ct->state == TXN_TRYING || ct->state == TXN_PROCEEDING) {
		l->stats.timeouts++;
		timer_stop(l->w, &ct->retx);
		ct->state = TXN_TERMINATED;
		if (ct->ops && ct->ops->on_timeout)
			ct->ops->on_timeout(ct->tu, ct, -ETIMEDOUT);
	}
	ct->state = TXN_TERMINATED;
	destroy(ct);
}

/* Whether ct was sent to dst: over that very connection, or (sent with none named) to the
 * same address on the same transport. */
static bool sent_to(const struct txn_client *ct, const struct tp_source *dst)
{
	if (ct->dst.proto != dst->proto)
		return false;
	if (ct->dst.conn_id)
		return ct->dst.conn_id == dst->conn_id;
	return tp_addr_equal(&ct->dst.addr, &dst->addr);
}

unsigned txn_dest_failed(struct txn_layer *l, const struct tp_source *dst, int err)
{
	struct txn__tab *t = &l->clients;
	unsigned ended = 0;
	/* The owners' callbacks may start and end transactions, which moves entries of the
	 * table: collect a batch, then end it, and look again. A walk that finds nothing, or
	 * a bounded number of walks, ends it (a failover to the same dead address fails its
	 * own way, by its send error or timer). */
	for (int walk = 0; walk < 8; walk++) {
		struct txn_client *batch[64];
		unsigned n = 0;
		for (size_t i = 0; i < t->cap && n < 64; i++) {
			struct txn_client *ct = t->s[i].p;
			if (ct &&
			    (ct->state == TXN_CALLING || ct->state == TXN_TRYING || ct->state == TXN_PROCEEDING) &&
			    sent_to(ct, dst))
				batch[n++] = ct;
		}
		if (n == 0)
			break;
		for (unsigned k = 0; k < n; k++) {
			struct txn_client *ct = batch[k];
			/* An earlier callback of this batch may have ended it already: it is ended
			 * only if it is still in the table in a waiting state. */
			bool live = false;
			for (TXN__EACH(t, ct->key, i))
				if (t->s[i].p == ct)
					live = true;
			if (!live ||
			    !(ct->state == TXN_CALLING || ct->state == TXN_TRYING || ct->state == TXN_PROCEEDING))
				continue;
			timer_stop(l->w, &ct->retx);
			ct->state = TXN_TERMINATED;
			if (ct->ops && ct->ops->on_timeout)
				ct->ops->on_timeout(ct->tu, ct, err);
			destroy(ct);
			ended++;
		}
	}
	return ended;
}

/* ---- accessors -------------------------------------------------------------------------- */

void txn_client_detach(struct txn_client *ct)
{
	ct->ops = NULL;
	ct->tu = NULL;
}

enum txn_state txn_client_state(const struct txn_client *ct)
{
	return ct->state;
}

unsigned txn_client_status(const struct txn_client *ct)
{
	return ct->status;
}

bool txn_client_got_provisional(const struct txn_client *ct)
{
	return ct->got_provisional;
}

struct str txn_client_branch(const struct txn_client *ct)
{
	return ct->branch;
}

enum sip_method txn_client_method(const struct txn_client *ct)
{
	return ct->mid;
}

struct str txn_client_bytes(const struct txn_client *ct)
{
	return ct->buf ? (struct str){ ct->buf, ct->len } : STR_NULL;
}

void *txn_client_tu(const struct txn_client *ct)
{
	return ct->tu;
}
