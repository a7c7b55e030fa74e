/* auth.c: digest credentials and challenges (Authorization, WWW-Authenticate and the Proxy- forms). */
#include "sip/sip.h"

#include <string.h>

#include "sip/lex.h"

static void assign(struct sip_auth *a, struct str n, struct str v)
{
#define F(name, field) { name, sizeof(name) - 1, offsetof(struct sip_auth, field) }
	static const struct {
		const char *name;
		size_t len;
		size_t off;
	} fields[] = {
		F("username", username), F("realm", realm), F("nonce", nonce), F("uri", uri),
		F("response", response), F("algorithm", algorithm), F("cnonce", cnonce),
		F("opaque", opaque), F("qop", qop), F("nc", nc),
	};
#undef F
	if (n.l == 5 && str_caseeq(n, STR("stale"))) {
		a->stale = str_caseeq(v, STR("true"));
		return;
	}
	/* The length decides before any byte is compared: every request with credentials
	 * carries about ten of these. */
	for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
		if (n.l == fields[k].len && str_caseeq(n, (struct str){ fields[k].name, fields[k].len })) {
			*(struct str *)((char *)a + fields[k].off) = v;
			return;
		}
}

/* Reads the comma-separated auth-params after the scheme; false when malformed. */
static bool params(struct sip_auth *a, struct str s, size_t i)
{
	for (;;) {
		i = lex_skip_ws(s, i);
		if (i >= s.l)
			return true;
		size_t n0 = i;
		i = lex_skip_token(s, i);
		if (i == n0)
			return false;
		struct str n = lex_sub(s, n0, i), v;
		i = lex_skip_ws(s, i);
		if (i >= s.l || s.p[i] != '=')
			return false;
		i = lex_skip_ws(s, i + 1);
		if (i < s.l && s.p[i] == '"') {
			size_t e = sip__skip_quoted(s, i);
			if (e == 0)
				return false;
			v = lex_sub(s, i + 1, e - 1);
			i = e;
		} else {
			size_t v0 = i;
			while (i < s.l && s.p[i] != ',' && !lex_ws((unsigned char)s.p[i]))
				i++;
			if (i == v0)
				return false;
			v = lex_sub(s, v0, i);
		}
		assign(a, n, v);
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
	s = str_trim(s);
	a->raw = s;
	size_t i = lex_skip_token(s, 0);
	if (i == 0 || (i < s.l && !lex_ws((unsigned char)s.p[i])))
		return -1;
	a->scheme = lex_sub(s, 0, i);
	bool ok = params(a, s, i);
	/* Other schemes (Basic, or RFC 4475 regaut01's unknown one) may carry a token68 that
	 * is not a parameter list; the scheme alone is what the caller needs to refuse them. */
	if (!str_caseeq(a->scheme, STR("Digest")))
		return 0;
	return ok ? 0 : -1;
}
