/* cfg.c: the transport's settings: which addresses to listen on, checked before anything opens. */
#include "transport/transport.h"
#include "transport/tp_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

int tp_listen_parse(const char *uri, struct tp_listen_spec *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strchr(uri, ':');
	static const char *const schemes[] = { "udp", "tcp", "tls", "ws", "wss" };
	bool known = false;
	if (colon && (size_t)(colon - uri) < sizeof(out->scheme)) {
		for (size_t i = 0; i < 5; i++)
			if (strlen(schemes[i]) == (size_t)(colon - uri) &&
			    strncasecmp(uri, schemes[i], (size_t)(colon - uri)) == 0) {
				strcpy(out->scheme, schemes[i]);
				known = true;
			}
	}
	if (!known) {
		snprintf(err, errlen,
			 "expected udp:, tcp:, tls:, ws: or wss:HOST:PORT (IPv6 in brackets: udp:[::1]:5060)");
		return -EINVAL;
	}
	const char *h = colon + 1, *hend, *port = NULL;
	if (*h == '[') {
		h++;
		hend = strchr(h, ']');
		if (!hend || (hend[1] != '\0' && hend[1] != ':')) {
			snprintf(err, errlen, "expected an IPv6 address in brackets: %s:[::1]:5060", out->scheme);
			return -EINVAL;
		}
		out->v6 = true;
		if (hend[1] == ':')
			port = hend + 2;
	} else {
		hend = strchr(h, ':');
		if (hend) {
			port = hend + 1;
			if (strchr(port, ':')) {
				snprintf(err, errlen, "put an IPv6 address in brackets: %s:[::1]:5060", out->scheme);
				return -EINVAL;
			}
		} else {
			hend = h + strlen(h);
		}
	}
	size_t hl = (size_t)(hend - h);
	if (hl == 0 || hl >= sizeof(out->host)) {
		snprintf(err, errlen, "missing or too long host");
		return -EINVAL;
	}
	memcpy(out->host, h, hl);
	out->host[hl] = '\0';
	unsigned char bin[16];
	if (inet_pton(out->v6 ? AF_INET6 : AF_INET, out->host, bin) != 1) {
		/* Numeric only: binding to a name would depend on DNS at start-up. */
		snprintf(err, errlen, "'%s' is not a numeric %s address", out->host, out->v6 ? "IPv6" : "IPv4");
		return -EINVAL;
	}
	out->port = 5060;
	if (port) {
		uint64_t n;
		if (!str_to_u64(str_from_cstr(port), 65535, &n)) {
			snprintf(err, errlen, "bad port '%s'", port);
			return -EINVAL;
		}
		out->port = (uint16_t)n;
	}
	return 0;
}

const struct cfg_key tp_cfg_keys[] = {
	CFG_KEY_LIST(struct tp_cfg, "listen", "server", "listen", listen, nlisten,
		     "udp:, tcp:, tls:, ws: or wss:HOST:PORT", CFG_F_REPLACE),
	CFG_KEY_UINT(struct tp_cfg, "tcp-max-connections", "server", "tcp-max-connections", tcp_max_conns, 1, 1000000),
	CFG_KEY_UINT(struct tp_cfg, "tcp-max-per-source", "server", "tcp-max-per-source", tcp_max_per_source, 1,
		     1000000),
	CFG_KEY_UINT(struct tp_cfg, "tcp-idle-timeout", "server", "tcp-idle-timeout", tcp_idle_timeout, 1, 86400),
	CFG_KEY_STR(struct tp_cfg, "tls-cert", "tls", "tls-cert", tls_cert, "self-signed, beside the database", 0),
	CFG_KEY_STR(struct tp_cfg, "tls-key", "tls", "tls-key", tls_key, "the self-signed certificate's", 0),
	CFG_KEY_STR(struct tp_cfg, "tls-ca", "tls", "tls-ca", tls_ca, "the system's CA certificates", 0),
};
const size_t tp_cfg_nkeys = sizeof(tp_cfg_keys) / sizeof(tp_cfg_keys[0]);

void tp_cfg_defaults(struct tp_cfg *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->listen[0], "udp:0.0.0.0:5060");
	strcpy(c->listen[1], "tcp:0.0.0.0:5060");
	c->nlisten = 2;
	/* 10,000 connections fit the usual 16-64k open-file limits with room for the rest;
	 * 500 from one address lets a large office behind one NAT in and keeps one host from
	 * taking them all. Five minutes of silence is longer than any keep-alive interval in
	 * use (RFC 5626 suggests 120 s for TCP); a phone registered over the connection keeps
	 * it open until its binding expires whatever its traffic (tp_conn_hold). */
	c->tcp_max_conns = 10000;
	c->tcp_max_per_source = 500;
	c->tcp_idle_timeout = 300;
}

/* l's address in 16 bytes (IPv4 in the first 4), however it was written. */
static void host_bin(const struct tp_listen_spec *l, unsigned char bin[16])
{
	memset(bin, 0, 16);
	inet_pton(l->v6 ? AF_INET6 : AF_INET, l->host, bin); /* parsed before: it succeeds */
}

/* Whether two listeners of one family would bind a common address: the same one, or
 * either one the wildcard (0.0.0.0 or ::, which takes every address of its family). */
static bool overlap(const struct tp_listen_spec *a, const struct tp_listen_spec *b)
{
	unsigned char x[16], y[16], zero[16] = { 0 };
	host_bin(a, x);
	host_bin(b, y);
	return !memcmp(x, y, 16) || !memcmp(x, zero, 16) || !memcmp(y, zero, 16);
}

int tp_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct tp_cfg *c = base;
	char why[256];
	if (c->nlisten == 0) {
		snprintf(err, errlen, "--listen: at least one address is needed");
		return -1;
	}
	for (unsigned i = 0; i < c->nlisten; i++) {
		struct tp_listen_spec l;
		if (tp_listen_parse(c->listen[i], &l, why, sizeof(why))) {
			snprintf(err, errlen, "--listen %s: %s", c->listen[i], why);
			return -1;
		}
	}
	/* Two listeners on one port that would make the second bind fail at start-up: the same
	 * address twice, tcp:, tls:, ws: and wss: (all TCP) on one address, or a wildcard and
	 * an address of its family (IPv6 listeners are IPv6-only). */
	for (unsigned i = 0; i < c->nlisten; i++) {
		for (unsigned j = 0; j < i; j++) {
			struct tp_listen_spec a, b;
			tp_listen_parse(c->listen[i], &a, why, sizeof(why));
			tp_listen_parse(c->listen[j], &b, why, sizeof(why));
			bool udp = !strcmp(a.scheme, "udp");
			if (!a.port || a.port != b.port || a.v6 != b.v6 || udp != !strcmp(b.scheme, "udp"))
				continue;
			if (!strcmp(a.scheme, b.scheme) && !strcmp(a.host, b.host)) {
				snprintf(err, errlen, "--listen %s: given twice", c->listen[i]);
				return -1;
			}
			if (overlap(&a, &b)) {
				snprintf(err, errlen, "--listen %s: the same %s port as %s", c->listen[i],
					 udp ? "UDP" : "TCP", c->listen[j]);
				return -1;
			}
		}
	}
	return tp__tls_cfg_check(c, err, errlen);
}
