/* backoff.c - exponential reconnect backoff with jitter (libsodium's uniform random). */
#include <sodium.h>

#include "meshvpn/backoff.h"

uint64_t backoff_next(uint64_t *cur_ms, uint64_t max_ms)
{
	/* 0.75 .. 1.25 of the backoff, so that clients cut off together do not come back
	 * together. */
	uint64_t base = *cur_ms, delay;

	delay = base * 3 / 4 + randombytes_uniform((uint32_t)(base / 2 + 1));
	*cur_ms = base * 2 > max_ms ? max_ms : base * 2;
	return delay;
}

uint64_t backoff_spread(uint64_t window_ms)
{
	if (window_ms >= UINT32_MAX)
		window_ms = UINT32_MAX - 1;
	return randombytes_uniform((uint32_t)window_ms + 1);
}
