/* bencode.c: bencode writer into a bounded buffer and reader over views, for the ng protocol. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "media/media_int.h"

/* ---- writer ---------------------------------------------------------------------------- */

void bn_init(struct bn_out *o, char *buf, size_t cap)
{
	o->p = buf;
	o->len = 0;
	o->cap = cap;
	o->overflow = false;
}

static void put(struct bn_out *o, const void *p, size_t n)
{
	if (o->overflow)
		return;
	if (n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	if (n)
		memcpy(o->p + o->len, p, n);
	o->len += n;
}

void bn_dict(struct bn_out *o)
{
	put(o, "d", 1);
}

void bn_list(struct bn_out *o)
{
	put(o, "l", 1);
}

void bn_end(struct bn_out *o)
{
	put(o, "e", 1);
}

void bn_str(struct bn_out *o, struct str s)
{
	/* Keys and short values (most of a command) in one step when they fit: the same
	 * bytes as the general way below. */
	if (s.l < 100 && !o->overflow && s.l + 3 <= o->cap - o->len) {
		char *w = o->p + o->len;
		if (s.l >= 10)
			*w++ = (char)('0' + s.l / 10);
		*w++ = (char)('0' + s.l % 10);
		*w++ = ':';
		if (s.l)
			memcpy(w, s.p, s.l);
		o->len = (size_t)(w - o->p) + s.l;
		return;
	}
	/* The length prefix by hand: snprintf was a tenth of a relayed call's cost. */
	char h[24];
	size_t k = sizeof h, v = s.l;
	h[--k] = ':';
	do {
		h[--k] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, h + k, sizeof h - k);
	put(o, s.p, s.l);
}

void bn_int(struct bn_out *o, int64_t v)
{
	char h[24];
	int k = snprintf(h, sizeof(h), "i%" PRId64 "e", v);
	put(o, h, (size_t)k);
}

struct str bn_view(const struct bn_out *o)
{
	return (struct str){ o->p, o->len };
}

/* ---- reader ------------------------------------------------------------------------------ */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A string's "N:" prefix at p[0..n): sets *body to where its bytes start and *len to N.
 * Rejects leading zeros and a length longer than what is left, so the sum cannot wrap. */
static bool str_head(const char *p, size_t n, size_t *body, size_t *len)
{
	size_t i = 0, v = 0;
	/* One digit and ':' first: most strings of a reply are this short ("7:packets"), and
	 * the delete's answer alone has about 160 of them. */
	if (n >= 2 && p[1] == ':' && is_digit(p[0])) {
		v = (size_t)(p[0] - '0');
		if (v > n - 2)
			return false;
		*body = 2;
		*len = v;
		return true;
	}
	if (n == 0 || !is_digit(p[0]))
		return false;
	if (p[0] == '0' && n > 1 && is_digit(p[1]))
		return false;
	while (i < n && is_digit(p[i])) {
		v = v * 10 + (size_t)(p[i] - '0');
		if (v > n) /* longer than the whole input: no need to count further */
			return false;
		i++;
	}
	if (i >= n || p[i] != ':')
		return false;
	i++;
	if (v > n - i)
		return false;
	*body = i;
	*len = v;
	return true;
}

/* An integer "i-?[0-9]+e" at p[0..n): its length including i and e, or 0. Inline: the
 * walks below take one per figure of the delete's answer. */
static inline size_t int_len(const char *p, size_t n)
{
	size_t i = 1;
	if (n < 3 || p[0] != 'i')
		return 0;
	bool neg = p[i] == '-';
	if (neg)
		i++;
	size_t d = i;
	while (i < n && is_digit(p[i]))
		i++;
	if (i == d || i >= n || p[i] != 'e')
		return 0;
	if (p[d] == '0' && (i - d > 1 || neg)) /* "i03e", "i-0e" */
		return 0;
	return i + 1;
}

/* The whole length (prefix and body) of the string at p[0..n), whose first byte is a
 * digit, as str_head judges it; 0 when malformed. One- and two-digit lengths ("7:packets",
 * "10:local port": nearly every string of a reply) are read here without the call. */
static inline size_t str_len(const char *p, size_t n, size_t *body /* OUT */)
{
	size_t v;
	if (n >= 2 && p[1] == ':') {
		v = (size_t)(p[0] - '0');
		*body = 2;
	} else if (n >= 3 && p[2] == ':' && p[0] != '0' && is_digit(p[1])) {
		v = (size_t)(p[0] - '0') * 10 + (size_t)(p[1] - '0');
		*body = 3;
	} else {
		return str_head(p, n, body, &v) ? *body + v : 0;
	}
	return v > n - *body ? 0 : *body + v;
}

/* One value at p[0..n), strictly; its length in *used. Recursion is bounded by depth. */
static int check(const char *p, size_t n, unsigned depth, size_t *used)
{
	size_t body, len, k;
	if (n == 0)
		return -1;
	if (is_digit(p[0])) {
		if (!str_head(p, n, &body, &len))
			return -1;
		*used = body + len;
		return 0;
	}
	if (p[0] == 'i') {
		k = int_len(p, n);
		if (!k)
			return -1;
		*used = k;
		return 0;
	}
	if (p[0] != 'l' && p[0] != 'd')
		return -1;
	if (depth == 0)
		return -1;
	bool dict = p[0] == 'd';
	size_t i = 1;
	for (;;) {
		if (i >= n)
			return -1;
		if (p[i] == 'e') {
			*used = i + 1;
			return 0;
		}
		if (dict) {
			if (!is_digit(p[i]) || !str_head(p + i, n - i, &body, &len))
				return -1;
			i += body + len;
		}
		if (check(p + i, n - i, depth - 1, &k))
			return -1;
		i += k;
	}
}

bool bn_walk_some(struct str v, bn_enter_h *enter, bn_visit_h *cb, void *arg)
{
	struct str keys[BN_MAX_DEPTH];
	bool dict[BN_MAX_DEPTH];
	unsigned depth = 0;
	/* 0, or the depth inside the outermost container enter did not want: what is in it is
	 * checked as the rest is, without visits or questions (most of the delete's answer) */
	unsigned skip = 0;
	bool want_key = false;
	size_t i = 0, n = v.l, body, k;
	const char *p = v.p;
	while (i < n) {
		char c = p[i];
		if (c == 'e') {
			if (depth == 0)
				return false;
			depth--;
			if (depth < skip)
				skip = 0;
			i++;
			want_key = depth > 0 && dict[depth - 1];
			if (depth == 0)
				return i == n;
			continue;
		}
		if (want_key) {
			k = is_digit(c) ? str_len(p + i, n - i, &body) : 0;
			if (!k)
				return false;
			keys[depth - 1] = (struct str){ p + i + body, k - body };
			i += k;
			want_key = false;
			/* its value in the same turn; the end (or "e" in its place) at the top */
			if (i >= n || p[i] == 'e')
				continue;
			c = p[i];
		}
		if (c == 'l' || c == 'd') {
			if (depth == BN_MAX_DEPTH)
				return false;
			if (!skip && enter && !enter(arg, keys, depth))
				skip = depth + 1;
			dict[depth] = c == 'd';
			keys[depth] = STR_NULL;
			depth++;
			i++;
			want_key = c == 'd';
			continue;
		} else if (is_digit(c)) {
			k = str_len(p + i, n - i, &body);
			if (!k)
				return false;
			if (!skip && !cb(arg, keys, depth, (struct str){ p + i, k }))
				return true;
		} else if (c == 'i') {
			k = int_len(p + i, n - i);
			if (!k)
				return false;
			if (!skip && !cb(arg, keys, depth, (struct str){ p + i, k }))
				return true;
		} else {
			return false;
		}
		i += k;
		if (depth == 0)
			return i == n;
		want_key = dict[depth - 1];
		if (!want_key)
			keys[depth - 1] = STR_NULL;
	}
	return false;
}

bool bn_walk(struct str v, bn_visit_h *cb, void *arg)
{
	return bn_walk_some(v, NULL, cb, arg);
}

int bn_check(struct str s, unsigned max_depth)
{
	size_t used;
	if (!s.p || check(s.p, s.l, max_depth, &used) || used != s.l)
		return -1;
	return 0;
}

/* The length of the value at p[0..n) without recursion, so that a reader handed an
 * unchecked value can neither overread nor run out of stack; 0 when it is malformed. */
static size_t skip(const char *p, size_t n)
{
	size_t i = 0, depth = 0, body, len, k;
	do {
		if (i >= n)
			return 0;
		char c = p[i];
		if (is_digit(c)) {
			if (!str_head(p + i, n - i, &body, &len))
				return 0;
			i += body + len;
		} else if (c == 'i') {
			k = int_len(p + i, n - i);
			if (!k)
				return 0;
			i += k;
		} else if (c == 'l' || c == 'd') {
			depth++;
			i++;
		} else if (c == 'e' && depth > 0) {
			depth--;
			i++;
		} else {
			return 0;
		}
	} while (depth > 0);
	return i;
}

/* Takes one value off the front of *cur. */
static bool take(struct str *cur, struct str *item)
{
	size_t k = skip(cur->p, cur->l);
	if (!k)
		return false;
	*item = (struct str){ cur->p, k };
	cur->p += k;
	cur->l -= k;
	return true;
}

static bool begin(struct str v, char type, struct str *cursor)
{
	if (v.l < 2 || v.p[0] != type || v.p[v.l - 1] != 'e')
		return false;
	*cursor = (struct str){ v.p + 1, v.l - 2 };
	return true;
}

bool bn_list_begin(struct str list, struct str *cursor)
{
	return begin(list, 'l', cursor);
}

bool bn_dict_begin(struct str dict, struct str *cursor)
{
	return begin(dict, 'd', cursor);
}

bool bn_list_next(struct str *cursor, struct str *item)
{
	if (cursor->l == 0)
		return false;
	return take(cursor, item);
}

bool bn_dict_next(struct str *cursor, struct str *key, struct str *val)
{
	struct str k, save = *cursor;
	if (cursor->l == 0 || !take(cursor, &k) || !bn_as_str(k, key) || !take(cursor, val)) {
		*cursor = (struct str){ save.p + save.l, 0 }; /* malformed: end the walk */
		return false;
	}
	return true;
}

bool bn_dict_get(struct str dict, const char *key, struct str *val)
{
	struct str cur, k, v, want = str_from_cstr(key);
	if (!bn_dict_begin(dict, &cur))
		return false;
	while (bn_dict_next(&cur, &k, &v)) {
		if (str_eq(k, want)) {
			*val = v;
			return true;
		}
	}
	return false;
}

bool bn_as_str(struct str val, struct str *out)
{
	size_t body, len;
	if (!str_head(val.p, val.l, &body, &len) || body + len != val.l)
		return false;
	*out = (struct str){ val.p + body, len };
	return true;
}

bool bn_as_int(struct str val, int64_t *out)
{
	if (int_len(val.p, val.l) != val.l || val.l == 0)
		return false;
	size_t i = 1;
	bool neg = val.p[1] == '-';
	if (neg)
		i++;
	/* Accumulated as a negative number so that INT64_MIN fits. */
	int64_t v = 0;
	for (; val.p[i] != 'e'; i++) {
		int d = val.p[i] - '0';
		if (v < (INT64_MIN + d) / 10)
			return false;
		v = v * 10 - d;
	}
	if (!neg) {
		if (v == INT64_MIN)
			return false;
		v = -v;
	}
	*out = v;
	return true;
}

bool bn_dict_get_str(struct str dict, const char *key, struct str *out)
{
	struct str v;
	return bn_dict_get(dict, key, &v) && bn_as_str(v, out);
}
