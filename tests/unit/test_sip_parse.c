/* test_sip_parse.c: targeted tests of the SIP parser, value parsers, printer and sanity checks. */
#include <ctype.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sip/sip.h"
#include "unit.h"

static struct sip_msg M;
static struct sip_hdr H[SIP_MAX_HEADERS];
static struct sip_parse_err E;

static enum sip_parse_result parse(const char *text, bool datagram)
{
	return sip_msg_parse(&M, H, SIP_MAX_HEADERS, text, strlen(text), datagram, &E);
}

static const char INVITE[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
			     "Max-Forwards: 70\r\n"
			     "To: Bob <sip:bob@example.com>\r\n"
			     "From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
			     "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
			     "CSeq: 314159 INVITE\r\n"
			     "Contact: <sip:alice@pc33.example.com>\r\n"
			     "Route: <sip:proxy.example.com;lr>, <sip:next.example.net;lr>\r\n"
			     "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\"\r\n"
			     "Content-Type: application/sdp\r\n"
			     "Content-Length: 4\r\n"
			     "\r\n"
			     "v=0\n";

static bool contains(struct str hay, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= hay.l; i++)
		if (memcmp(hay.p + i, needle, n) == 0)
			return true;
	return false;
}

/* ---- message ---- */

static void t_basic(void)
{
	CHECK_INT(parse(INVITE, true), SIP_PARSE_OK);
	CHECK(M.request);
	CHECK_INT(M.mid, SIP_INVITE);
	CHECK_STR(M.ruri.user, "bob");
	CHECK_STR(M.via.host, "192.0.2.1");
	CHECK_INT(M.via.port, 5060);
	CHECK(M.via.has_rport);
	CHECK_INT(M.via.rport.l, 0);
	CHECK_STR(M.from.display, "Alice");
	CHECK_STR(M.from.tag, "1928301774");
	CHECK_STR(M.to.display, "Bob");
	CHECK_INT(M.to.tag.l, 0);
	CHECK_INT(M.cseq, 314159);
	CHECK_INT(M.max_forwards, 70);
	CHECK_INT(M.expires, -1);
	CHECK_STR(M.body, "v=0\n");
	CHECK_INT(M.len, strlen(INVITE));
	CHECK_INT(sip_sanity(&M, NULL), 0);
	CHECK(sip_msg_hdr(&M, SIP_HDR_EXPIRES) == NULL);
	CHECK(sip_msg_hdr_by_name(&M, STR("content-TYPE")) != NULL);
}

static void t_compact_and_case(void)
{
	const char *m = "OPTIONS sip:x@example.com SIP/2.0\r\n"
			"v: SIP/2.0/TCP h.example.com;branch=z9hG4bK1\r\n"
			"T: <sip:x@example.com>\r\n"
			"f: <sip:y@example.com>;tag=a\r\n"
			"I: id1\r\n"
			"cSeQ: 1 OPTIONS\r\n"
			"k: path, outbound\r\n"
			"m: *\r\n"
			"l: 0\r\n\r\n";
	CHECK_INT(parse(m, false), SIP_PARSE_OK);
	CHECK_STR(M.call_id, "id1");
	CHECK_STR(M.via.transport, "TCP");
	CHECK_INT(M.count[SIP_HDR_SUPPORTED], 1);
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, sip_msg_hdr(&M, SIP_HDR_CONTACT)->value), 0);
	CHECK(a.star);
	static const char letters[] = "imelcfsktvoru";
	for (const char *c = letters; *c; c++)
		CHECK(sip_hdr_id_from_name((struct str){ c, 1 }) != SIP_HDR_OTHER);
	CHECK_INT(sip_hdr_id_from_name(STR("x")), SIP_HDR_OTHER);
	CHECK_INT(sip_hdr_id_from_name(STR("WWW-AUTHENTICATE")), SIP_HDR_WWW_AUTHENTICATE);
	CHECK(strcmp(sip_hdr_name(SIP_HDR_CALL_ID), "Call-ID") == 0);
	/* Method names are case-sensitive. */
	CHECK_INT(sip_method_from_str(STR("invite")), SIP_METHOD_OTHER);
	CHECK_INT(sip_method_from_str(STR("PUBLISH")), SIP_PUBLISH);
	CHECK(strcmp(sip_method_name(SIP_REGISTER), "REGISTER") == 0);
}

static void t_folding(void)
{
	const char *m = "REGISTER sip:example.com SIP/2.0\r\n"
			"Via: SIP/2.0/UDP\r\n 192.0.2.9\r\n\t;branch=z9hG4bKf\r\n"
			"To: <sip:u@example.com>\r\n"
			"From: <sip:u@example.com>\r\n ;tag=77\r\n"
			"Call-ID: c\r\n"
			"CSeq: 2\r\n  REGISTER\r\n"
			"Expires: 99999999999\r\n"
			"Content-Length: 0\r\n\r\n";
	CHECK_INT(parse(m, false), SIP_PARSE_OK);
	CHECK_STR(M.via.host, "192.0.2.9");
	CHECK_STR(M.via.branch, "z9hG4bKf");
	CHECK_STR(M.from.tag, "77");
	CHECK_INT(M.cseq, 2);
	CHECK_INT(M.cseq_method, SIP_REGISTER);
	CHECK_INT(M.expires, 3600); /* malformed Expires counts as 3600 (RFC 3261 §20.19) */
	const struct sip_hdr *v = sip_msg_hdr(&M, SIP_HDR_VIA);
	CHECK(contains(v->line, "\r\n\t;branch"));
}

/* The caller's array holds the header lines: exactly as many as it has room for parse,
 * one more is "Too many headers" (the 400 a message over SIP_MAX_HEADERS gets). */
