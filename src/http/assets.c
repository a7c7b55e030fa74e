/* assets.c: the dashboard's files (src/http/assets/, embedded by the build): lookup by URL path and the response. */
#include <microhttpd.h>
#include <string.h>

#include "http/http_int.h"

/* The page is served from this binary only, runs only its own script and style files,
 * talks only to this origin (the API, its event stream), and is never framed. */
#define ASSET_CSP                                                                                       \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " \
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const struct http_asset *http__asset(const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (size_t i = 0; i < http__assets_count; i++)
		if (strcmp(url, http__assets[i].path) == 0)
			return &http__assets[i];
	return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

const char *http__asset_type(const char *path)
{
	if (ends_with(path, ".html"))
		return "text/html; charset=utf-8";
	if (ends_with(path, ".js"))
		return "text/javascript; charset=utf-8";
	if (ends_with(path, ".css"))
		return "text/css; charset=utf-8";
	if (ends_with(path, ".svg"))
		return "image/svg+xml";
	return "application/octet-stream";
}

int http__asset_reply(struct MHD_Connection *c, const struct http_asset *a)
{
	/* The bytes are static: libmicrohttpd sends them without a copy. */
	struct MHD_Response *r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	/* no-cache: the browser asks again each time (a new binary may serve a new page). */
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, http__asset_type(a->path)) == MHD_NO ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_NO ||
	    MHD_add_response_header(r, "Content-Security-Policy", ASSET_CSP) == MHD_NO ||
	    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") == MHD_NO ||
	    MHD_add_response_header(r, "X-Frame-Options", "DENY") == MHD_NO ||
	    MHD_add_response_header(r, "Referrer-Policy", "no-referrer") == MHD_NO) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}
