/* dns_msg.c - DNS message codec (RFC 1035, 2308, 3596, 6891, 7766, 8767; see dns_msg.h).
 * Pure and bounded: every length read is checked against the message, every name
 * against 255 bytes, every pointer chain against DNS_PTR_JUMPS_MAX and strictly earlier
 * offsets, so a hostile message costs at most a few passes over itself. */
#include "meshvpn/dns_msg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define RR_FIXED 10                       /* type, class, TTL, RDLENGTH */
#define OPT_LEN 11                        /* root owner + RR_FIXED, no options */
#define PTR_MASK 0xc0
#define TTL_MAX 0x7fffffffu               /* RFC 2181 8: a TTL with the top bit set is 0 */
#define SOA_FIXED 20                      /* serial, refresh, retry, expire, minimum */

static const uint8_t in_addr_arpa[] = "\7in-addr\4arpa";     /* with its root: sizeof */
static const uint8_t ip6_arpa[] = "\3ip6\4arpa";

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static uint8_t lc(uint8_t c) { return (unsigned)(c - 'A') < 26u ? (uint8_t)(c | 0x20) : c; }

/* The dotted text of n's wire form. */
static void name_text(struct dns_name *n)
{
	size_t i = 0, t = 0;

	if (n->wire[0] == 0)
		n->text[t++] = '.';
	while (n->wire[i]) {
		size_t end = i + 1 + n->wire[i];

		if (i)
			n->text[t++] = '.';
		for (i++; i < end; i++) {
			uint8_t c = n->wire[i];

			if (c > ' ' && c < 0x7f && c != '.' && c != '\\') {
				n->text[t++] = (char)c;
			} else {
				n->text[t++] = '\\';
				n->text[t++] = (char)('0' + c / 100);
				n->text[t++] = (char)('0' + c / 10 % 10);
				n->text[t++] = (char)('0' + c % 10);
			}
		}
	}
	n->text[t] = 0;
	n->text_len = (uint16_t)t;
}

