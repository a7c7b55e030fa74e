/* login.c: admin logins for the HTTP endpoint: Argon2id checks on a thread of their own, sessions, bearer tokens, the failed-login limit. */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "store/store.h"

#define SESSIONS_MAX 256                      /* sessions at once; the least recently used goes */
#define SESSION_IDLE_MS (8ull * 3600 * 1000)  /* a session unused this long is gone */
#define SESSION_LIFE_MS (24ull * 3600 * 1000) /* and any session this long after its login */
#define SESSION_CHECK_MS 30000                /* its admin's row is read again this often */
#define JOBS_MAX 8                            /* password checks waiting at once; more get 503 */
#define JOBS_PER_SOURCE 2                     /* of which one source may have this many */
#define FAILS_MAX 1024                        /* sources whose failed logins are counted */
#define FAIL_WINDOW_MS 60000                  /* failed logins are counted per minute... */
#define FAIL_LIMIT 5                          /* ...and this many make the source wait */
#define FAIL_COOL_MS 60000                    /* for this long after its last failure */
#define FAIL_GLOBAL 30                        /* failures of all sources in a minute: all wait */
#define TOKENS_TTL_MS 30000                   /* the token table is read again this often */
#define FP_LEN 16                             /* bytes of a password hash's fingerprint */

/* An Argon2id hash of no password anyone has: checked against when the admin does not
 * exist, so that a wrong name costs as long as a wrong password. */
static const char dummy_hash[] =
	"$argon2id$v=19$m=65536,t=2,p=1$Tk7EMcP4V3XrxB2lRmck3Q$IwlUNvIv+ZtIzdzEIGxDWeUeWmlyu+w9mTyllKt3S0g";

struct session {
	uint8_t id[32];
	char name[HTTP_NAME_MAX + 1];
	uint8_t fp[FP_LEN];  /* fingerprint of the admin's password hash at login */
	uint64_t used_ms;    /* 0: free */
	uint64_t born_ms;    /* the login */
	uint64_t checked_ms; /* when the admin's row was last seen unchanged */
};

struct token {
	uint8_t hash[crypto_hash_sha256_BYTES];
	char name[HTTP_NAME_MAX + 1];
};

struct fail {
	char ip[64];       /* the source's key (source_key); empty: free */
	uint64_t since_ms; /* start of the counting window */
	uint64_t last_ms;
	unsigned count;
};

struct http_auth {
	struct log *lg;
	struct store *st;
	struct session sess[SESSIONS_MAX];
	struct token *tok;
	size_t ntok, captok;
	uint64_t tok_read_ms; /* when the table was last read; 0: never */
	struct fail fails[FAILS_MAX];
	uint64_t all_since_ms; /* the failures of every source, counted per minute */
	unsigned all_count;
	struct log_limit lim; /* failed-login lines: a flood from many sources is summed up */

	/* The KDF thread and what it shares with the loop, under mu. */
	pthread_t th;
	bool th_on;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool busy;                  /* the thread is checking a job taken from todo */
	const struct http_job *run; /* that job (its source is counted as queued) */
	struct http_job *todo, **todo_tail;
	struct http_job *done, **done_tail;
	unsigned njobs; /* queued, running and done, not yet collected */
	int efd;
};

static void *kdf_main(void *arg)
{
	struct http_auth *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->todo && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop)
			break;
		struct http_job *j = a->todo;
		a->todo = j->next;
		if (!a->todo)
			a->todo_tail = &a->todo;
		a->busy = true;
		a->run = j;
		pthread_mutex_unlock(&a->mu);
		/* The slow part, off the event loop: tens of milliseconds and 64 MiB. */
		bool match = crypto_pwhash_str_verify(j->pwhash, j->password, strlen(j->password)) == 0;
		j->ok = match && j->exists;
		sodium_memzero(j->password, sizeof j->password);
		pthread_mutex_lock(&a->mu);
		a->busy = false;
		a->run = NULL;
		j->next = NULL;
		*a->done_tail = j;
		a->done_tail = &j->next;
		pthread_cond_broadcast(&a->cv); /* a drain may wait for this job */
		uint64_t one = 1;
		ssize_t n = write(a->efd, &one, sizeof one);
		(void)n; /* a full counter is still readable: the loop wakes either way */
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int http__auth_new(struct http_auth **ap, struct log *lg, struct store *st)
{
	*ap = NULL;
	if (sodium_init() < 0)
		return -EIO;
	struct http_auth *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->lg = lg;
	a->st = st;
	a->lim.burst = 30;
	a->todo_tail = &a->todo;
	a->done_tail = &a->done;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0) {
		int e = -errno;
		free(a);
		return e;
	}
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	int e = pthread_create(&a->th, NULL, kdf_main, a);
	if (e) {
		http__auth_free(a);
		return -e;
	}
	a->th_on = true;
	*ap = a;
	return 0;
}

