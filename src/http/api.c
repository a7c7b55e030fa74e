/* api.c: the JSON API under /api/: login and sessions, registrations, calls, users, peers, stats. */
#include "http/http_int.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cdr/cdr.h"
#include "core/clock.h"
#include "core/log.h"
#include "dialog/dialog.h"
#include "location/location.h"
#include "route/route.h"
#include "sip/sip.h"
#include "store/store.h"
#include "transport/transport.h"
#include "txn/txn.h"

#define CALLS_LIMIT_DEFAULT 50
#define CALLS_LIMIT_MAX 1000
#define REGS_LIMIT_DEFAULT 1000 /* bindings in one answer: 200,000 of them made 56 MB */
#define REGS_LIMIT_MAX 10000

static const char *arg(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

/* A number argument: def when absent; false when not a number up to max. */
static bool num_arg(struct http_req *r, const char *name, uint64_t def, uint64_t max, uint64_t *out)
{
	const char *v = arg(r, name);
	*out = def;
	return !v || str_to_u64(str_from_cstr(v), max, out);
}

/* The body as a JSON object, or NULL after answering 400 (*ret set). */
static json_t *body_object(struct http_req *r, int *ret)
{
	json_error_t je;
	json_t *j = r->body ? json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!j || !json_is_object(j)) {
		*ret = r->body && !j ? http__reply_error(r, MHD_HTTP_BAD_REQUEST, "body is not JSON: %s", je.text)
				     : http__reply_error(r, MHD_HTTP_BAD_REQUEST, "expected a JSON object as the body");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A string member of o as a view (valid while o lives); false when missing or not a string. */
static bool member(json_t *o, const char *key, struct str *out)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return false;
	*out = (struct str){ json_string_value(v), json_string_length(v) };
	return true;
}

/* ---- login ------------------------------------------------------------------------------- */

static int login(struct http *h, struct http_req *r)
{
	uint64_t now = loop_now(h->loop);
	if (r->checked) {
		/* The KDF thread has answered (http__job_done resumed us). */
		if (r->job.aborted)
			return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the endpoint is restarting");
		json_t *o = json_loadb(r->body, r->len, 0, NULL);
		struct str name = STR_NULL;
		if (o)
			member(o, "name", &name);
		int ret;
		if (r->job.ok) {
			char cookie[HTTP_COOKIE_LEN + 1], nm[HTTP_NAME_MAX + 1];
			str_to_cbuf(name, nm, sizeof nm);
			http__auth_session_new(h->auth, nm, r->job.pwhash, now, cookie);
			http__auth_succeeded(h->auth, r->ip);
			log_info(h->lg, "http", "admin %s logged in from %s", nm, r->ip);
			struct http_buf b = { 0 };
			http__put(&b, "{\"name\":", 8);
			http__json_str(&b, name);
			http__putc(&b, '}');
			ret = http__reply_cookie(r, MHD_HTTP_OK, &b, cookie);
			explicit_bzero(cookie, sizeof cookie);
		} else {
			http__auth_failed(h->auth, r->ip, name, r->job.exists ? "bad password" : "no such admin", now);
			ret = http__reply_error(r, MHD_HTTP_UNAUTHORIZED, "bad name or password");
		}
		json_decref(o);
		return ret;
	}
	if (http__auth_limited(h->auth, r->ip, now)) {
		json_t *o = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
		struct str name = STR_NULL;
		if (o)
			member(o, "name", &name);
		http__auth_refused(h->auth, r->ip, name, now);
		json_decref(o);
		return http__reply_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "too many failed logins: wait a minute");
	}
	int ret;
	json_t *o = body_object(r, &ret);
	if (!o)
		return ret;
	struct str name, password;
	if (!member(o, "name", &name) || !member(o, "password", &password)) {
		json_decref(o);
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "expected {\"name\": ..., \"password\": ...}");
	}
	/* What no admin can have: the check would see a shorter password (it stops at a NUL). */
	if (password.l > HTTP_PASSWORD_MAX || memchr(password.p, '\0', password.l)) {
		http__auth_failed(h->auth, r->ip, name, "bad password", now);
		json_decref(o);
		return http__reply_error(r, MHD_HTTP_UNAUTHORIZED, "bad name or password");
	}
	if (http__auth_prepare(h->auth, &r->job, name, password) < 0) {
		json_decref(o);
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot read the admin accounts");
	}
	int e = http__auth_submit(h->auth, &r->job, r->ip);
	if (e < 0) {
		/* Counted as a failure: a source that floods the queue soon has to wait. */
		http__auth_failed(h->auth, r->ip, name,
				  e == -EAGAIN ? "too many logins at once from there" : "too many logins at once", now);
		json_decref(o);
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too many logins at once: try again");
	}
	json_decref(o);
	/* The Argon2id check runs on the KDF thread; the loop goes on with SIP meanwhile. */
	r->suspended = true;
	MHD_suspend_connection(r->c);
	return MHD_YES;
}

