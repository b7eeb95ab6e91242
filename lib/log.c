/* log.c - logfmt-style event lines on stderr, one write(2) per line so lines from
 * several processes sharing a terminal or file never interleave. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meshvpn/log.h"

static enum log_level current = LOG_INFO;
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_limit *limits;         /* under limit_lock */
static unsigned long long suppressed_total;
static const char *const names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
	current = level;
}

enum log_level log_get_level(void)
{
	return current;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (s && !strcmp(s, names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static size_t escaped_len(unsigned char ch)
{
	return ch == '"' || ch == '\\' ? 2 : 1;
}

const char *log_quote(const char *value, char *buf, unsigned long size)
{
	size_t o = 0, qlen = 2, limit;
	int needs = !value[0];

	for (const char *p = value; *p; p++) {
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20)
			needs = 1;
		qlen += escaped_len((unsigned char)*p);
	}
	if (!needs && strlen(value) < size) {
		memcpy(buf, value, strlen(value) + 1);
		return buf;
	}
	if (size < 6) {   /* not even room for "..." */
		if (size)
			buf[0] = 0;
		return buf;
	}
	/* What does not fit is cut, and says so: "the start of it..." */
	limit = qlen + 1 <= size ? size - 2 : size - 5;
	buf[o++] = '"';
	for (const char *p = value; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (o + escaped_len(ch) > limit)
			break;
		if (ch == '"' || ch == '\\')
			buf[o++] = '\\';
		buf[o++] = ch < 0x20 ? '?' : (char)ch;
	}
	if (qlen + 1 > size) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

/* The key=value part of a line did not fit in max: cut it with room to close a quoted
 * value left open and to say so, so that the line stays one logfmt record. */
static int cut_kv(char *line, int start, int max)
{
	static const char mark[] = " cut=true";
	int n = max - (int)sizeof(mark) - 1, open = 0;

	if (n < start)
		return start;
	for (int i = start; i < n; i++) {
		if (line[i] == '\\' && open && i + 1 < n)
			i++;
		else if (line[i] == '"')
			open = !open;
	}
	if (open && line[n - 1] == '\\')
		n--;   /* never end a quoted value on half an escape */
	if (open)
		line[n++] = '"';
	memcpy(line + n, mark, sizeof(mark) - 1);
	return n + (int)sizeof(mark) - 1;
}

void log_write(enum log_level level, const char *msg, const char *kv, ...)
{
	char line[2048], qmsg[512];
	struct timespec ts;
	struct tm tm;
	int n;
	va_list ap;

	if (level > current)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, names[level],
		     log_quote(msg, qmsg, sizeof(qmsg)));
	if (n < 0)
		return;
	if (kv && kv[0] && (size_t)n < sizeof(line) - 2) {
		int start = ++n, m;

		line[start - 1] = ' ';
		va_start(ap, kv);
		m = vsnprintf(line + n, sizeof(line) - (size_t)n, kv, ap);
		va_end(ap);
		if (m > 0)
			n += m;
		if ((size_t)n > sizeof(line) - 2)
			n = cut_kv(line, start, (int)sizeof(line) - 2);
	}
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

/* -- bounded-rate lines -- */

static long long mono_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

/* Under limit_lock: a new second for l, after summing up the last one's suppressed lines. */
static void limit_roll(struct log_limit *l, long long now)
{
	if (l->suppressed)
		log_write(LOG_WARN, "log lines suppressed", "kind=%s suppressed=%llu", l->kind,
			  l->suppressed);
	l->suppressed = 0;
	l->used = 0;
	l->window = now;
}

int log_limit_allow(struct log_limit *l)
{
	long long now = mono_sec();
	int ok;

	pthread_mutex_lock(&limit_lock);
	if (!l->linked) {
		l->linked = 1;
		l->next = limits;
		limits = l;
	}
	if (l->window != now)
		limit_roll(l, now);
	ok = l->used < l->per_sec;
	if (ok) {
		l->used++;
	} else {
		l->suppressed++;
		suppressed_total++;
	}
	pthread_mutex_unlock(&limit_lock);
	return ok;
}

void log_limit_flush_all(void)
{
	long long now = mono_sec();

	pthread_mutex_lock(&limit_lock);
	for (struct log_limit *l = limits; l; l = l->next)
		if (l->window != now && l->suppressed)
			limit_roll(l, now);
	pthread_mutex_unlock(&limit_lock);
}

unsigned long long log_suppressed_total(void)
{
	unsigned long long n;

	pthread_mutex_lock(&limit_lock);
	n = suppressed_total;
	pthread_mutex_unlock(&limit_lock);
	return n;
}
