/* hep.c: HEP v3 (Homer encapsulation) copies of captured messages, sent over a non-blocking UDP socket. */
#include "capture/capture_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * A HEP v3 packet is "HEP3", its whole length (16 bits), then chunks: vendor 0 (generic),
 * a type and the chunk's length counting its 6-byte head, all in network order. The
 * generic types used here: 1 address family, 2 IP protocol, 3/4 IPv4 source and
 * destination, 5/6 IPv6 ones, 7/8 ports, 9 seconds and 10 microseconds of the time,
 * 11 payload type (1: SIP), 12 capture agent id, 15 the payload, 17 a correlation id
 * (the Call-ID, which Homer groups a call by).
 */
enum {
	HEP_FAMILY = 1,
	HEP_IPPROTO = 2,
	HEP_SRC4 = 3,
	HEP_DST4 = 4,
	HEP_SRC6 = 5,
	HEP_DST6 = 6,
	HEP_SPORT = 7,
	HEP_DPORT = 8,
	HEP_SEC = 9,
	HEP_USEC = 10,
	HEP_PTYPE = 11,
	HEP_AGENT = 12,
	HEP_PAYLOAD = 15,
	HEP_CORR = 17,
};

struct hep_out {
	unsigned char *p;
	size_t len, cap;
	bool overflow;
};

static void put(struct hep_out *o, uint16_t type, const void *v, size_t n)
{
	if (o->overflow || n > 0xffff - 6 || o->len + 6 + n > o->cap) {
		o->overflow = true;
		return;
	}
	unsigned char *h = o->p + o->len;
	size_t l = 6 + n;
	h[0] = 0;
	h[1] = 0;
	h[2] = (unsigned char)(type >> 8);
	h[3] = (unsigned char)type;
	h[4] = (unsigned char)(l >> 8);
	h[5] = (unsigned char)l;
	memcpy(h + 6, v, n);
	o->len += l;
}

static void put_u8(struct hep_out *o, uint16_t type, uint8_t v)
{
	put(o, type, &v, 1);
}

static void put_u16(struct hep_out *o, uint16_t type, uint16_t v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	put(o, type, b, 2);
}

static void put_u32(struct hep_out *o, uint16_t type, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
			       (unsigned char)v };
	put(o, type, b, 4);
}

/* The IP address bytes of a (network order, as in the sockaddr). */
static void put_ip(struct hep_out *o, bool v6, uint16_t type4, uint16_t type6, const struct tp_addr *a)
{
	if (v6) {
		if (a->ss.ss_family == AF_INET6) {
			put(o, type6, &a->ss.in6.sin6_addr, 16);
		} else {
			/* An IPv4 side of a hop whose other side is IPv6 cannot happen on one
			 * socket; an unknown side is written as :: rather than left out. */
			unsigned char z[16] = { 0 };
			put(o, type6, z, 16);
		}
	} else {
		if (a->ss.ss_family == AF_INET) {
			put(o, type4, &a->ss.in.sin_addr, 4);
		} else {
			unsigned char z[4] = { 0 };
			put(o, type4, z, 4);
		}
	}
}

size_t capture__hep_encode(const struct capture_msg *m, uint32_t agent, unsigned char *out, size_t cap)
{
	struct hep_out o = { .p = out, .cap = cap };
	if (cap < 6)
		return 0;
	memcpy(out, "HEP3", 4);
	o.len = 6;
	const struct tp_addr *src = m->out ? &m->local : &m->remote, *dst = m->out ? &m->remote : &m->local;
	bool v6 = src->ss.ss_family == AF_INET6 || dst->ss.ss_family == AF_INET6;
	put_u8(&o, HEP_FAMILY, v6 ? 10 : 2);
	put_u8(&o, HEP_IPPROTO, m->proto == TP_UDP ? 17 : 6);
	put_ip(&o, v6, HEP_SRC4, HEP_SRC6, src);
	put_ip(&o, v6, HEP_DST4, HEP_DST6, dst);
	put_u16(&o, HEP_SPORT, tp_addr_port(src));
	put_u16(&o, HEP_DPORT, tp_addr_port(dst));
	put_u32(&o, HEP_SEC, (uint32_t)(m->wall_ms / 1000));
	put_u32(&o, HEP_USEC, (uint32_t)(m->wall_ms % 1000) * 1000);
	put_u8(&o, HEP_PTYPE, 1);
	put_u32(&o, HEP_AGENT, agent);
	if (m->call_id.l)
		put(&o, HEP_CORR, m->call_id.p, m->call_id.l);
	put(&o, HEP_PAYLOAD, m->text.p, m->text.l);
	if (o.overflow || o.len > 0xffff)
		return 0;
	out[4] = (unsigned char)(o.len >> 8);
	out[5] = (unsigned char)o.len;
	return o.len;
}

int capture__hep_open(struct capture *c, const char *target, char *err, size_t errlen)
{
	struct tp_addr a;
	if (capture__hep_target(target, &a) < 0) {
		snprintf(err, errlen, "bad --hep '%s': expected udp:HOST:PORT", target);
		return -EINVAL;
	}
	int fd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "--hep %s: cannot open a socket: %s", target, strerror(e));
		return -e;
	}
	/* Connected: the kernel picks the source once, and send() needs no address. */
	if (connect(fd, &a.ss.sa, a.len) < 0) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "--hep %s: %s", target, strerror(e));
		return -e;
	}
	c->hep_fd = fd;
	return 0;
}

void capture__hep_send(struct capture *c, const struct capture_msg *m)
{
	unsigned char buf[65535];
	size_t n = capture__hep_encode(m, c->hep_id, buf, sizeof buf);
	/* A message too big for one HEP packet (near 64 KB) is counted as an error. */
	ssize_t w = n ? send(c->hep_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
	if (w == (ssize_t)n) {
		c->st.hep_sent++;
		return;
	}
	int e = n ? errno : EMSGSIZE;
	c->st.hep_errors++;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	log_limited(c->lg, &c->hep_lim, now, LOG_WARN, "hep", "cannot send a HEP packet: %s (%llu errors so far)",
		    strerror(e), (unsigned long long)c->st.hep_errors);
}
