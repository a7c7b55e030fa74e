/* router_int.h: private to src/router: the router's state and the helpers its files share. */
#ifndef PARLEY_ROUTER_INT_H
#define PARLEY_ROUTER_INT_H

#include "router/router.h"

struct router_delayed;

struct router {
	struct router_env env;
	struct route_waits *waits;              /* requests for foreign domains waiting for DNS */
	struct tp_addr trust[ROUTER_MAX_TRUST]; /* --trust hosts that are addresses */
	unsigned ntrust;
	struct log_limit lim_reject, lim_drop, lim_auth;
	struct router_delayed *delayed; /* answers held back after repeated failures */
	unsigned ndelayed;
	struct router_stats stats;
	int mem_load;       /* router_set_memory_load */
	uint64_t next_hold; /* INVITEs held for the media relay: their ids */
};

/* One request being decided. */
struct req {
	struct router *r;
	struct txn_server *st; /* NULL for an ACK to a 2xx */
	const struct sip_msg *m;
	const struct tp_source *src;
	char srctxt_buf[80]; /* filled on first use: most requests are never logged */
};

uint64_t router__now_ms(const struct router *r);
static inline uint32_t router__now(const struct router *r)
{
	return (uint32_t)(router__now_ms(r) / 1000);
}
/* The source address as text, for log lines. */
const char *router__src(struct req *q);

/* ---- answers (answer.c) ------------------------------------------------------------------ */

/* Answers through the request's transaction: for requests we act on (registrations of
 * authenticated users, proxied requests). */
void router__reply(struct req *q, unsigned code, const char *reason, struct str extra);
/* Answers without keeping anything: challenges and refusals of requests nobody has vouched
 * for yet. One answer per datagram, no retransmissions (a spoofed source gets one reply,
 * not eleven), no memory held, no call record. The transaction the layer made for the
 * request is dropped unused. */
void router__reply_sl(struct req *q, unsigned code, const char *reason, struct str extra);
/* A refusal, logged with its reason (aggregated under floods) and answered statelessly. */
void router__reject(struct req *q, unsigned code, const char *reason, const char *why);
/* A refusal for load: 503 with Retry-After, statelessly, logged aggregated. */
void router__shed(struct req *q, const char *why);
/* Log lines of refusals and drops, aggregated when they come in floods. */
void router__log_reject(struct router *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void router__log_drop(struct router *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failed authentication (wrong password or unknown user, told apart only by why): logs
 * it, counts it against the source and the user, and answers 403 Forbidden statelessly,
 * at once or, after repeated failures, later; at the threshold the source is banned. */
void router__auth_failed(struct req *q, struct str aor, const char *why, const char *what);
void router__delayed_free(struct router *r);

/* ---- who is asking (login.c) ----------------------------------------------------------- */

/* "user@domain" with the domain lower-cased, into buf. Every request makes one or two:
 * inline, as it was before the router had files of its own. */
static inline struct str router__aor(struct str user, struct str domain, char *buf, size_t cap)
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
/* The served domain a host names (proxy_domain, or our own address: the first domain), as
 * an index into the route's domains, or -1. */
int router__local_domain(const struct router *r, struct str host);
/* Authenticates the request as a user of local domain dom. On success returns true with
 * the user's AOR in aor (aorcap bytes); otherwise the request has been answered
 * (challenge, 403 or nothing for a banned source) and logged. */
bool router__authenticate(struct req *q, int dom, bool proxy, const char *what, char *aor, size_t aorcap,
			  struct str *aor_out);

#endif
