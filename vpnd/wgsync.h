/* wgsync.h - what WireGuard runs vs. what the netmap wants. wgsync keeps a mirror of the
 * peers it configured (sorted by id) and turns a full netmap, a peer delta, a removal or
 * a chosen path into the smallest wg_device change: unchanged peers are never in a
 * message, so their sessions go on. A failed change marks the mirror dirty; the daemon's
 * tick resyncs everything then. The device setter is injected (wg_set_device in vpnd, a
 * fake in the unit test), so wgsync never knows the backend. */
#ifndef VPND_WGSYNC_H
#define VPND_WGSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/addr.h"
#include "netmap.h"
#include "wg.h"

#define WGSYNC_KEEPALIVE 25   /* persistent keepalive towards online peers, seconds */
/* A new peer whose key sorts below ours gets its keepalive this many wgsync_tick calls
 * late: a keepalive set on a new peer sends a handshake at once, and when both ends do
 * that together (both learn of each other in the same netmap round) the two initiations
 * cross, each side's answer finds the other already answering, and WireGuard waits 5 s
 * to try again. One side starting is enough. */
#define WGSYNC_QUIET_TICKS 2

/* Applies dev (incremental unless WG_DEVICE_REPLACE_PEERS): 0 or -errno. */
typedef int (*wgsync_set_fn)(void *arg, const struct wg_device *dev);

/* The endpoint a peer should start with (path selection's choice: the relay's loopback
 * port, say), asked when a peer is new to WireGuard or rekeyed, so its first handshake
 * goes somewhere: 1 with *out filled, 0 for the netmap's own. */
typedef int (*wgsync_path_fn)(void *arg, const struct nm_peer *p, struct addr_port *out);

/* A peer as WireGuard was configured from it. path: the endpoint chosen for it by path
 * selection (family 0: none, the netmap's first endpoint is used). */
struct wgsync_peer {
	struct nm_peer p;                 /* first: nm_peers_search/reserve work on the array */
	struct addr_port path;
	int ka_wait;                      /* ticks until its keepalive is set (WireGuard has 0) */
};

struct wgsync {
	wgsync_set_fn set;                /* NULL: no interface, nothing is configured */
	void *set_arg;
	const char *ifname;               /* for logs */
	struct wgsync_peer *peers;
	size_t n, cap;
	int dirty;                        /* a change failed: wgsync_resync on the next tick */
	wgsync_path_fn initial;           /* NULL: new peers start on the netmap's endpoint */
	uint8_t self_key[KEY_LEN];        /* ours, for who starts the handshake */
	int have_self;
	void *initial_arg;
	uint64_t errors;                  /* failed changes */
};

void wgsync_init(struct wgsync *s, const char *ifname);
/* A new interface without peers (set != NULL), or none (set NULL): the mirror empties. */
void wgsync_attach(struct wgsync *s, wgsync_set_fn set, void *arg);
void wgsync_free(struct wgsync *s);

/* Our node key: new peers with a lower key wait WGSYNC_QUIET_TICKS for their keepalive. */
void wgsync_set_self(struct wgsync *s, const uint8_t key[KEY_LEN]);
/* Once a second: delayed keepalives go out. */
void wgsync_tick(struct wgsync *s);
/* Where new peers' first endpoint comes from (see wgsync_path_fn). */
void wgsync_set_initial(struct wgsync *s, wgsync_path_fn fn, void *arg);
/* A full netmap: removals first (a key can move to another id), then what is new or
 * differs. */
void wgsync_full(struct wgsync *s, const struct netmap *nm);
/* A peer added or changed (a new key for the same id removes the old one first). */
void wgsync_peer(struct wgsync *s, const struct nm_peer *p);
/* A peer removed from the netmap (p as it was). */
void wgsync_removed(struct wgsync *s, const struct nm_peer *p);
/* Every peer removed (pending, expired). */
void wgsync_clear(struct wgsync *s);
/* Every peer of nm, replacing whatever WireGuard holds (after a failure). */
void wgsync_resync(struct wgsync *s, const struct netmap *nm);
/* The endpoint WireGuard should use for peer id from now on (ep NULL or family 0: back to
 * the netmap's first endpoint), applied at once when it differs from what runs. This is
 * where path selection plugs in. 0, -ENOENT (no such peer configured), or -errno. */
int wgsync_set_endpoint(struct wgsync *s, int64_t id, const struct addr_port *ep);
/* Removes the peer and adds it again in one change, as the mirror has it: WireGuard
 * forgets a handshake attempt that got no answer (it would wait REKEY_TIMEOUT, 5 s, to
 * try again) and, with its keepalive, starts a new one at once. Only for a peer that has
 * no session yet. 0, -ENOENT, -errno. */
int wgsync_kick(struct wgsync *s, int64_t id);
/* Sends the peer's configured endpoint to WireGuard again, even though the mirror says it
 * runs: WireGuard roams to wherever an authenticated packet came from (a relayed packet
 * from a peer we reach directly), and this puts our choice back. 0, -ENOENT, -errno. */
int wgsync_reassert(struct wgsync *s, int64_t id);
/* The endpoint configured for a mirrored peer (NULL when none). */
const struct addr_port *wgsync_endpoint(const struct wgsync_peer *wp);
const struct wgsync_peer *wgsync_find(const struct wgsync *s, int64_t id);

#endif
