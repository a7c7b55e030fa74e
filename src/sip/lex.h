/* lex.h: character classes and small scanners shared by the SIP parser files (private). */
#ifndef PARLEY_SIP_LEX_H
#define PARLEY_SIP_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/str.h"

/* Byte sets as two 64-bit masks over ASCII: bit c of lo for c < 64, bit c - 64 of hi for
 * 64 <= c < 128; no byte of 128 and above is in a set. LEX_LO/LEX_HI give a byte's bit. */
#define LEX_LO(c) ((unsigned)(c) < 64 ? 1ULL << ((unsigned)(c)&63) : 0ULL)
#define LEX_HI(c) ((unsigned)(c) >= 64 && (unsigned)(c) < 128 ? 1ULL << ((unsigned)(c)&63) : 0ULL)
#define LEX_DIGITS_LO 0x03ff000000000000ULL /* '0'..'9' */
#define LEX_ALPHA_HI 0x07fffffe07fffffeULL  /* 'A'..'Z', 'a'..'z' */

/* RFC 3261 §25.1 token characters: alphanum and -.!%*_+`'~ */
#define LEX_TOKEN_LO                                                                                         \
	(LEX_DIGITS_LO | LEX_LO('-') | LEX_LO('.') | LEX_LO('!') | LEX_LO('%') | LEX_LO('*') | LEX_LO('+') | \
	 LEX_LO('\''))
#define LEX_TOKEN_HI (LEX_ALPHA_HI | LEX_HI('_') | LEX_HI('`') | LEX_HI('~'))
/* unreserved = alphanum / mark (RFC 3261 §25.1) */
#define LEX_UNRES_LO                                                                                          \
	(LEX_DIGITS_LO | LEX_LO('-') | LEX_LO('.') | LEX_LO('!') | LEX_LO('*') | LEX_LO('\'') | LEX_LO('(') | \
	 LEX_LO(')'))
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
#define LEX_DELIM_LO                                                                                          \
	(LEX_LO(' ') | LEX_LO('\t') | LEX_LO('\r') | LEX_LO('\n') | LEX_LO(';') | LEX_LO('=') | LEX_LO(',') | \
	 LEX_LO('"') | LEX_LO('<') | LEX_LO('>') | LEX_LO('?'))
#define LEX_DELIM_HI 0ULL
/* Bytes that end an unquoted auth-param value: LWS and ',' */
#define LEX_VALEND_LO (LEX_LO(' ') | LEX_LO('\t') | LEX_LO('\r') | LEX_LO('\n') | LEX_LO(','))
#define LEX_VALEND_HI 0ULL
/* Linear white space as lex_ws() sees it: SP HTAB CR LF */
#define LEX_LWS_LO (LEX_LO(' ') | LEX_LO('\t') | LEX_LO('\r') | LEX_LO('\n'))
#define LEX_LWS_HI 0ULL
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
	LEX_C_VALEND = 1 << 9,
	LEX_C_URIEND = 1 << 10,
	LEX_C_LWS = 1 << 11,
};

#define LEX_BIT_(c, set) ((c) < 64 ? ((set##_LO >> ((c)&63)) & 1) : (c) < 128 ? ((set##_HI >> ((c)&63)) & 1) : 0)
#define LEX_CLS_(c)                                                                                        \
	(unsigned short)(LEX_BIT_(c, LEX_TOKEN) * LEX_C_TOKEN | LEX_BIT_(c, LEX_UNRES) * LEX_C_UNRES |     \
			 LEX_BIT_(c, LEX_PASSWORD) * LEX_C_PASSWORD | LEX_BIT_(c, LEX_USER) * LEX_C_USER | \
			 LEX_BIT_(c, LEX_PARAM) * LEX_C_PARAM | LEX_BIT_(c, LEX_HEADER) * LEX_C_HEADER |   \
			 LEX_BIT_(c, LEX_HOST) * LEX_C_HOST | LEX_BIT_(c, LEX_SCHEME) * LEX_C_SCHEME |     \
			 LEX_BIT_(c, LEX_DELIM) * LEX_C_DELIM | LEX_BIT_(c, LEX_VALEND) * LEX_C_VALEND |   \
			 LEX_BIT_(c, LEX_URIEND) * LEX_C_URIEND | LEX_BIT_(c, LEX_LWS) * LEX_C_LWS)
