/* test_route.c: unit tests of route (numeric hosts, static peers, SRV order) and, when dnsmasq is installed, of RFC 3263 DNS against a dnsmasq on loopback. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/loop.h"
#include "route/route.h"
#include "sip/sip.h"

#define DNSMASQ "/usr/sbin/dnsmasq"

/* ---- helpers ------------------------------------------------------------------------------- */

/* What a route_h saw. */
struct got {
	struct loop *loop; /* stopped when the answer arrives, if set */
	int calls;
	int err;
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n;
};

static void on_route(void *arg, int err, const struct route_target *t, unsigned n)
{
	struct got *g = arg;
	g->calls++;
	g->err = err;
	g->n = n;
	if (n)
		memcpy(g->t, t, n * sizeof(*t));
	if (g->loop)
		loop_stop(g->loop);
}

static struct sip_uri uri(const char *s)
{
	struct sip_uri u;
	int rc = sip_uri_parse(&u, str_from_cstr(s));
	CHECK_INT(rc, 0);
	return u;
}

static const char *addr_str(const struct route_target *t, char *buf, size_t n)
{
	return tp_addr_str(&t->addr, buf, n);
}

#define CHECK_TARGET(tgt, want_addr, want_proto)                                        \
	do {                                                                            \
		char ab_[80];                                                           \
		CHECK_STR(str_from_cstr(addr_str(&(tgt), ab_, sizeof ab_)), want_addr); \
		CHECK_INT((tgt).proto, want_proto);                                     \
	} while (0)

static void on_guard(void *arg)
{
	loop_stop(arg);
}

/* Runs the loop until the callback stops it, or gives up after ms. */
static void run_loop(struct loop *l, uint64_t ms)
{
	struct timer guard = { 0 };
	timer_start(loop_timers(l), &guard, ms, on_guard, l);
	CHECK_INT(loop_run(l), 0);
	timer_stop(loop_timers(l), &guard);
}

struct fixture {
	struct route_cfg cfg;
	struct loop *loop;
	struct route *r;
};

static bool setup(struct fixture *f, const char *dns)
{
	memset(&f->cfg, 0, sizeof(f->cfg));
	snprintf(f->cfg.dns, sizeof(f->cfg.dns), "%s", dns ? dns : "");
	f->r = NULL;
	CHECK_INT(loop_new(&f->loop), 0);
	int rc = route_new(&f->r, f->loop, &f->cfg);
	CHECK_INT(rc, 0);
	return rc == 0;
}

static void add_peer(struct fixture *f, const char *domain, const char *u)
{
	struct route_peer_cfg *p = &f->cfg.peer[f->cfg.npeer++];
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	snprintf(p->uri, sizeof(p->uri), "%s", u);
	/* The route parses its peers once, when it is made: make it again. */
	route_free(f->r);
	f->r = NULL;
	CHECK_INT(route_new(&f->r, f->loop, &f->cfg), 0);
}

static void teardown(struct fixture *f)
{
	route_free(f->r);
	loop_free(f->loop);
}

/* ---- no DNS ---------------------------------------------------------------------------------- */

static void t_numeric(void)
{
	struct fixture f;
	if (!setup(&f, NULL))
		return;
	struct got g = { 0 };
	struct sip_uri u = uri("sip:alice@127.0.0.1");
	uint64_t id = 0;
	CHECK_INT(route_resolve(f.r, &u, on_route, &g, &id), 0);
	CHECK(id != 0);
	CHECK_INT(g.calls, 1); /* synchronously */
	CHECK_INT(g.err, 0);
	CHECK_INT(g.n, 1);
	CHECK_TARGET(g.t[0], "127.0.0.1:5060", TP_UDP);
	CHECK_STR(str_from_cstr(g.t[0].host), "127.0.0.1");
	route_cancel(f.r, id); /* completed: harmless */

	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n;
	u = uri("sip:bob@[::1]:5080");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_INT(n, 1);
	CHECK_TARGET(t[0], "[::1]:5080", TP_UDP);

	/* maddr wins over the host, even over a host that is a name */
	u = uri("sip:bob@example.invalid:5070;maddr=127.0.0.3");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "127.0.0.3:5070", TP_UDP);
	u = uri("sip:bob@example.invalid;transport=udp;maddr=::1");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "[::1]:5060", TP_UDP);

	/* a name needs DNS: route_lookup does not start it */
	u = uri("sip:carol@example.invalid");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EWOULDBLOCK);
	CHECK_INT(n, 0);
	teardown(&f);
}

