/* test_store.c: unit tests of the SQLite store: users, import, write-behind, writer thread, journal, bans. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth/auth.h"
#include "store/store.h"
#include "store/store_be.h"

/* Each case gets a fresh database file under /tmp, removed with its WAL files afterwards. */
struct tmpdb {
	char dir[128];
	char path[192];
};

static void tmp_make(struct tmpdb *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/parley-test-store-XXXXXX");
	CHECK(mkdtemp(t->dir) != NULL);
	snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
}

static void tmp_drop(struct tmpdb *t)
{
	char p[256];
	const char *suffix[] = { "", "-wal", "-shm", ".import", ".lock", ".journal" };

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", t->path, suffix[i]);
		unlink(p);
	}
	rmdir(t->dir);
}

static struct store *open_db(const char *path, bool readonly, unsigned busy_ms, size_t qmax)
{
	struct store_conf conf = { .path = path, .readonly = readonly, .busy_ms = busy_ms, .queue_max = qmax };
	struct store *st = NULL;
	int err = store_open(&st, &conf);

	if (err) {
		fprintf(stderr, "store_open: %s\n", store_errmsg(st));
		CHECK_INT(err, 0);
	}
	return st;
}

/* The store takes HA1 values: these compute them as `parley user` does, over realm. */
struct ha1 {
	char md5[AUTH_HEX_MAX], sha256[AUTH_HEX_MAX];
};

static struct ha1 ha1_of(const char *user, const char *realm, const char *password)
{
	struct ha1 h;

	auth_ha1(AUTH_MD5, str_from_cstr(user), str_from_cstr(realm), str_from_cstr(password), h.md5);
	auth_ha1(AUTH_SHA256, str_from_cstr(user), str_from_cstr(realm), str_from_cstr(password), h.sha256);
	return h;
}

static int user_add(struct store *st, const char *user, const char *domain, const char *realm, const char *password)
{
	struct ha1 h = ha1_of(user, realm, password);

	return store_user_add(st, str_from_cstr(user), str_from_cstr(domain), h.md5, h.sha256);
}

static int user_passwd(struct store *st, const char *user, const char *domain, const char *realm, const char *password)
{
	struct ha1 h = ha1_of(user, realm, password);

	return store_user_passwd(st, str_from_cstr(user), str_from_cstr(domain), h.md5, h.sha256);
}

struct names {
	char buf[4096];
	size_t len;
	unsigned n;
};

static int list_cb(const struct store_user *u, void *arg)
{
	struct names *nm = arg;

	nm->len += (size_t)snprintf(nm->buf + nm->len, sizeof(nm->buf) - nm->len, "%.*s@%.*s ", STR_FMT(u->user),
				    STR_FMT(u->domain));
	nm->n++;
	CHECK_INT(strlen(u->ha1_md5), 32);
	CHECK_INT(strlen(u->ha1_sha256), 64);
	return 0;
}

static void t_users(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_user u;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	/* No realm configured: the caller hashes over the lowercased domain. */
	CHECK_INT(user_add(st, "alice", "A.Test", "a.test", "secret"), 0);
	CHECK_INT(user_add(st, "alice", "a.test", "a.test", "other"), -EEXIST);
	CHECK(strstr(store_errmsg(st), "alice@a.test already exists") != NULL);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.TEST"), &u), 0);
	/* HA1 over the lowercase domain, computed independently with Python's hashlib. */
	CHECK_STR(str_from_cstr(u.ha1_md5), "793bc5ed8ab2a7cdda9b5c704486cb5d");
	CHECK_STR(str_from_cstr(u.ha1_sha256), "a06df68097d221f1e7f0831027b48ea94393525565c61596abce8d82ee4868ad");
	CHECK_STR(u.domain, "a.TEST");

	CHECK_INT(user_passwd(st, "alice", "a.test", "a.test", "new"), 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK(strcmp(u.ha1_md5, "793bc5ed8ab2a7cdda9b5c704486cb5d") != 0);
	CHECK_INT(user_passwd(st, "bob", "a.test", "a.test", "x"), -ENOENT);

	CHECK_INT(user_add(st, "bad user", "a.test", "a.test", "x"), -EINVAL);
	CHECK_INT(user_add(st, "carol", "", "", "x"), -EINVAL);
	/* The HA1 values are stored as given, so they must be lowercase hex of their length. */
	struct ha1 h = ha1_of("carol", "a.test", "x");
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), h.md5, NULL), -EINVAL);
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), "", h.sha256), -EINVAL);
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), h.sha256, h.sha256), -EINVAL);
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), h.md5, h.md5), -EINVAL);
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), "793BC5ED8AB2A7CDDA9B5C704486CB5D", h.sha256),
		  -EINVAL);
	CHECK(strstr(store_errmsg(st), "lowercase hex") != NULL);
	CHECK_INT(store_user_passwd(st, STR("alice"), STR("a.test"), "x", h.sha256), -EINVAL);
	CHECK_INT(store_user_get(st, STR("carol"), STR("a.test"), &u), -ENOENT);
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), h.md5, h.sha256), 0);
	CHECK_INT(store_user_get(st, STR("carol"), STR("a.test"), &u), 0);
	CHECK_STR(str_from_cstr(u.ha1_md5), h.md5);
	CHECK_STR(str_from_cstr(u.ha1_sha256), h.sha256);
	/* Listed by domain, then user. */
	CHECK_INT(user_add(st, "bob", "b.test", "b.test", "pw"), 0);
	struct names nm = { .len = 0 };
	CHECK_INT(store_user_list(st, list_cb, &nm), 0);
	CHECK_INT(nm.n, 3);
	CHECK_STR(str_from_cstr(nm.buf), "alice@a.test carol@a.test bob@b.test ");
	CHECK_INT(store_user_del(st, STR("bob"), STR("b.test")), 0);
	CHECK_INT(store_user_del(st, STR("carol"), STR("a.test")), 0);

	CHECK_INT(store_user_del(st, STR("alice"), STR("a.test")), 0);
	CHECK_INT(store_user_del(st, STR("alice"), STR("a.test")), -ENOENT);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), -ENOENT);

	/* A configured realm other than the domain. */
	CHECK_INT(user_add(st, "alice", "a.test", "a.test", "secret"), 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK_STR(str_from_cstr(u.ha1_md5), "793bc5ed8ab2a7cdda9b5c704486cb5d");
	CHECK_INT(user_passwd(st, "alice", "a.test", "corp", "secret"), 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK(strcmp(u.ha1_md5, "793bc5ed8ab2a7cdda9b5c704486cb5d") != 0);
	CHECK_STR(str_from_cstr(u.ha1_md5), ha1_of("alice", "corp", "secret").md5);

	store_close(st);
	tmp_drop(&t);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static struct store_binding binding(const char *aor, const char *contact, int64_t expires_at)
{
	return (struct store_binding){
		.aor = str_from_cstr(aor),
		.contact = str_from_cstr(contact),
		.src_addr = STR("192.0.2.7"),
		.src_port = 5062,
		.transport = STR("udp"),
		.call_id = STR("cid@x"),
		.cseq = 7,
		.q = 500,
		.expires_at = expires_at,
		.user_agent = STR("baresip"),
		.instance = STR("<urn:uuid:1>"),
	};
}

struct seen {
	char buf[24576];
	size_t len;
	unsigned n;
};

static int binding_cb(const struct store_binding *b, void *arg)
{
	struct seen *s = arg;

	s->len += (size_t)snprintf(s->buf + s->len, sizeof(s->buf) - s->len, "%.*s %.*s %.*s:%u %.*s q=%u %lld|",
				   STR_FMT(b->aor), STR_FMT(b->contact), STR_FMT(b->src_addr), b->src_port,
				   STR_FMT(b->transport), b->q, (long long)b->expires_at);
	s->n++;
	return 0;
}

static void t_bindings(void)
{
	struct tmpdb t;
	struct store *st, *ro;
	struct store_binding b;
	struct seen s = { .len = 0 };
	char aor[64] = "sip:alice@a.test";

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	b = binding(aor, "sip:alice@192.0.2.7:5062", 2000);
	CHECK_INT(store_binding_put(st, &b), 0);
	/* The views are copied: changing the caller's buffer does not change the queue. */
	strcpy(aor, "sip:XXXXX@a.test");
	b = binding("sip:alice@a.test", "sip:alice@192.0.2.8", 2000);
	CHECK_INT(store_binding_put(st, &b), 0);
	b = binding("sip:bob@a.test", "sip:bob@192.0.2.9", 1500);
	CHECK_INT(store_binding_put(st, &b), 0);
	b = binding("sip:carol@a.test", "sip:carol@192.0.2.10", 900); /* will have expired */
	CHECK_INT(store_binding_put(st, &b), 0);
	/* Coalescing: a later change to the same binding replaces the queued one. */
	b = binding("sip:alice@a.test", "sip:alice@192.0.2.8", 2500);
	b.q = 1000;
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_binding_del(st, STR("sip:bob@a.test"), STR("sip:bob@192.0.2.9")), 0);
	CHECK_INT(store_queue_len(st), 4);
	CHECK(store_queue_bytes(st) > 0);

	/* Nothing is on disk before the flush. */
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_queue_len(st), 0);
	CHECK_INT(store_queue_bytes(st), 0);

	/* A reader in another connection (as `parley reg list`) sees the rows. */
	ro = open_db(t.path, true, 0, 0);
	CHECK_INT(store_bindings_load(ro, 800, binding_cb, &s), 0);
	CHECK_INT(s.n, 3);
	CHECK_INT(store_binding_put(ro, &b), -EROFS);

	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 2);
	CHECK_STR(str_from_cstr(s.buf), "sip:alice@a.test sip:alice@192.0.2.7:5062 192.0.2.7:5062 udp q=500 2000|"
					"sip:alice@a.test sip:alice@192.0.2.8 192.0.2.7:5062 udp q=1000 2500|");
	/* The expired row was deleted by the load. */
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(ro, 0, binding_cb, &s), 0);
	CHECK_INT(s.n, 2);
	store_close(ro);

	/* Deleting after a flush, and the data surviving a reopen. */
	CHECK_INT(store_binding_del(st, STR("sip:alice@a.test"), STR("sip:alice@192.0.2.7:5062")), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_flush(st), 0); /* nothing queued */
	store_close(st);
	st = open_db(t.path, false, 0, 0);
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 1);
	store_close(st);
	tmp_drop(&t);
}

