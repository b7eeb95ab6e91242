/* keymap.h - open-addressing hash map from 32-byte keys (public keys, SHA-256 hashes)
 * to pointers, for coord's node indexes and the relay's key -> connection table. The
 * keys are already uniformly random, so their first bytes are (mixed into) the hash. */
#ifndef MESHVPN_KEYMAP_H
#define MESHVPN_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

struct keymap_slot {
	const uint8_t *key;   /* points into the value; NULL = empty */
	void *value;
};

struct keymap {
	struct keymap_slot *slots;
	size_t cap;           /* power of two */
	size_t count;
};

#define KEYMAP_KEY_LEN 32

void keymap_init(struct keymap *m);
/* Frees the table, not the values. */
void keymap_free(struct keymap *m);
/* The key is not copied: it must stay valid while present (it normally lives in value).
 * 0, -EEXIST (the key is present; the old value stays), -ENOMEM. */
int keymap_put(struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN], void *value);
/* The value, or NULL. */
void *keymap_get(const struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN]);
/* 0 or -ENOENT. */
int keymap_del(struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN]);
/* Number of keys present. */
size_t keymap_count(const struct keymap *m);

#endif