/* Who r is: a bearer token, else the session cookie. 0, or the answer to give (401, 403,
 * 429) in *ret. */
static int authenticate(struct http *h, struct http_req *r, const char *method, int *ret)
{
	uint64_t now = loop_now(h->loop);
	const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth) {
		if (strncmp(auth, "Bearer ", 7) != 0) {
			*ret = http__reply_error(r, MHD_HTTP_UNAUTHORIZED, "expected Authorization: Bearer TOKEN");
			return -1;
		}
		int e = http__auth_bearer(h->auth, auth + 7, r->ip, now, r->admin);
		if (e == -EAGAIN) {
			*ret = http__reply_error(r, MHD_HTTP_TOO_MANY_REQUESTS,
						 "too many failed logins: wait a minute");
			return -1;
		}
		if (e) {
			*ret = http__reply_error(r, MHD_HTTP_UNAUTHORIZED, "unknown bearer token");
			return -1;
		}
		return 0;
	}
	const char *ck = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, "parley_session");
	if (!ck || !http__auth_session(h->auth, ck, now, r->admin)) {
		*ret = http__reply_error(r, MHD_HTTP_UNAUTHORIZED,
					 "log in first (POST /api/login) or send a bearer token");
		return -1;
	}
	r->by_cookie = true;
	/* A cross-site form can carry the cookie but cannot set a header: changes made with
	 * the cookie must come with X-Parley: 1, as the dashboard sends. */
	bool change = strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0;
	const char *x = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "X-Parley");
	if (change && !(x && !strcmp(x, "1"))) {
		*ret = http__reply_error(r, MHD_HTTP_FORBIDDEN,
					 "a change made with the session cookie needs X-Parley: 1");
		return -1;
	}
	return 0;
}

int http__api_begin(struct http *h, struct http_req *r, const char *method, const char *url, int *ret)
{
	if (!strcmp(url, "/api/login")) {
		/* A cross-site form can send text/plain, never application/json: a login that
		 * is not JSON may be a page logging the browser into someone else's account. */
		const char *ct = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!strcmp(method, MHD_HTTP_METHOD_POST) &&
		    !(ct && !strncasecmp(ct, "application/json", 16) && (!ct[16] || ct[16] == ';' || ct[16] == ' '))) {
			*ret = http__reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
						 "a login needs Content-Type: application/json");
			return -1;
		}
		return 0;
	}
	if (authenticate(h, r, method, ret) < 0)
		return -1;
	r->authed = true;
	return 0;
}

bool http__req_authorized(struct http *h, struct http_req *r)
{
	uint64_t now = loop_now(h->loop);
	const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth)
		return !strncmp(auth, "Bearer ", 7) && http__auth_token_known(h->auth, auth + 7, now);
	const char *ck = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, "parley_session");
	char name[HTTP_NAME_MAX + 1];
	return ck && http__auth_session(h->auth, ck, now, name);
}

/* ---- registrations ------------------------------------------------------------------------ */

struct reg_walk {
	struct http_buf *b;
	struct str user; /* filter: the AOR, or its user part; empty: all */
	uint32_t now;
	bool first;
	uint64_t skip, left; /* matching bindings still to skip (offset), then to write (limit) */
};

