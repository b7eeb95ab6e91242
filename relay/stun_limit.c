/* stun_limit.c - fixed-size table of per-source token buckets (see stun_limit.h). */
#include "stun_limit.h"

#include <string.h>

void stun_limit_init(struct stun_limit *l, uint32_t rate, uint32_t burst, uint32_t seed)
{
	memset(l, 0, sizeof(*l));
	l->rate = rate;
	l->burst = burst;
	l->seed = seed;
}

/* One key per victim a reply could hit: the IPv4 address, or the IPv6 /64 (one host may
 * hold a whole /64, so per-address buckets would multiply its share). */
static void source_key(const struct addr_port *src, uint8_t key[16])
{
	memset(key, 0, 16);
	if (src->family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &src->v4, 4);
	} else {
		memcpy(key, src->v6.s6_addr, 8);
	}
}

/* FNV-1a over the key, mixed with the seed: spreads sources over the sets. */
static size_t set_of(const struct stun_limit *l, const uint8_t key[16])
{
	uint32_t h = 2166136261u ^ l->seed;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	h ^= h >> 15;
	return h % STUN_LIMIT_SETS;
}

int stun_limit_allow(struct stun_limit *l, const struct addr_port *src, uint64_t now_ms)
{
	const uint32_t full = l->burst * 1000;
	struct stun_limit_entry *set, *e = NULL, *stalest;
	uint8_t key[16];
	uint64_t refill;

	source_key(src, key);
	set = l->e[set_of(l, key)];
	stalest = &set[0];
	for (int i = 0; i < STUN_LIMIT_WAYS; i++) {
		if (set[i].last_ms && !memcmp(set[i].key, key, 16)) {
			e = &set[i];
			break;
		}
		if (set[i].last_ms < stalest->last_ms)
			stalest = &set[i];
	}
	if (!e) {
		/* A new source takes the stalest way (a free one has last_ms 0). */
		e = stalest;
		if (!e->last_ms)
			l->used++;
		memcpy(e->key, key, 16);
		e->millitokens = full;
	} else if (now_ms > e->last_ms) {
		refill = (now_ms - e->last_ms) * l->rate;   /* ms * tokens/s = millitokens */
		e->millitokens = refill >= full - e->millitokens ? full :
			e->millitokens + (uint32_t)refill;
	}
	if (now_ms > e->last_ms)
		e->last_ms = now_ms;
	if (e->millitokens < 1000)
		return 0;
	e->millitokens -= 1000;
	return 1;
}

size_t stun_limit_used(const struct stun_limit *l)
{
	return l->used;
}
