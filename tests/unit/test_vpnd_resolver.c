/* test_vpnd_resolver.c - the resolver's pure parts (vpnd/resolver_zone.c,
 * vpnd/resolver_cache.c): the zone built from a netmap (node names, PTR, the policy's
 * records, NODATA / NXDOMAIN / not ours, rebuilt when a peer goes), the manual allow/block
 * matcher, and the answer cache on a fake clock (TTLs, negative caching, stale answers,
 * eviction). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "meshvpn/tls.h"
#include "vpnd/resolver.h"
#include "vpnd/resolver_udp.h"

static struct nm_dns_record records[] = {
	{ "web", DNSPOL_RR_A, "192.0.2.80" },
	{ "alias", DNSPOL_RR_CNAME, "web.ts.test" },
	{ "ext", DNSPOL_RR_CNAME, "example.com" },
	{ "txt", DNSPOL_RR_TXT, "hello" },
	{ "x.example.org", DNSPOL_RR_AAAA, "2001:db8::80" },
};

static void make_map(struct netmap *m, struct nm_dns *dns, struct nm_peer *peers, size_t n)
{
	memset(m, 0, sizeof(*m));
	memset(dns, 0, sizeof(*dns));
	snprintf(m->domain, sizeof(m->domain), "ts.test");
	snprintf(dns->domain, sizeof(dns->domain), "ts.test");
	dns->records = records;
	dns->n_records = sizeof(records) / sizeof(records[0]);
	m->dns = dns;
	snprintf(m->self.name, sizeof(m->self.name), "alpha");
	snprintf(m->self.fqdn, sizeof(m->self.fqdn), "alpha.ts.test");
	inet_pton(AF_INET, "100.64.0.1", &m->self.ip4);
	inet_pton(AF_INET6, "fd88:3389:80f6::6440:1", &m->self.ip6);
	memset(peers, 0, n * sizeof(*peers));
	for (size_t i = 0; i < n; i++) {
		char a[32];

		peers[i].id = (int64_t)i + 10;
		snprintf(peers[i].name, sizeof(peers[i].name), "peer%zu", i);
		snprintf(a, sizeof(a), "100.64.1.%zu", i + 1);
		inet_pton(AF_INET, a, &peers[i].ip4);
		snprintf(a, sizeof(a), "fd88:3389:80f6::1:%zu", i + 1);
		inet_pton(AF_INET6, a, &peers[i].ip6);
	}
	m->peers = peers;
	m->n_peers = n;
}

static enum rz_result lookup(const struct rz_zone *z, const char *name, uint16_t type,
			     struct rz_answer *a)
{
	struct dns_name n;

	assert_int_equal(dns_name_from_text(name, strlen(name), &n), 0);
	rz_lookup(z, &n, type, a);
	return a->result;
}

static void test_zone_names(void **state)
{
	struct netmap m;
	struct nm_dns dns;
	struct nm_peer peers[2];
	struct rz_zone z;
	struct rz_answer a;
	uint8_t ip[16];

	(void)state;
	make_map(&m, &dns, peers, 2);
	rz_init(&z);
	assert_int_equal(rz_build(&z, &m), 0);

	assert_int_equal(lookup(&z, "alpha.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.rr[0].rdlen, 4);
	inet_pton(AF_INET, "100.64.0.1", ip);
	assert_memory_equal(a.rr[0].rdata, ip, 4);
	assert_int_equal(lookup(&z, "ALPHA.ts.test", DNS_TYPE_AAAA, &a), RZ_ANSWER);
	inet_pton(AF_INET6, "fd88:3389:80f6::6440:1", ip);
	assert_memory_equal(a.rr[0].rdata, ip, 16);
	/* A peer without an fqdn: its name under the domain. */
	assert_int_equal(lookup(&z, "peer1.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	inet_pton(AF_INET, "100.64.1.2", ip);
	assert_memory_equal(a.rr[0].rdata, ip, 4);

	assert_int_equal(lookup(&z, "peer0.ts.test", DNS_TYPE_TXT, &a), RZ_NODATA);
	assert_int_equal(lookup(&z, "nobody.ts.test", DNS_TYPE_A, &a), RZ_NXDOMAIN);
	assert_int_equal(lookup(&z, "ts.test", DNS_TYPE_A, &a), RZ_NODATA);
	assert_int_equal(lookup(&z, "example.com", DNS_TYPE_A, &a), RZ_NOT_OURS);
	assert_int_equal(lookup(&z, "xts.test", DNS_TYPE_A, &a), RZ_NOT_OURS);
	rz_free(&z);
}

static void test_zone_ptr(void **state)
{
	struct netmap m;
	struct nm_dns dns;
	struct nm_peer peers[1];
	struct rz_zone z;
	struct rz_answer a;
	struct dns_name target;
	struct addr_port ap = { .family = AF_INET6 };
	struct dns_name ptr6;

	(void)state;
	make_map(&m, &dns, peers, 1);
	rz_init(&z);
	assert_int_equal(rz_build(&z, &m), 0);
	assert_int_equal(lookup(&z, "1.0.64.100.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_ANSWER);
	assert_int_equal(a.rr[0].type, DNS_TYPE_PTR);
	assert_int_equal(dns_name_from_wire(a.rr[0].rdata, a.rr[0].rdlen, &target), 0);
	assert_string_equal(target.text, "alpha.ts.test");
	assert_int_equal(lookup(&z, "1.1.64.100.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_ANSWER);
	assert_int_equal(dns_name_from_wire(a.rr[0].rdata, a.rr[0].rdlen, &target), 0);
	assert_string_equal(target.text, "peer0.ts.test");

	inet_pton(AF_INET6, "fd88:3389:80f6::1:1", &ap.v6);
	assert_int_equal(dns_ptr_name(&ap, &ptr6), 0);
	rz_lookup(&z, &ptr6, DNS_TYPE_PTR, &a);
	assert_int_equal(a.result, RZ_ANSWER);
	assert_int_equal(dns_name_from_wire(a.rr[0].rdata, a.rr[0].rdlen, &target), 0);
	assert_string_equal(target.text, "peer0.ts.test");
	/* Unknown addresses of the tailnet: NXDOMAIN; anything else goes upstream. */
	inet_pton(AF_INET6, "fd88:3389:80f6::9:9", &ap.v6);
	assert_int_equal(dns_ptr_name(&ap, &ptr6), 0);
	rz_lookup(&z, &ptr6, DNS_TYPE_PTR, &a);
	assert_int_equal(a.result, RZ_NXDOMAIN);
	assert_int_equal(lookup(&z, "9.9.127.100.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_NXDOMAIN);
	assert_int_equal(lookup(&z, "8.8.8.8.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_NOT_OURS);
	assert_int_equal(lookup(&z, "1.0.128.100.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_NOT_OURS);
	rz_free(&z);
}

static void test_zone_records(void **state)
{
	struct netmap m;
	struct nm_dns dns;
	struct nm_peer peers[1];
	struct rz_zone z;
	struct rz_answer a;
	struct dns_name target;
	uint8_t ip[16];

	(void)state;
	make_map(&m, &dns, peers, 1);
	rz_init(&z);
	assert_int_equal(rz_build(&z, &m), 0);
	assert_int_equal(lookup(&z, "web.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	inet_pton(AF_INET, "192.0.2.80", ip);
	assert_memory_equal(a.rr[0].rdata, ip, 4);
	/* A CNAME within the zone: flattened to the target's address. */
	assert_int_equal(lookup(&z, "alias.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.rr[0].type, DNS_TYPE_A);
	assert_memory_equal(a.rr[0].rdata, ip, 4);
	assert_int_equal(lookup(&z, "alias.ts.test", DNS_TYPE_CNAME, &a), RZ_ANSWER);
	assert_int_equal(a.rr[0].type, DNS_TYPE_CNAME);
	/* Outside it: the CNAME alone. */
	assert_int_equal(lookup(&z, "ext.ts.test", DNS_TYPE_AAAA, &a), RZ_ANSWER);
	assert_int_equal(a.rr[0].type, DNS_TYPE_CNAME);
	assert_int_equal(dns_name_from_wire(a.rr[0].rdata, a.rr[0].rdlen, &target), 0);
	assert_string_equal(target.text, "example.com");
	assert_int_equal(lookup(&z, "txt.ts.test", DNS_TYPE_TXT, &a), RZ_ANSWER);
	assert_int_equal(a.rr[0].rdlen, 6);
	assert_memory_equal(a.rr[0].rdata, "\x05hello", 6);
	/* A name with a dot is taken as it is, outside the domain too. */
	assert_int_equal(lookup(&z, "x.example.org", DNS_TYPE_AAAA, &a), RZ_ANSWER);
	assert_int_equal(lookup(&z, "x.example.org", DNS_TYPE_A, &a), RZ_NODATA);
	assert_int_equal(lookup(&z, "x.example.org.ts.test", DNS_TYPE_A, &a), RZ_NXDOMAIN);
	rz_free(&z);
}

/* Every netmap change rebuilds: a removed peer is gone, a new record is there. */
static void test_zone_rebuild(void **state)
{
	struct netmap m;
	struct nm_dns dns;
	struct nm_peer peers[3];
	struct rz_zone z;
	struct rz_answer a;
	struct nm_dns_record more[6];

	(void)state;
	make_map(&m, &dns, peers, 3);
	rz_init(&z);
	assert_int_equal(rz_build(&z, &m), 0);
	assert_int_equal(lookup(&z, "peer2.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	m.n_peers = 2;
	memcpy(more, records, sizeof(records));
	more[5] = (struct nm_dns_record){ "new", DNSPOL_RR_A, "192.0.2.9" };
	dns.records = more;
	dns.n_records = 6;
	assert_int_equal(rz_build(&z, &m), 0);
	assert_int_equal(lookup(&z, "peer2.ts.test", DNS_TYPE_A, &a), RZ_NXDOMAIN);
	assert_int_equal(lookup(&z, "3.1.64.100.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_NXDOMAIN);
	assert_int_equal(lookup(&z, "new.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	/* No domain at all: nothing is ours but the reverse zone. */
	m.domain[0] = dns.domain[0] = 0;
	m.self.fqdn[0] = 0;
	assert_int_equal(rz_build(&z, &m), 0);
	assert_int_equal(lookup(&z, "alpha.ts.test", DNS_TYPE_A, &a), RZ_NOT_OURS);
	assert_int_equal(lookup(&z, "9.9.64.100.in-addr.arpa", DNS_TYPE_PTR, &a), RZ_NXDOMAIN);
	rz_free(&z);
}

static void test_zone_many(void **state)
{
	size_t n = 5000;
	struct nm_peer *peers = calloc(n, sizeof(*peers));
	struct netmap m;
	struct nm_dns dns;
	struct rz_zone z;
	struct rz_answer a;

	(void)state;
	assert_non_null(peers);
	make_map(&m, &dns, peers, n);
	for (size_t i = 0; i < n; i++)
		peers[i].ip4.s_addr = htonl(0x64400000u + 0x10000u + (uint32_t)i);
	rz_init(&z);
	assert_int_equal(rz_build(&z, &m), 0);
	assert_int_equal(z.n_rrs, 4 * (n + 1) + 5);
	assert_int_equal(lookup(&z, "peer4999.ts.test", DNS_TYPE_A, &a), RZ_ANSWER);
	rz_free(&z);
	free(peers);
}

static void test_rules(void **state)
{
	struct nm_dns_rule rules[] = {
		{ "ads.example", 0 }, { "ok.ads.example", 1 }, { "tracker.test", 0 }, { "ads.example", 0 },
	};
	struct rr_rules r;

	(void)state;
	rr_rules_init(&r);
	assert_int_equal(rr_rules_match(&r, "ads.example", 11), BLOCKLIST_NONE);
	assert_int_equal(rr_rules_build(&r, rules, 4), 0);
	assert_int_equal(r.n, 3);
#define M(s) rr_rules_match(&r, s, strlen(s))
	assert_int_equal(M("ads.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(M("x.ads.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(M("a.b.ads.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(M("ok.ads.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(M("a.ok.ads.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(M("xads.example"), BLOCKLIST_NONE);
	assert_int_equal(M("example"), BLOCKLIST_NONE);
	assert_int_equal(M("tracker.test"), BLOCKLIST_BLOCKED);
	assert_int_equal(M("test"), BLOCKLIST_NONE);
#undef M
	/* Rebuilt from an empty policy: nothing blocked. */
	assert_int_equal(rr_rules_build(&r, NULL, 0), 0);
	assert_int_equal(rr_rules_match(&r, "ads.example", 11), BLOCKLIST_NONE);
	rr_rules_free(&r);
}

/* ---- the cache ---- */

static size_t make_query(const char *name, uint16_t type, uint8_t *buf)
{
	struct dns_name n;
	size_t len = DNS_HEADER_LEN;

	assert_int_equal(dns_name_from_text(name, strlen(name), &n), 0);
	memset(buf, 0, DNS_HEADER_LEN);
	buf[0] = 0x12;
	buf[1] = 0x34;
	buf[2] = 0x01;   /* RD */
	buf[5] = 1;
	memcpy(buf + len, n.wire, n.wire_len);
	len += n.wire_len;
	buf[len++] = (uint8_t)(type >> 8);
	buf[len++] = (uint8_t)type;
	buf[len++] = 0;
	buf[len++] = 1;
	return len;
}

/* An upstream's answer: A with ttl, NXDOMAIN with an SOA, or SERVFAIL (rcode). */
static size_t make_answer(const char *name, uint16_t type, unsigned rcode, uint32_t ttl,
			  int with_soa, uint8_t *buf, size_t size, struct dns_query *q,
			  struct dns_response *resp)
{
	static const uint8_t ip[4] = { 192, 0, 2, 1 };
	uint8_t qb[300];
	struct dns_rr rr = { .type = DNS_TYPE_A, .ttl = ttl, .rdata = ip, .rdlen = 4 };
	struct dns_name zone;
	struct dns_soa soa = { .zone = &zone, .mname = &zone, .rname = &zone, .ttl = 600,
			       .serial = 1, .refresh = 1, .retry = 1, .expire = 1, .minimum = 120 };
	int n;

	assert_int_equal(dns_name_from_text("example", 7, &zone), 0);
	assert_int_equal(dns_parse_query(qb, make_query(name, type, qb), q), 0);
	if (rcode == DNS_RCODE_NOERROR)
		n = dns_build_answer(q, &rr, 1, 0, size, buf, size);
	else if (rcode == DNS_RCODE_NXDOMAIN)
		n = dns_build_negative(q, 1, with_soa ? &soa : NULL, 0, size, buf, size);
	else
		n = dns_build_error(q, rcode, buf, size);
	assert_true(n > 0);
	buf[2] |= 0x80;   /* QR: the builder answers as a server does */
	assert_int_equal(dns_parse_response(buf, (size_t)n, resp), 0);
	return (size_t)n;
}

static void test_cache_ttl(void **state)
{
	struct rc_cache c;
	struct dns_query q;
	struct dns_response resp;
	struct rc_hit hit;
	uint8_t msg[512];
	size_t len = make_answer("www.example", DNS_TYPE_A, 0, 300, 0, msg, sizeof(msg), &q, &resp);
	uint64_t t0 = 1000000;

	(void)state;
	assert_int_equal(rc_init(&c, 100, RS_STALE_MAX_S), 0);
	assert_int_equal(rc_ttl_of(&resp), 300);
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass, t0, 1, &hit), RC_MISS);
	assert_int_equal(rc_put(&c, &q.qname, q.qtype, q.qclass, msg, len, 300, t0), 0);
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass, t0 + 100000, 0, &hit), RC_FRESH);
	assert_int_equal(hit.age_s, 100);
	assert_int_equal(hit.len, len);
	assert_memory_equal(hit.msg, msg, len);
	/* Another type or class is another key. */
	assert_int_equal(rc_get(&c, &q.qname, DNS_TYPE_AAAA, q.qclass, t0, 0, &hit), RC_MISS);
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, 3, t0, 0, &hit), RC_MISS);
	/* Expired: a miss for a fresh lookup, stale when every upstream is down... */
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass, t0 + 300000, 0, &hit), RC_MISS);
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass, t0 + 300000, 1, &hit),
			 RC_STALE);
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass,
				t0 + 300000 + (uint64_t)RS_STALE_MAX_S * 1000 - 1, 1, &hit),
			 RC_STALE);
	/* ...and gone a day past its expiry. */
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass,
				t0 + 300000 + (uint64_t)RS_STALE_MAX_S * 1000, 1, &hit),
			 RC_MISS);
	assert_int_equal(c.n, 0);
	/* A new answer replaces the old. */
	assert_int_equal(rc_put(&c, &q.qname, q.qtype, q.qclass, msg, len, 10, t0), 0);
	assert_int_equal(rc_put(&c, &q.qname, q.qtype, q.qclass, msg, len, 20, t0), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(rc_get(&c, &q.qname, q.qtype, q.qclass, t0 + 15000, 0, &hit), RC_FRESH);
	/* TTLs are capped at a day. */
	len = make_answer("long.example", DNS_TYPE_A, 0, 10000000, 0, msg, sizeof(msg), &q, &resp);
	assert_int_equal(rc_ttl_of(&resp), RS_CACHE_TTL_MAX);
	rc_free(&c);
}

static void test_cache_negative(void **state)
{
	struct dns_query q;
	struct dns_response resp;
	uint8_t msg[512];

	(void)state;
	/* RFC 2308 5: min(SOA TTL, MINIMUM). */
	make_answer("no.example", DNS_TYPE_A, DNS_RCODE_NXDOMAIN, 0, 1, msg, sizeof(msg), &q, &resp);
	assert_int_equal(resp.rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(rc_ttl_of(&resp), 120);
	/* Without an SOA: not cached. */
	make_answer("no.example", DNS_TYPE_A, DNS_RCODE_NXDOMAIN, 0, 0, msg, sizeof(msg), &q, &resp);
	assert_int_equal(rc_ttl_of(&resp), 0);
	/* SERVFAIL never. */
	make_answer("no.example", DNS_TYPE_A, DNS_RCODE_SERVFAIL, 0, 0, msg, sizeof(msg), &q, &resp);
	assert_int_equal(rc_ttl_of(&resp), 0);
	/* A zero TTL: not cached. */
	make_answer("zero.example", DNS_TYPE_A, 0, 0, 0, msg, sizeof(msg), &q, &resp);
	assert_int_equal(rc_ttl_of(&resp), 0);
	/* Truncated: not cached (the TCP answer will be). */
	make_answer("big.example", DNS_TYPE_A, 0, 300, 0, msg, sizeof(msg), &q, &resp);
	msg[2] |= DNS_FLAG_TC >> 8;
	assert_int_equal(dns_parse_response(msg, resp.end, &resp), 0);
	assert_int_equal(rc_ttl_of(&resp), 0);
}

static void test_cache_evict(void **state)
{
	struct rc_cache c;
	struct dns_query q[4];
	struct dns_response resp;
	struct rc_hit hit;
	uint8_t msg[512];
	const char *names[] = { "a.example", "b.example", "c.example", "d.example" };
	size_t len = 0;

	(void)state;
	assert_int_equal(rc_init(&c, 3, RS_STALE_MAX_S), 0);
	for (int i = 0; i < 4; i++) {
		len = make_answer(names[i], DNS_TYPE_A, 0, 300, 0, msg, sizeof(msg), &q[i], &resp);
		if (i == 3)   /* a used since it was stored: b is the least recent */
			assert_int_equal(rc_get(&c, &q[0].qname, DNS_TYPE_A, 1, 1, 0, &hit), RC_FRESH);
		assert_int_equal(rc_put(&c, &q[i].qname, DNS_TYPE_A, 1, msg, len, 300, 0), 0);
	}
	assert_int_equal(c.n, 3);
	assert_int_equal(c.evictions, 1);
	assert_int_equal(rc_get(&c, &q[1].qname, DNS_TYPE_A, 1, 1, 0, &hit), RC_MISS);
	assert_int_equal(rc_get(&c, &q[0].qname, DNS_TYPE_A, 1, 1, 0, &hit), RC_FRESH);
	assert_int_equal(rc_get(&c, &q[2].qname, DNS_TYPE_A, 1, 1, 0, &hit), RC_FRESH);
	assert_int_equal(rc_get(&c, &q[3].qname, DNS_TYPE_A, 1, 1, 0, &hit), RC_FRESH);
	rc_clear(&c);
	assert_int_equal(c.n, 0);
	assert_int_equal(rc_get(&c, &q[0].qname, DNS_TYPE_A, 1, 1, 0, &hit), RC_MISS);
	/* Many more than fit: bounded. */
	for (int i = 0; i < 1000; i++) {
		char name[32];
		struct dns_name n;

		snprintf(name, sizeof(name), "n%d.example", i);
		assert_int_equal(dns_name_from_text(name, strlen(name), &n), 0);
		assert_int_equal(rc_put(&c, &n, DNS_TYPE_A, 1, msg, len, 300, 0), 0);
	}
	assert_int_equal(c.n, 3);
	rc_free(&c);
}

/* ---- the resolver on a loop: a client and a fake upstream on 127.0.0.1 ---- */

static int udp_socket(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
	return fd;
}

/* Runs the loop until fd has a datagram (or ms pass): its length, or -1. */
static ssize_t pump_recv(uv_loop_t *loop, int fd, uint8_t *buf, size_t size,
			 struct sockaddr_in *from, int ms)
{
	for (int i = 0; i < ms; i++) {
		socklen_t fl = sizeof(*from);
		ssize_t n;

		uv_run(loop, UV_RUN_NOWAIT);
		n = recvfrom(fd, buf, size, 0, (struct sockaddr *)from, &fl);
		if (n > 0)
			return n;
		usleep(1000);
	}
	return -1;
}

struct lab {
	uv_loop_t loop;
	struct resolver r;
	struct netmap m;
	struct nm_dns dns;
	struct nm_peer peers[1];
	struct nm_dns_rule rules[2];
	int client, up, rogue;
	struct sockaddr_in res_sa, up_sa, rogue_sa, client_sa;
};

static void lab_start(struct lab *l)
{
	struct addr_port listen = { .family = AF_INET, .port = 0 };
	struct sockaddr_storage ss;

	memset(l, 0, sizeof(*l));
	assert_int_equal(uv_loop_init(&l->loop), 0);
	l->client = udp_socket(&l->client_sa);
	l->up = udp_socket(&l->up_sa);
	l->rogue = udp_socket(&l->rogue_sa);
	make_map(&l->m, &l->dns, l->peers, 1);
	l->dns.upstreams[0].addr = (struct addr_port){ .family = AF_INET,
						       .port = ntohs(l->up_sa.sin_port) };
	l->dns.upstreams[0].addr.v4 = l->up_sa.sin_addr;
	l->dns.n_upstreams = 1;
	l->rules[0] = (struct nm_dns_rule){ "ads.test", 0 };
	l->rules[1] = (struct nm_dns_rule){ "ok.tracker.test", 1 };
	l->dns.rules = l->rules;
	l->dns.n_rules = 2;
	resolver_init(&l->r, &l->loop, NULL);
	inet_pton(AF_INET, "127.0.0.1", &listen.v4);
	assert_int_equal(resolver_start(&l->r, &listen, 1), 0);
	resolver_update(&l->r, &l->m);
	assert_int_equal(rs_udp_sockname(l->r.udp[0], &ss), 0);
	memcpy(&l->res_sa, &ss, sizeof(l->res_sa));
}

static void lab_stop(struct lab *l)
{
	resolver_close(&l->r);
	uv_run(&l->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&l->loop), 0);
	close(l->client);
	close(l->up);
	close(l->rogue);
}

/* Asks name/type; the answer parsed into resp (its length, or -1 for none in ms). */
static ssize_t ask(struct lab *l, const char *name, uint16_t type, struct dns_response *resp,
		   int ms)
{
	uint8_t q[300], a[1500];
	size_t qlen = make_query(name, type, q);
	struct sockaddr_in from;
	ssize_t n;

	assert_int_equal(sendto(l->client, q, qlen, 0, (struct sockaddr *)&l->res_sa,
				sizeof(l->res_sa)), (ssize_t)qlen);
	n = pump_recv(&l->loop, l->client, a, sizeof(a), &from, ms);
	if (n > 0)
		assert_int_equal(dns_parse_response(a, (size_t)n, resp), 0);
	return n;
}

/* The upstream's query (as the resolver sent it) and an answer to it: A 192.0.2.1. */
static size_t upstream_answer(struct lab *l, uint8_t *out, size_t size, uint16_t *id)
{
	static const uint8_t ip[4] = { 192, 0, 2, 1 };
	struct dns_rr rr = { .type = DNS_TYPE_A, .ttl = 300, .rdata = ip, .rdlen = 4 };
	struct sockaddr_in from;
	struct dns_query q;
	uint8_t buf[1500];
	ssize_t n = pump_recv(&l->loop, l->up, buf, sizeof(buf), &from, 2000);
	int len;

	assert_true(n > 0);
	assert_int_equal(dns_parse_query(buf, (size_t)n, &q), 0);
	assert_true(q.flags & DNS_Q_EDNS);    /* ours */
	*id = q.hdr.id;
	len = dns_build_answer(&q, &rr, 1, 0, size, out, size);
	assert_true(len > 0);
	out[2] |= 0x80;
	return (size_t)len;
}

/* A compiled list of one rule, loaded as a node has it. */
static struct blocklist *one_name_list(const char *name, unsigned flags, uint64_t serial)
{
	struct blocklist_builder *b = blocklist_builder_new((const uint8_t *)"0123456789abcdef", 0);
	struct blocklist *bl;
	uint8_t *blob;
	size_t blob_len;

	assert_non_null(b);
	assert_int_equal(blocklist_builder_add(b, name, strlen(name), flags), 0);
	assert_int_equal(blocklist_builder_compile(b, serial, &blob, &blob_len), 0);
	blocklist_builder_free(b);
	assert_int_equal(blocklist_load(blob, blob_len, BLOCKLIST_LOAD_OWN, &bl), 0);
	return bl;
}

static void test_resolver_loop(void **state)
{
	struct lab *l = calloc(1, sizeof(*l));
	struct dns_response resp;
	uint8_t a[1500], junk[20] = { 0 };
	uint16_t id;
	size_t alen;

	(void)state;
	assert_non_null(l);
	lab_start(l);
	/* A node name: ours, authoritative. */
	assert_true(ask(l, "alpha.ts.test", DNS_TYPE_A, &resp, 1000) > 0);
	assert_int_equal(resp.hdr.id, 0x1234);
	assert_true(resp.hdr.flags & DNS_FLAG_AA);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_true(ask(l, "nobody.ts.test", DNS_TYPE_A, &resp, 1000) > 0);
	assert_int_equal(resp.rcode, DNS_RCODE_NXDOMAIN);
	assert_true(resp.flags & DNS_R_SOA);
	/* A manual block: 0.0.0.0, and for a subdomain. */
	assert_true(ask(l, "x.ads.test", DNS_TYPE_A, &resp, 1000) > 0);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_int_equal(l->r.stats.blocked, 1);
	/* Junk: dropped (shorter than a header), FORMERR (no question). */
	assert_int_equal(sendto(l->client, junk, 5, 0, (struct sockaddr *)&l->res_sa,
				sizeof(l->res_sa)), 5);
	assert_int_equal(pump_recv(&l->loop, l->client, a, sizeof(a), &l->client_sa, 50), -1);
	assert_int_equal(l->r.stats.dropped, 1);
	assert_int_equal(sendto(l->client, junk, 12, 0, (struct sockaddr *)&l->res_sa,
				sizeof(l->res_sa)), 12);
	assert_true(pump_recv(&l->loop, l->client, a, sizeof(a), &l->client_sa, 1000) >= 12);
	assert_int_equal(a[3] & 0xf, DNS_RCODE_FORMERR);

	/* Forwarded: wrong id, wrong source and junk are ignored, then the answer is taken. */
	uint8_t q[300];
	size_t qlen = make_query("www.example", DNS_TYPE_A, q);
	struct sockaddr_in from;
	ssize_t n;

	assert_int_equal(sendto(l->client, q, qlen, 0, (struct sockaddr *)&l->res_sa,
				sizeof(l->res_sa)), (ssize_t)qlen);
	alen = upstream_answer(l, a, sizeof(a), &id);
	struct sockaddr_in to;
	struct sockaddr_storage ss;
	int sl = sizeof(ss);

	assert_int_equal(uv_udp_getsockname(l->r.up4, (struct sockaddr *)&ss, &sl), 0);
	memcpy(&to, &ss, sizeof(to));
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a[0] ^= 0xff;   /* wrong id */
	sendto(l->up, a, alen, 0, (struct sockaddr *)&to, sizeof(to));
	a[0] ^= 0xff;
	sendto(l->rogue, a, alen, 0, (struct sockaddr *)&to, sizeof(to));   /* not asked */
	sendto(l->up, junk, sizeof(junk), 0, (struct sockaddr *)&to, sizeof(to));
	assert_int_equal(pump_recv(&l->loop, l->client, q, sizeof(q), &from, 30), -1);
	assert_int_equal(l->r.stats.bad_answers, 3);
	sendto(l->up, a, alen, 0, (struct sockaddr *)&to, sizeof(to));
	n = pump_recv(&l->loop, l->client, a, sizeof(a), &from, 1000);
	assert_true(n > 0);
	assert_int_equal(dns_parse_response(a, (size_t)n, &resp), 0);
	assert_int_equal(resp.hdr.id, 0x1234);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_int_equal(resp.min_ttl, 300);
	/* Again: from the cache, the upstream not asked. */
	assert_true(ask(l, "www.example", DNS_TYPE_A, &resp, 1000) > 0);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_int_equal(l->r.stats.cached, 1);
	assert_int_equal(pump_recv(&l->loop, l->up, a, sizeof(a), &from, 20), -1);

	/* A compiled blocklist: blocked, but the manual allow wins. */
	resolver_set_blocklist(&l->r, one_name_list("tracker.test", BLOCKLIST_SUBDOMAINS, 1));
	assert_true(ask(l, "a.tracker.test", DNS_TYPE_AAAA, &resp, 1000) > 0);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_int_equal(l->r.stats.blocked, 2);
	/* Allowed: forwarded; the upstream stays silent, so SERVFAIL within a second. */
	assert_true(ask(l, "ok.tracker.test", DNS_TYPE_A, &resp, 1500) > 0);
	assert_int_equal(resp.rcode, DNS_RCODE_SERVFAIL);
	assert_int_equal(l->r.health[0].timeouts, 1);
	/* The only upstream is down now: SERVFAIL at once for an uncached name. */
	assert_true(ask(l, "new.example", DNS_TYPE_A, &resp, 30) > 0);
	assert_int_equal(resp.rcode, DNS_RCODE_SERVFAIL);
	/* A cached name that a new list blocks: blocked, not the cache's answer (a hit skips
	 * the list only under the policy it was checked with). */
	uint64_t cached = l->r.stats.cached, blocked = l->r.stats.blocked;

	resolver_set_blocklist(&l->r, one_name_list("www.example", 0, 2));
	assert_true(ask(l, "www.example", DNS_TYPE_A, &resp, 1000) > 0);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_int_equal(resp.min_ttl, RS_TTL);
	assert_int_equal(l->r.stats.blocked, blocked + 1);
	assert_int_equal(l->r.stats.cached, cached);
	resolver_set_blocklist(&l->r, NULL);
	assert_true(ask(l, "www.example", DNS_TYPE_A, &resp, 1000) > 0);
	assert_int_equal(l->r.stats.cached, cached + 1);
	lab_stop(l);
	free(l);
}

/* ---- DNS over TLS upstreams ---- */

#define DOT_HELD_MAX 8

/* A DoT server in the test's loop: answers A 192.0.2.7, `hold` queries at a time in
 * reverse order, each batch led by a copy with a wrong id and a frame of junk. */
struct dot_server {
	uv_tcp_t tcp;
	struct tls_config *cfg;
	struct conn *c[4];
	int accepted, hold, n_held, queries;
	int close_next;                  /* closes on the next query, unanswered */
	size_t len;
	uint8_t buf[2048];
	uint8_t held[DOT_HELD_MAX][2 + 512];
	size_t held_len[DOT_HELD_MAX];
};

static void dot_server_flush(struct dot_server *srv, struct conn *c)
{
	static const uint8_t junk[2 + 14] = { 0, 14, 0xff, 0xff, 0xff };
	uint8_t wrong[2 + 512];

	memcpy(wrong, srv->held[0], srv->held_len[0]);
	wrong[2] ^= 0x5a;
	assert_int_equal(conn_write(c, wrong, srv->held_len[0]), 0);
	assert_int_equal(conn_write(c, junk, sizeof(junk)), 0);
	while (srv->n_held) {
		srv->n_held--;
		assert_int_equal(conn_write(c, srv->held[srv->n_held], srv->held_len[srv->n_held]), 0);
	}
}

static void dot_server_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	static const uint8_t ip[4] = { 192, 0, 2, 7 };
	struct dns_rr rr = { .type = DNS_TYPE_A, .ttl = 300, .rdata = ip, .rdlen = 4 };
	struct dot_server *srv = arg;
	struct dns_query q;
	int flen, n;

	if (srv->close_next) {
		/* As a server's idle close crossing our query. */
		srv->close_next = 0;
		srv->len = 0;
		for (int i = 0; i < srv->accepted; i++)
			if (srv->c[i] == c)
				srv->c[i] = NULL;
		conn_close(c);
		return;
	}
	assert_true(srv->len + len <= sizeof(srv->buf));
	memcpy(srv->buf + srv->len, buf, len);
	srv->len += len;
	while ((flen = dns_tcp_frame_len(srv->buf, srv->len)) > 0 &&
	       srv->len >= (size_t)flen + 2) {
		uint8_t *a = srv->held[srv->n_held];

		assert_int_equal(dns_parse_query(srv->buf + 2, (size_t)flen, &q), 0);
		n = dns_build_answer(&q, &rr, 1, 0, 512, a + 2, 512);
		assert_true(n > 0);
		a[4] |= 0x80;
		dns_tcp_frame_put(a, (size_t)n);
		srv->held_len[srv->n_held++] = (size_t)n + 2;
		srv->queries++;
		memmove(srv->buf, srv->buf + flen + 2, srv->len - (size_t)flen - 2);
		srv->len -= (size_t)flen + 2;
		if (srv->n_held >= srv->hold)
			dot_server_flush(srv, c);
	}
}

static void dot_server_end(struct conn *c, int status, void *arg)
{
	struct dot_server *srv = arg;

	(void)status;
	for (int i = 0; i < srv->accepted; i++)
		if (srv->c[i] == c)
			srv->c[i] = NULL;
	conn_close(c);
}

static void dot_server_conn(uv_stream_t *s, int status)
{
	struct dot_server *srv = s->data;
	struct conn *c;

	assert_int_equal(status, 0);
	assert_true(srv->accepted < 4);
	assert_int_equal(tls_accept(srv->cfg, s, &c), 0);
	srv->c[srv->accepted++] = c;
	conn_set_callbacks(c, dot_server_read, dot_server_end, srv);
}

static void dot_upstream(struct dnspol_server *s, uint16_t port, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->addr = (struct addr_port){ .family = AF_INET, .port = port };
	inet_pton(AF_INET, "127.0.0.1", &s->addr.v4);
	s->tls = 1;
	snprintf(s->tls_name, sizeof(s->tls_name), "%s", name);
}

static const struct rs_upstream *upstream_named(const struct resolver *r, const char *label)
{
	char text[DNSPOL_SERVER_TEXT];

	for (size_t i = 0; i < r->n_health; i++) {
		resolver_upstream_label(r, &r->health[i], text, sizeof(text));
		if (!strcmp(text, label))
			return &r->health[i];
	}
	return NULL;
}

/* A DoT upstream whose certificate does not carry its name is marked down (a verify
 * failure) and the query goes to the next, over TLS; queries pipeline on that one
 * connection, answers in any order, a wrong id and junk ignored. */
static void test_resolver_dot(void **state)
{
	struct lab *l = calloc(1, sizeof(*l));
	struct dot_server *srv = calloc(1, sizeof(*srv));
	char dir[] = "/tmp/test_dotXXXXXX", cert[64], key[64], label[DNSPOL_SERVER_TEXT];
	const struct rs_upstream *good, *wrong;
	struct sockaddr_in sa, from;
	struct dns_response resp;
	int len = sizeof(sa);
	uint8_t q[300], a[1500];
	uint16_t port;

	(void)state;
	assert_non_null(l);
	assert_non_null(srv);
	assert_non_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	assert_int_equal(tls_selfsigned_create(cert, key, "dot.test"), 0);
	lab_start(l);
	assert_int_equal(tls_config_server_new(cert, key, &srv->cfg), 0);
	assert_int_equal(conn_listen_tcp(&l->loop, "127.0.0.1:0", &srv->tcp, dot_server_conn), 0);
	srv->tcp.data = srv;
	srv->hold = 1;
	assert_int_equal(uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);

	/* The certificate itself is the trust anchor (as --dns-tls-ca would give it). */
	l->r.tls_ca = cert;
	l->dns.upstreams[2] = l->dns.upstreams[0];   /* the plain one, last */
	dot_upstream(&l->dns.upstreams[0], port, "wrong.test");
	dot_upstream(&l->dns.upstreams[1], port, "dot.test");
	l->dns.n_upstreams = 3;
	resolver_update(&l->r, &l->m);
	for (int i = 0; i < 1000 && l->r.n_upstreams != 3; i++) {
		uv_run(&l->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_int_equal(l->r.n_upstreams, 3);

	assert_true(ask(l, "dot.example", DNS_TYPE_A, &resp, 3000) > 0);
	assert_int_equal(resp.rcode, DNS_RCODE_NOERROR);
	assert_int_equal(resp.hdr.ancount, 1);
	snprintf(label, sizeof(label), "tls://127.0.0.1:%u#wrong.test", port);
	wrong = upstream_named(&l->r, label);
	snprintf(label, sizeof(label), "tls://127.0.0.1:%u#dot.test", port);
	good = upstream_named(&l->r, label);
	assert_non_null(wrong);
	assert_non_null(good);
	assert_int_equal(wrong->verify_failures, 1);
	assert_int_equal(wrong->conn_errors, 1);
	assert_true(wrong->down_until_ms > uv_now(&l->loop));
	assert_int_equal(wrong->answers, 0);
	assert_int_equal(good->answers, 1);
	assert_int_equal(srv->queries, 1);
	/* The first batch's wrong id and junk were ignored. */
	assert_int_equal(l->r.stats.bad_answers, 2);
	assert_int_equal(good->bad, 2);

	/* Three at once: one connection, answers in reverse order. */
	srv->hold = 3;
	for (int i = 0; i < 3; i++) {
		char name[32];
		size_t qlen;

		snprintf(name, sizeof(name), "p%d.example", i);
		qlen = make_query(name, DNS_TYPE_A, q);
		q[1] = (uint8_t)i;
		assert_int_equal(sendto(l->client, q, qlen, 0, (struct sockaddr *)&l->res_sa,
					sizeof(l->res_sa)), (ssize_t)qlen);
	}
	for (int i = 0; i < 3; i++) {
		ssize_t n = pump_recv(&l->loop, l->client, a, sizeof(a), &from, 3000);

		assert_true(n > 0);
		assert_int_equal(dns_parse_response(a, (size_t)n, &resp), 0);
		assert_int_equal(resp.rcode, DNS_RCODE_NOERROR);
		assert_int_equal(resp.hdr.ancount, 1);
	}
	assert_int_equal(srv->queries, 4);
	assert_int_equal(good->answers, 4);
	assert_int_equal(l->r.stats.bad_answers, 4);
	/* wrong.test's handshake and dot.test's one connection. */
	assert_int_equal(srv->accepted, 2);

	/* The server closes as a query arrives: it goes again on a new connection, answered,
	 * and nothing is held against the upstream. */
	srv->hold = 1;
	srv->close_next = 1;
	assert_true(ask(l, "again.example", DNS_TYPE_A, &resp, 3000) > 0);
	assert_int_equal(resp.rcode, DNS_RCODE_NOERROR);
	assert_int_equal(resp.hdr.ancount, 1);
	assert_int_equal(srv->accepted, 3);
	assert_int_equal(good->answers, 5);
	assert_int_equal(good->conn_errors, 0);
	assert_true(good->down_until_ms <= uv_now(&l->loop));

	/* In the stats by their tls:// names. */
	json_t *st = resolver_stats_json(&l->r);
	char *dump = json_dumps(st, JSON_COMPACT | JSON_PRESERVE_ORDER);

	assert_non_null(strstr(dump, "#dot.test\",\"up\":true"));
	assert_non_null(strstr(dump, "\"verify_failures\":1"));
	free(dump);
	json_decref(st);

	/* The resolver stops: the connection goes; no query was left on it. */
	resolver_stop(&l->r);
	for (int i = 0; i < 200 && srv->c[2]; i++) {
		uv_run(&l->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_null(srv->c[2]);
	uv_close((uv_handle_t *)&srv->tcp, NULL);
	tls_config_free(srv->cfg);
	lab_stop(l);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	free(srv);
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_names),
		cmocka_unit_test(test_zone_ptr),
		cmocka_unit_test(test_zone_records),
		cmocka_unit_test(test_zone_rebuild),
		cmocka_unit_test(test_zone_many),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_cache_ttl),
		cmocka_unit_test(test_cache_negative),
		cmocka_unit_test(test_cache_evict),
		cmocka_unit_test(test_resolver_loop),
		cmocka_unit_test(test_resolver_dot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
