/* loop.h: the epoll event loop that owns the timer wheel; one per worker. */
#ifndef PARLEY_CORE_LOOP_H
#define PARLEY_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "core/timer.h"

struct loop;

/* Called with the fd's ready events (EPOLLIN, EPOLLOUT, EPOLLERR ...). */
typedef void(loop_fd_h)(int fd, uint32_t events, void *arg);

int loop_new(struct loop **lp); /* 0 or -errno */
void loop_free(struct loop *l);
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_h *h, void *arg);
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
int loop_del_fd(struct loop *l, int fd);
struct timer_wheel *loop_timers(struct loop *l);
uint64_t loop_now(const struct loop *l); /* monotonic ms, refreshed every iteration */
/* Runs until loop_stop(); returns 0, or -errno when epoll fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);
/* Batching under load: after a turn in which some handler called loop_coalesce (it read
 * datagrams but not a full batch), the loop sleeps us microseconds before polling again,
 * so that the datagrams of the next few hundred microseconds are handled together. 0 (the
 * default) turns it off. */
void loop_set_coalesce(struct loop *l, unsigned us);
void loop_coalesce(struct loop *l);

/* Work left for the end of the turn: a module that collects output while the turn's timers
 * and fd handlers run (one command per call, say) sends it in one go once they are done,
 * before the loop naps or waits again. The job belongs to the caller, like a timer. */
typedef void(loop_job_h)(void *arg);
struct loop_job {
	struct loop_job *next; /* the loop's list of due jobs */
	loop_job_h *h;
	void *arg;
	bool due; /* on that list */
};
/* Runs h(arg) once at the end of this turn (or of the first turn, outside loop_run). A job
 * already due stays as it is; one deferred while the jobs run runs in the same turn, so a
 * job must not defer itself every time. */
void loop_defer(struct loop *l, struct loop_job *j, loop_job_h *h, void *arg);
/* Takes j off the list of due jobs, if it is there. */
void loop_cancel(struct loop *l, struct loop_job *j);

#endif
