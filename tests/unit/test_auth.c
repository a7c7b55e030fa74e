/* test_auth.c: unit tests of digest authentication: known answers, nonces, stale, replay. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "auth/auth.h"

/* RFC 2617 §3.5: MD5, qop=auth. */

/* auth_verify for credentials made for their own digest uri, with no source binding. */
static enum auth_result verify(struct auth *a, const struct sip_auth *c, struct str method, struct str realm,
			       const char *ha1, uint64_t now)
{
	struct auth_req rq = { method, c->uri, realm, STR_NULL };
	return auth_verify(a, c, &rq, ha1, now);
}

static void t_rfc2617(void)
{
	struct auth_client c = {
		.alg = AUTH_MD5,
		.user = STR("Mufasa"),
		.realm = STR("testrealm@host.com"),
		.password = STR("Circle Of Life"),
		.method = STR("GET"),
		.uri = STR("/dir/index.html"),
		.nonce = STR("dcd98b7102dd2f0e8b11d0f600bfb0c093"),
		.qop = STR("auth"),
		.cnonce = STR("0a4f113b"),
		.nc = 1,
	};
	char out[AUTH_HEX_MAX];

	CHECK_INT(auth_client_response(&c, out), 0);
	CHECK_STR(str_from_cstr(out), "6629fae49393a05397450978507c4ef1");

	/* The RFC 2069 form (no qop), computed independently with Python's hashlib. */
	c.qop = STR_NULL;
	CHECK_INT(auth_client_response(&c, out), 0);
	CHECK_STR(str_from_cstr(out), "670fd8c2df070c60b045671b8b24ff02");
}