#define LEX_R4_(c) LEX_CLS_(c), LEX_CLS_((c) + 1), LEX_CLS_((c) + 2), LEX_CLS_((c) + 3)
#define LEX_R16_(c) LEX_R4_(c), LEX_R4_((c) + 4), LEX_R4_((c) + 8), LEX_R4_((c) + 12)
#define LEX_R64_(c) LEX_R16_(c), LEX_R16_((c) + 16), LEX_R16_((c) + 32), LEX_R16_((c) + 48)

static const unsigned short lex_cls[256] = { LEX_R64_(0), LEX_R64_(64), LEX_R64_(128), LEX_R64_(192) };

/* True when byte c is in one of the LEX_C_* classes given. */
static inline bool lex_is(unsigned char c, unsigned cls)
{
	return (lex_cls[c] & cls) != 0;
}

/* Index of the first byte at or after i that is not in the classes cls (s.l when all
 * are). Four bytes per bounds check: this loop reads most of every message. */
static inline size_t lex_span(struct str s, size_t i, unsigned cls)
{
	for (; i + 4 <= s.l; i += 4) {
		if (!lex_is((unsigned char)s.p[i], cls))
			return i;
		if (!lex_is((unsigned char)s.p[i + 1], cls))
			return i + 1;
		if (!lex_is((unsigned char)s.p[i + 2], cls))
			return i + 2;
		if (!lex_is((unsigned char)s.p[i + 3], cls))
			return i + 3;
	}
	while (i < s.l && lex_is((unsigned char)s.p[i], cls))
		i++;
	return i;
}

/* Index of the first byte at or after i that is in the classes cls (s.l when none). */
static inline size_t lex_span_not(struct str s, size_t i, unsigned cls)
{
	for (; i + 4 <= s.l; i += 4) {
		if (lex_is((unsigned char)s.p[i], cls))
			return i;
		if (lex_is((unsigned char)s.p[i + 1], cls))
			return i + 1;
		if (lex_is((unsigned char)s.p[i + 2], cls))
			return i + 2;
		if (lex_is((unsigned char)s.p[i + 3], cls))
			return i + 3;
	}
	while (i < s.l && !lex_is((unsigned char)s.p[i], cls))
		i++;
	return i;
}

/* Word-at-a-time searches, on little-endian machines (the byte of lowest address is the
 * least significant one, so the first match is the lowest set bit). Elsewhere the byte
 * loops below do the same work. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LEX_SWAR 1
#endif

#define LEX_ONES 0x0101010101010101ULL
#define LEX_HIGHS 0x8080808080808080ULL

static inline uint64_t lex_load8(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Bit 7 of the byte of x equal to c is set in the result for the first such byte; bytes
 * after it may be marked too (the subtraction borrows), bytes before it never are. */
static inline uint64_t lex_eq8(uint64_t x, unsigned char c)
{
	x ^= LEX_ONES * c;
	return (x - LEX_ONES) & ~x & LEX_HIGHS;
}

/* Bit 7 set for the first byte of x below n (n <= 128; bytes of 128 and above never
 * count), with the same caveat about the bytes after it. */
static inline uint64_t lex_below8(uint64_t x, unsigned char n)
{
	return (x - LEX_ONES * n) & ~x & LEX_HIGHS;
}

/* The searches below take sixteen bytes at a time with SSE2 (every x86-64 has it), else
 * eight with the word tricks above, else one. lex_find() looks for up to three bytes
 * (pass the same byte again for fewer); n says how many differ, so that the compiler drops
 * the compares it does not need where the call is inlined. */
#if defined(__SSE2__)
#include <emmintrin.h>

/* One bit per byte of the sixteen at p, set where the byte is a, b or c. */
static inline unsigned lex_match16(const char *p, char a, char b, char c, int n)
{
	__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i m = _mm_cmpeq_epi8(x, _mm_set1_epi8(a));
	if (n > 1)
		m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8(b)));
	if (n > 2)
		m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8(c)));
	return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* Index of the first byte of s at or after i (i <= s.l) equal to a, b or c; s.l when
 * none. None of them may be NUL (the word search relies on it). */
