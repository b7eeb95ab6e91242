/* tls_cert.c - self-signed ECDSA P-256 X.509 v3 certificates (RFC 5280) and SHA-256 pins of their SPKI (as RFC 7469). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "tls_int.h"

#define PIN_PREFIX "sha256:"
#define VALID_YEARS 10

/* Writes path atomically: a temporary file in the same directory, synced, renamed over. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *p = data;
	int fd, r = 0, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto err_unlink;
	}
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto err_unlink;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto err_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto err_unlink;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

/* mbedtls parses the subject as "CN=..." with ',' '=' '\' as syntax: allow names only. */
static int cn_ok(const char *cn)
{
	size_t n = strlen(cn);

	if (!n || n > 64)
		return 0;
	for (const char *p = cn; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == '_' || *p == ':' || *p == '*'))
			return 0;
	return 1;
}

/* A host name that may name the certificate: dot-separated labels of letters, digits
 * and '-' (not at either end), 1..63 each, 64 in all (cn_ok's bound). What gethostname()
 * gives is not always one: "(none)" is the kernel's default in an initramfs or a bare
 * container, and a daemon must start there all the same. */
static int host_cn_ok(const char *h)
{
	size_t n = strlen(h), label = 0;

	if (!n || n > 64 || h[0] == '.' || h[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];
		if (ch == '.') {
			if (!label || h[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      (ch == '-' && label)) || ++label > 63)
			return 0;
	}
	return h[n - 1] != '-';
}

/* subjectAltName = SEQUENCE { dNSName [2] IA5String }. Only for names: mbedtls 2.28
 * checks host names against SAN dNSNames alone once a SAN is present and cannot
 * match iPAddress entries, so an IP address stays in the CN where it can match. */
static int set_san_dns(mbedtls_x509write_cert *crt, const char *name)
{
	unsigned char buf[128], *p = buf + sizeof(buf);
	size_t n = strlen(name);
	int len = 0, r;

	if (n > 64)
		return -EINVAL;
	p -= n;
	memcpy(p, name, n);
	len += (int)n;
	if ((r = mbedtls_asn1_write_len(&p, buf, n)) < 0)
		return -EINVAL;
	len += r;
	if ((r = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) < 0)
		return -EINVAL;
	len += r;
	if ((r = mbedtls_asn1_write_len(&p, buf, (size_t)len)) < 0)
		return -EINVAL;
	len += r;
	if ((r = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
		return -EINVAL;
	len += r;
	if (mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
						MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
						p, (size_t)len))
		return -ENOMEM;
	return 0;
}

static void fmt_time(time_t t, char out[15])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

int tls_selfsigned_create(const char *cert_path, const char *key_path, const char *common_name)
{
	static const char pers[] = "meshvpn-selfsigned";
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context key;
	mbedtls_x509write_cert crt;
	mbedtls_mpi serial;
	unsigned char serial_raw[16];
	unsigned char key_pem[1024], cert_pem[2048];
	char subject[80], from[15], to[15];
	unsigned char a[16];
	time_t now = time(NULL);
	int r;

	if (!cert_path || !key_path || !common_name || !cn_ok(common_name))
		return -EINVAL;
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_pk_init(&key);
	mbedtls_x509write_crt_init(&crt);
	mbedtls_mpi_init(&serial);

	r = -EIO;
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1))
		goto out;
	r = -ENOMEM;
	if (mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)))
		goto out;
	r = -EIO;
	if (mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
				mbedtls_ctr_drbg_random, &drbg))
		goto out;

	/* A positive 127-bit random serial (RFC 5280 4.1.2.2: at most 20 octets). */
	if (mbedtls_ctr_drbg_random(&drbg, serial_raw, sizeof(serial_raw)))
		goto out;
	serial_raw[0] &= 0x7f;
	serial_raw[0] |= 0x40;
	if (mbedtls_mpi_read_binary(&serial, serial_raw, sizeof(serial_raw)))
		goto out;

	fmt_time(now - 24 * 3600, from);
	{
		struct tm tm;
		gmtime_r(&now, &tm);
		tm.tm_year += VALID_YEARS;   /* timegm normalises 29 February */
		fmt_time(timegm(&tm), to);
	}
	snprintf(subject, sizeof(subject), "CN=%s", common_name);

	r = -EINVAL;
	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, &key);
	mbedtls_x509write_crt_set_issuer_key(&crt, &key);
	if (mbedtls_x509write_crt_set_subject_name(&crt, subject) ||
	    mbedtls_x509write_crt_set_issuer_name(&crt, subject) ||
	    mbedtls_x509write_crt_set_serial(&crt, &serial) ||
	    mbedtls_x509write_crt_set_validity(&crt, from, to) ||
	    mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1) ||
	    mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) ||
	    mbedtls_x509write_crt_set_subject_key_identifier(&crt))
		goto out;
	if (uv_inet_pton(AF_INET, common_name, a) && uv_inet_pton(AF_INET6, common_name, a) &&
	    set_san_dns(&crt, common_name) < 0)
		goto out;

	r = -EIO;
	if (mbedtls_pk_write_key_pem(&key, key_pem, sizeof(key_pem)))
		goto out;
	if (mbedtls_x509write_crt_pem(&crt, cert_pem, sizeof(cert_pem), mbedtls_ctr_drbg_random, &drbg))
		goto out;

	/* Key first: a certificate on disk always has its key next to it. */
	r = write_atomic(key_path, key_pem, strlen((char *)key_pem), 0600);
	if (r < 0) {
		log_error("cannot write key", "file=%s err=\"%s\"", key_path, strerror(-r));
		goto out;
	}
	r = write_atomic(cert_path, cert_pem, strlen((char *)cert_pem), 0644);
	if (r < 0) {
		log_error("cannot write certificate", "file=%s err=\"%s\"", cert_path, strerror(-r));
		goto out;
	}
	log_info("created self-signed certificate", "cert=%s key=%s cn=%s", cert_path, key_path,
		 common_name);
	r = 0;

