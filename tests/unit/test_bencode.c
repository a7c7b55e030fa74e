/* test_bencode.c: unit tests of the bencode writer and the view-based reader of src/media. */
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/media_int.h"

static bool ok(const char *s)
{
	return bn_check(str_from_cstr(s), 8) == 0;
}

static void t_check_accepts(void)
{
	CHECK(ok("0:"));
	CHECK(ok("4:spam"));
	CHECK(ok("i0e"));
	CHECK(ok("i-42e"));
	CHECK(ok("i9223372036854775807e"));
	CHECK(ok("le"));
	CHECK(ok("de"));
	CHECK(ok("l4:spami3ee"));
	CHECK(ok("d3:cow3:moo4:spaml1:a1:bee"));
	CHECK(ok("d6:result4:ponge"));
	CHECK(ok("d1:zi1e1:ai2ee")); /* unsorted keys are fine */
}

static void t_check_rejects(void)
{
	const char *bad[] = { "",        "i",      "ie",    "i-e",      "i-0e",
			      "i03e",    "i1",     "5:abc", "05:abcde", "4spam",
			      "l",       "li1e",   "d1:ae", "di1ei2ee", "x",
			      "4:spamx", "i1ei2e", "d1:a",  "l-1:e",    "99999999999999999999999:a",
			      "e",       "le e" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ok(bad[i])) {
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
			unit_failures++;
		}
	}
	/* depth: 8 levels pass, 9 do not */
	CHECK(ok("llllllllee"
		 "eeeeee"));
	CHECK(!ok("lllllllllee"
		  "eeeeeee"));
	CHECK(bn_check(STR("llee"), 1) != 0);
	CHECK(bn_check(STR("le"), 1) == 0);
	CHECK(bn_check(STR("4:spam"), 0) == 0);
	CHECK(bn_check(STR_NULL, 8) != 0);
}

static void t_read(void)
{
	struct str d = STR("d6:result2:ok3:sdp5:v=0\r\n5:statsd7:packetsi12e5:bytesi-3ee4:listl1:ai7eee");
	CHECK_INT(bn_check(d, 8), 0);
	struct str v, s, k;
	int64_t i = 0;
	CHECK(bn_dict_get_str(d, "result", &s));
	CHECK_STR(s, "ok");
	CHECK(bn_dict_get_str(d, "sdp", &s));
	CHECK_STR(s, "v=0\r\n");
	CHECK(!bn_dict_get(d, "nosuch", &v));
	CHECK(!bn_dict_get_str(d, "stats", &s)); /* a dictionary, not a string */
	CHECK(bn_dict_get(d, "stats", &v));
	CHECK(bn_dict_get(v, "packets", &v) && bn_as_int(v, &i));
	CHECK_INT(i, 12);
	CHECK(bn_dict_get(d, "stats", &v) && bn_dict_get(v, "bytes", &v) && bn_as_int(v, &i));
	CHECK_INT(i, -3);

	struct str cur, item;
	CHECK(bn_dict_get(d, "list", &v));
	CHECK(bn_list_begin(v, &cur));
	CHECK(!bn_dict_begin(v, &cur) || true);
	CHECK(bn_list_begin(v, &cur));
	CHECK(bn_list_next(&cur, &item) && bn_as_str(item, &s));
	CHECK_STR(s, "a");
	CHECK(bn_list_next(&cur, &item) && bn_as_int(item, &i));
	CHECK_INT(i, 7);
	CHECK(!bn_list_next(&cur, &item));

	unsigned n = 0;
	CHECK(bn_dict_begin(d, &cur));
	while (bn_dict_next(&cur, &k, &v))
		n++;
	CHECK_INT(n, 4);
	CHECK(!bn_list_begin(d, &cur));
}

static void t_ints(void)
{
	int64_t i = 0;
	CHECK(bn_as_int(STR("i-9223372036854775808e"), &i) && i == INT64_MIN);
	CHECK(bn_as_int(STR("i9223372036854775807e"), &i) && i == INT64_MAX);
	CHECK(!bn_as_int(STR("i9223372036854775808e"), &i));
	CHECK(!bn_as_int(STR("i-9223372036854775809e"), &i));
	CHECK(!bn_as_int(STR("4:spam"), &i));
	CHECK(!bn_as_int(STR_NULL, &i));
	struct str s;
	CHECK(!bn_as_str(STR("i1e"), &s));
	CHECK(!bn_as_str(STR("5:spam"), &s)); /* shorter than it says */
}

/* Readers on values bn_check would refuse: false, never a read outside the view. */
static void t_read_unchecked(void)
{
	const char *junk[] = { "d", "d3:ab", "d1:a", "d1:ai1", "di1ei2ee", "dle", "d1:al", "lllll", "d1:a1:bx" };
	for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
		size_t l = strlen(junk[j]);
		char *p = malloc(l); /* exact size, so that ASan sees an overread */
		memcpy(p, junk[j], l);
		struct str v, cur, k, it;
		(void)bn_dict_get((struct str){ p, l }, "b", &v);
		if (bn_dict_begin((struct str){ p, l }, &cur))
			while (bn_dict_next(&cur, &k, &v))
				;
		if (bn_list_begin((struct str){ p, l }, &cur))
			while (bn_list_next(&cur, &it))
				;
		free(p);
	}
}

