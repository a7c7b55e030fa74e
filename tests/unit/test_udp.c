/* test_udp.c: unit tests of the UDP transport on loopback, with the real event loop. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>

#include "core/loop.h"
#include "transport/transport.h"

/* What the receive handler saw. */
struct seen {
	struct loop *loop;
	int n;
	char data[256];
	size_t len;
	struct tp_source src;
	bool terminated; /* a NUL follows the datagram */
};

static void on_recv(const struct tp_source *src, char *buf, size_t len, void *arg)
{
	struct seen *s = arg;
	s->n++;
	s->len = len < sizeof(s->data) ? len : sizeof(s->data);
	memcpy(s->data, buf, s->len);
	s->src = *src;
	s->terminated = buf[len] == '\0';
	loop_stop(s->loop);
}

/* Ends loop_run if nothing arrives, so a broken test fails instead of hanging. */
static void on_timeout(void *arg)
{
	loop_stop(arg);
}

static void run_loop(struct loop *l)
{
	struct timer guard = { 0 };
	timer_start(loop_timers(l), &guard, 2000, on_timeout, l);
	CHECK_INT(loop_run(l), 0);
	timer_stop(loop_timers(l), &guard);
}

/* Whether ::1 can be bound here (containers sometimes have IPv6 disabled). */
static bool have_v6_loopback(void)
{
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Listens on uri, sends one datagram from a plain socket, checks what arrived and sends an
 * answer back through tp_send. */
static void round_trip(const char *uri, int family, const char *want_host)
{
	struct loop *l = NULL;
	struct transport *tp = NULL;
	struct seen s = { 0 };
	char err[256] = "";
	CHECK_INT(loop_new(&l), 0);
	s.loop = l;
	CHECK_INT(tp_new(&tp, l, on_recv, &s), 0);
	int rc = tp_listen(tp, uri, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	CHECK_INT(tp_listener_count(tp), 1);
	struct tp_listener *lis = tp_listener_at(tp, 0);
	CHECK(lis->port != 0);
	CHECK(strcmp(lis->host, want_host) == 0);
	CHECK_INT(lis->proto, TP_UDP);

	/* The peer: a plain socket bound to loopback. */
	int fd = socket(family, SOCK_DGRAM, 0);
	struct tp_addr peer = { .len = 0 };
	CHECK_INT(tp_addr_from_host(&peer, str_from_cstr(family == AF_INET6 ? "::1" : "127.0.0.1"), 0), 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&peer.ss, peer.len), 0);
	peer.len = sizeof(peer.ss);
	getsockname(fd, (struct sockaddr *)&peer.ss, &peer.len);

	static const char msg[] = "OPTIONS sip:x SIP/2.0\r\n\r\n";
	CHECK_INT(sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&lis->local.ss, lis->local.len),
		  (long long)(sizeof(msg) - 1));
	run_loop(l);
	CHECK_INT(s.n, 1);
	CHECK_INT(s.len, sizeof(msg) - 1);
	CHECK(memcmp(s.data, msg, sizeof(msg) - 1) == 0);
	CHECK(s.terminated);
	CHECK(s.src.lis == lis);
	CHECK_INT(s.src.proto, TP_UDP);
	CHECK(tp_addr_equal(&s.src.addr, &peer));
	CHECK_INT(tp_stats(tp)->rx_msgs, 1);

	/* Answer to the source address the transport reported. */
	CHECK(tp_pick(tp, TP_UDP, &s.src.addr, NULL) == lis);
	static const char answer[] = "SIP/2.0 200 OK\r\n\r\n";
	CHECK_INT(tp_send(lis, &s.src.addr, 0, answer, sizeof(answer) - 1), 0);
	char got[64];
	ssize_t n = recv(fd, got, sizeof(got), 0);
	CHECK_INT(n, (long long)(sizeof(answer) - 1));
	CHECK_INT(tp_stats(tp)->tx_msgs, 1);
	CHECK_INT(tp_stats(tp)->tx_bytes, sizeof(answer) - 1);
	close(fd);
out:
	tp_free(tp);
	loop_free(l);
}

static void t_v4(void)
{
	round_trip("udp:127.0.0.1:0", AF_INET, "127.0.0.1");
}

static void t_v6(void)
{
	if (!have_v6_loopback()) {
		printf("skipping the IPv6 part: ::1 is not configured on this machine\n");
		return;
	}
	round_trip("udp:[::1]:0", AF_INET6, "[::1]");
}

