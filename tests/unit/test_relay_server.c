/* test_relay_server.c - the relay's core (relay/server.c, client.c, forward.c, admission.c)
 * in-process on loopback, with admission fed directly and raw clients made of lib/conn and
 * lib/relay_frame: hello, refusals, forwarding, peer-gone, replacement, bad frames, slow
 * readers, keepalives and timeouts, graceful stop, TLS, the admission stream's lines and
 * its saved copy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "relay.h"
#include "support.h"

#define DEADLINE_MS 10000
#define MAX_TC 8

static char dir[256], cert[300], keyfile[300], pin[TLS_PIN_LEN];

/* -- a raw client -- */

struct tc {
	struct conn *c;
	uint8_t pub[KEY_LEN], priv[KEY_LEN];
	const uint8_t *claim;          /* the key its hello names (forgery: another's) */
	const uint8_t *replay;         /* a captured hello frame to send instead of its own */
	int no_hello;                  /* reads the server hello, answers nothing */
	int connected, upgraded, ended;
	char head[1024];
	size_t hlen;
	struct relay_reader rd;
	uint8_t hello[RELAY_HDR_LEN + RELAY_CLIENT_HELLO_LEN];   /* what it sent */
	int n[16];                     /* frames received, by type */
	uint8_t gone_key[KEY_LEN], gone_reason;
	uint8_t last_src[KEY_LEN];
	uint8_t last_data[2048];
	size_t last_len, recv_bytes;
	uint8_t pong[8];
	uint8_t restart[8];
};

static struct env {
	uv_loop_t loop;
	struct relay_server srv;
	uint8_t pub[KEY_LEN], priv[KEY_LEN];
	uint16_t port, tls_port;
	struct tc tcs[MAX_TC];
	struct tls_config *client_tls;
	int stopped;
} E;

static int on_tc_frame(const struct relay_frame *f, void *arg)
{
	struct tc *t = arg;
	uint8_t relay_pub[KEY_LEN], challenge[RELAY_CHALLENGE_LEN];
	const uint8_t *key, *data;
	size_t len;

	assert_int_equal(relay_frame_check(f), 0);
	t->n[f->type & 15]++;
	switch (f->type) {
	case RELAY_SERVER_HELLO:
		assert_int_equal(relay_server_hello_parse(f, relay_pub, challenge), 0);
		assert_memory_equal(relay_pub, E.pub, KEY_LEN);
		if (t->no_hello)
			break;
		if (t->replay) {
			conn_write(t->c, t->replay, sizeof(t->hello));
			break;
		}
		/* a forged hello names another key but can only box with its own */
		assert_true(relay_client_hello_build(t->hello, sizeof(t->hello),
			    t->claim ? t->claim : t->pub, t->priv, relay_pub, challenge, 0) > 0);
		conn_write(t->c, t->hello, sizeof(t->hello));
		break;
	case RELAY_PEER_GONE:
		memcpy(t->gone_key, f->payload, KEY_LEN);
		t->gone_reason = f->payload[KEY_LEN];
		break;
	case RELAY_RECV_PACKET:
		relay_packet_parse(f, &key, &data, &len);
		memcpy(t->last_src, key, KEY_LEN);
		t->last_len = len;
		memcpy(t->last_data, data, len < sizeof(t->last_data) ? len : sizeof(t->last_data));
		t->recv_bytes += len;
		break;
	case RELAY_PONG:
		memcpy(t->pong, f->payload, 8);
		break;
	case RELAY_RESTARTING:
		memcpy(t->restart, f->payload, 8);
		break;
	}
	return 0;
}

static void tc_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct tc *t = arg;
	char *end;

	if (!t->upgraded) {
		size_t take = len < sizeof(t->head) - 1 - t->hlen ? len : sizeof(t->head) - 1 - t->hlen;

		memcpy(t->head + t->hlen, buf, take);
		t->hlen += take;
		t->head[t->hlen] = 0;
		end = strstr(t->head, "\r\n\r\n");
		if (!end)
			return;
		assert_memory_equal(t->head, "HTTP/1.1 101 ", 13);
		t->upgraded = 1;
		/* what came after the headers is the relay protocol's */
		size_t used = (size_t)(end + 4 - t->head) - (t->hlen - take);
		buf += used;
		len -= used;
	}
	assert_int_equal(relay_reader_feed(&t->rd, buf, len, on_tc_frame, t), 0);
}