/* RFC 7616 §3.9.1: the same request with SHA-256 and with MD5. */
static void t_rfc7616(void)
{
	struct auth_client c = {
		.alg = AUTH_SHA256,
		.user = STR("Mufasa"),
		.realm = STR("http-auth@example.org"),
		.password = STR("Circle of Life"),
		.method = STR("GET"),
		.uri = STR("/dir/index.html"),
		.nonce = STR("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
		.qop = STR("auth"),
		.cnonce = STR("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
		.nc = 1,
	};
	char out[AUTH_HEX_MAX];

	CHECK_INT(auth_client_response(&c, out), 0);
	CHECK_STR(str_from_cstr(out), "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
	c.alg = AUTH_MD5;
	CHECK_INT(auth_client_response(&c, out), 0);
	CHECK_STR(str_from_cstr(out), "8ca523f5e9506fed4657c9700eebdbec");
}

static void t_ha1(void)
{
	char out[AUTH_HEX_MAX];

	CHECK_INT(auth_ha1(AUTH_MD5, STR("alice"), STR("a.test"), STR("secret"), out), 0);
	CHECK_STR(str_from_cstr(out), "793bc5ed8ab2a7cdda9b5c704486cb5d");
	CHECK_INT(auth_ha1(AUTH_SHA256, STR("alice"), STR("a.test"), STR("secret"), out), 0);
	CHECK_STR(str_from_cstr(out), "a06df68097d221f1e7f0831027b48ea94393525565c61596abce8d82ee4868ad");
}

static void t_algs(void)
{
	struct auth_conf c = { 0 };
	enum auth_alg a;

	CHECK_INT(auth_algs_parse(&c, "sha-256, MD5"), 0);
	CHECK_INT(c.nalgs, 2);
	CHECK_INT(c.algs[0], AUTH_SHA256);
	CHECK_INT(c.algs[1], AUTH_MD5);
	CHECK_INT(auth_algs_parse(&c, "md5"), 0);
	CHECK_INT(c.nalgs, 1);
	CHECK(auth_algs_parse(&c, "md5,md5") < 0);
	CHECK(auth_algs_parse(&c, "sha-512") < 0);
	CHECK(auth_algs_parse(&c, "") < 0);
	CHECK(auth_alg_from_name(STR(""), &a) && a == AUTH_MD5);
	CHECK(auth_alg_from_name(STR("sha-256"), &a) && a == AUTH_SHA256);
	CHECK(!auth_alg_from_name(STR("MD5-sess"), &a));
}

/* Takes the nonce="..." value of the first challenge line in buf. */
static struct str nonce_of(const char *buf)
{
	const char *p = strstr(buf, "nonce=\"");
	const char *e;

	if (!p)
		return STR_NULL;
	p += 7;
	e = strchr(p, '"');
	return (struct str){ p, e ? (size_t)(e - p) : 0 };
}

/* Credentials as a client would send them for the challenge's nonce. */
struct cred {
	struct sip_auth a;
	char resp[AUTH_HEX_MAX];
	char nc[9];
};

static void make_cred(struct cred *c, enum auth_alg alg, const char *password, struct str nonce, uint32_t nc, bool qop)
{
	struct auth_client cl = {
		.alg = alg,
		.user = STR("alice"),
		.realm = STR("a.test"),
		.password = str_from_cstr(password),
		.method = STR("REGISTER"),
		.uri = STR("sip:127.0.0.1:5060"),
		.nonce = nonce,
		.qop = qop ? STR("auth") : STR_NULL,
		.cnonce = STR("c0ffee"),
		.nc = nc,
	};

	memset(c, 0, sizeof(*c));
	CHECK_INT(auth_client_response(&cl, c->resp), 0);
	snprintf(c->nc, sizeof(c->nc), "%08x", nc);
	c->a.scheme = STR("Digest");
	c->a.username = cl.user;
	c->a.realm = cl.realm;
	c->a.nonce = nonce;
	c->a.uri = cl.uri;
	c->a.response = str_from_cstr(c->resp);
	c->a.algorithm = alg == AUTH_SHA256 ? STR("SHA-256") : STR("MD5");
	if (qop) {
		c->a.qop = STR("auth");
		c->a.cnonce = cl.cnonce;
		c->a.nc = str_from_cstr(c->nc);
	}
}

static struct auth *new_auth(const char *algs, unsigned slots)
{
	struct auth_conf conf = { .nonce_lifetime = 300, .replay_slots = slots };
	struct auth *a = NULL;

	CHECK_INT(auth_algs_parse(&conf, algs), 0);
	CHECK_INT(auth_new(&a, &conf), 0);
	return a;
}

static void t_challenge(void)
{
	struct auth *a = new_auth("sha-256,md5", 0);
	char buf[1024], buf2[1024];
	int n = auth_challenge(a, STR("a.test"), STR_NULL, false, false, 1000, buf, sizeof(buf));
	struct str nonce = nonce_of(buf);
	char expect[512];

	CHECK(n > 0 && (size_t)n == strlen(buf));
	snprintf(expect, sizeof(expect),
		 "WWW-Authenticate: Digest realm=\"a.test\", nonce=\"%.*s\", algorithm=SHA-256, qop=\"auth\"\r\n"
		 "WWW-Authenticate: Digest realm=\"a.test\", nonce=\"%.*s\", algorithm=MD5, qop=\"auth\"\r\n",
		 STR_FMT(nonce), STR_FMT(nonce));
	CHECK_STR(str_from_cstr(buf), expect);
	CHECK(nonce.l >= 32);

	n = auth_challenge(a, STR("a.test"), STR_NULL, true, true, 1000, buf2, sizeof(buf2));
	CHECK(n > 0);
	CHECK(strncmp(buf2, "Proxy-Authenticate: Digest ", 27) == 0);
	CHECK(strstr(buf2, "qop=\"auth\", stale=true\r\n") != NULL);
	/* Two challenges in the same second still get different nonces. */
	CHECK(!str_eq(nonce_of(buf2), nonce));

	CHECK_INT(auth_challenge(a, STR("a.test"), STR_NULL, false, false, 1000, buf, 40), -ENOSPC);
	CHECK_STR(str_from_cstr(buf), "");
	auth_free(a);
}

static void t_verify(void)
{
	struct auth *a = new_auth("sha-256,md5", 0);
	char buf[1024], ha1_md5[AUTH_HEX_MAX], ha1_sha[AUTH_HEX_MAX], nb[128];
	struct str nonce;
	struct cred c;
	struct str m = STR("REGISTER"), realm = STR("a.test");

	auth_ha1(AUTH_MD5, STR("alice"), realm, STR("secret"), ha1_md5);
	auth_ha1(AUTH_SHA256, STR("alice"), realm, STR("secret"), ha1_sha);
	CHECK(auth_challenge(a, realm, STR_NULL, false, false, 1000, buf, sizeof(buf)) > 0);
	nonce = nonce_of(buf);
	str_to_cbuf(nonce, nb, sizeof(nb));
	nonce = str_from_cstr(nb);

	make_cred(&c, AUTH_SHA256, "secret", nonce, 1, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1010), AUTH_OK);
	/* The same nonce count again is a replay; a higher one is fine. */
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1011), AUTH_REPLAY);
	make_cred(&c, AUTH_SHA256, "secret", nonce, 3, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1012), AUTH_OK);
	make_cred(&c, AUTH_SHA256, "secret", nonce, 2, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1013), AUTH_REPLAY);

	/* MD5 with the same nonce, and an upper-case response. */
	make_cred(&c, AUTH_MD5, "secret", nonce, 4, true);
	for (char *p = c.resp; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_md5, 1014), AUTH_OK);
	/* The HA1 of the other algorithm does not fit. */
	make_cred(&c, AUTH_MD5, "secret", nonce, 5, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1015), AUTH_BAD_RESPONSE);
	CHECK_INT(verify(a, &c.a, m, realm, NULL, 1015), AUTH_BAD_RESPONSE);

	/* Wrong password. */
	make_cred(&c, AUTH_SHA256, "guess", nonce, 6, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1016), AUTH_BAD_RESPONSE);
	/* The response covers the method. */
	make_cred(&c, AUTH_SHA256, "secret", nonce, 7, true);
	CHECK_INT(verify(a, &c.a, STR("INVITE"), realm, ha1_sha, 1017), AUTH_BAD_RESPONSE);

	/* The wrong responses used the nonce up: even the right password needs a new one. */
	make_cred(&c, AUTH_SHA256, "secret", nonce, 8, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1018), AUTH_REPLAY);

	/* Stale: the right password after the nonce lifetime. */
	CHECK(auth_challenge(a, realm, STR_NULL, false, false, 1000, buf, sizeof(buf)) > 0);
	str_to_cbuf(nonce_of(buf), nb, sizeof(nb));
	nonce = str_from_cstr(nb);
	make_cred(&c, AUTH_SHA256, "secret", nonce, 8, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1000 + 300), AUTH_STALE);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1000 + 299), AUTH_OK);

	/* Without qop (RFC 2069) there is no count to stop a replay: refused. */
	make_cred(&c, AUTH_MD5, "secret", nonce, 0, false);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_md5, 1020), AUTH_BAD_REQUEST);

	/* The digest uri must name the Request-URI: the same text, or the same URI. */
	make_cred(&c, AUTH_SHA256, "secret", nonce, 20, true);
	struct auth_req rq = { m, STR("sip:other.test"), realm, STR_NULL };
	CHECK_INT(auth_verify(a, &c.a, &rq, ha1_sha, 1020), AUTH_URI_MISMATCH);
	rq.ruri = c.a.uri;
	CHECK_INT(auth_verify(a, &c.a, &rq, ha1_sha, 1020), AUTH_OK);

	/* A nonce bound to a source is refused from another one. */
	CHECK(auth_challenge(a, realm, STR("\x7f\0\0\x01"), false, false, 1000, buf, sizeof(buf)) > 0);
	str_to_cbuf(nonce_of(buf), nb, sizeof(nb));
	nonce = str_from_cstr(nb);
	make_cred(&c, AUTH_SHA256, "secret", nonce, 1, true);
	rq.bind = STR("\x7f\0\0\x02");
	CHECK_INT(auth_verify(a, &c.a, &rq, ha1_sha, 1021), AUTH_BAD_NONCE);
	rq.bind = STR("\x7f\0\0\x01");
	CHECK_INT(auth_verify(a, &c.a, &rq, ha1_sha, 1021), AUTH_OK);
	auth_free(a);
}

