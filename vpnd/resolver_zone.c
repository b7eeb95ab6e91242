/* resolver_zone.c - what the resolver answers itself, rebuilt at every netmap change
 * (resolver.h): the zone (node names -> A/AAAA, tailnet addresses -> PTR, the policy's
 * A/AAAA/CNAME/TXT records) in a chained hash table keyed by the owner's text, and the
 * manual allow/block rules as a set of names matched against every parent. Pure. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/dnspol.h"
#include "resolver.h"

struct rz_rr {
	struct rz_rr *next;
	uint32_t hash;
	uint16_t type, rdlen, owner_len;
	uint8_t data[];                  /* owner text, NUL, rdata */
};

static uint32_t hash_text(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static const uint8_t *rr_rdata(const struct rz_rr *rr)
{
	return rr->data + rr->owner_len + 1;
}

void rz_init(struct rz_zone *z)
{
	memset(z, 0, sizeof(*z));
}

void rz_free(struct rz_zone *z)
{
	for (size_t i = 0; i < z->n_buckets; i++) {
		struct rz_rr *rr = z->buckets[i], *next;

		for (; rr; rr = next) {
			next = rr->next;
			free(rr);
		}
	}
	free(z->buckets);
	rz_init(z);
}

static int zone_add(struct rz_zone *z, const char *owner, uint16_t type, const void *rdata,
		    size_t rdlen)
{
	size_t olen = strlen(owner);
	struct rz_rr *rr = malloc(sizeof(*rr) + olen + 1 + rdlen);
	uint32_t h = hash_text(owner, olen);

	if (!rr)
		return -ENOMEM;
	rr->hash = h;
	rr->type = type;
	rr->rdlen = (uint16_t)rdlen;
	rr->owner_len = (uint16_t)olen;
	memcpy(rr->data, owner, olen + 1);
	memcpy(rr->data + olen + 1, rdata, rdlen);
	rr->next = z->buckets[h & (z->n_buckets - 1)];
	z->buckets[h & (z->n_buckets - 1)] = rr;
	z->n_rrs++;
	return 0;
}

static int add_ptr(struct rz_zone *z, int family, const void *ip, const struct dns_name *target)
{
	struct addr_port a = { .family = (uint16_t)family };
	struct dns_name ptr;

	if (family == AF_INET)
		a.v4 = *(const struct in_addr *)ip;
	else
		a.v6 = *(const struct in6_addr *)ip;
	if (dns_ptr_name(&a, &ptr))
		return 0;
	return zone_add(z, ptr.text, DNS_TYPE_PTR, target->wire, target->wire_len);
}

/* A node: its name under the domain (coord's fqdn when it sent one). */
static int add_host(struct rz_zone *z, const char *name, const char *fqdn,
		    const struct in_addr *ip4, const struct in6_addr *ip6)
{
	char text[NM_NAME_LEN + 70 + sizeof(z->domain.text)], canon[DNSPOL_NAME_MAX + 1];
	struct dns_name target;
	int rc;

	if (fqdn[0])
		snprintf(text, sizeof(text), "%s", fqdn);
	else if (z->have_domain && name[0])
		snprintf(text, sizeof(text), "%s.%s", name, z->domain.text);
	else
		return 0;
	if (dnspol_name_canon(text, canon, sizeof(canon)) ||
	    dns_name_from_text(canon, strlen(canon), &target))
		return 0;   /* a name coord should not have sent: not answered */
	if (ip4->s_addr) {
		rc = zone_add(z, canon, DNS_TYPE_A, ip4, 4);
		if (!rc)
			rc = add_ptr(z, AF_INET, ip4, &target);
		if (rc)
			return rc;
	}
	if (!IN6_IS_ADDR_UNSPECIFIED(ip6)) {
		rc = zone_add(z, canon, DNS_TYPE_AAAA, ip6, 16);
		if (!rc)
			rc = add_ptr(z, AF_INET6, ip6, &target);
		if (rc)
			return rc;
	}
	return 0;
}

static int add_record(struct rz_zone *z, const struct nm_dns_record *rec)
{
	char owner[DNSPOL_NAME_MAX + 2 + sizeof(z->domain.text)];
	uint8_t rd[DNSPOL_TXT_MAX + 1];
	struct dns_name n;
	size_t len;

	if (!strchr(rec->name, '.') && z->have_domain)
		snprintf(owner, sizeof(owner), "%s.%s", rec->name, z->domain.text);
	else
		snprintf(owner, sizeof(owner), "%s", rec->name);
	if (strlen(owner) > DNSPOL_NAME_MAX)
		return 0;
	switch (rec->type) {
	case DNSPOL_RR_A:
		return inet_pton(AF_INET, rec->value, rd) == 1 ? zone_add(z, owner, DNS_TYPE_A, rd, 4) : 0;
	case DNSPOL_RR_AAAA:
		return inet_pton(AF_INET6, rec->value, rd) == 1 ? zone_add(z, owner, DNS_TYPE_AAAA, rd, 16)
								 : 0;
	case DNSPOL_RR_CNAME:
		if (dns_name_from_text(rec->value, strlen(rec->value), &n))
			return 0;
		return zone_add(z, owner, DNS_TYPE_CNAME, n.wire, n.wire_len);
	case DNSPOL_RR_TXT:
		len = strlen(rec->value);
		if (len > DNSPOL_TXT_MAX)
			return 0;
		rd[0] = (uint8_t)len;
		memcpy(rd + 1, rec->value, len);
		return zone_add(z, owner, DNS_TYPE_TXT, rd, len + 1);
	}
	return 0;
}

int rz_build(struct rz_zone *z, const struct netmap *nm)
{
	const char *dom = nm->dns && nm->dns->domain[0] ? nm->dns->domain : nm->domain;
	size_t want = 4 * (nm->n_peers + 1) + (nm->dns ? nm->dns->n_records : 0), nb = 64;
	int rc = 0;

	rz_free(z);
	while (nb < 2 * want)
		nb <<= 1;
	z->buckets = calloc(nb, sizeof(*z->buckets));
	if (!z->buckets)
		return -ENOMEM;
	z->n_buckets = nb;
	if (dom[0] && !dns_name_from_text(dom, strlen(dom), &z->domain) && z->domain.n_labels)
		z->have_domain = 1;
	if (!IN6_IS_ADDR_UNSPECIFIED(&nm->self.ip6)) {
		memcpy(z->ula.s6_addr, nm->self.ip6.s6_addr, 6);
		z->have_ula = 1;
	}
	rc = add_host(z, nm->self.name, nm->self.fqdn, &nm->self.ip4, &nm->self.ip6);
	for (size_t i = 0; !rc && i < nm->n_peers; i++) {
		const struct nm_peer *p = &nm->peers[i];

		rc = add_host(z, p->name, p->fqdn, &p->ip4, &p->ip6);
	}
	for (size_t i = 0; !rc && nm->dns && i < nm->dns->n_records; i++)
		rc = add_record(z, &nm->dns->records[i]);
	if (rc)
		rz_free(z);
	return rc;
}

/* The records of owner of type (0: any), appended to out as answers; how many. */
static unsigned find(const struct rz_zone *z, const char *owner, size_t len, uint16_t type,
		     struct rz_answer *out, int *exists, const struct rz_rr **cname)
{
	uint32_t h = hash_text(owner, len);
	unsigned found = 0;

	if (!z->n_buckets)
		return 0;
	for (const struct rz_rr *rr = z->buckets[h & (z->n_buckets - 1)]; rr; rr = rr->next) {
		if (rr->hash != h || rr->owner_len != len || memcmp(rr->data, owner, len))
			continue;
		*exists = 1;
		if (rr->type == DNS_TYPE_CNAME && cname)
			*cname = rr;
		if ((type && rr->type != type) || out->n >= RZ_ANSWERS_MAX)
			continue;
		out->rr[out->n++] = (struct dns_rr){ .type = rr->type, .ttl = RS_TTL,
						      .rdata = rr_rdata(rr), .rdlen = rr->rdlen };
		found++;
	}
	return found;
}

/* A reverse name of the tailnet's ranges: 100.64.0.0/10 and our ULA /48. */
static int tailnet_reverse(const struct rz_zone *z, const struct dns_name *name)
{
	struct addr_port a;

	if (dns_ptr_addr(name, &a))
		return 0;
	if (a.family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&a.v4;

		return b[0] == 100 && (b[1] & 0xc0) == 64;
	}
	return z->have_ula && !memcmp(a.v6.s6_addr, z->ula.s6_addr, 6);
}

void rz_lookup(const struct rz_zone *z, const struct dns_name *name, uint16_t qtype,
	       struct rz_answer *out)
{
	const struct rz_rr *cname = NULL;
	struct dns_name target;
	int exists = 0, t_exists = 0;

	out->n = 0;
	out->result = RZ_NOT_OURS;
	if (find(z, name->text, name->text_len, qtype == DNS_TYPE_ANY ? 0 : qtype, out, &exists,
		 &cname)) {
		out->result = RZ_ANSWER;
		return;
	}
	if (exists) {
		out->result = RZ_NODATA;
		if (!cname)
			return;
		out->result = RZ_ANSWER;
		if (!dns_name_from_wire(rr_rdata(cname), cname->rdlen, &target) &&
		    find(z, target.text, target.text_len, qtype, out, &t_exists, NULL))
			return;   /* flattened */
		out->rr[out->n++] = (struct dns_rr){ .type = DNS_TYPE_CNAME, .ttl = RS_TTL,
						      .rdata = rr_rdata(cname), .rdlen = cname->rdlen };
		return;
	}
	if (z->have_domain && dns_name_under(name, &z->domain))
		out->result = dns_name_equal(name, &z->domain) ? RZ_NODATA : RZ_NXDOMAIN;
	else if (tailnet_reverse(z, name))
		out->result = RZ_NXDOMAIN;
}

/* ---- manual rules ---- */

struct rr_slot {
	char *name;                      /* NULL: empty */
	uint32_t hash;
	uint16_t len;
	uint8_t allow;
};

void rr_rules_init(struct rr_rules *r)
{
	memset(r, 0, sizeof(*r));
}

void rr_rules_free(struct rr_rules *r)
{
	for (size_t i = 0; i < r->cap; i++)
		free(r->slots[i].name);
	free(r->slots);
	rr_rules_init(r);
}

static struct rr_slot *slot_of(const struct rr_rules *r, const char *name, size_t len, int allow)
{
	uint32_t h = hash_text(name, len) ^ (uint32_t)allow;

	for (size_t i = h & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
		struct rr_slot *s = &r->slots[i];

		if (!s->name || (s->hash == h && s->len == len && s->allow == allow &&
				 !memcmp(s->name, name, len)))
			return s;
	}
}

int rr_rules_build(struct rr_rules *r, const struct nm_dns_rule *rules, size_t n)
{
	size_t cap = 16;

	rr_rules_free(r);
	while (cap < 2 * n)
		cap <<= 1;
	r->slots = calloc(cap, sizeof(*r->slots));
	if (!r->slots)
		return -ENOMEM;
	r->cap = cap;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(rules[i].domain);
		int allow = !!rules[i].allow;
		struct rr_slot *s = slot_of(r, rules[i].domain, len, allow);

		if (s->name)
			continue;
		s->name = strdup(rules[i].domain);
		if (!s->name) {
			rr_rules_free(r);
			return -ENOMEM;
		}
		s->hash = hash_text(s->name, len) ^ (uint32_t)allow;
		s->len = (uint16_t)len;
		s->allow = (uint8_t)allow;
		r->n++;
	}
	return 0;
}

enum blocklist_verdict rr_rules_match(const struct rr_rules *r, const char *name, size_t len)
{
	int blocked = 0;

	if (!r->n)
		return BLOCKLIST_NONE;
	/* The name, then each parent: the suffix after every dot. */
	for (size_t off = 0; off < len;) {
		const char *dot;

		if (slot_of(r, name + off, len - off, 1)->name)
			return BLOCKLIST_ALLOWED;
		if (slot_of(r, name + off, len - off, 0)->name)
			blocked = 1;
		dot = memchr(name + off, '.', len - off);
		if (!dot)
			break;
		off = (size_t)(dot - name) + 1;
	}
	return blocked ? BLOCKLIST_BLOCKED : BLOCKLIST_NONE;
}