static int bit_set(const uint8_t *map, size_t i) { return map[i >> 3] >> (i & 7) & 1; }
static void bits_mark(uint8_t *map, size_t from, size_t n)
{
	for (size_t i = from; i < from + n; i++)
		map[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* Whether any of n bytes from at are a record's fixed fields (fixed may be NULL). */
static int in_fixed(const uint8_t *fixed, size_t at, size_t n)
{
	for (size_t i = at; fixed && i < at + n; i++)
		if (bit_set(fixed, i))
			return 1;
	return 0;
}

/* Walks the name at *off. With out, copies it lower-cased (raw: as it stands); with
 * allow_ptr 0 a pointer is malformed (a name alone, outside a message). A pointer must
 * go below where the current run of labels started, so no byte is read as a label start
 * twice through a loop; what it points to must lie wholly before this name, not in the
 * header and, with the fixed bitmap, not in any record's type/class/TTL/RDLENGTH: so a
 * cache may rewrite TTLs or drop a trailing OPT without changing any name. */
static int name_walk(const uint8_t *msg, size_t len, size_t *off, int allow_ptr,
		     const uint8_t *fixed, struct dns_name *out, uint8_t *raw)
{
	size_t pos = *off, run = *off, end = 0, wire = 0, lim = len;
	unsigned jumps = 0, labels = 0;

	for (;;) {
		uint8_t c;

		if (pos >= lim || (jumps && in_fixed(fixed, pos, 1)))
			return -EBADMSG;
		c = msg[pos];
		if (c == 0)
			break;
		if ((c & PTR_MASK) == PTR_MASK) {
			size_t target;

			if (!allow_ptr || pos + 1 >= lim || ++jumps > DNS_PTR_JUMPS_MAX ||
			    in_fixed(fixed, pos + 1, 1))
				return -EBADMSG;
			target = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
			if (target >= run || target < DNS_HEADER_LEN)
				return -EBADMSG;
			if (!end) {
				end = pos + 2;
				lim = *off;
			}
			pos = run = target;
			continue;
		}
		if (c & PTR_MASK)             /* 0x40, 0x80: extended label types, none in use */
			return -EBADMSG;
		if (c >= lim - pos || wire + 1 + c + 1 > DNS_NAME_MAX ||
		    (jumps && in_fixed(fixed, pos + 1, c)))
			return -EBADMSG;
		if (out) {
			out->wire[wire] = c;
			for (unsigned i = 1; i <= c; i++)
				out->wire[wire + i] = lc(msg[pos + i]);
			if (raw)
				memcpy(raw + wire, msg + pos, 1 + (size_t)c);
		}
		wire += 1 + (size_t)c;
		labels++;
		pos += 1 + (size_t)c;
	}
	*off = end ? end : pos + 1;
	if (out) {
		out->wire[wire] = 0;
		if (raw)
			raw[wire] = 0;
		out->wire_len = (uint16_t)(wire + 1);
		out->n_labels = (uint8_t)labels;
		name_text(out);
	}
	return 0;
}

int dns_name_parse(const uint8_t *msg, size_t len, size_t *off, struct dns_name *out)
{
	return name_walk(msg, len, off, 1, NULL, out, NULL);
}

int dns_name_from_wire(const uint8_t *wire, size_t len, struct dns_name *out)
{
	size_t off = 0;

	if (!wire || name_walk(wire, len, &off, 0, NULL, out, NULL) || off != len)
		return -EBADMSG;
	return 0;
}

int dns_name_from_text(const char *s, size_t len, struct dns_name *out)
{
	size_t w = 0, label = 0;

	if (!s || !len)
		return -EINVAL;
	if (len == 1 && s[0] == '.')
		len = 0;                       /* the root */
	else if (s[len - 1] == '.')
		len--;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			size_t n = w - label;

			if (len && (n == 0 || n > DNS_LABEL_MAX))
				return -EINVAL;
			if (!len)
				break;
			out->wire[label] = (uint8_t)n;
			label = ++w;
			continue;
		}
		if ((uint8_t)s[i] <= ' ' || (uint8_t)s[i] >= 0x7f || s[i] == '\\' ||
		    w + 2 >= DNS_NAME_MAX)
			return -EINVAL;
		out->wire[++w] = lc((uint8_t)s[i]);
	}
	out->wire[label] = 0;
	out->wire_len = (uint16_t)(label + 1);
	out->n_labels = 0;
	for (size_t i = 0; out->wire[i]; i += 1 + out->wire[i])
		out->n_labels++;
	name_text(out);
	return 0;
}

int dns_name_equal(const struct dns_name *a, const struct dns_name *b)
{
	if (a->wire_len != b->wire_len)
		return 0;
	for (size_t i = 0; i < a->wire_len; i++)
		if (lc(a->wire[i]) != lc(b->wire[i]))
			return 0;
	return 1;
}

/* Whether the last n bytes of name's wire form start at a label. */
static int suffix_at_label(const struct dns_name *name, size_t n, size_t *start)
{
	size_t i = 0;

	if (n > name->wire_len)
		return 0;
	*start = name->wire_len - n;
	while (i < *start)
		i += 1 + (size_t)name->wire[i];
	return i == *start;
}

int dns_name_under(const struct dns_name *name, const struct dns_name *domain)
{
	size_t start;

	if (!suffix_at_label(name, domain->wire_len, &start))
		return 0;
	for (size_t i = 0; i < domain->wire_len; i++)
		if (lc(name->wire[start + i]) != lc(domain->wire[i]))
			return 0;
	return 1;
}

/* One resource record's fixed part, as the walks below read it. */
struct rr {
	size_t start, rdata;                  /* offsets of the owner and of the RDATA */
	uint16_t type, class, rdlen;
	uint32_t ttl;
};

