/* sqlite.c: the SQLite back end of the store (WAL, versioned schema, prepared statements). */
#include "store/store_be.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

/* Schema migrations: entry i takes the database from user_version i to i + 1. A new
 * version is added at the end; shipped entries are never edited. */
static const char *const migrations[] = {
	/* 1: users, bindings, calls */
	"CREATE TABLE users("
	"  user TEXT NOT NULL,"
	"  domain TEXT NOT NULL,"
	"  ha1_md5 TEXT NOT NULL,"
	"  ha1_sha256 TEXT NOT NULL,"
	"  PRIMARY KEY(user, domain)) WITHOUT ROWID;"
	"CREATE TABLE bindings("
	"  aor TEXT NOT NULL,"
	"  contact TEXT NOT NULL,"
	"  src_addr TEXT NOT NULL,"
	"  src_port INTEGER NOT NULL,"
	"  transport TEXT NOT NULL,"
	"  path TEXT NOT NULL DEFAULT '',"
	"  call_id TEXT NOT NULL,"
	"  cseq INTEGER NOT NULL,"
	"  q INTEGER NOT NULL,"           /* thousandths */
	"  expires_at INTEGER NOT NULL,"  /* unix seconds */
	"  user_agent TEXT NOT NULL DEFAULT '',"
	"  instance TEXT NOT NULL DEFAULT '',"
	"  reg_id INTEGER NOT NULL DEFAULT 0,"
	"  params TEXT NOT NULL DEFAULT '',"   /* contact params as sent, without expires */
	"  flags INTEGER NOT NULL DEFAULT 0,"  /* registrar flags (reach at source address) */
	"  PRIMARY KEY(aor, contact)) WITHOUT ROWID;"
	/* no index on expires_at: expired rows are deleted one by one as the registrar sweeps
	 * them, and all at once only at start-up, where a scan is cheap; an index would cost
	 * every REGISTER a second b-tree update */
	"CREATE TABLE calls("
	"  id TEXT NOT NULL PRIMARY KEY,"
	"  call_id TEXT NOT NULL,"
	"  caller TEXT NOT NULL,"
	"  callee TEXT NOT NULL,"
	"  start_ms INTEGER NOT NULL,"
	"  answer_ms INTEGER NOT NULL DEFAULT 0,"
	"  end_ms INTEGER NOT NULL DEFAULT 0,"
	"  status INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  duration_ms INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX calls_start ON calls(start_ms);",
};
#define SCHEMA_VERSION (int)(sizeof(migrations) / sizeof(migrations[0]))

enum sid {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_USER_INS, S_USER_UPD, S_USER_UPS, S_USER_DEL, S_USER_GET, S_USER_LIST,
	S_BIND_PUT, S_BIND_DEL, S_BIND_EXPIRE, S_BIND_LOAD,
	S_CALL_PUT, S_CALL_LIST,
	S_COUNT
};

static const char *const sql[S_COUNT] = {
	/* IMMEDIATE takes the write lock at once, so that waiting for another writer happens
	  * here (under busy_timeout) and not half-way through a batch. */
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_USER_INS] = "INSERT INTO users(user, domain, ha1_md5, ha1_sha256) VALUES(?1, ?2, ?3, ?4)",
	[S_USER_UPD] = "UPDATE users SET ha1_md5 = ?3, ha1_sha256 = ?4 WHERE user = ?1 AND domain = ?2",
	[S_USER_UPS] = ("INSERT INTO users(user, domain, ha1_md5, ha1_sha256) VALUES(?1, ?2, ?3, ?4)"
		        " ON CONFLICT(user, domain) DO UPDATE SET"
		        " ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256"),
	[S_USER_DEL] = "DELETE FROM users WHERE user = ?1 AND domain = ?2",
	[S_USER_GET] = "SELECT ha1_md5, ha1_sha256 FROM users WHERE user = ?1 AND domain = ?2",
	[S_USER_LIST] = "SELECT user, domain, ha1_md5, ha1_sha256 FROM users ORDER BY domain, user",
	[S_BIND_PUT] = ("INSERT OR REPLACE INTO bindings(aor, contact, src_addr, src_port, transport,"
		        " path, call_id, cseq, q, expires_at, user_agent, instance, reg_id, params, flags)"
		        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
	[S_BIND_DEL] = "DELETE FROM bindings WHERE aor = ?1 AND contact = ?2",
	[S_BIND_EXPIRE] = "DELETE FROM bindings WHERE expires_at <= ?1",
	[S_BIND_LOAD] = ("SELECT aor, contact, src_addr, src_port, transport, path, call_id, cseq, q,"
			" expires_at, user_agent, instance, reg_id, params, flags FROM bindings"
			" WHERE expires_at > ?1 ORDER BY aor, contact"),
	[S_CALL_PUT] = ("INSERT INTO calls(id, call_id, caller, callee, start_ms, answer_ms, end_ms,"
		        " status, reason, duration_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
		        " ON CONFLICT(id) DO UPDATE SET call_id = excluded.call_id,"
		        " caller = excluded.caller, callee = excluded.callee,"
		        " start_ms = excluded.start_ms, answer_ms = excluded.answer_ms,"
		        " end_ms = excluded.end_ms, status = excluded.status,"
		        " reason = excluded.reason, duration_ms = excluded.duration_ms"),
	[S_CALL_LIST] = ("SELECT id, call_id, caller, callee, start_ms, answer_ms, end_ms, status,"
			" reason, duration_ms FROM calls ORDER BY start_ms DESC, rowid DESC LIMIT ?1"),
};

