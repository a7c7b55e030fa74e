/* test_sip_msgcopy.c: sip_msg_rebase against a parse of the copied bytes, field by field. */
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

#include "sip/sip.h"

/* Two views are the same view: same place, same length. */
#define SAME(a, b, f) same_view(#f, (a)->f, (b)->f)

static void same_view(const char *name, struct str a, struct str b)
{
	if (a.p != b.p || a.l != b.l) {
		fprintf(stderr, "%s differs: %p+%zu \"%.*s\" vs %p+%zu \"%.*s\"\n", name, (const void *)a.p, a.l,
			STR_FMT(a), (const void *)b.p, b.l, STR_FMT(b));
		unit_failures++;
	}
}

static void same_uri(const struct sip_uri *a, const struct sip_uri *b)
{
	CHECK_INT(a->scheme, b->scheme);
	SAME(a, b, scheme_str);
	SAME(a, b, user);
	SAME(a, b, password);
	SAME(a, b, host);
	CHECK_INT(a->port, b->port);
	SAME(a, b, params);
	SAME(a, b, headers);
	SAME(a, b, raw);
	SAME(a, b, transport);
	SAME(a, b, maddr);
	SAME(a, b, user_param);
	CHECK_INT(a->lr, b->lr);
}

static void same_addr(const struct sip_addr *a, const struct sip_addr *b)
{
	SAME(a, b, display);
	SAME(a, b, uri_str);
	same_uri(&a->uri, &b->uri);
	SAME(a, b, params);
	SAME(a, b, tag);
	SAME(a, b, raw);
	CHECK_INT(a->bracketed, b->bracketed);
	CHECK_INT(a->star, b->star);
}

static void same_via(const struct sip_via *a, const struct sip_via *b)
{
	SAME(a, b, proto);
	SAME(a, b, version);
	SAME(a, b, transport);
	SAME(a, b, host);
	CHECK_INT(a->port, b->port);
	SAME(a, b, params);
	SAME(a, b, branch);
	SAME(a, b, received);
	SAME(a, b, maddr);
	SAME(a, b, rport);
	CHECK_INT(a->has_rport, b->has_rport);
	SAME(a, b, raw);
}

/* Every member of struct sip_msg (sip.h), hdr[] up to nhdr. */
static void same_msg(const struct sip_msg *a, const struct sip_msg *b)
{
	CHECK(a->buf == b->buf);
	CHECK_INT(a->len, b->len);
	CHECK_INT(a->request, b->request);
	SAME(a, b, method);
	CHECK_INT(a->mid, b->mid);
	SAME(a, b, ruri_str);
	same_uri(&a->ruri, &b->ruri);
	CHECK_INT(a->status, b->status);
	SAME(a, b, reason);
	SAME(a, b, version);
	CHECK_INT(a->nhdr, b->nhdr);
	for (unsigned i = 0; i < a->nhdr && i < b->nhdr; i++) {
		CHECK_INT(a->hdr[i].id, b->hdr[i].id);
		SAME(a, b, hdr[i].name);
		SAME(a, b, hdr[i].value);
		SAME(a, b, hdr[i].line);
	}
	CHECK(memcmp(a->first, b->first, sizeof(a->first)) == 0);
	CHECK(memcmp(a->count, b->count, sizeof(a->count)) == 0);
	same_via(&a->via, &b->via);
	same_addr(&a->from, &b->from);
	same_addr(&a->to, &b->to);
	SAME(a, b, call_id);
	CHECK_INT(a->cseq, b->cseq);
	SAME(a, b, cseq_method_str);
	CHECK_INT(a->cseq_method, b->cseq_method);
	CHECK_INT(a->max_forwards, b->max_forwards);
	CHECK_INT(a->expires, b->expires);
	SAME(a, b, body);
}

/* No pointer-sized word of *m, a struct that was zeroed before, points into [lo, lo + n]:
 * catches a member added to the model that the rebase does not move. */