static void t_protos(void)
{
	struct fixture f;
	if (!setup(&f, NULL))
		return;
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n;
	struct got g = { 0 };
	struct sip_uri u = uri("sips:alice@127.0.0.1");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EPROTONOSUPPORT);
	CHECK_INT(route_resolve(f.r, &u, on_route, &g, NULL), -EPROTONOSUPPORT);
	CHECK_INT(g.calls, 0); /* an error return means no callback */
	u = uri("sip:alice@127.0.0.1;transport=tcp");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EPROTONOSUPPORT);
	u = uri("sip:alice@127.0.0.1;transport=sctp");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EPROTONOSUPPORT);

	route_set_protos(f.r, 1u << TP_UDP | 1u << TP_TCP | 1u << TP_TLS);
	u = uri("sips:alice@127.0.0.1");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "127.0.0.1:5061", TP_TLS);
	u = uri("sips:alice@127.0.0.1;transport=tcp"); /* RFC 3263: TLS */
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "127.0.0.1:5061", TP_TLS);
	u = uri("sip:alice@127.0.0.1:5090;transport=TCP");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "127.0.0.1:5090", TP_TCP);
	u = uri("sips:alice@127.0.0.1;transport=udp");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EPROTONOSUPPORT);

	u = uri("tel:+15551234");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EINVAL);
	teardown(&f);
}

static void t_static_peer(void)
{
	struct fixture f;
	if (!setup(&f, NULL))
		return;
	add_peer(&f, "b.test", "sip:127.0.0.9:5099");
	add_peer(&f, "c.test", "sip:[::1]");
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n;
	struct sip_uri u = uri("sip:bob@B.Test");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_INT(n, 1);
	CHECK_TARGET(t[0], "127.0.0.9:5099", TP_UDP);
	u = uri("sip:bob@b.test."); /* absolute form of the same domain */
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "127.0.0.9:5099", TP_UDP);
	u = uri("sip:bob@c.test:7000"); /* the peer URI decides the port */
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "[::1]:5060", TP_UDP);

	struct got g = { 0 };
	u = uri("sip:bob@b.test");
	CHECK_INT(route_resolve(f.r, &u, on_route, &g, NULL), 0);
	CHECK_INT(g.calls, 1);
	CHECK_TARGET(g.t[0], "127.0.0.9:5099", TP_UDP);

	/* a maddr is an explicit hop: no peer lookup for it */
	u = uri("sip:bob@b.test;maddr=127.0.0.5");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_TARGET(t[0], "127.0.0.5:5060", TP_UDP);
	/* a domain that is no peer and no number needs DNS */
	u = uri("sip:bob@d.test");
	CHECK_INT(route_lookup(f.r, &u, t, &n), -EWOULDBLOCK);
	teardown(&f);
}

/* ---- SRV ordering ------------------------------------------------------------------------- */

static uint32_t fixed_rand(void *arg)
{
	return *(uint32_t *)arg;
}

static struct route_srv rec(uint16_t prio, uint16_t weight, const char *host)
{
	struct route_srv s = { .prio = prio, .weight = weight, .port = 5060 };
	snprintf(s.host, sizeof(s.host), "%s", host);
	return s;
}

static void t_srv_order_priority(void)
{
	struct route_srv s[5] = { rec(20, 10, "d"), rec(10, 0, "a"), rec(30, 0, "e"), rec(10, 0, "b"),
				  rec(20, 0, "c") };
	uint32_t r = 0;
	route_srv_order(s, 5, fixed_rand, &r);
	const char *want[] = { "a", "b", "c", "d", "e" };
	for (int i = 0; i < 5; i++)
		CHECK_STR(str_from_cstr(s[i].host), want[i]);
	route_srv_order(s, 0, fixed_rand, &r); /* empty: nothing to do */
}

