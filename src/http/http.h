/* http.h: the HTTP admin endpoint (--http): JSON API, logins, /metrics and /health, served by libmicrohttpd on the event loop. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stddef.h>

#include "core/log.h"
#include "core/loop.h"
#include "server/server.h"

struct http;

/* What the endpoint runs with; everything must outlive it. It reads srv through its
 * getters and changes SIP state only through server.h's narrow functions (users,
 * bindings), as the CLI would. */
struct http_env {
	struct loop *loop;
	struct log *lg;
	struct server *srv;
	const struct config *cfg; /* the live settings: [http] listen ("[http:|https:]ADDR:PORT"),
				   * metrics-auth, and the TLS files for https */
};

/* Limits of the endpoint: it serves a scraper, a load balancer and a few admins, not the public. */
#define HTTP_MAX_CONNECTIONS 32      /* connections open at once; more are closed at once */
#define HTTP_MAX_PER_ADDRESS 8       /* of those, from one source address; more are closed at once */
#define HTTP_TIMEOUT_S 10            /* an idle or slow connection is closed after this */
#define HTTP_HEADER_DEADLINE_S 10    /* for a request's line and headers, from accept or the last reply */
#define HTTP_MAX_REQUEST (16 * 1024) /* bytes of request line and headers per connection */

/* Listens on env->cfg's [http] listen and serves on env->loop: libmicrohttpd runs in its
 * external epoll mode, its epoll fd watched by our loop and its timeouts on our timer
 * wheel. The one other thread checks admin passwords (Argon2id) and touches nothing else.
 * Returns 0, 2 when the address is not one (err names it), or 1 when it cannot listen
 * (err says why). */
int http_new(struct http **hp, const struct http_env *env, char *err, size_t errlen);
/* After a reload: a changed [http] listen closes the listener and opens the new one (on
 * failure the old one again, logged); sessions survive. metrics-auth needs nothing. */
void http_reload(struct http *h);
/* Closes every connection and the listening socket; NULL is harmless. */
void http_free(struct http *h);

#endif
