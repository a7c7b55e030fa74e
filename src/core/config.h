/* config.h: the effective settings, from defaults, the INI file and flags (flags win). */
#ifndef PARLEY_CORE_CONFIG_H
#define PARLEY_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/log.h"

#define CFG_MAX_LISTEN 16
#define CFG_MAX_DOMAIN 32
#define CFG_MAX_PEER 32
#define CFG_MAX_TRUST 32

struct cfg_peer {
	char domain[256];
	char uri[300];        /* sip:HOST[:PORT] */
};

struct config {
	char config_path[512];                  /* --config */
	char listen[CFG_MAX_LISTEN][300];       /* --listen udp:HOST:PORT, [server] listen */
	unsigned nlisten;
	char domain[CFG_MAX_DOMAIN][256];       /* --domain, [server] domain */
	unsigned ndomain;
	char db[512];                           /* --db, [store] db */
	struct cfg_peer peer[CFG_MAX_PEER];     /* --peer D=URI, [peers] D = URI */
	unsigned npeer;
	char trust[CFG_MAX_TRUST][256];         /* --trust HOST, [peers] trust */
	unsigned ntrust;
	char dns[300];                          /* --dns SERVER[:PORT], empty: system */
	char auth_algorithms[64];               /* --auth-algorithms "md5", "sha-256,md5" */
	enum log_level log_level;               /* --log-level */
	bool log_json;                          /* --log-format json */
	char log_file[512];                     /* --log-file, empty: stderr */
	char http[300];                         /* --http ADDR:PORT, empty: off */
	/* tuning ([server] section, same-named flags) */
	unsigned t1_ms, t2_ms, t4_ms;           /* --t1 --t2 --t4: 500, 4000, 5000 */
	unsigned max_contacts;                  /* --max-contacts 10 */
	unsigned min_expires;                   /* --min-expires 60 */
	unsigned max_expires;                   /* --max-expires 86400 */
	unsigned default_expires;               /* --default-expires 3600 */
	unsigned nonce_lifetime;                /* --nonce-lifetime 300 s */
	unsigned ring_timeout;                  /* --ring-timeout 60 s */
	unsigned flush_ms;                      /* --flush-interval 200 ms: store write-behind */
	unsigned batch_wait_us;                 /* --batch-wait 1000 µs: coalescing under load, 0 off */
	char realm[256];                        /* --realm, empty: the request's domain */
	/* defences ([security] section, same-named flags) */
	bool nonce_bind_source;                 /* --nonce-bind-source false: nonce MAC covers the source IP */
	unsigned ban_threshold;                 /* --ban-threshold 10 failed authentications ... */
	unsigned ban_window;                    /* --ban-window 60 s ... within this window ... */
	unsigned ban_time;                      /* --ban-time 900 s: ... ban the source this long */
	unsigned slow_after;                    /* --slow-after 3: failures after which answers are delayed */
	unsigned rate_limit;                    /* --rate-limit 200 requests/s per source (burst 2x), 0 off */
	unsigned max_transactions;              /* --max-transactions 15000 requests proxied and not yet answered */
	unsigned max_dialogs;                   /* --max-dialogs 100000 dialogs kept */
	unsigned max_memory;                    /* --max-memory 1024 MiB resident: high-water at 80% */
	unsigned cdr_retention;                 /* --cdr-retention 90 days of call records, 0 forever */
};

/* Fills in the zero-config defaults (listen udp:0.0.0.0:5060, the host name as domain,
 * parley.db, md5, info, text). */
void config_defaults(struct config *c);

/* Parses the common flags of argv (from index 'first'), reading --config FILE first if
 * given, so that flags override keys. Positional arguments are left in pos[] (npos).
 * allow_serve_flags: whether serve's flags are accepted (other subcommands take --db and
 * --config and their own flags, passed in extra_flags as a NULL-terminated list of names
 * that take a value, and extra_bool as names without value; their values are returned in
 * extra_val[] in the same order, NULL if absent).
 * Returns 0, or 2 after printing "parley: ..." naming the bad flag or file:line. */
struct config_extra {
	const char *const *flags;     /* names with value, e.g. "password", "limit" */
	const char **val;             /* OUT: per flag, NULL if absent */
	unsigned nflags;
	const char *const *bools;     /* names without value, e.g. "json"; may be NULL */
	bool *bval;                   /* OUT: per bool flag, whether it was given */
	unsigned nbools;
};
int config_parse_args(struct config *c, int argc, char **argv, int first, bool serve_flags,
		      struct config_extra *extra, char **pos, int *npos, int maxpos);

/* Validates the semantic settings (listen URIs, peers, algorithms). Returns 0 or 2 after
 * printing the reason. */
int config_validate(const struct config *c);
/* Prints the effective settings in INI form (parley check). */
void config_print(const struct config *c, FILE *f);

/* A listen URI split into its parts: "udp:[::1]:5060" -> "udp", "::1", 5060, v6. */
struct cfg_listen {
	char scheme[8];       /* lower case: udp, tcp, tls, ws, wss */
	char host[64];        /* numeric address, without brackets */
	uint16_t port;        /* 5060 when the URI has none; 0 asks the kernel for one */
	bool v6;
};
/* Parses a listen URI (syntax only: the scheme is any of udp|tcp|tls|ws|wss). Returns 0,
 * or -EINVAL with the reason in err. */
int config_listen_parse(const char *uri, struct cfg_listen *out, char *err, size_t errlen);

#endif
