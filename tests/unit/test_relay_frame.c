/* test_relay_frame.c - lib/relay_frame.c: frame boundaries and limits, every type's shape,
 * the hello (a node proves its key; a replayed or forged hello is refused), and the
 * stream reader with frames cut at every byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/relay_frame.h"

static void test_relay_frame_bounds(void **state)
{
	uint8_t buf[RELAY_HDR_LEN + 16], big[RELAY_HDR_LEN];
	struct relay_frame f;

	(void)state;
	assert_int_equal(relay_frame_build(buf, sizeof(buf), RELAY_PING, "12345678", 8), 13);
	for (size_t n = 0; n < 13; n++)
		assert_int_equal(relay_frame_next(buf, n, &f), 0);
	assert_int_equal(relay_frame_next(buf, 13, &f), 13);
	assert_int_equal(f.type, RELAY_PING);
	assert_int_equal(f.len, 8);
	assert_memory_equal(f.payload, "12345678", 8);
	assert_int_equal(relay_frame_check(&f), 0);
	assert_int_equal(relay_frame_next(buf, sizeof(buf), &f), 13);   /* trailing bytes stay */

	relay_frame_header(big, RELAY_SEND_PACKET, RELAY_MAX_PAYLOAD);
	assert_int_equal(relay_frame_next(big, sizeof(big), &f), 0);    /* fits: wait for it */
	relay_frame_header(big, RELAY_SEND_PACKET, RELAY_MAX_PAYLOAD + 1);
	assert_int_equal(relay_frame_next(big, sizeof(big), &f), -EMSGSIZE);
	relay_frame_header(big, RELAY_SEND_PACKET, 0xffffffffu);
	assert_int_equal(relay_frame_next(big, sizeof(big), &f), -EMSGSIZE);
	assert_int_equal(relay_frame_build(buf, 4, RELAY_KEEPALIVE, NULL, 0), -ENOSPC);
	assert_int_equal(relay_frame_build(buf, sizeof(buf), RELAY_KEEPALIVE, NULL,
					   RELAY_MAX_PAYLOAD + 1), -EMSGSIZE);
}

static void test_relay_frame_shapes(void **state)
{
	static const struct { uint8_t type; uint32_t ok, bad; } cases[] = {
		{ RELAY_SERVER_HELLO, RELAY_SERVER_HELLO_LEN, RELAY_SERVER_HELLO_LEN - 1 },
		{ RELAY_CLIENT_HELLO, RELAY_CLIENT_HELLO_LEN, RELAY_CLIENT_HELLO_LEN + 1 },
		{ RELAY_SERVER_INFO, 3, 2 },
		{ RELAY_SEND_PACKET, KEY_LEN, KEY_LEN - 1 },
		{ RELAY_RECV_PACKET, KEY_LEN + 1280, 3 },
		{ RELAY_PEER_GONE, KEY_LEN + 1, KEY_LEN },
		{ RELAY_KEEPALIVE, 0, 1 },
		{ RELAY_PING, 8, 7 },
		{ RELAY_PONG, 8, 9 },
		{ RELAY_HEALTH, RELAY_HEALTH_MAX, RELAY_HEALTH_MAX + 1 },
		{ RELAY_RESTARTING, 8, 4 },
	};
	static uint8_t payload[RELAY_MAX_PAYLOAD];
	struct relay_frame f = { .payload = payload };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		f.type = cases[i].type;
		f.len = cases[i].ok;
		assert_int_equal(relay_frame_check(&f), 0);
		f.len = cases[i].bad;
		assert_int_equal(relay_frame_check(&f), -EBADMSG);
	}
	f.type = 0;
	f.len = 0;
	assert_int_equal(relay_frame_check(&f), -EPROTO);
	f.type = 0xff;
	assert_int_equal(relay_frame_check(&f), -EPROTO);
}

static void test_relay_frame_packet(void **state)
{
	uint8_t key[KEY_LEN], hdr[RELAY_HDR_LEN + KEY_LEN], frame[RELAY_HDR_LEN + KEY_LEN + 4];
	const uint8_t *k, *data;
	struct relay_frame f;
	size_t len;

	(void)state;
	memset(key, 0x42, sizeof(key));
	assert_int_equal(relay_packet_header(hdr, RELAY_SEND_PACKET, key, 4), 0);
	memcpy(frame, hdr, sizeof(hdr));
	memcpy(frame + sizeof(hdr), "wire", 4);
	assert_int_equal(relay_frame_next(frame, sizeof(frame), &f), (int)sizeof(frame));
	assert_int_equal(relay_frame_check(&f), 0);
	relay_packet_parse(&f, &k, &data, &len);
	assert_memory_equal(k, key, KEY_LEN);
	assert_int_equal(len, 4);
	assert_memory_equal(data, "wire", 4);
	assert_int_equal(relay_packet_header(hdr, RELAY_SEND_PACKET, key, RELAY_MAX_PACKET), 0);
	assert_int_equal(relay_packet_header(hdr, RELAY_SEND_PACKET, key, RELAY_MAX_PACKET + 1),
			 -EMSGSIZE);
}

