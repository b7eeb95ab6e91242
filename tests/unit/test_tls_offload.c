/* test_tls_offload.c - tls.c with records offloaded to libsodium, on loopback: each suite
 * forced, megabytes both ways in random-sized writes, an offloaded side against mbedtls'
 * records, data right after Finished (server greeting; a resumed client's first write
 * coalesced with its Finished by a proxy), close_notify as EOF, a tampered record, the
 * fallback suites and MESHVPN_TLS_OFFLOAD=0; a big write sealed a slice at a time as the
 * socket drains, in order, and flushed on close. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "support.h"

#define DEADLINE_MS 20000
#define AES "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"
#define CHACHA "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"
#define AES128 "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"

static char dir[256], cert[300], key[300];
static char pin[TLS_PIN_LEN];

#define run_until(loop, flag) support_run_until(loop, flag, DEADLINE_MS)

/* -- an echo server that records what its peer did -- */

struct srv {
	uv_tcp_t tcp;
	struct tls_config *cfg;
	struct conn *c;
	const char *greeting;
	size_t received;
	int ended, end_status, offloaded, resumed;
	const char *suite;
	int echo;
};

static void srv_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct srv *s = arg;

	if (!s->suite)
		s->suite = tls_conn_suite(c, &s->offloaded);
	s->received += len;
	if (s->echo)
		assert_int_equal(conn_write(c, buf, len), 0);
}

static void srv_end(struct conn *c, int status, void *arg)
{
	struct srv *s = arg;

	s->ended = 1;
	s->end_status = status;
	s->resumed = tls_conn_resumed(c);
	if (!s->suite)
		s->suite = tls_conn_suite(c, &s->offloaded);
	conn_close(c);
	s->c = NULL;
}

static void srv_accept(uv_stream_t *l, int status)
{
	struct srv *s = l->data;

	assert_int_equal(status, 0);
	assert_null(s->c);
	assert_int_equal(tls_accept(s->cfg, l, &s->c), 0);
	s->suite = NULL;
	s->received = 0;
	s->ended = 0;
	conn_set_callbacks(s->c, srv_read, srv_end, s);
	if (s->greeting)
		assert_int_equal(conn_write(s->c, s->greeting, strlen(s->greeting)), 0);
}