static void t_bad(void)
{
	struct auth *a = new_auth("md5", 0), *other = new_auth("md5", 0);
	char buf[1024], nb[128], ha1[AUTH_HEX_MAX], ha1_sha[AUTH_HEX_MAX];
	struct str m = STR("REGISTER"), realm = STR("a.test"), nonce;
	struct cred c;

	auth_ha1(AUTH_MD5, STR("alice"), realm, STR("secret"), ha1);
	auth_ha1(AUTH_SHA256, STR("alice"), realm, STR("secret"), ha1_sha);
	CHECK(auth_challenge(a, realm, STR_NULL, false, false, 1000, buf, sizeof(buf)) > 0);
	str_to_cbuf(nonce_of(buf), nb, sizeof(nb));
	nonce = str_from_cstr(nb);

	/* Another realm than the one we serve. */
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	CHECK_INT(verify(a, &c.a, m, STR("b.test"), ha1, 1001), AUTH_BAD_REQUEST);
	/* SHA-256 is not offered by this server. */
	make_cred(&c, AUTH_SHA256, "secret", nonce, 1, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1_sha, 1001), AUTH_BAD_REQUEST);
	/* Unsupported algorithm and qop, missing parameters. */
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	c.a.algorithm = STR("MD5-sess");
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_REQUEST);
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	c.a.qop = STR("auth-int");
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_REQUEST);
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	c.a.cnonce = STR_NULL;
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_REQUEST);
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	c.a.nc = STR("xyz");
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_REQUEST);
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	c.a.uri = STR_NULL;
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_REQUEST);
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	c.a.scheme = STR("Basic");
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_REQUEST);

	/* A nonce another server (another secret) issued, or one altered by a byte, with a
	 * response that is right for it: the password is right but the nonce is not ours. */
	CHECK(auth_challenge(other, realm, STR_NULL, false, false, 1000, buf, sizeof(buf)) > 0);
	char ob[128];
	str_to_cbuf(nonce_of(buf), ob, sizeof(ob));
	make_cred(&c, AUTH_MD5, "secret", str_from_cstr(ob), 1, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_NONCE);
	nb[5] = nb[5] == '0' ? '1' : '0';
	make_cred(&c, AUTH_MD5, "secret", nonce, 1, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_NONCE);
	make_cred(&c, AUTH_MD5, "secret", STR("dcd98b7102dd2f0e8b11d0f600bfb0c093"), 1, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_NONCE);
	/* A nonce issued for another realm. */
	CHECK(auth_challenge(a, STR("b.test"), STR_NULL, false, false, 1000, buf, sizeof(buf)) > 0);
	str_to_cbuf(nonce_of(buf), ob, sizeof(ob));
	make_cred(&c, AUTH_MD5, "secret", str_from_cstr(ob), 1, true);
	CHECK_INT(verify(a, &c.a, m, realm, ha1, 1001), AUTH_BAD_NONCE);
	auth_free(a);
	auth_free(other);
}

/* Issues a challenge at now and copies its nonce into out (NONCE_BUF bytes). */
#define NONCE_BUF 80
static void issue(struct auth *a, uint64_t now, char out[NONCE_BUF])
{
	char buf[1024];

	CHECK(auth_challenge(a, STR("a.test"), STR_NULL, false, false, now, buf, sizeof(buf)) > 0);
	str_to_cbuf(nonce_of(buf), out, NONCE_BUF);
}

/* Verifies alice's MD5 credentials (password right) for nonce with count nc at now. */
static enum auth_result use(struct auth *a, const char *nonce, uint32_t nc, uint64_t now)
{
	char ha1[AUTH_HEX_MAX];
	struct cred c;

