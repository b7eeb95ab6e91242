/* test_line_stream.c - lib/line_stream.c against an HTTPS server on loopback in the same
 * loop: line assembly across chunks, the line bound, 401/403 not retried, errors and
 * drops retried with growing backoff, the idle watchdog (a silent stream, a handshake
 * that hangs), no callback after a stop, a list of instances (the next one at once), a
 * name resolved off the loop, the caller's query and z frames unpacked (lib/zlines.c);
 * Retry-After honoured on 503 / 429, and a fleet that lost its server at once coming back
 * spread over a window. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "meshvpn/backoff.h"
#include "meshvpn/http.h"
#include "meshvpn/line_stream.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "meshvpn/zlines.h"
#include "support.h"

#define DEADLINE_MS 10000
#define MAX_SEEN 64
#define PATH "/v1/test/stream"
#define TOKEN "tok-1"
#define MAX_LINE 16
#define BACKOFF_MIN 40
#define BACKOFF_MAX 160

enum mode { MODE_STREAM, MODE_END, MODE_STATUS, MODE_RETRY_AFTER };

struct seen_event {
	enum line_stream_event ev;
	int detail;
};

struct env {
	uv_loop_t loop;
	char dir[64], cert[128], key[128], pin[TLS_PIN_LEN], url[64];
	struct tls_config *tls;
	uv_tcp_t listener;
	struct http_server *srv;
	/* server */
	enum mode mode;
	int status;                     /* MODE_STATUS, MODE_RETRY_AFTER */
	const char *retry_after;        /* MODE_RETRY_AFTER: the header's value */
	struct http_stream *streams[MAX_SEEN];   /* every one opened, NULL once closed */
	int requests;
	uint64_t request_ms[MAX_SEEN];
	char auth[64], accept[64], path[64];
	struct http_stream *stream;     /* the latest, NULL once closed */
	/* client */
	struct line_stream ls;
	int have_ls;
	uint64_t idle_ms;               /* the watchdog's, for the next client_start */
	int compress;                   /* for the next client_init */
	char *lines[MAX_SEEN];
	int n_lines;
	struct seen_event events[MAX_SEEN];
	int n_events;
	int stop_on_line;               /* on_line stops the stream */
};

static struct env E;

static void on_stream_close(struct http_stream *s, void *arg)
{
	if (s == E.stream)
		E.stream = NULL;
	for (int i = 0; i < MAX_SEEN; i++)
		if (E.streams[i] == s)
			E.streams[i] = NULL;
}

static void copy_header(char *out, size_t size, const struct http_request *req, const char *name)
{
	const char *v = http_request_header(req, name);

	snprintf(out, size, "%s", v ? v : "");
}

static void handler(struct http_request *req, void *arg)
{
	char hdr[64];

	if (E.requests < MAX_SEEN)
		E.request_ms[E.requests] = uv_now(&E.loop);
	E.requests++;
	copy_header(E.auth, sizeof(E.auth), req, "Authorization");
	copy_header(E.accept, sizeof(E.accept), req, "Accept");
	snprintf(E.path, sizeof(E.path), "%s", req->path);
	switch (E.mode) {
	case MODE_STREAM:
	case MODE_END:
		assert_int_equal(http_stream_start(req, 200, "application/x-ndjson", on_stream_close,
						   NULL, &E.stream), 0);
		if (E.mode == MODE_END) {
			http_stream_end(E.stream);
			E.stream = NULL;
		} else if (E.requests <= MAX_SEEN) {
			E.streams[E.requests - 1] = E.stream;
		}
		break;
	case MODE_RETRY_AFTER:
		snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", E.retry_after);
		assert_int_equal(http_respond(req, E.status, "application/json", hdr, "{}", 2), 0);
		break;
	case MODE_STATUS:
		assert_int_equal(http_respond_error(req, E.status, "no"), 0);
		break;
	}
}

static void on_connection(uv_stream_t *l, int status)
{
	struct conn *c;

	assert_int_equal(status, 0);
	assert_int_equal(tls_accept(E.tls, l, &c), 0);
	http_server_add_conn(E.srv, c);
}

