/* test_timer.c: unit tests of the timer wheel, driven by a simulated clock. */
#include "unit.h"

#include <stdlib.h>

#include "core/timer.h"

/* What the handlers saw: the order timers fired in, and at what simulated time. */
struct rec {
	struct timer_wheel *w;
	int order[64];
	uint64_t at[64];
	int n;
};

struct probe {
	struct rec *r;
	int id;
	struct timer t;
	struct timer *other; /* stopped by the handler when set */
	uint64_t again;      /* restarts itself with this delay when non-zero ... */
	int times;           /* ... this many times */
};

static void fire(void *arg)
{
	struct probe *p = arg;
	struct rec *r = p->r;
	if (r->n < 64) {
		r->order[r->n] = p->id;
		r->at[r->n] = r->w->now;
	}
	r->n++;
	if (p->other)
		timer_stop(r->w, p->other);
	if (p->again && p->times > 0) {
		p->times--;
		timer_start(r->w, &p->t, p->again, fire, p);
	}
}

static struct timer_wheel *wheel(uint64_t now)
{
	struct timer_wheel *w = malloc(sizeof(*w));
	timer_wheel_init(w, now);
	return w;
}

/* Advances in steps of 1 ms, as a busy loop would, up to 'to'. */
static void run_to(struct timer_wheel *w, uint64_t to)
{
	for (uint64_t t = w->now; t <= to; t++)
		timer_advance(w, t);
}

static void t_order(void)
{
	struct timer_wheel *w = wheel(1000);
	struct rec r = { .w = w };
	struct probe p[5] = { 0 };
	uint64_t delay[5] = { 50, 10, 30, 10, 2 };
	for (int i = 0; i < 5; i++) {
		p[i] = (struct probe){ .r = &r, .id = i };
		timer_start(w, &p[i].t, delay[i], fire, &p[i]);
	}
	CHECK_INT(w->count, 5);
	CHECK_INT(timer_next_ms(w), 2);
	run_to(w, 1100);
	CHECK_INT(r.n, 5);
	int want[5] = { 4, 1, 3, 2, 0 };
	for (int i = 0; i < 5; i++)
		CHECK_INT(r.order[i], want[i]);
	/* Fired on the millisecond, not rounded to the tick. */
	CHECK_INT(r.at[0], 1002);
	CHECK_INT(r.at[1], 1010);
	CHECK_INT(r.at[4], 1050);
	CHECK_INT(timer_next_ms(w), -1);
	CHECK_INT(w->count, 0);
	free(w);
}

/* One jump over many ticks fires everything due, in expiry order. */
static void t_jump(void)
{
	struct timer_wheel *w = wheel(0);
	struct rec r = { .w = w };
	struct probe p[3] = { { .r = &r, .id = 0 }, { .r = &r, .id = 1 }, { .r = &r, .id = 2 } };
	timer_start(w, &p[0].t, 3000, fire, &p[0]);
	timer_start(w, &p[1].t, 7, fire, &p[1]);
	timer_start(w, &p[2].t, 9000, fire, &p[2]);
	CHECK_INT(timer_advance(w, 5000), 2);
	CHECK_INT(r.order[0], 1);
	CHECK_INT(r.order[1], 0);
	CHECK_INT(timer_next_ms(w), 4000);
	CHECK_INT(timer_advance(w, 8999), 0);
	CHECK_INT(timer_next_ms(w), 1);
	CHECK_INT(timer_advance(w, 9000), 1);
	free(w);
}

static void t_stop(void)
{
	struct timer_wheel *w = wheel(0);
	struct rec r = { .w = w };
	struct probe a = { .r = &r, .id = 1 }, b = { .r = &r, .id = 2 }, c = { .r = &r, .id = 3 };
	timer_start(w, &a.t, 100, fire, &a);
	timer_start(w, &b.t, 100, fire, &b);
	timer_start(w, &c.t, 200, fire, &c);
	CHECK(timer_pending(&a.t));
	timer_stop(w, &c.t);
	timer_stop(w, &c.t); /* harmless twice */
	CHECK(!timer_pending(&c.t));
	/* a fires first and stops b, which is due in the same tick. */
	a.other = &b.t;
	run_to(w, 500);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.order[0], 1);
	CHECK_INT(w->count, 0);
	CHECK_INT(timer_next_ms(w), -1);
	/* An idle, zeroed timer can be stopped. */
	struct timer z = { 0 };
	timer_stop(w, &z);
	free(w);
}

