/* parse.c: one-pass SIP message parser (RFC 3261 §7, §18.3, §20): start line, headers, framing. */
#include "sip/sip.h"

#include <stddef.h>
#include <string.h>

#include "sip/lex.h"

/* ---- header names ---- */

/* RFC 3261 §7.3.3 and the extensions' compact forms, by lower-case letter. */
static const unsigned char compact[26] = {
	['i' - 'a'] = SIP_HDR_CALL_ID,
	['m' - 'a'] = SIP_HDR_CONTACT,
	['e' - 'a'] = SIP_HDR_CONTENT_ENCODING,
	['l' - 'a'] = SIP_HDR_CONTENT_LENGTH,
	['c' - 'a'] = SIP_HDR_CONTENT_TYPE,
	['f' - 'a'] = SIP_HDR_FROM,
	['s' - 'a'] = SIP_HDR_SUBJECT,
	['k' - 'a'] = SIP_HDR_SUPPORTED,
	['t' - 'a'] = SIP_HDR_TO,
	['v' - 'a'] = SIP_HDR_VIA,
	['o' - 'a'] = SIP_HDR_EVENT,
	['r' - 'a'] = SIP_HDR_REFER_TO,
	['u' - 'a'] = SIP_HDR_ALLOW_EVENTS,
};

/* The canonical names in lower case and their lengths, 32 bytes an entry so that indexing
 * is a shift; the bytes past a name are zeros, which known_name() reads. */
#define H(name)                        \
	{                              \
		name, sizeof(name) - 1 \
	}
static const struct {
	char lc[31];
	unsigned char len;
} hdr_lc[SIP_HDR_COUNT] = {
	[SIP_HDR_ACCEPT] = H("accept"),
	[SIP_HDR_ALLOW] = H("allow"),
	[SIP_HDR_AUTHORIZATION] = H("authorization"),
	[SIP_HDR_CALL_ID] = H("call-id"),
	[SIP_HDR_CONTACT] = H("contact"),
	[SIP_HDR_CONTENT_ENCODING] = H("content-encoding"),
	[SIP_HDR_CONTENT_LENGTH] = H("content-length"),
	[SIP_HDR_CONTENT_TYPE] = H("content-type"),
	[SIP_HDR_CSEQ] = H("cseq"),
	[SIP_HDR_DATE] = H("date"),
	[SIP_HDR_EXPIRES] = H("expires"),
	[SIP_HDR_FROM] = H("from"),
	[SIP_HDR_MAX_FORWARDS] = H("max-forwards"),
	[SIP_HDR_MIN_EXPIRES] = H("min-expires"),
	[SIP_HDR_PATH] = H("path"),
	[SIP_HDR_PROXY_AUTHENTICATE] = H("proxy-authenticate"),
	[SIP_HDR_PROXY_AUTHORIZATION] = H("proxy-authorization"),
	[SIP_HDR_PROXY_REQUIRE] = H("proxy-require"),
	[SIP_HDR_RECORD_ROUTE] = H("record-route"),
	[SIP_HDR_REQUIRE] = H("require"),
	[SIP_HDR_ROUTE] = H("route"),
	[SIP_HDR_SERVER] = H("server"),
	[SIP_HDR_SUBJECT] = H("subject"),
	[SIP_HDR_SUPPORTED] = H("supported"),
	[SIP_HDR_TO] = H("to"),
	[SIP_HDR_UNSUPPORTED] = H("unsupported"),
	[SIP_HDR_USER_AGENT] = H("user-agent"),
	[SIP_HDR_VIA] = H("via"),
	[SIP_HDR_WWW_AUTHENTICATE] = H("www-authenticate"),
	[SIP_HDR_EVENT] = H("event"),
	[SIP_HDR_REFER_TO] = H("refer-to"),
	[SIP_HDR_ALLOW_EVENTS] = H("allow-events"),
	[SIP_HDR_P_ASSERTED_IDENTITY] = H("p-asserted-identity"),
	[SIP_HDR_P_PREFERRED_IDENTITY] = H("p-preferred-identity"),
	[SIP_HDR_REMOTE_PARTY_ID] = H("remote-party-id"),
	[SIP_HDR_RETRY_AFTER] = H("retry-after"),
};
#undef H

/* True when name, of the length of the name of id (2 to 19 bytes), equals it ignoring
 * the case of ASCII letters only, as str_caseeq() does. The names hold only letters and
 * '-': a letter of the lower-case name has bit 0x40 set, and that byte of name is compared
 * with 0x20 or'ed in (only 'X' and 'x' give 'x'); a '-' is compared as it is. Whole words
 * at a time, the last one overlapping the one before when the length is not a multiple. */
