/* relay_frame.c - the relay protocol's frames and hello (see relay_frame.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/relay_frame.h"

#define NONCE_LEN crypto_box_NONCEBYTES
#define SEALED_LEN (RELAY_CHALLENGE_LEN + 2)

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int relay_frame_next(const uint8_t *p, size_t len, struct relay_frame *f)
{
	uint32_t n;

	if (len < RELAY_HDR_LEN)
		return 0;
	n = get32(p + 1);
	if (n > RELAY_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (len - RELAY_HDR_LEN < n)
		return 0;
	f->type = p[0];
	f->len = n;
	f->payload = p + RELAY_HDR_LEN;
	return (int)(RELAY_HDR_LEN + n);
}

int relay_frame_check(const struct relay_frame *f)
{
	switch (f->type) {
	case RELAY_SERVER_HELLO:
		return f->len == RELAY_SERVER_HELLO_LEN ? 0 : -EBADMSG;
	case RELAY_CLIENT_HELLO:
		return f->len == RELAY_CLIENT_HELLO_LEN ? 0 : -EBADMSG;
	case RELAY_SERVER_INFO:
		return f->len == 3 ? 0 : -EBADMSG;
	case RELAY_SEND_PACKET:
	case RELAY_RECV_PACKET:
		return f->len >= KEY_LEN ? 0 : -EBADMSG;
	case RELAY_PEER_GONE:
		return f->len == KEY_LEN + 1 ? 0 : -EBADMSG;
	case RELAY_KEEPALIVE:
		return f->len == 0 ? 0 : -EBADMSG;
	case RELAY_PING:
	case RELAY_PONG:
		return f->len == 8 ? 0 : -EBADMSG;
	case RELAY_HEALTH:
		return f->len <= RELAY_HEALTH_MAX ? 0 : -EBADMSG;
	case RELAY_RESTARTING:
		return f->len == 8 ? 0 : -EBADMSG;
	default:
		return -EPROTO;
	}
}

void relay_frame_header(uint8_t hdr[RELAY_HDR_LEN], uint8_t type, uint32_t len)
{
	hdr[0] = type;
	put32(hdr + 1, len);
}

int relay_frame_build(uint8_t *buf, size_t size, uint8_t type, const void *payload,
		      uint32_t len)
{
	if (len > RELAY_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (size < RELAY_HDR_LEN + (size_t)len)
		return -ENOSPC;
	relay_frame_header(buf, type, len);
	if (len)
		memcpy(buf + RELAY_HDR_LEN, payload, len);
	return (int)(RELAY_HDR_LEN + len);
}

int relay_packet_header(uint8_t hdr[RELAY_HDR_LEN + KEY_LEN], uint8_t type,
			const uint8_t key[KEY_LEN], size_t len)
{
	if (len > RELAY_MAX_PACKET)
		return -EMSGSIZE;
	relay_frame_header(hdr, type, (uint32_t)(KEY_LEN + len));
	memcpy(hdr + RELAY_HDR_LEN, key, KEY_LEN);
	return 0;
}

void relay_packet_parse(const struct relay_frame *f, const uint8_t **key, const uint8_t **data,
			size_t *len)
{
	*key = f->payload;
	*data = f->payload + KEY_LEN;
	*len = f->len - KEY_LEN;
}

/* ---- hello ---- */

int relay_server_hello_build(uint8_t *buf, size_t size, const uint8_t relay_pub[KEY_LEN],
			     const uint8_t challenge[RELAY_CHALLENGE_LEN])
{
	uint8_t p[RELAY_SERVER_HELLO_LEN];

	memcpy(p, RELAY_MAGIC, RELAY_MAGIC_LEN);
	memcpy(p + RELAY_MAGIC_LEN, relay_pub, KEY_LEN);
	memcpy(p + RELAY_MAGIC_LEN + KEY_LEN, challenge, RELAY_CHALLENGE_LEN);
	return relay_frame_build(buf, size, RELAY_SERVER_HELLO, p, sizeof(p));
}

int relay_server_hello_parse(const struct relay_frame *f, uint8_t relay_pub[KEY_LEN],
			     uint8_t challenge[RELAY_CHALLENGE_LEN])
{
	if (f->type != RELAY_SERVER_HELLO || f->len != RELAY_SERVER_HELLO_LEN ||
	    memcmp(f->payload, RELAY_MAGIC, RELAY_MAGIC_LEN))
		return -EBADMSG;
	memcpy(relay_pub, f->payload + RELAY_MAGIC_LEN, KEY_LEN);
	memcpy(challenge, f->payload + RELAY_MAGIC_LEN + KEY_LEN, RELAY_CHALLENGE_LEN);
	return 0;
}

