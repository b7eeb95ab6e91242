/* http_fetch.c - base URLs (RFC 3986 subset: http, https, unix:) and a blocking request on a private loop, for CLIs and tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "meshvpn/http.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"

#define FETCH_MAX_BODY (16u * 1024 * 1024)
#define MAX_REQUEST_PATH 2048

/* -- URLs -- */

static int bad_char(char ch)
{
	return (unsigned char)ch <= ' ' || ch == 0x7f || ch == '#';
}

static int parse_port(const char *p, size_t len, uint16_t *port)
{
	unsigned long v = 0;

	if (!len || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (!v || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int parse_unix(const char *p, struct http_url *u)
{
	struct sockaddr_un sun;
	size_t len;

	if (!strncmp(p, "//", 2))
		p += 2;          /* unix:///run/x.sock */
	len = strlen(p);
	if (p[0] != '/')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] < ' ' || p[i] == 0x7f)
			return -EINVAL;
	if (len >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(u->host, p, len + 1);
	u->scheme = HTTP_SCHEME_UNIX;
	u->port = 0;
	snprintf(u->path, sizeof(u->path), "/");
	return 0;
}

int http_url_parse(const char *s, struct http_url *u)
{
	const char *p, *end, *host, *hend, *port = NULL;
	struct in6_addr a6;
	char tmp[64];
	size_t hlen, plen;
	int r;

	if (!s || !u)
		return -EINVAL;
	memset(u, 0, sizeof(*u));
	if (!strncasecmp(s, "unix:", 5))
		return parse_unix(s + 5, u);
	if (!strncasecmp(s, "https://", 8)) {
		u->scheme = HTTP_SCHEME_HTTPS;
		u->port = 443;
		p = s + 8;
	} else if (!strncasecmp(s, "http://", 7)) {
		u->scheme = HTTP_SCHEME_HTTP;
		u->port = 80;
		p = s + 7;
	} else {
		return -EINVAL;
	}
	end = p + strcspn(p, "/");
	if (*p == '[') {
		/* An IPv6 literal (no zone identifiers). */
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			return -EINVAL;
		host = p + 1;
		hlen = (size_t)(hend - host);
		if (!hlen || hlen >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, host, hlen);
		tmp[hlen] = 0;
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return -EINVAL;
		if (hend + 1 != end) {
			if (hend[1] != ':')
				return -EINVAL;
			port = hend + 2;
		}
	} else {
		host = p;
		hend = memchr(p, ':', (size_t)(end - p));
		if (hend)
			port = hend + 1;
		else
			hend = end;
		hlen = (size_t)(hend - host);
		if (!hlen)
			return -EINVAL;
		for (size_t i = 0; i < hlen; i++) {
			char ch = host[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			      ch == '.' || ch == '-' || ch == '_'))
				return -EINVAL;
		}
	}
	if (port) {
		r = parse_port(port, (size_t)(end - port), &u->port);
		if (r < 0)
			return r;
	}
	if (hlen >= sizeof(u->host))
		return -ENAMETOOLONG;
	memcpy(u->host, host, hlen);
	u->host[hlen] = 0;
	if (!*end) {
		snprintf(u->path, sizeof(u->path), "/");
		return 0;
	}
	plen = strlen(end);
	for (size_t i = 0; i < plen; i++)
		if (bad_char(end[i]))
			return -EINVAL;
	if (plen >= sizeof(u->path))
		return -ENAMETOOLONG;
	memcpy(u->path, end, plen + 1);
	return 0;
}

/* -- blocking fetch -- */

struct fetch {
	uv_loop_t loop;
	uv_timer_t timer;
	struct conn_connect *connecting;   /* until fetch_on_connect */
	struct http_client *cl;
	const char *method, *path, *host_header;
	const char *const *headers;
	const void *body;
	size_t body_len;
	const struct http_fetch_sink *sink;   /* streamed: nothing buffered */
	uint64_t timeout_ms;
	int finished;
	int result;
	int status;
	uint8_t *buf;
	size_t len, cap;
};

static void fetch_finish(struct fetch *f, int result)
{
	if (f->finished)
		return;
	f->finished = 1;
	f->result = result;
	uv_timer_stop(&f->timer);
}

static void fetch_on_response(const struct http_response *resp, void *arg)
{
	struct fetch *f = arg;

	f->status = resp->status;
	if (f->sink && f->sink->on_response)
		f->sink->on_response(resp, f->sink->arg);
}

static void fetch_on_body(const uint8_t *p, size_t len, void *arg)
{
	struct fetch *f = arg;
	size_t cap;
	uint8_t *b;

	if (f->finished)
		return;
	if (f->sink) {
		int r = f->sink->on_body ? f->sink->on_body(p, len, f->sink->arg) : 0;
		if (r) {
			http_client_cancel(f->cl);
			f->cl = NULL;
			fetch_finish(f, r);
		}
		return;
	}
	if (len > FETCH_MAX_BODY - f->len) {
		http_client_cancel(f->cl);
		f->cl = NULL;
		fetch_finish(f, -EFBIG);
		return;
	}
	if (f->len + len + 1 > f->cap) {
		cap = f->cap ? f->cap : 4096;
		while (cap < f->len + len + 1)
			cap *= 2;
		b = realloc(f->buf, cap);
		if (!b) {
			http_client_cancel(f->cl);
			f->cl = NULL;
			fetch_finish(f, -ENOMEM);
			return;
		}
		f->buf = b;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, p, len);
	f->len += len;
}

static void fetch_on_done(int status, void *arg)
{
	struct fetch *f = arg;

	f->cl = NULL;
	fetch_finish(f, status);
}

static void fetch_on_connect(struct conn *c, int status, void *arg)
{
	struct fetch *f = arg;
	static const struct http_client_cbs cbs = {
		.on_response = fetch_on_response,
		.on_body = fetch_on_body,
		.on_done = fetch_on_done,
	};
	int r;

	f->connecting = NULL;
	if (status < 0) {
		fetch_finish(f, status);
		return;
	}
	r = http_client_start(c, f->method, f->host_header, f->path, f->headers, f->body,
			      f->body_len, &cbs, f, &f->cl);
	if (r < 0) {
		f->cl = NULL;
		fetch_finish(f, r);
	}
}

static void fetch_timeout(uv_timer_t *t)
{
	struct fetch *f = t->data;

	if (f->cl) {
		http_client_cancel(f->cl);
		f->cl = NULL;
	}
	/* A connect (or TLS handshake) in flight goes too, or the loop would wait for it:
	 * up to 10 s per address tried, 15 s for a handshake. */
	conn_connect_cancel(f->connecting);
	f->connecting = NULL;
	fetch_finish(f, -ETIMEDOUT);
}

static void close_leftover(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h)) {
		log_warn("http fetch left a handle open", "type=%s", uv_handle_type_name(h->type));
		uv_close(h, NULL);
	}
}

