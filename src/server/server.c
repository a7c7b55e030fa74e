/* server.c: wires one Parley instance together: transport -> parser -> transactions -> router. */
#include "server/server.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "capture/capture.h"
#include "cdr/cdr.h"
#include "core/clock.h"
#include "core/timer.h"
#include "dialog/dialog.h"
#include "guard/guard.h"
#include "location/location.h"
#include "media/media.h"
#include "proxy/proxy.h"
#include "registrar/registrar.h"
#include "route/route.h"
#include "router/router.h"
#include "store/store.h"
#include "transport/transport.h"
#include "txn/txn.h"
#include "server/config.h"

struct server {
	const struct config *cfg;
	struct loop *loop;
	struct log *lg;
	struct transport *tp;
	struct txn_layer *txn;
	struct store *store;
	struct store_ucache *users; /* read-through cache in front of store's users */
	struct auth *auth;
	struct location *loc;
	struct registrar *reg;
	struct cdr *cdr;
	struct proxy *proxy;
	struct route *route;
	struct dlg_table *dialogs; /* dialogs we record-routed: in-dialog requests follow them */
	struct guard *guard;       /* per-source rate limits, failed-login counts, bans */
	struct router *router;
	struct media *media;        /* the media relay (rtpengine); off without --rtpengine */
	struct capture *capture;    /* recent messages per call, HEP, live listeners */
	struct capture_sock *trace; /* DB.trace.sock for parley trace; NULL when it could not open */
	bool media_on;
	/* The Call-ID of the message deliver is handling (a view into it), empty otherwise:
	 * whatever is sent meanwhile (its answers, its forwarded copies, CANCELs and ACKs of its
	 * branches) belongs to the same call, so capture need not look for it in the bytes. */
	struct str rx_call_id;
	bool rx_keep; /* and whether the ring keeps that call's messages (capture_hop) */
	struct timer flush_timer;
	struct timer sweep_timer;
	bool flush_failing;    /* the last flush failed: log recovery once */
	uint32_t cdr_prune_at; /* when old call records are next pruned (unix s) */
	unsigned txn_peak;     /* most live transactions since the heap was last trimmed */
	uint64_t dropped;      /* datagrams dropped as unparsable */
	uint64_t rejected;     /* requests answered 4xx/5xx by the sanity checks */
	int mem_load;          /* memory: 0 normal, 1 over the high-water mark, 2 at the cap */
	struct log_limit lim_reject, lim_drop, lim_limit;
	uint64_t ban_sync_at;              /* next re-read of the bans table, ms */
	unsigned sweeps;                   /* sweep ticks so far */
	int statm_fd;                      /* /proc/self/statm, read by the memory cap 10 times a second */
	struct server_stats stats;         /* what /metrics shows beside the modules' own counters */
	uint64_t cap_mono_ms, cap_wall_ms; /* capture_ms(): the loop's ms it last read, and the wall clock then */
	struct server_hooks hooks;         /* test seam (server.h); all NULL when serving */
};

#define SWEEP_MS 100

/* Wall clock in ms, or the test seam's. */
static uint64_t now_ms(const struct server *s)
{
	if (s->hooks.wall_ms)
		return s->hooks.wall_ms(s->hooks.clock_arg);
	return clock_wall_ms();
}

static uint64_t wall_ms(void *arg)
{
	return now_ms(arg);
}

/* The wall clock for captured messages: read once per loop millisecond, not per message
 * (a message in and the one or two it sends share it; the ring keeps milliseconds). */
static uint64_t capture_ms(struct server *s)
{
	if (s->hooks.wall_ms || !s->loop)
		return now_ms(s);
	uint64_t mono = loop_now(s->loop);
	if (mono != s->cap_mono_ms || !s->cap_wall_ms) {
		s->cap_mono_ms = mono;
		s->cap_wall_ms = clock_wall_ms();
	}
	return s->cap_wall_ms;
}

/* The first line of a message, for debug logs. */
static struct str first_line(const char *buf, size_t len)
{
	const char *e = memchr(buf, '\r', len);
	size_t n = e ? (size_t)(e - buf) : len;
	return (struct str){ buf, n > 200 ? 200 : n };
}

/* Every message in and out passes here once (retransmissions too): the capture ring, HEP
 * and live listeners. Nothing is built when nobody takes it. */
static void capture_hop(struct server *s, bool out, const struct tp_source *peer, const struct tp_listener *lis,
			const char *buf, size_t len, struct str call_id, bool keep)
{
	if (capture_skips(s->capture, keep))
		return;
	struct capture_msg cm = {
		.wall_ms = capture_ms(s),
		.out = out,
		.proto = peer->proto,
		.remote = peer->addr,
		.call_id = call_id,
		.text = { buf, len },
		.transient = !keep,
	};
	if (lis)
		cm.local = lis->local;
	capture_add(s->capture, &cm);
}