static void t_header_array(void)
{
	struct sip_hdr h[11];
	struct sip_msg m;
	struct sip_parse_err e;
	CHECK_INT(sip_msg_parse(&m, h, 11, INVITE, strlen(INVITE), true, &e), SIP_PARSE_OK);
	CHECK(m.hdr == h);
	CHECK_INT(m.hdr_cap, 11);
	CHECK_INT(m.nhdr, 11);
	CHECK_STR(m.hdr[10].line, "Content-Length: 4\r\n");
	CHECK_INT(sip_msg_parse(&m, h, 10, INVITE, strlen(INVITE), true, &e), SIP_PARSE_ERROR);
	CHECK_INT(e.code, 400);
	CHECK(strcmp(e.reason, "Too many headers") == 0);
	CHECK(m.nhdr <= 10);
	/* The slow path (a folded line) keeps to the capacity too. */
	const char *f = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
			"From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
	CHECK_INT(sip_msg_parse(&m, h, 5, f, strlen(f), true, &e), SIP_PARSE_OK);
	CHECK_INT(sip_msg_parse(&m, h, 1, f, strlen(f), true, &e), SIP_PARSE_ERROR);
	CHECK(strcmp(e.reason, "Too many headers") == 0);
	CHECK_INT(sip_msg_parse(&m, NULL, 0, f, strlen(f), true, &e), SIP_PARSE_ERROR);
	CHECK(strcmp(e.reason, "Too many headers") == 0);
}

/* One header of a message without a parse: long and compact names, folds, absence. */
static void t_peek(void)
{
	struct str v;
	CHECK(sip_msg_peek(INVITE, strlen(INVITE), SIP_HDR_TO, &v));
	CHECK_STR(v, "Bob <sip:bob@example.com>");
	CHECK(sip_msg_peek(INVITE, strlen(INVITE), SIP_HDR_CONTENT_LENGTH, &v));
	CHECK_STR(v, "4");
	CHECK(!sip_msg_peek(INVITE, strlen(INVITE), SIP_HDR_EXPIRES, &v));
	const char *r = "SIP/2.0 486 Busy Here\r\n"
			"v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
			"t:  <sip:a@b>\r\n ;tag=xy \r\n"
			"f: <sip:c@d>;tag=1\r\n"
			"\r\n"
			"To: <sip:in@body>\r\n";
	CHECK(sip_msg_peek(r, strlen(r), SIP_HDR_TO, &v));
	CHECK_STR(v, "<sip:a@b>\r\n ;tag=xy");
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, v), 0);
	CHECK_STR(a.tag, "xy");
	CHECK(!sip_msg_peek(r, strlen(r), SIP_HDR_CALL_ID, &v)); /* not after the empty line */
	/* A line that is not a header ends the search; so does a cut message. */
	const char *bad = "SIP/2.0 200 OK\r\nbad line\r\nTo: <sip:a@b>\r\n\r\n",
		   *cut = "SIP/2.0 200 OK\r\nTo: <sip:a@b>";
	CHECK(!sip_msg_peek(bad, strlen(bad), SIP_HDR_TO, &v));
	CHECK(!sip_msg_peek(cut, strlen(cut), SIP_HDR_TO, &v));
	CHECK(!sip_msg_peek("", 0, SIP_HDR_TO, &v));
}

static void t_stream(void)
{
	/* Every proper prefix is incomplete; the whole is one message; a second message
	 * behind it is left for the next call. */
	size_t n = strlen(INVITE);
	char two[2 * sizeof INVITE + 8];
	snprintf(two, sizeof two, "\r\n\r\n%s%s", INVITE, INVITE);
	for (size_t k = 0; k < n + 4; k++)
		CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, two, k, false, &E), SIP_PARSE_AGAIN);
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, two, strlen(two), false, &E), SIP_PARSE_OK);
	CHECK_INT(M.buf - two, 4);
	CHECK_INT(M.len, n);
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, two + 4 + n, n, false, &E), SIP_PARSE_OK);
	/* No Content-Length on a stream. */
	CHECK_INT(parse("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
			"To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
			false),
		  SIP_PARSE_ERROR);
	CHECK(strcmp(E.reason, "Missing Content-Length") == 0);
	CHECK(E.can_respond);
	/* Keep-alive CRLFs alone. */
	CHECK_INT(parse("\r\n\r\n", false), SIP_PARSE_AGAIN);
	CHECK_INT(parse("\r\n\r\n", true), SIP_PARSE_ERROR);
}

/* Copies text so that it ends right before an inaccessible page: any overread faults. */
static void t_overread(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(map != MAP_FAILED);
	if (map == MAP_FAILED)
		return;
	CHECK_INT(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
	size_t n = strlen(INVITE);
	for (size_t k = 0; k <= n; k++) {
		char *p = map + pg - k;
		memcpy(p, INVITE, k);
		sip_msg_parse(&M, H, SIP_MAX_HEADERS, p, k, true, &E);
		sip_msg_parse(&M, H, SIP_MAX_HEADERS, p, k, false, &E);
	}
	static const char *const values[] = { "sip:a@[::1",     "sip:a@b:",    "sip:a@b;x=", "\"abc", "<sip:a@b",
					      "SIP/2.0/UDP h;", "Digest a=\"", "sip:%4",     "a,\"b" };
	for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
		size_t l = strlen(values[v]);
		char *p = map + pg - l;
		memcpy(p, values[v], l);
		struct str s = { p, l }, it;
		struct sip_uri u;
		struct sip_addr a;
		struct sip_via via;
		struct sip_auth au;
		sip_uri_parse(&u, s);
		sip_addr_parse(&a, s);
		sip_via_parse(&via, s);
		sip_auth_parse(&au, s);
		while (sip_list_next(&s, &it))
			;
	}
	munmap(map, (size_t)pg * 2);
}