/* Every field of a binding, for comparing what was written with what is read back. */
static int full_cb(const struct store_binding *b, void *arg)
{
	struct seen *s = arg;

	s->len += (size_t)snprintf(s->buf + s->len, sizeof(s->buf) - s->len,
				   "%.*s %.*s %.*s:%u/%.*s path=%.*s cid=%.*s/%u q=%u exp=%lld ua=%.*s inst=%.*s"
				   " reg=%u params=%.*s fl=%u|",
				   STR_FMT(b->aor), STR_FMT(b->contact), STR_FMT(b->src_addr), b->src_port,
				   STR_FMT(b->transport), STR_FMT(b->path), STR_FMT(b->call_id), b->cseq, b->q,
				   (long long)b->expires_at, STR_FMT(b->user_agent), STR_FMT(b->instance), b->reg_id,
				   STR_FMT(b->params), b->flags);
	s->n++;
	return 0;
}

/* One integer from the database through a second connection, as an operator would. */
static long long sql_int(const char *path, const char *query)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, query, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		fprintf(stderr, "%s: %s\n", query, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* Outbound flows (RFC 5626) are keyed by (aor, instance, reg-id): two flows of one phone
 * sharing a contact are two rows, a flow's new contact replaces its row, and a flow is
 * deleted by its key, also through the journal of a writer thread. */
static void t_flows(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_binding b = binding("alice@a.test", "sip:alice@192.0.2.7;ob", 5000);

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	b.reg_id = 1;
	CHECK_INT(store_binding_put(st, &b), 0);
	b.reg_id = 2;
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	b.reg_id = 1;
	b.contact = STR("sip:alice@192.0.2.7:5070;ob");
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE contact = 'sip:alice@192.0.2.7:5070;ob'"), 1);
	store_close(st);
	/* Reopened: the ids map is built from the rows with their flow keys. */
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_flow_del(st, STR("alice@a.test"), STR("sip:whatever"), STR("<urn:uuid:1>"), 2), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 1);
	CHECK_INT(sql_int(t.path, "SELECT reg_id FROM bindings"), 1);
	store_close(st);
	tmp_drop(&t);
}

/* A refresh rewrites the binding's row in place (same id, one row), every field of it, and
 * the new values are what a reload finds. */
static void t_refresh_in_place(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_binding b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	struct seen s = { .len = 0 };
	long long id;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	b.path = STR("<sip:edge.a.test;lr>");
	b.params = STR(";+sip.instance=\"<urn:uuid:1>\";reg-id=1");
	b.flags = 1;
	CHECK_INT(store_binding_put(st, &b), 0);
	b = binding("sip:bob@a.test", "sip:bob@192.0.2.9", 5000);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	id = sql_int(t.path, "SELECT id FROM bindings WHERE aor = 'sip:alice@a.test'");
	CHECK(id > 0);

	b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 9000);
	b.src_addr = STR("198.51.100.4");
	b.src_port = 40000;
	b.transport = STR("tcp");
	b.call_id = STR("another-call-id@x");
	b.cseq = 8;
	b.q = 1000;
	b.user_agent = STR("baresip 3.0");
	b.instance = STR_NULL;
	b.reg_id = 0;
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings WHERE aor = 'sip:alice@a.test'"), id);
	CHECK_INT(sql_int(t.path, "SELECT expires_at FROM bindings WHERE aor = 'sip:alice@a.test'"), 9000);
	store_close(st);

	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_bindings_load(st, 1000, full_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf),
		  "sip:alice@a.test sip:alice@192.0.2.7 198.51.100.4:40000/tcp path= cid=another-call-id@x/8"
		  " q=1000 exp=9000 ua=baresip 3.0 inst= reg=0 params= fl=0|"
		  "sip:bob@a.test sip:bob@192.0.2.9 192.0.2.7:5062/udp path= cid=cid@x/7 q=500 exp=5000"
		  " ua=baresip inst=<urn:uuid:1> reg=0 params= fl=0|");
	/* Written again after the reload, the binding still keeps its row. */
	b.expires_at = 9500;
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings WHERE expires_at = 9500"), id);
	store_close(st);
	tmp_drop(&t);
}

/* Many bindings in one flush go out BATCH rows per statement, parameters that repeat from
 * row to row not being bound again: every field of every row must still come back right,
 * whichever fields change between rows and between flushes. */
static void t_batches(void)
{
	struct tmpdb t;
	struct store *st;
	char aor[50][32], contact[50][48], ua[50][24], want[50 * 200];
	struct seen s;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	for (int pass = 0; pass < 3; pass++) {
		/* 37 bindings: two statements of 16 rows and five single rows; on the third
		 * pass 50 (three statements and two rows), 13 of them new. */
		int n = pass == 2 ? 50 : 37;
		size_t len = 0;

		for (int i = 0; i < n; i++) {
			int port = 5060 + (i % 5 == 0 ? pass : 0), q = i % 2 ? 1000 : 500;
			int64_t exp = 2000 + pass * 100 + (i % 4);
			const char *path = i % 7 == 0 ? "<sip:p.a.test;lr>" : "";
			struct store_binding b;

			snprintf(aor[i], sizeof(aor[i]), "sip:u%02d@a.test", i);
			snprintf(contact[i], sizeof(contact[i]), "sip:u%02d@192.0.2.%d", i, i);
			/* Rows alternate between two agents, and every third row changes its
			 * agent on each pass, so that a parameter slot sees both equal and
			 * different values from one statement to the next. */
			snprintf(ua[i], sizeof(ua[i]), "ua-%d", (i % 2) + (i % 3 == 0 ? pass : 0));
			b = binding(aor[i], contact[i], exp);
			b.user_agent = str_from_cstr(ua[i]);
			b.src_port = (uint16_t)port;
			b.path = str_from_cstr(path);
			b.q = (uint16_t)q;
			b.flags = (uint8_t)(pass % 2);
			CHECK_INT(store_binding_put(st, &b), 0);
			len += (size_t)snprintf(want + len, sizeof(want) - len,
						"%s %s 192.0.2.7:%d/udp path=%s cid=cid@x/7 q=%d exp=%lld"
						" ua=%s inst=<urn:uuid:1> reg=0 params= fl=%d|",
						aor[i], contact[i], port, path, q, (long long)exp, ua[i], pass % 2);
		}
		/* The strings are copied when queued: the caller's buffers may change. */
		memset(ua, 'x', sizeof(ua[0]));
		CHECK_INT(store_flush(st), 0);
		CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), n);
		/* The server's reload gives the rows in the order they were first written. */
		s = (struct seen){ .len = 0 };
		CHECK_INT(store_bindings_load(st, 1000, full_cb, &s), 0);
		CHECK_INT(s.n, n);
		CHECK(strcmp(s.buf, want) == 0);
		if (strcmp(s.buf, want) != 0)
			fprintf(stderr, "got  %s\nwant %s\n", s.buf, want);
	}
	store_close(st);
	tmp_drop(&t);
}

/* The schema as version 1 shipped it (migrations[0] of sqlite.c then): the upgrade is
 * tested from this, not from whatever the code creates today. */
static const char schema_v1[] =
	"CREATE TABLE users(user TEXT NOT NULL, domain TEXT NOT NULL, ha1_md5 TEXT NOT NULL,"
	" ha1_sha256 TEXT NOT NULL, PRIMARY KEY(user, domain)) WITHOUT ROWID;"
	"CREATE TABLE bindings(aor TEXT NOT NULL, contact TEXT NOT NULL, src_addr TEXT NOT NULL,"
	" src_port INTEGER NOT NULL, transport TEXT NOT NULL, path TEXT NOT NULL DEFAULT '',"
	" call_id TEXT NOT NULL, cseq INTEGER NOT NULL, q INTEGER NOT NULL,"
	" expires_at INTEGER NOT NULL, user_agent TEXT NOT NULL DEFAULT '',"
	" instance TEXT NOT NULL DEFAULT '', reg_id INTEGER NOT NULL DEFAULT 0,"
	" params TEXT NOT NULL DEFAULT '', flags INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(aor, contact)) WITHOUT ROWID;"
	"CREATE TABLE calls(id TEXT NOT NULL PRIMARY KEY, call_id TEXT NOT NULL, caller TEXT NOT NULL,"
	" callee TEXT NOT NULL, start_ms INTEGER NOT NULL, answer_ms INTEGER NOT NULL DEFAULT 0,"
	" end_ms INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0,"
	" reason TEXT NOT NULL DEFAULT '', duration_ms INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX calls_start ON calls(start_ms);"
	"INSERT INTO bindings VALUES('sip:bob@a.test', 'sip:bob@192.0.2.9', '192.0.2.9', 5060, 'udp',"
	" '', 'b@x', 3, 1000, 3000, 'phone', '', 0, '', 0);"
	"INSERT INTO bindings VALUES('sip:alice@a.test', 'sip:alice@192.0.2.8', '192.0.2.8', 5062, 'tcp',"
	" '<sip:p;lr>', 'a2@x', 9, 500, 2500, 'baresip', '<urn:uuid:1>', 1, ';reg-id=1', 1);"
	"INSERT INTO bindings VALUES('sip:alice@a.test', 'sip:alice@192.0.2.7', '192.0.2.7', 5062, 'udp',"
	" '', 'a1@x', 7, 1000, 2000, 'baresip', '', 0, '', 0);"
	"INSERT INTO bindings VALUES('sip:carol@a.test', 'sip:carol@192.0.2.10', '192.0.2.10', 5060,"
	" 'udp', '', 'c@x', 1, 1000, 900, '', '', 0, '', 0);"
	"INSERT INTO calls(id, call_id, caller, callee, start_ms) VALUES('c1', 'x', 'a', 'b', 1);"
	"PRAGMA user_version = 1;";