static bool hdr_is(struct str name, enum sip_hdr_id id)
{
	const char *lc = hdr_lc[id].lc;
	size_t l = name.l;
	if (l >= 8) {
		uint64_t a, b;
		for (size_t i = 0; i + 8 <= l; i += 8) {
			memcpy(&a, name.p + i, 8);
			memcpy(&b, lc + i, 8);
			if ((a | ((b & 0x4040404040404040ULL) >> 1)) != b)
				return false;
		}
		memcpy(&a, name.p + l - 8, 8);
		memcpy(&b, lc + l - 8, 8);
		return (a | ((b & 0x4040404040404040ULL) >> 1)) == b;
	}
	if (l >= 4) {
		uint32_t a, b, c, d;
		memcpy(&a, name.p, 4);
		memcpy(&b, lc, 4);
		memcpy(&c, name.p + l - 4, 4);
		memcpy(&d, lc + l - 4, 4);
		return (a | ((b & 0x40404040U) >> 1)) == b && (c | ((d & 0x40404040U) >> 1)) == d;
	}
	uint16_t a, b, c, d;
	memcpy(&a, name.p, 2);
	memcpy(&b, lc, 2);
	memcpy(&c, name.p + l - 2, 2);
	memcpy(&d, lc + l - 2, 2);
	return (uint16_t)(a | ((b & 0x4040U) >> 1)) == b && (uint16_t)(c | ((d & 0x4040U) >> 1)) == d;
}

/* The id of a header name; inlined into the header loop, which maps every name. */
static inline enum sip_hdr_id hdr_id(struct str name)
{
	if (name.l == 0)
		return SIP_HDR_OTHER;
	unsigned c = (unsigned char)name.p[0] | 0x20;
	if (name.l == 1)
		return c >= 'a' && c <= 'z' ? (enum sip_hdr_id)compact[c - 'a'] : SIP_HDR_OTHER;
	/* The length and the first letter leave one candidate (two for Call-ID / Contact,
	 * told apart by the third letter); one case-insensitive compare confirms it. */
	enum sip_hdr_id id = SIP_HDR_OTHER;
	switch (name.l) {
	case 2:
		id = c == 't' ? SIP_HDR_TO : id;
		break;
	case 3:
		id = c == 'v' ? SIP_HDR_VIA : id;
		break;
	case 4:
		id = c == 'c'   ? SIP_HDR_CSEQ
		     : c == 'd' ? SIP_HDR_DATE
		     : c == 'f' ? SIP_HDR_FROM
		     : c == 'p' ? SIP_HDR_PATH
				: id;
		break;
	case 5:
		id = c == 'a' ? SIP_HDR_ALLOW : c == 'e' ? SIP_HDR_EVENT : c == 'r' ? SIP_HDR_ROUTE : id;
		break;
	case 6:
		id = c == 'a' ? SIP_HDR_ACCEPT : c == 's' ? SIP_HDR_SERVER : id;
		break;
	case 7:
		if (c == 'c')
			id = ((unsigned char)name.p[2] | 0x20) == 'l' ? SIP_HDR_CALL_ID : SIP_HDR_CONTACT;
		else
			id = c == 'e' ? SIP_HDR_EXPIRES : c == 'r' ? SIP_HDR_REQUIRE : c == 's' ? SIP_HDR_SUBJECT : id;
		break;
	case 8:
		id = c == 'r' ? SIP_HDR_REFER_TO : id;
		break;
	case 9:
		id = c == 's' ? SIP_HDR_SUPPORTED : id;
		break;
	case 10:
		id = c == 'u' ? SIP_HDR_USER_AGENT : id;
		break;
	case 11:
		id = c == 'm'   ? SIP_HDR_MIN_EXPIRES
		     : c == 'u' ? SIP_HDR_UNSUPPORTED
		     : c == 'r' ? SIP_HDR_RETRY_AFTER
				: id;
		break;
	case 12:
		id = c == 'c'   ? SIP_HDR_CONTENT_TYPE
		     : c == 'm' ? SIP_HDR_MAX_FORWARDS
		     : c == 'r' ? SIP_HDR_RECORD_ROUTE
		     : c == 'a' ? SIP_HDR_ALLOW_EVENTS
				: id;
		break;
	case 13:
		id = c == 'a' ? SIP_HDR_AUTHORIZATION : c == 'p' ? SIP_HDR_PROXY_REQUIRE : id;
		break;
	case 14:
		id = c == 'c' ? SIP_HDR_CONTENT_LENGTH : id;
		break;
	case 16:
		id = c == 'c' ? SIP_HDR_CONTENT_ENCODING : c == 'w' ? SIP_HDR_WWW_AUTHENTICATE : id;
		break;
	case 15:
		id = c == 'r' ? SIP_HDR_REMOTE_PARTY_ID : id;
		break;
	case 18:
		id = c == 'p' ? SIP_HDR_PROXY_AUTHENTICATE : id;
		break;
	case 19:
		/* Proxy-Authorization and P-Asserted-Identity: the second byte tells them apart. */
		if (c == 'p')
			id = name.p[1] == '-' ? SIP_HDR_P_ASSERTED_IDENTITY : SIP_HDR_PROXY_AUTHORIZATION;
		break;
	case 20:
		id = c == 'p' ? SIP_HDR_P_PREFERRED_IDENTITY : id;
		break;
	default:
		break;
	}
	return id != SIP_HDR_OTHER && hdr_is(name, id) ? id : SIP_HDR_OTHER;
}

