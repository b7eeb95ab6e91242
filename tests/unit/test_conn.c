/* test_conn.c - conn.c on loopback: Unix/TCP echo, close inside callbacks, EPIPE, listeners, HOST:PORT parsing,
 * cancelled connects. */
#include <errno.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "meshvpn/conn.h"
#include "meshvpn/log.h"

#define DEADLINE_MS 10000

/* -- loop helpers: run until a condition holds, bounded by a deadline -- */

#include "support.h"

#define run_until(loop, flag) support_run_until(loop, flag, DEADLINE_MS)
#define run_drained(loop) support_run_drained(loop, DEADLINE_MS)

/* -- an echo server: what it reads it writes back -- */

#define MAX_PEERS 4

struct peer {
	struct conn *c;
	size_t received;
	int ended, end_status;
	int closed;
	int close_on_read;       /* close from inside on_read, after echoing */
	const uint8_t *reply;
	size_t reply_len;
};

struct server {
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	struct peer peers[MAX_PEERS];
	int accepted;
	int close_on_read;
	int close_on_accept;
	const uint8_t *reply;    /* written instead of the echo, when set */
	size_t reply_len;
};

static void peer_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct peer *p = arg;

	assert_false(p->closed);
	p->received += len;
	if (p->reply)
		assert_int_equal(conn_write(c, p->reply, p->reply_len), 0);
	else
		assert_int_equal(conn_write(c, buf, len), 0);
	if (p->close_on_read) {
		conn_close(c);
		p->closed = 1;
	}
}

static void peer_end(struct conn *c, int status, void *arg)
{
	struct peer *p = arg;

	assert_false(p->closed);
	p->ended = 1;
	p->end_status = status;
	conn_close(c);             /* from inside on_end */
	p->closed = 1;
}

static void on_connection(uv_stream_t *s, int status)
{
	struct server *srv = s->data;
	struct peer *p;
	struct conn *c;

	assert_int_equal(status, 0);
	assert_true(srv->accepted < MAX_PEERS);
	p = &srv->peers[srv->accepted++];
	assert_int_equal(conn_plain_accept(s, &c), 0);
	p->c = c;
	p->close_on_read = srv->close_on_read;
	p->reply = srv->reply;
	p->reply_len = srv->reply_len;
	conn_set_callbacks(c, peer_read, peer_end, p);
	if (srv->close_on_accept) {
		conn_close(c);
		p->closed = 1;
	}
}

static void server_close(struct server *srv)
{
	for (int i = 0; i < srv->accepted; i++)
		if (!srv->peers[i].closed) {
			conn_close(srv->peers[i].c);
			srv->peers[i].closed = 1;
		}
	uv_close((uv_handle_t *)&srv->h, NULL);
}

static uint16_t tcp_port(uv_tcp_t *tcp)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	assert_int_equal(uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* -- a client that collects what comes back -- */

struct client {
	struct conn *c;
	int connected, connect_status;
	uint8_t *buf;
	size_t size, received;
	int ended, end_status;
	int closed;
	int close_on_end;
	int got_all;
	int write_after_end;
};

static void client_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct client *cl = arg;

	assert_false(cl->closed);
	assert_true(cl->received + len <= cl->size);
	memcpy(cl->buf + cl->received, buf, len);
	cl->received += len;
	if (cl->received == cl->size)
		cl->got_all = 1;
}

static void client_end(struct conn *c, int status, void *arg)
{
	struct client *cl = arg;

	assert_false(cl->closed);
	assert_false(cl->ended);
	cl->ended = 1;
	cl->end_status = status;
	cl->write_after_end = conn_write(c, "x", 1);
	if (cl->close_on_end) {
		conn_close(c);
		cl->closed = 1;
	}
}

static void client_connected(struct conn *c, int status, void *arg)
{
	struct client *cl = arg;

	cl->connected = 1;
	cl->connect_status = status;
	cl->c = c;
	if (status == 0) {
		assert_non_null(c);
		conn_set_callbacks(c, client_read, client_end, cl);
	} else {
		assert_null(c);
	}
}

static void client_close(struct client *cl)
{
	if (cl->c && !cl->closed)
		conn_close(cl->c);
	cl->closed = 1;
	free(cl->buf);
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void echo_round_trip(uv_loop_t *loop, struct client *cl, size_t len)
{
	uint8_t *data = malloc(len);

	assert_non_null(data);
	fill(data, len, (uint32_t)len);
	cl->buf = calloc(1, len);
	cl->size = len;
	assert_int_equal(conn_write(cl->c, data, len), 0);
	run_until(loop, &cl->got_all);
	assert_memory_equal(cl->buf, data, len);
	free(data);
}

/* -- cases -- */

static void make_tmpdir(char *dir, size_t size)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, size, "%s/test_conn.XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(dir));
}

