/* cli.h: the subcommands behind main.c; each returns the process exit code (0, 1, 2). */
#ifndef PARLEY_CLI_H
#define PARLEY_CLI_H

int cli_serve(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_reg(int argc, char **argv);
int cli_calls(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_help(int argc, char **argv);
int cli_version(int argc, char **argv);

#endif
