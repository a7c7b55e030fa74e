/* route.h: where a request goes: numeric host, static peer, or RFC 3263 DNS resolved on the event loop. */
#ifndef PARLEY_ROUTE_H
#define PARLEY_ROUTE_H

#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"
#include "sip/sip.h"
#include "transport/transport.h"

struct route;

/* ---- settings: [server] domain, dns; [peers] DOMAIN = sip:HOST[:PORT] -------------------- */

#define ROUTE_MAX_DOMAINS 32
#define ROUTE_MAX_PEERS 32

struct route_peer_cfg {
	char domain[256];
	char uri[300]; /* sip:HOST[:PORT] */
};
struct route_cfg {
	char domain[ROUTE_MAX_DOMAINS][256]; /* --domain, [server] domain: the served domains */
	unsigned ndomain;
	struct route_peer_cfg peer[ROUTE_MAX_PEERS]; /* --peer D=URI, [peers] D = URI */
	unsigned npeer;
	char dns[300]; /* --dns SERVER[:PORT], empty: system */
};
extern const struct cfg_key route_cfg_keys[];
extern const size_t route_cfg_nkeys;
/* The machine's host name as the one domain, no peers, the system resolver. */
void route_cfg_defaults(struct route_cfg *c);
/* At least one domain; every peer a sip:HOST[:PORT]; a numeric DNS server. */
int route_cfg_check(const void *base, char *err, size_t errlen);

/* The served domain a host names, in any case and with or without the trailing dot of an
 * absolute name, as an index into the domains; -1 when it names none. */
int route_domain(const struct route *r, struct str host);
/* The name of served domain i (its canonical spelling, as configured). */
const char *route_domain_name(const struct route *r, int i);
/* Whether calls to domain, or from the address from (either may be empty/NULL), go through
 * a peer marked relay ([peers] D = sip:HOST;relay): their media is relayed (media/). */
bool route_peer_relay(const struct route *r, struct str domain, const struct tp_addr *from);
/* The i-th static peer (--peer) as configured: domain and URI (NUL-terminated), whether its
 * media is relayed; false past the last one. */
bool route_peer_at(const struct route *r, unsigned i, const char **domain, const char **uri, bool *relay);
/* The host of the static peer for domain (--peer), or an empty view when it has none. */
struct str route_peer_host(const struct route *r, struct str domain);

/* One place to send the request to; a list of them is ordered best first, and the caller
 * tries the next one when a target fails (RFC 3263 §4.3). */
struct route_target {
	struct tp_addr addr; /* address and port */
	enum tp_proto proto; /* transport to use */
	char host[256];      /* the SRV target or the host the address came from, for logs */
};

#define ROUTE_MAX_TARGETS 8

/* Results of a resolution. err is 0 (t[0..n) with n >= 1), -ENOENT (the domain has no
 * SIP records and no address: the caller answers 404), -ETIMEDOUT or -EHOSTUNREACH (DNS
 * did not answer or failed, or the SRV targets have no address: the caller answers 503).
 * t is valid only during the call. */
typedef void(route_h)(void *arg, int err, const struct route_target *t, unsigned n);

/* Creates a resolver on loop, with cfg's domains, static peers (parsed here, once) and DNS server (cfg->dns, numeric
 * "ADDR[:PORT]", "[V6]:PORT"; empty: /etc/resolv.conf). cfg must outlive the route. The
 * first route_new of the process must run before any other thread uses c-ares (c-ares
 * 1.18's library init is process-wide and not thread-safe). Returns 0 or -errno
 * (-EINVAL for a bad cfg->dns). */
int route_new(struct route **rp, struct loop *loop, const struct route_cfg *cfg);
/* Frees the resolver and its sockets. Pending resolutions are dropped WITHOUT calling their
 * callbacks: whoever frees the route is shutting down the modules those callbacks would
 * touch. Call before loop_free, and never from inside a route_h. */
void route_free(struct route *r);

/* A reload (SIGHUP): the served domains and static peers become cfg's (the DNS server
 * stays as it was); cached answers are dropped. Requests already waiting for DNS go on.
 * Returns 0, or -EINVAL, changing nothing, when a peer's URI does not parse. */
int route_reload(struct route *r, const struct route_cfg *cfg);

/* Bit mask of the transports we can send on (1u << TP_UDP, ...): targets on others are
 * skipped. UDP only by default; widened when TCP/TLS listeners exist. Clears the cache. */
void route_set_protos(struct route *r, unsigned mask);

