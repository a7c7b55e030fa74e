/* capbench.c: nanoseconds per capture_add for calls interleaved as on a busy server (the capture ring's microbenchmark). */
/*
 * Build against the release library (make build) and run:
 *   cc -O2 -std=gnu17 -Isrc -o /tmp/capbench bench/capbench.c build/libparleylib.a \
 *      $(pkg-config --libs sqlite3 libssl libcrypto libsodium inih libcares libsystemd \
 *      libmicrohttpd jansson) -lwslay -lm -lpthread
 *   /tmp/capbench [RING 8M] [CALLS_AT_ONCE 200] [MESSAGES 2000000]
 * Each step picks one of the calls at random and captures its next message (an INVITE of
 * about 600 bytes with its SDP); a call ends after 16 messages and a new Call-ID takes its
 * place. The first quarter fills the ring and is not timed. "0" as RING times the loop
 * alone (capture off).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/capture.h"

#define MSG_MAX 700
#define MSGS_PER_CALL 16

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

struct call {
	char text[MSG_MAX];
	size_t len, cid_off;
	unsigned step;
};

/* The call's message with Call-ID number serial; the Call-ID is 10 digits at cid_off. */
static void call_start(struct call *k, unsigned long serial)
{
	int n = snprintf(k->text, sizeof k->text,
			 "INVITE sip:u00001@bench.test SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-0\r\n"
			 "From: <sip:u00002@bench.test>;tag=12345SIPpTag001\r\n"
			 "To: <sip:u00001@bench.test>\r\n"
			 "Call-ID: ");
	k->cid_off = (size_t)n;
	n += snprintf(k->text + n, sizeof k->text - (size_t)n,
		      "%010lu-12345@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:sipp@127.0.0.1:5061>\r\n"
		      "Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 129\r\n\r\n"
		      "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
		      "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
		      serial);
	k->len = (size_t)n;
	k->step = 0;
}

int main(int argc, char **argv)
{
	const char *mem = argc > 1 ? argv[1] : "8M";
	unsigned conc = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 200;
	unsigned long total = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000000;
	if (!conc || total < 4) {
		fprintf(stderr, "usage: capbench [RING] [CALLS_AT_ONCE > 0] [MESSAGES >= 4]\n");
		return 2;
	}
	struct capture_cfg cfg;
	capture_cfg_defaults(&cfg);
	snprintf(cfg.memory, sizeof cfg.memory, "%s", mem);
	struct capture *c = NULL;
	char err[200];
	if (capture_new(&c, &cfg, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "capbench: %s\n", err);
		return 2;
	}
	struct call *calls = malloc(conc * sizeof *calls);
	if (!calls) {
		fprintf(stderr, "capbench: out of memory\n");
		capture_free(c);
		return 1;
	}
	unsigned long serial = 0;
	for (unsigned i = 0; i < conc; i++)
		call_start(&calls[i], serial++);
	struct capture_msg m = { .wall_ms = 1 };
	uint32_t rnd = 1;
	double t0 = 0;
	for (unsigned long i = 0; i < total; i++) {
		if (i == total / 4)
			t0 = now_ns();
		rnd = rnd * 1103515245u + 12345u;
		struct call *k = &calls[(rnd >> 8) % conc];
		m.text = (struct str){ k->text, k->len };
		m.call_id = (struct str){ k->text + k->cid_off, 31 };
		m.out = k->step & 1;
		capture_add(c, &m);
		if (++k->step == MSGS_PER_CALL)
			call_start(k, serial++);
	}
	double ns = (now_ns() - t0) / (double)(total - total / 4);
	const struct capture_stats *st = capture_stats(c);
	printf("ring %s, %u calls at once: %.1f ns per message (kept %llu, calls in the ring %llu, evicted %llu)\n",
	       mem, conc, ns, (unsigned long long)st->kept, (unsigned long long)st->calls,
	       (unsigned long long)st->calls_evicted);
	free(calls);
	capture_free(c);
	return 0;
}
