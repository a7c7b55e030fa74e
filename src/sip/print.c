/* print.c: builds responses and forwarded requests from a parsed message, in one copy. */
#include "sip/sip.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sip/lex.h"

void sip_out_init(struct sip_out *o, char *buf, size_t cap)
{
	*o = (struct sip_out){ .p = buf, .cap = cap };
}

void sip_out_str(struct sip_out *o, struct str s)
{
	if (s.l == 0)
		return;
	if (o->overflow || s.l > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->len, s.p, s.l);
	o->len += s.l;
}

void sip_out_cstr(struct sip_out *o, const char *s)
{
	sip_out_str(o, str_from_cstr(s));
}

void sip_out_u64(struct sip_out *o, uint64_t v)
{
	char tmp[24];
	size_t n = sizeof tmp;
	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sip_out_str(o, (struct str){ tmp + n, sizeof tmp - n });
}

void sip_out_fmt(struct sip_out *o, const char *fmt, ...)
{
	if (o->overflow)
		return;
	size_t room = o->cap - o->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		o->overflow = true;
	else
		o->len += (size_t)n;
}

static void crlf(struct sip_out *o)
{
	sip_out_str(o, STR("\r\n"));
}

/* Writes the first Via header line with its top value completed: an existing received
 * or rport parameter is replaced when a new value is given (RFC 3261 §18.2.1, RFC 3581
 * §4), every other parameter and the further values of the line are kept as received. */
static void top_via(struct sip_out *o, const struct sip_hdr *h, const struct sip_via *v, struct str received,
		    struct str rport)
{
	sip_out_str(o, STR("Via: "));
	sip_out_str(o, (struct str){ v->raw.p, (size_t)(v->params.p - v->raw.p) });
	size_t pos = 0, start;
	struct str n, val;
	for (;;) {
		start = pos;
		if (sip__param_next(v->params, &pos, &n, &val) != 1)
			break;
		if ((received.l && lex_caseeq_lc(n, STR("received"))) || (rport.l && lex_caseeq_lc(n, STR("rport"))))
			continue;
		sip_out_str(o, lex_sub(v->params, start, pos));
	}
	if (received.l) {
		sip_out_str(o, STR(";received="));
		sip_out_str(o, received);
	}
	if (rport.l) {
		sip_out_str(o, STR(";rport="));
		sip_out_str(o, rport);
	}
	const char *end = v->raw.p + v->raw.l, *vend = h->value.p + h->value.l;
	sip_out_str(o, (struct str){ end, (size_t)(vend - end) });
	crlf(o);
}

/* sip_msg_hdr() for the ids the printer knows, inlined. */
static inline const struct sip_hdr *first_hdr(const struct sip_msg *m, enum sip_hdr_id id)
{
	return m->first[id] < 0 ? NULL : &m->hdr[m->first[id]];
}

/* True when h is the header line the top Via value was parsed from. */
static bool is_top_via(const struct sip_msg *req, const struct sip_hdr *h)
{
	return h == first_hdr(req, SIP_HDR_VIA) && req->via.raw.p >= h->value.p &&
	       req->via.raw.p + req->via.raw.l <= h->value.p + h->value.l;
}

/* Copies a received header line; the last line of a datagram that lacked its empty line
 * may have no line end, and gets one. */
static void copy_line(struct sip_out *o, const struct sip_hdr *h)
{
	sip_out_str(o, h->line);
	if (h->line.l == 0 || h->line.p[h->line.l - 1] != '\n')
		crlf(o);
}

static void header_line(struct sip_out *o, struct str name, struct str value)
{
	sip_out_str(o, name);
	sip_out_str(o, STR(": "));
	sip_out_str(o, value);
	crlf(o);
}

static void tail(struct sip_out *o, struct str extra, struct str body)
{
	sip_out_str(o, extra);
	sip_out_str(o, STR("Content-Length: "));
	sip_out_u64(o, body.l);
	sip_out_str(o, STR("\r\n\r\n"));
	sip_out_str(o, body);
}

