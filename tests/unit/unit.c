/* unit.c: the runner behind unit.h. */
#include "unit.h"

#include <stdbool.h>

int unit_failures;

int unit_run(const struct unit_case *cases, size_t n, int argc, char **argv)
{
	int passed = 0, failed = 0;
	/* A name that matches no case is a mistake, not an empty pass. */
	for (int a = 1; a < argc; a++) {
		bool known = false;
		for (size_t i = 0; i < n; i++)
			known |= strcmp(argv[a], cases[i].name) == 0;
		if (!known) {
			fprintf(stderr, "no case named %s\n", argv[a]);
			return 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (argc > 1) {
			int want = 0;
			for (int a = 1; a < argc; a++)
				want |= strcmp(argv[a], cases[i].name) == 0;
			if (!want)
				continue;
		}
		int before = unit_failures;
		cases[i].fn();
		if (unit_failures == before) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "FAIL %s\n", cases[i].name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
