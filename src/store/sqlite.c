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
	"  q INTEGER NOT NULL,"          /* thousandths */
	"  expires_at INTEGER NOT NULL," /* unix seconds */
	"  user_agent TEXT NOT NULL DEFAULT '',"
	"  instance TEXT NOT NULL DEFAULT '',"
	"  reg_id INTEGER NOT NULL DEFAULT 0,"
	"  params TEXT NOT NULL DEFAULT '',"  /* contact params as sent, without expires */
	"  flags INTEGER NOT NULL DEFAULT 0," /* registrar flags (reach at source address) */
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
	/* 2: bindings keyed by a row id that the server assigns. It finds the id of a binding
	 * in memory (struct be's ids), so that a refresh rewrites its row through an integer
	 * key instead of comparing text keys down a b-tree and then deleting and reinserting
	 * the row, and new bindings are appended at the end of the table. Nothing but the
	 * server writes bindings, which keeps (aor, contact) unique without an index that
	 * every write would have to update. The columns are those of version 1 without NOT
	 * NULL: a constraint that can fail makes a statement of several rows keep an undo
	 * journal (about 5% of a write, measured), for values the server never leaves out
	 * (and reads back as '' should someone write NULL by hand). Rows are numbered in the
	 * order they expire, which is roughly the order they will be refreshed in. */
	"CREATE TABLE bindings_v2("
	"  id INTEGER PRIMARY KEY,"
	"  aor TEXT,"
	"  contact TEXT,"
	"  src_addr TEXT DEFAULT '',"
	"  src_port INTEGER DEFAULT 0,"
	"  transport TEXT DEFAULT '',"
	"  path TEXT DEFAULT '',"
	"  call_id TEXT DEFAULT '',"
	"  cseq INTEGER DEFAULT 0,"
	"  q INTEGER DEFAULT 1000,"       /* thousandths */
	"  expires_at INTEGER DEFAULT 0," /* unix seconds */
	"  user_agent TEXT DEFAULT '',"
	"  instance TEXT DEFAULT '',"
	"  reg_id INTEGER DEFAULT 0,"
	"  params TEXT DEFAULT '',"   /* contact params as sent, without expires */
	"  flags INTEGER DEFAULT 0);" /* registrar flags (reach at source address) */
	"INSERT INTO bindings_v2(aor, contact, src_addr, src_port, transport, path, call_id, cseq,"
	"  q, expires_at, user_agent, instance, reg_id, params, flags)"
	"  SELECT aor, contact, src_addr, src_port, transport, path, call_id, cseq, q, expires_at,"
	"  user_agent, instance, reg_id, params, flags FROM bindings ORDER BY expires_at, aor, contact;"
	"DROP TABLE bindings;"
	"ALTER TABLE bindings_v2 RENAME TO bindings;",
	/* 3: bans of sources that failed authentication too often, and facts about the
	 * database itself (which journal was applied last). */
	"CREATE TABLE bans("
	"  source TEXT PRIMARY KEY," /* an IP address as text */
	"  until INTEGER NOT NULL,"  /* unix seconds */
	"  reason TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE meta("
	"  key TEXT PRIMARY KEY,"
	"  value) WITHOUT ROWID;",
	/* 4: how each call's media went: direct, or through which relay with its figures */
	"ALTER TABLE calls ADD COLUMN media TEXT NOT NULL DEFAULT '';",
	/* 5: the connection a stream binding was made over, for `parley reg list` (the
	 * server's id of it, as its logs write it; 0: none, or UDP) */
	"ALTER TABLE bindings ADD COLUMN conn_id INTEGER DEFAULT 0;",
	/* 6: accounts of the HTTP admin endpoint (an Argon2id hash of the password, never
	 * the password) and their bearer tokens (a SHA-256 of the token, never the token) */
	"CREATE TABLE admins("
	"  name TEXT PRIMARY KEY,"
	"  pwhash TEXT NOT NULL,"
	"  created INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE admin_tokens("
	"  hash TEXT PRIMARY KEY," /* lowercase hex of SHA-256(token) */
	"  name TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,"
	"  created INTEGER NOT NULL) WITHOUT ROWID;",
	/* 7: call records keyed by their text id alone (a rowid table with a text primary
	 * key keeps a second b-tree for the id). The rows are kept. A search by Call-ID reads
	 * a range of the key; a search by user reads the start-time index newest first and
	 * stops at a budget (be_calls_query): an index on caller and one on callee made every
	 * call record's first write cost half as much again (16.6k -> 25.1k instructions,
	 * callgrind), paid by every call for the sake of a search now and then. */
	"CREATE TABLE calls_v7("
	"  id TEXT NOT NULL PRIMARY KEY," /* "Call-ID;From-tag;CSeq": the Call-ID's rows are a range */
	"  call_id TEXT NOT NULL,"
	"  caller TEXT NOT NULL,"
	"  callee TEXT NOT NULL,"
	"  start_ms INTEGER NOT NULL,"
	"  answer_ms INTEGER NOT NULL DEFAULT 0,"
	"  end_ms INTEGER NOT NULL DEFAULT 0,"
	"  status INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  duration_ms INTEGER NOT NULL DEFAULT 0,"
	"  media TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
	"INSERT INTO calls_v7(id, call_id, caller, callee, start_ms, answer_ms, end_ms, status, reason,"
	"  duration_ms, media) SELECT id, call_id, caller, callee, start_ms, answer_ms, end_ms, status,"
	"  reason, duration_ms, media FROM calls;"
	"DROP TABLE calls;"
	"ALTER TABLE calls_v7 RENAME TO calls;"
	"CREATE INDEX calls_start ON calls(start_ms);",
};
#define SCHEMA_VERSION (int)(sizeof(migrations) / sizeof(migrations[0]))

