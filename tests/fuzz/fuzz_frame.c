/* fuzz_frame.c: libFuzzer target for the stream framer (tp_frame): bounds, progress, pieces agree with whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport.h"

/* A small limit reaches the size checks with small inputs too. */
#define MAX 512

/* Frames the whole of buf as a connection would: each message, ping and skip in order.
 * Writes a trace of outcomes and lengths to out; returns its length. chunk 0 gives the
 * bytes all at once, otherwise chunk bytes more per call. */
static size_t run(const uint8_t *data, size_t size, size_t chunk, size_t *out, size_t cap)
{
	struct tp_frame_state st = { 0 };
	size_t pos = 0, avail = chunk ? 0 : size, n = 0;
	for (;;) {
		if (chunk && avail < size)
			avail = avail + chunk < size ? avail + chunk : size;
		size_t skip, len;
		enum tp_frame f = tp_frame((const char *)data + pos, avail - pos, MAX, &st, &skip, &len);
		if (skip > avail - pos || len > avail - pos - skip)
			abort();
		if (f == TP_FRAME_MORE) {
			if (avail - pos - skip >= MAX)
				abort(); /* MAX bytes must be decided on */
			pos += skip;
			if (avail == size)
				break;
			continue;
		}
		if (f == TP_FRAME_MSG && (len == 0 || len > MAX))
			abort();
		if (f == TP_FRAME_PING && (skip < 4 || len))
			abort();
		if (n + 2 <= cap) {
			out[n++] = (size_t)f;
			out[n++] = len;
		}
		if (f != TP_FRAME_MSG && f != TP_FRAME_PING)
			break; /* the stream ends here */
		pos += skip + len;
		memset(&st, 0, sizeof st);
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static size_t a[4096], b[4096];
	/* The framer reads exactly the bytes given: an exact-size copy lets ASan see any
	 * overread. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	size_t na = run(copy, size, 0, a, 4096);
	size_t chunk = size ? (size_t)copy[0] % 7 + 1 : 1;
	size_t nb = run(copy, size, chunk, b, 4096);
	/* Messages and pings come out the same whatever the pieces; only the last outcome
	 * may differ (an error seen earlier or later does not change what came before it,
	 * but a whole run can end on either). */
	size_t k = 0;
	while (k + 2 <= na && k + 2 <= nb && a[k] == b[k] && a[k + 1] == b[k + 1])
		k += 2;
	for (size_t i = k; i + 2 <= na && i + 2 <= nb; i += 2)
		if (a[i] == TP_FRAME_MSG && b[i] == TP_FRAME_MSG)
			abort();
	free(copy);
	return 0;
}