static void t_errors(void)
{
	static const struct {
		const char *msg;
		unsigned code;
		const char *reason;
	} bad[] = {
		{ "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 4294967296 INVITE\r\n\r\n",
		  400, "Bad CSeq" },
		{ "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: ten\r\n\r\n",
		  400, "Bad Max-Forwards" },
		{ "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nBroken line\r\n"
		  "To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
		  400, "Bad header line" },
		{ "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCSeq: 1 INVITE\r\n\r\n",
		  400, "Missing Call-ID" },
		{ "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x y\r\nCSeq: 1 INVITE\r\n\r\n",
		  400, "Bad Call-ID" },
		{ "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nl: 5five\r\n\r\n",
		  400, "Bad Content-Length" },
		{ "INVITE sip:a@b HTTP/1.1\r\n\r\n", 400, "Bad SIP version" },
		{ "SIP/2.0 099 Low\r\n\r\n", 400, "Bad status code" },
		{ "SIP/2.0 700 High\r\n\r\n", 400, "Bad status code" },
		{ "SIP/2.0 20 Short\r\n\r\n", 400, "Bad status code" },
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		CHECK_INT(parse(bad[k].msg, true), SIP_PARSE_ERROR);
		CHECK_INT(E.code, bad[k].code);
		if (strcmp(E.reason, bad[k].reason) != 0) {
			fprintf(stderr, "  case %zu: reason %s, expected %s\n", k, E.reason, bad[k].reason);
			unit_failures++;
		}
	}
	/* 2**32-1 is still a CSeq. */
	CHECK_INT(parse("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
			"From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 4294967295 INVITE\r\n\r\n",
			true),
		  SIP_PARSE_OK);
	CHECK_INT(M.cseq, 4294967295u);
	/* Too many headers. */
	static char many[16384];
	size_t n = (size_t)snprintf(many, sizeof many, "%s", "OPTIONS sip:a@b SIP/2.0\r\n");
	for (int k = 0; k < SIP_MAX_HEADERS + 1; k++)
		n += (size_t)snprintf(many + n, sizeof many - n, "X-%d: y\r\n", k);
	snprintf(many + n, sizeof many - n, "\r\n");
	CHECK_INT(parse(many, true), SIP_PARSE_ERROR);
	CHECK(strcmp(E.reason, "Too many headers") == 0);
}

static void t_too_large(void)
{
	static char big[SIP_MAX_MSG + 200];
	memset(big, 'a', sizeof big);
	memcpy(big, "MESSAGE sip:a@b SIP/2.0\r\n", 25);
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, big, sizeof big, true, &E), SIP_PARSE_ERROR);
	CHECK_INT(E.code, 513);
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, big, sizeof big, false, &E), SIP_PARSE_ERROR);
	CHECK_INT(E.code, 513);
	/* A stream announcing more than the limit is refused at once. */
	const char *m = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
			"From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 70000\r\n\r\nabc";
	CHECK_INT(parse(m, false), SIP_PARSE_ERROR);
	CHECK_INT(E.code, 513);
	CHECK(E.can_respond);
}

static void t_response(void)
{
	const char *m = "SIP/2.0 180 Ringing\r\n"
			"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=192.0.2.7\r\n"
			"To: <sip:b@example.com>;tag=xyz\r\n"
			"From: <sip:a@example.com>;tag=abc\r\n"
			"Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
	CHECK_INT(parse(m, true), SIP_PARSE_OK);
	CHECK(!M.request);
	CHECK_INT(M.status, 180);
	CHECK_STR(M.reason, "Ringing");
	CHECK_STR(M.via.received, "192.0.2.7");
	CHECK_STR(M.to.tag, "xyz");
	CHECK_INT(sip_sanity(&M, NULL), 0);
}

/* ---- URIs ---- */

static void t_uri(void)
{
	struct sip_uri u;
	CHECK_INT(sip_uri_parse(
			  &u,
			  STR("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.1.1.1?subject=hi&x=y")),
		  0);
	CHECK_INT(u.scheme, SIP_SCHEME_SIPS);
	CHECK_STR(u.user, "alice");
	CHECK_STR(u.password, "secret");
	CHECK_STR(u.host, "[2001:db8::1]");
	CHECK_INT(u.port, 5061);
	CHECK_STR(u.transport, "tcp");
	CHECK_STR(u.maddr, "239.1.1.1");
	CHECK(u.lr);
	CHECK_STR(u.params, ";transport=tcp;lr;maddr=239.1.1.1");
	CHECK_STR(u.headers, "?subject=hi&x=y");
	CHECK_INT(sip_uri_parse(&u, STR("SIP:example.com")), 0);
	CHECK_INT(u.scheme, SIP_SCHEME_SIP);
	CHECK_INT(u.user.l, 0);
	CHECK_INT(u.port, 0);
	CHECK_INT(sip_uri_parse(&u, STR("sip:+1-555@gw.example.com;user=phone")), 0);
	CHECK_STR(u.user_param, "phone");
	CHECK_INT(sip_uri_parse(&u, STR("tel:+1-201-555-0123;phone-context=example.com")), 0);
	CHECK_INT(u.scheme, SIP_SCHEME_TEL);
	CHECK_STR(u.user, "+1-201-555-0123");
	CHECK_STR(u.params, ";phone-context=example.com");
	CHECK_INT(sip_uri_parse(&u, STR("urn:service:sos")), 0);
	CHECK_INT(u.scheme, SIP_SCHEME_OTHER);
	static const char *const bad[] = {
		"sip:a@b:65536", "sip:a@",     "sip:@b",     "sip:a@b;",   "sip:a@b;=x", "sip:a b@c",
		"sip:%4g@b",     "sip:a@[::1", "sip:a@::1",  "sip:a@b?",   "sip",        ":x",
		"1sip:a@b",      "sip:a@b:5x", "sip:a@b;x=", "sip:a@[zz]",
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		if (sip_uri_parse(&u, str_from_cstr(bad[k])) == 0) {
			fprintf(stderr, "  accepted %s\n", bad[k]);
			unit_failures++;
		}
	}
	struct str v;
	CHECK(sip_param_get(STR(";a=1; B = 2 ;c"), STR("b"), &v) && str_eq(v, STR("2")));
	CHECK(sip_param_get(STR(";a=1;b=2;c"), STR("C"), &v) && v.l == 0);
	CHECK(!sip_param_get(STR(";a=1"), STR("b"), &v));
}

static void t_uri_equal(void)
{
	static const struct {
		const char *a, *b;
		bool eq;
	} pairs[] = {
		{ "sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp", true },
		{ "sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5", true },
		{ "sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5", true },
		{ "sip:alice@atlanta.com", "sip:ALICE@atlanta.com", false },
		{ "sip:bob@biloxi.com", "sip:bob@biloxi.com:5060", false },
		{ "sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp", false },
		{ "sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off", false },
		{ "sip:a@b", "sips:a@b", false },
	};
	for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
		struct sip_uri a, b;
		CHECK_INT(sip_uri_parse(&a, str_from_cstr(pairs[k].a)), 0);
		CHECK_INT(sip_uri_parse(&b, str_from_cstr(pairs[k].b)), 0);
		if (sip_uri_equal(&a, &b) != pairs[k].eq || sip_uri_equal(&b, &a) != pairs[k].eq) {
			fprintf(stderr, "  %s vs %s\n", pairs[k].a, pairs[k].b);
			unit_failures++;
		}
	}
}

