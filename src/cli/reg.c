/* reg.c: `parley reg list`: the current bindings, as the running server last flushed them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/config.h"
#include "store/store.h"

#define NCOL 5

/* Rows are gathered first so that the columns can be as wide as their widest cell. */
struct table {
	char *(*cell)[NCOL];
	size_t n, cap;
	size_t width[NCOL];
	int64_t now;
	bool oom;
};

static char *dupv(struct str s)
{
	char *p = malloc(s.l + 1);

	if (p) {
		memcpy(p, s.p, s.l);
		p[s.l] = '\0';
	}
	return p;
}

static int add_row(const struct store_binding *b, void *arg)
{
	struct table *t = arg;
	char src[128], exp[32];
	char **row;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		void *p = realloc(t->cell, cap * sizeof(*t->cell));
		if (!p)
			goto oom;
		t->cell = p;
		t->cap = cap;
	}
	/* An IPv6 source goes in brackets so that its port stays readable. */
	snprintf(src, sizeof(src), memchr(b->src_addr.p, ':', b->src_addr.l) ? "[%.*s]:%u" : "%.*s:%u",
		 STR_FMT(b->src_addr), b->src_port);
	snprintf(exp, sizeof(exp), "%lld", (long long)(b->expires_at - t->now));
	row = t->cell[t->n];
	row[0] = dupv(b->aor);
	row[1] = dupv(b->contact);
	row[2] = dupv(str_from_cstr(src));
	row[3] = dupv(b->transport);
	row[4] = dupv(str_from_cstr(exp));
	t->n++;
	for (int i = 0; i < NCOL; i++) {
		if (!row[i])
			goto oom;
		if (strlen(row[i]) > t->width[i])
			t->width[i] = strlen(row[i]);
	}
	return 0;
oom:
	t->oom = true;
	return -ENOMEM;
}

static void print_row(const struct table *t, const char *const *row)
{
	for (int i = 0; i < NCOL; i++)
		printf(i < NCOL - 1 ? "%-*s  " : "%*s\n", (int)t->width[i], row[i]);
}

int cli_reg(int argc, char **argv)
{
	static const char *const head[NCOL] = { "AOR", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES" };
	struct config cfg;
	char *pos[2];
	int npos = 0, rc;
	struct store *st = NULL;
	struct store_conf sc = { 0 };
	struct table t = { .now = (int64_t)time(NULL) };

	rc = config_parse_args(&cfg, argc, argv, 1, false, NULL, pos, &npos, 2);
	if (rc)
		return rc;
	if (npos != 1 || strcmp(pos[0], "list") != 0) {
		fprintf(stderr, "parley: reg: expected list\n");
		cli_usage(stderr, "reg");
		return 2;
	}
	/* Read-only, so that looking never takes the lock the server writes under; the
	 * busy timeout covers the moment a flush holds it. */
	sc.path = cfg.db;
	sc.readonly = true;
	rc = store_open(&st, &sc);
	if (!rc)
		rc = store_bindings_load(st, t.now, add_row, &t);
	if (rc) {
		fprintf(stderr, "parley: %s\n", t.oom ? "out of memory" : store_errmsg(st));
		rc = 1;
	} else {
		for (int i = 0; i < NCOL; i++)
			if (strlen(head[i]) > t.width[i])
				t.width[i] = strlen(head[i]);
		print_row(&t, head);
		for (size_t r = 0; r < t.n; r++)
			print_row(&t, (const char *const *)t.cell[r]);
	}
	for (size_t r = 0; r < t.n; r++)
		for (int i = 0; i < NCOL; i++)
			free(t.cell[r][i]);
	free(t.cell);
	store_close(st);
	return rc;
}