	auth_ha1(AUTH_MD5, STR("alice"), STR("a.test"), STR("secret"), ha1);
	make_cred(&c, AUTH_MD5, "secret", str_from_cstr(nonce), nc, true);
	return verify(a, &c.a, STR("REGISTER"), STR("a.test"), ha1, now);
}

/* Nonce counts with the default window: a count is used once, may skip values, and a
 * count of 255 or more uses the nonce up (stale, so that the client gets a new one). */
static void t_nc(void)
{
	struct auth *a = new_auth("md5", 0);
	char n[NONCE_BUF];

	issue(a, 1000, n);
	CHECK_INT(use(a, n, 0, 1000), AUTH_REPLAY);
	CHECK_INT(use(a, n, 1, 1000), AUTH_OK);
	CHECK_INT(use(a, n, 1, 1000), AUTH_REPLAY);
	CHECK_INT(use(a, n, 2, 1001), AUTH_OK);
	CHECK_INT(use(a, n, 2, 1001), AUTH_REPLAY);
	CHECK_INT(use(a, n, 1, 1001), AUTH_REPLAY);
	CHECK_INT(use(a, n, 254, 1002), AUTH_OK);
	CHECK_INT(use(a, n, 254, 1002), AUTH_REPLAY);
	CHECK_INT(use(a, n, 255, 1002), AUTH_STALE);
	CHECK_INT(use(a, n, 256, 1002), AUTH_STALE);
	CHECK_INT(use(a, n, 0x7fffffff, 1002), AUTH_STALE);
	CHECK_INT(use(a, n, 3, 1002), AUTH_REPLAY);
	/* A fresh nonce whose first count is 255 or more is used up at once. */
	issue(a, 1003, n);
	CHECK_INT(use(a, n, 0x1000, 1003), AUTH_STALE);
	CHECK_INT(use(a, n, 1, 1003), AUTH_REPLAY);
	/* A first count above 1 is fine; it still has to grow. */
	issue(a, 1003, n);
	CHECK_INT(use(a, n, 7, 1003), AUTH_OK);
	CHECK_INT(use(a, n, 7, 1003), AUTH_REPLAY);
	CHECK_INT(use(a, n, 8, 1003), AUTH_OK);
	auth_free(a);
}

/* The regression: with thousands of nonces live (the old 4096-slot table evicted them, and
 * everything issued up to the evicted issue time was then answered stale), every fresh
 * nonce is accepted. A burst of 50,000 challenges within one second, then the first 4,000
 * used in order, each once, then replayed. */
static void t_many_live(void)
{
	enum { ISSUED = 50000, USED = 4000 };
	struct auth *a = new_auth("md5", 0);
	static char nonces[USED][NONCE_BUF];
	char n[NONCE_BUF];
	int ok = 0, replay = 0;

	for (int i = 0; i < ISSUED; i++) {
		if (i < USED)
			issue(a, 1000, nonces[i]);
		else
			issue(a, 1000, n);
	}
	for (int i = 0; i < USED; i++)
		ok += use(a, nonces[i], 1, 1050) == AUTH_OK;
	CHECK_INT(ok, USED);
	for (int i = 0; i < USED; i++)
		replay += use(a, nonces[i], 1, 1051) == AUTH_REPLAY;
	CHECK_INT(replay, USED);
	auth_free(a);
}

/* The SIPp bench: 10,000 users, 200 registrations in flight, each REGISTER challenged
 * and then sent again with nc=1 on its fresh nonce, some 2,000 a second. */
static void t_in_flight(void)
{
	enum { USERS = 10000, FLIGHT = 200 };
	struct auth *a = new_auth("md5", 0);
	static char nonces[FLIGHT][NONCE_BUF];
	int ok = 0;

	for (int i = 0; i < USERS + FLIGHT; i++) {
		uint64_t now = 1000 + (uint64_t)i / 2000;

		if (i >= FLIGHT)
			ok += use(a, nonces[i % FLIGHT], 1, now) == AUTH_OK;
		if (i < USERS)
			issue(a, now, nonces[i % FLIGHT]);
	}
	CHECK_INT(ok, USERS);
	auth_free(a);
}

/* A small window (replay_slots 16): a nonce stays usable until 16 newer challenges have
 * been issued, then it is stale (its slot may be another nonce's); never OK again. */
static void t_window(void)
{
	struct auth *a = new_auth("md5", 10); /* rounded up to 16 */
	char first[NONCE_BUF], n[NONCE_BUF], last[NONCE_BUF];

	issue(a, 1000, first);
	CHECK_INT(use(a, first, 1, 1000), AUTH_OK);
	for (int i = 0; i < 15; i++)
		issue(a, 1000, n);
	/* 15 newer: still in the window, its count still known. */
	CHECK_INT(use(a, first, 1, 1001), AUTH_REPLAY);
	CHECK_INT(use(a, first, 2, 1001), AUTH_OK);
	/* The 16th newer one takes over its slot. */
	issue(a, 1000, last);
	CHECK_INT(use(a, first, 3, 1001), AUTH_STALE);
	CHECK_INT(use(a, first, 1, 1001), AUTH_STALE);
	/* The new owner of the slot starts from a clean count... */
	CHECK_INT(use(a, last, 1, 1001), AUTH_OK);
	CHECK_INT(use(a, last, 1, 1001), AUTH_REPLAY);
	/* ...and its counts do not leak to the old nonce, whatever the count. */
	for (uint32_t nc = 1; nc < 300; nc++)
		CHECK_INT(use(a, first, nc, 1001), AUTH_STALE);
	CHECK_INT(use(a, last, 2, 1001), AUTH_OK);

	/* A nonce never used before it left the window is stale too, even with nc=1. */
	issue(a, 1002, first);
	for (int i = 0; i < 16; i++)
		issue(a, 1002, n);
	CHECK_INT(use(a, first, 1, 1002), AUTH_STALE);
	CHECK_INT(use(a, n, 1, 1002), AUTH_OK);
	auth_free(a);
}

