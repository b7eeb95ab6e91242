/* dns_msg.h - DNS message codec (RFC 1035 sections 3 and 4, compression 4.1.4; EDNS(0)
 * OPT, RFC 6891; AAAA, RFC 3596; negative caching, RFC 2308; stale answers, RFC 8767; TCP
 * framing, RFC 7766): pure, no I/O, no allocation. vpnd's resolver parses what clients
 * ask with dns_parse_query (the fast path: one question, optional OPT), what upstreams
 * answer with dns_parse_response, and builds its own answers here. Names are kept
 * uncompressed in wire form, lower-cased, and as dotted text. */
#ifndef MESHVPN_DNS_MSG_H
#define MESHVPN_DNS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/addr.h"

#define DNS_HEADER_LEN 12
#define DNS_NAME_MAX 255                  /* wire form, root label included (1035 3.1) */
#define DNS_LABEL_MAX 63
/* Dotted text of the longest name when every byte needs "\DDD" (250 bytes in 4 labels),
 * and the NUL. Names of letters, digits, '-' and '_' read as themselves. */
#define DNS_TEXT_MAX 1008
#define DNS_PTR_JUMPS_MAX 16              /* compression pointers followed per name */
#define DNS_RECORDS_MAX 512               /* per response; more is refused */
#define DNS_UDP_MIN 512                   /* without EDNS (1035 4.2.1) */
#define DNS_EDNS_UDP_SIZE 1232            /* ours: what we accept and answer at most */
#define DNS_STALE_TTL 30                  /* RFC 8767 section 4 */
#define DNS_TCP_MAX 65535

enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_NS = 2,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA = 6,
	DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_SRV = 33,
	DNS_TYPE_OPT = 41,
	DNS_TYPE_HTTPS = 65,
	DNS_TYPE_ANY = 255,
};

#define DNS_CLASS_IN 1

enum dns_rcode {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
	DNS_RCODE_BADVERS = 16,           /* extended: needs the OPT record (6891 6.1.3) */
};

/* Header flags (the 16 bits after the id). */
#define DNS_FLAG_QR 0x8000u
#define DNS_FLAG_AA 0x0400u
#define DNS_FLAG_TC 0x0200u
#define DNS_FLAG_RD 0x0100u
#define DNS_FLAG_RA 0x0080u
#define DNS_FLAG_AD 0x0020u
#define DNS_FLAG_CD 0x0010u
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define DNS_OPCODE_QUERY 0
#define DNS_EDNS_DO 0x8000u               /* DNSSEC OK, in the OPT's flags (RFC 3225) */

struct dns_header {
	uint16_t id;
	uint16_t flags;
	uint16_t qdcount, ancount, nscount, arcount;
};

/* A name: wire form without compression, lower-cased, and its text ("." for the root,
 * no trailing dot otherwise; '.', '\\' and bytes outside '!'..'~' as "\DDD"). */
struct dns_name {
	uint16_t wire_len;                /* with the root label: 1..255 */
	uint16_t text_len;
	uint8_t n_labels;                 /* the root not counted */
	uint8_t wire[DNS_NAME_MAX];
	char text[DNS_TEXT_MAX];
};

/* The OPT pseudo-record, when there was one. */
struct dns_edns {
	uint16_t udp_size;                /* as sent (the class field) */
	uint8_t ext_rcode;                /* upper 8 bits of the 12-bit RCODE */
	uint8_t version;
	uint16_t flags;                   /* DNS_EDNS_DO and the rest */
	uint16_t options_len;             /* RDATA: options, walked and bounded, not kept */
};

enum dns_query_flags {
	DNS_Q_HEADER = 1U << 0,           /* hdr is valid: an answer can carry the id */
	DNS_Q_QUESTION = 1U << 1,         /* qname/qtype/qclass valid: echo them */
	DNS_Q_EDNS = 1U << 2,             /* a well-formed OPT: answer with ours */
};

/* What a client asked. On an error, flags say which parts were read before it. */
struct dns_query {
	struct dns_header hdr;
	unsigned flags;                   /* enum dns_query_flags */
	uint16_t qtype, qclass;
	/* Where the question ends in the query: bytes 12..question_end are what an answer
	 * echoes (a cached answer can take the client's spelling of the name from there). */
	uint16_t question_end;
	/* What a UDP answer may be: 512 without EDNS, else the client's size within
	 * 512..DNS_EDNS_UDP_SIZE (answers larger than that would fragment). */
	uint16_t udp_limit;
	struct dns_edns edns;
	struct dns_name qname;            /* lower-cased */
	uint8_t qname_raw[DNS_NAME_MAX];  /* as the client spelt it (0x20 case), qname.wire_len */
};

