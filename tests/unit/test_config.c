/* test_config.c: unit tests of the settings: defaults, flags, the INI file and their errors. */
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "server/config.h"

/* The outcome of one call: its return code and what it printed on stderr. */
struct outcome {
	int rc;
	char err[1024];
};

/* Runs config_parse_args (and config_validate when it succeeds and 'validate' is set) on a
 * NULL-terminated argument list, catching stderr in a temporary file. */
static struct outcome run(struct config *c, bool validate, const char **args)
{
	struct outcome o = { 0 };
	char *argv[64];
	int argc = 0;
	argv[argc++] = "serve";
	while (*args && argc < 63)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	char path[] = "/tmp/parley-test-err-XXXXXX";
	int fd = mkstemp(path);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	char *pos[4];
	int npos = 0;
	o.rc = config_parse_args(c, argc, argv, 1, true, NULL, pos, &npos, 4);
	if (o.rc == 0 && validate)
		o.rc = config_validate(c);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, o.err, sizeof(o.err) - 1);
	o.err[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return o;
}

/* Writes text to a fresh temporary file; path must hold 64 bytes. */
static void write_file(char *path, const char *text)
{
	strcpy(path, "/tmp/parley-test-cfg-XXXXXX");
	int fd = mkstemp(path);
	ssize_t n = write(fd, text, strlen(text));
	CHECK_INT(n, (long long)strlen(text));
	close(fd);
}

#define ARGS(...) ((const char *[]){ __VA_ARGS__, NULL })

static struct config *new_config(void)
{
	return calloc(1, sizeof(struct config));
}

static void t_defaults(void)
{
	struct config *c = new_config();
	struct outcome o = run(c, true, (const char *[]){ NULL });
	CHECK_INT(o.rc, 0);
	CHECK_INT(c->tp.nlisten, 2);
	CHECK(strcmp(c->tp.listen[0], "udp:0.0.0.0:5060") == 0);
	CHECK(strcmp(c->tp.listen[1], "tcp:0.0.0.0:5060") == 0);
	CHECK_INT(c->tp.tcp_idle_timeout, 300);
	CHECK_INT(c->route.ndomain, 1);
	CHECK(c->route.domain[0][0] != '\0');
	CHECK(strcmp(c->server.db, "parley.db") == 0);
	CHECK(strcmp(c->auth.algorithms, "md5") == 0);
	CHECK_INT(c->server.log_level, LOG_INFO);
	CHECK(!c->server.log_format);
	CHECK_INT(c->txn.t1, 500);
	CHECK_INT(c->txn.t2, 4000);
	CHECK_INT(c->txn.t4, 5000);
	CHECK_INT(c->reg.max_contacts, 10);
	CHECK_INT(c->reg.min_expires, 60);
	CHECK_INT(c->reg.max_expires, 86400);
	CHECK_INT(c->reg.default_expires, 3600);
	CHECK_INT(c->auth.nonce_lifetime, 300);
	CHECK_INT(c->proxy.ring_timeout, 60);
	CHECK_INT(c->server.flush_ms, 200);
	CHECK_INT(c->server.batch_wait_us, 1000);
	free(c);
}

