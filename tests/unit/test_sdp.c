/* test_sdp.c: tests of SDP inspection (sdp_parse, sdp_is_webrtc, sip_msg_has_sdp) and sip_print_rebody. */
#include <stdlib.h>

#include "sip/sip.h"
#include "unit.h"

static struct sdp S;
static const char *WHY;

static int parse_sdp(const char *text)
{
	WHY = NULL;
	return sdp_parse(&S, str_from_cstr(text), &WHY);
}

/* Checks that text is refused with the phrase why. */
static void refused(const char *text, const char *why, int line)
{
	int r = parse_sdp(text);
	if (r != -1 || !WHY || strcmp(WHY, why) != 0) {
		fprintf(stderr, "%s:%d: sdp_parse == %d (%s), expected -1 (%s)\n", __FILE__, line, r,
			WHY ? WHY : "no reason", why);
		unit_failures++;
	}
}
#define REFUSED(text, why) refused(text, why, __LINE__)

/* An offer as Chrome makes it through JsSIP (trimmed to audio, candidates kept). */
static const char CHROME[] =
	"v=0\r\n"
	"o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
	"s=-\r\n"
	"t=0 0\r\n"
	"a=group:BUNDLE 0\r\n"
	"a=extmap-allow-mixed\r\n"
	"a=msid-semantic: WMS 3a5f0b4e-9b1d-4c3e-8d0a-2f7e6c1b9a55\r\n"
	"m=audio 52114 UDP/TLS/RTP/SAVPF 111 0 8\r\n"
	"c=IN IP4 192.0.2.44\r\n"
	"a=rtcp:9 IN IP4 0.0.0.0\r\n"
	"a=candidate:1467250027 1 udp 2122260223 192.0.2.44 52114 typ host generation 0 "
	"network-id 1\r\n"
	"a=candidate:435653019 1 tcp 1518280447 192.0.2.44 9 typ host tcptype active generation 0 "
	"network-id 1\r\n"
	"a=candidate:842163049 1 udp 1686052607 203.0.113.9 52114 typ srflx raddr 192.0.2.44 rport "
	"52114 generation 0 network-id 1\r\n"
	"a=ice-ufrag:Xq3z\r\n"
	"a=ice-pwd:7Vh1w9m2Qy0Hn4bKcLrT8sUe\r\n"
	"a=ice-options:trickle\r\n"
	"a=fingerprint:sha-256 "
	"5B:0B:5A:7E:1C:93:3D:41:2A:66:0E:91:BB:4C:7F:3A:9D:E2:10:6C:58:AF:03:77:C1:29:8E:44:D5:"
	"6B:F0:1A\r\n"
	"a=setup:actpass\r\n"
	"a=mid:0\r\n"
	"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
	"a=sendrecv\r\n"
	"a=msid:3a5f0b4e-9b1d-4c3e-8d0a-2f7e6c1b9a55 8b0c7f2e-61d4-4a7b-9e3c-5d2a1f0e6b77\r\n"
	"a=rtcp-mux\r\n"
	"a=rtpmap:111 opus/48000/2\r\n"
	"a=rtcp-fb:111 transport-cc\r\n"
	"a=fmtp:111 minptime=10;useinbandfec=1\r\n"
	"a=rtpmap:0 PCMU/8000\r\n"
	"a=rtpmap:8 PCMA/8000\r\n"
	"a=ssrc:1001211418 cname:Yb2m1Jp0Qw8Vt3Xs\r\n";

/* What baresip offers by default, with bare LF line ends as some stacks write them. */
static const char BARESIP[] = "v=0\n"
			      "o=- 1418206718 1702545962 IN IP4 198.51.100.7\n"
			      "s=-\n"
			      "c=IN IP4 198.51.100.7\n"
			      "t=0 0\n"
			      "m=audio 10002 RTP/AVP 0 8 101\n"
			      "b=AS:64\n"
			      "a=rtpmap:0 PCMU/8000\n"
			      "a=rtpmap:8 PCMA/8000\n"
			      "a=rtpmap:101 telephone-event/8000\n"
			      "a=fmtp:101 0-15\n"
			      "a=sendrecv\n"
			      "a=label:1\n"
			      "a=ssrc:2412336152 cname:sip:alice@example.com\n"
			      "a=rtcp-rsize\n";

