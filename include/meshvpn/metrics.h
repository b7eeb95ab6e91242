/* metrics.h - Prometheus text exposition (format 0.0.4) for every daemon's --metrics
 * HOST:PORT: a listener serving GET /metrics over plain HTTP, and a text builder. */
#ifndef MESHVPN_METRICS_H
#define MESHVPN_METRICS_H

#include <stddef.h>
#include <uv.h>

/* Text that grows as it is written; a failed allocation sticks in oom and later writes
 * do nothing. */
struct metrics_text {
	char *buf;
	size_t len, cap;
	int oom;
};

void metrics_printf(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "# HELP name help" (when help) and "# TYPE name type". */
void metrics_head(struct metrics_text *t, const char *name, const char *type, const char *help);
/* A label value escaped as the format wants (\\, \", \n); cut to fit size. */
const char *metrics_label(const char *value, char *buf, size_t size);

/* Fills the body for one scrape; the server adds process_resident_memory_bytes and
 * process_cpu_seconds_total after it. */
typedef void (*metrics_fill_cb)(struct metrics_text *t, void *arg);

struct metrics_server;

/* Listens on hostport ("127.0.0.1:9101", "[::1]:9101"); 0 or -errno. */
int metrics_server_start(uv_loop_t *loop, const char *hostport, metrics_fill_cb fill, void *arg,
			 struct metrics_server **out);
/* Closes the listener and its connections; the memory goes once the loop runs. NULL ok. */
void metrics_server_free(struct metrics_server *m);

#endif
