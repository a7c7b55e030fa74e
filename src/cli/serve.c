/* serve.c: `parley serve`: runs the server on the event loop until SIGINT or SIGTERM. */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "server/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "server/server.h"
#include "http/http.h"

/* What the signal handler needs; lives on cli_serve's stack for the whole run. */
struct serve {
	struct loop *loop;
	struct log *log;
	int sigfd;
	struct config *cfg; /* the settings the modules read; a reload changes some */
	struct server *srv; /* NULL until started */
	struct http *http;  /* the HTTP endpoint, NULL when off */
	int argc;           /* serve's own arguments, read again on SIGHUP */
	char **argv;
	struct timer watchdog; /* WATCHDOG=1 to systemd, when it asks for it */
	uint64_t watchdog_ms;  /* half of WATCHDOG_USEC; 0: no watchdog */
};

/* systemd (Type=notify) learns our state through sd_notify; without NOTIFY_SOCKET in the
 * environment every call is a no-op, so running by hand costs nothing. */
static void notify(struct serve *s, const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0)
		log_warn(s->log, "systemd", "cannot notify the service manager (%.*s): %s", (int)strcspn(state, "\n"),
			 state, strerror(-rc));
}

/* Beats from the event loop itself: if the loop hangs, the beats stop and systemd
 * restarts us (WatchdogSec= in the unit). */
static void watchdog_tick(void *arg)
{
	struct serve *s = arg;
	notify(s, "WATCHDOG=1");
	timer_start(loop_timers(s->loop), &s->watchdog, s->watchdog_ms, watchdog_tick, s);
}

/* RELOADING=1 carries the monotonic clock, as systemd's notify-reload type wants. */
static void notify_reloading(struct serve *s)
{
	struct timespec ts;
	char msg[96];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	notify(s, msg);
}

/* Logs each line of the reload's error text (what `parley serve` would have printed). */
static void log_lines(struct log *lg, char *text)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "parley: ", 8) == 0)
			line += 8;
		log_error(lg, "reload", "%s", line);
	}
}

/* [http] listen after a reload: the endpoint follows it, on, off or elsewhere. */
static void reload_http(struct serve *s)
{
	if (s->http && !s->cfg->server.http[0]) {
		http_free(s->http);
		s->http = NULL;
		log_info(s->log, "reload", "HTTP endpoint off");
	} else if (s->http) {
		http_reload(s->http);
	} else if (s->cfg->server.http[0]) {
		struct http_env he = { .loop = s->loop, .lg = s->log, .srv = s->srv, .cfg = s->cfg };
		char msg[512];
		if (http_new(&s->http, &he, msg, sizeof msg))
			log_error(s->log, "reload", "HTTP endpoint not started: %s", msg);
	}
}

/* SIGHUP: the config file (and the flags, which still win) read again; nothing changes
 * unless the whole of it is valid. */
static void reload(struct serve *s)
{
	if (!s->cfg->path[0]) {
		log_info(s->log, "reload", "SIGHUP without --config: log reopened, nothing to reload");
		return;
	}
	struct config *nc = malloc(sizeof *nc);
	char *text = NULL;
	size_t len = 0;
	FILE *ef = open_memstream(&text, &len);
	if (!nc || !ef) {
		log_error(s->log, "reload", "out of memory: %s not reloaded", s->cfg->path);
		goto out;
	}
	int rc = config_reparse(nc, s->argc, s->argv, ef);
	fclose(ef);
	ef = NULL;
	if (rc) {
		if (text)
			log_lines(s->log, text);
		log_error(s->log, "reload", "%s refused: the settings in use are kept", s->cfg->path);
		goto out;
	}
	unsigned n = server_reload(s->srv, s->cfg, nc);
	reload_http(s);
	log_info(s->log, "reload", "%s reloaded: %u setting%s changed", s->cfg->path, n, n == 1 ? "" : "s");
out:
	if (ef)
		fclose(ef);
	free(text);
	free(nc);
}

/* Signals arrive as reads on a signalfd, in the loop like any other event, so stopping
 * and reopening the log happen between messages and need no global state. */