#ifdef LEX_SWAR
/* The slots of the names of hdr_lc for known_name(). The first two bytes of the names,
 * with 0x20 or'ed in (both cases of a letter alike), and the length tell the 32 names
 * apart; that key, times HSLOT_MUL, top six bits, is the slot. The multiplier was found by
 * trying random odd numbers until the names fell in distinct slots. A name missing here
 * is still found, by hdr_id() after the general scan: a header added to hdr_lc only needs
 * a slot to be fast. */
#define HSLOT_MUL 0x0c869cf5df2953b5ULL
static const unsigned char hslot[64] = {
	[0] = SIP_HDR_ROUTE,
	[1] = SIP_HDR_CONTENT_ENCODING,
	[2] = SIP_HDR_RECORD_ROUTE,
	[3] = SIP_HDR_EVENT,
	[4] = SIP_HDR_PROXY_AUTHORIZATION,
	[9] = SIP_HDR_CALL_ID,
	[13] = SIP_HDR_WWW_AUTHENTICATE,
	[15] = SIP_HDR_AUTHORIZATION,
	[17] = SIP_HDR_TO,
	[18] = SIP_HDR_MIN_EXPIRES,
	[19] = SIP_HDR_UNSUPPORTED,
	[20] = SIP_HDR_USER_AGENT,
	[21] = SIP_HDR_EXPIRES,
	[22] = SIP_HDR_DATE,
	[24] = SIP_HDR_FROM,
	[25] = SIP_HDR_PROXY_REQUIRE,
	[26] = SIP_HDR_SERVER,
	[28] = SIP_HDR_SUBJECT,
	[29] = SIP_HDR_PROXY_AUTHENTICATE,
	[30] = SIP_HDR_ACCEPT,
	[32] = SIP_HDR_CONTACT,
	[36] = SIP_HDR_CONTENT_TYPE,
	[37] = SIP_HDR_REFER_TO,
	[38] = SIP_HDR_ALLOW,
	[42] = SIP_HDR_SUPPORTED,
	[44] = SIP_HDR_MAX_FORWARDS,
	[49] = SIP_HDR_CSEQ,
	[50] = SIP_HDR_CONTENT_LENGTH,
	[52] = SIP_HDR_VIA,
	[57] = SIP_HDR_ALLOW_EVENTS,
	[60] = SIP_HDR_PATH,
	[62] = SIP_HDR_REQUIRE,
};

/* The id of the header whose line starts at i when its name is one of hdr_lc's, in any
 * case, right before a colon within the first 24 bytes; *colon is then set to the index
 * of that colon. The colon is found a word at a time, the name's slot by hashing, and the
 * name compared with the one in that slot as hdr_is() does. Returns SIP_HDR_OTHER for any
 * other line, which the caller then scans byte by byte. */
