/* reg.c: `parley reg list`: the current bindings, as the running server last flushed them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "server/config.h"
#include "store/store.h"

/* The first five columns are read by scripts: new ones go after them. */
#define NCOL 8

struct reg_rows {
	struct cli_table tab;
	int64_t now;
};

static int add_row(const struct store_binding *b, void *arg)
{
	struct reg_rows *r = arg;
	char aor[256], contact[512], src[128], transport[16], exp[32], conn[24] = "-", inst[256] = "-", regid[16] = "-";
	/* An IPv6 source goes in brackets so that its port stays readable. */
	snprintf(src, sizeof(src), memchr(b->src_addr.p, ':', b->src_addr.l) ? "[%.*s]:%u" : "%.*s:%u",
		 STR_FMT(b->src_addr), b->src_port);
	snprintf(exp, sizeof(exp), "%lld", (long long)(b->expires_at - r->now));
	/* The connection as the server's debug log names it ("connection 1f ..."); a stream
	 * binding without one was loaded after a restart and waits for its phone. */
	if (b->conn_id)
		snprintf(conn, sizeof conn, "%llx", (unsigned long long)b->conn_id);
	else if (!str_caseeq_cstr(b->transport, "udp"))
		snprintf(conn, sizeof conn, "none");
	if (b->instance.l)
		str_to_cbuf(b->instance, inst, sizeof inst);
	if (b->reg_id)
		snprintf(regid, sizeof regid, "%u", b->reg_id);
	const char *row[NCOL] = { str_to_cbuf(b->aor, aor, sizeof aor),
				  str_to_cbuf(b->contact, contact, sizeof contact),
				  src,
				  str_to_cbuf(b->transport, transport, sizeof transport),
				  exp,
				  conn,
				  inst,
				  regid };
	return cli_table_add(&r->tab, row);
}

int cli_reg(int argc, char **argv)
{
	static const char *const head[NCOL] = { "AOR",     "CONTACT",    "SOURCE",   "TRANSPORT",
						"EXPIRES", "CONNECTION", "INSTANCE", "REG-ID" };
	struct config cfg;
	char *pos[2];
	int npos = 0, rc;
	struct store *st = NULL;
	struct store_conf sc = { 0 };
	struct reg_rows t = { .now = (int64_t)time(NULL) };
	cli_table_init(&t.tab, NCOL);

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
	sc.path = cfg.server.db;
	sc.readonly = true;
	rc = store_open(&st, &sc);
	if (!rc)
		rc = store_bindings_load(st, t.now, add_row, &t);
	if (rc) {
		fprintf(stderr, "parley: %s\n", t.tab.oom ? "out of memory" : store_errmsg(st));
		rc = 1;
	} else {
		cli_table_print(&t.tab, head);
	}
	cli_table_free(&t.tab);
	store_close(st);
	return rc;
}
