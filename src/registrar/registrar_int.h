/* registrar_int.h: private to src/registrar: what ping.c and registrar.c share. */
#ifndef PARLEY_REGISTRAR_INT_H
#define PARLEY_REGISTRAR_INT_H

#include "registrar/registrar.h"

/* The NAT keepalive (ping.c): the OPTIONS in flight and the walk over the bindings. */
struct reg_ping;
int reg__ping_new(struct reg_ping **pp, const struct reg_env *env);
/* Frees the contexts of the pings still in flight: call after txn_layer_free, which frees
 * their transactions without callbacks (or with the layer gone already). */
void reg__ping_free(struct reg_ping *p);
void reg__ping_tick(struct reg_ping *p, unsigned tick_ms);
const struct reg_ping_stats *reg__ping_stats(const struct reg_ping *p);

/* The address binding b's Contact names (its maddr, else its host; port 5060 when it has
 * none): 0, -ENOENT for a host name, -EINVAL for a contact that is not a SIP URI. */
int reg__contact_addr(const struct loc_binding *b, struct tp_addr *a);

/* Queues the removal of a binding from the store, logging a failure. */
void reg__queue_del(const struct reg_env *env, const struct loc_binding *b);

#endif
