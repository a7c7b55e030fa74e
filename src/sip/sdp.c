/* sdp.c: reads SDP bodies (RFC 4566) for media policy, and tells whether a message carries one. */
#include "sip/sip.h"

#include <string.h>

/* Splits the next field off a line: fields are separated by SP (RFC 4566 §5 says one;
 * runs of SP or HTAB are taken as one, as some phones pad). False when none is left. */
static bool field(struct str *rest, struct str *f)
{
	size_t i = 0;
	while (i < rest->l && (rest->p[i] == ' ' || rest->p[i] == '\t'))
		i++;
	size_t b = i;
	while (i < rest->l && rest->p[i] != ' ' && rest->p[i] != '\t')
		i++;
	*f = (struct str){ rest->p + b, i - b };
	*rest = (struct str){ rest->p + i, rest->l - i };
	return f->l > 0;
}

/* The rest of the line holds nothing but blanks. */
static bool no_more(struct str rest)
{
	struct str f;
	return !field(&rest, &f);
}

/* Digits only (no sign, no blanks), at most max. */
static bool number(struct str s, uint64_t max, uint64_t *v)
{
	return str_to_u64(s, max, v);
}

/* c=IN IP4 addr[/ttl[/n]] or c=IN IP6 addr[/n]: the address view without the suffix. */
static bool connection(struct str v, struct str *addr)
{
	struct str net, type, a;
	if (!field(&v, &net) || !field(&v, &type) || !field(&v, &a) || !no_more(v))
		return false;
	if (!str_eq(net, STR("IN")) || (!str_eq(type, STR("IP4")) && !str_eq(type, STR("IP6"))))
		return false;
	long slash = str_chr(a, '/');
	if (slash >= 0)
		a.l = (size_t)slash;
	if (a.l == 0)
		return false;
	*addr = a;
	return true;
}

/* o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> */
static bool origin(struct str v, struct str *addr)
{
	struct str f;
	for (int k = 0; k < 5; k++)
		if (!field(&v, &f))
			return false;
	return field(&v, addr) && no_more(v);
}

/* m=<media> <port>[/<number of ports>] <proto> <fmt> ... */
static bool media(struct str v, struct sdp_media *m)
{
	struct str port, fmt;
	uint64_t n;
	if (!field(&v, &m->type) || !field(&v, &port) || !field(&v, &m->proto) || !field(&v, &fmt))
		return false;
	long slash = str_chr(port, '/');
	if (slash >= 0) {
		struct str count = { port.p + slash + 1, port.l - (size_t)slash - 1 };
		if (!number(count, 65535, &n))
			return false;
		port.l = (size_t)slash;
	}
	if (!number(port, 65535, &n))
		return false;
	m->port = (uint16_t)n;
	return true;
}

/* The direction attributes of RFC 4566 §6 (RFC 3264 §5.1 for their use in hold). */
static bool direction(struct str name, enum sdp_dir *d)
{
	if (str_eq(name, STR("sendrecv")))
		*d = SDP_SENDRECV;
	else if (str_eq(name, STR("sendonly")))
		*d = SDP_SENDONLY;
	else if (str_eq(name, STR("recvonly")))
		*d = SDP_RECVONLY;
	else if (str_eq(name, STR("inactive")))
		*d = SDP_INACTIVE;
	else
		return false;
	return true;
}

/* What a level (the session, or one m= section) said before the end is known. */
struct level {
	bool ice, dtls, has_dir;
	enum sdp_dir dir;
};

static void attribute(struct str v, struct level *lv)
{
	long colon = str_chr(v, ':');
	struct str name = colon >= 0 ? (struct str){ v.p, (size_t)colon } : v;
	enum sdp_dir d;
	if (str_eq(name, STR("ice-ufrag"))) {
		lv->ice = true;
	} else if (str_eq(name, STR("fingerprint"))) {
		lv->dtls = true;
	} else if (colon < 0 && direction(name, &d)) {
		lv->dir = d;
		lv->has_dir = true;
	}
}

