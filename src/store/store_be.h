/* store_be.h: the interface between the generic store (queue, users) and its back ends. */
#ifndef PARLEY_STORE_BE_H
#define PARLEY_STORE_BE_H

#include <stdarg.h>

#include "store/store.h"

/* A seeded 128-bit digest of a binding's key (aor, contact) or of a call record's id, made
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

	int (*user_insert)(struct store *st, const struct store_user *u);   /* -EEXIST */
	int (*user_update)(struct store *st, const struct store_user *u);   /* -ENOENT */
	int (*user_upsert)(struct store *st, const struct store_user *u);
	int (*user_delete)(struct store *st, struct str user, struct str domain); /* -ENOENT */
	int (*user_get)(struct store *st, struct store_user *u);  /* u->user, u->domain set */
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
};

extern const struct store_ops store__sqlite_ops;

struct store__qent;
struct store__chunk;

struct store {
	const struct store_ops *ops;
	void *be;                      /* the back end's own state */
	char path[512];
	bool readonly;
	unsigned busy_ms;
	char err[768];                 /* the last failure, for store_errmsg() */
	uint64_t seed[2];              /* of store__digest(), random per open */

	/* write-behind queue, in arrival order; index finds an entry by key to coalesce */
	struct store__qent **q;
	size_t nq, capq;
	size_t qbytes, qmax;           /* bytes of the live entries, and their bound */
	uint32_t *index;               /* entry position + 1, 0 for empty; open addressing */
	size_t nindex;                 /* a power of two, at least twice nq */
	/* The entries live in chunks that a flush empties at once. An entry replaced by a
	 * later change to the same key stays in its chunk as dead bytes until then. */
	struct store__chunk *chunks;   /* the chunk being filled first */
	size_t abytes;                 /* bytes taken in the chunks, dead entries included */
};

/* Sets the message (printf-style) and returns err, for "return store__err(...)". */
int store__err(struct store *st, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The digest of a binding key (aor, contact). */
struct store__kd store__digest(const struct store *st, struct str aor, struct str contact);

#endif
