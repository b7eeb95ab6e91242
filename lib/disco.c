/* disco.c - disco message codec (see disco.h): bodies, the NaCl box around them, the
 * sender's counter and the per-sender replay window. Pure: no I/O, no clock. */
#include "meshvpn/disco.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#define BODY_HDR 2                                 /* type, version */
#define PING_LEN (BODY_HDR + DISCO_TXID_LEN + KEY_LEN)
#define PONG_LEN (BODY_HDR + DISCO_TXID_LEN + DISCO_EP_LEN)
#define COUNTER_LEN 8
/* What disco_open decrypts at most: later versions may add fields to a PING or PONG,
 * but a receiver keeps its plaintext on the stack and bounded. */
#define OPEN_MAX_BODY 1024

_Static_assert(DISCO_SHARED_LEN == crypto_box_BEFORENMBYTES, "shared key size");
_Static_assert(DISCO_NONCE_LEN == crypto_box_NONCEBYTES, "nonce size");
_Static_assert(DISCO_MAC_LEN == crypto_box_MACBYTES, "MAC size");
_Static_assert(KEY_LEN == crypto_box_PUBLICKEYBYTES, "key size");
_Static_assert(DISCO_REPLAY_WINDOW % 64 == 0, "replay window is whole words");

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int disco_is(const uint8_t *p, size_t len)
{
	return p && len >= DISCO_HEADER_LEN + DISCO_MAC_LEN &&
	       !memcmp(p, DISCO_MAGIC, DISCO_MAGIC_LEN);
}

int disco_sender(const uint8_t *p, size_t len, uint8_t out[KEY_LEN])
{
	if (!disco_is(p, len))
		return -EBADMSG;
	memcpy(out, p + DISCO_MAGIC_LEN, KEY_LEN);
	return 0;
}

int disco_shared(const uint8_t my_priv[KEY_LEN], const uint8_t peer_pub[KEY_LEN],
		 uint8_t shared[DISCO_SHARED_LEN])
{
	/* libsodium (1.0.18 and later) fails beforenm when the X25519 result is all zero,
	 * which a low-order peer key forces whatever our key: a secret anyone knows. */
	if (crypto_box_beforenm(shared, peer_pub, my_priv) != 0) {
		sodium_memzero(shared, DISCO_SHARED_LEN);
		return -EINVAL;
	}
	return 0;
}

/* Something the parser takes back: a known family, a port, a specified address. */
static int ep_valid(const struct addr_port *a)
{
	static const uint8_t zero[16];

	if (!a->port)
		return 0;
	if (a->family == AF_INET)
		return a->v4.s_addr != 0;
	if (a->family == AF_INET6)
		return memcmp(a->v6.s6_addr, zero, 16) != 0;
	return 0;
}

/* address (16, IPv4 mapped) | port (2); the zone is local and not sent. */
static void ep_put(uint8_t *p, const struct addr_port *a)
{
	if (a->family == AF_INET) {
		memcpy(p, v4mapped, sizeof(v4mapped));
		memcpy(p + 12, &a->v4, 4);
	} else {
		memcpy(p, a->v6.s6_addr, 16);
	}
	p[16] = (uint8_t)(a->port >> 8);
	p[17] = (uint8_t)a->port;
}

static int ep_get(const uint8_t *p, struct addr_port *a)
{
	memset(a, 0, sizeof(*a));
	a->port = (uint16_t)(p[16] << 8 | p[17]);
	if (!memcmp(p, v4mapped, sizeof(v4mapped))) {
		a->family = AF_INET;
		memcpy(&a->v4, p + 12, 4);
	} else {
		a->family = AF_INET6;
		memcpy(a->v6.s6_addr, p, 16);
	}
	if (!ep_valid(a)) {
		memset(a, 0, sizeof(*a));
		return -EBADMSG;
	}
	return 0;
}

int disco_build_body(const struct disco_msg *m, uint8_t *out, size_t size)
{
	size_t need;

	switch (m->type) {
	case DISCO_PING:
		need = PING_LEN;
		break;
	case DISCO_PONG:
		if (!ep_valid(&m->src))
			return -EINVAL;
		need = PONG_LEN;
		break;
	case DISCO_CALL_ME_MAYBE:
		if (m->n_endpoints < 0 || m->n_endpoints > DISCO_MAX_ENDPOINTS)
			return -EINVAL;
		for (int i = 0; i < m->n_endpoints; i++)
			if (!ep_valid(&m->endpoints[i]))
				return -EINVAL;
		need = BODY_HDR + (size_t)m->n_endpoints * DISCO_EP_LEN;
		break;
	default:
		return -EINVAL;
	}
	if (size < need)
		return -ENOSPC;
	out[0] = (uint8_t)m->type;
	out[1] = 0;
	if (m->type == DISCO_CALL_ME_MAYBE) {
		for (int i = 0; i < m->n_endpoints; i++)
			ep_put(out + BODY_HDR + (size_t)i * DISCO_EP_LEN, &m->endpoints[i]);
		return (int)need;
	}
	memcpy(out + BODY_HDR, m->txid, DISCO_TXID_LEN);
	if (m->type == DISCO_PING)
		memcpy(out + BODY_HDR + DISCO_TXID_LEN, m->node_key, KEY_LEN);
	else
		ep_put(out + BODY_HDR + DISCO_TXID_LEN, &m->src);
	return (int)need;
}

