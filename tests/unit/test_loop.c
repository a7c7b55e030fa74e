/* test_loop.c: unit tests of the event loop's end-of-turn jobs (loop_defer, loop_cancel). */
#include "unit.h"

#include <unistd.h>

#include "core/loop.h"

/* What ran, in order: one letter per job or handler. */
struct trace {
	struct loop *l;
	char seen[32];
	int n;
	struct loop_job a, b, c, d;
	bool stop_in_a; /* job a stops the loop */
	bool a_defers_d;
};

static void note(struct trace *t, char c)
{
	if (t->n < (int)sizeof t->seen - 1)
		t->seen[t->n++] = c;
}

static void job_d(void *arg)
{
	note(arg, 'd');
}

static void job_a(void *arg)
{
	struct trace *t = arg;
	note(t, 'a');
	if (t->a_defers_d) /* deferred while the jobs run: runs in the same turn */
		loop_defer(t->l, &t->d, job_d, t);
	if (t->stop_in_a)
		loop_stop(t->l);
}

static void job_b(void *arg)
{
	note(arg, 'b');
}

static void job_c(void *arg)
{
	note(arg, 'c');
}

/* Jobs deferred before the loop runs go first, in order, once each; a cancelled one never
 * runs, wherever it was on the list. */
static void t_order_and_cancel(void)
{
	struct trace t = { .stop_in_a = true, .a_defers_d = true };
	CHECK_INT(loop_new(&t.l), 0);
	loop_defer(t.l, &t.a, job_a, &t);
	loop_defer(t.l, &t.b, job_b, &t);
	loop_defer(t.l, &t.a, job_a, &t); /* already due: stays where it is */
	loop_defer(t.l, &t.c, job_c, &t);
	loop_cancel(t.l, &t.b); /* from the middle */
	loop_cancel(t.l, &t.b); /* harmless when not due */
	CHECK_INT(loop_run(t.l), 0);
	t.seen[t.n] = '\0';
	CHECK_STR(str_from_cstr(t.seen), "acd");

	/* Cancelling the last one: the next deferred goes after the one before it. */
	t = (struct trace){ .l = t.l, .stop_in_a = false };
	loop_defer(t.l, &t.b, job_b, &t);
	loop_defer(t.l, &t.c, job_c, &t);
	loop_cancel(t.l, &t.c);
	loop_defer(t.l, &t.d, job_d, &t);
	t.stop_in_a = true;
	loop_defer(t.l, &t.a, job_a, &t);
	CHECK_INT(loop_run(t.l), 0);
	t.seen[t.n] = '\0';
	CHECK_STR(str_from_cstr(t.seen), "bda");
	loop_free(t.l);
}

struct turn {
	struct trace t;
	int rfd;
};

static void on_readable(int fd, uint32_t events, void *arg)
{
	(void)events;
	struct turn *u = arg;
	char b;
	CHECK_INT(read(fd, &b, 1), 1);
	note(&u->t, 'h');
	loop_defer(u->t.l, &u->t.a, job_a, &u->t);
	/* The handler stops the loop: what it deferred still runs at the end of this turn. */
	loop_stop(u->t.l);
}

/* A job deferred by an fd handler runs after it, in the same turn. */
static void t_end_of_turn(void)
{
	struct turn u = { 0 };
	int p[2];
	CHECK_INT(pipe(p), 0);
	CHECK_INT(loop_new(&u.t.l), 0);
	CHECK_INT(loop_add_fd(u.t.l, p[0], EPOLLIN, on_readable, &u), 0);
	CHECK_INT(write(p[1], "x", 1), 1);
	CHECK_INT(loop_run(u.t.l), 0);
	u.t.seen[u.t.n] = '\0';
	CHECK_STR(str_from_cstr(u.t.seen), "ha");
	loop_del_fd(u.t.l, p[0]);
	loop_free(u.t.l);
	close(p[0]);
	close(p[1]);
}

static const struct unit_case cases[] = {
	{ "order_and_cancel", t_order_and_cancel },
	{ "end_of_turn", t_end_of_turn },
};
UNIT_MAIN(cases)
