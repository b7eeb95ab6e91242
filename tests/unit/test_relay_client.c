/* test_relay_client.c - lib/relay_client.c against a fake relay on loopback in the same
 * loop (http_upgrade, then frames by hand; plain TCP and TLS with a pin): the hello it
 * sends opens with relay_client_hello_open, echo, peer-gone, ping, fast start, a wrong pin,
 * refusals, reconnects with growing backoff, RESTARTING, silence, back-pressure, a stop
 * from inside a callback, two clients on one loop. */
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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/backoff.h"
#include "meshvpn/http.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/relay_client.h"
#include "meshvpn/relay_frame.h"
#include "meshvpn/tls.h"
#include "support.h"

#define DEADLINE_MS 10000
#define MAX_SEEN 64
#define N_RELAYS 2
#define BACKOFF_MIN 50
#define BACKOFF_MAX 1000

/* What the fake relay does once it has opened the client's hello. */
enum mode {
	M_ECHO,        /* SERVER_INFO, then echo SEND_PACKET as RECV_PACKET from SRC */
	M_REFUSE,      /* PEER_GONE(own key, NOT_ADMITTED) and close */
	M_FORBID,      /* answers the upgrade request 403 */
	M_HANGUP,      /* upgrades, then closes before the hello */
	M_CLOSE,       /* SERVER_INFO, then closes */
	M_RESTART,     /* SERVER_INFO, then RESTARTING(restart_in_ms) */
	M_GARBAGE,     /* SERVER_INFO, then a RECV_PACKET too short to hold a key */
	M_SILENT,      /* SERVER_INFO, then nothing more */
	M_NOREAD,      /* SERVER_INFO, then stops reading */
};

static const uint8_t SRC[KEY_LEN] = { 0x5a, 0x5a, 0x01 };
static const uint8_t DST[KEY_LEN] = { 0xd5, 0x7d, 0x02 };

struct fake_relay {
	uv_tcp_t listener;
	struct http_server *srv;
	struct tls_config *tls;      /* NULL: plain */
	char url[64];
	enum mode mode;
	uint32_t restart_in_ms;
	uint8_t pub[KEY_LEN], priv[KEY_LEN], challenge[RELAY_CHALLENGE_LEN];
	struct conn *c;
	struct relay_reader rd;
	int requests, hellos, fast_start, keepalives, pongs, bad_request;
	uint64_t request_ms[MAX_SEEN];
	uint8_t client_key[KEY_LEN];
	unsigned version, flags;
	uint8_t pong[8];
};

struct client {
	struct relay_client *rc;
	uint8_t pub[KEY_LEN], priv[KEY_LEN];
	enum relay_client_state states[MAX_SEEN];
	int details[MAX_SEEN];
	uint64_t state_ms[MAX_SEEN];
	int n_states, connected, lost;
	int packets;
	uint8_t last_src[KEY_LEN];
	char last_data[64];
	size_t last_len;
	int gone, gone_reason;
	uint8_t gone_key[KEY_LEN];
	int stop_on_packet, stop_on_lost;
};

struct env {
	uv_loop_t loop;
	char dir[64], cert[128], key[128], pin[TLS_PIN_LEN];
	struct fake_relay fr[N_RELAYS];
	struct client cl[N_RELAYS];
};

static struct env E;

/* ---- the fake relay ---- */

static void fr_send(struct fake_relay *fr, uint8_t type, const void *p, uint32_t len)
{
	uint8_t buf[RELAY_HDR_LEN + 256];
	int n = relay_frame_build(buf, sizeof(buf), type, p, len);

	assert_true(n > 0);
	assert_int_equal(conn_write(fr->c, buf, (size_t)n), 0);
}

static void fr_close(struct fake_relay *fr)
{
	conn_close(fr->c);
	fr->c = NULL;
	fr->rd.len = 0;
}

