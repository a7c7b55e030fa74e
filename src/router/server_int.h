/* server_int.h: the server's parts, shared by server.c (wiring) and router.c (decisions). */
#ifndef PARLEY_SERVER_INT_H
#define PARLEY_SERVER_INT_H

#include <stdint.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
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
	struct router_pending *pending; /* requests waiting for DNS (router.c) */
	struct timer flush_timer;
	struct timer sweep_timer;
	bool flush_failing;       /* the last flush failed: log recovery once */
	char local_ip[16][48];    /* the machine's addresses, for listeners on 0.0.0.0 / :: */
	unsigned nlocal_ip;
	unsigned txn_peak;        /* most live transactions since the heap was last trimmed */
	uint64_t dropped;         /* datagrams dropped as unparsable */
	uint64_t rejected;        /* requests answered 4xx/5xx by the sanity checks */
	struct server_hooks hooks; /* test seam (server.h); all NULL when serving */
};

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