static void t_webrtc_offer(void)
{
	CHECK_INT(parse_sdp(CHROME), 0);
	CHECK_STR(S.origin_addr, "127.0.0.1");
	CHECK_INT(S.addr.l, 0);
	CHECK_INT(S.nmedia, 1);
	CHECK_STR(S.m[0].type, "audio");
	CHECK_INT(S.m[0].port, 52114);
	CHECK_STR(S.m[0].proto, "UDP/TLS/RTP/SAVPF");
	CHECK_STR(S.m[0].addr, "192.0.2.44");
	CHECK(S.m[0].ice);
	CHECK(S.m[0].dtls);
	CHECK_INT(S.m[0].dir, SDP_SENDRECV);
	CHECK(sdp_is_webrtc(&S));
}

static void t_plain_offer(void)
{
	CHECK_INT(parse_sdp(BARESIP), 0);
	CHECK_STR(S.origin_addr, "198.51.100.7");
	CHECK_STR(S.addr, "198.51.100.7");
	CHECK_INT(S.nmedia, 1);
	CHECK_STR(S.m[0].type, "audio");
	CHECK_INT(S.m[0].port, 10002);
	CHECK_STR(S.m[0].proto, "RTP/AVP");
	CHECK_STR(S.m[0].addr, "198.51.100.7");
	CHECK(!S.m[0].ice);
	CHECK(!S.m[0].dtls);
	CHECK_INT(S.m[0].dir, SDP_SENDRECV);
	CHECK(!sdp_is_webrtc(&S));
}

/* SAVPF alone (RFC 5124 with SDES keys) is not WebRTC: no ICE to terminate. ICE at
 * session level counts for every m= section. */
static void t_webrtc_rules(void)
{
	CHECK_INT(parse_sdp("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/SAVPF 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"),
		  0);
	CHECK(!S.m[0].ice);
	CHECK(!sdp_is_webrtc(&S));
	CHECK_INT(parse_sdp("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "a=ice-ufrag:abcd\r\na=fingerprint:sha-256 AA:BB\r\n"
			    "m=audio 4000 RTP/AVP 0\r\nm=video 4002 UDP/TLS/RTP/SAVP 96\r\n"),
		  0);
	CHECK(S.m[0].ice && S.m[0].dtls && S.m[1].ice && S.m[1].dtls);
	CHECK(sdp_is_webrtc(&S)); /* UDP/TLS prefix with ICE */
	CHECK_INT(parse_sdp("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=ice-ufrag:abcd\r\n"),
		  0);
	CHECK(S.m[0].ice);
	CHECK(!sdp_is_webrtc(&S)); /* ICE over plain RTP/AVP: no DTLS to convert */
}

static void t_audio_video(void)
{
	CHECK_INT(parse_sdp("v=0\r\no=alice 2890844526 2890844527 IN IP6 2001:db8::1\r\ns=call\r\n"
			    "c=IN IP6 2001:db8::1\r\nt=0 0\r\na=recvonly\r\n"
			    "m=audio 49170 RTP/AVP 0\r\n"
			    "m=video 51372/2 RTP/AVP 99\r\nc=IN IP4 224.2.1.1/127/3\r\na=rtpmap:99 h263-1998/90000\r\n"
			    "a=inactive\r\n"),
		  0);
	CHECK_STR(S.origin_addr, "2001:db8::1");
	CHECK_INT(S.nmedia, 2);
	CHECK_STR(S.m[0].addr, "2001:db8::1");
	CHECK_INT(S.m[0].dir, SDP_RECVONLY); /* session level */
	CHECK_STR(S.m[1].type, "video");
	CHECK_INT(S.m[1].port, 51372);
	CHECK_STR(S.m[1].addr, "224.2.1.1"); /* /ttl/n dropped */
	CHECK_INT(S.m[1].dir, SDP_INACTIVE); /* media level wins */
}

/* Hold the two ways phones do it: a=sendonly (RFC 3264 §8.4), and the older c=0.0.0.0
 * (RFC 2543) which is read as any other address. Port 0 is a rejected stream. */
static void t_hold(void)
{
	CHECK_INT(parse_sdp("v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0 101\r\na=sendonly\r\nm=video 0 RTP/AVP 96\r\n"),
		  0);
	CHECK_INT(S.m[0].dir, SDP_SENDONLY);
	CHECK_INT(S.m[1].port, 0);
	CHECK_INT(S.m[1].dir, SDP_SENDRECV);
	CHECK_INT(parse_sdp("v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\n\r\n"),
		  0);
	CHECK_STR(S.m[0].addr, "0.0.0.0");
	CHECK_INT(S.m[0].dir, SDP_SENDRECV);
}