static uint16_t listen_on(uv_loop_t *loop, uv_tcp_t *tcp, uv_connection_cb cb, void *data)
{
	struct sockaddr_in a;
	int len = sizeof(a);

	assert_int_equal(conn_listen_tcp(loop, "127.0.0.1:0", tcp, cb), 0);
	tcp->data = data;
	assert_int_equal(uv_tcp_getsockname(tcp, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static uint16_t srv_start(uv_loop_t *loop, struct srv *s, const char *suites)
{
	assert_int_equal(tls_config_server_new(cert, key, &s->cfg), 0);
	if (suites)
		assert_int_equal(tls_config_set_ciphersuites(s->cfg, suites), 0);
	s->echo = 1;
	return listen_on(loop, &s->tcp, srv_accept, s);
}

static void srv_stop(struct srv *s)
{
	if (s->c)
		conn_close(s->c);
	s->c = NULL;
	uv_close((uv_handle_t *)&s->tcp, NULL);
	tls_config_free(s->cfg);
}

/* -- a client that checks the echo of what it wrote -- */

struct cli {
	struct conn *c;
	int connected, status, ended, end_status, got_all, offloaded;
	const char *suite;
	uint8_t *expect, *got;
	size_t size, received;
	const char *first_write;    /* written from inside connect_cb */
};

static void cli_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct cli *k = arg;

	assert_true(k->received + len <= k->size);
	memcpy(k->got + k->received, buf, len);
	k->received += len;
	if (k->received == k->size)
		k->got_all = 1;
}

static void cli_end(struct conn *c, int status, void *arg)
{
	struct cli *k = arg;

	k->ended = 1;
	k->end_status = status;
}

static void cli_connected(struct conn *c, int status, void *arg)
{
	struct cli *k = arg;

	k->connected = 1;
	k->status = status;
	k->c = c;
	if (status < 0)
		return;
	k->suite = tls_conn_suite(c, &k->offloaded);
	conn_set_callbacks(c, cli_read, cli_end, k);
	if (k->first_write)
		assert_int_equal(conn_write(c, k->first_write, strlen(k->first_write)), 0);
}

static void cli_connect(uv_loop_t *loop, struct cli *k, uint16_t port, const char *suites)
{
	struct tls_config *cfg;

	assert_int_equal(tls_config_client_new(NULL, pin, &cfg), 0);
	if (suites)
		assert_int_equal(tls_config_set_ciphersuites(cfg, suites), 0);
	assert_int_equal(tls_connect(loop, cfg, "127.0.0.1", port, cli_connected, k, NULL), 0);
	tls_config_free(cfg);
	run_until(loop, &k->connected);
	assert_int_equal(k->status, 0);
}

static void cli_expect(struct cli *k, size_t size)
{
	free(k->expect);
	free(k->got);
	k->expect = malloc(size ? size : 1);
	k->got = malloc(size ? size : 1);
	assert_non_null(k->expect);
	assert_non_null(k->got);
	k->size = size;
	k->received = 0;
	k->got_all = 0;
}

static void cli_close(struct cli *k)
{
	if (k->c)
		conn_close(k->c);
	k->c = NULL;
	free(k->expect);
	free(k->got);
	k->expect = k->got = NULL;
}

/* size bytes in writes of random sizes (1 byte to 100 KiB), echoed back and compared. */
static void echo_random(uv_loop_t *loop, struct cli *k, size_t size)
{
	size_t off = 0, n;

	cli_expect(k, size);
	randombytes_buf(k->expect, size);
	while (off < size) {
		n = 1 + randombytes_uniform(100 * 1024);
		if (n > size - off)
			n = size - off;
		assert_int_equal(conn_write(k->c, k->expect + off, n), 0);
		off += n;
	}
	run_until(loop, &k->got_all);
	assert_memory_equal(k->got, k->expect, size);
}

/* The client closes (close_notify): the server sees EOF; then the server stops. */
static void close_pair(uv_loop_t *loop, struct cli *k, struct srv *s)
{
	cli_close(k);
	run_until(loop, &s->ended);
	assert_int_equal(s->end_status, UV_EOF);
	srv_stop(s);
}

/* -- a TCP proxy: coalesces what the client sends (20 ms batches) and may flip a byte -- */

struct proxy {
	uv_tcp_t tcp;
	uint16_t to_port;
	struct conn *down, *up;
	uint8_t *held;              /* client bytes not yet sent upstream */
	size_t held_len, passed;
	size_t flip_at;             /* flip this byte of the client stream (0: none) */
	uv_timer_t batch;
	int down_ended, up_ended;
};

static void proxy_flush(uv_timer_t *t)
{
	struct proxy *p = t->data;

	if (p->up && p->held_len) {
		conn_write(p->up, p->held, p->held_len);
		p->held_len = 0;
	}
}

static void proxy_down_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct proxy *p = arg;
	uint8_t *h = realloc(p->held, p->held_len + len);

	assert_non_null(h);
	p->held = h;
	memcpy(h + p->held_len, buf, len);
	if (p->flip_at && p->flip_at >= p->passed && p->flip_at < p->passed + len)
		h[p->held_len + (p->flip_at - p->passed)] ^= 0x01;
	p->passed += len;
	p->held_len += len;
	if (!uv_is_active((uv_handle_t *)&p->batch))
		uv_timer_start(&p->batch, proxy_flush, 20, 0);
}

static void proxy_up_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct proxy *p = arg;

	if (p->down)
		conn_write(p->down, buf, len);
}

static void proxy_down_end(struct conn *c, int status, void *arg)
{
	struct proxy *p = arg;

	p->down_ended = 1;
}

static void proxy_up_end(struct conn *c, int status, void *arg)
{
	struct proxy *p = arg;

	p->up_ended = 1;
	/* Pass the end on: the client sees the server's close. */
	if (p->down) {
		conn_close(p->down);
		p->down = NULL;
	}
}

static void proxy_up_connected(struct conn *c, int status, void *arg)
{
	struct proxy *p = arg;

	assert_int_equal(status, 0);
	p->up = c;
	conn_set_callbacks(c, proxy_up_read, proxy_up_end, p);
	proxy_flush(&p->batch);
}

static void proxy_accept(uv_stream_t *l, int status)
{
	struct proxy *p = l->data;

	assert_int_equal(conn_plain_accept(l, &p->down), 0);
	conn_set_callbacks(p->down, proxy_down_read, proxy_down_end, p);
	assert_int_equal(conn_tcp_connect(l->loop, "127.0.0.1", p->to_port, proxy_up_connected, p,
					  NULL), 0);
}

static uint16_t proxy_start(uv_loop_t *loop, struct proxy *p, uint16_t to_port)
{
	p->to_port = to_port;
	uv_timer_init(loop, &p->batch);
	p->batch.data = p;
	return listen_on(loop, &p->tcp, proxy_accept, p);
}