static void t_flags(void)
{
	struct config *c = new_config();
	struct outcome o = run(c, true,
			       ARGS("--listen", "udp:127.0.0.1:5070", "--listen=udp:[::1]:5070", "--domain", "a.test",
				    "--domain=b.test", "--db", "/tmp/x.db", "--peer", "c.test=sip:10.0.0.3:5080",
				    "--trust", "10.0.0.9", "--dns", "127.0.0.53:53", "--auth-algorithms", "sha-256,md5",
				    "--log-level", "debug", "--log-format=json", "--log-file", "/tmp/p.log", "--http",
				    "127.0.0.1:8080", "--t1", "250", "--t2=2000", "--t4", "3000", "--max-contacts", "3",
				    "--min-expires", "30", "--max-expires", "7200", "--default-expires", "600",
				    "--nonce-lifetime", "120", "--ring-timeout", "20", "--flush-interval", "50",
				    "--realm", "example.test", "--batch-wait", "0"));
	CHECK_INT(o.rc, 0);
	if (o.rc)
		fprintf(stderr, "%s", o.err);
	CHECK_INT(c->tp.nlisten, 2);
	CHECK(strcmp(c->tp.listen[1], "udp:[::1]:5070") == 0);
	CHECK_INT(c->route.ndomain, 2);
	CHECK(strcmp(c->route.domain[0], "a.test") == 0);
	CHECK(strcmp(c->route.domain[1], "b.test") == 0);
	CHECK(strcmp(c->server.db, "/tmp/x.db") == 0);
	CHECK_INT(c->route.npeer, 1);
	CHECK(strcmp(c->route.peer[0].domain, "c.test") == 0);
	CHECK(strcmp(c->route.peer[0].uri, "sip:10.0.0.3:5080") == 0);
	CHECK_INT(c->router.ntrust, 1);
	CHECK(strcmp(c->route.dns, "127.0.0.53:53") == 0);
	CHECK(strcmp(c->auth.algorithms, "sha-256,md5") == 0);
	CHECK_INT(c->server.log_level, LOG_DEBUG);
	CHECK(c->server.log_format);
	CHECK(strcmp(c->server.log_file, "/tmp/p.log") == 0);
	CHECK(strcmp(c->server.http, "127.0.0.1:8080") == 0);
	CHECK_INT(c->txn.t1, 250);
	CHECK_INT(c->txn.t2, 2000);
	CHECK_INT(c->txn.t4, 3000);
	CHECK_INT(c->reg.max_contacts, 3);
	CHECK_INT(c->reg.min_expires, 30);
	CHECK_INT(c->reg.max_expires, 7200);
	CHECK_INT(c->reg.default_expires, 600);
	CHECK_INT(c->auth.nonce_lifetime, 120);
	CHECK_INT(c->proxy.ring_timeout, 20);
	CHECK_INT(c->server.flush_ms, 50);
	CHECK_INT(c->server.batch_wait_us, 0);
	CHECK(strcmp(c->router.realm, "example.test") == 0);
	free(c);
}

static const char file_text[] = "; a comment\n"
				"[server]\n"
				"listen = udp:127.0.0.1:5090\n"
				"listen = udp:[::1]:5090\n"
				"domain = a.test\n"
				"domain = b.test\n"
				"log-level = warn\n"
				"t1 = 300\n"
				"[store]\n"
				"db = /tmp/from-file.db\n"
				"[peers]\n"
				"c.test = sip:10.0.0.3\n"
				"d.test = sip:peer.d.test:5070\n"
				"trust = 10.0.0.3\n"
				"[http]\n"
				"listen = 127.0.0.1:8081\n";

