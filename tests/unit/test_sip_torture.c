/* test_sip_torture.c: the RFC 4475 and RFC 5118 torture messages against the parser and sanity checks. */
#include <stdlib.h>

#include "sip/sip.h"
#include "unit.h"

/* The messages are read as raw bytes: several hold NUL, control and UTF-8 octets. */
static char B[70000];
static size_t N;
static struct sip_msg M;
static struct sip_hdr H[SIP_MAX_HEADERS];
static struct sip_parse_err E;
static enum sip_parse_result R;
static unsigned S;          /* sip_sanity() code when R is OK */
static const char *SR = ""; /* its reason */

static bool load(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "tests/corpus/%s", name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		unit_failures++;
		N = 0;
		return false;
	}
	N = fread(B, 1, sizeof B, f);
	fclose(f);
	return true;
}

/* Loads and parses a file as a UDP datagram, then runs the sanity checks on success. */
static void parse_file(const char *name)
{
	load(name);
	R = sip_msg_parse(&M, H, SIP_MAX_HEADERS, B, N, true, &E);
	S = 0;
	SR = "";
	if (R == SIP_PARSE_OK)
		S = sip_sanity(&M, &SR);
}

/* Parsing and sanity both pass: the message goes on to the router. */
#define EXPECT_OK()                                                       \
	do {                                                              \
		CHECK_INT(R, SIP_PARSE_OK);                               \
		CHECK_INT(S, 0);                                          \
		if (R != SIP_PARSE_OK)                                    \
			fprintf(stderr, "  parse error: %s\n", E.reason); \
		else if (S)                                               \
			fprintf(stderr, "  sanity: %s\n", SR);            \
	} while (0)

#define EXPECT_PARSE_ERR(want_code, want_reason)                      \
	do {                                                          \
		CHECK_INT(R, SIP_PARSE_ERROR);                        \
		CHECK_INT(E.code, want_code);                         \
		CHECK(E.reason &&strcmp(E.reason, want_reason) == 0); \
		if (E.reason && strcmp(E.reason, want_reason))        \
			fprintf(stderr, "  reason: %s\n", E.reason);  \
	} while (0)

#define EXPECT_SANITY(code)                 \
	do {                                \
		CHECK_INT(R, SIP_PARSE_OK); \
		CHECK_INT(S, code);         \
	} while (0)

static const struct sip_hdr *hdr(enum sip_hdr_id id)
{
	return sip_msg_hdr(&M, id);
}

/* The n-th (0-based) value of all the header lines with an id, across lines and commas. */
static struct str nth_value(enum sip_hdr_id id, unsigned n)
{
	for (const struct sip_hdr *h = hdr(id); h; h = sip_msg_hdr_next(&M, h)) {
		struct str rest = h->value, item;
		while (sip_list_next(&rest, &item))
			if (n-- == 0)
				return item;
	}
	return STR_NULL;
}

static unsigned count_values(enum sip_hdr_id id)
{
	unsigned n = 0;
	while (nth_value(id, n).p)
		n++;
	return n;
}

/* Prints the forwarded request into a static buffer, as the proxy would. */
static struct str forward(void)
{
	static char out[140000];
	struct sip_out o;
	sip_out_init(&o, out, sizeof out);
	struct sip_fwd_opts fo = { .via = STR("SIP/2.0/UDP 192.0.2.254;branch=z9hG4bKtest") };
	CHECK_INT(sip_print_request_fwd(&o, &M, &fo), 0);
	return (struct str){ out, o.len };
}

static bool contains(struct str hay, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= hay.l; i++)
		if (memcmp(hay.p + i, needle, n) == 0)
			return true;
	return false;
}

/* ---- RFC 4475 §3.1.1: valid messages ---- */

