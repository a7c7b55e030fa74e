/* store.h: durable users, bindings and call records behind a swappable back end (SQLite now). */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* Every function returns 0 on success or a negative errno; after a failure store_errmsg()
 * says what failed in words a person can act on. The codes callers may want to tell apart:
 *   -ENOENT  no such user (or no database file, for a read-only open)
 *   -EEXIST  the user already exists (store_user_add)
 *   -EINVAL  bad input (an empty user or domain, a bad line of an import file)
 *   -EBUSY   the database is locked by another process (after the busy timeout)
 *   -ENOSPC  the disk is full
 *   -EROFS   the database is not writable
 *   -ENOBUFS the write-behind queue is full (the change was not queued)
 *   -EIO     anything else the database reports (corrupt file, I/O error) */

/* store_flush() of a store with a writer thread: changes wait, and no attempt to write
 * them has ended since the last call. */
#define STORE_PENDING 1

struct store;

struct store_conf {
	const char *backend; /* "sqlite"; NULL means sqlite */
	const char *path;    /* the database file */
	bool readonly;       /* readers such as `parley reg list`: no schema change, no write */
	unsigned busy_ms;    /* how long to wait for another process's lock; 0: 2000 */
	size_t queue_max;    /* bytes of queued changes allowed; 0: 64 MiB (while
			      * flushes fail, changes replaced by later ones may
			      * hold up to half as much again until dropped) */
	/* For `parley serve`, the one process that writes the database: */
	bool lock;           /* hold PATH.lock (flock, with our PID in it): a second
			      * store_open with lock fails with -EBUSY naming the
			      * PID; readers and short writers (`parley user`) do
			      * not take it */
	bool writer;         /* write behind on a thread with its own connection:
			      * store_flush() hands the queue over and never waits
			      * for the database; changes unwritten for journal_ms go
			      * to PATH.journal; a journal left by a crash is applied
			      * by store_open */
	unsigned journal_ms; /* with writer: 0 means 1000 */
};

/* Opens (creating and migrating the schema unless readonly) the store described by conf.
 * On failure *stp is still set, so that store_errmsg() can say why; close it afterwards. */
int store_open(struct store **stp, const struct store_conf *conf);
/* The PID of the `parley serve` holding the database at path (from PATH.lock, which it
 * holds while it runs), for `parley reload`. Returns 0, or -ESRCH when no server runs on
 * it (another negative errno when the lock file cannot be read), with err saying so. */
int store_server_pid(const char *path, long *pid, char *err, size_t errlen);
/* Closes the store without flushing: call store_flush() (store_sync() with a writer
 * thread) first to keep queued changes. Releases PATH.lock. */
void store_close(struct store *st);
/* The message of the last failure ("database parley.db is locked by another process"). */
const char *store_errmsg(const struct store *st);

/* ---- users ------------------------------------------------------------------------------
 * A user is kept as HA1 hashes only: H(user:realm:password) for MD5 and SHA-256, lowercase
 * hex. The store never sees a password and does not
 * hash: the caller computes the HA1 values (auth_ha1 of auth/auth.h) and hands them in.
 * Domains are case-insensitive and are stored in lowercase. The realm of the hashes must
 * be the configured realm, or the lowercased domain when no realm is configured, so that
 * challenges use that same string. */

#define STORE_HA1_MD5_LEN 32
#define STORE_HA1_SHA256_LEN 64

struct store_user {
	struct str user; /* views: valid during the callback only */
	struct str domain;
	char ha1_md5[STORE_HA1_MD5_LEN + 1];
	char ha1_sha256[STORE_HA1_SHA256_LEN + 1];
};

/* Adds a user with its HA1 values: ha1_md5 and ha1_sha256 are NUL-terminated lowercase hex
 * of STORE_HA1_MD5_LEN and STORE_HA1_SHA256_LEN digits (-EINVAL otherwise), stored as they
 * are. -EEXIST if user@domain is already there. */
int store_user_add(struct store *st, struct str user, struct str domain, const char *ha1_md5, const char *ha1_sha256);
/* Replaces the HA1 values (a new password), given as for store_user_add; -ENOENT if there
 * is no such user. */
int store_user_passwd(struct store *st, struct str user, struct str domain, const char *ha1_md5,
		      const char *ha1_sha256);
