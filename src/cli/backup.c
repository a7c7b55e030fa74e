/* backup.c: `parley backup FILE [--force]`: a consistent copy of the database, taken while the server runs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "server/config.h"
#include "store/store.h"

int cli_backup(int argc, char **argv)
{
	static const char *const bools[] = { "force" };
	bool force = false;
	struct cfg_extra extra = { .bools = bools, .bval = &force, .nbools = 1 };
	struct config cfg;
	char *pos[2];
	int npos = 0;
	int rc = config_parse_args(&cfg, argc, argv, 1, false, &extra, pos, &npos, 2);
	if (rc)
		return rc;
	if (npos != 1 || !pos[0][0]) {
		fprintf(stderr, "parley: backup: expected one FILE to write the copy to\n");
		cli_usage(stderr, "backup");
		return 2;
	}
	char err[512] = "";
	rc = store_backup(cfg.server.db, pos[0], force, err, sizeof err);
	if (rc == -EEXIST) {
		/* Refusing to overwrite is a usage matter: the command as typed cannot work. */
		fprintf(stderr, "parley: backup: %s\n", err);
		return 2;
	}
	if (rc) {
		fprintf(stderr, "parley: backup: %s\n", err);
		return 1;
	}
	printf("%s: copy of %s\n", pos[0], cfg.server.db);
	return 0;
}
