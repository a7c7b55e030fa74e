/* cfg.c: the router's settings. */
#include "router/router.h"

#include <string.h>

const struct cfg_key router_cfg_keys[] = {
	CFG_KEY_STR(struct router_cfg, "realm", "server", "realm", realm, "the request's domain", 0),
	CFG_KEY_BOOL(struct router_cfg, "nonce-bind-source", "security", "nonce-bind-source", nonce_bind_source),
	/* Trusted hosts accumulate from file and flags: there is no default to replace. */
	CFG_KEY_LIST(struct router_cfg, "trust", "peers", "trust", trust, ntrust, "a host", 0),
	CFG_KEY_UINT(struct router_cfg, "max-transactions", "security", "max-transactions", max_transactions, 100,
		     10000000),
};
const size_t router_cfg_nkeys = sizeof(router_cfg_keys) / sizeof(router_cfg_keys[0]);

void router_cfg_defaults(struct router_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->max_transactions = 15000;
}
