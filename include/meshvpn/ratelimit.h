/* ratelimit.h - token buckets per traffic source (an IPv4 address, an IPv6 /64) in a
 * table of fixed size: what a server uses so that one anonymous client cannot take
 * what is meant for everyone. Memory never grows with the number of sources: when the
 * table is full, the bucket with the most tokens (the one that forgets least) goes. */
#ifndef MESHVPN_RATELIMIT_H
#define MESHVPN_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_LEN 16

struct ratelimit;

/* slots: table size (rounded up to a power of two, at least 4); a source may take burst
 * at once, then per_minute a minute (both > 0). 0, -EINVAL or -ENOMEM. */
int ratelimit_new(size_t slots, unsigned burst, unsigned per_minute, struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);
/* Takes one token for key at now_ms (a monotonic clock): 0, or -EAGAIN when its bucket
 * is empty. */
int ratelimit_take(struct ratelimit *rl, const uint8_t key[RATELIMIT_KEY_LEN], uint64_t now_ms);

/* The source of a peer as lib/conn names it ("192.0.2.7:41641", "[2001:db8::1]:443"):
 * IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64 (one host's usual share). 0 or -EINVAL
 * (then key is all zero: every unparsable peer shares one source). */
int ratelimit_source_key(const char *peer, uint8_t key[RATELIMIT_KEY_LEN]);

#endif
