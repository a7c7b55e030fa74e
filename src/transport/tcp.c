/* tcp.c: TCP, TLS and WebSocket listeners and connections on the event loop: accept, framing, write queues, limits, idle close. */
#include "transport/transport.h"
#include "transport/tp_int.h"

#include "core/khash.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define ADDR_BUCKETS 4096          /* connections by peer address (power of two) */
#define IP_BUCKETS 1024            /* per-source counts by IP address (power of two) */
#define ACCEPT_BATCH 64            /* accepts per wake-up before yielding */
#define READ_ROUNDS 4              /* reads per wake-up before yielding to other fds */
#define RBUF_MIN 4096              /* first size of a connection's own read buffer */
#define RBUF_MAX (TP_MAX_MSG + 64) /* a partial message is never held past this */
#define WQ_MAX (512 * 1024)        /* bytes waiting for a peer that does not read */
#define CONNECT_MS 10000           /* a connect not done by then fails */
#define LINGER_MS 2000             /* a closing connection reads (and drops) this long */
#define FD_RESERVE 64              /* descriptors kept for the database, DNS, logs */
#define ANSWER_MS 32000            /* a request sent this recently may still await its answer */
#define MAX_LOST 64                /* lost destinations told per loop turn */
#define HANDSHAKE_MS 10000         /* a TLS handshake not done by then fails */
#define UPGRADE_MS 10000           /* a WebSocket upgrade not done by then (after TLS) fails */
#define CIPHER_READ 16709          /* ciphertext taken per recv: a full TLS 1.3 record and then some */
#define TLS_ROUNDS 16              /* reads of plaintext TLS already holds, per wake-up */
#define GATHER_MAX (64 * 1024)     /* bytes gathered per connection while a read batch is handled */
#define GATHER_CONNS 64            /* connections gathering at once; more send as they go */

struct conn {
	uint64_t id; /* generation << 32 | fd: tp_source.conn_id */
	int fd;
	struct tp_listener *lis; /* accepted on it, or (outbound) sending through it */
	struct tp_addr peer;
	struct conn *anext;       /* next in its peer-address bucket */
	char *rbuf;               /* the start of a message not yet complete; NULL when none */
	size_t rlen, rcap;        /* bytes in rbuf, its size */
	struct tp_frame_state fs; /* framing of the message in rbuf */
	char *wbuf;               /* bytes the kernel did not take yet: [whead, wlen) */
	size_t whead, wlen, wcap; /* written up to, filled up to, size */
	struct timer idle;        /* closes it when silent (and not held) */
	uint64_t active_ms;       /* last byte in or out (loop clock) */
	uint64_t opened_ms;       /* accepted or dialled (loop clock) */
	uint64_t hold_ms;         /* kept open until then (a binding uses it) */
	uint64_t tx_ms;           /* last message queued on it; 0: none */
	bool outbound;            /* we opened it */
	bool connecting;          /* connect() not finished */
	bool closing;             /* framing stopped: closes once its queue is written */
	bool lingering;           /* queue written and FIN sent: waiting for the peer's */
	bool busy;                /* its event handler runs: freeing waits for the end */
	bool dead;                /* closed, to be freed */
	struct tls_conn *tls;     /* TLS state (tls.c); NULL on plain TCP */
	char *gb;                 /* plaintext gathered during a read batch (struct tcp.gather) */
	size_t gblen, gbcap;      /* bytes in gb, its size */
	bool gathered;            /* listed in tcp.gather */
	struct tp_ws *ws;         /* accepted on a ws: listener: its WebSocket (ws.c); else NULL */
};

struct ipcount {
	struct ipcount *next;
	union tp_sockaddr ip; /* port zeroed */
	unsigned n;           /* connections accepted from it and open */
};

struct tcp {
	struct conn **byfd; /* indexed by fd number */
	size_t nbyfd;
	uint32_t gen; /* connection generation: ids are never reused */
	struct khash hk;
	unsigned max_conns;
	struct conn *addr[ADDR_BUCKETS];
	struct ipcount *ips[IP_BUCKETS];
	char scratch[RBUF_MAX + 1]; /* reads of connections with nothing pending land here */
	char cipher[CIPHER_READ];   /* TLS ciphertext on its way to decryption */
	/* While the messages of one read are handled, what is sent on any connection gathers
	 * in that connection's gb and leaves in one send (one TLS write) per connection once
	 * they are all handled, instead of one per message: the answers to a pipelined batch,
	 * the requests a proxy forwards to one next hop (readable; UDP does the same with
	 * sendmmsg). */
	bool gathering;
	struct conn *gather[GATHER_CONNS];
	unsigned ngather;
	struct log_limit lim_refuse, lim_close;
	bool paused; /* listeners stopped after the process ran out of descriptors */
	/* Destinations found unreachable, told to tp->lost from a timer (never from inside a
	 * send, whose caller may be in the middle of starting a transaction). */
	struct tp_source lost[MAX_LOST];
	int lost_err[MAX_LOST];
	unsigned nlost;
	struct timer lost_timer;
};

static uint64_t now(const struct transport *tp)
{
	return loop_now(tp->loop);
}

/* ---- tables --------------------------------------------------------------------------- */

/* Keyed (core/khash.h): peers choose their addresses and ports, and an IPv6 peer has
 * plenty of both; unkeyed, it could fill one bucket and make every lookup walk it. */
static uint64_t hash_ip(const struct tcp *t, const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return khash(&t->hk, &a->ss.in6.sin6_addr, 16);
	return khash(&t->hk, &a->ss.in.sin_addr, 4);
}

