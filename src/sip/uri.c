/* uri.c: SIP, SIPS and tel URI parsing, parameter lookup and URI comparison (RFC 3261 §19.1). */
#include "sip/sip.h"

#include <string.h>

#include "sip/lex.h"

/* Index just past the bytes of s from i that are in the LEX_C_* class cls or valid %HH
 * escapes. It stops on a '%' that does not start a valid escape, which no caller takes
 * as a separator, so such a '%' fails the part it is in. */
static inline __attribute__((always_inline)) size_t span_esc(struct str s, size_t i, unsigned cls)
{
	for (;;) {
		i = lex_span(s, i, cls);
		if (i >= s.l || s.p[i] != '%')
			return i;
		if (i + 2 >= s.l || !lex_hex((unsigned char)s.p[i + 1]) || !lex_hex((unsigned char)s.p[i + 2]))
			return i;
		i += 3;
	}
}

/* Accepts the bytes of s that are in the LEX_C_* class or a valid %HH escape. */
static bool chars_ok(struct str s, unsigned cls)
{
	return span_esc(s, 0, cls) == s.l;
}

size_t sip__skip_quoted(struct str s, size_t i)
{
	return lex_skip_quoted(s, i);
}

static size_t run(struct str s, size_t i)
{
	return lex_span_not(s, i, LEX_C_DELIM);
}

int sip__param_next(struct str s, size_t *pos, struct str *name, struct str *value)
{
	size_t i = lex_skip_ws(s, *pos);
	if (i >= s.l)
		return 0;
	if (s.p[i] != ';')
		return -1;
	i = lex_skip_ws(s, i + 1);
	size_t n0 = i;
	i = run(s, i);
	if (i == n0)
		return -1;
	*name = lex_sub(s, n0, i);
	*value = (struct str){ s.p + i, 0 };
	size_t j = lex_skip_ws(s, i);
	if (j < s.l && s.p[j] == '=') {
		j = lex_skip_ws(s, j + 1);
		if (j < s.l && s.p[j] == '"') {
			size_t e = sip__skip_quoted(s, j);
			if (e == 0)
				return -1;
			*value = lex_sub(s, j + 1, e - 1);
			i = e;
		} else {
			size_t e = run(s, j);
			if (e == j)
				return -1;
			*value = lex_sub(s, j, e);
			i = e;
		}
	}
	*pos = i;
	return 1;
}

bool sip_param_get(struct str params, struct str name, struct str *value)
{
	size_t pos = 0;
	struct str n, v;
	while (lex_param_next(params, &pos, &n, &v) == 1) {
		if (str_caseeq(n, name)) {
			if (value)
				*value = v;
			return true;
		}
	}
	return false;
}

/* Checks a host: a hostname or IPv4 address, or an IPv6 reference in brackets. The
 * IPv6 check is loose on purpose (hex digits, colons and dots): RFC 5118 §4.10 asks
 * to tolerate both the two- and three-colon forms of the IPv4-embedded address. */
bool sip__host_ok(struct str h)
{
	if (h.l == 0)
		return false;
	if (h.p[0] == '[') {
		if (h.l < 4 || h.p[h.l - 1] != ']')
			return false;
		bool colon = false;
		for (size_t i = 1; i + 1 < h.l; i++) {
			unsigned char c = (unsigned char)h.p[i];
			if (c == ':')
				colon = true;
			else if (!lex_hex(c) && c != '.')
				return false;
		}
		return colon;
	}
	for (size_t i = 0; i < h.l; i++) {
		unsigned char c = (unsigned char)h.p[i];
		if (!lex_alpha(c) && !lex_digit(c) && c != '-' && c != '.' && c != '_')
			return false;
	}
	return true;
}

size_t sip__hostport(struct str s, size_t i, struct str *host, uint16_t *port)
{
	return lex_hostport(s, i, host, port);
}

/* Every byte printable and outside the characters that end a URI in a header. */
static bool opaque_ok(struct str s)
{
	if (s.l == 0)
		return false;
	for (size_t i = 0; i < s.l; i++) {
		/* c <= ' ', DEL, '<', '>', '"' */
		unsigned char c = (unsigned char)s.p[i];
		if (lex_is(c, LEX_C_URIEND))
			return false;
	}
	return true;
}

/* The parameters picked out of a URI's params; the first of each wins, as with
 * sip_param_get(). */
struct common {
	struct str transport, maddr, user_param;
	bool has_transport, has_maddr, has_user, lr;
};

