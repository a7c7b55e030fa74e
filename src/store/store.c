/* store.c: the back-end-neutral store: user hashing, import files and the write-behind queue. */
#include "store/store_be.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "auth/auth.h"

#define USER_MAX 255
#define DOMAIN_MAX 255
#define PASSWORD_MAX 1023
#define QUEUE_MAX_DEFAULT ((size_t)64 << 20)

enum qkind { Q_BINDING_PUT, Q_BINDING_DEL, Q_CALL };

struct store__chunk;
static void chunks_free(struct store__chunk *c);

int store__err(struct store *st, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return err;
}

const char *store_errmsg(const struct store *st)
{
	return st ? st->err : "out of memory";
}

int store_open(struct store **stp, const struct store_conf *conf)
{
	struct store *st = calloc(1, sizeof(*st));
	int err;

	*stp = st;
	if (!st)
		return -ENOMEM;
	if (conf->backend && strcmp(conf->backend, "sqlite") != 0)
		return store__err(st, -EINVAL, "unknown store back end '%s'", conf->backend);
	st->ops = &store__sqlite_ops;
	if (!conf->path || !conf->path[0])
		return store__err(st, -EINVAL, "no database path");
	if (strlen(conf->path) >= sizeof(st->path))
		return store__err(st, -ENAMETOOLONG, "database path too long");
	strcpy(st->path, conf->path);
	st->readonly = conf->readonly;
	st->busy_ms = conf->busy_ms ? conf->busy_ms : 2000;
	st->qmax = conf->queue_max ? conf->queue_max : QUEUE_MAX_DEFAULT;
	/* The digest seed only has to be unknown to peers; should the kernel not give
	 * random bytes, the clock and an address are still not guessable from outside. */
	if (getrandom(st->seed, sizeof(st->seed), GRND_NONBLOCK) != (ssize_t)sizeof(st->seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		st->seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)st;
		st->seed[1] = (uint64_t)ts.tv_sec ^ ((uint64_t)(uintptr_t)&ts << 17);
	}
	err = st->ops->open(st, conf);
	if (err) {
		st->ops->close(st);
		st->ops = NULL;
	}
	return err;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->ops)
		st->ops->close(st);
	chunks_free(st->chunks);
	free(st->q);
	free(st->index);
	free(st);
}

/* ---- users ------------------------------------------------------------------------------ */

