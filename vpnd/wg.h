/* wg.h - one WireGuard interface, whatever drives it: the kernel (generic netlink family
 * "wireguard", wg_netlink.c) or wireguard-go (its UAPI socket, wg_uapi.c). This is the
 * front the daemon uses; what the backends share is in wg_backend.h. */
#ifndef VPND_WG_H
#define VPND_WG_H

#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
 * own_public_key (NULL: none) is this node's: a kernel WireGuard link IFNAME left behind
 * by a vpnd that died without cleaning up (kill -9, a crash) is deleted and created anew
 * when it runs the private key of that public key, and only then.
 * -EOPNOTSUPP: "kernel" asked and the kernel has no WireGuard; -EEXIST: the name is taken
 * (a link here, or a wireguard-go UAPI socket of another namespace); -ENOENT: wireguard-go
 * is not installed (MESHVPN_WIREGUARD_GO overrides its path); -ECHILD: it exited at start
 * (its last lines, logged just before, say why); -ETIMEDOUT: its socket did not come up
 * in 5 s. wireguard-go runs as our child with PR_SET_PDEATHSIG: call from the thread that
 * lives as long as the interface (the loop thread). Its stdout and stderr are logged
 * through log.h (source=wireguard-go) by a thread of the backend, bounded and with
 * repeats counted. Blocks until the socket accepts (a few ms) or one of the errors. */
int wg_open(const char *backend, const char *ifname, const uint8_t own_public_key[WG_KEY_LEN],
	    struct wg **out);

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

#endif