static void t_srv_order_weight(void)
{
	/* weights 60 and 10 in one priority: running sums 60, 70 over [0, 70] */
	struct route_srv s[3];
	uint32_t r = 60; /* 60 <= 60: the first */
	s[0] = rec(10, 60, "a"), s[1] = rec(10, 10, "b"), s[2] = rec(20, 5, "z");
	route_srv_order(s, 3, fixed_rand, &r);
	CHECK_STR(str_from_cstr(s[0].host), "a");
	CHECK_STR(str_from_cstr(s[1].host), "b");
	CHECK_STR(str_from_cstr(s[2].host), "z");
	r = 61; /* past 60: the second */
	s[0] = rec(10, 60, "a"), s[1] = rec(10, 10, "b"), s[2] = rec(20, 5, "z");
	route_srv_order(s, 3, fixed_rand, &r);
	CHECK_STR(str_from_cstr(s[0].host), "b");
	CHECK_STR(str_from_cstr(s[1].host), "a");
	CHECK_STR(str_from_cstr(s[2].host), "z");
	/* a zero weight is drawn only when the random number is 0 (RFC 2782) */
	r = 0;
	s[0] = rec(1, 5, "w"), s[1] = rec(1, 0, "zero"), s[2] = rec(1, 5, "v");
	route_srv_order(s, 3, fixed_rand, &r);
	CHECK_STR(str_from_cstr(s[0].host), "zero");
	r = 3; /* % 11 = 3: w (sum 0, 5) */
	s[0] = rec(1, 5, "w"), s[1] = rec(1, 0, "zero"), s[2] = rec(1, 5, "v");
	route_srv_order(s, 3, fixed_rand, &r);
	CHECK_STR(str_from_cstr(s[0].host), "w");
	CHECK_STR(str_from_cstr(s[1].host), "v"); /* then 3 % 6 = 3 passes zero's sum 0 */
	CHECK_STR(str_from_cstr(s[2].host), "zero");
}

static uint32_t lcg(void *arg)
{
	uint64_t *s = arg;
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void t_srv_order_spread(void)
{
	/* 60:10 -> the first about 6/7 of the time; the bounds are wide, it is no timing */
	uint64_t st = 42;
	int first = 0, trials = 7000;
	for (int i = 0; i < trials; i++) {
		struct route_srv s[2] = { rec(10, 10, "b"), rec(10, 60, "a") };
		route_srv_order(s, 2, lcg, &st);
		first += s[0].host[0] == 'a';
	}
	CHECK(first > 5600 && first < 6400);
}

/* ---- live DNS against dnsmasq on loopback --------------------------------------------------- */

struct dns {
	pid_t pid;
	uint16_t port;
	char server[32]; /* "127.0.0.1:PORT" for cfg.dns */
};

static uint16_t free_port(int type)
{
	int fd = socket(AF_INET, type, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len)) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	close(fd);
	return ntohs(a.sin_port);
}