/* ---- name-addr, Via, auth, lists ---- */

static void t_addr(void)
{
	struct sip_addr a;
	CHECK_INT(sip_addr_parse(&a, STR("\"A \\\"quoted\\\" name\" <sip:a@b;lr>;tag=x;expires=60")), 0);
	CHECK_STR(a.display, "A \\\"quoted\\\" name");
	CHECK_STR(a.uri_str, "sip:a@b;lr");
	CHECK(a.uri.lr);
	CHECK_STR(a.tag, "x");
	CHECK_STR(a.params, ";tag=x;expires=60");
	CHECK(a.bracketed);
	CHECK_INT(sip_addr_parse(&a, STR("sip:a@b;tag=x")), 0);
	CHECK(!a.bracketed);
	CHECK_STR(a.uri_str, "sip:a@b");
	CHECK_STR(a.tag, "x");
	CHECK_INT(sip_addr_parse(&a, STR("Some Body<sip:a@b>")), 0);
	CHECK_STR(a.display, "Some Body");
	CHECK_INT(sip_addr_parse(&a, STR("<tel:+123>")), 0);
	CHECK_INT(a.uri.scheme, SIP_SCHEME_TEL);
	static const char *const bad[] = { "\"open <sip:a@b>", "<sip:a@b",    "sip:a@b;tag",    "sip:a@b;tag=",
					   "A, B <sip:a@b>",   "sip:a@b?x=y", "<sip:a@b> junk", "" };
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		if (sip_addr_parse(&a, str_from_cstr(bad[k])) == 0) {
			fprintf(stderr, "  accepted %s\n", bad[k]);
			unit_failures++;
		}
	}
}

static void t_via(void)
{
	struct sip_via v;
	CHECK_INT(
		sip_via_parse(
			&v,
			STR("SIP/2.0/TLS "
			    "[2001:db8::9]:5061;branch=z9hG4bKa;rport=1234;received=192.0.2.4;maddr=224.2.0.1;ttl=1")),
		0);
	CHECK_STR(v.proto, "SIP/2.0");
	CHECK_STR(v.version, "2.0");
	CHECK_STR(v.transport, "TLS");
	CHECK_STR(v.host, "[2001:db8::9]");
	CHECK_INT(v.port, 5061);
	CHECK(v.has_rport);
	CHECK_STR(v.rport, "1234");
	CHECK_STR(v.received, "192.0.2.4");
	CHECK_STR(v.maddr, "224.2.0.1");
	CHECK_INT(sip_via_parse(&v, STR("SIP / 2.0 / UDP host.example.com : 5070 ; branch = z9hG4bKb")), 0);
	CHECK_STR(v.host, "host.example.com");
	CHECK_INT(v.port, 5070);
	CHECK_STR(v.branch, "z9hG4bKb");
	static const char *const bad[] = { "SIP/2.0 h",           "SIP/2.0/UDP",           "SIP/2.0/UDP h;;",
					   "SIP/2.0/UDP h:99999", "SIP/2.0/UDP h;branch=", "SIP/2.0/UDP h x" };
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		if (sip_via_parse(&v, str_from_cstr(bad[k])) == 0) {
			fprintf(stderr, "  accepted %s\n", bad[k]);
			unit_failures++;
		}
	}
}

static void t_auth(void)
{
	struct sip_auth a;
	CHECK_INT(sip_auth_parse(&a, STR("Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b\",\r\n"
					 " uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\",\r\n"
					 " response=\"6629fae4\", opaque=\"5ccc069c\", algorithm=SHA-256")),
		  0);
	CHECK_STR(a.scheme, "Digest");
	CHECK_STR(a.username, "bob");
	CHECK_STR(a.realm, "biloxi.com");
	CHECK_STR(a.nonce, "dcd98b");
	CHECK_STR(a.uri, "sip:bob@biloxi.com");
	CHECK_STR(a.qop, "auth");
	CHECK_STR(a.nc, "00000001");
	CHECK_STR(a.cnonce, "0a4f113b");
	CHECK_STR(a.response, "6629fae4");
	CHECK_STR(a.opaque, "5ccc069c");
	CHECK_STR(a.algorithm, "SHA-256");
	CHECK_INT(sip_auth_parse(&a, STR("Digest realm=\"x\", qop=\"auth,auth-int\", nonce=\"n\", stale=TRUE")), 0);
	CHECK_STR(a.qop, "auth,auth-int");
	CHECK(a.stale);
	CHECK_INT(sip_auth_parse(&a, STR("Basic dXNlcjpwYXNz==")), 0);
	CHECK_STR(a.scheme, "Basic");
	CHECK(sip_auth_parse(&a, STR("Digest username=\"bob")) != 0);
	CHECK(sip_auth_parse(&a, STR("Digest username")) != 0);
	CHECK(sip_auth_parse(&a, STR("")) != 0);
}

static void t_list(void)
{
	struct str rest = STR(" \"a, b\" <sip:x@y;p=1,2>;q=1 ,, <sip:z@w> ,"), item;
	CHECK(sip_list_next(&rest, &item));
	CHECK_STR(item, "\"a, b\" <sip:x@y;p=1,2>;q=1");
	CHECK(sip_list_next(&rest, &item));
	CHECK_STR(item, "<sip:z@w>");
	CHECK(!sip_list_next(&rest, &item));
	rest = STR("INVITE,ACK,\r\n BYE");
	unsigned n = 0;
	while (sip_list_next(&rest, &item))
		n++;
	CHECK_INT(n, 3);
}

/* ---- printer ---- */

