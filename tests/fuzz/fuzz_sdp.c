/* fuzz_sdp.c: libFuzzer target for the SDP reader and for re-bodying a SIP message (sip_print_rebody). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip/sip.h"

/* Every view the parser hands out must lie inside the input. */
static void inside(struct str s, const char *b, size_t n)
{
	if (s.l && (s.p < b || s.p + s.l > b + n))
		abort();
}

/* A re-bodied message must parse again, on a stream (where Content-Length alone frames
 * it) and as a datagram, with exactly the new body. */
static void reparse(const char *out, size_t len, bool request, struct str body)
{
	static struct sip_msg m2;
	static struct sip_hdr h2[SIP_MAX_HEADERS];
	struct sip_parse_err e;
	if (sip_msg_parse(&m2, h2, SIP_MAX_HEADERS, out, len, false, &e) != SIP_PARSE_OK || m2.len != len ||
	    m2.request != request || !str_eq(m2.body, body))
		abort();
	if (sip_msg_parse(&m2, h2, SIP_MAX_HEADERS, out, len, true, &e) != SIP_PARSE_OK || !str_eq(m2.body, body))
		abort();
}

/* The input as an SDP body: parse it and check what came out. */
static void as_sdp(const char *b, size_t n)
{
	static struct sdp s;
	const char *why = NULL;
	if (sdp_parse(&s, (struct str){ b, n }, &why) != 0) {
		if (!why)
			abort();
		return;
	}
	if (s.nmedia == 0 || s.nmedia > SDP_MAX_MEDIA || n > SDP_MAX_LEN)
		abort();
	inside(s.origin_addr, b, n);
	inside(s.addr, b, n);
	for (unsigned k = 0; k < s.nmedia; k++) {
		inside(s.m[k].type, b, n);
		inside(s.m[k].proto, b, n);
		inside(s.m[k].addr, b, n);
		if (s.m[k].addr.l == 0 || s.m[k].type.l == 0 || s.m[k].proto.l == 0 || s.m[k].dir > SDP_INACTIVE)
			abort();
	}
	(void)sdp_is_webrtc(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sip_msg m;
	static struct sip_hdr h[SIP_MAX_HEADERS];
	static char out[2 * SIP_MAX_MSG + 4096];
	const char *b = (const char *)data;
	struct sip_parse_err e;
	struct sip_out o;

	as_sdp(b, size);

	/* The input as the body of a minimal INVITE, put in by re-bodying a bodiless one
	 * (compact l:/c: headers, as a phone may send them) and read back. */
	static const char invite[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
				     "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfz\r\n"
				     "f: <sip:alice@example.com>;tag=a\r\n"
				     "t: <sip:bob@example.com>\r\n"
				     "i: fz\r\n"
				     "CSeq: 1 INVITE\r\n"
				     "c: text/plain\r\n"
				     "l: 0\r\n\r\n";
	if (sip_msg_parse(&m, h, SIP_MAX_HEADERS, invite, sizeof invite - 1, true, &e) != SIP_PARSE_OK)
		abort();
	struct str body = { b, size };
	sip_out_init(&o, out, sizeof out);
	if (size + 512 < SIP_MAX_MSG) {
		if (sip_print_rebody(&o, &m, STR("application/sdp"), body) != 0)
			abort();
		reparse(out, o.len, true, body);
		if (sip_msg_parse(&m, h, SIP_MAX_HEADERS, out, o.len, false, &e) != SIP_PARSE_OK ||
		    sip_msg_has_sdp(&m) != (size > 0))
			abort();
	}

	/* The input as a SIP message of its own, given a fixed body. Each printed line is a
	 * received one except the two added, so the copy parses wherever the original did,
	 * unless the additions pass the header or the size limit. */
	if (sip_msg_parse(&m, h, SIP_MAX_HEADERS, b, size, true, &e) != SIP_PARSE_OK)
		return 0;
	(void)sip_msg_has_sdp(&m);
	const struct str sdp = STR("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
				   "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
	sip_out_init(&o, out, sizeof out);
	if (sip_print_rebody(&o, &m, STR("application/sdp"), sdp) == 0 && m.nhdr + 2 <= SIP_MAX_HEADERS &&
	    o.len <= SIP_MAX_MSG)
		reparse(out, o.len, m.request, sdp);
	return 0;
}
