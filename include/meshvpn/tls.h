/* tls.h - TLS 1.2 (mbedtls) over libuv streams, as a struct conn; certificate or
 * SHA-256 public-key pin verification; session resumption with tickets (RFC 5077);
 * self-signed certificates for coord and relay. */
#ifndef MESHVPN_TLS_H
#define MESHVPN_TLS_H

#include "meshvpn/conn.h"

#define TLS_PIN_LEN 72  /* "sha256:" + 64 hex digits + NUL */

struct tls_config;

/* Server side: certificate chain and key (PEM files). Each config issues session
 * tickets under its own random key (rotated hourly): tickets from another config, or
 * another run, are ignored and cost a full handshake. */
int tls_config_server_new(const char *cert_file, const char *key_file, struct tls_config **out);
/* Server: session tickets sealed under keys derived from this 32-byte secret (per day),
 * so that every server given it (a restart, the other instances) resumes the sessions
 * the others issued. -EINVAL for a client config. */
int tls_config_set_ticket_key(struct tls_config *cfg, const uint8_t key[32]);
/* Client side: pin ("sha256:<hex>" of the server certificate's SubjectPublicKeyInfo DER)
 * when given, else the CA bundle (NULL = /etc/ssl/certs/ca-certificates.crt) plus
 * host name verification. */
int tls_config_client_new(const char *ca_file, const char *pin, struct tls_config **out);
/* Offers only these suites (mbedtls names, "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
 * separated by ':' or ','), in this order: -ENOENT for a name mbedtls does not know.
 * Applies to connections started afterwards. For tests, benchmarks and interop. */
int tls_config_set_ciphersuites(struct tls_config *cfg, const char *names);
/* Server: handshakes that failed on connections of this config (TLS garbage, a client
 * that never finished), for metrics. */
uint64_t tls_config_handshake_failures(const struct tls_config *cfg);
/* Server: handshakes that went through, full ones and resumed sessions. */
void tls_config_handshakes(const struct tls_config *cfg, uint64_t *full, uint64_t *resumed);
/* Connections hold a reference: the config may be freed while they still run. */
void tls_config_free(struct tls_config *cfg);

/* Creates an ECDSA P-256 key (0600) and a self-signed certificate for common_name,
 * valid ten years, written atomically. */
int tls_selfsigned_create(const char *cert_path, const char *key_path, const char *common_name);
/* A daemon's server TLS: cert and key as given, or DIR/tls.crt and DIR/tls.key, made
 * self-signed on the first start (*self_signed set: the daemon reports the pin itself).
 * Prints "PROG: certificate pin sha256:..." on stdout and fills pin; errors go to stderr
 * with what to do. 0 or -errno. */
int tls_server_setup(const char *prog, const char *dir, const char *cert, const char *key,
		     struct tls_config **out, char pin[TLS_PIN_LEN], int *self_signed);
/* The pin of a PEM certificate file. */
int tls_cert_pin(const char *cert_path, char out[TLS_PIN_LEN]);
/* Parses and checks "sha256:<64 hex>". */
int tls_pin_parse(const char *pin, uint8_t out[32]);

/* Accepts a pending connection on server and starts the handshake; reads are delivered
 * after it completes; a failed handshake ends the conn (on_end) with an error (-EPROTO,
 * -ETIMEDOUT after 15 s). Writes before it completes are held and sent after it. */
int tls_accept(struct tls_config *cfg, uv_stream_t *server, struct conn **out);
/* Connects, runs the handshake, verifies the peer, then calls cb (status -EPERM when
 * the pin or certificate does not verify, -ETIMEDOUT when the handshake takes over
 * 15 s). out (may be NULL) names the attempt for conn_connect_cancel() until cb is
 * called: that stops it in either phase, TCP connect or handshake, and cb never comes. */
int tls_connect(uv_loop_t *loop, struct tls_config *cfg, const char *host, uint16_t port,
		conn_connect_cb cb, void *arg, struct conn_connect **out);
/* The same, the certificate verified for name (and name sent as SNI) while the TCP
 * connection goes to host: a DNS-over-TLS upstream is an address plus the name its
 * certificate must carry (RFC 7858 / 8310's authentication domain name). */
int tls_connect_name(uv_loop_t *loop, struct tls_config *cfg, const char *host, uint16_t port,
		     const char *name, conn_connect_cb cb, void *arg, struct conn_connect **out);
/* The same, dialling addr (an address or another name) while SNI, the certificate check
 * and the pin go by host: one of the instances a coord name resolves to. */
int tls_connect_to(uv_loop_t *loop, struct tls_config *cfg, const char *host, const char *addr,
		   uint16_t port, conn_connect_cb cb, void *arg, struct conn_connect **out);

/* Session resumption: a client keeps its last sessions (16, an hour at most) per
 * process, keyed by host, port and pin or CA bundle, and offers them on the next
 * tls_connect with the same key, whatever config it comes from. A resumed session is
 * pinned like a new one; a server that does not take it runs a full handshake. */

/* 1 when the handshake resumed a session, 0 after a full one, -EAGAIN before it
 * completed, -EINVAL for a conn that is not TLS. */
int tls_conn_resumed(const struct conn *c);
/* Plaintext written but not yet encrypted: a write larger than 64 KiB is sealed a slice
 * at a time as the socket drains (it counts in conn_pending() all the while). 0 for a
 * conn that is not TLS. */
size_t tls_conn_unsealed(const struct conn *c);
/* After the handshake: the negotiated suite (mbedtls' name), and in *offloaded (may be
 * NULL) 1 when libsodium protects its records, 0 when mbedtls does. NULL before the
 * handshake completed or for a conn that is not TLS.
 * Records are offloaded for ECDHE AES-256-GCM (with AES-NI) and ChaCha20-Poly1305 unless
 * MESHVPN_TLS_OFFLOAD=0 was set when the config was made. */
const char *tls_conn_suite(const struct conn *c, int *offloaded);
/* Forgets (and wipes) every cached client session. */
void tls_session_cache_clear(void);

#endif