static void tc_end(struct conn *c, int status, void *arg)
{
	struct tc *t = arg;

	t->ended = 1;
	conn_close(c);
	t->c = NULL;
}

static void tc_connected(struct conn *c, int status, void *arg)
{
	static const char req[] = "GET /relay HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade\r\n"
				  "Upgrade: meshvpn-relay\r\n" RELAY_FAST_START ": 1\r\n\r\n";
	struct tc *t = arg;

	assert_int_equal(status, 0);
	t->c = c;
	t->connected = 1;
	conn_set_callbacks(c, tc_read, tc_end, t);
	assert_int_equal(conn_write(c, req, sizeof(req) - 1), 0);
}

/* A client in slot i with a fresh key (or the key of slot same, when >= 0). */
static struct tc *tc_new(int i, int same)
{
	struct tc *t = &E.tcs[i];

	memset(t, 0, sizeof(*t));
	if (same >= 0) {
		memcpy(t->pub, E.tcs[same].pub, KEY_LEN);
		memcpy(t->priv, E.tcs[same].priv, KEY_LEN);
	} else {
		crypto_box_keypair(t->pub, t->priv);
	}
	return t;
}

static void tc_start(struct tc *t, int tls)
{
	if (tls)
		assert_int_equal(tls_connect(&E.loop, E.client_tls, "127.0.0.1", E.tls_port,
					     tc_connected, t, NULL), 0);
	else
		assert_int_equal(conn_tcp_connect(&E.loop, "127.0.0.1", E.port, tc_connected, t,
						  NULL), 0);
}

/* Connects and waits for SERVER_INFO. */
static struct tc *tc_admitted(int i, int same)
{
	struct tc *t = tc_new(i, same);

	assert_int_equal(relay_admit_add(&E.srv, t->pub), 0);
	tc_start(t, 0);
	SUPPORT_WAIT_FOR(&E.loop, t->n[RELAY_SERVER_INFO] || t->ended, DEADLINE_MS);
	assert_int_equal(t->n[RELAY_SERVER_INFO], 1);
	assert_false(t->ended);
	return t;
}

static void tc_frame(struct tc *t, uint8_t type, const void *p, uint32_t len)
{
	uint8_t buf[RELAY_HDR_LEN + 256];

	assert_true(relay_frame_build(buf, sizeof(buf), type, p, len) > 0);
	assert_int_equal(conn_write(t->c, buf, RELAY_HDR_LEN + len), 0);
}

static void tc_send(struct tc *t, const uint8_t dst[KEY_LEN], const void *data, size_t len)
{
	uint8_t hdr[RELAY_HDR_LEN + KEY_LEN];

	assert_int_equal(relay_packet_header(hdr, RELAY_SEND_PACKET, dst, len), 0);
	assert_int_equal(conn_write(t->c, hdr, sizeof(hdr)), 0);
	assert_int_equal(conn_write(t->c, data, len), 0);
}

/* -- the environment -- */

static void env_start(const struct relay_opts *o)
{
	struct tls_config *tls;

	memset(&E, 0, sizeof(E));
	assert_int_equal(uv_loop_init(&E.loop), 0);
	crypto_box_keypair(E.pub, E.priv);
	assert_int_equal(relay_server_init(&E.srv, &E.loop, o, E.pub, E.priv), 0);
	assert_int_equal(relay_server_listen_plain(&E.srv, "127.0.0.1:0"), 0);
	assert_int_equal(tls_config_server_new(cert, keyfile, &tls), 0);
	assert_int_equal(relay_server_listen_tls(&E.srv, "127.0.0.1:0", tls), 0);
	E.port = relay_server_port(&E.srv, 0);
	E.tls_port = relay_server_port(&E.srv, 1);
	assert_true(E.port && E.tls_port);
	assert_int_equal(tls_config_client_new(NULL, pin, &E.client_tls), 0);
	/* an empty full list: admission ready, nobody in it */
	assert_int_equal(relay_admit_set(&E.srv, NULL, 0), 0);
}

