/* config.c: builds the effective settings from defaults, the INI file (libinih) and flags. */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/str.h"

enum kind {
	K_STR,       /* a char array at off */
	K_UINT,      /* an unsigned at off, in [min, max] */
	K_LISTEN,    /* appended to listen[] */
	K_DOMAIN,    /* appended to domain[] */
	K_PEER,      /* DOMAIN=URI appended to peer[] */
	K_TRUST,     /* appended to trust[] */
	K_LEVEL,     /* error|warn|info|debug */
	K_FORMAT,    /* text|json */
	K_CONFIG,    /* --config: read before the other flags */
	K_BOOL,      /* a bool at off: true|false|yes|no|on|off|1|0 */
};

/* One setting: its flag name is also its key name in the file, except where file_keys
 * says otherwise. */
struct key {
	const char *name;
	enum kind kind;
	size_t off, size;
	unsigned min, max;
};

#define STRKEY(n, field) { n, K_STR, offsetof(struct config, field), sizeof(((struct config *)0)->field), 0, 0 }
#define UINTKEY(n, field, lo, hi) { n, K_UINT, offsetof(struct config, field), 0, lo, hi }

static const struct key keys[] = {
	{ "config", K_CONFIG, 0, 0, 0, 0 },
	{ "listen", K_LISTEN, 0, 0, 0, 0 },
	{ "domain", K_DOMAIN, 0, 0, 0, 0 },
	STRKEY("db", db),
	{ "peer", K_PEER, 0, 0, 0, 0 },
	{ "trust", K_TRUST, 0, 0, 0, 0 },
	STRKEY("dns", dns),
	STRKEY("auth-algorithms", auth_algorithms),
	{ "log-level", K_LEVEL, 0, 0, 0, 0 },
	{ "log-format", K_FORMAT, 0, 0, 0, 0 },
	STRKEY("log-file", log_file),
	STRKEY("http", http),
	STRKEY("realm", realm),
	UINTKEY("t1", t1_ms, 1, 60000),
	UINTKEY("t2", t2_ms, 1, 600000),
	UINTKEY("t4", t4_ms, 1, 600000),
	UINTKEY("max-contacts", max_contacts, 1, 1000),
	UINTKEY("min-expires", min_expires, 1, 31536000),
	UINTKEY("max-expires", max_expires, 1, 31536000),
	UINTKEY("default-expires", default_expires, 1, 31536000),
	UINTKEY("nonce-lifetime", nonce_lifetime, 1, 86400),
	UINTKEY("ring-timeout", ring_timeout, 1, 3600),
	UINTKEY("flush-interval", flush_ms, 1, 60000),
	UINTKEY("batch-wait", batch_wait_us, 0, 100000),
	{ "nonce-bind-source", K_BOOL, offsetof(struct config, nonce_bind_source), 0, 0, 0 },
	UINTKEY("ban-threshold", ban_threshold, 0, 1000000),
	UINTKEY("ban-window", ban_window, 1, 86400),
	UINTKEY("ban-time", ban_time, 1, 31536000),
	UINTKEY("slow-after", slow_after, 0, 1000000),
	UINTKEY("rate-limit", rate_limit, 0, 10000000),
	UINTKEY("max-transactions", max_transactions, 100, 10000000),
	UINTKEY("max-dialogs", max_dialogs, 100, 10000000),
	UINTKEY("max-memory", max_memory, 16, 1048576),
	UINTKEY("cdr-retention", cdr_retention, 0, 36500),
};

/* Where each setting lives in the file: section, key there, and the setting it sets.
 * [peers] also takes "DOMAIN = sip:HOST[:PORT]" lines for any other key. */