static inline enum sip_hdr_id known_name(const char *buf, size_t len, size_t i, size_t *colon)
{
	if (len - i < 8)
		return SIP_HDR_OTHER;
	uint64_t w0 = lex_load8(buf + i), c = lex_eq8(w0, ':');
	size_t p;
	if (c) {
		p = (size_t)__builtin_ctzll(c) / 8;
		if (p <= 1) {
			/* "" or a compact form ("v:"), which the compact table maps. */
			unsigned l = (unsigned char)buf[i] | 0x20;
			if (p == 0 || l < 'a' || l > 'z')
				return SIP_HDR_OTHER;
			*colon = i + 1;
			return (enum sip_hdr_id)compact[l - 'a'];
		}
	} else if (len - i >= 16 && (c = lex_eq8(lex_load8(buf + i + 8), ':')) != 0) {
		p = 8 + (size_t)__builtin_ctzll(c) / 8;
	} else if (len - i >= 24 && (c = lex_eq8(lex_load8(buf + i + 16), ':')) != 0) {
		p = 16 + (size_t)__builtin_ctzll(c) / 8;
	} else {
		return SIP_HDR_OTHER;
	}
	uint64_t key = ((w0 & 0xffff) | 0x2020) | (uint64_t)p << 16;
	enum sip_hdr_id id = (enum sip_hdr_id)hslot[key * HSLOT_MUL >> 58];
	/* The length first (an empty slot holds SIP_HDR_OTHER, of length 0). */
	if (hdr_lc[id].len != p)
		return SIP_HDR_OTHER;
	const char *lc = hdr_lc[id].lc;
	const uint64_t letters = 0x4040404040404040ULL;
	uint64_t r = lex_load8(lc);
	uint64_t mask = p < 8 ? (1ULL << (8 * p)) - 1 : ~0ULL;
	if (((w0 & mask) | ((r & letters) >> 1)) != r)
		return SIP_HDR_OTHER;
	if (p > 8) {
		r = lex_load8(lc + p - 8);
		if ((lex_load8(buf + i + p - 8) | ((r & letters) >> 1)) != r)
			return SIP_HDR_OTHER;
	}
	if (p > 16) {
		r = lex_load8(lc + 8);
		if ((lex_load8(buf + i + 8) | ((r & letters) >> 1)) != r)
			return SIP_HDR_OTHER;
	}
	*colon = i + p;
	return id;
}
#endif

enum sip_hdr_id sip_hdr_id_from_name(struct str name)
{
	return hdr_id(name);
}

/* Parsing state that does not belong in the message. */
struct pstate {
	struct sip_parse_err *err;
	bool failed;
	bool via_ok;
};

/* Records the first problem found; later ones are less telling and are dropped, but
 * parsing goes on so that the headers a 400 needs are still picked up. */
static void fail(struct pstate *ps, unsigned code, const char *reason)
{
	if (ps->failed)
		return;
	ps->failed = true;
	ps->err->code = code;
	ps->err->reason = reason;
}

static bool sp(char c)
{
	return c == ' ' || c == '\t';
}

/* Takes the next run of non-blank bytes of line at *i, after any SP/HTAB. */
static struct str word(struct str line, size_t *i)
{
	size_t b = *i;
	while (b < line.l && sp(line.p[b]))
		b++;
	size_t e = b;
	while (e < line.l && !sp(line.p[e]))
		e++;
	*i = e;
	return lex_sub(line, b, e);
}

/* SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, "SIP" in any case (RFC 3261 §7.1). */
static bool version_ok(struct str v)
{
	if (v.l < 7 || !str_has_prefix_case(v, STR("SIP/")))
		return false;
	size_t i = 4, d0 = i;
	while (i < v.l && lex_digit((unsigned char)v.p[i]))
		i++;
	if (i == d0 || i >= v.l || v.p[i] != '.')
		return false;
	d0 = ++i;
	while (i < v.l && lex_digit((unsigned char)v.p[i]))
		i++;
	return i > d0 && i == v.l;
}

static void status_line(struct sip_msg *m, struct str line, struct pstate *ps)
{
	size_t i = 0;
	m->request = false;
	m->version = word(line, &i);
	struct str code = word(line, &i);
	if (!version_ok(m->version)) {
		fail(ps, 400, "Bad status line");
		return;
	}
	uint64_t v;
	if (code.l != 3 || !str_to_u64(code, 999, &v) || v < 100 || v > 699) {
		fail(ps, 400, "Bad status code");
		return;
	}
	m->status = (unsigned)v;
	/* The SP before an empty reason phrase is required by the grammar; a liberal
	 * receiver (RFC 4475 noreason) accepts its absence, and so do we. */
	if (i < line.l)
		i++;
	m->reason = lex_sub(line, i, line.l);
}

static void request_line(struct sip_msg *m, struct str line, struct pstate *ps)
{
	size_t i = 0;
	m->request = true;
	/* Runs of SP between the elements and trailing SP (RFC 4475 lwsstart, trws) are
	 * accepted; the printer always writes a normalised request line. */
	m->method = word(line, &i);
	m->ruri_str = word(line, &i);
	m->version = word(line, &i);
	struct str extra = word(line, &i);
	if (!lex_all_token(m->method) || m->ruri_str.l == 0 || extra.l != 0) {
		fail(ps, 400, "Bad request line");
		return;
	}
	m->mid = sip_method_from_str(m->method);
	if (!version_ok(m->version)) {
		fail(ps, 400, "Bad SIP version");
		return;
	}
	if (sip__uri_parse0(&m->ruri, m->ruri_str) != 0)
		fail(ps, 400, "Bad Request-URI");
}