struct hello_keys {
	uint8_t relay_pub[KEY_LEN], relay_priv[KEY_LEN];
	uint8_t node_pub[KEY_LEN], node_priv[KEY_LEN];
	uint8_t other_pub[KEY_LEN], other_priv[KEY_LEN];
	uint8_t challenge[RELAY_CHALLENGE_LEN];
};

static void hello_keys(struct hello_keys *k)
{
	crypto_box_keypair(k->relay_pub, k->relay_priv);
	crypto_box_keypair(k->node_pub, k->node_priv);
	crypto_box_keypair(k->other_pub, k->other_priv);
	randombytes_buf(k->challenge, sizeof(k->challenge));
}

static void test_relay_frame_hello(void **state)
{
	uint8_t buf[256], pub[KEY_LEN], ch[RELAY_CHALLENGE_LEN], got[KEY_LEN];
	struct hello_keys k;
	struct relay_frame f;
	unsigned version, flags;
	int n;

	(void)state;
	hello_keys(&k);
	n = relay_server_hello_build(buf, sizeof(buf), k.relay_pub, k.challenge);
	assert_int_equal(n, RELAY_HDR_LEN + RELAY_SERVER_HELLO_LEN);
	assert_int_equal(relay_frame_next(buf, (size_t)n, &f), n);
	assert_int_equal(relay_frame_check(&f), 0);
	assert_int_equal(relay_server_hello_parse(&f, pub, ch), 0);
	assert_memory_equal(pub, k.relay_pub, KEY_LEN);
	assert_memory_equal(ch, k.challenge, sizeof(ch));
	buf[RELAY_HDR_LEN] ^= 1;                      /* another protocol's magic */
	assert_int_equal(relay_server_hello_parse(&f, pub, ch), -EBADMSG);

	n = relay_client_hello_build(buf, sizeof(buf), k.node_pub, k.node_priv, k.relay_pub,
				     k.challenge, RELAY_HELLO_PREFERRED);
	assert_int_equal(n, RELAY_HDR_LEN + RELAY_CLIENT_HELLO_LEN);
	assert_int_equal(relay_frame_next(buf, (size_t)n, &f), n);
	assert_int_equal(relay_frame_check(&f), 0);
	assert_int_equal(relay_client_hello_open(&f, k.relay_priv, k.challenge, got, &version,
						 &flags), 0);
	assert_memory_equal(got, k.node_pub, KEY_LEN);
	assert_int_equal(version, RELAY_VERSION);
	assert_int_equal(flags, RELAY_HELLO_PREFERRED);
	assert_int_equal(relay_client_hello_build(buf, 10, k.node_pub, k.node_priv, k.relay_pub,
						  k.challenge, 0), -ENOSPC);
}

static void test_relay_frame_hello_refused(void **state)
{
	uint8_t buf[256], copy[256], got[KEY_LEN], ch2[RELAY_CHALLENGE_LEN];
	struct hello_keys k;
	struct relay_frame f;
	unsigned version, flags;
	int n;

	(void)state;
	hello_keys(&k);
	n = relay_client_hello_build(buf, sizeof(buf), k.node_pub, k.node_priv, k.relay_pub,
				     k.challenge, 0);
	memcpy(copy, buf, (size_t)n);
	assert_int_equal(relay_frame_next(buf, (size_t)n, &f), n);

	/* Replayed on another connection: its challenge differs. */
	randombytes_buf(ch2, sizeof(ch2));
	assert_int_equal(relay_client_hello_open(&f, k.relay_priv, ch2, got, &version, &flags),
			 -EACCES);
	/* Claiming another node's key with our box. */
	memcpy(buf + RELAY_HDR_LEN, k.other_pub, KEY_LEN);
	assert_int_equal(relay_client_hello_open(&f, k.relay_priv, k.challenge, got, &version,
						 &flags), -EACCES);
	/* Sealed to another relay. */
	memcpy(buf, copy, (size_t)n);
	assert_int_equal(relay_client_hello_open(&f, k.other_priv, k.challenge, got, &version,
						 &flags), -EACCES);
	/* Every bit of the box counts. */
	for (int i = RELAY_HDR_LEN + KEY_LEN; i < n; i++) {
		memcpy(buf, copy, (size_t)n);
		buf[i] ^= 0x10;
		assert_int_equal(relay_client_hello_open(&f, k.relay_priv, k.challenge, got,
							 &version, &flags), -EACCES);
	}
	memcpy(buf, copy, (size_t)n);
	f.len--;
	assert_int_equal(relay_client_hello_open(&f, k.relay_priv, k.challenge, got, &version,
						 &flags), -EBADMSG);
	f.type = RELAY_SEND_PACKET;
	f.len++;
	assert_int_equal(relay_client_hello_open(&f, k.relay_priv, k.challenge, got, &version,
						 &flags), -EBADMSG);
}

