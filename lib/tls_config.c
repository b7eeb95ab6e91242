/* tls_config.c - TLS 1.2 configurations: cipher suites; server certificate and ticket key (RFC 5077); client trust, SPKI pin or CA bundle. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "tls_int.h"

#define DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* ECDHE only (forward secrecy); ECDSA first since our own certificates are P-256,
 * RSA after for certificates from public CAs. */
static const int ciphersuites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	0
};

/* With the offload, the suites libsodium protects go first so that our own peers (and
 * stock ones, which let the server choose) land on one: AES-256-GCM where the CPU has
 * AES-NI (libsodium has no other AES-GCM), then ChaCha20-Poly1305, then the rest as
 * mbedtls protects them. */
static const int ciphersuites_aesni[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	0
};

static const int ciphersuites_chacha[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	0
};

static int offload_wanted(void)
{
	const char *e = getenv("MESHVPN_TLS_OFFLOAD");

	if (e && !strcmp(e, "0"))
		return 0;
	return sodium_init() >= 0;
}

static void suites_set(struct tls_config *cfg, const int *list)
{
	size_t n = 0;

	for (; list[n] && n < TLS_SUITES_MAX; n++)
		cfg->suites[n] = list[n];
	cfg->suites[n] = 0;
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, cfg->suites);
}

int tls_config_set_ciphersuites(struct tls_config *cfg, const char *names)
{
	int list[TLS_SUITES_MAX + 1], id;
	size_t n = 0, len;
	char name[96];

	if (!cfg || !names)
		return -EINVAL;
	while (*names) {
		len = strcspn(names, ":, ");
		if (len) {
			if (len >= sizeof(name) || n == TLS_SUITES_MAX)
				return -EINVAL;
			memcpy(name, names, len);
			name[len] = 0;
			id = mbedtls_ssl_get_ciphersuite_id(name);
			if (!id)
				return -ENOENT;
			list[n++] = id;
		}
		names += len + (names[len] != 0);
	}
	if (!n)
		return -EINVAL;
	list[n] = 0;
	suites_set(cfg, list);
	return 0;
}

void tls_config_ref(struct tls_config *cfg)
{
	atomic_fetch_add(&cfg->refs, 1);
}

void tls_config_unref(struct tls_config *cfg)
{
	if (atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_ssl_ticket_free(&cfg->ticket);
	sodium_memzero(cfg->ticket_master, sizeof(cfg->ticket_master));
	mbedtls_x509_crt_free(&cfg->certs);
	mbedtls_pk_free(&cfg->key);
	mbedtls_ctr_drbg_free(&cfg->drbg);
	mbedtls_entropy_free(&cfg->entropy);
	free(cfg);
}

static int config_new(int endpoint, struct tls_config **out)
{
	static const char pers[] = "meshvpn-tls";
	struct tls_config *cfg = calloc(1, sizeof(*cfg));
	int r;

	if (!cfg)
		return -ENOMEM;
	atomic_init(&cfg->refs, 1);
	cfg->is_server = endpoint == MBEDTLS_SSL_IS_SERVER;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_entropy_init(&cfg->entropy);
	mbedtls_ctr_drbg_init(&cfg->drbg);
	mbedtls_ssl_ticket_init(&cfg->ticket);
	mbedtls_x509_crt_init(&cfg->certs);
	mbedtls_pk_init(&cfg->key);
	*out = cfg;
	r = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1);
	if (r)
		return -EIO;
	r = mbedtls_ssl_config_defaults(&cfg->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT);
	if (r)
		return -ENOMEM;
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	cfg->offload = offload_wanted();
	if (!cfg->offload)
		suites_set(cfg, ciphersuites);
	else
		suites_set(cfg, crypto_aead_aes256gcm_is_available() ? ciphersuites_aesni :
			   ciphersuites_chacha);
	mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
	/* After the handshake our records may not go through mbedtls: a second handshake
	 * would be invisible to it, so none is allowed (the peer's is refused). */
	mbedtls_ssl_conf_renegotiation(&cfg->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	mbedtls_ssl_conf_export_keys_ext_cb(&cfg->conf, tls_export_keys, NULL);
	return 0;
}

int tls_config_server_new(const char *cert_file, const char *key_file, struct tls_config **out)
{
	struct tls_config *cfg = NULL;
	char why[160];
	int r;

	if (!cert_file || !key_file || !out)
		return -EINVAL;
	r = config_new(MBEDTLS_SSL_IS_SERVER, &cfg);
	if (r < 0)
		goto err;
	r = mbedtls_x509_crt_parse_file(&cfg->certs, cert_file);
	if (r) {
		log_error("cannot load certificate", "file=%s err=%s", cert_file,
			  tls_mbed_err(r, why, sizeof(why)));
		r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
		goto err;
	}
	r = mbedtls_pk_parse_keyfile(&cfg->key, key_file, NULL);
	if (r) {
		log_error("cannot load key", "file=%s err=%s", key_file,
			  tls_mbed_err(r, why, sizeof(why)));
		r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
		goto err;
	}
	if (mbedtls_pk_check_pair(&cfg->certs.pk, &cfg->key)) {
		log_error("key does not match certificate", "cert=%s key=%s", cert_file, key_file);
		r = -EINVAL;
		goto err;
	}
	if (mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->certs, &cfg->key)) {
		r = -ENOMEM;
		goto err;
	}
	/* Each config has its own random ticket key unless the application gives one
	 * (tls_config_set_ticket_key): then a restarted server accepts old tickets too. */
	if (mbedtls_ssl_ticket_setup(&cfg->ticket, mbedtls_ctr_drbg_random, &cfg->drbg,
				     MBEDTLS_CIPHER_AES_256_GCM, TLS_TICKET_LIFETIME_S)) {
		r = -EIO;
		goto err;
	}
	mbedtls_ssl_conf_session_tickets_cb(&cfg->conf, mbedtls_ssl_ticket_write,
					    mbedtls_ssl_ticket_parse, &cfg->ticket);
	*out = cfg;
	return 0;

err:
	if (cfg)
		tls_config_unref(cfg);
	return r;
}