void http__auth_free(struct http_auth *a)
{
	if (!a)
		return;
	if (a->th_on) {
		pthread_mutex_lock(&a->mu);
		a->stop = true;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->th, NULL);
	}
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	if (a->efd >= 0)
		close(a->efd);
	sodium_memzero(a->sess, sizeof a->sess);
	free(a->tok);
	free(a);
}

int http__auth_fd(const struct http_auth *a)
{
	return a->efd;
}

/* The key a source address is counted under (out: 64 bytes): an IPv4 address as it is;
 * an IPv6 address by its /64, the least a host is usually given, so that one host cannot
 * take a new address for each try; an IPv4-mapped one as the IPv4 address. */
static void source_key(const char *ip, char out[64])
{
	struct in6_addr a6;
	if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			inet_ntop(AF_INET, &a6.s6_addr[12], out, 64);
			return;
		}
		memset(&a6.s6_addr[8], 0, 8);
		char t[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &a6, t, sizeof t);
		snprintf(out, 64, "%s/64", t);
		return;
	}
	snprintf(out, 64, "%s", ip);
}

int http__auth_submit(struct http_auth *a, struct http_job *j, const char *ip)
{
	source_key(ip, j->src);
	pthread_mutex_lock(&a->mu);
	if (a->njobs >= JOBS_MAX) {
		pthread_mutex_unlock(&a->mu);
		return -EBUSY;
	}
	/* One source cannot fill the queue: the others' logins still get their turn. */
	unsigned mine = a->run && !strcmp(a->run->src, j->src);
	for (const struct http_job *q = a->todo; q; q = q->next)
		mine += !strcmp(q->src, j->src);
	if (mine >= JOBS_PER_SOURCE) {
		pthread_mutex_unlock(&a->mu);
		return -EAGAIN;
	}
	a->njobs++;
	j->next = NULL;
	j->ok = j->aborted = false;
	*a->todo_tail = j;
	a->todo_tail = &j->next;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

/* Takes the done list (and, for a drain, the queued jobs) under the lock, then hands
 * them over outside it. */
static void hand_back(struct http_auth *a, bool drain, void (*done)(struct http_job *j, void *arg), void *arg)
{
	uint64_t n;
	while (read(a->efd, &n, sizeof n) == (ssize_t)sizeof n)
		;
	pthread_mutex_lock(&a->mu);
	while (drain && a->busy)
		pthread_cond_wait(&a->cv, &a->mu);
	struct http_job *list = a->done, *queued = drain ? a->todo : NULL;
	a->done = NULL;
	a->done_tail = &a->done;
	if (drain) {
		a->todo = NULL;
		a->todo_tail = &a->todo;
	}
	pthread_mutex_unlock(&a->mu);
	for (struct http_job *j = queued; j; j = j->next)
		j->aborted = true;
	for (int pass = 0; pass < 2; pass++) {
		struct http_job *j = pass ? queued : list;
		while (j) {
			struct http_job *next = j->next;
			pthread_mutex_lock(&a->mu);
			a->njobs--;
			pthread_mutex_unlock(&a->mu);
			done(j, arg);
			j = next;
		}
	}
}

void http__auth_collect(struct http_auth *a, void (*done)(struct http_job *j, void *arg), void *arg)
{
	hand_back(a, false, done, arg);
}

void http__auth_drain(struct http_auth *a, void (*done)(struct http_job *j, void *arg), void *arg)
{
	hand_back(a, true, done, arg);
}

static int copy_hash(const struct store_admin *ad, void *arg)
{
	struct http_job *j = arg;
	if (ad->pwhash.l >= sizeof j->pwhash)
		return -EINVAL;
	memcpy(j->pwhash, ad->pwhash.p, ad->pwhash.l);
	j->pwhash[ad->pwhash.l] = '\0';
	return 0;
}

int http__auth_prepare(struct http_auth *a, struct http_job *j, struct str name, struct str password)
{
	int err = name.l && name.l <= HTTP_NAME_MAX ? store_admin_get(a->st, name, copy_hash, j) : -ENOENT;
	if (err && err != -ENOENT && err != -EINVAL) {
		log_error(a->lg, "http", "cannot read the admin accounts: %s", store_errmsg(a->st));
		return -EIO;
	}
	j->exists = err == 0;
	if (!j->exists)
		memcpy(j->pwhash, dummy_hash, sizeof dummy_hash);
	size_t n = password.l < sizeof j->password ? password.l : sizeof j->password - 1;
	memcpy(j->password, password.p, n);
	j->password[n] = '\0';
	return 0;
}

/* ---- the failed-login limit ----------------------------------------------------------------- */

static struct fail *fail_find(struct http_auth *a, const char *key)
{
	for (size_t i = 0; i < FAILS_MAX; i++)
		if (a->fails[i].ip[0] && !strcmp(a->fails[i].ip, key))
			return &a->fails[i];
	return NULL;
}

/* Whether the failures of every source together have used up the budget of the minute
 * that began with the first of them. */
static bool all_limited(const struct http_auth *a, uint64_t now_ms)
{
	return a->all_count >= FAIL_GLOBAL && now_ms - a->all_since_ms < FAIL_WINDOW_MS;
}

static bool source_limited(struct http_auth *a, const char *ip, uint64_t now_ms)
{
	char key[64];
	source_key(ip, key);
	struct fail *f = fail_find(a, key);
	return f && f->count >= FAIL_LIMIT && now_ms - f->last_ms < FAIL_COOL_MS;
}

bool http__auth_limited(struct http_auth *a, const char *ip, uint64_t now_ms)
{
	return all_limited(a, now_ms) || source_limited(a, ip, now_ms);
}

/* Printable ASCII of a name someone typed, for a log line. */
static void shown(struct str s, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < s.l && n + 1 < cap; i++)
		out[n++] = s.p[i] > 0x20 && s.p[i] < 0x7f ? s.p[i] : '?';
	out[n] = '\0';
}

