/* cdr.h: call records: one row per call attempt, and the answered calls kept until they end. */
#ifndef PARLEY_CDR_H
#define PARLEY_CDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "core/timer.h"
#include "store/store.h"

struct cdr;

/* What one call attempt is known by; the views only need to live during each call. */
struct cdr_attempt {
	struct str id; /* record key: unique per attempt */
	struct str call_id;
	struct str caller; /* "alice@a.test" */
	struct str callee;
	uint64_t start_ms; /* wall clock */
	struct str media;  /* "relay udp:127.0.0.1:2223", "direct", or empty */
};

/* Creates the table of answered calls. st may be NULL (records are then only counted);
 * st and w must outlive the table. Returns 0 or -ENOMEM. */
int cdr_new(struct cdr **cp, struct store *st, struct timer_wheel *w);
/* Frees every answered call still in the table. Ended calls still waiting for the relay's
 * figures have their end written first (without figures), so st must still be open. */
void cdr_free(struct cdr *c);

/* Writes the record of a call attempt that has just started (status 0). */
void cdr_start(struct cdr *c, const struct cdr_attempt *a);
/* Writes the final answer of an attempt. For a 2xx the call is kept by Call-ID until
 * cdr_end (or a day passes), so that its end can be written. */
void cdr_final(struct cdr *c, const struct cdr_attempt *a, unsigned status, const char *reason, uint64_t answer_ms);
/* The call with this Call-ID ended at end_ms (a BYE was answered): writes end and duration
 * and forgets it. A relayed call whose figures have not come yet is written once, when they
 * come (cdr_media), or without them after a few seconds or at cdr_free. Returns false when
 * no answered call has that Call-ID. On true, who (size n) holds "caller -> callee" and
 * *dur_ms the talk time. */
bool cdr_end(struct cdr *c, struct str call_id, uint64_t end_ms, char *who, size_t n, uint64_t *dur_ms /* OUT */);
/* The media relay's figures for the call with this Call-ID ("relay udp:... 512/508 pkts, 0.4%
 * loss"): kept for its end, or, when it has ended, written with its end at once (an ended
 * relayed call waits a few seconds for them before its end is written without). */
void cdr_media(struct cdr *c, struct str call_id, const char *figures);
/* Answered calls not yet ended. */
unsigned cdr_active(const struct cdr *c);

/* A call in progress, for the HTTP API: started and not yet answered (answer_ms 0), or
 * answered and not yet ended. Views valid during the callback only. */
struct cdr_live {
	struct str call_id, caller, callee;
	uint64_t start_ms, answer_ms; /* wall clock; answer 0: ringing */
};
/* Calls fn for each call in progress (ringing ones first) until it returns nonzero. */
void cdr_each_live(const struct cdr *c, int (*fn)(const struct cdr_live *l, void *arg), void *arg);

#endif