static void env_stop(void)
{
	if (!E.stopped)
		relay_server_stop(&E.srv, 0);
	for (int i = 0; i < MAX_TC; i++) {
		if (E.tcs[i].c)
			conn_close(E.tcs[i].c);
		E.tcs[i].c = NULL;
		relay_reader_free(&E.tcs[i].rd);
	}
	tls_config_free(E.client_tls);
	support_run_for(&E.loop, 50);
	relay_server_close(&E.srv);
	loop_finish(&E.loop);
}

static struct relay_opts short_opts(void)
{
	struct relay_opts o;

	relay_opts_default(&o);
	o.keepalive_ms = 100;
	o.timeout_ms = 400;
	o.hello_timeout_ms = 300;
	return o;
}

/* -- tests -- */

static void test_hello_admitted(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1);

	assert_int_equal(E.srv.n_active, 1);
	assert_int_equal(E.srv.stats.accepted, 1);
	assert_ptr_equal(keymap_get(&E.srv.by_key, a->pub), E.srv.clients);
	/* PING -> PONG */
	tc_frame(a, RELAY_PING, "12345678", 8);
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_PONG], DEADLINE_MS);
	assert_memory_equal(a->pong, "12345678", 8);
	env_stop();
}

static void test_hello_refused(void **state)
{
	env_start(NULL);
	struct tc *victim = tc_admitted(0, -1);
	struct tc *u = tc_new(1, -1), *f = tc_new(2, -1), *r = tc_new(3, -1);

	/* unknown key: told so, closed */
	tc_start(u, 0);
	SUPPORT_WAIT_FOR(&E.loop, u->ended, DEADLINE_MS);
	assert_int_equal(u->n[RELAY_PEER_GONE], 1);
	assert_memory_equal(u->gone_key, u->pub, KEY_LEN);
	assert_int_equal(u->gone_reason, RELAY_GONE_NOT_ADMITTED);
	assert_int_equal(u->n[RELAY_SERVER_INFO], 0);
	assert_int_equal(E.srv.stats.refused[REFUSE_NOT_ADMITTED], 1);
	/* forged: names the admitted victim's key, boxes with its own */
	f->claim = victim->pub;
	tc_start(f, 0);
	SUPPORT_WAIT_FOR(&E.loop, f->ended, DEADLINE_MS);
	assert_int_equal(f->n[RELAY_SERVER_INFO], 0);
	assert_int_equal(E.srv.stats.refused[REFUSE_BAD_HELLO], 1);
	/* replayed: the victim's captured hello, on a new connection (a new challenge) */
	r->replay = victim->hello;
	tc_start(r, 0);
	SUPPORT_WAIT_FOR(&E.loop, r->ended, DEADLINE_MS);
	assert_int_equal(r->n[RELAY_SERVER_INFO], 0);
	assert_int_equal(E.srv.stats.refused[REFUSE_BAD_HELLO], 2);
	/* the victim never noticed */
	assert_false(victim->ended);
	assert_ptr_not_equal(keymap_get(&E.srv.by_key, victim->pub), NULL);
	env_stop();
}

static void test_not_ready_fails_closed(void **state)
{
	env_start(NULL);
	struct tc *t = tc_new(0, -1);

	relay_admit_free(&E.srv);   /* as before coord's first full list */
	assert_int_equal(relay_admit_add(&E.srv, t->pub), 0);
	tc_start(t, 0);
	SUPPORT_WAIT_FOR(&E.loop, t->ended, DEADLINE_MS);
	assert_int_equal(t->n[RELAY_SERVER_INFO], 0);
	assert_int_equal(E.srv.stats.refused[REFUSE_NOT_ADMITTED], 1);
	env_stop();
}

