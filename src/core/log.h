/* log.h: levelled logging as text or JSON lines, to stderr or a file reopened on SIGHUP. */
#ifndef PARLEY_CORE_LOG_H
#define PARLEY_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

struct log {
	enum log_level level;
	bool json;
	FILE *f;        /* stderr unless path is set */
	char path[512]; /* empty: stderr */
};

int log_open(struct log *lg, enum log_level level, bool json, const char *path);
int log_reopen(struct log *lg); /* after SIGHUP (logrotate) */
void log_close(struct log *lg);
/* One line: "2026-11-29T01:02:03.456Z info  registered alice@a.test ..."; in JSON
 * {"ts":..,"level":..,"event":..,"msg":..}. event is a short word (register, call, ...). */
void log_write(struct log *lg, enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Rate-limited lines: a flood of junk must not write hundreds of megabytes of log. The
 * caller owns one struct log_limit per kind of event ("reject", "drop", "auth") and writes
 * through log_limited: the first `burst` lines of each interval are written, the rest only
 * counted, and once the interval is over one line tells how many were held back:
 *   "... warn  drop: 4821 more like this in the last 10 s"
 * at the most severe level among them. The interval starts at the first line after a quiet
 * spell. The summary is written at the next log_limited call of that kind, or by
 * log_limit_flush, which the server calls from a timer so that it is never late by more
 * than the timer's period. A zeroed struct log_limit is ready to use with the defaults.
 */
#define LOG_LIMIT_BURST 10
#define LOG_LIMIT_INTERVAL_MS 10000

struct log_limit {
	unsigned burst;       /* lines written per interval; 0: LOG_LIMIT_BURST */
	unsigned interval_ms; /* 0: LOG_LIMIT_INTERVAL_MS */
	/* state */
	bool running;              /* an interval has started */
	uint64_t start_ms;         /* when it started */
	unsigned written;          /* lines written in it */
	uint64_t held;             /* lines counted and not written */
	enum log_level held_level; /* most severe level held */
	char event[32];            /* event of the held lines, for the summary */
};

/* Writes the line as log_write would, or counts it when this interval's burst is spent.
 * now_ms is the caller's monotonic clock. Lines below lg's level are neither written nor
 * counted. Returns whether the line was written. */
bool log_limited(struct log *lg, struct log_limit *lim, uint64_t now_ms, enum log_level level, const char *event,
		 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* log_limited with a va_list (consumed), for callers that wrap it. */
bool log_vlimited(struct log *lg, struct log_limit *lim, uint64_t now_ms, enum log_level level, const char *event,
		  const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
/* Ends the interval if it is over at now_ms, writing the summary line if lines were held.
 * Returns the number of lines the summary covered (0: none written). */
uint64_t log_limit_flush(struct log *lg, struct log_limit *lim, uint64_t now_ms);

/* A function rather than a bare expression so that log_info(&lg, ...) on a struct compiles
 * cleanly: GCC's -Waddress rejects testing the address of a variable for NULL. */
static inline bool log__enabled(const struct log *lg, enum log_level lvl)
{
	return lg && lg->level >= lvl;
}
#define LOG_ENABLED(lg, lvl) log__enabled((lg), (lvl))
#define log_error(lg, ev, ...)                                     \
	do {                                                       \
		if (LOG_ENABLED(lg, LOG_ERROR))                    \
			log_write(lg, LOG_ERROR, ev, __VA_ARGS__); \
	} while (0)
#define log_warn(lg, ev, ...)                                     \
	do {                                                      \
		if (LOG_ENABLED(lg, LOG_WARN))                    \
			log_write(lg, LOG_WARN, ev, __VA_ARGS__); \
	} while (0)
#define log_info(lg, ev, ...)                                     \
	do {                                                      \
		if (LOG_ENABLED(lg, LOG_INFO))                    \
			log_write(lg, LOG_INFO, ev, __VA_ARGS__); \
	} while (0)
#define log_debug(lg, ev, ...)                                     \
	do {                                                       \
		if (LOG_ENABLED(lg, LOG_DEBUG))                    \
			log_write(lg, LOG_DEBUG, ev, __VA_ARGS__); \
	} while (0)

#endif
