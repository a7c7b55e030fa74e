/* fuzz_ws_upgrade.c: libFuzzer target for the WebSocket upgrade reader (tp__ws_parse): bounds, views, pieces agree with whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/tp_int.h"
#include "transport/transport.h"

/* A view must lie inside the request it was read from. */
static void inside(struct str v, const char *buf, size_t len)
{
	if (v.l && (v.p < buf || v.p + v.l > buf + len))
		abort();
}

/* Reads buf as a connection would: chunk bytes more per call (0: all at once). Returns
 * the outcome; *r is the last result. */
static enum tp_ws_parse run(const char *buf, size_t size, size_t chunk, struct tp_ws_req *r)
{
	size_t scan = 0, avail = chunk ? 0 : size;
	for (;;) {
		if (chunk)
			avail = avail + chunk < size ? avail + chunk : size;
		enum tp_ws_parse p = tp__ws_parse(buf, avail, &scan, r);
		if (p == TP_WS_MORE) {
			if (avail >= TP_WS_REQ_MAX || scan > avail)
				abort(); /* TP_WS_REQ_MAX bytes must be decided on */
			if (avail == size)
				return p;
			continue;
		}
		if (r->len == 0 || r->len > avail || (r->status && !r->why) ||
		    (r->status && r->status != 400 && r->status != 426))
			abort();
		inside(r->path, buf, r->len);
		inside(r->host, buf, r->len);
		inside(r->origin, buf, r->len);
		inside(r->key, buf, r->len);
		if (r->status == 0) {
			char acc[29];
			if (tp__ws_accept_key(r->key, acc) != 0 || strlen(acc) != 28)
				abort();
		}
		return p;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy lets ASan see any overread. */
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	struct tp_ws_req a, b;
	enum tp_ws_parse pa = run(copy, size, 0, &a);
	size_t chunk = size ? (size_t)(unsigned char)copy[0] % 13 + 1 : 1;
	enum tp_ws_parse pb = run(copy, size, chunk, &b);
	/* Where the request ends and what is decided do not depend on how it arrived, as long
	 * as it ends inside the bytes (an early refusal for size is the same in both). */
	if (pa != pb || (pa == TP_WS_DONE && (a.len != b.len || a.status != b.status)))
		abort();
	free(copy);
	return 0;
}