static uint64_t hash_addr(const struct tcp *t, const struct tp_addr *a)
{
	unsigned char k[18];
	uint16_t port = tp_addr_port(a);
	size_t n = a->ss.ss_family == AF_INET6 ? 16 : 4;
	memcpy(k, a->ss.ss_family == AF_INET6 ? (const void *)&a->ss.in6.sin6_addr : (const void *)&a->ss.in.sin_addr,
	       n);
	memcpy(k + n, &port, sizeof port);
	return khash(&t->hk, k, n + sizeof port);
}

static struct conn *by_id(struct tcp *t, uint64_t id)
{
	size_t fd = (size_t)(id & 0xffffffffu);
	struct conn *c = fd < t->nbyfd ? t->byfd[fd] : NULL;
	return c && c->id == id && !c->dead ? c : NULL;
}

/* An open connection of proto to peer that can carry a new message (RFC 3261 §18.1.1:
 * reuse). */
static struct conn *by_addr(struct tcp *t, const struct tp_addr *peer, enum tp_proto proto)
{
	for (struct conn *c = t->addr[hash_addr(t, peer) & (ADDR_BUCKETS - 1)]; c; c = c->anext)
		if (!c->closing && !c->dead && c->lis->proto == proto && tp_addr_equal(&c->peer, peer))
			return c;
	return NULL;
}

static void addr_unlink(struct tcp *t, struct conn *c)
{
	struct conn **pp = &t->addr[hash_addr(t, &c->peer) & (ADDR_BUCKETS - 1)];
	while (*pp && *pp != c)
		pp = &(*pp)->anext;
	if (*pp)
		*pp = c->anext;
}

static struct ipcount **ip_slot(struct tcp *t, const struct tp_addr *a)
{
	struct ipcount **pp = &t->ips[hash_ip(t, a) & (IP_BUCKETS - 1)];
	while (*pp && !tp_addr_same_host(&(struct tp_addr){ .ss = (*pp)->ip }, a))
		pp = &(*pp)->next;
	return pp;
}

static unsigned ip_count(struct tcp *t, const struct tp_addr *a)
{
	struct ipcount *e = *ip_slot(t, a);
	return e ? e->n : 0;
}

/* Counts one more connection from a's IP; -ENOMEM when the count cannot be kept. */
static int ip_add(struct tcp *t, const struct tp_addr *a)
{
	struct ipcount **pp = ip_slot(t, a);
	if (!*pp) {
		struct ipcount *e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->ip = a->ss;
		*pp = e;
	}
	(*pp)->n++;
	return 0;
}

static void ip_del(struct tcp *t, const struct tp_addr *a)
{
	struct ipcount **pp = ip_slot(t, a), *e = *pp;
	if (e && --e->n == 0) {
		*pp = e->next;
		free(e);
	}
}

static int grow_byfd(struct tcp *t, int fd)
{
	if ((size_t)fd < t->nbyfd)
		return 0;
	size_t n = t->nbyfd ? t->nbyfd : 256;
	while (n <= (size_t)fd)
		n *= 2;
	struct conn **v = realloc(t->byfd, n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + t->nbyfd, 0, (n - t->nbyfd) * sizeof(*v));
	t->byfd = v;
	t->nbyfd = n;
	return 0;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void destroy(struct conn *c)
{
	tp__ws_free(c->ws);
	tp__tls_conn_free(c->tls);
	free(c->rbuf);
	free(c->wbuf);
	free(c);
}

static void listeners_resume(struct transport *tp);

static void tell_lost(void *arg)
{
	struct transport *tp = arg;
	struct tcp *t = tp->tcp;
	/* A handler may lose more connections meanwhile: take the list first. */
	while (t->nlost) {
		unsigned i = --t->nlost;
		struct tp_source dst = t->lost[i];
		if (tp->lost)
			tp->lost(&dst, t->lost_err[i], tp->arg);
	}
}

/* c failed with err (a refused connect, a reset, a peer gone): requests sent over it and
 * not answered yet will get no answer, so the layer above is told (tp_on_lost) instead of
 * letting them wait for their timeouts. Only a connection still connecting or used in the
 * last ANSWER_MS can have such requests. */
static void lost(struct transport *tp, struct conn *c, int err)
{
	struct tcp *t = tp->tcp;
	if (!tp->lost || !(c->connecting || (c->tx_ms && now(tp) - c->tx_ms < ANSWER_MS)) || t->nlost == MAX_LOST)
		return;
	t->lost[t->nlost] =
		(struct tp_source){ .proto = c->lis->proto, .lis = c->lis, .addr = c->peer, .conn_id = c->id };
	t->lost_err[t->nlost++] = err;
	if (!timer_pending(&t->lost_timer))
		timer_start(loop_timers(tp->loop), &t->lost_timer, 0, tell_lost, tp);
}

/* Takes c off the gathering list, dropping what it gathered. */
static void gather_drop(struct tcp *t, struct conn *c)
{
	if (!c->gathered)
		return;
	for (unsigned i = 0; i < t->ngather; i++)
		if (t->gather[i] == c) {
			t->gather[i] = t->gather[--t->ngather];
			break;
		}
	c->gathered = false;
	free(c->gb);
	c->gb = NULL;
	c->gblen = c->gbcap = 0;
}

/* Closes c at once (queued bytes are dropped) and logs why at debug; frees it unless its
 * handler is running (that handler frees it on the way out). */
static void conn_close(struct transport *tp, struct conn *c, const char *why)
{
	struct tcp *t = tp->tcp;
	if (c->dead)
		return;
	char a[80];
	log_debug(tp->lg, "tcp", "connection %llx %s %s closed: %s", (unsigned long long)c->id,
		  c->outbound ? "to" : "from", tp_addr_str(&c->peer, a, sizeof a), why);
	c->dead = true;
	gather_drop(t, c); /* what it gathered is dropped with its queue */
	timer_stop(loop_timers(tp->loop), &c->idle);
	loop_del_fd(tp->loop, c->fd);
	close(c->fd);
	t->byfd[c->fd] = NULL;
	addr_unlink(t, c);
	if (!c->outbound)
		ip_del(t, &c->peer);
	tp->stats.tcp_open--;
	tp->stats.open_by[c->lis->proto]--;
	tp->stats.tcp_closed++;
	if (t->paused)
		listeners_resume(tp);
	if (!c->busy)
		destroy(c);
}

/* Stops reading; c closes once what it has queued (say, a 400) is written. */
static void linger(struct transport *tp, struct conn *c);
static void idle_fire(void *arg);

static int gather_send(struct transport *tp, struct conn *c);

static void conn_close_after_write(struct transport *tp, struct conn *c, const char *why)
{
	/* What it gathered goes first: the queue must hold it before the FIN is decided on. */
	if (c->gathered) {
		gather_send(tp, c);
		if (c->dead)
			return;
		gather_drop(tp->tcp, c);
	}
	char a[80];
	log_debug(tp->lg, "tcp", "connection %llx from %s closing after its last answer: %s", (unsigned long long)c->id,
		  tp_addr_str(&c->peer, a, sizeof a), why);
	c->closing = true;
	c->active_ms = now(tp);
	timer_start(loop_timers(tp->loop), &c->idle, LINGER_MS, idle_fire, c);
	if (c->wlen == c->whead)
		linger(tp, c);
	else
		loop_mod_fd(tp->loop, c->fd, EPOLLOUT);
}

/* The queue of a closing connection is written: send FIN and read what the peer still
 * sends until it closes too (or LINGER_MS). Closing at once with unread bytes would send
 * an RST, which can destroy the answer before the peer reads it. */
static void linger(struct transport *tp, struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	loop_mod_fd(tp->loop, c->fd, EPOLLIN);
}

static void drain(struct transport *tp, struct conn *c)
{
	for (int round = 0; round < READ_ROUNDS; round++) {
		ssize_t n = recv(c->fd, tp->tcp->scratch, sizeof tp->tcp->scratch, MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EINTR))
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			conn_close(tp, c, "closed after its answer");
		return;
	}
}

