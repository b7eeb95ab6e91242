/* http_server.c - HTTP/1.1 server connections on struct conn (RFC 9112 framing via http-parser): bounded requests, timeouts, keep-alive, pipelining. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "meshvpn/ratelimit.h"
#include "http_int.h"

#define DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define DEFAULT_HEADER_TIMEOUT_MS 10000
#define DEFAULT_IDLE_TIMEOUT_MS 60000
#define MAX_NAME_LEN 256                /* one header name */
#define HEADER_OVERHEAD 4               /* ": " and CRLF, counted against max_header_bytes */
#define PAUSED_INPUT_MAX (256 * 1024)   /* pipelined input held while a handler works */
#define BODY_PREALLOC_MAX (64 * 1024)
#define DEFAULT_MAX_UNSENT (256 * 1024)
#define DEFAULT_DRAIN_TIMEOUT_MS 30000
#define DRAIN_POLL_MS 100               /* how often a stalled client's queue is looked at */
#define LOG_PER_SEC 10                  /* lines a second for each kind a client can cause */

/* What any client can make the server say, at a bounded rate (lib/log.c). */
static struct log_limit lim_reject = LOG_LIMIT_INIT("http_rejected", LOG_PER_SEC);
static struct log_limit lim_refuse = LOG_LIMIT_INIT("http_conn_refused", LOG_PER_SEC);
static struct log_limit lim_cut = LOG_LIMIT_INIT("http_client_cut", LOG_PER_SEC);

const char *http_request_header(const struct http_request *req, const char *name)
{
	for (int i = 0; i < req->n_headers; i++)
		if (!strcasecmp(req->headers[i].name, name))
			return req->headers[i].value;
	return NULL;
}

/* -- connection lifetime -- */

static void hc_free_cb(uv_handle_t *h)
{
	struct http_conn *hc = h->data;

	free(hc->arena);
	free(hc->body);
	free(hc->inbuf);
	free(hc);
}

/* Closes the transport and unlinks; the memory goes when libuv has closed the timer,
 * so callers up the stack may still look at hc->state. */
void http_conn_destroy(struct http_conn *hc)
{
	struct http_server *srv = hc->srv;

	if (hc->state == HC_DEAD)
		return;
	hc->state = HC_DEAD;
	if (hc->c) {
		conn_close(hc->c);
		http_conn_release(hc);
		hc->c = NULL;
	}
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		srv->head = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	hc->prev = hc->next = NULL;
	uv_close((uv_handle_t *)&hc->timer, hc_free_cb);
}

/* Ends the connection; a request the handler holds stays valid until it answers. */
static void hc_abort(struct http_conn *hc)
{
	if (hc->state != HC_HANDLING) {
		http_conn_destroy(hc);
		return;
	}
	if (hc->c) {
		conn_close(hc->c);
		http_conn_release(hc);
		hc->c = NULL;
	}
	hc->gone = 1;
}

/* Forgets the request just answered; the next one starts from scratch. */
void http_conn_req_reset(struct http_conn *hc)
{
	free(hc->arena);
	hc->arena = NULL;
	hc->arena_len = hc->arena_cap = 0;
	free(hc->body);
	hc->body = NULL;
	hc->body_cap = 0;
	hc->part = P_NONE;
	hc->header_bytes = 0;
	hc->reject = 0;
	hc->reject_msg = NULL;
	hc->started = 0;
	hc->have_url = 0;
	hc->headers_done = 0;
	hc->head = 0;
	memset(&hc->req, 0, sizeof(hc->req));
	hc->req.path = hc->empty;
	hc->req.body = (uint8_t *)hc->empty;
	hc->req.peer = hc->peer;
	hc->req.priv = hc;
}

static void stream_gone(struct http_conn *hc)
{
	struct http_stream *s = &hc->stream;

	if (!s->finished) {
		s->finished = 1;
		if (s->on_close)
			s->on_close(s, s->arg);
	}
	http_conn_destroy(hc);
}

