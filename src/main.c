/* main.c: the parley binary: picks the subcommand and hands it the rest of the arguments. */
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "serve", cli_serve },   { "user", cli_user },     { "reg", cli_reg },         { "calls", cli_calls },
	{ "trace", cli_trace },   { "ban", cli_ban },       { "admin", cli_admin },     { "check", cli_check },
	{ "backup", cli_backup }, { "reload", cli_reload }, { "version", cli_version }, { "help", cli_help },
};

/* Whether the subcommand's arguments ask for help (before a "--" that ends the flags). */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(stderr, NULL);
		return 2;
	}
	const char *cmd = argv[1];
	/* The conventional spellings work too, as people type them first. */
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
		cmd = "help";
	else if (strcmp(cmd, "--version") == 0)
		cmd = "version";
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		/* The subcommand sees its own name as argv[0], like a program of its own. */
		argv[1] = (char *)commands[i].name;
		if (strcmp(cmd, "help") != 0 && wants_help(argc - 1, argv + 1)) {
			cli_usage(stdout, cmd);
			return 0;
		}
		return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "parley: unknown command '%s'\n", cmd);
	cli_usage(stderr, NULL);
	return 2;
}