/* Idle timer: closes a silent connection unless a binding holds it; a connect that has
 * not finished gets CONNECT_MS. A half-sent message does not count as traffic once it
 * stops arriving, so a peer that stalls mid-message is closed here too. */
static void idle_fire(void *arg)
{
	struct conn *c = arg;
	struct transport *tp = c->lis->tp;
	uint64_t n = now(tp);
	bool shaking = c->tls && !c->closing && !tp__tls_done(c->tls);
	/* Like a TLS handshake, an upgrade request that trickles in (or never comes) holds a
	 * descriptor: it gets UPGRADE_MS (after the handshake on WSS) however often bytes
	 * come, or the idle timeout when that is sooner. */
	bool upgrading = !shaking && c->ws && !c->closing && !tp__ws_upgraded(c->ws);
	uint64_t idle_at = c->active_ms + (uint64_t)tp->cfg.tcp_idle_timeout * 1000;
	uint64_t upgrade_at = c->opened_ms + UPGRADE_MS + (c->tls ? HANDSHAKE_MS : 0);
	if (upgrading && idle_at <= upgrade_at)
		upgrading = false; /* the idle timeout comes first: it says why */
	uint64_t deadline = c->connecting ? c->active_ms + CONNECT_MS
			    : c->closing  ? c->active_ms + LINGER_MS
			    : shaking     ? tp__tls_started(c->tls) + HANDSHAKE_MS
			    : upgrading   ? upgrade_at
					  : idle_at;
	if (!c->connecting && !c->closing && !shaking && !upgrading && c->hold_ms > deadline)
		deadline = c->hold_ms;
	if (n < deadline) {
		timer_start(loop_timers(tp->loop), &c->idle, deadline - n, idle_fire, c);
		return;
	}
	char why[96];
	if (c->closing)
		snprintf(why, sizeof why, "closed after its answer (the peer did not close within %d ms)", LINGER_MS);
	else if (c->connecting) {
		snprintf(why, sizeof why, "connect timed out after %u s", CONNECT_MS / 1000);
		lost(tp, c, -ETIMEDOUT);
	} else if (shaking) {
		/* A peer that never finishes its handshake holds a descriptor and TLS state. */
		snprintf(why, sizeof why, "TLS handshake not done after %u s", HANDSHAKE_MS / 1000);
		tp->stats.tls_timeouts++;
		lost(tp, c, -ETIMEDOUT);
	} else if (upgrading)
		snprintf(why, sizeof why, "WebSocket upgrade not done after %u s", UPGRADE_MS / 1000);
	else
		snprintf(why, sizeof why, "idle for %u s%s", tp->cfg.tcp_idle_timeout,
			 c->rlen ? " in the middle of a message" : "");
	conn_close(tp, c, why);
}

/* ---- writing ------------------------------------------------------------------------------ */

/* A send on c failed (errno): the transactions sent over it hear of it, and it closes.
 * Returns -errno. */
static int send_failed(struct transport *tp, struct conn *c)
{
	int err = -errno;
	char why[80];
	snprintf(why, sizeof why, "send: %s", strerror(-err));
	lost(tp, c, err);
	conn_close(tp, c, why);
	return err;
}

