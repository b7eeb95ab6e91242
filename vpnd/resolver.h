/* resolver.h - the in-VPN resolver (DESIGN.md flow 6, issue 10): vpnd answers DNS on
 * 100.100.100.100:53, UDP and TCP. Node names and the policy's records come from the
 * netmap (the zone, resolver_zone.c), blocked names from the manual rules and the compiled
 * blocklist (resolver_zone.c's rule set, blocklist.h), everything else goes to the
 * policy's upstreams or a split-DNS route's servers with a TTL cache (resolver_cache.c,
 * RFC 2308 negative answers, RFC 8767 stale ones). The pure parts (zone, rules, cache) are
 * declared first and unit-tested; resolver.c is the I/O. */
#ifndef VPND_RESOLVER_H
#define VPND_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "meshvpn/addr.h"
#include "meshvpn/blocklist.h"
#include "meshvpn/dns_msg.h"
#include "netmap.h"
#include "resolver_log.h"

#define RS_ADDR "100.100.100.100"
#define RS_PORT 53
#define RS_LISTEN_MAX 2               /* 100.100.100.100 and, with --dns-listen, ours */
#define RS_TTL 60                     /* node names and records */
#define RS_NEG_TTL 60                 /* our SOA's minimum */
#define RS_CACHE_MAX 10000            /* entries */
#define RS_CACHE_TTL_MAX 86400        /* positive answers kept at most a day */
#define RS_STALE_MAX_S 86400          /* served stale at most this long past expiry */
#define RS_TRY_MS 500                 /* an upstream silent this long: the next one */
#define RS_DOWN_MS 10000              /* a silent upstream is skipped this long */
#define RS_SERVFAIL_DOWN_MS 1000      /* one that answered SERVFAIL, this long */
#define RS_TRIES 3                    /* upstreams asked per query at most */
#define RS_PENDING_MAX 2048           /* queries in flight upstream */
#define RS_TCP_CLIENTS_MAX 64
#define RS_TCP_IDLE_MS 10000
#define RS_HIST_BUCKETS 9             /* upstream latency: <=1,5,10,25,50,100,250,500,1000 ms */

/* ---- the zone: what the netmap answers (pure) ---- */

struct rz_rr;

enum rz_result {
	RZ_NOT_OURS = 0,     /* forward it */
	RZ_ANSWER,           /* records (maybe a CNAME for another type) */
	RZ_NODATA,           /* the name exists, not that type */
	RZ_NXDOMAIN,         /* under the tailnet domain or a tailnet reverse zone, unknown */
};

struct rz_zone {
	struct rz_rr **buckets;
	size_t n_buckets, n_rrs;
	struct dns_name domain;          /* "" (root, n_labels 0) when the netmap has none */
	int have_domain;
	struct in6_addr ula;             /* the tailnet's /48 (from self) */
	int have_ula;
};

#define RZ_ANSWERS_MAX 32

struct rz_answer {
	enum rz_result result;
	struct dns_rr rr[RZ_ANSWERS_MAX];
	unsigned n;                      /* names (PTR, CNAME) go as uncompressed rdata */
};

void rz_init(struct rz_zone *z);
void rz_free(struct rz_zone *z);
/* Rebuilds z from the netmap: self and every peer (A, AAAA, PTR for both), the policy's
 * records (a name without a dot is taken under the domain). 0 or -ENOMEM (z then empty).
 * A CNAME to a name of the zone is answered flattened (the target's records under the
 * asked name: dns_rr has no owner of its own), to any other name as the CNAME alone. */
int rz_build(struct rz_zone *z, const struct netmap *nm);
/* What the zone says to (name, type). */
void rz_lookup(const struct rz_zone *z, const struct dns_name *name, uint16_t qtype,
	       struct rz_answer *out);

/* ---- manual allow/block rules (pure) ---- */

struct rr_slot;

