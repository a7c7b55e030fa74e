/* router.h: the one place that decides what happens to each request (DESIGN §2). */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "cdr/cdr.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timer.h"
#include "dialog/dialog.h"
#include "guard/guard.h"
#include "location/location.h"
#include "media/media.h"
#include "proxy/proxy.h"
#include "registrar/registrar.h"
#include "route/route.h"
#include "sip/sip.h"
#include "store/store.h"
#include "transport/transport.h"
#include "txn/txn.h"

struct router;

/* The settings: [server] realm, [peers] trust, [security] nonce-bind-source. */
#define ROUTER_MAX_TRUST 32
struct router_cfg {
	char realm[256];                   /* --realm, empty: the request's domain */
	char trust[ROUTER_MAX_TRUST][256]; /* --trust HOST: peers that skip challenge and
					    * relay rule (addresses; a name matches a
					    * peer's URI host as written) */
	unsigned ntrust;
	bool nonce_bind_source;    /* --nonce-bind-source: a nonce MAC covers the
				 * client's IP address */
	unsigned max_transactions; /* --max-transactions 15000 requests proxied and not yet
				    * answered: new work gets 503 from 80 % of it */
};
extern const struct cfg_key router_cfg_keys[];
extern const size_t router_cfg_nkeys;
void router_cfg_defaults(struct router_cfg *c);

/* The modules the router hands requests to, and what it answers with; all must outlive it. */
struct router_env {
	const struct router_cfg *cfg;
	struct log *lg;
	struct timer_wheel *wheel; /* answers held back after repeated failed logins */
	struct txn_layer *txn;     /* CANCEL matching; stateless answers and their sending */
	struct transport *tp;      /* is this us (listeners) */
	struct auth *auth;
	struct store_ucache *users; /* users by name, read through */
	struct store *store;        /* bans are recorded here */
	struct location *loc;
	struct registrar *reg;
	struct proxy *proxy;
	struct route *route;            /* domains, peers, DNS */
	struct dlg_table *dialogs;      /* dialogs we record-routed: in-dialog requests follow them */
	struct guard *guard;            /* failed logins: slowing and bans (its settings name them) */
	struct cdr *cdr;                /* records of calls refused before the proxy saw them */
	struct media *media;            /* the media relay (media_on false: none); may be NULL */
	uint64_t (*wall_ms)(void *arg); /* the wall clock in ms (a test's own clock) */
	void *clock_arg;
};

int router_new(struct router **rp, const struct router_env *env);
/* Frees the requests still waiting for DNS and the answers still held back. */
void router_free(struct router *r);
/* A reload (SIGHUP) changed env.cfg->trust: the trusted addresses are read from it again. */
void router_reload_trust(struct router *r);

/* The transaction user the server gives the layer (txn_layer_set_tu, the router as arg):
 * every request goes to router_request at router_load's level. */
extern const struct txn_tu router_tu;

/* Decides what happens to a request the transaction layer passed up: st is its server
 * transaction (NULL for an ACK that matched none, i.e. the ACK for a 2xx); load is 0
 * normal, 1 over the high-water mark (new work refused), 2 at a cap (router_load). */
void router_request(struct router *r, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src,
		    int load);

/* How loaded the server is: 1 when requests proxied and not yet answered or dialogs
 * pass 80 % of their cap, or memory is over its high-water mark; 2 at a cap. */
int router_load(const struct router *r);
/* The memory part of the load, measured by the server: 0, 1 (over 80 % of max-memory), 2. */
void router_set_memory_load(struct router *r, int level);

/* Whether a source address is a trusted peer's (--trust; the port does not matter): its
 * requests skip the challenge and the relay rule, and its datagrams the rate limit. */
bool router_trusted(const struct router *r, const struct tp_addr *a);

/* Writes out the log lines aggregated under floods whose interval has passed. */
void router_tick(struct router *r, uint64_t now_ms);

struct router_stats {
	uint64_t challenges;    /* 401/407 sent */
	uint64_t auth_failures; /* wrong password or unknown user (what counts toward a ban) */
	/* Credentials refused for other reasons (each answered with a new challenge). */
	uint64_t auth_unknown_user; /* of auth_failures: no such user (bad_password: the rest) */
	uint64_t auth_stale;        /* stale or unknown nonce */
	uint64_t auth_replay;       /* nonce count used again */
	uint64_t auth_uri_mismatch; /* digest uri is not the Request-URI */
	uint64_t auth_bad_request;  /* unusable credentials (algorithm, qop, parameters) */
	uint64_t shed;              /* requests refused with 503 for load */
	uint64_t refused_calls;     /* INVITEs refused before the proxy (404, 480): recorded */
	unsigned waiting;           /* requests for foreign domains waiting for DNS */
};
const struct router_stats *router_stats(const struct router *r);

#endif
