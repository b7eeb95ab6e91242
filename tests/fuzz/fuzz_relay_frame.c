/* fuzz_relay_frame.c - lib/relay_frame.c on arbitrary bytes: the stream reader fed in
 * pieces sized by the input's first byte, every frame checked and, where it passes, parsed
 * as the relay and the client would (hellos opened with a fixed relay key and challenge).
 * A frame must never point outside what was fed, and the reader must agree with
 * relay_frame_next on the same bytes fed whole. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/relay_frame.h"

struct acc {
	const uint8_t *base;
	size_t size;
	int frames;
	size_t bytes;
};

static void use(const struct relay_frame *f)
{
	static uint8_t relay_pub[KEY_LEN], relay_priv[KEY_LEN], challenge[RELAY_CHALLENGE_LEN];
	static int ready;
	uint8_t key[KEY_LEN], ch[RELAY_CHALLENGE_LEN];
	const uint8_t *k, *data;
	unsigned version, flags;
	size_t len;

	if (!ready) {
		if (sodium_init() < 0)
			abort();
		crypto_box_keypair(relay_pub, relay_priv);
		memset(challenge, 7, sizeof(challenge));
		ready = 1;
	}
	if (relay_frame_check(f))
		return;
	switch (f->type) {
	case RELAY_SERVER_HELLO:
		relay_server_hello_parse(f, key, ch);
		break;
	case RELAY_CLIENT_HELLO:
		/* Random bytes cannot carry a box that opens. */
		if (!relay_client_hello_open(f, relay_priv, challenge, key, &version, &flags))
			abort();
		break;
	case RELAY_SEND_PACKET:
	case RELAY_RECV_PACKET:
		relay_packet_parse(f, &k, &data, &len);
		if (len > RELAY_MAX_PACKET || data + len != f->payload + f->len)
			abort();
		break;
	default:
		break;
	}
}

static int on_frame(const struct relay_frame *f, void *arg)
{
	struct acc *a = arg;

	if (f->len > RELAY_MAX_PAYLOAD)
		abort();
	a->frames++;
	a->bytes += RELAY_HDR_LEN + f->len;
	use(f);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_reader r = { 0 };
	struct acc pieces = { 0 }, whole = { 0 };
	struct relay_frame f;
	size_t step, off = 0;
	int rc = 0, n;

	if (!size)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	for (off = 0; off < size && !rc; off += step) {
		size_t n2 = size - off < step ? size - off : step;

		rc = relay_reader_feed(&r, data + off, n2, on_frame, &pieces);
		if (rc != 0 && rc != -EMSGSIZE)
			abort();
	}
	relay_reader_free(&r);
	/* The same bytes frame by frame with relay_frame_next. */
	for (off = 0; off < size; off += (size_t)n) {
		n = relay_frame_next(data + off, size - off, &f);
		if (n <= 0)
			break;
		if (f.payload < data || f.payload + f.len > data + size)
			abort();
		whole.frames++;
		whole.bytes += (size_t)n;
	}
	if (!rc && (whole.frames != pieces.frames || whole.bytes != pieces.bytes))
		abort();
	return 0;
}
