/* relay_client.h - a node's connection to one relay (DESIGN.md flow 5): TLS with a pin or
 * CA trust (or plain HTTP for a test or a local proxy), `GET /relay` with Upgrade, the
 * hello that proves the node key, then packets to and from other nodes' keys. It
 * reconnects with backoff and jitter while started. Several clients (one per relay) may
 * run on one loop; the protocol is meshvpn/relay_frame.h. */
#ifndef MESHVPN_RELAY_CLIENT_H
#define MESHVPN_RELAY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/addr.h"
#include "meshvpn/keys.h"

struct relay_client;

enum relay_client_state {
	RELAY_CLIENT_CONNECTING,   /* connecting, upgrading or saying hello */
	RELAY_CLIENT_CONNECTED,    /* admitted: packets flow (detail 0) */
	RELAY_CLIENT_LOST,         /* the connection ended or failed (detail: -errno:
				    * -EPERM the relay's certificate does not match the pin,
				    * -EACCES the relay refused our key, -ETIMEDOUT silence,
				    * -ECONNRESET it said it restarts); retrying after a backoff */
};

struct relay_client_cbs {
	/* A packet from src (valid during the call only). */
	void (*on_packet)(struct relay_client *rc, const uint8_t src[KEY_LEN], const uint8_t *data,
			  size_t len, void *arg);
	/* A packet we sent cannot be delivered (enum relay_gone_reason). May be NULL. */
	void (*on_peer_gone)(struct relay_client *rc, const uint8_t key[KEY_LEN], int reason,
			     void *arg);
	/* State changes. May be NULL. */
	void (*on_state)(struct relay_client *rc, enum relay_client_state st, int detail, void *arg);
};

struct relay_client_opts {
	const char *url;           /* "https://relay.example.net[:443]" or "http://HOST:PORT" */
	const char *pin;           /* "sha256:<64 hex>"; NULL: CA verification (https) */
	const uint8_t *node_pub;   /* the node key pair (copied; the private key is wiped on free) */
	const uint8_t *node_priv;
	unsigned flags;            /* RELAY_HELLO_PREFERRED: this is our home relay */
	int fast_start;            /* sends Relay-Fast-Start: the relay frames right after its
				    * 101 (frames after the head are read in either case; the
				    * hello waits for the relay's challenge) */
	uint64_t backoff_min_ms;   /* 0: 500 ms */
	uint64_t backoff_max_ms;   /* 0: 30 s */
	uint64_t timeout_ms;       /* 0: RELAY_TIMEOUT_S; silence after which the connection is
				    * dropped (keepalives are sent every third of it) */
	size_t max_pending;        /* 0: 4 MiB; bytes queued towards the relay before
				    * relay_client_send says -ENOBUFS */
};

/* Copies opts. 0 or -EINVAL (a bad URL or pin) / -ENOMEM. Call relay_client_start. */
int relay_client_new(uv_loop_t *loop, const struct relay_client_opts *opts,
		     const struct relay_client_cbs *cbs, void *arg, struct relay_client **out);
/* Connects now and keeps reconnecting until stopped. */
int relay_client_start(struct relay_client *rc);
/* Closes the connection and stops retrying; no callback afterwards. */
void relay_client_stop(struct relay_client *rc);
/* Queues one packet (at most RELAY_MAX_PACKET bytes) for dst; packets queued in one loop
 * turn leave together (one write, one TLS record per 16 KiB). 0; -ENOTCONN while not
 * admitted; -ENOBUFS when max_pending bytes already wait (a slow relay: drop or retry);
 * -EMSGSIZE. */
int relay_client_send(struct relay_client *rc, const uint8_t dst[KEY_LEN], const void *data,
		      size_t len);
int relay_client_connected(const struct relay_client *rc);
/* Bytes queued towards the relay. */
size_t relay_client_pending(const struct relay_client *rc);
/* Our end of the connection (the address the node reaches the relay from): 0, or
 * -ENOTCONN while there is no connection. */
int relay_client_local(const struct relay_client *rc, struct addr_port *out);
/* The relay's key as its hello said (all zero before the first). */
const uint8_t *relay_client_relay_key(const struct relay_client *rc);

/* Counters since relay_client_new. */
struct relay_client_stats {
	uint64_t packets_sent, bytes_sent;         /* queued towards the relay */
	uint64_t packets_dropped;                  /* refused by relay_client_send (-ENOBUFS,
						    * or the connection was breaking) */
	uint64_t packets_received, bytes_received;
	uint64_t peer_gone;                        /* PEER_GONE for other keys */
	uint64_t connects;                         /* times admitted */
	uint64_t losses;                           /* connections or attempts that ended */
};
void relay_client_get_stats(const struct relay_client *rc, struct relay_client_stats *out);
/* Stops, wipes the key and frees (handles close on the loop: run it afterwards). NULL ok. */
void relay_client_free(struct relay_client *rc);

#endif