static void t_file(void)
{
	char path[64];
	write_file(path, file_text);
	struct config *c = new_config();
	struct outcome o = run(c, true, ARGS("--config", path));
	CHECK_INT(o.rc, 0);
	CHECK_INT(c->tp.nlisten, 2);
	CHECK(strcmp(c->tp.listen[0], "udp:127.0.0.1:5090") == 0);
	CHECK(strcmp(c->tp.listen[1], "udp:[::1]:5090") == 0);
	CHECK_INT(c->route.ndomain, 2); /* the host name default is gone */
	CHECK(strcmp(c->route.domain[0], "a.test") == 0);
	CHECK_INT(c->server.log_level, LOG_WARN);
	CHECK_INT(c->txn.t1, 300);
	CHECK(strcmp(c->server.db, "/tmp/from-file.db") == 0);
	CHECK_INT(c->route.npeer, 2);
	CHECK(strcmp(c->route.peer[1].domain, "d.test") == 0);
	CHECK(strcmp(c->route.peer[1].uri, "sip:peer.d.test:5070") == 0);
	CHECK_INT(c->router.ntrust, 1);
	CHECK(strcmp(c->server.http, "127.0.0.1:8081") == 0);
	CHECK(strcmp(c->path, path) == 0);

	/* config_print reads back as the same settings. */
	char out[64];
	strcpy(out, "/tmp/parley-test-print-XXXXXX");
	int fd = mkstemp(out);
	FILE *f = fdopen(fd, "w");
	config_print(c, f);
	fclose(f);
	struct config *d = new_config();
	o = run(d, true, ARGS("--config", out));
	CHECK_INT(o.rc, 0);
	CHECK_INT(d->tp.nlisten, 2);
	CHECK_INT(d->route.ndomain, 2);
	CHECK_INT(d->route.npeer, 2);
	CHECK_INT(d->router.ntrust, 1);
	CHECK_INT(d->txn.t1, 300);
	CHECK(strcmp(d->server.http, c->server.http) == 0);
	CHECK(strcmp(d->server.db, c->server.db) == 0);
	CHECK(strcmp(d->router.realm, "") == 0);
	unlink(out);
	free(d);
	free(c);
	unlink(path);
}

static void t_flag_wins(void)
{
	char path[64];
	write_file(path, file_text);
	struct config *c = new_config();
	/* Flags win wherever they are, even before --config; --listen and --domain replace
	 * the file's whole list, --peer for a known domain replaces its route. */
	struct outcome o =
		run(c, true,
		    ARGS("--listen", "udp:127.0.0.1:6000", "--config", path, "--domain", "z.test", "--log-level",
			 "error", "--db", "/tmp/flag.db", "--peer", "c.test=sip:10.9.9.9", "--trust", "10.0.0.4"));
	CHECK_INT(o.rc, 0);
	CHECK_INT(c->tp.nlisten, 1);
	CHECK(strcmp(c->tp.listen[0], "udp:127.0.0.1:6000") == 0);
	CHECK_INT(c->route.ndomain, 1);
	CHECK(strcmp(c->route.domain[0], "z.test") == 0);
	CHECK_INT(c->server.log_level, LOG_ERROR);
	CHECK(strcmp(c->server.db, "/tmp/flag.db") == 0);
	CHECK_INT(c->route.npeer, 2);
	CHECK(strcmp(c->route.peer[0].uri, "sip:10.9.9.9") == 0);
	CHECK_INT(c->router.ntrust, 2);
	CHECK_INT(c->txn.t1, 300); /* untouched keys keep the file's value */
	free(c);
	unlink(path);
}

/* Expects exit code 2 and a message containing 'want'. */
static void expect_error(const char **args, bool validate, const char *want)
{
	struct config *c = new_config();
	struct outcome o = run(c, validate, args);
	CHECK_INT(o.rc, 2);
	if (!strstr(o.err, want)) {
		fprintf(stderr, "expected \"%s\" in \"%s\"\n", want, o.err);
		unit_failures++;
	}
	free(c);
}

static void t_flag_errors(void)
{
	expect_error(ARGS("--bogus"), false, "parley: unknown flag --bogus\n");
	expect_error(ARGS("--bogus=1"), false, "parley: unknown flag --bogus\n");
	expect_error(ARGS("-x"), false, "parley: unknown flag -x\n");
	expect_error(ARGS("--listen"), false, "parley: --listen: missing value\n");
	expect_error(ARGS("--t1", "abc"), false, "parley: --t1: expected a number");
	expect_error(ARGS("--t1", "0"), false, "parley: --t1: expected a number");
	expect_error(ARGS("--max-contacts", "99999999999999999999"), false, "--max-contacts");
	expect_error(ARGS("--log-level", "loud"), false, "parley: --log-level: expected error|warn|info|debug\n");
	expect_error(ARGS("--log-format", "xml"), false, "parley: --log-format: expected text|json\n");
	expect_error(ARGS("--peer", "nodomain"), false, "parley: --peer: expected DOMAIN=sip:HOST[:PORT]");
	expect_error(ARGS("a", "b", "c", "d", "e"), false, "parley: unexpected argument 'e'");
	expect_error(ARGS("--config", "/tmp/parley-no-such-file.ini"), false, "/tmp/parley-no-such-file.ini");
}