static const struct {
	const char *section, *name, *flag;
} file_keys[] = {
	{ "server", "listen", "listen" },
	{ "server", "domain", "domain" },
	{ "server", "realm", "realm" },
	{ "server", "dns", "dns" },
	{ "server", "auth-algorithms", "auth-algorithms" },
	{ "server", "log-level", "log-level" },
	{ "server", "log-format", "log-format" },
	{ "server", "log-file", "log-file" },
	{ "server", "t1", "t1" },
	{ "server", "t2", "t2" },
	{ "server", "t4", "t4" },
	{ "server", "max-contacts", "max-contacts" },
	{ "server", "min-expires", "min-expires" },
	{ "server", "max-expires", "max-expires" },
	{ "server", "default-expires", "default-expires" },
	{ "server", "nonce-lifetime", "nonce-lifetime" },
	{ "server", "ring-timeout", "ring-timeout" },
	{ "server", "flush-interval", "flush-interval" },
	{ "server", "batch-wait", "batch-wait" },
	{ "security", "nonce-bind-source", "nonce-bind-source" },
	{ "security", "ban-threshold", "ban-threshold" },
	{ "security", "ban-window", "ban-window" },
	{ "security", "ban-time", "ban-time" },
	{ "security", "slow-after", "slow-after" },
	{ "security", "rate-limit", "rate-limit" },
	{ "security", "max-transactions", "max-transactions" },
	{ "security", "max-dialogs", "max-dialogs" },
	{ "security", "max-memory", "max-memory" },
	{ "store", "db", "db" },
	{ "store", "cdr-retention", "cdr-retention" },
	{ "peers", "trust", "trust" },
	{ "http", "listen", "http" },
};

/* Where the entries of a list came from. For listen and domain a later source replaces the
 * list of an earlier one instead of adding to it: the file's domains replace the host name
 * default, and --listen / --domain flags replace the file's list (the flag wins), so that
 * one flag is enough to override a file. Within one source, repeated keys add entries. */
enum source { SRC_DEFAULT = 0, SRC_FILE, SRC_FLAG };

struct parse {
	struct config *c;
	enum source listen_src, domain_src;
	/* file parsing: the first error only, reported with the line inih gives back */
	char ferr[300];
};

static const struct key *find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
			return &keys[i];
	return NULL;
}

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->listen[0], "udp:0.0.0.0:5060");
	c->nlisten = 1;
	/* Zero-config start: serve the machine's own name as the domain. */
	if (gethostname(c->domain[0], sizeof(c->domain[0])) != 0 || !c->domain[0][0])
		strcpy(c->domain[0], "localhost");
	c->domain[0][sizeof(c->domain[0]) - 1] = '\0';
	c->ndomain = 1;
	strcpy(c->db, "parley.db");
	strcpy(c->auth_algorithms, "md5");
	c->log_level = LOG_INFO;
	c->log_json = false;
	c->t1_ms = 500;
	c->t2_ms = 4000;
	c->t4_ms = 5000;
	c->max_contacts = 10;
	c->min_expires = 60;
	c->max_expires = 86400;
	c->default_expires = 3600;
	c->nonce_lifetime = 300;
	c->ring_timeout = 60;
	c->flush_ms = 200;
	c->batch_wait_us = 1000;
	c->nonce_bind_source = false;
	c->ban_threshold = 10;
	c->ban_window = 60;
	c->ban_time = 900;
	c->slow_after = 3;
	c->rate_limit = 200;
	c->max_transactions = 15000;
	c->max_dialogs = 100000;
	c->max_memory = 1024;
	c->cdr_retention = 90;
}

static int copy(char *dst, size_t n, const char *v, char *err, size_t errlen)
{
	size_t len = strlen(v);
	if (len >= n) {
		snprintf(err, errlen, "value too long (at most %zu characters)", n - 1);
		return -1;
	}
	memcpy(dst, v, len + 1);
	return 0;
}

static int set_peer(struct config *c, const char *domain, size_t dlen, const char *uri,
		    char *err, size_t errlen)
{
	struct str d = str_trim((struct str){ domain, dlen });
	struct str u = str_trim(str_from_cstr(uri));
	if (d.l == 0 || u.l == 0) {
		snprintf(err, errlen, "expected DOMAIN=sip:HOST[:PORT]");
		return -1;
	}
	if (d.l >= sizeof(c->peer[0].domain) || u.l >= sizeof(c->peer[0].uri)) {
		snprintf(err, errlen, "value too long");
		return -1;
	}
	/* A domain given twice keeps the later route: a flag can redirect a peer of the file. */
	unsigned i;
	for (i = 0; i < c->npeer; i++)
		if (str_caseeq_cstr(d, c->peer[i].domain))
			break;
	if (i == c->npeer) {
		if (c->npeer == CFG_MAX_PEER) {
			snprintf(err, errlen, "too many peers (at most %d)", CFG_MAX_PEER);
			return -1;
		}
		c->npeer++;
	}
	str_to_cbuf(d, c->peer[i].domain, sizeof(c->peer[i].domain));
	str_to_cbuf(u, c->peer[i].uri, sizeof(c->peer[i].uri));
	return 0;
}

