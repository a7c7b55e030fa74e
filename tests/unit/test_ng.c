/* test_ng.c: unit tests of the ng client against real rtpengine processes on loopback. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "media/media_int.h"

#define RTPENGINE "/usr/bin/rtpengine"
#define GUARD_MS 15000 /* a broken client fails the case instead of hanging it */

static bool have_rtpengine(void)
{
	if (access(RTPENGINE, X_OK) == 0)
		return true;
	fprintf(stderr, "SKIP: %s is missing (apt-get install rtpengine-daemon)\n", RTPENGINE);
	return false;
}

/* A UDP port nobody uses right now: bound to port 0 and released. */
static unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Sends a ping to 127.0.0.1:port until a pong comes (at most ~10 s): rtpengine needs a
 * moment after exec before it listens. */
static bool wait_pong(unsigned port)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };
	bool ok = false;
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	for (int i = 0; i < 100 && !ok; i++) {
		(void)send(fd, "w d7:command4:pinge", 19, 0);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) == 1) {
			char b[64];
			ssize_t k = recv(fd, b, sizeof(b), 0);
			ok = k == 18 && memcmp(b, "w d6:result4:ponge", 18) == 0;
			if (!ok && k < 0)
				usleep(100000); /* refused: not listening yet */
		}
	}
	close(fd);
	return ok;
}

/* Starts rtpengine with its ng port on 127.0.0.1:port; returns its pid, or -1. Media ports
 * come from a range of its own per process, so parallel tests do not share one. */