void http__auth_refused(struct http_auth *a, const char *ip, struct str name, uint64_t now_ms)
{
	char who[HTTP_NAME_MAX + 1];
	shown(name, who, sizeof who);
	log_limited(a->lg, &a->lim, now_ms, LOG_WARN, "http", "admin login failed for %s from %s: rate-limited",
		    who[0] ? who : "-", ip);
}

void http__auth_failed(struct http_auth *a, const char *ip, struct str name, const char *why, uint64_t now_ms)
{
	char who[HTTP_NAME_MAX + 1], key[64];
	shown(name, who, sizeof who);
	log_limited(a->lg, &a->lim, now_ms, LOG_WARN, "http", "admin login failed for %s from %s: %s",
		    who[0] ? who : "-", ip, why);
	source_key(ip, key);
	struct fail *f = fail_find(a, key);
	if (!f) {
		/* A free slot, else the one whose last failure is oldest. */
		f = &a->fails[0];
		for (size_t i = 0; i < FAILS_MAX && f->ip[0]; i++)
			if (!a->fails[i].ip[0] || a->fails[i].last_ms < f->last_ms)
				f = &a->fails[i];
		*f = (struct fail){ .since_ms = now_ms };
		snprintf(f->ip, sizeof f->ip, "%s", key);
	}
	if (f->count >= FAIL_LIMIT ? now_ms - f->last_ms >= FAIL_COOL_MS : now_ms - f->since_ms >= FAIL_WINDOW_MS) {
		f->since_ms = now_ms; /* a new minute, or cooled down: counting starts again */
		f->count = 0;
	}
	f->count++;
	f->last_ms = now_ms;
	if (f->count == FAIL_LIMIT)
		log_warn(a->lg, "http", "admin logins from %s refused for %u s: %u failed in a minute", key,
			 FAIL_COOL_MS / 1000, FAIL_LIMIT);
	/* Many sources with a few tries each: past the budget, every source waits out the
	 * minute (a session or bearer token in use is not affected). */
	if (!a->all_count || now_ms - a->all_since_ms >= FAIL_WINDOW_MS) {
		a->all_since_ms = now_ms;
		a->all_count = 0;
	}
	if (++a->all_count == FAIL_GLOBAL)
		log_warn(a->lg, "http", "admin logins refused from every source for the rest of the minute: %u failed",
			 FAIL_GLOBAL);
}

