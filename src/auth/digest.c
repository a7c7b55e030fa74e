/* digest.c: digest challenges and verification with SipHash nonces and a nonce-count window. */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sodium.h>

/* A nonce is the hex form of: issue time (8 bytes, big-endian), a per-nonce serial (8 bytes)
 * and a 16-byte MAC, SipHash-2-4 with 128-bit output (libsodium's siphashx24) under a random
 * 128-bit key, of time || serial || realm. The server keeps nothing per challenge: the MAC
 * proves we issued it for this realm, the time says whether it is stale, and the serial makes
 * every challenge's nonce different, so that two clients challenged in the same second keep
 * separate nonce counts. SipHash is a keyed PRF made for inputs this short: it costs a few
 * hundred instructions where HMAC-SHA256 cost thousands, and a 128-bit key is beyond any
 * search. A forged nonce would not even pass on its own: the response must still be right
 * for it, which takes the password.
 *
 * Nonce counts (replay protection with qop=auth) are kept in a fixed window over the serials:
 * maxnc[serial % W] is the highest count accepted for the nonce of that serial, for the W
 * latest serials issued. Issuing serial s sets its slot to 0; the slot is next reused by
 * serial s + W, and from then on s is outside the window. So a nonce inside the window always
 * owns its slot, and a nonce outside it (only after W newer challenges) is answered stale:
 * the table cannot vouch for its count any more, and the client gets a fresh nonce. No
 * fresh nonce is ever refused however many are live, and the memory is W bytes, whatever
 * the load. W is a power of two, so that serial % W stays continuous when the 64-bit
 * serial (random at start) wraps. */
#define NONCE_ID_LEN 16
#define NONCE_MAC_LEN crypto_shorthash_siphashx24_BYTES
#define NONCE_RAW_LEN (NONCE_ID_LEN + NONCE_MAC_LEN)
#define NONCE_HEX_LEN (NONCE_RAW_LEN * 2)
/* The MAC covers this much of the realm at most: a longer realm is not one we would serve,
 * and the realm is compared as a whole elsewhere anyway. */
#define REALM_MAC_MAX 256

_Static_assert(NONCE_MAC_LEN == 16, "the MAC is compared with crypto_verify_16");
_Static_assert(crypto_shorthash_siphashx24_KEYBYTES == 16, "a 128-bit key");

/* The default window: 1 MiB, the nonces of the last 1,048,576 challenges. */
#define WINDOW_DEFAULT (1u << 20)
/* The largest window replay_slots may ask for (1 GiB); larger requests are clamped. */
#define WINDOW_MAX (1u << 30)
/* A maxnc value meaning the nonce is used up. Counts up to NC_MAX - 1 are kept exactly; a
 * count of NC_MAX or more is refused as stale (a new nonce is needed), and the slot then
 * holds NC_MAX, so that every later use of that nonce is refused too. */
#define NC_MAX 255u

/* The longest method and digest uri, together, whose HA2 is remembered. */
#define HA2_KEY_MAX 240

/* The HA2 = H(method:uri) of the latest verification with one algorithm. Every REGISTER of
 * a domain states the same digest uri (the domain, or the server's address), so that this
 * one entry spares most registrations one of their three hashes. HA2 holds no secret. */
struct ha2_memo {
	bool set;               /* key and hex are filled */
	size_t ml, ul;          /* lengths of the method and uri in key */
	char key[HA2_KEY_MAX];  /* the method, then the uri */
	char hex[AUTH_HEX_MAX]; /* their HA2 in lowercase hex */
};

/* Not shared between threads: verifications update maxnc and the HA2 memo. */
struct auth {
	struct auth_conf conf;
	uint64_t serial;                                             /* next nonce serial; starts random */
	unsigned char mac_key[crypto_shorthash_siphashx24_KEYBYTES]; /* nonce MAC key, random */
	struct ha2_memo ha2[AUTH_MAX_ALGS];                          /* by enum auth_alg */
	uint8_t *maxnc;               /* by serial & mask: highest nonce count accepted */
	uint64_t mask;                /* window size W - 1 (W a power of two) */
	char dummy_ha1[AUTH_HEX_MAX]; /* random: an unknown user's response is checked against
				       * it, so that unknown and known users cost the same */
};

