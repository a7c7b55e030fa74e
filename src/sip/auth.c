/* auth.c: digest credentials and challenges (Authorization, WWW-Authenticate and the Proxy- forms). */
#include "sip/sip.h"

#include <string.h>

#include "sip/lex.h"

static void assign(struct sip_auth *a, struct str n, struct str v)
{
	/* The length picks the candidates before any byte is compared: every request with
	 * credentials carries about ten of these. The names hold letters only, so the
	 * compare against a lower-case literal is str_caseeq(). */
	struct str *f = NULL;
	switch (n.l) {
	case 2:
		if (lex_caseeq_lc(n, STR("nc")))
			f = &a->nc;
		break;
	case 3:
		if (lex_caseeq_lc(n, STR("uri")))
			f = &a->uri;
		else if (lex_caseeq_lc(n, STR("qop")))
			f = &a->qop;
		break;
	case 5:
		if (lex_caseeq_lc(n, STR("realm"))) {
			f = &a->realm;
		} else if (lex_caseeq_lc(n, STR("nonce"))) {
			f = &a->nonce;
		} else if (lex_caseeq_lc(n, STR("stale"))) {
			a->stale = lex_caseeq_lc(v, STR("true"));
			return;
		}
		break;
	case 6:
		if (lex_caseeq_lc(n, STR("cnonce")))
			f = &a->cnonce;
		else if (lex_caseeq_lc(n, STR("opaque")))
			f = &a->opaque;
		break;
	case 8:
		if (lex_caseeq_lc(n, STR("username")))
			f = &a->username;
		else if (lex_caseeq_lc(n, STR("response")))
			f = &a->response;
		break;
	case 9:
		if (lex_caseeq_lc(n, STR("algorithm")))
			f = &a->algorithm;
		break;
	default:
		break;
	}
	if (f)
		*f = v;
}

/* Reads the comma-separated auth-params after the scheme; false when malformed. LWS is
 * allowed around '=' and ',' but rarely sent, so each place tests for it before skipping
 * it. */
static bool params(struct sip_auth *a, struct str s, size_t i)
{
	for (;;) {
		i = lex_skip_ws(s, i);
		if (i >= s.l)
			return true;
		size_t n0 = i;
		i = lex_span(s, i, LEX_C_TOKEN);
		if (i == n0)
			return false;
		struct str n = lex_sub(s, n0, i), v;
		if (i < s.l && s.p[i] != '=')
			i = lex_skip_ws(s, i);
		if (i >= s.l || s.p[i] != '=')
			return false;
		i++;
		if (i < s.l && lex_ws((unsigned char)s.p[i]))
			i = lex_skip_ws(s, i);
		if (i < s.l && s.p[i] == '"') {
			size_t e = lex_skip_quoted(s, i);
			if (e == 0)
				return false;
			v = lex_sub(s, i + 1, e - 1);
			i = e;
		} else {
			size_t v0 = i;
			i = lex_span_not(s, i, LEX_C_VALEND);
			if (i == v0)
				return false;
			v = lex_sub(s, v0, i);
		}
		assign(a, n, v);
		if (i < s.l && s.p[i] != ',')
			i = lex_skip_ws(s, i);
		if (i < s.l) {
			if (s.p[i] != ',')
				return false;
			i++;
		}
	}
}

int sip_auth_parse(struct sip_auth *a, struct str s)
{
	memset(a, 0, sizeof *a);
	s = lex_trim(s);
	a->raw = s;
	size_t i = lex_span(s, 0, LEX_C_TOKEN);
	if (i == 0 || (i < s.l && !lex_ws((unsigned char)s.p[i])))
		return -1;
	a->scheme = lex_sub(s, 0, i);
	bool ok = params(a, s, i);
	/* Other schemes (Basic, or RFC 4475 regaut01's unknown one) may carry a token68 that
	 * is not a parameter list; the scheme alone is what the caller needs to refuse them. */
	if (!lex_caseeq_lc(a->scheme, STR("digest")))
		return 0;
	return ok ? 0 : -1;
}