/* The start line as nearly every peer writes it: "SIP/2.0 200 OK" or
 * "METHOD uri SIP/2.0", single SPs. Returns false, having written nothing but possibly
 * the Request-URI (which the caller clears), for anything else: status_line() and
 * request_line() then read it, and they read these common forms the same way. */
static bool start_line_fast(struct sip_msg *m, struct str line)
{
	static const char v20[8] = { 'S', 'I', 'P', '/', '2', '.', '0', ' ' };
	if (line.l >= 11 && memcmp(line.p, v20, 8) == 0) {
		/* "SIP/2.0 " then three digits and a SP or the end of the line. */
		unsigned d0 = (unsigned)(unsigned char)line.p[8] - '0', d1 = (unsigned)(unsigned char)line.p[9] - '0',
			 d2 = (unsigned)(unsigned char)line.p[10] - '0';
		if (d0 < 1 || d0 > 6 || d1 > 9 || d2 > 9 || (line.l > 11 && line.p[11] != ' '))
			return false;
		m->request = false;
		m->version = (struct str){ line.p, 7 };
		m->status = d0 * 100 + d1 * 10 + d2;
		m->reason = line.l > 11 ? lex_sub(line, 12, line.l) : lex_sub(line, 11, 11);
		return true;
	}
	/* The method is a token followed by one SP, the line ends in " SIP/2.0", and what is
	 * between is a URI that parses: a URI holds no SP or HTAB, so request_line() would
	 * split the line in the same three words. */
	size_t e = lex_span(line, 0, LEX_C_TOKEN);
	if (e == 0 || e + 10 > line.l || line.p[e] != ' ' ||
	    memcmp(line.p + line.l - 8, (const char[8]){ ' ', 'S', 'I', 'P', '/', '2', '.', '0' }, 8) != 0)
		return false;
	struct str ruri = lex_sub(line, e + 1, line.l - 8);
	if (sip__uri_parse0(&m->ruri, ruri) != 0)
		return false;
	m->request = true;
	m->method = lex_sub(line, 0, e);
	m->ruri_str = ruri;
	m->version = lex_sub(line, line.l - 7, line.l);
	m->mid = sip_method_from_str(m->method);
	return true;
}

/* Finds the end of the line starting at i: *next is past its LF and the returned index is
 * where its content ends (before CR LF). Returns false when no LF is left. */
static bool line_end(const char *b, size_t len, size_t i, size_t *content_end, size_t *next)
{
	size_t e = lex_find1((struct str){ b, len }, i, '\n');
	if (e >= len)
		return false;
	*next = e + 1;
	*content_end = (e > i && b[e - 1] == '\r') ? e - 1 : e;
	return true;
}

static void add_header(struct sip_msg *m, struct str line, struct str content, struct pstate *ps)
{
	size_t i = lex_skip_token(content, 0);
	struct str name = lex_sub(content, 0, i);
	while (i < content.l && sp(content.p[i]))
		i++;
	if (name.l == 0 || i >= content.l || content.p[i] != ':') {
		fail(ps, 400, "Bad header line");
		return;
	}
	if (m->nhdr >= m->hdr_cap) {
		fail(ps, 400, "Too many headers");
		return;
	}
	struct sip_hdr *h = &m->hdr[m->nhdr];
	h->id = hdr_id(name);
	h->name = name;
	h->value = lex_trim(lex_sub(content, i + 1, content.l));
	h->line = line;
	if (m->first[h->id] < 0)
		m->first[h->id] = (int16_t)m->nhdr;
	m->count[h->id]++;
	m->nhdr++;
}

/* Reads header lines from i for as long as they have the shape nearly every peer writes:
 * a name that is a token, the colon right after it, one line, and a next line that is not
 * a fold. Returns where the first line it did not read starts; the general loop of
 * sip_msg_parse() reads that one, and it would read the lines taken here the same way.
 * The name cannot run past its line: a token holds no CR or LF. The count of headers
 * is kept in a local, out of the way of the stores into hdr[]. */
