/* via.c: one Via value: sent-protocol, sent-by and the parameters a proxy uses (RFC 3261 §20.42). */
#include "sip/sip.h"

#include <string.h>

#include "sip/lex.h"

/* Takes a token at *i after optional LWS; false when there is none. */
static bool token_at(struct str s, size_t *i, struct str *out)
{
	size_t b = lex_skip_ws(s, *i);
	size_t e = lex_skip_token(s, b);
	if (e == b)
		return false;
	*out = lex_sub(s, b, e);
	*i = e;
	return true;
}

/* Expects LWS, then c, at *i. */
static bool expect(struct str s, size_t *i, char c)
{
	size_t j = lex_skip_ws(s, *i);
	if (j >= s.l || s.p[j] != c)
		return false;
	*i = j + 1;
	return true;
}

/* sent-by = host [ COLON port ] at h, in general: COLON allows LWS around ':', rarely
 * used, so the host:port text is taken up to the first LWS or ';' and LWS around ':'
 * joined. Returns the index after it, or 0 when malformed. */
static size_t sent_by(struct sip_via *v, struct str s, size_t h)
{
	size_t e = h;
	while (e < s.l && s.p[e] != ';' && !lex_ws((unsigned char)s.p[e]))
		e++;
	struct str hp = lex_sub(s, h, e);
	size_t k = lex_skip_ws(s, e);
	if (k < s.l && s.p[k] == ':' && hp.l && hp.p[hp.l - 1] != ']' && str_chr(hp, ':') < 0) {
		/* "host : port" */
		size_t p0 = lex_skip_ws(s, k + 1), p1 = p0;
		while (p1 < s.l && lex_digit((unsigned char)s.p[p1]))
			p1++;
		uint64_t port;
		if (!sip__host_ok(hp) || !str_to_u64(lex_sub(s, p0, p1), 65535, &port))
			return 0;
		v->host = hp;
		v->port = (uint16_t)port;
		return p1;
	}
	if (sip__hostport(hp, 0, &v->host, &v->port) != hp.l)
		return 0;
	return e;
}

int sip_via_parse(struct sip_via *v, struct str s)
{
	memset(v, 0, sizeof *v);
	return sip__via_parse0(v, lex_trim(s));
}

int sip__via_parse0(struct sip_via *v, struct str s)
{
	v->raw = s;
	size_t i;
	static const char sip20[8] = { 'S', 'I', 'P', '/', '2', '.', '0', '/' };
	if (s.l > 8 && memcmp(s.p, sip20, 8) == 0 && (i = lex_span(s, 8, LEX_C_TOKEN)) > 8) {
		/* "SIP/2.0/UDP", as every Via but a torture test's is written: the general
		 * reading below takes it the same way. */
		v->proto = lex_sub(s, 0, 7);
		v->version = lex_sub(s, 4, 7);
		v->transport = lex_sub(s, 8, i);
	} else {
		i = 0;
		struct str name;
		if (!token_at(s, &i, &name) || !expect(s, &i, '/') || !token_at(s, &i, &v->version) ||
		    !expect(s, &i, '/') || !token_at(s, &i, &v->transport))
			return -1;
		/* LWS is allowed around the slashes (RFC 3261 SLASH), so proto may hold some. */
		v->proto = (struct str){ name.p, (size_t)(v->version.p + v->version.l - name.p) };
	}
	size_t h = lex_skip_ws(s, i);
	if (h == i)
		return -1;
	/* A sent-by that ends at a ';' or the end of the value is read as it stands: none of
	 * its bytes is LWS or ';', so the general reading below would take the same host and
	 * port. */
	size_t e = lex_hostport(s, h, &v->host, &v->port);
	if (e == 0 || (e < s.l && s.p[e] != ';')) {
		/* What a failed sent_by() leaves must not depend on the attempt above: the
		 * caller answers a bad request at the Via host when there is one. */
		v->host = STR_NULL;
		v->port = 0;
		e = sent_by(v, s, h);
	}
	if (e == 0)
		return -1;
	e = lex_skip_ws(s, e);
	v->params = lex_sub(s, e, s.l);
	size_t pos = 0;
	struct str n, val;
	int r;
	while ((r = lex_param_next(v->params, &pos, &n, &val)) == 1) {
		switch (n.l) {
		case 6:
			if (lex_caseeq_lc(n, STR("branch")))
				v->branch = val;
			break;
		case 8:
			if (lex_caseeq_lc(n, STR("received")))
				v->received = val;
			break;
		case 5:
			if (lex_caseeq_lc(n, STR("maddr"))) {
				v->maddr = val;
			} else if (lex_caseeq_lc(n, STR("rport"))) {
				v->has_rport = true;
				v->rport = val;
			}
			break;
		default:
			break;
		}
	}
	return r == 0 ? 0 : -1;
}
