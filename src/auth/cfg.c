/* cfg.c: digest authentication's settings: algorithms offered and nonce lifetime. */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const struct cfg_key auth_cfg_keys[] = {
	CFG_KEY_STR(struct auth_cfg, "auth-algorithms", "server", "auth-algorithms", algorithms, NULL, 0),
	CFG_KEY_UINT(struct auth_cfg, "nonce-lifetime", "server", "nonce-lifetime", nonce_lifetime, 1, 86400),
};
const size_t auth_cfg_nkeys = sizeof(auth_cfg_keys) / sizeof(auth_cfg_keys[0]);

void auth_cfg_defaults(struct auth_cfg *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->algorithms, "md5");
	c->nonce_lifetime = 300;
}

int auth_cfg_check(const void *base, char *err, size_t errlen)
{
	/* A comma list of md5 and sha-256, in order of preference, each at most once: one
	 * challenge is offered per algorithm. auth_algs_parse says only whether; this says why. */
	const struct auth_cfg *c = base;
	struct str rest = str_from_cstr(c->algorithms);
	unsigned nalg = 0;
	bool seen[2] = { false, false }; /* md5, sha-256 */
	while (rest.l) {
		long comma = str_chr(rest, ',');
		struct str one = str_trim((struct str){ rest.p, comma < 0 ? rest.l : (size_t)comma });
		rest = comma < 0 ? STR_NULL : (struct str){ rest.p + comma + 1, rest.l - (size_t)comma - 1 };
		int which = str_caseeq_cstr(one, "md5") ? 0 : str_caseeq_cstr(one, "sha-256") ? 1 : -1;
		if (which < 0) {
			snprintf(err, errlen, "--auth-algorithms: unknown algorithm '%.*s' (expected md5|sha-256)",
				 STR_FMT(one));
			return -1;
		}
		if (seen[which]) {
			snprintf(err, errlen,
				 "--auth-algorithms %s: '%.*s' is given twice (each algorithm at most once)",
				 c->algorithms, STR_FMT(one));
			return -1;
		}
		seen[which] = true;
		nalg++;
	}
	if (nalg == 0) {
		snprintf(err, errlen, "--auth-algorithms: expected md5|sha-256 (at least one)");
		return -1;
	}
	return 0;
}

int auth_conf_from_cfg(struct auth_conf *conf, const struct auth_cfg *c)
{
	memset(conf, 0, sizeof(*conf));
	conf->nonce_lifetime = c->nonce_lifetime;
	return auth_algs_parse(conf, c->algorithms);
}
