/* udp.c: the transport object and its UDP listeners (recvmmsg in batches, sendto). */
#include "transport/transport.h"
#include "transport/tp_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the machine's addresses (none when getifaddrs fails: wildcard listeners are then
 * known by their own address only). */
static void local_addresses(struct transport *tp)
{
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) != 0)
		return;
	for (struct ifaddrs *i = ifa; i && tp->nlocal < 16; i = i->ifa_next) {
		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		struct tp_addr *a = &tp->local[tp->nlocal++];
		a->len = i->ifa_addr->sa_family == AF_INET ? sizeof a->ss.in : sizeof a->ss.in6;
		memcpy(&a->ss, i->ifa_addr, a->len);
	}
	freeifaddrs(ifa);
}

static struct str unbracket(struct str h)
{
	if (h.l > 2 && h.p[0] == '[' && h.p[h.l - 1] == ']')
		return (struct str){ h.p + 1, h.l - 2 };
	return h;
}

static bool wildcard(const struct tp_listener *l)
{
	if (l->local.ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&l->local.ss.in6.sin6_addr);
	return l->local.ss.in.sin_addr.s_addr == htonl(INADDR_ANY);
}

/* Whether listener l answers on host; a is host's numeric form, or NULL for a name. */
static bool listener_has(const struct transport *tp, const struct tp_listener *l, struct str host,
			 const struct tp_addr *a)
{
	if (str_caseeq(unbracket(host), unbracket(str_from_cstr(l->host))))
		return true;
	if (!a)
		return false;
	if (!wildcard(l))
		return tp_addr_same_host(a, &l->local);
	for (unsigned k = 0; k < tp->nlocal; k++)
		if (tp_addr_same_host(a, &tp->local[k]))
			return true;
	return false;
}

static bool is_me(const struct transport *tp, struct str host, bool any_port, uint16_t port)
{
	/* Most hosts asked about are not ours (a phone's Via, another domain): the port and
	 * the host as written rule them out before any address is parsed. */
	bool port_ok = false;
	for (unsigned i = 0; i < tp->nlis; i++) {
		const struct tp_listener *l = tp->lis[i];
		if (!any_port && l->port != port)
			continue;
		if (listener_has(tp, l, host, NULL))
			return true;
		port_ok = true;
	}
	struct tp_addr a;
	if (!port_ok || !host.l ||
	    !(host.p[0] == '[' || (host.p[0] >= '0' && host.p[0] <= '9') || str_chr(host, ':') >= 0) ||
	    tp_addr_from_host(&a, host, 0) != 0)
		return false;
	for (unsigned i = 0; i < tp->nlis; i++) {
		const struct tp_listener *l = tp->lis[i];
		if ((any_port || l->port == port) && listener_has(tp, l, host, &a))
			return true;
	}
	return false;
}

bool tp_has_host(const struct transport *tp, struct str host)
{
	return is_me(tp, host, true, 0);
}

bool tp_is_me(const struct transport *tp, struct str host, uint16_t port)
{
	return is_me(tp, host, false, port ? port : 5060);
}

int tp_new(struct transport **tpp, struct loop *loop, tp_recv_h *recv, void *arg)
{
	struct transport *tp = calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->buf = malloc((size_t)RX_BATCH * (RX_SIZE + 1));
	tp->txbuf = malloc(TX_BYTES);
	if (!tp->buf || !tp->txbuf) {
		free(tp->buf);
		free(tp->txbuf);
		free(tp);
		return -ENOMEM;
	}
	tp->loop = loop;
	tp->recv = recv;
	tp->arg = arg;
	local_addresses(tp);
	tp_cfg_defaults(&tp->cfg);
	*tpp = tp;
	return 0;
}

void tp_free(struct transport *tp)
{
	if (!tp)
		return;
	tp__tcp_free(tp);
	for (unsigned i = 0; i < tp->nlis; i++)
		tp->lis[i]->ops->close(tp->lis[i]);
	tp__tls_free(tp);
	free(tp->buf);
	free(tp->txbuf);
	free(tp);
}

void tp_configure(struct transport *tp, const struct tp_cfg *c, struct log *lg)
{
	tp->cfg = *c;
	tp->lg = lg;
}

void tp_on_lost(struct transport *tp, tp_lost_h *h)
{
	tp->lost = h;
}

void tp_on_stun(struct transport *tp, tp_admit_h *h)
{
	tp->stun_admit = h;
}