static void t_print_response(void)
{
	CHECK_INT(parse(INVITE, true), SIP_PARSE_OK);
	char buf[2048];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof buf);
	struct sip_resp_opts ro = { .to_tag = STR("t1"),
				    .via_received = STR("198.51.100.1"),
				    .via_rport = STR("4321"),
				    .server = STR("Parley") };
	CHECK_INT(sip_print_response(&o, &M, 486, NULL, &ro), 0);
	struct str out = { buf, o.len };
	CHECK_STR(out, "SIP/2.0 486 Busy Here\r\n"
		       "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;received=198.51.100.1;rport=4321\r\n"
		       "From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
		       "To: Bob <sip:bob@example.com>;tag=t1\r\n"
		       "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
		       "CSeq: 314159 INVITE\r\n"
		       "Server: Parley\r\n"
		       "Content-Length: 0\r\n\r\n");
	struct sip_msg r;
	struct sip_hdr rh[SIP_MAX_HEADERS];
	CHECK_INT(sip_msg_parse(&r, rh, SIP_MAX_HEADERS, buf, o.len, false, &E), SIP_PARSE_OK);
	CHECK_INT(r.status, 486);
	CHECK_STR(r.via.rport, "4321");
	/* Overflow is reported, never written past the end. */
	sip_out_init(&o, buf, 40);
	CHECK_INT(sip_print_response(&o, &M, 200, "OK", &ro), -1);
	CHECK(o.overflow);
	CHECK(o.len <= 40);
}

static void t_print_fwd(void)
{
	CHECK_INT(parse(INVITE, true), SIP_PARSE_OK);
	char buf[2048];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof buf);
	static const enum sip_hdr_id drop[] = { SIP_HDR_PROXY_AUTHORIZATION };
	struct sip_fwd_opts fo = {
		.new_ruri = STR("sip:bob@192.0.2.50:5062"),
		.via = STR("SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKp1"),
		.top_via_received = STR("198.51.100.1"),
		.drop_first_route = true,
		.record_route = STR("<sip:203.0.113.1;lr>"),
		.extra = STR("X-Test: 1\r\n"),
		.drop = drop,
		.ndrop = 1,
	};
	CHECK_INT(sip_print_request_fwd(&o, &M, &fo), 0);
	struct str out = { buf, o.len };
	CHECK_STR(out, "INVITE sip:bob@192.0.2.50:5062 SIP/2.0\r\n"
		       "Via: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKp1\r\n"
		       "Record-Route: <sip:203.0.113.1;lr>\r\n"
		       "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=198.51.100.1\r\n"
		       "Max-Forwards: 69\r\n"
		       "To: Bob <sip:bob@example.com>\r\n"
		       "From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
		       "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
		       "CSeq: 314159 INVITE\r\n"
		       "Contact: <sip:alice@pc33.example.com>\r\n"
		       "Route: <sip:next.example.net;lr>\r\n"
		       "Content-Type: application/sdp\r\n"
		       "X-Test: 1\r\n"
		       "Content-Length: 4\r\n\r\n"
		       "v=0\n");
	struct sip_msg r;
	struct sip_hdr rh[SIP_MAX_HEADERS];
	CHECK_INT(sip_msg_parse(&r, rh, SIP_MAX_HEADERS, buf, o.len, false, &E), SIP_PARSE_OK);
	CHECK_INT(r.max_forwards, 69);

	/* No Max-Forwards: 70 is added; a single Route is removed whole. */
	const char *m = "BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nt: <sip:a@b>;tag=2\r\n"
			"f: <sip:c@d>;tag=1\r\ni: x\r\nCSeq: 2 BYE\r\nRoute: <sip:me;lr>\r\n\r\n";
	CHECK_INT(parse(m, true), SIP_PARSE_OK);
	sip_out_init(&o, buf, sizeof buf);
	struct sip_fwd_opts f2 = { .via = STR("SIP/2.0/UDP p;branch=z9hG4bK2"), .drop_first_route = true };
	CHECK_INT(sip_print_request_fwd(&o, &M, &f2), 0);
	out = (struct str){ buf, o.len };
	CHECK(contains(out, "Max-Forwards: 70\r\n"));
	CHECK(!contains(out, "Route"));
	CHECK(contains(out, "Content-Length: 0\r\n\r\n"));
}

static void t_out(void)
{
	char buf[16];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof buf);
	sip_out_u64(&o, 0);
	sip_out_cstr(&o, "-");
	sip_out_u64(&o, 18446744073709551615u);
	CHECK(o.overflow);
	sip_out_init(&o, buf, sizeof buf);
	sip_out_fmt(&o, "%s=%d", "ab", 42);
	CHECK_STR(((struct str){ buf, o.len }), "ab=42");
	sip_out_fmt(&o, "%s", "0123456789abcdef");
	CHECK(o.overflow);
	CHECK(strcmp(sip_reason(404), "Not Found") == 0);
	CHECK(strcmp(sip_reason(483), "Too Many Hops") == 0);
	CHECK(strcmp(sip_reason(299), "Unknown") == 0);
}

/* ---- sanity ---- */

static void t_sanity(void)
{
	static const struct {
		const char *msg;
		unsigned code;
	} cases[] = {
		{ "OPTIONS sip:a@b SIP/2.1\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
		  505 },
		{ "OPTIONS sip:a@b sip/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
		  0 },
		{ "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCall-ID: y\r\nCSeq: 1 OPTIONS\r\n\r\n",
		  400 },
		{ "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
		  400 },
		{ "FOO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
		  501 },
		{ "FOO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 FOO\r\n\r\n",
		  0 },
		{ "OPTIONS mailto:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
		  416 },
		{ "INVITE tel:+1555 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <tel:+1555>\r\n"
		  "From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
		  0 },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		CHECK_INT(parse(cases[k].msg, true), SIP_PARSE_OK);
		const char *why = NULL;
		unsigned got = sip_sanity(&M, &why);
		if (got != cases[k].code) {
			fprintf(stderr, "  case %zu: %u (%s), expected %u\n", k, got, why, cases[k].code);
			unit_failures++;
		}
		CHECK(why != NULL);
	}
}

/* Header names map to ids in any letter case and only when the whole name matches; the
 * message parser leaves nothing of an earlier, longer parse behind. */
