/* route.c: RFC 3263 next-hop resolution: c-ares queries driven by the epoll loop and the timer wheel. */
#include "route/route.h"

#include <ares.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define DNS_CLASS_IN 1
#define DNS_TYPE_SRV 33
#define DNS_TYPE_NAPTR 35

#define DNS_TIMEOUT_MS 1000 /* per try: a SIP transaction (Timer B, 32 s) must not wait long */
#define DNS_TRIES 2
#define MAX_SRV_NAMES 4 /* SRV names from NAPTR (or the defaults) tried in turn */
#define MAX_SRV_READ 32 /* SRV records ordered before keeping ROUTE_MAX_TARGETS */
#define MAX_NAPTR_READ 16
#define CACHE_SLOTS 32
#define CACHE_MAX_TTL 300 /* s: bounds how long a changed zone keeps being ignored */
#define KEY_LEN 300

/* The SIP resolution services of RFC 3263 §4.1 and the transport each one means. */
struct svc {
	const char *naptr; /* NAPTR service field */
	const char *srv;   /* SRV name prefix */
	enum tp_proto proto;
	bool secure; /* usable for a sips URI */
};

static const struct svc svcs[] = {
	{ "SIP+D2U", "_sip._udp", TP_UDP, false },
	{ "SIP+D2T", "_sip._tcp", TP_TCP, false },
	{ "SIPS+D2T", "_sips._tcp", TP_TLS, true },
};

/* What a URI asks for once maddr, port and transport= are read. */
struct plan {
	char host[256]; /* lower case, without a trailing dot; IPv6 keeps brackets */
	uint16_t port;  /* 0: none given */
	int proto;      /* enum tp_proto from transport=, or -1 */
	bool sips;
};

struct cache_entry {
	char key[KEY_LEN]; /* "" when free */
	uint64_t expires;  /* loop ms */
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n;
};

struct query;

/* The address lookup of one SRV target (or of the host itself). */
struct slot {
	struct query *q;
	struct tp_addr a[ROUTE_MAX_TARGETS];
	unsigned n;
	int err; /* -errno when the lookup failed */
};

struct query {
	struct query *next, *prev; /* route's list of resolutions in flight */
	struct route *r;
	uint64_t id;
	route_h *cb; /* NULL once cancelled or answered */
	void *arg;
	struct plan p;
	char key[KEY_LEN]; /* cache key of p */
	struct {
		char name[256];
		enum tp_proto proto;
	} names[MAX_SRV_NAMES];
	unsigned nnames, iname; /* SRV names to try, and the one being tried */
	enum tp_proto proto;    /* transport of the targets being looked up */
	bool from_srv;          /* the hosts in srv[] came from SRV records */
	struct route_srv srv[ROUTE_MAX_TARGETS];
	struct slot slot[ROUTE_MAX_TARGETS];
	unsigned nsrv;
	unsigned pending; /* c-ares calls not called back yet */
	bool issuing;     /* still starting the parallel address lookups */
	uint32_t ttl;     /* least TTL seen, s */
};

struct route {
	struct loop *loop;
	struct route_cfg cfg;                     /* a copy: the peers' URIs below are views into it */
	struct sip_uri peer_uri[ROUTE_MAX_PEERS]; /* parsed at route_new and route_reload */
	ares_channel ch;
	bool lib_ok, chan_ok; /* what route_free must undo */
	bool closing;         /* route_free runs: callbacks only unwind */
	unsigned protos;      /* 1u << enum tp_proto we can send on */
	uint64_t next_id;
	uint64_t rng;     /* xorshift state for SRV weights */
	struct timer tmr; /* c-ares's next timeout */
	struct query *queries;
	struct cache_entry cache[CACHE_SLOTS];
	struct route_stats stats;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static uint16_t default_port(enum tp_proto p)
{
	return p == TP_TLS ? 5061 : 5060;
}

static bool can(const struct route *r, enum tp_proto p)
{
	return r->protos & (1u << p);
}

static uint32_t rnd(void *arg)
{
	uint64_t *s = arg;
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 32);
}

/* c-ares status to the errors route_h promises: "no such thing" is 404, the rest 503. */
static int ares_err(int st)
{
	switch (st) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
	case ARES_EBADNAME:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return -ECANCELED;
	default:
		return -EHOSTUNREACH;
	}
}