static pid_t spawn_rtpengine(unsigned port)
{
	static unsigned base;
	if (!base)
		base = 40000 + (unsigned)(getpid() % 60) * 200;
	char ng[64], pmin[32], pmax[32];
	snprintf(ng, sizeof(ng), "--listen-ng=127.0.0.1:%u", port);
	snprintf(pmin, sizeof(pmin), "--port-min=%u", base);
	snprintf(pmax, sizeof(pmax), "--port-max=%u", base + 99);
	base += 100;
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		dup2(nul, 2);
		execl(RTPENGINE, RTPENGINE, "--config-file=none", "--interface=127.0.0.1", ng, "--foreground",
		      "--log-stderr", "--table=-1", pmin, pmax, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	if (!wait_pong(port)) {
		fprintf(stderr, "rtpengine on port %u did not answer\n", port);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

static void stop_rtpengine(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

/* ---- the loop -------------------------------------------------------------------------------- */

struct fx {
	struct loop *loop;
	struct log lg;
	struct ng *ng;
	struct timer guard;
};

/* What a callback saw. */
struct got {
	struct fx *f;
	int calls;
	int err;
	char reply[8192];
	size_t len;
};

static void on_reply(void *arg, int err, struct str reply)
{
	struct got *g = arg;
	g->calls++;
	g->err = err;
	g->len = reply.l < sizeof(g->reply) ? reply.l : 0;
	if (g->len)
		memcpy(g->reply, reply.p, g->len);
	loop_stop(g->f->loop);
}

/* A callback that sends the next command from inside itself, twice. */
struct chain {
	struct fx *f;
	int calls;
	int errs;
};

static void on_chain(void *arg, int err, struct str reply)
{
	struct chain *c = arg;
	c->calls++;
	c->errs += err != 0;
	if (c->calls < 3 && ng_send(c->f->ng, 0, STR("d7:command4:pinge"), on_chain, c, NULL) == 0)
		return;
	loop_stop(c->f->loop);
}

/* Cancels a command from a timer. */
struct cancel_later {
	struct ng *ng;
	uint64_t h;
};

static void on_cancel_later(void *arg)
{
	struct cancel_later *c = arg;
	ng_cancel(c->ng, c->h);
}

static struct str reply_of(const struct got *g)
{
	return (struct str){ g->reply, g->len };
}

static void on_guard(void *arg)
{
	struct fx *f = arg;
	fprintf(stderr, "guard: the loop ran %d ms without the awaited event\n", GUARD_MS);
	unit_failures++;
	loop_stop(f->loop);
}

/* Runs the loop until a callback stops it (or the guard does). */
static void run(struct fx *f)
{
	timer_start(loop_timers(f->loop), &f->guard, GUARD_MS, on_guard, f);
	loop_run(f->loop);
	timer_stop(loop_timers(f->loop), &f->guard);
}

static void on_tick(void *arg)
{
	loop_stop(((struct fx *)arg)->loop);
}

/* Runs the loop for about ms: lets pings go out without waiting on a reply. */
static void run_for(struct fx *f, unsigned ms)
{
	struct timer t = { 0 };
	timer_start(loop_timers(f->loop), &t, ms, on_tick, f);
	loop_run(f->loop);
	timer_stop(loop_timers(f->loop), &t);
}

static bool setup(struct fx *f, const char **specs, unsigned n, unsigned timeout_ms, unsigned retry_ms)
{
	memset(f, 0, sizeof(*f));
	CHECK_INT(log_open(&f->lg, LOG_INFO, false, NULL), 0);
	CHECK_INT(loop_new(&f->loop), 0);
	struct ng_target t[NG_MAX_TARGETS];
	char err[128];
	for (unsigned i = 0; i < n; i++)
		CHECK_INT(ng_target_parse(specs[i], &t[i], err, sizeof(err)), 0);
	struct ng_env env = { .loop = f->loop, .lg = &f->lg, .timeout_ms = timeout_ms, .retry_ms = retry_ms };
	int rc = ng_new(&f->ng, &env, t, n);
	CHECK_INT(rc, 0);
	return rc == 0;
}

static void teardown(struct fx *f)
{
	ng_free(f->ng);
	loop_free(f->loop);
	log_close(&f->lg);
}

/* Sends dict to instance idx and runs the loop until its callback. */
static void command(struct fx *f, int idx, struct str dict, struct got *g)
{
	memset(g, 0, sizeof(*g));
	g->f = f;
	uint64_t h = 0;
	CHECK_INT(ng_send(f->ng, idx, dict, on_reply, g, &h), 0);
	CHECK(h != 0);
	CHECK_INT(ng_pending(f->ng), 1);
	run(f);
	CHECK_INT(g->calls, 1);
	CHECK_INT(ng_pending(f->ng), 0);
}

static void spec(char *buf, size_t n, unsigned port, unsigned weight)
{
	snprintf(buf, n, "udp:127.0.0.1:%u;weight=%u", port, weight);
}

/* ---- cases ----------------------------------------------------------------------------------- */

static void t_target_parse(void)
{
	struct ng_target t;
	char err[128];
	CHECK_INT(ng_target_parse("udp:127.0.0.1:2223", &t, err, sizeof(err)), 0);
	CHECK_INT(t.weight, 1);
	CHECK_STR(str_from_cstr(t.name), "udp:127.0.0.1:2223");
	CHECK_INT(tp_addr_port(&t.addr), 2223);
	CHECK_INT(ng_target_parse("udp:[::1]:2224;weight=1000", &t, err, sizeof(err)), 0);
	CHECK_INT(t.weight, 1000);
	CHECK_STR(str_from_cstr(t.name), "udp:[::1]:2224");
	const char *bad[] = { "tcp:127.0.0.1:2223",
			      "udp:127.0.0.1",
			      "udp:127.0.0.1:0",
			      "udp:127.0.0.1:70000",
			      "udp:host.example:2223",
			      "udp:::1:2223",
			      "udp:[::1]2223",
			      "udp:127.0.0.1:2223;weight=0",
			      "udp:127.0.0.1:2223;weight=1001",
			      "udp:127.0.0.1:2223;w=2",
			      "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (ng_target_parse(bad[i], &t, err, sizeof(err)) != -1 || !err[0]) {
			fprintf(stderr, "accepted or no message: '%s'\n", bad[i]);
			unit_failures++;
		}
	}
}

static const char SDP[] = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
			  "m=audio 4000 RTP/AVP 0\r\n";

/* ping, offer, answer, delete and an unknown command, against one real rtpengine. */
static void t_commands(void)
{
	if (!have_rtpengine())
		return;
	unsigned port = free_port();
	pid_t pid = spawn_rtpengine(port);
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	char s[80];
	spec(s, sizeof(s), port, 1);
	const char *specs[] = { s };
	struct fx f;
	if (!setup(&f, specs, 1, 2000, 200))
		goto out;
	struct got g;
	struct str v;
	char buf[1024];
	struct bn_out o;

	command(&f, 0, STR("d7:command4:pinge"), &g);
	CHECK_INT(g.err, 0);
	CHECK(bn_dict_get_str(reply_of(&g), "result", &v));
	CHECK_STR(v, "pong");

	/* offer: keys in no particular order */
	bn_init(&o, buf, sizeof(buf));
	bn_dict(&o);
	bn_kv_cstr(&o, "sdp", SDP);
	bn_kv_cstr(&o, "command", "offer");
	bn_kv_cstr(&o, "call-id", "test-ng-1");
	bn_kv_cstr(&o, "from-tag", "ft1");
	bn_end(&o);
	CHECK(!o.overflow);
	command(&f, 0, bn_view(&o), &g);
	CHECK_INT(g.err, 0);
	CHECK(bn_dict_get_str(reply_of(&g), "result", &v));
	CHECK_STR(v, "ok");
	CHECK(bn_dict_get_str(reply_of(&g), "sdp", &v));
	/* rtpengine's own port, not ours */
	CHECK(v.l > 0 && !memmem(v.p, v.l, "m=audio 4000 ", 13) && memmem(v.p, v.l, "m=audio ", 8));

	bn_init(&o, buf, sizeof(buf));
	bn_dict(&o);
	bn_kv_cstr(&o, "command", "answer");
	bn_kv_cstr(&o, "call-id", "test-ng-1");
	bn_kv_cstr(&o, "from-tag", "ft1");
	bn_kv_cstr(&o, "to-tag", "tt1");
	bn_kv_cstr(&o, "sdp", SDP);
	bn_end(&o);
	command(&f, 0, bn_view(&o), &g);
	CHECK_INT(g.err, 0);
	CHECK(bn_dict_get_str(reply_of(&g), "result", &v));
	CHECK_STR(v, "ok");

	bn_init(&o, buf, sizeof(buf));
	bn_dict(&o);
	bn_kv_cstr(&o, "command", "delete");
	bn_kv_cstr(&o, "call-id", "test-ng-1");
	bn_kv_cstr(&o, "from-tag", "ft1");
	bn_end(&o);
	command(&f, 0, bn_view(&o), &g);
	CHECK_INT(g.err, 0);
	CHECK(bn_dict_get_str(reply_of(&g), "result", &v));
	CHECK_STR(v, "ok");
	struct str tot, rtp, pk;
	int64_t n = -1;
	CHECK(bn_dict_get(reply_of(&g), "totals", &tot) && bn_dict_get(tot, "RTP", &rtp) &&
	      bn_dict_get(rtp, "packets", &pk) && bn_as_int(pk, &n));
	CHECK_INT(n, 0);
	struct str tags, leg;
	CHECK(bn_dict_get(reply_of(&g), "tags", &tags) && bn_dict_get(tags, "ft1", &leg));

	/* An error reply is a reply: err 0, the reason in the dictionary. */
	command(&f, 0, STR("d7:command7:nothinge"), &g);
	CHECK_INT(g.err, 0);
	CHECK(bn_dict_get_str(reply_of(&g), "result", &v));
	CHECK_STR(v, "error");
	CHECK(bn_dict_get_str(reply_of(&g), "error-reason", &v));

	/* A callback may send the next command. */
	struct chain ch = { .f = &f };
	CHECK_INT(ng_send(f.ng, 0, STR("d7:command4:pinge"), on_chain, &ch, NULL), 0);
	run(&f);
	CHECK_INT(ch.calls, 3);
	CHECK_INT(ch.errs, 0);
	CHECK_INT(ng_pending(f.ng), 0);

	/* A command cancelled before the end of the turn never leaves: nothing comes back. */
	memset(&g, 0, sizeof(g));
	g.f = &f;
	uint64_t h, before = ng_unmatched(f.ng);
	CHECK_INT(ng_send(f.ng, 0, STR("d7:command4:pinge"), on_reply, &g, &h), 0);
	ng_cancel(f.ng, h);
	ng_cancel(f.ng, h);
	CHECK_INT(ng_pending(f.ng), 0);
	run_for(&f, 300);
	CHECK_INT(g.calls, 0);
	CHECK_INT(ng_unmatched(f.ng), before);

	/* One cancelled after it left (by a timer, which runs before the turn's fd handlers)
	 * never calls back either; the reply that comes anyway is counted. */
	CHECK_INT(ng_send(f.ng, 0, STR("d7:command4:pinge"), on_reply, &g, &h), 0);
	struct cancel_later cl = { f.ng, h };
	struct timer t = { 0 };
	timer_start(loop_timers(f.loop), &t, 0, on_cancel_later, &cl);
	run_for(&f, 300);
	timer_stop(loop_timers(f.loop), &t);
	CHECK_INT(g.calls, 0);
	CHECK_INT(ng_pending(f.ng), 0);
	CHECK(ng_unmatched(f.ng) >= before + 1);

	/* Not a dictionary: refused before anything is sent. */
	CHECK_INT(ng_send(f.ng, 0, STR("l4:pinge"), on_reply, &g, &h), -EINVAL);
	CHECK_INT(ng_send(f.ng, 1, STR("d7:command4:pinge"), on_reply, &g, &h), -EINVAL);
	teardown(&f);
out:
	stop_rtpengine(pid);
}

/* Nothing listens: the command fails, the instance is dead, never picked; an rtpengine
 * started on that port brings it back through the pings. */
static void t_dead_and_back(void)
{
	if (!have_rtpengine())
		return;
	unsigned port = free_port();
	char s[80];
	spec(s, sizeof(s), port, 1);
	const char *specs[] = { s };
	struct fx f;
	if (!setup(&f, specs, 1, 1000, 100))
		return;
	CHECK(ng_alive(f.ng, 0));
	CHECK_INT(ng_pick(f.ng), 0);
	struct got g;
	memset(&g, 0, sizeof(g));
	g.f = &f;
	uint64_t h;
	int rc = ng_send(f.ng, 0, STR("d7:command4:pinge"), on_reply, &g, &h);
	if (rc == 0)
		run(&f);
	else
		g.err = rc;
	CHECK(g.err == -ECONNREFUSED || g.err == -ETIMEDOUT);
	CHECK(!ng_alive(f.ng, 0));
	CHECK_INT(ng_pick(f.ng), -1);
	CHECK_INT(ng_pending(f.ng), 0);

	pid_t pid = spawn_rtpengine(port);
	CHECK(pid > 0);
	for (int i = 0; i < 100 && pid > 0 && !ng_alive(f.ng, 0); i++)
		run_for(&f, 100);
	CHECK(ng_alive(f.ng, 0));
	CHECK_INT(ng_pick(f.ng), 0);
	teardown(&f);
	stop_rtpengine(pid);
}

/* Two instances by weight: both get turns at 1:1, roughly 3:1 at 3:1, a dead one none. */
static void t_pick(void)
{
	if (!have_rtpengine())
		return;
	unsigned p1 = free_port();
	pid_t pid = spawn_rtpengine(p1);
	CHECK(pid > 0);
	unsigned p2 = free_port(); /* nothing listens */
	char s1[80], s2[80];
	spec(s1, sizeof(s1), p1, 1);
	spec(s2, sizeof(s2), p2, 1);
	const char *specs[] = { s1, s2 };
	struct fx f;
	if (!setup(&f, specs, 2, 1000, 60000))
		goto out;
	unsigned cnt[2] = { 0, 0 };
	for (int i = 0; i < 100; i++) {
		int k = ng_pick(f.ng);
		CHECK(k == 0 || k == 1);
		if (k == 0 || k == 1)
			cnt[k]++;
	}
	CHECK(cnt[0] > 0 && cnt[1] > 0);
	char want[64];
	snprintf(want, sizeof(want), "udp:127.0.0.1:%u", p2);
	CHECK_STR(str_from_cstr(ng_name(f.ng, 1)), want);
	teardown(&f);

	spec(s1, sizeof(s1), p1, 3);
	if (!setup(&f, specs, 2, 1000, 60000))
		goto out;
	cnt[0] = cnt[1] = 0;
	for (int i = 0; i < 400; i++) {
		int k = ng_pick(f.ng);
		if (k == 0 || k == 1)
			cnt[k]++;
	}
	CHECK(cnt[0] > cnt[1] && cnt[1] > 0);

	/* Kill the second by talking to it; it is then never picked. */
	struct got g;
	memset(&g, 0, sizeof(g));
	g.f = &f;
	uint64_t h;
	if (ng_send(f.ng, 1, STR("d7:command4:pinge"), on_reply, &g, &h) == 0)
		run(&f);
	CHECK(!ng_alive(f.ng, 1));
	CHECK(ng_alive(f.ng, 0));
	for (int i = 0; i < 50; i++)
		CHECK_INT(ng_pick(f.ng), 0);
	teardown(&f);
out:
	stop_rtpengine(pid);
}

/* A socket that reads every command and answers none: the timeout, the dead mark, and a
 * late reply with the right cookie counted as unmatched. */
static void t_timeout(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	char s[80];
	spec(s, sizeof(s), ntohs(a.sin_port), 1);
	const char *specs[] = { s };
	struct fx f;
	if (!setup(&f, specs, 1, 1200, 60000)) {
		close(fd);
		return;
	}
	struct got g;
	memset(&g, 0, sizeof(g));
	g.f = &f;
	uint64_t h;
	CHECK_INT(ng_send(f.ng, 0, STR("d7:command4:pinge"), on_reply, &g, &h), 0);
	run(&f);
	CHECK_INT(g.calls, 1);
	CHECK_INT(g.err, -ETIMEDOUT);
	CHECK(!ng_alive(f.ng, 0));
	CHECK_INT(ng_pick(f.ng), -1);

	/* It retransmitted: more than one copy arrived, all under one cookie. */
	char b[256], first[256] = "";
	struct sockaddr_in from;
	int copies = 0;
	for (;;) {
		socklen_t fl = sizeof(from);
		ssize_t k = recvfrom(fd, b, sizeof(b) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (k <= 0)
			break;
		b[k] = '\0';
		char *sp = strchr(b, ' ');
		CHECK(sp && !strcmp(sp + 1, "d7:command4:pinge"));
		if (!sp)
			break;
		*sp = '\0';
		if (!copies++)
			snprintf(first, sizeof(first), "%s", b);
		else
			CHECK(!strcmp(first, b));
	}
	CHECK(copies >= 2);

	/* The late pong: ignored and counted; and a reply that is not bencode, for a pending
	 * command, is -EPROTO. */
	char late[128];
	int n = snprintf(late, sizeof(late), "%s d6:result4:ponge", first);
	CHECK(sendto(fd, late, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from)) == n);
	run_for(&f, 100);
	CHECK_INT(ng_unmatched(f.ng), 1);
	CHECK(!ng_alive(f.ng, 0));

	memset(&g, 0, sizeof(g));
	g.f = &f;
	CHECK_INT(ng_send(f.ng, 0, STR("d7:command4:pinge"), on_reply, &g, &h), 0);
	run_for(&f, 10); /* the command leaves at the end of the loop's turn */
	socklen_t fl = sizeof(from);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 5000) == 1);
	ssize_t k = recvfrom(fd, b, sizeof(b) - 1, 0, (struct sockaddr *)&from, &fl);
	CHECK(k > 0);
	b[k > 0 ? k : 0] = '\0';
	char *sp = strchr(b, ' ');
	if (sp) {
		memcpy(sp, " d6:resu", 8); /* the right cookie, a broken body */
		CHECK(sendto(fd, b, (size_t)(sp - b) + 8, 0, (struct sockaddr *)&from, sizeof(from)) > 0);
		run(&f);
		CHECK_INT(g.calls, 1);
		CHECK_INT(g.err, -EPROTO);
	}
	CHECK_INT(ng_pending(f.ng), 0);

	/* A pending command dropped by ng_free never calls back. */
	memset(&g, 0, sizeof(g));
	CHECK_INT(ng_send(f.ng, 0, STR("d7:command4:pinge"), on_reply, &g, &h), 0);
	teardown(&f);
	CHECK_INT(g.calls, 0);
	close(fd);
}

static void t_limits(void)
{
	char s[80];
	spec(s, sizeof(s), 9, 1);
	const char *specs[] = { s };
	struct fx f;
	if (!setup(&f, specs, 1, 0, 0))
		return;
	size_t big = NG_MAX_DGRAM + 10;
	char *p = malloc(big);
	memset(p, 'x', big);
	p[0] = 'd';
	struct got g = { .f = &f };
	uint64_t h;
	CHECK_INT(ng_send(f.ng, 0, (struct str){ p, big }, on_reply, &g, &h), -EMSGSIZE);
	free(p);
	CHECK_INT(ng_pending(f.ng), 0);
	teardown(&f);
	struct ng *n;
	struct ng_env env = { 0 };
	CHECK_INT(ng_new(&n, &env, NULL, 0), -EINVAL);
}

static const struct unit_case cases[] = {
	{ "t_target_parse", t_target_parse },
	{ "t_commands", t_commands },
	{ "t_dead_and_back", t_dead_and_back },
	{ "t_pick", t_pick },
	{ "t_timeout", t_timeout },
	{ "t_limits", t_limits },
};
UNIT_MAIN(cases)