static void t_ids_and_reuse(void)
{
	char b[40], l[40];
	for (int id = 1; id < SIP_HDR_COUNT; id++) {
		const char *n = sip_hdr_name((enum sip_hdr_id)id);
		size_t len = strlen(n);
		CHECK(len < sizeof b - 1);
		for (size_t k = 0; k < len; k++) {
			b[k] = (char)toupper((unsigned char)n[k]);
			l[k] = (char)((k & 1) ? toupper((unsigned char)n[k]) : tolower((unsigned char)n[k]));
		}
		CHECK_INT(sip_hdr_id_from_name((struct str){ n, len }), id);
		CHECK_INT(sip_hdr_id_from_name((struct str){ b, len }), id);
		CHECK_INT(sip_hdr_id_from_name((struct str){ l, len }), id);
		if (len > 2) /* "T" is the compact To */
			CHECK_INT(sip_hdr_id_from_name((struct str){ b, len - 1 }), SIP_HDR_OTHER);
		b[len] = 's';
		CHECK_INT(sip_hdr_id_from_name((struct str){ b, len + 1 }), SIP_HDR_OTHER);
		/* Only letters fold: a '-' does not match CR (0x0d | 0x20 == '-'). */
		const char *dash = strchr(n, '-');
		if (dash) {
			memcpy(l, n, len);
			l[dash - n] = '\r';
			CHECK_INT(sip_hdr_id_from_name((struct str){ l, len }), SIP_HDR_OTHER);
		}
	}
	CHECK_INT(sip_hdr_id_from_name(STR("")), SIP_HDR_OTHER);
	CHECK_INT(sip_hdr_id_from_name(STR("Cal@-ID")), SIP_HDR_OTHER);
	CHECK_INT(sip_hdr_id_from_name(STR("V")), SIP_HDR_VIA);
	CHECK_INT(sip_hdr_id_from_name(STR("[")), SIP_HDR_OTHER);
	CHECK_INT(sip_method_from_str(STR("REGISTERS")), SIP_METHOD_OTHER);
	CHECK_INT(sip_method_from_str(STR("INFO")), SIP_INFO);
	CHECK_INT(sip_method_from_str(STR("")), SIP_METHOD_OTHER);

	CHECK_INT(parse(INVITE, true), SIP_PARSE_OK);
	CHECK(M.nhdr > 5);
	const char *resp = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n"
			   "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
	CHECK_INT(parse(resp, true), SIP_PARSE_OK);
	CHECK_INT(M.nhdr, 5);
	CHECK_INT(M.count[SIP_HDR_CONTENT_TYPE], 0);
	CHECK(sip_msg_hdr(&M, SIP_HDR_CONTENT_TYPE) == NULL);
	CHECK(sip_msg_hdr_next(&M, sip_msg_hdr(&M, SIP_HDR_VIA)) == NULL);
	CHECK_INT(M.method.l, 0);
	CHECK(M.ruri.host.p == NULL && M.ruri_str.p == NULL);
	CHECK(M.to.tag.p == NULL && M.body.l == 0);
	CHECK_INT(M.max_forwards, -1);
	CHECK_INT(M.expires, -1);
	/* A message without From/To leaves them empty, not as the last parse had them. */
	CHECK_INT(parse(INVITE, true), SIP_PARSE_OK);
	CHECK_INT(parse("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n", true), SIP_PARSE_ERROR);
	CHECK(M.from.raw.p == NULL && M.to.uri.host.p == NULL && M.call_id.p == NULL);

	/* The status line is written without the formatter: three digits, the reason. */
	static char out[512];
	struct sip_out o;
	CHECK_INT(parse(INVITE, true), SIP_PARSE_OK);
	sip_out_init(&o, out, sizeof out);
	CHECK_INT(sip_print_response(&o, &M, 1042, "Odd", NULL), 0);
	CHECK(o.len > 20 && memcmp(out, "SIP/2.0 042 Odd\r\n", 17) == 0);
	sip_out_init(&o, out, sizeof out);
	CHECK_INT(sip_print_response(&o, &M, 404, NULL, NULL), 0);
	CHECK(memcmp(out, "SIP/2.0 404 Not Found\r\n", 23) == 0);
	sip_out_init(&o, out, 10);
	CHECK_INT(sip_print_response(&o, &M, 200, NULL, NULL), -1);
}

/* ---- the fast paths and the general ones read the same ---- */

/* Every known header name in three cases, at every distance from the end of the buffer
 * (the name lookup reads whole words while they fit), and near misses that must fall to
 * the general reading. */
static void t_header_names(void)
{
	static char msg[512];
	const char *head = "OPTIONS sip:a@b SIP/2.0\r\n";
	const char *tail = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\n"
			   "Call-ID: x\r\nCSeq: 1 OPTIONS\r\n";
	char name[40];
	for (int id = 1; id < SIP_HDR_COUNT; id++) {
		const char *n = sip_hdr_name((enum sip_hdr_id)id);
		size_t len = strlen(n);
		for (int c = 0; c < 3; c++) {
			for (size_t k = 0; k < len; k++)
				name[k] = (char)(c == 0   ? n[k]
						 : c == 1 ? toupper((unsigned char)n[k])
							  : tolower((unsigned char)n[k]));
			name[len] = '\0';
			/* The header last, then cut right after its value: no word past the name. */
			int l = snprintf(msg, sizeof msg, "%s%s%s: 0\r\n", head, tail, name);
			CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E), SIP_PARSE_OK);
			CHECK_INT(M.hdr[M.nhdr - 1].id, id);
			CHECK_INT(M.hdr[M.nhdr - 1].name.l, len);
			CHECK_STR(M.hdr[M.nhdr - 1].value, "0");
			for (size_t cut = (size_t)l - 3; cut < (size_t)l; cut++) {
				sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, cut, true, &E);
				CHECK_INT(M.hdr[M.nhdr - 1].id, id);
			}
			/* One letter more or less, a space before the colon, a CR for a '-'. */
			l = snprintf(msg, sizeof msg, "%s%s%sx: 0\r\n\r\n", head, tail, name);
			CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E), SIP_PARSE_OK);
			CHECK_INT(M.hdr[M.nhdr - 1].id, SIP_HDR_OTHER);
			if (len > 2) { /* "T" is the compact To */
				l = snprintf(msg, sizeof msg, "%s%s%.*s: 0\r\n\r\n", head, tail, (int)len - 1, name);
				CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E),
					  SIP_PARSE_OK);
				CHECK((int)M.hdr[M.nhdr - 1].id != id);
			}
			l = snprintf(msg, sizeof msg, "%s%s%s : 0\r\n\r\n", head, tail, name);
			CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E), SIP_PARSE_OK);
			CHECK_INT(M.hdr[M.nhdr - 1].id, id);
			CHECK_INT(M.hdr[M.nhdr - 1].name.l, len);
			const char *dash = strchr(name, '-');
			if (dash) {
				l = snprintf(msg, sizeof msg, "%s%s%s: 0\r\n\r\n", head, tail, name);
				msg[strlen(head) + strlen(tail) + (size_t)(dash - name)] = '\r';
				CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E),
					  SIP_PARSE_ERROR);
				CHECK(strcmp(E.reason, "Bad header line") == 0);
			}
		}
	}
	/* A NUL in a name is no known name, nor a token. */
	static const char nul[] = "OPTIONS sip:a@b SIP/2.0\r\nVia\0: SIP/2.0/UDP h\r\n\r\n";
	CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, nul, sizeof nul - 1, true, &E), SIP_PARSE_ERROR);
	CHECK(strcmp(E.reason, "Bad header line") == 0);
	/* A colon with no name. */
	CHECK_INT(parse("OPTIONS sip:a@b SIP/2.0\r\n: x\r\nVia: SIP/2.0/UDP h\r\n\r\n", true), SIP_PARSE_ERROR);
	CHECK(strcmp(E.reason, "Bad header line") == 0);
}