static void nothing_points_into(const struct sip_msg *m, uintptr_t lo, size_t n)
{
	const unsigned char *b = (const unsigned char *)m;
	for (size_t off = 0; off + sizeof(uintptr_t) <= sizeof(*m); off += sizeof(void *)) {
		uintptr_t w;
		memcpy(&w, b + off, sizeof(w));
		if (w >= lo && w <= lo + n) {
			fprintf(stderr, "word at offset %zu of struct sip_msg still points into the old buffer\n", off);
			unit_failures++;
		}
	}
}

/* \n becomes CRLF. */
static size_t crlf(char *out, const char *text)
{
	size_t n = 0;
	for (const char *p = text; *p; p++) {
		if (*p == '\n')
			out[n++] = '\r';
		out[n++] = *p;
	}
	return n;
}

/* Parses text (after two keep-alive CRLFs, with "JUNK" after it: past the body when
 * Content-Length frames one, else the body), copies the
 * message bytes, rebases, checks the result against a parse of the copy, destroys the
 * original and checks again. Returns the rebased message for content checks. */
static struct sip_msg *roundtrip(const char *text, char **copy)
{
	char *orig = malloc(4096);
	size_t n = crlf(orig, "\n\n");
	n += crlf(orig + n, text);
	memcpy(orig + n, "JUNK", 4); /* past Content-Length: not part of the message */
	n += 4;
	struct sip_msg *src = malloc(sizeof(*src));
	struct sip_hdr *src_hdr = malloc(SIP_MAX_HEADERS * sizeof(*src_hdr));
	struct sip_parse_err err;
	CHECK_INT(sip_msg_parse(src, src_hdr, SIP_MAX_HEADERS, orig, n, true, &err), SIP_PARSE_OK);
	CHECK(src->buf == orig + 4);

	char *nb = malloc(src->len + 1);
	memcpy(nb, src->buf, src->len);
	nb[src->len] = '\0';
	/* The compact form a transaction keeps: the struct and exactly nhdr lines in one block. */
	struct sip_msg *dst = calloc(1, sizeof(*dst) + src->nhdr * sizeof(struct sip_hdr));
	sip_msg_rebase(dst, (struct sip_hdr *)(dst + 1), src, nb);
	CHECK(dst->hdr == (struct sip_hdr *)(dst + 1));
	CHECK_INT(dst->hdr_cap, src->nhdr);

	struct sip_msg *ref = malloc(sizeof(*ref));
	struct sip_hdr *ref_hdr = malloc(SIP_MAX_HEADERS * sizeof(*ref_hdr));
	CHECK_INT(sip_msg_parse(ref, ref_hdr, SIP_MAX_HEADERS, nb, src->len, true, &err), SIP_PARSE_OK);
	same_msg(dst, ref);

	/* The original and its header lines go away; nothing of dst may notice (ASan reports
	 * any read of them). */
	uintptr_t old = (uintptr_t)orig;
	size_t old_len = n;
	memset(orig, 'X', n);
	memset(src_hdr, 'X', SIP_MAX_HEADERS * sizeof(*src_hdr));
	free(orig);
	free(src_hdr);
	free(src);
	nothing_points_into(dst, old, old_len);
	same_msg(dst, ref);
	free(ref_hdr);
	free(ref);
	*copy = nb;
	return dst;
}

static const char invite[] =
	"INVITE sip:bob:secret@biloxi.example.com:5062;transport=tcp;maddr=10.1.1.1;user=phone;lr?subject=hi SIP/2.0\n"
	"Via: SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;maddr=224.2.0.1;rport=5070 "
	", "
	"SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKold\n"
	"Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK2\n"
	"Max-Forwards: 69\n"
	"To: \"Bob \\\"B\\\"\" <sip:bob@biloxi.example.com>;tag=to-1\n"
	"f: Alice <sips:alice:pw@atlanta.example.com:5061;transport=tls>;tag=1928301774;x=y\n"
	"Call-ID: a84b4c76e66710@pc33.atlanta.com\n"
	"CSeq: 314159 INVITE\n"
	"Contact: <sip:alice@pc33.atlanta.com>\n"
	"Subject: a folded\n"
	" header line\n"
	"X-Custom: one\n"
	"Expires: 120\n"
	"Content-Type: application/sdp\n"
	"Content-Length: 4\n"
	"\n"
	"v=0\n";

