/* writer.c: the thread that writes the queue behind the event loop, on a connection of its own. */
#include "store/store_be.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

/* How long the thread waits before trying a failed write again when nothing new comes. */
#define RETRY_MS 200
#define JOURNAL_MS_DEFAULT 1000

/* The loop and the thread share inbox and the reports, under mu; each holds mu only to
 * swap a queue or copy a few fields, so that the loop never waits for the database. */
struct store__writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* to the thread: changes, a sync or the stop */
	pthread_cond_t done; /* to store_sync(): an attempt has ended */

	/* under mu */
	struct store__queue inbox; /* handed over by the loop, not yet taken */
	size_t held;               /* changes the thread holds (back), for store_queue_len */
	bool busy;                 /* the thread is writing */
	bool journal_holds;        /* the journal has changes the database has not */
	bool stop;
	unsigned sync_req, sync_done; /* store_sync() asks; the thread answers */
	int sync_err;
	bool news;                   /* an attempt has ended since store_flush() last looked */
	int last;                    /* its result */
	struct store_flush_stats fs; /* what the attempts took (the loop copies it) */
	char msg[sizeof(((struct store *)0)->err)];

	/* the thread's own */
	struct store *ws;          /* its connection, map of binding ids and messages */
	struct store__queue back;  /* changes taken and not written, oldest first */
	struct store__queue spare; /* the inbox just taken, being merged into back */
	struct store__journal j;
	unsigned journal_ms;
};

/* ---- the thread ------------------------------------------------------------------------- */

/* Writes the journal's changes and then back in one transaction: the journal holds the
 * older ones, so on failure both are kept as they are, and on success the journal is
 * emptied. */
static int write_with_journal(struct store__writer *w)
{
	struct store *ws = w->ws;
	struct store__queue jq = { 0 };
	bool torn;
	int err;

	/* Taking the write lock first spares reading a big journal on every retry while
	 * another process holds the database. */
	err = ws->ops->begin(ws);
	ws->ops->rollback(ws);
	if (!err)
		err = store__journal_read(ws, &w->j, &jq, &torn);
	if (!err && w->j.gen) {
		/* Applied already, should emptying it have failed: its rows are older than
		 * the database's, and must not be written over them. */
		uint64_t applied = 0;
		err = ws->ops->journal_gen_get(ws, &applied);
		if (!err && applied == w->j.gen)
			store__queue_clear(&jq);
	}
	for (size_t i = 0; !err && i < w->back.nq; i++)
		err = store__requeue(ws, &jq, w->back.q[i], false);
	if (!err)
		err = store__write(ws, &jq, w->j.gen);
	store__queue_free(&jq);
	if (err)
		return err;
	store__queue_clear(&w->back);
	/* Should emptying it fail, the database knows the generation it applied, and the
	 * journal refuses appends (the changes then stay in memory). */
	store__journal_reset(ws, &w->j, false);
	return 0;
}

/* One attempt at writing what the thread holds; on failure, moves it to the journal when
 * it has waited journal_ms (or at once for a sync), and sets w->ws's message. */
static int attempt(struct store__writer *w, bool journal_holds, bool sync)
{
	struct store *ws = w->ws;
	char why[sizeof(ws->err)];
	size_t n;
	int err, jerr;

	err = journal_holds ? write_with_journal(w) : store__write(ws, &w->back, 0);
	if (!err || w->back.nq == 0)
		return err;
	if (!sync && store__now_ms() - w->back.oldest_ms < w->journal_ms)
		return err;
	snprintf(why, sizeof(why), "%s", ws->err);
	n = w->back.nq;
	jerr = store__journal_append(ws, &w->j, &w->back);
	if (jerr) {
		char jwhy[sizeof(ws->err)];
		snprintf(jwhy, sizeof(jwhy), "%s", ws->err);
		store__err(ws, err, "%.300s; the journal cannot be written either (%.300s): %zu changes kept in memory",
			   why, jwhy, n);
		return err;
	}
	store__queue_clear(&w->back);
	store__err(ws, err, "%.500s; %zu changes saved in journal %.200s", why, n, w->j.path);
	return err;
}