static void t_malformed(void)
{
	const char *head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
	char buf[512];
#define WITH(tail) (snprintf(buf, sizeof buf, "%s%s", head, tail), buf)
	REFUSED("", "SDP: first line is not v=0");
	REFUSED("v=1\r\nm=audio 1 RTP/AVP 0\r\n", "SDP: first line is not v=0");
	REFUSED("o=- 1 1 IN IP4 a\r\nv=0\r\n", "SDP: first line is not v=0");
	REFUSED("v=0\r\n", "SDP: no m= line");
	REFUSED(head, "SDP: no m= line");
	REFUSED(WITH("m=audio 65536 RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 12a RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio -1 RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio +4000 RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 4000/x RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 4000/ RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 4000 RTP/AVP\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 4000\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 99999999999999999999 RTP/AVP 0\r\n"), "SDP: bad m= line");
	REFUSED(WITH("m=audio 4000 RTP/AVP 0\r\nc=IN IP5 1.2.3.4\r\n"), "SDP: bad c= line");
	REFUSED(WITH("m=audio 4000 RTP/AVP 0\r\nc=IN IP4\r\n"), "SDP: bad c= line");
	REFUSED(WITH("m=audio 4000 RTP/AVP 0\r\nc=IN IP4 /127\r\n"), "SDP: bad c= line");
	REFUSED(WITH("m=audio 4000 RTP/AVP 0\r\nc=IN IP4 1.2.3.4 x\r\n"), "SDP: bad c= line");
	REFUSED(WITH("m=audio 4000 RTP/AVP 0\r\nbogus\r\n"), "SDP: line is not <letter>=<value>");
	REFUSED(WITH("M=audio 4000 RTP/AVP 0\r\n"), "SDP: line is not <letter>=<value>");
	REFUSED(WITH("\r\nm=audio 4000 RTP/AVP 0\r\n"), "SDP: empty line");
	REFUSED("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n",
		"SDP: media with no connection address");
	REFUSED("v=0\r\no=- 1 1 IN\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n", "SDP: bad o= line");
	char big[SDP_MAX_LEN + 64];
	memset(big, 'x', sizeof big);
	memcpy(big, "v=0\r\na=", 7);
	big[sizeof big - 1] = '\0';
	REFUSED(big, "SDP too large");
	char many[1024] = "v=0\r\nc=IN IP4 1.2.3.4\r\n";
	for (int k = 0; k <= SDP_MAX_MEDIA; k++)
		strcat(many, "m=audio 4000 RTP/AVP 0\r\n");
	REFUSED(many, "SDP: too many m= lines");
	many[strlen(many) - strlen("m=audio 4000 RTP/AVP 0\r\n")] = '\0';
	CHECK_INT(parse_sdp(many), 0);
	CHECK_INT(S.nmedia, SDP_MAX_MEDIA);
	CHECK_INT(sdp_parse(&S, STR("v=0\r\n"), NULL), -1);             /* why may be NULL */
	CHECK_INT(parse_sdp(WITH("m=audio 0004000 RTP/AVP 0\r\n")), 0); /* 1*DIGIT */
	CHECK_INT(S.m[0].port, 4000);
	CHECK_INT(parse_sdp(WITH("m=audio 65535 RTP/AVP 0\r\n")), 0);
	CHECK_INT(S.m[0].port, 65535);
#undef WITH
}

/* The body ends exactly at the end of its bytes, with no line end: nothing past it is read
 * (ASan sees an overread of the heap copy). */
static void t_no_overread(void)
{
	static const char text[] = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly";
	for (size_t n = 0; n <= sizeof text - 1; n++) {
		char *copy = malloc(n ? n : 1);
		memcpy(copy, text, n);
		int r = sdp_parse(&S, (struct str){ copy, n }, &WHY);
		if (n == sizeof text - 1) {
			CHECK_INT(r, 0);
			CHECK_INT(S.m[0].dir, SDP_SENDONLY);
		}
		free(copy);
	}
}

/* ---- SIP side ---- */

static struct sip_msg M;
static struct sip_hdr H[SIP_MAX_HEADERS];
static struct sip_parse_err E;

static enum sip_parse_result parse_msg(const char *text, size_t len)
{
	return sip_msg_parse(&M, H, SIP_MAX_HEADERS, text, len, true, &E);
}

