/* traversal.h - NAT traversal in vpnd (DESIGN.md flows 4 and 5): the peers' paths and
 * everything that decides them. It owns the raw sockets on WireGuard's port (rawsock.h),
 * the STUN rounds (netcheck.h), the relay connections and relayed peers' loopback ports
 * (relayc.h), the disco keys and replay windows, and one path state machine per peer
 * (path.h); the chosen path goes to WireGuard through wgsync_set_endpoint. The daemon
 * feeds it the netmap as it feeds wgsync, and link changes. */
#ifndef VPND_TRAVERSAL_H
#define VPND_TRAVERSAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/disco.h"
#include "meshvpn/keymap.h"
#include "netcheck.h"
#include "netmap.h"
#include "path.h"
#include "rawsock.h"
#include "relayc.h"

#define TV_TICK_MS 50
#define TV_HOME_MOVE_MS 2000       /* a home relay down this long: another one is taken */
#define TV_PING_TIMEOUT_MS 3000    /* vpnctl ping */
#define TV_REASSERT_MS 250         /* a direct peer heard through the relay: endpoint again */
#define TV_CMM_MIN_MS 1000         /* call-me-maybes from one peer punch at most this often */
#define TV_KICK_AFTER_MS 1000      /* a new peer without a handshake this long is kicked */
#define TV_KICK_EVERY_MS 1500
#define TV_KICKS 3

enum tv_mode { TV_NETMAP = 0, TV_RELAY = 1, TV_DIRECT = 2 };

struct tv_peer {
	int64_t id;
	char name[NM_NAME_LEN];
	uint8_t node_key[KEY_LEN];         /* by_node's key */
	uint8_t disco_key[KEY_LEN];        /* by_disco's key */
	uint8_t shared[DISCO_SHARED_LEN];
	int have_shared;                   /* -1: the key gives no shared secret */
	struct disco_replay replay;
	struct path_peer path;
	char relay[NM_NAME_LEN];           /* its home relay */
	enum tv_mode applied;              /* what WireGuard was given */
	struct addr_port applied_ep;
	uint64_t next_ms;                  /* path_next_ms, cached */
	uint64_t reassert_ms;              /* not again before */
	uint64_t added_ms;                 /* when it appeared (loop time) */
	uint64_t kick_ms;                  /* last wgsync_kick */
	int kicks;
	uint64_t kick_rx;                  /* WireGuard's rx_bytes for it at the last look */
	int handshaked;                    /* WireGuard has had a handshake with it */
	uint64_t relay_rx_seen;            /* its relayed packets, at the last look */
	uint64_t cmm_rx_ms;                /* the last call-me-maybe that made us punch */
};

struct traversal_stats {
	uint64_t disco_rx, disco_tx;
	uint64_t disco_unknown_key;        /* not a peer's disco key */
	uint64_t disco_bad_box;            /* the box did not open */
	uint64_t disco_replayed;
	uint64_t disco_malformed;
	uint64_t disco_wrong_node;         /* a ping naming another node key, or a relay
					    * packet whose sender is not the disco key's node */
	uint64_t pings_rx, pongs_rx, cmm_rx, pongs_unmatched;
	uint64_t pings_tx, pongs_tx, cmm_tx, send_errors;
	uint64_t path_changes;
	uint64_t home_moves;
};

/* vpnctl ping: one reply or a timeout. */
struct tv_ping_result {
	int err;                           /* 0, -ETIMEDOUT, -ENETDOWN (stopped) */
	enum tv_mode path;                 /* TV_DIRECT or TV_RELAY */
	struct addr_port endpoint;         /* direct */
	char relay[NM_NAME_LEN];           /* relay */
	uint64_t rtt_us;
};
typedef void (*tv_ping_cb)(const struct tv_ping_result *r, void *arg);
typedef void (*tv_netcheck_cb)(const struct netcheck_report *r, void *arg);

struct tv_wait;
struct vpnd;

struct traversal {
	struct vpnd *d;
	int started;
	uint16_t port;
	struct rawsock *rs;
	struct relayc relayc;
	struct netcheck nc;
	struct tv_peer **peers;            /* sorted by id */
	size_t n, cap;
	struct keymap by_disco, by_node;
	uint64_t counter;                  /* disco nonce counter */
	uv_timer_t timer;
	int have_timer;
	uint64_t last_second_ms;
	uint64_t last_kick_check_ms;
	struct tv_wait *waits;             /* vpnctl pings and netchecks */
	uint64_t home_lost_ms;             /* the home relay's connection lost since, 0 */
	uint64_t home_set_ms;
	uint64_t slept_ms;                 /* time suspended since boot, at the last look */
	struct addr_port mine[NM_MAX_ENDPOINTS];  /* our candidates, as last posted */
	int n_mine;
	struct traversal_stats stats;
};

void traversal_init(struct traversal *tv, struct vpnd *d);
/* The interface is up on port: raw sockets, relays, a first STUN round. 0 or -errno
 * (without raw sockets the node still works over the relay and the netmap's endpoints). */
int traversal_start(struct traversal *tv, uint16_t port);
/* The interface goes: everything closes; waiting pings get -ENETDOWN. */
void traversal_stop(struct traversal *tv);
void traversal_close(struct traversal *tv);

/* The netmap: a full one, a peer added or changed, a peer removed, the relay map. Call
 * before wgsync applies the same change: wgsync then asks traversal where a new peer
 * starts (wgsync_set_initial), so its first handshake already goes to the relay. */
void traversal_full(struct traversal *tv, const struct netmap *nm);
void traversal_peer(struct traversal *tv, const struct nm_peer *p);
void traversal_removed(struct traversal *tv, const struct nm_peer *p);
void traversal_relays(struct traversal *tv, const struct netmap *nm);
/* Addresses or links changed: a STUN round and every path probed at once. */
void traversal_network_changed(struct traversal *tv);

/* Our reflexive candidates (from the last STUN round) into out: count. */
int traversal_reflexive(const struct traversal *tv, struct addr_port *out, int max);
/* The candidates endpoints.c posted, for call-me-maybe. */
void traversal_set_mine(struct traversal *tv, const struct addr_port *eps, int n);
/* Our home relay ("" none). */
const char *traversal_home(const struct traversal *tv);

/* For status and metrics: a peer's state (NULL when not known). */
const struct tv_peer *traversal_find(const struct traversal *tv, int64_t id);
/* Whether ep is the loopback port of that peer's relayed path. */
int traversal_is_relay_ep(struct traversal *tv, const struct tv_peer *p,
			  const struct addr_port *ep);

/* vpnctl ping: a disco ping on the peer's current path (and a probe of the others).
 * 0 (cb follows), -ENOENT, -ENETDOWN. */
int traversal_ping(struct traversal *tv, int64_t id, tv_ping_cb cb, void *arg);
/* vpnctl netcheck: a fresh STUN round; cb with its report (at once when there is nothing
 * to ask). 0 or -ENETDOWN. */
int traversal_netcheck(struct traversal *tv, tv_netcheck_cb cb, void *arg);

/* handshake.c, from traversal's timer: a direct peer heard through the relay gets its
 * endpoint set again (at most every TV_REASSERT_MS); new relayed peers without a
 * handshake are kicked (wgsync_kick). */
void traversal_keep_direct(struct traversal *tv, struct tv_peer *p, uint64_t now);
void traversal_kick_new(struct traversal *tv, uint64_t now);

#endif