/* A database of version 1 is readable by `parley reg list` before the server upgrades it,
 * and the server upgrades it keeping every binding; after that a refresh, a new binding and
 * a removal work on the new table. */
static void t_upgrade(void)
{
	struct tmpdb t;
	struct store *st;
	sqlite3 *db = NULL;
	struct seen s = { .len = 0 };
	struct store_binding b;
	const char *alice7 = "sip:alice@a.test sip:alice@192.0.2.7 192.0.2.7:5062/udp path= cid=a1@x/7"
			     " q=1000 exp=2000 ua=baresip inst= reg=0 params= fl=0|";
	const char *alice8 = "sip:alice@a.test sip:alice@192.0.2.8 192.0.2.8:5062/tcp path=<sip:p;lr>"
			     " cid=a2@x/9 q=500 exp=2500 ua=baresip inst=<urn:uuid:1> reg=1 params=;reg-id=1 fl=1|";
	const char *bob = "sip:bob@a.test sip:bob@192.0.2.9 192.0.2.9:5060/udp path= cid=b@x/3 q=1000"
			  " exp=3000 ua=phone inst= reg=0 params= fl=0|";
	char want[1024];

	tmp_make(&t);
	CHECK_INT(sqlite3_open(t.path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	/* A reader sorts by AOR and contact, and leaves the schema alone. */
	st = open_db(t.path, true, 0, 0);
	CHECK_INT(store_bindings_load(st, 1000, full_cb, &s), 0);
	snprintf(want, sizeof(want), "%s%s%s", alice7, alice8, bob);
	CHECK_STR(str_from_cstr(s.buf), want);
	store_close(st);
	CHECK_INT(sql_int(t.path, "PRAGMA user_version"), 1);

	st = open_db(t.path, false, 0, 0);
	CHECK_INT(sql_int(t.path, "PRAGMA user_version"), 7);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 4);
	/* Version 6: admin accounts and their tokens, none yet. */
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM admins"), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM admin_tokens"), 0);
	/* Version 4: the call kept its row and has an empty media column. */
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls WHERE media = ''"), 1);
	/* Version 5: every binding has a connection column, 0 for the old ones. */
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE conn_id = 0"), 4);
	/* Ids follow the expiry: the row that expires first is refreshed first. */
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings WHERE aor = 'sip:carol@a.test'"), 1);
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings WHERE aor = 'sip:bob@a.test'"), 4);
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(st, 1000, full_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), want);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 3); /* carol expired */
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 1);

	b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 4000);
	CHECK_INT(store_binding_put(st, &b), 0);
	b = binding("sip:dave@a.test", "sip:dave@192.0.2.11", 4000);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_binding_del(st, STR("sip:bob@a.test"), STR("sip:bob@192.0.2.9")), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 3);
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings WHERE contact = 'sip:alice@192.0.2.7'"), 2);
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings WHERE aor = 'sip:dave@a.test'"), 5);
	store_close(st);

	/* The reader of `parley reg list` on the upgraded database. */
	st = open_db(t.path, true, 0, 0);
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "sip:alice@a.test sip:alice@192.0.2.7 192.0.2.7:5062 udp q=500 4000|"
					"sip:alice@a.test sip:alice@192.0.2.8 192.0.2.8:5062 tcp q=500 2500|"
					"sip:dave@a.test sip:dave@192.0.2.11 192.0.2.7:5062 udp q=500 4000|");
	store_close(st);
	tmp_drop(&t);
}

/* A removal whose flush fails is kept and done by the next flush, and the binding's row
 * is not left behind to come back at a restart. */
static void t_delete_retry(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_binding b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	sqlite3 *other = NULL;
	struct seen s = { .len = 0 };

	tmp_make(&t);
	st = open_db(t.path, false, 50, 0);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);

	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_binding_del(st, b.aor, b.contact), 0);
	b = binding("sip:bob@a.test", "sip:bob@192.0.2.9", 5000); /* new, not yet written */
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), -EBUSY);
	CHECK_INT(store_flush(st), -EBUSY);
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 1);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE aor = 'sip:bob@a.test'"), 1);

	/* Removed and registered again: one row. */
	b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 6000);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_binding_del(st, b.aor, b.contact), 0);
	CHECK_INT(store_binding_put(st, &b), 0); /* the removal and the put coalesce */
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	store_close(st);

	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 2);
	store_close(st);
	tmp_drop(&t);
}

/* Two rows of one binding (only a hand edit makes them): the newest is kept, the other
 * deleted, whether the store finds them while loading or on its first write. */
static void t_duplicate_rows(void)
{
	struct tmpdb t;
	struct store *st;
	struct seen s = { .len = 0 };
	struct store_binding b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	sqlite3 *db = NULL;
	const char *dup = "INSERT INTO bindings(aor, contact, src_addr, src_port, transport, call_id,"
			  " cseq, q, expires_at) SELECT aor, contact, '203.0.113.1', 5070, 'tcp', call_id,"
			  " cseq, q, 7000 FROM bindings WHERE id = 1";

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	store_close(st);
	CHECK_INT(sqlite3_open(t.path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, dup, NULL, NULL, NULL), SQLITE_OK);

	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 1);
	CHECK_INT(sql_int(t.path, "SELECT expires_at FROM bindings"), 7000);
	store_close(st);

	/* Found on the first write, with no load before it. */
	CHECK_INT(sqlite3_exec(db, "UPDATE bindings SET id = 1", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, dup, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_db(t.path, false, 0, 0);
	b.expires_at = 8000;
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 1);
	CHECK_INT(sql_int(t.path, "SELECT id FROM bindings"), 2); /* the newer row */
	CHECK_INT(sql_int(t.path, "SELECT expires_at FROM bindings"), 8000);
	store_close(st);

	/* Ids out of the range the store numbers in get new ones, and keep their data. */
	CHECK_INT(sqlite3_open(t.path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db,
			       "INSERT INTO bindings(id, aor, contact, expires_at) VALUES"
			       " (4398046511104, 'sip:bob@a.test', 'sip:bob@192.0.2.9', 9000),"
			       " (-3, 'sip:carol@a.test', 'sip:carol@192.0.2.10', 9000)",
			       NULL, NULL, NULL),
		  SQLITE_OK);
	sqlite3_close(db);
	st = open_db(t.path, false, 0, 0);
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 3);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE id BETWEEN 1 AND 10"), 3);
	b = binding("sip:bob@a.test", "sip:bob@192.0.2.9", 9500);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_binding_del(st, STR("sip:carol@a.test"), STR("sip:carol@192.0.2.10")), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	CHECK_INT(sql_int(t.path, "SELECT expires_at FROM bindings WHERE aor = 'sip:bob@a.test'"), 9500);
	store_close(st);
	tmp_drop(&t);
}

/* While flushes fail, changes that replace each other leave dead entries in the queue's
 * chunks; the queue drops them instead of growing, keeps accepting, and the last values
 * are written once the database is back. */
static void t_queue_coalesce(void)
{
	struct tmpdb t;
	struct store *st;
	sqlite3 *other = NULL;
	struct seen s = { .len = 0 };
	char ua[64];

	tmp_make(&t);
	st = open_db(t.path, false, 50, 16384);
	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 5000; i++) {
		struct store_binding b = binding(i % 3 ? "sip:alice@a.test" : "sip:bob@a.test",
						 i % 3 == 2 ? "sip:alice@192.0.2.8" : "sip:x@192.0.2.7", 3000 + i);
		/* Sizes change, so that a replacement does not always fit where it was. */
		snprintf(ua, sizeof(ua), "agent %.*s%d", i % 20, "....................", i);
		b.user_agent = str_from_cstr(ua);
		CHECK_INT(store_binding_put(st, &b), 0);
		if (i % 1000 == 0)
			CHECK_INT(store_flush(st), -EBUSY);
	}
	CHECK_INT(store_queue_len(st), 3);
	CHECK(store_queue_bytes(st) < 16384);
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "sip:bob@a.test sip:x@192.0.2.7 192.0.2.7:5062 udp q=500 7998|"
					"sip:alice@a.test sip:x@192.0.2.7 192.0.2.7:5062 udp q=500 7999|"
					"sip:alice@a.test sip:alice@192.0.2.8 192.0.2.7:5062 udp q=500 7997|");
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE user_agent IN"
				  " ('agent ..................4998', 'agent ...................4999',"
				  " 'agent .................4997')"),
		  3);
	store_close(st);
	tmp_drop(&t);
}