struct be {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];   /* prepared on first use */
	bool empty;                    /* read-only open of a database with no schema yet */
};

static struct be *be_of(struct store *st)
{
	return st->be;
}

/* Turns an SQLite failure into an errno and a message a person can act on. */
static int fail(struct store *st, int rc, const char *what)
{
	struct be *b = be_of(st);
	int sys = b && b->db ? sqlite3_system_errno(b->db) : 0;
	const char *msg = b && b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return store__err(st, -EBUSY, "database %s is locked by another process (%s)",
				  st->path, what);
	case SQLITE_FULL:
		return store__err(st, -ENOSPC, "disk full: cannot write database %s (%s)", st->path, what);
	case SQLITE_READONLY:
		return store__err(st, -EROFS, "database %s is not writable (%s)", st->path, what);
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return store__err(st, -EACCES, "permission denied on database %s (%s)", st->path, what);
	case SQLITE_CANTOPEN:
		return store__err(st, sys == ENOENT ? -ENOENT : -EACCES, "cannot open database %s: %s",
				  st->path, sys ? strerror(sys) : msg);
	case SQLITE_NOTADB:
		return store__err(st, -EIO, "%s is not a SQLite database", st->path);
	case SQLITE_CORRUPT:
		return store__err(st, -EIO, "database %s is corrupt", st->path);
	case SQLITE_CONSTRAINT:
		return store__err(st, -EEXIST, "database %s: %s: %s", st->path, what, msg);
	case SQLITE_NOMEM:
		return store__err(st, -ENOMEM, "out of memory in database %s (%s)", st->path, what);
	case SQLITE_IOERR:
		if (sys == ENOSPC || sys == EDQUOT)
			return store__err(st, -ENOSPC, "disk full: cannot write database %s (%s)",
					  st->path, what);
		return store__err(st, -EIO, "I/O error on database %s (%s): %s", st->path, what,
				  sys ? strerror(sys) : msg);
	default:
		return store__err(st, -EIO, "database %s: %s failed: %s", st->path, what, msg);
	}
}

/* The prepared statement id, reset and ready to bind; NULL after setting *err. */
static sqlite3_stmt *stmt(struct store *st, enum sid id, int *err)
{
	struct be *b = be_of(st);
	int rc;

	if (b->stmt[id]) {
		sqlite3_reset(b->stmt[id]);
		sqlite3_clear_bindings(b->stmt[id]);
		return b->stmt[id];
	}
	rc = sqlite3_prepare_v3(b->db, sql[id], -1, SQLITE_PREPARE_PERSISTENT, &b->stmt[id], NULL);
	if (rc != SQLITE_OK) {
		*err = fail(st, rc, "prepare");
		return NULL;
	}
	return b->stmt[id];
}

static void bind_str(sqlite3_stmt *s, int i, struct str v)
{
	/* The statement runs before the caller's buffer can change, so no copy is needed. */
	sqlite3_bind_text(s, i, v.l ? v.p : "", (int)v.l, SQLITE_STATIC);
}

