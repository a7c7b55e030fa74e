/* sock.c: the trace socket: a local unix socket that streams every captured message to `parley trace` clients. */
#include "capture/capture_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A few people watching at once; more are refused (closed at once). */
#define MAX_CLIENTS 16

struct tclient {
	int fd; /* -1: free */
	char *buf;
	size_t len, cap;  /* queued bytes in buf[0..len) */
	uint64_t dropped; /* messages not queued since the last "dropped" frame */
	bool want_out;    /* EPOLLOUT is on: the socket was full */
};

struct capture_sock {
	struct capture *c;
	struct loop *loop;
	struct log *lg;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int handle; /* capture_listen's, while a client is connected; -1 */
	unsigned nclients;
	struct tclient cl[MAX_CLIENTS];
	struct loop_job flush;
};

char *capture_sock_path(const char *db_path, char *buf, size_t n)
{
	snprintf(buf, n, "%s.trace.sock", db_path);
	return buf;
}

static void client_close(struct capture_sock *s, struct tclient *t)
{
	loop_del_fd(s->loop, t->fd);
	close(t->fd);
	free(t->buf);
	*t = (struct tclient){ .fd = -1 };
	if (--s->nclients == 0 && s->handle >= 0) {
		/* Nobody watches: the server stops building messages for us. */
		capture_unlisten(s->c, s->handle);
		s->handle = -1;
	}
}

/* Writes what t has queued, as much as the socket takes. */
static void client_write(struct capture_sock *s, struct tclient *t)
{
	size_t off = 0;
	while (off < t->len) {
		ssize_t w = send(t->fd, t->buf + off, t->len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			client_close(s, t);
			return;
		}
		off += (size_t)w;
	}
	memmove(t->buf, t->buf + off, t->len - off);
	t->len -= off;
	bool want = t->len > 0;
	if (want != t->want_out) {
		loop_mod_fd(s->loop, t->fd, EPOLLIN | (want ? EPOLLOUT : 0));
		t->want_out = want;
	}
}

static void flush_all(void *arg)
{
	struct capture_sock *s = arg;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (s->cl[i].fd >= 0 && s->cl[i].len && !s->cl[i].want_out)
			client_write(s, &s->cl[i]);
}

/* Room for n more bytes in t's queue, within CAPTURE_SOCK_QUEUE. */
static bool reserve(struct tclient *t, size_t n)
{
	if (t->len + n > CAPTURE_SOCK_QUEUE)
		return false;
	if (t->len + n <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap : 16384;
	while (cap < t->len + n)
		cap *= 2;
	if (cap > CAPTURE_SOCK_QUEUE)
		cap = CAPTURE_SOCK_QUEUE;
	char *b = realloc(t->buf, cap);
	if (!b)
		return false;
	t->buf = b;
	t->cap = cap;
	return true;
}

static void put_frame(struct tclient *t, const char *head, size_t hl, const char *body, size_t bl)
{
	uint32_t n = (uint32_t)(hl + bl);
	unsigned char be[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
				(unsigned char)n };
	memcpy(t->buf + t->len, be, 4);
	memcpy(t->buf + t->len + 4, head, hl);
	memcpy(t->buf + t->len + 4 + hl, body, bl);
	t->len += 4 + hl + bl;
}

static void on_msg(const struct capture_msg *m, void *arg)
{
	struct capture_sock *s = arg;
	static const char *const protos[] = { "udp", "tcp", "tls", "ws", "wss" };
	char head[256], la[80], ra[80];
	int hl = snprintf(head, sizeof head, "msg %llu %s %s %s %s\n", (unsigned long long)m->wall_ms,
			  m->out ? "out" : "in", m->proto <= TP_WSS ? protos[m->proto] : "udp",
			  tp_addr_str(&m->local, la, sizeof la), tp_addr_str(&m->remote, ra, sizeof ra));
	if (hl < 0 || (size_t)hl >= sizeof head)
		return;
	for (unsigned i = 0; i < MAX_CLIENTS; i++) {
		struct tclient *t = &s->cl[i];
		if (t->fd < 0)
			continue;
		if (t->dropped) {
			char d[48];
			int dl = snprintf(d, sizeof d, "dropped %llu\n", (unsigned long long)t->dropped);
			if (!reserve(t, 4 + (size_t)dl)) {
				t->dropped++;
				continue;
			}
			put_frame(t, d, (size_t)dl, "", 0);
			t->dropped = 0;
		}
		if (!reserve(t, 4 + (size_t)hl + m->text.l)) {
			t->dropped++;
			continue;
		}
		put_frame(t, head, (size_t)hl, m->text.p, m->text.l);
	}
	/* One write per client at the end of the loop's turn, not one per message. */
	loop_defer(s->loop, &s->flush, flush_all, s);
}

static void on_client(int fd, uint32_t events, void *arg)
{
	struct capture_sock *s = arg;
	struct tclient *t = NULL;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (s->cl[i].fd == fd)
			t = &s->cl[i];
	if (!t)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		/* Clients send nothing; anything read is ignored, and end of file is goodbye. */
		char junk[256];
		ssize_t r = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			client_close(s, t);
			return;
		}
	}
	if (events & EPOLLOUT) {
		t->want_out = true; /* as registered; client_write turns it off when done */
		client_write(s, t);
	}
}

