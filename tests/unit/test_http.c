/* test_http.c - http_server.c, http_response.c, http_client.c and http_fetch.c on loopback Unix/TCP/TLS sockets: limits, timeouts, pipelining, streams, URL parsing. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "meshvpn/http.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "support.h"

#define DEADLINE_MS 10000
#define RAW_MAX (256 * 1024)
#define MAX_PATHS 16

/* -- the test environment: a loop, an HTTP server on a Unix socket, a handler -- */

struct env {
	uv_loop_t loop;
	char dir[64], sock[128];
	uv_pipe_t listener;
	struct http_server *srv;
	struct http_server_opts opts;
	/* handler */
	int requests;
	char paths[MAX_PATHS][64];
	struct http_request *held;      /* "/hold": answered by the test */
	struct http_stream *stream;     /* "/stream" */
	int stream_closed;
	int stream_chunks_left;
	uv_timer_t stream_timer;
	/* a raw server instead of HTTP, for client tests: writes canned on accept */
	const char *canned;
	size_t canned_len;
	int canned_close;               /* and closes when the request arrives */
	struct conn *raw_peer;
	/* "/upgrade": the connection taken over */
	struct conn *up;
	char upbuf[256];
	size_t uplen;
	int up_ended;
};

static struct env E;

#define WAIT_FOR(cond) SUPPORT_WAIT_FOR(&E.loop, cond, DEADLINE_MS)

static void run_for(uint64_t ms)
{
	support_run_for(&E.loop, ms);
}

static void stream_tick(uv_timer_t *t)
{
	static const char *chunks[] = { "one", "two", "three" };
	int i = 3 - E.stream_chunks_left;

	if (!E.stream || E.stream_chunks_left <= 0)
		return;
	assert_int_equal(http_stream_write(E.stream, chunks[i], strlen(chunks[i])), 0);
	if (--E.stream_chunks_left > 0)
		uv_timer_start(&E.stream_timer, stream_tick, 20, 0);
}

static void on_stream_close(struct http_stream *s, void *arg)
{
	assert_ptr_equal(s, E.stream);
	assert_ptr_equal(arg, &E);
	E.stream_closed++;
	E.stream = NULL;
}

static void up_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct env *e = arg;

	assert_ptr_equal(c, e->up);
	assert_true(e->uplen + len < sizeof(e->upbuf));
	memcpy(e->upbuf + e->uplen, buf, len);
	e->uplen += len;
	e->upbuf[e->uplen] = 0;
}

static void up_end(struct conn *c, int status, void *arg)
{
	struct env *e = arg;

	e->up_ended = 1;
	conn_close(c);
	e->up = NULL;
}

static void handler(struct http_request *req, void *arg)
{
	struct env *e = arg;
	char extra[128];

	if (e->requests < MAX_PATHS)
		snprintf(e->paths[e->requests], sizeof(e->paths[0]), "%s", req->path);
	e->requests++;
	assert_non_null(req->body);
	assert_int_equal(req->body[req->body_len], 0);
	if (!strcmp(req->path, "/hello")) {
		assert_int_equal(http_respond(req, 200, "text/plain", NULL, "hello", 5), 0);
	} else if (!strcmp(req->path, "/echo")) {
		const char *ct = http_request_header(req, "content-type");
		snprintf(extra, sizeof(extra), "X-Method: %s\r\nX-Headers: %d", req->method, req->n_headers);
		assert_int_equal(http_respond(req, 200, ct ? ct : "application/octet-stream", extra,
					      req->body, req->body_len), 0);
	} else if (!strcmp(req->path, "/hold")) {
		assert_null(e->held);
		e->held = req;
	} else if (!strcmp(req->path, "/stream")) {
		assert_null(e->stream);
		assert_int_equal(http_stream_start(req, 200, "application/x-ndjson", on_stream_close, e,
						   &e->stream), 0);
		e->stream_chunks_left = 3;
		uv_timer_start(&e->stream_timer, stream_tick, 20, 0);
	} else if (!strcmp(req->path, "/error")) {
		assert_int_equal(http_respond_error(req, 409, "name \"x\" taken\n\\ \x01 caf\xc3\xa9"), 0);
	} else if (!strcmp(req->path, "/badutf8")) {
		assert_int_equal(http_respond_error(req, 400, "bad \xff\xfe byte"), 0);
	} else if (!strcmp(req->path, "/json")) {
		assert_int_equal(http_respond_json(req, 201, json_pack("{s:i}", "n", 1)), 0);
	} else if (!strcmp(req->path, "/nojson")) {
		assert_int_equal(http_respond_json(req, 200, NULL), 0);
	} else if (!strcmp(req->path, "/upgrade")) {
		if (http_upgrade(req, "test-proto", up_read, up_end, e, &e->up)) {
			assert_int_equal(http_respond_error(req, 400, "no upgrade asked for"), 0);
			return;
		}
		assert_int_equal(conn_write(e->up, "HELLO", 5), 0);
	} else if (!strcmp(req->path, "/nocontent")) {
		assert_int_equal(http_respond(req, 204, NULL, NULL, NULL, 0), 0);
	} else {
		assert_int_equal(http_respond_error(req, 404, "no such route"), 0);
	}
}

/* Closes once the request has arrived (closing before could lose it to a reset). */
static void raw_peer_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	if (E.canned_close && E.raw_peer == c) {
		conn_close(c);
		E.raw_peer = NULL;
	}
}

static void raw_peer_end(struct conn *c, int status, void *arg)
{
	conn_close(c);
	E.raw_peer = NULL;
}

static void on_connection(uv_stream_t *l, int status)
{
	struct conn *c;

	assert_int_equal(status, 0);
	assert_int_equal(conn_plain_accept(l, &c), 0);
	if (E.canned) {
		assert_null(E.raw_peer);
		E.raw_peer = c;
		conn_set_callbacks(c, raw_peer_read, raw_peer_end, NULL);
		assert_int_equal(conn_write(c, E.canned, E.canned_len), 0);
		return;
	}
	http_server_add_conn(E.srv, c);
}

static void server_start(void)
{
	if (!E.srv)
		assert_int_equal(http_server_new(&E.loop, &E.opts, handler, &E, &E.srv), 0);
}

static int setup(void **state)
{
	memset(&E, 0, sizeof(E));
	assert_int_equal(uv_loop_init(&E.loop), 0);
	snprintf(E.dir, sizeof(E.dir), "/tmp/test_http.XXXXXX");
	assert_non_null(mkdtemp(E.dir));
	snprintf(E.sock, sizeof(E.sock), "%s/http.sock", E.dir);
	assert_int_equal(conn_listen_unix(&E.loop, E.sock, &E.listener, on_connection), 0);
	E.opts.header_timeout_ms = 5000;
	E.opts.idle_timeout_ms = 5000;
	uv_timer_init(&E.loop, &E.stream_timer);
	return 0;
}

static int teardown(void **state)
{
	if (E.raw_peer)
		conn_close(E.raw_peer);
	http_server_free(E.srv);
	uv_close((uv_handle_t *)&E.listener, NULL);
	uv_close((uv_handle_t *)&E.stream_timer, NULL);
	for (int i = 0; i < 200 && uv_run(&E.loop, UV_RUN_NOWAIT); i++)
		usleep(1000);
	unlink(E.sock);
	rmdir(E.dir);
	assert_int_equal(uv_loop_close(&E.loop), 0);
	return 0;
}

/* -- a raw client: writes bytes, collects what comes back -- */

