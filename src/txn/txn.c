/* txn.c: the transaction layer: creation, hash tables, branches and tags, response routing. */
#include "txn/txn_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define TAB_MIN 256

static const char cookie[] = "z9hG4bK";

bool txn__has_cookie(struct str branch)
{
	return branch.l > sizeof(cookie) - 1 && memcmp(branch.p, cookie, sizeof(cookie) - 1) == 0;
}

uint64_t txn__branch_key(const struct txn_layer *l, struct str branch)
{
	return khash(&l->hk, branch.p, branch.l);
}

uint64_t txn__call_key(const struct txn_layer *l, struct str call_id, uint32_t cseq)
{
	/* The Call-ID's hash and the number, hashed again: both stay under the key. Bytes,
	 * not a struct, so that no padding is hashed. */
	unsigned char k[sizeof(uint64_t) + sizeof cseq];
	uint64_t h = khash(&l->hk, call_id.p, call_id.l);
	memcpy(k, &h, sizeof h);
	memcpy(k + sizeof h, &cseq, sizeof cseq);
	return khash(&l->hk, k, sizeof k);
}

int txn__send(struct txn_layer *l, const struct tp_source *dst, const char *buf, size_t len)
{
	return l->send(l->send_arg, dst, buf, len);
}

/* ---- hash table ------------------------------------------------------------------------ */

static int tab_init(struct txn__tab *t, unsigned bits)
{
	t->s = pool_big_calloc(((size_t)1 << bits) * sizeof(*t->s));
	if (!t->s)
		return -ENOMEM;
	t->bits = bits;
	t->cap = (size_t)1 << bits;
	t->n = 0;
	return 0;
}

static void place(struct txn__tab *t, uint64_t h, void *p)
{
	size_t i = txn__tab_home(t, h);
	while (t->s[i].p)
		i = txn__tab_next(t, i);
	t->s[i].h = h;
	t->s[i].p = p;
	t->n++;
}

/* Doubles the table; entries keep their keys, so nothing about them is recomputed. */
static int grow(struct txn__tab *t)
{
	struct txn__tab nt;
	int err = tab_init(&nt, t->bits + 1);
	if (err)
		return err;
	for (size_t i = 0; i < t->cap; i++)
		if (t->s[i].p)
			place(&nt, t->s[i].h, t->s[i].p);
	pool_big_free(t->s, t->cap * sizeof(*t->s));
	*t = nt;
	return 0;
}

int txn__tab_put(struct txn__tab *t, uint64_t h, void *p)
{
	/* Half full at most keeps probe runs short for linear probing. */
	if ((t->n + 1) * 2 > t->cap) {
		int err = grow(t);
		if (err)
			return err;
	}
	place(t, h, p);
	return 0;
}

void txn__tab_del(struct txn__tab *t, uint64_t h, const void *p)
{
	size_t mask = t->cap - 1;
	size_t i = txn__tab_home(t, h);
	while (t->s[i].p && t->s[i].p != p)
		i = txn__tab_next(t, i);
	if (!t->s[i].p)
		return;
	/* Backward-shift: pull later entries of the run into the hole when the hole lies
	 * between their home and their slot, so lookups never need tombstones. */
	size_t j = i;
	for (;;) {
		j = txn__tab_next(t, j);
		if (!t->s[j].p)
			break;
		size_t k = txn__tab_home(t, t->s[j].h);
		if (((j - k) & mask) >= ((j - i) & mask)) {
			t->s[i] = t->s[j];
			i = j;
		}
	}
	t->s[i].p = NULL;
	t->s[i].h = 0;
	t->n--;
}

/* ---- the layer ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser: a bijection, so distinct counters give distinct values. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t random_seed(const void *salt)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* No entropy yet (early boot): the clock and an address still vary per run. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return mix((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ (uint64_t)(uintptr_t)salt;
}

/* Spare pool chunks left unused for a second go back to the system (core/pool.h). */
static void trim_tick(void *arg)
{
	struct txn_layer *l = arg;
	pool_trim(l->pool);
	timer_start(l->w, &l->trim, POOL_TRIM_MS, trim_tick, l);
}

