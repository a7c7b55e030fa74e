/* digest.c: digest challenges and verification with HMAC nonces and a nonce-count table. */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* A nonce is the hex form of: issue time (8 bytes, big-endian), a per-nonce serial (8 bytes)
 * and the first 16 bytes of HMAC-SHA256(secret, time || serial || realm). The server keeps
 * nothing per challenge: the MAC proves we issued it for this realm, the time says whether it
 * is stale, and the serial makes every challenge's nonce different, so that two clients
 * challenged in the same second keep separate nonce counts. */
#define NONCE_ID_LEN 16
#define NONCE_MAC_LEN 16
#define NONCE_RAW_LEN (NONCE_ID_LEN + NONCE_MAC_LEN)
#define NONCE_HEX_LEN (NONCE_RAW_LEN * 2)

/* How many neighbouring slots a nonce may land in; beyond this the oldest is evicted. */
#define PROBE 8

struct slot {
	unsigned char id[NONCE_ID_LEN]; /* time || serial of the nonce */
	uint64_t issued;                /* its issue time, for expiry and eviction */
	uint32_t nc;                    /* highest nonce count accepted */
	bool used;
};

struct auth {
	struct auth_conf conf;
	unsigned char secret[32];
	uint64_t serial;                /* next nonce serial; starts random */
	struct slot *slots;
	size_t mask;                    /* slot count - 1 (a power of two) */
	uint64_t evicted_upto;          /* latest issue time of a live nonce evicted */
};

static const char hexdig[] = "0123456789abcdef";

static void tohex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static const EVP_MD *md_of(enum auth_alg alg)
{
	return alg == AUTH_SHA256 ? EVP_sha256() : EVP_md5();
}

static size_t hexlen_of(enum auth_alg alg)
{
	return alg == AUTH_SHA256 ? 64 : 32;
}

/* Hashes the parts joined by ':' and writes the lowercase hex digest into out. */
static int hash_hex(enum auth_alg alg, const struct str *parts, size_t n, char out[AUTH_HEX_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, md_of(alg), NULL);

	for (size_t i = 0; ok && i < n; i++) {
		if (i > 0)
			ok = EVP_DigestUpdate(ctx, ":", 1);
		if (ok && parts[i].l > 0)
			ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].l);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen * 2 + 1 > AUTH_HEX_MAX) {
		out[0] = '\0';
		return -EIO;
	}
	tohex(md, mdlen, out);
	return 0;
}

int auth_ha1(enum auth_alg alg, struct str user, struct str realm, struct str password,
	     char out[AUTH_HEX_MAX])
{
	struct str parts[] = { user, realm, password };

	return hash_hex(alg, parts, 3, out);
}

/* The response of RFC 2617 §3.2.2.1 (and RFC 7616 §3.4.1): with qop,
 * H(HA1:nonce:nc:cnonce:qop:H(method:uri)), without it H(HA1:nonce:H(method:uri)). */
static int response_hex(enum auth_alg alg, struct str ha1, struct str nonce, struct str nc,
			struct str cnonce, struct str qop, struct str method, struct str uri,
			char out[AUTH_HEX_MAX])
{
	char ha2[AUTH_HEX_MAX];
	struct str a2[] = { method, uri };

	if (hash_hex(alg, a2, 2, ha2) != 0)
		return -EIO;
	if (qop.l == 0) {
		struct str parts[] = { ha1, nonce, str_from_cstr(ha2) };
		return hash_hex(alg, parts, 3, out);
	}
	struct str parts[] = { ha1, nonce, nc, cnonce, qop, str_from_cstr(ha2) };
	return hash_hex(alg, parts, 6, out);
}

