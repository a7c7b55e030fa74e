/* json.c: what the HTTP module writes and reads by itself: JSON text out, percent-decoded path segments and import lines in. */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

/* The length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 when the
 * bytes there are not one (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

void http__put(struct http_buf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void http__putc(struct http_buf *b, char c)
{
	http__put(b, &c, 1);
}

void http__json_str(struct http_buf *b, struct str s)
{
	static const char hex[] = "0123456789abcdef";
	http__putc(b, '"');
	const unsigned char *p = (const unsigned char *)s.p;
	size_t i = 0;
	while (i < s.l) {
		/* The longest run that needs no escape goes in one copy. */
		size_t j = i;
		while (j < s.l && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\')
			j++;
		if (j > i) {
			http__put(b, (const char *)p + i, j - i);
			i = j;
			continue;
		}
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			http__put(b, e, 2);
			i++;
		} else if (c < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			if (c == '\n' || c == '\r' || c == '\t')
				http__put(b, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t", 2);
			else
				http__put(b, e, 6);
			i++;
		} else {
			/* A SIP message may carry any bytes: what is not UTF-8 becomes U+FFFD, so
			 * that the output stays valid JSON. */
			size_t n = utf8_len(p + i, s.l - i);
			if (n) {
				http__put(b, (const char *)p + i, n);
				i += n;
			} else {
				http__put(b, "\\ufffd", 6);
				i++;
			}
		}
	}
	http__putc(b, '"');
}

void http__json_cstr(struct http_buf *b, const char *s)
{
	http__json_str(b, str_from_cstr(s ? s : ""));
}

const char *http__proto_name(enum tp_proto p)
{
	static const char *const names[] = {
		[TP_UDP] = "udp", [TP_TCP] = "tcp", [TP_TLS] = "tls", [TP_WS] = "ws", [TP_WSS] = "wss"
	};
	return (unsigned)p < sizeof names / sizeof names[0] && names[p] ? names[p] : "?";
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 3261 user part: unreserved, escaped and user-unreserved characters. */
static bool user_ok(struct str u)
{
	if (u.l == 0 || u.l > 255)
		return false;
	for (size_t i = 0; i < u.l; i++) {
		unsigned char c = (unsigned char)u.p[i];
		if (c == '%') {
			if (i + 2 >= u.l || unhex(u.p[i + 1]) < 0 || unhex(u.p[i + 2]) < 0)
				return false;
			i += 2;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr("-_.!~*'()&=+$,;?/", c))))
			return false;
	}
	return true;
}

/* A host name or an IPv4 address by its characters (letters, digits, dots, hyphens), or
 * [IPv6] by its characters; the store and the server's domain check do the rest. */
static bool host_ok(struct str d)
{
	if (d.l == 0 || d.l > 253)
		return false;
	if (d.p[0] == '[') {
		if (d.l < 4 || d.p[d.l - 1] != ']')
			return false;
		for (size_t i = 1; i + 1 < d.l; i++)
			if (!(unhex(d.p[i]) >= 0 || d.p[i] == ':' || d.p[i] == '.'))
				return false;
		return true;
	}
	if (d.p[0] == '.' || d.p[0] == '-' || d.p[d.l - 1] == '.' || d.p[d.l - 1] == '-')
		return false;
	for (size_t i = 0; i < d.l; i++) {
		char c = (char)(d.p[i] | 0x20);
		if (!((c >= 'a' && c <= 'z') || (d.p[i] >= '0' && d.p[i] <= '9') || d.p[i] == '.' || d.p[i] == '-'))
			return false;
		if (d.p[i] == '.' && i + 1 < d.l && d.p[i + 1] == '.')
			return false;
	}
	return true;
}

const char *http__split_user(struct str who, struct str *user, struct str *domain)
{
	long at = str_chr(who, '@');
	if (at < 0)
		return "expected user@domain";
	*user = (struct str){ who.p, (size_t)at };
	*domain = (struct str){ who.p + at + 1, who.l - (size_t)at - 1 };
	if (!user_ok(*user))
		return "bad user part (RFC 3261 characters, 1 to 255 of them)";
	if (!host_ok(*domain))
		return "bad domain (a host name or an IP address)";
	return NULL;
}

int http__import_next(struct str *rest, unsigned *lineno, struct http_import_line *out)
{
	while (rest->l) {
		const char *nl = memchr(rest->p, '\n', rest->l);
		size_t len = nl ? (size_t)(nl - rest->p) : rest->l;
		struct str line = { rest->p, len };
		rest->p += nl ? len + 1 : len;
		rest->l -= nl ? len + 1 : len;
		++*lineno;
		/* A byte order mark, as spreadsheets write, is not part of the first user. */
		if (*lineno == 1 && line.l >= 3 && !memcmp(line.p, "\xef\xbb\xbf", 3)) {
			line.p += 3;
			line.l -= 3;
		}
		if (line.l && line.p[line.l - 1] == '\r')
			line.l--;
		struct str t = str_trim(line);
		if (t.l == 0 || t.p[0] == '#')
			continue;
		*out = (struct http_import_line){ .error = NULL };
		if (memchr(line.p, '\0', line.l)) {
			out->error = "NUL byte in the line";
			return 1;
		}
		long comma = str_chr(line, ',');
		if (comma < 0) {
			out->error = "expected user@domain,password (no comma)";
			return 1;
		}
		/* As `parley user import`: spaces around the address are forgiven; the password
		 * is every byte after the first comma. */
		struct str who = str_trim((struct str){ line.p, (size_t)comma });
		out->password = (struct str){ line.p + comma + 1, line.l - (size_t)comma - 1 };
		out->error = http__split_user(who, &out->user, &out->domain);
		if (!out->error && out->password.l == 0)
			out->error = "empty password";
		if (!out->error && out->password.l > HTTP_PASSWORD_MAX)
			out->error = "password too long";
		return 1;
	}
	return 0;
}
