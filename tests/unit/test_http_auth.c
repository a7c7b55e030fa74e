/* test_http_auth.c: unit tests of the HTTP endpoint's logins: the failed-login limit (IPv6 by /64, the global budget, refusals not counted, success resets), one source's share of the password checks, and how sessions end. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "http/http_int.h"
#include "store/store.h"

#define MIN_MS 60000ull

struct fix {
	char dir[128], path[192];
	struct log lg;
	struct store *st;
	struct http_auth *a;
};

static void fix_open(struct fix *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/parley-test-http-auth-XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	CHECK_INT(log_open(&f->lg, LOG_INFO, false, "/dev/null"), 0);
	struct store_conf conf = { .path = f->path };
	CHECK_INT(store_open(&f->st, &conf), 0);
	CHECK_INT(http__auth_new(&f->a, &f->lg, f->st), 0);
}

static void fix_close(struct fix *f)
{
	char p[256];
	http__auth_free(f->a);
	store_close(f->st);
	log_close(&f->lg);
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, (const char *[]){ "", "-wal", "-shm" }[i]);
		unlink(p);
	}
	rmdir(f->dir);
}

static void fail_n(struct fix *f, const char *ip, unsigned n, uint64_t now)
{
	for (unsigned i = 0; i < n; i++)
		http__auth_failed(f->a, ip, STR("root"), "bad password", now);
}

/* An IPv6 source is counted by its /64: one host cannot take a new address per try. */
static void t_ipv6_by_64(void)
{
	struct fix f;
	fix_open(&f);
	static const char *const ips[] = { "2001:db8:1:2::1", "2001:db8:1:2::a", "2001:db8:1:2:ffff::3",
					   "2001:db8:1:2:1:2:3:4", "2001:db8:1:2::99" };
	for (unsigned i = 0; i < 5; i++)
		fail_n(&f, ips[i], 1, 1000);
	CHECK(http__auth_limited(f.a, "2001:db8:1:2::1234", 1001));
	CHECK(!http__auth_limited(f.a, "2001:db8:1:3::1", 1001));
	/* An IPv4-mapped address is the IPv4 address. */
	fail_n(&f, "::ffff:192.0.2.7", 5, 1000);
	CHECK(http__auth_limited(f.a, "192.0.2.7", 1001));
	CHECK(!http__auth_limited(f.a, "192.0.2.8", 1001));
	fix_close(&f);
}

/* A limited source waits a minute after its last failure; what it sends meanwhile is
 * refused without being counted, and a success forgets its failures. */
static void t_wait_and_reset(void)
{
	struct fix f;
	fix_open(&f);
	fail_n(&f, "192.0.2.1", 4, 1000);
	CHECK(!http__auth_limited(f.a, "192.0.2.1", 1000));
	fail_n(&f, "192.0.2.1", 1, 2000);
	CHECK(http__auth_limited(f.a, "192.0.2.1", 2000));
	http__auth_refused(f.a, "192.0.2.1", STR("root"), 40000);
	CHECK(http__auth_limited(f.a, "192.0.2.1", 40000));
	CHECK(http__auth_limited(f.a, "192.0.2.1", 2000 + MIN_MS - 1));
	CHECK(!http__auth_limited(f.a, "192.0.2.1", 2000 + MIN_MS));
	/* After the wait, counting starts again from nothing. */
	fail_n(&f, "192.0.2.1", 4, 2000 + MIN_MS);
	CHECK(!http__auth_limited(f.a, "192.0.2.1", 2000 + MIN_MS));
	/* A success forgets: four more do not reach five. */
	http__auth_succeeded(f.a, "192.0.2.1");
	fail_n(&f, "192.0.2.1", 4, 3000 + MIN_MS);
	CHECK(!http__auth_limited(f.a, "192.0.2.1", 3000 + MIN_MS));
	fix_close(&f);
}

/* Thirty failures in a minute, from sources that each stay under their own limit, make
 * every source wait until the minute is over. */
static void t_global_budget(void)
{
	struct fix f;
	fix_open(&f);
	char ip[32];
	for (unsigned i = 0; i < 29; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%u", i + 1);
		fail_n(&f, ip, 1, 5000);
	}
	CHECK(!http__auth_limited(f.a, "203.0.113.1", 5000));
	fail_n(&f, "198.51.100.200", 1, 6000);
	CHECK(http__auth_limited(f.a, "203.0.113.1", 6000));
	CHECK(http__auth_limited(f.a, "203.0.113.1", 5000 + MIN_MS - 1));
	CHECK(!http__auth_limited(f.a, "203.0.113.1", 5000 + MIN_MS));
	fix_close(&f);
}