/* The value of each hex digit (either case), and BADHEX, a bit no digit has, for any other
 * byte. Spelled out whole, so that decoding needs no offset or branch per digit. */
#define BADHEX 0x80
#define BAD4 BADHEX, BADHEX, BADHEX, BADHEX
#define BAD16 BAD4, BAD4, BAD4, BAD4
static const unsigned char hexv[] = {
	BAD16,  BAD16,  BAD16, /* 0x00-0x2f */
	0,      1,      2,      3,     4,     5,     6,     7,      8,    9,
	BAD4,   BADHEX, BADHEX,                                                 /* '0'-'9', 0x3a-0x3f */
	BADHEX, 10,     11,     12,    13,    14,    15,    BADHEX, BAD4, BAD4, /* 0x40, 'A'-'F', 0x47-0x4f */
	BAD16,                                                                  /* 0x50-0x5f */
	BADHEX, 10,     11,     12,    13,    14,    15,    BADHEX, BAD4, BAD4, /* 0x60, 'a'-'f', 0x67-0x6f */
	BAD16,                                                                  /* 0x70-0x7f */
	BAD16,  BAD16,  BAD16,  BAD16, BAD16, BAD16, BAD16, BAD16,              /* 0x80-0xff */
};
#undef BAD16
#undef BAD4
_Static_assert(sizeof(hexv) == 256, "one entry per byte value");

/* "000102...ff": the two lowercase hex digits of every byte value. */
#define HEX_ROW(h) h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"
static const char hexpairs[513] =
	HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3") HEX_ROW("4") HEX_ROW("5") HEX_ROW("6") HEX_ROW("7")
		HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b") HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");
#undef HEX_ROW

/* Writes the 2n lowercase hex digits of in[0..n) to out, without a NUL. Four bytes a round:
 * the loop's own counting and branching cost as much as a byte's lookup. */
static void tohex(const unsigned char *in, size_t n, char *out)
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		memcpy(out + 2 * i, hexpairs + 2 * (size_t)in[i], 2);
		memcpy(out + 2 * i + 2, hexpairs + 2 * (size_t)in[i + 1], 2);
		memcpy(out + 2 * i + 4, hexpairs + 2 * (size_t)in[i + 2], 2);
		memcpy(out + 2 * i + 6, hexpairs + 2 * (size_t)in[i + 3], 2);
	}
	for (; i < n; i++)
		memcpy(out + 2 * i, hexpairs + 2 * (size_t)in[i], 2);
}

static int hexval(char c)
{
	unsigned v = hexv[(unsigned char)c];

	return v & BADHEX ? -1 : (int)v;
}

/* One byte from the two hex digits at s; a non-digit sets BADHEX in *bad. */
static unsigned char unhex1(const char *s, unsigned *bad)
{
	unsigned hi = hexv[(unsigned char)s[0]], lo = hexv[(unsigned char)s[1]];

	*bad |= hi | lo;
	return (unsigned char)(hi << 4 | lo);
}

/* Decodes n bytes from the 2n hex digits (either case) at s. Returns false when any of them
 * is not a hex digit: the digits' table values are gathered and checked once, at the end.
 * Four bytes a round, as in tohex. */
static bool unhex(const char *s, size_t n, unsigned char *out)
{
	unsigned bad = 0;
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		out[i] = unhex1(s + 2 * i, &bad);
		out[i + 1] = unhex1(s + 2 * i + 2, &bad);
		out[i + 2] = unhex1(s + 2 * i + 4, &bad);
		out[i + 3] = unhex1(s + 2 * i + 6, &bad);
	}
	for (; i < n; i++)
		out[i] = unhex1(s + 2 * i, &bad);
	return !(bad & BADHEX);
}

static size_t hexlen_of(enum auth_alg alg)
{
	return alg == AUTH_SHA256 ? 64 : 32;
}

