/* addr.c: name-addr / addr-spec values (From, To, Contact, Route, Record-Route) and lists. */
#include "sip/sip.h"

#include <string.h>

#include "sip/lex.h"

bool sip_list_next(struct str *rest, struct str *item)
{
	struct str s = *rest;
	size_t i = 0;
	/* Empty elements ("a,,b") are skipped rather than rejected: a proxy meets them in
	 * headers it does not own, and an element that matters is checked by its own parser. */
	while (i < s.l && (lex_ws((unsigned char)s.p[i]) || s.p[i] == ','))
		i++;
	if (i >= s.l) {
		*rest = (struct str){ s.p + s.l, 0 };
		return false;
	}
	size_t b = i;
	while (i < s.l) {
		i = lex_find3(s, i, ',', '"', '<');
		if (i >= s.l)
			break;
		unsigned char c = (unsigned char)s.p[i];
		if (c == ',') {
			break;
		} else if (c == '"') {
			size_t e = sip__skip_quoted(s, i);
			i = e ? e : s.l;
		} else {
			size_t gt = lex_find1(s, i, '>');
			i = gt < s.l ? gt + 1 : s.l;
		}
	}
	*item = lex_trim(lex_sub(s, b, i));
	*rest = lex_sub(s, i < s.l ? i + 1 : i, s.l);
	return true;
}

int sip_addr_parse(struct sip_addr *a, struct str s)
{
	memset(a, 0, sizeof *a);
	return sip__addr_parse0(a, lex_trim(s));
}

int sip__addr_parse0(struct sip_addr *a, struct str s)
{
	a->raw = s;
	if (s.l == 1 && s.p[0] == '*') {
		a->star = true;
		return 0;
	}
	if (s.l == 0)
		return -1;
	size_t i = 0;
	if (s.p[0] == '"') {
		/* An unterminated quote is rejected (RFC 4475 quotbal allows guessing the
		 * closing quote; we do not guess). */
		size_t e = sip__skip_quoted(s, 0);
		if (e == 0)
			return -1;
		a->display = lex_sub(s, 1, e - 1);
		i = lex_skip_ws(s, e);
		if (i >= s.l || s.p[i] != '<')
			return -1;
	} else {
		/* A display name of tokens and LWS, possibly with no LWS before '<' (RFC 4475
		 * lwsdisp). Anything else, like a comma, makes it an addr-spec, which then
		 * fails (baddn is rejected rather than guessed). */
		size_t j = lex_span(s, 0, LEX_C_TOKEN | LEX_C_LWS);
		if (j < s.l && s.p[j] == '<') {
			a->display = lex_trim(lex_sub(s, 0, j));
			i = j;
		}
	}
	if (i < s.l && s.p[i] == '<') {
		size_t b = i + 1;
		i = lex_find1(s, i, '>');
		if (i >= s.l)
			return -1;
		a->uri_str = lex_sub(s, b, i);
		a->bracketed = true;
		i++;
	} else {
		/* addr-spec: the URI cannot hold ';', ',' or '?' (RFC 3261 §20), so the first
		 * ';' or LWS ends it; a '?' means the sender forgot the brackets (RFC 4475
		 * regbadct), which we reject rather than infer. */
		while (i < s.l && s.p[i] != ';' && !lex_ws((unsigned char)s.p[i]))
			i++;
		a->uri_str = lex_sub(s, 0, i);
		if (i && memchr(s.p, '?', i))
			return -1;
	}
	if (sip__uri_parse0(&a->uri, a->uri_str) != 0)
		return -1;
	i = lex_skip_ws(s, i);
	a->params = lex_sub(s, i, s.l);
	size_t pos = 0;
	struct str n, v;
	int r;
	while ((r = lex_param_next(a->params, &pos, &n, &v)) == 1) {
		if (lex_caseeq_lc(n, STR("tag"))) {
			if (v.l == 0)
				return -1;
			a->tag = v;
		}
	}
	return r == 0 ? 0 : -1;
}