enum sid {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_USER_INS,
	S_USER_UPD,
	S_USER_UPS,
	S_USER_DEL,
	S_USER_GET,
	S_USER_LIST,
	S_BIND_PUT,
	S_BIND_PUTN,
	S_BIND_DEL,
	S_BIND_EXPIRE,
	S_BIND_LOAD,
	S_BIND_LOAD_RO,
	S_BIND_LOAD_RO4,
	S_BIND_IDS,
	S_BIND_RENUMBER,
	S_CALL_PUT,
	S_CALL_PUTN,
	S_CALL_LIST,
	S_CALL_PRUNE,
	S_BAN_PUT,
	S_BAN_DEL,
	S_BAN_LIST,
	S_BAN_PRUNE,
	S_JGEN_GET,
	S_JGEN_SET,
	S_ADMIN_INS,
	S_ADMIN_UPD,
	S_ADMIN_DEL,
	S_ADMIN_TOKDEL,
	S_ADMIN_GET,
	S_ADMIN_LIST,
	S_TOKEN_INS,
	S_TOKEN_LIST,
	S_COUNT
};

/* The columns of a binding write, in the order be_binding_write binds them. */
#define BIND_COLS                                                                  \
	"id, aor, contact, src_addr, src_port, transport, path, call_id, cseq, q," \
	" expires_at, user_agent, instance, reg_id, params, flags, conn_id"
#define NCOL 17
/* Rows per statement when many bindings are flushed: the cost of running a statement
 * (starting, halting, resetting it) is then shared by BATCH rows. Measured, 8 and 16 do
 * about as well, and 32 worse. */
#define BATCH 16

#define CALL_NCOL 11
#define CALL_PUT_HEAD                                                                                 \
	"INSERT INTO calls(id, call_id, caller, callee, start_ms, answer_ms, end_ms, status, reason," \
	" duration_ms, media) VALUES"
/* call_id, caller, callee and start_ms are those of the first write: left alone, their
 * indexes are not touched. Each row of a statement of several is its own upsert. */
#define CALL_PUT_TAIL                                                    \
	" ON CONFLICT(id) DO UPDATE SET answer_ms = excluded.answer_ms," \
	" end_ms = excluded.end_ms, status = excluded.status,"           \
	" reason = excluded.reason, duration_ms = excluded.duration_ms," \
	" media = CASE excluded.media WHEN '' THEN media ELSE excluded.media END"

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
	/* One row; S_BIND_PUTN is this with BATCH rows, written out by putn_sql(). Without
	 * indexes, REPLACE of an existing id overwrites the row where it is. */
	[S_BIND_PUT] = ("REPLACE INTO bindings(" BIND_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
	[S_BIND_DEL] = "DELETE FROM bindings WHERE id = ?1",
	[S_BIND_EXPIRE] = "DELETE FROM bindings WHERE expires_at <= ?1",
	/* The server's reload, in table order: it does not care for order, and a sort more
	 * than doubles the time to read a million rows (0.6 s to 1.4 s in the sqlite3 shell). */
	[S_BIND_LOAD] = ("SELECT aor, contact, src_addr, src_port, transport, path, call_id, cseq, q,"
			 " expires_at, user_agent, instance, reg_id, params, flags, conn_id, id FROM bindings"
			 " WHERE expires_at > ?1 ORDER BY id"),
	/* For people (`parley reg list`): sorted, and without the id, so that it also reads a
	 * database whose schema the server has not brought up to date yet. */
	[S_BIND_LOAD_RO] = ("SELECT aor, contact, src_addr, src_port, transport, path, call_id, cseq, q,"
			    " expires_at, user_agent, instance, reg_id, params, flags, conn_id FROM bindings"
			    " WHERE expires_at > ?1 ORDER BY aor, contact"),
	/* The same for a database of version 4 or older, which has no conn_id yet. */
	[S_BIND_LOAD_RO4] = ("SELECT aor, contact, src_addr, src_port, transport, path, call_id, cseq, q,"
			     " expires_at, user_agent, instance, reg_id, params, flags, 0 FROM bindings"
			     " WHERE expires_at > ?1 ORDER BY aor, contact"),
	[S_BIND_IDS] = "SELECT aor, contact, id, instance, reg_id FROM bindings ORDER BY id",
	[S_BIND_RENUMBER] = "UPDATE bindings SET id = ?1 WHERE id = ?2",
	/* One row; S_CALL_PUTN is this with BATCH rows of values (putn_sql()). */
	[S_CALL_PUT] = (CALL_PUT_HEAD "(?,?,?,?,?,?,?,?,?,?,?)" CALL_PUT_TAIL),
	[S_CALL_LIST] = ("SELECT id, call_id, caller, callee, start_ms, answer_ms, end_ms, status,"
			 " reason, duration_ms, media FROM calls ORDER BY start_ms DESC, id DESC LIMIT ?1"),
	[S_CALL_PRUNE] = "DELETE FROM calls WHERE start_ms < ?1",
	[S_BAN_PUT] = "REPLACE INTO bans(source, until, reason, created) VALUES(?1, ?2, ?3, ?4)",
	[S_BAN_DEL] = "DELETE FROM bans WHERE source = ?1",
	[S_BAN_LIST] = "SELECT source, until, reason, created FROM bans WHERE until > ?1 ORDER BY source",
	[S_BAN_PRUNE] = "DELETE FROM bans WHERE until <= ?1",
	[S_JGEN_GET] = "SELECT value FROM meta WHERE key = 'journal_applied'",
	[S_JGEN_SET] = "REPLACE INTO meta(key, value) VALUES('journal_applied', ?1)",
	[S_ADMIN_INS] = "INSERT INTO admins(name, pwhash, created) VALUES(?1, ?2, ?3)",
	[S_ADMIN_UPD] = "UPDATE admins SET pwhash = ?2 WHERE name = ?1",
	[S_ADMIN_DEL] = "DELETE FROM admins WHERE name = ?1",
	/* foreign keys are off by default in SQLite: the tokens go by hand */
	[S_ADMIN_TOKDEL] = "DELETE FROM admin_tokens WHERE name = ?1",
	[S_ADMIN_GET] = "SELECT pwhash, created FROM admins WHERE name = ?1",
	[S_ADMIN_LIST] = ("SELECT a.name, a.pwhash, a.created, (SELECT count(*) FROM admin_tokens t"
			  " WHERE t.name = a.name) FROM admins a ORDER BY a.name"),
	[S_TOKEN_INS] = "INSERT INTO admin_tokens(hash, name, created) VALUES(?1, ?2, ?3)",
	[S_TOKEN_LIST] = "SELECT hash, name, created FROM admin_tokens ORDER BY name, created",
};