/* The request has been answered: keep the connection for the next one, or close. */
void http_conn_answered(struct http_conn *hc)
{
	if (!hc->keep_alive || !hc->c) {
		http_conn_destroy(hc);
		return;
	}
	hc->state = HC_READ;
	if (hc->in_dispatch) {
		/* hc_process() goes on with the input it holds. */
		http_conn_timer_set(hc, T_IDLE, hc->srv->opts.idle_timeout_ms);
		return;
	}
	/* Answered later: go on from the loop, not from inside the caller. */
	http_conn_req_reset(hc);
	http_conn_timer_set(hc, T_RESUME, 0);
}

/* A request refused while it was being read: answer and close. */
static void hc_reject(struct http_conn *hc, int status, const char *message)
{
	char *body;
	size_t len = 0;

	hc->srv->stats.rejected++;
	log_limited(&lim_reject, LOG_INFO, "http request rejected", "peer=%s status=%d reason=\"%s\"",
		    hc->peer, status, message);
	hc->keep_alive = 0;
	hc->head = 0;
	body = http_error_json(message, &len);
	http_write_response(hc, status, "application/json", NULL, body ? body : "", len);
	free(body);
	http_conn_destroy(hc);
}

/* -- reading requests (http-parser callbacks) -- */

static int reject_in_parse(struct http_conn *hc, int status, const char *message)
{
	hc->reject = status;
	hc->reject_msg = message;
	return -1;
}

static int arena_add(struct http_conn *hc, const char *p, size_t len)
{
	size_t need = hc->arena_len + len + 1, cap;
	char *a;

	if (need > hc->arena_cap) {
		cap = hc->arena_cap ? hc->arena_cap : 256;
		while (cap < need)
			cap *= 2;
		a = realloc(hc->arena, cap);
		if (!a)
			return -1;
		hc->arena = a;
		hc->arena_cap = cap;
	}
	if (len)
		memcpy(hc->arena + hc->arena_len, p, len);
	hc->arena_len += len;
	return 0;
}

static int arena_nul(struct http_conn *hc)
{
	if (arena_add(hc, "", 0))
		return -1;
	hc->arena[hc->arena_len++] = 0;
	return 0;
}