static void fr_admitted(struct fake_relay *fr)
{
	static const uint8_t info[3] = { RELAY_VERSION, 0, RELAY_KEEPALIVE_S };
	uint8_t restart[8] = { 0 }, garbage[RELAY_HDR_LEN + 10];

	fr_send(fr, RELAY_SERVER_INFO, info, sizeof(info));
	switch (fr->mode) {
	case M_CLOSE:
		fr_close(fr);
		break;
	case M_RESTART:
		restart[0] = (uint8_t)(fr->restart_in_ms >> 24);
		restart[1] = (uint8_t)(fr->restart_in_ms >> 16);
		restart[2] = (uint8_t)(fr->restart_in_ms >> 8);
		restart[3] = (uint8_t)fr->restart_in_ms;
		fr_send(fr, RELAY_RESTARTING, restart, sizeof(restart));
		break;
	case M_GARBAGE:
		memset(garbage, 0xee, sizeof(garbage));
		relay_frame_header(garbage, RELAY_RECV_PACKET, 10);
		assert_int_equal(conn_write(fr->c, garbage, sizeof(garbage)), 0);
		break;
	case M_NOREAD:
		conn_read_stop(fr->c);
		break;
	default:
		break;
	}
}

static void fr_hello(struct fake_relay *fr, const struct relay_frame *f)
{
	uint8_t gone[KEY_LEN + 1];

	assert_int_equal(relay_client_hello_open(f, fr->priv, fr->challenge, fr->client_key,
						 &fr->version, &fr->flags), 0);
	fr->hellos++;
	if (fr->mode == M_REFUSE) {
		memcpy(gone, fr->client_key, KEY_LEN);
		gone[KEY_LEN] = RELAY_GONE_NOT_ADMITTED;
		fr_send(fr, RELAY_PEER_GONE, gone, sizeof(gone));
		fr_close(fr);
		return;
	}
	fr_admitted(fr);
}

/* SEND_PACKET: echoed from SRC; "gone" answers PEER_GONE, "ping" a PING, "twice" two
 * echoes in one write. */
static void fr_packet(struct fake_relay *fr, const struct relay_frame *f)
{
	static const uint8_t ping[8] = "pingdata";
	uint8_t hdr[RELAY_HDR_LEN + KEY_LEN], gone[KEY_LEN + 1], two[2 * 64];
	const uint8_t *key, *data;
	size_t len;

	relay_packet_parse(f, &key, &data, &len);
	if (len == 4 && !memcmp(data, "gone", 4)) {
		memcpy(gone, key, KEY_LEN);
		gone[KEY_LEN] = RELAY_GONE_NOT_HERE;
		fr_send(fr, RELAY_PEER_GONE, gone, sizeof(gone));
		return;
	}
	if (len == 4 && !memcmp(data, "ping", 4)) {
		fr_send(fr, RELAY_PING, ping, sizeof(ping));
		return;
	}
	if (fr->mode != M_ECHO)
		return;
	assert_int_equal(relay_packet_header(hdr, RELAY_RECV_PACKET, SRC, len), 0);
	if (len == 5 && !memcmp(data, "twice", 5)) {
		memcpy(two, hdr, sizeof(hdr));
		memcpy(two + sizeof(hdr), data, len);
		memcpy(two + sizeof(hdr) + len, two, sizeof(hdr) + len);
		assert_int_equal(conn_write(fr->c, two, 2 * (sizeof(hdr) + len)), 0);
		return;
	}
	assert_int_equal(conn_write(fr->c, hdr, sizeof(hdr)), 0);
	assert_int_equal(conn_write(fr->c, data, len), 0);
}

static int fr_frame(const struct relay_frame *f, void *arg)
{
	struct fake_relay *fr = arg;

	assert_int_equal(relay_frame_check(f), 0);
	switch (f->type) {
	case RELAY_CLIENT_HELLO:
		fr_hello(fr, f);
		break;
	case RELAY_SEND_PACKET:
		fr_packet(fr, f);
		break;
	case RELAY_KEEPALIVE:
		fr->keepalives++;
		break;
	case RELAY_PONG:
		fr->pongs++;
		memcpy(fr->pong, f->payload, sizeof(fr->pong));
		break;
	default:
		fail_msg("the client sent frame type %u", f->type);
	}
	return fr->c == NULL;
}

static void fr_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct fake_relay *fr = arg;

	assert_true(relay_reader_feed(&fr->rd, buf, len, fr_frame, fr) >= 0);
}

static void fr_end(struct conn *c, int status, void *arg)
{
	fr_close(arg);
}

