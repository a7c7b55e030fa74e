/* ng.c: the rtpengine ng-protocol client: cookies, retransmission, timeouts and dead-instance pings over UDP. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "media/media_int.h"

#define NG_BUCKETS 256   /* power of two; chains stay short at a few thousand commands */
#define NG_FIRST_RTX 500 /* ms before the first retransmission, then doubling */
#define NG_COOKIE_MAX 40
#define NG_PREFIX_LEN 17 /* "%016x_" of the salt */

struct ng_cmd {
	struct ng_cmd *next; /* bucket chain */
	struct ng *n;
	uint64_t id; /* the handle; also the cookie's number */
	int idx;     /* instance */
	bool ping;   /* our own liveness ping, not a caller's command */
	bool queued; /* not sent yet: on its instance's queue, sent at the end of the turn */
	struct ng_cmd *qnext;
	ng_h *cb;
	void *arg;
	struct timer tmr; /* next retransmission or the deadline, whichever is first */
	uint64_t deadline;
	unsigned rtx_ms; /* the next retransmission interval */
	size_t len;
	char buf[]; /* "COOKIE dict", as sent */
};

struct ng_inst {
	struct ng *n;
	int fd;
	struct ng_target t;
	bool alive;
	bool retired; /* taken out of [media] by a reload: no new calls, no pings; the calls
		       * it has keep it until they end */
	int cw;       /* smooth weighted round robin: current weight */
	struct timer ping_tmr;
	uint64_t ping_id;     /* the pending ping, 0 when none */
	struct ng_cmd *qhead; /* first transmissions waiting for the end of the turn */
	struct ng_cmd **qtail;
};

#define NG_RBATCH 8
#define NG_RSLOT 32768
#define NG_TBATCH 32 /* first transmissions per sendmmsg */
/* The replies' receive buffer. The default (~200 KB) holds about fifty answers to deletes
 * (~1.8 KB of figures each, and the kernel counts its own overhead too): a turn's batch of
 * commands is answered in a burst, and a server slowed down (under valgrind, say) lost
 * replies to a full buffer until the commands timed out. */
#define NG_RCVBUF (4 << 20)

struct ng {
	struct loop *loop;
	struct log *lg;
	unsigned timeout_ms, retry_ms;
	/* Every cookie starts with a random salt, as 16 hex digits and '_': replies meant for
	 * an earlier process do not match. */
	char prefix[NG_PREFIX_LEN];
	uint64_t next_id;
	unsigned pending; /* callers' commands */
	uint64_t unmatched;
	struct ng_cmd *bucket[NG_BUCKETS];
	unsigned ninst;
	struct ng_inst inst[NG_MAX_TARGETS];
	/* Replies are read NG_RBATCH at a time (recvmmsg): under load one call returns all that
	 * are there, and fewer than a batch means the socket is empty (no read ending in
	 * EAGAIN). A reply longer than a slot arrives truncated (MSG_TRUNC) and is refused
	 * (-EPROTO):
	 * rtpengine's replies are an SDP (at most SDP_MAX_LEN in, a little more out) and keys. */
	struct mmsghdr mm[NG_RBATCH];
	struct iovec iov[NG_RBATCH];
	/* First transmissions wait for the end of the loop's turn and leave in one sendmmsg
	 * per instance: a turn that handles many calls sends their commands together. */
	struct loop_job flush;
	struct mmsghdr tmm[NG_TBATCH];
	struct iovec tiov[NG_TBATCH];
	char rbuf[NG_RBATCH][NG_RSLOT];
};

/* ---- targets ----------------------------------------------------------------------------- */

