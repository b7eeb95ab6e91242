/* fuzz_http_request.c - the HTTP/1.1 server's request path (http_server.c over http-parser) fed through an in-memory conn, in pieces. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/http.h"
#include "meshvpn/log.h"

/* -- a conn that takes writes and delivers what the harness gives it -- */

struct fake {
	struct conn base;
	int closed;
	int reading;
	int broken;          /* writes fail from now on */
	size_t written;
};

static int fake_write(struct conn *c, const void *buf, size_t len)
{
	struct fake *f = (struct fake *)(void *)c;

	if (f->closed || f->broken)
		return -32;   /* -EPIPE */
	f->written += len;
	return 0;
}

static size_t fake_pending(const struct conn *c)
{
	return 0;
}

static void fake_close(struct conn *c)
{
	struct fake *f = (struct fake *)(void *)c;

	f->closed = 1;
	c->on_read = NULL;
	c->on_end = NULL;
}

static void fake_read_stop(struct conn *c)
{
	((struct fake *)(void *)c)->reading = 0;
}

static void fake_read_start(struct conn *c)
{
	((struct fake *)(void *)c)->reading = 1;
}

static const struct conn_ops fake_ops = {
	.write = fake_write,
	.pending = fake_pending,
	.close = fake_close,
	.read_stop = fake_read_stop,
	.read_start = fake_read_start,
};

/* -- a handler that answers in the ways the daemons do -- */

#define MAX_HELD 4

struct state {
	struct http_request *held[MAX_HELD];
	int n_held;
	struct http_stream *stream;
	int stream_closed;
	size_t seen;
};

static void on_stream_close(struct http_stream *s, void *arg)
{
	struct state *st = arg;

	st->stream_closed++;
	st->stream = NULL;
}

static void handler(struct http_request *req, void *arg)
{
	struct state *st = arg;
	const char *ct = http_request_header(req, "Content-Type");

	/* Touch everything the server hands over. */
	st->seen += strlen(req->method) + strlen(req->path) + req->body_len + (req->body[req->body_len] == 0);
	for (int i = 0; i < req->n_headers; i++)
		st->seen += strlen(req->headers[i].name) + strlen(req->headers[i].value);

	if (!strncmp(req->path, "/hold", 5) && st->n_held < MAX_HELD) {
		st->held[st->n_held++] = req;
	} else if (!strncmp(req->path, "/stream", 7) && !st->stream) {
		if (http_stream_start(req, 200, "application/x-ndjson", on_stream_close, st, &st->stream) == 0) {
			http_stream_write(st->stream, req->path, strlen(req->path));
			http_stream_write(st->stream, req->body, req->body_len);
			if (req->path[7] == 'e') {
				http_stream_end(st->stream);
				st->stream = NULL;
			}
		}
	} else if (!strncmp(req->path, "/error", 6)) {
		http_respond_error(req, 400, req->path);
	} else {
		http_respond(req, 200, ct ? ct : "text/plain", "X-Fuzz: 1\r\n", req->body, req->body_len);
	}
}

static void answer_held(struct state *st)
{
	for (int i = 0; i < st->n_held; i++)
		http_respond(st->held[i], 200, "text/plain", NULL, "late", 4);
	st->n_held = 0;
}

static void turn(uv_loop_t *loop, struct state *st)
{
	answer_held(st);
	uv_run(loop, UV_RUN_NOWAIT);   /* resume after late answers, deferred closes */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uv_loop_t loop;
	static int ready;
	struct http_server_opts opts = {
		.max_header_bytes = 1024,
		.max_body_bytes = 4096,
		.header_timeout_ms = 60000,
		.idle_timeout_ms = 60000,
	};
	struct state st = { 0 };
	struct http_server *srv;
	struct fake *f;
	size_t step, off, n;
	uint8_t flags;

	if (!ready) {
		uv_loop_init(&loop);
		log_set_level(LOG_ERROR);
		ready = 1;
	}
	if (size < 2)
		return 0;
	/* First byte: piece size; second: how the connection ends. */
	step = data[0] ? data[0] : size;
	flags = data[1];
	data += 2;
	size -= 2;

	if (http_server_new(&loop, &opts, handler, &st, &srv))
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f) {
		http_server_free(srv);
		return 0;
	}
	f->base.ops = &fake_ops;
	f->base.loop = &loop;
	f->reading = 1;
	snprintf(f->base.peer, sizeof(f->base.peer), "fuzz");
	http_server_add_conn(srv, &f->base);

	for (off = 0; off < size && !f->closed; off += n) {
		n = size - off < step ? size - off : step;
		/* A real conn delivers nothing while reading is stopped. */
		for (int i = 0; i < 4 && !f->reading && !f->closed; i++)
			turn(&loop, &st);
		if (f->closed || !f->base.on_read)
			break;
		f->base.on_read(&f->base, data + off, n, f->base.arg);
		if (flags & 1)
			turn(&loop, &st);
	}
	if ((flags & 2) && !f->closed && f->base.on_end)
		f->base.on_end(&f->base, -4095 /* UV_EOF */, f->base.arg);
	if ((flags & 4) && st.stream) {
		f->broken = 1;
		http_stream_write(st.stream, "x", 1);
	}
	if (flags & 8)
		turn(&loop, &st);
	if (st.stream && (flags & 16)) {
		http_stream_end(st.stream);
		st.stream = NULL;
	}
	if (!(flags & 32))
		answer_held(&st);
	/* Held requests go with the server. */
	st.n_held = 0;
	http_server_free(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	free(f);
	return 0;
}
