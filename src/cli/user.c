/* user.c: `parley user add|del|passwd|list|import`: manage the users of the database. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "server/config.h"
#include "store/store.h"

#define PASSWORD_MAX 1024

/* Limits of an import line, those of the store (a host name has at most 253 characters). */
#define IMPORT_USER_MAX 255
#define IMPORT_HOST_MAX 253
#define IMPORT_PASSWORD_MAX 1023
/* Longer than any good line (user, '@', host, ',', password); a longer line is reported
 * without being held in memory, so a file of one huge line costs nothing. */
#define IMPORT_LINE_MAX 2048

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

/* The HA1 values (lowercase hex) of password for user@domain, as the store keeps them: over
 * the configured realm or, when none is configured, the lowercased domain. */
static void hash_password(struct str user, struct str domain, struct str realm, struct str password,
			  char md5[AUTH_HEX_MAX], char sha256[AUTH_HEX_MAX])
{
	char dom[256]; /* a longer domain the store refuses */

	if (realm.l == 0) {
		size_t n = domain.l < sizeof(dom) ? domain.l : sizeof(dom) - 1;
		for (size_t i = 0; i < n; i++)
			dom[i] = (char)((domain.p[i] >= 'A' && domain.p[i] <= 'Z') ? domain.p[i] + 32 : domain.p[i]);
		realm = (struct str){ dom, n };
	}
	auth_ha1(AUTH_MD5, user, realm, password, md5);
	auth_ha1(AUTH_SHA256, user, realm, password, sha256);
}

/* The exit code for a store failure: 2 for what the person typed or gave us, 1 for the
 * rest (the database, the disk, a user that does or does not exist). */
static int fail(struct store *st, int err)
{
	fprintf(stderr, "parley: %s\n", store_errmsg(st));
	return err == -EINVAL ? 2 : 1;
}

/* ---- user import ---------------------------------------------------------------------- */

/* Options and counts of one import. */
struct import {
	const char *file;
	struct str realm;
	bool update;   /* --update: an existing user gets the new password */
	bool skip_bad; /* --skip-bad: import the good lines even if some are bad */
	unsigned added, changed, bad;
	/* user@domain (domain lowercased) of every good line so far, to find one given twice:
	 * open addressing, cap a power of two at least twice n */
	struct seen {
		uint64_t hash;
		char *key; /* NULL: empty slot */
		unsigned line;
	} * seen;
	size_t nseen, capseen;
};

/* Copies s into out for a message, printable ASCII as is and the rest as \xHH, so that a
 * file cannot send escape sequences to the terminal. */
static const char *shown(struct str s, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < s.l && n + 5 < cap; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c >= 0x20 && c < 0x7f)
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
	}
	out[n] = '\0';
	return out;
}

/* Reports a bad line as FILE:LINE: reason (the form editors jump to) and counts it. */
__attribute__((format(printf, 3, 4))) static void bad_line(struct import *im, unsigned line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%u: ", im->file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	im->bad++;
}

/* RFC 3261 user = 1*( unreserved / escaped / user-unreserved ); escapes are checked by
 * the caller. */
static bool user_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-_.!~*'()&=+$,;?/", c));
}

