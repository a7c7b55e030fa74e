/* store.c: the back-end-neutral store: user rows and the write-behind queue. */
#include "store/store_be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define USER_MAX 255
#define DOMAIN_MAX 255
#define QUEUE_MAX_DEFAULT ((size_t)64 << 20)

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

/* Takes PATH.lock for the life of the store, so that a second server on the same
 * database refuses to start instead of writing beside the first (each would keep its own
 * picture of the bindings and overwrite the other's rows). flock dies with the process,
 * so a crash leaves no stale lock behind; the PID in the file is for the message. */
static int take_lock(struct store *st)
{
	char path[sizeof(st->path) + 8], pid[32];
	int fd, n;

	/* An in-memory database (":memory:", as the fuzzer uses) is nobody else's. */
	if (strcmp(st->path, ":memory:") == 0)
		return 0;
	snprintf(path, sizeof(path), "%s.lock", st->path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return store__err(st, -errno, "cannot open lock file %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (e != EWOULDBLOCK) {
			close(fd);
			return store__err(st, -e, "cannot lock %s: %s", path, strerror(e));
		}
		n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
		close(fd);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		return store__err(st, -EBUSY, "database %s is in use by parley serve (PID %s)", st->path,
				  pid[0] ? pid : "unknown");
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		int e = errno;
		close(fd);
		return store__err(st, -e, "cannot write lock file %s: %s", path, strerror(e));
	}
	st->lock_fd = fd;
	return 0;
}

int store_server_pid(const char *path, long *pid, char *err, size_t errlen)
{
	char lock[4200], buf[32];
	if ((size_t)snprintf(lock, sizeof lock, "%s.lock", path) >= sizeof lock) {
		snprintf(err, errlen, "database path too long");
		return -ENAMETOOLONG;
	}
	int fd = open(lock, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "no parley serve has run on %s (%s: %s)", path, lock, strerror(e));
		return e == ENOENT ? -ESRCH : -e;
	}
	/* The server holds the lock for as long as it runs: if we can take it, nobody does,
	 * and the PID in the file is an old one. */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		snprintf(err, errlen, "no parley serve is running on %s", path);
		return -ESRCH;
	}
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	char *end;
	long v = strtol(buf, &end, 10);
	if (v <= 0 || (*end && *end != '\n')) {
		snprintf(err, errlen, "%s holds no PID", lock);
		return -EINVAL;
	}
	*pid = v;
	return 0;
}

