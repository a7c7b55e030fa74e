/* addr.c: transport names and socket address helpers (parse, print, compare). */
#include "transport/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const proto_names[] = { "UDP", "TCP", "TLS", "WS", "WSS" };

const char *tp_proto_name(enum tp_proto p)
{
	return (unsigned)p < sizeof(proto_names) / sizeof(proto_names[0]) ? proto_names[p] : "?";
}

bool tp_proto_from_str(struct str s, enum tp_proto *p)
{
	for (unsigned i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
		if (str_caseeq_cstr(s, proto_names[i])) {
			*p = (enum tp_proto)i;
			return true;
		}
	return false;
}

int tp_addr_from_host(struct tp_addr *a, struct str host, uint16_t port)
{
	char buf[INET6_ADDRSTRLEN + 1];
	if (host.l >= 2 && host.p[0] == '[' && host.p[host.l - 1] == ']') {
		host.p++;
		host.l -= 2;
	}
	if (host.l == 0 || host.l >= sizeof(buf))
		return -EINVAL;
	str_to_cbuf(host, buf, sizeof(buf));
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
	if (inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		a->len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		a->len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}

/* Writes v in decimal at p; returns the end. */
static char *put_u(char *p, unsigned v)
{
	char t[10];
	int k = 0;
	do {
		t[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (k)
		*p++ = t[--k];
	return p;
}

char *tp_addr_host(const struct tp_addr *a, char *buf, size_t n)
{
	/* IPv4 by hand: this runs for every message that is logged or answered, and
	 * inet_ntop + snprintf cost more than the rest of a registration's formatting. */
	if (a->ss.ss_family == AF_INET && n >= 16) {
		const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
		char *p = buf;
		for (int i = 0; i < 4; i++) {
			p = put_u(p, b[i]);
			*p++ = i < 3 ? '.' : '\0';
		}
		return buf;
	}
	const void *bin = NULL;
	if (a->ss.ss_family == AF_INET)
		bin = &((const struct sockaddr_in *)&a->ss)->sin_addr;
	else if (a->ss.ss_family == AF_INET6)
		bin = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
	if (n && (!bin || !inet_ntop(a->ss.ss_family, bin, buf, (socklen_t)n)))
		snprintf(buf, n, "?");
	return buf;
}

uint16_t tp_addr_port(const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

char *tp_addr_str(const struct tp_addr *a, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN];
	tp_addr_host(a, host, sizeof(host));
	if (a->ss.ss_family == AF_INET && n >= 22) {
		size_t hl = strlen(host);
		memcpy(buf, host, hl);
		buf[hl] = ':';
		*put_u(buf + hl + 1, tp_addr_port(a)) = '\0';
	} else if (a->ss.ss_family == AF_INET6) {
		snprintf(buf, n, "[%s]:%u", host, tp_addr_port(a));
	} else {
		snprintf(buf, n, "%s:%u", host, tp_addr_port(a));
	}
	return buf;
}

bool tp_addr_equal(const struct tp_addr *a, const struct tp_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss.ss_family == AF_INET6) {
		/* Flow labels vary per packet; only address, port and scope name the peer. */
		const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
		return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

bool tp_addr_same_host(const struct tp_addr *a, const struct tp_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET)
		return a->ss.in.sin_addr.s_addr == b->ss.in.sin_addr.s_addr;
	if (a->ss.ss_family == AF_INET6)
		return memcmp(&a->ss.in6.sin6_addr, &b->ss.in6.sin6_addr, sizeof a->ss.in6.sin6_addr) == 0;
	return false;
}

bool tp_addr_is_private(const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		uint32_t ip = ntohl(a->ss.in.sin_addr.s_addr);
		return (ip >> 24) == 10 || (ip >> 20) == (172u << 4 | 1) || (ip >> 16) == (192u << 8 | 168) ||
		       (ip >> 22) == (100u << 2 | 1) || (ip >> 16) == (169u << 8 | 254);
	}
	if (a->ss.ss_family == AF_INET6) {
		const uint8_t *b = a->ss.in6.sin6_addr.s6_addr;
		return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
	}
	return false;
}