int txn_layer_new(struct txn_layer **lp, const struct txn_cfg *cfg, struct timer_wheel *w, txn_send_h *send,
		  void *send_arg, const struct txn_tu *tu, void *tu_arg)
{
	struct txn_layer *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cfg.t1 = cfg && cfg->t1 ? cfg->t1 : 500;
	l->cfg.t2 = cfg && cfg->t2 ? cfg->t2 : 4000;
	l->cfg.t4 = cfg && cfg->t4 ? cfg->t4 : 5000;
	l->w = w;
	l->send = send;
	l->send_arg = send_arg;
	l->tu = tu;
	l->tu_arg = tu_arg;
	l->seed = random_seed(l);
	int err = khash_init(&l->hk);
	if (err) {
		free(l);
		return err;
	}
	unsigned bits = 0;
	while (((size_t)1 << bits) < TAB_MIN)
		bits++;
	if (tab_init(&l->servers, bits) || tab_init(&l->clients, bits) || pool_new(&l->pool)) {
		pool_big_free(l->servers.s, l->servers.cap * sizeof(*l->servers.s));
		pool_big_free(l->clients.s, l->clients.cap * sizeof(*l->clients.s));
		free(l);
		return -ENOMEM;
	}
	if (w)
		timer_start(w, &l->trim, POOL_TRIM_MS, trim_tick, l);
	*lp = l;
	return 0;
}

void txn_layer_set_tu(struct txn_layer *l, const struct txn_tu *tu, void *tu_arg)
{
	l->tu = tu;
	l->tu_arg = tu_arg;
}

void txn_layer_free(struct txn_layer *l)
{
	if (!l)
		return;
	l->closing = true;
	if (l->w)
		timer_stop(l->w, &l->trim);
	txn__server_free_all(l);
	txn__client_free_all(l);
	pool_big_free(l->servers.s, l->servers.cap * sizeof(*l->servers.s));
	pool_big_free(l->clients.s, l->clients.cap * sizeof(*l->clients.s));
	pool_destroy(l->pool);
	free(l);
}

void *txn__blk_alloc(struct txn_layer *l, size_t size)
{
	return pool_alloc(l->pool, size <= TXN__REQ_BLOCK ? TXN__REQ_BLOCK : size);
}

void txn__blk_free(struct txn_layer *l, void *p, size_t size)
{
	pool_free(l->pool, p, size <= TXN__REQ_BLOCK ? TXN__REQ_BLOCK : size);
}

const struct txn_stats *txn_layer_stats(const struct txn_layer *l)
{
	return &l->stats;
}

const struct txn_cfg *txn_layer_cfg(const struct txn_layer *l)
{
	return &l->cfg;
}

static size_t hex16(struct txn_layer *l, char *out)
{
	str_hex_u64(mix(l->seed + ++l->counter), out);
	out[16] = '\0';
	return 16;
}

size_t txn_make_branch(struct txn_layer *l, char out[TXN_BRANCH_SIZE])
{
	memcpy(out, cookie, sizeof(cookie) - 1);
	return sizeof(cookie) - 1 + hex16(l, out + sizeof(cookie) - 1);
}

size_t txn_make_tag(struct txn_layer *l, char out[TXN_TAG_SIZE])
{
	return hex16(l, out);
}

const char *txn_state_name(enum txn_state s)
{
	switch (s) {
	case TXN_TRYING:
		return "Trying";
	case TXN_CALLING:
		return "Calling";
	case TXN_PROCEEDING:
		return "Proceeding";
	case TXN_COMPLETED:
		return "Completed";
	case TXN_CONFIRMED:
		return "Confirmed";
	case TXN_ACCEPTED:
		return "Accepted";
	case TXN_TERMINATED:
		return "Terminated";
	}
	return "?";
}