/* Reuse of a slot that had been used up (count 255) or used high: the new owner starts at
 * 0, and the old owner is stale. Then 64 nonces through a window of 8, each used once as
 * issued (all OK), and afterwards: exactly the 8 newest are known (replay refused, nc=2
 * accepted), all older ones stale. This replaces the old eviction test: the old table
 * accepted a nonce unknown to it with nc=1 and had to evict; the window cannot evict. */
static void t_window_reuse(void)
{
	struct auth *a = new_auth("md5", 8);
	char nonces[64][NONCE_BUF], n[NONCE_BUF];
	int known = 0, stale = 0;

	issue(a, 1000, n);
	CHECK_INT(use(a, n, 254, 1000), AUTH_OK);
	CHECK_INT(use(a, n, 255, 1000), AUTH_STALE);
	for (int i = 0; i < 8; i++)
		issue(a, 1000, nonces[i]);
	CHECK_INT(use(a, nonces[7], 1, 1000), AUTH_OK);
	CHECK_INT(use(a, n, 256, 1000), AUTH_STALE);
	CHECK_INT(use(a, n, 1, 1000), AUTH_STALE);

	for (int i = 0; i < 64; i++) {
		issue(a, 1000 + (uint64_t)i, nonces[i]);
		CHECK_INT(use(a, nonces[i], 1, 1000 + (uint64_t)i), AUTH_OK);
	}
	for (int i = 0; i < 64; i++) {
		enum auth_result r1 = use(a, nonces[i], 1, 1100), r2 = use(a, nonces[i], 2, 1100);

		if (i >= 56) {
			CHECK_INT(r1, AUTH_REPLAY);
			CHECK_INT(r2, AUTH_OK);
			known++;
		} else {
			CHECK_INT(r1, AUTH_STALE);
			CHECK_INT(r2, AUTH_STALE);
			stale++;
		}
	}
	CHECK_INT(known, 8);
	CHECK_INT(stale, 56);
	/* The lifetime still applies inside the window. */
	CHECK_INT(use(a, nonces[63], 3, 1063 + 300), AUTH_STALE);
	CHECK_INT(use(a, nonces[63], 3, 1063 + 299), AUTH_OK);
	auth_free(a);
}

/* The whole path with the real parser: our challenge read as a client would, and an
 * Authorization value in the form SIPp sends (digest uri = the server address). */
static void t_parsed(void)
{
	struct auth *a = new_auth("md5", 0);
	char buf[1024], line[1024], resp[AUTH_HEX_MAX], ha1[AUTH_HEX_MAX], nb[128];
	struct sip_auth ch, cred;
	struct str realm = STR("a.test");
	char *colon;

	CHECK(auth_challenge(a, realm, STR_NULL, false, false, 5000, buf, sizeof(buf)) > 0);
	*strstr(buf, "\r\n") = '\0';
	colon = strchr(buf, ':');
	CHECK_INT(sip_auth_parse(&ch, str_from_cstr(colon + 2)), 0);
	CHECK_STR(ch.scheme, "Digest");
	CHECK_STR(ch.realm, "a.test");
	CHECK_STR(ch.algorithm, "MD5");
	CHECK_STR(ch.qop, "auth");
	str_to_cbuf(ch.nonce, nb, sizeof(nb));

	struct auth_client cl = {
		.alg = AUTH_MD5,
		.user = STR("alice"),
		.realm = realm,
		.password = STR("secret"),
		.method = STR("INVITE"),
		.uri = STR("sip:127.0.0.1:5060"),
		.nonce = str_from_cstr(nb),
		.qop = STR("auth"),
		.cnonce = STR("6b8b4567"),
		.nc = 1,
	};
	CHECK_INT(auth_client_response(&cl, resp), 0);
	snprintf(line, sizeof(line),
		 "Digest username=\"alice\",realm=\"a.test\",cnonce=\"6b8b4567\",nc=00000001,"
		 "qop=auth,uri=\"sip:127.0.0.1:5060\",nonce=\"%s\",response=\"%s\",algorithm=MD5",
		 nb, resp);
	CHECK_INT(sip_auth_parse(&cred, str_from_cstr(line)), 0);
	auth_ha1(AUTH_MD5, STR("alice"), realm, STR("secret"), ha1);
	CHECK_INT(verify(a, &cred, STR("INVITE"), realm, ha1, 5001), AUTH_OK);
	CHECK_INT(verify(a, &cred, STR("INVITE"), realm, ha1, 5002), AUTH_REPLAY);
	auth_free(a);
}

