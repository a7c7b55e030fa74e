/* metrics.c: /metrics: the counters Parley's modules keep, written in the Prometheus text exposition format. */
#include "http/http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "capture/capture.h"
#include "dialog/dialog.h"
#include "guard/guard.h"
#include "location/location.h"
#include "media/media.h"
#include "proxy/proxy.h"
#include "registrar/registrar.h"
#include "route/route.h"
#include "router/router.h"
#include "sip/sip.h"
#include "store/store.h"
#include "transport/transport.h"
#include "txn/txn.h"

void http__printf(struct http_buf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* The HELP and TYPE lines of one metric family. */
static void family(struct http_buf *b, const char *name, const char *type, const char *help)
{
	http__printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with a single sample and no labels. */
static void single(struct http_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	family(b, name, type, help);
	http__printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* One sample with one label. */
static void labelled(struct http_buf *b, const char *name, const char *label, const char *value, uint64_t v)
{
	http__printf(b, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

static void sip_side(struct http_buf *b, const struct server_stats *ss)
{
	family(b, "parley_requests_received_total", "counter",
	       "SIP requests received that parsed, by method (retransmissions included).");
	for (unsigned m = 1; m < SERVER_METHODS; m++)
		labelled(b, "parley_requests_received_total", "method", sip_method_name((enum sip_method)m),
			 ss->requests[m]);
	labelled(b, "parley_requests_received_total", "method", "other", ss->requests[SIP_METHOD_OTHER]);

	family(b, "parley_responses_sent_total", "counter",
	       "SIP responses sent, by status class and code (retransmissions and forwarded responses included).");
	bool any = false;
	for (unsigned i = 0; i < 600; i++) {
		if (!ss->responses[i])
			continue;
		any = true;
		http__printf(b, "parley_responses_sent_total{class=\"%uxx\",code=\"%u\"} %llu\n", (i + 100) / 100,
			     i + 100, (unsigned long long)ss->responses[i]);
	}
	/* A family with no sample at all is legal but invisible: show the 2xx class at 0. */
	if (!any)
		http__printf(b, "parley_responses_sent_total{class=\"2xx\",code=\"200\"} 0\n");

	family(b, "parley_parse_errors_total", "counter",
	       "SIP messages that did not parse (answered 400 when possible, else dropped).");
	http__printf(b, "parley_parse_errors_total %llu\n", (unsigned long long)ss->parse_errors);
	family(b, "parley_messages_rejected_total", "counter",
	       "SIP messages refused by the sanity checks, by what was done with them (dropped_no_via also counts "
	       "unparsable requests without a usable Via).");
	labelled(b, "parley_messages_rejected_total", "action", "answered", ss->sanity_rejects);
	labelled(b, "parley_messages_rejected_total", "action", "dropped_no_via", ss->no_via);
	labelled(b, "parley_messages_rejected_total", "action", "dropped_response", ss->bad_responses);
}

static void txn_side(struct http_buf *b, const struct txn_stats *ts)
{
	family(b, "parley_transactions_active", "gauge", "SIP transactions alive now, by kind.");
	labelled(b, "parley_transactions_active", "kind", "server", ts->servers);
	labelled(b, "parley_transactions_active", "kind", "client", ts->clients);
	family(b, "parley_transactions_total", "counter", "SIP transactions created, by kind.");
	labelled(b, "parley_transactions_total", "kind", "server", ts->servers_total);
	labelled(b, "parley_transactions_total", "kind", "client", ts->clients_total);
	single(b, "parley_retransmissions_total", "counter",
	       "SIP requests and responses Parley sent again (timers A, E, G and answers to retransmitted requests).",
	       ts->retransmits);
	single(b, "parley_retransmissions_absorbed_total", "counter",
	       "Retransmitted SIP requests and responses received and absorbed by a transaction.", ts->absorbed);
	single(b, "parley_transaction_timeouts_total", "counter", "SIP transactions that timed out (timers B, F, H).",
	       ts->timeouts);

	family(b, "parley_response_time_seconds", "histogram",
	       "Time from a request in to its first final response out (requests that passed the checks; ACK has "
	       "none).");
	uint64_t cum = 0;
	for (unsigned i = 0; i < TXN_RT_BUCKETS; i++) {
		cum += ts->rt_bucket[i];
		http__printf(b, "parley_response_time_seconds_bucket{le=\"%g\"} %llu\n", txn_rt_bounds_us[i] / 1e6,
			     (unsigned long long)cum);
	}
	cum += ts->rt_bucket[TXN_RT_BUCKETS];
	http__printf(b, "parley_response_time_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	http__printf(b, "parley_response_time_seconds_sum %.6f\n", ts->rt_sum_us / 1e6);
	http__printf(b, "parley_response_time_seconds_count %llu\n", (unsigned long long)ts->rt_count);
}

static void calls_side(struct http_buf *b, const struct server_parts *sp)
{
	const struct proxy_stats *ps = proxy_stats(sp->proxy);
	const struct router_stats *rs = router_stats(sp->router);
	single(b, "parley_dialogs_active", "gauge", "Dialogs Parley record-routed and still follows.",
	       dlg_count(sp->dialogs));
	single(b, "parley_calls_active", "gauge", "Calls (INVITE dialogs through the proxy) in progress.", ps->active);
	family(b, "parley_calls_total", "counter",
	       "Calls by result: answered, busy, cancelled, noanswer, failed (through the proxy), refused (before "
	       "it).");
	labelled(b, "parley_calls_total", "result", "answered", ps->answered);
	labelled(b, "parley_calls_total", "result", "busy", ps->busy);
	labelled(b, "parley_calls_total", "result", "cancelled", ps->cancelled);
	labelled(b, "parley_calls_total", "result", "noanswer", ps->noanswer);
	labelled(b, "parley_calls_total", "result", "failed", ps->failed);
	labelled(b, "parley_calls_total", "result", "refused", rs->refused_calls);
	single(b, "parley_calls_started_total", "counter", "Calls the proxy forwarded.", ps->calls);
	single(b, "parley_requests_pending", "gauge", "Requests forwarded and not yet answered upstream.", ps->pending);
	single(b, "parley_requests_shed_total", "counter", "Requests refused with 503 because of load.", rs->shed);
	single(b, "parley_dns_waiting", "gauge", "Requests for foreign domains waiting for DNS.", rs->waiting);
	const struct route_stats *ds = route_stats(sp->route);
	single(b, "parley_dns_lookups_total", "counter", "Resolutions (RFC 3263: NAPTR, SRV, A, AAAA) sent to DNS.",
	       ds->lookups);
	single(b, "parley_dns_lookup_failures_total", "counter", "Resolutions sent to DNS that found no target.",
	       ds->failures);
	single(b, "parley_dns_cache_hits_total", "counter", "Destinations found in the DNS cache.", ds->cache_hits);

	single(b, "parley_auth_challenges_total", "counter", "Digest challenges sent (401 and 407).", rs->challenges);
	family(b, "parley_auth_failures_total", "counter", "Credentials refused, by reason.");
	labelled(b, "parley_auth_failures_total", "reason", "bad_password", rs->auth_failures - rs->auth_unknown_user);
	labelled(b, "parley_auth_failures_total", "reason", "unknown_user", rs->auth_unknown_user);
	labelled(b, "parley_auth_failures_total", "reason", "stale_nonce", rs->auth_stale);
	labelled(b, "parley_auth_failures_total", "reason", "replay", rs->auth_replay);
	labelled(b, "parley_auth_failures_total", "reason", "uri_mismatch", rs->auth_uri_mismatch);
	labelled(b, "parley_auth_failures_total", "reason", "bad_credentials", rs->auth_bad_request);

	single(b, "parley_bindings", "gauge", "Registered contacts (bindings) in the location table.",
	       loc_binding_count(sp->loc));
	single(b, "parley_aors", "gauge", "Addresses of record with at least one binding.", loc_aor_count(sp->loc));
	const struct reg_ping_stats *rp = reg_ping_stats(sp->reg);
	family(b, "parley_nat_pings_total", "counter", "NAT keepalive OPTIONS sent to registered phones, by outcome.");
	labelled(b, "parley_nat_pings_total", "outcome", "sent", rp->sent);
	labelled(b, "parley_nat_pings_total", "outcome", "answered", rp->answered);
	labelled(b, "parley_nat_pings_total", "outcome", "missed", rp->missed);
	labelled(b, "parley_nat_pings_total", "outcome", "unreachable", rp->unreachable);
}

static void guard_side(struct http_buf *b, const struct guard_stats *gs)
{
	single(b, "parley_rate_limited_total", "counter", "Datagrams dropped by the per-source rate limit.",
	       gs->limited);
	single(b, "parley_banned_drops_total", "counter", "Datagrams dropped because their source is banned.",
	       gs->banned_drops);
	single(b, "parley_bans_total", "counter", "Sources banned for repeated failed authentication.", gs->bans);
	single(b, "parley_banned_sources", "gauge", "Sources holding a ban now.", gs->banned);
}

static void transport_side(struct http_buf *b, const struct tp_stats *t)
{
	single(b, "parley_messages_received_total", "counter", "SIP messages received on every transport.", t->rx_msgs);
	single(b, "parley_messages_sent_total", "counter", "SIP messages sent on every transport.", t->tx_msgs);
	single(b, "parley_received_bytes_total", "counter", "Bytes of SIP received.", t->rx_bytes);
	single(b, "parley_sent_bytes_total", "counter", "Bytes of SIP sent.", t->tx_bytes);
	single(b, "parley_send_errors_total", "counter", "Sends that failed.", t->tx_errors);
	single(b, "parley_stun_keepalives_total", "counter", "STUN keepalives answered on the UDP port.",
	       t->stun_answered);
	family(b, "parley_stun_dropped_total", "counter",
	       "STUN keepalives not answered, by reason: malformed, or refused (the source's rate limit or ban).");
	labelled(b, "parley_stun_dropped_total", "reason", "malformed", t->stun_dropped);
	labelled(b, "parley_stun_dropped_total", "reason", "refused", t->stun_refused);
	static const char *const names[] = { [TP_TCP] = "tcp", [TP_TLS] = "tls", [TP_WS] = "ws", [TP_WSS] = "wss" };
	family(b, "parley_connections_open", "gauge", "Stream connections open now, by transport.");
	for (unsigned p = TP_TCP; p <= TP_WSS; p++)
		labelled(b, "parley_connections_open", "transport", names[p], t->open_by[p]);
	family(b, "parley_connections_accepted_total", "counter", "Stream connections accepted, by transport.");
	for (unsigned p = TP_TCP; p <= TP_WSS; p++)
		labelled(b, "parley_connections_accepted_total", "transport", names[p], t->accepted_by[p]);
	family(b, "parley_connections_refused_total", "counter",
	       "Stream connections refused at accept (connection caps, memory), by transport.");
	for (unsigned p = TP_TCP; p <= TP_WSS; p++)
		labelled(b, "parley_connections_refused_total", "transport", names[p], t->refused_by[p]);
	single(b, "parley_connections_dialed_total", "counter", "Stream connections Parley opened to others.",
	       t->tcp_dialed);
	single(b, "parley_connections_closed_total", "counter", "Stream connections closed.", t->tcp_closed);
	family(b, "parley_tls_handshakes_total", "counter", "TLS handshakes, by result.");
	labelled(b, "parley_tls_handshakes_total", "result", "ok", t->tls_handshakes);
	labelled(b, "parley_tls_handshakes_total", "result", "failed", t->tls_failed);
	labelled(b, "parley_tls_handshakes_total", "result", "timeout", t->tls_timeouts);
}

/* The capture ring, the HEP export and the live listeners (trace clients, event streams). */
static void capture_side(struct http_buf *b, const struct capture_stats *c)
{
	single(b, "parley_capture_messages_total", "counter", "Messages captured (received and sent).", c->captured);
	single(b, "parley_capture_kept_total", "counter", "Captured messages copied into the ring.", c->kept);
	single(b, "parley_capture_ring_bytes", "gauge", "Bytes of the capture ring holding messages now.",
	       c->ring_bytes);
	single(b, "parley_capture_ring_size_bytes", "gauge", "Size of the capture ring (--capture-memory).",
	       c->ring_size);
	single(b, "parley_capture_calls", "gauge", "Calls with messages in the capture ring now.", c->calls);
	single(b, "parley_capture_calls_evicted_total", "counter", "Calls dropped whole from the ring to make room.",
	       c->calls_evicted);
	single(b, "parley_capture_listeners", "gauge", "Live capture listeners (trace clients, event streams).",
	       c->listeners);
	family(b, "parley_hep_packets_total", "counter", "HEP packets sent to the --hep collector, by result.");
	labelled(b, "parley_hep_packets_total", "result", "sent", c->hep_sent);
	labelled(b, "parley_hep_packets_total", "result", "failed", c->hep_errors);
}

void http__metrics(struct http_buf *b, const struct server *srv, uint64_t uptime_s)
{
	struct server_parts sp;
	server_parts(srv, &sp);
	const struct server_stats *ss = server_stats(srv);
	family(b, "parley_build_info", "gauge", "Always 1; the version of this Parley in a label.");
	http__printf(b, "parley_build_info{version=\"%s\"} 1\n", PARLEY_VERSION);
	single(b, "parley_uptime_seconds", "gauge", "Seconds since this Parley started.", uptime_s);
	sip_side(b, ss);
	txn_side(b, txn_layer_stats(sp.txn));
	calls_side(b, &sp);
	guard_side(b, guard_stats(sp.guard));
	transport_side(b, tp_stats(sp.tp));
	single(b, "parley_store_queue_changes", "gauge", "Changes waiting to be written to the database.",
	       store_queue_len(sp.store));
	single(b, "parley_store_queue_bytes", "gauge", "Bytes of changes waiting to be written to the database.",
	       store_queue_bytes(sp.store));
	const struct store_flush_stats *fs = store_flush_stats(sp.store);
	family(b, "parley_store_flushes_total", "counter",
	       "Writes of queued changes to the database (one transaction each), by result.");
	labelled(b, "parley_store_flushes_total", "result", "ok", fs->attempts - fs->failures);
	labelled(b, "parley_store_flushes_total", "result", "failed", fs->failures);
	family(b, "parley_store_flush_seconds_total", "counter",
	       "Time the writer thread spent writing to the database (divide by the flushes for the mean).");
	http__printf(b, "parley_store_flush_seconds_total %.6f\n", fs->busy_us / 1e6);
	family(b, "parley_store_flush_last_seconds", "gauge", "Time the last write to the database took.");
	http__printf(b, "parley_store_flush_last_seconds %.6f\n", fs->last_us / 1e6);
	single(b, "parley_store_failing", "gauge", "1 while the last write of the database failed, else 0.",
	       ss->store_failing);
	const struct media_stats *ms = media_stats(sp.media);
	single(b, "parley_media_calls_active", "gauge", "Calls whose media rtpengine relays now.", ms->calls);
	single(b, "parley_media_failures_total", "counter", "rtpengine commands that failed.", ms->failures);
	capture_side(b, capture_stats(sp.capture));
}
