/* wg_backend.h - what wg.c and the two WireGuard backends (wg_netlink.c, wg_uapi.c)
 * share: the operations a backend provides and the interface handle. Not for the daemon,
 * which sees wg.h only. */
#ifndef VPND_WG_BACKEND_H
#define VPND_WG_BACKEND_H

#include "wg.h"

struct wg_ops {
	const char *name;
	/* Creates the interface wg->ifname and sets wg->priv to the backend's state.
	 * own_public_key (NULL: none) as for wg_open. */
	int (*open)(struct wg *wg, const uint8_t own_public_key[WG_KEY_LEN]);
	int (*set_device)(struct wg *wg, const struct wg_device *dev);
	int (*get_device)(struct wg *wg, struct wg_device *dev);
	/* Tears the interface down and frees wg->priv; wg itself is freed by wg.c. */
	void (*close)(struct wg *wg);
};

struct wg {
	const struct wg_ops *ops;
	char ifname[IFNAMSIZ];
	void *priv;                       /* the backend's own state */
};

extern const struct wg_ops wg_netlink_ops;
extern const struct wg_ops wg_uapi_ops;

/* Merges src's allowed IPs into dst (same peer reported twice, e.g. across dump
 * messages) and empties src. */
int wg_peer_merge(struct wg_peer *dst, struct wg_peer *src);

#endif
