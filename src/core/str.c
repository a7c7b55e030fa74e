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

/* The eight bytes of x with ASCII upper-case letters made lower case and every other
 * byte (128 and above too) left alone. Per byte, on its low
 * seven bits: adding 0x3f sets bit 7 from 'A' up and adding 0x25 sets it past 'Z'; neither
 * sum carries into the next byte. A letter gets 0x20 or'ed in. */
static inline uint64_t fold8(uint64_t x)
{
	const uint64_t hi = 0x8080808080808080ULL;
	uint64_t lo7 = x & ~hi;
	uint64_t upper = (lo7 + 0x3f3f3f3f3f3f3f3fULL) & ~(lo7 + 0x2525252525252525ULL) & ~x & hi;
	return x | (upper >> 2);
}

static inline uint64_t load8(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t load4(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t load2(const char *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* Eight bytes at a time: the callers compare host names, realms, parameter names and
 * tokens, which are mostly longer than a few bytes. Bytes that are equal as they are need
 * no folding, so a word is folded only when it differs. Lengths that are not a multiple of
 * eight end with a word overlapping the one before; below eight, two overlapping halves are
 * packed into one word. */
bool str_caseeq(struct str a, struct str b)
{
	if (a.l != b.l)
		return false;
	size_t n = a.l;
	uint64_t x, y;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			x = load8(a.p + i);
			y = load8(b.p + i);
			if (x != y && fold8(x) != fold8(y))
				return false;
		}
		x = load8(a.p + n - 8);
		y = load8(b.p + n - 8);
	} else if (n >= 4) {
		x = load4(a.p) | load4(a.p + n - 4) << 32;
		y = load4(b.p) | load4(b.p + n - 4) << 32;
	} else if (n >= 2) {
		x = load2(a.p) | load2(a.p + n - 2) << 16;
		y = load2(b.p) | load2(b.p + n - 2) << 16;
	} else if (n == 1) {
		x = (unsigned char)a.p[0];
		y = (unsigned char)b.p[0];
	} else {
		return true;
	}
	return x == y || fold8(x) == fold8(y);
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
	/* Nineteen digits stay below 2**64, so a number that short needs no overflow test
	 * per digit, only one against max at the end. */
	if (s.l <= 19) {
		for (size_t i = 0; i < s.l; i++) {
			unsigned d = (unsigned)(unsigned char)s.p[i] - '0';
			if (d > 9)
				return false;
			v = v * 10 + d;
		}
		if (v > max)
			return false;
		*out = v;
		return true;
	}
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

void str_hex_u64(uint64_t v, char out[16])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[i] = digits[v & 15];
		v >>= 4;
	}
}

size_t str_join(char *dst, size_t n, const struct str *parts, size_t count)
{
	if (!n)
		return 0;
	size_t w = 0;
	for (size_t i = 0; i < count; i++) {
		size_t l = parts[i].l < n - 1 - w ? parts[i].l : n - 1 - w;
		if (l)
			memcpy(dst + w, parts[i].p, l);
		w += l;
	}
	dst[w] = '\0';
	return w;
}