static bool aor_matches(struct str aor, struct str user)
{
	if (!user.l || str_eq(aor, user))
		return true;
	return aor.l > user.l && aor.p[user.l] == '@' && !memcmp(aor.p, user.p, user.l);
}

static void reg_row(struct loc_binding *bd, void *arg)
{
	struct reg_walk *w = arg;
	struct str aor = loc_aor_key(bd->aor);
	if (bd->expires_at <= w->now || !aor_matches(aor, w->user) || !w->left)
		return;
	if (w->skip) {
		w->skip--;
		return;
	}
	w->left--;
	struct http_buf *b = w->b;
	struct tp_addr a;
	char src[80];
	loc_src_to_addr(&bd->src, &a);
	tp_addr_str(&a, src, sizeof src);
	http__put(b, w->first ? "{\"aor\":" : ",{\"aor\":", w->first ? 7 : 8);
	w->first = false;
	http__json_str(b, aor);
	http__put(b, ",\"contact\":", 11);
	http__json_str(b, loc_b_field(bd, LOC_URI));
	http__put(b, ",\"source\":", 10);
	http__json_cstr(b, src);
	http__put(b, ",\"transport\":", 13);
	http__json_cstr(b, http__proto_name((enum tp_proto)bd->src.proto));
	http__printf(b, ",\"expires\":%u,\"user_agent\":", bd->expires_at - w->now);
	http__json_str(b, loc_b_field(bd, LOC_UA));
	http__put(b, ",\"instance\":", 12);
	http__json_str(b, loc_b_field(bd, LOC_INSTANCE));
	struct str rid = loc_b_field(bd, LOC_REGID);
	uint64_t reg_id = 0;
	if (rid.l)
		str_to_u64(rid, UINT32_MAX, &reg_id);
	http__printf(b, ",\"reg_id\":%llu,\"connection\":", (unsigned long long)reg_id);
	if (bd->src.proto != TP_UDP && bd->src.conn_id)
		http__printf(b, "%llu}", (unsigned long long)bd->src.conn_id);
	else
		http__put(b, "null}", 5);
}

static int registrations(struct http *h, struct http_req *r, const char *method)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	if (!strcmp(method, MHD_HTTP_METHOD_DELETE)) {
		const char *aor = arg(r, "aor"), *contact = arg(r, "contact");
		if (!aor || !contact || !*aor || !*contact)
			return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "expected ?aor=AOR&contact=CONTACT");
		/* The location table keys AORs with the domain in lower case. */
		char key[600];
		size_t n = strlen(aor);
		const char *at = strchr(aor, '@');
		if (n >= sizeof key)
			return http__reply_error(r, MHD_HTTP_NOT_FOUND, "no such binding");
		for (size_t i = 0; i < n; i++)
			key[i] = at && aor + i > at && aor[i] >= 'A' && aor[i] <= 'Z' ? (char)(aor[i] + 32) : aor[i];
		key[n] = '\0';
		if (server_unbind(h->srv, str_from_cstr(key), str_from_cstr(contact)) < 0)
			return http__reply_error(r, MHD_HTTP_NOT_FOUND, "no binding of %s with contact %s", key,
						 contact);
		log_info(h->lg, "http", "admin %s removed the binding %s of %s", r->admin, contact, key);
		return http__reply_empty(r, MHD_HTTP_NO_CONTENT);
	}
	uint64_t limit, offset;
	if (!num_arg(r, "limit", REGS_LIMIT_DEFAULT, REGS_LIMIT_MAX, &limit) || limit == 0)
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "limit: a number from 1 to %d", REGS_LIMIT_MAX);
	if (!num_arg(r, "offset", 0, UINT32_MAX, &offset))
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "offset: a number");
	const char *user = arg(r, "user");
	struct http_buf b = { 0 };
	struct reg_walk w = { .b = &b,
			      .user = str_from_cstr(user ? user : ""),
			      .now = (uint32_t)(clock_wall_ms() / 1000),
			      .first = true,
			      .skip = offset,
			      .left = limit };
	http__putc(&b, '[');
	size_t cursor = 0;
	loc_walk(sp.loc, &cursor, (unsigned)loc_capacity(sp.loc), reg_row, &w);
	http__putc(&b, ']');
	return http__reply_json(r, MHD_HTTP_OK, &b);
}

