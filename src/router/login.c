/* login.c: who is asking: local domains, addresses of record, digest challenges and their checks. */
#include "router/router_int.h"

#include <string.h>

/* The served domain a host names, as an index into the route's domains, or -1. Every spelling of a
 * local domain counts: any case, a trailing dot (an absolute name), and our own addresses
 * (the first domain), so that "alice@OUR.DOMAIN." or "alice@OUR_IP" is challenged like
 * "alice@our.domain" and cannot pass as a caller from elsewhere. */
int router__local_domain(const struct router *r, struct str host)
{
	int d = route_domain(r->env.route, host);
	if (d >= 0)
		return d;
	if (host.l && tp_has_host(r->env.tp, host))
		return 0;
	return -1;
}

static struct str realm_for(const struct router *r, struct str domain, char *buf, size_t cap)
{
	if (r->env.cfg->realm[0])
		return str_from_cstr(r->env.cfg->realm);
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
	if (!q->r->env.cfg->nonce_bind_source)
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
	int n = auth_challenge(q->r->env.auth, realm, nonce_bind(q), stale, proxy, router__now(q->r), buf, sizeof buf);
	if (n < 0) {
		router__reply_sl(q, 500, "Challenge Too Long", STR_NULL);
		return;
	}
	q->r->stats.challenges++;
	router__reply_sl(q, proxy ? 407 : 401, proxy ? "Proxy Authentication Required" : "Unauthorized",
			 (struct str){ buf, (size_t)n });
}

/* Whether a digest uri names this server itself: a URI without a user part whose host
 * and port are ours (SIPp writes sip:SERVER:PORT whatever the Request-URI). */
static bool digest_uri_is_me(const struct router *r, struct str u)
{
	struct sip_uri du;
	return sip_uri_parse(&du, u) == 0 && du.user.l == 0 && proxy_is_me(r->env.proxy, du.host, du.port);
}

/* Authenticates the request as a user of local domain dom. On success returns true with
 * the user's AOR in aor; otherwise the request has been answered (challenge, 403 or
 * nothing for a banned source) and logged. */
bool router__authenticate(struct req *q, int dom, bool proxy, const char *what, char *aor, size_t aorcap,
			  struct str *aor_out)
{
	struct router *r = q->r;
	char rbuf[256];
	struct str domain = str_from_cstr(route_domain_name(r->env.route, dom));
	struct str realm = realm_for(r, domain, rbuf, sizeof rbuf);
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
	if (auth_alg_from_name(cred.algorithm, &alg) &&
	    store_ucache_get(r->env.users, cred.username, domain, router__now(r), &u) == 0) {
		known = true;
		ha1 = alg == AUTH_SHA256 ? u.ha1_sha256 : u.ha1_md5;
	}
	struct str user_aor = router__aor(cred.username, domain, aor, aorcap);
	struct auth_req rq = { q->m->method, q->m->ruri_str, realm, nonce_bind(q) };
	/* A digest uri that names this server itself (no user, our address) is taken as
	 * naming the request too: SIPp writes sip:SERVER:PORT whatever the Request-URI. A
	 * captured response still cannot be used again: its nonce count is spent. */
	if (!str_eq(cred.uri, rq.ruri) && digest_uri_is_me(r, cred.uri))
		rq.ruri = cred.uri;
	enum auth_result ar = auth_verify(r->env.auth, &cred, &rq, ha1, router__now(r));
	switch (ar) {
	case AUTH_OK:
		guard_auth_ok(r->env.guard, &q->src->addr, user_aor);
		*aor_out = user_aor;
		return true;
	case AUTH_STALE:
	case AUTH_BAD_NONCE:
		r->stats.auth_stale++;
		log_info(r->env.lg, what, "challenge %.*s from %s again: stale nonce", STR_FMT(user_aor),
			 router__src(q));
		challenge(q, realm, true, proxy);
		return false;
	case AUTH_REPLAY:
		r->stats.auth_replay++;
		router__log_reject(r, "%s: refused %.*s from %s: replayed nonce count", what, STR_FMT(user_aor),
				   router__src(q));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_URI_MISMATCH:
		r->stats.auth_uri_mismatch++;
		router__log_reject(r, "%s: refused %.*s from %s: digest uri '%.*s' is not the Request-URI", what,
				   STR_FMT(user_aor), router__src(q), STR_FMT(cred.uri));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_BAD_REQUEST:
		r->stats.auth_bad_request++;
		router__log_reject(r,
				   "%s: refused %.*s from %s: unusable credentials (algorithm, qop=auth or parameters)",
				   what, STR_FMT(user_aor), router__src(q));
		challenge(q, realm, false, proxy);
		return false;
	case AUTH_BAD_RESPONSE:
	default:
		/* Unknown users and wrong passwords get the very same answer, so that nobody
		 * can learn which users exist; only the log tells them apart. Repeated
		 * failures are answered later, then the source is banned. */
		if (!known)
			r->stats.auth_unknown_user++;
		router__auth_failed(q, user_aor, known ? "bad password" : "unknown user", what);
		return false;
	}
}