static struct str col_str(sqlite3_stmt *s, int i)
{
	const char *p = (const char *)sqlite3_column_text(s, i);

	return p ? (struct str){ p, (size_t)sqlite3_column_bytes(s, i) } : STR("");
}

/* Runs a statement that returns no rows; *changes (if given) gets the rows it touched. */
static int run(struct store *st, sqlite3_stmt *s, const char *what, int *changes)
{
	int rc = sqlite3_step(s), err = 0;

	/* The message is taken before the reset, which may replace it. */
	if (rc != SQLITE_DONE)
		err = fail(st, rc, what);
	sqlite3_reset(s);
	if (err)
		return err;
	if (changes)
		*changes = sqlite3_changes(be_of(st)->db);
	return 0;
}

static int exec(struct store *st, const char *text, const char *what)
{
	int rc = sqlite3_exec(be_of(st)->db, text, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(st, rc, what);
}

static int int_pragma(struct store *st, const char *text, int *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(be_of(st)->db, text, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return fail(st, rc, "read schema version");
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(st, rc, "read schema version");
}

static int newer_schema(struct store *st, int version)
{
	return store__err(st, -EIO, "database %s has schema version %d, newer than this parley (%d)",
			  st->path, version, SCHEMA_VERSION);
}

/* Brings the schema up to date in one transaction, so that two processes opening a new
 * database at once cannot both create it. */
static int migrate(struct store *st)
{
	int version = 0, err = exec(st, "BEGIN IMMEDIATE", "lock for schema update");

	if (!err)
		err = int_pragma(st, "PRAGMA user_version", &version);
	if (!err && version > SCHEMA_VERSION)
		err = newer_schema(st, version);
	for (; !err && version < SCHEMA_VERSION; version++) {
		char set[64];

		err = exec(st, migrations[version], "create schema");
		snprintf(set, sizeof(set), "PRAGMA user_version = %d", version + 1);
		if (!err)
			err = exec(st, set, "set schema version");
	}
	if (!err)
		err = exec(st, "COMMIT", "commit schema update");
	if (err)
		sqlite3_exec(be_of(st)->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

static int be_open(struct store *st, const struct store_conf *conf)
{
	struct be *b = calloc(1, sizeof(*b));
	int flags = SQLITE_OPEN_NOMUTEX;
	int rc, err, version = 0;
	struct stat sb;

	if (!b)
		return store__err(st, -ENOMEM, "out of memory opening %s", st->path);
	st->be = b;
	if (st->readonly) {
		/* A reader must not create an empty file where the server's database should be. */
		if (stat(st->path, &sb) != 0)
			return store__err(st, -errno, "cannot open database %s: %s", st->path,
					  strerror(errno));
		flags |= SQLITE_OPEN_READONLY;
	} else {
		flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(st->path, &b->db, flags, NULL);
	if (rc != SQLITE_OK)
		return fail(st, rc, "open");
	sqlite3_extended_result_codes(b->db, 1);
	sqlite3_busy_timeout(b->db, (int)st->busy_ms);
	if (st->readonly) {
		err = int_pragma(st, "PRAGMA user_version", &version);
		if (!err && version > SCHEMA_VERSION)
			err = newer_schema(st, version);
		b->empty = version == 0;
		return err;
	}
	/* SQLite quietly opens a file it may not write read-only; say so now, at start-up,
	 * rather than at the first flush. */
	if (sqlite3_db_readonly(b->db, "main") == 1)
		return store__err(st, -EROFS, "database %s is not writable", st->path);
	/* WAL lets `parley reg list` read while the server writes; NORMAL syncs at
	 * checkpoints only, which keeps the database consistent after a crash and may lose
	 * at most the last transactions on power loss. */
	err = exec(st, "PRAGMA journal_mode = WAL", "enable WAL");
	if (!err)
		err = exec(st, "PRAGMA synchronous = NORMAL", "set synchronous");
	if (!err)
		err = migrate(st);
	return err;
}

static void be_close(struct store *st)
{
	struct be *b = be_of(st);

	if (!b)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(b->stmt[i]);
	sqlite3_close(b->db);
	free(b);
	st->be = NULL;
}

static int simple(struct store *st, enum sid id, const char *what)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, id, &err);

	return s ? run(st, s, what, NULL) : err;
}

static int be_begin(struct store *st)
{
	return simple(st, S_BEGIN, "begin transaction");
}

static int be_commit(struct store *st)
{
	return simple(st, S_COMMIT, "commit");
}

static void be_rollback(struct store *st)
{
	struct be *b = be_of(st);

	/* After some failures SQLite has already rolled back; ROLLBACK would then fail, and
	 * that is fine. */
	if (!sqlite3_get_autocommit(b->db))
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
}

static int user_write(struct store *st, enum sid id, const struct store_user *u, int *changes)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, id, &err);

	if (!s)
		return err;
	bind_str(s, 1, u->user);
	bind_str(s, 2, u->domain);
	sqlite3_bind_text(s, 3, u->ha1_md5, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, u->ha1_sha256, -1, SQLITE_STATIC);
	return run(st, s, "write user", changes);
}

static int be_user_insert(struct store *st, const struct store_user *u)
{
	return user_write(st, S_USER_INS, u, NULL);   /* the primary key gives -EEXIST */
}

static int be_user_update(struct store *st, const struct store_user *u)
{
	int changes = 0, err = user_write(st, S_USER_UPD, u, &changes);

	return err ? err : changes ? 0 : -ENOENT;
}

static int be_user_upsert(struct store *st, const struct store_user *u)
{
	return user_write(st, S_USER_UPS, u, NULL);
}

static int be_user_delete(struct store *st, struct str user, struct str domain)
{
	int err = 0, changes = 0;
	sqlite3_stmt *s = stmt(st, S_USER_DEL, &err);

	if (!s)
		return err;
	bind_str(s, 1, user);
	bind_str(s, 2, domain);
	err = run(st, s, "delete user", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

static void copy_hex(char *dst, size_t cap, struct str v)
{
	size_t n = v.l < cap - 1 ? v.l : cap - 1;

	memcpy(dst, v.p, n);
	dst[n] = '\0';
}

static int be_user_get(struct store *st, struct store_user *u)
{
	int err = 0, rc;
	sqlite3_stmt *s;

	if (be_of(st)->empty)
		return -ENOENT;
	s = stmt(st, S_USER_GET, &err);
	if (!s)
		return err;
	bind_str(s, 1, u->user);
	bind_str(s, 2, u->domain);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		copy_hex(u->ha1_md5, sizeof(u->ha1_md5), col_str(s, 0));
		copy_hex(u->ha1_sha256, sizeof(u->ha1_sha256), col_str(s, 1));
		err = 0;
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = fail(st, rc, "read user");
	}
	sqlite3_reset(s);
	return err;
}

/* The caller's callback for a walk over rows. */
struct cb {
	store_user_h *user;
	store_binding_h *binding;
	store_call_h *call;
	void *arg;
};

/* Steps a query and hands each row to row(); returns 0, the callback's stop value, or the
 * failure. */
static int walk(struct store *st, sqlite3_stmt *s, const char *what,
		int (*row)(sqlite3_stmt *s, const struct cb *cb), const struct cb *cb)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ret = row(s, cb);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = fail(st, rc, what);
	sqlite3_reset(s);
	return ret;
}

static int user_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_user u = { .user = col_str(s, 0), .domain = col_str(s, 1) };

	copy_hex(u.ha1_md5, sizeof(u.ha1_md5), col_str(s, 2));
	copy_hex(u.ha1_sha256, sizeof(u.ha1_sha256), col_str(s, 3));
	return cb->user(&u, cb->arg);
}