static void test_send_before_hello(void **state)
{
	env_start(NULL);
	struct tc *t = tc_new(0, -1);
	uint8_t dst[KEY_LEN] = { 1 };

	assert_int_equal(relay_admit_add(&E.srv, t->pub), 0);
	t->no_hello = 1;
	tc_start(t, 0);
	SUPPORT_WAIT_FOR(&E.loop, t->n[RELAY_SERVER_HELLO], DEADLINE_MS);
	tc_send(t, dst, "x", 1);
	SUPPORT_WAIT_FOR(&E.loop, t->ended, DEADLINE_MS);
	assert_int_equal(E.srv.stats.refused[REFUSE_PROTOCOL], 1);
	assert_int_equal(E.srv.stats.packets, 0);
	env_stop();
}

static void test_exchange(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1), *b = tc_admitted(1, -1);

	tc_send(a, b->pub, "hello b", 7);
	SUPPORT_WAIT_FOR(&E.loop, b->n[RELAY_RECV_PACKET], DEADLINE_MS);
	assert_memory_equal(b->last_src, a->pub, KEY_LEN);
	assert_int_equal(b->last_len, 7);
	assert_memory_equal(b->last_data, "hello b", 7);
	tc_send(b, a->pub, "and back", 8);
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_RECV_PACKET], DEADLINE_MS);
	assert_memory_equal(a->last_src, b->pub, KEY_LEN);
	assert_memory_equal(a->last_data, "and back", 8);
	/* an empty packet and a full-size one */
	static uint8_t big[RELAY_MAX_PACKET];
	memset(big, 0xab, sizeof(big));
	tc_send(a, b->pub, "", 0);
	tc_send(a, b->pub, big, sizeof(big));
	SUPPORT_WAIT_FOR(&E.loop, b->n[RELAY_RECV_PACKET] == 3, DEADLINE_MS);
	assert_int_equal(b->last_len, RELAY_MAX_PACKET);
	assert_int_equal(E.srv.stats.packets, 4);
	assert_int_equal(E.srv.stats.bytes, 15 + RELAY_MAX_PACKET);
	env_stop();
}

static void test_absent_destination(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1);
	uint8_t nobody[KEY_LEN], other[KEY_LEN];

	randombytes_buf(nobody, sizeof(nobody));
	randombytes_buf(other, sizeof(other));
	tc_send(a, nobody, "?", 1);
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_PEER_GONE], DEADLINE_MS);
	assert_memory_equal(a->gone_key, nobody, KEY_LEN);
	assert_int_equal(a->gone_reason, RELAY_GONE_NOT_HERE);
	/* more to the same absent key within the second: counted, not answered */
	for (int i = 0; i < 20; i++)
		tc_send(a, nobody, "?", 1);
	tc_send(a, other, "?", 1);
	SUPPORT_WAIT_FOR(&E.loop, E.srv.stats.drops[DROP_UNKNOWN_DST] == 22, DEADLINE_MS);
	support_run_for(&E.loop, 50);
	assert_int_equal(a->n[RELAY_PEER_GONE], 2);
	assert_memory_equal(a->gone_key, other, KEY_LEN);
	assert_false(a->ended);
	env_stop();
}

static void test_remove_disconnects(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1), *b = tc_admitted(1, -1), *c = tc_admitted(2, -1);
	uint8_t keep[2][KEY_LEN];

	relay_admit_remove(&E.srv, a->pub);
	/* at once: the close is queued before this returns */
	assert_null(keymap_get(&E.srv.by_key, a->pub));
	SUPPORT_WAIT_FOR(&E.loop, a->ended, 1000);
	assert_int_equal(a->gone_reason, RELAY_GONE_NOT_ADMITTED);
	assert_int_equal(E.srv.stats.closed[CLOSE_NOT_ADMITTED], 1);
	/* a full list without b drops b, keeps c */
	memcpy(keep[0], c->pub, KEY_LEN);
	memcpy(keep[1], a->pub, KEY_LEN);
	assert_int_equal(relay_admit_set(&E.srv, (const uint8_t (*)[KEY_LEN])keep, 2), 0);
	SUPPORT_WAIT_FOR(&E.loop, b->ended, 1000);
	assert_false(c->ended);
	assert_int_equal(E.srv.n_active, 1);
	env_stop();
}

