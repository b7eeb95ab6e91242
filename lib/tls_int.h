/* tls_int.h - what lib/tls*.c share, private to lib/: the config, the client session cache key, helpers. */
#ifndef MESHVPN_TLS_INT_H
#define MESHVPN_TLS_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "meshvpn/conn.h"
#include "meshvpn/tls.h"
#include "tls_record.h"

/* Tickets are accepted for this long after the full handshake that made the session
 * (resumptions keep its start time); the server's ticket keys rotate at the same pace
 * and live twice as long. The client holds a session no longer either, so a
 * verification is reused for an hour at most. */
#define TLS_TICKET_LIFETIME_S 3600
#define TLS_SESSION_HOST_MAX 256
#define TLS_SUITES_MAX 16

#if !defined(MBEDTLS_SSL_SESSION_TICKETS) || !defined(MBEDTLS_SSL_TICKET_C) || \
	!defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE) || !defined(MBEDTLS_HAVE_TIME)
/* Without the kept peer certificate a resumed session could not be pinned. */
#error "mbedtls needs SSL_SESSION_TICKETS, SSL_TICKET_C, SSL_KEEP_PEER_CERTIFICATE and HAVE_TIME"
#endif

/* tls_config.c */
struct tls_config {
	atomic_int refs;            /* the owner's plus one per connection */
	atomic_ulong handshake_failures;  /* server: handshakes that failed (garbage, timeouts) */
	atomic_ulong handshakes_full, handshakes_resumed;   /* server: that went through */
	int is_server;
	int has_pin;
	uint8_t pin[32];
	/* Client: what the peer was checked against (the pin, or a hash of the CA chain):
	 * part of the session cache key, so a session is reused only under the same trust. */
	uint8_t trust[32];
	mbedtls_ssl_config conf;
	mbedtls_ssl_ticket_context ticket;  /* server, unless a ticket key was given: */
	uint8_t ticket_master[32];  /* tls_ticket.c (secret) */
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt certs;     /* server: own chain; client: CA bundle */
	mbedtls_pk_context key;
	/* After the handshake, AES-256-GCM and ChaCha20-Poly1305 records are protected by
	 * libsodium (tls_record.c) instead of mbedtls: off with MESHVPN_TLS_OFFLOAD=0. */
	int offload;
	int suites[TLS_SUITES_MAX + 1];  /* the offer, in order, 0-terminated */
};

void tls_config_ref(struct tls_config *cfg);
void tls_config_unref(struct tls_config *cfg);

/* tls_session.c: the per-process client session cache. The key holds the trust the
 * session was verified under (pin, or CA chain and host name), so it is never offered
 * to a config that would not have accepted the full handshake. */
struct tls_session_key {
	char host[TLS_SESSION_HOST_MAX];
	uint16_t port;
	uint8_t has_pin;
	uint8_t trust[32];
};

/* Sets the session saved under key on ssl: 1 when one was offered, 0 when none is
 * cached (or it expired), -ENOMEM. */
int tls_session_offer(mbedtls_ssl_context *ssl, const struct tls_session_key *key);
void tls_session_forget(const struct tls_session_key *key);
/* After a verified handshake: keeps its session for the next connection to key. */
void tls_session_save(mbedtls_ssl_context *ssl, const struct tls_session_key *key, int resumed);

/* tls_cert.c: SHA-256 of the certificate's SubjectPublicKeyInfo DER (the pin's hash). */
int tls_cert_spki_hash(const mbedtls_x509_crt *crt, uint8_t out[32]);

/* ---- a TLS connection (tls.c), and its records after the handshake (tls_offload.c) ---- */

enum tls_state { TLS_HANDSHAKE, TLS_OPEN, TLS_ENDED };

/* The key block (RFC 5246 6.3) as mbedtls exported it during the handshake, until the
 * records switch to libsodium. */
#define KEYBLOCK_MAX (2 * 32 + 2 * 12)
struct tls_keyblock {
	uint8_t kb[KEYBLOCK_MAX];
	size_t keylen, ivlen;       /* AEAD suites have no MAC keys */
};

/* Records protected by libsodium: both directions. Writes made in one loop turn are
 * corked and sealed together before the loop blocks again: a relay forwarding
 * 1280-byte packets sends 16 KiB records, not a record and a syscall per packet. An idle
 * handle, not a prepare one: a write made while prepare callbacks run (another cork
 * flushing into this one) must still go out before the loop blocks. */
#define TLS_CORK_MAX (256 * 1024)
struct tls_offload {
	struct tls_rec_dir rd, wd;
	uint8_t *cork;
	size_t cork_len, cork_cap;
	uv_idle_t *flush;           /* its own allocation: it closes after the conn is freed */
};

/* Plaintext of a write larger than a slice, queued and encrypted TLS_WRITE_SLICE at a
 * time as the socket drains (tls_outq.c): a 3 MB netmap must not hold the loop for the
 * whole of its encryption while handshakes and small lines of other connections wait.
 * Blocks in order; small writes behind a big one join the last block. */
#define TLS_WRITE_SLICE (64 * 1024)
struct tls_outq_blk {
	struct tls_outq_blk *next;
	size_t off, len, cap;       /* cap 0: a writer's buffer, not ours to add to */
	uint8_t *data;              /* inline[] or the writer's buffer */
	void (*release)(void *ctx); /* the writer's buffer: handed back once sealed */
	void *ctx;
	uint8_t inline_[];
};
struct tls_outq {
	struct tls_outq_blk *head, *tail;
	size_t len;                 /* bytes not yet encrypted */
	/* The kernel took the last slice at once (no drain callback comes): the next one
	 * on the next loop turn. An idle handle, not a 0 ms timer: libuv runs a timer
	 * started from a timer callback again in the same turn. Its own allocation: it
	 * closes after the conn is freed. */
	uv_idle_t *next;
};