static void on_line(struct line_stream *ls, const char *line, size_t len, void *arg)
{
	assert_ptr_equal(ls, &E.ls);
	assert_ptr_equal(arg, &E);
	assert_int_equal(strlen(line), len);
	assert_true(E.n_lines < MAX_SEEN);
	E.lines[E.n_lines++] = strdup(line);
	if (E.stop_on_line)
		line_stream_stop(ls);
}

static void on_event(struct line_stream *ls, enum line_stream_event ev, int detail, void *arg)
{
	assert_ptr_equal(ls, &E.ls);
	assert_true(E.n_events < MAX_SEEN);
	E.events[E.n_events].ev = ev;
	E.events[E.n_events].detail = detail;
	E.n_events++;
}

static struct line_stream_opts client_opts(void)
{
	struct line_stream_opts o = {
		.path = PATH, .what = "test", .peer = "server", .max_line = MAX_LINE,
		.idle_timeout_ms = E.idle_ms, .backoff_min_ms = BACKOFF_MIN,
		.backoff_max_ms = BACKOFF_MAX, .on_line = on_line, .on_event = on_event, .arg = &E,
		.compress = E.compress,
	};

	if (E.compress)
		o.max_line = ZLINES_HEADER_MAX;   /* a header must fit */
	return o;
}

static void client_init(void)
{
	struct line_stream_opts o = client_opts();

	if (E.have_ls)
		return;
	assert_int_equal(line_stream_init(&E.ls, &E.loop, &o), 0);
	E.have_ls = 1;
}

static void client_start(void)
{
	client_init();
	assert_int_equal(line_stream_start(&E.ls, E.url, E.pin, TOKEN), 0);
}

static int setup(void **state)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&E, 0, sizeof(E));
	assert_int_equal(uv_loop_init(&E.loop), 0);
	snprintf(E.dir, sizeof(E.dir), "/tmp/test_line_stream.XXXXXX");
	assert_non_null(mkdtemp(E.dir));
	snprintf(E.cert, sizeof(E.cert), "%s/cert.pem", E.dir);
	snprintf(E.key, sizeof(E.key), "%s/key.pem", E.dir);
	assert_int_equal(tls_selfsigned_create(E.cert, E.key, "localhost"), 0);
	assert_int_equal(tls_cert_pin(E.cert, E.pin), 0);
	assert_int_equal(tls_config_server_new(E.cert, E.key, &E.tls), 0);
	assert_int_equal(http_server_new(&E.loop, NULL, handler, &E, &E.srv), 0);
	assert_int_equal(conn_listen_tcp(&E.loop, "127.0.0.1:0", &E.listener, on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&E.listener, (struct sockaddr *)&ss, &len), 0);
	snprintf(E.url, sizeof(E.url), "https://127.0.0.1:%u",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	E.idle_ms = 5000;
	return 0;
}

static int teardown(void **state)
{
	if (E.have_ls)
		line_stream_close(&E.ls);
	http_server_free(E.srv);
	uv_close((uv_handle_t *)&E.listener, NULL);
	tls_config_free(E.tls);
	loop_finish(&E.loop);
	for (int i = 0; i < E.n_lines; i++)
		free(E.lines[i]);
	unlink(E.cert);
	unlink(E.key);
	rmdir(E.dir);
	return 0;
}

#define WAIT_FOR(cond) SUPPORT_WAIT_FOR(&E.loop, cond, DEADLINE_MS)

static void run_for(uint64_t ms)
{
	support_run_for(&E.loop, ms);
}

static void server_write(const char *s)
{
	assert_non_null(E.stream);
	assert_int_equal(http_stream_write(E.stream, s, strlen(s)), 0);
	run_for(15);   /* each write reaches the client on its own */
}

static void assert_event(int i, enum line_stream_event ev, int detail)
{
	assert_true(i < E.n_events);
	assert_int_equal(E.events[i].ev, ev);
	assert_int_equal(E.events[i].detail, detail);
}

static void test_line_stream_lines_across_chunks(void **state)
{
	client_start();
	WAIT_FOR(E.stream && E.n_events == 1);
	assert_event(0, LINE_STREAM_CONNECTED, 200);
	assert_int_equal(E.requests, 1);
	assert_string_equal(E.path, PATH);
	assert_string_equal(E.auth, "Bearer " TOKEN);
	assert_string_equal(E.accept, "application/x-ndjson");
	server_write("a");
	server_write("bc\nde");
	server_write("f\n\n\ng");
	server_write("\nh");
	WAIT_FOR(E.n_lines == 3);
	assert_string_equal(E.lines[0], "abc");
	assert_string_equal(E.lines[1], "def");   /* empty lines skipped */
	assert_string_equal(E.lines[2], "g");
	/* Exactly the bound is taken; "h" is still waiting for its newline. */
	server_write("0123456789abcde\n");
	WAIT_FOR(E.n_lines == 4);
	assert_string_equal(E.lines[3], "h0123456789abcde");
	assert_int_equal(E.n_events, 1);
}