static void test_same_key_replaces(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1), *a2, *b = tc_admitted(2, -1);

	a2 = tc_admitted(1, 0);
	SUPPORT_WAIT_FOR(&E.loop, a->ended, DEADLINE_MS);
	assert_int_equal(E.srv.stats.closed[CLOSE_REPLACED], 1);
	assert_int_equal(E.srv.n_active, 2);
	tc_send(b, a2->pub, "to the new one", 14);
	SUPPORT_WAIT_FOR(&E.loop, a2->n[RELAY_RECV_PACKET], DEADLINE_MS);
	assert_int_equal(a->n[RELAY_RECV_PACKET], 0);
	env_stop();
}

static void test_bad_frames_close_one(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1), *b = tc_admitted(1, -1);
	struct tc *o = tc_admitted(2, -1), *u = tc_admitted(3, -1), *h = tc_admitted(4, -1);
	struct tc *s = tc_admitted(5, -1);
	uint8_t hdr[RELAY_HDR_LEN];

	relay_frame_header(hdr, RELAY_SEND_PACKET, RELAY_MAX_PAYLOAD + 1);   /* oversize */
	assert_int_equal(conn_write(o->c, hdr, sizeof(hdr)), 0);
	tc_frame(u, 0x7f, "", 0);                                            /* unknown type */
	tc_frame(h, RELAY_CLIENT_HELLO, h->hello + RELAY_HDR_LEN, RELAY_CLIENT_HELLO_LEN);
	tc_frame(s, RELAY_SEND_PACKET, "short", 5);                          /* bad shape */
	SUPPORT_WAIT_FOR(&E.loop, o->ended && u->ended && h->ended && s->ended, DEADLINE_MS);
	assert_int_equal(E.srv.stats.closed[CLOSE_OVERSIZE], 1);
	assert_int_equal(E.srv.stats.closed[CLOSE_PROTOCOL], 3);
	/* the others keep working */
	tc_send(a, b->pub, "still here", 10);
	SUPPORT_WAIT_FOR(&E.loop, b->n[RELAY_RECV_PACKET], DEADLINE_MS);
	assert_false(a->ended || b->ended);
	assert_int_equal(E.srv.n_active, 2);
	env_stop();
}

static void test_slow_reader(void **state)
{
	struct relay_opts o;

	relay_opts_default(&o);
	o.queue_max = 64 * 1024;
	env_start(&o);
	struct tc *a = tc_admitted(0, -1), *b = tc_admitted(1, -1), *c = tc_admitted(2, -1);
	static uint8_t pkt[1280];
	struct relay_client *rb = keymap_get(&E.srv.by_key, b->pub);
	size_t max_pending = 0;
	int sent = 0;

	conn_read_stop(b->c);   /* b stops reading */
	memset(pkt, 0x5a, sizeof(pkt));
	struct support_deadline d;
	support_deadline_start(&E.loop, &d, DEADLINE_MS);
	while (!E.srv.stats.drops[DROP_QUEUE_FULL] && !d.hit) {
		/* keep a's own queue short, so the relay sees a steady stream */
		while (conn_pending(a->c) < 256 * 1024 && sent < 40000) {
			tc_send(a, b->pub, pkt, sizeof(pkt));
			sent++;
		}
		uv_run(&E.loop, UV_RUN_ONCE);
		if (conn_pending(rb->c) > max_pending)
			max_pending = conn_pending(rb->c);
	}
	support_deadline_end(&d);
	assert_true(E.srv.stats.drops[DROP_QUEUE_FULL] > 0);
	assert_true(max_pending <= o.queue_max + RELAY_HDR_LEN + RELAY_MAX_PAYLOAD);
	/* meanwhile c is served: a packet from c to a goes through */
	tc_send(c, a->pub, "fair", 4);
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_RECV_PACKET], DEADLINE_MS);
	assert_true(conn_pending(rb->c) <= o.queue_max + RELAY_HDR_LEN + RELAY_MAX_PAYLOAD);
	print_message("slow reader: sent %d, forwarded %llu, dropped %llu, pauses %llu, max queued %zu\n",
		      sent, (unsigned long long)E.srv.stats.packets,
		      (unsigned long long)E.srv.stats.drops[DROP_QUEUE_FULL],
		      (unsigned long long)E.srv.stats.pauses, max_pending);
	env_stop();
}

