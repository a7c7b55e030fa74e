/* http.c: libmicrohttpd in its external epoll mode on Parley's loop (plain or TLS): requests, bodies, routing, /metrics and /health. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/timer.h"
#include "http/http_int.h"

/* Request bodies: a user import may be long, anything else is a small JSON object. */
#define HTTP_BODY_MAX (16 * 1024)
#define HTTP_IMPORT_MAX (1024 * 1024)
/* libmicrohttpd runs at least this often, whatever it says about its next timeout: with
 * its connection limit reached it leaves the listening socket out of its epoll set until
 * a later run, which nothing else would bring once every connection has closed. The same
 * tick enforces the header deadline. */
#define HTTP_TICK_MS 1000

/* Splits "[http:|https:]ADDR:PORT" into its address part and whether it is https. */
static const char *listen_addr(const char *s, bool *https)
{
	*https = false;
	if (!strncmp(s, "https:", 6)) {
		*https = true;
		return s + 6;
	}
	if (!strncmp(s, "http:", 5))
		return s + 5;
	return s;
}

/* "HOST:PORT" or "[IPv6]:PORT" with a numeric host (or localhost) into *sa. */
static bool parse_addr(const char *s, struct sockaddr_storage *sa, socklen_t *salen)
{
	char host[256];
	const char *port;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof host)
			return false;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = '\0';
		port = e + 2;
	} else {
		const char *e = strrchr(s, ':');
		if (!e || (size_t)(e - s) >= sizeof host)
			return false;
		memcpy(host, s, (size_t)(e - s));
		host[e - s] = '\0';
		port = e + 1;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(port, &end, 10);
	if (!*port || *end || errno || p > 65535)
		return false;
	memset(sa, 0, sizeof *sa);
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (*s != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		*salen = sizeof *v4;
		return true;
	}
	if (*s == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		*salen = sizeof *v6;
		return true;
	}
	return false;
}

static void on_timer(void *arg);
static void client_ip(struct MHD_Connection *c, char *out, size_t cap);

/* Shuts down each connection whose request line and headers are not in by the deadline;
 * libmicrohttpd then sees it end and closes it (there is no call to close one of its
 * connections from outside). */
static void deadlines(struct http *h)
{
	uint64_t now = loop_now(h->loop);
	for (size_t i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
		struct http_conn *k = &h->conns[i];
		if (!k->c || k->busy || k->cut || now - k->since_ms < HTTP_HEADER_DEADLINE_S * 1000)
			continue;
		k->cut = true;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(k->c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			shutdown(ci->connect_fd, SHUT_RDWR);
		char ip[64];
		client_ip(k->c, ip, sizeof ip);
		log_limited(h->lg, &h->cut_log, now, LOG_INFO, "http",
			    "connection from %s closed: no complete request within %d s", ip, HTTP_HEADER_DEADLINE_S);
	}
}

/* Lets libmicrohttpd do what is ready, then arms our timer for its next timeout (at most
 * HTTP_TICK_MS away). */
static void pump(struct http *h)
{
	MHD_run(h->d);
	deadlines(h);
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(h->d, &ms) != MHD_YES || ms > HTTP_TICK_MS)
		ms = HTTP_TICK_MS;
	timer_start(loop_timers(h->loop), &h->tmr, ms, on_timer, h);
}

static void on_timer(void *arg)
{
	pump(arg);
}

static void on_ready(int fd, uint32_t events, void *arg)
{
	pump(arg);
}

void http__pump_soon(struct http *h)
{
	timer_start(loop_timers(h->loop), &h->tmr, 0, on_timer, h);
}

void http__job_done(struct http_job *j, void *arg)
{
	struct http_req *r = j->arg;
	r->checked = true;
	if (r->suspended) {
		r->suspended = false;
		MHD_resume_connection(r->c);
	}
}

/* The KDF thread finished checks: their requests go on. */
static void on_kdf(int fd, uint32_t events, void *arg)
{
	struct http *h = arg;
	http__auth_collect(h->auth, http__job_done, h);
	pump(h);
}

static void mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct http *h = arg;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn(h->lg, "http", "%s", msg);
}

