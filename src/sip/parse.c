/* parse.c: one-pass SIP message parser (RFC 3261 §7, §18.3, §20): start line, headers, framing. */
#include "sip/sip.h"

#include <stddef.h>
#include <string.h>

#include "sip/lex.h"

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

/* Finds the end of the line starting at i: *next is past its LF and the returned index is
 * where its content ends (before CR LF). Returns false when no LF is left. */
static bool line_end(const char *b, size_t len, size_t i, size_t *content_end, size_t *next)
{
	const char *lf = memchr(b + i, '\n', len - i);
	if (!lf)
		return false;
	size_t e = (size_t)(lf - b);
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
	if (m->nhdr >= SIP_MAX_HEADERS) {
		fail(ps, 400, "Too many headers");
		return;
	}
	struct sip_hdr *h = &m->hdr[m->nhdr];
	h->id = sip_hdr_id_from_name(name);
	h->name = name;
	h->value = lex_trim(lex_sub(content, i + 1, content.l));
	h->line = line;
	if (m->first[h->id] < 0)
		m->first[h->id] = (int16_t)m->nhdr;
	m->count[h->id]++;
	m->nhdr++;
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
	while (i < v.l && lex_digit((unsigned char)v.p[i]))
		i++;
	uint64_t n;
	if (!str_to_u64(lex_sub(v, 0, i), UINT32_MAX, &n))
		return false;
	size_t b = lex_skip_ws(v, i);
	if (b == i)
		return false;
	struct str meth = lex_sub(v, b, v.l);
	if (!lex_all_token(meth))
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
	for (size_t i = 0; i < v.l; i++)
		if ((unsigned char)v.p[i] <= ' ' || v.p[i] == 0x7f)
			return false;
	return true;
}

static void headers(struct sip_msg *m, struct pstate *ps)
{
	static const struct {
		enum sip_hdr_id id;
		const char *missing, *bad;
	} need[] = {
		{ SIP_HDR_VIA, "Missing Via", "Bad Via" },
		{ SIP_HDR_FROM, "Missing From", "Bad From" },
		{ SIP_HDR_TO, "Missing To", "Bad To" },
		{ SIP_HDR_CALL_ID, "Missing Call-ID", "Bad Call-ID" },
		{ SIP_HDR_CSEQ, "Missing CSeq", "Bad CSeq" },
	};
	for (size_t k = 0; k < sizeof need / sizeof need[0]; k++) {
		if (m->first[need[k].id] < 0) {
			fail(ps, 400, need[k].missing);
			continue;
		}
		struct str v = value_of(m, need[k].id), item;
		bool ok;
		switch (need[k].id) {
		case SIP_HDR_VIA:
			ok = sip_list_next(&v, &item) && sip__via_parse0(&m->via, item) == 0;
			ps->via_ok = ok;
			break;
		case SIP_HDR_FROM:
			ok = sip__addr_parse0(&m->from, v) == 0 && !m->from.star;
			break;
		case SIP_HDR_TO:
			ok = sip__addr_parse0(&m->to, v) == 0 && !m->to.star;
			break;
		case SIP_HDR_CALL_ID:
			ok = call_id_ok(v);
			m->call_id = v;
			break;
		default:
			ok = cseq(m, v);
			break;
		}
		if (!ok)
			fail(ps, 400, need[k].bad);
	}
	if (m->first[SIP_HDR_MAX_FORWARDS] >= 0) {
		uint64_t n;
		/* Max-Forwards is 0-255 (RFC 3261 §20.22); anything else is malformed. */
		if (str_to_u64(value_of(m, SIP_HDR_MAX_FORWARDS), 255, &n))
			m->max_forwards = (int)n;
		else
			fail(ps, 400, "Bad Max-Forwards");
	}
	if (m->first[SIP_HDR_EXPIRES] >= 0) {
		uint64_t n;
		/* RFC 3261 §20.19: "Malformed values SHOULD be treated as equivalent to 3600",
		 * which covers the overlarge value of RFC 4475 scalar02. */
		if (str_to_u64(value_of(m, SIP_HDR_EXPIRES), UINT32_MAX, &n))
			m->expires = (int64_t)n;
		else
			m->expires = 3600;
	}
}

enum sip_parse_result sip_msg_parse(struct sip_msg *m, const char *buf, size_t len, bool datagram,
				    struct sip_parse_err *err)
{
	struct pstate ps = { .err = err };
	/* Everything but hdr[] starts zeroed (empty views, no Via/From/To/R-URI parsed): the
	 * sub-parsers rely on it. hdr[] is written before it is read: only hdr[0..nhdr). */
	memset(m, 0, offsetof(struct sip_msg, hdr));
	memset(&m->nhdr, 0, sizeof *m - offsetof(struct sip_msg, nhdr));
	memset(m->first, 0xff, sizeof m->first);
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
			if (str_has_prefix_case(line, STR("SIP/")))
				status_line(m, line, &ps);
			else
				request_line(m, line, &ps);
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