/* The digest that finds bindings in the queue and their row ids: the same key gives the
 * same digest, and distinct keys, also ones that only move a boundary, do not collide. */
static void t_digest(void)
{
	struct tmpdb t;
	struct store *st;
	struct store__kd a, b;
	uint64_t *seen;
	size_t n = 200000, dups = 0;
	char aor[32], contact[48];

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	a = store__digest(st, STR("sip:alice@a.test"), STR("sip:alice@192.0.2.7"), STR_NULL, 0);
	b = store__digest(st, str_from_cstr("sip:alice@a.test"), str_from_cstr("sip:alice@192.0.2.7"), STR_NULL, 0);
	CHECK(a.a == b.a && a.b == b.b);
	b = store__digest(st, STR("sip:alice@a.tes"), STR("tsip:alice@192.0.2.7"), STR_NULL, 0);
	CHECK(a.a != b.a && a.b != b.b);
	b = store__digest(st, STR("ab"), STR(""), STR_NULL, 0);
	a = store__digest(st, STR("ab\0"), STR(""), STR_NULL, 0);
	CHECK(a.a != b.a && a.b != b.b);
	a = store__digest(st, STR(""), STR("ab"), STR_NULL, 0);
	CHECK(a.a != b.a && a.b != b.b);
	/* Two Outbound flows of one phone may share a contact: their keys differ. */
	a = store__digest(st, STR("alice@a.test"), STR("sip:a@h"), STR("\"<urn:uuid:1>\""), 1);
	b = store__digest(st, STR("alice@a.test"), STR("sip:a@h"), STR("\"<urn:uuid:1>\""), 2);
	CHECK(a.a != b.a && a.b != b.b);
	b = store__digest(st, STR("alice@a.test"), STR("sip:a@h"), STR_NULL, 0);
	CHECK(a.a != b.a && a.b != b.b);
	seen = calloc(n, sizeof(*seen));
	for (size_t i = 0; seen && i < n; i++) {
		snprintf(aor, sizeof(aor), "sip:u%zu@a.test", i / 4);
		snprintf(contact, sizeof(contact), "sip:u%zu@10.0.%zu.%zu:5060", i / 4, i % 4, i % 251);
		seen[i] = store__digest(st, str_from_cstr(aor), str_from_cstr(contact), STR_NULL, 0).a;
	}
	for (size_t i = 0; seen && i < n; i++)
		for (size_t j = i + 1; j < n && j < i + 64; j++)
			dups += seen[i] == seen[j];
	CHECK_INT(dups, 0);
	free(seen);
	store_close(st);
	tmp_drop(&t);
}

struct calls_seen {
	char buf[1024];
	size_t len;
};

static int call_cb(const struct store_call *c, void *arg)
{
	struct calls_seen *s = arg;

	s->len += (size_t)snprintf(s->buf + s->len, sizeof(s->buf) - s->len, "%.*s %.*s>%.*s %u %.*s %llu|",
				   STR_FMT(c->id), STR_FMT(c->caller), STR_FMT(c->callee), c->status,
				   STR_FMT(c->reason), (unsigned long long)c->duration_ms);
	return 0;
}

static void t_calls(void)
{
	struct tmpdb t;
	struct store *st;
	struct calls_seen s = { .len = 0 };
	struct store_call c = {
		.id = STR("c1"),
		.call_id = STR("x1@h"),
		.caller = STR("alice@a.test"),
		.callee = STR("bob@a.test"),
		.start_ms = 1000,
	};

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_call_put(st, &c), 0);
	CHECK_INT(store_flush(st), 0);
	/* Answered and ended later: the record is updated, not added. */
	c.answer_ms = 2000;
	c.end_ms = 5000;
	c.status = 200;
	c.reason = STR("answered");
	c.duration_ms = 3000;
	CHECK_INT(store_call_put(st, &c), 0);
	c = (struct store_call){ .id = STR("c2"),
				 .call_id = STR("x2@h"),
				 .caller = STR("bob@a.test"),
				 .callee = STR("carol@a.test"),
				 .start_ms = 3000,
				 .end_ms = 3500,
				 .status = 486,
				 .reason = STR("busy") };
	CHECK_INT(store_call_put(st, &c), 0);
	c = (struct store_call){ .id = STR("c3"),
				 .call_id = STR("x3@h"),
				 .caller = STR("carol@a.test"),
				 .callee = STR("alice@a.test"),
				 .start_ms = 2000,
				 .end_ms = 2500,
				 .status = 487,
				 .reason = STR("cancelled") };
	CHECK_INT(store_call_put(st, &c), 0);
	c.id = STR_NULL;
	CHECK_INT(store_call_put(st, &c), -EINVAL);
	CHECK_INT(store_flush(st), 0);

	CHECK_INT(store_calls_list(st, 0, call_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "c2 bob@a.test>carol@a.test 486 busy 0|"
					"c3 carol@a.test>alice@a.test 487 cancelled 0|"
					"c1 alice@a.test>bob@a.test 200 answered 3000|");
	s = (struct calls_seen){ .len = 0 };
	CHECK_INT(store_calls_list(st, 1, call_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "c2 bob@a.test>carol@a.test 486 busy 0|");
	store_close(st);
	tmp_drop(&t);
}

/* Another process holding the write lock makes the flush fail; the queue must survive it
 * and go out on the next try. */
static void t_flush_locked(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_binding b = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	struct store_call c = { .id = STR("c1"), .caller = STR("a"), .callee = STR("b"), .start_ms = 1 };
	sqlite3 *other = NULL;
	struct seen s = { .len = 0 };

	tmp_make(&t);
	st = open_db(t.path, false, 50, 0);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_call_put(st, &c), 0);

	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_flush(st), -EBUSY);
	CHECK(strstr(store_errmsg(st), "is locked") != NULL);
	CHECK_INT(store_queue_len(st), 2);
	CHECK_INT(store_flush(st), -EBUSY);
	CHECK_INT(store_queue_len(st), 2);
	/* Writes keep being queued meanwhile. */
	b.expires_at = 6000;
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_queue_len(st), 2);

	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_queue_len(st), 0);
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 1);
	CHECK(strstr(s.buf, " 6000|") != NULL);
	store_close(st);
	tmp_drop(&t);
}

static void t_queue_bound(void)
{
	struct tmpdb t;
	struct store *st;
	char contact[64];
	int err = 0, n = 0;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 8192);
	while (!err && n < 10000) {
		snprintf(contact, sizeof(contact), "sip:u@192.0.2.%d", n++);
		struct store_binding b = binding("sip:u@a.test", contact, 5000);
		err = store_binding_put(st, &b);
	}
	CHECK_INT(err, -ENOBUFS);
	CHECK(n > 5 && n < 100);
	CHECK(store_queue_bytes(st) <= 8192);
	CHECK(strstr(store_errmsg(st), "queue full") != NULL);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_queue_len(st), 0);
	store_close(st);
	tmp_drop(&t);
}

