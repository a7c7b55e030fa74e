/* timer.c: a hashed timer wheel: one slot per tick, timers beyond a rotation wait their round. */
#include "core/timer.h"

#include <stddef.h>

#define MASK ((uint64_t)TIMER_SLOTS - 1)

_Static_assert((TIMER_SLOTS & (TIMER_SLOTS - 1)) == 0, "TIMER_SLOTS must be a power of two");
_Static_assert(TIMER_SLOTS % 64 == 0, "the busy bitmap holds 64 slots per word");

static uint64_t tick_of(uint64_t ms)
{
	return ms / TIMER_TICK_MS;
}

static void mark(struct timer_wheel *w, unsigned s)
{
	w->busy[s / 64] |= (uint64_t)1 << (s % 64);
}

/* Clears the slot's busy bit once its list has emptied, so timer_next_ms skips it. */
static void unmark_if_empty(struct timer_wheel *w, unsigned s)
{
	if (w->slot[s].next == &w->slot[s])
		w->busy[s / 64] &= ~((uint64_t)1 << (s % 64));
}

static void list_init(struct timer *head)
{
	head->next = head->prev = head;
}

static void insert_before(struct timer *pos, struct timer *t)
{
	t->prev = pos->prev;
	t->next = pos;
	pos->prev->next = t;
	pos->prev = t;
}

static void unlink_timer(struct timer *t)
{
	t->prev->next = t->next;
	t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms)
{
	w->now = now_ms;
	w->tick = tick_of(now_ms);
	w->count = 0;
	for (unsigned i = 0; i < TIMER_SLOTS; i++)
		list_init(&w->slot[i]);
	for (unsigned i = 0; i < TIMER_SLOTS / 64; i++)
		w->busy[i] = 0;
}

bool timer_pending(const struct timer *t)
{
	return t->next != NULL;
}

/* A timer's slot follows from its expiry alone, which is why stop needs no slot index. */
static unsigned slot_of(uint64_t expire)
{
	return (unsigned)(tick_of(expire) & MASK);
}

void timer_stop(struct timer_wheel *w, struct timer *t)
{
	if (!timer_pending(t))
		return;
	unlink_timer(t);
	w->count--;
	/* The timer may have been on the due list of timer_advance rather than in its slot;
	 * checking the slot is still right, it only clears a bit that is already clear. */
	unmark_if_empty(w, slot_of(t->expire));
}

void timer_start(struct timer_wheel *w, struct timer *t, uint64_t delay_ms, timer_h *fn, void *arg)
{
	timer_stop(w, t);
	t->expire = w->now + delay_ms;
	t->fn = fn;
	t->arg = arg;
	unsigned s = slot_of(t->expire);
	/* Appending keeps timers of equal expiry in the order they were started. */
	insert_before(&w->slot[s], t);
	mark(w, s);
	w->count++;
}

/* Moves the slot's timers that are due at now into 'due', sorted by expiry (stable), so
 * that they fire in order and a handler may stop any of them before its turn. */
static void collect(struct timer_wheel *w, unsigned s, uint64_t now, struct timer *due)
{
	struct timer *head = &w->slot[s];
	struct timer *t = head->next;
	while (t != head) {
		struct timer *next = t->next;
		if (t->expire <= now) {
			t->prev->next = t->next;
			t->next->prev = t->prev;
			struct timer *pos = due;
			while (pos->prev != due && pos->prev->expire > t->expire)
				pos = pos->prev;
			insert_before(pos, t);
		}
		t = next;
	}
	unmark_if_empty(w, s);
}

unsigned timer_advance(struct timer_wheel *w, uint64_t now_ms)
{
	unsigned fired = 0;
	if (now_ms < w->now)
		now_ms = w->now;
	w->now = now_ms;
	uint64_t last = tick_of(now_ms);
	/* The current tick is visited again on every advance because it may hold timers that
	 * expire later within the same tick; after a long sleep one rotation covers all slots. */
	uint64_t first = w->tick;
	if (last - first >= TIMER_SLOTS)
		first = last - TIMER_SLOTS + 1;
	for (uint64_t k = first; k <= last && w->count; k++) {
		struct timer due;
		list_init(&due);
		collect(w, (unsigned)(k & MASK), now_ms, &due);
		while (due.next != &due) {
			struct timer *t = due.next;
			unlink_timer(t);
			w->count--;
			fired++;
			/* The timer is idle when its handler runs, so the handler may restart it. */
			t->fn(t->arg);
		}
	}
	w->tick = last;
	return fired;
}

/* Earliest expiry among the slot's timers that belong to tick k or earlier (the current
 * round); UINT64_MAX when all of them wait for a later round. */
static uint64_t round_min(const struct timer_wheel *w, unsigned s, uint64_t k)
{
	uint64_t best = UINT64_MAX;
	const struct timer *head = &w->slot[s];
	for (const struct timer *t = head->next; t != head; t = t->next)
		if (tick_of(t->expire) <= k && t->expire < best)
			best = t->expire;
	return best;
}

int64_t timer_next_ms(const struct timer_wheel *w)
{
	if (w->count == 0)
		return -1;
	uint64_t best = UINT64_MAX;
	/* Walk the busy slots in tick order from the current one: the first slot holding a
	 * timer of this round has the answer, since later slots are later ticks. */
	for (uint64_t i = 0; i < TIMER_SLOTS;) {
		uint64_t k = w->tick + i;
		unsigned s = (unsigned)(k & MASK);
		uint64_t bits = w->busy[s / 64] >> (s % 64);
		if (bits == 0) {
			i += 64 - s % 64;
			continue;
		}
		unsigned skip = (unsigned)__builtin_ctzll(bits);
		if (skip) {
			i += skip;
			continue;
		}
		best = round_min(w, s, k);
		if (best != UINT64_MAX)
			break;
		i++;
	}
	if (best == UINT64_MAX) {
		/* Only timers more than a rotation away: find the earliest the slow way, which
		 * happens only when nothing else is armed. */
		for (unsigned s = 0; s < TIMER_SLOTS; s++) {
			const struct timer *head = &w->slot[s];
			for (const struct timer *t = head->next; t != head; t = t->next)
				if (t->expire < best)
					best = t->expire;
		}
	}
	return best <= w->now ? 0 : (int64_t)(best - w->now);
}
