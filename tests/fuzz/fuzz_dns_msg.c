/* fuzz_dns_msg.c - lib/dns_msg.c on arbitrary bytes, as a query and as a response. A
 * query that parses must have a sane name (the same again from its wire form and, when
 * plain, from its text; a reverse name back from its address) and every answer built
 * for it (records, NXDOMAIN with SOA, errors, TC) must parse as a response echoing its
 * id and question; a refused query's FORMERR / NOTIMP / BADVERS must build and parse. A
 * response that parses must keep parsing, with the same layout, after its TTLs are aged
 * or set and its OPT stripped or appended. ASan catches any read past the input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/dns_msg.h"

static uint8_t out[DNS_TCP_MAX];

static void check_name(const struct dns_name *n)
{
	struct dns_name again;
	struct addr_port a;

	if (!n->wire_len || n->wire_len > DNS_NAME_MAX || n->text_len >= DNS_TEXT_MAX ||
	    strlen(n->text) != n->text_len)
		abort();
	if (dns_name_from_wire(n->wire, n->wire_len, &again) || !dns_name_equal(n, &again) ||
	    strcmp(n->text, again.text) || again.n_labels != n->n_labels)
		abort();
	if (!strchr(n->text, '\\') &&
	    (dns_name_from_text(n->text, n->text_len, &again) || !dns_name_equal(n, &again)))
		abort();
	if (dns_ptr_addr(n, &a) == 0 && (dns_ptr_name(&a, &again) || !dns_name_equal(n, &again)))
		abort();
}

/* An answer to q parses as a response to it. */
static void check_answer(const struct dns_query *q, int n, unsigned rcode)
{
	struct dns_response r;

	if (n < DNS_HEADER_LEN || dns_parse_response(out, (size_t)n, &r) ||
	    r.hdr.id != q->hdr.id || r.rcode != rcode ||
	    !!(r.flags & DNS_R_EDNS) != !!(q->flags & DNS_Q_EDNS))
		abort();
	if (!(q->flags & DNS_Q_QUESTION))
		return;
	if (!(r.flags & DNS_R_QUESTION) || !dns_name_equal(&r.qname, &q->qname) ||
	    r.qtype != q->qtype || r.qclass != q->qclass)
		abort();
}

static void check_query(const struct dns_query *q, size_t size)
{
	static const uint8_t v4[4] = { 100, 64, 0, 7 };
	struct dns_name zone, mname, rname;
	struct dns_rr rr[3] = {
		{ .type = DNS_TYPE_A, .ttl = 60, .rdata = v4, .rdlen = 4 },
		{ .type = DNS_TYPE_PTR, .ttl = 60, .target = &q->qname },
		{ .type = DNS_TYPE_CNAME, .ttl = 60, .target = &zone },
	};
	struct dns_soa soa = { .zone = &zone, .mname = &mname, .rname = &rname, .ttl = 60,
			       .minimum = 30 };
	int n;

	if (q->question_end > size || q->udp_limit < DNS_UDP_MIN ||
	    q->udp_limit > DNS_EDNS_UDP_SIZE || !(q->flags & DNS_Q_QUESTION))
		abort();
	check_name(&q->qname);
	/* The question's parent as zone (or the root), names under it. */
	if (dns_name_from_wire(q->qname.wire + (q->qname.n_labels ? 1 + q->qname.wire[0] : 0),
			       q->qname.wire_len - (q->qname.n_labels ? 1u + q->qname.wire[0] : 0),
			       &zone) ||
	    dns_name_from_text("ns.example", 10, &mname) ||
	    dns_name_from_text("hostmaster.example", 18, &rname) ||
	    !dns_name_under(&q->qname, &zone))
		abort();
	n = dns_build_answer(q, rr, 3, DNS_BUILD_AA, q->udp_limit, out, sizeof(out));
	check_answer(q, n, DNS_RCODE_NOERROR);
	if (n > q->udp_limit)
		abort();
	n = dns_build_answer(q, rr, 3, 0, DNS_TCP_MAX, out, sizeof(out));
	check_answer(q, n, DNS_RCODE_NOERROR);
	if (out[2] & (DNS_FLAG_TC >> 8))
		abort();                      /* three small records always fit over TCP */
	n = dns_build_negative(q, 1, &soa, DNS_BUILD_AA, q->udp_limit, out, sizeof(out));
	check_answer(q, n, DNS_RCODE_NXDOMAIN);
	n = dns_build_error(q, DNS_RCODE_SERVFAIL, out, sizeof(out));
	check_answer(q, n, DNS_RCODE_SERVFAIL);
}

static void check_refused(const struct dns_query *q, int err)
{
	int rcode = dns_query_rcode(err), n;

	if (rcode < 0)
		return;
	if (!(q->flags & DNS_Q_HEADER))
		abort();
	if (rcode > 15 && !(q->flags & DNS_Q_EDNS))
		abort();                      /* BADVERS only comes with an OPT */
	if (q->flags & DNS_Q_QUESTION)
		check_name(&q->qname);
	n = dns_build_error(q, (unsigned)rcode, out, sizeof(out));
	check_answer(q, n, (unsigned)rcode);
}

/* The layout a cache relies on survives its rewrites. */
static void check_response(const uint8_t *data, size_t size, const struct dns_response *r)
{
	struct dns_response again;
	int n;

	if (r->end != size || r->an_off > r->ns_off || r->ns_off > r->ar_off ||
	    r->ar_off > r->end || ((r->flags & DNS_R_EDNS) && r->opt_off < r->ar_off))
		abort();
	if (r->flags & DNS_R_QUESTION)
		check_name(&r->qname);
	memcpy(out, data, size);
	if (dns_msg_set_id(out, size, 7) || dns_msg_age(out, size, 100) ||
	    dns_parse_response(out, size, &again) || again.hdr.id != 7 ||
	    again.ar_off != r->ar_off || again.flags != r->flags || again.min_ttl > r->min_ttl)
		abort();
	if (dns_msg_set_ttl(out, size, DNS_STALE_TTL) || dns_parse_response(out, size, &again) ||
	    (r->hdr.ancount && again.min_ttl != DNS_STALE_TTL))
		abort();
	n = dns_msg_strip_opt(out, size);
	if (n == -EOPNOTSUPP)
		return;
	if (n < 0 || dns_parse_response(out, (size_t)n, &again) || (again.flags & DNS_R_EDNS) ||
	    ((size_t)n != size) != !!(r->flags & DNS_R_EDNS))
		abort();
	if (again.hdr.arcount == 0xffff)
		return;
	n = dns_msg_append_opt(out, (size_t)n, sizeof(out), DNS_EDNS_DO);
	if (n == -ENOSPC)
		return;
	if (n < 0 || dns_parse_response(out, (size_t)n, &again) || !(again.flags & DNS_R_EDNS) ||
	    again.edns.udp_size != DNS_EDNS_UDP_SIZE || again.edns.flags != DNS_EDNS_DO)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_query q;
	static struct dns_response r;
	int rc, len;

	rc = dns_parse_query(data, size, &q);
	if (rc == 0)
		check_query(&q, size);
	else
		check_refused(&q, rc);
	if (dns_parse_response(data, size, &r) == 0)
		check_response(data, size, &r);
	else if (r.flags || r.hdr.id || r.qname.wire_len)
		abort();
	len = dns_tcp_frame_len(data, size);
	if (len >= 0 && (len < DNS_HEADER_LEN || len > DNS_TCP_MAX))
		abort();
	return 0;
}