/* The next record; with fixed, its fixed fields are marked there. */
static int rr_next(const uint8_t *p, size_t len, size_t *off, uint8_t *fixed, struct rr *rr)
{
	size_t at;

	rr->start = *off;
	if (name_walk(p, len, off, 1, fixed, NULL, NULL) || len - *off < RR_FIXED)
		return -EBADMSG;
	if (fixed)
		bits_mark(fixed, *off, RR_FIXED);
	at = *off;
	rr->type = get16(p + at);
	rr->class = get16(p + at + 2);
	rr->ttl = get32(p + at + 4);
	rr->rdlen = get16(p + at + 8);
	rr->rdata = at + RR_FIXED;
	if (rr->rdlen > len - rr->rdata)
		return -EBADMSG;
	*off = rr->rdata + rr->rdlen;
	return 0;
}

/* An OPT record (6891 6.1.2): the root as owner, options that fill RDATA exactly. */
static int parse_opt(const uint8_t *p, const struct rr *rr, struct dns_edns *e)
{
	size_t o = rr->rdata, end = rr->rdata + rr->rdlen;

	if (p[rr->start] != 0)
		return -EBADMSG;
	while (o < end) {
		if (end - o < 4 || get16(p + o + 2) > end - o - 4)
			return -EBADMSG;
		o += 4 + (size_t)get16(p + o + 2);
	}
	e->udp_size = rr->class;
	e->ext_rcode = (uint8_t)(rr->ttl >> 24);
	e->version = (uint8_t)(rr->ttl >> 16);
	e->flags = (uint16_t)rr->ttl;
	e->options_len = rr->rdlen;
	return 0;
}

static void read_header(const uint8_t *p, struct dns_header *h)
{
	h->id = get16(p);
	h->flags = get16(p + 2);
	h->qdcount = get16(p + 4);
	h->ancount = get16(p + 6);
	h->nscount = get16(p + 8);
	h->arcount = get16(p + 10);
}

static void name_clear(struct dns_name *n)
{
	n->wire_len = 0;
	n->text_len = 0;
	n->n_labels = 0;
	n->text[0] = 0;
}

int dns_parse_query(const uint8_t *p, size_t len, struct dns_query *q)
{
	size_t off = DNS_HEADER_LEN;
	int have_opt = 0;

	/* Fields one by one: the name buffers are only written as far as the name goes. */
	memset(&q->hdr, 0, sizeof(q->hdr));
	memset(&q->edns, 0, sizeof(q->edns));
	q->flags = 0;
	q->qtype = q->qclass = q->question_end = 0;
	q->udp_limit = DNS_UDP_MIN;
	name_clear(&q->qname);
	if (!p || len < DNS_HEADER_LEN || len > DNS_TCP_MAX)
		return -EMSGSIZE;
	read_header(p, &q->hdr);
	q->flags = DNS_Q_HEADER;
	if (q->hdr.flags & DNS_FLAG_QR)
		return -EPROTO;
	if (DNS_OPCODE(q->hdr.flags) != DNS_OPCODE_QUERY)
		return -EOPNOTSUPP;
	if (q->hdr.qdcount != 1 || q->hdr.ancount || q->hdr.nscount)
		return -EBADMSG;
	if (name_walk(p, len, &off, 1, NULL, &q->qname, q->qname_raw) || len - off < 4)
		return -EBADMSG;
	q->qtype = get16(p + off);
	q->qclass = get16(p + off + 2);
	off += 4;
	q->question_end = (uint16_t)off;
	q->flags |= DNS_Q_QUESTION;
	for (unsigned i = 0; i < q->hdr.arcount; i++) {
		struct rr rr;

		if (rr_next(p, len, &off, NULL, &rr))
			return -EBADMSG;
		if (rr.type != DNS_TYPE_OPT)
			continue;               /* TSIG and the like: not ours to check */
		if (have_opt++ || parse_opt(p, &rr, &q->edns))
			return -EBADMSG;        /* two OPTs: FORMERR (6891 6.1.1) */
	}
	if (off != len)
		return -EBADMSG;
	if (have_opt) {
		q->flags |= DNS_Q_EDNS;
		q->udp_limit = q->edns.udp_size < DNS_UDP_MIN ? DNS_UDP_MIN :
			       q->edns.udp_size > DNS_EDNS_UDP_SIZE ? DNS_EDNS_UDP_SIZE :
			       q->edns.udp_size;
		if (q->edns.version != 0)
			return -EPROTONOSUPPORT;
	}
	return 0;
}

