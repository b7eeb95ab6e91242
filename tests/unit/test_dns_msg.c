/* test_dns_msg.c - lib/dns_msg.c: packets as dig and a resolver send them (query with an
 * EDNS cookie, an A answer, an NXDOMAIN with SOA), query errors and the RCODE each gets,
 * compression loops (self, mutual, forward, into the header, over-long chains), oversize
 * names and labels, truncation at every length, counts that lie, OPT in the wrong
 * section, PTR names both ways, answer TTL minimum and RFC 2308 negative TTL, ID rewrite,
 * TTL ageing and stale TTLs, OPT strip/append, builders and TC over the UDP limit. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "meshvpn/dns_msg.h"

/* dig example.com A: RD and AD set, EDNS 1232 with an 8-byte client COOKIE. */
static const uint8_t dig_query[] =
	"\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01"
	"\x07" "example" "\x03" "com" "\x00" "\x00\x01\x00\x01"
	"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0c"
	"\x00\x0a\x00\x08" "\x01\x02\x03\x04\x05\x06\x07\x08";

/* Its answer: example.com 3600 A 93.184.215.14, the owner compressed, an OPT. */
static const uint8_t a_response[] =
	"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01"
	"\x07" "example" "\x03" "com" "\x00" "\x00\x01\x00\x01"
	"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd7\x0e"
	"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

/* nope.example.com A: NXDOMAIN, SOA example.com 3600 with MINIMUM 900, its names
 * compressed (the owner into the question, RNAME into MNAME). */
static const uint8_t nx_response[] =
	"\xab\xcd\x81\x83\x00\x01\x00\x00\x00\x01\x00\x01"
	"\x04" "nope" "\x07" "example" "\x03" "com" "\x00" "\x00\x01\x00\x01"
	"\xc0\x11\x00\x06\x00\x01\x00\x00\x0e\x10\x00\x2c"
	"\x02" "ns" "\x05" "icann" "\x03" "org" "\x00"
	"\x03" "noc" "\x03" "dns" "\xc0\x31"
	"\x78\xa6\x4e\x40\x00\x00\x1c\x20\x00\x00\x0e\x10\x00\x12\x75\x00\x00\x00\x03\x84"
	"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

#define LEN(a) (sizeof(a) - 1)

/* A message being put together by hand. */
struct pkt {
	uint8_t b[2048];
	size_t n;
};

static void p_bytes(struct pkt *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}
static void p16(struct pkt *p, unsigned v) { p->b[p->n++] = (uint8_t)(v >> 8); p->b[p->n++] = (uint8_t)v; }
static void p32(struct pkt *p, uint32_t v) { p16(p, v >> 16); p16(p, v & 0xffff); }
static void p_header(struct pkt *p, unsigned flags, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
	p->n = 0;
	p16(p, 0x4242); p16(p, flags); p16(p, qd); p16(p, an); p16(p, ns); p16(p, ar);
}
static void p_question(struct pkt *p, const char *wire, unsigned type)
{
	p_bytes(p, wire, strlen(wire) + 1);
	p16(p, type);
	p16(p, DNS_CLASS_IN);
}
static void p_rr_fixed(struct pkt *p, unsigned type, uint32_t ttl, unsigned rdlen)
{
	p16(p, type); p16(p, type == DNS_TYPE_OPT ? 1232 : DNS_CLASS_IN); p32(p, ttl); p16(p, rdlen);
}
static void p_a(struct pkt *p, uint32_t ttl)
{
	p16(p, 0xc00c);
	p_rr_fixed(p, DNS_TYPE_A, ttl, 4);
	p32(p, 0xc0000201);
}
static void p_opt(struct pkt *p)
{
	p->b[p->n++] = 0;
	p_rr_fixed(p, DNS_TYPE_OPT, 0, 0);
}

/* Parses a heap copy of exactly len bytes, so ASan sees any read past it. */
static int parse_q(const uint8_t *d, size_t len, struct dns_query *q)
{
	uint8_t *c = malloc(len ? len : 1);
	int rc;

	memcpy(c, d, len);
	rc = dns_parse_query(c, len, q);
	free(c);
	return rc;
}
static int parse_r(const uint8_t *d, size_t len, struct dns_response *r)
{
	uint8_t *c = malloc(len ? len : 1);
	int rc;

	memcpy(c, d, len);
	rc = dns_parse_response(c, len, r);
	free(c);
	return rc;
}

static struct dns_name name(const char *text)
{
	struct dns_name n;

	assert_int_equal(dns_name_from_text(text, strlen(text), &n), 0);
	return n;
}