/* Parses a query as a stub resolver receives it: QR 0, opcode QUERY, exactly one
 * question, no answer or authority records, additional records walked (at most one OPT,
 * owned by the root, EDNS version 0), nothing after them. 0, or:
 *   -EMSGSIZE    shorter than a header: drop;
 *   -EPROTO      QR set (a response, perhaps spoofed to make us loop): drop;
 *   -EOPNOTSUPP  another opcode: answer NOTIMP;
 *   -EPROTONOSUPPORT  EDNS version above 0: answer BADVERS;
 *   -EBADMSG     anything else malformed: answer FORMERR.
 * dns_query_rcode maps these. The query's flags say what was read before the error. */
int dns_parse_query(const uint8_t *p, size_t len, struct dns_query *q);
/* The RCODE to answer an error of dns_parse_query with, or -1 to drop the query. */
int dns_query_rcode(int err);

enum dns_response_flags {
	DNS_R_QUESTION = 1U << 0,         /* qname/qtype/qclass valid */
	DNS_R_EDNS = 1U << 1,
	DNS_R_SOA = 1U << 2,              /* an SOA in authority: neg_ttl valid */
	DNS_R_TC = 1U << 3,
};

/* What an upstream answered. */
struct dns_response {
	struct dns_header hdr;
	unsigned flags;                   /* enum dns_response_flags */
	uint16_t rcode;                   /* 12 bits: OPT's extended bits and the header's */
	uint16_t qtype, qclass;
	/* Smallest TTL over the answer section (0 when it is empty), TTLs above 2^31-1 read
	 * as 0 (RFC 2181 8). */
	uint32_t min_ttl;
	/* RFC 2308 section 5: min(SOA TTL, SOA MINIMUM) of the first SOA in authority. */
	uint32_t neg_ttl;
	/* Offsets of the sections and of the OPT record (0 when none), and where the last
	 * record ends (== the message length: nothing may follow). */
	uint16_t an_off, ns_off, ar_off, opt_off, end;
	struct dns_edns edns;
	struct dns_name qname;
};

/* Parses an upstream's answer: QR 1, at most one question, every record walked with
 * bounds (names, compression, RDLENGTH within the message; A 4 bytes and AAAA 16 in
 * class IN; SOA RDATA exactly two names and 20 bytes), at most DNS_RECORDS_MAX records,
 * OPT only in additional, once, owned by the root; nothing after the last record; no
 * compression pointer into a record's fixed fields (so dns_msg_age and friends never
 * change a name).
 * 0 or -EBADMSG (r's flags then 0). It does not check the question against ours: the
 * caller compares id, qname, qtype and qclass. */
int dns_parse_response(const uint8_t *p, size_t len, struct dns_response *r);

/* Reads the (possibly compressed) name at *off of msg: labels up to 63, 255 bytes in
 * all, pointers only to bytes after the header and wholly before the name (each below
 * the last), at most DNS_PTR_JUMPS_MAX of them. *off moves
 * past the name as it stands at *off. 0 or -EBADMSG. out may be NULL to only skip it. */
int dns_name_parse(const uint8_t *msg, size_t len, size_t *off, struct dns_name *out);
/* "example.com", "example.com." or "." for the root: labels of 1..63 bytes from '!'..'~'
 * other than '.' and '\\' (no escapes), 255 bytes in wire form. 0 or -EINVAL. */
int dns_name_from_text(const char *s, size_t len, struct dns_name *out);
/* Wire form (uncompressed) to a name: 0 or -EBADMSG (the same rules as dns_name_parse). */
int dns_name_from_wire(const uint8_t *wire, size_t len, struct dns_name *out);
/* Equal, ignoring ASCII case (names here are lower-cased already). */
int dns_name_equal(const struct dns_name *a, const struct dns_name *b);
/* name is domain or below it (label boundaries: "xexample.com" is not under
 * "example.com"); everything is under the root. */
int dns_name_under(const struct dns_name *name, const struct dns_name *domain);

/* The PTR name of an address: "4.3.2.1.in-addr.arpa", or 32 nibbles ".ip6.arpa".
 * 0 or -EAFNOSUPPORT. */