static void test_line_stream_line_too_long(void **state)
{
	client_start();
	WAIT_FOR(E.stream && E.n_events == 1);
	/* Past the bound before its newline: dropped, then reconnected. */
	server_write("0123456789");
	server_write("abcdefg");
	WAIT_FOR(E.n_events >= 2);
	assert_event(1, LINE_STREAM_LOST, -EMSGSIZE);
	assert_int_equal(E.n_lines, 0);
	WAIT_FOR(E.requests == 2 && E.stream && E.n_events == 3);
	assert_event(2, LINE_STREAM_CONNECTED, 200);
	/* The new stream starts with an empty line buffer. */
	server_write("ok\n");
	WAIT_FOR(E.n_lines == 1);
	assert_string_equal(E.lines[0], "ok");
}

static void refused_not_retried(int status)
{
	E.mode = MODE_STATUS;
	E.status = status;
	client_start();
	WAIT_FOR(E.n_events == 1);
	assert_event(0, LINE_STREAM_REFUSED, status);
	assert_false(E.ls.active);
	run_for(BACKOFF_MAX * 3);
	assert_int_equal(E.requests, 1);
	assert_int_equal(E.n_events, 1);
}

static void test_line_stream_401_not_retried(void **state)
{
	refused_not_retried(401);
}

static void test_line_stream_403_not_retried(void **state)
{
	refused_not_retried(403);
}

/* The gaps between attempts follow the backoff (0.75 of it at least) as it doubles. */
static void assert_backoff_gaps(int attempts)
{
	uint64_t base = BACKOFF_MIN;

	for (int i = 1; i < attempts; i++) {
		assert_true(E.request_ms[i] - E.request_ms[i - 1] >= base * 3 / 4);
		base = base * 2 > BACKOFF_MAX ? BACKOFF_MAX : base * 2;
	}
}

static void test_line_stream_500_retried(void **state)
{
	E.mode = MODE_STATUS;
	E.status = 500;
	client_start();
	WAIT_FOR(E.requests == 4);
	for (int i = 0; i < 3; i++)
		assert_event(i, LINE_STREAM_REFUSED, 500);
	assert_true(E.ls.active);
	assert_backoff_gaps(4);
}

static void test_line_stream_drop_retried(void **state)
{
	int n;

	E.mode = MODE_END;
	client_start();
	WAIT_FOR(E.requests == 4);
	for (int i = 0; i < 3; i++) {
		assert_event(2 * i, LINE_STREAM_CONNECTED, 200);
		assert_event(2 * i + 1, LINE_STREAM_LOST, -ECONNRESET);
	}
	assert_backoff_gaps(4);
	assert_int_equal(E.ls.backoff_ms, BACKOFF_MAX);
	/* A whole line puts the backoff back to its start. */
	E.mode = MODE_STREAM;
	WAIT_FOR(E.stream);
	server_write("x\n");
	WAIT_FOR(E.n_lines == 1);
	assert_int_equal(E.ls.backoff_ms, BACKOFF_MIN);
	/* The server goes away mid-stream (no end chunk): lost, then back. */
	n = E.n_events;
	http_server_free(E.srv);
	assert_int_equal(http_server_new(&E.loop, NULL, handler, &E, &E.srv), 0);
	WAIT_FOR(E.n_events == n + 1);
	assert_int_equal(E.events[n].ev, LINE_STREAM_LOST);
	assert_true(E.events[n].detail < 0);
	WAIT_FOR(E.requests == 6 && E.n_events == n + 2);
	assert_event(n + 1, LINE_STREAM_CONNECTED, 200);
}

