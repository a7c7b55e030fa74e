/* http_int.h: the HTTP module's own parts: text buffers and JSON, logins and sessions, the API's requests, the dashboard's files. */
#ifndef PARLEY_HTTP_INT_H
#define PARLEY_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "core/str.h"
#include "core/timer.h"
#include "http/http.h"
#include "server/server.h"
#include "transport/transport.h"

/* ---- text out ------------------------------------------------------------------------------ */

/* Text built for one response; a failed allocation sets oom and later writes do nothing. */
struct http_buf {
	char *p;
	size_t len, cap;
	bool oom;
};
void http__printf(struct http_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void http__put(struct http_buf *b, const char *p, size_t n);
void http__putc(struct http_buf *b, char c);
/* s as a JSON string, quotes included: ", \ and control characters escaped, and every byte
 * that is not part of well-formed UTF-8 written as U+FFFD, so the text is always JSON. */
void http__json_str(struct http_buf *b, struct str s);
void http__json_cstr(struct http_buf *b, const char *s); /* NULL: "" */
/* "udp", "tcp", "tls", "ws", "wss": a transport as the API writes it. */
const char *http__proto_name(enum tp_proto p);

/* Writes srv's figures in the Prometheus text exposition format (version 0.0.4);
 * uptime_s is how long the server has run. */
void http__metrics(struct http_buf *b, const struct server *srv, uint64_t uptime_s);

/* ---- text in: what the module parses itself (the rest is libmicrohttpd's and jansson's) ---- */

#define HTTP_PASSWORD_MAX 1023 /* bytes; as `parley user` and `parley admin` */

/* Splits "user@domain" into views and checks their characters; NULL when good, else why. */
const char *http__split_user(struct str who, struct str *user, struct str *domain);
/* One line of a user import body ('user@domain,password', as `parley user import`). */
struct http_import_line {
	struct str user, domain, password; /* views into the body */
	const char *error;                 /* NULL: a good line; else why it is bad */
};
/* Takes the next line that is not blank or a # comment from *rest (moving it on, counting
 * lines in *lineno). Returns 1 with *out filled, or 0 at the end. */
int http__import_next(struct str *rest, unsigned *lineno, struct http_import_line *out);

/* ---- logins: admin passwords, sessions, bearer tokens, the failed-login limit (login.c) ---- */

#define HTTP_NAME_MAX 64   /* STORE_ADMIN_NAME_MAX */
#define HTTP_COOKIE_LEN 43 /* 32 random bytes in unpadded base64url */

/* One password check, done on the KDF thread: it reads pwhash and password and sets ok;
 * nothing else is shared with the thread. */
struct http_job {
	struct http_job *next;
	char pwhash[128]; /* crypto_pwhash_STRBYTES; a dummy when !exists */
	char password[HTTP_PASSWORD_MAX + 1];
	bool exists;  /* the admin exists (the check runs anyway: same time either way) */
	bool ok;      /* OUT: the password matches and the admin exists */
	bool aborted; /* OUT: never checked (the endpoint stopped) */
	void *arg;    /* the request waiting for it */
	char src[64]; /* the source it is counted under (set by http__auth_submit) */
};

struct http_auth;
struct log;
struct store;

/* Sets up the tables and starts the KDF thread; done jobs are announced on an eventfd
 * (http__auth_fd) for the loop to call http__auth_collect. 0 or -errno. */
int http__auth_new(struct http_auth **ap, struct log *lg, struct store *st);
/* Stops the thread (after the job it runs) and frees; jobs not handed back are dropped. */
void http__auth_free(struct http_auth *a);
int http__auth_fd(const struct http_auth *a);
/* Queues a check for source address ip; -EBUSY when too many wait, -EAGAIN when that
 * source has JOBS_PER_SOURCE waiting already (the caller answers 503). */
int http__auth_submit(struct http_auth *a, struct http_job *j, const char *ip);
/* Hands every finished job to done (on the loop). */
void http__auth_collect(struct http_auth *a, void (*done)(struct http_job *j, void *arg), void *arg);
/* Waits for the running check, then hands back every queued and finished job (queued
 * ones aborted); the thread runs on for later jobs. For a listener about to close. */
void http__auth_drain(struct http_auth *a, void (*done)(struct http_job *j, void *arg), void *arg);
/* Fills j for admin name from the store (a dummy hash when there is no such admin, so
 * that the check costs the same); -EIO after logging when the store fails. */
int http__auth_prepare(struct http_auth *a, struct http_job *j, struct str name, struct str password);

/* The failed-login limit: whether a password login from source address ip (text) must
 * wait (429): that source (an IPv6 one by its /64) failed FAIL_LIMIT times within a
 * minute and its last failure is less than a minute old, or every source together failed
 * FAIL_GLOBAL times this minute. */
bool http__auth_limited(struct http_auth *a, const char *ip, uint64_t now_ms);
/* Counts a failed login of source ip and logs it at warn (rate-limited): "admin login
 * failed for NAME from IP: WHY". */
void http__auth_failed(struct http_auth *a, const char *ip, struct str name, const char *why, uint64_t now_ms);
/* Logs a login refused by the limit (rate-limited); it is not counted: a source that
 * keeps trying does not wait longer for it. */
void http__auth_refused(struct http_auth *a, const char *ip, struct str name, uint64_t now_ms);
/* A login of source ip succeeded: its failures are forgotten. */
void http__auth_succeeded(struct http_auth *a, const char *ip);

/* A new session of admin name, whose password hash is pwhash; its id (unpadded base64url,
 * NUL-terminated) into cookie. */
void http__auth_session_new(struct http_auth *a, const char *name, const char *pwhash, uint64_t now_ms,
			    char cookie[HTTP_COOKIE_LEN + 1] /* OUT */);
/* The admin of a live session id (refreshing its idle time), or false. A session ends 24 h
 * after its login, and once its admin is found deleted or with another password hash (the
 * store is read again at most every 30 s). */
bool http__auth_session(struct http_auth *a, const char *cookie, uint64_t now_ms, char name[HTTP_NAME_MAX + 1]);
void http__auth_session_end(struct http_auth *a, const char *cookie);
/* Checks a bearer token: 0 with its admin's name, -EACCES (counted and logged as a failed
 * login of ip), -EAGAIN when ip is rate-limited. */
int http__auth_bearer(struct http_auth *a, const char *token, const char *ip, uint64_t now_ms,
		      char name[HTTP_NAME_MAX + 1]);
/* Whether a token is still in the table (read again every 30 s); nothing is counted. */
bool http__auth_token_known(struct http_auth *a, const char *token, uint64_t now_ms);

/* ---- the endpoint and one request ----------------------------------------------------------- */

struct MHD_Connection;
struct MHD_Daemon;
struct http_sse;
struct http_sse_client;

/* One connection libmicrohttpd holds, for the deadline of its request headers (http.c):
 * libmicrohttpd's own timeout counts idle time only, which one header line every few
 * seconds never reaches. */
struct http_conn {
	struct MHD_Connection *c; /* NULL: the slot is free */
	uint64_t since_ms;        /* loop time it was accepted, or its last request ended */
	bool busy;                /* a request's headers are in: no deadline until it ends */
	bool cut;                 /* shut down past the deadline; libmicrohttpd closes it */
};

struct http {
	struct loop *loop;
	struct log *lg;
	struct server *srv;
	const struct config *full;    /* live: TLS files, the database path */
	const struct server_cfg *cfg; /* its server part: metrics-auth is read at each request */
	struct MHD_Daemon *d;
	int epfd;          /* libmicrohttpd's epoll fd, watched by our loop; -1 before */
	struct timer tmr;  /* libmicrohttpd's next timeout (idle connections), at most a second away */
	uint64_t start_ms; /* loop time at start: uptime */
	char listen[300];  /* as configured ("https:ADDR:PORT", ...), for reloads and logs */
	bool https;
	struct http_auth *auth;
	struct http_sse *sse; /* Server-Sent Events clients (sse.c) */
	struct http_conn conns[HTTP_MAX_CONNECTIONS];
	struct log_limit cut_log; /* "closed: no request within ..." lines */
};

/* The state of one request, from its first call to its completion. */
struct http_req {
	struct http *h;
	struct MHD_Connection *c;
	char *body; /* the request body, NUL-terminated; NULL when none */
	size_t len, cap, max;
	bool too_big;
	bool suspended;                /* waiting for its password check */
	bool checked;                  /* the check is done: job.ok says how */
	char ip[64];                   /* the source address, text */
	char admin[HTTP_NAME_MAX + 1]; /* who is logged in */
	bool by_cookie;                /* logged in with the session cookie (not a token) */
	bool authed;                   /* authenticated at its first call, before any body */
	struct http_job job;
	struct http_sse_client *sse; /* this request is an event stream (sse.c) */
};

/* The Content-Security-Policy of every reply but the dashboard's files (with
 * X-Content-Type-Options: nosniff): an API reply is data, never a page: nothing it may load
 * or run, no frame holding it. */
#define HTTP_API_CSP "default-src 'none'; frame-ancestors 'none'"

/* Responses; each returns what libmicrohttpd's access handler returns. json takes b's text
 * (freeing it) and answers 503 when b ran out of memory. */
int http__reply_json(struct http_req *r, unsigned code, struct http_buf *b);
/* json with one more header (hname NULL: none). */
int http__reply_json_hdr(struct http_req *r, unsigned code, struct http_buf *b, const char *hname, const char *hvalue);
int http__reply_error(struct http_req *r, unsigned code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int http__reply_empty(struct http_req *r, unsigned code);
/* json (b may be empty: no body) with the session cookie set to cookie, or cleared when
 * cookie is "". */
int http__reply_cookie(struct http_req *r, unsigned code, struct http_buf *b, const char *cookie);

/* /api/events: answers r with an event stream of every captured message (sse.c). */
int http__sse_open(struct http *h, struct http_req *r);
/* r's request is over: its stream (if any) ends. */
void http__sse_gone(struct http_req *r);
/* Ends every stream (the listener closes): each is woken to see it. */
void http__sse_close_all(struct http *h);
void http__sse_free(struct http *h);
/* /api/calls/{call_id}/messages. */
int http__call_messages(struct http *h, struct http_req *r, struct str call_id);

/* Every /api/ path (api.c). */
int http__api(struct http *h, struct http_req *r, const char *method, const char *url);
/* The checks an /api/ request passes on its first call, when its headers are in and
 * before any of its body is read: credentials (r->authed), and a JSON Content-Type on a
 * login. 0 to go on, or -1 with the answer given in *ret. */
int http__api_begin(struct http *h, struct http_req *r, const char *method, const char *url, int *ret);
/* Whether the credentials r came with still hold (its session lives, its bearer token is
 * still known): for a long stream, asked again now and then (api.c). */
bool http__req_authorized(struct http *h, struct http_req *r);
/* Runs libmicrohttpd at the loop's next turn: in its external epoll mode a resumed
 * connection goes on only when MHD_run is called again, which nothing else may do soon. */
void http__pump_soon(struct http *h);
/* The password check of r ended: wakes its request (http.c). */
void http__job_done(struct http_job *j, void *arg);

/* ---- the dashboard's files (assets.c) ------------------------------------------------------- */

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
int http__asset_reply(struct MHD_Connection *c, const struct http_asset *a);

#endif
