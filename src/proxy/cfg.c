/* cfg.c: the proxy's settings. */
#include "proxy/proxy.h"

const struct cfg_key proxy_cfg_keys[] = {
	CFG_KEY_UINT(struct proxy_cfg, "ring-timeout", "server", "ring-timeout", ring_timeout, 1, 3600),
};
const size_t proxy_cfg_nkeys = sizeof(proxy_cfg_keys) / sizeof(proxy_cfg_keys[0]);

void proxy_cfg_defaults(struct proxy_cfg *c)
{
	c->ring_timeout = 60;
}