/* Start lines in the common shape and next to it. */
static void t_start_lines(void)
{
	const char *hdrs = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\n"
			   "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
	static char msg[512];
	static const struct {
		const char *line;
		enum sip_parse_result r;
		unsigned status;
		const char *reason;
	} st[] = {
		{ "SIP/2.0 200 OK", SIP_PARSE_OK, 200, "OK" },
		{ "SIP/2.0 200", SIP_PARSE_OK, 200, "" },
		{ "SIP/2.0 200 ", SIP_PARSE_OK, 200, "" },
		{ "SIP/2.0  200 Two spaces", SIP_PARSE_OK, 200, "Two spaces" },
		{ "sip/2.0 180 Ringing", SIP_PARSE_OK, 180, "Ringing" },
		{ "SIP/2.0 200\tTab", SIP_PARSE_OK, 200, "Tab" },
		{ "SIP/2.0 099 Low", SIP_PARSE_ERROR, 0, NULL },
		{ "SIP/2.0 2000 Long", SIP_PARSE_ERROR, 0, NULL },
		{ "SIP/2.0 20x Bad", SIP_PARSE_ERROR, 0, NULL },
	};
	for (size_t k = 0; k < sizeof st / sizeof st[0]; k++) {
		int l = snprintf(msg, sizeof msg, "%s\r\n%s", st[k].line, hdrs);
		CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E), st[k].r);
		if (st[k].r == SIP_PARSE_OK) {
			CHECK(!M.request);
			CHECK_INT(M.status, st[k].status);
			CHECK_STR(M.reason, st[k].reason);
		}
	}
	static const struct {
		const char *line;
		enum sip_parse_result r;
		const char *method, *ruri;
	} rq[] = {
		{ "INVITE sip:a@b SIP/2.0", SIP_PARSE_OK, "INVITE", "sip:a@b" },
		{ "INVITE  sip:a@b  SIP/2.0 ", SIP_PARSE_OK, "INVITE", "sip:a@b" },
		{ "INVITE sip:a@b sip/2.0", SIP_PARSE_OK, "INVITE", "sip:a@b" },
		{ "INVITE sip:a@b\tSIP/2.0", SIP_PARSE_OK, "INVITE", "sip:a@b" },
		{ "INVITE tel:+1234 SIP/2.0", SIP_PARSE_OK, "INVITE", "tel:+1234" },
		{ "INVITE urn:x:y SIP/2.0", SIP_PARSE_OK, "INVITE", "urn:x:y" },
		{ "INVITE sip:a@b c SIP/2.0", SIP_PARSE_ERROR, "INVITE", NULL },
		{ "INVITE sip:a@[::1 SIP/2.0", SIP_PARSE_ERROR, "INVITE", NULL },
		{ "INV@TE sip:a@b SIP/2.0", SIP_PARSE_ERROR, NULL, NULL },
		{ "INVITE SIP/2.0", SIP_PARSE_ERROR, NULL, NULL },
	};
	for (size_t k = 0; k < sizeof rq / sizeof rq[0]; k++) {
		int l = snprintf(msg, sizeof msg, "%s\r\n%s", rq[k].line, hdrs);
		CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E), rq[k].r);
		CHECK(M.request);
		if (rq[k].method)
			CHECK_STR(M.method, rq[k].method);
		if (rq[k].ruri) {
			CHECK_STR(M.ruri_str, rq[k].ruri);
			CHECK_STR(M.ruri.raw, rq[k].ruri);
		}
	}
	/* A Request-URI the quick reading could not take is parsed again from zero. */
	CHECK_INT(parse("INVITE sip:a@b;x SIP/2.0 SIP/2.0\r\n\r\n", true), SIP_PARSE_ERROR);
	CHECK(strcmp(E.reason, "Bad request line") == 0);
	CHECK_INT(M.ruri.host.l, 0);
}

