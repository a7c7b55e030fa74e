/* test_location.c: unit tests of the in-memory location table. */
#include "unit.h"

#include <stdio.h>

#include "location/location.h"

static struct loc_contact contact(const char *uri, uint32_t exp)
{
	struct loc_contact c = { 0 };
	c.field[LOC_URI] = str_from_cstr(uri);
	c.field[LOC_CALLID] = STR("call-1");
	c.expires_at = exp;
	c.cseq = 1;
	c.q = 1000;
	return c;
}

static void t_put_find_del(void)
{
	struct location *l;
	CHECK_INT(loc_new(&l), 0);
	struct loc_contact c1 = contact("sip:a@1.2.3.4", 100), c2 = contact("sip:a@5.6.7.8", 200);
	CHECK_INT(loc_put(l, STR("alice@a.test"), &c1, NULL), 0);
	CHECK_INT(loc_put(l, STR("alice@a.test"), &c2, NULL), 0);
	c1.cseq = 2;
	CHECK_INT(loc_put(l, STR("alice@a.test"), &c1, NULL), 0); /* replaces, keeps order */
	struct loc_aor *a = loc_find(l, STR("alice@a.test"));
	CHECK(a != NULL);
	CHECK_INT(a->count, 2);
	CHECK_STR(loc_b_field(a->first, LOC_URI), "sip:a@1.2.3.4");
	CHECK_INT(a->first->cseq, 2);
	CHECK_STR(loc_b_field(a->first, LOC_CALLID), "call-1");
	CHECK(loc_find(l, STR("bob@a.test")) == NULL);
	loc_del(l, loc_find_contact(a, STR("sip:a@1.2.3.4")));
	a = loc_find(l, STR("alice@a.test"));
	CHECK_INT(a->count, 1);
	loc_del(l, a->first);
	CHECK(loc_find(l, STR("alice@a.test")) == NULL);
	CHECK_INT(loc_binding_count(l), 0);
	loc_free(l);
}

static unsigned expired_seen;
static void on_expired(const struct loc_binding *b, void *arg)
{
	(void)b;
	(void)arg;
	expired_seen++;
}

static void t_many_and_sweep(void)
{
	struct location *l;
	CHECK_INT(loc_new(&l), 0);
	char aor[64], uri[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(aor, sizeof aor, "u%05d@bench.test", i);
		snprintf(uri, sizeof uri, "sip:u%05d@127.0.0.1:5090", i);
		struct loc_contact c = contact(uri, (uint32_t)(i % 2 ? 50 : 500));
		CHECK_INT(loc_put(l, str_from_cstr(aor), &c, NULL), 0);
	}
	CHECK_INT(loc_aor_count(l), 20000);
	CHECK(loc_find(l, STR("u12345@bench.test")) != NULL);
	expired_seen = 0;
	unsigned removed = 0;
	for (int k = 0; k < 100; k++)
		removed += loc_sweep(l, 100, 1000, on_expired, NULL);
	CHECK_INT(removed, 10000);
	CHECK_INT(expired_seen, 10000);
	CHECK_INT(loc_aor_count(l), 10000);
	CHECK(loc_find(l, STR("u12345@bench.test")) == NULL);
	CHECK(loc_find(l, STR("u12344@bench.test")) != NULL);
	/* re-adding after tombstones still works */
	struct loc_contact c = contact("sip:x@h", 1000);
	CHECK_INT(loc_put(l, STR("u12345@bench.test"), &c, NULL), 0);
	CHECK(loc_find(l, STR("u12345@bench.test")) != NULL);
	loc_free(l);
}

static const struct unit_case cases[] = {
	{ "put_find_del", t_put_find_del },
	{ "many_and_sweep", t_many_and_sweep },
};
UNIT_MAIN(cases)
