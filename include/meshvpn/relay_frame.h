/* relay_frame.h - the relay protocol between nodes and a relay (DESIGN.md flow 5), after
 * `GET /relay` with `Upgrade: meshvpn-relay`: frames of a 1-byte type, a 4-byte big-endian
 * length and at most RELAY_MAX_PAYLOAD bytes (DERP's layout, our own types). The codec is
 * pure (no I/O, fuzzed); the hello uses libsodium's crypto_box.
 *
 * The handshake: the relay sends SERVER_HELLO (magic, its X25519 public key, a fresh
 * 32-byte challenge); the node answers CLIENT_HELLO (its node key, a nonce, and
 * crypto_box(challenge || version || flags) from its node key to the relay's key): only
 * the holder of the node's private key can make a box that opens with that public key,
 * and the challenge is new on every connection, so a captured hello is worthless. The
 * relay answers SERVER_INFO once the key is admitted. */
#ifndef MESHVPN_RELAY_FRAME_H
#define MESHVPN_RELAY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/keys.h"

#define RELAY_UPGRADE "meshvpn-relay"       /* the Upgrade: token */
#define RELAY_PATH "/relay"
#define RELAY_FAST_START "Relay-Fast-Start" /* header: the client frames without awaiting 101 */
#define RELAY_HDR_LEN 5
#define RELAY_MAX_PAYLOAD 65536
#define RELAY_MAX_PACKET (RELAY_MAX_PAYLOAD - KEY_LEN)  /* data in a send/recv packet */
#define RELAY_MAGIC "MVRELAY1"                 /* 8 bytes, opens SERVER_HELLO */
#define RELAY_MAGIC_LEN 8
#define RELAY_CHALLENGE_LEN 32
#define RELAY_VERSION 1
#define RELAY_KEEPALIVE_S 30                   /* both ways, when nothing else was sent */
#define RELAY_TIMEOUT_S 75                     /* silence after which a connection is dead */

enum relay_frame_type {
	RELAY_SERVER_HELLO = 0x01,  /* magic[8] relay_key[32] challenge[32] */
	RELAY_CLIENT_HELLO = 0x02,  /* node_key[32] nonce[24] box(challenge[32] version flags) */
	RELAY_SERVER_INFO = 0x03,   /* version, keepalive_s[2]: admitted */
	RELAY_SEND_PACKET = 0x04,   /* dst_key[32] data */
	RELAY_RECV_PACKET = 0x05,   /* src_key[32] data */
	RELAY_PEER_GONE = 0x06,     /* key[32] reason */
	RELAY_KEEPALIVE = 0x07,     /* empty */
	RELAY_PING = 0x08,          /* data[8], answered by PONG with the same data */
	RELAY_PONG = 0x09,          /* data[8] */
	RELAY_HEALTH = 0x0a,        /* text, at most RELAY_HEALTH_MAX; empty: healthy */
	RELAY_RESTARTING = 0x0b,    /* reconnect_in_ms[4] try_for_ms[4]: the relay is stopping */
};

enum relay_gone_reason {
	RELAY_GONE_NOT_HERE = 0,    /* the destination is not connected to this relay */
	RELAY_GONE_DISCONNECTED = 1,/* it was, and has left */
	RELAY_GONE_NOT_ADMITTED = 2,/* coord does not list it (any more) */
};

enum relay_hello_flags {
	RELAY_HELLO_PREFERRED = 1U << 0,  /* this relay is the node's home relay */
};

#define RELAY_CLIENT_HELLO_LEN (KEY_LEN + 24 + RELAY_CHALLENGE_LEN + 2 + 16)
#define RELAY_SERVER_HELLO_LEN (RELAY_MAGIC_LEN + KEY_LEN + RELAY_CHALLENGE_LEN)
#define RELAY_HEALTH_MAX 256

struct relay_frame {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload;       /* len bytes, into the caller's buffer */
};

/* The next frame at the start of p: the bytes it takes (> 0) and *f; 0 when p holds
 * less than a whole frame; -EMSGSIZE when its length is over RELAY_MAX_PAYLOAD. The type
 * is not judged here (relay_frame_check does). */
int relay_frame_next(const uint8_t *p, size_t len, struct relay_frame *f);
/* The payload's shape for its type: 0, -EPROTO for a type this version does not know,
 * -EBADMSG for a wrong length. */
int relay_frame_check(const struct relay_frame *f);
/* Writes the 5-byte header for a payload of len (<= RELAY_MAX_PAYLOAD). */
void relay_frame_header(uint8_t hdr[RELAY_HDR_LEN], uint8_t type, uint32_t len);
/* A whole frame (header + payload) into buf: its length, or -ENOSPC / -EMSGSIZE. */
int relay_frame_build(uint8_t *buf, size_t size, uint8_t type, const void *payload,
		      uint32_t len);
/* SEND_PACKET / RECV_PACKET: header and key into hdr (RELAY_HDR_LEN + KEY_LEN bytes), for a
 * packet of len bytes sent after it. -EMSGSIZE when len > RELAY_MAX_PACKET. */
int relay_packet_header(uint8_t hdr[RELAY_HDR_LEN + KEY_LEN], uint8_t type,
			const uint8_t key[KEY_LEN], size_t len);

/* Accessors for checked frames (relay_frame_check returned 0). */
void relay_packet_parse(const struct relay_frame *f, const uint8_t **key, const uint8_t **data,
			size_t *len);

/* ---- hello ---- */

int relay_server_hello_build(uint8_t *buf, size_t size, const uint8_t relay_pub[KEY_LEN],
			     const uint8_t challenge[RELAY_CHALLENGE_LEN]);
/* -EBADMSG: not a server hello of this protocol. */
int relay_server_hello_parse(const struct relay_frame *f, uint8_t relay_pub[KEY_LEN],
			     uint8_t challenge[RELAY_CHALLENGE_LEN]);
/* The node's answer (a whole frame in buf, RELAY_HDR_LEN + RELAY_CLIENT_HELLO_LEN): its
 * length, or -ENOSPC; -EINVAL when the box cannot be made (a bad key). */
int relay_client_hello_build(uint8_t *buf, size_t size, const uint8_t node_pub[KEY_LEN],
			     const uint8_t node_priv[KEY_LEN], const uint8_t relay_pub[KEY_LEN],
			     const uint8_t challenge[RELAY_CHALLENGE_LEN], unsigned flags);
/* The relay's check: 0 and the node's key (and flags) when the box opens with that key
 * and holds this connection's challenge; -EBADMSG for a wrong shape, -EACCES for a box
 * that does not open or another challenge (a replay). */
int relay_client_hello_open(const struct relay_frame *f, const uint8_t relay_priv[KEY_LEN],
			    const uint8_t challenge[RELAY_CHALLENGE_LEN],
			    uint8_t node_pub[KEY_LEN], unsigned *version, unsigned *flags);

/* ---- a frame reader for a byte stream (frames cut across reads) ---- */

struct relay_reader {
	uint8_t *buf;                 /* a partial frame, kept between feeds */
	size_t len, cap;
};

/* Called for each whole frame (payload valid during the call only). Nonzero stops the
 * feed (the connection is being closed): the reader is not touched afterwards. */
typedef int (*relay_frame_cb)(const struct relay_frame *f, void *arg);
/* 0 when all was taken, 1 when cb stopped it, -EMSGSIZE for an oversize frame, -ENOMEM.
 * Whole frames inside p are handed over without a copy. */
int relay_reader_feed(struct relay_reader *r, const uint8_t *p, size_t len, relay_frame_cb cb,
		      void *arg);
void relay_reader_free(struct relay_reader *r);

#endif