static size_t headers_fast(struct sip_msg *m, const char *buf, size_t len, size_t i)
{
	unsigned n = m->nhdr;
	while (i < len && n < m->hdr_cap) {
		size_t j = 0;
		enum sip_hdr_id id = SIP_HDR_OTHER;
#ifdef LEX_SWAR
		id = known_name(buf, len, i, &j);
#endif
		if (id == SIP_HDR_OTHER) {
			j = lex_span((struct str){ buf, len }, i, LEX_C_TOKEN);
			if (j == i || j >= len || buf[j] != ':')
				break;
			id = hdr_id((struct str){ buf + i, j - i });
		}
		size_t e = lex_find1((struct str){ buf, len }, j + 1, '\n');
		if (e >= len)
			break;
		if (e + 1 >= len || sp(buf[e + 1]))
			break;
		/* e > j, and buf[j] is the colon, so a CR before the LF is past the colon.
		 * The value is trimmed as lex_trim() does. */
		size_t v0 = j + 1, v1 = buf[e - 1] == '\r' ? e - 1 : e;
		while (v0 < v1 && lex_ws((unsigned char)buf[v0]))
			v0++;
		while (v1 > v0 && lex_ws((unsigned char)buf[v1 - 1]))
			v1--;
		struct sip_hdr *h = &m->hdr[n];
		h->id = id;
		h->name = (struct str){ buf + i, j - i };
		h->value = (struct str){ buf + v0, v1 - v0 };
		h->line = (struct str){ buf + i, e + 1 - i };
		if (m->first[id] < 0)
			m->first[id] = (int16_t)n;
		m->count[id]++;
		n++;
		i = e + 1;
	}
	m->nhdr = n;
	return i;
}

static struct str value_of(const struct sip_msg *m, enum sip_hdr_id id)
{
	return m->first[id] < 0 ? STR_NULL : m->hdr[m->first[id]].value;
}

/* CSeq = 1*DIGIT LWS Method, the number below 2**31 per RFC 3261 §8.1.1.5 on sending
 * but accepted up to 2**32-1 on receipt (§20.16); more is an error (RFC 4475 scalar02). */
static bool cseq(struct sip_msg *m, struct str v)
{
	size_t i = 0;
	uint64_t n = 0;
	while (i < v.l && lex_digit((unsigned char)v.p[i])) {
		n = n * 10 + (unsigned)(v.p[i] - '0');
		i++;
	}
	/* Nine digits or fewer stay below 2**32; longer numbers are read again, checked. */
	if ((i == 0 || i > 9) && !str_to_u64(lex_sub(v, 0, i), UINT32_MAX, &n))
		return false;
	size_t b = lex_skip_ws(v, i);
	if (b == i)
		return false;
	struct str meth = lex_sub(v, b, v.l);
	if (meth.l == 0 || lex_span(meth, 0, LEX_C_TOKEN) != meth.l)
		return false;
	m->cseq = (uint32_t)n;
	m->cseq_method_str = meth;
	m->cseq_method = sip_method_from_str(meth);
	return true;
}

/* Call-ID = word [ "@" word ]: any run of non-blank printable bytes is taken, since the
 * word alphabet is wide (RFC 4475 intmeth) and nothing relies on its structure. */
static bool call_id_ok(struct str v)
{
	if (v.l == 0)
		return false;
	size_t i = 0;
#ifdef LEX_SWAR
	/* Eight bytes at a time; the last word may overlap the one before, which does no
	 * harm to a test that every byte passes. */
	if (v.l >= 8) {
		for (;; i += 8) {
			if (i + 8 > v.l)
				i = v.l - 8;
			uint64_t w = lex_load8(v.p + i);
			if (lex_below8(w, 0x21) | lex_eq8(w, 0x7f))
				return false;
			if (i + 8 == v.l)
				return true;
		}
	}
#endif
	for (; i < v.l; i++)
		if ((unsigned char)v.p[i] <= ' ' || v.p[i] == 0x7f)
			return false;
	return true;
}

/* The headers every stage needs, in a fixed order so that the first problem reported
 * does not depend on the order of the lines. */