/* Whether something answers DNS on port: a query for "b.test" A gets any reply. */
static bool answers(uint16_t port)
{
	static const unsigned char q[] = { 0x12, 0x34, 1, 0,   0,   1,   0,   0, 0, 0, 0, 0,
					   1,    'b',  4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return false;
	struct timeval tv = { 0, 100000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned char buf[512];
	bool ok = sendto(fd, q, sizeof(q), 0, (struct sockaddr *)&a, sizeof(a)) == (ssize_t)sizeof(q) &&
		  recv(fd, buf, sizeof(buf), 0) > 0;
	close(fd);
	return ok;
}

/* Starts dnsmasq with the test zone; false (test skipped) when it is not installed. */
static bool dns_start(struct dns *d)
{
	if (access(DNSMASQ, X_OK) != 0) {
		fprintf(stderr, "skip: %s not installed\n", DNSMASQ);
		return false;
	}
	d->port = free_port(SOCK_DGRAM);
	snprintf(d->server, sizeof(d->server), "127.0.0.1:%u", d->port);
	char port[32];
	snprintf(port, sizeof(port), "--port=%u", d->port);
	char *argv[] = {
		DNSMASQ,
		"--no-resolv",
		"--no-hosts",
		"--keep-in-foreground",
		port,
		"--listen-address=127.0.0.1",
		"--bind-interfaces",
		"--conf-file=/dev/null",
		"--pid-file=",
		"--local=/test/",
		"--local-ttl=60",
		/* b.test: NAPTR (UDP and TCP) -> SRV (two targets) -> A */
		"--naptr-record=b.test,10,10,S,SIP+D2U,,_sip._udp.b.test",
		"--naptr-record=b.test,5,10,S,SIP+D2T,,_sip._tcp.b.test",
		"--srv-host=_sip._udp.b.test,sip2.b.test,5071,20,10",
		"--srv-host=_sip._udp.b.test,sip1.b.test,5070,10,60",
		"--host-record=sip1.b.test,127.0.0.2",
		"--host-record=sip2.b.test,127.0.0.3",
		/* c.test: SRV only; d.test: an address only; e.test: SRV to a target with none */
		"--srv-host=_sip._udp.c.test,sip1.b.test,5072,0,0",
		"--host-record=d.test,127.0.0.4",
		"--srv-host=_sip._udp.e.test,nowhere.e.test,5060,0,0",
		NULL,
	};
	d->pid = fork();
	if (d->pid < 0)
		return false;
	if (d->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2);
		execv(DNSMASQ, argv);
		_exit(127);
	}
	for (int i = 0; i < 50; i++) {
		if (answers(d->port))
			return true;
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			fprintf(stderr, "dnsmasq exited (status %d)\n", st);
			unit_failures++;
			return false;
		}
	}
	fprintf(stderr, "dnsmasq did not answer on %s\n", d->server);
	unit_failures++;
	return false;
}

static void dns_stop(struct dns *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
	}
}

/* Resolves s through f's route and the loop; returns what the callback saw. */
static struct got resolve(struct fixture *f, const char *s)
{
	struct got g = { .loop = f->loop };
	struct sip_uri u = uri(s);
	int rc = route_resolve(f->r, &u, on_route, &g, NULL);
	CHECK_INT(rc, 0);
	if (rc == 0 && g.calls == 0)
		run_loop(f->loop, 10000);
	CHECK_INT(g.calls, 1);
	return g;
}

static void t_dns(void)
{
	struct dns d = { 0 };
	if (!dns_start(&d))
		return;
	struct fixture f;
	if (!setup(&f, d.server)) {
		dns_stop(&d);
		return;
	}
	/* NAPTR -> SRV -> A: the TCP NAPTR (better order) is skipped, SRV priority decides */
	struct got g = resolve(&f, "sip:bob@b.test");
	CHECK_INT(g.err, 0);
	CHECK_INT(g.n, 2);
	CHECK_TARGET(g.t[0], "127.0.0.2:5070", TP_UDP);
	CHECK_STR(str_from_cstr(g.t[0].host), "sip1.b.test");
	CHECK_TARGET(g.t[1], "127.0.0.3:5071", TP_UDP);
	CHECK_STR(str_from_cstr(g.t[1].host), "sip2.b.test");

	/* the answer is cached now: no DNS, same order */
	struct route_target t[ROUTE_MAX_TARGETS];
	unsigned n;
	struct sip_uri u = uri("sip:alice@B.TEST");
	CHECK_INT(route_lookup(f.r, &u, t, &n), 0);
	CHECK_INT(n, 2);
	CHECK_TARGET(t[0], "127.0.0.2:5070", TP_UDP);

	g = resolve(&f, "sip:bob@c.test"); /* no NAPTR: SRV directly */
	CHECK_INT(g.err, 0);
	CHECK_INT(g.n, 1);
	CHECK_TARGET(g.t[0], "127.0.0.2:5072", TP_UDP);

	g = resolve(&f, "sip:bob@d.test"); /* no SRV: A on 5060 */
	CHECK_INT(g.err, 0);
	CHECK_INT(g.n, 1);
	CHECK_TARGET(g.t[0], "127.0.0.4:5060", TP_UDP);
	CHECK_STR(str_from_cstr(g.t[0].host), "d.test");

	g = resolve(&f, "sip:bob@sip2.b.test:5999"); /* a port: A only */
	CHECK_INT(g.err, 0);
	CHECK_TARGET(g.t[0], "127.0.0.3:5999", TP_UDP);

	g = resolve(&f, "sip:bob@b.test;transport=udp"); /* transport=: SRV without NAPTR */
	CHECK_INT(g.err, 0);
	CHECK_INT(g.n, 2);
	CHECK_TARGET(g.t[0], "127.0.0.2:5070", TP_UDP);

	g = resolve(&f, "sip:bob@nx.test"); /* nothing at all: 404 */
	CHECK_INT(g.err, -ENOENT);
	CHECK_INT(g.n, 0);

	g = resolve(&f, "sip:bob@e.test"); /* SRV to nowhere: 503, not 404 */
	CHECK_INT(g.err, -EHOSTUNREACH);
	teardown(&f);
	dns_stop(&d);
}