/* Parts longer than the hashing code gathers at once (256 bytes), around that boundary:
 * known answers computed independently with Python's hashlib. */
static void t_long_parts(void)
{
	static const struct {
		size_t len;
		const char *md5, *sha;
	} ha1s[] = {
		{ 253, "a7752a93cd5c0c125cad04635bfde41f",
		  "1007a1045e8a098c9a8d5fb52adf75477b96d759085db2ed19dd0f4d7d2c79f1" },
		{ 254, "8ed269875b83dc736d0f0f74f7fe1834",
		  "92e31e1db00814234cc05ca92926b7823a5440c045d9e00a3bc31447bc2da0ae" },
		{ 255, "d0089c1da6137a386f9daf992dc1d72d",
		  "761fd6b811af20e3d3d12506793b424d3a0eaa3772f3627e67e07890a905ccc3" },
		{ 256, "9dc0e05ee3ac9bf9aeea75d96a684598",
		  "796d8338e5d385448d274893afec8780c77dc08d83d2d41f3cb70b8b3565ed5a" },
		{ 300, "24929a1b65d838bdc352e98dedfe69df",
		  "7897159b852f6d06d76727e63355e4202c65736b9fdad0c2bcaab184069349ca" },
	};
	char user[300], uri[304], cnonce[260], out[AUTH_HEX_MAX];

	memset(user, 'u', sizeof(user));
	for (size_t i = 0; i < sizeof(ha1s) / sizeof(ha1s[0]); i++) {
		struct str u = { user, ha1s[i].len };

		CHECK_INT(auth_ha1(AUTH_MD5, u, STR("a.test"), STR("secret"), out), 0);
		CHECK_STR(str_from_cstr(out), ha1s[i].md5);
		CHECK_INT(auth_ha1(AUTH_SHA256, u, STR("a.test"), STR("secret"), out), 0);
		CHECK_STR(str_from_cstr(out), ha1s[i].sha);
	}

	memcpy(uri, "sip:", 4);
	memset(uri + 4, 'x', sizeof(uri) - 4);
	memset(cnonce, 'c', sizeof(cnonce));
	struct auth_client c = {
		.alg = AUTH_MD5,
		.user = STR("alice"),
		.realm = STR("a.test"),
		.password = STR("secret"),
		.method = STR("REGISTER"),
		.uri = { uri, sizeof(uri) },
		.nonce = STR("abc"),
		.qop = STR("auth"),
		.cnonce = { cnonce, sizeof(cnonce) },
		.nc = 1,
	};
	CHECK_INT(auth_client_response(&c, out), 0);
	CHECK_STR(str_from_cstr(out), "7cc05ca01179c3fb22551f48e7c7ad76");
	c.alg = AUTH_SHA256;
	CHECK_INT(auth_client_response(&c, out), 0);
	CHECK_STR(str_from_cstr(out), "a1d279b7c994d19391fb70c6a1b8fad5e27c5ca98b46c52d33a3e359223cdb96");
}

/* Round trips on one authenticator alternating the algorithms (its hashing state is reused
 * from call to call), with realms across the SHA-256 block sizes of the nonce MAC and past
 * the 256 bytes of realm it covers, and long digest uris and cnonces. */
static void t_roundtrip(void)
{
	static const size_t lens[] = { 1, 2, 38, 39, 40, 47, 48, 55, 56, 111, 112, 200, 255, 256, 257, 400, 590 };
	struct auth *a = new_auth("sha-256,md5", 0);
	char realm[600], uri[300], cnonce[270], buf[2048], nb[128], ha1[AUTH_HEX_MAX];
	char resp[AUTH_HEX_MAX], ncs[9];

	memset(realm, 'r', sizeof(realm));
	memcpy(uri, "sip:", 4);
	memset(uri + 4, 'h', sizeof(uri) - 4);
	memset(cnonce, 'c', sizeof(cnonce));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct str r = { realm, lens[i] };

		for (int k = 0; k < 4; k++) {
			enum auth_alg alg = k & 1 ? AUTH_SHA256 : AUTH_MD5;
			bool qop = k < 2;
			struct str n;

			CHECK(auth_challenge(a, r, STR_NULL, false, false, 1000, buf, sizeof(buf)) > 0);
			n = nonce_of(buf);
			str_to_cbuf(n, nb, sizeof(nb));
			struct auth_client cl = {
				.alg = alg,
				.user = STR("alice"),
				.realm = r,
				.password = STR("pw"),
				.method = STR("REGISTER"),
				.uri = { uri, sizeof(uri) },
				.nonce = str_from_cstr(nb),
				.qop = qop ? STR("auth") : STR_NULL,
				.cnonce = { cnonce, sizeof(cnonce) },
				.nc = 1,
			};
			CHECK_INT(auth_ha1(alg, cl.user, r, cl.password, ha1), 0);
			CHECK_INT(auth_client_response(&cl, resp), 0);
			snprintf(ncs, sizeof(ncs), "%08x", cl.nc);
			struct sip_auth cr = {
				.scheme = STR("Digest"),
				.username = cl.user,
				.realm = r,
				.nonce = cl.nonce,
				.uri = cl.uri,
				.response = str_from_cstr(resp),
				.algorithm = alg == AUTH_SHA256 ? STR("SHA-256") : STR("MD5"),
			};
			if (qop) {
				cr.qop = cl.qop;
				cr.cnonce = cl.cnonce;
				cr.nc = str_from_cstr(ncs);
			}
			CHECK_INT(verify(a, &cr, STR("REGISTER"), r, ha1, 1001), qop ? AUTH_OK : AUTH_BAD_REQUEST);
			/* The nonce is bound to its realm: another realm fails the MAC (with a
			 * response computed for that realm, so that the nonce is what is checked),
			 * unless both agree on the first 256 bytes, all that the MAC covers. */
			struct str r2 = { realm + 1, lens[i] - 1 };
			cl.realm = r2;
			cr.realm = r2;
			CHECK_INT(auth_ha1(alg, cl.user, r2, cl.password, ha1), 0);
			CHECK_INT(auth_client_response(&cl, resp), 0);
			CHECK_INT(verify(a, &cr, STR("REGISTER"), r2, ha1, 1001), !qop            ? AUTH_BAD_REQUEST
										  : lens[i] < 257 ? AUTH_BAD_NONCE
												  : AUTH_REPLAY);
		}
	}
	auth_free(a);
}

