/* http.h - HTTP/1.1 server and client over struct conn (http-parser): bounded headers
 * and bodies, header and idle timeouts, chunked streaming responses. */
#ifndef MESHVPN_HTTP_H
#define MESHVPN_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "meshvpn/conn.h"

#define HTTP_MAX_HEADERS 32

struct http_header {
	char *name;
	char *value;
};

struct http_request {
	char method[16];
	char *path;               /* request target, query included */
	struct http_header headers[HTTP_MAX_HEADERS];
	int n_headers;
	uint8_t *body;            /* NUL-terminated for convenience; body_len excludes it */
	size_t body_len;
	const char *peer;         /* for logs */
	void *priv;               /* the server's */
};

/* Case-insensitive; NULL when absent. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The query parameter `name` of a request target ("/v1/map?since=5&epoch=ab"), percent-
 * decoded into out (size bytes, NUL included): 0; -ENOENT (absent), -EINVAL (a bad escape,
 * a NUL, or the name twice), -EMSGSIZE (longer than out). out is "" on any error. */
int http_query_get(const char *target, const char *name, char *out, size_t size);

struct http_server_opts {
	size_t max_header_bytes;   /* request line + headers; default 16 KiB */
	size_t max_body_bytes;     /* default 1 MiB; more gets 413 */
	uint64_t header_timeout_ms;/* whole request must arrive in this; default 10 s */
	uint64_t idle_timeout_ms;  /* keep-alive idle; default 60 s */
	/* Back-pressure: a client whose answers wait unsent past max_unsent_bytes (default
	 * 256 KiB) is not read until they are down to half, and is closed when that takes
	 * longer than drain_timeout_ms (default 30 s). */
	size_t max_unsent_bytes;
	uint64_t drain_timeout_ms;
	/* Connections open at once, in all and from one source (an IPv4 address, an IPv6
	 * /64); 0 = no cap. One over is closed as it arrives. */
	size_t max_conns, max_conns_per_source;
};

/* What the server refused or cut, for metrics. */
struct http_server_stats {
	uint64_t rejected;         /* requests refused while being read (4xx/5xx, closed) */
	uint64_t conns_refused;    /* over max_conns or max_conns_per_source */
	uint64_t stalls;           /* times a client stopped being read: answers unsent */
	uint64_t drain_closed;     /* ... and closed because it did not read them */
};

struct http_server;

/* Called once per complete request. The handler must answer with http_respond*() or
 * turn it into a stream with http_stream_start(), before returning or later; the
 * request stays valid until then. */
typedef void (*http_handler)(struct http_request *req, void *arg);

int http_server_new(uv_loop_t *loop, const struct http_server_opts *opts,
		    http_handler handler, void *arg, struct http_server **out);
/* Hands an accepted connection (plain or TLS) to the server, which owns it from then on. */
void http_server_add_conn(struct http_server *srv, struct conn *c);
/* Closes every connection (streams get their close callbacks) and frees the server.
 * Requests a handler still holds go too: answer none afterwards. Connections finish
 * closing on the loop, so run it afterwards. */
void http_server_free(struct http_server *srv);
/* Number of open connections (for metrics and tests). */
size_t http_server_conn_count(const struct http_server *srv);
void http_server_get_stats(const struct http_server *srv, struct http_server_stats *out);

/* extra_headers: NULL or "Name: value\r\n..." lines. Whatever these return, the request
 * is answered and gone afterwards (-EPIPE: its client had left already). */
int http_respond(struct http_request *req, int status, const char *content_type,
		 const char *extra_headers, const void *body, size_t len);
/* {"error": message} with the status. */
int http_respond_error(struct http_request *req, int status, const char *message);
/* body as compact JSON with the status; body is stolen (freed here). A NULL body (a
 * failed json_pack) or one that cannot be dumped is answered 500 "out of memory". */
struct json_t;
int http_respond_json(struct http_request *req, int status, struct json_t *body);

/* Hands the connection over to another protocol (the relay's `GET /relay`): answers
 * "101 Switching Protocols" with Upgrade: protocol, sets the callbacks and gives up the
 * conn, which *out owns from now on. Only from inside the handler, for a request that
 * asked for an upgrade (Connection: Upgrade). Bytes the client sent after the request
 * come to on_read after the handler returns. 0, -EINVAL, or -EPIPE (the client left; the
 * request is gone). */
