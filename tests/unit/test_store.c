/* test_store.c: unit tests of the SQLite store: users, import, write-behind bindings, calls. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"

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
	const char *suffix[] = { "", "-wal", "-shm", ".import" };

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

static void t_users(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_user u;

	tmp_make(&t);
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_user_add(st, STR("alice"), STR("A.Test"), STR_NULL, STR("secret")), 0);
	CHECK_INT(store_user_add(st, STR("alice"), STR("a.test"), STR_NULL, STR("other")), -EEXIST);
	CHECK(strstr(store_errmsg(st), "alice@a.test already exists") != NULL);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.TEST"), &u), 0);
	/* HA1 over the lowercase domain, computed independently with Python's hashlib. */
	CHECK_STR(str_from_cstr(u.ha1_md5), "793bc5ed8ab2a7cdda9b5c704486cb5d");
	CHECK_STR(str_from_cstr(u.ha1_sha256), "a06df68097d221f1e7f0831027b48ea94393525565c61596abce8d82ee4868ad");
	CHECK_STR(u.domain, "a.TEST");

	CHECK_INT(store_user_passwd(st, STR("alice"), STR("a.test"), STR_NULL, STR("new")), 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK(strcmp(u.ha1_md5, "793bc5ed8ab2a7cdda9b5c704486cb5d") != 0);
	CHECK_INT(store_user_passwd(st, STR("bob"), STR("a.test"), STR_NULL, STR("x")), -ENOENT);

	CHECK_INT(store_user_add(st, STR("bad user"), STR("a.test"), STR_NULL, STR("x")), -EINVAL);
	CHECK_INT(store_user_add(st, STR("carol"), STR(""), STR_NULL, STR("x")), -EINVAL);
	CHECK_INT(store_user_add(st, STR("carol"), STR("a.test"), STR_NULL, STR("")), -EINVAL);

	CHECK_INT(store_user_del(st, STR("alice"), STR("a.test")), 0);
	CHECK_INT(store_user_del(st, STR("alice"), STR("a.test")), -ENOENT);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), -ENOENT);

	/* A configured realm other than the domain. */
	CHECK_INT(store_user_add(st, STR("alice"), STR("a.test"), STR("a.test"), STR("secret")), 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK_STR(str_from_cstr(u.ha1_md5), "793bc5ed8ab2a7cdda9b5c704486cb5d");
	CHECK_INT(store_user_passwd(st, STR("alice"), STR("a.test"), STR("corp"), STR("secret")), 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK(strcmp(u.ha1_md5, "793bc5ed8ab2a7cdda9b5c704486cb5d") != 0);

	store_close(st);
	tmp_drop(&t);
}

struct names {
	char buf[4096];
	size_t len;
	unsigned n;
};

static int list_cb(const struct store_user *u, void *arg)
{
	struct names *nm = arg;

	nm->len += (size_t)snprintf(nm->buf + nm->len, sizeof(nm->buf) - nm->len, "%.*s@%.*s ",
				    STR_FMT(u->user), STR_FMT(u->domain));
	nm->n++;
	CHECK_INT(strlen(u->ha1_md5), 32);
	CHECK_INT(strlen(u->ha1_sha256), 64);
	return 0;
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

static void t_import(void)
{
	struct tmpdb t;
	struct store *st;
	struct store_user u;
	char file[256];
	unsigned count = 99, bad = 99;
	struct names nm = { .len = 0 };

	tmp_make(&t);
	snprintf(file, sizeof(file), "%s.import", t.path);
	st = open_db(t.path, false, 0, 0);
	CHECK_INT(store_user_add(st, STR("bob"), STR("b.test"), STR_NULL, STR("old")), 0);

	write_file(file, "# users\nalice@a.test,secret\r\n\nbob@B.test,p,w with, commas\ncarol@a.test, spaced \n");
	CHECK_INT(store_user_import(st, file, STR_NULL, &count, &bad), 0);
	CHECK_INT(count, 3);
	CHECK_INT(bad, 0);
	CHECK_INT(store_user_get(st, STR("alice"), STR("a.test"), &u), 0);
	CHECK_STR(str_from_cstr(u.ha1_md5), "793bc5ed8ab2a7cdda9b5c704486cb5d");
	CHECK_INT(store_user_list(st, list_cb, &nm), 0);
	CHECK_INT(nm.n, 3);
	CHECK_STR(str_from_cstr(nm.buf), "alice@a.test carol@a.test bob@b.test ");

	/* A bad line: its number in the message, and nothing of the file written. */
	write_file(file, "dave@a.test,pw1\neve@a.test,pw2\nno-at-sign,pw\nfrank@a.test,pw3\n");
	CHECK_INT(store_user_import(st, file, STR_NULL, &count, &bad), -EINVAL);
	CHECK_INT(bad, 3);
	CHECK_INT(count, 0);
	char expect[300];
	snprintf(expect, sizeof(expect), "%s:3: expected user@domain,password", file);
	CHECK_STR(str_from_cstr(store_errmsg(st)), expect);
	CHECK_INT(store_user_get(st, STR("dave"), STR("a.test"), &u), -ENOENT);
	CHECK_INT(store_user_get(st, STR("eve"), STR("a.test"), &u), -ENOENT);
	/* The store is usable after the rollback. */
	CHECK_INT(store_user_add(st, STR("dave"), STR("a.test"), STR_NULL, STR("pw")), 0);

	write_file(file, "x@a.test,\n");
	CHECK_INT(store_user_import(st, file, STR_NULL, &count, &bad), -EINVAL);
	CHECK_INT(bad, 1);
	write_file(file, "@a.test,pw\n");
	CHECK_INT(store_user_import(st, file, STR_NULL, &count, &bad), -EINVAL);
	write_file(file, "x@,pw\n");
	CHECK_INT(store_user_import(st, file, STR_NULL, &count, &bad), -EINVAL);
	CHECK_INT(store_user_import(st, "/nonexistent/file", STR_NULL, &count, &bad), -ENOENT);

	/* 10,000 users in one transaction. */
	FILE *f = fopen(file, "w");
	for (int i = 0; f && i < 10000; i++)
		fprintf(f, "user%05d@big.test,password%d\n", i, i);
	if (f)
		fclose(f);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(store_user_import(st, file, STR_NULL, &count, &bad), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_INT(count, 10000);
	fprintf(stderr, "imported 10000 users in %.0f ms\n",
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK_INT(store_user_get(st, STR("user09999"), STR("big.test"), &u), 0);

	store_close(st);
	unlink(file);
	tmp_drop(&t);
}

static struct store_binding binding(const char *aor, const char *contact, int64_t expires_at)
{
	return (struct store_binding){
		.aor = str_from_cstr(aor), .contact = str_from_cstr(contact),
		.src_addr = STR("192.0.2.7"), .src_port = 5062, .transport = STR("udp"),
		.call_id = STR("cid@x"), .cseq = 7, .q = 500, .expires_at = expires_at,
		.user_agent = STR("baresip"), .instance = STR("<urn:uuid:1>"), .reg_id = 1,
	};
}

struct seen {
	char buf[2048];
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
	b = binding("sip:carol@a.test", "sip:carol@192.0.2.10", 900);   /* will have expired */
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
	CHECK_STR(str_from_cstr(s.buf),
		  "sip:alice@a.test sip:alice@192.0.2.7:5062 192.0.2.7:5062 udp q=500 2000|"
		  "sip:alice@a.test sip:alice@192.0.2.8 192.0.2.7:5062 udp q=1000 2500|");
	/* The expired row was deleted by the load. */
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(ro, 0, binding_cb, &s), 0);
	CHECK_INT(s.n, 2);
	store_close(ro);

	/* Deleting after a flush, and the data surviving a reopen. */
	CHECK_INT(store_binding_del(st, STR("sip:alice@a.test"), STR("sip:alice@192.0.2.7:5062")), 0);
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_flush(st), 0);   /* nothing queued */
	store_close(st);
	st = open_db(t.path, false, 0, 0);
	s = (struct seen){ .len = 0 };
	CHECK_INT(store_bindings_load(st, 1000, binding_cb, &s), 0);
	CHECK_INT(s.n, 1);
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
		.id = STR("c1"), .call_id = STR("x1@h"), .caller = STR("alice@a.test"),
		.callee = STR("bob@a.test"), .start_ms = 1000,
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
	c = (struct store_call){ .id = STR("c2"), .call_id = STR("x2@h"), .caller = STR("bob@a.test"),
				 .callee = STR("carol@a.test"), .start_ms = 3000, .end_ms = 3500,
				 .status = 486, .reason = STR("busy") };
	CHECK_INT(store_call_put(st, &c), 0);
	c = (struct store_call){ .id = STR("c3"), .call_id = STR("x3@h"), .caller = STR("carol@a.test"),
				 .callee = STR("alice@a.test"), .start_ms = 2000, .end_ms = 2500,
				 .status = 487, .reason = STR("cancelled") };
	CHECK_INT(store_call_put(st, &c), 0);
	c.id = STR_NULL;
	CHECK_INT(store_call_put(st, &c), -EINVAL);
	CHECK_INT(store_flush(st), 0);

	CHECK_INT(store_calls_list(st, 0, call_cb, &s), 0);
	CHECK_STR(str_from_cstr(s.buf),
		  "c2 bob@a.test>carol@a.test 486 busy 0|"
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

static const struct unit_case cases[] = {
	{ "users", t_users },
	{ "import", t_import },
	{ "bindings", t_bindings },
	{ "calls", t_calls },
	{ "flush_locked", t_flush_locked },
	{ "queue_bound", t_queue_bound },
	{ "open_errors", t_open_errors },
};
UNIT_MAIN(cases)