static void t_dns_peer_and_cancel(void)
{
	struct dns d = { 0 };
	if (!dns_start(&d))
		return;
	struct fixture f;
	if (!setup(&f, d.server)) {
		dns_stop(&d);
		return;
	}
	add_peer(&f, "far.example", "sip:sip1.b.test:5098"); /* a peer given by name */
	struct got g = resolve(&f, "sip:bob@far.example");
	CHECK_INT(g.err, 0);
	CHECK_INT(g.n, 1);
	CHECK_TARGET(g.t[0], "127.0.0.2:5098", TP_UDP);

	/* a cancelled resolution never calls back, even when its answer comes */
	struct got cancelled = { 0 };
	struct sip_uri u = uri("sip:bob@c.test");
	uint64_t id = 0;
	CHECK_INT(route_resolve(f.r, &u, on_route, &cancelled, &id), 0);
	route_cancel(f.r, id);
	g = resolve(&f, "sip:bob@d.test"); /* runs the loop past c.test's answer */
	CHECK_INT(g.err, 0);
	g = resolve(&f, "sip:bob@sip1.b.test:1"); /* one more turn after it */
	CHECK_INT(cancelled.calls, 0);

	/* route_free with a resolution in flight: no callback, no leak */
	u = uri("sip:bob@e.test");
	CHECK_INT(route_resolve(f.r, &u, on_route, &cancelled, NULL), 0);
	teardown(&f);
	CHECK_INT(cancelled.calls, 0);
	dns_stop(&d);
}

static void t_dns_down(void)
{
	/* A port where nothing listens: refused, a 503 kind of failure, quickly. */
	uint16_t port = free_port(SOCK_DGRAM);
	char server[32];
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	struct fixture f;
	if (!setup(&f, server))
		return;
	struct got g = resolve(&f, "sip:bob@b.test");
	CHECK(g.err == -EHOSTUNREACH || g.err == -ETIMEDOUT);
	teardown(&f);

	/* A server that never answers: the query times out (c-ares: 1 s, then 2 s). */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	      getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(a.sin_port));
	if (setup(&f, server)) {
		g = resolve(&f, "sip:bob@b.test");
		CHECK_INT(g.err, -ETIMEDOUT);
		teardown(&f);
	}
	close(fd);

	/* --dns must be numeric for c-ares */
	struct route_cfg cfg = { 0 };
	struct loop *l;
	struct route *r = NULL;
	snprintf(cfg.dns, sizeof(cfg.dns), "dns.example");
	CHECK_INT(loop_new(&l), 0);
	CHECK_INT(route_new(&r, l, &cfg), -EINVAL);
	loop_free(l);
}

static const struct unit_case cases[] = {
	{ "numeric", t_numeric },
	{ "protos", t_protos },
	{ "static_peer", t_static_peer },
	{ "srv_order_priority", t_srv_order_priority },
	{ "srv_order_weight", t_srv_order_weight },
	{ "srv_order_spread", t_srv_order_spread },
	{ "dns", t_dns },
	{ "dns_peer_and_cancel", t_dns_peer_and_cancel },
	{ "dns_down", t_dns_down },
};

UNIT_MAIN(cases)