static void t_write(void)
{
	char buf[256];
	struct bn_out o;
	bn_init(&o, buf, sizeof(buf));
	bn_dict(&o);
	bn_kv_cstr(&o, "command", "offer");
	bn_kv_str(&o, "call-id", STR("abc"));
	bn_kv_int(&o, "n", -5);
	bn_key(&o, "flags");
	bn_list(&o);
	bn_cstr(&o, "trust-address");
	bn_int(&o, 0);
	bn_end(&o);
	bn_end(&o);
	CHECK(!o.overflow);
	CHECK_STR(bn_view(&o), "d7:command5:offer7:call-id3:abc1:ni-5e5:flagsl13:trust-addressi0eee");
	CHECK_INT(bn_check(bn_view(&o), 4), 0);

	/* Overflow is sticky and never writes past cap. */
	char small[12];
	memset(small, 'X', sizeof(small));
	bn_init(&o, small, 10);
	bn_dict(&o);
	bn_kv_cstr(&o, "command", "ping");
	bn_end(&o);
	CHECK(o.overflow);
	CHECK(o.len <= 10);
	CHECK(small[10] == 'X' && small[11] == 'X');
	bn_init(&o, small, 1);
	bn_dict(&o);
	CHECK(!o.overflow);
	bn_end(&o);
	CHECK(o.overflow);
	CHECK_INT(o.len, 1);
}

/* bn_walk's visitor for the tests: counts what it sees, and sums the integers. */
struct seen {
	unsigned n;
	int64_t sum;
};

static bool count(void *arg, const struct str *path, unsigned depth, struct str val)
{
	(void)path;
	(void)depth;
	struct seen *s = arg;
	int64_t x;
	s->n++;
	if (bn_as_int(val, &x))
		s->sum += x;
	return true;
}

/* Goes into every container but those reached by the key "skip". */
static bool not_skip(void *arg, const struct str *path, unsigned depth)
{
	(void)arg;
	return depth == 0 || !str_eq(path[depth - 1], STR("skip"));
}

static bool none(void *arg, const struct str *path, unsigned depth)
{
	(void)arg;
	(void)path;
	(void)depth;
	return false;
}

static void t_walk_some(void)
{
	struct seen a = { 0 }, b = { 0 };
	struct str d = STR("d1:ai1e4:skipd1:bi2e1:cl1:xi3eee1:dl4:skipi4ee1:ei5ee");
	CHECK(bn_walk(d, count, &a));
	CHECK_INT(a.n, 7);
	CHECK(a.sum == 15);
	/* "skip"'s dictionary is passed over; the list item after a "skip" string is not
	 * reached by that key */
	CHECK(bn_walk_some(d, not_skip, count, &b));
	CHECK_INT(b.n, 4);
	CHECK(b.sum == 10);
	b = (struct seen){ 0 };
	CHECK(bn_walk_some(d, none, count, &b));
	CHECK_INT(b.n, 0);
	/* What is passed over is checked as the walk checks it: the same answer on every
	 * input, valid or not, whatever is pruned. */
	const char *in[] = { "d4:skipd1:ai03eee",
			     "d4:skipd1:a5:abcee",
			     "d4:skipdi1ei2eee",
			     "d4:skipd1:aee",
			     "d4:skiplee1:a",
			     "d4:skiplxee",
			     "d4:skipd1:ai1eee",
			     "d4:skipd1:al1:bee",
			     "d4:skipl05:abcdeee",
			     "d4:skipd10:abcdefghijee",
			     "d4:skipd10:abcdefghij1:xee" };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct str v = str_from_cstr(in[i]);
		bool full = bn_walk(v, count, &a), some = bn_walk_some(v, not_skip, count, &b),
		     no = bn_walk_some(v, none, count, &b);
		if (full != some || full != no) {
			fprintf(stderr, "walks differ on '%s': %d %d %d\n", in[i], full, some, no);
			unit_failures++;
		}
	}
	/* the depth limit counts the levels passed over too */
	char deep[2 * BN_MAX_DEPTH + 16];
	size_t k = 0;
	for (unsigned j = 0; j < BN_MAX_DEPTH; j++)
		deep[k++] = 'l';
	for (unsigned j = 0; j < BN_MAX_DEPTH; j++)
		deep[k++] = 'e';
	struct str v = { deep, k };
	CHECK(bn_walk(v, count, &a));
	CHECK(bn_walk_some(v, none, count, &b));
	memmove(deep + 1, deep, k);
	deep[0] = 'l';
	deep[++k] = 'e';
	v = (struct str){ deep, ++k };
	CHECK(!bn_walk(v, count, &a));
	CHECK(!bn_walk_some(v, none, count, &b));
}

static const struct unit_case cases[] = {
	{ "t_check_accepts", t_check_accepts },
	{ "t_check_rejects", t_check_rejects },
	{ "t_read", t_read },
	{ "t_ints", t_ints },
	{ "t_read_unchecked", t_read_unchecked },
	{ "t_write", t_write },
	{ "t_walk_some", t_walk_some },
};
UNIT_MAIN(cases)