/* A burst larger than one recvmmsg batch arrives whole. */
struct count {
	struct loop *loop;
	int n, want;
};

static void on_count(const struct tp_source *src, char *buf, size_t len, void *arg)
{
	struct count *c = arg;
	if (++c->n == c->want)
		loop_stop(c->loop);
}

static void t_burst(void)
{
	struct loop *l = NULL;
	struct transport *tp = NULL;
	struct count c = { .want = 100 };
	char err[256];
	CHECK_INT(loop_new(&l), 0);
	c.loop = l;
	CHECK_INT(tp_new(&tp, l, on_count, &c), 0);
	CHECK_INT(tp_listen(tp, "udp:127.0.0.1:0", err, sizeof(err)), 0);
	struct tp_listener *lis = tp_listener_at(tp, 0);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	for (int i = 0; i < c.want; i++)
		sendto(fd, "x", 1, 0, (struct sockaddr *)&lis->local.ss, lis->local.len);
	run_loop(l);
	CHECK_INT(c.n, c.want);
	close(fd);
	tp_free(tp);
	loop_free(l);
}

static void t_errors(void)
{
	struct loop *l = NULL;
	struct transport *tp = NULL;
	char err[256] = "";
	CHECK_INT(loop_new(&l), 0);
	CHECK_INT(tp_new(&tp, l, on_count, NULL), 0);
	CHECK(tp_listen(tp, "udp:bogus:1", err, sizeof(err)) < 0);
	CHECK_INT(tp_listen(tp, "udp:127.0.0.1:0", err, sizeof(err)), 0);
	/* The same port again is refused: a second server must not share it silently. */
	char uri[64];
	snprintf(uri, sizeof(uri), "udp:127.0.0.1:%u", tp_listener_at(tp, 0)->port);
	CHECK_INT(tp_listen(tp, uri, err, sizeof(err)), -EADDRINUSE);
	CHECK(strstr(err, uri) != NULL);
	/* No listener of the destination's family. */
	struct tp_addr v6;
	CHECK_INT(tp_addr_from_host(&v6, STR("[::1]"), 5060), 0);
	CHECK(tp_pick(tp, TP_UDP, &v6, NULL) == NULL);
	/* A wildcard listener writes a real address of the machine, never 0.0.0.0. */
	CHECK_INT(tp_listen(tp, "udp:0.0.0.0:0", err, sizeof(err)), 0);
	CHECK(strcmp(tp_listener_at(tp, 1)->host, "0.0.0.0") != 0);
	tp_free(tp);
	loop_free(l);
}

static void t_addr(void)
{
	struct tp_addr a, b;
	char buf[64];
	CHECK_INT(tp_addr_from_host(&a, STR("192.0.2.1"), 5060), 0);
	CHECK(strcmp(tp_addr_str(&a, buf, sizeof(buf)), "192.0.2.1:5060") == 0);
	CHECK_INT(tp_addr_port(&a), 5060);
	CHECK_INT(tp_addr_from_host(&b, STR("[2001:db8::1]"), 5070), 0);
	CHECK(strcmp(tp_addr_str(&b, buf, sizeof(buf)), "[2001:db8::1]:5070") == 0);
	CHECK(strcmp(tp_addr_host(&b, buf, sizeof(buf)), "2001:db8::1") == 0);
	CHECK(!tp_addr_equal(&a, &b));
	CHECK_INT(tp_addr_from_host(&b, STR("2001:db8::1"), 5070), 0);
	CHECK(tp_addr_from_host(&b, STR("example.test"), 5060) < 0);
	CHECK(tp_addr_from_host(&b, STR(""), 5060) < 0);
	CHECK_INT(tp_addr_from_host(&b, STR("192.0.2.1"), 5060), 0);
	CHECK(tp_addr_equal(&a, &b));
	enum tp_proto p;
	CHECK(tp_proto_from_str(STR("udp"), &p) && p == TP_UDP);
	CHECK(tp_proto_from_str(STR("WSS"), &p) && p == TP_WSS);
	CHECK(!tp_proto_from_str(STR("sctp"), &p));
	CHECK(strcmp(tp_proto_name(TP_TLS), "TLS") == 0);
}

static const struct unit_case cases[] = {
	{ "addr", t_addr }, { "v4", t_v4 }, { "v6", t_v6 }, { "burst", t_burst }, { "errors", t_errors },
};
UNIT_MAIN(cases)