static void fr_handler(struct http_request *req, void *arg)
{
	struct fake_relay *fr = arg;
	const char *up = http_request_header(req, "Upgrade");
	const char *fast = http_request_header(req, RELAY_FAST_START);
	uint8_t hello[RELAY_HDR_LEN + RELAY_SERVER_HELLO_LEN];

	fr->request_ms[fr->requests < MAX_SEEN ? fr->requests : MAX_SEEN - 1] = uv_now(&E.loop);
	fr->requests++;
	if (strcmp(req->method, "GET") || strcmp(req->path, RELAY_PATH) || !up ||
	    strcmp(up, RELAY_UPGRADE) || !http_request_header(req, "Host"))
		fr->bad_request++;
	fr->fast_start = fast && !strcmp(fast, "1");
	if (fr->mode == M_FORBID) {
		assert_int_equal(http_respond_error(req, 403, "not yours"), 0);
		return;
	}
	if (fr->c)
		fr_close(fr);   /* a client that came back before we noticed it left */
	assert_int_equal(http_upgrade(req, RELAY_UPGRADE, fr_read, fr_end, fr, &fr->c), 0);
	if (fr->mode == M_HANGUP) {
		fr_close(fr);
		return;
	}
	randombytes_buf(fr->challenge, sizeof(fr->challenge));
	assert_true(relay_server_hello_build(hello, sizeof(hello), fr->pub, fr->challenge) > 0);
	assert_int_equal(conn_write(fr->c, hello, sizeof(hello)), 0);
}

static void fr_connection(uv_stream_t *l, int status)
{
	struct fake_relay *fr = l->data;
	struct conn *c;

	assert_int_equal(status, 0);
	if (fr->tls)
		assert_int_equal(tls_accept(fr->tls, l, &c), 0);
	else
		assert_int_equal(conn_plain_accept(l, &c), 0);
	http_server_add_conn(fr->srv, c);
}

static struct fake_relay *fr_start(int i, int use_tls, enum mode mode)
{
	struct fake_relay *fr = &E.fr[i];
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	fr->mode = mode;
	key_x25519_generate(fr->pub, fr->priv);
	if (use_tls)
		assert_int_equal(tls_config_server_new(E.cert, E.key, &fr->tls), 0);
	assert_int_equal(http_server_new(&E.loop, NULL, fr_handler, fr, &fr->srv), 0);
	assert_int_equal(conn_listen_tcp(&E.loop, "127.0.0.1:0", &fr->listener, fr_connection), 0);
	fr->listener.data = fr;
	assert_int_equal(uv_tcp_getsockname(&fr->listener, (struct sockaddr *)&ss, &len), 0);
	snprintf(fr->url, sizeof(fr->url), "%s://127.0.0.1:%u", use_tls ? "https" : "http",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	return fr;
}

static void fr_stop(struct fake_relay *fr)
{
	if (!fr->srv)
		return;
	if (fr->c)
		fr_close(fr);
	http_server_free(fr->srv);
	uv_close((uv_handle_t *)&fr->listener, NULL);
	tls_config_free(fr->tls);
	relay_reader_free(&fr->rd);
	fr->srv = NULL;
}

/* ---- the client ---- */

static struct client *client_of(struct relay_client *rc, void *arg)
{
	struct client *cl = arg;

	assert_ptr_equal(cl->rc, rc);
	return cl;
}

static void on_packet(struct relay_client *rc, const uint8_t src[KEY_LEN], const uint8_t *data,
		      size_t len, void *arg)
{
	struct client *cl = client_of(rc, arg);

	cl->packets++;
	memcpy(cl->last_src, src, KEY_LEN);
	cl->last_len = len;
	memcpy(cl->last_data, data, len < sizeof(cl->last_data) ? len : sizeof(cl->last_data));
	if (cl->stop_on_packet)
		relay_client_stop(rc);
}

static void on_peer_gone(struct relay_client *rc, const uint8_t key[KEY_LEN], int reason,
			 void *arg)
{
	struct client *cl = client_of(rc, arg);

	cl->gone++;
	cl->gone_reason = reason;
	memcpy(cl->gone_key, key, KEY_LEN);
}

static void on_state(struct relay_client *rc, enum relay_client_state st, int detail, void *arg)
{
	struct client *cl = client_of(rc, arg);

	assert_true(cl->n_states < MAX_SEEN);
	cl->states[cl->n_states] = st;
	cl->details[cl->n_states] = detail;
	cl->state_ms[cl->n_states] = uv_now(&E.loop);
	cl->n_states++;
	if (st == RELAY_CLIENT_CONNECTED)
		cl->connected++;
	if (st == RELAY_CLIENT_LOST) {
		cl->lost++;
		if (cl->stop_on_lost)
			relay_client_stop(rc);
	}
}

static const struct relay_client_cbs cbs = { on_packet, on_peer_gone, on_state };

static struct relay_client_opts opts_for(struct client *cl, const struct fake_relay *fr,
					 const char *pin)
{
	struct relay_client_opts o = {
		.url = fr->url, .pin = pin, .node_pub = cl->pub, .node_priv = cl->priv,
		.flags = RELAY_HELLO_PREFERRED, .backoff_min_ms = BACKOFF_MIN,
		.backoff_max_ms = BACKOFF_MAX,
	};

	return o;
}

static struct client *client_new(int i, const struct relay_client_opts *o)
{
	struct client *cl = &E.cl[i];

