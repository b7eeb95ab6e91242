/* test_disco.c - lib/disco.c: round trips of each message (IPv4 and IPv6 endpoints, 0 and
 * 16 of them), the wire layout, wrong keys and damaged boxes, truncation at every length,
 * malformed bodies, what disco_is takes, trailing bytes, counters, the replay window and
 * low-order peer keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/disco.h"
#include "meshvpn/keys.h"

struct party {
	uint8_t pub[KEY_LEN], priv[KEY_LEN];
};

static struct party alice, bob;
static uint8_t ab[DISCO_SHARED_LEN];   /* alice's view of the shared key */
static uint8_t ba[DISCO_SHARED_LEN];   /* bob's */

static int setup(void **state)
{
	(void)state;
	if (keys_init())
		return -1;
	key_x25519_generate(alice.pub, alice.priv);
	key_x25519_generate(bob.pub, bob.priv);
	if (disco_shared(alice.priv, bob.pub, ab) || disco_shared(bob.priv, alice.pub, ba))
		return -1;
	return 0;
}

static struct addr_port ap(const char *text)
{
	struct addr_port a;

	assert_int_equal(addr_parse(text, strlen(text), 0, &a), 0);
	return a;
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + 7 * i);
}

static struct disco_msg ping(void)
{
	struct disco_msg m;

	memset(&m, 0, sizeof(m));
	m.type = DISCO_PING;
	fill(m.txid, sizeof(m.txid), 1);
	fill(m.node_key, sizeof(m.node_key), 50);
	return m;
}

static struct disco_msg pong(const char *src)
{
	struct disco_msg m;

	memset(&m, 0, sizeof(m));
	m.type = DISCO_PONG;
	fill(m.txid, sizeof(m.txid), 9);
	m.src = ap(src);
	return m;
}

static struct disco_msg call_me_maybe(int n)
{
	struct disco_msg m;
	char text[64];

	memset(&m, 0, sizeof(m));
	m.type = DISCO_CALL_ME_MAYBE;
	for (int i = 0; i < n; i++) {
		if (i % 2)
			snprintf(text, sizeof(text), "[2001:db8::%x]:%d", i + 1, 40000 + i);
		else
			snprintf(text, sizeof(text), "198.51.100.%d:%d", i + 1, 41641 + i);
		m.endpoints[i] = ap(text);
	}
	m.n_endpoints = n;
	return m;
}

/* A box around any body bytes, as disco_seal makes it, for bodies it would not build. */
static size_t seal_raw(const uint8_t *body, size_t blen, uint64_t counter, uint8_t *out)
{
	uint8_t *nonce = out + DISCO_MAGIC_LEN + KEY_LEN;

	memcpy(out, DISCO_MAGIC, DISCO_MAGIC_LEN);
	memcpy(out + DISCO_MAGIC_LEN, alice.pub, KEY_LEN);
	memset(nonce, 0, DISCO_NONCE_LEN);
	for (int i = 0; i < 8; i++)
		nonce[i] = (uint8_t)(counter >> (56 - 8 * i));
	assert_int_equal(crypto_box_easy_afternm(out + DISCO_HEADER_LEN, body, blen, nonce, ab), 0);
	return DISCO_HEADER_LEN + DISCO_MAC_LEN + blen;
}

/* Sealed by alice, opened by bob: the same message and counter. */
static void round_trip(const struct disco_msg *m, uint64_t counter)
{
	uint8_t pkt[DISCO_MAX_PACKET], sender[KEY_LEN];
	struct disco_msg got;
	uint64_t c;
	int n;

	n = disco_seal(m, alice.pub, ab, counter, pkt, sizeof(pkt));
	assert_true(n > 0 && n <= DISCO_MAX_PACKET);
	assert_true(disco_is(pkt, (size_t)n));
	assert_int_equal(disco_sender(pkt, (size_t)n, sender), 0);
	assert_memory_equal(sender, alice.pub, KEY_LEN);
	assert_int_equal(disco_open(pkt, (size_t)n, ba, &got, &c), 0);
	assert_true(c == counter);
	assert_memory_equal(&got, m, sizeof(got));
}

