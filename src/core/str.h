/* str.h: read-only string views (pointer + length) into buffers owned by someone else. */
#ifndef PARLEY_CORE_STR_H
#define PARLEY_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A view never owns its bytes and is not NUL-terminated: whoever made it must keep the
 * underlying buffer alive for as long as the view is used. */
struct str {
	const char *p;
	size_t l;
};

#define STR(lit) ((struct str){ (lit), sizeof(lit) - 1 })
#define STR_NULL ((struct str){ NULL, 0 })
/* printf("%.*s", STR_FMT(s)) */
#define STR_FMT(s) (int)(s).l, (s).p

struct str str_from_cstr(const char *s);
bool str_eq(struct str a, struct str b);
bool str_caseeq(struct str a, struct str b);
bool str_caseeq_cstr(struct str a, const char *b);
bool str_has_prefix_case(struct str s, struct str prefix);
struct str str_trim(struct str s); /* strips SP, HTAB, CR, LF both ends */
/* Parses a decimal unsigned integer filling the whole view; fails on overflow past max. */
bool str_to_u64(struct str s, uint64_t max, uint64_t *out);
/* Finds c in s; returns its index or -1. */
long str_chr(struct str s, char c);
/* Copies into dst (size n, always NUL-terminated, truncating); returns dst. */
char *str_to_cbuf(struct str s, char *dst, size_t n);
/* FNV-1a over the bytes: for tables whose keys no peer chooses (core/khash.h for those). */
uint64_t str_hash(struct str s);
/* Writes v as 16 lowercase hex digits, most significant first, into out (no NUL): branches
 * and tags, without snprintf on the hot path. */
void str_hex_u64(uint64_t v, char out[16]);
/* Joins the views into dst (size n), cut to n - 1 bytes as snprintf would and NUL-terminated
 * when n > 0, without snprintf's cost; returns the length written. */
size_t str_join(char *dst, size_t n, const struct str *parts, size_t count);

#endif