static inline size_t lex_find(struct str s, size_t i, char a, char b, char c, int n)
{
#if defined(__SSE2__)
	if (s.l >= 16) {
		for (; i + 16 <= s.l; i += 16) {
			unsigned m = lex_match16(s.p + i, a, b, c, n);
			if (m)
				return i + (size_t)__builtin_ctz(m);
		}
		if (i >= s.l)
			return s.l;
		/* The last sixteen bytes, shifted so that byte i comes first: a compare has no
		 * carries, so the bytes before i do not disturb the ones after. */
		unsigned m = lex_match16(s.p + s.l - 16, a, b, c, n) >> (i + 16 - s.l);
		return m ? i + (size_t)__builtin_ctz(m) : s.l;
	}
#endif
#ifdef LEX_SWAR
	if (s.l >= 8) {
		for (; i + 8 <= s.l; i += 8) {
			uint64_t w = lex_load8(s.p + i);
			uint64_t m = lex_eq8(w, (unsigned char)a);
			if (n > 1)
				m |= lex_eq8(w, (unsigned char)b);
			if (n > 2)
				m |= lex_eq8(w, (unsigned char)c);
			if (m)
				return i + (size_t)__builtin_ctzll(m) / 8;
		}
		if (i >= s.l)
			return s.l;
		/* The last word is read from s.l - 8 and shifted so that byte i comes first:
		 * the bytes before i may match (a match borrows into the byte after it), the
		 * zeros shifted in never do. */
		uint64_t w = lex_load8(s.p + s.l - 8) >> (8 * (i + 8 - s.l));
		uint64_t m = lex_eq8(w, (unsigned char)a);
		if (n > 1)
			m |= lex_eq8(w, (unsigned char)b);
		if (n > 2)
			m |= lex_eq8(w, (unsigned char)c);
		return m ? i + (size_t)__builtin_ctzll(m) / 8 : s.l;
	}
#endif
	while (i < s.l && s.p[i] != a && (n < 2 || s.p[i] != b) && (n < 3 || s.p[i] != c))
		i++;
	return i;
}

static inline size_t lex_find1(struct str s, size_t i, char a)
{
	return lex_find(s, i, a, a, a, 1);
}

static inline size_t lex_find2(struct str s, size_t i, char a, char b)
{
	return lex_find(s, i, a, b, b, 2);
}

static inline size_t lex_find3(struct str s, size_t i, char a, char b, char c)
{
	return lex_find(s, i, a, b, c, 3);
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
	return lex_is(c, LEX_C_LWS);
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
 * x | 0x20 equals a lower-case letter only when x is that letter in either case. The
 * bytes are or'ed and compared a word at a time (two overlapping halves below eight
 * bytes); with the literal's length known where this is inlined, only a's loads remain. */
static inline bool lex_caseeq_lc(struct str a, struct str lit)
{
	if (a.l != lit.l)
		return false;
	size_t n = a.l;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8)
			if ((lex_load8(a.p + i) | 0x2020202020202020ULL) != lex_load8(lit.p + i))
				return false;
		return (lex_load8(a.p + n - 8) | 0x2020202020202020ULL) == lex_load8(lit.p + n - 8);
	}
	uint32_t x, y, u, v;
	if (n >= 4) {
		memcpy(&x, a.p, 4);
		memcpy(&y, lit.p, 4);
		memcpy(&u, a.p + n - 4, 4);
		memcpy(&v, lit.p + n - 4, 4);
		return ((x | 0x20202020U) == y) & ((u | 0x20202020U) == v);
	}
	if (n >= 2) {
		uint16_t x2, y2, u2, v2;
		memcpy(&x2, a.p, 2);
		memcpy(&y2, lit.p, 2);
		memcpy(&u2, a.p + n - 2, 2);
		memcpy(&v2, lit.p + n - 2, 2);
		return ((uint16_t)(x2 | 0x2020U) == y2) & ((uint16_t)(u2 | 0x2020U) == v2);
	}
	return n == 0 || ((unsigned char)a.p[0] | 0x20) == (unsigned char)lit.p[0];
}

static inline bool lex_all_token(struct str s)
{
	return s.l > 0 && lex_skip_token(s, 0) == s.l;
}