void http__auth_succeeded(struct http_auth *a, const char *ip)
{
	char key[64];
	source_key(ip, key);
	struct fail *f = fail_find(a, key);
	if (f)
		*f = (struct fail){ 0 };
}

/* ---- sessions ------------------------------------------------------------------------------ */

/* A short digest of an admin's password hash: a session remembers it, not the hash. */
static void fingerprint(struct str pwhash, uint8_t fp[FP_LEN])
{
	crypto_generichash(fp, FP_LEN, (const unsigned char *)pwhash.p, pwhash.l, NULL, 0);
}

void http__auth_session_new(struct http_auth *a, const char *name, const char *pwhash, uint64_t now_ms,
			    char cookie[HTTP_COOKIE_LEN + 1])
{
	struct session *s = &a->sess[0];
	for (size_t i = 0; i < SESSIONS_MAX; i++) {
		struct session *t = &a->sess[i];
		if (!t->used_ms || now_ms - t->used_ms >= SESSION_IDLE_MS) {
			s = t;
			break;
		}
		if (t->used_ms < s->used_ms)
			s = t;
	}
	randombytes_buf(s->id, sizeof s->id);
	snprintf(s->name, sizeof s->name, "%s", name);
	fingerprint(str_from_cstr(pwhash), s->fp);
	s->used_ms = now_ms ? now_ms : 1;
	s->born_ms = s->checked_ms = now_ms;
	sodium_bin2base64(cookie, HTTP_COOKIE_LEN + 1, s->id, sizeof s->id, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static struct session *session_find(struct http_auth *a, const char *cookie, uint64_t now_ms)
{
	uint8_t id[32];
	size_t n = 0;
	if (strlen(cookie) != HTTP_COOKIE_LEN ||
	    sodium_base642bin(id, sizeof id, cookie, HTTP_COOKIE_LEN, NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != sizeof id)
		return NULL;
	/* Every slot is compared, in constant time: how long a guess takes tells nothing. */
	struct session *hit = NULL;
	for (size_t i = 0; i < SESSIONS_MAX; i++) {
		struct session *s = &a->sess[i];
		if (sodium_memcmp(s->id, id, sizeof id) == 0 && s->used_ms &&
		    (now_ms == UINT64_MAX || now_ms - s->used_ms < SESSION_IDLE_MS))
			hit = s;
	}
	return hit;
}

static int fp_row(const struct store_admin *ad, void *arg)
{
	fingerprint(ad->pwhash, arg);
	return 0;
}

/* Why session s must end now (a log line's end), or NULL while it may go on: too old, or
 * its admin deleted or given another password since the login (`parley admin del`,
 * `parley admin passwd` from another process: the row is read again every
 * SESSION_CHECK_MS, so such a session dies within that time). */
static const char *session_over(struct http_auth *a, struct session *s, uint64_t now_ms)
{
	if (now_ms - s->born_ms >= SESSION_LIFE_MS)
		return "24 hours after its login";
	if (now_ms - s->checked_ms < SESSION_CHECK_MS)
		return NULL;
	uint8_t fp[FP_LEN];
	int err = store_admin_get(a->st, str_from_cstr(s->name), fp_row, fp);
	if (err == -ENOENT)
		return "the admin was deleted";
	if (err) {
		/* The session goes on (the store may come back); the next request tries again. */
		log_error(a->lg, "http", "cannot read admin %s for its session: %s", s->name, store_errmsg(a->st));
		return NULL;
	}
	if (sodium_memcmp(fp, s->fp, FP_LEN) != 0)
		return "the admin's password was changed";
	s->checked_ms = now_ms;
	return NULL;
}

bool http__auth_session(struct http_auth *a, const char *cookie, uint64_t now_ms, char name[HTTP_NAME_MAX + 1])
{
	struct session *s = session_find(a, cookie, now_ms);
	if (!s)
		return false;
	const char *why = session_over(a, s, now_ms);
	if (why) {
		log_info(a->lg, "http", "session of admin %s ended: %s", s->name, why);
		sodium_memzero(s, sizeof *s);
		return false;
	}
	s->used_ms = now_ms ? now_ms : 1;
	memcpy(name, s->name, HTTP_NAME_MAX + 1);
	return true;
}

void http__auth_session_end(struct http_auth *a, const char *cookie)
{
	struct session *s = session_find(a, cookie, UINT64_MAX); /* an idle one goes too */
	if (s)
		sodium_memzero(s, sizeof *s);
}

/* ---- bearer tokens ------------------------------------------------------------------------- */

static int token_row(const struct store_token *t, void *arg)
{
	struct http_auth *a = arg;
	if (t->hash.l != 2 * crypto_hash_sha256_BYTES || t->name.l > HTTP_NAME_MAX)
		return 0;
	if (a->ntok == a->captok) {
		size_t cap = a->captok ? a->captok * 2 : 16;
		struct token *n = realloc(a->tok, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		a->tok = n;
		a->captok = cap;
	}
	struct token *k = &a->tok[a->ntok];
	if (sodium_hex2bin(k->hash, sizeof k->hash, t->hash.p, t->hash.l, NULL, NULL, NULL) != 0)
		return 0;
	memcpy(k->name, t->name.p, t->name.l);
	k->name[t->name.l] = '\0';
	a->ntok++;
	return 0;
}

/* Reads the token table again (a token made with `parley admin token` while we run, or
 * one revoked with `parley admin del`). */
static void tokens_read(struct http_auth *a, uint64_t now_ms)
{
	a->ntok = 0;
	a->tok_read_ms = now_ms ? now_ms : 1;
	int err = store_tokens_list(a->st, token_row, a);
	if (err == -ENOMEM)
		log_error(a->lg, "http", "out of memory reading the admin tokens");
	else if (err)
		log_error(a->lg, "http", "cannot read the admin tokens: %s", store_errmsg(a->st));
}

static const struct token *token_find(const struct http_auth *a, const uint8_t *hash)
{
	const struct token *hit = NULL;
	for (size_t i = 0; i < a->ntok; i++)
		if (sodium_memcmp(a->tok[i].hash, hash, crypto_hash_sha256_BYTES) == 0)
			hit = &a->tok[i];
	return hit;
}

int http__auth_bearer(struct http_auth *a, const char *token, const char *ip, uint64_t now_ms,
		      char name[HTTP_NAME_MAX + 1])
{
	/* A token cannot be guessed: only the source's own limit applies (it keeps a guesser
	 * from making the database work), not the budget of password logins. */
	if (source_limited(a, ip, now_ms)) {
		http__auth_refused(a, ip, STR("(token)"), now_ms);
		return -EAGAIN;
	}
	uint8_t hash[crypto_hash_sha256_BYTES];
	size_t tl = strlen(token);
	crypto_hash_sha256(hash, (const unsigned char *)token, tl);
	if (!a->tok_read_ms || now_ms - a->tok_read_ms >= TOKENS_TTL_MS)
		tokens_read(a, now_ms);
	const struct token *t = token_find(a, hash);
	/* A miss reads the table again, for a token made a moment ago; misses count as failed
	 * logins, so a guesser cannot make the database work more than a few times a minute. */
	if (!t && a->tok_read_ms != now_ms) {
		tokens_read(a, now_ms);
		t = token_find(a, hash);
	}
	if (!t) {
		http__auth_failed(a, ip, STR("(token)"), "unknown bearer token", now_ms);
		return -EACCES;
	}
	memcpy(name, t->name, HTTP_NAME_MAX + 1);
	http__auth_succeeded(a, ip);
	return 0;
}

bool http__auth_token_known(struct http_auth *a, const char *token, uint64_t now_ms)
{
	uint8_t hash[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(hash, (const unsigned char *)token, strlen(token));
	if (!a->tok_read_ms || now_ms - a->tok_read_ms >= TOKENS_TTL_MS)
		tokens_read(a, now_ms);
	return token_find(a, hash) != NULL;
}