int http_upgrade(struct http_request *req, const char *protocol, conn_read_cb on_read,
		 conn_end_cb on_end, void *arg, struct conn **out);

/* A chunked response that stays open (netmap stream, relay stream). */
struct http_stream;
typedef void (*http_stream_close_cb)(struct http_stream *s, void *arg);
int http_stream_start(struct http_request *req, int status, const char *content_type,
		      http_stream_close_cb on_close, void *arg, struct http_stream **out);
/* Writes one chunk. -EPIPE once the client has gone (on_close then follows from the
 * loop, never from inside this call). */
int http_stream_write(struct http_stream *s, const void *buf, size_t len);
/* The same without copying buf where the connection can (conn_write_ref(): a full
 * netmap over TLS waits as it is until it is encrypted, a slice at a time): buf stays
 * valid until release(ctx), which comes exactly once whatever this returns. */
int http_stream_write_ref(struct http_stream *s, const void *buf, size_t len,
			  conn_release_cb release, void *ctx);
/* Bytes queued towards this client (slow consumers can be cut off). */
size_t http_stream_pending(const struct http_stream *s);
/* Ends the response (zero chunk) and closes; on_close is not called for an end the
 * owner asked for. */
void http_stream_end(struct http_stream *s);

/* Client: one request on a connection the caller opened; the client owns the conn. */
struct http_response {
	int status;
	struct http_header headers[HTTP_MAX_HEADERS];
	int n_headers;
};
const char *http_response_header(const struct http_response *resp, const char *name);

struct http_client_cbs {
	/* Status line and headers arrived. */
	void (*on_response)(const struct http_response *resp, void *arg);
	/* Body bytes as they arrive, de-chunked. */
	void (*on_body)(const uint8_t *p, size_t len, void *arg);
	/* Exactly once: 0 after the whole body, or a negative errno. */
	void (*on_done)(int status, void *arg);
};
struct http_client;
/* headers: NULL-terminated list of "Name: value" strings (Host and Content-Length are added).
 * host NULL: "localhost". On error c has been closed and no callback follows. After
 * on_done the client is freed: cancel only before (or from inside a callback). */
int http_client_start(struct conn *c, const char *method, const char *host, const char *path,
		      const char *const *headers, const void *body, size_t len,
		      const struct http_client_cbs *cbs, void *arg, struct http_client **out);
/* Stops the request and closes the conn; no callback afterwards. */
void http_client_cancel(struct http_client *cl);

/* Base URLs: "https://host[:port]", "http://host[:port]", "unix:/path/to/socket". */
enum http_scheme { HTTP_SCHEME_HTTP, HTTP_SCHEME_HTTPS, HTTP_SCHEME_UNIX };
struct http_url {
	enum http_scheme scheme;
	char host[256];      /* unix: the socket path */
	uint16_t port;
	char path[256];      /* "/" when absent */
};
int http_url_parse(const char *s, struct http_url *u);
/* The Host: value for u: "host" or "host:port" when the port is not the scheme's,
 * IPv6 literals bracketed, "localhost" for unix. out: 300 bytes hold any. */
void http_url_host_header(const struct http_url *u, char *out, size_t size);

/* Blocking request on a private loop, for CLIs and tests. pin may be NULL (https:
 * then CA verification). *body_out is malloc'd and NUL-terminated. timeout_ms (0: none)
 * bounds the whole request, connect and TLS handshake included (-ETIMEDOUT); a host name
 * still being resolved in the threadpool holds the return until the resolver answers. */
int http_fetch(const char *base_url, const char *pin, const char *method, const char *path,
	       const char *const *headers, const void *body, size_t len,
	       int *status, char **body_out, size_t *body_len, uint64_t timeout_ms);
/* A GET of url (its own path; "/" when it has none) with the answer streamed instead of
 * kept: on_response sees the status and headers, on_body each piece of the body as it
 * arrives (nonzero stops the fetch, which returns it). No bound on the body: the sink's.
 * 0 once the whole body came, or a negative errno; *status as for http_fetch. */
struct http_fetch_sink {
	void (*on_response)(const struct http_response *resp, void *arg);
	int (*on_body)(const uint8_t *p, size_t len, void *arg);
	void *arg;
};
int http_fetch_stream(const char *url, const char *pin, const char *const *headers,
		      const struct http_fetch_sink *sink, int *status, uint64_t timeout_ms);

#endif