static int server_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct server *s = arg;
	struct tp_listener *lis = dst->lis ? dst->lis : tp_pick(s->tp, dst->proto, &dst->addr, NULL);
	char to[80];
	if (!lis) {
		log_warn(s->lg, "send", "no listener can reach %s", tp_addr_str(&dst->addr, to, sizeof to));
		return -ENETUNREACH;
	}
	if (LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "send", "to %s %zu bytes%s%s: %.*s", tp_addr_str(&dst->addr, to, sizeof to),
			  len, dst->proto == TP_UDP ? "" : " over ",
			  dst->proto == TP_UDP ? "" : tp_proto_name(dst->proto), STR_FMT(first_line(buf, len)));
	int err = s->hooks.send ? s->hooks.send(s->hooks.send_arg, dst, buf, len)
				: tp_send(lis, &dst->addr, dst->conn_id, buf, len);
	/* A response starts "SIP/2.0 NNN ": counted by status (a look at 12 bytes). */
	if (err >= 0 && len > 12 && memcmp(buf, "SIP/2.0 ", 8) == 0) {
		unsigned code =
			(unsigned)(buf[8] - '0') * 100 + (unsigned)(buf[9] - '0') * 10 + (unsigned)(buf[10] - '0');
		if (code >= 100 && code <= 699)
			s->stats.responses[code - 100]++;
	}
	if (err >= 0) {
		struct str cid = s->rx_call_id;
#ifndef NDEBUG
		/* Debug builds (the test suite's) check that what deliver sends is its own call's. */
		if (cid.l && capture_on(s->capture))
			assert(str_eq(cid, capture_find_call_id((struct str){ buf, len })));
#endif
		/* Sent on its own (a retransmission, a keepalive): a request by its first word. */
		bool keep = cid.l ? s->rx_keep
				  : !(len > 8 && (!memcmp(buf, "REGISTER ", 9) || !memcmp(buf, "OPTIONS ", 8)));
		capture_hop(s, true, dst, lis, buf, len, cid, keep);
	}
	if (err < 0 && LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "send", "to %s failed: %s", to, strerror(-err));
	return err;
}

/* ---- defences ---------------------------------------------------------------------------- */

static void log_reject(struct server *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vlimited(s->lg, &s->lim_reject, now_ms(s), LOG_INFO, "reject", fmt, ap);
	va_end(ap);
}

static void log_drop(struct server *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vlimited(s->lg, &s->lim_drop, now_ms(s), LOG_INFO, "drop", fmt, ap);
	va_end(ap);
}

static int ban_row(const struct store_ban *b, void *arg)
{
	struct server *s = arg;
	struct tp_addr a;
	if (tp_addr_from_host(&a, b->source, 0) == 0)
		guard_ban_sync_mark(s->guard, &a, (uint64_t)b->until);
	return 0;
}

/* Re-reads the bans table: bans made by another node, or lifted with `parley ban del`,
 * take effect within BAN_SYNC_MS. */
#define BAN_SYNC_MS 2000
static void ban_sync(struct server *s)
{
	uint64_t now = now_ms(s);
	/* Only bans in force can be lifted: with none (the common case) the table is read
	 * once, at start. */
	if (now < s->ban_sync_at || (s->ban_sync_at && !guard_stats(s->guard)->banned))
		return;
	s->ban_sync_at = now + BAN_SYNC_MS;
	guard_ban_sync_begin(s->guard, now);
	if (store_bans_list(s->store, (int64_t)(now / 1000), ban_row, s) < 0) {
		log_warn(s->lg, "ban", "cannot read the bans table: %s", store_errmsg(s->store));
		return; /* without _end nothing is lifted */
	}
	unsigned lifted = guard_ban_sync_end(s->guard);
	if (lifted)
		log_info(s->lg, "ban", "%u ban%s lifted (removed from the bans table or expired)", lifted,
			 lifted == 1 ? "" : "s");
}

