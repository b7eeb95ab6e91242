/* test_stun.c - lib/stun.c: the RFC 5769 vectors (request, IPv4 and IPv6 responses),
 * builders and parser round trips, classic RFC 3489 requests, 420 responses, and every
 * kind of malformed input: truncation at each length, bad lengths, bad fingerprint,
 * attribute overrun, attributes after FINGERPRINT. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "meshvpn/stun.h"

/* RFC 5769 2.1: a request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
 * MESSAGE-INTEGRITY, FINGERPRINT. */
static const uint8_t rfc_req[] =
	"\x00\x01\x00\x58" "\x21\x12\xa4\x42" "\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae"
	"\x80\x22\x00\x10" "STUN test client"
	"\x00\x24\x00\x04" "\x6e\x00\x01\xff"
	"\x80\x29\x00\x08" "\x93\x2f\xf9\xb1\x51\x26\x3b\x36"
	"\x00\x06\x00\x09" "\x65\x76\x74\x6a\x3a\x68\x36\x76\x59\x20\x20\x20"
	"\x00\x08\x00\x14" "\x9a\xea\xa7\x0c\xbf\xd8\xcb\x56\x78\x1e\xf2\xb5\xb2\xd3\xf2\x49\xc1\xb5\x71\xa2"
	"\x80\x28\x00\x04" "\xe5\x7a\x3b\xcf";

/* RFC 5769 2.2: IPv4 response, 192.0.2.1:32853. */
static const uint8_t rfc_resp4[] =
	"\x01\x01\x00\x3c" "\x21\x12\xa4\x42" "\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae"
	"\x80\x22\x00\x0b" "\x74\x65\x73\x74\x20\x76\x65\x63\x74\x6f\x72\x20"
	"\x00\x20\x00\x08" "\x00\x01\xa1\x47\xe1\x12\xa6\x43"
	"\x00\x08\x00\x14" "\x2b\x91\xf5\x99\xfd\x9e\x90\xc3\x8c\x74\x89\xf9\x2a\xf9\xba\x53\xf0\x6b\xe7\xd7"
	"\x80\x28\x00\x04" "\xc0\x7d\x4c\x96";

/* RFC 5769 2.3: IPv6 response, [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t rfc_resp6[] =
	"\x01\x01\x00\x48" "\x21\x12\xa4\x42" "\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae"
	"\x80\x22\x00\x0b" "\x74\x65\x73\x74\x20\x76\x65\x63\x74\x6f\x72\x20"
	"\x00\x20\x00\x14" "\x00\x02\xa1\x47" "\x01\x13\xa9\xfa\xa5\xd3\xf1\x79\xbc\x25\xf4\xb5\xbe\xd2\xb9\xd9"
	"\x00\x08\x00\x14" "\xa3\x82\x95\x4e\x4b\xe6\x7b\xf1\x17\x84\xc9\x7c\x82\x92\xc2\x75\xbf\xe3\xed\x41"
	"\x80\x28\x00\x04" "\xc8\xfb\x0b\x4c";

static const uint8_t rfc_txid[STUN_TXID_LEN] = {
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
};

/* A classic RFC 3489 Binding request: 16-byte id, no cookie, no attributes. */
static const uint8_t classic_req[] =
	"\x00\x01\x00\x00" "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10";

static struct addr_port ap(const char *text)
{
	struct addr_port a;

	assert_int_equal(addr_parse(text, strlen(text), 0, &a), 0);
	return a;
}

static void test_stun_crc32(void **state)
{
	(void)state;
	assert_int_equal(stun_crc32((const uint8_t *)"123456789", 9), 0xcbf43926);
	assert_int_equal(stun_crc32(NULL, 0), 0);
}

