/* cfg.c: the registrar's settings: bindings per address and the expiry bounds (RFC 3261 §10.3). */
#include "registrar/registrar.h"

#include <stdio.h>

const struct cfg_key reg_cfg_keys[] = {
	CFG_KEY_UINT(struct reg_cfg, "max-contacts", "server", "max-contacts", max_contacts, 1, 1000),
	CFG_KEY_UINT(struct reg_cfg, "min-expires", "server", "min-expires", min_expires, 1, 31536000),
	CFG_KEY_UINT(struct reg_cfg, "max-expires", "server", "max-expires", max_expires, 1, 31536000),
	CFG_KEY_UINT(struct reg_cfg, "default-expires", "server", "default-expires", default_expires, 1, 31536000),
	CFG_KEY_UINT(struct reg_cfg, "nat-ping-interval", "server", "nat-ping-interval", nat_ping_interval, 0, 3600),
	CFG_KEY_BOOL(struct reg_cfg, "nat-ping-remove", "server", "nat-ping-remove", nat_ping_remove),
};
const size_t reg_cfg_nkeys = sizeof(reg_cfg_keys) / sizeof(reg_cfg_keys[0]);

void reg_cfg_defaults(struct reg_cfg *c)
{
	*c = (struct reg_cfg){
		.max_contacts = 10,
		.min_expires = 60,
		.max_expires = 86400,
		.default_expires = 3600,
		.nat_ping_interval = 25,
	};
}

int reg_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct reg_cfg *c = base;
	if (c->min_expires > c->default_expires || c->default_expires > c->max_expires) {
		snprintf(err, errlen,
			 "--min-expires %u, --default-expires %u, --max-expires %u: expected min <= default <= max",
			 c->min_expires, c->default_expires, c->max_expires);
		return -1;
	}
	return 0;
}