int relay_client_hello_build(uint8_t *buf, size_t size, const uint8_t node_pub[KEY_LEN],
			     const uint8_t node_priv[KEY_LEN], const uint8_t relay_pub[KEY_LEN],
			     const uint8_t challenge[RELAY_CHALLENGE_LEN], unsigned flags)
{
	uint8_t p[RELAY_CLIENT_HELLO_LEN], plain[SEALED_LEN];
	uint8_t *nonce = p + KEY_LEN, *box = p + KEY_LEN + NONCE_LEN;
	int rc;

	if (size < RELAY_HDR_LEN + RELAY_CLIENT_HELLO_LEN)
		return -ENOSPC;
	memcpy(p, node_pub, KEY_LEN);
	randombytes_buf(nonce, NONCE_LEN);
	memcpy(plain, challenge, RELAY_CHALLENGE_LEN);
	plain[RELAY_CHALLENGE_LEN] = RELAY_VERSION;
	plain[RELAY_CHALLENGE_LEN + 1] = (uint8_t)flags;
	rc = crypto_box_easy(box, plain, sizeof(plain), nonce, relay_pub, node_priv);
	sodium_memzero(plain, sizeof(plain));
	if (rc)
		return -EINVAL;
	return relay_frame_build(buf, size, RELAY_CLIENT_HELLO, p, sizeof(p));
}

int relay_client_hello_open(const struct relay_frame *f, const uint8_t relay_priv[KEY_LEN],
			    const uint8_t challenge[RELAY_CHALLENGE_LEN],
			    uint8_t node_pub[KEY_LEN], unsigned *version, unsigned *flags)
{
	const uint8_t *key = f->payload, *nonce = f->payload + KEY_LEN;
	const uint8_t *box = f->payload + KEY_LEN + NONCE_LEN;
	uint8_t plain[SEALED_LEN];
	int rc = -EACCES;

	if (f->type != RELAY_CLIENT_HELLO || f->len != RELAY_CLIENT_HELLO_LEN)
		return -EBADMSG;
	if (crypto_box_open_easy(plain, box, SEALED_LEN + crypto_box_MACBYTES, nonce, key,
				 relay_priv))
		return -EACCES;
	if (sodium_memcmp(plain, challenge, RELAY_CHALLENGE_LEN))
		goto out;
	memcpy(node_pub, key, KEY_LEN);
	*version = plain[RELAY_CHALLENGE_LEN];
	*flags = plain[RELAY_CHALLENGE_LEN + 1];
	rc = 0;
out:
	sodium_memzero(plain, sizeof(plain));
	return rc;
}

/* ---- reader ---- */

static int reader_keep(struct relay_reader *r, const uint8_t *p, size_t n)
{
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		uint8_t *nb;

		while (cap < r->len + n)
			cap *= 2;
		nb = realloc(r->buf, cap);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	return 0;
}

/* Adds to the partial frame in r->buf from p (the header first, then the payload it
 * announces) and hands it over once whole: 0 (*used bytes of p taken), 1, or -errno. */
static int reader_finish(struct relay_reader *r, const uint8_t *p, size_t len,
			 relay_frame_cb cb, void *arg, size_t *used)
{
	struct relay_frame f;
	size_t want = RELAY_HDR_LEN, take;
	int n;

	*used = 0;
	if (r->len >= RELAY_HDR_LEN) {
		want = RELAY_HDR_LEN + get32(r->buf + 1);
		if (want > RELAY_HDR_LEN + RELAY_MAX_PAYLOAD)
			return -EMSGSIZE;
	}
	take = want - r->len < len ? want - r->len : len;
	if (reader_keep(r, p, take))
		return -ENOMEM;
	*used = take;
	n = relay_frame_next(r->buf, r->len, &f);
	if (n < 0)
		return n;
	if (n == 0)
		return 0;
	r->len = 0;
	return cb(&f, arg) ? 1 : 0;
}

int relay_reader_feed(struct relay_reader *r, const uint8_t *p, size_t len, relay_frame_cb cb,
		      void *arg)
{
	struct relay_frame f;
	int n;

	while (r->len && len) {
		size_t used;
		int rc = reader_finish(r, p, len, cb, arg, &used);

		if (rc)
			return rc;
		p += used;
		len -= used;
	}
	while (len) {
		n = relay_frame_next(p, len, &f);
		if (n < 0)
			return n;
		if (n == 0)
			return reader_keep(r, p, len);
		if (cb(&f, arg))
			return 1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void relay_reader_free(struct relay_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
