/* test_log.c: unit tests of log lines and of rate-limited lines with their summaries, written to a temporary file. */
#include "core/log.h"

#include "unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A temporary log file, removed by done(). */
struct tmplog {
	struct log lg;
	char path[64];
};

static void start(struct tmplog *t, enum log_level level, bool json)
{
	strcpy(t->path, "/tmp/parley-test-log-XXXXXX");
	int fd = mkstemp(t->path);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(log_open(&t->lg, level, json, t->path), 0);
}

static void done(struct tmplog *t)
{
	log_close(&t->lg);
	unlink(t->path);
}

/* The file's lines so far (the log flushes each line); returns how many, up to max. Each
 * line is cut at the first space after the timestamp: lines[i] starts at the level. */
static int read_lines(struct tmplog *t, char lines[][256], int max)
{
	FILE *f = fopen(t->path, "r");
	CHECK(f != NULL);
	if (!f)
		return 0;
	int n = 0;
	char buf[1024];
	while (fgets(buf, sizeof(buf), f)) {
		if (n < max) {
			buf[strcspn(buf, "\n")] = '\0';
			char *sp = t->lg.json ? buf : strchr(buf, ' ');
			const char *from = sp ? (t->lg.json ? sp : sp + 1) : buf;
			size_t k = strlen(from);
			if (k > 255)
				k = 255;
			memcpy(lines[n], from, k);
			lines[n][k] = '\0';
		}
		n++;
	}
	fclose(f);
	return n;
}

static char L[64][256];

/* Plain lines: level, event and message, in text and JSON. */
static void t_write(void)
{
	struct tmplog t;
	start(&t, LOG_INFO, false);
	log_info(&t.lg, "register", "alice@%s", "a.test");
	log_debug(&t.lg, "msg", "not written");
	log_write(&t.lg, LOG_WARN, NULL, "no event");
	CHECK_INT(read_lines(&t, L, 64), 2);
	CHECK(strcmp(L[0], "info  register: alice@a.test") == 0);
	CHECK(strcmp(L[1], "warn  no event") == 0);
	done(&t);

	start(&t, LOG_INFO, true);
	log_info(&t.lg, "call", "a \"b\"\n");
	CHECK_INT(read_lines(&t, L, 64), 1);
	CHECK(strstr(L[0], "\"level\":\"info\",\"event\":\"call\",\"msg\":\"a \\\"b\\\"\\n\"}") != NULL);
	done(&t);
}

/* Text lines escape control bytes, so a peer's text cannot end a line and forge the next
 * one: CR and LF as \r and \n, the rest as \xNN; tabs and bytes over 0x7f pass. */
static void t_text_escapes(void)
{
	struct tmplog t;
	start(&t, LOG_DEBUG, false);
	log_debug(&t.lg, "http", "GET /a\r\n2026-01-01T00:00:00.000Z info  http: admin root logged in");
	log_info(&t.lg, "ev\nx", "tab\there \x1b[31m del\x7f caf\xc3\xa9");
	CHECK_INT(read_lines(&t, L, 64), 2);
	CHECK(strcmp(L[0], "debug http: GET /a\\r\\n2026-01-01T00:00:00.000Z info  http: admin root logged in") == 0);
	CHECK(strcmp(L[1], "info  ev\\nx: tab\there \\x1b[31m del\\x7f caf\xc3\xa9") == 0);
	done(&t);
}

/* The first ten lines of an interval are written, the rest counted; the next interval's
 * first call writes the summary, then its own line. */
static void t_burst_then_summary(void)
{
	struct tmplog t;
	start(&t, LOG_INFO, false);
	struct log_limit lim = { 0 };
	uint64_t now = 1000;
	int written = 0;
	for (int i = 0; i < 1000; i++)
		written += log_limited(&t.lg, &lim, now + (uint64_t)i, LOG_WARN, "reject", "junk %d", i);
	CHECK_INT(written, LOG_LIMIT_BURST);
	CHECK_INT(read_lines(&t, L, 64), LOG_LIMIT_BURST);
	CHECK(strcmp(L[0], "warn  reject: junk 0") == 0);
	CHECK(strcmp(L[9], "warn  reject: junk 9") == 0);
	/* 9.999 s after the first: still held. */
	CHECK(!log_limited(&t.lg, &lim, now + LOG_LIMIT_INTERVAL_MS - 1, LOG_WARN, "reject", "late"));
	CHECK_INT(read_lines(&t, L, 64), LOG_LIMIT_BURST);
	/* 10 s: the summary of the 991 held lines, then this line. */
	CHECK(log_limited(&t.lg, &lim, now + LOG_LIMIT_INTERVAL_MS, LOG_WARN, "reject", "next"));
	CHECK_INT(read_lines(&t, L, 64), LOG_LIMIT_BURST + 2);
	CHECK(strcmp(L[10], "warn  reject: 991 more like this in the last 10 s") == 0);
	CHECK(strcmp(L[11], "warn  reject: next") == 0);
	done(&t);
}

/* The server's timer writes the summary when the interval is over, once; with nothing
 * held it writes nothing. */