static int start_connect(struct fetch *f, const struct http_url *u, const char *pin)
{
	struct tls_config *cfg;
	int r;

	switch (u->scheme) {
	case HTTP_SCHEME_UNIX:
		return conn_unix_connect(&f->loop, u->host, fetch_on_connect, f, &f->connecting);
	case HTTP_SCHEME_HTTP:
		return conn_tcp_connect(&f->loop, u->host, u->port, fetch_on_connect, f,
					&f->connecting);
	case HTTP_SCHEME_HTTPS:
		r = tls_config_client_new(NULL, pin, &cfg);
		if (r < 0)
			return r;
		r = tls_connect(&f->loop, cfg, u->host, u->port, fetch_on_connect, f,
				&f->connecting);
		tls_config_free(cfg);   /* the connection holds its own reference */
		return r;
	}
	return -EINVAL;
}

void http_url_host_header(const struct http_url *u, char *out, size_t size)
{
	if (u->scheme == HTTP_SCHEME_UNIX)
		snprintf(out, size, "localhost");
	else if (u->port == (u->scheme == HTTP_SCHEME_HTTPS ? 443 : 80))
		snprintf(out, size, strchr(u->host, ':') ? "[%s]" : "%s", u->host);
	else
		snprintf(out, size, strchr(u->host, ':') ? "[%s]:%u" : "%s:%u", u->host, u->port);
}

/* libuv writes with write(2): a peer that has gone raises SIGPIPE. Programs ignore it;
 * CLIs calling this may not, so it is held back in this thread for the fetch and a
 * SIGPIPE our writes raised is dropped afterwards. */
