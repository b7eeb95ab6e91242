/* wg.c - the WireGuard front (as wireguard-tools' ipc.c over ipc-linux / ipc-uapi): picks
 * the backend, checks what the daemon asks for, owns struct wg_device memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "wg_backend.h"

#define ALL_PEER_FLAGS (WG_PEER_REMOVE | WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_ENDPOINT | \
			WG_PEER_HAS_KEEPALIVE)
#define ALL_DEVICE_FLAGS (WG_DEVICE_REPLACE_PEERS | WG_DEVICE_HAS_PRIVATE_KEY | \
			  WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK | WG_DEVICE_HAS_PUBLIC_KEY)

/* The kernel's dev_valid_name(), which also keeps the name safe inside the UAPI socket
 * path /var/run/wireguard/NAME.sock. */
static int valid_ifname(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (!n || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == ':' || (unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return 0;
	return 1;
}

static int open_with(struct wg *wg, const struct wg_ops *ops, const uint8_t *own_public_key)
{
	wg->ops = ops;
	wg->priv = NULL;
	return ops->open(wg, own_public_key);
}

int wg_open(const char *backend, const char *ifname, const uint8_t own_public_key[WG_KEY_LEN],
	    struct wg **out)
{
	struct wg *wg;
	int rc;

	if (!valid_ifname(ifname) || !out)
		return -EINVAL;
	if (!backend)
		backend = "auto";
	if (strcmp(backend, "auto") && strcmp(backend, "kernel") && strcmp(backend, "userspace"))
		return -EINVAL;
	wg = calloc(1, sizeof(*wg));
	if (!wg)
		return -ENOMEM;
	memcpy(wg->ifname, ifname, strlen(ifname) + 1);

	if (!strcmp(backend, "userspace")) {
		rc = open_with(wg, &wg_uapi_ops, own_public_key);
	} else {
		rc = open_with(wg, &wg_netlink_ops, own_public_key);
		if (rc == -EOPNOTSUPP && !strcmp(backend, "auto")) {
			log_info("kernel wireguard not available", "ifname=%s fallback=userspace",
				 ifname);
			rc = open_with(wg, &wg_uapi_ops, own_public_key);
		}
	}
	if (rc)
		goto err_open;
	log_info("wireguard interface created", "ifname=%s backend=%s", ifname, wg->ops->name);
	*out = wg;
	return 0;

err_open:
	log_error("cannot create wireguard interface", "ifname=%s backend=%s error=\"%s\"",
		  ifname, backend, strerror(-rc));
	free(wg);
	return rc;
}

const char *wg_backend_name(const struct wg *wg)
{
	return wg->ops->name;
}

const char *wg_ifname(const struct wg *wg)
{
	return wg->ifname;
}

int wg_device_check(const struct wg_device *dev)
{
	if (!dev || (dev->n_peers && !dev->peers) || (dev->flags & ~(unsigned)ALL_DEVICE_FLAGS))
		return -EINVAL;
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *p = &dev->peers[i];

		if ((p->flags & ~(unsigned)ALL_PEER_FLAGS) || (p->n_allowedips && !p->allowedips))
			return -EINVAL;
		if (p->flags & WG_PEER_HAS_ENDPOINT) {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)&p->endpoint;
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&p->endpoint;

			if (p->endpoint.ss_family == AF_INET) {
				if (!s4->sin_port)
					return -EINVAL;
			} else if (p->endpoint.ss_family == AF_INET6) {
				if (!s6->sin6_port)
					return -EINVAL;
			} else {
				return -EINVAL;
			}
		}
		for (size_t j = 0; j < p->n_allowedips; j++) {
			const struct wg_allowedip *a = &p->allowedips[j];

			if (!((a->family == AF_INET && a->cidr <= 32) ||
			      (a->family == AF_INET6 && a->cidr <= 128)))
				return -EINVAL;
		}
	}
	return 0;
}

int wg_set_device(struct wg *wg, const struct wg_device *dev)
{
	int rc = wg_device_check(dev);

	if (rc)
		return rc;
	rc = wg->ops->set_device(wg, dev);
	if (rc)
		log_warn("wireguard set failed", "ifname=%s backend=%s peers=%zu error=\"%s\"",
			 wg->ifname, wg->ops->name, dev->n_peers, strerror(-rc));
	return rc;
}

int wg_get_device(struct wg *wg, struct wg_device **out)
{
	struct wg_device *dev = wg_device_new();
	int rc;

	if (!dev)
		return -ENOMEM;
	rc = wg->ops->get_device(wg, dev);
	if (rc) {
		wg_device_free(dev);
		return rc;
	}
	memcpy(dev->ifname, wg->ifname, sizeof(dev->ifname));
	*out = dev;
	return 0;
}

void wg_close(struct wg *wg)
{
	if (!wg)
		return;
	wg->ops->close(wg);
	log_info("wireguard interface closed", "ifname=%s backend=%s", wg->ifname, wg->ops->name);
	free(wg);
}

struct wg_device *wg_device_new(void)
{
	return calloc(1, sizeof(struct wg_device));
}

/* Arrays grow by doubling from 4; the capacity follows from the count, so the structs
 * need no capacity field: n == 0 allocates, a power of two >= 4 doubles. */
static int grow(void **arr, size_t n, size_t elem)
{
	size_t cap;
	void *p;

	if (n && (n < 4 || (n & (n - 1))))
		return 0;
	cap = n ? n * 2 : 4;
	if (cap > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*arr, cap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

int wg_device_add_peer(struct wg_device *dev, struct wg_peer **out)
{
	struct wg_peer *p;

	if (grow((void **)&dev->peers, dev->n_peers, sizeof(*dev->peers)))
		return -ENOMEM;
	p = &dev->peers[dev->n_peers++];
	memset(p, 0, sizeof(*p));
	*out = p;
	return 0;
}

int wg_peer_add_allowedip(struct wg_peer *peer, const struct wg_allowedip *aip)
{
	if (grow((void **)&peer->allowedips, peer->n_allowedips, sizeof(*peer->allowedips)))
		return -ENOMEM;
	peer->allowedips[peer->n_allowedips++] = *aip;
	return 0;
}

int wg_peer_merge(struct wg_peer *dst, struct wg_peer *src)
{
	for (size_t i = 0; i < src->n_allowedips; i++)
		if (wg_peer_add_allowedip(dst, &src->allowedips[i]))
			return -ENOMEM;
	free(src->allowedips);
	src->allowedips = NULL;
	src->n_allowedips = 0;
	return 0;
}

void wg_device_free(struct wg_device *dev)
{
	if (!dev)
		return;
	for (size_t i = 0; i < dev->n_peers; i++)
		free(dev->peers[i].allowedips);
	free(dev->peers);
	sodium_memzero(dev->private_key, sizeof(dev->private_key));
	free(dev);
}