int dns_query_rcode(int err)
{
	switch (err) {
	case -EBADMSG:
		return DNS_RCODE_FORMERR;
	case -EOPNOTSUPP:
		return DNS_RCODE_NOTIMP;
	case -EPROTONOSUPPORT:
		return DNS_RCODE_BADVERS;
	default:
		return -1;
	}
}

/* A name in RDATA, within it. */
static int rdata_name(const uint8_t *p, size_t *o, size_t end, const uint8_t *fixed)
{
	return name_walk(p, end, o, 1, fixed, NULL, NULL);
}

/* The RDATA checks that keep a cached answer sane; other types are opaque bytes. */
static int check_rdata(const uint8_t *p, const struct rr *rr, const uint8_t *fixed,
		       uint32_t *soa_min)
{
	size_t o = rr->rdata, end = rr->rdata + rr->rdlen;

	if (rr->class != DNS_CLASS_IN)
		return 0;
	switch (rr->type) {
	case DNS_TYPE_A:
		return rr->rdlen == 4 ? 0 : -EBADMSG;
	case DNS_TYPE_AAAA:
		return rr->rdlen == 16 ? 0 : -EBADMSG;
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
	case DNS_TYPE_PTR:
		return rdata_name(p, &o, end, fixed) || o != end ? -EBADMSG : 0;
	case DNS_TYPE_SOA:
		if (rdata_name(p, &o, end, fixed) || rdata_name(p, &o, end, fixed) ||
		    end - o != SOA_FIXED)
			return -EBADMSG;
		*soa_min = get32(p + o + 16);
		return 0;
	default:
		return 0;
	}
}

static uint32_t ttl_of(uint32_t ttl) { return ttl > TTL_MAX ? 0 : ttl; }

/* The answer, authority and additional sections of a response. */
static int parse_records(const uint8_t *p, size_t len, size_t *off, uint8_t *fixed,
			 struct dns_response *r)
{
	unsigned counts[3] = { r->hdr.ancount, r->hdr.nscount, r->hdr.arcount };
	uint16_t *starts[3] = { &r->an_off, &r->ns_off, &r->ar_off };
	int first_answer = 1;

	for (int s = 0; s < 3; s++) {
		*starts[s] = (uint16_t)*off;
		for (unsigned i = 0; i < counts[s]; i++) {
			uint32_t soa_min = 0;
			struct rr rr;

			if (rr_next(p, len, off, fixed, &rr))
				return -EBADMSG;
			if (rr.type == DNS_TYPE_OPT) {
				if (s != 2 || (r->flags & DNS_R_EDNS) || parse_opt(p, &rr, &r->edns))
					return -EBADMSG;
				r->flags |= DNS_R_EDNS;
				r->opt_off = (uint16_t)rr.start;
				continue;
			}
			if (check_rdata(p, &rr, fixed, &soa_min))
				return -EBADMSG;
			if (s == 0 && (first_answer || ttl_of(rr.ttl) < r->min_ttl))
				r->min_ttl = ttl_of(rr.ttl);
			first_answer &= s != 0;
			if (s == 1 && rr.type == DNS_TYPE_SOA && rr.class == DNS_CLASS_IN &&
			    !(r->flags & DNS_R_SOA)) {
				r->flags |= DNS_R_SOA;
				r->neg_ttl = ttl_of(rr.ttl) < ttl_of(soa_min) ? ttl_of(rr.ttl) :
					     ttl_of(soa_min);
			}
		}
	}
	return 0;
}

