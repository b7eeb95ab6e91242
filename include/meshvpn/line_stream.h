/* line_stream.h - follows a chunked HTTPS response of lines (coord's GET /v1/map for vpnd,
 * GET /v1/relay/stream for a relay): a bearer token, an optional pin, reconnects with
 * exponential backoff and jitter, a watchdog for a silent server, lines bounded in length. */
#ifndef MESHVPN_LINE_STREAM_H
#define MESHVPN_LINE_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/coord_urls.h"
#include "meshvpn/http.h"

#define LINE_STREAM_TOKEN_MAX 128   /* bearer token, NUL included */
#define LINE_STREAM_QUERY_MAX 256   /* line_stream_set_query's, NUL included */
/* A stream that worked (a whole line came) and is lost waits a random 0..this on top of
 * its backoff (or of the move to another instance) before the first retry: see
 * ls_lost() for why. */
#define LINE_STREAM_SPREAD_MS 2000
/* 503 or 429 with Retry-After: S: the retry waits S s plus 0..S/2 (S capped at this). */
#define LINE_STREAM_RETRY_AFTER_MAX 300

struct tls_config;
struct zlines_reader;

/* ---- line assembly: pure, no I/O (fuzzed) ---- */

struct line_buf {
	char *line;        /* the line so far; grows, kept for the next line */
	size_t len, cap;
	size_t max;        /* longest line taken, in bytes without the newline */
	size_t need;       /* after -EMSGSIZE or -ENOMEM: the length the line would have had */
};

/* A whole line, NUL-terminated, never empty, without its '\n'. Nonzero stops the feed
 * (the callback dropped, restarted or freed what the buffer belongs to). */
typedef int (*line_buf_cb)(const char *line, size_t len, void *arg);

/* Appends bytes and calls cb for each line they complete; empty lines are skipped.
 * 0 when all was taken, 1 when cb stopped it (lb is not touched afterwards), -EMSGSIZE
 * when a line grows past max (what it had is kept: reset before reusing), -ENOMEM. */
int line_buf_feed(struct line_buf *lb, const uint8_t *p, size_t len, line_buf_cb cb, void *arg);
/* The step under line_buf_feed, for a reader that does not take every byte as lines
 * (lib/zlines.c): appends bytes up to the first '\n' and says in *used how many it took
 * (the '\n' included). 1 when that completed a line (lb->line, lb->len: possibly empty;
 * set lb->len to 0 before taking more), 0 when all len bytes were taken without one,
 * errors as line_buf_feed. */
int line_buf_take(struct line_buf *lb, const uint8_t *p, size_t len, size_t *used);
/* Forgets a partial line (keeps the memory). */
void line_buf_reset(struct line_buf *lb);
void line_buf_free(struct line_buf *lb);

/* ---- the stream ---- */

enum line_stream_event {
	LINE_STREAM_CONNECTED,   /* the server answered 200: lines may flow */
	LINE_STREAM_LOST,        /* the stream ended or could not start (detail: -errno);
				  * retrying */
	LINE_STREAM_REFUSED,     /* an HTTP error answer (detail: the status); retried, except
				  * 401 and 403: the token is unknown or refused, retrying
				  * cannot help; 503 and 429 with Retry-After: S retry the same
				  * instance after S s plus 0..S/2 instead of the backoff */
};

struct line_stream;
typedef void (*line_stream_line_cb)(struct line_stream *ls, const char *line, size_t len,
				    void *arg);
typedef void (*line_stream_event_cb)(struct line_stream *ls, enum line_stream_event ev,
				     int detail, void *arg);

