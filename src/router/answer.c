/* answer.c: how the router answers and refuses: through the transaction, statelessly, later, or not at all. */
#include "router/router_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void router__reply(struct req *q, unsigned code, const char *reason, struct str extra)
{
	struct sip_resp_opts o = { 0 };
	o.extra = extra;
	o.server = STR("Parley " PARLEY_VERSION);
	txn_server_reply(q->st, code, reason, &o);
}

void router__reply_sl(struct req *q, unsigned code, const char *reason, struct str extra)
{
	txn_reply_stateless(q->r->env.txn, q->m, q->src, code, reason, extra);
	if (q->st)
		txn_server_drop(q->st);
}

void router__log_reject(struct router *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vlimited(r->env.lg, &r->lim_reject, router__now_ms(r), LOG_INFO, "reject", fmt, ap);
	va_end(ap);
}

void router__log_drop(struct router *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vlimited(r->env.lg, &r->lim_drop, router__now_ms(r), LOG_INFO, "drop", fmt, ap);
	va_end(ap);
}

void router__reject(struct req *q, unsigned code, const char *reason, const char *why)
{
	router__log_reject(q->r, "%.*s %.*s from %s: %u %s (%s)", STR_FMT(q->m->method), STR_FMT(q->m->ruri_str),
			   router__src(q), code, reason, why);
	router__reply_sl(q, code, reason, STR_NULL);
}

void router__shed(struct req *q, const char *why)
{
	q->r->stats.shed++;
	router__log_reject(q->r, "%.*s %.*s from %s: 503 Service Unavailable (%s)", STR_FMT(q->m->method),
			   STR_FMT(q->m->ruri_str), router__src(q), why);
	router__reply_sl(q, 503, "Service Unavailable", STR("Retry-After: 5\r\n"));
}

/* ---- failed logins ------------------------------------------------------------------------ */

/* An answer held back: repeated failed logins are answered later and later, so that
 * guessing passwords from one place, or against one user, slows to a crawl. */
struct router_delayed {
	struct router_delayed *prev, *next;
	struct router *r;
	struct timer t;
	struct tp_source dst;
	size_t len;
	char buf[];
};
#define MAX_DELAYED 4096

static void delayed_unlink(struct router *r, struct router_delayed *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		r->delayed = d->next;
	if (d->next)
		d->next->prev = d->prev;
	r->ndelayed--;
}

static void delayed_fire(void *arg)
{
	struct router_delayed *d = arg;
	struct router *r = d->r;
	delayed_unlink(r, d);
	txn_send_raw(r->env.txn, &d->dst, d->buf, d->len);
	free(d);
}

void router__delayed_free(struct router *r)
{
	while (r->delayed) {
		struct router_delayed *d = r->delayed;
		timer_stop(r->env.wheel, &d->t);
		delayed_unlink(r, d);
		free(d);
	}
}

/* Holds an answer back for delay_ms. */
static void hold(struct router *r, const struct tp_source *dst, const char *buf, size_t len, unsigned delay_ms)
{
	if (r->ndelayed >= MAX_DELAYED)
		return; /* too many held already: this one gets no answer at all */
	struct router_delayed *d = malloc(sizeof(*d) + len);
	if (!d)
		return;
	memset(d, 0, sizeof(*d));
	d->r = r;
	d->dst = *dst;
	d->len = len;
	memcpy(d->buf, buf, len);
	d->next = r->delayed;
	if (r->delayed)
		r->delayed->prev = d;
	r->delayed = d;
	r->ndelayed++;
	timer_start(r->env.wheel, &d->t, delay_ms, delayed_fire, d);
}

/* Writes a ban to the store, so that it survives a restart and `parley ban list` shows it. */
static void store_ban(struct router *r, const char *host, uint64_t until_s, struct str aor)
{
	const struct guard_conf *cfg = guard_conf_of(r->env.guard);
	char reason[300];
	snprintf(reason, sizeof reason, "%u failed authentications within %u s (last for %.*s)", cfg->ban_threshold,
		 cfg->ban_window, STR_FMT(aor));
	struct store_ban b = { str_from_cstr(host), (int64_t)until_s, str_from_cstr(reason), (int64_t)router__now(r) };
	if (store_ban_put(r->env.store, &b) < 0)
		log_error(r->env.lg, "ban", "cannot record the ban of %s: %s (it holds until restart)", host,
			  store_errmsg(r->env.store));
}

void router__auth_failed(struct req *q, struct str aor, const char *why, const char *what)
{
	struct router *r = q->r;
	const struct guard_conf *cfg = guard_conf_of(r->env.guard);
	uint64_t now = router__now_ms(r);
	struct guard_auth_out out;
	r->stats.auth_failures++;
	guard_auth_failed(r->env.guard, &q->src->addr, aor, now, &out);
	log_limited(r->env.lg, &r->lim_auth, now, LOG_INFO, "auth",
		    "failed authentication for %.*s from %s: %s (%s, %u failures from this source)", STR_FMT(aor),
		    router__src(q), why, what, out.src_failures);
	if (q->st)
		txn_server_drop(q->st);
	if (out.banned) {
		/* One line per ban, in a form fail2ban can match ("banned <HOST> for"). */
		char host[64];
		tp_addr_host(&q->src->addr, host, sizeof host);
		log_warn(r->env.lg, "ban", "banned %s for %u s: %u failed authentications within %u s (last for %.*s)",
			 host, cfg->ban_time, cfg->ban_threshold, cfg->ban_window, STR_FMT(aor));
		store_ban(r, host, out.until_s, aor);
		return; /* a banned source gets no answer */
	}
	char buf[2048];
	struct tp_source dst;
	size_t len = txn_print_stateless(r->env.txn, q->m, q->src, 403, "Forbidden", STR_NULL, buf, sizeof buf, &dst);
	if (!len)
		return;
	if (out.delay_ms)
		hold(r, &dst, buf, len, out.delay_ms);
	else
		txn_send_raw(r->env.txn, &dst, buf, len);
}
