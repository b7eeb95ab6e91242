/* fuzz_vpnd_resolver.c - what vpnd's resolver does with an upstream's answer
 * (vpnd/resolver_cache.c): the input is a 2-byte length, a client's query of that length,
 * then an upstream's answer. A query that parses and an answer to its question must
 * survive rc_rewrite for every limit, age and stale flag as a response that parses, carries
 * the client's id and question and fits the limit; the cache must hand back exactly what
 * it was given. ASan catches any read or write past the buffers. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpnd/resolver.h"

static uint8_t out[DNS_TCP_MAX];

static void check_rewrite(const struct dns_query *q, const uint8_t *msg, size_t len,
			  uint32_t age, int stale, size_t limit)
{
	struct dns_response r;
	int n = rc_rewrite(q, msg, len, age, stale, limit, out, sizeof(out));

	if (n <= 0)
		return;
	if ((size_t)n > limit || dns_parse_response(out, (size_t)n, &r) || r.hdr.id != q->hdr.id)
		abort();
	if (!(r.flags & DNS_R_QUESTION) || !dns_name_equal(&r.qname, &q->qname) ||
	    r.qtype != q->qtype || r.qclass != q->qclass)
		abort();
	if (memcmp(out + DNS_HEADER_LEN, q->qname_raw, q->qname.wire_len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { DNS_UDP_MIN, DNS_EDNS_UDP_SIZE, DNS_TCP_MAX };
	struct dns_query q;
	struct dns_response r;
	struct rc_cache c;
	struct rc_hit hit;
	size_t qlen, len;
	const uint8_t *msg;

	if (size < 2)
		return 0;
	qlen = (size_t)data[0] << 8 | data[1];
	if (qlen > size - 2)
		return 0;
	if (dns_parse_query(data + 2, qlen, &q))
		return 0;
	msg = data + 2 + qlen;
	len = size - 2 - qlen;
	if (dns_parse_response(msg, len, &r) || !(r.flags & DNS_R_QUESTION) ||
	    !dns_name_equal(&r.qname, &q.qname) || r.qtype != q.qtype || r.qclass != q.qclass)
		return 0;
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		check_rewrite(&q, msg, len, 0, 0, limits[i]);
		check_rewrite(&q, msg, len, 100, 0, limits[i]);
		check_rewrite(&q, msg, len, 0, 1, limits[i]);
	}
	check_rewrite(&q, msg, len, 0, 0, q.udp_limit);
	if (rc_init(&c, 2, RS_STALE_MAX_S))
		return 0;
	if (rc_put(&c, &q.qname, q.qtype, q.qclass, msg, len, rc_ttl_of(&r), 0) == 0 &&
	    rc_get(&c, &q.qname, q.qtype, q.qclass, 0, 1, &hit) != RC_MISS &&
	    (hit.len != len || memcmp(hit.msg, msg, len)))
		abort();
	rc_free(&c);
	return 0;
}