struct line_stream_opts {
	/* Strings are not copied: they must outlive the stream (literals in practice). */
	const char *path;           /* request target: "/v1/map" */
	const char *what;           /* logs: "<what> stream open", "<what> line too long" */
	const char *peer;           /* logs: "cannot reach <peer>", key <peer>=host */
	size_t max_line;            /* a longer line drops the stream, which is retried */
	uint64_t idle_timeout_ms;   /* nothing for this long (keepalives included): reconnect;
				     * checked every min(5 s, this) */
	uint64_t backoff_min_ms, backoff_max_ms;
	int compress;               /* ask for z frames (zlines.h); on_line sees them unpacked */
	uint64_t spread_ms;         /* 0: LINE_STREAM_SPREAD_MS */
	line_stream_line_cb on_line;
	line_stream_event_cb on_event;   /* may be NULL */
	/* May be NULL. Asked at every connect: fills buf (size bytes) with the query to
	 * send for it ("since=5&epoch=..", no '?'), after line_stream_set_query's; nonzero or
	 * "" for none (at most LINE_STREAM_QUERY_MAX bytes). */
	int (*query)(char *buf, size_t size, void *arg);
	void *arg;
};

struct line_stream {
	uv_loop_t *loop;
	struct line_stream_opts o;
	struct tls_config *tls;
	struct coord_urls urls;      /* the instances; the current one is dialled */
	struct http_url url;         /* the current one's URL */
	struct ls_resolve *resolving; /* uv_getaddrinfo in flight (detached by a drop) */
	char token[LINE_STREAM_TOKEN_MAX];   /* secret */
	int active;                  /* a stream is wanted */
	int connected;               /* answered 200, lines may flow */
	int http_status;             /* of the current response, 0 before it */
	unsigned retry_after_s;      /* of a 503 / 429 answer, 0 without a usable one */
	int had_line;                /* a whole line came on the current stream */
	int spread_next;             /* the next retry waits the spread too */
	unsigned gen;                /* bumps on every drop: stale callbacks look at it */
	struct conn_connect *attempt; /* connect in flight (cancelled by a drop) */
	struct http_client *cl;
	uv_timer_t retry, watchdog;
	uint64_t backoff_ms, last_rx_ms;
	struct line_buf buf;
	struct zlines_reader *z;     /* with o.compress: the z frame being gathered */
	char query[LINE_STREAM_QUERY_MAX];   /* added to o.path on every (re)connect */
	int closing;
};

/* Copies opts; -EINVAL (and nothing to close) without a path, what or peer, with an idle
 * timeout of 0, a backoff of 0 or min > max, or compress with a max_line shorter than a
 * z header (ZLINES_HEADER_MAX); -ENOMEM (nothing to close either). */
int line_stream_init(struct line_stream *ls, uv_loop_t *loop, const struct line_stream_opts *opts);
/* (Re)starts the stream now with these credentials (url "https://host[:port]" or a comma
 * list of them: coord_urls.h; pin NULL or "" for CA verification); an open one is dropped
 * first. A failed stream moves to the next instance (a host name's addresses are
 * resolved off the loop, each one an instance) at once, and backs off only when every
 * one failed in a row. -EINVAL for another scheme, a bad pin or a token too long,
 * -ESHUTDOWN after close. */
int line_stream_start(struct line_stream *ls, const char *url, const char *pin,
		      const char *token);
/* The query the next (re)connects send after "path?" ("since=5&epoch=..."; NULL or ""
 * for none), copied; with o.compress, ZLINES_QUERY is added to it. -E2BIG when it does
 * not fit LINE_STREAM_QUERY_MAX, -EINVAL for a byte outside '!'..'~' or a '#' (the old
 * one is kept then). An open stream is not restarted. */
int line_stream_set_query(struct line_stream *ls, const char *query);
/* Drops the stream, stops retrying, wipes the token. No callback afterwards. */
void line_stream_stop(struct line_stream *ls);
/* Stops and closes the timers (asynchronously: run the loop afterwards). */
void line_stream_close(struct line_stream *ls);
/* A Retry-After value in seconds, capped at LINE_STREAM_RETRY_AFTER_MAX; 0 when it is
 * absent or not delta-seconds. */
unsigned line_stream_retry_after(const char *value);
/* The next retry delay (ms) from the current backoff, with jitter; doubles the backoff. */
uint64_t line_stream_next_delay(struct line_stream *ls);

#endif