static void proxy_reset(struct proxy *p)
{
	if (p->down)
		conn_close(p->down);
	if (p->up)
		conn_close(p->up);
	p->down = p->up = NULL;
	p->held_len = p->passed = 0;
}

static void proxy_stop(struct proxy *p)
{
	proxy_reset(p);
	uv_timer_stop(&p->batch);
	uv_close((uv_handle_t *)&p->batch, NULL);
	uv_close((uv_handle_t *)&p->tcp, NULL);
	free(p->held);
}

/* -- cases -- */

/* Each offloaded suite forced from the client's side: both ends offload, 8 MB echoed in
 * random writes, then the client's close_notify is the server's EOF. */
static void forced(const char *suite)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = srv_start(&loop, &s, NULL);
	cli_connect(&loop, &k, port, suite);
	assert_string_equal(k.suite, suite);
	assert_int_equal(k.offloaded, 1);
	echo_random(&loop, &k, 8u << 20);
	assert_string_equal(s.suite, suite);
	assert_int_equal(s.offloaded, 1);
	close_pair(&loop, &k, &s);
	loop_finish(&loop);
}

static void test_offload_aes(void **state)
{
	if (!crypto_aead_aes256gcm_is_available())
		skip();
	forced(AES);
}

static void test_offload_chacha(void **state)
{
	forced(CHACHA);
}

/* With no suite forced our own peers land on an offloaded one. */
static void test_offload_default_suite(void **state)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = srv_start(&loop, &s, NULL);
	cli_connect(&loop, &k, port, NULL);
	assert_int_equal(k.offloaded, 1);
	assert_string_equal(k.suite, crypto_aead_aes256gcm_is_available() ? AES : CHACHA);
	echo_random(&loop, &k, 100000);
	close_pair(&loop, &k, &s);
	loop_finish(&loop);
}

/* One side offloaded, the other on mbedtls' records (MESHVPN_TLS_OFFLOAD=0 when its config
 * was made): the two implementations of one suite agree, either way round. */
static void mixed(int server_offloads, const char *suite)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	if (!server_offloads)
		setenv("MESHVPN_TLS_OFFLOAD", "0", 1);
	port = srv_start(&loop, &s, NULL);
	unsetenv("MESHVPN_TLS_OFFLOAD");
	if (server_offloads)
		setenv("MESHVPN_TLS_OFFLOAD", "0", 1);
	cli_connect(&loop, &k, port, suite);
	unsetenv("MESHVPN_TLS_OFFLOAD");
	assert_int_equal(k.offloaded, !server_offloads);
	echo_random(&loop, &k, 3u << 20);
	assert_int_equal(s.offloaded, server_offloads);
	close_pair(&loop, &k, &s);
	loop_finish(&loop);
}

static void test_offload_against_mbedtls(void **state)
{
	mixed(1, CHACHA);
	mixed(0, CHACHA);
	if (crypto_aead_aes256gcm_is_available()) {
		mixed(1, AES);
		mixed(0, AES);
	}
}

/* AES-128-GCM stays with mbedtls; MESHVPN_TLS_OFFLOAD=0 keeps everything there. */
static void test_offload_fallback(void **state)
{
	uv_loop_t loop;
	struct srv s = { 0 }, s2 = { 0 };
	struct cli k = { 0 }, k2 = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = srv_start(&loop, &s, NULL);
	cli_connect(&loop, &k, port, AES128);
	assert_string_equal(k.suite, AES128);
	assert_int_equal(k.offloaded, 0);
	echo_random(&loop, &k, 1u << 20);
	assert_int_equal(s.offloaded, 0);
	close_pair(&loop, &k, &s);

	setenv("MESHVPN_TLS_OFFLOAD", "0", 1);
	port = srv_start(&loop, &s2, NULL);
	cli_connect(&loop, &k2, port, NULL);
	unsetenv("MESHVPN_TLS_OFFLOAD");
	assert_int_equal(k2.offloaded, 0);
	echo_random(&loop, &k2, 1u << 20);
	assert_int_equal(s2.offloaded, 0);
	close_pair(&loop, &k2, &s2);
	loop_finish(&loop);
}

/* The server's greeting follows its Finished in the same TCP segment: the client finds it
 * in the bytes after the handshake. */
static void test_offload_greeting_after_finished(void **state)
{
	static const char hello[] = "hello, offloaded";
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };
	uint16_t port;

	uv_loop_init(&loop);
	port = srv_start(&loop, &s, NULL);
	s.greeting = hello;
	cli_expect(&k, strlen(hello));
	cli_connect(&loop, &k, port, NULL);
	assert_int_equal(k.offloaded, 1);
	run_until(&loop, &k.got_all);
	assert_memory_equal(k.got, hello, strlen(hello));
	close_pair(&loop, &k, &s);
	loop_finish(&loop);
}