struct raw {
	struct conn *c;
	int connected, ended, end_status;
	char buf[RAW_MAX + 1];
	size_t len;
	uv_timer_t drip;
	const char *drip_data;
	size_t drip_len, drip_off;
};

static void raw_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct raw *r = arg;

	assert_true(r->len + len <= RAW_MAX);
	memcpy(r->buf + r->len, buf, len);
	r->len += len;
	r->buf[r->len] = 0;
}

static void raw_end(struct conn *c, int status, void *arg)
{
	struct raw *r = arg;

	r->ended = 1;
	r->end_status = status;
	conn_close(c);
	r->c = NULL;
}

static void raw_connected(struct conn *c, int status, void *arg)
{
	struct raw *r = arg;

	assert_int_equal(status, 0);
	r->c = c;
	r->connected = 1;
	conn_set_callbacks(c, raw_read, raw_end, r);
}

static struct raw *raw_open(void)
{
	struct raw *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	server_start();
	assert_int_equal(conn_unix_connect(&E.loop, E.sock, raw_connected, r, NULL), 0);
	WAIT_FOR(r->connected);
	return r;
}

static void raw_send(struct raw *r, const char *s)
{
	assert_non_null(r->c);
	assert_int_equal(conn_write(r->c, s, strlen(s)), 0);
}

static void raw_free(struct raw *r)
{
	if (r->drip_data) {
		uv_close((uv_handle_t *)&r->drip, NULL);
		uv_run(&E.loop, UV_RUN_NOWAIT);
	}
	if (r->c)
		conn_close(r->c);
	free(r);
}

static int count_str(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static int responses(struct raw *r)
{
	return count_str(r->buf, "HTTP/1.1 ");
}

/* -- server: the basics -- */

static void test_http_simple_get(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "\r\n\r\nhello"));
	assert_non_null(strstr(r->buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r->buf, "Content-Length: 5\r\n"));
	assert_non_null(strstr(r->buf, "Content-Type: text/plain\r\n"));
	assert_null(strstr(r->buf, "Connection: close"));
	assert_int_equal(E.requests, 1);
	assert_string_equal(E.paths[0], "/hello");
	assert_int_equal(http_server_conn_count(E.srv), 1);
	assert_false(r->ended);
	raw_free(r);
	WAIT_FOR(http_server_conn_count(E.srv) == 0);
}

static void test_http_post_body(void **state)
{
	struct raw *r = raw_open();
	const char *body = "{\"name\":\"laptop\",\"n\":[1,2,3]}";
	char req[512];

	snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	raw_send(r, req);
	WAIT_FOR(strstr(r->buf, body));
	assert_non_null(strstr(r->buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r->buf, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(r->buf, "X-Method: POST\r\n"));
	assert_non_null(strstr(r->buf, "X-Headers: 3\r\n"));
	raw_free(r);
}

static void test_http_chunked_request_body(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "hello, world"));
	assert_non_null(strstr(r->buf, "Content-Length: 12\r\n"));
	raw_free(r);
}

static void test_http_keepalive_two_requests(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(responses(r) == 1 && strstr(r->buf, "hello"));
	raw_send(r, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
	WAIT_FOR(responses(r) == 2 && strstr(r->buf, "\r\n\r\nabc"));
	assert_int_equal(E.requests, 2);
	assert_int_equal(http_server_conn_count(E.srv), 1);
	/* Connection: close is honoured after the response. */
	raw_send(r, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	WAIT_FOR(r->ended);
	assert_int_equal(responses(r), 3);
	assert_non_null(strstr(r->buf, "Connection: close\r\n"));
	WAIT_FOR(http_server_conn_count(E.srv) == 0);
	raw_free(r);
}

static void test_http_pipelined_in_order(void **state)
{
	struct raw *r = raw_open();
	const char *first, *second, *third;

	/* The first request is answered later: the others must wait behind it. */
	raw_send(r, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
		    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
		    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlast");
	WAIT_FOR(E.held);
	run_for(50);
	assert_int_equal(E.requests, 1);
	assert_int_equal(r->len, 0);
	assert_int_equal(http_respond(E.held, 200, "text/plain", NULL, "first", 5), 0);
	E.held = NULL;
	WAIT_FOR(responses(r) == 3 && strstr(r->buf, "last"));
	first = strstr(r->buf, "first");
	second = strstr(r->buf, "hello");
	third = strstr(r->buf, "last");
	assert_true(first && second && third && first < second && second < third);
	assert_int_equal(E.requests, 3);
	assert_string_equal(E.paths[1], "/hello");
	assert_string_equal(E.paths[2], "/echo");
	assert_false(r->ended);
	raw_free(r);
}

static void test_http_many_pipelined_sync(void **state)
{
	struct raw *r = raw_open();
	char big[100 * 34 + 1];
	size_t n = 0;

	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_send(r, big);
	WAIT_FOR(count_str(r->buf, "hello") == 100);
	assert_int_equal(E.requests, 100);
	raw_free(r);
}

static void test_http_byte_by_byte(void **state)
{
	struct raw *r = raw_open();
	const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nX-Long: abcdefgh\r\nContent-Length: 6\r\n\r\nsplit!";
	char one[2] = { 0, 0 };

	for (const char *p = req; *p; p++) {
		one[0] = *p;
		raw_send(r, one);
		uv_run(&E.loop, UV_RUN_NOWAIT);
	}
	WAIT_FOR(strstr(r->buf, "split!"));
	assert_non_null(strstr(r->buf, "X-Headers: 3\r\n"));
	raw_free(r);
}

static void test_http_head_and_no_content(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(responses(r) == 2);
	run_for(30);
	assert_non_null(strstr(r->buf, "Content-Length: 5\r\n"));
	assert_null(strstr(r->buf, "hello"));
	assert_non_null(strstr(r->buf, "HTTP/1.1 204 No Content\r\n\r\n"));
	raw_free(r);
}

static void test_http_http10(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "GET /hello HTTP/1.0\r\n\r\n");
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "hello"));
	assert_non_null(strstr(r->buf, "Connection: close\r\n"));
	raw_free(r);

	r = raw_open();
	raw_send(r, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "hello"));
	assert_non_null(strstr(r->buf, "Connection: keep-alive\r\n"));
	assert_false(r->ended);
	raw_free(r);
}

static void test_http_expect_continue(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "HTTP/1.1 100 Continue\r\n\r\n"));
	raw_send(r, "ok");
	WAIT_FOR(strstr(r->buf, "\r\n\r\nok"));
	raw_free(r);
}

static void test_http_error_json(void **state)
{
	struct raw *r = raw_open();
	const char *body;
	json_t *v;

	raw_send(r, "GET /error HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR((body = strstr(r->buf, "\r\n\r\n")) && strchr(body, '}'));
	assert_non_null(strstr(r->buf, "HTTP/1.1 409 Conflict\r\n"));
	assert_non_null(strstr(r->buf, "Content-Type: application/json\r\n"));
	v = json_loads(body + 4, 0, NULL);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "error")),
			    "name \"x\" taken\n\\ \x01 caf\xc3\xa9");
	json_decref(v);

	r->len = 0;
	r->buf[0] = 0;
	raw_send(r, "GET /badutf8 HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR((body = strstr(r->buf, "\r\n\r\n")) && strchr(body, '}'));
	v = json_loads(body + 4, 0, NULL);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "error")), "bad ?? byte");
	json_decref(v);
	raw_free(r);
}