/* What a statement parameter was last bound to, so that binding the same value again can
 * be skipped: most columns (transport, path, q, flags, ...) repeat from row to row, and a
 * bind costs some 180 instructions for a text, 90 for an integer, where comparing costs
 * a few. A text is compared by content: the bound pointer is into a queue entry that stays
 * alive until the end of the transaction, when every slot is forgotten (and the
 * statement's bindings cleared). */
struct pslot {
	const char *p;
	size_t l;
	int64_t v;
	unsigned char kind; /* 0: unknown, 1: text p/l, 2: integer v */
};

/* One binding of the ids map. v packs the row id (below 2^40) over 24 more bits of the
 * key's digest, so that a slot takes 16 bytes and 88 bits of digest tell keys apart;
 * v == 0 marks an empty slot (ids start at 1). */
struct idslot {
	uint64_t h; /* kd.a, which also places the slot */
	uint64_t v;
};

/* A row that ids_note() could not map as it is: an older row of a key met again, to be
 * deleted, or a row whose id the map cannot hold (set by hand), to get a new id. */
struct idfix {
	int64_t id;
	struct store__kd kd;
	bool drop;
};

#define ID_BITS 40
#define ID_MAX (((int64_t)1 << ID_BITS) - 1)
#define ID_CHECK(kd) ((kd).b & 0xffffff)

struct be {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT]; /* prepared on first use */
	bool empty;                  /* read-only open of a database with no schema yet */
	int version;                 /* its schema version (read-only opens may find an old one) */

	/* rows kept by be_binding_write until BATCH of them fill one statement, or commit */
	const struct store_binding *row[BATCH];
	int64_t row_id[BATCH];
	unsigned nrow;
	bool bound;                    /* the put statements hold pointers into the queue */
	struct pslot pn[BATCH * NCOL]; /* parameters of S_BIND_PUTN */
	struct pslot p1[NCOL];         /* and of S_BIND_PUT */

	/* call records kept by be_call_write the same way, for S_CALL_PUTN; they point into
	 * the queue being written, which lives until the commit */
	const struct store_call *call[BATCH];
	unsigned ncall;

	/* The id of every row of bindings, by the digest of its (aor, contact); built from
	 * the table on first need. It may also hold keys whose rows are gone (the expired
	 * rows deleted at load), which only means a later write reuses their id; a row
	 * missing from it would be written again under a new id, so every change to the
	 * table goes through it. */
	struct idslot *ids;
	size_t ids_mask, nids; /* slots - 1 (a power of two minus one), keys held */
	int64_t next_id;
	bool ids_ready;
	struct store__kd *gone; /* keys deleted in this transaction: out at commit */
	size_t ngone, capgone;
	struct idfix *fix; /* rows the build of the map could not take as they are */
	size_t nfix, capfix;
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
		return store__err(st, -EBUSY, "database %s is locked by another process (%s)", st->path, what);
	case SQLITE_FULL:
		return store__err(st, -ENOSPC, "disk full: cannot write database %s (%s)", st->path, what);
	case SQLITE_READONLY:
		return store__err(st, -EROFS, "database %s is not writable (%s)", st->path, what);
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return store__err(st, -EACCES, "permission denied on database %s (%s)", st->path, what);
	case SQLITE_CANTOPEN:
		return store__err(st, sys == ENOENT ? -ENOENT : -EACCES, "cannot open database %s: %s", st->path,
				  sys ? strerror(sys) : msg);
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
			return store__err(st, -ENOSPC, "disk full: cannot write database %s (%s)", st->path, what);
		return store__err(st, -EIO, "I/O error on database %s (%s): %s", st->path, what,
				  sys ? strerror(sys) : msg);
	default:
		return store__err(st, -EIO, "database %s: %s failed: %s", st->path, what, msg);
	}
}

/* The text of S_BIND_PUTN or S_CALL_PUTN: S_BIND_PUT or S_CALL_PUT with BATCH rows of
 * values. */
static char *putn_sql(enum sid id)
{
	static const char bhead[] = "REPLACE INTO bindings(" BIND_COLS ") VALUES", chead[] = CALL_PUT_HEAD;
	static const char brow[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", crow[] = "(?,?,?,?,?,?,?,?,?,?,?)";
	static const char ctail[] = CALL_PUT_TAIL;
	bool calls = id == S_CALL_PUTN;
	const char *head = calls ? chead : bhead, *row = calls ? crow : brow, *tail = calls ? ctail : "";
	size_t hl = strlen(head), rl = strlen(row), tl = strlen(tail);
	char *text = malloc(hl + BATCH * (rl + 1) + tl + 1), *w;

	if (!text)
		return NULL;
	memcpy(text, head, hl);
	w = text + hl;
	for (int i = 0; i < BATCH; i++) {
		if (i)
			*w++ = ',';
		memcpy(w, row, rl);
		w += rl;
	}
	memcpy(w, tail, tl);
	w[tl] = '\0';
	return text;
}

/* The prepared statement id, as its last run left it; NULL after setting *err. */
static sqlite3_stmt *prepared(struct store *st, enum sid id, int *err)
{
	struct be *b = be_of(st);
	char *text = NULL;
	int rc;

	if (b->stmt[id])
		return b->stmt[id];
	if ((id == S_BIND_PUTN || id == S_CALL_PUTN) && !(text = putn_sql(id))) {
		*err = store__err(st, -ENOMEM, "out of memory preparing a statement");
		return NULL;
	}
	rc = sqlite3_prepare_v3(b->db, text ? text : sql[id], -1, SQLITE_PREPARE_PERSISTENT, &b->stmt[id], NULL);
	free(text);
	if (rc != SQLITE_OK) {
		*err = fail(st, rc, "prepare");
		return NULL;
	}
	return b->stmt[id];
}

/* The prepared statement id, reset and ready to bind; NULL after setting *err. */
static sqlite3_stmt *stmt(struct store *st, enum sid id, int *err)
{
	sqlite3_stmt *s = prepared(st, id, err);

	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	return s;
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
	return store__err(st, -EIO, "database %s has schema version %d, newer than this parley (%d)", st->path, version,
			  SCHEMA_VERSION);
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
	b->next_id = 1;
	if (st->readonly) {
		/* A reader must not create an empty file where the server's database should be. */
		if (stat(st->path, &sb) != 0)
			return store__err(st, -errno, "cannot open database %s: %s", st->path, strerror(errno));
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
		b->version = version;
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
	b->version = SCHEMA_VERSION;
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
	free(b->ids);
	free(b->gone);
	free(b->fix);
	free(b);
	st->be = NULL;
}

static int simple(struct store *st, enum sid id, const char *what)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, id, &err);

	return s ? run(st, s, what, NULL) : err;
}