/* Checks user and domain and lowercases the domain into dom (DOMAIN_MAX + 1 bytes). */
static int names(struct store *st, struct str user, struct str domain, char *dom)
{
	if (user.l == 0 || domain.l == 0)
		return store__err(st, -EINVAL, "user and domain must not be empty");
	if (user.l > USER_MAX || domain.l > DOMAIN_MAX)
		return store__err(st, -EINVAL, "user or domain too long");
	for (size_t i = 0; i < user.l; i++)
		if ((unsigned char)user.p[i] <= ' ' || user.p[i] == '@')
			return store__err(st, -EINVAL, "bad character in user name");
	for (size_t i = 0; i < domain.l; i++) {
		char c = domain.p[i];
		if ((unsigned char)c <= ' ' || c == '@' || c == ',')
			return store__err(st, -EINVAL, "bad character in domain");
		dom[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	dom[domain.l] = '\0';
	return 0;
}

/* Fills u with the names and both HA1 hashes of password. */
static int make_user(struct store *st, struct store_user *u, struct str user, struct str domain,
		     struct str realm, struct str password, char *dom)
{
	char md5[AUTH_HEX_MAX];
	int err = names(st, user, domain, dom);

	if (err)
		return err;
	if (password.l == 0)
		return store__err(st, -EINVAL, "empty password");
	if (password.l > PASSWORD_MAX)
		return store__err(st, -EINVAL, "password too long");
	u->user = user;
	u->domain = (struct str){ dom, domain.l };
	if (realm.l == 0)
		realm = u->domain;
	if (auth_ha1(AUTH_MD5, user, realm, password, md5) != 0 ||
	    auth_ha1(AUTH_SHA256, user, realm, password, u->ha1_sha256) != 0)
		return store__err(st, -EIO, "cannot compute password hashes (OpenSSL)");
	memcpy(u->ha1_md5, md5, sizeof(u->ha1_md5));
	return 0;
}

static int writable(struct store *st)
{
	if (st->readonly)
		return store__err(st, -EROFS, "database %s is open read-only", st->path);
	return 0;
}

int store_user_add(struct store *st, struct str user, struct str domain, struct str realm,
		   struct str password)
{
	struct store_user u;
	char dom[DOMAIN_MAX + 1];
	int err = writable(st);

	if (!err)
		err = make_user(st, &u, user, domain, realm, password, dom);
	if (!err)
		err = st->ops->user_insert(st, &u);
	if (err == -EEXIST)
		store__err(st, err, "user %.*s@%s already exists", STR_FMT(user), dom);
	return err;
}

int store_user_passwd(struct store *st, struct str user, struct str domain, struct str realm,
		      struct str password)
{
	struct store_user u;
	char dom[DOMAIN_MAX + 1];
	int err = writable(st);

	if (!err)
		err = make_user(st, &u, user, domain, realm, password, dom);
	if (!err)
		err = st->ops->user_update(st, &u);
	if (err == -ENOENT)
		store__err(st, err, "no user %.*s@%s", STR_FMT(user), dom);
	return err;
}

int store_user_del(struct store *st, struct str user, struct str domain)
{
	char dom[DOMAIN_MAX + 1];
	int err = writable(st);

	if (!err)
		err = names(st, user, domain, dom);
	if (!err)
		err = st->ops->user_delete(st, user, (struct str){ dom, domain.l });
	if (err == -ENOENT)
		store__err(st, err, "no user %.*s@%s", STR_FMT(user), dom);
	return err;
}

int store_user_get(struct store *st, struct str user, struct str domain, struct store_user *out)
{
	char dom[DOMAIN_MAX + 1];
	int err = names(st, user, domain, dom);

	if (err)
		return err;
	out->user = user;
	out->domain = (struct str){ dom, domain.l };  /* the lowercase form is the key */
	err = st->ops->user_get(st, out);
	out->domain = domain;   /* dom dies with this frame: hand back the caller's view */
	if (err == -ENOENT)
		store__err(st, err, "no user %.*s@%s", STR_FMT(user), dom);
	return err;
}

int store_user_list(struct store *st, store_user_h *cb, void *arg)
{
	return st->ops->user_list(st, cb, arg);
}

int store_begin(struct store *st)
{
	int err = writable(st);

	return err ? err : st->ops->begin(st);
}

int store_commit(struct store *st)
{
	int err = st->ops->commit(st);

	if (err)
		st->ops->rollback(st);
	return err;
}

void store_rollback(struct store *st)
{
	st->ops->rollback(st);
}

/* Splits "user@domain,password" into its parts; false if the line is not of that form. */
static bool split_line(struct str line, struct str *user, struct str *domain, struct str *pw)
{
	long comma = str_chr(line, ','), at;
	struct str who;

	if (comma < 0)
		return false;
	who = str_trim((struct str){ line.p, (size_t)comma });
	*pw = (struct str){ line.p + comma + 1, line.l - (size_t)comma - 1 };
	at = str_chr(who, '@');
	if (at <= 0 || (size_t)at + 1 >= who.l || pw->l == 0)
		return false;
	*user = (struct str){ who.p, (size_t)at };
	*domain = (struct str){ who.p + at + 1, who.l - (size_t)at - 1 };
	return true;
}

int store_user_import(struct store *st, const char *file, struct str realm, unsigned *count,
		      unsigned *bad_line)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0, done = 0;
	int err = writable(st);

	*count = 0;
	*bad_line = 0;
	if (err)
		return err;
	f = fopen(file, "r");
	if (!f)
		return store__err(st, -errno, "cannot open %s: %s", file, strerror(errno));
	err = st->ops->begin(st);
	while (!err && (n = getline(&line, &cap, f)) >= 0) {
		struct str s = { line, (size_t)n }, user, domain, pw;
		struct store_user u;
		char dom[DOMAIN_MAX + 1];

		lineno++;
		/* The password is everything after the first comma, spaces included; only the
		 * line end is cut. */
		while (s.l > 0 && (s.p[s.l - 1] == '\n' || s.p[s.l - 1] == '\r'))
			s.l--;
		if (str_trim(s).l == 0 || str_trim(s).p[0] == '#')
			continue;
		if (!split_line(s, &user, &domain, &pw) ||
		    make_user(st, &u, user, domain, realm, pw, dom) != 0) {
			*bad_line = lineno;
			err = store__err(st, -EINVAL, "%s:%u: expected user@domain,password", file, lineno);
			break;
		}
		err = st->ops->user_upsert(st, &u);
		if (!err)
			done++;
	}
	if (!err && ferror(f))
		err = store__err(st, -EIO, "cannot read %s", file);
	free(line);
	fclose(f);
	if (!err)
		err = st->ops->commit(st);
	if (err) {
		st->ops->rollback(st);
		return err;
	}
	*count = done;
	return 0;
}

/* ---- the write-behind queue --------------------------------------------------------- */

/* Queue entries are carved from chunks of this size (a bigger entry gets a chunk of its
 * own), so that queueing a change costs no malloc and a flush frees them all at once. */
#define CHUNK_SIZE ((size_t)64 << 10)

struct store__chunk {
	struct store__chunk *next;
	size_t used, cap;
	_Alignas(max_align_t) char data[];
};

/* One queued change. Its views point into data[], which holds every string of the row. */
struct store__qent {
	enum qkind kind;
	struct store__kd kd;           /* digest of the key (aor, contact) or call id */
	size_t size;                   /* bytes taken in its chunk */
	union {
		struct store_binding b;
		struct store_call c;
	} u;
	_Alignas(max_align_t) char data[];
};

size_t store_queue_len(const struct store *st)
{
	return st->nq;
}

size_t store_queue_bytes(const struct store *st)
{
	return st->qbytes;
}

static uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

/* Odd constants with about as many one bits as zero bits, for the multiplications. */
#define DIG_M1 0xda140cc99837071dULL
#define DIG_M2 0xc0506a989c27db6bULL
#define DIG_M3 0x52801c7fce8ab0e7ULL
#define DIG_M4 0x4a9d62b4c70da263ULL

/* The two 64-bit lanes of a digest being made. */
struct lanes {
	uint64_t a, b;
};

static inline struct lanes mix(struct lanes z, uint64_t w)
{
	z.a = rotl64(z.a ^ w, 23) * DIG_M1;
	z.b = rotl64(z.b + w, 37) * DIG_M2;
	return z;
}

/* Feeds s into the lanes eight bytes at a time; the last word carries the length, so that
 * "ab" and "ab\0" differ and the boundary between two strings is kept. Each step is a
 * bijection of the lane for a given word and of the word for a given lane, so inputs that
 * differ in a single word never meet; the lanes mix by xor and by addition, so that
 * differences which cancel in one lane do not cancel in the other. */
static inline struct lanes absorb(struct lanes z, struct str s)
{
	const unsigned char *p = (const unsigned char *)s.p;
	size_t n = s.l;
	uint64_t w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		z = mix(z, w);
	}
	if (n && s.l >= 8) {
		/* The tail in one load of the last eight bytes, shifted so that only its n
		 * bytes stay, in the low bytes as the loop below would put them. */
		memcpy(&w, p + n - 8, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		w >>= 8 * (8 - n);
#else
		w = __builtin_bswap64(w) >> 8 * (8 - n);
#endif
	} else {
		w = 0;
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)p[i] << (8 * i);
	}
	return mix(z, w | (uint64_t)(s.l & 0xff) << 56);
}

