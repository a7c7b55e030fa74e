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

static const struct unit_case cases[] = {
	{ "eq", t_eq },
	{ "num", t_num },
};
UNIT_MAIN(cases)
