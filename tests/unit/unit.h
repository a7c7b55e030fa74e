/* unit.h: a minimal unit-test registry and assertions shared by the tests/unit programs. */
#ifndef PARLEY_UNIT_H
#define PARLEY_UNIT_H

#include <stdio.h>
#include <string.h>

#include "core/str.h"

struct unit_case {
	const char *name;
	void (*fn)(void);
};

/* Counts failed checks of the running case; a case fails when this grows. */
extern int unit_failures;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			unit_failures++;                                                         \
		}                                                                                \
	} while (0)

#define CHECK_INT(a, b)                                                                                        \
	do {                                                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);                                            \
		if (a_ != b_) {                                                                                \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_); \
			unit_failures++;                                                                       \
		}                                                                                              \
	} while (0)

/* Compares a view with a C string. */
#define CHECK_STR(view, cstr)                                                                                  \
	do {                                                                                                   \
		struct str v_ = (view);                                                                        \
		if (!str_eq(v_, str_from_cstr(cstr))) {                                                        \
			fprintf(stderr, "%s:%d: %s == \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, #view, \
				STR_FMT(v_), cstr);                                                            \
			unit_failures++;                                                                       \
		}                                                                                              \
	} while (0)

/* Runs every case of the table (or only those named on the command line) and prints a
 * closing line "N passed, N failed"; returns the process exit code. */
int unit_run(const struct unit_case *cases, size_t n, int argc, char **argv);

#define UNIT_MAIN(table)                                                              \
	int main(int argc, char **argv)                                               \
	{                                                                             \
		return unit_run(table, sizeof(table) / sizeof(table[0]), argc, argv); \
	}

#endif