static int count_header_bytes(struct http_conn *hc, size_t len)
{
	hc->header_bytes += len;
	if (hc->header_bytes > hc->srv->opts.max_header_bytes)
		return reject_in_parse(hc, 431, "request header fields too large");
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *hc = p->data;

	hc->started = 1;
	/* From the first byte of a kept-alive connection's next request, the whole request
	 * must arrive within header_timeout. */
	if (hc->timer_kind != T_HEADER)
		http_conn_timer_set(hc, T_HEADER, hc->srv->opts.header_timeout_ms);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;

	if (count_header_bytes(hc, len))
		return -1;
	if (hc->part != P_URL) {
		hc->url_off = hc->arena_len;
		hc->part = P_URL;
		hc->have_url = 1;
	}
	if (arena_add(hc, at, len))
		return reject_in_parse(hc, 503, "out of memory");
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;

	/* Trailers of a chunked body: counted, not kept (the headers are final by now). */
	if (hc->headers_done) {
		size_t over = hc->part != P_FIELD ? HEADER_OVERHEAD : 0;
		hc->part = P_FIELD;
		return count_header_bytes(hc, len + over);
	}
	if (count_header_bytes(hc, len + (hc->part != P_FIELD ? HEADER_OVERHEAD : 0)))
		return -1;
	if (hc->part != P_FIELD) {
		if (hc->req.n_headers == HTTP_MAX_HEADERS)
			return reject_in_parse(hc, 431, "too many request header fields");
		if (arena_nul(hc))
			return reject_in_parse(hc, 503, "out of memory");
		hc->name_off[hc->req.n_headers] = hc->arena_len;
		hc->part = P_FIELD;
	}
	if (hc->arena_len - hc->name_off[hc->req.n_headers] + len > MAX_NAME_LEN)
		return reject_in_parse(hc, 431, "request header field name too long");
	if (arena_add(hc, at, len))
		return reject_in_parse(hc, 503, "out of memory");
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;

	if (hc->headers_done) {
		hc->part = P_VALUE;
		return count_header_bytes(hc, len);
	}
	if (count_header_bytes(hc, len))
		return -1;
	if (hc->part != P_VALUE) {
		if (hc->part != P_FIELD)
			return reject_in_parse(hc, 400, "header value without a name");
		if (arena_nul(hc))
			return reject_in_parse(hc, 503, "out of memory");
		hc->value_off[hc->req.n_headers++] = hc->arena_len;
		hc->part = P_VALUE;
	}
	if (arena_add(hc, at, len))
		return reject_in_parse(hc, 503, "out of memory");
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *hc = p->data;
	struct http_request *req = &hc->req;
	const char *expect;

	if (hc->part == P_FIELD) {
		/* A name without a value; http-parser should not let one through. */
		if (arena_nul(hc))
			return reject_in_parse(hc, 503, "out of memory");
		hc->value_off[req->n_headers++] = hc->arena_len;
	}
	if (arena_nul(hc))
		return reject_in_parse(hc, 503, "out of memory");
	req->path = hc->have_url ? hc->arena + hc->url_off : hc->empty;
	for (int i = 0; i < req->n_headers; i++) {
		req->headers[i].name = hc->arena + hc->name_off[i];
		req->headers[i].value = hc->arena + hc->value_off[i];
	}
	hc->headers_done = 1;
	hc->part = P_NONE;
	snprintf(req->method, sizeof(req->method), "%s", http_method_str((enum http_method)p->method));
	hc->head = p->method == HTTP_HEAD;
	hc->http10 = p->http_major == 1 && p->http_minor == 0;
	if (p->http_major != 1)
		return reject_in_parse(hc, 505, "only HTTP/1.x is spoken here");

	if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX) {
		if (p->content_length > hc->srv->opts.max_body_bytes)
			return reject_in_parse(hc, 413, "request body too large");
		if (p->content_length) {
			/* Sized for what was announced, up to a point: memory follows the bytes
			 * that really arrive, not the claim. */
			size_t cap = p->content_length < BODY_PREALLOC_MAX ? (size_t)p->content_length + 1 :
				     BODY_PREALLOC_MAX;
			hc->body = malloc(cap);
			if (!hc->body)
				return reject_in_parse(hc, 503, "out of memory");
			hc->body_cap = cap;
		}
	}
	expect = http_request_header(req, "Expect");
	if (expect && !strcasecmp(expect, "100-continue") && !hc->http10 && hc->c &&
	    ((p->flags & F_CHUNKED) || (p->content_length && p->content_length != ULLONG_MAX)))
		conn_write(hc->c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;
	size_t need, cap;
	uint8_t *b;

	if (len > hc->srv->opts.max_body_bytes - hc->req.body_len)
		return reject_in_parse(hc, 413, "request body too large");
	need = hc->req.body_len + len + 1;
	if (need > hc->body_cap) {
		cap = hc->body_cap ? hc->body_cap : 1024;
		while (cap < need)
			cap *= 2;
		if (cap > hc->srv->opts.max_body_bytes + 1)
			cap = hc->srv->opts.max_body_bytes + 1;
		b = realloc(hc->body, cap);
		if (!b)
			return reject_in_parse(hc, 503, "out of memory");
		hc->body = b;
		hc->body_cap = cap;
	}
	memcpy(hc->body + hc->req.body_len, at, len);
	hc->req.body_len += len;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *hc = p->data;

	/* After an upgrade request the bytes are not HTTP: the handler takes the connection
	 * (http_upgrade) or it is closed once answered. */
	hc->keep_alive = !p->upgrade && http_should_keep_alive(p);
	/* One request at a time: the rest of the input waits until this one is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings request_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static void hc_dispatch(struct http_conn *hc)
{
	struct http_server *srv = hc->srv;
	char qpath[160];

	hc->state = HC_HANDLING;
	hc->started = 0;
	uv_timer_stop(&hc->timer);
	hc->timer_kind = T_NONE;
	if (hc->body) {
		hc->body[hc->req.body_len] = 0;
		hc->req.body = hc->body;
	}
	log_debug("http request", "peer=%s method=%s path=%s body=%zu", hc->peer, hc->req.method,
		  log_quote(hc->req.path, qpath, sizeof(qpath)), hc->req.body_len);
	hc->in_dispatch = 1;
	srv->handler(&hc->req, srv->arg);
	hc->in_dispatch = 0;
	switch (hc->state) {
	case HC_HANDLING:
		/* Answered later: stop reading, so a pipelining client waits in the kernel. */
		if (hc->c)
			conn_read_stop(hc->c);
		break;
	case HC_READ:
	case HC_STREAM:
		http_conn_req_reset(hc);
		break;
	case HC_DEAD:
		break;
	}
}

