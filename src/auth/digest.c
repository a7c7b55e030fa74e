/* digest.c: digest challenges and verification with HMAC nonces and a nonce-count window. */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* A nonce is the hex form of: issue time (8 bytes, big-endian), a per-nonce serial (8 bytes)
 * and the first 16 bytes of HMAC-SHA256(secret, time || serial || realm). The server keeps
 * nothing per challenge: the MAC proves we issued it for this realm, the time says whether it
 * is stale, and the serial makes every challenge's nonce different, so that two clients
 * challenged in the same second keep separate nonce counts.
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
#define NONCE_MAC_LEN 16
#define NONCE_RAW_LEN (NONCE_ID_LEN + NONCE_MAC_LEN)
#define NONCE_HEX_LEN (NONCE_RAW_LEN * 2)

/* The default window: 1 MiB, the nonces of the last 1,048,576 challenges. */
#define WINDOW_DEFAULT (1u << 20)
/* The largest window replay_slots may ask for (1 GiB); larger requests are clamped. */
#define WINDOW_MAX (1u << 30)
/* A maxnc value meaning the nonce is used up. Counts up to NC_MAX - 1 are kept exactly; a
 * count of NC_MAX or more is refused as stale (a new nonce is needed), and the slot then
 * holds NC_MAX, so that every later use of that nonce is refused too. */
#define NC_MAX 255u

/* The hashing state is kept here and reused, so that a challenge or a verification does no
 * algorithm fetch: OpenSSL 3 looks algorithms up by name on every one-shot call, which cost
 * several times the hashing itself. Not shared between threads, like the rest of struct auth. */
struct auth {
	struct auth_conf conf;
	uint64_t serial;                /* next nonce serial; starts random */
	EVP_MD *md[AUTH_MAX_ALGS];      /* MD5 and SHA-256, by enum auth_alg, fetched once */
	EVP_MD_CTX *hctx[AUTH_MAX_ALGS]; /* reused for the response hashes, one per algorithm */
	/* HMAC-SHA256 keyed with the nonce secret: SHA-256 states that have absorbed the
	 * secret XOR ipad and XOR opad (RFC 2104), copied into mac_work for each MAC. The
	 * secret itself is not kept. */
	EVP_MD_CTX *mac_inner, *mac_outer, *mac_work;
	uint8_t *maxnc;                 /* by serial & mask: highest nonce count accepted */
	uint64_t mask;                  /* window size W - 1 (W a power of two) */
};

/* "000102...ff": the two lowercase hex digits of every byte value. */
#define HEX_ROW(h) h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" \
		   h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"
static const char hexpairs[513] =
	HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3") HEX_ROW("4") HEX_ROW("5")
	HEX_ROW("6") HEX_ROW("7") HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b")
	HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");
#undef HEX_ROW

static void tohex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		memcpy(out + 2 * i, hexpairs + 2 * in[i], 2);
	out[2 * n] = '\0';
}