/* Removes a user; -ENOENT if there is no such user. */
int store_user_del(struct store *st, struct str user, struct str domain);
/* Fills out (its views are set to the arguments); -ENOENT if there is no such user. */
int store_user_get(struct store *st, struct str user, struct str domain, struct store_user *out /* OUT */);

/* Row callbacks return 0 to go on; any other value stops the walk and is returned. */
typedef int store_user_h(const struct store_user *u, void *arg);
/* Calls cb for every user, ordered by domain then user. */
int store_user_list(struct store *st, store_user_h *cb, void *arg);

/* Brackets several user changes (store_user_add, store_user_passwd, with store_user_get
 * to look first) in one transaction, for `parley user import`: nothing is written unless
 * store_commit succeeds. store_begin takes the write lock at once (-EBUSY when another
 * process holds it past the busy timeout), so what was looked at cannot change before the
 * commit. A failed store_commit has rolled back. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* ---- a read-through cache of users, for the server ------------------------------------
 * Every authentication needs the user's HA1; the cache keeps the answers (also "no such
 * user") for ttl seconds, so a flood of requests does not become a flood of queries. It is
 * direct-mapped with a fixed number of slots: memory stays the same however many users
 * there are. Changes made with `parley user` reach a running server within ttl seconds. */

struct store_ucache;

int store_ucache_new(struct store_ucache **cp, struct store *st, unsigned slots, unsigned ttl_s);
void store_ucache_free(struct store_ucache *c);
/* As store_user_get, answered from the cache while fresh. now: unix seconds. */
int store_ucache_get(struct store_ucache *c, struct str user, struct str domain, uint32_t now,
		     struct store_user *out /* OUT */);

/* Forgets what the cache knows of user@domain (added, changed or removed just now), so
 * that the next look-up asks the store. */
void store_ucache_forget(struct store_ucache *c, struct str user, struct str domain);

/* ---- bindings (written behind the registrar's in-memory location table) ------------- */

struct store_binding {
	struct str aor;      /* "alice@example.com": user@domain, domain lower-case, no scheme */
	struct str contact;  /* the Contact URI */
	struct str src_addr; /* source address of the REGISTER, text ("192.0.2.1", "::1") */
	uint16_t src_port;
	struct str transport; /* "udp", "tcp", ... */
	struct str path;      /* Path header values, comma-separated; may be empty */
	struct str call_id;
	uint32_t cseq;
	uint16_t q;         /* q-value in thousandths: 1000 is q=1.0 */
	int64_t expires_at; /* unix seconds */
	struct str user_agent;
	struct str instance; /* +sip.instance, may be empty */
	uint32_t reg_id;     /* reg-id (RFC 5626), 0 if none */
	struct str params;   /* contact params as the phone sent them (no expires) */
	uint8_t flags;       /* the registrar's flags for the binding (LOC_F_*) */
	uint64_t conn_id;    /* the stream connection it was made over, as the server's logs
				name it; 0: UDP, or none (gone with a restart) */
};

/* Queue a change; nothing is written until store_flush(). The views are copied, so they
 * may die once the call returns. Several changes to one binding (aor, contact; for an
 * Outbound flow, reg_id not 0: aor, instance, reg_id) coalesce to the last one. -ENOBUFS when the queue is full: the change is dropped (the in-memory table
 * stays right, and the next refresh of the binding queues it again). */
int store_binding_put(struct store *st, const struct store_binding *b);
int store_binding_del(struct store *st, struct str aor, struct str contact);
/* Deletes an Outbound flow (RFC 5626), keyed by (aor, instance, reg_id); reg_id 0: the
 * same as store_binding_del. */
int store_flow_del(struct store *st, struct str aor, struct str contact, struct str instance, uint32_t reg_id);

/* Calls cb for every binding that has not expired at now (unix s), its views valid during
 * the call only. Unless the store is read-only, deletes expired rows first. Reads what has
 * been flushed, not what is queued. A read-only store (`parley reg list`) gives the
 * bindings ordered by aor, then contact; a writable one (the server's reload) in the order
 * they were first written, which costs no sort. */
typedef int store_binding_h(const struct store_binding *b, void *arg);
int store_bindings_load(struct store *st, int64_t now, store_binding_h *cb, void *arg);