/* MD5 and SHA-256 go through OpenSSL's low-level functions, deprecated in OpenSSL 3 in
 * favour of EVP. On inputs this short EVP costs some 650 more instructions per hash than
 * these (its provider dispatch in Init, Update and Final; measured with callgrind), more than
 * MD5 needs for a whole block, and a verification needs two or three hashes. EVP would buy
 * nothing here: RFC 2617 and 7616 fix the algorithms, and the software implementations behind
 * both paths are the same. The deprecation is silenced for these three functions only.
 * These hashes cannot fail. Final wipes the context's data buffer (OpenSSL's md32_common.h
 * does so for both), so that what went through it, an HA1 or a password, is not left
 * behind. */
union hctx {
	MD5_CTX md5;
	SHA256_CTX sha256;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static void h_init(union hctx *c, enum auth_alg alg)
{
	if (alg == AUTH_SHA256)
		SHA256_Init(&c->sha256);
	else
		MD5_Init(&c->md5);
}

static void h_update(union hctx *c, enum auth_alg alg, const void *p, size_t n)
{
	if (alg == AUTH_SHA256)
		SHA256_Update(&c->sha256, p, n);
	else
		MD5_Update(&c->md5, p, n);
}

/* Writes the digest (16 bytes for MD5, 32 for SHA-256) to d. */
static void h_final(union hctx *c, enum auth_alg alg, unsigned char d[SHA256_DIGEST_LENGTH])
{
	if (alg == AUTH_SHA256)
		SHA256_Final(d, &c->sha256);
	else
		MD5_Final(d, &c->md5);
}

#pragma GCC diagnostic pop

/* Feeds the parts, joined by ':', to the hash c. Short parts are gathered into one buffer
 * first: a call into the hash costs more than copying a short part. That buffer is not
 * wiped, so no secret may be among the parts: callers feed an HA1 or a password to h_update
 * themselves, and so into the hash's own buffer, which h_final wipes. */
static void hash_join(union hctx *c, enum auth_alg alg, const struct str *parts, size_t n)
{
	unsigned char buf[256];
	size_t bl = 0;

	for (size_t i = 0; i < n; i++) {
		const char *p = parts[i].p;
		size_t l = parts[i].l;

		if (i > 0)
			buf[bl++] = ':';
		/* Keeps room for the next ':' too: flush when this part does not fit. */
		if (l >= sizeof(buf) - bl) {
			h_update(c, alg, buf, bl);
			h_update(c, alg, p, l);
			bl = 0;
		} else if (l > 0) {
			memcpy(buf + bl, p, l);
			bl += l;
		}
	}
	h_update(c, alg, buf, bl);
}

int auth_ha1(enum auth_alg alg, struct str user, struct str realm, struct str password, char out[AUTH_HEX_MAX])
{
	struct str parts[] = { user, realm, STR_NULL }; /* "user:realm:" */
	unsigned char d[SHA256_DIGEST_LENGTH];
	union hctx c;

	h_init(&c, alg);
	hash_join(&c, alg, parts, 3);
	h_update(&c, alg, password.p, password.l);
	h_final(&c, alg, d);
	tohex(d, hexlen_of(alg) / 2, out);
	out[hexlen_of(alg)] = '\0';
	return 0;
}

/* HA2 = H(method:uri) of RFC 2617 §3.2.2.3, in lowercase hex (no NUL). */
static void ha2_hex(enum auth_alg alg, struct str method, struct str uri, char out[AUTH_HEX_MAX])
{
	struct str parts[] = { method, uri };
	unsigned char d[SHA256_DIGEST_LENGTH];
	union hctx c;

	h_init(&c, alg);
	hash_join(&c, alg, parts, 2);
	h_final(&c, alg, d);
	tohex(d, hexlen_of(alg) / 2, out);
}

/* The response of RFC 2617 §3.2.2.1 (and RFC 7616 §3.4.1) as a raw digest in d: with qop,
 * H(HA1:nonce:nc:cnonce:qop:HA2), without it H(HA1:nonce:HA2); ha2 is in hex. */
static void response_digest(enum auth_alg alg, struct str ha1, struct str nonce, struct str nc, struct str cnonce,
			    struct str qop, struct str ha2, unsigned char d[SHA256_DIGEST_LENGTH])
{
	union hctx c;

