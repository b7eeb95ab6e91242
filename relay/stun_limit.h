/* stun_limit.h - per-source token buckets for the STUN server's replies, in a table of
 * fixed size: a flood of spoofed sources evicts the stalest entries and never grows
 * memory, so the server cannot be turned into an amplifier. Pure (time is passed in). */
#ifndef RELAY_STUN_LIMIT_H
#define RELAY_STUN_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/addr.h"

#define STUN_LIMIT_WAYS 8                 /* entries per set, searched linearly */
#define STUN_LIMIT_SETS 1024              /* 8192 sources, 256 KiB */

struct stun_limit_entry {
	uint8_t key[16];                  /* IPv4 as v4-mapped; IPv6 as its /64 */
	uint64_t last_ms;                 /* 0 = free */
	uint32_t millitokens;
};

struct stun_limit {
	uint32_t rate;                    /* tokens (replies) per second */
	uint32_t burst;
	uint32_t seed;                    /* keys the set choice */
	size_t used;
	struct stun_limit_entry e[STUN_LIMIT_SETS][STUN_LIMIT_WAYS];
};

/* rate replies per second after a burst of burst; seed picks the hash. */
void stun_limit_init(struct stun_limit *l, uint32_t rate, uint32_t burst, uint32_t seed);
/* Takes a token for src's address (the port does not matter) at now_ms (> 0, not going
 * back): 1 when a reply may go, 0 when src is over its rate. */
int stun_limit_allow(struct stun_limit *l, const struct addr_port *src, uint64_t now_ms);
/* Entries in use (at most STUN_LIMIT_SETS * STUN_LIMIT_WAYS). */
size_t stun_limit_used(const struct stun_limit *l);

#endif
