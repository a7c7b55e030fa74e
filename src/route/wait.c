/* wait.c: requests parked while their Request-URI is resolved (RFC 3263), so a CANCEL can find them. */
#include "route/route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct wait {
	struct wait *next;
	struct route_waits *w;
	const void *owner;
	uint64_t rid;
	size_t size;
	unsigned char state[];
};

struct route_waits {
	struct route *r;
	route_wait_h *cb;
	void *arg;
	struct wait *list; /* few at a time: answers are cached, so a walk is cheap */
};

int route_waits_new(struct route_waits **wp, struct route *r, route_wait_h *cb, void *arg)
{
	struct route_waits *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->r = r;
	w->cb = cb;
	w->arg = arg;
	*wp = w;
	return 0;
}

static void unlink_wait(struct route_waits *w, struct wait *x)
{
	for (struct wait **pp = &w->list; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			return;
		}
}

void route_waits_free(struct route_waits *w)
{
	if (!w)
		return;
	while (w->list) {
		struct wait *x = w->list;
		w->list = x->next;
		route_cancel(w->r, x->rid);
		free(x);
	}
	free(w);
}

static void resolved(void *arg, int err, const struct route_target *t, unsigned n)
{
	struct wait *x = arg;
	struct route_waits *w = x->w;
	unlink_wait(w, x);
	w->cb(w->arg, x->owner, x->state, err, t, n);
	free(x);
}

int route_wait(struct route_waits *w, const struct sip_uri *uri, const void *owner, const void *state, size_t size)
{
	struct wait *x = malloc(sizeof(*x) + size);
	if (!x)
		return -ENOMEM;
	x->w = w;
	x->owner = owner;
	x->size = size;
	memcpy(x->state, state, size);
	x->next = w->list;
	w->list = x;
	int err = route_resolve(w->r, uri, resolved, x, &x->rid);
	/* On success x may already be gone (answered at once): do not touch it. */
	if (err < 0) {
		unlink_wait(w, x);
		free(x);
	}
	return err;
}

bool route_wait_cancel(struct route_waits *w, const void *owner, void *state_out, size_t size)
{
	for (struct wait *x = w->list; x; x = x->next) {
		if (x->owner != owner)
			continue;
		route_cancel(w->r, x->rid);
		unlink_wait(w, x);
		if (state_out)
			memcpy(state_out, x->state, size < x->size ? size : x->size);
		free(x);
		return true;
	}
	return false;
}

unsigned route_waits_count(const struct route_waits *w)
{
	unsigned n = 0;
	for (const struct wait *x = w->list; x; x = x->next)
		n++;
	return n;
}

bool route_waiting(const struct route_waits *w, const void *owner)
{
	for (const struct wait *x = w->list; x; x = x->next)
		if (x->owner == owner)
			return true;
	return false;
}
