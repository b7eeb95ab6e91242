/* keymap.c - linear probing with backward-shift deletion (no tombstones), see keymap.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "meshvpn/keymap.h"

static size_t home(const uint8_t key[KEYMAP_KEY_LEN], size_t cap)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	/* Keys are random or hashes, but mix anyway so structured test keys spread too. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h & (cap - 1);
}

void keymap_init(struct keymap *m)
{
	memset(m, 0, sizeof(*m));
}

void keymap_free(struct keymap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static int grow(struct keymap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	struct keymap_slot *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key)
			continue;
		size_t j = home(m->slots[i].key, ncap);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

static ssize_t find(const struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN])
{
	if (!m->cap)
		return -1;
	for (size_t i = home(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].key)
			return -1;
		if (!memcmp(m->slots[i].key, key, KEYMAP_KEY_LEN))
			return (ssize_t)i;
	}
}

int keymap_put(struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN], void *value)
{
	size_t i;

	if (find(m, key) >= 0)
		return -EEXIST;
	if ((m->count + 1) * 4 > m->cap * 3 && grow(m))
		return -ENOMEM;
	i = home(key, m->cap);
	while (m->slots[i].key)
		i = (i + 1) & (m->cap - 1);
	m->slots[i].key = key;
	m->slots[i].value = value;
	m->count++;
	return 0;
}

void *keymap_get(const struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN])
{
	ssize_t i = find(m, key);

	return i < 0 ? NULL : m->slots[i].value;
}

int keymap_del(struct keymap *m, const uint8_t key[KEYMAP_KEY_LEN])
{
	ssize_t found = find(m, key);
	size_t i, j;

	if (found < 0)
		return -ENOENT;
	i = (size_t)found;
	m->slots[i].key = NULL;
	m->count--;
	/* Shift back later members of the run whose home is at or before the hole. */
	for (j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
		size_t h = home(m->slots[j].key, m->cap);
		int movable = (i <= j) ? (h <= i || h > j) : (h <= i && h > j);
		if (movable) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return 0;
}

size_t keymap_count(const struct keymap *m)
{
	return m->count;
}