/* Identifies a set of trust anchors: a session verified under one bundle is not
 * offered under another. */
static int chain_hash(const mbedtls_x509_crt *crt, uint8_t out[32])
{
	mbedtls_sha256_context h;
	int r;

	mbedtls_sha256_init(&h);
	r = mbedtls_sha256_starts_ret(&h, 0);
	for (; !r && crt && crt->raw.len; crt = crt->next)
		r = mbedtls_sha256_update_ret(&h, crt->raw.p, crt->raw.len);
	if (!r)
		r = mbedtls_sha256_finish_ret(&h, out);
	mbedtls_sha256_free(&h);
	return r ? -EIO : 0;
}

int tls_config_client_new(const char *ca_file, const char *pin, struct tls_config **out)
{
	struct tls_config *cfg = NULL;
	char why[160];
	int r;

	if (!out)
		return -EINVAL;
	r = config_new(MBEDTLS_SSL_IS_CLIENT, &cfg);
	if (r < 0)
		goto err;
	if (pin) {
		r = tls_pin_parse(pin, cfg->pin);
		if (r < 0)
			goto err;
		cfg->has_pin = 1;
		memcpy(cfg->trust, cfg->pin, sizeof(cfg->trust));
		/* The chain is not checked (self-signed); the pin, checked after the
		 * handshake, is the trust. The handshake itself proves key possession. */
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	} else {
		if (!ca_file)
			ca_file = DEFAULT_CA_FILE;
		r = mbedtls_x509_crt_parse_file(&cfg->certs, ca_file);
		if (r < 0 || !cfg->certs.version) {
			/* r > 0 counts certificates that failed to parse: bundles may hold a
			 * few, but at least one must load. */
			log_error("cannot load CA certificates", "file=%s err=%s", ca_file,
				  r < 0 ? tls_mbed_err(r, why, sizeof(why)) : "\"no valid certificate\"");
			r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
			goto err;
		}
		r = chain_hash(&cfg->certs, cfg->trust);
		if (r < 0)
			goto err;
		mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->certs, NULL);
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	}
	mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	*out = cfg;
	return 0;

err:
	if (cfg)
		tls_config_unref(cfg);
	return r;
}

void tls_config_free(struct tls_config *cfg)
{
	if (cfg)
		tls_config_unref(cfg);
}

void tls_config_handshakes(const struct tls_config *cfg, uint64_t *full, uint64_t *resumed)
{
	*full = cfg ? atomic_load(&cfg->handshakes_full) : 0;
	*resumed = cfg ? atomic_load(&cfg->handshakes_resumed) : 0;
}

uint64_t tls_config_handshake_failures(const struct tls_config *cfg)
{
	return cfg ? atomic_load(&cfg->handshake_failures) : 0;
}
