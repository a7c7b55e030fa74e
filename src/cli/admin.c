/* admin.c: `parley admin add|del|list|passwd|token`: the accounts of the HTTP admin endpoint. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "server/config.h"
#include "store/store.h"

#define ADMIN_PASSWORD_MAX 1024
#define TOKEN_BYTES 32 /* 256 bits: guessing is hopeless, so a fast hash suffices */

static int usage(void)
{
	fprintf(stderr, "parley: admin: expected add, del, list, passwd or token\n");
	cli_usage(stderr, "admin");
	return 2;
}

/* One line from stdin without its line end, not echoed on a terminal; false when
 * nothing came. */
static bool read_secret(char *buf, size_t cap)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fprintf(stderr, "Password: ");
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	bool ok = fgets(buf, (int)cap, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!ok)
		return false;
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return true;
}

static int fail(struct store *st, int err)
{
	fprintf(stderr, "parley: %s\n", store_errmsg(st));
	return err == -EINVAL ? 2 : 1;
}

struct rows {
	struct cli_table tab;
};

static int list_row(const struct store_admin *a, void *arg)
{
	struct rows *r = arg;
	char name[STORE_ADMIN_NAME_MAX + 1], created[32], tokens[16];
	time_t t = (time_t)a->created;
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S", &tm);
	else
		snprintf(created, sizeof created, "%lld", (long long)a->created);
	snprintf(tokens, sizeof tokens, "%u", a->tokens);
	const char *row[3] = { str_to_cbuf(a->name, name, sizeof name), created, tokens };
	return cli_table_add(&r->tab, row);
}

static int list(struct store *st)
{
	static const char *const head[3] = { "NAME", "CREATED", "TOKENS" };
	struct rows r;
	cli_table_init(&r.tab, 3);
	int err = store_admin_list(st, list_row, &r);
	if (err) {
		fprintf(stderr, "parley: %s\n", r.tab.oom ? "out of memory" : store_errmsg(st));
		cli_table_free(&r.tab);
		return 1;
	}
	cli_table_print(&r.tab, head);
	cli_table_free(&r.tab);
	return 0;
}

/* A new token printed once; only its SHA-256 is kept. */
static int token(struct store *st, const char *name)
{
	unsigned char raw[TOKEN_BYTES], digest[crypto_hash_sha256_BYTES];
	char tok[sodium_base64_ENCODED_LEN(TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(tok, sizeof tok, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	crypto_hash_sha256(digest, (const unsigned char *)tok, strlen(tok));
	sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
	sodium_memzero(raw, sizeof raw);
	int err = store_token_add(st, str_from_cstr(name), hex, (int64_t)time(NULL));
	if (err) {
		sodium_memzero(tok, sizeof tok);
		return fail(st, err);
	}
	printf("%s\n", tok);
	fprintf(stderr,
		"parley: a new bearer token of admin %s (shown once: only its hash is kept); send it as "
		"'Authorization: Bearer TOKEN'\n",
		name);
	sodium_memzero(tok, sizeof tok);
	return 0;
}

static int run(struct store *st, const char *cmd, const char *name, const char *password)
{
	if (!strcmp(cmd, "list"))
		return list(st);
	if (!strcmp(cmd, "del")) {
		int err = store_admin_del(st, str_from_cstr(name));
		if (err)
			return fail(st, err);
		printf("deleted admin %s (and its tokens)\n", name);
		return 0;
	}
	if (!strcmp(cmd, "token"))
		return token(st, name);
	/* add, passwd */
	char pw[ADMIN_PASSWORD_MAX];
	if (!password) {
		if (!read_secret(pw, sizeof pw)) {
			fprintf(stderr, "parley: admin %s: no password on stdin (or give --password)\n", cmd);
			return 2;
		}
		password = pw;
	}
	size_t pl = strlen(password);
	if (pl == 0) {
		fprintf(stderr, "parley: --password: empty password\n");
		return 2;
	}
	if (pl >= ADMIN_PASSWORD_MAX) {
		fprintf(stderr, "parley: --password: password too long (at most %d bytes)\n", ADMIN_PASSWORD_MAX - 1);
		return 2;
	}
	char hash[crypto_pwhash_STRBYTES];
	/* Argon2id with libsodium's interactive limits (64 MiB, a few tens of ms): a login
	 * is rare, and a stolen database costs a guesser that much per guess. */
	if (crypto_pwhash_str(hash, password, pl, crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		sodium_memzero(pw, sizeof pw);
		fprintf(stderr, "parley: admin %s: out of memory hashing the password\n", cmd);
		return 1;
	}
	sodium_memzero(pw, sizeof pw);
	bool add = !strcmp(cmd, "add");
	int err = add ? store_admin_add(st, str_from_cstr(name), hash, (int64_t)time(NULL))
		      : store_admin_passwd(st, str_from_cstr(name), hash);
	if (err)
		return fail(st, err);
	printf("%s %s\n", add ? "added admin" : "changed the password of admin", name);
	return 0;
}

int cli_admin(int argc, char **argv)
{
	static const char *const flags[] = { "password" };
	const char *vals[1] = { NULL };
	struct cfg_extra extra = { .flags = flags, .val = vals, .nflags = 1 };
	struct config cfg;
	char *pos[3];
	int npos = 0;

	int rc = config_parse_args(&cfg, argc, argv, 1, false, &extra, pos, &npos, 3);
	if (rc)
		return rc;
	if (npos == 0)
		return usage();
	const char *cmd = pos[0];
	int want;
	if (!strcmp(cmd, "list"))
		want = 1;
	else if (!strcmp(cmd, "add") || !strcmp(cmd, "del") || !strcmp(cmd, "passwd") || !strcmp(cmd, "token"))
		want = 2;
	else
		return usage();
	if (npos > want) {
		fprintf(stderr, "parley: admin %s: unexpected argument '%s'\n", cmd, pos[want]);
		return 2;
	}
	if (npos < want) {
		fprintf(stderr, "parley: admin %s: expected NAME\n", cmd);
		return 2;
	}
	if (vals[0] && strcmp(cmd, "add") && strcmp(cmd, "passwd")) {
		fprintf(stderr, "parley: --password: only for admin add and admin passwd\n");
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "parley: cannot initialise libsodium\n");
		return 1;
	}
	struct store *st = NULL;
	struct store_conf sc = { .path = cfg.server.db, .readonly = !strcmp(cmd, "list") };
	rc = store_open(&st, &sc);
	if (rc) {
		fprintf(stderr, "parley: %s\n", store_errmsg(st));
		store_close(st);
		return 1;
	}
	rc = run(st, cmd, npos > 1 ? pos[1] : NULL, vals[0]);
	store_close(st);
	return rc;
}
