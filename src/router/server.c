/* server.c: wires one Parley instance together: transport -> parser -> transactions -> router. */
#include "router/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "router/router.h"
#include "router/server_int.h"

#define SWEEP_MS 100

/* Wall clock in ms, or the test seam's. */
static uint64_t now_ms(const struct server *s)
{
	if (s->hooks.wall_ms)
		return s->hooks.wall_ms(s->hooks.clock_arg);
	return clock_wall_ms();
}

uint32_t server_now(const struct server *s)
{
	return (uint32_t)(now_ms(s) / 1000);
}

/* The first line of a message, for debug logs. */
static struct str first_line(const char *buf, size_t len)
{
	const char *e = memchr(buf, '\r', len);
	size_t n = e ? (size_t)(e - buf) : len;
	return (struct str){ buf, n > 200 ? 200 : n };
}

int server_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct server *s = arg;
	struct tp_listener *lis = dst->lis ? dst->lis : tp_pick(s->tp, dst->proto, &dst->addr, NULL);
	char to[80];
	if (!lis) {
		log_warn(s->lg, "send", "no listener can reach %s", tp_addr_str(&dst->addr, to, sizeof to));
		return -ENETUNREACH;
	}
	if (LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "send", "to %s %zu bytes: %.*s", tp_addr_str(&dst->addr, to, sizeof to),
			  len, STR_FMT(first_line(buf, len)));
	int err = s->hooks.send ? s->hooks.send(s->hooks.send_arg, dst, buf, len) :
		tp_send(lis, &dst->addr, dst->conn_id, buf, len);
	if (err < 0 && LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "send", "to %s failed: %s", to, strerror(-err));
	return err;
}

static size_t print_stateless(struct server *s, const struct sip_msg *m, const struct tp_source *src, unsigned code,
			      const char *reason, struct str extra, char *out, size_t cap, struct tp_source *dst);

void server_reply_stateless(struct server *s, const struct sip_msg *m, const struct tp_source *src,
			    unsigned code, const char *reason, struct str extra)
{
	char buf[SIP_MAX_MSG];
	struct tp_source dst;
	size_t len = print_stateless(s, m, src, code, reason, extra, buf, sizeof buf, &dst);
	if (len)
		server_send(s, &dst, buf, len);
}

/* ---- defences ---------------------------------------------------------------------------- */

static void vlog_limited(struct server *s, struct log_limit *lim, enum log_level lvl, const char *event,
			 const char *fmt, va_list ap)
{
	if (!LOG_ENABLED(s->lg, lvl))
		return;
	char line[1024];
	vsnprintf(line, sizeof line, fmt, ap);
	log_limited(s->lg, lim, now_ms(s), lvl, event, "%s", line);
}

void server_log_reject(struct server *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_limited(s, &s->lim_reject, LOG_INFO, "reject", fmt, ap);
	va_end(ap);
}

void server_log_drop(struct server *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_limited(s, &s->lim_drop, LOG_INFO, "drop", fmt, ap);
	va_end(ap);
}

/* An answer held back: repeated failed logins are answered later and later, so that
 * guessing passwords from one place, or against one user, slows to a crawl. */
struct server_delayed {
	struct server_delayed *prev, *next;
	struct server *s;
	struct timer t;
	struct tp_source dst;
	size_t len;
	char buf[];
};
#define MAX_DELAYED 4096

static void delayed_unlink(struct server *s, struct server_delayed *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		s->delayed = d->next;
	if (d->next)
		d->next->prev = d->prev;
	s->ndelayed--;
}

static void delayed_fire(void *arg)
{
	struct server_delayed *d = arg;
	struct server *s = d->s;
	delayed_unlink(s, d);
	server_send(s, &d->dst, d->buf, d->len);
	free(d);
}

/* Prints a stateless response into out; returns its length, or 0. */
static size_t print_stateless(struct server *s, const struct sip_msg *m, const struct tp_source *src, unsigned code,
			      const char *reason, struct str extra, char *out, size_t cap, struct tp_source *dst)
{
	struct sip_out o;
	struct sip_resp_opts opt = { 0 };
	struct txn_via_text vt;
	char tag[TXN_TAG_SIZE];
	opt.extra = extra;
	opt.server = STR("Parley " PARLEY_VERSION);
	if (code > 100 && m->to.tag.l == 0)
		opt.to_tag = (struct str){ tag, txn_make_tag(s->txn, tag) };
	if (m->via.host.l)
		txn_response_via(&opt, &vt, m, src);
	sip_out_init(&o, out, cap);
	if (sip_print_response(&o, m, code, reason, &opt) < 0 || o.overflow)
		return 0;
	*dst = *src;
	if (m->via.host.l)
		txn_response_dest(dst, m, src);
	return o.len;
}