static void t_flush(void)
{
	struct tmplog t;
	start(&t, LOG_INFO, false);
	struct log_limit lim = { 0 };
	CHECK_INT(log_limit_flush(&t.lg, &lim, 0), 0);
	for (int i = 0; i < 25; i++)
		log_limited(&t.lg, &lim, 500, LOG_INFO, "drop", "x");
	CHECK_INT(log_limit_flush(&t.lg, &lim, 5000), 0);
	CHECK_INT(log_limit_flush(&t.lg, &lim, 10500), 15);
	CHECK_INT(log_limit_flush(&t.lg, &lim, 30000), 0);
	CHECK_INT(read_lines(&t, L, 64), 11);
	CHECK(strcmp(L[10], "info  drop: 15 more like this in the last 10 s") == 0);
	/* A quiet interval: ten lines or fewer, no summary. */
	for (int i = 0; i < 10; i++)
		log_limited(&t.lg, &lim, 40000, LOG_INFO, "drop", "y");
	CHECK_INT(log_limit_flush(&t.lg, &lim, 60000), 0);
	CHECK_INT(read_lines(&t, L, 64), 21);
	done(&t);
}

/* Lines below the log's level are not counted; the summary takes the most severe level
 * held; limits of different events are independent; burst and interval can be set. */
static void t_levels_and_kinds(void)
{
	struct tmplog t;
	start(&t, LOG_INFO, false);
	struct log_limit a = { .burst = 1, .interval_ms = 1500 }, b = { .burst = 2 };
	CHECK(!log_limited(&t.lg, &a, 0, LOG_DEBUG, "auth", "hidden"));
	CHECK(log_limited(&t.lg, &a, 0, LOG_INFO, "auth", "first"));
	CHECK(!log_limited(&t.lg, &a, 1, LOG_INFO, "auth", "second"));
	CHECK(!log_limited(&t.lg, &a, 2, LOG_ERROR, "auth", "third"));
	CHECK(!log_limited(&t.lg, &a, 3, LOG_WARN, "auth", "fourth"));
	CHECK(!log_limited(&t.lg, &a, 4, LOG_DEBUG, "auth", "hidden"));
	CHECK(log_limited(&t.lg, &b, 5, LOG_WARN, "drop", "b1"));
	CHECK(log_limited(&t.lg, &b, 6, LOG_WARN, "drop", "b2"));
	CHECK(!log_limited(&t.lg, &b, 7, LOG_WARN, "drop", "b3"));
	CHECK_INT(log_limit_flush(&t.lg, &a, 1500), 3);
	CHECK_INT(log_limit_flush(&t.lg, &b, 1500), 0);
	CHECK_INT(read_lines(&t, L, 64), 4);
	CHECK(strcmp(L[0], "info  auth: first") == 0);
	CHECK(strcmp(L[3], "error auth: 3 more like this in the last 1500 ms") == 0);
	CHECK_INT(log_limit_flush(&t.lg, &b, 10007), 1);
	CHECK_INT(read_lines(&t, L, 64), 5);
	CHECK(strcmp(L[4], "warn  drop: 1 more like this in the last 10 s") == 0);
	done(&t);

	/* JSON: the summary is a line like any other. */
	start(&t, LOG_INFO, true);
	struct log_limit j = { .burst = 1 };
	log_limited(&t.lg, &j, 0, LOG_WARN, "reject", "one");
	log_limited(&t.lg, &j, 0, LOG_WARN, "reject", "two");
	log_limit_flush(&t.lg, &j, 10000);
	CHECK_INT(read_lines(&t, L, 64), 2);
	CHECK(strstr(L[1], "\"level\":\"warn\",\"event\":\"reject\",\"msg\":\"1 more like this in the last 10 s\"}") !=
	      NULL);
	done(&t);
}

/* A million junk lines, 167 every 10 s, write eleven lines per interval, not one each. */
static void t_flood(void)
{
	struct tmplog t;
	start(&t, LOG_INFO, false);
	struct log_limit lim = { 0 };
	for (uint64_t i = 0; i < 1000000; i++)
		log_limited(&t.lg, &lim, i * 60, LOG_WARN, "reject", "bad request from 192.0.2.%u: %s",
			    (unsigned)(i % 250), "malformed Via");
	log_limit_flush(&t.lg, &lim, 60000000);
	struct stat sb;
	CHECK_INT(stat(t.path, &sb), 0);
	/* Intervals start at the first line after the last one ended: 167 lines of 60 ms
	 * each, so about 6000 intervals of ten lines and a summary of under 100 bytes each. */
	CHECK(sb.st_size < 6000 * 11 * 100);
	int n = read_lines(&t, L, 64);
	CHECK(n > 5900 * 11 && n <= 6000 * 11);
	CHECK(strcmp(L[10], "warn  reject: 157 more like this in the last 10 s") == 0);
	CHECK(strncmp(L[11], "warn  reject: bad request from 192.0.2.167: malformed Via", 60) == 0);
	done(&t);
}

static const struct unit_case cases[] = {
	{ "write", t_write }, { "burst_then_summary", t_burst_then_summary },
	{ "flush", t_flush }, { "levels_and_kinds", t_levels_and_kinds },
	{ "flood", t_flood }, { "text_escapes", t_text_escapes },
};
UNIT_MAIN(cases)