unsigned tp_listener_count(const struct transport *tp)
{
	return tp->nlis;
}

struct tp_listener *tp_listener_at(struct transport *tp, unsigned i)
{
	return i < tp->nlis ? tp->lis[i] : NULL;
}

const struct tp_stats *tp_stats(const struct transport *tp)
{
	return &tp->stats;
}

int tp_send(struct tp_listener *lis, const struct tp_addr *to, uint64_t conn_id, const char *buf, size_t len)
{
	int err = lis->ops->send(lis, to, conn_id, buf, len);
	if (err) {
		lis->tp->stats.tx_errors++;
		return err;
	}
	lis->tp->stats.tx_msgs++;
	lis->tp->stats.tx_bytes += len;
	return 0;
}

static bool is_loopback(const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	if (a->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
	return false;
}

struct tp_listener *tp_pick(struct transport *tp, enum tp_proto proto, const struct tp_addr *to,
			    struct tp_listener *hint)
{
	struct tp_listener *best = NULL;
	int best_score = -1;
	bool to_lo = is_loopback(to);
	for (unsigned i = 0; i < tp->nlis; i++) {
		struct tp_listener *l = tp->lis[i];
		if (l->proto != proto || l->local.ss.ss_family != to->ss.ss_family)
			continue;
		/* The hint (where the request came in) wins; next, a socket whose loopback-ness
		 * matches the destination, since a loopback source cannot reach other hosts. */
		int score = (l == hint ? 4 : 0) + (is_loopback(&l->local) == to_lo ? 2 : 0);
		if (score > best_score) {
			best = l;
			best_score = score;
		}
	}
	return best;
}

/* ---- UDP ------------------------------------------------------------------------------ */

/* Sends the queued datagrams, one sendmmsg per run of the same socket. Errors are
 * counted: as with sendto, a datagram the kernel refuses is lost and SIP retransmits. */
static void flush_tx(struct transport *tp)
{
	unsigned i = 0;
	while (i < tp->ntx) {
		unsigned j = i + 1;
		while (j < tp->ntx && tp->txlis[j] == tp->txlis[i])
			j++;
		unsigned k = i;
		while (k < j) {
			int n = sendmmsg(tp->txlis[i]->fd, &tp->txmsg[k], j - k, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				tp->stats.tx_errors++;
				k++; /* skip the one the kernel refused */
				continue;
			}
			k += (unsigned)n;
		}
		i = j;
	}
	tp->ntx = 0;
	tp->txused = 0;
}

static int udp_send(struct tp_listener *lis, const struct tp_addr *to, uint64_t conn_id, const char *buf, size_t len)
{
	struct transport *tp = lis->tp;
	if (tp->batching && len <= TX_BYTES) {
		if (tp->ntx == TX_BATCH || tp->txused + len > TX_BYTES)
			flush_tx(tp);
		unsigned i = tp->ntx++;
		char *dst = tp->txbuf + tp->txused;
		memcpy(dst, buf, len);
		tp->txused += len;
		tp->txto[i] = *to;
		tp->txlis[i] = lis;
		tp->txiov[i] = (struct iovec){ .iov_base = dst, .iov_len = len };
		tp->txmsg[i].msg_hdr = (struct msghdr){
			.msg_name = &tp->txto[i].ss,
			.msg_namelen = to->len,
			.msg_iov = &tp->txiov[i],
			.msg_iovlen = 1,
		};
		tp->txmsg[i].msg_len = 0;
		return 0;
	}
	for (;;) {
		ssize_t n = sendto(lis->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&to->ss,
				   to->len);
		if (n >= 0)
			return 0;
		/* A full socket buffer (EAGAIN) drops the datagram: UDP SIP retransmits, and
		 * blocking here would stall every other call. */
		if (errno != EINTR)
			return -errno;
	}
}

static void udp_close(struct tp_listener *lis)
{
	loop_del_fd(lis->tp->loop, lis->fd);
	close(lis->fd);
	free(lis);
}

static const struct tp_ops udp_ops = {
	.proto = TP_UDP,
	.send = udp_send,
	.close = udp_close,
};

/* A STUN keepalive (RFC 5626 §4.4.2): answered here, below SIP; malformed ones are
 * counted and dropped. */
static void stun(struct tp_listener *lis, const struct tp_source *src, const unsigned char *b, size_t len)
{
	struct transport *tp = lis->tp;
	unsigned char out[TP_STUN_MAX_RESP];
	/* The source's rate limit and bans hold for STUN as for SIP: its answer is larger than
	 * the request, and a spoofed source would make it land on someone else. */
	if (tp->stun_admit && !tp->stun_admit(&src->addr, tp->arg)) {
		tp->stats.stun_refused++;
		return;
	}
	int n = tp_stun_answer(b, len, &src->addr, out, sizeof out);
	if (n < 0) {
		tp->stats.stun_dropped++;
		if (tp->lg) {
			char from[80];
			log_debug(tp->lg, "drop", "a malformed STUN datagram of %zu bytes from %s", len,
				  tp_addr_str(&src->addr, from, sizeof from));
		}
		return;
	}
	tp->stats.stun_answered++;
	if (n > 0)
		tp_send(lis, &src->addr, 0, (const char *)out, (size_t)n);
}

/* Drains the socket in batches; level-triggered epoll calls again if datagrams remain
 * after RX_ROUNDS batches, which keeps one busy socket from starving the others. */
static void udp_readable(int fd, uint32_t events, void *arg)
{
	struct tp_listener *lis = arg;
	struct transport *tp = lis->tp;
	for (int round = 0; round < RX_ROUNDS; round++) {
		for (unsigned i = 0; i < RX_BATCH; i++) {
			tp->iov[i].iov_base = tp->buf + (size_t)i * (RX_SIZE + 1);
			tp->iov[i].iov_len = RX_SIZE;
			tp->msg[i].msg_hdr = (struct msghdr){
				.msg_name = &tp->from[i],
				.msg_namelen = sizeof(tp->from[i]),
				.msg_iov = &tp->iov[i],
				.msg_iovlen = 1,
			};
			tp->msg[i].msg_len = 0;
		}
		int n = recvmmsg(fd, tp->msg, RX_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return; /* EAGAIN: drained; other errors: nothing to deliver */
		tp->batching = true;
		for (int i = 0; i < n; i++) {
			struct mmsghdr *m = &tp->msg[i];
			if ((m->msg_hdr.msg_flags & MSG_TRUNC) || m->msg_hdr.msg_namelen > sizeof(union tp_sockaddr))
				continue;
			struct tp_source src = { .proto = TP_UDP, .lis = lis };
			memcpy(&src.addr.ss, &tp->from[i], m->msg_hdr.msg_namelen);
			src.addr.len = m->msg_hdr.msg_namelen;
			char *b = tp->iov[i].iov_base;
			/* The spare byte lets parsers rely on a terminator after the datagram. */
			b[m->msg_len] = '\0';
			tp->stats.rx_msgs++;
			tp->stats.rx_bytes += m->msg_len;
			if (tp_stun_classify((const unsigned char *)b, m->msg_len) == TP_STUN_YES)
				stun(lis, &src, (const unsigned char *)b, m->msg_len);
			else
				tp->recv(&src, b, m->msg_len, tp->arg);
		}
		tp->batching = false;
		flush_tx(tp);
		if (n < RX_BATCH) {
			loop_coalesce(tp->loop);
			return;
		}
	}
}

/* Our address as peers should write it (Via, Record-Route) when we are bound to the
 * wildcard: the first non-loopback address of the machine, else loopback. Operators who
 * care which address is used should --listen on an explicit one. */
static void wildcard_host(int family, char *buf, size_t n)
{
	struct ifaddrs *ifa = NULL;
	bool found = false;
	if (getifaddrs(&ifa) == 0) {
		for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next) {
			if (!i->ifa_addr || i->ifa_addr->sa_family != family || !(i->ifa_flags & IFF_UP) ||
			    (i->ifa_flags & IFF_LOOPBACK))
				continue;
			struct tp_addr a = { .len = 0 };
			memcpy(&a.ss, i->ifa_addr,
			       family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
			if (is_loopback(&a))
				continue;
			/* Link-local IPv6 needs a scope id that a Via cannot carry. */
			if (family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)&a.ss)->sin6_addr))
				continue;
			char h[INET6_ADDRSTRLEN];
			tp_addr_host(&a, h, sizeof(h));
			snprintf(buf, n, family == AF_INET6 ? "[%s]" : "%s", h);
			found = true;
		}
		freeifaddrs(ifa);
	}
	if (!found)
		snprintf(buf, n, "%s", family == AF_INET6 ? "[::1]" : "127.0.0.1");
}