static void test_stun_rfc5769_request(void **state)
{
	struct stun_msg m;

	(void)state;
	assert_int_equal(stun_parse(rfc_req, sizeof(rfc_req) - 1, &m), 0);
	assert_int_equal(m.type, STUN_BINDING_REQUEST);
	assert_int_equal(m.length, 0x58);
	assert_memory_equal(stun_txid(&m), rfc_txid, STUN_TXID_LEN);
	assert_int_equal(m.flags, STUN_HAS_FINGERPRINT);
	assert_int_equal(m.n_attrs, 6);
	assert_int_equal(m.n_unknown, 0);      /* PRIORITY, USERNAME, M-I are known */
}

static void test_stun_rfc5769_responses(void **state)
{
	struct addr_port got;
	struct stun_msg m;

	(void)state;
	assert_int_equal(stun_parse(rfc_resp4, sizeof(rfc_resp4) - 1, &m), 0);
	assert_int_equal(m.type, STUN_BINDING_SUCCESS);
	assert_true(m.flags & STUN_HAS_FINGERPRINT);
	assert_int_equal(stun_response_mapped(&m, &got), 0);
	struct addr_port want4 = ap("192.0.2.1:32853");
	assert_memory_equal(&got, &want4, sizeof(got));

	assert_int_equal(stun_parse(rfc_resp6, sizeof(rfc_resp6) - 1, &m), 0);
	assert_int_equal(stun_response_mapped(&m, &got), 0);
	struct addr_port want6 = ap("[2001:db8:1234:5678:11:2233:4455:6677]:32853");
	assert_memory_equal(&got, &want6, sizeof(got));

	/* The request is not a response. */
	assert_int_equal(stun_parse(rfc_req, sizeof(rfc_req) - 1, &m), 0);
	assert_int_equal(stun_response_mapped(&m, &got), -EPROTO);
}

/* Every byte of a message covered by FINGERPRINT changes the CRC. */
static void test_stun_bad_fingerprint(void **state)
{
	const uint8_t *vec[] = { rfc_req, rfc_resp4, rfc_resp6 };
	const size_t lens[] = { sizeof(rfc_req) - 1, sizeof(rfc_resp4) - 1, sizeof(rfc_resp6) - 1 };
	uint8_t buf[128];
	struct stun_msg m;

	(void)state;
	for (int v = 0; v < 3; v++) {
		for (size_t i = 0; i < lens[v]; i++) {
			/* 0x8028 -> 0x8128 / 0x8029: no FINGERPRINT then, but a valid message. */
			if (i == lens[v] - 8 || i == lens[v] - 7)
				continue;
			memcpy(buf, vec[v], lens[v]);
			buf[i] ^= 0x01;
			/* Bytes 2-3 (the length) fail the length check instead; all fail. */
			assert_int_equal(stun_parse(buf, lens[v], &m), -EBADMSG);
			assert_int_equal(m.flags, 0);
		}
	}
}

static void test_stun_truncated(void **state)
{
	struct stun_msg m;

	(void)state;
	for (size_t n = 0; n < sizeof(rfc_req) - 1; n++)
		assert_int_equal(stun_parse(rfc_req, n, &m), -EBADMSG);
	for (size_t n = 0; n < sizeof(rfc_resp6) - 1; n++)
		assert_int_equal(stun_parse(rfc_resp6, n, &m), -EBADMSG);
	assert_int_equal(stun_parse(NULL, 20, &m), -EBADMSG);
}

static void test_stun_bad_header(void **state)
{
	uint8_t buf[64];
	struct stun_msg m;
	int n;

	(void)state;
	n = stun_build_binding_request(rfc_txid, 0, buf, sizeof(buf));
	assert_int_equal(n, 20);
	assert_int_equal(stun_parse(buf, (size_t)n, &m), 0);
	buf[0] = 0x40;                         /* top bits: an RTP or DTLS packet */
	assert_int_equal(stun_parse(buf, (size_t)n, &m), -EBADMSG);
	buf[0] = 0x80;
	assert_int_equal(stun_parse(buf, (size_t)n, &m), -EBADMSG);
	buf[0] = 0;
	memset(buf + 20, 0, 8);
	buf[3] = 4;                            /* length says 4, 4 bytes there: one empty attribute */
	assert_int_equal(stun_parse(buf, 24, &m), 0);
	assert_int_equal(stun_parse(buf, 28, &m), -EBADMSG); /* length != len - 20 */
	buf[3] = 2;                            /* not a multiple of 4 */
	assert_int_equal(stun_parse(buf, 22, &m), -EBADMSG);
	buf[3] = 0;
	buf[4] ^= 0xff;                        /* no cookie: only a request may be classic */
	assert_int_equal(stun_parse(buf, 20, &m), 0);
	assert_true(m.flags & STUN_CLASSIC);
	buf[1] = 0x11;                         /* a classic indication */
	assert_int_equal(stun_parse(buf, 20, &m), -EBADMSG);
}

