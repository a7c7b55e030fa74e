/* test_stun.c: unit tests of the STUN keepalive answerer (RFC 5389 Binding on the UDP SIP port). */
#include "unit.h"

#include <errno.h>

#include "transport/transport.h"

static const unsigned char tid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/* A Binding message of type with attrs (alen bytes, padded already). */
static size_t make(unsigned char *m, unsigned type, const unsigned char *attrs, size_t alen)
{
	m[0] = (unsigned char)(type >> 8);
	m[1] = (unsigned char)type;
	m[2] = (unsigned char)(alen >> 8);
	m[3] = (unsigned char)alen;
	m[4] = 0x21;
	m[5] = 0x12;
	m[6] = 0xA4;
	m[7] = 0x42;
	memcpy(m + 8, tid, 12);
	if (alen)
		memcpy(m + 20, attrs, alen);
	return 20 + alen;
}

/* The value of attribute type in message m of n bytes, or NULL. */
static const unsigned char *find(const unsigned char *m, int n, unsigned type, unsigned *len)
{
	for (int at = 20; at + 4 <= n;) {
		unsigned t = (unsigned)(m[at] << 8 | m[at + 1]), l = (unsigned)(m[at + 2] << 8 | m[at + 3]);
		if (t == type) {
			*len = l;
			return m + at + 4;
		}
		at += 4 + (int)((l + 3) / 4 * 4);
	}
	return NULL;
}

static void t_binding_ipv4_ipv6(void)
{
	unsigned char req[64], out[TP_STUN_MAX_RESP];
	size_t n = make(req, 0x0001, NULL, 0);
	struct tp_addr a;
	tp_addr_from_host(&a, STR("192.0.2.7"), 40000);
	CHECK_INT(tp_stun_classify(req, n), TP_STUN_YES);
	int r = tp_stun_answer(req, n, &a, out, sizeof out);
	CHECK(r > 20);
	CHECK_INT(out[0] << 8 | out[1], 0x0101);
	CHECK_INT(out[2] << 8 | out[3], r - 20);
	CHECK(memcmp(out + 8, tid, 12) == 0);
	unsigned l = 0;
	const unsigned char *x = find(out, r, 0x0020, &l);
	CHECK(x != NULL && l == 8);
	if (x) {
		CHECK_INT(x[1], 1);
		CHECK_INT((x[2] << 8 | x[3]) ^ 0x2112, 40000);
		CHECK_INT(x[4] ^ 0x21, 192);
		CHECK_INT(x[5] ^ 0x12, 0);
		CHECK_INT(x[6] ^ 0xA4, 2);
		CHECK_INT(x[7] ^ 0x42, 7);
	}
	tp_addr_from_host(&a, STR("[2001:db8::7]"), 5062);
	r = tp_stun_answer(req, n, &a, out, sizeof out);
	x = find(out, r, 0x0020, &l);
	CHECK(x != NULL && l == 20);
	if (x) {
		CHECK_INT(x[1], 2);
		CHECK_INT((x[2] << 8 | x[3]) ^ 0x2112, 5062);
		CHECK_INT(x[4] ^ 0x21, 0x20);
		CHECK_INT(x[5] ^ 0x12, 0x01);
		CHECK_INT(x[19] ^ tid[11], 7); /* the last bytes are keyed by the transaction id */
	}
}

static void t_not_stun_and_malformed(void)
{
	unsigned char req[64], out[TP_STUN_MAX_RESP];
	struct tp_addr a;
	tp_addr_from_host(&a, STR("192.0.2.7"), 40000);
	CHECK_INT(tp_stun_classify((const unsigned char *)"\r\n\r\n", 4), TP_STUN_NOT);
	CHECK_INT(tp_stun_classify((const unsigned char *)"OPTIONS", 7), TP_STUN_NOT);
	size_t n = make(req, 0x0001, NULL, 0);
	req[7] = 0x43; /* not the magic cookie */
	CHECK_INT(tp_stun_answer(req, n, &a, out, sizeof out), -EBADMSG);
	n = make(req, 0x0001, NULL, 0);
	CHECK_INT(tp_stun_answer(req, n - 1, &a, out, sizeof out), -EBADMSG);
	n = make(req, 0x0101, NULL, 0); /* a response */
	CHECK_INT(tp_stun_answer(req, n, &a, out, sizeof out), -EBADMSG);
	static const unsigned char overrun[] = { 0x80, 0x22, 0x00, 0x09, 'p', 'a', 'r', 'l' };
	n = make(req, 0x0001, overrun, sizeof overrun);
	CHECK_INT(tp_stun_answer(req, n, &a, out, sizeof out), -EBADMSG);
	static const unsigned char badfp[] = { 0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4 };
	n = make(req, 0x0001, badfp, sizeof badfp);
	CHECK_INT(tp_stun_answer(req, n, &a, out, sizeof out), -EBADMSG);
	n = make(req, 0x0011, NULL, 0); /* an indication: no answer, not malformed */
	CHECK_INT(tp_stun_answer(req, n, &a, out, sizeof out), 0);
}

static void t_unknown_attribute_420(void)
{
	unsigned char req[64], out[TP_STUN_MAX_RESP];
	struct tp_addr a;
	tp_addr_from_host(&a, STR("192.0.2.7"), 40000);
	static const unsigned char user[] = { 0x00, 0x06, 0x00, 0x04, 'a', 'b', 'c', 'd' };
	size_t n = make(req, 0x0001, user, sizeof user);
	int r = tp_stun_answer(req, n, &a, out, sizeof out);
	CHECK(r > 20);
	CHECK_INT(out[0] << 8 | out[1], 0x0111);
	unsigned l = 0;
	const unsigned char *e = find(out, r, 0x0009, &l);
	CHECK(e != NULL && e[2] == 4 && e[3] == 20);
	const unsigned char *u = find(out, r, 0x000A, &l);
	CHECK(u != NULL && l == 2 && u[0] == 0 && u[1] == 6);
}

static const struct unit_case cases[] = {
	{ "binding_ipv4_ipv6", t_binding_ipv4_ipv6 },
	{ "not_stun_and_malformed", t_not_stun_and_malformed },
	{ "unknown_attribute_420", t_unknown_attribute_420 },
};

UNIT_MAIN(cases)
