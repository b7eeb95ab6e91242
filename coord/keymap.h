/* keymap.h - open-addressing hash map from 32-byte keys (public keys, SHA-256 hashes)
 * to pointers; the keys are already uniformly random, so their first bytes are the hash. */
#ifndef COORD_KEYMAP_H
#define COORD_KEYMAP_H

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

void keymap_init(struct keymap *m);
void keymap_free(struct keymap *m);
/* key must stay valid while present (it normally lives in value). -EEXIST, -ENOMEM. */
int keymap_put(struct keymap *m, const uint8_t key[32], void *value);
void *keymap_get(const struct keymap *m, const uint8_t key[32]);
int keymap_del(struct keymap *m, const uint8_t key[32]);

#endif