static void test_disco_round_trips(void **state)
{
	struct disco_msg m;

	(void)state;
	m = ping();
	round_trip(&m, 1);
	m = pong("192.0.2.1:41641");
	round_trip(&m, 2);
	m = pong("[2001:db8::1]:51820");
	round_trip(&m, UINT64_MAX);
	m = call_me_maybe(0);
	round_trip(&m, 0);
	m = call_me_maybe(1);
	round_trip(&m, 3);
	m = call_me_maybe(DISCO_MAX_ENDPOINTS);
	round_trip(&m, 0x0102030405060708ull);
}

static void test_disco_wire_layout(void **state)
{
	static const uint8_t v4[18] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1, 0xa2, 0x69 };
	uint8_t body[DISCO_MAX_BODY], pkt[DISCO_MAX_PACKET];
	struct disco_msg m = pong("192.0.2.1:41577"), got;
	int n;

	(void)state;
	n = disco_build_body(&m, body, sizeof(body));
	assert_int_equal(n, 2 + DISCO_TXID_LEN + DISCO_EP_LEN);
	assert_int_equal(body[0], DISCO_PONG);
	assert_int_equal(body[1], 0);
	assert_memory_equal(body + 2, m.txid, DISCO_TXID_LEN);
	assert_memory_equal(body + 2 + DISCO_TXID_LEN, v4, sizeof(v4));
	assert_int_equal(disco_parse_body(body, (size_t)n, &got), 0);
	assert_int_equal(got.src.family, AF_INET);
	assert_memory_equal(&got, &m, sizeof(got));

	m = ping();
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), 2 + DISCO_TXID_LEN + KEY_LEN);
	assert_memory_equal(body + 2 + DISCO_TXID_LEN, m.node_key, KEY_LEN);
	m = call_me_maybe(2);
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), 2 + 2 * DISCO_EP_LEN);
	assert_int_equal(body[0], DISCO_CALL_ME_MAYBE);

	/* The header: magic, sender, big-endian counter, then random nonce bytes. */
	n = disco_seal(&m, alice.pub, ab, 0x0102030405060708ull, pkt, sizeof(pkt));
	assert_int_equal(n, DISCO_HEADER_LEN + DISCO_MAC_LEN + 2 + 2 * DISCO_EP_LEN);
	assert_memory_equal(pkt, "MVDISC", 6);
	assert_memory_equal(pkt + 6, alice.pub, KEY_LEN);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pkt[38 + i], i + 1);
}

static void test_disco_wrong_key(void **state)
{
	uint8_t pkt[DISCO_MAX_PACKET], other[DISCO_SHARED_LEN];
	struct party eve;
	struct disco_msg m = ping(), got;
	uint64_t c = 5;
	int n;

	(void)state;
	key_x25519_generate(eve.pub, eve.priv);
	assert_int_equal(disco_shared(eve.priv, alice.pub, other), 0);
	n = disco_seal(&m, alice.pub, ab, 7, pkt, sizeof(pkt));
	assert_true(n > 0);
	assert_int_equal(disco_open(pkt, (size_t)n, other, &got, &c), -EPERM);
	assert_true(sodium_is_zero((const unsigned char *)&got, sizeof(got)));
	assert_true(c == 0);
	/* eve claiming to be alice with her own key: bob's key for alice does not open it. */
	assert_int_equal(disco_shared(eve.priv, bob.pub, other), 0);
	n = disco_seal(&m, alice.pub, other, 8, pkt, sizeof(pkt));
	assert_int_equal(disco_open(pkt, (size_t)n, ba, &got, &c), -EPERM);
}

