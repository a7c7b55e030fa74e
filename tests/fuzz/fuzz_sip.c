/* fuzz_sip.c: libFuzzer target for the SIP parser, its sub-parsers and the printers' round trip. */
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

/* Runs the value parsers over every value of every header: none may crash. */
static void sub_parsers(const struct sip_msg *m, const char *b, size_t n)
{
	struct sip_uri u;
	struct sip_addr a;
	struct sip_via v;
	struct sip_auth au;
	for (unsigned k = 0; k < m->nhdr; k++) {
		const struct sip_hdr *h = &m->hdr[k];
		inside(h->line, b, n);
		inside(h->value, b, n);
		sip_auth_parse(&au, h->value);
		sip_uri_parse(&u, h->value);
		struct str rest = h->value, item;
		while (sip_list_next(&rest, &item)) {
			inside(item, b, n);
			if (sip_uri_parse(&u, item) == 0)
				sip_param_get(u.params, STR("transport"), NULL);
			if (sip_addr_parse(&a, item) == 0) {
				inside(a.uri.host, b, n);
				sip_param_get(a.params, STR("expires"), NULL);
				if (!a.star)
					(void)sip_uri_equal(&a.uri, &m->ruri);
			}
			if (sip_via_parse(&v, item) == 0)
				inside(v.branch, b, n);
		}
	}
}

/* A printed message must parse again, as a datagram and on a stream. */
static void reparse(const char *out, size_t len, bool request)
{
	static struct sip_msg m2;
	static struct sip_hdr h2[SIP_MAX_HEADERS];
	struct sip_parse_err e;
	if (sip_msg_parse(&m2, h2, SIP_MAX_HEADERS, out, len, true, &e) != SIP_PARSE_OK || m2.request != request)
		abort();
	if (sip_msg_parse(&m2, h2, SIP_MAX_HEADERS, out, len, false, &e) != SIP_PARSE_OK || m2.len != len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sip_msg m;
	static struct sip_hdr h[SIP_MAX_HEADERS];
	static char out[2 * SIP_MAX_MSG + 4096];
	const char *b = (const char *)data;
	struct sip_parse_err e;

	if (sip_msg_parse(&m, h, SIP_MAX_HEADERS, b, size, false, &e) == SIP_PARSE_OK && m.buf + m.len > b + size)
		abort();
	enum sip_parse_result r = sip_msg_parse(&m, h, SIP_MAX_HEADERS, b, size, true, &e);
	if (r == SIP_PARSE_AGAIN)
		abort(); /* a datagram is never incomplete */
	if (r != SIP_PARSE_OK) {
		if (!e.reason || e.code < 400)
			abort();
		return 0;
	}
	if (m.buf + m.len > b + size)
		abort();
	inside(m.body, b, size);
	inside(m.ruri_str, b, size);
	sub_parsers(&m, b, size);
	const char *why;
	(void)sip_sanity(&m, &why);
	if (!m.request)
		return 0;
	/* Forwarding adds up to four header lines (Via, Record-Route, Max-Forwards,
	 * Content-Length); past the limit the copy cannot parse. */
	bool check = m.nhdr + 4 <= SIP_MAX_HEADERS;

	struct sip_out o;
	struct sip_resp_opts ro = {
		.to_tag = STR("fuzz1"),
		.server = STR("parley-fuzz"),
		.via_received = STR("192.0.2.1"),
		.via_rport = STR("5060"),
		.extra = STR("Allow: INVITE, ACK\r\n"),
	};
	sip_out_init(&o, out, sizeof out);
	if (sip_print_response(&o, &m, 200, NULL, &ro) == 0 && check)
		reparse(out, o.len, false);

	static const enum sip_hdr_id drop[] = { SIP_HDR_PROXY_AUTHORIZATION };
	struct sip_fwd_opts fo = {
		.via = STR("SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKfuzz"),
		.top_via_received = STR("192.0.2.1"),
		.top_via_rport = STR("5060"),
		.drop_first_route = true,
		.record_route = STR("<sip:192.0.2.2;lr>"),
		.drop = drop,
		.ndrop = 1,
	};
	sip_out_init(&o, out, sizeof out);
	if (sip_print_request_fwd(&o, &m, &fo) == 0 && check)
		reparse(out, o.len, true);
	return 0;
}