int dns_ptr_name(const struct addr_port *a, struct dns_name *out);
/* The reverse: a full in-addr.arpa (four decimal labels 0-255, no leading zeros) or
 * ip6.arpa name (32 hex nibbles) to an address (port 0). 0, -ENOENT when the name is not
 * under either, -EINVAL when it is but is not one whole address (a zone's or junk). */
int dns_ptr_addr(const struct dns_name *n, struct addr_port *out);

/* A record to answer with; its owner is the question's name (compressed to it). */
struct dns_rr {
	uint16_t type;
	uint32_t ttl;
	/* A name (PTR, CNAME, NS) written compressed against the question when set; else
	 * rdlen bytes of rdata (A: 4, AAAA: 16, TXT: as on the wire). */
	const struct dns_name *target;
	const uint8_t *rdata;
	uint16_t rdlen;
};

/* The SOA a negative answer carries (RFC 2308 3): the resolver's own for names it
 * answers itself. Its TTL on the wire is min(ttl, minimum). */
struct dns_soa {
	const struct dns_name *zone, *mname, *rname;
	uint32_t ttl, serial, refresh, retry, expire, minimum;
};

enum dns_build_flags {
	DNS_BUILD_AA = 1U << 0,           /* we are the authority (node names, blocked) */
};

/* The answer to q: the question echoed (as the client spelt it) when q has one, the
 * records in answer, soa (may be NULL) in authority, our OPT (DNS_EDNS_UDP_SIZE, the
 * query's DO bit) when q had one. RD and CD copied, RA set. When it would exceed limit
 * (q->udp_limit over UDP, DNS_TCP_MAX over TCP) the records are left out and TC set.
 * Length, -EINVAL (no header in q, records without a question, an extended rcode
 * without EDNS in q), or -ENOSPC when size cannot hold it. */
int dns_build_response(const struct dns_query *q, unsigned rcode, unsigned flags,
		       const struct dns_rr *an, unsigned n_an, const struct dns_soa *soa,
		       size_t limit, uint8_t *buf, size_t size);
/* An answer of n records (NOERROR). */
int dns_build_answer(const struct dns_query *q, const struct dns_rr *an, unsigned n,
		     unsigned flags, size_t limit, uint8_t *buf, size_t size);
/* NXDOMAIN (nxdomain 1) or NODATA (NOERROR, no answer) with soa in authority. */
int dns_build_negative(const struct dns_query *q, int nxdomain, const struct dns_soa *soa,
		       unsigned flags, size_t limit, uint8_t *buf, size_t size);
/* SERVFAIL, FORMERR, REFUSED, NOTIMP, BADVERS: the question echoed when q has one. */
int dns_build_error(const struct dns_query *q, unsigned rcode, uint8_t *buf, size_t size);

/* Serving from a cache, in place on a message that dns_parse_response accepted. */
int dns_msg_set_id(uint8_t *msg, size_t len, uint16_t id);
/* Every record's TTL (not OPT's) less elapsed, down to 0. 0 or -EBADMSG. */
int dns_msg_age(uint8_t *msg, size_t len, uint32_t elapsed);
/* Every record's TTL set to ttl (stale answers: DNS_STALE_TTL). 0 or -EBADMSG. */
int dns_msg_set_ttl(uint8_t *msg, size_t len, uint32_t ttl);
/* Removes the OPT record (an upstream's; a client gets ours or none): the new length, or
 * len when there is none, -EOPNOTSUPP when it is not the last record (records after it
 * could point into each other), -EBADMSG. */
int dns_msg_strip_opt(uint8_t *msg, size_t len);
/* Appends our OPT (DNS_EDNS_UDP_SIZE, flags, version 0) to a message without one:
 * the new length, -ENOSPC, -EBADMSG. */
int dns_msg_append_opt(uint8_t *msg, size_t len, size_t size, uint16_t edns_flags);

/* RFC 7766 8: the message length a TCP stream's first two bytes announce. The length,
 * -EAGAIN with fewer than 2 bytes, -EBADMSG when it is shorter than a header. */
int dns_tcp_frame_len(const uint8_t *p, size_t len);
/* Writes the 2-byte prefix for a message of msg_len bytes: 0 or -EMSGSIZE. */
int dns_tcp_frame_put(uint8_t prefix[2], size_t msg_len);

#endif