/* Builds a message of attributes (type, length, value bytes already padded). */
static size_t with_attrs(uint8_t *buf, const uint8_t *attrs, size_t alen)
{
	int n = stun_build_binding_request(rfc_txid, 0, buf, 20);

	assert_int_equal(n, 20);
	memcpy(buf + 20, attrs, alen);
	buf[2] = (uint8_t)(alen >> 8);
	buf[3] = (uint8_t)alen;
	return 20 + alen;
}

static void test_stun_attribute_overrun(void **state)
{
	uint8_t buf[256];
	struct stun_msg m;
	size_t n;

	(void)state;
	/* Length 5 padded to 8, but only 4 value bytes in the message. */
	n = with_attrs(buf, (const uint8_t *)"\x80\x22\x00\x05" "abcd", 8);
	assert_int_equal(stun_parse(buf, n, &m), -EBADMSG);
	/* Length 5, padded, fits. */
	n = with_attrs(buf, (const uint8_t *)"\x80\x22\x00\x05" "abcde\0\0\0", 12);
	assert_int_equal(stun_parse(buf, n, &m), 0);
	/* A value length far past the end. */
	n = with_attrs(buf, (const uint8_t *)"\x80\x22\xff\xfc" "abcd", 8);
	assert_int_equal(stun_parse(buf, n, &m), -EBADMSG);
	/* XOR-MAPPED-ADDRESS of the wrong size for its family, and an unknown family. */
	n = with_attrs(buf, (const uint8_t *)"\x00\x20\x00\x14" "\x00\x01\x00\x00" "\0\0\0\0" "\0\0\0\0" "\0\0\0\0" "\0\0\0\0", 24);
	assert_int_equal(stun_parse(buf, n, &m), -EBADMSG);
	n = with_attrs(buf, (const uint8_t *)"\x00\x20\x00\x08" "\x00\x03\x00\x00" "\0\0\0\0", 12);
	assert_int_equal(stun_parse(buf, n, &m), -EBADMSG);
	n = with_attrs(buf, (const uint8_t *)"\x00\x01\x00\x04" "\x00\x01\x00\x00", 8);
	assert_int_equal(stun_parse(buf, n, &m), -EBADMSG);
	/* Too many attributes. */
	memset(buf + 20, 0, 4 * (STUN_MAX_ATTRS + 1));
	for (int i = 0; i <= STUN_MAX_ATTRS; i++)
		buf[20 + 4 * i] = 0x80;            /* empty comprehension-optional ones */
	n = with_attrs(buf, buf + 20, 4 * STUN_MAX_ATTRS);
	assert_int_equal(stun_parse(buf, n, &m), 0);
	n = with_attrs(buf, buf + 20, 4 * (STUN_MAX_ATTRS + 1));
	assert_int_equal(stun_parse(buf, n, &m), -EBADMSG);
}

