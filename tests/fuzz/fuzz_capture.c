/* fuzz_capture.c: libFuzzer target for the capture ring's Call-ID scan and copies: views in bounds, rings consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"

/* Each input is split at NUL bytes into messages, captured in turn into a 4 KB ring (so
 * that they wrap and evict), each Call-ID found must lie inside its message, and every
 * message kept for a Call-ID must carry that Call-ID. */
static int check(const struct capture_msg *m, void *arg)
{
	const struct str *want = arg;
	if (!str_eq(m->call_id, *want) || m->call_id.p < m->text.p ||
	    m->call_id.p + m->call_id.l > m->text.p + m->text.l)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct capture_cfg cfg;
	capture_cfg_defaults(&cfg);
	strcpy(cfg.memory, "4K");
	struct capture *c = NULL;
	char err[200];
	if (capture_new(&c, &cfg, NULL, err, sizeof err) < 0)
		return 0;
	const char *p = (const char *)data, *end = p + size;
	while (p <= end) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
		/* A copy of exactly n bytes: ASan catches a read past the message. */
		char *msg = malloc(n ? n : 1);
		if (!msg)
			break;
		memcpy(msg, p, n);
		struct str text = { msg, n };
		struct str cid = capture_find_call_id(text);
		if (cid.l && (cid.p < msg || cid.p + cid.l > msg + n))
			abort();
		struct capture_msg m = { .text = text, .wall_ms = n };
		capture_add(c, &m);
		if (cid.l) {
			char key[256];
			size_t kl = cid.l < sizeof key ? cid.l : sizeof key;
			memcpy(key, cid.p, kl);
			struct str k = { key, kl };
			capture_each(c, k, check, &k);
		}
		free(msg);
		if (capture_stats(c)->ring_bytes > 4096)
			abort();
		p += n + 1;
	}
	capture_free(c);
	return 0;
}
