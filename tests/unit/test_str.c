/* test_str.c: unit tests of the string views. */
#include "unit.h"

static void t_eq(void)
{
	CHECK(str_eq(STR("abc"), str_from_cstr("abc")));
	CHECK(!str_eq(STR("abc"), STR("abd")));
	CHECK(str_caseeq(STR("Via"), STR("vIA")));
	CHECK_STR(str_trim(STR(" \t x y \r\n")), "x y");
}

static void t_num(void)
{
	uint64_t v = 0;
	CHECK(str_to_u64(STR("4294967295"), UINT32_MAX, &v));
	CHECK_INT(v, 4294967295u);
	CHECK(!str_to_u64(STR("4294967296"), UINT32_MAX, &v));
	CHECK(!str_to_u64(STR(""), 10, &v));
	CHECK(!str_to_u64(STR("1a"), 100, &v));
}

/* Every length from 0 to 40 (the word loop, its overlapping last word, the halves below
 * eight bytes), with a difference at every position: a letter in the other case is equal,
 * a byte 0x20 away that is not a letter ('@' and '`', '[' and '{', 0xc1 and 0xe1) is not. */
static void t_caseeq(void)
{
	char a[48], b[48];
	for (size_t n = 0; n <= 40; n++) {
		for (size_t k = 0; k < n; k++)
			a[k] = b[k] = (char)('a' + k % 26);
		CHECK(str_caseeq((struct str){ a, n }, (struct str){ b, n }));
		for (size_t k = 0; k < n; k++) {
			b[k] = (char)(a[k] - 32);
			CHECK(str_caseeq((struct str){ a, n }, (struct str){ b, n }));
			static const char pairs[][2] = { { '@', '`' }, { '[', '{' }, { '\xc1', '\xe1' }, { '1', '2' } };
			for (size_t q = 0; q < 4; q++) {
				char sa = a[k], sb = b[k];
				a[k] = pairs[q][0];
				b[k] = pairs[q][1];
				if (str_caseeq((struct str){ a, n }, (struct str){ b, n })) {
					fprintf(stderr, "  n %zu k %zu pair %zu equal\n", n, k, q);
					unit_failures++;
				}
				a[k] = sa;
				b[k] = sb;
			}
			b[k] = a[k];
		}
		if (n)
			CHECK(!str_caseeq((struct str){ a, n }, (struct str){ b, n - 1 }));
	}
	CHECK(str_caseeq(STR("sip:ALICE@Example.COM"), STR("SIP:alice@example.com")));
	CHECK(str_has_prefix_case(STR("Digest realm"), STR("digest")));
}

static void t_num_limits(void)
{
	uint64_t v = 7;
	CHECK(!str_to_u64(STR("1"), 0, &v));
	CHECK(str_to_u64(STR("0"), 0, &v));
	CHECK_INT(v, 0);
	CHECK(!str_to_u64(STR("10"), 9, &v));
	CHECK(str_to_u64(STR("9999999999999999999"), UINT64_MAX, &v));
	CHECK(v == 9999999999999999999ULL);
	CHECK(str_to_u64(STR("18446744073709551615"), UINT64_MAX, &v));
	CHECK(v == UINT64_MAX);
	CHECK(!str_to_u64(STR("18446744073709551616"), UINT64_MAX, &v));
	CHECK(str_to_u64(STR("000000000000000000000042"), 255, &v));
	CHECK_INT(v, 42);
	CHECK(!str_to_u64(STR("256"), 255, &v));
	CHECK(!str_to_u64(STR("-1"), 255, &v));
	CHECK(!str_to_u64(STR(" 1"), 255, &v));
}

/* Joined views are cut to the buffer as snprintf would cut them; hex digits fill 16 places. */
static void t_join_hex(void)
{
	char b[8];
	const struct str p[3] = { STR("ab"), STR(" -> "), STR("cdef") };
	CHECK_INT(str_join(b, sizeof b, p, 3), 7);
	CHECK(strcmp(b, "ab -> c") == 0);
	CHECK_INT(str_join(b, 3, p, 3), 2);
	CHECK(strcmp(b, "ab") == 0);
	CHECK_INT(str_join(b, 1, p, 3), 0);
	CHECK(b[0] == '\0');
	b[0] = 'x';
	CHECK_INT(str_join(b, 0, p, 3), 0);
	CHECK(b[0] == 'x');
	CHECK_INT(str_join(b, sizeof b, p, 0), 0);
	CHECK(b[0] == '\0');
	char h[17] = { 0 };
	str_hex_u64(0x0123456789abcdefULL, h);
	CHECK(strcmp(h, "0123456789abcdef") == 0);
	str_hex_u64(0, h);
	CHECK(strcmp(h, "0000000000000000") == 0);
}

static const struct unit_case cases[] = {
	{ "eq", t_eq },
	{ "num", t_num },
	{ "caseeq", t_caseeq },
	{ "num_limits", t_num_limits },
	{ "join_hex", t_join_hex },
};
UNIT_MAIN(cases)