int sdp_parse(struct sdp *s, struct str body, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	memset(s, 0, sizeof *s);
	if (body.l > SDP_MAX_LEN) {
		*why = "SDP too large";
		return -1;
	}
	struct level session = { 0 }, lv[SDP_MAX_MEDIA];
	memset(lv, 0, sizeof lv);
	struct level *cur = &session;
	size_t i = 0, nline = 0;
	while (i < body.l) {
		const char *nl = memchr(body.p + i, '\n', body.l - i);
		size_t end = nl ? (size_t)(nl - body.p) : body.l, next = nl ? end + 1 : body.l;
		struct str line = { body.p + i, end - i };
		if (line.l && line.p[line.l - 1] == '\r')
			line.l--;
		i = next;
		if (line.l == 0) {
			/* Empty lines are tolerated only after the last one: a body copied
			 * with an extra CRLF at its end. */
			size_t k = i;
			while (k < body.l && (body.p[k] == '\r' || body.p[k] == '\n'))
				k++;
			if (k == body.l)
				break;
			*why = "SDP: empty line";
			return -1;
		}
		if (line.l < 2 || line.p[0] < 'a' || line.p[0] > 'z' || line.p[1] != '=') {
			*why = "SDP: line is not <letter>=<value>";
			return -1;
		}
		char type = line.p[0];
		struct str v = { line.p + 2, line.l - 2 };
		if (nline++ == 0) {
			if (type != 'v' || !str_eq(v, STR("0"))) {
				*why = "SDP: first line is not v=0";
				return -1;
			}
			continue;
		}
		switch (type) {
		case 'o':
			if (cur != &session || s->origin_addr.l || !origin(v, &s->origin_addr)) {
				*why = "SDP: bad o= line";
				return -1;
			}
			break;
		case 'c': {
			struct str addr;
			if (!connection(v, &addr)) {
				*why = "SDP: bad c= line";
				return -1;
			}
			/* Several c= lines in one section are for layered multicast (RFC 4566
			 * §5.7): the first one is the address. */
			struct str *to = cur == &session ? &s->addr : &s->m[s->nmedia - 1].addr;
			if (to->l == 0)
				*to = addr;
			break;
		}
		case 'm':
			if (s->nmedia == SDP_MAX_MEDIA) {
				*why = "SDP: too many m= lines";
				return -1;
			}
			if (!media(v, &s->m[s->nmedia])) {
				*why = "SDP: bad m= line";
				return -1;
			}
			cur = &lv[s->nmedia++];
			break;
		case 'a':
			attribute(v, cur);
			break;
		default:
			break; /* s= t= b= k= i= u= e= p= z= r=: nothing policy needs */
		}
	}
	if (nline == 0) {
		*why = "SDP: first line is not v=0";
		return -1;
	}
	if (s->nmedia == 0) {
		*why = "SDP: no m= line";
		return -1;
	}
	/* Session-level values apply to every m= section that has none of its own. */
	for (unsigned k = 0; k < s->nmedia; k++) {
		struct sdp_media *m = &s->m[k];
		if (m->addr.l == 0)
			m->addr = s->addr;
		if (m->addr.l == 0) {
			*why = "SDP: media with no connection address";
			return -1;
		}
		m->ice = lv[k].ice || session.ice;
		m->dtls = lv[k].dtls || session.dtls;
		m->dir = lv[k].has_dir ? lv[k].dir : session.has_dir ? session.dir : SDP_SENDRECV;
	}
	return 0;
}

/* Whether hay contains needle, ASCII case ignored. */
static bool contains_case(struct str hay, struct str needle)
{
	for (size_t i = 0; i + needle.l <= hay.l; i++)
		if (str_caseeq((struct str){ hay.p + i, needle.l }, needle))
			return true;
	return false;
}

bool sdp_is_webrtc(const struct sdp *s)
{
	for (unsigned k = 0; k < s->nmedia && k < SDP_MAX_MEDIA; k++) {
		const struct sdp_media *m = &s->m[k];
		if (m->ice && (contains_case(m->proto, STR("SAVPF")) || str_has_prefix_case(m->proto, STR("UDP/TLS"))))
			return true;
	}
	return false;
}

bool sip_msg_has_sdp(const struct sip_msg *m)
{
	if (m->body.l == 0)
		return false;
	/* No Content-Type: RFC 3261 §20.15 makes it mandatory with a body, so the body's
	 * type is unknown and it is not read as SDP. multipart/mixed (RFC 5621) may hold
	 * SDP among other parts, but the relay is handed single SDP bodies only: not SDP. */
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_CONTENT_TYPE);
	if (!h)
		return false;
	struct str v = h->value;
	long semi = str_chr(v, ';');
	if (semi >= 0)
		v.l = (size_t)semi;
	/* media-type = m-type SLASH m-subtype, with LWS allowed around SLASH (§25.1). */
	long slash = str_chr(v, '/');
	if (slash < 0)
		return false;
	struct str type = str_trim((struct str){ v.p, (size_t)slash });
	struct str sub = str_trim((struct str){ v.p + slash + 1, v.l - (size_t)slash - 1 });
	return str_caseeq(type, STR("application")) && str_caseeq(sub, STR("sdp"));
}
