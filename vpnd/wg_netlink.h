/* wg_netlink.h - the pure half of the kernel backend (wg_netlink.c): WG_CMD_SET_DEVICE
 * messages built and WG_CMD_GET_DEVICE dumps parsed in buffers, without a socket; for
 * wg_netlink.c itself and its tests and fuzz target. */
#ifndef VPND_WG_NETLINK_H
#define VPND_WG_NETLINK_H

#include "wg.h"

/* Walks dev and emits WG_CMD_SET_DEVICE messages that each fit in size bytes: device
 * attributes in the first only, peers split across messages and a peer's allowed IPs
 * too (the continuation repeats the public key without REPLACE_ALLOWEDIPS). */
struct wg_nl_set_iter {
	const struct wg_device *dev;
	const char *ifname;
	uint16_t family;                  /* the genl family id of "wireguard" */
	uint32_t seq;                     /* of the first message; +1 per message */
	size_t peer, aip;                 /* where the next message starts */
	int started, done;
};
void wg_nl_set_iter_init(struct wg_nl_set_iter *it, const struct wg_device *dev,
			 const char *ifname, uint16_t family, uint32_t seq);
/* Length of the message written to buf (> 0); 0 when every message has been written;
 * -EMSGSIZE when size cannot hold a peer's header and one allowed IP (sizes above 64 KiB
 * count as 64 KiB: nest lengths are 16 bits); -EINVAL for a bad ifname. */
int wg_nl_set_next(struct wg_nl_set_iter *it, void *buf, size_t size);

/* Parses one datagram of the WG_CMD_GET_DEVICE dump (one or more netlink messages) into
 * dev, merging a peer that continues from the previous message. seq and portid 0 skip
 * those checks. Returns 1 when more messages are due, 0 at NLMSG_DONE, -EINTR when the
 * kernel flagged the dump as interrupted (start again), the errno of an NLMSG_ERROR,
 * -EPROTO for a message of another sequence or port, or -EBADMSG for anything malformed:
 * lengths past the end, wrong attribute sizes, a peer without a key, an allowed IP
 * without a valid family/address/prefix. Unknown attributes are skipped. */
int wg_nl_parse_dump(const void *buf, size_t len, uint16_t family, uint32_t seq,
		     uint32_t portid, struct wg_device *dev);

#endif