static void on_accept(int fd, uint32_t events, void *arg)
{
	struct capture_sock *s = arg;
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return;
		struct tclient *t = NULL;
		for (unsigned i = 0; i < MAX_CLIENTS && !t; i++)
			if (s->cl[i].fd < 0)
				t = &s->cl[i];
		if (!t || loop_add_fd(s->loop, c, EPOLLIN, on_client, s) < 0) {
			log_warn(s->lg, "trace", "a trace client refused: %s",
				 t ? "cannot watch it" : "too many clients");
			close(c);
			continue;
		}
		if (s->handle < 0) {
			int h = capture_listen(s->c, on_msg, s);
			if (h < 0) {
				loop_del_fd(s->loop, c);
				close(c);
				continue;
			}
			s->handle = h;
		}
		*t = (struct tclient){ .fd = c };
		s->nclients++;
		log_info(s->lg, "trace", "a trace client connected (%u now)", s->nclients);
	}
}

int capture_sock_open(struct capture_sock **sp, struct capture *c, struct loop *loop, struct log *lg, const char *path,
		      char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "trace socket path %s is too long for a unix socket", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	struct capture_sock *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->c = c;
	s->loop = loop;
	s->lg = lg;
	s->handle = -1;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		s->cl[i].fd = -1;
	strcpy(s->path, path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = 0;
	if (s->fd < 0) {
		e = errno;
		goto fail;
	}
	/* A socket file left by a server that did not exit cleanly is replaced; one that
	 * still answers belongs to a running server and is not. */
	if (access(path, F_OK) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			e = EADDRINUSE;
			goto fail;
		}
		unlink(path);
	}
	if (bind(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		goto fail;
	}
	/* Only the server's own user may watch its calls; nobody can connect before listen. */
	if (chmod(path, 0600) < 0 || listen(s->fd, 8) < 0 || loop_add_fd(loop, s->fd, EPOLLIN, on_accept, s) < 0) {
		e = errno ? errno : EIO;
		unlink(path);
		goto fail;
	}
	*sp = s;
	return 0;
fail:
	snprintf(err, errlen, "trace socket %s: %s", path, strerror(e));
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	return -e;
}

void capture_sock_close(struct capture_sock *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (s->cl[i].fd >= 0)
			client_close(s, &s->cl[i]);
	loop_cancel(s->loop, &s->flush);
	loop_del_fd(s->loop, s->fd);
	close(s->fd);
	unlink(s->path);
	free(s);
}
