/* tls_offload.c - TLS 1.2 records after the handshake, protected with libsodium
 * (RFC 5288 AES-256-GCM, RFC 7905 ChaCha20-Poly1305; codec in tls_record.c): the key
 * block exported by mbedtls, writes corked per loop turn and sealed 16 KiB at a time,
 * records read and opened, alerts both ways. mbedtls keeps doing the handshake. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ssl.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "tls_int.h"

_Thread_local struct tls_conn *tls_hs_current;
/* Records sealed for one lower write: sixteen full records (about 256 KiB). */
#define SEAL_RECORDS 16
static _Thread_local uint8_t seal_buf[SEAL_RECORDS * (TLS_REC_PLAIN_MAX + TLS_REC_OVERHEAD_MAX)];

int tls_export_keys(void *arg, const unsigned char *ms, const unsigned char *kb, size_t maclen,
		    size_t keylen, size_t ivlen, const unsigned char client_random[32],
		    const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
	struct tls_conn *t = tls_hs_current;

	/* Only AEAD key blocks are of use (no MAC keys); a full and an abbreviated
	 * handshake both derive keys once. */
	if (!t || !t->cfg->offload || maclen || keylen > 32 || ivlen > 12)
		return 0;
	if (!t->kb && !(t->kb = malloc(sizeof(*t->kb))))
		return 0;               /* mbedtls keeps the records */
	memcpy(t->kb->kb, kb, 2 * keylen + 2 * ivlen);
	t->kb->keylen = keylen;
	t->kb->ivlen = ivlen;
	return 0;
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static enum tls_rec_suite offload_suite(int id)
{
	switch (id) {
	case MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:
	case MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return crypto_aead_aes256gcm_is_available() ? TLS_REC_AES256GCM : TLS_REC_NONE;
	case MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256:
	case MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return TLS_REC_CHACHAPOLY;
	default:
		return TLS_REC_NONE;
	}
}

/* Right after the handshake: the records go to libsodium when the suite allows it.
 * The keys are the exported block's (client write key, server write key, client IV,
 * server IV) and the sequence numbers mbedtls' own (Finished took 0 each way): in_ctr
 * is the next to read; out_ctr only shows the last record written, cur_out_ctr the next
 * one. mbedtls
 * reads a stream record by record, header then body, so every byte past the Finished is
 * still in our buffers; should it ever hold more (a record buffered, plaintext unread),
 * it keeps the connection. Then its context is reset, freeing its record buffers. */
void tls_offload_start(struct tls_conn *t)
{
	enum tls_rec_suite suite = offload_suite(mbedtls_ssl_get_ciphersuite_id(t->suite));
	struct tls_keyblock *kb = t->kb;
	const uint8_t *ck, *sk, *civ, *siv;
	struct tls_offload *off;
	int r;

	t->kb = NULL;
	if (!kb || suite == TLS_REC_NONE || !t->cfg->offload)
		goto out;
	if (t->ssl.in_left || mbedtls_ssl_check_pending(&t->ssl) ||
	    mbedtls_ssl_get_bytes_avail(&t->ssl) || t->ssl.out_left) {
		log_debug("tls offload skipped", "peer=%s why=\"mbedtls holds data\"", t->base.peer);
		goto out;
	}
	off = calloc(1, sizeof(*off));
	if (!off)
		goto out;
	ck = kb->kb;
	sk = ck + kb->keylen;
	civ = sk + kb->keylen;
	siv = civ + kb->ivlen;
	r = tls_rec_dir_init(&off->rd, suite, t->is_client ? sk : ck, kb->keylen,
			     t->is_client ? siv : civ, kb->ivlen, get_be64(t->ssl.in_ctr));
	if (!r)
		r = tls_rec_dir_init(&off->wd, suite, t->is_client ? ck : sk, kb->keylen,
				     t->is_client ? civ : siv, kb->ivlen, get_be64(t->ssl.cur_out_ctr));
	if (r < 0) {
		tls_rec_dir_wipe(&off->rd);
		tls_rec_dir_wipe(&off->wd);
		free(off);
		goto out;
	}
	off->flush = malloc(sizeof(*off->flush));
	if (!off->flush) {
		tls_rec_dir_wipe(&off->rd);
		tls_rec_dir_wipe(&off->wd);
		free(off);
		goto out;
	}
	uv_idle_init(t->lower->loop, off->flush);
	off->flush->data = t;
	t->off = off;
	mbedtls_ssl_free(&t->ssl);
	mbedtls_ssl_init(&t->ssl);
out:
	if (kb) {
		sodium_memzero(kb, sizeof(*kb));
		free(kb);
	}
}

/* Seals as many records as fit the scratch buffer, then hands them down in one write:
 * per-record writes would cost a syscall (or a queued copy) each. */
static int seal_send(struct tls_conn *t, uint8_t type, const uint8_t *p, size_t len)
{
	size_t n, o;

	while (len) {
		for (o = 0; len && o + TLS_REC_PLAIN_MAX + TLS_REC_OVERHEAD_MAX <= sizeof(seal_buf);) {
			n = len < TLS_REC_PLAIN_MAX ? len : TLS_REC_PLAIN_MAX;
			o += tls_record_seal(&t->off->wd, type, p, n, seal_buf + o);
			p += n;
			len -= n;
		}
		if (!t->lower || conn_write(t->lower, seal_buf, o) < 0) {
			t->broken = 1;
			return -EPIPE;
		}
	}
	return 0;
}

void tls_offload_alert(struct tls_conn *t, uint8_t level, uint8_t desc)
{
	uint8_t a[2] = { level, desc };

	if (!t->broken && !tls_offload_flush(t))
		seal_send(t, TLS_REC_ALERT, a, sizeof(a));
}

static void on_flush(uv_idle_t *h)
{
	struct tls_conn *t = h->data;

	if (t)
		tls_offload_flush(t);
}

int tls_offload_flush(struct tls_conn *t)
{
	struct tls_offload *off = t->off;
	int r;

	if (!off || !off->cork_len)
		return 0;
	uv_idle_stop(off->flush);
	r = seal_send(t, TLS_REC_APPDATA, off->cork, off->cork_len);
	off->cork_len = 0;
	return r;
}

/* Small writes wait in the cork until the loop is about to poll; a large one (or one
 * that would overflow the cork) goes out at once, after what waits. */
int tls_offload_write(struct tls_conn *t, const uint8_t *p, size_t len)
{
	struct tls_offload *off = t->off;
	uint8_t *nb;

	if (len >= TLS_REC_PLAIN_MAX || off->cork_len + len > TLS_CORK_MAX) {
		if (tls_offload_flush(t))
			return -EPIPE;
		if (len >= TLS_REC_PLAIN_MAX)
			return seal_send(t, TLS_REC_APPDATA, p, len);
	}
	if (off->cork_len + len > off->cork_cap) {
		size_t cap = off->cork_cap ? off->cork_cap : 16384;

		while (cap < off->cork_len + len)
			cap *= 2;
		nb = realloc(off->cork, cap);
		if (!nb)
			return -ENOMEM;
		off->cork = nb;
		off->cork_cap = cap;
	}
	memcpy(off->cork + off->cork_len, p, len);
	if (!off->cork_len)
		uv_idle_start(off->flush, on_flush);
	off->cork_len += len;
	return 0;
}

static void flush_closed(uv_handle_t *h)
{
	free(h);
}

void tls_offload_free(struct tls_conn *t)
{
	struct tls_offload *off = t->off;

	if (!off)
		return;
	tls_rec_dir_wipe(&off->rd);
	tls_rec_dir_wipe(&off->wd);
	if (off->cork) {
		sodium_memzero(off->cork, off->cork_cap);
		free(off->cork);
	}
	off->flush->data = NULL;
	uv_idle_stop(off->flush);
	uv_close((uv_handle_t *)off->flush, flush_closed);
	free(off);
	t->off = NULL;
}

/* The next whole record: from the saved bytes (completed from the current read if need
 * be), else from the current read. Its length, 0 when it is not all here, or the
 * parser's error. The record stays valid until the next call. */
static int next_record(struct tls_conn *t, const uint8_t **rec)
{
	struct tls_rec_hdr h;
	size_t have, want;
	uint8_t *p;
	int n;

	while ((have = t->in_len - t->in_off) > 0) {
		n = tls_record_parse(t->in + t->in_off, have, &h);
		if (n > 0) {
			*rec = t->in + t->in_off;
			t->in_off += (size_t)n;
			return n;
		}
		if (n < 0 || !t->chunk_len)
			return n;
		want = (have < TLS_REC_HDR ? TLS_REC_HDR : TLS_REC_HDR + h.len) - have;
		if (want > t->chunk_len)
			want = t->chunk_len;
		memmove(t->in, t->in + t->in_off, have);
		p = realloc(t->in, have + want);
		if (!p)
			return -ENOMEM;
		memcpy(p + have, t->chunk, want);
		t->in = p;
		t->in_off = 0;
		t->in_len = have + want;
		t->chunk += want;
		t->chunk_len -= want;
	}
	if (t->in) {
		free(t->in);
		t->in = NULL;
		t->in_off = t->in_len = 0;
	}
	n = tls_record_parse(t->chunk, t->chunk_len, &h);
	if (n > 0) {
		*rec = t->chunk;
		t->chunk += n;
		t->chunk_len -= (size_t)n;
	}
	return n;
}

static void fail_offload(struct tls_conn *t, int status, uint8_t alert, const char *why)
{
	log_info("tls read failed", "peer=%s err=\"%s\"", t->base.peer, why);
	if (alert)
		tls_offload_alert(t, TLS_ALERT_FATAL, alert);
	t->broken = 1;
	tls_conn_end(t, status);
}

/* One opened record: application data goes to the owner, a close_notify ends the
 * stream, anything else ends the connection. */
static void on_record(struct tls_conn *t, uint8_t type, const uint8_t *p, size_t len)
{
	uint8_t level, desc;

	switch (type) {
	case TLS_REC_APPDATA:
		if (len && t->base.on_read)
			t->base.on_read(&t->base, p, len, t->base.arg);
		return;
	case TLS_REC_ALERT:
		if (tls_record_alert_parse(p, len, &level, &desc) < 0) {
			fail_offload(t, -EPROTO, TLS_ALERT_UNEXPECTED_MESSAGE, "malformed alert");
		} else if (desc == TLS_ALERT_CLOSE_NOTIFY) {
			tls_conn_end(t, UV_EOF);
		} else {
			log_info("tls alert received", "peer=%s level=%u desc=%u", t->base.peer,
				 level, desc);
			t->broken = 1;
			tls_conn_end(t, -ECONNRESET);
		}
		return;
	case TLS_REC_HANDSHAKE:
		fail_offload(t, -EPROTO, TLS_ALERT_UNEXPECTED_MESSAGE,
			     "handshake message after the handshake (renegotiation refused)");
		return;
	default:
		fail_offload(t, -EPROTO, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected record type");
	}
}

void tls_offload_read(struct tls_conn *t)
{
	uint8_t buf[TLS_REC_BODY_MAX];
	const uint8_t *rec;
	size_t len;
	int n, r;

	while (t->state == TLS_OPEN && t->reading && !t->closed) {
		n = next_record(t, &rec);
		if (n == 0)
			break;
		if (n < 0) {
			fail_offload(t, n == -ENOMEM ? -ENOMEM : -EPROTO,
				     n == -EMSGSIZE ? TLS_ALERT_RECORD_OVERFLOW :
				     n == -ENOMEM ? 0 : TLS_ALERT_UNEXPECTED_MESSAGE,
				     n == -EMSGSIZE ? "record too long" : n == -ENOMEM ?
				     "out of memory" : "malformed record header");
			break;
		}
		r = tls_record_open(&t->off->rd, rec, (size_t)n, buf, &len);
		if (r < 0) {
			fail_offload(t, -EPROTO, r == -EMSGSIZE ? TLS_ALERT_RECORD_OVERFLOW :
				     TLS_ALERT_BAD_RECORD_MAC, r == -EMSGSIZE ?
				     "record too long" : "bad record mac");
			break;
		}
		on_record(t, rec[0], buf, len);
	}
}

