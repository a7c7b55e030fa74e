/* location.h: the in-memory location service: bindings (contacts) per address-of-record. */
#ifndef PARLEY_LOCATION_H
#define PARLEY_LOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "transport/transport.h"

/* A compact source address: what the REGISTER came from, where the phone is reached. */
struct loc_src {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t proto;  /* enum tp_proto */
	uint16_t port;
	uint8_t ip[16];
	uint64_t conn_id; /* streams: the connection it came over (tp_source.conn_id); 0: none */
};

void loc_src_from_addr(struct loc_src *s, const struct tp_addr *a, enum tp_proto proto);
void loc_src_to_addr(const struct loc_src *s, struct tp_addr *a);

/* One binding. The variable-length fields live in data[] right after the struct, so a
 * binding is a single allocation; read them with loc_b_*(). */
struct loc_binding {
	struct loc_binding *next; /* next binding of the same AOR */
	struct loc_aor *aor;
	uint32_t expires_at; /* wall clock, unix seconds */
	uint32_t cseq;
	uint16_t q;      /* q-value in thousandths; 1000 when absent */
	uint16_t len[7]; /* lengths of the fields below, in order */
	struct loc_src src;
	uint8_t flags;  /* LOC_F_* */
	uint8_t misses; /* keepalive OPTIONS unanswered in a row (registrar's NAT ping) */
	char data[];    /* contact uri, contact params, call-id, user-agent, path,
				      +sip.instance, reg-id; no terminators */
};

/* Reach the phone at its source address, not the contact as written (NAT, RFC 3581). */
#define LOC_F_USE_SRC 1
/* An Outbound flow (RFC 5626): reached only over the connection (or UDP 5-tuple) it was
 * registered over, one flow per instance at a time. */
#define LOC_F_OUTBOUND 2

enum loc_field { LOC_URI = 0, LOC_PARAMS, LOC_CALLID, LOC_UA, LOC_PATH, LOC_INSTANCE, LOC_REGID };

struct str loc_b_field(const struct loc_binding *b, enum loc_field f);

struct loc_aor {
	struct loc_binding *first;
	uint16_t count;
	uint16_t keylen;
	uint32_t hash;
	char key[]; /* "user@domain" (domain lower-cased by the caller) */
};

static inline struct str loc_aor_key(const struct loc_aor *a)
{
	return (struct str){ a->key, a->keylen };
}

/* What a registrar hands in for one contact. */
struct loc_contact {
	struct str field[7]; /* indexed by enum loc_field */
	uint32_t expires_at;
	uint32_t cseq;
	uint16_t q;
	struct loc_src src;
	uint8_t flags;
};

struct location;

int loc_new(struct location **lp);
void loc_free(struct location *l);
size_t loc_aor_count(const struct location *l);
/* Hash slots of the table (what loc_sweep and loc_walk count their budget in). */
size_t loc_capacity(const struct location *l);
size_t loc_binding_count(const struct location *l);

/* The AOR's entry, or NULL. Bindings past their expiry may still be listed until the next
 * sweep: callers skip those with expires_at <= now. */
struct loc_aor *loc_find(struct location *l, struct str aor);
/* The binding of aor whose contact URI equals uri (byte-wise), or NULL. */
struct loc_binding *loc_find_contact(struct loc_aor *a, struct str uri);
/* The binding a contact replaces: for an Outbound flow (RFC 5626: instance and regid both
 * given) the one of that flow, whatever its URI; otherwise the one with the same URI among
 * the bindings that are not flows. NULL when there is none. */
struct loc_binding *loc_find_binding(struct loc_aor *a, struct str uri, struct str instance, struct str regid);
/* Whether b is an Outbound flow (it has an instance and a reg-id). */
bool loc_is_flow(const struct loc_binding *b);
/* Adds or replaces the binding of c under aor (which one: loc_find_binding of its URI,
 * instance and reg-id). Returns 0 or -ENOMEM; *out (optional) is the binding now stored. */
int loc_put(struct location *l, struct str aor, const struct loc_contact *c, struct loc_binding **out);
/* Removes one binding (and its AOR once empty). */
void loc_del(struct location *l, struct loc_binding *b);

/* Called for each binding a sweep removes, before it is freed. */
typedef void(loc_expired_h)(const struct loc_binding *b, void *arg);
/* Looks at up to budget hash slots from where the previous sweep stopped and removes the
 * bindings expired at now; returns how many it removed. Repeated calls cover the table. */
unsigned loc_sweep(struct location *l, uint32_t now, unsigned budget, loc_expired_h *h, void *arg);
/* Calls h for every binding of up to budget hash slots from *cursor (0 to start), moving
 * *cursor on; repeated calls go round the table. h must not add or remove bindings. */
void loc_walk(struct location *l, size_t *cursor, unsigned budget, void (*h)(struct loc_binding *b, void *arg),
	      void *arg);

#endif