static void test_disco_flipped_bytes(void **state)
{
	uint8_t pkt[DISCO_MAX_PACKET], bad[DISCO_MAX_PACKET];
	struct disco_msg m = call_me_maybe(3), got;
	uint64_t c;
	int n;

	(void)state;
	n = disco_seal(&m, alice.pub, ab, 11, pkt, sizeof(pkt));
	assert_true(n > 0);
	/* Nonce (counter included), MAC and ciphertext are all covered. */
	for (int i = DISCO_MAGIC_LEN + KEY_LEN; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			memcpy(bad, pkt, (size_t)n);
			bad[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(disco_open(bad, (size_t)n, ba, &got, &c), -EPERM);
			assert_true(sodium_is_zero((const unsigned char *)&got, sizeof(got)));
		}
	}
	/* The magic is the packet's kind, not the box's. */
	for (int i = 0; i < DISCO_MAGIC_LEN; i++) {
		memcpy(bad, pkt, (size_t)n);
		bad[i] ^= 0x20;
		assert_int_equal(disco_open(bad, (size_t)n, ba, &got, &c), -EBADMSG);
	}
	assert_int_equal(disco_open(pkt, (size_t)n, ba, &got, &c), 0);
}

static void test_disco_truncated_packets(void **state)
{
	uint8_t pkt[DISCO_MAX_PACKET], sender[KEY_LEN];
	struct disco_msg m = call_me_maybe(DISCO_MAX_ENDPOINTS), got;
	uint64_t c;
	int n;

	(void)state;
	n = disco_seal(&m, alice.pub, ab, 12, pkt, sizeof(pkt));
	assert_int_equal(n, DISCO_MAX_PACKET);
	for (int len = 0; len < n; len++) {
		/* Too short for header and MAC: not a disco packet. Longer: the box (whose end
		 * is the MAC's input) no longer opens. */
		int want = len < DISCO_HEADER_LEN + DISCO_MAC_LEN ? -EBADMSG : -EPERM;

		assert_int_equal(disco_is(pkt, (size_t)len), want == -EPERM);
		assert_int_equal(disco_sender(pkt, (size_t)len, sender), want == -EPERM ? 0 : -EBADMSG);
		assert_int_equal(disco_open(pkt, (size_t)len, ba, &got, &c), want);
		assert_true(sodium_is_zero((const unsigned char *)&got, sizeof(got)));
	}
	assert_int_equal(disco_open(NULL, 0, ba, &got, &c), -EBADMSG);
}

static void test_disco_truncated_bodies(void **state)
{
	uint8_t body[DISCO_MAX_BODY];
	struct disco_msg msgs[3] = { ping(), pong("[2001:db8::7]:9"), call_me_maybe(DISCO_MAX_ENDPOINTS) };
	struct disco_msg got;

	(void)state;
	for (int k = 0; k < 3; k++) {
		int n = disco_build_body(&msgs[k], body, sizeof(body));

		assert_true(n > 0);
		for (int len = 0; len < n; len++) {
			int rc = disco_parse_body(body, (size_t)len, &got);

			/* A shorter call-me-maybe of whole endpoints is still one. */
			if (msgs[k].type == DISCO_CALL_ME_MAYBE && len >= 2 && (len - 2) % DISCO_EP_LEN == 0) {
				assert_int_equal(rc, 0);
				assert_int_equal(got.n_endpoints, (len - 2) / DISCO_EP_LEN);
			} else {
				assert_int_equal(rc, -EBADMSG);
				assert_true(sodium_is_zero((const unsigned char *)&got, sizeof(got)));
			}
		}
		assert_int_equal(disco_parse_body(body, (size_t)n, &got), 0);
		assert_int_equal(disco_build_body(&msgs[k], body, (size_t)n - 1), -ENOSPC);
	}
	assert_int_equal(disco_parse_body(NULL, 0, &got), -EBADMSG);
}

static void expect_bad_body(const uint8_t *p, size_t len)
{
	uint8_t pkt[DISCO_HEADER_LEN + DISCO_MAC_LEN + 512];
	struct disco_msg got;
	uint64_t c;
	size_t n;

	assert_int_equal(disco_parse_body(p, len, &got), -EBADMSG);
	assert_true(sodium_is_zero((const unsigned char *)&got, sizeof(got)));
	/* The same body in a good box: the box opens, the body does not parse. */
	assert_true(len <= 512);
	n = seal_raw(p, len, 1, pkt);
	assert_int_equal(disco_open(pkt, n, ba, &got, &c), -EBADMSG);
	assert_true(sodium_is_zero((const unsigned char *)&got, sizeof(got)));
	assert_true(c == 0);
}