/* http_respond_json: the body compact with the status; a NULL body is a 500. */
static void test_http_respond_json(void **state)
{
	struct raw *r = raw_open();
	const char *body;

	raw_send(r, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR((body = strstr(r->buf, "\r\n\r\n")) && strchr(body, '}'));
	assert_non_null(strstr(r->buf, "HTTP/1.1 201 Created\r\n"));
	assert_non_null(strstr(r->buf, "Content-Type: application/json\r\n"));
	assert_string_equal(body + 4, "{\"n\":1}");
	r->len = 0;
	r->buf[0] = 0;
	raw_send(r, "GET /nojson HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR((body = strstr(r->buf, "\r\n\r\n")) && strchr(body, '}'));
	assert_non_null(strstr(r->buf, "HTTP/1.1 500 "));
	assert_non_null(strstr(body, "out of memory"));
	raw_free(r);
}

/* -- server: limits -- */

/* The relay's GET /relay: the connection changes hands, and what the client sent right
 * after the request (fast start) reaches the new owner, as does everything later. */
static void test_http_upgrade(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
		    "Upgrade: test-proto\r\n\r\nFAST");
	WAIT_FOR(strstr(r->buf, "\r\n\r\nHELLO") && E.uplen == 4);
	assert_non_null(strstr(r->buf, "HTTP/1.1 101 Switching Protocols\r\n"));
	assert_non_null(strstr(r->buf, "Upgrade: test-proto\r\n"));
	assert_string_equal(E.upbuf, "FAST");
	assert_int_equal(http_server_conn_count(E.srv), 0);   /* not the server's any more */
	raw_send(r, "GET / HTTP/1.1\r\n\r\n");                   /* not HTTP now */
	WAIT_FOR(E.uplen == 4 + 18);
	assert_string_equal(E.upbuf, "FASTGET / HTTP/1.1\r\n\r\n");
	assert_int_equal(E.requests, 1);
	raw_free(r);
	WAIT_FOR(E.up_ended);

	/* Without Connection: Upgrade it is a plain request, and refused. */
	r = raw_open();
	E.uplen = 0;
	raw_send(r, "GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: test-proto\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "no upgrade asked for"));
	assert_non_null(strstr(r->buf, "HTTP/1.1 400 "));
	assert_int_equal(E.uplen, 0);
	raw_free(r);
}

static void test_http_body_too_large(void **state)
{
	struct raw *r;

	E.opts.max_body_bytes = 1024;
	/* Refused from the headers alone: no body is sent, and none is waited for. */
	r = raw_open();
	raw_send(r, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "HTTP/1.1 413 "));
	assert_non_null(strstr(r->buf, "Connection: close\r\n"));
	assert_int_equal(E.requests, 0);
	raw_free(r);

	/* Chunked bodies are bounded too. */
	r = raw_open();
	raw_send(r, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3 && !r->ended; i++) {
		char chunk[600];
		memset(chunk, 'a', sizeof(chunk));
		memcpy(chunk, "200\r\n", 5);
		memcpy(chunk + 5 + 512, "\r\n", 3);
		raw_send(r, chunk);
		uv_run(&E.loop, UV_RUN_NOWAIT);
	}
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "HTTP/1.1 413 "));
	assert_int_equal(E.requests, 0);
	raw_free(r);

	/* At the limit is fine. */
	r = raw_open();
	{
		char req[1200];
		int n = snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");
		memset(req + n, 'b', 1024);
		req[n + 1024] = 0;
		raw_send(r, req);
	}
	WAIT_FOR(strstr(r->buf, "Content-Length: 1024\r\n") && r->len > 1024);
	assert_int_equal(E.requests, 1);
	raw_free(r);
}

static void test_http_too_many_headers(void **state)
{
	struct raw *r = raw_open();
	char req[4096];
	size_t n = 0;

	n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /hello HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: v\r\n", i);
	snprintf(req + n, sizeof(req) - n, "\r\n");
	raw_send(r, req);
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "HTTP/1.1 431 "));
	assert_int_equal(E.requests, 0);
	raw_free(r);

	/* Exactly HTTP_MAX_HEADERS is fine. */
	r = raw_open();
	n = (size_t)snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: v\r\n", i);
	snprintf(req + n, sizeof(req) - n, "\r\n");
	raw_send(r, req);
	WAIT_FOR(strstr(r->buf, "X-Headers: 32\r\n"));
	raw_free(r);
}

static void test_http_oversized_headers(void **state)
{
	static char req[8192];
	struct raw *r;

	E.opts.max_header_bytes = 1024;
	/* One long value. */
	r = raw_open();
	memset(req, 0, 8192);
	strcpy(req, "GET /hello HTTP/1.1\r\nX-Big: ");
	memset(req + strlen(req), 'v', 2000);
	strcat(req, "\r\n\r\n");
	raw_send(r, req);
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "HTTP/1.1 431 "));
	raw_free(r);

	/* A long URL. */
	r = raw_open();
	memset(req, 0, 8192);
	strcpy(req, "GET /");
	memset(req + 5, 'u', 2000);
	strcat(req, " HTTP/1.1\r\n\r\n");
	raw_send(r, req);
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "HTTP/1.1 431 "));
	raw_free(r);

	/* A long name. */
	r = raw_open();
	memset(req, 0, 8192);
	strcpy(req, "GET /hello HTTP/1.1\r\n");
	memset(req + strlen(req), 'n', 600);
	strcat(req, ": v\r\n\r\n");
	raw_send(r, req);
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "HTTP/1.1 431 "));
	assert_int_equal(E.requests, 0);
	raw_free(r);
}

static void test_http_malformed(void **state)
{
	static const struct {
		const char *req;
		const char *status;
	} bad[] = {
		{ "GARBAGE\r\n\r\n", "400 Bad Request" },
		{ "GET /hello HTTP/9.9\r\n\r\n", "505 HTTP Version Not Supported" },
		{ "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n", "400 Bad Request" },
		{ "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "400 Bad Request" },
		{ "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request" },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400 Bad Request" },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", "400 Bad Request" },
		{ "GET /he llo HTTP/1.1\r\n\r\n", "400 Bad Request" },
		{ "GET /hello HTTP/1.1\r\nX: a\x01b\r\n\r\n", "400 Bad Request" },
	};
	struct raw *good = raw_open();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct raw *r = raw_open();
		raw_send(r, bad[i].req);
		WAIT_FOR(r->ended);
		if (!strstr(r->buf, bad[i].status))
			fail_msg("request %zu: got %s", i, r->buf);
		assert_non_null(strstr(r->buf, "Connection: close\r\n"));
		raw_free(r);
		/* The server still serves the others. */
		raw_send(good, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
		WAIT_FOR(responses(good) == (int)i + 1);
	}
	assert_int_equal(E.requests, (int)(sizeof(bad) / sizeof(bad[0])));
	assert_false(good->ended);
	raw_free(good);
}

/* -- server: timeouts -- */

static void drip_tick(uv_timer_t *t)
{
	struct raw *r = t->data;

	if (!r->c || r->drip_off >= r->drip_len) {
		uv_timer_stop(t);
		return;
	}
	conn_write(r->c, r->drip_data + r->drip_off++, 1);
}

