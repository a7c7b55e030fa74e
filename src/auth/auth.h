/* auth.h: SIP digest authentication (RFC 2617, 7616, 8760; qop=auth) with stateless nonces. */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/str.h"
#include "sip/sip.h"

struct auth;

enum auth_alg {
	AUTH_MD5 = 0,
	AUTH_SHA256,
};
#define AUTH_MAX_ALGS 2
/* Longest hex digest (SHA-256) plus its NUL. */
#define AUTH_HEX_MAX 65

struct auth_conf {
	enum auth_alg algs[AUTH_MAX_ALGS]; /* offered in this order, most preferred first */
	unsigned nalgs;                    /* 0: MD5 alone */
	unsigned nonce_lifetime;           /* seconds a nonce stays fresh; 0: 300 */
	/* Nonce-count window: the counts of the nonces of this many latest challenges are
	 * kept, one byte each (rounded up to a power of two, at most 1 << 30; 0: 1 << 20, that
	 * is 1 MiB). A nonce with qop=auth that W or more newer challenges have followed is
	 * answered AUTH_STALE, as is a nonce count of 255 or more: the client is challenged
	 * again with a fresh nonce. */
	unsigned replay_slots;
};

/* The settings as written: [server] auth-algorithms and nonce-lifetime. */
struct auth_cfg {
	char algorithms[64];     /* --auth-algorithms "md5", "sha-256,md5" */
	unsigned nonce_lifetime; /* --nonce-lifetime 300 s */
};
extern const struct cfg_key auth_cfg_keys[];
extern const size_t auth_cfg_nkeys;
void auth_cfg_defaults(struct auth_cfg *c);
/* The algorithm list names md5 and sha-256 only, each at most once, at least one. */
int auth_cfg_check(const void *base, char *err, size_t errlen);
/* The runtime settings for auth_new from the written ones. Returns 0 or -EINVAL. */
int auth_conf_from_cfg(struct auth_conf *conf /* OUT */, const struct auth_cfg *c);

/* Parses a list such as "sha-256,md5" (case-insensitive, spaces allowed) into conf->algs.
 * Returns 0, or -EINVAL for an unknown or repeated name or an empty list. */
int auth_algs_parse(struct auth_conf *conf, const char *list);
/* The algorithm named by an algorithm= parameter ("MD5", "SHA-256"; empty means MD5).
 * Returns false for anything else, including the -sess variants. */
bool auth_alg_from_name(struct str name, enum auth_alg *alg /* OUT */);
/* "MD5" or "SHA-256". */
const char *auth_alg_name(enum auth_alg alg);

/* Creates an authenticator with a fresh random nonce key. Returns 0, -ENOMEM, or -EIO when
 * no randomness is available or libsodium cannot start. */
int auth_new(struct auth **ap, const struct auth_conf *conf);
void auth_free(struct auth *a);

/* Writes one challenge header line (ending in CRLF) per configured algorithm, most
 * preferred first, into buf (cap bytes, NUL-terminated):
 *   WWW-Authenticate: Digest realm="x", nonce="...", algorithm=MD5, qop="auth"
 * with ", stale=true" added when stale, and Proxy-Authenticate instead when proxy. now_s is
 * the wall clock in unix seconds. Returns the length written, or -ENOSPC when buf is too
 * small (buf then holds an empty string). */
int auth_challenge(struct auth *a, struct str realm, struct str bind, bool stale, bool proxy, uint64_t now_s, char *buf,
		   size_t cap);

enum auth_result {
	AUTH_OK = 0,
	AUTH_STALE,        /* right password, nonce expired (its lifetime is over, it has
			    * left the nonce-count window, or its count reached 255):
			    * challenge again with stale=true */
	AUTH_BAD_RESPONSE, /* wrong password (or user): challenge again, or 403 */
	AUTH_BAD_NONCE,    /* right password, but a nonce we did not issue (e.g. before a
			    * restart): challenge again with stale=true */
	AUTH_REPLAY,       /* nonce count not above the highest seen for this nonce */
	AUTH_BAD_REQUEST,  /* a missing parameter, another realm, an unsupported
			    * algorithm, no qop=auth: 400 or a new challenge */
	AUTH_URI_MISMATCH, /* the digest uri is not the Request-URI */
};

/* What the credentials must have been made for. */
struct auth_req {
	struct str method; /* the request's method */
	struct str ruri;   /* its Request-URI as sent: the digest uri must name it */
	struct str realm;  /* the realm we challenge with */
	struct str bind;   /* what the nonce is bound to besides the realm (the client's
			    * address with nonce-bind-source); empty: nothing. The same
			    * value must be given to auth_challenge. */
};

/* Checks credentials cred (as parsed by sip_auth_parse; only its views are read) for the
 * request rq, against the HA1 (lowercase hex) of the user for the algorithm the credentials
 * name (see auth_alg_from_name): the caller looks the user up by cred->username and
 * rq->realm and picks the hash, or passes NULL for an unknown user (checked against a
 * random hash, at the same cost, and answered AUTH_BAD_RESPONSE like a wrong password).
 * qop=auth is required (AUTH_BAD_REQUEST without it), the digest uri must name the
 * Request-URI (AUTH_URI_MISMATCH), the nonce must be ours for this realm and binding, and
 * its count must grow with each use (counts may skip values: a client may send several
 * requests at once) and stay below 255. A wrong response uses its nonce up, so that each
 * guess needs a new challenge. now_s: unix seconds. */
enum auth_result auth_verify(struct auth *a, const struct sip_auth *cred, const struct auth_req *rq,
			     const char *ha1_hex, uint64_t now_s);

/* HA1 = H(user:realm:password) in lowercase hex (33 or 65 bytes with the NUL). Returns 0:
 * the hashes run in software and cannot fail. */
int auth_ha1(enum auth_alg alg, struct str user, struct str realm, struct str password, char out[AUTH_HEX_MAX]);

/* The client side, for tests and the test client: computes the response a UA sends. */
struct auth_client {
	enum auth_alg alg;
	struct str user, realm, password;
	struct str method, uri;
	struct str nonce;
	struct str qop;    /* "auth", or empty for the RFC 2069 form */
	struct str cnonce; /* with qop only */
	uint32_t nc;       /* with qop only; sent as 8 hex digits */
};
int auth_client_response(const struct auth_client *c, char out[AUTH_HEX_MAX]);

#endif