static int rows_write(struct store *st);
static int calls_write(struct store *st);
static void txn_done(struct store *st, bool committed);

static int be_begin(struct store *st)
{
	return simple(st, S_BEGIN, "begin transaction");
}

static int be_commit(struct store *st)
{
	int err = rows_write(st); /* what be_binding_write kept for a statement of BATCH */

	if (!err)
		err = calls_write(st); /* and be_call_write */
	if (!err)
		err = simple(st, S_COMMIT, "commit");
	if (!err)
		txn_done(st, true);
	return err;
}

static void be_rollback(struct store *st)
{
	struct be *b = be_of(st);

	/* After some failures SQLite has already rolled back; ROLLBACK would then fail, and
	 * that is fine. */
	if (!sqlite3_get_autocommit(b->db))
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	txn_done(st, false);
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
	return user_write(st, S_USER_INS, u, NULL); /* the primary key gives -EEXIST */
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
	store_ban_h *ban;
	store_admin_h *admin;
	store_token_h *token;
	void *arg;
};

/* Steps a query and hands each row to row(); returns 0, the callback's stop value, or the
 * failure. */
static int walk(struct store *st, sqlite3_stmt *s, const char *what, int (*row)(sqlite3_stmt *s, const struct cb *cb),
		const struct cb *cb)
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

/* ---- the ids map ---------------------------------------------------------------------- */

/* The id of the row of key kd, or 0 if it has none. */
static int64_t ids_find(const struct be *b, struct store__kd kd)
{
	if (!b->ids)
		return 0;
	for (size_t i = kd.a & b->ids_mask; b->ids[i].v; i = (i + 1) & b->ids_mask)
		if (b->ids[i].h == kd.a && (b->ids[i].v & 0xffffff) == ID_CHECK(kd))
			return (int64_t)(b->ids[i].v >> 24);
	return 0;
}

static int ids_grow(struct be *b)
{
	size_t n = b->ids ? (b->ids_mask + 1) * 2 : 4096;
	struct idslot *t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; b->ids && i <= b->ids_mask; i++) {
		if (!b->ids[i].v)
			continue;
		size_t j = b->ids[i].h & (n - 1);
		while (t[j].v)
			j = (j + 1) & (n - 1);
		t[j] = b->ids[i];
	}
	free(b->ids);
	b->ids = t;
	b->ids_mask = n - 1;
	return 0;
}

/* Maps kd to id, replacing what it mapped to; *old (if given) gets that id, or 0. */
static int ids_set(struct be *b, struct store__kd kd, int64_t id, int64_t *old)
{
	size_t i;

	if (old)
		*old = 0;
	if ((!b->ids || (b->nids + 1) * 4 > (b->ids_mask + 1) * 3) && ids_grow(b) != 0)
		return -ENOMEM;
	for (i = kd.a & b->ids_mask; b->ids[i].v; i = (i + 1) & b->ids_mask) {
		if (b->ids[i].h == kd.a && (b->ids[i].v & 0xffffff) == ID_CHECK(kd)) {
			if (old)
				*old = (int64_t)(b->ids[i].v >> 24);
			break;
		}
	}
	if (!b->ids[i].v)
		b->nids++;
	b->ids[i].h = kd.a;
	b->ids[i].v = (uint64_t)id << 24 | ID_CHECK(kd);
	return 0;
}

/* Removes kd, moving back the slots after it that it displaced (linear probing without
 * tombstones, so that lookups never slow down with churn). */