/* 1 + the value of each hex digit, 0 for any other byte. */
static const unsigned char hexv[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
	['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int hexval(char c)
{
	return (int)hexv[(unsigned char)c] - 1;
}

static const EVP_MD *md_of(enum auth_alg alg)
{
	return alg == AUTH_SHA256 ? EVP_sha256() : EVP_md5();
}

static size_t hexlen_of(enum auth_alg alg)
{
	return alg == AUTH_SHA256 ? 64 : 32;
}

/* Hashes the parts joined by ':' with md on ctx (reinitialised here) and writes the
 * lowercase hex digest into out. The parts are gathered into one buffer first: each
 * EVP_DigestUpdate costs far more than copying a short part. */
static int hash_hex(EVP_MD_CTX *ctx, const EVP_MD *md, const struct str *parts, size_t n,
		    char out[AUTH_HEX_MAX])
{
	unsigned char buf[256], d[EVP_MAX_MD_SIZE];
	size_t bl = 0;
	unsigned int dlen = 0;
	int ok = ctx && md && EVP_DigestInit_ex2(ctx, md, NULL);

	for (size_t i = 0; ok && i < n; i++) {
		const char *p = parts[i].p;
		size_t l = parts[i].l;

		if (i > 0)
			buf[bl++] = ':';
		/* Keeps room for the next ':' too: flush when this part does not fit. */
		if (l >= sizeof(buf) - bl) {
			ok = EVP_DigestUpdate(ctx, buf, bl) && EVP_DigestUpdate(ctx, p, l);
			bl = 0;
		} else if (l > 0) {
			memcpy(buf + bl, p, l);
			bl += l;
		}
	}
	ok = ok && EVP_DigestUpdate(ctx, buf, bl) && EVP_DigestFinal_ex(ctx, d, &dlen);
	OPENSSL_cleanse(buf, bl); /* it may hold an HA1 */
	if (!ok || dlen * 2 + 1 > AUTH_HEX_MAX) {
		out[0] = '\0';
		return -EIO;
	}
	tohex(d, dlen, out);
	return 0;
}

/* hash_hex on a context of its own, for the calls that have no struct auth. */
static int hash_hex_once(enum auth_alg alg, const struct str *parts, size_t n,
			 char out[AUTH_HEX_MAX])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = hash_hex(ctx, md_of(alg), parts, n, out);

	EVP_MD_CTX_free(ctx);
	return r;
}

int auth_ha1(enum auth_alg alg, struct str user, struct str realm, struct str password,
	     char out[AUTH_HEX_MAX])
{
	struct str parts[] = { user, realm, password };

	return hash_hex_once(alg, parts, 3, out);
}

/* The response of RFC 2617 §3.2.2.1 (and RFC 7616 §3.4.1): with qop,
 * H(HA1:nonce:nc:cnonce:qop:H(method:uri)), without it H(HA1:nonce:H(method:uri)). */
static int response_hex(EVP_MD_CTX *ctx, const EVP_MD *md, struct str ha1, struct str nonce,
			struct str nc, struct str cnonce, struct str qop, struct str method,
			struct str uri, char out[AUTH_HEX_MAX])
{
	char ha2[AUTH_HEX_MAX];
	struct str a2[] = { method, uri };

	if (hash_hex(ctx, md, a2, 2, ha2) != 0)
		return -EIO;
	if (qop.l == 0) {
		struct str parts[] = { ha1, nonce, str_from_cstr(ha2) };
		return hash_hex(ctx, md, parts, 3, out);
	}
	struct str parts[] = { ha1, nonce, nc, cnonce, qop, str_from_cstr(ha2) };
	return hash_hex(ctx, md, parts, 6, out);
}

int auth_client_response(const struct auth_client *c, char out[AUTH_HEX_MAX])
{
	char ha1[AUTH_HEX_MAX], nc[9];
	EVP_MD_CTX *ctx;
	int r;

	if (auth_ha1(c->alg, c->user, c->realm, c->password, ha1) != 0)
		return -EIO;
	snprintf(nc, sizeof(nc), "%08x", c->nc);
	ctx = EVP_MD_CTX_new();
	r = response_hex(ctx, md_of(c->alg), str_from_cstr(ha1), c->nonce, str_from_cstr(nc),
			 c->cnonce, c->qop, c->method, c->uri, out);
	EVP_MD_CTX_free(ctx);
	return r;
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

/* Sets up the keyed HMAC-SHA256 states from a fresh random secret (RFC 2104: the 32-byte
 * key is zero-padded to the 64-byte block). */
static int mac_setup(struct auth *a)
{
	unsigned char secret[32], ipad[64], opad[64];
	int ok = RAND_bytes(secret, sizeof(secret)) == 1;

	for (size_t i = 0; i < sizeof(ipad); i++) {
		unsigned char k = i < sizeof(secret) ? secret[i] : 0;
		ipad[i] = k ^ 0x36;
		opad[i] = k ^ 0x5c;
	}
	ok = ok && EVP_DigestInit_ex2(a->mac_inner, a->md[AUTH_SHA256], NULL) &&
	     EVP_DigestUpdate(a->mac_inner, ipad, sizeof(ipad)) &&
	     EVP_DigestInit_ex2(a->mac_outer, a->md[AUTH_SHA256], NULL) &&
	     EVP_DigestUpdate(a->mac_outer, opad, sizeof(opad));
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(ipad, sizeof(ipad));
	OPENSSL_cleanse(opad, sizeof(opad));
	return ok ? 0 : -EIO;
}

int auth_new(struct auth **ap, const struct auth_conf *conf)
{
	struct auth *a;
	uint64_t window = 1;
	unsigned want = conf && conf->replay_slots ? conf->replay_slots : WINDOW_DEFAULT;

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
	if (want > WINDOW_MAX)
		want = WINDOW_MAX;
	while (window < want)
		window <<= 1;
	/* Zeroed slots are safe before any challenge: a nonce that passes its MAC was issued
	 * by nonce_make, which reset its slot. */
	a->maxnc = calloc((size_t)window, 1);
	a->hctx[AUTH_MD5] = EVP_MD_CTX_new();
	a->hctx[AUTH_SHA256] = EVP_MD_CTX_new();
	a->mac_inner = EVP_MD_CTX_new();
	a->mac_outer = EVP_MD_CTX_new();
	a->mac_work = EVP_MD_CTX_new();
	if (!a->maxnc || !a->hctx[AUTH_MD5] || !a->hctx[AUTH_SHA256] || !a->mac_inner ||
	    !a->mac_outer || !a->mac_work) {
		auth_free(a);
		return -ENOMEM;
	}
	a->mask = window - 1;
	/* SHA-256 always (the nonce MAC), MD5 only when offered: auth_verify refuses the
	 * algorithms not offered before it hashes. Should MD5 be unavailable (a FIPS-only
	 * provider), its responses fail to verify, as they did before it was fetched here. */
	a->md[AUTH_SHA256] = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	if (offers(a, AUTH_MD5))
		a->md[AUTH_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
	if (!a->md[AUTH_SHA256] || mac_setup(a) != 0 ||
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
	/* Freeing a digest context clears its state, the keyed ones included. */
	EVP_MD_CTX_free(a->mac_work);
	EVP_MD_CTX_free(a->mac_outer);
	EVP_MD_CTX_free(a->mac_inner);
	for (int i = 0; i < AUTH_MAX_ALGS; i++) {
		EVP_MD_CTX_free(a->hctx[i]);
		EVP_MD_free(a->md[i]);
	}
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
	return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
	       (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
	       (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/* mac = HMAC-SHA256(secret, id || realm), truncated. */
static int nonce_mac(struct auth *a, const unsigned char id[NONCE_ID_LEN], struct str realm,
		     unsigned char mac[NONCE_MAC_LEN])
{
	unsigned char inner[EVP_MAX_MD_SIZE], full[EVP_MAX_MD_SIZE];
	unsigned int ilen = 0, len = 0;
	EVP_MD_CTX *w = a->mac_work;

	/* A realm longer than this is not one we would serve; truncating it keeps the MAC
	 * deterministic, and the realm is compared as a whole elsewhere anyway. */
	size_t rl = realm.l < 256 ? realm.l : 256;

	if (!EVP_MD_CTX_copy_ex(w, a->mac_inner) || !EVP_DigestUpdate(w, id, NONCE_ID_LEN) ||
	    (rl && !EVP_DigestUpdate(w, realm.p, rl)) || !EVP_DigestFinal_ex(w, inner, &ilen) ||
	    !EVP_MD_CTX_copy_ex(w, a->mac_outer) || !EVP_DigestUpdate(w, inner, ilen) ||
	    !EVP_DigestFinal_ex(w, full, &len) || len < NONCE_MAC_LEN)
		return -EIO;
	memcpy(mac, full, NONCE_MAC_LEN);
	return 0;
}

static int nonce_make(struct auth *a, struct str realm, uint64_t now_s, char out[NONCE_HEX_LEN + 1])
{
	unsigned char raw[NONCE_RAW_LEN];
	uint64_t serial = a->serial++;

	put_be64(raw, now_s);
	put_be64(raw + 8, serial);
	/* The slot now belongs to this serial; serial - W, its previous owner, has left the
	 * window and is answered stale from here on. */
	a->maxnc[serial & a->mask] = 0;
	if (nonce_mac(a, raw, realm, raw + NONCE_ID_LEN) != 0)
		return -EIO;
	tohex(raw, sizeof(raw), out);
	return 0;
}

/* Decodes and authenticates a nonce; fills id and the issue time. */
static bool nonce_check(struct auth *a, struct str nonce, struct str realm,
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

int auth_challenge(struct auth *a, struct str realm, bool stale, bool proxy, uint64_t now_s,
		   char *buf, size_t cap)
{
	char nonce[NONCE_HEX_LEN + 1];
	char qrealm[600];
	struct sink o = { buf, cap, 0, true };
	size_t ql;

	if (cap > 0)
		buf[0] = '\0';
	ql = quote(qrealm, sizeof(qrealm) - 1, realm);
	if (ql >= sizeof(qrealm) || nonce_make(a, realm, now_s, nonce) != 0)
		return -ENOSPC;
	/* Each line: "<header>: Digest realm=\"<realm>\", nonce=\"<nonce>\", algorithm=<alg>,
	 * qop=\"auth\"[, stale=true]\r\n", as a snprintf would write it, without the cost. */
	for (unsigned i = 0; i < a->conf.nalgs; i++) {
		const char *alg = auth_alg_name(a->conf.algs[i]);

		if (proxy)
			PUT_LIT(&o, "Proxy-Authenticate: Digest realm=\"");
		else
			PUT_LIT(&o, "WWW-Authenticate: Digest realm=\"");
		put(&o, qrealm, ql);
		PUT_LIT(&o, "\", nonce=\"");
		put(&o, nonce, NONCE_HEX_LEN);
		PUT_LIT(&o, "\", algorithm=");
		put(&o, alg, strlen(alg));
		PUT_LIT(&o, ", qop=\"auth\"");
		if (stale)
			PUT_LIT(&o, ", stale=true");
		PUT_LIT(&o, "\r\n");
	}
	if (!o.ok) {
		if (cap > 0)
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
	 * the secret is new with every struct auth. */
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

enum auth_result auth_verify(struct auth *a, const struct sip_auth *cred, struct str method,
			     struct str realm_expected, const char *ha1_hex, uint64_t now_s)
{
	enum auth_alg alg;
	bool with_qop;
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
	if (!offers(a, alg))
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
	if (response_hex(a->hctx[alg], a->md[alg], (struct str){ ha1_hex, hl }, cred->nonce,
			 cred->nc, cred->cnonce, with_qop ? cred->qop : STR_NULL, method, cred->uri,
			 want) != 0)
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
	return nc_record(a, get_be64(id + 8), nc);
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
