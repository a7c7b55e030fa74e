/* capture_int.h: the capture module's private parts: the capture struct and the HEP encoder. */
#ifndef PARLEY_CAPTURE_INT_H
#define PARLEY_CAPTURE_INT_H

#include "capture/capture.h"
#include "core/khash.h"

struct capture_listener {
	void (*fn)(const struct capture_msg *m, void *arg);
	void *arg;
	bool used;
};

struct capture_call; /* capture.c */

struct capture {
	struct log *lg;
	/* the ring: records one after the other in arena[0..size), oldest at tail */
	unsigned char *arena;
	uint32_t size;           /* bytes of arena, a multiple of 8; 0: no ring */
	uint32_t head;           /* where the next record goes */
	uint32_t tail;           /* the oldest record */
	uint32_t used;           /* bytes between tail and head, dead records and padding included */
	uint32_t per_call_bytes; /* one call keeps at most this much */
	/* calls: slots in a fixed array, found through buckets by Call-ID */
	struct capture_call *calls;
	uint32_t ncalls;    /* slots */
	uint32_t free_call; /* first free slot (a list through next) */
	uint32_t *buckets;
	uint32_t nbuckets;  /* a power of two */
	uint32_t last_call; /* the call of the last message kept, or NONE: the next message is
			     * often of the same call (a request and what handling it sent) */
	struct khash key;
	/* listeners */
	struct capture_listener *lis;
	unsigned nlis, lis_cap;
	/* HEP */
	int hep_fd; /* -1: off */
	uint32_t hep_id;
	struct log_limit hep_lim;
	struct capture_stats st;
};

/* "udp:HOST:PORT" (IPv6 in brackets, numeric hosts only) into a; 0 or -EINVAL. */
int capture__hep_target(const char *s, struct tp_addr *a);
/* Opens c->hep_fd towards target; 0, or -errno with the reason in err. */
int capture__hep_open(struct capture *c, const char *target, char *err, size_t errlen);
/* Sends m as one HEP v3 packet on c->hep_fd; counts it. */
void capture__hep_send(struct capture *c, const struct capture_msg *m);
/* Writes the HEP v3 packet of m (agent id) into out (cap bytes); returns its length, or 0
 * when it does not fit. */
size_t capture__hep_encode(const struct capture_msg *m, uint32_t agent, unsigned char *out, size_t cap);

#endif