/* The value of a hex digit (either case), or -1. */
static int digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Every byte value in every position of a nonce, each time with a response that is right for
 * the altered nonce: refused as not ours, except where the byte is the same hex digit in the
 * other case, which decodes to the same nonce. */
static void t_nonce_tamper(void)
{
	struct auth *a = new_auth("md5", 0);
	char n[NONCE_BUF], t[NONCE_BUF], ha1[AUTH_HEX_MAX];
	uint32_t nc = 1;
	int refused = 0, same = 0;

	auth_ha1(AUTH_MD5, STR("alice"), STR("a.test"), STR("secret"), ha1);
	issue(a, 1000, n);
	/* The format: 64 lowercase hex digits (time, serial, MAC; 16 bytes each). */
	CHECK_INT(strlen(n), 64);
	CHECK_INT(strspn(n, "0123456789abcdef"), 64);
	for (size_t pos = 0; pos < 64; pos++) {
		for (int b = 0; b < 256; b++) {
			struct cred c;
			enum auth_result r;

			if (b == (unsigned char)n[pos])
				continue;
			memcpy(t, n, sizeof(t));
			t[pos] = (char)b;
			make_cred(&c, AUTH_MD5, "secret", (struct str){ t, 64 }, nc, true);
			r = verify(a, &c.a, STR("REGISTER"), STR("a.test"), ha1, 1001);
			if (digit_value(b) >= 0 && digit_value(b) == digit_value((unsigned char)n[pos])) {
				CHECK_INT(r, AUTH_OK);
				nc++;
				same++;
			} else {
				CHECK_INT(r, AUTH_BAD_NONCE);
				refused += r == AUTH_BAD_NONCE;
			}
		}
	}
	CHECK_INT(refused + same, 64 * 255);
	auth_free(a);
}

/* Every byte value in every position of the response, MD5 and SHA-256: a wrong password,
 * except where the byte is the same hex digit in the other case. */
static void t_response_tamper(void)
{
	struct auth *a = new_auth("md5,sha-256", 0);
	char n[NONCE_BUF];

	issue(a, 1000, n);
	for (int k = 0; k < 2; k++) {
		enum auth_alg alg = k ? AUTH_SHA256 : AUTH_MD5;
		size_t hl = k ? 64 : 32;
		char ha1[AUTH_HEX_MAX];
		uint32_t nc = k ? 100 : 1;
		struct cred c;

		auth_ha1(alg, STR("alice"), STR("a.test"), STR("secret"), ha1);
		make_cred(&c, alg, "secret", str_from_cstr(n), nc, true);
		CHECK_INT(c.a.response.l, hl);
		for (size_t pos = 0; pos < hl; pos++) {
			for (int b = 0; b < 256; b++) {
				enum auth_result r;
				char orig;

				/* Each try with a fresh nonce: a wrong response uses its nonce up. */
				issue(a, 1000, n);
				make_cred(&c, alg, "secret", str_from_cstr(n), ++nc, true);
				orig = c.resp[pos];
				if (b == (unsigned char)orig) {
					nc--;
					continue;
				}
				c.resp[pos] = (char)b;
				r = verify(a, &c.a, STR("REGISTER"), STR("a.test"), ha1, 1001);
				if (digit_value(b) >= 0 && digit_value(b) == digit_value((unsigned char)orig))
					CHECK_INT(r, AUTH_OK);
				else
					CHECK_INT(r, AUTH_BAD_RESPONSE);
				/* nc stays below 255: only the accepted tries take up counts. */
				if (r != AUTH_OK)
					nc--;
			}
		}
	}
	auth_free(a);
}

/* The server remembers the last H(method:uri): a method and uri that join to the same text,
 * a uri that the remembered one starts with, a method that it starts with, another uri,
 * another method, and a uri too long to be remembered must each be hashed for themselves. */