/* Writes a ban to the store, so that it survives a restart and `parley ban list` shows it. */
static void server_store_ban(struct server *s, const char *host, uint64_t until_s, struct str aor)
{
	char reason[300];
	snprintf(reason, sizeof reason, "%u failed authentications within %u s (last for %.*s)", s->cfg->ban_threshold,
		 s->cfg->ban_window, STR_FMT(aor));
	struct store_ban b = { str_from_cstr(host), (int64_t)until_s, str_from_cstr(reason), (int64_t)server_now(s) };
	if (store_ban_put(s->store, &b) < 0)
		log_error(s->lg, "ban", "cannot record the ban of %s: %s (it holds until restart)", host, store_errmsg(s->store));
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
		log_info(s->lg, "ban", "%u ban%s lifted (removed from the bans table or expired)", lifted, lifted == 1 ? "" : "s");
}

/* Keys of the guard: the source, and the user the credentials named. */
void server_auth_ok(struct server *s, const struct tp_source *src, struct str aor)
{
	guard_auth_ok(s->guard, &src->addr, aor);
}

void server_auth_failed(struct server *s, const struct sip_msg *m, const struct tp_source *src, struct str aor,
			const char *why, const char *what)
{
	char from[80], host[64];
	struct guard_auth_out out;
	s->stats.auth_failures++;
	tp_addr_str(&src->addr, from, sizeof from);
	guard_auth_failed(s->guard, &src->addr, aor, now_ms(s), &out);
	log_limited(s->lg, &s->lim_auth, now_ms(s), LOG_INFO, "auth", "failed authentication for %.*s from %s: %s (%s, %u failures from this source)",
		    STR_FMT(aor), from, why, what, out.src_failures);
	if (out.banned) {
		/* One line per ban, in a form fail2ban can match ("banned <HOST> for"). */
		tp_addr_host(&src->addr, host, sizeof host);
		log_warn(s->lg, "ban", "banned %s for %u s: %u failed authentications within %u s (last for %.*s)", host,
			 s->cfg->ban_time, s->cfg->ban_threshold, s->cfg->ban_window, STR_FMT(aor));
		server_store_ban(s, host, out.until_s, aor);
		return; /* a banned source gets no answer */
	}
	char buf[2048];
	struct tp_source dst;
	size_t len = print_stateless(s, m, src, 403, "Forbidden", STR_NULL, buf, sizeof buf, &dst);
	if (!len)
		return;
	if (!out.delay_ms) {
		server_send(s, &dst, buf, len);
		return;
	}
	if (s->ndelayed >= MAX_DELAYED)
		return; /* too many held already: this one gets no answer at all */
	struct server_delayed *d = malloc(sizeof(*d) + len);
	if (!d)
		return;
	memset(d, 0, sizeof(*d));
	d->s = s;
	d->dst = dst;
	d->len = len;
	memcpy(d->buf, buf, len);
	d->next = s->delayed;
	if (s->delayed)
		s->delayed->prev = d;
	s->delayed = d;
	s->ndelayed++;
	timer_start(loop_timers(s->loop), &d->t, out.delay_ms, delayed_fire, d);
}

int server_load(const struct server *s)
{
	/* Requests still waiting for their answer are what a flood of unanswered calls piles
	 * up; finished transactions linger for their timers too, but at about 1 KB each they
	 * are left to the memory cap. */
	uint64_t live = proxy_stats(s->proxy)->pending;
	uint64_t cap_t = s->cfg->max_transactions, cap_d = s->cfg->max_dialogs;
	unsigned nd = dlg_count(s->dialogs);
	int lvl = s->load; /* memory, measured by the sweep */
	if (live >= cap_t || nd >= cap_d)
		return 2;
	if ((live * 5 >= cap_t * 4 || (uint64_t)nd * 5 >= cap_d * 4) && lvl < 1)
		lvl = 1;
	return lvl;
}

