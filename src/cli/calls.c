/* calls.c: `parley calls [--limit N]`: the call records, newest first, as a table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "server/config.h"
#include "store/store.h"

#define NCOL 8
#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000000

/* Local wall-clock time of ms since the epoch: the date as well when full, "-" for 0. */
static void fmt_time(char *out, size_t cap, uint64_t ms, bool full)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == 0 || !localtime_r(&s, &tm)) {
		snprintf(out, cap, "-");
		return;
	}
	strftime(out, cap, full ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
}

static void fmt_duration(char *out, size_t cap, const struct store_call *c)
{
	uint64_t s = (c->duration_ms + 500) / 1000;

	if (c->answer_ms == 0)
		snprintf(out, cap, "-");
	else if (s >= 3600)
		snprintf(out, cap, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
	else
		snprintf(out, cap, "%llu:%02llu", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
}

static void fmt_result(char *out, size_t cap, const struct store_call *c)
{
	if (c->reason.l && c->status)
		snprintf(out, cap, "%.*s (%u)", STR_FMT(c->reason), c->status);
	else if (c->reason.l)
		snprintf(out, cap, "%.*s", STR_FMT(c->reason));
	else if (c->status)
		snprintf(out, cap, "%u", c->status);
	else
		snprintf(out, cap, "in progress");
}

static int add_row(const struct store_call *c, void *arg)
{
	char buf[NCOL][128];
	snprintf(buf[0], sizeof(buf[0]), "%.*s", STR_FMT(c->caller));
	snprintf(buf[1], sizeof(buf[1]), "%.*s", STR_FMT(c->callee));
	fmt_time(buf[2], sizeof(buf[2]), c->start_ms, true);
	fmt_time(buf[3], sizeof(buf[3]), c->answer_ms, false);
	fmt_time(buf[4], sizeof(buf[4]), c->end_ms, false);
	fmt_result(buf[5], sizeof(buf[5]), c);
	fmt_duration(buf[6], sizeof(buf[6]), c);
	/* How the audio went: "direct", or the relay with its packet counts and loss, so that
	 * one-way audio shows at a glance. */
	snprintf(buf[7], sizeof(buf[7]), "%.*s", c->media.l ? (int)c->media.l : 1, c->media.l ? c->media.p : "-");
	const char *row[NCOL];
	for (int i = 0; i < NCOL; i++)
		row[i] = buf[i];
	return cli_table_add(arg, row);
}

int cli_calls(int argc, char **argv)
{
	static const char *const head[NCOL] = { "CALLER", "CALLEE", "START",    "ANSWER",
						"END",    "RESULT", "DURATION", "MEDIA" };
	static const char *const flags[] = { "limit" };
	const char *vals[1] = { NULL };
	struct cfg_extra extra = { .flags = flags, .val = vals, .nflags = 1 };
	struct config cfg;
	int rc;
	uint64_t limit = LIMIT_DEFAULT;
	struct store *st = NULL;
	struct store_conf sc = { 0 };
	struct cli_table t;
	cli_table_init(&t, NCOL);

	rc = config_parse_args(&cfg, argc, argv, 1, false, &extra, NULL, NULL, 0);
	if (rc)
		return rc;
	if (vals[0] && (!str_to_u64(str_from_cstr(vals[0]), LIMIT_MAX, &limit) || limit == 0)) {
		fprintf(stderr, "parley: --limit: expected a number from 1 to %d, got '%s'\n", LIMIT_MAX, vals[0]);
		return 2;
	}
	sc.path = cfg.server.db;
	sc.readonly = true;
	rc = store_open(&st, &sc);
	if (!rc)
		rc = store_calls_list(st, (unsigned)limit, add_row, &t);
	if (rc) {
		fprintf(stderr, "parley: %s\n", t.oom ? "out of memory" : store_errmsg(st));
		rc = 1;
	} else {
		cli_table_print(&t, head);
	}
	cli_table_free(&t);
	store_close(st);
	return rc;
}