int dns_parse_response(const uint8_t *p, size_t len, struct dns_response *r)
{
	uint8_t fixed[(DNS_TCP_MAX + 8) / 8];    /* a bit per byte: fixed fields */
	size_t off = DNS_HEADER_LEN;

	memset(r, 0, offsetof(struct dns_response, qname));
	name_clear(&r->qname);
	if (!p || len < DNS_HEADER_LEN || len > DNS_TCP_MAX)
		goto bad;
	read_header(p, &r->hdr);
	if (!(r->hdr.flags & DNS_FLAG_QR) || r->hdr.qdcount > 1 ||
	    (size_t)r->hdr.ancount + r->hdr.nscount + r->hdr.arcount > DNS_RECORDS_MAX)
		goto bad;
	memset(fixed, 0, (len + 7) / 8);
	if (r->hdr.qdcount) {
		if (name_walk(p, len, &off, 1, fixed, &r->qname, NULL) || len - off < 4)
			goto bad;
		bits_mark(fixed, off, 4);
		r->qtype = get16(p + off);
		r->qclass = get16(p + off + 2);
		off += 4;
		r->flags |= DNS_R_QUESTION;
	}
	if (parse_records(p, len, &off, fixed, r) || off != len)
		goto bad;
	r->end = (uint16_t)off;
	if (r->hdr.flags & DNS_FLAG_TC)
		r->flags |= DNS_R_TC;
	r->rcode = (uint16_t)((unsigned)r->edns.ext_rcode << 4 | (r->hdr.flags & 0xf));
	return 0;
bad:
	memset(r, 0, offsetof(struct dns_response, qname));
	name_clear(&r->qname);
	return -EBADMSG;
}

/* Walks every record after the question of a message; visit gets each one and may
 * end the walk with an error. 0 or -EBADMSG. */
typedef int (*rr_visit)(uint8_t *msg, size_t len, const struct rr *rr, void *arg);

static int walk_records(uint8_t *msg, size_t len, rr_visit visit, void *arg)
{
	struct dns_header h;
	size_t off = DNS_HEADER_LEN;
	unsigned n;

	if (!msg || len < DNS_HEADER_LEN || len > DNS_TCP_MAX)
		return -EBADMSG;
	read_header(msg, &h);
	for (unsigned i = 0; i < h.qdcount; i++) {
		if (name_walk(msg, len, &off, 1, NULL, NULL, NULL) || len - off < 4)
			return -EBADMSG;
		off += 4;
	}
	n = (unsigned)h.ancount + h.nscount + h.arcount;
	for (unsigned i = 0; i < n; i++) {
		struct rr rr;
		int rc;

		if (rr_next(msg, len, &off, NULL, &rr))
			return -EBADMSG;
		rc = visit(msg, len, &rr, arg);
		if (rc)
			return rc;
	}
	return off == len ? 0 : -EBADMSG;
}

struct ttl_edit {
	uint32_t elapsed, ttl;
	int set;
};

static int edit_ttl(uint8_t *msg, size_t len, const struct rr *rr, void *arg)
{
	const struct ttl_edit *e = arg;
	uint32_t ttl = ttl_of(rr->ttl);

	(void)len;
	if (rr->type == DNS_TYPE_OPT)
		return 0;                     /* its "TTL" is the extended RCODE and flags */
	if (e->set)
		ttl = e->ttl;
	else
		ttl = ttl > e->elapsed ? ttl - e->elapsed : 0;
	put32(msg + rr->rdata - 6, ttl);
	return 0;
}

int dns_msg_set_id(uint8_t *msg, size_t len, uint16_t id)
{
	if (!msg || len < DNS_HEADER_LEN)
		return -EBADMSG;
	put16(msg, id);
	return 0;
}

int dns_msg_age(uint8_t *msg, size_t len, uint32_t elapsed)
{
	struct ttl_edit e = { .elapsed = elapsed };

	return walk_records(msg, len, edit_ttl, &e);
}

int dns_msg_set_ttl(uint8_t *msg, size_t len, uint32_t ttl)
{
	struct ttl_edit e = { .ttl = ttl_of(ttl), .set = 1 };

	return walk_records(msg, len, edit_ttl, &e);
}