int ng_target_parse(const char *spec, struct ng_target *t, char *err, size_t errlen)
{
	char tmp[sizeof(t->name) + 32];
	memset(t, 0, sizeof(*t));
	t->weight = 1;
	if (strncasecmp(spec, "udp:", 4) != 0) {
		snprintf(err, errlen, "expected udp:HOST:PORT[;weight=N], got '%s'", spec);
		return -1;
	}
	if (strlen(spec) >= sizeof(tmp)) {
		snprintf(err, errlen, "rtpengine address too long");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s", spec);
	char *semi = strchr(tmp, ';');
	if (semi) {
		*semi = '\0';
		uint64_t w;
		if (strncasecmp(semi + 1, "weight=", 7) != 0) {
			snprintf(err, errlen, "unknown parameter '%s' (only weight=N)", semi + 1);
			return -1;
		}
		if (!str_to_u64(str_from_cstr(semi + 8), 1000, &w) || w == 0) {
			snprintf(err, errlen, "weight must be 1..1000, got '%s'", semi + 8);
			return -1;
		}
		t->weight = (unsigned)w;
	}
	char *h = tmp + 4, *hend, *port;
	if (*h == '[') {
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':') {
			snprintf(err, errlen, "expected udp:[IPv6]:PORT");
			return -1;
		}
		port = hend + 2;
		hend++;
	} else {
		hend = strchr(h, ':');
		if (!hend) {
			snprintf(err, errlen, "missing port (udp:HOST:PORT)");
			return -1;
		}
		port = hend + 1;
		if (strchr(port, ':')) {
			snprintf(err, errlen, "put an IPv6 address in brackets: udp:[::1]:2223");
			return -1;
		}
	}
	uint64_t p;
	if (!str_to_u64(str_from_cstr(port), 65535, &p) || p == 0) {
		snprintf(err, errlen, "bad port '%s'", port);
		return -1;
	}
	struct str host = { h, (size_t)(hend - h) };
	if (tp_addr_from_host(&t->addr, host, (uint16_t)p)) {
		snprintf(err, errlen, "'%.*s' is not a numeric IPv4 or [IPv6] address", STR_FMT(host));
		return -1;
	}
	char a[64];
	snprintf(t->name, sizeof(t->name), "udp:%s", tp_addr_str(&t->addr, a, sizeof(a)));
	return 0;
}

/* ---- the table of pending commands ------------------------------------------------------- */

/* Ids are ours and sequential, so the low bits spread evenly; a peer sending made-up
 * cookies only ever walks one short chain. */
static struct ng_cmd **slot(struct ng *n, uint64_t id)
{
	return &n->bucket[id & (NG_BUCKETS - 1)];
}