/* A bijection of 64 bits that spreads every input bit over the output. */
static uint64_t fin64(uint64_t x)
{
	x ^= x >> 31;
	x *= DIG_M3;
	x ^= x >> 29;
	x *= DIG_M4;
	x ^= x >> 32;
	return x;
}

/* The digest of (x, y) for one kind of key (0: binding, 1: call record). The last step
 * is a bijection of the two lanes, so it loses none of their 128 bits. */
static struct store__kd digest(const struct store *st, struct str x, struct str y, uint64_t kind)
{
	struct lanes z = { st->seed[0] ^ kind, st->seed[1] + kind * DIG_M3 };
	struct store__kd kd;

	z = absorb(absorb(z, x), y);
	z.a ^= (uint64_t)x.l * DIG_M4 + y.l;
	kd.a = fin64(z.a ^ rotl64(z.b, 13));
	kd.b = fin64(z.b + kd.a);
	return kd;
}

struct store__kd store__digest(const struct store *st, struct str aor, struct str contact)
{
	return digest(st, aor, contact, 0);
}

/* Copies s to *w, points *dst at the copy and advances *w. */
static void copy(char **w, struct str s, struct str *dst)
{
	if (s.l)
		memcpy(*w, s.p, s.l);
	*dst = (struct str){ *w, s.l };
	*w += s.l;
}

