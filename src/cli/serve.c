/* serve.c: `parley serve`: runs the server on the event loop until SIGINT or SIGTERM. */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
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
};

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
		} else {
			log_info(s->log, "stop", "stopping on %s", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			loop_stop(s->loop);
		}
	}
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
	struct serve s = { .log = &lg, .sigfd = -1 };
	struct server *srv = NULL;
	struct http *http = NULL;
	char msg[512] = "";
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
	if (cfg.server.http[0]) {
		struct http_env he = { .loop = s.loop, .lg = &lg, .srv = srv, .listen = cfg.server.http };
		int hrc = http_new(&http, &he, msg, sizeof(msg));
		if (hrc) {
			fprintf(stderr, "parley: %s\n", msg);
			rc = hrc;
			goto out;
		}
	}
	err = loop_run(s.loop);
	if (err) {
		log_error(&lg, "stop", "event loop failed: %s", strerror(-err));
		goto out;
	}
	rc = 0;
out:
	http_free(http);
	if (srv)
		server_free(srv);
	loop_free(s.loop);
	if (s.sigfd >= 0)
		close(s.sigfd);
	log_close(&lg);
	return rc;
}
