/* Logging to stderr, one line per event: "<level> <module>: <message>".
 * Only the edges log (STYLE.md habit 6).  The level is process-wide. */
#pragma once
#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns level or -EINVAL. */
int log_parse_level(const char *s);
/* Every message is written with its control characters escaped (\n, \r, \t,
 * \xNN), so one event is always one line whatever a caller passes in.
 * log_escape copies src into dst (capacity n > 0) so; returns the length. */
size_t log_escape(char *dst, size_t n, const char *src);
void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(mod, ...) log_msg(LOG_LVL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_LVL_DEBUG, mod, __VA_ARGS__)
