/* ban.c: `parley ban list` and `parley ban del SOURCE`: the sources banned for failed authentication. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "server/config.h"
#include "store/store.h"

#define NCOL 4

struct ban_rows {
	struct cli_table tab;
	int64_t now;
};

/* Time left as a person reads it: "45s", "14m 05s", "2h 03m", "3d 04h". */
static void fmt_remaining(char *out, size_t cap, int64_t s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, cap, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(out, cap, "%lldm %02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(out, cap, "%lldh %02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
	else
		snprintf(out, cap, "%lldd %02lldh", (long long)(s / 86400), (long long)(s / 3600 % 24));
}

static int add_row(const struct store_ban *b, void *arg)
{
	struct ban_rows *r = arg;
	char source[80], until[32], left[32], reason[256];
	time_t t = (time_t)b->until;
	struct tm tm;

	if (localtime_r(&t, &tm))
		strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S", &tm);
	else
		snprintf(until, sizeof(until), "%lld", (long long)b->until);
	fmt_remaining(left, sizeof(left), b->until - r->now);
	const char *row[NCOL] = { str_to_cbuf(b->source, source, sizeof source), until, left,
				  b->reason.l ? str_to_cbuf(b->reason, reason, sizeof reason) : "-" };
	return cli_table_add(&r->tab, row);
}

static int ban_list(const struct config *cfg)
{
	static const char *const head[NCOL] = { "SOURCE", "UNTIL", "REMAINING", "REASON" };
	struct store *st = NULL;
	struct store_conf sc = { .path = cfg->server.db, .readonly = true };
	struct ban_rows r = { .now = (int64_t)time(NULL) };
	int rc;

	cli_table_init(&r.tab, NCOL);
	r.tab.text_last = true; /* the reason is words, not a number */
	/* Read-only, like `parley reg list`: looking never takes the server's write lock. */
	rc = store_open(&st, &sc);
	if (!rc)
		rc = store_bans_list(st, r.now, add_row, &r);
	if (rc) {
		fprintf(stderr, "parley: %s\n", r.tab.oom ? "out of memory" : store_errmsg(st));
		rc = 1;
	} else {
		cli_table_print(&r.tab, head);
	}
	cli_table_free(&r.tab);
	store_close(st);
	return rc;
}

static int ban_del(const struct config *cfg, const char *source)
{
	struct store *st = NULL;
	struct store_conf sc = { .path = cfg->server.db };
	int rc;

	/* A running server re-reads the bans every few seconds, so this takes effect on it
	 * without a restart; the database's own locking covers the server's writes. */
	rc = store_open(&st, &sc);
	if (!rc)
		rc = store_ban_del(st, str_from_cstr(source));
	if (rc) {
		fprintf(stderr, "parley: %s\n", store_errmsg(st));
		rc = 1;
	} else {
		printf("removed the ban of %s\n", source);
	}
	store_close(st);
	return rc;
}

int cli_ban(int argc, char **argv)
{
	struct config cfg;
	char *pos[3];
	int npos = 0, rc;

	rc = config_parse_args(&cfg, argc, argv, 1, false, NULL, pos, &npos, 3);
	if (rc)
		return rc;
	if (npos == 1 && strcmp(pos[0], "list") == 0)
		return ban_list(&cfg);
	if (npos == 2 && strcmp(pos[0], "del") == 0)
		return ban_del(&cfg, pos[1]);
	fprintf(stderr, "parley: ban: expected list or del SOURCE\n");
	cli_usage(stderr, "ban");
	return 2;
}