static void ids_del(struct be *b, struct store__kd kd)
{
	size_t i = kd.a & b->ids_mask, j;

	if (!b->ids)
		return;
	for (; b->ids[i].v; i = (i + 1) & b->ids_mask)
		if (b->ids[i].h == kd.a && (b->ids[i].v & 0xffffff) == ID_CHECK(kd))
			break;
	if (!b->ids[i].v)
		return;
	for (j = (i + 1) & b->ids_mask; b->ids[j].v; j = (j + 1) & b->ids_mask) {
		size_t home = b->ids[j].h & b->ids_mask;

		/* The slot at j may move to i unless its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		b->ids[i] = b->ids[j];
		i = j;
	}
	b->ids[i] = (struct idslot){ 0, 0 };
	b->nids--;
}

static void ids_clear(struct be *b)
{
	free(b->ids);
	b->ids = NULL;
	b->ids_mask = 0;
	b->nids = 0;
	b->next_id = 1;
	b->ids_ready = false;
	b->nfix = 0;
}

static int ids_fix_later(struct store *st, int64_t id, struct store__kd kd, bool drop)
{
	struct be *b = be_of(st);

	if (b->nfix == b->capfix) {
		size_t cap = b->capfix ? b->capfix * 2 : 16;
		struct idfix *f = realloc(b->fix, cap * sizeof(*f));
		if (!f)
			return store__err(st, -ENOMEM, "out of memory loading binding ids of %s", st->path);
		b->fix = f;
		b->capfix = cap;
	}
	b->fix[b->nfix++] = (struct idfix){ id, kd, drop };
	return 0;
}

/* Notes the row (aor, contact, id) while the map is built from the table, in id order. A
 * key met twice (which only an edit by hand can cause) keeps its newest row, and the
 * older one is listed for deletion; so is an id the map cannot hold, for a new id. */
static int ids_note(struct store *st, const struct store_binding *r, int64_t id)
{
	struct be *b = be_of(st);
	struct store__kd kd = store__digest(st, r->aor, r->contact, r->instance, r->reg_id);
	int64_t old;

	if (id <= 0 || id > ID_MAX)
		return ids_fix_later(st, id, kd, false);
	if (ids_set(b, kd, id, &old) != 0)
		return store__err(st, -ENOMEM, "out of memory loading binding ids of %s", st->path);
	if (id >= b->next_id)
		b->next_id = id + 1;
	return old ? ids_fix_later(st, old, kd, true) : 0;
}

/* Deletes or renumbers the rows ids_note() listed. A renumbered row whose key has a row
 * already is deleted instead: one row per key is what matters, not which. */
static int ids_fix(struct store *st)
{
	struct be *b = be_of(st);
	int err = 0;

	for (size_t i = 0; !err && i < b->nfix; i++) {
		struct idfix *f = &b->fix[i];
		bool drop = f->drop || ids_find(b, f->kd) != 0;
		sqlite3_stmt *s = stmt(st, drop ? S_BIND_DEL : S_BIND_RENUMBER, &err);

		if (!s)
			break;
		if (!drop && b->next_id > ID_MAX) {
			err = store__err(st, -EIO, "database %s: binding row ids used up", st->path);
			break;
		}
		if (drop) {
			sqlite3_bind_int64(s, 1, f->id);
		} else {
			sqlite3_bind_int64(s, 1, b->next_id);
			sqlite3_bind_int64(s, 2, f->id);
		}
		err = run(st, s, drop ? "delete duplicate binding" : "renumber binding", NULL);
		if (!err && !drop && ids_set(b, f->kd, b->next_id++, NULL) != 0)
			err = store__err(st, -ENOMEM, "out of memory loading binding ids of %s", st->path);
	}
	b->nfix = 0;
	return err;
}

/* Builds the map from the table, unless it is built. */
static int ids_build(struct store *st)
{
	struct be *b = be_of(st);
	sqlite3_stmt *s;
	int err = 0, rc;

	if (b->ids_ready)
		return 0;
	ids_clear(b);
	s = stmt(st, S_BIND_IDS, &err);
	if (!s)
		return err;
	while (!err && (rc = sqlite3_step(s)) == SQLITE_ROW)
		err = ids_note(st,
			       &(struct store_binding){ .aor = col_str(s, 0),
							.contact = col_str(s, 1),
							.instance = col_str(s, 3),
							.reg_id = (uint32_t)sqlite3_column_int64(s, 4) },
			       sqlite3_column_int64(s, 2));
	if (!err && rc != SQLITE_DONE)
		err = fail(st, rc, "read binding ids");
	sqlite3_reset(s);
	if (!err)
		err = ids_fix(st);
	if (err) {
		ids_clear(b);
		return err;
	}
	b->ids_ready = true;
	return 0;
}

/* ---- writing bindings ------------------------------------------------------------------ */

static inline void bind_text_once(sqlite3_stmt *s, struct pslot *ps, int i, struct str v)
{
	if (ps->kind == 1 && ps->l == v.l && (v.l == 0 || memcmp(ps->p, v.p, v.l) == 0))
		return;
	ps->kind = 1;
	ps->p = v.p;
	ps->l = v.l;
	bind_str(s, i, v);
}

static inline void bind_int_once(sqlite3_stmt *s, struct pslot *ps, int i, int64_t v)
{
	if (ps->kind == 2 && ps->v == v)
		return;
	ps->kind = 2;
	ps->v = v;
	sqlite3_bind_int64(s, i, v);
}

/* Binds row r (id, then the binding) to the NCOL parameters from i + 1 on. */
static void bind_row(sqlite3_stmt *s, struct pslot *ps, int i, int64_t id, const struct store_binding *r)
{
	bind_int_once(s, &ps[0], i + 1, id);
	bind_text_once(s, &ps[1], i + 2, r->aor);
	bind_text_once(s, &ps[2], i + 3, r->contact);
	bind_text_once(s, &ps[3], i + 4, r->src_addr);
	bind_int_once(s, &ps[4], i + 5, r->src_port);
	bind_text_once(s, &ps[5], i + 6, r->transport);
	bind_text_once(s, &ps[6], i + 7, r->path);
	bind_text_once(s, &ps[7], i + 8, r->call_id);
	bind_int_once(s, &ps[8], i + 9, r->cseq);
	bind_int_once(s, &ps[9], i + 10, r->q);
	bind_int_once(s, &ps[10], i + 11, r->expires_at);
	bind_text_once(s, &ps[11], i + 12, r->user_agent);
	bind_text_once(s, &ps[12], i + 13, r->instance);
	bind_int_once(s, &ps[13], i + 14, r->reg_id);
	bind_text_once(s, &ps[14], i + 15, r->params);
	bind_int_once(s, &ps[15], i + 16, r->flags);
	bind_int_once(s, &ps[16], i + 17, (int64_t)r->conn_id);
}

/* Writes the rows be_binding_write kept: BATCH in one statement, fewer one by one. */
static int rows_write(struct store *st)
{
	struct be *b = be_of(st);
	unsigned n = b->nrow;
	sqlite3_stmt *s;
	int err = 0;

	if (n == 0)
		return 0;
	b->nrow = 0;
	b->bound = true;
	if (n == BATCH) {
		s = prepared(st, S_BIND_PUTN, &err);
		if (!s)
			return err;
		for (unsigned i = 0; i < n; i++)
			bind_row(s, &b->pn[i * NCOL], (int)(i * NCOL), b->row_id[i], b->row[i]);
		return run(st, s, "write bindings", NULL);
	}
	s = prepared(st, S_BIND_PUT, &err);
	for (unsigned i = 0; s && !err && i < n; i++) {
		bind_row(s, b->p1, 0, b->row_id[i], b->row[i]);
		err = run(st, s, "write binding", NULL);
	}
	return err;
}

/* Ends a transaction for the binding writes: keys deleted by it leave the map if it
 * committed (they stay if not, their rows being still there), and the put statements
 * let go of the queue's strings, which die with the queue. */
static void txn_done(struct store *st, bool committed)
{
	struct be *b = be_of(st);

	for (size_t i = 0; committed && i < b->ngone; i++)
		ids_del(b, b->gone[i]);
	b->ngone = 0;
	b->nrow = 0;
	b->ncall = 0;
	if (b->bound) {
		if (b->stmt[S_BIND_PUTN])
			sqlite3_clear_bindings(b->stmt[S_BIND_PUTN]);
		if (b->stmt[S_BIND_PUT])
			sqlite3_clear_bindings(b->stmt[S_BIND_PUT]);
		memset(b->pn, 0, sizeof(b->pn));
		memset(b->p1, 0, sizeof(b->p1));
		b->bound = false;
	}
}

static int be_binding_write(struct store *st, const struct store_binding *r, struct store__kd kd)
{
	struct be *b = be_of(st);
	int64_t id;
	int err = b->ids_ready ? 0 : ids_build(st);

	if (err)
		return err;
	id = ids_find(b, kd);
	if (!id) {
		/* A new binding gets the next id, in the map at once: should the transaction
		 * fail, the retry finds the same id, and a row never written does no harm. */
		if (b->next_id > ID_MAX)
			return store__err(st, -EIO, "database %s: binding row ids used up", st->path);
		id = b->next_id++;
		if (ids_set(b, kd, id, NULL) != 0)
			return store__err(st, -ENOMEM, "out of memory writing a binding");
	}
	b->row[b->nrow] = r;
	b->row_id[b->nrow] = id;
	if (++b->nrow == BATCH)
		return rows_write(st);
	return 0;
}

static int be_binding_delete(struct store *st, struct str aor, struct str contact, struct store__kd kd)
{
	struct be *b = be_of(st);
	int64_t id;
	int err = b->ids_ready ? 0 : ids_build(st);
	sqlite3_stmt *s;

	if (err)
		return err;
	id = ids_find(b, kd);
	if (!id)
		return 0; /* every row is in the map: there is none to delete */
	if (b->ngone == b->capgone) {
		size_t cap = b->capgone ? b->capgone * 2 : 64;
		struct store__kd *g = realloc(b->gone, cap * sizeof(*g));
		if (!g)
			return store__err(st, -ENOMEM, "out of memory deleting a binding");
		b->gone = g;
		b->capgone = cap;
	}
	s = stmt(st, S_BIND_DEL, &err);
	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, id);
	err = run(st, s, "delete binding", NULL);
	if (!err)
		b->gone[b->ngone++] = kd;
	(void)aor; /* a back end keyed by the strings needs them; this one has the id */
	(void)contact;
	return err;
}

static struct store_binding binding_cols(sqlite3_stmt *s)
{
	return (struct store_binding){
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
		.conn_id = (uint64_t)sqlite3_column_int64(s, 15),
	};
}

static int binding_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_binding b = binding_cols(s);

	return cb->binding(&b, cb->arg);
}

