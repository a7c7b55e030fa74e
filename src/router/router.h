/* router.h: the one place that decides where a request goes (DESIGN §2). */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include "sip/sip.h"
#include "transport/transport.h"
#include "txn/txn.h"

struct server;

/* Called by the transaction layer for each request that needs a decision: st is its
 * server transaction (NULL for an ACK that matched none, i.e. the ACK for a 2xx). */
void router_request(struct server *s, struct txn_server *st, const struct sip_msg *m,
		    const struct tp_source *src);

#endif