static void deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *run(void *arg)
{
	struct store__writer *w = arg;
	bool failing = false;

	pthread_setname_np(pthread_self(), "parley-store"); /* for top -H and gdb */
	pthread_mutex_lock(&w->mu);
	for (;;) {
		unsigned want;
		bool jh;
		int err;

		while (!w->stop && w->inbox.nq == 0 && w->sync_req == w->sync_done) {
			if (failing || w->back.nq || w->spare.nq) {
				struct timespec ts;
				deadline(&ts, RETRY_MS);
				if (pthread_cond_timedwait(&w->wake, &w->mu, &ts) == ETIMEDOUT)
					break;
			} else {
				pthread_cond_wait(&w->wake, &w->mu);
			}
		}
		if (w->stop)
			break;
		/* Take the inbox (unless the last one is still being merged after a failure). */
		if (w->spare.nq == 0) {
			struct store__queue t = w->spare;
			w->spare = w->inbox;
			w->inbox = t;
		}
		want = w->sync_req;
		jh = w->journal_holds;
		w->busy = true;
		w->held = w->back.nq + w->spare.nq;
		pthread_mutex_unlock(&w->mu);

		uint64_t t0 = clock_mono_us();
		err = store__queue_merge(w->ws, &w->back, &w->spare);
		if (!err)
			err = attempt(w, jh, want != w->sync_done);
		else
			store__err(w->ws, err, "out of memory taking changes to write: %zu kept", w->spare.nq);
		failing = err != 0;
		uint64_t took = clock_mono_us() - t0;

		pthread_mutex_lock(&w->mu);
		w->fs.attempts++;
		w->fs.failures += err != 0;
		w->fs.busy_us += took;
		w->fs.last_us = took;
		w->busy = false;
		w->held = w->back.nq + w->spare.nq;
		w->journal_holds = w->j.size > 0;
		w->news = true;
		w->last = err;
		if (err)
			snprintf(w->msg, sizeof(w->msg), "%s", w->ws->err);
		if (want != w->sync_done) {
			w->sync_done = want;
			w->sync_err = err;
		}
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- the loop's side ------------------------------------------------------------------- */

static void lock(const struct store *st)
{
	pthread_mutex_lock(&st->w->mu);
}

static void unlock(const struct store *st)
{
	pthread_mutex_unlock(&st->w->mu);
}

/* Hands the loop's queue over if the inbox is free; under mu. */
static void hand_over(struct store *st)
{
	struct store__writer *w = st->w;

	if (st->wq.nq && w->inbox.nq == 0) {
		struct store__queue t = w->inbox;
		w->inbox = st->wq;
		st->wq = t;
		pthread_cond_signal(&w->wake);
	}
}

int store__writer_flush(struct store *st)
{
	struct store__writer *w = st->w;
	bool news, waiting;
	int last;

	lock(st);
	hand_over(st);
	news = w->news;
	last = w->last;
	w->news = false;
	st->fstats = w->fs;
	if (news && last)
		snprintf(st->err, sizeof(st->err), "%s", w->msg);
	waiting = st->wq.nq || w->inbox.nq || w->held || w->busy || w->journal_holds;
	unlock(st);
	if (news)
		return last;
	return waiting ? STORE_PENDING : 0;
}

int store__writer_sync(struct store *st)
{
	struct store__writer *w = st->w;
	int err;

	lock(st);
	/* The inbox may still hold the last hand-over: wait for the thread to take it. */
	while (st->wq.nq) {
		while (w->inbox.nq)
			pthread_cond_wait(&w->done, &w->mu);
		hand_over(st);
	}
	unsigned want = ++w->sync_req;
	pthread_cond_signal(&w->wake);
	while (w->sync_done != want)
		pthread_cond_wait(&w->done, &w->mu);
	err = w->sync_err;
	if (err)
		snprintf(st->err, sizeof(st->err), "%s", w->msg);
	w->news = false;
	unlock(st);
	return err;
}

size_t store__writer_pending(const struct store *st)
{
	size_t n;

	lock(st);
	n = st->w->inbox.nq + st->w->held;
	unlock(st);
	return n;
}

/* Applies a journal left by a crash (or by a stop while the database could not be written)
 * before anything else reads the database, so that the server loads what it had. */
static int replay(struct store__writer *w, struct store *st)
{
	struct store *ws = w->ws;
	uint64_t applied = 0;
	bool torn;
	int err = store__journal_read(ws, &w->j, &w->back, &torn);

	if (!err && w->j.gen)
		err = ws->ops->journal_gen_get(ws, &applied);
	if (!err && w->j.gen && applied == w->j.gen)
		store__queue_clear(&w->back); /* applied just before a crash: not again */
	else if (!err && w->j.gen)
		err = store__write(ws, &w->back, w->j.gen);
	if (!err)
		err = store__journal_reset(ws, &w->j, true);
	if (err)
		return store__err(st, err, "cannot apply journal %s: %s", w->j.path, ws->err);
	return 0;
}

static void writer_free(struct store__writer *w)
{
	store__queue_free(&w->inbox);
	store__queue_free(&w->back);
	store__queue_free(&w->spare);
	store__journal_close(&w->j);
	if (w->ws) {
		if (w->ws->ops)
			w->ws->ops->close(w->ws);
		store__queue_free(&w->ws->wq);
		free(w->ws);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->done);
	free(w);
}

int store__writer_start(struct store *st, const struct store_conf *conf)
{
	struct store__writer *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	int err;

	if (!w)
		return store__err(st, -ENOMEM, "out of memory starting the database writer");
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_cond_init(&w->done, &ca);
	pthread_condattr_destroy(&ca);
	w->journal_ms = conf->journal_ms ? conf->journal_ms : JOURNAL_MS_DEFAULT;
	store__journal_init(&w->j, st->path);

	/* The thread's own store: the same file and digest seed (keys are hashed by the loop
	 * and looked up in the thread's map of row ids), its own connection and messages. */
	w->ws = calloc(1, sizeof(*w->ws));
	if (!w->ws) {
		writer_free(w);
		return store__err(st, -ENOMEM, "out of memory starting the database writer");
	}
	memcpy(w->ws->path, st->path, sizeof(st->path));
	memcpy(w->ws->seed, st->seed, sizeof(st->seed));
	w->ws->busy_ms = st->busy_ms;
	w->ws->qmax = st->qmax;
	w->ws->lock_fd = -1;
	w->ws->ops = st->ops;
	err = w->ws->ops->open(w->ws, conf);
	if (err) {
		store__err(st, err, "%s", w->ws->err);
		writer_free(w);
		return err;
	}
	err = replay(w, st);
	if (err) {
		writer_free(w);
		return err;
	}
	err = pthread_create(&w->thread, NULL, run, w);
	if (err) {
		writer_free(w);
		return store__err(st, -err, "cannot start the database writer thread: %s", strerror(err));
	}
	st->w = w;
	return 0;
}

void store__writer_stop(struct store *st)
{
	struct store__writer *w = st->w;

	if (!w)
		return;
	lock(st);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	unlock(st);
	pthread_join(w->thread, NULL);
	st->w = NULL;
	writer_free(w);
}
