/* http_client.c - one HTTP/1.1 request per struct conn (RFC 9112 framing via http-parser): writes the request, parses the response, de-chunks the body. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "meshvpn/http.h"
#include "meshvpn/log.h"

#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)
#define HEADER_OVERHEAD 4
#define MAX_METHOD_LEN 15

enum part { P_NONE, P_FIELD, P_VALUE };

struct http_client {
	struct conn *c;
	http_parser parser;
	struct http_client_cbs cbs;
	void *arg;
	struct http_response resp;

	/* Header strings at offsets into arena until the headers are complete. */
	char *arena;
	size_t arena_len, arena_cap;
	size_t name_off[HTTP_MAX_HEADERS], value_off[HTTP_MAX_HEADERS];
	int n_seen;                 /* headers beyond HTTP_MAX_HEADERS are counted, not kept */
	enum part part;
	size_t header_bytes;
	int error;                  /* why a callback stopped the parser */

	unsigned head : 1;          /* HEAD request: the response has no body */
	unsigned headers_done : 1;
	unsigned interim : 1;       /* a 1xx response, skipped */
	unsigned complete : 1;
	unsigned cancelled : 1;
	unsigned in_done : 1;
	int depth;                  /* inside the parser (callbacks may cancel) */
};

const char *http_response_header(const struct http_response *resp, const char *name)
{
	for (int i = 0; i < resp->n_headers; i++)
		if (!strcasecmp(resp->headers[i].name, name))
			return resp->headers[i].value;
	return NULL;
}

static void client_free(struct http_client *cl)
{
	if (cl->c) {
		conn_close(cl->c);
		cl->c = NULL;
	}
	free(cl->arena);
	free(cl);
}

static void headers_reset(struct http_client *cl)
{
	cl->arena_len = 0;
	cl->n_seen = 0;
	cl->part = P_NONE;
	cl->header_bytes = 0;
	cl->headers_done = 0;
	cl->interim = 0;
	memset(&cl->resp, 0, sizeof(cl->resp));
}

/* -- response parsing -- */

static int fail(struct http_client *cl, int err)
{
	cl->error = err;
	return -1;
}

static int arena_add(struct http_client *cl, const char *p, size_t len, int nul)
{
	size_t need = cl->arena_len + len + 1, cap;
	char *a;

	if (need > cl->arena_cap) {
		cap = cl->arena_cap ? cl->arena_cap : 512;
		while (cap < need)
			cap *= 2;
		a = realloc(cl->arena, cap);
		if (!a)
			return -1;
		cl->arena = a;
		cl->arena_cap = cap;
	}
	if (len)
		memcpy(cl->arena + cl->arena_len, p, len);
	cl->arena_len += len;
	if (nul)
		cl->arena[cl->arena_len++] = 0;
	return 0;
}

static int count(struct http_client *cl, size_t len)
{
	cl->header_bytes += len;
	return cl->header_bytes > MAX_RESPONSE_HEADER_BYTES ? fail(cl, -EMSGSIZE) : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_client *cl = p->data;
	int first = cl->part != P_FIELD;

	if (count(cl, len + (first ? HEADER_OVERHEAD : 0)))
		return -1;
	if (first) {
		if (!cl->headers_done && cl->n_seen < HTTP_MAX_HEADERS) {
			if (arena_add(cl, NULL, 0, cl->arena_len > 0))
				return fail(cl, -ENOMEM);
			cl->name_off[cl->n_seen] = cl->arena_len;
		}
		cl->part = P_FIELD;
	}
	if (!cl->headers_done && cl->n_seen < HTTP_MAX_HEADERS && arena_add(cl, at, len, 0))
		return fail(cl, -ENOMEM);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_client *cl = p->data;
	int keep = !cl->headers_done && cl->n_seen < HTTP_MAX_HEADERS;

	if (count(cl, len))
		return -1;
	if (cl->part != P_VALUE) {
		if (keep) {
			if (arena_add(cl, NULL, 0, 1))
				return fail(cl, -ENOMEM);
			cl->value_off[cl->n_seen] = cl->arena_len;
		}
		if (!cl->headers_done)
			cl->n_seen++;
		cl->part = P_VALUE;
	}
	if (keep && arena_add(cl, at, len, 0))
		return fail(cl, -ENOMEM);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_client *cl = p->data;
	int kept = cl->n_seen < HTTP_MAX_HEADERS ? cl->n_seen : HTTP_MAX_HEADERS;

	if (arena_add(cl, NULL, 0, 1))
		return fail(cl, -ENOMEM);
	cl->resp.n_headers = kept;
	for (int i = 0; i < kept; i++) {
		cl->resp.headers[i].name = cl->arena + cl->name_off[i];
		cl->resp.headers[i].value = cl->arena + cl->value_off[i];
	}
	cl->resp.status = p->status_code;
	cl->headers_done = 1;
	cl->part = P_NONE;
	if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
		cl->interim = 1;   /* 100 Continue and friends: the real response follows */
		return 0;
	}
	if (cl->cbs.on_response)
		cl->cbs.on_response(&cl->resp, cl->arg);
	if (cl->cancelled)
		return -1;
	return cl->head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_client *cl = p->data;

	if (cl->cbs.on_body)
		cl->cbs.on_body((const uint8_t *)at, len, cl->arg);
	return cl->cancelled ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_client *cl = p->data;

	if (cl->interim) {
		headers_reset(cl);
		return 0;
	}
	cl->complete = 1;
	http_parser_pause(p, 1);   /* whatever follows the response is not ours */
	return 0;
}