static void test_conn_unix_echo(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	char dir[256], path[300];
	struct stat st;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/admin.sock", dir);
	uv_loop_init(&loop);
	srv.h.pipe.data = &srv;
	assert_int_equal(conn_listen_unix(&loop, path, &srv.h.pipe, on_connection), 0);
	srv.h.pipe.data = &srv;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(conn_unix_connect(&loop, path, client_connected, &cl, NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	assert_string_equal(cl.c->peer, "unix");
	echo_round_trip(&loop, &cl, 100000);
	assert_int_equal(srv.peers[0].received, 100000);
	assert_string_equal(srv.peers[0].c->peer, "unix");

	/* The client leaves: the server sees the end and closes inside on_end. */
	client_close(&cl);
	run_until(&loop, &srv.peers[0].ended);
	assert_int_equal(srv.peers[0].end_status, UV_EOF);
	server_close(&srv);
	loop_finish(&loop);
	unlink(path);
	rmdir(dir);
}

static void test_conn_unix_connect_missing(void **state)
{
	uv_loop_t loop;
	struct client cl = { 0 };

	uv_loop_init(&loop);
	/* Errors come through the callback, never from a starter that returned 0 twice. */
	assert_int_equal(conn_unix_connect(&loop, "/nonexistent/meshvpn.sock", client_connected, &cl,
					   NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, UV_ENOENT);
	loop_finish(&loop);
}

static void test_conn_unix_listen_stale(void **state)
{
	uv_loop_t loop;
	uv_pipe_t a, b;
	char dir[256], path[300];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;
	FILE *f;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	uv_loop_init(&loop);

	/* A socket file nobody listens on (a crashed daemon's) is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(conn_listen_unix(&loop, path, &a, on_connection), 0);

	/* One somebody listens on is not. */
	assert_int_equal(conn_listen_unix(&loop, path, &b, on_connection), -EADDRINUSE);
	uv_close((uv_handle_t *)&a, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	unlink(path);

	/* Nor is a file that is not a socket. */
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(conn_listen_unix(&loop, path, &b, on_connection), -EEXIST);
	unlink(path);
	loop_finish(&loop);
	rmdir(dir);
}

static void test_conn_tcp_echo(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	char hostport[32];
	uint16_t port;

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	port = tcp_port(&srv.h.tcp);
	assert_int_not_equal(port, 0);

	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", port, client_connected, &cl, NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%u", port);
	assert_string_equal(cl.c->peer, hostport);
	echo_round_trip(&loop, &cl, 4 << 20);
	assert_int_equal(srv.peers[0].received, 4 << 20);
	assert_int_equal(strncmp(srv.peers[0].c->peer, "127.0.0.1:", 10), 0);
	assert_int_equal(conn_pending(cl.c), 0);

	client_close(&cl);
	run_until(&loop, &srv.peers[0].ended);
	server_close(&srv);
	loop_finish(&loop);
}

static void test_conn_tcp_connect_by_name(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	/* "localhost" goes through the resolver; if it also yields ::1 (nobody listens
	 * there) the next address is tried. */
	assert_int_equal(conn_tcp_connect(&loop, "localhost", tcp_port(&srv.h.tcp), client_connected, &cl,
					  NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	echo_round_trip(&loop, &cl, 1000);
	client_close(&cl);
	server_close(&srv);
	loop_finish(&loop);
}

static void test_conn_tcp_ipv6(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	uv_tcp_t probe;
	struct sockaddr_in6 a;
	int r;

	uv_loop_init(&loop);
	uv_tcp_init(&loop, &probe);
	uv_ip6_addr("::1", 0, &a);
	r = uv_tcp_bind(&probe, (struct sockaddr *)&a, 0);
	uv_close((uv_handle_t *)&probe, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	if (r < 0) {
		loop_finish(&loop);
		skip();               /* no IPv6 on this host */
	}
	assert_int_equal(conn_listen_tcp(&loop, "[::1]:0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	assert_int_equal(conn_tcp_connect(&loop, "::1", tcp_port(&srv.h.tcp), client_connected, &cl, NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	assert_int_equal(strncmp(cl.c->peer, "[::1]:", 6), 0);
	echo_round_trip(&loop, &cl, 1000);
	client_close(&cl);
	server_close(&srv);
	loop_finish(&loop);
}

/* ":PORT" listens on every address, IPv4 included. */
static void test_conn_tcp_listen_all(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, ":0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", tcp_port(&srv.h.tcp), client_connected, &cl,
					  NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	echo_round_trip(&loop, &cl, 1000);
	client_close(&cl);
	server_close(&srv);
	loop_finish(&loop);
}

static void test_conn_tcp_refused(void **state)
{
	uv_loop_t loop;
	uv_tcp_t tmp;
	struct client cl = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	/* A port that was just free: bind, learn it, close. */
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &tmp, on_connection), 0);
	port = tcp_port(&tmp);
	uv_close((uv_handle_t *)&tmp, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);

	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", port, client_connected, &cl, NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, UV_ECONNREFUSED);
	assert_int_equal(conn_tcp_connect(&loop, "", port, client_connected, &cl, NULL), -EINVAL);
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", 0, client_connected, &cl, NULL), -EINVAL);
	loop_finish(&loop);
}

static void test_conn_listen_bad(void **state)
{
	uv_loop_t loop;
	uv_tcp_t a, b;

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1", &a, on_connection), -EINVAL);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &a, on_connection), 0);
	{
		char hp[32];
		snprintf(hp, sizeof(hp), "127.0.0.1:%u", tcp_port(&a));
		assert_int_equal(conn_listen_tcp(&loop, hp, &b, on_connection), UV_EADDRINUSE);
	}
	uv_close((uv_handle_t *)&a, NULL);
	loop_finish(&loop);
}

/* The server answers with 4 MiB and closes inside on_read: the answer still arrives in
 * full (queued bytes are flushed before the shutdown), then the client sees the end and
 * closes inside on_end; no callback reaches a closed conn (the callbacks assert it). */
static void test_conn_close_in_callback(void **state)
{
	uv_loop_t loop;
	struct server srv = { .close_on_read = 1 };
	struct client cl = { .close_on_end = 1 };
	size_t len = 4 << 20;
	uint8_t *reply = malloc(len);

	fill(reply, len, 9);
	srv.reply = reply;
	srv.reply_len = len;
	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", tcp_port(&srv.h.tcp), client_connected, &cl,
					  NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);

	cl.buf = calloc(1, len);
	cl.size = len;
	assert_int_equal(conn_write(cl.c, "bye", 3), 0);
	run_until(&loop, &cl.ended);
	assert_true(srv.peers[0].closed);
	assert_int_equal(cl.received, len);
	assert_memory_equal(cl.buf, reply, len);
	assert_int_equal(cl.end_status, UV_EOF);
	assert_int_equal(cl.write_after_end, -EPIPE);
	assert_true(cl.closed);
	client_close(&cl);
	server_close(&srv);
	loop_finish(&loop);
	free(reply);
}

static void test_conn_write_after_peer_gone(void **state)
{
	uv_loop_t loop;
	struct server srv = { .close_on_accept = 1 };
	struct client cl = { 0 };

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", tcp_port(&srv.h.tcp), client_connected, &cl,
					  NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	run_until(&loop, &cl.ended);
	assert_int_equal(cl.end_status, UV_EOF);
	assert_int_equal(conn_write(cl.c, "x", 1), -EPIPE);
	client_close(&cl);
	server_close(&srv);
	loop_finish(&loop);
}

/* Back-pressure: the reader pauses, the writer's pending count grows, and resuming
 * delivers everything. */
static int paused_reads;

static void count_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct client *cl = arg;

	client_read(c, buf, len, arg);
	if (cl->received >= 65536 && !paused_reads) {
		paused_reads = 1;
		conn_read_stop(c);
	}
}

static void test_conn_flow_control(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	size_t len = 16 << 20;
	uint8_t *data = malloc(len);
	uv_timer_t wait;

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &srv.h.tcp, on_connection), 0);
	srv.h.tcp.data = &srv;
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", tcp_port(&srv.h.tcp), client_connected, &cl,
					  NULL), 0);
	run_until(&loop, &cl.connected);
	conn_set_callbacks(cl.c, count_read, client_end, &cl);
	fill(data, len, 3);
	cl.buf = calloc(1, len);
	cl.size = len;
	paused_reads = 0;
	assert_int_equal(conn_write(cl.c, data, len), 0);
	run_until(&loop, &paused_reads);
	/* Let the loop run a while with reading paused: the server's echo backs up. */
	uv_timer_init(&loop, &wait);
	uv_timer_start(&wait, deadline_cb, 200, 0);
	while (!deadline_hit)
		uv_run(&loop, UV_RUN_ONCE);
	deadline_hit = 0;
	uv_close((uv_handle_t *)&wait, NULL);
	assert_true(conn_pending(srv.peers[0].c) > 0);
	assert_true(cl.received < len);
	conn_read_start(cl.c);
	run_until(&loop, &cl.got_all);
	assert_memory_equal(cl.buf, data, len);
	free(data);
	client_close(&cl);
	server_close(&srv);
	loop_finish(&loop);
}

