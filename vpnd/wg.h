/* wg.h - one WireGuard interface, whatever drives it: the kernel (generic netlink family
 * "wireguard", wg_netlink.c) or wireguard-go (its UAPI socket, wg_uapi.c). The daemon
 * uses the first part only; the second part is for wg.c, the backends and their tests. */
#ifndef VPND_WG_H
#define VPND_WG_H

#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define WG_KEY_LEN 32

struct wg_allowedip {
	int family;                       /* AF_INET or AF_INET6 */
	union {
		struct in_addr ip4;
		struct in6_addr ip6;
	};
	uint8_t cidr;                     /* <= 32 or <= 128 */
};

enum wg_peer_flags {
	WG_PEER_REMOVE = 1U << 0,             /* set: remove this peer (nothing else applies) */
	WG_PEER_REPLACE_ALLOWEDIPS = 1U << 1, /* set: drop the peer's allowed IPs first */
	WG_PEER_HAS_ENDPOINT = 1U << 2,       /* set and get: .endpoint is meaningful */
	WG_PEER_HAS_KEEPALIVE = 1U << 3,      /* set and get: .persistent_keepalive (0 = off) */
};

struct wg_peer {
	uint8_t public_key[WG_KEY_LEN];
	struct sockaddr_storage endpoint; /* sockaddr_in or sockaddr_in6; ss_family 0 = none */
	uint16_t persistent_keepalive;    /* seconds */
	struct wg_allowedip *allowedips;
	size_t n_allowedips;
	unsigned flags;
	/* read back only (wg_get_device): */
	int64_t last_handshake_sec;       /* 0 = never */
	uint64_t rx_bytes, tx_bytes;
};

enum wg_device_flags {
	WG_DEVICE_REPLACE_PEERS = 1U << 0,    /* set: peers not listed are removed */
	WG_DEVICE_HAS_PRIVATE_KEY = 1U << 1,  /* set and get */
	WG_DEVICE_HAS_LISTEN_PORT = 1U << 2,  /* set and get */
	WG_DEVICE_HAS_FWMARK = 1U << 3,       /* set and get (0 = none) */
	WG_DEVICE_HAS_PUBLIC_KEY = 1U << 4,   /* get only */
};

struct wg_device {
	char ifname[IFNAMSIZ];            /* filled by wg_get_device; ignored by wg_set_device */
	uint8_t private_key[WG_KEY_LEN];
	uint8_t public_key[WG_KEY_LEN];
	uint16_t listen_port;
	uint32_t fwmark;
	unsigned flags;
	struct wg_peer *peers;
	size_t n_peers;
};

struct wg;

/* Creates interface IFNAME with the backend "kernel" (rtnetlink link of type wireguard),
 * "userspace" (wireguard-go -f IFNAME as a child) or "auto" (kernel when the kernel can
 * create the link, else userspace). The interface starts down, without addresses.
 * -EOPNOTSUPP: "kernel" asked and the kernel has no WireGuard; -EEXIST: the name is taken
 * (a link here, or a wireguard-go UAPI socket of another namespace); -ENOENT: wireguard-go
 * is not installed (MESHVPN_WIREGUARD_GO overrides its path); -ECHILD: it exited at start
 * (its last lines, logged just before, say why); -ETIMEDOUT: its socket did not come up
 * in 5 s. wireguard-go runs as our child with PR_SET_PDEATHSIG: call from the thread that
 * lives as long as the interface (the loop thread). Its stdout and stderr are logged
 * through log.h (source=wireguard-go) by a thread of the backend, bounded and with
 * repeats counted. Blocks until the socket accepts (a few ms) or one of the errors. */
int wg_open(const char *backend, const char *ifname, struct wg **out);
/* Removes a kernel WireGuard link IFNAME left behind by a vpnd that died without
 * cleaning up (kill -9, a crash): only when the link's public key is public_key, i.e. it
 * runs this node's own private key. 0: deleted; -EEXIST: the link is someone else's;
 * -ENODEV: there is no such kernel WireGuard link. */
int wg_reclaim(const char *ifname, const uint8_t public_key[WG_KEY_LEN]);

