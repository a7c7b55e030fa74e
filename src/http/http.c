/* http.c: libmicrohttpd in its external epoll mode on Parley's loop: /metrics, /health, 404 and 405 for the rest. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/timer.h"
#include "http/http_int.h"

struct http {
	struct loop *loop;
	struct log *lg;
	const struct server *srv;
	struct MHD_Daemon *d;
	int epfd;          /* libmicrohttpd's epoll fd, watched by our loop; -1 before */
	struct timer tmr;  /* libmicrohttpd's next timeout (idle connections) */
	uint64_t start_ms; /* loop time at start: uptime */
	char listen[300];  /* for log lines */
};

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

/* Lets libmicrohttpd do what is ready, then arms our timer for its next timeout. */
static void pump(struct http *h)
{
	MHD_run(h->d);
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		timer_start(loop_timers(h->loop), &h->tmr, ms > 60000 ? 60000 : ms, on_timer, h);
	else
		timer_stop(loop_timers(h->loop), &h->tmr);
}

static void on_timer(void *arg)
{
	pump(arg);
}

static void on_ready(int fd, uint32_t events, void *arg)
{
	pump(arg);
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

/* Queues a response of len bytes; body is freed by libmicrohttpd when owned. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *ctype, char *body, size_t len,
			     bool owned)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_NO ||
	    (code == MHD_HTTP_METHOD_NOT_ALLOWED &&
	     MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") == MHD_NO)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *s)
{
	return reply(c, code, "text/plain; charset=utf-8", (char *)s, strlen(s), false);
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
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, true);
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
	return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body, (size_t)n, true);
}

static enum MHD_Result on_request(void *arg, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct http *h = arg;
	log_debug(h->lg, "http", "%s %s", method, url);
	/* Neither path takes a body: a request with one is answered before it is read (and
	 * the connection closed), so it costs no memory. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD\n");
	/* Authentication: none yet (README "Metrics"); admin accounts come with the API. */
	if (strcmp(url, "/metrics") == 0)
		return metrics(h, c);
	if (strcmp(url, "/health") == 0)
		return health(h, c);
	const struct http_asset *a = http__asset(url);
	if (a)
		return http__asset_reply(c, a);
	return text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics or /health\n");
}

int http_new(struct http **hp, const struct http_env *env, char *err, size_t errlen)
{
	*hp = NULL;
	struct sockaddr_storage sa;
	socklen_t salen;
	if (!parse_addr(env->listen, &sa, &salen)) {
		snprintf(err, errlen, "--http %s: expected ADDR:PORT with a numeric address", env->listen);
		return 2;
	}
	struct http *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	h->loop = env->loop;
	h->lg = env->lg;
	h->srv = env->srv;
	h->epfd = -1;
	h->start_ms = loop_now(env->loop);
	snprintf(h->listen, sizeof h->listen, "%s", env->listen);
	/* Our own listening socket, so that a failure to bind says why (port in use, ...). */
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "cannot listen for HTTP on %s: %s", env->listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(h);
		return 1;
	}
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	/* The logger comes first, so that libmicrohttpd's messages about the options go to
	 * our log too. */
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MAX_REQUEST, MHD_OPTION_END);
	if (!h->d) {
		/* fd is not closed here: whether a failed start has closed it already depends
		 * on the library's version, and the process exits on this path anyway. */
		snprintf(err, errlen, "cannot start the HTTP server on %s (see the log)", env->listen);
		free(h);
		return 1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	int e = di ? loop_add_fd(h->loop, di->epoll_fd, EPOLLIN, on_ready, h) : -EINVAL;
	if (e < 0) {
		snprintf(err, errlen, "cannot watch the HTTP server's events: %s", strerror(-e));
		http_free(h);
		return 1;
	}
	h->epfd = di->epoll_fd;
	pump(h);
	log_info(h->lg, "start", "HTTP endpoint on %s: /metrics, /health", env->listen);
	*hp = h;
	return 0;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	timer_stop(loop_timers(h->loop), &h->tmr);
	if (h->epfd >= 0)
		loop_del_fd(h->loop, h->epfd);
	/* Closes the connections and the listening socket. */
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h);
}
