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

/* Lines a remote party can cause at will (a rejected request, a failed handshake, an
 * anonymous registration) go through a limiter: at most per_sec lines a second of each
 * kind, the rest counted and summed up in one line ("log lines suppressed kind=K
 * suppressed=N") when the next second's first line of that kind comes, or at
 * log_limit_flush_all(). A static struct per kind; safe from several threads. */
struct log_limit {
	const char *kind;
	unsigned per_sec;
	long long window;              /* monotonic second the count is for */
	unsigned used;
	unsigned long long suppressed; /* in the current window, not yet summed up */
	struct log_limit *next;        /* every limiter used so far, for flush_all */
	int linked;
};
#define LOG_LIMIT_INIT(kind, per_sec) { (kind), (per_sec), 0, 0, 0, NULL, 0 }

/* 1: log this one; 0: suppressed (and counted). */
int log_limit_allow(struct log_limit *l);
/* Writes the summary of every limiter whose window has passed (call now and then, from
 * a timer: a flood's last second is summed up too). */
void log_limit_flush_all(void);
/* Lines suppressed so far, every kind together (for metrics). */
unsigned long long log_suppressed_total(void);

#define log_limited(lim, level, msg, ...) \
	do { if (log_limit_allow(lim)) log_write(level, msg, __VA_ARGS__); } while (0)

#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) do { if (log_get_level() >= LOG_DEBUG) log_write(LOG_DEBUG, msg, __VA_ARGS__); } while (0)

#endif