/* Queues a response of len bytes; body is freed by libmicrohttpd when owned. extra is one
 * more header ("Name: value") or NULL. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *ctype, char *body, size_t len,
			     bool owned, const char *hname, const char *hvalue)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	if ((ctype && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_NO) ||
	    MHD_add_response_header(r, "Cache-Control", "no-store") == MHD_NO ||
	    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") == MHD_NO ||
	    MHD_add_response_header(r, "Content-Security-Policy", HTTP_API_CSP) == MHD_NO ||
	    (hname && MHD_add_response_header(r, hname, hvalue) == MHD_NO)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *s)
{
	return reply(c, code, "text/plain; charset=utf-8", (char *)s, strlen(s), false, NULL, NULL);
}

int http__reply_json_hdr(struct http_req *r, unsigned code, struct http_buf *b, const char *hname, const char *hvalue)
{
	if (b->oom) {
		free(b->p);
		log_error(r->h->lg, "http", "out of memory writing a response");
		return text(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	}
	http__putc(b, '\n');
	if (b->oom)
		return http__reply_json(r, code, b);
	return reply(r->c, code, "application/json", b->p, b->len, true, hname, hvalue);
}

int http__reply_json(struct http_req *r, unsigned code, struct http_buf *b)
{
	return http__reply_json_hdr(r, code, b, NULL, NULL);
}

int http__reply_error(struct http_req *r, unsigned code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct http_buf b = { 0 };
	http__put(&b, "{\"error\":", 9);
	http__json_cstr(&b, msg);
	http__putc(&b, '}');
	return http__reply_json(r, code, &b);
}

int http__reply_empty(struct http_req *r, unsigned code)
{
	return reply(r->c, code, NULL, (char *)"", 0, false, NULL, NULL);
}

int http__reply_cookie(struct http_req *r, unsigned code, struct http_buf *b, const char *cookie)
{
	if (b->oom) {
		free(b->p);
		return text(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	}
	char hv[160];
	/* Strict: the browser sends it only with requests the dashboard itself makes. */
	if (cookie[0])
		snprintf(hv, sizeof hv, "parley_session=%s; HttpOnly; SameSite=Strict; Path=/%s", cookie,
			 r->h->https ? "; Secure" : "");
	else
		snprintf(hv, sizeof hv, "parley_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0%s",
			 r->h->https ? "; Secure" : "");
	if (!b->p)
		return reply(r->c, code, NULL, (char *)"", 0, false, MHD_HTTP_HEADER_SET_COOKIE, hv);
	http__putc(b, '\n');
	if (b->oom) {
		free(b->p);
		return text(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	}
	return reply(r->c, code, "application/json", b->p, b->len, true, MHD_HTTP_HEADER_SET_COOKIE, hv);
}

static enum MHD_Result metrics(struct http *h, struct MHD_Connection *c)
{
	struct http_buf b = { 0 };
	http__metrics(&b, h->srv, (loop_now(h->loop) - h->start_ms) / 1000);
	if (b.oom) {
		free(b.p);
		log_error(h->lg, "http", "/metrics: out of memory");
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	}
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, true, NULL, NULL);
}

/* 200 while the loop runs (it is running this) and the store takes writes; 503 otherwise. */
static enum MHD_Result health(struct http *h, struct MHD_Connection *c)
{
	bool ok = !server_stats(h->srv)->store_failing;
	char *body = malloc(128);
	if (!body)
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	int n = snprintf(body, 128, "{\"status\":\"%s\",\"uptime_s\":%llu}\n", ok ? "ok" : "store failing",
			 (unsigned long long)((loop_now(h->loop) - h->start_ms) / 1000));
	return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body, (size_t)n, true,
		     NULL, NULL);
}

/* /metrics with [http] metrics-auth = true: a bearer token (Prometheus sends one with
 * its authorization setting) or a session. */
static bool metrics_allowed(struct http *h, struct http_req *r)
{
	if (!h->cfg->metrics_auth)
		return true;
	const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth && !strncmp(auth, "Bearer ", 7))
		return http__auth_bearer(h->auth, auth + 7, r->ip, loop_now(h->loop), r->admin) == 0;
	const char *ck = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, "parley_session");
	return ck && http__auth_session(h->auth, ck, loop_now(h->loop), r->admin);
}

/* Where each path goes: the one place that decides (static files of the dashboard are
 * served from here too, before the 404). */
