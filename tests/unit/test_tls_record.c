/* test_tls_record.c - lib/tls_record.c: known-answer records (computed once with Python's
 * cryptography package, an independent AES-GCM and ChaCha20-Poly1305), seal/open round
 * trips at every size class, tampering, wrong sequence numbers, the header parser's bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../lib/tls_record.h"

static const uint8_t pt[] = "meshvpn record offload";
#define PT_LEN (sizeof(pt) - 1)

/* key 00..1f, salt a0a1a2a3, seq 1, application data */
static const uint8_t aes_rec[] = {
	0x17, 0x03, 0x03, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xdd, 0xca,
	0xcb, 0xe6, 0x1a, 0x04, 0xa8, 0x94, 0x69, 0xbf, 0xce, 0x05, 0x09, 0x0f, 0x2d, 0xe5, 0x2b,
	0x7c, 0xf5, 0x32, 0x09, 0x04, 0x32, 0xfb, 0xbf, 0x3f, 0xe0, 0xa6, 0x00, 0x7a, 0x3a, 0xa0,
	0x47, 0x7a, 0xd4, 0x25, 0xcb, 0x41 };
/* key 40..5f, IV 70..7b, seq 5, application data */
static const uint8_t chacha_rec[] = {
	0x17, 0x03, 0x03, 0x00, 0x26, 0x02, 0xac, 0x53, 0xe0, 0x8d, 0xca, 0xd6, 0xb5, 0xba, 0x10,
	0x59, 0xab, 0xec, 0x81, 0x6c, 0xb8, 0xf3, 0x23, 0x3c, 0x57, 0x7f, 0xd1, 0x75, 0xfb, 0x2d,
	0xb3, 0xd7, 0x3e, 0x8b, 0x98, 0x6c, 0x19, 0x95, 0xd5, 0xa7, 0x0c, 0xfb, 0x2a };

static void seq_bytes(uint8_t *p, uint8_t first, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

/* Both directions of one suite with the vector's key and IV at seq. */
static int dirs(enum tls_rec_suite suite, uint64_t seq, struct tls_rec_dir *w,
		struct tls_rec_dir *r)
{
	uint8_t key[32], iv[12];
	size_t ivlen = suite == TLS_REC_AES256GCM ? 4 : 12;
	int rc;

	if (suite == TLS_REC_AES256GCM) {
		seq_bytes(key, 0, 32);
		seq_bytes(iv, 0xa0, 4);
	} else {
		seq_bytes(key, 0x40, 32);
		seq_bytes(iv, 0x70, 12);
	}
	rc = tls_rec_dir_init(w, suite, key, 32, iv, ivlen, seq);
	if (!rc)
		rc = tls_rec_dir_init(r, suite, key, 32, iv, ivlen, seq);
	return rc;
}

static void known_answer(enum tls_rec_suite suite, const uint8_t *rec, size_t rec_len,
			 uint64_t seq)
{
	struct tls_rec_dir w, r;
	uint8_t out[TLS_REC_BODY_MAX], sealed[64];
	struct tls_rec_hdr h;
	size_t len;

	if (suite == TLS_REC_AES256GCM && !crypto_aead_aes256gcm_is_available()) {
		assert_int_equal(dirs(suite, seq, &w, &r), -ENOTSUP);
		return;
	}
	assert_int_equal(dirs(suite, seq, &w, &r), 0);
	assert_int_equal(tls_record_parse(rec, rec_len, &h), (int)rec_len);
	assert_int_equal(h.type, TLS_REC_APPDATA);
	assert_int_equal(tls_record_seal(&w, TLS_REC_APPDATA, pt, PT_LEN, sealed), rec_len);
	assert_memory_equal(sealed, rec, rec_len);
	assert_int_equal(w.seq, seq + 1);
	assert_int_equal(tls_record_open(&r, rec, rec_len, out, &len), 0);
	assert_int_equal(len, PT_LEN);
	assert_memory_equal(out, pt, PT_LEN);
	assert_int_equal(r.seq, seq + 1);
	/* The same record again is out of sequence: its AAD (and ChaCha's nonce) differ. */
	assert_int_equal(tls_record_open(&r, rec, rec_len, out, &len), -EBADMSG);
	assert_int_equal(r.seq, seq + 1);
	tls_rec_dir_wipe(&w);
	tls_rec_dir_wipe(&r);
}

static void test_known_answers(void **state)
{
	known_answer(TLS_REC_AES256GCM, aes_rec, sizeof(aes_rec), 1);
	known_answer(TLS_REC_CHACHAPOLY, chacha_rec, sizeof(chacha_rec), 5);
}

static void round_trips(enum tls_rec_suite suite)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 1280, 4095, 16383, TLS_REC_PLAIN_MAX };
	static uint8_t plain[TLS_REC_PLAIN_MAX], rec[TLS_REC_PLAIN_MAX + TLS_REC_OVERHEAD_MAX],
		out[TLS_REC_BODY_MAX];
	struct tls_rec_dir w, r;
	struct tls_rec_hdr h;
	size_t n, len;

	if (dirs(suite, UINT64_C(0xfffffffffffffffe), &w, &r) == -ENOTSUP)
		return;
	randombytes_buf(plain, sizeof(plain));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = tls_record_seal(&w, TLS_REC_APPDATA, plain, sizes[i], rec);
		assert_int_equal(n, sizes[i] + tls_record_overhead(suite));
		assert_int_equal(tls_record_parse(rec, n, &h), (int)n);
		/* Any prefix is incomplete, never an error. */
		assert_int_equal(tls_record_parse(rec, n - 1, &h), 0);
		assert_int_equal(tls_record_parse(rec, 4, &h), 0);
		/* One flipped bit anywhere after the header fails the tag. */
		if (n > TLS_REC_HDR) {
			size_t at = TLS_REC_HDR + randombytes_uniform((uint32_t)(n - TLS_REC_HDR));
			rec[at] ^= 0x10;
			assert_int_equal(tls_record_open(&r, rec, n, out, &len), -EBADMSG);
			rec[at] ^= 0x10;
		}
		/* The type is authenticated too. */
		rec[0] = TLS_REC_HANDSHAKE;
		assert_int_equal(tls_record_open(&r, rec, n, out, &len), -EBADMSG);
		rec[0] = TLS_REC_APPDATA;
		assert_int_equal(tls_record_open(&r, rec, n, out, &len), 0);
		assert_int_equal(len, sizes[i]);
		assert_memory_equal(out, plain, len);
	}
	/* The sequence number wrapped past 2^64 - 1 on both sides alike. */
	assert_int_equal(w.seq, r.seq);
	tls_rec_dir_wipe(&w);
	tls_rec_dir_wipe(&r);
}