static void t_validate_errors(void)
{
	expect_error(ARGS("--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"), true,
		     "--tls-cert /nonexistent.pem: cannot read");
	expect_error(ARGS("--tls-key", "/nonexistent.key"), true, "--tls-key: needs --tls-cert");
	expect_error(ARGS("--listen", "sctp:127.0.0.1:5060"), true, "expected udp:, tcp:, tls:, ws: or wss:HOST:PORT");
	expect_error(ARGS("--listen", "tcp:127.0.0.1:5060", "--listen", "tcp:127.0.0.1:5060"), true, "given twice");
	expect_error(ARGS("--tcp-idle-timeout", "0"), false, "--tcp-idle-timeout");
	expect_error(ARGS("--tcp-max-connections", "0"), false, "--tcp-max-connections");
	expect_error(ARGS("--listen", "udp:::1:5060"), true, "brackets");
	expect_error(ARGS("--listen", "udp:[::1:5060"), true, "brackets");
	expect_error(ARGS("--listen", "udp:127.0.0.1:70000"), true, "bad port");
	expect_error(ARGS("--listen", "udp:nohost.test:5060"), true, "not a numeric");
	expect_error(ARGS("--peer", "b.test=http://x"), true, "expected sip:HOST[:PORT]");
	expect_error(ARGS("--peer", "b.test=sip:"), true, "expected sip:HOST[:PORT]");
	expect_error(ARGS("--auth-algorithms", "md5,sha-1"), true, "unknown algorithm 'sha-1'");
	expect_error(ARGS("--auth-algorithms", ""), true, "at least one");
	expect_error(ARGS("--min-expires", "100", "--default-expires", "50"), true, "min <= default");
	expect_error(ARGS("--http", "8080"), true, "expected [http:|https:]ADDR:PORT");
	expect_error(ARGS("--http", "https:8080"), true, "--http https:8080");

	struct config *c = new_config();
	struct outcome o = run(c, true,
			       ARGS("--listen", "udp:[::1]:0", "--listen", "udp:10.1.2.3", "--peer",
				    "x.test=sip:[2001:db8::1]:5070;transport=udp", "--dns", "[::1]:53",
				    "--auth-algorithms", "SHA-256, md5"));
	CHECK_INT(o.rc, 0);
	free(c);

	struct tp_listen_spec l;
	char why[128];
	CHECK_INT(tp_listen_parse("udp:[::1]:0", &l, why, sizeof(why)), 0);
	CHECK(l.v6);
	CHECK(strcmp(l.host, "::1") == 0);
	CHECK_INT(l.port, 0);
	CHECK_INT(tp_listen_parse("UDP:10.1.2.3", &l, why, sizeof(why)), 0);
	CHECK(strcmp(l.scheme, "udp") == 0);
	CHECK_INT(l.port, 5060);
}

static void t_file_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "[server]\nlisten = udp:127.0.0.1:1\nbogus = 1\n", ":3: unknown key 'bogus' in [server]\n" },
		{ "[server]\n\n\nlog-level = shouting\n", ":4: log-level: expected error|warn|info|debug\n" },
		{ "[server]\nt2 = many\n", ":2: t2: expected a number" },
		{ "[nosuch]\nx = 1\n", ":2: unknown section [nosuch]\n" },
		{ "db = x\n", ":1: key 'db' outside a section\n" },
		{ "[store]\nthis line has no equals sign\n", ":2: syntax error\n" },
		{ "[store]\ndb = a\nlisten = x\n", ":3: unknown key 'listen' in [store]\n" },
		{ "[peers]\nb.test = sip:h\nc.test = \n", ":3: peer 'c.test'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[64], want[200];
		write_file(path, cases[i].text);
		snprintf(want, sizeof(want), "parley: %s%s", path, cases[i].want);
		expect_error(ARGS("--config", path), false, want);
		unlink(path);
	}
}