static const char *msg_with(const char *ctype, const char *body)
{
	static char buf[1024];
	snprintf(buf, sizeof buf,
		 "INVITE sip:bob@example.com SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
		 "From: <sip:alice@example.com>;tag=a\r\n"
		 "To: <sip:bob@example.com>\r\n"
		 "Call-ID: c1\r\n"
		 "CSeq: 1 INVITE\r\n"
		 "%s%s%s"
		 "Content-Length: %zu\r\n\r\n%s",
		 ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", strlen(body), body);
	return buf;
}

static void t_has_sdp(void)
{
	static const struct {
		const char *ctype, *body;
		bool sdp;
	} c[] = {
		{ "application/sdp", "v=0\r\n", true },
		{ "Application/SDP", "v=0\r\n", true },
		{ "application/sdp;charset=utf-8", "v=0\r\n", true },
		{ "application / sdp ; x=y", "v=0\r\n", true },
		{ "application/sdp", "", false },
		{ NULL, "v=0\r\n", false },
		{ "multipart/mixed;boundary=unique", "v=0\r\n", false },
		{ "application/sdpx", "v=0\r\n", false },
		{ "text/plain", "v=0\r\n", false },
		{ "application", "v=0\r\n", false },
	};
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		const char *t = msg_with(c[k].ctype, c[k].body);
		CHECK_INT(parse_msg(t, strlen(t)), SIP_PARSE_OK);
		if (sip_msg_has_sdp(&M) != c[k].sdp) {
			fprintf(stderr, "%s:%d: has_sdp(%s, %zu bytes) != %d\n", __FILE__, __LINE__,
				c[k].ctype ? c[k].ctype : "(none)", strlen(c[k].body), c[k].sdp);
			unit_failures++;
		}
	}
	/* The compact form c: */
	const char *t = "BYE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK2\r\nf: <sip:a@x>;tag=1\r\n"
			"t: <sip:b@x>\r\ni: c2\r\nCSeq: 2 BYE\r\nc: application/SDP\r\nl: 5\r\n\r\nv=0\r\n";
	CHECK_INT(parse_msg(t, strlen(t)), SIP_PARSE_OK);
	CHECK(sip_msg_has_sdp(&M));
}

static char OUT[4096];

/* Re-bodies the parsed M, parses the result into M and checks its body and framing. */
static void rebody_ok(struct str ctype, const char *body, int line)
{
	struct sip_out o;
	sip_out_init(&o, OUT, sizeof OUT);
	if (sip_print_rebody(&o, &M, ctype, str_from_cstr(body)) != 0) {
		fprintf(stderr, "%s:%d: sip_print_rebody failed\n", __FILE__, line);
		unit_failures++;
		return;
	}
	/* On a stream Content-Length alone frames the body: it must be right. */
	enum sip_parse_result r = sip_msg_parse(&M, H, SIP_MAX_HEADERS, OUT, o.len, false, &E);
	if (r != SIP_PARSE_OK || M.len != o.len || !str_eq(M.body, str_from_cstr(body))) {
		fprintf(stderr, "%s:%d: reparse %d (%s), body \"%.*s\"\n", __FILE__, line, r, E.reason,
			STR_FMT(M.body));
		unit_failures++;
	}
	CHECK_INT(M.count[SIP_HDR_CONTENT_LENGTH], 1);
	CHECK(M.count[SIP_HDR_CONTENT_TYPE] <= 1);
}
#define REBODY_OK(ctype, body) rebody_ok(ctype, body, __LINE__)

static void t_rebody_request(void)
{
	const char *t = msg_with("application/sdp", BARESIP);
	CHECK_INT(parse_msg(t, strlen(t)), SIP_PARSE_OK);
	REBODY_OK(STR("application/sdp"), CHROME);
	CHECK(M.request);
	CHECK_INT(M.mid, SIP_INVITE);
	CHECK_STR(M.call_id, "c1");
	CHECK(sip_msg_has_sdp(&M));
	CHECK_INT(sdp_parse(&S, M.body, &WHY), 0);
	CHECK(sdp_is_webrtc(&S));
	/* The start line as received, header lines in their order. */
	static const char start[] = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP";
	CHECK(strncmp(OUT, start, sizeof start - 1) == 0);
	/* Keeping the Content-Type: an empty content_type leaves the received one alone. */
	REBODY_OK(STR_NULL, BARESIP);
	CHECK_STR(sip_msg_hdr(&M, SIP_HDR_CONTENT_TYPE)->value, "application/sdp");
	CHECK_INT(sdp_parse(&S, M.body, &WHY), 0);
	CHECK(!sdp_is_webrtc(&S));
}