static void test_disco_bad_bodies(void **state)
{
	uint8_t body[DISCO_MAX_BODY + DISCO_EP_LEN], b[DISCO_MAX_BODY + DISCO_EP_LEN];
	struct disco_msg m;
	int n, np;

	(void)state;
	m = ping();
	np = disco_build_body(&m, body, sizeof(body));
	memcpy(b, body, (size_t)np);
	b[1] = 1;                                       /* version */
	expect_bad_body(b, (size_t)np);
	for (int t = 0; t < 256; t++) {                 /* types */
		if (t >= DISCO_PING && t <= DISCO_CALL_ME_MAYBE)
			continue;
		memcpy(b, body, (size_t)np);
		b[0] = (uint8_t)t;
		expect_bad_body(b, (size_t)np);
	}

	m = pong("192.0.2.1:1");
	n = disco_build_body(&m, body, sizeof(body));
	memcpy(b, body, (size_t)n);
	b[n - 1] = 0;                                   /* port 0 */
	expect_bad_body(b, (size_t)n);
	memcpy(b, body, (size_t)n);
	memset(b + 2 + DISCO_TXID_LEN + 12, 0, 4);      /* ::ffff:0.0.0.0 */
	expect_bad_body(b, (size_t)n);
	memcpy(b, body, (size_t)n);
	memset(b + 2 + DISCO_TXID_LEN, 0, 16);          /* :: */
	expect_bad_body(b, (size_t)n);

	m = call_me_maybe(DISCO_MAX_ENDPOINTS);
	n = disco_build_body(&m, body, sizeof(body));
	memcpy(body + n, body + n - DISCO_EP_LEN, DISCO_EP_LEN);
	expect_bad_body(body, (size_t)n + DISCO_EP_LEN); /* 17 endpoints */
	expect_bad_body(body, (size_t)n - 1);            /* a partial endpoint */
	expect_bad_body(body, 2 + 1);
	memcpy(b, body, (size_t)n);
	b[2 + 5 * DISCO_EP_LEN + 16] = b[2 + 5 * DISCO_EP_LEN + 17] = 0;
	expect_bad_body(b, (size_t)n);                   /* one endpoint of port 0 */
	memcpy(b, body, (size_t)n);
	memset(b + 2 + 3 * DISCO_EP_LEN, 0, 16);
	expect_bad_body(b, (size_t)n);                   /* one of address :: */
}

static void test_disco_build_errors(void **state)
{
	uint8_t body[DISCO_MAX_BODY], pkt[DISCO_MAX_PACKET];
	struct disco_msg m;

	(void)state;
	m = ping();
	m.type = (enum disco_type)4;
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	assert_int_equal(disco_seal(&m, alice.pub, ab, 1, pkt, sizeof(pkt)), -EINVAL);
	m = call_me_maybe(DISCO_MAX_ENDPOINTS);
	m.n_endpoints = DISCO_MAX_ENDPOINTS + 1;
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m.n_endpoints = -1;
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m = call_me_maybe(3);
	m.endpoints[2].family = 0;
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m = call_me_maybe(3);
	m.endpoints[1].port = 0;
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m = pong("0.0.0.0:5");
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m = pong("[::]:5");
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m = pong("192.0.2.1:5");
	m.src.family = 0;
	assert_int_equal(disco_build_body(&m, body, sizeof(body)), -EINVAL);
	m = ping();
	assert_int_equal(disco_seal(&m, alice.pub, ab, 1, pkt,
				    DISCO_HEADER_LEN + DISCO_MAC_LEN + 2 + DISCO_TXID_LEN + KEY_LEN - 1), -ENOSPC);
	assert_int_equal(disco_seal(&m, alice.pub, ab, 1, pkt,
				    DISCO_HEADER_LEN + DISCO_MAC_LEN + 2 + DISCO_TXID_LEN + KEY_LEN),
			 DISCO_HEADER_LEN + DISCO_MAC_LEN + 2 + DISCO_TXID_LEN + KEY_LEN);
}