static bool hex(char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Why user is not an RFC 3261 user part, or NULL when it is one. */
static const char *user_problem(struct str u, char *why, size_t cap)
{
	char c[8], name[64];
	if (u.l == 0)
		return "empty user part before '@'";
	if (u.l > IMPORT_USER_MAX) {
		snprintf(why, cap, "user part too long (%zu bytes, at most %d)", u.l, IMPORT_USER_MAX);
		return why;
	}
	for (size_t i = 0; i < u.l; i++) {
		if (u.p[i] == '%') {
			if (i + 2 >= u.l || !hex(u.p[i + 1]) || !hex(u.p[i + 2])) {
				snprintf(why, cap, "user part '%s': '%%' must start an escape such as %%40",
					 shown(u, name, sizeof(name)));
				return why;
			}
			i += 2;
		} else if (!user_char((unsigned char)u.p[i])) {
			snprintf(why, cap, "user part '%s': '%s' is not allowed in a SIP user name",
				 shown(u, name, sizeof(name)), shown((struct str){ u.p + i, 1 }, c, sizeof(c)));
			return why;
		}
	}
	return NULL;
}

/* Whether d is a host name (RFC 3261 hostname: dot-separated labels of letters, digits and
 * inner hyphens, the last one starting with a letter), an IPv4 address or [IPv6]. */
static bool plausible_host(struct str d)
{
	char buf[IMPORT_HOST_MAX + 1];
	unsigned char bin[16];

	if (d.l == 0 || d.l > IMPORT_HOST_MAX)
		return false;
	if (d.p[0] == '[') {
		if (d.l < 3 || d.p[d.l - 1] != ']')
			return false;
		str_to_cbuf((struct str){ d.p + 1, d.l - 2 }, buf, sizeof(buf));
		return memchr(d.p + 1, '\0', d.l - 2) == NULL && inet_pton(AF_INET6, buf, bin) == 1;
	}
	str_to_cbuf(d, buf, sizeof(buf));
	if (memchr(d.p, '\0', d.l) == NULL && inet_pton(AF_INET, buf, bin) == 1)
		return true;
	size_t start = 0;
	for (size_t i = 0; i <= d.l; i++) {
		if (i < d.l && d.p[i] != '.') {
			char c = d.p[i];
			if (!(c == '-' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')))
				return false;
			continue;
		}
		size_t len = i - start;
		if (len == 0 || len > 63 || d.p[start] == '-' || d.p[i - 1] == '-')
			return false;
		if (i == d.l && !((d.p[start] | 0x20) >= 'a' && (d.p[start] | 0x20) <= 'z'))
			return false; /* toplabel; "10.0.0.300" is no address and no name */
		start = i + 1;
	}
	return true;
}

/* Records key (user@domain) as given on line; returns 0, the line it was first given on,
 * or -ENOMEM. */
static long seen_add(struct import *im, const char *key, unsigned line)
{
	if (2 * (im->nseen + 1) > im->capseen) {
		size_t cap = im->capseen ? im->capseen * 2 : 256;
		struct seen *t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < im->capseen; i++) {
			if (!im->seen[i].key)
				continue;
			size_t j = im->seen[i].hash & (cap - 1);
			while (t[j].key)
				j = (j + 1) & (cap - 1);
			t[j] = im->seen[i];
		}
		free(im->seen);
		im->seen = t;
		im->capseen = cap;
	}
	uint64_t h = str_hash(str_from_cstr(key));
	size_t j = h & (im->capseen - 1);
	for (; im->seen[j].key; j = (j + 1) & (im->capseen - 1))
		if (im->seen[j].hash == h && !strcmp(im->seen[j].key, key))
			return im->seen[j].line;
	im->seen[j] = (struct seen){ h, strdup(key), line };
	if (!im->seen[j].key)
		return -ENOMEM;
	im->nseen++;
	return 0;
}

static void seen_free(struct import *im)
{
	for (size_t i = 0; i < im->capseen; i++)
		free(im->seen[i].key);
	free(im->seen);
}

/* Reads one line without its LF into buf (cap bytes). Returns its length, -1 at the end of
 * the file, or cap + 1 when it did not fit (the rest of it is read and dropped). */
static long read_line(FILE *f, char *buf, size_t cap)
{
	size_t n = 0;
	bool any = false, over = false;
	int ch;

	while ((ch = getc_unlocked(f)) != EOF) {
		any = true;
		if (ch == '\n')
			break;
		if (n < cap)
			buf[n++] = (char)ch;
		else
			over = true;
	}
	if (!any)
		return -1;
	return over ? (long)cap + 1 : (long)n;
}

/* Checks one line and, when it is good, writes its user (inside the caller's transaction).
 * Returns 0 (also for a bad line, which is reported and counted) or a store failure. */
static int import_line(struct store *st, struct import *im, unsigned lineno, struct str s)
{
	char why[256], show[IMPORT_LINE_MAX], key[IMPORT_USER_MAX + IMPORT_HOST_MAX + 2];
	struct store_user u;
	long comma, at, first;
	int err;

	if (memchr(s.p, '\0', s.l)) {
		bad_line(im, lineno, "NUL byte in the line");
		return 0;
	}
	comma = str_chr(s, ',');
	if (comma < 0) {
		bad_line(im, lineno, "expected user@domain,password (no comma)");
		return 0;
	}
	/* Spaces around the address are forgiven, as before; the password is every byte after
	 * the first comma, commas and spaces included. */
	struct str who = str_trim((struct str){ s.p, (size_t)comma });
	struct str pw = { s.p + comma + 1, s.l - (size_t)comma - 1 };
	at = str_chr(who, '@');
	if (at < 0) {
		bad_line(im, lineno, "no '@' in '%s' (expected user@domain,password)", shown(who, show, sizeof(show)));
		return 0;
	}
	struct str user = { who.p, (size_t)at }, domain = { who.p + at + 1, who.l - (size_t)at - 1 };
	const char *problem = user_problem(user, why, sizeof(why));
	if (problem) {
		bad_line(im, lineno, "%s", problem);
		return 0;
	}
	if (domain.l == 0) {
		bad_line(im, lineno, "empty domain after '@'");
		return 0;
	}
	if (!plausible_host(domain)) {
		bad_line(im, lineno, "domain '%s' is not a host name or IP address", shown(domain, show, sizeof(show)));
		return 0;
	}
	if (pw.l == 0) {
		bad_line(im, lineno, "empty password");
		return 0;
	}
	if (pw.l > IMPORT_PASSWORD_MAX) {
		bad_line(im, lineno, "password too long (%zu bytes, at most %d)", pw.l, IMPORT_PASSWORD_MAX);
		return 0;
	}
	/* The user part is case-sensitive, the domain is not (the store lowercases it). */
	size_t kl = 0;
	memcpy(key, user.p, user.l);
	kl = user.l;
	key[kl++] = '@';
	for (size_t i = 0; i < domain.l; i++)
		key[kl++] = (char)((domain.p[i] >= 'A' && domain.p[i] <= 'Z') ? domain.p[i] + 32 : domain.p[i]);
	key[kl] = '\0';
	first = seen_add(im, key, lineno);
	if (first < 0)
		return -ENOMEM;
	if (first > 0) {
		bad_line(im, lineno, "user %s is given twice (first on line %ld)", key, first);
		return 0;
	}
	err = store_user_get(st, user, domain, &u);
	if (err && err != -ENOENT)
		return err;
	bool exists = err == 0;
	if (exists && !im->update) {
		bad_line(im, lineno, "user %s exists; use --update to change its password", key);
		return 0;
	}
	char md5[AUTH_HEX_MAX], sha256[AUTH_HEX_MAX];
	hash_password(user, domain, im->realm, pw, md5, sha256);
	err = exists ? store_user_passwd(st, user, domain, md5, sha256) : store_user_add(st, user, domain, md5, sha256);
	if (err == -EINVAL) {
		/* The store's own checks; the ones above should have caught it first. */
		bad_line(im, lineno, "%s", store_errmsg(st));
		return 0;
	}
	if (err)
		return err;
	if (exists)
		im->changed++;
	else
		im->added++;
	return 0;
}

/* `parley user import FILE [--update] [--skip-bad]`: every line is checked and every bad
 * one reported; then either all good lines are written in one transaction or, when a line
 * was bad and --skip-bad not given, none. Exit 0, 2 (bad lines, unreadable file) or 1 (the
 * database failed). */
static int import(struct store *st, struct import *im)
{
	/* Only a regular file: /dev/zero or a FIFO nobody writes to would never end.
	 * O_NONBLOCK keeps open from waiting for a FIFO's writer. */
	int fd = open(im->file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	FILE *f = NULL;
	char line[IMPORT_LINE_MAX];
	unsigned lineno = 0;
	long n;
	int err = 0;

	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "parley: user import: cannot read %s: %s\n", im->file,
			fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return 2;
	}
	f = fdopen(fd, "r");
	if (!f) {
		fprintf(stderr, "parley: user import: cannot read %s: %s\n", im->file, strerror(errno));
		close(fd);
		return 1;
	}
	err = store_begin(st);
	if (err) {
		fprintf(stderr, "parley: user import: %s; nothing imported\n", store_errmsg(st));
		fclose(f);
		return 1;
	}
	while (!err && (n = read_line(f, line, sizeof(line))) >= 0) {
		struct str s = { line, (size_t)n };
		lineno++;
		if ((size_t)n > sizeof(line)) {
			bad_line(im, lineno, "line too long (at most %d bytes)", IMPORT_LINE_MAX);
			continue;
		}
		/* A UTF-8 byte order mark, as some spreadsheets write, is not part of the user. */
		if (lineno == 1 && s.l >= 3 && !memcmp(s.p, "\xef\xbb\xbf", 3)) {
			s.p += 3;
			s.l -= 3;
		}
		if (s.l > 0 && s.p[s.l - 1] == '\r')
			s.l--;
		struct str t = str_trim(s);
		if (t.l == 0 || t.p[0] == '#')
			continue;
		err = import_line(st, im, lineno, s);
	}
	if (!err && ferror(f)) {
		fprintf(stderr, "parley: user import: cannot read %s: %s; nothing imported\n", im->file,
			strerror(errno));
		store_rollback(st);
		fclose(f);
		return 1;
	}
	fclose(f);
	if (err) {
		fprintf(stderr, "parley: user import: %s (at %s:%u); nothing imported\n",
			err == -ENOMEM ? "out of memory" : store_errmsg(st), im->file, lineno);
		store_rollback(st);
		return 1;
	}
	if (im->bad && !im->skip_bad) {
		store_rollback(st);
		fprintf(stderr,
			"parley: user import: %u bad line%s in %s; nothing imported "
			"(fix them, or give --skip-bad to import the other lines)\n",
			im->bad, im->bad == 1 ? "" : "s", im->file);
		return 2;
	}
	err = store_commit(st);
	if (err) {
		fprintf(stderr, "parley: user import: %s; nothing imported\n", store_errmsg(st));
		return 1;
	}
	printf("imported %u users", im->added + im->changed);
	if (im->changed)
		printf(" (%u new, %u with a changed password)", im->added, im->changed);
	if (im->bad)
		printf(", skipped %u bad line%s", im->bad, im->bad == 1 ? "" : "s");
	printf("\n");
	return 0;
}

static int run(struct store *st, const struct config *cfg, const char *cmd, const char *arg, const char *password,
	       const bool *opt)
{
	struct str user, domain, realm = str_from_cstr(cfg->router.realm);
	char pw[PASSWORD_MAX], md5[AUTH_HEX_MAX], sha256[AUTH_HEX_MAX];
	int err;

	if (!strcmp(cmd, "list")) {
		err = store_user_list(st, list_row, NULL);
		return err ? fail(st, err) : 0;
	}
	if (!strcmp(cmd, "import")) {
		struct import im = { .file = arg, .realm = realm, .update = opt[0], .skip_bad = opt[1] };
		int rc = import(st, &im);
		seen_free(&im);
		return rc;
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
	if (strlen(password) > IMPORT_PASSWORD_MAX) {
		fprintf(stderr, "parley: password too long\n");
		return 2;
	}
	hash_password(user, domain, realm, str_from_cstr(password), md5, sha256);
	if (!strcmp(cmd, "add"))
		err = store_user_add(st, user, domain, md5, sha256);
	else
		err = store_user_passwd(st, user, domain, md5, sha256);
	if (err)
		return fail(st, err);
	printf("%s %s\n", !strcmp(cmd, "add") ? "added" : "changed the password of", arg);
	return 0;
}

int cli_user(int argc, char **argv)
{
	static const char *const flags[] = { "password" };
	static const char *const bools[] = { "update", "skip-bad" };
	const char *vals[1] = { NULL };
	bool opt[2] = { false, false };
	struct cfg_extra extra = { .flags = flags, .val = vals, .nflags = 1, .bools = bools, .bval = opt, .nbools = 2 };
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
	else if (!strcmp(cmd, "add") || !strcmp(cmd, "del") || !strcmp(cmd, "passwd") || !strcmp(cmd, "import"))
		want = 2;
	else
		return usage();
	if (npos > want) {
		fprintf(stderr, "parley: user %s: unexpected argument '%s'\n", cmd, pos[want]);
		return 2;
	}
	if (npos < want) {
		fprintf(stderr, "parley: user %s: expected %s\n", cmd, !strcmp(cmd, "import") ? "FILE" : "USER@DOMAIN");
		return 2;
	}
	if (vals[0] && strcmp(cmd, "add") && strcmp(cmd, "passwd")) {
		fprintf(stderr, "parley: --password: only for user add and user passwd\n");
		return 2;
	}
	if ((opt[0] || opt[1]) && strcmp(cmd, "import")) {
		fprintf(stderr, "parley: --%s: only for user import\n", opt[0] ? "update" : "skip-bad");
		return 2;
	}

	sc.path = cfg.server.db;
	sc.readonly = !strcmp(cmd, "list");
	rc = store_open(&st, &sc);
	if (rc) {
		fprintf(stderr, "parley: %s\n", store_errmsg(st));
		store_close(st);
		return 1;
	}
	rc = run(st, &cfg, cmd, npos > 1 ? pos[1] : NULL, vals[0], opt);
	store_close(st);
	return rc;
}
