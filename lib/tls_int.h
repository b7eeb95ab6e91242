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

#include "meshvpn/tls.h"

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
	int is_server;
	int has_pin;
	uint8_t pin[32];
	/* Client: what the peer was checked against (the pin, or a hash of the CA chain):
	 * part of the session cache key, so a session is reused only under the same trust. */
	uint8_t trust[32];
	mbedtls_ssl_config conf;
	mbedtls_ssl_ticket_context ticket;  /* server */
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

/* tls.c: an mbedtls error as a quoted log value. */
const char *tls_mbed_err(int err, char *buf, size_t size);
/* tls.c: mbedtls' key export callback (mbedtls_ssl_export_keys_ext_t): keeps the key
 * block for the connection whose handshake step is running on this thread. */
int tls_export_keys(void *arg, const unsigned char *ms, const unsigned char *kb, size_t maclen,
		    size_t keylen, size_t ivlen, const unsigned char client_random[32],
		    const unsigned char server_random[32], mbedtls_tls_prf_types prf);

#endif