static void test_round_trips(void **state)
{
	round_trips(TLS_REC_AES256GCM);
	round_trips(TLS_REC_CHACHAPOLY);
}

static void test_parse_bounds(void **state)
{
	uint8_t b[8] = { 0x17, 0x03, 0x03, 0x41, 0x00 };   /* 16640: the largest body */
	struct tls_rec_hdr h;
	struct tls_rec_dir d;
	uint8_t out[TLS_REC_BODY_MAX], key[32] = { 0 }, iv[12] = { 0 };
	size_t len;

	assert_int_equal(tls_record_parse(b, 0, &h), 0);
	assert_int_equal(tls_record_parse(b, 5, &h), 0);
	assert_int_equal(h.len, TLS_REC_BODY_MAX);
	b[4] = 1;
	assert_int_equal(tls_record_parse(b, 5, &h), -EMSGSIZE);
	b[3] = 0xff;
	assert_int_equal(tls_record_parse(b, 8, &h), -EMSGSIZE);
	b[3] = 0;
	b[4] = 3;
	assert_int_equal(tls_record_parse(b, 8, &h), 8);
	b[2] = 0x01;                                        /* TLS 1.0 */
	assert_int_equal(tls_record_parse(b, 8, &h), -EPROTO);
	b[2] = 0x03;
	b[0] = 24;                                          /* heartbeat: never expected */
	assert_int_equal(tls_record_parse(b, 8, &h), -EPROTO);
	b[0] = 0x80;                                        /* an SSLv2 hello */
	assert_int_equal(tls_record_parse(b, 8, &h), -EPROTO);
	/* A body too short for a tag. */
	b[0] = TLS_REC_APPDATA;
	assert_int_equal(tls_rec_dir_init(&d, TLS_REC_CHACHAPOLY, key, 32, iv, 12, 0), 0);
	assert_int_equal(tls_record_open(&d, b, 8, out, &len), -EBADMSG);
	tls_rec_dir_wipe(&d);
	/* Key and IV lengths as mbedtls exports them, nothing else. */
	assert_int_equal(tls_rec_dir_init(&d, TLS_REC_CHACHAPOLY, key, 32, iv, 4, 0), -EINVAL);
	assert_int_equal(tls_rec_dir_init(&d, TLS_REC_CHACHAPOLY, key, 16, iv, 12, 0), -EINVAL);
	assert_int_equal(tls_rec_dir_init(&d, TLS_REC_NONE, key, 32, iv, 12, 0), -EINVAL);
	if (crypto_aead_aes256gcm_is_available())
		assert_int_equal(tls_rec_dir_init(&d, TLS_REC_AES256GCM, key, 32, iv, 12, 0), -EINVAL);
}

static void test_alert_parse(void **state)
{
	uint8_t a[3] = { TLS_ALERT_WARNING, TLS_ALERT_CLOSE_NOTIFY, 0 }, level, desc;

	assert_int_equal(tls_record_alert_parse(a, 2, &level, &desc), 0);
	assert_int_equal(level, TLS_ALERT_WARNING);
	assert_int_equal(desc, TLS_ALERT_CLOSE_NOTIFY);
	assert_int_equal(tls_record_alert_parse(a, 1, &level, &desc), -EPROTO);
	assert_int_equal(tls_record_alert_parse(a, 3, &level, &desc), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_alert_parse),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
