/* rawsock.h - sharing WireGuard's UDP port (DESIGN.md flow 4). WireGuard (kernel or
 * wireguard-go) keeps its own socket on the port; vpnd sends STUN requests and disco
 * messages *from* that port through raw sockets (IPv4 and IPv6), so NATs map them as
 * they map WireGuard's traffic, and receives the replies through raw sockets whose
 * classic BPF filter lets through only UDP to that port carrying a STUN magic cookie or
 * the disco magic (no fragments; the real IPv4 header length). WireGuard also receives
 * those packets and drops them as not its own.
 *
 * The packet parser (rawsock_parse_*) and the filter builder are pure and fuzzed
 * (tests/fuzz/fuzz_rawsock.c); the sockets run on the caller's libuv loop. */
#ifndef VPND_RAWSOCK_H
#define VPND_RAWSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>
#include <uv.h>

#include "meshvpn/addr.h"

enum rawsock_kind {
	RAWSOCK_STUN = 1,            /* STUN: magic cookie at payload offset 4 */
	RAWSOCK_DISCO = 2,           /* starts with DISCO_MAGIC */
};

/* A received datagram as the parser found it (payload points into the buffer given). */
struct rawsock_pkt {
	struct addr_port src;        /* the sender's address and UDP port */
	struct addr_port dst;        /* ours (IPv4: from the header; IPv6: family and port
				      * only unless the caller fills the address) */
	enum rawsock_kind kind;
	const uint8_t *payload;
	size_t len;
};

/* Pure: an IPv4 packet as an AF_INET raw socket delivers it (IP header first). Checks
 * version 4, IHL >= 5 and within len, total length, protocol UDP, no fragment (MF set or
 * offset non-zero), UDP length, destination port == port, and the payload kind. 0, or
 * -EBADMSG / -ENOMSG (well formed but not ours: another port or kind, not UDP, a
 * fragment); *out is zeroed on either. Total length and UDP length must match len
 * exactly (the kernel trims link padding). STUN: a whole 20-byte header, top bits 0,
 * the cookie; disco: the magic and room for DISCO_HEADER_LEN + DISCO_MAC_LEN. */
int rawsock_parse_ip4(const uint8_t *p, size_t len, uint16_t port, struct rawsock_pkt *out);
/* Pure: what an AF_INET6 raw socket delivers (the UDP header first: the kernel strips
 * the IPv6 header and extension headers, and the source comes from recvfrom: src, whose
 * sin6_port is 0 — the port is taken from the UDP header). Same checks from the UDP
 * header on; a src that is not AF_INET6 is -EBADMSG. Its BPF filter sees the same bytes:
 * offset 0 is the UDP header (checked in a namespace; see rawsock.c). */
int rawsock_parse_udp6(const uint8_t *p, size_t len, const struct addr_port *src,
		       uint16_t port, struct rawsock_pkt *out);
/* Pure: the classic BPF program for family (AF_INET / AF_INET6) and port into prog (room
 * for max instructions). Count, or -ENOSPC / -EAFNOSUPPORT. */
int rawsock_filter(int family, uint16_t port, struct sock_filter *prog, size_t max);
/* Pure: the UDP datagram (header + payload) to send from sport to dst through a raw
 * socket; the IPv4 checksum is computed over the pseudo-header when src4 is given (else
 * 0, which IPv4 allows); for IPv6 the kernel fills it (IPV6_CHECKSUM). Length, -ENOSPC,
 * or -EAFNOSUPPORT for a dst that is neither IPv4 nor IPv6. */
int rawsock_build_udp(uint16_t sport, const struct addr_port *dst, const struct in_addr *src4,
		      const void *payload, size_t len, uint8_t *out, size_t size);

struct rawsock;
typedef void (*rawsock_cb)(struct rawsock *rs, const struct rawsock_pkt *pkt, void *arg);

struct rawsock_stats {
	uint64_t received;           /* passed the filter and the parser */
	uint64_t bad;                /* passed the filter, refused by the parser */
	uint64_t sent, send_errors;
};

/* Raw sockets for port (WireGuard's, already bound by it) on loop: IPv4 always, IPv6 when
 * the system has it (no IPv6: receiving and sending IPv6 say -EAFNOSUPPORT). 0 or -errno
 * (-EPERM without CAP_NET_RAW, -EINVAL for port 0 or no cb). cb may call rawsock_close. */
int rawsock_open(uv_loop_t *loop, uint16_t port, rawsock_cb cb, void *arg, struct rawsock **out);
/* Sends payload as UDP from the port to dst. 0 or -errno (from sendto; -EAFNOSUPPORT). */
int rawsock_send(struct rawsock *rs, const struct addr_port *dst, const void *payload, size_t len);
void rawsock_get_stats(const struct rawsock *rs, struct rawsock_stats *out);
/* Closes the sockets (on the loop: run it afterwards) and frees. NULL ok. */
void rawsock_close(struct rawsock *rs);

#endif