static enum MHD_Result route(struct http *h, struct http_req *r, const char *method, const char *url)
{
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	if (!strncmp(url, "/api/", 5))
		return http__api(h, r, method, url);
	if (!strcmp(url, "/metrics") || !strcmp(url, "/health")) {
		if (!get)
			return reply(r->c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
				     (char *)"method not allowed: GET or HEAD\n", 32, false, MHD_HTTP_HEADER_ALLOW,
				     "GET, HEAD");
		if (url[1] == 'h')
			return health(h, r->c);
		if (!metrics_allowed(h, r))
			return reply(r->c, MHD_HTTP_UNAUTHORIZED, "text/plain; charset=utf-8",
				     (char *)"/metrics needs a bearer token (metrics-auth = true)\n", 52, false,
				     MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"parley\"");
		return metrics(h, r->c);
	}
	const struct http_asset *a = get ? http__asset(url) : NULL;
	if (a)
		return http__asset_reply(r->c, a);
	return text(r->c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* The source address of c as text. */
static void client_ip(struct MHD_Connection *c, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, cap, "?");
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static enum MHD_Result on_request(void *arg, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct http *h = arg;
	struct http_req *r = *state;
	if (!r) {
		/* The log escapes the control bytes a URL may hold (a forged line). */
		log_debug(h->lg, "http", "%s %s", method, url);
		const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (sc && sc->socket_context)
			((struct http_conn *)sc->socket_context)->busy = true;
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->h = h;
		r->c = c;
		r->job.arg = r;
		r->max = !strcmp(url, "/api/users/import") ? HTTP_IMPORT_MAX : HTTP_BODY_MAX;
		client_ip(c, r->ip, sizeof r->ip);
		*state = r;
		/* Who asks is known before any of the body is read: nobody without credentials
		 * makes the endpoint take in (and hold) a megabyte. */
		int ret;
		if (!strncmp(url, "/api/", 5) && http__api_begin(h, r, method, url, &ret) < 0)
			return ret;
		/* A body announced too long is refused before it is read. */
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > r->max) {
			r->too_big = true;
			return http__reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %zu bytes", r->max);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->too_big || r->len + n > r->max) {
			r->too_big = true;
			return MHD_YES; /* read and dropped: answered 413 at the end */
		}
		if (r->len + n + 1 > r->cap) {
			size_t cap = r->cap ? r->cap : 1024;
			while (cap < r->len + n + 1)
				cap *= 2;
			char *p = realloc(r->body, cap);
			if (!p)
				return MHD_NO;
			r->body = p;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		r->body[r->len] = '\0';
		return MHD_YES;
	}
	if (r->too_big)
		return http__reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %zu bytes", r->max);
	return route(h, r, method, url);
}

/* Keeps a slot of h->conns for each connection while it is open. */
static void on_connection(void *arg, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = arg;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct http_conn *k = *socket_context;
		if (k)
			memset(k, 0, sizeof *k);
		*socket_context = NULL;
		return;
	}
	for (size_t i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
		struct http_conn *k = &h->conns[i];
		if (!k->c) {
			*k = (struct http_conn){ .c = c, .since_ms = loop_now(h->loop) };
			*socket_context = k;
			return;
		}
	}
	/* libmicrohttpd holds no more than HTTP_MAX_CONNECTIONS; should it ever, the extra
	 * one is not left without a deadline. */
	log_warn(h->lg, "http", "no slot for a new connection: closed");
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		shutdown(ci->connect_fd, SHUT_RDWR);
}

static void on_completed(void *arg, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
	struct http *h = arg;
	/* The next request on a kept-alive connection has the same deadline from now. */
	const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (sc && sc->socket_context) {
		struct http_conn *k = sc->socket_context;
		k->busy = false;
		k->since_ms = loop_now(h->loop);
	}
	struct http_req *r = *state;
	if (!r)
		return;
	*state = NULL;
	http__sse_gone(r);
	explicit_bzero(r->job.password, sizeof r->job.password); /* a login that never ran */
	if (r->body) {
		/* A login's body holds a password. */
		explicit_bzero(r->body, r->cap);
		free(r->body);
	}
	free(r);
}

/* The whole of a PEM file (NUL-terminated, for libmicrohttpd), or NULL with err set. */
static char *read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;
	if (!f) {
		snprintf(err, errlen, "https: cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20)) {
				snprintf(err, errlen, "https: %s is too large for a PEM file", path);
				goto fail;
			}
			char *p = realloc(buf, cap);
			if (!p) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			buf = p;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "https: cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

/* Closes the listener: every request waiting for its password check is answered first
 * (or dropped), every suspended stream resumed, as libmicrohttpd requires. */
static void daemon_stop(struct http *h)
{
	if (!h->d)
		return;
	http__auth_drain(h->auth, http__job_done, h);
	http__sse_close_all(h);
	timer_stop(loop_timers(h->loop), &h->tmr);
	if (h->epfd >= 0)
		loop_del_fd(h->loop, h->epfd);
	h->epfd = -1;
	MHD_stop_daemon(h->d);
	h->d = NULL;
	memset(h->conns, 0, sizeof h->conns); /* each was freed as its connection closed */
}

/* Opens the listener of spec ("[http:|https:]ADDR:PORT"). 0, 2 (a bad address) or 1 with
 * err saying why. */
static int daemon_start(struct http *h, const char *spec, char *err, size_t errlen)
{
	bool https;
	const char *addr = listen_addr(spec, &https);
	struct sockaddr_storage sa;
	socklen_t salen;
	if (!parse_addr(addr, &sa, &salen)) {
		snprintf(err, errlen, "--http %s: expected [http:|https:]ADDR:PORT with a numeric address", spec);
		return 2;
	}
	char *cert = NULL, *key = NULL;
	if (https) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "--http %s: this libmicrohttpd is built without TLS", spec);
			return 1;
		}
		/* The transports' certificate: --tls-cert/--tls-key, else the self-signed pair
		 * beside the database (made by a tls: or wss: listener). */
		char cpath[600], kpath[600];
		const struct config *c = h->full;
		if (c->tp.tls_cert[0]) {
			snprintf(cpath, sizeof cpath, "%s", c->tp.tls_cert);
			snprintf(kpath, sizeof kpath, "%s", c->tp.tls_key);
		} else {
			snprintf(cpath, sizeof cpath, "%s-tls.crt", c->server.db);
			snprintf(kpath, sizeof kpath, "%s-tls.key", c->server.db);
			if (access(cpath, R_OK) != 0) {
				snprintf(err, errlen,
					 "--http %s: no certificate: give --tls-cert and --tls-key, or listen on tls: "
					 "or wss: once so that %s is made",
					 spec, cpath);
				return 1;
			}
		}
		cert = read_pem(cpath, err, errlen);
		key = cert ? read_pem(kpath, err, errlen) : NULL;
		if (!key) {
			free(cert);
			return 1;
		}
	}
	/* Our own listening socket, so that a failure to bind says why (port in use, ...). */
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "cannot listen for HTTP on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(cert);
		free(key);
		return 1;
	}
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
			 (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) | (https ? MHD_USE_TLS : 0);
	/* The logger comes first, so that libmicrohttpd's messages about the options go to
	 * our log too. */
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h },
		{ MHD_OPTION_LISTEN_SOCKET, fd, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, HTTP_MAX_CONNECTIONS, NULL },
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, HTTP_MAX_PER_ADDRESS, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, HTTP_TIMEOUT_S, NULL },
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_MAX_REQUEST, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h },
		/* https only: the certificate and key (the list ends early without them) */
		{ https ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
		{ https ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, key },
		{ MHD_OPTION_END, 0, NULL },
	};
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	/* libmicrohttpd has copied the PEM text into GnuTLS by now. */
	if (key)
		explicit_bzero(key, strlen(key));
	free(cert);
	free(key);
	if (!h->d) {
		/* fd is not closed here: whether a failed start has closed it already depends
		 * on the library's version. */
		snprintf(err, errlen, "cannot start the HTTP server on %s (see the log)", spec);
		return 1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	int e = di ? loop_add_fd(h->loop, di->epoll_fd, EPOLLIN, on_ready, h) : -EINVAL;
	if (e < 0) {
		snprintf(err, errlen, "cannot watch the HTTP server's events: %s", strerror(-e));
		MHD_stop_daemon(h->d);
		h->d = NULL;
		return 1;
	}
	h->epfd = di->epoll_fd;
	h->https = https;
	snprintf(h->listen, sizeof h->listen, "%s", spec);
	pump(h);
	log_info(h->lg, "start", "HTTP endpoint on %s%s: /api, /metrics, /health", addr, https ? " (https)" : "");
	return 0;
}