static void common_param(struct common *c, struct str n, struct str v)
{
	switch (n.l) {
	case 2:
		if (lex_caseeq_lc(n, STR("lr")))
			c->lr = true;
		break;
	case 4:
		if (!c->has_user && lex_caseeq_lc(n, STR("user"))) {
			c->has_user = true;
			c->user_param = v;
		}
		break;
	case 5:
		if (!c->has_maddr && lex_caseeq_lc(n, STR("maddr"))) {
			c->has_maddr = true;
			c->maddr = v;
		}
		break;
	case 9:
		if (!c->has_transport && lex_caseeq_lc(n, STR("transport"))) {
			c->has_transport = true;
			c->transport = v;
		}
		break;
	default:
		break;
	}
}

/* uri-parameters at i (a ';'): paramchar = unreserved / escaped / "[]/:&+$", as name or
 * name=value between ';'s, up to a '?' or the end. A parameter that passes holds no LWS,
 * quote or other delimiter, so it reads the same as sip__param_next() would read it, and
 * the common ones are picked here, into u once all passed. Returns the index after them
 * or 0 when malformed. */
static size_t uri_params(struct sip_uri *u, struct str b, size_t i)
{
	struct common c = { 0 };
	while (i < b.l && b.p[i] == ';') {
		size_t k = i + 1, e = span_esc(b, k, LEX_C_PARAM);
		if (e == k)
			return 0;
		struct str pn = lex_sub(b, k, e), pv = { b.p + e, 0 };
		if (e < b.l && b.p[e] == '=') {
			size_t v0 = e + 1;
			e = span_esc(b, v0, LEX_C_PARAM);
			if (e == v0)
				return 0;
			pv = lex_sub(b, v0, e);
		}
		if (e < b.l && b.p[e] != ';' && b.p[e] != '?')
			return 0;
		common_param(&c, pn, pv);
		i = e;
	}
	/* Set only once the parameters passed, like the sip_param_get() calls this
	 * replaces. */
	if (c.has_transport)
		u->transport = c.transport;
	if (c.has_maddr)
		u->maddr = c.maddr;
	if (c.has_user)
		u->user_param = c.user_param;
	u->lr = c.lr;
	return i;
}

/* The part of a sip or sips URI after the colon. Every byte is checked against the class
 * of the part it is in, none of which holds a byte that opaque_ok() refuses, so that test
 * is not needed here. */
static int sip_body(struct sip_uri *u, struct str b)
{
	/* Neither user nor password may hold an unescaped '@', so the first '@' ends the
	 * userinfo; '?' and ';' cannot be used for that since both are legal user characters
	 * (RFC 4475 intmeth, semiuri). */
	size_t at = lex_find1(b, 0, '@'), i = 0;
	if (at < b.l) {
		struct str ui = { b.p, at };
		/* The user is what the user class allows; the first byte outside it must be
		 * the end of the userinfo or the ':' before a password (':' is not in it). */
		size_t k = span_esc(ui, 0, LEX_C_USER);
		if (k == 0)
			return -1;
		u->user = lex_sub(ui, 0, k);
		if (k < ui.l) {
			if (ui.p[k] != ':')
				return -1;
			u->password = lex_sub(ui, k + 1, ui.l);
			if (!chars_ok(u->password, LEX_C_PASSWORD))
				return -1;
		}
		i = ui.l + 1;
	}
	i = lex_hostport(b, i, &u->host, &u->port);
	if (i == 0)
		return -1;
	size_t p0 = i;
	if (i < b.l && b.p[i] == ';') {
		i = uri_params(u, b, i);
		if (i == 0)
			return -1;
	}
	if (i < b.l && b.p[i] != '?')
		return -1;
	u->params = lex_sub(b, p0, i);
	u->headers = lex_sub(b, i, b.l);
	if (u->headers.l && (u->headers.l < 2 || !chars_ok(lex_sub(u->headers, 1, u->headers.l), LEX_C_HEADER)))
		return -1;
	return 0;
}

int sip_uri_parse(struct sip_uri *u, struct str s)
{
	memset(u, 0, sizeof *u);
	return sip__uri_parse0(u, s);
}

