/* server.h: one running Parley instance: transport, transactions, registrar, proxy, store. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"

struct server;

/* Opens the store, the listeners and every module for cfg on loop. Returns 0, or 1 with a
 * message in err naming what failed (port in use, database not writable, ...). */
int server_new(struct server **sp, const struct config *cfg, struct loop *loop, struct log *lg,
	       char *err, size_t errlen);
/* Stops timers, flushes the store and closes everything. */
void server_free(struct server *s);

#endif
