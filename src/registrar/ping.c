/* ping.c: NAT keepalive: OPTIONS to phones behind NAT so that their router keeps the mapping open. */
#include "registrar/registrar_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unanswered keepalives in a row after which a phone counts as unreachable. */
#define MISSES_UNREACHABLE 3

/* One OPTIONS in flight: the binding it is for, found again by key when it is answered or
 * times out (the binding may be gone by then). */
struct ping {
	struct ping *prev, *next;
	struct reg_ping *p;
	uint16_t aor_len, uri_len;
	char key[]; /* AOR, then contact URI */
};

struct reg_ping {
	const struct reg_env *env;
	size_t cursor;     /* where the walk over the location table goes on */
	double carry;      /* fractional hash slots owed to the next tick */
	struct ping *live; /* every ping in flight */
	struct reg_ping_stats stats;
};

int reg__ping_new(struct reg_ping **pp, const struct reg_env *env)
{
	struct reg_ping *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->env = env;
	*pp = p;
	return 0;
}

void reg__ping_free(struct reg_ping *p)
{
	if (!p)
		return;
	while (p->live) {
		struct ping *x = p->live;
		p->live = x->next;
		free(x);
	}
	free(p);
}

const struct reg_ping_stats *reg__ping_stats(const struct reg_ping *p)
{
	return &p->stats;
}

static void unlink_ping(struct ping *x)
{
	struct reg_ping *p = x->p;
	if (x->prev)
		x->prev->next = x->next;
	else
		p->live = x->next;
	if (x->next)
		x->next->prev = x->prev;
	p->stats.outstanding--;
}

/* The binding a ping is for, or NULL when it is gone. */
static struct loc_binding *binding_of(const struct ping *x)
{
	struct loc_aor *a = loc_find(x->p->env->loc, (struct str){ x->key, x->aor_len });
	return a ? loc_find_contact(a, (struct str){ x->key + x->aor_len, x->uri_len }) : NULL;
}

static void on_response(void *tu, struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src)
{
	(void)ct;
	(void)src;
	struct ping *x = tu;
	if (m->status < 200)
		return;
	/* Any final answer, even 404 or 405, shows the phone is there and its NAT open. */
	x->p->stats.answered++;
	struct loc_binding *b = binding_of(x);
	if (b && b->misses >= MISSES_UNREACHABLE)
		log_info(x->p->env->lg, "nat", "%.*s contact %.*s answers keepalives again", (int)x->aor_len, x->key,
			 (int)x->uri_len, x->key + x->aor_len);
	if (b)
		b->misses = 0;
}

static void on_timeout(void *tu, struct txn_client *ct, int err)
{
	(void)ct;
	(void)err;
	struct ping *x = tu;
	struct reg_ping *p = x->p;
	p->stats.missed++;
	struct loc_binding *b = binding_of(x);
	if (!b)
		return;
	if (b->misses < UINT8_MAX)
		b->misses++;
	if (b->misses != MISSES_UNREACHABLE)
		return;
	p->stats.unreachable++;
	struct str aor = { x->key, x->aor_len }, uri = { x->key + x->aor_len, x->uri_len };
	if (!p->env->cfg->nat_ping_remove) {
		log_warn(p->env->lg, "nat", "%.*s contact %.*s is unreachable: %u keepalives unanswered", STR_FMT(aor),
			 STR_FMT(uri), MISSES_UNREACHABLE);
		return;
	}
	log_warn(p->env->lg, "nat", "%.*s contact %.*s removed: %u keepalives unanswered (nat-ping-remove)",
		 STR_FMT(aor), STR_FMT(uri), MISSES_UNREACHABLE);
	reg__queue_del(p->env, b);
	loc_del(p->env->loc, b);
	p->stats.removed++;
}

static void on_free(void *tu, struct txn_client *ct)
{
	(void)ct;
	struct ping *x = tu;
	unlink_ping(x);
	free(x);
}

static const struct txn_client_ops ping_ops = {
	.on_response = on_response,
	.on_timeout = on_timeout,
	.on_free = on_free,
};

/* Sends one keepalive OPTIONS to binding b when it is a phone behind NAT over UDP. */
static void ping_one(struct loc_binding *b, void *arg)
{
	struct reg_ping *p = arg;
	const struct reg_env *env = p->env;
	/* An Outbound flow is kept open by the phone itself (STUN or CRLF keepalives, RFC
	 * 5626 §4.4): no OPTIONS of ours on top. */
	if (!(b->flags & LOC_F_USE_SRC) || b->src.proto != TP_UDP || (b->flags & LOC_F_OUTBOUND))
		return;
	struct tp_source dst;
	if (reg_binding_dest(b, &dst) < 0)
		return;
	/* A phone that asked for rport but registered the very address it sends from is not
	 * behind NAT: nothing to keep open. */
	struct tp_addr ctc;
	if (reg__contact_addr(b, &ctc) == 0 && tp_addr_equal(&ctc, &dst.addr))
		return;
	dst.lis = tp_pick(env->tp, dst.proto, &dst.addr, NULL);
	if (!dst.lis)
		return;
	struct str aor = loc_aor_key(b->aor), uri = loc_b_field(b, LOC_URI);
	if (aor.l > UINT16_MAX || uri.l > UINT16_MAX)
		return;
	char branch[TXN_BRANCH_SIZE], tag[TXN_TAG_SIZE], buf[2048];
	size_t bl = txn_make_branch(env->txn, branch), tl = txn_make_tag(env->txn, tag);
	const struct tp_listener *l = dst.lis;
	int n = snprintf(buf, sizeof buf,
			 "OPTIONS %.*s SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP %s:%u;branch=%.*s;rport\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <sip:keepalive@%s:%u>;tag=%.*s\r\n"
			 "To: <%.*s>\r\n"
			 "Call-ID: %.*s@%s\r\n"
			 "CSeq: 1 OPTIONS\r\n"
			 "Content-Length: 0\r\n\r\n",
			 STR_FMT(uri), l->host, l->port, (int)bl, branch, l->host, l->port, (int)tl, tag, STR_FMT(uri),
			 (int)bl, branch, l->host);
	if (n < 0 || (size_t)n >= sizeof buf)
		return;
	struct ping *x = malloc(sizeof(*x) + aor.l + uri.l);
	if (!x)
		return; /* a keepalive skipped: the next round sends it */
	*x = (struct ping){ .p = p, .aor_len = (uint16_t)aor.l, .uri_len = (uint16_t)uri.l };
	memcpy(x->key, aor.p, aor.l);
	memcpy(x->key + aor.l, uri.p, uri.l);
	x->next = p->live;
	if (p->live)
		p->live->prev = x;
	p->live = x;
	p->stats.outstanding++;
	if (txn_client_new(NULL, env->txn, buf, (size_t)n, &dst, &ping_ops, x) < 0) {
		unlink_ping(x); /* no callback will come */
		free(x);
		return;
	}
	p->stats.sent++;
}

void reg__ping_tick(struct reg_ping *p, unsigned tick_ms)
{
	const struct reg_env *env = p->env;
	unsigned interval = env->cfg->nat_ping_interval;
	if (!interval || !env->txn || !env->tp)
		return;
	/* The whole table once per interval, a slice per tick: the keepalives of many phones
	 * are spread out instead of leaving in one burst. */
	size_t slots = loc_capacity(env->loc);
	p->carry += (double)slots * tick_ms / (interval * 1000.0);
	unsigned budget = (unsigned)p->carry;
	p->carry -= budget;
	if (budget)
		loc_walk(env->loc, &p->cursor, budget, ping_one, p);
}