	assert_int_equal(relay_client_new(&E.loop, o, &cbs, cl, &cl->rc), 0);
	return cl;
}

/* A client of relay i, started. */
static struct client *client_start(int i, const char *pin)
{
	struct relay_client_opts o = opts_for(&E.cl[i], &E.fr[i], pin);
	struct client *cl = client_new(i, &o);

	assert_int_equal(relay_client_start(cl->rc), 0);
	return cl;
}

/* The n-th LOST's detail, or 0. */
static int lost_detail(const struct client *cl, int n)
{
	for (int i = 0; i < cl->n_states; i++)
		if (cl->states[i] == RELAY_CLIENT_LOST && n-- == 0)
			return cl->details[i];
	return 0;
}

static int setup(void **state)
{
	memset(&E, 0, sizeof(E));
	assert_int_equal(keys_init(), 0);
	assert_int_equal(uv_loop_init(&E.loop), 0);
	snprintf(E.dir, sizeof(E.dir), "/tmp/test_relay_client.XXXXXX");
	assert_non_null(mkdtemp(E.dir));
	snprintf(E.cert, sizeof(E.cert), "%s/cert.pem", E.dir);
	snprintf(E.key, sizeof(E.key), "%s/key.pem", E.dir);
	assert_int_equal(tls_selfsigned_create(E.cert, E.key, "localhost"), 0);
	assert_int_equal(tls_cert_pin(E.cert, E.pin), 0);
	for (int i = 0; i < N_RELAYS; i++)
		key_x25519_generate(E.cl[i].pub, E.cl[i].priv);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < N_RELAYS; i++) {
		relay_client_free(E.cl[i].rc);
		fr_stop(&E.fr[i]);
	}
	loop_finish(&E.loop);
	unlink(E.cert);
	unlink(E.key);
	rmdir(E.dir);
	return 0;
}

#define WAIT_FOR(cond) SUPPORT_WAIT_FOR(&E.loop, cond, DEADLINE_MS)

static void send_str(struct client *cl, const uint8_t dst[KEY_LEN], const char *s)
{
	assert_int_equal(relay_client_send(cl->rc, dst, s, strlen(s)), 0);
}

/* ---- cases ---- */

static void test_relay_client_echo(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_ECHO);
	struct client *cl = client_start(0, NULL);
	struct relay_client_stats st;
	static uint8_t big[RELAY_MAX_PACKET + 1];

	WAIT_FOR(cl->connected == 1);
	assert_int_equal(cl->states[0], RELAY_CLIENT_CONNECTING);
	assert_int_equal(fr->bad_request, 0);
	assert_int_equal(fr->fast_start, 0);
	/* The relay opened our hello: our key, our flags, this protocol's version. */
	assert_int_equal(fr->hellos, 1);
	assert_memory_equal(fr->client_key, cl->pub, KEY_LEN);
	assert_int_equal(fr->flags, RELAY_HELLO_PREFERRED);
	assert_int_equal(fr->version, RELAY_VERSION);
	assert_memory_equal(relay_client_relay_key(cl->rc), fr->pub, KEY_LEN);
	assert_true(relay_client_connected(cl->rc));

	send_str(cl, DST, "hello relay");
	WAIT_FOR(cl->packets == 1);
	assert_memory_equal(cl->last_src, SRC, KEY_LEN);
	assert_int_equal(cl->last_len, 11);
	assert_memory_equal(cl->last_data, "hello relay", 11);

	send_str(cl, DST, "gone");
	WAIT_FOR(cl->gone == 1);
	assert_memory_equal(cl->gone_key, DST, KEY_LEN);
	assert_int_equal(cl->gone_reason, RELAY_GONE_NOT_HERE);

	send_str(cl, DST, "ping");
	WAIT_FOR(fr->pongs == 1);
	assert_memory_equal(fr->pong, "pingdata", 8);

	assert_int_equal(relay_client_send(cl->rc, DST, big, sizeof(big)), -EMSGSIZE);
	relay_client_get_stats(cl->rc, &st);
	assert_int_equal(st.packets_sent, 3);
	assert_int_equal(st.bytes_sent, 11 + 4 + 4);
	assert_int_equal(st.packets_received, 1);
	assert_int_equal(st.bytes_received, 11);
	assert_int_equal(st.peer_gone, 1);
	assert_int_equal(st.connects, 1);
	assert_int_equal(st.losses, 0);
	assert_int_equal(cl->lost, 0);
}

