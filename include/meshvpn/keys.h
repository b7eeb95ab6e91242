/* keys.h - node identity: X25519 node and disco keys, Ed25519 machine key (libsodium). */
#ifndef MESHVPN_KEYS_H
#define MESHVPN_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32          /* X25519 public or private key, Ed25519 public key */
#define SIGN_SECRET_LEN 64  /* Ed25519 secret key (seed + public) */
#define SIG_LEN 64
#define KEY_B64_LEN 45      /* 44 base64 characters + NUL, as wg(8) prints keys */
#define HASH_LEN 32

struct node_keys {
	uint8_t node_pub[KEY_LEN], node_priv[KEY_LEN];       /* WireGuard */
	uint8_t disco_pub[KEY_LEN], disco_priv[KEY_LEN];     /* disco NaCl box */
	uint8_t machine_pub[KEY_LEN], machine_sec[SIGN_SECRET_LEN]; /* proves who registers */
};

/* sodium_init(); returns 0 or -EIO. Safe to call more than once. */
int keys_init(void);

void key_x25519_generate(uint8_t pub[KEY_LEN], uint8_t priv[KEY_LEN]);
int key_to_base64(const uint8_t key[KEY_LEN], char out[KEY_B64_LEN]);
/* Accepts exactly 44 characters of standard base64 decoding to 32 bytes; -EINVAL otherwise. */
int key_from_base64(const char *s, uint8_t key[KEY_LEN]);
int key_is_zero(const uint8_t key[KEY_LEN]);

/* New random keys (node, disco, machine). */
int node_keys_generate(struct node_keys *k);
/* Loads DIR/keys (0600) or, when absent and create is set, generates and writes it
 * atomically. -ENOENT when absent and !create; -EINVAL when the file is corrupt. */
int node_keys_load(const char *dir, int create, struct node_keys *k);
int node_keys_remove(const char *dir);
/* A new node key (re-authentication after expiry); disco and machine keys stay. */
int node_keys_rotate(const char *dir, struct node_keys *k);
void node_keys_wipe(struct node_keys *k);

int keys_sign(const uint8_t sec[SIGN_SECRET_LEN], const void *msg, size_t len, uint8_t sig[SIG_LEN]);
/* 0 when sig is a valid signature of msg by pub; -EPERM otherwise. */
int keys_verify(const uint8_t pub[KEY_LEN], const void *msg, size_t len, const uint8_t sig[SIG_LEN]);

/* SHA-256 (for stored secrets: auth keys, tokens). */
void keys_hash(const void *p, size_t len, uint8_t out[HASH_LEN]);
/* A random secret as text: prefix + 48 hex characters; out needs strlen(prefix)+49. */
void keys_random_token(const char *prefix, char *out, size_t size);
/* Constant-time comparison; 0 when equal. */
int keys_equal_ct(const void *a, const void *b, size_t len);
void hex_encode(const uint8_t *p, size_t len, char *out /* 2*len+1 */);
int hex_decode(const char *s, uint8_t *out, size_t len);

#endif
