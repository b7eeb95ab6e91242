/* relayc.h - the relayed data path (DESIGN.md flow 5). A relayed peer's WireGuard
 * endpoint is a loopback UDP port owned here (one per relayed peer): what WireGuard sends
 * to it goes over a relay connection to the peer's home relay, and what the relay brings
 * from that peer's key is handed to WireGuard from that same port. Connections: always to
 * our home relay (so peers can reach us), on demand to a peer's home relay, closed when
 * unused for RELAYC_IDLE_MS. Disco messages that come through a relay go to on_disco.
 * Sockets are made lazily: a peer gets one when it is relayed or sends through a relay. */
#ifndef VPND_RELAYC_H
#define VPND_RELAYC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/addr.h"
#include "meshvpn/keymap.h"
#include "meshvpn/keys.h"
#include "meshvpn/relay_client.h"
#include "netmap.h"

#define RELAYC_IDLE_MS 60000
#define RELAYC_QUEUE_MAX 64          /* packets held per connection while it connects */
#define RELAYC_QUEUE_MS 3000         /* ... and for at most this long */
#define RELAYC_HOLD_MAX 256          /* a handshake message (148 or 92 bytes) fits */
#define RELAYC_HOLD_MS 5000
#define RELAYC_RESEND_MS 300         /* after "not here" (the peer still connecting) */
#define RELAYC_RESENDS 4

struct relayc_qpkt;

struct relayc;

struct relayc_conn {
	struct relayc *owner;
	char name[NM_NAME_LEN];
	char url[256];
	char pin[80];
	struct relay_client *rc;
	int home;
	int connected;
	int last_error;              /* -errno of the last loss, 0 */
	uint64_t connected_ms;       /* when admitted (loop time) */
	uint64_t lost_ms;            /* when last lost, 0 */
	uint64_t last_used_ms;
	struct relayc_qpkt *q_head, *q_tail;  /* waiting for the connection */
	int q_len;
};

struct relayc_peer {
	uint8_t node_key[KEY_LEN];   /* the keymap's key */
	struct relayc *owner;
	int64_t id;
	char relay[NM_NAME_LEN];     /* its home relay ("" : send through ours) */
	uv_udp_t udp;
	struct addr_port ep;         /* 127.0.0.1:port, WireGuard's endpoint for it */
	uint64_t last_used_ms;
	uint64_t tx_packets, rx_packets;
	/* The last small packet WireGuard sent it (a handshake, typically), sent again when
	 * the peer's home relay becomes known or changes: the first one may have gone to a
	 * relay the peer is not on, and WireGuard would wait 5 s to retry. */
	uint8_t held[RELAYC_HOLD_MAX];
	uint16_t held_len;
	uint64_t held_ms;
	uint64_t resend_ms;          /* the relay said the peer is not there: try again then */
	int resends;
};

struct relayc_cbs {
	/* A disco packet from a node key, through relay `relay`. */
	void (*on_disco)(void *arg, const uint8_t src[KEY_LEN], const uint8_t *data, size_t len,
			 const char *relay);
	/* A data packet from a key that has no socket yet: the callee calls relayc_peer_ensure
	 * when the key is a peer (then the packet is delivered), else it is dropped. */
	void (*on_unknown)(void *arg, const uint8_t src[KEY_LEN]);
	/* The home relay's connection came up (1) or was lost (0, err -errno). */
	void (*on_home)(void *arg, int connected, int err);
};

struct relayc_stats {
	uint64_t to_relay, from_relay;       /* data packets */
	uint64_t dropped_no_relay;           /* no connection for the peer's relay, or too
					      * many waiting while it connects */
	uint64_t queued;                     /* held while a connection came up */
	uint64_t resent;                     /* held handshakes sent again to a new relay */
	uint64_t dropped_send;               /* relay_client_send refused (-ENOBUFS, ...) */
	uint64_t dropped_unknown;            /* from keys that are not peers */
	uint64_t dropped_foreign;            /* datagrams to a peer socket not from WireGuard */
	uint64_t disco_in, disco_out;
};

struct relayc {
	uv_loop_t *loop;
	const struct node_keys *keys;
	uint16_t wg_port;
	struct relayc_cbs cbs;
	void *arg;
	struct relayc_conn *conns[NM_MAX_RELAYS];
	int n_conns;
	char home[NM_NAME_LEN];
	struct keymap peers;         /* node key -> struct relayc_peer */
	int n_resend;                /* peers with resend_ms set */
	struct relayc_stats stats;
};

void relayc_init(struct relayc *r, uv_loop_t *loop, const struct node_keys *keys,
		 const struct relayc_cbs *cbs, void *arg);
/* WireGuard's port (where relayed packets are delivered on 127.0.0.1). */
void relayc_set_wg_port(struct relayc *r, uint16_t port);
/* The relay map changed: connections to relays no longer in it (or whose URL or pin
 * changed) are closed. */
void relayc_set_relays(struct relayc *r, const struct nm_relay *relays, int n);
/* Our home relay (connected and kept; "" none). 0, or -ENOENT when not in the map. */
int relayc_set_home(struct relayc *r, const char *name);
/* The loopback endpoint for peer id (made now if needed), whose packets go to relay
 * (its home relay; "" = ours). 0 or -errno. */
int relayc_peer_ensure(struct relayc *r, int64_t id, const uint8_t key[KEY_LEN],
		       const char *relay, struct addr_port *ep);
/* The peer's socket, or NULL. */
struct relayc_peer *relayc_peer_find(struct relayc *r, const uint8_t key[KEY_LEN]);
/* The peer is gone (or rekeyed): its socket closes. */
void relayc_peer_remove(struct relayc *r, const uint8_t key[KEY_LEN]);
/* Sends a disco packet to key through relay ("" = ours): 0 or -errno. */
int relayc_send(struct relayc *r, const uint8_t key[KEY_LEN], const char *relay,
		const void *data, size_t len);
/* Our addresses changed: a connection from an address we no longer have is dead (no RST
 * will come) and is made again at once. */
void relayc_network_changed(struct relayc *r);
/* Due resends of held handshakes; called every few tens of ms (cheap when none). */
void relayc_poll(struct relayc *r);
/* Idle connections close; called every second or so. */
void relayc_tick(struct relayc *r);
const struct relayc_conn *relayc_conn_find(const struct relayc *r, const char *name);
/* Closes everything (handles close on the loop: run it afterwards). */
void relayc_close(struct relayc *r);

#endif