/* Appends v to a list of n entries of size sz, first dropping entries from an earlier
 * source: the host name default gives way to the file, the file's list to the flags. */
static int add_list(char *list, size_t sz, unsigned max, unsigned *n, enum source *have,
		    enum source src, const char *v, char *err, size_t errlen)
{
	if (*have < src) {
		*n = 0;
		*have = src;
	}
	if (*n == max) {
		snprintf(err, errlen, "too many entries (at most %u)", max);
		return -1;
	}
	if (!*v) {
		snprintf(err, errlen, "empty value");
		return -1;
	}
	if (copy(list + (size_t)*n * sz, sz, v, err, errlen))
		return -1;
	(*n)++;
	return 0;
}

/* Applies one setting from the file or a flag; on error writes the reason (no prefix) to
 * err and returns -1. */
static int set_value(struct parse *p, const struct key *k, const char *v, enum source src,
		     char *err, size_t errlen)
{
	struct config *c = p->c;
	switch (k->kind) {
	case K_CONFIG:
		return copy(c->config_path, sizeof(c->config_path), v, err, errlen);
	case K_STR:
		/* Every other string may be empty (meaning "unset"); an empty db would only
		 * fail later, when the store opens, far from the line that caused it. */
		if (!*v && k->off == offsetof(struct config, db)) {
			snprintf(err, errlen, "empty database path");
			return -1;
		}
		return copy((char *)c + k->off, k->size, v, err, errlen);
	case K_UINT: {
		uint64_t n;
		if (!str_to_u64(str_trim(str_from_cstr(v)), k->max, &n) || n < k->min) {
			snprintf(err, errlen, "expected a number from %u to %u, got '%s'", k->min,
				 k->max, v);
			return -1;
		}
		*(unsigned *)(void *)((char *)c + k->off) = (unsigned)n;
		return 0;
	}
	case K_LISTEN:
		return add_list(&c->listen[0][0], sizeof(c->listen[0]), CFG_MAX_LISTEN, &c->nlisten,
				&p->listen_src, src, v, err, errlen);
	case K_DOMAIN:
		return add_list(&c->domain[0][0], sizeof(c->domain[0]), CFG_MAX_DOMAIN, &c->ndomain,
				&p->domain_src, src, v, err, errlen);
	case K_TRUST: {
		/* Trusted hosts accumulate from file and flags: there is no default to replace. */
		enum source s = SRC_DEFAULT;
		return add_list(&c->trust[0][0], sizeof(c->trust[0]), CFG_MAX_TRUST, &c->ntrust, &s,
				SRC_DEFAULT, v, err, errlen);
	}
	case K_PEER: {
		const char *eq = strchr(v, '=');
		if (!eq) {
			snprintf(err, errlen, "expected DOMAIN=sip:HOST[:PORT]");
			return -1;
		}
		return set_peer(c, v, (size_t)(eq - v), eq + 1, err, errlen);
	}
	case K_BOOL: {
		static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };
		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
				*(bool *)(void *)((char *)c + k->off) = strcasecmp(v, yes[i]) == 0;
				return 0;
			}
		}
		snprintf(err, errlen, "expected true|false, got '%s'", v);
		return -1;
	}
	case K_LEVEL:
		for (int i = LOG_ERROR; i <= LOG_DEBUG; i++) {
			static const char *const names[] = { "error", "warn", "info", "debug" };
			if (strcasecmp(v, names[i]) == 0) {
				c->log_level = (enum log_level)i;
				return 0;
			}
		}
		snprintf(err, errlen, "expected error|warn|info|debug");
		return -1;
	case K_FORMAT:
		if (strcasecmp(v, "text") == 0 || strcasecmp(v, "json") == 0) {
			c->log_json = strcasecmp(v, "json") == 0;
			return 0;
		}
		snprintf(err, errlen, "expected text|json");
		return -1;
	}
	return -1;
}

