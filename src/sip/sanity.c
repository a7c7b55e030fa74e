/* sanity.c: the checks of a parsed request that need no configuration (RFC 3261 §8.2, §16.3). */
#include "sip/sip.h"

unsigned sip_sanity(const struct sip_msg *m, const char **reason)
{
	static const struct {
		enum sip_hdr_id id;
		const char *missing, *multiple;
	} single[] = {
		{ SIP_HDR_FROM, "Missing From", "Multiple From" },
		{ SIP_HDR_TO, "Missing To", "Multiple To" },
		{ SIP_HDR_CALL_ID, "Missing Call-ID", "Multiple Call-ID" },
		{ SIP_HDR_CSEQ, "Missing CSeq", "Multiple CSeq" },
		{ SIP_HDR_MAX_FORWARDS, NULL, "Multiple Max-Forwards" },
		{ SIP_HDR_CONTENT_LENGTH, NULL, "Multiple Content-Length" },
	};
	const char *dummy;
	if (!reason)
		reason = &dummy;
	*reason = "OK";
	/* The version string is case-insensitive (RFC 3261 §7.1). */
	if (!str_caseeq_cstr(m->version, "SIP/2.0")) {
		*reason = "Version Not Supported";
		return 505;
	}
	if (m->count[SIP_HDR_VIA] == 0) {
		*reason = "Missing Via";
		return 400;
	}
	for (size_t k = 0; k < sizeof single / sizeof single[0]; k++) {
		unsigned n = m->count[single[k].id];
		if (n == 0 && single[k].missing) {
			*reason = single[k].missing;
			return 400;
		}
		if (n > 1) {
			*reason = single[k].multiple;
			return 400;
		}
	}
	if (!m->request)
		return 0;
	/* RFC 4475 mismatch02: with an unknown method 501 is preferred to 400, since the
	 * element cannot tell whether the extension allows it. */
	if (!str_eq(m->method, m->cseq_method_str)) {
		*reason = "CSeq method mismatch";
		return m->mid == SIP_METHOD_OTHER ? 501 : 400;
	}
	if (m->ruri.scheme == SIP_SCHEME_OTHER) {
		*reason = "Unsupported URI Scheme";
		return 416;
	}
	return 0;
}