struct tls_conn;

/* Timers live apart from the connection so it can be freed at once on close. */
struct tls_timer {
	uv_timer_t timer;
	struct tls_conn *t;
	void (*fn)(struct tls_conn *t);
	struct tls_timer **slot;
};

struct tls_conn {
	struct conn base;
	struct tls_config *cfg;
	struct conn *lower;
	mbedtls_ssl_context ssl;
	enum tls_state state;
	/* Ciphertext not yet given to mbedtls: the lower read buffer while a read is
	 * processed, and a heap copy of what is left when reading pauses. */
	const uint8_t *chunk;
	size_t chunk_len;
	uint8_t *in;
	size_t in_off, in_len;
	uint8_t *early;             /* plaintext written before the handshake completed */
	size_t early_len;
	int lower_end;              /* the lower conn ended with this status (0: not) */
	unsigned depth;             /* nesting of pump() on the stack */
	unsigned reading : 1;
	unsigned closed : 1;
	unsigned broken : 1;
	unsigned is_client : 1;
	unsigned saw_cert : 1;      /* the handshake went through a Certificate: not resumed */
	unsigned done : 1;          /* the handshake completed */
	unsigned offered : 1;       /* client: a cached session was offered */
	unsigned lingering : 1;     /* closed by the owner, the queue still being sealed */
	struct tls_session_key *key;  /* client: its entry in the session cache */
	conn_connect_cb connect_cb;
	void *connect_arg;
	struct conn_connect connecting;  /* client: the owner's handle until connect_cb */
	struct conn_connect *tcp;   /* client: the TCP connect under it, until it completes */
	struct tls_timer *hs_timer;
	struct tls_timer *kick;
	struct tls_timer *linger;   /* bounds the lingering */
	struct tls_outq outq;
	struct tls_keyblock *kb;    /* exported by the handshake, while it runs */
	struct tls_offload *off;    /* set: libsodium protects the records, ssl is reset */
	const char *suite;          /* mbedtls' static name, from the handshake on */
};

/* The connection whose handshake step runs on this thread: mbedtls' key export callback
 * is per config and is not told which context it serves. */
extern _Thread_local struct tls_conn *tls_hs_current;

/* tls.c: ends the connection for its owner (on_end with status), once. */
void tls_conn_end(struct tls_conn *t, int status);
/* tls.c: encrypts and hands down plaintext now (open connections); 0 or -EPIPE. */
int tls_write_now(struct tls_conn *t, const unsigned char *p, size_t len);
/* tls.c: frees a closed connection; only once nothing on the stack uses it (depth 0) and
 * it no longer lingers: TLS_FREEABLE. */
void tls_free(struct tls_conn *t);
#define TLS_FREEABLE(t) ((t)->closed && !(t)->depth && !(t)->lingering)
/* tls.c: the lingering close is over (the queue sealed, the peer gone, or its time up):
 * close_notify when everything went, then the lower conn closes and flushes. */
void tls_linger_end(struct tls_conn *t);

/* tls_outq.c: a write of an open connection: at once when it is small and nothing waits,
 * else queued (the first slice sealed now when the socket has room); the next slices
 * follow from tls_outq_drain() as the lower conn drains, or on the next loop turn when
 * the kernel took a slice whole. flush_all seals what is left (on close). */
int tls_outq_write(struct tls_conn *t, const uint8_t *p, size_t len);
/* The same without a copy: p stays the writer's until release(ctx), which comes once it
 * is sealed (or at once when it was sealed right away, or on error). */
int tls_outq_write_ref(struct tls_conn *t, const uint8_t *p, size_t len,
		       void (*release)(void *ctx), void *ctx);
void tls_outq_drain(struct tls_conn *t);
/* The same from a loop callback: a closed conn that is done is freed afterwards. */
void tls_outq_kick(struct tls_conn *t);
void tls_outq_flush_all(struct tls_conn *t);
void tls_outq_free(struct tls_conn *t);

/* tls_offload.c: right after the handshake, hands the records to libsodium when the suite
 * allows it; then writes (corked until the loop polls), alerts, reads, and the free. */
void tls_offload_start(struct tls_conn *t);
int tls_offload_write(struct tls_conn *t, const uint8_t *p, size_t len);
int tls_offload_flush(struct tls_conn *t);
void tls_offload_alert(struct tls_conn *t, uint8_t level, uint8_t desc);
void tls_offload_read(struct tls_conn *t);
void tls_offload_free(struct tls_conn *t);

/* tls.c: an mbedtls error as a quoted log value. */
const char *tls_mbed_err(int err, char *buf, size_t size);
/* tls_offload.c: mbedtls' key export callback (mbedtls_ssl_export_keys_ext_t): keeps the key
 * block for the connection whose handshake step is running on this thread. */
int tls_export_keys(void *arg, const unsigned char *ms, const unsigned char *kb, size_t maclen,
		    size_t keylen, size_t ivlen, const unsigned char client_random[32],
		    const unsigned char server_random[32], mbedtls_tls_prf_types prf);

#endif