static int be_user_list(struct store *st, store_user_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->empty)
		return 0;
	s = stmt(st, S_USER_LIST, &err);
	return s ? walk(st, s, "list users", user_row, &(struct cb){ .user = cb, .arg = arg }) : err;
}

static int be_binding_write(struct store *st, const struct store_binding *b)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_BIND_PUT, &err);

	if (!s)
		return err;
	bind_str(s, 1, b->aor);
	bind_str(s, 2, b->contact);
	bind_str(s, 3, b->src_addr);
	sqlite3_bind_int(s, 4, b->src_port);
	bind_str(s, 5, b->transport);
	bind_str(s, 6, b->path);
	bind_str(s, 7, b->call_id);
	sqlite3_bind_int64(s, 8, b->cseq);
	sqlite3_bind_int(s, 9, b->q);
	sqlite3_bind_int64(s, 10, b->expires_at);
	bind_str(s, 11, b->user_agent);
	bind_str(s, 12, b->instance);
	sqlite3_bind_int64(s, 13, b->reg_id);
	bind_str(s, 14, b->params);
	sqlite3_bind_int(s, 15, b->flags);
	return run(st, s, "write binding", NULL);
}

static int be_binding_delete(struct store *st, struct str aor, struct str contact)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_BIND_DEL, &err);

	if (!s)
		return err;
	bind_str(s, 1, aor);
	bind_str(s, 2, contact);
	return run(st, s, "delete binding", NULL);
}