/* Points the views of to, a byte copy of from, at its own data[]. */
static void rebase(struct store__qent *to, const struct store__qent *from)
{
	struct str *v[9];
	size_t n = 0;

	if (to->kind == Q_CALL) {
		v[n++] = &to->u.c.id;
		v[n++] = &to->u.c.call_id;
		v[n++] = &to->u.c.caller;
		v[n++] = &to->u.c.callee;
		v[n++] = &to->u.c.reason;
	} else {
		v[n++] = &to->u.b.aor;
		v[n++] = &to->u.b.contact;
		v[n++] = &to->u.b.src_addr;
		v[n++] = &to->u.b.transport;
		v[n++] = &to->u.b.path;
		v[n++] = &to->u.b.call_id;
		v[n++] = &to->u.b.user_agent;
		v[n++] = &to->u.b.instance;
		v[n++] = &to->u.b.params;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i]->p)
			v[i]->p = to->data + (v[i]->p - from->data);
}

static void chunks_free(struct store__chunk *c)
{
	while (c) {
		struct store__chunk *next = c->next;
		free(c);
		c = next;
	}
}

static struct store__chunk *chunk_new(size_t cap)
{
	struct store__chunk *c = malloc(sizeof(*c) + cap);

	if (c) {
		c->next = NULL;
		c->used = 0;
		c->cap = cap;
	}
	return c;
}

/* Copies the live entries into one new chunk and frees the old ones with their dead
 * entries. Only a run of failing flushes with changes that keep replacing each other
 * gets here. On failure nothing changes. */
static int compact(struct store *st)
{
	size_t total = 0;
	struct store__chunk *c;

	for (size_t i = 0; i < st->nq; i++)
		total += st->q[i]->size;
	c = chunk_new(total > CHUNK_SIZE ? total : CHUNK_SIZE);
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < st->nq; i++) {
		struct store__qent *e = (struct store__qent *)(void *)(c->data + c->used);

		memcpy(e, st->q[i], st->q[i]->size);
		rebase(e, st->q[i]);
		c->used += e->size;
		st->q[i] = e;
	}
	chunks_free(st->chunks);
	st->chunks = c;
	st->abytes = c->used;
	return 0;
}

/* An entry with room for strings bytes after it, its size set; NULL after setting the
 * message. Dead entries are dropped once they take half of queue_max: the chunks then hold
 * at most 1.5 times queue_max however often changes coalesce while flushes fail, and each
 * compaction, which copies at most queue_max, has been paid for by half as many bytes of
 * replaced changes. */
static struct store__qent *qalloc(struct store *st, size_t strings)
{
	size_t align = _Alignof(max_align_t);
	size_t size = (sizeof(struct store__qent) + strings + align - 1) & ~(align - 1);
	struct store__chunk *c;
	struct store__qent *e;

