/* reload.c: `parley reload`: sends SIGHUP to the running server, found by its pid file or its database's lock. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "server/config.h"
#include "store/store.h"

/* Reads the PID from a pid file serve wrote (--pid-file). 0, or 1 after saying why. */
static int pid_from_file(const char *path, long *pid)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "parley: reload: cannot read pid file %s: %s\n", path, strerror(errno));
		return 1;
	}
	char buf[32] = "", *end;
	bool ok = fgets(buf, sizeof buf, f) != NULL;
	fclose(f);
	long v = ok ? strtol(buf, &end, 10) : 0;
	if (v <= 0 || (*end && *end != '\n')) {
		fprintf(stderr, "parley: reload: pid file %s holds no PID\n", path);
		return 1;
	}
	*pid = v;
	return 0;
}

int cli_reload(int argc, char **argv)
{
	static const char *const flags[] = { "pid-file" };
	const char *vals[1] = { NULL };
	struct cfg_extra extra = { .flags = flags, .val = vals, .nflags = 1 };
	struct config cfg;
	int rc = config_parse_args(&cfg, argc, argv, 1, false, &extra, NULL, NULL, 0);
	if (rc)
		return rc;
	/* --pid-file, else the config's pid-file, else the lock serve holds beside its
	 * database: every server has one, so reload works with no setup at all. */
	const char *pidf = vals[0] ? vals[0] : cfg.server.pid_file[0] ? cfg.server.pid_file : NULL;
	long pid = 0;
	if (pidf) {
		if (pid_from_file(pidf, &pid))
			return 1;
	} else {
		char err[600];
		if (store_server_pid(cfg.server.db, &pid, err, sizeof err) < 0) {
			fprintf(stderr, "parley: reload: %s\n", err);
			return 1;
		}
	}
	if (kill((pid_t)pid, SIGHUP) != 0) {
		fprintf(stderr, "parley: reload: cannot signal PID %ld%s: %s\n", pid, pidf ? " (stale pid file?)" : "",
			strerror(errno));
		return 1;
	}
	printf("sent SIGHUP to parley serve (PID %ld)\n", pid);
	return 0;
}