void server_shed(struct server *s, const struct sip_msg *m, const struct tp_source *src, const char *why)
{
	char from[80];
	s->stats.shed++;
	tp_addr_str(&src->addr, from, sizeof from);
	server_log_reject(s, "%.*s %.*s from %s: 503 Service Unavailable (%s)", STR_FMT(m->method), STR_FMT(m->ruri_str),
			  from, why);
	server_reply_stateless(s, m, src, 503, "Service Unavailable", STR("Retry-After: 5\r\n"));
}

bool server_trusted(const struct server *s, const struct tp_addr *a)
{
	for (unsigned i = 0; i < s->ntrust_addr; i++) {
		const struct tp_addr *t = &s->trust_addr[i];
		if (t->ss.ss_family != a->ss.ss_family)
			continue;
		if (a->ss.ss_family == AF_INET && t->ss.in.sin_addr.s_addr == a->ss.in.sin_addr.s_addr)
			return true;
		if (a->ss.ss_family == AF_INET6 &&
		    memcmp(&t->ss.in6.sin6_addr, &a->ss.in6.sin6_addr, sizeof a->ss.in6.sin6_addr) == 0)
			return true;
	}
	return false;
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
	uint64_t cap = (uint64_t)s->cfg->max_memory << 20, rss = rss_bytes(s);
	int lvl = rss >= cap ? 2 : rss * 5 >= cap * 4 ? 1 : 0;
	if (lvl != s->load)
		log_warn(s->lg, "load", "resident memory %llu MiB of max-memory %u MiB: %s",
			 (unsigned long long)(rss >> 20), s->cfg->max_memory,
			 lvl == 2 ? "at the cap, only requests inside dialogs and registration refreshes are served" :
			 lvl == 1 ? "over the high-water mark, new calls get 503" : "back to normal");
	s->load = lvl;
}

static void on_recv(const struct tp_source *src, char *buf, size_t len, void *arg)
{
	struct server *s = arg;
	struct sip_msg m;
	struct sip_hdr hdrs[SIP_MAX_HEADERS];
	struct sip_parse_err perr = { 0 };
	char from[80];
	if (LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "recv", "from %s %zu bytes: %.*s", tp_addr_str(&src->addr, from, sizeof from),
			  len, STR_FMT(first_line(buf, len)));
	/* Keep-alives (RFC 5626 CRLF pings) are not messages. */
	if (len <= 4 && (len == 0 || buf[0] == '\r' || buf[0] == '\n'))
		return;
	/* Banned and over-rate sources are dropped before any parsing: the cheapest answer
	 * to a flood is none. Trusted peers are never limited. */
	struct guard_drop gd;
	enum guard_verdict gv = guard_packet(s->guard, &src->addr, now_ms(s), &gd);
	if (gv != GUARD_PASS && !server_trusted(s, &src->addr)) {
		if (gv == GUARD_BANNED)
			s->stats.banned++;
		else
			s->stats.limited++;
		if (gd.log_now)
			log_limited(s->lg, &s->lim_limit, now_ms(s), LOG_WARN, "limit", "%s %s: dropping its datagrams (%u dropped before this line)",
				    gv == GUARD_BANNED ? "banned source" : "over the rate limit:",
				    tp_addr_str(&src->addr, from, sizeof from), gd.dropped);
		return;
	}
	enum sip_parse_result pr = sip_msg_parse(&m, hdrs, SIP_MAX_HEADERS, buf, len, src->proto == TP_UDP, &perr);
	if (pr != SIP_PARSE_OK) {
		/* Only a request whose top Via parsed is answered (400 naming the problem): an
		 * answer to anything else would go to an address nobody vouched for, and would
		 * turn junk into a reflection (a 1-byte datagram drawing a 73-byte reply). */
		if (m.request && m.method.l && perr.code && m.via.host.l) {
			server_log_reject(s, "%.*s from %s: %u %s", STR_FMT(m.method), tp_addr_str(&src->addr, from, sizeof from),
					  perr.code, perr.reason);
			server_reply_stateless(s, &m, src, perr.code, perr.reason ? perr.reason : "Bad Request", STR_NULL);
			s->rejected++;
		} else {
			s->dropped++;
			if (m.request && m.method.l)
				s->stats.no_via++;
			server_log_drop(s, "unparsable datagram from %s: %s (%llu dropped)",
					tp_addr_str(&src->addr, from, sizeof from), perr.reason ? perr.reason : "?",
					(unsigned long long)s->dropped);
		}
		return;
	}
	const char *why = NULL;
	unsigned code = sip_sanity(&m, &why);
	if (!m.request) {
		if (code) {
			s->dropped++;
			log_debug(s->lg, "drop", "bad response from %s: %s", tp_addr_str(&src->addr, from, sizeof from), why);
			return;
		}
		if (txn_recv_response(s->txn, &m, src) == -ENOENT)
			proxy_response_stateless(s->proxy, &m, src);
		return;
	}
	if (code) {
		if (m.mid == SIP_ACK)
			return; /* an ACK is never answered */
		if (!m.via.host.l) {
			s->dropped++;
			s->stats.no_via++;
			server_log_drop(s, "%.*s from %s without a usable Via: %s", STR_FMT(m.method),
					tp_addr_str(&src->addr, from, sizeof from), why);
			return;
		}
		server_log_reject(s, "%.*s from %s: %u %s", STR_FMT(m.method), tp_addr_str(&src->addr, from, sizeof from),
				  code, why);
		server_reply_stateless(s, &m, src, code, why, STR_NULL);
		s->rejected++;
		return;
	}
	if (txn_recv_request(s->txn, &m, src) == -ENOMEM && m.mid != SIP_ACK)
		server_reply_stateless(s, &m, src, 500, "Server Out of Memory", STR_NULL);
}