static int sigpipe_hold(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	return pthread_sigmask(SIG_BLOCK, &set, old) == 0;
}

static void sigpipe_release(const sigset_t *old, int held)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	if (!held || sigismember(old, SIGPIPE))
		return;   /* the caller blocks it: its business */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
		;
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int request_path(const struct http_url *u, const char *path, char *out, size_t size)
{
	size_t blen = strlen(u->path);
	int n;

	if (!path || !*path)
		path = "/";
	if (path[0] != '/')
		return -EINVAL;
	/* A base URL with a path prefixes it: "https://h/api" + "/v1/x" = "/api/v1/x". */
	while (blen && u->path[blen - 1] == '/')
		blen--;
	n = snprintf(out, size, "%.*s%s", (int)blen, u->path, path);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* Runs the request f describes to its end on a private loop. */
static int fetch_run(struct fetch *f, const char *base_url, const char *pin)
{
	struct http_url u;
	char req_path[MAX_REQUEST_PATH], host_header[300];
	sigset_t old_mask;
	int r, held;

	r = http_url_parse(base_url, &u);
	if (r < 0)
		return r;
	if (f->path)
		r = request_path(&u, f->path, req_path, sizeof(req_path));
	else
		r = snprintf(req_path, sizeof(req_path), "%s", u.path) < 0 ? -EINVAL : 0;
	if (r < 0)
		return r;
	http_url_host_header(&u, host_header, sizeof(host_header));
	f->path = req_path;
	f->host_header = host_header;
	r = uv_loop_init(&f->loop);
	if (r < 0)
		return r;
	held = sigpipe_hold(&old_mask);
	uv_timer_init(&f->loop, &f->timer);
	f->timer.data = f;
	if (f->timeout_ms)
		uv_timer_start(&f->timer, fetch_timeout, f->timeout_ms, 0);

	r = start_connect(f, &u, pin);
	if (r < 0)
		fetch_finish(f, r);
	while (!f->finished) {
		if (!uv_run(&f->loop, UV_RUN_ONCE) && !f->finished) {
			fetch_finish(f, -EIO);   /* nothing left that could finish it */
			break;
		}
	}

	/* Let everything close the way it was meant to (a cancelled connect, a conn
	 * flushing), then make sure the loop can go. */
	uv_close((uv_handle_t *)&f->timer, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_walk(&f->loop, close_leftover, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&f->loop) < 0)
		log_warn("http fetch loop not closed", "url=%s", base_url);
	sigpipe_release(&old_mask, held);
	f->path = f->host_header = NULL;   /* they were this frame's */
	return f->result;
}

int http_fetch(const char *base_url, const char *pin, const char *method, const char *path,
	       const char *const *headers, const void *body, size_t len,
	       int *status, char **body_out, size_t *body_len, uint64_t timeout_ms)
{
	struct fetch f;
	int r;

	if (status)
		*status = 0;
	if (body_out)
		*body_out = NULL;
	if (body_len)
		*body_len = 0;
	memset(&f, 0, sizeof(f));
	f.method = method ? method : "GET";
	f.path = path && *path ? path : "/";
	f.headers = headers;
	f.body = body;
	f.body_len = body ? len : 0;
	f.timeout_ms = timeout_ms;
	r = fetch_run(&f, base_url, pin);
	if (r == 0) {
		if (!f.buf && !(f.buf = malloc(1)))
			r = -ENOMEM;
		else
			f.buf[f.len] = 0;
	}
	if (status)
		*status = f.status;
	if (r == 0 && body_out) {
		*body_out = (char *)f.buf;
		f.buf = NULL;
		if (body_len)
			*body_len = f.len;
	}
	free(f.buf);
	return r;
}

int http_fetch_stream(const char *url, const char *pin, const char *const *headers,
		      const struct http_fetch_sink *sink, int *status, uint64_t timeout_ms)
{
	struct fetch f;
	int r;

	memset(&f, 0, sizeof(f));
	f.method = "GET";   /* f.path NULL: the URL's own */
	f.headers = headers;
	f.sink = sink;
	f.timeout_ms = timeout_ms;
	r = fetch_run(&f, url, pin);
	if (status)
		*status = f.status;
	return r;
}
