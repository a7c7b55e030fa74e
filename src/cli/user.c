/* user.c: `parley user add|del|passwd|list|import`: manage the users of the database. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "store/store.h"

#define PASSWORD_MAX 1024

static int usage(void)
{
	fprintf(stderr, "parley: user: expected add, del, passwd, list or import\n");
	cli_usage(stderr, "user");
	return 2;
}

/* Splits "user@domain"; false (after printing why) if it is not of that form. */
static bool split(const char *arg, struct str *user, struct str *domain)
{
	const char *at = strchr(arg, '@');

	if (!at || at == arg || !at[1] || strchr(at + 1, '@')) {
		fprintf(stderr, "parley: user: expected USER@DOMAIN, got '%s'\n", arg);
		return false;
	}
	*user = (struct str){ arg, (size_t)(at - arg) };
	*domain = str_from_cstr(at + 1);
	return true;
}

/* Reads one line from stdin into buf, without its line end. On a terminal the typing is
 * not echoed, as passwords should not be left on screen. Returns false if nothing came. */
static bool read_password(char *buf, size_t cap)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	bool ok;
	size_t n;

	if (tty) {
		fprintf(stderr, "Password: ");
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	ok = fgets(buf, (int)cap, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!ok)
		return false;
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return true;
}

static int list_row(const struct store_user *u, void *arg)
{
	printf("%.*s@%.*s\n", STR_FMT(u->user), STR_FMT(u->domain));
	return 0;
}

/* The exit code for a store failure: 2 for what the person typed or gave us, 1 for the
 * rest (the database, the disk, a user that does or does not exist). */
static int fail(struct store *st, int err)
{
	fprintf(stderr, "parley: %s\n", store_errmsg(st));
	return err == -EINVAL ? 2 : 1;
}

static int run(struct store *st, const struct config *cfg, const char *cmd, const char *arg,
	       const char *password)
{
	struct str user, domain, realm = str_from_cstr(cfg->realm);
	char pw[PASSWORD_MAX];
	int err;

	if (!strcmp(cmd, "list")) {
		err = store_user_list(st, list_row, NULL);
		return err ? fail(st, err) : 0;
	}
	if (!strcmp(cmd, "import")) {
		unsigned count = 0, bad = 0;

		err = store_user_import(st, arg, realm, &count, &bad);
		if (err)
			return fail(st, err);
		printf("imported %u users\n", count);
		return 0;
	}
	if (!split(arg, &user, &domain))
		return 2;
	if (!strcmp(cmd, "del")) {
		err = store_user_del(st, user, domain);
		if (err)
			return fail(st, err);
		printf("deleted %s\n", arg);
		return 0;
	}
	if (!password) {
		if (!read_password(pw, sizeof(pw))) {
			fprintf(stderr, "parley: user %s: no password on stdin (or give --password)\n", cmd);
			return 2;
		}
		password = pw;
	}
	if (!password[0]) {
		fprintf(stderr, "parley: --password: empty password\n");
		return 2;
	}
	if (!strcmp(cmd, "add"))
		err = store_user_add(st, user, domain, realm, str_from_cstr(password));
	else
		err = store_user_passwd(st, user, domain, realm, str_from_cstr(password));
	if (err)
		return fail(st, err);
	printf("%s %s\n", !strcmp(cmd, "add") ? "added" : "changed the password of", arg);
	return 0;
}

int cli_user(int argc, char **argv)
{
	static const char *const flags[] = { "password" };
	const char *vals[1] = { NULL };
	struct config_extra extra = { .flags = flags, .val = vals, .nflags = 1 };
	struct config cfg;
	char *pos[3];
	int npos = 0, rc, want;
	const char *cmd;
	struct store *st = NULL;
	struct store_conf sc = { 0 };

	rc = config_parse_args(&cfg, argc, argv, 1, false, &extra, pos, &npos, 3);
	if (rc)
		return rc;
	if (npos == 0)
		return usage();
	cmd = pos[0];
	if (!strcmp(cmd, "list"))
		want = 1;
	else if (!strcmp(cmd, "add") || !strcmp(cmd, "del") || !strcmp(cmd, "passwd") ||
		 !strcmp(cmd, "import"))
		want = 2;
	else
		return usage();
	if (npos > want) {
		fprintf(stderr, "parley: user %s: unexpected argument '%s'\n", cmd, pos[want]);
		return 2;
	}
	if (npos < want) {
		fprintf(stderr, "parley: user %s: expected %s\n", cmd,
			!strcmp(cmd, "import") ? "FILE" : "USER@DOMAIN");
		return 2;
	}
	if (vals[0] && strcmp(cmd, "add") && strcmp(cmd, "passwd")) {
		fprintf(stderr, "parley: --password: only for user add and user passwd\n");
		return 2;
	}

	sc.path = cfg.db;
	sc.readonly = !strcmp(cmd, "list");
	rc = store_open(&st, &sc);
	if (rc) {
		fprintf(stderr, "parley: %s\n", store_errmsg(st));
		store_close(st);
		return 1;
	}
	rc = run(st, &cfg, cmd, npos > 1 ? pos[1] : NULL, vals[0]);
	store_close(st);
	return rc;
}