/* Writes what the kernel takes of c's queue; returns 0, or -errno after closing c. */
static int flush(struct transport *tp, struct conn *c)
{
	while (c->whead < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->whead, c->wlen - c->whead, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return send_failed(tp, c);
		}
		c->whead += (size_t)n;
		c->active_ms = now(tp);
	}
	/* The queue is only used when the kernel's buffer was full: give it back. */
	free(c->wbuf);
	c->wbuf = NULL;
	c->whead = c->wlen = c->wcap = 0;
	if (c->closing)
		linger(tp, c);
	else
		loop_mod_fd(tp->loop, c->fd, EPOLLIN);
	return 0;
}

/* Queues buf (bytes as they go on the wire) on c, writing at once what the kernel takes.
 * The queue is bounded: a peer that does not read gets closed rather than held in memory. */
static int raw_write(struct transport *tp, struct conn *c, const char *buf, size_t len)
{
	size_t pending = c->wlen - c->whead;
	c->tx_ms = now(tp);
	if (pending == 0 && !c->connecting) {
		for (;;) {
			ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n >= 0) {
				c->active_ms = now(tp);
				buf += n;
				len -= (size_t)n;
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return send_failed(tp, c);
		}
		if (len == 0)
			return 0;
	}
	if (pending + len > WQ_MAX) {
		char why[96];
		snprintf(why, sizeof why, "the peer does not read (%zu bytes waiting, at most %d)", pending + len,
			 WQ_MAX);
		lost(tp, c, -ENOBUFS);
		conn_close(tp, c, why);
		return -ENOBUFS;
	}
	if (c->whead && c->wlen + len > c->wcap) {
		memmove(c->wbuf, c->wbuf + c->whead, pending);
		c->whead = 0;
		c->wlen = pending;
	}
	if (c->wlen + len > c->wcap) {
		size_t cap = c->wcap ? c->wcap : 4096;
		while (cap < c->wlen + len)
			cap *= 2;
		char *b = realloc(c->wbuf, cap);
		if (!b) {
			conn_close(tp, c, "out of memory for its write queue");
			return -ENOMEM;
		}
		c->wbuf = b;
		c->wcap = cap;
	}
	memcpy(c->wbuf + c->wlen, buf, len);
	c->wlen += len;
	c->tx_ms = now(tp);
	if (pending == 0 && !c->connecting)
		loop_mod_fd(tp->loop, c->fd, c->closing ? EPOLLOUT : EPOLLIN | EPOLLOUT);
	return 0;
}

/* Queues what TLS made on c (handshake records, alerts, encrypted messages). Returns 0,
 * or -errno after closing c. */
static int tls_flush(struct transport *tp, struct conn *c)
{
	const char *p;
	size_t n = tp__tls_out(c->tls, &p);
	if (n == 0)
		return 0;
	int err = raw_write(tp, c, p, n);
	if (err == 0) /* else c is closed, maybe freed with its TLS state */
		tp__tls_out_done(c->tls);
	return err;
}

/* Sends plaintext buf on c now: as it is, or on TLS encrypted (or kept until the handshake
 * ends); the ciphertext goes through the same bounded queue. */
static int send_now(struct transport *tp, struct conn *c, const char *buf, size_t len)
{
	if (!c->tls)
		return raw_write(tp, c, buf, len);
	c->tx_ms = now(tp);
	int err = tp__tls_put(c->tls, buf, len);
	if (err) {
		lost(tp, c, err);
		conn_close(tp, c, tp__tls_error(c->tls));
		return err;
	}
	return tls_flush(tp, c);
}

/* Sends what c gathered (it stays listed); 0, or -errno after closing c. */
static int gather_send(struct transport *tp, struct conn *c)
{
	char *b = c->gb;
	size_t n = c->gblen;
	c->gb = NULL; /* detached: closing c meanwhile does not free it under send_now */
	c->gblen = c->gbcap = 0;
	int err = n ? send_now(tp, c, b, n) : 0;
	free(b);
	return err;
}

/* The end of a read batch: every connection sends what it gathered. */
static void gather_end(struct transport *tp)
{
	struct tcp *t = tp->tcp;
	t->gathering = false;
	while (t->ngather) {
		struct conn *c = t->gather[--t->ngather]; /* a closed one left the list */
		c->gathered = false;
		gather_send(tp, c);
	}
}

/* Sends plaintext buf on c, or gathers it while a read batch is handled (in order, after
 * what c gathered before). Returns 0, or -errno after closing c. */
