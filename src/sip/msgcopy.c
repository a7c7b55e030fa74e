/* msgcopy.c: moves a parsed message onto a verbatim copy of its bytes, without parsing again. */
#include "sip/sip.h"

#include <string.h>

/* Every view of a parsed message points into [buf, buf + len] (an empty view may sit right
 * at the end, like an empty body) or is NULL / a static string, which stays as it is. The
 * test goes through uintptr_t because pointers into different objects do not compare in C;
 * one unsigned comparison covers both ends (below buf wraps around to a huge offset). */
struct rebase {
	uintptr_t from;
	size_t len;
	const char *to;
};

static void mv(const struct rebase *r, struct str *s)
{
	uintptr_t off = (uintptr_t)s->p - r->from;
	if (off <= r->len)
		s->p = r->to + off;
}

static void mv_uri(const struct rebase *r, struct sip_uri *u)
{
	mv(r, &u->scheme_str);
	mv(r, &u->user);
	mv(r, &u->password);
	mv(r, &u->host);
	mv(r, &u->params);
	mv(r, &u->headers);
	mv(r, &u->raw);
	mv(r, &u->transport);
	mv(r, &u->maddr);
	mv(r, &u->user_param);
}

static void mv_addr(const struct rebase *r, struct sip_addr *a)
{
	mv(r, &a->display);
	mv(r, &a->uri_str);
	mv_uri(r, &a->uri);
	mv(r, &a->params);
	mv(r, &a->tag);
	mv(r, &a->raw);
}

static void mv_via(const struct rebase *r, struct sip_via *v)
{
	mv(r, &v->proto);
	mv(r, &v->version);
	mv(r, &v->transport);
	mv(r, &v->host);
	mv(r, &v->params);
	mv(r, &v->branch);
	mv(r, &v->received);
	mv(r, &v->maddr);
	mv(r, &v->rport);
	mv(r, &v->raw);
}

void sip_msg_rebase(struct sip_msg *dst, struct sip_hdr *hdrs, const struct sip_msg *src, const char *newbuf)
{
	const struct rebase r = { (uintptr_t)src->buf, src->len, newbuf };
	const struct sip_hdr *from = src->hdr;
	unsigned n = src->nhdr;
	if (dst != src)
		*dst = *src;
	/* memmove: a caller compacting in place may pass an array overlapping src's. */
	if (n && hdrs != from)
		memmove(hdrs, from, n * sizeof(hdrs[0]));
	dst->hdr = hdrs;
	dst->hdr_cap = n;
	dst->buf = newbuf;
	mv(&r, &dst->method);
	mv(&r, &dst->ruri_str);
	mv_uri(&r, &dst->ruri);
	mv(&r, &dst->reason);
	mv(&r, &dst->version);
	for (unsigned i = 0; i < dst->nhdr; i++) {
		mv(&r, &dst->hdr[i].name);
		mv(&r, &dst->hdr[i].value);
		mv(&r, &dst->hdr[i].line);
	}
	mv_via(&r, &dst->via);
	mv_addr(&r, &dst->from);
	mv_addr(&r, &dst->to);
	mv(&r, &dst->call_id);
	mv(&r, &dst->cseq_method_str);
	mv(&r, &dst->body);
}