/* inih calls this for every key; it returns 0 to make ini_parse report the line. */
static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	char why[256];
	const char *flag = NULL;
	for (size_t i = 0; i < sizeof(file_keys) / sizeof(file_keys[0]); i++)
		if (strcasecmp(section, file_keys[i].section) == 0 &&
		    strcasecmp(name, file_keys[i].name) == 0)
			flag = file_keys[i].flag;
	if (!flag && strcasecmp(section, "peers") == 0) {
		if (set_peer(p->c, name, strlen(name), value, why, sizeof(why)) == 0)
			return 1;
		if (!p->ferr[0])
			snprintf(p->ferr, sizeof(p->ferr), "peer '%s': %s", name, why);
		return 0;
	}
	if (!flag) {
		if (p->ferr[0])
			return 0;
		static const char *const known[] = { "server", "store", "peers", "http", "security" };
		bool ok = false;
		for (size_t i = 0; i < 5; i++)
			ok |= strcasecmp(section, known[i]) == 0;
		if (ok)
			snprintf(p->ferr, sizeof(p->ferr), "unknown key '%s' in [%s]", name, section);
		else if (!*section)
			snprintf(p->ferr, sizeof(p->ferr), "key '%s' outside a section", name);
		else
			snprintf(p->ferr, sizeof(p->ferr), "unknown section [%s]", section);
		return 0;
	}
	const struct key *k = find_key(flag, strlen(flag));
	if (set_value(p, k, value, SRC_FILE, why, sizeof(why)) == 0)
		return 1;
	if (!p->ferr[0])
		snprintf(p->ferr, sizeof(p->ferr), "%s: %s", name, why);
	return 0;
}

/* A config file is small text a person wrote; anything bigger is a mistake (a log, a
 * database) and reading it would only produce a confusing error at some line. */
#define CONFIG_FILE_MAX ((size_t)1 << 20)

/* Reads the config file into a NUL-terminated buffer (free it). Only a regular file of at
 * most CONFIG_FILE_MAX bytes is read: /dev/zero or a FIFO would make a reader wait or read
 * forever. Returns NULL after printing why. */