/* ---- calls --------------------------------------------------------------------------------- */

struct calls_walk {
	struct http_buf *b;
	bool first;
};

static void opt_ms(struct http_buf *b, const char *key, uint64_t ms)
{
	if (ms)
		http__printf(b, ",\"%s\":%llu", key, (unsigned long long)ms);
	else
		http__printf(b, ",\"%s\":null", key);
}

/* The fields a call record and a call in progress share, from the object's opening brace
 * on: call_id, caller, callee, start, answer. */
static void call_head(struct calls_walk *w, struct str call_id, struct str caller, struct str callee, uint64_t start_ms,
		      uint64_t answer_ms)
{
	struct http_buf *b = w->b;
	http__put(b, w->first ? "{\"call_id\":" : ",{\"call_id\":", w->first ? 11 : 12);
	w->first = false;
	http__json_str(b, call_id);
	http__put(b, ",\"caller\":", 10);
	http__json_str(b, caller);
	http__put(b, ",\"callee\":", 10);
	http__json_str(b, callee);
	http__printf(b, ",\"start\":%llu", (unsigned long long)start_ms);
	opt_ms(b, "answer", answer_ms);
}

static int call_row(const struct store_call *c, void *arg)
{
	struct calls_walk *w = arg;
	struct http_buf *b = w->b;
	call_head(w, c->call_id, c->caller, c->callee, c->start_ms, c->answer_ms);
	opt_ms(b, "end", c->end_ms);
	http__put(b, ",\"result\":", 10);
	if (c->status)
		http__json_str(b, c->reason);
	else
		http__json_cstr(b, "in progress");
	http__printf(b, ",\"status\":%u,\"duration\":%llu,\"media\":", c->status, (unsigned long long)c->duration_ms);
	http__json_str(b, c->media);
	http__putc(b, '}');
	return b->oom ? -ENOMEM : 0;
}

static int calls(struct http *h, struct http_req *r)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	uint64_t limit, offset, total = 0;
	if (!num_arg(r, "limit", CALLS_LIMIT_DEFAULT, CALLS_LIMIT_MAX, &limit) || limit == 0)
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "limit: a number from 1 to %d", CALLS_LIMIT_MAX);
	if (!num_arg(r, "offset", 0, UINT32_MAX, &offset))
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "offset: a number");
	const char *u = arg(r, "user"), *cid = arg(r, "call_id"), *res = arg(r, "result");
	struct store_call_filter f = { str_from_cstr(u ? u : ""), str_from_cstr(cid ? cid : ""),
				       str_from_cstr(res ? res : "") };
	struct http_buf b = { 0 };
	http__put(&b, "{\"calls\":[", 10);
	struct calls_walk w = { &b, true };
	bool partial = false;
	int err = store_calls_query(sp.store, &f, (unsigned)limit, (unsigned)offset, &total, &partial, call_row, &w);
	if (err && !b.oom) {
		free(b.p);
		log_error(h->lg, "http", "cannot read call records: %s", store_errmsg(sp.store));
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot read call records: %s",
					 store_errmsg(sp.store));
	}
	/* The count stops past STORE_CALLS_COUNT_MAX, a search at its budget: "total" is then
	 * what was found, and says so ("partial": older records were not all read). */
	bool capped = total > STORE_CALLS_COUNT_MAX || partial;
	http__printf(&b, "],\"total\":%llu%s%s}",
		     (unsigned long long)(total > STORE_CALLS_COUNT_MAX ? STORE_CALLS_COUNT_MAX : total),
		     capped ? ",\"total_capped\":true" : "", partial ? ",\"partial\":true" : "");
	return http__reply_json(r, MHD_HTTP_OK, &b);
}

static int live_row(const struct cdr_live *l, void *arg)
{
	struct calls_walk *w = arg;
	struct http_buf *b = w->b;
	call_head(w, l->call_id, l->caller, l->callee, l->start_ms, l->answer_ms);
	http__printf(b, ",\"state\":\"%s\"}", l->answer_ms ? "answered" : "ringing");
	return b->oom;
}

