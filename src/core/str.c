/* str.c: helpers for string views. */
#include "core/str.h"

#include <string.h>

struct str str_from_cstr(const char *s)
{
	return (struct str){ s, s ? strlen(s) : 0 };
}

bool str_eq(struct str a, struct str b)
{
	return a.l == b.l && (a.l == 0 || memcmp(a.p, b.p, a.l) == 0);
}

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

bool str_caseeq(struct str a, struct str b)
{
	if (a.l != b.l)
		return false;
	for (size_t i = 0; i < a.l; i++)
		if (lower(a.p[i]) != lower(b.p[i]))
			return false;
	return true;
}

bool str_caseeq_cstr(struct str a, const char *b)
{
	return str_caseeq(a, str_from_cstr(b));
}

bool str_has_prefix_case(struct str s, struct str prefix)
{
	return s.l >= prefix.l && str_caseeq((struct str){ s.p, prefix.l }, prefix);
}

static inline bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct str str_trim(struct str s)
{
	while (s.l && is_ws(s.p[0])) {
		s.p++;
		s.l--;
	}
	while (s.l && is_ws(s.p[s.l - 1]))
		s.l--;
	return s;
}

bool str_to_u64(struct str s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (s.l == 0)
		return false;
	for (size_t i = 0; i < s.l; i++) {
		char c = s.p[i];
		if (c < '0' || c > '9')
			return false;
		uint64_t d = (uint64_t)(c - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

long str_chr(struct str s, char c)
{
	const char *q = s.l ? memchr(s.p, c, s.l) : NULL;
	return q ? (long)(q - s.p) : -1;
}

char *str_to_cbuf(struct str s, char *dst, size_t n)
{
	if (n == 0)
		return dst;
	size_t k = s.l < n - 1 ? s.l : n - 1;
	if (k)
		memcpy(dst, s.p, k);
	dst[k] = '\0';
	return dst;
}

uint64_t str_hash(struct str s)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < s.l; i++) {
		h ^= (unsigned char)s.p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t str_casehash(struct str s)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < s.l; i++) {
		h ^= (unsigned char)lower(s.p[i]);
		h *= 1099511628211ULL;
	}
	return h;
}
