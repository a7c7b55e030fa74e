/* trace.c: `parley trace [--user U] [--call-id X]`: live call flows from the running server, drawn as ladders. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "cli/cli.h"
#include "server/config.h"
#include "sip/sip.h"

/*
 * The server streams every message it receives or sends over its trace socket (beside the
 * database, capture.h says how it is framed). Each one becomes a line of a ladder: one
 * column per endpoint (the phones and peers, and Parley), an arrow from sender to
 * receiver, the time and the method or status. Columns appear as endpoints do; when there
 * are more than fit, the one unused longest makes way and the header is printed again.
 */

#define COLW 24     /* characters per column */
#define MAXCOLS 5   /* Parley and four endpoints: 13 + 5 * 24 = 133 characters at most */
#define MAXCALLS 64 /* Call-IDs remembered as matching --user */

struct col {
	char name[96]; /* "udp 127.0.0.1:5071", or "Parley" */
	uint64_t used; /* message counter when last drawn */
};

struct trace {
	const char *user;    /* --user: a user part, or user@host */
	const char *call_id; /* --call-id */
	struct col cols[MAXCOLS];
	unsigned ncols;
	int parley; /* its column, or -1 before the first message */
	uint64_t count;
	char calls[MAXCALLS][128]; /* Call-IDs that matched --user, newest at next_call - 1 */
	unsigned next_call;
};

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

/* Whether a URI's user (or user@host when want has an '@') is want. */
static bool user_is(const struct sip_uri *u, const char *want)
{
	const char *at = strchr(want, '@');
	if (!at)
		return u->user.l && str_eq(u->user, str_from_cstr(want));
	struct str wu = { want, (size_t)(at - want) }, wh = str_from_cstr(at + 1);
	return str_eq(u->user, wu) && str_caseeq(u->host, wh);
}

static bool call_known(const struct trace *t, struct str cid)
{
	for (unsigned i = 0; i < MAXCALLS; i++)
		if (t->calls[i][0] && str_eq(cid, str_from_cstr(t->calls[i])))
			return true;
	return false;
}

/* Whether a message belongs on screen: its Call-ID is --call-id; it names --user in From,
 * To or the Request-URI, or belongs to a call that did. */
static bool wanted(struct trace *t, const struct sip_msg *m)
{
	if (t->call_id && !str_eq(m->call_id, str_from_cstr(t->call_id)))
		return false;
	if (!t->user)
		return true;
	if (call_known(t, m->call_id))
		return true;
	if (!user_is(&m->from.uri, t->user) && !user_is(&m->to.uri, t->user) &&
	    !(m->request && user_is(&m->ruri, t->user)))
		return false;
	str_to_cbuf(m->call_id, t->calls[t->next_call % MAXCALLS], sizeof t->calls[0]);
	t->next_call++;
	return true;
}

static void print_header(const struct trace *t)
{
	char line[16 + MAXCOLS * COLW];
	int n = snprintf(line, sizeof line, "%-13s", "");
	for (unsigned i = 0; i < t->ncols; i++) {
		const char *name = t->cols[i].name;
		size_t l = strlen(name);
		if (l > COLW - 2)
			l = COLW - 2;
		int pad = (int)(COLW - l) / 2;
		n += snprintf(line + n, sizeof line - (size_t)n, "%*s%.*s%*s", pad, "", (int)l, name,
			      COLW - pad - (int)l, "");
	}
	while (n > 0 && line[n - 1] == ' ')
		line[--n] = '\0';
	printf("\n%s\n", line);
}

/* The column of name, made when new (replacing the longest unused one when full). */
static int column(struct trace *t, const char *name)
{
	for (unsigned i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0) {
			t->cols[i].used = t->count;
			return (int)i;
		}
	int at;
	if (t->ncols < MAXCOLS) {
		at = (int)t->ncols++;
	} else {
		at = -1;
		for (unsigned i = 0; i < t->ncols; i++)
			if ((int)i != t->parley && (at < 0 || t->cols[i].used < t->cols[at].used))
				at = (int)i;
	}
	snprintf(t->cols[at].name, sizeof t->cols[at].name, "%s", name);
	t->cols[at].used = t->count;
	return at;
}

/* What the arrow says: the method, or the status and reason. */
static void label_of(const struct sip_msg *m, char *out, size_t n)
{
	if (m->request)
		snprintf(out, n, "%.*s", STR_FMT(m->method));
	else
		snprintf(out, n, "%u %.*s", m->status, STR_FMT(m->reason));
}