static bool is_wildcard(const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

/* Asks for big kernel buffers so that bursts are not dropped: SO_RCVBUFFORCE passes
 * the sysctl limit when we have CAP_NET_ADMIN; otherwise SO_RCVBUF gets what the limit
 * (net.core.rmem_max) allows. */
static void big_buffers(int fd)
{
	int size = SOCK_BUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* Fills in the Via host of a new listener bound to lis->local. */
static void listener_host(struct tp_listener *lis, int family)
{
	lis->port = tp_addr_port(&lis->local);
	if (is_wildcard(&lis->local)) {
		wildcard_host(family, lis->host, sizeof(lis->host));
	} else {
		char h[INET6_ADDRSTRLEN];
		tp_addr_host(&lis->local, h, sizeof(h));
		snprintf(lis->host, sizeof(lis->host), family == AF_INET6 ? "[%s]" : "%s", h);
	}
}

int tp__listener_add(struct transport *tp, int fd, int family, const struct tp_ops *ops, loop_fd_h *ready,
		     const char *uri, char *err, size_t errlen)
{
	int rc;
	struct tp_listener *lis = calloc(1, sizeof(*lis));
	if (!lis) {
		rc = -ENOMEM;
		snprintf(err, errlen, "cannot listen on %s: out of memory", uri);
		goto fail;
	}
	lis->ops = ops;
	lis->proto = ops->proto;
	lis->fd = fd;
	lis->tp = tp;
	lis->local.len = sizeof(lis->local.ss);
	if (getsockname(fd, &lis->local.ss.sa, &lis->local.len) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: getsockname: %s", uri, strerror(errno));
		goto fail;
	}
	listener_host(lis, family);
	rc = loop_add_fd(tp->loop, fd, EPOLLIN, ready, lis);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s: epoll: %s", uri, strerror(-rc));
		goto fail;
	}
	tp->lis[tp->nlis++] = lis;
	return 0;
fail:
	free(lis);
	close(fd);
	return rc;
}

static int udp_open(struct transport *tp, const char *uri, const struct tp_addr *bind_to, char *err, size_t errlen)
{
	int one = 1, rc;
	int family = bind_to->ss.ss_family;
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: socket: %s", uri, strerror(errno));
		return rc;
	}
	/* No SO_REUSEADDR on UDP: it buys nothing there (no TIME_WAIT), and on Linux it would
	 * let a second server bind the same port silently instead of failing "in use". */
	/* A v6 socket serves v6 only; IPv4 gets its own listener, so each has a clear host. */
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	big_buffers(fd);
	if (bind(fd, (const struct sockaddr *)&bind_to->ss, bind_to->len) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", uri, strerror(errno));
		goto fail;
	}
	return tp__listener_add(tp, fd, family, &udp_ops, udp_readable, uri, err, errlen);
fail:
	close(fd);
	return rc;
}

