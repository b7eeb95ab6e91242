/* tls_ticket.c - session tickets (RFC 5077) sealed under a key the application gives
 * (tls_config_set_ticket_key), instead of mbedtls's random per-process one: a restarted
 * server, and every instance given the same key, resume each other's sessions, so ten
 * thousand clients reconnecting at once cost a MAC and a key derivation each instead of
 * an ECDHE exchange and a signature. The key of a ticket is derived per day from the
 * master (BLAKE2b keyed by it); a ticket names its day and is taken only on that day or
 * the next, and within TLS_TICKET_LIFETIME_S of being issued. Format: 'M' version byte,
 * the day (4 bytes, big-endian), a 24-byte nonce, then secretbox(issue time (8 bytes) ||
 * mbedtls_ssl_session_save's blob). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <mbedtls/ssl.h>

#include "tls_int.h"

#define TICKET_VERSION 'M'
#define HEAD_LEN (1 + 4 + crypto_secretbox_NONCEBYTES)
#define SESSION_MAX 2048           /* a server's session blob: no peer certificate */

static void day_key(const uint8_t master[32], uint32_t day, uint8_t key[crypto_secretbox_KEYBYTES])
{
	uint8_t in[18] = "meshvpn-ticket";

	in[14] = (uint8_t)(day >> 24);
	in[15] = (uint8_t)(day >> 16);
	in[16] = (uint8_t)(day >> 8);
	in[17] = (uint8_t)day;
	crypto_generichash(key, crypto_secretbox_KEYBYTES, in, sizeof(in), master, 32);
}

static int ticket_write(void *p, const mbedtls_ssl_session *session, unsigned char *start,
			const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
	struct tls_config *cfg = p;
	uint8_t plain[8 + SESSION_MAX], key[crypto_secretbox_KEYBYTES];
	uint64_t now = (uint64_t)time(NULL);
	uint32_t day = (uint32_t)(now / 86400);
	size_t blob = 0, need;

	if (mbedtls_ssl_session_save(session, plain + 8, SESSION_MAX, &blob))
		return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
	need = HEAD_LEN + crypto_secretbox_MACBYTES + 8 + blob;
	if (end < start || (size_t)(end - start) < need)
		return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
	for (int i = 0; i < 8; i++)
		plain[i] = (uint8_t)(now >> (56 - 8 * i));
	start[0] = TICKET_VERSION;
	start[1] = (uint8_t)(day >> 24);
	start[2] = (uint8_t)(day >> 16);
	start[3] = (uint8_t)(day >> 8);
	start[4] = (uint8_t)day;
	randombytes_buf(start + 5, crypto_secretbox_NONCEBYTES);
	day_key(cfg->ticket_master, day, key);
	crypto_secretbox_easy(start + HEAD_LEN, plain, 8 + blob, start + 5, key);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(plain, sizeof(plain));
	*tlen = need;
	*lifetime = TLS_TICKET_LIFETIME_S;
	return 0;
}

static int ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
	struct tls_config *cfg = p;
	uint8_t plain[8 + SESSION_MAX], key[crypto_secretbox_KEYBYTES];
	uint64_t now = (uint64_t)time(NULL), issued = 0;
	uint32_t day, today = (uint32_t)(now / 86400);
	size_t plen;
	int rc;

	if (len < HEAD_LEN + crypto_secretbox_MACBYTES + 8 || buf[0] != TICKET_VERSION ||
	    len - HEAD_LEN - crypto_secretbox_MACBYTES > sizeof(plain))
		return MBEDTLS_ERR_SSL_INVALID_MAC;
	day = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	if (day != today && day + 1 != today)
		return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
	plen = len - HEAD_LEN - crypto_secretbox_MACBYTES;
	day_key(cfg->ticket_master, day, key);
	rc = crypto_secretbox_open_easy(plain, buf + HEAD_LEN, len - HEAD_LEN, buf + 5, key);
	sodium_memzero(key, sizeof(key));
	if (rc)
		return MBEDTLS_ERR_SSL_INVALID_MAC;
	for (int i = 0; i < 8; i++)
		issued = issued << 8 | plain[i];
	if (issued > now || now - issued >= TLS_TICKET_LIFETIME_S) {
		sodium_memzero(plain, sizeof(plain));
		return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
	}
	rc = mbedtls_ssl_session_load(session, plain + 8, plen - 8);
	sodium_memzero(plain, sizeof(plain));
	return rc ? MBEDTLS_ERR_SSL_INVALID_MAC : 0;
}

int tls_config_set_ticket_key(struct tls_config *cfg, const uint8_t key[32])
{
	if (!cfg->is_server)
		return -EINVAL;
	memcpy(cfg->ticket_master, key, 32);
	mbedtls_ssl_conf_session_tickets_cb(&cfg->conf, ticket_write, ticket_parse, cfg);
	return 0;
}
