/* server.c: wires one Parley instance together: transport -> parser -> transactions -> router. */
#include "router/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "router/router.h"
#include "router/server_int.h"

#define SWEEP_MS 100

uint32_t server_now(const struct server *s)
{
	if (s->hooks.wall_ms)
		return (uint32_t)(s->hooks.wall_ms(s->hooks.clock_arg) / 1000);
	return (uint32_t)(clock_wall_ms() / 1000);
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

void server_reply_stateless(struct server *s, const struct sip_msg *m, const struct tp_source *src,
			    unsigned code, const char *reason, struct str extra)
{
	char buf[SIP_MAX_MSG];
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
	sip_out_init(&o, buf, sizeof buf);
	if (sip_print_response(&o, m, code, reason, &opt) < 0 || o.overflow)
		return;
	struct tp_source dst = *src;
	if (m->via.host.l)
		txn_response_dest(&dst, m, src);
	server_send(s, &dst, o.p, o.len);
}

static void on_recv(const struct tp_source *src, char *buf, size_t len, void *arg)
{
	struct server *s = arg;
	struct sip_msg m;
	struct sip_parse_err perr = { 0 };
	char from[80];
	if (LOG_ENABLED(s->lg, LOG_DEBUG))
		log_write(s->lg, LOG_DEBUG, "recv", "from %s %zu bytes: %.*s", tp_addr_str(&src->addr, from, sizeof from),
			  len, STR_FMT(first_line(buf, len)));
	/* Keep-alives (RFC 5626 CRLF pings) are not messages. */
	if (len <= 4 && (len == 0 || buf[0] == '\r' || buf[0] == '\n'))
		return;
	enum sip_parse_result pr = sip_msg_parse(&m, buf, len, src->proto == TP_UDP, &perr);
	if (pr != SIP_PARSE_OK) {
		/* A request whose Via did not parse is still answered, at the address it came
		 * from (RFC 4475 badinv01 wants a 400); a response never is. */
		if (m.request && m.method.l && perr.code) {
			log_info(s->lg, "reject", "%s from %s: %u %s", m.method.l ? "request" : "message",
				 tp_addr_str(&src->addr, from, sizeof from), perr.code, perr.reason);
			server_reply_stateless(s, &m, src, perr.code ? perr.code : 400,
					       perr.reason ? perr.reason : "Bad Request", STR_NULL);
			s->rejected++;
		} else {
			s->dropped++;
			log_debug(s->lg, "drop", "unparsable datagram from %s: %s (%llu dropped)",
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
		log_info(s->lg, "reject", "%.*s from %s: %u %s", STR_FMT(m.method),
			 tp_addr_str(&src->addr, from, sizeof from), code, why);
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

static void flush_tick(void *arg)
{
	struct server *s = arg;
	if (store_queue_len(s->store)) {
		int err = store_flush(s->store);
		if (err < 0) {
			/* Nothing is lost: the queue is kept and retried on the next tick. */
			log_error(s->lg, "store", "flush failed, %zu changes kept for retry: %s",
				  store_queue_len(s->store), store_errmsg(s->store));
			s->flush_failing = true;
		} else if (s->flush_failing) {
			log_info(s->lg, "store", "flush works again");
			s->flush_failing = false;
		}
	}
	timer_start(loop_timers(s->loop), &s->flush_timer, s->cfg->flush_ms, flush_tick, s);
}

static void sweep_tick(void *arg)
{
	struct server *s = arg;
	reg_sweep(s->reg, server_now(s));
	/* A burst leaves tens of thousands of finished transactions (each lives 32 s after
	 * its answer, RFC 3261 timers J/K); once they are gone, give their memory back to
	 * the system so that the resident size reflects what is really held (bindings). */
	const struct txn_stats *ts = txn_layer_stats(s->txn);
	unsigned live = ts->servers + ts->clients;
	if (live > s->txn_peak)
		s->txn_peak = live;
	if (s->txn_peak > 4096 && live < s->txn_peak / 8) {
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
	/* Transactions come and go by the thousand: without this, glibc gives the top of the
	 * heap back and takes it again many times a second, and every page taken again costs a
	 * page fault. Memory is returned after bursts by the sweep (malloc_trim) instead. */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TOP_PAD, 16 * 1024 * 1024);

	local_addresses(s);
	struct store_conf sc = { .path = cfg->db, .busy_ms = 100 };
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
	if (route_new(&s->route, loop, cfg) < 0) {
		snprintf(err, errlen, "cannot start the DNS resolver (bad --dns '%s'?)", cfg->dns);
		goto fail;
	}
	struct proxy_env pe = {
		.cfg = cfg, .lg = lg, .wheel = loop_timers(loop), .txn = s->txn, .tp = s->tp,
		.store = s->store, .send = server_send, .send_arg = s,
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
	route_free(s->route);
	proxy_free(s->proxy);
	txn_layer_free(s->txn);
	tp_free(s->tp);
	if (s->store) {
		if (store_queue_len(s->store) && store_flush(s->store) < 0)
			log_error(s->lg, "store", "final flush failed, %zu changes lost: %s", store_queue_len(s->store),
				  store_errmsg(s->store));
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
