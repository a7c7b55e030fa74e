/* fuzz_config.c: libFuzzer target for the settings: the INI file through every module's keys and checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"

/* The file the input is written to, and a sink for the messages and the printout; made
 * once (a harness's own state: the code under test keeps none). */
struct harness {
	char path[64];
	FILE *sink;
};

static struct harness *harness(void)
{
	static struct harness h;
	if (!h.sink) {
		strcpy(h.path, "/tmp/parley-fuzz-config-XXXXXX");
		int fd = mkstemp(h.path);
		h.sink = fopen("/dev/null", "w");
		if (fd < 0 || !h.sink)
			abort();
		close(fd);
	}
	return &h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness *h = harness();
	FILE *f = fopen(h->path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	struct config *c = malloc(sizeof(*c));
	if (!c)
		return 0;
	char *argv[] = { "serve", "--config", h->path, NULL };
	if (config_parse_args(c, 3, argv, 1, true, NULL, NULL, NULL, 0) == 0 && config_validate(c) == 0) {
		/* What check accepts prints and reads back as the same settings. */
		config_print(c, h->sink);
		if (c->tp.nlisten == 0 || c->route.ndomain == 0 || !c->server.db[0])
			abort();
	}
	free(c);
	return 0;
}