/* A resumed handshake ends with the client's Finished; its first write, made from
 * connect_cb, reaches the server in the same read (the proxy batches): not lost, and the
 * resumed connection is offloaded too (keys are exported on resumption). */
static void test_offload_fast_start_resumed(void **state)
{
	static const char first[] = "first bytes right after Finished";
	uv_loop_t loop;
	struct srv s = { 0 };
	struct proxy p = { 0 };
	struct cli k = { 0 }, k2 = { 0 };
	uint16_t port, pport;

	uv_loop_init(&loop);
	tls_session_cache_clear();
	port = srv_start(&loop, &s, NULL);
	s.echo = 0;
	pport = proxy_start(&loop, &p, port);
	k.first_write = first;
	cli_connect(&loop, &k, pport, NULL);
	SUPPORT_WAIT_FOR(&loop, s.received == strlen(first), DEADLINE_MS);
	assert_int_equal(tls_conn_resumed(k.c), 0);
	cli_close(&k);
	run_until(&loop, &s.ended);
	proxy_reset(&p);

	k2.first_write = first;
	cli_connect(&loop, &k2, pport, NULL);
	assert_int_equal(tls_conn_resumed(k2.c), 1);
	assert_int_equal(k2.offloaded, 1);
	SUPPORT_WAIT_FOR(&loop, s.received == strlen(first), DEADLINE_MS);
	assert_int_equal(s.offloaded, 1);
	cli_close(&k2);
	run_until(&loop, &s.ended);
	assert_int_equal(s.end_status, UV_EOF);
	assert_int_equal(s.resumed, 1);
	proxy_stop(&p);
	srv_stop(&s);
	loop_finish(&loop);
}

/* One bit flipped in an application record: the server fails the tag and ends with an
 * error (and a bad_record_mac alert, which ends the client too). */
static void test_offload_tampered(void **state)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct proxy p = { 0 };
	struct cli k = { 0 };
	uint16_t port, pport;
	uint8_t *data = malloc(65536);

	assert_non_null(data);
	uv_loop_init(&loop);
	port = srv_start(&loop, &s, NULL);
	s.echo = 0;
	pport = proxy_start(&loop, &p, port);
	cli_connect(&loop, &k, pport, NULL);
	p.flip_at = p.passed + 20000;   /* inside the second record */
	randombytes_buf(data, 65536);
	assert_int_equal(conn_write(k.c, data, 65536), 0);
	run_until(&loop, &s.ended);
	assert_int_equal(s.end_status, -EPROTO);
	assert_true(s.received <= 16384);
	run_until(&loop, &k.ended);
	assert_true(k.end_status < 0);
	cli_close(&k);
	proxy_stop(&p);
	srv_stop(&s);
	loop_finish(&loop);
	free(data);
}

/* -- a big write is encrypted a slice at a time as the socket drains -- */

#define SLICE (64 * 1024)             /* TLS_WRITE_SLICE */
#define BIG_WRITE (8 * 1024 * 1024)
#define SMALLS 50                     /* one-byte writes behind the big one */

/* The server writes 8 MiB in one conn_write: no more than a slice is sealed before the
 * call returns, every loop turn seals a few slices at most, everything queued counts in
 * conn_pending(), and the client gets every byte in order. */
/* A pair whose server has seen the client's first byte (the handshake is over on both
 * sides) and does not echo. */
static void open_quiet_pair(uv_loop_t *loop, struct srv *s, struct cli *k, const char *suite)
{
	uint16_t port;

	assert_int_equal(uv_loop_init(loop), 0);
	port = srv_start(loop, s, suite);
	s->echo = 0;
	cli_connect(loop, k, port, suite);
	assert_int_equal(conn_write(k->c, "x", 1), 0);
	SUPPORT_WAIT_FOR(loop, s->received == 1, DEADLINE_MS);
}

static int released;

static void count_release(void *ctx)
{
	released++;
}