static int calls_active(struct http *h, struct http_req *r)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	struct http_buf b = { 0 };
	struct calls_walk w = { &b, true };
	http__putc(&b, '[');
	cdr_each_live(sp.cdr, live_row, &w);
	http__putc(&b, ']');
	return http__reply_json(r, MHD_HTTP_OK, &b);
}

/* ---- users ---------------------------------------------------------------------------------- */

static int user_row(const struct store_user *u, void *arg)
{
	struct calls_walk *w = arg;
	struct http_buf *b = w->b;
	char who[600];
	snprintf(who, sizeof who, "%.*s@%.*s", STR_FMT(u->user), STR_FMT(u->domain));
	http__put(b, w->first ? "{\"user\":" : ",{\"user\":", w->first ? 8 : 9);
	w->first = false;
	http__json_cstr(b, who);
	http__putc(b, '}');
	return b->oom ? -ENOMEM : 0;
}

/* The answer to a failed user change. */
static int user_failed(struct http *h, struct http_req *r, int err, struct str user, struct str domain)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	if (err == -EEXIST)
		return http__reply_error(r, MHD_HTTP_CONFLICT, "user %.*s@%.*s exists", STR_FMT(user), STR_FMT(domain));
	if (err == -ENOENT)
		return http__reply_error(r, MHD_HTTP_NOT_FOUND, "no user %.*s@%.*s", STR_FMT(user), STR_FMT(domain));
	if (err == -EINVAL) {
		if (route_domain(sp.route, domain) < 0)
			return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "domain %.*s is not served here",
						 STR_FMT(domain));
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "bad user or password (1 to %d bytes)",
					 HTTP_PASSWORD_MAX);
	}
	log_error(h->lg, "http", "user %.*s@%.*s: %s", STR_FMT(user), STR_FMT(domain), store_errmsg(sp.store));
	return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", store_errmsg(sp.store));
}

/* POST /api/users/import: lines 'user@domain,password'; each good line is added, each bad
 * one reported; all in one transaction of the store. */
static int users_import(struct http *h, struct http_req *r)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	struct str rest = { r->body ? r->body : "", r->len };
	unsigned lineno = 0, added = 0;
	struct http_import_line ln;
	struct http_buf b = { 0 };
	bool first = true;
	http__put(&b, "{\"errors\":[", 11);
	int err = store_begin(sp.store);
	if (err) {
		free(b.p);
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", store_errmsg(sp.store));
	}
	while (http__import_next(&rest, &lineno, &ln)) {
		const char *why = ln.error;
		char msg[300];
		if (!why) {
			err = server_user_add(h->srv, ln.user, ln.domain, ln.password);
			if (err == 0) {
				added++;
				continue;
			}
			if (err == -EEXIST)
				why = "user exists";
			else if (err == -EINVAL)
				why = route_domain(sp.route, ln.domain) < 0 ? "domain not served here"
									    : "bad user or password";
			else {
				snprintf(msg, sizeof msg, "%s", store_errmsg(sp.store));
				why = msg;
			}
		}
		http__printf(&b, "%s{\"line\":%u,\"error\":", first ? "" : ",", lineno);
		http__json_cstr(&b, why);
		http__putc(&b, '}');
		first = false;
	}
	err = store_commit(sp.store);
	if (err) {
		free(b.p);
		return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "nothing imported: %s",
					 store_errmsg(sp.store));
	}
	log_info(h->lg, "http", "admin %s imported %u users", r->admin, added);
	http__printf(&b, "],\"added\":%u}", added);
	return http__reply_json(r, MHD_HTTP_OK, &b);
}