static void test_line_stream_handshake_hangs(void **state)
{
	uint16_t port;
	int fd = idle_listener(8, &port);

	/* The watchdog bounds a connect whose server never answers the handshake. */
	snprintf(E.url, sizeof(E.url), "https://127.0.0.1:%u", port);
	E.idle_ms = 200;
	client_start();
	WAIT_FOR(E.n_events == 1);
	assert_event(0, LINE_STREAM_LOST, -ETIMEDOUT);
	assert_true(E.ls.active);
	close(fd);
}

static void test_line_stream_idle_reconnects(void **state)
{
	uint64_t t0;

	E.idle_ms = 200;
	client_start();
	WAIT_FOR(E.stream && E.n_events == 1);
	t0 = uv_now(&E.loop);
	WAIT_FOR(E.n_events == 2);
	assert_event(1, LINE_STREAM_LOST, -ETIMEDOUT);
	assert_true(uv_now(&E.loop) - t0 >= 150);
	WAIT_FOR(E.requests == 2 && E.n_events == 3);
	assert_event(2, LINE_STREAM_CONNECTED, 200);
	/* Keepalive traffic holds it open. */
	for (int i = 0; i < 8; i++) {
		server_write("\n");
		run_for(50);
	}
	assert_int_equal(E.n_events, 3);
	assert_int_equal(E.requests, 2);
}

static void test_line_stream_stop_in_callback(void **state)
{
	E.stop_on_line = 1;
	client_start();
	WAIT_FOR(E.stream && E.n_events == 1);
	server_write("one\ntwo\nthr");
	WAIT_FOR(E.n_lines == 1);
	assert_string_equal(E.lines[0], "one");
	assert_false(E.ls.active);
	run_for(BACKOFF_MAX * 2);
	assert_int_equal(E.n_lines, 1);
	assert_int_equal(E.n_events, 1);
	assert_int_equal(E.requests, 1);
}

static void test_line_stream_stop_no_callback(void **state)
{
	/* Stopped while open: no LOST, no retry. */
	client_start();
	WAIT_FOR(E.stream && E.n_events == 1);
	line_stream_stop(&E.ls);
	run_for(BACKOFF_MAX * 2);
	assert_int_equal(E.n_events, 1);
	assert_int_equal(E.requests, 1);
	/* Stopped while connecting: nothing at all. */
	client_start();
	line_stream_stop(&E.ls);
	run_for(BACKOFF_MAX * 2);
	assert_int_equal(E.n_events, 1);
	assert_int_equal(E.requests, 1);
	/* Stopped while waiting to retry. */
	E.mode = MODE_STATUS;
	E.status = 503;
	client_start();
	WAIT_FOR(E.n_events == 2);
	assert_event(1, LINE_STREAM_REFUSED, 503);
	line_stream_stop(&E.ls);
	run_for(BACKOFF_MAX * 2);
	assert_int_equal(E.n_events, 2);
	assert_int_equal(E.requests, 2);
}

static void test_line_stream_wrong_pin(void **state)
{
	char other[TLS_PIN_LEN];

	client_init();
	snprintf(other, sizeof(other), "sha256:%064d", 0);
	assert_int_equal(line_stream_start(&E.ls, E.url, other, TOKEN), 0);
	WAIT_FOR(E.n_events == 1);
	assert_event(0, LINE_STREAM_LOST, -EPERM);
	assert_int_equal(E.requests, 0);
	assert_true(E.ls.active);
}

/* A list whose first instance refuses: the second is tried at once (the backoff is not
 * touched), and a whole line there makes it the one that works. */
static void test_line_stream_failover(void **state)
{
	char list[160];

	client_init();
	snprintf(list, sizeof(list), "https://127.0.0.1:1,%s", E.url);
	E.mode = MODE_STREAM;
	assert_int_equal(line_stream_start(&E.ls, list, E.pin, TOKEN), 0);
	WAIT_FOR(E.stream);
	assert_event(0, LINE_STREAM_LOST, -ECONNREFUSED);
	assert_event(1, LINE_STREAM_CONNECTED, 200);
	assert_int_equal(E.ls.urls.cur, 1);
	assert_int_equal(E.ls.backoff_ms, BACKOFF_MIN);
	server_write("x\n");
	WAIT_FOR(E.n_lines == 1);
	assert_int_equal(E.ls.urls.cand[0].failed, 0);   /* a new round */
	assert_int_equal(E.ls.urls.moves, 0);           /* the first success is no move */
}