static const http_parser_settings response_settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* on_done once, then the client is gone (unless a callback cancelled it first). */
static void finish(struct http_client *cl, int status)
{
	if (cl->c) {
		conn_close(cl->c);
		cl->c = NULL;
	}
	if (!cl->cancelled && cl->cbs.on_done) {
		cl->in_done = 1;
		cl->cbs.on_done(status, cl->arg);
	}
	client_free(cl);
}

/* Feeds the parser (len 0: the peer closed, with eof_err) and finishes when the response
 * is complete or broken. Returns 1 when cl is gone. */
static int feed(struct http_client *cl, const uint8_t *buf, size_t len, int eof_err)
{
	enum http_errno err;

	cl->depth++;
	http_parser_execute(&cl->parser, &response_settings, (const char *)buf, len);
	cl->depth--;
	err = HTTP_PARSER_ERRNO(&cl->parser);
	if (cl->cancelled) {
		client_free(cl);
		return 1;
	}
	if (cl->complete) {
		finish(cl, 0);
		return 1;
	}
	if (err != HPE_OK) {
		log_debug("http response unparsable", "peer=%s err=%s", cl->c ? cl->c->peer : "?",
			  http_errno_name(err));
		finish(cl, cl->error ? cl->error : err == HPE_INVALID_EOF_STATE ? eof_err : -EPROTO);
		return 1;
	}
	return 0;
}

static void cl_on_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	feed(arg, buf, len, 0);
}

static void cl_on_end(struct conn *c, int status, void *arg)
{
	struct http_client *cl = arg;
	int err = status == UV_EOF || status >= 0 ? -ECONNRESET : status;

	/* A body delimited by the close ends here; anything else was cut short. */
	if (feed(cl, NULL, 0, err))
		return;
	finish(cl, err);
}

/* -- request -- */

static int bad_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int valid_method(const char *m)
{
	size_t n = strlen(m);

	if (!n || n > MAX_METHOD_LEN)
		return 0;
	for (; *m; m++)
		if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
			return 0;
	return 1;
}

static int header_is(const char *h, const char *name)
{
	size_t n = strlen(name);

	return !strncasecmp(h, name, n) && h[n] == ':';
}

static int build_request(const char *method, const char *host, const char *path,
			 const char *const *headers, const void *body, size_t len,
			 char **out, size_t *out_len)
{
	size_t cap = 128 + strlen(method) + strlen(host) + strlen(path), n;
	int with_length = len || body || !strcmp(method, "POST") || !strcmp(method, "PUT") ||
			  !strcmp(method, "PATCH");
	char *buf;

	for (const char *const *h = headers; h && *h; h++) {
		if (bad_text(*h) || !strchr(*h, ':'))
			return -EINVAL;
		cap += strlen(*h) + 2;
	}
	buf = malloc(cap + len);
	if (!buf)
		return -ENOMEM;
	n = (size_t)snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host);
	for (const char *const *h = headers; h && *h; h++) {
		if (header_is(*h, "Host") || header_is(*h, "Content-Length") ||
		    header_is(*h, "Connection") || header_is(*h, "Transfer-Encoding"))
			continue;   /* ours */
		n += (size_t)snprintf(buf + n, cap - n, "%s\r\n", *h);
	}
	if (with_length)
		n += (size_t)snprintf(buf + n, cap - n, "Content-Length: %zu\r\n", len);
	n += (size_t)snprintf(buf + n, cap - n, "Connection: close\r\n\r\n");
	if (len) {
		memcpy(buf + n, body, len);
		n += len;
	}
	*out = buf;
	*out_len = n;
	return 0;
}

int http_client_start(struct conn *c, const char *method, const char *host, const char *path,
		      const char *const *headers, const void *body, size_t len,
		      const struct http_client_cbs *cbs, void *arg, struct http_client **out)
{
	struct http_client *cl = NULL;
	char *req = NULL;
	size_t req_len = 0;
	int r;

	if (!c)
		return -EINVAL;
	if (!body)
		len = 0;
	if (!host || !*host)
		host = "localhost";
	if (!method || !path || !cbs || !out || !valid_method(method) || bad_text(host) ||
	    bad_text(path) || strchr(path, ' ') || strchr(host, ' ') || (path[0] != '/' && strcmp(path, "*"))) {
		r = -EINVAL;
		goto err_close;
	}
	r = build_request(method, host, path, headers, body, len, &req, &req_len);
	if (r < 0)
		goto err_close;
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		r = -ENOMEM;
		goto err_free;
	}
	cl->c = c;
	cl->cbs = *cbs;
	cl->arg = arg;
	cl->head = !strcmp(method, "HEAD");
	http_parser_init(&cl->parser, HTTP_RESPONSE);
	cl->parser.data = cl;
	conn_set_callbacks(c, cl_on_read, cl_on_end, cl);
	r = conn_write(c, req, req_len);
	if (r < 0)
		goto err_client;
	free(req);
	*out = cl;
	return 0;

err_client:
	client_free(cl);   /* closes c */
	free(req);
	return r;
err_free:
	free(req);
err_close:
	conn_close(c);
	return r;
}

void http_client_cancel(struct http_client *cl)
{
	if (!cl || cl->cancelled)
		return;
	cl->cancelled = 1;
	if (cl->c) {
		conn_close(cl->c);
		cl->c = NULL;
	}
	/* Inside a callback, feed() or finish() frees it when the callback returns. */
	if (!cl->depth && !cl->in_done)
		client_free(cl);
}
