/* http_response.c - HTTP/1.1 responses of the server (RFC 9112, RFC 9110 status codes): whole ones, JSON error bodies, chunked streams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "http_int.h"

#define COPY_BODY_MAX (64 * 1024)       /* smaller bodies go out in one write with the head */

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* -- writing responses -- */

char *http_error_json(const char *message, size_t *len)
{
	json_t *o = json_object(), *v;
	char *s = NULL, *clean = NULL;

	if (!o)
		return NULL;
	v = json_string(message);
	if (!v) {
		/* Not UTF-8: keep the ASCII and mark the rest. */
		clean = strdup(message);
		if (!clean)
			goto out;
		for (char *p = clean; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		v = json_string(clean);
	}
	if (!v || json_object_set_new(o, "error", v))
		goto out;
	s = json_dumps(o, JSON_COMPACT);
	if (s)
		*len = strlen(s);
out:
	free(clean);
	json_decref(o);
	return s;
}

int http_write_response(struct http_conn *hc, int status, const char *content_type,
			const char *extra, const void *body, size_t len)
{
	size_t elen = extra ? strlen(extra) : 0, clen = content_type ? strlen(content_type) : 0;
	int no_body = status < 200 || status == 204 || status == 304;
	size_t send_len = no_body || hc->head ? 0 : len;
	size_t inline_len = send_len <= COPY_BODY_MAX ? send_len : 0;
	size_t cap = 200 + clen + elen + inline_len, n;
	char *buf;
	int r;

	if (!hc->c)
		return -EPIPE;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	n = (size_t)snprintf(buf, cap, "HTTP/1.1 %d %s\r\n", status, reason(status));
	if (content_type && !no_body)
		n += (size_t)snprintf(buf + n, cap - n, "Content-Type: %s\r\n", content_type);
	if (!no_body)
		n += (size_t)snprintf(buf + n, cap - n, "Content-Length: %zu\r\n", len);
	if (!hc->keep_alive)
		n += (size_t)snprintf(buf + n, cap - n, "Connection: close\r\n");
	else if (hc->http10)
		n += (size_t)snprintf(buf + n, cap - n, "Connection: keep-alive\r\n");
	if (elen) {
		memcpy(buf + n, extra, elen);
		n += elen;
		if (elen < 2 || extra[elen - 2] != '\r' || extra[elen - 1] != '\n') {
			memcpy(buf + n, "\r\n", 2);
			n += 2;
		}
	}
	memcpy(buf + n, "\r\n", 2);
	n += 2;
	if (inline_len) {
		memcpy(buf + n, body, inline_len);
		n += inline_len;
	}
	r = conn_write(hc->c, buf, n);
	if (r == 0 && send_len && !inline_len)
		r = conn_write(hc->c, body, send_len);
	free(buf);
	return r;
}

/* -- answering -- */

/* The handler answered a request whose client has gone: nothing to send. */
static int answered_gone(struct http_conn *hc)
{
	http_conn_destroy(hc);
	return -EPIPE;
}

int http_respond(struct http_request *req, int status, const char *content_type,
		 const char *extra_headers, const void *body, size_t len)
{
	struct http_conn *hc = req ? req->priv : NULL;
	int r;

	if (!hc || hc->state != HC_HANDLING)
		return -EINVAL;
	if (hc->gone)
		return answered_gone(hc);
	if (status < 100 || status > 999)
		status = 500;
	if (!body)
		len = 0;
	r = http_write_response(hc, status, content_type, extra_headers, body ? body : "", len);
	if (r < 0) {
		log_debug("http response not sent", "peer=%s status=%d err=%d", hc->peer, status, r);
		http_conn_destroy(hc);
		return r;
	}
	http_conn_answered(hc);
	return 0;
}

int http_respond_error(struct http_request *req, int status, const char *message)
{
	char *body;
	size_t len = 0;
	int r;

	body = http_error_json(message ? message : reason(status), &len);
	if (!body)
		return http_respond(req, status, "application/json", NULL, "{}", 2);
	r = http_respond(req, status, "application/json", NULL, body, len);
	free(body);
	return r;
}

int http_respond_json(struct http_request *req, int status, json_t *body)
{
	size_t len = 0;
	char *s = body ? json_dump_compact(body, &len) : NULL;
	int r;

	json_decref(body);
	if (!s)
		return http_respond_error(req, 500, "out of memory");
	r = http_respond(req, status, "application/json", NULL, s, len);
	free(s);
	return r;
}

/* -- streams -- */

int http_stream_start(struct http_request *req, int status, const char *content_type,
		      http_stream_close_cb on_close, void *arg, struct http_stream **out)
{
	struct http_conn *hc = req ? req->priv : NULL;
	char head[512];
	int n, r;

	if (!hc || hc->state != HC_HANDLING || !out)
		return -EINVAL;
	if (hc->gone)
		return answered_gone(hc);
	hc->stream.chunked = !hc->http10;
	/* The stream ends with the connection: say so, for HTTP/1.0 it is the framing. */
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sCache-Control: no-store\r\n"
		     "Connection: close\r\n\r\n",
		     status, reason(status), content_type ? content_type : "application/octet-stream",
		     hc->stream.chunked ? "Transfer-Encoding: chunked\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		http_conn_destroy(hc);
		return -EINVAL;
	}
	r = conn_write(hc->c, head, (size_t)n);
	if (r < 0) {
		http_conn_destroy(hc);
		return r;
	}
	hc->state = HC_STREAM;
	hc->stream.on_close = on_close;
	hc->stream.arg = arg;
	hc->stream.finished = 0;
	/* Input after the request only counts against the limit: nothing is buffered. */
	hc->stream_input = hc->inlen;
	free(hc->inbuf);
	hc->inbuf = NULL;
	hc->inlen = 0;
	if (!hc->in_dispatch)
		http_conn_req_reset(hc);
	/* Keep reading: that is how a client's disconnect shows. */
	conn_read_start(hc->c);
	*out = &hc->stream;
	if (hc->stream_input > HTTP_STREAM_INPUT_MAX) {
		/* on_close from the loop: the owner has not seen *out yet. */
		http_conn_timer_set(hc, T_STREAM_GONE, 0);
	}
	return 0;
}

