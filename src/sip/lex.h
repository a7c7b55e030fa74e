/* lex.h: character classes and small scanners shared by the SIP parser files (private). */
#ifndef PARLEY_SIP_LEX_H
#define PARLEY_SIP_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* Byte sets as two 64-bit masks over ASCII: bit c of lo for c < 64, bit c - 64 of hi for
 * 64 <= c < 128; no byte of 128 and above is in a set. LEX_LO/LEX_HI give a byte's bit. */
#define LEX_LO(c) ((unsigned)(c) < 64 ? 1ULL << ((unsigned)(c) & 63) : 0ULL)
#define LEX_HI(c) ((unsigned)(c) >= 64 && (unsigned)(c) < 128 ? 1ULL << ((unsigned)(c) & 63) : 0ULL)
#define LEX_DIGITS_LO 0x03ff000000000000ULL            /* '0'..'9' */
#define LEX_ALPHA_HI 0x07fffffe07fffffeULL             /* 'A'..'Z', 'a'..'z' */

/* RFC 3261 §25.1 token characters: alphanum and -.!%*_+`'~ */
#define LEX_TOKEN_LO (LEX_DIGITS_LO | LEX_LO('-') | LEX_LO('.') | LEX_LO('!') | LEX_LO('%') | \
		      LEX_LO('*') | LEX_LO('+') | LEX_LO('\''))
#define LEX_TOKEN_HI (LEX_ALPHA_HI | LEX_HI('_') | LEX_HI('`') | LEX_HI('~'))
/* unreserved = alphanum / mark (RFC 3261 §25.1) */
#define LEX_UNRES_LO (LEX_DIGITS_LO | LEX_LO('-') | LEX_LO('.') | LEX_LO('!') | LEX_LO('*') | \
		      LEX_LO('\'') | LEX_LO('(') | LEX_LO(')'))
#define LEX_UNRES_HI (LEX_ALPHA_HI | LEX_HI('_') | LEX_HI('~'))
/* What a SIP URI part allows besides unreserved and escapes (RFC 3261 §25.1). */
#define LEX_PASSWORD_LO (LEX_UNRES_LO | LEX_LO('&') | LEX_LO('=') | LEX_LO('+') | LEX_LO('$') | LEX_LO(','))
#define LEX_PASSWORD_HI LEX_UNRES_HI
#define LEX_USER_LO (LEX_PASSWORD_LO | LEX_LO(';') | LEX_LO('?') | LEX_LO('/'))
#define LEX_USER_HI LEX_UNRES_HI
#define LEX_PARAM_LO (LEX_UNRES_LO | LEX_LO('/') | LEX_LO(':') | LEX_LO('&') | LEX_LO('+') | LEX_LO('$'))
#define LEX_PARAM_HI (LEX_UNRES_HI | LEX_HI('[') | LEX_HI(']'))
#define LEX_HEADER_LO (LEX_PARAM_LO | LEX_LO('?') | LEX_LO('='))
#define LEX_HEADER_HI LEX_PARAM_HI
/* Host name / IPv4 characters, scheme characters after the first. */
#define LEX_HOST_LO (LEX_DIGITS_LO | LEX_LO('-') | LEX_LO('.'))
#define LEX_HOST_HI (LEX_ALPHA_HI | LEX_HI('_'))
#define LEX_SCHEME_LO (LEX_DIGITS_LO | LEX_LO('+') | LEX_LO('-') | LEX_LO('.'))
#define LEX_SCHEME_HI LEX_ALPHA_HI
/* Bytes that end a parameter name or an unquoted value: LWS ; = , " < > ? */
#define LEX_DELIM_LO (LEX_LO(' ') | LEX_LO('\t') | LEX_LO('\r') | LEX_LO('\n') | LEX_LO(';') | \
		      LEX_LO('=') | LEX_LO(',') | LEX_LO('"') | LEX_LO('<') | LEX_LO('>') | LEX_LO('?'))
#define LEX_DELIM_HI 0ULL
/* Bytes a comma-separated list element must look at: , " < */
#define LEX_LIST_LO (LEX_LO(',') | LEX_LO('"') | LEX_LO('<'))
#define LEX_LIST_HI 0ULL
/* Bytes that cannot be part of a URI in a header: CTL, SP, DEL, < > " */
#define LEX_URIEND_LO (0x1ffffffffULL | LEX_LO('"') | LEX_LO('<') | LEX_LO('>'))
#define LEX_URIEND_HI LEX_HI(0x7f)

