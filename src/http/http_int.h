/* http_int.h: the HTTP module's own parts: a growing text buffer, the metrics writer, the dashboard's files. */
#ifndef PARLEY_HTTP_INT_H
#define PARLEY_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

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

/* One file of the dashboard, embedded in the binary by the build (scripts/embed_assets.cmake
 * turns src/http/assets/ into the table http__assets). */
struct http_asset {
	const char *path; /* "/app.js": the URL path it is served at */
	const unsigned char *data;
	size_t len;
};
extern const struct http_asset http__assets[];
extern const size_t http__assets_count;

/* The embedded file served at url ("/" is "/index.html"), or NULL when none is. */
const struct http_asset *http__asset(const char *url);
/* The content type of a file by its name's ending ("text/html; charset=utf-8", ...). */
const char *http__asset_type(const char *path);
/* Queues a as the response on c, with headers that keep the browser from caching a stale
 * page, from guessing types, and from running anything not served here. */
enum MHD_Result http__asset_reply(struct MHD_Connection *c, const struct http_asset *a);

#endif