static void test_stun_fingerprint_last(void **state)
{
	uint8_t buf[64];
	struct stun_msg m;
	int n;

	(void)state;
	n = stun_build_binding_request(rfc_txid, 1, buf, sizeof(buf));
	assert_int_equal(n, 28);
	assert_int_equal(stun_parse(buf, (size_t)n, &m), 0);
	assert_true(m.flags & STUN_HAS_FINGERPRINT);
	/* An attribute after it (the length updated, so only the order is wrong). */
	memcpy(buf + 28, "\x80\x22\x00\x00", 4);
	buf[3] = 12;
	assert_int_equal(stun_parse(buf, 32, &m), -EBADMSG);
	/* FINGERPRINT of the wrong length. */
	n = (int)with_attrs(buf, (const uint8_t *)"\x80\x28\x00\x08" "\0\0\0\0\0\0\0\0", 12);
	assert_int_equal(stun_parse(buf, (size_t)n, &m), -EBADMSG);
	/* No room. */
	assert_int_equal(stun_build_binding_request(rfc_txid, 1, buf, 27), -ENOSPC);
	assert_int_equal(stun_build_binding_request(rfc_txid, 0, buf, 19), -ENOSPC);
}

static void test_stun_round_trip(void **state)
{
	static const char *const addrs[] = {
		"192.0.2.1:32853", "203.0.113.250:1", "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
		"[::1]:65535", "[::ffff:192.0.2.1]:3478",
	};
	uint8_t req[64], resp[STUN_RESPONSE_MAX];
	struct stun_msg q, r;
	struct addr_port got;

	(void)state;
	for (int fp = 0; fp < 2; fp++) {
		for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
			struct addr_port want = ap(addrs[i]);
			int n = stun_build_binding_request(rfc_txid, fp, req, sizeof(req));

			assert_int_equal(stun_parse(req, (size_t)n, &q), 0);
			assert_int_equal(!!(q.flags & STUN_HAS_FINGERPRINT), fp);
			n = stun_build_binding_response(&q, &want, resp, sizeof(resp));
			assert_true(n > 0);
			assert_int_equal(stun_parse(resp, (size_t)n, &r), 0);
			assert_memory_equal(r.id, q.id, STUN_ID_LEN);
			assert_int_equal(!!(r.flags & STUN_HAS_FINGERPRINT), fp);
			assert_true(r.flags & STUN_HAS_XOR_MAPPED);
			assert_false(r.flags & STUN_HAS_MAPPED);
			assert_int_equal(stun_response_mapped(&r, &got), 0);
			assert_memory_equal(&got, &want, sizeof(got));
			/* No room: nothing half-written is claimed. */
			assert_int_equal(stun_build_binding_response(&q, &want, resp, (size_t)n - 1), -ENOSPC);
		}
	}
}

/* The RFC 5769 IPv6 address XORed as the builder does it gives the vector's bytes. */
static void test_stun_ipv6_xor(void **state)
{
	uint8_t req[20], resp[STUN_RESPONSE_MAX];
	struct addr_port a = ap("[2001:db8:1234:5678:11:2233:4455:6677]:32853");
	struct stun_msg q;
	int n;

	(void)state;
	stun_build_binding_request(rfc_txid, 0, req, sizeof(req));
	assert_int_equal(stun_parse(req, sizeof(req), &q), 0);
	n = stun_build_binding_response(&q, &a, resp, sizeof(resp));
	assert_int_equal(n, 20 + 24);
	assert_memory_equal(resp + 20, rfc_resp6 + 36, 24);   /* the XOR-MAPPED-ADDRESS */
	a = ap("192.0.2.1:32853");
	n = stun_build_binding_response(&q, &a, resp, sizeof(resp));
	assert_memory_equal(resp + 20, rfc_resp4 + 36, 12);
}

