/* test_tls.c - tls.c, tls_config.c, tls_session.c and tls_cert.c on loopback: echo, 1 MiB writes, pins, CA checks, garbage, flow control,
 * session resumption (RFC 5077 tickets), cancelled connects. */
#include <dirent.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "meshvpn/log.h"
#include "meshvpn/tls.h"

#define DEADLINE_MS 15000

static char dir[256], cert[300], key[300], other_cert[300], other_key[300];
static char pin[TLS_PIN_LEN], other_pin[TLS_PIN_LEN];

/* -- loop helpers -- */

#include "support.h"

#define run_until(loop, flag) support_run_until(loop, flag, DEADLINE_MS)
#define run_drained(loop) support_run_drained(loop, DEADLINE_MS)

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* -- a TLS echo server -- */

#define MAX_PEERS 24

struct peer {
	struct conn *c;
	size_t received;
	int ended, end_status;
	int resumed;                /* tls_conn_resumed() when it ended */
	int closed;
	int close_on_read;
	int echo_twice;
};

struct server {
	uv_tcp_t tcp;
	struct tls_config *cfg;
	struct peer peers[MAX_PEERS];
	int accepted;
	int ended;                  /* how many peers ended */
	int close_on_read;
	int echo_twice;             /* two records per read: tests buffering on pause */
	const char *greeting;       /* written at accept, before the handshake */
};

static void peer_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct peer *p = arg;

	assert_false(p->closed);
	p->received += len;
	assert_int_equal(conn_write(c, buf, len), 0);
	if (p->echo_twice)
		assert_int_equal(conn_write(c, buf, len), 0);
	if (p->close_on_read) {
		conn_close(c);
		p->closed = 1;
	}
}

static struct server *server_of_peer;

static void peer_end(struct conn *c, int status, void *arg)
{
	struct peer *p = arg;

	assert_false(p->closed);
	assert_false(p->ended);
	p->ended = 1;
	p->end_status = status;
	p->resumed = tls_conn_resumed(c);
	conn_close(c);
	p->closed = 1;
	server_of_peer->ended++;
}

static void on_connection(uv_stream_t *s, int status)
{
	struct server *srv = s->data;
	struct peer *p;
	struct conn *c;

	assert_int_equal(status, 0);
	assert_true(srv->accepted < MAX_PEERS);
	p = &srv->peers[srv->accepted++];
	assert_int_equal(tls_accept(srv->cfg, s, &c), 0);
	assert_int_equal(tls_conn_resumed(c), -EAGAIN);
	p->c = c;
	p->close_on_read = srv->close_on_read;
	p->echo_twice = srv->echo_twice;
	conn_set_callbacks(c, peer_read, peer_end, p);
	/* The server may speak first: held until the handshake is done. */
	if (srv->greeting)
		assert_int_equal(conn_write(c, srv->greeting, strlen(srv->greeting)), 0);
}

