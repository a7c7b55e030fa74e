/* auth.c: digest credentials and challenges (Authorization, WWW-Authenticate and the Proxy- forms). */
#include "sip/sip.h"

#include <string.h>

#include "sip/lex.h"

static void assign(struct sip_auth *a, struct str n, struct str v)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{ "username", offsetof(struct sip_auth, username) },
		{ "realm", offsetof(struct sip_auth, realm) },
		{ "nonce", offsetof(struct sip_auth, nonce) },
		{ "uri", offsetof(struct sip_auth, uri) },
		{ "response", offsetof(struct sip_auth, response) },
		{ "algorithm", offsetof(struct sip_auth, algorithm) },
		{ "cnonce", offsetof(struct sip_auth, cnonce) },
		{ "opaque", offsetof(struct sip_auth, opaque) },
		{ "qop", offsetof(struct sip_auth, qop) },
		{ "nc", offsetof(struct sip_auth, nc) },
	};
	if (str_caseeq_cstr(n, "stale")) {
		a->stale = str_caseeq_cstr(v, "true");
		return;
	}
	for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
		if (str_caseeq_cstr(n, fields[k].name))
			*(struct str *)((char *)a + fields[k].off) = v;
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
	if (!str_caseeq_cstr(a->scheme, "Digest"))
		return 0;
	return ok ? 0 : -1;
}