static void test_http_header_timeout(void **state)
{
	struct raw *r, *quiet;
	uint64_t start;

	E.opts.header_timeout_ms = 100;
	/* A client that sends nothing is closed without an answer. */
	quiet = raw_open();
	start = uv_now(&E.loop);
	WAIT_FOR(quiet->ended);
	assert_true(uv_now(&E.loop) - start >= 90);
	assert_int_equal(quiet->len, 0);
	raw_free(quiet);

	/* Slowloris: one byte every 20 ms would take over a second; the whole request
	 * must arrive within the header timeout. */
	r = raw_open();
	r->drip_data = "GET /hello HTTP/1.1\r\nHost: a-rather-slow-client.example\r\nX-Pad: aaaaaaaa\r\n\r\n";
	r->drip_len = strlen(r->drip_data);
	uv_timer_init(&E.loop, &r->drip);
	r->drip.data = r;
	uv_timer_start(&r->drip, drip_tick, 0, 20);
	start = uv_now(&E.loop);
	WAIT_FOR(r->ended);
	assert_true(uv_now(&E.loop) - start < 1000);
	assert_true(r->drip_off < r->drip_len);
	assert_non_null(strstr(r->buf, "HTTP/1.1 408 "));
	assert_int_equal(E.requests, 0);
	assert_int_equal(http_server_conn_count(E.srv), 0);
	raw_free(r);
}

static void test_http_idle_timeout(void **state)
{
	struct raw *r;
	uint64_t start;

	E.opts.idle_timeout_ms = 100;
	E.opts.header_timeout_ms = 5000;
	r = raw_open();
	raw_send(r, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "hello"));
	start = uv_now(&E.loop);
	WAIT_FOR(r->ended);
	assert_true(uv_now(&E.loop) - start >= 90);
	assert_int_equal(responses(r), 1);
	raw_free(r);
}

static void test_http_answer_after_client_left(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(E.held);
	raw_free(r);
	run_for(30);
	/* The request is still valid; answering it reports the client gone. The conn may
	 * not have noticed yet (it stopped reading): either way nothing leaks. */
	assert_string_equal(E.held->path, "/hold");
	{
		int rc = http_respond(E.held, 200, "text/plain", NULL, "late", 4);
		assert_true(rc == 0 || rc == -EPIPE);
	}
	E.held = NULL;
	WAIT_FOR(http_server_conn_count(E.srv) == 0);
}

static void test_http_free_with_held_request(void **state)
{
	struct raw *r = raw_open();

	raw_send(r, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(E.held);
	http_server_free(E.srv);
	E.srv = NULL;
	E.held = NULL;
	WAIT_FOR(r->ended);
	raw_free(r);
}

/* -- client against the server -- */

struct result {
	int status;
	int done, done_count, done_status;
	char body[RAW_MAX + 1];
	size_t body_len;
	int pieces;
	char piece[8][16];
	struct http_client *cl;
	int cancel_after_pieces;
	int connected;
	const char *method, *path, *const *headers;
	const void *req_body;
	size_t req_len;
	char server_header[64];
};

static void r_response(const struct http_response *resp, void *arg)
{
	struct result *res = arg;
	const char *s = http_response_header(resp, "x-method");

	res->status = resp->status;
	if (s)
		snprintf(res->server_header, sizeof(res->server_header), "%s", s);
}

static void r_body(const uint8_t *p, size_t len, void *arg)
{
	struct result *res = arg;

	assert_true(res->body_len + len <= RAW_MAX);
	memcpy(res->body + res->body_len, p, len);
	res->body_len += len;
	res->body[res->body_len] = 0;
	if (res->pieces < 8)
		snprintf(res->piece[res->pieces], sizeof(res->piece[0]), "%.*s", (int)len, (const char *)p);
	res->pieces++;
	if (res->cancel_after_pieces && res->pieces == res->cancel_after_pieces) {
		http_client_cancel(res->cl);
		res->cl = NULL;
	}
}

static void r_done(int status, void *arg)
{
	struct result *res = arg;

	res->done = 1;
	res->done_count++;
	res->done_status = status;
	res->cl = NULL;
}

static const struct http_client_cbs r_cbs = { r_response, r_body, r_done };

static void r_connected(struct conn *c, int status, void *arg)
{
	struct result *res = arg;

	assert_int_equal(status, 0);
	res->connected = 1;
	assert_int_equal(http_client_start(c, res->method, "test", res->path, res->headers,
					   res->req_body, res->req_len, &r_cbs, res, &res->cl), 0);
}

static struct result *client_request(const char *method, const char *path, const char *const *headers,
				     const void *body, size_t len)
{
	struct result *res = calloc(1, sizeof(*res));

	assert_non_null(res);
	res->method = method;
	res->path = path;
	res->headers = headers;
	res->req_body = body;
	res->req_len = len;
	if (!E.canned)
		server_start();
	else
		WAIT_FOR(!E.raw_peer);
	assert_int_equal(conn_unix_connect(&E.loop, E.sock, r_connected, res, NULL), 0);
	WAIT_FOR(res->connected);
	return res;
}

static void test_http_client_get(void **state)
{
	struct result *res = client_request("GET", "/hello", NULL, NULL, 0);

	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, 0);
	assert_int_equal(res->status, 200);
	assert_string_equal(res->body, "hello");
	run_for(20);
	assert_int_equal(res->done_count, 1);
	free(res);
	WAIT_FOR(http_server_conn_count(E.srv) == 0);
}

static void test_http_client_post(void **state)
{
	static const char *const hdrs[] = { "Content-Type: application/json", "X-Extra: 1",
					    "Host: ignored", NULL };
	const char *body = "{\"a\":1}";
	struct result *res = client_request("POST", "/echo", hdrs, body, strlen(body));

	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, 0);
	assert_int_equal(res->status, 200);
	assert_string_equal(res->body, body);
	assert_string_equal(res->server_header, "POST");
	assert_string_equal(E.paths[0], "/echo");
	free(res);

	/* Bigger than a read, a preallocation and the inline-copy limit. */
	{
		size_t len = 200000;
		char *big = malloc(len);
		assert_non_null(big);
		for (size_t i = 0; i < len; i++)
			big[i] = (char)('a' + i % 26);
		res = client_request("PUT", "/echo", NULL, big, len);
		WAIT_FOR(res->done);
		assert_int_equal(res->done_status, 0);
		assert_int_equal(res->status, 200);
		assert_int_equal(res->body_len, len);
		assert_memory_equal(res->body, big, len);
		free(res);
		free(big);
	}
}

static void test_http_client_bad_args(void **state)
{
	static const char *const inject[] = { "X-A: 1\r\nX-B: 2", NULL };
	struct conn *c = NULL;
	struct http_client *cl;

	/* Each call takes the conn and closes it on error. */
	{
		struct raw *r = raw_open();
		c = r->c;
		r->c = NULL;
		assert_int_equal(http_client_start(c, "GET", "h", "/x", inject, NULL, 0, &r_cbs, NULL, &cl),
				 -EINVAL);
		raw_free(r);
	}
	{
		struct raw *r = raw_open();
		c = r->c;
		r->c = NULL;
		assert_int_equal(http_client_start(c, "G ET", "h", "/x", NULL, NULL, 0, &r_cbs, NULL, &cl),
				 -EINVAL);
		raw_free(r);
	}
	{
		struct raw *r = raw_open();
		c = r->c;
		r->c = NULL;
		assert_int_equal(http_client_start(c, "GET", "h", "/x y", NULL, NULL, 0, &r_cbs, NULL, &cl),
				 -EINVAL);
		raw_free(r);
	}
	run_for(30);
	assert_int_equal(E.requests, 0);
}