static void test_stun_classic(void **state)
{
	uint8_t resp[STUN_RESPONSE_MAX];
	struct addr_port a = ap("198.51.100.7:40000");
	struct stun_msg q;
	int n;

	(void)state;
	assert_int_equal(stun_parse(classic_req, sizeof(classic_req) - 1, &q), 0);
	assert_int_equal(q.flags, STUN_CLASSIC);
	n = stun_build_binding_response(&q, &a, resp, sizeof(resp));
	assert_int_equal(n, 20 + 12 + 12);
	assert_memory_equal(resp, "\x01\x01\x00\x18", 4);
	assert_memory_equal(resp + 4, classic_req + 4, 16);   /* its own 16-byte id */
	/* MAPPED-ADDRESS in the clear first, then the XOR one under 0x8020. */
	assert_memory_equal(resp + 20, "\x00\x01\x00\x08\x00\x01\x9c\x40\xc6\x33\x64\x07", 12);
	assert_memory_equal(resp + 32, "\x80\x20\x00\x08\x00\x01", 6);
	assert_int_equal(resp[38], 0x9c ^ 0x01);
	assert_int_equal(resp[39], 0x40 ^ 0x02);
	assert_int_equal(resp[40], 0xc6 ^ 0x01);
	assert_int_equal(resp[43], 0x07 ^ 0x04);
}

static void test_stun_unknown_attributes(void **state)
{
	uint8_t buf[128], resp[STUN_RESPONSE_MAX];
	struct stun_msg q, r;
	size_t n;
	int rn;

	(void)state;
	/* RESPONSE-PORT (0x0027), an unassigned 0x7777 twice, CHANGE-REQUEST asking for a
	 * change of port, and a comprehension-optional 0x8888 (ignored). */
	n = with_attrs(buf, (const uint8_t *)
		"\x00\x27\x00\x02" "\x12\x34\0\0"
		"\x77\x77\x00\x00" "\x77\x77\x00\x00"
		"\x00\x03\x00\x04" "\x00\x00\x00\x02"
		"\x88\x88\x00\x00", 28);
	assert_int_equal(stun_parse(buf, n, &q), 0);
	assert_int_equal(q.n_unknown, 3);
	assert_int_equal(q.unknown[0], 0x0027);
	assert_int_equal(q.unknown[1], 0x7777);
	assert_int_equal(q.unknown[2], 0x0003);
	rn = stun_build_unknown_response(&q, resp, sizeof(resp));
	assert_true(rn > 0);
	assert_int_equal(stun_parse(resp, (size_t)rn, &r), 0);
	assert_int_equal(r.type, STUN_BINDING_ERROR);
	assert_true(r.flags & STUN_HAS_ERROR_CODE);
	assert_int_equal(r.error_code, 420);
	assert_memory_equal(stun_txid(&r), rfc_txid, STUN_TXID_LEN);
	/* UNKNOWN-ATTRIBUTES after the 24-byte ERROR-CODE. */
	assert_memory_equal(resp + 20 + 28, "\x00\x0a\x00\x06\x00\x27\x77\x77\x00\x03\x00\x00", 12);
	struct addr_port none;
	assert_int_equal(stun_response_mapped(&r, &none), -EPROTO);

	/* CHANGE-REQUEST with no change asked is fine. */
	n = with_attrs(buf, (const uint8_t *)"\x00\x03\x00\x04" "\x00\x00\x00\x00", 8);
	assert_int_equal(stun_parse(buf, n, &q), 0);
	assert_int_equal(q.n_unknown, 0);
	/* A success response without an address. */
	n = with_attrs(buf, (const uint8_t *)"", 0);
	buf[0] = 0x01;
	buf[1] = 0x01;
	assert_int_equal(stun_parse(buf, n, &r), 0);
	assert_int_equal(stun_response_mapped(&r, &none), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stun_crc32),
		cmocka_unit_test(test_stun_rfc5769_request),
		cmocka_unit_test(test_stun_rfc5769_responses),
		cmocka_unit_test(test_stun_bad_fingerprint),
		cmocka_unit_test(test_stun_truncated),
		cmocka_unit_test(test_stun_bad_header),
		cmocka_unit_test(test_stun_attribute_overrun),
		cmocka_unit_test(test_stun_fingerprint_last),
		cmocka_unit_test(test_stun_round_trip),
		cmocka_unit_test(test_stun_ipv6_xor),
		cmocka_unit_test(test_stun_classic),
		cmocka_unit_test(test_stun_unknown_attributes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
