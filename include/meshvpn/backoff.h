/* backoff.h - the reconnect delay of every client that retries (line_stream, relay_client):
 * exponential, capped, with jitter so that clients cut off together do not return together. */
#ifndef MESHVPN_BACKOFF_H
#define MESHVPN_BACKOFF_H

#include <stdint.h>

/* The next delay (ms): 0.75 .. 1.25 of *cur_ms; doubles *cur_ms up to max_ms. */
uint64_t backoff_next(uint64_t *cur_ms, uint64_t max_ms);
/* Uniform in 0..window_ms: a first retry spread over a window of its own. */
uint64_t backoff_spread(uint64_t window_ms);

#endif
