/* fuzz_http.c: libFuzzer target for what the HTTP module reads and writes itself: import lines, user@domain, JSON strings. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

static void inside(struct str s, const char *b, size_t n)
{
	if (s.l && (s.p < b || s.p + s.l > b + n))
		abort();
}

/* Whether s is well-formed UTF-8 without NUL (then JSON must give it back unchanged). */
static bool plain_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t len = c == 0           ? 0
			     : c < 0x80       ? 1
			     : (c >> 5) == 6  ? 2
			     : (c >> 4) == 14 ? 3
			     : (c >> 3) == 30 ? 4
					      : 0;
		if (!len || i + len > n)
			return false;
		uint32_t cp = len == 1 ? c : len == 2 ? (c & 31) : len == 3 ? (c & 15) : (c & 7);
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 63);
		}
		static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
		if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* The input as one JSON string: jansson must read it back, and get exactly the input when
 * the input is plain UTF-8. */
static void as_json(const uint8_t *data, size_t size)
{
	struct http_buf b = { 0 };
	http__putc(&b, '[');
	http__json_str(&b, (struct str){ (const char *)data, size });
	http__putc(&b, ']');
	if (b.oom)
		abort();
	json_error_t e;
	json_t *j = json_loadb(b.p, b.len, JSON_ALLOW_NUL, &e);
	if (!j || json_array_size(j) != 1)
		abort();
	json_t *v = json_array_get(j, 0);
	if (plain_utf8(data, size) && (json_string_length(v) != size || memcmp(json_string_value(v), data, size)))
		abort();
	json_decref(j);
	free(b.p);
}

static void as_import(const char *b, size_t n)
{
	struct str rest = { b, n };
	unsigned line = 0, last = 0, count = 0;
	struct http_import_line ln;
	while (http__import_next(&rest, &line, &ln)) {
		if (line <= last || ++count > n)
			abort();
		last = line;
		inside(rest, b, n);
		if (!ln.error) {
			inside(ln.user, b, n);
			inside(ln.domain, b, n);
			inside(ln.password, b, n);
			if (!ln.user.l || !ln.domain.l || !ln.password.l || ln.password.l > HTTP_PASSWORD_MAX)
				abort();
		}
	}
	if (rest.l)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_json(data, size);
	as_import((const char *)data, size);
	struct str user, domain;
	if (!http__split_user((struct str){ (const char *)data, size }, &user, &domain)) {
		inside(user, (const char *)data, size);
		inside(domain, (const char *)data, size);
		if (!user.l || !domain.l || memchr(domain.p, '@', domain.l))
			abort();
	}
	return 0;
}
