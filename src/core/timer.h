/* timer.h: a hashed timer wheel with intrusive timers; time is passed in, so tests drive it. */
#ifndef PARLEY_CORE_TIMER_H
#define PARLEY_CORE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

typedef void(timer_h)(void *arg);

/* Embedded in the object it times; zero-initialised means idle. */
struct timer {
	struct timer *next, *prev; /* slot list links; NULL when idle */
	uint64_t expire;           /* absolute ms */
	timer_h *fn;
	void *arg;
};

#define TIMER_SLOTS 4096 /* power of two */
#define TIMER_TICK_MS 4  /* wheel resolution */

struct timer_wheel {
	uint64_t now;                    /* ms, as last advanced */
	uint64_t tick;                   /* tick index processed up to */
	struct timer slot[TIMER_SLOTS];  /* list heads */
	unsigned count;                  /* armed timers */
	uint64_t busy[TIMER_SLOTS / 64]; /* bit per slot: set when its list is not empty */
};

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms);
/* (Re)arms t to fire fn(arg) delay_ms after the wheel's current time. */
void timer_start(struct timer_wheel *w, struct timer *t, uint64_t delay_ms, timer_h *fn, void *arg);
/* Disarms t; harmless on an idle timer. */
void timer_stop(struct timer_wheel *w, struct timer *t);
bool timer_pending(const struct timer *t);
/* Moves the wheel's time to now_ms and fires every timer whose expiry has passed, in
 * expiry order within a tick. A handler may start and stop timers, including its own.
 * Returns the number fired. */
unsigned timer_advance(struct timer_wheel *w, uint64_t now_ms);
/* Milliseconds until the next timer fires (0 if overdue), or -1 when none is armed. */
int64_t timer_next_ms(const struct timer_wheel *w);

#endif
