/* resolver_cache.c - the resolver's answer cache (resolver.h): upstream answers (their OPT
 * stripped) keyed by lower-cased name wire form, type and class, for their TTL (RFC 2308
 * for negative ones), then stale for a bounded time (RFC 8767); bounded in entries,
 * evicting the least recently used; and the rewrite of such an answer for the client that
 * asked. Pure: the caller gives the time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"

struct rc_entry {
	struct rc_entry *next;           /* bucket chain */
	struct rc_entry *lru_prev, *lru_next;
	uint32_t hash;
	uint16_t qtype, qclass;
	uint64_t stored_ms, expires_ms;
	uint32_t tag;
	uint16_t name_len, msg_len;
	uint8_t data[];                  /* name wire, message */
};

static uint32_t key_hash(const struct dns_name *n, uint16_t qtype, uint16_t qclass)
{
	uint32_t h = 2166136261u ^ ((uint32_t)qtype << 16 | qclass);

	for (size_t i = 0; i < n->wire_len; i++)
		h = (h ^ n->wire[i]) * 16777619u;
	return h;
}

int rc_init(struct rc_cache *c, size_t max, uint32_t stale_s)
{
	size_t nb = 64;

	memset(c, 0, sizeof(*c));
	while (nb < max)
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets)
		return -ENOMEM;
	c->n_buckets = nb;
	c->max = max ? max : 1;
	c->stale_s = stale_s;
	return 0;
}

void rc_clear(struct rc_cache *c)
{
	struct rc_entry *e, *next;

	for (e = c->lru_head; e; e = next) {
		next = e->lru_next;
		free(e);
	}
	if (c->buckets)
		memset(c->buckets, 0, c->n_buckets * sizeof(*c->buckets));
	c->lru_head = c->lru_tail = NULL;
	c->n = 0;
}

void rc_free(struct rc_cache *c)
{
	rc_clear(c);
	free(c->buckets);
	memset(c, 0, sizeof(*c));
}