static void test_relay_client_fast_start(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_ECHO);
	struct relay_client_opts o = opts_for(&E.cl[0], fr, NULL);
	struct client *cl;

	o.fast_start = 1;
	o.flags = 0;
	cl = client_new(0, &o);
	assert_int_equal(relay_client_start(cl->rc), 0);
	WAIT_FOR(cl->connected == 1);
	assert_int_equal(fr->fast_start, 1);
	assert_int_equal(fr->flags, 0);
	send_str(cl, DST, "fast");
	WAIT_FOR(cl->packets == 1);
}

static void test_relay_client_tls_pin(void **state)
{
	struct fake_relay *fr = fr_start(0, 1, M_ECHO);
	struct client *cl = client_start(0, E.pin);

	assert_int_equal(strncmp(fr->url, "https://", 8), 0);
	WAIT_FOR(cl->connected == 1);
	send_str(cl, DST, "over tls");
	WAIT_FOR(cl->packets == 1);
	assert_memory_equal(cl->last_data, "over tls", 8);
}

static void test_relay_client_wrong_pin(void **state)
{
	char pin[TLS_PIN_LEN];
	struct client *cl;

	fr_start(0, 1, M_ECHO);
	snprintf(pin, sizeof(pin), "%s", E.pin);
	pin[7] = pin[7] == '0' ? '1' : '0';
	cl = client_start(0, pin);
	WAIT_FOR(cl->lost >= 2);   /* refused, and retried */
	assert_int_equal(lost_detail(cl, 0), -EPERM);
	assert_int_equal(lost_detail(cl, 1), -EPERM);
	assert_int_equal(cl->connected, 0);
	assert_int_equal(E.fr[0].hellos, 0);
}

static void test_relay_client_refused(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_REFUSE);
	struct client *cl = client_start(0, NULL);

	WAIT_FOR(cl->lost >= 2);   /* refused, and retried */
	assert_int_equal(lost_detail(cl, 0), -EACCES);
	assert_int_equal(lost_detail(cl, 1), -EACCES);
	assert_int_equal(cl->connected, 0);
	assert_true(fr->hellos >= 2);
	assert_int_equal(relay_client_send(cl->rc, DST, "x", 1), -ENOTCONN);
}

static void test_relay_client_forbidden(void **state)
{
	struct client *cl;

	fr_start(0, 0, M_FORBID);
	cl = client_start(0, NULL);
	WAIT_FOR(cl->lost >= 1);
	assert_int_equal(lost_detail(cl, 0), -EACCES);
}

/* Closed before admission: nothing whole came, so each retry waits twice as long. */
static void test_relay_client_backoff(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_HANGUP);
	struct relay_client_opts o = opts_for(&E.cl[0], fr, NULL);
	struct client *cl;
	uint64_t gap1, gap2;

	/* Long enough that the jitter ranges (150..250, 300..500 ms) stay apart on a busy
	 * machine. */
	o.backoff_min_ms = 200;
	o.backoff_max_ms = 800;
	cl = client_new(0, &o);
	assert_int_equal(relay_client_start(cl->rc), 0);
	WAIT_FOR(fr->requests >= 3);
	gap1 = fr->request_ms[1] - fr->request_ms[0];
	gap2 = fr->request_ms[2] - fr->request_ms[1];
	assert_true(gap1 >= 150);
	assert_true(gap2 > gap1);
	assert_true(gap2 >= 300);
	assert_true(cl->lost >= 2);
	assert_int_equal(cl->connected, 0);

	/* Once admitted the backoff starts over: a close after it is retried soon. */
	fr->mode = M_CLOSE;
	WAIT_FOR(cl->connected >= 2);
	assert_true(cl->lost >= 3);
}