static char *slurp(const char *path)
{
	/* O_NONBLOCK so that opening a FIFO with no writer returns at once for fstat to
	 * refuse, instead of blocking in open. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;

	if (fd < 0) {
		fprintf(stderr, "parley: cannot read config file %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0) {
		fprintf(stderr, "parley: cannot read config file %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "parley: config file %s: not a regular file\n", path);
		goto fail;
	}
	if ((uint64_t)sb.st_size > CONFIG_FILE_MAX) {
		fprintf(stderr, "parley: config file %s: too large (%lld bytes, at most 1 MiB)\n", path,
			(long long)sb.st_size);
		goto fail;
	}
	/* One byte more than allowed, so that a file growing after fstat is still caught. */
	buf = malloc(CONFIG_FILE_MAX + 2);
	if (!buf) {
		fprintf(stderr, "parley: config file %s: out of memory\n", path);
		goto fail;
	}
	while (len <= CONFIG_FILE_MAX) {
		ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "parley: cannot read config file %s: %s\n", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONFIG_FILE_MAX) {
		fprintf(stderr, "parley: config file %s: too large (at most 1 MiB)\n", path);
		goto fail;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		fprintf(stderr, "parley: config file %s: not a text file (it holds a NUL byte)\n", path);
		goto fail;
	}
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

static int read_file(struct parse *p, const char *path)
{
	char *text = slurp(path);
	if (!text)
		return 2;
	int line = ini_parse_string(text, on_ini, p);
	free(text);
	if (line == 0)
		return 0;
	if (line < 0) {
		fprintf(stderr, "parley: %s: cannot parse (out of memory)\n", path);
		return 2;
	}
	fprintf(stderr, "parley: %s:%d: %s\n", path, line, p->ferr[0] ? p->ferr : "syntax error");
	return 2;
}

/* One command-line token classified: a flag (name, and value if it has one) or a
 * positional argument. */
struct tok {
	const char *name;      /* after "--"; NULL for a positional argument */
	size_t nlen;
	const char *value;     /* the value, from "=VALUE" or the next argument */
	const char *arg;       /* the argument itself */
	int kind;              /* 0 positional, 1 config key, 2 extra with value, 3 extra bool,
				* 4 the "--" that ends the flags, -1 unknown flag, -2 missing value */
	const struct key *key;
	unsigned extra;        /* index into extra flags or bools */
};

static bool extra_has(const char *const *names, unsigned n, const char *name, size_t len,
		      unsigned *idx)
{
	for (unsigned i = 0; names && i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) {
			*idx = i;
			return true;
		}
	return false;
}

/* Reads the token at argv[*i] and moves *i past it (and past its value). */
static void next_tok(int argc, char **argv, int *i, bool serve_flags,
		     const struct config_extra *x, bool *rest, struct tok *t)
{
	const char *a = argv[(*i)++];
	*t = (struct tok){ .arg = a };
	if (*rest || a[0] != '-' || a[1] == '\0')
		return;
	if (strcmp(a, "--") == 0) {
		*rest = true;
		t->kind = 4;
		return;
	}
	const char *name = a[1] == '-' ? a + 2 : a + 1;
	const char *eq = strchr(name, '=');
	t->name = name;
	t->nlen = eq ? (size_t)(eq - name) : strlen(name);
	bool takes_value;
	if (a[1] != '-') {
		t->kind = -1;   /* every flag is spelled --name */
		return;
	} else if (x && extra_has(x->flags, x->nflags, name, t->nlen, &t->extra)) {
		t->kind = 2;
		takes_value = true;
	} else if (x && extra_has(x->bools, x->nbools, name, t->nlen, &t->extra)) {
		t->kind = 3;
		takes_value = false;
	} else if ((t->key = find_key(name, t->nlen)) &&
		   (serve_flags || t->key->kind == K_CONFIG || strcmp(t->key->name, "db") == 0)) {
		t->kind = 1;
		takes_value = true;
	} else {
		t->kind = -1;
		return;
	}
	if (!takes_value) {
		if (eq)
			t->kind = -1;
		return;
	}
	if (eq) {
		t->value = eq + 1;
	} else if (*i < argc) {
		t->value = argv[(*i)++];
	} else {
		t->kind = -2;
	}
}

int config_parse_args(struct config *c, int argc, char **argv, int first, bool serve_flags,
		      struct config_extra *extra, char **pos, int *npos, int maxpos)
{
	struct parse p = { .c = c };
	struct tok t;
	bool rest = false;
	config_defaults(c);
	if (npos)
		*npos = 0;
	for (unsigned i = 0; extra && i < extra->nflags; i++)
		extra->val[i] = NULL;
	for (unsigned i = 0; extra && i < extra->nbools; i++)
		extra->bval[i] = false;

	/* First pass: only --config, so that the file is applied before every other flag and
	 * the flags win whatever their position. */
	for (int i = first; i < argc;) {
		next_tok(argc, argv, &i, serve_flags, extra, &rest, &t);
		if (t.kind == 1 && t.key->kind == K_CONFIG) {
			char why[256];
			if (set_value(&p, t.key, t.value, SRC_FLAG, why, sizeof(why))) {
				fprintf(stderr, "parley: --config: %s\n", why);
				return 2;
			}
		}
	}
	if (c->config_path[0] && read_file(&p, c->config_path))
		return 2;

	rest = false;
	for (int i = first; i < argc;) {
		next_tok(argc, argv, &i, serve_flags, extra, &rest, &t);
		char why[256];
		switch (t.kind) {
		case 0:
			if (!npos || *npos >= maxpos) {
				fprintf(stderr, "parley: unexpected argument '%s'\n", t.arg);
				return 2;
			}
			pos[(*npos)++] = (char *)t.arg;
			break;
		case -1:
			fprintf(stderr, "parley: unknown flag %.*s\n", (int)(t.name - t.arg + t.nlen),
				t.arg);
			return 2;
		case -2:
			fprintf(stderr, "parley: --%.*s: missing value\n", (int)t.nlen, t.name);
			return 2;
		case 2:
			extra->val[t.extra] = t.value;
			break;
		case 3:
			extra->bval[t.extra] = true;
			break;
		case 4:
			break;
		case 1:
			if (t.key->kind == K_CONFIG)
				break;
			if (set_value(&p, t.key, t.value, SRC_FLAG, why, sizeof(why))) {
				fprintf(stderr, "parley: --%s: %s\n", t.key->name, why);
				return 2;
			}
			break;
		}
	}
	return 0;
}

int config_listen_parse(const char *uri, struct cfg_listen *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strchr(uri, ':');
	static const char *const schemes[] = { "udp", "tcp", "tls", "ws", "wss" };
	bool known = false;
	if (colon && (size_t)(colon - uri) < sizeof(out->scheme)) {
		for (size_t i = 0; i < 5; i++)
			if (strlen(schemes[i]) == (size_t)(colon - uri) &&
			    strncasecmp(uri, schemes[i], (size_t)(colon - uri)) == 0) {
				strcpy(out->scheme, schemes[i]);
				known = true;
			}
	}
	if (!known) {
		snprintf(err, errlen, "expected udp:HOST:PORT (or udp:[IPv6]:PORT)");
		return -EINVAL;
	}
	const char *h = colon + 1, *hend, *port = NULL;
	if (*h == '[') {
		h++;
		hend = strchr(h, ']');
		if (!hend || (hend[1] != '\0' && hend[1] != ':')) {
			snprintf(err, errlen, "expected an IPv6 address in brackets: %s:[::1]:5060",
				 out->scheme);
			return -EINVAL;
		}
		out->v6 = true;
		if (hend[1] == ':')
			port = hend + 2;
	} else {
		hend = strchr(h, ':');
		if (hend) {
			port = hend + 1;
			if (strchr(port, ':')) {
				snprintf(err, errlen, "put an IPv6 address in brackets: %s:[::1]:5060",
					 out->scheme);
				return -EINVAL;
			}
		} else {
			hend = h + strlen(h);
		}
	}
	size_t hl = (size_t)(hend - h);
	if (hl == 0 || hl >= sizeof(out->host)) {
		snprintf(err, errlen, "missing or too long host");
		return -EINVAL;
	}
	memcpy(out->host, h, hl);
	out->host[hl] = '\0';
	unsigned char bin[16];
	if (inet_pton(out->v6 ? AF_INET6 : AF_INET, out->host, bin) != 1) {
		/* Numeric only: binding to a name would depend on DNS at start-up. */
		snprintf(err, errlen, "'%s' is not a numeric %s address", out->host,
			 out->v6 ? "IPv6" : "IPv4");
		return -EINVAL;
	}
	out->port = 5060;
	if (port) {
		uint64_t n;
		if (!str_to_u64(str_from_cstr(port), 65535, &n)) {
			snprintf(err, errlen, "bad port '%s'", port);
			return -EINVAL;
		}
		out->port = (uint16_t)n;
	}
	return 0;
}

/* "sip:HOST[:PORT]" with HOST a name, an IPv4 address or [IPv6]. */
static bool valid_sip_uri(const char *u)
{
	if (strncasecmp(u, "sip:", 4) != 0)
		return false;
	const char *h = u + 4, *end;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end || end == h + 1)
			return false;
		end++;
	} else {
		end = h + strcspn(h, ":;>");
		if (end == h)
			return false;
		for (const char *q = h; q < end; q++)
			if (!(*q == '.' || *q == '-' || (*q >= '0' && *q <= '9') ||
			      ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')))
				return false;
	}
	if (*end == ':') {
		uint64_t port;
		struct str ps = { end + 1, strcspn(end + 1, ";") };
		if (!str_to_u64(ps, 65535, &port) || port == 0)
			return false;
		end = ps.p + ps.l;
	}
	/* URI parameters such as ;transport=udp may follow. */
	return *end == '\0' || *end == ';';
}

/* "HOST[:PORT]" or "[IPv6][:PORT]", used for --dns and --http. */
static bool valid_hostport(const char *s, bool need_port)
{
	const char *port = NULL;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || e == s + 1 || (e[1] && e[1] != ':'))
			return false;
		port = e[1] ? e + 2 : NULL;
	} else {
		const char *e = strrchr(s, ':');
		if (e == s)
			return false;
		if (e && strchr(s, ':') == e)
			port = e + 1;
		else if (e)
			return false;   /* a bare IPv6 address must be in brackets */
	}
	if (!port)
		return !need_port;
	uint64_t n;
	return str_to_u64(str_from_cstr(port), 65535, &n);
}

