/* ratelimit.c - per-source token buckets in a fixed, 4-way set-associative table keyed
 * by a keyed hash (libsodium's SipHash, a random key per table, so that nobody can aim
 * many sources at one set). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/addr.h"
#include "meshvpn/ratelimit.h"

#define WAYS 4
#define MILLI 1000u              /* tokens are kept in thousandths */

struct bucket {
	uint8_t key[RATELIMIT_KEY_LEN];
	uint64_t at_ms;              /* when tokens was last brought up to date */
	uint64_t tokens;             /* in thousandths */
	int used;
};

struct ratelimit {
	struct bucket *b;
	size_t nsets;                /* power of two */
	uint64_t burst;              /* thousandths */
	uint64_t per_minute;         /* tokens */
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

int ratelimit_new(size_t slots, unsigned burst, unsigned per_minute, struct ratelimit **out)
{
	struct ratelimit *rl;
	size_t n = WAYS;

	if (!out || !burst || !per_minute || slots > (SIZE_MAX >> 2))
		return -EINVAL;
	while (n < slots)
		n <<= 1;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	rl->b = calloc(n, sizeof(*rl->b));
	if (!rl->b) {
		free(rl);
		return -ENOMEM;
	}
	rl->nsets = n / WAYS;
	rl->burst = (uint64_t)burst * MILLI;
	rl->per_minute = per_minute;
	randombytes_buf(rl->hkey, sizeof(rl->hkey));
	*out = rl;
	return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->b);
	free(rl);
}

static void refill(const struct ratelimit *rl, struct bucket *b, uint64_t now_ms)
{
	uint64_t dt = now_ms > b->at_ms ? now_ms - b->at_ms : 0;
	uint64_t full_ms = rl->burst * 60 / rl->per_minute + 1;   /* from empty to full */

	/* per_minute tokens per 60,000 ms = per_minute thousandths per 60 ms; below full_ms
	 * the product stays under burst * 60, far from overflowing. */
	uint64_t add = dt >= full_ms ? rl->burst : dt * rl->per_minute / 60;

	if (!add)
		return;     /* keep at_ms: the time goes on counting, frequent calls or not */
	b->tokens += add;
	if (b->tokens > rl->burst)
		b->tokens = rl->burst;
	b->at_ms = now_ms;
}

int ratelimit_take(struct ratelimit *rl, const uint8_t key[RATELIMIT_KEY_LEN], uint64_t now_ms)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t hv;
	struct bucket *set, *b = NULL, *victim = NULL;

	crypto_shorthash(h, key, RATELIMIT_KEY_LEN, rl->hkey);
	memcpy(&hv, h, sizeof(hv));
	set = &rl->b[(hv & (rl->nsets - 1)) * WAYS];
	for (int i = 0; i < WAYS && !b; i++) {
		if (set[i].used && !memcmp(set[i].key, key, RATELIMIT_KEY_LEN))
			b = &set[i];
	}
	if (!b) {
		/* A free slot, else the fullest bucket (forgetting it costs its source the
		 * least: a fresh bucket is a full one), the longest unused among equals. */
		for (int i = 0; i < WAYS; i++) {
			if (!set[i].used) {
				victim = &set[i];
				break;
			}
			refill(rl, &set[i], now_ms);
			if (!victim || set[i].tokens > victim->tokens ||
			    (set[i].tokens == victim->tokens && set[i].at_ms < victim->at_ms))
				victim = &set[i];
		}
		b = victim;
		memcpy(b->key, key, RATELIMIT_KEY_LEN);
		b->used = 1;
		b->tokens = rl->burst;
		b->at_ms = now_ms;
	}
	refill(rl, b, now_ms);
	if (b->tokens < MILLI)
		return -EAGAIN;
	b->tokens -= MILLI;
	return 0;
}

int ratelimit_source_key(const char *peer, uint8_t key[RATELIMIT_KEY_LEN])
{
	struct addr_port a;

	memset(key, 0, RATELIMIT_KEY_LEN);
	if (!peer || addr_parse(peer, strlen(peer), ADDR_ZONE | ADDR_PORT0, &a))
		return -EINVAL;
	if (a.family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a.v4, 4);
		return 0;
	}
	memcpy(key, &a.v6, 8);
	if (IN6_IS_ADDR_V4MAPPED(&a.v6))
		memcpy(key, &a.v6, 16);   /* a dual-stack socket's IPv4 peer: the whole address */
	return 0;
}
