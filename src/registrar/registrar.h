/* registrar.h: REGISTER processing (RFC 3261 §10.3) over the location table and the store. */
#ifndef PARLEY_REGISTRAR_H
#define PARLEY_REGISTRAR_H

#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "location/location.h"
#include "sip/sip.h"
#include "store/store.h"
#include "transport/transport.h"
#include "txn/txn.h"

struct registrar;

/* The settings ([server] section, same-named flags). */
struct reg_cfg {
	unsigned max_contacts;      /* --max-contacts 10 bindings per address */
	unsigned min_expires;       /* --min-expires 60 s */
	unsigned max_expires;       /* --max-expires 86400 s */
	unsigned default_expires;   /* --default-expires 3600 s */
	unsigned nat_ping_interval; /* --nat-ping-interval 25 s between OPTIONS to each phone
				     * behind NAT registered over UDP; 0 off */
	bool nat_ping_remove;       /* --nat-ping-remove: remove the binding of a phone that
				     * stopped answering them (else it is only logged) */
};
extern const struct cfg_key reg_cfg_keys[];
extern const size_t reg_cfg_nkeys;
void reg_cfg_defaults(struct reg_cfg *c);
int reg_cfg_check(const void *base, char *err, size_t errlen); /* min <= default <= max */

struct reg_env {
	const struct reg_cfg *cfg;
	struct txn_layer *txn; /* NAT keepalive OPTIONS; may be NULL: none sent */
	struct transport *tp;  /* our address in their Via and From; may be NULL: none sent */
	struct log *lg;
	struct location *loc;
	struct store *store; /* may be NULL: no persistence */
};

int reg_new(struct registrar **rp, const struct reg_env *env);
void reg_free(struct registrar *r);

/* Handles a REGISTER already authenticated as aor ("user@domain", domain lower-case) that
 * owns the To AOR (both checked by the router): steps 6–8 of §10.3. Answers st. now: unix s. */
void reg_handle(struct registrar *r, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src,
		struct str aor, uint32_t now);

/* Loads the unexpired bindings of the store into the location table; returns how many, or
 * a negative errno (message in store_errmsg). */
long reg_load(struct registrar *r, uint32_t now);

/* Removes the bindings of aor ("user@domain", domain lower-case) whose contact URI is
 * contact, from the table and (queued) the store, as an unregistration would; logs it as
 * done by an admin. Returns how many went (0: none had that contact, or no such AOR). */
unsigned reg_unbind(struct registrar *r, struct str aor, struct str contact);

/* Removes expired bindings, a slice of the table per call, deleting them from the store
 * and logging each. */
void reg_sweep(struct registrar *r, uint32_t now);

/* Sends the NAT keepalive OPTIONS due (README "Phones behind NAT"): each phone behind NAT
 * registered over UDP gets one every nat-ping-interval, spread over the interval. Called
 * every tick_ms by the server's sweep. */
void reg_ping(struct registrar *r, unsigned tick_ms);
/* Keepalive counters. */
struct reg_ping_stats {
	uint64_t sent, answered, missed, unreachable, removed;
	unsigned outstanding;
};
const struct reg_ping_stats *reg_ping_stats(const struct registrar *r);

/* ---- GRUU (RFC 5627) ----------------------------------------------------------------------
 * A phone that registers with Supported: gruu and a +sip.instance gets, on each of its
 * Contacts in the 200, a pub-gruu (sip:AOR;gr=<its instance URN>: stable, public) and a
 * fresh temp-gruu (sip:tgr-<hex>@domain;gr: the AOR, the instance and the Call-ID of that
 * registration sealed with a key made at start-up, so that it tells nothing and cannot be
 * made up; valid while that registration lives, and not after a restart). */

/* A GRUU as the registrar issued it. */
struct reg_gruu {
	char aor[256]; /* "user@domain" */
	size_t aor_l;
	bool temp;
	struct str urn;       /* pub-gruu: its gr value ("urn:uuid:..."), a view of the URI */
	uint64_t inst_hash;   /* temp-gruu: of the binding's +sip.instance */
	uint64_t callid_hash; /* temp-gruu: of the Call-ID of the registration it came with */
};
/* Whether u, a URI in our domain whose canonical name is domain, is a GRUU we could have
 * issued (a gr parameter; for a temp-gruu one that opens with our key): fills *g. */
bool reg_gruu_parse(const struct registrar *r, const struct sip_uri *u, struct str domain,
		    struct reg_gruu *g /* OUT */);
/* Whether live binding b belongs to the phone g names. */
bool reg_gruu_phone(const struct registrar *r, const struct reg_gruu *g, const struct loc_binding *b);
/* Whether g is still valid for the AOR's bindings a at now: a pub-gruu while the phone has
 * a binding, a temp-gruu while the registration it was issued with does. */
bool reg_gruu_valid(const struct registrar *r, const struct reg_gruu *g, const struct loc_aor *a, uint32_t now);

/* Where to send a request for binding b: the contact as written, or the address the
 * REGISTER came from when the phone is behind NAT or asked for rport (on a stream then
 * over the connection it registered over, dst->conn_id). Fills dst (listener left NULL) and returns 0, -EINVAL
 * when the contact is not reachable at all, or -ENOTCONN for a stream binding with no
 * connection (loaded from the store: the phone must register again). */
int reg_binding_dest(const struct loc_binding *b, struct tp_source *dst);
/* Whether the phone of binding b is behind NAT (README "Phones behind NAT"): its Contact
 * names another address than the one its REGISTER came from. */
bool reg_binding_natted(const struct loc_binding *b);

#endif