out:
	mbedtls_platform_zeroize(key_pem, sizeof(key_pem));
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&crt);
	mbedtls_pk_free(&key);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return r;
}

/* The same bytes for a certificate file and for a TLS peer: the leaf's key, re-encoded
 * as SubjectPublicKeyInfo DER. */
int tls_cert_spki_hash(const mbedtls_x509_crt *crt, uint8_t out[32])
{
	unsigned char der[2048];   /* an RSA-8192 key's SPKI is ~1.1 KB */
	int n;

	/* mbedtls writes the DER at the end of the buffer. */
	n = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&crt->pk, der, sizeof(der));
	if (n <= 0)
		return -EINVAL;
	if (mbedtls_sha256_ret(der + sizeof(der) - n, (size_t)n, out, 0))
		return -EIO;
	return 0;
}

int tls_cert_pin(const char *cert_path, char out[TLS_PIN_LEN])
{
	mbedtls_x509_crt crt;
	uint8_t hash[32];
	int r;

	mbedtls_x509_crt_init(&crt);
	r = mbedtls_x509_crt_parse_file(&crt, cert_path);
	if (r) {
		r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
		goto out;
	}
	r = tls_cert_spki_hash(&crt, hash);
	if (r < 0)
		goto out;
	memcpy(out, PIN_PREFIX, sizeof(PIN_PREFIX) - 1);
	hex_encode(hash, sizeof(hash), out + sizeof(PIN_PREFIX) - 1);
	r = 0;
out:
	mbedtls_x509_crt_free(&crt);
	return r;
}

int tls_pin_parse(const char *pin, uint8_t out[32])
{
	const char *h;
	uint8_t v[32];

	if (!pin || strlen(pin) != TLS_PIN_LEN - 1 ||
	    strncmp(pin, PIN_PREFIX, sizeof(PIN_PREFIX) - 1))
		return -EINVAL;
	h = pin + sizeof(PIN_PREFIX) - 1;
	if (hex_decode(h, v, sizeof(v)))
		return -EINVAL;
	memcpy(out, v, sizeof(v));
	return 0;
}

int tls_server_setup(const char *prog, const char *dir, const char *cert, const char *key,
		     struct tls_config **out, char pin[TLS_PIN_LEN], int *self_signed)
{
	char cpath[4096], kpath[4096];
	int rc;

	*self_signed = !cert;
	if (!cert) {
		snprintf(cpath, sizeof(cpath), "%s/tls.crt", dir);
		snprintf(kpath, sizeof(kpath), "%s/tls.key", dir);
		if (access(cpath, R_OK) || access(kpath, R_OK)) {
			char host[256] = "";

			if (gethostname(host, sizeof(host) - 1) || !host_cn_ok(host))
				snprintf(host, sizeof(host), "meshvpn-%s", prog);
			rc = tls_selfsigned_create(cpath, kpath, host);
			if (rc) {
				fprintf(stderr, "%s: cannot create a self-signed certificate in %s: %s\n",
					prog, dir, strerror(-rc));
				return rc;
			}
			log_info("self-signed certificate created", "cert=%s", cpath);
		}
		cert = cpath;
		key = kpath;
	}
	rc = tls_config_server_new(cert, key, out);
	if (rc) {
		fprintf(stderr, "%s: cannot load certificate %s / key %s: %s\n", prog, cert, key,
			strerror(-rc));
		return rc;
	}
	pin[0] = 0;
	if (!tls_cert_pin(cert, pin)) {
		printf("%s: certificate pin %s\n", prog, pin);
		log_info("certificate", "pin=%s", pin);
	}
	return 0;
}
