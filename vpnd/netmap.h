/* netmap.h - the node's copy of its netmap, kept from coord's stream (JSON lines: one
 * "full", then deltas). Pure: parsing and applying lines touches no system state; the
 * daemon turns the reported changes into WireGuard operations. */
#ifndef VPND_NETMAP_H
#define VPND_NETMAP_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "meshvpn/keys.h"

#define NM_NAME_LEN 64
#define NM_MAX_ENDPOINTS 16
#define NM_ENDPOINT_LEN 56
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
	char endpoints[NM_MAX_ENDPOINTS][NM_ENDPOINT_LEN];
	int n_endpoints;
	char home_relay[NM_NAME_LEN];
	int online;
	int64_t last_seen;
};

struct nm_relay {
	char name[NM_NAME_LEN];
	char url[256];
	char pin[80];
};

struct nm_self {
	int64_t id;
	char name[NM_NAME_LEN];
	char fqdn[NM_NAME_LEN + 70];
	char state[24];           /* running | needs-approval | expired */
	struct in_addr ip4;
	struct in6_addr ip6;
	int64_t key_expiry;
};

struct netmap {
	int have_full;
	struct nm_self self;
	struct nm_peer *peers;    /* sorted by id */
	size_t n_peers, cap;
	struct nm_relay relays[NM_MAX_RELAYS];
	int n_relays;
	char domain[64];
};

enum nm_change_kind {
	NM_NONE = 0,
	NM_FULL,                  /* replaced everything: diff old vs new peers */
	NM_PEER_ADDED,
	NM_PEER_CHANGED,          /* same key; name, endpoints or online changed */
	NM_PEER_REMOVED,          /* .removed holds the peer as it was */
	NM_RELAYS,
	NM_GONE,                  /* deleted or rejected: .reason */
	NM_KEEPALIVE,
};

struct nm_change {
	enum nm_change_kind kind;
	const struct nm_peer *peer;   /* added/changed: the peer in the map */
	struct nm_peer removed;       /* removed: a copy */
	char reason[32];
	/* NM_FULL: the previous peers, for diffing (owned by the change; nm_change_clear) */
	struct nm_peer *old_peers;
	size_t n_old;
};

void netmap_init(struct netmap *m);
void netmap_free(struct netmap *m);
/* Parses one line and applies it. 0 and *chg filled, or -EINVAL (the map is unchanged
 * and the line should be logged and skipped), -EPROTO for a delta before any full. */
int netmap_apply_line(struct netmap *m, const char *line, size_t len, struct nm_change *chg);
void nm_change_clear(struct nm_change *chg);
const struct nm_peer *netmap_find_key(const struct netmap *m, const uint8_t key[KEY_LEN]);
const struct nm_peer *netmap_find_id(const struct netmap *m, int64_t id);
/* Equal in everything WireGuard configures (key, addresses, endpoint choice, and the
 * keepalive that follows online). */
int nm_peer_wg_equal(const struct nm_peer *a, const struct nm_peer *b);

#endif
