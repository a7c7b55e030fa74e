/* cfg.c: the transaction timers' settings (RFC 3261 §17.1.1.1 T1, T2, T4). */
#include "txn/txn.h"

#include <stdio.h>

const struct cfg_key txn_cfg_keys[] = {
	CFG_KEY_UINT(struct txn_cfg, "t1", "server", "t1", t1, 1, 60000),
	CFG_KEY_UINT(struct txn_cfg, "t2", "server", "t2", t2, 1, 600000),
	CFG_KEY_UINT(struct txn_cfg, "t4", "server", "t4", t4, 1, 600000),
};
const size_t txn_cfg_nkeys = sizeof(txn_cfg_keys) / sizeof(txn_cfg_keys[0]);

void txn_cfg_defaults(struct txn_cfg *c)
{
	*c = (struct txn_cfg){ 500, 4000, 5000 };
}

int txn_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct txn_cfg *c = base;
	if (c->t1 > c->t2) {
		snprintf(err, errlen, "--t1 %u is larger than --t2 %u", c->t1, c->t2);
		return -1;
	}
	return 0;
}