int auth_client_response(const struct auth_client *c, char out[AUTH_HEX_MAX])
{
	char ha1[AUTH_HEX_MAX], nc[9];

	if (auth_ha1(c->alg, c->user, c->realm, c->password, ha1) != 0)
		return -EIO;
	snprintf(nc, sizeof(nc), "%08x", c->nc);
	return response_hex(c->alg, str_from_cstr(ha1), c->nonce, str_from_cstr(nc), c->cnonce,
			    c->qop, c->method, c->uri, out);
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

int auth_new(struct auth **ap, const struct auth_conf *conf)
{
	struct auth *a;
	size_t slots = 1;
	unsigned want = conf && conf->replay_slots ? conf->replay_slots : 4096;

	*ap = NULL;
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
	while (slots < want || slots < PROBE)
		slots <<= 1;
	a->slots = calloc(slots, sizeof(*a->slots));
	if (!a->slots) {
		free(a);
		return -ENOMEM;
	}
	a->mask = slots - 1;
	if (RAND_bytes(a->secret, sizeof(a->secret)) != 1 ||
	    RAND_bytes((unsigned char *)&a->serial, sizeof(a->serial)) != 1) {
		auth_free(a);
		return -EIO;
	}
	*ap = a;
	return 0;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	OPENSSL_cleanse(a->secret, sizeof(a->secret));
	free(a->slots);
	free(a);
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* mac = HMAC-SHA256(secret, id || realm), truncated. */
static int nonce_mac(const struct auth *a, const unsigned char id[NONCE_ID_LEN], struct str realm,
		     unsigned char mac[NONCE_MAC_LEN])
{
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	unsigned char msg[NONCE_ID_LEN + 256];

	/* A realm longer than this is not one we would serve; truncating it keeps the MAC
	 * deterministic, and the realm is compared as a whole elsewhere anyway. */
	size_t rl = realm.l < 256 ? realm.l : 256;

	memcpy(msg, id, NONCE_ID_LEN);
	if (rl)
		memcpy(msg + NONCE_ID_LEN, realm.p, rl);
	if (!HMAC(EVP_sha256(), a->secret, (int)sizeof(a->secret), msg, NONCE_ID_LEN + rl, full, &len) ||
	    len < NONCE_MAC_LEN)
		return -EIO;
	memcpy(mac, full, NONCE_MAC_LEN);
	return 0;
}

static int nonce_make(struct auth *a, struct str realm, uint64_t now_s, char out[NONCE_HEX_LEN + 1])
{
	unsigned char raw[NONCE_RAW_LEN];

	put_be64(raw, now_s);
	put_be64(raw + 8, a->serial++);
	if (nonce_mac(a, raw, realm, raw + NONCE_ID_LEN) != 0)
		return -EIO;
	tohex(raw, sizeof(raw), out);
	return 0;
}

/* Decodes and authenticates a nonce; fills id and the issue time. */
static bool nonce_check(const struct auth *a, struct str nonce, struct str realm,
			unsigned char id[NONCE_ID_LEN], uint64_t *issued)
{
	unsigned char raw[NONCE_RAW_LEN], mac[NONCE_MAC_LEN];

	if (nonce.l != NONCE_HEX_LEN)
		return false;
	for (size_t i = 0; i < NONCE_RAW_LEN; i++) {
		int hi = hexval(nonce.p[2 * i]), lo = hexval(nonce.p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	if (nonce_mac(a, raw, realm, mac) != 0 || CRYPTO_memcmp(mac, raw + NONCE_ID_LEN, NONCE_MAC_LEN) != 0)
		return false;
	memcpy(id, raw, NONCE_ID_LEN);
	*issued = get_be64(raw);
	return true;
}

/* Writes realm as the body of a quoted-string, escaping '"' and '\'. */
static size_t quote(char *dst, size_t cap, struct str s)
{
	size_t n = 0;

	for (size_t i = 0; i < s.l; i++) {
		if (s.p[i] == '"' || s.p[i] == '\\') {
			if (n < cap)
				dst[n] = '\\';
			n++;
		}
		if (n < cap)
			dst[n] = s.p[i];
		n++;
	}
	return n;
}

int auth_challenge(struct auth *a, struct str realm, bool stale, bool proxy, uint64_t now_s,
		   char *buf, size_t cap)
{
	char nonce[NONCE_HEX_LEN + 1];
	char qrealm[600];
	size_t len = 0;
	size_t ql;

	if (cap > 0)
		buf[0] = '\0';
	ql = quote(qrealm, sizeof(qrealm) - 1, realm);
	if (ql >= sizeof(qrealm) || nonce_make(a, realm, now_s, nonce) != 0)
		return -ENOSPC;
	qrealm[ql] = '\0';
	for (unsigned i = 0; i < a->conf.nalgs; i++) {
		int n = snprintf(buf + len, cap - len,
				 "%s: Digest realm=\"%s\", nonce=\"%s\", algorithm=%s, qop=\"auth\"%s\r\n",
				 proxy ? "Proxy-Authenticate" : "WWW-Authenticate", qrealm, nonce,
				 auth_alg_name(a->conf.algs[i]), stale ? ", stale=true" : "");
		if (n < 0 || (size_t)n >= cap - len) {
			if (cap > 0)
				buf[0] = '\0';
			return -ENOSPC;
		}
		len += (size_t)n;
	}
	return (int)len;
}

static uint64_t slot_hash(const unsigned char id[NONCE_ID_LEN])
{
	/* The serial half is unique per nonce; mixing it spreads consecutive serials. */
	uint64_t h = get_be64(id + 8) ^ get_be64(id) * 0x9e3779b97f4a7c15ull;

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 29);
}

/* Records nc for the nonce id. Returns AUTH_OK, AUTH_REPLAY when nc is not above the
 * highest count seen, or AUTH_STALE when the table cannot tell: the nonce is unknown to it
 * but nc is past 1, or it was issued no later than a live nonce the table had to evict.
 * Its entry may have been evicted, so rather than risk accepting a replay we ask the client
 * for a fresh nonce (one more round trip, and only when the table overflows). */
static enum auth_result nc_record(struct auth *a, const unsigned char id[NONCE_ID_LEN],
				  uint64_t issued, uint32_t nc, uint64_t now_s)
{
	size_t base = (size_t)slot_hash(id);
	struct slot *free_slot = NULL, *oldest = NULL;

	for (size_t i = 0; i < PROBE; i++) {
		struct slot *s = &a->slots[(base + i) & a->mask];

		if (s->used && memcmp(s->id, id, NONCE_ID_LEN) == 0) {
			if (nc <= s->nc)
				return AUTH_REPLAY;
			s->nc = nc;
			return AUTH_OK;
		}
		if (!s->used || s->issued + a->conf.nonce_lifetime <= now_s) {
			if (!free_slot)
				free_slot = s;
		} else if (!oldest || s->issued < oldest->issued) {
			oldest = s;
		}
	}
	if (nc != 1 || issued <= a->evicted_upto)
		return AUTH_STALE;
	if (!free_slot) {
		free_slot = oldest;
		if (oldest->issued > a->evicted_upto)
			a->evicted_upto = oldest->issued;
	}
	memcpy(free_slot->id, id, NONCE_ID_LEN);
	free_slot->issued = issued;
	free_slot->nc = nc;
	free_slot->used = true;
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

enum auth_result auth_verify(struct auth *a, const struct sip_auth *cred, struct str method,
			     struct str realm_expected, const char *ha1_hex, uint64_t now_s)
{
	enum auth_alg alg;
	bool offered = false, with_qop;
	uint32_t nc = 0;
	char want[AUTH_HEX_MAX], got[AUTH_HEX_MAX];
	size_t hl;
	unsigned char id[NONCE_ID_LEN];
	uint64_t issued = 0;

	if (!str_caseeq(cred->scheme, STR("Digest")) || cred->username.l == 0 ||
	    cred->nonce.l == 0 || cred->uri.l == 0 || cred->response.l == 0 ||
	    !str_eq(cred->realm, realm_expected))
		return AUTH_BAD_REQUEST;
	if (!auth_alg_from_name(cred->algorithm, &alg))
		return AUTH_BAD_REQUEST;
	for (unsigned i = 0; i < a->conf.nalgs; i++)
		offered |= a->conf.algs[i] == alg;
	if (!offered)
		return AUTH_BAD_REQUEST;
	with_qop = cred->qop.l > 0;
	if (with_qop && (!str_caseeq(cred->qop, STR("auth")) || cred->cnonce.l == 0 ||
			 !parse_nc(cred->nc, &nc)))
		return AUTH_BAD_REQUEST;

	/* The password is checked before the nonce, so that a right password with an old
	 * nonce can be told apart (stale) from a wrong one. An unknown user (no HA1) fails
	 * the same way as a wrong password, telling nothing about which users exist. */
	hl = hexlen_of(alg);
	if (!ha1_hex || strlen(ha1_hex) != hl || cred->response.l != hl)
		return AUTH_BAD_RESPONSE;
	if (response_hex(alg, (struct str){ ha1_hex, hl }, cred->nonce, cred->nc, cred->cnonce,
			 with_qop ? cred->qop : STR_NULL, method, cred->uri, want) != 0)
		return AUTH_BAD_RESPONSE;
	for (size_t i = 0; i < hl; i++) {
		char c = cred->response.p[i];
		got[i] = (c >= 'A' && c <= 'F') ? (char)(c + 32) : c;
	}
	if (CRYPTO_memcmp(want, got, hl) != 0)
		return AUTH_BAD_RESPONSE;

	if (!nonce_check(a, cred->nonce, realm_expected, id, &issued))
		return AUTH_BAD_NONCE;
	if (issued + a->conf.nonce_lifetime <= now_s)
		return AUTH_STALE;
	if (!with_qop)
		return AUTH_OK;
	return nc_record(a, id, issued, nc, now_s);
}

const char *auth_result_name(enum auth_result r)
{
	switch (r) {
	case AUTH_OK: return "ok";
	case AUTH_STALE: return "stale nonce";
	case AUTH_BAD_RESPONSE: return "wrong password";
	case AUTH_BAD_NONCE: return "unknown nonce";
	case AUTH_REPLAY: return "replayed nonce count";
	case AUTH_BAD_REQUEST: return "bad credentials";
	}
	return "?";
}
