/* store_be.h: the interface between the generic store (queue, users) and its back ends. */
#ifndef PARLEY_STORE_BE_H
#define PARLEY_STORE_BE_H

#include <stdarg.h>
#include <stdint.h>

#include "store/store.h"

/* A seeded 128-bit digest of a binding's key (aor, contact; or aor, instance, reg-id) or of a call record's id, made
 * by store__digest(). Equal keys give equal digests within one open store; the seed is
 * random per store_open(), so digests are never written to disk, and a peer that chooses
 * its contact URIs cannot aim for a collision. Two distinct keys share a digest with
 * probability about 2^-128. */
struct store__kd {
	uint64_t a, b;
};

/* A back end implements rows and transactions; store.c does the rest (hashing passwords,
 * parsing import files, queueing and coalescing writes). Every operation returns 0 or a
 * negative errno after setting the message with store__err(). */
struct store_ops {
	const char *name;
	int (*open)(struct store *st, const struct store_conf *conf);
	void (*close)(struct store *st);
	int (*begin)(struct store *st);
	int (*commit)(struct store *st);
	void (*rollback)(struct store *st);

	int (*user_insert)(struct store *st, const struct store_user *u); /* -EEXIST */
	int (*user_update)(struct store *st, const struct store_user *u); /* -ENOENT */
	int (*user_upsert)(struct store *st, const struct store_user *u);
	int (*user_delete)(struct store *st, struct str user, struct str domain); /* -ENOENT */
	int (*user_get)(struct store *st, struct store_user *u);                  /* u->user, u->domain set */
	int (*user_list)(struct store *st, store_user_h *cb, void *arg);

	/* Between begin and commit, binding_write may keep b (and its views) without writing
	 * it, to write several rows in one statement; commit writes what is kept first. The
	 * caller keeps b alive until commit or rollback returns. kd is the digest of the key.
	 * store_flush() passes each key at most once per transaction. */
	int (*binding_write)(struct store *st, const struct store_binding *b, struct store__kd kd);
	int (*binding_delete)(struct store *st, struct str aor, struct str contact, struct store__kd kd);
	int (*bindings_load)(struct store *st, int64_t now, store_binding_h *cb, void *arg);

	int (*call_write)(struct store *st, const struct store_call *c);
	int (*calls_list)(struct store *st, unsigned limit, store_call_h *cb, void *arg);
	int (*calls_prune)(struct store *st, uint64_t before_ms);
	int (*calls_query)(struct store *st, const struct store_call_filter *f, unsigned limit, unsigned offset,
			   uint64_t *total, bool *partial, store_call_h *cb, void *arg);

	int (*ban_write)(struct store *st, const struct store_ban *b);
	int (*ban_delete)(struct store *st, struct str source); /* -ENOENT */
	int (*bans_list)(struct store *st, int64_t now, store_ban_h *cb, void *arg);
	int (*bans_prune)(struct store *st, int64_t now);

	/* The generation of the last journal applied (0: none), kept in the database so
	 * that a journal applied just before a crash, but not yet truncated, is not applied
	 * a second time over newer rows. Set within the transaction that applies it. */
	int (*journal_gen_get)(struct store *st, uint64_t *gen /* OUT */);
	int (*journal_gen_set)(struct store *st, uint64_t gen);

	/* Admin accounts, written at once (not queued). admin_write inserts (-EEXIST) or
	 * updates the password hash (-ENOENT); admin_delete takes the tokens too. */
	int (*admin_write)(struct store *st, const struct store_admin *a, bool insert);
	int (*admin_delete)(struct store *st, struct str name);                            /* -ENOENT */
	int (*admin_get)(struct store *st, struct str name, store_admin_h *cb, void *arg); /* -ENOENT */
	int (*admin_list)(struct store *st, store_admin_h *cb, void *arg);
	int (*token_insert)(struct store *st, const struct store_token *t);
	int (*tokens_list)(struct store *st, store_token_h *cb, void *arg);
};

extern const struct store_ops store__sqlite_ops;

struct store__qent;
struct store__chunk;
struct store__writer;

/* A queue of changes, in arrival order; index finds an entry by key to coalesce. The
 * server's store has up to three: the loop fills one, hands it to the writer thread (which
 * merges it into the one it writes), and store_open's journal replay fills one. */
struct store__queue {
	struct store__qent **q;
	size_t nq, capq;
	size_t qbytes;   /* bytes of the live entries */
	uint32_t *index; /* entry position + 1, 0 for empty; open addressing */
	size_t nindex;   /* a power of two, at least twice nq */
	/* The entries live in chunks that a flush empties at once. An entry replaced by a
	 * later change to the same key stays in its chunk as dead bytes until then. */
	struct store__chunk *chunks; /* the chunk being filled first */
	size_t abytes;               /* bytes taken in the chunks, dead entries included */
	uint64_t oldest_ms;          /* monotonic ms when its first entry came; 0 if empty */
};