static int conn_write(struct transport *tp, struct conn *c, const char *buf, size_t len)
{
	struct tcp *t = tp->tcp;
	if (!t->gathering || (!c->gathered && t->ngather == GATHER_CONNS))
		return send_now(tp, c, buf, len); /* nothing of c waits: order holds */
	if (!c->gathered) {
		t->gather[t->ngather++] = c;
		c->gathered = true;
	}
	if (c->gblen + len > GATHER_MAX) {
		int err = gather_send(tp, c);
		if (err || len > GATHER_MAX)
			return err ? err : send_now(tp, c, buf, len);
	}
	if (c->gblen + len > c->gbcap) {
		size_t cap = c->gbcap ? c->gbcap : 4096;
		while (cap < c->gblen + len)
			cap *= 2;
		char *b = realloc(c->gb, cap);
		if (!b) { /* no room to gather: what waits goes, then this */
			int err = gather_send(tp, c);
			return err ? err : send_now(tp, c, buf, len);
		}
		c->gb = b;
		c->gbcap = cap;
	}
	memcpy(c->gb + c->gblen, buf, len);
	c->gblen += len;
	c->tx_ms = now(tp);
	return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Hands one framed message up. The byte after it is set to NUL for the parser and put
 * back, since it may be the start of the next message. */
static void deliver(struct transport *tp, struct conn *c, char *p, size_t n)
{
	char save = p[n];
	p[n] = '\0';
	struct tp_source src = { .proto = c->lis->proto, .lis = c->lis, .addr = c->peer, .conn_id = c->id };
	tp->stats.rx_msgs++;
	tp->stats.rx_bytes += n;
	tp->recv(&src, p, n, tp->arg);
	p[n] = save;
}

/* Frames and delivers the messages in buf (len bytes, one spare byte after them); returns
 * how many bytes were used. Stops early when c closes. */
static size_t frame_all(struct transport *tp, struct conn *c, char *buf, size_t len)
{
	if (c->ws)
		return tp__ws_input(c->ws, buf, len); /* a WebSocket frames by itself */
	size_t pos = 0;
	while (!c->dead && !c->closing) {
		size_t skip, n;
		enum tp_frame f = tp_frame(buf + pos, len - pos, TP_MAX_MSG, &c->fs, &skip, &n);
		char a[80];
		switch (f) {
		case TP_FRAME_MORE:
			return pos + skip;
		case TP_FRAME_PING:
			pos += skip;
			conn_write(tp, c, "\r\n", 2);
			continue;
		case TP_FRAME_MSG:
			deliver(tp, c, buf + pos + skip, n);
			pos += skip + n;
			continue;
		case TP_FRAME_NO_LENGTH:
		case TP_FRAME_BAD_LENGTH:
			/* The parser answers the headers 400 (RFC 3261 §18.3); what follows them
			 * cannot be framed, so the connection ends with that answer. */
			deliver(tp, c, buf + pos + skip, n);
			if (!c->dead)
				conn_close_after_write(tp, c,
						       f == TP_FRAME_NO_LENGTH ? "message without Content-Length"
									       : "bad Content-Length");
			return len;
		case TP_FRAME_TOO_BIG:
			/* With its headers complete, the parser answers 513; the body is not read. */
			if (n && n <= TP_MAX_MSG)
				deliver(tp, c, buf + pos + skip, n);
			log_limited(tp->lg, &tp->tcp->lim_close, now(tp), LOG_WARN, "tcp",
				    "connection from %s closed: message over %d bytes",
				    tp_addr_str(&c->peer, a, sizeof a), TP_MAX_MSG);
			if (!c->dead)
				conn_close_after_write(tp, c, "message too large");
			return len;
		}
	}
	return len;
}

/* Keeps the unframed rest (n bytes at p) in c's own buffer. */
static int keep_rest(struct conn *c, const char *p, size_t n)
{
	if (n + 1 > c->rcap) {
		size_t cap = c->rcap ? c->rcap : RBUF_MIN;
		while (cap < n + 1)
			cap *= 2;
		if (cap > RBUF_MAX + 1)
			cap = RBUF_MAX + 1;
		char *b = realloc(c->rbuf, cap);
		if (!b)
			return -ENOMEM;
		c->rbuf = b;
		c->rcap = cap;
	}
	memmove(c->rbuf, p, n);
	c->rlen = n;
	return 0;
}

/* Reads plaintext into buf (room bytes) as recv does: straight from the socket, or on TLS
 * ciphertext from it through decryption (which also advances the handshake). Returns the
 * count, 0 at the end of the stream, or -1 with errno (EAGAIN: nothing yet); on a TLS
 * failure c is closed or closing (its alert queued) when it returns. */
static ssize_t conn_recv(struct transport *tp, struct conn *c, char *buf, size_t room)
{
	if (!c->tls)
		return recv(c->fd, buf, room, MSG_DONTWAIT);
	size_t got = 0;
	for (;;) {
		size_t n;
		enum tp_tls_rd r = tp__tls_read(c->tls, buf + got, room - got, &n);
		got += n;
		if (tls_flush(tp, c) != 0)
			return -1;
		if (r == TLS_RD_FAIL) {
			lost(tp, c, -EPROTO);
			conn_close_after_write(tp, c, tp__tls_error(c->tls));
			return -1;
		}
		if (r == TLS_RD_EOF || r == TLS_RD_FULL)
			return (ssize_t)got;
		ssize_t k = recv(c->fd, tp->tcp->cipher, sizeof tp->tcp->cipher, MSG_DONTWAIT);
		if (k > 0) {
			c->active_ms = now(tp);
			if (tp__tls_in(c->tls, tp->tcp->cipher, (size_t)k) == 0)
				continue;
			errno = ENOMEM;
			return -1;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (got || k == 0)
			return (ssize_t)got;
		return -1;
	}
}

static void readable(struct transport *tp, struct conn *c)
{
	struct tcp *t = tp->tcp;
	for (int round = 0; round < READ_ROUNDS && !c->dead && !c->closing; round++) {
		char *buf;
		size_t room, have;
		if (c->rlen == 0) {
			/* Nothing pending: read into the shared buffer, so that a connection
			 * between messages holds no buffer of its own. */
			buf = t->scratch;
			have = 0;
			room = RBUF_MAX;
		} else {
			/* Room for a good read; the cap keeps a partial message within RBUF_MAX. */
			if (c->rcap - 1 - c->rlen < RBUF_MIN && c->rcap < RBUF_MAX + 1) {
				size_t cap = c->rcap * 2 > RBUF_MAX + 1 ? RBUF_MAX + 1 : c->rcap * 2;
				char *b = realloc(c->rbuf, cap);
				if (!b) {
					conn_close(tp, c, "out of memory for its read buffer");
					return;
				}
				c->rbuf = b;
				c->rcap = cap;
			}
			buf = c->rbuf;
			have = c->rlen;
			room = c->rcap - 1 - c->rlen;
		}
		ssize_t n = room ? conn_recv(tp, c, buf + have, room) : 0;
		if (n < 0) {
			if (c->dead || c->closing)
				return;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				char why[80];
				snprintf(why, sizeof why, "recv: %s", strerror(errno));
				lost(tp, c, -errno);
				conn_close(tp, c, why);
			}
			return;
		}
		if (n == 0) {
			/* room is never 0: the framer reports TOO_BIG before the buffer fills. */
			lost(tp, c, -ECONNRESET);
			conn_close(tp, c,
				   c->rlen ? "closed by the peer in the middle of a message" : "closed by the peer");
			return;
		}
		c->active_ms = now(tp);
		size_t len = have + (size_t)n;
		t->gathering = true;
		size_t used = frame_all(tp, c, buf, len);
		gather_end(tp); /* may close c */
		if (c->dead || c->closing)
			return;
		if (used == len) {
			c->rlen = 0;
			if (c->rcap > RBUF_MIN) {
				/* A big message went through: give its buffer back. */
				free(c->rbuf);
				c->rbuf = NULL;
				c->rcap = 0;
			}
		} else if (keep_rest(c, buf + used, len - used) != 0) {
			conn_close(tp, c, "out of memory for its read buffer");
			return;
		}
		if ((size_t)n < room) {
			/* Drained while traffic flows: as for datagrams (udp.c), the loop may nap
			 * a little (--batch-wait) so that the next messages of this and the other
			 * connections arrive together: one wake-up, one read and one send for many. */
			loop_coalesce(tp->loop);
			return;
		}
	}
}

static void conn_event(int fd, uint32_t events, void *arg)
{
	(void)fd;
	struct conn *c = arg;
	struct transport *tp = c->lis->tp;
	c->busy = true;
	if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int e = 0;
		socklen_t el = sizeof e;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
			e = errno;
		if (e) {
			char why[96];
			snprintf(why, sizeof why, "connect failed: %s", strerror(e));
			lost(tp, c, -e);
			conn_close(tp, c, why);
		} else {
			c->connecting = false;
			c->active_ms = now(tp);
			char a[80];
			log_debug(tp->lg, "tcp", "connection %llx to %s established", (unsigned long long)c->id,
				  tp_addr_str(&c->peer, a, sizeof a));
		}
	}
	if (!c->dead && !c->connecting && !c->lingering && (events & EPOLLOUT))
		flush(tp, c);
	if (!c->dead && c->lingering && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		drain(tp, c);
	else if (!c->dead && c->closing && !c->lingering && (events & (EPOLLHUP | EPOLLERR)))
		conn_close(tp, c, "the peer went away before its answer was written");
	if (!c->dead && !c->closing && !c->connecting && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		readable(tp, c);
	/* Decrypted bytes TLS still holds would wait for a socket event that may never come. */
	for (int k = 0; k < TLS_ROUNDS && c->tls && !c->dead && !c->closing && tp__tls_more(c->tls); k++)
		readable(tp, c);
	c->busy = false;
	if (c->dead)
		destroy(c);
}

/* ---- WebSocket hooks (ws.c reaches its connection through these) --------------------------- */

static int ws_write(void *arg, const char *buf, size_t len)
{
	struct conn *c = arg;
	return c->dead ? -ENOTCONN : conn_write(c->lis->tp, c, buf, len);
}

static void ws_deliver(void *arg, char *buf, size_t len)
{
	struct conn *c = arg;
	if (!c->dead)
		deliver(c->lis->tp, c, buf, len);
}

static void ws_close(void *arg, const char *why, bool warn)
{
	struct conn *c = arg;
	struct transport *tp = c->lis->tp;
	char a[80];
	if (c->dead || c->closing)
		return;
	if (warn)
		log_limited(tp->lg, &tp->tcp->lim_close, now(tp), LOG_WARN, "ws", "connection from %s closed: %s",
			    tp_addr_str(&c->peer, a, sizeof a), why);
	conn_close_after_write(tp, c, why);
}

static const struct tp_ws_io ws_io = { .write = ws_write, .deliver = ws_deliver, .close = ws_close };

/* ---- connections ---------------------------------------------------------------------------- */

static int conn_new(struct transport *tp, int fd, struct tp_listener *lis, const struct tp_addr *peer, bool outbound,
		    bool connecting, struct conn **out)
{
	struct tcp *t = tp->tcp;
	int one = 1;
	/* SIP messages are small and each one is waited for: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (grow_byfd(t, fd))
		return -ENOMEM;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (!outbound && ip_add(t, peer)) {
		free(c);
		return -ENOMEM;
	}
	c->fd = fd;
	c->id = (uint64_t)++t->gen << 32 | (uint32_t)fd;
	c->lis = lis;
	c->peer = *peer;
	c->outbound = outbound;
	c->connecting = connecting;
	c->active_ms = c->opened_ms = now(tp);
	char a[80];
	if ((lis->proto == TP_WS || lis->proto == TP_WSS) &&
	    tp__ws_new(&c->ws, &ws_io, c, tp->lg, tp_addr_str(peer, a, sizeof a))) {
		if (!outbound)
			ip_del(t, peer);
		free(c);
		return -ENOMEM;
	}
	int err = lis->proto == TP_TLS || lis->proto == TP_WSS
			  ? tp__tls_conn_new(tp, outbound, c->id, &c->peer, &c->tls)
			  : 0;
	if (!err)
		err = loop_add_fd(tp->loop, fd, connecting ? EPOLLOUT : EPOLLIN, conn_event, c);
	if (err) {
		if (!outbound)
			ip_del(t, peer);
		tp__tls_conn_free(c->tls);
		tp__ws_free(c->ws);
		free(c);
		return err;
	}
	t->byfd[fd] = c;
	size_t b = hash_addr(t, peer) & (ADDR_BUCKETS - 1);
	c->anext = t->addr[b];
	t->addr[b] = c;
	tp->stats.tcp_open++;
	tp->stats.open_by[lis->proto]++;
	timer_start(loop_timers(tp->loop), &c->idle,
		    connecting ? CONNECT_MS
		    : c->tls   ? HANDSHAKE_MS
		    : c->ws && UPGRADE_MS < (uint64_t)tp->cfg.tcp_idle_timeout * 1000
			    ? UPGRADE_MS
			    : (uint64_t)tp->cfg.tcp_idle_timeout * 1000,
		    idle_fire, c);
	*out = c;
	return 0;
}

/* Opens a connection to 'to' through listener lis (its address family). */
static int dial(struct transport *tp, struct tp_listener *lis, const struct tp_addr *to, struct conn **out)
{
	struct tcp *t = tp->tcp;
	char a[80];
	if (tp->stats.tcp_open >= t->max_conns) {
		log_limited(tp->lg, &t->lim_refuse, now(tp), LOG_WARN, "tcp",
			    "no connection to %s: %u connections open, the limit (tcp-max-connections)",
			    tp_addr_str(to, a, sizeof a), tp->stats.tcp_open);
		return -EMFILE;
	}
	int fd = socket(to->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	bool connecting = false;
	if (connect(fd, &to->ss.sa, to->len) != 0) {
		if (errno != EINPROGRESS) {
			int err = -errno;
			log_debug(tp->lg, "tcp", "connection to %s failed: %s", tp_addr_str(to, a, sizeof a),
				  strerror(errno));
			close(fd);
			return err;
		}
		connecting = true;
	}
	int err = conn_new(tp, fd, lis, to, true, connecting, out);
	if (err) {
		close(fd);
		return err;
	}
	tp->stats.tcp_dialed++;
	log_debug(tp->lg, "tcp", "connection %llx to %s opened%s", (unsigned long long)(*out)->id,
		  tp_addr_str(to, a, sizeof a), connecting ? ", connecting" : "");
	/* A TLS client's ClientHello is ready: queued now, sent once connected. */
	return (*out)->tls ? tls_flush(tp, *out) : 0;
}

static int tcp_send(struct tp_listener *lis, const struct tp_addr *to, uint64_t conn_id, const char *buf, size_t len)
{
	struct transport *tp = lis->tp;
	struct tcp *t = tp->tcp;
	struct conn *c;
	if (conn_id) {
		/* The connection the peer chose (a response, a phone reached over its own
		 * connection): another one would not reach it, so none is opened. */
		c = by_id(t, conn_id);
		if (!c || c->closing)
			return -ENOTCONN;
	} else if (!(c = by_addr(t, to, lis->proto))) {
		/* A browser cannot be dialled: a WebSocket is reached over its own connection. */
		int err = lis->proto == TP_WS || lis->proto == TP_WSS ? -ENOTCONN : dial(tp, lis, to, &c);
		if (err)
			return err;
	}
	if (!c->ws)
		return conn_write(tp, c, buf, len);
	/* A failed write inside closes c: it is freed here, after ws.c is done with it. */
	bool was = c->busy;
	c->busy = true;
	int err = tp__ws_send(c->ws, buf, len);
	c->busy = was;
	if (!was && c->dead)
		destroy(c);
	return err;
}

bool tp_conn_alive(const struct transport *tp, uint64_t conn_id)
{
	const struct conn *c = tp->tcp ? by_id(tp->tcp, conn_id) : NULL;
	return c && !c->closing;
}

bool tp_ws_find(struct transport *tp, const struct tp_addr *peer, struct tp_source *out)
{
	struct conn *c = NULL;
	if (tp->tcp && !(c = by_addr(tp->tcp, peer, TP_WS)))
		c = by_addr(tp->tcp, peer, TP_WSS);
	if (!c)
		return false;
	*out = (struct tp_source){ .proto = c->lis->proto, .lis = c->lis, .addr = c->peer, .conn_id = c->id };
	return true;
}

void tp_conn_hold(struct transport *tp, uint64_t conn_id, uint32_t seconds)
{
	struct conn *c = tp->tcp ? by_id(tp->tcp, conn_id) : NULL;
	if (!c)
		return;
	uint64_t until = now(tp) + (uint64_t)seconds * 1000;
	if (until > c->hold_ms)
		c->hold_ms = until;
}

/* ---- listeners ------------------------------------------------------------------------------- */

static void accept_ready(int fd, uint32_t events, void *arg);

static void listeners_pause(struct transport *tp)
{
	for (unsigned i = 0; i < tp->nlis; i++)
		if (tp->lis[i]->ops->send == tcp_send)
			loop_mod_fd(tp->loop, tp->lis[i]->fd, 0);
	tp->tcp->paused = true;
}

static void listeners_resume(struct transport *tp)
{
	for (unsigned i = 0; i < tp->nlis; i++)
		if (tp->lis[i]->ops->send == tcp_send)
			loop_mod_fd(tp->loop, tp->lis[i]->fd, EPOLLIN);
	tp->tcp->paused = false;
}

static void refuse(struct transport *tp, const struct tp_listener *lis, int fd, const struct tp_addr *peer,
		   const char *why, unsigned n, const char *key)
{
	char a[80];
	close(fd);
	tp->stats.tcp_refused++;
	tp->stats.refused_by[lis->proto]++;
	log_limited(tp->lg, &tp->tcp->lim_refuse, now(tp), LOG_WARN, "tcp",
		    "connection from %s refused: %u %s, the limit (%s); %llu refused since start",
		    tp_addr_str(peer, a, sizeof a), n, why, key, (unsigned long long)tp->stats.tcp_refused);
}

static void accept_ready(int fd, uint32_t events, void *arg)
{
	(void)events;
	struct tp_listener *lis = arg;
	struct transport *tp = lis->tp;
	struct tcp *t = tp->tcp;
	for (int k = 0; k < ACCEPT_BATCH; k++) {
		struct tp_addr peer;
		socklen_t sl = sizeof(peer.ss);
		int cfd = accept4(fd, &peer.ss.sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				/* Level-triggered epoll would call again at once: stop accepting
				 * until a connection closes. */
				log_limited(tp->lg, &t->lim_refuse, now(tp), LOG_WARN, "tcp",
					    "cannot accept TCP connections: %s (%u open); waiting for one to close",
					    strerror(errno), tp->stats.tcp_open);
				listeners_pause(tp);
			}
			return;
		}
		peer.len = sl;
		unsigned n;
		if (tp->stats.tcp_open >= t->max_conns) {
			refuse(tp, lis, cfd, &peer, "connections open", tp->stats.tcp_open, "tcp-max-connections");
			continue;
		}
		if ((n = ip_count(t, &peer)) >= tp->cfg.tcp_max_per_source) {
			refuse(tp, lis, cfd, &peer, "connections from this address", n, "tcp-max-per-source");
			continue;
		}
		struct conn *c;
		if (conn_new(tp, cfd, lis, &peer, false, false, &c)) {
			refuse(tp, lis, cfd, &peer, "out of memory", tp->stats.tcp_open, "memory");
			continue;
		}
		tp->stats.tcp_accepted++;
		tp->stats.accepted_by[lis->proto]++;
		char a[80];
		log_debug(tp->lg, "tcp", "connection %llx from %s accepted on %s:%u (%u open)",
			  (unsigned long long)c->id, tp_addr_str(&peer, a, sizeof a), lis->host, lis->port,
			  tp->stats.tcp_open);
	}
}

static void tcp_close(struct tp_listener *lis)
{
	loop_del_fd(lis->tp->loop, lis->fd);
	close(lis->fd);
	free(lis);
}

static const struct tp_ops tcp_ops = {
	.proto = TP_TCP,
	.send = tcp_send,
	.close = tcp_close,
};

/* TLS connections are TCP connections with TLS state (conn.tls): same code, own proto. */
static const struct tp_ops tls_ops = {
	.proto = TP_TLS,
	.send = tcp_send,
	.close = tcp_close,
};

/* WebSocket connections are TCP connections whose bytes go through ws.c; WSS ones are
 * TLS connections whose plaintext does. */
static const struct tp_ops ws_ops = {
	.proto = TP_WS,
	.send = tcp_send,
	.close = tcp_close,
};
static const struct tp_ops wss_ops = {
	.proto = TP_WSS,
	.send = tcp_send,
	.close = tcp_close,
};

/* The connection limit, lowered to what the open-file limit leaves room for. */
static unsigned max_conns(struct transport *tp)
{
	unsigned m = tp->cfg.tcp_max_conns;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		unsigned fit = rl.rlim_cur > FD_RESERVE * 2 ? (unsigned)(rl.rlim_cur - FD_RESERVE) : FD_RESERVE;
		if (fit < m) {
			log_warn(tp->lg, "tcp",
				 "tcp-max-connections %u lowered to %u: the open-file limit is %llu (raise it with "
				 "ulimit -n or LimitNOFILE=)",
				 m, fit, (unsigned long long)rl.rlim_cur);
			m = fit;
		}
	}
	return m;
}

int tp__tcp_open(struct transport *tp, enum tp_proto proto, const char *uri, const struct tp_addr *bind_to, char *err,
		 size_t errlen)
{
	int one = 1, rc;
	if (!tp->tcp) {
		tp->tcp = calloc(1, sizeof(*tp->tcp));
		if (!tp->tcp) {
			snprintf(err, errlen, "cannot listen on %s: out of memory", uri);
			return -ENOMEM;
		}
		if (khash_init(&tp->tcp->hk) < 0) {
			free(tp->tcp);
			tp->tcp = NULL;
			snprintf(err, errlen, "cannot listen on %s: no random key for the connection tables", uri);
			return -EIO;
		}
		tp->tcp->max_conns = max_conns(tp);
	}
	int family = bind_to->ss.ss_family;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: socket: %s", uri, strerror(errno));
		return rc;
	}
	/* SO_REUSEADDR on TCP lets a restart bind while old connections sit in TIME_WAIT; it
	 * does not let two servers listen on one port (that still fails "in use"). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, &bind_to->ss.sa, bind_to->len) != 0 || listen(fd, 1024) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", uri, strerror(errno));
		goto fail;
	}
	const struct tp_ops *ops = proto == TP_TLS   ? &tls_ops
				   : proto == TP_WS  ? &ws_ops
				   : proto == TP_WSS ? &wss_ops
						     : &tcp_ops;
	return tp__listener_add(tp, fd, family, ops, accept_ready, uri, err, errlen);
fail:
	close(fd);
	return rc;
}

void tp__tcp_free(struct transport *tp)
{
	struct tcp *t = tp->tcp;
	if (!t)
		return;
	for (size_t i = 0; i < t->nbyfd; i++)
		if (t->byfd[i])
			conn_close(tp, t->byfd[i], "server stopping");
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (t->ips[i]) {
			struct ipcount *e = t->ips[i];
			t->ips[i] = e->next;
			free(e);
		}
	}
	timer_stop(loop_timers(tp->loop), &t->lost_timer);
	free(t->byfd);
	free(t);
	tp->tcp = NULL;
}