/* K_BOOL: every spelling, as a flag (separate value or =VALUE) and in the file. */
static void t_bool(void)
{
	struct config *c = new_config();
	CHECK(!c->router.nonce_bind_source);
	struct outcome o = run(c, true, ARGS("--nonce-bind-source", "true"));
	CHECK_INT(o.rc, 0);
	CHECK(c->router.nonce_bind_source);
	static const struct {
		const char *v;
		bool want;
	} spell[] = { { "TRUE", true },   { "yes", true }, { "on", true },   { "1", true },
		      { "false", false }, { "No", false }, { "off", false }, { "0", false } };
	for (size_t i = 0; i < sizeof(spell) / sizeof(spell[0]); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "--nonce-bind-source=%s", spell[i].v);
		o = run(c, true, ARGS(arg));
		CHECK_INT(o.rc, 0);
		CHECK_INT(c->router.nonce_bind_source, spell[i].want);
	}
	free(c);
	expect_error(ARGS("--nonce-bind-source", "maybe"), false,
		     "parley: --nonce-bind-source: expected true|false, got 'maybe'\n");
	expect_error(ARGS("--nonce-bind-source"), false, "parley: --nonce-bind-source: missing value\n");
}

/* The [security] section: every key read from the file, its defaults, and its checks. */
static void t_security(void)
{
	struct config *c = new_config();
	struct outcome o = run(c, true, (const char *[]){ NULL });
	CHECK_INT(o.rc, 0);
	CHECK(!c->router.nonce_bind_source);
	CHECK_INT(c->guard.ban_threshold, 10);
	CHECK_INT(c->guard.ban_window, 60);
	CHECK_INT(c->guard.ban_time, 900);
	CHECK_INT(c->guard.slow_after, 3);
	CHECK_INT(c->guard.rate_limit, 200);
	CHECK_INT(c->router.max_transactions, 15000);
	CHECK_INT(c->dlg.max, 100000);
	CHECK_INT(c->server.max_memory, 1024);
	CHECK_INT(c->server.cdr_retention, 90);

	char path[64];
	write_file(path, "[security]\nnonce-bind-source = yes\nban-threshold = 20\nban-window = 120\n"
			 "ban-time = 3600\nslow-after = 5\nrate-limit = 0\nmax-transactions = 500\n"
			 "max-dialogs = 1000\nmax-memory = 256\n[store]\ncdr-retention = 0\n");
	o = run(c, true, ARGS("--config", path));
	CHECK_INT(o.rc, 0);
	CHECK(c->router.nonce_bind_source);
	CHECK_INT(c->guard.ban_threshold, 20);
	CHECK_INT(c->guard.ban_window, 120);
	CHECK_INT(c->guard.ban_time, 3600);
	CHECK_INT(c->guard.slow_after, 5);
	CHECK_INT(c->guard.rate_limit, 0);
	CHECK_INT(c->router.max_transactions, 500);
	CHECK_INT(c->dlg.max, 1000);
	CHECK_INT(c->server.max_memory, 256);
	CHECK_INT(c->server.cdr_retention, 0);
	/* A flag still wins over the section. */
	o = run(c, true, ARGS("--config", path, "--slow-after", "7"));
	CHECK_INT(o.rc, 0);
	CHECK_INT(c->guard.slow_after, 7);
	unlink(path);

	/* Either one 0 turns its step off, so any value of the other is fine. */
	o = run(c, true, ARGS("--ban-threshold", "0", "--slow-after", "50"));
	CHECK_INT(o.rc, 0);
	o = run(c, true, ARGS("--ban-threshold", "5", "--slow-after", "0"));
	CHECK_INT(o.rc, 0);
	free(c);
	expect_error(ARGS("--ban-threshold", "5", "--slow-after", "5"), true,
		     "expected slow-after below ban-threshold");
	expect_error(ARGS("--ban-threshold", "5", "--slow-after", "9"), true, "--slow-after 9, --ban-threshold 5");
	expect_error(ARGS("--ban-window", "0"), false, "parley: --ban-window: expected a number from 1");
	expect_error(ARGS("--max-memory", "1"), false, "parley: --max-memory: expected a number from 16");

	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "[security]\nban-time = soon\n", ":2: ban-time: expected a number" },
		{ "[security]\nnonce-bind-source = sometimes\n", ":2: nonce-bind-source: expected true|false" },
		{ "[security]\ncdr-retention = 5\n", ":2: unknown key 'cdr-retention' in [security]" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[200];
		write_file(path, bad[i].text);
		snprintf(want, sizeof(want), "parley: %s%s", path, bad[i].want);
		expect_error(ARGS("--config", path), false, want);
		unlink(path);
	}
}