/* -- cancelling a connect -- */

/* Each kind cancelled before the loop ever ran: no callback, nothing left behind (the
 * listeners close at once, so nobody accepts what the kernel may have connected). */
static void test_conn_connect_cancel_at_once(void **state)
{
	uv_loop_t loop;
	uv_pipe_t upipe;
	uv_tcp_t tcp;
	struct client cl = { 0 };
	struct conn_connect *cc = NULL;
	char dir[256], path[300], missing[320];
	uint16_t port;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c.sock", dir);
	snprintf(missing, sizeof(missing), "%s/missing.sock", dir);
	uv_loop_init(&loop);
	assert_int_equal(conn_listen_unix(&loop, path, &upipe, on_connection), 0);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &tcp, on_connection), 0);
	port = tcp_port(&tcp);

	assert_int_equal(conn_unix_connect(&loop, path, client_connected, &cl, &cc), 0);
	assert_non_null(cc);
	conn_connect_cancel(cc);
	/* An error that would have come through the callback. */
	assert_int_equal(conn_unix_connect(&loop, missing, client_connected, &cl, &cc), 0);
	conn_connect_cancel(cc);
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", port, client_connected, &cl, &cc), 0);
	conn_connect_cancel(cc);
	/* By name: cancelled while the resolver has it. */
	assert_int_equal(conn_tcp_connect(&loop, "localhost", port, client_connected, &cl, &cc), 0);
	conn_connect_cancel(cc);
	conn_connect_cancel(NULL);
	/* The starters check their callback. */
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", port, NULL, &cl, &cc), -EINVAL);
	assert_int_equal(conn_unix_connect(&loop, path, NULL, &cl, &cc), -EINVAL);

	uv_close((uv_handle_t *)&upipe, NULL);
	uv_close((uv_handle_t *)&tcp, NULL);
	run_drained(&loop);
	assert_false(cl.connected);
	unlink(path);
	rmdir(dir);
}

