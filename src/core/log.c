/* log.c: writes levelled log lines as text or JSON, one flushed line per event. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_open(struct log *lg, enum log_level level, bool json, const char *path)
{
	lg->level = level;
	lg->json = json;
	lg->f = stderr;
	lg->path[0] = '\0';
	if (!path || !*path)
		return 0;
	if (strlen(path) >= sizeof(lg->path))
		return -ENAMETOOLONG;
	FILE *f = fopen(path, "a");
	if (!f)
		return -errno;
	lg->f = f;
	strcpy(lg->path, path);
	return 0;
}

int log_reopen(struct log *lg)
{
	if (!lg->path[0])
		return 0;
	/* Open the new file before closing the old one, so a failure (say the directory
	 * became unwritable) leaves us logging to the old file rather than to nowhere. */
	FILE *f = fopen(lg->path, "a");
	if (!f)
		return -errno;
	if (lg->f && lg->f != stderr)
		fclose(lg->f);
	lg->f = f;
	return 0;
}

void log_close(struct log *lg)
{
	if (lg->f && lg->f != stderr)
		fclose(lg->f);
	lg->f = stderr;
	lg->path[0] = '\0';
}

/* "2026-11-29T01:02:03.456Z" into buf (at least 25 bytes). */
static void timestamp(char *buf, size_t n)
{
	uint64_t ms = clock_wall_ms();
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%03uZ", (unsigned)(ms % 1000));
}

/* Writes s as the inside of a JSON string: quotes, backslashes and control bytes escaped;
 * other bytes pass through, as the text we log is UTF-8 or ASCII. */
static void json_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				putc(c, f);
		}
	}
}

/* Writes s for a text line: control bytes (but tab) escaped as \n, \r or \xNN, so that
 * what a peer sent (a URL, a header) can neither end the line and forge the next one nor
 * drive the terminal; other bytes pass through. */
static void text_str(FILE *f, const char *s)
{
	for (;;) {
		size_t n = 0;
		while (s[n] && ((unsigned char)s[n] >= 0x20 || s[n] == '\t') && s[n] != 0x7f)
			n++;
		fwrite(s, 1, n, f);
		s += n;
		if (!*s)
			return;
		if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '\r')
			fputs("\\r", f);
		else
			fprintf(f, "\\x%02x", (unsigned char)*s);
		s++;
	}
}

/* The body of log_write and log_limited; ap is consumed. */
static void vwrite(struct log *lg, enum log_level level, const char *event, const char *fmt, va_list ap)
{
	FILE *f = lg->f ? lg->f : stderr;
	char small[1024], *msg = small;
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	if (n < 0) {
		va_end(again);
		return;
	}
	if ((size_t)n >= sizeof(small)) {
		/* Long lines (debug dumps of whole messages) are rare: allocate only then. */
		char *big = malloc((size_t)n + 1);
		if (big) {
			vsnprintf(big, (size_t)n + 1, fmt, again);
			msg = big;
		}
	}
	va_end(again);
	char ts[40];
	timestamp(ts, sizeof(ts));
	const char *lv = level_names[level <= LOG_DEBUG ? level : LOG_DEBUG];
	if (!event)
		event = "";
	if (lg->json) {
		fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts, lv);
		json_str(f, event);
		fputs("\",\"msg\":\"", f);
		json_str(f, msg);
		fputs("\"}\n", f);
	} else {
		fprintf(f, "%s %-5s ", ts, lv);
		if (*event) {
			text_str(f, event);
			fputs(": ", f);
		}
		text_str(f, msg);
		putc('\n', f);
	}
	/* One flush per line: tests and tail -f see each event as soon as it happens. */
	fflush(f);
	if (msg != small)
		free(msg);
}

void log_write(struct log *lg, enum log_level level, const char *event, const char *fmt, ...)
{
	if (!lg || level > lg->level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vwrite(lg, level, event, fmt, ap);
	va_end(ap);
}

/* ---- rate-limited lines ---- */

static unsigned lim_burst(const struct log_limit *lim)
{
	return lim->burst ? lim->burst : LOG_LIMIT_BURST;
}

static unsigned lim_interval(const struct log_limit *lim)
{
	return lim->interval_ms ? lim->interval_ms : LOG_LIMIT_INTERVAL_MS;
}

uint64_t log_limit_flush(struct log *lg, struct log_limit *lim, uint64_t now_ms)
{
	unsigned ival = lim_interval(lim);
	/* A clock that stepped back ends nothing. */
	if (!lim->running || now_ms < lim->start_ms || now_ms - lim->start_ms < ival)
		return 0;
	uint64_t held = lim->held;
	if (held) {
		/* Whole seconds when they are: "in the last 10 s", else "in the last 1500 ms". */
		if (ival % 1000 == 0)
			log_write(lg, lim->held_level, lim->event, "%llu more like this in the last %u s",
				  (unsigned long long)held, ival / 1000);
		else
			log_write(lg, lim->held_level, lim->event, "%llu more like this in the last %u ms",
				  (unsigned long long)held, ival);
	}
	lim->running = false;
	lim->written = 0;
	lim->held = 0;
	return held;
}

bool log_limited(struct log *lg, struct log_limit *lim, uint64_t now_ms, enum log_level level, const char *event,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool written = log_vlimited(lg, lim, now_ms, level, event, fmt, ap);
	va_end(ap);
	return written;
}

bool log_vlimited(struct log *lg, struct log_limit *lim, uint64_t now_ms, enum log_level level, const char *event,
		  const char *fmt, va_list ap)
{
	if (!lg || level > lg->level)
		return false;
	log_limit_flush(lg, lim, now_ms);
	if (!lim->running) {
		lim->running = true;
		lim->start_ms = now_ms;
	}
	if (lim->written < lim_burst(lim)) {
		lim->written++;
		vwrite(lg, level, event, fmt, ap);
		return true;
	}
	if (!lim->held || level < lim->held_level)
		lim->held_level = level;
	if (!lim->held) {
		/* The summary names the event of the lines it counts. */
		snprintf(lim->event, sizeof(lim->event), "%s", event ? event : "");
	}
	lim->held++;
	return false;
}