static struct ng_cmd *find(struct ng *n, uint64_t id)
{
	for (struct ng_cmd *c = *slot(n, id); c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* Takes c off its instance's queue of first transmissions (it is there). */
static void unqueue(struct ng_cmd *c)
{
	struct ng_inst *in = &c->n->inst[c->idx];
	struct ng_cmd **pp = &in->qhead;
	while (*pp != c)
		pp = &(*pp)->qnext;
	*pp = c->qnext;
	if (in->qtail == &c->qnext)
		in->qtail = pp;
	c->queued = false;
}

/* Unlinks c, stops its timer and frees it; no callback. */
static void drop(struct ng_cmd *c)
{
	struct ng *n = c->n;
	for (struct ng_cmd **pp = slot(n, c->id); *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (c->queued)
		unqueue(c);
	timer_stop(loop_timers(n->loop), &c->tmr);
	if (c->ping)
		n->inst[c->idx].ping_id = 0;
	else
		n->pending--;
	free(c);
}

/* Ends c with err: unlinks it first, so that the callback may send or cancel others. */
static void finish(struct ng_cmd *c, int err, struct str reply)
{
	ng_h *cb = c->cb;
	void *arg = c->arg;
	drop(c);
	if (cb)
		cb(arg, err, reply);
}

/* ---- liveness ----------------------------------------------------------------------------- */

static void ping_due(void *arg);

static void mark_dead(struct ng_inst *in, const char *why)
{
	struct ng *n = in->n;
	if (in->alive) {
		in->alive = false;
		log_warn(n->lg, "media", "rtpengine %s: %s; out of rotation, pinging every %u ms", in->t.name, why,
			 n->retry_ms);
	}
	if (!in->retired && !in->ping_id && !timer_pending(&in->ping_tmr))
		timer_start(loop_timers(n->loop), &in->ping_tmr, n->retry_ms, ping_due, in);
}

static void mark_alive(struct ng_inst *in)
{
	if (in->alive)
		return;
	in->alive = true;
	in->cw = 0;
	timer_stop(loop_timers(in->n->loop), &in->ping_tmr);
	log_info(in->n->lg, "media", "rtpengine %s: answers again; back in rotation", in->t.name);
}

static int submit(struct ng *n, int idx, struct str dict, bool ping, ng_h *cb, void *arg, uint64_t *handle);

static void on_pong(void *arg, int err, struct str reply)
{
	struct ng_inst *in = arg;
	struct str r;
	if (!err && bn_dict_get_str(reply, "result", &r) && str_eq(r, STR("pong"))) {
		mark_alive(in);
		return;
	}
	/* Still dead: the failure itself marked it, and arms the next ping when none is pending. */
	mark_dead(in, "ping failed");
}

static void ping_due(void *arg)
{
	struct ng_inst *in = arg;
	struct ng *n = in->n;
	if (in->alive || in->ping_id)
		return;
	int rc = submit(n, (int)(in - n->inst), STR("d7:command4:pinge"), true, on_pong, in, &in->ping_id);
	if (rc) /* out of memory: try again later */
		timer_start(loop_timers(n->loop), &in->ping_tmr, n->retry_ms, ping_due, in);
}

/* ---- sending ---------------------------------------------------------------------------- */

/* One send of c's datagram; 0 or -errno. A full socket buffer counts as a lost datagram:
 * the retransmission tries again. */
static int transmit(struct ng *n, struct ng_cmd *c)
{
	ssize_t k = send(n->inst[c->idx].fd, c->buf, c->len, MSG_NOSIGNAL);
	if (k >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR)
		return 0;
	return -errno;
}

/* Fails every command pending on instance idx: a refused port answers none of them. Only
 * those sent before the refusal: a callback that sends again to idx must not be failed
 * by this same walk, or it could go round forever. */
static void refuse_all(struct ng *n, int idx)
{
	uint64_t upto = n->next_id;
	mark_dead(&n->inst[idx], "port unreachable (connection refused)");
	for (unsigned b = 0; b < NG_BUCKETS; b++) {
		struct ng_cmd *c = n->bucket[b];
		while (c) {
			struct ng_cmd *next = c->next;
			if (c->idx == idx && c->id <= upto) {
				finish(c, -ECONNREFUSED, STR_NULL);
				/* The callback may have changed this chain: walk it again. */
				next = n->bucket[b];
			}
			c = next;
		}
	}
	/* A pending ping was failed above, which arms the next one; make sure of it. */
	mark_dead(&n->inst[idx], "port unreachable (connection refused)");
}

static void on_timer(void *arg)
{
	struct ng_cmd *c = arg;
	struct ng *n = c->n;
	uint64_t now = loop_now(n->loop);
	if (now >= c->deadline) {
		struct ng_inst *in = &n->inst[c->idx];
		char why[48];
		snprintf(why, sizeof(why), "no answer in %u ms", n->timeout_ms);
		/* Dead already: the line that marked it said so; a caller's command still gets
		 * its own line, so that a failed call can be traced to it. */
		if (!in->alive && !c->ping)
			log_warn(n->lg, "media", "rtpengine %s: %s (out of rotation)", in->t.name, why);
		finish(c, -ETIMEDOUT, STR_NULL);
		mark_dead(in, why);
		return;
	}
	int rc = transmit(n, c);
	if (rc == -ECONNREFUSED) {
		refuse_all(n, c->idx);
		return;
	}
	uint64_t left = c->deadline - now, d = c->rtx_ms < left ? c->rtx_ms : left;
	c->rtx_ms *= 2;
	timer_start(loop_timers(n->loop), &c->tmr, d, on_timer, c);
}

/* "SALT_ID " into out (NG_COOKIE_MAX bytes); returns its length. By hand: snprintf cost
 * more than the rest of a command's sending, and a reply's match compares the same prefix. */
static int cookie_of(const struct ng *n, uint64_t id, char *out)
{
	char d[20];
	int k = (int)sizeof d;
	do {
		d[--k] = (char)('0' + id % 10);
		id /= 10;
	} while (id);
	memcpy(out, n->prefix, NG_PREFIX_LEN);
	memcpy(out + NG_PREFIX_LEN, d + k, sizeof d - (size_t)k);
	int len = NG_PREFIX_LEN + (int)sizeof d - k;
	out[len++] = ' ';
	return len;
}

/* Sends up to NG_TBATCH of in's queued commands in one sendmmsg and takes what went off
 * the queue. A refused port fails every command of the instance (refuse_all), another
 * error the first command only, through their callbacks; a full socket buffer counts as
 * lost datagrams, which the retransmissions send again. */
static void send_queued(struct ng *n, struct ng_inst *in)
{
	unsigned k = 0;
	for (struct ng_cmd *c = in->qhead; c && k < NG_TBATCH; c = c->qnext, k++) {
		n->tiov[k] = (struct iovec){ c->buf, c->len };
		n->tmm[k].msg_hdr = (struct msghdr){ .msg_iov = &n->tiov[k], .msg_iovlen = 1 };
	}
	int r = sendmmsg(in->fd, n->tmm, k, MSG_NOSIGNAL);
	if (r < 0 && errno == EINTR)
		return;
	if (r < 0 && errno == ECONNREFUSED) {
		refuse_all(n, (int)(in - n->inst));
		return;
	}
	if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
		int err = -errno;
		struct ng_cmd *c = in->qhead;
		unqueue(c);
		finish(c, err, STR_NULL);
		return;
	}
	/* Sent, or lost to a full buffer (then the whole queue: the rest would be too). */
	unsigned sent = r < 0 ? UINT_MAX : (unsigned)r;
	for (unsigned i = 0; i < sent && in->qhead; i++)
		unqueue(in->qhead);
}

/* The end of the loop's turn: every instance's queued commands go out. A callback run
 * from here (a refused port) may queue more; they go in this same run, or in the next
 * one it defers. */
static void flush(void *arg)
{
	struct ng *n = arg;
	for (unsigned i = 0; i < n->ninst; i++)
		while (n->inst[i].qhead)
			send_queued(n, &n->inst[i]);
}

static int submit(struct ng *n, int idx, struct str dict, bool ping, ng_h *cb, void *arg, uint64_t *handle)
{
	if (idx < 0 || (unsigned)idx >= n->ninst || !dict.p || dict.l < 2 || dict.p[0] != 'd')
		return -EINVAL;
	char cookie[NG_COOKIE_MAX];
	uint64_t id = ++n->next_id;
	int cl = cookie_of(n, id, cookie);
	if (dict.l > NG_MAX_DGRAM - (size_t)cl)
		return -EMSGSIZE;
	struct ng_cmd *c = malloc(sizeof(*c) + (size_t)cl + dict.l);
	if (!c)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->id = id;
	c->idx = idx;
	c->ping = ping;
	c->cb = cb;
	c->arg = arg;
	c->len = (size_t)cl + dict.l;
	memcpy(c->buf, cookie, (size_t)cl);
	memcpy(c->buf + cl, dict.p, dict.l);
	struct ng_inst *in = &n->inst[idx];
	c->queued = true;
	*in->qtail = c;
	in->qtail = &c->qnext;
	loop_defer(n->loop, &n->flush, flush, n);
	c->next = *slot(n, id);
	*slot(n, id) = c;
	if (!ping)
		n->pending++;
	uint64_t first = NG_FIRST_RTX < n->timeout_ms ? NG_FIRST_RTX : n->timeout_ms;
	c->rtx_ms = NG_FIRST_RTX * 2;
	c->deadline = loop_now(n->loop) + n->timeout_ms;
	timer_start(loop_timers(n->loop), &c->tmr, first, on_timer, c);
	if (handle)
		*handle = id;
	return 0;
}

int ng_send(struct ng *n, int idx, struct str dict, ng_h *cb, void *arg, uint64_t *handle)
{
	return submit(n, idx, dict, false, cb, arg, handle);
}

void ng_cancel(struct ng *n, uint64_t handle)
{
	struct ng_cmd *c = find(n, handle);
	if (c && !c->ping)
		drop(c);
}

unsigned ng_pending(const struct ng *n)
{
	return n->pending;
}

uint64_t ng_unmatched(const struct ng *n)
{
	return n->unmatched;
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* The command a reply's cookie names, or NULL when it is none of ours (or not from idx). */
static struct ng_cmd *match(struct ng *n, int idx, struct str cookie)
{
	if (cookie.l <= NG_PREFIX_LEN || memcmp(cookie.p, n->prefix, NG_PREFIX_LEN) != 0)
		return NULL;
	uint64_t id;
	if (!str_to_u64((struct str){ cookie.p + NG_PREFIX_LEN, cookie.l - NG_PREFIX_LEN }, UINT64_MAX, &id))
		return NULL;
	struct ng_cmd *c = find(n, id);
	return c && c->idx == idx ? c : NULL;
}

static void handle_reply(struct ng *n, int idx, const char *p, size_t len, bool truncated)
{
	struct str d = { p, len };
	long sp = str_chr(d, ' ');
	struct ng_cmd *c = sp > 0 ? match(n, idx, (struct str){ p, (size_t)sp }) : NULL;
	if (!c) {
		n->unmatched++;
		log_debug(n->lg, "media", "rtpengine %s: reply for no pending command ignored", n->inst[idx].t.name);
		return;
	}
	struct str body = { p + sp + 1, len - (size_t)sp - 1 };
	/* Only the outside is checked here: the readers (bn_dict_get, bn_walk ...) stay inside
	 * the view and fail on what is malformed as they come to it, so a full bn_check would
	 * read the reply twice (the delete's answer, ~1.8 KB of small values, is walked whole
	 * by its reader anyway). */
	struct str cur;
	if (truncated || !bn_dict_begin(body, &cur)) {
		log_warn(n->lg, "media", "rtpengine %s: reply is not a bencoded dictionary (%zu bytes)",
			 n->inst[idx].t.name, body.l);
		finish(c, -EPROTO, STR_NULL);
		return;
	}
	/* Any reply that looks like one shows that the instance works. */
	mark_alive(&n->inst[idx]);
	finish(c, 0, body);
}

static void on_fd(int fd, uint32_t events, void *arg)
{
	struct ng_inst *in = arg;
	struct ng *n = in->n;
	int idx = (int)(in - n->inst);
	/* A bounded number of batches, so that a flood on one socket cannot starve the loop. */
	for (int k = 0; k < 8; k++) {
		for (unsigned i = 0; i < NG_RBATCH; i++) {
			n->iov[i] = (struct iovec){ n->rbuf[i], NG_RSLOT };
			n->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &n->iov[i], .msg_iovlen = 1 };
		}
		int r = recvmmsg(fd, n->mm, NG_RBATCH, MSG_DONTWAIT, NULL);
		if (r < 0) {
			if (errno == ECONNREFUSED)
				refuse_all(n, idx);
			else if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < r; i++)
			handle_reply(n, idx, n->rbuf[i], n->mm[i].msg_len, n->mm[i].msg_hdr.msg_flags & MSG_TRUNC);
		if (r < NG_RBATCH)
			return;
	}
}

/* ---- the client ----------------------------------------------------------------------------- */

static uint64_t fresh_salt(void)
{
	uint64_t s;
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) == (ssize_t)sizeof(s))
		return s;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
}