static void test_keepalive_timeout(void **state)
{
	struct relay_opts o = short_opts();

	env_start(&o);
	struct tc *a = tc_admitted(0, -1), *h = tc_new(1, -1);

	/* a says nothing: it gets keepalives, then is closed for its silence */
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_KEEPALIVE] >= 2, DEADLINE_MS);
	SUPPORT_WAIT_FOR(&E.loop, a->ended, DEADLINE_MS);
	assert_int_equal(E.srv.stats.closed[CLOSE_TIMEOUT], 1);
	/* one that never answers the hello is refused for it */
	h->no_hello = 1;
	assert_int_equal(relay_admit_add(&E.srv, h->pub), 0);
	tc_start(h, 0);
	SUPPORT_WAIT_FOR(&E.loop, h->ended, DEADLINE_MS);
	assert_int_equal(E.srv.stats.refused[REFUSE_TIMEOUT], 1);
	env_stop();
}

static void test_keepalive_keeps(void **state)
{
	struct relay_opts o = short_opts();

	env_start(&o);
	struct tc *a = tc_admitted(0, -1);

	/* a client that keeps alive stays */
	for (int i = 0; i < 10; i++) {
		tc_frame(a, RELAY_KEEPALIVE, "", 0);
		support_run_for(&E.loop, 100);
	}
	assert_false(a->ended);
	env_stop();
}

static void test_graceful_stop(void **state)
{
	env_start(NULL);
	struct tc *a = tc_admitted(0, -1), *b = tc_admitted(1, -1);
	const uint8_t want[8] = { 0, 0, 0x03, 0xe8, 0, 0, 0x75, 0x30 };

	relay_server_stop(&E.srv, 1);
	E.stopped = 1;
	SUPPORT_WAIT_FOR(&E.loop, a->ended && b->ended, DEADLINE_MS);
	assert_int_equal(a->n[RELAY_RESTARTING], 1);
	assert_memory_equal(a->restart, want, 8);
	assert_int_equal(b->n[RELAY_RESTARTING], 1);
	assert_int_equal(E.srv.stats.closed[CLOSE_STOPPING], 2);
	env_stop();
}

static void test_tls(void **state)
{
	env_start(NULL);
	struct tc *a = tc_new(0, -1), *b = tc_admitted(1, -1);

	assert_int_equal(relay_admit_add(&E.srv, a->pub), 0);
	tc_start(a, 1);
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_SERVER_INFO] || a->ended, DEADLINE_MS);
	assert_int_equal(a->n[RELAY_SERVER_INFO], 1);
	tc_send(a, b->pub, "over tls", 8);
	SUPPORT_WAIT_FOR(&E.loop, b->n[RELAY_RECV_PACKET], DEADLINE_MS);
	tc_send(b, a->pub, "to tls", 6);
	SUPPORT_WAIT_FOR(&E.loop, a->n[RELAY_RECV_PACKET], DEADLINE_MS);
	assert_memory_equal(a->last_data, "to tls", 6);
	env_stop();
}

