/* metrics.c - Prometheus text exposition over plain HTTP (see metrics.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "meshvpn/conn.h"
#include "meshvpn/http.h"
#include "meshvpn/metrics.h"

struct metrics_server {
	uv_tcp_t tcp;
	uv_idle_t reaper;     /* frees the struct after a failed listen has closed tcp */
	struct http_server *http;
	metrics_fill_cb fill;
	void *arg;
};

void metrics_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = 1;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap : 4096;
		while (cap - t->len <= (size_t)n)
			cap *= 2;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->oom = 1;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

void metrics_head(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	if (help)
		metrics_printf(t, "# HELP %s %s\n", name, help);
	metrics_printf(t, "# TYPE %s %s\n", name, type);
}

const char *metrics_label(const char *value, char *buf, size_t size)
{
	size_t o = 0;

	if (!size)
		return buf;
	for (const char *p = value; *p && o + 2 < size; p++) {
		if (*p == '\\' || *p == '"') {
			buf[o++] = '\\';
			buf[o++] = *p;
		} else if (*p == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = 0;
	return buf;
}

static void process_metrics(struct metrics_text *t)
{
	long pages = 0, resident = 0;
	struct rusage ru;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	metrics_head(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	metrics_printf(t, "process_resident_memory_bytes %ld\n", resident * sysconf(_SC_PAGESIZE));
	if (!getrusage(RUSAGE_SELF, &ru)) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
			     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
		metrics_head(t, "process_cpu_seconds_total", "counter",
			     "Total user and system CPU time spent in seconds.");
		metrics_printf(t, "process_cpu_seconds_total %.3f\n", cpu);
	}
}

static void on_request(struct http_request *req, void *arg)
{
	struct metrics_server *m = arg;
	struct metrics_text t = { 0 };

	if (strcmp(req->path, "/metrics")) {
		http_respond_error(req, 404, "only /metrics here");
		return;
	}
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		http_respond_error(req, 405, "GET /metrics");
		return;
	}
	m->fill(&t, m->arg);
	process_metrics(&t);
	if (t.oom)
		http_respond_error(req, 500, "out of memory");
	else
		http_respond(req, 200, "text/plain; version=0.0.4", NULL, t.buf, t.len);
	free(t.buf);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct metrics_server *m = listener->data;
	struct conn *c;

	if (status < 0)
		return;
	if (!conn_plain_accept(listener, &c))
		http_server_add_conn(m->http, c);
}

static void free_on_close(uv_handle_t *h)
{
	free(h->data);
}

int metrics_server_start(uv_loop_t *loop, const char *hostport, metrics_fill_cb fill, void *arg,
			 struct metrics_server **out)
{
	const struct http_server_opts opts = { .max_body_bytes = 1024, .header_timeout_ms = 10000,
					       .idle_timeout_ms = 60000 };
	struct metrics_server *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	m->fill = fill;
	m->arg = arg;
	rc = http_server_new(loop, &opts, on_request, m, &m->http);
	if (rc) {
		free(m);
		return rc;
	}
	m->tcp.data = m;
	rc = conn_listen_tcp(loop, hostport, &m->tcp, on_connection);
	if (rc) {
		http_server_free(m->http);
		/* tcp may be closing already: free after its close, which comes first */
		uv_idle_init(loop, &m->reaper);
		m->reaper.data = m;
		uv_close((uv_handle_t *)&m->reaper, free_on_close);
		return rc;
	}
	*out = m;
	return 0;
}

void metrics_server_free(struct metrics_server *m)
{
	if (!m)
		return;
	http_server_free(m->http);
	uv_close((uv_handle_t *)&m->tcp, free_on_close);
}