static void test_disco_is(void **state)
{
	uint8_t p[200];

	(void)state;
	/* WireGuard handshake initiation, response, cookie reply, transport data. */
	for (uint8_t t = 1; t <= 4; t++) {
		memset(p, 0, sizeof(p));
		p[0] = t;
		fill(p + 4, sizeof(p) - 4, t);
		assert_int_equal(disco_is(p, 148), 0);
		assert_int_equal(disco_is(p, sizeof(p)), 0);
	}
	/* A STUN Binding request with the magic cookie. */
	memcpy(p, "\x00\x01\x00\x58\x21\x12\xa4\x42", 8);
	assert_int_equal(disco_is(p, 108), 0);
	memcpy(p, "MVDISC", 6);
	assert_int_equal(disco_is(p, DISCO_HEADER_LEN + DISCO_MAC_LEN), 1);
	assert_int_equal(disco_is(p, DISCO_HEADER_LEN + DISCO_MAC_LEN - 1), 0);
	p[5] = 'c';
	assert_int_equal(disco_is(p, sizeof(p)), 0);
	assert_int_equal(disco_is(NULL, 100), 0);
}

static void test_disco_trailing_bytes(void **state)
{
	uint8_t body[1100], pkt[DISCO_HEADER_LEN + DISCO_MAC_LEN + 1100];
	struct disco_msg m = ping(), got;
	uint64_t c;
	size_t n;
	int len;

	(void)state;
	len = disco_build_body(&m, body, sizeof(body));
	memset(body + len, 0xa5, sizeof(body) - (size_t)len);
	assert_int_equal(disco_parse_body(body, (size_t)len + 7, &got), 0);
	assert_memory_equal(&got, &m, sizeof(got));
	n = seal_raw(body, (size_t)len + 100, 42, pkt);
	assert_int_equal(disco_open(pkt, n, ba, &got, &c), 0);
	assert_memory_equal(&got, &m, sizeof(got));
	assert_true(c == 42);
	/* Up to 1024 body bytes are opened, more are refused unopened. */
	n = seal_raw(body, 1024, 43, pkt);
	assert_int_equal(disco_open(pkt, n, ba, &got, &c), 0);
	n = seal_raw(body, 1025, 44, pkt);
	assert_int_equal(disco_open(pkt, n, ba, &got, &c), -EBADMSG);

	m = pong("[2001:db8::2]:3478");
	len = disco_build_body(&m, body, sizeof(body));
	assert_int_equal(disco_parse_body(body, (size_t)len + 1, &got), 0);
	assert_memory_equal(&got, &m, sizeof(got));
}

static void test_disco_counter(void **state)
{
	uint64_t last = 0, c, prev;

	(void)state;
	assert_true(disco_next_counter(&last, 1000) == 1000);
	assert_true(last == 1000);
	assert_true(disco_next_counter(&last, 1000) == 1001);
	assert_true(disco_next_counter(&last, 5) == 1002);      /* the clock went back */
	assert_true(disco_next_counter(&last, 0) == 1003);
	assert_true(disco_next_counter(&last, 2000) == 2000);
	prev = last;
	for (uint64_t now = 3000; now > 2000; now -= 97) {
		c = disco_next_counter(&last, now);
		assert_true(c > prev);
		prev = c;
	}
	last = UINT64_MAX - 1;
	assert_true(disco_next_counter(&last, 0) == UINT64_MAX);
	assert_true(disco_next_counter(&last, 0) == UINT64_MAX);  /* saturates, never wraps */
}

