/* http.h: the HTTP endpoint (--http): Prometheus /metrics and /health, served by libmicrohttpd on the event loop. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stddef.h>

#include "core/log.h"
#include "core/loop.h"
#include "server/server.h"

struct http;

/* What the endpoint runs with; everything must outlive it. It only reads srv (its own
 * counters and its modules', through const getters): it never changes SIP state. */
struct http_env {
	struct loop *loop;
	struct log *lg;
	const struct server *srv;
	const char *listen; /* "HOST:PORT" or "[IPv6]:PORT", HOST numeric or localhost */
};

/* Limits of the endpoint: it serves a scraper and a load balancer, not the public. */
#define HTTP_MAX_CONNECTIONS 32      /* connections open at once; more are closed at once */
#define HTTP_TIMEOUT_S 10            /* an idle or slow connection is closed after this */
#define HTTP_MAX_REQUEST (16 * 1024) /* bytes of request line and headers per connection */

/* Listens on env->listen and serves on env->loop: libmicrohttpd runs in its external
 * epoll mode, its epoll fd watched by our loop and its timeouts on our timer wheel, so no
 * other thread exists and nothing is read while the SIP side changes it. Returns 0, 2 when
 * the address is not one (err names it), or 1 when it cannot listen (err says why). */
int http_new(struct http **hp, const struct http_env *env, char *err, size_t errlen);
/* Closes every connection and the listening socket; NULL is harmless. */
void http_free(struct http *h);

#endif