static int parse_fields(const uint8_t *p, size_t len, struct disco_msg *out)
{
	const uint8_t *f = p + BODY_HDR;
	size_t n;

	switch (p[0]) {
	case DISCO_PING:
		if (len < PING_LEN)
			return -EBADMSG;
		memcpy(out->txid, f, DISCO_TXID_LEN);
		memcpy(out->node_key, f + DISCO_TXID_LEN, KEY_LEN);
		return 0;
	case DISCO_PONG:
		if (len < PONG_LEN)
			return -EBADMSG;
		memcpy(out->txid, f, DISCO_TXID_LEN);
		return ep_get(f + DISCO_TXID_LEN, &out->src);
	case DISCO_CALL_ME_MAYBE:
		n = (len - BODY_HDR) / DISCO_EP_LEN;
		if ((len - BODY_HDR) % DISCO_EP_LEN || n > DISCO_MAX_ENDPOINTS)
			return -EBADMSG;
		for (size_t i = 0; i < n; i++)
			if (ep_get(f + i * DISCO_EP_LEN, &out->endpoints[i]))
				return -EBADMSG;
		out->n_endpoints = (int)n;
		return 0;
	default:
		return -EBADMSG;
	}
}

int disco_parse_body(const uint8_t *p, size_t len, struct disco_msg *out)
{
	memset(out, 0, sizeof(*out));
	if (!p || len < BODY_HDR || p[1] != 0 || parse_fields(p, len, out)) {
		memset(out, 0, sizeof(*out));
		return -EBADMSG;
	}
	out->type = (enum disco_type)p[0];
	return 0;
}

int disco_seal(const struct disco_msg *m, const uint8_t my_pub[KEY_LEN],
	       const uint8_t shared[DISCO_SHARED_LEN], uint64_t counter, uint8_t *out, size_t size)
{
	uint8_t body[DISCO_MAX_BODY];
	uint8_t *nonce;
	int n = disco_build_body(m, body, sizeof(body));

	if (n < 0)
		return n;
	if (!out || size < (size_t)DISCO_HEADER_LEN + DISCO_MAC_LEN + (size_t)n)
		return -ENOSPC;
	nonce = out + DISCO_MAGIC_LEN + KEY_LEN;
	memcpy(out, DISCO_MAGIC, DISCO_MAGIC_LEN);
	memcpy(out + DISCO_MAGIC_LEN, my_pub, KEY_LEN);
	for (int i = 0; i < COUNTER_LEN; i++)
		nonce[i] = (uint8_t)(counter >> (8 * (COUNTER_LEN - 1 - i)));
	randombytes_buf(nonce + COUNTER_LEN, DISCO_NONCE_LEN - COUNTER_LEN);
	if (crypto_box_easy_afternm(out + DISCO_HEADER_LEN, body, (unsigned long long)n,
				    nonce, shared) != 0)
		return -EINVAL;
	return DISCO_HEADER_LEN + DISCO_MAC_LEN + n;
}

int disco_open(const uint8_t *p, size_t len, const uint8_t shared[DISCO_SHARED_LEN],
	       struct disco_msg *m, uint64_t *counter)
{
	uint8_t body[OPEN_MAX_BODY];
	const uint8_t *nonce;
	size_t blen;
	uint64_t c = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	*counter = 0;
	if (!disco_is(p, len))
		return -EBADMSG;
	nonce = p + DISCO_MAGIC_LEN + KEY_LEN;
	blen = len - DISCO_HEADER_LEN - DISCO_MAC_LEN;
	if (blen > sizeof(body))
		return -EBADMSG;
	if (crypto_box_open_easy_afternm(body, p + DISCO_HEADER_LEN, blen + DISCO_MAC_LEN,
					 nonce, shared) != 0)
		return -EPERM;
	rc = disco_parse_body(body, blen, m);
	if (rc)
		goto out;
	for (int i = 0; i < COUNTER_LEN; i++)
		c = c << 8 | nonce[i];
	*counter = c;
out:
	sodium_memzero(body, blen);
	return rc;
}

uint64_t disco_next_counter(uint64_t *last, uint64_t now_ns)
{
	/* Saturates at UINT64_MAX (584 years of nanoseconds): a repeated counter is then
	 * refused by the receiver's replay check, never wrapped to a small one. */
	uint64_t c = *last == UINT64_MAX ? UINT64_MAX : *last + 1;

	if (now_ns > c)
		c = now_ns;
	*last = c;
	return c;
}

/* Moves the window up by shift counters: bit i becomes bit i + shift. */
static void replay_shift(struct disco_replay *r, uint64_t shift)
{
	enum { WORDS = DISCO_REPLAY_WINDOW / 64 };
	unsigned words, bits;

	if (shift >= DISCO_REPLAY_WINDOW) {
		memset(r->seen, 0, sizeof(r->seen));
		return;
	}
	words = (unsigned)(shift / 64);
	bits = (unsigned)(shift % 64);
	for (int i = WORDS - 1; i >= 0; i--) {
		uint64_t v = 0;
		int from = i - (int)words;

		if (from >= 0) {
			v = r->seen[from] << bits;
			if (bits && from > 0)
				v |= r->seen[from - 1] >> (64 - bits);
		}
		r->seen[i] = v;
	}
}

int disco_replay_check(struct disco_replay *r, uint64_t counter)
{
	uint64_t back;

	if (!r->started || counter > r->top) {
		if (!r->started) {
			memset(r->seen, 0, sizeof(r->seen));
			r->started = 1;
		} else {
			replay_shift(r, counter - r->top);
		}
		r->top = counter;
		r->seen[0] |= 1;
		return 0;
	}
	back = r->top - counter;
	if (back >= DISCO_REPLAY_WINDOW || (r->seen[back / 64] >> (back % 64) & 1))
		return -EALREADY;
	r->seen[back / 64] |= (uint64_t)1 << (back % 64);
	return 0;
}