int sip__uri_parse0(struct sip_uri *u, struct str s)
{
	u->raw = s;
	size_t i;
	/* "sip:" in any case first, in one word: most URIs are. 0x20 or'ed into the three
	 * letters gives "sip" only for those letters in either case. */
	uint32_t w, sip, lc;
	memcpy(&sip, "sip:", 4);
	memcpy(&lc, "\x20\x20\x20\x00", 4);
	if (s.l >= 4 && (memcpy(&w, s.p, 4), (w | lc) == sip)) {
		i = 3;
		u->scheme = SIP_SCHEME_SIP;
	} else {
		if (s.l == 0 || !lex_alpha((unsigned char)s.p[0]))
			return -1;
		i = lex_span(s, 0, LEX_C_SCHEME);
		if (i >= s.l || s.p[i] != ':')
			return -1;
		struct str sch = lex_sub(s, 0, i);
		if (i == 3 && lex_caseeq_lc(sch, STR("sip")))
			u->scheme = SIP_SCHEME_SIP;
		else if (i == 4 && lex_caseeq_lc(sch, STR("sips")))
			u->scheme = SIP_SCHEME_SIPS;
		else if (i == 3 && lex_caseeq_lc(sch, STR("tel")))
			u->scheme = SIP_SCHEME_TEL;
	}
	u->scheme_str = lex_sub(s, 0, i);
	struct str b = lex_sub(s, i + 1, s.l);
	if (u->scheme == SIP_SCHEME_SIP || u->scheme == SIP_SCHEME_SIPS)
		return sip_body(u, b);
	if (!opaque_ok(b))
		return -1;
	if (u->scheme == SIP_SCHEME_OTHER)
		return 0;
	long semi = str_chr(b, ';');
	u->user = semi >= 0 ? lex_sub(b, 0, (size_t)semi) : b;
	u->params = semi >= 0 ? lex_sub(b, (size_t)semi, b.l) : (struct str){ b.p + b.l, 0 };
	return u->user.l ? 0 : -1;
}

/* ---- comparison (RFC 3261 §19.1.4) ---- */

static int unhex(unsigned char c)
{
	if (lex_digit(c))
		return c - '0';
	return (c | 0x20) - 'a' + 10;
}

/* Next decoded byte of s at *i (escapes expanded). */
static unsigned char dec(struct str s, size_t *i)
{
	unsigned char c = (unsigned char)s.p[*i];
	if (c == '%' && *i + 2 < s.l && lex_hex((unsigned char)s.p[*i + 1]) && lex_hex((unsigned char)s.p[*i + 2])) {
		c = (unsigned char)(unhex((unsigned char)s.p[*i + 1]) * 16 + unhex((unsigned char)s.p[*i + 2]));
		*i += 3;
	} else {
		*i += 1;
	}
	return c;
}

/* Compares two escaped views after unescaping, optionally case-insensitively. */
static bool esc_eq(struct str a, struct str b, bool icase)
{
	size_t i = 0, j = 0;
	while (i < a.l && j < b.l) {
		unsigned char x = dec(a, &i), y = dec(b, &j);
		if (icase) {
			x = (unsigned char)((x >= 'A' && x <= 'Z') ? x + 32 : x);
			y = (unsigned char)((y >= 'A' && y <= 'Z') ? y + 32 : y);
		}
		if (x != y)
			return false;
	}
	return i == a.l && j == b.l;
}

/* Finds a parameter by name with escapes expanded ("n%61me" is "name"). */
static bool param_find(struct str params, struct str name, struct str *value)
{
	size_t pos = 0;
	struct str n, v;
	while (sip__param_next(params, &pos, &n, &v) == 1) {
		if (esc_eq(n, name, true)) {
			*value = v;
			return true;
		}
	}
	return false;
}

/* Parameters present in a must match in b when named in always (or present in both). */
static bool params_match(struct str a, struct str b)
{
	static const char *const always[] = { "transport", "user", "ttl", "method", "maddr" };
	size_t pos = 0;
	struct str n, v, w;
	while (sip__param_next(a, &pos, &n, &v) == 1) {
		bool must = false;
		for (size_t k = 0; k < sizeof always / sizeof always[0]; k++)
			must |= esc_eq(n, str_from_cstr(always[k]), true);
		if (param_find(b, n, &w)) {
			if (!esc_eq(v, w, true))
				return false;
		} else if (must) {
			return false;
		}
	}
	return true;
}

bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b)
{
	if (a->scheme != b->scheme)
		return false;
	if (a->scheme == SIP_SCHEME_OTHER)
		return str_caseeq(a->scheme_str, b->scheme_str) && str_eq(a->raw, b->raw);
	if (!esc_eq(a->user, b->user, a->scheme == SIP_SCHEME_TEL) || !esc_eq(a->password, b->password, false))
		return false;
	if (!str_caseeq(a->host, b->host) || a->port != b->port)
		return false;
	if (!params_match(a->params, b->params) || !params_match(b->params, a->params))
		return false;
	/* Header components must be equal as sets; comparing them in order is a simplification
	 * that only errs towards "different". */
	return esc_eq(a->headers, b->headers, true);
}