static void t_ha2_memo(void)
{
	static const struct {
		const char *method, *uri;
	} reqs[] = {
		{ "REGISTER", "sip:a.test" },
		{ "REGISTER", "sip:a.test" },
		{ "REGISTE", "Rsip:a.test" },
		{ "REGISTER", "sip:a.test" },
		{ "REGISTER", "sip:b.test" },
		{ "INVITE", "sip:b.test" },
		{ "REGISTER", "sip:a.test" },
		{ "REGISTER", NULL },
		{ "REGISTER", NULL },
		{ "REGISTER", "sip:a.test" },
		{ "REGISTER", "sip:a.test;x" },
		{ "REGISTER", "sip:a.test" },
		{ "AAAA", "AAAA" },
		{ "AAA", "AAAA" },
	};
	struct auth *a = new_auth("md5,sha-256", 0);
	char n[NONCE_BUF], longuri[400], resp[AUTH_HEX_MAX], ncs[9];
	uint32_t nc = 1;

	memcpy(longuri, "sip:", 4);
	memset(longuri + 4, 'l', sizeof(longuri) - 5);
	longuri[sizeof(longuri) - 1] = '\0';
	issue(a, 1000, n);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		for (int k = 0; k < 2; k++) {
			enum auth_alg alg = k ? AUTH_SHA256 : AUTH_MD5;
			struct str method = str_from_cstr(reqs[i].method);
			struct str uri = str_from_cstr(reqs[i].uri ? reqs[i].uri : longuri);
			char ha1[AUTH_HEX_MAX];
			struct auth_client cl = {
				.alg = alg,
				.user = STR("alice"),
				.realm = STR("a.test"),
				.password = STR("secret"),
				.method = method,
				.uri = uri,
				.nonce = str_from_cstr(n),
				.qop = STR("auth"),
				.cnonce = STR("c0ffee"),
				.nc = nc,
			};
			struct sip_auth cr = {
				.scheme = STR("Digest"),
				.username = cl.user,
				.realm = cl.realm,
				.nonce = cl.nonce,
				.uri = uri,
				.response = STR_NULL,
				.algorithm = k ? STR("SHA-256") : STR("MD5"),
				.qop = cl.qop,
				.cnonce = cl.cnonce,
			};

			auth_ha1(alg, cl.user, cl.realm, cl.password, ha1);
			CHECK_INT(auth_client_response(&cl, resp), 0);
			snprintf(ncs, sizeof(ncs), "%08x", nc);
			cr.response = str_from_cstr(resp);
			cr.nc = str_from_cstr(ncs);
			CHECK_INT(verify(a, &cr, method, cl.realm, ha1, 1001), AUTH_OK);
			nc++;
			/* Credentials for this request do not fit another method (after the last
			 * request only, not to disturb what the next is compared with). */
			if (i + 1 == sizeof(reqs) / sizeof(reqs[0])) {
				cr.nc = STR("000000fe");
				CHECK_INT(verify(a, &cr, STR("BYE"), cl.realm, ha1, 1001), AUTH_BAD_RESPONSE);
				issue(a, 1000, n); /* that used the nonce up */
				nc = 1;
			}
		}
	}
	auth_free(a);
}

/* The challenge fills a buffer exactly (text and NUL) or fails whole. */
static void t_challenge_fit(void)
{
	struct auth *a = new_auth("md5,sha-256", 0);
	char buf[1024], buf2[1024];
	int n = auth_challenge(a, STR("q\"x\\"), STR_NULL, true, true, 1000, buf, sizeof(buf));

	CHECK(n > 0 && (size_t)n == strlen(buf));
	CHECK(strstr(buf, "Proxy-Authenticate: Digest realm=\"q\\\"x\\\\\", nonce=\"") == buf);
	CHECK(strstr(buf, "\", algorithm=MD5, qop=\"auth\", stale=true\r\nProxy-Authenticate: ") != NULL);
	const char *tail = "\", algorithm=SHA-256, qop=\"auth\", stale=true\r\n";
	CHECK(strstr(buf, tail) == buf + n - (int)strlen(tail));
	memset(buf2, 'X', sizeof(buf2));
	CHECK_INT(auth_challenge(a, STR("q\"x\\"), STR_NULL, true, true, 1000, buf2, (size_t)n + 1), n);
	CHECK_INT(strlen(buf2), n);
	CHECK_INT(buf2[n + 1], 'X');
	CHECK_INT(auth_challenge(a, STR("q\"x\\"), STR_NULL, true, true, 1000, buf2, (size_t)n), -ENOSPC);
	CHECK_STR(str_from_cstr(buf2), "");
	CHECK_INT(auth_challenge(a, STR("q"), STR_NULL, false, false, 1000, buf2, 0), -ENOSPC);
	auth_free(a);
}

static const struct unit_case cases[] = {
	{ "parsed", t_parsed },
	{ "rfc2617", t_rfc2617 },
	{ "rfc7616", t_rfc7616 },
	{ "ha1", t_ha1 },
	{ "algs", t_algs },
	{ "challenge", t_challenge },
	{ "verify", t_verify },
	{ "bad", t_bad },
	{ "nc", t_nc },
	{ "many_live", t_many_live },
	{ "in_flight", t_in_flight },
	{ "window", t_window },
	{ "window_reuse", t_window_reuse },
	{ "long_parts", t_long_parts },
	{ "roundtrip", t_roundtrip },
	{ "challenge_fit", t_challenge_fit },
	{ "nonce_tamper", t_nonce_tamper },
	{ "response_tamper", t_response_tamper },
	{ "ha2_memo", t_ha2_memo },
};
UNIT_MAIN(cases)