static void on_signal(int fd, uint32_t events, void *arg)
{
	struct serve *s = arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			int err = log_reopen(s->log);
			if (err)
				log_error(s->log, "log", "cannot reopen %s: %s", s->log->path, strerror(-err));
			else
				log_info(s->log, "log", "reopened on SIGHUP");
			if (s->srv) {
				notify_reloading(s);
				reload(s);
				notify(s, "READY=1");
			}
		} else {
			log_info(s->log, "stop", "stopping on %s", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			notify(s, "STOPPING=1");
			loop_stop(s->loop);
		}
	}
}

/* Writes our PID for `parley reload --pid-file` (and service managers): to a new file
 * renamed over the old, so that a reader never sees it half written. 0 or -errno. */
static int write_pid(const char *path)
{
	char tmp[600];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.new", path) >= sizeof tmp)
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	int bad = fprintf(f, "%ld\n", (long)getpid()) < 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		int e = errno ? errno : EIO;
		unlink(tmp);
		return -e;
	}
	return 0;
}

int cli_serve(int argc, char **argv)
{
	struct config cfg;
	if (config_parse_args(&cfg, argc, argv, 1, true, NULL, NULL, NULL, 0) || config_validate(&cfg))
		return 2;

	struct log lg;
	int err = log_open(&lg, (enum log_level)cfg.server.log_level, cfg.server.log_format == 1, cfg.server.log_file);
	if (err) {
		fprintf(stderr, "parley: cannot open log file %s: %s\n", cfg.server.log_file, strerror(-err));
		return 1;
	}

	/* Block the signals before anything else starts, so they queue on the signalfd instead
	 * of killing the process; a peer closing a socket must not kill us with SIGPIPE. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = 1;
	struct serve s = { .log = &lg, .sigfd = -1, .cfg = &cfg, .argc = argc, .argv = argv };
	struct server *srv = NULL;
	char msg[512] = "";
	bool pid_written = false;
	s.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s.sigfd < 0) {
		fprintf(stderr, "parley: signalfd: %s\n", strerror(errno));
		goto out;
	}
	err = loop_new(&s.loop);
	if (err) {
		fprintf(stderr, "parley: cannot create the event loop: %s\n", strerror(-err));
		goto out;
	}
	loop_set_coalesce(s.loop, cfg.server.batch_wait_us);
	err = loop_add_fd(s.loop, s.sigfd, EPOLLIN, on_signal, &s);
	if (err) {
		fprintf(stderr, "parley: cannot watch signals: %s\n", strerror(-err));
		goto out;
	}
	if (server_new(&srv, &cfg, s.loop, &lg, msg, sizeof(msg))) {
		fprintf(stderr, "parley: %s\n", msg[0] ? msg : "cannot start");
		srv = NULL;
		goto out;
	}
	s.srv = srv;
	if (cfg.server.http[0]) {
		struct http_env he = { .loop = s.loop, .lg = &lg, .srv = srv, .cfg = &cfg };
		int hrc = http_new(&s.http, &he, msg, sizeof(msg));
		if (hrc) {
			fprintf(stderr, "parley: %s\n", msg);
			rc = hrc;
			goto out;
		}
	}
	if (cfg.server.pid_file[0]) {
		err = write_pid(cfg.server.pid_file);
		if (err) {
			fprintf(stderr, "parley: --pid-file %s: %s\n", cfg.server.pid_file, strerror(-err));
			goto out;
		}
		pid_written = true;
	}
	/* Listening (SIP and HTTP) and loaded: ready for systemd. */
	notify(&s, "READY=1\nSTATUS=serving");
	uint64_t wd_usec = 0;
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec) {
		s.watchdog_ms = wd_usec / 2000 ? wd_usec / 2000 : 1;
		watchdog_tick(&s);
	}
	err = loop_run(s.loop);
	if (err) {
		log_error(&lg, "stop", "event loop failed: %s", strerror(-err));
		goto out;
	}
	rc = 0;
out:
	if (s.watchdog_ms)
		timer_stop(loop_timers(s.loop), &s.watchdog);
	http_free(s.http);
	if (srv)
		server_free(srv);
	if (pid_written)
		unlink(cfg.server.pid_file);
	loop_free(s.loop);
	if (s.sigfd >= 0)
		close(s.sigfd);
	log_close(&lg);
	return rc;
}