int http_new(struct http **hp, const struct http_env *env, char *err, size_t errlen)
{
	*hp = NULL;
	struct http *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	h->loop = env->loop;
	h->lg = env->lg;
	h->srv = env->srv;
	h->full = env->cfg;
	h->cfg = &env->cfg->server;
	h->epfd = -1;
	h->start_ms = loop_now(env->loop);
	struct server_parts sp;
	server_parts(h->srv, &sp);
	int e = http__auth_new(&h->auth, h->lg, sp.store);
	if (e < 0 || (e = loop_add_fd(h->loop, http__auth_fd(h->auth), EPOLLIN, on_kdf, h)) < 0) {
		snprintf(err, errlen, "cannot start the HTTP login thread: %s", strerror(-e));
		http__auth_free(h->auth);
		free(h);
		return 1;
	}
	int rc = daemon_start(h, h->cfg->http, err, errlen);
	if (rc) {
		http_free(h);
		return rc;
	}
	*hp = h;
	return 0;
}

void http_reload(struct http *h)
{
	if (!strcmp(h->listen, h->cfg->http))
		return;
	char was[sizeof h->listen], err[512];
	snprintf(was, sizeof was, "%s", h->listen);
	daemon_stop(h);
	if (daemon_start(h, h->cfg->http, err, sizeof err) == 0)
		return;
	log_error(h->lg, "reload", "%s; back on %s", err, was);
	if (daemon_start(h, was, err, sizeof err) != 0)
		log_error(h->lg, "reload", "HTTP endpoint off: %s", err);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	daemon_stop(h);
	http__sse_free(h);
	if (h->auth) {
		loop_del_fd(h->loop, http__auth_fd(h->auth));
		http__auth_free(h->auth);
	}
	free(h);
}
