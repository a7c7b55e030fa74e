/* proxy.h: the stateful proxy core (RFC 3261 §16): forwarding, forking, CANCEL, response selection. */
#ifndef PARLEY_PROXY_H
#define PARLEY_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timer.h"
#include "cdr/cdr.h"
#include "dialog/dialog.h"
#include "route/route.h"
#include "sip/sip.h"
#include "transport/transport.h"
#include "txn/txn.h"

struct proxy;

/* The settings ([server] ring-timeout). */
struct proxy_cfg {
	unsigned ring_timeout; /* --ring-timeout 60 s an INVITE may ring unanswered */
};
extern const struct cfg_key proxy_cfg_keys[];
extern const size_t proxy_cfg_nkeys;
void proxy_cfg_defaults(struct proxy_cfg *c);

/* What the proxy needs from the server that owns it; all must outlive the proxy. */
struct proxy_env {
	const struct proxy_cfg *cfg; /* may be NULL: no ring timeout */
	const char *realm;           /* our digest realm (credentials for it are not passed on);
				       NULL or empty: each served domain is its own realm */
	struct route *route;         /* our domains (is this us); may be NULL in tests */
	struct log *lg;
	struct timer_wheel *wheel;
	struct txn_layer *txn;
	struct transport *tp;
	struct cdr *cdr;           /* call records */
	struct dlg_table *dialogs; /* dialogs record-routed (router opens them, the proxy
				       teaches them the callee's addresses and closes them);
				       may be NULL */
	/* A call is over for the media relay: an INVITE forwarded with call info got a final
	 * failure (busy, cancelled, no answer, ...), or a BYE was answered. May be NULL. */
	void (*call_end)(void *arg, struct str call_id);
	void *call_end_arg;
	/* Sends bytes statelessly (ACK for 2xx, relayed 2xx retransmissions). */
	int (*send)(void *arg, const struct tp_source *dst, const char *buf, size_t len);
	void *send_arg;
};

/* One place to send a branch: the Request-URI it carries and where the bytes go. */
#define PROXY_MAX_ALT 7
#define PROXY_MAX_FLOWS 3

/* Another Outbound flow of the same phone (RFC 5626 §5.3): its contact, Path and where
 * it is reached. */
struct proxy_flow {
	struct str ruri;
	struct str path;
	struct tp_source dst;
};

struct proxy_target {
	struct str ruri;                     /* new Request-URI (a binding's contact); empty: keep */
	struct tp_source dst;                /* listener (may be NULL: picked by the proxy), address, proto */
	struct tp_source alt[PROXY_MAX_ALT]; /* failover (RFC 3263 SRV order): tried in turn when
				       dst times out or answers 503 */
	unsigned nalt;
	struct str branch;                       /* the Via branch of the first transaction to dst (a media relay made
			      its offer for it: rtpengine's via-branch); empty: a fresh one */
	struct str path;                         /* Path header values of the binding (RFC 3327) as Route
				       lines to add, comma separated; may be empty */
	struct proxy_flow flow[PROXY_MAX_FLOWS]; /* the phone's other flows, tried in turn when
				       dst's connection is lost (or it does not answer) before
				       it rang */
	unsigned nflow;
};

/* What a call record needs to know about the request (INVITE only; others: NULL). */
struct proxy_call_info {
	struct str caller; /* "alice@a.test" */
	struct str callee; /* "bob@a.test" */
	struct str media;  /* for the record: "relay udp:127.0.0.1:2223", "direct"; may be empty */
};

struct proxy_fwd_flags {
	bool pop_route;         /* our own address is the top Route: remove it (§16.4) */
	bool pop_second_route;  /* the Route after it is ours too (we record-routed twice, the
				       call crossing transports or address families): remove it too */
	bool record_route;      /* add our Record-Route (initial requests) */
	struct str strict_ruri; /* §16.4 strict-router fix-up done by the router: the new
				       Request-URI when the request came from a strict router
				       (then the last Route was removed: drop_last_route) */
	bool drop_last_route;
	bool dialog;          /* an initial INVITE/SUBSCRIBE/REFER whose dialog the
				       router opened: learn, confirm and close it */
	struct str assert_id; /* P-Asserted-Identity value to add (RFC 3325), or empty */
	bool strip_ids;       /* remove P-Asserted-Identity, P-Preferred-Identity and
				       Remote-Party-ID received (untrusted source) */
	bool new_body;        /* body replaces the request's body (a media relay's SDP) */
	struct str body;
};

int proxy_new(struct proxy **pp, const struct proxy_env *env);
/* Call it before txn_layer_free: it detaches the client transactions still running. */
void proxy_free(struct proxy *p);