/* Resident memory in bytes, from /proc/self/statm kept open (0 when unknown). */
static uint64_t rss_bytes(struct server *s)
{
	char buf[128];
	if (s->statm_fd < 0)
		return 0;
	ssize_t n = pread(s->statm_fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strchr(buf, ' ');
	return p ? strtoull(p + 1, NULL, 10) * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The memory part of the load: over 80 % of max-memory is the high-water mark. */
static void measure_memory(struct server *s)
{
	uint64_t cap = (uint64_t)s->cfg->server.max_memory << 20, rss = rss_bytes(s);
	int lvl = rss >= cap ? 2 : rss * 5 >= cap * 4 ? 1 : 0;
	if (lvl != s->mem_load)
		log_warn(s->lg, "load", "resident memory %llu MiB of max-memory %u MiB: %s",
			 (unsigned long long)(rss >> 20), s->cfg->server.max_memory,
			 lvl == 2   ? "at the cap, only requests inside dialogs and registration refreshes are served"
			 : lvl == 1 ? "over the high-water mark, new calls get 503"
				    : "back to normal");
	s->mem_load = lvl;
	router_set_memory_load(s->router, lvl);
}

/* A connection failed: the requests sent over it end now rather than at their timeouts. */
static void on_lost(const struct tp_source *dst, int err, void *arg)
{
	struct server *s = arg;
	unsigned n = txn_dest_failed(s->txn, dst, err);
	char to[80];
	if (n)
		log_debug(s->lg, "send", "%s %s unreachable (%s): %u request%s ended", tp_proto_name(dst->proto),
			  tp_addr_str(&dst->addr, to, sizeof to), strerror(-err), n, n == 1 ? "" : "s");
}

/* A message that passed the checks goes to the transaction layer (or, for a response no
 * transaction takes, straight on: §16.7 step 10). */
/* Whether the capture ring keeps m: messages of calls, not of registrations or OPTIONS
 * pings (a request by its method, a response by its CSeq's). */
static bool of_call(const struct sip_msg *m)
{
	enum sip_method k = m->request ? m->mid : m->cseq_method;
	return k != SIP_REGISTER && k != SIP_OPTIONS;
}

static void deliver(struct server *s, const struct sip_msg *m, const struct tp_source *src)
{
	s->rx_call_id = m->call_id;
	s->rx_keep = of_call(m);
	if (!m->request) {
		if (txn_recv_response(s->txn, m, src) == -ENOENT)
			proxy_response_stateless(s->proxy, m, src);
	} else if (txn_recv_request(s->txn, m, src) == -ENOMEM && m->mid != SIP_ACK) {
		txn_reply_stateless(s->txn, m, src, 500, "Server Out of Memory", STR_NULL);
	}
	s->rx_call_id = STR_NULL;
}

/* A message the media relay held comes back, its SDP now rtpengine's: parsed again (it
 * passed the checks already) and delivered. */
static void media_reinject(void *arg, const char *buf, size_t len, const struct tp_source *src)
{
	struct server *s = arg;
	struct sip_msg m;
	struct sip_hdr hdrs[SIP_MAX_HEADERS];
	struct sip_parse_err perr = { 0 };
	if (sip_msg_parse(&m, hdrs, SIP_MAX_HEADERS, buf, len, true, &perr) != SIP_PARSE_OK) {
		log_warn(s->lg, "media", "a message rewritten for the relay does not parse (%s): dropped",
			 perr.reason ? perr.reason : "?");
		return;
	}
	deliver(s, &m, src);
}

/* The proxy saw a call end: the relay deletes it in rtpengine. */
static void media_call_end(void *arg, struct str call_id)
{
	struct server *s = arg;
	media_end(s->media, call_id);
}

/* The relay's figures of an ended call go to its record. */
static void media_figures(void *arg, struct str call_id, const char *text)
{
	struct server *s = arg;
	cdr_media(s->cdr, call_id, text);
}

/* Banned and over-rate sources are dropped before any parsing: the cheapest answer to a
 * flood is none. Trusted peers are never limited. The rate limit is for datagrams: a
 * stream's source cannot be spoofed, connections have caps of their own, and a message
 * dropped from a stream is lost for good (its sender does not retransmit over TCP). Bans
 * hold on every transport. */
static bool admit(struct server *s, enum tp_proto proto, const struct tp_addr *addr)
{
	struct guard_drop gd = { .log_now = true };
	enum guard_verdict gv = proto == TP_UDP                           ? guard_packet(s->guard, addr, now_ms(s), &gd)
				: guard_banned(s->guard, addr, now_ms(s)) ? GUARD_BANNED
									  : GUARD_PASS;
	if (gv == GUARD_PASS || router_trusted(s->router, addr))
		return true;
	if (gv == GUARD_BANNED)
		s->stats.banned++;
	else
		s->stats.limited++;
	if (gd.log_now) {
		char from[80];
		log_limited(s->lg, &s->lim_limit, now_ms(s), LOG_WARN, "limit",
			    "%s %s: dropping its datagrams (%u dropped before this line)",
			    gv == GUARD_BANNED ? "banned source" : "over the rate limit:",
			    tp_addr_str(addr, from, sizeof from), gd.dropped);
	}
	return false;
}

/* STUN keepalives (answered by the transport) count against the same limits. */
static bool admit_stun(const struct tp_addr *from, void *arg)
{
	return admit(arg, TP_UDP, from);
}

static void on_recv(const struct tp_source *src, char *buf, size_t len, void *arg)
{
	struct server *s = arg;
	struct sip_msg m;
	struct sip_hdr hdrs[SIP_MAX_HEADERS];
	struct sip_parse_err perr = { 0 };
	char from[80];
	if (LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "recv", "from %s %zu bytes%s%s: %.*s",
			  tp_addr_str(&src->addr, from, sizeof from), len, src->proto == TP_UDP ? "" : " over ",
			  src->proto == TP_UDP ? "" : tp_proto_name(src->proto), STR_FMT(first_line(buf, len)));
	/* Keep-alives (RFC 5626 CRLF pings) are not messages. */
	if (len <= 4 && (len == 0 || buf[0] == '\r' || buf[0] == '\n'))
		return;
	if (!admit(s, src->proto, &src->addr))
		return;
	/* A WebSocket message is one SIP message, framed like a datagram: Content-Length may be
	 * left out (RFC 7118 §5). */
	bool whole = src->proto == TP_UDP || src->proto == TP_WS || src->proto == TP_WSS;
	enum sip_parse_result pr = sip_msg_parse(&m, hdrs, SIP_MAX_HEADERS, buf, len, whole, &perr);
	capture_hop(s, false, src, src->lis, buf, len, pr == SIP_PARSE_OK ? m.call_id : STR_NULL,
		    pr == SIP_PARSE_OK && of_call(&m));
	if (pr != SIP_PARSE_OK) {
		s->stats.parse_errors++;
		/* Only a request whose top Via parsed is answered (400 naming the problem): an
		 * answer to anything else would go to an address nobody vouched for, and would
		 * turn junk into a reflection (a 1-byte datagram drawing a 73-byte reply). */
		if (m.request && m.method.l && perr.code && m.via.host.l) {
			log_reject(s, "%.*s from %s: %u %s", STR_FMT(m.method),
				   tp_addr_str(&src->addr, from, sizeof from), perr.code, perr.reason);
			txn_reply_stateless(s->txn, &m, src, perr.code, perr.reason ? perr.reason : "Bad Request",
					    STR_NULL);
			s->rejected++;
		} else {
			s->dropped++;
			if (m.request && m.method.l)
				s->stats.no_via++;
			log_drop(s, "unparsable datagram from %s: %s (%llu dropped)",
				 tp_addr_str(&src->addr, from, sizeof from), perr.reason ? perr.reason : "?",
				 (unsigned long long)s->dropped);
		}
		return;
	}
	const char *why = NULL;
	unsigned code = sip_sanity(&m, &why);
	if (m.request)
		s->stats.requests[m.mid < SERVER_METHODS ? m.mid : SIP_METHOD_OTHER]++;
	if (!m.request) {
		if (code) {
			s->stats.bad_responses++;
			s->dropped++;
			log_debug(s->lg, "drop", "bad response from %s: %s", tp_addr_str(&src->addr, from, sizeof from),
				  why);
			return;
		}
		/* An SDP of a relayed call goes through rtpengine first (media_reinject brings
		 * it back). */
		if (s->media_on && media_intercept(s->media, &m, src))
			return;
		deliver(s, &m, src);
		return;
	}
	if (code) {
		if (m.mid == SIP_ACK)
			return; /* an ACK is never answered */
		if (!m.via.host.l) {
			s->dropped++;
			s->stats.no_via++;
			log_drop(s, "%.*s from %s without a usable Via: %s", STR_FMT(m.method),
				 tp_addr_str(&src->addr, from, sizeof from), why);
			return;
		}
		log_reject(s, "%.*s from %s: %u %s", STR_FMT(m.method), tp_addr_str(&src->addr, from, sizeof from),
			   code, why);
		txn_reply_stateless(s->txn, &m, src, code, why, STR_NULL);
		s->rejected++;
		s->stats.sanity_rejects++;
		return;
	}
	if (s->media_on && media_intercept(s->media, &m, src))
		return;
	deliver(s, &m, src);
}

/* Deletes the call records older than cdr-retention days, at start and then about once
 * an hour; the store's writer thread does the deleting. */
static void cdr_retention_tick(struct server *s)
{
	uint32_t now = (uint32_t)(now_ms(s) / 1000);
	if (!s->cfg->server.cdr_retention || now < s->cdr_prune_at)
		return;
	s->cdr_prune_at = now + 3600;
	if (store_cdr_prune(s->store, (int64_t)now - (int64_t)s->cfg->server.cdr_retention * 86400) < 0)
		log_warn(s->lg, "store", "cannot queue the pruning of old call records: %s", store_errmsg(s->store));
}

static void flush_tick(void *arg)
{
	struct server *s = arg;
	/* Hands the queue to the store's writer thread and returns at once: the loop never
	 * waits for the database. What comes back is the outcome of the thread's last
	 * attempt; nothing is lost on failure (the changes are retried, and kept in the
	 * journal beside the database once they have waited a second). */
	int err = store_flush(s->store);
	if (err < 0) {
		log_error(s->lg, "store", "flush failed, will retry (%zu changes waiting in memory): %s",
			  store_queue_len(s->store), store_errmsg(s->store));
		s->flush_failing = true;
		s->stats.store_failing = true;
	} else if (err == 0 && s->flush_failing) {
		log_info(s->lg, "store", "flush works again");
		s->flush_failing = false;
		s->stats.store_failing = false;
	}
	cdr_retention_tick(s);
	timer_start(loop_timers(s->loop), &s->flush_timer, s->cfg->server.flush_ms, flush_tick, s);
}

static void sweep_tick(void *arg)
{
	struct server *s = arg;
	uint64_t now = now_ms(s);
	reg_sweep(s->reg, (uint32_t)(now / 1000));
	reg_ping(s->reg, SWEEP_MS);
	dlg_sweep(s->dialogs, (uint32_t)(now / 1000), 256);
	measure_memory(s);
	/* The guard's sweep walks its whole table: every few seconds is enough. */
	if (++s->sweeps % 50 == 0)
		guard_sweep(s->guard, now);
	ban_sync(s);
	log_limit_flush(s->lg, &s->lim_reject, now);
	log_limit_flush(s->lg, &s->lim_drop, now);
	log_limit_flush(s->lg, &s->lim_limit, now);
	router_tick(s->router, now);
	/* A burst leaves tens of thousands of finished transactions (each lives 32 s after
	 * its answer, RFC 3261 timers J/K); once they are gone, give their memory back to
	 * the system so that the resident size reflects what is really held (bindings). */
	const struct txn_stats *ts = txn_layer_stats(s->txn);
	unsigned live = ts->servers + ts->clients;
	if (live > s->txn_peak)
		s->txn_peak = live;
	if (s->txn_peak > 4096 && live < s->txn_peak / 2) {
		malloc_trim(0);
		s->txn_peak = live;
	}
	timer_start(loop_timers(s->loop), &s->sweep_timer, SWEEP_MS, sweep_tick, s);
}

int server_new(struct server **sp, const struct config *cfg, struct loop *loop, struct log *lg, char *err,
	       size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	s->cfg = cfg;
	s->loop = loop;
	s->lg = lg;
	s->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	/* Transactions come and go by the thousand: without this, glibc gives the top of the
	 * heap back and takes it again many times a second, and every page taken again costs a
	 * page fault. Memory is returned after bursts by the sweep (malloc_trim) instead. */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TOP_PAD, 16 * 1024 * 1024);

	/* lock: one server per database; writer: flushes on a thread of their own, a journal
	 * beside the database while it cannot be written (README "Persistence"). */
	struct store_conf sc = { .path = cfg->server.db, .busy_ms = 100, .lock = true, .writer = true };
	int rc = store_open(&s->store, &sc);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_errmsg(s->store));
		goto fail;
	}
	/* 64k slots (~17 MB) and 30 s: see README "Users". */
	if (store_ucache_new(&s->users, s->store, 65536, 30) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct auth_conf ac;
	if (auth_conf_from_cfg(&ac, &cfg->auth) < 0) {
		snprintf(err, errlen, "bad auth-algorithms '%s'", cfg->auth.algorithms);
		goto fail;
	}
	if (auth_new(&s->auth, &ac) < 0 || loc_new(&s->loc) < 0) {
		snprintf(err, errlen, "cannot set up authentication (no randomness or memory)");
		goto fail;
	}
	/* The ring's readers are the HTTP API and dashboard: with capture-memory auto, a
	 * server without an HTTP endpoint keeps no ring and pays nothing for it (parley trace
	 * and HEP take messages live, not from the ring). */
	struct capture_cfg cc = cfg->capture;
	if (strcasecmp(cc.memory, "auto") == 0)
		snprintf(cc.memory, sizeof cc.memory, "%s", cfg->server.http[0] ? CAPTURE_AUTO_MEMORY : "0");
	if (capture_new(&s->capture, &cc, lg, err, errlen) < 0)
		goto fail;
	if (tp_new(&s->tp, loop, on_recv, s) < 0) {
		snprintf(err, errlen, "cannot create the transport");
		goto fail;
	}
	tp_configure(s->tp, &cfg->tp, lg);
	tp_tls_base(s->tp, cfg->server.db);
	tp_on_lost(s->tp, on_lost);
	tp_on_stun(s->tp, admit_stun);
	unsigned protos = 0;
	for (unsigned i = 0; i < cfg->tp.nlisten; i++) {
		if (tp_listen(s->tp, cfg->tp.listen[i], err, errlen) < 0)
			goto fail;
	}
	for (unsigned i = 0; i < tp_listener_count(s->tp); i++)
		protos |= 1u << tp_listener_at(s->tp, i)->proto;
	if (txn_layer_new(&s->txn, &cfg->txn, loop_timers(loop), server_send, s, NULL, NULL) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct reg_env re = {
		.cfg = &cfg->reg, .txn = s->txn, .tp = s->tp, .lg = lg, .loc = s->loc, .store = s->store
	};
	if (reg_new(&s->reg, &re) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	long n = reg_load(s->reg, (uint32_t)(now_ms(s) / 1000));
	if (n < 0) {
		snprintf(err, errlen, "cannot load bindings: %s", store_errmsg(s->store));
		goto fail;
	}
	if (guard_new(&s->guard, &cfg->guard) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (dlg_table_new(&s->dialogs, &cfg->dlg) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (route_new(&s->route, loop, &cfg->route) < 0) {
		snprintf(err, errlen, "cannot start the DNS resolver (bad --dns '%s'?)", cfg->route.dns);
		goto fail;
	}
	/* Targets are reachable on the transports we have listeners for. */
	route_set_protos(s->route, protos);
	if (cdr_new(&s->cdr, s->store, loop_timers(loop)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct media_env me = {
		.cfg = &cfg->media,
		.loop = loop,
		.lg = lg,
		.reinject = media_reinject,
		.figures = media_figures,
		.arg = s,
	};
	if (media_new(&s->media, &me, err, errlen) < 0)
		goto fail;
	s->media_on = media_on(s->media);
	struct proxy_env pe = {
		.cfg = &cfg->proxy,
		.realm = cfg->router.realm,
		.route = s->route,
		.lg = lg,
		.wheel = loop_timers(loop),
		.txn = s->txn,
		.tp = s->tp,
		.cdr = s->cdr,
		.dialogs = s->dialogs,
		.send = server_send,
		.send_arg = s,
		/* Always: a reload may add an rtpengine; media_end costs nothing without relayed
		 * calls. */
		.call_end = media_call_end,
		.call_end_arg = s,
	};
	if (proxy_new(&s->proxy, &pe) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct router_env rv = {
		.cfg = &cfg->router,
		.lg = lg,
		.wheel = loop_timers(loop),
		.txn = s->txn,
		.tp = s->tp,
		.auth = s->auth,
		.users = s->users,
		.store = s->store,
		.loc = s->loc,
		.reg = s->reg,
		.proxy = s->proxy,
		.route = s->route,
		.dialogs = s->dialogs,
		.guard = s->guard,
		.cdr = s->cdr,
		.media = s->media,
		.wall_ms = wall_ms,
		.clock_arg = s,
	};
	if (router_new(&s->router, &rv) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The layer hands every request to the router from now on (DESIGN §2). */
	txn_layer_set_tu(s->txn, &router_tu, s->router);
	timer_start(loop_timers(loop), &s->flush_timer, cfg->server.flush_ms, flush_tick, s);
	timer_start(loop_timers(loop), &s->sweep_timer, SWEEP_MS, sweep_tick, s);

	char doms[1024] = "", lis[1024] = "";
	for (unsigned i = 0; i < cfg->route.ndomain; i++)
		snprintf(doms + strlen(doms), sizeof doms - strlen(doms), "%s%s", i ? " " : "", cfg->route.domain[i]);
	for (unsigned i = 0; i < tp_listener_count(s->tp); i++) {
		struct tp_listener *l = tp_listener_at(s->tp, i);
		snprintf(lis + strlen(lis), sizeof lis - strlen(lis), "%s%s:%s:%u", i ? " " : "",
			 tp_proto_name(l->proto), l->host, l->port);
	}
	if (s->media_on) {
		static const char *const modes[] = { "auto", "always", "never" };
		char ngs[600] = "";
		for (unsigned i = 0; i < cfg->media.nrtpengine; i++)
			snprintf(ngs + strlen(ngs), sizeof ngs - strlen(ngs), "%s%s", i ? " " : "",
				 cfg->media.rtpengine[i]);
		log_info(lg, "start", "media relay: rtpengine %s (media = %s%s)", ngs, modes[cfg->media.mode],
			 cfg->media.required ? ", required" : "");
	} else if (cfg->media.nrtpengine == 0 && cfg->media.mode == MEDIA_ALWAYS) {
		log_warn(lg, "start", "--media always without --rtpengine: no call can be relayed");
	}
	char tpath[600], terr[700];
	/* An in-memory database (the fuzzer's, tests') has no folder to put the socket in. */
	if (strcmp(cfg->server.db, ":memory:") != 0 &&
	    capture_sock_open(&s->trace, s->capture, loop, lg, capture_sock_path(cfg->server.db, tpath, sizeof tpath),
			      terr, sizeof terr) < 0)
		log_warn(lg, "start", "%s: parley trace will not work", terr);
	if (cfg->capture.hep[0])
		log_info(lg, "start", "HEP copies of every message to %s (agent id %u)", cfg->capture.hep,
			 cfg->capture.hep_id);
	log_info(lg, "start", "parley %s serving %s on %s (%ld bindings loaded from %s)", PARLEY_VERSION, doms, lis, n,
		 cfg->server.db);
	*sp = s;
	return 0;
fail:
	server_free(s);
	return 1;
}

void server_free(struct server *s)
{
	if (!s)
		return;
	if (s->loop) {
		timer_stop(loop_timers(s->loop), &s->flush_timer);
		timer_stop(loop_timers(s->loop), &s->sweep_timer);
	}
	capture_sock_close(s->trace);
	router_free(s->router);
	route_free(s->route);
	proxy_free(s->proxy);
	media_free(s->media);
	cdr_free(s->cdr);
	dlg_table_free(s->dialogs);
	guard_free(s->guard);
	if (s->statm_fd >= 0)
		close(s->statm_fd);
	txn_layer_free(s->txn);
	tp_free(s->tp);
	capture_free(s->capture);
	if (s->store) {
		/* Waits for the writer thread to write everything; what the database cannot
		 * take goes to the journal, applied at the next start (the message says so). */
		if (store_sync(s->store) < 0)
			log_error(s->lg, "store", "final flush failed: %s", store_errmsg(s->store));
		store_close(s->store);
	}
	store_ucache_free(s->users);
	reg_free(s->reg);
	loc_free(s->loc);
	auth_free(s->auth);
	free(s);
}

/* ---- reload (SIGHUP) -------------------------------------------------------------------- */

/* What a running server takes from a reloaded config; every other key keeps its value
 * until a restart (SIP listeners, database, TLS files, timers). */
static const char *const live_keys[] = { "domain",         "peer",       "trust",
					 "log-level",      "log-format", "media",
					 "media-required", "rtpengine",  "rtpengine-timeout",
					 "http", /* serve re-creates the endpoint (http_reload) */
					 "metrics-auth" };

struct reload {
	struct server *s;
	struct config *live;
	const struct config *nc;
};

static bool is_live(const struct cfg_key *k)
{
	for (size_t i = 0; i < sizeof live_keys / sizeof live_keys[0]; i++)
		if (k->flag && strcmp(k->flag, live_keys[i]) == 0)
			return true;
	return false;
}

static void on_change(void *arg, const struct cfg_key *k, const char *was, const char *now)
{
	struct reload *rl = arg;
	const char *name = k->name ? k->name : k->flag;
	if (is_live(k)) {
		config_copy_key(rl->live, rl->nc, k);
		log_info(rl->s->lg, "reload", "[%s] %s: %s -> %s", k->section, name, was, now);
	} else {
		log_warn(rl->s->lg, "reload", "[%s] %s: %s -> %s needs a restart; still %s", k->section, name, was, now,
			 was);
	}
}

unsigned server_reload(struct server *s, struct config *live, const struct config *nc)
{
	struct reload rl = { .s = s, .live = live, .nc = nc };
	unsigned n = config_diff(live, nc, on_change, &rl);
	/* The modules that copied or parsed their settings take them again from live. */
	if (route_reload(s->route, &live->route) < 0)
		log_error(s->lg, "reload", "a peer's URI does not parse: domains and peers unchanged");
	router_reload_trust(s->router);
	char err[256];
	if (media_reload(s->media, err, sizeof err) < 0)
		log_error(s->lg, "reload", "media relay: %s", err);
	/* A relay set up by this reload: messages go through it from now on. */
	s->media_on = media_on(s->media);
	if (live->server.http[0] && strcasecmp(live->capture.memory, "auto") == 0 &&
	    capture_stats(s->capture)->ring_size == 0)
		log_warn(s->lg, "reload",
			 "an HTTP endpoint now, but no capture ring (capture-memory = auto started without "
			 "one): call ladders stay empty until a restart");
	s->lg->level = (enum log_level)live->server.log_level;
	s->lg->json = live->server.log_format == 1;
	return n;
}

int server_new_with_hooks(struct server **sp, const struct config *cfg, struct loop *loop, struct log *lg,
			  const struct server_hooks *hooks, char *err, size_t errlen)
{
	/* Nothing is sent during server_new, and the one clock read there (loading bindings)
	 * may see the real time: setting the hooks afterwards keeps server_new untouched. */
	int rc = server_new(sp, cfg, loop, lg, err, errlen);
	if (rc == 0 && hooks)
		(*sp)->hooks = *hooks;
	return rc;
}

void server_inject(struct server *s, const struct tp_source *src, char *buf, size_t len)
{
	struct tp_source in = *src;
	/* A datagram always arrives on some socket; responses go back through it. */
	if (!in.lis)
		in.lis = tp_pick(s->tp, in.proto, &in.addr, NULL);
	if (!in.lis)
		return;
	on_recv(&in, buf, len, s);
}

void server_parts(const struct server *s, struct server_parts *out)
{
	out->txn = s->txn;
	out->loc = s->loc;
	out->router = s->router;
	out->route = s->route;
	out->store = s->store;
	out->tp = s->tp;
	out->proxy = s->proxy;
	out->guard = s->guard;
	out->dialogs = s->dialogs;
	out->reg = s->reg;
	out->cdr = s->cdr;
	out->media = s->media;
	out->capture = s->capture;
}

/* ---- changes an admin asks for ---------------------------------------------------------- */

/* Checks domain (a served one) and password, then the HA1 values as `parley user` makes
 * them: over the configured realm or, when none is configured, the lowercased domain. */
static int ha1_of(struct server *s, struct str user, struct str domain, struct str password, char md5[AUTH_HEX_MAX],
		  char sha256[AUTH_HEX_MAX])
{
	if (route_domain(s->route, domain) < 0)
		return -EINVAL;
	if (password.l == 0 || password.l > 1023)
		return -EINVAL;
	char dom[256];
	struct str realm = str_from_cstr(s->cfg->router.realm);
	if (realm.l == 0) {
		if (domain.l >= sizeof dom)
			return -EINVAL;
		for (size_t i = 0; i < domain.l; i++)
			dom[i] = (char)((domain.p[i] >= 'A' && domain.p[i] <= 'Z') ? domain.p[i] + 32 : domain.p[i]);
		realm = (struct str){ dom, domain.l };
	}
	if (auth_ha1(AUTH_MD5, user, realm, password, md5) < 0 ||
	    auth_ha1(AUTH_SHA256, user, realm, password, sha256) < 0)
		return -EINVAL;
	return 0;
}

static int user_change(struct server *s, bool add, struct str user, struct str domain, struct str password)
{
	char md5[AUTH_HEX_MAX], sha256[AUTH_HEX_MAX];
	int err = ha1_of(s, user, domain, password, md5, sha256);
	if (err)
		return err;
	err = add ? store_user_add(s->store, user, domain, md5, sha256)
		  : store_user_passwd(s->store, user, domain, md5, sha256);
	if (err)
		return err;
	store_ucache_forget(s->users, user, domain);
	log_info(s->lg, "user", "%s %.*s@%.*s (HTTP API)", add ? "added" : "changed the password of", STR_FMT(user),
		 STR_FMT(domain));
	return 0;
}

int server_user_add(struct server *s, struct str user, struct str domain, struct str password)
{
	return user_change(s, true, user, domain, password);
}

int server_user_passwd(struct server *s, struct str user, struct str domain, struct str password)
{
	return user_change(s, false, user, domain, password);
}

int server_user_del(struct server *s, struct str user, struct str domain)
{
	int err = store_user_del(s->store, user, domain);
	if (err)
		return err;
	store_ucache_forget(s->users, user, domain);
	log_info(s->lg, "user", "deleted %.*s@%.*s (HTTP API)", STR_FMT(user), STR_FMT(domain));
	return 0;
}

int server_unbind(struct server *s, struct str aor, struct str contact)
{
	return reg_unbind(s->reg, aor, contact) ? 0 : -ENOENT;
}

const struct server_stats *server_stats(const struct server *s)
{
	return &s->stats;
}