static void test_http_stream_chunks(void **state)
{
	struct result *res = client_request("GET", "/stream", NULL, NULL, 0);

	WAIT_FOR(res->pieces == 3);
	assert_int_equal(res->status, 200);
	assert_string_equal(res->piece[0], "one");
	assert_string_equal(res->piece[1], "two");
	assert_string_equal(res->piece[2], "three");
	assert_false(res->done);
	assert_non_null(E.stream);
	assert_int_equal(http_stream_write(E.stream, "", 0), 0);   /* no accidental end */
	http_stream_end(E.stream);
	E.stream = NULL;
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, 0);
	assert_string_equal(res->body, "onetwothree");
	run_for(20);
	assert_int_equal(E.stream_closed, 0);   /* not for an end the owner asked for */
	assert_int_equal(res->done_count, 1);
	free(res);
	WAIT_FOR(http_server_conn_count(E.srv) == 0);
}

static void test_http_stream_client_disconnect(void **state)
{
	struct result *res = client_request("GET", "/stream", NULL, NULL, 0);

	res->cancel_after_pieces = 1;
	WAIT_FOR(res->pieces >= 1 && !res->cl);
	WAIT_FOR(E.stream_closed == 1);
	assert_null(E.stream);
	run_for(100);
	assert_int_equal(E.stream_closed, 1);
	assert_int_equal(res->done_count, 0);   /* cancelled: no callback */
	assert_int_equal(http_server_conn_count(E.srv), 0);
	free(res);
}

static void test_http_stream_server_free(void **state)
{
	struct result *res = client_request("GET", "/stream", NULL, NULL, 0);

	WAIT_FOR(E.stream);
	http_server_free(E.srv);
	E.srv = NULL;
	assert_int_equal(E.stream_closed, 1);
	WAIT_FOR(res->done);
	assert_int_not_equal(res->done_status, 0);   /* no zero chunk: cut short */
	free(res);
}