/* /api/users and /api/users/{user} (rest: what follows "/api/users"). */
static int users(struct http *h, struct http_req *r, const char *method, const char *rest)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	if (!strcmp(rest, "/import")) {
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
		return users_import(h, r);
	}
	if (!*rest) {
		if (get) {
			struct http_buf b = { 0 };
			struct calls_walk w = { &b, true };
			http__putc(&b, '[');
			int err = store_user_list(sp.store, user_row, &w);
			http__putc(&b, ']');
			if (err && !b.oom) {
				free(b.p);
				return http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", store_errmsg(sp.store));
			}
			return http__reply_json(r, MHD_HTTP_OK, &b);
		}
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or POST");
		int ret;
		json_t *o = body_object(r, &ret);
		if (!o)
			return ret;
		struct str who, pw, user, domain;
		const char *why = NULL;
		if (!member(o, "user", &who) || !member(o, "password", &pw))
			why = "expected {\"user\": \"user@domain\", \"password\": ...}";
		else if (!(why = http__split_user(who, &user, &domain)) && (pw.l == 0 || pw.l > HTTP_PASSWORD_MAX))
			why = "password: 1 to 1023 bytes";
		if (why) {
			json_decref(o);
			return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", why);
		}
		int err = server_user_add(h->srv, user, domain, pw);
		ret = err ? user_failed(h, r, err, user, domain) : http__reply_empty(r, MHD_HTTP_CREATED);
		if (!err)
			log_info(h->lg, "http", "admin %s added user %.*s", r->admin, STR_FMT(who));
		json_decref(o);
		return ret;
	}
	/* /{user@domain}, its escapes decoded by libmicrohttpd */
	const char *name = rest + 1;
	struct str user, domain;
	const char *why = rest[0] == '/' ? http__split_user(str_from_cstr(name), &user, &domain) : "bad path";
	if (why)
		return http__reply_error(r, MHD_HTTP_NOT_FOUND, "no such user: %s", why);
	if (!strcmp(method, MHD_HTTP_METHOD_DELETE)) {
		int err = server_user_del(h->srv, user, domain);
		if (err)
			return user_failed(h, r, err, user, domain);
		log_info(h->lg, "http", "admin %s deleted user %s", r->admin, name);
		return http__reply_empty(r, MHD_HTTP_NO_CONTENT);
	}
	if (strcmp(method, MHD_HTTP_METHOD_PUT))
		return http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "PUT or DELETE");
	int ret;
	json_t *o = body_object(r, &ret);
	if (!o)
		return ret;
	struct str pw;
	if (!member(o, "password", &pw) || pw.l == 0 || pw.l > HTTP_PASSWORD_MAX) {
		json_decref(o);
		return http__reply_error(r, MHD_HTTP_BAD_REQUEST, "expected {\"password\": ...} of 1 to %d bytes",
					 HTTP_PASSWORD_MAX);
	}
	int err = server_user_passwd(h->srv, user, domain, pw);
	ret = err ? user_failed(h, r, err, user, domain) : http__reply_empty(r, MHD_HTTP_NO_CONTENT);
	if (!err)
		log_info(h->lg, "http", "admin %s changed the password of user %s", r->admin, name);
	json_decref(o);
	return ret;
}

/* ---- peers and stats ------------------------------------------------------------------------ */

static int peers(struct http *h, struct http_req *r)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	struct http_buf b = { 0 };
	http__putc(&b, '[');
	const char *domain, *uri;
	bool relay;
	for (unsigned i = 0; route_peer_at(sp.route, i, &domain, &uri, &relay); i++) {
		http__put(&b, i ? ",{\"domain\":" : "{\"domain\":", i ? 11 : 10);
		http__json_cstr(&b, domain);
		http__put(&b, ",\"uri\":", 7);
		http__json_cstr(&b, uri);
		/* The server keeps no health of a static peer: each call tries it afresh
		 * (RFC 3263 failover among its addresses). */
		http__printf(&b, ",\"state\":\"configured\",\"relay\":%s}", relay ? "true" : "false");
	}
	http__putc(&b, ']');
	return http__reply_json(r, MHD_HTTP_OK, &b);
}