/* Searches for bytes must not be fooled by what precedes the place they start from. */
static void t_lists_and_quotes(void)
{
	static const struct {
		const char *in;
		const char *items[4];
	} cases[] = {
		{ ",,,,,,,,,-x,y", { "-x", "y" } },
		{ "a,-,b,-", { "a", "-", "b", "-" } },
		{ "\"q,#\"!,\"#\",x", { "\"q,#\"!", "\"#\"", "x" } },
		{ "<sip:a@b;x=,>=,<->;y=1,z", { "<sip:a@b;x=,>=", "<->;y=1", "z" } },
		{ "0123456789abcdef,-0123456789abcdef", { "0123456789abcdef", "-0123456789abcdef" } },
		{ "\"\\\"\\\\\",\"\\,\" , #", { "\"\\\"\\\\\"", "\"\\,\"", "#" } },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct str rest = str_from_cstr(cases[k].in), item;
		size_t n = 0;
		while (sip_list_next(&rest, &item)) {
			if (n < 4 && cases[k].items[n])
				CHECK_STR(item, cases[k].items[n]);
			n++;
		}
		size_t want = 0;
		while (want < 4 && cases[k].items[want])
			want++;
		CHECK_INT(n, want);
	}
	struct sip_auth a;
	CHECK_INT(sip_auth_parse(&a,
				 STR("Digest realm=\"a\\\"b\",nonce = \"0123456789abcdef0123\" ,uri=\r\n \"x\",nc=1")),
		  0);
	CHECK_STR(a.realm, "a\\\"b");
	CHECK_STR(a.nonce, "0123456789abcdef0123");
	CHECK_STR(a.uri, "x");
	CHECK_STR(a.nc, "1");
	CHECK(sip_auth_parse(&a, STR("Digest realm=\"0123456789abcdef\\\"")) != 0);
	CHECK(sip_auth_parse(&a, STR("Digest realm=\"a\" nonce=\"b\"")) != 0);
	CHECK(sip_auth_parse(&a, STR("Digest realm=a b")) != 0);
}

/* The top Via read from a whole line, from a list, and what a failed one leaves. */
static void t_via_lines(void)
{
	const char *rest = "To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
	static char msg[512];
	static const struct {
		const char *via;
		bool ok;
		const char *host, *branch;
	} v[] = {
		{ "SIP/2.0/UDP h1;branch=z9hG4bK1", true, "h1", "z9hG4bK1" },
		{ "SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2;branch=z9hG4bK2", true, "h1", "z9hG4bK1" },
		{ "SIP/2.0/UDP h1;x=\"a,b\";branch=z9hG4bK1 ,SIP/2.0/TCP h2", true, "h1", "z9hG4bK1" },
		{ ", SIP/2.0/UDP h3:5080;branch=z9hG4bK3", true, "h3", "z9hG4bK3" },
		{ "SIP/2.0/UDP h4 : 5090 ;branch=z9hG4bK4", true, "h4", "z9hG4bK4" },
		{ "SIP/2.0/UDP [::1]:5060;branch=z9hG4bK5", true, "[::1]", "z9hG4bK5" },
		{ "SIP/2.0/UDP host :x", false, "", "" },
		{ "SIP/2.0/UDP h6;branch=z9hG4bK6;bad=\"", false, "h6", "z9hG4bK6" },
	};
	for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
		int l = snprintf(msg, sizeof msg, "INVITE sip:a@b SIP/2.0\r\nVia: %s\r\n%s", v[k].via, rest);
		CHECK_INT(sip_msg_parse(&M, H, SIP_MAX_HEADERS, msg, (size_t)l, true, &E),
			  v[k].ok ? SIP_PARSE_OK : SIP_PARSE_ERROR);
		CHECK_STR(M.via.host, v[k].host);
		CHECK_STR(M.via.branch, v[k].branch);
		if (!v[k].ok)
			CHECK(strcmp(E.reason, "Bad Via") == 0 && !E.can_respond);
	}
}

/* URI parts and their escapes, read in one pass. */
static void t_uri_parts(void)
{
	static const struct {
		const char *uri;
		int ret;
		const char *user, *password, *host, *params, *headers;
	} u[] = {
		{ "sip:%41lice@b", 0, "%41lice", "", "b", "", "" },
		{ "SIP:a:p%41ss@b:5060;X%41=1;lr?h=v", 0, "a", "p%41ss", "b", ";X%41=1;lr", "?h=v" },
		{ "sip:a@b;x=%4", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a%4@b", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a%4:x@b", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a:%4@b", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b;x=1=2", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b;", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b;x;", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b;x?", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b x", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b\"", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:@b", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a@b@c", -1, NULL, NULL, NULL, NULL, NULL },
		{ "sip:a;b?c@d", 0, "a;b?c", "", "d", "", "" },
		{ "sip:127.0.0.1:5461;lr", 0, "", "", "127.0.0.1", ";lr", "" },
		{ "sip:[::1]:5060", 0, "", "", "[::1]", "", "" },
	};
	struct sip_uri x;
	for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
		int r = sip_uri_parse(&x, str_from_cstr(u[k].uri));
		if (r != u[k].ret) {
			fprintf(stderr, "  %s: %d, expected %d\n", u[k].uri, r, u[k].ret);
			unit_failures++;
			continue;
		}
		if (r != 0)
			continue;
		CHECK_STR(x.user, u[k].user);
		CHECK_STR(x.password, u[k].password);
		CHECK_STR(x.host, u[k].host);
		CHECK_STR(x.params, u[k].params);
		CHECK_STR(x.headers, u[k].headers);
	}
	CHECK_INT(sip_uri_parse(&x, STR("sip:b;lr;transport=TCP;maddr=m;user=phone;lr")), 0);
	CHECK(x.lr);
	CHECK_STR(x.transport, "TCP");
	CHECK_STR(x.maddr, "m");
	CHECK_STR(x.user_param, "phone");
}

static const struct unit_case cases[] = {
	{ "basic", t_basic },
	{ "compact_and_case", t_compact_and_case },
	{ "folding", t_folding },
	{ "header_array", t_header_array },
	{ "peek", t_peek },
	{ "stream", t_stream },
	{ "overread", t_overread },
	{ "errors", t_errors },
	{ "too_large", t_too_large },
	{ "response", t_response },
	{ "uri", t_uri },
	{ "uri_equal", t_uri_equal },
	{ "addr", t_addr },
	{ "via", t_via },
	{ "auth", t_auth },
	{ "list", t_list },
	{ "print_response", t_print_response },
	{ "print_fwd", t_print_fwd },
	{ "out", t_out },
	{ "sanity", t_sanity },
	{ "ids_and_reuse", t_ids_and_reuse },
	{ "header_names", t_header_names },
	{ "start_lines", t_start_lines },
	{ "lists_and_quotes", t_lists_and_quotes },
	{ "via_lines", t_via_lines },
	{ "uri_parts", t_uri_parts },
};
UNIT_MAIN(cases)
