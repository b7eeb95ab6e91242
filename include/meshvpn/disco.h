/* disco.h - disco messages (DESIGN.md flow 4): how two nodes prove a path between them.
 * Sent as UDP from WireGuard's port (vpnd's raw socket) or as a packet through a relay.
 * Pure codec: no I/O, no clock (the caller gives the counter).
 *
 * Wire format (all integers big-endian):
 *   magic "MVDISC" (6) | sender's disco public key (32) | nonce (24) | box
 *   nonce = counter (8, strictly increasing per sender) | random (16)
 *   box   = crypto_box (X25519 + XSalsa20-Poly1305) of the body: MAC (16) + body
 *   body  = type (1) | version (1, 0) | fields
 *     PING           txid (12) | sender's node key (32)
 *     PONG           txid (12) | source the ping came from: address (16, IPv4 as
 *                    ::ffff:a.b.c.d) | port (2)
 *     CALL_ME_MAYBE  0..DISCO_MAX_ENDPOINTS x (address (16) | port (2))
 *   Bytes after a PING's or PONG's fields are ignored (room for later fields); a
 *   CALL_ME_MAYBE is a whole number of endpoints. WireGuard's messages start with a type
 *   byte 1..4 and STUN's with two zero bits, so none of them begins with the magic. */
#ifndef MESHVPN_DISCO_H
#define MESHVPN_DISCO_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/addr.h"
#include "meshvpn/keys.h"

#define DISCO_MAGIC "MVDISC"
#define DISCO_MAGIC_LEN 6
#define DISCO_TXID_LEN 12
#define DISCO_NONCE_LEN 24
#define DISCO_MAC_LEN 16
#define DISCO_HEADER_LEN (DISCO_MAGIC_LEN + KEY_LEN + DISCO_NONCE_LEN)      /* 62 */
#define DISCO_MAX_ENDPOINTS 16
#define DISCO_EP_LEN 18
#define DISCO_MAX_BODY (2 + DISCO_MAX_ENDPOINTS * DISCO_EP_LEN)
#define DISCO_MAX_PACKET (DISCO_HEADER_LEN + DISCO_MAC_LEN + DISCO_MAX_BODY)
#define DISCO_SHARED_LEN 32        /* crypto_box_BEFORENMBYTES */
#define DISCO_REPLAY_WINDOW 128    /* counters this far below the highest are still taken once */

enum disco_type {
	DISCO_PING = 1,
	DISCO_PONG = 2,
	DISCO_CALL_ME_MAYBE = 3,
};

struct disco_msg {
	enum disco_type type;
	uint8_t txid[DISCO_TXID_LEN];                    /* ping, pong */
	uint8_t node_key[KEY_LEN];                       /* ping: the sender's WireGuard key */
	struct addr_port src;                            /* pong: where the ping came from */
	struct addr_port endpoints[DISCO_MAX_ENDPOINTS]; /* call-me-maybe */
	int n_endpoints;
};

/* Starts with the magic and is long enough for header and MAC: 1, else 0. What a
 * receiver checks before it looks further (and what the raw socket's filter matches). */
int disco_is(const uint8_t *p, size_t len);
/* The sender's disco key of a packet that disco_is: copied to out. 0 or -EBADMSG. */
int disco_sender(const uint8_t *p, size_t len, uint8_t out[KEY_LEN]);

/* The key two parties share (crypto_box_beforenm): computed once per peer. 0, or -EINVAL
 * for a key that gives an all-zero secret (a low-order point). */
int disco_shared(const uint8_t my_priv[KEY_LEN], const uint8_t peer_pub[KEY_LEN],
		 uint8_t shared[DISCO_SHARED_LEN]);

/* Encodes m's body (type, version 0, fields). Length, or -EINVAL (unknown type, too many
 * endpoints, an endpoint or pong source the parser would refuse: family 0, port 0 or the
 * unspecified address) / -ENOSPC. A zone (scope_id) is local and not sent. */
int disco_build_body(const struct disco_msg *m, uint8_t *out, size_t size);
/* Decodes a body as laid out above. 0, or -EBADMSG (*out zeroed): too short, version not
 * 0, unknown type, a CALL_ME_MAYBE not a whole number of endpoints or over the maximum,
 * an endpoint or pong source with port 0 or the unspecified address. */
int disco_parse_body(const uint8_t *p, size_t len, struct disco_msg *out);

/* Seals m into a packet from my_pub with the shared key and counter (16 random bytes
 * complete the nonce). Length, or what disco_build_body returns. */
int disco_seal(const struct disco_msg *m, const uint8_t my_pub[KEY_LEN],
	       const uint8_t shared[DISCO_SHARED_LEN], uint64_t counter, uint8_t *out, size_t size);
/* Opens a packet (its sender found with disco_sender, shared computed for it). 0 with *m
 * and *counter, -EBADMSG (not a disco packet, a body over 1024 bytes, or a body that does
 * not parse; *m and *counter zeroed) or -EPERM
 * (the box does not open: a wrong key or a forged or damaged packet). The caller checks
 * the counter against its disco_replay before acting. */
int disco_open(const uint8_t *p, size_t len, const uint8_t shared[DISCO_SHARED_LEN],
	       struct disco_msg *m, uint64_t *counter);

/* A sender's counter: larger than *last and at least now_ns (wall-clock nanoseconds, so
 * a restarted sender still counts upwards); stored back in *last. */
uint64_t disco_next_counter(uint64_t *last, uint64_t now_ns);

/* Replays: per sender, the highest counter taken and which of the DISCO_REPLAY_WINDOW
 * below it were. Zero-initialise. */
struct disco_replay {
	uint64_t top;
	uint64_t seen[DISCO_REPLAY_WINDOW / 64];  /* bit i: counter top - i taken */
	int started;
};
/* 0: counter is new, now recorded; -EALREADY: taken before, or below the window. Call
 * only for packets whose box opened. */
int disco_replay_check(struct disco_replay *r, uint64_t counter);

#endif