static uint16_t server_start(uv_loop_t *loop, struct server *srv)
{
	struct sockaddr_in a;
	int len = sizeof(a);

	assert_int_equal(tls_config_server_new(cert, key, &srv->cfg), 0);
	assert_int_equal(conn_listen_tcp(loop, "127.0.0.1:0", &srv->tcp, on_connection), 0);
	srv->tcp.data = srv;
	server_of_peer = srv;
	assert_int_equal(uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static void server_stop(struct server *srv)
{
	for (int i = 0; i < srv->accepted; i++)
		if (!srv->peers[i].closed) {
			conn_close(srv->peers[i].c);
			srv->peers[i].closed = 1;
		}
	uv_close((uv_handle_t *)&srv->tcp, NULL);
	/* Connections hold a reference: freeing the config first must be safe. */
	tls_config_free(srv->cfg);
}

/* -- a client -- */

struct client {
	struct conn *c;
	int connected, connect_status;
	uint8_t *buf;
	size_t size, received;
	int got_all;
	int ended, end_status;
	int closed;
	int close_on_end;
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

	assert_false(cl->connected);
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
	cl->buf = NULL;
}

static void connect_with(uv_loop_t *loop, const char *ca, const char *p, const char *host,
			 uint16_t port, struct client *cl)
{
	struct tls_config *cfg;

	assert_int_equal(tls_config_client_new(ca, p, &cfg), 0);
	assert_int_equal(tls_connect(loop, cfg, host, port, client_connected, cl, NULL), 0);
	/* The connection keeps what it needs of the config. */
	tls_config_free(cfg);
	run_until(loop, &cl->connected);
}

static void echo_round_trip(uv_loop_t *loop, struct client *cl, size_t len, uint32_t seed)
{
	uint8_t *data = malloc(len);

	assert_non_null(data);
	fill(data, len, seed);
	cl->buf = calloc(1, len);
	cl->size = len;
	cl->received = 0;
	cl->got_all = 0;
	assert_int_equal(conn_write(cl->c, data, len), 0);
	run_until(loop, &cl->got_all);
	assert_memory_equal(cl->buf, data, len);
	free(data);
	free(cl->buf);
	cl->buf = NULL;
}

/* -- cases -- */

static void test_tls_pin_parse(void **state)
{
	uint8_t out[32], zero[32] = { 0 };
	char p[100];

	snprintf(p, sizeof(p), "sha256:%s", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	assert_int_equal(tls_pin_parse(p, out), 0);
	for (int i = 0; i < 32; i++)
		assert_int_equal(out[i], i);
	assert_int_equal(tls_pin_parse("sha256:000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1EFF", out), 0);
	assert_int_equal(out[31], 0xff);

	memset(out, 0, sizeof(out));
	assert_int_equal(tls_pin_parse(NULL, out), -EINVAL);
	assert_int_equal(tls_pin_parse("", out), -EINVAL);
	assert_int_equal(tls_pin_parse("sha256:", out), -EINVAL);
	/* 63 and 65 digits */
	assert_int_equal(tls_pin_parse("sha256:00010203040506070809a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", out), -EINVAL);
	assert_int_equal(tls_pin_parse("sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0", out), -EINVAL);
	assert_int_equal(tls_pin_parse("sha1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00", out), -EINVAL);
	assert_int_equal(tls_pin_parse("SHA256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", out), -EINVAL);
	assert_int_equal(tls_pin_parse("sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", out), -EINVAL);
	assert_int_equal(tls_pin_parse(" sha256:00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", out), -EINVAL);
	assert_int_equal(tls_pin_parse("sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1 ", out), -EINVAL);
	/* a failed parse leaves out alone */
	assert_memory_equal(out, zero, sizeof(out));
}

static void test_tls_selfsigned_files(void **state)
{
	struct tls_config *cfg;
	struct stat st;
	char again[TLS_PIN_LEN], bad_key[400], junk[400];
	FILE *f;

	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(cert, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* "sha256:" + 64 lowercase hex digits, stable, different per key */
	assert_int_equal(strlen(pin), TLS_PIN_LEN - 1);
	assert_int_equal(strncmp(pin, "sha256:", 7), 0);
	for (const char *p = pin + 7; *p; p++)
		assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
	assert_int_equal(tls_cert_pin(cert, again), 0);
	assert_string_equal(pin, again);
	assert_string_not_equal(pin, other_pin);
	{
		uint8_t raw[32];
		assert_int_equal(tls_pin_parse(pin, raw), 0);
	}

	/* The pair loads; a key that does not match the certificate does not. */
	assert_int_equal(tls_config_server_new(cert, key, &cfg), 0);
	tls_config_free(cfg);
	assert_int_equal(tls_config_server_new(cert, other_key, &cfg), -EINVAL);
	assert_int_equal(tls_config_server_new("/nonexistent/cert.pem", key, &cfg), -ENOENT);
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	f = fopen(junk, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	assert_int_equal(tls_config_server_new(junk, key, &cfg), -EINVAL);
	assert_int_equal(tls_cert_pin(junk, again), -EINVAL);
	assert_int_equal(tls_cert_pin("/nonexistent/cert.pem", again), -ENOENT);
	assert_int_equal(tls_config_client_new(junk, NULL, &cfg), -EINVAL);
	assert_int_equal(tls_config_client_new(NULL, "sha256:xyz", &cfg), -EINVAL);
	unlink(junk);

	/* A common name that would inject into the subject is refused. */
	snprintf(bad_key, sizeof(bad_key), "%s/bad.key", dir);
	assert_int_equal(tls_selfsigned_create(junk, bad_key, "a,O=evil"), -EINVAL);
	assert_int_equal(access(bad_key, F_OK), -1);
	/* No temporary files are left behind: the directory holds the two pairs. */
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int n = 0;
		assert_non_null(d);
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		assert_int_equal(n, 4);
	}
}

static void test_tls_echo_large(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_with(&loop, NULL, pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	echo_round_trip(&loop, &cl, 100, 1);
	/* One 1 MiB write: mbedtls splits it into 16 KiB records. */
	echo_round_trip(&loop, &cl, 1 << 20, 2);
	assert_int_equal(srv.peers[0].received, 100 + (1 << 20));
	/* The server's side ends cleanly when the client closes (close_notify). */
	client_close(&cl);
	run_until(&loop, &srv.peers[0].ended);
	assert_int_equal(srv.peers[0].end_status, UV_EOF);
	server_stop(&srv);
	loop_finish(&loop);
}

static void test_tls_pin_wrong(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_with(&loop, NULL, other_pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, -EPERM);
	assert_null(cl.c);
	/* The server's handshake may finish; either way its conn ends. */
	run_until(&loop, &srv.peers[0].ended);
	server_stop(&srv);
	loop_finish(&loop);
}

static void test_tls_ca_untrusted(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 }, cl2 = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	/* A CA file that does not hold the server's certificate. */
	connect_with(&loop, other_cert, NULL, "localhost", port, &cl);
	assert_int_equal(cl.connect_status, -EPERM);
	assert_null(cl.c);
	/* The system bundle does not trust a self-signed certificate either. */
	if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
		connect_with(&loop, NULL, NULL, "localhost", port, &cl2);
		assert_int_equal(cl2.connect_status, -EPERM);
	}
	server_stop(&srv);
	loop_finish(&loop);
}

static void test_tls_ca_trusted(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 }, cl2 = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	/* The certificate as its own trust anchor, name matched against the SAN. */
	connect_with(&loop, cert, NULL, "localhost", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	echo_round_trip(&loop, &cl, 5000, 3);
	/* The right chain but the wrong name fails. */
	connect_with(&loop, cert, NULL, "127.0.0.1", port, &cl2);
	assert_int_equal(cl2.connect_status, -EPERM);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

/* tls_connect_name: TCP to an address, the certificate checked for another name (a DNS
 * over TLS upstream). A session kept for one name is not offered for another. */
static void test_tls_connect_name(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 }, cl2 = { 0 }, cl3 = { 0 };
	struct tls_config *cfg;
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(tls_config_client_new(cert, NULL, &cfg), 0);
	assert_int_equal(tls_connect_name(&loop, cfg, "127.0.0.1", port, NULL, client_connected,
					  &cl, NULL), -EINVAL);
	assert_int_equal(tls_connect_name(&loop, cfg, "127.0.0.1", port, "localhost",
					  client_connected, &cl, NULL), 0);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	assert_int_equal(strncmp(cl.c->peer, "127.0.0.1:", 10), 0);
	echo_round_trip(&loop, &cl, 1000, 5);
	client_close(&cl);
	/* The address answers, the name does not match: refused, resumption or not. */
	assert_int_equal(tls_connect_name(&loop, cfg, "127.0.0.1", port, "wrong.test",
					  client_connected, &cl2, NULL), 0);
	run_until(&loop, &cl2.connected);
	assert_int_equal(cl2.connect_status, -EPERM);
	/* The right name again: still fine. */
	assert_int_equal(tls_connect_name(&loop, cfg, "127.0.0.1", port, "localhost",
					  client_connected, &cl3, NULL), 0);
	run_until(&loop, &cl3.connected);
	assert_int_equal(cl3.connect_status, 0);
	client_close(&cl3);
	tls_config_free(cfg);
	server_stop(&srv);
	loop_finish(&loop);
}

/* Garbage on the TLS port ends that connection with an error; the server keeps serving
 * a good client afterwards. */
struct raw {
	struct conn *c;
	int connected, ended, end_status;
};

static void raw_connected(struct conn *c, int status, void *arg)
{
	struct raw *r = arg;

	r->connected = 1;
	r->c = c;
	assert_int_equal(status, 0);
}

static void raw_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	/* a TLS alert, probably */
}

static void raw_end(struct conn *c, int status, void *arg)
{
	struct raw *r = arg;

	r->ended = 1;
	r->end_status = status;
}

static void test_tls_garbage_then_good(void **state)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	struct raw raw = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(conn_tcp_connect(&loop, "127.0.0.1", port, raw_connected, &raw, NULL), 0);
	run_until(&loop, &raw.connected);
	conn_set_callbacks(raw.c, raw_read, raw_end, &raw);
	assert_int_equal(tls_conn_resumed(raw.c), -EINVAL);
	assert_int_equal(conn_write(raw.c, junk, sizeof(junk) - 1), 0);
	run_until(&loop, &srv.peers[0].ended);
	assert_true(srv.peers[0].end_status < 0);
	assert_int_not_equal(srv.peers[0].end_status, UV_EOF);
	run_until(&loop, &raw.ended);      /* the server dropped it */

	connect_with(&loop, NULL, pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	echo_round_trip(&loop, &cl, 70000, 4);
	assert_int_equal(srv.accepted, 2);
	assert_false(srv.peers[1].ended);

	conn_close(raw.c);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

/* The server closes from inside on_read after echoing: the echo arrives (close_notify
 * follows it), the client sees a clean end and closes from inside on_end. */
static void test_tls_close_in_callback(void **state)
{
	uv_loop_t loop;
	struct server srv = { .close_on_read = 1 };
	struct client cl = { .close_on_end = 1 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_with(&loop, NULL, pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	cl.buf = calloc(1, 5);
	cl.size = 5;
	assert_int_equal(conn_write(cl.c, "hello", 5), 0);
	run_until(&loop, &cl.ended);
	assert_int_equal(cl.received, 5);
	assert_memory_equal(cl.buf, "hello", 5);
	assert_int_equal(cl.end_status, UV_EOF);
	assert_true(cl.closed);
	assert_int_equal(cl.write_after_end, -EPIPE);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

/* The client closes from inside its own connect callback. */
static void close_at_connect(struct conn *c, int status, void *arg)
{
	int *done = arg;

	assert_int_equal(status, 0);
	conn_close(c);
	*done = 1;
}

static void test_tls_close_in_connect_cb(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct tls_config *cfg;
	int done = 0;
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(tls_config_client_new(NULL, pin, &cfg), 0);
	assert_int_equal(tls_connect(&loop, cfg, "127.0.0.1", port, close_at_connect, &done, NULL), 0);
	run_until(&loop, &done);
	run_until(&loop, &srv.peers[0].ended);
	assert_int_equal(srv.peers[0].end_status, UV_EOF);
	tls_config_free(cfg);
	server_stop(&srv);
	loop_finish(&loop);
}

static void test_tls_connect_refused(void **state)
{
	uv_loop_t loop;
	uv_tcp_t tmp;
	struct sockaddr_in a;
	int len = sizeof(a);
	struct client cl = { 0 };
	struct tls_config *cfg;

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &tmp, on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&tmp, (struct sockaddr *)&a, &len), 0);
	uv_close((uv_handle_t *)&tmp, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	connect_with(&loop, NULL, pin, "127.0.0.1", ntohs(a.sin_port), &cl);
	assert_int_equal(cl.connect_status, UV_ECONNREFUSED);
	/* A server config cannot connect, a client config cannot accept. */
	assert_int_equal(tls_config_client_new(NULL, pin, &cfg), 0);
	assert_int_equal(tls_connect(&loop, cfg, "", 1, client_connected, &cl, NULL), -EINVAL);
	assert_int_equal(tls_accept(cfg, (uv_stream_t *)&tmp, &cl.c), -EINVAL);
	tls_config_free(cfg);
	loop_finish(&loop);
}

/* -- cancelling a connect -- */

/* A plain TCP server that accepts and never says a word: the client's handshake waits. */
struct silent {
	uv_tcp_t tcp;
	struct conn *peer;
	struct conn_connect *cc;    /* the client's: cancelled once its ClientHello is here */
	size_t received;
	int ended, end_status;
};

static void silent_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct silent *s = arg;

	s->received += len;
	if (s->cc) {
		conn_connect_cancel(s->cc);
		s->cc = NULL;
	}
}

static void silent_end(struct conn *c, int status, void *arg)
{
	struct silent *s = arg;

	s->ended = 1;
	s->end_status = status;
	conn_close(c);
	s->peer = NULL;
}

static void silent_connection(uv_stream_t *l, int status)
{
	struct silent *s = l->data;

	assert_int_equal(status, 0);
	assert_null(s->peer);
	assert_int_equal(conn_plain_accept(l, &s->peer), 0);
	conn_set_callbacks(s->peer, silent_read, silent_end, s);
}

/* Cancelled in the handshake (TCP up, ClientHello sent, no answer): no callback, the
 * socket closes cleanly (the server reads EOF), nothing is left on the loop. */
static void test_tls_connect_cancel_handshake(void **state)
{
	uv_loop_t loop;
	struct silent s = { 0 };
	struct client cl = { 0 };
	struct tls_config *cfg;
	struct sockaddr_in a;
	int len = sizeof(a);

	uv_loop_init(&loop);
	assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &s.tcp, silent_connection), 0);
	s.tcp.data = &s;
	assert_int_equal(uv_tcp_getsockname(&s.tcp, (struct sockaddr *)&a, &len), 0);
	assert_int_equal(tls_config_client_new(NULL, pin, &cfg), 0);
	assert_int_equal(tls_connect(&loop, cfg, "127.0.0.1", ntohs(a.sin_port), client_connected, &cl,
				     &s.cc), 0);
	tls_config_free(cfg);
	run_until(&loop, &s.ended);
	assert_null(s.cc);
	assert_true(s.received > 0);
	assert_int_equal(s.end_status, UV_EOF);
	assert_false(cl.connected);
	uv_close((uv_handle_t *)&s.tcp, NULL);
	run_drained(&loop);
	assert_false(cl.connected);
}

/* Cancelled in the TCP connect, by address and while the name is resolved: no callback. */
static void test_tls_connect_cancel_at_once(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	struct tls_config *cfg;
	struct conn_connect *cc = NULL;
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(tls_config_client_new(NULL, pin, &cfg), 0);
	assert_int_equal(tls_connect(&loop, cfg, "127.0.0.1", port, client_connected, &cl, &cc), 0);
	assert_non_null(cc);
	conn_connect_cancel(cc);
	assert_int_equal(tls_connect(&loop, cfg, "localhost", port, client_connected, &cl, &cc), 0);
	conn_connect_cancel(cc);
	server_stop(&srv);              /* before anything was accepted */
	run_drained(&loop);
	assert_int_equal(srv.accepted, 0);
	assert_false(cl.connected);

	/* The config is still good for a connect that goes through. */
	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(tls_connect(&loop, cfg, "127.0.0.1", port, client_connected, &cl, &cc), 0);
	tls_config_free(cfg);
	run_until(&loop, &cl.connected);
	assert_int_equal(cl.connect_status, 0);
	echo_round_trip(&loop, &cl, 1000, 7);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

/* Flow control: pausing the TLS reader keeps records buffered; resuming delivers them
 * on a later loop turn, in order. */
static int paused;

static void pausing_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	client_read(c, buf, len, arg);
	if (!paused) {
		paused = 1;
		conn_read_stop(c);
	}
}

static void test_tls_flow_control(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	struct client cl = { 0 };
	size_t len = 2 << 20, first;
	uint8_t *data = malloc(len);
	uv_timer_t wait;
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_with(&loop, NULL, pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	conn_set_callbacks(cl.c, pausing_read, client_end, &cl);
	fill(data, len, 5);
	cl.buf = calloc(1, len);
	cl.size = len;
	paused = 0;
	assert_int_equal(conn_write(cl.c, data, len), 0);
	run_until(&loop, &paused);
	first = cl.received;
	uv_timer_init(&loop, &wait);
	uv_timer_start(&wait, deadline_cb, 200, 0);
	while (!deadline_hit)
		uv_run(&loop, UV_RUN_ONCE);
	deadline_hit = 0;
	uv_close((uv_handle_t *)&wait, NULL);
	assert_int_equal(cl.received, first);   /* nothing while paused */
	conn_read_start(cl.c);
	assert_int_equal(cl.received, first);   /* nor from inside conn_read_start */
	run_until(&loop, &cl.got_all);
	assert_memory_equal(cl.buf, data, len);
	free(data);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

static void test_tls_server_speaks_first(void **state)
{
	uv_loop_t loop;
	struct server srv = { .greeting = "meshvpn relay v1\n" };
	struct client cl = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	cl.size = strlen(srv.greeting);
	cl.buf = calloc(1, cl.size);
	connect_with(&loop, NULL, pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	run_until(&loop, &cl.got_all);
	assert_memory_equal(cl.buf, srv.greeting, cl.size);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

/* Both records of one echo arrive in one TCP read; the reader pauses after the first.
 * Nothing more comes from the network, so only the buffered record can complete it.
 * mbedtls' records (AES-128-GCM): the offloaded ones cork the two writes into one record
 * (test_tls_offload covers their reassembly). */
static void test_tls_resume_buffered(void **state)
{
	uv_loop_t loop;
	struct server srv = { .echo_twice = 1 };
	struct client cl = { 0 };
	uv_timer_t wait;
	uint16_t port;

	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(tls_config_set_ciphersuites(srv.cfg, "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"), 0);
	connect_with(&loop, NULL, pin, "127.0.0.1", port, &cl);
	assert_int_equal(cl.connect_status, 0);
	conn_set_callbacks(cl.c, pausing_read, client_end, &cl);
	cl.buf = calloc(1, 8);
	cl.size = 8;
	paused = 0;
	assert_int_equal(conn_write(cl.c, "ping", 4), 0);
	run_until(&loop, &paused);
	assert_int_equal(cl.received, 4);
	uv_timer_init(&loop, &wait);
	uv_timer_start(&wait, deadline_cb, 100, 0);
	while (!deadline_hit)
		uv_run(&loop, UV_RUN_ONCE);
	deadline_hit = 0;
	uv_close((uv_handle_t *)&wait, NULL);
	assert_int_equal(cl.received, 4);
	conn_read_start(cl.c);
	run_until(&loop, &cl.got_all);
	assert_memory_equal(cl.buf, "pingping", 8);
	client_close(&cl);
	server_stop(&srv);
	loop_finish(&loop);
}

/* -- session resumption -- */

/* Connects, checks the outcome and whether the session was resumed (-1: do not check),
 * closes, and returns once the server's side has ended. */
static void connect_check(uv_loop_t *loop, struct server *srv, const char *ca, const char *p,
			  const char *host, uint16_t port, int status, int resumed)
{
	struct client cl = { 0 };
	int n = srv->accepted;

	connect_with(loop, ca, p, host, port, &cl);
	assert_int_equal(cl.connect_status, status);
	if (status == 0) {
		assert_int_equal(tls_conn_resumed(cl.c), resumed);
		echo_round_trip(loop, &cl, 3000, (uint32_t)n);
	}
	client_close(&cl);
	assert_int_equal(srv->accepted, n + 1);
	run_until(loop, &srv->peers[n].ended);
	if (resumed >= 0)
		assert_int_equal(srv->peers[n].resumed, resumed);
}

static void test_tls_session_resumed(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	uint16_t port;

	tls_session_cache_clear();
	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	/* Abbreviated handshakes on both sides; the pin still checked (it needs the
	 * certificate the session kept: without it the connect would fail). */
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	/* A wiped cache starts over. */
	tls_session_cache_clear();
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	server_stop(&srv);
	loop_finish(&loop);
}

/* Same host and port, other trust: pin and CA bundles each get their own sessions. */
static void test_tls_session_other_trust(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	uint16_t port;

	tls_session_cache_clear();
	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_check(&loop, &srv, NULL, pin, "localhost", port, 0, 0);
	connect_check(&loop, &srv, cert, NULL, "localhost", port, 0, 0);
	connect_check(&loop, &srv, cert, NULL, "localhost", port, 0, 1);
	/* A bundle that does not trust the server is not handed the session the other
	 * bundle verified: a full handshake, refused as before. */
	connect_check(&loop, &srv, other_cert, NULL, "localhost", port, -EPERM, -1);
	/* Nor does another host name share it. */
	connect_check(&loop, &srv, cert, NULL, "127.0.0.1", port, -EPERM, -1);
	connect_check(&loop, &srv, NULL, pin, "localhost", port, 0, 1);
	server_stop(&srv);
	loop_finish(&loop);
}

/* A session made under pin A is not offered under pin B: B runs a full handshake (the
 * server says so) and is refused as before; A's session survives it. */
static void test_tls_session_wrong_pin(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	uint16_t port;

	tls_session_cache_clear();
	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	connect_check(&loop, &srv, NULL, other_pin, "127.0.0.1", port, -EPERM, 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	server_stop(&srv);
	loop_finish(&loop);
}

/* The server "restarts": a new config, with this ticket key (NULL: mbedtls's random one). */
static void server_renew(struct server *srv, const uint8_t *ticket_key)
{
	struct tls_config *old = srv->cfg;

	assert_int_equal(tls_config_server_new(cert, key, &srv->cfg), 0);
	if (ticket_key)
		assert_int_equal(tls_config_set_ticket_key(srv->cfg, ticket_key), 0);
	tls_config_free(old);
}

/* A new server config (a restarted coord) has a new ticket key: the client's ticket is
 * ignored, the handshake is a full one and succeeds, and the new ticket is kept. */
static void test_tls_session_server_restarted(void **state)
{
	uv_loop_t loop;
	struct server srv = { 0 };
	uint16_t port;

	tls_session_cache_clear();
	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	server_renew(&srv, NULL);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	server_stop(&srv);
	loop_finish(&loop);
}

/* A restarted server given the same ticket key (coord keeps one in its store) resumes
 * the sessions the old one issued; another key is a full handshake; garbage in the
 * key's place is a full handshake too, never a failure. */
static void test_tls_session_shared_ticket_key(void **state)
{
	static const uint8_t k1[32] = { 1, 2, 3 }, k2[32] = { 9 };
	uv_loop_t loop;
	struct server srv = { 0 };
	uint16_t port;

	tls_session_cache_clear();
	uv_loop_init(&loop);
	port = server_start(&loop, &srv);
	assert_int_equal(tls_config_set_ticket_key(srv.cfg, k1), 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	server_renew(&srv, k1);   /* "restart" with the same key: still resumed */
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	server_renew(&srv, k2);   /* another key: a full handshake, then resumed under it */
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 1);
	server_renew(&srv, NULL); /* mbedtls's own random key again: the ticket is not its */
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port, 0, 0);
	server_stop(&srv);
	loop_finish(&loop);
}

/* The cache holds 16 sessions: the least recently used one goes first. */
static void test_tls_session_cache_bounded(void **state)
{
	enum { N = 17 };
	uv_loop_t loop;
	struct server srv = { 0 };
	uv_tcp_t extra[N - 1];
	uint16_t port[N];

	tls_session_cache_clear();
	uv_loop_init(&loop);
	port[0] = server_start(&loop, &srv);
	for (int i = 1; i < N; i++) {
		struct sockaddr_in a;
		int len = sizeof(a);
		assert_int_equal(conn_listen_tcp(&loop, "127.0.0.1:0", &extra[i - 1], on_connection), 0);
		extra[i - 1].data = &srv;
		assert_int_equal(uv_tcp_getsockname(&extra[i - 1], (struct sockaddr *)&a, &len), 0);
		port[i] = ntohs(a.sin_port);
	}
	for (int i = 0; i < N; i++)
		connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port[i], 0, 0);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port[0], 0, 0);   /* evicted */
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port[2], 0, 1);
	connect_check(&loop, &srv, NULL, pin, "127.0.0.1", port[1], 0, 0);   /* made room for port[0] */
	for (int i = 0; i < N - 1; i++)
		uv_close((uv_handle_t *)&extra[i], NULL);
	server_stop(&srv);
	loop_finish(&loop);
}

/* Clients in several threads, each with its own loop and a config per connection (as
 * http_fetch in the threadpool), share the cache; the server runs in its own thread. */
#define MT_THREADS 4
#define MT_CONNECTS 5

struct mt_server {
	uv_loop_t loop;
	uv_tcp_t tcp;
	uv_async_t stop;
	struct tls_config *cfg;
	int accept_failed;
};

/* Every round starts in all threads at once, so handshakes overlap. */
static pthread_barrier_t mt_round;

struct mt_client {
	uint16_t port;
	int ok, resumed, failed;
	int done, status;
	struct conn *c;
};

static void mt_peer_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
}

static void mt_peer_end(struct conn *c, int status, void *arg)
{
	conn_close(c);
}

static void mt_on_connection(uv_stream_t *s, int status)
{
	struct mt_server *m = s->data;
	struct conn *c;

	if (status < 0 || tls_accept(m->cfg, s, &c) < 0) {
		m->accept_failed++;
		return;
	}
	conn_set_callbacks(c, mt_peer_read, mt_peer_end, m);
}

static void mt_stop(uv_async_t *a)
{
	struct mt_server *m = a->data;

	uv_close((uv_handle_t *)&m->tcp, NULL);
	uv_close((uv_handle_t *)&m->stop, NULL);
}

static void *mt_server_main(void *arg)
{
	struct mt_server *m = arg;

	uv_run(&m->loop, UV_RUN_DEFAULT);   /* until stopped and every conn is gone */
	return NULL;
}

static void mt_connected(struct conn *c, int status, void *arg)
{
	struct mt_client *m = arg;

	m->done = 1;
	m->status = status;
	m->c = c;
}

static void *mt_client_main(void *arg)
{
	struct mt_client *m = arg;

	for (int i = 0; i < MT_CONNECTS; i++) {
		struct tls_config *cfg;
		uv_loop_t loop;

		m->done = 0;
		m->c = NULL;
		pthread_barrier_wait(&mt_round);
		if (uv_loop_init(&loop) < 0) {
			m->failed++;
			continue;
		}
		if (tls_config_client_new(NULL, pin, &cfg) < 0) {
			m->failed++;
			uv_loop_close(&loop);
			continue;
		}
		if (tls_connect(&loop, cfg, "127.0.0.1", m->port, mt_connected, m, NULL) < 0) {
			m->failed++;
		} else {
			while (!m->done)
				uv_run(&loop, UV_RUN_ONCE);
			if (m->status == 0) {
				m->ok++;
				m->resumed += tls_conn_resumed(m->c) == 1;
				conn_close(m->c);
			} else {
				m->failed++;
			}
		}
		tls_config_free(cfg);
		uv_run(&loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&loop) < 0)
			m->failed++;
	}
	return NULL;
}

static void test_tls_session_threads(void **state)
{
	struct mt_server srv = { 0 };
	struct mt_client cl[MT_THREADS] = { 0 };
	pthread_t server_thread, th[MT_THREADS];
	struct sockaddr_in a;
	int len = sizeof(a);

	tls_session_cache_clear();
	assert_int_equal(uv_loop_init(&srv.loop), 0);
	assert_int_equal(tls_config_server_new(cert, key, &srv.cfg), 0);
	assert_int_equal(conn_listen_tcp(&srv.loop, "127.0.0.1:0", &srv.tcp, mt_on_connection), 0);
	srv.tcp.data = &srv;
	assert_int_equal(uv_tcp_getsockname(&srv.tcp, (struct sockaddr *)&a, &len), 0);
	assert_int_equal(uv_async_init(&srv.loop, &srv.stop, mt_stop), 0);
	srv.stop.data = &srv;
	assert_int_equal(pthread_barrier_init(&mt_round, NULL, MT_THREADS), 0);
	assert_int_equal(pthread_create(&server_thread, NULL, mt_server_main, &srv), 0);
	for (int i = 0; i < MT_THREADS; i++) {
		cl[i].port = ntohs(a.sin_port);
		assert_int_equal(pthread_create(&th[i], NULL, mt_client_main, &cl[i]), 0);
	}
	for (int i = 0; i < MT_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&mt_round);
	uv_async_send(&srv.stop);
	pthread_join(server_thread, NULL);
	assert_int_equal(uv_loop_close(&srv.loop), 0);
	tls_config_free(srv.cfg);
	assert_int_equal(srv.accept_failed, 0);
	for (int i = 0; i < MT_THREADS; i++) {
		assert_int_equal(cl[i].failed, 0);
		assert_int_equal(cl[i].ok, MT_CONNECTS);
		/* The first round's handshakes are full ones; every later round finds
		 * the sessions the round before saved. */
		assert_true(cl[i].resumed >= MT_CONNECTS - 1);
	}
}

static int setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_tls.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	snprintf(other_cert, sizeof(other_cert), "%s/other.crt", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
	if (tls_selfsigned_create(cert, key, "localhost") ||
	    tls_selfsigned_create(other_cert, other_key, "localhost") ||
	    tls_cert_pin(cert, pin) || tls_cert_pin(other_cert, other_pin))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	tls_session_cache_clear();
	unlink(cert);
	unlink(key);
	unlink(other_cert);
	unlink(other_key);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_pin_parse),
		cmocka_unit_test(test_tls_selfsigned_files),
		cmocka_unit_test(test_tls_echo_large),
		cmocka_unit_test(test_tls_pin_wrong),
		cmocka_unit_test(test_tls_ca_untrusted),
		cmocka_unit_test(test_tls_ca_trusted),
		cmocka_unit_test(test_tls_connect_name),
		cmocka_unit_test(test_tls_garbage_then_good),
		cmocka_unit_test(test_tls_close_in_callback),
		cmocka_unit_test(test_tls_close_in_connect_cb),
		cmocka_unit_test(test_tls_connect_refused),
		cmocka_unit_test(test_tls_connect_cancel_handshake),
		cmocka_unit_test(test_tls_connect_cancel_at_once),
		cmocka_unit_test(test_tls_flow_control),
		cmocka_unit_test(test_tls_resume_buffered),
		cmocka_unit_test(test_tls_server_speaks_first),
		cmocka_unit_test(test_tls_session_resumed),
		cmocka_unit_test(test_tls_session_shared_ticket_key),
		cmocka_unit_test(test_tls_session_other_trust),
		cmocka_unit_test(test_tls_session_wrong_pin),
		cmocka_unit_test(test_tls_session_server_restarted),
		cmocka_unit_test(test_tls_session_cache_bounded),
		cmocka_unit_test(test_tls_session_threads),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
