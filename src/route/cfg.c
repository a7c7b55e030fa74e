/* cfg.c: the route's settings: served domains, static peers, the DNS server. */
#include "route/route.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const struct cfg_key route_cfg_keys[] = {
	CFG_KEY_LIST(struct route_cfg, "domain", "server", "domain", domain, ndomain, "a domain name", CFG_F_REPLACE),
	CFG_KEY_STR(struct route_cfg, "dns", "server", "dns", dns, "system resolver", 0),
	{ .flag = "peer",
	  .section = "peers",
	  .kind = CFG_MAP,
	  .off = offsetof(struct route_cfg, peer),
	  .size = sizeof(struct route_peer_cfg),
	  .max = ROUTE_MAX_PEERS,
	  .count_off = offsetof(struct route_cfg, npeer),
	  .name_size = sizeof(((struct route_peer_cfg *)0)->domain),
	  .voff = offsetof(struct route_peer_cfg, uri),
	  .vsize = sizeof(((struct route_peer_cfg *)0)->uri),
	  .what = "DOMAIN=sip:HOST[:PORT]" },
};
const size_t route_cfg_nkeys = sizeof(route_cfg_keys) / sizeof(route_cfg_keys[0]);

void route_cfg_defaults(struct route_cfg *c)
{
	memset(c, 0, sizeof(*c));
	/* Zero-config start: serve the machine's own name as the domain. */
	if (gethostname(c->domain[0], sizeof(c->domain[0])) != 0 || !c->domain[0][0])
		strcpy(c->domain[0], "localhost");
	c->domain[0][sizeof(c->domain[0]) - 1] = '\0';
	c->ndomain = 1;
}

/* "sip:HOST[:PORT]" with HOST a name, an IPv4 address or [IPv6]. */
static bool valid_sip_uri(const char *u)
{
	if (strncasecmp(u, "sip:", 4) != 0)
		return false;
	const char *h = u + 4, *end;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end || end == h + 1)
			return false;
		end++;
	} else {
		end = h + strcspn(h, ":;>");
		if (end == h)
			return false;
		for (const char *q = h; q < end; q++)
			if (!(*q == '.' || *q == '-' || (*q >= '0' && *q <= '9') ||
			      ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')))
				return false;
	}
	if (*end == ':') {
		uint64_t port;
		struct str ps = { end + 1, strcspn(end + 1, ";") };
		if (!str_to_u64(ps, 65535, &port) || port == 0)
			return false;
		end = ps.p + ps.l;
	}
	/* URI parameters such as ;transport=udp may follow. */
	return *end == '\0' || *end == ';';
}

/* --dns: "ADDR[:PORT]" or "[V6][:PORT]" with a numeric address, as c-ares takes it (a
 * name would need a resolver to find the resolver). */
static bool valid_dns(const char *s)
{
	char host[64];
	const char *end, *port = NULL;
	unsigned char bin[16];
	bool v6 = *s == '[';

	if (v6) {
		end = strchr(++s, ']');
		if (!end || (end[1] && end[1] != ':'))
			return false;
		port = end[1] ? end + 2 : NULL;
	} else {
		end = strchr(s, ':');
		if (end)
			port = end + 1;
		else
			end = s + strlen(s);
	}
	if (end == s || (size_t)(end - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t)(end - s));
	host[end - s] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
		return false;
	uint64_t n;
	return !port || (str_to_u64(str_from_cstr(port), 65535, &n) && n > 0);
}

int route_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct route_cfg *c = base;
	if (c->ndomain == 0) {
		snprintf(err, errlen, "--domain: at least one domain is needed");
		return -1;
	}
	for (unsigned i = 0; i < c->npeer; i++) {
		struct sip_uri u;
		if (!valid_sip_uri(c->peer[i].uri) || sip_uri_parse(&u, str_from_cstr(c->peer[i].uri)) != 0) {
			snprintf(err, errlen, "--peer %s=%s: expected sip:HOST[:PORT]", c->peer[i].domain,
				 c->peer[i].uri);
			return -1;
		}
	}
	if (c->dns[0] && !valid_dns(c->dns)) {
		snprintf(err, errlen, "--dns %s: expected a numeric SERVER[:PORT] (127.0.0.1:53, [::1]:53)", c->dns);
		return -1;
	}
	return 0;
}
