/* frame.c: finds where one SIP message ends in a byte stream (RFC 3261 §18.3, RFC 5626 §4.4.1). */
#include "transport/transport.h"

#include <string.h>

static bool ws(char c)
{
	return c == ' ' || c == '\t';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether the header line at p (up to e) is named Content-Length (or its compact form
 * "l"); *val is then where its value starts. */
static bool is_cl(const char *p, const char *e, const char **val)
{
	static const char name[] = "content-length";
	size_t n = 0;
	while (p + n < e && n < sizeof(name) - 1 && lower(p[n]) == name[n])
		n++;
	if (n != sizeof(name) - 1) {
		if (lower(*p) != 'l')
			return false;
		n = 1; /* the compact form */
	}
	const char *q = p + n;
	while (q < e && ws(*q))
		q++;
	if (q == e || *q != ':')
		return false;
	*val = q + 1;
	return true;
}

/* Reads the decimal value from p up to the end of its line e (whitespace around it
 * allowed). Returns false when it is not one number that fits in max. */
static bool cl_value(const char *p, const char *e, size_t max, size_t *out)
{
	while (p < e && ws(*p))
		p++;
	while (e > p && (ws(e[-1]) || e[-1] == '\r'))
		e--;
	if (p == e)
		return false;
	size_t v = 0;
	for (; p < e; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (size_t)(*p - '0');
		if (v > max)
			v = max + 1; /* saturate: "too big" is all that matters past max */
	}
	*out = v;
	return true;
}

enum tp_frame tp_frame(const char *buf, size_t len, size_t max, struct tp_frame_state *st, size_t *skip,
		       size_t *msg_len)
{
	size_t off = 0;
	*skip = 0;
	*msg_len = 0;
	/* A CRLFCRLF ping gets a CRLF pong (RFC 5626 §4.4.1); other CRs and LFs before a
	 * start line are keep-alive noise (RFC 3261 §7.5). A lone CRLF at the end waits: it may
	 * be the first half of a ping. */
	while (off < len && (buf[off] == '\r' || buf[off] == '\n')) {
		if (len - off >= 4 && memcmp(buf + off, "\r\n\r\n", 4) == 0) {
			*skip = off + 4;
			st->scan = 0;
			return TP_FRAME_PING;
		}
		if (buf[off] == '\r' && (len - off < 4) && memcmp(buf + off, "\r\n\r\n", len - off) == 0) {
			*skip = off;
			st->scan = 0;
			return TP_FRAME_MORE;
		}
		off++;
	}
	*skip = off;
	if (off == len) {
		st->scan = 0;
		return TP_FRAME_MORE;
	}
	const char *m = buf + off;
	size_t n = len - off;
	/* The end of the header section: an empty line (CRLF CRLF, or bare LFs). Searching
	 * resumes where the last call stopped, so a message trickling in byte by byte costs
	 * linear time, not quadratic. */
	size_t i = st->scan > 2 ? st->scan - 2 : 0, hdr_end = 0, blank = 0;
	for (; i < n; i++) {
		const char *lf = memchr(m + i, '\n', n - i);
		if (!lf)
			break;
		i = (size_t)(lf - m);
		if (i + 1 < n && m[i + 1] == '\n') {
			hdr_end = i + 2;
			blank = i;
			break;
		}
		if (i + 2 < n && m[i + 1] == '\r' && m[i + 2] == '\n') {
			hdr_end = i + 3;
			blank = i;
			break;
		}
	}
	if (!hdr_end) {
		st->scan = n;
		return n >= max ? TP_FRAME_TOO_BIG : TP_FRAME_MORE;
	}
	if (hdr_end > max) {
		*msg_len = hdr_end;
		return TP_FRAME_TOO_BIG;
	}
	/* Content-Length, from the header lines (the first line is the start line). */
	bool have = false, bad = false;
	size_t cl = 0;
	const char *p = memchr(m, '\n', hdr_end);
	while (p && (size_t)(p + 1 - m) < hdr_end) {
		const char *line = p + 1;
		const char *e = memchr(line, '\n', (size_t)(m + hdr_end - line));
		if (!e)
			break;
		const char *val;
		if (!ws(*line) && is_cl(line, e, &val)) {
			size_t v = 0;
			/* Folded values are legal but nobody sends them here: a value on its own
			 * line counts as a bad one. */
			if (!cl_value(val, e, max, &v) || (have && v != cl))
				bad = true;
			have = true;
			cl = v;
		}
		p = e;
	}
	*msg_len = hdr_end;
	if (bad)
		return TP_FRAME_BAD_LENGTH;
	if (!have)
		return TP_FRAME_NO_LENGTH;
	if (cl > max || hdr_end + cl > max)
		return TP_FRAME_TOO_BIG;
	if (n < hdr_end + cl) {
		/* The headers are all here; only the body is missing. The next search starts at
		 * the empty line again. */
		st->scan = blank + 2;
		*msg_len = 0;
		return TP_FRAME_MORE;
	}
	st->scan = 0;
	*msg_len = hdr_end + cl;
	return TP_FRAME_MSG;
}
