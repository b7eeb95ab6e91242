/* fuzz_disco.c - lib/disco.c on arbitrary bytes, with a fixed shared key (bytes 0..31, so
 * the corpus can hold packets that open). The input is taken as a body (parsed, rebuilt,
 * compared) and as a packet (opened, checked against an independent crypto_box open and
 * the body parser); past 8 bytes it is also a counter and a body: boxed as is it must open
 * to what the parser says, and a body that parses must seal and open back to itself. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/disco.h"

#define OPEN_MAX_BODY 1024   /* lib/disco.c's bound on what disco_open decrypts */

static uint8_t shared[DISCO_SHARED_LEN];
static const uint8_t my_pub[KEY_LEN] = { 0x4d, 0x56 };

static void init(void)
{
	static int ready;

	if (ready)
		return;
	if (sodium_init() < 0)
		abort();
	for (int i = 0; i < DISCO_SHARED_LEN; i++)
		shared[i] = (uint8_t)i;
	ready = 1;
}

/* A parsed body is sane, rebuilds to the bytes it came from and parses back the same. */
static void check_body(const uint8_t *p, size_t len)
{
	uint8_t out[DISCO_MAX_BODY];
	struct disco_msg m, again;
	int n;

	if (disco_parse_body(p, len, &m)) {
		if (!sodium_is_zero((const unsigned char *)&m, sizeof(m)))
			abort();
		return;
	}
	if (m.type < DISCO_PING || m.type > DISCO_CALL_ME_MAYBE ||
	    m.n_endpoints < 0 || m.n_endpoints > DISCO_MAX_ENDPOINTS)
		abort();
	n = disco_build_body(&m, out, sizeof(out));
	if (n < 0 || (size_t)n > len || memcmp(out, p, (size_t)n) ||
	    (m.type == DISCO_CALL_ME_MAYBE && (size_t)n != len))
		abort();
	if (disco_parse_body(out, (size_t)n, &again) || memcmp(&m, &again, sizeof(m)))
		abort();
}

/* disco_open against what it should do: the box opened here, the body parsed here. */
static void check_open(const uint8_t *p, size_t len)
{
	uint8_t body[OPEN_MAX_BODY];
	struct disco_msg m, want;
	uint64_t counter;
	size_t blen;
	int rc = disco_open(p, len, shared, &m, &counter), want_rc;

	if (rc && (!sodium_is_zero((const unsigned char *)&m, sizeof(m)) || counter))
		abort();
	if (!disco_is(p, len)) {
		if (rc != -EBADMSG)
			abort();
		return;
	}
	blen = len - DISCO_HEADER_LEN - DISCO_MAC_LEN;
	if (blen > sizeof(body)) {
		if (rc != -EBADMSG)
			abort();
		return;
	}
	if (crypto_box_open_easy_afternm(body, p + DISCO_HEADER_LEN, blen + DISCO_MAC_LEN,
					 p + DISCO_MAGIC_LEN + KEY_LEN, shared)) {
		if (rc != -EPERM)
			abort();
		return;
	}
	want_rc = disco_parse_body(body, blen, &want);
	if (rc != want_rc || memcmp(&m, &want, sizeof(m)))
		abort();
}

/* body boxed by hand opens to what the parser makes of it; parsed, it seals and opens
 * back to the same message and counter. */
static void check_seal(uint64_t counter, const uint8_t *body, size_t blen)
{
	uint8_t pkt[DISCO_HEADER_LEN + DISCO_MAC_LEN + OPEN_MAX_BODY];
	uint8_t *nonce = pkt + DISCO_MAGIC_LEN + KEY_LEN;
	struct disco_msg m, got;
	uint64_t c;
	int n;

	if (blen > OPEN_MAX_BODY)
		return;
	memcpy(pkt, DISCO_MAGIC, DISCO_MAGIC_LEN);
	memcpy(pkt + DISCO_MAGIC_LEN, my_pub, KEY_LEN);
	memset(nonce, 0x11, DISCO_NONCE_LEN);
	if (crypto_box_easy_afternm(pkt + DISCO_HEADER_LEN, body, blen, nonce, shared))
		abort();
	check_open(pkt, DISCO_HEADER_LEN + DISCO_MAC_LEN + blen);

	if (disco_parse_body(body, blen, &m))
		return;
	n = disco_seal(&m, my_pub, shared, counter, pkt, sizeof(pkt));
	if (n < DISCO_HEADER_LEN + DISCO_MAC_LEN || n > DISCO_MAX_PACKET)
		abort();
	if (disco_open(pkt, (size_t)n, shared, &got, &c) || c != counter ||
	    memcmp(&m, &got, sizeof(m)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[KEY_LEN];
	uint64_t counter = 0;

	init();
	check_body(data, size);
	check_open(data, size);
	if (disco_sender(data, size, key) != (disco_is(data, size) ? 0 : -EBADMSG))
		abort();
	if (size >= 8) {
		for (int i = 0; i < 8; i++)
			counter = counter << 8 | data[i];
		check_seal(counter, data + 8, size - 8);
	}
	return 0;
}
