/* log.h: levelled logging as text or JSON lines, to stderr or a file reopened on SIGHUP. */
#ifndef PARLEY_CORE_LOG_H
#define PARLEY_CORE_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

struct log {
	enum log_level level;
	bool json;
	FILE *f;            /* stderr unless path is set */
	char path[512];     /* empty: stderr */
};

int log_open(struct log *lg, enum log_level level, bool json, const char *path);
int log_reopen(struct log *lg);   /* after SIGHUP (logrotate) */
void log_close(struct log *lg);
/* One line: "2026-11-29T01:02:03.456Z info  registered alice@a.test ..."; in JSON
 * {"ts":..,"level":..,"event":..,"msg":..}. event is a short word (register, call, ...). */
void log_write(struct log *lg, enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A function rather than a bare expression so that log_info(&lg, ...) on a struct compiles
 * cleanly: GCC's -Waddress rejects testing the address of a variable for NULL. */
static inline bool log__enabled(const struct log *lg, enum log_level lvl)
{
	return lg && lg->level >= lvl;
}
#define LOG_ENABLED(lg, lvl) log__enabled((lg), (lvl))
#define log_error(lg, ev, ...) do { if (LOG_ENABLED(lg, LOG_ERROR)) log_write(lg, LOG_ERROR, ev, __VA_ARGS__); } while (0)
#define log_warn(lg, ev, ...)  do { if (LOG_ENABLED(lg, LOG_WARN))  log_write(lg, LOG_WARN, ev, __VA_ARGS__); } while (0)
#define log_info(lg, ev, ...)  do { if (LOG_ENABLED(lg, LOG_INFO))  log_write(lg, LOG_INFO, ev, __VA_ARGS__); } while (0)
#define log_debug(lg, ev, ...) do { if (LOG_ENABLED(lg, LOG_DEBUG)) log_write(lg, LOG_DEBUG, ev, __VA_ARGS__); } while (0)

#endif