static void stream_input(struct http_conn *hc, size_t len)
{
	hc->stream_input += len;
	if (hc->stream_input > HTTP_STREAM_INPUT_MAX) {
		log_limited(&lim_cut, LOG_INFO, "http stream client sent too much", "peer=%s bytes=%zu",
			    hc->peer, hc->stream_input);
		stream_gone(hc);
	}
}

static void save_input(struct http_conn *hc, const uint8_t *data, size_t len)
{
	uint8_t *b;

	if (len > PAUSED_INPUT_MAX - hc->inlen) {
		log_limited(&lim_cut, LOG_INFO, "http pipelined input over limit", "peer=%s bytes=%zu",
			    hc->peer, hc->inlen + len);
		hc_abort(hc);
		return;
	}
	b = realloc(hc->inbuf, hc->inlen + len);
	if (!b) {
		hc_abort(hc);
		return;
	}
	memcpy(b + hc->inlen, data, len);
	hc->inbuf = b;
	hc->inlen += len;
}

/* -- back-pressure: a client that sends requests but does not read the answers -- */

static int backed_up(struct http_conn *hc)
{
	return hc->c && conn_pending(hc->c) > hc->srv->opts.max_unsent_bytes;
}

/* Stops reading (the client's further requests wait in its socket, not here); the
 * deadline runs from now and nothing the client does moves it. */
static void stall(struct http_conn *hc)
{
	hc->srv->stats.stalls++;
	hc->stalled_at = uv_now(hc->srv->loop);
	conn_read_stop(hc->c);
	http_conn_timer_set(hc, T_DRAIN, DRAIN_POLL_MS);
}

static void resume(struct http_conn *hc);

static void drain_check(struct http_conn *hc)
{
	uint64_t now = uv_now(hc->srv->loop);

	if (!hc->c) {
		http_conn_destroy(hc);
	} else if (conn_pending(hc->c) <= hc->srv->opts.max_unsent_bytes / 2) {
		resume(hc);
	} else if (now - hc->stalled_at >= hc->srv->opts.drain_timeout_ms) {
		hc->srv->stats.drain_closed++;
		log_limited(&lim_cut, LOG_INFO, "http client does not read its answers",
			    "peer=%s unsent=%zu", hc->peer, conn_pending(hc->c));
		http_conn_destroy(hc);
	} else {
		http_conn_timer_set(hc, T_DRAIN, DRAIN_POLL_MS);
	}
}

/* Parses and dispatches requests one at a time until the input is used up, a handler
 * keeps its request for later, or the connection ends. */
static void hc_process(struct http_conn *hc, const uint8_t *data, size_t len)
{
	enum http_errno err;
	size_t n;

	while (len && hc->state == HC_READ) {
		n = http_parser_execute(&hc->parser, &request_settings, (const char *)data, len);
		err = HTTP_PARSER_ERRNO(&hc->parser);
		if (n > len)
			n = len;
		data += n;
		len -= n;
		if (err == HPE_PAUSED) {
			http_parser_pause(&hc->parser, 0);
			hc_dispatch(hc);
			if (hc->state == HC_READ && backed_up(hc)) {
				stall(hc);
				break;
			}
			continue;
		}
		if (err != HPE_OK) {
			if (hc->reject)
				hc_reject(hc, hc->reject, hc->reject_msg);
			else
				hc_reject(hc, 400, http_errno_description(err));
			return;
		}
		if (len) {
			hc_reject(hc, 400, "unparsed input");
			return;
		}
	}
	if (hc->upgraded) {
		/* What a client sent right after its upgrade request is the new protocol's. */
		struct conn *c = hc->upgraded;

		hc->upgraded = NULL;
		if (len)
			c->on_read(c, data, len, c->arg);
		return;
	}
	if (!len)
		return;
	if (hc->state == HC_HANDLING || (hc->state == HC_READ && hc->timer_kind == T_DRAIN))
		save_input(hc, data, len);
	else if (hc->state == HC_STREAM)
		stream_input(hc, len);
}