struct opt_find {
	size_t start, end;
	int found;
};

static int find_opt(uint8_t *msg, size_t len, const struct rr *rr, void *arg)
{
	struct opt_find *f = arg;

	(void)msg;
	(void)len;
	if (rr->type != DNS_TYPE_OPT)
		return 0;
	if (f->found++)
		return -EBADMSG;
	f->start = rr->start;
	f->end = rr->rdata + rr->rdlen;
	return 0;
}

int dns_msg_strip_opt(uint8_t *msg, size_t len)
{
	struct opt_find f = { 0 };
	int rc = walk_records(msg, len, find_opt, &f);

	if (rc)
		return rc;
	if (!f.found)
		return (int)len;
	if (f.end != len || !get16(msg + 10))
		return -EOPNOTSUPP;
	put16(msg + 10, get16(msg + 10) - 1u);
	return (int)f.start;
}

static void put_opt(uint8_t *at, unsigned ext_rcode, uint16_t edns_flags)
{
	at[0] = 0;
	put16(at + 1, DNS_TYPE_OPT);
	put16(at + 3, DNS_EDNS_UDP_SIZE);
	put32(at + 5, (uint32_t)ext_rcode << 24 | edns_flags);   /* version 0 */
	put16(at + 9, 0);
}

int dns_msg_append_opt(uint8_t *msg, size_t len, size_t size, uint16_t edns_flags)
{
	struct opt_find f = { 0 };
	int rc = walk_records(msg, len, find_opt, &f);

	if (rc)
		return rc;
	if (f.found || get16(msg + 10) == 0xffff)
		return -EBADMSG;
	if (size < len + OPT_LEN || len + OPT_LEN > DNS_TCP_MAX)
		return -ENOSPC;
	put_opt(msg + len, 0, edns_flags);
	put16(msg + 10, get16(msg + 10) + 1u);
	return (int)(len + OPT_LEN);
}

/* Writes name (at may be NULL: only the length) with its longest suffix that is also a
 * suffix of the question's name as a pointer into the question (at offset 12). */
static size_t put_name(uint8_t *at, const struct dns_name *name, const struct dns_name *qn)
{
	/* The question's name itself (a blocked name's SOA: zone, mname and rname), what the
	 * loop below finds at i = 0, without its search. */
	if (name == qn) {
		if (at)
			put16(at, 0xc000u | DNS_HEADER_LEN);
		return 2;
	}
	for (size_t i = 0; qn && name->wire[i]; i += 1 + (size_t)name->wire[i]) {
		size_t n = name->wire_len - i, start;

		if (!suffix_at_label(qn, n, &start) || memcmp(qn->wire + start, name->wire + i, n))
			continue;
		if (at) {
			memcpy(at, name->wire, i);
			put16(at + i, 0xc000u | (unsigned)(DNS_HEADER_LEN + start));
		}
		return i + 2;
	}
	if (at)
		memcpy(at, name->wire, name->wire_len);
	return name->wire_len;
}

static size_t soa_rdlen(const struct dns_soa *soa, const struct dns_name *qn)
{
	return put_name(NULL, soa->mname, qn) + put_name(NULL, soa->rname, qn) + SOA_FIXED;
}

/* Length of the records as put_records writes them. */
static size_t records_len(const struct dns_query *q, const struct dns_rr *an, unsigned n_an,
			  const struct dns_soa *soa)
{
	size_t len = 0;

	for (unsigned i = 0; i < n_an; i++) {
		size_t rd = an[i].target ? put_name(NULL, an[i].target, &q->qname) : an[i].rdlen;

		len += 2 + RR_FIXED + rd;
	}
	if (soa)
		len += put_name(NULL, soa->zone, &q->qname) + RR_FIXED + soa_rdlen(soa, &q->qname);
	return len;
}