/* Forwards the request of server transaction st to every target in parallel (§16.6, one
 * client transaction per target), sends 100 Trying first for INVITE, relays provisional
 * responses, the first 2xx (and later 2xx of the other forks), cancels the other branches on
 * a 2xx or 6xx, picks the best final response (§16.7) when all branches end, runs the ring
 * timer (cfg->ring_timeout for INVITE: cancel all, answer 408 (no answer)), and writes a call
 * record for INVITE when info is given. Max-Forwards must already be checked (> 0) by the
 * router. Returns 0, or an error after which the router answers 500 itself.
 * The proxy takes st's TU slot (txn_server_set_tu) until its final is sent, so that
 * proxy_cancel finds its context; the router must leave that slot alone for st. */
int proxy_forward(struct proxy *p, struct txn_server *st, const struct proxy_target *t, unsigned n,
		  const struct proxy_fwd_flags *fl, const struct proxy_call_info *info);

/* proxy_forward, except that the branches wait: the request is kept (100 Trying is sent for
 * an INVITE) until proxy_release(hold_id), so that a media relay can rewrite its body
 * first. hold_id (non-zero, unique) is the caller's. A CANCEL meanwhile answers 487 at once. */
int proxy_forward_held(struct proxy *p, struct txn_server *st, const struct proxy_target *t, unsigned n,
		       const struct proxy_fwd_flags *fl, const struct proxy_call_info *info, uint64_t hold_id);
/* Starts the branches of a held request, branch i with body[i] as its new body when nbody
 * is the number of targets and body[i] is not empty (a media relay's SDP for that fork);
 * nbody 0 keeps the request's body. Or, when status >= 300, answers it with status (503
 * when a required media relay failed) instead.
 * media is what its call record says of the media from now on ("relay udp:...", "direct").
 * Returns 0, or -ENOENT when the request is gone (cancelled), -errno when no branch started
 * (the request has been answered 500). */
int proxy_release(struct proxy *p, uint64_t hold_id, unsigned status, const struct str *body, unsigned nbody,
		  struct str media);

/* A CANCEL arrived as server transaction cst (already matched by the router to the INVITE
 * server transaction ist, or ist NULL): answers 200 to the CANCEL (481 when ist is NULL or
 * not ours), cancels every pending branch, and the INVITE gets 487 Request Terminated. */
void proxy_cancel(struct proxy *p, struct txn_server *cst, struct txn_server *ist);

/* Forwards a request statelessly (an ACK for a 2xx, §16.11) to dst with the same header
 * edits (Via added with a branch derived from the incoming one, Max-Forwards - 1, Route pop). */
int proxy_forward_stateless(struct proxy *p, const struct sip_msg *req, const struct tp_source *src,
			    const struct proxy_target *t, const struct proxy_fwd_flags *fl);

/* A response no client transaction took (a 2xx retransmission after the transaction ended):
 * if the top Via is ours, remove it and send it to the next Via (§16.7 step 3 / §18.2.2). */
void proxy_response_stateless(struct proxy *p, const struct sip_msg *resp, const struct tp_source *src);

/* The address the first Contact of m names, when its host is numeric (port 5060 when it
 * has none): where requests for its sender may go. Returns false otherwise. */
bool proxy_contact_addr(const struct sip_msg *m, struct tp_addr *a /* OUT */);

/* ---- who we are, and the route set (RFC 3261 §16.3, §16.4) ------------------------------ */

/* Whether a host:port (a Route, Request-URI or Via; port 0 = 5060) is this proxy: one of
 * its listeners (transport's tp_is_me), or one of its domains (route_domain) on the first
 * listener's port. */
bool proxy_is_me(const struct proxy *p, struct str host, uint16_t port);

/* The Route and Request-URI work of §16.4 for one request. */
struct proxy_hop {
	struct proxy_fwd_flags fl; /* pop_route, strict_ruri, drop_last_route set; the rest 0 */
	struct sip_addr next;      /* the next hop, when have_next */
	bool have_next;            /* a Route beyond ours (or a strict router's target) names it */
	bool strict;               /* a strict router upstream put our URI in the Request-URI */
	struct sip_addr route;     /* scratch */
};
/* Fills h for request m: our own Route on top is popped (loose routing); a Request-URI that
 * is us while Routes remain means a strict router sent it, and the last Route is the real
 * Request-URI. */
void proxy_route_set(const struct proxy *p, const struct sip_msg *m, struct proxy_hop *h);
/* Whether m already went through this proxy (one of its Via values is ours), with that Via
 * in *via. Parley never rewrites a Request-URI except to a registered contact, so a request
 * that comes back is a loop, never a legitimate spiral (§16.3 step 4). */
bool proxy_looped(const struct proxy *p, const struct sip_msg *m, struct str *via /* OUT */);

/* Counters for logs and stats. */
struct proxy_stats {
	uint64_t calls, answered, busy, cancelled, noanswer, failed;
	unsigned active;
	unsigned pending; /* requests forwarded and not yet answered upstream: what
				       a flood of unanswered calls piles up (each with its
				       transactions, ~16 KB) */
};
const struct proxy_stats *proxy_stats(const struct proxy *p);

#endif