static void test_disco_replay(void **state)
{
	struct disco_replay r;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(disco_replay_check(&r, 0), 0);           /* zero is a counter too */
	assert_int_equal(disco_replay_check(&r, 0), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1000), 0);
	assert_int_equal(disco_replay_check(&r, 1000), -EALREADY);
	/* Out of order within the window: each once. */
	assert_int_equal(disco_replay_check(&r, 990), 0);
	assert_int_equal(disco_replay_check(&r, 999), 0);
	assert_int_equal(disco_replay_check(&r, 990), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1000 - DISCO_REPLAY_WINDOW + 1), 0);
	assert_int_equal(disco_replay_check(&r, 1000 - DISCO_REPLAY_WINDOW), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 0), -EALREADY);
	/* Moving up by less than a word and across words keeps what was seen. */
	assert_int_equal(disco_replay_check(&r, 1010), 0);
	assert_int_equal(disco_replay_check(&r, 990), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 999), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 998), 0);
	assert_int_equal(disco_replay_check(&r, 1075), 0);        /* shift 65 */
	assert_int_equal(disco_replay_check(&r, 998), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1000), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1010), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1001), 0);
	assert_int_equal(disco_replay_check(&r, 990), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 997), 0);
	assert_int_equal(disco_replay_check(&r, 1075 - 127), 0);         /* the window's end */
	assert_int_equal(disco_replay_check(&r, 1075 - 127), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1075 - 128), -EALREADY); /* below it */
	/* Far ahead: everything older is now below the window. */
	assert_int_equal(disco_replay_check(&r, 1000000), 0);
	assert_int_equal(disco_replay_check(&r, 1075), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 999999), 0);
	assert_int_equal(disco_replay_check(&r, 999999), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1000000 - 127), 0);
	assert_int_equal(disco_replay_check(&r, 1000000 - 128), -EALREADY);
	/* A bit carried from the first word into the second by a shift under 64. */
	assert_int_equal(disco_replay_check(&r, 1000000 - 60), 0);
	assert_int_equal(disco_replay_check(&r, 1000010), 0);
	assert_int_equal(disco_replay_check(&r, 1000000 - 60), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 1000000 - 59), 0);
	assert_int_equal(disco_replay_check(&r, 999999), -EALREADY);
	/* Every counter of a window, in reverse, then all again. */
	assert_int_equal(disco_replay_check(&r, 2000000), 0);
	for (uint64_t c = 2000000 - 1; c > 2000000 - DISCO_REPLAY_WINDOW; c--)
		assert_int_equal(disco_replay_check(&r, c), 0);
	for (uint64_t c = 2000000; c > 2000000 - DISCO_REPLAY_WINDOW; c--)
		assert_int_equal(disco_replay_check(&r, c), -EALREADY);
	/* Near the top of the range: no wrap, no undefined shift. */
	assert_int_equal(disco_replay_check(&r, UINT64_MAX - 1), 0);
	assert_int_equal(disco_replay_check(&r, UINT64_MAX), 0);
	assert_int_equal(disco_replay_check(&r, UINT64_MAX), -EALREADY);
	assert_int_equal(disco_replay_check(&r, UINT64_MAX - 1), -EALREADY);
	assert_int_equal(disco_replay_check(&r, UINT64_MAX - 2), 0);
	assert_int_equal(disco_replay_check(&r, 0), -EALREADY);
	assert_int_equal(disco_replay_check(&r, 2000000), -EALREADY);
}

static void test_disco_shared(void **state)
{
	/* Low-order points of Curve25519 (0, 1, the order-8 points, p-1, p, p+1), all of
	 * which make the X25519 result zero whatever the private key. */
	static const char *low_order[] = {
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	};
	uint8_t bad[KEY_LEN], shared[DISCO_SHARED_LEN];

	(void)state;
	assert_memory_equal(ab, ba, DISCO_SHARED_LEN);
	assert_false(sodium_is_zero(ab, sizeof(ab)));
	for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
		assert_int_equal(hex_decode(low_order[i], bad, KEY_LEN), 0);
		memset(shared, 0x55, sizeof(shared));
		assert_int_equal(disco_shared(alice.priv, bad, shared), -EINVAL);
		assert_true(sodium_is_zero(shared, sizeof(shared)));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disco_round_trips),
		cmocka_unit_test(test_disco_wire_layout),
		cmocka_unit_test(test_disco_wrong_key),
		cmocka_unit_test(test_disco_flipped_bytes),
		cmocka_unit_test(test_disco_truncated_packets),
		cmocka_unit_test(test_disco_truncated_bodies),
		cmocka_unit_test(test_disco_bad_bodies),
		cmocka_unit_test(test_disco_build_errors),
		cmocka_unit_test(test_disco_is),
		cmocka_unit_test(test_disco_trailing_bytes),
		cmocka_unit_test(test_disco_counter),
		cmocka_unit_test(test_disco_replay),
		cmocka_unit_test(test_disco_shared),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