/* A name is resolved off the loop and its addresses dialled (the pin, not the name,
 * verifies the server); the address in use is the one listening. */
static void test_line_stream_resolves_name(void **state)
{
	char url[96];

	client_init();
	snprintf(url, sizeof(url), "https://localhost:%s", strrchr(E.url, ':') + 1);
	E.mode = MODE_STREAM;
	assert_int_equal(line_stream_start(&E.ls, url, E.pin, TOKEN), 0);
	WAIT_FOR(E.stream);
	assert_string_equal(coord_urls_current(&E.ls.urls)->addr, "127.0.0.1");
	assert_string_equal(E.ls.url.host, "localhost");
	assert_int_equal(E.ls.backoff_ms, BACKOFF_MIN);
	/* A stop while a name resolves drops the answer; nothing is called afterwards. */
	line_stream_stop(&E.ls);
	assert_int_equal(line_stream_start(&E.ls, url, E.pin, TOKEN), 0);
	assert_non_null(E.ls.resolving);
	line_stream_stop(&E.ls);
	assert_null(E.ls.resolving);
	run_for(100);
	assert_false(E.ls.active);
}

static void test_line_stream_backoff(void **state)
{
	uint64_t base = BACKOFF_MIN, d;
	int differs = 0;

	client_init();
	for (int i = 0; i < 6; i++) {
		d = line_stream_next_delay(&E.ls);
		assert_true(d >= base * 3 / 4 && d <= base * 5 / 4);
		base = base * 2 > BACKOFF_MAX ? BACKOFF_MAX : base * 2;
	}
	assert_int_equal(E.ls.backoff_ms, BACKOFF_MAX);
	d = line_stream_next_delay(&E.ls);
	for (int i = 0; i < 20 && !differs; i++)
		differs = line_stream_next_delay(&E.ls) != d;
	assert_true(differs);
}

/* 503 (or 429) with Retry-After: S: the same instance again after S s plus 0..S/2, not
 * after the backoff, which stays as it was. */
static void retry_after(int status)
{
	uint64_t gap;

	E.mode = MODE_RETRY_AFTER;
	E.status = status;
	E.retry_after = "1";
	client_start();
	WAIT_FOR(E.requests == 2);
	assert_event(0, LINE_STREAM_REFUSED, status);
	gap = E.request_ms[1] - E.request_ms[0];
	assert_true(gap >= 1000);
	assert_true(gap <= 1500 + 200);   /* the jitter's bound, and a handshake */
	assert_int_equal(E.ls.backoff_ms, BACKOFF_MIN);
	assert_int_equal(E.ls.urls.cur, 0);
	/* Without a usable Retry-After: the backoff. */
	E.retry_after = "Wed, 21 Oct 2015 07:28:00 GMT";
	WAIT_FOR(E.requests == 4);
	assert_true(E.request_ms[3] - E.request_ms[2] < 1000);
}

static void test_line_stream_503_retry_after(void **state)
{
	retry_after(503);
}

static void test_line_stream_429_retry_after(void **state)
{
	retry_after(429);
}