static void sliced(const char *suite, int want_offload, int by_ref)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };
	size_t left, prev, most = 0;
	struct support_deadline d;

	open_quiet_pair(&loop, &s, &k, suite);
	assert_int_equal(s.offloaded, want_offload);

	cli_expect(&k, BIG_WRITE);
	randombytes_buf(k.expect, BIG_WRITE);
	released = 0;
	if (by_ref)
		assert_int_equal(conn_write_ref(s.c, k.expect, BIG_WRITE - SMALLS, count_release,
						NULL), 0);
	else
		assert_int_equal(conn_write(s.c, k.expect, BIG_WRITE - SMALLS), 0);
	assert_int_equal(released, 0);
	/* Small writes behind it wait their turn, and do not each seal a slice. */
	for (size_t i = BIG_WRITE - SMALLS; i < BIG_WRITE; i++)
		assert_int_equal(conn_write(s.c, k.expect + i, 1), 0);
	assert_int_equal(conn_write(s.c, "", 0), 0);
	left = tls_conn_unsealed(s.c);
	assert_true(left >= BIG_WRITE - SLICE);
	assert_true(conn_pending(s.c) >= left);
	assert_true(conn_unsent_total() >= left);

	support_deadline_start(&loop, &d, DEADLINE_MS);
	while (!k.got_all && !d.hit) {
		prev = tls_conn_unsealed(s.c);
		uv_run(&loop, UV_RUN_ONCE);
		if (s.c && prev - tls_conn_unsealed(s.c) > most)
			most = prev - tls_conn_unsealed(s.c);
	}
	support_deadline_end(&d);
	assert_true(most > 0);
	assert_true(most <= 2 * SLICE);   /* a drain in the pending and the poll phase */
	assert_int_equal(tls_conn_unsealed(s.c), 0);
	assert_int_equal(released, by_ref);   /* handed back once, when all was sealed */
	assert_memory_equal(k.got, k.expect, BIG_WRITE);
	close_pair(&loop, &k, &s);
	loop_finish(&loop);
}

static void test_big_write_sliced_offload(void **state)
{
	sliced(AES, 1, 0);
}

/* The writer's buffer kept as it is (no copy) and handed back once sealed. */
static void test_big_write_by_ref(void **state)
{
	sliced(AES, 1, 1);
}

static void test_big_write_sliced_mbedtls(void **state)
{
	sliced(AES128, 0, 0);
}

/* Closed with most of a big write still queued: the rest is sealed and flushed, as a
 * plain send queue would be, and the close_notify follows it. */
static void test_big_write_then_close(void **state)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };
	size_t left;

	open_quiet_pair(&loop, &s, &k, NULL);
	cli_expect(&k, 2 * 1024 * 1024);
	randombytes_buf(k.expect, k.size);
	assert_int_equal(conn_write(s.c, k.expect, k.size), 0);
	left = tls_conn_unsealed(s.c);
	assert_true(left > 0);
	conn_close(s.c);
	s.c = NULL;
	/* Not sealed in one go at the close either: the conn lingers, a slice a turn. */
	assert_true(conn_unsent_total() >= left);
	run_until(&loop, &k.got_all);
	assert_memory_equal(k.got, k.expect, k.size);
	run_until(&loop, &k.ended);
	assert_int_equal(k.end_status, UV_EOF);
	cli_close(&k);
	srv_stop(&s);
	loop_finish(&loop);
}

/* The peer leaves while a closed conn lingers over its queue: all of it goes, nothing
 * leaks (loop_finish, ASan). */
static void test_big_write_close_peer_gone(void **state)
{
	uv_loop_t loop;
	struct srv s = { 0 };
	struct cli k = { 0 };

	open_quiet_pair(&loop, &s, &k, NULL);
	cli_expect(&k, BIG_WRITE);
	memset(k.expect, 7, k.size);
	assert_int_equal(conn_write(s.c, k.expect, k.size), 0);
	conn_close(s.c);
	s.c = NULL;
	cli_close(&k);
	SUPPORT_WAIT_FOR(&loop, conn_unsent_total() == 0, DEADLINE_MS);
	srv_stop(&s);
	loop_finish(&loop);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_tls_offload.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	if (tls_selfsigned_create(cert, key, "localhost") < 0 || tls_cert_pin(cert, pin) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	unlink(cert);
	unlink(key);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offload_aes),
		cmocka_unit_test(test_offload_chacha),
		cmocka_unit_test(test_offload_default_suite),
		cmocka_unit_test(test_offload_against_mbedtls),
		cmocka_unit_test(test_offload_fallback),
		cmocka_unit_test(test_offload_greeting_after_finished),
		cmocka_unit_test(test_offload_fast_start_resumed),
		cmocka_unit_test(test_offload_tampered),
		cmocka_unit_test(test_big_write_sliced_offload),
		cmocka_unit_test(test_big_write_sliced_mbedtls),
		cmocka_unit_test(test_big_write_by_ref),
		cmocka_unit_test(test_big_write_then_close),
		cmocka_unit_test(test_big_write_close_peer_gone),
	};

	if (sodium_init() < 0)
		return 1;
	unsetenv("MESHVPN_TLS_OFFLOAD");
	log_set_level(getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
