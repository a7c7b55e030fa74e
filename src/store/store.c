/* store.c: the back-end-neutral store: user hashing, import files and the write-behind queue. */
#include "store/store_be.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define USER_MAX 255
#define DOMAIN_MAX 255
#define PASSWORD_MAX 1023
#define QUEUE_MAX_DEFAULT ((size_t)64 << 20)

enum qkind { Q_BINDING_PUT, Q_BINDING_DEL, Q_CALL };

/* One queued change. Its views point into data[], which holds the key first (a kind letter,
 * then the aor, NUL, contact; or the call id) and then every other string of the row. */
struct store__qent {
	enum qkind kind;
	uint64_t hash;
	struct str key;
	size_t size;                   /* bytes charged to the queue */
	union {
		struct store_binding b;
		struct store_call c;
	} u;
	char data[];
};

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
	err = st->ops->open(st, conf);
	if (err) {
		st->ops->close(st);
		st->ops = NULL;
	}
	return err;
}

static void queue_clear(struct store *st)
{
	for (size_t i = 0; i < st->nq; i++)
		free(st->q[i]);
	st->nq = 0;
	st->qbytes = 0;
	if (st->index)
		memset(st->index, 0, st->nindex * sizeof(*st->index));
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->ops)
		st->ops->close(st);
	queue_clear(st);
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

size_t store_queue_len(const struct store *st)
{
	return st->nq;
}

size_t store_queue_bytes(const struct store *st)
{
	return st->qbytes;
}

/* Copies s to *w, points *dst at the copy and advances *w. */
static void copy(char **w, struct str s, struct str *dst)
{
	if (s.l)
		memcpy(*w, s.p, s.l);
	*dst = (struct str){ *w, s.l };
	*w += s.l;
}

static uint64_t key_hash(struct str key)
{
	return str_hash(key);
}

static int index_grow(struct store *st)
{
	size_t n = st->nindex ? st->nindex * 2 : 1024;
	uint32_t *idx = calloc(n, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < st->nq; i++) {
		size_t j = st->q[i]->hash & (n - 1);
		while (idx[j])
			j = (j + 1) & (n - 1);
		idx[j] = (uint32_t)(i + 1);
	}
	free(st->index);
	st->index = idx;
	st->nindex = n;
	return 0;
}

/* Adds e to the queue, replacing a queued change with the same key; frees e on failure. */
static int enqueue(struct store *st, struct store__qent *e)
{
	size_t j;

	if (st->readonly) {
		free(e);
		return store__err(st, -EROFS, "database %s is open read-only", st->path);
	}
	e->hash = key_hash(e->key);
	if ((st->nq + 1) * 2 > st->nindex && index_grow(st) != 0) {
		free(e);
		return store__err(st, -ENOMEM, "out of memory queueing a database write");
	}
	j = e->hash & (st->nindex - 1);
	for (; st->index[j]; j = (j + 1) & (st->nindex - 1)) {
		struct store__qent **slot = &st->q[st->index[j] - 1];

		if ((*slot)->hash == e->hash && str_eq((*slot)->key, e->key)) {
			if (st->qbytes - (*slot)->size + e->size > st->qmax)
				goto full;
			st->qbytes = st->qbytes - (*slot)->size + e->size;
			free(*slot);
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
			free(e);
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
	free(e);
	return store__err(st, -ENOBUFS, "database write queue full (%zu bytes): is %s writable?",
			  st->qbytes, st->path);
}

static struct store__qent *qalloc(struct store *st, size_t strings)
{
	size_t size = sizeof(struct store__qent) + strings;
	struct store__qent *e = calloc(1, size);

	if (e)
		e->size = size;
	else
		store__err(st, -ENOMEM, "out of memory queueing a database write");
	return e;
}

/* Writes the binding key "b" aor NUL contact at *w. */
static void binding_key(struct store__qent *e, char **w, struct str aor, struct str contact)
{
	char *start = *w;

	*(*w)++ = 'b';
	copy(w, aor, &e->u.b.aor);
	*(*w)++ = '\0';
	copy(w, contact, &e->u.b.contact);
	e->key = (struct str){ start, (size_t)(*w - start) };
}

int store_binding_put(struct store *st, const struct store_binding *b)
{
	size_t n = 2 + b->aor.l + b->contact.l + b->src_addr.l + b->transport.l + b->path.l +
		   b->call_id.l + b->user_agent.l + b->instance.l + b->params.l;
	struct store__qent *e = qalloc(st, n);
	char *w;

	if (!e)
		return -ENOMEM;
	e->kind = Q_BINDING_PUT;
	e->u.b = *b;
	w = e->data;
	binding_key(e, &w, b->aor, b->contact);
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
	struct store__qent *e = qalloc(st, 2 + aor.l + contact.l);
	char *w;

	if (!e)
		return -ENOMEM;
	e->kind = Q_BINDING_DEL;
	w = e->data;
	binding_key(e, &w, aor, contact);
	return enqueue(st, e);
}

int store_call_put(struct store *st, const struct store_call *c)
{
	size_t n = 1 + c->id.l + c->call_id.l + c->caller.l + c->callee.l + c->reason.l;
	struct store__qent *e = qalloc(st, n);
	char *w;

	if (!e)
		return -ENOMEM;
	if (c->id.l == 0) {
		free(e);
		return store__err(st, -EINVAL, "call record without an id");
	}
	e->kind = Q_CALL;
	e->u.c = *c;
	w = e->data;
	*w++ = 'c';
	copy(&w, c->id, &e->u.c.id);
	e->key = (struct str){ e->data, 1 + c->id.l };
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
			err = st->ops->binding_write(st, &e->u.b);
			break;
		case Q_BINDING_DEL:
			err = st->ops->binding_delete(st, e->u.b.aor, e->u.b.contact);
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
