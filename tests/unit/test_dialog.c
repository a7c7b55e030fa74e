/* test_dialog.c: the dialog table: keys from either side, allowed next hops, caps, expiry. */
#include <errno.h>
#include <stdio.h>

#include "dialog/dialog.h"
#include "unit.h"

static struct tp_addr addr(const char *host, uint16_t port)
{
	struct tp_addr a;
	CHECK_INT(tp_addr_from_host(&a, str_from_cstr(host), port), 0);
	return a;
}

static void t_sides(void)
{
	struct dlg_table *t;
	struct dlg_conf c = { .max = 10 };
	CHECK_INT(dlg_table_new(&t, &c), 0);
	struct str cid = STR("call-1@x"), ctag = STR("caller"), etag = STR("callee");
	CHECK_INT(dlg_open(t, cid, ctag, 100), 0);
	CHECK_INT(dlg_open(t, cid, ctag, 100), 0); /* again: the same dialog */
	CHECK_INT(dlg_count(t), 1);
	struct tp_addr caller = addr("192.0.2.1", 5060), phone = addr("192.0.2.2", 5070);
	struct tp_addr evil = addr("203.0.113.9", 5060);
	dlg_learn(t, cid, ctag, DLG_CALLER, &caller);
	dlg_learn(t, cid, ctag, DLG_CALLEE, &phone);
	dlg_confirm(t, cid, ctag, 101);

	/* From the caller (its tag in From): only toward the callee's addresses. */
	struct dlg_ref r;
	CHECK(dlg_find(t, cid, ctag, etag, 102, &r));
	CHECK_INT(r.from, DLG_CALLER);
	CHECK(dlg_allows(t, &r, &phone));
	CHECK(!dlg_allows(t, &r, &caller));
	CHECK(!dlg_allows(t, &r, &evil));
	struct tp_addr other_port = addr("192.0.2.2", 5071);
	CHECK(!dlg_allows(t, &r, &other_port));

	/* From the callee (the caller's tag in To): only toward the caller. */
	CHECK(dlg_find(t, cid, etag, ctag, 103, &r));
	CHECK_INT(r.from, DLG_CALLEE);
	CHECK(dlg_allows(t, &r, &caller));
	CHECK(!dlg_allows(t, &r, &phone));

	/* Unknown Call-ID or tags: no dialog. */
	CHECK(!dlg_find(t, STR("call-2@x"), ctag, etag, 103, &r));
	CHECK(!dlg_find(t, cid, STR("x"), STR("y"), 103, &r));

	/* A side keeps its first address and the latest others. */
	for (int i = 0; i < 20; i++) {
		struct tp_addr a = addr("198.51.100.1", (uint16_t)(6000 + i));
		dlg_learn(t, cid, ctag, DLG_CALLEE, &a);
	}
	CHECK(dlg_find(t, cid, ctag, etag, 104, &r));
	CHECK(dlg_allows(t, &r, &phone));
	struct tp_addr last = addr("198.51.100.1", 6019), early = addr("198.51.100.1", 6000);
	CHECK(dlg_allows(t, &r, &last));
	CHECK(!dlg_allows(t, &r, &early));

	dlg_close(t, cid, ctag);
	CHECK_INT(dlg_count(t), 0);
	CHECK(!dlg_find(t, cid, ctag, etag, 105, &r));
	dlg_table_free(t);
}

static void t_cap_and_expiry(void)
{
	struct dlg_table *t;
	struct dlg_conf c = { .max = 100, .idle_s = 1000, .early_s = 10 };
	CHECK_INT(dlg_table_new(&t, &c), 0);
	char cid[32];
	for (int i = 0; i < 100; i++) {
		snprintf(cid, sizeof cid, "c%d", i);
		CHECK_INT(dlg_open(t, str_from_cstr(cid), STR("t"), 0), 0);
	}
	CHECK_INT(dlg_count(t), 100);
	CHECK_INT(dlg_open(t, STR("one-more"), STR("t"), 0), -ENOSPC);
	CHECK_INT(dlg_open(t, STR(""), STR("t"), 0), -EINVAL);
	/* Half are answered: they live while used; the rest go after early_s. */
	for (int i = 0; i < 50; i++) {
		snprintf(cid, sizeof cid, "c%d", i);
		dlg_confirm(t, str_from_cstr(cid), STR("t"), 5);
	}
	dlg_sweep(t, 11, 1000);
	CHECK_INT(dlg_count(t), 50);
	dlg_sweep(t, 1004, 1000);
	CHECK_INT(dlg_count(t), 50);
	struct dlg_ref r;
	CHECK(dlg_find(t, STR("c7"), STR("t"), STR("x"), 1004, &r)); /* used: lives on */
	dlg_sweep(t, 1006, 1000);
	CHECK_INT(dlg_count(t), 1);
	dlg_sweep(t, 1004 + 1000, 1000);
	CHECK_INT(dlg_count(t), 0);
	dlg_table_free(t);
}

static const struct unit_case cases[] = {
	{ "sides", t_sides },
	{ "cap_and_expiry", t_cap_and_expiry },
};
UNIT_MAIN(cases)