/* --dns: "ADDR[:PORT]" or "[V6][:PORT]" with a numeric address, as c-ares takes it (a
 * name would need a resolver to find the resolver). */
static bool valid_dns(const char *s)
{
	char host[64];
	const char *end, *port = NULL;
	unsigned char bin[16];
	bool v6 = *s == '[';

	if (v6) {
		end = strchr(++s, ']');
		if (!end || (end[1] && end[1] != ':'))
			return false;
		port = end[1] ? end + 2 : NULL;
	} else {
		end = strchr(s, ':');
		if (end)
			port = end + 1;
		else
			end = s + strlen(s);
	}
	if (end == s || (size_t)(end - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t)(end - s));
	host[end - s] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
		return false;
	uint64_t n;
	return !port || (str_to_u64(str_from_cstr(port), 65535, &n) && n > 0);
}

int config_validate(const struct config *c)
{
	char why[256];
	if (c->nlisten == 0) {
		fprintf(stderr, "parley: --listen: at least one address is needed\n");
		return 2;
	}
	for (unsigned i = 0; i < c->nlisten; i++) {
		struct cfg_listen l;
		if (config_listen_parse(c->listen[i], &l, why, sizeof(why))) {
			fprintf(stderr, "parley: --listen %s: %s\n", c->listen[i], why);
			return 2;
		}
		if (strcmp(l.scheme, "udp") != 0) {
			fprintf(stderr, "parley: --listen %s: %s is not supported yet (use udp:HOST:PORT)\n",
				c->listen[i], l.scheme);
			return 2;
		}
	}
	/* The same address twice would make the second bind fail at start-up. */
	for (unsigned i = 0; i < c->nlisten; i++) {
		for (unsigned j = 0; j < i; j++) {
			struct cfg_listen a, b;
			config_listen_parse(c->listen[i], &a, why, sizeof(why));
			config_listen_parse(c->listen[j], &b, why, sizeof(why));
			if (a.port && a.port == b.port && a.v6 == b.v6 && !strcmp(a.scheme, b.scheme) &&
			    !strcmp(a.host, b.host)) {
				fprintf(stderr, "parley: --listen %s: given twice\n", c->listen[i]);
				return 2;
			}
		}
	}
	if (!c->db[0]) {
		fprintf(stderr, "parley: --db: empty database path\n");
		return 2;
	}
	if (c->ndomain == 0) {
		fprintf(stderr, "parley: --domain: at least one domain is needed\n");
		return 2;
	}
	for (unsigned i = 0; i < c->npeer; i++) {
		if (!valid_sip_uri(c->peer[i].uri)) {
			fprintf(stderr, "parley: --peer %s=%s: expected sip:HOST[:PORT]\n",
				c->peer[i].domain, c->peer[i].uri);
			return 2;
		}
	}
	/* auth-algorithms: a comma list of md5 and sha-256, in order of preference, each at
	 * most once: the server offers one challenge per algorithm (auth_algs_parse refuses a
	 * repeat, and core may not call auth, so the same rule is kept here). */
	struct str rest = str_from_cstr(c->auth_algorithms);
	unsigned nalg = 0;
	bool seen[2] = { false, false };   /* md5, sha-256 */
	while (rest.l) {
		long comma = str_chr(rest, ',');
		struct str one = str_trim((struct str){ rest.p, comma < 0 ? rest.l : (size_t)comma });
		rest = comma < 0 ? STR_NULL : (struct str){ rest.p + comma + 1, rest.l - (size_t)comma - 1 };
		int which = str_caseeq_cstr(one, "md5") ? 0 : str_caseeq_cstr(one, "sha-256") ? 1 : -1;
		if (which < 0) {
			fprintf(stderr, "parley: --auth-algorithms: unknown algorithm '%.*s' (expected md5|sha-256)\n",
				STR_FMT(one));
			return 2;
		}
		if (seen[which]) {
			fprintf(stderr, "parley: --auth-algorithms %s: '%.*s' is given twice (each algorithm at most once)\n",
				c->auth_algorithms, STR_FMT(one));
			return 2;
		}
		seen[which] = true;
		nalg++;
	}
	if (nalg == 0) {
		fprintf(stderr, "parley: --auth-algorithms: expected md5|sha-256 (at least one)\n");
		return 2;
	}
	if (c->dns[0] && !valid_dns(c->dns)) {
		fprintf(stderr, "parley: --dns %s: expected a numeric SERVER[:PORT] (127.0.0.1:53, [::1]:53)\n",
			c->dns);
		return 2;
	}
	if (c->http[0] && !valid_hostport(c->http, true)) {
		fprintf(stderr, "parley: --http %s: expected ADDR:PORT\n", c->http);
		return 2;
	}
	if (c->min_expires > c->default_expires || c->default_expires > c->max_expires) {
		fprintf(stderr, "parley: --min-expires %u, --default-expires %u, --max-expires %u: "
			"expected min <= default <= max\n", c->min_expires, c->default_expires,
			c->max_expires);
		return 2;
	}
	if (c->t1_ms > c->t2_ms) {
		fprintf(stderr, "parley: --t1 %u is larger than --t2 %u\n", c->t1_ms, c->t2_ms);
		return 2;
	}
	/* Slowing answers down is the step before a ban: past the ban it would never act. */
	if (c->slow_after && c->ban_threshold && c->slow_after >= c->ban_threshold) {
		fprintf(stderr, "parley: --slow-after %u, --ban-threshold %u: expected slow-after below "
			"ban-threshold (or either 0 to turn it off)\n", c->slow_after, c->ban_threshold);
		return 2;
	}
	return 0;
}