int tp_listen(struct transport *tp, const char *uri, char *err, size_t errlen)
{
	struct tp_listen_spec l;
	char why[200];
	if (tp_listen_parse(uri, &l, why, sizeof(why))) {
		snprintf(err, errlen, "cannot listen on %s: %s", uri, why);
		return -EINVAL;
	}
	if (tp->nlis == TP_MAX_LISTENERS) {
		snprintf(err, errlen, "cannot listen on %s: too many listeners (at most %d)", uri, TP_MAX_LISTENERS);
		return -ENOSPC;
	}
	struct tp_addr a;
	if (tp_addr_from_host(&a, str_from_cstr(l.host), l.port)) {
		snprintf(err, errlen, "cannot listen on %s: bad address '%s'", uri, l.host);
		return -EINVAL;
	}
	if (!strcmp(l.scheme, "tls") || !strcmp(l.scheme, "wss")) {
		char msg[600];
		if (tp__tls_init(tp, msg, sizeof msg)) {
			snprintf(err, errlen, "cannot listen on %s: %s", uri, msg);
			return -EINVAL;
		}
		return tp__tcp_open(tp, l.scheme[0] == 't' ? TP_TLS : TP_WSS, uri, &a, err, errlen);
	}
	if (l.scheme[0] == 't')
		return tp__tcp_open(tp, TP_TCP, uri, &a, err, errlen);
	if (l.scheme[0] == 'w')
		return tp__tcp_open(tp, TP_WS, uri, &a, err, errlen);
	return udp_open(tp, uri, &a, err, errlen);
}
