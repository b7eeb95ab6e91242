/* log.h - one line per event to stderr: ts=... level=... msg="..." key=value ... */
#ifndef MESHVPN_LOG_H
#define MESHVPN_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug"; returns -EINVAL for anything else. */
int log_parse_level(const char *s, enum log_level *out);

/* kv is a printf format for the key=value part (may be NULL or ""). Values that may
 * hold spaces or quotes should go through %s of log_quote() output. */
void log_write(enum log_level level, const char *msg, const char *kv, ...)
	__attribute__((format(printf, 3, 4)));

/* Quotes a value for key="value" when it needs it; returns buf. */
const char *log_quote(const char *value, char *buf, unsigned long size);

#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) do { if (log_get_level() >= LOG_DEBUG) log_write(LOG_DEBUG, msg, __VA_ARGS__); } while (0)

#endif