	if (st->abytes - st->qbytes > st->qmax / 2 && compact(st) != 0) {
		store__err(st, -ENOMEM, "out of memory queueing a database write");
		return NULL;
	}
	c = st->chunks;
	if (!c || c->cap - c->used < size) {
		c = chunk_new(size > CHUNK_SIZE ? size : CHUNK_SIZE);
		if (!c) {
			store__err(st, -ENOMEM, "out of memory queueing a database write");
			return NULL;
		}
		c->next = st->chunks;
		st->chunks = c;
	}
	e = (struct store__qent *)(void *)(c->data + c->used);
	c->used += size;
	st->abytes += size;
	e->size = size;
	return e;
}

/* Gives back e, the entry qalloc() made last, when it is not queued after all. */
static void qdrop(struct store *st, struct store__qent *e)
{
	st->chunks->used -= e->size;
	st->abytes -= e->size;
}

static void queue_clear(struct store *st)
{
	struct store__chunk *c = st->chunks;

	st->nq = 0;
	st->qbytes = 0;
	st->abytes = 0;
	if (st->index)
		memset(st->index, 0, st->nindex * sizeof(*st->index));
	if (!c)
		return;
	/* One chunk of the usual size is kept for the next batch. */
	chunks_free(c->next);
	c->next = NULL;
	c->used = 0;
	if (c->cap != CHUNK_SIZE) {
		free(c);
		st->chunks = NULL;
	}
}

static int index_grow(struct store *st)
{
	size_t n = st->nindex ? st->nindex * 2 : 1024;
	uint32_t *idx = calloc(n, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < st->nq; i++) {
		size_t j = st->q[i]->kd.a & (n - 1);
		while (idx[j])
			j = (j + 1) & (n - 1);
		idx[j] = (uint32_t)(i + 1);
	}
	free(st->index);
	st->index = idx;
	st->nindex = n;
	return 0;
}

/* True if a and b change the same row: one binding (put or delete) or one call record. */
static bool same_key(const struct store__qent *a, const struct store__qent *b)
{
	if (a->kd.a != b->kd.a || a->kd.b != b->kd.b)
		return false;
	if ((a->kind == Q_CALL) != (b->kind == Q_CALL))
		return false;
	if (a->kind == Q_CALL)
		return str_eq(a->u.c.id, b->u.c.id);
	return str_eq(a->u.b.aor, b->u.b.aor) && str_eq(a->u.b.contact, b->u.b.contact);
}

/* Adds e (just made by qalloc) to the queue, replacing a queued change with the same key;
 * gives e back on failure. */
static int enqueue(struct store *st, struct store__qent *e)
{
	size_t j;

	if (st->readonly) {
		qdrop(st, e);
		return store__err(st, -EROFS, "database %s is open read-only", st->path);
	}
	if ((st->nq + 1) * 2 > st->nindex && index_grow(st) != 0) {
		qdrop(st, e);
		return store__err(st, -ENOMEM, "out of memory queueing a database write");
	}
	j = e->kd.a & (st->nindex - 1);
	for (; st->index[j]; j = (j + 1) & (st->nindex - 1)) {
		struct store__qent **slot = &st->q[st->index[j] - 1];

		if (same_key(*slot, e)) {
			if (st->qbytes - (*slot)->size + e->size > st->qmax)
				goto full;
			/* The old entry stays in its chunk, dead, until the queue is cleared. */
			st->qbytes = st->qbytes - (*slot)->size + e->size;
			*slot = e;
			return 0;
		}
	}
	if (st->qbytes + e->size > st->qmax || st->nq >= UINT32_MAX - 1)
		goto full;
	if (st->nq == st->capq) {
		size_t cap = st->capq ? st->capq * 2 : 256;
		struct store__qent **q = realloc(st->q, cap * sizeof(*q));
		if (!q) {
			qdrop(st, e);
			return store__err(st, -ENOMEM, "out of memory queueing a database write");
		}
		st->q = q;
		st->capq = cap;
	}
	st->q[st->nq++] = e;
	st->index[j] = (uint32_t)st->nq;
	st->qbytes += e->size;
	return 0;
full:
	qdrop(st, e);
	return store__err(st, -ENOBUFS, "database write queue full (%zu bytes): is %s writable?",
			  st->qbytes, st->path);
}

