/* server.h: one running Parley instance: transport, transactions, registrar, proxy, store. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "server/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "sip/sip.h"

struct server;

/* Opens the store, the listeners and every module for cfg on loop. Returns 0, or 1 with a
 * message in err naming what failed (port in use, database not writable, ...). */
int server_new(struct server **sp, const struct config *cfg, struct loop *loop, struct log *lg, char *err,
	       size_t errlen);
/* A reload (SIGHUP): nc is the config read again (config_reparse, valid); live is the
 * config given to server_new, which the modules read. Each setting that differs is
 * logged on a line of its own: domains, peers, trust, log level and format, the media
 * relay's settings and the HTTP endpoint's ([http] listen, metrics-auth: serve then calls
 * http_reload) are copied into live and take effect at once, without touching
 * registrations, transactions or calls; any other (SIP listeners, database, ...) is logged
 * as needing a restart and keeps its value. Returns the number of settings that differ. */
unsigned server_reload(struct server *s, struct config *live, const struct config *nc);
/* Stops timers, flushes the store and closes everything. */
void server_free(struct server *s);

/* ---- test seam (the fuzzer and tests; serve never sets it) ---------------------------- */

struct tp_source;

/* What the server uses instead of the network and the wall clock. A NULL member keeps the
 * real thing. Timers still run on the loop's wheel: a test drives them with timer_advance. */
struct server_hooks {
	/* Called instead of the listener's socket, after the listener is picked; 0 or -errno. */
	int (*send)(void *arg, const struct tp_source *dst, const char *buf, size_t len);
	void *send_arg;
	uint64_t (*wall_ms)(void *arg); /* replaces clock_wall_ms() in server_now() */
	void *clock_arg;
};

/* As server_new, then every later send and clock read goes through hooks (copied; may be
 * NULL). Listeners are still opened: bind them to 127.0.0.1:0 in tests. */
int server_new_with_hooks(struct server **sp, const struct config *cfg, struct loop *loop, struct log *lg,
			  const struct server_hooks *hooks, char *err, size_t errlen);
/* Hands buf (len bytes, valid during the call only, as a received datagram) to the same
 * code the UDP receive callback runs, as if it had arrived from src. A NULL src->lis is
 * replaced by the listener that would answer src->addr. */
void server_inject(struct server *s, const struct tp_source *src, char *buf, size_t len);

/* The modules a test looks into (the fuzzer checks that nothing outlives its timers). */
struct server_parts {
	struct txn_layer *txn;
	struct location *loc;
	struct router *router;
	struct route *route;
	struct store *store;
	struct transport *tp;
	struct proxy *proxy;
	struct guard *guard;
	struct dlg_table *dialogs;
	struct registrar *reg;
	struct cdr *cdr;
	struct media *media;
	struct capture *capture; /* recent messages per call; listeners (the HTTP event stream) */
};
/* The modules of s: the fuzzer and tests look into them; the HTTP endpoint reads their
 * counters through const pointers and changes nothing. */
void server_parts(const struct server *s, struct server_parts *out);

/* ---- changes an admin asks for (the HTTP API) --------------------------------------------
 * The same changes as `parley user` and an unregistration, made through the modules that
 * own the state, persisted through the store and logged. Each returns 0 or a negative
 * errno, with store_errmsg of the store saying what failed: -EEXIST (the user exists),
 * -ENOENT (no such user or binding), -EINVAL (bad user, domain or password; or a domain
 * this server does not serve), or a store failure. A user added or changed can register
 * at once: the server's user cache forgets it. */
int server_user_add(struct server *s, struct str user, struct str domain, struct str password);
int server_user_passwd(struct server *s, struct str user, struct str domain, struct str password);
int server_user_del(struct server *s, struct str user, struct str domain);
/* Removes the bindings of aor ("user@domain") with contact URI contact. */
int server_unbind(struct server *s, struct str aor, struct str contact);

/* ---- the server's own counters (/metrics) ----------------------------------------------- */

#define SERVER_METHODS (SIP_PUBLISH + 1) /* enum sip_method, SIP_METHOD_OTHER first */
struct server_stats {
	uint64_t requests[SERVER_METHODS]; /* requests that parsed, by method (enum sip_method) */
	uint64_t responses[600];           /* responses sent (retransmissions too), by status - 100 */
	uint64_t parse_errors;             /* messages that did not parse (answered 400 or dropped) */
	uint64_t sanity_rejects;           /* requests answered 4xx/5xx by the sanity checks */
	uint64_t bad_responses;            /* responses dropped by the sanity checks */
	uint64_t no_via;                   /* requests dropped without an answer: no usable Via */
	uint64_t limited;                  /* datagrams dropped by the per-source rate limit */
	uint64_t banned;                   /* datagrams dropped from banned sources */
	bool store_failing;                /* the last flush of the store failed */
};
const struct server_stats *server_stats(const struct server *s);

#endif