static size_t put_rr_head(uint8_t *at, uint16_t type, uint16_t class, uint32_t ttl,
			  size_t rdlen)
{
	put16(at, type);
	put16(at + 2, class);
	put32(at + 4, ttl);
	put16(at + 8, (unsigned)rdlen);
	return RR_FIXED;
}

static size_t put_records(uint8_t *at, const struct dns_query *q, const struct dns_rr *an,
			  unsigned n_an, const struct dns_soa *soa)
{
	const struct dns_name *qn = &q->qname;
	size_t o = 0;

	for (unsigned i = 0; i < n_an; i++) {
		size_t rd = an[i].target ? put_name(NULL, an[i].target, qn) : an[i].rdlen;

		put16(at + o, 0xc000u | DNS_HEADER_LEN);
		o += 2;
		o += put_rr_head(at + o, an[i].type, q->qclass, ttl_of(an[i].ttl), rd);
		if (an[i].target)
			put_name(at + o, an[i].target, qn);
		else if (rd)
			memcpy(at + o, an[i].rdata, rd);
		o += rd;
	}
	if (soa) {
		uint32_t ttl = ttl_of(soa->ttl < soa->minimum ? soa->ttl : soa->minimum);

		o += put_name(at + o, soa->zone, qn);
		o += put_rr_head(at + o, DNS_TYPE_SOA, q->qclass, ttl, soa_rdlen(soa, qn));
		o += put_name(at + o, soa->mname, qn);
		o += put_name(at + o, soa->rname, qn);
		put32(at + o, soa->serial);
		put32(at + o + 4, soa->refresh);
		put32(at + o + 8, soa->retry);
		put32(at + o + 12, soa->expire);
		put32(at + o + 16, soa->minimum);
		o += SOA_FIXED;
	}
	return o;
}

int dns_build_response(const struct dns_query *q, unsigned rcode, unsigned flags,
		       const struct dns_rr *an, unsigned n_an, const struct dns_soa *soa,
		       size_t limit, uint8_t *buf, size_t size)
{
	int has_q = !!(q->flags & DNS_Q_QUESTION), edns = !!(q->flags & DNS_Q_EDNS);
	size_t head = DNS_HEADER_LEN + (has_q ? q->qname.wire_len + 4u : 0);
	size_t opt = edns ? OPT_LEN : 0, rec = 0, len;
	unsigned hflags;

	if (!(q->flags & DNS_Q_HEADER) || rcode > 0xfff || (rcode > 15 && !edns) ||
	    ((n_an || soa) && !has_q))
		return -EINVAL;
	if (n_an || soa)
		rec = records_len(q, an, n_an, soa);
	if (limit > DNS_TCP_MAX)
		limit = DNS_TCP_MAX;
	hflags = DNS_FLAG_QR | (q->hdr.flags & (0x7800u | DNS_FLAG_RD | DNS_FLAG_CD)) |
		 DNS_FLAG_RA | (rcode & 0xf) | (flags & DNS_BUILD_AA ? DNS_FLAG_AA : 0);
	if (head + rec + opt > limit) {
		hflags |= DNS_FLAG_TC;     /* the client asks again over TCP (RFC 7766 5) */
		rec = 0;
		n_an = 0;
		soa = NULL;
	}
	len = head + rec + opt;
	if (!buf || size < len)
		return -ENOSPC;
	put16(buf, q->hdr.id);
	put16(buf + 2, hflags);
	put16(buf + 4, (unsigned)has_q);
	put16(buf + 6, n_an);
	put16(buf + 8, soa ? 1u : 0u);
	put16(buf + 10, (unsigned)edns);
	if (has_q) {
		memcpy(buf + DNS_HEADER_LEN, q->qname_raw, q->qname.wire_len);
		put16(buf + head - 4, q->qtype);
		put16(buf + head - 2, q->qclass);
	}
	if (rec)
		put_records(buf + head, q, an, n_an, soa);
	if (edns)
		put_opt(buf + head + rec, rcode >> 4, q->edns.flags & DNS_EDNS_DO);
	return (int)len;
}