struct rr_rules {
	struct rr_slot *slots;           /* open addressing, cap a power of two */
	size_t cap, n;
};

void rr_rules_init(struct rr_rules *r);
void rr_rules_free(struct rr_rules *r);
/* From the policy's rules: 0 or -ENOMEM. */
int rr_rules_build(struct rr_rules *r, const struct nm_dns_rule *rules, size_t n);
/* BLOCKLIST_ALLOWED when the name or a parent has an allow rule, else BLOCKLIST_BLOCKED
 * when it or a parent has a block rule, else BLOCKLIST_NONE. name: lower-case text. */
enum blocklist_verdict rr_rules_match(const struct rr_rules *r, const char *name, size_t len);

/* ---- the answer cache (pure; the caller gives the time) ---- */

struct rc_entry;

struct rc_cache {
	struct rc_entry **buckets;
	size_t n_buckets, n, max;
	uint32_t stale_s;                /* kept this long past expiry for stale answers */
	struct rc_entry *lru_head, *lru_tail;   /* head: most recently used */
	uint64_t evictions;
	uint32_t tag;                    /* stamped on what rc_put stores (the resolver's
					  * policy generation: checked not blocked under it) */
};

enum rc_state { RC_MISS = 0, RC_FRESH, RC_STALE };

/* A hit: the stored message (OPT stripped), how long ago it was stored. */
struct rc_hit {
	const uint8_t *msg;
	size_t len;
	uint32_t age_s;
	uint32_t *tag;                   /* the entry's stamp (the caller may restamp it) */
};

int rc_init(struct rc_cache *c, size_t max, uint32_t stale_s);
void rc_free(struct rc_cache *c);
void rc_clear(struct rc_cache *c);
/* The TTL to cache an answer for (0: not at all): a positive answer its minimum TTL
 * capped at RS_CACHE_TTL_MAX, NXDOMAIN / NODATA the SOA's negative TTL (RFC 2308 5;
 * none without an SOA), nothing else (SERVFAIL, truncated). */
uint32_t rc_ttl_of(const struct dns_response *r);
/* Stores msg for ttl seconds from now_ms (replacing an entry of the same key, evicting
 * the least recently used when full). 0 or -ENOMEM. */
int rc_put(struct rc_cache *c, const struct dns_name *name, uint16_t qtype, uint16_t qclass,
	   const uint8_t *msg, size_t len, uint32_t ttl, uint64_t now_ms);
/* Fresh before its TTL, stale up to c->stale_s past it (a miss without allow_stale),
 * else a miss (and an entry past the stale window is dropped). */
enum rc_state rc_get(struct rc_cache *c, const struct dns_name *name, uint16_t qtype,
		     uint16_t qclass, uint64_t now_ms, int allow_stale, struct rc_hit *hit);

/* An upstream's answer (from the wire or the cache; it passed dns_parse_response with
 * q's question) rewritten for the client of q into out: q's id, the question as the
 * client spelt it, the upstream's OPT replaced by ours when q had one, TTLs aged by age_s
 * or set to DNS_STALE_TTL (stale), only the header and question with TC when it would
 * pass limit. Length, -ENOSPC, -EBADMSG. */
int rc_rewrite(const struct dns_query *q, const uint8_t *msg, size_t len, uint32_t age_s,
	       int stale, size_t limit, uint8_t *out, size_t size);

/* ---- the resolver (resolver.c) ---- */

/* A server a query may go to: plain UDP/TCP (dot 0) or DNS over TLS (dot: the upstream's
 * id in resolver_dot.c; two names at one address are two upstreams). */
struct rs_server {
	struct addr_port addr;
	uint32_t dot;
};

struct rs_upstream {
	struct addr_port addr;
	uint32_t dot;
	uint64_t down_until_ms;
	uint64_t queries, answers, timeouts, servfails, bad;
	uint64_t conn_errors;            /* DoT: connect, handshake or certificate failures */
	uint64_t verify_failures;        /* DoT: of those, certificates that did not verify */
	uint64_t latency_sum_ms;         /* over its answers */
};

