/* lex.h: character classes and small scanners shared by the SIP parser files (private). */
#ifndef PARLEY_SIP_LEX_H
#define PARLEY_SIP_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* RFC 3261 §25.1 token characters: alphanum and -.!%*_+`'~ */
static inline bool lex_token(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '-': case '.': case '!': case '%': case '*': case '_': case '+': case '`': case '\'': case '~':
		return true;
	default:
		return false;
	}
}

static inline bool lex_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool lex_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool lex_hex(unsigned char c)
{
	return lex_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Linear white space inside a header value: folded lines keep their CRLF in the view, so
 * CR and LF count as white space there. */
static inline bool lex_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Index of the first byte at or after i that is not white space. */
static inline size_t lex_skip_ws(struct str s, size_t i)
{
	while (i < s.l && lex_ws((unsigned char)s.p[i]))
		i++;
	return i;
}

/* Index just past a token starting at i (i itself when there is none). */
static inline size_t lex_skip_token(struct str s, size_t i)
{
	while (i < s.l && lex_token((unsigned char)s.p[i]))
		i++;
	return i;
}

static inline struct str lex_sub(struct str s, size_t from, size_t to)
{
	return (struct str){ s.p + from, to - from };
}

static inline bool lex_all_token(struct str s)
{
	return s.l > 0 && lex_skip_token(s, 0) == s.l;
}

/* Index just past a quoted string whose opening quote is at i, or 0 when it is not
 * terminated (0 can never be a valid end since the string takes at least two bytes). */
size_t sip__skip_quoted(struct str s, size_t i);

/* Takes the next ";name[=value]" parameter of a parameter list at *pos (LWS allowed
 * around ';' and '='); a quoted value is returned without its quotes. Returns 1 for a
 * parameter, 0 at the end of the list, -1 when the list is malformed (empty name or value,
 * a stray character). */
int sip__param_next(struct str s, size_t *pos, struct str *name, struct str *value);

/* Checks a host: hostname, IPv4 address or bracketed IPv6 reference. */
bool sip__host_ok(struct str h);
/* Parses "host[:port]" at i; returns the index after it, or 0 when malformed. */
size_t sip__hostport(struct str s, size_t i, struct str *host, uint16_t *port);

#endif