static void test_relay_client_restarting(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_RESTART);
	struct relay_client_opts o = opts_for(&E.cl[0], fr, NULL);
	struct client *cl;
	uint64_t gap;

	/* Our own backoff would wait 2 s at least: the relay's 100 ms is taken instead. */
	o.backoff_min_ms = 4000;
	o.backoff_max_ms = 8000;
	fr->restart_in_ms = 100;
	cl = client_new(0, &o);
	assert_int_equal(relay_client_start(cl->rc), 0);
	WAIT_FOR(cl->lost == 1);
	assert_int_equal(cl->connected, 1);
	assert_int_equal(lost_detail(cl, 0), -ECONNRESET);
	fr->mode = M_ECHO;
	WAIT_FOR(cl->connected == 2);
	gap = fr->request_ms[1] - fr->request_ms[0];
	assert_true(gap >= 100);
	assert_true(gap < 2000);
}

static void test_relay_client_silence(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_SILENT);
	struct relay_client_opts o = opts_for(&E.cl[0], fr, NULL);
	struct client *cl;
	uint64_t up_ms = 0, lost_ms = 0;

	o.timeout_ms = 300;
	cl = client_new(0, &o);
	assert_int_equal(relay_client_start(cl->rc), 0);
	WAIT_FOR(cl->lost == 1);
	for (int i = 0; i < cl->n_states; i++) {
		if (cl->states[i] == RELAY_CLIENT_CONNECTED && !up_ms)
			up_ms = cl->state_ms[i];
		if (cl->states[i] == RELAY_CLIENT_LOST && !lost_ms)
			lost_ms = cl->state_ms[i];
	}
	assert_int_equal(lost_detail(cl, 0), -ETIMEDOUT);
	assert_true(up_ms > 0);
	assert_true(lost_ms - up_ms >= 250);
	/* Keepalives every third of the timeout while we had nothing to send. */
	assert_true(fr->keepalives >= 1);
}

static void test_relay_client_not_connected(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_ECHO);
	struct relay_client_opts o = opts_for(&E.cl[0], fr, NULL);
	struct client *cl = client_new(0, &o);

	assert_int_equal(relay_client_send(cl->rc, DST, "x", 1), -ENOTCONN);
	assert_int_equal(relay_client_start(cl->rc), 0);
	assert_int_equal(relay_client_send(cl->rc, DST, "x", 1), -ENOTCONN);
	assert_false(relay_client_connected(cl->rc));
	assert_int_equal(relay_client_pending(cl->rc), 0);
	WAIT_FOR(cl->connected == 1);
	send_str(cl, DST, "x");
	relay_client_stop(cl->rc);
	assert_int_equal(relay_client_send(cl->rc, DST, "x", 1), -ENOTCONN);
}

static void test_relay_client_enobufs(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_NOREAD);
	struct relay_client_opts o = opts_for(&E.cl[0], fr, NULL);
	struct relay_client_stats st;
	static uint8_t pkt[1280];
	struct client *cl;
	int rc = 0, sent = 0;

	o.max_pending = 64 * 1024;
	cl = client_new(0, &o);
	assert_int_equal(relay_client_start(cl->rc), 0);
	WAIT_FOR(cl->connected == 1);
	/* The kernel takes what its buffers hold, then the queue grows to the bound. */
	for (int i = 0; i < 200000 && rc == 0; i++) {
		rc = relay_client_send(cl->rc, DST, pkt, sizeof(pkt));
		sent += rc == 0;
		if (i % 64 == 0)
			uv_run(&E.loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(rc, -ENOBUFS);
	assert_true(relay_client_pending(cl->rc) > o.max_pending);
	relay_client_get_stats(cl->rc, &st);
	assert_int_equal(st.packets_dropped, 1);
	assert_int_equal(st.packets_sent, (uint64_t)sent);
	assert_int_equal(relay_client_send(cl->rc, DST, pkt, sizeof(pkt)), -ENOBUFS);
}

static void test_relay_client_stop_in_callback(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_ECHO);
	struct client *cl = client_start(0, NULL);
	int n;

	WAIT_FOR(cl->connected == 1);
	cl->stop_on_packet = 1;
	send_str(cl, DST, "twice");   /* two echoes in one read */
	WAIT_FOR(cl->packets == 1);
	n = cl->n_states;
	support_run_for(&E.loop, 200);
	assert_int_equal(cl->packets, 1);
	assert_int_equal(cl->n_states, n);   /* no LOST after a stop */
	assert_false(relay_client_connected(cl->rc));

	/* And it starts again. */
	cl->stop_on_packet = 0;
	assert_int_equal(relay_client_start(cl->rc), 0);
	WAIT_FOR(cl->connected == 2);

	/* A stop from the LOST callback ends the retries. */
	fr->mode = M_REFUSE;
	cl->stop_on_lost = 1;
	fr_close(fr);
	WAIT_FOR(cl->lost == 1);
	n = fr->requests;
	support_run_for(&E.loop, 3 * BACKOFF_MIN);
	assert_int_equal(fr->requests, n);
	assert_int_equal(cl->lost, 1);
}