static void t_open_errors(void)
{
	struct tmpdb t;
	struct store *st = NULL;
	struct store_conf conf = { 0 };

	tmp_make(&t);
	/* A reader does not create a database. */
	conf.path = t.path;
	conf.readonly = true;
	CHECK_INT(store_open(&st, &conf), -ENOENT);
	CHECK(strstr(store_errmsg(st), t.path) != NULL);
	store_close(st);
	CHECK(access(t.path, F_OK) != 0);

	write_file(t.path, "this is not a database, just some text that is long enough............"
			   "................................................................\n");
	conf.readonly = false;
	CHECK_INT(store_open(&st, &conf), -EIO);
	CHECK(strstr(store_errmsg(st), "not a SQLite database") != NULL);
	store_close(st);
	unlink(t.path);

	conf.path = "/nonexistent-dir/x.db";
	CHECK(store_open(&st, &conf) < 0);
	CHECK(strstr(store_errmsg(st), "cannot open database /nonexistent-dir/x.db") != NULL);
	store_close(st);

	/* A schema from a newer parley is refused rather than misread. */
	sqlite3 *db = NULL;
	CHECK_INT(sqlite3_open(t.path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	conf.path = t.path;
	CHECK_INT(store_open(&st, &conf), -EIO);
	CHECK(strstr(store_errmsg(st), "newer than this parley") != NULL);
	store_close(st);
	tmp_drop(&t);
}

/* The user cache keeps up to four users per set (here the whole cache is one set): a
 * fifth evicts the one fetched longest ago; entries live ttl seconds, "no such user" at
 * most 2. A cached user still answers with its old hash after a password change. */
static void t_ucache(void)
{
	struct tmpdb t;
	tmp_make(&t);
	struct store *st = open_db(t.path, false, 0, 0);
	struct store_ucache *c = NULL;
	CHECK_INT(store_ucache_new(&c, st, 4, 30), 0);
	const char *names[] = { "u1", "u2", "u3", "u4", "u5" };
	char old[5][STORE_HA1_MD5_LEN + 1];
	struct store_user u;
	for (int i = 0; i < 5; i++)
		CHECK_INT(user_add(st, names[i], "a.test", "a.test", "one"), 0);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(store_ucache_get(c, str_from_cstr(names[i]), STR("a.test"), 100 + (uint32_t)i, &u), 0);
		memcpy(old[i], u.ha1_md5, sizeof old[i]);
	}
	for (int i = 0; i < 5; i++)
		CHECK_INT(user_passwd(st, names[i], "a.test", "a.test", "two"), 0);
	/* All four are still cached. */
	for (int i = 0; i < 4; i++) {
		CHECK_INT(store_ucache_get(c, str_from_cstr(names[i]), STR("a.test"), 110, &u), 0);
		CHECK(memcmp(u.ha1_md5, old[i], sizeof old[i]) == 0);
	}
	/* A fifth user takes the slot of u1, fetched first. */
	CHECK_INT(store_ucache_get(c, STR("u5"), STR("A.TEST"), 111, &u), 0);
	CHECK(memcmp(u.ha1_md5, old[0], sizeof old[0]) != 0);
	CHECK_INT(store_ucache_get(c, STR("u1"), STR("a.test"), 112, &u), 0);
	CHECK(memcmp(u.ha1_md5, old[0], sizeof old[0]) != 0); /* fetched again: the new hash */
	CHECK_INT(store_ucache_get(c, STR("u4"), STR("a.test"), 112, &u), 0);
	CHECK(memcmp(u.ha1_md5, old[3], sizeof old[3]) == 0); /* still cached */
	/* ttl: fetched at 103, stale from 133. */
	CHECK_INT(store_ucache_get(c, STR("u4"), STR("a.test"), 133, &u), 0);
	CHECK(memcmp(u.ha1_md5, old[3], sizeof old[3]) != 0);
	/* No such user: kept 2 s, then asked again. */
	CHECK_INT(store_ucache_get(c, STR("zed"), STR("a.test"), 200, &u), -ENOENT);
	CHECK_INT(user_add(st, "zed", "a.test", "a.test", "z"), 0);
	CHECK_INT(store_ucache_get(c, STR("zed"), STR("a.test"), 201, &u), -ENOENT);
	CHECK_INT(store_ucache_get(c, STR("zed"), STR("a.test"), 202, &u), 0);
	store_ucache_free(c);
	store_close(st);
	tmp_drop(&t);
}

/* ---- the server's store: lock, writer thread, journal, bans, retention ----------------- */

static struct store *open_server(const char *path, unsigned busy_ms, unsigned journal_ms)
{
	struct store_conf conf = {
		.path = path, .busy_ms = busy_ms, .lock = true, .writer = true, .journal_ms = journal_ms
	};
	struct store *st = NULL;
	int err = store_open(&st, &conf);

	if (err) {
		fprintf(stderr, "store_open: %s\n", store_errmsg(st));
		CHECK_INT(err, 0);
	}
	return st;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Calls store_flush() until it reports a failure whose message holds want (NULL: any
 * failure); returns that failure, or 0 if none came within 20 s. */
static int flush_until_failure(struct store *st, const char *want)
{
	for (int i = 0; i < 2000; i++) {
		int r = store_flush(st);
		if (r < 0 && (!want || strstr(store_errmsg(st), want)))
			return r;
		pause_ms(10);
	}
	return 0;
}

/* Calls store_flush() until everything queued is written; false if that takes 20 s. */
static bool flush_until_written(struct store *st)
{
	for (int i = 0; i < 2000; i++) {
		if (store_flush(st) == 0 && store_queue_len(st) == 0 && store_flush(st) == 0)
			return true;
		pause_ms(10);
	}
	return false;
}

static bool file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static long long file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* A second server on the same database is refused, naming the PID that holds it; readers
 * and the short writes of `parley user` still work; the lock goes with the store. */
static void t_lock(void)
{
	struct tmpdb t;
	struct store *st, *second = NULL, *ro;
	struct store_conf conf;
	char want[300];

	tmp_make(&t);
	st = open_server(t.path, 50, 0);
	conf = (struct store_conf){ .path = t.path, .lock = true, .writer = true };
	CHECK_INT(store_open(&second, &conf), -EBUSY);
	snprintf(want, sizeof(want), "database %s is in use by parley serve (PID %ld)", t.path, (long)getpid());
	CHECK_STR(str_from_cstr(store_errmsg(second)), want);
	store_close(second);

	ro = open_db(t.path, true, 0, 0);
	CHECK_INT(store_bindings_load(ro, 1000, binding_cb, &(struct seen){ .len = 0 }), 0);
	store_close(ro);
	ro = open_db(t.path, false, 0, 0);
	CHECK_INT(user_add(ro, "alice", "a.test", "a.test", "pw"), 0);
	store_close(ro);

	store_close(st);
	second = open_server(t.path, 50, 0);
	store_close(second);
	tmp_drop(&t);
}

/* While another process holds the database, store_flush() hands the changes over and
 * returns at once ("pending", later the failure); nothing is dropped, the failed batch is
 * written before the newer changes of the same rows, and everything lands once the lock
 * is released. */
static void t_writer_locked(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	struct store_binding b = binding("sip:bob@a.test", "sip:bob@192.0.2.8", 5000);
	struct store_binding c = binding("sip:carol@a.test", "sip:carol@192.0.2.9", 5000);
	struct store_call call = { .id = STR("c1"), .caller = STR("a"), .callee = STR("b"), .start_ms = 1 };
	sqlite3 *other = NULL;
	struct seen s = { .len = 0 };

	tmp_make(&t);
	/* A long journal delay: this case is about the queue, not the journal. */
	st = open_server(t.path, 50, 600000);
	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_call_put(st, &call), 0);
	/* The hand-over and this answer happen under one mutex the thread needs to start: the
	 * attempt cannot have ended yet. */
	CHECK_INT(store_flush(st), STORE_PENDING);
	CHECK_INT(store_queue_len(st), 3);
	CHECK_INT(flush_until_failure(st, "is locked"), -EBUSY);
	CHECK_INT(store_queue_len(st), 3);

	/* Newer changes of the same rows, queued while the old batch waits. */
	a.expires_at = 6000;
	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_binding_del(st, b.aor, b.contact), 0);
	CHECK_INT(store_binding_put(st, &c), 0);
	int r = store_flush(st);
	CHECK(r == STORE_PENDING || r == -EBUSY);
	CHECK_INT(flush_until_failure(st, NULL), -EBUSY);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 0);

	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK(flush_until_written(st));
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "sip:alice@a.test sip:alice@192.0.2.7 192.0.2.7:5062 udp q=500 6000|"
					"sip:carol@a.test sip:carol@192.0.2.9 192.0.2.7:5062 udp q=500 5000|");
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 1);
	CHECK_INT(store_sync(st), 0);
	CHECK(!file_exists(t.path) || file_size(t.path) > 0);
	store_close(st);
	tmp_drop(&t);
}

/* Changes that stay unwritable go to the journal; a crash (a close without flushing)
 * keeps them, and the next open applies them and removes the journal. A stop whose final
 * flush fails keeps its changes in the journal too. */
static void t_journal_crash(void)
{
	struct tmpdb t;
	struct store *st;
	char jpath[256];
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	struct store_binding b = binding("sip:bob@a.test", "sip:bob@192.0.2.8", 5000);
	struct store_call call = { .id = STR("c1"), .caller = STR("a"), .callee = STR("b"), .start_ms = 1 };
	struct store_ban ban = { .source = STR("192.0.2.66"), .until = 4000000000, .reason = STR("r"), .created = 1 };
	sqlite3 *other = NULL;

	tmp_make(&t);
	snprintf(jpath, sizeof(jpath), "%s.journal", t.path);
	st = open_server(t.path, 20, 1);
	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_call_put(st, &call), 0);
	CHECK_INT(store_ban_put(st, &ban), 0);
	CHECK_INT(store_flush(st), STORE_PENDING);
	CHECK_INT(flush_until_failure(st, "3 changes saved in journal"), -EBUSY);
	CHECK(file_size(jpath) > 16);
	store_close(st); /* the crash: what was only in memory is gone */

	st = NULL;
	{
		struct store_conf conf = { .path = t.path, .busy_ms = 20, .lock = true, .writer = true };
		/* A start while the database is still locked fails, and keeps the journal. */
		CHECK_INT(store_open(&st, &conf), -EBUSY);
		CHECK(strstr(store_errmsg(st), "locked") != NULL);
		store_close(st);
		CHECK(file_size(jpath) > 16);
	}
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	st = open_server(t.path, 20, 600000);
	CHECK(!file_exists(jpath));
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE expires_at = 5000"), 1);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 1);
	CHECK_INT(sql_int(t.path, "SELECT until FROM bans WHERE source = '192.0.2.66'"), 4000000000);

	/* A stop whose database is still locked: store_sync() saves the queue. */
	CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_binding_put(st, &b), 0);
	CHECK_INT(store_sync(st), -EBUSY);
	CHECK(strstr(store_errmsg(st), "1 changes saved in journal") != NULL);
	store_close(st);
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	st = open_server(t.path, 20, 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 2);
	CHECK(!file_exists(jpath));
	store_close(st);
	tmp_drop(&t);
}

/* The journal is applied while the server runs, as soon as the database can be written
 * again, together with what came after it; then it is emptied. */
static void t_journal_runtime(void)
{
	struct tmpdb t;
	struct store *st;
	char jpath[256];
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	sqlite3 *other = NULL;

	tmp_make(&t);
	snprintf(jpath, sizeof(jpath), "%s.journal", t.path);
	st = open_server(t.path, 20, 1);
	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_flush(st), STORE_PENDING);
	CHECK_INT(flush_until_failure(st, "1 changes saved in journal"), -EBUSY);
	a.expires_at = 7000; /* newer than the journal's */
	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_flush(st) <= STORE_PENDING, 1);
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK(flush_until_written(st));
	CHECK_INT(sql_int(t.path, "SELECT expires_at FROM bindings"), 7000);
	CHECK_INT(file_size(jpath), 0);
	store_close(st);
	tmp_drop(&t);
}

