/* check.c: `parley check`: parses and validates a config, then prints the effective settings. */
#include "cli/cli.h"

#include "server/config.h"

int cli_check(int argc, char **argv)
{
	struct config cfg;
	int rc = config_parse_args(&cfg, argc, argv, 1, true, NULL, NULL, NULL, 0);
	if (rc == 0)
		rc = config_validate(&cfg);
	if (rc == 0)
		config_print(&cfg, stdout);
	return rc;
}