static void t_rebase_request(void)
{
	char *nb;
	struct sip_msg *m = roundtrip(invite, &nb);
	CHECK(m->buf == nb);
	CHECK_STR(m->method, "INVITE");
	CHECK_INT(m->mid, SIP_INVITE);
	CHECK_STR(m->ruri.user, "bob");
	CHECK_STR(m->ruri.password, "secret");
	CHECK_STR(m->ruri.host, "biloxi.example.com");
	CHECK_INT(m->ruri.port, 5062);
	CHECK_STR(m->ruri.transport, "tcp");
	CHECK_STR(m->ruri.maddr, "10.1.1.1");
	CHECK_STR(m->ruri.user_param, "phone");
	CHECK(m->ruri.lr);
	CHECK_STR(m->ruri.headers, "?subject=hi");
	CHECK_STR(m->version, "SIP/2.0");
	CHECK_STR(m->via.host, "pc33.atlanta.com");
	CHECK_INT(m->via.port, 5066);
	CHECK_STR(m->via.branch, "z9hG4bK776asdhds");
	CHECK_STR(m->via.received, "192.0.2.1");
	CHECK_STR(m->via.maddr, "224.2.0.1");
	CHECK_STR(m->via.rport, "5070");
	CHECK_STR(m->via.transport, "UDP");
	CHECK_STR(m->to.display, "Bob \\\"B\\\"");
	CHECK_STR(m->to.tag, "to-1");
	CHECK_STR(m->from.display, "Alice");
	CHECK_STR(m->from.uri.password, "pw");
	CHECK_STR(m->from.uri.transport, "tls");
	CHECK_STR(m->from.tag, "1928301774");
	CHECK_STR(m->from.params, ";tag=1928301774;x=y");
	CHECK_STR(m->call_id, "a84b4c76e66710@pc33.atlanta.com");
	CHECK_INT(m->cseq, 314159);
	CHECK_STR(m->cseq_method_str, "INVITE");
	CHECK_INT(m->max_forwards, 69);
	CHECK_INT(m->expires, 120);
	CHECK_STR(m->body, "v=0\r");
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_SUBJECT);
	CHECK(h != NULL);
	if (h)
		CHECK_STR(h->value, "a folded\r\n header line");
	h = sip_msg_hdr_by_name(m, STR("x-custom"));
	CHECK(h != NULL);
	if (h) {
		CHECK_STR(h->name, "X-Custom");
		CHECK_STR(h->line, "X-Custom: one\r\n");
	}
	/* The second Via line is reachable as before. */
	h = sip_msg_hdr(m, SIP_HDR_VIA);
	CHECK(h && (h = sip_msg_hdr_next(m, h)) != NULL);
	if (h)
		CHECK_STR(h->value, "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK2");
	/* A response printed from the copy is the one printed from a fresh parse. */
	char a[2048], b[2048];
	struct sip_out oa, ob;
	sip_out_init(&oa, a, sizeof(a));
	sip_out_init(&ob, b, sizeof(b));
	struct sip_msg ref;
	struct sip_hdr ref_hdr[SIP_MAX_HEADERS];
	struct sip_parse_err err;
	CHECK_INT(sip_msg_parse(&ref, ref_hdr, SIP_MAX_HEADERS, nb, m->len, true, &err), SIP_PARSE_OK);
	CHECK_INT(sip_print_response(&oa, m, 486, NULL, NULL), 0);
	CHECK_INT(sip_print_response(&ob, &ref, 486, NULL, NULL), 0);
	CHECK(oa.len == ob.len && memcmp(a, b, oa.len) == 0);
	free(m);
	free(nb);
}