struct hang {
	struct client *cl;
	struct conn_connect *cc;
	int cancelled;
};

static void cancel_cb(uv_timer_t *t)
{
	struct hang *h = t->data;

	/* Only before the callback: the connect cannot complete, the assert below shows it. */
	if (!h->cl->connected) {
		conn_connect_cancel(h->cc);
		h->cancelled = 1;
	}
	uv_close((uv_handle_t *)t, NULL);
}

/* A connect that hangs (its SYN dropped), cancelled while the loop runs: no callback,
 * and the loop is free at once instead of after the 10 s connect timeout. */
static void test_conn_tcp_connect_cancel_hanging(void **state)
{
	uv_loop_t loop;
	uv_timer_t t;
	struct client cl = { 0 };
	struct hang h = { .cl = &cl };
	int fillers[FILLERS], n, lfd;
	uint16_t port;
	uint64_t t0, ms;

	lfd = idle_listener(1, &port);
	n = fill_accept_queue(lfd, port, fillers);
	if (!n) {
		close(lfd);
		print_message("    skipped: the accept queue of a loopback listener could not be "
			      "filled (a connect to it would not hang)\n");
		skip();
	}
	uv_loop_init(&loop);
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", port, client_connected, &cl, &h.cc), 0);
	uv_timer_init(&loop, &t);
	t.data = &h;
	uv_timer_start(&t, cancel_cb, 100, 0);
	t0 = uv_hrtime();
	run_drained(&loop);
	ms = (uv_hrtime() - t0) / 1000000;
	assert_true(h.cancelled);
	assert_false(cl.connected);
	assert_true(ms < 2000);
	for (int i = 0; i < n; i++)
		close(fillers[i]);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_unix_echo),
		cmocka_unit_test(test_conn_unix_connect_missing),
		cmocka_unit_test(test_conn_unix_listen_stale),
		cmocka_unit_test(test_conn_tcp_echo),
		cmocka_unit_test(test_conn_tcp_connect_by_name),
		cmocka_unit_test(test_conn_tcp_ipv6),
		cmocka_unit_test(test_conn_tcp_listen_all),
		cmocka_unit_test(test_conn_tcp_refused),
		cmocka_unit_test(test_conn_listen_bad),
		cmocka_unit_test(test_conn_close_in_callback),
		cmocka_unit_test(test_conn_write_after_peer_gone),
		cmocka_unit_test(test_conn_flow_control),
		cmocka_unit_test(test_conn_connect_cancel_at_once),
		cmocka_unit_test(test_conn_tcp_connect_cancel_hanging),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
