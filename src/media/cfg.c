/* cfg.c: the media relay's settings ([media]): the rtpengines, when to relay, and what a failed relay does. */
#include "media/media_int.h"

#include <stdio.h>

static const char *const modes[] = { "auto", "always", "never", NULL };

const struct cfg_key media_cfg_keys[] = {
	CFG_KEY_LIST(struct media_cfg, "rtpengine", "media", "rtpengine", rtpengine, nrtpengine,
		     "udp:HOST:PORT[;weight=N]", CFG_F_REPLACE),
	{ .flag = "media",
	  .section = "media",
	  .name = "media",
	  .kind = CFG_CHOICE,
	  .off = offsetof(struct media_cfg, mode),
	  .choices = modes },
	CFG_KEY_BOOL(struct media_cfg, "media-required", "media", "media-required", required),
	CFG_KEY_UINT(struct media_cfg, "rtpengine-timeout", "media", "rtpengine-timeout", timeout_ms, 100, 60000),
};
const size_t media_cfg_nkeys = sizeof(media_cfg_keys) / sizeof(media_cfg_keys[0]);

void media_cfg_defaults(struct media_cfg *c)
{
	*c = (struct media_cfg){ .mode = MEDIA_AUTO, .timeout_ms = 2000 };
}

int media_cfg_check(const void *base, char *err, size_t errlen)
{
	const struct media_cfg *c = base;
	for (unsigned i = 0; i < c->nrtpengine; i++) {
		struct ng_target t;
		char why[160];
		if (ng_target_parse(c->rtpengine[i], &t, why, sizeof why) < 0) {
			snprintf(err, errlen, "--rtpengine %s: %s", c->rtpengine[i], why);
			return -1;
		}
	}
	return 0;
}
