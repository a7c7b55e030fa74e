/* fuzz_stun.c: libFuzzer target for the STUN keepalive answerer (tp_stun_answer): bounds, and answers that are STUN. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy lets ASan see any overread. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	struct tp_addr from[2];
	tp_addr_from_host(&from[0], STR("192.0.2.7"), 40000);
	tp_addr_from_host(&from[1], STR("[2001:db8::7]"), 5060);
	for (int k = 0; k < 2; k++) {
		unsigned char out[TP_STUN_MAX_RESP];
		int n = tp_stun_answer(copy, size, &from[k], out, sizeof out);
		if (n > TP_STUN_MAX_RESP)
			abort();
		if (n == 0 && tp_stun_classify(copy, size) == TP_STUN_YES && (size < 20 || copy[1] != 0x11))
			abort(); /* only an indication goes unanswered */
		if (n > 0) {
			/* A response: same transaction, length field right, a multiple of 4. */
			if (n < 20 || n % 4 || memcmp(out + 4, copy + 4, 16) != 0 ||
			    (size_t)((out[2] << 8) | out[3]) != (size_t)n - 20 ||
			    (out[0] != 0x01 || (out[1] != 0x01 && out[1] != 0x11)))
				abort();
		}
	}
	free(copy);
	return 0;
}