static void t_wsinv(void)
{
	parse_file("rfc4475/wsinv.dat");
	EXPECT_OK();
	CHECK_STR(M.method, "INVITE");
	CHECK_STR(M.ruri.user, "vivekg");
	CHECK_STR(M.ruri.host, "chair-dnrc.example.com");
	CHECK_STR(M.ruri.params, ";unknownparam");
	CHECK_STR(M.to.tag, "1918181833n");
	CHECK(!M.to.bracketed);
	CHECK_STR(M.to.uri.host, "chair-dnrc.example.com");
	CHECK_STR(M.from.display, "J Rosenberg \\\\\\\"");
	CHECK_STR(M.from.tag, "98asjd8");
	CHECK_INT(M.max_forwards, 68);
	CHECK_INT(M.cseq, 9);
	CHECK_INT(M.cseq_method, SIP_INVITE);
	CHECK_STR(M.call_id, "wsinv.ndaksdj@192.0.2.1");
	CHECK_STR(M.via.version, "2.0");
	CHECK_STR(M.via.transport, "UDP");
	CHECK_STR(M.via.host, "192.0.2.2");
	CHECK_STR(M.via.branch, "390skdjuw");
	CHECK_INT(count_values(SIP_HDR_VIA), 3);
	struct sip_via v;
	CHECK_INT(sip_via_parse(&v, nth_value(SIP_HDR_VIA, 1)), 0);
	CHECK_STR(v.transport, "TCP");
	CHECK_STR(v.host, "spindle.example.com");
	CHECK_STR(v.branch, "z9hG4bK9ikj8");
	CHECK_INT(sip_via_parse(&v, nth_value(SIP_HDR_VIA, 2)), 0);
	CHECK_STR(v.host, "192.168.255.111");
	CHECK_STR(v.branch, "z9hG4bK30239");
	const struct sip_hdr *nf = sip_msg_hdr_by_name(&M, STR("newfangledheader"));
	CHECK(nf && contains(nf->value, "continued newfangled value"));
	const struct sip_hdr *uh = sip_msg_hdr_by_name(&M, STR("UnknownHeaderWithUnusualValue"));
	CHECK(uh && str_eq(uh->value, STR(";;,,;;,;")));
	CHECK(hdr(SIP_HDR_SUBJECT) && hdr(SIP_HDR_SUBJECT)->value.l == 0);
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK_STR(a.display, "Quoted string \\\"\\\"");
	struct str q;
	CHECK(sip_param_get(a.params, STR("newparam"), &q) && str_eq(q, STR("newvalue")));
	CHECK(sip_param_get(a.params, STR("secondparam"), &q) && q.l == 0);
	CHECK(sip_param_get(a.params, STR("q"), &q) && str_eq(q, STR("0.33")));
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_ROUTE)->value), 0);
	CHECK(a.uri.lr);
	CHECK_INT(M.body.l, 150);
}