static void headers(struct sip_msg *m, struct pstate *ps)
{
	int16_t k;
	if ((k = m->first[SIP_HDR_VIA]) < 0) {
		fail(ps, 400, "Missing Via");
	} else {
		/* The top value of the first Via line. A line nearly always holds just one,
		 * and a line that parses as one Via as a whole holds no comma outside a quoted
		 * string, so sip_list_next() would have returned all of it: that reading is
		 * tried first. */
		struct str v = m->hdr[k].value, item;
		bool ok = sip__via_parse0(&m->via, v) == 0;
		if (!ok) {
			memset(&m->via, 0, sizeof m->via);
			ok = sip_list_next(&v, &item) && sip__via_parse0(&m->via, item) == 0;
		}
		ps->via_ok = ok;
		if (!ok)
			fail(ps, 400, "Bad Via");
	}
	if ((k = m->first[SIP_HDR_FROM]) < 0)
		fail(ps, 400, "Missing From");
	else if (sip__addr_parse0(&m->from, m->hdr[k].value) != 0 || m->from.star)
		fail(ps, 400, "Bad From");
	if ((k = m->first[SIP_HDR_TO]) < 0)
		fail(ps, 400, "Missing To");
	else if (sip__addr_parse0(&m->to, m->hdr[k].value) != 0 || m->to.star)
		fail(ps, 400, "Bad To");
	if ((k = m->first[SIP_HDR_CALL_ID]) < 0) {
		fail(ps, 400, "Missing Call-ID");
	} else {
		m->call_id = m->hdr[k].value;
		if (!call_id_ok(m->call_id))
			fail(ps, 400, "Bad Call-ID");
	}
	if ((k = m->first[SIP_HDR_CSEQ]) < 0)
		fail(ps, 400, "Missing CSeq");
	else if (!cseq(m, m->hdr[k].value))
		fail(ps, 400, "Bad CSeq");
	uint64_t n;
	if ((k = m->first[SIP_HDR_MAX_FORWARDS]) >= 0) {
		/* Max-Forwards is 0-255 (RFC 3261 §20.22); anything else is malformed. */
		if (str_to_u64(m->hdr[k].value, 255, &n))
			m->max_forwards = (int)n;
		else
			fail(ps, 400, "Bad Max-Forwards");
	}
	if ((k = m->first[SIP_HDR_EXPIRES]) >= 0) {
		/* RFC 3261 §20.19: "Malformed values SHOULD be treated as equivalent to 3600",
		 * which covers the overlarge value of RFC 4475 scalar02. */
		if (str_to_u64(m->hdr[k].value, UINT32_MAX, &n))
			m->expires = (int64_t)n;
		else
			m->expires = 3600;
	}
}

enum sip_parse_result sip_msg_parse(struct sip_msg *m, struct sip_hdr *hdrs, unsigned cap, const char *buf, size_t len,
				    bool datagram, struct sip_parse_err *err)
{
	struct pstate ps = { .err = err };
	/* Everything starts zeroed (empty views, no Via/From/To/R-URI parsed): the
	 * sub-parsers rely on it. hdrs is written before it is read: only hdr[0..nhdr).
	 * first[] holds int16_t indexes, hence the bound on cap. */
	memset(m, 0, sizeof *m);
	memset(m->first, 0xff, sizeof m->first);
	m->hdr = hdrs;
	m->hdr_cap = cap < INT16_MAX ? cap : INT16_MAX;
	m->max_forwards = -1;
	m->expires = -1;
	*err = (struct sip_parse_err){ .code = 400, .reason = "Bad Request" };

	/* Leading CRLFs are keep-alives or noise (RFC 3261 §7.5); the message starts after
	 * them, so a stream reader consumes (m->buf - buf) + m->len bytes. */
	size_t off = 0;
	while (off < len && (buf[off] == '\r' || buf[off] == '\n'))
		off++;
	m->buf = buf + off;
	if (off == len) {
		if (!datagram)
			return SIP_PARSE_AGAIN;
		err->reason = "Empty message";
		return SIP_PARSE_ERROR;
	}
	if (datagram && len - off > SIP_MAX_MSG) {
		*err = (struct sip_parse_err){ .code = 513, .reason = "Message Too Large" };
		return SIP_PARSE_ERROR;
	}

	/* Pass 1 of 1: lines. A header ends at a line that does not start with SP/HTAB. */
	size_t i = off, ce, next, hdr_end = 0;
	bool start = true;
	while (hdr_end == 0) {
		if (!start) {
			size_t k = headers_fast(m, buf, len, i);
			if (k != i) {
				i = k;
				continue;
			}
		}
		if (!line_end(buf, len, i, &ce, &next)) {
			if (!datagram)
				goto again;
			/* A datagram missing its empty line ends where the datagram ends. */
			ce = next = len;
		}
		if (ce == i && next > i) {
			hdr_end = next;
			break;
		}
		if (start) {
			struct str line = { buf + i, ce - i };
			if (!start_line_fast(m, line)) {
				/* The quick reading may have filled part of the Request-URI. */
				memset(&m->ruri, 0, sizeof m->ruri);
				if (str_has_prefix_case(line, STR("SIP/")))
					status_line(m, line, &ps);
				else
					request_line(m, line, &ps);
			}
			start = false;
		} else if (sp(buf[i])) {
			/* Only reachable right after the start line: folding is taken below. */
			fail(&ps, 400, "Bad header line");
		} else {
			size_t b = i;
			while (next < len && sp(buf[next])) {
				if (!line_end(buf, len, next, &ce, &next)) {
					if (!datagram)
						goto again;
					ce = next = len;
				}
			}
			if (next == len && !datagram)
				goto again; /* the next line may still turn out to be a fold */
			add_header(m, (struct str){ buf + b, next - b }, (struct str){ buf + b, ce - b }, &ps);
		}
		if (next >= len) {
			if (!datagram)
				goto again;
			hdr_end = len;
			break;
		}
		i = next;
	}

	headers(m, &ps);

	/* Framing (RFC 3261 §18.3). */
	size_t avail = len - hdr_end;
	size_t body_len = avail;
	uint64_t cl = 0;
	bool cl_ok = false;
	if (m->count[SIP_HDR_CONTENT_LENGTH] > 1) {
		fail(&ps, 400, "Multiple Content-Length");
	} else if (m->count[SIP_HDR_CONTENT_LENGTH] == 1) {
		if (!str_to_u64(value_of(m, SIP_HDR_CONTENT_LENGTH), UINT32_MAX, &cl))
			fail(&ps, 400, "Bad Content-Length");
		else
			cl_ok = true;
	} else if (!datagram) {
		fail(&ps, 400, "Missing Content-Length");
	}
	if (cl_ok) {
		if (hdr_end - off + cl > SIP_MAX_MSG) {
			*err = (struct sip_parse_err){ .code = 513, .reason = "Message Too Large" };
			ps.failed = true;
			body_len = 0;
		} else if (cl > avail) {
			if (!datagram)
				return SIP_PARSE_AGAIN;
			fail(&ps, 400, "Bad Content-Length");
		} else {
			body_len = (size_t)cl;
		}
	} else if (!datagram) {
		body_len = 0;
	}
	m->body = (struct str){ buf + hdr_end, body_len };
	m->len = hdr_end - off + body_len;
	if (!ps.failed && m->len > SIP_MAX_MSG)
		fail(&ps, 513, "Message Too Large");
	if (!ps.failed)
		return SIP_PARSE_OK;
	/* A response routes back by the top Via alone (§18.2.2), so a request whose Via
	 * parsed can be answered; the rest is copied as received. */
	err->can_respond = m->request && ps.via_ok;
	return SIP_PARSE_ERROR;

again:
	if (len - off >= SIP_MAX_MSG) {
		*err = (struct sip_parse_err){ .code = 513, .reason = "Message Too Large" };
		return SIP_PARSE_ERROR;
	}
	return SIP_PARSE_AGAIN;
}

