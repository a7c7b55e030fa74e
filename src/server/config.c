/* config.c: the settings of every module put together: one table of parts for the core machinery. */
#include "server/config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "text", "json", NULL };

static const struct cfg_key server_keys[] = {
	{ .flag = "db",
	  .section = "store",
	  .name = "db",
	  .kind = CFG_STR,
	  .off = offsetof(struct server_cfg, db),
	  .size = sizeof(((struct server_cfg *)0)->db),
	  .flags = CFG_F_ALL | CFG_F_NONEMPTY,
	  .what = "database path" },
	CFG_KEY_UINT(struct server_cfg, "cdr-retention", "store", "cdr-retention", cdr_retention, 0, 36500),
	{ .flag = "log-level",
	  .section = "server",
	  .name = "log-level",
	  .kind = CFG_CHOICE,
	  .off = offsetof(struct server_cfg, log_level),
	  .choices = log_levels },
	{ .flag = "log-format",
	  .section = "server",
	  .name = "log-format",
	  .kind = CFG_CHOICE,
	  .off = offsetof(struct server_cfg, log_format),
	  .choices = log_formats },
	CFG_KEY_STR(struct server_cfg, "log-file", "server", "log-file", log_file, "stderr", 0),
	CFG_KEY_UINT(struct server_cfg, "flush-interval", "server", "flush-interval", flush_ms, 1, 60000),
	CFG_KEY_UINT(struct server_cfg, "batch-wait", "server", "batch-wait", batch_wait_us, 0, 100000),
	CFG_KEY_UINT(struct server_cfg, "max-memory", "security", "max-memory", max_memory, 16, 1048576),
	CFG_KEY_STR(struct server_cfg, "http", "http", "listen", http, "off", 0),
	CFG_KEY_BOOL(struct server_cfg, "metrics-auth", "http", "metrics-auth", metrics_auth),
	CFG_KEY_STR(struct server_cfg, "pid-file", "server", "pid-file", pid_file, "none", 0),
};

/* "HOST:PORT" or "[IPv6]:PORT" (--http), after an optional http: or https:. */
static bool valid_hostport(const char *s)
{
	if (!strncmp(s, "https:", 6))
		s += 6;
	else if (!strncmp(s, "http:", 5))
		s += 5;
	const char *port = NULL;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || e == s + 1 || e[1] != ':')
			return false;
		port = e + 2;
	} else {
		const char *e = strrchr(s, ':');
		if (!e || e == s || strchr(s, ':') != e)
			return false; /* no port, or a bare IPv6 address (it must be in brackets) */
		port = e + 1;
	}
	uint64_t n;
	if (!str_to_u64(str_from_cstr(port), 65535, &n))
		return false;
	/* The address is numeric (or localhost): the endpoint binds it, nothing resolves it. */
	char host[INET6_ADDRSTRLEN + 1];
	bool v6 = *s == '[';
	size_t hl = (size_t)(port - 1 - s) - (v6 ? 2 : 0);
	if (hl >= sizeof host)
		return false;
	memcpy(host, s + v6, hl);
	host[hl] = '\0';
	unsigned char a[sizeof(struct in6_addr)];
	return v6 ? inet_pton(AF_INET6, host, a) == 1
		  : strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, a) == 1;
}

static int server_check(const void *base, char *err, size_t errlen)
{
	const struct server_cfg *c = base;
	if (!c->db[0]) {
		snprintf(err, errlen, "--db: empty database path");
		return -1;
	}
	if (c->http[0] && !valid_hostport(c->http)) {
		snprintf(err, errlen,
			 "--http %s: expected [http:|https:]ADDR:PORT with a numeric address (or localhost)", c->http);
		return -1;
	}
	return 0;
}