static int binding_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_binding b = {
		.aor = col_str(s, 0),
		.contact = col_str(s, 1),
		.src_addr = col_str(s, 2),
		.src_port = (uint16_t)sqlite3_column_int(s, 3),
		.transport = col_str(s, 4),
		.path = col_str(s, 5),
		.call_id = col_str(s, 6),
		.cseq = (uint32_t)sqlite3_column_int64(s, 7),
		.q = (uint16_t)sqlite3_column_int(s, 8),
		.expires_at = sqlite3_column_int64(s, 9),
		.user_agent = col_str(s, 10),
		.instance = col_str(s, 11),
		.reg_id = (uint32_t)sqlite3_column_int64(s, 12),
		.params = col_str(s, 13),
		.flags = (uint8_t)sqlite3_column_int(s, 14),
	};

	return cb->binding(&b, cb->arg);
}

static int be_bindings_load(struct store *st, int64_t now, store_binding_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->empty)
		return 0;
	if (!st->readonly) {
		s = stmt(st, S_BIND_EXPIRE, &err);
		if (!s)
			return err;
		sqlite3_bind_int64(s, 1, now);
		err = run(st, s, "delete expired bindings", NULL);
		if (err)
			return err;
	}
	s = stmt(st, S_BIND_LOAD, &err);
	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, now);
	return walk(st, s, "load bindings", binding_row, &(struct cb){ .binding = cb, .arg = arg });
}

static int be_call_write(struct store *st, const struct store_call *c)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_CALL_PUT, &err);

	if (!s)
		return err;
	bind_str(s, 1, c->id);
	bind_str(s, 2, c->call_id);
	bind_str(s, 3, c->caller);
	bind_str(s, 4, c->callee);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)c->start_ms);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)c->answer_ms);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)c->end_ms);
	sqlite3_bind_int64(s, 8, c->status);
	bind_str(s, 9, c->reason);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)c->duration_ms);
	return run(st, s, "write call record", NULL);
}

static int call_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_call c = {
		.id = col_str(s, 0),
		.call_id = col_str(s, 1),
		.caller = col_str(s, 2),
		.callee = col_str(s, 3),
		.start_ms = (uint64_t)sqlite3_column_int64(s, 4),
		.answer_ms = (uint64_t)sqlite3_column_int64(s, 5),
		.end_ms = (uint64_t)sqlite3_column_int64(s, 6),
		.status = (unsigned)sqlite3_column_int(s, 7),
		.reason = col_str(s, 8),
		.duration_ms = (uint64_t)sqlite3_column_int64(s, 9),
	};

	return cb->call(&c, cb->arg);
}

static int be_calls_list(struct store *st, unsigned limit, store_call_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->empty)
		return 0;
	s = stmt(st, S_CALL_LIST, &err);
	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, limit ? (sqlite3_int64)limit : -1);
	return walk(st, s, "list call records", call_row, &(struct cb){ .call = cb, .arg = arg });
}

const struct store_ops store__sqlite_ops = {
	.name = "sqlite",
	.open = be_open,
	.close = be_close,
	.begin = be_begin,
	.commit = be_commit,
	.rollback = be_rollback,
	.user_insert = be_user_insert,
	.user_update = be_user_update,
	.user_upsert = be_user_upsert,
	.user_delete = be_user_delete,
	.user_get = be_user_get,
	.user_list = be_user_list,
	.binding_write = be_binding_write,
	.binding_delete = be_binding_delete,
	.bindings_load = be_bindings_load,
	.call_write = be_call_write,
	.calls_list = be_calls_list,
};
