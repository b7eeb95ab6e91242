/* stun_server.h - the relay's STUN server (RFC 8489 Binding over UDP, RFC 3489 clients
 * too): answers each Binding request with the source address it came from, drops what is
 * malformed, and limits replies per source so that it cannot serve as an amplifier. */
#ifndef RELAY_STUN_SERVER_H
#define RELAY_STUN_SERVER_H

#include <stdint.h>
#include <uv.h>

/* Counters for --metrics. */
struct stun_stats {
	uint64_t requests;                /* Binding requests parsed */
	uint64_t responses;               /* replies sent (success and 420) */
	uint64_t malformed;               /* datagrams that are not STUN (stun_parse failed) */
	uint64_t ignored;                 /* valid STUN but not a Binding request: no reply */
	uint64_t rate_limited;            /* requests not answered: the source is over its rate */
	uint64_t send_errors;             /* replies the socket would not take */
};

#define STUN_SERVER_RATE 20               /* replies per second per source ... */
#define STUN_SERVER_BURST 40              /* ... after a burst of */

struct stun_server;

/* Listens on hostport ("[::]:3478", "0.0.0.0:3478", "127.0.0.1:0", ":3478"): an empty host
 * or "::" is one dual-stack socket, or IPv4 alone where the host has no IPv6. Host must be
 * an IP literal. 0 and *out, or a negative errno (nothing left open). */
int stun_server_start(uv_loop_t *loop, const char *hostport, struct stun_server **out);
/* Closes the socket; the server is freed once libuv has closed it. NULL is a no-op. */
void stun_server_stop(struct stun_server *s);
const struct stun_stats *stun_server_stats(const struct stun_server *s);
/* The bound port (useful after port 0). */
uint16_t stun_server_port(const struct stun_server *s);

#endif