	h_init(&c, alg);
	h_update(&c, alg, ha1.p, ha1.l); /* the secret: straight into the hash, see hash_join */
	/* The empty first part puts the ':' that follows HA1. */
	if (qop.l == 0) {
		struct str parts[] = { STR_NULL, nonce, ha2 };
		hash_join(&c, alg, parts, 3);
	} else {
		struct str parts[] = { STR_NULL, nonce, nc, cnonce, qop, ha2 };
		hash_join(&c, alg, parts, 6);
	}
	h_final(&c, alg, d);
}

int auth_client_response(const struct auth_client *c, char out[AUTH_HEX_MAX])
{
	char ha1[AUTH_HEX_MAX], ha2[AUTH_HEX_MAX], nc[9];
	unsigned char d[SHA256_DIGEST_LENGTH];
	size_t hl = hexlen_of(c->alg);

	auth_ha1(c->alg, c->user, c->realm, c->password, ha1);
	ha2_hex(c->alg, c->method, c->uri, ha2);
	snprintf(nc, sizeof(nc), "%08x", c->nc);
	response_digest(c->alg, (struct str){ ha1, hl }, c->nonce, str_from_cstr(nc), c->cnonce, c->qop,
			(struct str){ ha2, hl }, d);
	OPENSSL_cleanse(ha1, sizeof(ha1));
	tohex(d, hl / 2, out);
	out[hl] = '\0';
	return 0;
}

bool auth_alg_from_name(struct str name, enum auth_alg *alg)
{
	name = str_trim(name);
	if (name.l == 0 || str_caseeq(name, STR("MD5"))) {
		*alg = AUTH_MD5;
		return true;
	}
	if (str_caseeq(name, STR("SHA-256"))) {
		*alg = AUTH_SHA256;
		return true;
	}
	return false;
}

const char *auth_alg_name(enum auth_alg alg)
{
	return alg == AUTH_SHA256 ? "SHA-256" : "MD5";
}

int auth_algs_parse(struct auth_conf *conf, const char *list)
{
	struct str rest = str_from_cstr(list);
	unsigned n = 0;

	while (rest.l > 0) {
		long comma = str_chr(rest, ',');
		struct str item = comma < 0 ? rest : (struct str){ rest.p, (size_t)comma };
		enum auth_alg alg;

		rest = comma < 0 ? STR_NULL : (struct str){ rest.p + comma + 1, rest.l - (size_t)comma - 1 };
		item = str_trim(item);
		if (str_caseeq(item, STR("md5")))
			alg = AUTH_MD5;
		else if (str_caseeq(item, STR("sha-256")) || str_caseeq(item, STR("sha256")))
			alg = AUTH_SHA256;
		else
			return -EINVAL;
		for (unsigned i = 0; i < n; i++)
			if (conf->algs[i] == alg)
				return -EINVAL;
		if (n == AUTH_MAX_ALGS)
			return -EINVAL;
		conf->algs[n++] = alg;
	}
	if (n == 0)
		return -EINVAL;
	conf->nalgs = n;
	return 0;
}

static bool offers(const struct auth *a, enum auth_alg alg)
{
	for (unsigned i = 0; i < a->conf.nalgs; i++)
		if (a->conf.algs[i] == alg)
			return true;
	return false;
}

int auth_new(struct auth **ap, const struct auth_conf *conf)
{
	struct auth *a;
	uint64_t window = 1;
	unsigned want = conf && conf->replay_slots ? conf->replay_slots : WINDOW_DEFAULT;

	*ap = NULL;
	/* libsodium sets itself up once per process; later calls return at once. */
	if (sodium_init() < 0)
		return -EIO;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (conf)
		a->conf = *conf;
	if (a->conf.nalgs == 0 || a->conf.nalgs > AUTH_MAX_ALGS) {
		a->conf.nalgs = 1;
		a->conf.algs[0] = AUTH_MD5;
	}
	if (a->conf.nonce_lifetime == 0)
		a->conf.nonce_lifetime = 300;
	if (want > WINDOW_MAX)
		want = WINDOW_MAX;
	while (window < want)
		window <<= 1;
	/* Zeroed slots are safe before any challenge: a nonce that passes its MAC was issued
	 * by nonce_make, which reset its slot. */
	a->maxnc = calloc((size_t)window, 1);
	if (!a->maxnc) {
		auth_free(a);
		return -ENOMEM;
	}
	a->mask = window - 1;
	unsigned char dummy[SHA256_DIGEST_LENGTH];
	if (RAND_bytes(a->mac_key, sizeof(a->mac_key)) != 1 ||
	    RAND_bytes((unsigned char *)&a->serial, sizeof(a->serial)) != 1 || RAND_bytes(dummy, sizeof(dummy)) != 1) {
		auth_free(a);
		return -EIO;
	}
	tohex(dummy, sizeof(dummy), a->dummy_ha1);
	a->dummy_ha1[AUTH_HEX_MAX - 1] = '\0';
	*ap = a;
	return 0;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	sodium_memzero(a->mac_key, sizeof(a->mac_key));
	free(a->maxnc);
	free(a);
}

static void put_be64(unsigned char *p, uint64_t v)
{
	p[0] = (unsigned char)(v >> 56);
	p[1] = (unsigned char)(v >> 48);
	p[2] = (unsigned char)(v >> 40);
	p[3] = (unsigned char)(v >> 32);
	p[4] = (unsigned char)(v >> 24);
	p[5] = (unsigned char)(v >> 16);
	p[6] = (unsigned char)(v >> 8);
	p[7] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
	       (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 | (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/* mac = SipHash-2-4-128(key, id || realm || bind), the realm cut at REALM_MAC_MAX bytes and
 * bind (the client's address when nonces are bound to it) at BIND_MAC_MAX. */
#define BIND_MAC_MAX 32
static void nonce_mac(const struct auth *a, const unsigned char id[NONCE_ID_LEN], struct str realm, struct str bind,
		      unsigned char mac[NONCE_MAC_LEN])
{
	unsigned char in[NONCE_ID_LEN + REALM_MAC_MAX + 1 + BIND_MAC_MAX];
	size_t rl = realm.l < REALM_MAC_MAX ? realm.l : REALM_MAC_MAX;
	size_t bl = bind.l < BIND_MAC_MAX ? bind.l : BIND_MAC_MAX;

	memcpy(in, id, NONCE_ID_LEN);
	if (rl > 0)
		memcpy(in + NONCE_ID_LEN, realm.p, rl);
	/* A separator, so that realm "ab" + bind "c" differs from realm "a" + bind "bc". */
	in[NONCE_ID_LEN + rl] = (unsigned char)bl;
	if (bl > 0)
		memcpy(in + NONCE_ID_LEN + rl + 1, bind.p, bl);
	crypto_shorthash_siphashx24(mac, in, NONCE_ID_LEN + rl + 1 + bl, a->mac_key);
}

/* Writes a fresh nonce's NONCE_HEX_LEN hex digits to out (no NUL). */
static void nonce_make(struct auth *a, struct str realm, struct str bind, uint64_t now_s, char out[NONCE_HEX_LEN])
{
	unsigned char raw[NONCE_RAW_LEN];
	uint64_t serial = a->serial++;

	put_be64(raw, now_s);
	put_be64(raw + 8, serial);
	/* The slot now belongs to this serial; serial - W, its previous owner, has left the
	 * window and is answered stale from here on. */
	a->maxnc[serial & a->mask] = 0;
	nonce_mac(a, raw, realm, bind, raw + NONCE_ID_LEN);
	tohex(raw, sizeof(raw), out);
}

/* Decodes and authenticates a nonce; fills its issue time and serial. */
static bool nonce_check(const struct auth *a, struct str nonce, struct str realm, struct str bind, uint64_t *issued,
			uint64_t *serial)
{
	unsigned char raw[NONCE_RAW_LEN], mac[NONCE_MAC_LEN];

	if (nonce.l != NONCE_HEX_LEN || !unhex(nonce.p, NONCE_RAW_LEN, raw))
		return false;
	nonce_mac(a, raw, realm, bind, mac);
	if (crypto_verify_16(mac, raw + NONCE_ID_LEN) != 0)
		return false;
	*issued = get_be64(raw);
	*serial = get_be64(raw + 8);
	return true;
}

/* Appends to a NUL-terminated string in a fixed buffer; ok turns false, for good, when the
 * text and its NUL would not fit. */
struct sink {
	char *p;
	size_t cap, len;
	bool ok;
};

static void put(struct sink *o, const char *s, size_t n)
{
	if (!o->ok || n >= o->cap - o->len) {
		o->ok = false;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* Appends s as the body of a quoted-string, escaping '"' and '\'. */
static void put_quoted(struct sink *o, struct str s)
{
	size_t start = 0;

	/* A realm is a domain name: two vectorised searches clear it faster than a loop. */
	if (s.l == 0)
		return;
	if (!memchr(s.p, '"', s.l) && !memchr(s.p, '\\', s.l)) {
		put(o, s.p, s.l);
		return;
	}
	for (size_t i = 0; i < s.l; i++) {
		if (s.p[i] == '"' || s.p[i] == '\\') {
			put(o, s.p + start, i - start);
			PUT_LIT(o, "\\");
			start = i; /* the character itself goes with the next run */
		}
	}
	put(o, s.p + start, s.l - start);
}

int auth_challenge(struct auth *a, struct str realm, struct str bind, bool stale, bool proxy, uint64_t now_s, char *buf,
		   size_t cap)
{
	char nonce[NONCE_HEX_LEN];
	struct sink o = { buf, cap, 0, cap > 0 };

	if (cap == 0)
		return -ENOSPC;
	nonce_make(a, realm, bind, now_s, nonce);
	/* Each line: "<header>: Digest realm=\"<realm>\", nonce=\"<nonce>\", algorithm=<alg>,
	 * qop=\"auth\"[, stale=true]\r\n", as a snprintf would write it, without the cost. */
	for (unsigned i = 0; i < a->conf.nalgs; i++) {
		if (proxy)
			PUT_LIT(&o, "Proxy-Authenticate: Digest realm=\"");
		else
			PUT_LIT(&o, "WWW-Authenticate: Digest realm=\"");
		put_quoted(&o, realm);
		PUT_LIT(&o, "\", nonce=\"");
		put(&o, nonce, NONCE_HEX_LEN);
		if (a->conf.algs[i] == AUTH_SHA256)
			PUT_LIT(&o, "\", algorithm=SHA-256, qop=\"auth\"");
		else
			PUT_LIT(&o, "\", algorithm=MD5, qop=\"auth\"");
		if (stale)
			PUT_LIT(&o, ", stale=true");
		PUT_LIT(&o, "\r\n");
	}
	if (!o.ok) {
		buf[0] = '\0';
		return -ENOSPC;
	}
	buf[o.len] = '\0';
	return (int)o.len;
}

/* Records nc for the nonce of serial. Returns AUTH_OK; AUTH_STALE when the serial has left
 * the window (W or more challenges were issued after it; its slot may belong to another
 * nonce now, so the table cannot tell a replay) or when nc reaches NC_MAX (the nonce is used
 * up); AUTH_REPLAY when nc is not above the highest count accepted for this nonce. Either
 * stale case costs the client one more round trip with a fresh nonce. */
static enum auth_result nc_record(struct auth *a, uint64_t serial, uint32_t nc)
{
	/* Distance back from the newest serial issued, modulo 2^64 (a->serial is the next
	 * one). A serial we issued is never ahead of it: the MAC would not match, since
	 * the key is new with every struct auth. */
	uint64_t age = a->serial - 1 - serial;
	uint8_t *m = &a->maxnc[serial & a->mask];

	if (age > a->mask)
		return AUTH_STALE;
	if (nc <= *m)
		return AUTH_REPLAY;
	if (nc >= NC_MAX) {
		*m = NC_MAX;
		return AUTH_STALE;
	}
	*m = (uint8_t)nc;
	return AUTH_OK;
}

static bool parse_nc(struct str s, uint32_t *out)
{
	uint32_t v = 0;

	if (s.l == 0 || s.l > 8)
		return false;
	for (size_t i = 0; i < s.l; i++) {
		int d = hexval(s.p[i]);
		if (d < 0)
			return false;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return true;
}

static bool mem_eq(const char *a, const char *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* HA2 for method and uri, from the memo of alg when it holds them; as hex (no NUL), valid
 * until the next call. */
static struct str ha2_get(struct auth *a, enum auth_alg alg, struct str method, struct str uri)
{
	struct ha2_memo *m = &a->ha2[alg];

	if (!m->set || m->ml != method.l || m->ul != uri.l || !mem_eq(m->key, method.p, method.l) ||
	    !mem_eq(m->key + method.l, uri.p, uri.l)) {
		ha2_hex(alg, method, uri, m->hex);
		m->set = method.l + uri.l <= sizeof(m->key);
		if (m->set) {
			m->ml = method.l;
			m->ul = uri.l;
			if (method.l > 0)
				memcpy(m->key, method.p, method.l);
			if (uri.l > 0)
				memcpy(m->key + method.l, uri.p, uri.l);
		}
	}
	return (struct str){ m->hex, hexlen_of(alg) };
}

/* Whether the digest uri names the request's Request-URI: the same text, or the same URI
 * by the rules of RFC 3261 §19.1.4 (a client may write it with other case or escapes). */
static bool uri_matches(struct str duri, struct str ruri)
{
	if (str_eq(duri, ruri))
		return true;
	struct sip_uri a, b;
	if (sip_uri_parse(&a, duri) != 0 || sip_uri_parse(&b, ruri) != 0)
		return false;
	if (a.scheme == SIP_SCHEME_OTHER || a.scheme == SIP_SCHEME_TEL)
		return str_caseeq(duri, ruri);
	return sip_uri_equal(&a, &b);
}

enum auth_result auth_verify(struct auth *a, const struct sip_auth *cred, const struct auth_req *rq,
			     const char *ha1_hex, uint64_t now_s)
{
	enum auth_alg alg;
	uint32_t nc = 0;
	unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
	size_t hl;
	uint64_t issued = 0, serial = 0;

	if (!str_caseeq(cred->scheme, STR("Digest")) || cred->username.l == 0 || cred->nonce.l == 0 ||
	    cred->uri.l == 0 || cred->response.l == 0 || !str_eq(cred->realm, rq->realm))
		return AUTH_BAD_REQUEST;
	if (!auth_alg_from_name(cred->algorithm, &alg))
		return AUTH_BAD_REQUEST;
	if (!offers(a, alg))
		return AUTH_BAD_REQUEST;
	/* qop=auth is required: without it (RFC 2069) there is no nonce count, so the same
	 * response could be replayed for as long as the nonce lives. */
	if (!str_caseeq(cred->qop, STR("auth")) || cred->cnonce.l == 0 || !parse_nc(cred->nc, &nc))
		return AUTH_BAD_REQUEST;
	/* The response covers the digest uri, not the Request-URI: a response captured for one
	 * request must not authorise another sent elsewhere. */
	if (!uri_matches(cred->uri, rq->ruri))
		return AUTH_URI_MISMATCH;

	/* The password is checked before the nonce, so that a right password with an old
	 * nonce can be told apart (stale) from a wrong one. An unknown user is checked
	 * against a random hash: it fails as a wrong password does, at the same cost, so
	 * that neither the answer nor its timing tells which users exist. */
	hl = hexlen_of(alg);
	bool known = ha1_hex && strlen(ha1_hex) == hl;
	const char *ha1 = known ? ha1_hex : a->dummy_ha1;
	response_digest(alg, (struct str){ ha1, hl }, cred->nonce, cred->nc, cred->cnonce, cred->qop,
			ha2_get(a, alg, rq->method, cred->uri), want);
	/* The client's response is decoded rather than ours encoded: that folds the case of its
	 * hex digits, and the raw digests compare in constant time in one step. */
	bool good = cred->response.l == hl && unhex(cred->response.p, hl / 2, got) &&
		    (alg == AUTH_SHA256 ? crypto_verify_32(want, got) : crypto_verify_16(want, got)) == 0;
	bool ours = nonce_check(a, cred->nonce, rq->realm, rq->bind, &issued, &serial);
	if (!good || !known) {
		/* A wrong guess uses the nonce up: every further guess costs a new challenge,
		 * and so a round trip, instead of a counter increment. */
		if (ours && a->serial - 1 - serial <= a->mask)
			a->maxnc[serial & a->mask] = NC_MAX;
		return AUTH_BAD_RESPONSE;
	}
	if (!ours)
		return AUTH_BAD_NONCE;
	if (issued + a->conf.nonce_lifetime <= now_s)
		return AUTH_STALE;
	return nc_record(a, serial, nc);
}