/* Listen addresses that would fail to bind at start-up are refused by the check (exit 2
 * naming them): tcp:, tls:, ws: and wss: all listen on TCP, and a wildcard address takes
 * every address of its family. UDP and TCP on one port are fine, as are IPv4 and IPv6. */
static void t_listen_overlaps(void)
{
	expect_error(ARGS("--listen", "tcp:127.0.0.1:5060", "--listen", "ws:127.0.0.1:5060"), true,
		     "--listen ws:127.0.0.1:5060: the same TCP port as tcp:127.0.0.1:5060");
	expect_error(ARGS("--listen", "tls:127.0.0.1:5061", "--listen", "wss:127.0.0.1:5061"), true,
		     "--listen wss:127.0.0.1:5061: the same TCP port as tls:127.0.0.1:5061");
	expect_error(ARGS("--listen", "tcp:0.0.0.0:5060", "--listen", "tls:127.0.0.1:5060"), true,
		     "--listen tls:127.0.0.1:5060: the same TCP port as tcp:0.0.0.0:5060");
	expect_error(ARGS("--listen", "udp:10.0.0.1:5060", "--listen", "udp:0.0.0.0:5060"), true,
		     "--listen udp:0.0.0.0:5060: the same UDP port as udp:10.0.0.1:5060");
	expect_error(ARGS("--listen", "ws:[::]:80", "--listen", "wss:[::1]:80"), true,
		     "--listen wss:[::1]:80: the same TCP port as ws:[::]:80");
	struct config *c = new_config();
	struct outcome o = run(c, true,
			       ARGS("--listen", "udp:0.0.0.0:5060", "--listen", "tcp:0.0.0.0:5060", "--listen",
				    "tcp:[::]:5060", "--listen", "ws:127.0.0.1:5062", "--listen", "wss:127.0.0.2:5062",
				    "--listen", "tcp:127.0.0.1:0", "--listen", "ws:127.0.0.1:0"));
	CHECK_INT(o.rc, 0);
	free(c);
}

/* Checks serve leaves to nobody else: what passes config_validate must start. */
static void t_validate_serve_rules(void)
{
	expect_error(ARGS("--auth-algorithms", "md5,md5"), true, "'md5' is given twice");
	expect_error(ARGS("--auth-algorithms", "SHA-256, md5 ,sha-256"), true, "'sha-256' is given twice");
	expect_error(ARGS("--db", ""), false, "parley: --db: empty database path\n");
	expect_error(ARGS("--dns", "resolver.test:53"), true, "--dns resolver.test:53: expected a numeric");
	expect_error(ARGS("--dns", "127.0.0.1:0"), true, "--dns 127.0.0.1:0");
	expect_error(ARGS("--listen", "udp:127.0.0.1:5070", "--listen", "udp:127.0.0.1:5070"), true,
		     "--listen udp:127.0.0.1:5070: given twice");

	char path[64], want[200];
	write_file(path, "[store]\ndb =\n");
	snprintf(want, sizeof(want), "parley: %s:2: db: empty database path\n", path);
	expect_error(ARGS("--config", path), false, want);
	unlink(path);

	/* Port 0 asks for a free port each time: twice is two listeners, not a clash. */
	struct config *c = new_config();
	struct outcome o = run(c, true,
			       ARGS("--listen", "udp:127.0.0.1:0", "--listen", "udp:127.0.0.1:0", "--dns", "127.0.0.1",
				    "--auth-algorithms", "md5,sha-256"));
	CHECK_INT(o.rc, 0);
	free(c);
}