/* With a busy timeout longer than the lock is held, the writer thread waits for the lock
 * while the loop's calls keep answering "pending"; the rows land once it is released. */
static void t_writer_no_wait(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	sqlite3 *other = NULL;

	tmp_make(&t);
	st = open_server(t.path, 30000, 600000);
	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_binding_put(st, &a), 0);
	for (int i = 0; i < 20; i++) {
		CHECK_INT(store_flush(st), STORE_PENDING);
		pause_ms(5);
	}
	CHECK_INT(store_queue_len(st), 1);
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK(flush_until_written(st));
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 1);
	store_close(st);
	tmp_drop(&t);
}

/* When the journal cannot be written either, the failure says so, the changes stay in
 * memory, and they are written once the database can be. */
static void t_journal_unwritable(void)
{
	struct tmpdb t;
	struct store *st;
	char jpath[256];
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	sqlite3 *other = NULL;

	tmp_make(&t);
	snprintf(jpath, sizeof(jpath), "%s.journal", t.path);
	st = open_server(t.path, 20, 1);
	CHECK_INT(mkdir(jpath, 0700), 0); /* a directory where the journal should go */
	CHECK_INT(sqlite3_open(t.path, &other), SQLITE_OK);
	CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_flush(st), STORE_PENDING);
	CHECK_INT(flush_until_failure(st, "the journal cannot be written either"), -EBUSY);
	CHECK(strstr(store_errmsg(st), "1 changes kept in memory") != NULL);
	CHECK_INT(store_queue_len(st), 1);
	CHECK_INT(rmdir(jpath), 0);
	CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK(flush_until_written(st));
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings"), 1);
	store_close(st);
	tmp_drop(&t);
}

/* A record cut short by a crash during an append, or damaged, is skipped with what
 * follows it; the records before it are applied. */
static void t_journal_torn(void)
{
	struct tmpdb t;
	struct store *st;
	struct store__journal j;
	struct store__queue q = { 0 };
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	struct store_binding b = binding("sip:bob@a.test", "sip:bob@192.0.2.8", 5000);
	struct store_binding c = binding("sip:carol@a.test", "sip:carol@192.0.2.9", 5000);
	long long one, two;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	store__journal_init(&j, t.path);
	CHECK_INT(store__queue_binding(st, &q, Q_BINDING_PUT, &a, false), 0);
	CHECK_INT(store__journal_append(st, &j, &q), 0);
	one = file_size(j.path);
	store__queue_clear(&q);
	CHECK_INT(store__queue_binding(st, &q, Q_BINDING_PUT, &b, false), 0);
	CHECK_INT(store__journal_append(st, &j, &q), 0);
	two = file_size(j.path);
	CHECK(two > one && one > 16);
	store__journal_close(&j);
	store_close(st);

	/* bob's record loses its last three bytes. */
	CHECK_INT(truncate(j.path, two - 3), 0);
	st = open_server(t.path, 20, 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE aor = 'sip:alice@a.test'"), 1);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE aor = 'sip:bob@a.test'"), 0);
	CHECK(!file_exists(j.path));
	store_close(st);

	/* A flipped byte in the middle of carol's record: her checksum fails. */
	st = open_db(t.path, false, 0, 0);
	store__journal_init(&j, t.path);
	store__queue_clear(&q);
	CHECK_INT(store__queue_binding(st, &q, Q_BINDING_PUT, &c, false), 0);
	CHECK_INT(store__journal_append(st, &j, &q), 0);
	store__journal_close(&j);
	store_close(st);
	{
		FILE *f = fopen(j.path, "r+b");
		CHECK(f != NULL);
		if (f) {
			int ch;
			fseek(f, 40, SEEK_SET);
			ch = fgetc(f);
			fseek(f, 40, SEEK_SET);
			fputc(ch ^ 0x20, f);
			fclose(f);
		}
	}
	st = open_server(t.path, 20, 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bindings WHERE aor = 'sip:carol@a.test'"), 0);
	store_close(st);
	store__queue_free(&q);
	tmp_drop(&t);
}

/* A journal applied just before a crash, but not yet removed, is not applied again over
 * the newer rows written after it. */
