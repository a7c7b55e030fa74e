/* txn_int.h: private to src/txn: the layer struct, the hash table and helpers its files share. */
#ifndef PARLEY_TXN_INT_H
#define PARLEY_TXN_INT_H

#include "core/khash.h"
#include "core/pool.h"
#include "txn/txn.h"

/* An open-addressing table (linear probing, backward-shift deletion, so no tombstones)
 * of transactions by a 64-bit key: the keyed hash (txn_layer.hk) of the branch, or for
 * RFC 2543 requests of Call-ID and CSeq number. Both are chosen by the peer, and an
 * unkeyed hash would let it send keys that all probe one run. Entries with equal keys are
 * told apart by the caller. */
struct txn__slot {
	uint64_t h;
	void *p; /* NULL when empty */
};

struct txn__tab {
	struct txn__slot *s;
	size_t cap;    /* power of two */
	unsigned bits; /* log2(cap) */
	size_t n;
};

#define TXN__REQ_BLOCK 4096

struct txn_layer {
	struct txn_cfg cfg;
	struct timer_wheel *w;
	txn_send_h *send;
	void *send_arg;
	const struct txn_tu *tu;
	void *tu_arg;
	struct txn__tab servers;
	struct txn__tab clients;
	struct pool *pool; /* transactions and their kept responses (core/pool.h: why) */
	struct timer trim; /* gives back the pool's unused chunks every second */
	struct txn_stats stats;
	struct txn_server *server_drops; /* answered: their requests go at the next entry */
	struct khash hk;                 /* random at start: the tables' keys (txn__branch_key) */
	uint64_t seed;                   /* random at start: branches and tags differ across restarts */
	uint64_t counter;                /* makes every branch and tag of this layer distinct */
	bool closing;                    /* txn_layer_free is running */
	uint64_t in_us;                  /* while a new request is handed to the TU: when it came in (monotonic),
			 * for the response time of what is answered statelessly; else 0 */
};

/* A final response to a request that came in at in_us goes out now: the response-time
 * histogram counts it. */
void txn__rt_observe(struct txn_layer *l, uint64_t in_us);

int txn__tab_put(struct txn__tab *t, uint64_t h, void *p);
void txn__tab_del(struct txn__tab *t, uint64_t h, const void *p);

/* Home slot of key h. */
static inline size_t txn__tab_home(const struct txn__tab *t, uint64_t h)
{
	return (size_t)((h * 0x9e3779b97f4a7c15ull) >> (64 - t->bits));
}

static inline size_t txn__tab_next(const struct txn__tab *t, size_t i)
{
	return (i + 1) & (t->cap - 1);
}

/* Walks the entries whose key is h: for (TXN__EACH(tab, h, i)) { tab->s[i].p ... }. */
#define TXN__EACH(t, key, i)                  \
	size_t i = txn__tab_home((t), (key)); \
	(t)->s[i].p;                          \
	i = txn__tab_next((t), i)

bool txn__has_cookie(struct str branch);
/* Table keys: of a branch, and of an RFC 2543 request's Call-ID and CSeq number. */
uint64_t txn__branch_key(const struct txn_layer *l, struct str branch);
uint64_t txn__call_key(const struct txn_layer *l, struct str call_id, uint32_t cseq);
int txn__send(struct txn_layer *l, const struct tp_source *dst, const char *buf, size_t len);

/* Drops the requests of server transactions that sent their final response since the
 * layer was last entered (server.c: struct txn_req). */
void txn__server_reap(struct txn_layer *l);

/* Memory for request bytes from the layer's pool: every request up to TXN__REQ_BLOCK
 * bytes takes a block of that size, so that they all share one size class and a burst
 * reuses the same few warm blocks. txn__blk_free takes the same size. */
void *txn__blk_alloc(struct txn_layer *l, size_t size);
void txn__blk_free(struct txn_layer *l, void *p, size_t size);

/* Free every transaction of one kind without callbacks (txn_layer_free). */
void txn__server_free_all(struct txn_layer *l);
void txn__client_free_all(struct txn_layer *l);

/* Same method: by id, or by text for extension methods. */
static inline bool txn__method_eq(enum sip_method a, struct str atext, enum sip_method b, struct str btext)
{
	if (a != b)
		return false;
	return a != SIP_METHOD_OTHER || str_eq(atext, btext);
}

#endif