struct store {
	const struct store_ops *ops;
	void *be; /* the back end's own state */
	char path[512];
	bool readonly;
	unsigned busy_ms;
	char err[768];      /* the last failure, for store_errmsg() */
	uint64_t seed[2];   /* of store__digest(), random per open */
	bool ids_elsewhere; /* bindings are written on another connection (the
			     * writer's): this one keeps no map of their row ids */
	int lock_fd;        /* DB.lock held with flock, or -1 */

	struct store__queue wq;          /* write-behind queue of this thread's changes */
	size_t qmax;                     /* bound of wq's live bytes */
	struct store__writer *w;         /* the writer thread (conf.writer), or NULL */
	struct store_flush_stats fstats; /* the writer's figures, copied under its lock */
};

/* Sets the message (printf-style) and returns err, for "return store__err(...)". */
int store__err(struct store *st, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The digest of a binding key: (aor, contact), or for an Outbound flow (reg_id not 0)
 * (aor, instance, reg_id), since the flows of one phone may share a contact URI and a
 * flow may come back with another. */
struct store__kd store__digest(const struct store *st, struct str aor, struct str contact, struct str instance,
			       uint32_t reg_id);

/* ---- between store.c, writer.c and journal.c ---- */

enum store__qkind {
	Q_BINDING_PUT,
	Q_BINDING_DEL,
	Q_CALL,
	Q_BAN_PUT,
	Q_BAN_DEL,
	Q_CALLS_PRUNE,
	Q_BANS_PRUNE,
};

/* One queued change. Its views point into data[], which holds every string of the row. */
struct store__qent {
	enum store__qkind kind;
	struct store__kd kd; /* digest of the key (aor, contact), call id or source */
	size_t size;         /* bytes taken in its chunk */
	union {
		struct store_binding b;
		struct store_call c;
		struct store_ban ban;
		int64_t before; /* Q_*_PRUNE: ms for calls, s for bans */
	} u;
	_Alignas(max_align_t) char data[];
};

/* Queues a copy of e (which may live anywhere) on q, replacing a queued change of the
 * same key. bounded: refuse (-ENOBUFS) beyond st->qmax; the writer's own queues are not
 * bounded, since what reaches them was accepted already. */
int store__requeue(struct store *st, struct store__queue *q, const struct store__qent *e, bool bounded);
/* Queues a change built from its parts (views copied), as store_binding_put etc. do. */
int store__queue_binding(struct store *st, struct store__queue *q, enum store__qkind kind,
			 const struct store_binding *b, bool bounded);
int store__queue_call(struct store *st, struct store__queue *q, const struct store_call *c, bool bounded);
int store__queue_ban(struct store *st, struct store__queue *q, enum store__qkind kind, const struct store_ban *b,
		     bool bounded);
int store__queue_prune(struct store *st, struct store__queue *q, enum store__qkind kind, int64_t before, bool bounded);
/* Writes every change of q in one transaction through st's connection; q is emptied on
 * success and kept on failure. When gen is not 0, the transaction also records that the
 * journal of that generation is applied. */
int store__write(struct store *st, struct store__queue *q, uint64_t gen);
void store__queue_clear(struct store__queue *q);
void store__queue_free(struct store__queue *q);
/* Moves every entry of from (emptied) into to, as if queued there after to's entries. */
int store__queue_merge(struct store *st, struct store__queue *to, struct store__queue *from);
uint64_t store__now_ms(void);

/* writer.c: the thread that writes the queue behind the event loop (conf.writer). */
int store__writer_start(struct store *st, const struct store_conf *conf);
void store__writer_stop(struct store *st);
int store__writer_flush(struct store *st);
int store__writer_sync(struct store *st);
size_t store__writer_pending(const struct store *st);

/* journal.c: DB.journal, the file that keeps queued changes while the database cannot be
 * written. A journal is a header (magic, generation) and records (length, CRC-32C,
 * payload); reading stops at the first record that is cut short or does not match its
 * checksum, which is what a crash during an append leaves. */
struct store__journal {
	char path[530];
	int fd;        /* open for append, or -1 */
	uint64_t gen;  /* of the file's header; 0 when there is no file */
	uint64_t size; /* bytes in the file */
	bool stale;    /* applied, but could not be emptied: no appends */
	uint32_t crc_table[256];
};
void store__journal_init(struct store__journal *j, const char *db_path);
/* Appends every entry of q and syncs the file; on failure the file is cut back to what
 * it was and the message set on st. */
int store__journal_append(struct store *st, struct store__journal *j, const struct store__queue *q);
/* Reads the journal (if any) into q (coalescing). *torn: whether a torn or corrupt tail
 * was skipped. */
int store__journal_read(struct store *st, struct store__journal *j, struct store__queue *q, bool *torn /* OUT */);
/* Empties the file after its changes are in the database (unlink: remove it). */
int store__journal_reset(struct store *st, struct store__journal *j, bool unlink_it);
void store__journal_close(struct store__journal *j);

#endif
