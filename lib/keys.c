/* keys.c - node identity and small secret helpers on libsodium: X25519 (WireGuard,
 * disco), Ed25519 (machine key), SHA-256 for stored secrets, constant-time compare. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/file.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"

int keys_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

void key_x25519_generate(uint8_t pub[KEY_LEN], uint8_t priv[KEY_LEN])
{
	randombytes_buf(priv, KEY_LEN);
	/* WireGuard clamps too; clamping here keeps the stored form canonical. */
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
}

int key_to_base64(const uint8_t key[KEY_LEN], char out[KEY_B64_LEN])
{
	sodium_bin2base64(out, KEY_B64_LEN, key, KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

int key_from_base64(const char *s, uint8_t key[KEY_LEN])
{
	size_t n = 0;
	const char *end = NULL;

	if (!s || strlen(s) != KEY_B64_LEN - 1 || s[KEY_B64_LEN - 2] != '=')
		return -EINVAL;
	if (sodium_base642bin(key, KEY_LEN, s, KEY_B64_LEN - 1, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) || n != KEY_LEN || *end)
		return -EINVAL;
	return 0;
}

int key_is_zero(const uint8_t key[KEY_LEN])
{
	return sodium_is_zero(key, KEY_LEN);
}

int node_keys_generate(struct node_keys *k)
{
	key_x25519_generate(k->node_pub, k->node_priv);
	key_x25519_generate(k->disco_pub, k->disco_priv);
	crypto_sign_keypair(k->machine_pub, k->machine_sec);
	return 0;
}

void node_keys_wipe(struct node_keys *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* The file holds the three private keys as base64 lines; public keys are derived.
 * file_replace: a fresh 0600 temporary (O_EXCL, O_NOFOLLOW) renamed over, whatever was
 * there before. */
static int keys_write(const char *dir, const struct node_keys *k)
{
	char path[4096], node[KEY_B64_LEN], disco[KEY_B64_LEN], seed[KEY_B64_LEN];
	char text[256];
	struct iovec iov;
	int n, rc;

	if (snprintf(path, sizeof(path), "%s/keys", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	key_to_base64(k->node_priv, node);
	key_to_base64(k->disco_priv, disco);
	key_to_base64(k->machine_sec, seed); /* first 32 bytes: the Ed25519 seed */
	n = snprintf(text, sizeof(text), "node %s\ndisco %s\nmachine %s\n", node, disco, seed);
	iov.iov_base = text;
	iov.iov_len = (size_t)n;
	rc = file_replace(path, &iov, 1, 0600, NULL);
	sodium_memzero(text, sizeof(text));
	sodium_memzero(node, sizeof(node));
	sodium_memzero(disco, sizeof(disco));
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

int node_keys_load(const char *dir, int create, struct node_keys *k)
{
	char path[4096], text[512], node[64], disco[64], machine[64];
	uint8_t seed[KEY_LEN];
	ssize_t n;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/keys", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		if (!create)
			return -ENOENT;
		node_keys_generate(k);
		rc = keys_write(dir, k);
		if (rc)
			node_keys_wipe(k);
		return rc;
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0) {
		rc = -EINVAL;
		goto out;
	}
	text[n] = 0;
	if (sscanf(text, "node %63s disco %63s machine %63s", node, disco, machine) != 3 ||
	    key_from_base64(node, k->node_priv) || key_from_base64(disco, k->disco_priv) ||
	    key_from_base64(machine, seed)) {
		rc = -EINVAL;
		goto out;
	}
	crypto_scalarmult_base(k->node_pub, k->node_priv);
	crypto_scalarmult_base(k->disco_pub, k->disco_priv);
	crypto_sign_seed_keypair(k->machine_pub, k->machine_sec, seed);
out:
	sodium_memzero(text, sizeof(text));
	sodium_memzero(node, sizeof(node));
	sodium_memzero(disco, sizeof(disco));
	sodium_memzero(machine, sizeof(machine));
	sodium_memzero(seed, sizeof(seed));
	if (rc)
		node_keys_wipe(k);
	return rc;
}

int node_keys_rotate(const char *dir, struct node_keys *k)
{
	key_x25519_generate(k->node_pub, k->node_priv);
	return keys_write(dir, k);
}

int node_keys_remove(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/keys", dir);
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

int keys_sign(const uint8_t sec[SIGN_SECRET_LEN], const void *msg, size_t len, uint8_t sig[SIG_LEN])
{
	return crypto_sign_detached(sig, NULL, msg, len, sec) ? -EIO : 0;
}

int keys_verify(const uint8_t pub[KEY_LEN], const void *msg, size_t len, const uint8_t sig[SIG_LEN])
{
	return crypto_sign_verify_detached(sig, msg, len, pub) ? -EPERM : 0;
}

void keys_hash(const void *p, size_t len, uint8_t out[HASH_LEN])
{
	crypto_hash_sha256(out, p, len);
}

void hex_encode(const uint8_t *p, size_t len, char *out)
{
	sodium_bin2hex(out, 2 * len + 1, p, len);
}

int hex_decode(const char *s, uint8_t *out, size_t len)
{
	size_t n = 0;
	const char *end = NULL;

	if (strlen(s) != 2 * len)
		return -EINVAL;
	if (sodium_hex2bin(out, len, s, 2 * len, NULL, &n, &end) || n != len || *end)
		return -EINVAL;
	return 0;
}

void keys_random_token(const char *prefix, char *out, size_t size)
{
	uint8_t raw[24];
	char hex[49];

	randombytes_buf(raw, sizeof(raw));
	hex_encode(raw, sizeof(raw), hex);
	snprintf(out, size, "%s%s", prefix, hex);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
}

int keys_equal_ct(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len) ? -1 : 0;
}