static void test_line_stream_retry_after_parse(void **state)
{
	assert_int_equal(line_stream_retry_after("5"), 5);
	assert_int_equal(line_stream_retry_after(" 7 "), 7);
	assert_int_equal(line_stream_retry_after("300"), 300);
	assert_int_equal(line_stream_retry_after("301"), LINE_STREAM_RETRY_AFTER_MAX);
	assert_int_equal(line_stream_retry_after("99999999999999999999999"),
			 LINE_STREAM_RETRY_AFTER_MAX);
	assert_int_equal(line_stream_retry_after("0"), 0);
	assert_int_equal(line_stream_retry_after(NULL), 0);
	assert_int_equal(line_stream_retry_after(""), 0);
	assert_int_equal(line_stream_retry_after("1.5"), 0);
	assert_int_equal(line_stream_retry_after("-3"), 0);
	assert_int_equal(line_stream_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
}

/* -- a fleet that loses its server at once -- */

#define FLEET 16
#define SPREAD 900

static int fleet_lines;

static void fleet_line(struct line_stream *ls, const char *line, size_t len, void *arg)
{
	fleet_lines++;
}

/* Streams that worked and are lost together come back spread over the window (on top
 * of the backoff), not within the backoff's jitter of each other. */
static void test_line_stream_lost_spread(void **state)
{
	static struct line_stream fleet[FLEET];   /* its timers close after the test returns */
	struct line_stream_opts o = client_opts();
	uint64_t drop, first = UINT64_MAX, last = 0, t;
	int open;

	o.on_line = fleet_line;
	o.on_event = NULL;
	o.arg = NULL;
	o.spread_ms = SPREAD;
	fleet_lines = 0;
	for (int i = 0; i < FLEET; i++) {
		assert_int_equal(line_stream_init(&fleet[i], &E.loop, &o), 0);
		assert_int_equal(line_stream_start(&fleet[i], E.url, E.pin, TOKEN), 0);
	}
	WAIT_FOR(E.requests == FLEET);
	for (int i = 0; i < FLEET; i++) {
		assert_non_null(E.streams[i]);
		assert_int_equal(http_stream_write(E.streams[i], "x\n", 2), 0);
	}
	WAIT_FOR(fleet_lines == FLEET);
	drop = uv_now(&E.loop);
	http_server_free(E.srv);
	assert_int_equal(http_server_new(&E.loop, NULL, handler, &E, &E.srv), 0);
	WAIT_FOR(E.requests == 2 * FLEET);
	for (int i = FLEET; i < 2 * FLEET; i++) {
		t = E.request_ms[i] - drop;
		first = t < first ? t : first;
		last = t > last ? t : last;
	}
	assert_true(first >= BACKOFF_MIN * 3 / 4);
	assert_true(last <= BACKOFF_MIN * 5 / 4 + SPREAD + 300);
	/* 16 uniform draws over 900 ms all within 300 ms of each other: p < 1e-6. */
	assert_true(last - first >= SPREAD / 3);
	open = 0;
	for (int i = 0; i < FLEET; i++) {
		open += fleet[i].connected;
		line_stream_close(&fleet[i]);
	}
	assert_true(open > 0);
}

static void test_backoff_spread(void **state)
{
	uint64_t d, lo = UINT64_MAX, hi = 0, sum = 0;

	for (int i = 0; i < 2000; i++) {
		d = backoff_spread(2000);
		assert_true(d <= 2000);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		sum += d;
	}
	assert_true(lo < 100);
	assert_true(hi > 1900);
	assert_true(sum / 2000 > 900 && sum / 2000 < 1100);
	assert_int_equal(backoff_spread(0), 0);
}

static void test_line_stream_bad_args(void **state)
{
	struct line_stream ls;
	struct line_stream_opts o = client_opts();
	char long_token[LINE_STREAM_TOKEN_MAX + 1];

	o.path = "v1/map";
	assert_int_equal(line_stream_init(&ls, &E.loop, &o), -EINVAL);
	o = client_opts();
	o.backoff_min_ms = o.backoff_max_ms + 1;
	assert_int_equal(line_stream_init(&ls, &E.loop, &o), -EINVAL);
	o = client_opts();
	o.idle_timeout_ms = 0;
	assert_int_equal(line_stream_init(&ls, &E.loop, &o), -EINVAL);
	o = client_opts();
	o.compress = 1;
	o.max_line = ZLINES_HEADER_MAX - 1;
	assert_int_equal(line_stream_init(&ls, &E.loop, &o), -EINVAL);
	client_init();
	memset(long_token, 'a', sizeof(long_token) - 1);
	long_token[sizeof(long_token) - 1] = 0;
	assert_int_equal(line_stream_start(&E.ls, "http://127.0.0.1:1", NULL, TOKEN), -EINVAL);
	assert_int_equal(line_stream_start(&E.ls, E.url, "sha256:12", TOKEN), -EINVAL);
	assert_int_equal(line_stream_start(&E.ls, E.url, E.pin, long_token), -EINVAL);
	assert_false(E.ls.active);
	line_stream_close(&E.ls);
	E.have_ls = 0;
	assert_int_equal(line_stream_start(&E.ls, E.url, E.pin, TOKEN), -ESHUTDOWN);
}

/* z frames arrive among plain lines, in pieces, and come out as lines; the query goes on
 * every request; a frame that cannot be read drops the stream, which is retried. */
static void test_line_stream_compressed_query(void **state)
{
	char path[LINE_STREAM_QUERY_MAX + 64];
	uint8_t *z;
	size_t zl;

	E.compress = 1;
	client_init();
	assert_int_equal(line_stream_set_query(&E.ls, "since=5&epoch=00ab"), 0);
	client_start();
	WAIT_FOR(E.stream && E.n_events == 1);
	assert_string_equal(E.path, PATH "?since=5&epoch=00ab&" ZLINES_QUERY);
	assert_int_equal(zlines_pack("z1\n\nz2\n", 7, &z, &zl), 0);
	server_write("p1\n");
	for (size_t i = 0; i < zl; i += 5) {
		char piece[6] = { 0 };

		memcpy(piece, z + i, zl - i < 5 ? zl - i : 5);
		assert_non_null(E.stream);
		assert_int_equal(http_stream_write(E.stream, piece, zl - i < 5 ? zl - i : 5), 0);
		run_for(2);
	}
	free(z);
	server_write("p2\n");
	WAIT_FOR(E.n_lines == 4);
	assert_string_equal(E.lines[0], "p1");
	assert_string_equal(E.lines[1], "z1");
	assert_string_equal(E.lines[2], "z2");
	assert_string_equal(E.lines[3], "p2");
	/* Not a frame: dropped, and the next request asks the same. */
	server_write("{\"type\":\"z\",\"len\":4}\nabcd");
	WAIT_FOR(E.n_events >= 2);
	assert_event(1, LINE_STREAM_LOST, -EBADMSG);
	WAIT_FOR(E.requests == 2 && E.stream && E.n_events == 3);
	assert_string_equal(E.path, PATH "?since=5&epoch=00ab&" ZLINES_QUERY);
	/* Bad queries keep the old one; none leaves only the ask for compression. */
	memset(path, 'a', sizeof(path));
	path[LINE_STREAM_QUERY_MAX] = 0;
	assert_int_equal(line_stream_set_query(&E.ls, path), -E2BIG);
	assert_int_equal(line_stream_set_query(&E.ls, "a=b c"), -EINVAL);
	assert_int_equal(line_stream_set_query(&E.ls, "a=b#c"), -EINVAL);
	assert_int_equal(line_stream_set_query(&E.ls, "a=\r\n"), -EINVAL);
	assert_string_equal(E.ls.query, "since=5&epoch=00ab");
	assert_int_equal(line_stream_set_query(&E.ls, NULL), 0);
	client_start();
	WAIT_FOR(E.requests == 3 && E.stream);
	assert_string_equal(E.path, PATH "?" ZLINES_QUERY);
}

static int collect(const char *line, size_t len, void *arg)
{
	char *out = arg;

	strcat(out, line);
	strcat(out, "|");
	return !strcmp(line, "stop");
}

static void test_line_stream_buf(void **state)
{
	struct line_buf lb = { .max = 4 };
	char out[64] = "";

	assert_int_equal(line_buf_feed(&lb, (const uint8_t *)"ab", 2, collect, out), 0);
	assert_int_equal(line_buf_feed(&lb, (const uint8_t *)"cd\n\nx", 5, collect, out), 0);
	assert_string_equal(out, "abcd|");
	assert_int_equal(lb.len, 1);
	assert_int_equal(line_buf_feed(&lb, (const uint8_t *)"\nstop\nz\n", 8, collect, out), 1);
	assert_string_equal(out, "abcd|x|stop|");
	line_buf_reset(&lb);
	assert_int_equal(line_buf_feed(&lb, (const uint8_t *)"abc", 3, collect, out), 0);
	assert_int_equal(line_buf_feed(&lb, (const uint8_t *)"de\n", 3, collect, out), -EMSGSIZE);
	assert_int_equal(lb.need, 5);
	assert_string_equal(out, "abcd|x|stop|");
	line_buf_free(&lb);
	assert_null(lb.line);
	line_buf_free(&lb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_stream_buf),
		cmocka_unit_test_setup_teardown(test_line_stream_lines_across_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_line_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_401_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_403_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_500_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_drop_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_idle_reconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_handshake_hangs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_stop_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_stop_no_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_wrong_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_resolves_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_compressed_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_503_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_stream_429_retry_after, setup, teardown),
		cmocka_unit_test(test_line_stream_retry_after_parse),
		cmocka_unit_test_setup_teardown(test_line_stream_lost_spread, setup, teardown),
		cmocka_unit_test(test_backoff_spread),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