/* Only a regular file of at most 1 MiB is read as a config: /dev/zero, a FIFO or a
 * directory would make the reader wait or read forever. */
static void t_not_regular(void)
{
	expect_error(ARGS("--config", "/dev/zero"), false, "parley: config file /dev/zero: not a regular file\n");
	expect_error(ARGS("--config", "/tmp"), false, "parley: config file /tmp: not a regular file\n");

	char fifo[64], want[160];
	snprintf(fifo, sizeof(fifo), "/tmp/parley-test-fifo-%d", (int)getpid());
	unlink(fifo);
	CHECK_INT(mkfifo(fifo, 0600), 0);
	snprintf(want, sizeof(want), "parley: config file %s: not a regular file\n", fifo);
	expect_error(ARGS("--config", fifo), false, want); /* would block in open without O_NONBLOCK */
	unlink(fifo);

	/* Just over 1 MiB of comment lines: refused, however harmless; exactly 1 MiB is read. */
	char path[64];
	write_file(path, "");
	int fd = open(path, O_WRONLY | O_TRUNC);
	static char block[4096];
	memset(block, '\n', sizeof(block));
	block[0] = ';';
	for (int i = 0; i < 256; i++)
		CHECK_INT(write(fd, block, sizeof(block)), (long long)sizeof(block));
	close(fd);
	struct config *c = new_config();
	struct outcome o = run(c, true, ARGS("--config", path));
	CHECK_INT(o.rc, 0);
	free(c);
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK_INT(write(fd, "\n", 1), 1);
	close(fd);
	snprintf(want, sizeof(want), "parley: config file %s: too large", path);
	expect_error(ARGS("--config", path), false, want);
	unlink(path);
}

/* Subcommands other than serve take --db and --config, plus their own flags. */
static void t_extra(void)
{
	struct config *c = new_config();
	static const char *const flags[] = { "password", "limit" };
	static const char *const bools[] = { "json" };
	const char *val[2];
	bool bval[1];
	struct cfg_extra x = { flags, val, 2, bools, bval, 1 };
	char *argv[] = { "user", "add", "alice@a.test", "--password", "pw", "--db=/tmp/u.db", "--json", NULL };
	char *pos[2];
	int npos = 0;
	CHECK_INT(config_parse_args(c, 7, argv, 1, false, &x, pos, &npos, 2), 0);
	CHECK_INT(npos, 2);
	CHECK(strcmp(pos[0], "add") == 0);
	CHECK(strcmp(pos[1], "alice@a.test") == 0);
	CHECK(val[0] && strcmp(val[0], "pw") == 0);
	CHECK(val[1] == NULL);
	CHECK(bval[0]);
	CHECK(strcmp(c->server.db, "/tmp/u.db") == 0);

	/* serve's flags are not taken by the other subcommands. */
	char *argv2[] = { "user", "--listen", "udp:127.0.0.1:1", NULL };
	fflush(stderr);
	int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 2);
	int rc = config_parse_args(c, 3, argv2, 1, false, &x, pos, &npos, 2);
	dup2(saved, 2);
	close(saved);
	close(devnull);
	CHECK_INT(rc, 2);
	free(c);
}