/* ---- where responses go ---------------------------------------------------------------- */

static void set_port(struct tp_addr *a, uint16_t port)
{
	if (a->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
	else if (a->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

static uint16_t get_port(const struct tp_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

void txn_response_dest(struct tp_source *dst, const struct sip_msg *req, const struct tp_source *src)
{
	*dst = *src;
	/* On streams the response rides the same connection (§18.2.2). On UDP it goes to the
	 * source address; the port is the source port only if the client asked for rport
	 * (RFC 3581), since without it the client listens on its sent-by port. maddr is not
	 * honoured: it would need DNS and nothing current uses it. */
	if (src->proto != TP_UDP || req->via.has_rport)
		return;
	set_port(&dst->addr, req->via.port ? req->via.port : 5060);
}

/* Writes v in decimal at p; returns the length. */
static size_t put_u(char *p, unsigned v)
{
	char tmp[10];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* The source address as inet_ntop writes it, by hand for IPv4 (the common case, and
 * inet_ntop formats it with sprintf). Returns the length, 0 for no address. */
static size_t addr_text(const struct tp_addr *a, char *out, size_t n)
{
	if (a->ss.ss_family == AF_INET) {
		const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
		size_t l = 0;
		for (int i = 0; i < 4; i++) {
			if (i)
				out[l++] = '.';
			l += put_u(out + l, b[i]);
		}
		out[l] = '\0';
		return l;
	}
	if (a->ss.ss_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, out, (socklen_t)n))
		return strlen(out);
	return 0;
}

/* Whether host is the text inet_ntop gives for the IPv4 address b: four octets in decimal
 * without leading zeros. */
static bool is_ipv4_text(struct str host, const unsigned char b[4])
{
	size_t i = 0;
	for (int k = 0; k < 4; k++) {
		if (k && (i >= host.l || host.p[i++] != '.'))
			return false;
		size_t d = i;
		unsigned v = 0;
		while (i < host.l && i - d < 3 && host.p[i] >= '0' && host.p[i] <= '9')
			v = v * 10 + (unsigned)(host.p[i++] - '0');
		if (i == d || (host.p[d] == '0' && i - d > 1) || v != b[k])
			return false;
	}
	return i == host.l;
}

void txn_response_via(struct sip_resp_opts *opt, struct txn_via_text *b, const struct sip_msg *req,
		      const struct tp_source *src)
{
	b->received[0] = '\0';
	b->rport[0] = '\0';
	const struct tp_addr *a = &src->addr;
	if (opt->via_received.l == 0) {
		struct str host = req->via.host;
		if (host.l >= 2 && host.p[0] == '[') {
			host.p++;
			host.l -= 2;
		}
		/* §18.2.1: received= only when sent-by is not already the source address, as
		 * text: a sent-by naming the address differently ("192.0.2.010", a host name)
		 * gets one. The usual IPv4 sent-by that equals the source is told without
		 * formatting anything. */
		size_t n;
		/* RFC 3581 §4: with rport, received= always, even when it equals sent-by. The
		 * usual IPv4 sent-by that equals the source is then its own text: a view of
		 * the request, nothing formatted. */
		bool always = req->via.has_rport;
		if (a->ss.ss_family == AF_INET &&
		    is_ipv4_text(host, (const unsigned char *)&((const struct sockaddr_in *)&a->ss)->sin_addr)) {
			if (always)
				opt->via_received = host;
			n = 0;
		} else if ((n = addr_text(a, b->received, sizeof(b->received))) && !always &&
			   str_caseeq(host, (struct str){ b->received, n })) {
			n = 0;
		}
		if (n)
			opt->via_received = (struct str){ b->received, n };
	}
	if (opt->via_rport.l == 0 && req->via.has_rport && req->via.rport.l == 0) {
		size_t l = put_u(b->rport, get_port(a));
		b->rport[l] = '\0';
		opt->via_rport = (struct str){ b->rport, l };
	}
}