static void t_journal_applied(void)
{
	struct tmpdb t;
	struct store *st;
	struct store__journal j;
	struct store__queue q = { 0 };
	struct store_binding a = binding("sip:alice@a.test", "sip:alice@192.0.2.7", 5000);
	char sql[128];
	sqlite3 *db = NULL;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	store__journal_init(&j, t.path);
	CHECK_INT(store__queue_binding(st, &q, Q_BINDING_PUT, &a, false), 0);
	CHECK_INT(store__journal_append(st, &j, &q), 0);
	store__journal_close(&j);
	a.expires_at = 9000;
	CHECK_INT(store_binding_put(st, &a), 0);
	CHECK_INT(store_flush(st), 0);
	store_close(st);
	snprintf(sql, sizeof(sql), "REPLACE INTO meta(key, value) VALUES('journal_applied', %lld)", (long long)j.gen);
	CHECK_INT(sqlite3_open(t.path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	st = open_server(t.path, 20, 0);
	CHECK_INT(sql_int(t.path, "SELECT expires_at FROM bindings"), 9000);
	CHECK(!file_exists(j.path));
	store_close(st);
	store__queue_free(&q);
	tmp_drop(&t);
}

struct bans_seen {
	char buf[512];
	size_t len;
};

static int ban_cb(const struct store_ban *b, void *arg)
{
	struct bans_seen *s = arg;

	s->len += (size_t)snprintf(s->buf + s->len, sizeof(s->buf) - s->len, "%.*s %lld %.*s %lld|", STR_FMT(b->source),
				   (long long)b->until, STR_FMT(b->reason), (long long)b->created);
	return 0;
}

static void t_bans(void)
{
	struct tmpdb t;
	struct store *st;
	struct bans_seen s = { .len = 0 };
	struct store_ban x = {
		.source = STR("192.0.2.7"), .until = 2000, .reason = STR("10 failures"), .created = 1000
	};
	struct store_ban y = { .source = STR("2001:db8::1"), .until = 1500, .reason = STR("r"), .created = 900 };

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_ban_put(st, &x), 0);
	CHECK_INT(store_ban_put(st, &y), 0);
	x.until = 2500; /* a put replaces */
	CHECK_INT(store_ban_put(st, &x), 0);
	CHECK_INT(store_bans_list(st, 0, ban_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "192.0.2.7 2500 10 failures 1000|2001:db8::1 1500 r 900|");
	s = (struct bans_seen){ .len = 0 };
	CHECK_INT(store_bans_list(st, 1600, ban_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf), "192.0.2.7 2500 10 failures 1000|");
	CHECK_INT(store_bans_prune(st, 1600), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bans"), 1);
	CHECK_INT(store_ban_del(st, STR("192.0.2.7")), 0);
	CHECK_INT(store_ban_del(st, STR("192.0.2.7")), -ENOENT);
	CHECK(strstr(store_errmsg(st), "no ban of 192.0.2.7") != NULL);
	CHECK_INT(store_ban_put(st, &(struct store_ban){ .source = STR_NULL }), -EINVAL);
	store_close(st);

	/* A reader of a database from before bans existed sees none. */
	st = open_db(t.path, true, 0, 0);
	CHECK_INT(store_bans_list(st, 0, ban_cb, &s), 0);
	store_close(st);

	/* The server's writes go through the writer thread. */
	st = open_server(t.path, 50, 0);
	CHECK_INT(store_ban_put(st, &x), 0);
	CHECK_INT(store_ban_put(st, &y), 0);
	CHECK_INT(store_sync(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bans"), 2);
	CHECK_INT(store_ban_del(st, STR("192.0.2.7")), 0);
	CHECK_INT(store_bans_prune(st, 1600), 0);
	CHECK_INT(store_sync(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM bans"), 0);
	store_close(st);
	tmp_drop(&t);
}

static void t_cdr_prune(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_call c = { .id = STR("old"), .caller = STR("a"), .callee = STR("b"), .start_ms = 100000 };

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_call_put(st, &c), 0);
	c.id = STR("new");
	c.start_ms = 300000;
	CHECK_INT(store_call_put(st, &c), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_cdr_prune(st, 200), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 1);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls WHERE id = 'new'"), 1);
	store_close(st);

	st = open_server(t.path, 50, 0);
	CHECK_INT(store_cdr_prune(st, 400), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 1); /* queued only */
	CHECK_INT(store_sync(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 0);
	store_close(st);
	tmp_drop(&t);
}

/* Record i of t_calls_batches: id "rI", Call-ID "xI", caller "aI@a.test" (written into the
 * three 32-byte buffers it points into), callee b@a.test, the rest left to the caller. */
static struct store_call numbered_call(unsigned i, char *id, char *call_id, char *caller)
{
	snprintf(id, 32, "r%u", i);
	snprintf(call_id, 32, "x%u", i);
	snprintf(caller, 32, "a%u@a.test", i);
	return (struct store_call){ .id = str_from_cstr(id),
				    .call_id = str_from_cstr(call_id),
				    .caller = str_from_cstr(caller),
				    .callee = STR("b@a.test") };
}

/* Call records go BATCH (16) to a statement: 37 in one flush are two full statements and
 * five alone, ten of them updates of rows written before (their start and a media left
 * empty stay as first written); with the writer thread, records queued before a prune
 * are written before it. */
static void t_calls_batches(void)
{
	struct tmpdb t;
	char id[32], call_id[32], caller[32];
	struct store_call c;

	tmp_make(&t);
	struct store *st = open_db(t.path, false, 0, 0);
	for (unsigned i = 0; i < 10; i++) {
		c = numbered_call(i, id, call_id, caller);
		c.start_ms = 100000 + i;
		c.media = STR("relay 1");
		CHECK_INT(store_call_put(st, &c), 0);
	}
	CHECK_INT(store_flush(st), 0);
	for (unsigned i = 0; i < 37; i++) {
		c = numbered_call(i, id, call_id, caller);
		c.start_ms = i < 10 ? 999 : 100000 + i;
		c.answer_ms = 200000 + i;
		c.end_ms = 300000 + i;
		c.status = 200;
		c.reason = STR("answered");
		c.duration_ms = 100000;
		c.media = i < 10 ? STR_NULL : STR("direct");
		CHECK_INT(store_call_put(st, &c), 0);
	}
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 37);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls WHERE start_ms = 100000 + substr(id, 2)"
				  " AND answer_ms = 200000 + substr(id, 2) AND end_ms = 300000 + substr(id, 2)"
				  " AND call_id = 'x' || substr(id, 2) AND caller = 'a' || substr(id, 2) || '@a.test'"
				  " AND callee = 'b@a.test' AND status = 200 AND reason = 'answered'"
				  " AND duration_ms = 100000"),
		  37);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls WHERE media = 'relay 1'"), 10);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls WHERE media = 'direct'"), 27);
	store_close(st);

	st = open_server(t.path, 50, 0);
	for (unsigned i = 0; i < 20; i++) {
		snprintf(id, sizeof id, "p%u", i);
		c = (struct store_call){
			.id = str_from_cstr(id), .caller = STR("a"), .callee = STR("b"), .start_ms = i * 1000
		};
		CHECK_INT(store_call_put(st, &c), 0);
	}
	CHECK_INT(store_cdr_prune(st, 10), 0); /* before 10 s: p0 .. p9 */
	CHECK_INT(store_sync(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls WHERE id LIKE 'p%'"), 10);
	CHECK_INT(sql_int(t.path, "SELECT min(start_ms) FROM calls WHERE id LIKE 'p%'"), 10000);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 47);
	store_close(st);
	tmp_drop(&t);
}

static int admin_seen(const struct store_admin *a, void *arg)
{
	char *out = arg;
	snprintf(out + strlen(out), 256 - strlen(out), "%.*s:%u:%.*s|", STR_FMT(a->name), a->tokens,
		 STR_FMT(a->pwhash));
	return 0;
}

static int token_seen(const struct store_token *k, void *arg)
{
	char *out = arg;
	snprintf(out + strlen(out), 256 - strlen(out), "%.*s=%.*s|", STR_FMT(k->name), STR_FMT(k->hash));
	return 0;
}

/* Admin accounts: added once, password changed, tokens kept per admin and gone with it;
 * names checked. */
static void t_admins(void)
{
	struct tmpdb t;
	char out[256] = "";
	const char *hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	tmp_make(&t);
	struct store *st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_admin_add(st, STR("root"), "$argon2id$one", 10), 0);
	CHECK_INT(store_admin_add(st, STR("root"), "$argon2id$two", 11), -EEXIST);
	CHECK_INT(store_admin_add(st, STR("two words"), "$x", 11), -EINVAL);
	CHECK_INT(store_admin_add(st, STR(""), "$x", 11), -EINVAL);
	CHECK_INT(store_admin_passwd(st, STR("root"), "$argon2id$new"), 0);
	CHECK_INT(store_admin_passwd(st, STR("nobody"), "$x"), -ENOENT);
	CHECK_INT(store_token_add(st, STR("root"), hash, 12), 0);
	CHECK_INT(store_token_add(st, STR("nobody"), hash, 12), -ENOENT);
	CHECK_INT(store_admin_add(st, STR("ops"), "$argon2id$ops", 13), 0);
	CHECK_INT(store_admin_list(st, admin_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "ops:0:$argon2id$ops|root:1:$argon2id$new|");
	out[0] = '\0';
	CHECK_INT(store_admin_get(st, STR("root"), admin_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "root:0:$argon2id$new|");
	CHECK_INT(store_admin_get(st, STR("nobody"), admin_seen, out), -ENOENT);
	out[0] = '\0';
	CHECK_INT(store_tokens_list(st, token_seen, out), 0);
	CHECK(strstr(out, "root=0123") != NULL);
	CHECK_INT(store_admin_del(st, STR("root")), 0);
	CHECK_INT(store_admin_del(st, STR("root")), -ENOENT);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM admin_tokens"), 0);
	store_close(st);
	/* A reader lists them; a reader of an older database sees none. */
	st = open_db(t.path, true, 0, 0);
	out[0] = '\0';
	CHECK_INT(store_admin_list(st, admin_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "ops:0:$argon2id$ops|");
	store_close(st);
	tmp_drop(&t);
}

static int call_seen(const struct store_call *c, void *arg)
{
	char *out = arg;
	snprintf(out + strlen(out), 256 - strlen(out), "%.*s|", STR_FMT(c->id));
	return 0;
}

/* The history query: filters by user (address or user part), Call-ID and result; pages. */
static void t_calls_query(void)
{
	struct tmpdb t;
	char out[256] = "";
	uint64_t total = 0;

	tmp_make(&t);
	struct store *st = open_db(t.path, false, 0, 0);
	static const char *const rows[][5] = {
		{ "x1;c1", "x1", "alice@a.test", "bob@a.test", "busy" },
		{ "x2;c2", "x2", "bob@a.test", "alice@a.test", "answered" },
		{ "x3;c3", "x3", "carol@a.test", "bob@a.test", "busy" },
		{ "x4;c4", "x4", "alicex@a.test", "carol@a.test", "" },
	};
	for (unsigned i = 0; i < 4; i++) {
		struct store_call c = { .id = str_from_cstr(rows[i][0]),
					.call_id = str_from_cstr(rows[i][1]),
					.caller = str_from_cstr(rows[i][2]),
					.callee = str_from_cstr(rows[i][3]),
					.start_ms = 1000 + i,
					.status = rows[i][4][0] ? 486 : 0,
					.reason = str_from_cstr(rows[i][4]) };
		CHECK_INT(store_call_put(st, &c), 0);
	}
	CHECK_INT(store_flush(st), 0);
	struct store_call_filter f = { 0 };
	CHECK_INT(store_calls_query(st, &f, 2, 1, &total, NULL, call_seen, out), 0);
	CHECK_INT(total, 4);
	CHECK_STR(str_from_cstr(out), "x3;c3|x2;c2|");
	out[0] = '\0';
	f.user = STR("alice");
	CHECK_INT(store_calls_query(st, &f, 0, 0, &total, NULL, call_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "x2;c2|x1;c1|"); /* not alicex */
	CHECK_INT(total, 2);
	out[0] = '\0';
	f = (struct store_call_filter){ .user = STR("bob@a.test"), .result = STR("busy") };
	CHECK_INT(store_calls_query(st, &f, 0, 0, &total, NULL, call_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "x3;c3|x1;c1|");
	out[0] = '\0';
	f = (struct store_call_filter){ .call_id = STR("x4"), .result = STR("in progress") };
	CHECK_INT(store_calls_query(st, &f, 0, 0, &total, NULL, call_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "x4;c4|");
	store_close(st);
	tmp_drop(&t);
}

/* A database as version 6 left it (written out here as it was shipped), with three call
 * records in its rowid table of calls. */
static const char schema_v6[] =
	"CREATE TABLE users(user TEXT NOT NULL, domain TEXT NOT NULL, ha1_md5 TEXT NOT NULL,"
	" ha1_sha256 TEXT NOT NULL, PRIMARY KEY(user, domain)) WITHOUT ROWID;"
	"CREATE TABLE bindings(id INTEGER PRIMARY KEY, aor TEXT, contact TEXT, src_addr TEXT DEFAULT '',"
	" src_port INTEGER DEFAULT 0, transport TEXT DEFAULT '', path TEXT DEFAULT '', call_id TEXT DEFAULT '',"
	" cseq INTEGER DEFAULT 0, q INTEGER DEFAULT 1000, expires_at INTEGER DEFAULT 0, user_agent TEXT DEFAULT '',"
	" instance TEXT DEFAULT '', reg_id INTEGER DEFAULT 0, params TEXT DEFAULT '', flags INTEGER DEFAULT 0,"
	" conn_id INTEGER DEFAULT 0);"
	"CREATE TABLE calls(id TEXT NOT NULL PRIMARY KEY, call_id TEXT NOT NULL, caller TEXT NOT NULL,"
	" callee TEXT NOT NULL, start_ms INTEGER NOT NULL, answer_ms INTEGER NOT NULL DEFAULT 0,"
	" end_ms INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0,"
	" reason TEXT NOT NULL DEFAULT '', duration_ms INTEGER NOT NULL DEFAULT 0,"
	" media TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX calls_start ON calls(start_ms);"
	"CREATE TABLE bans(source TEXT PRIMARY KEY, until INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE admins(name TEXT PRIMARY KEY, pwhash TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE admin_tokens(hash TEXT PRIMARY KEY, name TEXT NOT NULL REFERENCES admins(name)"
	" ON DELETE CASCADE, created INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO calls VALUES('x1;t1;1', 'x1', 'alice@a.test', 'bob@a.test', 1000, 1500, 9000, 200,"
	" 'answered', 7500, 'direct');"
	"INSERT INTO calls VALUES('x2;t2;1', 'x2', 'bob@a.test', 'carol@a.test', 2000, 0, 0, 486, 'busy', 0, '');"
	"INSERT INTO calls VALUES('x3;t3;1', 'x3', 'carol@a.test', 'alice@a.test', 3000, 0, 0, 0, '', 0, '');"
	"PRAGMA user_version = 6;";

static int call_full(const struct store_call *c, void *arg)
{
	char *out = arg;
	snprintf(out + strlen(out), 512 - strlen(out), "%.*s %.*s %.*s>%.*s %llu/%llu/%llu %u %.*s %llu %.*s|",
		 STR_FMT(c->id), STR_FMT(c->call_id), STR_FMT(c->caller), STR_FMT(c->callee),
		 (unsigned long long)c->start_ms, (unsigned long long)c->answer_ms, (unsigned long long)c->end_ms,
		 c->status, STR_FMT(c->reason), (unsigned long long)c->duration_ms, STR_FMT(c->media));
	return 0;
}

/* Version 7 rebuilds the calls table keyed by its text id (no rowid) with indexes on the
 * caller and the callee: a database of version 6 keeps every record, a later write of a
 * record updates it in place, and the history's searches go through the indexes. */
static void t_calls_v7(void)
{
	struct tmpdb t;
	sqlite3 *db = NULL;
	char out[512] = "";
	uint64_t total = 0;

	tmp_make(&t);
	CHECK_INT(sqlite3_open(t.path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, schema_v6, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct store *st = open_db(t.path, false, 0, 0);
	CHECK_INT(sql_int(t.path, "PRAGMA user_version"), 7);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 3);
	CHECK_INT(sql_int(t.path,
			  "SELECT count(*) FROM sqlite_schema WHERE name = 'calls' AND sql LIKE '%WITHOUT ROWID%'"),
		  1);
	/* One index beside the key: start time (a caller's and a callee's would cost every
	 * call record's first write half as much again). */
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'calls'"
				  " AND name NOT LIKE 'sqlite_autoindex%'"),
		  1);
	struct store_call_filter f = { 0 };
	CHECK_INT(store_calls_query(st, &f, 0, 0, &total, NULL, call_full, out), 0);
	CHECK_INT(total, 3);
	CHECK_STR(str_from_cstr(out), "x3;t3;1 x3 carol@a.test>alice@a.test 3000/0/0 0  0 |"
				      "x2;t2;1 x2 bob@a.test>carol@a.test 2000/0/0 486 busy 0 |"
				      "x1;t1;1 x1 alice@a.test>bob@a.test 1000/1500/9000 200 answered 7500 direct|");
	/* The record still going is written again at its answer and its end: one row. */
	struct store_call c = { .id = STR("x3;t3;1"),
				.call_id = STR("x3"),
				.caller = STR("carol@a.test"),
				.callee = STR("alice@a.test"),
				.start_ms = 3000,
				.answer_ms = 3100,
				.end_ms = 5100,
				.status = 200,
				.reason = STR("answered"),
				.duration_ms = 2000 };
	CHECK_INT(store_call_put(st, &c), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(sql_int(t.path, "SELECT count(*) FROM calls"), 3);
	CHECK_INT(sql_int(t.path, "SELECT duration_ms FROM calls WHERE id = 'x3;t3;1'"), 2000);
	out[0] = '\0';
	f = (struct store_call_filter){ .user = STR("alice") };
	CHECK_INT(store_calls_query(st, &f, 0, 0, &total, NULL, call_seen, out), 0);
	CHECK_INT(total, 2);
	CHECK_STR(str_from_cstr(out), "x3;t3;1|x1;t1;1|");
	out[0] = '\0';
	f = (struct store_call_filter){ .call_id = STR("x2") };
	CHECK_INT(store_calls_query(st, &f, 0, 0, &total, NULL, call_seen, out), 0);
	CHECK_STR(str_from_cstr(out), "x2;t2;1|");
	store_close(st);

	/* A search by Call-ID reads a range of the key, not the table (one by user reads the
	 * start-time index under a budget: t_calls_budget). */
	CHECK_INT(sqlite3_open_v2(t.path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	static const char *const searches[] = {
		"SELECT 1 FROM calls WHERE id >= 'x' || ';' AND id < 'x' || '<' AND call_id = 'x'",
	};
	for (size_t i = 0; i < sizeof(searches) / sizeof(searches[0]); i++) {
		char q[512];
		sqlite3_stmt *s = NULL;
		snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", searches[i]);
		CHECK_INT(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(s, 3);
			if (d && !strncmp(d, "SCAN", 4))
				fprintf(stderr, "%s: %s\n", searches[i], d);
			CHECK(d && strncmp(d, "SCAN", 4) != 0);
		}
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	tmp_drop(&t);
}

/* A search by user that matches little stops at its budget instead of reading the whole
 * history on the server's loop: the newest matches come, marked partial. */
static void t_calls_budget(void)
{
	struct tmpdb t;
	uint64_t total = 0;
	bool partial = false;
	char out[256] = "";

	tmp_make(&t);
	struct store *st = open_db(t.path, false, 0, 0);
	/* carol's two calls: the oldest record and the newest; 400,000 of others between. */
	for (unsigned i = 0; i < 400002; i++) {
		char id[32], cid[32];
		snprintf(id, sizeof(id), "k%u;t;1", i);
		snprintf(cid, sizeof(cid), "k%u", i);
		bool carol = i == 0 || i == 400001;
		struct store_call c = { .id = str_from_cstr(id),
					.call_id = str_from_cstr(cid),
					.caller = carol ? STR("carol@a.test") : STR("alice@a.test"),
					.callee = STR("bob@a.test"),
					.start_ms = 1000 + i };
		CHECK_INT(store_call_put(st, &c), 0);
		if (i % 5000 == 4999)
			CHECK_INT(store_flush(st), 0);
	}
	CHECK_INT(store_flush(st), 0);
	struct store_call_filter f = { .user = STR("carol") };
	CHECK_INT(store_calls_query(st, &f, 10, 0, &total, &partial, call_seen, out), 0);
	CHECK(partial);
	CHECK_INT(total, 1);
	CHECK_STR(str_from_cstr(out), "k400001;t;1|");
	/* A Call-ID reads only its own records: whole, whatever the history's size. */
	out[0] = '\0';
	f = (struct store_call_filter){ .call_id = STR("k0") };
	CHECK_INT(store_calls_query(st, &f, 10, 0, &total, &partial, call_seen, out), 0);
	CHECK(!partial);
	CHECK_INT(total, 1);
	CHECK_STR(str_from_cstr(out), "k0;t;1|");
	store_close(st);
	tmp_drop(&t);
}

/* The count of a search stops past STORE_CALLS_COUNT_MAX. */
static void t_calls_count_capped(void)
{
	struct tmpdb t;
	uint64_t total = 0;
	char out[256] = "";

	tmp_make(&t);
	struct store *st = open_db(t.path, false, 0, 0);
	for (unsigned i = 0; i < STORE_CALLS_COUNT_MAX + 5; i++) {
		char id[32];
		snprintf(id, sizeof(id), "k%u;t;1", i);
		struct store_call c = { .id = str_from_cstr(id),
					.call_id = STR("k"),
					.caller = STR("alice@a.test"),
					.callee = STR("bob@a.test"),
					.start_ms = 1000 + i };
		CHECK_INT(store_call_put(st, &c), 0);
		if (i % 1000 == 999)
			CHECK_INT(store_flush(st), 0);
	}
	CHECK_INT(store_flush(st), 0);
	struct store_call_filter f = { .user = STR("bob") };
	CHECK_INT(store_calls_query(st, &f, 1, 0, &total, NULL, call_seen, out), 0);
	CHECK_INT(total, STORE_CALLS_COUNT_MAX + 1);
	CHECK_STR(str_from_cstr(out), "k10004;t;1|");
	store_close(st);
	tmp_drop(&t);
}

static const struct unit_case cases[] = {
	{ "admins", t_admins },
	{ "calls_query", t_calls_query },
	{ "calls_budget", t_calls_budget },
	{ "calls_v7", t_calls_v7 },
	{ "calls_count_capped", t_calls_count_capped },
	{ "flows", t_flows },
	{ "users", t_users },
	{ "bindings", t_bindings },
	{ "refresh_in_place", t_refresh_in_place },
	{ "batches", t_batches },
	{ "upgrade", t_upgrade },
	{ "delete_retry", t_delete_retry },
	{ "duplicate_rows", t_duplicate_rows },
	{ "queue_coalesce", t_queue_coalesce },
	{ "digest", t_digest },
	{ "calls", t_calls },
	{ "flush_locked", t_flush_locked },
	{ "queue_bound", t_queue_bound },
	{ "open_errors", t_open_errors },
	{ "ucache", t_ucache },
	{ "lock", t_lock },
	{ "writer_locked", t_writer_locked },
	{ "writer_no_wait", t_writer_no_wait },
	{ "journal_crash", t_journal_crash },
	{ "journal_unwritable", t_journal_unwritable },
	{ "journal_runtime", t_journal_runtime },
	{ "journal_torn", t_journal_torn },
	{ "journal_applied", t_journal_applied },
	{ "bans", t_bans },
	{ "cdr_prune", t_cdr_prune },
	{ "calls_batches", t_calls_batches },
};
UNIT_MAIN(cases)
