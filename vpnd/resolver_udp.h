/* resolver_udp.h - the resolver's client-side UDP sockets (resolver_udp.c): a plain
 * non-blocking socket watched by a uv_poll_t, drained with recvmmsg in batches and
 * answered with sendmmsg once per batch. On loopback and over the tunnel a query's cost is
 * mostly the kernel's (a recvmsg and a sendmsg each through libuv); batching makes that
 * two system calls per batch instead of per query. */
#ifndef VPND_RESOLVER_UDP_H
#define VPND_RESOLVER_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "meshvpn/addr.h"

#define RS_UDP_BATCH 64                  /* datagrams per recvmmsg / sendmmsg */
#define RS_UDP_ROUNDS 4                  /* batches per readable event: the loop stays fair */
#define RS_UDP_QUERY_MAX 4096            /* a longer query is dropped (MSG_TRUNC) */

struct rs_udp;

/* One query: msg (len bytes) from `from`. Answers given to rs_udp_send during the call go
 * out with the batch. */
typedef void (*rs_udp_cb)(void *arg, struct rs_udp *u, const uint8_t *msg, size_t len,
			  const struct sockaddr *from);

/* A socket bound to bind_to (UDP, non-blocking, close-on-exec), its queries to cb. 0 or a
 * negative errno (libuv's error codes on Linux: uv_strerror takes it). */
int rs_udp_open(uv_loop_t *loop, const struct addr_port *bind_to, rs_udp_cb cb, void *arg,
		struct rs_udp **out);
/* Stops reading; the socket and u go when the loop has closed the poll handle. */
void rs_udp_close(struct rs_udp *u);
/* msg to `to` from u: into the batch being answered when it is u's (and it fits), else
 * sent at once. Dropped when the kernel cannot take it now (UDP: the client asks again). */
void rs_udp_send(struct rs_udp *u, const struct addr_port *to, const uint8_t *msg, size_t len);
/* The bound address (port 0 binds show which port they got). 0 or -errno. */
int rs_udp_sockname(const struct rs_udp *u, struct sockaddr_storage *ss);

/* What the batches did (resolver_stats_json): system calls and datagrams. */
struct rs_udp_stats {
	uint64_t recv_calls, recv_msgs, send_calls, send_msgs, send_drops, truncated;
};
const struct rs_udp_stats *rs_udp_stats(void);

#endif
