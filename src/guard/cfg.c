/* cfg.c: the guard's settings ([security]): rate limit, failed-login slowing and bans. */
#include "guard/guard.h"

#include <stdio.h>

const struct cfg_key guard_cfg_keys[] = {
	CFG_KEY_UINT(struct guard_conf, "ban-threshold", "security", "ban-threshold", ban_threshold, 0, 1000000),
	CFG_KEY_UINT(struct guard_conf, "ban-window", "security", "ban-window", ban_window, 1, 86400),
	CFG_KEY_UINT(struct guard_conf, "ban-time", "security", "ban-time", ban_time, 1, 31536000),
	CFG_KEY_UINT(struct guard_conf, "slow-after", "security", "slow-after", slow_after, 0, 1000000),
	CFG_KEY_UINT(struct guard_conf, "rate-limit", "security", "rate-limit", rate_limit, 0, 10000000),
};
const size_t guard_cfg_nkeys = sizeof(guard_cfg_keys) / sizeof(guard_cfg_keys[0]);

int guard_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct guard_conf *c = base;
	/* Slowing answers down is the step before a ban: past the ban it would never act. */
	if (c->slow_after && c->ban_threshold && c->slow_after >= c->ban_threshold) {
		snprintf(err, errlen,
			 "--slow-after %u, --ban-threshold %u: expected slow-after below ban-threshold "
			 "(or either 0 to turn it off)",
			 c->slow_after, c->ban_threshold);
		return -1;
	}
	return 0;
}
