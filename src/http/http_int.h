/* http_int.h: the HTTP module's own parts: a growing text buffer and the metrics writer. */
#ifndef PARLEY_HTTP_INT_H
#define PARLEY_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

/* Text built for one response; a failed allocation sets oom and later writes do nothing. */
struct http_buf {
	char *p;
	size_t len, cap;
	bool oom;
};
void http__printf(struct http_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes srv's figures in the Prometheus text exposition format (version 0.0.4);
 * uptime_s is how long the server has run. */
void http__metrics(struct http_buf *b, const struct server *srv, uint64_t uptime_s);

#endif
