/* cli.h: the subcommands behind main.c; each returns the process exit code (0, 1, 2). */
#ifndef PARLEY_CLI_H
#define PARLEY_CLI_H

#include <stdbool.h>
#include <stdio.h>

int cli_serve(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_reg(int argc, char **argv);
int cli_calls(int argc, char **argv);
int cli_trace(int argc, char **argv);
int cli_ban(int argc, char **argv);
int cli_admin(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_backup(int argc, char **argv);
int cli_reload(int argc, char **argv);
int cli_help(int argc, char **argv);
int cli_version(int argc, char **argv);

/* Prints the usage of one subcommand, or of all when cmd is NULL; returns false when cmd
 * names no subcommand. */
bool cli_usage(FILE *f, const char *cmd);

#endif