/* What config_diff reported: one "name|was|now" line per changed key. */
struct diffs {
	char text[2048];
	unsigned n;
};

static void on_diff(void *arg, const struct cfg_key *k, const char *was, const char *now)
{
	struct diffs *d = arg;
	size_t l = strlen(d->text);
	snprintf(d->text + l, sizeof d->text - l, "%s|%s|%s\n", k->name ? k->name : k->flag, was, now);
	d->n++;
}

/* A reload compares the config read again with the one in use, key by key, and copies
 * the keys it takes; config_reparse reports a bad file as FILE:LINE into the stream given. */
static void t_reload_diff(void)
{
	struct config *a = new_config(), *b = new_config();
	char path[64];
	write_file(path, "[server]\ndomain = a.test\nt1 = 500\n[peers]\nb.test = sip:127.0.0.2\n");
	char *argv[] = { "serve", "--config", path, "--log-level", "debug", NULL };
	FILE *ef = tmpfile();
	CHECK_INT(config_reparse(a, 5, argv, ef), 0);
	/* The file changes: a domain more, another peer, t1; the flag still wins for log-level. */
	FILE *f = fopen(path, "w");
	fputs("[server]\ndomain = a.test\ndomain = c.test\nt1 = 600\nlog-level = warn\n[peers]\n"
	      "b.test = sip:127.0.0.3\n",
	      f);
	fclose(f);
	CHECK_INT(config_reparse(b, 5, argv, ef), 0);
	struct diffs d = { "", 0 };
	CHECK_INT(config_diff(a, b, on_diff, &d), 3);
	CHECK(strstr(d.text, "domain|a.test|a.test, c.test\n") != NULL);
	CHECK(strstr(d.text, "t1|500|600\n") != NULL);
	CHECK(strstr(d.text, "peer|b.test=sip:127.0.0.2|b.test=sip:127.0.0.3\n") != NULL);
	if (d.n != 3)
		fprintf(stderr, "diffs:\n%s", d.text);
	/* Copying one key leaves the others as they were. */
	for (size_t i = 0; i < route_cfg_nkeys; i++)
		if (strcmp(route_cfg_keys[i].flag, "domain") == 0)
			config_copy_key(a, b, &route_cfg_keys[i]);
	CHECK_INT(a->route.ndomain, 2);
	CHECK(strcmp(a->route.domain[1], "c.test") == 0);
	CHECK_INT(a->txn.t1, 500);
	d = (struct diffs){ "", 0 };
	CHECK_INT(config_diff(a, b, on_diff, &d), 2);

	/* A bad line: the error goes to the stream, naming FILE:LINE. */
	f = fopen(path, "w");
	fputs("[server]\ndomain = a.test\nbogus = 1\n", f);
	fclose(f);
	rewind(ef);
	CHECK_INT(config_reparse(b, 5, argv, ef), 2);
	fflush(ef);
	rewind(ef);
	char line[512] = "", want[128];
	CHECK(fgets(line, sizeof line, ef) != NULL);
	snprintf(want, sizeof want, "parley: %s:3: unknown key 'bogus' in [server]", path);
	CHECK(strstr(line, want) != NULL);
	fclose(ef);
	unlink(path);
	free(a);
	free(b);
}

static const struct unit_case cases[] = {
	{ "defaults", t_defaults },
	{ "flags", t_flags },
	{ "file", t_file },
	{ "flag_wins", t_flag_wins },
	{ "flag_errors", t_flag_errors },
	{ "validate_errors", t_validate_errors },
	{ "file_errors", t_file_errors },
	{ "extra", t_extra },
	{ "bool", t_bool },
	{ "security", t_security },
	{ "validate_serve_rules", t_validate_serve_rules },
	{ "listen_overlaps", t_listen_overlaps },
	{ "not_regular", t_not_regular },
	{ "reload_diff", t_reload_diff },
};
UNIT_MAIN(cases)
