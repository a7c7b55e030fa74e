/* config.h: every module's settings in one struct, read from defaults, the INI file and flags (flags win). */
#ifndef PARLEY_SERVER_CONFIG_H
#define PARLEY_SERVER_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "auth/auth.h"
#include "capture/capture.h"
#include "core/config.h"
#include "dialog/dialog.h"
#include "guard/guard.h"
#include "media/media.h"
#include "proxy/proxy.h"
#include "registrar/registrar.h"
#include "route/route.h"
#include "router/router.h"
#include "transport/transport.h"
#include "txn/txn.h"

/* The server's own settings: the store, logs, load limits. */
struct server_cfg {
	char db[512];           /* --db, [store] db */
	unsigned cdr_retention; /* --cdr-retention 90 days of call records, 0 forever */
	unsigned log_level;     /* --log-level: enum log_level */
	unsigned log_format;    /* --log-format: 0 text, 1 json */
	char log_file[512];     /* --log-file, empty: stderr */
	char http[300];         /* --http [http:|https:]ADDR:PORT, [http] listen; empty: off */
	bool metrics_auth;      /* --metrics-auth, [http] metrics-auth: /metrics needs a token */
	unsigned flush_ms;      /* --flush-interval 200 ms: store write-behind */
	unsigned batch_wait_us; /* --batch-wait 1000 µs: coalescing under load, 0 off */
	unsigned max_memory;    /* --max-memory 1024 MiB resident: high-water at 80% */
	char pid_file[512];     /* --pid-file, [server] pid-file: serve writes its PID there
				 * (parley reload reads it); empty: none (reload reads
				 * the PID from DB.lock) */
};

/* Each module's part, in the order the file's sections print. */
struct config {
	char path[512]; /* --config FILE, empty: none */
	struct server_cfg server;
	struct tp_cfg tp;
	struct route_cfg route;
	struct router_cfg router;
	struct auth_cfg auth;
	struct txn_cfg txn;
	struct reg_cfg reg;
	struct proxy_cfg proxy;
	struct guard_conf guard;
	struct dlg_conf dlg;
	struct media_cfg media;
	struct capture_cfg capture;
};

/* The zero-config defaults: listen udp:0.0.0.0:5060, the host name as domain, parley.db,
 * md5, info, text. */
void config_defaults(struct config *c);
/* Sets c to the defaults, then parses argv (from index first): --config FILE first, so that
 * flags override keys. serve_flags: every setting is a flag (serve, check); other
 * subcommands take --db and --config, and their own flags in extra. Positional arguments
 * are left in pos[] (npos, at most maxpos). Returns 0, or 2 after printing "parley: ..."
 * naming the bad flag or file:line. */
int config_parse_args(struct config *c, int argc, char **argv, int first, bool serve_flags, struct cfg_extra *extra,
		      char **pos, int *npos, int maxpos);
/* Runs every module's check of its settings. Returns 0, or 2 after printing the reason. */
int config_validate(const struct config *c);
/* A running server's SIGHUP: parses argv (serve's own, from index 1) again, the config
 * file as it is now and then the flags, and validates the result. Returns 0, or 2 after
 * printing "parley: FILE:LINE: ..." (or the flag, or the check) to ef. */
int config_reparse(struct config *c, int argc, char **argv, FILE *ef);
/* Calls h for each setting whose value differs between a and b; returns how many did. */
unsigned config_diff(const struct config *a, const struct config *b, cfg_diff_h *h, void *arg);
/* Copies setting k (a key config_diff named) from `from` into `to`. */
void config_copy_key(struct config *to, const struct config *from, const struct cfg_key *k);
/* Prints the effective settings in INI form (parley check). */
void config_print(const struct config *c, FILE *f);

#endif