static void t_restart(void)
{
	struct timer_wheel *w = wheel(77);
	struct rec r = { .w = w };
	/* Retransmission style: restarts itself 3 times from its own handler. */
	struct probe p = { .r = &r, .id = 7, .again = 500, .times = 3 };
	timer_start(w, &p.t, 500, fire, &p);
	run_to(w, 77 + 5000);
	CHECK_INT(r.n, 4);
	for (int i = 0; i < 4; i++)
		CHECK_INT(r.at[i], 77 + 500 * (uint64_t)(i + 1));
	/* Restarting a pending timer moves it. */
	struct probe q = { .r = &r, .id = 8 };
	timer_start(w, &q.t, 10, fire, &q);
	timer_start(w, &q.t, 1000, fire, &q);
	CHECK_INT(w->count, 1);
	CHECK_INT(timer_next_ms(w), 1000);
	free(w);
}

/* A handler that restarts itself with no delay fires once per advance, not forever. */
static void zero_again(void *arg)
{
	struct probe *p = arg;
	p->r->n++;
	timer_start(p->r->w, &p->t, 0, zero_again, p);
}

static void t_zero_delay(void)
{
	struct timer_wheel *w = wheel(10);
	struct rec r = { .w = w };
	struct probe p = { .r = &r };
	timer_start(w, &p.t, 0, zero_again, &p);
	CHECK_INT(timer_next_ms(w), 0);
	CHECK_INT(timer_advance(w, 10), 1);
	CHECK_INT(timer_advance(w, 10), 1);
	CHECK_INT(r.n, 2);
	timer_stop(w, &p.t);
	free(w);
}

static void t_long(void)
{
	uint64_t start = 123456789;
	struct timer_wheel *w = wheel(start);
	struct rec r = { .w = w };
	uint64_t hour = 3600 * 1000;
	/* Hours away: many rotations of the wheel (4096 * 4 ms is about 16 s). */
	struct probe a = { .r = &r, .id = 1 }, b = { .r = &r, .id = 2 }, c = { .r = &r, .id = 3 };
	timer_start(w, &a.t, 2 * hour, fire, &a);
	timer_start(w, &b.t, hour + 3, fire, &b);
	CHECK_INT(timer_next_ms(w), hour + 3);
	/* The same slot as b, one rotation earlier. */
	timer_start(w, &c.t, hour + 3 - TIMER_SLOTS * TIMER_TICK_MS, fire, &c);
	CHECK_INT(timer_next_ms(w), hour + 3 - TIMER_SLOTS * TIMER_TICK_MS);
	/* Advance like a loop waking for each next timer, or at least every 10 s. */
	while (w->count) {
		int64_t next = timer_next_ms(w);
		CHECK(next >= 0);
		timer_advance(w, w->now + (uint64_t)(next < 10000 ? next : 10000));
	}
	CHECK_INT(r.n, 3);
	CHECK_INT(r.order[0], 3);
	CHECK_INT(r.order[1], 2);
	CHECK_INT(r.order[2], 1);
	CHECK_INT(r.at[1], start + hour + 3);
	CHECK_INT(r.at[2], start + 2 * hour);
	free(w);
}

/* Many timers at random delays: each fires once, never early, at most one step late, and
 * in expiry order. */
struct many {
	struct timer_wheel *w;
	struct timer t;
	uint64_t due, fired_at;
	uint64_t *last; /* expiry of the previous timer to fire */
	int *disorder;
};

static void many_fire(void *arg)
{
	struct many *m = arg;
	m->fired_at = m->w->now;
	if (m->due < *m->last)
		(*m->disorder)++;
	*m->last = m->due;
}

static void t_many(void)
{
	enum { N = 5000, STEP = 3 };
	struct timer_wheel *w = wheel(5);
	struct many *m = calloc(N, sizeof(*m));
	uint64_t last = 0;
	int disorder = 0;
	unsigned seed = 12345;
	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t d = (seed >> 8) % 40000;
		m[i] = (struct many){ .w = w, .due = 5 + d, .last = &last, .disorder = &disorder };
		timer_start(w, &m[i].t, d, many_fire, &m[i]);
	}
	for (uint64_t t = 5; t <= 40010; t += STEP)
		timer_advance(w, t);
	int bad = 0;
	for (int i = 0; i < N; i++)
		bad += m[i].fired_at < m[i].due || m[i].fired_at >= m[i].due + STEP;
	CHECK_INT(bad, 0);
	CHECK_INT(disorder, 0);
	CHECK_INT(w->count, 0);
	free(m);
	free(w);
}

static const struct unit_case cases[] = {
	{ "order", t_order },           { "jump", t_jump }, { "stop", t_stop }, { "restart", t_restart },
	{ "zero_delay", t_zero_delay }, { "long", t_long }, { "many", t_many },
};
UNIT_MAIN(cases)
