/* http_int.h - what lib/http_server.c and lib/http_response.c share, private to lib/: the server's connection state. */
#ifndef MESHVPN_HTTP_INT_H
#define MESHVPN_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "meshvpn/http.h"
#include "meshvpn/keymap.h"

#define HTTP_STREAM_INPUT_MAX (64 * 1024)  /* what a stream's client may send before it is cut */

enum hc_state { HC_READ, HC_HANDLING, HC_STREAM, HC_DEAD };
enum hc_timer { T_NONE, T_HEADER, T_IDLE, T_RESUME, T_STREAM_GONE, T_DRAIN };
enum hc_part { P_NONE, P_URL, P_FIELD, P_VALUE };

struct http_stream {
	struct http_conn *hc;
	http_stream_close_cb on_close;
	void *arg;
	unsigned chunked : 1;
	unsigned finished : 1;      /* ended by the owner, or on_close delivered */
};

/* Open connections of one source, for max_conns_per_source. */
struct http_source {
	uint8_t key[32];            /* keyed hash of the source (keymap wants random keys) */
	size_t n;
};

struct http_conn {
	struct http_server *srv;
	struct http_source *src;    /* NULL once the transport is released */
	struct http_conn *prev, *next;
	struct conn *c;             /* NULL once the transport is closed */
	uv_timer_t timer;
	enum hc_timer timer_kind;
	enum hc_state state;
	http_parser parser;
	struct http_request req;
	struct http_stream stream;

	/* Request line and headers: offsets into arena until the headers are complete,
	 * because arena moves while it grows. */
	char *arena;
	size_t arena_len, arena_cap;
	size_t url_off, name_off[HTTP_MAX_HEADERS], value_off[HTTP_MAX_HEADERS];
	enum hc_part part;
	size_t header_bytes;
	int reject;                 /* status for a request refused while parsing */
	const char *reject_msg;

	uint8_t *body;
	size_t body_cap;
	uint8_t *inbuf;             /* input that arrived while a handler worked */
	size_t inlen;
	size_t stream_input;
	uint64_t stalled_at;        /* loop time the answers backed up (T_DRAIN) */
	struct conn *upgraded;      /* handed over by http_upgrade: gets the input left over */

	unsigned started : 1;       /* bytes of a request have arrived */
	unsigned have_url : 1;
	unsigned headers_done : 1;
	unsigned keep_alive : 1;
	unsigned head : 1;          /* HEAD: no body in the response */
	unsigned http10 : 1;
	unsigned gone : 1;          /* transport closed while the handler works */
	unsigned in_dispatch : 1;
	char empty[1];
	char peer[64];
};

struct http_server {
	uv_loop_t *loop;
	struct http_server_opts opts;
	http_handler handler;
	void *arg;
	struct http_conn *head;
	size_t n_conns;
	struct keymap sources;      /* struct http_source by key */
	uint8_t source_hkey[32];
	struct http_server_stats stats;
};

/* http_server.c */
/* Closes and unlinks; hc stays readable until the loop turns. */
void http_conn_destroy(struct http_conn *hc);
void http_conn_req_reset(struct http_conn *hc);
/* The transport leaves the server (closed or handed over): the counts go down. */
void http_conn_release(struct http_conn *hc);
void http_conn_timer_set(struct http_conn *hc, enum hc_timer kind, uint64_t ms);
/* Keep-alive: on to the next request, or close. */
void http_conn_answered(struct http_conn *hc);

/* http_response.c */
/* Status line, headers and body (inline when small); nothing for HEAD, 1xx, 204, 304. */
int http_write_response(struct http_conn *hc, int status, const char *content_type,
			const char *extra, const void *body, size_t len);
/* {"error": message}, malloc'd; NULL when out of memory. */
char *http_error_json(const char *message, size_t *len);

#endif