static void lru_unlink(struct rc_cache *c, struct rc_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push(struct rc_cache *c, struct rc_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static void entry_remove(struct rc_cache *c, struct rc_entry *e)
{
	struct rc_entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	lru_unlink(c, e);
	c->n--;
	free(e);
}

static struct rc_entry *lookup(const struct rc_cache *c, const struct dns_name *name,
			       uint16_t qtype, uint16_t qclass, uint32_t h)
{
	for (struct rc_entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->next)
		if (e->hash == h && e->qtype == qtype && e->qclass == qclass &&
		    e->name_len == name->wire_len && !memcmp(e->data, name->wire, name->wire_len))
			return e;
	return NULL;
}

uint32_t rc_ttl_of(const struct dns_response *r)
{
	unsigned rcode = r->rcode;

	if (r->flags & DNS_R_TC)
		return 0;
	if (rcode == DNS_RCODE_NOERROR && r->hdr.ancount)
		return r->min_ttl < RS_CACHE_TTL_MAX ? r->min_ttl : RS_CACHE_TTL_MAX;
	if ((rcode == DNS_RCODE_NXDOMAIN || rcode == DNS_RCODE_NOERROR) && (r->flags & DNS_R_SOA))
		return r->neg_ttl < RS_CACHE_TTL_MAX ? r->neg_ttl : RS_CACHE_TTL_MAX;
	return 0;
}

int rc_put(struct rc_cache *c, const struct dns_name *name, uint16_t qtype, uint16_t qclass,
	   const uint8_t *msg, size_t len, uint32_t ttl, uint64_t now_ms)
{
	uint32_t h = key_hash(name, qtype, qclass);
	struct rc_entry *e = lookup(c, name, qtype, qclass, h);

	if (len > UINT16_MAX)
		return -EMSGSIZE;
	if (e)
		entry_remove(c, e);
	while (c->n >= c->max && c->lru_tail) {
		entry_remove(c, c->lru_tail);
		c->evictions++;
	}
	e = malloc(sizeof(*e) + name->wire_len + len);
	if (!e)
		return -ENOMEM;
	e->hash = h;
	e->qtype = qtype;
	e->qclass = qclass;
	e->stored_ms = now_ms;
	e->tag = c->tag;
	e->expires_ms = now_ms + (uint64_t)ttl * 1000;
	e->name_len = name->wire_len;
	e->msg_len = (uint16_t)len;
	memcpy(e->data, name->wire, name->wire_len);
	memcpy(e->data + name->wire_len, msg, len);
	e->next = c->buckets[h & (c->n_buckets - 1)];
	c->buckets[h & (c->n_buckets - 1)] = e;
	lru_push(c, e);
	c->n++;
	return 0;
}

enum rc_state rc_get(struct rc_cache *c, const struct dns_name *name, uint16_t qtype,
		     uint16_t qclass, uint64_t now_ms, int allow_stale, struct rc_hit *hit)
{
	uint32_t h = key_hash(name, qtype, qclass);
	struct rc_entry *e = lookup(c, name, qtype, qclass, h);
	enum rc_state st;

	if (!e)
		return RC_MISS;
	if (now_ms < e->expires_ms) {
		st = RC_FRESH;
	} else if (now_ms < e->expires_ms + (uint64_t)c->stale_s * 1000) {
		if (!allow_stale)
			return RC_MISS;
		st = RC_STALE;
	} else {
		entry_remove(c, e);
		return RC_MISS;
	}
	lru_unlink(c, e);
	lru_push(c, e);
	hit->msg = e->data + e->name_len;
	hit->len = e->msg_len;
	hit->age_s = (uint32_t)((now_ms - e->stored_ms) / 1000);
	hit->tag = &e->tag;
	return st;
}

int rc_rewrite(const struct dns_query *q, const uint8_t *msg, size_t len, uint32_t age_s,
	       int stale, size_t limit, uint8_t *out, size_t size)
{
	int n, kept_opt;

	if (len > size || len < (size_t)DNS_HEADER_LEN)
		return -ENOSPC;
	memcpy(out, msg, len);
	/* No additional records (a cached answer mostly: stored without its OPT), no OPT:
	 * no walk through the records to find one. */
	n = out[10] || out[11] ? dns_msg_strip_opt(out, len) : (int)len;
	if (n < 0 && n != -EOPNOTSUPP)
		return n;
	/* An OPT with records after it stays (rare, legal): a second one would not be. */
	kept_opt = n == -EOPNOTSUPP;
	if (n > 0)
		len = (size_t)n;
	dns_msg_set_id(out, len, q->hdr.id);
	/* The question as the client spelt it (0x20): the same name, so the same length, and
	 * uncompressed at 12 (nothing comes before it to point to). */
	if (((out[4] << 8) | out[5]) == 1 && len >= (size_t)DNS_HEADER_LEN + q->qname.wire_len)
		memcpy(out + DNS_HEADER_LEN, q->qname_raw, q->qname.wire_len);
	if (stale)
		n = dns_msg_set_ttl(out, len, DNS_STALE_TTL);
	else
		n = age_s ? dns_msg_age(out, len, age_s) : 0;
	if (n < 0)
		return n;
	if ((q->flags & DNS_Q_EDNS) && !kept_opt) {
		n = dns_msg_append_opt(out, len, size, q->edns.flags & DNS_EDNS_DO);
		if (n > 0)
			len = (size_t)n;
	}
	if (len > limit) {
		/* Too big for the client's UDP size: the header and question, TC (RFC 2181 9). */
		n = dns_build_response(q, out[3] & 0xf, 0, NULL, 0, NULL, limit, out, size);
		if (n < DNS_HEADER_LEN)
			return n < 0 ? n : -ENOSPC;
		out[2] |= DNS_FLAG_TC >> 8;
		len = (size_t)n;
	}
	return (int)len;
}
