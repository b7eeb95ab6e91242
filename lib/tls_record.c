/* tls_record.c - TLS 1.2 (RFC 5246 6.2) application records sealed and opened with libsodium: AES-256-GCM (RFC 5288) and ChaCha20-Poly1305 (RFC 7905); the bounded record header parser. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tls_record.h"

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int tls_record_parse(const uint8_t *p, size_t len, struct tls_rec_hdr *h)
{
	if (len < TLS_REC_HDR)
		return 0;
	h->type = p[0];
	h->version = (uint16_t)(p[1] << 8 | p[2]);
	h->len = (size_t)p[3] << 8 | p[4];
	if (h->type < TLS_REC_CCS || h->type > TLS_REC_APPDATA || h->version != TLS_REC_VERSION)
		return -EPROTO;
	if (h->len > TLS_REC_BODY_MAX)
		return -EMSGSIZE;
	if (len < TLS_REC_HDR + h->len)
		return 0;
	return (int)(TLS_REC_HDR + h->len);
}

int tls_rec_dir_init(struct tls_rec_dir *d, enum tls_rec_suite suite, const uint8_t *key,
		     size_t keylen, const uint8_t *iv, size_t ivlen, uint64_t seq)
{
	memset(d, 0, sizeof(*d));
	if (keylen != 32 || !key || !iv)
		return -EINVAL;
	switch (suite) {
	case TLS_REC_AES256GCM:
		if (ivlen != 4)
			return -EINVAL;
		if (!crypto_aead_aes256gcm_is_available())
			return -ENOTSUP;
		/* The state needs 16-byte alignment, which malloc gives on x86_64 glibc but
		 * is not promised: ask for it. */
		if (posix_memalign((void **)&d->aes, 16, sizeof(*d->aes)))
			return -ENOMEM;
		crypto_aead_aes256gcm_beforenm(d->aes, key);
		break;
	case TLS_REC_CHACHAPOLY:
		if (ivlen != 12)
			return -EINVAL;
		memcpy(d->key, key, 32);
		break;
	default:
		return -EINVAL;
	}
	memcpy(d->iv, iv, ivlen);
	d->suite = suite;
	d->seq = seq;
	return 0;
}

void tls_rec_dir_wipe(struct tls_rec_dir *d)
{
	if (d->aes) {
		sodium_memzero(d->aes, sizeof(*d->aes));
		free(d->aes);
	}
	sodium_memzero(d, sizeof(*d));
}

size_t tls_record_overhead(enum tls_rec_suite suite)
{
	return TLS_REC_HDR + TLS_REC_TAG + (suite == TLS_REC_AES256GCM ? TLS_REC_EXPLICIT : 0);
}

/* RFC 5288 3: salt || explicit nonce, and we send the sequence number as the explicit
 * part; RFC 7905 2: the IV XOR the sequence number, left-padded. */
static void make_nonce(const struct tls_rec_dir *d, uint64_t seq, const uint8_t *explicit,
		       uint8_t nonce[12])
{
	uint8_t s[8];

	if (d->suite == TLS_REC_AES256GCM) {
		memcpy(nonce, d->iv, 4);
		memcpy(nonce + 4, explicit, 8);
		return;
	}
	put_be64(s, seq);
	memcpy(nonce, d->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] ^= s[i];
}

/* RFC 5246 6.2.3.3: seq_num || type || version || length of the plaintext. */
static void make_aad(uint64_t seq, uint8_t type, size_t len, uint8_t aad[13])
{
	put_be64(aad, seq);
	aad[8] = type;
	aad[9] = TLS_REC_VERSION >> 8;
	aad[10] = TLS_REC_VERSION & 0xff;
	aad[11] = (uint8_t)(len >> 8);
	aad[12] = (uint8_t)len;
}

size_t tls_record_seal(struct tls_rec_dir *d, uint8_t type, const uint8_t *plain, size_t len,
		       uint8_t *out)
{
	size_t body = len + tls_record_overhead(d->suite) - TLS_REC_HDR;
	uint8_t aad[13], nonce[12], *c = out + TLS_REC_HDR;

	out[0] = type;
	out[1] = TLS_REC_VERSION >> 8;
	out[2] = TLS_REC_VERSION & 0xff;
	out[3] = (uint8_t)(body >> 8);
	out[4] = (uint8_t)body;
	make_aad(d->seq, type, len, aad);
	if (d->suite == TLS_REC_AES256GCM) {
		put_be64(c, d->seq);
		make_nonce(d, d->seq, c, nonce);
		c += TLS_REC_EXPLICIT;
		crypto_aead_aes256gcm_encrypt_detached_afternm(c, c + len, NULL, plain, len, aad,
							       sizeof(aad), NULL, nonce, d->aes);
	} else {
		make_nonce(d, d->seq, NULL, nonce);
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(c, c + len, NULL, plain, len, aad,
								   sizeof(aad), NULL, nonce, d->key);
	}
	d->seq++;
	return TLS_REC_HDR + body;
}

int tls_record_open(struct tls_rec_dir *d, const uint8_t *rec, size_t rec_len, uint8_t *out,
		    size_t *out_len)
{
	size_t extra = tls_record_overhead(d->suite), len;
	const uint8_t *c = rec + TLS_REC_HDR;
	uint8_t aad[13], nonce[12];
	int r;

	if (rec_len < extra)
		return -EBADMSG;
	len = rec_len - extra;
	if (len > TLS_REC_PLAIN_MAX)
		return -EMSGSIZE;
	make_aad(d->seq, rec[0], len, aad);
	if (d->suite == TLS_REC_AES256GCM) {
		make_nonce(d, d->seq, c, nonce);
		c += TLS_REC_EXPLICIT;
		r = crypto_aead_aes256gcm_decrypt_detached_afternm(out, NULL, c, len, c + len, aad,
								   sizeof(aad), nonce, d->aes);
	} else {
		make_nonce(d, d->seq, NULL, nonce);
		r = crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, c, len, c + len,
								       aad, sizeof(aad), nonce,
								       d->key);
	}
	if (r)
		return -EBADMSG;
	d->seq++;
	*out_len = len;
	return 0;
}

int tls_record_alert_parse(const uint8_t *p, size_t len, uint8_t *level, uint8_t *desc)
{
	if (len != 2)
		return -EPROTO;
	*level = p[0];
	*desc = p[1];
	return 0;
}
