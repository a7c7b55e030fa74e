/* hop.c: who this proxy is, and the route set of a request (RFC 3261 §16.3 step 4, §16.4). */
#include "proxy/proxy_int.h"

bool proxy_is_me(const struct proxy *p, struct str host, uint16_t port)
{
	struct transport *tp = proxy__tp(p);
	if (tp_is_me(tp, host, port))
		return true;
	/* A Route or Request-URI naming one of our domains without a user is us too. */
	struct route *r = proxy__route(p);
	return r && route_domain(r, host) >= 0 && tp_listener_count(tp) &&
	       (port == 0 || port == tp_listener_at(tp, 0)->port);
}

/* The first value of Route header h (or of the one after it) parsed into a. */
static bool next_route(const struct sip_msg *m, const struct sip_hdr *h, struct str *rest, struct sip_addr *a)
{
	struct str it;
	if (sip_list_next(rest, &it))
		return sip_addr_parse(a, it) == 0;
	const struct sip_hdr *h2 = sip_msg_hdr_next(m, h);
	struct str r2 = h2 ? h2->value : STR_NULL;
	return h2 && sip_list_next(&r2, &it) && sip_addr_parse(a, it) == 0;
}

/* The third Route value of m (rh its first Route line) parsed into a. */
static bool third_route(const struct sip_msg *m, const struct sip_hdr *rh, struct sip_addr *a)
{
	unsigned k = 0;
	for (const struct sip_hdr *x = rh; x; x = sip_msg_hdr_next(m, x)) {
		struct str r = x->value, it;
		while (sip_list_next(&r, &it))
			if (k++ == 2)
				return sip_addr_parse(a, it) == 0;
	}
	return false;
}

void proxy_route_set(const struct proxy *p, const struct sip_msg *m, struct proxy_hop *h)
{
	/* Only the flags: route and next are read only once a flag says they were parsed,
	 * and zeroing two parsed addresses per request costs more than it is worth. */
	h->fl = (struct proxy_fwd_flags){ 0 };
	h->have_next = h->strict = false;
	const struct sip_hdr *rh = sip_msg_hdr(m, SIP_HDR_ROUTE);
	if (!rh)
		return;
	struct str rest = rh->value, it;
	bool first_ok = sip_list_next(&rest, &it) && sip_addr_parse(&h->route, it) == 0;
	if (first_ok && proxy_is_me(p, h->route.uri.host, h->route.uri.port)) {
		h->fl.pop_route = true;
		h->have_next = next_route(m, rh, &rest, &h->next);
		if (h->have_next && proxy_is_me(p, h->next.uri.host, h->next.uri.port)) {
			/* Our two Record-Route entries (one per side): the next hop is after both. */
			h->fl.pop_second_route = true;
			h->have_next = third_route(m, rh, &h->next);
		}
		return;
	}
	/* A strict router upstream put our Record-Route URI into the Request-URI and the real
	 * target last in Route. */
	if (m->ruri.user.l != 0 || !proxy_is_me(p, m->ruri.host, m->ruri.port))
		return;
	struct sip_addr last;
	unsigned nroutes = 0;
	for (const struct sip_hdr *x = rh; x; x = sip_msg_hdr_next(m, x)) {
		struct str r = x->value;
		while (sip_list_next(&r, &it))
			if (sip_addr_parse(&last, it) == 0)
				nroutes++;
	}
	if (!nroutes || (nroutes > 1 && !first_ok))
		return;
	h->strict = true;
	h->fl.strict_ruri = last.uri_str;
	h->fl.drop_last_route = true;
	/* the next hop: the first Route when more remain, else the new Request-URI */
	h->next = nroutes > 1 ? h->route : last;
	h->have_next = true;
}

bool proxy_looped(const struct proxy *p, const struct sip_msg *m, struct str *via)
{
	for (const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_VIA); h; h = sip_msg_hdr_next(m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it)) {
			struct sip_via v;
			if (sip_via_parse(&v, it) == 0 && proxy_is_me(p, v.host, v.port)) {
				*via = str_trim(it);
				return true;
			}
		}
	}
	return false;
}