static void test_http_stream_flood(void **state)
{
	struct raw *r = raw_open();
	char junk[8192];

	/* A stream's client cannot make the server buffer what it sends. */
	raw_send(r, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(E.stream);
	memset(junk, 'j', sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = 0;
	for (int i = 0; i < 20 && r->c; i++) {
		if (conn_write(r->c, junk, sizeof(junk) - 1) < 0)
			break;   /* the server has cut us off */
		uv_run(&E.loop, UV_RUN_NOWAIT);
	}
	WAIT_FOR(E.stream_closed == 1);
	WAIT_FOR(r->ended);
	raw_free(r);
}

static void test_http_stream_raw_framing(void **state)
{
	struct raw *r = raw_open();

	/* HTTP/1.1: chunks on the wire, then the zero chunk and the close. */
	raw_send(r, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "5\r\nthree\r\n"));
	assert_non_null(strstr(r->buf, "Transfer-Encoding: chunked\r\n"));
	assert_non_null(strstr(r->buf, "\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n"));
	http_stream_end(E.stream);
	E.stream = NULL;
	WAIT_FOR(r->ended);
	assert_non_null(strstr(r->buf, "5\r\nthree\r\n0\r\n\r\n"));
	raw_free(r);

	/* HTTP/1.0 has no chunks: the bytes as they are, ended by the close. */
	r = raw_open();
	raw_send(r, "GET /stream HTTP/1.0\r\n\r\n");
	WAIT_FOR(strstr(r->buf, "three"));
	assert_null(strstr(r->buf, "Transfer-Encoding"));
	assert_non_null(strstr(r->buf, "\r\n\r\nonetwothree"));
	http_stream_end(E.stream);
	E.stream = NULL;
	WAIT_FOR(r->ended);
	assert_int_equal(E.stream_closed, 0);
	raw_free(r);
}

/* -- client against canned responses -- */

static void test_http_client_chunked_and_close_delimited(void **state)
{
	struct result *res;

	E.canned = "HTTP/1.1 100 Continue\r\n\r\n"
		   "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Method: canned\r\n\r\n"
		   "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nTrailer: 1\r\n\r\n";
	E.canned_len = strlen(E.canned);
	res = client_request("GET", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, 0);
	assert_int_equal(res->status, 201);
	assert_string_equal(res->server_header, "canned");
	assert_string_equal(res->body, "abcdefg");
	free(res);

	/* No length: the body runs until the server closes. */
	E.canned = "HTTP/1.1 200 OK\r\n\r\nuntil the end";
	E.canned_len = strlen(E.canned);
	E.canned_close = 1;
	res = client_request("GET", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, 0);
	assert_string_equal(res->body, "until the end");
	free(res);

	/* HEAD: a Content-Length but no body. */
	E.canned = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
	E.canned_len = strlen(E.canned);
	E.canned_close = 0;
	res = client_request("HEAD", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, 0);
	assert_int_equal(res->body_len, 0);
	free(res);
}

static void test_http_client_errors(void **state)
{
	struct result *res;
	char *big;

	/* Cut short. */
	E.canned = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
	E.canned_len = strlen(E.canned);
	E.canned_close = 1;
	res = client_request("GET", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, -ECONNRESET);
	assert_int_equal(res->status, 200);
	free(res);

	/* Not HTTP. */
	E.canned = "SSH-2.0-OpenSSH_9.2\r\n";
	E.canned_len = strlen(E.canned);
	E.canned_close = 0;
	res = client_request("GET", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, -EPROTO);
	free(res);
	WAIT_FOR(!E.raw_peer);

	/* Closed before anything. */
	E.canned = "";
	E.canned_len = 0;
	E.canned_close = 1;
	res = client_request("GET", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_int_equal(res->done_status, -ECONNRESET);
	free(res);

	/* Endless headers. */
	big = malloc(200 * 1024);
	assert_non_null(big);
	{
		size_t n = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\n");
		for (int i = 0; i < 3000; i++)
			n += (size_t)sprintf(big + n, "X-Header-Number-Many: 0123456789\r\n");
		sprintf(big + n, "\r\n");
	}
	E.canned = big;
	E.canned_len = strlen(big);
	E.canned_close = 0;
	res = client_request("GET", "/", NULL, NULL, 0);
	WAIT_FOR(res->done);
	assert_true(res->done_status == -EMSGSIZE || res->done_status == -EPROTO);
	free(res);
	WAIT_FOR(!E.raw_peer);
	free(big);

	/* Cancelled before any answer: nothing more. */
	E.canned = "";
	E.canned_len = 0;
	res = client_request("GET", "/", NULL, NULL, 0);
	http_client_cancel(res->cl);
	res->cl = NULL;
	WAIT_FOR(!E.raw_peer);
	run_for(30);
	assert_int_equal(res->done_count, 0);
	free(res);
}

/* -- URLs -- */

static void test_http_url_parse(void **state)
{
	static const struct {
		const char *s;
		int rc;
		enum http_scheme scheme;
		const char *host;
		uint16_t port;
		const char *path;
	} cases[] = {
		{ "https://coord.example.com", 0, HTTP_SCHEME_HTTPS, "coord.example.com", 443, "/" },
		{ "https://coord.example.com:8443", 0, HTTP_SCHEME_HTTPS, "coord.example.com", 8443, "/" },
		{ "https://coord.example.com:8443/api/", 0, HTTP_SCHEME_HTTPS, "coord.example.com", 8443, "/api/" },
		{ "http://127.0.0.1", 0, HTTP_SCHEME_HTTP, "127.0.0.1", 80, "/" },
		{ "HTTP://127.0.0.1:8080/x?y=1", 0, HTTP_SCHEME_HTTP, "127.0.0.1", 8080, "/x?y=1" },
		{ "https://[::1]:8443", 0, HTTP_SCHEME_HTTPS, "::1", 8443, "/" },
		{ "https://[2001:db8::7]/v1", 0, HTTP_SCHEME_HTTPS, "2001:db8::7", 443, "/v1" },
		{ "unix:/run/coord/admin.sock", 0, HTTP_SCHEME_UNIX, "/run/coord/admin.sock", 0, "/" },
		{ "unix:///tmp/x.sock", 0, HTTP_SCHEME_UNIX, "/tmp/x.sock", 0, "/" },
		{ "https://h:65535", 0, HTTP_SCHEME_HTTPS, "h", 65535, "/" },
		{ "", -EINVAL },
		{ "coord.example.com", -EINVAL },
		{ "ftp://coord.example.com", -EINVAL },
		{ "https://", -EINVAL },
		{ "https:///path", -EINVAL },
		{ "https://host:", -EINVAL },
		{ "https://host:0", -EINVAL },
		{ "https://host:65536", -EINVAL },
		{ "https://host:12a", -EINVAL },
		{ "https://host:123456", -EINVAL },
		{ "https://user@host", -EINVAL },
		{ "https://host?q", -EINVAL },
		{ "https://ho st", -EINVAL },
		{ "https://host/pa th", -EINVAL },
		{ "https://host/a#frag", -EINVAL },
		{ "https://::1:8443", -EINVAL },
		{ "https://[::1", -EINVAL },
		{ "https://[::1]x", -EINVAL },
		{ "https://[zz::1]", -EINVAL },
		{ "https://[127.0.0.1]", -EINVAL },
		{ "https://[]:80", -EINVAL },
		{ "https://[fe80::1%eth0]", -EINVAL },
		{ "unix:", -EINVAL },
		{ "unix:relative.sock", -EINVAL },
		{ "unix:/bad\npath", -EINVAL },
	};
	struct http_url u;
	char longer[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = http_url_parse(cases[i].s, &u);
		if (rc != cases[i].rc)
			fail_msg("%s: got %d, want %d", cases[i].s, rc, cases[i].rc);
		if (rc)
			continue;
		assert_int_equal(u.scheme, cases[i].scheme);
		assert_string_equal(u.host, cases[i].host);
		assert_int_equal(u.port, cases[i].port);
		assert_string_equal(u.path, cases[i].path);
	}
	assert_int_equal(http_url_parse(NULL, &u), -EINVAL);
	snprintf(longer, sizeof(longer), "unix:/%0300d", 0);
	assert_int_equal(http_url_parse(longer, &u), -ENAMETOOLONG);
	snprintf(longer, sizeof(longer), "https://h/%0300d", 0);
	assert_int_equal(http_url_parse(longer, &u), -ENAMETOOLONG);
	snprintf(longer, sizeof(longer), "https://%0300d", 0);
	assert_int_equal(http_url_parse(longer, &u), -ENAMETOOLONG);
}

/* -- http_fetch against a server on another thread -- */

struct bg {
	uv_thread_t thread;
	uv_loop_t loop;
	uv_async_t stop;
	uv_sem_t ready;
	uv_pipe_t pipe;
	uv_tcp_t tcp;
	struct http_server *srv;
	struct tls_config *tls;
	char sock[160];
	uint16_t port;
	int requests;
};

static void bg_handler(struct http_request *req, void *arg)
{
	struct bg *b = arg;

	b->requests++;
	if (!strcmp(req->path, "/hold")) {
		return;   /* never answered: the server frees it */
	} else if (!strcmp(req->path, "/big")) {
		size_t len = 17u * 1024 * 1024;
		char *p = malloc(len);
		assert_non_null(p);
		memset(p, 'z', len);
		http_respond(req, 200, "application/octet-stream", NULL, p, len);
		free(p);
	} else if (!strcmp(req->path, "/api/v1/echo") || !strcmp(req->path, "/echo")) {
		char extra[96];
		const char *auth = http_request_header(req, "Authorization");
		snprintf(extra, sizeof(extra), "X-Auth: %s\r\nX-Host: %s\r\n", auth ? auth : "-",
			 http_request_header(req, "Host"));
		http_respond(req, 200, "application/json", extra, req->body, req->body_len);
	} else {
		http_respond_error(req, 404, "no such route");
	}
}

static void bg_tls_connection(uv_stream_t *l, int status)
{
	struct bg *b = l->data;
	struct conn *c;

	if (status == 0 && tls_accept(b->tls, l, &c) == 0)
		http_server_add_conn(b->srv, c);
}

static void bg_unix_connection(uv_stream_t *l, int status)
{
	struct bg *b = l->data;
	struct conn *c;

	if (status == 0 && conn_plain_accept(l, &c) == 0)
		http_server_add_conn(b->srv, c);
}

static void bg_stop(uv_async_t *a)
{
	struct bg *b = a->data;

	http_server_free(b->srv);
	uv_close((uv_handle_t *)&b->pipe, NULL);
	uv_close((uv_handle_t *)&b->tcp, NULL);
	uv_close((uv_handle_t *)&b->stop, NULL);
}

static void bg_main(void *arg)
{
	struct bg *b = arg;
	struct http_server_opts opts = { .max_body_bytes = 64 * 1024 };
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	sigset_t pipe_set;

	/* A daemon ignores SIGPIPE; the SIGPIPE test below turns it back on for the
	 * process, so this thread keeps it blocked. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	assert_int_equal(http_server_new(&b->loop, &opts, bg_handler, b, &b->srv), 0);
	assert_int_equal(conn_listen_unix(&b->loop, b->sock, &b->pipe, bg_unix_connection), 0);
	b->pipe.data = b;
	assert_int_equal(conn_listen_tcp(&b->loop, "127.0.0.1:0", &b->tcp, bg_tls_connection), 0);
	b->tcp.data = b;
	assert_int_equal(uv_tcp_getsockname(&b->tcp, (struct sockaddr *)&ss, &len), 0);
	b->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_async_init(&b->loop, &b->stop, bg_stop);
	b->stop.data = b;
	uv_sem_post(&b->ready);
	uv_run(&b->loop, UV_RUN_DEFAULT);
}

static void test_http_fetch(void **state)
{
	struct bg *b = calloc(1, sizeof(*b));
	char cert[160], key[160], pin[TLS_PIN_LEN], url[256], other_pin[TLS_PIN_LEN];
	static const char *const hdrs[] = { "Authorization: Bearer t0ken", NULL };
	char *body = NULL;
	size_t len = 0;
	int status = 0;

	assert_non_null(b);
	snprintf(b->sock, sizeof(b->sock), "%s/bg.sock", E.dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", E.dir);
	snprintf(key, sizeof(key), "%s/key.pem", E.dir);
	assert_int_equal(tls_selfsigned_create(cert, key, "localhost"), 0);
	assert_int_equal(tls_cert_pin(cert, pin), 0);
	assert_int_equal(tls_config_server_new(cert, key, &b->tls), 0);
	assert_int_equal(uv_loop_init(&b->loop), 0);
	assert_int_equal(uv_sem_init(&b->ready, 0), 0);
	assert_int_equal(uv_thread_create(&b->thread, bg_main, b), 0);
	uv_sem_wait(&b->ready);

	/* Unix socket. */
	snprintf(url, sizeof(url), "unix:%s", b->sock);
	assert_int_equal(http_fetch(url, NULL, "POST", "/echo", hdrs, "{\"x\":1}", 7, &status, &body,
				    &len, 5000), 0);
	assert_int_equal(status, 200);
	assert_int_equal(len, 7);
	assert_string_equal(body, "{\"x\":1}");
	free(body);

	/* 404 is a response, not an error. */
	assert_int_equal(http_fetch(url, NULL, "GET", "/nope", NULL, NULL, 0, &status, &body, &len, 5000), 0);
	assert_int_equal(status, 404);
	assert_non_null(strstr(body, "no such route"));
	free(body);

	/* Empty body: still a NUL-terminated buffer. */
	assert_int_equal(http_fetch(url, NULL, "POST", "/echo", NULL, NULL, 0, &status, &body, &len, 5000), 0);
	assert_int_equal(len, 0);
	assert_non_null(body);
	assert_string_equal(body, "");
	free(body);

	/* HTTPS with a pin, and a base path. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/api/", b->port);
	assert_int_equal(http_fetch(url, pin, "POST", "/v1/echo", hdrs, "[]", 2, &status, &body,
				    &len, 10000), 0);
	assert_int_equal(status, 200);
	assert_string_equal(body, "[]");
	free(body);

	/* The wrong pin never gets a request through. */
	memcpy(other_pin, pin, sizeof(pin));
	other_pin[10] = other_pin[10] == 'a' ? 'b' : 'a';
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", b->port);
	assert_int_equal(http_fetch(url, other_pin, "POST", "/echo", NULL, "{}", 2, &status, &body, &len,
				    10000), -EPERM);
	assert_null(body);

	/* A request never answered: the overall timeout. */
	snprintf(url, sizeof(url), "unix:%s", b->sock);
	{
		uint64_t t0 = uv_hrtime();
		assert_int_equal(http_fetch(url, NULL, "GET", "/hold", NULL, NULL, 0, &status, &body, &len,
					    200), -ETIMEDOUT);
		assert_true((uv_hrtime() - t0) / 1000000 >= 190);
		assert_true((uv_hrtime() - t0) / 1000000 < 5000);
	}
	assert_null(body);

	/* Over 16 MiB of body is refused. */
	assert_int_equal(http_fetch(url, NULL, "GET", "/big", NULL, NULL, 0, &status, &body, &len, 20000),
			 -EFBIG);
	assert_null(body);

	/* Refused from its headers while the body is still going out; with SIGPIPE at
	 * its default, as in a CLI that did not ignore it. */
	{
		size_t blen = 4u * 1024 * 1024;
		char *big = calloc(1, blen);
		int rc;
		assert_non_null(big);
		signal(SIGPIPE, SIG_DFL);
		rc = http_fetch(url, NULL, "POST", "/echo", NULL, big, blen, &status, &body, &len, 10000);
		signal(SIGPIPE, SIG_IGN);
		if (rc == 0) {
			assert_int_equal(status, 413);
			free(body);
		}
		free(big);
	}

	/* Nobody listening, and junk URLs. */
	snprintf(url, sizeof(url), "unix:%s/missing.sock", E.dir);
	assert_true(http_fetch(url, NULL, "GET", "/", NULL, NULL, 0, &status, &body, &len, 2000) < 0);
	assert_int_equal(http_fetch("gopher://x", NULL, "GET", "/", NULL, NULL, 0, &status, &body, &len,
				    2000), -EINVAL);
	assert_int_equal(http_fetch("http://x", NULL, "GET", "no-slash", NULL, NULL, 0, &status, &body,
				    &len, 2000), -EINVAL);

	uv_async_send(&b->stop);
	uv_thread_join(&b->thread);
	assert_int_equal(uv_loop_close(&b->loop), 0);
	assert_int_equal(b->requests, 6);
	uv_sem_destroy(&b->ready);
	tls_config_free(b->tls);
	unlink(b->sock);
	unlink(cert);
	unlink(key);
	free(b);
}

/* -- http_fetch against servers that never answer: the timeout holds -- */

#define HANG_TIMEOUT_MS 300
#define HANG_BOUND_MS 2000    /* far above the timeout, far below the connect (10 s) and
			       * handshake (15 s) timeouts a fetch used to wait out */
static uint64_t fetch_ms(const char *url, const char *pin, int expect)
{
	char *body = NULL;
	size_t len = 0;
	int status = -1;
	uint64_t t0 = uv_hrtime(), ms;

	assert_int_equal(http_fetch(url, pin, "GET", "/", NULL, NULL, 0, &status, &body, &len,
				    HANG_TIMEOUT_MS), expect);
	ms = (uv_hrtime() - t0) / 1000000;
	assert_null(body);
	print_message("    %s: returned after %llu ms\n", url, (unsigned long long)ms);
	return ms;
}

/* https: TCP connects (the kernel accepts), the ClientHello is never answered. */
static void test_http_fetch_timeout_handshake(void **state)
{
	static const char any_pin[] =
		"sha256:0000000000000000000000000000000000000000000000000000000000000000";
	char url[64];
	uint16_t port;
	int lfd = idle_listener(8, &port);
	uint64_t ms;

	snprintf(url, sizeof(url), "https://127.0.0.1:%u", port);
	ms = fetch_ms(url, any_pin, -ETIMEDOUT);
	assert_true(ms >= HANG_TIMEOUT_MS - 10);
	assert_true(ms < HANG_BOUND_MS);
	/* It did connect: the connection sits in the listener's queue. */
	assert_int_equal(accept_queue(lfd, NULL), 1);
	close(lfd);
}

/* http and https: the SYN is dropped, the connect hangs. */
static void test_http_fetch_timeout_connect(void **state)
{
	static const char any_pin[] =
		"sha256:0000000000000000000000000000000000000000000000000000000000000000";
	int fillers[FILLERS], n;
	char url[64];
	uint16_t port;
	int lfd = idle_listener(1, &port);
	uint64_t ms;

	n = fill_accept_queue(lfd, port, fillers);
	if (!n) {
		close(lfd);
		print_message("    skipped: the accept queue of a loopback listener could not be "
			      "filled (a connect to it would not hang)\n");
		skip();
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
	ms = fetch_ms(url, NULL, -ETIMEDOUT);
	assert_true(ms >= HANG_TIMEOUT_MS - 10);
	assert_true(ms < HANG_BOUND_MS);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", port);
	ms = fetch_ms(url, any_pin, -ETIMEDOUT);
	assert_true(ms >= HANG_TIMEOUT_MS - 10);
	assert_true(ms < HANG_BOUND_MS);
	/* By name: resolved, then ::1 (if listed) refused, 127.0.0.1 hangs. */
	snprintf(url, sizeof(url), "http://localhost:%u", port);
	ms = fetch_ms(url, NULL, -ETIMEDOUT);
	assert_true(ms < HANG_BOUND_MS);
	for (int i = 0; i < n; i++)
		close(fillers[i]);
	close(lfd);
}

/* -- a big chunk over TLS: kept as it is, sealed as the socket drains, all counted -- */

#define TLS_BIG (4u * 1024 * 1024)
#define TLS_SLICE (64 * 1024)

struct tls_big {
	struct tls_config *srv_cfg;
	uv_tcp_t tcp;
	struct http_server *srv;
	struct http_stream *s;
	uint8_t *chunk;
	size_t pending_after, unsealed_after, body_len;
	int released, released_at_write, done, status, in_order;
	struct http_client *cl;
};

static void big_release(void *ctx)
{
	struct tls_big *t = ctx;

	t->released++;
	free(t->chunk);
	t->chunk = NULL;
}

static void big_closed(struct http_stream *s, void *arg)
{
}

static void big_handler(struct http_request *req, void *arg)
{
	struct tls_big *t = arg;

	assert_int_equal(http_stream_start(req, 200, "application/octet-stream", big_closed, t,
					   &t->s), 0);
	t->chunk = malloc(TLS_BIG);
	assert_non_null(t->chunk);
	for (size_t i = 0; i < TLS_BIG; i++)
		t->chunk[i] = (uint8_t)(i * 7 + i / 65536);
	assert_int_equal(http_stream_write_ref(t->s, t->chunk, TLS_BIG, big_release, t), 0);
	t->released_at_write = t->released;
	/* A line behind it waits its turn; it is copied as usual. */
	assert_int_equal(http_stream_write(t->s, "end\n", 4), 0);
	t->pending_after = http_stream_pending(t->s);
}

static void big_tls_conn(uv_stream_t *l, int status)
{
	struct tls_big *t = l->data;
	struct conn *c;

	assert_int_equal(tls_accept(t->srv_cfg, l, &c), 0);
	http_server_add_conn(t->srv, c);
}

static void big_resp(const struct http_response *resp, void *arg)
{
	struct tls_big *t = arg;

	t->status = resp->status;
	t->in_order = 1;
}

static void big_body(const uint8_t *p, size_t len, void *arg)
{
	struct tls_big *t = arg;

	for (size_t i = 0; i < len; i++, t->body_len++) {
		size_t o = t->body_len;
		uint8_t want = o < TLS_BIG ? (uint8_t)(o * 7 + o / 65536) : (uint8_t)"end\n"[o - TLS_BIG];

		if (o >= TLS_BIG + 4 || p[i] != want)
			t->in_order = 0;
	}
	if (t->body_len == TLS_BIG + 4) {
		t->done = 1;
		http_client_cancel(t->cl);
	}
}

static void big_done(int status, void *arg)
{
	fail_msg("the stream ended: %d", status);
}

static void big_connected(struct conn *c, int status, void *arg)
{
	static const struct http_client_cbs cbs = { big_resp, big_body, big_done };
	struct tls_big *t = arg;

	assert_int_equal(status, 0);
	assert_int_equal(http_client_start(c, "GET", NULL, "/big", NULL, NULL, 0, &cbs, t, &t->cl), 0);
}

static void test_http_stream_tls_big_ref(void **state)
{
	static struct tls_big t;   /* its listener closes after the test returns */
	char cert[160], key[160], pin[TLS_PIN_LEN];
	struct tls_config *cli_cfg;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&t, 0, sizeof(t));
	snprintf(cert, sizeof(cert), "%s/cert.pem", E.dir);
	snprintf(key, sizeof(key), "%s/key.pem", E.dir);
	assert_int_equal(tls_selfsigned_create(cert, key, "localhost"), 0);
	assert_int_equal(tls_cert_pin(cert, pin), 0);
	assert_int_equal(tls_config_server_new(cert, key, &t.srv_cfg), 0);
	assert_int_equal(http_server_new(&E.loop, NULL, big_handler, &t, &t.srv), 0);
	assert_int_equal(conn_listen_tcp(&E.loop, "127.0.0.1:0", &t.tcp, big_tls_conn), 0);
	t.tcp.data = &t;
	assert_int_equal(uv_tcp_getsockname(&t.tcp, (struct sockaddr *)&ss, &len), 0);
	assert_int_equal(tls_config_client_new(NULL, pin, &cli_cfg), 0);
	assert_int_equal(tls_connect(&E.loop, cli_cfg, "127.0.0.1",
				     ntohs(((struct sockaddr_in *)&ss)->sin_port), big_connected, &t,
				     NULL), 0);
	tls_config_free(cli_cfg);
	WAIT_FOR(t.done);
	assert_int_equal(t.status, 200);
	assert_true(t.in_order);
	/* At the write: not copied, not handed back, at most a slice sealed, and everything
	 * queued counted by http_stream_pending (coord's slow-reader cut). */
	assert_int_equal(t.released_at_write, 0);
	assert_true(t.pending_after >= TLS_BIG - TLS_SLICE);
	WAIT_FOR(t.released);
	assert_int_equal(t.released, 1);
	http_server_free(t.srv);
	uv_close((uv_handle_t *)&t.tcp, NULL);
	tls_config_free(t.srv_cfg);
	unlink(cert);
	unlink(key);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* Query parameters: decoded, absent, repeated, bad escapes, too long. */
static void test_http_query_get(void **state)
{
	char v[16];

	(void)state;
	assert_int_equal(http_query_get("/v1/map?since=42&epoch=00ab", "since", v, sizeof(v)), 0);
	assert_string_equal(v, "42");
	assert_int_equal(http_query_get("/v1/map?since=42&epoch=00ab", "epoch", v, sizeof(v)), 0);
	assert_string_equal(v, "00ab");
	assert_int_equal(http_query_get("/v1/map?sincex=1&xsince=2", "since", v, sizeof(v)), -ENOENT);
	assert_string_equal(v, "");
	assert_int_equal(http_query_get("/v1/map", "since", v, sizeof(v)), -ENOENT);
	assert_int_equal(http_query_get("/v1/map?", "since", v, sizeof(v)), -ENOENT);
	assert_int_equal(http_query_get("/v1/map?a=%41%2c+b&&flag", "a", v, sizeof(v)), 0);
	assert_string_equal(v, "A, b");
	assert_int_equal(http_query_get("/v1/map?a=1&flag", "flag", v, sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(http_query_get("/v1/map?a=1&a=2", "a", v, sizeof(v)), -EINVAL);
	assert_string_equal(v, "");
	assert_int_equal(http_query_get("/v1/map?a=%4", "a", v, sizeof(v)), -EINVAL);
	assert_int_equal(http_query_get("/v1/map?a=%zz", "a", v, sizeof(v)), -EINVAL);
	assert_int_equal(http_query_get("/v1/map?a=%00", "a", v, sizeof(v)), -EINVAL);
	assert_int_equal(http_query_get("/v1/map?a=0123456789abcdef", "a", v, sizeof(v)), -EMSGSIZE);
	assert_string_equal(v, "");
	assert_int_equal(http_query_get("/v1/map?a=0123456789abcde", "a", v, sizeof(v)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_http_simple_get),
		T(test_http_post_body),
		T(test_http_chunked_request_body),
		T(test_http_keepalive_two_requests),
		T(test_http_pipelined_in_order),
		T(test_http_many_pipelined_sync),
		T(test_http_byte_by_byte),
		T(test_http_head_and_no_content),
		T(test_http_http10),
		T(test_http_expect_continue),
		T(test_http_error_json),
		T(test_http_respond_json),
		T(test_http_upgrade),
		T(test_http_body_too_large),
		T(test_http_too_many_headers),
		T(test_http_oversized_headers),
		T(test_http_malformed),
		T(test_http_header_timeout),
		T(test_http_idle_timeout),
		T(test_http_answer_after_client_left),
		T(test_http_free_with_held_request),
		T(test_http_client_get),
		T(test_http_client_post),
		T(test_http_client_bad_args),
		T(test_http_stream_chunks),
		T(test_http_stream_client_disconnect),
		T(test_http_stream_server_free),
		T(test_http_stream_flood),
		T(test_http_stream_raw_framing),
		T(test_http_stream_tls_big_ref),
		T(test_http_client_chunked_and_close_delimited),
		T(test_http_client_errors),
		T(test_http_url_parse),
		T(test_http_fetch),
		T(test_http_fetch_timeout_handshake),
		T(test_http_fetch_timeout_connect),
		T(test_http_query_get),
	};

	signal(SIGPIPE, SIG_IGN);
	if (!getenv("TEST_LOG"))
		log_set_level(LOG_ERROR);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