/* "kernel" or "userspace". */
const char *wg_backend_name(const struct wg *wg);
const char *wg_ifname(const struct wg *wg);
/* Applies dev incrementally: only the peers listed change, unless WG_DEVICE_REPLACE_PEERS.
 * -EINVAL for a bad family, prefix or endpoint; else the backend's error. */
int wg_set_device(struct wg *wg, const struct wg_device *dev);
/* The device as it runs now, with every peer and its counters; free with wg_device_free. */
int wg_get_device(struct wg *wg, struct wg_device **out);
/* Deletes the interface (kernel) or stops wireguard-go by its PID and reaps it (blocks
 * until it has exited, woken by its exit; SIGKILL after 3 s). NULL ok. */
void wg_close(struct wg *wg);

/* Building a device for wg_set_device piecewise (wg_device_free then frees it); a device
 * made of caller-owned arrays is fine too and must not go to wg_device_free. */
struct wg_device *wg_device_new(void);
/* Appends a zeroed peer; *out points into dev->peers until the next append. */
int wg_device_add_peer(struct wg_device *dev, struct wg_peer **out);
int wg_peer_add_allowedip(struct wg_peer *peer, const struct wg_allowedip *aip);
/* Wipes the private key and frees everything. NULL ok. */
void wg_device_free(struct wg_device *dev);

/* Checks families, prefix lengths, endpoints and array pointers: 0 or -EINVAL. */
int wg_device_check(const struct wg_device *dev);

/* ---- Backend side: wg.c, wg_netlink.c, wg_uapi.c and their tests ---- */

struct wg_ops {
	const char *name;
	/* Creates the interface wg->ifname and fills wg's backend state. */
	int (*open)(struct wg *wg);
	int (*set_device)(struct wg *wg, const struct wg_device *dev);
	int (*get_device)(struct wg *wg, struct wg_device *dev);
	/* Tears the interface down; wg itself is freed by wg.c. */
	void (*close)(struct wg *wg);
};

struct wg_uapi_out;

struct wg {
	const struct wg_ops *ops;
	char ifname[IFNAMSIZ];
	/* kernel: */
	uint16_t genl_family;             /* id of the generic netlink family "wireguard" */
	uint32_t seq;
	/* userspace: */
	pid_t pid;                        /* wireguard-go, 0 when none */
	int pidfd;                        /* readable when it exits; -1 when none */
	struct wg_uapi_out *out;          /* the thread logging its output, NULL when none */
	char sock_path[108];              /* its UAPI socket */
};

extern const struct wg_ops wg_netlink_ops;
extern const struct wg_ops wg_uapi_ops;

/* The kernel half of wg_reclaim. */
int wg_nl_reclaim(const char *ifname, const uint8_t public_key[WG_KEY_LEN]);

/* Merges src's allowed IPs into dst (same peer reported twice, e.g. across dump
 * messages) and empties src. */
int wg_peer_merge(struct wg_peer *dst, struct wg_peer *src);

/* -- wg_netlink.c: pure message builder and parser (no socket) -- */

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

/* -- wg_uapi.c: the text protocol of wireguard-go (wireguard.com/xplatform) -- */

#define WG_UAPI_DIR "/var/run/wireguard"
#define WG_UAPI_MAX_RESPONSE (64U << 20)

/* "set=1\n...\n\n" for dev: malloc'd text in *out (NUL-terminated, *len without the
 * NUL). It may hold the private key: wipe it with sodium_memzero before free. */
int wg_uapi_build_set(const struct wg_device *dev, char **out, size_t *len);
/* Parses the answer to "get=1" (key=value lines, "errno=N", blank line) into dev.
 * 0, -N for errno=N (N != 0), -EBADMSG for malformed or cut-short text. */
int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device *dev);
/* The answer to a set: "errno=N\n\n". 0, -N, or -EBADMSG. */
int wg_uapi_parse_errno(const char *buf, size_t len);
/* One request/answer on the UAPI socket at path: sends req, reads until the blank line
 * that ends an answer (or EOF), within timeout_ms. *resp is malloc'd and NUL-terminated;
 * wipe it before free when it may hold a key. */
int wg_uapi_exchange(const char *path, const char *req, size_t req_len, int timeout_ms,
		     char **resp, size_t *resp_len);

#endif