static void no_job(struct http_job *j, void *arg)
{
	(void)j;
	(*(unsigned *)arg)++;
}

/* One source may have two password checks queued or running; a third is refused while
 * another source still gets its turn. */
static void t_checks_per_source(void)
{
	struct fix f;
	fix_open(&f);
	struct http_job *j = calloc(4, sizeof(*j));
	CHECK(j != NULL);
	for (unsigned i = 0; i < 4; i++)
		CHECK_INT(http__auth_prepare(f.a, &j[i], STR("nobody"), STR("pw")), 0);
	/* An Argon2id check takes tens of milliseconds: these are queued within it. */
	CHECK_INT(http__auth_submit(f.a, &j[0], "2001:db8::1"), 0);
	CHECK_INT(http__auth_submit(f.a, &j[1], "2001:db8::2"), 0);
	CHECK_INT(http__auth_submit(f.a, &j[2], "2001:db8::3"), -EAGAIN);
	CHECK_INT(http__auth_submit(f.a, &j[3], "192.0.2.1"), 0);
	unsigned handed = 0;
	http__auth_drain(f.a, no_job, &handed);
	while (handed < 3) {
		usleep(10000);
		http__auth_collect(f.a, no_job, &handed);
	}
	CHECK_INT(handed, 3);
	free(j);
	fix_close(&f);
}

static const char hash1[] = "$argon2id$v=19$m=65536,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$one";
static const char hash2[] = "$argon2id$v=19$m=65536,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$two";

/* A session lives on while its admin's row is unchanged; another password hash or a
 * deleted admin ends it once the row is read again (every 30 s); any session ends 24 h
 * after its login. */
static void t_sessions_end(void)
{
	struct fix f;
	fix_open(&f);
	char ck1[HTTP_COOKIE_LEN + 1], ck2[HTTP_COOKIE_LEN + 1], ck3[HTTP_COOKIE_LEN + 1];
	char name[HTTP_NAME_MAX + 1];
	uint64_t t0 = 1000000;
	CHECK_INT(store_admin_add(f.st, STR("root"), hash1, 1), 0);
	CHECK_INT(store_admin_add(f.st, STR("ops"), hash1, 1), 0);
	http__auth_session_new(f.a, "root", hash1, t0, ck1);
	http__auth_session_new(f.a, "ops", hash1, t0, ck2);
	http__auth_session_new(f.a, "root", hash1, t0, ck3);
	CHECK(http__auth_session(f.a, ck1, t0 + 30000, name));
	CHECK_STR(str_from_cstr(name), "root");
	CHECK_INT(store_admin_passwd(f.st, STR("root"), hash2), 0);
	CHECK_INT(store_admin_del(f.st, STR("ops")), 0);
	/* Read again 30 s after the last reading. */
	CHECK(http__auth_session(f.a, ck1, t0 + 59999, name));
	CHECK(http__auth_session(f.a, ck2, t0 + 29999, name));
	CHECK(!http__auth_session(f.a, ck1, t0 + 60000, name));
	CHECK(!http__auth_session(f.a, ck2, t0 + 30000, name));
	CHECK(!http__auth_session(f.a, ck3, t0 + 30000, name));
	/* Gone for good, not only until the next reading. */
	CHECK(!http__auth_session(f.a, ck1, t0 + 60001, name));
	/* A session of the new password lives, used every hour, until 24 h after its login. */
	uint64_t t1 = t0 + 100000, day = 24ull * 3600 * 1000;
	http__auth_session_new(f.a, "root", hash2, t1, ck1);
	for (uint64_t t = t1; t < t1 + day; t += 3600 * 1000)
		CHECK(http__auth_session(f.a, ck1, t, name));
	CHECK(http__auth_session(f.a, ck1, t1 + day - 1, name));
	CHECK(!http__auth_session(f.a, ck1, t1 + day, name));
	fix_close(&f);
}

static const struct unit_case cases[] = {
	{ "ipv6_by_64", t_ipv6_by_64 },       { "wait_and_reset", t_wait_and_reset },
	{ "global_budget", t_global_budget }, { "checks_per_source", t_checks_per_source },
	{ "sessions_end", t_sessions_end },
};
UNIT_MAIN(cases)