/* Index just past a quoted string whose opening quote is at i, or 0 when it is not
 * terminated (0 can never be a valid end since the string takes at least two bytes). */
size_t sip__skip_quoted(struct str s, size_t i);

/* sip__skip_quoted() inlined, for the auth-params that are mostly quoted strings. */
static inline size_t lex_skip_quoted(struct str s, size_t i)
{
	for (i++; i < s.l; i += 2) {
		i = lex_find2(s, i, '"', '\\');
		if (i >= s.l)
			break;
		if (s.p[i] == '"')
			return i + 1;
		/* A backslash: the byte after it is taken as it is. */
	}
	return 0;
}

/* Takes the next ";name[=value]" parameter of a parameter list at *pos (LWS allowed
 * around ';' and '='); a quoted value is returned without its quotes. Returns 1 for a
 * parameter, 0 at the end of the list, -1 when the list is malformed (empty name or value,
 * a stray character). */
int sip__param_next(struct str s, size_t *pos, struct str *name, struct str *value);

/* Checks a host: hostname, IPv4 address or bracketed IPv6 reference. */
bool sip__host_ok(struct str h);
/* Parses "host[:port]" at i; returns the index after it, or 0 when malformed. */
size_t sip__hostport(struct str s, size_t i, struct str *host, uint16_t *port);

/* Splits "host[:port]" starting at i; returns the index after it, or 0 on error. The host
 * is a hostname or IPv4 address of host characters, or a bracketed IPv6 reference. */
static inline size_t lex_hostport(struct str s, size_t i, struct str *host, uint16_t *port)
{
	size_t h0 = i;
	if (i < s.l && s.p[i] == '[') {
		while (i < s.l && s.p[i] != ']')
			i++;
		if (i >= s.l)
			return 0;
		i++;
		*host = lex_sub(s, h0, i);
		if (!sip__host_ok(*host))
			return 0;
	} else {
		/* The scan takes only host characters, so sip__host_ok() has nothing left to
		 * check but the length. */
		i = lex_span(s, i, LEX_C_HOST);
		*host = lex_sub(s, h0, i);
		if (i == h0)
			return 0;
	}
	*port = 0;
	if (i < s.l && s.p[i] == ':') {
		size_t p0 = ++i;
		unsigned v = 0;
		while (i < s.l && lex_digit((unsigned char)s.p[i])) {
			v = v * 10 + (unsigned)(s.p[i] - '0');
			if (v > 65535)
				return 0;
			i++;
		}
		if (i == p0)
			return 0;
		*port = (uint16_t)v;
	}
	return i;
}

/* sip__param_next() with the common shapes, ";name=value" and ";name" followed by ';' or
 * the end, with no LWS or quotes, read inline. Anything else is left to
 * sip__param_next(), which reads those shapes the same way. */
static inline int lex_param_next(struct str s, size_t *pos, struct str *name, struct str *value)
{
	size_t i = *pos;
	if (i == s.l)
		return 0;
	if (s.p[i] == ';') {
		size_t n0 = i + 1, ne = lex_span_not(s, n0, LEX_C_DELIM);
		if (ne > n0) {
			if (ne == s.l || s.p[ne] == ';') {
				*name = lex_sub(s, n0, ne);
				*value = (struct str){ s.p + ne, 0 };
				*pos = ne;
				return 1;
			}
			if (s.p[ne] == '=') {
				size_t v0 = ne + 1, ve = lex_span_not(s, v0, LEX_C_DELIM);
				if (ve > v0) {
					*name = lex_sub(s, n0, ne);
					*value = lex_sub(s, v0, ve);
					*pos = ve;
					return 1;
				}
			}
		}
	}
	return sip__param_next(s, pos, name, value);
}

struct sip_uri;
struct sip_addr;
struct sip_via;
/* sip_uri_parse(), sip_addr_parse(), sip_via_parse() for a structure already zeroed
 * (the message parser clears the whole message once). The addr and via forms take a value
 * already trimmed of LWS at both ends, as header values and list items are. */
int sip__uri_parse0(struct sip_uri *u, struct str s);
int sip__addr_parse0(struct sip_addr *a, struct str s);
int sip__via_parse0(struct sip_via *v, struct str s);

#endif
