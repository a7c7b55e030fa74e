/* stun.c: answers STUN Binding Requests on the UDP SIP port (RFC 5389), the keepalive of RFC 5626 §4.4.2. */
#include "transport/transport.h"

#include <errno.h>
#include <string.h>

#define HDR 20                  /* type, length, magic cookie, transaction id */
#define COOKIE 0x2112A442u      /* RFC 5389 §6 */
#define BINDING_REQUEST 0x0001u /* method Binding, class request */
#define BINDING_INDICATION 0x0011u
#define BINDING_SUCCESS 0x0101u
#define BINDING_ERROR 0x0111u
#define ATTR_ERROR_CODE 0x0009u
#define ATTR_UNKNOWN_ATTRIBUTES 0x000Au
#define ATTR_XOR_MAPPED_ADDRESS 0x0020u
#define ATTR_SOFTWARE 0x8022u
#define ATTR_FINGERPRINT 0x8028u
#define FINGERPRINT_XOR 0x5354554Eu
#define MAX_UNKNOWN 8 /* unknown attributes named in a 420 */

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* CRC-32 (ISO HDLC, the one of zlib) for FINGERPRINT: bit by bit, since a keepalive is a
 * few dozen bytes and a table would be 1 KB of state for nothing. */
static uint32_t crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
	}
	return ~c;
}

/* Appends attribute type with len bytes of value (padded to 4) at out + *at. */
static void attr(unsigned char *out, size_t *at, uint16_t type, const void *v, uint16_t len)
{
	put16(out + *at, type);
	put16(out + *at + 2, len);
	memcpy(out + *at + 4, v, len);
	size_t pad = (4 - len % 4) % 4;
	memset(out + *at + 4 + len, 0, pad);
	*at += 4 + len + pad;
}

/* Ends the message of at bytes: its length field, and a FINGERPRINT when asked. */
static size_t finish(unsigned char *out, size_t at, bool fingerprint)
{
	if (fingerprint) {
		put16(out + 2, (uint16_t)(at + 8 - HDR)); /* the CRC covers the length with it */
		uint32_t crc = crc32(out, at) ^ FINGERPRINT_XOR;
		unsigned char v[4];
		put32(v, crc);
		attr(out, &at, ATTR_FINGERPRINT, v, 4);
	}
	put16(out + 2, (uint16_t)(at - HDR));
	return at;
}

enum tp_stun tp_stun_classify(const unsigned char *in, size_t len)
{
	/* RFC 7983 §7: a first byte of 0 to 3 is STUN; SIP starts with a letter, and a CRLF
	 * keepalive with 13 or 10. */
	if (len == 0 || in[0] > 3)
		return TP_STUN_NOT;
	return TP_STUN_YES;
}

int tp_stun_answer(const unsigned char *in, size_t len, const struct tp_addr *from, unsigned char *out, size_t cap)
{
	if (cap < TP_STUN_MAX_RESP)
		return -ENOSPC;
	if (len < HDR || len > 1024 || get32(in + 4) != COOKIE || get16(in + 2) != len - HDR || len % 4)
		return -EBADMSG;
	uint16_t type = get16(in);
	if (type != BINDING_REQUEST && type != BINDING_INDICATION)
		return -EBADMSG; /* a response or another method: nothing we asked for */
	/* The attributes must tile the message exactly; a FINGERPRINT must be last and right;
	 * comprehension-required ones we do not know are named in a 420 (§7.3.1). */
	uint16_t unknown[MAX_UNKNOWN];
	unsigned nunknown = 0;
	bool fingerprint = false;
	size_t at = HDR;
	while (at < len) {
		if (len - at < 4 || fingerprint)
			return -EBADMSG;
		uint16_t t = get16(in + at), l = get16(in + at + 2);
		size_t padded = ((size_t)l + 3) / 4 * 4;
		if (padded > len - at - 4)
			return -EBADMSG;
		if (t == ATTR_FINGERPRINT) {
			if (l != 4 || (get32(in + at + 4) ^ FINGERPRINT_XOR) != crc32(in, at))
				return -EBADMSG;
			fingerprint = true;
		} else if (t < 0x8000u && nunknown < MAX_UNKNOWN) {
			/* MESSAGE-INTEGRITY too: keepalives are not authenticated (RFC 5626
			 * §4.4.2), so a request that needs it is one we do not understand. */
			unknown[nunknown++] = t;
		}
		at += 4 + padded;
	}
	if (type == BINDING_INDICATION)
		return 0; /* a keepalive that wants no answer (RFC 5389 §7.3.2) */

	memcpy(out, in, HDR); /* cookie and transaction id; type and length set below */
	size_t n = HDR;
	if (nunknown) {
		put16(out, BINDING_ERROR);
		static const char reason[] = "Unknown Attribute";
		unsigned char ec[4 + sizeof reason - 1];
		put16(ec, 0);
		ec[2] = 4;  /* class */
		ec[3] = 20; /* number */
		memcpy(ec + 4, reason, sizeof reason - 1);
		attr(out, &n, ATTR_ERROR_CODE, ec, sizeof ec);
		unsigned char ua[2 * MAX_UNKNOWN];
		for (unsigned i = 0; i < nunknown; i++)
			put16(ua + 2 * i, unknown[i]);
		attr(out, &n, ATTR_UNKNOWN_ATTRIBUTES, ua, (uint16_t)(2 * nunknown));
		return (int)finish(out, n, fingerprint);
	}
	put16(out, BINDING_SUCCESS);
	/* XOR-MAPPED-ADDRESS (§15.2): the port with the cookie's top half, the address with
	 * the cookie (IPv4) or the cookie and the transaction id (IPv6). */
	unsigned char v[20], key[16];
	put32(key, COOKIE);
	memcpy(key + 4, in + 8, 12);
	v[0] = 0;
	uint16_t alen;
	if (from->ss.ss_family == AF_INET6) {
		v[1] = 0x02;
		put16(v + 2, (uint16_t)(ntohs(from->ss.in6.sin6_port) ^ (COOKIE >> 16)));
		const unsigned char *ip = from->ss.in6.sin6_addr.s6_addr;
		for (int i = 0; i < 16; i++)
			v[4 + i] = ip[i] ^ key[i];
		alen = 20;
	} else {
		v[1] = 0x01;
		put16(v + 2, (uint16_t)(ntohs(from->ss.in.sin_port) ^ (COOKIE >> 16)));
		const unsigned char *ip = (const unsigned char *)&from->ss.in.sin_addr.s_addr;
		for (int i = 0; i < 4; i++)
			v[4 + i] = ip[i] ^ key[i];
		alen = 8;
	}
	attr(out, &n, ATTR_XOR_MAPPED_ADDRESS, v, alen);
	static const char sw[] = "parley";
	attr(out, &n, ATTR_SOFTWARE, sw, sizeof sw - 1);
	return (int)finish(out, n, fingerprint);
}