static int stats(struct http *h, struct http_req *r)
{
	struct server_parts sp;
	server_parts(h->srv, &sp);
	const struct server_stats *ss = server_stats(h->srv);
	const struct txn_stats *ts = txn_layer_stats(sp.txn);
	const struct tp_stats *tps = tp_stats(sp.tp);
	struct http_buf b = { 0 };
	http__printf(&b,
		     "{\"uptime_s\":%llu,\"bindings\":%zu,\"aors\":%zu,\"dialogs\":%u,\"transactions\":%u,"
		     "\"calls_active\":%u,\"requests\":{",
		     (unsigned long long)((loop_now(h->loop) - h->start_ms) / 1000), loc_binding_count(sp.loc),
		     loc_aor_count(sp.loc), dlg_count(sp.dialogs), ts->servers + ts->clients, cdr_active(sp.cdr));
	bool first = true;
	for (unsigned m = 1; m < SERVER_METHODS; m++) {
		http__printf(&b, "%s\"%s\":%llu", first ? "" : ",", sip_method_name((enum sip_method)m),
			     (unsigned long long)ss->requests[m]);
		first = false;
	}
	http__printf(&b, ",\"other\":%llu},\"responses\":{", (unsigned long long)ss->requests[SIP_METHOD_OTHER]);
	first = true;
	for (unsigned i = 0; i < 600; i++) {
		if (!ss->responses[i])
			continue;
		http__printf(&b, "%s\"%u\":%llu", first ? "" : ",", i + 100, (unsigned long long)ss->responses[i]);
		first = false;
	}
	static const char *const names[] = { [TP_TCP] = "tcp", [TP_TLS] = "tls", [TP_WS] = "ws", [TP_WSS] = "wss" };
	http__put(&b, "},\"connections\":{", 17);
	for (unsigned p = TP_TCP; p <= TP_WSS; p++)
		http__printf(&b, "%s\"%s\":%llu", p == TP_TCP ? "" : ",", names[p],
			     (unsigned long long)tps->open_by[p]);
	http__printf(&b, "},\"parse_errors\":%llu,\"store_failing\":%s}", (unsigned long long)ss->parse_errors,
		     ss->store_failing ? "true" : "false");
	return http__reply_json(r, MHD_HTTP_OK, &b);
}

/* ---- the router of /api/ ------------------------------------------------------------------- */

int http__api(struct http *h, struct http_req *r, const char *method, const char *url)
{
	const char *path = url + 4; /* "/..." after "/api" */
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	if (!strcmp(path, "/login")) {
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
		return login(h, r);
	}
	int ret;
	if (!r->authed && authenticate(h, r, method, &ret) < 0)
		return ret;
	if (!strcmp(path, "/logout")) {
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
		const char *ck = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, "parley_session");
		if (ck)
			http__auth_session_end(h->auth, ck);
		struct http_buf b = { 0 };
		return http__reply_cookie(r, MHD_HTTP_NO_CONTENT, &b, "");
	}
	if (!strcmp(path, "/me") && get) {
		struct http_buf b = { 0 };
		http__put(&b, "{\"name\":", 8);
		http__json_cstr(&b, r->admin);
		http__putc(&b, '}');
		return http__reply_json(r, MHD_HTTP_OK, &b);
	}
	if (!strcmp(path, "/registrations") && (get || !strcmp(method, MHD_HTTP_METHOD_DELETE)))
		return registrations(h, r, method);
	if (!strcmp(path, "/calls") && get)
		return calls(h, r);
	if (!strcmp(path, "/calls/active") && get)
		return calls_active(h, r);
	/* libmicrohttpd has decoded the path's %XX escapes: the Call-ID is all between the
	 * two fixed parts (it may hold a '/'). */
	size_t pl = strlen(path);
	if (!strncmp(path, "/calls/", 7) && pl > 7 + 9 && !strcmp(path + pl - 9, "/messages") && get)
		return http__call_messages(h, r, (struct str){ path + 7, pl - 7 - 9 });
	if (!strcmp(path, "/events") && get)
		return http__sse_open(h, r);
	if (!strcmp(path, "/users") || !strncmp(path, "/users/", 7))
		return users(h, r, method, path + 6);
	if (!strcmp(path, "/peers") && get)
		return peers(h, r);
	if (!strcmp(path, "/stats") && get)
		return stats(h, r);
	return http__reply_error(r, MHD_HTTP_NOT_FOUND, "no such API path or method: %s %s", method, url);
}