int dns_build_answer(const struct dns_query *q, const struct dns_rr *an, unsigned n,
		     unsigned flags, size_t limit, uint8_t *buf, size_t size)
{
	return dns_build_response(q, DNS_RCODE_NOERROR, flags, an, n, NULL, limit, buf, size);
}

int dns_build_negative(const struct dns_query *q, int nxdomain, const struct dns_soa *soa,
		       unsigned flags, size_t limit, uint8_t *buf, size_t size)
{
	return dns_build_response(q, nxdomain ? DNS_RCODE_NXDOMAIN : DNS_RCODE_NOERROR, flags,
				  NULL, 0, soa, limit, buf, size);
}

int dns_build_error(const struct dns_query *q, unsigned rcode, uint8_t *buf, size_t size)
{
	return dns_build_response(q, rcode, 0, NULL, 0, NULL, DNS_TCP_MAX, buf, size);
}

int dns_ptr_name(const struct addr_port *a, struct dns_name *out)
{
	static const char hex[] = "0123456789abcdef";
	char text[80];
	size_t t = 0;

	if (a->family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&a->v4;

		t = (size_t)snprintf(text, sizeof(text), "%u.%u.%u.%u.in-addr.arpa",
				     b[3], b[2], b[1], b[0]);
	} else if (a->family == AF_INET6) {
		for (int i = 15; i >= 0; i--) {
			text[t++] = hex[a->v6.s6_addr[i] & 15];
			text[t++] = '.';
			text[t++] = hex[a->v6.s6_addr[i] >> 4];
			text[t++] = '.';
		}
		memcpy(text + t, "ip6.arpa", 8);
		t += 8;
	} else {
		return -EAFNOSUPPORT;
	}
	return dns_name_from_text(text, t, out);
}

/* One decimal label 0-255 without leading zeros, or -1. */
static int dec_octet(const uint8_t *l, size_t n)
{
	int v = 0;

	if (n < 1 || n > 3 || (n > 1 && l[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (l[i] < '0' || l[i] > '9')
			return -1;
		v = v * 10 + (l[i] - '0');
	}
	return v > 255 ? -1 : v;
}

static int hex_nibble(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lc(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int dns_ptr_addr(const struct dns_name *n, struct addr_port *out)
{
	size_t start, i = 0;
	unsigned k = 0;
	int v4;

	memset(out, 0, sizeof(*out));
	if (suffix_at_label(n, sizeof(in_addr_arpa), &start) &&
	    !memcmp(n->wire + start, in_addr_arpa, sizeof(in_addr_arpa)))
		v4 = 1;
	else if (suffix_at_label(n, sizeof(ip6_arpa), &start) &&
		 !memcmp(n->wire + start, ip6_arpa, sizeof(ip6_arpa)))
		v4 = 0;
	else
		return -ENOENT;
	for (; i < start; i += 1 + (size_t)n->wire[i], k++) {
		const uint8_t *l = n->wire + i + 1;
		int v = v4 ? dec_octet(l, n->wire[i]) : n->wire[i] == 1 ? hex_nibble(l[0]) : -1;

		if (v < 0 || k >= (v4 ? 4u : 32u))
			goto bad;
		if (v4)
			((uint8_t *)&out->v4)[3 - k] = (uint8_t)v;
		else
			out->v6.s6_addr[15 - k / 2] |= (uint8_t)(k & 1 ? v << 4 : v);
	}
	if (k != (v4 ? 4u : 32u))
		goto bad;
	out->family = v4 ? AF_INET : AF_INET6;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

int dns_tcp_frame_len(const uint8_t *p, size_t len)
{
	uint16_t n;

	if (!p || len < 2)
		return -EAGAIN;
	n = get16(p);
	return n < DNS_HEADER_LEN ? -EBADMSG : n;
}

int dns_tcp_frame_put(uint8_t prefix[2], size_t msg_len)
{
	if (msg_len > DNS_TCP_MAX)
		return -EMSGSIZE;
	put16(prefix, (unsigned)msg_len);
	return 0;
}