static bool not_found(int st)
{
	return ares_err(st) == -ENOENT;
}

/* Skips a possibly compressed DNS name; returns the offset after it or -1. */
static int skip_name(const unsigned char *b, int len, int off)
{
	while (off < len) {
		unsigned c = b[off];
		if (c == 0)
			return off + 1;
		if ((c & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : -1;
		off += 1 + (int)c;
	}
	return -1;
}

/* The least TTL among the answers of a reply, at most ttl. c-ares's SRV and NAPTR parsers
 * drop TTLs, and the cache must not keep a record longer than its zone allows. */
static uint32_t answer_ttl(const unsigned char *b, int len, uint32_t ttl)
{
	if (!b || len < 12)
		return ttl;
	unsigned qd = (unsigned)b[4] << 8 | b[5], an = (unsigned)b[6] << 8 | b[7];
	int off = 12;
	for (unsigned i = 0; i < qd; i++) {
		off = skip_name(b, len, off);
		if (off < 0)
			return ttl;
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		off = skip_name(b, len, off);
		if (off < 0 || off + 10 > len)
			return ttl;
		uint32_t t = (uint32_t)b[off + 4] << 24 | (uint32_t)b[off + 5] << 16 | (uint32_t)b[off + 6] << 8 |
			     b[off + 7];
		if (t < ttl)
			ttl = t;
		off += 10 + ((int)b[off + 8] << 8 | b[off + 9]);
	}
	return ttl;
}

/* ---- RFC 2782 ordering ---------------------------------------------------------------------- */

/* Moves s[j] to s[k] (k <= j), shifting the ones between up: the draw order RFC 2782 asks
 * for (zero weights first) must survive among the records not drawn yet. */
static void rotate(struct route_srv *s, unsigned k, unsigned j)
{
	if (j == k)
		return;
	struct route_srv tmp = s[j];
	memmove(&s[k + 1], &s[k], (j - k) * sizeof(*s));
	s[k] = tmp;
}

void route_srv_order(struct route_srv *s, unsigned n, route_rand_h *rand_fn, void *arg)
{
	/* Stable insertion sort by priority, zero weights first within a priority. */
	for (unsigned i = 1; i < n; i++) {
		unsigned j = i;
		while (j > 0 &&
		       (s[j - 1].prio > s[i].prio || (s[j - 1].prio == s[i].prio && s[j - 1].weight && !s[i].weight)))
			j--;
		rotate(s, j, i);
	}
	for (unsigned i = 0; i < n;) {
		unsigned end = i;
		while (end < n && s[end].prio == s[i].prio)
			end++;
		for (unsigned k = i; k + 1 < end; k++) {
			uint64_t total = 0, sum = 0;
			for (unsigned j = k; j < end; j++)
				total += s[j].weight;
			uint64_t pick = total ? rand_fn(arg) % (total + 1) : 0;
			unsigned j = k;
			for (; j + 1 < end; j++) {
				sum += s[j].weight;
				if (sum >= pick)
					break;
			}
			rotate(s, k, j);
		}
		i = end;
	}
}

/* ---- the cache -------------------------------------------------------------------------------- */

static void make_key(const struct plan *p, char *key)
{
	snprintf(key, KEY_LEN, "%d %d %u %s", p->sips, p->proto, p->port, p->host);
}

static bool cache_get(struct route *r, const char *key, struct route_target *t, unsigned *n)
{
	uint64_t now = loop_now(r->loop);
	for (unsigned i = 0; i < CACHE_SLOTS; i++) {
		struct cache_entry *e = &r->cache[i];
		if (e->key[0] && e->expires > now && strcmp(e->key, key) == 0) {
			memcpy(t, e->t, e->n * sizeof(*t));
			*n = e->n;
			return true;
		}
	}
	return false;
}

static void cache_put(struct route *r, const char *key, const struct route_target *t, unsigned n, uint32_t ttl)
{
	if (ttl == 0)
		return;
	uint64_t now = loop_now(r->loop);
	struct cache_entry *e = &r->cache[0];
	for (unsigned i = 0; i < CACHE_SLOTS; i++) {
		struct cache_entry *c = &r->cache[i];
		if (!c->key[0] || c->expires <= now || strcmp(c->key, key) == 0) {
			e = c;
			break;
		}
		if (c->expires < e->expires)
			e = c;
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->expires = now + (uint64_t)ttl * 1000;
	memcpy(e->t, t, n * sizeof(*t));
	e->n = n;
}

/* ---- what needs no DNS ------------------------------------------------------------------ */

/* Reads host, port and transport out of u. */
static int plan_uri(const struct route *r, const struct sip_uri *u, struct plan *p)
{
	if (u->scheme != SIP_SCHEME_SIP && u->scheme != SIP_SCHEME_SIPS)
		return -EINVAL;
	struct str h = u->maddr.l ? u->maddr : u->host;
	if (h.l && h.p[h.l - 1] == '.')
		h.l--;
	if (h.l == 0 || h.l >= sizeof(p->host))
		return -EINVAL;
	for (size_t i = 0; i < h.l; i++)
		p->host[i] = (char)tolower((unsigned char)h.p[i]);
	p->host[h.l] = '\0';
	p->port = u->port;
	p->sips = u->scheme == SIP_SCHEME_SIPS;
	p->proto = -1;
	if (u->transport.l) {
		/* RFC 3263 §4.1: transport=tcp on a sips URI means TLS. */
		if (str_caseeq_cstr(u->transport, "udp") && !p->sips)
			p->proto = TP_UDP;
		else if (str_caseeq_cstr(u->transport, "tcp"))
			p->proto = p->sips ? TP_TLS : TP_TCP;
		else if (str_caseeq_cstr(u->transport, "tls"))
			p->proto = TP_TLS;
		else
			return -EPROTONOSUPPORT;
	}
	enum tp_proto want = p->proto >= 0 ? (enum tp_proto)p->proto : p->sips ? TP_TLS : TP_UDP;
	return can(r, want) ? 0 : -EPROTONOSUPPORT;
}

static enum tp_proto plan_proto(const struct plan *p)
{
	return p->proto >= 0 ? (enum tp_proto)p->proto : p->sips ? TP_TLS : TP_UDP;
}

static bool numeric(const struct plan *p, struct route_target *t)
{
	enum tp_proto pr = plan_proto(p);
	uint16_t port = p->port ? p->port : default_port(pr);
	if (tp_addr_from_host(&t->addr, str_from_cstr(p->host), port) != 0)
		return false;
	t->proto = pr;
	/* Both are host buffers of the same size; no formatter on the per-request path. */
	size_t hl = strnlen(p->host, sizeof(t->host) - 1);
	memcpy(t->host, p->host, hl);
	t->host[hl] = '\0';
	return true;
}

/* Answers from the URI, the static peers or the cache; otherwise leaves in p what DNS must
 * resolve and returns -EWOULDBLOCK. */
static int immediate(struct route *r, const struct sip_uri *u, struct plan *p, struct route_target *t, unsigned *n)
{
	int err = plan_uri(r, u, p);
	if (err)
		return err;
	*n = 1;
	if (numeric(p, t))
		return 0;
	/* A maddr names the hop explicitly; only the host part is a domain to look up. */
	for (unsigned i = 0; !u->maddr.l && i < r->cfg.npeer; i++) {
		if (strcasecmp(p->host, r->cfg.peer[i].domain) != 0)
			continue;
		bool sips = p->sips;
		err = plan_uri(r, &r->peer_uri[i], p);
		if (err)
			return err;
		if (sips && !p->sips) {
			/* A sips: request goes to the peer over TLS whatever its URI says (RFC 3261
			 * §26.2.2); a peer configured for UDP cannot take it. */
			if (p->proto == TP_UDP || !can(r, TP_TLS))
				return -EPROTONOSUPPORT;
			p->sips = true;
			p->proto = TP_TLS;
		}
		if (numeric(p, t))
			return 0;
		break;
	}
	char key[KEY_LEN];
	make_key(p, key);
	if (cache_get(r, key, t, n)) {
		r->stats.cache_hits++;
		return 0;
	}
	*n = 0;
	return -EWOULDBLOCK;
}

int route_lookup(struct route *r, const struct sip_uri *uri, struct route_target *t, unsigned *n)
{
	struct plan p;
	*n = 0;
	return immediate(r, uri, &p, t, n);
}

/* ---- the event loop side of c-ares ------------------------------------------------------ */

static void process(struct route *r, int rfd, int wfd);

static void on_timeout(void *arg)
{
	process(arg, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

/* Arms the wheel for c-ares's next retransmission or timeout, or stops it when idle. */
static void rearm(struct route *r)
{
	struct timeval tv;
	struct timer_wheel *w = loop_timers(r->loop);
	if (r->closing || !ares_timeout(r->ch, NULL, &tv)) {
		timer_stop(w, &r->tmr);
		return;
	}
	uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
	timer_start(w, &r->tmr, ms, on_timeout, r);
}

static void process(struct route *r, int rfd, int wfd)
{
	ares_process_fd(r->ch, rfd, wfd);
	rearm(r);
}

static void on_fd(int fd, uint32_t events, void *arg)
{
	int rfd = events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? fd : ARES_SOCKET_BAD;
	int wfd = events & EPOLLOUT ? fd : ARES_SOCKET_BAD;
	process(arg, rfd, wfd);
}

/* c-ares tells which of its sockets want which events; (0, 0) before it closes one. */
static void on_sock(void *data, ares_socket_t fd, int readable, int writable)
{
	struct route *r = data;
	uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
	if (!ev) {
		loop_del_fd(r->loop, fd);
		return;
	}
	/* No table of our own fds: epoll knows whether this one is registered. A failed add
	 * leaves the query to c-ares's timeout, which reports it as a DNS failure. */
	if (loop_mod_fd(r->loop, fd, ev) == -ENOENT)
		(void)loop_add_fd(r->loop, fd, ev, on_fd, r);
}

/* ---- one resolution ---------------------------------------------------------------------- */

static void drop(struct query *q)
{
	struct route *r = q->r;
	if (q->prev)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	free(q);
}

/* Reports the result (unless cancelled) and frees q; no c-ares call of q is pending. */
static void finish(struct query *q, int err, const struct route_target *t, unsigned n)
{
	route_h *cb = q->cb;
	void *arg = q->arg;
	if (err)
		q->r->stats.failures++;
	drop(q);
	if (cb)
		cb(arg, err, t, n);
}

/* Whether q is no longer wanted; frees it once c-ares is done with it. */
static bool gone(struct query *q)
{
	if (!q->r->closing && q->cb)
		return false;
	if (q->pending == 0)
		drop(q);
	return true;
}

static void on_addr(void *arg, int status, int timeouts, struct ares_addrinfo *ai);

static void assemble(struct query *q)
{
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n = 0;
	bool timedout = false;
	for (unsigned i = 0; i < q->nsrv; i++) {
		struct slot *s = &q->slot[i];
		timedout |= s->err == -ETIMEDOUT;
		for (unsigned k = 0; k < s->n && n < ROUTE_MAX_TARGETS; k++, n++) {
			t[n].addr = s->a[k];
			t[n].proto = q->proto;
			snprintf(t[n].host, sizeof(t[n].host), "%s", q->srv[i].host);
		}
	}
	if (n) {
		cache_put(q->r, q->key, t, n, q->ttl);
		finish(q, 0, t, n);
	} else if (q->from_srv) {
		/* The domain exists and points somewhere that has no address: not a 404. */
		finish(q, timedout ? -ETIMEDOUT : -EHOSTUNREACH, NULL, 0);
	} else {
		finish(q, q->slot[0].err ? q->slot[0].err : -ENOENT, NULL, 0);
	}
}

/* Looks up the addresses of every srv[] host at once. */
static void lookup_addrs(struct query *q)
{
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC };
	q->issuing = true;
	for (unsigned i = 0; i < q->nsrv; i++) {
		q->slot[i] = (struct slot){ .q = q };
		q->pending++;
		ares_getaddrinfo(q->r->ch, q->srv[i].host, NULL, &hints, on_addr, &q->slot[i]);
	}
	q->issuing = false;
	if (q->pending == 0 && !gone(q))
		assemble(q);
}

/* The last step of RFC 3263 §4.2 when no SRV applies: the host itself. */
static void lookup_host(struct query *q, enum tp_proto proto)
{
	q->proto = proto;
	q->from_srv = false;
	q->nsrv = 1;
	q->srv[0] = (struct route_srv){ .port = q->p.port ? q->p.port : default_port(proto) };
	snprintf(q->srv[0].host, sizeof(q->srv[0].host), "%s", q->p.host);
	lookup_addrs(q);
}

static void on_addr(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct slot *s = arg;
	struct query *q = s->q;
	uint16_t port = q->srv[s - q->slot].port;
	q->pending--;
	s->err = ares_err(status);
	for (struct ares_addrinfo_node *nd = ai ? ai->nodes : NULL; nd && s->n < ROUTE_MAX_TARGETS; nd = nd->ai_next) {
		struct tp_addr *a = &s->a[s->n];
		if (nd->ai_addrlen > sizeof(a->ss))
			continue;
		memset(a, 0, sizeof(*a));
		memcpy(&a->ss, nd->ai_addr, nd->ai_addrlen);
		a->len = nd->ai_addrlen;
		if (nd->ai_family == AF_INET)
			((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
		else if (nd->ai_family == AF_INET6)
			((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
		else
			continue;
		if (nd->ai_ttl >= 0 && (uint32_t)nd->ai_ttl < q->ttl)
			q->ttl = (uint32_t)nd->ai_ttl;
		s->n++;
	}
	if (ai)
		ares_freeaddrinfo(ai);
	if (gone(q) || q->pending || q->issuing)
		return;
	assemble(q);
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* Queries the next SRV name, or falls back to the host when none is left. */
static void next_srv(struct query *q)
{
	if (q->iname >= q->nnames) {
		lookup_host(q, plan_proto(&q->p));
		return;
	}
	q->pending++;
	ares_query(q->r->ch, q->names[q->iname].name, DNS_CLASS_IN, DNS_TYPE_SRV, on_srv, q);
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;
	q->pending--;
	if (gone(q))
		return;
	struct ares_srv_reply *rep = NULL;
	if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(abuf, alen, &rep);
	if (not_found(status)) {
		q->iname++;
		next_srv(q);
		return;
	}
	if (status != ARES_SUCCESS) {
		finish(q, ares_err(status), NULL, 0);
		return;
	}
	q->ttl = answer_ttl(abuf, alen, q->ttl);
	struct route_srv s[MAX_SRV_READ];
	unsigned n = 0;
	bool refused = false; /* RFC 2782: target "." means no such service here */
	for (struct ares_srv_reply *x = rep; x && n < MAX_SRV_READ; x = x->next) {
		if (!x->host[0] || strcmp(x->host, ".") == 0) {
			refused = true;
			continue;
		}
		s[n] = (struct route_srv){ .prio = x->priority, .weight = x->weight, .port = x->port };
		snprintf(s[n].host, sizeof(s[n].host), "%s", x->host);
		n++;
	}
	ares_free_data(rep);
	if (n == 0) {
		if (refused) {
			finish(q, -ENOENT, NULL, 0);
		} else {
			q->iname++;
			next_srv(q);
		}
		return;
	}
	route_srv_order(s, n, rnd, &q->r->rng);
	q->nsrv = n < ROUTE_MAX_TARGETS ? n : ROUTE_MAX_TARGETS;
	memcpy(q->srv, s, q->nsrv * sizeof(*s));
	q->proto = q->names[q->iname].proto;
	q->from_srv = true;
	lookup_addrs(q);
}

static bool svc_usable(const struct route *r, const struct plan *p, const struct svc *v)
{
	return can(r, v->proto) && (!p->sips || v->secure) && (p->proto < 0 || (int)v->proto == p->proto);
}

static void add_name(struct query *q, const char *name, enum tp_proto proto)
{
	if (q->nnames == MAX_SRV_NAMES)
		return;
	snprintf(q->names[q->nnames].name, sizeof(q->names[0].name), "%s", name);
	q->names[q->nnames++].proto = proto;
}

/* Without NAPTR (RFC 3263 §4.1): the SRV names of the transports we have, UDP first. */
static void default_names(struct query *q)
{
	char name[256 + 16];
	for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
		if (!svc_usable(q->r, &q->p, &svcs[i]))
			continue;
		snprintf(name, sizeof(name), "%s.%s", svcs[i].srv, q->p.host);
		if (strlen(name) < sizeof(q->names[0].name))
			add_name(q, name, svcs[i].proto);
	}
}

static int naptr_cmp(const void *a, const void *b)
{
	const struct ares_naptr_reply *x = *(const struct ares_naptr_reply *const *)a;
	const struct ares_naptr_reply *y = *(const struct ares_naptr_reply *const *)b;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->preference < y->preference ? -1 : x->preference > y->preference;
}

/* Keeps the NAPTR records that lead to SRV for a transport we have, best first. */
static void naptr_names(struct query *q, struct ares_naptr_reply *rep)
{
	struct ares_naptr_reply *v[MAX_NAPTR_READ];
	size_t n = 0;
	for (; rep && n < MAX_NAPTR_READ; rep = rep->next)
		if (strcasecmp((const char *)rep->flags, "s") == 0 && rep->replacement[0])
			v[n++] = rep;
	qsort(v, n, sizeof(v[0]), naptr_cmp);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < sizeof(svcs) / sizeof(svcs[0]); k++)
			if (strcasecmp((const char *)v[i]->service, svcs[k].naptr) == 0 &&
			    svc_usable(q->r, &q->p, &svcs[k]) && strlen(v[i]->replacement) < sizeof(q->names[0].name))
				add_name(q, v[i]->replacement, svcs[k].proto);
}

static void on_naptr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;
	q->pending--;
	if (gone(q))
		return;
	struct ares_naptr_reply *rep = NULL;
	if (status == ARES_SUCCESS)
		status = ares_parse_naptr_reply(abuf, alen, &rep);
	if (status == ARES_SUCCESS) {
		q->ttl = answer_ttl(abuf, alen, q->ttl);
		naptr_names(q, rep);
		ares_free_data(rep);
	} else if (!not_found(status)) {
		finish(q, ares_err(status), NULL, 0);
		return;
	}
	/* NAPTR records that offer none of our transports count as none at all: many
	 * domains publish only SRV, and a stray TCP-only NAPTR should not hide them. */
	if (q->nnames == 0)
		default_names(q);
	next_srv(q);
}

static void start(struct query *q)
{
	if (q->p.port) {
		/* RFC 3263 §4.2: an explicit port means plain A/AAAA. */
		lookup_host(q, plan_proto(&q->p));
	} else if (q->p.proto >= 0) {
		/* §4.1: a transport= parameter skips NAPTR. */
		default_names(q);
		next_srv(q);
	} else {
		q->pending++;
		ares_query(q->r->ch, q->p.host, DNS_CLASS_IN, DNS_TYPE_NAPTR, on_naptr, q);
	}
}

/* ---- public ---------------------------------------------------------------------------------- */

int route_resolve(struct route *r, const struct sip_uri *uri, route_h *cb, void *arg, uint64_t *id_out)
{
	struct route_target t[ROUTE_MAX_TARGETS];
	struct plan p;
	unsigned n = 0;
	uint64_t id = ++r->next_id;
	if (id_out)
		*id_out = id;
	int err = immediate(r, uri, &p, t, &n);
	if (err == 0) {
		cb(arg, 0, t, n);
		return 0;
	}
	if (err != -EWOULDBLOCK)
		return err;
	struct query *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = (struct query){ .r = r, .id = id, .cb = cb, .arg = arg, .p = p, .ttl = CACHE_MAX_TTL };
	make_key(&p, q->key);
	r->stats.lookups++;
	q->next = r->queries;
	if (r->queries)
		r->queries->prev = q;
	r->queries = q;
	/* q may be answered and freed inside start(): c-ares can call back at once. */
	start(q);
	rearm(r);
	return 0;
}

void route_cancel(struct route *r, uint64_t id)
{
	/* A linear walk: cancels are rare (CANCEL, transaction timeout) and few resolutions
	 * are in flight at once, since answers are cached. */
	for (struct query *q = r->queries; q; q = q->next) {
		if (q->id == id) {
			q->cb = NULL;
			return;
		}
	}
}

int route_reload(struct route *r, const struct route_cfg *cfg)
{
	/* Every URI must parse before anything changes: a reload is all or nothing. */
	for (unsigned i = 0; i < cfg->npeer; i++) {
		struct sip_uri u;
		if (sip_uri_parse(&u, str_from_cstr(cfg->peer[i].uri)) != 0)
			return -EINVAL;
	}
	memcpy(r->cfg.domain, cfg->domain, sizeof r->cfg.domain);
	r->cfg.ndomain = cfg->ndomain;
	memcpy(r->cfg.peer, cfg->peer, sizeof r->cfg.peer);
	r->cfg.npeer = cfg->npeer;
	/* The views must point into our copy, not into cfg. */
	for (unsigned i = 0; i < r->cfg.npeer; i++)
		sip_uri_parse(&r->peer_uri[i], str_from_cstr(r->cfg.peer[i].uri));
	/* A cached answer may come from a peer that is gone or changed. */
	for (unsigned i = 0; i < CACHE_SLOTS; i++)
		r->cache[i].key[0] = '\0';
	return 0;
}

void route_set_protos(struct route *r, unsigned mask)
{
	r->protos = mask;
	for (unsigned i = 0; i < CACHE_SLOTS; i++)
		r->cache[i].key[0] = '\0';
}

static uint64_t seed(void)
{
	uint64_t s = 0;
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
	}
	return s ? s : 0x2545f4914f6cdd1dull; /* xorshift must not start at 0 */
}

int route_new(struct route **rp, struct loop *loop, const struct route_cfg *cfg)
{
	struct route *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->cfg = *cfg;
	for (unsigned i = 0; i < r->cfg.npeer; i++)
		if (sip_uri_parse(&r->peer_uri[i], str_from_cstr(r->cfg.peer[i].uri)) != 0) {
			free(r);
			return -EINVAL;
		}
	r->protos = 1u << TP_UDP;
	r->rng = seed();
	int err = 0;
	/* c-ares counts init/cleanup pairs itself, so each route takes one and route_free
	 * gives it back; on Linux the call does no real work, but the c-ares manual requires
	 * it before any other c-ares call. */
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		err = -ENOMEM;
		goto out;
	}
	r->lib_ok = true;
	struct ares_options o = {
		.timeout = DNS_TIMEOUT_MS,
		.tries = DNS_TRIES,
		.ndomains = 0, /* RFC 3263 names are absolute: no search list */
		.sock_state_cb = on_sock,
		.sock_state_cb_data = r,
	};
	int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS | ARES_OPT_SOCK_STATE_CB;
	int st = ares_init_options(&r->ch, &o, mask);
	if (st != ARES_SUCCESS) {
		err = st == ARES_ENOMEM ? -ENOMEM : -EIO;
		goto out;
	}
	r->chan_ok = true;
	if (cfg->dns[0] && ares_set_servers_ports_csv(r->ch, cfg->dns) != ARES_SUCCESS)
		err = -EINVAL;
out:
	if (err)
		route_free(r);
	else
		*rp = r;
	return err;
}

void route_free(struct route *r)
{
	if (!r)
		return;
	r->closing = true;
	timer_stop(loop_timers(r->loop), &r->tmr);
	/* ares_destroy calls back every pending query (gone() frees them) and closes the
	 * sockets through on_sock, which takes them off the loop. */
	if (r->chan_ok)
		ares_destroy(r->ch);
	while (r->queries)
		drop(r->queries);
	if (r->lib_ok)
		ares_library_cleanup();
	free(r);
}

int route_domain(const struct route *r, struct str host)
{
	if (host.l > 1 && host.p[host.l - 1] == '.')
		host.l--;
	for (unsigned i = 0; i < r->cfg.ndomain; i++)
		if (str_caseeq(host, str_from_cstr(r->cfg.domain[i])))
			return (int)i;
	return -1;
}

const char *route_domain_name(const struct route *r, int i)
{
	return r->cfg.domain[i];
}

bool route_peer_relay(const struct route *r, struct str domain, const struct tp_addr *from)
{
	for (unsigned i = 0; i < r->cfg.npeer; i++) {
		struct str v;
		if (!sip_param_get(r->peer_uri[i].params, STR("relay"), &v))
			continue;
		struct tp_addr a;
		if (domain.l && str_caseeq_cstr(domain, r->cfg.peer[i].domain))
			return true;
		if (from && tp_addr_from_host(&a, r->peer_uri[i].host, 0) == 0 && tp_addr_same_host(&a, from))
			return true;
	}
	return false;
}

bool route_peer_at(const struct route *r, unsigned i, const char **domain, const char **uri, bool *relay)
{
	if (i >= r->cfg.npeer)
		return false;
	struct str v;
	*domain = r->cfg.peer[i].domain;
	*uri = r->cfg.peer[i].uri;
	*relay = sip_param_get(r->peer_uri[i].params, STR("relay"), &v);
	return true;
}

struct str route_peer_host(const struct route *r, struct str domain)
{
	for (unsigned i = 0; i < r->cfg.npeer; i++)
		if (str_caseeq_cstr(domain, r->cfg.peer[i].domain))
			return r->peer_uri[i].host;
	return STR_NULL;
}

const struct route_stats *route_stats(const struct route *r)
{
	return &r->stats;
}