int store_open(struct store **stp, const struct store_conf *conf)
{
	struct store *st = calloc(1, sizeof(*st));
	int err;

	*stp = st;
	if (!st)
		return -ENOMEM;
	st->lock_fd = -1;
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
	st->lock_fd = -1;
	if (conf->lock && !conf->readonly) {
		err = take_lock(st);
		if (err)
			return err;
	}
	/* The server's own connection only reads (users, bans, the load at start): every
	 * write goes through the writer's, which therefore keeps the map of binding ids. */
	st->ids_elsewhere = conf->writer && !conf->readonly && strcmp(st->path, ":memory:") != 0;
	/* (An in-memory database has no second connection: a writer thread would write to
	 * a database of its own.) */
	err = st->ops->open(st, conf);
	if (err) {
		st->ops->close(st);
		st->ops = NULL;
		return err;
	}
	if (st->ids_elsewhere)
		err = store__writer_start(st, conf);
	return err;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	store__writer_stop(st);
	if (st->ops)
		st->ops->close(st);
	store__queue_free(&st->wq);
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock; the file stays, empty of meaning */
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

/* True if h is n lowercase hex digits and nothing more. */
static bool hex_ok(const char *h, size_t n)
{
	if (!h)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	return h[n] == '\0';
}

/* Fills u with the names and the HA1 hashes given. */
static int make_user(struct store *st, struct store_user *u, struct str user, struct str domain, const char *ha1_md5,
		     const char *ha1_sha256, char *dom)
{
	int err = names(st, user, domain, dom);

	if (err)
		return err;
	if (!hex_ok(ha1_md5, STORE_HA1_MD5_LEN) || !hex_ok(ha1_sha256, STORE_HA1_SHA256_LEN))
		return store__err(st, -EINVAL, "HA1 hashes must be %d and %d lowercase hex digits", STORE_HA1_MD5_LEN,
				  STORE_HA1_SHA256_LEN);
	u->user = user;
	u->domain = (struct str){ dom, domain.l };
	memcpy(u->ha1_md5, ha1_md5, sizeof(u->ha1_md5));
	memcpy(u->ha1_sha256, ha1_sha256, sizeof(u->ha1_sha256));
	return 0;
}

static int writable(struct store *st)
{
	if (st->readonly)
		return store__err(st, -EROFS, "database %s is open read-only", st->path);
	return 0;
}

int store_user_add(struct store *st, struct str user, struct str domain, const char *ha1_md5, const char *ha1_sha256)
{
	struct store_user u;
	char dom[DOMAIN_MAX + 1];
	int err = writable(st);

	if (!err)
		err = make_user(st, &u, user, domain, ha1_md5, ha1_sha256, dom);
	if (!err)
		err = st->ops->user_insert(st, &u);
	if (err == -EEXIST)
		store__err(st, err, "user %.*s@%s already exists", STR_FMT(user), dom);
	return err;
}

int store_user_passwd(struct store *st, struct str user, struct str domain, const char *ha1_md5, const char *ha1_sha256)
{
	struct store_user u;
	char dom[DOMAIN_MAX + 1];
	int err = writable(st);

	if (!err)
		err = make_user(st, &u, user, domain, ha1_md5, ha1_sha256, dom);
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
	out->domain = (struct str){ dom, domain.l }; /* the lowercase form is the key */
	err = st->ops->user_get(st, out);
	out->domain = domain; /* dom dies with this frame: hand back the caller's view */
	if (err == -ENOENT)
		store__err(st, err, "no user %.*s@%s", STR_FMT(user), dom);
	return err;
}

int store_user_list(struct store *st, store_user_h *cb, void *arg)
{
	return st->ops->user_list(st, cb, arg);
}

/* ---- admin accounts ---------------------------------------------------------------------- */

/* Whether name is 1 to STORE_ADMIN_NAME_MAX printable ASCII characters without spaces. */
static int admin_name(struct store *st, struct str name)
{
	bool ok = name.l > 0 && name.l <= STORE_ADMIN_NAME_MAX;
	for (size_t i = 0; ok && i < name.l; i++)
		ok = name.p[i] > 0x20 && name.p[i] < 0x7f;
	return ok ? 0
		  : store__err(st, -EINVAL, "bad admin name: 1 to %d printable ASCII characters without spaces, please",
			       STORE_ADMIN_NAME_MAX);
}

int store_admin_add(struct store *st, struct str name, const char *pwhash, int64_t created)
{
	int err = writable(st);
	if (!err)
		err = admin_name(st, name);
	if (!err) {
		struct store_admin a = { .name = name, .pwhash = str_from_cstr(pwhash), .created = created };
		err = st->ops->admin_write(st, &a, true);
	}
	if (err == -EEXIST)
		store__err(st, err, "admin %.*s already exists", STR_FMT(name));
	return err;
}

int store_admin_passwd(struct store *st, struct str name, const char *pwhash)
{
	int err = writable(st);
	if (!err)
		err = admin_name(st, name);
	if (!err) {
		struct store_admin a = { .name = name, .pwhash = str_from_cstr(pwhash) };
		err = st->ops->admin_write(st, &a, false);
	}
	if (err == -ENOENT)
		store__err(st, err, "no admin %.*s", STR_FMT(name));
	return err;
}

int store_admin_del(struct store *st, struct str name)
{
	int err = writable(st);
	if (!err)
		err = admin_name(st, name);
	/* Tokens first: a failure between the two statements leaves an admin without
	 * tokens, never tokens without an admin. */
	if (!err)
		err = st->ops->admin_delete(st, name);
	if (err == -ENOENT)
		store__err(st, err, "no admin %.*s", STR_FMT(name));
	return err;
}

int store_admin_get(struct store *st, struct str name, store_admin_h *cb, void *arg)
{
	int err = admin_name(st, name);
	if (!err)
		err = st->ops->admin_get(st, name, cb, arg);
	if (err == -ENOENT)
		store__err(st, err, "no admin %.*s", STR_FMT(name));
	return err;
}

int store_admin_list(struct store *st, store_admin_h *cb, void *arg)
{
	return st->ops->admin_list(st, cb, arg);
}

static int found(const struct store_admin *a, void *arg)
{
	return 0;
}

int store_token_add(struct store *st, struct str name, const char *hash_hex, int64_t created)
{
	int err = writable(st);
	if (!err)
		err = store_admin_get(st, name, found, NULL);
	if (err)
		return err;
	struct store_token t = { .hash = str_from_cstr(hash_hex), .name = name, .created = created };
	return st->ops->token_insert(st, &t);
}

int store_tokens_list(struct store *st, store_token_h *cb, void *arg)
{
	return st->ops->tokens_list(st, cb, arg);
}

int store_calls_query(struct store *st, const struct store_call_filter *f, unsigned limit, unsigned offset,
		      uint64_t *total, bool *partial, store_call_h *cb, void *arg)
{
	return st->ops->calls_query(st, f, limit, offset, total, partial, cb, arg);
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

/* ---- the write-behind queue --------------------------------------------------------- */

/* Queue entries are carved from chunks of this size (a bigger entry gets a chunk of its
 * own), so that queueing a change costs no malloc and a flush frees them all at once. */
#define CHUNK_SIZE ((size_t)64 << 10)

struct store__chunk {
	struct store__chunk *next;
	size_t used, cap;
	_Alignas(max_align_t) char data[];
};

size_t store_queue_len(const struct store *st)
{
	return st->wq.nq + (st->w ? store__writer_pending(st) : 0);
}

size_t store_queue_bytes(const struct store *st)
{
	return st->wq.qbytes;
}

const struct store_flush_stats *store_flush_stats(const struct store *st)
{
	return &st->fstats;
}

uint64_t store__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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

/* Key families, so that a call id never meets a ban's source. */
enum { KEY_BINDING, KEY_CALL, KEY_BAN, KEY_PRUNE, KEY_FLOW };

/* The digest of (x, y) for one family of key. The last step is a bijection of the two
 * lanes, so it loses none of their 128 bits. */
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

struct store__kd store__digest(const struct store *st, struct str aor, struct str contact, struct str instance,
			       uint32_t reg_id)
{
	if (!reg_id)
		return digest(st, aor, contact, KEY_BINDING); /* as before Outbound */
	/* A flow is (aor, instance, reg-id): a new contact for it replaces its row. */
	struct store__kd kd = digest(st, aor, instance, KEY_FLOW);
	char id[sizeof kd + 4];
	memcpy(id, &kd, sizeof kd);
	memcpy(id + sizeof kd, &reg_id, 4);
	return digest(st, (struct str){ id, sizeof id }, STR_NULL, KEY_FLOW);
}

static unsigned family(enum store__qkind k)
{
	switch (k) {
	case Q_BINDING_PUT:
	case Q_BINDING_DEL:
		return KEY_BINDING;
	case Q_CALL:
		return KEY_CALL;
	case Q_BAN_PUT:
	case Q_BAN_DEL:
		return KEY_BAN;
	case Q_CALLS_PRUNE:
	case Q_BANS_PRUNE:
		break;
	}
	return KEY_PRUNE;
}

/* Copies s to *w, points *dst at the copy and advances *w. */
static void copy(char **w, struct str s, struct str *dst)
{
	if (s.l)
		memcpy(*w, s.p, s.l);
	*dst = (struct str){ *w, s.l };
	*w += s.l;
}

/* The views of an entry, for rebase(); returns how many. */
static size_t views(struct store__qent *e, struct str **v)
{
	size_t n = 0;

	switch (e->kind) {
	case Q_CALL:
		v[n++] = &e->u.c.id;
		v[n++] = &e->u.c.call_id;
		v[n++] = &e->u.c.caller;
		v[n++] = &e->u.c.callee;
		v[n++] = &e->u.c.reason;
		v[n++] = &e->u.c.media;
		break;
	case Q_BINDING_PUT:
	case Q_BINDING_DEL:
		v[n++] = &e->u.b.aor;
		v[n++] = &e->u.b.contact;
		v[n++] = &e->u.b.src_addr;
		v[n++] = &e->u.b.transport;
		v[n++] = &e->u.b.path;
		v[n++] = &e->u.b.call_id;
		v[n++] = &e->u.b.user_agent;
		v[n++] = &e->u.b.instance;
		v[n++] = &e->u.b.params;
		break;
	case Q_BAN_PUT:
	case Q_BAN_DEL:
		v[n++] = &e->u.ban.source;
		v[n++] = &e->u.ban.reason;
		break;
	case Q_CALLS_PRUNE:
	case Q_BANS_PRUNE:
		break;
	}
	return n;
}

/* Points the views of to, a byte copy of from, at its own data[]. */
static void rebase(struct store__qent *to, const struct store__qent *from)
{
	struct str *v[9];
	size_t n = views(to, v);

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
static int compact(struct store__queue *q)
{
	size_t total = 0;
	struct store__chunk *c;

	for (size_t i = 0; i < q->nq; i++)
		total += q->q[i]->size;
	c = chunk_new(total > CHUNK_SIZE ? total : CHUNK_SIZE);
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < q->nq; i++) {
		struct store__qent *e = (struct store__qent *)(void *)(c->data + c->used);

		memcpy(e, q->q[i], q->q[i]->size);
		rebase(e, q->q[i]);
		c->used += e->size;
		q->q[i] = e;
	}
	chunks_free(q->chunks);
	q->chunks = c;
	q->abytes = c->used;
	return 0;
}

/* An entry with room for strings bytes after it, its size set; NULL after setting the
 * message. Dead entries are dropped once they take half of queue_max: the chunks then hold
 * at most 1.5 times queue_max however often changes coalesce while flushes fail, and each
 * compaction, which copies at most queue_max, has been paid for by half as many bytes of
 * replaced changes. */
static struct store__qent *qalloc(struct store *st, struct store__queue *q, size_t strings)
{
	size_t align = _Alignof(max_align_t);
	size_t size = (sizeof(struct store__qent) + strings + align - 1) & ~(align - 1);
	struct store__chunk *c;
	struct store__qent *e;

	if (q->abytes - q->qbytes > st->qmax / 2 && compact(q) != 0) {
		store__err(st, -ENOMEM, "out of memory queueing a database write");
		return NULL;
	}
	c = q->chunks;
	if (!c || c->cap - c->used < size) {
		c = chunk_new(size > CHUNK_SIZE ? size : CHUNK_SIZE);
		if (!c) {
			store__err(st, -ENOMEM, "out of memory queueing a database write");
			return NULL;
		}
		c->next = q->chunks;
		q->chunks = c;
	}
	e = (struct store__qent *)(void *)(c->data + c->used);
	c->used += size;
	q->abytes += size;
	e->size = size;
	return e;
}

/* Gives back e, the entry qalloc() made last, when it is not queued after all. */
static void qdrop(struct store__queue *q, struct store__qent *e)
{
	q->chunks->used -= e->size;
	q->abytes -= e->size;
}

void store__queue_clear(struct store__queue *q)
{
	struct store__chunk *c = q->chunks;

	q->nq = 0;
	q->qbytes = 0;
	q->abytes = 0;
	q->oldest_ms = 0;
	if (q->index)
		memset(q->index, 0, q->nindex * sizeof(*q->index));
	if (!c)
		return;
	/* One chunk of the usual size is kept for the next batch. */
	chunks_free(c->next);
	c->next = NULL;
	c->used = 0;
	if (c->cap != CHUNK_SIZE) {
		free(c);
		q->chunks = NULL;
	}
}

void store__queue_free(struct store__queue *q)
{
	chunks_free(q->chunks);
	free(q->q);
	free(q->index);
	memset(q, 0, sizeof(*q));
}

static int index_grow(struct store__queue *q)
{
	size_t n = q->nindex ? q->nindex * 2 : 1024;
	uint32_t *idx = calloc(n, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < q->nq; i++) {
		size_t j = q->q[i]->kd.a & (n - 1);
		while (idx[j])
			j = (j + 1) & (n - 1);
		idx[j] = (uint32_t)(i + 1);
	}
	free(q->index);
	q->index = idx;
	q->nindex = n;
	return 0;
}

/* True if a and b change the same row (one binding, call record or ban), or are both
 * the same kind of prune, of which the later one does what the earlier would. */
static bool same_key(const struct store__qent *a, const struct store__qent *b)
{
	if (a->kd.a != b->kd.a || a->kd.b != b->kd.b)
		return false;
	if (family(a->kind) != family(b->kind))
		return false;
	switch (family(a->kind)) {
	case KEY_CALL:
		return str_eq(a->u.c.id, b->u.c.id);
	case KEY_BINDING:
		if (a->u.b.reg_id != b->u.b.reg_id || !str_eq(a->u.b.aor, b->u.b.aor))
			return false;
		return a->u.b.reg_id ? str_eq(a->u.b.instance, b->u.b.instance)
				     : str_eq(a->u.b.contact, b->u.b.contact);
	case KEY_BAN:
		return str_eq(a->u.ban.source, b->u.ban.source);
	default:
		return a->kind == b->kind;
	}
}

/* Adds e (just made by qalloc on q) to q, replacing a queued change with the same key;
 * gives e back on failure. */
static int enqueue(struct store *st, struct store__queue *q, struct store__qent *e, bool bounded)
{
	size_t j, max = bounded ? st->qmax : SIZE_MAX;

	if (st->readonly) {
		qdrop(q, e);
		return store__err(st, -EROFS, "database %s is open read-only", st->path);
	}
	if ((q->nq + 1) * 2 > q->nindex && index_grow(q) != 0) {
		qdrop(q, e);
		return store__err(st, -ENOMEM, "out of memory queueing a database write");
	}
	j = e->kd.a & (q->nindex - 1);
	for (; q->index[j]; j = (j + 1) & (q->nindex - 1)) {
		struct store__qent **slot = &q->q[q->index[j] - 1];

		if (same_key(*slot, e)) {
			if (q->qbytes - (*slot)->size + e->size > max)
				goto full;
			/* The old entry stays in its chunk, dead, until the queue is cleared. It
			 * is replaced where it stands: changes to different rows may be written
			 * in any order, and this one is the row's newest. */
			q->qbytes = q->qbytes - (*slot)->size + e->size;
			*slot = e;
			return 0;
		}
	}
	if (q->qbytes + e->size > max || q->nq >= UINT32_MAX - 1)
		goto full;
	if (q->nq == q->capq) {
		size_t cap = q->capq ? q->capq * 2 : 256;
		struct store__qent **nq = realloc(q->q, cap * sizeof(*nq));
		if (!nq) {
			qdrop(q, e);
			return store__err(st, -ENOMEM, "out of memory queueing a database write");
		}
		q->q = nq;
		q->capq = cap;
	}
	if (q->nq == 0 && q->oldest_ms == 0)
		q->oldest_ms = store__now_ms();
	q->q[q->nq++] = e;
	q->index[j] = (uint32_t)q->nq;
	q->qbytes += e->size;
	return 0;
full:
	qdrop(q, e);
	return store__err(st, -ENOBUFS, "database write queue full (%zu bytes): is %s writable?", q->qbytes, st->path);
}

int store__requeue(struct store *st, struct store__queue *q, const struct store__qent *e, bool bounded)
{
	struct store__qent *n = qalloc(st, q, e->size - sizeof(*e));

	if (!n)
		return -ENOMEM;
	memcpy(n, e, e->size);
	rebase(n, e);
	return enqueue(st, q, n, bounded);
}

int store__queue_merge(struct store *st, struct store__queue *to, struct store__queue *from)
{
	int err = 0;

	if (to->nq == 0) {
		/* The common case: nothing failed before, so the batch is taken as it is. */
		struct store__queue t = *to;
		*to = *from;
		*from = t;
		store__queue_clear(from);
		return 0;
	}
	for (size_t i = 0; !err && i < from->nq; i++)
		err = store__requeue(st, to, from->q[i], false);
	if (err)
		return err; /* what was merged is merged again on the next try: no harm */
	if (from->oldest_ms && (to->oldest_ms == 0 || from->oldest_ms < to->oldest_ms))
		to->oldest_ms = from->oldest_ms;
	store__queue_clear(from);
	return 0;
}

int store__queue_binding(struct store *st, struct store__queue *q, enum store__qkind kind,
			 const struct store_binding *b, bool bounded)
{
	size_t n = b->aor.l + b->contact.l + b->src_addr.l + b->transport.l + b->path.l + b->call_id.l +
		   b->user_agent.l + b->instance.l + b->params.l;
	struct store__qent *e = qalloc(st, q, n);
	char *w;

	if (!e)
		return -ENOMEM;
	e->kind = kind;
	e->kd = store__digest(st, b->aor, b->contact, b->instance, b->reg_id);
	e->u.b = kind == Q_BINDING_PUT ? *b : (struct store_binding){ .reg_id = b->reg_id };
	w = e->data;
	copy(&w, b->aor, &e->u.b.aor);
	copy(&w, b->contact, &e->u.b.contact);
	copy(&w, b->instance, &e->u.b.instance);
	if (kind == Q_BINDING_PUT) {
		copy(&w, b->src_addr, &e->u.b.src_addr);
		copy(&w, b->transport, &e->u.b.transport);
		copy(&w, b->path, &e->u.b.path);
		copy(&w, b->call_id, &e->u.b.call_id);
		copy(&w, b->user_agent, &e->u.b.user_agent);
		copy(&w, b->params, &e->u.b.params);
	}
	return enqueue(st, q, e, bounded);
}

int store__queue_call(struct store *st, struct store__queue *q, const struct store_call *c, bool bounded)
{
	size_t n = c->id.l + c->call_id.l + c->caller.l + c->callee.l + c->reason.l + c->media.l;
	struct store__qent *e;
	char *w;

	if (c->id.l == 0)
		return store__err(st, -EINVAL, "call record without an id");
	e = qalloc(st, q, n);
	if (!e)
		return -ENOMEM;
	e->kind = Q_CALL;
	e->kd = digest(st, c->id, STR_NULL, KEY_CALL);
	e->u.c = *c;
	w = e->data;
	copy(&w, c->id, &e->u.c.id);
	copy(&w, c->call_id, &e->u.c.call_id);
	copy(&w, c->caller, &e->u.c.caller);
	copy(&w, c->callee, &e->u.c.callee);
	copy(&w, c->reason, &e->u.c.reason);
	copy(&w, c->media, &e->u.c.media);
	return enqueue(st, q, e, bounded);
}

int store__queue_ban(struct store *st, struct store__queue *q, enum store__qkind kind, const struct store_ban *b,
		     bool bounded)
{
	struct store__qent *e = qalloc(st, q, b->source.l + b->reason.l);
	char *w;

	if (!e)
		return -ENOMEM;
	e->kind = kind;
	e->kd = digest(st, b->source, STR_NULL, KEY_BAN);
	e->u.ban = *b;
	w = e->data;
	copy(&w, b->source, &e->u.ban.source);
	copy(&w, b->reason, &e->u.ban.reason);
	return enqueue(st, q, e, bounded);
}

int store__queue_prune(struct store *st, struct store__queue *q, enum store__qkind kind, int64_t before, bool bounded)
{
	struct store__qent *e = qalloc(st, q, 0);

	if (!e)
		return -ENOMEM;
	e->kind = kind;
	e->kd = digest(st, STR_NULL, STR_NULL, KEY_PRUNE);
	e->u.before = before;
	return enqueue(st, q, e, bounded);
}

int store_binding_put(struct store *st, const struct store_binding *b)
{
	return store__queue_binding(st, &st->wq, Q_BINDING_PUT, b, true);
}

int store_binding_del(struct store *st, struct str aor, struct str contact)
{
	return store_flow_del(st, aor, contact, STR_NULL, 0);
}

int store_flow_del(struct store *st, struct str aor, struct str contact, struct str instance, uint32_t reg_id)
{
	struct store_binding b = { .aor = aor, .contact = contact, .instance = instance, .reg_id = reg_id };

	return store__queue_binding(st, &st->wq, Q_BINDING_DEL, &b, true);
}

int store_call_put(struct store *st, const struct store_call *c)
{
	return store__queue_call(st, &st->wq, c, true);
}

/* ---- bans and retention ------------------------------------------------------------- */

static int ban_check(struct store *st, struct str source)
{
	if (source.l == 0 || source.l > 64)
		return store__err(st, -EINVAL, "a ban needs a source address (at most 64 characters)");
	return 0;
}

int store_ban_put(struct store *st, const struct store_ban *b)
{
	int err = writable(st);

	if (!err)
		err = ban_check(st, b->source);
	if (err)
		return err;
	if (st->w)
		return store__queue_ban(st, &st->wq, Q_BAN_PUT, b, true);
	return st->ops->ban_write(st, b);
}

int store_ban_del(struct store *st, struct str source)
{
	struct store_ban b = { .source = source };
	int err = writable(st);

	if (!err)
		err = ban_check(st, source);
	if (err)
		return err;
	if (st->w)
		return store__queue_ban(st, &st->wq, Q_BAN_DEL, &b, true);
	err = st->ops->ban_delete(st, source);
	if (err == -ENOENT)
		store__err(st, err, "no ban of %.*s", STR_FMT(source));
	return err;
}

int store_bans_prune(struct store *st, int64_t now)
{
	int err = writable(st);

	if (err)
		return err;
	if (st->w)
		return store__queue_prune(st, &st->wq, Q_BANS_PRUNE, now, true);
	return st->ops->bans_prune(st, now);
}

int store_bans_list(struct store *st, int64_t now, store_ban_h *cb, void *arg)
{
	return st->ops->bans_list(st, now, cb, arg);
}

int store_cdr_prune(struct store *st, int64_t before_unix)
{
	int err = writable(st);
	int64_t ms = before_unix > 0 ? before_unix * 1000 : 0;

	if (err)
		return err;
	if (st->w)
		return store__queue_prune(st, &st->wq, Q_CALLS_PRUNE, ms, true);
	return st->ops->calls_prune(st, (uint64_t)ms);
}

/* ---- writing a queue ------------------------------------------------------------------- */

static int write_one(struct store *st, const struct store__qent *e)
{
	int err = 0;

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
	case Q_BAN_PUT:
		err = st->ops->ban_write(st, &e->u.ban);
		break;
	case Q_BAN_DEL:
		err = st->ops->ban_delete(st, e->u.ban.source);
		if (err == -ENOENT)
			err = 0; /* `parley ban del` came first: the same outcome */
		break;
	case Q_CALLS_PRUNE:
		err = st->ops->calls_prune(st, (uint64_t)e->u.before);
		break;
	case Q_BANS_PRUNE:
		err = st->ops->bans_prune(st, e->u.before);
		break;
	}
	return err;
}

int store__write(struct store *st, struct store__queue *q, uint64_t gen)
{
	int err;

	if (q->nq == 0 && gen == 0)
		return 0;
	err = st->ops->begin(st);
	for (size_t i = 0; !err && i < q->nq; i++)
		err = write_one(st, q->q[i]);
	if (!err && gen)
		err = st->ops->journal_gen_set(st, gen);
	if (!err)
		err = st->ops->commit(st);
	if (err) {
		/* Every queued write is an idempotent upsert or delete, so the whole batch can
		 * simply be tried again on the next tick. */
		st->ops->rollback(st);
		return err;
	}
	store__queue_clear(q);
	return 0;
}

int store_flush(struct store *st)
{
	if (st->w)
		return store__writer_flush(st);
	return store__write(st, &st->wq, 0);
}

int store_sync(struct store *st)
{
	if (st->w)
		return store__writer_sync(st);
	return store__write(st, &st->wq, 0);
}

int store_bindings_load(struct store *st, int64_t now, store_binding_h *cb, void *arg)
{
	return st->ops->bindings_load(st, now, cb, arg);
}

int store_calls_list(struct store *st, unsigned limit, store_call_h *cb, void *arg)
{
	return st->ops->calls_list(st, limit, cb, arg);
}