/* Unset strings are printed commented out, so the output reads back as the same config. */
static void print_str(FILE *f, const char *name, const char *v, const char *unset)
{
	if (*v)
		fprintf(f, "%s = %s\n", name, v);
	else
		fprintf(f, "; %s =   (%s)\n", name, unset);
}

void config_print(const struct config *c, FILE *f)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	if (c->config_path[0])
		fprintf(f, "; from %s and flags\n", c->config_path);
	fprintf(f, "[server]\n");
	for (unsigned i = 0; i < c->nlisten; i++)
		fprintf(f, "listen = %s\n", c->listen[i]);
	for (unsigned i = 0; i < c->ndomain; i++)
		fprintf(f, "domain = %s\n", c->domain[i]);
	print_str(f, "realm", c->realm, "the request's domain");
	print_str(f, "dns", c->dns, "system resolver");
	fprintf(f, "auth-algorithms = %s\n", c->auth_algorithms);
	fprintf(f, "log-level = %s\n", levels[c->log_level <= LOG_DEBUG ? c->log_level : LOG_DEBUG]);
	fprintf(f, "log-format = %s\n", c->log_json ? "json" : "text");
	print_str(f, "log-file", c->log_file, "stderr");
	fprintf(f, "t1 = %u\nt2 = %u\nt4 = %u\n", c->t1_ms, c->t2_ms, c->t4_ms);
	fprintf(f, "max-contacts = %u\n", c->max_contacts);
	fprintf(f, "min-expires = %u\nmax-expires = %u\ndefault-expires = %u\n", c->min_expires,
		c->max_expires, c->default_expires);
	fprintf(f, "nonce-lifetime = %u\n", c->nonce_lifetime);
	fprintf(f, "ring-timeout = %u\n", c->ring_timeout);
	fprintf(f, "flush-interval = %u\n", c->flush_ms);
	fprintf(f, "batch-wait = %u\n", c->batch_wait_us);
	fprintf(f, "\n[security]\n");
	fprintf(f, "nonce-bind-source = %s\n", c->nonce_bind_source ? "true" : "false");
	fprintf(f, "ban-threshold = %u\nban-window = %u\nban-time = %u\nslow-after = %u\n", c->ban_threshold,
		c->ban_window, c->ban_time, c->slow_after);
	fprintf(f, "rate-limit = %u\n", c->rate_limit);
	fprintf(f, "max-transactions = %u\nmax-dialogs = %u\nmax-memory = %u\n", c->max_transactions,
		c->max_dialogs, c->max_memory);
	fprintf(f, "\n[store]\ndb = %s\n", c->db);
	fprintf(f, "cdr-retention = %u\n", c->cdr_retention);
	fprintf(f, "\n[peers]\n");
	for (unsigned i = 0; i < c->npeer; i++)
		fprintf(f, "%s = %s\n", c->peer[i].domain, c->peer[i].uri);
	for (unsigned i = 0; i < c->ntrust; i++)
		fprintf(f, "trust = %s\n", c->trust[i]);
	fprintf(f, "\n[http]\n");
	print_str(f, "listen", c->http, "off");
}