const struct sip_hdr *sip_msg_hdr(const struct sip_msg *m, enum sip_hdr_id id)
{
	if ((unsigned)id >= SIP_HDR_COUNT || m->first[id] < 0)
		return NULL;
	return &m->hdr[m->first[id]];
}

const struct sip_hdr *sip_msg_hdr_next(const struct sip_msg *m, const struct sip_hdr *h)
{
	for (const struct sip_hdr *n = h + 1; n < m->hdr + m->nhdr; n++) {
		if (n->id != h->id)
			continue;
		if (h->id != SIP_HDR_OTHER || str_caseeq(n->name, h->name))
			return n;
	}
	return NULL;
}

const struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *m, struct str name)
{
	enum sip_hdr_id id = sip_hdr_id_from_name(name);
	if (id != SIP_HDR_OTHER)
		return sip_msg_hdr(m, id);
	for (unsigned k = 0; k < m->nhdr; k++)
		if (m->hdr[k].id == SIP_HDR_OTHER && str_caseeq(m->hdr[k].name, name))
			return &m->hdr[k];
	return NULL;
}

bool sip_msg_peek(const char *buf, size_t len, enum sip_hdr_id id, struct str *value)
{
	size_t ce, next;
	if (!line_end(buf, len, 0, &ce, &next))
		return false;
	for (size_t i = next; i < len && line_end(buf, len, i, &ce, &next) && ce > i; i = next) {
		/* A value runs on over folded lines (those starting with SP or HTAB). */
		size_t end = ce;
		while (next < len && sp(buf[next])) {
			if (!line_end(buf, len, next, &ce, &next))
				return false;
			end = ce;
		}
		struct str content = { buf + i, end - i };
		size_t k = lex_skip_token(content, 0), c = k;
		while (c < content.l && sp(content.p[c]))
			c++;
		if (k == 0 || c >= content.l || content.p[c] != ':')
			return false;
		if (hdr_id(lex_sub(content, 0, k)) == id) {
			*value = lex_trim(lex_sub(content, c + 1, content.l));
			return true;
		}
	}
	return false;
}