/* The parts of c, in print order within each section. */
static size_t parts_of(const struct config *cc, struct cfg_part *p)
{
	struct config *c = (struct config *)cc; /* the machinery writes only while parsing */
	size_t n = 0;
	p[n++] = (struct cfg_part){ tp_cfg_keys, tp_cfg_nkeys, &c->tp, tp_cfg_check };
	p[n++] = (struct cfg_part){ route_cfg_keys, route_cfg_nkeys, &c->route, route_cfg_check };
	p[n++] = (struct cfg_part){ router_cfg_keys, router_cfg_nkeys, &c->router, NULL };
	p[n++] = (struct cfg_part){ auth_cfg_keys, auth_cfg_nkeys, &c->auth, auth_cfg_check };
	p[n++] = (struct cfg_part){ server_keys, sizeof(server_keys) / sizeof(server_keys[0]), &c->server,
				    server_check };
	p[n++] = (struct cfg_part){ txn_cfg_keys, txn_cfg_nkeys, &c->txn, txn_cfg_check };
	p[n++] = (struct cfg_part){ reg_cfg_keys, reg_cfg_nkeys, &c->reg, reg_cfg_check };
	p[n++] = (struct cfg_part){ proxy_cfg_keys, proxy_cfg_nkeys, &c->proxy, NULL };
	p[n++] = (struct cfg_part){ guard_cfg_keys, guard_cfg_nkeys, &c->guard, guard_cfg_check };
	p[n++] = (struct cfg_part){ dlg_cfg_keys, dlg_cfg_nkeys, &c->dlg, NULL };
	p[n++] = (struct cfg_part){ media_cfg_keys, media_cfg_nkeys, &c->media, media_cfg_check };
	p[n++] = (struct cfg_part){ capture_cfg_keys, capture_cfg_nkeys, &c->capture, capture_cfg_check };
	return n;
}
#define MAX_PARTS 16

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->server.db, "parley.db");
	c->server.cdr_retention = 90;
	c->server.log_level = LOG_INFO;
	c->server.flush_ms = 200;
	c->server.batch_wait_us = 1000;
	c->server.max_memory = 1024;
	tp_cfg_defaults(&c->tp);
	route_cfg_defaults(&c->route);
	router_cfg_defaults(&c->router);
	auth_cfg_defaults(&c->auth);
	txn_cfg_defaults(&c->txn);
	reg_cfg_defaults(&c->reg);
	proxy_cfg_defaults(&c->proxy);
	guard_conf_default(&c->guard);
	dlg_cfg_defaults(&c->dlg);
	media_cfg_defaults(&c->media);
	capture_cfg_defaults(&c->capture);
}

int config_parse_args(struct config *c, int argc, char **argv, int first, bool serve_flags, struct cfg_extra *extra,
		      char **pos, int *npos, int maxpos)
{
	struct cfg_part p[MAX_PARTS];
	config_defaults(c);
	size_t n = parts_of(c, p);
	return cfg_parse_args(p, n, c->path, sizeof c->path, argc, argv, first, serve_flags, extra, pos, npos, maxpos,
			      stderr);
}

int config_reparse(struct config *c, int argc, char **argv, FILE *ef)
{
	struct cfg_part p[MAX_PARTS];
	config_defaults(c);
	size_t n = parts_of(c, p);
	int rc = cfg_parse_args(p, n, c->path, sizeof c->path, argc, argv, 1, true, NULL, NULL, NULL, 0, ef);
	return rc ? rc : cfg_check(p, n, ef);
}

unsigned config_diff(const struct config *a, const struct config *b, cfg_diff_h *h, void *arg)
{
	struct cfg_part pa[MAX_PARTS], pb[MAX_PARTS];
	size_t n = parts_of(a, pa);
	parts_of(b, pb);
	return cfg_diff(pa, pb, n, h, arg);
}

void config_copy_key(struct config *to, const struct config *from, const struct cfg_key *k)
{
	struct cfg_part pt[MAX_PARTS], pf[MAX_PARTS];
	size_t n = parts_of(to, pt);
	parts_of(from, pf);
	for (size_t i = 0; i < n; i++)
		if (k >= pt[i].keys && k < pt[i].keys + pt[i].nkeys)
			cfg_copy_key(&pt[i], &pf[i], k);
}

int config_validate(const struct config *c)
{
	struct cfg_part p[MAX_PARTS];
	size_t n = parts_of(c, p);
	return cfg_check(p, n, stderr);
}

void config_print(const struct config *c, FILE *f)
{
	static const char *const sections[] = {
		"server", "security", "store", "peers", "http", "tls", "capture", NULL
	};
	struct cfg_part p[MAX_PARTS];
	size_t n = parts_of(c, p);
	if (c->path[0])
		fprintf(f, "; from %s and flags\n", c->path);
	cfg_print(p, n, sections, f);
}