static void test_dns_msg_dig_query(void **state)
{
	struct dns_query q;

	(void)state;
	assert_int_equal(parse_q(dig_query, LEN(dig_query), &q), 0);
	assert_int_equal(q.hdr.id, 0x1234);
	assert_int_equal(q.flags, DNS_Q_HEADER | DNS_Q_QUESTION | DNS_Q_EDNS);
	assert_int_equal(q.qtype, DNS_TYPE_A);
	assert_int_equal(q.qclass, DNS_CLASS_IN);
	assert_string_equal(q.qname.text, "example.com");
	assert_int_equal(q.qname.wire_len, 13);
	assert_int_equal(q.qname.n_labels, 2);
	assert_int_equal(q.question_end, 12 + 13 + 4);
	assert_int_equal(q.edns.udp_size, 1232);
	assert_int_equal(q.edns.version, 0);
	assert_int_equal(q.edns.options_len, 12);
	assert_int_equal(q.udp_limit, 1232);
}

static void test_dns_msg_query_case(void **state)
{
	struct dns_query q;
	struct dns_response r;
	struct pkt p;
	uint8_t out[512];
	int n;

	(void)state;
	p_header(&p, DNS_FLAG_RD, 1, 0, 0, 0);
	p_question(&p, "\x03" "WwW" "\x07" "ExAmPlE" "\x03" "CoM", DNS_TYPE_AAAA);
	assert_int_equal(parse_q(p.b, p.n, &q), 0);
	assert_string_equal(q.qname.text, "www.example.com");
	assert_memory_equal(q.qname_raw, "\x03" "WwW" "\x07" "ExAmPlE", 12);
	assert_int_equal(q.udp_limit, 512);
	assert_false(q.flags & DNS_Q_EDNS);
	/* The answer echoes the client's spelling (0x20 case randomisation) and no OPT. */
	n = dns_build_answer(&q, NULL, 0, 0, q.udp_limit, out, sizeof(out));
	assert_int_equal(n, p.n);
	assert_memory_equal(out + 12, p.b + 12, p.n - 12);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_int_equal(r.hdr.flags, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA);
	assert_false(r.flags & DNS_R_EDNS);
}