int sip_print_response(struct sip_out *o, const struct sip_msg *req, unsigned status, const char *reason,
		       const struct sip_resp_opts *opt)
{
	static const struct sip_resp_opts none;
	if (!opt)
		opt = &none;
	if (!reason)
		reason = sip_reason(status);
	/* "SIP/2.0 %03u %s\r\n" without the formatter. The one byte of room vsnprintf
	 * wanted for its NUL made no difference: a response goes on past this line. */
	unsigned code = status % 1000;
	char line[13] = "SIP/2.0 000 ";
	line[8] = (char)('0' + code / 100);
	line[9] = (char)('0' + code / 10 % 10);
	line[10] = (char)('0' + code % 10);
	sip_out_str(o, (struct str){ line, 12 });
	sip_out_cstr(o, reason);
	crlf(o);
	/* The Via lines, walked by their count rather than to the last header. */
	unsigned nvia = req->count[SIP_HDR_VIA];
	for (unsigned k = nvia ? (unsigned)req->first[SIP_HDR_VIA] : 0; nvia && k < req->nhdr; k++) {
		const struct sip_hdr *h = &req->hdr[k];
		if (h->id != SIP_HDR_VIA)
			continue;
		nvia--;
		if (is_top_via(req, h) && (opt->via_received.l || opt->via_rport.l))
			top_via(o, h, &req->via, opt->via_received, opt->via_rport);
		else
			copy_line(o, h);
	}
	/* Only the first of each: a response to a request with duplicates (RFC 4475
	 * multi01) must itself be well formed. */
	const struct sip_hdr *h;
	if ((h = first_hdr(req, SIP_HDR_FROM)))
		copy_line(o, h);
	if ((h = first_hdr(req, SIP_HDR_TO))) {
		if (req->to.tag.l == 0 && opt->to_tag.l) {
			sip_out_str(o, STR("To: "));
			sip_out_str(o, h->value);
			sip_out_str(o, STR(";tag="));
			sip_out_str(o, opt->to_tag);
			crlf(o);
		} else {
			copy_line(o, h);
		}
	}
	if ((h = first_hdr(req, SIP_HDR_CALL_ID)))
		copy_line(o, h);
	if ((h = first_hdr(req, SIP_HDR_CSEQ)))
		copy_line(o, h);
	if (opt->server.l)
		header_line(o, STR("Server"), opt->server);
	if (opt->body.l && opt->content_type.l)
		header_line(o, STR("Content-Type"), opt->content_type);
	tail(o, opt->extra, opt->body);
	return o->overflow ? -1 : 0;
}

static bool dropped(const struct sip_fwd_opts *opt, enum sip_hdr_id id)
{
	for (unsigned k = 0; k < opt->ndrop; k++)
		if (opt->drop[k] == id)
			return true;
	return false;
}

int sip_print_request_fwd(struct sip_out *o, const struct sip_msg *req, const struct sip_fwd_opts *opt)
{
	/* The request line is rebuilt with single SPs (RFC 4475 lwsstart, trws). Escaped
	 * headers of the received Request-URI (?Route=..., RFC 4475 escruri) are dropped:
	 * a proxy must not turn them into header fields, and passing them on is pointless. */
	sip_out_str(o, req->method);
	sip_out_str(o, STR(" "));
	if (opt->new_ruri.l) {
		sip_out_str(o, opt->new_ruri);
	} else {
		struct str r = req->ruri_str;
		const struct str *hd = &req->ruri.headers;
		if (hd->l && hd->p + hd->l == r.p + r.l)
			r.l -= hd->l;
		sip_out_str(o, r);
	}
	sip_out_str(o, STR(" SIP/2.0\r\n"));
	if (opt->via.l)
		header_line(o, STR("Via"), opt->via);
	if (opt->record_route.l)
		header_line(o, STR("Record-Route"), opt->record_route);
	bool first_route = true, first_mf = true;
	for (unsigned k = 0; k < req->nhdr; k++) {
		const struct sip_hdr *h = &req->hdr[k];
		if (h->id != SIP_HDR_OTHER && dropped(opt, h->id))
			continue;
		switch (h->id) {
		case SIP_HDR_VIA:
			if (is_top_via(req, h) && (opt->top_via_received.l || opt->top_via_rport.l))
				top_via(o, h, &req->via, opt->top_via_received, opt->top_via_rport);
			else
				copy_line(o, h);
			break;
		case SIP_HDR_MAX_FORWARDS:
			/* Duplicates go: the parser read the first one. */
			if (first_mf) {
				sip_out_str(o, STR("Max-Forwards: "));
				sip_out_u64(o, req->max_forwards > 0 ? (uint64_t)req->max_forwards - 1 : 0);
				crlf(o);
			}
			first_mf = false;
			break;
		case SIP_HDR_CONTENT_LENGTH:
			break; /* rewritten at the end from the body actually framed */
		case SIP_HDR_ROUTE:
			if (first_route && opt->drop_first_route) {
				struct str rest = h->value, item;
				sip_list_next(&rest, &item);
				rest = str_trim(rest);
				if (rest.l)
					header_line(o, STR("Route"), rest);
			} else {
				copy_line(o, h);
			}
			first_route = false;
			break;
		default:
			copy_line(o, h);
			break;
		}
	}
	if (req->max_forwards < 0 && !dropped(opt, SIP_HDR_MAX_FORWARDS))
		sip_out_str(o, STR("Max-Forwards: 70\r\n"));
	tail(o, opt->extra, opt->new_body ? opt->body : req->body);
	return o->overflow ? -1 : 0;
}

int sip_print_rebody(struct sip_out *o, const struct sip_msg *m, struct str content_type, struct str body)
{
	/* The start line as received, up to and including its line end; a message without
	 * one (a bare start line in a datagram) gets CRLF. */
	const char *nl = memchr(m->buf, '\n', m->len);
	size_t sl = nl ? (size_t)(nl - m->buf) + 1 : m->len;
	sip_out_str(o, (struct str){ m->buf, sl });
	if (!nl)
		crlf(o);
	for (unsigned k = 0; k < m->nhdr; k++) {
		const struct sip_hdr *h = &m->hdr[k];
		if (h->id == SIP_HDR_CONTENT_LENGTH || (h->id == SIP_HDR_CONTENT_TYPE && content_type.l))
			continue;
		copy_line(o, h);
	}
	if (content_type.l)
		header_line(o, STR("Content-Type"), content_type);
	tail(o, STR_NULL, body);
	return o->overflow ? -1 : 0;
}