/* The server's load: after the expired rows are deleted, every row is read, so the ids
 * map is built on the way unless it already is (a walk that the callback stops leaves it
 * to be built on first need). */
static int load_rows(struct store *st, int64_t now, store_binding_h *cb, void *arg)
{
	struct be *b = be_of(st);
	bool build = !b->ids_ready && !st->ids_elsewhere;
	int err = 0, rc, ret = 0;
	sqlite3_stmt *s = stmt(st, S_BIND_LOAD, &err);

	if (!s)
		return err;
	if (build)
		ids_clear(b);
	sqlite3_bind_int64(s, 1, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_binding r = binding_cols(s);

		if (build)
			err = ids_note(st, &r, sqlite3_column_int64(s, 16));
		if (err)
			break;
		ret = cb(&r, arg);
		if (ret)
			break;
	}
	if (!err && !ret && rc != SQLITE_DONE)
		err = fail(st, rc, "load bindings");
	sqlite3_reset(s);
	if (build && !err && !ret)
		err = ids_fix(st);
	if (build && (err || ret))
		ids_clear(b);
	else if (build)
		b->ids_ready = true;
	return err ? err : ret;
}

static int be_bindings_load(struct store *st, int64_t now, store_binding_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->empty)
		return 0;
	if (st->readonly) {
		s = stmt(st, be_of(st)->version >= 5 ? S_BIND_LOAD_RO : S_BIND_LOAD_RO4, &err);
		if (!s)
			return err;
		sqlite3_bind_int64(s, 1, now);
		return walk(st, s, "load bindings", binding_row, &(struct cb){ .binding = cb, .arg = arg });
	}
	s = stmt(st, S_BIND_EXPIRE, &err);
	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, now);
	err = run(st, s, "delete expired bindings", NULL);
	return err ? err : load_rows(st, now, cb, arg);
}

/* Binds call record c to the CALL_NCOL parameters from i + 1 on. */
static void bind_call(sqlite3_stmt *s, int i, const struct store_call *c)
{
	bind_str(s, i + 1, c->id);
	bind_str(s, i + 2, c->call_id);
	bind_str(s, i + 3, c->caller);
	bind_str(s, i + 4, c->callee);
	sqlite3_bind_int64(s, i + 5, (sqlite3_int64)c->start_ms);
	sqlite3_bind_int64(s, i + 6, (sqlite3_int64)c->answer_ms);
	sqlite3_bind_int64(s, i + 7, (sqlite3_int64)c->end_ms);
	sqlite3_bind_int64(s, i + 8, c->status);
	bind_str(s, i + 9, c->reason);
	sqlite3_bind_int64(s, i + 10, (sqlite3_int64)c->duration_ms);
	bind_str(s, i + 11, c->media);
}

/* Writes the call records be_call_write kept: BATCH in one statement (starting, halting
 * and resetting a statement was a third of a record's ~17k instructions), fewer one by
 * one. The queue holds each record once (same-id changes are coalesced in it), and a
 * record's rows go in the order queued either way. */
static int calls_write(struct store *st)
{
	struct be *b = be_of(st);
	unsigned n = b->ncall;
	sqlite3_stmt *s;
	int err = 0;

	if (n == 0)
		return 0;
	b->ncall = 0;
	if (n == BATCH) {
		s = prepared(st, S_CALL_PUTN, &err);
		if (!s)
			return err;
		for (unsigned i = 0; i < n; i++)
			bind_call(s, (int)(i * CALL_NCOL), b->call[i]);
		return run(st, s, "write call records", NULL);
	}
	s = prepared(st, S_CALL_PUT, &err);
	for (unsigned i = 0; s && !err && i < n; i++) {
		bind_call(s, 0, b->call[i]);
		err = run(st, s, "write call record", NULL);
	}
	return err;
}