static void draw(struct trace *t, uint64_t wall_ms, bool out, const char *proto, const char *remote,
		 const struct sip_msg *m, const char *label)
{
	char name[96];
	snprintf(name, sizeof name, "%s %s", proto, remote);
	t->count++;
	unsigned before = t->ncols;
	char names[MAXCOLS][96];
	for (unsigned i = 0; i < t->ncols; i++)
		memcpy(names[i], t->cols[i].name, sizeof names[i]);
	/* The first endpoint stands left of Parley; later ones go to the right. */
	int peer = column(t, name);
	if (t->parley < 0)
		t->parley = column(t, "Parley");
	t->cols[t->parley].used = t->count;
	bool changed = t->ncols != before;
	for (unsigned i = 0; i < before && !changed; i++)
		changed = strcmp(names[i], t->cols[i].name) != 0;
	if (changed)
		print_header(t);

	char line[16 + MAXCOLS * COLW + 200];
	time_t s = (time_t)(wall_ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	int n = (int)strftime(line, 16, "%H:%M:%S", &tm);
	n += snprintf(line + n, 8, ".%03u  ", (unsigned)(wall_ms % 1000));
	size_t width = (size_t)t->ncols * COLW;
	char *row = line + n;
	memset(row, ' ', width);
	for (unsigned i = 0; i < t->ncols; i++)
		row[i * COLW + COLW / 2] = '|';
	int from = out ? t->parley : peer, to = out ? peer : t->parley;
	int a = (from < to ? from : to) * COLW + COLW / 2, b = (from < to ? to : from) * COLW + COLW / 2;
	for (int i = a + 1; i < b; i++)
		row[i] = '-';
	if (from < to)
		row[b - 1] = '>';
	else
		row[a + 1] = '<';
	/* The label in the middle of the arrow, cut to fit with a dash each side. */
	size_t room = (size_t)(b - a - 5), ll = strlen(label);
	if (ll > room)
		ll = room;
	memcpy(row + a + 1 + ((size_t)(b - a - 1) - ll) / 2, label, ll);
	size_t end = width;
	while (end > 0 && row[end - 1] == ' ')
		end--;
	n += (int)end;
	snprintf(line + n, sizeof line - (size_t)n, "   %.*s", m->call_id.l > 40 ? 40 : (int)m->call_id.l,
		 m->call_id.p);
	puts(line);
}

/* One frame: "msg WALL in|out PROTO LOCAL REMOTE\n" + the message, or "dropped N\n". */
static void on_frame(struct trace *t, char *f, size_t len)
{
	char *nl = memchr(f, '\n', len);
	if (!nl)
		return;
	*nl = '\0';
	char *text = nl + 1;
	size_t tl = len - (size_t)(text - f);
	unsigned long long n;
	if (sscanf(f, "dropped %llu", &n) == 1) {
		printf("... %llu message%s dropped (this terminal did not keep up)\n", n, n == 1 ? "" : "s");
		return;
	}
	char dir[8], proto[8], local[80], remote[80];
	unsigned long long wall;
	if (sscanf(f, "msg %llu %7s %7s %79s %79s", &wall, dir, proto, local, remote) != 5)
		return;
	struct sip_msg m;
	struct sip_hdr hdrs[SIP_MAX_HEADERS];
	struct sip_parse_err perr = { 0 };
	if (sip_msg_parse(&m, hdrs, SIP_MAX_HEADERS, text, tl, true, &perr) != SIP_PARSE_OK) {
		if (t->user || t->call_id)
			return;
		printf("%s %s %s: a message that does not parse (%s)\n", dir, proto, remote,
		       perr.reason ? perr.reason : "?");
		return;
	}
	if (!wanted(t, &m))
		return;
	char label[80];
	label_of(&m, label, sizeof label);
	draw(t, wall, strcmp(dir, "out") == 0, proto, remote, &m, label);
}

int cli_trace(int argc, char **argv)
{
	static const char *const flags[] = { "user", "call-id" };
	const char *vals[2] = { NULL, NULL };
	struct cfg_extra extra = { .flags = flags, .val = vals, .nflags = 2 };
	struct config cfg;
	int rc = config_parse_args(&cfg, argc, argv, 1, false, &extra, NULL, NULL, 0);
	if (rc)
		return rc;
	for (int i = 0; i < 2; i++)
		if (vals[i] && !vals[i][0]) {
			fprintf(stderr, "parley: trace: --%s: empty value\n", flags[i]);
			return 2;
		}
	char path[600];
	capture_sock_path(cfg.server.db, path, sizeof path);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "parley: trace: socket path %s is too long\n", path);
		return 1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		fprintf(stderr, "parley: trace: no server is running for database %s (cannot connect to %s: %s)\n",
			cfg.server.db, path, strerror(e));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	/* Ctrl-C ends the read below (no SA_RESTART) and the trace with it, status 0. */
	struct sigaction act = { .sa_handler = on_sigint };
	sigemptyset(&act.sa_mask);
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("tracing calls of parley serve (%s)%s%s%s%s; Ctrl-C stops\n", cfg.server.db, vals[0] ? ", user " : "",
	       vals[0] ? vals[0] : "", vals[1] ? ", Call-ID " : "", vals[1] ? vals[1] : "");
	struct trace *t = calloc(1, sizeof *t);
	size_t cap = 4 + 256 + TP_MAX_MSG + 1, len = 0;
	char *buf = malloc(cap);
	if (!t || !buf) {
		fprintf(stderr, "parley: trace: out of memory\n");
		free(t);
		free(buf);
		close(fd);
		return 1;
	}
	t->user = vals[0];
	t->call_id = vals[1];
	t->parley = -1;
	rc = 0;
	while (!stop) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (!stop) {
				fprintf(stderr, "parley: trace: the server closed the trace%s%s\n", r < 0 ? ": " : "",
					r < 0 ? strerror(errno) : "");
				rc = 1;
			}
			break;
		}
		len += (size_t)r;
		size_t off = 0;
		while (len - off >= 4) {
			const unsigned char *h = (const unsigned char *)buf + off;
			size_t fl = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
			if (fl > cap - 4) {
				fprintf(stderr, "parley: trace: a frame of %zu bytes: not a trace socket?\n", fl);
				rc = 1;
				stop = 1;
				break;
			}
			if (len - off < 4 + fl)
				break;
			on_frame(t, buf + off + 4, fl);
			off += 4 + fl;
		}
		memmove(buf, buf + off, len - off);
		len -= off;
	}
	free(buf);
	free(t);
	close(fd);
	return rc;
}
