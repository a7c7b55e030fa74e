/* cfg.c: the dialog table's settings. */
#include "dialog/dialog.h"

#include <string.h>

const struct cfg_key dlg_cfg_keys[] = {
	CFG_KEY_UINT(struct dlg_conf, "max-dialogs", "security", "max-dialogs", max, 100, 10000000),
};
const size_t dlg_cfg_nkeys = sizeof(dlg_cfg_keys) / sizeof(dlg_cfg_keys[0]);

void dlg_cfg_defaults(struct dlg_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max = 100000;
}