static void resume(struct http_conn *hc)
{
	uint8_t *in = hc->inbuf;
	size_t len = hc->inlen;

	if (backed_up(hc)) {
		/* A late answer filled the queue: wait for it with the input kept. */
		stall(hc);
		return;
	}
	hc->inbuf = NULL;
	hc->inlen = 0;
	http_conn_timer_set(hc, T_IDLE, hc->srv->opts.idle_timeout_ms);
	if (hc->c)
		conn_read_start(hc->c);
	if (in)
		hc_process(hc, in, len);
	free(in);
}

static void timer_cb(uv_timer_t *t)
{
	struct http_conn *hc = t->data;

	switch (hc->timer_kind) {
	case T_HEADER:
		hc->timer_kind = T_NONE;
		if (hc->started) {
			hc_reject(hc, 408, "request not received in time");
		} else {
			log_debug("http connection sent nothing in time", "peer=%s", hc->peer);
			http_conn_destroy(hc);
		}
		break;
	case T_IDLE:
		hc->timer_kind = T_NONE;
		log_debug("http keep-alive connection idle", "peer=%s", hc->peer);
		http_conn_destroy(hc);
		break;
	case T_RESUME:
		hc->timer_kind = T_NONE;
		resume(hc);
		break;
	case T_STREAM_GONE:
		hc->timer_kind = T_NONE;
		stream_gone(hc);
		break;
	case T_DRAIN:
		hc->timer_kind = T_NONE;
		drain_check(hc);
		break;
	case T_NONE:
		break;
	}
}

void http_conn_timer_set(struct http_conn *hc, enum hc_timer kind, uint64_t ms)
{
	hc->timer_kind = kind;
	uv_timer_start(&hc->timer, timer_cb, ms, 0);
}

static void hc_on_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct http_conn *hc = arg;

	switch (hc->state) {
	case HC_READ:
		if (hc->inlen || hc->timer_kind == T_RESUME || hc->timer_kind == T_DRAIN)
			save_input(hc, buf, len);   /* behind input that waits for resume() */
		else
			hc_process(hc, buf, len);
		break;
	case HC_HANDLING:
		save_input(hc, buf, len);
		break;
	case HC_STREAM:
		stream_input(hc, len);
		break;
	case HC_DEAD:
		break;
	}
}

static void hc_on_end(struct conn *c, int status, void *arg)
{
	struct http_conn *hc = arg;

	log_debug("http connection ended", "peer=%s err=%s", hc->peer,
		  status == UV_EOF ? "eof" : uv_err_name(status));
	if (hc->state == HC_STREAM)
		stream_gone(hc);
	else
		hc_abort(hc);
}

/* -- server -- */

int http_server_new(uv_loop_t *loop, const struct http_server_opts *opts,
		    http_handler handler, void *arg, struct http_server **out)
{
	struct http_server *srv;

	if (!loop || !handler || !out)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	if (opts)
		srv->opts = *opts;
	if (!srv->opts.max_header_bytes)
		srv->opts.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
	if (!srv->opts.max_body_bytes)
		srv->opts.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
	if (!srv->opts.header_timeout_ms)
		srv->opts.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
	if (!srv->opts.idle_timeout_ms)
		srv->opts.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
	if (!srv->opts.max_unsent_bytes)
		srv->opts.max_unsent_bytes = DEFAULT_MAX_UNSENT;
	if (!srv->opts.drain_timeout_ms)
		srv->opts.drain_timeout_ms = DEFAULT_DRAIN_TIMEOUT_MS;
	keymap_init(&srv->sources);
	randombytes_buf(srv->source_hkey, sizeof(srv->source_hkey));
	srv->loop = loop;
	srv->handler = handler;
	srv->arg = arg;
	*out = srv;
	return 0;
}