static void on_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	router_request(arg, st, m, src);
}

/* Deletes the call records older than cdr-retention days, at start and then about once
 * an hour; the store's writer thread does the deleting. */
static void cdr_retention_tick(struct server *s)
{
	uint32_t now = server_now(s);
	if (!s->cfg->cdr_retention || now < s->cdr_prune_at)
		return;
	s->cdr_prune_at = now + 3600;
	if (store_cdr_prune(s->store, (int64_t)now - (int64_t)s->cfg->cdr_retention * 86400) < 0)
		log_warn(s->lg, "store", "cannot queue the pruning of old call records: %s",
			 store_errmsg(s->store));
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
	} else if (err == 0 && s->flush_failing) {
		log_info(s->lg, "store", "flush works again");
		s->flush_failing = false;
	}
	cdr_retention_tick(s);
	timer_start(loop_timers(s->loop), &s->flush_timer, s->cfg->flush_ms, flush_tick, s);
}

static void sweep_tick(void *arg)
{
	struct server *s = arg;
	uint64_t now = now_ms(s);
	reg_sweep(s->reg, (uint32_t)(now / 1000));
	dlg_sweep(s->dialogs, (uint32_t)(now / 1000), 256);
	measure_memory(s);
	/* The guard's sweep walks its whole table: every few seconds is enough. */
	if (++s->sweeps % 50 == 0)
		guard_sweep(s->guard, now);
	ban_sync(s);
	log_limit_flush(s->lg, &s->lim_reject, now);
	log_limit_flush(s->lg, &s->lim_drop, now);
	log_limit_flush(s->lg, &s->lim_limit, now);
	log_limit_flush(s->lg, &s->lim_auth, now);
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

/* Remembers the machine's addresses: a listener on 0.0.0.0 or :: is reached through any of
 * them, so a Request-URI or Route naming one of them is us. */
static void local_addresses(struct server *s)
{
	struct ifaddrs *ifa, *i;
	if (getifaddrs(&ifa) != 0)
		return;
	for (i = ifa; i && s->nlocal_ip < 16; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		int fam = i->ifa_addr->sa_family;
		const void *a = fam == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr :
			fam == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr : NULL;
		if (a && inet_ntop(fam, a, s->local_ip[s->nlocal_ip], sizeof s->local_ip[0]))
			s->nlocal_ip++;
	}
	freeifaddrs(ifa);
}

static const struct txn_tu tu = {
	.on_request = on_request,
};

int server_new(struct server **sp, const struct config *cfg, struct loop *loop, struct log *lg,
	       char *err, size_t errlen)
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

	local_addresses(s);
	/* lock: one server per database; writer: flushes on a thread of their own, a journal
	 * beside the database while it cannot be written (README "Persistence"). */
	struct store_conf sc = { .path = cfg->db, .busy_ms = 100, .lock = true, .writer = true };
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
	struct auth_conf ac = { .nonce_lifetime = cfg->nonce_lifetime };
	if (auth_algs_parse(&ac, cfg->auth_algorithms) < 0) {
		snprintf(err, errlen, "bad auth-algorithms '%s'", cfg->auth_algorithms);
		goto fail;
	}
	if (auth_new(&s->auth, &ac) < 0 || loc_new(&s->loc) < 0) {
		snprintf(err, errlen, "cannot set up authentication (no randomness or memory)");
		goto fail;
	}
	struct reg_env re = { .cfg = cfg, .lg = lg, .loc = s->loc, .store = s->store };
	if (reg_new(&s->reg, &re) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	long n = reg_load(s->reg, server_now(s));
	if (n < 0) {
		snprintf(err, errlen, "cannot load bindings: %s", store_errmsg(s->store));
		goto fail;
	}
	if (tp_new(&s->tp, loop, on_recv, s) < 0) {
		snprintf(err, errlen, "cannot create the transport");
		goto fail;
	}
	for (unsigned i = 0; i < cfg->nlisten; i++) {
		if (tp_listen(s->tp, cfg->listen[i], err, errlen) < 0)
			goto fail;
	}
	struct txn_cfg tc = { cfg->t1_ms, cfg->t2_ms, cfg->t4_ms };
	if (txn_layer_new(&s->txn, &tc, loop_timers(loop), server_send, s, &tu, s) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct guard_conf gc;
	guard_conf_default(&gc);
	gc.rate_limit = cfg->rate_limit;
	gc.ban_threshold = cfg->ban_threshold;
	gc.ban_window = cfg->ban_window;
	gc.ban_time = cfg->ban_time;
	gc.slow_after = cfg->slow_after;
	if (guard_new(&s->guard, &gc) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < cfg->ntrust; i++)
		if (tp_addr_from_host(&s->trust_addr[s->ntrust_addr], str_from_cstr(cfg->trust[i]), 0) == 0)
			s->ntrust_addr++;
	struct dlg_conf dc = { .max = cfg->max_dialogs };
	if (dlg_table_new(&s->dialogs, &dc) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (route_new(&s->route, loop, cfg) < 0) {
		snprintf(err, errlen, "cannot start the DNS resolver (bad --dns '%s'?)", cfg->dns);
		goto fail;
	}
	struct proxy_env pe = {
		.cfg = cfg, .lg = lg, .wheel = loop_timers(loop), .txn = s->txn, .tp = s->tp,
		.store = s->store, .dialogs = s->dialogs, .send = server_send, .send_arg = s,
	};
	if (proxy_new(&s->proxy, &pe) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	timer_start(loop_timers(loop), &s->flush_timer, cfg->flush_ms, flush_tick, s);
	timer_start(loop_timers(loop), &s->sweep_timer, SWEEP_MS, sweep_tick, s);

	char doms[1024] = "", lis[1024] = "";
	for (unsigned i = 0; i < cfg->ndomain; i++)
		snprintf(doms + strlen(doms), sizeof doms - strlen(doms), "%s%s", i ? " " : "", cfg->domain[i]);
	for (unsigned i = 0; i < tp_listener_count(s->tp); i++) {
		struct tp_listener *l = tp_listener_at(s->tp, i);
		snprintf(lis + strlen(lis), sizeof lis - strlen(lis), "%s%s:%s:%u", i ? " " : "",
			 tp_proto_name(l->proto), l->host, l->port);
	}
	if (cfg->http[0])
		log_warn(lg, "start", "--http %s: the HTTP admin endpoint is not part of this version; ignored", cfg->http);
	log_info(lg, "start", "parley %s serving %s on %s (%ld bindings loaded from %s)", PARLEY_VERSION, doms,
		 lis, n, cfg->db);
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
	router_free_pending(s);
	while (s->delayed) {
		struct server_delayed *d = s->delayed;
		timer_stop(loop_timers(s->loop), &d->t);
		delayed_unlink(s, d);
		free(d);
	}
	route_free(s->route);
	proxy_free(s->proxy);
	dlg_table_free(s->dialogs);
	guard_free(s->guard);
	if (s->statm_fd >= 0)
		close(s->statm_fd);
	txn_layer_free(s->txn);
	tp_free(s->tp);
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
