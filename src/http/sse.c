/* sse.c: /api/events (Server-Sent Events of every captured SIP message) and /api/calls/{id}/messages, from the capture ring. */
#include "http/http_int.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "capture/capture.h"
#include "core/log.h"

#define SSE_CLIENTS_MAX 16         /* event streams at once; more get 503 */
#define SSE_QUEUE_MAX (256 * 1024) /* bytes queued for one client; past it, it is dropped */
#define SSE_SNDBUF (64 * 1024)     /* the socket's send buffer for a stream */
#define SSE_PING_MS 15000          /* a comment line this often keeps proxies from closing it */
#define SSE_TIMEOUT_S 60           /* a client that reads nothing this long while data waits goes */
#define FIRST_LINE_MAX 300
/* The most JSON one /api/calls/{id}/messages answer holds (it is built on the loop; a call
 * may hold a quarter of the ring, and escaping blows odd bytes up sixfold). */
#define MESSAGES_JSON_MAX (2 * 1024 * 1024)

/* One event stream. It lives from its request to the destruction of its response
 * (stream_free); r is NULL once the request is over. */
struct http_sse_client {
	struct http_sse_client *next;
	struct http_sse *owner;
	struct http_req *r;
	char *q; /* events not yet handed to libmicrohttpd */
	size_t qlen, qoff, qcap;
	bool suspended; /* nothing to send: waits for an event */
	bool dead;      /* overflowed or closing: the stream ends at the next read */
};

struct http_sse {
	struct http *h;
	struct http_sse_client *clients;
	unsigned n;
	int handle; /* capture_listen's, or -1 */
	struct timer ping;
};

static struct str first_line(struct str text)
{
	size_t n = 0;
	while (n < text.l && n < FIRST_LINE_MAX && text.p[n] != '\r' && text.p[n] != '\n')
		n++;
	return (struct str){ text.p, n };
}

/* The members every message has in both the event and the message list. */
static void msg_fields(struct http_buf *b, const struct capture_msg *m)
{
	char local[80], remote[80];
	tp_addr_str(&m->local, local, sizeof local);
	tp_addr_str(&m->remote, remote, sizeof remote);
	http__printf(b, "\"time\":%llu,\"dir\":\"%s\",\"proto\":\"%s\",\"local\":", (unsigned long long)m->wall_ms,
		     m->out ? "out" : "in", http__proto_name(m->proto));
	http__json_cstr(b, local);
	http__put(b, ",\"remote\":", 10);
	http__json_cstr(b, remote);
	http__put(b, ",\"first_line\":", 14);
	http__json_str(b, first_line(m->text));
}

static void wake(struct http_sse_client *k)
{
	if (k->suspended && k->r) {
		k->suspended = false;
		MHD_resume_connection(k->r->c);
		http__pump_soon(k->owner->h);
	}
}

/* Appends text to every client's queue; a client that cannot take it is dropped. */
static void broadcast(struct http_sse *s, const char *text, size_t len)
{
	for (struct http_sse_client *k = s->clients; k; k = k->next) {
		if (k->dead)
			continue;
		if (k->qoff == k->qlen)
			k->qlen = k->qoff = 0;
		if (k->qlen + len > SSE_QUEUE_MAX) {
			/* Its memory goes now; the connection goes at the next read, or after
			 * SSE_TIMEOUT_S when the client reads nothing at all. */
			log_warn(s->h->lg, "http", "event stream to %s dropped: %zu bytes unread",
				 k->r ? k->r->ip : "?", k->qlen - k->qoff);
			k->dead = true;
			free(k->q);
			k->q = NULL;
			k->qlen = k->qoff = k->qcap = 0;
		} else {
			if (k->qlen + len > k->qcap) {
				size_t cap = k->qcap ? k->qcap : 4096;
				while (cap < k->qlen + len)
					cap *= 2;
				char *p = realloc(k->q, cap);
				if (!p) {
					k->dead = true;
					wake(k);
					continue;
				}
				k->q = p;
				k->qcap = cap;
			}
			memcpy(k->q + k->qlen, text, len);
			k->qlen += len;
		}
		/* The loop sends at its next turn (http__pump_soon): nothing of HTTP runs inside
		 * the SIP code that captured the message. */
		wake(k);
	}
}

static void on_msg(const struct capture_msg *m, void *arg)
{
	struct http_sse *s = arg;
	struct http_buf b = { 0 };
	http__put(&b, "event: sip\ndata: {\"call_id\":", 28);
	http__json_str(&b, m->call_id.l ? m->call_id : capture_find_call_id(m->text));
	http__putc(&b, ',');
	msg_fields(&b, m);
	http__put(&b, "}\n\n", 3);
	if (!b.oom)
		broadcast(s, b.p, b.len);
	free(b.p);
}