/* -- connection caps -- */

static void source_key(const struct http_server *srv, const char *peer, uint8_t out[32])
{
	uint8_t k[RATELIMIT_KEY_LEN];

	ratelimit_source_key(peer, k);
	crypto_generichash(out, 32, k, sizeof(k), srv->source_hkey, sizeof(srv->source_hkey));
}

/* 0 and hc counted under its source, or -EBUSY (refused, logged) / -ENOMEM. */
static int admit(struct http_server *srv, struct conn *c, struct http_conn *hc)
{
	const struct http_server_opts *o = &srv->opts;
	struct http_source *src;
	uint8_t key[32];

	hc->srv = srv;
	if (o->max_conns && srv->n_conns >= o->max_conns) {
		srv->stats.conns_refused++;
		log_limited(&lim_refuse, LOG_WARN, "http connection refused", "peer=%s reason=max_conns"
			    " open=%zu", c->peer, srv->n_conns);
		return -EBUSY;
	}
	if (!o->max_conns_per_source)
		return 0;
	source_key(srv, c->peer, key);
	src = keymap_get(&srv->sources, key);
	if (src && src->n >= o->max_conns_per_source) {
		srv->stats.conns_refused++;
		log_limited(&lim_refuse, LOG_WARN, "http connection refused",
			    "peer=%s reason=max_conns_per_source open=%zu", c->peer, src->n);
		return -EBUSY;
	}
	if (!src) {
		src = calloc(1, sizeof(*src));
		if (!src)
			return -ENOMEM;
		memcpy(src->key, key, sizeof(key));
		if (keymap_put(&srv->sources, src->key, src)) {
			free(src);
			return -ENOMEM;
		}
	}
	src->n++;
	hc->src = src;
	return 0;
}

void http_conn_release(struct http_conn *hc)
{
	struct http_source *src = hc->src;

	hc->srv->n_conns--;
	hc->src = NULL;
	if (src && !--src->n) {
		keymap_del(&hc->srv->sources, src->key);
		free(src);
	}
}

void http_server_add_conn(struct http_server *srv, struct conn *c)
{
	struct http_conn *hc;

	if (!c)
		return;
	hc = calloc(1, sizeof(*hc));
	if (!hc || uv_timer_init(srv->loop, &hc->timer) < 0) {
		log_warn("http connection dropped", "peer=%s err=ENOMEM", c->peer);
		free(hc);
		conn_close(c);
		return;
	}
	hc->timer.data = hc;
	if (admit(srv, c, hc)) {
		uv_close((uv_handle_t *)&hc->timer, hc_free_cb);
		conn_close(c);
		return;
	}
	hc->srv = srv;
	hc->c = c;
	hc->timer.data = hc;
	snprintf(hc->peer, sizeof(hc->peer), "%s", c->peer[0] ? c->peer : "?");
	http_parser_init(&hc->parser, HTTP_REQUEST);
	hc->parser.data = hc;
	hc->stream.hc = hc;
	http_conn_req_reset(hc);
	hc->next = srv->head;
	if (srv->head)
		srv->head->prev = hc;
	srv->head = hc;
	srv->n_conns++;
	conn_set_callbacks(c, hc_on_read, hc_on_end, hc);
	http_conn_timer_set(hc, T_HEADER, srv->opts.header_timeout_ms);
	conn_read_start(c);
}

void http_server_free(struct http_server *srv)
{
	struct http_conn *hc;

	if (!srv)
		return;
	/* Close callbacks may end other streams: take the head each time. */
	while ((hc = srv->head)) {
		if (hc->state == HC_STREAM)
			stream_gone(hc);
		else
			http_conn_destroy(hc);
	}
	keymap_free(&srv->sources);
	free(srv);
}

size_t http_server_conn_count(const struct http_server *srv)
{
	return srv ? srv->n_conns : 0;
}

void http_server_get_stats(const struct http_server *srv, struct http_server_stats *out)
{
	if (srv)
		*out = srv->stats;
	else
		memset(out, 0, sizeof(*out));
}