/* One chunk, from a copy (release NULL) or from the writer's buffer. */
static int stream_write(struct http_stream *s, const void *buf, size_t len,
			conn_release_cb release, void *ctx)
{
	struct http_conn *hc = s->hc;
	char head[24];
	uint8_t *frame;
	size_t hl;
	int r;

	if (s->finished || hc->state != HC_STREAM || !hc->c || !len) {
		if (release)
			release(ctx);
		/* An empty chunk would end the response. */
		return s->finished || hc->state != HC_STREAM || !hc->c ? -EPIPE : 0;
	}
	if (!s->chunked) {
		r = release ? conn_write_ref(hc->c, buf, len, release, ctx) : conn_write(hc->c, buf, len);
	} else if (len > COPY_BODY_MAX || release) {
		/* Not copied into one frame: a full netmap is megabytes, and a TLS conn keeps
		 * it until it is encrypted as the socket drains. */
		hl = (size_t)snprintf(head, sizeof(head), "%zx\r\n", len);
		r = conn_write(hc->c, head, hl);
		if (r == 0)
			r = release ? conn_write_ref(hc->c, buf, len, release, ctx) :
			    conn_write(hc->c, buf, len);
		else if (release)
			release(ctx);
		if (r == 0)
			r = conn_write(hc->c, "\r\n", 2);
		else
			r = r == -ENOMEM ? -EPIPE : r;   /* half a chunk went: the stream is broken */
	} else {
		hl = (size_t)snprintf(head, sizeof(head), "%zx\r\n", len);
		frame = malloc(hl + len + 2);
		if (!frame)
			return -ENOMEM;
		memcpy(frame, head, hl);
		memcpy(frame + hl, buf, len);
		memcpy(frame + hl + len, "\r\n", 2);
		r = conn_write(hc->c, frame, hl + len + 2);
		free(frame);
	}
	if (r == -ENOMEM || r == -ENOBUFS)
		return r;
	if (r < 0) {
		/* Broken: on_close comes from the loop, never from inside this call. */
		if (hc->timer_kind != T_STREAM_GONE)
			http_conn_timer_set(hc, T_STREAM_GONE, 0);
		return -EPIPE;
	}
	return 0;
}

int http_stream_write(struct http_stream *s, const void *buf, size_t len)
{
	return stream_write(s, buf, len, NULL, NULL);
}

int http_stream_write_ref(struct http_stream *s, const void *buf, size_t len,
			  conn_release_cb release, void *ctx)
{
	return stream_write(s, buf, len, release, ctx);
}

size_t http_stream_pending(const struct http_stream *s)
{
	const struct http_conn *hc = s->hc;

	if (s->finished || hc->state != HC_STREAM || !hc->c)
		return 0;
	return conn_pending(hc->c);
}

void http_stream_end(struct http_stream *s)
{
	struct http_conn *hc;

	if (!s || s->finished)
		return;
	hc = s->hc;
	s->finished = 1;
	if (hc->state != HC_STREAM)
		return;
	if (s->chunked && hc->c)
		conn_write(hc->c, "0\r\n\r\n", 5);
	http_conn_destroy(hc);
}

int http_upgrade(struct http_request *req, const char *protocol, conn_read_cb on_read,
		 conn_end_cb on_end, void *arg, struct conn **out)
{
	struct http_conn *hc = req ? req->priv : NULL;
	char head[256];
	struct conn *c;
	int n;

	if (!hc || hc->state != HC_HANDLING || !hc->in_dispatch || hc->gone || !hc->c ||
	    !hc->parser.upgrade || strpbrk(protocol, "\r\n"))
		return -EINVAL;
	n = snprintf(head, sizeof(head), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\n"
		     "Connection: Upgrade\r\n\r\n", protocol);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -EINVAL;
	c = hc->c;
	if (conn_write(c, head, (size_t)n)) {
		http_conn_destroy(hc);
		return -EPIPE;
	}
	conn_set_callbacks(c, on_read, on_end, arg);
	http_conn_release(hc);
	hc->c = NULL;
	hc->upgraded = c;
	http_conn_destroy(hc);
	*out = c;
	return 0;
}