static void test_relay_client_garbage(void **state)
{
	struct fake_relay *fr = fr_start(0, 0, M_GARBAGE);
	struct client *cl = client_start(0, NULL);

	WAIT_FOR(cl->lost >= 1);
	assert_int_equal(lost_detail(cl, 0), -EPROTO);
	assert_int_equal(cl->packets, 0);
	fr->mode = M_ECHO;
	WAIT_FOR(cl->connected >= 2);   /* retried */
}

static void test_relay_client_two_relays(void **state)
{
	struct fake_relay *a = fr_start(0, 0, M_ECHO), *b = fr_start(1, 1, M_ECHO);
	struct client *ca = client_start(0, NULL), *cb = client_start(1, E.pin);

	WAIT_FOR(ca->connected == 1 && cb->connected == 1);
	assert_memory_equal(a->client_key, ca->pub, KEY_LEN);
	assert_memory_equal(b->client_key, cb->pub, KEY_LEN);
	assert_memory_not_equal(relay_client_relay_key(ca->rc), relay_client_relay_key(cb->rc),
				KEY_LEN);
	send_str(ca, DST, "to a");
	send_str(cb, DST, "to b");
	WAIT_FOR(ca->packets == 1 && cb->packets == 1);
	assert_memory_equal(ca->last_data, "to a", 4);
	assert_memory_equal(cb->last_data, "to b", 4);
	/* One relay going away leaves the other alone. */
	fr_stop(a);
	WAIT_FOR(ca->lost >= 1);
	send_str(cb, DST, "still");
	WAIT_FOR(cb->packets == 2);
	assert_int_equal(cb->lost, 0);
}

static void test_relay_client_bad_opts(void **state)
{
	struct relay_client_opts o = {
		.url = "ftp://x", .node_pub = E.cl[0].pub, .node_priv = E.cl[0].priv,
	};
	struct relay_client *rc = (void *)1;

	assert_int_equal(relay_client_new(&E.loop, &o, &cbs, NULL, &rc), -EINVAL);
	assert_null(rc);
	o.url = "unix:/run/relay.sock";
	assert_int_equal(relay_client_new(&E.loop, &o, &cbs, NULL, &rc), -EINVAL);
	o.url = "https://relay.example.net";
	o.pin = "sha256:nothex";
	assert_int_equal(relay_client_new(&E.loop, &o, &cbs, NULL, &rc), -EINVAL);
	o.pin = E.pin;
	o.node_priv = NULL;
	assert_int_equal(relay_client_new(&E.loop, &o, &cbs, NULL, &rc), -EINVAL);
	o.node_priv = E.cl[0].priv;
	assert_int_equal(relay_client_new(&E.loop, &o, &cbs, NULL, &rc), 0);
	relay_client_free(rc);
	relay_client_free(NULL);
}

static void test_relay_client_backoff_next(void **state)
{
	uint64_t cur = 100, d;

	for (int i = 0; i < 50; i++) {
		uint64_t before = cur;

		d = backoff_next(&cur, 1000);
		assert_true(d >= before * 3 / 4 && d <= before * 5 / 4);
	}
	assert_int_equal(cur, 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_relay_client_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_fast_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_tls_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_wrong_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_forbidden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_restarting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_silence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_not_connected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_enobufs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_stop_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_two_relays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_bad_opts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_client_backoff_next, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