static void on_ping(void *arg)
{
	struct http_sse *s = arg;
	/* A stream whose login has ended (logout, its admin deleted or given another
	 * password, its token revoked) ends here, at the latest a ping after. */
	for (struct http_sse_client *k = s->clients; k; k = k->next)
		if (!k->dead && k->r && !http__req_authorized(s->h, k->r)) {
			log_info(s->h->lg, "http", "event stream to %s closed: its login has ended", k->r->ip);
			k->dead = true;
			wake(k);
		}
	broadcast(s, ": ping\n\n", 8);
	timer_start(loop_timers(s->h->loop), &s->ping, SSE_PING_MS, on_ping, s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_sse_client *k = cls;
	if (k->dead || !k->r)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (k->qoff == k->qlen) {
		/* Nothing to send: libmicrohttpd would call again at once; wait for an event. */
		k->qlen = k->qoff = 0;
		k->suspended = true;
		MHD_suspend_connection(k->r->c);
		return 0;
	}
	size_t n = k->qlen - k->qoff < max ? k->qlen - k->qoff : max;
	memcpy(buf, k->q + k->qoff, n);
	k->qoff += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct http_sse_client *k = cls;
	struct http_sse *s = k->owner;
	struct http_sse_client **pp = &s->clients;
	while (*pp && *pp != k)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = k->next;
		s->n--;
	}
	if (k->r)
		k->r->sse = NULL;
	free(k->q);
	free(k);
	if (!s->n) {
		struct server_parts sp;
		server_parts(s->h->srv, &sp);
		if (s->handle >= 0)
			capture_unlisten(sp.capture, s->handle);
		s->handle = -1;
		timer_stop(loop_timers(s->h->loop), &s->ping);
	}
}

int http__sse_open(struct http *h, struct http_req *r)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	if (!h->sse) {
		h->sse = calloc(1, sizeof *h->sse);
		if (!h->sse)
			return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
		h->sse->h = h;
		h->sse->handle = -1;
	}
	struct http_sse *s = h->sse;
	if (s->n >= SSE_CLIENTS_MAX)
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams (%d)",
					 SSE_CLIENTS_MAX);
	if (s->handle < 0) {
		s->handle = capture_listen(sp.capture, on_msg, s);
		if (s->handle < 0)
			return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
		timer_start(loop_timers(h->loop), &s->ping, SSE_PING_MS, on_ping, s);
	}
	struct http_sse_client *k = calloc(1, sizeof *k);
	struct MHD_Response *resp =
		k ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, k, stream_free) : NULL;
	if (!resp) {
		free(k);
		if (!s->n) {
			capture_unlisten(sp.capture, s->handle);
			s->handle = -1;
			timer_stop(loop_timers(h->loop), &s->ping);
		}
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
	}
	k->owner = s;
	k->r = r;
	r->sse = k;
	k->next = s->clients;
	s->clients = k;
	s->n++;
	/* A first comment, so that the client sees the stream open at once. */
	static const char hello[] = ": parley events\n\n";
	k->q = malloc(sizeof hello);
	if (k->q) {
		memcpy(k->q, hello, sizeof hello - 1);
		k->qlen = sizeof hello - 1;
		k->qcap = sizeof hello;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Content-Security-Policy", HTTP_API_CSP);
	MHD_set_connection_option(r->c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)SSE_TIMEOUT_S);
	/* The kernel's share of a slow reader's backlog stays small as well (it would take
	 * megabytes on its own), so that SSE_QUEUE_MAX is what decides when it is dropped. */
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
	int sndbuf = SSE_SNDBUF;
	if (ci && setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0)
		log_debug(h->lg, "http", "event stream to %s: SO_SNDBUF: %s", r->ip, strerror(errno));
	enum MHD_Result ret = MHD_queue_response(r->c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	log_info(h->lg, "http", "admin %s follows events from %s", r->admin, r->ip);
	return ret;
}

void http__sse_gone(struct http_req *r)
{
	if (!r->sse)
		return;
	r->sse->r = NULL;
	r->sse->dead = true;
	r->sse = NULL;
}

void http__sse_close_all(struct http *h)
{
	if (!h->sse)
		return;
	for (struct http_sse_client *k = h->sse->clients; k; k = k->next) {
		k->dead = true;
		wake(k);
	}
}

void http__sse_free(struct http *h)
{
	if (!h->sse)
		return;
	/* The streams are gone with the listener; what is left is the listener handle. */
	struct server_parts sp;
	server_parts(h->srv, &sp);
	if (h->sse->handle >= 0)
		capture_unlisten(sp.capture, h->sse->handle);
	timer_stop(loop_timers(h->loop), &h->sse->ping);
	free(h->sse);
	h->sse = NULL;
}

/* ---- GET /api/calls/{call_id}/messages ------------------------------------------------------- */

struct msgs {
	struct http_buf *b;
	bool first;
	bool cut; /* the answer reached MESSAGES_JSON_MAX: later messages are left out */
};

static int msg_row(const struct capture_msg *m, void *arg)
{
	struct msgs *w = arg;
	if (w->b->len >= MESSAGES_JSON_MAX) {
		w->cut = true;
		return 1;
	}
	http__putc(w->b, w->first ? '{' : ',');
	if (!w->first)
		http__putc(w->b, '{');
	w->first = false;
	msg_fields(w->b, m);
	http__put(w->b, ",\"text\":", 8);
	http__json_str(w->b, m->text);
	http__putc(w->b, '}');
	return w->b->oom;
}

int http__call_messages(struct http *h, struct http_req *r, struct str call_id)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	struct http_buf b = { 0 };
	struct msgs w = { &b, true, false };
	http__putc(&b, '[');
	capture_each(sp.capture, call_id, msg_row, &w);
	http__putc(&b, ']');
	/* The oldest messages (the start of the ladder) are kept; a header says more exist. */
	return http__reply_json_hdr(r, MHD_HTTP_OK, &b, w.cut ? "X-Parley-Truncated" : NULL, "true");
}