struct resolver_stats {
	uint64_t q_a, q_aaaa, q_ptr, q_other;
	uint64_t local;                  /* answered from the netmap */
	uint64_t blocked;
	uint64_t cached;                 /* fresh cache hits */
	uint64_t forwarded;              /* sent upstream */
	uint64_t stale;
	uint64_t servfail;               /* SERVFAIL we gave (no upstream could answer) */
	uint64_t formerr, dropped;       /* malformed queries answered / dropped */
	uint64_t bad_answers;            /* upstream answers ignored (id, question, source, junk) */
	uint64_t tcp_queries;
	uint64_t hist[RS_HIST_BUCKETS + 1];   /* upstream latency, last: over 1 s */
	uint64_t latency_sum_ms, latency_n;
};

struct rs_pending;
struct rs_udp;
struct rs_tcpc;
struct rs_dot_set;
struct vpnd;

struct resolver {
	uv_loop_t *loop;
	struct vpnd *d;                  /* NULL in tests: no address on an interface */
	int started;
	struct addr_port listen[RS_LISTEN_MAX];
	int n_listen;
	struct rs_udp *udp[RS_LISTEN_MAX];   /* resolver_udp.c; on the heap, as the TCP */
	uv_tcp_t *tcp[RS_LISTEN_MAX];    /* ones: a stop's closes may still run when the
					  * next start opens anew */
	uv_udp_t *up4, *up6;             /* to upstreams (one each, random ids) */
	uv_timer_t timer;
	int have_timer;
	const struct netmap *nm;         /* the daemon's, while started */
	int dirty;
	uint64_t built_ms;
	struct rz_zone zone;
	struct rr_rules rules;
	struct blocklist *bl;
	struct rc_cache cache;
	int nxdomain_mode;
	struct nm_dns_route *routes;     /* copies: the netmap's go with its next change */
	size_t n_routes;
	struct rs_server upstreams[NM_DNS_MAX_UPSTREAMS];
	int n_upstreams;
	struct rs_upstream *health;      /* every server we may ask, by address */
	size_t n_health;
	struct rs_pending *pending;
	size_t n_pending;
	struct rs_tcpc *tcpcs;
	size_t n_tcpcs;
	struct resolver_stats stats;
	const char *tls_ca;              /* --dns-tls-ca: DoT trust anchors; NULL: the system's */
	struct rs_dot_set *dot;          /* DoT upstreams' connections (resolver_dot.c) */
	struct resolver_log log;         /* the query log, off unless sized (resolver_log.h) */
};

void resolver_init(struct resolver *r, uv_loop_t *loop, struct vpnd *d);
/* The node runs: 100.100.100.100/32 on the interface (d), UDP and TCP bound on each of
 * the n listen addresses (at most RS_LISTEN_MAX; the first must work, a later one that
 * fails is logged). 0 or -errno. */
int resolver_start(struct resolver *r, const struct addr_port *listen, int n);
/* The node stops: sockets closed, queries in flight dropped, the cache emptied. */
void resolver_stop(struct resolver *r);
void resolver_close(struct resolver *r);
/* The netmap changed (full, peer, DNS policy): the zone and policy rebuilt. */
void resolver_update(struct resolver *r, const struct netmap *nm);
/* A new compiled blocklist (owned from now; NULL: none); the old one is freed. */
void resolver_set_blocklist(struct resolver *r, struct blocklist *bl);
/* An upstream's name in stats and metrics: "ADDR:PORT", or "tls://ADDR:PORT#NAME". */
void resolver_upstream_label(const struct resolver *r, const struct rs_upstream *u, char *out,
			     size_t size);
/* GET /v1/dns/stats: the counters as JSON. */
json_t *resolver_stats_json(const struct resolver *r);

#endif