/* ---- call records ------------------------------------------------------------------- */

struct store_call {
	struct str id; /* record key chosen by the caller, unique per call:
			* call_id ";" anything (the router's: Call-ID ";" From
			* tag ";" CSeq): a search by Call-ID reads that range of
			* ids; a later put with the same id updates the record */
	struct str call_id;
	struct str caller; /* "alice@example.com" */
	struct str callee;
	uint64_t start_ms;    /* wall clock, ms since the epoch */
	uint64_t answer_ms;   /* 0: not answered */
	uint64_t end_ms;      /* 0: not ended */
	unsigned status;      /* final SIP status (200, 486, 487, ...); 0: in progress */
	struct str reason;    /* result in a word or two: "answered", "busy", "cancelled" */
	uint64_t duration_ms; /* answer to end; 0 if not answered */
	struct str media;     /* "direct", "relay udp:HOST:PORT[, figures]"; empty: not known
			       * (a later put with an empty media keeps the stored one) */
};

/* Queue an insert-or-update by id, written by store_flush(); -ENOBUFS as for bindings. */
int store_call_put(struct store *st, const struct store_call *c);
/* Calls cb for at most limit records (0: all), newest start first. */
typedef int store_call_h(const struct store_call *c, void *arg);
int store_calls_list(struct store *st, unsigned limit, store_call_h *cb, void *arg);
/* What store_calls_query picks; an empty view matches every record. */
struct store_call_filter {
	struct str user;    /* caller or callee is it ("alice@a.test"), or its user part is ("alice") */
	struct str call_id; /* exactly this Call-ID */
	struct str result;  /* exactly this result word ("answered", "busy", ...) */
};
#define STORE_CALLS_COUNT_MAX 10000
/* Thousands of SQLite steps a search may take: its count (5 steps a record, 30 ns each
 * here), then its page (7 steps a record read by the start-time index, 90 ns each): about
 * 50 ms of the server's loop each, some 300,000 and 85,000 records for a user that matches
 * none. Steps, not time, so that where a search stops does not depend on the machine's
 * load. Searches by Call-ID read only their own records. */
#define STORE_CALLS_COUNT_BUDGET 1500
#define STORE_CALLS_PAGE_BUDGET 600
/* Counts the records f picks into *total, then calls cb for at most limit of them (0: all)
 * after skipping offset, newest start first. Reads what has been written. The count stops
 * at STORE_CALLS_COUNT_MAX + 1: that many means "more than STORE_CALLS_COUNT_MAX". A search
 * that reads more than its budget stops there: *partial (may be NULL) is then true, the
 * records given are the newest that match, and *total counts what was found. */
int store_calls_query(struct store *st, const struct store_call_filter *f, unsigned limit, unsigned offset,
		      uint64_t *total /* OUT */, bool *partial /* OUT */, store_call_h *cb, void *arg);

/* Queues (writer thread) or runs at once (otherwise) the deletion of every call record
 * that started before before_unix (unix seconds), for the cdr-retention setting. */
int store_cdr_prune(struct store *st, int64_t before_unix);

/* ---- bans: sources (IP addresses as text) refused for failed authentication ----------- */

struct store_ban {
	struct str source; /* "192.0.2.7", "2001:db8::1" */
	int64_t until;     /* unix seconds: the ban ends then */
	struct str reason; /* "12 failed authentications in 60 s" */
	int64_t created;   /* unix seconds */
};

/* With a writer thread, put, del and prune are queued like bindings (and del cannot tell
 * whether there was such a ban: it returns 0); otherwise they are written at once.
 * store_ban_put inserts or replaces the ban of b->source; store_ban_del returns -ENOENT
 * when there is no ban of source; store_bans_prune deletes the bans ended at now. */
int store_ban_put(struct store *st, const struct store_ban *b);
int store_ban_del(struct store *st, struct str source);
int store_bans_prune(struct store *st, int64_t now);
/* Calls cb for every ban still running at now (unix s; 0: every ban), by source. Reads
 * what has been written, not what is queued. */
typedef int store_ban_h(const struct store_ban *b, void *arg);
int store_bans_list(struct store *st, int64_t now, store_ban_h *cb, void *arg);