static void t_rebody_response_compact(void)
{
	/* A 200 with compact l: and c:, the l: before the c:, a header after them. */
	const char *t = "SIP/2.0 200 OK\r\n"
			"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
			"f: <sip:alice@example.com>;tag=a\r\n"
			"t: <sip:bob@example.com>;tag=b\r\n"
			"i: c1\r\n"
			"CSeq: 1 INVITE\r\n"
			"l: 14\r\n"
			"c: application/sdp\r\n"
			"m: <sip:bob@192.0.2.9>\r\n"
			"\r\nv=0\r\nx=short\r\n";
	CHECK_INT(parse_msg(t, strlen(t)), SIP_PARSE_OK);
	CHECK_INT(M.body.l, 14);
	REBODY_OK(STR("application/sdp"), BARESIP);
	CHECK(!M.request);
	CHECK_INT(M.status, 200);
	CHECK_STR(M.to.tag, "b");
	CHECK(sip_msg_hdr(&M, SIP_HDR_CONTACT) != NULL);
	CHECK_INT(M.body.l, strlen(BARESIP));
	CHECK(strstr(OUT, "\r\nl:") == NULL && strstr(OUT, "\r\nc:") == NULL);
	CHECK(strstr(OUT, "Content-Length: ") != NULL);
}

/* A request that had no body at all (a late-offer INVITE's ACK) gets one. */
static void t_rebody_no_body(void)
{
	const char *t = "ACK sip:bob@192.0.2.9 SIP/2.0\r\n"
			"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK3\r\n"
			"From: <sip:alice@example.com>;tag=a\r\n"
			"To: <sip:bob@example.com>;tag=b\r\n"
			"Call-ID: c1\r\n"
			"CSeq: 1 ACK\r\n\r\n";
	CHECK_INT(parse_msg(t, strlen(t)), SIP_PARSE_OK);
	CHECK_INT(M.body.l, 0);
	CHECK(!sip_msg_has_sdp(&M));
	REBODY_OK(STR("application/sdp"), BARESIP);
	CHECK(sip_msg_has_sdp(&M));
	CHECK_INT(M.mid, SIP_ACK);
	/* And a body taken away again. */
	REBODY_OK(STR_NULL, "");
	CHECK_INT(M.body.l, 0);
	CHECK(!sip_msg_has_sdp(&M));
}

static void t_rebody_overflow(void)
{
	const char *t = msg_with("application/sdp", BARESIP);
	CHECK_INT(parse_msg(t, strlen(t)), SIP_PARSE_OK);
	char small[300];
	struct sip_out o;
	sip_out_init(&o, small, sizeof small);
	CHECK_INT(sip_print_rebody(&o, &M, STR("application/sdp"), str_from_cstr(CHROME)), -1);
	CHECK(o.overflow);
	CHECK(o.len <= sizeof small);
	/* Exactly enough room succeeds; one byte less fails. */
	sip_out_init(&o, OUT, sizeof OUT);
	CHECK_INT(sip_print_rebody(&o, &M, STR("application/sdp"), STR("v=0\r\n")), 0);
	size_t need = o.len;
	sip_out_init(&o, small, need - 1 < sizeof small ? need - 1 : sizeof small);
	if (need - 1 < sizeof small)
		CHECK_INT(sip_print_rebody(&o, &M, STR("application/sdp"), STR("v=0\r\n")), -1);
	char *exact = malloc(need);
	sip_out_init(&o, exact, need);
	CHECK_INT(sip_print_rebody(&o, &M, STR("application/sdp"), STR("v=0\r\n")), 0);
	CHECK_INT(o.len, need);
	free(exact);
}

static const struct unit_case cases[] = {
	{ "webrtc_offer", t_webrtc_offer },
	{ "plain_offer", t_plain_offer },
	{ "webrtc_rules", t_webrtc_rules },
	{ "audio_video", t_audio_video },
	{ "hold", t_hold },
	{ "malformed", t_malformed },
	{ "no_overread", t_no_overread },
	{ "has_sdp", t_has_sdp },
	{ "rebody_request", t_rebody_request },
	{ "rebody_response_compact", t_rebody_response_compact },
	{ "rebody_no_body", t_rebody_no_body },
	{ "rebody_overflow", t_rebody_overflow },
};
UNIT_MAIN(cases)