static void test_admission_lines(void **state)
{
	env_start(NULL);
	struct relay_admission adm;
	struct tc *a = tc_admitted(0, -1);
	uint8_t k1[KEY_LEN], k2[KEY_LEN];
	char b1[KEY_B64_LEN], b2[KEY_B64_LEN], ba[KEY_B64_LEN], line[512];

	randombytes_buf(k1, sizeof(k1));
	randombytes_buf(k2, sizeof(k2));
	key_to_base64(k1, b1);
	key_to_base64(k2, b2);
	key_to_base64(a->pub, ba);
	unlink(strcat(strcpy(line, dir), "/admitted"));
	assert_int_equal(relay_admission_init(&adm, &E.srv, dir), 0);
	snprintf(line, sizeof(line), "{\"type\":\"full\",\"nodes\":[\"%s\",\"%s\",\"%s\"]}", b1, b2, ba);
	assert_int_equal(relay_admission_line(&adm, line, strlen(line)), 0);
	assert_true(relay_admitted(&E.srv, k1) && relay_admitted(&E.srv, a->pub));
	assert_int_equal(keymap_count(&E.srv.admitted), 3);
	snprintf(line, sizeof(line), "{\"type\":\"remove\",\"node_key\":\"%s\"}", ba);
	assert_int_equal(relay_admission_line(&adm, line, strlen(line)), 0);
	SUPPORT_WAIT_FOR(&E.loop, a->ended, 1000);
	snprintf(line, sizeof(line), "{\"type\":\"add\",\"node_key\":\"%s\"}", ba);
	assert_int_equal(relay_admission_line(&adm, line, strlen(line)), 0);
	assert_true(relay_admitted(&E.srv, a->pub));
	assert_int_equal(relay_admission_line(&adm, "{\"type\":\"keepalive\"}", 20), 0);
	assert_int_equal(relay_admission_line(&adm, "{\"type\":\"add\"}", 14), -EBADMSG);
	assert_int_equal(relay_admission_line(&adm, "{\"type\":\"full\",\"nodes\":[1]}", 27), -EBADMSG);
	assert_int_equal(relay_admission_line(&adm, "not json", 8), -EBADMSG);
	/* the saved copy is the last full list: a restart serves it */
	relay_admit_free(&E.srv);
	assert_false(relay_admitted(&E.srv, k1));
	assert_int_equal(relay_admission_load(&adm), 0);
	assert_true(relay_admitted(&E.srv, k1) && relay_admitted(&E.srv, k2));
	assert_int_equal(keymap_count(&E.srv.admitted), 3);
	/* a corrupt copy is refused */
	snprintf(line, sizeof(line), "%s/admitted", dir);
	FILE *f = fopen(line, "a");
	fputs("garbage\n", f);
	fclose(f);
	assert_int_equal(relay_admission_load(&adm), -EINVAL);
	unlink(line);
	/* a change is saved too (by close at the latest): a removed key stays removed */
	snprintf(line, sizeof(line), "{\"type\":\"remove\",\"node_key\":\"%s\"}", b2);
	assert_int_equal(relay_admission_line(&adm, line, strlen(line)), 0);
	relay_admission_close(&adm);
	relay_admit_free(&E.srv);
	assert_int_equal(relay_admission_load(&adm), 0);
	assert_true(relay_admitted(&E.srv, k1));
	assert_false(relay_admitted(&E.srv, k2));
	env_stop();
}

static void test_relay_key(void **state)
{
	uint8_t pub[KEY_LEN], priv[KEY_LEN], pub2[KEY_LEN], priv2[KEY_LEN], check[KEY_LEN];
	char path[300];
	struct stat st;

	snprintf(path, sizeof(path), "%s/relay.key", dir);
	unlink(path);
	assert_int_equal(relay_key_load(dir, pub, priv), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	crypto_scalarmult_base(check, priv);
	assert_memory_equal(check, pub, KEY_LEN);
	assert_int_equal(relay_key_load(dir, pub2, priv2), 0);
	assert_memory_equal(pub, pub2, KEY_LEN);
	assert_memory_equal(priv, priv2, KEY_LEN);
	unlink(path);
}

static int setup(void **state)
{
	const char *base = getenv("TMPDIR");

	log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
	if (keys_init())
		return -1;
	snprintf(dir, sizeof(dir), "%s/test_relay.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/tls.key", dir);
	if (tls_selfsigned_create(cert, keyfile, "localhost") || tls_cert_pin(cert, pin))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char p[400];

	tls_session_cache_clear();
	snprintf(p, sizeof(p), "%s/tls.crt", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/tls.key", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/admitted", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_admitted),
		cmocka_unit_test(test_hello_refused),
		cmocka_unit_test(test_not_ready_fails_closed),
		cmocka_unit_test(test_send_before_hello),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_absent_destination),
		cmocka_unit_test(test_remove_disconnects),
		cmocka_unit_test(test_same_key_replaces),
		cmocka_unit_test(test_bad_frames_close_one),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_keepalive_timeout),
		cmocka_unit_test(test_keepalive_keeps),
		cmocka_unit_test(test_graceful_stop),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_admission_lines),
		cmocka_unit_test(test_relay_key),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