/* Keeps c (in the queue being written, alive until the commit) for a statement of BATCH
 * records; the commit writes what is left. */
static int be_call_write(struct store *st, const struct store_call *c)
{
	struct be *b = be_of(st);

	b->call[b->ncall] = c;
	if (++b->ncall == BATCH)
		return calls_write(st);
	return 0;
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
		.media = col_str(s, 10),
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

/* The WHERE clause of a history search, in forms an index serves (no "?1 = '' OR" or
 * substr(): those read every row). ?1 the user, ?2 the Call-ID, ?3 the result. */
static void calls_where(const struct store_call_filter *f, char *out, size_t cap)
{
	size_t n = 0;
	/* A user part ("alice") is the range of "alice@..." in each index; a whole address is
	 * itself. The OR of two indexed terms reads the two ranges. */
	if (f->user.l && memchr(f->user.p, '@', f->user.l))
		n += (size_t)snprintf(out + n, cap - n, "(caller = ?1 OR callee = ?1)");
	else if (f->user.l)
		n += (size_t)snprintf(out + n, cap - n,
				      "((caller >= ?1 || '@' AND caller < ?1 || 'A')"
				      " OR (callee >= ?1 || '@' AND callee < ?1 || 'A'))");
	/* The records of a Call-ID are the range of ids "Call-ID;..." (a Call-ID has no ';'). */
	if (f->call_id.l)
		n += (size_t)snprintf(out + n, cap - n, "%sid >= ?2 || ';' AND id < ?2 || '<' AND call_id = ?2",
				      n ? " AND " : "");
	if (f->result.l)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " AND " : "",
				      str_eq(f->result, STR("in progress")) ? "(reason = ?3 OR status = 0)"
									    : "reason = ?3");
	if (!n)
		snprintf(out, cap, "1");
}

static sqlite3_stmt *calls_stmt(struct store *st, const struct store_call_filter *f, const char *fmt, const char *where,
				int *err)
{
	char q[1024];
	sqlite3_stmt *s = NULL;
	int rc;

	snprintf(q, sizeof(q), fmt, where);
	rc = sqlite3_prepare_v2(be_of(st)->db, q, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		*err = fail(st, rc, "prepare a call search");
		return NULL;
	}
	/* An unused parameter number is refused (SQLITE_RANGE): harmless. */
	bind_str(s, 1, f->user);
	bind_str(s, 2, f->call_id);
	bind_str(s, 3, f->result);
	return s;
}

/* The search's budget of SQLite steps (sqlite3_progress_handler counts them by the
 * thousand): a search runs on the server's loop, and one that matches little would
 * otherwise read the whole history (a million records: 0.4 s without SIP). */
struct budget {
	unsigned left; /* thousands of steps */
	bool spent;
};

static int spend(void *arg)
{
	struct budget *b = arg;
	if (b->left == 0) {
		b->spent = true;
		return 1; /* interrupts the statement: what it found so far stands */
	}
	b->left--;
	return 0;
}

static int be_calls_query(struct store *st, const struct store_call_filter *f, unsigned limit, unsigned offset,
			  uint64_t *total, bool *partial, store_call_h *cb, void *arg)
{
	char where[512];
	int err = 0, rc;
	sqlite3_stmt *s;
	sqlite3 *db = be_of(st)->db;
	struct budget bud = { .left = STORE_CALLS_COUNT_BUDGET };

	*total = 0;
	if (partial)
		*partial = false;
	if (be_of(st)->empty)
		return 0;
	calls_where(f, where, sizeof(where));
	/* The count stops past STORE_CALLS_COUNT_MAX, and both statements at the budget. */
	s = calls_stmt(st, f, "SELECT count(*) FROM (SELECT 1 FROM calls WHERE %s LIMIT ?4)", where, &err);
	if (!s)
		return err;
	sqlite3_bind_int64(s, 4, STORE_CALLS_COUNT_MAX + 1);
	sqlite3_progress_handler(db, 1000, spend, &bud);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*total = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc == SQLITE_INTERRUPT && bud.spent)
		rc = SQLITE_ROW; /* counted what the budget allowed: the page below says how many */
	if (rc != SQLITE_ROW) {
		sqlite3_progress_handler(db, 0, NULL, NULL);
		return fail(st, rc, "count call records");
	}
	s = calls_stmt(st, f,
		       "SELECT id, call_id, caller, callee, start_ms, answer_ms, end_ms, status, reason,"
		       " duration_ms, media FROM calls WHERE %s ORDER BY start_ms DESC, id DESC LIMIT ?4 OFFSET ?5",
		       where, &err);
	if (!s) {
		sqlite3_progress_handler(db, 0, NULL, NULL);
		return err;
	}
	sqlite3_bind_int64(s, 4, limit ? (sqlite3_int64)limit : -1);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)offset);
	/* The page gets a budget of its own: the count may have spent the first. */
	bool counted_all = !bud.spent;
	bud = (struct budget){ .left = STORE_CALLS_PAGE_BUDGET };
	struct cb w = { .call = cb, .arg = arg };
	int n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && !(err = call_row(s, &w)))
		n++;
	sqlite3_finalize(s);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	if (err)
		return err;
	if (rc != SQLITE_DONE && !(rc == SQLITE_INTERRUPT && bud.spent))
		return fail(st, rc, "list call records");
	if (!counted_all || bud.spent) {
		/* Stopped early: more may match than were found (the newest come first). */
		if (partial)
			*partial = true;
		if (*total < offset + (uint64_t)n)
			*total = offset + (uint64_t)n;
	}
	return 0;
}

static int be_calls_prune(struct store *st, uint64_t before_ms)
{
	/* The records queued before the prune are written before it, as they came. */
	int err = calls_write(st);
	sqlite3_stmt *s = err ? NULL : stmt(st, S_CALL_PRUNE, &err);

	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)before_ms);
	return run(st, s, "delete old call records", NULL);
}