static void test_dns_msg_query_errors(void **state)
{
	struct dns_query q;
	struct pkt p;
	uint8_t out[512];
	int n;

	(void)state;
	assert_int_equal(parse_q(dig_query, 11, &q), -EMSGSIZE);
	assert_int_equal(dns_query_rcode(-EMSGSIZE), -1);
	assert_int_equal(dns_build_error(&q, DNS_RCODE_FORMERR, out, sizeof(out)), -EINVAL);

	p_header(&p, DNS_FLAG_QR, 1, 0, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	assert_int_equal(parse_q(p.b, p.n, &q), -EPROTO);
	assert_int_equal(dns_query_rcode(-EPROTO), -1);

	p_header(&p, 2 << 11, 1, 0, 0, 0);          /* STATUS */
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	n = parse_q(p.b, p.n, &q);
	assert_int_equal(n, -EOPNOTSUPP);
	assert_int_equal(dns_query_rcode(n), DNS_RCODE_NOTIMP);
	n = dns_build_error(&q, DNS_RCODE_NOTIMP, out, sizeof(out));
	assert_int_equal(n, 12);                    /* no question read: none echoed */
	assert_int_equal(out[3] & 0xf, DNS_RCODE_NOTIMP);
	assert_int_equal(out[2] >> 3 & 0xf, 2);     /* the opcode comes back */

	/* No question, two questions, answer or authority records in a query. */
	for (int i = 0; i < 4; i++) {
		p_header(&p, 0, i == 0 ? 0 : i == 1 ? 2 : 1, i == 2, i == 3, 0);
		p_question(&p, "\x01" "a", DNS_TYPE_A);
		n = parse_q(p.b, p.n, &q);
		assert_int_equal(n, -EBADMSG);
		assert_int_equal(dns_query_rcode(n), DNS_RCODE_FORMERR);
	}

	/* Two OPTs: FORMERR, with the question echoed. */
	p_header(&p, 0, 1, 0, 0, 2);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_opt(&p);
	p_opt(&p);
	assert_int_equal(parse_q(p.b, p.n, &q), -EBADMSG);
	assert_true(q.flags & DNS_Q_QUESTION);
	n = dns_build_error(&q, DNS_RCODE_FORMERR, out, sizeof(out));
	assert_int_equal(n, 12 + 3 + 4);
	assert_memory_equal(out + 12, "\x01" "a" "\x00\x00\x01\x00\x01", 7);

	/* An OPT owned by another name; bytes after the last record. */
	p_header(&p, 0, 1, 0, 0, 1);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p16(&p, 0xc00c);
	p_rr_fixed(&p, DNS_TYPE_OPT, 0, 0);
	assert_int_equal(parse_q(p.b, p.n, &q), -EBADMSG);
	p_header(&p, 0, 1, 0, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p.b[p.n++] = 0;
	assert_int_equal(parse_q(p.b, p.n, &q), -EBADMSG);

	/* An option running past the OPT's RDATA. */
	p_header(&p, 0, 1, 0, 0, 1);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p.b[p.n++] = 0;
	p_rr_fixed(&p, DNS_TYPE_OPT, 0, 6);
	p16(&p, 10); p16(&p, 8); p16(&p, 0);
	assert_int_equal(parse_q(p.b, p.n, &q), -EBADMSG);

	/* EDNS version 1: BADVERS, in an OPT of version 0 (RCODE 16 = 1 << 4 | 0). */
	p_header(&p, DNS_FLAG_RD, 1, 0, 0, 1);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p.b[p.n++] = 0;
	p_rr_fixed(&p, DNS_TYPE_OPT, 0x00018000, 0);
	n = parse_q(p.b, p.n, &q);
	assert_int_equal(n, -EPROTONOSUPPORT);
	assert_int_equal(dns_query_rcode(n), DNS_RCODE_BADVERS);
	n = dns_build_error(&q, DNS_RCODE_BADVERS, out, sizeof(out));
	assert_int_equal(n, 12 + 7 + 11);
	assert_int_equal(out[3] & 0xf, 0);
	assert_memory_equal(out + 19, "\x00\x00\x29\x04\xd0\x01\x00\x80\x00\x00\x00", 11);
	/* An extended RCODE needs the client's OPT. */
	q.flags &= ~(unsigned)DNS_Q_EDNS;
	assert_int_equal(dns_build_error(&q, DNS_RCODE_BADVERS, out, sizeof(out)), -EINVAL);
}

/* Every proper prefix of a valid message is refused, and nothing reads past it. */
static void test_dns_msg_truncated(void **state)
{
	const struct { const uint8_t *p; size_t n; } msgs[] = {
		{ dig_query, LEN(dig_query) }, { a_response, LEN(a_response) },
		{ nx_response, LEN(nx_response) },
	};
	struct dns_query q;
	struct dns_response r;

	(void)state;
	assert_int_equal(parse_r(a_response, LEN(a_response), &r), 0);
	assert_int_equal(parse_r(nx_response, LEN(nx_response), &r), 0);
	for (size_t m = 0; m < 3; m++) {
		for (size_t n = 0; n < msgs[m].n; n++) {
			assert_int_not_equal(parse_q(msgs[m].p, n, &q), 0);
			assert_int_equal(parse_r(msgs[m].p, n, &r), -EBADMSG);
			assert_int_equal(r.flags, 0);
		}
	}
}

static void test_dns_msg_compression_loops(void **state)
{
	struct dns_response r;
	struct pkt p;
	size_t at;

	(void)state;
	/* An answer owned by a pointer to itself. */
	p_header(&p, DNS_FLAG_QR, 1, 1, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	at = p.n;
	p16(&p, 0xc000 | (unsigned)at);
	p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
	p32(&p, 1);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	/* A label, then a pointer back to that label: a.a.a... */
	p.n = at;
	p.b[p.n++] = 1; p.b[p.n++] = 'x';
	p16(&p, 0xc000 | (unsigned)at);
	p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
	p32(&p, 1);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	/* Two pointers at each other: the second answer's owner points to the first's
	 * rdata, which holds a pointer back to the second owner. */
	p_header(&p, DNS_FLAG_QR, 1, 2, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p16(&p, 0xc00c);
	p_rr_fixed(&p, 99, 60, 2);
	at = p.n;
	p16(&p, 0xc000 | (unsigned)(at + 2));
	p16(&p, 0xc000 | (unsigned)at);
	p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
	p32(&p, 1);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	/* A forward pointer (to the next record's owner). */
	p_header(&p, DNS_FLAG_QR, 1, 2, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	at = p.n;
	p16(&p, 0xc000 | (unsigned)(at + 16));
	p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
	p32(&p, 1);
	p_a(&p, 60);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	/* Into the header; a reserved label type (0x40). */
	p.b[at + 1] = 4;
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p.b[at] = 0x40;
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p.b[at] = 0xc0;
	p.b[at + 1] = 0x0c;
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
}

/* Pointers to bytes a cache rewrites (TTLs) or drops (a trailing OPT) are refused. */
static void test_dns_msg_pointer_overlap(void **state)
{
	struct dns_response r;
	struct pkt p;

	(void)state;
	/* The second owner points at the first record's TTL, which reads as "x.". */
	p_header(&p, DNS_FLAG_QR, 1, 2, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p16(&p, 0xc00c);
	p16(&p, DNS_TYPE_A); p16(&p, DNS_CLASS_IN); p32(&p, 0x01780000); p16(&p, 4); p32(&p, 1);
	p16(&p, 0xc000 | 25);
	p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
	p32(&p, 1);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	/* The same bytes in an opaque RDATA may be pointed at. */
	p.b[21] = 0; p.b[22] = 99;
	p.b[25] = 0; p.b[26] = 0; p.b[27] = 0; p.b[28] = 60;
	p.b[29] = 0; p.b[30] = 4; p.b[31] = 1; p.b[32] = 'x'; p.b[33] = 0; p.b[34] = 0;
	p.b[35] = 0xc0; p.b[36] = 31;
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	/* A name that runs on past its own start after a pointer. */
	p.b[34] = 3;
	p.b[36] = 34;
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
}

/* Answer i is owned by a pointer to answer i-1's owner: i jumps for the i-th. */
static void test_dns_msg_pointer_chain(void **state)
{
	struct dns_response r;
	struct pkt p;

	(void)state;
	for (unsigned chain = DNS_PTR_JUMPS_MAX; chain <= DNS_PTR_JUMPS_MAX + 1; chain++) {
		size_t prev = 12;

		p_header(&p, DNS_FLAG_QR, 1, chain, 0, 0);
		p_question(&p, "\x01" "a", DNS_TYPE_A);
		for (unsigned i = 0; i < chain; i++) {
			size_t at = p.n;

			p16(&p, 0xc000 | (unsigned)prev);
			p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
			p32(&p, i);
			prev = at;
		}
		assert_int_equal(parse_r(p.b, p.n, &r), chain <= DNS_PTR_JUMPS_MAX ? 0 : -EBADMSG);
	}
}

static void test_dns_msg_oversize(void **state)
{
	char text[400];
	uint8_t wire[300];
	struct dns_name n;
	struct dns_query q;
	struct pkt p;
	size_t w = 0;

	(void)state;
	/* 63 + 63 + 63 + 61: 255 bytes in wire form, the most there may be. */
	memset(text, 'a', sizeof(text));
	text[63] = text[127] = text[191] = '.';
	assert_int_equal(dns_name_from_text(text, 253, &n), 0);
	assert_int_equal(n.wire_len, 255);
	assert_int_equal(n.text_len, 253);
	assert_int_equal(dns_name_from_text(text, 254, &n), -EINVAL);
	/* A 64-byte label. */
	assert_int_equal(dns_name_from_text(text + 192, 64, &n), -EINVAL);
	assert_int_equal(dns_name_from_text(text + 192, 63, &n), 0);
	assert_int_equal(dns_name_from_text("a..b", 4, &n), -EINVAL);
	assert_int_equal(dns_name_from_text("", 0, &n), -EINVAL);
	assert_int_equal(dns_name_from_text("a b", 3, &n), -EINVAL);

	/* The same limits on the wire. */
	for (int l = 0; l < 4; l++) {
		unsigned len = l < 3 ? 63 : 61;

		wire[w++] = (uint8_t)len;
		memset(wire + w, 'b', len);
		w += len;
	}
	wire[w++] = 0;
	assert_int_equal(w, 255);
	assert_int_equal(dns_name_from_wire(wire, w, &n), 0);
	wire[192] = 62;                          /* the last label one longer */
	memmove(wire + 193 + 62, wire + 193 + 61, 1);
	wire[193 + 61] = 'b';
	assert_int_equal(dns_name_from_wire(wire, 256, &n), -EBADMSG);
	p_header(&p, 0, 1, 0, 0, 0);
	p_bytes(&p, wire, 256);
	p16(&p, 1); p16(&p, 1);
	assert_int_equal(parse_q(p.b, p.n, &q), -EBADMSG);
	/* A 64-byte label in a query. */
	p_header(&p, 0, 1, 0, 0, 0);
	p.b[p.n++] = 64;
	memset(p.b + p.n, 'c', 64);
	p.n += 64;
	p.b[p.n++] = 0;
	p16(&p, 1); p16(&p, 1);
	assert_int_equal(parse_q(p.b, p.n, &q), -EBADMSG);
}

/* A compressed name that is only too long once its pointer is followed. */
static void test_dns_msg_oversize_compressed(void **state)
{
	struct dns_response r;
	struct pkt p;

	(void)state;
	p_header(&p, DNS_FLAG_QR, 1, 1, 0, 0);
	for (int l = 0; l < 3; l++) {
		p.b[p.n++] = 63;
		memset(p.b + p.n, 'q', 63);
		p.n += 63;
	}
	p.b[p.n++] = 0;                         /* 193 bytes */
	p16(&p, 1); p16(&p, 1);
	p.b[p.n++] = 62;
	memset(p.b + p.n, 'o', 62);
	p.n += 62;
	p16(&p, 0xc00c);                        /* 63 + 193 = 256 */
	p_rr_fixed(&p, DNS_TYPE_A, 60, 4);
	p32(&p, 1);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p.b[12 + 193 + 4] = 61;                 /* 255: fine, with one byte left over */
	memmove(p.b + 12 + 193 + 4 + 62, p.b + 12 + 193 + 4 + 63, p.n - (12 + 193 + 4 + 63));
	p.n--;
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
}

static void test_dns_msg_counts_lie(void **state)
{
	struct dns_response r;
	struct pkt p;

	(void)state;
	p_header(&p, DNS_FLAG_QR, 1, 2, 0, 0);    /* says 2, has 1 */
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_a(&p, 60);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p.b[7] = 0;                              /* says 0, has 1 */
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p.b[7] = 1;
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	p.b[p.n - 5] = 5;                        /* RDLENGTH past the end */
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p.b[p.n - 5] = 3;                        /* an A of 3 bytes */
	assert_int_equal(parse_r(p.b, p.n - 1, &r), -EBADMSG);
	p_header(&p, DNS_FLAG_QR, 2, 0, 0, 0);    /* two questions */
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_question(&p, "\x01" "b", DNS_TYPE_A);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p_header(&p, DNS_FLAG_QR, 0, 0, 0, 0);    /* a FORMERR may come without one */
	p.b[3] = 1;
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_FORMERR);
	assert_false(r.flags & DNS_R_QUESTION);
	p_header(&p, 0, 1, 0, 0, 0);              /* not a response */
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
	p_header(&p, DNS_FLAG_QR, 0, DNS_RECORDS_MAX, 1, 0);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
}

static void test_dns_msg_opt_section(void **state)
{
	struct dns_response r;
	struct pkt p;

	(void)state;
	for (int s = 0; s < 3; s++) {
		p_header(&p, DNS_FLAG_QR, 1, s == 0, s == 1, s == 2);
		p_question(&p, "\x01" "a", DNS_TYPE_A);
		p_opt(&p);
		assert_int_equal(parse_r(p.b, p.n, &r), s == 2 ? 0 : -EBADMSG);
	}
	assert_true(r.flags & DNS_R_EDNS);
	assert_int_equal(r.edns.udp_size, 1232);
	assert_int_equal(r.opt_off, 19);
	p_header(&p, DNS_FLAG_QR, 1, 0, 0, 2);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_opt(&p);
	p_opt(&p);
	assert_int_equal(parse_r(p.b, p.n, &r), -EBADMSG);
}

static void test_dns_msg_responses(void **state)
{
	struct dns_response r;

	(void)state;
	assert_int_equal(parse_r(a_response, LEN(a_response), &r), 0);
	assert_int_equal(r.hdr.id, 0x1234);
	assert_int_equal(r.flags, DNS_R_QUESTION | DNS_R_EDNS);
	assert_int_equal(r.rcode, DNS_RCODE_NOERROR);
	assert_string_equal(r.qname.text, "example.com");
	assert_int_equal(r.qtype, DNS_TYPE_A);
	assert_int_equal(r.min_ttl, 3600);
	assert_int_equal(r.an_off, 29);
	assert_int_equal(r.ns_off, 45);
	assert_int_equal(r.ar_off, 45);
	assert_int_equal(r.end, LEN(a_response));

	assert_int_equal(parse_r(nx_response, LEN(nx_response), &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(r.flags, DNS_R_QUESTION | DNS_R_EDNS | DNS_R_SOA);
	assert_int_equal(r.min_ttl, 0);
	assert_int_equal(r.neg_ttl, 900);        /* min(SOA TTL 3600, MINIMUM 900) */
	assert_string_equal(r.qname.text, "nope.example.com");
}

static void test_dns_msg_ttls(void **state)
{
	struct dns_response r;
	struct pkt p;

	(void)state;
	p_header(&p, DNS_FLAG_QR | DNS_FLAG_TC, 1, 3, 0, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_a(&p, 300);
	p_a(&p, 60);
	p_a(&p, 86400);
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	assert_int_equal(r.min_ttl, 60);
	assert_true(r.flags & DNS_R_TC);
	/* A TTL with the top bit set counts as 0 (RFC 2181 8). */
	p_a(&p, 0x80000000u);
	p.b[7] = 4;
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	assert_int_equal(r.min_ttl, 0);

	/* NODATA: SOA TTL below MINIMUM. */
	p_header(&p, DNS_FLAG_QR, 1, 0, 1, 0);
	p_question(&p, "\x01" "a", DNS_TYPE_AAAA);
	p16(&p, 0xc00c);
	p_rr_fixed(&p, DNS_TYPE_SOA, 120, 2 + 2 + 20);
	p16(&p, 0xc00c);
	p16(&p, 0xc00c);
	p32(&p, 1); p32(&p, 2); p32(&p, 3); p32(&p, 4); p32(&p, 3600);
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_NOERROR);
	assert_int_equal(r.neg_ttl, 120);
	/* SOA RDATA one byte short of its fixed part. */
	p.b[12 + 7 + 11] = 23;
	assert_int_equal(parse_r(p.b, p.n - 1, &r), -EBADMSG);
}

static void test_dns_msg_cache_rewrite(void **state)
{
	struct dns_response r;
	struct pkt p;
	int n;

	(void)state;
	p_header(&p, DNS_FLAG_QR, 1, 2, 0, 1);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_a(&p, 300);
	p_a(&p, 40);
	p_opt(&p);
	assert_int_equal(dns_msg_set_id(p.b, p.n, 0xbeef), 0);
	assert_int_equal(dns_msg_age(p.b, p.n, 50), 0);
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	assert_int_equal(r.hdr.id, 0xbeef);
	assert_int_equal(r.min_ttl, 0);
	assert_memory_equal(p.b + 19 + 6, "\x00\x00\x00\xfa", 4);     /* 300 - 50 */
	assert_memory_equal(p.b + 35 + 6, "\x00\x00\x00\x00", 4);     /* 40 - 50: 0 */
	assert_int_equal(r.edns.flags, 0);                            /* OPT untouched */
	assert_int_equal(dns_msg_set_ttl(p.b, p.n, DNS_STALE_TTL), 0);
	assert_int_equal(parse_r(p.b, p.n, &r), 0);
	assert_int_equal(r.min_ttl, 30);
	assert_memory_equal(p.b + 19 + 6, "\x00\x00\x00\x1e", 4);

	/* The upstream's OPT out, ours in. */
	n = dns_msg_strip_opt(p.b, p.n);
	assert_int_equal(n, p.n - 11);
	assert_int_equal(parse_r(p.b, (size_t)n, &r), 0);
	assert_false(r.flags & DNS_R_EDNS);
	assert_int_equal(dns_msg_strip_opt(p.b, (size_t)n), n);
	assert_int_equal(dns_msg_append_opt(p.b, (size_t)n, (size_t)n + 10, DNS_EDNS_DO), -ENOSPC);
	n = dns_msg_append_opt(p.b, (size_t)n, sizeof(p.b), DNS_EDNS_DO);
	assert_int_equal(n, p.n);
	assert_int_equal(parse_r(p.b, (size_t)n, &r), 0);
	assert_int_equal(r.edns.flags, DNS_EDNS_DO);
	assert_int_equal(dns_msg_append_opt(p.b, (size_t)n, sizeof(p.b), 0), -EBADMSG);
	/* OPT not last: not removed. */
	p_header(&p, DNS_FLAG_QR, 1, 0, 0, 2);
	p_question(&p, "\x01" "a", DNS_TYPE_A);
	p_opt(&p);
	p_a(&p, 1);
	assert_int_equal(dns_msg_strip_opt(p.b, p.n), -EOPNOTSUPP);
	assert_int_equal(dns_msg_age(p.b, 11, 1), -EBADMSG);
	assert_int_equal(dns_msg_set_id(p.b, 11, 1), -EBADMSG);
}

static void test_dns_msg_build_answers(void **state)
{
	struct dns_query q;
	struct dns_response r;
	struct dns_name target = name("laptop.ts.example");
	uint8_t v6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7 };
	struct dns_rr rr[2] = {
		{ .type = DNS_TYPE_A, .ttl = 600, .rdata = (const uint8_t *)"\x64\x40\x00\x07", .rdlen = 4 },
		{ .type = DNS_TYPE_AAAA, .ttl = 0x90000000u, .rdata = v6, .rdlen = 16 },
	};
	struct dns_rr ptr = { .type = DNS_TYPE_PTR, .ttl = 600, .target = &target };
	uint8_t out[1232];
	size_t o;
	int n;

	(void)state;
	assert_int_equal(parse_q(dig_query, LEN(dig_query), &q), 0);
	q.edns.flags = DNS_EDNS_DO;
	n = dns_build_answer(&q, rr, 2, DNS_BUILD_AA, q.udp_limit, out, sizeof(out));
	assert_int_equal(n, 12 + 17 + 16 + 28 + 11);
	assert_int_equal(dns_build_answer(&q, rr, 2, 0, q.udp_limit, out, (size_t)n - 1), -ENOSPC);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_int_equal(r.hdr.id, 0x1234);
	assert_int_equal(r.hdr.flags, DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RD | DNS_FLAG_RA);
	assert_int_equal(r.hdr.ancount, 2);
	assert_int_equal(r.min_ttl, 0);                 /* the top-bit TTL went out as 0 */
	assert_int_equal(r.edns.udp_size, DNS_EDNS_UDP_SIZE);
	assert_int_equal(r.edns.flags, DNS_EDNS_DO);
	assert_memory_equal(out + 29, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x02\x58\x00\x04\x64\x40\x00\x07", 16);

	/* PTR for 7.0.64.100.in-addr.arpa, the target written in full. */
	{
		struct dns_name qn;
		struct pkt p;

		p_header(&p, DNS_FLAG_RD, 1, 0, 0, 0);
		p_question(&p, "\x01" "7" "\x01" "0" "\x02" "64" "\x03" "100" "\x07" "in-addr" "\x04" "arpa",
			   DNS_TYPE_PTR);
		assert_int_equal(parse_q(p.b, p.n, &q), 0);
		qn = q.qname;
		n = dns_build_answer(&q, &ptr, 1, DNS_BUILD_AA, q.udp_limit, out, sizeof(out));
		assert_true(n > 0);
		assert_int_equal(parse_r(out, (size_t)n, &r), 0);
		assert_true(dns_name_equal(&r.qname, &qn));
		o = r.an_off + 12;
		assert_int_equal(out[o - 1], target.wire_len);
		assert_memory_equal(out + o, target.wire, target.wire_len);
	}
	/* Records need a question. */
	q.flags &= ~(unsigned)DNS_Q_QUESTION;
	assert_int_equal(dns_build_answer(&q, rr, 1, 0, 512, out, sizeof(out)), -EINVAL);
}

static void test_dns_msg_build_negative(void **state)
{
	struct dns_name zone = name("ts.example"), mname = name("ns.ts.example"),
			rname = name("hostmaster.ts.example"), other = name("blocked.invalid");
	struct dns_soa soa = { .zone = &zone, .mname = &mname, .rname = &rname, .ttl = 300,
			       .serial = 7, .refresh = 3600, .retry = 600, .expire = 86400,
			       .minimum = 60 };
	struct dns_query q;
	struct dns_response r;
	struct pkt p;
	uint8_t out[512];
	int n;

	(void)state;
	p_header(&p, DNS_FLAG_RD, 1, 0, 0, 0);
	p_question(&p, "\x04" "gone" "\x02" "ts" "\x07" "example", DNS_TYPE_A);
	assert_int_equal(parse_q(p.b, p.n, &q), 0);
	n = dns_build_negative(&q, 1, &soa, DNS_BUILD_AA, q.udp_limit, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(r.neg_ttl, 60);             /* min(300, 60), also on the wire */
	assert_true(r.hdr.flags & DNS_FLAG_AA);
	/* Owner, MNAME and RNAME all end in a pointer to "ts.example" in the question. */
	assert_memory_equal(out + r.ns_off, "\xc0\x11\x00\x06", 4);
	assert_int_equal(n, 12 + 21 + 2 + 10 + (3 + 2) + (11 + 2) + 20);

	/* NODATA for a zone the question is not in: the zone in full. */
	soa.zone = &other;
	n = dns_build_negative(&q, 0, &soa, 0, q.udp_limit, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_NOERROR);
	assert_int_equal(r.hdr.ancount, 0);
	assert_true(r.flags & DNS_R_SOA);
	assert_memory_equal(out + r.ns_off, other.wire, other.wire_len);

	n = dns_build_error(&q, DNS_RCODE_SERVFAIL, out, sizeof(out));
	assert_int_equal(n, p.n);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_SERVFAIL);
	assert_string_equal(r.qname.text, "gone.ts.example");
	n = dns_build_error(&q, DNS_RCODE_REFUSED, out, sizeof(out));
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_int_equal(r.rcode, DNS_RCODE_REFUSED);
}

static void test_dns_msg_truncation_bit(void **state)
{
	struct dns_rr rr[60];
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	struct dns_query q;
	struct dns_response r;
	struct pkt p;
	static uint8_t out[DNS_TCP_MAX];
	int n;

	(void)state;
	for (int i = 0; i < 60; i++)
		rr[i] = (struct dns_rr){ .type = DNS_TYPE_AAAA, .ttl = 60, .rdata = v6, .rdlen = 16 };
	p_header(&p, DNS_FLAG_RD, 1, 0, 0, 0);
	p_question(&p, "\x04" "many" "\x07" "example", DNS_TYPE_AAAA);
	assert_int_equal(parse_q(p.b, p.n, &q), 0);
	/* 17 x 28 bytes fit in 512 without EDNS; 40 do not. */
	n = dns_build_answer(&q, rr, 17, 0, q.udp_limit, out, sizeof(out));
	assert_true(n <= 512);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_false(r.flags & DNS_R_TC);
	n = dns_build_answer(&q, rr, 40, 0, q.udp_limit, out, sizeof(out));
	assert_int_equal(n, p.n);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_true(r.flags & DNS_R_TC);
	assert_int_equal(r.hdr.ancount, 0);
	/* The same over TCP. */
	n = dns_build_answer(&q, rr, 40, 0, DNS_TCP_MAX, out, sizeof(out));
	assert_int_equal(n, p.n + 40 * 28);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_false(r.flags & DNS_R_TC);
	/* EDNS 4096 is held to 1232: 40 fit, 60 do not, and the OPT stays. */
	p_header(&p, DNS_FLAG_RD, 1, 0, 0, 1);
	p_question(&p, "\x04" "many" "\x07" "example", DNS_TYPE_AAAA);
	p.b[p.n++] = 0;
	p16(&p, DNS_TYPE_OPT); p16(&p, 4096); p32(&p, 0); p16(&p, 0);
	assert_int_equal(parse_q(p.b, p.n, &q), 0);
	assert_int_equal(q.udp_limit, DNS_EDNS_UDP_SIZE);
	n = dns_build_answer(&q, rr, 40, 0, q.udp_limit, out, sizeof(out));
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_false(r.flags & DNS_R_TC);
	n = dns_build_answer(&q, rr, 60, 0, q.udp_limit, out, sizeof(out));
	assert_int_equal(n, p.n);
	assert_int_equal(parse_r(out, (size_t)n, &r), 0);
	assert_true(r.flags & DNS_R_TC);
	assert_true(r.flags & DNS_R_EDNS);
	/* A client asking for less than 512 still gets 512. */
	p.b[p.n - 8] = 0x01;
	p.b[p.n - 7] = 0x00;
	assert_int_equal(parse_q(p.b, p.n, &q), 0);
	assert_int_equal(q.udp_limit, 512);
}

static void test_dns_msg_ptr_names(void **state)
{
	struct addr_port a, back;
	struct dns_name n;

	(void)state;
	assert_int_equal(addr_parse("192.0.2.1:1", 11, 0, &a), 0);
	a.port = 0;
	assert_int_equal(dns_ptr_name(&a, &n), 0);
	assert_string_equal(n.text, "1.2.0.192.in-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), 0);
	assert_true(addr_equal(&a, &back));

	assert_int_equal(addr_parse("[2001:db8::567:89ab]:1", 22, 0, &a), 0);
	a.port = 0;
	assert_int_equal(dns_ptr_name(&a, &n), 0);
	assert_string_equal(n.text, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), 0);
	assert_true(addr_equal(&a, &back));
	/* Upper case reads the same (names are lower-cased). */
	n = name("B.A.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.IP6.ARPA.");
	assert_int_equal(dns_ptr_addr(&n, &back), 0);
	assert_true(addr_equal(&a, &back));

	n = name("2.0.192.in-addr.arpa");            /* a zone, not an address */
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("5.1.2.0.192.in-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("01.2.0.192.in-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("256.2.0.192.in-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("x.2.0.192.in-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("in-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("1.0.ip6.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("g.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -EINVAL);
	n = name("1.2.0.192.xin-addr.arpa");
	assert_int_equal(dns_ptr_addr(&n, &back), -ENOENT);
	n = name("example.com");
	assert_int_equal(dns_ptr_addr(&n, &back), -ENOENT);
	memset(&a, 0, sizeof(a));
	assert_int_equal(dns_ptr_name(&a, &n), -EAFNOSUPPORT);
}

static void test_dns_msg_names(void **state)
{
	struct dns_name a = name("WWW.Example.COM."), b = name("www.example.com"),
			d = name("example.com"), x = name("xexample.com"), root = name(".");
	static const uint8_t odd[] = "\x03" "a.b" "\x02" "\\\x01" "\x00";
	struct dns_name o;

	(void)state;
	assert_string_equal(a.text, "www.example.com");
	assert_true(dns_name_equal(&a, &b));
	assert_false(dns_name_equal(&a, &d));
	assert_true(dns_name_under(&a, &d));
	assert_true(dns_name_under(&d, &d));
	assert_false(dns_name_under(&x, &d));
	assert_false(dns_name_under(&d, &a));
	assert_true(dns_name_under(&d, &root));
	assert_string_equal(root.text, ".");
	assert_int_equal(root.wire_len, 1);
	assert_int_equal(root.n_labels, 0);
	/* Bytes that would be ambiguous in text are escaped. */
	assert_int_equal(dns_name_from_wire(odd, sizeof(odd) - 1, &o), 0);
	assert_string_equal(o.text, "a\\046b.\\092\\001");
	assert_int_equal(o.n_labels, 2);
	assert_int_equal(dns_name_from_wire(odd, sizeof(odd) - 2, &o), -EBADMSG);
	assert_int_equal(dns_name_from_wire((const uint8_t *)"\xc0\x00", 2, &o), -EBADMSG);
	assert_int_equal(dns_name_from_wire(odd, sizeof(odd), &o), -EBADMSG);  /* a byte after */
}

static void test_dns_msg_tcp_frame(void **state)
{
	uint8_t pre[2];

	(void)state;
	assert_int_equal(dns_tcp_frame_len((const uint8_t *)"\x00", 1), -EAGAIN);
	assert_int_equal(dns_tcp_frame_len((const uint8_t *)"\x00\x0b", 2), -EBADMSG);
	assert_int_equal(dns_tcp_frame_len((const uint8_t *)"\x01\x02\x03", 3), 0x102);
	assert_int_equal(dns_tcp_frame_put(pre, 52), 0);
	assert_memory_equal(pre, "\x00\x34", 2);
	assert_int_equal(dns_tcp_frame_put(pre, 65536), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_msg_dig_query),
		cmocka_unit_test(test_dns_msg_query_case),
		cmocka_unit_test(test_dns_msg_query_errors),
		cmocka_unit_test(test_dns_msg_truncated),
		cmocka_unit_test(test_dns_msg_compression_loops),
		cmocka_unit_test(test_dns_msg_pointer_chain),
		cmocka_unit_test(test_dns_msg_pointer_overlap),
		cmocka_unit_test(test_dns_msg_oversize),
		cmocka_unit_test(test_dns_msg_oversize_compressed),
		cmocka_unit_test(test_dns_msg_counts_lie),
		cmocka_unit_test(test_dns_msg_opt_section),
		cmocka_unit_test(test_dns_msg_responses),
		cmocka_unit_test(test_dns_msg_ttls),
		cmocka_unit_test(test_dns_msg_cache_rewrite),
		cmocka_unit_test(test_dns_msg_build_answers),
		cmocka_unit_test(test_dns_msg_build_negative),
		cmocka_unit_test(test_dns_msg_truncation_bit),
		cmocka_unit_test(test_dns_msg_ptr_names),
		cmocka_unit_test(test_dns_msg_names),
		cmocka_unit_test(test_dns_msg_tcp_frame),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
