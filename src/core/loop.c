/* loop.c: the epoll event loop: waits for fds until the next timer, then dispatches both. */
#include "core/loop.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

#define MAX_EVENTS 64

struct fd_entry {
	loop_fd_h *h; /* NULL when the fd is not registered */
	void *arg;
};

struct loop {
	int epfd;
	bool stop;
	bool nap_wanted;          /* a handler saw traffic but not a full batch */
	unsigned nap_us;          /* how long to let it gather; 0: never */
	uint64_t now;             /* monotonic ms, refreshed every iteration */
	struct loop_job *jobs;    /* due at the end of the turn, first deferred first */
	struct loop_job **jtail;  /* where the next one goes */
	struct fd_entry *fds;     /* indexed by fd number */
	size_t nfds;              /* entries allocated in fds */
	struct timer_wheel wheel; /* last: it is the big member */
};

int loop_new(struct loop **lp)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int err = -errno;
		free(l);
		return err;
	}
	l->now = clock_mono_ms();
	l->jtail = &l->jobs;
	timer_wheel_init(&l->wheel, l->now);
	*lp = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->fds);
	free(l);
}

/* Makes room for fd in the table; fd numbers are small and dense, so an array indexed by
 * the number is both the fastest and the simplest lookup. */
static int grow(struct loop *l, int fd)
{
	if ((size_t)fd < l->nfds)
		return 0;
	size_t n = l->nfds ? l->nfds : 64;
	while (n <= (size_t)fd)
		n *= 2;
	struct fd_entry *f = realloc(l->fds, n * sizeof(*f));
	if (!f)
		return -ENOMEM;
	for (size_t i = l->nfds; i < n; i++)
		f[i] = (struct fd_entry){ 0 };
	l->fds = f;
	l->nfds = n;
	return 0;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_h *h, void *arg)
{
	if (fd < 0 || !h)
		return -EINVAL;
	int err = grow(l, fd);
	if (err)
		return err;
	struct epoll_event ev = { .events = events, .data.fd = fd };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	l->fds[fd] = (struct fd_entry){ h, arg };
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_del_fd(struct loop *l, int fd)
{
	if (fd >= 0 && (size_t)fd < l->nfds)
		l->fds[fd] = (struct fd_entry){ 0 };
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

struct timer_wheel *loop_timers(struct loop *l)
{
	return &l->wheel;
}

uint64_t loop_now(const struct loop *l)
{
	return l->now;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}

void loop_set_coalesce(struct loop *l, unsigned us)
{
	l->nap_us = us;
}

void loop_coalesce(struct loop *l)
{
	l->nap_wanted = true;
}

void loop_defer(struct loop *l, struct loop_job *j, loop_job_h *h, void *arg)
{
	if (j->due)
		return;
	j->h = h;
	j->arg = arg;
	j->due = true;
	j->next = NULL;
	*l->jtail = j;
	l->jtail = &j->next;
}

void loop_cancel(struct loop *l, struct loop_job *j)
{
	if (!j->due)
		return;
	struct loop_job **pp = &l->jobs;
	while (*pp != j)
		pp = &(*pp)->next;
	*pp = j->next;
	if (l->jtail == &j->next)
		l->jtail = pp;
	j->due = false;
}

/* Runs the due jobs, and those they defer, first deferred first. */
static void run_jobs(struct loop *l)
{
	while (l->jobs) {
		struct loop_job *j = l->jobs;
		l->jobs = j->next;
		if (!l->jobs)
			l->jtail = &l->jobs;
		j->due = false;
		j->h(j->arg);
	}
}

static int wait_ms(const struct loop *l)
{
	int64_t next = timer_next_ms(&l->wheel);
	if (next < 0)
		return -1;
	/* next counts from the last advance; the fd handlers since then took time too. */
	uint64_t spent = clock_mono_ms() - l->wheel.now;
	if ((uint64_t)next <= spent)
		return 0;
	next -= (int64_t)spent;
	return next > INT_MAX ? INT_MAX : (int)next;
}

int loop_run(struct loop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	l->stop = false;
	/* What was deferred before the loop ran (a command sent from outside any handler)
	 * goes first, and what the timers due now defer before the first wait. */
	run_jobs(l);
	l->now = clock_mono_ms();
	timer_advance(&l->wheel, l->now);
	run_jobs(l);
	bool napped = false;
	while (!l->stop) {
		/* Right after a nap the fds are only polled: what arrived meanwhile is read now,
		 * and when nothing did, the next turn blocks as usual. */
		int n = epoll_wait(l->epfd, ev, MAX_EVENTS, napped ? 0 : wait_ms(l));
		if (n < 0 && errno != EINTR)
			return -errno;
		/* Timers advance before the fds are dispatched so that a handler which starts a
		 * timer measures its delay from the time it actually ran, not from before the
		 * wait; timers a handler starts with no delay fire on the next turn. */
		l->now = clock_mono_ms();
		timer_advance(&l->wheel, l->now);
		for (int i = 0; i < n && !l->stop; i++) {
			int fd = ev[i].data.fd;
			/* An earlier handler of this batch may have removed this fd. */
			if ((size_t)fd >= l->nfds || !l->fds[fd].h)
				continue;
			l->fds[fd].h(fd, ev[i].events, l->fds[fd].arg);
		}
		/* Even when a handler stopped the loop: what it deferred is output still owed. */
		run_jobs(l);
		/* Coalescing (loop_coalesce): every wake-up costs the kernel a context switch and,
		 * in a virtual machine, exits to the hypervisor, several microseconds that a
		 * lone datagram does not share with others. Sleeping a little while traffic
		 * flows lets the next datagrams queue up and be read, answered and sent in one
		 * batch each way. What was read is already answered, so only datagrams arriving
		 * during the nap wait, at most nap_us. */
		napped = false;
		if (l->nap_wanted && l->nap_us && !l->stop) {
			struct timespec ts = { .tv_sec = l->nap_us / 1000000,
					       .tv_nsec = (long)(l->nap_us % 1000000) * 1000 };
			nanosleep(&ts, NULL);
			napped = true;
		}
		l->nap_wanted = false;
	}
	return 0;
}