static void t_intmeth(void)
{
	parse_file("rfc4475/intmeth.dat");
	EXPECT_OK();
	CHECK_STR(M.method, "!interesting-Method0123456789_*+`.%indeed'~");
	CHECK_INT(M.mid, SIP_METHOD_OTHER);
	CHECK_STR(M.cseq_method_str, "!interesting-Method0123456789_*+`.%indeed'~");
	CHECK_STR(M.ruri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
	CHECK_STR(M.ruri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
	CHECK_STR(M.ruri.host, "example.com");
	CHECK_STR(M.via.branch, "z9hG4bK-.!%66*_+`'~");
	static const char dn[] = "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f";
	CHECK(M.to.display.l == sizeof dn - 1 && memcmp(M.to.display.p, dn, sizeof dn - 1) == 0);
	CHECK_STR(M.to.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
	CHECK_STR(M.from.display, "token1~` token2'+_ token3*%!.-");
	CHECK_STR(M.from.tag, "_token~1'+`*%!-.");
	CHECK(sip_param_get(M.from.params, STR("fromParam''~+*_!.-%"), NULL));
	CHECK_STR(M.call_id, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
	CHECK_INT(M.max_forwards, 255);
	CHECK(sip_msg_hdr_by_name(&M, STR("extensionHeader-!.%*+_`'~")) != NULL);
}

static void t_esc01(void)
{
	parse_file("rfc4475/esc01.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.user, "sips%3Auser%40example.com");
	CHECK_STR(M.ruri.host, "example.net");
	CHECK_STR(M.to.uri.user, "%75se%72");
	CHECK_STR(M.from.uri.user, "I%20have%20spaces");
	CHECK_STR(M.call_id, "esc01.239409asdfakjkn23onasd0-3234");
	struct sip_addr c;
	CHECK_INT(sip_addr_parse(&c, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK_STR(c.uri.user, "cal%6Cer");
	struct str v;
	CHECK(sip_param_get(c.uri.params, STR("n%61me"), &v) && str_eq(v, STR("v%61lue%25%34%31")));
	/* The escapes compare equal to what they encode (§19.1.4), once: %25%34%31 is "%41"
	 * and not "A". */
	struct sip_uri u;
	CHECK_INT(sip_uri_parse(&u, STR("sip:user@example.com")), 0);
	CHECK(sip_uri_equal(&M.to.uri, &u));
	struct sip_uri c1, c2;
	CHECK_INT(sip_uri_parse(&c1, STR("sip:caller@host5.example.net;lr;name=value%2541")), 0);
	CHECK_INT(sip_uri_parse(&c2, STR("sip:caller@host5.example.net;lr;name=valueA")), 0);
	CHECK(sip_uri_equal(&c.uri, &c1));
	CHECK(!sip_uri_equal(&c.uri, &c2));
}

static void t_escnull(void)
{
	parse_file("rfc4475/escnull.dat");
	EXPECT_OK();
	CHECK_STR(M.to.uri.user, "null-%00-null");
	CHECK_INT(M.mid, SIP_REGISTER);
	CHECK_INT(count_values(SIP_HDR_CONTACT), 2);
	struct sip_addr a, b;
	CHECK_INT(sip_addr_parse(&a, nth_value(SIP_HDR_CONTACT, 0)), 0);
	CHECK_INT(sip_addr_parse(&b, nth_value(SIP_HDR_CONTACT, 1)), 0);
	CHECK_STR(a.uri.user, "%00");
	CHECK_STR(b.uri.user, "%00%00");
	CHECK(!sip_uri_equal(&a.uri, &b.uri));
}

static void t_esc02(void)
{
	parse_file("rfc4475/esc02.dat");
	EXPECT_OK();
	/* RE%47IST%45R is an extension method, not REGISTER. */
	CHECK_STR(M.method, "RE%47IST%45R");
	CHECK_INT(M.mid, SIP_METHOD_OTHER);
	CHECK_INT(M.cseq_method, SIP_METHOD_OTHER);
	CHECK_STR(M.to.display, "%Z%45");
	CHECK_INT(count_values(SIP_HDR_CONTACT), 2);
	CHECK(sip_msg_hdr_by_name(&M, STR("C%6Fntact")) != NULL);
	CHECK_STR(M.via.branch, "z9hG4bK209%fzsnel234");
}

static void t_lwsdisp(void)
{
	parse_file("rfc4475/lwsdisp.dat");
	EXPECT_OK();
	CHECK_STR(M.from.display, "caller");
	CHECK_STR(M.from.uri.user, "caller");
	CHECK_STR(M.from.tag, "323");
}

static void t_longreq(void)
{
	parse_file("rfc4475/longreq.dat");
	EXPECT_OK();
	CHECK_INT(count_values(SIP_HDR_VIA), 34);
	CHECK(str_has_prefix_case(M.to.display, STR("I have a user name of extremeextreme")));
	CHECK(M.from.tag.l > 100);
	CHECK_INT(M.to.uri.port, 6000);
	CHECK(M.to.uri.params.l > 100);
	CHECK(M.call_id.l > 100);
	CHECK_INT(M.body.l, 150);
	/* A proxy must not truncate them. */
	struct str f = forward();
	CHECK(contains(f, "Call-ID: longreq.onereallyreallyreally"));
}

static void t_dblreq(void)
{
	parse_file("rfc4475/dblreq.dat");
	EXPECT_OK();
	CHECK_INT(M.mid, SIP_REGISTER);
	CHECK_STR(M.call_id, "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
	CHECK_INT(M.body.l, 0);
	CHECK(M.len < N); /* the trailing INVITE is not part of the message */
	struct str f = forward();
	CHECK(!contains(f, "INVITE"));
}

static void t_semiuri(void)
{
	parse_file("rfc4475/semiuri.dat");
	EXPECT_OK();
	/* The RFC reads the user part as "user;par=u@example.net" once unescaped. */
	CHECK_STR(M.ruri.user, "user;par=u%40example.net");
	CHECK_STR(M.ruri.host, "example.com");
	CHECK_INT(M.ruri.params.l, 0);
	CHECK_INT(count_values(SIP_HDR_ACCEPT), 6);
}

static void t_transports(void)
{
	parse_file("rfc4475/transports.dat");
	EXPECT_OK();
	static const char *const want[] = { "UDP", "SCTP", "TLS", "UNKNOWN", "TCP" };
	CHECK_INT(count_values(SIP_HDR_VIA), 5);
	for (unsigned k = 0; k < 5; k++) {
		struct sip_via v;
		CHECK_INT(sip_via_parse(&v, nth_value(SIP_HDR_VIA, k)), 0);
		CHECK_STR(v.transport, want[k]);
	}
}

static void t_mpart01(void)
{
	parse_file("rfc4475/mpart01.dat");
	EXPECT_OK();
	CHECK_INT(M.mid, SIP_MESSAGE);
	CHECK_INT(M.body.l, 553);
	CHECK(str_has_prefix_case(hdr(SIP_HDR_CONTENT_TYPE)->value, STR("multipart/mixed")));
}

static void t_unreason(void)
{
	parse_file("rfc4475/unreason.dat");
	CHECK_INT(R, SIP_PARSE_OK);
	CHECK(!M.request);
	CHECK_INT(M.status, 200);
	CHECK(str_has_prefix_case(M.reason, STR("= 2**3 * 5**2 ")));
}

static void t_noreason(void)
{
	parse_file("rfc4475/noreason.dat");
	CHECK_INT(R, SIP_PARSE_OK);
	CHECK(!M.request);
	CHECK_INT(M.status, 100);
	CHECK_INT(M.reason.l, 0);
}

/* ---- RFC 4475 §3.1.2: invalid messages ---- */

static void t_badinv01(void)
{
	parse_file("rfc4475/badinv01.dat");
	EXPECT_PARSE_ERR(400, "Bad Via");
}

static void t_clerr(void)
{
	parse_file("rfc4475/clerr.dat");
	EXPECT_PARSE_ERR(400, "Bad Content-Length");
	CHECK(E.can_respond);
	/* On a stream it is only incomplete: wait for more. */
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, B, N, false, &E), SIP_PARSE_AGAIN);
}

static void t_ncl(void)
{
	parse_file("rfc4475/ncl.dat");
	EXPECT_PARSE_ERR(400, "Bad Content-Length");
	CHECK(E.can_respond);
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, B, N, false, &E), SIP_PARSE_ERROR);
}

static void t_scalar02(void)
{
	parse_file("rfc4475/scalar02.dat");
	EXPECT_PARSE_ERR(400, "Bad CSeq");
	CHECK(E.can_respond);
}

static void t_scalarlg(void)
{
	parse_file("rfc4475/scalarlg.dat");
	EXPECT_PARSE_ERR(400, "Bad CSeq");
	CHECK(!M.request);
	CHECK(!E.can_respond); /* a response: dropped */
}

/* Lenient choice: none. RFC 4475 allows inferring the closing quote; we reject. */
static void t_quotbal(void)
{
	parse_file("rfc4475/quotbal.dat");
	EXPECT_PARSE_ERR(400, "Bad To");
	CHECK(E.can_respond);
}

/* Strict choice: <> around the Request-URI is rejected. */
static void t_ltgtruri(void)
{
	parse_file("rfc4475/ltgtruri.dat");
	EXPECT_PARSE_ERR(400, "Bad Request-URI");
	CHECK(E.can_respond);
}

/* Strict choice: LWS inside the Request-URI is rejected. */
static void t_lwsruri(void)
{
	parse_file("rfc4475/lwsruri.dat");
	EXPECT_PARSE_ERR(400, "Bad request line");
	CHECK(E.can_respond);
}

/* Lenient choice: extra SP between the request-line elements is ignored, and the
 * forwarded request line is normalised. */
static void t_lwsstart(void)
{
	parse_file("rfc4475/lwsstart.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri_str, "sip:user@example.com");
	CHECK_STR(M.version, "SIP/2.0");
	struct str f = forward();
	CHECK(str_has_prefix_case(f, STR("INVITE sip:user@example.com SIP/2.0\r\n")));
}

/* Lenient choice: trailing SP on the request line is ignored and not forwarded. */
static void t_trws(void)
{
	parse_file("rfc4475/trws.dat");
	EXPECT_OK();
	CHECK_STR(M.version, "SIP/2.0");
	struct str f = forward();
	CHECK(str_has_prefix_case(f, STR("OPTIONS sip:remote-target@example.com SIP/2.0\r\n")));
}

/* Lenient choice: accepted; the escaped ?Route is dropped from the forwarded Request-URI
 * and never turned into a Route header. */
static void t_escruri(void)
{
	parse_file("rfc4475/escruri.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.headers, "?Route=%3Csip:example.com%3E");
	CHECK_STR(M.ruri.host, "example.com");
	struct str f = forward();
	CHECK(str_has_prefix_case(f, STR("INVITE sip:user@example.com SIP/2.0\r\n")));
	CHECK(!contains(f, "Route"));
}

/* Lenient choice (RFC 3261 §16.3): a bad Date is not our business; forwarded unchanged. */
static void t_baddate(void)
{
	parse_file("rfc4475/baddate.dat");
	EXPECT_OK();
	CHECK_STR(hdr(SIP_HDR_DATE)->value, "Fri, 01 Jan 2010 16:00:00 EST");
	CHECK(contains(forward(), "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n"));
}

/* The message parses (Contact is not read by the parser); the registrar's read of the
 * Contact fails, so it answers 400: we do not infer the missing <>. */
static void t_regbadct(void)
{
	parse_file("rfc4475/regbadct.dat");
	EXPECT_OK();
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), -1);
}

/* Strict choice: spaces inside <> are rejected. */
static void t_badaspec(void)
{
	parse_file("rfc4475/badaspec.dat");
	EXPECT_PARSE_ERR(400, "Bad To");
	CHECK_STR(M.from.display, "Bell, Alexander");
}

/* Strict choice: a display name with a comma and no quotes is rejected. */
static void t_baddn(void)
{
	parse_file("rfc4475/baddn.dat");
	EXPECT_PARSE_ERR(400, "Bad From");
	CHECK(E.can_respond);
}

static void t_badvers(void)
{
	parse_file("rfc4475/badvers.dat");
	EXPECT_SANITY(505);
	CHECK_STR(M.version, "SIP/7.0");
}

static void t_mismatch01(void)
{
	parse_file("rfc4475/mismatch01.dat");
	EXPECT_SANITY(400);
	CHECK(strcmp(SR, "CSeq method mismatch") == 0);
}

/* 501 rather than 400, as the RFC prefers at proxies. */
static void t_mismatch02(void)
{
	parse_file("rfc4475/mismatch02.dat");
	EXPECT_SANITY(501);
	CHECK_STR(M.method, "NEWMETHOD");
}

static void t_bigcode(void)
{
	parse_file("rfc4475/bigcode.dat");
	EXPECT_PARSE_ERR(400, "Bad status code");
	CHECK(!M.request);
	CHECK(!E.can_respond);
}

/* ---- RFC 4475 §3.2, §3.3, §3.4 ---- */

/* Accepted: the bare magic cookie is a branch; the transaction layer decides. */
static void t_badbranch(void)
{
	parse_file("rfc4475/badbranch.dat");
	EXPECT_OK();
	CHECK_STR(M.via.branch, "z9hG4bK");
}

static void t_insuf(void)
{
	parse_file("rfc4475/insuf.dat");
	EXPECT_PARSE_ERR(400, "Missing From");
	/* The Via parsed, so a 400 can still go back to it. */
	CHECK(E.can_respond);
	CHECK_INT(M.cseq, 193942);
}

static void t_unkscm(void)
{
	parse_file("rfc4475/unkscm.dat");
	EXPECT_SANITY(416);
	CHECK_INT(M.ruri.scheme, SIP_SCHEME_OTHER);
	CHECK_STR(M.ruri.scheme_str, "nobodyKnowsThisScheme");
	CHECK_INT(M.to.uri.scheme, SIP_SCHEME_SIP); /* never routed on */
}

static void t_novelsc(void)
{
	parse_file("rfc4475/novelsc.dat");
	EXPECT_SANITY(416);
	CHECK_STR(M.ruri.scheme_str, "soap.beep");
}

/* The parser accepts it; the registrar answers 400 on the non-SIP To. */
static void t_unksm2(void)
{
	parse_file("rfc4475/unksm2.dat");
	EXPECT_OK();
	CHECK_INT(M.to.uri.scheme, SIP_SCHEME_OTHER);
	CHECK_STR(M.to.uri.scheme_str, "isbn");
	CHECK_STR(M.from.uri.scheme_str, "http");
	struct sip_addr c;
	CHECK_INT(sip_addr_parse(&c, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK_STR(c.uri.scheme_str, "name");
}

/* 420 is the router's; here the tags it lists. */
static void t_bext01(void)
{
	parse_file("rfc4475/bext01.dat");
	EXPECT_OK();
	CHECK_STR(nth_value(SIP_HDR_PROXY_REQUIRE, 0), "noProxiesSupportThis");
	CHECK_STR(nth_value(SIP_HDR_PROXY_REQUIRE, 1), "norDoAnyProxiesSupportThis");
	CHECK_STR(nth_value(SIP_HDR_REQUIRE, 0), "nothingSupportsThis");
	CHECK_STR(nth_value(SIP_HDR_REQUIRE, 1), "nothingSupportsThisEither");
}

static void t_invut(void)
{
	parse_file("rfc4475/invut.dat");
	EXPECT_OK();
	CHECK_STR(hdr(SIP_HDR_CONTENT_TYPE)->value, "application/unknownformat");
	CHECK_INT(M.body.l, 40);
}

/* 401 is the router's; here the unknown scheme it refuses. */
static void t_regaut01(void)
{
	parse_file("rfc4475/regaut01.dat");
	EXPECT_OK();
	struct sip_auth a;
	CHECK_INT(sip_auth_parse(&a, hdr(SIP_HDR_AUTHORIZATION)->value), 0);
	CHECK_STR(a.scheme, "NoOneKnowsThisScheme");
}

static void t_multi01(void)
{
	parse_file("rfc4475/multi01.dat");
	EXPECT_SANITY(400);
	CHECK(strncmp(SR, "Multiple ", 9) == 0);
	CHECK_INT(M.count[SIP_HDR_TO], 2);
	CHECK_INT(M.count[SIP_HDR_CALL_ID], 2);
	CHECK_INT(M.count[SIP_HDR_CSEQ], 2);
	CHECK_INT(M.count[SIP_HDR_MAX_FORWARDS], 2);
}

static void t_mcl01(void)
{
	parse_file("rfc4475/mcl01.dat");
	EXPECT_PARSE_ERR(400, "Multiple Content-Length");
	CHECK(E.can_respond);
}

static void t_bcast(void)
{
	parse_file("rfc4475/bcast.dat");
	CHECK_INT(R, SIP_PARSE_OK);
	CHECK_INT(M.status, 200);
	struct sip_via v;
	CHECK_INT(sip_via_parse(&v, nth_value(SIP_HDR_VIA, 1)), 0);
	CHECK_STR(v.host, "255.255.255.255");
}

/* 483 is the router's; here the value it reads. */
static void t_zeromf(void)
{
	parse_file("rfc4475/zeromf.dat");
	EXPECT_OK();
	CHECK_INT(M.max_forwards, 0);
}

static void t_cparam01(void)
{
	parse_file("rfc4475/cparam01.dat");
	EXPECT_OK();
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK(!a.bracketed);
	CHECK_STR(a.uri_str, "sip:+19725552222@gw1.example.net");
	CHECK_INT(a.uri.params.l, 0);
	CHECK_STR(a.params, ";unknownparam");
}

static void t_cparam02(void)
{
	parse_file("rfc4475/cparam02.dat");
	EXPECT_OK();
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK(a.bracketed);
	CHECK_STR(a.uri.params, ";unknownparam");
	CHECK_INT(a.params.l, 0);
}

static void t_regescrt(void)
{
	parse_file("rfc4475/regescrt.dat");
	EXPECT_OK();
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK_STR(a.uri.headers, "?Route=%3Csip:sip.example.com%3E");
	CHECK_STR(a.uri_str, "sip:user@example.com?Route=%3Csip:sip.example.com%3E");
}

/* 406 or 400 is for a UAS; a proxy passes it on. */
static void t_sdp01(void)
{
	parse_file("rfc4475/sdp01.dat");
	EXPECT_OK();
	CHECK_STR(hdr(SIP_HDR_ACCEPT)->value, "text/nobodyKnowsThis");
}

/* RFC 2543 syntax: accepted. No Content-Length on a datagram: the body is the rest. */
static void t_inv2543(void)
{
	parse_file("rfc4475/inv2543.dat");
	EXPECT_OK();
	CHECK_INT(M.via.branch.l, 0);
	CHECK_INT(M.from.tag.l, 0);
	CHECK_INT(M.max_forwards, -1);
	CHECK_INT(M.body.l, N - (size_t)(M.body.p - B));
	struct str f = forward();
	CHECK(contains(f, "Max-Forwards: 70\r\n"));
	char cl[40];
	snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", M.body.l);
	CHECK(contains(f, cl));
}

/* ---- RFC 5118 ---- */

static void t_ipv6_good(void)
{
	parse_file("rfc5118/ipv6-good.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.host, "[2001:db8::10]");
	CHECK_STR(M.via.host, "[2001:db8::9:1]");
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK_STR(a.uri.host, "[2001:db8::1]");
}

static void t_ipv6_bad(void)
{
	parse_file("rfc5118/ipv6-bad.dat");
	EXPECT_PARSE_ERR(400, "Bad Request-URI");
}

static void t_port_ambiguous(void)
{
	parse_file("rfc5118/port-ambiguous.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.host, "[2001:db8::10:5070]");
	CHECK_INT(M.ruri.port, 0);
}

static void t_port_unambiguous(void)
{
	parse_file("rfc5118/port-unambiguous.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.host, "[2001:db8::10]");
	CHECK_INT(M.ruri.port, 5070);
}

static void t_via_received_delim(void)
{
	parse_file("rfc5118/via-received-param-with-delim.dat");
	EXPECT_OK();
	CHECK_STR(M.via.received, "[2001:db8::9:255]");
	CHECK_STR(M.via.branch, "z9hG4bKas3-111");
}

static void t_via_received_nodelim(void)
{
	parse_file("rfc5118/via-received-param-no-delim.dat");
	EXPECT_OK();
	CHECK_STR(M.via.received, "2001:db8::9:255");
	CHECK_STR(M.via.branch, "z9hG4bKas3");
}

/* The archived Content-Length is shorter than the CRLF body; on a datagram the extra
 * octets are ignored, and the recomputed copy frames the whole body. */
static void sdp_case(const char *name, const char *fixed)
{
	parse_file(name);
	EXPECT_OK();
	CHECK(contains(M.body, "IP6"));
	size_t short_body = M.body.l;
	parse_file(fixed);
	EXPECT_OK();
	CHECK(M.body.l > short_body);
	CHECK_INT(M.len, N);
}

static void t_ipv6_in_sdp(void)
{
	sdp_case("rfc5118/ipv6-in-sdp.dat", "rfc5118/wire-cl-fixed/ipv6-in-sdp.dat");
}

static void t_mult_ip_in_sdp(void)
{
	sdp_case("rfc5118/mult-ip-in-sdp.dat", "rfc5118/wire-cl-fixed/mult-ip-in-sdp.dat");
}

static void t_mult_ip_in_header(void)
{
	parse_file("rfc5118/mult-ip-in-header.dat");
	EXPECT_OK();
	CHECK_STR(M.via.host, "[2001:db8::9:1]");
	CHECK_INT(M.via.port, 6050);
	struct sip_via v;
	CHECK_INT(sip_via_parse(&v, nth_value(SIP_HDR_VIA, 1)), 0);
	CHECK_STR(v.host, "192.0.2.1");
	CHECK_INT(sip_via_parse(&v, nth_value(SIP_HDR_VIA, 2)), 0);
	CHECK_STR(v.host, "[2001:db8::9:255]");
	CHECK_STR(v.received, "192.0.2.200");
}

static void t_ipv4_mapped(void)
{
	parse_file("rfc5118/ipv4-mapped-ipv6.dat");
	EXPECT_OK();
	CHECK_STR(M.via.host, "[::ffff:192.0.2.10]");
	CHECK_INT(M.via.port, 19823);
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, hdr(SIP_HDR_CONTACT)->value), 0);
	CHECK_STR(a.uri.host, "[::ffff:192.0.2.2]");
	parse_file("rfc5118/wire-cl-fixed/ipv4-mapped-ipv6.dat");
	EXPECT_OK();
	CHECK_INT(M.len, N);
}

/* RFC 5118 §4.10: both forms are tolerated. */
static void t_ipv6_3colons(void)
{
	parse_file("rfc5118/ipv6-bug-abnf-3-colons.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.host, "[2001:db8:::192.0.2.1]");
}

static void t_ipv6_2colons(void)
{
	parse_file("rfc5118/ipv6-correct-abnf-2-colons.dat");
	EXPECT_OK();
	CHECK_STR(M.ruri.host, "[2001:db8::192.0.2.1]");
	CHECK_STR(M.to.uri.host, "[2001:db8::192.0.2.1]");
}

/* ---- every VERDICTS.tsv row against what parse + sanity answer ---- */

/* Our answer for a file: the parse error code, else the sanity code, else 0 ("handed to
 * the router"). allowed is the VERDICTS column: codes, "any-non-400" or "none". */
static bool verdict_ok(const char *file, const char *cls, const char *allowed, unsigned ours)
{
	if (strcmp(cls, "RESPONSE") == 0)
		return !M.request; /* parsed or not, a response is never answered */
	/* Codes the router produces later: the parser must hand these messages on. */
	static const char *const later[] = { "bext01.dat", "zeromf.dat", "regaut01.dat", "sdp01.dat", "unksm2.dat" };
	for (size_t k = 0; k < sizeof later / sizeof later[0]; k++)
		if (strcmp(file, later[k]) == 0)
			return ours == 0;
	char list[64];
	snprintf(list, sizeof list, "%s", allowed);
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		if (strcmp(tok, "any-non-400") == 0 && ours != 400)
			return true;
		if ((unsigned)atoi(tok) == ours)
			return true;
	}
	return false;
}

static void t_verdicts(void)
{
	if (!load("rfc4475/VERDICTS.tsv"))
		return;
	static char tsv[sizeof B];
	memcpy(tsv, B, N);
	tsv[N < sizeof tsv ? N : sizeof tsv - 1] = '\0';
	unsigned rows = 0;
	char *save = NULL;
	strtok_r(tsv, "\n", &save); /* header row */
	for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[4] = { 0 }, *p = line;
		for (int k = 0; k < 4 && p; k++) {
			f[k] = p;
			p = strchr(p, '\t');
			if (p)
				*p++ = '\0';
		}
		if (!f[3])
			continue;
		char name[80];
		snprintf(name, sizeof name, "rfc4475/%s", f[0]);
		parse_file(name);
		unsigned ours = R == SIP_PARSE_OK ? S : E.code;
		if (!verdict_ok(f[0], f[2], f[3], ours)) {
			fprintf(stderr, "  %s (%s, allowed %s): we answer %u\n", f[0], f[2], f[3], ours);
			unit_failures++;
		}
		rows++;
	}
	CHECK_INT(rows, 49);
}

static const struct unit_case cases[] = {
	{ "wsinv", t_wsinv },
	{ "intmeth", t_intmeth },
	{ "esc01", t_esc01 },
	{ "escnull", t_escnull },
	{ "esc02", t_esc02 },
	{ "lwsdisp", t_lwsdisp },
	{ "longreq", t_longreq },
	{ "dblreq", t_dblreq },
	{ "semiuri", t_semiuri },
	{ "transports", t_transports },
	{ "mpart01", t_mpart01 },
	{ "unreason", t_unreason },
	{ "noreason", t_noreason },
	{ "badinv01", t_badinv01 },
	{ "clerr", t_clerr },
	{ "ncl", t_ncl },
	{ "scalar02", t_scalar02 },
	{ "scalarlg", t_scalarlg },
	{ "quotbal", t_quotbal },
	{ "ltgtruri", t_ltgtruri },
	{ "lwsruri", t_lwsruri },
	{ "lwsstart", t_lwsstart },
	{ "trws", t_trws },
	{ "escruri", t_escruri },
	{ "baddate", t_baddate },
	{ "regbadct", t_regbadct },
	{ "badaspec", t_badaspec },
	{ "baddn", t_baddn },
	{ "badvers", t_badvers },
	{ "mismatch01", t_mismatch01 },
	{ "mismatch02", t_mismatch02 },
	{ "bigcode", t_bigcode },
	{ "badbranch", t_badbranch },
	{ "insuf", t_insuf },
	{ "unkscm", t_unkscm },
	{ "novelsc", t_novelsc },
	{ "unksm2", t_unksm2 },
	{ "bext01", t_bext01 },
	{ "invut", t_invut },
	{ "regaut01", t_regaut01 },
	{ "multi01", t_multi01 },
	{ "mcl01", t_mcl01 },
	{ "bcast", t_bcast },
	{ "zeromf", t_zeromf },
	{ "cparam01", t_cparam01 },
	{ "cparam02", t_cparam02 },
	{ "regescrt", t_regescrt },
	{ "sdp01", t_sdp01 },
	{ "inv2543", t_inv2543 },
	{ "ipv6-good", t_ipv6_good },
	{ "ipv6-bad", t_ipv6_bad },
	{ "port-ambiguous", t_port_ambiguous },
	{ "port-unambiguous", t_port_unambiguous },
	{ "via-received-with-delim", t_via_received_delim },
	{ "via-received-no-delim", t_via_received_nodelim },
	{ "ipv6-in-sdp", t_ipv6_in_sdp },
	{ "mult-ip-in-header", t_mult_ip_in_header },
	{ "mult-ip-in-sdp", t_mult_ip_in_sdp },
	{ "ipv4-mapped-ipv6", t_ipv4_mapped },
	{ "ipv6-bug-abnf-3-colons", t_ipv6_3colons },
	{ "ipv6-correct-abnf-2-colons", t_ipv6_2colons },
	{ "verdicts", t_verdicts },
};
UNIT_MAIN(cases)