static void t_rebase_response(void)
{
	char *nb;
	struct sip_msg *m = roundtrip("SIP/2.0 180 Ringing Now\n"
				      "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport\n"
				      "From: sip:alice@example.com;tag=a\n"
				      "To: <tel:+1-201-555-0123>;tag=b\n"
				      "i: c1\n"
				      "CSeq: 2 OPTIONS\n"
				      "\n",
				      &nb);
	CHECK(!m->request);
	CHECK_INT(m->status, 180);
	CHECK_STR(m->reason, "Ringing Now");
	CHECK(m->via.has_rport);
	CHECK_INT(m->via.rport.l, 0);
	CHECK_STR(m->from.uri.host, "example.com");
	CHECK(!m->from.bracketed);
	CHECK_INT(m->to.uri.scheme, SIP_SCHEME_TEL);
	CHECK_STR(m->to.uri.raw, "tel:+1-201-555-0123");
	CHECK_STR(m->call_id, "c1");
	CHECK_INT(m->max_forwards, -1);
	CHECK_INT(m->expires, -1);
	CHECK_STR(m->body, "JUNK"); /* no Content-Length on a datagram: the body is the rest */
	free(m);
	free(nb);

	/* An empty body is a view right at the end of the message: it moves too. */
	m = roundtrip("OPTIONS sip:x SIP/2.0\n"
		      "Via: SIP/2.0/UDP h;branch=z9hG4bKe\n"
		      "From: <sip:a@h>;tag=1\n"
		      "To: <sip:x>\n"
		      "Call-ID: e\n"
		      "CSeq: 1 OPTIONS\n"
		      "Content-Length: 0\n"
		      "\n",
		      &nb);
	CHECK(m->body.p == nb + m->len);
	CHECK_INT(m->body.l, 0);
	CHECK_STR(m->ruri.host, "x");
	free(m);
	free(nb);
}

/* Only hdrs[0..nhdr) of the destination array is written, and dst may be src. */
static void t_rebase_partial_and_in_place(void)
{
	char buf[2048];
	size_t n = crlf(buf, invite);
	struct sip_msg *src = malloc(sizeof(*src));
	struct sip_hdr *src_hdr = malloc(SIP_MAX_HEADERS * sizeof(*src_hdr));
	struct sip_parse_err err;
	CHECK_INT(sip_msg_parse(src, src_hdr, SIP_MAX_HEADERS, buf, n, true, &err), SIP_PARSE_OK);
	struct sip_msg *dst = malloc(sizeof(*dst));
	struct sip_hdr *dst_hdr = malloc(SIP_MAX_HEADERS * sizeof(*dst_hdr));
	memset(dst, 0x5a, sizeof(*dst));
	memset(dst_hdr, 0x5a, SIP_MAX_HEADERS * sizeof(*dst_hdr));
	char nb[2048];
	memcpy(nb, src->buf, src->len);
	sip_msg_rebase(dst, dst_hdr, src, nb);
	CHECK(dst->hdr == dst_hdr);
	CHECK_INT(dst->hdr_cap, dst->nhdr);
	const unsigned char *tail = (const unsigned char *)&dst_hdr[dst->nhdr];
	bool untouched = true;
	for (size_t i = 0; i < (SIP_MAX_HEADERS - dst->nhdr) * sizeof(dst_hdr[0]); i++)
		untouched = untouched && tail[i] == 0x5a;
	CHECK(untouched);
	CHECK_STR(dst->via.branch, "z9hG4bK776asdhds");
	CHECK(dst->via.branch.p >= nb && dst->via.branch.p < nb + src->len);

	/* In place: src itself moves onto a second copy. */
	char nb2[2048];
	memcpy(nb2, src->buf, src->len);
	sip_msg_rebase(src, src->hdr, src, nb2);
	memset(buf, 'X', sizeof(buf));
	CHECK(src->buf == nb2);
	CHECK_STR(src->call_id, "a84b4c76e66710@pc33.atlanta.com");
	CHECK_STR(src->to.tag, "to-1");
	CHECK_STR(src->hdr[src->nhdr - 1].line, "Content-Length: 4\r\n");
	CHECK(src->body.p == nb2 + src->len - 4);
	CHECK(src->hdr == src_hdr);
	free(src_hdr);
	free(src);
	free(dst_hdr);
	free(dst);
}

static const struct unit_case cases[] = {
	{ "rebase_request", t_rebase_request },
	{ "rebase_response", t_rebase_response },
	{ "rebase_partial_and_in_place", t_rebase_partial_and_in_place },
};
UNIT_MAIN(cases)