/* ---- admin accounts of the HTTP endpoint, and their bearer tokens ---------------------
 * Written at once, not queued (they change by hand, rarely). The store keeps what it is
 * given: pwhash is a crypto_pwhash_str() string, a token's hash the lowercase hex of its
 * SHA-256; neither a password nor a token ever reaches it. Names are 1 to 64 printable
 * ASCII characters without spaces (-EINVAL otherwise). */

struct store_admin {
	struct str name;   /* views: valid during the callback only */
	struct str pwhash; /* "$argon2id$v=19$..." */
	int64_t created;   /* unix seconds */
	unsigned tokens;   /* bearer tokens it has (store_admin_list only) */
};
struct store_token {
	struct str hash; /* 64 lowercase hex digits */
	struct str name; /* the admin it belongs to */
	int64_t created; /* unix seconds */
};
typedef int store_admin_h(const struct store_admin *a, void *arg);
typedef int store_token_h(const struct store_token *t, void *arg);

#define STORE_ADMIN_NAME_MAX 64

/* -EEXIST when there is an admin of that name. */
int store_admin_add(struct store *st, struct str name, const char *pwhash, int64_t created);
/* -ENOENT when there is none. */
int store_admin_passwd(struct store *st, struct str name, const char *pwhash);
/* Removes the admin and every token of it; -ENOENT when there is none. */
int store_admin_del(struct store *st, struct str name);
/* Calls cb once with the admin's row, or returns -ENOENT. */
int store_admin_get(struct store *st, struct str name, store_admin_h *cb, void *arg);
/* Calls cb for every admin, by name. */
int store_admin_list(struct store *st, store_admin_h *cb, void *arg);
/* Adds a token of admin name (hash_hex as described above); -ENOENT without that admin. */
int store_token_add(struct store *st, struct str name, const char *hash_hex, int64_t created);
/* Calls cb for every token. */
int store_tokens_list(struct store *st, store_token_h *cb, void *arg);

/* ---- write-behind --------------------------------------------------------------------- */

/* Without a writer thread: writes every queued change in one transaction. On failure
 * (locked, disk full, ...) nothing of the batch is written, the queue is kept for the next
 * call, and the error is returned with its message; the server logs it and tries again on
 * its next tick.
 * With a writer thread (conf.writer): hands the queued changes to the thread, unless it
 * has not taken the last ones yet, and returns at once: a negative errno when an attempt
 * to write has failed since the last call (each failure is reported once, with its
 * message; nothing is dropped: the changes are retried, older ones first, and go to the
 * journal when they stay unwritten), 0 when an attempt has succeeded since the last call
 * or nothing waits, STORE_PENDING when changes wait and no attempt has ended since. */
int store_flush(struct store *st);
/* Writes everything queued and waits for it (at exit). With a writer thread, when the
 * database cannot be written, the changes go to the journal, which the next store_open
 * applies; the error is returned, its message saying whether the journal has them. */
int store_sync(struct store *st);
/* Number of changes waiting (with a writer thread: also those handed over and not yet
 * written), and the bytes this thread's queue holds. */
size_t store_queue_len(const struct store *st);
size_t store_queue_bytes(const struct store *st);
/* What the writer thread's write attempts took, as the loop last saw it (store_flush()
 * copies it over): for /metrics. All zero without a writer thread. */
struct store_flush_stats {
	uint64_t attempts; /* write attempts ended (each one transaction) */
	uint64_t failures; /* of those, failed (kept for the next attempt) */
	uint64_t busy_us;  /* time the attempts took, summed */
	uint64_t last_us;  /* time the last one took */
};
const struct store_flush_stats *store_flush_stats(const struct store *st);

/* ---- backup ------------------------------------------------------------------------------ */

/* Copies the database at path to dest while a server may be writing it (`parley backup`):
 * the copy is one consistent snapshot, taken in steps through SQLite's online backup
 * without blocking the server's writer, and appears at dest only once complete. An
 * existing dest is refused with -EEXIST unless force. Returns 0 or a negative errno with
 * err saying what failed. Changes still queued in the server's memory (at most one flush
 * interval) or waiting in PATH.journal are not in the copy. */
int store_backup(const char *path, const char *dest, bool force, char *err, size_t errlen);

#endif