/* The sets above as bits of one lookup table, built from the masks by the compiler. */
enum {
	LEX_C_TOKEN = 1 << 0,
	LEX_C_UNRES = 1 << 1,
	LEX_C_PASSWORD = 1 << 2,
	LEX_C_USER = 1 << 3,
	LEX_C_PARAM = 1 << 4,
	LEX_C_HEADER = 1 << 5,
	LEX_C_HOST = 1 << 6,
	LEX_C_SCHEME = 1 << 7,
	LEX_C_DELIM = 1 << 8,
	LEX_C_LIST = 1 << 9,
	LEX_C_URIEND = 1 << 10,
};

#define LEX_BIT_(c, set) ((c) < 64 ? ((set##_LO >> ((c) & 63)) & 1) : (c) < 128 ? ((set##_HI >> ((c) & 63)) & 1) : 0)
#define LEX_CLS_(c)                                                                              \
	(unsigned short)(LEX_BIT_(c, LEX_TOKEN) * LEX_C_TOKEN | LEX_BIT_(c, LEX_UNRES) * LEX_C_UNRES | \
			 LEX_BIT_(c, LEX_PASSWORD) * LEX_C_PASSWORD | LEX_BIT_(c, LEX_USER) * LEX_C_USER | \
			 LEX_BIT_(c, LEX_PARAM) * LEX_C_PARAM | LEX_BIT_(c, LEX_HEADER) * LEX_C_HEADER | \
			 LEX_BIT_(c, LEX_HOST) * LEX_C_HOST | LEX_BIT_(c, LEX_SCHEME) * LEX_C_SCHEME |   \
			 LEX_BIT_(c, LEX_DELIM) * LEX_C_DELIM | LEX_BIT_(c, LEX_LIST) * LEX_C_LIST |     \
			 LEX_BIT_(c, LEX_URIEND) * LEX_C_URIEND)
#define LEX_R4_(c) LEX_CLS_(c), LEX_CLS_((c) + 1), LEX_CLS_((c) + 2), LEX_CLS_((c) + 3)
#define LEX_R16_(c) LEX_R4_(c), LEX_R4_((c) + 4), LEX_R4_((c) + 8), LEX_R4_((c) + 12)
#define LEX_R64_(c) LEX_R16_(c), LEX_R16_((c) + 16), LEX_R16_((c) + 32), LEX_R16_((c) + 48)

static const unsigned short lex_cls[256] = { LEX_R64_(0), LEX_R64_(64), LEX_R64_(128), LEX_R64_(192) };

/* True when byte c is in one of the LEX_C_* classes given. */
static inline bool lex_is(unsigned char c, unsigned cls)
{
	return (lex_cls[c] & cls) != 0;
}

static inline bool lex_token(unsigned char c)
{
	return lex_is(c, LEX_C_TOKEN);
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

/* str_trim() inlined: strips SP, HTAB, CR, LF both ends. */
static inline struct str lex_trim(struct str s)
{
	while (s.l && lex_ws((unsigned char)s.p[0])) {
		s.p++;
		s.l--;
	}
	while (s.l && lex_ws((unsigned char)s.p[s.l - 1]))
		s.l--;
	return s;
}

/* str_caseeq(a, lit) for a literal of lower-case letters only: lex_caseeq_lc(n, STR("tag")).
 * x | 0x20 equals a lower-case letter only when x is that letter in either case. */
static inline bool lex_caseeq_lc(struct str a, struct str lit)
{
	if (a.l != lit.l)
		return false;
	for (size_t i = 0; i < a.l; i++)
		if (((unsigned char)a.p[i] | 0x20) != (unsigned char)lit.p[i])
			return false;
	return true;
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

struct sip_uri;
struct sip_addr;
struct sip_via;
/* sip_uri_parse(), sip_addr_parse(), sip_via_parse() for a structure already zeroed
 * (the message parser clears the whole message once). */
int sip__uri_parse0(struct sip_uri *u, struct str s);
int sip__addr_parse0(struct sip_addr *a, struct str s);
int sip__via_parse0(struct sip_via *v, struct str s);

#endif
