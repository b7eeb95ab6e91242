/* tls_record.h - TLS 1.2 records protected with libsodium after mbedtls' handshake (RFC 5288 AES-256-GCM, RFC 7905 ChaCha20-Poly1305); a pure, bounded record parser. Private to lib/. */
#ifndef MESHVPN_TLS_RECORD_H
#define MESHVPN_TLS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define TLS_REC_HDR 5
#define TLS_REC_PLAIN_MAX 16384
/* Longest record body accepted: a full plaintext plus room for nonce and tag. */
#define TLS_REC_BODY_MAX (TLS_REC_PLAIN_MAX + 256)
#define TLS_REC_TAG 16
#define TLS_REC_EXPLICIT 8          /* AES-GCM's explicit nonce (RFC 5288 3) */
#define TLS_REC_OVERHEAD_MAX (TLS_REC_HDR + TLS_REC_EXPLICIT + TLS_REC_TAG)
#define TLS_REC_VERSION 0x0303      /* TLS 1.2, the only version negotiated */

enum tls_rec_type {
	TLS_REC_CCS = 20,
	TLS_REC_ALERT = 21,
	TLS_REC_HANDSHAKE = 22,
	TLS_REC_APPDATA = 23,
};

enum tls_rec_suite {
	TLS_REC_NONE,
	TLS_REC_AES256GCM,          /* TLS_ECDHE_*_WITH_AES_256_GCM_SHA384 */
	TLS_REC_CHACHAPOLY,         /* TLS_ECDHE_*_WITH_CHACHA20_POLY1305_SHA256 */
};

/* One direction of a connection: its key, IV and next sequence number. */
struct tls_rec_dir {
	enum tls_rec_suite suite;
	uint64_t seq;
	uint8_t iv[12];             /* AES-GCM: the 4-byte salt first; ChaCha20: all 12 */
	uint8_t key[32];            /* ChaCha20 (AES-GCM keeps its expanded key in aes) */
	crypto_aead_aes256gcm_state *aes;
};

struct tls_rec_hdr {
	uint8_t type;
	uint16_t version;
	size_t len;                 /* of the body after the 5-byte header */
};

/* The record at the start of p: its full length (header + body), 0 when more bytes are
 * needed, -EMSGSIZE for a body over TLS_REC_BODY_MAX, -EPROTO for a version other than
 * TLS 1.2 or an unknown type. Reads at most 5 bytes. */
int tls_record_parse(const uint8_t *p, size_t len, struct tls_rec_hdr *h);

/* Key and IV as mbedtls' key block gives them: AES-256-GCM 32 + 4 bytes, ChaCha20 32 + 12.
 * -EINVAL for other lengths, -ENOTSUP for AES-GCM without AES-NI, -ENOMEM. */
int tls_rec_dir_init(struct tls_rec_dir *d, enum tls_rec_suite suite, const uint8_t *key,
		     size_t keylen, const uint8_t *iv, size_t ivlen, uint64_t seq);
/* Wipes the keys and frees the AES state. */
void tls_rec_dir_wipe(struct tls_rec_dir *d);
/* Bytes a record adds to its plaintext. */
size_t tls_record_overhead(enum tls_rec_suite suite);
/* Seals len (<= TLS_REC_PLAIN_MAX) bytes of plain as one record of type into out, which
 * has room for len + tls_record_overhead(); plain and out must not overlap. Returns the
 * record's length. Advances the sequence number. */
size_t tls_record_seal(struct tls_rec_dir *d, uint8_t type, const uint8_t *plain, size_t len,
		       uint8_t *out);
/* Opens the whole record rec (as tls_record_parse measured it) into out (room for
 * TLS_REC_BODY_MAX): 0 and *out_len, -EBADMSG when the tag does not verify (or the body
 * is too short to hold one), -EMSGSIZE for a plaintext over TLS_REC_PLAIN_MAX. Advances the
 * sequence number only on success. */
int tls_record_open(struct tls_rec_dir *d, const uint8_t *rec, size_t rec_len, uint8_t *out,
		    size_t *out_len);

#define TLS_ALERT_WARNING 1
#define TLS_ALERT_FATAL 2
#define TLS_ALERT_CLOSE_NOTIFY 0
#define TLS_ALERT_UNEXPECTED_MESSAGE 10
#define TLS_ALERT_BAD_RECORD_MAC 20
#define TLS_ALERT_RECORD_OVERFLOW 22
#define TLS_ALERT_NO_RENEGOTIATION 100

/* An alert's plaintext: 0 with level and description, -EPROTO when it is not 2 bytes. */
int tls_record_alert_parse(const uint8_t *p, size_t len, uint8_t *level, uint8_t *desc);

#endif
