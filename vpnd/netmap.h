/* netmap.h - the node's copy of its netmap, kept from coord's stream (JSON lines: one
 * "full", then deltas). Pure: parsing and applying lines touches no system state; the
 * daemon turns the reported changes into WireGuard operations. */
#ifndef VPND_NETMAP_H
#define VPND_NETMAP_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include <sys/types.h>

#include "meshvpn/addr.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/dnspol.h"
#include "meshvpn/keys.h"

#define NM_NAME_LEN 64
#define NM_MAX_ENDPOINTS 16
#define NM_MAX_PEERS 65536
#define NM_MAX_RELAYS 32

struct nm_peer {
	int64_t id;
	char name[NM_NAME_LEN];
	char fqdn[NM_NAME_LEN + 70];
	uint8_t node_key[KEY_LEN];
	uint8_t disco_key[KEY_LEN];
	struct in_addr ip4;
	struct in6_addr ip6;
	struct addr_port endpoints[NM_MAX_ENDPOINTS];  /* parsed */
	int n_endpoints;
	char home_relay[NM_NAME_LEN];
	int online;
	int64_t last_seen;
};

struct nm_relay {
	char name[NM_NAME_LEN];
	char url[256];
	char pin[80];
	char stun[COORD_STUN_TEXT_MAX];   /* "host:port" / "[v6]:port"; "" from an older coord */
};

/* The DNS policy as coord tells it to this node (its tags' rules and the untagged ones).
 * Bounded like coord's caps; the resolver is the lead's to wire. */
#define NM_DNS_MAX_UPSTREAMS 64
#define NM_DNS_MAX_ROUTES 256
#define NM_DNS_ROUTE_SERVERS 8
#define NM_DNS_MAX_RECORDS 10000
#define NM_DNS_MAX_RULES 100000
#define NM_DNS_URL_LEN 256

struct nm_dns_route {
	char domain[DNSPOL_NAME_MAX + 1];
	struct dnspol_server servers[NM_DNS_ROUTE_SERVERS];
	int n_servers;
};

struct nm_dns_record {
	char name[DNSPOL_NAME_MAX + 1];
	int type;                              /* enum dnspol_rr */
	char value[DNSPOL_TXT_MAX + 1];
};

struct nm_dns_rule {
	char domain[DNSPOL_NAME_MAX + 1];
	int allow;                             /* else block */
};

struct nm_dns {
	char domain[64];
	struct in_addr resolver;
	int nxdomain;                          /* blocking mode; else 0.0.0.0 / :: */
	struct dnspol_server upstreams[NM_DNS_MAX_UPSTREAMS];
	int n_upstreams;
	struct nm_dns_route *routes;
	size_t n_routes;
	struct nm_dns_record *records;
	size_t n_records;
	struct nm_dns_rule *rules;
	size_t n_rules;
	int64_t blocklist_version;             /* 0: none yet */
	char blocklist_url[NM_DNS_URL_LEN];    /* a path on coord */
};

struct nm_self {
	int64_t id;
	char name[NM_NAME_LEN];
	char fqdn[NM_NAME_LEN + 70];
	enum node_status state;    /* running | needs-approval | expired (UNKNOWN: another text) */
	struct in_addr ip4;
	struct in6_addr ip6;
	int64_t key_expiry;
};

#define NM_EPOCH_LEN 16   /* hex digits */

struct netmap {
	int have_full;
	int64_t version;          /* the last "v" applied (0: none); with epoch, what a
				   * reconnect resumes from */
	char epoch[NM_EPOCH_LEN + 1];   /* of the full this map started from ("" if none) */
	int resync;               /* a line was refused since the full (or the cache missed
				   * one): the map may lack it, so no resume until a full */
	struct nm_self self;
	struct nm_peer *peers;    /* sorted by id */
	size_t n_peers, cap;
	struct nm_relay relays[NM_MAX_RELAYS];
	int n_relays;
	char domain[64];
	struct nm_dns *dns;       /* NULL until coord sends one (never to a pending node) */
};

enum nm_change_kind {
	NM_NONE = 0,
	NM_FULL,                  /* replaced everything (a full, or a resume: .resumed):
				   * diff old vs new peers */
	NM_PEER_ADDED,
	NM_PEER_CHANGED,          /* same key; name, endpoints or online changed */
	NM_PEER_REMOVED,          /* .removed holds the peer as it was */
	NM_RELAYS,
	NM_DNS,                   /* a new DNS policy in .dns (fqdns follow its domain) */
	NM_GONE,                  /* deleted or rejected: .reason */
	NM_KEEPALIVE,
};

struct nm_change {
	enum nm_change_kind kind;
	const struct nm_peer *peer;   /* added/changed: the peer in the map */
	struct nm_peer removed;       /* removed: a copy */
	char reason[32];
	int resumed;                  /* NM_FULL from a "resume": the map changed in place */
	/* NM_FULL: the previous peers, for diffing (owned by the change; nm_change_clear) */
	struct nm_peer *old_peers;
	size_t n_old;
};

void netmap_init(struct netmap *m);
void nm_dns_free(struct nm_dns *d);
void netmap_free(struct netmap *m);
/* Parses one line and applies it. 0 and *chg filled, or -EINVAL (the map is unchanged
 * and the line should be logged and skipped; also a resume of another epoch), -EPROTO
 * for a delta before any full. A line's "v" becomes m->version. */
int netmap_apply_line(struct netmap *m, const char *line, size_t len, struct nm_change *chg);
void nm_change_clear(struct nm_change *chg);
const struct nm_peer *netmap_find_key(const struct netmap *m, const uint8_t key[KEY_LEN]);
const struct nm_peer *netmap_find_id(const struct netmap *m, int64_t id);
/* Records that begin with a struct nm_peer (the map's own, wgsync's mirror), stride bytes
 * apart and sorted by id: the index of id, or -(where it would go) - 1. */
ssize_t nm_peers_search(const void *base, size_t n, size_t stride, int64_t id);
/* Grows *base (room for *cap records of stride bytes) to hold n, doubling: 0, -E2BIG past
 * NM_MAX_PEERS, -ENOMEM (*base unchanged). */
int nm_peers_reserve(void **base, size_t *cap, size_t n, size_t stride);

/* Equal in everything WireGuard configures (key, addresses, endpoint choice, and the
 * keepalive that follows online). */
int nm_peer_wg_equal(const struct nm_peer *a, const struct nm_peer *b);
/* The query a reconnect resumes with ("since=V&epoch=E"), or "" when the map has no
 * version to resume from. */
void netmap_resume_query(const struct netmap *m, char *out, size_t size);

#endif