int store_binding_put(struct store *st, const struct store_binding *b)
{
	size_t n = b->aor.l + b->contact.l + b->src_addr.l + b->transport.l + b->path.l +
		   b->call_id.l + b->user_agent.l + b->instance.l + b->params.l;
	struct store__qent *e = qalloc(st, n);
	char *w;

	if (!e)
		return -ENOMEM;
	e->kind = Q_BINDING_PUT;
	e->kd = store__digest(st, b->aor, b->contact);
	e->u.b = *b;
	w = e->data;
	copy(&w, b->aor, &e->u.b.aor);
	copy(&w, b->contact, &e->u.b.contact);
	copy(&w, b->src_addr, &e->u.b.src_addr);
	copy(&w, b->transport, &e->u.b.transport);
	copy(&w, b->path, &e->u.b.path);
	copy(&w, b->call_id, &e->u.b.call_id);
	copy(&w, b->user_agent, &e->u.b.user_agent);
	copy(&w, b->instance, &e->u.b.instance);
	copy(&w, b->params, &e->u.b.params);
	return enqueue(st, e);
}

int store_binding_del(struct store *st, struct str aor, struct str contact)
{
	struct store__qent *e = qalloc(st, aor.l + contact.l);
	char *w;

	if (!e)
		return -ENOMEM;
	e->kind = Q_BINDING_DEL;
	e->kd = store__digest(st, aor, contact);
	e->u.b = (struct store_binding){ .aor = STR_NULL };
	w = e->data;
	copy(&w, aor, &e->u.b.aor);
	copy(&w, contact, &e->u.b.contact);
	return enqueue(st, e);
}

int store_call_put(struct store *st, const struct store_call *c)
{
	size_t n = c->id.l + c->call_id.l + c->caller.l + c->callee.l + c->reason.l;
	struct store__qent *e;
	char *w;

	if (c->id.l == 0)
		return store__err(st, -EINVAL, "call record without an id");
	e = qalloc(st, n);
	if (!e)
		return -ENOMEM;
	e->kind = Q_CALL;
	e->kd = digest(st, c->id, STR_NULL, 1);
	e->u.c = *c;
	w = e->data;
	copy(&w, c->id, &e->u.c.id);
	copy(&w, c->call_id, &e->u.c.call_id);
	copy(&w, c->caller, &e->u.c.caller);
	copy(&w, c->callee, &e->u.c.callee);
	copy(&w, c->reason, &e->u.c.reason);
	return enqueue(st, e);
}

int store_flush(struct store *st)
{
	int err;

	if (st->nq == 0)
		return 0;
	err = st->ops->begin(st);
	for (size_t i = 0; !err && i < st->nq; i++) {
		const struct store__qent *e = st->q[i];

		switch (e->kind) {
		case Q_BINDING_PUT:
			err = st->ops->binding_write(st, &e->u.b, e->kd);
			break;
		case Q_BINDING_DEL:
			err = st->ops->binding_delete(st, e->u.b.aor, e->u.b.contact, e->kd);
			break;
		case Q_CALL:
			err = st->ops->call_write(st, &e->u.c);
			break;
		}
	}
	if (!err)
		err = st->ops->commit(st);
	if (err) {
		/* Every queued write is an idempotent upsert or delete, so the whole batch can
		 * simply be tried again on the next tick. */
		st->ops->rollback(st);
		return err;
	}
	queue_clear(st);
	return 0;
}

int store_bindings_load(struct store *st, int64_t now, store_binding_h *cb, void *arg)
{
	return st->ops->bindings_load(st, now, cb, arg);
}

int store_calls_list(struct store *st, unsigned limit, store_call_h *cb, void *arg)
{
	return st->ops->calls_list(st, limit, cb, arg);
}