/* Answers without DNS when it can: a numeric host (maddr first; port, or 5060/5061), a
 * static peer whose URI has a numeric host, or a cached DNS answer. Fills t[0..*n) (room
 * for ROUTE_MAX_TARGETS) and returns 0; returns -EWOULDBLOCK when DNS is needed (no query
 * is started), -EPROTONOSUPPORT when the URI asks for a transport we do not have (sips or
 * transport=tcp with UDP only), -EINVAL for a URI with no usable host. Meant for callers
 * that cannot wait, such as the stateless forwarding of an ACK. */
int route_lookup(struct route *r, const struct sip_uri *uri, struct route_target *t, unsigned *n);

/* Resolves uri (sip or sips) to an ordered list of targets and reports it to cb:
 *  - numeric host or maddr -> itself, on the URI's port or the default port;
 *  - a host that is a configured peer domain (--peer DOMAIN=sip:HOST[:PORT]) -> the peer
 *    URI, resolved the same way (DNS if its host is a name);
 *  - otherwise RFC 3263: a port in the URI -> A/AAAA of the host; else NAPTR (services
 *    for our transports; SIP+D2U for UDP) -> SRV (priority ascending, weighted random
 *    within a priority, RFC 2782) -> A/AAAA of each SRV target; without usable NAPTR the
 *    SRV names are tried directly (_sip._udp.HOST); without SRV, A/AAAA of the host on the
 *    default port. A transport= parameter skips NAPTR. A temporary DNS failure (timeout,
 *    SERVFAIL) stops the chain: it does not fall through to the next step. Addresses
 *    come from /etc/hosts, then DNS (c-ares's default), both families, in RFC 6724
 *    order: skip targets of a family no listener can send to.
 * *id_out (may be NULL) is written before cb can run, so it may point into the state cb
 * frees. cb may run before route_resolve returns (numeric host, static peer, cache hit)
 * or later from the loop. Returns 0, or -errno as route_lookup (except -EWOULDBLOCK) or
 * -ENOMEM; on an error return cb is never called. */
int route_resolve(struct route *r, const struct sip_uri *uri, route_h *cb, void *arg, uint64_t *id_out);

/* The caller went away: the callback of resolution id is never called. Harmless for an id
 * that has completed or was never issued. */
void route_cancel(struct route *r, uint64_t id);

/* ---- requests waiting for DNS ------------------------------------------------------------- */

/* A request waits here while its Request-URI is resolved: owner is what it is known by
 * (its server transaction), state the caller's own bytes about it (how to forward it),
 * copied and handed back to cb with the outcome. */
typedef void(route_wait_h)(void *arg, const void *owner, void *state, int err, const struct route_target *t,
			   unsigned n);
struct route_waits;
/* A list of waiting requests on resolver r; every callback gets arg. Returns 0 or -ENOMEM. */
int route_waits_new(struct route_waits **wp, struct route *r, route_wait_h *cb, void *arg);
/* Frees the waiting requests without calling back (shutdown); call before route_free. */
void route_waits_free(struct route_waits *w);
/* Resolves uri for owner, keeping a copy of state (size bytes). cb may run before this
 * returns (numeric host, static peer, cached answer). Returns 0, or -errno as route_resolve
 * or -ENOMEM; on an error return cb is never called. */
int route_wait(struct route_waits *w, const struct sip_uri *uri, const void *owner, const void *state, size_t size);
/* owner went away (a CANCEL): its callback is never called. Returns whether it was waiting;
 * then its state is copied to state_out (size bytes, may be NULL). */
bool route_wait_cancel(struct route_waits *w, const void *owner, void *state_out, size_t size);

/* Requests waiting. */
unsigned route_waits_count(const struct route_waits *w);
/* Whether owner is still waiting (its answer did not come at once). */
bool route_waiting(const struct route_waits *w, const void *owner);

/* ---- exposed for tests ------------------------------------------------------------------- */

/* One SRV record (RFC 2782). */
struct route_srv {
	uint16_t prio, weight, port;
	char host[256];
};

/* Returns a uniformly distributed 32-bit value. */
typedef uint32_t(route_rand_h)(void *arg);

/* Orders s[0..n) in place per RFC 2782: priority ascending; within one priority, records
 * drawn one by one with a chance proportional to weight (zero-weight ones rarely first). */
void route_srv_order(struct route_srv *s, unsigned n, route_rand_h *rnd, void *arg);

/* DNS counters (/metrics). */
struct route_stats {
	uint64_t lookups;    /* resolutions sent to DNS (NAPTR/SRV/A/AAAA as RFC 3263 needs) */
	uint64_t failures;   /* of those, ended without a target (no such domain, timeout, ...) */
	uint64_t cache_hits; /* answered from the cache, without DNS */
};
const struct route_stats *route_stats(const struct route *r);

#endif
