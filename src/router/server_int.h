/* server_int.h: the server's parts, shared by server.c (wiring) and router.c (decisions). */
#ifndef PARLEY_SERVER_INT_H
#define PARLEY_SERVER_INT_H

#include <stdint.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
#include "dialog/dialog.h"
#include "guard/guard.h"
#include "location/location.h"
#include "proxy/proxy.h"
#include "registrar/registrar.h"
#include "router/server.h"
#include "route/route.h"
#include "store/store.h"
#include "transport/transport.h"
#include "txn/txn.h"

struct server {
	const struct config *cfg;
	struct loop *loop;
	struct log *lg;
	struct transport *tp;
	struct txn_layer *txn;
	struct store *store;
	struct store_ucache *users;  /* read-through cache in front of store's users */
	struct auth *auth;
	struct location *loc;
	struct registrar *reg;
	struct proxy *proxy;
	struct route *route;
	struct dlg_table *dialogs;  /* dialogs we record-routed: in-dialog requests follow them */
	struct router_pending *pending; /* requests waiting for DNS (router.c) */
	struct timer flush_timer;
	struct timer sweep_timer;
	bool flush_failing;       /* the last flush failed: log recovery once */
	uint32_t cdr_prune_at;    /* when old call records are next pruned (unix s) */
	char local_ip[16][48];    /* the machine's addresses, for listeners on 0.0.0.0 / :: */
	unsigned nlocal_ip;
	unsigned txn_peak;        /* most live transactions since the heap was last trimmed */
	uint64_t dropped;         /* datagrams dropped as unparsable */
	uint64_t rejected;        /* requests answered 4xx/5xx by the sanity checks */
	int load;                 /* 0 normal, 1 over the high-water mark, 2 at the cap */
	struct guard *guard;      /* per-source rate limits, failed-login counts, bans */
	struct tp_addr trust_addr[CFG_MAX_TRUST]; /* trusted hosts that are addresses: never limited */
	unsigned ntrust_addr;
	struct log_limit lim_reject, lim_drop, lim_limit, lim_auth;
	struct server_delayed *delayed; /* answers held back after repeated failures */
	unsigned ndelayed;
	uint64_t ban_sync_at;     /* next re-read of the bans table, ms */
	unsigned sweeps;          /* sweep ticks so far */
	int statm_fd;             /* /proc/self/statm, read by the memory cap 10 times a second */
	struct {
		uint64_t challenges;  /* 401/407 sent */
		uint64_t auth_failures;
		uint64_t shed;        /* requests refused with 503 for load */
		uint64_t no_via;      /* datagrams dropped without an answer: no usable Via */
		uint64_t limited;     /* datagrams dropped by the per-source rate limit */
		uint64_t banned;      /* datagrams dropped from banned sources */
	} stats;
	struct server_hooks hooks; /* test seam (server.h); all NULL when serving */
};

/* Logs a refusal at info, aggregated when they come in floods. */
void server_log_reject(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs a request dropped without an answer, aggregated the same way. */
void server_log_drop(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A user authenticated from src: its failures there are forgiven. */
void server_auth_ok(struct server *s, const struct tp_source *src, struct str aor);
/* A failed authentication (wrong password or unknown user, told apart only by why): logs
 * it, counts it against the source and the user, and answers 403 Forbidden statelessly,
 * at once or, after repeated failures, later; at the threshold the source is banned. */
void server_auth_failed(struct server *s, const struct sip_msg *m, const struct tp_source *src, struct str aor,
			const char *why, const char *what);
/* Whether a source address is a trusted peer's (--trust; the port does not matter): its
 * requests skip the challenge and the relay rule, and its datagrams the rate limit. */
bool server_trusted(const struct server *s, const struct tp_addr *a);
/* How loaded the server is: 0 normal, 1 over the high-water mark (80 % of the transaction,
 * dialog or memory cap), 2 at a cap. */
int server_load(const struct server *s);
/* Refuses a request for load: 503 with Retry-After, statelessly, logged aggregated. */
void server_shed(struct server *s, const struct sip_msg *m, const struct tp_source *src, const char *why);

/* Frees the requests still waiting for DNS (at shutdown). */
void router_free_pending(struct server *s);

/* Sends bytes to dst (listener picked when dst->lis is NULL); logs at debug. */
int server_send(void *arg, const struct tp_source *dst, const char *buf, size_t len);
/* Answers a request without a transaction (parse errors, sanity failures). */
void server_reply_stateless(struct server *s, const struct sip_msg *m, const struct tp_source *src,
			    unsigned code, const char *reason, struct str extra);
/* Wall clock, unix seconds. */
uint32_t server_now(const struct server *s);

#endif