/* ---- bans and meta ----------------------------------------------------------------------- */

static int be_ban_write(struct store *st, const struct store_ban *bn)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_BAN_PUT, &err);

	if (!s)
		return err;
	bind_str(s, 1, bn->source);
	sqlite3_bind_int64(s, 2, bn->until);
	bind_str(s, 3, bn->reason);
	sqlite3_bind_int64(s, 4, bn->created);
	return run(st, s, "write ban", NULL);
}

static int be_ban_delete(struct store *st, struct str source)
{
	int err = 0, changes = 0;
	sqlite3_stmt *s = stmt(st, S_BAN_DEL, &err);

	if (!s)
		return err;
	bind_str(s, 1, source);
	err = run(st, s, "delete ban", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

static int ban_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_ban bn = {
		.source = col_str(s, 0),
		.until = sqlite3_column_int64(s, 1),
		.reason = col_str(s, 2),
		.created = sqlite3_column_int64(s, 3),
	};

	return cb->ban(&bn, cb->arg);
}

static int be_bans_list(struct store *st, int64_t now, store_ban_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->version < 3)
		return 0; /* a reader on a database the server has not upgraded: no bans */
	s = stmt(st, S_BAN_LIST, &err);
	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, now);
	return walk(st, s, "list bans", ban_row, &(struct cb){ .ban = cb, .arg = arg });
}

static int be_bans_prune(struct store *st, int64_t now)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_BAN_PRUNE, &err);

	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, now);
	return run(st, s, "delete ended bans", NULL);
}

static int be_journal_gen_get(struct store *st, uint64_t *gen)
{
	int err = 0, rc;
	sqlite3_stmt *s = stmt(st, S_JGEN_GET, &err);

	*gen = 0;
	if (!s)
		return err;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*gen = (uint64_t)sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		err = fail(st, rc, "read journal generation");
	sqlite3_reset(s);
	return err;
}

static int be_journal_gen_set(struct store *st, uint64_t gen)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_JGEN_SET, &err);

	if (!s)
		return err;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)gen);
	return run(st, s, "record journal generation", NULL);
}

/* ---- admin accounts and their tokens -------------------------------------------------------- */

static int be_admin_write(struct store *st, const struct store_admin *a, bool insert)
{
	int err = 0, changes = 0;
	sqlite3_stmt *s = stmt(st, insert ? S_ADMIN_INS : S_ADMIN_UPD, &err);

	if (!s)
		return err;
	bind_str(s, 1, a->name);
	bind_str(s, 2, a->pwhash);
	if (insert)
		sqlite3_bind_int64(s, 3, a->created);
	err = run(st, s, "write admin", &changes); /* the primary key gives -EEXIST */
	return err ? err : changes ? 0 : -ENOENT;
}

static int be_admin_delete(struct store *st, struct str name)
{
	int err = 0, changes = 0;
	sqlite3_stmt *s = stmt(st, S_ADMIN_TOKDEL, &err);

	if (!s)
		return err;
	bind_str(s, 1, name);
	err = run(st, s, "delete admin tokens", NULL);
	if (err)
		return err;
	s = stmt(st, S_ADMIN_DEL, &err);
	if (!s)
		return err;
	bind_str(s, 1, name);
	err = run(st, s, "delete admin", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

static int admin_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_admin a = {
		.name = col_str(s, 0),
		.pwhash = col_str(s, 1),
		.created = sqlite3_column_int64(s, 2),
		.tokens = (unsigned)sqlite3_column_int64(s, 3),
	};

	return cb->admin(&a, cb->arg);
}

static int be_admin_get(struct store *st, struct str name, store_admin_h *cb, void *arg)
{
	int err = 0, rc;
	sqlite3_stmt *s;

	if (be_of(st)->version < 6)
		return -ENOENT;
	s = stmt(st, S_ADMIN_GET, &err);
	if (!s)
		return err;
	bind_str(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		struct store_admin a = { .name = name, .pwhash = col_str(s, 0), .created = sqlite3_column_int64(s, 1) };
		err = cb(&a, arg);
	} else {
		err = rc == SQLITE_DONE ? -ENOENT : fail(st, rc, "read admin");
	}
	sqlite3_reset(s);
	return err;
}

static int be_admin_list(struct store *st, store_admin_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->version < 6)
		return 0;
	s = stmt(st, S_ADMIN_LIST, &err);
	return s ? walk(st, s, "list admins", admin_row, &(struct cb){ .admin = cb, .arg = arg }) : err;
}

static int be_token_insert(struct store *st, const struct store_token *t)
{
	int err = 0;
	sqlite3_stmt *s = stmt(st, S_TOKEN_INS, &err);

	if (!s)
		return err;
	bind_str(s, 1, t->hash);
	bind_str(s, 2, t->name);
	sqlite3_bind_int64(s, 3, t->created);
	return run(st, s, "write admin token", NULL);
}

static int token_row(sqlite3_stmt *s, const struct cb *cb)
{
	struct store_token t = { .hash = col_str(s, 0), .name = col_str(s, 1), .created = sqlite3_column_int64(s, 2) };

	return cb->token(&t, cb->arg);
}

static int be_tokens_list(struct store *st, store_token_h *cb, void *arg)
{
	int err = 0;
	sqlite3_stmt *s;

	if (be_of(st)->version < 6)
		return 0;
	s = stmt(st, S_TOKEN_LIST, &err);
	return s ? walk(st, s, "list admin tokens", token_row, &(struct cb){ .token = cb, .arg = arg }) : err;
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
	.calls_prune = be_calls_prune,
	.calls_query = be_calls_query,
	.ban_write = be_ban_write,
	.ban_delete = be_ban_delete,
	.bans_list = be_bans_list,
	.bans_prune = be_bans_prune,
	.journal_gen_get = be_journal_gen_get,
	.journal_gen_set = be_journal_gen_set,
	.admin_write = be_admin_write,
	.admin_delete = be_admin_delete,
	.admin_get = be_admin_get,
	.admin_list = be_admin_list,
	.token_insert = be_token_insert,
	.tokens_list = be_tokens_list,
};