/* Opens instance n->ninst for t and counts it; 0 or -errno (then nothing is left open). */
static int inst_open(struct ng *n, const struct ng_target *t)
{
	if (n->ninst >= NG_MAX_TARGETS)
		return -ENOSPC;
	struct ng_inst *in = &n->inst[n->ninst];
	memset(in, 0, sizeof(*in));
	in->n = n;
	in->t = *t;
	if (in->t.weight == 0)
		in->t.weight = 1;
	in->alive = true;
	in->qtail = &in->qhead;
	in->fd = socket(t->addr.ss.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (in->fd < 0)
		return -errno;
	/* Beyond net.core.rmem_max only with CAP_NET_ADMIN; otherwise as much as it allows. */
	int size = NG_RCVBUF, err = 0;
	if (setsockopt(in->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
		setsockopt(in->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	/* Connected, so that the kernel hands us ICMP port-unreachable as ECONNREFUSED and
	 * drops datagrams from anyone else. */
	if (connect(in->fd, &t->addr.ss.sa, t->addr.len) < 0)
		err = -errno;
	else
		err = loop_add_fd(n->loop, in->fd, EPOLLIN, on_fd, in);
	if (err) {
		close(in->fd);
		return err;
	}
	n->ninst++;
	return 0;
}

int ng_new(struct ng **np, const struct ng_env *env, const struct ng_target *t, unsigned cnt)
{
	*np = NULL;
	if (!env || !env->loop || cnt == 0 || cnt > NG_MAX_TARGETS)
		return -EINVAL;
	struct ng *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->loop = env->loop;
	n->lg = env->lg;
	n->timeout_ms = env->timeout_ms ? env->timeout_ms : 2000;
	n->retry_ms = env->retry_ms ? env->retry_ms : 5000;
	uint64_t salt = fresh_salt();
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++)
		n->prefix[i] = hex[(salt >> (60 - 4 * i)) & 0xf];
	n->prefix[16] = '_';
	int err = 0;
	for (unsigned i = 0; i < cnt && !err; i++)
		err = inst_open(n, &t[i]);
	if (err) {
		for (unsigned i = 0; i < n->ninst; i++) {
			loop_del_fd(n->loop, n->inst[i].fd);
			close(n->inst[i].fd);
		}
		free(n);
		return err;
	}
	*np = n;
	return 0;
}

void ng_free(struct ng *n)
{
	if (!n)
		return;
	for (unsigned b = 0; b < NG_BUCKETS; b++)
		while (n->bucket[b])
			drop(n->bucket[b]);
	loop_cancel(n->loop, &n->flush);
	for (unsigned i = 0; i < n->ninst; i++) {
		timer_stop(loop_timers(n->loop), &n->inst[i].ping_tmr);
		loop_del_fd(n->loop, n->inst[i].fd);
		close(n->inst[i].fd);
	}
	free(n);
}

int ng_pick(struct ng *n)
{
	/* Smooth weighted round robin (nginx): deterministic, and spreads each instance's turns
	 * evenly instead of in runs. */
	int best = -1, total = 0;
	for (unsigned i = 0; i < n->ninst; i++) {
		struct ng_inst *in = &n->inst[i];
		if (!in->alive || in->retired)
			continue;
		in->cw += (int)in->t.weight;
		total += (int)in->t.weight;
		if (best < 0 || in->cw > n->inst[best].cw)
			best = (int)i;
	}
	if (best >= 0)
		n->inst[best].cw -= total;
	return best;
}

const char *ng_name(const struct ng *n, int idx)
{
	return idx >= 0 && (unsigned)idx < n->ninst ? n->inst[idx].t.name : "?";
}

bool ng_alive(const struct ng *n, int idx)
{
	return idx >= 0 && (unsigned)idx < n->ninst && n->inst[idx].alive;
}

unsigned ng_count(const struct ng *n)
{
	return n->ninst;
}

/* ---- reload ------------------------------------------------------------------------------- */

int ng_add(struct ng *n, const struct ng_target *t)
{
	int err = inst_open(n, t);
	return err ? err : (int)n->ninst - 1;
}

int ng_find(const struct ng *n, const struct tp_addr *a)
{
	for (unsigned i = 0; i < n->ninst; i++)
		if (!n->inst[i].retired && tp_addr_equal(&n->inst[i].t.addr, a))
			return (int)i;
	return -1;
}

void ng_retire(struct ng *n, int idx)
{
	if (idx < 0 || (unsigned)idx >= n->ninst)
		return;
	struct ng_inst *in = &n->inst[idx];
	in->retired = true;
	timer_stop(loop_timers(n->loop), &in->ping_tmr);
}

bool ng_retired(const struct ng *n, int idx)
{
	return idx >= 0 && (unsigned)idx < n->ninst && n->inst[idx].retired;
}

void ng_set_weight(struct ng *n, int idx, unsigned weight)
{
	if (idx >= 0 && (unsigned)idx < n->ninst && weight > 0) {
		n->inst[idx].t.weight = weight;
		n->inst[idx].cw = 0;
	}
}

void ng_set_timeout(struct ng *n, unsigned timeout_ms)
{
	/* Commands already sent keep their deadline; the next ones take this. */
	n->timeout_ms = timeout_ms ? timeout_ms : 2000;
}