struct seen {
	int frames;
	size_t bytes;
	uint8_t last_type;
	int stop_after;
};

static int on_frame(const struct relay_frame *f, void *arg)
{
	struct seen *s = arg;

	s->frames++;
	s->bytes += f->len;
	s->last_type = f->type;
	if (f->type == RELAY_PING)
		assert_memory_equal(f->payload, "abcdefgh", 8);
	return s->stop_after && s->frames >= s->stop_after;
}

static void test_relay_frame_reader_splits(void **state)
{
	static uint8_t stream[3 * RELAY_HDR_LEN + 8 + 2000 + RELAY_MAX_PAYLOAD];
	uint8_t *big = calloc(1, RELAY_MAX_PAYLOAD);
	size_t len = 0;
	int n;

	(void)state;
	assert_non_null(big);
	n = relay_frame_build(stream, sizeof(stream), RELAY_PING, "abcdefgh", 8);
	len += (size_t)n;
	n = relay_frame_build(stream + len, sizeof(stream) - len, RELAY_KEEPALIVE, NULL, 0);
	len += (size_t)n;
	n = relay_frame_build(stream + len, sizeof(stream) - len, RELAY_RECV_PACKET, big,
			      RELAY_MAX_PAYLOAD);
	len += (size_t)n;
	/* Cut into pieces of every size from 1 to 64: three frames each time. */
	for (size_t piece = 1; piece <= 64; piece++) {
		struct relay_reader r = { 0 };
		struct seen s = { 0 };

		for (size_t off = 0; off < len; off += piece) {
			size_t n2 = len - off < piece ? len - off : piece;

			assert_int_equal(relay_reader_feed(&r, stream + off, n2, on_frame, &s), 0);
		}
		assert_int_equal(s.frames, 3);
		assert_int_equal(s.bytes, 8 + RELAY_MAX_PAYLOAD);
		assert_int_equal(r.len, 0);
		assert_true(r.cap <= 2 * (RELAY_HDR_LEN + RELAY_MAX_PAYLOAD));
		relay_reader_free(&r);
	}
	free(big);
}

static void test_relay_frame_reader_limits(void **state)
{
	uint8_t buf[64], hdr[RELAY_HDR_LEN];
	struct relay_reader r = { 0 };
	struct seen s = { .stop_after = 1 };
	int n;

	(void)state;
	/* The callback stops after the first: the second stays untouched. */
	n = relay_frame_build(buf, sizeof(buf), RELAY_PING, "abcdefgh", 8);
	memcpy(buf + n, buf, (size_t)n);
	assert_int_equal(relay_reader_feed(&r, buf, 2 * (size_t)n, on_frame, &s), 1);
	assert_int_equal(s.frames, 1);
	relay_reader_free(&r);

	/* An oversize length, whole or cut in the header. */
	relay_frame_header(hdr, RELAY_SEND_PACKET, RELAY_MAX_PAYLOAD + 1);
	assert_int_equal(relay_reader_feed(&r, hdr, sizeof(hdr), on_frame, &s), -EMSGSIZE);
	relay_reader_free(&r);
	assert_int_equal(relay_reader_feed(&r, hdr, 2, on_frame, &s), 0);
	assert_int_equal(relay_reader_feed(&r, hdr + 2, 3, on_frame, &s), -EMSGSIZE);
	relay_reader_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_frame_bounds),
		cmocka_unit_test(test_relay_frame_shapes),
		cmocka_unit_test(test_relay_frame_packet),
		cmocka_unit_test(test_relay_frame_hello),
		cmocka_unit_test(test_relay_frame_hello_refused),
		cmocka_unit_test(test_relay_frame_reader_splits),
		cmocka_unit_test(test_relay_frame_reader_limits),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
